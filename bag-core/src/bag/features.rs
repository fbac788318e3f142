//! Features of a bag: discovery from `data/schema.json`, dataset-scoped values from the index,
//! and the workflow → executions lookup `select_by_workflow` uses.

use deriva_bag_features::model::ML_SCHEMA;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use deriva_bag_features::{
    parse_timestamptz, sort_and_select, Feature, FeatureRecord, Rid, Selector, TableName, Value,
};
use indexmap::IndexMap;
use rusqlite::types::{Type, ValueRef};
use serde_json::Value as Json;

use super::DatasetBag;
use crate::index::schema::{
    quote_ident, timestamptz_from_sql, utc_column, value_from_sql, ColumnLayout, Storage,
};
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

fn ml(table: &str) -> TableName {
    TableName::new(ML_SCHEMA, table)
}

impl DatasetBag {
    /// Features whose target is `table` (bare or `schema:table`), or every feature of the
    /// model when `None` (`reference/bag-format.md` §7.5). Driven by the schema, not by data:
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
        // Read only the record's fields (not RCB/RMB/RMT …) and build each record straight
        // from the SQLite row, without an intermediate `Row`: on 40k records the extra
        // columns and the second copy of every value were most of the time.
        let mut select = vec![
            "v.\"RID\"".to_string(),
            format!("v.{}", quote_ident(&feature.target_column)),
        ];
        let mut fields: Vec<(String, Option<FieldColumn<'_>>)> = Vec::new();
        for name in feature.field_names() {
            let column = layout.column_index(&name).map(|i| {
                let col = &layout.columns[i];
                let position = select.len();
                select.push(format!("v.{}", quote_ident(&col.name)));
                let utc = (col.storage == Storage::TimestampTz).then(|| {
                    select.push(format!("v.{}", quote_ident(&utc_column(&col.name))));
                    position + 1
                });
                FieldColumn { col, position, utc }
            });
            fields.push((name, column));
        }
        let target = format!("v.{}", quote_ident(&feature.target_column));
        // Reachability is a set lookup per row (the set is cached per dataset and table), and
        // the canonical order is applied by `sort_and_select` below, so SQLite neither builds the
        // reachable RID list nor sorts.
        let sql = format!(
            "SELECT {} FROM {} AS v WHERE {target} IS NOT NULL",
            select.join(", "),
            self.sql_table(&feature.feature_table),
        );
        let id = feature.id();
        let mut instants = Vec::new();
        let records: Vec<FeatureRecord> = self.index().with_conn(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
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
                let mut values = IndexMap::with_capacity(fields.len());
                let mut instant = None;
                for (i, (name, column)) in fields.iter().enumerate() {
                    let value = match column {
                        Some(c) => c.read(row).map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e))
                        })?,
                        None => Value::Null,
                    };
                    if name == "RCT" {
                        instant = rct_instant(&value);
                    }
                    values.insert(name.clone(), into_json(value));
                }
                instants.push(instant);
                let rid = match row.get_ref(0)? {
                    ValueRef::Text(t) if !t.is_empty() => std::str::from_utf8(t).ok().map(Rid::new),
                    _ => None,
                };
                out.push(FeatureRecord {
                    feature: id.clone(),
                    target_column: feature.target_column.clone(),
                    rid,
                    fields: values,
                });
            }
            Ok(out)
        })?;
        tracing::debug!(
            feature = %feature.name,
            dataset = %self.rid(),
            records = records.len(),
            "feature values read"
        );
        // The RCT instant order (with its tie rules) and the selectors are the features
        // crate's, so every backend shares one definition; the index already holds each
        // RCT's instant, so nothing is parsed again.
        Ok(sort_and_select(&feature, records, instants, selector)?)
    }

    /// Execution RIDs of a workflow, sorted (`reference/api-semantics.md` §4.8):
    ///
    /// 1. a `Workflow` row with RID `workflow` → the Executions whose `Workflow` is it (maybe none);
    /// 2. else the workflows that `Workflow_Workflow_Type` rows give type `workflow` → their
    ///    Executions;
    /// 3. else, when the bag holds no Execution rows at all, an empty list (the export did not
    ///    reach them, as the chapter warns); otherwise [`Error::WorkflowNotFound`](deriva_bag_features::Error::WorkflowNotFound).
    ///
    /// Bags usually lack `Workflow_Workflow_Type`, so a type name tends to fail offline.
    pub fn list_workflow_executions(&self, workflow: &str) -> Result<Vec<Rid>> {
        let model = self.model();
        let (workflow_t, execution_t, type_t) = (
            ml("Workflow"),
            ml("Execution"),
            ml("Workflow_Workflow_Type"),
        );
        let has = |t: &TableName, c: &str| model.table(t).is_some_and(|t| t.column(c).is_some());
        if !has(&execution_t, "Workflow") {
            tracing::warn!("the bag's model has no Execution.Workflow column; no executions");
            return Ok(Vec::new());
        }
        let executions_of = |workflows: &[String]| -> Result<Vec<Rid>> {
            let mut out = Vec::new();
            for w in workflows {
                let sql = format!(
                    "SELECT \"RID\" FROM {} WHERE \"Workflow\" = ?1",
                    self.sql_table(&execution_t)
                );
                out.extend(self.query_strings(&sql, [w])?.into_iter().map(Rid::new));
            }
            out.sort();
            out.dedup();
            Ok(out)
        };
        if has(&workflow_t, "RID") {
            let sql = format!(
                "SELECT \"RID\" FROM {} WHERE \"RID\" = ?1",
                self.sql_table(&workflow_t)
            );
            if !self.query_strings(&sql, [workflow])?.is_empty() {
                return executions_of(&[workflow.to_string()]);
            }
        }
        let mut detail = String::new();
        if has(&type_t, "Workflow") && has(&type_t, "Workflow_Type") {
            let sql = format!(
                "SELECT \"Workflow\" FROM {} WHERE \"Workflow_Type\" = ?1",
                self.sql_table(&type_t)
            );
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
