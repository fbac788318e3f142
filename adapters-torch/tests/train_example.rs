//! Runs the `train` example's code path: a small CNN on the fixture bag's Glaucoma grades.

#[path = "../examples/train.rs"]
mod train_example;

#[test]
fn training_on_the_fixture_bag_decreases_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let bag = train_example::fixture_bag(dir.path()).unwrap();
    let losses = train_example::train(&bag, 8).unwrap();
    assert_eq!(losses.len(), 9);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[8] < losses[0] * 0.9,
        "loss should fall by at least 10%: {losses:?}"
    );
}
