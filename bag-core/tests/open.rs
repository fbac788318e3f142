//! Opening bags: identity, the index cache, concurrency, read-only-ness, typed values.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use deriva_bag_core::features::{TableName, Value};
use deriva_bag_core::fixtures::{self, FixtureSpec};
use deriva_bag_core::{DatasetBag, Error, OpenOptions};

#[test]
fn small_bag_root_is_d000_at_its_highest_version() {
    let (_tmp, generated, bag) = small(fixtures::Layout::FormatB, true);
    assert_eq!(bag.path(), generated.path);
    assert_eq!(bag.rid().as_str(), "1-D000");
    // 1-V000 says 1.0.0 and 1-V010 says 0.1.0: PEP 440 max.
    assert_eq!(bag.version(), Some("1.0.0"));
    assert_eq!(bag.dataset_types(), ["Complete"]);
    assert_eq!(bag.description(), Some("root"));
}

#[test]
fn nested_datasets_have_their_own_types_and_untyped_d003_has_none() {
    let (_tmp, _g, bag) = small(fixtures::Layout::FormatB, false);
    let d1 = bag.dataset(&"1-D001".into()).unwrap();
    assert_eq!(d1.dataset_types(), ["Training"]);
    assert_eq!(d1.version(), Some("1.0.0"));
    let d3 = bag.dataset(&"1-D003".into()).unwrap();
    assert!(d3.dataset_types().is_empty());
    let err = bag.dataset(&"1-NOPE".into()).unwrap_err();
    assert!(
        matches!(err, Error::Features(deriva_bag_core::features::Error::DatasetNotFound { ref rid }) if rid.as_str() == "1-NOPE"),
        "{err}"
    );
}

#[test]
fn reopening_reuses_the_index_without_rebuilding() {
    let tmp = tempfile::tempdir().unwrap();
    let g = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let opts = OpenOptions {
        cache_dir: Some(tmp.path().join("cache")),
        progress: Some(Arc::new(move |_p: &deriva_bag_core::BuildProgress| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })),
        ..OpenOptions::default()
    };
    let first = DatasetBag::open_with(&g.path, &opts).unwrap();
    assert!(first.index_was_built());
    let built_calls = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(built_calls >= 2, "progress reported {built_calls} times");
    let index = first.index_path().to_path_buf();
    assert!(index.starts_with(tmp.path().join("cache").join("index")));
    assert_eq!(
        index.file_name().unwrap().to_str().unwrap(),
        format!("{}.sqlite", first.bagit().unwrap().cache_key())
    );
    let mtime = std::fs::metadata(&index).unwrap().modified().unwrap();

    let second = DatasetBag::open_with(&g.path, &opts).unwrap();
    assert!(!second.index_was_built());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), built_calls);
    assert_eq!(
        std::fs::metadata(&index).unwrap().modified().unwrap(),
        mtime
    );
    assert_eq!(
        second.get_table("Image").unwrap(),
        first.get_table("Image").unwrap()
    );
}

#[test]
fn concurrent_opens_of_one_bag_all_succeed_and_build_once() {
    let tmp = tempfile::tempdir().unwrap();
    let g = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    let opts = options(tmp.path());
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (path, opts, barrier) = (g.path.clone(), opts.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let bag = DatasetBag::open_with(&path, &opts).unwrap();
                (
                    bag.index_was_built(),
                    bag.row_count(&TableName::new("demo", "Image")).unwrap(),
                )
            })
        })
        .collect();
    let results: Vec<(bool, u64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|(built, _)| *built).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(|(_, n)| *n == 6));
    // No temporary files are left next to the index.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("cache/index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn opening_never_changes_the_bag_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let g = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    let before = tree_digest(&g.path);
    let bag = DatasetBag::open_with(&g.path, &options(tmp.path())).unwrap();
    bag.list_dataset_members(true, None).unwrap();
    bag.missing_assets().unwrap();
    assert_eq!(tree_digest(&g.path), before);
}

#[test]
fn null_and_empty_string_survive_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let thing = format!(
        "RID,RCT,RMT,RCB,RMB,Name,Count\n1-T001,{TS},{TS},,,\"\",\n1-T002,{TS},{TS},,,,7\n"
    );
    let path = typed_bag(tmp.path(), &[("data/demo/Thing.csv", &thing)]);
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    let rows = bag.get_table("demo:Thing").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get("Name"), Some(&Value::Text(String::new())));
    assert_eq!(rows[0].get("Count"), Some(&Value::Null));
    assert_eq!(rows[1].get("Name"), Some(&Value::Null));
    assert_eq!(rows[1].get("Count"), Some(&Value::Int(7)));
    // Columns missing from the CSV header are NULL.
    assert_eq!(rows[1].get("Flag"), Some(&Value::Null));
    assert_eq!(rows[0].get("RCB"), Some(&Value::Null));
}

#[test]
fn typed_values_round_trip_through_the_index_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let thing = format!(
        "RID,RCT,RMT,RCB,RMB,Name,Count,Score,Flag,Day,Tags,Meta\n\
         1-T001,2026-05-28 10:00:00-07,{TS},,,a,-3,NaN,t,2026-05-28,\"{{\"\"a b\"\",NULL,c}}\",\"{{\"\"k\"\": [1, 2.5]}}\"\n\
         1-T002,{TS},{TS},,,b,42,1e+20,f,,{{}},\n\
         1-T003,{TS},{TS},,,c,,-Infinity,,,,\n"
    );
    let path = typed_bag(tmp.path(), &[("data/demo/Thing.csv", &thing)]);
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    let model = bag.model().clone();
    let table = model.table(&TableName::new("demo", "Thing")).unwrap();
    let rows = bag.get_table("demo:Thing").unwrap();
    // Every cell equals what the one value parser makes of the CSV text.
    let expect =
        |col: &str, text: &str| Value::parse(text, &table.column(col).unwrap().ty).unwrap();
    assert_eq!(
        rows[0].get("RCT"),
        Some(&expect("RCT", "2026-05-28 10:00:00-07"))
    );
    assert_eq!(
        rows[0].get("RCT").unwrap().instant().unwrap().to_rfc3339(),
        "2026-05-28T17:00:00+00:00"
    );
    assert_eq!(rows[0].get("Count"), Some(&Value::Int(-3)));
    assert!(matches!(rows[0].get("Score"), Some(Value::Float(f)) if f.is_nan()));
    assert_eq!(rows[1].get("Score"), Some(&Value::Float(1e20)));
    assert_eq!(rows[2].get("Score"), Some(&Value::Float(f64::NEG_INFINITY)));
    assert_eq!(rows[0].get("Flag"), Some(&Value::Bool(true)));
    assert_eq!(rows[1].get("Flag"), Some(&Value::Bool(false)));
    assert_eq!(rows[0].get("Day"), Some(&expect("Day", "2026-05-28")));
    assert_eq!(
        rows[0].get("Tags"),
        Some(&Value::Array(vec![
            Value::Text("a b".into()),
            Value::Null,
            Value::Text("c".into())
        ]))
    );
    assert_eq!(rows[1].get("Tags"), Some(&Value::Array(vec![])));
    assert_eq!(
        rows[0].get("Meta"),
        Some(&expect("Meta", r#"{"k": [1, 2.5]}"#))
    );
    assert_eq!(rows[1].get("Meta"), Some(&Value::Null));
    // The streaming iterator yields the same rows.
    // (Compared through Debug: NaN != NaN under PartialEq.)
    let streamed: Vec<_> = bag
        .table_iter("demo:Thing")
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(format!("{streamed:?}"), format!("{rows:?}"));
}

#[test]
fn first_row_per_rid_wins_across_files_of_one_table() {
    let tmp = tempfile::tempdir().unwrap();
    let a =
        format!("RID,RCT,RMT,RCB,RMB,Name\n1-T001,{TS},{TS},,,first\n1-T002,{TS},{TS},,,only\n");
    let b =
        format!("RID,RCT,RMT,RCB,RMB,Name\n1-T001,{TS},{TS},,,second\n1-T003,{TS},{TS},,,third\n");
    // Format A: data/demo/Dataset_Thing/Thing.csv sorts before data/demo/Thing.csv.
    let path = typed_bag(
        tmp.path(),
        &[
            ("data/demo/Dataset_Thing/Thing.csv", &a),
            ("data/demo/Thing.csv", &b),
        ],
    );
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    let rows = bag.get_table("Thing").unwrap();
    let names: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.text("RID").unwrap().to_string(),
                r.text("Name").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("1-T001".to_string(), "first".to_string()),
            ("1-T002".to_string(), "only".to_string()),
            ("1-T003".to_string(), "third".to_string())
        ]
    );
}

#[test]
fn same_table_name_in_two_schemas_stays_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let ml = format!("RID,RCT,RMT,RCB,RMB,Name\n1-F001,{TS},{TS},,,ml-file\n");
    let demo =
        format!("RID,RCT,RMT,RCB,RMB,Name\n1-F002,{TS},{TS},,,demo-file\n1-F003,{TS},{TS},,,x\n");
    let path = typed_bag(
        tmp.path(),
        &[
            ("data/deriva-ml/File.csv", &ml),
            ("data/demo/File.csv", &demo),
        ],
    );
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    assert_eq!(
        bag.row_count(&TableName::new("deriva-ml", "File")).unwrap(),
        1
    );
    assert_eq!(bag.row_count(&TableName::new("demo", "File")).unwrap(), 2);
    assert_eq!(
        bag.get_table("deriva-ml:File").unwrap()[0].text("Name"),
        Some("ml-file")
    );
    let err = bag.get_table("File").unwrap_err();
    assert!(err.to_string().contains("ambiguous"), "{err}");
    // A table with no CSV has zero rows.
    assert_eq!(bag.row_count(&TableName::new("demo", "Thing")).unwrap(), 0);
    assert!(bag.get_table("demo:Thing").unwrap().is_empty());
}

#[test]
fn root_version_uses_pep440_order_and_list_tables_is_sorted() {
    let tmp = tempfile::tempdir().unwrap();
    let path = typed_bag(tmp.path(), &[]);
    let bag = DatasetBag::open_with(&path, &options(tmp.path())).unwrap();
    assert_eq!(bag.rid().as_str(), "1-R000");
    assert_eq!(bag.version(), Some("0.4.0.post1.dev3"));
    let tables: Vec<String> = bag.list_tables().iter().map(|t| t.to_string()).collect();
    assert_eq!(
        tables,
        [
            "demo:Dataset_Thing",
            "demo:File",
            "demo:Thing",
            "deriva-ml:Dataset",
            "deriva-ml:Dataset_Dataset",
            "deriva-ml:Dataset_Version",
            "deriva-ml:File"
        ]
    );
}

#[test]
fn archives_open_like_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let g = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    let zip = tmp.path().join("Dataset_1-D000.zip");
    deriva_bag_core::archive_write::write_zip(&g.path, &zip).unwrap();
    let bag = DatasetBag::open_with(&zip, &options(tmp.path())).unwrap();
    assert_eq!(bag.rid().as_str(), "1-D000");
    assert!(bag
        .path()
        .starts_with(tmp.path().join("cache").join("extracted")));
    assert_eq!(bag.row_count(&TableName::new("demo", "Image")).unwrap(), 6);
}

#[test]
fn write_operations_are_read_only_errors() {
    let (_tmp, _g, bag) = small(fixtures::Layout::FormatB, false);
    for err in [
        bag.add_dataset_members(&["1-I001".into()]).unwrap_err(),
        bag.increment_version().unwrap_err(),
        bag.upload_assets().unwrap_err(),
    ] {
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        assert!(err.to_string().contains("Execution"), "{err}");
    }
}

#[test]
fn larger_fixture_row_counts_match_the_generator_and_streaming_crosses_pages() {
    let (_tmp, generated, bag) = open_fixture(&FixtureSpec {
        images: 600,
        materialized: false,
        ..FixtureSpec::default()
    });
    for (name, count) in &generated.row_counts {
        let table = bag.resolve_table(name).unwrap();
        assert_eq!(bag.row_count(&table).unwrap(), *count as u64, "{name}");
    }
    // 600 images span two 512-row pages of the streaming iterator.
    let all = bag.get_table("demo:Image").unwrap();
    assert_eq!(all.len(), 600);
    let streamed: Vec<_> = bag
        .table_iter("demo:Image")
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(streamed, all);
    let rids: Vec<_> = all.iter().map(|r| r.rid().unwrap()).collect();
    let mut sorted = rids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(rids, sorted);
}

#[test]
fn tag_files_are_parsed_on_first_use_so_a_bad_manifest_line_surfaces_from_bagit() {
    let tmp = tempfile::tempdir().unwrap();
    let g = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    let manifest = g.path.join("manifest-md5.txt");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("not-a-digest  data/extra.txt\n");
    std::fs::write(&manifest, text).unwrap();
    let opts = OpenOptions {
        cache_dir: Some(tmp.path().join("cache")),
        ..OpenOptions::default()
    };
    // Opening hashes the raw manifest bytes for the cache key and needs nothing else from them.
    let bag = DatasetBag::open_with(&g.path, &opts).unwrap();
    assert_eq!(bag.rid().as_str(), "1-D000");
    let err = bag.bagit().unwrap_err();
    assert!(
        matches!(err, Error::TagFile { ref path, line, .. } if *path == manifest && line == text_lines(&manifest)),
        "{err}"
    );
    assert!(matches!(
        bag.validate(deriva_bag_core::bagit::ValidationMode::Fast),
        Err(Error::TagFile { .. })
    ));
    assert!(!bag.is_materialized());
}

#[test]
fn a_bag_without_a_payload_manifest_is_still_not_a_bag_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let g = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    for name in ["manifest-md5.txt", "manifest-sha256.txt"] {
        let _ = std::fs::remove_file(g.path.join(name));
    }
    let opts = OpenOptions {
        cache_dir: Some(tmp.path().join("cache")),
        ..OpenOptions::default()
    };
    let err = DatasetBag::open_with(&g.path, &opts).unwrap_err();
    assert!(
        matches!(err, Error::NotABag { ref detail, .. } if detail == "no manifest-md5.txt or manifest-sha256.txt"),
        "{err}"
    );
}

/// Number of lines of a text file.
fn text_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}
