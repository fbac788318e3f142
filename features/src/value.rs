//! Typed cell values and the one parser that turns ERMrest/PostgreSQL text into them.
//!
//! Every layer that reads catalog text (bag CSVs, the SQLite index, the catalog client)
//! goes through [`Value::parse`], so value semantics exist once.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::Value as Json;

use crate::model::{ColumnType, ValueKind};

/// A typed value of one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL (an unquoted empty CSV field).
    Null,
    /// Text (a quoted `""` is the empty string, not NULL).
    Text(String),
    /// int2/int4/int8.
    Int(i64),
    /// float4/float8, including `NaN` and `±Infinity`.
    Float(f64),
    /// boolean.
    Bool(bool),
    /// date.
    Date(NaiveDate),
    /// timestamp without time zone: the original text and its parsed value.
    Timestamp {
        /// The text as stored.
        raw: String,
        /// The parsed timestamp.
        value: NaiveDateTime,
    },
    /// timestamptz / ermrest_rct / ermrest_rmt: the original text and the UTC instant.
    TimestampTz {
        /// The text as stored, e.g. `2026-05-28 10:00:00-07`.
        raw: String,
        /// The same instant in UTC.
        utc: DateTime<Utc>,
    },
    /// json/jsonb.
    Json(Json),
    /// An array column (`{a,b}` literal or JSON array); elements may be `Null`.
    Array(Vec<Value>),
}

/// A text that does not parse as its column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {expected}")]
pub struct ValueError {
    /// What the column's type expects, e.g. `int8` or `boolean (t/f)`.
    pub expected: String,
    /// The offending text.
    pub value: String,
}

impl Value {
    /// Parses the text of a non-NULL cell as `ty`.
    ///
    /// An empty text is the empty string for text columns and NULL for every other type
    /// (PostgreSQL cannot write an empty number, boolean or timestamp).
    ///
    /// ```
    /// use deriva_bag_features::{ColumnType, Value};
    /// let rct = ColumnType::simple("timestamptz");
    /// let a = Value::parse("2026-05-28 16:54:02.232194-07", &rct).unwrap();
    /// let b = Value::parse("2026-05-28 23:54:02.232194+00", &rct).unwrap();
    /// assert_eq!(a.instant(), b.instant());
    /// assert_eq!(Value::parse("t", &ColumnType::simple("boolean")).unwrap(), Value::Bool(true));
    /// assert!(Value::parse("seven", &ColumnType::simple("int4")).is_err());
    /// ```
    pub fn parse(text: &str, ty: &ColumnType) -> Result<Value, ValueError> {
        let scalar = Scalar::of(ty);
        if ty.is_array() {
            return parse_array(text, scalar);
        }
        parse_scalar(text, scalar)
    }

    /// True for `Value::Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a `Text` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer of an `Int` value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number of an `Int` or `Float` value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The UTC instant of a `TimestampTz` value (naive timestamps are read as UTC).
    pub fn instant(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::TimestampTz { utc, .. } => Some(*utc),
            Value::Timestamp { value, .. } => Some(value.and_utc()),
            _ => None,
        }
    }

    /// The value as JSON: text stays text, timestamps keep their original text,
    /// non-finite floats become the strings `NaN`, `Infinity`, `-Infinity`.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Text(s) => Json::String(s.clone()),
            Value::Int(i) => Json::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .unwrap_or_else(|| Json::String(float_text(*f))),
            Value::Bool(b) => Json::Bool(*b),
            Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
            Value::Timestamp { raw, .. } | Value::TimestampTz { raw, .. } => {
                Json::String(raw.clone())
            }
            Value::Json(j) => j.clone(),
            Value::Array(items) => Json::Array(items.iter().map(Value::to_json).collect()),
        }
    }

    /// Builds a value of type `ty` from JSON (as the catalog's JSON API or a record file gives it).
    pub fn from_json(json: &Json, ty: &ColumnType) -> Result<Value, ValueError> {
        let kind = ty.kind();
        match json {
            Json::Null => Ok(Value::Null),
            Json::Array(items) if ty.is_array() => items
                .iter()
                .map(|item| {
                    Value::from_json(item, &ColumnType::simple(&ty.typename.replace("[]", "")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ if kind == ValueKind::Json => Ok(Value::Json(json.clone())),
            Json::String(s) if kind == ValueKind::Text => Ok(Value::Text(s.clone())),
            Json::String(s) => parse_scalar(s, Scalar::of(ty)),
            Json::Bool(b) if kind == ValueKind::Bool => Ok(Value::Bool(*b)),
            Json::Number(n) if kind == ValueKind::Int => {
                let scalar = Scalar::of(ty);
                match n.as_i64() {
                    Some(i) => scalar.int(i, &n.to_string()),
                    None if n.is_u64() => Err(scalar.out_of_range(&n.to_string())),
                    None => Err(err(&ty.typename, &n.to_string())),
                }
            }
            Json::Number(n) if kind == ValueKind::Float => {
                n.as_f64().map(Value::Float).ok_or_else(|| ValueError {
                    expected: ty.typename.clone(),
                    value: n.to_string(),
                })
            }
            other => Err(ValueError {
                expected: ty.typename.clone(),
                value: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for Value {
    /// The value as text, as a directory name or a table cell would show it (NULL is empty).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Text(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&float_text(*x)),
            Value::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Value::Timestamp { raw, .. } | Value::TimestampTz { raw, .. } => f.write_str(raw),
            Value::Json(j) => write!(f, "{j}"),
            Value::Array(items) => {
                f.write_str("{")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            // The same JSON as `to_json`, written without building it first (a listing
            // serializes every cell of every row).
            Value::Null => serializer.serialize_unit(),
            Value::Text(s)
            | Value::Timestamp { raw: s, .. }
            | Value::TimestampTz { raw: s, .. } => serializer.serialize_str(s),
            Value::Int(i) => match u64::try_from(*i) {
                Ok(u) => serializer.serialize_u64(u),
                Err(_) => serializer.serialize_i64(*i),
            },
            Value::Float(f) if f.is_finite() => serializer.serialize_f64(*f),
            Value::Float(f) => serializer.serialize_str(&float_text(*f)),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Date(d) => serializer.collect_str(&d.format("%Y-%m-%d")),
            Value::Json(j) => j.serialize(serializer),
        }
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        f.to_string()
    }
}

fn err(expected: &str, text: &str) -> ValueError {
    ValueError {
        expected: expected.to_string(),
        value: text.to_string(),
    }
}

/// What one scalar (a cell, or one element of an array cell) must parse as.
#[derive(Debug, Clone, Copy)]
struct Scalar<'a> {
    kind: ValueKind,
    /// The scalar's typename (an array's element type: `int4` for `int4[]`).
    typename: &'a str,
    /// For integers, the inclusive range the column's type can hold.
    int_range: Option<(i64, i64)>,
}

impl<'a> Scalar<'a> {
    fn of(ty: &'a ColumnType) -> Scalar<'a> {
        Scalar {
            kind: ty.kind(),
            typename: &ty.typename,
            int_range: ty.int_range(),
        }
    }

    /// An integer, checked against the column type's range (PostgreSQL never writes an
    /// out-of-range value, so one is damage, not data to keep: storing 3000000000 as an
    /// `int4` would hand a reader a value the catalog cannot hold).
    fn int(&self, i: i64, text: &str) -> Result<Value, ValueError> {
        match self.int_range {
            Some((lo, hi)) if i < lo || i > hi => Err(self.out_of_range(text)),
            _ => Ok(Value::Int(i)),
        }
    }

    fn out_of_range(&self, text: &str) -> ValueError {
        let (lo, hi) = self.int_range.unwrap_or((i64::MIN, i64::MAX));
        err(
            &format!("{} (out of range: {lo} to {hi})", self.typename),
            text,
        )
    }
}

fn parse_scalar(text: &str, scalar: Scalar<'_>) -> Result<Value, ValueError> {
    let (kind, typename) = (scalar.kind, scalar.typename);
    if text.is_empty() && kind != ValueKind::Text {
        return Ok(Value::Null);
    }
    match kind {
        ValueKind::Text => Ok(Value::Text(text.to_string())),
        ValueKind::Int => {
            let t = text.trim();
            match t.parse::<i64>() {
                Ok(i) => scalar.int(i, text),
                // All digits but past i64: out of range, not malformed.
                Err(_) if is_integer_literal(t) => Err(scalar.out_of_range(text)),
                Err(_) => Err(err(typename, text)),
            }
        }
        ValueKind::Float => parse_float(text)
            .map(Value::Float)
            .ok_or_else(|| err(typename, text)),
        ValueKind::Bool => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| err("boolean (t/f)", text)),
        ValueKind::Date => NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map(Value::Date)
            .map_err(|_| err("date (YYYY-MM-DD)", text)),
        ValueKind::Timestamp => parse_naive_timestamp(text)
            .map(|value| Value::Timestamp {
                raw: text.to_string(),
                value,
            })
            .ok_or_else(|| err("timestamp", text)),
        ValueKind::TimestampTz => parse_timestamptz(text)
            .map(|utc| Value::TimestampTz {
                raw: text.to_string(),
                utc,
            })
            .ok_or_else(|| err("timestamptz (YYYY-MM-DD HH:MM:SS[.f]±HH[:MM])", text)),
        ValueKind::Json => serde_json::from_str(text)
            .map(Value::Json)
            .map_err(|_| err("json", text)),
    }
}

/// `[+-]digits`: the shape of an integer, whatever its size.
fn is_integer_literal(t: &str) -> bool {
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn parse_float(text: &str) -> Option<f64> {
    match text.trim() {
        "NaN" => Some(f64::NAN),
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse::<f64>().ok().filter(|f| f.is_finite()),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "t" | "T" | "true" | "True" | "TRUE" | "y" | "Y" | "yes" | "1" => Some(true),
        "f" | "F" | "false" | "False" | "FALSE" | "n" | "N" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn parse_naive_timestamp(text: &str) -> Option<NaiveDateTime> {
    if let Some(v) = parse_naive_timestamp_fast(text.trim()) {
        return Some(v);
    }
    let t = text.trim().replacen('T', " ", 1);
    NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M"))
        .ok()
}

/// `YYYY-MM-DD HH:MM:SS[.f{1,9}]` (space or `T`) parsed by hand: chrono's format-string
/// parser dominated bag index builds (two timestamps per row). Anything else, including leap
/// seconds, returns `None` and goes to the general parser, so results never differ.
fn parse_naive_timestamp_fast(t: &str) -> Option<NaiveDateTime> {
    let b = t.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let digits = &b[r];
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'))
        })
    };
    let mut nanos = 0u32;
    if b.len() > 19 {
        let frac = &b[20..];
        if b[19] != b'.' || frac.is_empty() || frac.len() > 9 {
            return None;
        }
        nanos = num(20..b.len())? * 10u32.pow(9 - frac.len() as u32);
    }
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?.and_hms_nano_opt(
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
        nanos,
    )
}

/// PostgreSQL output (`2026-05-28 16:54:02.232194-07`, `…+05:30`, `…+00:00:00`) and ISO-8601
/// (`2026-05-28T16:54:02Z`). The fractional part may have any number of digits.
pub fn parse_timestamptz(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    // Split off the offset: the last '+' or '-' after the time part.
    let time_start = t.find([' ', 'T'])?;
    let (date_time, offset) = match t[time_start..].rfind(['+', '-']) {
        Some(i) => t.split_at(time_start + i),
        None if t.ends_with('Z') => (&t[..t.len() - 1], "+00"),
        None => return None,
    };
    let naive = parse_naive_timestamp(date_time)?;
    let offset = parse_offset(offset)?;
    naive
        .and_local_timezone(offset)
        .single()
        .map(|dt| dt.with_timezone(&Utc))
}

fn parse_offset(text: &str) -> Option<FixedOffset> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut parts = text[1..].split(':');
    let mut seconds = 0i32;
    for (i, unit) in [3600, 60, 1].into_iter().enumerate() {
        match parts.next() {
            Some(p) if p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()) => {
                seconds += p.parse::<i32>().ok()? * unit;
            }
            Some(p) if i == 0 && p.len() == 4 && p.bytes().all(|b| b.is_ascii_digit()) => {
                seconds += p[..2].parse::<i32>().ok()? * 3600 + p[2..].parse::<i32>().ok()? * 60;
            }
            Some(_) => return None,
            None if i == 0 => return None,
            None => break,
        }
    }
    if parts.next().is_some() {
        return None;
    }
    FixedOffset::east_opt(sign * seconds)
}

/// A PostgreSQL array literal (`{a,"b c",NULL}`) or a JSON array (`["a","b c",null]`).
fn parse_array(text: &str, scalar: Scalar<'_>) -> Result<Value, ValueError> {
    let typename = scalar.typename;
    let t = text.trim();
    if t.is_empty() {
        return Ok(Value::Null);
    }
    let element = Scalar {
        typename: typename.trim_end_matches("[]"),
        ..scalar
    };
    if t.starts_with('[') {
        let json: Json = serde_json::from_str(t).map_err(|_| err(typename, text))?;
        let Json::Array(items) = json else {
            return Err(err(typename, text));
        };
        return items
            .iter()
            .map(|item| match item {
                Json::Null => Ok(Value::Null),
                Json::String(s) => parse_scalar(s, element),
                other => parse_scalar(&other.to_string(), element),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    let inner = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| err(typename, text))?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Ok(Value::Array(items));
    }
    let mut chars = inner.chars().peekable();
    loop {
        // One element: quoted (with backslash escapes) or bare up to the next comma.
        let mut element_text = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => {
                        element_text.push(chars.next().ok_or_else(|| err(typename, text))?)
                    }
                    Some('"') => break,
                    Some(c) => element_text.push(c),
                    None => return Err(err(typename, text)),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '"' || c == '{' || c == '}' {
                    return Err(err(typename, text));
                }
                element_text.push(c);
                chars.next();
            }
        }
        let value = if !quoted && element_text.eq_ignore_ascii_case("NULL") {
            Value::Null
        } else if !quoted && element_text.is_empty() {
            return Err(err(typename, text));
        } else {
            parse_scalar(&element_text, element)?
        };
        items.push(value);
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => return Err(err(typename, text)),
        }
    }
    Ok(Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ty(name: &str) -> ColumnType {
        ColumnType::simple(name)
    }

    fn text_array() -> ColumnType {
        ColumnType {
            typename: "text[]".into(),
            base: Some(Box::new(ty("text"))),
            is_array: true,
            is_domain: false,
        }
    }

    #[test]
    fn serializing_a_value_writes_the_json_its_to_json_gives() {
        let values = [
            Value::Null,
            Value::Text("a \"quoted\" é".into()),
            Value::Text(String::new()),
            Value::Int(-7),
            Value::Int(i64::MAX),
            Value::Float(1.5),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
            Value::Bool(true),
            Value::parse("2026-05-28", &ty("date")).unwrap(),
            Value::parse("2026-05-28 16:54:02.5", &ty("timestamp")).unwrap(),
            Value::parse("2026-05-28 10:00:00-07", &ty("timestamptz")).unwrap(),
            Value::Json(serde_json::json!({"a": [1, null]})),
            Value::Array(vec![Value::Text("x".into()), Value::Null, Value::Int(3)]),
        ];
        for value in values {
            let written = serde_json::to_string(&value).unwrap();
            assert_eq!(
                written,
                serde_json::to_string(&value.to_json()).unwrap(),
                "{value:?}"
            );
        }
        assert_eq!(
            serde_json::to_string(&Value::Float(f64::NAN)).unwrap(),
            "\"NaN\""
        );
    }

    #[test]
    fn timestamps_with_different_offsets_compare_as_instants() {
        let a = Value::parse("2026-05-28 16:54:02.232194-07", &ty("ermrest_rct")).unwrap();
        let b = Value::parse("2026-05-28 23:54:02.232194+00", &ty("ermrest_rct")).unwrap();
        let c = Value::parse("2026-05-29T05:24:02.232194+05:30", &ty("timestamptz")).unwrap();
        assert_eq!(a.instant(), b.instant());
        assert_eq!(b.instant(), c.instant());
        assert_eq!(
            a.to_json(),
            Json::String("2026-05-28 16:54:02.232194-07".into())
        );
    }

    #[test]
    fn fast_timestamp_path_agrees_with_the_general_parser() {
        for t in [
            "2026-05-28 16:54:02",
            "2026-05-28T16:54:02.2",
            "2026-05-28 16:54:02.232194",
            "2026-05-28 16:54:02.123456789",
            "2026-02-29 00:00:00",
            "2026-13-01 00:00:00",
            "2026-05-28 16:54:60",
        ] {
            let general =
                NaiveDateTime::parse_from_str(&t.replacen('T', " ", 1), "%Y-%m-%d %H:%M:%S%.f")
                    .ok();
            assert_eq!(parse_naive_timestamp(t), general, "{t}");
        }
    }

    #[test]
    fn timestamps_accept_any_fraction_length_and_z() {
        for t in [
            "2026-05-28 16:54:02+00",
            "2026-05-28 16:54:02.2+00",
            "2026-05-28T16:54:02Z",
            "2026-05-28 16:54:02.123456789+00:00",
        ] {
            assert!(Value::parse(t, &ty("timestamptz")).is_ok(), "{t}");
        }
        assert!(Value::parse("2026-05-28", &ty("timestamptz")).is_err());
    }

    #[test]
    fn empty_text_is_empty_string_but_empty_number_is_null() {
        assert_eq!(
            Value::parse("", &ty("text")).unwrap(),
            Value::Text(String::new())
        );
        assert_eq!(Value::parse("", &ty("int8")).unwrap(), Value::Null);
        assert_eq!(Value::parse("", &ty("boolean")).unwrap(), Value::Null);
    }

    #[test]
    fn floats_accept_postgres_specials() {
        assert!(
            matches!(Value::parse("NaN", &ty("float8")).unwrap(), Value::Float(f) if f.is_nan())
        );
        assert_eq!(
            Value::parse("-Infinity", &ty("float4")).unwrap(),
            Value::Float(f64::NEG_INFINITY)
        );
        assert_eq!(
            Value::parse("1e+20", &ty("float8")).unwrap(),
            Value::Float(1e20)
        );
    }

    #[test]
    fn pg_array_literals_parse_with_quotes_escapes_and_nulls() {
        let v = Value::parse(r#"{"a b",NULL,"x\"y",plain}"#, &text_array()).unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Text("a b".into()),
                Value::Null,
                Value::Text("x\"y".into()),
                Value::Text("plain".into())
            ])
        );
        assert_eq!(
            Value::parse("{}", &text_array()).unwrap(),
            Value::Array(vec![])
        );
        assert_eq!(
            Value::parse(r#"["Train","train"]"#, &text_array()).unwrap(),
            Value::Array(vec![
                Value::Text("Train".into()),
                Value::Text("train".into())
            ])
        );
        assert!(Value::parse("{a,", &text_array()).is_err());
        assert!(Value::parse("a,b", &text_array()).is_err());
    }

    #[test]
    fn errors_name_the_value_and_the_type() {
        let e = Value::parse("seven", &ty("int4")).unwrap_err();
        assert_eq!(e.to_string(), "\"seven\" is not a valid int4");
    }

    #[test]
    fn integers_outside_their_column_type_are_errors_naming_the_range() {
        let e = Value::parse("3000000000", &ty("int4")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"3000000000\" is not a valid int4 (out of range: -2147483648 to 2147483647)"
        );
        assert_eq!(
            Value::parse("2147483647", &ty("int4")).unwrap(),
            Value::Int(2147483647)
        );
        assert_eq!(
            Value::parse("-32769", &ty("int2")).unwrap_err().to_string(),
            "\"-32769\" is not a valid int2 (out of range: -32768 to 32767)"
        );
        assert_eq!(
            Value::parse("9223372036854775808", &ty("int8"))
                .unwrap_err()
                .to_string(),
            "\"9223372036854775808\" is not a valid int8 (out of range: \
             -9223372036854775808 to 9223372036854775807)"
        );
        // A domain over int4 (as ERMrest writes them) has int4's range.
        let domain = ColumnType {
            typename: "my_count".into(),
            base: Some(Box::new(ty("int4"))),
            is_array: false,
            is_domain: true,
        };
        assert!(Value::parse("4294967296", &domain).is_err());
        // Array elements and JSON numbers are checked too.
        assert_eq!(
            Value::parse("{1,70000}", &ty("int2[]"))
                .unwrap_err()
                .to_string(),
            "\"70000\" is not a valid int2 (out of range: -32768 to 32767)"
        );
        assert_eq!(
            Value::from_json(&serde_json::json!(4294967296u64), &ty("int4"))
                .unwrap_err()
                .to_string(),
            "\"4294967296\" is not a valid int4 (out of range: -2147483648 to 2147483647)"
        );
        assert_eq!(
            Value::from_json(&serde_json::json!(u64::MAX), &ty("int8"))
                .unwrap_err()
                .expected,
            "int8 (out of range: -9223372036854775808 to 9223372036854775807)"
        );
    }

    proptest! {
        #[test]
        fn int4_keeps_exactly_the_values_postgres_can_hold(i in any::<i64>()) {
            let parsed = Value::parse(&i.to_string(), &ty("int4"));
            if i32::try_from(i).is_ok() {
                prop_assert_eq!(parsed.unwrap(), Value::Int(i));
            } else {
                prop_assert!(parsed.is_err());
            }
        }

        #[test]
        fn parse_never_panics(text in ".*", which in 0usize..9) {
            let types = ["text", "int8", "float8", "boolean", "date", "timestamp", "timestamptz", "json", "text[]"];
            let t = if types[which] == "text[]" { text_array() } else { ty(types[which]) };
            let _ = Value::parse(&text, &t);
        }

        #[test]
        fn ints_round_trip(i in any::<i64>()) {
            prop_assert_eq!(Value::parse(&i.to_string(), &ty("int8")).unwrap(), Value::Int(i));
        }
    }
}
