//! Locating asset files: fetch.txt first, then the layouts.
//!
//! Every candidate path goes through the bag boundary ([`BagRoot`]): a `Filename` or fetch
//! path that escapes lexically is an error, and a file reached through a symbolic link that
//! leads out of the bag counts as missing, with a warning naming it. `asset_path`, the
//! `DatasetLike` impl (restructure, the loaders, both adapters), `missing_assets` and
//! `is_materialized` all go through [`DatasetBag::locate_asset`]; many rows at once go
//! through [`DatasetBag::locate_assets`], which looks them up on several threads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use deriva_bag_features::{Rid, Row, TableName};
use percent_encoding::percent_decode_str;
use rayon::prelude::*;
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::DatasetBag;
use crate::bagit::paths::{BagRoot, InBag};
use crate::bagit::MEMO_SETTLE;
use crate::index::integrity::{write_record, FileStamp};
use crate::index::TableRows;
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
        Ok(match self.bag_root.resolve_file(rel, source)? {
            InBag::Inside(p) => Some(p),
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

/// Threads that look up asset files for [`DatasetBag::locate_assets`]. The work is mostly
/// waiting for directory and inode reads, not CPU, so there are more threads than cores:
/// each waiting thread keeps one more read queued at the disk. On a 200k-image bag with the
/// kernel's caches dropped, 32 threads looked the files up in 7.3 s against 11 s for 8
/// (64: 6.7 s); with warm caches the count made no difference.
pub(crate) const LOOKUP_THREADS: usize = 32;

/// Fewer rows than this are located on the calling thread.
const PARALLEL_FROM: usize = 64;

/// Rows read from the index and located at a time (memory stays bounded by this).
pub(crate) const LOCATE_BATCH: usize = 2048;

/// The threads of [`DatasetBag::locate_assets`], started on first use; `None` when the
/// system gives no threads (then rows are located on the calling thread).
fn lookup_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(LOOKUP_THREADS)
            .thread_name(|i| format!("asset-lookup-{i}"))
            .build()
            .map_err(|e| tracing::debug!(error = %e, "no asset lookup threads; locating serially"))
            .ok()
    })
    .as_ref()
}

/// fetch.txt as a lookup from an asset URL (the full URL, its path, or its percent-decoded
/// path; the first entry wins) to the entry's bag-relative path. Kept on disk beside the
/// index, so a bag of millions of fetched files is never whole in memory; in memory only where
/// the cache cannot take the file.
pub(crate) enum FetchLookup {
    /// No fetch.txt.
    Empty,
    /// `fetch(key TEXT PRIMARY KEY, path TEXT)` in the cache file `path`, read through
    /// connections that lookups on several threads take out and give back (each thread its
    /// own while it looks; one is opened when none is free).
    Disk {
        idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
        path: PathBuf,
    },
    /// Key → path.
    Memory(HashMap<String, String>),
}

impl FetchLookup {
    /// The keys an entry answers to, in lookup order.
    fn keys(url: &str) -> [String; 3] {
        let path = url_path(url);
        [url.to_string(), path.to_string(), decoded(path)]
    }

    /// The path of the first entry `url` names: tried as the full URL, its path, then its
    /// decoded path ([`keys`](Self::keys)' order), building only what the earlier tries miss.
    fn get(&self, url: &str) -> Result<Option<String>> {
        let path = url_path(url);
        if let Some(found) = self.get_key(url)? {
            return Ok(Some(found));
        }
        if let Some(found) = self.get_key(path)? {
            return Ok(Some(found));
        }
        self.get_key(&decoded(path))
    }

    /// The path stored under one key.
    fn get_key(&self, key: &str) -> Result<Option<String>> {
        match self {
            FetchLookup::Empty => Ok(None),
            FetchLookup::Memory(map) => Ok(map.get(key).cloned()),
            FetchLookup::Disk { idle, path } => {
                let db = |source| crate::Error::Index {
                    path: path.clone(),
                    source,
                };
                let taken = idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop();
                let conn = match taken {
                    Some(conn) => conn,
                    None => open_fetch_lookup(path)?,
                };
                let found = conn
                    .prepare_cached("SELECT path FROM fetch WHERE key = ?1")
                    .and_then(|mut stmt| {
                        stmt.query_row([key], |r| r.get::<_, String>(0)).optional()
                    })
                    .map_err(db);
                idle.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(conn);
                found
            }
        }
    }
}

/// SQLite's page cache of one fetch lookup connection, in KiB. There is one connection per
/// lookup thread at most ([`LOOKUP_THREADS`]), so SQLite's default (2 MiB each) would hold
/// up to 64 MiB; the kernel's page cache keeps the file's pages for all of them anyway.
const FETCH_CACHE_KIB: usize = 256;

/// A read-only connection to the fetch lookup file at `path`. The file never changes once
/// published, so the connection keeps its read lock (`locking_mode = EXCLUSIVE`) instead of
/// taking it, and rereading the file header, for every one of millions of lookups.
fn open_fetch_lookup(path: &Path) -> Result<rusqlite::Connection> {
    let db = |source| crate::Error::Index {
        path: path.to_path_buf(),
        source,
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db)?;
    conn.execute_batch(&format!(
        "PRAGMA locking_mode = EXCLUSIVE; PRAGMA cache_size = -{FETCH_CACHE_KIB};"
    ))
    .map_err(db)?;
    Ok(conn)
}

/// Reads `fetch` (a bag's fetch.txt) entry by entry into `each` (key, path), first key wins.
fn each_fetch_key(fetch: &Path, each: &mut dyn FnMut(String, &str) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(fetch).map_err(|e| crate::Error::io(fetch, e))?;
    crate::bagit::fetch::for_each_fetch_entry(std::io::BufReader::new(file), fetch, &mut |e| {
        for key in FetchLookup::keys(&e.url) {
            each(key, &e.path)?;
        }
        Ok(())
    })
}

/// Builds the fetch lookup file at `path` (in a private temporary, published by rename).
fn build_fetch_lookup(fetch: &Path, path: &Path) -> Result<()> {
    let _lock = crate::cache::lock_for(path)?;
    if path.is_file() {
        return Ok(());
    }
    let temp = crate::cache::temp_sibling(path);
    let db = |source| crate::Error::Index {
        path: temp.clone(),
        source,
    };
    let built = (|| -> Result<()> {
        let conn = rusqlite::Connection::open(&temp).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
             CREATE TABLE fetch (key TEXT PRIMARY KEY, path TEXT NOT NULL) WITHOUT ROWID;
             BEGIN;",
        )
        .map_err(db)?;
        {
            let mut insert = conn
                .prepare("INSERT OR IGNORE INTO fetch (key, path) VALUES (?1, ?2)")
                .map_err(db)?;
            each_fetch_key(fetch, &mut |key, p| {
                insert.execute(rusqlite::params![key, p]).map_err(db)?;
                Ok(())
            })?;
        }
        conn.execute_batch("COMMIT;").map_err(db)?;
        drop(conn);
        crate::cache::publish(&temp, path)
    })();
    if built.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    built
}

impl DatasetBag {
    fn fetch_map(&self) -> Result<&FetchLookup> {
        if let Some(map) = self.shared.fetch_map.get() {
            return Ok(map);
        }
        let fetch = self.shared.path.join("fetch.txt");
        let lookup = if !fetch.is_file() {
            FetchLookup::Empty
        } else {
            let path = crate::index::reachable::fetch_lookup_path(
                self.index().path(),
                self.index().build_time(),
            );
            let on_disk = build_fetch_lookup(&fetch, &path).and_then(|()| open_fetch_lookup(&path));
            match on_disk {
                Ok(conn) => FetchLookup::Disk {
                    idle: std::sync::Mutex::new(vec![conn]),
                    path,
                },
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e,
                        "cannot keep the fetch.txt lookup in the cache; holding it in memory");
                    let mut map = HashMap::new();
                    each_fetch_key(&fetch, &mut |key, p| {
                        map.entry(key).or_insert_with(|| p.to_string());
                        Ok(())
                    })?;
                    FetchLookup::Memory(map)
                }
            }
        };
        Ok(self.shared.fetch_map.get_or_init(|| lookup))
    }

    /// Locates the file of one asset row of `table`.
    pub(crate) fn locate_asset(&self, table: &TableName, row: &Row) -> Result<Located> {
        let root = &self.shared.path;
        let mut inside = FileInside::new(&self.shared.bag_root);
        let url = row.text("URL");
        let mut expected: Option<String> = None;
        if let Some(url) = url {
            if let Some(path) = self.fetch_map()?.get(url)? {
                if let Some(abs) = inside.file(&path, &root.join("fetch.txt"))? {
                    return Ok(Located::Present(abs));
                }
                expected = Some(path);
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

    /// Locates the files of many asset rows of `table`, in `rows`' order: what
    /// [`locate_asset`](Self::locate_asset) gives for each, looked up on
    /// [`LOOKUP_THREADS`] threads. On a bag whose asset directories are not in the kernel's
    /// cache each file costs directory reads that a single thread waits for one by one;
    /// several threads keep the disk busy (and use every core when the cache is warm).
    ///
    /// A `fetch.txt` that cannot be read fails the whole batch, once (not once per row, each
    /// reading it again); a row whose own paths are refused fails alone.
    pub(crate) fn locate_assets(
        &self,
        table: &TableName,
        rows: &[Row],
    ) -> Result<Vec<Result<Located>>> {
        // Built here, before the threads, so they never race to build it.
        self.fetch_map()?;
        let one = |row: &Row| self.locate_asset(table, row);
        Ok(
            match lookup_pool().filter(|_| rows.len() >= PARALLEL_FROM) {
                Some(pool) => pool.install(|| rows.par_iter().map(one).collect()),
                None => rows.iter().map(one).collect(),
            },
        )
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
        self.for_each_missing_asset(|missing| out.push(missing))?;
        Ok(out)
    }

    /// Calls `f` with every asset row whose file is not on disk, in [`missing_assets`]
    /// order; the rows stream from the index, so memory stays flat.
    ///
    /// [`missing_assets`]: Self::missing_assets
    fn for_each_missing_asset(&self, mut f: impl FnMut(MissingAsset)) -> Result<()> {
        for table in self.asset_tables() {
            let mut rows = TableRows::new(self.shared.index.clone(), &table)?;
            loop {
                let batch: Vec<Row> = rows.by_ref().take(LOCATE_BATCH).collect::<Result<_>>()?;
                if batch.is_empty() {
                    break;
                }
                for (row, located) in batch.iter().zip(self.locate_assets(&table, &batch)?) {
                    if let Located::Missing(path) = located? {
                        f(MissingAsset {
                            table: table.clone(),
                            rid: row.rid().unwrap_or_else(|| Rid::new("")),
                            path,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// True when every fetch.txt file and every asset row's file is on disk inside the bag
    /// (a symbolic link out of the bag counts as missing).
    pub fn is_materialized(&self) -> bool {
        // A fetch.txt that does not parse cannot have been materialized.
        self.asset_status(AssetCheck::Files)
            .is_ok_and(|status| status.materialized)
    }
}

/// Whether a bag's asset files are on disk, as [`DatasetBag::asset_status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetStatus {
    /// Every `fetch.txt` file and every asset row's file is on disk inside the bag.
    pub materialized: bool,
    /// How many asset rows have no file on disk.
    pub missing_assets: usize,
    /// Whether this call checked the files (else the answer is the record of an earlier
    /// check, see [`AssetCheck::Recorded`]).
    #[serde(skip)]
    pub checked_now: bool,
}

/// How [`DatasetBag::asset_status`] finds out whether the asset files are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetCheck {
    /// Look for every asset file now (one or more `stat`s per asset row), and record the
    /// answer in the cache.
    Files,
    /// The answer recorded in the cache by the last check of this bag directory, as long as
    /// the asset tree's directories recorded with it still show their recorded identity
    /// (device, inode, size, mtime, ctime): the bag directory, `fetch.txt`, `data/`,
    /// `data/asset/` and, when it holds at most [`FEW_ASSET_DIRS`] entries, each directory
    /// directly under `data/asset/`. So a materialize, an asset directory added or removed,
    /// and (in a layout with one directory per asset table, `data/asset/<Table>/<file>`) a
    /// file added or removed are noticed at once. A single file removed from its own
    /// per-asset directory (`data/asset/<RID>/<Table>/<file>`) is not: [`AssetCheck::Files`]
    /// finds it. Without a current record the files are checked, as with `Files`.
    Recorded,
}

/// Up to this many entries under `data/asset/`, each one's identity is part of the record.
pub const FEW_ASSET_DIRS: usize = 64;

/// The record of one asset check (`<cache>/assets/<digest>`).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct AssetRecord {
    /// Bag-relative path → identity (`None`: absent when recorded).
    tree: BTreeMap<String, Option<FileStamp>>,
    status: AssetStatus,
}

const ASSET_RECORD_FORMAT: &str = "deriva-bag assets 1";

/// The identities of the asset tree's top directories (see [`AssetCheck::Recorded`]).
fn asset_tree(root: &Path) -> BTreeMap<String, Option<FileStamp>> {
    let stamp = |rel: &str| {
        let mut path = root.to_path_buf();
        path.extend(rel.split('/').filter(|c| !c.is_empty()));
        std::fs::symlink_metadata(&path)
            .ok()
            .map(|m| FileStamp::of(&m))
    };
    let mut tree: BTreeMap<String, Option<FileStamp>> = ["", "fetch.txt", "data", "data/asset"]
        .into_iter()
        .map(|rel| (rel.to_string(), stamp(rel)))
        .collect();
    if let Ok(entries) = std::fs::read_dir(root.join("data").join("asset")) {
        let names: Vec<String> = entries
            .take(FEW_ASSET_DIRS + 1)
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        if names.len() <= FEW_ASSET_DIRS {
            for name in names {
                let rel = format!("data/asset/{name}");
                let s = stamp(&rel);
                tree.insert(rel, s);
            }
        }
    }
    tree
}

impl DatasetBag {
    /// Whether this bag's asset files are on disk, checked now or taken from the cache's
    /// record of the last check (see [`AssetCheck`]); `deriva-bag info` reports this.
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{AssetCheck, DatasetBag, OpenOptions};
    /// let tmp = tempfile::tempdir()?;
    /// let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let status = bag.asset_status(AssetCheck::Files)?;
    /// assert!(status.materialized && status.checked_now);
    /// assert_eq!(status.missing_assets, 0);
    /// # Ok(()) }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn asset_status(&self, how: AssetCheck) -> Result<AssetStatus> {
        self.asset_status_settled(how, MEMO_SETTLE)
    }

    /// [`asset_status`](Self::asset_status) recording only identities older than `settle`
    /// (tests use zero).
    pub(crate) fn asset_status_settled(
        &self,
        how: AssetCheck,
        settle: Duration,
    ) -> Result<AssetStatus> {
        let root = &self.shared.path;
        let record_path = self.asset_record_path();
        let recorded = record_path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice::<AssetRecord>(&bytes).ok());
        if let Some(record) = recorded.as_ref().filter(|_| how == AssetCheck::Recorded) {
            if record.tree == asset_tree(root) {
                return Ok(record.status);
            }
        }
        // Taken before the check, so a change during it is noticed by the next call.
        let tree = asset_tree(root);
        // The tag files are parsed here, not by locating assets (which reads fetch.txt alone):
        // a malformed manifest fails the check, naming its file and line.
        let bagit = self.shared.bagit()?;
        let mut missing = 0usize;
        self.for_each_missing_asset(|_| missing += 1)?;
        let fetched = bagit.fetched_files_present();
        let status = AssetStatus {
            materialized: fetched && missing == 0,
            missing_assets: missing,
            checked_now: false,
        };
        let now = SystemTime::now();
        let settled = tree
            .values()
            .flatten()
            .all(|stamp| stamp.settled(now, settle));
        let record = AssetRecord { tree, status };
        if let Some(path) = record_path.filter(|_| settled && recorded.as_ref() != Some(&record)) {
            write_record(&path, &record, "the asset check");
        }
        Ok(AssetStatus {
            checked_now: true,
            ..status
        })
    }

    /// `<cache>/assets/<sha256 of the bag directory's identity and the cache key>`.
    fn asset_record_path(&self) -> Option<PathBuf> {
        let dir = FileStamp::of(&std::fs::metadata(&self.shared.path).ok()?);
        let id = format!(
            "{ASSET_RECORD_FORMAT}\n{} {}\n{}",
            dir.identity().0,
            dir.identity().1,
            self.shared.cache_key
        );
        Some(
            self.shared
                .cache_root
                .join("assets")
                .join(hex::encode(Sha256::digest(id.as_bytes()))),
        )
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

    #[cfg(feature = "fixtures")]
    mod status {
        use super::super::*;
        use crate::fixtures::{self, FixtureSpec, Layout};
        use crate::OpenOptions;

        fn open(spec: &FixtureSpec) -> (tempfile::TempDir, DatasetBag) {
            let tmp = tempfile::tempdir().unwrap();
            let generated = fixtures::generate(spec, &tmp.path().join("bags")).unwrap();
            let options = OpenOptions {
                cache_dir: Some(tmp.path().join("cache")),
                ..OpenOptions::default()
            };
            let bag = DatasetBag::open_with(&generated.path, &options).unwrap();
            (tmp, bag)
        }

        fn status(bag: &DatasetBag, how: AssetCheck) -> (bool, usize, bool) {
            let s = bag.asset_status_settled(how, Duration::ZERO).unwrap();
            (s.materialized, s.missing_assets, s.checked_now)
        }

        #[test]
        fn recorded_status_is_served_until_an_asset_directory_goes_away() {
            let (_tmp, bag) = open(&FixtureSpec::default());
            // No record yet: the files are checked, then the record answers.
            assert_eq!(status(&bag, AssetCheck::Recorded), (true, 0, true));
            assert_eq!(status(&bag, AssetCheck::Recorded), (true, 0, false));
            // A file removed inside its own asset directory: the record does not see it,
            // a check of the files does, and records what it found.
            let one = bag.path().join("data/asset/1-I002/Image/retina 002.jpg");
            std::fs::remove_file(&one).unwrap();
            assert_eq!(status(&bag, AssetCheck::Recorded), (true, 0, false));
            assert_eq!(status(&bag, AssetCheck::Files), (false, 1, true));
            assert_eq!(status(&bag, AssetCheck::Recorded), (false, 1, false));
            // A whole asset directory removed changes `data/asset`: checked again.
            std::fs::remove_dir_all(bag.path().join("data/asset/1-I003")).unwrap();
            assert_eq!(status(&bag, AssetCheck::Recorded), (false, 2, true));
            assert_eq!(status(&bag, AssetCheck::Recorded), (false, 2, false));
        }

        #[test]
        fn in_a_flat_asset_layout_a_removed_file_is_noticed_from_the_record() {
            let (_tmp, bag) = open(&FixtureSpec {
                layout: Layout::Legacy,
                ..FixtureSpec::default()
            });
            assert_eq!(status(&bag, AssetCheck::Recorded), (true, 0, true));
            assert_eq!(status(&bag, AssetCheck::Recorded), (true, 0, false));
            std::fs::remove_file(bag.path().join("data/asset/Image/retina 002.jpg")).unwrap();
            assert_eq!(status(&bag, AssetCheck::Recorded), (false, 1, true));
        }

        #[test]
        fn a_materialized_bag_is_noticed_from_the_record() {
            let (_tmp, bag) = open(&FixtureSpec {
                materialized: false,
                ..FixtureSpec::default()
            });
            assert_eq!(status(&bag, AssetCheck::Recorded), (false, 6, true));
            assert_eq!(status(&bag, AssetCheck::Recorded), (false, 6, false));
            // Materialized: the asset files of the same bag made with them appear.
            let other = tempfile::tempdir().unwrap();
            let full = fixtures::small_bag(other.path()).unwrap();
            copy_dir(
                &full.path.join("data/asset"),
                &bag.path().join("data/asset"),
            );
            assert_eq!(status(&bag, AssetCheck::Recorded), (true, 0, true));
        }

        fn copy_dir(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy_dir(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), &target).unwrap();
                }
            }
        }

        /// A bag of 150 images (enough for the lookup threads), its Image table and rows.
        fn image_rows() -> (tempfile::TempDir, DatasetBag, TableName, Vec<Row>) {
            let (tmp, bag) = open(&FixtureSpec {
                images: 150,
                ..FixtureSpec::default()
            });
            let table = TableName::new("demo", "Image");
            let rows: Vec<Row> = TableRows::new(bag.shared.index.clone(), &table)
                .unwrap()
                .collect::<Result<_>>()
                .unwrap();
            (tmp, bag, table, rows)
        }

        #[test]
        #[cfg(unix)]
        fn a_batch_located_on_the_lookup_threads_answers_as_each_row_alone() {
            let (tmp, bag, table, rows) = image_rows();
            assert!(
                rows.len() >= PARALLEL_FROM,
                "the batch must take the threads"
            );
            let file = |i: usize| match bag.locate_asset(&table, &rows[i]).unwrap() {
                Located::Present(p) => p,
                other => panic!("row {i}: {other:?}"),
            };
            // One file gone, one a link out of the bag, one a link that stays inside.
            std::fs::remove_file(file(10)).unwrap();
            let (out, outside) = (file(20), tmp.path().join("outside.jpg"));
            std::fs::rename(&out, &outside).unwrap();
            std::os::unix::fs::symlink(&outside, &out).unwrap();
            let inside = file(30);
            let moved = inside.with_file_name("moved.jpg");
            std::fs::rename(&inside, &moved).unwrap();
            std::os::unix::fs::symlink("moved.jpg", &inside).unwrap();

            let batch: Vec<Located> = bag
                .locate_assets(&table, &rows)
                .unwrap()
                .into_iter()
                .collect::<Result<_>>()
                .unwrap();
            let alone: Vec<Located> = rows
                .iter()
                .map(|row| bag.locate_asset(&table, row).unwrap())
                .collect();
            assert_eq!(batch, alone);
            let missing = |i: usize| matches!(batch[i], Located::Missing(_));
            assert!(
                missing(10) && missing(20),
                "{:?} {:?}",
                batch[10],
                batch[20]
            );
            assert_eq!(batch[30], Located::Present(inside));
            assert_eq!(
                batch
                    .iter()
                    .filter(|l| matches!(l, Located::Missing(_)))
                    .count(),
                2
            );
            assert_eq!(bag.missing_assets().unwrap().len(), 2);
        }

        #[test]
        fn an_unreadable_fetch_txt_fails_a_batch_once_not_row_by_row() {
            use deriva_bag_features::DatasetLike;
            let (_tmp, bag, table, rows) = image_rows();
            std::fs::write(bag.path().join("fetch.txt"), "https://x.invalid/a 12\n").unwrap();
            let err = bag.locate_assets(&table, &rows).unwrap_err().to_string();
            assert!(err.contains("fetch.txt"), "{err}");

            // Through the dataset API: no file for any row, and one warning for the batch.
            let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
            let sink = logged.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_ansi(false)
                .with_writer(move || Sink(sink.clone()))
                .finish();
            let paths =
                tracing::subscriber::with_default(subscriber, || bag.asset_paths(&table, &rows));
            assert_eq!(paths.len(), rows.len());
            assert!(paths.iter().all(Option::is_none));
            let text = String::from_utf8(logged.lock().unwrap().clone()).unwrap();
            assert_eq!(
                text.lines().filter(|l| l.contains("WARN")).count(),
                1,
                "{text}"
            );
        }

        /// A `tracing` writer into shared bytes.
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        #[test]
        fn a_recent_asset_tree_is_not_recorded() {
            let (_tmp, bag) = open(&FixtureSpec::default());
            // Everything was written just now: younger than the settle time.
            let s = bag.asset_status(AssetCheck::Recorded).unwrap();
            assert!(s.checked_now);
            assert!(bag.asset_status(AssetCheck::Recorded).unwrap().checked_now);
        }
    }
}
