//! The class index restructure records in its manifest: every term of the target feature's
//! vocabulary as a folder name, sorted, as torchvision's `ImageFolder` indexes class folders.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{edited, image_folder_counts, small};
use deriva_bag_core::features::{ClassLabels, Rid};
use deriva_bag_restructure::{
    restructure_assets, Missing, RestructureOptions, Selector, TargetClasses, Targets,
};

fn newest() -> RestructureOptions {
    RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest))
}

fn idx(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(c, i)| (c.to_string(), *i)).collect()
}

#[test]
fn manifest_records_every_vocabulary_term_as_a_class_even_those_no_image_uses() {
    let fx = small();
    let out = fx.out();
    let manifest = restructure_assets(&fx.bag, &out, &newest()).unwrap();
    let grades = ["Mild", "Moderate", "Normal", "Severe"];
    assert_eq!(manifest.classes().unwrap(), grades);
    assert_eq!(
        manifest.class_to_idx().unwrap(),
        &idx(&[("Mild", 0), ("Moderate", 1), ("Normal", 2), ("Severe", 3)])
    );
    assert_eq!(
        manifest.target_classes(),
        [TargetClasses {
            target: "Glaucoma".into(),
            level: 0,
            classes: grades.map(String::from).to_vec(),
            class_to_idx: idx(&[("Mild", 0), ("Moderate", 1), ("Normal", 2), ("Severe", 3)]),
        }]
    );
    // The adapters' class labels for the same feature: the same classes, index for index.
    let labels = ClassLabels::of_feature(&fx.bag, "Image", "Glaucoma").unwrap();
    assert_eq!(labels.classes(), grades);

    // ImageFolder on training/ finds Mild and Severe only (its indices would be 0 and 1);
    // the recorded indices stay 0 and 3.
    let training = image_folder_counts(&out.join("training"));
    assert_eq!(training, idx(&[("Mild", 1), ("Severe", 2)]));
    let class_to_idx = manifest.class_to_idx().unwrap();
    let recorded: Vec<usize> = training.keys().map(|c| class_to_idx[c]).collect();
    assert_eq!(recorded, [0, 3]);
    // testing/ also holds `unknown` (I004 has no grade, Missing::Unknown): not a class.
    let testing = image_folder_counts(&out.join("testing"));
    assert_eq!(
        testing.keys().collect::<Vec<_>>(),
        ["Moderate", "Normal", "Severe", "unknown"]
    );
    assert!(!class_to_idx.contains_key("unknown"));
}

#[test]
fn classes_do_not_depend_on_the_split_or_the_missing_policy() {
    let fx = small();
    let d002 = fx.bag.dataset(&Rid::new("1-D002")).unwrap();
    let skip = newest().missing(Missing::Skip);
    let manifest = restructure_assets(&d002, &fx.out(), &skip).unwrap();
    assert_eq!(
        manifest.classes().unwrap(),
        ["Mild", "Moderate", "Normal", "Severe"]
    );
}

#[test]
fn no_classes_are_recorded_for_folders_not_named_by_vocabulary_terms() {
    let fx = small();
    let cases = [
        ("no targets", RestructureOptions::new()),
        (
            "a column target",
            RestructureOptions::new().targets(Targets::names(["Subject"])),
        ),
        (
            "a target_transform",
            newest().target_transform(|v| Ok(format!("grade-{}", v.label().unwrap_or_default()))),
        ),
    ];
    for (i, (what, options)) in cases.into_iter().enumerate() {
        let out = fx.tmp.path().join(format!("out{i}"));
        let manifest = restructure_assets(&fx.bag, &out, &options).unwrap();
        assert_eq!(manifest.classes(), None, "{what}");
        assert_eq!(manifest.class_to_idx(), None, "{what}");
        assert!(manifest.target_classes().is_empty(), "{what}");
    }
}

/// The fixture's `Glaucoma` vocabulary file, wherever the layout puts it.
fn glaucoma_csv(dir: &Path) -> PathBuf {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let found = glaucoma_csv(&path);
            if !found.as_os_str().is_empty() {
                return found;
            }
        } else if path.file_name().is_some_and(|n| n == "Glaucoma.csv") {
            return path;
        }
    }
    PathBuf::new()
}

#[test]
fn recorded_classes_are_folder_names_sorted_as_image_folder_sorts_them() {
    // Three more terms: `Sev/1` is the folder `Sev_1`, which sorts after `SevA` although
    // `Sev/1` sorts before it; `..` can never be a folder name.
    let fx = edited(|generated| {
        let csv = glaucoma_csv(&generated.path.join("data"));
        let text = fs::read_to_string(&csv).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let mut with_terms = text.clone();
        for (rid, name) in [("1-T901", "Sev/1"), ("1-T902", "SevA"), ("1-T903", "..")] {
            let row: Vec<&str> = header
                .iter()
                .map(|column| match *column {
                    "RID" => rid,
                    "Name" => name,
                    "RCT" | "RMT" => "2026-05-28 16:54:02+00",
                    _ => "",
                })
                .collect();
            with_terms.push_str(&row.join(","));
            with_terms.push('\n');
        }
        fs::write(&csv, with_terms).unwrap();
    });
    let labels = ClassLabels::of_feature(&fx.bag, "Image", "Glaucoma").unwrap();
    assert_eq!(
        labels.classes(),
        ["..", "Mild", "Moderate", "Normal", "Sev/1", "SevA", "Severe"]
    );
    let manifest = restructure_assets(&fx.bag, &fx.out(), &newest()).unwrap();
    assert_eq!(
        manifest.classes().unwrap(),
        ["Mild", "Moderate", "Normal", "SevA", "Sev_1", "Severe"]
    );
}
