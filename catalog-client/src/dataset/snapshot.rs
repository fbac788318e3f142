//! Paged reads of one catalog snapshot: every query is `@sort(RID)@after(…)?limit=N` pages,
//! and every "rows whose column is one of these values" query is cut into `col=any(…)`
//! chunks (each itself paged), so no table is ever read whole unless asked for
//! ([`SnapshotReader::scan`] with no filter) and no answer is unbounded.

use std::collections::BTreeSet;
use std::sync::Arc;

use deriva_bag_features::{Row, Table, TableName, Value};
use deriva_bag_format::csv::json_cell;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Map, Value as Json};

use crate::client::q;
use crate::error::{Error, Result};
use crate::transport::Transport;

/// Rows per page.
pub(crate) const PAGE: usize = 2_000;

/// Values per `any(…)` filter: keeps URLs near 4 KB with RIDs and most keys.
pub(crate) const CHUNK: usize = 200;

/// Chunk queries in flight at once.
const CHUNKS_AT_ONCE: usize = 4;

/// One catalog row as ERMrest sends it.
pub(crate) type JsonRow = Map<String, Json>;

/// Reads of `/ermrest/catalog/<id>@<snapshot>` (or the live catalog when the version has no
/// snapshot).
#[derive(Clone, Debug)]
pub(crate) struct SnapshotReader {
    transport: Transport,
    /// `/ermrest/catalog/<id>[@<snapshot>]`.
    base: String,
}

/// A column value as a filter literal; `None` for NULL (never matched by `=`).
pub(crate) fn literal(row: &JsonRow, column: &str) -> Option<String> {
    row.get(column).and_then(json_cell)
}

impl SnapshotReader {
    pub(crate) fn new(transport: Transport, base: String) -> Self {
        SnapshotReader { transport, base }
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// `GET <base><path>` as an array of row objects.
    pub(crate) async fn get(&self, path: &str) -> Result<Vec<JsonRow>> {
        let full = format!("{}{path}", self.base);
        match self.transport.get_json(&full).await? {
            Json::Array(rows) => Ok(rows
                .into_iter()
                .filter_map(|r| match r {
                    Json::Object(m) => Some(m),
                    _ => None,
                })
                .collect()),
            other => Err(Error::Protocol {
                url: self.transport.url(&full),
                reason: format!("expected a JSON array of rows, got {other}"),
            }),
        }
    }

    /// Every row of `table` passing `filter` (path elements such as `/Dataset=1-D001`, already
    /// encoded; empty for none), in RID order, page by page. With `columns`, only those
    /// (plus `RID`, which paging needs) are read.
    pub(crate) async fn scan(
        &self,
        table: &TableName,
        filter: &str,
        columns: Option<&[&str]>,
    ) -> Result<Vec<JsonRow>> {
        let root = format!("{}:{}", q(&table.schema), q(&table.table));
        let head = match columns {
            None => format!("/entity/{root}{filter}"),
            Some(cols) => {
                let mut list: Vec<String> = vec!["RID".into()];
                list.extend(cols.iter().filter(|c| **c != "RID").map(|c| q(c)));
                format!("/attribute/{root}{filter}/{}", list.join(","))
            }
        };
        let mut out: Vec<JsonRow> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = match &after {
                None => format!("{head}@sort(RID)?limit={PAGE}"),
                Some(a) => format!("{head}@sort(RID)@after({})?limit={PAGE}", q(a)),
            };
            let rows = self.get(&page).await?;
            let full = rows.len() >= PAGE;
            out.extend(rows);
            if !full {
                return Ok(out);
            }
            after = out.last().and_then(|r| literal(r, "RID"));
            if after.is_none() {
                return Err(Error::Protocol {
                    url: self.transport.url(&format!("{}{page}", self.base)),
                    reason: "a page's last row has no RID to continue after".into(),
                });
            }
        }
    }

    /// Rows of `table` whose `column` is one of `values`, chunk by chunk (a few chunks at a
    /// time), in chunk order and RID order within a chunk.
    pub(crate) async fn scan_any(
        &self,
        table: &TableName,
        column: &str,
        values: &[String],
        columns: Option<&[&str]>,
    ) -> Result<Vec<JsonRow>> {
        let chunks: Vec<String> = values
            .chunks(CHUNK)
            .map(|chunk| {
                let list: Vec<String> = chunk.iter().map(|v| q(v)).collect();
                format!("/{}=any({})", q(column), list.join(","))
            })
            .collect();
        let pages: Vec<Vec<JsonRow>> = futures_util::stream::iter(chunks)
            .map(|filter| async move { self.scan(table, &filter, columns).await })
            .buffered(CHUNKS_AT_ONCE)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Rows of `table` whose multi-column key `(columns…)` is one of `tuples`, as
    /// `(a=1&b=2);(a=3&b=4)` chunks.
    pub(crate) async fn scan_tuples(
        &self,
        table: &TableName,
        key: &[String],
        tuples: &BTreeSet<Vec<String>>,
        columns: Option<&[&str]>,
    ) -> Result<Vec<JsonRow>> {
        let tuples: Vec<&Vec<String>> = tuples.iter().collect();
        let chunk = (CHUNK / key.len().max(1)).max(1);
        let mut out = Vec::new();
        for part in tuples.chunks(chunk) {
            let ors: Vec<String> = part
                .iter()
                .map(|t| {
                    let ands: Vec<String> = key
                        .iter()
                        .zip(t.iter())
                        .map(|(c, v)| format!("{}={}", q(c), q(v)))
                        .collect();
                    format!("({})", ands.join("&"))
                })
                .collect();
            out.extend(
                self.scan(table, &format!("/{}", ors.join(";")), columns)
                    .await?,
            );
        }
        Ok(out)
    }
}

/// Typed rows of `table` from catalog JSON, exactly as a bag serves them: each cell becomes
/// the text a bag's CSV holds ([`json_cell`], what a download writes) and is typed by the one
/// value parser from the column's type; every model column is present, in model order.
pub(crate) fn typed_rows(table: &Table, rows: Vec<JsonRow>) -> Result<Vec<Row>> {
    let names: Arc<[Arc<str>]> = table
        .columns
        .iter()
        .map(|c| Arc::from(c.name.as_str()))
        .collect();
    rows.into_iter()
        .map(|r| {
            let values = table
                .columns
                .iter()
                .map(|c| match r.get(&c.name).and_then(json_cell) {
                    None => Ok(Value::Null),
                    Some(text) => Value::parse(&text, &c.ty).map_err(|e| {
                        Error::Validation(format!(
                            "{}.{} of row {}: {e}",
                            table.name,
                            c.name,
                            literal(&r, "RID").unwrap_or_default()
                        ))
                    }),
                })
                .collect::<Result<Vec<Value>>>()?;
            Ok(Row::new(names.clone(), values))
        })
        .collect()
}

/// Sorts rows by RID text (byte order, as the bag index's `ORDER BY`).
pub(crate) fn sort_by_rid(rows: &mut [Row]) {
    rows.sort_by(|a, b| a.text("RID").cmp(&b.text("RID")));
}
