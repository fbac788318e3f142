//! Runs the `train` example's code path, as `cargo xtask demo` does: a small CNN on the demo
//! bag's Glaucoma grades for the example's default epochs.

#[path = "../examples/train.rs"]
mod train_example;

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn training_on_the_demo_bag_takes_the_loss_from_chance_to_well_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let bag = train_example::fixture_bag(dir.path()).unwrap();
    let losses = train_example::train(&bag, train_example::EPOCHS).unwrap();
    assert_eq!(losses.len(), train_example::EPOCHS + 1);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    // Zero output weights: the uniform prediction, ln 4, for every image.
    assert!((losses[0] - 4f64.ln()).abs() < 1e-6, "{losses:?}");
    // Windows of five epochs, so that one noisy step decides nothing.
    let (first, last) = (mean(&losses[..5]), mean(&losses[losses.len() - 5..]));
    assert!(
        last < first - 0.5,
        "the loss should fall by more than 0.5 (first five {first:.3}, last five {last:.3}): {losses:?}"
    );
    // Below the class prior of the five labels (2 Severe, 1 Mild, 1 Moderate, 1 Normal:
    // cross-entropy 1.33), which predicting the frequencies alone would reach.
    assert!(last < 1.0, "{losses:?}");
}
