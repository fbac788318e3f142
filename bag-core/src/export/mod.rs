//! Tables and feature values as Arrow record batches, and Parquet export (cargo feature
//! `arrow`): the Rust answer to DerivaML's `bag.get_table_as_dataframe("Image")`, and the
//! way a bag's data reaches DataFusion, Spark, DuckDB, Polars or Ray.
//!
//! - [`DatasetBag::get_table_as_arrow`] streams a table from the bag's index as
//!   [`RecordBatches`] (an iterator of [`RecordBatch`](arrow::array::RecordBatch)es of at most
//!   [`DEFAULT_BATCH_ROWS`] rows), typed from `schema.json` per [`arrow_type`].
//! - [`DatasetBag::feature_values_as_arrow`] gives a feature's values (optionally under a
//!   selector) as one denormalized table: the feature row's `RID`, `Execution`,
//!   `Feature_Name`, `RCT`, the term/asset/value columns and the target.
//! - [`RecordBatches::write_parquet`] writes one Parquet file; [`DatasetBag::export_parquet`]
//!   writes every table and feature into a new directory (`deriva-bag export`).
//!
//! Inside: `schema` maps column types ([`arrow_type`]), `batch` builds batches from rows,
//! `write` writes Parquet files and whole exports.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use deriva_bag_core::export::arrow::array::AsArray;
//! use deriva_bag_core::{fixtures, DatasetBag, OpenOptions};
//! let tmp = tempfile::tempdir()?;
//! let generated = fixtures::small_bag(tmp.path())?;
//! let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
//! let bag = DatasetBag::open_with(&generated.path, &options)?;
//! let mut rows = 0;
//! for batch in bag.get_table_as_arrow("Image")? {
//!     let batch = batch?;
//!     let rid = batch.column_by_name("RID").unwrap().as_string::<i32>();
//!     if rows == 0 {
//!         assert_eq!(rid.value(0), "1-I001");
//!     }
//!     rows += batch.num_rows();
//! }
//! assert_eq!(rows, 6);
//! # Ok(()) }
//! ```

mod batch;
mod schema;
mod write;

use std::sync::Arc;

use deriva_bag_features::{ColumnType, FeatureRecord, Row, Selector, Value};

pub use arrow;
pub use batch::{RecordBatches, DEFAULT_BATCH_ROWS};
pub use parquet;
pub use schema::{arrow_type, table_schema, TYPENAME_KEY};
pub use write::{
    ExportSummary, ExportedFile, ParquetOptions, SkippedFeature, DEFAULT_ROW_GROUP_ROWS,
};

use crate::{DatasetBag, Result};

impl DatasetBag {
    /// Every row of `table` (`schema:table` or an unambiguous bare name) in the bag, as Arrow
    /// record batches streamed from the index in RID order: DerivaML's
    /// `get_table_as_dataframe`, without holding the table in memory. Columns are typed from
    /// `schema.json` ([`arrow_type`]); an unknown table is an error here, before any batch.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{fixtures, DatasetBag, OpenOptions};
    /// use deriva_bag_core::export::arrow::datatypes::DataType;
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let batches = bag.get_table_as_arrow("demo:Image")?;
    /// assert_eq!(batches.schema().field_with_name("Length")?.data_type(), &DataType::Int64);
    /// assert!(bag.get_table_as_arrow("Nope").is_err());
    /// # Ok(()) }
    /// ```
    pub fn get_table_as_arrow(&self, table: &str) -> Result<RecordBatches> {
        let name = self.resolve_table(table)?;
        let model_table =
            self.model()
                .table(&name)
                .ok_or_else(|| deriva_bag_features::Error::TableNotFound {
                    name: name.to_string(),
                    known: Vec::new(),
                })?;
        let rows = self.table_iter(&name.to_string())?;
        Ok(RecordBatches::new(
            table_schema(model_table),
            Box::new(rows),
        ))
    }

    /// The values of feature `feature` on `table` reachable from this dataset, optionally one
    /// per target under `selector`, as one denormalized table: the feature row's `RID`, then
    /// `Execution`, `Feature_Name`, `RCT`, the feature's term, asset and value columns and
    /// the target column, typed from the feature table's columns. Rows come in
    /// [`feature_values`](Self::feature_values) order (target, RCT, RID).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{fixtures, DatasetBag, OpenOptions};
    /// use deriva_bag_core::export::arrow::array::AsArray;
    /// use deriva_bag_core::features::Selector;
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let batch = bag
    ///     .feature_values_as_arrow("Image", "Glaucoma", Some(&Selector::newest()))?
    ///     .next()
    ///     .unwrap()?;
    /// assert_eq!(batch.num_rows(), 5);
    /// let label = batch.column_by_name("Glaucoma").unwrap().as_string::<i32>();
    /// assert_eq!(label.value(0), "Severe");
    /// # Ok(()) }
    /// ```
    pub fn feature_values_as_arrow(
        &self,
        table: &str,
        feature: &str,
        selector: Option<&Selector>,
    ) -> Result<RecordBatches> {
        let found = self.lookup_feature(table, feature)?;
        let columns = schema::feature_columns(&found, self.model().table(&found.feature_table));
        let schema = schema::columns_schema(&columns);
        // Streamed: records arrive in target order with the selector applied per target.
        let records = self.feature_values_iter(table, feature, selector.cloned())?;
        let names: Arc<[Arc<str>]> = columns.iter().map(|(n, _)| Arc::from(n.as_str())).collect();
        let rows = records.map(move |record| record_row(&record?, &columns, &names));
        Ok(RecordBatches::new(schema, Box::new(rows)))
    }
}

/// A record as a typed row of its feature's denormalized table: the row RID, then each field
/// parsed back from its JSON value with the column's type.
fn record_row(
    record: &FeatureRecord,
    columns: &[(String, ColumnType)],
    names: &Arc<[Arc<str>]>,
) -> Result<Row> {
    let mut values = Vec::with_capacity(columns.len());
    values.push(
        record
            .rid
            .as_ref()
            .map_or(Value::Null, |rid| Value::Text(rid.as_str().to_string())),
    );
    for (name, ty) in columns.iter().skip(1) {
        let value = match record.get(name) {
            None => Value::Null,
            Some(json) => Value::from_json(json, ty).map_err(|source| {
                deriva_bag_features::Error::BadValue {
                    column: name.clone(),
                    source,
                }
            })?,
        };
        values.push(value);
    }
    Ok(Row::new(Arc::clone(names), values))
}
