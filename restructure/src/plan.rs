//! Planning: which asset goes where. Pure computation over the dataset; writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use deriva_bag_features::{
    resolve_targets, DatasetInfo, DatasetLike, Members, Rid, Row, TableName, Value,
};

use crate::error::{Error, Result};
use crate::manifest::MissingFile;
use crate::options::RestructureOptions;
use crate::sanitize::{sanitize, LabelKind};

/// One file to place: the asset, its source file, and its path relative to the output dir.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Planned {
    pub rel: PathBuf,
    pub rid: Rid,
    pub src: PathBuf,
}

/// The whole plan: placements (collisions already renamed) and assets without a file.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub placements: Vec<Planned>,
    pub missing: Vec<MissingFile>,
    /// Placed assets under more than one dataset type path (e.g. training and testing),
    /// sorted.
    pub in_several_splits: Vec<Rid>,
}

/// The asset table: the option, or the one asset table with members.
pub(crate) fn asset_table<D: DatasetLike>(
    dataset: &D,
    options: &RestructureOptions,
) -> Result<TableName> {
    let model = dataset.model();
    if let Some(name) = &options.asset_table {
        let table = model.resolve_table(name)?;
        if !table.is_asset() {
            return Err(Error::NotAnAssetTable {
                table: table.name.to_string(),
            });
        }
        return Ok(table.name.clone());
    }
    // Only which tables have members matters here, and `limit` caps rows per table per
    // dataset level, so one row per table per level answers that without loading every row.
    let members: Members = dataset.list_dataset_members(true, Some(1))?;
    let is_asset = |t: &TableName| model.table(t).is_some_and(|t| t.is_asset());
    let with_members: Vec<&TableName> = members
        .iter()
        .filter(|(t, rows)| is_asset(t) && !rows.is_empty())
        .map(|(t, _)| t)
        .collect();
    let chosen = match with_members.as_slice() {
        [one] => (*one).clone(),
        [] => {
            // No direct asset members (e.g. a dataset of Subjects): fall back to asset tables
            // whose rows are reachable through foreign keys.
            let mut reachable = Vec::new();
            for t in members.keys().filter(|t| is_asset(t)) {
                if !dataset.reachable_rows(t)?.is_empty() {
                    reachable.push(t.clone());
                }
            }
            match reachable.len() {
                1 => reachable.remove(0),
                0 => {
                    return Err(Error::NoAssetTable {
                        detail: format!(
                            "no asset table has members or reachable rows in dataset {}",
                            dataset.rid()
                        ),
                    })
                }
                _ => {
                    return Err(Error::AmbiguousAssetTable {
                        tables: reachable.iter().map(ToString::to_string).collect(),
                    })
                }
            }
        }
        several => {
            return Err(Error::AmbiguousAssetTable {
                tables: several.iter().map(ToString::to_string).collect(),
            })
        }
    };
    tracing::info!(table = %chosen, "auto-detected asset table");
    Ok(chosen)
}

/// The directory level a dataset contributes: `None` for a type not in the map.
pub(crate) fn type_level(
    info: &DatasetInfo,
    options: &RestructureOptions,
) -> Result<Option<String>> {
    let dir = if info.types.is_empty() {
        // The chapter: "Datasets with no type defined are treated as Testing."
        Some(options.type_dir("Testing").unwrap_or("testing").to_string())
    } else {
        let chosen = match &options.type_selector {
            Some(select) => select(&info.types),
            None => info.types[0].clone(),
        };
        options.type_dir(&chosen).map(str::to_string)
    };
    dir.map(|d| sanitize(&d, &info.rid, LabelKind::TypeDir))
        .transpose()
}

/// The dataset tree walk: type paths and which datasets own each asset.
struct Walk<'a> {
    table: &'a TableName,
    options: &'a RestructureOptions,
    /// Type path of each visited dataset, in depth-first order.
    type_paths: Vec<Vec<String>>,
    /// Reachable asset RIDs of each visited dataset's subtree.
    reach: HashMap<Rid, HashSet<Rid>>,
    visiting: HashSet<Rid>,
    /// Asset RID → indexes into `type_paths` of the deepest datasets containing it.
    owners: BTreeMap<Rid, Vec<usize>>,
}

/// What is kept of each reachable asset row of the root dataset: only what resolving the
/// targets reads, so no full row outlives its turn in the stream.
struct Rows<'a> {
    dataset_table: &'a TableName,
    /// `RID`, the target names that are columns, and every single-column foreign key
    /// (a feature target reached through one).
    columns: Arc<[Arc<str>]>,
    /// Rows with a file on disk, cut to `columns`, in RID order.
    present: Vec<Row>,
    /// Asset RID → its (absolute) file.
    sources: HashMap<Rid, PathBuf>,
    missing: Vec<MissingFile>,
    /// The first failure; the rest of the stream is skipped.
    failure: Option<Error>,
}

impl Rows<'_> {
    fn take<D: DatasetLike>(&mut self, dataset: &D, row: Row) {
        if self.failure.is_some() {
            return;
        }
        let Some(rid) = row.rid() else { return };
        let table = self.dataset_table;
        match dataset.asset_path(table, &row) {
            Some(path) => match std::path::absolute(&path) {
                Ok(path) => {
                    self.sources.insert(rid, path);
                    let values = self
                        .columns
                        .iter()
                        .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
                        .collect();
                    self.present
                        .push(Row::new(Arc::clone(&self.columns), values));
                }
                Err(e) => self.failure = Some(crate::error::io(&path)(e)),
            },
            None => {
                let filename = row.text("Filename").map(str::to_string);
                tracing::warn!(rid = %rid, filename = filename.as_deref().unwrap_or(""), table = %table, "asset file not found; not placed");
                self.missing.push(MissingFile { rid, filename });
            }
        }
    }
}

impl Walk<'_> {
    /// Visits `ds` (reached under `parent_path`) and returns its subtree's reachable RIDs.
    /// The root's rows stream through `rows`; the nested datasets' RIDs alone are read.
    fn visit<D: DatasetLike>(
        &mut self,
        ds: &D,
        parent_path: &[String],
        rows: Option<&mut Rows<'_>>,
    ) -> Result<HashSet<Rid>> {
        let rid = ds.rid().clone();
        if let Some(done) = self.reach.get(&rid) {
            // A dataset nested under two parents: its first path wins, as in the reference.
            return Ok(done.clone());
        }
        if !self.visiting.insert(rid.clone()) {
            tracing::warn!(dataset = %rid, "dataset nesting cycle; not descending again");
            return Ok(HashSet::new());
        }
        let mut path = parent_path.to_vec();
        if let Some(level) = type_level(ds.info(), self.options)? {
            path.push(level);
        }
        let index = self.type_paths.len();
        self.type_paths.push(path.clone());

        let reach: HashSet<Rid> = match rows {
            None => ds.reachable_rids(self.table)?.into_iter().collect(),
            Some(rows) => {
                let mut reach = HashSet::new();
                ds.for_each_reachable_row(self.table, &mut |row| {
                    if let Some(rid) = row.rid() {
                        reach.insert(rid);
                    }
                    rows.take(ds, row);
                    Ok(())
                })?;
                if let Some(failure) = rows.failure.take() {
                    return Err(failure);
                }
                reach
            }
        };
        let mut in_children: HashSet<Rid> = HashSet::new();
        for child in ds.list_dataset_children(false)? {
            let handle = ds.dataset(&child.rid)?;
            in_children.extend(self.visit(&handle, &path, None)?);
        }
        for asset in reach.difference(&in_children) {
            self.owners.entry(asset.clone()).or_default().push(index);
        }
        self.visiting.remove(&rid);
        self.reach.insert(rid, reach.clone());
        Ok(reach)
    }
}

/// The columns of `table` that resolving `options`' targets reads: `RID`, target names that
/// are columns, and the single-column foreign keys through which a target names a feature of
/// the referenced table (as `classify_targets` resolves them).
fn target_columns<D: DatasetLike>(
    dataset: &D,
    table: &TableName,
    options: &RestructureOptions,
) -> Result<Arc<[Arc<str>]>> {
    let mut columns: Vec<Arc<str>> = vec![Arc::from("RID")];
    let Some(t) = dataset.model().table(table) else {
        return Ok(columns.into());
    };
    let mut features = None;
    for (name, _) in options.targets.iter() {
        let mut wanted = Vec::new();
        if t.column(name).is_some() {
            wanted.push(name);
        } else {
            let features = match &mut features {
                Some(f) => f,
                None => features.insert(dataset.find_features(None)?),
            };
            wanted.extend(
                t.foreign_keys
                    .iter()
                    .filter(|fk| fk.columns.len() == 1)
                    .filter(|fk| {
                        features
                            .iter()
                            .any(|f| f.target_table == fk.referenced_table && f.name == name)
                    })
                    .map(|fk| fk.columns[0].as_str()),
            );
        }
        for column in wanted {
            if !columns.iter().any(|c| &**c == column) {
                columns.push(Arc::from(column));
            }
        }
    }
    Ok(columns.into())
}

/// Builds the full plan. Fails before anything is written.
pub(crate) fn plan<D: DatasetLike>(
    dataset: &D,
    table: &TableName,
    options: &RestructureOptions,
) -> Result<Plan> {
    let mut walk = Walk {
        table,
        options,
        type_paths: Vec::new(),
        reach: HashMap::new(),
        visiting: HashSet::new(),
        owners: BTreeMap::new(),
    };
    // Assets whose file is not on disk are skipped with one warning each (SPEC §5.8); the
    // remaining ones are exactly the set that will be emitted, so `Missing::Error` is checked
    // against them.
    let mut rows = Rows {
        dataset_table: table,
        columns: target_columns(dataset, table, options)?,
        present: Vec::new(),
        sources: HashMap::new(),
        missing: Vec::new(),
        failure: None,
    };
    walk.visit(dataset, &[], Some(&mut rows))?;
    walk.reach.clear();
    let Rows {
        present,
        mut sources,
        mut missing,
        ..
    } = rows;
    if !missing.is_empty() {
        tracing::warn!(
            missing = missing.len(),
            present = present.len(),
            table = %table,
            "some asset files are not on disk (bag not materialized?); placed only the files present"
        );
    }

    let resolution = resolve_targets(
        dataset,
        table,
        &present,
        &options.targets,
        options.missing,
        options.enforce_vocabulary,
    )?;
    drop(present);

    // Collected into a Vec and sorted once: cheaper than a BTreeSet of paths, same result.
    let mut planned: Vec<Planned> = Vec::with_capacity(resolution.elements.len());
    let mut in_several_splits = Vec::new();
    // Consumed element by element: each one's values are dropped once its placements exist.
    let targets = resolution.targets;
    for element in resolution.elements {
        let mut labels = Vec::with_capacity(element.values.len());
        for (target, value) in targets.iter().zip(&element.values) {
            let label = match value {
                None => "unknown".to_string(),
                Some(v) => {
                    let text = match &options.target_transform {
                        Some(f) => f(v).map_err(|source| Error::TargetTransform {
                            target: target.name.clone(),
                            rid: element.rid.clone(),
                            source,
                        })?,
                        None => target.default_label(v).ok_or_else(|| Error::NoLabel {
                            target: target.name.clone(),
                            rid: element.rid.clone(),
                        })?,
                    };
                    sanitize(&text, &element.rid, LabelKind::Label)?
                }
            };
            labels.push(label);
        }
        let Some(src) = sources.remove(&element.rid) else {
            continue;
        };
        let Some(file_name) = src.file_name() else {
            return Err(Error::Io {
                path: src.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "asset path has no file name",
                ),
            });
        };
        let owners = walk.owners.remove(&element.rid).unwrap_or_default();
        let splits: HashSet<&Vec<String>> = owners.iter().map(|&o| &walk.type_paths[o]).collect();
        if splits.len() > 1 {
            in_several_splits.push(element.rid.clone());
        }
        for owner in owners {
            let mut rel: PathBuf = walk.type_paths[owner].iter().collect();
            rel.extend(&labels);
            rel.push(file_name);
            planned.push(Planned {
                rel,
                rid: element.rid.clone(),
                src: src.clone(),
            });
        }
    }
    planned.sort_unstable();
    planned.dedup();
    let placements = resolve_collisions(planned);
    debug_assert!(placements.iter().all(|p| is_confined(&p.rel)));
    missing.sort_by(|a, b| a.rid.cmp(&b.rid));
    in_several_splits.sort_unstable();
    if !in_several_splits.is_empty() {
        tracing::warn!(
            assets = in_several_splits.len(),
            first = %in_several_splits[0],
            "{} asset(s) are placed in more than one split (e.g. training and testing): a model \
             evaluated on one split has seen them in another",
            in_several_splits.len()
        );
    }
    Ok(Plan {
        placements,
        missing,
        in_several_splits,
    })
}

/// Two different assets on one path: the smallest RID keeps the name, the others get
/// `<stem>_<RID><ext>` (then `_2`, `_3`… if even that is taken). Input sorted by (rel, rid).
pub(crate) fn resolve_collisions(sorted: Vec<Planned>) -> Vec<Planned> {
    // Sorted and deduplicated already: without a shared path there is nothing to rename, and
    // no set of every path to build.
    if !sorted.windows(2).any(|w| w[0].rel == w[1].rel) {
        return sorted;
    }
    let mut taken: HashSet<PathBuf> = sorted.iter().map(|p| p.rel.clone()).collect();
    let mut out = Vec::with_capacity(sorted.len());
    let mut previous: Option<PathBuf> = None;
    for mut p in sorted {
        if previous.as_ref() == Some(&p.rel) {
            let original = p.rel.clone();
            let mut n = 1;
            let renamed = loop {
                let candidate = with_rid_suffix(&original, &p.rid, n);
                if !taken.contains(&candidate) {
                    break candidate;
                }
                n += 1;
            };
            tracing::info!(rid = %p.rid, from = %original.display(), to = %renamed.display(), "file name collision; renamed");
            taken.insert(renamed.clone());
            p.rel = renamed;
        } else {
            previous = Some(p.rel.clone());
        }
        out.push(p);
    }
    out.sort();
    out
}

/// `dir/<stem>_<RID><ext>`; `n > 1` adds `_<n>` after the RID.
fn with_rid_suffix(rel: &Path, rid: &Rid, n: usize) -> PathBuf {
    let stem = rel.file_stem().map(OsString::from).unwrap_or_default();
    let mut name = stem;
    name.push("_");
    name.push(rid.as_str());
    if n > 1 {
        name.push(format!("_{n}"));
    }
    if let Some(ext) = rel.extension() {
        name.push(".");
        name.push(ext);
    }
    rel.with_file_name(name)
}

/// Whether a relative path stays inside its base (only normal components).
pub(crate) fn is_confined(rel: &Path) -> bool {
    rel.components().all(|c| matches!(c, Component::Normal(_))) && rel.components().next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(rel: &str, rid: &str) -> Planned {
        Planned {
            rel: PathBuf::from(rel),
            rid: Rid::new(rid),
            src: PathBuf::from(format!("/bag/{rid}")),
        }
    }

    #[test]
    fn collision_keeps_the_smallest_rid_and_renames_the_rest_with_their_rid() {
        let got = resolve_collisions(vec![
            p("training/Severe/a.jpg", "1-I001"),
            p("training/Severe/a.jpg", "1-I007"),
            p("training/Severe/a.jpg", "1-I009"),
            p("training/Severe/b", "1-I002"),
            p("training/Severe/b", "1-I003"),
        ]);
        let rels: Vec<(String, String)> = got
            .iter()
            .map(|p| (p.rel.display().to_string(), p.rid.to_string()))
            .collect();
        assert_eq!(
            rels,
            [
                ("training/Severe/a.jpg", "1-I001"),
                ("training/Severe/a_1-I007.jpg", "1-I007"),
                ("training/Severe/a_1-I009.jpg", "1-I009"),
                ("training/Severe/b", "1-I002"),
                ("training/Severe/b_1-I003", "1-I003"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn a_renamed_file_never_takes_another_assets_plain_name() {
        // I001's plain name is literally what I002 would be renamed to.
        let mut input = vec![
            p("x/a_1-I002.jpg", "1-I001"),
            p("x/a.jpg", "1-I000"),
            p("x/a.jpg", "1-I002"),
        ];
        input.sort();
        let got = resolve_collisions(input);
        let rels: Vec<String> = got.iter().map(|p| p.rel.display().to_string()).collect();
        assert_eq!(rels, ["x/a.jpg", "x/a_1-I002.jpg", "x/a_1-I002_2.jpg"]);
        assert_eq!(got[2].rid.as_str(), "1-I002");
    }

    #[test]
    fn confinement_rejects_parent_and_absolute_components() {
        assert!(is_confined(Path::new("training/Severe/a.jpg")));
        assert!(!is_confined(Path::new("../a.jpg")));
        assert!(!is_confined(Path::new("/etc/passwd")));
        assert!(!is_confined(Path::new("")));
    }
}
