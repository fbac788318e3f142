//! The catalog model: `data/schema.json` (the ERMrest `/schema` document) as typed structures.
//!
//! The whole document is kept (every schema, table, column, key, foreign key and
//! annotation) because feature discovery, asset detection and target resolution
//! all work from structure alone.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::{Error, TableName};

/// Name of the DerivaML schema. Hard-coded by the reference implementation too.
pub const ML_SCHEMA: &str = "deriva-ml";

/// The five ERMrest system columns every table carries.
pub const SYSTEM_COLUMNS: [&str; 5] = ["RID", "RCT", "RMT", "RCB", "RMB"];

const ASSET_ANNOTATION: &str = "tag:isrd.isi.edu,2017:asset";

/// The parsed `schema.json`.
///
/// ```
/// use deriva_bag_features::{CatalogModel, TableName};
/// let json = r#"{"snaptime":"33Q-WXWN-SM7M","schemas":{"demo":{"schema_name":"demo","tables":{
///   "Subject":{"schema_name":"demo","table_name":"Subject","column_definitions":[
///     {"name":"RID","type":{"typename":"ermrest_rid","is_domain":true,"base_type":{"typename":"text"}},"nullok":false},
///     {"name":"Age","type":{"typename":"int4"}}],
///   "keys":[{"unique_columns":["RID"]}],"foreign_keys":[]}}}}}"#;
/// let model = CatalogModel::from_json(json.as_bytes()).unwrap();
/// let subject = model.table(&TableName::new("demo", "Subject")).unwrap();
/// assert_eq!(subject.column("Age").unwrap().ty.kind(), deriva_bag_features::ValueKind::Int);
/// assert_eq!(model.snaptime.as_deref(), Some("33Q-WXWN-SM7M"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogModel {
    /// The catalog snapshot the bag was cut from; old bags may lack it.
    pub snaptime: Option<String>,
    /// Catalog-level annotations.
    pub annotations: Json,
    /// Schemas in document order.
    pub schemas: IndexMap<String, Schema>,
}

/// One ERMrest schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Schema name.
    pub name: String,
    /// Free-text comment.
    pub comment: Option<String>,
    /// Schema annotations.
    pub annotations: Json,
    /// Tables in document order.
    pub tables: IndexMap<String, Table>,
}

/// One ERMrest table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `(schema, table)`.
    pub name: TableName,
    /// `table`, `view`, …
    pub kind: String,
    /// Free-text comment.
    pub comment: Option<String>,
    /// Table annotations.
    pub annotations: Json,
    /// Columns in catalog order (also the CSV column order of ERMrest exports).
    pub columns: Vec<Column>,
    /// Unique keys.
    pub keys: Vec<Key>,
    /// Outbound foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
}

/// One column definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Declared type.
    pub ty: ColumnType,
    /// Whether NULL is allowed (ERMrest's default is true).
    pub nullok: bool,
    /// The default: a literal or a template such as `"0.1.0"`, `"demo:{RID}"` or a feature name.
    pub default: Option<Json>,
    /// Free-text comment.
    pub comment: Option<String>,
    /// Column annotations (the asset annotation lives on `URL`).
    pub annotations: Json,
}

/// What kind of value a column holds once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// Text of any flavour (text, markdown, ermrest_rid, ermrest_curie, …).
    Text,
    /// int2 / int4 / int8 / serial*.
    Int,
    /// float4 / float8 / numeric.
    Float,
    /// boolean (`t`/`f`).
    Bool,
    /// date.
    Date,
    /// timestamp without time zone.
    Timestamp,
    /// timestamptz, ermrest_rct, ermrest_rmt: kept as text plus a UTC instant.
    TimestampTz,
    /// json / jsonb.
    Json,
}

/// An ERMrest column type, with domain and array types resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    /// The declared typename, e.g. `ermrest_rid`, `text[]`, `int8`.
    pub typename: String,
    /// For domain and array types, the underlying type.
    pub base: Option<Box<ColumnType>>,
    /// Whether this is an array type (`is_array: true`).
    pub is_array: bool,
    /// Whether this is a domain type (`is_domain: true`).
    pub is_domain: bool,
}

impl ColumnType {
    /// A plain built-in type such as `text`.
    pub fn simple(typename: &str) -> Self {
        ColumnType {
            typename: typename.to_string(),
            base: None,
            is_array: false,
            is_domain: false,
        }
    }

    /// The scalar kind of the column's values (for arrays: of the elements).
    pub fn kind(&self) -> ValueKind {
        match self.typename.trim_end_matches("[]") {
            "ermrest_rct" | "ermrest_rmt" | "timestamptz" => ValueKind::TimestampTz,
            "int2" | "int4" | "int8" | "serial2" | "serial4" | "serial8" | "smallint"
            | "integer" | "bigint" => ValueKind::Int,
            "float4" | "float8" | "numeric" | "real" | "double precision" => ValueKind::Float,
            "boolean" | "bool" => ValueKind::Bool,
            "date" => ValueKind::Date,
            "timestamp" => ValueKind::Timestamp,
            "json" | "jsonb" => ValueKind::Json,
            _ => match &self.base {
                Some(base) if !self.is_array => base.kind(),
                Some(base) => base.kind(),
                None => ValueKind::Text,
            },
        }
    }

    /// The inclusive range of an integer column's values (of the elements, for arrays), as
    /// PostgreSQL stores them: int2 / smallint / serial2 are 16-bit, int4 / integer / serial4
    /// 32-bit, int8 / bigint / serial8 64-bit; a domain takes its base type's range. `None`
    /// for columns that are not integers.
    ///
    /// ```
    /// use deriva_bag_features::ColumnType;
    /// assert_eq!(ColumnType::simple("int4").int_range(), Some((-2147483648, 2147483647)));
    /// assert_eq!(ColumnType::simple("int2[]").int_range(), Some((-32768, 32767)));
    /// assert_eq!(ColumnType::simple("text").int_range(), None);
    /// ```
    pub fn int_range(&self) -> Option<(i64, i64)> {
        match self.typename.trim_end_matches("[]") {
            "int2" | "serial2" | "smallint" => Some((i16::MIN.into(), i16::MAX.into())),
            "int4" | "serial4" | "integer" => Some((i32::MIN.into(), i32::MAX.into())),
            "int8" | "serial8" | "bigint" => Some((i64::MIN, i64::MAX)),
            _ if self.kind() != ValueKind::Int => None,
            _ => self.base.as_ref().and_then(|base| base.int_range()),
        }
    }

    /// True for `text[]`-style array columns.
    pub fn is_array(&self) -> bool {
        self.is_array || self.typename.ends_with("[]")
    }
}

/// A unique key.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key's columns.
    pub unique_columns: Vec<String>,
    /// Constraint names as `(schema, name)`.
    pub names: Vec<(String, String)>,
}

/// An outbound foreign key of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    /// The referencing columns (of the table that owns this FK).
    pub columns: Vec<String>,
    /// The referenced table.
    pub referenced_table: TableName,
    /// The referenced columns, pairwise with `columns`.
    pub referenced_columns: Vec<String>,
    /// Constraint names as `(schema, name)`.
    pub names: Vec<(String, String)>,
}

impl CatalogModel {
    /// Parses `schema.json` bytes. Errors name the JSON line/column or the table/column at fault.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let doc: RawModel = serde_json::from_slice(bytes).map_err(|e| Error::MalformedModel {
            detail: format!("line {} column {}: {e}", e.line(), e.column()),
        })?;
        let mut schemas = IndexMap::new();
        for (schema_key, raw_schema) in doc.schemas {
            let schema_name = raw_schema.schema_name.unwrap_or_else(|| schema_key.clone());
            let mut tables = IndexMap::new();
            for (table_key, raw_table) in raw_schema.tables {
                let table = raw_table.into_table(&schema_name, &table_key)?;
                tables.insert(table.name.table.clone(), table);
            }
            schemas.insert(
                schema_name.clone(),
                Schema {
                    name: schema_name,
                    comment: raw_schema.comment,
                    annotations: raw_schema.annotations,
                    tables,
                },
            );
        }
        let model = CatalogModel {
            snaptime: doc.snaptime,
            annotations: doc.annotations,
            schemas,
        };
        model.check_references()?;
        Ok(model)
    }

    fn check_references(&self) -> Result<(), Error> {
        for table in self.tables() {
            for fk in &table.foreign_keys {
                if self.table(&fk.referenced_table).is_none() {
                    return Err(Error::MalformedModel {
                        detail: format!(
                            "foreign key {:?} of table {} references {}, which the model lacks",
                            fk.columns, table.name, fk.referenced_table
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Every table of every schema, in document order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.schemas.values().flat_map(|s| s.tables.values())
    }

    /// The table with this exact `(schema, table)` name.
    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.schemas.get(&name.schema)?.tables.get(&name.table)
    }

    /// Resolves `schema:table`, `schema.table` or a bare table name.
    ///
    /// A bare name must be unambiguous across schemas; otherwise the error lists the candidates.
    pub fn resolve_table(&self, name: &str) -> Result<&Table, Error> {
        if let Some(t) = self.table_by_bare(name)? {
            return Ok(t);
        }
        if let Some(qualified) = TableName::parse_qualified(name) {
            if let Some(t) = self.table(&qualified) {
                return Ok(t);
            }
        }
        Err(Error::TableNotFound {
            name: name.to_string(),
            known: self.table_names_for_error(),
        })
    }

    fn table_by_bare(&self, name: &str) -> Result<Option<&Table>, Error> {
        let matches: Vec<&Table> = self
            .schemas
            .values()
            .filter_map(|s| s.tables.get(name))
            .collect();
        match matches.len() {
            0 => Ok(None),
            1 => Ok(Some(matches[0])),
            _ => Err(Error::AmbiguousTable {
                name: name.to_string(),
                candidates: matches.iter().map(|t| t.name.to_string()).collect(),
            }),
        }
    }

    fn table_names_for_error(&self) -> Vec<String> {
        self.tables()
            .filter(|t| !is_system_schema(&t.name.schema))
            .map(|t| t.name.to_string())
            .collect()
    }

    /// Schemas that hold the user's data: all but `deriva-ml`, `public`, `www`, `WWW`.
    pub fn domain_schemas(&self) -> impl Iterator<Item = &Schema> {
        self.schemas
            .values()
            .filter(|s| s.name != ML_SCHEMA && !is_system_schema(&s.name))
    }

    /// The tables every foreign key that points at `target` comes from, with the FK.
    pub fn referencing(&self, target: &TableName) -> impl Iterator<Item = (&Table, &ForeignKey)> {
        let target = target.clone();
        self.tables().flat_map(move |t| {
            let target = target.clone();
            t.foreign_keys
                .iter()
                .filter(move |fk| fk.referenced_table == target)
                .map(move |fk| (t, fk))
        })
    }
}

/// `public`, `www` and `WWW` (compared case-insensitively) hold catalog plumbing, not data.
pub fn is_system_schema(name: &str) -> bool {
    name.eq_ignore_ascii_case("public") || name.eq_ignore_ascii_case("www")
}

impl Table {
    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Columns other than the five system columns.
    pub fn non_system_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| !SYSTEM_COLUMNS.contains(&c.name.as_str()))
    }

    /// A vocabulary: `ID`, `URI`, `Name`, `Description`, `Synonyms` with their exact types,
    /// and all but `Synonyms` NOT NULL.
    pub fn is_vocabulary(&self) -> bool {
        let has = |name: &str, typename: &str, not_null: bool| {
            self.column(name)
                .is_some_and(|c| c.ty.typename == typename && (!not_null || !c.nullok))
        };
        has("ID", "ermrest_curie", true)
            && has("URI", "ermrest_uri", true)
            && has("Name", "text", true)
            && has("Description", "markdown", true)
            && has("Synonyms", "text[]", false)
    }

    /// An asset table: `URL`, `Filename`, `Length`, `MD5` with their types, `URL`/`Length`/`MD5`
    /// NOT NULL, and the asset annotation on `URL`.
    pub fn is_asset(&self) -> bool {
        let col = |name: &str| self.column(name);
        let url_ok = col("URL").is_some_and(|c| {
            c.ty.typename == "text" && !c.nullok && c.annotations.get(ASSET_ANNOTATION).is_some()
        });
        let filename_ok = col("Filename").is_some_and(|c| c.ty.typename == "text");
        let length_ok = col("Length").is_some_and(|c| c.ty.typename == "int8" && !c.nullok);
        let md5_ok = col("MD5").is_some_and(|c| c.ty.typename == "text" && !c.nullok);
        url_ok && filename_ok && length_ok && md5_ok
    }

    /// The single-column foreign key on `column`, if any.
    pub fn fk_on(&self, column: &str) -> Option<&ForeignKey> {
        self.foreign_keys
            .iter()
            .find(|fk| fk.columns.len() == 1 && fk.columns[0] == column)
    }
}

// ---- raw serde shapes -------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawModel {
    #[serde(default)]
    snaptime: Option<String>,
    #[serde(default)]
    annotations: Json,
    schemas: IndexMap<String, RawSchema>,
}

#[derive(Deserialize)]
struct RawSchema {
    #[serde(default)]
    schema_name: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    annotations: Json,
    #[serde(default)]
    tables: IndexMap<String, RawTable>,
}

#[derive(Deserialize)]
struct RawTable {
    #[serde(default)]
    table_name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    annotations: Json,
    #[serde(default)]
    column_definitions: Vec<RawColumn>,
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    foreign_keys: Vec<RawForeignKey>,
}

#[derive(Deserialize)]
struct RawColumn {
    name: String,
    #[serde(rename = "type")]
    ty: RawType,
    #[serde(default)]
    nullok: Option<bool>,
    #[serde(default)]
    default: Json,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    annotations: Json,
}

#[derive(Deserialize)]
struct RawType {
    typename: String,
    #[serde(default)]
    is_array: bool,
    #[serde(default)]
    is_domain: bool,
    #[serde(default)]
    base_type: Option<Box<RawType>>,
}

#[derive(Deserialize)]
struct RawKey {
    unique_columns: Vec<String>,
    #[serde(default)]
    names: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct RawForeignKey {
    foreign_key_columns: Vec<RawColumnRef>,
    referenced_columns: Vec<RawColumnRef>,
    #[serde(default)]
    names: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct RawColumnRef {
    schema_name: String,
    table_name: String,
    column_name: String,
}

impl RawType {
    fn into_type(self) -> ColumnType {
        ColumnType {
            typename: self.typename,
            base: self.base_type.map(|b| Box::new(b.into_type())),
            is_array: self.is_array,
            is_domain: self.is_domain,
        }
    }
}

impl RawTable {
    fn into_table(self, schema: &str, key: &str) -> Result<Table, Error> {
        let table_name = self.table_name.unwrap_or_else(|| key.to_string());
        let name = TableName::new(schema, table_name);
        let mut columns = Vec::with_capacity(self.column_definitions.len());
        for c in self.column_definitions {
            if columns
                .iter()
                .any(|existing: &Column| existing.name == c.name)
            {
                return Err(Error::MalformedModel {
                    detail: format!("table {name} defines column {:?} twice", c.name),
                });
            }
            columns.push(Column {
                name: c.name,
                ty: c.ty.into_type(),
                nullok: c.nullok.unwrap_or(true),
                default: if c.default.is_null() {
                    None
                } else {
                    Some(c.default)
                },
                comment: c.comment,
                annotations: c.annotations,
            });
        }
        let keys = self
            .keys
            .into_iter()
            .map(|k| Key {
                unique_columns: k.unique_columns,
                names: k.names,
            })
            .collect();
        let mut foreign_keys = Vec::new();
        for fk in self.foreign_keys {
            let Some(first) = fk.referenced_columns.first() else {
                return Err(Error::MalformedModel {
                    detail: format!("a foreign key of table {name} has no referenced columns"),
                });
            };
            if fk.referenced_columns.len() != fk.foreign_key_columns.len() {
                return Err(Error::MalformedModel {
                    detail: format!(
                        "a foreign key of table {name} pairs {} columns with {} referenced columns",
                        fk.foreign_key_columns.len(),
                        fk.referenced_columns.len()
                    ),
                });
            }
            foreign_keys.push(ForeignKey {
                referenced_table: TableName::new(&first.schema_name, &first.table_name),
                columns: fk
                    .foreign_key_columns
                    .into_iter()
                    .map(|c| c.column_name)
                    .collect(),
                referenced_columns: fk
                    .referenced_columns
                    .into_iter()
                    .map(|c| c.column_name)
                    .collect(),
                names: fk.names,
            });
        }
        // Drop the unused fields of the column refs without warnings.
        Ok(Table {
            name,
            kind: self.kind.unwrap_or_else(|| "table".to_string()),
            comment: self.comment,
            annotations: self.annotations,
            columns,
            keys,
            foreign_keys,
        })
    }
}
