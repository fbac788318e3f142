//! Softmax regression on a generated fixture bag's Glaucoma grades with the TensorFlow C API:
//! a graph with placeholders, one dense layer, softmax cross-entropy and gradient descent,
//! fed batches from `as_tf_dataset` through a `Session` (by default on the demo's small
//! fixture bag). Prints the element spec and the loss as it falls from chance (ln 4).
//!
//! ```sh
//! . .ci/ml-libs.sh
//! cargo run -p deriva-bag-tf --example tf_train            # generates a fixture bag
//! cargo run -p deriva-bag-tf --example tf_train -- <bag>   # or trains on your bag
//! cargo run -p deriva-bag-tf --example tf_train -- <bag> 20  # for 20 epochs
//! ```

use std::error::Error;
use std::path::Path;

use deriva_bag_core::features::{Missing, Selector, Targets};
use deriva_bag_core::fixtures::{open_cached, FixtureSpec};
use deriva_bag_core::tf::image::{ImagePipeline, ToSample};
use deriva_bag_core::tf::tensorflow::train::{
    GradientDescentOptimizer, MinimizeOptions, Optimizer,
};
use deriva_bag_core::tf::tensorflow::{
    ops, DataType, Scope, Session, SessionOptions, SessionRunArgs, Tensor, Variable,
};
use deriva_bag_core::tf::{as_tf_dataset, ClassLabels, LoaderOptions, TfOptions};
use deriva_bag_core::DatasetBag;
/// Epochs when none are given: one step each on the demo bag (five labeled images, one
/// batch), enough for the loss to fall clearly below chance.
pub const EPOCHS: usize = 30;
const SIDE: u32 = 32;
const FEATURES: u64 = (SIDE * SIDE * 3) as u64;

/// Center-crops each image to `SIDE × SIDE` (the fixture's noisy pixels are what lets a
/// linear model tell the images apart; an antialiased resize would smooth them away) and
/// returns centered `HWC` floats in `[-0.5, 0.5]` (centering keeps plain gradient descent
/// stable).
fn image_pipeline() -> ImagePipeline {
    ImagePipeline::new()
        .center_crop(SIDE, SIDE)
        .normalize([0.5; 3], [1.0; 3])
}

/// Trains for `epochs` epochs; returns the loss over the whole dataset before training and
/// after each epoch (`epochs + 1` values; the first is ln 4 from the zero weights).
pub fn train(bag: &DatasetBag, epochs: usize) -> Result<Vec<f32>, Box<dyn Error>> {
    // Class indices over the Glaucoma vocabulary's terms, sorted: int64 labels.
    let grades = ClassLabels::of_feature(bag, "Image", "Glaucoma")?;
    let classes = grades.num_classes() as u64;
    let options = TfOptions::default()
        .sample_loader({
            let pipeline = image_pipeline();
            move |path, _row| pipeline.load(path)
        })
        .targets(Targets::new().with("Glaucoma", Selector::Newest))
        .target_transform(grades.target_transform())
        .missing(Missing::Skip);
    let dataset = as_tf_dataset(bag, "Image", options, None)?;
    let signature = dataset.signature();
    println!(
        "{} labeled images; each element is (sample, target, rid):",
        dataset.len()
    );
    println!("  sample  {}", signature.sample);
    println!("  target  {}", signature.target);
    println!("  rid     TensorSpec(shape=[], dtype=string)");
    let batches = dataset.batches(
        LoaderOptions::default()
            .batch_size(8)
            .shuffle(0)
            .num_workers(2),
    )?;

    let mut scope = Scope::new_root_scope();
    let scope = &mut scope;
    let x = ops::Placeholder::new()
        .dtype(DataType::Float)
        .shape([-1i64, i64::from(SIDE), i64::from(SIDE), 3])
        .build(&mut scope.with_op_name("x"))?;
    let y = ops::Placeholder::new()
        .dtype(DataType::Int64)
        .shape([-1i64])
        .build(&mut scope.with_op_name("y"))?;
    // softmax_cross_entropy_with_logits takes dense label rows: one-hot in the graph.
    let y_one_hot = ops::one_hot(
        y.clone(),
        ops::constant(classes as i32, scope)?,
        ops::constant(1.0f32, scope)?,
        ops::constant(0.0f32, scope)?,
        scope,
    )?;
    let flat = ops::reshape(
        x.clone(),
        ops::constant(&[-1i64, FEATURES as i64][..], scope)?,
        scope,
    )?;
    // 3072 inputs per image in [-0.5, 0.5]: a step of 0.02 keeps plain gradient descent
    // stable (also on a 40-image bag) while the loss falls clearly within 30 steps.
    // Zero initial weights: softmax regression is convex, so this is deterministic and fine.
    let w = Variable::builder()
        .const_initial_value(Tensor::<f32>::new(&[FEATURES, classes]))
        .build(&mut scope.with_op_name("w"))?;
    let b = Variable::builder()
        .const_initial_value(Tensor::<f32>::new(&[classes]))
        .build(&mut scope.with_op_name("b"))?;
    let logits = ops::add(
        ops::mat_mul(flat, w.output().clone(), scope)?,
        b.output().clone(),
        scope,
    )?;
    let xent = ops::softmax_cross_entropy_with_logits(logits, y_one_hot, scope)?;
    let loss = ops::mean(
        xent,
        ops::constant(&[0i32][..], scope)?,
        &mut scope.with_op_name("loss"),
    )?;
    let optimizer = GradientDescentOptimizer::new(ops::constant(0.02f32, scope)?);
    let variables = vec![w.clone(), b.clone()];
    let (_, minimize) = optimizer.minimize(
        scope,
        loss.clone().into(),
        MinimizeOptions::default().with_variables(&variables),
    )?;

    let session = Session::new(&SessionOptions::new(), &scope.graph())?;
    let mut init = SessionRunArgs::new();
    for v in &variables {
        init.add_target(v.initializer());
    }
    session.run(&mut init)?;

    // One pass over the batches; trains when `train` is set, and returns the mean loss
    // weighted by batch size.
    let run_epoch = |train: bool| -> Result<f32, Box<dyn Error>> {
        let (mut sum, mut count) = (0.0f32, 0usize);
        for batch in &batches {
            let batch = batch?;
            let labels = batch.targets.tensor().ok_or("labels did not stack")?;
            let images = batch.samples.tensor().ok_or("samples are not one tensor")?;
            let mut args = SessionRunArgs::new();
            images.add_feed(&mut args, &x, 0);
            labels.add_feed(&mut args, &y, 0);
            if train {
                args.add_target(&minimize);
            }
            let fetch = args.request_fetch(&loss, 0);
            session.run(&mut args)?;
            sum += args.fetch::<f32>(fetch)?[0] * batch.rids.len() as f32;
            count += batch.rids.len();
        }
        Ok(sum / count.max(1) as f32)
    };
    let mut losses = vec![run_epoch(false)?];
    println!(
        "loss over every labeled image (chance: ln {classes} = {:.4})",
        (classes as f32).ln()
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
