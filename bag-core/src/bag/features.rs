//! Features of a bag: discovery from `data/schema.json`, dataset-scoped values from the index,
//! and the workflow → executions lookup `select_by_workflow` uses.
//!
//! Feature values are read in one pass over the feature table in target order (the target
//! column's index covers the record's fields, so the table itself is never read),
//! restricted in SQL to the targets the dataset reaches; each target's rows are then
//! ordered and reduced by the features crate's [`select_stream`], the one implementation of
//! the selectors. So [`DatasetBag::feature_values_iter`] holds one target's records at a
//! time, whatever the size of the bag. A reader thread runs the query and hands raw result
//! rows over ([`RawRows`]); the consumer builds [`FeatureRow`]s (a [`FeatureRecord`] only
//! for a value the caller takes as one), so no value crosses threads.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deriva_bag_features::model::ML_SCHEMA;
use deriva_bag_features::{
    select_stream, Feature, FeatureId, FeatureRecord, FieldKey, Rid, SelectStream, Selectable,
    Selector, TableName, Value,
};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::Value as Json;

use super::DatasetBag;
use crate::index::query::{emit_raw_rows, Halt, QueryStream, RawRows, Sink};
use crate::index::reachable::ReachableSet;
use crate::index::schema::{timestamptz_from_sql, value_from_sql, TableLayout};
use crate::Result;

/// Where one record field sits in the result rows of a [`RecordQuery`].
struct FieldAt {
    /// Index of the column in the table layout.
    column: usize,
    /// Result position of the column.
    position: usize,
    /// Result position of its hidden UTC column (timestamptz columns only).
    utc: Option<usize>,
}

/// What every [`FeatureRow`] of one read shares: the feature, the field names and where the
/// fields the selectors read sit among them.
#[derive(Debug, PartialEq)]
struct RowShape {
    id: FeatureId,
    target_column: String,
    /// Field names in field order, each once.
    names: Arc<[Arc<str>]>,
    target: Option<usize>,
    rct: Option<usize>,
    execution: Option<usize>,
}

impl RowShape {
    fn new(id: FeatureId, target_column: String, names: Arc<[Arc<str>]>) -> RowShape {
        let at = |name: &str| names.iter().position(|n| &**n == name);
        RowShape {
            target: at(&target_column),
            rct: at("RCT"),
            execution: at("Execution"),
            id,
            target_column,
            names,
        }
    }
}

/// One feature value as a bag streams it ([`DatasetBag::feature_rows_iter`]): the fields of
/// its [`FeatureRecord`] in field order, over a list of names that every row of the read
/// shares, so a row costs its values and little else. It serializes as the record's fields
/// do (the `feature-values --json` object); [`into_record`](Self::into_record) gives the
/// record.
///
/// ```
/// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use deriva_bag_core::{DatasetBag, OpenOptions};
/// use deriva_bag_core::features::Selector;
/// let tmp = tempfile::tempdir()?;
/// let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
/// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
/// let bag = DatasetBag::open_with(&generated.path, &options)?;
/// let mut rows = bag.feature_rows_iter("Image", "Glaucoma", Some(Selector::newest()))?;
/// let first = rows.next().transpose()?.expect("a row");
/// assert_eq!(first.get("Glaucoma").and_then(|v| v.as_str()), Some("Severe"));
/// assert_eq!(
///     serde_json::to_string(&first)?,
///     serde_json::to_string(&first.clone().into_record().fields)?
/// );
/// assert_eq!(first.into_record().target(), Some("1-I001"));
/// # Ok(()) }
/// # #[cfg(not(feature = "fixtures"))] fn main() {}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    shape: Arc<RowShape>,
    values: Vec<Value>,
    rid: Option<Rid>,
}

impl FeatureRow {
    /// `(field, value)` pairs in field order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.shape.names.iter().map(|n| &**n).zip(&self.values)
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let at = self.shape.names.iter().position(|n| &**n == name)?;
        self.values.get(at)
    }

    /// The feature row's own RID.
    pub fn rid(&self) -> Option<&Rid> {
        self.rid.as_ref()
    }

    /// The text of the field at `at`.
    fn text_at(&self, at: Option<usize>) -> Option<&str> {
        at.and_then(|at| self.values.get(at)).and_then(json_text)
    }

    /// The record: the same fields, their values as JSON.
    pub fn into_record(self) -> FeatureRecord {
        let fields = self
            .shape
            .names
            .iter()
            .zip(self.values)
            .map(|(name, value)| (name.to_string(), into_json(value)))
            .collect();
        FeatureRecord {
            feature: self.shape.id.clone(),
            target_column: self.shape.target_column.clone(),
            rid: self.rid,
            fields,
        }
    }
}

impl serde::Serialize for FeatureRow {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (name, value) in self.fields() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Selectable for FeatureRow {
    fn target(&self) -> Option<&str> {
        self.text_at(self.shape.target)
    }
    fn rct(&self) -> Option<&str> {
        self.text_at(self.shape.rct)
    }
    fn row_rid(&self) -> Option<&Rid> {
        self.rid.as_ref()
    }
    fn execution(&self) -> Option<&str> {
        self.text_at(self.shape.execution)
    }
    fn field_key(&self, name: &str) -> FieldKey<'_> {
        match self.get(name) {
            None => FieldKey::Missing,
            Some(value) => match json_text(value) {
                Some(text) => FieldKey::Text(text),
                None => FieldKey::Other(value.to_json().to_string()),
            },
        }
    }
    fn is_of(&self, feature: &Feature) -> bool {
        let id = &self.shape.id;
        id.name == feature.name
            && id.table == feature.feature_table.table
            && id.schema == feature.feature_table.schema
    }
    fn feature_label(&self) -> String {
        let id = &self.shape.id;
        format!("{}:{} ({})", id.schema, id.table, id.name)
    }
    fn into_record(self) -> FeatureRecord {
        FeatureRow::into_record(self)
    }
    fn from_record(record: FeatureRecord) -> Self {
        let (names, values): (Vec<Arc<str>>, Vec<Value>) = record
            .fields
            .into_iter()
            .map(|(name, json)| (Arc::from(name.as_str()), from_json(json)))
            .unzip();
        FeatureRow {
            shape: Arc::new(RowShape::new(
                record.feature,
                record.target_column,
                names.into(),
            )),
            values,
            rid: record.rid,
        }
    }
}

/// A record's JSON field value as a row value that serializes, and turns back
/// ([`into_json`]), to the same JSON: strings as text (the selectors read them as text).
fn from_json(json: Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::String(s) => Value::Text(s),
        other => Value::Json(other),
    }
}

/// The text of a value whose JSON is a string (its record field's `as_str`); a row holds no
/// dates (see [`as_text_date`]).
fn json_text(value: &Value) -> Option<&str> {
    match value {
        Value::Text(s) | Value::Timestamp { raw: s, .. } | Value::TimestampTz { raw: s, .. } => {
            Some(s)
        }
        _ => None,
    }
}

/// A row with its RCT instant, as [`select_stream`] takes them.
type TimedRow = (FeatureRow, Option<DateTime<Utc>>);

/// How the records of one feature for one dataset are read from the index: the query, run
/// on a reader (see [`run`](Self::run)), and how its result rows become [`FeatureRow`]s
/// ([`RowReader`], in the consumer's thread).
struct RecordQuery {
    sql: String,
    /// Result columns per row.
    width: usize,
    /// The targets the dataset reaches, which `sql` reads.
    reach: ReachableSet,
}

impl RecordQuery {
    /// Emits every result row, in target order.
    fn run(&self, conn: &Connection, sink: &mut Sink<RawRows>) -> std::result::Result<(), Halt> {
        self.reach.attach(conn)?;
        let read = emit_raw_rows(conn, &self.sql, self.width, sink);
        // The connection may be the bag's own, which takes the next set later.
        let detached = self.reach.detach(conn);
        read?;
        detached.map_err(Halt::Sql)
    }
}

/// Builds the [`FeatureRow`] of each result row of a [`RecordQuery`].
struct RowReader {
    layout: Arc<TableLayout>,
    shape: Arc<RowShape>,
    /// Per field of `shape`, its column (`None`: the table lacks it, the value is `null`).
    fields: Vec<Option<FieldAt>>,
    /// The field whose value gives the RCT instant.
    rct: Option<usize>,
}

impl RowReader {
    /// The record of result row `row` of `rows`, with its RCT instant.
    fn record(&self, rows: &RawRows, row: usize) -> Result<TimedRow> {
        let mut values = Vec::with_capacity(self.fields.len());
        let mut instant = None;
        for (i, at) in self.fields.iter().enumerate() {
            let value = match at {
                Some(at) => self.read(at, rows, row)?,
                None => Value::Null,
            };
            if Some(i) == self.rct {
                instant = rct_instant(&value);
            }
            values.push(as_text_date(value));
        }
        let rid = match rows.get(row, 0) {
            ValueRef::Text(t) if !t.is_empty() => std::str::from_utf8(t).ok().map(Rid::new),
            _ => None,
        };
        let record = FeatureRow {
            shape: Arc::clone(&self.shape),
            values,
            rid,
        };
        Ok((record, instant))
    }

    /// The field's typed value, as `TableLayout::row_from_sql` reads it.
    fn read(&self, at: &FieldAt, rows: &RawRows, row: usize) -> Result<Value> {
        let col = &self.layout.columns[at.column];
        let cell = rows.get(row, at.position);
        let value = match at.utc {
            Some(utc) => timestamptz_from_sql(col, cell, rows.get(row, utc)),
            None => value_from_sql(col, cell),
        };
        Ok(value?)
    }
}

/// The rows of [`RawRows`] batches as [`FeatureRow`]s.
struct RowsOf<I> {
    batches: I,
    reader: RowReader,
    current: Option<RawRows>,
    next: usize,
}

impl<I: Iterator<Item = Result<RawRows>>> Iterator for RowsOf<I> {
    type Item = Result<TimedRow>;

    fn next(&mut self) -> Option<Result<TimedRow>> {
        loop {
            if let Some(rows) = &self.current {
                if self.next < rows.len() {
                    self.next += 1;
                    return Some(self.reader.record(rows, self.next - 1));
                }
            }
            match self.batches.next()? {
                Ok(rows) => {
                    self.current = Some(rows);
                    self.next = 0;
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A date as the text its JSON is (a record's fields are JSON, where a date is a string that
/// the selectors compare as text); any other value unchanged.
fn as_text_date(value: Value) -> Value {
    match value {
        Value::Date(d) => Value::Text(d.format("%Y-%m-%d").to_string()),
        other => other,
    }
}

/// `value.to_json()`, moving the text instead of cloning it.
fn into_json(value: Value) -> Json {
    match value {
        Value::Text(s) => Json::String(s),
        Value::TimestampTz { raw, .. } | Value::Timestamp { raw, .. } => Json::String(raw),
        other => other.to_json(),
    }
}

/// The RCT instant the features crate's selectors would parse from the RCT field's text:
/// the stored UTC instant of a timestamptz value, else the text parsed.
fn rct_instant(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::TimestampTz { utc, .. } => Some(*utc),
        Value::Text(text) | Value::Timestamp { raw: text, .. } => {
            deriva_bag_features::parse_timestamptz(text)
        }
        _ => None,
    }
}

/// The values of one feature for the targets a dataset reaches, as [`FeatureRow`]s,
/// streamed from the index in `(target RID, RCT instant, row RID)` order and reduced by the
/// selector one target at a time. Returned by [`DatasetBag::feature_rows_iter`].
pub struct FeatureRows {
    inner: SelectStream<RowsOf<QueryStream<RawRows>>, FeatureRow>,
}

impl std::fmt::Debug for FeatureRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureRows")
            .field("inner", &self.inner)
            .finish()
    }
}

impl Iterator for FeatureRows {
    type Item = Result<FeatureRow>;

    fn next(&mut self) -> Option<Result<FeatureRow>> {
        self.inner.next()
    }
}

/// [`FeatureRows`] as [`FeatureRecord`]s. Returned by [`DatasetBag::feature_values_iter`].
#[derive(Debug)]
pub struct FeatureValues {
    rows: FeatureRows,
}

impl Iterator for FeatureValues {
    type Item = Result<FeatureRecord>;

    fn next(&mut self) -> Option<Result<FeatureRecord>> {
        Some(self.rows.next()?.map(FeatureRow::into_record))
    }
}

fn ml(table: &str) -> TableName {
    TableName::new(ML_SCHEMA, table)
}

impl DatasetBag {
    /// Features whose target is `table` (bare or `schema:table`), or every feature of the
    /// model when `None`. Driven by the schema, not by data:
    /// a feature without values in this bag is still found.
    pub fn find_features(&self, table: Option<&str>) -> Result<Vec<Feature>> {
        Ok(deriva_bag_features::find_features(self.model(), table)?)
    }

    /// The feature `name` on `table`; unknown tables and features are errors listing what
    /// exists.
    pub fn lookup_feature(&self, table: &str, name: &str) -> Result<Feature> {
        Ok(deriva_bag_features::lookup_feature(
            self.model(),
            table,
            name,
        )?)
    }

    /// Values of feature `feature` on `table` whose target row is reachable from this dataset
    /// (members of it and of its nested datasets, and rows reached from them by foreign keys,
    /// e.g. the Images of member Subjects). Rows with a NULL target are dropped. Records come
    /// in (target RID, RCT instant, row RID) order; `RCT` holds the text stored in the bag.
    /// With a selector, one record per (target, qualifier columns) group, in the same order.
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{DatasetBag, OpenOptions};
    /// use deriva_bag_core::features::Selector;
    /// let tmp = tempfile::tempdir()?;
    /// let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// assert_eq!(bag.feature_values("Image", "Glaucoma", None)?.len(), 9);
    /// let newest = bag.feature_values("Image", "Glaucoma", Some(&Selector::newest()))?;
    /// assert_eq!(newest[0].target(), Some("1-I001"));
    /// assert_eq!(newest[0].text("Glaucoma"), Some("Severe"));
    /// # Ok(()) }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn feature_values(
        &self,
        table: &str,
        feature: &str,
        selector: Option<&Selector>,
    ) -> Result<Vec<FeatureRecord>> {
        let (feature, query, reader) = self.record_query(table, feature)?;
        let batches = self.index().collect(|conn, sink| query.run(conn, sink))?;
        let rows = RowsOf {
            batches: batches.into_iter().map(Ok),
            reader,
            current: None,
            next: 0,
        };
        let records: Vec<FeatureRecord> = select_stream(&feature, selector.cloned(), rows)
            .map(|row| row.map(FeatureRow::into_record))
            .collect::<Result<_>>()?;
        tracing::debug!(
            feature = %feature.name,
            dataset = %self.rid(),
            records = records.len(),
            "feature values read"
        );
        Ok(records)
    }

    /// [`feature_values`](Self::feature_values) as an iterator: records are read from the
    /// index on a reader thread as they are consumed, and a selector holds one target's
    /// records at a time, so any number of values streams in flat memory. Same records, same
    /// order.
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{DatasetBag, OpenOptions};
    /// use deriva_bag_core::features::Selector;
    /// let tmp = tempfile::tempdir()?;
    /// let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let mut newest = bag.feature_values_iter("Image", "Glaucoma", Some(Selector::newest()))?;
    /// let first = newest.next().transpose()?.expect("a record");
    /// assert_eq!(first.target(), Some("1-I001"));
    /// assert_eq!(first.text("Glaucoma"), Some("Severe"));
    /// # Ok(()) }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn feature_values_iter(
        &self,
        table: &str,
        feature: &str,
        selector: Option<Selector>,
    ) -> Result<FeatureValues> {
        Ok(FeatureValues {
            rows: self.feature_rows_iter(table, feature, selector)?,
        })
    }

    /// [`feature_values_iter`](Self::feature_values_iter) as [`FeatureRow`]s: the same
    /// values in the same order, each a row of field values over a name list the whole read
    /// shares, without building a [`FeatureRecord`] per value (what the CLI's `--json`
    /// writes).
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{DatasetBag, OpenOptions};
    /// let tmp = tempfile::tempdir()?;
    /// let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let rows: Vec<_> = bag.feature_rows_iter("Image", "Glaucoma", None)?.collect::<Result<_, _>>()?;
    /// let records = bag.feature_values("Image", "Glaucoma", None)?;
    /// assert_eq!(rows.len(), 9);
    /// assert_eq!(rows.into_iter().map(|r| r.into_record()).collect::<Vec<_>>(), records);
    /// # Ok(()) }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn feature_rows_iter(
        &self,
        table: &str,
        feature: &str,
        selector: Option<Selector>,
    ) -> Result<FeatureRows> {
        let (feature, query, reader) = self.record_query(table, feature)?;
        let batches = self
            .index()
            .stream(move |conn, sink| query.run(conn, sink))?;
        let rows = RowsOf {
            batches,
            reader,
            current: None,
            next: 0,
        };
        Ok(FeatureRows {
            inner: select_stream(&feature, selector, rows),
        })
    }

    /// The feature `name` on `table` and the query for its records whose target this
    /// dataset reaches, in target order.
    fn record_query(&self, table: &str, name: &str) -> Result<(Feature, RecordQuery, RowReader)> {
        let feature = self.lookup_feature(table, name)?;
        let layout = Arc::clone(self.index().layout(&feature.feature_table)?);
        let missing = |column: &str| {
            deriva_bag_features::Error::Invalid(format!(
                "feature table {} has no column {column:?}",
                feature.feature_table
            ))
        };
        let rid_sql = layout.col("RID").ok_or_else(|| missing("RID"))?;
        let target = format!(
            "v.{}",
            layout
                .col(&feature.target_column)
                .ok_or_else(|| missing(&feature.target_column))?
        );
        // Read only the record's fields (not RCB/RMB/RMT …).
        let mut select = vec![format!("v.{rid_sql}")];
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut fields = Vec::new();
        for name in feature.field_names() {
            let at = layout.column_index(&name).map(|column| {
                let col = &layout.columns[column];
                let position = select.len();
                select.push(format!("v.{}", col.sql));
                let utc = col.utc_sql.as_ref().map(|utc| {
                    select.push(format!("v.{utc}"));
                    position + 1
                });
                FieldAt {
                    column,
                    position,
                    utc,
                }
            });
            // A repeated name keeps its first place and its last value, as inserting into
            // a record's map does.
            match names.iter().position(|n| **n == *name) {
                Some(first) => fields[first] = at,
                None => {
                    names.push(Arc::from(name.as_str()));
                    fields.push(at);
                }
            }
        }
        let shape = Arc::new(RowShape::new(
            feature.id(),
            feature.target_column.clone(),
            names.into(),
        ));
        // Target order comes from the index on the target column; the reachable targets are
        // the dataset's reachable set, read in order (see `ReachableSet`).
        let reach = self.reachable_set(&feature.target_table)?;
        let sql = format!(
            "SELECT {} FROM {} AS v WHERE {target} IN ({}) ORDER BY {target}",
            select.join(", "),
            layout.sql_name,
            reach.sql(),
        );
        let query = RecordQuery {
            sql,
            width: select.len(),
            reach,
        };
        let reader = RowReader {
            layout,
            rct: shape.rct,
            shape,
            fields,
        };
        Ok((feature, query, reader))
    }

    /// Execution RIDs of a workflow, sorted:
    ///
    /// 1. a `Workflow` row with RID `workflow` → the Executions whose `Workflow` is it (maybe none);
    /// 2. else the workflows that `Workflow_Workflow_Type` rows give type `workflow` → their
    ///    Executions;
    /// 3. else, when the bag holds no Execution rows at all, an empty list (the export did not
    ///    reach them, as DerivaML warns); otherwise [`Error::WorkflowNotFound`](deriva_bag_features::Error::WorkflowNotFound).
    ///
    /// Bags usually lack `Workflow_Workflow_Type`, so a type name tends to fail offline.
    pub fn list_workflow_executions(&self, workflow: &str) -> Result<Vec<Rid>> {
        let (workflow_t, execution_t, type_t) = (
            ml("Workflow"),
            ml("Execution"),
            ml("Workflow_Workflow_Type"),
        );
        let index = self.index();
        // `SELECT <get> FROM <table> WHERE <by> = ?1`, or `None` when the model lacks the
        // table or a column.
        let lookup = |table: &TableName, get: &str, by: &str| -> Option<String> {
            let layout = index.layout(table).ok()?;
            Some(format!(
                "SELECT {} FROM {} WHERE {} = ?1",
                layout.col(get)?,
                layout.sql_name,
                layout.col(by)?
            ))
        };
        let Some(executions_sql) = lookup(&execution_t, "RID", "Workflow") else {
            tracing::warn!("the bag's model has no Execution.Workflow column; no executions");
            return Ok(Vec::new());
        };
        let executions_of = |workflows: &[String]| -> Result<Vec<Rid>> {
            let mut out = Vec::new();
            for w in workflows {
                out.extend(
                    self.query_strings(&executions_sql, [w])?
                        .into_iter()
                        .map(Rid::new),
                );
            }
            out.sort();
            out.dedup();
            Ok(out)
        };
        if let Some(sql) = lookup(&workflow_t, "RID", "RID") {
            if !self.query_strings(&sql, [workflow])?.is_empty() {
                return executions_of(&[workflow.to_string()]);
            }
        }
        let mut detail = String::new();
        if let Some(sql) = lookup(&type_t, "Workflow", "Workflow_Type") {
            let workflows = self.query_strings(&sql, [workflow])?;
            if !workflows.is_empty() {
                return executions_of(&workflows);
            }
            if self.row_count(&type_t)? == 0 {
                detail = " (the bag has no Workflow_Workflow_Type rows; bags usually omit them)"
                    .to_string();
            }
        }
        if self.row_count(&execution_t)? == 0 {
            tracing::warn!(
                workflow,
                "the bag holds no Execution rows; list_workflow_executions is empty"
            );
            return Ok(Vec::new());
        }
        Err(deriva_bag_features::Error::WorkflowNotFound {
            workflow: workflow.to_string(),
            detail,
        }
        .into())
    }
}
