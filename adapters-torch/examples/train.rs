//! Trains a small CNN with Adam on a bag's Glaucoma grades (by default the demo's small
//! fixture bag) and prints the loss over every labeled image as it falls from chance (ln 4).
//!
//! ```sh
//! . .ci/ml-libs.sh
//! cargo run -p deriva-bag-torch --example train            # generates a fixture bag
//! cargo run -p deriva-bag-torch --example train -- <bag>   # or trains on your bag
//! cargo run -p deriva-bag-torch --example train -- <bag> 20  # for 20 epochs
//! ```

use std::error::Error;
use std::path::Path;

use deriva_bag_core::features::{Missing, Selector, Targets};
use deriva_bag_core::fixtures::{open_cached, FixtureSpec};
use deriva_bag_core::torch::image::{ImagePipeline, ToTensor};
use deriva_bag_core::torch::tch::nn::{self, Module, OptimizerConfig};
use deriva_bag_core::torch::tch::{self, Device, Kind};
use deriva_bag_core::torch::{
    as_torch_dataset, ClassLabels, DataLoader, LoaderOptions, TorchOptions,
};
use deriva_bag_core::DatasetBag;
/// Epochs when none are given: one Adam step each on the demo bag (five labeled images, one
/// batch), enough for the loss to fall clearly below chance.
pub const EPOCHS: usize = 30;

/// conv(3→8) → relu → maxpool → conv(8→16) → relu → global average → linear(16→classes).
fn model(vs: &nn::Path, classes: i64) -> impl Module {
    nn::seq()
        .add(nn::conv2d(
            vs / "c1",
            3,
            8,
            3,
            nn::ConvConfig {
                padding: 1,
                ..Default::default()
            },
        ))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(nn::conv2d(
            vs / "c2",
            8,
            16,
            3,
            nn::ConvConfig {
                padding: 1,
                ..Default::default()
            },
        ))
        .add_fn(|x| x.relu().adaptive_avg_pool2d([1, 1]).flatten(1, -1))
        // Zero output weights: every image starts at the uniform prediction, loss ln 4.
        .add(nn::linear(
            vs / "fc",
            16,
            classes,
            nn::LinearConfig {
                ws_init: nn::Init::Const(0.0),
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
        ))
}

/// Trains for `epochs` epochs; returns the loss over the whole dataset before training and
/// after each epoch (`epochs + 1` values).
pub fn train(bag: &DatasetBag, epochs: usize) -> Result<Vec<f64>, Box<dyn Error>> {
    tch::manual_seed(0);
    let pipeline = ImagePipeline::new()
        .resize(32)
        .center_crop(32, 32)
        .imagenet_normalize();
    // Class indices over the Glaucoma vocabulary's terms, sorted.
    let grades = ClassLabels::of_feature(bag, "Image", "Glaucoma")?;
    let options = TorchOptions::default()
        .sample_loader(move |path, _row| pipeline.load(path))
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .target_transform(grades.target_transform())
        .missing(Missing::Skip);
    let dataset = as_torch_dataset(bag, "Image", options)?;
    let loader = DataLoader::new(
        &dataset,
        LoaderOptions::default()
            .batch_size(8)
            .shuffle(0)
            .num_workers(2),
    )?;
    println!(
        "{} labeled images, {} batches per epoch; classes {:?}",
        dataset.len(),
        loader.len(),
        grades.classes()
    );

    let vs = nn::VarStore::new(Device::Cpu);
    let net = model(&vs.root(), grades.num_classes() as i64);
    // Adam at 0.01: on the demo bag's five labeled images the loss falls steadily from ln 4
    // (SGD with momentum at 0.05 only reached the class prior, about 1.33, in 30 epochs).
    let mut opt = nn::Adam::default().build(&vs, 0.01)?;
    // One pass over the loader: trains when `train` is set; returns the mean loss per image.
    let mut run_epoch = |train: bool| -> Result<f64, Box<dyn Error>> {
        let (mut sum, mut count) = (0.0, 0usize);
        for batch in &loader {
            let batch = batch?;
            let images = batch.samples.tensor().ok_or("samples are not tensors")?;
            let labels = batch
                .targets
                .tensor()
                .ok_or("labels are not class indices")?;
            let n = batch.rids.len();
            let loss = if train {
                let loss = net.forward(images).cross_entropy_for_logits(labels);
                opt.backward_step(&loss);
                loss
            } else {
                tch::no_grad(|| net.forward(images).cross_entropy_for_logits(labels))
            };
            sum += loss.double_value(&[]) * n as f64;
            count += n;
        }
        Ok(sum / count.max(1) as f64)
    };
    let mut losses = vec![run_epoch(false)?];
    println!(
        "loss over every labeled image (chance: ln {} = {:.4})",
        grades.num_classes(),
        (grades.num_classes() as f64).ln()
    );
    println!("  before training: {:.4}", losses[0]);
    for epoch in 1..=epochs {
        run_epoch(true)?;
        let loss = run_epoch(false)?;
        if shown(epoch, epochs) {
            println!("  after epoch {epoch:>3}: {loss:.4}");
        }
        losses.push(loss);
    }
    debug_assert_eq!(Kind::Int64, deriva_bag_core::torch::CLASS_KIND);
    Ok(losses)
}

/// Whether the loss after `epoch` (of `epochs`) is printed: about ten lines in all, the last
/// epoch always.
fn shown(epoch: usize, epochs: usize) -> bool {
    epoch == epochs || epoch.is_multiple_of(epochs.div_ceil(10))
}

/// Generates the demo's small fixture bag (`FixtureSpec::default()`: six images, five with a
/// Glaucoma grade) under `dir` and opens it.
pub fn fixture_bag(dir: &Path) -> Result<DatasetBag, Box<dyn Error>> {
    Ok(open_cached(&FixtureSpec::default(), dir)?)
}

#[cfg_attr(test, allow(dead_code))]
fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let mut args = std::env::args().skip(1);
    let bag = match args.next() {
        Some(path) => DatasetBag::open(path)?,
        None => fixture_bag(dir.path())?,
    };
    let epochs = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("epochs {n:?}: {e}"))?,
        None => EPOCHS,
    };
    let losses = train(&bag, epochs)?;
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    println!("loss {first:.4} -> {last:.4} in {epochs} epochs");
    Ok(())
}
