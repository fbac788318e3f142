//! Runs the `train` example's code path: softmax regression fed through a `Session`.

#[path = "../examples/train.rs"]
mod train_example;

#[test]
fn session_training_on_the_fixture_bag_decreases_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let bag = train_example::fixture_bag(dir.path()).unwrap();
    let losses = train_example::train(&bag, 10).unwrap();
    assert_eq!(losses.len(), 11);
    // Zero weights give uniform logits: ln 4 for every image.
    assert!((losses[0] - 4f32.ln()).abs() < 1e-4, "{losses:?}");
    assert!(
        losses[10] < losses[0] * 0.95,
        "loss should fall: {losses:?}"
    );
    assert!(
        losses[10] < losses[5],
        "loss should keep falling: {losses:?}"
    );
}
