//! Online DerivaML through `deriva-bag-core` alone (feature `catalog`): the download comes
//! back opened as a `DatasetBag`.

#[path = "../../tests/common/mod.rs"]
mod common;

use deriva_bag_core::catalog::{DatasetSpec, DerivaMlExt};
use deriva_bag_core::features::Selector;
use deriva_bag_core::OpenOptions;
use deriva_test_catalog::TestCatalog;

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

    assert_eq!(bag.rid().as_str(), "1-D001");
    assert!(bag.is_materialized());
    assert!(bag.path().ends_with("Dataset_1-D001"));
    assert!(bag.path().starts_with(dir.path().join("work")));
    let members = bag.list_dataset_members(false, None).unwrap();
    let mut images: Vec<String> = members
        .iter()
        .find(|(t, _)| t.table == "Image")
        .map(|(_, rows)| {
            rows.iter()
                .map(|r| r.rid().unwrap().as_str().to_string())
                .collect()
        })
        .unwrap();
    images.sort();
    // The fixture's Training images (bag-core `fixtures::rows`, SMALL_IMAGES).
    assert_eq!(images, ["1-I001", "1-I002", "1-I005"]);
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
