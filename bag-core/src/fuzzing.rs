//! Entry points for the cargo-fuzz targets in `bag-core/fuzz` (feature `fuzzing`): the paths
//! untrusted bag files take into the index, without files or a cache. Not a stable API.

use deriva_bag_features::{CatalogModel, Row, TableName};

use crate::index::build::load_in_memory;
use crate::index::schema::layouts;
use crate::{Error, Result};

/// Reads `csv` as a file of `table` of `model` exactly as the index build does (typed by
/// `schema.json`, first row per RID wins, differing repeats recorded), through an in-memory
/// SQLite table, and returns the rows read back and the number of differing repeats.
///
/// Bad input is [`Error::Csv`], [`Error::UnknownColumn`] or [`Error::BadValue`]; anything
/// else (or a panic) is a bug.
pub fn read_table_csv(
    model: &CatalogModel,
    table: &TableName,
    csv: &[u8],
) -> Result<(Vec<Row>, usize)> {
    let all = layouts(model);
    let layout = all.get(table).ok_or_else(|| {
        Error::Features(deriva_bag_features::Error::TableNotFound {
            name: table.to_string(),
            known: Vec::new(),
        })
    })?;
    load_in_memory(layout, csv)
}

/// Parses `schema.json` bytes and creates every table of the model, with its indexes,
/// insert statement and duplicate-RID trigger, in one in-memory SQLite database; returns the
/// number of tables.
///
/// A malformed document is [`Error::Model`]; for a model that parses, any other error (or a
/// panic) is a bug: every valid model must get a layout SQLite accepts.
pub fn create_schema_tables(schema_json: &[u8]) -> Result<usize> {
    let model = CatalogModel::from_json(schema_json).map_err(|source| Error::Model {
        path: "schema.json".into(),
        source,
    })?;
    let all = layouts(&model);
    let mut sorted: Vec<_> = all.values().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let bag = std::path::Path::new(":memory:");
    let conn = rusqlite::Connection::open_in_memory().map_err(|source| Error::IndexBuild {
        bag: bag.to_path_buf(),
        what: "the index file".into(),
        source,
    })?;
    conn.execute_batch(
        "CREATE TEMP TABLE found (table_no INTEGER, rid TEXT, first INTEGER, later INTEGER);",
    )
    .map_err(|source| Error::IndexBuild {
        bag: bag.to_path_buf(),
        what: "the index file".into(),
        source,
    })?;
    for (n, layout) in sorted.iter().enumerate() {
        let err = |source| Error::IndexBuild {
            bag: bag.to_path_buf(),
            what: format!("table {}", layout.name),
            source,
        };
        conn.execute_batch(&layout.create_sql()).map_err(err)?;
        for index in layout.index_sql() {
            conn.execute_batch(&index).map_err(err)?;
        }
        conn.prepare(&layout.insert_sql()).map_err(err)?;
        if let Some(trigger) = layout.conflict_trigger_sql(&format!("dup:{n}"), n, "found") {
            conn.execute_batch(&trigger).map_err(err)?;
        }
    }
    Ok(sorted.len())
}
