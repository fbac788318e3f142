//! Bad input gets a clear error naming the fault, and nothing is written.

mod common;

use common::*;
use deriva_bag_core::{DatasetBag, Error};

fn open_err(extra: &[(&str, &str)]) -> Error {
    let tmp = tempfile::tempdir().unwrap();
    let path = typed_bag(tmp.path(), extra);
    let err = DatasetBag::open_with(&path, &options(tmp.path())).unwrap_err();
    // Nothing half-built is left in the cache.
    let index_dir = tmp.path().join("cache/index");
    if index_dir.exists() {
        let sqlite: Vec<_> = std::fs::read_dir(&index_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("sqlite"))
            .collect();
        assert!(sqlite.is_empty(), "{sqlite:?}");
    }
    err
}

#[test]
fn truncated_csv_row_names_file_and_line() {
    let csv = format!("RID,RCT,RMT,RCB,RMB,Name,Count\n1-T001,{TS},{TS},,,a,1\n1-T002,{TS},{TS}");
    let err = open_err(&[("data/demo/Thing.csv", &csv)]);
    assert!(matches!(err, Error::Csv { line: 3, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("Thing.csv line 3") && msg.contains("3 fields but the header has 7"),
        "{msg}"
    );
}

#[test]
fn unterminated_quote_names_the_line_it_starts_on() {
    let csv = format!("RID,RCT,RMT,RCB,RMB,Name\n1-T001,{TS},{TS},,,\"never closed\n");
    let err = open_err(&[("data/demo/Thing.csv", &csv)]);
    assert!(matches!(err, Error::Csv { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("unterminated"), "{err}");
}

#[test]
fn header_column_missing_from_schema_json_is_an_unknown_column_error() {
    let csv = format!("RID,RCT,RMT,RCB,RMB,Name,Colour\n1-T001,{TS},{TS},,,a,red\n");
    let err = open_err(&[("data/demo/Thing.csv", &csv)]);
    match &err {
        Error::UnknownColumn {
            path,
            table,
            column,
        } => {
            assert!(path.ends_with("data/demo/Thing.csv"), "{}", path.display());
            assert_eq!(table, "demo:Thing");
            assert_eq!(column, "Colour");
        }
        other => panic!("expected UnknownColumn, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("\"Colour\" is not a column of table demo:Thing"),
        "{err}"
    );
}

#[test]
fn value_that_does_not_parse_names_line_and_column() {
    let csv = format!(
        "RID,RCT,RMT,RCB,RMB,Name,Count\n1-T001,{TS},{TS},,,a,1\n1-T002,{TS},{TS},,,b,seven\n"
    );
    let err = open_err(&[("data/demo/Thing.csv", &csv)]);
    match &err {
        Error::BadValue {
            path,
            line,
            column,
            detail,
        } => {
            assert!(path.ends_with("data/demo/Thing.csv"));
            assert_eq!(*line, 3);
            assert_eq!(column, "Count");
            assert!(detail.contains("\"seven\" is not a valid int4"), "{detail}");
        }
        other => panic!("expected BadValue, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("line 3, column \"Count\""), "{msg}");
}

#[test]
fn bad_timestamp_is_a_bad_value() {
    let csv = "RID,RCT,RMT,RCB,RMB,Name\n1-T001,yesterday,,,,a\n";
    let err = open_err(&[("data/demo/Thing.csv", csv)]);
    assert!(
        matches!(err, Error::BadValue { line: 2, ref column, .. } if column == "RCT"),
        "{err}"
    );
}

#[test]
fn malformed_schema_json_is_a_model_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_bag(tmp.path(), "1-R000", "{\"schemas\": {\"demo\": ", &[]);
    let err = DatasetBag::open_with(&path, &options(tmp.path())).unwrap_err();
    match &err {
        Error::Model { path, .. } => assert!(path.ends_with("data/schema.json")),
        other => panic!("expected Model, got {other}"),
    }
    assert!(err.to_string().contains("malformed schema.json"), "{err}");
}

#[test]
fn schema_json_with_a_dangling_foreign_key_is_a_model_error() {
    let tmp = tempfile::tempdir().unwrap();
    let schema = typed_schema().replace(
        r#""referenced_columns":[{"schema_name":"demo","table_name":"Thing""#,
        r#""referenced_columns":[{"schema_name":"demo","table_name":"Nope""#,
    );
    let path = write_bag(tmp.path(), "1-R000", &schema, &[]);
    let err = DatasetBag::open_with(&path, &options(tmp.path())).unwrap_err();
    assert!(matches!(err, Error::Model { .. }), "{err}");
    assert!(err.to_string().contains("demo:Nope"), "{err}");
}

#[test]
fn missing_schema_json_is_not_a_bag() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_bag(tmp.path(), "1-R000", "{}", &[]);
    std::fs::remove_file(path.join("data/schema.json")).unwrap();
    let err = DatasetBag::open_with(&path, &options(tmp.path())).unwrap_err();
    assert!(matches!(err, Error::NotABag { .. }), "{err}");
    assert!(err.to_string().contains("schema.json"), "{err}");
}

#[test]
fn csv_of_an_unknown_table_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let path = typed_bag(
        tmp.path(),
        &[("data/demo/Unknown.csv", "RID,Whatever\n1-X,y\n")],
    );
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    assert_eq!(bag.rid().as_str(), "1-R000");
}
