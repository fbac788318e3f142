//! README's training example, compiled by CI (`cargo test --all-features` builds examples):
//! open a bag, drop unlabeled images (`Missing::Skip`), turn each Glaucoma grade into a class
//! index with the vocabulary's `ClassLabels`, and take a few SGD steps, printing the loss. README shows the lines between the
//! `README:begin` and `README:end` markers verbatim (a test in `tests/readme.rs` checks).
//!
//! ```sh
//! cargo run -p deriva-bag-core --features torch --example readme_train -- Dataset_1-D000.zip
//! ```

// README:begin
use deriva_bag_core::features::{Missing, Selector, Targets};
use deriva_bag_core::torch::image::{ImagePipeline, ToTensor};
use deriva_bag_core::torch::tch::nn::{self, Module, OptimizerConfig};
use deriva_bag_core::torch::tch::Device;
use deriva_bag_core::torch::{ClassLabels, DataLoader, LoaderOptions, TorchOptions};
use deriva_bag_core::DatasetBag;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: readme_train BAG (a bag directory or archive)")?;
    let bag = DatasetBag::open(&path)?;
    // The classes: every term of the Glaucoma vocabulary, sorted (torchvision's class_to_idx).
    let grades = ClassLabels::of_feature(&bag, "Image", "Glaucoma")?;
    println!("classes: {:?}", grades.classes());
    let pipeline = ImagePipeline::new().resize(16).center_crop(16, 16);
    let options = TorchOptions::default()
        .sample_loader(move |path, _row| pipeline.load(path))
        // Annotators disagree: without a selector this is an error naming the RIDs.
        .targets(Targets::new().with("Glaucoma", Selector::newest()))
        // Each image's grade as its class index.
        .target_transform(grades.target_transform())
        // Images without a grade are left out, not an error.
        .missing(Missing::Skip);
    let dataset = bag.as_torch_dataset("Image", options)?;
    let loader = DataLoader::new(&dataset, LoaderOptions::default().batch_size(8).shuffle(0))?;

    let vs = nn::VarStore::new(Device::Cpu);
    let net = nn::seq().add_fn(|x| x.flatten(1, -1)).add(nn::linear(
        vs.root() / "fc",
        3 * 16 * 16,
        grades.num_classes() as i64,
        Default::default(),
    ));
    let mut opt = nn::Sgd::default().build(&vs, 0.01)?;
    for epoch in 0..5 {
        for batch in &loader {
            let batch = batch?;
            let images = batch.samples.tensor().ok_or("no image tensor")?;
            let classes = batch.targets.tensor().ok_or("no class tensor")?;
            let loss = net.forward(images).cross_entropy_for_logits(classes);
            opt.backward_step(&loss);
            println!("epoch {epoch}: loss {:.4}", loss.double_value(&[]));
        }
    }
    Ok(())
}
// README:end
