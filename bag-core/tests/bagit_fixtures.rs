//! BagIt reading and validation on the generated fixture bags (helper-built, bdbag-shaped).
#![cfg(feature = "fixtures")]

use std::fs;

use deriva_bag_core::archive::extract;
use deriva_bag_core::archive_write::{write_tgz, write_zip};
use deriva_bag_core::bagit::{Algorithm, BagItFiles, ValidationMode};
use deriva_bag_core::fixtures::{self, FixtureSpec};

const ALL_MODES: [ValidationMode; 4] = [
    ValidationMode::Structure,
    ValidationMode::Completeness,
    ValidationMode::Fast,
    ValidationMode::Full,
];

#[test]
fn small_materialized_bag_passes_every_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let generated = fixtures::small_bag(tmp.path()).unwrap();
    let files = BagItFiles::read(&generated.path).unwrap();
    assert_eq!(files.fetch.len(), generated.assets.len());
    // manifest-md5 lists every asset (local or remote), as bdbag's does.
    let md5 = files.manifest(Algorithm::Md5).unwrap();
    for asset in &generated.assets {
        let entry = md5
            .entries
            .iter()
            .find(|e| e.path == asset.bag_path)
            .unwrap_or_else(|| panic!("{} not in manifest-md5.txt", asset.bag_path));
        assert_eq!(entry.digest, asset.md5);
    }
    for mode in ALL_MODES {
        let report = files.validate(mode, None).unwrap();
        assert!(report.valid, "{mode}: {:?}", report.errors);
    }
}

#[test]
fn small_holey_bag_passes_structure_and_completeness_but_not_fast_or_full() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = FixtureSpec {
        materialized: false,
        ..FixtureSpec::default()
    };
    let generated = fixtures::generate(&spec, tmp.path()).unwrap();
    let files = BagItFiles::read(&generated.path).unwrap();
    assert!(
        files
            .validate(ValidationMode::Structure, None)
            .unwrap()
            .valid
    );
    assert!(
        files
            .validate(ValidationMode::Completeness, None)
            .unwrap()
            .valid
    );
    let fast = files.validate(ValidationMode::Fast, None).unwrap();
    assert_eq!(fast.errors.len(), 1);
    assert_eq!(fast.errors[0].kind, "oxum-mismatch");
    let full = files.validate(ValidationMode::Full, None).unwrap();
    let mut missing: Vec<&str> = full.errors.iter().map(|i| i.path.as_str()).collect();
    missing.sort();
    let mut expected: Vec<&str> = generated
        .assets
        .iter()
        .map(|a| a.bag_path.as_str())
        .collect();
    expected.sort();
    assert_eq!(missing, expected);
    assert!(full.errors.iter().all(|i| i.kind == "missing-file"));
}

#[test]
fn small_bag_zip_and_tgz_extract_to_a_valid_bag() {
    let tmp = tempfile::tempdir().unwrap();
    let generated = fixtures::small_bag(tmp.path()).unwrap();
    let cache = tmp.path().join("cache");
    let zip = tmp.path().join("Dataset_1-D000.zip");
    let tgz = tmp.path().join("Dataset_1-D000.tgz");
    write_zip(&generated.path, &zip).unwrap();
    write_tgz(&generated.path, &tgz).unwrap();
    let original = BagItFiles::read(&generated.path).unwrap();
    for archive in [&zip, &tgz] {
        let bag = extract(archive, &cache).unwrap();
        assert_eq!(bag.file_name().unwrap(), "Dataset_1-D000");
        let files = BagItFiles::read(&bag).unwrap();
        assert_eq!(files.cache_key(), original.cache_key());
        assert!(files.validate(ValidationMode::Full, None).unwrap().valid);
    }
    // Only the two extractions (and their lock files) are in the cache.
    let dirs = fs::read_dir(cache.join("extracted"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(dirs, 2);
}
