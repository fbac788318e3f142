//! Writing PostgreSQL `COPY … CSV HEADER` output, as ERMrest serves it and deriva-py saves
//! it: comma separator, `"` quoting with doubled quotes, LF
//! row ends; a field is quoted when it contains `,` `"` CR or LF or is the empty string,
//! and SQL NULL is an unquoted empty field. The one writer used by fixtures, bag export
//! and the test catalog, the mirror image of [`CsvReader`](super::CsvReader).

use serde_json::Value as Json;

/// Appends one field: `None` is NULL (nothing), `Some("")` is `""`.
///
/// ```
/// let mut line = String::new();
/// deriva_bag_format::csv::push_field(&mut line, Some("a,b"));
/// line.push(',');
/// deriva_bag_format::csv::push_field(&mut line, None);
/// line.push(',');
/// deriva_bag_format::csv::push_field(&mut line, Some(""));
/// assert_eq!(line, r#""a,b",,"""#);
/// ```
pub fn push_field(out: &mut String, cell: Option<&str>) {
    let Some(text) = cell else { return };
    if text.is_empty() || text.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// Renders a header line and rows of optional cells.
pub fn render<'a>(
    header: &[&str],
    rows: impl IntoIterator<Item = &'a Vec<Option<String>>>,
) -> String {
    let mut out = String::new();
    push_line(&mut out, header.iter().map(|h| Some(*h)));
    for row in rows {
        push_line(&mut out, row.iter().map(|c| c.as_deref()));
    }
    out
}

/// Appends one CSV line (fields and the LF).
pub fn push_line<'a>(out: &mut String, cells: impl IntoIterator<Item = Option<&'a str>>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, cell);
    }
    out.push('\n');
}

/// The CSV text of a JSON value as ERMrest's JSON API returns it: `null` → NULL (`None`),
/// booleans as `t`/`f`, arrays as PostgreSQL array literals (`{a,"b c",NULL}`), numbers and
/// objects as their JSON text.
///
/// ```
/// use serde_json::json;
/// use deriva_bag_format::csv::json_cell;
/// assert_eq!(json_cell(&json!(null)), None);
/// assert_eq!(json_cell(&json!(true)).as_deref(), Some("t"));
/// assert_eq!(json_cell(&json!(["a b", null, "c"])).as_deref(), Some(r#"{"a b",NULL,c}"#));
/// ```
pub fn json_cell(value: &Json) -> Option<String> {
    match value {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        Json::Bool(b) => Some(if *b { "t" } else { "f" }.to_string()),
        Json::Array(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|item| match item {
                    Json::Null => "NULL".to_string(),
                    Json::String(s)
                        if s.is_empty() || s.contains([',', '"', ' ', '{', '}', '\\']) =>
                    {
                        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
                    }
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            Some(format!("{{{}}}", inner.join(",")))
        }
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_is_unquoted_empty_and_empty_string_is_quoted() {
        let rows = vec![vec![Some("1-A".to_string()), None, Some(String::new())]];
        assert_eq!(render(&["RID", "X", "Y"], &rows), "RID,X,Y\n1-A,,\"\"\n");
    }

    #[test]
    fn json_arrays_become_pg_literals_that_the_value_parser_reads_back() {
        let cell = json_cell(&json!(["Late stage", "x\"y", null, "plain"])).unwrap();
        let ty = deriva_bag_features::ColumnType {
            typename: "text[]".into(),
            base: None,
            is_array: true,
            is_domain: false,
        };
        let parsed = deriva_bag_features::Value::parse(&cell, &ty).unwrap();
        assert_eq!(
            parsed.to_json(),
            json!(["Late stage", "x\"y", null, "plain"])
        );
    }

    #[test]
    fn commas_quotes_and_newlines_are_quoted_with_doubled_quotes() {
        let rows = vec![vec![
            Some("a,b".to_string()),
            Some("say \"hi\"".to_string()),
            Some("two\nlines".to_string()),
            Some("{Advanced,\"Late stage\"}".to_string()),
            Some("plain text".to_string()),
        ]];
        assert_eq!(
            render(&["A", "B", "C", "D", "E"], &rows),
            "A,B,C,D,E\n\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"{Advanced,\"\"Late stage\"\"}\",plain text\n"
        );
    }

    proptest::proptest! {
        /// Whatever the writer emits, bag-core's own CSV reader reads back the same cells,
        /// keeping NULL and the empty string apart.
        #[test]
        fn written_rows_read_back_identically(
            rows in proptest::collection::vec(
                proptest::collection::vec(proptest::option::of("[a-z ,\"\r\n{}é]{0,8}"), 3),
                0..6,
            )
        ) {
            let text = render(&["A", "B", "C"], &rows);
            let mut reader = crate::csv::CsvReader::new(text.as_bytes(), "mem.csv");
            proptest::prop_assert_eq!(reader.read_header().unwrap(), ["A", "B", "C"]);
            let mut record = crate::csv::Record::default();
            let mut back = Vec::new();
            while reader.read_record(&mut record).unwrap() {
                let cells: Vec<Option<String>> = record
                    .fields()
                    .map(|f| match f {
                        crate::csv::Field::Null => None,
                        crate::csv::Field::Text(t) => Some(t.to_string()),
                    })
                    .collect();
                back.push(cells);
            }
            // deriva-py normalizes CR inside quoted values to LF on download; the
            // reader sees what the writer wrote, so compare with CR kept.
            proptest::prop_assert_eq!(back, rows);
        }
    }
}
