//! Building the index: parse the table CSVs on parser threads (one file each at a time,
//! hashed as they are read and checked against their manifest digests, see [`super::integrity`],
//! streamed in chunks of rows through bounded channels, so memory stays flat however large
//! the bag) and insert on one writer thread per part file (the tables are spread over the
//! parts by CSV size; each table's files are inserted in file order, inside ONE transaction
//! per part), into private temporary files that are then published by atomic renames under
//! the cache lock, the main file last.
//!
//! Measured on the 20k-image bench bag (2 cores): the single-connection build spent ~45% of
//! its CPU inserting, ~25% creating FK indexes and ~30% parsing, all inserts on one core; whole
//! parsed files were held in memory (577 MiB peak at 200k images).

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;

use deriva_bag_features::{parse_timestamptz, CatalogModel, TableName, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};

use super::integrity::{
    self, check_schema, expected_digests, DigestReader, Expected, FileStamp, PayloadDigests,
    SchemaFile, Verified,
};
use super::query::RidConflict;
use super::schema::{
    layouts, Storage, TableLayout, CONFLICTS_TABLE, FILES_TABLE, INDEX_FORMAT, META_TABLE,
};
use crate::bag::{BuildProgress, ProgressFn};
use crate::csv::{scan, CsvFile, CsvReader, Field, Record};
use crate::{cache, Error, Result};

/// What the build needs to know about the bag.
pub(crate) struct BuildRequest<'a> {
    pub bag_root: &'a Path,
    pub model: &'a CatalogModel,
    /// `data/schema.json` as read for `model`.
    pub schema: &'a SchemaFile,
    pub cache_key: &'a str,
    /// Where the records of verified bag files go (see [`integrity`]).
    pub verified_dir: &'a Path,
    pub progress: Option<&'a ProgressFn>,
}

/// Makes sure a current index exists at `target`; returns `true` when this call built it.
///
/// Fast path: an existing index with the current format that the bag shows it was built from
/// ([`integrity::index_serves_bag`]: a few `stat` calls while nothing changed) is used as is.
/// Otherwise the exclusive cache lock is taken, the check repeated (another process may have
/// just built it), and the index built into temporary siblings and renamed into place: the
/// part files first, the main file (which [`is_current`] checks) last, so a reader that
/// finds a current main file always finds its parts. A bag file that differs from its
/// manifest digest is an error either way, never served.
pub(crate) fn ensure_index(target: &Path, req: &BuildRequest<'_>) -> Result<bool> {
    if is_current(target) && integrity::index_serves_bag(target, req)? {
        return Ok(false);
    }
    let _lock = cache::lock_for(target)?;
    if is_current(target) && integrity::index_serves_bag(target, req)? {
        return Ok(false);
    }
    let (parts, verified) = build_into(target, req)?;
    // Parts first, main last; main is part 0.
    let published = parts
        .iter()
        .rev()
        .try_for_each(|(temp, path)| cache::publish(temp, path));
    if published.is_err() {
        remove_temps(&parts);
    }
    published?;
    // Sets derived from the index it replaces describe another build.
    super::reachable::remove_reachable_sets(target);
    integrity::remember(target, req, &verified);
    Ok(true)
}

/// Removes the temporary files of a failed build: nothing half-built is left behind.
fn remove_temps(parts: &[(PathBuf, PathBuf)]) {
    for (temp, _) in parts {
        let _ = std::fs::remove_file(temp);
    }
}

/// The file of part `n` of the index whose main file is `main`: `main` itself for part 0,
/// `<key>.<n>.sqlite` beside it otherwise.
pub(crate) fn part_path(main: &Path, n: usize) -> PathBuf {
    if n == 0 {
        main.to_path_buf()
    } else {
        main.with_extension(format!("{n}.sqlite"))
    }
}

/// How many part files the build writes: one SQLite writer per part runs in parallel (a
/// single connection inserts on one core only, and inserting was the longest step of a cold
/// open), at most one per core, at most [`MAX_PARTS`], and no more than the tables that have
/// CSV rows to spread over them.
fn part_count(tables_with_rows: usize) -> usize {
    rayon::current_num_threads()
        .min(tables_with_rows)
        .clamp(1, MAX_PARTS)
}

/// Assigns every table to a part, balancing CSV bytes (largest table first onto the lightest
/// part; ties by name, so the plan is deterministic). Tables without rows go to part 0.
fn plan_parts<'a>(
    names: &[&'a TableName],
    files: &[CsvFile],
    parts: usize,
) -> HashMap<&'a TableName, usize> {
    let mut bytes: HashMap<&TableName, u64> = HashMap::new();
    for f in files {
        *bytes.entry(&f.table).or_default() += f.size.max(1);
    }
    let mut by_size: Vec<(&TableName, u64)> = names
        .iter()
        .map(|n| (*n, bytes.get(*n).copied().unwrap_or(0)))
        .collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut load = vec![0u64; parts];
    let mut plan = HashMap::new();
    for (name, size) in by_size {
        let part = if size == 0 {
            0
        } else {
            (0..parts).min_by_key(|&p| (load[p], p)).unwrap_or(0)
        };
        load[part] += size;
        plan.insert(name, part);
    }
    plan
}

/// Upper bound on part files (each is one more `ATTACH` on every warm open).
pub(crate) const MAX_PARTS: usize = 4;

/// True when `path` is a finished index of the current format whose part files exist.
pub(crate) fn is_current(path: &Path) -> bool {
    let Ok(conn) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return false;
    };
    let meta = |key: &str| {
        conn.query_row(
            &format!("SELECT value FROM {META_TABLE} WHERE key = ?1"),
            [key],
            |r| r.get::<_, String>(0),
        )
        .ok()
    };
    if meta("format").as_deref() != Some(INDEX_FORMAT) {
        return false;
    }
    match meta("parts").and_then(|p| p.parse::<usize>().ok()) {
        Some(parts) if (1..=MAX_PARTS).contains(&parts) => {
            (1..parts).all(|n| part_path(path, n).is_file())
        }
        _ => false,
    }
}

/// One parsed cell; text lives in the chunk's arena so a row costs no allocation.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(usize, usize),
}

/// Rows per chunk handed from a parser to a writer. Small enough that the chunks in
/// flight stay a few MiB whatever the bag's size (memory stays flat as the bag
/// grows; whole parsed files held 2–3× the CSV size at 200k images), large enough that the
/// channel hand-off costs nothing next to the inserts.
const CHUNK_ROWS: usize = 2048;

/// Upper bound on parser threads.
const MAX_PARSERS: usize = 8;

/// Chunks a parser may run ahead of the writer, per file.
const CHUNKS_AHEAD: usize = 4;

/// A run of parsed rows of one file: `cells` holds `width` cells per row.
#[derive(Default)]
struct Chunk {
    arena: String,
    cells: Vec<Cell>,
}

/// Chunks whose buffers a writer has finished with, reused by the parsers so the
/// steady state allocates (and page-faults in) nothing new.
#[derive(Default)]
struct ChunkPool(Mutex<Vec<Chunk>>);

impl ChunkPool {
    fn take(&self) -> Chunk {
        let mut chunk = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        chunk.arena.clear();
        chunk.cells.clear();
        chunk
    }

    fn give(&self, chunk: Chunk) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(chunk);
    }
}

/// What a parser sends for one file, in order; the channel closing ends the file.
type ChunkMsg = Result<Chunk>;

/// The sending ends of the per-file channels, taken by the worker that claims the file.
type Senders = Vec<Mutex<Option<SyncSender<ChunkMsg>>>>;

/// Drops every unclaimed sender if a parser thread panics, so the writers see those files
/// end instead of waiting for them forever; the scope then re-raises the panic and nothing
/// is published.
struct CloseOnPanic<'a>(&'a Senders);

impl Drop for CloseOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for s in self.0 {
                s.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
        }
    }
}

/// An SQLite failure of the build, naming the bag and what was being written (`table
/// demo:Image`): never the temporary file in the cache, which means nothing to a user.
fn build_err(bag: &Path, what: String) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |source| Error::IndexBuild {
        bag: bag.to_path_buf(),
        what,
        source,
    }
}

/// The first failure of a build, in file order. A failure at file `i` stops work on every
/// later file but lets every earlier one finish, so the error reported is the one of the
/// earliest bad file whichever thread meets it first (as when one thread loaded the files in
/// order).
struct Failure {
    first: AtomicUsize,
    errors: Mutex<Vec<(usize, Error)>>,
}

impl Failure {
    fn new() -> Failure {
        Failure {
            first: AtomicUsize::new(usize::MAX),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Records an error at file `at` (setup errors use 0: they stop everything).
    fn record(&self, at: usize, error: Error) {
        self.first.fetch_min(at, Ordering::SeqCst);
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((at, error));
    }

    /// Whether work on file `i` is pointless because an earlier file failed.
    fn stops(&self, i: usize) -> bool {
        i > self.first.load(Ordering::SeqCst)
    }

    /// The earliest recorded error, if any.
    fn into_error(self) -> Option<Error> {
        let errors = self.errors.into_inner().unwrap_or_else(|p| p.into_inner());
        errors
            .into_iter()
            .enumerate()
            .min_by_key(|(n, (at, _))| (*at, *n))
            .map(|(_, (_, e))| e)
    }
}

/// Shared by every writer thread of one build.
struct BuildShared<'a> {
    req: &'a BuildRequest<'a>,
    files: &'a [CsvFile],
    /// The manifest digest of each file.
    expected: &'a [&'a Expected],
    layouts: &'a HashMap<TableName, TableLayout>,
    pool: &'a ChunkPool,
    failure: &'a Failure,
    progress: &'a Mutex<BuildProgress>,
    parts: usize,
}

/// What one part's writer did.
struct PartStats {
    inserted: u64,
    ignored: u64,
    load_ms: u64,
    index_ms: u64,
    commit_ms: u64,
    /// Rows whose RID an earlier row had with other values.
    conflicts: Vec<RidConflict>,
}

/// Where a row came from, as one integer in its hidden origin column: `line × files + file`
/// (small numbers, so a few bytes per row). `None` past `i64`, which no real file reaches.
fn origin(file: usize, files: usize, line: u64) -> Option<i64> {
    let files = i64::try_from(files.max(1)).ok()?;
    i64::try_from(line)
        .ok()?
        .checked_mul(files)?
        .checked_add(i64::try_from(file).ok()?)
}

/// The (file index, line) an [`origin`] stands for.
fn decode_origin(origin: i64, files: usize) -> (usize, u64) {
    let files = files.max(1) as i64;
    let origin = origin.max(0);
    ((origin % files) as usize, (origin / files) as u64)
}

/// Builds the index into temporary files, one per part (main first), and returns
/// `(temporary, final)` path pairs ready to publish, with what was verified on the way. On
/// error the temporaries are removed.
fn build_into(
    target: &Path,
    req: &BuildRequest<'_>,
) -> Result<(Vec<(PathBuf, PathBuf)>, Verified)> {
    let started = std::time::Instant::now();
    let found = scan(req.bag_root, req.model)?;
    let files = found.files;
    // Nothing is parsed before the bag vouches for every file the index will hold.
    let digests = PayloadDigests::read_for(req.bag_root, &files)?;
    check_schema(req, &digests)?;
    let expected = expected_digests(&files, &digests)?;
    let layouts = layouts(req.model);
    let mut names: Vec<&TableName> = layouts.keys().collect();
    names.sort();
    let tables_with_rows = {
        let mut t: Vec<&TableName> = files.iter().map(|f| &f.table).collect();
        t.sort();
        t.dedup();
        t.len()
    };
    let parts = part_count(tables_with_rows);
    let plan = plan_parts(&names, &files, parts);
    let temps: Vec<(PathBuf, PathBuf)> = (0..parts)
        .map(|n| {
            let path = part_path(target, n);
            (cache::temp_sibling(&path), path)
        })
        .collect();

    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let progress = Mutex::new(BuildProgress {
        files_done: 0,
        files_total: files.len(),
        bytes_done: 0,
        bytes_total: total_bytes,
    });
    if let Some(cb) = req.progress {
        cb(&progress.lock().unwrap_or_else(|p| p.into_inner()));
    }

    // Parsers claim files in file order (one atomic counter) and stream each as chunks into
    // that file's bounded channel; each part's writer drains the channels of its tables' files
    // in file order (the union order: the first row per RID wins; all files of a table go to
    // one part). Claims in order mean the earliest file any writer waits for is always being
    // parsed or next to be claimed, so bounded channels cannot deadlock.
    let failure = Failure::new();
    let next_file = AtomicUsize::new(0);
    let pool = ChunkPool::default();
    let stamps: Mutex<Vec<Option<FileStamp>>> = Mutex::new(vec![None; files.len()]);
    let (senders, receivers): (Senders, Vec<Receiver<ChunkMsg>>) = files
        .iter()
        .map(|_| {
            let (tx, rx) = mpsc::sync_channel(CHUNKS_AHEAD);
            (Mutex::new(Some(tx)), rx)
        })
        .unzip();
    let mut mine: Vec<Vec<(usize, Receiver<ChunkMsg>)>> = (0..parts).map(|_| Vec::new()).collect();
    for (i, rx) in receivers.into_iter().enumerate() {
        let part = plan.get(&files[i].table).copied().unwrap_or(0);
        mine[part].push((i, rx));
    }
    // Parsing costs well under half of inserting, so a few parsers keep every writer fed;
    // more would only add chunks in flight.
    let workers = rayon::current_num_threads().clamp(1, MAX_PARSERS.min(files.len().max(1)));
    let shared = BuildShared {
        req,
        files: &files,
        expected: &expected,
        layouts: &layouts,
        pool: &pool,
        failure: &failure,
        progress: &progress,
        parts,
    };
    let stats: Vec<Option<PartStats>> = std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let _guard = CloseOnPanic(&senders);
                parse_worker(&shared, &senders, &next_file, &stamps)
            });
        }
        let writers: Vec<_> = mine
            .into_iter()
            .enumerate()
            .map(|(part, receivers)| {
                let tables: Vec<&TableName> = names
                    .iter()
                    .copied()
                    .filter(|n| plan.get(n).copied().unwrap_or(0) == part)
                    .collect();
                let (temp, shared) = (&temps[part].0, &shared);
                scope.spawn(
                    move || match write_part(shared, part, temp, &tables, receivers) {
                        Ok(stats) => stats,
                        Err((at, e)) => {
                            shared.failure.record(at, e);
                            None
                        }
                    },
                )
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    if let Some(e) = failure.into_error() {
        remove_temps(&temps);
        return Err(e);
    }
    let stats: Vec<PartStats> = stats.into_iter().flatten().collect();
    let conflicts: Vec<&RidConflict> = stats.iter().flat_map(|s| &s.conflicts).collect();
    if let Err(e) = store_conflicts(req.bag_root, &temps[0].0, &conflicts) {
        remove_temps(&temps);
        return Err(e);
    }
    tracing::info!(
        bag = %req.bag_root.display(),
        files = files.len(),
        parts,
        rows = stats.iter().map(|s| s.inserted).sum::<u64>(),
        duplicates = stats.iter().map(|s| s.ignored).sum::<u64>(),
        conflicts = conflicts.len(),
        load_ms = ?stats.iter().map(|s| s.load_ms).collect::<Vec<_>>(),
        index_ms = ?stats.iter().map(|s| s.index_ms).collect::<Vec<_>>(),
        commit_ms = ?stats.iter().map(|s| s.commit_ms).collect::<Vec<_>>(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "built bag index"
    );
    let stamps = stamps.into_inner().unwrap_or_else(|p| p.into_inner());
    let verified = Verified {
        dirs: found
            .dirs
            .iter()
            .map(|(rel, m)| (rel.clone(), FileStamp::of(m)))
            .collect(),
        // Every file was parsed to its end and checked, or the build failed above.
        files: files
            .iter()
            .zip(stamps)
            .filter_map(|(f, s)| s.map(|s| (f.relative.clone(), s)))
            .collect(),
    };
    Ok((temps, verified))
}

/// Writes the duplicate RIDs the writers found into the main file's [`CONFLICTS_TABLE`]
/// (created empty by part 0), once every part is done.
fn store_conflicts(bag: &Path, main_temp: &Path, conflicts: &[&RidConflict]) -> Result<()> {
    if conflicts.is_empty() {
        return Ok(());
    }
    let what = || format!("the duplicate RIDs ({CONFLICTS_TABLE})");
    let mut conn = Connection::open(main_temp).map_err(build_err(bag, what()))?;
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(build_err(bag, what()))?;
    let tx = conn.transaction().map_err(build_err(bag, what()))?;
    {
        let mut stmt = tx
            .prepare(&format!(
                "INSERT INTO {CONFLICTS_TABLE} (schema_name, table_name, rid, first_file, \
                 first_line, file, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))
            .map_err(build_err(bag, what()))?;
        for c in conflicts {
            stmt.execute(rusqlite::params![
                c.table.schema,
                c.table.table,
                c.rid,
                c.first_file,
                c.first_line as i64,
                c.file,
                c.line as i64
            ])
            .map_err(build_err(bag, what()))?;
        }
    }
    tx.commit().map_err(build_err(bag, what()))?;
    conn.close().map_err(|(_, e)| build_err(bag, what())(e))
}

/// The temporary table a writer's conflict triggers fill (see
/// [`TableLayout::conflict_trigger_sql`]).
const FOUND_CONFLICTS: &str = "found_conflicts";

/// One part's writer: creates its tables in `temp`, loads their files in file order, creates
/// their indexes, and (part 0) the metadata. `Ok(None)` when it stopped because an earlier
/// file failed elsewhere; `Err((file index, error))` on its own failure.
fn write_part(
    shared: &BuildShared<'_>,
    part: usize,
    temp: &Path,
    tables: &[&TableName],
    receivers: Vec<(usize, Receiver<ChunkMsg>)>,
) -> std::result::Result<Option<PartStats>, (usize, Error)> {
    let bag = shared.req.bag_root;
    let setup = |what: &str| {
        let err = build_err(bag, what.to_string());
        move |e: rusqlite::Error| (0, err(e))
    };
    let table_err = |at: usize, name: &TableName| {
        let err = build_err(bag, format!("table {name}"));
        move |e: rusqlite::Error| (at, err(e))
    };
    let _ = std::fs::remove_file(temp);
    let mut conn = Connection::open(temp).map_err(setup("the index file"))?;
    // A private file nobody reads until it is renamed into place: no journal, no fsync.
    // 16 KiB pages cut B-tree balancing and write calls by about a fifth on a 20k-image bag.
    // A small page cache (8 MiB over all parts): rows arrive in RID order, so the inserts
    // only touch the right edge of each B-tree and spilled pages are not needed again until
    // the index sorts; a 64 MiB cache cost page faults and ~30 MiB of RSS at 20k images and
    // was no faster. Sorter runs go to temporary files (`temp_store = FILE`), not memory,
    // so index creation stays flat as the bag grows (66 → 46 MiB peak at 200k images).
    conn.execute_batch(&format!(
        "PRAGMA page_size = 16384; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA temp_store = FILE; PRAGMA cache_size = -{};
         CREATE TEMP TABLE {FOUND_CONFLICTS} (table_no INTEGER, rid TEXT, first INTEGER, later INTEGER);",
        8192 / shared.parts.max(1)
    ))
    .map_err(setup("the index file"))?;
    let tx = conn.transaction().map_err(setup("the index file"))?;
    if part == 0 {
        tx.execute_batch(&format!(
            "CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT);
             CREATE TABLE {FILES_TABLE} (path TEXT PRIMARY KEY, algorithm TEXT, digest TEXT);
             CREATE TABLE {CONFLICTS_TABLE} (schema_name TEXT, table_name TEXT, rid TEXT,
                 first_file TEXT, first_line INTEGER, file TEXT, line INTEGER);"
        ))
        .map_err(setup("the index metadata"))?;
        let mut stmt = tx
            .prepare(&format!(
                "INSERT INTO {FILES_TABLE} (path, algorithm, digest) VALUES (?1, ?2, ?3)"
            ))
            .map_err(setup("the index metadata"))?;
        for (file, expected) in shared.files.iter().zip(shared.expected) {
            stmt.execute([
                file.relative.as_str(),
                expected.algorithm.name(),
                expected.digest.as_str(),
            ])
            .map_err(setup("the index metadata"))?;
        }
    }
    for (n, name) in tables.iter().enumerate() {
        let layout = &shared.layouts[*name];
        tx.execute_batch(&layout.create_sql())
            .map_err(table_err(0, name))?;
        // Conflicts are rare; the trigger fires only for them, never per row.
        if let Some(trigger) = layout.conflict_trigger_sql(&format!("dup:{n}"), n, FOUND_CONFLICTS)
        {
            tx.execute_batch(&trigger).map_err(table_err(0, name))?;
        }
    }

    let load_started = std::time::Instant::now();
    let (mut inserted, mut ignored) = (0u64, 0u64);
    // Receivers are dropped as soon as this returns, which unblocks their parsers.
    for (i, receiver) in receivers {
        if shared.failure.stops(i) {
            return Ok(None);
        }
        let file = &shared.files[i];
        let sql = InsertSql::new(&shared.layouts[&file.table]);
        let (mut ins, mut ign) = (0u64, 0u64);
        for msg in receiver.iter() {
            let chunk = msg.map_err(|e| (i, e))?;
            let counts = insert_chunk(&tx, &sql, &chunk).map_err(table_err(i, &file.table))?;
            shared.pool.give(chunk);
            ins += counts.0;
            ign += counts.1;
        }
        if shared.failure.stops(i) {
            return Ok(None);
        }
        if ign > 0 {
            tracing::debug!(file = %file.relative, duplicates = ign,
                "rows whose RID was already loaded were skipped (first row per RID wins)");
        }
        inserted += ins;
        ignored += ign;
        let mut progress = shared.progress.lock().unwrap_or_else(|p| p.into_inner());
        progress.files_done += 1;
        progress.bytes_done += file.size;
        if let Some(cb) = shared.req.progress {
            cb(&progress);
        }
    }
    let load_ms = load_started.elapsed().as_millis() as u64;

    let done = shared.files.len();
    let conflicts = found_conflicts(&tx, shared, tables).map_err(setup("the duplicate RIDs"))?;

    // Indexes after the inserts: one sort per index instead of a B-tree insert per row.
    let index_started = std::time::Instant::now();
    for name in tables {
        for sql in shared.layouts[*name].index_sql() {
            tx.execute_batch(&sql).map_err(table_err(done, name))?;
        }
    }
    let index_ms = index_started.elapsed().as_millis() as u64;
    let late = |e: rusqlite::Error| (done, build_err(bag, "the index metadata".into())(e));
    if part == 0 {
        let req = shared.req;
        let build_time = chrono::Utc::now().to_rfc3339();
        let bag_path = req.bag_root.display().to_string();
        let parts = shared.parts.to_string();
        for (k, v) in [
            ("format", INDEX_FORMAT),
            ("bag_path", bag_path.as_str()),
            ("build_time", build_time.as_str()),
            ("cache_key", req.cache_key),
            (
                "builder",
                concat!("deriva-bag-core ", env!("CARGO_PKG_VERSION")),
            ),
            ("parts", parts.as_str()),
        ] {
            tx.execute(
                &format!("INSERT INTO {META_TABLE} (key, value) VALUES (?1, ?2)"),
                [k, v],
            )
            .map_err(late)?;
        }
    }
    let commit_started = std::time::Instant::now();
    tx.commit().map_err(late)?;
    conn.close().map_err(|(_, e)| late(e))?;
    Ok(Some(PartStats {
        inserted,
        ignored,
        load_ms,
        index_ms,
        commit_ms: commit_started.elapsed().as_millis() as u64,
        conflicts,
    }))
}

/// The conflicts this writer's triggers recorded, with files and lines decoded.
fn found_conflicts(
    conn: &Connection,
    shared: &BuildShared<'_>,
    tables: &[&TableName],
) -> rusqlite::Result<Vec<RidConflict>> {
    let files = shared.files;
    let mut stmt = conn.prepare(&format!(
        "SELECT table_no, rid, first, later FROM temp.{FOUND_CONFLICTS} ORDER BY rowid"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (table_no, rid, first, later) = row?;
        let Some(table) = usize::try_from(table_no).ok().and_then(|n| tables.get(n)) else {
            continue;
        };
        let (first_file, first_line) = decode_origin(first, files.len());
        let (file, line) = decode_origin(later, files.len());
        let path = |i: usize| files.get(i).map(|f| f.relative.clone()).unwrap_or_default();
        out.push(RidConflict {
            table: (*table).clone(),
            rid,
            first_file: path(first_file),
            first_line,
            file: path(file),
            line,
        });
    }
    Ok(out)
}

/// Rows per multi-row `INSERT` (fewer for wide tables, to stay under SQLite's bound
/// parameter limit of 32766).
fn batch_rows(width: usize) -> usize {
    (32_766 / width.max(1)).clamp(1, 32)
}

/// The prepared statements one file's rows go through.
struct InsertSql {
    width: usize,
    batch: usize,
    /// Inserts `batch` rows.
    many: String,
    /// Inserts one row (the remainder of a chunk).
    one: String,
}

impl InsertSql {
    fn new(layout: &TableLayout) -> InsertSql {
        let width = layout.insert_width();
        let batch = batch_rows(width);
        InsertSql {
            width,
            batch,
            many: layout.insert_rows_sql(batch),
            one: layout.insert_sql(),
        }
    }
}

/// Inserts one chunk with the file's cached prepared statements; returns (inserted, ignored).
fn insert_chunk(conn: &Connection, sql: &InsertSql, chunk: &Chunk) -> rusqlite::Result<(u64, u64)> {
    let width = sql.width;
    if width == 0 {
        return Ok((0, 0));
    }
    let arena = chunk.arena.as_bytes();
    let bind = |stmt: &mut rusqlite::CachedStatement<'_>, cells: &[Cell]| -> rusqlite::Result<()> {
        for (j, cell) in cells.iter().enumerate() {
            let v = match *cell {
                Cell::Null => ValueRef::Null,
                Cell::Int(i) => ValueRef::Integer(i),
                Cell::Real(f) => ValueRef::Real(f),
                Cell::Text(s, e) => ValueRef::Text(&arena[s..e]),
            };
            stmt.raw_bind_parameter(j + 1, ToSqlOutput::Borrowed(v))?;
        }
        Ok(())
    };
    let rows = chunk.cells.len() / width;
    let mut inserted = 0u64;
    let batches = chunk.cells.chunks_exact(width * sql.batch);
    let rest = batches.remainder();
    if rows >= sql.batch {
        let mut stmt = conn.prepare_cached(&sql.many)?;
        for cells in batches {
            bind(&mut stmt, cells)?;
            inserted += stmt.raw_execute()? as u64;
        }
    }
    if !rest.is_empty() {
        let mut stmt = conn.prepare_cached(&sql.one)?;
        for cells in rest.chunks(width) {
            bind(&mut stmt, cells)?;
            inserted += stmt.raw_execute()? as u64;
        }
    }
    Ok((inserted, rows as u64 - inserted))
}

/// One parser thread: claims the next file in order, streams it into its channel, repeats
/// until every file is claimed. A file after a failure is claimed only to drop its sender, so
/// no writer waits on it. A file's last message is its digest check: a file that differs
/// from its manifest digest fails the build even after all its rows were sent.
fn parse_worker(
    shared: &BuildShared<'_>,
    senders: &Senders,
    next_file: &AtomicUsize,
    stamps: &Mutex<Vec<Option<FileStamp>>>,
) {
    let (files, failure, pool) = (shared.files, shared.failure, shared.pool);
    loop {
        let i = next_file.fetch_add(1, Ordering::Relaxed);
        let Some(file) = files.get(i) else {
            return;
        };
        let Some(sender) = senders[i].lock().unwrap_or_else(|p| p.into_inner()).take() else {
            continue;
        };
        if failure.stops(i) {
            continue;
        }
        let layout = &shared.layouts[&file.table];
        let mut parser = match FileParser::open(file, layout, shared.expected[i], i, files.len()) {
            Ok(p) => p,
            Err(e) => {
                // The receiver only disappears when its writer stopped; nothing to do then.
                let _ = sender.send(Err(e));
                continue;
            }
        };
        loop {
            if failure.stops(i) {
                break;
            }
            let mut chunk = pool.take();
            match parser.fill(&mut chunk) {
                Ok(more) => {
                    if !chunk.cells.is_empty() && sender.send(Ok(chunk)).is_err() {
                        break; // its writer stopped
                    }
                    if !more {
                        match parser.finish() {
                            Ok(stamp) => {
                                stamps.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(stamp)
                            }
                            Err(e) => {
                                let _ = sender.send(Err(e));
                            }
                        }
                        break;
                    }
                }
                Err(e) => {
                    let _ = sender.send(Err(parser.explain(e)));
                    break;
                }
            }
        }
        // Dropping `sender` here tells the writer the file is complete.
    }
}

/// Streams one table CSV as typed cells, [`CHUNK_ROWS`] rows at a time. The build reads
/// files through a [`DigestReader`]; the fuzz targets read bytes.
struct FileParser<'a, R = DigestReader> {
    path: &'a Path,
    layout: &'a TableLayout,
    reader: CsvReader<BufReader<R>>,
    /// For each CSV column, its visible column in the layout.
    map: Vec<usize>,
    /// For each visible column, its hidden UTC slot.
    utc_slot: Vec<Option<usize>>,
    rid_col: Option<usize>,
    /// Cells per row: the layout's read columns, then the origin.
    width: usize,
    /// This file's place among the build's files, and their number (see [`origin`]).
    file_no: usize,
    files: usize,
    rec: Record,
    json_buf: Vec<u8>,
    /// Per visible column: the last timestamptz text parsed and its UTC microseconds.
    last_utc: Vec<(String, Option<i64>)>,
}

impl<'a> FileParser<'a, DigestReader> {
    /// Opens the file (hashing what is read against `expected`) and maps its header onto the
    /// layout.
    fn open(
        file: &'a CsvFile,
        layout: &'a TableLayout,
        expected: &Expected,
        file_no: usize,
        files: usize,
    ) -> Result<FileParser<'a>> {
        let f = DigestReader::open(&file.path, expected)?;
        FileParser::new(&file.path, layout, f, file_no, files).map_err(|(e, f)| f.explain(e))
    }

    /// After [`fill`](Self::fill) reported the end of the file: checks its digest and returns
    /// its identity.
    fn finish(self) -> Result<FileStamp> {
        self.reader.into_inner().into_inner().finish()
    }

    /// The error to report for a parse error of this file (see [`DigestReader::explain`]).
    fn explain(self, error: Error) -> Error {
        self.reader.into_inner().into_inner().explain(error)
    }
}

impl<'a, R: std::io::Read> FileParser<'a, R> {
    /// Reads the header of `inner` (named `path` in errors) and maps it onto the layout; on
    /// failure the error and the reader back.
    fn new(
        path: &'a Path,
        layout: &'a TableLayout,
        inner: R,
        file_no: usize,
        files: usize,
    ) -> std::result::Result<FileParser<'a, R>, (Error, R)> {
        let mut reader = CsvReader::new(BufReader::with_capacity(1 << 16, inner), path);
        let map = match reader
            .read_header()
            .and_then(|header| Self::map_header(path, layout, &header))
        {
            Ok(m) => m,
            Err(e) => return Err((e, reader.into_inner().into_inner())),
        };
        let mut utc_slot = vec![None; layout.columns.len()];
        let mut next_hidden = layout.columns.len();
        for (i, c) in layout.columns.iter().enumerate() {
            if c.storage == Storage::TimestampTz {
                utc_slot[i] = Some(next_hidden);
                next_hidden += 1;
            }
        }
        Ok(FileParser {
            path,
            layout,
            reader,
            map,
            utc_slot,
            rid_col: layout.column_index("RID"),
            width: layout.insert_width(),
            file_no,
            files,
            rec: Record::default(),
            json_buf: Vec::new(),
            last_utc: vec![(String::new(), None); layout.columns.len()],
        })
    }

    /// For each header column, its visible column in the layout.
    fn map_header(path: &Path, layout: &TableLayout, header: &[String]) -> Result<Vec<usize>> {
        let mut map = Vec::with_capacity(header.len());
        for (i, name) in header.iter().enumerate() {
            if header[..i].contains(name) {
                return Err(Error::Csv {
                    path: path.to_path_buf(),
                    line: 1,
                    detail: format!("header names column {name:?} twice"),
                });
            }
            let Some(col) = layout.column_index(name) else {
                return Err(Error::UnknownColumn {
                    path: path.to_path_buf(),
                    table: layout.name.to_string(),
                    column: name.clone(),
                });
            };
            map.push(col);
        }
        Ok(map)
    }

    /// Appends up to [`CHUNK_ROWS`] rows to `chunk`; `Ok(false)` once the file is exhausted.
    fn fill(&mut self, chunk: &mut Chunk) -> Result<bool> {
        let path = self.path;
        let layout = self.layout;
        let width = self.width;
        let arena = &mut chunk.arena;
        let cells = &mut chunk.cells;
        let rec = &mut self.rec;
        for _ in 0..CHUNK_ROWS {
            if !self.reader.read_record(rec)? {
                return Ok(false);
            }
            let base = cells.len();
            cells.resize(base + width, Cell::Null);
            let Some(origin) = origin(self.file_no, self.files, rec.line()) else {
                return Err(Error::Csv {
                    path: path.to_path_buf(),
                    line: rec.line(),
                    detail: "too many lines to index".into(),
                });
            };
            cells[base + width - 1] = Cell::Int(origin);
            for (i, &col) in self.map.iter().enumerate() {
                let Some(Field::Text(text)) = rec.field(i) else {
                    continue; // NULL: the cell stays Null
                };
                let c = &layout.columns[col];
                let bad = |detail: String| Error::BadValue {
                    path: path.to_path_buf(),
                    line: rec.line(),
                    column: c.name.clone(),
                    detail,
                };
                let push = |arena: &mut String, s: &str| {
                    let start = arena.len();
                    arena.push_str(s);
                    Cell::Text(start, arena.len())
                };
                let fast_micros = if c.storage == Storage::TimestampTz {
                    // Fast path without the raw-text allocation of `Value::TimestampTz`; the
                    // same parser `Value::parse` uses. Failures fall through to `Value::parse`
                    // below, which yields NULL for "" or the error message. Rows written by one
                    // catalog request share their RCT/RMT, so the column's last parse is
                    // reused when the text repeats (a fifth of parse time on a fixture bag).
                    let last = &mut self.last_utc[col];
                    if last.1.is_some() && last.0 == text {
                        last.1
                    } else {
                        let micros = parse_timestamptz(text).map(|utc| utc.timestamp_micros());
                        if micros.is_some() {
                            last.0.clear();
                            last.0.push_str(text);
                            last.1 = micros;
                        }
                        micros
                    }
                } else {
                    None
                };
                let cell = if c.storage == Storage::Text {
                    push(arena, text)
                } else if let Some(micros) = fast_micros {
                    if let Some(slot) = self.utc_slot[col] {
                        cells[base + slot] = Cell::Int(micros);
                    }
                    push(arena, text)
                } else {
                    let value = Value::parse(text, &c.ty).map_err(|e| bad(e.to_string()))?;
                    match (c.storage, value) {
                        (_, Value::Null) => Cell::Null,
                        (Storage::Int, Value::Int(i)) => Cell::Int(i),
                        (Storage::Real, Value::Float(f)) if f.is_nan() => push(arena, "NaN"),
                        (Storage::Real, Value::Float(f)) => Cell::Real(f),
                        (Storage::Bool, Value::Bool(b)) => Cell::Int(i64::from(b)),
                        (Storage::Date, Value::Date(d)) => {
                            push(arena, &d.format("%Y-%m-%d").to_string())
                        }
                        (Storage::TimestampTz, Value::TimestampTz { utc, .. }) => {
                            if let Some(slot) = self.utc_slot[col] {
                                cells[base + slot] = Cell::Int(utc.timestamp_micros());
                            }
                            push(arena, text)
                        }
                        (Storage::Array, v @ Value::Array(_)) => {
                            self.json_buf.clear();
                            serde_json::to_writer(&mut self.json_buf, &v.to_json())
                                .map_err(|e| bad(e.to_string()))?;
                            let s = std::str::from_utf8(&self.json_buf)
                                .map_err(|e| bad(e.to_string()))?;
                            push(arena, s)
                        }
                        (Storage::Timestamp | Storage::Json, _) => push(arena, text),
                        (storage, other) => {
                            return Err(bad(format!(
                                "parsed to {other:?}, which cannot be stored as {storage:?}"
                            )))
                        }
                    }
                };
                cells[base + col] = cell;
            }
            if let Some(r) = self.rid_col {
                let empty = match cells[base + r] {
                    Cell::Text(s, e) => s == e,
                    _ => true,
                };
                if empty {
                    return Err(Error::BadValue {
                        path: path.to_path_buf(),
                        line: rec.line(),
                        column: "RID".into(),
                        detail: "every row needs a RID, this one is empty".into(),
                    });
                }
            }
        }
        Ok(true)
    }
}

/// Parses `csv` as one file of the table of `layout` exactly as the build does, loads its
/// rows into an in-memory SQLite table of that layout (duplicate-RID check included) and
/// reads them back in key order: the whole path of a CSV row into the index and out again,
/// without files or a cache. Parse errors are returned as the build returns them; an SQLite
/// failure is [`Error::IndexBuild`] (never expected: the fuzz targets look for one).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn load_in_memory(
    layout: &TableLayout,
    csv: &[u8],
) -> Result<(Vec<deriva_bag_features::Row>, usize)> {
    let path = Path::new("fuzz.csv");
    let bag = Path::new(":memory:");
    let sql = |e| build_err(bag, format!("table {}", layout.name))(e);
    let conn = Connection::open_in_memory().map_err(sql)?;
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE {FOUND_CONFLICTS} (table_no INTEGER, rid TEXT, first INTEGER, later INTEGER);"
    ))
    .map_err(sql)?;
    conn.execute_batch(&layout.create_sql()).map_err(sql)?;
    if let Some(trigger) = layout.conflict_trigger_sql("dup:0", 0, FOUND_CONFLICTS) {
        conn.execute_batch(&trigger).map_err(sql)?;
    }
    let mut parser = FileParser::new(path, layout, csv, 0, 1).map_err(|(e, _)| e)?;
    let insert = InsertSql::new(layout);
    loop {
        let mut chunk = Chunk::default();
        let more = parser.fill(&mut chunk)?;
        insert_chunk(&conn, &insert, &chunk).map_err(sql)?;
        if !more {
            break;
        }
    }
    for index in layout.index_sql() {
        conn.execute_batch(&index).map_err(sql)?;
    }
    let conflicts: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM temp.{FOUND_CONFLICTS}"),
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    let select = if layout.select_list.is_empty() {
        "NULL"
    } else {
        &layout.select_list
    };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {select} FROM {} ORDER BY {}",
            layout.sql_name,
            layout.key_sql()
        ))
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| layout.row_from_sql(r))
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    Ok((rows, conflicts.max(0) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn thing_layout() -> TableLayout {
        let json = br#"{"schemas":{"demo":{"tables":{"Thing":{"column_definitions":[
          {"name":"RID","type":{"typename":"ermrest_rid","is_domain":true,"base_type":{"typename":"text"}}},
          {"name":"RCT","type":{"typename":"ermrest_rct","is_domain":true,"base_type":{"typename":"timestamptz"}}},
          {"name":"Name","type":{"typename":"text"}},
          {"name":"name","type":{"typename":"int4"}},
          {"name":"Tags","type":{"typename":"text[]","is_array":true,"base_type":{"typename":"text"}}},
          {"name":"Score","type":{"typename":"float8"}}]}}}}}"#;
        let model = CatalogModel::from_json(json).unwrap();
        layouts(&model)
            .remove(&TableName::new("demo", "Thing"))
            .unwrap()
    }

    #[test]
    fn rows_load_and_read_back_with_differing_repeats_counted() {
        let layout = thing_layout();
        let csv = "RID,Name,name,Score\n1-A,x,1,NaN\n1-B,y,2,\n1-A,x,1,NaN\n1-A,z,1,NaN\n";
        let (rows, conflicts) = load_in_memory(&layout, csv.as_bytes()).unwrap();
        let got: Vec<(String, String, Option<i64>)> = rows
            .iter()
            .map(|r| {
                (
                    r.text("RID").unwrap().to_string(),
                    r.text("Name").unwrap().to_string(),
                    r.get("name").and_then(|v| v.as_i64()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("1-A".to_string(), "x".to_string(), Some(1)),
                ("1-B".to_string(), "y".to_string(), Some(2))
            ]
        );
        // Line 4 repeats line 2 exactly (silent); line 5 differs.
        assert_eq!(conflicts, 1);
    }

    proptest! {
        #[test]
        fn typed_csv_reading_never_panics_and_errors_are_parse_errors(
            body in proptest::collection::vec(
                prop_oneof![Just(b','), Just(b'"'), Just(b'\n'), Just(b'{'), Just(b'}'), any::<u8>(),
                            Just(b'1'), Just(b'-'), Just(b'A')],
                0..120),
            header in 0usize..4,
        ) {
            let layout = thing_layout();
            let headers = ["RID,Name,name", "RID,RCT,Tags", "RID,Score,name,Name", "Name,name"];
            let mut csv = format!("{}\n", headers[header]).into_bytes();
            csv.extend(body);
            match load_in_memory(&layout, &csv) {
                Ok((rows, _)) => prop_assert!(rows.len() <= csv.iter().filter(|b| **b == b'\n').count()),
                Err(Error::Csv { .. } | Error::BadValue { .. } | Error::UnknownColumn { .. }) => {}
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }

    fn csv(table: &TableName, relative: &str, size: u64) -> CsvFile {
        CsvFile {
            path: PathBuf::from(relative),
            relative: relative.to_string(),
            table: table.clone(),
            size,
        }
    }

    #[test]
    fn plan_parts_puts_the_largest_tables_on_the_lightest_part_and_empty_ones_on_part_0() {
        let t = |n: &str| TableName::new("demo", n);
        let (a, b, c, d, e) = (t("A"), t("B"), t("C"), t("D"), t("Empty"));
        let files = [
            csv(&a, "data/demo/A.csv", 50),
            csv(&b, "data/demo/B.csv", 40),
            csv(&c, "data/demo/C.csv", 30),
            csv(&c, "data/demo/x/C.csv", 5),
            csv(&d, "data/demo/D.csv", 10),
        ];
        let names = [&a, &b, &c, &d, &e];
        let plan = plan_parts(&names, &files, 2);
        // A(50) → 0; B(40) → 1; C(35) → 1 (40 < 50); D(10) → 0 (50 < 75); Empty → 0.
        let got: Vec<usize> = names.iter().map(|n| plan[n]).collect();
        assert_eq!(got, [0, 1, 1, 0, 0]);
        assert_eq!(plan_parts(&names, &files, 1).values().max(), Some(&0));
    }

    #[test]
    fn part_files_sit_beside_the_main_file() {
        let main = Path::new("/cache/index/abc.sqlite");
        assert_eq!(part_path(main, 0), main);
        assert_eq!(part_path(main, 2), Path::new("/cache/index/abc.2.sqlite"));
    }
}

#[cfg(all(test, feature = "fixtures"))]
mod fixture_tests {
    use super::*;
    use crate::{DatasetBag, OpenOptions};

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn an_index_missing_a_part_file_is_rebuilt() {
        let tmp = tempfile::tempdir().unwrap();
        let g = crate::fixtures::small_bag(tmp.path()).unwrap();
        let opts = OpenOptions {
            cache_dir: Some(tmp.path().join("cache")),
            ..OpenOptions::default()
        };
        let first = pool(3)
            .install(|| DatasetBag::open_with(&g.path, &opts))
            .unwrap();
        assert!(first.index_was_built());
        let images = first.get_table("Image").unwrap().len();
        let main = first.index_path().to_path_buf();
        let part = part_path(&main, 2);
        assert!(part.is_file(), "{} missing", part.display());
        assert!(is_current(&main));
        drop(first);

        std::fs::remove_file(&part).unwrap();
        assert!(!is_current(&main));
        let again = DatasetBag::open_with(&g.path, &opts).unwrap();
        assert!(again.index_was_built());
        assert_eq!(again.get_table("Image").unwrap().len(), images);
    }

    #[test]
    fn the_earliest_bad_file_is_reported_whichever_part_meets_its_error_first() {
        let tmp = tempfile::tempdir().unwrap();
        let g = crate::fixtures::small_bag(tmp.path()).unwrap();
        let data = g.path.join("data/demo");
        for name in ["Image.csv", "Subject.csv"] {
            let mut text = std::fs::read_to_string(data.join(name)).unwrap();
            text.push_str("x,y\n");
            std::fs::write(data.join(name), text).unwrap();
        }
        // Bad CSVs the manifests vouch for (made so), so the CSV errors are what is reported.
        crate::bagit::write::BagWriter::new()
            .write(&g.path)
            .unwrap();
        let cache = tmp.path().join("cache");
        let opts = OpenOptions {
            cache_dir: Some(cache.clone()),
            ..OpenOptions::default()
        };
        for _ in 0..5 {
            let err = pool(3)
                .install(|| DatasetBag::open_with(&g.path, &opts))
                .unwrap_err();
            match err {
                Error::Csv { path, detail, .. } => {
                    assert_eq!(path, data.join("Image.csv"), "{detail}");
                    assert!(detail.contains("2 fields"), "{detail}");
                }
                other => panic!("expected a CSV error, got {other:?}"),
            }
            // Nothing half-built is left behind: only the lock file.
            let left: Vec<String> = std::fs::read_dir(cache.join("index"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }
}
