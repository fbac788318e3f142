//! What the CLI prints: the stable `--json` shapes (README, "The `deriva-bag` CLI") and the human text
//! (aligned tables) shown by default.
//!
//! JSON goes through serde (`Row`, `DatasetInfo` and the summaries here serialize
//! themselves), so NULL is always JSON `null` and key order is the table's column order. The
//! one exception, member rows, are written from the index's stored cells by
//! `TableLayout::write_row_json`, which a test holds to the serialized row's bytes.

use std::collections::HashMap;
use std::io::{self, Write};

use deriva_bag_core::features::model::SYSTEM_COLUMNS;
use deriva_bag_core::features::{
    DatasetInfo, Feature, FeatureRecord, Members, Row, TableName, Value,
};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{json, Value as Json};

/// Writes `value` as pretty JSON followed by a newline.
pub fn write_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// Writes a JSON array one element per line, consuming `items` as it goes, so a table of
/// any size streams without being held in memory.
pub fn write_json_lines_array<T, E>(
    out: &mut dyn Write,
    items: impl IntoIterator<Item = Result<T, E>>,
) -> Result<(), StreamError<E>>
where
    T: Serialize,
{
    out.write_all(b"[").map_err(StreamError::Output)?;
    let mut first = true;
    let mut buf = Vec::new();
    for item in items {
        let item = item.map_err(StreamError::Item)?;
        buf.clear();
        buf.extend_from_slice(if first { b"\n" } else { b",\n" });
        first = false;
        write_compact(out, &mut buf, &Serialized(item)).map_err(StreamError::Output)?;
    }
    out.write_all(if first { b"]\n" } else { b"\n]\n" })
        .map_err(StreamError::Output)
}

/// Writes one JSON value per line (JSON Lines), consuming `items` as it goes.
pub fn write_json_lines<T, E>(
    out: &mut dyn Write,
    items: impl IntoIterator<Item = Result<T, E>>,
) -> Result<(), StreamError<E>>
where
    T: Serialize,
{
    write_item_lines(out, items.into_iter().map(|item| item.map(Serialized)))
}

/// [`write_json_lines`] for items that write their own JSON.
pub fn write_item_lines<T, E>(
    out: &mut dyn Write,
    items: impl IntoIterator<Item = Result<T, E>>,
) -> Result<(), StreamError<E>>
where
    T: JsonItem,
{
    let mut buf = Vec::new();
    for item in items {
        let item = item.map_err(StreamError::Item)?;
        buf.clear();
        item.write_json(&mut buf).map_err(StreamError::Output)?;
        buf.push(b'\n');
        out.write_all(&buf).map_err(StreamError::Output)?;
    }
    Ok(())
}

/// Something the streaming writers write as one compact JSON value.
pub trait JsonItem {
    /// Appends the value's compact JSON to `buf`.
    fn write_json(&self, buf: &mut Vec<u8>) -> io::Result<()>;
}

/// A serializable value, written as serde_json writes it.
pub struct Serialized<T>(pub T);

impl<T: Serialize> JsonItem for Serialized<T> {
    fn write_json(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        serde_json::to_writer(buf, &self.0).map_err(io::Error::from)
    }
}

/// Appends `item` as compact JSON to `buf` (which may already hold a separator) and writes
/// `buf` out in one call: serializing into memory first spares a call through `out` for
/// every token.
fn write_compact(out: &mut dyn Write, buf: &mut Vec<u8>, item: &impl JsonItem) -> io::Result<()> {
    item.write_json(buf)?;
    out.write_all(buf)
}

/// The `members --json` key of each element table: the bare table name, qualified as
/// `schema:table` only where two element tables share the bare name.
pub fn member_keys(tables: &[TableName]) -> Vec<String> {
    let mut bare_count: HashMap<&str, usize> = HashMap::new();
    for table in tables {
        *bare_count.entry(table.table.as_str()).or_default() += 1;
    }
    tables
        .iter()
        .map(|table| {
            if bare_count.get(table.table.as_str()).copied() == Some(1) {
                table.table.clone()
            } else {
                table.to_string()
            }
        })
        .collect()
}

/// `members --json`, `{"Table":[row, ...], ...}` with a key for every element table in
/// order (keys from [`member_keys`]), written as the rows arrive, one row per line; rows
/// come table by table. Keeps which keys are written and whether the last one's array has
/// rows yet.
pub struct MembersWriter<'w> {
    out: &'w mut dyn Write,
    keys: &'w [String],
    /// Keys before this one are written.
    next: usize,
    /// Rows written into the last key's array (`None`: that array is closed).
    open_rows: Option<usize>,
    /// The row being written (see [`write_compact`]).
    buf: Vec<u8>,
}

impl<'w> MembersWriter<'w> {
    /// Opens the object whose keys are `keys` (from [`member_keys`]).
    pub fn start(out: &'w mut dyn Write, keys: &'w [String]) -> io::Result<Self> {
        out.write_all(b"{")?;
        Ok(MembersWriter {
            out,
            keys,
            next: 0,
            open_rows: None,
            buf: Vec::new(),
        })
    }

    /// Writes the keys not written yet, empty, and closes the object.
    pub fn finish(mut self) -> io::Result<()> {
        self.open_until(self.keys.len())?;
        self.out.write_all(if self.keys.is_empty() {
            b"}\n"
        } else {
            b"\n}\n"
        })
    }
}

impl MembersWriter<'_> {
    /// Closes the open array and writes the keys before `end`, empty.
    fn open_until(&mut self, end: usize) -> io::Result<()> {
        self.close()?;
        while self.next < end {
            self.open(self.next)?;
            self.close()?;
        }
        Ok(())
    }

    fn open(&mut self, at: usize) -> io::Result<()> {
        let sep = if at == 0 { "\n" } else { ",\n" };
        write!(self.out, "{sep}  ")?;
        serde_json::to_writer(&mut *self.out, &self.keys[at]).map_err(io::Error::from)?;
        self.out.write_all(b": [")?;
        self.next = at + 1;
        self.open_rows = Some(0);
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        match self.open_rows.take() {
            Some(0) => self.out.write_all(b"]"),
            Some(_) => self.out.write_all(b"\n  ]"),
            None => Ok(()),
        }
    }

    /// Writes a row of the table at `at` (`None`: a table that is not an element table,
    /// which cannot happen; its row is dropped rather than given a duplicate key).
    pub fn row(&mut self, at: Option<usize>, row: &impl JsonItem) -> io::Result<()> {
        let Some(at) = at else { return Ok(()) };
        if self.open_rows.is_none() || at + 1 != self.next {
            if at < self.next {
                // A table whose array is already written: never produced.
                return Ok(());
            }
            self.open_until(at)?;
            self.open(at)?;
        }
        let rows = self.open_rows.get_or_insert(0);
        self.buf.clear();
        self.buf
            .extend_from_slice(if *rows == 0 { b"\n    " } else { b",\n    " });
        *rows += 1;
        write_compact(self.out, &mut self.buf, row)
    }
}

/// `members --jsonl` line: `{"table": key, "row": {...}}` (key as in [`member_keys`]).
pub struct MemberLine<'a> {
    /// The element table's `members --json` key.
    pub table: &'a str,
    /// The member row.
    pub row: MemberRow<'a>,
}

impl JsonItem for MemberLine<'_> {
    fn write_json(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.extend_from_slice(b"{\"table\":");
        serde_json::to_writer(&mut *buf, self.table).map_err(io::Error::from)?;
        buf.extend_from_slice(b",\"row\":");
        self.row.write_json(buf)?;
        buf.push(b'}');
        Ok(())
    }
}

/// A member row as `members --json` writes it: the row's columns, then, with `--recurse`,
/// `member_of`, the RID of the dataset it is a direct member of. Written from the row's JSON
/// as the index gives it ([`DatasetBag::for_each_member_json`](deriva_bag_core::DatasetBag::for_each_member_json)).
pub struct MemberRow<'a> {
    /// The row as a JSON object.
    pub row: &'a [u8],
    /// The dataset it is a direct member of, when listed.
    pub member_of: Option<&'a str>,
}

impl JsonItem for MemberRow<'_> {
    fn write_json(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        let Some(origin) = self.member_of else {
            buf.extend_from_slice(self.row);
            return Ok(());
        };
        // The object without its closing brace, then one more key.
        let open = match self.row {
            [open @ .., b'}'] => open,
            _ => return Err(io::Error::other("a member row is not a JSON object")),
        };
        buf.extend_from_slice(open);
        if open != b"{" {
            buf.push(b',');
        }
        buf.extend_from_slice(b"\"member_of\":");
        serde_json::to_writer(&mut *buf, origin).map_err(io::Error::from)?;
        buf.push(b'}');
        Ok(())
    }
}

/// A failure while streaming: either producing an item or writing it.
#[derive(Debug)]
pub enum StreamError<E> {
    /// Producing the next item failed (e.g. a bad CSV value in the index).
    Item(E),
    /// Writing to stdout failed.
    Output(io::Error),
}

/// `info --json`: `{"path","extracted_to","dataset":{..},"bagit_version","materialized","missing_assets","tables"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InfoSummary {
    /// The bag as given: a directory or an archive.
    pub path: String,
    /// For an archive, the folder it was extracted to (in the cache); `null` for a directory.
    pub extracted_to: Option<String>,
    /// The root dataset: rid, version, types, description.
    pub dataset: DatasetInfo,
    /// `bagit.txt`'s version, e.g. `0.97`.
    pub bagit_version: String,
    /// Whether every asset file is on disk.
    pub materialized: bool,
    /// How many asset files are not on disk.
    pub missing_assets: usize,
    /// Whether the asset files were looked for by this run (else: the cache's record of the
    /// last check). Human text only.
    #[serde(skip)]
    pub assets_checked_now: bool,
    /// Row count of every table, keyed `schema:table`, in `list_tables` order.
    pub tables: IndexMap<String, u64>,
}

/// `features --json` element: one feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureSummary {
    /// The target table, `schema:table`.
    pub table: String,
    /// The feature name.
    pub name: String,
    /// The association table holding the values, `schema:table`.
    pub feature_table: String,
    /// Vocabulary-term columns.
    pub term_columns: Vec<String>,
    /// Asset columns.
    pub asset_columns: Vec<String>,
    /// Plain value columns.
    pub value_columns: Vec<String>,
}

impl From<&Feature> for FeatureSummary {
    fn from(feature: &Feature) -> Self {
        FeatureSummary {
            table: feature.target_table.to_string(),
            name: feature.name.clone(),
            feature_table: feature.feature_table.to_string(),
            term_columns: feature.term_columns(),
            asset_columns: feature.asset_columns(),
            value_columns: feature.value_columns(),
        }
    }
}

/// A text table whose columns are padded to a common width.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextTable {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        TextTable {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing trailing cells are blank).
    pub fn push<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows
            .push(cells.into_iter().map(|c| cell_text(&c.into())).collect());
    }

    /// Renders the header, a rule and the rows; columns are separated by two spaces and
    /// no line has trailing blanks.
    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        let mut text = String::new();
        for line in [&self.headers, &rule].into_iter().chain(&self.rows) {
            let mut rendered = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = line.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    rendered.push_str("  ");
                }
                rendered.push_str(cell);
                let pad = width.saturating_sub(cell.chars().count());
                rendered.extend(std::iter::repeat_n(' ', pad));
            }
            text.push_str(rendered.trim_end());
            text.push('\n');
        }
        text
    }
}

/// Makes a cell one line: control characters (newline, tab…) are shown escaped so they
/// cannot break the alignment.
fn cell_text(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A value as a table cell: NULL is blank (as psql shows it), text as is.
pub fn value_cell(value: &Value) -> String {
    value.to_string()
}

/// Whether a column is shown in human text: `RID` and data columns always, the other
/// system columns (`RCT`, `RMT`, `RCB`, `RMB`) only with `all_columns` — they make every
/// line some 150 characters wider and are rarely what a reader looks for (`--json` always
/// has every column).
pub fn shows_column(name: &str, all_columns: bool) -> bool {
    all_columns || name == "RID" || !SYSTEM_COLUMNS.contains(&name)
}

/// Rows of one table (they share a column list) as a text table.
pub fn rows_table(rows: &[Row], all_columns: bool) -> TextTable {
    let Some(first) = rows.first() else {
        return TextTable::default();
    };
    let shown: Vec<usize> = first
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| shows_column(c, all_columns))
        .map(|(i, _)| i)
        .collect();
    let mut table = TextTable::new(shown.iter().map(|&i| first.columns()[i].to_string()));
    for row in rows {
        table.push(shown.iter().map(|&i| value_cell(&row.values()[i])));
    }
    table
}

/// Datasets (children, parents) as a text table.
pub fn datasets_table(datasets: &[DatasetInfo]) -> TextTable {
    let mut table = TextTable::new(["RID", "VERSION", "TYPES", "DESCRIPTION"]);
    for d in datasets {
        table.push([
            d.rid.to_string(),
            d.version.clone().unwrap_or_default(),
            d.types.join(","),
            d.description.clone().unwrap_or_default(),
        ]);
    }
    table
}

/// Features as a text table.
pub fn features_table(features: &[FeatureSummary]) -> TextTable {
    let mut table = TextTable::new([
        "TABLE",
        "NAME",
        "FEATURE_TABLE",
        "TERMS",
        "ASSETS",
        "VALUES",
    ]);
    for f in features {
        table.push([
            f.table.clone(),
            f.name.clone(),
            f.feature_table.clone(),
            f.term_columns.join(","),
            f.asset_columns.join(","),
            f.value_columns.join(","),
        ]);
    }
    table
}

/// Feature records as a text table, columns from the first record's fields.
pub fn records_table(records: &[FeatureRecord]) -> TextTable {
    let headers: Vec<String> = records
        .first()
        .map(|r| r.fields.keys().cloned().collect())
        .unwrap_or_default();
    let mut table = TextTable::new(headers.clone());
    for record in records {
        table.push(headers.iter().map(|h| match record.fields.get(h) {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }));
    }
    table
}

/// The human text of `info`.
pub fn info_text(info: &InfoSummary) -> String {
    let d = &info.dataset;
    let mut text = String::new();
    let mut line = |label: &str, value: &str| {
        text.push_str(&format!("{label:<15}{value}\n"));
    };
    line("path:", &info.path);
    if let Some(extracted) = &info.extracted_to {
        line("extracted to:", extracted);
    }
    line("dataset:", d.rid.as_str());
    line("version:", d.version.as_deref().unwrap_or("(none)"));
    line(
        "types:",
        &if d.types.is_empty() {
            "(none)".to_string()
        } else {
            d.types.join(", ")
        },
    );
    line("description:", d.description.as_deref().unwrap_or(""));
    line("bagit version:", &info.bagit_version);
    let checked = if info.assets_checked_now {
        ""
    } else {
        " (as last checked; --check-assets looks again)"
    };
    line(
        "materialized:",
        &if info.materialized {
            format!("yes{checked}")
        } else {
            format!("no ({} asset files missing){checked}", info.missing_assets)
        },
    );
    let mut tables = TextTable::new(["TABLE", "ROWS"]);
    for (name, rows) in &info.tables {
        tables.push([name.clone(), rows.to_string()]);
    }
    text.push('\n');
    text.push_str(&tables.render());
    text
}

/// `1 row`, `2 rows`: a row count in the human text.
pub fn row_count(n: usize) -> String {
    if n == 1 {
        "1 row".to_string()
    } else {
        format!("{n} rows")
    }
}

/// A member map's human text: one titled table per element table that has members.
pub fn members_text(members: &Members, all_columns: bool) -> String {
    let mut text = String::new();
    for (table, rows) in members.iter().filter(|(_, rows)| !rows.is_empty()) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{table} ({})\n", row_count(rows.len())));
        text.push_str(&rows_table(rows, all_columns).render());
    }
    if text.is_empty() {
        text.push_str("(no members)\n");
    }
    text
}

/// The JSON of a qualified table-name list (`tables --json`).
pub fn table_names_json(tables: &[TableName]) -> Json {
    json!(tables.iter().map(|t| t.to_string()).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use deriva_bag_core::features::{
        ColumnRole, ColumnType, FeatureColumn, FeatureId, Rid, Selectable,
    };
    use deriva_bag_core::FeatureRow;

    fn row(columns: &Arc<[Arc<str>]>, values: Vec<Value>) -> Row {
        Row::new(columns.clone(), values)
    }

    fn cols(names: &[&str]) -> Arc<[Arc<str>]> {
        names
            .iter()
            .map(|n| Arc::from(*n))
            .collect::<Vec<_>>()
            .into()
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    fn subject_rows() -> Vec<Row> {
        let c = cols(&["RID", "Name", "Age"]);
        vec![
            row(&c, vec![text("1-S001"), text("Thing1"), Value::Int(7)]),
            row(&c, vec![text("1-S002"), text(""), Value::Null]),
        ]
    }

    #[test]
    fn text_table_aligns_columns_without_trailing_blanks() {
        let rendered = rows_table(&subject_rows(), false).render();
        assert_eq!(
            rendered,
            "RID     Name    Age\n\
             ------  ------  ---\n\
             1-S001  Thing1  7\n\
             1-S002\n"
        );
    }

    #[test]
    fn human_rows_hide_system_columns_other_than_rid_unless_asked() {
        let c = cols(&["RID", "RCT", "RMT", "RCB", "RMB", "Name"]);
        let rct = || text("2026-05-28 16:54:02+00");
        let rows = vec![row(
            &c,
            vec![
                text("1-S001"),
                rct(),
                rct(),
                Value::Null,
                Value::Null,
                text("Thing1"),
            ],
        )];
        assert_eq!(
            rows_table(&rows, false).render(),
            "RID     Name\n------  ------\n1-S001  Thing1\n"
        );
        let all = rows_table(&rows, true).render();
        assert_eq!(
            all.lines().next(),
            Some("RID     RCT                     RMT                     RCB  RMB  Name")
        );
        assert_eq!(rows_table(&[], false), TextTable::default());
    }

    #[test]
    fn text_table_counts_characters_not_bytes() {
        let mut t = TextTable::new(["A", "B"]);
        t.push(["rétine_003.png", "x"]);
        t.push(["retina_004.png", "y"]);
        let lines: Vec<_> = t.render().lines().map(str::to_string).collect();
        assert_eq!(lines[2], "rétine_003.png  x");
        assert_eq!(lines[3], "retina_004.png  y");
    }

    #[test]
    fn text_table_escapes_newlines_and_tabs_in_cells() {
        let mut t = TextTable::new(["Description"]);
        t.push(["two\nlines\tand a tab"]);
        assert_eq!(t.render().lines().nth(2), Some("two\\nlines\\tand a tab"));
    }

    #[test]
    fn rows_serialize_with_json_null_for_null_and_empty_string_for_quoted_empty() {
        let rows = subject_rows();
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(
            json,
            json!([
                {"RID": "1-S001", "Name": "Thing1", "Age": 7},
                {"RID": "1-S002", "Name": "", "Age": null},
            ])
        );
    }

    #[test]
    fn json_lines_array_streams_valid_json() {
        let mut out = Vec::new();
        write_json_lines_array::<_, ()>(&mut out, subject_rows().into_iter().map(Ok)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "[\n{\"RID\":\"1-S001\",\"Name\":\"Thing1\",\"Age\":7},\n\
             {\"RID\":\"1-S002\",\"Name\":\"\",\"Age\":null}\n]\n"
        );
        let mut empty = Vec::new();
        write_json_lines_array::<Row, ()>(&mut empty, std::iter::empty()).unwrap();
        assert_eq!(empty, b"[]\n");
    }

    #[test]
    fn json_lines_array_stops_at_the_first_item_error() {
        let mut out = Vec::new();
        let items = vec![Ok(1), Err("bad line 3"), Ok(2)];
        match write_json_lines_array(&mut out, items) {
            Err(StreamError::Item(e)) => assert_eq!(e, "bad line 3"),
            other => panic!("expected an item error, got {other:?}"),
        }
    }

    /// Writes `members --json`, `{"Table":[row, ...], ...}` with a key for every element table
    /// in `tables` order (keys from [`member_keys`]), as the rows arrive: one row per line.
    /// `members` yields each table's rows together, tables in `tables` order.
    fn write_members_json<E>(
        out: &mut dyn Write,
        tables: &[TableName],
        members: impl IntoIterator<Item = Result<(TableName, impl JsonItem), E>>,
    ) -> Result<(), StreamError<E>> {
        let keys = member_keys(tables);
        let mut w = MembersWriter::start(out, &keys).map_err(StreamError::Output)?;
        for member in members {
            let (table, row) = member.map_err(StreamError::Item)?;
            let at = tables.iter().position(|t| *t == table);
            w.row(at, &row).map_err(StreamError::Output)?;
        }
        w.finish().map_err(StreamError::Output)
    }

    /// `write_members_json` over `members`, parsed back.
    fn streamed_members(tables: &[TableName], members: Vec<(TableName, Row)>) -> (String, Json) {
        let json: Vec<(TableName, Vec<u8>)> = members
            .into_iter()
            .map(|(table, row)| (table, serde_json::to_vec(&row).unwrap()))
            .collect();
        let mut out = Vec::new();
        write_members_json::<std::convert::Infallible>(
            &mut out,
            tables,
            json.iter().map(|(table, row)| {
                Ok((
                    table.clone(),
                    MemberRow {
                        row,
                        member_of: None,
                    },
                ))
            }),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let json = serde_json::from_str(&text).unwrap();
        (text, json)
    }

    #[test]
    fn members_are_keyed_by_bare_name_unless_two_schemas_share_it() {
        let c = cols(&["RID"]);
        let tables = [
            TableName::new("demo", "Image"),
            TableName::new("demo", "Subject"),
            TableName::new("other", "Subject"),
        ];
        let (text, json) = streamed_members(
            &tables,
            vec![
                (tables[0].clone(), row(&c, vec![text("1-I001")])),
                (tables[0].clone(), row(&c, vec![text("1-I002")])),
                (tables[2].clone(), row(&c, vec![text("2-S1")])),
            ],
        );
        assert_eq!(
            json,
            json!({
                "Image": [{"RID": "1-I001"}, {"RID": "1-I002"}],
                "demo:Subject": [],
                "other:Subject": [{"RID": "2-S1"}],
            })
        );
        // Key order follows the element tables, not alphabetical order; a row per line.
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["Image", "demo:Subject", "other:Subject"]);
        assert_eq!(
            text,
            "{\n  \"Image\": [\n    {\"RID\":\"1-I001\"},\n    {\"RID\":\"1-I002\"}\n  ],\n  \
             \"demo:Subject\": [],\n  \"other:Subject\": [\n    {\"RID\":\"2-S1\"}\n  ]\n}\n"
        );
    }

    #[test]
    fn members_without_rows_or_element_tables_are_still_one_object() {
        let tables = [TableName::new("demo", "Image")];
        assert_eq!(streamed_members(&tables, vec![]).1, json!({"Image": []}));
        assert_eq!(
            streamed_members(&[], vec![]),
            ("{}\n".to_string(), json!({}))
        );
    }

    #[test]
    fn json_lines_are_one_compact_value_per_line() {
        let mut out = Vec::new();
        write_json_lines::<_, std::convert::Infallible>(
            &mut out,
            subject_rows().into_iter().map(Ok),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"RID\":\"1-S001\",\"Name\":\"Thing1\",\"Age\":7}\n\
             {\"RID\":\"1-S002\",\"Name\":\"\",\"Age\":null}\n"
        );
    }

    #[test]
    fn row_counts_read_1_row_and_n_rows() {
        assert_eq!(row_count(0), "0 rows");
        assert_eq!(row_count(1), "1 row");
        assert_eq!(row_count(2), "2 rows");
    }

    #[test]
    fn members_text_skips_tables_without_members() {
        let c = cols(&["RID"]);
        let mut members = Members::new();
        members.insert(
            TableName::new("demo", "Image"),
            vec![row(&c, vec![text("1-I001")])],
        );
        members.insert(TableName::new("demo", "Subject"), vec![]);
        assert_eq!(
            members_text(&members, false),
            "demo:Image (1 row)\nRID\n------\n1-I001\n"
        );
        assert_eq!(members_text(&Members::new(), false), "(no members)\n");
    }

    fn dataset(rid: &str, version: Option<&str>, types: &[&str], d: Option<&str>) -> DatasetInfo {
        DatasetInfo {
            rid: Rid::new(rid),
            version: version.map(str::to_string),
            types: types.iter().map(|t| t.to_string()).collect(),
            description: d.map(str::to_string),
        }
    }

    #[test]
    fn dataset_info_serializes_to_the_children_shape() {
        let children = vec![
            dataset("1-D001", Some("1.0.0"), &["Training"], Some("train")),
            dataset("1-D003", Some("1.0.0"), &[], None),
        ];
        assert_eq!(
            serde_json::to_value(&children).unwrap(),
            json!([
                {"rid": "1-D001", "version": "1.0.0", "types": ["Training"], "description": "train"},
                {"rid": "1-D003", "version": "1.0.0", "types": [], "description": null},
            ])
        );
        assert_eq!(
            datasets_table(&children).render(),
            "RID     VERSION  TYPES     DESCRIPTION\n\
             ------  -------  --------  -----------\n\
             1-D001  1.0.0    Training  train\n\
             1-D003  1.0.0\n"
        );
    }

    #[test]
    fn info_summary_serializes_in_spec_key_order() {
        let mut tables = IndexMap::new();
        tables.insert("demo:Image".to_string(), 6u64);
        tables.insert("demo:Subject".to_string(), 3u64);
        let info = InfoSummary {
            path: "/bags/Dataset_1-D000.zip".into(),
            extracted_to: Some("/cache/Dataset_1-D000".into()),
            dataset: dataset("1-D000", Some("1.0.0"), &["Complete"], Some("root")),
            bagit_version: "0.97".into(),
            materialized: false,
            missing_assets: 6,
            assets_checked_now: true,
            tables,
        };
        let text = serde_json::to_string(&info).unwrap();
        assert_eq!(
            text,
            r#"{"path":"/bags/Dataset_1-D000.zip","extracted_to":"/cache/Dataset_1-D000","dataset":{"rid":"1-D000","version":"1.0.0","types":["Complete"],"description":"root"},"bagit_version":"0.97","materialized":false,"missing_assets":6,"tables":{"demo:Image":6,"demo:Subject":3}}"#
        );
        assert_eq!(
            info_text(&info),
            "path:          /bags/Dataset_1-D000.zip\n\
             extracted to:  /cache/Dataset_1-D000\n\
             dataset:       1-D000\n\
             version:       1.0.0\n\
             types:         Complete\n\
             description:   root\n\
             bagit version: 0.97\n\
             materialized:  no (6 asset files missing)\n\
             \n\
             TABLE         ROWS\n\
             ------------  ----\n\
             demo:Image    6\n\
             demo:Subject  3\n"
        );
    }

    fn glaucoma_feature() -> Feature {
        Feature {
            name: "Glaucoma".into(),
            target_table: TableName::new("demo", "Image"),
            feature_table: TableName::new("demo", "Execution_Image_Glaucoma"),
            target_column: "Image".into(),
            columns: vec![
                FeatureColumn {
                    name: "Glaucoma".into(),
                    ty: ColumnType::simple("text"),
                    nullok: false,
                    role: ColumnRole::Term,
                    references: Some(TableName::new("demo", "Glaucoma")),
                },
                FeatureColumn {
                    name: "Confidence".into(),
                    ty: ColumnType::simple("float4"),
                    nullok: true,
                    role: ColumnRole::Value,
                    references: None,
                },
            ],
            qualifier_columns: vec![],
        }
    }

    #[test]
    fn feature_summary_has_the_spec_shape() {
        let summary = FeatureSummary::from(&glaucoma_feature());
        assert_eq!(
            serde_json::to_string(&summary).unwrap(),
            r#"{"table":"demo:Image","name":"Glaucoma","feature_table":"demo:Execution_Image_Glaucoma","term_columns":["Glaucoma"],"asset_columns":[],"value_columns":["Confidence"]}"#
        );
        assert_eq!(
            features_table(&[summary]).render(),
            "TABLE       NAME      FEATURE_TABLE                  TERMS     ASSETS  VALUES\n\
             ----------  --------  -----------------------------  --------  ------  ----------\n\
             demo:Image  Glaucoma  demo:Execution_Image_Glaucoma  Glaucoma          Confidence\n"
        );
    }

    #[test]
    fn records_print_their_fields_in_field_order() {
        let id = FeatureId {
            schema: "demo".into(),
            table: "Execution_Image_Glaucoma".into(),
            name: "Glaucoma".into(),
        };
        let record = FeatureRecord::from_values(
            id,
            "Image".into(),
            Some(Rid::new("1-A002")),
            [
                ("Execution".to_string(), text("1-E002")),
                ("Feature_Name".to_string(), text("Glaucoma")),
                ("RCT".to_string(), text("2026-05-28 10:00:00-07")),
                ("Glaucoma".to_string(), text("Severe")),
                ("Confidence".to_string(), Value::Null),
                ("Image".to_string(), text("1-I001")),
            ],
        );
        // `feature-values --json` writes a record's row (Python's `model_dump()`: the fields
        // in field order; the feature row's own RID is not a field).
        assert_eq!(
            serde_json::to_string(&FeatureRow::from_record(record.clone())).unwrap(),
            r#"{"Execution":"1-E002","Feature_Name":"Glaucoma","RCT":"2026-05-28 10:00:00-07","Glaucoma":"Severe","Confidence":null,"Image":"1-I001"}"#
        );
        assert_eq!(
            records_table(&[record]).render(),
            "Execution  Feature_Name  RCT                     Glaucoma  Confidence  Image\n\
             ---------  ------------  ----------------------  --------  ----------  ------\n\
             1-E002     Glaucoma      2026-05-28 10:00:00-07  Severe                1-I001\n"
        );
    }

    #[test]
    fn table_names_are_printed_qualified() {
        let names = [
            TableName::new("deriva-ml", "Dataset"),
            TableName::new("demo", "Image"),
        ];
        assert_eq!(
            table_names_json(&names),
            json!(["deriva-ml:Dataset", "demo:Image"])
        );
    }
}
