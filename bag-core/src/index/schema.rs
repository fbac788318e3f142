//! The SQLite layout of the index and how [`Value`]s are stored so they read back identically.
//!
//! One SQLite table per model table, named `"<schema>:<table>"` (quoted: schema names contain
//! `-`), columns in catalog order under their own names, then hidden helper columns. `RID` is
//! the primary key of a `WITHOUT ROWID` table (`INSERT OR IGNORE` makes the first row per RID
//! win; a table without a `RID` column is an ordinary rowid table); foreign-key columns that
//! some query looks rows up by get an index (see `indexed_fk`). No other constraint is enforced: bags legitimately carry dangling
//! references (`reference/bag-format.md` §12).
//!
//! | value kind (from `schema.json`) | SQLite storage | read back as |
//! |---|---|---|
//! | text, markdown, ermrest_rid, ermrest_curie, … | TEXT as written (`""` stays `""`) | `Value::Text` |
//! | int2/int4/int8/serial | INTEGER | `Value::Int` |
//! | float4/float8/numeric | REAL; `NaN` as the TEXT `'NaN'` (SQLite would turn a NaN into NULL) | `Value::Float` |
//! | boolean | INTEGER 0/1 | `Value::Bool` |
//! | date | TEXT `YYYY-MM-DD` | `Value::Date` |
//! | timestamp | TEXT as written | `Value::Timestamp` (re-parsed) |
//! | timestamptz, ermrest_rct, ermrest_rmt | TEXT as written, plus hidden `"<col>__utc"` INTEGER (µs since the Unix epoch, UTC) for ordering by instant | `Value::TimestampTz` (re-parsed from the text) |
//! | json, jsonb | TEXT as written | `Value::Json` |
//! | arrays (`text[]`, …) | TEXT holding a JSON array (queryable with `json_each`) | `Value::Array` |
//!
//! NULL is SQL NULL everywhere. A model column named `X__utc` would collide with the hidden
//! column of a timestamptz column `X`; ERMrest catalogs do not use that suffix.

use std::sync::Arc;

use deriva_bag_features::model::{is_system_schema, ValueKind};
use deriva_bag_features::{CatalogModel, ColumnType, ForeignKey, Row, Table, TableName, Value};
use rusqlite::types::{Type, ValueRef};

use super::reachable::{
    dataset_table, is_dataset_association, pure_binary_association, SKIP_TABLES,
};

/// Version of the index layout; an index with another version is rebuilt.
/// 3: FK indexes only where a query looks rows up by the column (`indexed_fk`), covering on
/// Dataset associations (`index_columns`); tables spread over part files (`build::part_path`).
pub(crate) const INDEX_FORMAT: &str = "3";

/// Name of the metadata table (cannot collide with `"<schema>:<table>"` names).
pub(crate) const META_TABLE: &str = "meta";

/// How one column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storage {
    Text,
    Int,
    Real,
    Bool,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    Array,
}

impl Storage {
    pub(crate) fn of(ty: &ColumnType) -> Storage {
        if ty.is_array() {
            return Storage::Array;
        }
        match ty.kind() {
            ValueKind::Text => Storage::Text,
            ValueKind::Int => Storage::Int,
            ValueKind::Float => Storage::Real,
            ValueKind::Bool => Storage::Bool,
            ValueKind::Date => Storage::Date,
            ValueKind::Timestamp => Storage::Timestamp,
            ValueKind::TimestampTz => Storage::TimestampTz,
            ValueKind::Json => Storage::Json,
        }
    }

    fn affinity(self) -> &'static str {
        match self {
            Storage::Int | Storage::Bool => "INTEGER",
            Storage::Real => "REAL",
            _ => "TEXT",
        }
    }
}

/// One visible column.
#[derive(Debug, Clone)]
pub(crate) struct ColumnLayout {
    pub name: String,
    pub ty: ColumnType,
    pub storage: Storage,
}

/// The SQLite shape of one model table.
#[derive(Debug, Clone)]
pub(crate) struct TableLayout {
    pub name: TableName,
    /// Quoted SQLite table name.
    pub sql_name: String,
    pub columns: Vec<ColumnLayout>,
    /// Visible column names, shared by every row read.
    pub names: Arc<[Arc<str>]>,
    pub has_rid: bool,
    /// Comma-separated quoted read columns: visible ones, then the hidden UTC ones.
    pub select_list: String,
    /// Column lists that get an index: an indexed foreign key's columns, see [`index_columns`].
    fk_columns: Vec<Vec<String>>,
}

/// Whether the foreign key `fk` of `table` gets an index. An FK index only pays for queries
/// that look rows of `table` up by that column, i.e. that step from the referenced table
/// into `table` (reachability, [`super::reachable`]) or list a dataset's association rows
/// (members, nesting, versions). Every index costs a sort on each cold open (about a third of
/// the build on a 20k-image bag), so none is built where no query can use it:
///
/// - `public`/`WWW` targets (e.g. `RCB`/`RMB` → `ERMrest_Client`, never exported) and
///   vocabularies: queries never walk out of a vocabulary into the tables that use its terms;
/// - targets the reachability walker never enters (`Execution`, `Dataset_Dataset`, by bare
///   name as it compares them) and that no query looks up by: e.g. `Image_Execution.Execution`;
/// - the non-`Dataset` end of a Dataset association (`Dataset_Image.Image`): the walker enters
///   an association only from `Dataset`, and members/nesting query by the dataset column.
fn indexed_fk(model: &CatalogModel, table: &Table, fk: &ForeignKey) -> bool {
    let target = &fk.referenced_table;
    if is_system_schema(&target.schema) || model.table(target).is_none_or(|t| t.is_vocabulary()) {
        return false;
    }
    if SKIP_TABLES.contains(&target.table.as_str()) {
        return false;
    }
    *target == dataset_table() || !is_dataset_association(table)
}

/// The column list of each FK index of `table`. The index on a Dataset association's dataset
/// column also carries the other end's columns (`Dataset_Image ("Dataset", "Image")`): the
/// members and nesting queries (`SELECT "Image" … WHERE "Dataset" = ?`) are then answered
/// from the index alone, without a second B-tree seek per member row into the table.
fn index_columns(model: &CatalogModel, table: &Table) -> Vec<Vec<String>> {
    let ends = pure_binary_association(table).filter(|_| is_dataset_association(table));
    table
        .foreign_keys
        .iter()
        .filter(|fk| indexed_fk(model, table, fk))
        .map(|fk| {
            let mut cols = fk.columns.clone();
            if let Some((a, b)) = ends {
                let other = if std::ptr::eq(fk, a) {
                    Some(b)
                } else if std::ptr::eq(fk, b) {
                    Some(a)
                } else {
                    None
                };
                if let Some(other) = other {
                    cols.extend(
                        other
                            .columns
                            .iter()
                            .filter(|c| !cols.contains(c))
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                }
            }
            cols
        })
        .collect()
}

/// Quotes an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quoted SQLite name of a model table.
pub(crate) fn sql_table_name(table: &TableName) -> String {
    quote_ident(&format!("{}:{}", table.schema, table.table))
}

/// Name of the hidden UTC column of a timestamptz column.
pub(crate) fn utc_column(column: &str) -> String {
    format!("{column}__utc")
}

impl TableLayout {
    pub(crate) fn new(model: &CatalogModel, table: &Table) -> TableLayout {
        let columns: Vec<ColumnLayout> = table
            .columns
            .iter()
            .map(|c| ColumnLayout {
                name: c.name.clone(),
                ty: c.ty.clone(),
                storage: Storage::of(&c.ty),
            })
            .collect();
        let names: Arc<[Arc<str>]> = columns.iter().map(|c| Arc::from(c.name.as_str())).collect();
        let select_list = read_columns(&columns)
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        TableLayout {
            name: table.name.clone(),
            sql_name: sql_table_name(&table.name),
            has_rid: columns.iter().any(|c| c.name == "RID"),
            names,
            select_list,
            fk_columns: index_columns(model, table),
            columns,
        }
    }

    /// Position of a visible column.
    pub(crate) fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Number of result columns [`row_from_sql`](Self::row_from_sql) consumes.
    pub(crate) fn read_width(&self) -> usize {
        self.physical_columns().len()
    }

    /// The physical columns in insert order: visible columns, then the hidden UTC columns.
    pub(crate) fn physical_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        cols.extend(
            self.columns
                .iter()
                .filter(|c| c.storage == Storage::TimestampTz)
                .map(|c| utc_column(&c.name)),
        );
        cols
    }

    /// `CREATE TABLE` statement.
    pub(crate) fn create_sql(&self) -> String {
        let mut defs: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let pk = if c.name == "RID" { " PRIMARY KEY" } else { "" };
                format!("{} {}{pk}", quote_ident(&c.name), c.storage.affinity())
            })
            .collect();
        defs.extend(
            self.columns
                .iter()
                .filter(|c| c.storage == Storage::TimestampTz)
                .map(|c| format!("{} INTEGER", quote_ident(&utc_column(&c.name)))),
        );
        if defs.is_empty() {
            // A table without columns in schema.json still needs a valid definition.
            defs.push("\"__empty\" INTEGER".into());
        }
        // WITHOUT ROWID: the RID primary key is the table's one b-tree (no second index to
        // maintain while loading); RID is never NULL (the build rejects an empty RID).
        let suffix = if self.has_rid { " WITHOUT ROWID" } else { "" };
        format!(
            "CREATE TABLE {} ({}){suffix}",
            self.sql_name,
            defs.join(", ")
        )
    }

    /// `CREATE INDEX` statements: one per indexed foreign key (see [`index_columns`]).
    pub(crate) fn index_sql(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen: Vec<&Vec<String>> = Vec::new();
        for cols in &self.fk_columns {
            if seen.contains(&cols) || cols.iter().any(|c| self.column_index(c).is_none()) {
                continue;
            }
            seen.push(cols);
            let name = quote_ident(&format!(
                "ix:{}:{}:{}",
                self.name.schema,
                self.name.table,
                cols.join(",")
            ));
            let list = cols
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(format!("CREATE INDEX {name} ON {} ({list})", self.sql_name));
        }
        out
    }

    /// `INSERT OR IGNORE` over [`physical_columns`](Self::physical_columns), one row.
    pub(crate) fn insert_sql(&self) -> String {
        self.insert_rows_sql(1)
    }

    /// `INSERT OR IGNORE` of `rows` rows in one statement (`VALUES (…), (…), …`). SQLite
    /// applies `OR IGNORE` to each row in order, so the first row per RID still wins; one
    /// statement step per batch instead of per row saves the per-statement overhead
    /// (cursor open/close, reset, unbind) that dominated single-row inserts.
    pub(crate) fn insert_rows_sql(&self, rows: usize) -> String {
        let cols = self.physical_columns();
        let list = cols
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let row = format!("({})", vec!["?"; cols.len()].join(", "));
        let values = vec![row.as_str(); rows.max(1)].join(", ");
        format!(
            "INSERT OR IGNORE INTO {} ({list}) VALUES {values}",
            self.sql_name
        )
    }

    /// Builds a [`Row`] from a result row whose first columns are this table's visible columns.
    pub(crate) fn row_from_sql(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        let mut values = Vec::with_capacity(self.columns.len());
        let mut utc_index = self.columns.len();
        for (i, col) in self.columns.iter().enumerate() {
            let cell = row.get_ref(i)?;
            let value = if col.storage == Storage::TimestampTz {
                let micros = row.get_ref(utc_index)?;
                utc_index += 1;
                timestamptz_from_sql(col, cell, micros)
            } else {
                value_from_sql(col, cell)
            };
            values.push(value.map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e))
            })?);
        }
        Ok(Row::new(self.names.clone(), values))
    }
}

/// Visible column names, then the hidden UTC column of each timestamptz column.
fn read_columns(columns: &[ColumnLayout]) -> Vec<String> {
    let mut out: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    out.extend(
        columns
            .iter()
            .filter(|c| c.storage == Storage::TimestampTz)
            .map(|c| utc_column(&c.name)),
    );
    out
}

/// A timestamptz from its raw text and stored UTC microseconds, without re-parsing: that is
/// exactly `Value::parse(raw)` whenever the fraction has at most 6 digits (what PostgreSQL
/// writes); longer fractions are re-parsed so nothing is ever truncated.
pub(crate) fn timestamptz_from_sql(
    col: &ColumnLayout,
    cell: ValueRef<'_>,
    micros: ValueRef<'_>,
) -> Result<Value, deriva_bag_features::Error> {
    if let (ValueRef::Text(raw), ValueRef::Integer(us)) = (cell, micros) {
        if let (Ok(raw), Some(utc)) = (
            std::str::from_utf8(raw),
            chrono::DateTime::from_timestamp_micros(us),
        ) {
            let frac_digits = raw
                .split_once('.')
                .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
            if frac_digits <= 6 {
                return Ok(Value::TimestampTz {
                    raw: raw.to_string(),
                    utc,
                });
            }
        }
    }
    value_from_sql(col, cell)
}

/// Reads one stored cell back into the [`Value`] the CSV text parsed to.
pub(crate) fn value_from_sql(
    col: &ColumnLayout,
    cell: ValueRef<'_>,
) -> Result<Value, deriva_bag_features::Error> {
    let bad = |text: String| {
        deriva_bag_features::Error::Invalid(format!(
            "index column {:?} holds {text:?}, which is not a stored {:?} value",
            col.name, col.storage
        ))
    };
    let text = match cell {
        ValueRef::Null => return Ok(Value::Null),
        ValueRef::Integer(i) => match col.storage {
            Storage::Int => return Ok(Value::Int(i)),
            Storage::Bool => return Ok(Value::Bool(i != 0)),
            Storage::Real => return Ok(Value::Float(i as f64)),
            _ => return Err(bad(i.to_string())),
        },
        ValueRef::Real(f) => match col.storage {
            Storage::Real => return Ok(Value::Float(f)),
            _ => return Err(bad(f.to_string())),
        },
        ValueRef::Text(t) => std::str::from_utf8(t).map_err(|_| bad("<invalid UTF-8>".into()))?,
        ValueRef::Blob(_) => return Err(bad("<blob>".into())),
    };
    match col.storage {
        Storage::Text => Ok(Value::Text(text.to_string())),
        Storage::Array => {
            let json: serde_json::Value =
                serde_json::from_str(text).map_err(|_| bad(text.to_string()))?;
            Value::from_json(&json, &col.ty).map_err(|source| {
                deriva_bag_features::Error::BadValue {
                    column: col.name.clone(),
                    source,
                }
            })
        }
        _ => Value::parse(text, &col.ty).map_err(|source| deriva_bag_features::Error::BadValue {
            column: col.name.clone(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> CatalogModel {
        let json = br#"{"schemas":{"deriva-ml":{"tables":{"T":{"column_definitions":[
          {"name":"RID","type":{"typename":"ermrest_rid","is_domain":true,"base_type":{"typename":"text"}}},
          {"name":"RCT","type":{"typename":"ermrest_rct","is_domain":true,"base_type":{"typename":"timestamptz"}}},
          {"name":"Other","type":{"typename":"text"}}],
          "foreign_keys":[{"foreign_key_columns":[{"schema_name":"deriva-ml","table_name":"T","column_name":"Other"}],
            "referenced_columns":[{"schema_name":"deriva-ml","table_name":"T","column_name":"RID"}]}]}}}}}"#;
        CatalogModel::from_json(json).unwrap()
    }

    #[test]
    fn ddl_quotes_names_and_adds_hidden_utc_columns() {
        let model = model();
        let layout = TableLayout::new(&model, model.tables().next().unwrap());
        assert_eq!(
            layout.create_sql(),
            r#"CREATE TABLE "deriva-ml:T" ("RID" TEXT PRIMARY KEY, "RCT" TEXT, "Other" TEXT, "RCT__utc" INTEGER) WITHOUT ROWID"#
        );
        assert_eq!(
            layout.index_sql(),
            [r#"CREATE INDEX "ix:deriva-ml:T:Other" ON "deriva-ml:T" ("Other")"#]
        );
        assert_eq!(
            layout.insert_sql(),
            r#"INSERT OR IGNORE INTO "deriva-ml:T" ("RID", "RCT", "Other", "RCT__utc") VALUES (?, ?, ?, ?)"#
        );
    }

    #[test]
    fn identifiers_with_quotes_are_escaped() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }

    #[cfg(feature = "fixtures")]
    #[test]
    fn fk_indexes_only_where_a_query_looks_rows_up_by_the_column() {
        let tmp = tempfile::tempdir().unwrap();
        let bag = crate::fixtures::small_bag(tmp.path()).unwrap();
        let model =
            CatalogModel::from_json(&std::fs::read(bag.path.join("data/schema.json")).unwrap())
                .unwrap();
        let indexes = |schema: &str, table: &str| {
            let t = model.table(&TableName::new(schema, table)).unwrap();
            TableLayout::new(&model, t).index_sql()
        };
        // Members: by the dataset column only; the walker never enters Dataset_Image from Image.
        assert_eq!(
            indexes("demo", "Dataset_Image"),
            [
                r#"CREATE INDEX "ix:demo:Dataset_Image:Dataset,Image" ON "demo:Dataset_Image" ("Dataset", "Image")"#
            ]
        );
        // Nesting is queried both ways.
        assert_eq!(
            indexes("deriva-ml", "Dataset_Dataset"),
            [
                r#"CREATE INDEX "ix:deriva-ml:Dataset_Dataset:Dataset,Nested_Dataset" ON "deriva-ml:Dataset_Dataset" ("Dataset", "Nested_Dataset")"#,
                r#"CREATE INDEX "ix:deriva-ml:Dataset_Dataset:Nested_Dataset,Dataset" ON "deriva-ml:Dataset_Dataset" ("Nested_Dataset", "Dataset")"#
            ]
        );
        // Execution is never walked into, so nothing looks feature rows up by it.
        assert_eq!(
            indexes("demo", "Execution_Image_Glaucoma"),
            [
                r#"CREATE INDEX "ix:demo:Execution_Image_Glaucoma:Image" ON "demo:Execution_Image_Glaucoma" ("Image")"#
            ]
        );
        assert_eq!(
            indexes("demo", "Image"),
            [r#"CREATE INDEX "ix:demo:Image:Subject" ON "demo:Image" ("Subject")"#]
        );
    }
}
