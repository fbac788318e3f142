//! Opening a bag: tag files, model, index (build or reuse), root dataset, element types.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use deriva_bag_features::model::ML_SCHEMA;
use deriva_bag_features::{CatalogModel, Rid};

use super::{BagShared, DatasetBag, OpenOptions};
use crate::bagit::paths::BagRoot;
use crate::bagit::BagItFiles;
use crate::index::build::{ensure_index, BuildRequest};
use crate::index::integrity::{check_bytes, PayloadDigests, SchemaFile};
use crate::index::query::Index;
use crate::index::reachable::dataset_table;
use crate::{archive, cache, Error, Result};
pub(crate) use deriva_bag_features::membership::element_types;

impl DatasetBag {
    /// Opens a bag directory or archive (`.zip`, `.tar.gz`, `.tgz`) with default options and
    /// returns its root dataset.
    pub fn open(path: impl AsRef<Path>) -> Result<DatasetBag> {
        DatasetBag::open_with(path, &OpenOptions::default())
    }

    /// Opens a bag with explicit options.
    ///
    /// The index serves only what the bag's payload manifests vouch for: every table CSV and
    /// `data/schema.json` is checked against its manifest digest when the index is built, and
    /// a file changed since is noticed on every later open (see `index::integrity`).
    /// A table that repeats a RID with other values is served its first row, with a warning
    /// on every open and a `duplicate-rid` finding in [`DatasetBag::validate`].
    ///
    /// Errors: [`Error::NotABag`] (no `bagit.txt`, `data/` or `data/schema.json`),
    /// [`Error::Model`] (malformed `schema.json`), [`Error::ChecksumMismatch`] (a CSV or
    /// `schema.json` differs from its manifest digest), [`Error::NotInManifest`] (a table CSV
    /// no payload manifest lists), [`Error::LinkEscapesBag`] (a bag file is a symbolic link
    /// that leads outside the bag), [`Error::Csv`] / [`Error::UnknownColumn`] /
    /// [`Error::BadValue`] (bad CSV, on the first open only), [`Error::IndexBuild`],
    /// [`Error::Index`], [`Error::Io`]; for an archive also [`Error::UnsafePath`] (an entry
    /// escapes) and [`Error::ArchiveTooLarge`] (extraction passed
    /// [`OpenOptions::max_extracted_bytes`] or its default). Nothing is ever written inside
    /// the bag, and an open whose extraction and index are already in the cache writes
    /// nothing at all (a read-only cache serves it). Each open first removes what killed
    /// processes left in the cache ([`crate::cache`]).
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<DatasetBag> {
        let started = std::time::Instant::now();
        let path = path.as_ref();
        let cache_root = options.cache_dir.clone().unwrap_or_else(cache::cache_root);
        cache::remove_leftovers(&cache_root.join("index"), cache::Guard::KeyLock);
        cache::remove_leftovers(&cache_root.join("keys"), cache::Guard::None);
        cache::remove_leftovers(&cache_root.join("assets"), cache::Guard::None);
        let dir = archive::bag_dir_with(path, &cache_root, options.max_extracted_bytes)?;
        // Only the cache key now: the manifests and fetch.txt are parsed on first use.
        let cache_key = BagItFiles::cache_key_memo(&dir, &cache_root.join("keys"))?;
        let bag_root = BagRoot::new(&dir)?;
        let no_schema = || Error::NotABag {
            path: dir.clone(),
            detail: "no data/schema.json".into(),
        };
        // Resolved through the bag root first: a schema.json that links out of the bag is
        // never read.
        let Some(schema_path) = bag_root.existing("data/schema.json", &dir)? else {
            return Err(no_schema());
        };
        let schema = match SchemaFile::read(&schema_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_schema()),
            Err(e) => return Err(Error::io(&schema_path, e)),
        };
        let model = CatalogModel::from_json(&schema.bytes).map_err(|source| {
            // A schema.json that was changed after the bag was made is reported as that.
            let changed = PayloadDigests::read(&dir).ok().and_then(|d| {
                let expected = d.expect("data/schema.json", &schema_path).ok()?;
                check_bytes(&schema_path, &schema.bytes, expected).err()
            });
            changed.unwrap_or(Error::Model {
                path: schema_path.clone(),
                source,
            })
        })?;

        let index_path = cache_root.join("index").join(format!("{cache_key}.sqlite"));
        let built = ensure_index(
            &index_path,
            &BuildRequest {
                bag_root: &dir,
                model: &model,
                schema: &schema,
                cache_key: &cache_key,
                verified_dir: &cache_root.join("verified"),
                progress: options.progress.as_ref(),
            },
        )?;
        let index = Arc::new(Index::open(&index_path, &model)?);
        warn_rid_conflicts(&index)?;
        let element_types = element_types(&model);
        let root_rid = find_root(&index, &dir)?;
        let shared = Arc::new(BagShared {
            path: dir,
            bag_root,
            bagit: OnceLock::new(),
            model,
            index,
            index_built: built,
            root_rid: root_rid.clone(),
            element_types,
            fetch_map: OnceLock::new(),
            payload_digests: OnceLock::new(),
            cache_root,
            cache_key,
        });
        let bag = DatasetBag::for_rid(&shared, &root_rid)?;
        tracing::debug!(
            bag = %bag.path().display(),
            rid = %root_rid,
            index_built = built,
            elapsed_us = started.elapsed().as_micros() as u64,
            "opened bag"
        );
        Ok(bag)
    }
}

/// Warns about every row whose RID an earlier row of its table had with other values (the
/// first row is the one served); on every open, not only the one that built the index.
fn warn_rid_conflicts(index: &Index) -> Result<()> {
    const SHOWN: usize = 20;
    let conflicts = index.rid_conflicts()?;
    for c in conflicts.iter().take(SHOWN) {
        tracing::warn!(
            table = %c.table,
            rid = %c.rid,
            first = %format!("{} line {}", c.first_file, c.first_line),
            duplicate = %format!("{} line {}", c.file, c.line),
            "a RID appears in two rows of one table with different values; the first row is used"
        );
    }
    if conflicts.len() > SHOWN {
        tracing::warn!(
            more = conflicts.len() - SHOWN,
            "more rows repeat a RID with different values; `validate` lists them all"
        );
    }
    Ok(())
}

/// The root dataset: the one no other dataset in the bag nests, cross-checked with the
/// `Dataset_<RID>` directory name. When they disagree the directory wins if that RID has a
/// `Dataset_Version` row (a bag for a child can carry its parents' rows),
/// with a warning.
fn find_root(index: &Index, dir: &Path) -> Result<Rid> {
    let ds = dataset_table();
    let version_table = deriva_bag_features::TableName::new(ML_SCHEMA, "Dataset_Version");
    let nesting = deriva_bag_features::TableName::new(ML_SCHEMA, "Dataset_Dataset");
    let mut all: BTreeSet<String> = index.distinct_strings(&ds, "RID")?.into_iter().collect();
    let versioned: BTreeSet<String> = index
        .distinct_strings(&version_table, "Dataset")?
        .into_iter()
        .collect();
    all.extend(versioned.iter().cloned());
    let nested: BTreeSet<String> = index
        .distinct_strings(&nesting, "Nested_Dataset")?
        .into_iter()
        .collect();
    let unnested: Vec<&String> = all.iter().filter(|r| !nested.contains(*r)).collect();
    let dir_rid = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("Dataset_"))
        .map(str::to_string);

    if let Some(d) = &dir_rid {
        if versioned.contains(d) {
            if unnested.len() != 1 || unnested[0] != d {
                tracing::warn!(
                    directory_rid = %d,
                    unnested = ?unnested,
                    "the bag directory name and the dataset nesting disagree on the root dataset; using the directory's"
                );
            }
            return Ok(Rid::new(d.as_str()));
        }
    }
    let candidates: Vec<&String> = unnested
        .iter()
        .copied()
        .filter(|r| versioned.contains(*r))
        .collect();
    match candidates.as_slice() {
        [one] => Ok(Rid::new(one.as_str())),
        [first, ..] => {
            tracing::warn!(candidates = ?candidates, "several datasets are not nested by any other; taking the smallest RID as the root");
            Ok(Rid::new(first.as_str()))
        }
        [] => Err(Error::NotABag {
            path: dir.to_path_buf(),
            detail: "cannot tell the root dataset: no Dataset with a Dataset_Version row that no other dataset nests".into(),
        }),
    }
}

#[cfg(all(test, feature = "fixtures"))]
mod tests {
    use super::*;

    #[test]
    fn element_types_are_domain_tables_and_dataset_with_pure_associations() {
        let tmp = tempfile::tempdir().unwrap();
        let bag = crate::fixtures::small_bag(tmp.path()).unwrap();
        let bytes = std::fs::read(bag.path.join("data/schema.json")).unwrap();
        let model = CatalogModel::from_json(&bytes).unwrap();
        let types = element_types(&model);
        let found: Vec<(String, String, String, String)> = types
            .iter()
            .flat_map(|e| {
                e.links.iter().map(move |l| {
                    (
                        e.table.to_string(),
                        l.association.to_string(),
                        l.dataset_column.clone(),
                        l.member_column.clone(),
                    )
                })
            })
            .collect();
        let expect = |a: &str, b: &str, c: &str, d: &str| {
            (a.to_string(), b.to_string(), c.to_string(), d.to_string())
        };
        assert_eq!(
            found,
            [
                expect("demo:Image", "demo:Dataset_Image", "Dataset", "Image"),
                expect("demo:Subject", "demo:Dataset_Subject", "Dataset", "Subject"),
                expect(
                    "deriva-ml:Dataset",
                    "deriva-ml:Dataset_Dataset",
                    "Dataset",
                    "Nested_Dataset"
                ),
            ]
        );
    }
}
