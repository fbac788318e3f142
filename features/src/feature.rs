//! [`Feature`]: a feature definition found by structure in the catalog model.

use serde::{Deserialize, Serialize};

use crate::model::ColumnType;
use crate::record::RecordBuilder;
use crate::{FeatureRecord, Row, TableName, Value};

/// Identity of a feature: its table and name. Records carry this, never an object pointer,
/// so records from two `lookup_feature` calls belong to the same feature.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FeatureId {
    /// Schema of the feature table.
    pub schema: String,
    /// The feature (association) table, e.g. `Execution_Image_Glaucoma`.
    pub table: String,
    /// The feature name (the `Feature_Name` column default), e.g. `Glaucoma`.
    pub name: String,
}

/// The role of one feature-table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnRole {
    /// FK to a vocabulary: holds a term name.
    Term,
    /// FK to an asset table: holds an asset RID (or a local path offline).
    Asset,
    /// Any other column.
    Value,
}

/// One column a record of the feature may set.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureColumn {
    /// Column name (also the record field name).
    pub name: String,
    /// Declared type.
    pub ty: ColumnType,
    /// Whether NULL is allowed.
    pub nullok: bool,
    /// Term, asset or value.
    pub role: ColumnRole,
    /// For term columns, the vocabulary; for asset columns, the asset table.
    pub references: Option<TableName>,
}

/// A feature: a label set attached to rows of a target table, stored in an association table
/// with FKs to `Execution`, `Feature_Name` and the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// The feature name, e.g. `Glaucoma`.
    pub name: String,
    /// The labelled table, e.g. `demo:Image`.
    pub target_table: TableName,
    /// The association table holding the values, e.g. `demo:Execution_Image_Glaucoma`.
    pub feature_table: TableName,
    /// The feature-table column that references the target (usually the target's table name).
    pub target_column: String,
    /// Term, asset and value columns, in table order.
    pub columns: Vec<FeatureColumn>,
    /// Key columns other than Execution/Feature_Name/target (e.g. `Image_Side`): records are
    /// grouped by `(target, qualifiers)` when a selector picks one.
    pub qualifier_columns: Vec<String>,
}

impl Feature {
    /// The feature's identity, carried by its records.
    pub fn id(&self) -> FeatureId {
        FeatureId {
            schema: self.feature_table.schema.clone(),
            table: self.feature_table.table.clone(),
            name: self.name.clone(),
        }
    }

    fn names_with(&self, role: ColumnRole) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.role == role)
            .map(|c| c.name.clone())
            .collect()
    }

    /// Names of the vocabulary-term columns.
    pub fn term_columns(&self) -> Vec<String> {
        self.names_with(ColumnRole::Term)
    }

    /// Names of the asset columns.
    pub fn asset_columns(&self) -> Vec<String> {
        self.names_with(ColumnRole::Asset)
    }

    /// Names of the plain value columns.
    pub fn value_columns(&self) -> Vec<String> {
        self.names_with(ColumnRole::Value)
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&FeatureColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Record field names in field order: `Execution`, `Feature_Name`, `RCT`, the feature
    /// columns in table order, then the target column (the reference's `model_dump` order).
    pub fn field_names(&self) -> Vec<String> {
        let mut names = vec![
            "Execution".to_string(),
            "Feature_Name".to_string(),
            "RCT".to_string(),
        ];
        names.extend(self.columns.iter().map(|c| c.name.clone()));
        names.push(self.target_column.clone());
        names
    }

    /// Starts an offline record of this feature (DerivaML's `feature_record_class()(...)`).
    ///
    /// ```
    /// use std::collections::{BTreeMap, BTreeSet};
    /// use deriva_bag_features::{lookup_feature, CatalogModel, TableName};
    /// let model = deriva_bag_features::testing::demo_model().unwrap();
    /// let feature = lookup_feature(&model, "demo:Image", "Glaucoma").unwrap();
    /// let vocab = BTreeMap::from([(
    ///     TableName::new("demo", "Glaucoma"),
    ///     BTreeSet::from(["Normal".to_string(), "Severe".to_string()]),
    /// )]);
    /// let record = feature
    ///     .record_builder()
    ///     .set("Image", "1-I001")
    ///     .set("Glaucoma", "Normal")
    ///     .build(&vocab)
    ///     .unwrap();
    /// assert_eq!(record.target(), Some("1-I001"));
    /// assert_eq!(record.text("Feature_Name"), Some("Glaucoma"));
    /// assert_eq!(record.execution(), None);
    /// let err = feature.record_builder().set("Image", "1-I001").set("Glaucoma", "Glaucous").build(&vocab);
    /// assert!(err.unwrap_err().to_string().contains("Normal, Severe"));
    /// ```
    pub fn record_builder(&self) -> RecordBuilder<'_> {
        RecordBuilder::new(self)
    }

    /// Alias of [`Feature::record_builder`], after DerivaML's wording.
    pub fn new_record(&self) -> RecordBuilder<'_> {
        self.record_builder()
    }

    /// Maps one row of the feature table (as a backend reads it) to a record: fields in
    /// [`Feature::field_names`] order, absent columns as `null`, `RCT` as the stored text, and
    /// the row's own RID kept on the record for tie-breaking.
    pub fn record_from_row(&self, row: &Row) -> FeatureRecord {
        let values = self.field_names().into_iter().map(|name| {
            let value = row.get(&name).cloned().unwrap_or(Value::Null);
            (name, value)
        });
        FeatureRecord::from_values(self.id(), self.target_column.clone(), row.rid(), values)
    }
}
