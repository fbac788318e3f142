//! The one error type of the features crate.

use crate::{Rid, ValueError};

/// Errors of the model layer. Every variant names the value, table, feature or field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A user-given RID does not have the catalog's RID shape.
    #[error("{value:?} is not a RID (expected something like 1-ABC0)")]
    InvalidRid { value: String },

    /// `schema.json` could not be parsed or is inconsistent.
    #[error("malformed schema.json: {detail}")]
    MalformedModel { detail: String },

    /// No table has this name.
    #[error("table {name:?} does not exist in the bag's model; known tables: {}", known.join(", "))]
    TableNotFound { name: String, known: Vec<String> },

    /// A bare table name matches tables in several schemas.
    #[error("table name {name:?} is ambiguous; qualify it as one of: {}", candidates.join(", "))]
    AmbiguousTable {
        name: String,
        candidates: Vec<String>,
    },

    /// The table has no feature with this name.
    #[error("feature {name:?} not found on table {table}; features there: [{}]", known.join(", "))]
    FeatureNotFound {
        table: String,
        name: String,
        known: Vec<String>,
    },

    /// The bag (or catalog) has no dataset with this RID.
    #[error("dataset {rid} not found: no Dataset_Version row for it")]
    DatasetNotFound { rid: Rid },

    /// A value does not parse as its column's type.
    #[error("column {column:?}: {source}")]
    BadValue {
        column: String,
        #[source]
        source: ValueError,
    },

    /// Any other failure with a message that names what went wrong.
    #[error("{0}")]
    Invalid(String),

    /// An error from the storage or network layer behind a `DatasetLike`.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}
