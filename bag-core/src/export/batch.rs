//! Building Arrow record batches from typed rows: one column builder per field, filled a
//! chunk of rows at a time from a streaming row source, so a table of any size passes
//! through in batches of bounded size.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, ListArray, NullBufferBuilder, RecordBatch, RecordBatchOptions, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Date32Type, FieldRef, SchemaRef, TimeUnit};
use deriva_bag_features::{Row, Value, ValueError};

use crate::{Error, Result};

/// Rows per batch unless [`RecordBatches::with_batch_rows`] says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

/// The rows a [`RecordBatches`] reads: typed rows whose values follow the schema's fields
/// by position.
pub(crate) type RowSource = Box<dyn Iterator<Item = Result<Row>> + Send>;

/// A table (or a feature's values) as Arrow [`RecordBatch`]es, built chunk by chunk from rows
/// streamed out of the bag's index: at most [`batch_rows`](Self::with_batch_rows) rows are
/// held at a time, whatever the table's size. Every batch has [`schema`](Self::schema).
///
/// Returned by [`DatasetBag::get_table_as_arrow`](crate::DatasetBag::get_table_as_arrow) and
/// [`DatasetBag::feature_values_as_arrow`](crate::DatasetBag::feature_values_as_arrow).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use deriva_bag_core::{fixtures, DatasetBag, OpenOptions};
/// let tmp = tempfile::tempdir()?;
/// let generated = fixtures::small_bag(tmp.path())?;
/// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
/// let bag = DatasetBag::open_with(&generated.path, &options)?;
/// let batches = bag.get_table_as_arrow("Image")?.with_batch_rows(4);
/// let sizes: Vec<usize> = batches.map(|b| b.map(|b| b.num_rows())).collect::<Result<_, _>>()?;
/// assert_eq!(sizes, [4, 2]);
/// # Ok(()) }
/// ```
pub struct RecordBatches {
    schema: SchemaRef,
    rows: RowSource,
    builders: Vec<ColumnBuilder>,
    batch_rows: usize,
    done: bool,
}

impl std::fmt::Debug for RecordBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatches")
            .field("schema", &self.schema)
            .field("batch_rows", &self.batch_rows)
            .field("done", &self.done)
            .finish()
    }
}

impl RecordBatches {
    /// Batches of `schema` from `rows`, whose values pair with the fields by position.
    pub(crate) fn new(schema: SchemaRef, rows: RowSource) -> RecordBatches {
        let builders = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type()))
            .collect();
        RecordBatches {
            schema,
            rows,
            builders,
            batch_rows: DEFAULT_BATCH_ROWS,
            done: false,
        }
    }

    /// Sets the number of rows per batch (at least 1); the last batch may be shorter.
    pub fn with_batch_rows(mut self, rows: usize) -> RecordBatches {
        self.batch_rows = rows.max(1);
        self
    }

    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Reads up to `batch_rows` rows into the builders and finishes them into a batch;
    /// `None` when the source had no row left.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut rows = 0usize;
        while rows < self.batch_rows {
            let Some(row) = self.rows.next() else {
                self.done = true;
                break;
            };
            self.append(&row?)?;
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)
            .map(Some)
            .map_err(|e| {
                Error::Features(deriva_bag_features::Error::Invalid(format!(
                    "cannot assemble an Arrow batch: {e}"
                )))
            })
    }

    fn append(&mut self, row: &Row) -> Result<()> {
        let values = row.values();
        for (i, (builder, field)) in self
            .builders
            .iter_mut()
            .zip(self.schema.fields().iter())
            .enumerate()
        {
            let value = values.get(i).unwrap_or(&Value::Null);
            builder.append(value).map_err(|source| {
                Error::Features(deriva_bag_features::Error::BadValue {
                    column: field.name().clone(),
                    source,
                })
            })?;
        }
        Ok(())
    }
}

impl Iterator for RecordBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(batch) => batch.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The builder of one column: a typed Arrow builder per scalar type, and lists as offsets
/// and validity over a builder of their elements.
#[derive(Debug)]
pub(crate) enum ColumnBuilder {
    Utf8(StringBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    List {
        item: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        values: Box<ColumnBuilder>,
    },
}

impl ColumnBuilder {
    /// A builder for `data_type`, one of the types [`super::arrow_type`] gives.
    pub(crate) fn new(data_type: &DataType) -> ColumnBuilder {
        match data_type {
            DataType::Int16 => ColumnBuilder::Int16(Int16Builder::new()),
            DataType::Int32 => ColumnBuilder::Int32(Int32Builder::new()),
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::new()),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::new()),
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            DataType::Date32 => ColumnBuilder::Date32(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new(), tz.clone())
            }
            DataType::List(item) => ColumnBuilder::List {
                item: Arc::clone(item),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                values: Box::new(ColumnBuilder::new(item.data_type())),
            },
            // Text and JSON; `arrow_type` gives no other type.
            _ => ColumnBuilder::Utf8(StringBuilder::new()),
        }
    }

    /// Appends one value; a value of another kind than the column's is an error naming it.
    pub(crate) fn append(&mut self, value: &Value) -> std::result::Result<(), ValueError> {
        if value.is_null() {
            self.append_null();
            return Ok(());
        }
        let mismatch = |expected: &str| ValueError {
            expected: expected.to_string(),
            value: value.to_string(),
        };
        match (self, value) {
            (ColumnBuilder::Utf8(b), Value::Text(s)) => b.append_value(s),
            (ColumnBuilder::Utf8(b), Value::Json(j)) => b.append_value(j.to_string()),
            (ColumnBuilder::Int16(b), Value::Int(i)) => {
                b.append_value(i16::try_from(*i).map_err(|_| mismatch("int2"))?)
            }
            (ColumnBuilder::Int32(b), Value::Int(i)) => {
                b.append_value(i32::try_from(*i).map_err(|_| mismatch("int4"))?)
            }
            (ColumnBuilder::Int64(b), Value::Int(i)) => b.append_value(*i),
            (ColumnBuilder::Float64(b), Value::Float(f)) => b.append_value(*f),
            (ColumnBuilder::Boolean(b), Value::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::Date32(b), Value::Date(d)) => {
                b.append_value(Date32Type::from_naive_date(*d))
            }
            (ColumnBuilder::Timestamp(b, _), Value::TimestampTz { utc, .. }) => {
                b.append_value(utc.timestamp_micros())
            }
            (ColumnBuilder::Timestamp(b, _), Value::Timestamp { value, .. }) => {
                b.append_value(value.and_utc().timestamp_micros())
            }
            (
                ColumnBuilder::List {
                    offsets,
                    nulls,
                    values,
                    ..
                },
                Value::Array(items),
            ) => {
                for item in items {
                    values.append(item)?;
                }
                let end = offsets.last().copied().unwrap_or(0)
                    + i32::try_from(items.len()).map_err(|_| mismatch("array"))?;
                offsets.push(end);
                nulls.append_non_null();
            }
            (builder, _) => return Err(mismatch(builder.type_name())),
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Int16(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Date32(b) => b.append_null(),
            ColumnBuilder::Timestamp(b, _) => b.append_null(),
            ColumnBuilder::List { offsets, nulls, .. } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                nulls.append_null();
            }
        }
    }

    /// What the column holds, for error messages.
    fn type_name(&self) -> &'static str {
        match self {
            ColumnBuilder::Utf8(_) => "text",
            ColumnBuilder::Int16(_) => "int2",
            ColumnBuilder::Int32(_) => "int4",
            ColumnBuilder::Int64(_) => "int8",
            ColumnBuilder::Float64(_) => "float8",
            ColumnBuilder::Boolean(_) => "boolean",
            ColumnBuilder::Date32(_) => "date",
            ColumnBuilder::Timestamp(_, Some(_)) => "timestamptz",
            ColumnBuilder::Timestamp(_, None) => "timestamp",
            ColumnBuilder::List { .. } => "array",
        }
    }

    /// The values appended since the last call, as an array; the builder starts empty again.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Date32(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            ColumnBuilder::List {
                item,
                offsets,
                nulls,
                values,
            } => {
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let values = values.finish();
                // Offsets only grow and end at the element count: the arrays are consistent
                // by construction.
                Arc::new(ListArray::new(
                    Arc::clone(item),
                    offsets,
                    values,
                    nulls.finish(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Int16Array, Int32Array};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
    use chrono::NaiveDate;
    use deriva_bag_features::ColumnType;

    use crate::export::arrow_type;

    fn built(typename: &str, values: &[Value]) -> ArrayRef {
        let mut b = ColumnBuilder::new(&arrow_type(&ColumnType::simple(typename)));
        for v in values {
            b.append(v).unwrap();
        }
        b.finish()
    }

    fn parsed(typename: &str, texts: &[Option<&str>]) -> Vec<Value> {
        let ty = ColumnType::simple(typename);
        texts
            .iter()
            .map(|t| match t {
                None => Value::Null,
                Some(t) => Value::parse(t, &ty).unwrap(),
            })
            .collect()
    }

    #[test]
    fn text_keeps_null_and_the_empty_string_apart() {
        let a = built("text", &parsed("text", &[Some(""), None, Some("x")]));
        let s = a.as_string::<i32>();
        assert_eq!(s.len(), 3);
        assert!(s.is_valid(0) && s.value(0).is_empty());
        assert!(s.is_null(1));
        assert_eq!(s.value(2), "x");
    }

    #[test]
    fn integers_floats_and_booleans_keep_their_values_and_nulls() {
        let a = built("int2", &parsed("int2", &[Some("-32768"), None]));
        let a = a.as_any().downcast_ref::<Int16Array>().unwrap();
        assert_eq!((a.value(0), a.is_null(1)), (-32768, true));
        let b = built("int4", &parsed("int4", &[Some("7")]));
        assert_eq!(b.as_any().downcast_ref::<Int32Array>().unwrap().value(0), 7);
        let c = built("int8", &parsed("int8", &[Some("9007199254740993")]));
        assert_eq!(
            c.as_primitive::<Int64Type>().value(0),
            9_007_199_254_740_993
        );
        let f = built(
            "float8",
            &parsed("float8", &[Some("1.5"), Some("NaN"), None]),
        );
        let f = f.as_primitive::<Float64Type>();
        assert_eq!(f.value(0), 1.5);
        assert!(f.value(1).is_nan());
        assert!(f.is_null(2));
        let t = built("boolean", &parsed("boolean", &[Some("t"), Some("f"), None]));
        let t = t.as_boolean();
        assert_eq!((t.value(0), t.value(1), t.is_null(2)), (true, false, true));
    }

    #[test]
    fn timestamptz_becomes_the_utc_instant_in_microseconds() {
        let a = built(
            "timestamptz",
            &parsed(
                "timestamptz",
                &[
                    Some("2026-05-28 16:54:02.232194-07"),
                    Some("1970-01-01 00:00:01+00"),
                ],
            ),
        );
        let ts = a.as_primitive::<TimestampMicrosecondType>();
        let expected = chrono::DateTime::parse_from_rfc3339("2026-05-28T23:54:02.232194Z")
            .unwrap()
            .timestamp_micros();
        assert_eq!(ts.value(0), expected);
        assert_eq!(ts.value(1), 1_000_000);
        assert_eq!(
            a.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn dates_count_days_from_the_unix_epoch() {
        let a = built(
            "date",
            &[Value::Date(NaiveDate::from_ymd_opt(1970, 1, 11).unwrap())],
        );
        assert_eq!(
            a.as_primitive::<arrow::datatypes::Date32Type>().value(0),
            10
        );
    }

    #[test]
    fn json_is_written_as_its_text() {
        let a = built(
            "jsonb",
            &parsed("jsonb", &[Some(r#"{"a": [1, null]}"#), None]),
        );
        let s = a.as_string::<i32>();
        assert_eq!(s.value(0), r#"{"a":[1,null]}"#);
        assert!(s.is_null(1));
    }

    #[test]
    fn arrays_become_lists_with_null_lists_and_null_elements_apart() {
        let a = built(
            "text[]",
            &parsed("text[]", &[Some("{a,NULL,\"\"}"), None, Some("{}")]),
        );
        let list = a.as_list::<i32>();
        assert_eq!(list.len(), 3);
        let first = list.value(0);
        let first = first.as_string::<i32>();
        assert_eq!(first.len(), 3);
        assert_eq!(first.value(0), "a");
        assert!(first.is_null(1));
        assert!(first.is_valid(2) && first.value(2).is_empty());
        assert!(list.is_null(1));
        assert!(list.is_valid(2) && list.value(2).is_empty());
    }

    #[test]
    fn a_value_of_another_kind_is_an_error_naming_it() {
        let mut b = ColumnBuilder::new(&DataType::Int32);
        let err = b.append(&Value::Text("seven".into())).unwrap_err();
        assert_eq!(
            err,
            ValueError {
                expected: "int4".into(),
                value: "seven".into()
            }
        );
        let err = b.append(&Value::Int(1 << 40)).unwrap_err();
        assert_eq!(err.value, (1i64 << 40).to_string());
    }

    #[test]
    fn finishing_starts_the_next_batch_empty() {
        let mut b = ColumnBuilder::new(&arrow_type(&ColumnType::simple("int4[]")));
        b.append(&Value::Array(vec![Value::Int(1), Value::Int(2)]))
            .unwrap();
        assert_eq!(b.finish().len(), 1);
        b.append(&Value::Array(vec![Value::Int(3)])).unwrap();
        let second = b.finish();
        let list = second.as_list::<i32>();
        assert_eq!(list.len(), 1);
        assert_eq!(
            list.value(0)
                .as_primitive::<arrow::datatypes::Int32Type>()
                .values(),
            &[3]
        );
    }
}
