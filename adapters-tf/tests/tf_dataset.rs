//! `as_tf_dataset` on the fixture bag: signatures, passes, errors, batches through a Session.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use deriva_bag_core::fixtures::FixtureSpec;
use deriva_bag_features::{Missing, Row, Selector, Targets};
use deriva_bag_tf::image::{center_crop, decode_rgb, load_rgb};
use deriva_bag_tf::{
    as_tf_dataset, BatchColumn, BatchTargets, BatchTensor, ClassLabels, DType, EvenShards, Label,
    LoaderOptions, Padding, SampleSpec, Signature, Target, TargetSpec, TensorSpec, TfOptions,
    TfSample, TfSamples, SAMPLE_LOADER_EXAMPLE,
};
use tensorflow::{ops, DataType, Scope, Session, SessionOptions, SessionRunArgs};

const GRADES: [&str; 4] = ["Normal", "Mild", "Moderate", "Severe"];

/// HWC float pixels in [0, 1].
fn hwc(path: &Path) -> Result<TfSample, deriva_bag_tf::Error> {
    load_rgb(path)
}

/// Crops each image to a width that depends on the RID (1-I001 → 41 px, …): variable shapes.
fn variable_width(
    path: &Path,
    row: &Row,
) -> Result<TfSample, Box<dyn std::error::Error + Send + Sync>> {
    let n: u32 = row.text("RID").unwrap()[4..].parse()?;
    let cropped = center_crop(&decode_rgb(path)?, 40 + n, 48);
    let data = cropped.as_raw().iter().map(|&p| f32::from(p)).collect();
    Ok(TfSample::float([48, u64::from(40 + n), 3], data)?)
}

fn graded() -> TfOptions {
    TfOptions::default()
        .sample_loader(|path, _row| hwc(path))
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .target_transform(|t: Option<&Target>| {
            let term = t.and_then(Target::label).ok_or("unlabeled")?;
            let idx = GRADES
                .iter()
                .position(|g| *g == term)
                .ok_or("unknown grade")?;
            Ok::<_, &str>(Label::Class(idx as i64))
        })
        .missing(Missing::Skip)
}

fn pass(ds: &deriva_bag_tf::TfDataset) -> Vec<String> {
    ds.iter().map(|e| e.unwrap().rid.to_string()).collect()
}

const LABELED: [&str; 5] = ["1-I001", "1-I002", "1-I003", "1-I005", "1-I006"];

#[test]
fn inferred_signature_comes_from_the_first_element_which_is_not_skipped() {
    let f = common::small();
    let ds = as_tf_dataset(&f.bag, "Image", graded(), None).unwrap();
    assert_eq!(
        *ds.signature(),
        Signature::new(
            TensorSpec::new(DType::Float, [48, 64, 3]),
            TargetSpec::Tensor(TensorSpec::new(DType::Int64, []))
        )
    );
    let first = ds.iter().next().unwrap().unwrap();
    assert_eq!(first.rid.to_string(), "1-I001");
    assert_eq!(first.target, Label::Class(3));
    assert_eq!(pass(&ds), LABELED);
}

#[test]
fn second_and_third_passes_yield_every_element() {
    let f = common::small();
    let ds = as_tf_dataset(&f.bag, "Image", graded(), None).unwrap();
    for _ in 0..3 {
        assert_eq!(pass(&ds), LABELED);
    }
    let batches = ds
        .batches(LoaderOptions::default().batch_size(2).num_workers(2))
        .unwrap();
    for _ in 0..3 {
        let rids: Vec<String> = batches
            .iter()
            .flat_map(|b| common::rids(&b.unwrap().rids))
            .collect();
        assert_eq!(rids, LABELED);
    }
}

#[test]
fn explicit_signature_reads_nothing_at_construction() {
    let f = common::small();
    let loads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&loads);
    let options = TfOptions::default().sample_loader(move |path, _row| {
        counter.fetch_add(1, Ordering::Relaxed);
        hwc(path)
    });
    let sig = Signature::new(TensorSpec::new(DType::Float, [48, 64, 3]), TargetSpec::None);
    let ds = as_tf_dataset(&f.bag, "Image", options, Some(sig)).unwrap();
    assert_eq!(loads.load(Ordering::Relaxed), 0);
    assert_eq!(pass(&ds).len(), 6);
    assert_eq!(loads.load(Ordering::Relaxed), 6);
}

#[test]
fn variable_dimensions_use_minus_one() {
    let f = common::small();
    let options = TfOptions::default().sample_loader(variable_width);
    let sig = Signature::new(TensorSpec::new(DType::Float, [48, -1, 3]), TargetSpec::None);
    let ds = as_tf_dataset(&f.bag, "Image", options, Some(sig)).unwrap();
    let widths: Vec<u64> = ds
        .iter()
        .map(|e| match e.unwrap().sample {
            deriva_bag_tf::Sample::Loaded(s) => s.shape()[1],
            _ => panic!(),
        })
        .collect();
    assert_eq!(widths, [41, 42, 43, 44, 45, 46]);
    // Variable shapes do not stack; batch size 1 works.
    let batches = ds.batches(LoaderOptions::default().batch_size(1)).unwrap();
    assert_eq!(batches.iter().filter(|b| b.is_ok()).count(), 6);
    let err = ds
        .batches(LoaderOptions::default().batch_size(2))
        .unwrap()
        .iter()
        .next()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "element 1-I002 has shape [48, 42, 3] but element 1-I001 has [48, 41, 3]; use \
             padded_batches (or batch_size 1) for variable shapes"
        ),
        "{err}"
    );
}

#[test]
fn shape_mismatch_names_the_rid_and_both_shapes() {
    let f = common::small();
    // Inferred from 1-I001 (41 wide), so 1-I002 (42 wide) does not fit.
    let ds = as_tf_dataset(
        &f.bag,
        "Image",
        TfOptions::default().sample_loader(variable_width),
        None,
    )
    .unwrap();
    assert!(ds.get(0).is_ok());
    let err = ds.get(1).unwrap_err().to_string();
    assert_eq!(
        err,
        "element 1-I002: sample has dtype float32 and shape [48, 42, 3], but the output \
         signature says TensorSpec(shape=[48, 41, 3], dtype=float32)"
    );
}

#[test]
fn untransformed_records_cannot_be_inferred() {
    let f = common::small();
    let options = TfOptions::default()
        .sample_loader(|path, _row| hwc(path))
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .missing(Missing::Skip);
    let err = as_tf_dataset(&f.bag, "Image", options, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("element 1-I001: the target is a resolved record"),
        "{err}"
    );
    assert!(err.contains("target_transform"), "{err}");
}

#[test]
fn asset_table_without_sample_loader_is_an_error_showing_a_working_closure() {
    let f = common::small();
    let err = as_tf_dataset(&f.bag, "Image", TfOptions::default(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("requires a sample_loader"), "{err}");
    assert!(err.contains(SAMPLE_LOADER_EXAMPLE), "{err}");
}

#[test]
fn missing_error_names_the_unlabeled_image() {
    let f = common::small();
    let err = as_tf_dataset(&f.bag, "Image", graded().missing(Missing::Error), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1-I004"), "{err}");
}

#[test]
fn non_materialized_bag_fails_at_construction_naming_missing_files() {
    let f = common::open(&FixtureSpec {
        materialized: false,
        ..FixtureSpec::default()
    });
    let err = as_tf_dataset(&f.bag, "Image", graded(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not on disk"), "{err}");
    assert!(err.contains("1-I003 \"rétine_003.png\""), "{err}");
}

#[test]
fn shards_cover_every_element_exactly_once() {
    let f = common::small();
    let ds = as_tf_dataset(&f.bag, "Image", graded(), None).unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for rank in 0..2 {
        let batches = ds
            .batches(
                LoaderOptions::default()
                    .batch_size(2)
                    .shuffle(4)
                    .shard(rank, 2),
            )
            .unwrap();
        for batch in &batches {
            for rid in common::rids(&batch.unwrap().rids) {
                *seen.entry(rid).or_default() += 1;
            }
        }
    }
    assert_eq!(seen.keys().collect::<Vec<_>>(), LABELED);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[test]
fn even_shards_give_three_ranks_the_same_count_of_ten_images() {
    let f = common::open(&FixtureSpec::with_images(10));
    let options = TfOptions::default().sample_loader(|path, _row| hwc(path));
    let ds = as_tf_dataset(&f.bag, "Image", options, None).unwrap();
    assert_eq!(ds.len(), 10);
    let shards = |even: Option<EvenShards>| -> Vec<Vec<String>> {
        (0..3)
            .map(|rank| {
                let mut options = LoaderOptions::default()
                    .batch_size(2)
                    .shuffle(8)
                    .shard(rank, 3);
                if let Some(mode) = even {
                    options = options.even_shards(mode);
                }
                let batches = ds.batches(options).unwrap();
                let rids: Vec<String> = batches
                    .epoch(0)
                    .flat_map(|b| common::rids(&b.unwrap().rids))
                    .collect();
                assert_eq!(batches.len(), rids.len().div_ceil(2), "rank {rank}");
                rids
            })
            .collect()
    };
    let sizes = |s: &[Vec<String>]| s.iter().map(Vec::len).collect::<Vec<_>>();
    let count = |s: &[Vec<String>]| {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for rid in s.concat() {
            *seen.entry(rid).or_default() += 1;
        }
        seen
    };
    let all: Vec<String> = ds.rids().iter().map(|r| r.to_string()).collect();

    assert_eq!(sizes(&shards(None)), [4, 3, 3]);

    let padded = shards(Some(EvenShards::Pad));
    assert_eq!(sizes(&padded), [4, 4, 4]);
    let seen = count(&padded);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        all,
        "union covers all"
    );
    let twice: Vec<&String> = seen
        .iter()
        .filter(|(_, &n)| n == 2)
        .map(|(r, _)| r)
        .collect();
    // The repeats are the first two of the epoch's order: rank 0's and rank 1's first.
    let mut firsts = vec![&padded[0][0], &padded[1][0]];
    firsts.sort();
    assert_eq!(twice, firsts, "{seen:?}");

    let dropped = shards(Some(EvenShards::Drop));
    assert_eq!(sizes(&dropped), [3, 3, 3]);
    let seen = count(&dropped);
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "disjoint: {seen:?}");
}

/// An `int64 [batch]` placeholder `y` for class indices.
fn class_placeholder(scope: &Scope) -> tensorflow::Operation {
    ops::Placeholder::new()
        .dtype(DataType::Int64)
        .shape([-1i64])
        .build(&mut scope.with_op_name("y"))
        .unwrap()
}

#[test]
fn batches_feed_a_session_run() {
    let f = common::small();
    let ds = as_tf_dataset(&f.bag, "Image", graded(), None).unwrap();
    let mut scope = Scope::new_root_scope();
    let x = ops::Placeholder::new()
        .dtype(DataType::Float)
        .shape([-1i64, 48, 64, 3])
        .build(&mut scope.with_op_name("x"))
        .unwrap();
    let y = class_placeholder(&scope);
    let axes = ops::constant(&[1i32, 2, 3][..], &mut scope).unwrap();
    let pixel_sum = ops::sum(x.clone(), axes, &mut scope.with_op_name("pixel_sum")).unwrap();
    let doubled = ops::add(y.clone(), y.clone(), &mut scope.with_op_name("doubled")).unwrap();
    let session = Session::new(&SessionOptions::new(), &scope.graph()).unwrap();

    let batches = ds
        .batches(LoaderOptions::default().batch_size(2).num_workers(2))
        .unwrap();
    let mut fed = 0;
    for batch in &batches {
        let batch = batch.unwrap();
        let images = batch.samples.tensor().unwrap();
        assert_eq!(images.dims()[1..], [48, 64, 3]);
        assert_eq!(batch.shapes, vec![vec![48, 64, 3]; batch.rids.len()]);
        let mut args = SessionRunArgs::new();
        images.add_feed(&mut args, &x, 0);
        batch.targets.tensor().unwrap().add_feed(&mut args, &y, 0);
        let sums = args.request_fetch(&pixel_sum, 0);
        let twice = args.request_fetch(&doubled, 0);
        session.run(&mut args).unwrap();
        let sums: tensorflow::Tensor<f32> = args.fetch(sums).unwrap();
        let twice: tensorflow::Tensor<i64> = args.fetch(twice).unwrap();
        assert_eq!(sums.dims(), [batch.rids.len() as u64]);
        assert!(sums.iter().all(|&s| s > 0.0));
        fed += twice.len();
    }
    assert_eq!(fed, 5);
    let first = batches.epoch(0).next().unwrap().unwrap();
    assert_eq!(first.rid_tensor().unwrap().to_vec(), ["1-I001", "1-I002"]);
}

#[test]
fn empty_dataset_cannot_infer_a_signature() {
    let f = common::small();
    // 1-D003 has Subject members only: no Image is a member of it.
    let d003 = f
        .bag
        .dataset(&deriva_bag_features::Rid::new("1-D003"))
        .unwrap();
    let err = as_tf_dataset(&d003, "Image", graded().reachable(false), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot infer the output signature of an empty dataset (element table demo:Image, targets [Glaucoma])"),
        "{err}"
    );
    // With an explicit signature an empty dataset is fine.
    let sig = Signature::new(TensorSpec::new(DType::Float, [48, 64, 3]), TargetSpec::None);
    let ds = as_tf_dataset(&d003, "Image", graded().reachable(false), Some(sig)).unwrap();
    assert_eq!(ds.iter().count(), 0);
}

#[test]
fn read_bytes_of_a_missing_file_names_it() {
    let err = deriva_bag_tf::read_bytes(Path::new("/nonexistent/retina.jpg"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot read /nonexistent/retina.jpg"),
        "{err}"
    );
}

#[test]
fn disagreeing_annotators_without_a_selector_are_refused_naming_the_rids() {
    let f = common::small();
    // `graded()` with the selector taken away.
    let options = graded().targets(Targets::names(["Glaucoma"]));
    let err = as_tf_dataset(&f.bag, "Image", options.clone(), None).unwrap_err();
    match &err {
        deriva_bag_tf::Error::Dataset(deriva_bag_features::Error::ConflictingTargetValues {
            target,
            conflicts,
            more,
            ..
        }) => {
            assert_eq!(target, "Glaucoma");
            let elements: Vec<&str> = conflicts.iter().map(|(e, _)| e.as_str()).collect();
            assert_eq!(elements, ["1-I001", "1-I003", "1-I005"]);
            assert_eq!(*more, 0);
        }
        other => panic!("expected a conflict error, got {other}"),
    }
    assert!(
        err.to_string().contains("1-I005: [1-A006, 1-A008, 1-A007]"),
        "{err}"
    );

    // Restructure's escape hatch: the oldest label (first by RCT).
    let ds = as_tf_dataset(&f.bag, "Image", options.enforce_vocabulary(false), None).unwrap();
    let got: Vec<(String, Option<String>)> = ds
        .plan()
        .elements
        .iter()
        .map(|e| (e.rid.to_string(), e.target.as_ref().and_then(Target::label)))
        .collect();
    let some = |rid: &str, term: &str| (rid.to_string(), Some(term.to_string()));
    assert_eq!(
        got,
        [
            some("1-I001", "Normal"),
            some("1-I002", "Mild"),
            some("1-I003", "Normal"),
            some("1-I005", "Mild"),
            some("1-I006", "Normal"),
        ]
    );

    // A selector resolves the disagreement; no error.
    assert_eq!(
        as_tf_dataset(&f.bag, "Image", graded(), None)
            .unwrap()
            .len(),
        5
    );
}

/// `lambda rec: float(rec.IOP_Value)`.
fn iop_value(t: Option<&Target>) -> Result<Label, &'static str> {
    let record = t
        .and_then(|t| t.value("IOP_Reading"))
        .and_then(|v| v.record())
        .ok_or("no reading")?;
    let iop = record.get("IOP_Value").and_then(|v| v.as_f64());
    Ok(Label::Float(iop.ok_or("no IOP_Value")?))
}

/// A tabular regression: Measurement rows, the newest `IOP_Value` as a float.
fn iop_regression() -> TfOptions {
    TfOptions::default()
        .targets(Targets::new().with("IOP_Reading", Selector::Newest))
        .target_transform(iop_value)
        .missing(Missing::Skip)
}

fn floats(t: &BatchTensor) -> Vec<f32> {
    match t {
        BatchTensor::Float(t) => t.to_vec(),
        other => panic!("expected float32, got {:?}", other.dtype()),
    }
}

#[test]
fn tabular_rows_batch_into_one_tensor_per_column_with_float_targets() {
    let f = common::small();
    let ds = as_tf_dataset(&f.bag, "Measurement", iop_regression(), None).unwrap();
    let spec = |d| TensorSpec::new(d, []);
    let columns = [
        ("Subject", DType::String),
        ("Eye", DType::String),
        ("Visit", DType::Int64),
        ("Axial_Length", DType::Float),
    ]
    .map(|(n, d)| (n.to_string(), spec(d)));
    assert_eq!(
        *ds.signature(),
        Signature::new(
            SampleSpec::Columns(columns.into_iter().collect()),
            TargetSpec::Tensor(spec(DType::Float))
        )
    );
    let loader = ds
        .batches(LoaderOptions::default().batch_size(3).num_workers(2))
        .unwrap();
    let batches: Vec<_> = loader.iter().map(Result::unwrap).collect();
    assert_eq!(batches.len(), 2);
    let rids: Vec<Vec<String>> = batches.iter().map(|b| common::rids(&b.rids)).collect();
    assert_eq!(
        rids,
        [vec!["1-M001", "1-M002", "1-M003"], vec!["1-M004", "1-M005"]]
    );
    let TfSamples::Columns(first) = &batches[0].samples else {
        panic!("expected columns")
    };
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["Subject", "Eye", "Visit", "Axial_Length"]
    );
    let BatchColumn::Text(subjects) = &first["Subject"] else {
        panic!("Subject is not text")
    };
    assert_eq!(subjects, &["1-S001", "1-S001", "1-S002"]);
    let eyes = first["Eye"].string_tensor().unwrap().unwrap();
    assert_eq!(eyes.dims(), [3]);
    assert_eq!(eyes.to_vec(), ["OD", "OS", "OD"]);
    assert_eq!(first["Visit"].dtype(), DType::Int64);
    assert_eq!(
        floats(first["Axial_Length"].tensor().unwrap()),
        [23.51, 23.47, 24.02]
    );
    // 1-M003's annotators disagree: the newest reading (23) wins.
    assert_eq!(
        floats(batches[0].targets.tensor().unwrap()),
        [15.5, 16.0, 23.0]
    );
    assert!(batches[0].shapes.is_empty());

    let second = batches[1].samples.columns().unwrap();
    let Some(BatchTensor::Int64(visits)) = second["Visit"].tensor() else {
        panic!("Visit is not int64")
    };
    assert_eq!(visits.to_vec(), [2, 1]);
    let axial = floats(second["Axial_Length"].tensor().unwrap());
    assert!(axial[0].is_nan(), "NULL axial length is NaN: {axial:?}");
    assert_eq!(axial[1], 22.88);
    let BatchTargets::Tensor(targets) = &batches[1].targets else {
        panic!("targets do not stack")
    };
    assert_eq!(targets.dims(), [2]);
    assert_eq!(floats(targets), [14.0, 18.25]);
}

#[test]
fn a_float_feature_refuses_conflicts_without_a_selector_but_needs_no_vocabulary() {
    let f = common::small();
    let plain = TfOptions::default()
        .targets(Targets::names(["IOP_Reading"]))
        .missing(Missing::Skip);
    // Vocabulary is not required by default, conflicts are refused.
    let err = as_tf_dataset(&f.bag, "Measurement", plain.clone(), None).unwrap_err();
    match &err {
        deriva_bag_tf::Error::Dataset(deriva_bag_features::Error::ConflictingTargetValues {
            target,
            conflicts,
            ..
        }) => {
            assert_eq!(target, "IOP_Reading");
            let listed: Vec<(&str, Vec<&str>)> = conflicts
                .iter()
                .map(|(e, r)| (e.as_str(), r.iter().map(|r| r.as_str()).collect()))
                .collect();
            // 1-M005's two equal readings are not a conflict.
            assert_eq!(listed, [("1-M003", vec!["1-P003", "1-P004"])]);
        }
        other => panic!("expected a conflict, got {other}"),
    }
    // Restructure's rule on top: no vocabulary term column, refused by name.
    let strict = iop_regression().require_vocabulary(true);
    let err = as_tf_dataset(&f.bag, "Measurement", strict, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "feature \"IOP_Reading\" on table demo:Measurement has no controlled vocabulary"
        ),
        "{err}"
    );
    // Both off (restructure's enforce_vocabulary(false)): the oldest reading of 1-M003.
    let lenient = plain.enforce_vocabulary(false).target_transform(iop_value);
    let ds = as_tf_dataset(&f.bag, "Measurement", lenient, None).unwrap();
    let values: Vec<(String, Label)> = ds
        .iter()
        .map(|e| e.map(|e| (e.rid.to_string(), e.target)).unwrap())
        .collect();
    assert_eq!(values[2], ("1-M003".to_string(), Label::Float(21.5)));
    assert_eq!(values.len(), 5, "1-M006 has no reading and is skipped");
    // Missing::Error names the measurement without a reading.
    let err = as_tf_dataset(
        &f.bag,
        "Measurement",
        iop_regression().missing(Missing::Error),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("1-M006"), "{err}");
}

#[test]
fn padded_batches_pad_each_sample_to_the_batch_and_keep_its_shape() {
    let f = common::small();
    let options = TfOptions::default().sample_loader(variable_width);
    let sig = Signature::new(TensorSpec::new(DType::Float, [48, -1, 3]), TargetSpec::None);
    let ds = as_tf_dataset(&f.bag, "Image", options, Some(sig)).unwrap();
    let padding = Padding::default().value(-1.0);
    let loader = ds
        .padded_batches(LoaderOptions::default().batch_size(3), padding.clone())
        .unwrap();
    let batches: Vec<_> = loader.iter().map(Result::unwrap).collect();
    let dims: Vec<Vec<u64>> = batches
        .iter()
        .map(|b| b.samples.tensor().unwrap().dims().to_vec())
        .collect();
    assert_eq!(dims, [vec![3, 48, 43, 3], vec![3, 48, 46, 3]]);
    assert_eq!(
        batches[0].shapes,
        [vec![48, 41, 3], vec![48, 42, 3], vec![48, 43, 3]]
    );
    let values = floats(batches[0].samples.tensor().unwrap());
    let first = match ds.get(0).unwrap().sample {
        deriva_bag_tf::Sample::Loaded(TfSample::Float { data, .. }) => data,
        other => panic!("{other:?}"),
    };
    // Sample 0, row 0: its 41 pixels, then 2 padded pixels of -1.
    let row = 43 * 3;
    assert_eq!(values[..41 * 3], first[..41 * 3]);
    assert_eq!(values[41 * 3..row], [-1.0; 6]);
    // Row 1 of sample 0 starts with the sample's own row 1.
    assert_eq!(values[row..row + 41 * 3], first[41 * 3..82 * 3]);
    // The widest sample of the batch (1-I003) is not padded.
    assert_eq!(
        values[2 * 48 * row..2 * 48 * row + row]
            .iter()
            .filter(|v| **v == -1.0)
            .count(),
        0
    );

    // A fixed shape pads further; one too small names the sample that does not fit.
    let fixed = ds
        .padded_batches(
            LoaderOptions::default().batch_size(3),
            padding.clone().shape([48, 50, 3]),
        )
        .unwrap();
    let batch = fixed.iter().next().unwrap().unwrap();
    assert_eq!(batch.samples.tensor().unwrap().dims(), [3, 48, 50, 3]);
    let err = ds
        .padded_batches(
            LoaderOptions::default().batch_size(3),
            padding.shape([48, 42, 3]),
        )
        .unwrap()
        .iter()
        .next()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot pad element 1-I003: sample 2 has shape [48, 43, 3], larger than the padded shape [48, 42, 3] in dimension 1"),
        "{err}"
    );
}

#[test]
fn cache_decodes_in_the_first_epoch_and_reuses_samples_after() {
    let f = common::small();
    let loads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&loads);
    let options = graded().sample_loader(move |path, _row| {
        counter.fetch_add(1, Ordering::Relaxed);
        hwc(path)
    });
    let sig = Signature::new(
        TensorSpec::new(DType::Float, [48, 64, 3]),
        TargetSpec::Tensor(TensorSpec::new(DType::Int64, [])),
    );
    let ds = as_tf_dataset(&f.bag, "Image", options, Some(sig)).unwrap();
    let run = |ds: &deriva_bag_tf::TfDataset| -> Vec<Vec<f32>> {
        let loader = ds
            .batches(
                LoaderOptions::default()
                    .batch_size(2)
                    .shuffle(3)
                    .num_workers(2),
            )
            .unwrap();
        (0..3)
            .flat_map(|epoch| loader.epoch(epoch).collect::<Vec<_>>())
            .map(|b| floats(b.unwrap().samples.tensor().unwrap()))
            .collect()
    };
    let uncached = run(&ds);
    assert_eq!(loads.swap(0, Ordering::Relaxed), 15, "5 images × 3 epochs");

    let cached = ds.cache(ds.len());
    assert_eq!(cached.cached(), 0);
    assert_eq!(run(&cached), uncached, "same batches, same values");
    assert_eq!(loads.swap(0, Ordering::Relaxed), 5, "decoded once each");
    assert_eq!(cached.cached(), 5);

    let bounded = ds.cache(2);
    assert_eq!(run(&bounded), uncached);
    assert_eq!(bounded.cached(), 2);
    assert_eq!(
        loads.load(Ordering::Relaxed),
        5 + 3 + 3,
        "3 uncached images load every epoch"
    );
}

#[test]
fn class_labels_give_int64_labels_that_feed_sparse_softmax_cross_entropy() {
    let f = common::small();
    let grades = ClassLabels::of_feature(&f.bag, "Image", "Glaucoma").unwrap();
    let options = TfOptions::default()
        .sample_loader(|path, _row| hwc(path))
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .target_transform(grades.target_transform());

    // Missing::Unknown keeps 1-I004 (no grade) with -1, which is no class.
    let kept = as_tf_dataset(
        &f.bag,
        "Image",
        options.clone().missing(Missing::Unknown),
        None,
    )
    .unwrap();
    assert_eq!(
        pass(&kept),
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
    );
    let targets: Vec<Label> = kept.iter().map(|e| e.unwrap().target).collect();
    // Severe, Mild, Moderate, no grade, Severe, Normal.
    assert_eq!(targets, [3, 0, 1, -1, 3, 2].map(Label::Class));

    // Missing::Skip: int64 [] labels, batched to int64 [batch], fed to a Session.
    let ds = as_tf_dataset(&f.bag, "Image", options.missing(Missing::Skip), None).unwrap();
    assert_eq!(
        ds.signature().target,
        TargetSpec::Tensor(TensorSpec::new(DType::Int64, []))
    );
    let scope = Scope::new_root_scope();
    let logits = ops::Placeholder::new()
        .dtype(DataType::Float)
        .shape([-1i64, grades.num_classes() as i64])
        .build(&mut scope.with_op_name("logits"))
        .unwrap();
    let y = class_placeholder(&scope);
    let xent = ops::sparse_softmax_cross_entropy_with_logits(
        logits.clone(),
        y.clone(),
        &mut scope.with_op_name("xent"),
    )
    .unwrap();
    let session = Session::new(&SessionOptions::new(), &scope.graph()).unwrap();
    let batches = ds.batches(LoaderOptions::default().batch_size(8)).unwrap();
    let batch = batches.iter().next().unwrap().unwrap();
    let labels = batch.targets.tensor().unwrap();
    match labels {
        BatchTensor::Int64(t) => assert_eq!(t.to_vec(), [3, 0, 1, 3, 2]),
        other => panic!("expected int64 labels, got {other:?}"),
    }
    let zeros = tensorflow::Tensor::<f32>::new(&[5, grades.num_classes() as u64]);
    let mut args = SessionRunArgs::new();
    args.add_feed(&logits, 0, &zeros);
    labels.add_feed(&mut args, &y, 0);
    let losses = args.request_fetch(&xent, 0);
    session.run(&mut args).unwrap();
    let losses: tensorflow::Tensor<f32> = args.fetch(losses).unwrap();
    assert_eq!(losses.dims(), [5]);
    assert!(
        losses.iter().all(|l| (l - 4f32.ln()).abs() < 1e-5),
        "{:?}",
        losses.to_vec()
    );
}
