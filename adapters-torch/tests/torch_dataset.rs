//! `as_torch_dataset` on the fixture bag: items, targets, missing policies, errors.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use deriva_bag_core::fixtures::FixtureSpec;
use deriva_bag_features::{Missing, Selector, Targets};
use deriva_bag_torch::image::{load_rgb, ImagePipeline, ToTensor};
use deriva_bag_torch::{
    as_torch_dataset, ClassLabels, DataLoader, Label, LoaderOptions, Sample, Target, TorchOptions,
    SAMPLE_LOADER_EXAMPLE,
};
use tch::{Device, Kind, Tensor};

const GRADES: [&str; 4] = ["Normal", "Mild", "Moderate", "Severe"];

fn images() -> TorchOptions {
    TorchOptions::default().sample_loader(|path, _row| load_rgb(path))
}

fn grade(target: Option<&Target>) -> Result<Label, String> {
    let term = target.and_then(Target::label).ok_or("unlabeled")?;
    let idx = GRADES
        .iter()
        .position(|g| *g == term)
        .ok_or(format!("unknown grade {term}"))?;
    Ok(Label::Class(idx as i64))
}

fn labels(ds: &deriva_bag_torch::TorchDataset) -> Vec<(String, String)> {
    ds.iter()
        .map(|item| {
            let item = item.unwrap();
            let text = match item.target {
                Label::Raw(t) => t.label().unwrap(),
                other => format!("{other:?}"),
            };
            (item.rid.to_string(), text)
        })
        .collect()
}

#[test]
fn image_items_are_chw_float_tensors_in_rid_order() {
    let f = common::small();
    let ds = as_torch_dataset(&f.bag, "Image", images()).unwrap();
    assert_eq!(ds.len(), 6);
    assert_eq!(
        common::rids(&ds.rids()),
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
    );
    let item = ds.get(2).unwrap();
    assert_eq!(item.rid.to_string(), "1-I003");
    assert_eq!(item.target, Label::None);
    let Sample::Loaded(t) = item.sample else {
        panic!("expected a tensor")
    };
    assert_eq!(t.size(), [3, 48, 64]);
    assert_eq!(t.kind(), Kind::Float);
    let (min, max) = (t.min().double_value(&[]), t.max().double_value(&[]));
    assert!((0.0..=1.0).contains(&min) && (0.0..=1.0).contains(&max) && max > min);
}

#[test]
fn transform_runs_on_every_loaded_sample() {
    let f = common::small();
    let pipeline = ImagePipeline::new()
        .resize(24)
        .center_crop(24, 24)
        .imagenet_normalize();
    let options = TorchOptions::default()
        .sample_loader(move |path, _row| pipeline.load(path))
        .transform(|t: tch::Tensor| Ok::<_, String>(t.flip([2])));
    let ds = as_torch_dataset(&f.bag, "Image", options).unwrap();
    for item in ds.iter() {
        let Sample::Loaded(t) = item.unwrap().sample else {
            panic!()
        };
        assert_eq!(t.size(), [3, 24, 24]);
    }
}

#[test]
fn asset_table_without_sample_loader_is_an_error_showing_a_working_closure() {
    let f = common::small();
    let err = as_torch_dataset(&f.bag, "Image", TorchOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("demo:Image is an asset table and requires a sample_loader"),
        "{err}"
    );
    assert!(err.contains(SAMPLE_LOADER_EXAMPLE), "{err}");
    assert!(
        err.contains("deriva_bag_core::torch::image::load_rgb(path)"),
        "{err}"
    );
}

#[test]
fn non_asset_table_yields_its_rows_without_a_loader() {
    let f = common::small();
    let ds = as_torch_dataset(&f.bag, "Subject", TorchOptions::default()).unwrap();
    assert_eq!(common::rids(&ds.rids()), ["1-S001", "1-S002", "1-S003"]);
    let Sample::Row(row) = ds.get(1).unwrap().sample else {
        panic!("expected a row")
    };
    assert_eq!(row.text("RID"), Some("1-S002"));
    assert_eq!(row.text("Name"), Some("Thing2"));
}

#[test]
fn single_feature_target_yields_the_newest_record_and_skip_drops_unlabeled() {
    let f = common::small();
    let options = images()
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .missing(Missing::Skip);
    let ds = as_torch_dataset(&f.bag, "Image", options).unwrap();
    assert_eq!(
        labels(&ds),
        [
            ("1-I001".to_string(), "Severe".to_string()),
            ("1-I002".to_string(), "Mild".to_string()),
            ("1-I003".to_string(), "Moderate".to_string()),
            ("1-I005".to_string(), "Severe".to_string()),
            ("1-I006".to_string(), "Normal".to_string()),
        ]
    );
    let Label::Raw(Target::Single(value)) = ds.get(0).unwrap().target else {
        panic!()
    };
    let record = value.record().unwrap();
    assert_eq!(record.rid.as_ref().unwrap().to_string(), "1-A002");
    assert_eq!(record.text("Glaucoma"), Some("Severe"));
}

#[test]
fn selector_in_dict_form_is_applied_per_feature() {
    let f = common::small();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let first_by_rid = Selector::Custom(Arc::new(move |records| {
        counted.fetch_add(1, Ordering::Relaxed);
        Ok(records.iter().min_by_key(|r| r.rid.clone()).cloned())
    }));
    let options = images()
        .targets(Targets::new().with("Glaucoma", first_by_rid))
        .missing(Missing::Skip);
    let ds = as_torch_dataset(&f.bag, "Image", options).unwrap();
    assert!(
        calls.load(Ordering::Relaxed) >= 5,
        "the selector ran once per labeled image"
    );
    let got = labels(&ds);
    assert_eq!(got[0], ("1-I001".to_string(), "Normal".to_string())); // 1-A001, not the newer 1-A002
    assert_eq!(got[2], ("1-I003".to_string(), "Normal".to_string())); // 1-A004
    assert_eq!(got[3], ("1-I005".to_string(), "Mild".to_string())); // 1-A006
}

#[test]
fn missing_error_is_the_default_and_names_the_unlabeled_image() {
    let f = common::small();
    let options = images().targets(Targets::new().with("Glaucoma", Selector::Newest));
    let err = as_torch_dataset(&f.bag, "Image", options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1-I004"), "{err}");
    assert!(!err.contains("1-I001"), "{err}");
}

#[test]
fn missing_unknown_keeps_the_element_and_passes_none_to_target_transform() {
    let f = common::small();
    let saw_none = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&saw_none);
    let options = images()
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .missing(Missing::Unknown)
        .target_transform(move |t| match t {
            None => {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(Label::Class(-1))
            }
            some => grade(some),
        });
    let ds = as_torch_dataset(&f.bag, "Image", options).unwrap();
    let got: Vec<(String, Label)> = ds
        .iter()
        .map(|i| i.map(|i| (i.rid.to_string(), i.target)).unwrap())
        .collect();
    assert_eq!(
        got,
        [
            ("1-I001".to_string(), Label::Class(3)),
            ("1-I002".to_string(), Label::Class(1)),
            ("1-I003".to_string(), Label::Class(2)),
            ("1-I004".to_string(), Label::Class(-1)),
            ("1-I005".to_string(), Label::Class(3)),
            ("1-I006".to_string(), Label::Class(0)),
        ]
    );
    assert_eq!(saw_none.load(Ordering::Relaxed), 1);
}

#[test]
fn multi_target_gives_a_map_keyed_by_target_name() {
    let f = common::small();
    let options = images()
        .targets(
            Targets::new()
                .with("Glaucoma", Selector::Newest)
                .with_name("Subject"),
        )
        .missing(Missing::Skip);
    let ds = as_torch_dataset(&f.bag, "Image", options).unwrap();
    assert_eq!(ds.len(), 5);
    let Label::Raw(Target::Multi(map)) = ds.get(4).unwrap().target else {
        panic!()
    };
    assert_eq!(map.keys().collect::<Vec<_>>(), ["Glaucoma", "Subject"]);
    assert_eq!(
        map["Glaucoma"].as_ref().unwrap().label().as_deref(),
        Some("Normal")
    );
    assert_eq!(
        map["Subject"].as_ref().unwrap().label().as_deref(),
        Some("1-S003")
    );
}

#[test]
fn reachable_false_yields_only_dataset_members() {
    let f = common::small();
    let ds = as_torch_dataset(&f.bag, "Image", images().reachable(false)).unwrap();
    // 1-I006 is reachable only through Subject 1-S003, so it is not a member.
    assert_eq!(
        common::rids(&ds.rids()),
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005"]
    );
}

#[test]
fn unknown_target_name_fails_at_construction() {
    let f = common::small();
    let err = as_torch_dataset(
        &f.bag,
        "Image",
        images().targets(Targets::names(["Glaucom"])),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("\"Glaucom\""), "{err}");
}

#[test]
fn non_materialized_bag_fails_at_construction_naming_missing_files() {
    let f = common::open(&FixtureSpec {
        materialized: false,
        ..FixtureSpec::default()
    });
    let err = as_torch_dataset(&f.bag, "Image", images())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("6 file(s) of asset table demo:Image are not on disk"),
        "{err}"
    );
    assert!(err.contains("1-I001 \"retina_001.jpg\""), "{err}");
    assert!(err.contains("1-I005 \"retina%005.jpg\""), "{err}");
}

#[test]
fn failing_sample_loader_names_the_element_and_file() {
    let f = common::small();
    let options = TorchOptions::default().sample_loader(|path, _row| {
        if path.to_string_lossy().contains("004") {
            Err("corrupt".to_string())
        } else {
            load_rgb(path).map_err(|e| e.to_string())
        }
    });
    let ds = as_torch_dataset(&f.bag, "Image", options).unwrap();
    let err = ds.get(3).unwrap_err().to_string();
    assert!(
        err.contains("sample_loader failed for demo:Image element 1-I004"),
        "{err}"
    );
    assert!(err.contains("retina_004.png"), "{err}");
    assert!(err.ends_with("corrupt"), "{err}");
}

#[test]
fn row_loader_turns_non_asset_rows_into_tensors() {
    let f = common::small();
    let options = TorchOptions::default().row_loader(|row: &deriva_bag_features::Row| {
        let name = row.text("Name").ok_or("no Name")?;
        Ok::<_, &str>(tch::Tensor::from_slice(&[name.len() as f32]))
    });
    let ds = as_torch_dataset(&f.bag, "Subject", options).unwrap();
    let loader = deriva_bag_torch::DataLoader::new(
        &ds,
        deriva_bag_torch::LoaderOptions::default().batch_size(3),
    )
    .unwrap();
    let batch = loader.iter().next().unwrap().unwrap();
    let t = batch.samples.tensor().unwrap();
    assert_eq!(t.size(), [3, 1]);
    assert_eq!(
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap(),
        vec![6.0, 6.0, 6.0]
    );
}

#[test]
fn sample_loader_on_a_non_asset_table_is_rejected() {
    let f = common::small();
    let err = as_torch_dataset(&f.bag, "Subject", images())
        .unwrap_err()
        .to_string();
    assert!(err.contains("demo:Subject is not an asset table"), "{err}");
    assert!(err.contains("row_loader"), "{err}");
}

#[test]
fn disagreeing_annotators_without_a_selector_are_refused_naming_the_rids() {
    let f = common::small();
    let options = images()
        .targets(Targets::names(["Glaucoma"]))
        .missing(Missing::Skip);
    let err = as_torch_dataset(&f.bag, "Image", options.clone()).unwrap_err();
    match &err {
        deriva_bag_torch::Error::Dataset(deriva_bag_features::Error::ConflictingTargetValues {
            target,
            conflicts,
            more,
            ..
        }) => {
            assert_eq!(target, "Glaucoma");
            let listed: Vec<(&str, Vec<&str>)> = conflicts
                .iter()
                .map(|(e, r)| (e.as_str(), r.iter().map(|r| r.as_str()).collect()))
                .collect();
            assert_eq!(
                listed,
                [
                    ("1-I001", vec!["1-A001", "1-A002"]),
                    ("1-I003", vec!["1-A004", "1-A005"]),
                    ("1-I005", vec!["1-A006", "1-A008", "1-A007"]),
                ]
            );
            assert_eq!(*more, 0);
        }
        other => panic!("expected a conflict error, got {other}"),
    }

    // Restructure's escape hatch: the oldest label (first by RCT).
    let ds = as_torch_dataset(&f.bag, "Image", options.enforce_vocabulary(false)).unwrap();
    assert_eq!(
        labels(&ds),
        [
            ("1-I001".to_string(), "Normal".to_string()),
            ("1-I002".to_string(), "Mild".to_string()),
            ("1-I003".to_string(), "Normal".to_string()),
            ("1-I005".to_string(), "Mild".to_string()),
            ("1-I006".to_string(), "Normal".to_string()),
        ]
    );

    // A selector resolves the disagreement; no error.
    let newest = images()
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .missing(Missing::Skip);
    let ds = as_torch_dataset(&f.bag, "Image", newest).unwrap();
    assert_eq!(labels(&ds).len(), 5);
}

#[test]
fn class_labels_as_target_transform_batch_vocabulary_indices_for_cross_entropy() {
    let f = common::small();
    let grades = ClassLabels::of_feature(&f.bag, "Image", "Glaucoma").unwrap();
    assert_eq!(grades.classes(), ["Mild", "Moderate", "Normal", "Severe"]);
    let pipeline = ImagePipeline::new().resize(8).center_crop(8, 8);
    let options = TorchOptions::default()
        .sample_loader(move |path, _row| pipeline.load(path))
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .target_transform(grades.target_transform());

    // Missing::Unknown keeps 1-I004 (no grade) with -1, which is no class.
    let kept =
        as_torch_dataset(&f.bag, "Image", options.clone().missing(Missing::Unknown)).unwrap();
    assert_eq!(
        common::rids(&kept.rids()),
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
    );
    let targets: Vec<Label> = kept.iter().map(|item| item.unwrap().target).collect();
    // Severe, Mild, Moderate, no grade, Severe, Normal.
    assert_eq!(targets, [3, 0, 1, -1, 3, 2].map(Label::Class));

    // Missing::Skip: one int64 batch of the five graded images, ready for cross_entropy.
    let ds = as_torch_dataset(&f.bag, "Image", options.missing(Missing::Skip)).unwrap();
    let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(8)).unwrap();
    let batches: Vec<_> = loader.iter().map(Result::unwrap).collect();
    assert_eq!(batches.len(), 1);
    let classes = batches[0].targets.tensor().unwrap();
    assert_eq!(classes.kind(), Kind::Int64);
    assert_eq!(classes.size(), [5]);
    let values: Vec<i64> = (0..5).map(|i| classes.int64_value(&[i])).collect();
    assert_eq!(values, [3, 0, 1, 3, 2]);
    let logits = Tensor::zeros([5, grades.num_classes() as i64], (Kind::Float, Device::Cpu));
    let loss = logits.cross_entropy_for_logits(classes).double_value(&[]);
    assert!((loss - 4f64.ln()).abs() < 1e-6, "{loss}");
}
