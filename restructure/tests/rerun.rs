//! Re-runs into an existing output directory, foreign files, non-materialized bags, and an
//! ImageFolder-style walk of the result.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{image_folder_counts, paths, small, tree, with_spec};
use deriva_bag_core::features::Rid;
use deriva_bag_core::fixtures::FixtureSpec;
use deriva_bag_restructure::{
    restructure_assets, Error, Missing, RestructureOptions, Selector, Targets, LEDGER_NAME,
};

fn newest() -> RestructureOptions {
    RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest))
}

#[cfg(unix)]
fn inode(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(p).unwrap().ino()
}

#[test]
#[cfg(unix)]
fn rerun_with_the_same_options_keeps_every_placement_untouched() {
    let fx = small();
    let out = fx.out();
    let first = restructure_assets(&fx.bag, &out, &newest()).unwrap();
    let before: BTreeMap<_, _> = common::pairs(&first)
        .iter()
        .map(|(_, d)| (d.to_path_buf(), inode(d)))
        .collect();
    let second = restructure_assets(&fx.bag, &out, &newest()).unwrap();
    assert_eq!(common::pairs(&first), common::pairs(&second));
    let after: BTreeMap<_, _> = common::pairs(&second)
        .iter()
        .map(|(_, d)| (d.to_path_buf(), inode(d)))
        .collect();
    assert_eq!(before, after, "identical symlinks are kept, not recreated");
    assert!(out.join(LEDGER_NAME).is_file());
}

#[test]
fn rerun_in_copy_mode_replaces_our_symlinks_with_copies() {
    let fx = small();
    let out = fx.out();
    restructure_assets(&fx.bag, &out, &newest()).unwrap();
    let manifest = restructure_assets(&fx.bag, &out, &newest().use_symlinks(false)).unwrap();
    assert_eq!(manifest.len(), 7);
    for (src, dst) in &common::pairs(&manifest) {
        let md = fs::symlink_metadata(dst).unwrap();
        assert!(!md.file_type().is_symlink(), "{}", dst.display());
        assert_eq!(fs::read(src).unwrap(), fs::read(dst).unwrap());
    }
    // And back to symlinks: the identical copies are ours (ledger) and become symlinks again.
    let manifest = restructure_assets(&fx.bag, &out, &newest()).unwrap();
    for (src, dst) in &common::pairs(&manifest) {
        assert_eq!(&fs::read_link(dst).unwrap(), src);
    }
}

#[test]
fn rerun_with_other_targets_removes_the_stale_layout_of_the_earlier_run() {
    let fx = small();
    let out = fx.out();
    restructure_assets(&fx.bag, &out, &newest()).unwrap();
    let by_subject = RestructureOptions::new().targets(Targets::names(["Subject"]));
    restructure_assets(&fx.bag, &out, &by_subject).unwrap();
    assert_eq!(
        tree(&out),
        paths(&[
            "testing/1-S002/retina_004.png",
            "testing/1-S002/rétine_003.png",
            "testing/1-S003/retina%005.jpg",
            "testing/1-S003/retina_006.jpg",
            "training/1-S001/retina 002.jpg",
            "training/1-S001/retina_001.jpg",
            "training/1-S003/retina%005.jpg",
        ])
    );
    // The emptied class directories are gone too, so ImageFolder sees no stale classes.
    assert!(!out.join("training/Severe").exists());
    assert!(!out.join("testing/unknown").exists());
}

#[test]
fn a_foreign_file_at_a_destination_is_never_overwritten_and_nothing_is_written() {
    let fx = small();
    let out = fx.out();
    let mine = out.join("training/Severe/retina_001.jpg");
    fs::create_dir_all(mine.parent().unwrap()).unwrap();
    fs::write(&mine, b"my own notes").unwrap();
    let err = restructure_assets(&fx.bag, &out, &newest()).unwrap_err();
    assert!(matches!(err, Error::Occupied { .. }), "{err}");
    assert!(
        err.to_string().contains("training/Severe/retina_001.jpg"),
        "{err}"
    );
    assert_eq!(fs::read(&mine).unwrap(), b"my own notes");
    assert_eq!(tree(&out), paths(&["training/Severe/retina_001.jpg"]));
}

#[test]
fn an_identical_copy_already_in_place_is_accepted_in_copy_mode() {
    let fx = small();
    let out = fx.out();
    let src = fx
        .generated
        .path
        .join(&fx.generated.asset("1-I001").unwrap().bag_path);
    let dst = out.join("training/Severe/retina_001.jpg");
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    fs::copy(&src, &dst).unwrap();
    let manifest = restructure_assets(&fx.bag, &out, &newest().use_symlinks(false)).unwrap();
    assert_eq!(manifest.len(), 7);
}

#[test]
fn non_materialized_bag_gives_an_empty_manifest_and_lists_the_missing_files() {
    let fx = with_spec(&FixtureSpec {
        materialized: false,
        ..FixtureSpec::default()
    });
    // Missing::Error is checked on what would be placed: nothing, so no error.
    let manifest =
        restructure_assets(&fx.bag, &fx.out(), &newest().missing(Missing::Error)).unwrap();
    assert!(manifest.is_empty());
    let missing: Vec<String> = common::all(manifest.missing_files())
        .into_iter()
        .map(|m| m.rid.to_string())
        .collect();
    assert_eq!(
        missing,
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
    );
    assert_eq!(
        common::all(manifest.missing_files())[1].filename.as_deref(),
        Some("retina 002.jpg")
    );
    assert!(tree(&fx.out()).is_empty());
}

#[test]
fn partially_materialized_bag_places_what_exists() {
    let fx = small();
    let gone = fx
        .generated
        .path
        .join(&fx.generated.asset("1-I002").unwrap().bag_path);
    fs::remove_file(&gone).unwrap();
    let manifest = restructure_assets(&fx.bag, &fx.out(), &newest()).unwrap();
    assert_eq!(manifest.len(), 6);
    assert_eq!(manifest.missing_files().len(), 1);
    assert_eq!(
        common::all(manifest.missing_files())[0].rid.as_str(),
        "1-I002"
    );
    assert!(!tree(&fx.out()).iter().any(|p| p.contains("retina 002")));
}

/// Walks the output like torchvision's ImageFolder and checks every class count against
/// `feature_values` with the same selector on the datasets behind each split.
#[test]
fn image_folder_class_counts_match_feature_values_with_the_same_selector() {
    let fx = small();
    let out = fx.out();
    restructure_assets(&fx.bag, &out, &newest()).unwrap();

    let expected_counts = |rids: &[&str]| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut labelled = std::collections::BTreeSet::new();
        for rid in rids {
            let ds = fx.bag.dataset(&Rid::new(*rid)).unwrap();
            for r in ds
                .feature_values("Image", "Glaucoma", Some(&Selector::Newest))
                .unwrap()
            {
                let target = r.target().unwrap().to_string();
                if labelled.insert(target) {
                    *counts
                        .entry(r.text("Glaucoma").unwrap().to_string())
                        .or_default() += 1;
                }
            }
        }
        counts
    };
    let training = image_folder_counts(&out.join("training"));
    assert_eq!(training, expected_counts(&["1-D001"]));
    assert_eq!(
        training,
        BTreeMap::from([("Mild".to_string(), 1), ("Severe".to_string(), 2)])
    );

    let mut testing = image_folder_counts(&out.join("testing"));
    assert_eq!(testing.remove("unknown"), Some(1), "I004 has no label");
    assert_eq!(testing, expected_counts(&["1-D002", "1-D003"]));
    assert_eq!(
        testing,
        BTreeMap::from([
            ("Moderate".to_string(), 1),
            ("Normal".to_string(), 1),
            ("Severe".to_string(), 1)
        ])
    );
}
