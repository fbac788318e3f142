//! restructure_assets on the small fixture bag (`FixtureSpec::default()`): exact layouts.

mod common;

use std::fs;
use std::path::Path;

use common::{paths, small, tree};
use deriva_bag_core::features::Rid;
use deriva_bag_restructure::{
    restructure_assets, Error, Missing, RestructureOptions, Selector, Targets, LEDGER_NAME,
};

fn newest() -> RestructureOptions {
    RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest))
}

/// DerivaML's main restructure example on the nested fixture: root `Complete` (not in the map, so no
/// level), D001 Training, D002 Testing, D003 untyped (→ testing). I005 is in Training and in
/// Testing (members) and in D003 (via Subject S003): it lands under training/ and testing/,
/// and the two testing placements (D002, D003) are one. I006 is reachable only through S003.
#[test]
fn nested_training_testing_layout_with_select_newest() {
    let fx = small();
    let out = fx.out();
    let manifest = restructure_assets(&fx.bag, &out, &newest()).unwrap();
    assert_eq!(
        tree(&out),
        paths(&[
            "testing/Moderate/rétine_003.png",
            "testing/Normal/retina_006.jpg",
            "testing/Severe/retina%005.jpg",
            "testing/unknown/retina_004.png",
            "training/Mild/retina 002.jpg",
            "training/Severe/retina%005.jpg",
            "training/Severe/retina_001.jpg",
        ])
    );
    assert_eq!(manifest.len(), 7);
    assert_eq!(manifest.source_count().unwrap(), 6, "six assets");
    let i005 = fx
        .generated
        .path
        .join(&fx.generated.asset("1-I005").unwrap().bag_path);
    let root = std::path::absolute(&out).unwrap();
    assert_eq!(
        manifest.destinations(&i005).unwrap(),
        vec![
            root.join("testing/Severe/retina%005.jpg"),
            root.join("training/Severe/retina%005.jpg")
        ]
    );
    assert!(manifest.missing_files().len() == 0);
    assert_eq!(
        common::all(manifest.assets_in_several_splits()),
        [Rid::new("1-I005")]
    );
    // Every manifest pair is a symlink pointing at its (absolute, existing) source.
    for (src, dst) in &common::pairs(&manifest) {
        let target = fs::read_link(dst).unwrap();
        assert!(target.is_absolute(), "{}", target.display());
        assert_eq!(&target, src);
        assert!(target.is_file());
    }
}

#[test]
fn untyped_dataset_is_placed_under_testing() {
    let fx = small();
    let d003 = fx.bag.dataset(&Rid::new("1-D003")).unwrap();
    assert!(d003.dataset_types().is_empty());
    restructure_assets(&d003, &fx.out(), &newest()).unwrap();
    assert_eq!(
        tree(&fx.out()),
        paths(&[
            "testing/Normal/retina_006.jpg",
            "testing/Severe/retina%005.jpg"
        ])
    );
}

#[test]
fn untyped_dataset_uses_the_maps_testing_entry() {
    let fx = small();
    let d003 = fx.bag.dataset(&Rid::new("1-D003")).unwrap();
    let opts = newest().map_type("Testing", "test");
    restructure_assets(&d003, &fx.out(), &opts).unwrap();
    assert_eq!(
        tree(&fx.out()),
        paths(&["test/Normal/retina_006.jpg", "test/Severe/retina%005.jpg"])
    );
}

#[test]
fn no_targets_gives_type_levels_only_and_a_replaced_map_makes_testing_transparent() {
    let fx = small();
    let map = [("Training".to_string(), "train".to_string())].into();
    let opts = RestructureOptions::new().type_to_dir_map(map);
    restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    // D002 (Testing) is not in the map → no level; D003 (untyped) still gets `testing`.
    assert_eq!(
        tree(&fx.out()),
        paths(&[
            "retina%005.jpg",
            "retina_004.png",
            "rétine_003.png",
            "testing/retina%005.jpg",
            "testing/retina_006.jpg",
            "train/retina 002.jpg",
            "train/retina%005.jpg",
            "train/retina_001.jpg",
        ])
    );
}

#[test]
fn type_selector_picks_the_directory_of_a_dataset() {
    let fx = small();
    // Every typed dataset is treated as Validation; untyped D003 stays testing.
    let opts = RestructureOptions::new().type_selector(|types: &[String]| {
        if types[0] == "Complete" {
            "Complete".into()
        } else {
            "Validation".into()
        }
    });
    restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    // I005 (Training and Testing) now maps to one path once.
    assert_eq!(
        tree(&fx.out()),
        paths(&[
            "testing/retina%005.jpg",
            "testing/retina_006.jpg",
            "validation/retina 002.jpg",
            "validation/retina%005.jpg",
            "validation/retina_001.jpg",
            "validation/retina_004.png",
            "validation/rétine_003.png",
        ])
    );
}

#[test]
fn missing_skip_drops_the_unlabeled_image() {
    let fx = small();
    restructure_assets(&fx.bag, &fx.out(), &newest().missing(Missing::Skip)).unwrap();
    let t = tree(&fx.out());
    assert_eq!(t.len(), 6);
    assert!(!t.iter().any(|p| p.contains("retina_004")), "{t:?}");
    assert!(!t.iter().any(|p| p.contains("unknown")), "{t:?}");
}

#[test]
fn missing_error_lists_i004_and_writes_nothing() {
    let fx = small();
    let out = fx.out();
    let err = restructure_assets(&fx.bag, &out, &newest().missing(Missing::Error)).unwrap_err();
    match &err {
        Error::Features(deriva_bag_core::features::Error::UnlabeledElements {
            count,
            listed,
            more,
            ..
        }) => {
            assert_eq!(*count, 1);
            assert_eq!(listed, &vec![Rid::new("1-I004")]);
            assert_eq!(*more, 0);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(
        err.to_string().contains("Unlabeled RIDs: [1-I004]"),
        "{err}"
    );
    assert!(!out.exists(), "output dir must not be created");

    // An existing empty output directory stays empty.
    fs::create_dir_all(&out).unwrap();
    restructure_assets(&fx.bag, &out, &newest().missing(Missing::Error)).unwrap_err();
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn conflicting_values_without_selector_are_an_error_listing_record_rids() {
    let fx = small();
    let opts = RestructureOptions::new().targets(Targets::names(["Glaucoma"]));
    let err = restructure_assets(&fx.bag, &fx.out(), &opts).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("1-I001: [1-A001, 1-A002]"), "{text}");
    assert!(text.contains("1-I003: [1-A004, 1-A005]"), "{text}");
    assert!(text.contains("1-I005: [1-A006, 1-A008, 1-A007]"), "{text}");
    assert!(text.contains("3 element(s)"), "{text}");
    assert!(!fx.out().exists());
}

#[test]
fn without_enforce_vocabulary_the_first_value_by_rct_wins() {
    let fx = small();
    let opts = RestructureOptions::new()
        .targets(Targets::names(["Glaucoma"]))
        .enforce_vocabulary(false);
    restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    // = select_first: I001 Normal (1-A001 is older as an instant), I003 Normal (RCT tie →
    // smaller row RID 1-A004), I005 Mild (1-A006).
    assert_eq!(
        tree(&fx.out()),
        paths(&[
            "testing/Mild/retina%005.jpg",
            "testing/Normal/retina_006.jpg",
            "testing/Normal/rétine_003.png",
            "testing/unknown/retina_004.png",
            "training/Mild/retina 002.jpg",
            "training/Mild/retina%005.jpg",
            "training/Normal/retina_001.jpg",
        ])
    );
}

#[test]
fn majority_vote_selector_groups_i005_as_mild() {
    let fx = small();
    let opts = RestructureOptions::new()
        .targets(Targets::new().with("Glaucoma", Selector::MajorityVote(None)));
    restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    assert_eq!(
        tree(&fx.out()),
        paths(&[
            "testing/Mild/retina%005.jpg",
            "testing/Moderate/rétine_003.png",
            "testing/Normal/retina_006.jpg",
            "testing/unknown/retina_004.png",
            "training/Mild/retina 002.jpg",
            "training/Mild/retina%005.jpg",
            "training/Severe/retina_001.jpg",
        ])
    );
}

#[test]
fn column_target_groups_by_subject_rid() {
    let fx = small();
    let opts = RestructureOptions::new().targets(Targets::names(["Subject"]));
    restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    assert_eq!(
        tree(&fx.out()),
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
}

#[test]
fn multi_target_levels_nest_in_order_and_a_missing_level_is_unknown() {
    let fx = small();
    let opts = RestructureOptions::new().targets(
        Targets::new()
            .with("Glaucoma", Selector::Newest)
            .with_name("Subject"),
    );
    restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    assert_eq!(
        tree(&fx.out()),
        paths(&[
            "testing/Moderate/1-S002/rétine_003.png",
            "testing/Normal/1-S003/retina_006.jpg",
            "testing/Severe/1-S003/retina%005.jpg",
            "testing/unknown/1-S002/retina_004.png",
            "training/Mild/1-S001/retina 002.jpg",
            "training/Severe/1-S001/retina_001.jpg",
            "training/Severe/1-S003/retina%005.jpg",
        ])
    );
}

#[test]
fn unknown_target_name_fails_naming_table_and_what_exists() {
    let fx = small();
    let opts = RestructureOptions::new().targets(Targets::names(["Glaukoma"]));
    let err = restructure_assets(&fx.bag, &fx.out(), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"Glaukoma\""), "{err}");
    assert!(err.contains("demo:Image"), "{err}");
    assert!(err.contains("Glaucoma"), "known features listed: {err}");
    assert!(err.contains("Filename"), "known columns listed: {err}");
    assert!(!fx.out().exists());

    let dotted = RestructureOptions::new().targets(Targets::names(["Glaucoma.Glaucoma"]));
    let err = restructure_assets(&fx.bag, &fx.out(), &dotted)
        .unwrap_err()
        .to_string();
    assert!(err.contains("target_transform"), "{err}");
}

#[test]
fn asset_table_is_auto_detected_and_a_non_asset_table_is_refused() {
    let fx = small();
    let auto = restructure_assets(&fx.bag, &fx.out(), &newest()).unwrap();
    let explicit = restructure_assets(
        &fx.bag,
        &fx.tmp.path().join("out2"),
        &newest().asset_table("demo:Image"),
    )
    .unwrap();
    assert_eq!(auto.len(), explicit.len());
    let err = restructure_assets(&fx.bag, &fx.out(), &newest().asset_table("Subject")).unwrap_err();
    assert!(matches!(err, Error::NotAnAssetTable { .. }), "{err}");
    assert!(err.to_string().contains("demo:Subject"), "{err}");
}

#[test]
fn copies_are_regular_files_with_identical_bytes() {
    let fx = small();
    let manifest = restructure_assets(&fx.bag, &fx.out(), &newest().use_symlinks(false)).unwrap();
    assert_eq!(manifest.len(), 7);
    for (src, dst) in &common::pairs(&manifest) {
        let md = fs::symlink_metadata(dst).unwrap();
        assert!(
            md.is_file() && !md.file_type().is_symlink(),
            "{}",
            dst.display()
        );
        assert_eq!(fs::read(src).unwrap(), fs::read(dst).unwrap());
    }
}

#[test]
fn target_transform_names_levels_and_labels_are_made_safe() {
    let fx = small();
    let opts = newest().target_transform(|v| {
        let label = v.label().unwrap_or_default();
        Ok(if label == "Severe" {
            "N/A".to_string()
        } else {
            label
        })
    });
    restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    let t = tree(&fx.out());
    assert!(
        t.contains(&"training/N_A/retina_001.jpg".to_string()),
        "{t:?}"
    );
    assert!(
        t.contains(&"testing/N_A/retina%005.jpg".to_string()),
        "{t:?}"
    );
    // Missing values never reach the transform.
    assert!(
        t.contains(&"testing/unknown/retina_004.png".to_string()),
        "{t:?}"
    );
}

#[test]
fn dotdot_and_empty_labels_are_errors_naming_the_rid_and_nothing_is_written() {
    for bad in ["..", "", "."] {
        let fx = small();
        let opts = newest().target_transform(move |v| {
            Ok(if v.label().as_deref() == Some("Moderate") {
                bad.to_string()
            } else {
                "ok".to_string()
            })
        });
        let err = restructure_assets(&fx.bag, &fx.out(), &opts).unwrap_err();
        assert!(matches!(err, Error::UnsafeLabel { .. }), "{err}");
        assert!(err.to_string().contains("1-I003"), "{err}");
        assert!(!fx.out().exists(), "nothing written for {bad:?}");
    }
}

#[test]
fn target_transform_errors_name_the_target_and_rid() {
    let fx = small();
    let opts = newest().target_transform(|_| Err("no mapping".into()));
    let err = restructure_assets(&fx.bag, &fx.out(), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"Glaucoma\" of 1-I001: no mapping"), "{err}");
}

#[test]
fn file_transformer_output_paths_and_extension_change_are_in_the_manifest() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let fx = small();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let opts = newest().file_transformer(move |src: &Path, dst: &Path| {
        seen.fetch_add(1, Ordering::SeqCst);
        let out = dst.with_extension("converted");
        fs::copy(src, &out)?;
        Ok(out)
    });
    let manifest = restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 7, "once per placement");
    assert_eq!(
        tree(&fx.out()),
        paths(&[
            "testing/Moderate/rétine_003.converted",
            "testing/Normal/retina_006.converted",
            "testing/Severe/retina%005.converted",
            "testing/unknown/retina_004.converted",
            "training/Mild/retina 002.converted",
            "training/Severe/retina%005.converted",
            "training/Severe/retina_001.converted",
        ])
    );
    for (_, dst) in &common::pairs(&manifest) {
        assert_eq!(dst.extension().unwrap(), "converted");
        assert!(!fs::symlink_metadata(dst).unwrap().file_type().is_symlink());
    }
}

#[test]
fn file_transformer_returning_a_path_outside_output_dir_is_refused() {
    let fx = small();
    let outside = fx.tmp.path().join("elsewhere.png");
    let target = outside.clone();
    let opts = newest().file_transformer(move |_src: &Path, _dst: &Path| Ok(target.clone()));
    let err = restructure_assets(&fx.bag, &fx.out(), &opts).unwrap_err();
    assert!(matches!(err, Error::OutsideOutput { .. }), "{err}");
    assert!(err.to_string().contains("elsewhere.png"), "{err}");
}

#[test]
fn progress_reports_every_placement_up_to_the_total() {
    use std::sync::{Arc, Mutex};
    let fx = small();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let opts = newest().progress(move |done, total| sink.lock().unwrap().push((done, total)));
    restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, (1..=7).map(|d| (d, 7)).collect::<Vec<_>>());
}

#[test]
fn an_unsafe_type_directory_is_an_error_naming_the_dataset() {
    let fx = small();
    let err =
        restructure_assets(&fx.bag, &fx.out(), &newest().map_type("Training", "..")).unwrap_err();
    assert!(matches!(err, Error::UnsafeLabel { .. }), "{err}");
    assert!(
        err.to_string().contains("type directory \"..\" for 1-D001"),
        "{err}"
    );
    assert!(!fx.out().exists());
}

#[test]
fn an_asset_in_one_split_only_is_not_reported_as_in_several() {
    let fx = small();
    // D001 alone: Training only, so I005 lands in one split.
    let d001 = fx.bag.dataset(&Rid::new("1-D001")).unwrap();
    let manifest = restructure_assets(&d001, &fx.out(), &newest()).unwrap();
    assert_eq!(manifest.len(), 3);
    assert!(manifest.assets_in_several_splits().len() == 0);
}

#[test]
fn every_distinct_type_path_of_an_asset_counts_as_a_split() {
    let fx = small();
    // The map without Testing: I005 lands at the root (D002), under testing/ (untyped D003)
    // and under train/ (D001).
    let map = [("Training".to_string(), "train".to_string())].into();
    let opts = RestructureOptions::new().type_to_dir_map(map);
    let manifest = restructure_assets(&fx.bag, &fx.out(), &opts).unwrap();
    assert_eq!(
        common::all(manifest.assets_in_several_splits()),
        [Rid::new("1-I005")]
    );
}

/// The scratch stores (`.deriva-restructure-*.db`) in `dir`.
fn scratch_stores(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".deriva-restructure-") && n.ends_with(".db"))
        .collect()
}

#[test]
fn the_scratch_store_lies_beside_the_output_until_the_manifest_is_dropped_and_never_in_it() {
    let fx = small();
    let out = fx.out();
    let manifest = restructure_assets(&fx.bag, &out, &newest()).unwrap();
    assert_eq!(scratch_stores(fx.tmp.path()).len(), 1);
    assert_eq!(scratch_stores(&out), Vec::<String>::new());
    let ledger = fs::read_to_string(out.join(LEDGER_NAME)).unwrap();
    assert!(!ledger.contains(".deriva-restructure-"), "{ledger}");
    assert_eq!(common::pairs(&manifest).len(), 7);
    drop(manifest);
    assert_eq!(scratch_stores(fx.tmp.path()), Vec::<String>::new());

    // A failed run removes it too.
    let other = fx.tmp.path().join("other");
    restructure_assets(&fx.bag, &other, &newest().missing(Missing::Error)).unwrap_err();
    assert_eq!(scratch_stores(fx.tmp.path()), Vec::<String>::new());
}
