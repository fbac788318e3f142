//! The SQLite layout of the index and how [`Value`]s are stored so they read back identically.
//!
//! One SQLite table per model table, columns in catalog order, then hidden helper columns.
//! `RID` is the primary key of a `WITHOUT ROWID` table (the first row per RID wins; a table
//! without a `RID` column is an ordinary rowid table); foreign-key columns that some query
//! looks rows up by get an index (see `indexed_fk`). No other constraint is enforced: bags
//! legitimately carry dangling references.
//!
//! **Identifiers.** Model names never reach SQL text on their own: [`layouts`] gives every
//! table, column and index of one model its SQLite identifier, and every query takes its
//! identifiers from the [`TableLayout`]. SQLite compares identifiers ignoring ASCII case, so
//! the columns `Name` and `name`, or the tables `Subject` and `subject`, would be one
//! identifier; joining schema and table with `:` could make two tables one name (`a:b` + `c`
//! and `a` + `b:c`); and a model column `T__utc` could meet the hidden UTC column of a
//! timestamptz `T`. Each identifier is its natural text (`"demo:Image"`, `"Name"`,
//! `"RCT__utc"`) where no identifier claimed before it equals that text ignoring ASCII case,
//! else that text with `#2`, `#3`, … appended. Claims go in a fixed order (tables sorted by
//! name, then index names; per table the visible columns in catalog order, then the hidden
//! ones), so one model always gets the same layout, and visible names keep their natural text
//! before any hidden column does.
//!
//! | value kind (from `schema.json`) | SQLite storage | read back as |
//! |---|---|---|
//! | text, markdown, ermrest_rid, ermrest_curie, … | TEXT as written (`""` stays `""`) | `Value::Text` |
//! | int2/int4/int8/serial | INTEGER (range-checked by the column type) | `Value::Int` |
//! | float4/float8/numeric | REAL; `NaN` as the TEXT `'NaN'` (SQLite would turn a NaN into NULL) | `Value::Float` |
//! | boolean | INTEGER 0/1 | `Value::Bool` |
//! | date | TEXT `YYYY-MM-DD` | `Value::Date` |
//! | timestamp | TEXT as written | `Value::Timestamp` (re-parsed) |
//! | timestamptz, ermrest_rct, ermrest_rmt | TEXT as written, plus a hidden `"<col>__utc"` INTEGER (µs since the Unix epoch, UTC) for ordering by instant | `Value::TimestampTz` (re-parsed from the text) |
//! | json, jsonb | TEXT as written | `Value::Json` |
//! | arrays (`text[]`, …) | TEXT holding a JSON array (queryable with `json_each`) | `Value::Array` |
//!
//! NULL is SQL NULL everywhere. Two more hidden columns serve the duplicate-RID check of the
//! build: `"__origin"` (which CSV file and line the row came from) and, on tables with a
//! `RID`, `"__conflict"` (the origin of a later row with the same RID and different values;
//! NULL almost always).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deriva_bag_features::model::{is_system_schema, ValueKind};
use deriva_bag_features::{
    CatalogModel, ColumnType, Feature, ForeignKey, Row, Table, TableName, Value,
};
use rusqlite::types::{Type, ValueRef};

use super::reachable::{
    dataset_table, is_dataset_association, pure_binary_association, SKIP_TABLES,
};

/// Version of the index layout; an index with another version is rebuilt.
/// 3: FK indexes only where a query looks rows up by the column (`indexed_fk`), covering on
/// Dataset associations (`index_columns`); tables spread over part files (`build::part_path`).
/// 4: identifiers from [`layouts`]; hidden origin/conflict columns; the files the index was
/// built from ([`FILES_TABLE`]) and the duplicate RIDs found ([`CONFLICTS_TABLE`]).
/// 5: a feature table's index on its target column covers the record's fields
/// ([`covering_columns`]).
pub(crate) const INDEX_FORMAT: &str = "5";

/// Name of the metadata table (reserved: no model table can take it).
pub(crate) const META_TABLE: &str = "meta";

/// The CSV files (bag-relative paths) the index was built from, with the manifest digest
/// each was checked against; in the main file.
pub(crate) const FILES_TABLE: &str = "indexed_files";

/// Rows whose RID an earlier row of the same table already had, with different values; in
/// the main file.
pub(crate) const CONFLICTS_TABLE: &str = "rid_conflicts";

/// Names SQLite gives a rowid table's row key unless a column takes them; no model column
/// may, so `rowid` always means the key.
const ROWID_ALIASES: [&str; 3] = ["rowid", "oid", "_rowid_"];

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
    /// The column's quoted SQLite identifier.
    pub sql: String,
    /// For a timestamptz column, the quoted identifier of its hidden UTC column.
    pub utc_sql: Option<String>,
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
    /// Each visible column's JSON object key as [`write_row_json`](Self::write_row_json)
    /// writes it: the name as a JSON string, then `:`.
    json_keys: Vec<Vec<u8>>,
    pub has_rid: bool,
    /// Comma-separated quoted read columns: visible ones, then the hidden UTC ones.
    pub select_list: String,
    /// Hidden column: where the row came from (an origin number of the build).
    origin_sql: String,
    /// Hidden column (tables with a RID): the origin of a later row with the same RID and
    /// different values.
    conflict_sql: Option<String>,
    /// Each FK index: its quoted name, its key columns (see [`index_columns`]) and the
    /// columns it also carries so that a query reads them from the index alone (see
    /// [`covering_columns`]); model column names.
    fk_indexes: Vec<(String, Vec<String>, Vec<String>)>,
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

/// Quotes an SQL identifier. Private: identifiers come from [`layouts`], never from a model
/// name quoted on the spot.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQLite identifiers claimed so far in one namespace (the tables and indexes of an
/// index, or the columns of one table), compared as SQLite compares them: ignoring ASCII case.
struct Identifiers {
    taken: HashSet<String>,
}

impl Identifiers {
    fn reserving(names: &[&str]) -> Identifiers {
        Identifiers {
            taken: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// Claims `wanted`, or `wanted#2`, `wanted#3`, … when it is taken (or empty); returns
    /// the claimed identifier quoted. NUL, which SQL text cannot carry, becomes U+FFFD.
    fn claim(&mut self, wanted: &str) -> String {
        let wanted = wanted.replace('\0', "\u{FFFD}");
        let mut n = 1usize;
        loop {
            let candidate = if n == 1 {
                wanted.clone()
            } else {
                format!("{wanted}#{n}")
            };
            if !candidate.is_empty() && self.taken.insert(candidate.to_ascii_lowercase()) {
                return quote_ident(&candidate);
            }
            n += 1;
        }
    }

    /// [`claim`](Self::claim) for a table or index name: SQLite reserves names that start
    /// with `sqlite_` for itself, so those get a leading `_`.
    fn claim_object(&mut self, wanted: &str) -> String {
        let reserved = wanted
            .as_bytes()
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"sqlite_"));
        if reserved {
            self.claim(&format!("_{wanted}"))
        } else {
            self.claim(wanted)
        }
    }
}

/// The layout of every table of `model`, with the SQLite identifiers described in the module
/// docs: unique ignoring ASCII case, natural where possible, the same for the same model.
pub(crate) fn layouts(model: &CatalogModel) -> HashMap<TableName, TableLayout> {
    let mut tables: Vec<&Table> = model.tables().collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let mut objects = Identifiers::reserving(&[META_TABLE, FILES_TABLE, CONFLICTS_TABLE]);
    // A model whose features cannot be listed still gets its tables (and plain indexes).
    let features = deriva_bag_features::find_features(model, None).unwrap_or_default();
    let mut out: Vec<TableLayout> = tables
        .iter()
        .map(|t| {
            let sql_name = objects.claim_object(&format!("{}:{}", t.name.schema, t.name.table));
            TableLayout::new(t, sql_name)
        })
        .collect();
    // Index names after every table name, so that no index takes a table's natural name.
    for (layout, table) in out.iter_mut().zip(&tables) {
        let mut seen: Vec<Vec<String>> = Vec::new();
        for cols in index_columns(model, table) {
            if seen.contains(&cols) || cols.iter().any(|c| layout.column_index(c).is_none()) {
                continue;
            }
            let name = objects.claim_object(&format!(
                "ix:{}:{}:{}",
                table.name.schema,
                table.name.table,
                cols.join(",")
            ));
            seen.push(cols.clone());
            let also = covering_columns(&features, &table.name, &cols);
            layout.fk_indexes.push((name, cols, also));
        }
    }
    out.into_iter().map(|l| (l.name.clone(), l)).collect()
}

/// The columns the index of a feature table on its target column also carries: the row's
/// RID and the record's fields (`Feature::field_names`). Feature values are read in target
/// order through that index; covering them saves a second B-tree seek into the table for
/// every value (a third of a feature-values read on a 20k-image bag). Empty for any other
/// index.
fn covering_columns(features: &[Feature], table: &TableName, key: &[String]) -> Vec<String> {
    let Some(feature) = features
        .iter()
        .find(|f| f.feature_table == *table && key == [f.target_column.clone()])
    else {
        return Vec::new();
    };
    let mut also: Vec<String> = Vec::new();
    for name in std::iter::once("RID".to_string()).chain(feature.field_names()) {
        if !key.contains(&name) && !also.contains(&name) {
            also.push(name);
        }
    }
    also
}

impl TableLayout {
    /// The layout of `table` under the SQLite name `sql_name` (claimed by [`layouts`]), its
    /// columns named per the module docs; FK indexes are added by [`layouts`].
    fn new(table: &Table, sql_name: String) -> TableLayout {
        let mut idents = Identifiers::reserving(&ROWID_ALIASES);
        let mut columns: Vec<ColumnLayout> = table
            .columns
            .iter()
            .map(|c| ColumnLayout {
                name: c.name.clone(),
                ty: c.ty.clone(),
                storage: Storage::of(&c.ty),
                sql: idents.claim(&c.name),
                utc_sql: None,
            })
            .collect();
        for c in &mut columns {
            if c.storage == Storage::TimestampTz {
                c.utc_sql = Some(idents.claim(&format!("{}__utc", c.name)));
            }
        }
        let has_rid = columns.iter().any(|c| c.name == "RID");
        let origin_sql = idents.claim("__origin");
        let conflict_sql = has_rid.then(|| idents.claim("__conflict"));
        let names: Arc<[Arc<str>]> = columns.iter().map(|c| Arc::from(c.name.as_str())).collect();
        let json_keys = columns
            .iter()
            .map(|c| {
                let mut key = serde_json::to_vec(&c.name).unwrap_or_default();
                key.push(b':');
                key
            })
            .collect();
        let select_list = read_columns(&columns).join(", ");
        TableLayout {
            name: table.name.clone(),
            sql_name,
            has_rid,
            names,
            json_keys,
            select_list,
            origin_sql,
            conflict_sql,
            fk_indexes: Vec::new(),
            columns,
        }
    }

    /// Position of a visible column.
    pub(crate) fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The quoted SQLite identifier of the visible column `name`, if the table has it.
    pub(crate) fn col(&self, name: &str) -> Option<&str> {
        self.column_index(name)
            .map(|i| self.columns[i].sql.as_str())
    }

    /// The key rows are ordered and paged by: the `RID` column, or `rowid` for a table
    /// without one (no column can take that name, see [`ROWID_ALIASES`]).
    pub(crate) fn key_sql(&self) -> &str {
        self.col("RID").unwrap_or("rowid")
    }

    /// Number of result columns [`row_from_sql`](Self::row_from_sql) consumes: the visible
    /// columns, then the hidden UTC ones.
    pub(crate) fn read_width(&self) -> usize {
        self.columns.len() + self.columns.iter().filter(|c| c.utc_sql.is_some()).count()
    }

    /// Number of values one inserted row binds: the read columns, then the origin.
    pub(crate) fn insert_width(&self) -> usize {
        self.read_width() + 1
    }

    /// The physical columns a row is inserted into, quoted: the read columns, then the origin.
    fn insert_columns(&self) -> Vec<&str> {
        let mut cols = read_columns(&self.columns);
        cols.push(&self.origin_sql);
        cols
    }

    /// `CREATE TABLE` statement.
    pub(crate) fn create_sql(&self) -> String {
        let mut defs: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let pk = if c.name == "RID" { " PRIMARY KEY" } else { "" };
                format!("{} {}{pk}", c.sql, c.storage.affinity())
            })
            .collect();
        defs.extend(
            self.columns
                .iter()
                .filter_map(|c| c.utc_sql.as_ref())
                .map(|utc| format!("{utc} INTEGER")),
        );
        defs.push(format!("{} INTEGER", self.origin_sql));
        if let Some(conflict) = &self.conflict_sql {
            defs.push(format!("{conflict} INTEGER"));
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
        self.fk_indexes
            .iter()
            .map(|(name, cols, also)| {
                let mut list: Vec<&str> = cols.iter().filter_map(|c| self.col(c)).collect();
                // A covered timestamptz column brings its hidden UTC column along.
                for c in also.iter().filter_map(|c| self.column_index(c)) {
                    let col = &self.columns[c];
                    list.push(&col.sql);
                    list.extend(col.utc_sql.as_deref());
                }
                format!(
                    "CREATE INDEX {name} ON {} ({})",
                    self.sql_name,
                    list.join(", ")
                )
            })
            .collect()
    }

    /// Inserts one row, see [`insert_rows_sql`](Self::insert_rows_sql).
    pub(crate) fn insert_sql(&self) -> String {
        self.insert_rows_sql(1)
    }

    /// Inserts `rows` rows in one statement (`VALUES (…), (…), …`): one statement step per
    /// batch instead of per row saves the per-statement overhead (cursor open/close, reset,
    /// unbind) that dominated single-row inserts.
    ///
    /// On a table with a `RID`, a row whose RID is already there is not inserted (the first
    /// row per RID wins; SQLite handles the rows of one statement in order); when any of its
    /// visible values differs from the stored row's, its origin goes into the hidden conflict
    /// column (the stored values stay), where [`conflict_trigger_sql`](Self::conflict_trigger_sql)
    /// picks it up. Identical duplicates, normal in path-encoded exports, change nothing.
    pub(crate) fn insert_rows_sql(&self, rows: usize) -> String {
        let cols = self.insert_columns();
        let row = format!("({})", vec!["?"; cols.len()].join(", "));
        let values = vec![row.as_str(); rows.max(1)].join(", ");
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {values}",
            self.sql_name,
            cols.join(", ")
        );
        if let (Some(rid), Some(conflict)) = (self.col("RID"), &self.conflict_sql) {
            let differs: Vec<String> = self
                .columns
                .iter()
                .filter(|c| c.name != "RID")
                .map(|c| format!("excluded.{0} IS NOT {0}", c.sql))
                .collect();
            if differs.is_empty() {
                sql.push_str(&format!(" ON CONFLICT ({rid}) DO NOTHING"));
            } else {
                sql.push_str(&format!(
                    " ON CONFLICT ({rid}) DO UPDATE SET {conflict} = excluded.{} WHERE {}",
                    self.origin_sql,
                    balanced_or(&differs)
                ));
            }
        }
        sql
    }

    /// A `TEMP` trigger named `trigger` that copies every conflict the inserts record (see
    /// [`insert_rows_sql`](Self::insert_rows_sql)) into the temporary table `found` as
    /// `(table_no, RID, first origin, conflicting origin)`. `None` for a table without a RID.
    pub(crate) fn conflict_trigger_sql(
        &self,
        trigger: &str,
        table_no: usize,
        found: &str,
    ) -> Option<String> {
        let rid = self.col("RID")?;
        let conflict = self.conflict_sql.as_ref()?;
        Some(format!(
            "CREATE TEMP TRIGGER {} AFTER UPDATE OF {conflict} ON {} BEGIN \
             INSERT INTO {found} VALUES ({table_no}, NEW.{rid}, NEW.{}, NEW.{conflict}); END",
            quote_ident(trigger),
            self.sql_name,
            self.origin_sql,
        ))
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

    /// Appends to `out` the JSON object that serializing
    /// [`row_from_sql`](Self::row_from_sql)'s row of row `row` of `rows` (read with
    /// [`read_width`](Self::read_width) columns) writes (compact, columns in order), the
    /// same bytes, without building the row: NULL, text, integer and timestamptz cells are
    /// written from the SQLite cell; any other cell through its [`Value`].
    pub(crate) fn write_row_json(
        &self,
        rows: &super::query::RawRows,
        row: usize,
        out: &mut Vec<u8>,
    ) -> rusqlite::Result<()> {
        let json = |e: serde_json::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
        out.push(b'{');
        let mut utc_index = self.columns.len();
        for (i, col) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.json_keys[i]);
            let cell = rows.get(row, i);
            let micros = if col.storage == Storage::TimestampTz {
                utc_index += 1;
                Some(rows.get(row, utc_index - 1))
            } else {
                None
            };
            let text = match (cell, col.storage) {
                (ValueRef::Null, _) => {
                    out.extend_from_slice(b"null");
                    continue;
                }
                (ValueRef::Integer(n), Storage::Int) => {
                    serde_json::to_writer(&mut *out, &n).map_err(json)?;
                    continue;
                }
                (ValueRef::Text(t), Storage::Text) => std::str::from_utf8(t).ok(),
                (_, Storage::TimestampTz) => micros
                    .and_then(|m| stored_timestamptz(cell, m))
                    .map(|(raw, _)| raw),
                _ => None,
            };
            if let Some(text) = text {
                serde_json::to_writer(&mut *out, text).map_err(json)?;
                continue;
            }
            // Everything else as the row reads it (which also reports a bad stored value).
            let value = match micros {
                Some(m) => timestamptz_from_sql(col, cell, m),
                None => value_from_sql(col, cell),
            }
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))?;
            serde_json::to_writer(&mut *out, &value).map_err(json)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// `a OR b OR …` as a balanced tree: a left-deep chain of one `OR` per column would pass
/// SQLite's expression depth limit (1000) on a table that wide.
fn balanced_or(terms: &[String]) -> String {
    match terms {
        [] => "0".to_string(),
        [one] => one.clone(),
        _ => {
            let (a, b) = terms.split_at(terms.len() / 2);
            format!("({} OR {})", balanced_or(a), balanced_or(b))
        }
    }
}

/// The quoted read columns: visible columns, then the hidden UTC column of each timestamptz
/// column.
fn read_columns(columns: &[ColumnLayout]) -> Vec<&str> {
    let mut out: Vec<&str> = columns.iter().map(|c| c.sql.as_str()).collect();
    out.extend(columns.iter().filter_map(|c| c.utc_sql.as_deref()));
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
    match stored_timestamptz(cell, micros) {
        Some((raw, utc)) => Ok(Value::TimestampTz {
            raw: raw.to_string(),
            utc,
        }),
        None => value_from_sql(col, cell),
    }
}

/// The raw text and instant of a stored timestamptz when they can be taken as stored (see
/// [`timestamptz_from_sql`]); `None` when the text must be parsed.
fn stored_timestamptz<'a>(
    cell: ValueRef<'a>,
    micros: ValueRef<'_>,
) -> Option<(&'a str, chrono::DateTime<chrono::Utc>)> {
    let (ValueRef::Text(raw), ValueRef::Integer(us)) = (cell, micros) else {
        return None;
    };
    let raw = std::str::from_utf8(raw).ok()?;
    let utc = chrono::DateTime::from_timestamp_micros(us)?;
    let frac_digits = raw
        .split_once('.')
        .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
    (frac_digits <= 6).then_some((raw, utc))
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

    fn layout_of(model: &CatalogModel, schema: &str, table: &str) -> TableLayout {
        layouts(model)
            .remove(&TableName::new(schema, table))
            .unwrap()
    }

    #[test]
    fn row_json_written_from_stored_cells_is_the_serialized_row_for_every_kind_of_value() {
        let json = br#"{"schemas":{"deriva-ml":{"tables":{"T":{"column_definitions":[
          {"name":"RID","type":{"typename":"ermrest_rid","is_domain":true,"base_type":{"typename":"text"}}},
          {"name":"Text","type":{"typename":"text"}},
          {"name":"Int","type":{"typename":"int8"}},
          {"name":"Float","type":{"typename":"float8"}},
          {"name":"Bool","type":{"typename":"boolean"}},
          {"name":"Date","type":{"typename":"date"}},
          {"name":"Stamp","type":{"typename":"timestamp"}},
          {"name":"RCT","type":{"typename":"ermrest_rct","is_domain":true,"base_type":{"typename":"timestamptz"}}},
          {"name":"Json","type":{"typename":"jsonb"}},
          {"name":"Tags","type":{"typename":"text[]","is_array":true,"base_type":{"typename":"text"}}}],
          "foreign_keys":[]}}}}}"#;
        let model = CatalogModel::from_json(json).unwrap();
        let layout = layout_of(&model, "deriva-ml", "T");
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute(&layout.create_sql(), []).unwrap();
        let utc =
            |raw: &str| deriva_bag_features::parse_timestamptz(raw).map(|t| t.timestamp_micros());
        use rusqlite::types::Value as Sql;
        let text = |s: &str| Sql::Text(s.to_string());
        let rows: Vec<Vec<Sql>> = vec![
            vec![
                text("1-A"),
                text("tab\t \"quoted\" \u{e9}"),
                Sql::Integer(42),
                Sql::Real(1.5),
                Sql::Integer(1),
                text("2024-01-02"),
                text("2024-01-02 03:04:05"),
                text("2024-01-02 03:04:05.123+00"),
                text(r#"{"b":1,"a":[1, 2]}"#),
                text(r#"["x","y"]"#),
            ],
            vec![
                text("1-B"),
                Sql::Null,
                Sql::Null,
                Sql::Null,
                Sql::Null,
                Sql::Null,
                Sql::Null,
                Sql::Null,
                Sql::Null,
                Sql::Null,
            ],
            vec![
                text("1-C"),
                text(""),
                Sql::Integer(-7),
                text("NaN"),
                Sql::Integer(0),
                text("1999-12-31"),
                text("2024-01-02 03:04:05.5"),
                // Seven fraction digits: re-parsed, never truncated.
                text("2024-01-02 03:04:05.1234567-07"),
                text(r#""str""#),
                text("[]"),
            ],
        ];
        for row in &rows {
            let mut values = row.clone();
            let raw = match &row[7] {
                Sql::Text(raw) => raw.clone(),
                _ => String::new(),
            };
            values.push(utc(&raw).map_or(Sql::Null, Sql::Integer));
            let columns: Vec<&str> = read_columns(&layout.columns);
            let marks = vec!["?"; columns.len()].join(", ");
            conn.execute(
                &format!(
                    "INSERT INTO {} ({}) VALUES ({marks})",
                    layout.sql_name,
                    columns.join(", ")
                ),
                rusqlite::params_from_iter(values),
            )
            .unwrap();
        }
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM {} ORDER BY 1",
                layout.select_list, layout.sql_name
            ))
            .unwrap();
        let mut result = stmt.query([]).unwrap();
        let mut raw = super::super::query::RawRows::new(layout.read_width());
        let mut expected = Vec::new();
        while let Some(r) = result.next().unwrap() {
            expected.push(serde_json::to_string(&layout.row_from_sql(r).unwrap()).unwrap());
            raw.push(r).unwrap();
        }
        let written: Vec<String> = (0..raw.len())
            .map(|i| {
                let mut out = Vec::new();
                layout.write_row_json(&raw, i, &mut out).unwrap();
                String::from_utf8(out).unwrap()
            })
            .collect();
        assert_eq!(written, expected);
        assert_eq!(
            written[2],
            r#"{"RID":"1-C","Text":"","Int":-7,"Float":"NaN","Bool":false,"Date":"1999-12-31","Stamp":"2024-01-02 03:04:05.5","RCT":"2024-01-02 03:04:05.1234567-07","Json":"str","Tags":[]}"#
        );
        assert_eq!(
            written[1],
            r#"{"RID":"1-B","Text":null,"Int":null,"Float":null,"Bool":null,"Date":null,"Stamp":null,"RCT":null,"Json":null,"Tags":null}"#
        );
    }

    #[test]
    fn ddl_quotes_names_and_adds_hidden_columns() {
        let model = model();
        let layout = layout_of(&model, "deriva-ml", "T");
        assert_eq!(
            layout.create_sql(),
            r#"CREATE TABLE "deriva-ml:T" ("RID" TEXT PRIMARY KEY, "RCT" TEXT, "Other" TEXT, "RCT__utc" INTEGER, "__origin" INTEGER, "__conflict" INTEGER) WITHOUT ROWID"#
        );
        assert_eq!(
            layout.index_sql(),
            [r#"CREATE INDEX "ix:deriva-ml:T:Other" ON "deriva-ml:T" ("Other")"#]
        );
        assert_eq!(
            layout.insert_sql(),
            r#"INSERT INTO "deriva-ml:T" ("RID", "RCT", "Other", "RCT__utc", "__origin") VALUES (?, ?, ?, ?, ?) ON CONFLICT ("RID") DO UPDATE SET "__conflict" = excluded."__origin" WHERE (excluded."RCT" IS NOT "RCT" OR excluded."Other" IS NOT "Other")"#
        );
        assert_eq!(layout.select_list, r#""RID", "RCT", "Other", "RCT__utc""#);
    }

    #[test]
    fn identifiers_with_quotes_are_escaped() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }

    /// A model whose names collide once SQLite folds ASCII case or joins schema and table.
    fn colliding_model() -> CatalogModel {
        let col =
            |name: &str, ty: &str| format!(r#"{{"name":"{name}","type":{{"typename":"{ty}"}}}}"#);
        let table = |cols: &[String]| format!(r#"{{"column_definitions":[{}]}}"#, cols.join(","));
        let json = format!(
            r#"{{"schemas":{{
              "demo":{{"tables":{{
                "Subject":{},
                "subject":{},
                "Thing":{}}}}},
              "a:b":{{"tables":{{"c":{}}}}},
              "a":{{"tables":{{"b:c":{}}}}},
              "sqlite_x":{{"tables":{{"T":{}}}}}}}}}"#,
            table(&[
                col("RID", "text"),
                col("Name", "text"),
                col("name", "text"),
                col("NAME", "int4")
            ]),
            table(&[col("RID", "text")]),
            table(&[
                col("T", "timestamptz"),
                col("T__utc", "text"),
                col("t__UTC", "text"),
                col("rowid", "text"),
                col("", "text")
            ]),
            table(&[col("RID", "text")]),
            table(&[col("RID", "text")]),
            table(&[col("RID", "text")]),
        );
        CatalogModel::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn identifiers_that_sqlite_would_confuse_get_distinct_names() {
        let model = colliding_model();
        let all = layouts(&model);
        let name = |s: &str, t: &str| all[&TableName::new(s, t)].sql_name.clone();
        // Sorted by (schema, table): "a" < "a:b" < "demo" < "sqlite_x"; "Subject" < "Thing" < "subject".
        assert_eq!(name("a", "b:c"), r#""a:b:c""#);
        assert_eq!(name("a:b", "c"), r#""a:b:c#2""#);
        assert_eq!(name("demo", "Subject"), r#""demo:Subject""#);
        assert_eq!(name("demo", "subject"), r#""demo:subject#2""#);
        assert_eq!(name("sqlite_x", "T"), r#""_sqlite_x:T""#);
        let subject = &all[&TableName::new("demo", "Subject")];
        let cols: Vec<&str> = subject.columns.iter().map(|c| c.sql.as_str()).collect();
        assert_eq!(
            cols,
            [r#""RID""#, r#""Name""#, r#""name#2""#, r#""NAME#3""#]
        );
        assert_eq!(subject.col("name"), Some(r#""name#2""#));
        let thing = &all[&TableName::new("demo", "Thing")];
        let cols: Vec<&str> = thing.columns.iter().map(|c| c.sql.as_str()).collect();
        assert_eq!(
            cols,
            [
                r#""T""#,
                r#""T__utc""#,
                r#""t__UTC#2""#,
                r#""rowid#2""#,
                r##""#2""##
            ]
        );
        // The hidden UTC column of T yields to the model's own T__utc.
        assert_eq!(thing.columns[0].utc_sql.as_deref(), Some(r#""T__utc#3""#));
        assert_eq!(thing.key_sql(), "rowid");
        // Every table's DDL is accepted by SQLite, all in one database.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut sorted: Vec<&TableLayout> = all.values().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        for layout in sorted {
            conn.execute_batch(&layout.create_sql()).unwrap();
            conn.execute_batch(
                &layout
                    .insert_sql()
                    .replace('?', "NULL")
                    .replacen("NULL", "'x'", 1),
            )
            .unwrap();
        }
    }

    proptest::proptest! {
        #[test]
        fn column_identifiers_never_collide_and_sqlite_accepts_them(
            names in proptest::collection::vec("[aAbBtT_#:\"]{0,3}(__utc|__UTC)?", 1..8),
            timestamptz in proptest::collection::vec(proptest::bool::ANY, 8),
        ) {
            let mut seen = std::collections::HashSet::new();
            let columns: Vec<serde_json::Value> = std::iter::once("RID".to_string())
                .chain(names)
                .filter(|n| seen.insert(n.clone()))
                .enumerate()
                .map(|(i, n)| {
                    let ty = if timestamptz[i % 8] { "timestamptz" } else { "text" };
                    serde_json::json!({"name": n, "type": {"typename": ty}})
                })
                .collect();
            let json = serde_json::json!({"schemas": {"demo": {"tables": {
                "T": {"column_definitions": columns.clone()},
                "t": {"column_definitions": columns}}}}});
            let model = CatalogModel::from_json(json.to_string().as_bytes()).unwrap();
            let all = layouts(&model);
            let conn = rusqlite::Connection::open_in_memory().unwrap();
            for layout in all.values() {
                let mut idents: Vec<String> = layout
                    .columns
                    .iter()
                    .flat_map(|c| std::iter::once(c.sql.clone()).chain(c.utc_sql.clone()))
                    .map(|s| s.to_ascii_lowercase())
                    .collect();
                let n = idents.len();
                idents.sort();
                idents.dedup();
                proptest::prop_assert_eq!(idents.len(), n);
                conn.execute_batch(&layout.create_sql()).unwrap();
                conn.prepare(&layout.insert_sql()).unwrap();
            }
        }
    }

    #[test]
    fn wide_tables_compare_duplicates_within_sqlites_expression_depth() {
        let cols: Vec<String> =
            std::iter::once(r#"{"name":"RID","type":{"typename":"text"}}"#.to_string())
                .chain(
                    (0..1500).map(|i| format!(r#"{{"name":"c{i}","type":{{"typename":"text"}}}}"#)),
                )
                .collect();
        let json = format!(
            r#"{{"schemas":{{"demo":{{"tables":{{"Wide":{{"column_definitions":[{}]}}}}}}}}}}"#,
            cols.join(",")
        );
        let model = CatalogModel::from_json(json.as_bytes()).unwrap();
        let layout = layout_of(&model, "demo", "Wide");
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&layout.create_sql()).unwrap();
        conn.prepare(&layout.insert_sql()).unwrap();
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
            layout_of(&model, &t.name.schema, &t.name.table).index_sql()
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
        // Execution is never walked into, so nothing looks feature rows up by it; the index
        // on the target column covers the record's fields (and RCT's UTC column).
        assert_eq!(
            indexes("demo", "Execution_Image_Glaucoma"),
            [
                r#"CREATE INDEX "ix:demo:Execution_Image_Glaucoma:Image" ON "demo:Execution_Image_Glaucoma" ("Image", "RID", "Execution", "Feature_Name", "RCT", "RCT__utc", "Glaucoma")"#
            ]
        );
        assert_eq!(
            indexes("demo", "Image"),
            [r#"CREATE INDEX "ix:demo:Image:Subject" ON "demo:Image" ("Subject")"#]
        );
    }
}
