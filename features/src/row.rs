//! [`Row`]: one typed table row, columns by name.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::{Rid, Value};

/// One row of a table: values keyed by column name, in table column order.
///
/// Rows of one query share their column list, so a 20k-row result holds the names once.
///
/// ```
/// use std::sync::Arc;
/// use deriva_bag_features::{Row, Value};
/// let cols: Arc<[Arc<str>]> = vec![Arc::from("RID"), Arc::from("Name")].into();
/// let row = Row::new(cols, vec![Value::Text("1-S001".into()), Value::Text("Thing1".into())]);
/// assert_eq!(row.rid().unwrap().as_str(), "1-S001");
/// assert_eq!(row.get("Name").and_then(|v| v.as_str()), Some("Thing1"));
/// assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"RID":"1-S001","Name":"Thing1"}"#);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[Arc<str>]>,
    values: Vec<Value>,
}

impl Row {
    /// Builds a row; `values` pairs with `columns` by position.
    ///
    /// # Panics
    /// If the two lengths differ (a programming error, never input-derived).
    pub fn new(columns: Arc<[Arc<str>]>, values: Vec<Value>) -> Self {
        assert_eq!(
            columns.len(),
            values.len(),
            "row width must match its column list"
        );
        Row { columns, values }
    }

    /// The value of `column`, if the row has that column.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.columns
            .iter()
            .position(|c| &**c == column)
            .map(|i| &self.values[i])
    }

    /// The text of `column` when it is a non-empty text value.
    pub fn text(&self, column: &str) -> Option<&str> {
        self.get(column)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The row's `RID`.
    pub fn rid(&self) -> Option<Rid> {
        self.text("RID").map(Rid::new)
    }

    /// Column names in order.
    pub fn columns(&self) -> &Arc<[Arc<str>]> {
        &self.columns
    }

    /// Values in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// `(column, value)` pairs in column order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.columns.iter().map(|c| &**c).zip(self.values.iter())
    }

    /// The row as a JSON object (NULL → `null`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.iter()
                .map(|(c, v)| (c.to_string(), v.to_json()))
                .collect(),
        )
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (c, v) in self.iter() {
            map.serialize_entry(c, v)?;
        }
        map.end()
    }
}
