//! The `deriva-bag` binary against the small fixture bag (notes: fixture-oracle): every
//! subcommand's `--json` output parsed and compared exactly, exit statuses 0/1/2, error
//! messages that name the fault, archives, and no progress bytes on a pipe.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deriva_bag_core::archive_write::write_zip;
use deriva_bag_core::fixtures::{self, GeneratedBag};
use serde_json::{json, Value};
use tempfile::TempDir;

/// A fixture bag in its own temporary directory, with a private index cache.
struct Fixture {
    dir: TempDir,
    bag: GeneratedBag,
}

impl Fixture {
    fn small() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bag = fixtures::small_bag(&dir.path().join("bags")).unwrap();
        Fixture { dir, bag }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn bag_path(&self) -> &Path {
        &self.bag.path
    }

    /// Runs `deriva-bag` with `args`, the bag path substituted for `BAG`.
    fn run(&self, args: &[&str]) -> Output {
        let bag = self.bag_path().to_str().unwrap().to_string();
        self.run_on(&bag, args)
    }

    fn run_on(&self, bag: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_deriva-bag"))
            .args(args.iter().map(|a| if *a == "BAG" { bag } else { a }))
            .env("DERIVA_BAG_CACHE", self.cache())
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Runs with `--json`, expects exit 0 and an empty stderr, returns the parsed stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stderr(&out), "", "stderr of {args:?}");
        parse(&out)
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The error a failed run printed on stderr, as `(kind, message)`: from `--json`'s one
/// object `{"error": {"kind", "message", "exit_code"}}` (whose exit code must be the
/// process's), or `("", message)` from the human `error: message` line.
fn failure(out: &Output) -> (String, String) {
    let err = stderr(out);
    if let Some(text) = err.strip_prefix("error: ") {
        return (String::new(), text.trim_end().to_string());
    }
    let json: Value = serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
    let error = &json["error"];
    assert_eq!(
        error["exit_code"],
        json!(out.status.code().unwrap()),
        "{err}"
    );
    assert_eq!(json.as_object().unwrap().len(), 1, "{err}");
    (
        error["kind"].as_str().unwrap().to_string(),
        error["message"].as_str().unwrap().to_string(),
    )
}

fn parse(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(out)))
}

/// The `RID`s of a JSON array of rows, in output order.
fn rids(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["RID"].as_str().unwrap().to_string())
        .collect()
}

/// The member table keys that have rows, with their RIDs.
fn non_empty_members(members: &Value) -> Vec<(String, Vec<String>)> {
    members
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, rows)| !rows.as_array().unwrap().is_empty())
        .map(|(table, rows)| (table.clone(), rids(rows)))
        .collect()
}

fn pairs(expected: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    expected
        .iter()
        .map(|(t, r)| (t.to_string(), r.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[test]
fn info_json_describes_the_root_dataset_and_every_table() {
    let f = Fixture::small();
    let info = f.json(&["info", "BAG"]);
    let keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "path",
            "extracted_to",
            "dataset",
            "bagit_version",
            "materialized",
            "missing_assets",
            "tables"
        ]
    );
    assert_eq!(info["path"], json!(f.bag_path().to_str().unwrap()));
    assert_eq!(info["extracted_to"], Value::Null);
    assert_eq!(
        info["dataset"],
        json!({"rid": "1-D000", "version": "1.0.0", "types": ["Complete"], "description": "root"})
    );
    assert_eq!(info["bagit_version"], json!("0.97"));
    assert_eq!(info["materialized"], json!(true));
    assert_eq!(info["missing_assets"], json!(0));
    let tables = info["tables"].as_object().unwrap();
    assert_eq!(tables["demo:Image"], json!(6));
    assert_eq!(tables["demo:Subject"], json!(3));
    assert_eq!(tables["demo:Glaucoma"], json!(4));
    assert_eq!(tables["demo:Execution_Image_Glaucoma"], json!(9));
    assert_eq!(tables["deriva-ml:Dataset"], json!(4));
    assert_eq!(tables["deriva-ml:Dataset_Version"], json!(5));
    assert_eq!(tables["demo:Dataset_Image"], json!(6));
    assert_eq!(tables["demo:Dataset_Subject"], json!(3));
    assert_eq!(tables["deriva-ml:Dataset_Dataset"], json!(3));
    assert_eq!(tables["deriva-ml:Execution"], json!(4));
    // Every table the generator wrote rows for has exactly that many rows.
    for (table, rows) in &f.bag.row_counts {
        assert_eq!(tables[table.as_str()], json!(rows), "{table}");
    }
    // The table list is the same as `tables`.
    let listed = f.json(&["tables", "BAG"]);
    let info_keys: Vec<Value> = tables.keys().map(|k| json!(k)).collect();
    assert_eq!(listed, Value::Array(info_keys));
}

#[test]
fn info_reports_missing_assets_of_a_holey_bag() {
    let dir = tempfile::tempdir().unwrap();
    let spec = fixtures::FixtureSpec {
        materialized: false,
        ..fixtures::FixtureSpec::default()
    };
    let bag = fixtures::generate(&spec, &dir.path().join("bags")).unwrap();
    let f = Fixture { dir, bag };
    let info = f.json(&["info", "BAG"]);
    assert_eq!(info["materialized"], json!(false));
    assert_eq!(info["missing_assets"], json!(6));
    // Default validation of a holey bag is completeness: fetch.txt provides the files.
    let report = f.json(&["validate", "BAG"]);
    assert_eq!(report, json!({"valid": true, "errors": []}));
    // Full validation counts a not-yet-fetched file as missing.
    let out = f.run(&["validate", "BAG", "--mode", "full", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = parse(&out);
    let missing: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "missing-file")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        [
            "data/asset/1-I001/Image/retina_001.jpg",
            "data/asset/1-I002/Image/retina 002.jpg",
            "data/asset/1-I003/Image/rétine_003.png",
            "data/asset/1-I004/Image/retina_004.png",
            "data/asset/1-I005/Image/retina%005.jpg",
            "data/asset/1-I006/Image/retina_006.jpg",
        ]
    );
}

#[test]
fn info_human_text_shows_identity_and_table_sizes() {
    let f = Fixture::small();
    let out = f.run(&["info", "BAG"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("dataset:       1-D000\n"), "{text}");
    assert!(text.contains("version:       1.0.0\n"), "{text}");
    assert!(text.contains("types:         Complete\n"), "{text}");
    assert!(text.contains("materialized:  yes\n"), "{text}");
    let image_line = text.lines().find(|l| l.starts_with("demo:Image ")).unwrap();
    assert_eq!(
        image_line.split_whitespace().collect::<Vec<_>>(),
        ["demo:Image", "6"]
    );
}

#[test]
fn tables_lists_qualified_names_sorted() {
    let f = Fixture::small();
    let tables = f.json(&["tables", "BAG"]);
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for expected in [
        "demo:Execution_Image_Glaucoma",
        "demo:Glaucoma",
        "demo:Image",
        "demo:Subject",
        "deriva-ml:Dataset",
        "deriva-ml:Dataset_Version",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    // Human text: one name per line, same order.
    let out = f.run(&["tables", "BAG"]);
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), names);
}

#[test]
fn table_json_prints_every_row_with_null_for_null() {
    let f = Fixture::small();
    let subjects = f.json(&["table", "BAG", "Subject"]);
    assert_eq!(rids(&subjects), ["1-S001", "1-S002", "1-S003"]);
    let names: Vec<&str> = subjects
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Thing1", "Thing2", "Thing3"]);
    // A qualified name gives the same rows.
    assert_eq!(f.json(&["table", "BAG", "demo:Subject"]), subjects);

    let versions = f.json(&["table", "BAG", "deriva-ml:Dataset_Version"]);
    assert_eq!(
        rids(&versions),
        ["1-V000", "1-V001", "1-V002", "1-V003", "1-V010"]
    );
    let snapshots: Vec<&Value> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["Snapshot"])
        .collect();
    assert_eq!(
        snapshots,
        [
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &json!("33Q-AAAA-AAAA")
        ]
    );
}

#[test]
fn table_human_text_is_an_aligned_table() {
    let f = Fixture::small();
    let out = f.run(&["table", "BAG", "Glaucoma"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("RID "), "{text}");
    // Header, rule, 4 terms, row count.
    assert_eq!(lines.len(), 7, "{text}");
    assert_eq!(lines[6], "(4 rows)");
    // Every column starts at the same offset on every line.
    let name_at = lines[0].find("Name").unwrap();
    for line in &lines[2..6] {
        let name = &line[name_at..];
        assert!(
            ["Normal", "Mild", "Moderate", "Severe"]
                .iter()
                .any(|t| name.starts_with(t)),
            "{line}"
        );
    }
}

#[test]
fn human_tables_hide_system_columns_unless_all_columns() {
    let f = Fixture::small();
    let header = |args: &[&str]| {
        let out = f.run(args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(header(&["table", "BAG", "Subject"]), ["RID", "Name"]);
    assert_eq!(
        header(&["table", "BAG", "Subject", "--all-columns"]),
        ["RID", "RCT", "RMT", "RCB", "RMB", "Name"]
    );
}

#[test]
fn unknown_table_exits_2_naming_the_table() {
    let f = Fixture::small();
    let mut known: Vec<String> = f
        .json(&["tables", "BAG"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    known.sort_by_key(|t| t.to_lowercase());
    for (name, suggestion) in [
        ("Imagez", " (did you mean demo:Image?)"),
        ("image", " (did you mean demo:Image?)"),
        ("Scan", ""),
    ] {
        let out = f.run(&["table", "BAG", name, "--json"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
        assert_eq!(
            failure(&out),
            (
                "table-not-found".to_string(),
                format!(
                    "table \"{name}\" does not exist in the bag's model{suggestion}; known tables: {}",
                    known.join(", ")
                )
            )
        );
    }
}

#[test]
fn an_unknown_feature_suggests_the_one_in_another_case() {
    let f = Fixture::small();
    let out = f.run(&["feature-values", "BAG", "Image", "glaucoma"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: feature \"glaucoma\" not found on table demo:Image (did you mean Glaucoma?); \
         features there: [Glaucoma]\n"
    );
}

#[test]
fn a_plain_file_is_not_a_bag_and_the_error_names_the_archive_kinds() {
    let f = Fixture::small();
    let notes = f.dir.path().join("notes.txt");
    std::fs::write(&notes, "not a bag\n").unwrap();
    let out = f.run_on(notes.to_str().unwrap(), &["info", "BAG"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: not a bag: a file that is not a bag archive: give a bag directory, or \
             an archive named .zip, .tar.gz or .tgz\n",
            notes.display()
        )
    );
}

#[test]
fn a_folder_above_a_bag_points_to_the_bag_inside_it() {
    let f = Fixture::small();
    let above = f.bag_path().parent().unwrap();
    let out = f.run_on(above.to_str().unwrap(), &["info", "BAG", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        failure(&out),
        (
            "not-a-bag".to_string(),
            format!(
                "{}: not a bag: no bagit.txt; the bag is the folder inside it: {}",
                above.display(),
                f.bag_path().display()
            )
        )
    );
}

#[test]
fn missing_bag_exits_2_naming_the_path() {
    let f = Fixture::small();
    let missing = f.dir.path().join("no-such-bag");
    let missing = missing.to_str().unwrap();
    let says = format!("{missing}: not a bag: no such file or directory");
    for (command, kind) in [
        (&["info", "BAG"][..], ""),
        (&["validate", "BAG"], ""),
        (&["tables", "BAG", "--json"], "not-a-bag"),
    ] {
        let out = f.run_on(missing, command);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert_eq!(
            failure(&out),
            (kind.to_string(), says.clone()),
            "{command:?}"
        );
    }
}

#[test]
fn members_of_training_are_its_images_and_subject() {
    let f = Fixture::small();
    let members = f.json(&["members", "BAG", "--dataset", "1-D001"]);
    assert_eq!(
        non_empty_members(&members),
        pairs(&[
            ("Image", &["1-I001", "1-I002", "1-I005"]),
            ("Subject", &["1-S001"]),
        ])
    );
    let testing = f.json(&["members", "BAG", "--dataset", "1-D002"]);
    assert_eq!(
        non_empty_members(&testing),
        pairs(&[
            ("Image", &["1-I003", "1-I004", "1-I005"]),
            ("Subject", &["1-S002"]),
        ])
    );
    let untyped = f.json(&["members", "BAG", "--dataset", "1-D003"]);
    assert_eq!(
        non_empty_members(&untyped),
        pairs(&[("Subject", &["1-S003"])])
    );
}

#[test]
fn members_of_the_root_are_its_nested_datasets_unless_recursing() {
    let f = Fixture::small();
    let members = f.json(&["members", "BAG"]);
    assert_eq!(
        non_empty_members(&members),
        pairs(&[("Dataset", &["1-D001", "1-D002", "1-D003"])])
    );
    // Keys are bare names: no two element tables of the fixture share one.
    assert!(members
        .as_object()
        .unwrap()
        .keys()
        .all(|k| !k.contains(':')));

    let all = f.json(&["members", "BAG", "--recurse"]);
    let mut by_table: Vec<(String, Vec<String>)> = non_empty_members(&all)
        .into_iter()
        .map(|(t, mut r)| {
            r.sort();
            r.dedup();
            (t, r)
        })
        .collect();
    by_table.sort();
    assert_eq!(
        by_table,
        pairs(&[
            ("Dataset", &["1-D001", "1-D002", "1-D003"]),
            ("Image", &["1-I001", "1-I002", "1-I003", "1-I004", "1-I005"]),
            ("Subject", &["1-S001", "1-S002", "1-S003"]),
        ])
    );
}

#[test]
fn members_recurse_json_names_the_dataset_each_member_came_from() {
    let f = Fixture::small();
    let all = f.json(&["members", "BAG", "--recurse"]);
    let mut origins: Vec<(String, String, String)> = all
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(table, rows)| {
            rows.as_array().unwrap().iter().map(move |row| {
                (
                    table.clone(),
                    row["RID"].as_str().unwrap().to_string(),
                    row["member_of"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    origins.sort();
    let expected: Vec<(String, String, String)> = [
        ("Dataset", "1-D001", "1-D000"),
        ("Dataset", "1-D002", "1-D000"),
        ("Dataset", "1-D003", "1-D000"),
        ("Image", "1-I001", "1-D001"),
        ("Image", "1-I002", "1-D001"),
        ("Image", "1-I003", "1-D002"),
        ("Image", "1-I004", "1-D002"),
        ("Image", "1-I005", "1-D001"),
        ("Image", "1-I005", "1-D002"),
        ("Subject", "1-S001", "1-D001"),
        ("Subject", "1-S002", "1-D002"),
        ("Subject", "1-S003", "1-D003"),
    ]
    .iter()
    .map(|(t, r, d)| (t.to_string(), r.to_string(), d.to_string()))
    .collect();
    assert_eq!(origins, expected);
    // Without --recurse the rows are as before: no member_of field.
    let direct = f.json(&["members", "BAG"]);
    assert!(direct["Dataset"][0].get("member_of").is_none(), "{direct}");
}

#[test]
fn members_human_text_titles_each_element_table() {
    let f = Fixture::small();
    let out = f.run(&["members", "BAG", "--dataset", "1-D001"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("demo:Image (3 rows)\nRID "), "{text}");
    assert!(text.contains("\ndemo:Subject (1 row)\nRID "), "{text}");
}

#[test]
fn unknown_dataset_exits_2_naming_the_rid() {
    let f = Fixture::small();
    let out = f.run(&["members", "BAG", "--dataset", "9-ZZZZ"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("9-ZZZZ"), "{}", stderr(&out));
    // A malformed RID is refused before the bag is opened.
    let out = f.run(&["children", "BAG", "--dataset", "not a rid"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"not a rid\" is not a RID"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn children_of_the_root_are_training_testing_and_untyped() {
    let f = Fixture::small();
    let children = f.json(&["children", "BAG"]);
    assert_eq!(
        children,
        json!([
            {"rid": "1-D001", "version": "1.0.0", "types": ["Training"], "description": children[0]["description"]},
            {"rid": "1-D002", "version": "1.0.0", "types": ["Testing"], "description": children[1]["description"]},
            {"rid": "1-D003", "version": "1.0.0", "types": [], "description": children[2]["description"]},
        ])
    );
    assert_eq!(f.json(&["children", "BAG", "--recurse"]), children);
    assert_eq!(
        f.json(&["children", "BAG", "--dataset", "1-D001"]),
        json!([])
    );
    let out = f.run(&["children", "BAG", "--dataset", "1-D002"]);
    assert_eq!(stdout(&out), "(no nested datasets)\n");
}

#[test]
fn validate_full_passes_on_an_intact_bag() {
    let f = Fixture::small();
    for mode in ["structure", "completeness", "fast", "full"] {
        let report = f.json(&["validate", "BAG", "--mode", mode]);
        assert_eq!(report, json!({"valid": true, "errors": []}), "{mode}");
    }
    // Default on a materialized bag: full.
    let out = f.run(&["validate", "BAG"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        format!("{}: valid (full validation)\n", f.bag_path().display())
    );
}

#[test]
fn validate_full_exits_1_and_names_a_corrupted_payload_file() {
    let f = Fixture::small();
    let file = f.bag_path().join("data/asset/1-I001/Image/retina_001.jpg");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // same size: only the digests can tell
    std::fs::write(&file, bytes).unwrap();

    let out = f.run(&["validate", "BAG", "--mode", "full", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = parse(&out);
    assert_eq!(report["valid"], json!(false));
    let errors = report["errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    for e in errors {
        assert_eq!(
            e.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["kind", "path", "detail"]
        );
        assert_eq!(e["kind"], json!("checksum-mismatch"));
        assert_eq!(e["path"], json!("data/asset/1-I001/Image/retina_001.jpg"));
    }
    // Size-only checks do not see it.
    let out = f.run(&["validate", "BAG", "--mode", "fast", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    // Human text names the file too.
    let out = f.run(&["validate", "BAG"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("checksum-mismatch  data/asset/1-I001/Image/retina_001.jpg"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn json_output_has_no_progress_bar_bytes() {
    let f = Fixture::small();
    // A cold open (index build) and a full validation: the two operations with bars.
    for args in [
        &["info", "BAG", "--json"][..],
        &["validate", "BAG", "--mode", "full", "--json"],
    ] {
        let out = f.run(args);
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
        assert!(
            !out.stdout.iter().any(|b| *b == b'\r' || *b == 0x1b),
            "{args:?}: control bytes in stdout"
        );
        parse(&out);
    }
}

#[test]
fn a_zip_archive_reads_like_its_directory() {
    let f = Fixture::small();
    let zip = f.dir.path().join("Dataset_1-D000.zip");
    write_zip(f.bag_path(), &zip).unwrap();
    let zip = zip.to_str().unwrap();
    let run_json = |args: &[&str]| {
        let mut args = args.to_vec();
        args.push("--json");
        let out = f.run_on(zip, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        parse(&out)
    };
    assert_eq!(run_json(&["tables", "BAG"]), f.json(&["tables", "BAG"]));
    assert_eq!(
        run_json(&["members", "BAG", "--dataset", "1-D001"]),
        f.json(&["members", "BAG", "--dataset", "1-D001"])
    );
    assert_eq!(
        run_json(&["validate", "BAG"]),
        json!({"valid": true, "errors": []})
    );
    let info = run_json(&["info", "BAG"]);
    // The bag as given, and the folder it was extracted to: in the cache, never next to the
    // archive.
    assert_eq!(info["path"], json!(zip));
    let path = PathBuf::from(info["extracted_to"].as_str().unwrap());
    assert!(path.starts_with(f.cache()), "{}", path.display());
    assert!(path.ends_with("Dataset_1-D000"), "{}", path.display());
    assert_eq!(info["dataset"]["rid"], json!("1-D000"));
}

#[test]
fn cache_dir_option_overrides_the_environment() {
    let f = Fixture::small();
    let other = f.dir.path().join("other-cache");
    let out = f.run(&["tables", "BAG", "--cache-dir", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(other.join("index").is_dir());
    assert!(!f.cache().exists());
}

/// `(Image, Glaucoma)` pairs of a feature-values JSON array, in output order.
fn labels(records: &Value) -> Vec<(String, String)> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["Image"].as_str().unwrap().to_string(),
                r["Glaucoma"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn label_pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(i, g)| (i.to_string(), g.to_string()))
        .collect()
}

#[test]
fn features_lists_glaucoma_on_image_and_iop_reading_on_measurement() {
    let f = Fixture::small();
    let glaucoma = json!([{
        "table": "demo:Image",
        "name": "Glaucoma",
        "feature_table": "demo:Execution_Image_Glaucoma",
        "term_columns": ["Glaucoma"],
        "asset_columns": [],
        "value_columns": [],
    }]);
    let iop_reading = json!({
        "table": "demo:Measurement",
        "name": "IOP_Reading",
        "feature_table": "demo:Execution_Measurement_IOP_Reading",
        "term_columns": [],
        "asset_columns": [],
        "value_columns": ["IOP_Value"],
    });
    assert_eq!(
        f.json(&["features", "BAG"]),
        json!([glaucoma[0].clone(), iop_reading.clone()])
    );
    assert_eq!(
        f.json(&["features", "BAG", "Measurement"]),
        json!([iop_reading])
    );
    assert_eq!(f.json(&["features", "BAG", "Image"]), glaucoma);
    assert_eq!(f.json(&["features", "BAG", "demo:Image"]), glaucoma);
    assert_eq!(f.json(&["features", "BAG", "Subject"]), json!([]));
    let out = f.run(&["features", "BAG", "Subject"]);
    assert_eq!(stdout(&out), "(no features)\n");
}

#[test]
fn feature_values_without_selector_are_every_record_in_target_rct_order() {
    let f = Fixture::small();
    let records = f.json(&["feature-values", "BAG", "Image", "Glaucoma"]);
    assert_eq!(
        labels(&records),
        label_pairs(&[
            ("1-I001", "Normal"),
            ("1-I001", "Severe"), // 10:00-07 is 17:00 UTC: after 16:54 UTC
            ("1-I002", "Mild"),
            ("1-I003", "Normal"),
            ("1-I003", "Moderate"), // RCT tie: row RID 1-A004 before 1-A005
            ("1-I005", "Mild"),
            ("1-I005", "Mild"),
            ("1-I005", "Severe"),
            ("1-I006", "Normal"),
        ])
    );
    // Fields are the record's, in model_dump order; the feature row RID is not one.
    assert_eq!(
        records[0],
        json!({
            "Execution": "1-E001",
            "Feature_Name": "Glaucoma",
            "RCT": "2026-05-28 16:54:02.232194+00",
            "Glaucoma": "Normal",
            "Image": "1-I001",
        })
    );
    let keys: Vec<&str> = records[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["Execution", "Feature_Name", "RCT", "Glaucoma", "Image"]
    );
}

#[test]
fn feature_values_selectors_pick_one_record_per_image() {
    let f = Fixture::small();
    let select = |selector: &str| {
        labels(&f.json(&[
            "feature-values",
            "BAG",
            "Image",
            "Glaucoma",
            "--selector",
            selector,
        ]))
    };
    assert_eq!(
        select("newest"),
        label_pairs(&[
            ("1-I001", "Severe"),
            ("1-I002", "Mild"),
            ("1-I003", "Moderate"),
            ("1-I005", "Severe"),
            ("1-I006", "Normal"),
        ])
    );
    assert_eq!(
        select("first"),
        label_pairs(&[
            ("1-I001", "Normal"),
            ("1-I002", "Mild"),
            ("1-I003", "Normal"),
            ("1-I005", "Mild"),
            ("1-I006", "Normal"),
        ])
    );
    let majority = label_pairs(&[
        ("1-I001", "Severe"), // 1–1 tie → newest
        ("1-I002", "Mild"),
        ("1-I003", "Moderate"), // 1–1 tie, RCT tie → greater row RID
        ("1-I005", "Mild"),     // 2 Mild vs 1 Severe
        ("1-I006", "Normal"),
    ]);
    assert_eq!(select("majority"), majority);
    assert_eq!(select("majority:Glaucoma"), majority);
}

#[test]
fn feature_values_are_scoped_to_the_chosen_dataset() {
    let f = Fixture::small();
    let training = f.json(&[
        "feature-values",
        "BAG",
        "Image",
        "Glaucoma",
        "--dataset",
        "1-D001",
        "--selector",
        "newest",
    ]);
    assert_eq!(
        labels(&training),
        label_pairs(&[
            ("1-I001", "Severe"),
            ("1-I002", "Mild"),
            ("1-I005", "Severe")
        ])
    );
    // 1-D003 has only Subject 1-S003: its Images 1-I005 and 1-I006 are reachable by FK.
    let untyped = f.json(&[
        "feature-values",
        "BAG",
        "Image",
        "Glaucoma",
        "--dataset",
        "1-D003",
        "--selector",
        "first",
    ]);
    assert_eq!(
        labels(&untyped),
        label_pairs(&[("1-I005", "Mild"), ("1-I006", "Normal")])
    );
}

#[test]
fn feature_values_bad_input_exits_2_naming_the_value() {
    let f = Fixture::small();
    let cases: [(&[&str], &str); 4] = [
        (
            &["feature-values", "BAG", "Image", "Cataract"],
            "\"Cataract\"",
        ),
        (
            &["feature-values", "BAG", "Imagez", "Glaucoma"],
            "\"Imagez\"",
        ),
        (
            &[
                "feature-values",
                "BAG",
                "Image",
                "Glaucoma",
                "--selector",
                "majority:Nope",
            ],
            "\"Nope\"",
        ),
        (
            &[
                "feature-values",
                "BAG",
                "Image",
                "Glaucoma",
                "--selector",
                "latest",
            ],
            "\"latest\" is not a selector",
        ),
    ];
    for (args, named) in cases {
        let out = f.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
    }
}

#[test]
fn feature_values_human_text_is_a_table_of_fields() {
    let f = Fixture::small();
    let out = f.run(&[
        "feature-values",
        "BAG",
        "Image",
        "Glaucoma",
        "--selector",
        "newest",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["Execution", "Feature_Name", "RCT", "Glaucoma", "Image"]
    );
    // RCT holds a space, so it splits in two words.
    assert_eq!(
        lines[2],
        [
            "1-E002",
            "Glaucoma",
            "2026-05-28",
            "10:00:00-07",
            "Severe",
            "1-I001"
        ]
    );
    assert_eq!(lines.len(), 2 + 5);
}

/// Runs `deriva-bag` on a pseudo-terminal (util-linux `script`), returning everything the
/// terminal received; `None` where `script` is not installed.
#[cfg(target_os = "linux")]
fn run_on_terminal(f: &Fixture, cache: &Path, args: &[&str]) -> Option<String> {
    let bag = f.bag_path().to_str().unwrap();
    let mut command = format!("'{}'", env!("CARGO_BIN_EXE_deriva-bag"));
    for arg in args {
        command.push_str(&format!(" '{}'", if *arg == "BAG" { bag } else { arg }));
    }
    let out = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("DERIVA_BAG_CACHE", cache)
        .env_remove("RUST_LOG")
        .output()
        .ok()?;
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(target_os = "linux")]
#[test]
fn progress_bars_show_on_a_terminal_but_never_with_json() {
    let f = Fixture::small();
    let cold = |name: &str| f.dir.path().join(name);
    let Some(shown) = run_on_terminal(&f, &cold("c1"), &["info", "BAG"]) else {
        return deriva_bag_core::fixtures::skip_test(
            "progress bars need a pseudo-terminal: util-linux `script` is not installed",
        );
    };
    assert!(shown.contains("indexing ["), "{shown:?}");
    let validating =
        run_on_terminal(&f, &cold("c1"), &["validate", "BAG", "--mode", "full"]).unwrap();
    assert!(validating.contains("validating ["), "{validating:?}");
    // A warm open builds nothing and draws nothing.
    let warm = run_on_terminal(&f, &cold("c1"), &["tables", "BAG"]).unwrap();
    assert!(!warm.contains("indexing"), "{warm:?}");

    // With --json, even on a terminal: the JSON and nothing else.
    for args in [
        &["info", "BAG", "--json"][..],
        &["validate", "BAG", "--json"],
    ] {
        let text = run_on_terminal(&f, &cold("c2"), args).unwrap();
        assert!(!text.contains('\u{1b}'), "{args:?}: {text:?}");
        serde_json::from_str::<Value>(&text).unwrap();
    }
}

#[test]
fn a_malformed_manifest_exits_2_naming_file_and_line() {
    let f = Fixture::small();
    let manifest = f.bag_path().join("manifest-md5.txt");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    let lines = text.lines().count();
    text.push_str("garbage\n");
    std::fs::write(&manifest, text).unwrap();
    for (command, kind) in [
        (&["validate", "BAG"][..], ""),
        (&["info", "BAG", "--json"], "tag-file"),
    ] {
        let out = f.run(command);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert!(out.stdout.is_empty());
        let (got_kind, err) = failure(&out);
        assert_eq!(got_kind, kind);
        let at = format!("{} line {}", manifest.display(), lines + 1);
        assert!(err.starts_with(&at), "{err}");
        assert!(err.contains("\"garbage\""), "{err}");
    }
}

#[test]
fn a_truncated_csv_is_bad_input_to_read_and_a_checksum_failure_to_validate() {
    let f = Fixture::small();
    let csv = f.bag_path().join("data/demo/Subject.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    let lines = text.lines().count();
    text.push_str("1-S009,\"unterminated\n");
    std::fs::write(&csv, text).unwrap();

    // Changed after the bag was made: the read names the file and its digest.
    let out = f.run(&["table", "BAG", "Subject", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let (kind, err) = failure(&out);
    assert_eq!(kind, "checksum-mismatch");
    let changed = format!("{}: sha256 digest is ", csv.display());
    assert!(
        err.starts_with(&changed) && err.contains("the file was changed after the bag was made"),
        "{err}"
    );

    // Validation never parses the CSV: it reports the file's digests.
    let out = f.run(&["validate", "BAG", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = parse(&out);
    let kinds: Vec<(&str, &str)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("checksum-mismatch", "data/demo/Subject.csv"),
            ("checksum-mismatch", "data/demo/Subject.csv"),
        ]
    );

    // Made that way (the manifests vouch for it): the read names the file and line.
    deriva_bag_core::bagit::write::BagWriter::new()
        .write(f.bag_path())
        .unwrap();
    let out = f.run(&["table", "BAG", "Subject", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let (kind, err) = failure(&out);
    assert_eq!(kind, "csv");
    let at = format!("{} line {}", csv.display(), lines + 1);
    assert!(err.starts_with(&at), "{err}");
}

#[test]
fn rust_log_sends_plain_logs_to_stderr_and_leaves_stdout_json() {
    let f = Fixture::small();
    let bag = f.bag_path().to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_deriva-bag"))
        .args(["tables", bag, "--json"])
        .env("DERIVA_BAG_CACHE", f.cache())
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(parse(&out), f.json(&["tables", "BAG"]));
    let err = stderr(&out);
    assert!(err.contains("DEBUG"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes into a pipe: {err:?}"
    );
}

#[test]
fn a_tar_gz_archive_reads_like_its_directory() {
    let f = Fixture::small();
    let tgz = f.dir.path().join("Dataset_1-D000.tar.gz");
    deriva_bag_core::archive_write::write_tgz(f.bag_path(), &tgz).unwrap();
    let out = f.run_on(tgz.to_str().unwrap(), &["children", "BAG", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(parse(&out), f.json(&["children", "BAG"]));
}

#[test]
fn validate_reports_a_rid_repeated_with_other_values() {
    let f = Fixture::small();
    let csv = f.bag_path().join("data/demo/Subject.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let mut row: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    let name = header.iter().position(|h| *h == "Name").unwrap();
    row[name] = "Someone else".into();
    let rid = row[0].clone();
    std::fs::write(&csv, format!("{text}{}\n", row.join(","))).unwrap();
    // A bag made that way: the manifests vouch for the repeated row.
    deriva_bag_core::bagit::write::BagWriter::new()
        .write(f.bag_path())
        .unwrap();

    let out = f.run(&["validate", "BAG", "--mode", "full", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        parse(&out),
        json!({"valid": false, "errors": [{
            "kind": "duplicate-rid",
            "path": "data/demo/Subject.csv",
            "detail": format!(
                "line {}: RID {rid} of table demo:Subject has other values than \
                 data/demo/Subject.csv line 2, whose row is used",
                lines.len() + 1
            ),
        }]})
    );
    // Opening warns, naming both lines; the first row is served.
    let out = f.run(&["table", "BAG", "Subject", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warning = stderr(&out);
    assert!(
        warning.contains(&format!(
            "first=data/demo/Subject.csv line 2 duplicate=data/demo/Subject.csv line {}",
            lines.len() + 1
        )),
        "{warning}"
    );
    let rows = parse(&out);
    let first = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["RID"] == json!(rid))
        .unwrap();
    assert_ne!(first["Name"], json!("Someone else"));
}

/// The lines of a `--jsonl` run, parsed.
fn json_lines(out: &Output) -> Vec<Value> {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn jsonl_writes_one_object_per_line_with_the_rows_of_json() {
    let f = Fixture::small();
    let subjects = f.json(&["table", "BAG", "Subject"]);
    let lines = json_lines(&f.run(&["table", "BAG", "Subject", "--jsonl"]));
    assert_eq!(Value::Array(lines), subjects);

    let args = [
        "feature-values",
        "BAG",
        "Image",
        "Glaucoma",
        "--selector",
        "newest",
    ];
    let newest = f.json(&args);
    assert_eq!(newest.as_array().unwrap().len(), 5);
    let lines = json_lines(&f.run(&[&args[..], &["--jsonl"]].concat()));
    assert_eq!(Value::Array(lines), newest);

    let members = f.json(&["members", "BAG", "--recurse"]);
    let lines = json_lines(&f.run(&["members", "BAG", "--recurse", "--jsonl"]));
    let tables: Vec<&str> = lines.iter().map(|l| l["table"].as_str().unwrap()).collect();
    assert_eq!(
        tables,
        [
            "Image", "Image", "Image", "Image", "Image", "Image", "Subject", "Subject", "Subject",
            "Dataset", "Dataset", "Dataset"
        ]
    );
    // Grouped by table, the lines are the document `--json` prints.
    let mut grouped = serde_json::Map::new();
    for key in members.as_object().unwrap().keys() {
        let rows: Vec<Value> = lines
            .iter()
            .filter(|l| l["table"] == json!(key))
            .map(|l| l["row"].clone())
            .collect();
        grouped.insert(key.clone(), Value::Array(rows));
    }
    assert_eq!(Value::Object(grouped), members);
}

#[test]
fn info_uses_the_recorded_asset_check_until_asked_or_the_asset_tree_changes() {
    let f = Fixture::small();
    // Identities are recorded once they are older than the settle time.
    std::thread::sleep(deriva_bag_core::bagit::MEMO_SETTLE + std::time::Duration::from_millis(100));
    let missing = |info: &Value| (info["materialized"].clone(), info["missing_assets"].clone());
    assert_eq!(missing(&f.json(&["info", "BAG"])), (json!(true), json!(0)));
    // A file removed inside its own asset directory: not in the record…
    std::fs::remove_file(f.bag_path().join("data/asset/1-I002/Image/retina 002.jpg")).unwrap();
    assert_eq!(missing(&f.json(&["info", "BAG"])), (json!(true), json!(0)));
    let text = stdout(&f.run(&["info", "BAG"]));
    assert!(
        text.contains("materialized:  yes (as last checked; --check-assets looks again)\n"),
        "{text}"
    );
    // …until --check-assets looks, which renews the record.
    assert_eq!(
        missing(&f.json(&["info", "BAG", "--check-assets"])),
        (json!(false), json!(1))
    );
    assert_eq!(missing(&f.json(&["info", "BAG"])), (json!(false), json!(1)));
    // An asset directory removed changes the tree: the next info checks the files.
    std::fs::remove_dir_all(f.bag_path().join("data/asset/1-I004")).unwrap();
    assert_eq!(missing(&f.json(&["info", "BAG"])), (json!(false), json!(2)));
    let text = stdout(&f.run(&["info", "BAG", "--check-assets"]));
    assert!(
        text.contains("materialized:  no (2 asset files missing)\n"),
        "{text}"
    );
}
