//! The check shared by the tests that get the fixture's Training dataset back opened.

use std::path::Path;

use deriva_bag_core::DatasetBag;

/// `bag` is the opened download of the fixture's `1-D001` (version 1.0.0): materialized under
/// `work`, its direct Image members the fixture's Training images.
pub fn assert_opened_training_bag(bag: &DatasetBag, work: &Path) {
    assert_eq!(bag.rid().as_str(), "1-D001");
    assert!(bag.is_materialized());
    assert!(bag.path().ends_with("Dataset_1-D001"));
    assert!(bag.path().starts_with(work), "{}", bag.path().display());
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
}
