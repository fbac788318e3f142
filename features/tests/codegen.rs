//! The generated record structs compile and build validated records
//! (`features/tests/generated/demo_features.rs` is `codegen::feature_structs` of the demo model;
//! a unit test in `codegen.rs` keeps it current).

#[path = "generated/demo_features.rs"]
mod demo_features;

use std::collections::{BTreeMap, BTreeSet};

use demo_features::{ImageFeatureBoundingBox, ImageFeatureGlaucoma, SubjectFeatureChartLabel};
use deriva_bag_features::{lookup_feature, testing, Error, TableName};

fn vocab() -> BTreeMap<TableName, BTreeSet<String>> {
    let set = |terms: &[&str]| terms.iter().map(|t| t.to_string()).collect();
    BTreeMap::from([
        (
            TableName::new("demo", "Glaucoma"),
            set(&["Normal", "Mild", "Moderate", "Severe"]),
        ),
        (
            TableName::new("demo", "Condition"),
            set(&["Healthy", "Sick"]),
        ),
        (
            TableName::new("demo", "Image_Side"),
            set(&["Left", "Right"]),
        ),
    ])
}

#[test]
fn generated_struct_builds_a_validated_record() {
    let model = testing::demo_model().unwrap();
    let feature = lookup_feature(&model, "demo:Image", ImageFeatureGlaucoma::NAME).unwrap();
    assert_eq!(feature.feature_table.table, ImageFeatureGlaucoma::TABLE);
    let label = ImageFeatureGlaucoma {
        image: "1-I001".into(),
        glaucoma: "Mild".into(),
    };
    let record = label.to_record(&feature, &vocab()).unwrap();
    assert_eq!(record.target(), Some("1-I001"));
    assert_eq!(record.text("Glaucoma"), Some("Mild"));
    assert_eq!(
        serde_json::to_string(&label).unwrap(),
        r#"{"Image":"1-I001","Glaucoma":"Mild"}"#
    );

    let bad = ImageFeatureGlaucoma {
        glaucoma: "Glaucous".into(),
        ..label
    };
    assert!(matches!(
        bad.to_record(&feature, &vocab()),
        Err(Error::UnknownTerm { value, .. }) if value == "Glaucous"
    ));
}

#[test]
fn generated_struct_types_follow_the_column_types() {
    let model = testing::demo_model().unwrap();
    let feature = lookup_feature(&model, "demo:Image", "BoundingBox").unwrap();
    let value = ImageFeatureBoundingBox {
        image: "1-I002".into(),
        r#box: "/tmp/box.json".into(),
        score: Some(0.75),
        count: Some(3),
        checked: None,
    };
    let record = value.to_record(&feature, &vocab()).unwrap();
    assert_eq!(record.get("Score"), Some(&serde_json::json!(0.75)));
    assert_eq!(record.get("Count"), Some(&serde_json::json!(3)));
    assert_eq!(record.get("Checked"), Some(&serde_json::Value::Null));

    let qualified = lookup_feature(&model, "demo:Subject", "Chart_Label").unwrap();
    let eye = SubjectFeatureChartLabel {
        subject: "1-S001".into(),
        condition: "Sick".into(),
        image_side: "Left".into(),
        note: None,
    };
    assert!(eye.to_record(&qualified, &vocab()).is_ok());
}
