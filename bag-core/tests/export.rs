//! Parquet export (cargo feature `arrow`): `deriva-bag export` on fixture bags, its files
//! read back by the parquet crate and by pyarrow (installed from PyPI into a cached venv),
//! compared cell by cell with `deriva-bag table --json` and `feature-values --json`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use deriva_bag_core::export::arrow::array::{Array, AsArray, RecordBatchReader};
use deriva_bag_core::export::arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType,
};
use deriva_bag_core::export::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deriva_bag_core::export::TYPENAME_KEY;
use deriva_bag_core::features::{ColumnType, Value};
use deriva_bag_core::fixtures::{self, GeneratedBag};
use deriva_bag_core::DatasetBag;
use serde_json::{json, Value as Json};

use common::{options, typed_bag};

/// Rows of demo.Thing with every value kind: NULL next to `""`, NaN and infinities, extreme
/// integers, arrays with NULL and empty elements, JSON, offsets other than UTC.
const THING_CSV: &str = concat!(
    "RID,RCT,RMT,RCB,RMB,Name,Count,Score,Flag,Day,Tags,Meta\n",
    "1-T001,2026-05-28 16:54:02.232194+00,2026-05-28 16:54:02.232194+00,,,alpha,7,1.5,t,2026-05-28,\"{a,b}\",\"{\"\"k\"\": [1, null]}\"\n",
    "1-T002,2026-05-28 16:54:02-07,2026-05-28 16:54:02.232194+00,,,\"\",,NaN,f,,{},\n",
    "1-T003,2026-05-28 16:54:02.5+05:30,2026-05-28 16:54:02.232194+00,,,,-2147483648,-Infinity,,1970-01-01,\"{\"\"x y\"\",NULL,\"\"\"\"}\",null\n",
    "1-T004,2026-05-28 16:54:02.232194+00,2026-05-28 16:54:02.232194+00,,,\"NULL\",2147483647,Infinity,t,1969-12-31,,\"\"\"text\"\"\"\n",
);

/// A bag (generated or hand-made) with a private cache.
struct Bag {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Bag {
    fn small() -> Bag {
        let dir = tempfile::tempdir().unwrap();
        let GeneratedBag { path, .. } = fixtures::small_bag(&dir.path().join("bags")).unwrap();
        Bag { dir, path }
    }

    fn typed() -> Bag {
        let dir = tempfile::tempdir().unwrap();
        let path = typed_bag(dir.path(), &[("data/demo/Thing.csv", THING_CSV)]);
        Bag { dir, path }
    }

    fn run(&self, args: &[&str]) -> Output {
        let bag = self.path.to_str().unwrap();
        Command::new(env!("CARGO_BIN_EXE_deriva-bag"))
            .args(args.iter().map(|a| if *a == "BAG" { bag } else { a }))
            .env("DERIVA_BAG_CACHE", self.dir.path().join("cache"))
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Json {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `deriva-bag export BAG <dir>/out --format parquet <extra> --json`: the summary.
    fn export(&self, extra: &[&str]) -> (PathBuf, Json) {
        let out = self.dir.path().join("out");
        let mut args = vec![
            "export",
            "BAG",
            out.to_str().unwrap(),
            "--format",
            "parquet",
        ];
        args.extend_from_slice(extra);
        let summary = self.json(&args);
        (out, summary)
    }

    fn open(&self) -> DatasetBag {
        DatasetBag::open_with(&self.path, &options(self.dir.path())).unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One column of a Parquet file: name, ERMrest type name (field metadata), Arrow type.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    typename: String,
    data_type: DataType,
}

/// A Parquet file read back with the parquet crate: its columns and its cells as
/// [`arrow_cell`] gives them, row by row.
fn read_parquet(path: &Path) -> (Vec<Column>, Vec<Vec<Json>>) {
    let file = fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let schema = reader.schema();
    let columns: Vec<Column> = schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            typename: f.metadata()[TYPENAME_KEY].clone(),
            data_type: f.data_type().clone(),
        })
        .collect();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        for i in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .zip(batch.columns())
                    .map(|(c, array)| arrow_cell(array.as_ref(), i, &c.typename))
                    .collect(),
            );
        }
    }
    (columns, rows)
}

/// A cell in the terms of `deriva-bag table --json` ([`Value::to_json`]), except that
/// timestamps are their UTC instant in microseconds (the export keeps the instant, not the
/// text) and JSON columns are parsed.
fn arrow_cell(array: &dyn Array, i: usize, typename: &str) -> Json {
    if array.is_null(i) {
        return Json::Null;
    }
    match array.data_type() {
        DataType::Utf8 if typename.starts_with("json") => {
            serde_json::from_str(array.as_string::<i32>().value(i)).unwrap()
        }
        DataType::Utf8 => json!(array.as_string::<i32>().value(i)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(i)).to_json(),
        DataType::Boolean => json!(array.as_boolean().value(i)),
        DataType::Date32 => {
            Value::Date(array.as_primitive::<Date32Type>().value_as_date(i).unwrap()).to_json()
        }
        DataType::Timestamp(..) => json!(array.as_primitive::<TimestampMicrosecondType>().value(i)),
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(i);
            let element = typename.trim_end_matches("[]");
            Json::Array(
                (0..items.len())
                    .map(|j| arrow_cell(items.as_ref(), j, element))
                    .collect(),
            )
        }
        other => panic!("unexpected Arrow type {other}"),
    }
}

/// `table --json` rows (or `feature-values --json` records) as rows of `columns`, in the
/// terms of [`arrow_cell`].
fn expected_rows(rows: &Json, columns: &[Column]) -> Vec<Vec<Json>> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| expected_cell(&row[&c.name], &c.data_type))
                .collect()
        })
        .collect()
}

fn expected_cell(cell: &Json, data_type: &DataType) -> Json {
    match (cell, data_type) {
        (Json::String(text), DataType::Timestamp(_, tz)) => {
            let ty = ColumnType::simple(if tz.is_some() {
                "timestamptz"
            } else {
                "timestamp"
            });
            json!(Value::parse(text, &ty)
                .unwrap()
                .instant()
                .unwrap()
                .timestamp_micros())
        }
        (Json::Array(items), DataType::List(item)) => Json::Array(
            items
                .iter()
                .map(|c| expected_cell(c, item.data_type()))
                .collect(),
        ),
        _ => cell.clone(),
    }
}

/// The summary's `[{"table", "path", "rows", …}]` entries.
fn entries(summary: &Json, key: &str) -> Vec<Json> {
    summary[key].as_array().unwrap().clone()
}

/// Every exported table against `deriva-bag table --json`: same columns, values, NULLs,
/// row counts, in the same order.
fn assert_tables_match_table_json(bag: &Bag, out: &Path, summary: &Json) -> usize {
    let tables = entries(summary, "tables");
    let listed = bag.json(&["tables", "BAG"]);
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    let expected_names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(names, expected_names);
    let mut compared = 0;
    for entry in &tables {
        let table = entry["table"].as_str().unwrap();
        let (columns, rows) = read_parquet(&out.join(entry["path"].as_str().unwrap()));
        let json_rows = bag.json(&["table", "BAG", table]);
        assert_eq!(
            entry["rows"],
            json!(json_rows.as_array().unwrap().len()),
            "{table}"
        );
        assert_eq!(rows.len(), json_rows.as_array().unwrap().len(), "{table}");
        if let Some(first) = json_rows.as_array().unwrap().first() {
            let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
            let names: Vec<&String> = columns.iter().map(|c| &c.name).collect();
            assert_eq!(names, keys, "{table}");
        }
        assert_eq!(rows, expected_rows(&json_rows, &columns), "{table}");
        compared += rows.len();
    }
    compared
}

#[test]
fn export_writes_every_table_of_the_small_bag_with_the_rows_of_table_json() {
    let bag = Bag::small();
    let (out, summary) = bag.export(&[]);
    assert_eq!(summary["out"], json!(out.to_str().unwrap()));
    let image = entries(&summary, "tables")
        .into_iter()
        .find(|t| t["table"] == "demo:Image")
        .unwrap();
    assert_eq!(image["path"], "tables/demo/Image.parquet");
    assert_eq!(image["rows"], 6);
    let compared = assert_tables_match_table_json(&bag, &out, &summary);
    assert!(compared > 6, "{compared}");
}

#[test]
fn export_keeps_every_value_kind_and_null_apart_from_empty_text() {
    let bag = Bag::typed();
    let (out, summary) = bag.export(&[]);
    assert_tables_match_table_json(&bag, &out, &summary);
    // Same-named tables of two schemas get their own files.
    let paths: Vec<String> = entries(&summary, "tables")
        .iter()
        .map(|t| t["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        paths.contains(&"tables/demo/File.parquet".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"tables/deriva-ml/File.parquet".to_string()),
        "{paths:?}"
    );

    let (columns, rows) = read_parquet(&out.join("tables/demo/Thing.parquet"));
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let types: Vec<(&str, &DataType)> = columns
        .iter()
        .map(|c| (c.name.as_str(), &c.data_type))
        .collect();
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    assert_eq!(
        types,
        [
            ("RID", &DataType::Utf8),
            ("RCT", &utc),
            ("RMT", &utc),
            ("RCB", &DataType::Utf8),
            ("RMB", &DataType::Utf8),
            ("Name", &DataType::Utf8),
            ("Count", &DataType::Int32),
            ("Score", &DataType::Float64),
            ("Flag", &DataType::Boolean),
            ("Day", &DataType::Date32),
            ("Tags", &list),
            ("Meta", &DataType::Utf8),
        ]
    );
    let typenames: Vec<&str> = columns.iter().map(|c| c.typename.as_str()).collect();
    assert_eq!(
        typenames,
        [
            "ermrest_rid",
            "ermrest_rct",
            "ermrest_rmt",
            "ermrest_rcb",
            "ermrest_rmb",
            "text",
            "int4",
            "float8",
            "boolean",
            "date",
            "text[]",
            "jsonb"
        ]
    );
    let col = |name: &str| columns.iter().position(|c| c.name == name).unwrap();
    let cells = |name: &str| {
        rows.iter()
            .map(|r| r[col(name)].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cells("Name"),
        [json!("alpha"), json!(""), Json::Null, json!("NULL")]
    );
    assert_eq!(
        cells("Count"),
        [json!(7), Json::Null, json!(-2147483648), json!(2147483647)]
    );
    assert_eq!(
        cells("Score"),
        [
            json!(1.5),
            json!("NaN"),
            json!("-Infinity"),
            json!("Infinity")
        ]
    );
    assert_eq!(
        cells("Flag"),
        [json!(true), json!(false), Json::Null, json!(true)]
    );
    assert_eq!(
        cells("Day"),
        [
            json!("2026-05-28"),
            Json::Null,
            json!("1970-01-01"),
            json!("1969-12-31")
        ]
    );
    assert_eq!(
        cells("Tags"),
        [
            json!(["a", "b"]),
            json!([]),
            json!(["x y", null, ""]),
            Json::Null
        ]
    );
    assert_eq!(
        cells("Meta"),
        [
            json!({"k": [1, null]}),
            Json::Null,
            Json::Null,
            json!("text")
        ]
    );
    // RCT is the instant: -07 and +05:30 offsets land on the UTC microsecond.
    let utc = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros()
    };
    assert_eq!(
        cells("RCT"),
        [
            json!(utc("2026-05-28T16:54:02.232194Z")),
            json!(utc("2026-05-28T23:54:02Z")),
            json!(utc("2026-05-28T11:24:02.5Z")),
            json!(utc("2026-05-28T16:54:02.232194Z")),
        ]
    );
}

#[test]
fn export_writes_each_feature_as_one_denormalized_table_under_the_selector() {
    let bag = Bag::small();
    for selector in [None, Some("newest"), Some("first"), Some("majority")] {
        let extra: Vec<&str> = selector.map(|s| vec!["--selector", s]).unwrap_or_default();
        let (out, summary) = bag.export(&extra);
        let features = entries(&summary, "features");
        let names: Vec<&str> = features
            .iter()
            .map(|f| f["feature"].as_str().unwrap())
            .collect();
        let skipped = entries(&summary, "skipped");
        if selector == Some("majority") {
            // The float IOP_Reading has no term to count: left out, named, with the reason.
            assert_eq!(names, ["Glaucoma"]);
            assert_eq!(skipped.len(), 1);
            assert_eq!(skipped[0]["feature"], "IOP_Reading");
            assert_eq!(skipped[0]["table"], "demo:Measurement");
            let reason = skipped[0]["reason"].as_str().unwrap();
            assert!(
                reason.contains("\"IOP_Reading\" has no term column"),
                "{reason}"
            );
        } else {
            assert_eq!(names, ["Glaucoma", "IOP_Reading"], "{selector:?}");
            assert!(skipped.is_empty(), "{selector:?}");
        }
        let glaucoma = &features[0];
        assert_eq!(glaucoma["table"], "demo:Image");
        assert_eq!(glaucoma["feature"], "Glaucoma");
        assert_eq!(glaucoma["path"], "features/demo/Image/Glaucoma.parquet");
        let (columns, rows) = read_parquet(&out.join("features/demo/Image/Glaucoma.parquet"));
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "RID",
                "Execution",
                "Feature_Name",
                "RCT",
                "Glaucoma",
                "Image"
            ]
        );
        let mut args = vec!["feature-values", "BAG", "Image", "Glaucoma"];
        args.extend_from_slice(&extra);
        let records = bag.json(&args);
        assert_eq!(glaucoma["rows"], json!(records.as_array().unwrap().len()));
        let expected = expected_rows(&records, &columns[1..]);
        let without_rid: Vec<Vec<Json>> = rows.iter().map(|r| r[1..].to_vec()).collect();
        assert_eq!(without_rid, expected, "{selector:?}");
        assert!(
            rows.iter().all(|r| r[0].is_string()),
            "every row has its RID"
        );
        fs::remove_dir_all(&out).unwrap();
    }
    // Nine values in all, five targets: the selectors keep one per target.
    let (_, summary) = bag.export(&["--selector", "newest"]);
    assert_eq!(entries(&summary, "features")[0]["rows"], 5);
}

#[test]
fn export_refuses_an_existing_output_and_leaves_it_untouched() {
    let bag = Bag::small();
    let out = bag.dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("keep.txt"), "mine").unwrap();
    let result = bag.run(&[
        "export",
        "BAG",
        out.to_str().unwrap(),
        "--format",
        "parquet",
    ]);
    assert_eq!(result.status.code(), Some(2));
    let message = stderr(&result);
    assert!(
        message.contains(&format!("{}: cannot write: already exists", out.display())),
        "{message}"
    );
    assert_eq!(fs::read_to_string(out.join("keep.txt")).unwrap(), "mine");
    assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
    // A file is refused the same way; an empty directory is taken.
    let file = bag.dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let result = bag.run(&["export", "BAG", file.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");
    fs::remove_dir_all(&out).unwrap();
    fs::create_dir(&out).unwrap();
    let result = bag.run(&["export", "BAG", out.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    assert!(out.join("tables/demo/Image.parquet").is_file());
    assert_no_temporaries(bag.dir.path());
}

/// No `.<name>.tmp-…` directory or file is left in `dir`.
fn assert_no_temporaries(dir: &Path) {
    let left: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_failed_export_leaves_no_output_and_no_temporary_behind() {
    let bag = Bag::small();
    let out = bag.dir.path().join("out");
    // Every table is written before the feature's selector fails on its unknown column.
    let result = bag.run(&[
        "export",
        "BAG",
        out.to_str().unwrap(),
        "--selector",
        "majority:Nope",
    ]);
    assert_eq!(result.status.code(), Some(2));
    assert!(stderr(&result).contains("Nope"), "{}", stderr(&result));
    assert!(!out.exists());
    assert_no_temporaries(bag.dir.path());
}

#[test]
fn record_batches_stream_a_table_in_batches_of_the_asked_size() {
    let bag = Bag::typed();
    let opened = bag.open();
    let batches = opened
        .get_table_as_arrow("Thing")
        .unwrap()
        .with_batch_rows(3);
    assert_eq!(
        batches
            .schema()
            .field_with_name("Count")
            .unwrap()
            .data_type(),
        &DataType::Int32
    );
    let sizes: Vec<usize> = batches.map(|b| b.unwrap().num_rows()).collect();
    assert_eq!(sizes, [3, 1]);
    let err = opened.get_table_as_arrow("Nope").unwrap_err();
    assert!(err.to_string().contains("\"Nope\""), "{err}");
}

#[test]
fn write_parquet_refuses_an_existing_file() {
    let bag = Bag::typed();
    let opened = bag.open();
    let path = bag.dir.path().join("Thing.parquet");
    fs::write(&path, "mine").unwrap();
    let err = opened
        .get_table_as_arrow("Thing")
        .unwrap()
        .write_parquet(&path)
        .unwrap_err();
    assert!(
        matches!(&err, deriva_bag_core::Error::Write { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "mine");
    fs::remove_file(&path).unwrap();
    let rows = opened
        .get_table_as_arrow("Thing")
        .unwrap()
        .write_parquet(&path)
        .unwrap();
    assert_eq!(rows, 4);
    assert_eq!(read_parquet(&path).1.len(), 4);
    assert_no_temporaries(bag.dir.path());
}

// ---- pyarrow: a real outside reader ----

/// Reads every Parquet file named on the command line with pyarrow and prints, per file, its
/// columns (name, ERMrest type name, pyarrow type) and rows in the terms of `arrow_cell`.
const PYARROW_READER: &str = r#"
import datetime, json, math, sys
import pyarrow.parquet as pq
import pyarrow as pa

EPOCH_UTC = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
EPOCH = datetime.datetime(1970, 1, 1)
US = datetime.timedelta(microseconds=1)

def cell(v, typ, typename):
    if v is None:
        return None
    if pa.types.is_list(typ):
        return [cell(x, typ.value_type, typename.removesuffix("[]")) for x in v]
    if pa.types.is_timestamp(typ):
        return (v - (EPOCH_UTC if typ.tz else EPOCH)) // US
    if pa.types.is_date32(typ):
        return v.isoformat()
    if pa.types.is_floating(typ):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if pa.types.is_string(typ) and typename.startswith("json"):
        return json.loads(v)
    return v

out = {}
for path in sys.argv[1:]:
    table = pq.read_table(path)
    fields = [(f.name, f.metadata[b"deriva:typename"].decode(), f.type) for f in table.schema]
    columns = [table.column(name).to_pylist() for name, _, _ in fields]
    out[path] = {
        "columns": [[name, typename, str(typ)] for name, typename, typ in fields],
        "rows": [[cell(col[i], typ, typename) for (name, typename, typ), col in zip(fields, columns)]
                 for i in range(table.num_rows)],
    }
json.dump(out, sys.stdout)
"#;

/// Network failures pip reports when the package index cannot be reached.
const PIP_OFFLINE: [&str; 8] = [
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ProxyError",
    "No matching distribution found for pyarrow",
    "Could not fetch URL",
];

/// A Python with pyarrow: a venv kept in the cargo target directory, created and filled from
/// PyPI on first use. `Err(reason)` only when pip cannot reach the package index.
fn pyarrow_python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyarrow-venv");
    let python = venv.join("bin/python");
    let has_pyarrow = |python: &Path| {
        Command::new(python)
            .args(["-c", "import pyarrow.parquet"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_pyarrow(&python) {
        return Ok(python);
    }
    // A venv a killed run left half made is made again.
    let _ = fs::remove_dir_all(&venv);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .expect("python3 runs (CI installs it; .ci/run installs python3-venv)");
    assert!(made.status.success(), "python3 -m venv: {}", stderr(&made));
    let pip = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--retries",
            "2",
            "--timeout",
            "60",
            "pyarrow",
        ])
        .output()
        .unwrap();
    if !pip.status.success() {
        let text = format!("{}{}", String::from_utf8_lossy(&pip.stdout), stderr(&pip));
        if PIP_OFFLINE.iter().any(|m| text.contains(m)) {
            return Err(format!(
                "pip cannot reach the package index: {}",
                text.trim()
            ));
        }
        panic!("pip install pyarrow failed: {text}");
    }
    assert!(has_pyarrow(&python), "pyarrow installed but not importable");
    Ok(python)
}

#[test]
fn pyarrow_reads_the_export_with_the_values_nulls_and_row_counts_of_table_json() {
    let python = match pyarrow_python() {
        Ok(python) => python,
        Err(reason) => {
            println!("SKIPPED pyarrow_reads_the_export…: {reason}");
            return;
        }
    };
    for bag in [Bag::small(), Bag::typed()] {
        let (out, summary) = bag.export(&["--selector", "newest"]);
        let files: Vec<Json> = entries(&summary, "tables")
            .into_iter()
            .chain(entries(&summary, "features"))
            .collect();
        let paths: Vec<PathBuf> = files
            .iter()
            .map(|f| out.join(f["path"].as_str().unwrap()))
            .collect();
        let read = Command::new(&python)
            .arg("-c")
            .arg(PYARROW_READER)
            .args(&paths)
            .output()
            .unwrap();
        assert!(read.status.success(), "pyarrow: {}", stderr(&read));
        let read: Json = serde_json::from_slice(&read.stdout).unwrap();
        for (entry, path) in files.iter().zip(&paths) {
            let file = &read[path.to_str().unwrap()];
            let columns: Vec<Column> = file["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let name = c[0].as_str().unwrap().to_string();
                    let typename = c[1].as_str().unwrap().to_string();
                    let data_type =
                        deriva_bag_core::export::arrow_type(&ColumnType::simple(&typename));
                    Column {
                        name,
                        typename,
                        data_type,
                    }
                })
                .collect();
            let rows = file["rows"].as_array().unwrap();
            let expected_json = match entry["feature"].as_str() {
                None => bag.json(&["table", "BAG", entry["table"].as_str().unwrap()]),
                Some(feature) => bag.json(&[
                    "feature-values",
                    "BAG",
                    entry["table"].as_str().unwrap(),
                    feature,
                    "--selector",
                    "newest",
                ]),
            };
            let expected_count = expected_json.as_array().unwrap().len();
            assert_eq!(rows.len(), expected_count, "{}", path.display());
            assert_eq!(entry["rows"], json!(expected_count));
            // Features: the RID column is the feature row's, not a record field.
            let skip = usize::from(entry["feature"].is_string());
            let expected = expected_rows(&expected_json, &columns[skip..]);
            let got: Vec<Vec<Json>> = rows
                .iter()
                .map(|r| r.as_array().unwrap()[skip..].to_vec())
                .collect();
            assert_eq!(got, expected, "{}", path.display());
        }
        if bag.path.ends_with("Dataset_1-R000") {
            let thing = &read[out.join("tables/demo/Thing.parquet").to_str().unwrap()];
            let types: Vec<&str> = thing["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c[2].as_str().unwrap())
                .collect();
            assert_eq!(
                types,
                [
                    "string",
                    "timestamp[us, tz=UTC]",
                    "timestamp[us, tz=UTC]",
                    "string",
                    "string",
                    "string",
                    "int32",
                    "double",
                    "bool",
                    "date32[day]",
                    "list<item: string>",
                    "string"
                ]
            );
        }
    }
}
