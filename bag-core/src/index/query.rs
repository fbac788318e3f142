//! Reading the index: one read-only connection per opened bag, typed rows, streaming pages,
//! and reader threads with connections of their own for streamed queries ([`Index::stream`]).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use deriva_bag_features::{CatalogModel, Row, TableName};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Params};

use super::build::{part_path, MAX_PARTS};
use super::reachable::ReachableSet;
use super::schema::{layouts, TableLayout, CONFLICTS_TABLE, META_TABLE};
use crate::{Error, Result};

/// An opened index: a read-only SQLite connection plus the layout of every model table.
pub(crate) struct Index {
    path: PathBuf,
    conn: Mutex<Connection>,
    layouts: HashMap<TableName, Arc<TableLayout>>,
    /// Part files, the main one included.
    parts: usize,
    /// When the index was built (its `meta` row): ties derived cache files to this build.
    build_time: String,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

/// A read-only connection to the index at `path`, with its part files attached.
///
/// The build spreads the tables over part files written in parallel ([`part_path`]);
/// attached, their tables resolve by their unqualified names (each name exists in exactly
/// one part), so every query reads as if there were one file.
fn connect(path: &Path) -> Result<Connection> {
    connect_counting(path).map(|(conn, _)| conn)
}

/// [`connect`], also giving the number of part files (the main one included).
fn connect_counting(path: &Path) -> Result<(Connection, usize)> {
    let err = |source| Error::Index {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let parts: usize = meta_value(&conn, "parts")
        .map_err(err)?
        .parse()
        .map_err(|e| {
            err(rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                Box::new(e),
            ))
        })?;
    for n in 1..parts.min(MAX_PARTS) {
        let part = part_path(path, n);
        let name = part
            .to_str()
            .ok_or_else(|| err(rusqlite::Error::InvalidPath(part.clone())))?;
        // Attached files inherit the connection's read-only flags.
        conn.execute(&format!("ATTACH DATABASE ?1 AS \"part{n}\""), [name])
            .map_err(|source| Error::Index { path: part, source })?;
    }
    Ok((conn, parts.clamp(1, MAX_PARTS)))
}

/// The `meta` row `key` of an index.
pub(crate) fn meta_value(conn: &Connection, key: &str) -> rusqlite::Result<String> {
    conn.query_row(
        &format!("SELECT value FROM {META_TABLE} WHERE key = ?1"),
        [key],
        |r| r.get::<_, String>(0),
    )
}

impl Index {
    /// Opens a built index read-only, with its part files attached (see [`connect`]).
    pub(crate) fn open(path: &Path, model: &CatalogModel) -> Result<Index> {
        let (conn, parts) = connect_counting(path)?;
        let build_time = meta_value(&conn, "build_time").map_err(|source| Error::Index {
            path: path.to_path_buf(),
            source,
        })?;
        let layouts = layouts(model)
            .into_iter()
            .map(|(name, layout)| (name, Arc::new(layout)))
            .collect();
        Ok(Index {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            layouts,
            parts,
            build_time,
        })
    }

    /// The index file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How many part files the index has, the main one included.
    pub(crate) fn parts(&self) -> usize {
        self.parts
    }

    /// When the index was built.
    pub(crate) fn build_time(&self) -> &str {
        &self.build_time
    }

    /// Wraps a SQLite error with the index path.
    pub(crate) fn err(&self, source: rusqlite::Error) -> Error {
        Error::Index {
            path: self.path.clone(),
            source,
        }
    }

    /// The layout of a model table.
    pub(crate) fn layout(&self, table: &TableName) -> Result<&Arc<TableLayout>> {
        self.layouts.get(table).ok_or_else(|| {
            let mut known: Vec<String> = self.layouts.keys().map(|t| t.to_string()).collect();
            known.sort();
            Error::Features(deriva_bag_features::Error::TableNotFound {
                name: table.to_string(),
                known,
            })
        })
    }

    /// Runs `f` with the connection (serialized: SQLite connections are not `Sync`).
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| self.err(e))
    }

    /// [`with_conn`](Self::with_conn) with the reachable set `reach` attached for the
    /// duration of `f` (its [`ReachableSet::sql`] then reads on this connection).
    pub(crate) fn with_reach<T>(
        &self,
        reach: Option<&ReachableSet>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let Some(reach) = reach else {
            return self.with_conn(f);
        };
        self.with_conn(|conn| {
            reach.attach(conn)?;
            let out = f(conn);
            let detached = reach.detach(conn);
            let out = out?;
            detached.map(|()| out)
        })
    }

    /// Rows of `table` from a full `sql` query whose first result columns are the table's
    /// read columns in order (as [`TableLayout::select_list`] lists them).
    pub(crate) fn query_rows<P: Params>(
        &self,
        table: &TableName,
        sql: &str,
        params: P,
    ) -> Result<Vec<Row>> {
        self.query_rows_reaching(None, table, sql, params)
    }

    /// [`query_rows`](Self::query_rows) for a `sql` that reads the reachable set `reach`.
    pub(crate) fn query_rows_reaching<P: Params>(
        &self,
        reach: Option<&ReachableSet>,
        table: &TableName,
        sql: &str,
        params: P,
    ) -> Result<Vec<Row>> {
        let layout = self.layout(table)?.clone();
        self.with_reach(reach, |conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(params, |r| layout.row_from_sql(r))?;
            rows.collect()
        })
    }

    /// `SELECT <visible columns> FROM <table> <tail>`, e.g. tail `WHERE "RID" = ?1`.
    pub(crate) fn select_rows<P: Params>(
        &self,
        table: &TableName,
        tail: &str,
        params: P,
    ) -> Result<Vec<Row>> {
        let layout = self.layout(table)?;
        let sql = format!(
            "SELECT {} FROM {} {tail}",
            layout.select_list, layout.sql_name
        );
        self.query_rows(table, &sql, params)
    }

    /// First column of every result row as text (NULLs skipped).
    pub(crate) fn query_strings<P: Params>(&self, sql: &str, params: P) -> Result<Vec<String>> {
        self.query_strings_reaching(None, sql, params)
    }

    /// [`query_strings`](Self::query_strings) for a `sql` that reads the reachable set
    /// `reach`.
    pub(crate) fn query_strings_reaching<P: Params>(
        &self,
        reach: Option<&ReachableSet>,
        sql: &str,
        params: P,
    ) -> Result<Vec<String>> {
        self.with_reach(reach, |conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(params, |r| r.get::<_, Option<String>>(0))?;
            let mut out = Vec::new();
            for r in rows {
                if let Some(s) = r? {
                    out.push(s);
                }
            }
            Ok(out)
        })
    }

    /// Number of rows of a table.
    pub(crate) fn row_count(&self, table: &TableName) -> Result<u64> {
        let layout = self.layout(table)?;
        let sql = format!("SELECT count(*) FROM {}", layout.sql_name);
        self.with_conn(|conn| conn.query_row(&sql, [], |r| r.get::<_, i64>(0)))
            .map(|n| n.max(0) as u64)
    }

    /// The quoted SQLite identifier of `column` of `table`, when the model has both.
    pub(crate) fn col(&self, table: &TableName, column: &str) -> Option<&str> {
        self.layouts.get(table)?.col(column)
    }

    /// The distinct non-NULL values of `column` of `table` as text, sorted; empty when the
    /// model lacks the table or the column.
    pub(crate) fn distinct_strings(&self, table: &TableName, column: &str) -> Result<Vec<String>> {
        let Some(layout) = self.layouts.get(table) else {
            return Ok(Vec::new());
        };
        let Some(col) = layout.col(column) else {
            return Ok(Vec::new());
        };
        self.query_strings(
            &format!(
                "SELECT DISTINCT {col} FROM {} ORDER BY {col}",
                layout.sql_name
            ),
            [],
        )
    }

    /// Every row of the bag whose RID an earlier row of its table already had with other
    /// values (found while building), in table, file and line order.
    pub(crate) fn rid_conflicts(&self) -> Result<Vec<RidConflict>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT schema_name, table_name, rid, first_file, first_line, file, line \
                 FROM main.{CONFLICTS_TABLE} ORDER BY schema_name, table_name, file, line"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok(RidConflict {
                    table: TableName::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                    rid: r.get(2)?,
                    first_file: r.get(3)?,
                    first_line: r.get::<_, i64>(4)?.max(0) as u64,
                    file: r.get(5)?,
                    line: r.get::<_, i64>(6)?.max(0) as u64,
                })
            })?;
            rows.collect()
        })
    }
}

/// A row whose RID an earlier row of the same table already had, with other values: the
/// earlier row is the one the index keeps (the first row per RID wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RidConflict {
    pub table: TableName,
    pub rid: String,
    /// Bag-relative path and line of the row the index keeps.
    pub first_file: String,
    pub first_line: u64,
    /// Bag-relative path and line of the row that differs from it.
    pub file: String,
    pub line: u64,
}

/// Rows of one table, read page by page in RID order so memory stays flat.
///
/// Returned by [`DatasetBag::table_iter`](crate::DatasetBag::table_iter).
pub struct TableRows {
    index: Arc<Index>,
    layout: Arc<TableLayout>,
    /// First page.
    first_sql: String,
    /// Later pages: `WHERE key > ?1` (separate so SQLite can seek on the key).
    next_sql: String,
    last: Option<rusqlite::types::Value>,
    buffer: VecDeque<Row>,
    done: bool,
}

impl std::fmt::Debug for TableRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableRows")
            .field("table", &self.layout.name)
            .field("done", &self.done)
            .finish()
    }
}

const PAGE: usize = 512;

impl TableRows {
    pub(crate) fn new(index: Arc<Index>, table: &TableName) -> Result<TableRows> {
        let layout = index.layout(table)?.clone();
        // Keyset pagination on RID (the primary key), or on rowid for a table without RID.
        let key = layout.key_sql().to_string();
        let select = format!(
            "SELECT {}, {key} FROM {}",
            if layout.select_list.is_empty() {
                "NULL".to_string()
            } else {
                layout.select_list.clone()
            },
            layout.sql_name
        );
        let first_sql = format!("{select} ORDER BY {key} LIMIT {PAGE}");
        let next_sql = format!("{select} WHERE {key} > ?1 ORDER BY {key} LIMIT {PAGE}");
        Ok(TableRows {
            index,
            layout,
            first_sql,
            next_sql,
            last: None,
            buffer: VecDeque::new(),
            done: false,
        })
    }

    fn fill(&mut self) -> Result<()> {
        let layout = self.layout.clone();
        let n = layout.read_width().max(1);
        let last = self.last.clone();
        let page: Vec<(Row, rusqlite::types::Value)> = self.index.with_conn(|conn| {
            let read = |r: &rusqlite::Row<'_>| {
                let row = layout.row_from_sql(r)?;
                let key: rusqlite::types::Value = r.get(n)?;
                Ok((row, key))
            };
            match last {
                None => conn
                    .prepare_cached(&self.first_sql)?
                    .query_map([], read)?
                    .collect(),
                Some(key) => conn
                    .prepare_cached(&self.next_sql)?
                    .query_map([key], read)?
                    .collect(),
            }
        })?;
        if page.len() < PAGE {
            self.done = true;
        }
        for (row, key) in page {
            self.last = Some(key);
            self.buffer.push_back(row);
        }
        Ok(())
    }
}

impl Iterator for TableRows {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        if self.buffer.is_empty() && !self.done {
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}

/// Items a reader hands over at once: large enough that the channel costs nothing per row,
/// small enough that a stream holds a few hundred rows at most.
const CHUNK: usize = 256;
/// Chunks a reader may run ahead of its consumer.
const CHUNKS_AHEAD: usize = 4;

/// Why a [`Produce`] function stopped before the end of its rows.
#[derive(Debug)]
pub(crate) enum Halt {
    /// A query failed.
    Sql(rusqlite::Error),
    /// Reading a row failed otherwise.
    Bag(Error),
    /// The consumer dropped the stream: nobody wants the rest.
    Gone,
}

impl From<rusqlite::Error> for Halt {
    fn from(e: rusqlite::Error) -> Self {
        Halt::Sql(e)
    }
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Bag(e)
    }
}

/// Where a query's producer puts its items: collected on the spot ([`Index::collect`]) or
/// handed to a [`QueryStream`] chunk by chunk ([`Index::stream`]).
pub(crate) struct Sink<T> {
    chunk: Vec<T>,
    to: Option<SyncSender<Msg<T>>>,
}

impl<T> Sink<T> {
    /// Emits one item; `Err(Halt::Gone)` once the stream's consumer is gone.
    pub(crate) fn push(&mut self, item: T) -> std::result::Result<(), Halt> {
        self.chunk.push(item);
        if self.to.is_some() && self.chunk.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::result::Result<(), Halt> {
        let Some(to) = &self.to else {
            return Ok(());
        };
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        to.send(Msg::Items(chunk)).map_err(|_| Halt::Gone)
    }
}

impl<T> Sink<T> {
    /// Emits one item that is already a batch (e.g. [`RawRows`]): handed over at once, not
    /// held back until [`CHUNK`] items have gathered.
    pub(crate) fn push_batch(&mut self, item: T) -> std::result::Result<(), Halt> {
        self.chunk.push(item);
        self.flush()
    }

    /// Rows a producer should put in one batch: [`CHUNK`] for a stream; no limit when
    /// collecting, where everything is held anyway and every new batch is one more large
    /// allocation (each of which has the allocator sweep its freed small blocks).
    pub(crate) fn batch_rows(&self) -> usize {
        if self.to.is_some() {
            CHUNK
        } else {
            usize::MAX
        }
    }
}

/// Result rows copied out of SQLite as they are stored, many rows to one buffer: a reader
/// thread hands [`CHUNK`] rows over in a few allocations, and the consumer builds the rows'
/// values in its own thread. (Values built on the reader and dropped by the consumer cost
/// the allocator a lock on the reader's arena for every string, which both threads then
/// wait on.)
#[derive(Debug)]
pub(crate) struct RawRows {
    width: usize,
    cells: Vec<RawCell>,
    bytes: Vec<u8>,
}

/// One stored cell of [`RawRows`]; text and blobs as ranges of its bytes.
#[derive(Debug, Clone, Copy)]
enum RawCell {
    Null,
    Integer(i64),
    Real(f64),
    Text(usize, usize),
    Blob(usize, usize),
}

impl RawRows {
    /// An empty batch of rows `width` result columns wide.
    pub(crate) fn new(width: usize) -> RawRows {
        RawRows {
            width: width.max(1),
            cells: Vec::with_capacity(width.max(1) * CHUNK),
            bytes: Vec::new(),
        }
    }

    /// Copies the first `width` columns of a result row.
    pub(crate) fn push(&mut self, row: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        for i in 0..self.width {
            let cell = match row.get_ref(i)? {
                ValueRef::Null => RawCell::Null,
                ValueRef::Integer(n) => RawCell::Integer(n),
                ValueRef::Real(f) => RawCell::Real(f),
                ValueRef::Text(t) => {
                    let start = self.bytes.len();
                    self.bytes.extend_from_slice(t);
                    RawCell::Text(start, self.bytes.len())
                }
                ValueRef::Blob(b) => {
                    let start = self.bytes.len();
                    self.bytes.extend_from_slice(b);
                    RawCell::Blob(start, self.bytes.len())
                }
            };
            self.cells.push(cell);
        }
        Ok(())
    }

    /// Rows held.
    pub(crate) fn len(&self) -> usize {
        self.cells.len() / self.width
    }

    /// Cell `column` of row `row`, as SQLite gave it (`Null` past the width).
    pub(crate) fn get(&self, row: usize, column: usize) -> ValueRef<'_> {
        if column >= self.width {
            return ValueRef::Null;
        }
        match self.cells.get(row * self.width + column) {
            None | Some(RawCell::Null) => ValueRef::Null,
            Some(RawCell::Integer(n)) => ValueRef::Integer(*n),
            Some(RawCell::Real(f)) => ValueRef::Real(*f),
            Some(RawCell::Text(a, b)) => ValueRef::Text(&self.bytes[*a..*b]),
            Some(RawCell::Blob(a, b)) => ValueRef::Blob(&self.bytes[*a..*b]),
        }
    }
}

/// Runs `sql` on `conn` and emits its rows as [`RawRows`] batches of
/// [`Sink::batch_rows`] rows, `width` result columns each.
pub(crate) fn emit_raw_rows(
    conn: &Connection,
    sql: &str,
    width: usize,
    sink: &mut Sink<RawRows>,
) -> std::result::Result<(), Halt> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([])?;
    let mut batch = RawRows::new(width);
    let batch_rows = sink.batch_rows();
    while let Some(row) = rows.next()? {
        batch.push(row)?;
        if batch.len() >= batch_rows {
            sink.push_batch(std::mem::replace(&mut batch, RawRows::new(width)))?;
        }
    }
    if batch.len() > 0 {
        sink.push_batch(batch)?;
    }
    Ok(())
}

/// What a reader thread sends.
enum Msg<T> {
    Items(Vec<T>),
    Failed(Error),
    End,
}

/// The items of one [`Index::stream`] producer, read on a thread of their own with its own
/// read-only connection and handed over in chunks through a bounded channel, so a result
/// of any size passes in flat memory. Dropping the stream stops the reader.
pub(crate) struct QueryStream<T> {
    from: Receiver<Msg<T>>,
    current: std::vec::IntoIter<T>,
    reader: Option<std::thread::JoinHandle<()>>,
    done: bool,
}

impl<T> Iterator for QueryStream<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            match self.from.recv() {
                Ok(Msg::Items(chunk)) => self.current = chunk.into_iter(),
                Ok(Msg::Failed(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(Msg::End) => self.done = true,
                Err(_) => {
                    // The reader ended without `End`: it panicked. Pass the panic on.
                    self.done = true;
                    if let Some(Err(panic)) = self.reader.take().map(|h| h.join()) {
                        std::panic::resume_unwind(panic);
                    }
                    return None;
                }
            }
        }
    }
}

impl Index {
    /// Runs `produce` with this index's connection and returns everything it emitted.
    pub(crate) fn collect<T>(
        &self,
        produce: impl FnOnce(&Connection, &mut Sink<T>) -> std::result::Result<(), Halt>,
    ) -> Result<Vec<T>> {
        let mut sink = Sink {
            chunk: Vec::new(),
            to: None,
        };
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        match produce(&conn, &mut sink) {
            Ok(()) => Ok(sink.chunk),
            Err(Halt::Sql(e)) => Err(self.err(e)),
            Err(Halt::Bag(e)) => Err(e),
            // Nobody can drop a collecting sink's consumer.
            Err(Halt::Gone) => Ok(sink.chunk),
        }
    }

    /// Runs `produce` on a reader thread with a read-only connection of its own; what it
    /// emits arrives through the returned stream as the reader goes.
    pub(crate) fn stream<T: Send + 'static>(
        &self,
        produce: impl FnOnce(&Connection, &mut Sink<T>) -> std::result::Result<(), Halt>
            + Send
            + 'static,
    ) -> Result<QueryStream<T>> {
        let path = self.path.clone();
        let (to, from) = sync_channel(CHUNKS_AHEAD);
        let reader = std::thread::Builder::new()
            .name("deriva-bag-index-reader".into())
            .spawn(move || {
                let mut sink = Sink {
                    chunk: Vec::with_capacity(CHUNK),
                    to: Some(to.clone()),
                };
                let done = connect(&path)
                    .map_err(Halt::Bag)
                    .and_then(|conn| produce(&conn, &mut sink))
                    .and_then(|()| sink.flush());
                let last = match done {
                    Ok(()) => Msg::End,
                    Err(Halt::Gone) => return,
                    Err(Halt::Sql(source)) => Msg::Failed(Error::Index { path, source }),
                    Err(Halt::Bag(e)) => Msg::Failed(e),
                };
                // The consumer may be gone by now; then nobody needs the last word.
                let _ = to.send(last);
            })
            .map_err(|e| Error::io(self.path(), e))?;
        Ok(QueryStream {
            from,
            current: Vec::new().into_iter(),
            reader: Some(reader),
            done: false,
        })
    }
}
