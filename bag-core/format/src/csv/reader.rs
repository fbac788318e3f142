//! A streaming RFC-4180 reader with PostgreSQL `COPY … CSV` NULL semantics.
//!
//! Why not the `csv` crate: it cannot tell an unquoted empty field (SQL NULL) from a quoted
//! `""` (the empty string), and the bag format needs exactly that distinction.
//! This reader keeps, per field, whether it was quoted.
//!
//! Accepted: LF, CRLF and lone-CR row terminators, a leading UTF-8 BOM, quoted fields spanning
//! lines, doubled quotes inside quoted fields, a last row without a terminator. Blank lines
//! are skipped (PostgreSQL never writes one: every bag table has a non-NULL `RID`). Text after
//! a closing quote and quotes inside unquoted fields are kept literally, as Python's `csv`
//! module does. Rejected with [`Error::Csv`] naming file and line: an unterminated quoted
//! field, a row whose field count differs from the header's, invalid UTF-8.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One field of a [`Record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// An unquoted empty field: SQL NULL.
    Null,
    /// Any other field (a quoted `""` is `Text("")`).
    Text(&'a str),
}

/// One parsed row; reused between reads to avoid allocations.
#[derive(Debug, Default, Clone)]
pub struct Record {
    text: String,
    ends: Vec<usize>,
    quoted: Vec<bool>,
    line: u64,
}

impl Record {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The 1-based line on which this record starts.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Field `i`, distinguishing NULL from the empty string.
    pub fn field(&self, i: usize) -> Option<Field<'_>> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let text = &self.text[start..end];
        if text.is_empty() && !self.quoted[i] {
            Some(Field::Null)
        } else {
            Some(Field::Text(text))
        }
    }

    /// All fields in order.
    pub fn fields(&self) -> impl Iterator<Item = Field<'_>> {
        (0..self.len()).filter_map(|i| self.field(i))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just read a `"` inside a quoted field: either a doubled quote or the closing one.
    QuoteInQuoted,
    /// After the closing quote, before the separator (stray text is kept literally).
    AfterQuoted,
}

/// Streaming reader over any [`BufRead`]; see the module docs for the dialect.
///
/// ```
/// use deriva_bag_format::csv::{CsvReader, Field, Record};
/// let data = "RID,Name,Note\n1-S001,\"\",\n1-S002,\"two\nlines\",x\n";
/// let mut reader = CsvReader::new(data.as_bytes(), "Subject.csv");
/// let header = reader.read_header().unwrap();
/// assert_eq!(header, ["RID", "Name", "Note"]);
/// let mut rec = Record::default();
/// assert!(reader.read_record(&mut rec).unwrap());
/// assert_eq!(rec.field(1), Some(Field::Text("")));   // quoted "" is the empty string
/// assert_eq!(rec.field(2), Some(Field::Null));       // unquoted empty is NULL
/// assert!(reader.read_record(&mut rec).unwrap());
/// assert_eq!((rec.line(), rec.field(1)), (3, Some(Field::Text("two\nlines"))));
/// assert!(!reader.read_record(&mut rec).unwrap());
/// ```
#[derive(Debug)]
pub struct CsvReader<R> {
    inner: R,
    path: PathBuf,
    /// Line number of the next unread byte.
    line: u64,
    started: bool,
    /// The previous record ended with CR: an LF right after it belongs to that terminator.
    pending_cr: bool,
    expected_fields: Option<usize>,
    bytes_read: u64,
}

impl<R: BufRead> CsvReader<R> {
    /// A reader over `inner`; `path` names the file in errors.
    pub fn new(inner: R, path: impl Into<PathBuf>) -> Self {
        CsvReader {
            inner,
            path: path.into(),
            line: 1,
            started: false,
            pending_cr: false,
            expected_fields: None,
            bytes_read: 0,
        }
    }

    /// The file name used in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying reader (whatever it buffered past the last record is in it).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes consumed so far (for progress reporting).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Reads the header row; every later row must have as many fields.
    ///
    /// An empty file is an error: PostgreSQL always writes the header.
    pub fn read_header(&mut self) -> Result<Vec<String>> {
        let mut rec = Record::default();
        if !self.read_raw(&mut rec)? {
            return Err(Error::Csv {
                path: self.path.clone(),
                line: 1,
                detail: "empty file: no header row".into(),
            });
        }
        let names: Vec<String> = (0..rec.len())
            .map(|i| match rec.field(i) {
                Some(Field::Text(t)) => t.to_string(),
                _ => String::new(),
            })
            .collect();
        if let Some(i) = names.iter().position(|n| n.is_empty()) {
            return Err(Error::Csv {
                path: self.path.clone(),
                line: rec.line,
                detail: format!("header column {} has an empty name", i + 1),
            });
        }
        self.expected_fields = Some(names.len());
        Ok(names)
    }

    /// Reads the next data row into `rec`; `Ok(false)` at end of file.
    pub fn read_record(&mut self, rec: &mut Record) -> Result<bool> {
        if !self.read_raw(rec)? {
            return Ok(false);
        }
        if let Some(expected) = self.expected_fields {
            if rec.len() != expected {
                return Err(Error::Csv {
                    path: self.path.clone(),
                    line: rec.line,
                    detail: format!(
                        "row has {} fields but the header has {expected} (truncated or malformed row)",
                        rec.len()
                    ),
                });
            }
        }
        Ok(true)
    }

    /// Reads one record, skipping blank lines. `Ok(false)` at end of file.
    fn read_raw(&mut self, rec: &mut Record) -> Result<bool> {
        loop {
            match self.read_one(rec)? {
                None => return Ok(false),
                Some(true) => return Ok(true),
                Some(false) => continue, // blank line
            }
        }
    }

    /// `None` at EOF, `Some(false)` for a blank line, `Some(true)` for a record.
    fn read_one(&mut self, rec: &mut Record) -> Result<Option<bool>> {
        let mut bytes = std::mem::take(&mut rec.text).into_bytes();
        bytes.clear();
        rec.ends.clear();
        rec.quoted.clear();
        let mut state = State::FieldStart;
        let mut field_quoted = false;
        let mut start_line = self.line;
        let mut any_input = false;
        let mut quote_line = self.line;
        let mut done = false;

        while !done {
            let chunk = self
                .inner
                .fill_buf()
                .map_err(|e| Error::io(self.path.clone(), e))?;
            if chunk.is_empty() {
                break;
            }
            let mut i = 0;
            if !self.started {
                self.started = true;
                if chunk.starts_with(b"\xEF\xBB\xBF") {
                    i = 3;
                }
            }
            if self.pending_cr {
                self.pending_cr = false;
                if chunk.get(i) == Some(&b'\n') {
                    i += 1;
                }
            }
            if !any_input {
                start_line = self.line;
            }
            while i < chunk.len() {
                let b = chunk[i];
                match state {
                    State::FieldStart => {
                        any_input = true;
                        match b {
                            b'"' => {
                                state = State::Quoted;
                                field_quoted = true;
                                quote_line = self.line;
                                i += 1;
                            }
                            b',' => {
                                rec.ends.push(bytes.len());
                                rec.quoted.push(false);
                                i += 1;
                            }
                            b'\n' | b'\r' => {
                                rec.ends.push(bytes.len());
                                rec.quoted.push(false);
                                i += end_line(chunk, i, &mut self.line, &mut self.pending_cr);
                                done = true;
                                break;
                            }
                            _ => {
                                state = State::Unquoted;
                            }
                        }
                    }
                    State::Unquoted => {
                        // Fast (SIMD) scan to the next special byte.
                        let rest = &chunk[i..];
                        let n = memchr::memchr3(b',', b'\n', b'\r', rest).unwrap_or(rest.len());
                        bytes.extend_from_slice(&rest[..n]);
                        i += n;
                        if i < chunk.len() {
                            let b = chunk[i];
                            rec.ends.push(bytes.len());
                            rec.quoted.push(field_quoted);
                            field_quoted = false;
                            state = State::FieldStart;
                            if b == b',' {
                                i += 1;
                            } else {
                                i += end_line(chunk, i, &mut self.line, &mut self.pending_cr);
                                done = true;
                                break;
                            }
                        }
                    }
                    State::Quoted => {
                        let rest = &chunk[i..];
                        let n = memchr::memchr2(b'"', b'\n', rest).unwrap_or(rest.len());
                        bytes.extend_from_slice(&rest[..n]);
                        i += n;
                        if i < chunk.len() {
                            if chunk[i] == b'"' {
                                state = State::QuoteInQuoted;
                            } else {
                                bytes.push(b'\n');
                                self.line += 1;
                            }
                            i += 1;
                        }
                    }
                    State::QuoteInQuoted => {
                        if b == b'"' {
                            bytes.push(b'"');
                            state = State::Quoted;
                            i += 1;
                        } else {
                            state = State::AfterQuoted;
                        }
                    }
                    State::AfterQuoted => match b {
                        b',' => {
                            rec.ends.push(bytes.len());
                            rec.quoted.push(true);
                            field_quoted = false;
                            state = State::FieldStart;
                            i += 1;
                        }
                        b'\n' | b'\r' => {
                            rec.ends.push(bytes.len());
                            rec.quoted.push(true);
                            field_quoted = false;
                            state = State::FieldStart;
                            i += end_line(chunk, i, &mut self.line, &mut self.pending_cr);
                            done = true;
                            break;
                        }
                        _ => {
                            // Stray text after a closing quote: kept literally (Python does too).
                            bytes.push(b);
                            i += 1;
                        }
                    },
                }
            }
            self.bytes_read += i as u64;
            self.inner.consume(i);
        }

        if !done {
            // End of input.
            match state {
                State::Quoted => {
                    return Err(Error::Csv {
                        path: self.path.clone(),
                        line: quote_line,
                        detail: "unterminated quoted field (file truncated?)".into(),
                    })
                }
                State::FieldStart if !any_input => {
                    rec.text = String::new();
                    return Ok(None);
                }
                State::FieldStart => {
                    // "a,b," at EOF: the trailing empty field.
                    rec.ends.push(bytes.len());
                    rec.quoted.push(false);
                }
                State::Unquoted => {
                    rec.ends.push(bytes.len());
                    rec.quoted.push(field_quoted);
                }
                State::QuoteInQuoted | State::AfterQuoted => {
                    rec.ends.push(bytes.len());
                    rec.quoted.push(true);
                }
            }
        }
        rec.line = start_line;
        rec.text = String::from_utf8(bytes).map_err(|e| Error::Csv {
            path: self.path.clone(),
            line: start_line,
            detail: format!(
                "invalid UTF-8 at byte {} of the row",
                e.utf8_error().valid_up_to()
            ),
        })?;
        // The row's text is valid UTF-8, but a field may still end inside a character that
        // the next field completes (`\xD8` `,` `\xAD`): each field must be UTF-8 on its own.
        if let Some(field) = rec
            .ends
            .iter()
            .position(|&end| !rec.text.is_char_boundary(end))
        {
            return Err(Error::Csv {
                path: self.path.clone(),
                line: start_line,
                detail: format!("invalid UTF-8 at the end of field {} of the row", field + 1),
            });
        }
        let blank = rec.ends.len() == 1 && rec.ends[0] == 0 && !rec.quoted[0];
        Ok(Some(!blank))
    }
}

/// Consumes a line terminator at `chunk[i]` (LF, CR or CRLF); returns bytes consumed.
fn end_line(chunk: &[u8], i: usize, line: &mut u64, pending_cr: &mut bool) -> usize {
    *line += 1;
    if chunk[i] == b'\r' {
        match chunk.get(i + 1) {
            Some(b'\n') => 2,
            Some(_) => 1,
            None => {
                *pending_cr = true;
                1
            }
        }
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::BufReader;

    /// `(line, fields)` of one data row; `None` is NULL.
    type Rows = Vec<(u64, Vec<Option<String>>)>;

    fn read_all(data: &[u8]) -> Result<(Vec<String>, Rows)> {
        // A 3-byte buffer forces every state across chunk boundaries.
        let mut r = CsvReader::new(BufReader::with_capacity(3, data), "t.csv");
        let header = r.read_header()?;
        let mut rec = Record::default();
        let mut rows = Vec::new();
        while r.read_record(&mut rec)? {
            rows.push((
                rec.line(),
                rec.fields()
                    .map(|f| match f {
                        Field::Null => None,
                        Field::Text(t) => Some(t.to_string()),
                    })
                    .collect(),
            ));
        }
        Ok((header, rows))
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn unquoted_empty_is_null_and_quoted_empty_is_empty_string() {
        let (h, rows) = read_all(b"A,B,C\n,\"\",x\n").unwrap();
        assert_eq!(h, ["A", "B", "C"]);
        assert_eq!(rows, vec![(2, vec![None, s(""), s("x")])]);
    }

    #[test]
    fn trailing_empty_field_is_null_with_and_without_final_newline() {
        let (_, rows) = read_all(b"A,B\nx,\ny,").unwrap();
        assert_eq!(rows, vec![(2, vec![s("x"), None]), (3, vec![s("y"), None])]);
    }

    #[test]
    fn multi_line_quoted_fields_report_the_start_line_and_advance_the_count() {
        let (_, rows) = read_all(b"A,B\n\"one\ntwo\nthree\",x\ny,\"a\"\"b\"\n").unwrap();
        assert_eq!(
            rows,
            vec![
                (2, vec![s("one\ntwo\nthree"), s("x")]),
                (5, vec![s("y"), s("a\"b")])
            ]
        );
    }

    #[test]
    fn crlf_lone_cr_and_bom_are_accepted() {
        let (h, rows) = read_all(b"\xEF\xBB\xBFA,B\r\n1,2\r\n3,\"4\"\r5,6").unwrap();
        assert_eq!(h, ["A", "B"]);
        assert_eq!(
            rows,
            vec![
                (2, vec![s("1"), s("2")]),
                (3, vec![s("3"), s("4")]),
                (4, vec![s("5"), s("6")])
            ]
        );
    }

    #[test]
    fn blank_lines_are_skipped() {
        let (_, rows) = read_all(b"A,B\n\n1,2\n\n").unwrap();
        assert_eq!(rows, vec![(3, vec![s("1"), s("2")])]);
    }

    #[test]
    fn truncated_row_is_an_error_naming_file_and_line() {
        let err = read_all(b"A,B,C\n1,2,3\n4,5").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Csv { line: 3, .. }), "{msg}");
        assert!(
            msg.contains("t.csv line 3") && msg.contains("2 fields"),
            "{msg}"
        );
    }

    #[test]
    fn unterminated_quote_is_an_error_naming_the_line_it_opened_on() {
        let err = read_all(b"A,B\n1,2\n3,\"never\nclosed\n").unwrap_err();
        assert!(matches!(err, Error::Csv { line: 3, .. }), "{err}");
        assert!(err.to_string().contains("unterminated"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let err = read_all(b"A\n\xff\xfe\n").unwrap_err();
        assert!(matches!(err, Error::Csv { line: 2, .. }), "{err}");
    }

    #[test]
    fn a_field_ending_inside_a_utf8_character_is_an_error_not_a_panic() {
        // Found by the csv_schema fuzz target: "\xD8" "," "\xAD@" is valid UTF-8 as one
        // string ("ح@" around a comma) but not field by field.
        for (data, line) in [
            (&b"\xD8,\xAD@\n"[..], 1),
            (&b"a,b\nx,y\n\xD8,\xAD@\n"[..], 3),
        ] {
            match read_all(data).unwrap_err() {
                Error::Csv {
                    path,
                    line: l,
                    detail,
                } => {
                    assert_eq!(path, Path::new("t.csv"));
                    assert_eq!(l, line);
                    assert_eq!(detail, "invalid UTF-8 at the end of field 1 of the row");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn empty_file_has_no_header() {
        assert!(matches!(read_all(b""), Err(Error::Csv { line: 1, .. })));
    }

    #[test]
    fn stray_text_after_closing_quote_is_kept() {
        let (_, rows) = read_all(b"A,B\n\"a\"b,c\n").unwrap();
        assert_eq!(rows, vec![(2, vec![s("ab"), s("c")])]);
    }

    /// Writes fields the way PostgreSQL does: NULL unquoted-empty, "" and specials quoted.
    fn pg_write(rows: &[Vec<Option<String>>], crlf: bool) -> String {
        let mut out = String::new();
        let nl = if crlf { "\r\n" } else { "\n" };
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| match c {
                    None => String::new(),
                    Some(t)
                        if t.is_empty()
                            || t.contains([',', '"', '\n', '\r'])
                            || t.starts_with('"') =>
                    {
                        format!("\"{}\"", t.replace('"', "\"\""))
                    }
                    Some(t) => t.clone(),
                })
                .collect();
            out.push_str(&cells.join(","));
            out.push_str(nl);
        }
        out
    }

    proptest! {
        #[test]
        fn round_trips_postgres_output(
            rows in proptest::collection::vec(
                proptest::collection::vec(proptest::option::of("[a-z,\"\n é]{0,6}"), 3),
                0..8),
            crlf in any::<bool>(),
        ) {
            // Quoted text never contains CR here, so CRLF vs LF does not change values.
            let mut all = vec![vec![Some("A".to_string()), Some("B".to_string()), Some("C".to_string())]];
            // A row of three NULLs would be ",," which is fine (not blank).
            all.extend(rows.iter().cloned());
            let text = pg_write(&all, crlf);
            let (_, got) = read_all(text.as_bytes()).unwrap();
            let got: Vec<Vec<Option<String>>> = got.into_iter().map(|(_, r)| r).collect();
            prop_assert_eq!(got, rows);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_all(&data);
        }
    }
}
