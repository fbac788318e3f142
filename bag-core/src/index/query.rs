//! Reading the index: one read-only connection per opened bag, typed rows, streaming pages.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use deriva_bag_features::{CatalogModel, Row, TableName};
use rusqlite::{Connection, OpenFlags, Params};

use super::build::{part_path, MAX_PARTS};
use super::schema::{layouts, TableLayout, CONFLICTS_TABLE, META_TABLE};
use crate::{Error, Result};

/// An opened index: a read-only SQLite connection plus the layout of every model table.
pub(crate) struct Index {
    path: PathBuf,
    conn: Mutex<Connection>,
    layouts: HashMap<TableName, Arc<TableLayout>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

impl Index {
    /// Opens a built index read-only, with its part files attached.
    ///
    /// The build spreads the tables over part files written in parallel
    /// ([`part_path`]); attached, their tables resolve by their unqualified names (each name
    /// exists in exactly one part), so every query reads as if there were one file.
    pub(crate) fn open(path: &Path, model: &CatalogModel) -> Result<Index> {
        let err = |source| Error::Index {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        let parts: usize = conn
            .query_row(
                &format!("SELECT value FROM {META_TABLE} WHERE key = 'parts'"),
                [],
                |r| r.get::<_, String>(0),
            )
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
        let layouts = layouts(model)
            .into_iter()
            .map(|(name, layout)| (name, Arc::new(layout)))
            .collect();
        Ok(Index {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            layouts,
        })
    }

    /// The index file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
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

    /// Rows of `table` from a full `sql` query whose first result columns are the table's
    /// read columns in order (as [`TableLayout::select_list`] lists them).
    pub(crate) fn query_rows<P: Params>(
        &self,
        table: &TableName,
        sql: &str,
        params: P,
    ) -> Result<Vec<Row>> {
        let layout = self.layout(table)?.clone();
        self.with_conn(|conn| {
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
        self.with_conn(|conn| {
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
