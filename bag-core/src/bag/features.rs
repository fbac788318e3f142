//! Features of a bag: discovery from `data/schema.json`, dataset-scoped values from the index,
//! and the workflow → executions lookup `select_by_workflow` uses.

use deriva_bag_features::model::ML_SCHEMA;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use deriva_bag_features::{
    parse_timestamptz, sort_and_select, Feature, FeatureId, FeatureRecord, Rid, Selector,
    TableName, Value,
};
use rusqlite::types::{Type, ValueRef};
use serde_json::Value as Json;

use super::DatasetBag;
use crate::index::schema::{timestamptz_from_sql, value_from_sql, ColumnLayout, Storage};
use crate::Result;

/// Where one record field sits in the result row of [`DatasetBag::feature_values`]' query.
struct FieldColumn<'l> {
    col: &'l ColumnLayout,
    /// Result position of the column.
    position: usize,
    /// Result position of its hidden UTC column (timestamptz columns only).
    utc: Option<usize>,
}

impl FieldColumn<'_> {
    /// The field's typed value, as `TableLayout::row_from_sql` reads it.
    fn read(
        &self,
        row: &rusqlite::Row<'_>,
    ) -> std::result::Result<Value, deriva_bag_features::Error> {
        let cell = row
            .get_ref(self.position)
            .map_err(|e| deriva_bag_features::Error::Invalid(e.to_string()))?;
        let value = match self.utc {
            Some(utc) => {
                let micros = row
                    .get_ref(utc)
                    .map_err(|e| deriva_bag_features::Error::Invalid(e.to_string()))?;
                timestamptz_from_sql(self.col, cell, micros)?
            }
            None => value_from_sql(self.col, cell)?,
        };
        Ok(value)
    }
}

impl FieldColumn<'_> {
    /// Stores the field's value in `rows`, copying a text cell the record keeps as is straight
    /// into the arena (exactly what [`FieldColumn::read`] and [`into_json`] would give);
    /// returns the value's [`rct_instant`] when `want_instant`.
    fn read_into(
        &self,
        row: &rusqlite::Row<'_>,
        rows: &mut Rows,
        want_instant: bool,
    ) -> std::result::Result<Option<DateTime<Utc>>, deriva_bag_features::Error> {
        let sql = |e: rusqlite::Error| deriva_bag_features::Error::Invalid(e.to_string());
        let cell = row.get_ref(self.position).map_err(sql)?;
        match (cell, self.utc) {
            (ValueRef::Text(t), None) if self.col.storage == Storage::Text => {
                if let Ok(text) = std::str::from_utf8(t) {
                    rows.push_text(text);
                    return Ok(want_instant.then(|| parse_timestamptz(text)).flatten());
                }
            }
            (ValueRef::Text(raw), Some(utc)) => {
                // `timestamptz_from_sql`'s own fast case: the raw text and the stored instant.
                if let (Ok(raw), ValueRef::Integer(us)) =
                    (std::str::from_utf8(raw), row.get_ref(utc).map_err(sql)?)
                {
                    let frac_digits = raw
                        .split_once('.')
                        .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
                    if let (true, Some(instant)) =
                        (frac_digits <= 6, DateTime::from_timestamp_micros(us))
                    {
                        rows.push_text(raw);
                        return Ok(Some(instant));
                    }
                }
            }
            _ => {}
        }
        let value = self.read(row)?;
        let instant = if want_instant {
            rct_instant(&value)
        } else {
            None
        };
        rows.push_json(into_json(value));
        Ok(instant)
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
        Value::Text(text) | Value::Timestamp { raw: text, .. } => parse_timestamptz(text),
        _ => None,
    }
}

/// Where one field value of a read row lives.
enum Cell {
    /// Text in [`Rows::arena`] (a text column, or a timestamptz's raw text): the record's
    /// value is that JSON string.
    Span(usize, usize),
    /// Any other value.
    Json(Json),
}

/// The feature rows read from the index, before they become [`FeatureRecord`]s: every text
/// in one arena and every field value in one flat vector, so that reading 40k rows allocates
/// almost nothing and only the records a selector keeps are built.
struct Rows {
    /// Keep texts as owned [`Cell::Json`] strings rather than in the arena (RIDs always go
    /// to the arena).
    owned: bool,
    arena: String,
    /// `width` cells per row, in field order.
    cells: Vec<Cell>,
    width: usize,
    rids: Vec<Option<(usize, usize)>>,
    /// Each row's RCT instant (as `sort_and_select` expects it).
    instants: Vec<Option<DateTime<Utc>>>,
}

impl Rows {
    /// Room for `rows` rows of `width` fields, so that the flat vectors are not regrown
    /// (and copied) while reading.
    ///
    /// With `owned`, texts stay owned JSON strings that [`Rows::take_record`] moves into the
    /// records: when every row becomes a record, copying them through the arena only costs.
    fn with_capacity(width: usize, rows: usize, owned: bool) -> Self {
        Rows {
            owned,
            // About 16 bytes per text (RIDs, names, timestamps) is the usual case.
            arena: String::with_capacity(if owned {
                rows.saturating_mul(16)
            } else {
                rows.saturating_mul(width + 1).saturating_mul(16)
            }),
            cells: Vec::with_capacity(rows.saturating_mul(width)),
            width,
            rids: Vec::with_capacity(rows),
            instants: Vec::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.instants.len()
    }

    fn span(&mut self, text: &str) -> (usize, usize) {
        let start = self.arena.len();
        self.arena.push_str(text);
        (start, self.arena.len())
    }

    fn push_text(&mut self, text: &str) {
        if self.owned {
            self.cells.push(Cell::Json(Json::String(text.to_string())));
        } else {
            let (start, end) = self.span(text);
            self.cells.push(Cell::Span(start, end));
        }
    }

    /// Stores a value, a string in the arena.
    fn push_json(&mut self, value: Json) {
        match value {
            Json::String(s) if !self.owned => self.push_text(&s),
            other => self.cells.push(Cell::Json(other)),
        }
    }

    /// Ends the row whose cells were just pushed.
    fn end_row(&mut self, rid: Option<&str>, instant: Option<DateTime<Utc>>) {
        let rid = rid.map(|r| self.span(r));
        self.rids.push(rid);
        self.instants.push(instant);
    }

    fn cell(&self, row: usize, field: usize) -> &Cell {
        &self.cells[row * self.width + field]
    }

    fn rid(&self, row: usize) -> Option<&str> {
        self.rids[row].map(|(s, e)| &self.arena[s..e])
    }

    /// The field as text, if it is a string (`FeatureRecord::text`).
    fn text(&self, row: usize, field: Option<usize>) -> Option<&str> {
        match self.cell(row, field?) {
            Cell::Span(s, e) => Some(&self.arena[*s..*e]),
            Cell::Json(v) => v.as_str(),
        }
    }

    fn key(&self, row: usize, field: Option<usize>) -> Key<'_> {
        match field.map(|f| self.cell(row, f)) {
            Some(Cell::Span(s, e)) => Key::Text(&self.arena[*s..*e]),
            Some(Cell::Json(v)) => Key::of(Some(v)),
            None => Key::of(None),
        }
    }

    /// [`Rows::record`], moving the row's JSON values out (each row is taken at most once).
    fn take_record(
        &mut self,
        row: usize,
        id: &FeatureId,
        target_column: &str,
        names: &[String],
    ) -> FeatureRecord {
        let rid = self.rid(row).map(Rid::new);
        let start = row * self.width;
        let (arena, cells) = (&self.arena, &mut self.cells[start..start + self.width]);
        let fields = names.iter().zip(cells).map(|(name, cell)| {
            let value = match cell {
                Cell::Span(s, e) => Json::String(arena[*s..*e].to_string()),
                Cell::Json(v) => std::mem::take(v),
            };
            (name.clone(), value)
        });
        FeatureRecord {
            feature: id.clone(),
            target_column: target_column.to_string(),
            rid,
            fields: fields.collect(),
        }
    }

    /// The full record of `row`; `names` are the field names its cells follow.
    fn record(
        &self,
        row: usize,
        id: &FeatureId,
        target_column: &str,
        names: &[String],
    ) -> FeatureRecord {
        let fields = names.iter().enumerate().map(|(f, name)| {
            let value = match self.cell(row, f) {
                Cell::Span(s, e) => Json::String(self.arena[*s..*e].to_string()),
                Cell::Json(v) => v.clone(),
            };
            (name.clone(), value)
        });
        FeatureRecord {
            feature: id.clone(),
            target_column: target_column.to_string(),
            rid: self.rid(row).map(Rid::new),
            // Same keys, order and (for a repeated name) winning value as inserting one by one.
            fields: fields.collect(),
        }
    }
}

/// A field value as the features crate's selectors compare it (by its JSON text, with a
/// missing field as the empty text), without serializing plain strings. A JSON string's text
/// starts with `"` and no other value's does, so comparing `Text` by content is the same.
#[derive(PartialEq, Eq, Hash)]
enum Key<'r> {
    Text(&'r str),
    Other(String),
}

impl<'r> Key<'r> {
    fn of(value: Option<&'r Json>) -> Self {
        match value {
            Some(Json::String(s)) => Key::Text(s),
            Some(v) => Key::Other(v.to_string()),
            None => Key::Other(String::new()),
        }
    }
}

/// Positions in a row's cells of the fields that ordering and the built-in selectors
/// read. A repeated field name resolves to its last position, the value an `IndexMap` keeps.
struct Slots {
    target: Option<usize>,
    rct: Option<usize>,
    execution: Option<usize>,
    qualifiers: Vec<Option<usize>>,
}

fn slot(names: &[String], name: &str) -> Option<usize> {
    names.iter().rposition(|n| n == name)
}

impl Slots {
    fn new(feature: &Feature, names: &[String]) -> Self {
        Slots {
            target: slot(names, &feature.target_column),
            rct: slot(names, "RCT"),
            execution: slot(names, "Execution"),
            qualifiers: feature
                .qualifier_columns
                .iter()
                .map(|q| slot(names, q))
                .collect(),
        }
    }

    /// Indices of `rows` in the canonical order `sort_records` gives (target RID, RCT instant,
    /// RCT text, row RID; stable).
    fn canonical_order(&self, rows: &Rows) -> Vec<usize> {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| {
            rows.text(a, self.target)
                .cmp(&rows.text(b, self.target))
                .then_with(|| rows.instants[a].cmp(&rows.instants[b]))
                .then_with(|| rows.text(a, self.rct).cmp(&rows.text(b, self.rct)))
                .then_with(|| rows.rid(a).cmp(&rows.rid(b)))
        });
        order
    }

    /// What `apply_selector` with a built-in `selector` keeps of `rows` taken in `order`
    /// (canonical): the chosen indices, one per `(target, qualifiers)` group in first-seen
    /// order. Must stay in step with the features crate's selectors; the tests compare the two.
    fn select(
        &self,
        feature: &Feature,
        names: &[String],
        rows: &Rows,
        order: &[usize],
        selector: &Selector,
    ) -> Result<Vec<usize>> {
        // Group in first-seen order; rows without a target belong to no group.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let targeted = order
            .iter()
            .copied()
            .filter_map(|i| rows.text(i, self.target).map(|t| (i, t)));
        if self.qualifiers.is_empty() {
            // Canonical order sorts by target first, so a group is a run of equal targets.
            let mut last: Option<&str> = None;
            for (i, target) in targeted {
                match groups.last_mut() {
                    Some(group) if last == Some(target) => group.push(i),
                    _ => groups.push(vec![i]),
                }
                last = Some(target);
            }
        } else {
            let mut seen: HashMap<(&str, Vec<Key<'_>>), usize> = HashMap::new();
            for (i, target) in targeted {
                let qualifiers = self.qualifiers.iter().map(|&q| rows.key(i, q)).collect();
                let slot = *seen.entry((target, qualifiers)).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[slot].push(i);
            }
        }
        let majority = match selector {
            // Resolved (and a bad column reported) only when there is a group to vote in, as
            // the features crate does; `select` on no records runs just that check.
            Selector::MajorityVote(column) if !groups.is_empty() => {
                selector.select(feature, &[])?;
                let column = match column {
                    Some(c) => Some(c.clone()),
                    None => feature.term_columns().into_iter().next(),
                };
                Some(column.and_then(|c| slot(names, &c)))
            }
            _ => None,
        };
        let newer = |i: usize, j: usize| {
            rows.instants[i]
                .cmp(&rows.instants[j])
                .then_with(|| rows.rid(i).cmp(&rows.rid(j)))
        };
        // The greatest by `newer`; among full ties the first in order.
        let newest = |candidates: &mut dyn Iterator<Item = usize>| {
            candidates.fold(None, |best: Option<usize>, i| match best {
                Some(b) if newer(i, b) != Ordering::Greater => Some(b),
                _ => Some(i),
            })
        };
        let execution = |i: usize| rows.text(i, self.execution);
        let executions: Option<HashSet<&str>> = match selector {
            Selector::ByExecutions(rids) => Some(rids.iter().map(Rid::as_str).collect()),
            _ => None,
        };
        let mut chosen = Vec::with_capacity(groups.len());
        for members in &groups {
            let mut members = members.iter().copied();
            let pick = match selector {
                Selector::Newest => newest(&mut members),
                Selector::First => members.fold(None, |best, i| match best {
                    Some(b) if newer(i, b) != Ordering::Less => Some(b),
                    _ => Some(i),
                }),
                Selector::ByExecution(rid) => {
                    newest(&mut members.filter(|&i| execution(i) == Some(rid.as_str())))
                }
                Selector::ByExecutions(_) => newest(&mut members.filter(|&i| {
                    execution(i).is_some_and(|e| executions.as_ref().is_some_and(|s| s.contains(e)))
                })),
                Selector::MajorityVote(_) => {
                    let at = majority.flatten();
                    let keys: Vec<(usize, Key<'_>)> =
                        members.map(|i| (i, rows.key(i, at))).collect();
                    // Groups are small: count by linear scan rather than hashing.
                    let counts: Vec<usize> = keys
                        .iter()
                        .map(|(_, k)| keys.iter().filter(|(_, o)| o == k).count())
                        .collect();
                    let top = counts.iter().copied().max().unwrap_or(0);
                    newest(
                        &mut keys
                            .iter()
                            .zip(&counts)
                            .filter(|(_, &c)| c == top)
                            .map(|((i, _), _)| *i),
                    )
                }
                // Handled by the caller (generic path).
                Selector::Custom(_) => None,
            };
            chosen.extend(pick);
        }
        Ok(chosen)
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
        let feature = self.lookup_feature(table, feature)?;
        let reachable = self.reachable_rid_set(&feature.target_table)?;
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
        // Read only the record's fields (not RCB/RMB/RMT …) and build each record straight
        // from the SQLite row, without an intermediate `Row`: on 40k records the extra
        // columns and the second copy of every value were most of the time.
        let mut select = vec![format!("v.{rid_sql}"), target.clone()];
        let mut fields: Vec<(String, Option<FieldColumn<'_>>)> = Vec::new();
        for name in feature.field_names() {
            let column = layout.column_index(&name).map(|i| {
                let col = &layout.columns[i];
                let position = select.len();
                select.push(format!("v.{}", col.sql));
                let utc = col.utc_sql.as_ref().map(|utc| {
                    select.push(format!("v.{utc}"));
                    position + 1
                });
                FieldColumn { col, position, utc }
            });
            fields.push((name, column));
        }
        // Reachability is a set lookup per row (the set is cached per dataset and table), and
        // the canonical order is applied by `sort_and_select` below, so SQLite neither builds the
        // reachable RID list nor sorts.
        let sql = format!(
            "SELECT {} FROM {} AS v WHERE {target} IS NOT NULL",
            select.join(", "),
            layout.sql_name,
        );
        let names: Vec<String> = fields.iter().map(|(name, _)| name.clone()).collect();
        // Rows go to a compact `Rows` (texts in one arena, no per-record FeatureId, key
        // strings or maps); only the records that survive the selector are built. On 40k rows
        // the per-record allocations of a full `FeatureRecord` were most of the time, and a
        // selector keeps about half of them.
        // The table's row count bounds the rows read (a cheap count on the index).
        let capacity = usize::try_from(self.row_count(&feature.feature_table)?).unwrap_or(0);
        let mut rows: Rows = self.index().with_conn(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query([])?;
            let mut out = Rows::with_capacity(fields.len(), capacity, selector.is_none());
            while let Some(row) = rows.next()? {
                let reached = match row.get_ref(1)? {
                    ValueRef::Text(t) => {
                        std::str::from_utf8(t).is_ok_and(|t| reachable.contains(t))
                    }
                    _ => false,
                };
                if !reached {
                    continue;
                }
                let mut instant = None;
                for (i, (name, column)) in fields.iter().enumerate() {
                    let is_rct = name == "RCT";
                    let value_instant = match column {
                        Some(c) => c.read_into(row, &mut out, is_rct).map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e))
                        })?,
                        None => {
                            out.push_json(Json::Null);
                            None
                        }
                    };
                    if is_rct {
                        instant = value_instant;
                    }
                }
                let rid = match row.get_ref(0)? {
                    ValueRef::Text(t) if !t.is_empty() => std::str::from_utf8(t).ok(),
                    _ => None,
                };
                out.end_row(rid, instant);
            }
            Ok(out)
        })?;
        tracing::debug!(
            feature = %feature.name,
            dataset = %self.rid(),
            records = rows.len(),
            "feature values read"
        );
        let id = feature.id();
        let target_column = feature.target_column.as_str();
        if let Some(custom @ Selector::Custom(_)) = selector {
            // A user closure needs whole records for every group: the generic path. The RCT
            // instant order (with its tie rules) is the features crate's; the index already
            // holds each RCT's instant, so nothing is parsed again.
            let records = (0..rows.len())
                .map(|i| rows.record(i, &id, target_column, &names))
                .collect();
            let instants = rows.instants.clone();
            return Ok(sort_and_select(&feature, records, instants, Some(custom))?);
        }
        let slots = Slots::new(&feature, &names);
        let order = slots.canonical_order(&rows);
        let Some(selector) = selector else {
            // Every row becomes a record: its owned values move into it.
            return Ok(order
                .into_iter()
                .map(|i| rows.take_record(i, &id, target_column, &names))
                .collect());
        };
        let chosen = slots.select(&feature, &names, &rows, &order, selector)?;
        Ok(chosen
            .into_iter()
            .map(|i| rows.record(i, &id, target_column, &names))
            .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use deriva_bag_features::{apply_selector, lookup_feature, sort_records, testing};
    use std::collections::BTreeSet;

    /// The fast path on compact rows: canonical order, then the built-in selector.
    fn fast(
        feature: &Feature,
        rows: &Rows,
        selector: Option<&Selector>,
    ) -> Result<Vec<FeatureRecord>> {
        let names = feature.field_names();
        let slots = Slots::new(feature, &names);
        let order = slots.canonical_order(rows);
        let chosen = match selector {
            None => order,
            Some(s) => slots.select(feature, &names, rows, &order, s)?,
        };
        let id = feature.id();
        Ok(chosen
            .into_iter()
            .map(|i| rows.record(i, &id, &feature.target_column, &names))
            .collect())
    }

    proptest::proptest! {
        /// Chart_Label has a qualifier (Image_Side) and a nullable value column (Note), which
        /// the fixture bags lack: groups are (Subject, Image_Side), not runs of one target.
        #[test]
        fn fast_selectors_match_apply_selector_on_a_qualified_feature(
            rows in proptest::collection::vec(
                (0u8..4, 0u8..3, 0u8..3, 0u8..4, -2i32..=2, 0u8..9, 0u8..3), 0..30),
        ) {
            let model = testing::demo_model().unwrap();
            let feature = lookup_feature(&model, "demo:Subject", "Chart_Label").unwrap();
            let names = feature.field_names();
            let text = |s: String| Json::String(s);
            let mut compact = Rows::with_capacity(names.len(), rows.len(), false);
            // The same rows with owned texts, as an unselected read keeps them.
            let mut owned = Rows::with_capacity(names.len(), rows.len(), true);
            for &(subject, side, cond, hour, off, rid, exe) in &rows {
                // Hour 3 does not parse; subject 3 is a row without a target.
                let rct = if hour == 3 { "later".to_string() } else {
                    let sign = if off < 0 { '-' } else { '+' };
                    format!("2026-05-28 1{hour}:00:00{sign}{:02}", off.abs())
                };
                for n in &names {
                    let value = match n.as_str() {
                        "Execution" => text(format!("1-E00{exe}")),
                        "RCT" => text(rct.clone()),
                        "Feature_Name" => text("Chart_Label".into()),
                        "Condition" => text(["Healthy", "Sick", "Unsure"][cond as usize].into()),
                        // A missing qualifier (NULL) is a group of its own.
                        "Image_Side" if side == 2 => Json::Null,
                        "Image_Side" => text(["Left", "Right"][side as usize].into()),
                        "Note" if cond == 2 => Json::Null,
                        "Note" => Json::from(i64::from(cond)),
                        "Subject" if subject == 3 => Json::Null,
                        "Subject" => text(format!("1-S00{subject}")),
                        _ => Json::Null,
                    };
                    compact.push_json(value.clone());
                    owned.push_json(value);
                }
                let rid = (rid != 8).then(|| format!("1-A00{}", rid % 5));
                compact.end_row(rid.as_deref(), parse_timestamptz(&rct));
                owned.end_row(rid.as_deref(), parse_timestamptz(&rct));
            }
            let selectors = [
                None,
                Some(Selector::newest()),
                Some(Selector::first()),
                Some(Selector::majority_vote(Some("Condition"))),
                Some(Selector::majority_vote(Some("Note"))),
                Some(Selector::majority_vote(None)),
                Some(Selector::by_execution("1-E001")),
                Some(Selector::ByExecutions(BTreeSet::from([Rid::new("1-E000"), Rid::new("1-E002")]))),
            ];
            let id = feature.id();
            for selector in &selectors {
                let mut records: Vec<FeatureRecord> = (0..compact.len())
                    .map(|i| compact.record(i, &id, &feature.target_column, &names))
                    .collect();
                sort_records(&mut records);
                let expected = apply_selector(&feature, records, selector.as_ref());
                let got = fast(&feature, &compact, selector.as_ref());
                match (got, expected) {
                    (Ok(got), Ok(expected)) => proptest::prop_assert_eq!(got, expected, "{:?}", selector),
                    (Err(got), Err(expected)) => proptest::prop_assert_eq!(got.to_string(), expected.to_string()),
                    (got, expected) => proptest::prop_assert!(false, "{:?}: {:?} vs {:?}", selector, got.map(|g| g.len()), expected.map(|e| e.len())),
                }
            }
            let order = Slots::new(&feature, &names).canonical_order(&owned);
            let taken: Vec<FeatureRecord> = order
                .into_iter()
                .map(|i| owned.take_record(i, &id, &feature.target_column, &names))
                .collect();
            proptest::prop_assert_eq!(taken, fast(&feature, &compact, None).unwrap());
        }
    }
}
