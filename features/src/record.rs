//! [`FeatureRecord`]: one feature value, read from a bag or built offline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::feature::{ColumnRole, FeatureColumn};
use crate::model::ValueKind;
use crate::{DatasetLike, Error, Feature, FeatureId, Rid, Row, TableName, Value};

/// One feature value: the target RID, the feature's term/asset/value columns, and the
/// provenance fields `Execution`, `Feature_Name` and `RCT`.
///
/// Field names are the feature table's column names, so `record.get("Glaucoma")` is the
/// DerivaML's `rec.Glaucoma`.
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

/// Checks that every record belongs to one feature, by identity key (schema, table, name), and
/// returns it. Records built from two separate `lookup_feature` calls pass: unlike the Python
/// reference, which compares `Feature` objects by identity, we compare what they name.
///
/// ```
/// use deriva_bag_features::{records_share_feature, FeatureId, FeatureRecord, Value};
/// let id = FeatureId { schema: "demo".into(), table: "Execution_Image_Glaucoma".into(), name: "Glaucoma".into() };
/// let rec = FeatureRecord::from_values(id.clone(), "Image".into(), None, [("Image".to_string(), Value::Text("1-I001".into()))]);
/// assert_eq!(records_share_feature(&[rec.clone(), rec]).unwrap(), id);
/// assert!(records_share_feature(&[]).is_err());
/// ```
pub fn records_share_feature(records: &[FeatureRecord]) -> Result<FeatureId, Error> {
    let Some(first) = records.first() else {
        return Err(Error::Invalid(
            "features list must not be empty".to_string(),
        ));
    };
    let distinct: BTreeSet<&FeatureId> = records.iter().map(|r| &r.feature).collect();
    if distinct.len() > 1 {
        return Err(Error::MixedFeatures {
            features: distinct
                .into_iter()
                .map(|id| format!("{}:{} ({})", id.schema, id.table, id.name))
                .collect(),
        });
    }
    Ok(first.feature.clone())
}

/// The terms of one vocabulary table: each `Name` and the `Synonyms` that stand for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vocabulary {
    names: BTreeSet<String>,
    synonyms: BTreeMap<String, String>,
}

impl Vocabulary {
    /// An empty vocabulary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a term and its synonyms.
    pub fn insert(&mut self, name: impl Into<String>, synonyms: impl IntoIterator<Item = String>) {
        let name = name.into();
        for synonym in synonyms {
            self.synonyms.entry(synonym).or_insert_with(|| name.clone());
        }
        self.names.insert(name);
    }

    /// Reads `Name` and `Synonyms` from rows of a vocabulary table. Rows without a `Name`
    /// are skipped (a vocabulary's `Name` is NOT NULL, so only a broken bag has them).
    pub fn from_rows(rows: &[Row]) -> Self {
        let mut vocab = Vocabulary::new();
        for row in rows {
            let Some(name) = row.text("Name") else {
                continue;
            };
            let synonyms = match row.get("Synonyms") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            vocab.insert(name, synonyms);
        }
        vocab
    }

    /// The term `value` stands for: itself when it is a `Name`, else the `Name` whose
    /// `Synonyms` list it (as deriva-ml's `lookup_term` matches: Name first, then synonyms).
    pub fn resolve(&self, value: &str) -> Option<&str> {
        if let Some(name) = self.names.get(value) {
            return Some(name);
        }
        self.synonyms.get(value).map(String::as_str)
    }

    /// Term names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

/// Where offline record validation finds a vocabulary's terms.
///
/// Implemented for every [`DatasetLike`] (a bag reads the vocabulary table, which a bag ships
/// in full), for a plain `BTreeMap<TableName, BTreeSet<String>>` of allowed names (tests, a
/// catalog), and for [`TermCache`], which reads each vocabulary once.
pub trait TermLookup {
    /// The terms of vocabulary table `table`.
    fn vocabulary(&self, table: &TableName) -> Result<Arc<Vocabulary>, Error>;
}

impl<D: DatasetLike> TermLookup for D {
    fn vocabulary(&self, table: &TableName) -> Result<Arc<Vocabulary>, Error> {
        Ok(Arc::new(Vocabulary::from_rows(&self.table_rows(table)?)))
    }
}

impl TermLookup for BTreeMap<TableName, BTreeSet<String>> {
    fn vocabulary(&self, table: &TableName) -> Result<Arc<Vocabulary>, Error> {
        let names = self.get(table).ok_or_else(|| Error::TableNotFound {
            name: table.to_string(),
            known: self.keys().map(|k| k.to_string()).collect(),
        })?;
        let mut vocab = Vocabulary::new();
        for name in names {
            vocab.insert(name.clone(), Vec::new());
        }
        Ok(Arc::new(vocab))
    }
}

/// A [`TermLookup`] that asks the wrapped one once per vocabulary and keeps the answer, for
/// building many records against a bag.
///
/// ```
/// use std::collections::{BTreeMap, BTreeSet};
/// use deriva_bag_features::{TermCache, TermLookup, TableName};
/// let inner = BTreeMap::from([(TableName::new("demo", "Glaucoma"), BTreeSet::from(["Mild".to_string()]))]);
/// let cache = TermCache::new(&inner);
/// let vocab = cache.vocabulary(&TableName::new("demo", "Glaucoma")).unwrap();
/// assert_eq!(vocab.resolve("Mild"), Some("Mild"));
/// ```
pub struct TermCache<'a, L: TermLookup + ?Sized> {
    inner: &'a L,
    cache: Mutex<HashMap<TableName, Arc<Vocabulary>>>,
}

impl<'a, L: TermLookup + ?Sized> TermCache<'a, L> {
    /// Wraps `inner`.
    pub fn new(inner: &'a L) -> Self {
        TermCache {
            inner,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl<L: TermLookup + ?Sized> TermLookup for TermCache<'_, L> {
    fn vocabulary(&self, table: &TableName) -> Result<Arc<Vocabulary>, Error> {
        // A poisoned lock only means another thread panicked mid-insert of a complete Arc;
        // the map is still consistent, so keep using it.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(table) {
            return Ok(Arc::clone(v));
        }
        let vocab = self.inner.vocabulary(table)?;
        cache.insert(table.clone(), Arc::clone(&vocab));
        Ok(vocab)
    }
}

/// Builds one [`FeatureRecord`] offline; see [`Feature::record_builder`].
///
/// Values are checked by [`RecordBuilder::build`], before anything is sent anywhere.
#[derive(Debug, Clone)]
pub struct RecordBuilder<'f> {
    feature: &'f Feature,
    values: IndexMap<String, FieldValue>,
}

impl<'f> RecordBuilder<'f> {
    pub(crate) fn new(feature: &'f Feature) -> Self {
        RecordBuilder {
            feature,
            values: IndexMap::new(),
        }
    }

    /// Sets field `field` (a later call for the same field wins). Any JSON-convertible value:
    /// `&str`, `String`, `i64`, `f64`, `bool`, `Option<_>` (`None` is NULL).
    pub fn set(mut self, field: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.values.insert(field.into(), value.into());
        self
    }

    /// Sets an asset column to a local file path (stored as its text, as the Python reference
    /// serializes a `Path`).
    pub fn set_path(self, field: impl Into<String>, path: &Path) -> Self {
        let text = path.to_string_lossy().into_owned();
        self.set(field, text)
    }

    /// Validates and builds the record.
    ///
    /// Errors, each naming the feature, field and value: [`Error::UnknownField`] for a field
    /// the feature does not have; [`Error::WrongType`] for a value of the wrong type
    /// (int/float/bool/text per column type; a RID for the target and `Execution`; a RID or
    /// path string for asset columns) or an explicit `null` in a NOT NULL column;
    /// [`Error::MissingField`] when the target is not set; [`Error::UnknownTerm`] for a term
    /// that is neither a `Name` nor a `Synonym` of its vocabulary (a synonym is stored as the
    /// `Name` it stands for, because the catalog's FK references `Name`).
    ///
    /// `Feature_Name` defaults to the feature name; `Execution` and `RCT` stay `null` (the
    /// execution fills `Execution` when the record is committed). Feature columns that are
    /// not set are `null`, as in the reference.
    pub fn build(&self, vocab: &dyn TermLookup) -> Result<FeatureRecord, Error> {
        let feature = self.feature;
        let known = feature.field_names();
        for field in self.values.keys() {
            if !known.contains(field) {
                return Err(Error::UnknownField {
                    feature: feature.name.clone(),
                    field: field.clone(),
                    known,
                });
            }
        }
        let mut fields = IndexMap::with_capacity(known.len());
        // Execution: a RID or null.
        let execution = self.values.get("Execution").cloned().unwrap_or(Json::Null);
        self.check_rid("Execution", &execution, true)?;
        fields.insert("Execution".to_string(), execution);
        // Feature_Name: only the feature's own name makes sense.
        let name = self
            .values
            .get("Feature_Name")
            .cloned()
            .unwrap_or_else(|| Json::String(feature.name.clone()));
        if name.as_str() != Some(feature.name.as_str()) {
            return Err(self.wrong_type(
                "Feature_Name",
                &format!("the feature name {:?}", feature.name),
                &name,
            ));
        }
        fields.insert("Feature_Name".to_string(), name);
        // RCT: set only on records read back from storage; must be a timestamptz if given.
        let rct = self.values.get("RCT").cloned().unwrap_or(Json::Null);
        match &rct {
            Json::Null => {}
            Json::String(s) if crate::value::parse_timestamptz(s).is_some() => {}
            other => return Err(self.wrong_type("RCT", "a timestamptz string", other)),
        }
        fields.insert("RCT".to_string(), rct);
        for column in &feature.columns {
            let value = match self.values.get(&column.name) {
                Some(v) => self.check_column(column, v, vocab)?,
                // Omitted columns are NULL, as in the reference (pydantic does not validate
                // defaults); the catalog applies its own column default on insert.
                None => Json::Null,
            };
            fields.insert(column.name.clone(), value);
        }
        let target =
            self.values
                .get(&feature.target_column)
                .ok_or_else(|| Error::MissingField {
                    feature: feature.name.clone(),
                    field: feature.target_column.clone(),
                })?;
        self.check_rid(&feature.target_column, target, false)?;
        fields.insert(feature.target_column.clone(), target.clone());
        Ok(FeatureRecord {
            feature: feature.id(),
            target_column: feature.target_column.clone(),
            rid: None,
            fields,
        })
    }

    fn wrong_type(&self, field: &str, expected: &str, value: &Json) -> Error {
        Error::WrongType {
            feature: self.feature.name.clone(),
            field: field.to_string(),
            expected: expected.to_string(),
            value: value.to_string(),
        }
    }

    fn check_rid(&self, field: &str, value: &Json, nullok: bool) -> Result<(), Error> {
        match value {
            Json::Null if nullok => Ok(()),
            Json::String(s) if Rid::parse(s).is_ok() => Ok(()),
            Json::Null => Err(self.wrong_type(field, "a RID (field is required)", value)),
            other => Err(self.wrong_type(field, "a RID such as 1-ABC0", other)),
        }
    }

    fn check_column(
        &self,
        column: &FeatureColumn,
        value: &Json,
        vocab: &dyn TermLookup,
    ) -> Result<Json, Error> {
        let expected = expected_text(column);
        if value.is_null() {
            return if column.nullok {
                Ok(Json::Null)
            } else {
                Err(self.wrong_type(&column.name, &format!("{expected} (NOT NULL)"), value))
            };
        }
        match column.role {
            ColumnRole::Asset => match value {
                Json::String(s) if !s.is_empty() => Ok(value.clone()),
                other => Err(self.wrong_type(&column.name, &expected, other)),
            },
            ColumnRole::Term => {
                let Json::String(term) = value else {
                    return Err(self.wrong_type(&column.name, &expected, value));
                };
                let Some(table) = &column.references else {
                    return Ok(value.clone());
                };
                let vocabulary = vocab.vocabulary(table)?;
                match vocabulary.resolve(term) {
                    Some(name) => Ok(Json::String(name.to_string())),
                    None => Err(Error::UnknownTerm {
                        feature: self.feature.name.clone(),
                        column: column.name.clone(),
                        vocabulary: table.to_string(),
                        value: term.clone(),
                        allowed: vocabulary.names().map(str::to_string).collect(),
                    }),
                }
            }
            ColumnRole::Value => {
                if type_matches(column, value) {
                    Ok(value.clone())
                } else {
                    Err(self.wrong_type(&column.name, &expected, value))
                }
            }
        }
    }
}

fn expected_text(column: &FeatureColumn) -> String {
    match column.role {
        ColumnRole::Asset => "an asset RID or a file path (string)".to_string(),
        ColumnRole::Term => "a vocabulary term (string)".to_string(),
        ColumnRole::Value if column.ty.is_array() => format!("an array ({})", column.ty.typename),
        ColumnRole::Value => match column.ty.kind() {
            ValueKind::Int => format!("an integer ({})", column.ty.typename),
            ValueKind::Float => format!("a number ({})", column.ty.typename),
            ValueKind::Bool => "a boolean".to_string(),
            ValueKind::Json => "JSON".to_string(),
            _ => format!("a string ({})", column.ty.typename),
        },
    }
}

fn type_matches(column: &FeatureColumn, value: &Json) -> bool {
    if column.ty.is_array() {
        return value.is_array() && Value::from_json(value, &column.ty).is_ok();
    }
    match (column.ty.kind(), value) {
        (ValueKind::Int, Json::Number(n)) => n.as_i64().is_some(),
        (ValueKind::Float, Json::Number(_)) => true,
        (ValueKind::Bool, Json::Bool(_)) => true,
        (ValueKind::Json, _) => true,
        (ValueKind::Text, Json::String(_)) => true,
        // Dates and timestamps are strings that must parse as their type.
        (ValueKind::Date | ValueKind::Timestamp | ValueKind::TimestampTz, Json::String(s)) => {
            Value::parse(s, &column.ty).is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{lookup_feature, testing};

    fn model() -> crate::CatalogModel {
        testing::demo_model().unwrap()
    }

    fn vocab() -> BTreeMap<TableName, BTreeSet<String>> {
        let set = |terms: &[&str]| terms.iter().map(|t| t.to_string()).collect();
        BTreeMap::from([
            (
                TableName::new("demo", "Glaucoma"),
                set(&["Normal", "Mild", "Moderate", "Severe"]),
            ),
            (
                TableName::new("demo", "Condition"),
                set(&["Healthy", "Sick"]),
            ),
            (
                TableName::new("demo", "Image_Side"),
                set(&["Left", "Right"]),
            ),
        ])
    }

    #[test]
    fn offline_record_has_fields_in_reference_order_with_execution_and_rct_unset() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let rec = f
            .record_builder()
            .set("Glaucoma", "Mild")
            .set("Image", "1-I002")
            .build(&vocab())
            .unwrap();
        let keys: Vec<&str> = rec.fields.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["Execution", "Feature_Name", "RCT", "Glaucoma", "Image"]
        );
        assert_eq!(rec.execution(), None);
        assert_eq!(rec.rct(), None);
        assert_eq!(rec.text("Feature_Name"), Some("Glaucoma"));
        assert_eq!(rec.target(), Some("1-I002"));
        assert_eq!(rec.rid, None);
        assert_eq!(rec.feature, f.id());
    }

    #[test]
    fn unknown_field_is_rejected_naming_the_field() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let err = f
            .new_record()
            .set("Image", "1-I001")
            .set("Glaucoma", "Normal")
            .set("Glaucomaa", "Normal")
            .build(&vocab())
            .unwrap_err();
        match &err {
            Error::UnknownField { feature, field, .. } => {
                assert_eq!(feature, "Glaucoma");
                assert_eq!(field, "Glaucomaa");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("\"Glaucomaa\""));
    }

    #[test]
    fn missing_target_is_rejected() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let err = f
            .record_builder()
            .set("Glaucoma", "Normal")
            .build(&vocab())
            .unwrap_err();
        assert!(
            matches!(&err, Error::MissingField { feature, field } if feature == "Glaucoma" && field == "Image"),
            "{err:?}"
        );
    }

    #[test]
    fn target_given_as_a_number_is_a_wrong_type() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let err = f
            .record_builder()
            .set("Image", 123)
            .set("Glaucoma", "Normal")
            .build(&vocab())
            .unwrap_err();
        match err {
            Error::WrongType { field, value, .. } => {
                assert_eq!(field, "Image");
                assert_eq!(value, "123");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn value_columns_are_type_checked_per_column_type() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "BoundingBox").unwrap();
        let base = || {
            f.record_builder()
                .set("Image", "1-I001")
                .set("Box", "1-B001")
        };
        let ok = base()
            .set("Score", 0.5)
            .set("Count", 3)
            .set("Checked", true)
            .build(&vocab())
            .unwrap();
        assert_eq!(ok.get("Score"), Some(&serde_json::json!(0.5)));
        // An integer is a valid float.
        assert!(base().set("Score", 1).build(&vocab()).is_ok());
        for (field, value, shown) in [
            ("Count", serde_json::json!(7.5), "7.5"),
            ("Count", serde_json::json!("7"), "\"7\""),
            ("Score", serde_json::json!("high"), "\"high\""),
            ("Checked", serde_json::json!("t"), "\"t\""),
        ] {
            let err = base().set(field, value).build(&vocab()).unwrap_err();
            match err {
                Error::WrongType {
                    field: f2,
                    value: v,
                    ..
                } => {
                    assert_eq!(f2, field);
                    assert_eq!(v, shown);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn asset_column_accepts_a_rid_or_a_path() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "BoundingBox").unwrap();
        let rec = f
            .record_builder()
            .set("Image", "1-I001")
            .set_path("Box", Path::new("/tmp/boxes/box 1.json"))
            .build(&vocab())
            .unwrap();
        assert_eq!(rec.text("Box"), Some("/tmp/boxes/box 1.json"));
        let err = f
            .record_builder()
            .set("Image", "1-I001")
            .set("Box", 5)
            .build(&vocab())
            .unwrap_err();
        assert!(matches!(err, Error::WrongType { field, .. } if field == "Box"));
    }

    #[test]
    fn explicit_null_in_not_null_column_is_rejected_but_allowed_in_nullable_one() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let err = f
            .record_builder()
            .set("Image", "1-I001")
            .set("Glaucoma", serde_json::Value::Null)
            .build(&vocab())
            .unwrap_err();
        match err {
            Error::WrongType {
                field,
                expected,
                value,
                ..
            } => {
                assert_eq!(field, "Glaucoma");
                assert!(expected.contains("NOT NULL"), "{expected}");
                assert_eq!(value, "null");
            }
            other => panic!("unexpected {other:?}"),
        }
        let bb = lookup_feature(&m, "demo:Image", "BoundingBox").unwrap();
        let rec = bb
            .record_builder()
            .set("Image", "1-I001")
            .set("Box", "1-B001")
            .set("Score", Option::<f64>::None)
            .build(&vocab())
            .unwrap();
        assert_eq!(rec.get("Score"), Some(&serde_json::Value::Null));
    }

    #[test]
    fn term_not_in_vocabulary_is_rejected_naming_value_and_allowed_terms() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let err = f
            .record_builder()
            .set("Image", "1-I001")
            .set("Glaucoma", "Glaucous")
            .build(&vocab())
            .unwrap_err();
        match &err {
            Error::UnknownTerm {
                feature,
                column,
                vocabulary,
                value,
                allowed,
            } => {
                assert_eq!(feature, "Glaucoma");
                assert_eq!(column, "Glaucoma");
                assert_eq!(vocabulary, "demo:Glaucoma");
                assert_eq!(value, "Glaucous");
                assert_eq!(allowed, &["Mild", "Moderate", "Normal", "Severe"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("Mild, Moderate, Normal, Severe"));
    }

    #[test]
    fn synonym_is_accepted_and_stored_as_its_term_name() {
        let mut v = Vocabulary::new();
        v.insert("Severe", ["Advanced".to_string(), "Late stage".to_string()]);
        v.insert("Normal", Vec::new());
        assert_eq!(v.resolve("Advanced"), Some("Severe"));
        assert_eq!(v.resolve("Late stage"), Some("Severe"));
        assert_eq!(v.resolve("Normal"), Some("Normal"));
        assert_eq!(v.resolve("advanced"), None);

        struct Fixed(Arc<Vocabulary>);
        impl TermLookup for Fixed {
            fn vocabulary(&self, _: &TableName) -> Result<Arc<Vocabulary>, Error> {
                Ok(Arc::clone(&self.0))
            }
        }
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let rec = f
            .record_builder()
            .set("Image", "1-I001")
            .set("Glaucoma", "Advanced")
            .build(&Fixed(Arc::new(v)))
            .unwrap();
        assert_eq!(rec.text("Glaucoma"), Some("Severe"));
    }

    #[test]
    fn vocabulary_reads_name_and_synonyms_from_rows() {
        let cols: Arc<[Arc<str>]> = vec![Arc::from("Name"), Arc::from("Synonyms")].into();
        let rows = vec![
            Row::new(
                Arc::clone(&cols),
                vec![
                    Value::Text("Severe".into()),
                    Value::Array(vec![Value::Text("Advanced".into())]),
                ],
            ),
            Row::new(
                Arc::clone(&cols),
                vec![Value::Text("Mild".into()), Value::Null],
            ),
        ];
        let v = Vocabulary::from_rows(&rows);
        assert_eq!(v.names().collect::<Vec<_>>(), ["Mild", "Severe"]);
        assert_eq!(v.resolve("Advanced"), Some("Severe"));
    }

    #[test]
    fn qualifier_term_column_is_vocabulary_checked() {
        let m = model();
        let f = lookup_feature(&m, "demo:Subject", "Chart_Label").unwrap();
        let err = f
            .record_builder()
            .set("Subject", "1-S001")
            .set("Condition", "Sick")
            .set("Image_Side", "Middle")
            .build(&vocab())
            .unwrap_err();
        assert!(matches!(err, Error::UnknownTerm { column, .. } if column == "Image_Side"));
    }

    #[test]
    fn other_feature_name_and_bad_execution_are_rejected() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let base = || {
            f.record_builder()
                .set("Image", "1-I001")
                .set("Glaucoma", "Mild")
        };
        let err = base()
            .set("Feature_Name", "Other")
            .build(&vocab())
            .unwrap_err();
        assert!(matches!(err, Error::WrongType { field, .. } if field == "Feature_Name"));
        let err = base()
            .set("Execution", "not a rid")
            .build(&vocab())
            .unwrap_err();
        assert!(matches!(err, Error::WrongType { field, .. } if field == "Execution"));
        let rec = base().set("Execution", "1-E001").build(&vocab()).unwrap();
        assert_eq!(rec.execution(), Some("1-E001"));
    }

    #[test]
    fn record_round_trips_through_json() {
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "BoundingBox").unwrap();
        let rec = f
            .record_builder()
            .set("Image", "1-I001")
            .set("Box", "/data/box.json")
            .set("Score", 0.25)
            .set("Count", 2)
            .build(&vocab())
            .unwrap();
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains(r#""fields":{"Execution":null,"Feature_Name":"BoundingBox","RCT":null,"Box":"/data/box.json","Score":0.25,"Count":2,"Checked":null,"Image":"1-I001"}"#), "{json}");
        let back: FeatureRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn records_from_two_lookups_share_one_feature() {
        let m = model();
        let a = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let b = lookup_feature(&m, "Execution_Image_Glaucoma", "Glaucoma");
        // The feature table is not a feature target; look the feature up again by its target.
        assert!(b.is_err());
        let b = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        let r1 = a
            .record_builder()
            .set("Image", "1-I001")
            .set("Glaucoma", "Mild")
            .build(&vocab())
            .unwrap();
        let r2 = b
            .record_builder()
            .set("Image", "1-I002")
            .set("Glaucoma", "Severe")
            .build(&vocab())
            .unwrap();
        assert_eq!(records_share_feature(&[r1.clone(), r2]).unwrap(), a.id());
        let bb = lookup_feature(&m, "demo:Image", "BoundingBox").unwrap();
        let r3 = bb
            .record_builder()
            .set("Image", "1-I001")
            .set("Box", "1-B001")
            .build(&vocab())
            .unwrap();
        let err = records_share_feature(&[r1, r3]).unwrap_err();
        match err {
            Error::MixedFeatures { features } => assert_eq!(
                features,
                [
                    "demo:Execution_Image_BoundingBox (BoundingBox)",
                    "demo:Execution_Image_Glaucoma (Glaucoma)"
                ]
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn term_cache_asks_the_inner_lookup_once_per_vocabulary() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Counting(AtomicUsize);
        impl TermLookup for Counting {
            fn vocabulary(&self, _: &TableName) -> Result<Arc<Vocabulary>, Error> {
                self.0.fetch_add(1, Ordering::SeqCst);
                let mut v = Vocabulary::new();
                v.insert("Mild", Vec::new());
                Ok(Arc::new(v))
            }
        }
        let inner = Counting(AtomicUsize::new(0));
        let cache = TermCache::new(&inner);
        let m = model();
        let f = lookup_feature(&m, "demo:Image", "Glaucoma").unwrap();
        for rid in ["1-I001", "1-I002", "1-I003"] {
            f.record_builder()
                .set("Image", rid)
                .set("Glaucoma", "Mild")
                .build(&cache)
                .unwrap();
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);
    }
}
