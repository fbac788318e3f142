//! Locating asset files: fetch.txt first, then the layouts.
//!
//! Every candidate path goes through the bag boundary ([`BagRoot`]): a `Filename` or fetch
//! path that escapes lexically is an error, and a file reached through a symbolic link that
//! leads out of the bag counts as missing, with a warning naming it. `asset_path`, the
//! `DatasetLike` impl (restructure, the loaders, both adapters), `missing_assets` and
//! `is_materialized` all go through [`DatasetBag::locate_asset`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use deriva_bag_features::{Rid, Row, TableName};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use super::DatasetBag;
use crate::bagit::paths::{BagRoot, InBag};
use crate::Result;

/// An asset row whose file is not on disk (the bag is not materialized, or not fully).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingAsset {
    /// The asset table.
    pub table: TableName,
    /// The asset row's RID.
    pub rid: Rid,
    /// Bag-relative path where the file belongs, e.g. `data/asset/1-I002/Image/retina 002.jpg`.
    pub path: String,
}

/// Where an asset row's file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Located {
    /// On disk at this absolute path.
    Present(PathBuf),
    /// Not on disk; it belongs at this bag-relative path.
    Missing(String),
    /// The row names no file (no URL and no Filename).
    NoFile,
}

/// The path part of a URL (`https://host/hatrac/x` → `/hatrac/x`); other text as is.
fn url_path(url: &str) -> &str {
    match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => url,
    }
}

fn decoded(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The asset candidates of one row, checked through the bag boundary.
struct FileInside<'a> {
    bag_root: &'a BagRoot,
    /// Candidates already found to link out of the bag (warned about once per row).
    escaping: Vec<String>,
}

impl<'a> FileInside<'a> {
    fn new(bag_root: &'a BagRoot) -> Self {
        FileInside {
            bag_root,
            escaping: Vec::new(),
        }
    }

    /// The file at bag-relative `rel` when it is on disk inside the bag. A symbolic link out
    /// of the bag is never followed: the file counts as absent, with a warning naming it.
    fn file(&mut self, rel: &str, source: &Path) -> Result<Option<PathBuf>> {
        Ok(match self.bag_root.resolve(rel, source)? {
            InBag::Inside(p) if p.is_file() => Some(p),
            InBag::Outside { target, .. } => {
                if !self.escaping.iter().any(|e| e == rel) {
                    tracing::warn!(
                        path = rel,
                        target = %target.display(),
                        "asset file is a symbolic link that leads outside the bag; not followed, counted as missing"
                    );
                    self.escaping.push(rel.to_string());
                }
                None
            }
            _ => None,
        })
    }
}

impl DatasetBag {
    fn fetch_map(&self) -> Result<&HashMap<String, usize>> {
        if let Some(map) = self.shared.fetch_map.get() {
            return Ok(map);
        }
        let fetch = &self.shared.bagit()?.fetch;
        Ok(self.shared.fetch_map.get_or_init(|| {
            let mut map = HashMap::new();
            for (i, entry) in fetch.iter().enumerate() {
                let path = url_path(&entry.url);
                for key in [entry.url.clone(), path.to_string(), decoded(path)] {
                    map.entry(key).or_insert(i);
                }
            }
            map
        }))
    }

    /// Locates the file of one asset row of `table`.
    pub(crate) fn locate_asset(&self, table: &TableName, row: &Row) -> Result<Located> {
        let root = &self.shared.path;
        let mut inside = FileInside::new(&self.shared.bag_root);
        let url = row.text("URL");
        let mut expected: Option<String> = None;
        if let Some(url) = url {
            let map = self.fetch_map()?;
            let hit = map
                .get(url)
                .or_else(|| map.get(url_path(url)))
                .or_else(|| map.get(&decoded(url_path(url))));
            if let Some(&i) = hit {
                let entry = &self.shared.bagit()?.fetch[i];
                if let Some(abs) = inside.file(&entry.path, &root.join("fetch.txt"))? {
                    return Ok(Located::Present(abs));
                }
                expected = Some(entry.path.clone());
            }
        }
        let rid = row.text("RID").unwrap_or_default();
        let filename = match row.text("Filename") {
            Some(f) => Some(f.to_string()),
            // The export engine names a file without Filename after the last URL segment,
            // without its `:version` suffix.
            None => url.and_then(|u| {
                let last = url_path(u).rsplit('/').next()?;
                let last = last.split(':').next()?;
                (!last.is_empty()).then(|| decoded(last))
            }),
        };
        let Some(filename) = filename else {
            return Ok(match expected {
                Some(p) => Located::Missing(p),
                None => Located::NoFile,
            });
        };
        let t = &table.table;
        let source = PathBuf::from(format!("{table} row {rid} column Filename"));
        let base = filename.rsplit('/').next().unwrap_or(&filename).to_string();
        let candidates = [
            format!("data/asset/{rid}/{t}/{filename}"),
            format!("data/asset/{rid}/{t}/{base}"),
            format!("data/asset/{t}/{rid}/{filename}"),
            format!("data/asset/{t}/{filename}"),
        ];
        for rel in &candidates {
            // Every candidate must stay inside the bag; an escaping Filename is an error.
            if let Some(abs) = inside.file(rel, &source)? {
                return Ok(Located::Present(abs));
            }
        }
        Ok(Located::Missing(
            expected.unwrap_or_else(|| candidates[0].clone()),
        ))
    }

    /// The absolute path of the file of asset row `rid` of `table`, when it is on disk.
    ///
    /// `Ok(None)` when the row exists but its file is not materialized (or it names no file).
    /// Errors: unknown table or RID, or a `Filename`/fetch path that escapes the bag.
    pub fn asset_path(&self, table: &str, rid: &Rid) -> Result<Option<PathBuf>> {
        let table = self.resolve_table(table)?;
        // The SQL name of the RID column comes from the layout, like every other name.
        let rid_sql = self.index().col(&table, "RID").ok_or_else(|| {
            deriva_bag_features::Error::Invalid(format!("table {table} has no RID column"))
        })?;
        let rows =
            self.index()
                .select_rows(&table, &format!("WHERE {rid_sql} = ?1"), [rid.as_str()])?;
        let Some(row) = rows.into_iter().next() else {
            return Err(deriva_bag_features::Error::Invalid(format!(
                "table {table} has no row with RID {rid} in this bag"
            ))
            .into());
        };
        Ok(match self.locate_asset(&table, &row)? {
            Located::Present(p) => Some(p),
            _ => None,
        })
    }

    /// Asset tables of the model (by structure: a `URL`, `Filename`, `Length`, `MD5` column set), sorted.
    pub fn asset_tables(&self) -> Vec<TableName> {
        let mut out: Vec<TableName> = self
            .shared
            .model
            .tables()
            .filter(|t| t.is_asset())
            .map(|t| t.name.clone())
            .collect();
        out.sort();
        out
    }

    /// Every asset row in the bag whose file is not on disk, sorted by table then RID.
    pub fn missing_assets(&self) -> Result<Vec<MissingAsset>> {
        let mut out = Vec::new();
        for table in self.asset_tables() {
            for row in self.table_rows_of(&table)? {
                if let Located::Missing(path) = self.locate_asset(&table, &row)? {
                    out.push(MissingAsset {
                        table: table.clone(),
                        rid: row.rid().unwrap_or_else(|| Rid::new("")),
                        path,
                    });
                }
            }
        }
        Ok(out)
    }

    /// True when every fetch.txt file and every asset row's file is on disk inside the bag
    /// (a symbolic link out of the bag counts as missing).
    pub fn is_materialized(&self) -> bool {
        // A fetch.txt that does not parse cannot have been materialized.
        let fetched = self
            .shared
            .bagit()
            .is_ok_and(|bagit| bagit.fetched_files_present());
        fetched && self.missing_assets().is_ok_and(|m| m.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_path_strips_scheme_and_host() {
        assert_eq!(
            url_path("https://example.org/hatrac/Image/a.jpg:1"),
            "/hatrac/Image/a.jpg:1"
        );
        assert_eq!(url_path("/hatrac/Image/a.jpg"), "/hatrac/Image/a.jpg");
        assert_eq!(url_path("https://example.org"), "/");
    }
}
