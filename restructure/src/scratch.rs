//! The scratch store: one run's per-asset state (reachable assets per dataset, target values,
//! planned paths, what was placed, the ledgers) in a SQLite file on disk, so a restructure of
//! millions of assets runs in flat memory: only bounded pages of rows are ever in memory, and
//! SQLite's own page cache is capped.
//!
//! The file is a hidden temporary file (`.deriva-restructure-*.db`) beside the output
//! directory — on the output's filesystem, not in `/tmp`, which is often memory — never
//! inside it, so no ledger or ImageFolder walker ever sees it. It is removed when the store is
//! dropped: when the run fails, or when the [`Manifest`](crate::Manifest) that reads from it
//! is dropped.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

use crate::error::{io, Error, Result};

/// SQLite's page cache for the store, in KiB (`PRAGMA cache_size` takes `-KiB`).
const CACHE_KIB: i64 = 48 * 1024;

/// Rows read per page by [`Paged`].
pub(crate) const PAGE: usize = 4096;

/// The store: a SQLite connection on a temporary file, removed on drop.
pub(crate) struct Scratch {
    // Closed before the file is removed (fields drop in order).
    conn: Connection,
    file: tempfile::TempPath,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("path", &self.file.to_path_buf())
            .finish()
    }
}

/// The nearest existing directory at or above `output_dir`'s parent.
fn scratch_dir(output_dir: &Path) -> PathBuf {
    let mut dir = output_dir.parent();
    while let Some(d) = dir {
        if d.is_dir() {
            return d.to_path_buf();
        }
        dir = d.parent();
    }
    PathBuf::from(".")
}

impl Scratch {
    /// A fresh store beside `output_dir` (absolute), with its schema, inside one transaction
    /// that lasts the whole run (nothing here needs to survive a crash).
    pub(crate) fn create(output_dir: &Path) -> Result<Scratch> {
        let dir = scratch_dir(output_dir);
        let builder = || {
            let mut b = tempfile::Builder::new();
            b.prefix(".deriva-restructure-").suffix(".db");
            b
        };
        let file = match builder().tempfile_in(&dir) {
            Ok(file) => file,
            // Beside the output is best (its filesystem, never memory); where that directory
            // takes no new file, the system's temporary directory.
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e,
                    "cannot create the scratch store beside the output; using the temporary directory");
                let tmp = std::env::temp_dir();
                builder().tempfile_in(&tmp).map_err(io(&tmp))?
            }
        }
        .into_temp_path();
        let conn = Connection::open(&file).map_err(|source| Error::Scratch {
            path: file.to_path_buf(),
            source,
        })?;
        let scratch = Scratch { conn, file };
        scratch.batch(&format!(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA temp_store = FILE;
             PRAGMA cache_size = -{CACHE_KIB};
             BEGIN;
             -- Which assets each visited dataset (node) reaches.
             CREATE TABLE reach (rid TEXT NOT NULL, node INTEGER NOT NULL,
                                 PRIMARY KEY (rid, node)) WITHOUT ROWID;
             -- Nested datasets: parent node -> child node.
             CREATE TABLE edge (parent INTEGER NOT NULL, child INTEGER NOT NULL,
                                PRIMARY KEY (parent, child)) WITHOUT ROWID;
             -- Each target's chosen value (a feature record, JSON) by level and key.
             CREATE TABLE val (level INTEGER NOT NULL, key TEXT NOT NULL, rec TEXT NOT NULL,
                               PRIMARY KEY (level, key)) WITHOUT ROWID;
             CREATE TABLE missing (rid TEXT PRIMARY KEY, filename TEXT) WITHOUT ROWID;
             CREATE TABLE several (rid TEXT PRIMARY KEY) WITHOUT ROWID;
             -- Planned placements: the relative path (as a path key) and the asset.
             CREATE TABLE place (rel BLOB NOT NULL, rid TEXT NOT NULL, src BLOB NOT NULL,
                                 PRIMARY KEY (rel, rid)) WITHOUT ROWID;
             -- The state of each placement whose destination is not absent.
             CREATE TABLE classified (rel BLOB NOT NULL, rid TEXT NOT NULL,
                                      state INTEGER NOT NULL, proof TEXT,
                                      PRIMARY KEY (rel, rid)) WITHOUT ROWID;
             CREATE TABLE ledger_old (rel TEXT PRIMARY KEY, proof TEXT) WITHOUT ROWID;
             CREATE TABLE ledger_new (rel TEXT PRIMARY KEY, proof TEXT) WITHOUT ROWID;
             -- Ledger paths this run settled (only when there was an earlier ledger).
             CREATE TABLE handled (rel TEXT PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE manifest (src_key BLOB NOT NULL, dst_key BLOB NOT NULL,
                                    rid TEXT NOT NULL, src BLOB NOT NULL, dst BLOB NOT NULL,
                                    PRIMARY KEY (src_key, dst_key, rid)) WITHOUT ROWID;
             CREATE TABLE kept (key BLOB NOT NULL, reason INTEGER NOT NULL, path BLOB NOT NULL,
                                PRIMARY KEY (key, reason)) WITHOUT ROWID;"
        ))?;
        tracing::debug!(path = %scratch.file.display(), "restructure scratch store");
        Ok(scratch)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Maps a SQLite error to [`Error::Scratch`] naming the file.
    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| Error::Scratch {
            path: self.file.to_path_buf(),
            source,
        }
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(self.err())
    }

    /// Runs a statement (cached) with `params`.
    pub(crate) fn exec(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params))
            .map_err(self.err())
    }

    /// Whether `sql` (cached) returns a row.
    pub(crate) fn exists(&self, sql: &str, params: impl rusqlite::Params) -> Result<bool> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.exists(params))
            .map_err(self.err())
    }

    /// The one integer `sql` returns.
    pub(crate) fn count(&self, sql: &str) -> Result<usize> {
        self.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(self.err())
    }

    /// The rows of `table` (aliased `t`) matching `filter`, in the order of its key columns,
    /// read a page at a time (see [`Scan`]), for a caller that does not know how many match.
    pub(crate) fn scan<T>(&self, query: PagedQuery<T>) -> Scan<'_, T> {
        Scan {
            scratch: self,
            query,
            after: None,
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// [`scan`](Self::scan) for a caller that counted the matching rows: `total` is the
    /// length a [`Paged`] reports.
    pub(crate) fn paged<T>(&self, query: PagedQuery<T>, total: usize) -> Paged<'_, T> {
        Paged {
            rows: self.scan(query),
            left: total,
        }
    }
}

/// What [`Scratch::paged`] reads: `SELECT <key>, <cols> FROM <from> WHERE <filter>`,
/// ordered by `key` (columns of the table aliased `t` in `from`); `decode` reads a row whose
/// first `key.len()` columns are the key.
pub(crate) struct PagedQuery<T> {
    pub from: &'static str,
    pub key: &'static [&'static str],
    pub cols: &'static str,
    pub filter: &'static str,
    pub decode: fn(&rusqlite::Row<'_>, usize) -> rusqlite::Result<T>,
}

/// Rows of the store in key order, [`PAGE`] at a time: each page is a fresh query after the
/// last key read (so the store may be written between pages). Yields an error once, then
/// ends. Its length is unknown; [`Paged`] is the same rows with a counted length.
pub(crate) struct Scan<'a, T> {
    scratch: &'a Scratch,
    query: PagedQuery<T>,
    after: Option<Vec<SqlValue>>,
    buf: VecDeque<T>,
    done: bool,
}

impl<T> std::fmt::Debug for Scan<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("from", &self.query.from)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl<T> Scan<'_, T> {
    fn fill(&mut self) -> Result<()> {
        let q = &self.query;
        let keys: Vec<String> = q.key.iter().map(|k| format!("t.{k}")).collect();
        let keys = keys.join(", ");
        let cols = if q.cols.is_empty() {
            String::new()
        } else {
            format!(", {}", q.cols)
        };
        let after = match &self.after {
            None => String::new(),
            Some(_) => {
                let marks: Vec<String> = (1..=q.key.len()).map(|i| format!("?{i}")).collect();
                format!(" AND ({keys}) > ({})", marks.join(", "))
            }
        };
        let sql = format!(
            "SELECT {keys}{cols} FROM {} WHERE ({}){after} ORDER BY {keys} LIMIT {PAGE}",
            q.from, q.filter
        );
        let err = self.scratch.err();
        let mut stmt = self.scratch.conn.prepare_cached(&sql).map_err(&err)?;
        let params: Vec<SqlValue> = self.after.take().unwrap_or_default();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(&err)?;
        let mut last = None;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(&err)? {
            self.buf
                .push_back((q.decode)(row, q.key.len()).map_err(&err)?);
            last = Some(
                (0..q.key.len())
                    .map(|i| row.get::<_, SqlValue>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(&err)?,
            );
            n += 1;
        }
        if n < PAGE {
            self.done = true;
        }
        self.after = last;
        if self.after.is_none() {
            self.done = true;
        }
        Ok(())
    }
}

impl<T> Iterator for Scan<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.buf.is_empty() && !self.done {
            if let Err(e) = self.fill() {
                self.done = true;
                self.buf.clear();
                return Some(Err(e));
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

/// The rows of a [`Scan`] whose number was counted when the store was written (a manifest's
/// placements, missing files, kept files), so it knows its length.
pub struct Paged<'a, T> {
    rows: Scan<'a, T>,
    /// Rows still to come; counts down, and drops to 0 after an error.
    left: usize,
}

impl<T> std::fmt::Debug for Paged<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paged")
            .field("from", &self.rows.query.from)
            .field("left", &self.left)
            .finish()
    }
}

impl<T> Iterator for Paged<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        let item = self.rows.next();
        self.left = match &item {
            Some(Ok(_)) => self.left.saturating_sub(1),
            _ => 0,
        };
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for Paged<'_, T> {}

/// A path's bytes (lossless on Unix).
pub(crate) fn os_bytes(s: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        s.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().into_owned().into_bytes()
    }
}

/// The path of [`os_bytes`].
pub(crate) fn bytes_os(b: Vec<u8>) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(b)
    }
    #[cfg(not(unix))]
    {
        OsString::from(String::from_utf8_lossy(&b).into_owned())
    }
}

/// A path as a key whose byte order is `Path`'s order (component by component): the
/// components joined by NUL, which sorts below every byte a component can hold.
pub(crate) fn path_key(path: &Path) -> Vec<u8> {
    let mut key = Vec::new();
    for (i, c) in path.components().enumerate() {
        if i > 0 {
            key.push(0);
        }
        key.extend(os_bytes(c.as_os_str()));
    }
    key
}

/// The path of a [`path_key`] (components pushed in turn).
pub(crate) fn key_path(key: &[u8]) -> PathBuf {
    key.split(|b| *b == 0)
        .map(|c| bytes_os(c.to_vec()))
        .collect()
}

/// Whether a relative path stays inside its base (only normal components).
pub(crate) fn is_confined(rel: &Path) -> bool {
    rel.components().all(|c| matches!(c, Component::Normal(_))) && rel.components().next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_keys_sort_as_paths_do_and_round_trip() {
        let mut paths: Vec<PathBuf> = ["a.b/c", "a/b", "a", "a/b/c", "/x/y", "a-b", "ab"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let mut keys: Vec<Vec<u8>> = paths.iter().map(|p| path_key(p)).collect();
        paths.sort();
        keys.sort();
        let back: Vec<PathBuf> = keys.iter().map(|k| key_path(k)).collect();
        assert_eq!(back, paths);
    }

    /// The `several` table's RIDs, in order.
    fn several_rids() -> PagedQuery<String> {
        PagedQuery {
            from: "several t",
            key: &["rid"],
            cols: "",
            filter: "1",
            decode: |r, _| r.get::<_, String>(0),
        }
    }

    #[test]
    fn pages_follow_the_key_order_across_page_boundaries() {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = Scratch::create(&tmp.path().join("out")).unwrap();
        for i in (0..PAGE * 2 + 3).rev() {
            scratch
                .exec(
                    "INSERT INTO several (rid) VALUES (?1)",
                    [format!("1-{i:06}")],
                )
                .unwrap();
        }
        let want: Vec<String> = (0..PAGE * 2 + 3).map(|i| format!("1-{i:06}")).collect();
        let mut paged = scratch.paged(several_rids(), PAGE * 2 + 3);
        assert_eq!(paged.len(), PAGE * 2 + 3);
        let first: Vec<String> = paged
            .by_ref()
            .take(PAGE + 1)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(
            paged.len(),
            PAGE + 2,
            "the length counts down across a page boundary"
        );
        let rest: Vec<String> = paged.by_ref().collect::<Result<_>>().unwrap();
        assert_eq!(paged.len(), 0);
        assert_eq!([first, rest].concat(), want);
        let scanned: Vec<String> = scratch.scan(several_rids()).collect::<Result<_>>().unwrap();
        assert_eq!(scanned, want);
    }

    #[test]
    fn the_store_lies_beside_the_output_and_is_removed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = Scratch::create(&tmp.path().join("new/out")).unwrap();
        let path = scratch.file.to_path_buf();
        assert_eq!(path.parent(), Some(tmp.path()));
        assert!(path.exists());
        drop(scratch);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
