//! The index serves only what the bag vouches for (issue 11): CSVs and `data/schema.json` are
//! checked against their manifest digests, edits after indexing are noticed on reopen,
//! duplicate RIDs with different values are reported, and valid models whose names SQLite
//! would confuse open.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{options, typed_bag, typed_dataset_files, typed_schema, write_bag, TS};
use deriva_bag_core::bagit::{ValidationIssue, ValidationMode};
use deriva_bag_core::{DatasetBag, Error};
use deriva_bag_features::{Rid, Value};

/// `cp -a from to`, as a user copying a bag would.
fn cp_a(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

fn thing_csv(rows: &[(&str, &str)]) -> String {
    let mut text = "RID,RCT,RMT,RCB,RMB,Name\n".to_string();
    for (rid, name) in rows {
        text.push_str(&format!("{rid},{TS},{TS},,,{name}\n"));
    }
    text
}

fn names(bag: &DatasetBag, table: &str) -> Vec<(String, String)> {
    bag.get_table(table)
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.text("RID").unwrap().to_string(),
                r.text("Name").unwrap_or("<null>").to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Replaces `from` by `to` in a file (same length keeps the size, as a careful attacker would).
fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    fs::write(path, text.replace(from, to)).unwrap();
}

fn assert_checksum_mismatch(err: Error, expected_path: &Path) {
    match err {
        Error::ChecksumMismatch {
            path,
            algorithm,
            expected,
            found,
        } => {
            assert_eq!(path, expected_path);
            assert_eq!(algorithm, "sha256");
            assert_ne!(expected, found);
            assert_eq!(found.len(), 64);
        }
        other => panic!("expected a checksum mismatch on {expected_path:?}, got {other:?}"),
    }
}

#[test]
fn open_refuses_a_csv_the_manifest_does_not_list() {
    let tmp = tempfile::tempdir().unwrap();
    let path = typed_bag(
        tmp.path(),
        &[("data/demo/Thing.csv", &thing_csv(&[("1-T001", "genuine")]))],
    );
    // Planted after the bag was made: a path-encoded slice that no manifest lists.
    let planted = path.join("data/demo/Dataset_Thing/Thing.csv");
    fs::create_dir_all(planted.parent().unwrap()).unwrap();
    fs::write(&planted, thing_csv(&[("1-T001", "planted")])).unwrap();
    let err = DatasetBag::open_with(&path, &options(tmp.path())).unwrap_err();
    assert!(
        matches!(&err, Error::NotInManifest { path } if *path == planted),
        "{err:?}"
    );
}

#[test]
fn a_csv_edited_in_a_copy_is_refused_and_never_served_for_the_genuine_bag() {
    let tmp = tempfile::tempdir().unwrap();
    let bag = typed_bag(
        tmp.path(),
        &[("data/demo/Thing.csv", &thing_csv(&[("1-T001", "genuine")]))],
    );
    let copy = tmp.path().join("copy").join(bag.file_name().unwrap());
    fs::create_dir_all(copy.parent().unwrap()).unwrap();
    cp_a(&bag, &copy);
    // Same manifests, so the same cache key; only the copy's CSV changed.
    edit(&copy.join("data/demo/Thing.csv"), "genuine", "tampere");
    let opts = options(tmp.path());
    let err = DatasetBag::open_with(&copy, &opts).unwrap_err();
    assert_checksum_mismatch(err, &copy.join("data/demo/Thing.csv"));
    let genuine = DatasetBag::open_with(&bag, &opts).unwrap();
    assert_eq!(names(&genuine, "Thing"), pairs(&[("1-T001", "genuine")]));
    // And the other way round: the genuine bag indexed first, then the edited copy.
    let err = DatasetBag::open_with(&copy, &opts).unwrap_err();
    assert_checksum_mismatch(err, &copy.join("data/demo/Thing.csv"));
    let again = DatasetBag::open_with(&bag, &opts).unwrap();
    assert_eq!(names(&again, "Thing"), pairs(&[("1-T001", "genuine")]));
    assert!(again
        .validate(ValidationMode::Full)
        .unwrap()
        .errors
        .is_empty());
}

#[test]
fn an_in_place_edit_after_indexing_is_noticed_on_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let bag = typed_bag(
        tmp.path(),
        &[("data/demo/Thing.csv", &thing_csv(&[("1-T001", "genuine")]))],
    );
    let opts = options(tmp.path());
    let first = DatasetBag::open_with(&bag, &opts).unwrap();
    assert_eq!(names(&first, "Thing"), pairs(&[("1-T001", "genuine")]));
    drop(first);
    edit(&bag.join("data/demo/Thing.csv"), "genuine", "changed");
    let err = DatasetBag::open_with(&bag, &opts).unwrap_err();
    assert_checksum_mismatch(err, &bag.join("data/demo/Thing.csv"));
    // Put back, the bag opens again from the same index.
    edit(&bag.join("data/demo/Thing.csv"), "changed", "genuine");
    let back = DatasetBag::open_with(&bag, &opts).unwrap();
    assert!(!back.index_was_built());
    assert_eq!(names(&back, "Thing"), pairs(&[("1-T001", "genuine")]));
}

#[test]
fn an_edited_schema_json_is_refused_before_and_after_indexing() {
    let tmp = tempfile::tempdir().unwrap();
    let bag = typed_bag(
        tmp.path(),
        &[("data/demo/Thing.csv", &thing_csv(&[("1-T001", "genuine")]))],
    );
    let schema = bag.join("data/schema.json");
    let opts = options(tmp.path());
    DatasetBag::open_with(&bag, &opts).unwrap();
    // `Name` becomes an int4 column: served from the old index this read as a confusing
    // conversion error.
    let text = fs::read_to_string(&schema).unwrap();
    let retyped = text.replacen(
        r#"{"name":"Name","type":{"typename":"text"}},
     {"name":"Count""#,
        r#"{"name":"Name","type":{"typename":"int4"}},
     {"name":"Count""#,
        1,
    );
    assert_ne!(retyped, text);
    fs::write(&schema, &retyped).unwrap();
    let err = DatasetBag::open_with(&bag, &opts).unwrap_err();
    assert_checksum_mismatch(err, &schema);
    // A fresh cache: the first open refuses it too.
    let err = DatasetBag::open_with(&bag, &options(&tmp.path().join("fresh"))).unwrap_err();
    assert_checksum_mismatch(err, &schema);
}

#[test]
fn a_tampered_csv_that_no_longer_parses_is_reported_as_a_checksum_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let bag = typed_bag(
        tmp.path(),
        &[("data/demo/Thing.csv", &thing_csv(&[("1-T001", "genuine")]))],
    );
    let csv = bag.join("data/demo/Thing.csv");
    let mut text = fs::read_to_string(&csv).unwrap();
    text.push_str("1-T002,not enough fields\n");
    fs::write(&csv, text).unwrap();
    let err = DatasetBag::open_with(&bag, &options(tmp.path())).unwrap_err();
    assert_checksum_mismatch(err, &csv);
}

#[test]
fn unchanged_copies_share_one_index_and_a_touched_csv_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bag = typed_bag(
        tmp.path(),
        &[("data/demo/Thing.csv", &thing_csv(&[("1-T001", "genuine")]))],
    );
    let opts = options(tmp.path());
    let first = DatasetBag::open_with(&bag, &opts).unwrap();
    assert!(first.index_was_built());
    let copy = tmp.path().join("copy").join(bag.file_name().unwrap());
    fs::create_dir_all(copy.parent().unwrap()).unwrap();
    cp_a(&bag, &copy);
    let second = DatasetBag::open_with(&copy, &opts).unwrap();
    assert!(!second.index_was_built());
    assert_eq!(second.index_path(), first.index_path());
    // Rewritten with the same bytes: new times, same digest, same index.
    let csv = bag.join("data/demo/Thing.csv");
    fs::write(&csv, fs::read(&csv).unwrap()).unwrap();
    let third = DatasetBag::open_with(&bag, &opts).unwrap();
    assert!(!third.index_was_built());
    assert_eq!(names(&third, "Thing"), pairs(&[("1-T001", "genuine")]));
}

#[test]
fn a_listed_csv_restored_after_indexing_is_indexed_on_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let bag = typed_bag(
        tmp.path(),
        &[("data/demo/Thing.csv", &thing_csv(&[("1-T001", "genuine")]))],
    );
    let csv = bag.join("data/demo/Thing.csv");
    let aside = tmp.path().join("Thing.csv");
    fs::rename(&csv, &aside).unwrap();
    let opts = options(tmp.path());
    let without = DatasetBag::open_with(&bag, &opts).unwrap();
    assert_eq!(names(&without, "Thing"), []);
    drop(without);
    fs::rename(&aside, &csv).unwrap();
    let with = DatasetBag::open_with(&bag, &opts).unwrap();
    assert!(with.index_was_built());
    assert_eq!(names(&with, "Thing"), pairs(&[("1-T001", "genuine")]));
}

/// Collects the fields of every `WARN` event on the current thread.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?} ", f.name(), v));
            }
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                self.0.push_str(&format!("{}={v} ", f.name()));
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0.trim_end().to_string());
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Opens `path` and returns the bag with the warnings the open logged.
fn open_warned(path: &Path, tmp: &Path) -> (DatasetBag, Vec<String>) {
    let warnings = Warnings::default();
    let bag = tracing::subscriber::with_default(warnings.clone(), || {
        DatasetBag::open_with(path, &options(tmp)).unwrap()
    });
    let logged = warnings.0.lock().unwrap().clone();
    (bag, logged)
}

fn duplicate_rid_issues(bag: &DatasetBag) -> Vec<ValidationIssue> {
    bag.validate(ValidationMode::Structure)
        .unwrap()
        .errors
        .into_iter()
        .filter(|e| e.kind == "duplicate-rid")
        .collect()
}

#[test]
fn duplicate_rids_with_different_values_warn_at_open_and_are_a_validate_finding() {
    let tmp = tempfile::tempdir().unwrap();
    let path = typed_bag(
        tmp.path(),
        &[
            (
                "data/demo/Dataset_Thing/Thing.csv",
                &thing_csv(&[("1-T001", "first"), ("1-T002", "same")]),
            ),
            (
                "data/demo/Thing.csv",
                &thing_csv(&[("1-T002", "same"), ("1-T003", "x"), ("1-T001", "second")]),
            ),
        ],
    );
    let expected_warning = "message=a RID appears in two rows of one table with different \
        values; the first row is used table=demo:Thing rid=1-T001 \
        first=data/demo/Dataset_Thing/Thing.csv line 2 duplicate=data/demo/Thing.csv line 4";
    let (bag, warnings) = open_warned(&path, tmp.path());
    assert_eq!(warnings, [expected_warning]);
    // First row per RID still wins.
    assert_eq!(
        names(&bag, "Thing"),
        pairs(&[("1-T001", "first"), ("1-T002", "same"), ("1-T003", "x")])
    );
    let expected_issue = ValidationIssue {
        kind: "duplicate-rid".into(),
        path: "data/demo/Thing.csv".into(),
        detail: "line 4: RID 1-T001 of table demo:Thing has other values than \
                 data/demo/Dataset_Thing/Thing.csv line 2, whose row is used"
            .into(),
    };
    assert_eq!(
        duplicate_rid_issues(&bag),
        std::slice::from_ref(&expected_issue)
    );
    let report = bag.validate(ValidationMode::Full).unwrap();
    assert!(!report.valid);
    assert_eq!(report.errors, [expected_issue]);
    // A warm open warns again.
    drop(bag);
    let (warm, warnings) = open_warned(&path, tmp.path());
    assert!(!warm.index_was_built());
    assert_eq!(warnings, [expected_warning]);
}

#[test]
fn identical_duplicate_rows_stay_silent() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = thing_csv(&[("1-T001", "one"), ("1-T002", "two")]);
    let path = typed_bag(
        tmp.path(),
        &[
            ("data/demo/Dataset_Thing/Thing.csv", &rows),
            ("data/demo/Thing.csv", &rows),
        ],
    );
    let (bag, warnings) = open_warned(&path, tmp.path());
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(duplicate_rid_issues(&bag), []);
    assert!(bag.validate(ValidationMode::Full).unwrap().valid);
}

/// The typed bag's schema with extra `demo` tables (name → column definitions JSON).
fn schema_with(tables: &[(&str, &str)]) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(&typed_schema()).unwrap();
    let demo = doc["schemas"]["demo"]["tables"].as_object_mut().unwrap();
    for (name, columns) in tables {
        let table: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"table_name":"{name}","column_definitions":{columns},"keys":[{{"unique_columns":["RID"]}}],"foreign_keys":[]}}"#
        ))
        .unwrap();
        demo.insert(name.to_string(), table);
    }
    doc.to_string()
}

fn bag_with(tmp: &Path, tables: &[(&str, &str)], files: &[(&str, &str)]) -> PathBuf {
    let base = typed_dataset_files();
    let mut all: Vec<(&str, &str)> = base.iter().map(|(p, t)| (*p, t.as_str())).collect();
    all.extend_from_slice(files);
    write_bag(tmp, "1-R000", &schema_with(tables), &all)
}

fn column(name: &str, ty: &str) -> String {
    format!(r#"{{"name":"{name}","type":{{"typename":"{ty}"}}}}"#)
}

fn columns(cols: &[(&str, &str)]) -> String {
    let defs: Vec<String> = cols.iter().map(|(n, t)| column(n, t)).collect();
    format!("[{}]", defs.join(","))
}

fn cells(bag: &DatasetBag, table: &str, cols: &[&str]) -> Vec<Vec<Value>> {
    bag.get_table(table)
        .unwrap()
        .iter()
        .map(|r| cols.iter().map(|c| r.get(c).unwrap().clone()).collect())
        .collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

#[test]
fn a_table_with_columns_name_and_name_opens_and_keeps_each_columns_values() {
    let tmp = tempfile::tempdir().unwrap();
    let cols = columns(&[
        ("RID", "text"),
        ("Name", "text"),
        ("name", "text"),
        ("NAME", "int4"),
    ]);
    let path = bag_with(
        tmp.path(),
        &[("Cased", &cols)],
        &[(
            "data/demo/Cased.csv",
            "RID,name,NAME,Name\n1-C001,lower,7,Upper\n1-C002,,8,\"\"\n",
        )],
    );
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    assert_eq!(
        cells(&bag, "Cased", &["RID", "Name", "name", "NAME"]),
        [
            vec![text("1-C001"), text("Upper"), text("lower"), Value::Int(7)],
            vec![text("1-C002"), text(""), Value::Null, Value::Int(8)],
        ]
    );
}

#[test]
fn tables_subject_and_subject_in_one_schema_open_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let cols = columns(&[("RID", "text"), ("Name", "text")]);
    let path = bag_with(
        tmp.path(),
        &[("Subject", &cols), ("subject", &cols)],
        &[
            ("data/demo/Subject.csv", "RID,Name\n1-S001,upper\n"),
            (
                "data/demo/subject.csv",
                "RID,Name\n1-S002,lower\n1-S003,lower too\n",
            ),
        ],
    );
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    assert_eq!(
        cells(&bag, "demo:Subject", &["RID", "Name"]),
        [vec![text("1-S001"), text("upper")]]
    );
    assert_eq!(
        cells(&bag, "demo:subject", &["RID", "Name"]),
        [
            vec![text("1-S002"), text("lower")],
            vec![text("1-S003"), text("lower too")]
        ]
    );
    let subject = bag.resolve_table("demo:subject").unwrap();
    assert_eq!(bag.row_count(&subject).unwrap(), 2);
}

#[test]
fn a_text_column_t_utc_beside_a_timestamptz_t_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let cols = columns(&[("RID", "text"), ("T", "timestamptz"), ("T__utc", "text")]);
    let path = bag_with(
        tmp.path(),
        &[("Stamped", &cols)],
        &[(
            "data/demo/Stamped.csv",
            &format!("RID,T,T__utc\n1-X001,{TS},mine\n"),
        )],
    );
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    let rows = bag.get_table("Stamped").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get("T__utc"), Some(&text("mine")));
    match rows[0].get("T") {
        Some(Value::TimestampTz { raw, utc }) => {
            assert_eq!(raw, TS);
            assert_eq!(utc.to_rfc3339(), "2026-05-28T16:54:02.232194+00:00");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn int4_out_of_range_in_a_csv_is_an_error_naming_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = format!(
        "RID,RCT,RMT,RCB,RMB,Count\n1-T001,{TS},{TS},,,2147483647\n1-T002,{TS},{TS},,,2147483648\n"
    );
    let path = typed_bag(tmp.path(), &[("data/demo/Thing.csv", &csv)]);
    let err = DatasetBag::open_with(&path, &options(tmp.path())).unwrap_err();
    match err {
        Error::BadValue {
            path: p,
            line,
            column,
            detail,
        } => {
            assert_eq!(p, path.join("data/demo/Thing.csv"));
            assert_eq!((line, column.as_str()), (3, "Count"));
            assert_eq!(
                detail,
                "\"2147483648\" is not a valid int4 (out of range: -2147483648 to 2147483647)"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_nesting_cycle_never_lists_the_root_as_its_own_child_or_member() {
    let tmp = tempfile::tempdir().unwrap();
    let datasets = format!(
        "RID,RCT,RMT,RCB,RMB,Description,Version\n\
         1-R000,{TS},{TS},,,root,\n1-R001,{TS},{TS},,,child,\n"
    );
    let versions = format!(
        "RID,RCT,RMT,RCB,RMB,Version,Dataset\n1-V000,{TS},{TS},,,1.0.0,1-R000\n1-V001,{TS},{TS},,,1.0.0,1-R001\n"
    );
    // R000 nests R001, which nests R000 again.
    let nesting = format!(
        "RID,RCT,RMT,RCB,RMB,Dataset,Nested_Dataset\n1-N001,{TS},{TS},,,1-R000,1-R001\n1-N002,{TS},{TS},,,1-R001,1-R000\n"
    );
    let path = write_bag(
        tmp.path(),
        "1-R000",
        &typed_schema(),
        &[
            ("data/deriva-ml/Dataset.csv", &datasets),
            ("data/deriva-ml/Dataset_Version.csv", &versions),
            ("data/deriva-ml/Dataset_Dataset.csv", &nesting),
        ],
    );
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    assert_eq!(bag.rid().as_str(), "1-R000");
    let rids = |infos: Vec<deriva_bag_features::DatasetInfo>| -> Vec<String> {
        infos.into_iter().map(|i| i.rid.to_string()).collect()
    };
    assert_eq!(rids(bag.list_dataset_children(false).unwrap()), ["1-R001"]);
    assert_eq!(rids(bag.list_dataset_children(true).unwrap()), ["1-R001"]);
    assert_eq!(rids(bag.list_dataset_parents(true).unwrap()), ["1-R001"]);
    let child = bag.dataset(&Rid::new("1-R001")).unwrap();
    assert_eq!(rids(child.list_dataset_children(true).unwrap()), ["1-R000"]);
    let members = bag.list_dataset_members(true, None).unwrap();
    let datasets: Vec<String> = members
        [&deriva_bag_features::TableName::new("deriva-ml", "Dataset")]
        .iter()
        .map(|r| r.rid().unwrap().to_string())
        .collect();
    assert_eq!(datasets, ["1-R001"]);
}

#[test]
fn a_table_sqlite_cannot_hold_is_an_error_naming_the_bag_and_table() {
    let tmp = tempfile::tempdir().unwrap();
    // SQLite holds at most 2000 columns per table.
    let mut wide = vec![("RID".to_string(), "text")];
    wide.extend((0..2100).map(|i| (format!("c{i}"), "text")));
    let wide: Vec<(&str, &str)> = wide.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let path = bag_with(
        tmp.path(),
        &[("Wide", &columns(&wide))],
        &[("data/demo/Wide.csv", "RID\n1-W001\n")],
    );
    let err = DatasetBag::open_with(&path, &options(tmp.path())).unwrap_err();
    match &err {
        Error::IndexBuild { bag, what, source } => {
            assert_eq!(bag, &path);
            assert_eq!(what, "table demo:Wide");
            assert!(source.to_string().contains("too many columns"), "{source}");
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "{}: cannot index table demo:Wide: ",
            path.display()
        )),
        "{message}"
    );
    assert!(!message.contains(".tmp-"), "{message}");
}
