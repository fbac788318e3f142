//! Runs the `train` example's code path, as `cargo xtask demo` does: softmax regression fed
//! through a `Session` on the demo bag for the example's default epochs.

#[path = "../examples/train.rs"]
mod train_example;

fn mean(values: &[f32]) -> f32 {
    values.iter().sum::<f32>() / values.len() as f32
}

#[test]
fn session_training_on_the_demo_bag_takes_the_loss_from_chance_to_well_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let bag = train_example::fixture_bag(dir.path()).unwrap();
    let losses = train_example::train(&bag, train_example::EPOCHS).unwrap();
    assert_eq!(losses.len(), train_example::EPOCHS + 1);
    // Zero weights give uniform logits: ln 4 for every image.
    assert!((losses[0] - 4f32.ln()).abs() < 1e-4, "{losses:?}");
    // Windows of five epochs, so that one noisy step decides nothing.
    let (first, last) = (mean(&losses[..5]), mean(&losses[losses.len() - 5..]));
    assert!(
        last < first - 0.5,
        "the loss should fall by more than 0.5 (first five {first:.3}, last five {last:.3}): {losses:?}"
    );
    // Below the class prior of the five labels (cross-entropy 1.33).
    assert!(last < 1.0, "{losses:?}");
    assert!(
        losses[losses.len() - 1] < losses[losses.len() / 2],
        "the loss should keep falling: {losses:?}"
    );
}
