//! Features of the small fixture bag (`FixtureSpec::default()`): discovery, dataset-scoped
//! values, selectors, workflows, and offline records validated against the bag's vocabulary.
//! Every test runs on each CSV layout the reader accepts.

mod common;

use common::*;
use deriva_bag_core::features::{
    records_share_feature, DatasetLike, Error as FError, FeatureRecord, Selector, TableName,
    TermCache,
};
use deriva_bag_core::fixtures::Layout;
use deriva_bag_core::{DatasetBag, Error};

const LAYOUTS: [Layout; 3] = [Layout::FormatB, Layout::FormatA, Layout::Legacy];

/// Runs `check` on the small bag in every layout (metadata-only: features need no assets).
fn each_layout(check: impl Fn(Layout, &DatasetBag)) {
    for layout in LAYOUTS {
        let (_tmp, _generated, bag) = small(layout, false);
        check(layout, &bag);
    }
}

fn row_rids(records: &[FeatureRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.rid.as_ref().map(|r| r.to_string()).unwrap_or_default())
        .collect()
}

fn picks(records: &[FeatureRecord]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r.target().unwrap_or_default().to_string(),
                r.text("Glaucoma").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn find_features_on_image_is_exactly_glaucoma_with_one_term_column() {
    each_layout(|layout, bag| {
        let features = bag.find_features(Some("Image")).unwrap();
        assert_eq!(features.len(), 1, "{layout:?}");
        let g = &features[0];
        assert_eq!(g.name, "Glaucoma");
        assert_eq!(
            g.feature_table,
            TableName::new("demo", "Execution_Image_Glaucoma")
        );
        assert_eq!(g.target_table, TableName::new("demo", "Image"));
        assert_eq!(g.term_columns(), ["Glaucoma"]);
        assert!(g.asset_columns().is_empty());
        assert!(g.value_columns().is_empty());
        assert!(g.qualifier_columns.is_empty());
        // The whole model has it and the Measurement feature, each found once.
        let all = bag.find_features(None).unwrap();
        let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Glaucoma", "IOP_Reading"], "{layout:?}");
        assert_eq!(all[0], features[0], "{layout:?}");
        assert!(bag.find_features(Some("Subject")).unwrap().is_empty());
    });
}

#[test]
fn iop_reading_is_a_float_feature_without_a_vocabulary_in_every_layout() {
    each_layout(|layout, bag| {
        let features = bag.find_features(Some("Measurement")).unwrap();
        assert_eq!(features.len(), 1, "{layout:?}");
        let iop = &features[0];
        assert_eq!(iop.name, "IOP_Reading");
        assert_eq!(
            iop.feature_table,
            TableName::new("demo", "Execution_Measurement_IOP_Reading")
        );
        assert!(iop.term_columns().is_empty(), "no vocabulary");
        assert_eq!(iop.value_columns(), ["IOP_Value"]);
        assert_eq!(iop.columns[0].ty.typename, "float8");

        let records = bag
            .feature_values("Measurement", "IOP_Reading", None)
            .unwrap();
        let got: Vec<(String, String, f64)> = records
            .iter()
            .map(|r| {
                (
                    r.rid.as_ref().unwrap().to_string(),
                    r.target().unwrap().to_string(),
                    r.get("IOP_Value").and_then(|v| v.as_f64()).unwrap(),
                )
            })
            .collect();
        let expected = [
            ("1-P001", "1-M001", 15.5),
            ("1-P002", "1-M002", 16.0),
            ("1-P003", "1-M003", 21.5),
            ("1-P004", "1-M003", 23.0),
            ("1-P005", "1-M004", 14.0),
            ("1-P006", "1-M005", 18.25),
            ("1-P007", "1-M005", 18.25),
        ]
        .map(|(p, m, v)| (p.to_string(), m.to_string(), v));
        assert_eq!(got, expected, "{layout:?}");
        let measurements = bag.get_table("demo:Measurement").unwrap();
        assert_eq!(measurements.len(), 6, "{layout:?}");
    });
}

#[test]
fn feature_values_of_the_root_are_all_nine_in_target_rct_rid_order() {
    each_layout(|layout, bag| {
        let records = bag.feature_values("Image", "Glaucoma", None).unwrap();
        // 1-A002 (10:00-07 = 17:00 UTC) follows 1-A001 (16:54 UTC) although its text is
        // smaller; 1-A008 (09:00) precedes 1-A007 (12:00).
        assert_eq!(
            row_rids(&records),
            [
                "1-A001", "1-A002", "1-A003", "1-A004", "1-A005", "1-A006", "1-A008", "1-A007",
                "1-A009"
            ],
            "{layout:?}"
        );
        let a002 = &records[1];
        assert_eq!(a002.rct(), Some("2026-05-28 10:00:00-07"));
        assert_eq!(a002.execution(), Some("1-E002"));
        assert_eq!(a002.text("Feature_Name"), Some("Glaucoma"));
        assert_eq!(a002.target(), Some("1-I001"));
        assert_eq!(a002.text("Glaucoma"), Some("Severe"));
        let keys: Vec<&str> = a002.fields.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["Execution", "Feature_Name", "RCT", "Glaucoma", "Image"]
        );
    });
}

#[test]
fn feature_values_are_scoped_to_the_dataset_and_its_reachable_targets() {
    each_layout(|layout, bag| {
        let scope = |rid: &str| {
            let ds = bag.dataset(&rid.into()).unwrap();
            row_rids(&ds.feature_values("Image", "Glaucoma", None).unwrap())
        };
        // D001 members I001, I002, I005.
        assert_eq!(
            scope("1-D001"),
            ["1-A001", "1-A002", "1-A003", "1-A006", "1-A008", "1-A007"],
            "{layout:?}"
        );
        // D002 members I003, I004 (unlabelled), I005.
        assert_eq!(
            scope("1-D002"),
            ["1-A004", "1-A005", "1-A006", "1-A008", "1-A007"],
            "{layout:?}"
        );
        // D003 has no Image members: I005 and I006 are reached through Subject S003.
        assert_eq!(
            scope("1-D003"),
            ["1-A006", "1-A008", "1-A007", "1-A009"],
            "{layout:?}"
        );
    });
}

#[test]
fn select_newest_picks_greatest_rct_instant_and_greatest_row_rid_on_ties() {
    each_layout(|layout, bag| {
        let out = bag
            .feature_values("Image", "Glaucoma", Some(&Selector::newest()))
            .unwrap();
        assert_eq!(
            picks(&out),
            pairs(&[
                ("1-I001", "Severe"),
                ("1-I002", "Mild"),
                ("1-I003", "Moderate"),
                ("1-I005", "Severe"),
                ("1-I006", "Normal"),
            ]),
            "{layout:?}"
        );
        assert_eq!(
            row_rids(&out),
            ["1-A002", "1-A003", "1-A005", "1-A007", "1-A009"]
        );
    });
}

#[test]
fn select_first_picks_smallest_rct_and_smallest_row_rid_on_ties() {
    each_layout(|layout, bag| {
        let out = bag
            .feature_values("Image", "Glaucoma", Some(&Selector::first()))
            .unwrap();
        assert_eq!(
            picks(&out),
            pairs(&[
                ("1-I001", "Normal"),
                ("1-I002", "Mild"),
                ("1-I003", "Normal"),
                ("1-I005", "Mild"),
                ("1-I006", "Normal"),
            ]),
            "{layout:?}"
        );
        assert_eq!(
            row_rids(&out),
            ["1-A001", "1-A003", "1-A004", "1-A006", "1-A009"]
        );
    });
}

#[test]
fn select_majority_vote_auto_detects_the_term_column_and_breaks_ties_by_newest() {
    each_layout(|layout, bag| {
        let out = bag
            .feature_values("Image", "Glaucoma", Some(&Selector::majority_vote(None)))
            .unwrap();
        assert_eq!(
            picks(&out),
            pairs(&[
                ("1-I001", "Severe"), // 1-1 tie → newest instant (1-A002)
                ("1-I002", "Mild"),
                ("1-I003", "Moderate"), // 1-1 tie, equal RCT → greater row RID 1-A005
                ("1-I005", "Mild"),     // 2 Mild vs 1 Severe, although Severe is newest
                ("1-I006", "Normal"),
            ]),
            "{layout:?}"
        );
        let named = bag
            .feature_values(
                "Image",
                "Glaucoma",
                Some(&Selector::majority_vote(Some("Glaucoma"))),
            )
            .unwrap();
        assert_eq!(named, out);
    });
}

#[test]
fn select_by_execution_and_by_workflow_filter_on_provenance() {
    each_layout(|layout, bag| {
        let e3 = bag
            .feature_values("Image", "Glaucoma", Some(&Selector::by_execution("1-E003")))
            .unwrap();
        assert_eq!(picks(&e3), pairs(&[("1-I005", "Mild")]), "{layout:?}");

        let executions = bag.list_workflow_executions("1-W001").unwrap();
        let executions: Vec<&str> = executions.iter().map(|r| r.as_str()).collect();
        assert_eq!(executions, ["1-E000", "1-E001", "1-E002", "1-E003"]);

        let by_workflow = Selector::select_by_workflow("1-W001", bag).unwrap();
        let out = bag
            .feature_values("Image", "Glaucoma", Some(&by_workflow))
            .unwrap();
        let newest = bag
            .feature_values("Image", "Glaucoma", Some(&Selector::newest()))
            .unwrap();
        assert_eq!(out, newest);
    });
}

#[test]
fn feature_rows_are_the_records_and_serialize_as_their_fields_under_every_selector() {
    // The custom selector takes the second record of a group when there is one: its choice
    // comes back through `Selectable::from_record`.
    let second = Selector::custom(|group| group.get(1).or(group.first()).cloned());
    let selectors = [
        None,
        Some(Selector::newest()),
        Some(Selector::first()),
        Some(Selector::majority_vote(None)),
        Some(Selector::by_execution("1-E002")),
        Some(second),
    ];
    each_layout(|layout, bag| {
        for selector in &selectors {
            let records = bag
                .feature_values("Image", "Glaucoma", selector.as_ref())
                .unwrap();
            let rows: Vec<_> = bag
                .feature_rows_iter("Image", "Glaucoma", selector.clone())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let json: Vec<String> = rows
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect();
            let fields: Vec<String> = records
                .iter()
                .map(|r| serde_json::to_string(&r.fields).unwrap())
                .collect();
            assert_eq!(json, fields, "{layout:?} {selector:?}");
            let rows: Vec<FeatureRecord> = rows.into_iter().map(|r| r.into_record()).collect();
            assert_eq!(rows, records, "{layout:?} {selector:?}");
        }
        // The custom pick: the second record of each target in (RCT instant, RID) order.
        let second = bag
            .feature_values("Image", "Glaucoma", selectors[5].as_ref())
            .unwrap();
        assert_eq!(
            row_rids(&second),
            ["1-A002", "1-A003", "1-A005", "1-A008", "1-A009"],
            "{layout:?}"
        );
    });
}

#[test]
fn unknown_workflow_is_an_error_naming_it_when_created() {
    each_layout(|layout, bag| {
        let err = Selector::select_by_workflow("Training_Run", bag).unwrap_err();
        match &err {
            FError::WorkflowNotFound { workflow, .. } => assert_eq!(workflow, "Training_Run"),
            other => panic!("{layout:?}: unexpected {other:?}"),
        }
        assert!(err.to_string().contains("\"Training_Run\""));
    });
}

#[test]
fn unknown_feature_and_table_errors_list_what_exists() {
    each_layout(|layout, bag| {
        match bag.feature_values("Image", "Glaucous", None).unwrap_err() {
            Error::Features(FError::FeatureNotFound { table, name, known }) => {
                assert_eq!(table, "demo:Image");
                assert_eq!(name, "Glaucous");
                assert_eq!(known, ["Glaucoma"]);
            }
            other => panic!("{layout:?}: unexpected {other:?}"),
        }
        match bag.lookup_feature("Imagez", "Glaucoma").unwrap_err() {
            Error::Features(FError::TableNotFound { name, known }) => {
                assert_eq!(name, "Imagez");
                assert!(known.contains(&"demo:Image".to_string()), "{known:?}");
            }
            other => panic!("{layout:?}: unexpected {other:?}"),
        }
        assert!(bag.find_features(Some("Imagez")).is_err());
    });
}

#[test]
fn offline_record_with_unknown_term_is_rejected_naming_the_allowed_terms() {
    each_layout(|layout, bag| {
        let feature = bag.lookup_feature("Image", "Glaucoma").unwrap();
        let err = feature
            .record_builder()
            .set("Image", "1-I001")
            .set("Glaucoma", "Glaucous")
            .build(bag)
            .unwrap_err();
        match &err {
            FError::UnknownTerm {
                feature,
                column,
                value,
                allowed,
                vocabulary,
            } => {
                assert_eq!(feature, "Glaucoma");
                assert_eq!(column, "Glaucoma");
                assert_eq!(vocabulary, "demo:Glaucoma");
                assert_eq!(value, "Glaucous");
                assert_eq!(allowed, &["Mild", "Moderate", "Normal", "Severe"]);
            }
            other => panic!("{layout:?}: unexpected {other:?}"),
        }
        assert!(err.to_string().contains("Mild, Moderate, Normal, Severe"));
    });
}

#[test]
fn offline_record_accepts_a_synonym_and_stores_its_term() {
    each_layout(|layout, bag| {
        let feature = bag.lookup_feature("Image", "Glaucoma").unwrap();
        for synonym in ["Advanced", "Late stage"] {
            let rec = feature
                .record_builder()
                .set("Image", "1-I004")
                .set("Glaucoma", synonym)
                .build(bag)
                .unwrap();
            assert_eq!(rec.text("Glaucoma"), Some("Severe"), "{layout:?}");
        }
    });
}

#[test]
fn offline_records_for_members_round_trip_through_json_and_share_one_feature() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let training = bag.dataset(&"1-D001".into()).unwrap();
    let members = training.list_dataset_members(false, None).unwrap();
    let images: Vec<String> = members[&TableName::new("demo", "Image")]
        .iter()
        .map(|r| r.rid().unwrap().to_string())
        .collect();
    assert_eq!(images, ["1-I001", "1-I002", "1-I005"]);

    let first = bag.lookup_feature("Image", "Glaucoma").unwrap();
    let second = bag.lookup_feature("demo:Image", "Glaucoma").unwrap();
    let vocab = TermCache::new(&bag);
    let mut pending = Vec::new();
    for (i, rid) in images.iter().enumerate() {
        let feature = if i % 2 == 0 { &first } else { &second };
        pending.push(
            feature
                .new_record()
                .set("Image", rid.as_str())
                .set("Glaucoma", "Normal")
                .build(&vocab)
                .unwrap(),
        );
    }
    assert!(pending
        .iter()
        .all(|r| r.execution().is_none() && r.rct().is_none()));
    // Records of two lookup_feature calls belong to one feature by identity key.
    let id = records_share_feature(&pending).unwrap();
    assert_eq!(id, first.id());
    assert_eq!(
        (id.schema.as_str(), id.table.as_str(), id.name.as_str()),
        ("demo", "Execution_Image_Glaucoma", "Glaucoma")
    );

    let json = serde_json::to_string(&pending).unwrap();
    let back: Vec<FeatureRecord> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, pending);

    // Records read from the bag carry the same feature identity.
    let read = bag.feature_values("Image", "Glaucoma", None).unwrap();
    let mut mixed = read;
    mixed.extend(pending);
    assert_eq!(records_share_feature(&mixed).unwrap(), first.id());
}

/// The generic consumers see the same features through the trait.
fn values_through_trait<D: DatasetLike>(ds: &D) -> Vec<FeatureRecord> {
    ds.feature_values("Image", "Glaucoma", Some(&Selector::newest()))
        .unwrap()
}

#[test]
fn dataset_like_serves_the_same_feature_values() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let direct = bag
        .feature_values("Image", "Glaucoma", Some(&Selector::newest()))
        .unwrap();
    assert_eq!(values_through_trait(&bag), direct);
    let d3 = bag.dataset(&"1-D003".into()).unwrap();
    assert_eq!(
        picks(&values_through_trait(&d3)),
        pairs(&[("1-I005", "Severe"), ("1-I006", "Normal")])
    );
    let via_trait = DatasetLike::lookup_feature(&bag, "Image", "Glaucoma").unwrap();
    assert_eq!(via_trait, bag.lookup_feature("Image", "Glaucoma").unwrap());
}

/// The small bag (Format B, metadata-only) with `data/<rel>` files written over, re-bagged.
fn patched_bag(files: &[(&str, String)]) -> (tempfile::TempDir, DatasetBag) {
    let tmp = tempfile::tempdir().unwrap();
    let generated = deriva_bag_core::fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    for (rel, text) in files {
        let path = generated.path.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    deriva_bag_core::bagit::write::BagWriter::new()
        .write(&generated.path)
        .unwrap();
    let bag = DatasetBag::open_with(&generated.path, &options(tmp.path())).unwrap();
    (tmp, bag)
}

fn header_of(bag_dir: &std::path::Path, rel: &str) -> String {
    let text = std::fs::read_to_string(bag_dir.join(rel)).unwrap();
    text.lines().next().unwrap().to_string()
}

#[test]
fn workflow_type_name_resolves_through_workflow_workflow_type_rows() {
    let rows = "RID,RCT,RMT,RCB,RMB,Workflow,Workflow_Type\n\
                1-X001,2026-05-28 16:54:02+00,2026-05-28 16:54:02+00,,,1-W001,Labelling\n";
    let (_tmp, bag) = patched_bag(&[(
        "data/deriva-ml/Workflow_Workflow_Type.csv",
        rows.to_string(),
    )]);
    let by_type = bag.list_workflow_executions("Labelling").unwrap();
    let by_rid = bag.list_workflow_executions("1-W001").unwrap();
    assert_eq!(by_type, by_rid);
    assert_eq!(
        by_type.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        ["1-E000", "1-E001", "1-E002", "1-E003"]
    );
    // With type rows present, an unknown name is an error without the "no rows" hint.
    let err = bag.list_workflow_executions("Segmentation").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no workflow resolved for \"Segmentation\": tried as a Workflow RID and as a Workflow_Type name"
    );
}

#[test]
fn bag_without_execution_rows_lists_no_executions_for_any_workflow() {
    let tmp = tempfile::tempdir().unwrap();
    let generated = deriva_bag_core::fixtures::small_bag(tmp.path()).unwrap();
    let header = header_of(&generated.path, "data/deriva-ml/Execution.csv");
    drop(tmp);
    let (_tmp, bag) = patched_bag(&[("data/deriva-ml/Execution.csv", format!("{header}\n"))]);
    assert!(bag.list_workflow_executions("1-W001").unwrap().is_empty());
    assert!(bag
        .list_workflow_executions("Labelling")
        .unwrap()
        .is_empty());
    // A selector built from an empty set keeps nothing.
    let sel = Selector::select_by_workflow("1-W001", &bag).unwrap();
    assert!(bag
        .feature_values("Image", "Glaucoma", Some(&sel))
        .unwrap()
        .is_empty());
}

#[test]
fn workflow_type_name_fails_offline_when_the_bag_lacks_type_rows() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let err = bag.list_workflow_executions("Labelling").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"Labelling\""), "{text}");
    assert!(text.contains("no Workflow_Workflow_Type rows"), "{text}");
}

/// The bag's streaming `DatasetLike` methods hand over the same records and rows, in the same
/// order, as the `Vec` methods (restructure consumes them one at a time).
#[test]
fn streamed_feature_values_and_reachable_rows_match_the_vec_methods() {
    each_layout(|layout, bag| {
        let mut streamed = Vec::new();
        DatasetLike::for_each_feature_value(bag, "Image", "Glaucoma", None, &mut |r| {
            streamed.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            row_rids(&streamed),
            [
                "1-A001", "1-A002", "1-A003", "1-A004", "1-A005", "1-A006", "1-A008", "1-A007",
                "1-A009"
            ],
            "{layout:?}"
        );
        let mut newest = Vec::new();
        let selector = Selector::newest();
        DatasetLike::for_each_feature_value(bag, "Image", "Glaucoma", Some(&selector), &mut |r| {
            newest.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            newest,
            bag.feature_values("Image", "Glaucoma", Some(&selector))
                .unwrap(),
            "{layout:?}"
        );
        let image = bag.model().resolve_table("Image").unwrap().name.clone();
        let mut rids = Vec::new();
        DatasetLike::for_each_reachable_row(bag, &image, &mut |row| {
            rids.push(row.rid().unwrap().to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            rids,
            ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"],
            "{layout:?}"
        );
    });
}
