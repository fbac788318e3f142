//! `DatasetBag::as_torch_dataset` / `as_tf_dataset` (cargo features `torch`, `tf`) forward to
//! the adapters. Needs libtorch and the TF C library (`. .ci/ml-libs.sh`).

use deriva_bag_core::fixtures::small_bag;
use deriva_bag_core::{DatasetBag, OpenOptions};

fn open(dir: &std::path::Path) -> DatasetBag {
    let generated = small_bag(&dir.join("bags")).unwrap();
    let options = OpenOptions {
        cache_dir: Some(dir.join("cache")),
        ..OpenOptions::default()
    };
    DatasetBag::open_with(&generated.path, &options).unwrap()
}

#[test]
fn bag_as_torch_dataset_yields_every_reachable_image() {
    use deriva_bag_core::torch::{image::load_rgb, TorchOptions};
    let dir = tempfile::tempdir().unwrap();
    let bag = open(dir.path());
    let ds = bag
        .as_torch_dataset(
            "Image",
            TorchOptions::default().sample_loader(|p, _row| load_rgb(p)),
        )
        .unwrap();
    let rids: Vec<String> = ds.rids().iter().map(|r| r.to_string()).collect();
    assert_eq!(
        rids,
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
    );
}

#[test]
fn bag_as_tf_dataset_infers_the_signature() {
    use deriva_bag_core::tf::{read_bytes, DType, TfOptions};
    let dir = tempfile::tempdir().unwrap();
    let bag = open(dir.path());
    let ds = bag
        .as_tf_dataset(
            "Image",
            TfOptions::default().sample_loader(|p, _row| read_bytes(p)),
            None,
        )
        .unwrap();
    assert_eq!(ds.len(), 6);
    assert_eq!(ds.signature().sample.dtype, DType::UInt8);
    assert_eq!(ds.signature().sample.shape.len(), 1);
}
