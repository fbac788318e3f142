//! Reachability: which rows of a table belong to a dataset through its members and FK paths,
//! as SQL over the index.
//!
//! The paths come from the model alone ([`deriva_bag_features::membership::paths_to`], the
//! reference walker, shared with the live catalog dataset); this module turns each into SQL.
//! The rows of the target are the union over every path ending at it, with `Dataset`
//! restricted to the dataset and its descendants. Unlike the reference, the result is
//! deduplicated and sorted by RID.

pub(crate) use deriva_bag_features::membership::{
    dataset_table, is_dataset_association, paths_to, pure_binary_association, SKIP_TABLES,
};
use std::path::{Path, PathBuf};

use deriva_bag_features::{CatalogModel, TableName};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::build::part_path;
use super::query::{meta_value, Index};
use super::schema::TableLayout;
use crate::{cache, Error, Result};

/// Version of the reachable-set files; part of their names, so a change makes new ones.
const REACH_FORMAT: &str = "1";

/// The schema name a materialized reachable set is attached under while a query reads it.
const REACH_SCHEMA: &str = "reach";

/// The RIDs of one table that one dataset (with its descendants) reaches, as a query reads
/// them.
///
/// The set is materialized once per index in the cache ([`Index::reachable_set`]): a
/// SQLite file beside the index, `<key>.reach-<digest>.sqlite`, whose one table holds the
/// RIDs unique and sorted. The bag is read-only, so the set is valid for the life of the
/// index it was computed from (the digest covers the index's build time); a rebuilt index
/// removes the old sets. Later queries, in this process or another, read the set instead
/// of walking the FK paths again, and memory stays flat at any size: the set lives in
/// SQLite's pages, not in the process. Where the cache cannot be written the walk runs
/// inline in every query.
#[derive(Debug, Clone)]
pub(crate) enum ReachableSet {
    /// Materialized at this path.
    File(PathBuf),
    /// Not materialized: the walk itself, a self-contained `SELECT` ([`reachable_rids_sql`]).
    Inline(String),
}

impl ReachableSet {
    /// `SELECT "RID" …` for `… IN (<this>)`; a [`File`](Self::File) set needs
    /// [`attach`](Self::attach) on the connection first.
    pub(crate) fn sql(&self) -> String {
        match self {
            ReachableSet::File(_) => format!("SELECT \"RID\" FROM {REACH_SCHEMA}.{REACH_TABLE}"),
            ReachableSet::Inline(sql) => sql.clone(),
        }
    }

    /// Attaches a materialized set to `conn` (nothing for an inline one).
    pub(crate) fn attach(&self, conn: &Connection) -> rusqlite::Result<()> {
        if let ReachableSet::File(path) = self {
            let name = path
                .to_str()
                .ok_or_else(|| rusqlite::Error::InvalidPath(path.clone()))?;
            conn.execute(&format!("ATTACH DATABASE ?1 AS {REACH_SCHEMA}"), [name])?;
        }
        Ok(())
    }

    /// Detaches what [`attach`](Self::attach) attached, so the connection can take the
    /// next set.
    pub(crate) fn detach(&self, conn: &Connection) -> rusqlite::Result<()> {
        if let ReachableSet::File(_) = self {
            conn.execute(&format!("DETACH DATABASE {REACH_SCHEMA}"), [])?;
        }
        Ok(())
    }
}

/// The table of a reachable-set file.
const REACH_TABLE: &str = "reachable_rids";

/// `<key>.reach-<digest>.sqlite` beside the index `main`, for the RIDs of `target` reached
/// from `dataset_rids` in the index built at `build_time`. Its lock is the index key's
/// ([`cache::lock_for`] takes the name up to the first dot).
fn reach_path(
    main: &Path,
    build_time: &str,
    target: &TableName,
    dataset_rids: &[String],
) -> PathBuf {
    let mut h = Sha256::new();
    for part in [REACH_FORMAT, build_time, &target.schema, &target.table]
        .into_iter()
        .chain(dataset_rids.iter().map(String::as_str))
    {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = hex::encode(&h.finalize()[..16]);
    main.with_file_name(format!("{}.reach-{digest}.sqlite", index_key(main)))
}

/// The cache key of the index `main`: its file name up to the first dot.
fn index_key(main: &Path) -> String {
    let name = main
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.split('.').next().unwrap_or_default().to_string()
}

/// The fetch.txt lookup file of the index `main` built at `build_time` (see
/// `DatasetBag::locate_asset`): beside the index, named after its build like a reachable set.
pub(crate) fn fetch_lookup_path(main: &Path, build_time: &str) -> PathBuf {
    let mut h = Sha256::new();
    for part in [FETCH_FORMAT, build_time] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = hex::encode(&h.finalize()[..16]);
    main.with_file_name(format!("{}.fetch-{digest}.sqlite", index_key(main)))
}

/// Version of the fetch lookup file's layout.
const FETCH_FORMAT: &str = "fetch-1";

/// Removes the reachable-set and fetch lookup files of the index `main` (when it is
/// rebuilt: they describe the old one). Best effort: a stale one is never read anyway, its
/// name holds the old build time.
pub(crate) fn remove_reachable_sets(main: &Path) {
    let key = index_key(main);
    let prefixes = [format!("{key}.reach-"), format!("{key}.fetch-")];
    let Some(Ok(entries)) = main.parent().map(std::fs::read_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| name.starts_with(p)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Index {
    /// The RIDs of `target` reachable from the datasets `dataset_rids` (already including
    /// descendants): materialized in the cache on first need (see [`ReachableSet`]),
    /// inline where the cache cannot take it.
    pub(crate) fn reachable_set(
        &self,
        model: &CatalogModel,
        target: &TableName,
        dataset_rids: &[String],
    ) -> Result<ReachableSet> {
        let path = reach_path(self.path(), self.build_time(), target, dataset_rids);
        if path.is_file() {
            return Ok(ReachableSet::File(path));
        }
        let sql = reachable_rids_sql(model, self, target, dataset_rids);
        match materialize(self, &path, &sql) {
            Ok(()) => Ok(ReachableSet::File(path)),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e,
                    "cannot keep the reachable set in the cache; computing it in each query");
                Ok(ReachableSet::Inline(sql))
            }
        }
    }
}

/// Writes the RIDs `sql` selects from the index `main` into a new reachable-set file at
/// `path`: built in a private temporary under the index key's lock and renamed into place.
fn materialize(index: &Index, path: &Path, sql: &str) -> Result<()> {
    let _lock = cache::lock_for(path)?;
    if path.is_file() {
        return Ok(());
    }
    let temp = cache::temp_sibling(path);
    let built = build_set(index, &temp, sql).and_then(|()| cache::publish(&temp, path));
    if built.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    built
}

fn build_set(index: &Index, temp: &Path, sql: &str) -> Result<()> {
    let err = |source| Error::Index {
        path: temp.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        temp,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    // A temporary: a crash leaves a leftover the next open removes, never a published set.
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(err)?;
    // The index and its parts, attached: the walk's tables resolve by their unqualified
    // names, as on the index's own connections.
    for n in 0..index.parts() {
        let part = part_path(index.path(), n);
        let name = part
            .to_str()
            .ok_or_else(|| err(rusqlite::Error::InvalidPath(part.clone())))?;
        conn.execute(&format!("ATTACH DATABASE ?1 AS \"index{n}\""), [name])
            .map_err(err)?;
    }
    // The files at the index's path must still be the build this process opened (a bag
    // changed since is rebuilt there): a set from another build would carry this one's name.
    if meta_value(&conn, "build_time").map_err(err)? != index.build_time() {
        return Err(Error::io(
            index.path(),
            std::io::Error::other("the index was rebuilt since this process opened it"),
        ));
    }
    // Sorted before it is inserted: the set's B-tree then grows at its end. In the walk's
    // order (a path through Subject gives images by subject) each insert probed the whole
    // tree, which outgrows SQLite's page cache at 2 M RIDs: a read and a write of a page per
    // RID, more than half of the build's time.
    conn.execute_batch(&format!(
        "BEGIN; CREATE TABLE main.{REACH_TABLE} (\"RID\" TEXT PRIMARY KEY) WITHOUT ROWID; \
         INSERT OR IGNORE INTO main.{REACH_TABLE} SELECT * FROM ({sql}) ORDER BY 1; COMMIT;"
    ))
    .map_err(err)?;
    conn.close().map_err(|(_, e)| err(e))
}

/// `alias.col` or `(alias.a, alias.b, …)` with the layout's identifiers; `None` when the
/// table lacks one of the columns.
fn column_list(alias: &str, layout: &TableLayout, cols: &[String]) -> Option<String> {
    let list = cols
        .iter()
        .map(|c| layout.col(c).map(|sql| format!("{alias}.{sql}")))
        .collect::<Option<Vec<String>>>()?;
    Some(if list.len() == 1 {
        list[0].clone()
    } else {
        format!("({})", list.join(", "))
    })
}

/// SQL literal for a text value.
pub(crate) fn sql_text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `SELECT "RID" …` giving the RIDs of `target` reachable from the datasets `dataset_rids`
/// (already including descendants). Self-contained (the RIDs are inlined as literals), so it
/// can be embedded as `… IN (<fragment>)`. A RID reached along two paths is listed twice
/// (`UNION ALL`): `IN` needs no de-duplication, and a second temporary B-tree for it cost
/// about a sixth of a feature-values read.
pub(crate) fn reachable_rids_sql(
    model: &CatalogModel,
    index: &Index,
    target: &TableName,
    dataset_rids: &[String],
) -> String {
    let ds_list = if dataset_rids.is_empty() {
        "SELECT NULL WHERE 0".to_string()
    } else {
        format!(
            "VALUES {}",
            dataset_rids
                .iter()
                .map(|r| format!("({})", sql_text(r)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut selects = Vec::new();
    for path in paths_to(model, target) {
        if let Some(sql) = path_sql(model, index, &path, &ds_list) {
            selects.push(sql);
        }
    }
    if selects.is_empty() {
        return "SELECT NULL WHERE 0".to_string();
    }
    selects.join(" UNION ALL ")
}

/// RIDs of the last table of `path` reached along it.
///
/// Each level is a condition on its table's rows, with the alias `t<level>`: level 0 is
/// `Dataset` restricted to `ds_list`, and a row of the next level qualifies when its FK
/// columns are among those of the rows that qualified one level up (or theirs among its
/// own). A level's rows are named by their condition, not by a list of their RIDs
/// selected again by key: the row is the RID, so the two are the same rows, and at 2 M
/// images that list was a temporary B-tree of 1.8 M keys and as many key lookups per level.
fn path_sql(
    model: &CatalogModel,
    index: &Index,
    path: &[TableName],
    ds_list: &str,
) -> Option<String> {
    let first = index.layout(path.first()?).ok()?;
    let mut cond = format!("t0.{} IN ({ds_list})", first.col("RID")?);
    for (level, pair) in path.windows(2).enumerate() {
        let (from, to) = (&pair[0], &pair[1]);
        let from_t = model.table(from)?;
        let to_t = model.table(to)?;
        let (from_l, to_l) = (index.layout(from).ok()?, index.layout(to).ok()?);
        let (f, t) = (format!("t{level}"), format!("t{}", level + 1));
        let mut conds = Vec::new();
        // from.fk -> to.ref
        for fk in from_t
            .foreign_keys
            .iter()
            .filter(|fk| &fk.referenced_table == to)
        {
            conds.push(format!(
                "{} IN (SELECT {} FROM {} AS {f} WHERE {cond})",
                column_list(&t, to_l, &fk.referenced_columns)?,
                column_list(&f, from_l, &fk.columns)?,
                from_l.sql_name,
            ));
        }
        // to.fk -> from.ref
        for fk in to_t
            .foreign_keys
            .iter()
            .filter(|fk| &fk.referenced_table == from)
        {
            conds.push(format!(
                "{} IN (SELECT {} FROM {} AS {f} WHERE {cond})",
                column_list(&t, to_l, &fk.columns)?,
                column_list(&f, from_l, &fk.referenced_columns)?,
                from_l.sql_name,
            ));
        }
        if conds.is_empty() {
            return None;
        }
        cond = conds.join(" OR ");
    }
    let last = index.layout(path.last()?).ok()?;
    let alias = format!("t{}", path.len() - 1);
    Some(format!(
        "SELECT {alias}.{} FROM {} AS {alias} WHERE {cond}",
        last.col("RID")?,
        last.sql_name
    ))
}

#[cfg(all(test, feature = "fixtures"))]
mod tests {
    use super::*;

    fn fixture_model() -> CatalogModel {
        let tmp = tempfile::tempdir().unwrap();
        let bag = crate::fixtures::small_bag(tmp.path()).unwrap();
        let bytes = std::fs::read(bag.path.join("data/schema.json")).unwrap();
        CatalogModel::from_json(&bytes).unwrap()
    }

    fn names(paths: &[Vec<TableName>]) -> Vec<String> {
        paths
            .iter()
            .map(|p| {
                p.iter()
                    .map(|t| t.table.as_str())
                    .collect::<Vec<_>>()
                    .join(">")
            })
            .collect()
    }

    #[test]
    fn image_is_reached_through_its_membership_and_through_subjects() {
        let model = fixture_model();
        let paths = paths_to(&model, &TableName::new("demo", "Image"));
        assert_eq!(
            names(&paths),
            [
                "Dataset>Dataset_Image>Image",
                "Dataset>Dataset_Subject>Subject>Image"
            ]
        );
    }

    #[test]
    fn walker_skips_nesting_executions_and_never_leaves_a_vocabulary() {
        let model = fixture_model();
        let all: Vec<TableName> = model.tables().map(|t| t.name.clone()).collect();
        for target in &all {
            for path in paths_to(&model, target) {
                let inner = &path[..path.len() - 1];
                assert!(
                    !path.iter().any(|t| SKIP_TABLES.contains(&t.table.as_str())),
                    "{path:?}"
                );
                assert!(
                    inner
                        .iter()
                        .all(|t| !model.table(t).unwrap().is_vocabulary()),
                    "{path:?}"
                );
                // A Dataset association is only ever entered straight from Dataset.
                for (i, t) in path.iter().enumerate().skip(2) {
                    assert!(
                        !is_dataset_association(model.table(t).unwrap()),
                        "{path:?} at {i}"
                    );
                }
            }
        }
        assert!(paths_to(&model, &TableName::new("deriva-ml", "Dataset_Dataset")).is_empty());
    }

    #[test]
    fn pure_binary_associations_are_found_by_structure() {
        let model = fixture_model();
        let t = |s: &str, n: &str| model.table(&TableName::new(s, n)).unwrap();
        assert!(is_dataset_association(t("demo", "Dataset_Image")));
        assert!(is_dataset_association(t("deriva-ml", "Dataset_Dataset")));
        // Three non-system columns: not pure.
        assert!(pure_binary_association(t("deriva-ml", "Dataset_Execution")).is_none());
        assert!(pure_binary_association(t("demo", "Image")).is_none());
    }

    /// The reachable-set files in the cache's index directory, sorted.
    fn set_files(cache: &Path) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(cache.join("index"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".reach-"))
            .collect();
        out.sort();
        out
    }

    fn open_in(bag: &Path, cache: &Path) -> crate::DatasetBag {
        let options = crate::OpenOptions {
            cache_dir: Some(cache.to_path_buf()),
            ..Default::default()
        };
        crate::DatasetBag::open_with(bag, &options).unwrap()
    }

    #[test]
    fn a_reachable_set_is_kept_in_the_cache_once_and_holds_what_the_walk_finds() {
        let tmp = tempfile::tempdir().unwrap();
        let generated = crate::fixtures::small_bag(tmp.path()).unwrap();
        let cache = tmp.path().join("cache");
        let bag = open_in(&generated.path, &cache);
        assert_eq!(set_files(&cache), Vec::<String>::new());

        let first = bag.feature_values("Image", "Glaucoma", None).unwrap();
        let files = set_files(&cache);
        assert_eq!(files.len(), 1, "{files:?}");
        let key = bag
            .index_path()
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(files[0].starts_with(&format!("{key}.reach-")), "{files:?}");
        let written = std::fs::metadata(cache.join("index").join(&files[0]))
            .unwrap()
            .modified()
            .unwrap();

        // Read again, in this process and from a fresh open: the same file, untouched.
        let again: Vec<_> = bag
            .feature_values_iter("Image", "Glaucoma", None)
            .unwrap()
            .collect::<crate::Result<_>>()
            .unwrap();
        assert_eq!(again, first);
        let reopened = open_in(&generated.path, &cache);
        assert_eq!(
            reopened.feature_values("Image", "Glaucoma", None).unwrap(),
            first
        );
        assert_eq!(set_files(&cache), files);
        let modified = std::fs::metadata(cache.join("index").join(&files[0]))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(modified, written);

        // The set holds exactly the walk's RIDs, unique and sorted.
        let image = TableName::new("demo", "Image");
        let rids = bag.dataset_and_descendants().unwrap();
        let set = bag
            .index()
            .reachable_set(bag.model(), &image, &rids)
            .unwrap();
        let ReachableSet::File(path) = &set else {
            panic!("not materialized: {set:?}")
        };
        assert_eq!(path.file_name().unwrap().to_string_lossy(), files[0]);
        let walk = reachable_rids_sql(bag.model(), bag.index(), &image, &rids);
        let from_walk = bag
            .index()
            .query_strings(&format!("SELECT DISTINCT * FROM ({walk}) ORDER BY 1"), [])
            .unwrap();
        let from_set = bag
            .index()
            .query_strings_reaching(Some(&set), &set.sql(), [])
            .unwrap();
        assert_eq!(from_set, from_walk);
        assert_eq!(from_set.len(), 6);

        // Another dataset reaches other rows: a set of its own.
        let training = bag.dataset(&"1-D001".into()).unwrap();
        let training_images = training.reachable_rows(&image).unwrap();
        let rids: Vec<&str> = training_images
            .iter()
            .filter_map(|r| r.text("RID"))
            .collect();
        assert_eq!(rids, ["1-I001", "1-I002", "1-I005"]);
        assert_eq!(set_files(&cache).len(), 2);
    }

    #[test]
    fn a_rebuilt_index_drops_the_reachable_sets_of_the_build_it_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let generated = crate::fixtures::small_bag(tmp.path()).unwrap();
        let cache = tmp.path().join("cache");
        let bag = open_in(&generated.path, &cache);
        let values = bag.feature_values("Image", "Glaucoma", None).unwrap();
        let old = set_files(&cache);
        assert_eq!(old.len(), 1);
        let main = bag.index_path().to_path_buf();
        drop(bag);

        // An index of another format version is rebuilt at the same path.
        let conn = Connection::open(&main).unwrap();
        conn.execute("UPDATE meta SET value = 'old' WHERE key = 'format'", [])
            .unwrap();
        drop(conn);
        let rebuilt = open_in(&generated.path, &cache);
        assert!(rebuilt.index_was_built());
        assert_eq!(set_files(&cache), Vec::<String>::new());
        assert_eq!(
            rebuilt.feature_values("Image", "Glaucoma", None).unwrap(),
            values
        );
        let new = set_files(&cache);
        assert_eq!(new.len(), 1);
        assert_ne!(new, old, "a new build's set has a name of its own");
    }

    /// The RIDs of `path`'s last table reached from `datasets`, following the path row by row
    /// in memory: the walk's meaning, written without SQL.
    fn follow(bag: &crate::DatasetBag, path: &[TableName], datasets: &[String]) -> Vec<String> {
        use std::collections::BTreeSet;
        let model = bag.model();
        let rows = |t: &TableName| bag.table_rows_of(t).unwrap();
        let key = |row: &deriva_bag_features::Row, cols: &[String]| -> Option<String> {
            cols.iter()
                .map(|c| {
                    row.get(c)
                        .filter(|v| !v.is_null())
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Option<Vec<_>>>()
                .map(|k| k.join("\u{1f}"))
        };
        let mut reached: Vec<deriva_bag_features::Row> = rows(&path[0])
            .into_iter()
            .filter(|r| {
                r.text("RID")
                    .is_some_and(|rid| datasets.iter().any(|d| d == rid))
            })
            .collect();
        for pair in path.windows(2) {
            let (from, to) = (&pair[0], &pair[1]);
            // (columns of `to`, columns of `from`) that must agree, one pair per FK.
            let mut links: Vec<(Vec<String>, Vec<String>)> = Vec::new();
            for fk in &model.table(from).unwrap().foreign_keys {
                if &fk.referenced_table == to {
                    links.push((fk.referenced_columns.clone(), fk.columns.clone()));
                }
            }
            for fk in &model.table(to).unwrap().foreign_keys {
                if &fk.referenced_table == from {
                    links.push((fk.columns.clone(), fk.referenced_columns.clone()));
                }
            }
            reached = rows(to)
                .into_iter()
                .filter(|t| {
                    links.iter().any(|(to_cols, from_cols)| {
                        let Some(k) = key(t, to_cols) else {
                            return false;
                        };
                        reached
                            .iter()
                            .any(|f| key(f, from_cols).as_ref() == Some(&k))
                    })
                })
                .collect();
        }
        let set: BTreeSet<String> = reached
            .iter()
            .filter_map(|r| r.text("RID").map(str::to_string))
            .collect();
        set.into_iter().collect()
    }

    #[test]
    fn the_walk_reaches_what_following_each_path_row_by_row_reaches() {
        let tmp = tempfile::tempdir().unwrap();
        let generated = crate::fixtures::small_bag(tmp.path()).unwrap();
        let bag = open_in(&generated.path, &tmp.path().join("cache"));
        let model = bag.model();
        let mut compared = 0;
        for rid in ["1-D000", "1-D001", "1-D002", "1-D003"] {
            let dataset = bag.dataset(&rid.into()).unwrap();
            let datasets = dataset.dataset_and_descendants().unwrap();
            for target in model.tables().map(|t| t.name.clone()) {
                let mut expected: Vec<String> = paths_to(model, &target)
                    .iter()
                    .flat_map(|path| follow(&bag, path, &datasets))
                    .collect();
                expected.sort();
                expected.dedup();
                let walk = reachable_rids_sql(model, bag.index(), &target, &datasets);
                let got = bag
                    .index()
                    .query_strings(&format!("SELECT DISTINCT * FROM ({walk}) ORDER BY 1"), [])
                    .unwrap();
                assert_eq!(got, expected, "{target} from {rid}");
                compared += got.len();
            }
        }
        // Not vacuous: the fixture's datasets reach rows of many tables.
        assert!(compared > 40, "{compared}");
    }

    #[test]
    fn rid_literals_are_quoted_safely() {
        assert_eq!(sql_text("1-D000"), "'1-D000'");
        assert_eq!(sql_text("a'b"), "'a''b'");
    }
}
