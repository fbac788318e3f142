//! [`FeatureRecord`]: one feature value, read from a bag or built offline.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::{FeatureId, Rid, Value};

/// One feature value: the target RID, the feature's term/asset/value columns, and the
/// provenance fields `Execution`, `Feature_Name` and `RCT`.
///
/// Field names are the feature table's column names, so `record.get("Glaucoma")` is the
/// chapter's `rec.Glaucoma`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRecord {
    /// The feature this record belongs to, by identity.
    pub feature: FeatureId,
    /// Name of the target column (e.g. `Image`).
    pub target_column: String,
    /// The feature row's own RID (records read from a bag); `None` for records built offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<Rid>,
    /// Field values in field order: `Execution`, `Feature_Name`, `RCT`, feature columns, target.
    pub fields: IndexMap<String, FieldValue>,
}

/// A record field value as JSON-friendly data (`null`, string, number, bool, JSON).
pub type FieldValue = serde_json::Value;

impl FeatureRecord {
    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.fields.get(name)
    }

    /// The field `name` as text, if it is a string.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(|v| v.as_str())
    }

    /// The target RID (e.g. the Image this label is about).
    pub fn target(&self) -> Option<&str> {
        self.text(&self.target_column)
    }

    /// The Execution that produced the value (`None` for records built offline, until committed).
    pub fn execution(&self) -> Option<&str> {
        self.text("Execution")
    }

    /// The row creation time as stored (e.g. `2026-05-28 16:54:02.232194+00`).
    pub fn rct(&self) -> Option<&str> {
        self.text("RCT")
    }

    /// Builds a record from a typed value list (used by storage backends).
    pub fn from_values(
        feature: FeatureId,
        target_column: String,
        rid: Option<Rid>,
        values: impl IntoIterator<Item = (String, Value)>,
    ) -> Self {
        let fields = values.into_iter().map(|(k, v)| (k, v.to_json())).collect();
        FeatureRecord {
            feature,
            target_column,
            rid,
            fields,
        }
    }
}
