//! Online DerivaML through `deriva-bag-core` alone (feature `catalog`): the download comes
//! back opened as a `DatasetBag`.

#[path = "../../tests/common/mod.rs"]
mod common;
mod opened;

use deriva_bag_core::catalog::{DatasetSpec, DerivaMlExt};
use deriva_bag_core::features::Selector;
use deriva_bag_core::OpenOptions;
use deriva_test_catalog::TestCatalog;
use opened::assert_opened_training_bag;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_dataset_bag_opened_returns_the_training_dataset_as_a_dataset_bag() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = common::connect(&server, &dir.path().join("work")).await;
    let options = OpenOptions {
        cache_dir: Some(dir.path().join("index")),
        ..OpenOptions::default()
    };

    let bag = ml
        .download_dataset_bag_opened_with(DatasetSpec::new("1-D001", Some("1.0.0")), &options)
        .await
        .unwrap();

    assert_opened_training_bag(&bag, &dir.path().join("work"));
    assert_eq!(
        bag.feature_values("Image", "Glaucoma", Some(&Selector::newest()))
            .unwrap()
            .len(),
        3
    );

    // A second call reuses the downloaded bag and its index: the same directory.
    let again = ml
        .download_dataset_bag_opened_with(DatasetSpec::new("1-D001", Some("1.0.0")), &options)
        .await
        .unwrap();
    assert_eq!(again.path(), bag.path());
}
