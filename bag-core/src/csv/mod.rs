//! Bag CSVs: a streaming reader with PostgreSQL NULL semantics ([`CsvReader`]) and the
//! mapping of every CSV layout to its table ([`table_for_csv`], [`discover`]).

mod layout;
mod reader;

pub use layout::{discover, resolve_bare, table_for_csv, CsvFile};
pub use reader::{CsvReader, Field, Record};
