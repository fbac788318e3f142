//! Layouts that need a small edit of the fixture bag: a Subject-level feature reached through
//! `Image.Subject`, and two images with one file name.

mod common;

use std::fs;

use common::{edited, paths, small, tree};
use deriva_bag_core::features::{
    resolve_targets, Missing, Rid, TableName, TargetKind, TargetValue, Targets,
};
use deriva_bag_restructure::{restructure_assets, Error, RestructureOptions, Selector};

/// Adds feature `Diagnosis` on `demo:Subject` (terms from the Glaucoma vocabulary): S001 Mild,
/// S003 Severe, S002 unlabeled.
fn with_subject_feature() -> common::Fixture {
    edited(|generated| {
        let data = generated.path.join("data");
        let schema_path = data.join("schema.json");
        let mut schema: serde_json::Value =
            serde_json::from_slice(&fs::read(&schema_path).unwrap()).unwrap();
        let tables = schema["schemas"]["demo"]["tables"].as_object_mut().unwrap();
        let text = serde_json::to_string(&tables["Execution_Image_Glaucoma"])
            .unwrap()
            .replace("Execution_Image_Glaucoma", "Execution_Subject_Diagnosis")
            .replace("\"Image\"", "\"Subject\"")
            .replace(
                "Execution_Subject_Diagnosis_Image_fkey",
                "Execution_Subject_Diagnosis_Subject_fkey",
            )
            .replace("\"default\":\"Glaucoma\"", "\"default\":\"Diagnosis\"")
            .replace("Feature Glaucoma of Image", "Feature Diagnosis of Subject");
        let table: serde_json::Value = serde_json::from_str(&text).unwrap();
        tables.insert("Execution_Subject_Diagnosis".into(), table);
        fs::write(&schema_path, serde_json::to_vec_pretty(&schema).unwrap()).unwrap();
        let who = "https://auth.globus.org/0b6e8a3c-4d1f-4e2a-9c55-7d1c2f0e9a11";
        let rows = [
            (
                "1-F001",
                "2026-05-28 12:00:00+00",
                "1-E001",
                "1-S001",
                "Mild",
            ),
            (
                "1-F002",
                "2026-05-28 12:00:00+00",
                "1-E001",
                "1-S003",
                "Severe",
            ),
        ];
        let mut csv = String::from("RID,RCT,RMT,RCB,RMB,Execution,Subject,Feature_Name,Glaucoma\n");
        for (rid, rct, exe, subject, term) in rows {
            csv.push_str(&format!(
                "{rid},{rct},{rct},{who},{who},{exe},{subject},Diagnosis,{term}\n"
            ));
        }
        fs::write(data.join("demo/Execution_Subject_Diagnosis.csv"), csv).unwrap();
    })
}

#[test]
fn subject_feature_is_a_target_for_images_through_the_subject_fk() {
    let fx = with_subject_feature();
    let opts = RestructureOptions::new().targets(Targets::names(["Diagnosis"]));
    restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    assert_eq!(
        tree(&fx.out()),
        paths(&[
            "testing/Severe/retina%005.jpg",
            "testing/Severe/retina_006.jpg",
            "testing/unknown/retina_004.png",
            "testing/unknown/rétine_003.png",
            "training/Mild/retina 002.jpg",
            "training/Mild/retina_001.jpg",
            "training/Severe/retina%005.jpg",
        ])
    );
}

#[test]
fn resolve_targets_classifies_column_feature_and_feature_via_fk() {
    let fx = with_subject_feature();
    let image = TableName::new("demo", "Image");
    let rows = fx.bag.reachable_rows(&image).unwrap();
    let targets = Targets::names(["Subject", "Diagnosis"]).with("Glaucoma", Selector::Newest);
    let res = resolve_targets(&fx.bag, &image, &rows, &targets, Missing::Skip, true).unwrap();
    assert!(matches!(&res.targets[0].kind, TargetKind::Column(c) if c == "Subject"));
    assert!(
        matches!(&res.targets[1].kind, TargetKind::FeatureViaFk { fk_column, feature } if fk_column == "Subject" && feature.target_table == TableName::new("demo", "Subject"))
    );
    assert!(matches!(&res.targets[2].kind, TargetKind::Feature(f) if f.name == "Glaucoma"));
    // Skip drops I003/I004 (no Diagnosis for S002; no Glaucoma for I004).
    let kept: Vec<&str> = res.elements.iter().map(|e| e.rid.as_str()).collect();
    assert_eq!(kept, ["1-I001", "1-I002", "1-I005", "1-I006"]);
    let i005 = res.values_for(&Rid::new("1-I005")).unwrap();
    let labels: Vec<String> = res
        .targets
        .iter()
        .zip(i005)
        .map(|(t, v)| t.default_label(v.as_ref().unwrap()).unwrap())
        .collect();
    assert_eq!(labels, ["1-S003", "Severe", "Severe"]);
    match &i005[1] {
        Some(TargetValue::Feature(r)) => assert_eq!(r.rid.as_ref().unwrap().as_str(), "1-F002"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn resolve_targets_unknown_keeps_every_element_with_none_for_missing() {
    let fx = small();
    let image = TableName::new("demo", "Image");
    let rows = fx.bag.reachable_rows(&image).unwrap();
    let targets = Targets::new().with("Glaucoma", Selector::Newest);
    let res = resolve_targets(&fx.bag, &image, &rows, &targets, Missing::Unknown, false).unwrap();
    assert_eq!(res.elements.len(), 6);
    let missing: Vec<&str> = res
        .elements
        .iter()
        .filter(|e| e.has_missing())
        .map(|e| e.rid.as_str())
        .collect();
    assert_eq!(missing, ["1-I004"]);
}

#[test]
fn same_file_name_in_one_directory_gets_the_rid_suffix() {
    // I002's file is renamed to I001's name; both are Training images.
    let fx = edited(|generated| {
        let i002 = generated
            .assets
            .iter_mut()
            .find(|a| a.rid.as_str() == "1-I002")
            .unwrap();
        let old = generated.path.join(&i002.bag_path);
        i002.bag_path = "data/asset/1-I002/Image/retina_001.jpg".into();
        fs::rename(&old, generated.path.join(&i002.bag_path)).unwrap();
    });
    let manifest = restructure_assets(&fx.bag, &fx.out(), &RestructureOptions::new()).unwrap();
    assert_eq!(
        tree(&fx.out()),
        paths(&[
            "testing/retina%005.jpg",
            "testing/retina_004.png",
            "testing/retina_006.jpg",
            "testing/rétine_003.png",
            "training/retina%005.jpg",
            "training/retina_001.jpg",
            "training/retina_001_1-I002.jpg",
        ])
    );
    let kept = fs::read_link(fx.out().join("training/retina_001.jpg")).unwrap();
    assert!(
        kept.to_string_lossy().contains("1-I001"),
        "smaller RID keeps the name"
    );
    let renamed = fs::read_link(fx.out().join("training/retina_001_1-I002.jpg")).unwrap();
    assert!(renamed.to_string_lossy().contains("1-I002"));
    assert_eq!(manifest.len(), 7);
}

#[test]
fn auto_detection_fails_when_two_asset_tables_have_members() {
    // A second asset table `demo:Scan` (a copy of Image) with one member of D001.
    let fx = edited(|generated| {
        let data = generated.path.join("data");
        let schema_path = data.join("schema.json");
        let mut schema: serde_json::Value =
            serde_json::from_slice(&fs::read(&schema_path).unwrap()).unwrap();
        let tables = schema["schemas"]["demo"]["tables"].as_object_mut().unwrap();
        for (from, to) in [("Image", "Scan"), ("Dataset_Image", "Dataset_Scan")] {
            let text = serde_json::to_string(&tables[from])
                .unwrap()
                .replace("Image", "Scan");
            tables.insert(to.into(), serde_json::from_str(&text).unwrap());
        }
        fs::write(&schema_path, serde_json::to_vec_pretty(&schema).unwrap()).unwrap();
        let who = "https://auth.globus.org/0b6e8a3c-4d1f-4e2a-9c55-7d1c2f0e9a11";
        let t = "2026-05-28 12:00:00+00";
        fs::write(
            data.join("demo/Scan.csv"),
            format!(
                "RID,RCT,RMT,RCB,RMB,URL,Filename,Description,Length,MD5,Subject\n\
                 1-SC01,{t},{t},{who},{who},/hatrac/Scan/scan.png:1,scan.png,,5,5d41402abc4b2a76b9719d911017c592,1-S001\n"
            ),
        )
        .unwrap();
        fs::write(
            data.join("demo/Dataset_Scan.csv"),
            format!("RID,RCT,RMT,RCB,RMB,Dataset,Scan\n1-DS01,{t},{t},{who},{who},1-D001,1-SC01\n"),
        )
        .unwrap();
    });
    let err = restructure_assets(&fx.bag, &fx.out(), &RestructureOptions::new()).unwrap_err();
    match &err {
        Error::AmbiguousAssetTable { tables } => {
            let mut tables = tables.clone();
            tables.sort();
            assert_eq!(tables, ["demo:Image", "demo:Scan"]);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!fx.out().exists());
    // Naming the table resolves it.
    let manifest = restructure_assets(
        &fx.bag,
        &fx.out(),
        &RestructureOptions::new().asset_table("Image"),
    )
    .unwrap();
    assert_eq!(manifest.len(), 7);
}
