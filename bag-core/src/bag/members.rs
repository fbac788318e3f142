//! Dataset members, reachable rows, and the internal query API other modules (features) use.

use std::collections::HashSet;
use std::sync::Arc;

use deriva_bag_features::{Members, Rid, Row, TableName};
use indexmap::IndexMap;
use rusqlite::{Connection, Params};

use super::{DatasetBag, ElementType};
use crate::index::query::{Halt, QueryStream, RawRows, Sink};
use crate::index::reachable::dataset_table;
use crate::index::reachable::ReachableSet;
use crate::index::schema::TableLayout;
use crate::Result;

/// One member row and the element table it belongs to.
pub type Member = (TableName, Row);

/// The members of a dataset, streamed from the index: element table by element table (in
/// [`DatasetBag::list_dataset_element_types`] order), each table's rows dataset by dataset
/// (this one first, then, when recursing, each nested dataset depth first), by RID within a
/// dataset. Returned by [`DatasetBag::members_iter`].
pub struct MemberRows {
    tables: Vec<TableName>,
    rows: QueryStream<(usize, Rid, Row)>,
}

impl MemberRows {
    /// The same rows, each with the RID of the dataset it is a direct member of: the listed
    /// dataset or, when recursing, the nested dataset whose level holds it.
    pub fn with_origin(self) -> MemberOrigins {
        MemberOrigins { rows: self }
    }
}

/// [`MemberRows`] with each row's dataset: `(element table, member of, row)`. Returned by
/// [`MemberRows::with_origin`].
#[derive(Debug)]
pub struct MemberOrigins {
    rows: MemberRows,
}

impl Iterator for MemberOrigins {
    type Item = Result<(TableName, Rid, Row)>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.rows.rows.next()?;
        Some(item.map(|(table, origin, row)| (self.rows.tables[table].clone(), origin, row)))
    }
}

impl std::fmt::Debug for MemberRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberRows")
            .field("tables", &self.tables)
            .finish()
    }
}

impl Iterator for MemberRows {
    type Item = Result<Member>;

    fn next(&mut self) -> Option<Result<Member>> {
        let item = self.rows.next()?;
        Some(item.map(|(table, _, row)| (self.tables[table].clone(), row)))
    }
}

/// One members query: the rows of one element table that one dataset holds.
struct MemberQuery {
    /// Index of the element type.
    table: usize,
    sql: Arc<str>,
    dataset: Rid,
    layout: Arc<TableLayout>,
    /// A `Dataset` row never listed: the dataset whose members these are.
    skip: Option<Rid>,
}

/// Emits the rows of each query in turn as [`RawRows`] batches, each with its query's
/// element-type index and dataset.
fn run_member_queries_raw(
    queries: &[MemberQuery],
    conn: &Connection,
    sink: &mut Sink<(usize, Rid, RawRows)>,
) -> std::result::Result<(), Halt> {
    for q in queries {
        let mut stmt = conn.prepare_cached(&q.sql)?;
        let mut rows = stmt.query([q.dataset.as_str()])?;
        let rid_at = q.layout.column_index("RID");
        let width = q.layout.read_width();
        let mut batch = RawRows::new(width);
        while let Some(r) = rows.next()? {
            if is_skipped(q, rid_at, r)? {
                continue;
            }
            batch.push(r)?;
            if batch.len() >= RAW_BATCH {
                let full = std::mem::replace(&mut batch, RawRows::new(width));
                sink.push_batch((q.table, q.dataset.clone(), full))?;
            }
        }
        if batch.len() > 0 {
            sink.push_batch((q.table, q.dataset.clone(), batch))?;
        }
    }
    Ok(())
}

/// Rows per [`RawRows`] batch a members reader hands over.
const RAW_BATCH: usize = 256;

/// Whether result row `r` of `q` is the dataset whose members these are (never listed).
fn is_skipped(
    q: &MemberQuery,
    rid_at: Option<usize>,
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<bool> {
    let (Some(skip), Some(at)) = (&q.skip, rid_at) else {
        return Ok(false);
    };
    Ok(
        matches!(r.get_ref(at)?, rusqlite::types::ValueRef::Text(rid) if rid == skip.as_str().as_bytes()),
    )
}

/// Emits the rows of each query in turn, each as `read` makes it from its result row.
fn run_member_queries<T>(
    queries: &[MemberQuery],
    conn: &Connection,
    sink: &mut Sink<(usize, Rid, T)>,
    read: impl Fn(&TableLayout, &rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> std::result::Result<(), Halt> {
    for q in queries {
        let mut stmt = conn.prepare_cached(&q.sql)?;
        let mut rows = stmt.query([q.dataset.as_str()])?;
        let rid_at = q.layout.column_index("RID");
        while let Some(r) = rows.next()? {
            if is_skipped(q, rid_at, r)? {
                continue;
            }
            sink.push((q.table, q.dataset.clone(), read(&q.layout, r)?))?;
        }
    }
    Ok(())
}

impl DatasetBag {
    /// Members of this dataset by element table (every element type is a key, even when
    /// empty; keys sorted by table name, rows by RID).
    ///
    /// `limit` caps rows per table per dataset level. With `recurse`, each nested dataset's
    /// members (children in RID order, depth first) are appended after this level's rows, as in
    /// the reference (no de-duplication across levels); a visited set guards against cycles,
    /// and a nesting cycle back to this dataset never lists it as a `Dataset` member of itself.
    /// [`members_iter`](Self::members_iter) streams the same rows.
    pub fn list_dataset_members(&self, recurse: bool, limit: Option<usize>) -> Result<Members> {
        let queries = self.member_queries(recurse, limit)?;
        let rows = self.index().collect(|conn, sink| {
            run_member_queries(&queries, conn, sink, TableLayout::row_from_sql)
        })?;
        let mut members: Members = self
            .shared
            .element_types
            .iter()
            .map(|e| (e.table.clone(), Vec::new()))
            .collect();
        for (table, _, row) in rows {
            if let Some((_, list)) = members.get_index_mut(table) {
                list.push(row);
            }
        }
        Ok(members)
    }

    /// [`list_dataset_members`](Self::list_dataset_members) with each row paired with the RID
    /// of the dataset it is a direct member of: this dataset, or the nested dataset whose
    /// level listed it. Same keys, rows and order.
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{fixtures, DatasetBag, OpenOptions};
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let members = bag.list_dataset_members_by_origin(true, None)?;
    /// let images = members.iter().find(|(t, _)| t.table == "Image").map(|(_, r)| r).unwrap();
    /// // 1-I001 is a member of the Training dataset 1-D001.
    /// let (origin, _) = images.iter().find(|(_, row)| row.text("RID") == Some("1-I001")).unwrap();
    /// assert_eq!(origin.as_str(), "1-D001");
    /// # Ok(()) }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn list_dataset_members_by_origin(
        &self,
        recurse: bool,
        limit: Option<usize>,
    ) -> Result<IndexMap<TableName, Vec<(Rid, Row)>>> {
        let mut members: IndexMap<TableName, Vec<(Rid, Row)>> = self
            .shared
            .element_types
            .iter()
            .map(|e| (e.table.clone(), Vec::new()))
            .collect();
        for member in self.members_iter(recurse, limit)?.with_origin() {
            let (table, origin, row) = member?;
            if let Some(list) = members.get_mut(&table) {
                list.push((origin, row));
            }
        }
        Ok(members)
    }

    /// [`list_dataset_members`](Self::list_dataset_members) as an iterator of `(element
    /// table, row)` pairs, read from the index on a reader thread as they are consumed, so
    /// a dataset of any size lists in flat memory. Element tables without members yield
    /// nothing ([`list_dataset_element_types`](Self::list_dataset_element_types) names them
    /// all).
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{DatasetBag, OpenOptions};
    /// let tmp = tempfile::tempdir()?;
    /// let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let training = bag.dataset(&"1-D001".into())?;
    /// let mut listed = Vec::new();
    /// for member in training.members_iter(false, None)? {
    ///     let (table, row) = member?;
    ///     listed.push(format!("{}/{}", table.table, row.rid().unwrap()));
    /// }
    /// assert_eq!(listed, ["Image/1-I001", "Image/1-I002", "Image/1-I005", "Subject/1-S001"]);
    /// # Ok(()) }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn members_iter(&self, recurse: bool, limit: Option<usize>) -> Result<MemberRows> {
        let queries = self.member_queries(recurse, limit)?;
        let rows = self.index().stream(move |conn, sink| {
            run_member_queries(&queries, conn, sink, TableLayout::row_from_sql)
        })?;
        Ok(MemberRows {
            tables: self.list_dataset_element_types(),
            rows,
        })
    }

    /// [`members_iter`](Self::members_iter)`(..).with_origin()` for a listing printed as
    /// JSON: calls `f` with each member row's element table, the dataset it is a direct
    /// member of and the row as the JSON object serializing its [`Row`] gives (compact,
    /// columns in order; the same bytes), written from the index without building the row
    /// and into one buffer reused for every row. The rows are read on a reader thread, as
    /// `members_iter` reads them; the first error, `f`'s or the index's, stops the listing.
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{DatasetBag, Error, OpenOptions};
    /// let tmp = tempfile::tempdir()?;
    /// let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let mut json = Vec::new();
    /// bag.for_each_member_json(true, None, |table, origin, row| {
    ///     json.push((table.clone(), origin.clone(), row.to_vec()));
    ///     Ok::<(), Error>(())
    /// })?;
    /// let rows: Vec<_> = bag.members_iter(true, None)?.with_origin().collect::<Result<_, _>>()?;
    /// assert_eq!(json.len(), rows.len());
    /// for ((table, origin, json), (t, o, row)) in json.iter().zip(&rows) {
    ///     assert_eq!((table, origin), (t, o));
    ///     assert_eq!(json, &serde_json::to_vec(row)?);
    /// }
    /// # Ok(()) }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn for_each_member_json<E: From<crate::Error>>(
        &self,
        recurse: bool,
        limit: Option<usize>,
        mut f: impl FnMut(&TableName, &Rid, &[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let queries = self.member_queries(recurse, limit)?;
        let tables = self.list_dataset_element_types();
        let mut layouts = Vec::with_capacity(tables.len());
        for table in &tables {
            layouts.push(Arc::clone(self.index().layout(table)?));
        }
        let batches = self
            .index()
            .stream(move |conn, sink| run_member_queries_raw(&queries, conn, sink))?;
        let mut json = Vec::new();
        for batch in batches {
            let (table, origin, rows) = batch?;
            let (Some(name), Some(layout)) = (tables.get(table), layouts.get(table)) else {
                continue;
            };
            for row in 0..rows.len() {
                json.clear();
                layout
                    .write_row_json(&rows, row, &mut json)
                    .map_err(|e| self.index().err(e))?;
                f(name, &origin, &json)?;
            }
        }
        Ok(())
    }

    /// The members queries in output order: element table by element table, dataset by
    /// dataset.
    fn member_queries(&self, recurse: bool, limit: Option<usize>) -> Result<Vec<MemberQuery>> {
        let datasets = if recurse {
            let mut order = Vec::new();
            self.nesting_preorder(&self.info.rid, &mut HashSet::new(), &mut order)?;
            order
        } else {
            vec![self.info.rid.clone()]
        };
        let mut out = Vec::new();
        for (table, element) in self.shared.element_types.iter().enumerate() {
            let Some(sql) = self.member_sql(element, limit)? else {
                continue;
            };
            let sql: Arc<str> = sql.into();
            let layout = Arc::clone(self.index().layout(&element.table)?);
            let skip = (element.table == dataset_table()).then(|| self.info.rid.clone());
            for dataset in &datasets {
                out.push(MemberQuery {
                    table,
                    sql: Arc::clone(&sql),
                    dataset: dataset.clone(),
                    layout: Arc::clone(&layout),
                    skip: skip.clone(),
                });
            }
        }
        Ok(out)
    }

    /// `rid` and its nested datasets, depth first, children in RID order, each once.
    fn nesting_preorder(
        &self,
        rid: &Rid,
        visited: &mut HashSet<Rid>,
        out: &mut Vec<Rid>,
    ) -> Result<()> {
        if !visited.insert(rid.clone()) {
            return Ok(());
        }
        out.push(rid.clone());
        for child in super::dataset::nested_rids(&self.shared, rid)? {
            self.nesting_preorder(&child, visited, out)?;
        }
        Ok(())
    }

    /// The query for the member rows of `element` held by dataset `?1`, by RID; `None` when
    /// it can hold none.
    fn member_sql(&self, element: &ElementType, limit: Option<usize>) -> Result<Option<String>> {
        if limit == Some(0) || element.links.is_empty() {
            return Ok(None);
        }
        let index = self.index();
        let mut subqueries: Vec<String> = Vec::new();
        for l in &element.links {
            let a = index.layout(&l.association)?;
            if let (Some(m), Some(d)) = (a.col(&l.member_column), a.col(&l.dataset_column)) {
                subqueries.push(format!("SELECT {m} FROM {} WHERE {d} = ?1", a.sql_name));
            }
        }
        let Some(key) = index.col(&element.table, "RID") else {
            return Ok(None);
        };
        if subqueries.is_empty() {
            return Ok(None);
        }
        let layout = index.layout(&element.table)?;
        let limit_sql = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        Ok(Some(format!(
            "SELECT {} FROM {} WHERE {key} IN ({}) ORDER BY {key}{limit_sql}",
            layout.select_list,
            layout.sql_name,
            subqueries.join(" UNION ")
        )))
    }

    /// Element types of this bag: tables whose rows can be dataset members (sorted).
    pub fn list_dataset_element_types(&self) -> Vec<TableName> {
        self.shared
            .element_types
            .iter()
            .map(|e| e.table.clone())
            .collect()
    }

    /// Rows of `table` reachable from this dataset and all its descendants through member
    /// rows and FK paths in either direction, unique and
    /// sorted by RID. E.g. the Images of member Subjects.
    pub fn reachable_rows(&self, table: &TableName) -> Result<Vec<Row>> {
        let reach = self.reachable_set(table)?;
        let Some(key) = self.index().col(table, "RID") else {
            return Ok(Vec::new());
        };
        let layout = self.index().layout(table)?;
        let sql = format!(
            "SELECT {} FROM {} WHERE {key} IN ({}) ORDER BY {key}",
            layout.select_list,
            layout.sql_name,
            reach.sql()
        );
        self.index()
            .query_rows_reaching(Some(&reach), table, &sql, [])
    }

    /// [`reachable_rows`](Self::reachable_rows) read on a reader thread as they are consumed
    /// (same rows, same order), so any number of rows passes in flat memory.
    pub(crate) fn reachable_rows_stream(&self, table: &TableName) -> Result<QueryStream<Row>> {
        let reach = self.reachable_set(table)?;
        let layout = Arc::clone(self.index().layout(table)?);
        let key = layout.col("RID").map(str::to_string);
        self.index().stream(move |conn, sink| {
            let Some(key) = key else { return Ok(()) };
            let sql = format!(
                "SELECT {} FROM {} WHERE {key} IN ({}) ORDER BY {key}",
                layout.select_list,
                layout.sql_name,
                reach.sql()
            );
            // The reader's own connection, closed when it ends: nothing to detach.
            reach.attach(conn)?;
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                sink.push(layout.row_from_sql(row)?)?;
            }
            Ok(())
        })
    }

    /// The RIDs of `table` reachable from this dataset and its descendants, sorted and unique,
    /// read on a reader thread as they are consumed (no rows are built).
    pub(crate) fn reachable_rids_stream(&self, table: &TableName) -> Result<QueryStream<Rid>> {
        let reach = self.reachable_set(table)?;
        self.index().stream(move |conn, sink| {
            let sql = format!("SELECT DISTINCT * FROM ({}) ORDER BY 1", reach.sql());
            reach.attach(conn)?;
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                if let Some(rid) = row.get::<_, Option<String>>(0)? {
                    sink.push(Rid::new(rid))?;
                }
            }
            Ok(())
        })
    }

    /// The RIDs of `table` reachable from this dataset and its descendants, materialized in
    /// the cache on first need (see [`ReachableSet`]); a query reads them as
    /// `… IN (<set.sql()>)` with the set attached to its connection.
    pub(crate) fn reachable_set(&self, table: &TableName) -> Result<ReachableSet> {
        // Fails with TableNotFound for a table the model lacks.
        self.index().layout(table)?;
        let rids = self.dataset_and_descendants()?;
        self.index().reachable_set(&self.shared.model, table, &rids)
    }

    /// First column of each result row as text (NULLs skipped).
    pub(crate) fn query_strings<P: Params>(&self, sql: &str, params: P) -> Result<Vec<String>> {
        self.index().query_strings(sql, params)
    }
}
