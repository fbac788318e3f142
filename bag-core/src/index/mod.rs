//! The SQLite index of a bag: built once from the CSVs into the cache directory (outside the
//! bag), reused by every later open. See [`schema`] for the storage mapping and the one place
//! model names become SQLite identifiers, and [`integrity`] for how the index is tied to the
//! bag's manifest digests so that it never serves a CSV the bag does not vouch for.

pub(crate) mod build;
pub(crate) mod integrity;
pub(crate) mod query;
pub(crate) mod reachable;
pub(crate) mod schema;

pub use query::TableRows;
