//! `DatasetBag::feature_values` and `feature_values_iter` read records from the index in
//! target order and reduce them one target at a time (the features crate's `select_stream`).
//! These tests hold both to the generic path (the features crate's `apply_selector` on the
//! full, canonically ordered records, and a custom selector that delegates to the built-in
//! one) on fixture bags, for every built-in selector and for the root and nested datasets.

mod common;

use std::collections::BTreeSet;

use common::*;
use deriva_bag_core::features::{
    apply_selector, sort_records, Error as FError, FeatureRecord, Rid, Selector,
};
use deriva_bag_core::fixtures::{FixtureSpec, Layout};
use deriva_bag_core::{DatasetBag, Error};

fn builtin_selectors() -> Vec<Selector> {
    vec![
        Selector::newest(),
        Selector::first(),
        Selector::majority_vote(None),
        Selector::majority_vote(Some("Glaucoma")),
        // A column without terms votes too (every RCT differs: the newest wins).
        Selector::majority_vote(Some("RCT")),
        Selector::by_execution("1-E001"),
        Selector::by_execution("1-E002"),
        Selector::by_execution("1-E004"),
        Selector::by_execution("1-E999"),
        Selector::ByExecutions(BTreeSet::from([Rid::new("1-E001"), Rid::new("1-E003")])),
        Selector::ByExecutions(BTreeSet::from([Rid::new("1-E002"), Rid::new("1-E005")])),
        Selector::ByExecutions(BTreeSet::new()),
    ]
}

/// Compares the fast path with the generic one on `bag` for every built-in selector and
/// returns how many records the unselected read gave.
fn assert_fast_path_matches_generic(bag: &DatasetBag) -> usize {
    let feature = bag.lookup_feature("Image", "Glaucoma").unwrap();
    let all = bag.feature_values("Image", "Glaucoma", None).unwrap();
    let mut sorted = all.clone();
    sort_records(&mut sorted);
    assert_eq!(sorted, all, "unselected records come in canonical order");
    let streamed = |selector: Option<Selector>| -> Vec<FeatureRecord> {
        bag.feature_values_iter("Image", "Glaucoma", selector)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        streamed(None),
        all,
        "streamed, unselected, on {}",
        bag.rid()
    );
    for selector in builtin_selectors() {
        let fast = bag
            .feature_values("Image", "Glaucoma", Some(&selector))
            .unwrap();
        let generic = apply_selector(&feature, all.clone(), Some(&selector)).unwrap();
        assert_eq!(fast, generic, "{selector:?} on {}", bag.rid());
        assert_eq!(
            streamed(Some(selector.clone())),
            generic,
            "streamed {selector:?} on {}",
            bag.rid()
        );
        // A custom selector takes the whole-record path; delegating to the built-in one
        // must give the same records.
        let (f, s) = (feature.clone(), selector.clone());
        let custom = Selector::try_custom(move |group: &[FeatureRecord]| s.select(&f, group));
        let via_custom = bag
            .feature_values("Image", "Glaucoma", Some(&custom))
            .unwrap();
        assert_eq!(via_custom, generic, "custom {selector:?} on {}", bag.rid());
    }
    all.len()
}

#[test]
fn fast_selectors_match_apply_selector_on_the_small_bag_in_every_layout() {
    for layout in [Layout::FormatB, Layout::FormatA, Layout::Legacy] {
        let (_tmp, _generated, bag) = small(layout, false);
        assert_eq!(assert_fast_path_matches_generic(&bag), 9, "{layout:?}");
        for rid in ["1-D001", "1-D002"] {
            let nested = bag.dataset(&rid.into()).unwrap();
            assert_fast_path_matches_generic(&nested);
        }
        // Spot-check one pick so that agreement cannot come from both paths being empty.
        let newest = bag
            .feature_values("Image", "Glaucoma", Some(&Selector::newest()))
            .unwrap();
        assert_eq!(newest[0].target(), Some("1-I001"));
        assert_eq!(newest[0].text("Glaucoma"), Some("Severe"));
    }
}

#[test]
fn fast_selectors_match_apply_selector_on_a_generated_bag_with_extra_labels() {
    let (_tmp, _generated, bag) = open_fixture(&FixtureSpec {
        images: 120,
        materialized: false,
        extra_glaucoma_rows: 40,
        ..FixtureSpec::default()
    });
    let n = assert_fast_path_matches_generic(&bag);
    assert!(n > 200, "{n} records");
}

#[test]
fn fast_majority_vote_on_an_unknown_column_fails_like_the_generic_path() {
    let (_tmp, _generated, bag) = small(Layout::FormatB, false);
    let err = bag
        .feature_values(
            "Image",
            "Glaucoma",
            Some(&Selector::majority_vote(Some("Scroe"))),
        )
        .unwrap_err();
    match err {
        Error::Features(FError::UnknownField { field, .. }) => assert_eq!(field, "Scroe"),
        other => panic!("unexpected {other:?}"),
    }
    // Streamed: the same error, as the first item.
    let mut streamed = bag
        .feature_values_iter(
            "Image",
            "Glaucoma",
            Some(Selector::majority_vote(Some("Scroe"))),
        )
        .unwrap();
    match streamed.next() {
        Some(Err(Error::Features(FError::UnknownField { field, .. }))) => {
            assert_eq!(field, "Scroe")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(streamed.next().is_none());
}
