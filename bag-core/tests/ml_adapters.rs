//! `DatasetBag::as_torch_dataset` / `as_tf_dataset` (cargo features `torch`, `tf`) forward to
//! the adapters, and a training step / Session run that names `tch` and `tensorflow` only
//! through `deriva_bag_core::torch::tch` / `deriva_bag_core::tf::tensorflow` (this crate has
//! no dependency on either). Needs libtorch and the TF C library (`. .ci/ml-libs.sh`).

use deriva_bag_core::features::loader::elements::{Label, Target};
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
    let sample = ds.signature().sample.tensor().unwrap();
    assert_eq!(sample.dtype, DType::UInt8);
    assert_eq!(sample.shape.len(), 1);
}

/// The grade of a resolved Glaucoma target as a class index.
fn grade_class(t: Option<&Target>) -> Result<Label, String> {
    const GRADES: [&str; 4] = ["Normal", "Mild", "Moderate", "Severe"];
    let term = t.and_then(Target::label).ok_or("unlabeled")?;
    let idx = GRADES
        .iter()
        .position(|g| *g == term)
        .ok_or(format!("unknown grade {term}"))?;
    Ok(Label::Class(idx as i64))
}

/// A training step that names `tch` only as `deriva_bag_core::torch::tch`: this crate has no
/// `tch` dependency of its own, so this compiles only through the re-export.
#[test]
fn a_tch_training_step_needs_only_deriva_bag_core() {
    use deriva_bag_core::features::{Missing, Selector, Targets};
    use deriva_bag_core::torch::image::{ImagePipeline, ToTensor};
    use deriva_bag_core::torch::tch::nn::{self, Module, OptimizerConfig};
    use deriva_bag_core::torch::tch::{self, Device, Kind};
    use deriva_bag_core::torch::{DataLoader, LoaderOptions, TorchOptions};

    let dir = tempfile::tempdir().unwrap();
    let bag = open(dir.path());
    let pipeline = ImagePipeline::new().resize(16).center_crop(16, 16);
    let options = TorchOptions::default()
        .sample_loader(move |path, _row| pipeline.load(path))
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .target_transform(grade_class)
        .missing(Missing::Skip);
    let ds = bag.as_torch_dataset("Image", options).unwrap();
    let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(8)).unwrap();
    let batch = (&loader).into_iter().next().unwrap().unwrap();
    let images: &tch::Tensor = batch.samples.tensor().unwrap();
    let labels = batch.targets.tensor().unwrap();
    assert_eq!(images.size(), [5, 3, 16, 16]);
    assert_eq!(labels.kind(), Kind::Int64);

    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = nn::seq().add_fn(|x| x.flatten(1, -1)).add(nn::linear(
        vs.root() / "fc",
        3 * 16 * 16,
        4,
        Default::default(),
    ));
    let mut opt = nn::Sgd::default().build(&vs, 0.01).unwrap();
    let loss = |net: &nn::Sequential| net.forward(images).cross_entropy_for_logits(labels);
    let before = loss(&net).double_value(&[]);
    opt.backward_step(&loss(&net));
    let after = loss(&net).double_value(&[]);
    assert!(
        after < before,
        "one SGD step lowers the loss: {before} -> {after}"
    );
}

/// A Session run that names `tensorflow` only as `deriva_bag_core::tf::tensorflow`.
#[test]
fn a_tensorflow_session_needs_only_deriva_bag_core() {
    use deriva_bag_core::features::{Missing, Selector, Targets};
    use deriva_bag_core::tf::image::{ImagePipeline, ToSample};
    use deriva_bag_core::tf::tensorflow::{
        ops, DataType, Scope, Session, SessionOptions, SessionRunArgs, Tensor,
    };
    use deriva_bag_core::tf::{LoaderOptions, TfOptions};

    let dir = tempfile::tempdir().unwrap();
    let bag = open(dir.path());
    let pipeline = ImagePipeline::new().resize(16).center_crop(16, 16);
    let options = TfOptions::default()
        .sample_loader(move |path, _row| pipeline.load(path))
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .target_transform(grade_class)
        .missing(Missing::Skip);
    let ds = bag.as_tf_dataset("Image", options, None).unwrap();

    let mut scope = Scope::new_root_scope();
    let x = ops::Placeholder::new()
        .dtype(DataType::Float)
        .shape([-1i64, 16, 16, 3])
        .build(&mut scope.with_op_name("x"))
        .unwrap();
    let axes = ops::constant(&[1i32, 2, 3][..], &mut scope).unwrap();
    let per_image = ops::sum(x.clone(), axes, &mut scope.with_op_name("per_image")).unwrap();
    let session = Session::new(&SessionOptions::new(), &scope.graph()).unwrap();

    let batches = ds.batches(LoaderOptions::default().batch_size(8)).unwrap();
    let batch = (&batches).into_iter().next().unwrap().unwrap();
    let mut args = SessionRunArgs::new();
    batch.samples.tensor().unwrap().add_feed(&mut args, &x, 0);
    let token = args.request_fetch(&per_image, 0);
    session.run(&mut args).unwrap();
    let sums: Tensor<f32> = args.fetch(token).unwrap();
    assert_eq!(sums.dims(), [5]);
    assert!(sums.iter().all(|&s| s > 0.0), "{sums:?}");
}
