//! The end-to-end demo (`examples/demo.rs`) as a test: every outcome checked exactly against
//! the small fixture bag (`FixtureSpec::default()`).

use std::collections::BTreeMap;

use deriva_test_catalog::demo::{run_demo, DemoSummary, NOT_A_TERM};

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn run(work: &std::path::Path) -> (DemoSummary, String) {
    let mut out = Vec::new();
    let summary = match run_demo(work, &mut out) {
        Ok(s) => s,
        Err(e) => panic!("demo failed: {e}\n{}", String::from_utf8_lossy(&out)),
    };
    (summary, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn demo_downloads_restructures_and_commits_the_unlabeled_images_grade() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("demo");
    let (s, text) = run(&work);

    // Download.
    assert_eq!(s.dataset, "1-D000");
    assert_eq!(s.version, "1.0.0");
    assert_eq!(s.dataset_types, vec!["Complete".to_string()]);
    assert!(s.downloaded_bag.ends_with("Dataset_1-D000"));
    assert!(s.downloaded_bag.starts_with(work.join("deriva-ml")));
    assert!(s
        .downloaded_bag
        .join("data/asset/1-I005/Image/retina%005.jpg")
        .is_file());
    assert_eq!(s.table_rows.get("demo:Image"), Some(&6));
    assert_eq!(s.table_rows.get("demo:Execution_Image_Glaucoma"), Some(&9));
    assert_eq!(s.table_rows.get("demo:Glaucoma"), Some(&4));

    // Members and labels.
    assert_eq!(s.members, counts(&[("Dataset", 3)]));
    // I005 is a member of both Training and Testing: listed twice, one distinct RID.
    assert_eq!(
        s.members_recursive,
        counts(&[("Dataset", 3), ("Image", 6), ("Subject", 3)])
    );
    assert_eq!(
        s.members_recursive_distinct,
        counts(&[("Dataset", 3), ("Image", 5), ("Subject", 3)])
    );
    assert_eq!(
        s.label_counts,
        counts(&[("Mild", 1), ("Moderate", 1), ("Normal", 1), ("Severe", 2)])
    );
    // The report page: I005 is in Training and Testing.
    assert_eq!(s.report, work.join("report.html"));
    let page = std::fs::read_to_string(&s.report).unwrap();
    assert!(page.contains(r#"data-key="leakage/members/demo:Image/1-I005""#));
    assert!(
        text.contains(&format!(
            "   report: {} (3 split(s), 1 image(s) in several splits)",
            s.report.display()
        )),
        "{text}"
    );

    // Restructure: I005 is under both training and testing; I006 only through Subject S003
    // of the untyped D003 (→ testing); I004 is unlabeled.
    assert_eq!(
        s.ml_data,
        std::path::absolute(work.join("ml_data")).unwrap()
    );
    assert_eq!(
        s.class_folders,
        counts(&[
            ("testing/Moderate", 1),
            ("testing/Normal", 1),
            ("testing/Severe", 1),
            ("testing/unknown", 1),
            ("training/Mild", 1),
            ("training/Severe", 2),
        ])
    );
    assert_eq!(s.placements, 7);
    assert!(
        text.contains("   warning: 1 asset(s) in more than one split (1-I005): a model tested on testing/ has seen them in training\n"),
        "{text}"
    );
    assert!(s.ml_data.join("training/Severe/retina_001.jpg").exists());
    assert!(s.ml_data.join("testing/unknown/retina_004.png").exists());
    // The live dataset restructures into the same layout, from the asset cache.
    assert!(s.live_manifest_equal);
    assert!(
        text.contains("the live dataset's manifest equals the bag's"),
        "{text}"
    );
    let live_file = s.ml_data_live.join("training/Severe/retina_001.jpg");
    assert!(std::fs::read_link(&live_file)
        .unwrap()
        .starts_with(work.join("deriva-ml/cache/assets")));

    // Offline records: the only unlabeled image gets the most frequent newest grade.
    assert_eq!(s.unlabeled, vec!["1-I004".to_string()]);
    assert_eq!(s.predicted_grade, "Severe");
    assert!(
        s.rejected_term_error.contains(NOT_A_TERM),
        "{}",
        s.rejected_term_error
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&s.records_file).unwrap()).unwrap();
    assert_eq!(saved.as_array().map(Vec::len), Some(1));
    assert_eq!(saved[0]["fields"]["Image"], "1-I004");
    assert_eq!(saved[0]["fields"]["Glaucoma"], "Severe");
    assert_eq!(saved[0]["fields"]["Execution"], serde_json::Value::Null);

    // Commit and verification.
    assert_eq!((s.staged, s.committed, s.recommitted), (1, 1, 0));
    assert_eq!(
        s.verified,
        vec![("1-I004".to_string(), "Severe".to_string())]
    );
    assert_eq!(s.execution_status, "Uploaded");
    assert!(!s.execution.is_empty());

    // The narration reports the same numbers, ending in OK.
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("OK: downloaded 1-D000 v1.0.0 (6 images), placed 7 files, committed 1 Glaucoma record(s) as execution "), "{last}");
    assert!(
        text.contains(&format!(
            "Image 1-I004 Glaucoma Severe Execution {}",
            s.execution
        )),
        "{text}"
    );
    // Provenance: the execution is linked to the version of the dataset it read (1-V000).
    assert!(
        text.contains(&format!(
            "execution {} read 1-D000 (version row 1-V000)",
            s.execution
        )),
        "{text}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["execution"], s.execution.as_str());
}

#[test]
fn demo_rerun_in_the_same_work_dir_starts_clean_and_leaves_other_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("demo");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("notes.txt"), b"mine").unwrap();
    let (first, _) = run(&work);
    let (second, _) = run(&work);
    assert_eq!(std::fs::read(work.join("notes.txt")).unwrap(), b"mine");
    // A fresh catalog each run: the same records, committed again by a new execution.
    assert_eq!(second.committed, 1);
    assert_eq!(second.verified, first.verified);
    assert_eq!(second.class_folders, first.class_folders);
}
