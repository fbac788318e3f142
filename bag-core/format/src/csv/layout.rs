//! Which table a `data/**/*.csv` file holds, for every layout bags use:
//!
//! - Format B: `data/<schema>/<table>.csv`;
//! - Format A: `data/<schema>/<T1>_<T2>…/<table>.csv` (path-scoped slices of one table);
//! - legacy / Chaise: `data/<T1>/<T2>/…/<table>.csv` and `data/<Vocab>.csv`, no schema directory.
//!
//! A file whose first directory is a schema of the model is resolved in that schema only
//! (so `deriva-ml/File.csv` and `demo/File.csv` stay apart, unlike Python's stem keying).
//! Any other file is resolved by its bare stem with the reference's precedence: domain
//! schemas in sorted order, then `deriva-ml`, then the system schemas (`WWW`, `public`).
//! A stem that names no table is ignored with a warning.
//! Files under `data/asset/` are asset payload, never tables.

use std::fs;
use std::path::{Path, PathBuf};

use deriva_bag_features::model::{is_system_schema, ML_SCHEMA};
use deriva_bag_features::{CatalogModel, TableName};

use crate::{Error, Result};

/// One table CSV found in a bag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Bag-relative path with `/` separators, e.g. `data/demo/Image.csv`.
    pub relative: String,
    /// The table its rows belong to.
    pub table: TableName,
    /// File size in bytes (for progress).
    pub size: u64,
}

/// The table a bag-relative CSV path (`data/…/<stem>.csv`) holds, or `None` when it holds
/// none (not a CSV, under `data/asset/`, or a stem matching no table).
///
/// ```
/// use deriva_bag_format::csv::table_for_csv;
/// use deriva_bag_features::{CatalogModel, TableName};
/// let json = br#"{"schemas":{
///   "demo":{"tables":{"Image":{"column_definitions":[]}}},
///   "deriva-ml":{"tables":{"Dataset":{"column_definitions":[]}}}}}"#;
/// let model = CatalogModel::from_json(json).unwrap();
/// let image = Some(TableName::new("demo", "Image"));
/// assert_eq!(table_for_csv(&model, "data/demo/Image.csv"), image);                 // Format B
/// assert_eq!(table_for_csv(&model, "data/demo/Dataset_Image/Image.csv"), image);   // Format A
/// assert_eq!(table_for_csv(&model, "data/Dataset/Dataset_Image/Image.csv"), image); // legacy
/// assert_eq!(table_for_csv(&model, "data/asset/1-X/Image/Image.csv"), None);
/// ```
pub fn table_for_csv(model: &CatalogModel, relative: &str) -> Option<TableName> {
    let rest = relative.strip_prefix("data/")?;
    let stem = rest.strip_suffix(".csv")?;
    let mut parts: Vec<&str> = stem.split('/').collect();
    if parts.first() == Some(&"asset") || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let table = parts.pop()?;
    if let Some(first) = parts.first() {
        if model.schemas.contains_key(*first) {
            // Under a schema directory: that schema only (Format A/B).
            let name = TableName::new(*first, table);
            return model.table(&name).map(|_| name);
        }
    }
    resolve_bare(model, table)
}

/// Bare-name resolution with the reference precedence: sorted domain schemas, `deriva-ml`,
/// then system schemas (sorted).
pub fn resolve_bare(model: &CatalogModel, table: &str) -> Option<TableName> {
    let mut domain: Vec<&str> = model.domain_schemas().map(|s| s.name.as_str()).collect();
    domain.sort_unstable();
    let mut system: Vec<&str> = model
        .schemas
        .keys()
        .map(String::as_str)
        .filter(|s| is_system_schema(s))
        .collect();
    system.sort_unstable();
    domain
        .into_iter()
        .chain(std::iter::once(ML_SCHEMA))
        .chain(system)
        .map(|schema| TableName::new(schema, table))
        .find(|name| model.table(name).is_some())
}

/// Every table CSV under `<root>/data/`, sorted by relative path (the union order: the first
/// row per RID wins). Symbolic links are not followed: nothing outside the bag is read.
pub fn discover(root: &Path, model: &CatalogModel) -> Result<Vec<CsvFile>> {
    scan(root, model).map(|s| s.files)
}

/// What [`scan`] found under `data/`.
#[derive(Debug)]
#[doc(hidden)]
pub struct Scan {
    /// The table CSVs, as [`discover`] returns them.
    pub files: Vec<CsvFile>,
    /// Every directory walked (`data/` and below, not `data/asset/`), by bag-relative path,
    /// with its metadata taken before it was listed: a file added or removed since changes
    /// the directory's times.
    pub dirs: Vec<(String, fs::Metadata)>,
}

/// [`discover`], also returning the directories it walked.
#[doc(hidden)]
pub fn scan(root: &Path, model: &CatalogModel) -> Result<Scan> {
    let data = root.join("data");
    let mut out = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = vec![(data.clone(), "data".to_string())];
    while let Some((dir, dir_rel)) = stack.pop() {
        let not_a_bag = || Error::NotABag {
            path: root.to_path_buf(),
            detail: "no data/ directory".into(),
        };
        let dir_meta = match fs::metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir == data => {
                return Err(not_a_bag())
            }
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir == data => {
                return Err(not_a_bag())
            }
            Err(e) => return Err(Error::io(&dir, e)),
        };
        dirs.push((dir_rel, dir_meta));
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(|e| Error::io(&path, e))?;
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let Some(relative) = rel
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<Vec<_>>>()
                .map(|v| v.join("/"))
            else {
                tracing::warn!(path = %path.display(), "skipping a non-UTF-8 file name under data/");
                continue;
            };
            if meta.file_type().is_symlink() {
                tracing::warn!(path = %relative, "skipping a symbolic link under data/");
                continue;
            }
            if meta.is_dir() {
                if relative != "data/asset" {
                    stack.push((path, relative));
                }
                continue;
            }
            if !relative.ends_with(".csv") {
                continue;
            }
            match table_for_csv(model, &relative) {
                Some(table) => out.push(CsvFile {
                    path,
                    relative,
                    table,
                    size: meta.len(),
                }),
                None => {
                    tracing::warn!(path = %relative, "CSV file matches no table of data/schema.json; ignored")
                }
            }
        }
    }
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Scan { files: out, dirs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> CatalogModel {
        let json = br#"{"schemas":{
          "zeta":{"tables":{"File":{"column_definitions":[]}}},
          "demo":{"tables":{"Image":{"column_definitions":[]},"File":{"column_definitions":[]},
                            "Glaucoma":{"column_definitions":[]}}},
          "deriva-ml":{"tables":{"Dataset":{"column_definitions":[]},"File":{"column_definitions":[]},
                                 "Dataset_Type":{"column_definitions":[]}}},
          "WWW":{"tables":{"File":{"column_definitions":[]},"Page":{"column_definitions":[]}}}}}"#;
        CatalogModel::from_json(json).unwrap()
    }

    #[test]
    fn format_b_resolves_within_the_schema_directory() {
        let m = model();
        assert_eq!(
            table_for_csv(&m, "data/deriva-ml/File.csv"),
            Some(TableName::new("deriva-ml", "File"))
        );
        assert_eq!(
            table_for_csv(&m, "data/WWW/File.csv"),
            Some(TableName::new("WWW", "File"))
        );
        // A schema directory never falls back to another schema.
        assert_eq!(table_for_csv(&m, "data/demo/Dataset.csv"), None);
    }

    #[test]
    fn format_a_path_directories_are_ignored_after_the_schema() {
        let m = model();
        assert_eq!(
            table_for_csv(&m, "data/deriva-ml/Dataset_Dataset_Type/Dataset_Type.csv"),
            Some(TableName::new("deriva-ml", "Dataset_Type"))
        );
    }

    #[test]
    fn legacy_bare_names_prefer_sorted_domain_schemas_then_ml_then_www() {
        let m = model();
        assert_eq!(
            table_for_csv(&m, "data/Dataset/Dataset_File/File.csv"),
            Some(TableName::new("demo", "File"))
        );
        assert_eq!(
            table_for_csv(&m, "data/Dataset_Type.csv"),
            Some(TableName::new("deriva-ml", "Dataset_Type"))
        );
        assert_eq!(
            table_for_csv(&m, "data/Page.csv"),
            Some(TableName::new("WWW", "Page"))
        );
        assert_eq!(
            table_for_csv(&m, "data/Glaucoma.csv"),
            Some(TableName::new("demo", "Glaucoma"))
        );
    }

    #[test]
    fn unknown_stems_and_asset_files_are_not_tables() {
        let m = model();
        assert_eq!(table_for_csv(&m, "data/demo/Nope.csv"), None);
        assert_eq!(table_for_csv(&m, "data/Nope.csv"), None);
        assert_eq!(table_for_csv(&m, "data/asset/1-I001/Image/Image.csv"), None);
        assert_eq!(table_for_csv(&m, "data/asset/Image.csv"), None);
        assert_eq!(table_for_csv(&m, "other/demo/Image.csv"), None);
    }

    #[test]
    fn discover_walks_data_sorted_and_skips_assets() {
        let m = model();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in [
            "data/demo/Image.csv",
            "data/demo/Dataset_Image/Image.csv",
            "data/asset/1-I001/Image/Image.csv",
            "data/Nope.csv",
            "data/schema.json",
        ] {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "RID\n").unwrap();
        }
        let files = discover(root, &m).unwrap();
        let rels: Vec<&str> = files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(
            rels,
            ["data/demo/Dataset_Image/Image.csv", "data/demo/Image.csv"]
        );
        assert!(files
            .iter()
            .all(|f| f.table == TableName::new("demo", "Image")));
    }
}
