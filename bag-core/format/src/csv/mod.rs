//! Bag CSVs: a streaming reader with PostgreSQL NULL semantics ([`CsvReader`]) and the
//! mapping of every CSV layout to its table ([`table_for_csv`], [`discover`]), and the
//! matching writer ([`render`], [`push_field`], [`json_cell`]).

mod layout;
mod reader;
mod writer;

pub use layout::{discover, resolve_bare, table_for_csv, CsvFile};
#[doc(hidden)]
pub use layout::{scan, Scan};
pub use reader::{CsvReader, Field, Record};
pub use writer::{json_cell, push_field, push_line, render};
