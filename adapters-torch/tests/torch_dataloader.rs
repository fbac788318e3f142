//! `DataLoader` over the fixture bag: stacking, dtypes, shuffle, shards, workers.

mod common;

use std::collections::BTreeMap;

use deriva_bag_core::fixtures::FixtureSpec;
use deriva_bag_features::{Missing, Selector, Targets};
use deriva_bag_torch::image::{ImagePipeline, ToTensor};
use deriva_bag_torch::{
    as_torch_dataset, BatchSamples, BatchTargets, DataLoader, EvenShards, Label, LoaderOptions,
    Target, TorchDataset, TorchOptions,
};
use tch::Kind;

const GRADES: [&str; 4] = ["Normal", "Mild", "Moderate", "Severe"];

fn labeled(bag: &deriva_bag_core::DatasetBag) -> TorchDataset {
    let pipeline = ImagePipeline::new()
        .resize(32)
        .center_crop(32, 32)
        .imagenet_normalize();
    let options = TorchOptions::default()
        .sample_loader(move |path, _row| pipeline.load(path))
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .target_transform(|t: Option<&Target>| {
            let term = t.and_then(Target::label).ok_or("unlabeled")?;
            let idx = GRADES
                .iter()
                .position(|g| *g == term)
                .ok_or("unknown grade")?;
            Ok::<_, &str>(Label::Class(idx as i64))
        })
        .missing(Missing::Skip);
    as_torch_dataset(bag, "Image", options).unwrap()
}

fn rid_batches(loader: &DataLoader, epoch: u64) -> Vec<Vec<String>> {
    loader
        .epoch(epoch)
        .map(|b| common::rids(&b.unwrap().rids))
        .collect()
}

#[test]
fn batches_stack_images_and_class_indices() {
    let f = common::small();
    let ds = labeled(&f.bag);
    let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(2)).unwrap();
    assert_eq!(loader.len(), 3);
    let batches: Vec<_> = loader.iter().map(Result::unwrap).collect();
    let first = &batches[0];
    let images = first.samples.tensor().unwrap();
    assert_eq!(images.size(), [2, 3, 32, 32]);
    assert_eq!(images.kind(), Kind::Float);
    let labels = first.targets.tensor().unwrap();
    assert_eq!(labels.kind(), Kind::Int64);
    assert_eq!(Vec::<i64>::try_from(labels).unwrap(), vec![3, 1]); // I001 Severe, I002 Mild
    assert_eq!(common::rids(&first.rids), ["1-I001", "1-I002"]);
    let last = &batches[2];
    assert_eq!(last.samples.tensor().unwrap().size(), [1, 3, 32, 32]);
    assert_eq!(common::rids(&last.rids), ["1-I006"]);
}

#[test]
fn drop_last_drops_the_short_batch() {
    let f = common::small();
    let ds = labeled(&f.bag);
    let loader =
        DataLoader::new(&ds, LoaderOptions::default().batch_size(2).drop_last(true)).unwrap();
    assert_eq!(
        rid_batches(&loader, 0),
        [vec!["1-I001", "1-I002"], vec!["1-I003", "1-I005"]]
    );
}

#[test]
fn float_and_multi_target_labels_collate_per_name() {
    let f = common::small();
    let options = TorchOptions::default()
        .sample_loader(|path, _row| deriva_bag_torch::image::load_rgb(path))
        .targets(
            Targets::new()
                .with("Glaucoma", Selector::Newest)
                .with_name("Subject"),
        )
        .target_transform(|t: Option<&Target>| {
            let t = t.ok_or("unlabeled")?;
            let term = t
                .value("Glaucoma")
                .and_then(|v| v.label())
                .ok_or("no grade")?;
            let subject = t
                .value("Subject")
                .and_then(|v| v.label())
                .ok_or("no subject")?;
            let grade = GRADES
                .iter()
                .position(|g| *g == term)
                .ok_or("unknown grade")? as i64;
            Ok::<_, &str>(Label::Map(
                [
                    ("grade".to_string(), Label::Class(grade)),
                    (
                        "subject".to_string(),
                        Label::Float(subject[4..].parse::<f64>().unwrap()),
                    ),
                ]
                .into_iter()
                .collect(),
            ))
        })
        .missing(Missing::Skip);
    let ds = as_torch_dataset(&f.bag, "Image", options).unwrap();
    let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(5)).unwrap();
    let batch = loader.iter().next().unwrap().unwrap();
    let BatchTargets::Map(map) = &batch.targets else {
        panic!("expected a map")
    };
    let grade = map["grade"].tensor().unwrap();
    let subject = map["subject"].tensor().unwrap();
    assert_eq!(grade.kind(), Kind::Int64);
    assert_eq!(subject.kind(), Kind::Float);
    assert_eq!(Vec::<i64>::try_from(grade).unwrap(), vec![3, 1, 2, 3, 0]);
    assert_eq!(
        Vec::<f32>::try_from(subject).unwrap(),
        vec![1.0, 1.0, 2.0, 3.0, 3.0]
    );
}

#[test]
fn row_samples_batch_as_rows() {
    let f = common::small();
    let ds = as_torch_dataset(&f.bag, "Subject", TorchOptions::default()).unwrap();
    let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(3)).unwrap();
    let batch = loader.iter().next().unwrap().unwrap();
    let BatchSamples::Rows(rows) = &batch.samples else {
        panic!("expected rows")
    };
    let names: Vec<_> = rows.iter().map(|r| r.text("Name").unwrap()).collect();
    assert_eq!(names, ["Thing1", "Thing2", "Thing3"]);
    assert!(matches!(batch.targets, BatchTargets::None));
}

#[test]
fn shuffle_is_reproducible_with_a_seed() {
    let f = common::small();
    let ds = labeled(&f.bag);
    let options = LoaderOptions::default().batch_size(2).shuffle(11);
    let a = DataLoader::new(&ds, options.clone()).unwrap();
    let b = DataLoader::new(&ds, options).unwrap();
    assert_eq!(rid_batches(&a, 0), rid_batches(&b, 0));
    assert_eq!(rid_batches(&a, 1), rid_batches(&b, 1));
    let mut all: Vec<String> = rid_batches(&a, 0).concat();
    all.sort();
    assert_eq!(all, ["1-I001", "1-I002", "1-I003", "1-I005", "1-I006"]);
}

#[test]
fn shards_cover_every_element_exactly_once() {
    let f = common::small();
    let ds = labeled(&f.bag);
    for world in 1..=3 {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for rank in 0..world {
            let options = LoaderOptions::default()
                .batch_size(2)
                .shuffle(3)
                .shard(rank, world);
            let loader = DataLoader::new(&ds, options).unwrap();
            for rid in rid_batches(&loader, 0).concat() {
                *seen.entry(rid).or_default() += 1;
            }
        }
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            ["1-I001", "1-I002", "1-I003", "1-I005", "1-I006"]
        );
        assert!(seen.values().all(|&n| n == 1), "world {world}: {seen:?}");
    }
}

#[test]
fn even_shards_give_three_ranks_the_same_count_of_ten_images() {
    let f = common::open(&FixtureSpec::with_images(10));
    let pipeline = ImagePipeline::new().resize(8).center_crop(8, 8);
    let options = TorchOptions::default().sample_loader(move |path, _row| pipeline.load(path));
    let ds = as_torch_dataset(&f.bag, "Image", options).unwrap();
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
                let loader = DataLoader::new(&ds, options).unwrap();
                let rids = rid_batches(&loader, 0).concat();
                assert_eq!(loader.len(), rids.len().div_ceil(2), "rank {rank}");
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
    let all: Vec<String> = common::rids(&ds.rids());

    let uneven = shards(None);
    assert_eq!(sizes(&uneven), [4, 3, 3]);

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
    assert_eq!(twice.len(), 2, "{seen:?}");
    // The repeats are the first two of the epoch's order: rank 0's and rank 1's first.
    let mut firsts = vec![&padded[0][0], &padded[1][0]];
    firsts.sort();
    assert_eq!(twice, firsts);

    let dropped = shards(Some(EvenShards::Drop));
    assert_eq!(sizes(&dropped), [3, 3, 3]);
    let seen = count(&dropped);
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "disjoint: {seen:?}");
}

#[test]
fn workers_yield_the_same_batches_as_one_thread() {
    let f = common::small();
    let ds = labeled(&f.bag);
    let single = DataLoader::new(&ds, LoaderOptions::default().batch_size(2).shuffle(5)).unwrap();
    let threaded = DataLoader::new(
        &ds,
        LoaderOptions::default()
            .batch_size(2)
            .shuffle(5)
            .num_workers(3)
            .prefetch(1),
    )
    .unwrap();
    for epoch in 0..3 {
        let a: Vec<_> = single.epoch(epoch).map(Result::unwrap).collect();
        let b: Vec<_> = threaded.epoch(epoch).map(Result::unwrap).collect();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.rids, y.rids);
            assert!(x
                .samples
                .tensor()
                .unwrap()
                .equal(y.samples.tensor().unwrap()));
            assert!(x
                .targets
                .tensor()
                .unwrap()
                .equal(y.targets.tensor().unwrap()));
        }
    }
}

#[test]
fn every_epoch_yields_every_element() {
    let f = common::small();
    let ds = labeled(&f.bag);
    let loader = DataLoader::new(
        &ds,
        LoaderOptions::default()
            .batch_size(2)
            .shuffle(1)
            .num_workers(2),
    )
    .unwrap();
    for _ in 0..3 {
        let mut all: Vec<String> = loader
            .iter()
            .flat_map(|b| common::rids(&b.unwrap().rids))
            .collect();
        all.sort();
        assert_eq!(all, ["1-I001", "1-I002", "1-I003", "1-I005", "1-I006"]);
    }
}

/// A tabular regression: `targets=["IOP_Reading"]` (newest reading per
/// measurement), `target_transform=lambda rec: float(rec.IOP_Value)`.
fn iop_regression() -> TorchOptions {
    TorchOptions::default()
        .targets(Targets::new().with("IOP_Reading", Selector::Newest))
        .target_transform(|t: Option<&Target>| {
            let record = t
                .and_then(|t| t.value("IOP_Reading"))
                .and_then(|v| v.record())
                .ok_or("no reading")?;
            let iop = record.get("IOP_Value").and_then(|v| v.as_f64());
            Ok::<_, &str>(Label::Float(iop.ok_or("no IOP_Value")?))
        })
        .missing(Missing::Skip)
}

#[test]
fn tabular_regression_batches_rows_with_float_targets() {
    let f = common::small();
    let ds = as_torch_dataset(&f.bag, "Measurement", iop_regression()).unwrap();
    assert_eq!(
        common::rids(&ds.rids()),
        ["1-M001", "1-M002", "1-M003", "1-M004", "1-M005"]
    );
    let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(5)).unwrap();
    let batch = loader.iter().next().unwrap().unwrap();
    let BatchSamples::Rows(rows) = &batch.samples else {
        panic!("expected rows")
    };
    let eyes: Vec<_> = rows.iter().map(|r| r.text("Eye").unwrap()).collect();
    assert_eq!(eyes, ["OD", "OS", "OD", "OS", "OD"]);
    let targets = batch.targets.tensor().unwrap();
    assert_eq!(targets.kind(), Kind::Float);
    assert_eq!(targets.size(), [5]);
    assert_eq!(
        Vec::<f32>::try_from(targets).unwrap(),
        [15.5, 16.0, 23.0, 14.0, 18.25]
    );
    // Without a selector, 1-M003's two readings are a conflict, vocabulary or not.
    let err = as_torch_dataset(
        &f.bag,
        "Measurement",
        TorchOptions::default()
            .targets(Targets::names(["IOP_Reading"]))
            .missing(Missing::Skip),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("1-M003: [1-P003, 1-P004]"), "{err}");
}

#[test]
fn cache_loads_each_image_once_and_hands_out_copies() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let f = common::small();
    let loads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&loads);
    let options = TorchOptions::default().sample_loader(move |path, _row| {
        counter.fetch_add(1, Ordering::Relaxed);
        deriva_bag_torch::image::load_rgb(path)
    });
    let ds = as_torch_dataset(&f.bag, "Image", options).unwrap();
    let cached = ds.cache(ds.len());
    let loader = DataLoader::new(
        &cached,
        LoaderOptions::default()
            .batch_size(4)
            .shuffle(1)
            .num_workers(2),
    )
    .unwrap();
    let sums: Vec<Vec<f64>> = (0..3)
        .map(|epoch| {
            loader
                .epoch(epoch)
                .map(|b| {
                    b.unwrap()
                        .samples
                        .tensor()
                        .unwrap()
                        .sum(Kind::Double)
                        .double_value(&[])
                })
                .collect()
        })
        .collect();
    assert_eq!(loads.load(Ordering::Relaxed), 6, "6 images decoded once");
    assert_eq!(cached.cached(), 6);
    let total = |epoch: &Vec<f64>| epoch.iter().sum::<f64>();
    assert!((total(&sums[0]) - total(&sums[2])).abs() < 1e-6, "{sums:?}");

    // A returned tensor is a copy: zeroing it leaves the cached one intact.
    let before = cached.get(0).unwrap();
    let deriva_bag_torch::Sample::Loaded(mut t) = before.sample else {
        panic!("expected a tensor")
    };
    let sum = t.sum(Kind::Double).double_value(&[]);
    let _ = t.zero_();
    let again = cached.get(0).unwrap();
    let deriva_bag_torch::Sample::Loaded(t) = again.sample else {
        panic!("expected a tensor")
    };
    assert_eq!(t.sum(Kind::Double).double_value(&[]), sum);
    assert_eq!(loads.load(Ordering::Relaxed), 6);

    let bounded = ds.cache(2);
    for _ in 0..2 {
        assert_eq!(bounded.iter().filter(|i| i.is_ok()).count(), 6);
    }
    assert_eq!(bounded.cached(), 2);
    assert_eq!(loads.load(Ordering::Relaxed), 6 + 6 + 4);
}

#[test]
fn a_dropped_batch_hands_its_tensor_to_the_next_batch_but_a_kept_one_is_never_reused() {
    let f = common::small();
    let ds = labeled(&f.bag);
    let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(1)).unwrap();
    let mut epoch = loader.epoch(0);
    let ptr = |b: &deriva_bag_torch::TorchBatch| b.samples.tensor().unwrap().data_ptr() as usize;
    let first = epoch.next().unwrap().unwrap();
    let first_ptr = ptr(&first);
    drop(first);
    let second = epoch.next().unwrap().unwrap();
    assert_eq!(
        ptr(&second),
        first_ptr,
        "the dropped batch's storage is reused"
    );
    assert_eq!(common::rids(&second.rids), ["1-I002"]);

    // The caller keeps the images past the batch: that storage is left alone.
    let kept = second.samples.tensor().unwrap().shallow_clone();
    let values = Vec::<f32>::try_from(kept.flatten(0, -1)).unwrap();
    drop(second);
    let third = epoch.next().unwrap().unwrap();
    assert_eq!(third.samples.tensor().unwrap().size(), kept.size());
    assert_ne!(ptr(&third), kept.data_ptr() as usize);
    assert_eq!(Vec::<f32>::try_from(kept.flatten(0, -1)).unwrap(), values);
    assert_eq!(common::rids(&third.rids), ["1-I003"]);
}
