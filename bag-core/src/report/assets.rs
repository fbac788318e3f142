//! Asset files as the report sees them: present or missing, with the content digest the
//! bag's manifests give, and the asset rows of the dataset that name no file at all.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use deriva_bag_features::{DatasetLike, Rid, Row, TableName};
use rayon::prelude::*;
use serde::Serialize;

use crate::bag::Located;
use crate::bagit::Algorithm;
use crate::Result;

/// Where one asset row's file stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetFile {
    /// On disk.
    Present {
        /// Its content digest, `md5:<hex>` or `sha256:<hex>`, when known.
        digest: Option<String>,
    },
    /// Not on disk; it belongs at this bag-relative path.
    Missing {
        /// Bag-relative path, e.g. `data/asset/1-I002/Image/retina 002.jpg`.
        path: String,
        /// Its content digest from the manifest, when listed.
        digest: Option<String>,
    },
    /// The row names no file (no URL and no Filename).
    NoFile,
}

impl AssetFile {
    /// The content digest, present or not.
    pub fn digest(&self) -> Option<&str> {
        match self {
            AssetFile::Present { digest } | AssetFile::Missing { digest, .. } => digest.as_deref(),
            AssetFile::NoFile => None,
        }
    }
}

/// How the report reaches asset files. A bag implements it from its manifests; any other
/// [`DatasetLike`] may implement it from [`DatasetLike::asset_path`] without digests.
/// Rows are looked at in parallel, hence `Sync`.
pub trait AssetFiles: Sync {
    /// The file of asset row `row` of `table`.
    fn asset_file(&self, table: &TableName, row: &Row) -> Result<AssetFile>;
}

impl AssetFiles for crate::DatasetBag {
    fn asset_file(&self, table: &TableName, row: &Row) -> Result<AssetFile> {
        let digests = self.payload_digests()?;
        let digest_of = |rel: &str| digests.get(rel).cloned();
        Ok(match self.locate_asset(table, row)? {
            Located::Present(abs) => AssetFile::Present {
                digest: relative(self.path(), &abs).and_then(|rel| digest_of(&rel)),
            },
            Located::Missing(path) => AssetFile::Missing {
                digest: digest_of(&path),
                path,
            },
            Located::NoFile => AssetFile::NoFile,
        })
    }
}

/// `abs` relative to `root` with `/` separators, when it is under it.
fn relative(root: &Path, abs: &Path) -> Option<String> {
    let rel = abs.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

impl crate::DatasetBag {
    /// Bag-relative payload path → `md5:<hex>` (or `sha256:<hex>` when the bag has no md5
    /// manifest), built on first use from the parsed manifests.
    pub(crate) fn payload_digests(&self) -> Result<&BTreeMap<String, String>> {
        if let Some(map) = self.shared.payload_digests.get() {
            return Ok(map);
        }
        let bagit = self.shared.bagit()?;
        let manifest = bagit
            .manifest(Algorithm::Md5)
            .or_else(|| bagit.manifest(Algorithm::Sha256));
        let map = manifest
            .map(|m| {
                m.entries
                    .iter()
                    .map(|e| {
                        (
                            e.path.clone(),
                            format!("{}:{}", m.algorithm.name(), e.digest),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(self.shared.payload_digests.get_or_init(|| map))
    }
}

/// An asset row, named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AssetRow {
    /// The asset table, `schema:table`.
    pub table: String,
    /// The row's RID.
    pub rid: Rid,
    /// Bag-relative path where the file belongs (empty for a row that names no file).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// Asset files of the dataset's asset rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AssetReport {
    /// Asset rows reachable from the dataset, per asset table (`schema:table`).
    pub rows: BTreeMap<String, usize>,
    /// Of those, files on disk.
    pub present: usize,
    /// Rows whose file is not on disk, by table then RID.
    pub missing: Vec<AssetRow>,
    /// Rows that name no file (no URL, no Filename), by table then RID.
    pub without_file: Vec<AssetRow>,
}

/// The scan: the report and every asset row's file (for the content comparison).
pub(crate) struct AssetScan {
    pub report: AssetReport,
    /// Per asset table, RID → file.
    pub files: BTreeMap<TableName, HashMap<String, AssetFile>>,
}

/// Looks at the file of every asset row reachable from `dataset`.
pub(crate) fn scan<D: DatasetLike>(dataset: &D, files: &dyn AssetFiles) -> Result<AssetScan> {
    let mut tables: Vec<TableName> = dataset
        .model()
        .tables()
        .filter(|t| t.is_asset())
        .map(|t| t.name.clone())
        .collect();
    tables.sort();
    let mut report = AssetReport::default();
    let mut found = BTreeMap::new();
    for table in tables {
        let rows = dataset.reachable_rows(&table)?;
        if rows.is_empty() {
            continue;
        }
        report.rows.insert(table.to_string(), rows.len());
        // Locating a file checks every path component for links out of the bag: thousands
        // of small syscalls, spread over the cores.
        let located: Vec<(Rid, AssetFile)> = rows
            .par_iter()
            .filter_map(|row| Some((row.rid()?, row)))
            .map(|(rid, row)| Ok((rid, files.asset_file(&table, row)?)))
            .collect::<Result<_>>()?;
        let table_files = found.entry(table.clone()).or_insert_with(HashMap::new);
        for (rid, file) in located {
            let named = |path: &str| AssetRow {
                table: table.to_string(),
                rid: rid.clone(),
                path: path.to_string(),
            };
            match &file {
                AssetFile::Present { .. } => report.present += 1,
                AssetFile::Missing { path, .. } => report.missing.push(named(path)),
                AssetFile::NoFile => report.without_file.push(named("")),
            }
            table_files.insert(rid.to_string(), file);
        }
    }
    report.missing.sort();
    report.without_file.sort();
    Ok(AssetScan {
        report,
        files: found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_use_slashes_and_stay_under_the_root() {
        let root = Path::new("/bags/Dataset_1-D000");
        assert_eq!(
            relative(root, &root.join("data/asset/1-I002/Image/retina 002.jpg")),
            Some("data/asset/1-I002/Image/retina 002.jpg".to_string())
        );
        assert_eq!(relative(root, Path::new("/elsewhere/x.jpg")), None);
    }
}
