//! Identifiers that travel through every layer: [`Rid`] and [`TableName`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// An ERMrest row id such as `1-ABC0`.
///
/// A `Rid` is an opaque string; [`Rid::parse`] checks the catalog's shape
/// (`^[A-Z\d]{1,4}(-[A-Z\d]{4})*$`) for values that come from users, while
/// values read from a bag are taken as they are (old catalogs used other shapes).
///
/// ```
/// use deriva_bag_features::Rid;
/// let rid = Rid::parse("1-D000").unwrap();
/// assert_eq!(rid.as_str(), "1-D000");
/// assert!(Rid::parse("1-d0").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rid(String);

impl Rid {
    /// Wraps a RID read from trusted storage (a bag or the catalog) without checking its shape.
    pub fn new(value: impl Into<String>) -> Self {
        Rid(value.into())
    }

    /// Parses a RID given by a user, checking the catalog's RID shape.
    pub fn parse(value: &str) -> Result<Self, Error> {
        if is_rid_shape(value) {
            Ok(Rid(value.to_string()))
        } else {
            Err(Error::InvalidRid {
                value: value.to_string(),
            })
        }
    }

    /// The RID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_rid_shape(value: &str) -> bool {
    let mut parts = value.split('-');
    let first = parts.next().unwrap_or("");
    let ok_part = |p: &str, min: usize, max: usize| {
        p.len() >= min
            && p.len() <= max
            && p.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    ok_part(first, 1, 4) && parts.all(|p| ok_part(p, 4, 4))
}

impl fmt::Display for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Rid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Rid {
    fn from(value: &str) -> Self {
        Rid::new(value)
    }
}

/// A table's full name: `(schema, table)`. Same-named tables in two schemas stay apart.
///
/// Displayed as `schema:table`, the form the CLI accepts and prints.
///
/// ```
/// use deriva_bag_features::TableName;
/// let t = TableName::new("demo", "Image");
/// assert_eq!(t.to_string(), "demo:Image");
/// assert_eq!(TableName::parse_qualified("deriva-ml:Dataset"), Some(TableName::new("deriva-ml", "Dataset")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    /// ERMrest schema name, e.g. `deriva-ml` or a domain schema.
    pub schema: String,
    /// ERMrest table name, e.g. `Image`.
    pub table: String,
}

impl TableName {
    /// Builds a name from its two parts.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            table: table.into(),
        }
    }

    /// Splits `schema:table` (or `schema.table`); `None` for a bare name.
    pub fn parse_qualified(text: &str) -> Option<Self> {
        let (schema, table) = text.split_once(':').or_else(|| text.split_once('.'))?;
        if schema.is_empty() || table.is_empty() {
            return None;
        }
        Some(TableName::new(schema, table))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.schema, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rid_shape_accepts_catalog_rids_and_rejects_others() {
        for ok in ["1-D000", "5D0", "1-ABC0-XY12", "ZZZZ"] {
            assert!(Rid::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1-", "1-abc0", "12345", "1-ABC", "1 D000"] {
            assert!(Rid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qualified_names_split_on_colon_first() {
        assert_eq!(
            TableName::parse_qualified("demo:Image"),
            Some(TableName::new("demo", "Image"))
        );
        assert_eq!(
            TableName::parse_qualified("demo.Image"),
            Some(TableName::new("demo", "Image"))
        );
        assert_eq!(TableName::parse_qualified("Image"), None);
        assert_eq!(TableName::parse_qualified(":Image"), None);
    }
}
