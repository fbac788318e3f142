//! The dataset report on fixture bags: label balance per split, agreement, and exactly the
//! leakage the fixture options plant (one Subject across Training and Testing, one image
//! file under two RIDs), computed by hand from the small bag (notes: fixture-oracle).

mod common;

use deriva_bag_core::features::Selector;
use deriva_bag_core::fixtures::FixtureSpec;
use deriva_bag_core::report::{FeatureReport, Report, ReportOptions};
use serde_json::{json, Value};

fn report_of(
    spec: &FixtureSpec,
    options: &ReportOptions,
) -> (Report, deriva_bag_core::fixtures::GeneratedBag) {
    let (_tmp, generated, bag) = common::open_fixture(spec);
    (bag.report(options).unwrap(), generated)
}

fn small_report() -> Report {
    report_of(&FixtureSpec::default(), &ReportOptions::default()).0
}

/// The Glaucoma feature's section (other features of the fixture may be listed beside it).
fn glaucoma(report: &Report) -> &FeatureReport {
    report
        .features
        .iter()
        .find(|f| f.feature == "Glaucoma")
        .unwrap()
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

#[test]
fn splits_are_the_child_datasets_named_by_type_with_their_member_counts() {
    let report = small_report();
    assert_eq!(report.dataset.rid.as_str(), "1-D000");
    assert_eq!(report.selector, "newest");
    assert_eq!(
        to_json(&report.splits),
        json!([
            {"rid": "1-D001", "name": "Training", "types": ["Training"],
             "members": {"demo:Image": 3, "demo:Subject": 1}},
            {"rid": "1-D002", "name": "Testing", "types": ["Testing"],
             "members": {"demo:Image": 3, "demo:Subject": 1}},
            {"rid": "1-D003", "name": "1-D003", "types": [],
             "members": {"demo:Subject": 1}},
        ])
    );
}

#[test]
fn a_dataset_without_children_is_its_own_single_split() {
    let (_tmp, _generated, bag) = common::open_fixture(&FixtureSpec::default());
    let training = bag.dataset(&"1-D001".into()).unwrap();
    let report = training.report(&ReportOptions::default()).unwrap();
    let rids: Vec<&str> = report.splits.iter().map(|s| s.rid.as_str()).collect();
    assert_eq!(rids, ["1-D001"]);
    assert!(report.leakage.members.is_empty());
}

/// Training reaches I001, I002, I005; Testing I003, I004, I005; 1-D003 (through Subject
/// S003) I005 and I006. Newest labels: I001 Severe (17:00 UTC beats 16:54), I002 Mild,
/// I003 Moderate (same RCT as Normal, greater row RID), I004 none, I005 Severe, I006 Normal.
#[test]
fn label_balance_counts_newest_labels_unlabeled_and_disagreeing_targets_per_split() {
    let report = small_report();
    let glaucoma = glaucoma(&report);
    assert_eq!(
        (glaucoma.table.as_str(), glaucoma.feature.as_str()),
        ("demo:Image", "Glaucoma")
    );
    assert_eq!(glaucoma.label_column, "Glaucoma");
    assert_eq!(glaucoma.labels, ["Mild", "Moderate", "Normal", "Severe"]);
    assert_eq!(
        to_json(&glaucoma.splits),
        json!([
            {"split": "1-D001", "targets": 3, "labels": {"Mild": 1, "Severe": 2}, "unlabeled": 0,
             "annotated": 3, "several": 2, "disagreeing": 2, "disagreement_share": 1.0},
            {"split": "1-D002", "targets": 3, "labels": {"Moderate": 1, "Severe": 1}, "unlabeled": 1,
             "annotated": 2, "several": 2, "disagreeing": 2, "disagreement_share": 1.0},
            {"split": "1-D003", "targets": 2, "labels": {"Normal": 1, "Severe": 1}, "unlabeled": 0,
             "annotated": 2, "several": 1, "disagreeing": 1, "disagreement_share": 1.0},
        ])
    );
}

/// Majority vote: I005 is Mild (2 of 3); I001's tie goes to the newest (Severe).
#[test]
fn label_balance_follows_the_majority_selector() {
    let options = ReportOptions {
        selector: Selector::majority_vote(None),
        ..ReportOptions::default()
    };
    let (report, _) = report_of(&FixtureSpec::default(), &options);
    assert_eq!(report.selector, "majority");
    let training = &glaucoma(&report).splits[0];
    assert_eq!(to_json(&training.labels), json!({"Mild": 2, "Severe": 1}));
}

/// By hand (see `report::agreement`): I001 Normal/Severe, I003 Normal/Moderate, I005
/// Mild/Severe/Mild. P̄ = (0 + 0 + 1/3) / 3 = 1/9; label shares (2, 1, 2, 2) / 7 give
/// P̄e = 13/49; κ = (1/9 − 13/49) / (1 − 13/49) = −17/81.
#[test]
fn agreement_has_the_hand_computed_fleiss_kappa_of_the_small_bag() {
    let report = small_report();
    let a = &glaucoma(&report).agreement;
    assert_eq!((a.targets, a.ratings, a.raters), (3, 7, 3));
    assert!((a.percent_agreement.unwrap() - 1.0 / 9.0).abs() < 1e-12);
    assert!((a.fleiss_kappa.unwrap() + 17.0 / 81.0).abs() < 1e-12);
    assert_eq!(a.labels, ["Mild", "Moderate", "Normal", "Severe"]);
    assert_eq!(
        a.matrix,
        [[2, 0, 0, 2], [0, 0, 1, 0], [0, 1, 0, 1], [2, 0, 1, 0]]
    );
}

#[test]
fn the_small_bag_leaks_only_image_i005_which_is_in_training_and_testing() {
    let report = small_report();
    assert_eq!(
        to_json(&report.leakage),
        json!({
            "members": [{"table": "demo:Image", "rid": "1-I005", "splits": ["1-D001", "1-D002"]}],
            "parents": [],
            "duplicate_content": [],
        })
    );
    assert_eq!(
        to_json(&report.assets),
        json!({"rows": {"demo:Image": 6}, "present": 6, "missing": [], "without_file": []})
    );
}

#[test]
fn a_planted_subject_across_training_and_testing_is_found_and_nothing_else() {
    let spec = FixtureSpec {
        leak_subject: true,
        ..FixtureSpec::default()
    };
    let (report, _) = report_of(&spec, &ReportOptions::default());
    assert_eq!(
        to_json(&report.leakage.parents),
        json!([{
            "table": "demo:Subject", "rid": "1-S001", "via": "demo:Image.Subject",
            "splits": [
                {"split": "1-D001", "members": ["1-I001", "1-I002"]},
                {"split": "1-D002", "members": ["1-I004"]},
            ],
        }])
    );
    assert_eq!(
        report.leakage.members.len(),
        1,
        "only the small bag's own 1-I005"
    );
    assert!(report.leakage.duplicate_content.is_empty());
}

#[test]
fn a_planted_duplicate_image_under_two_rids_is_found_by_its_manifest_checksum() {
    let spec = FixtureSpec {
        duplicate_image: true,
        ..FixtureSpec::default()
    };
    let (report, generated) = report_of(&spec, &ReportOptions::default());
    let md5 = &generated.asset("1-I001").unwrap().md5;
    assert_eq!(&generated.asset("1-I004").unwrap().md5, md5);
    assert_eq!(
        to_json(&report.leakage.duplicate_content),
        json!([{
            "table": "demo:Image", "digest": format!("md5:{md5}"),
            "splits": [
                {"split": "1-D001", "members": ["1-I001"]},
                {"split": "1-D002", "members": ["1-I004"]},
            ],
        }])
    );
    assert!(report.leakage.parents.is_empty());
    assert_eq!(
        report.leakage.members.len(),
        1,
        "only the small bag's own 1-I005"
    );
}

#[test]
fn both_planted_leaks_are_found_together() {
    let spec = FixtureSpec {
        leak_subject: true,
        duplicate_image: true,
        ..FixtureSpec::default()
    };
    let (report, _) = report_of(&spec, &ReportOptions::default());
    let l = &report.leakage;
    let parents: Vec<&str> = l.parents.iter().map(|p| p.rid.as_str()).collect();
    assert_eq!(parents, ["1-S001"]);
    assert_eq!(l.duplicate_content.len(), 1);
    assert_eq!(
        l.duplicate_content[0].splits[1].members[0].as_str(),
        "1-I004"
    );
}

/// Without asset files the manifests still know the content: the duplicate is found, and
/// every image is reported missing with the path it belongs at.
#[test]
fn an_unmaterialized_bag_reports_every_file_missing_and_still_finds_duplicates() {
    let spec = FixtureSpec {
        materialized: false,
        duplicate_image: true,
        ..FixtureSpec::default()
    };
    let (report, generated) = report_of(&spec, &ReportOptions::default());
    assert_eq!(report.assets.present, 0);
    let missing: Vec<(String, String)> = report
        .assets
        .missing
        .iter()
        .map(|m| (m.rid.to_string(), m.path.clone()))
        .collect();
    let expected: Vec<(String, String)> = generated
        .assets
        .iter()
        .map(|a| (a.rid.to_string(), a.bag_path.clone()))
        .collect();
    assert_eq!(missing, expected);
    assert_eq!(report.leakage.duplicate_content.len(), 1);
}

#[test]
fn the_report_serializes_with_every_section() {
    let value = to_json(&small_report());
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "dataset",
            "selector",
            "splits",
            "features",
            "skipped_features",
            "leakage",
            "assets"
        ]
    );
}
