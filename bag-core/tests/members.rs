//! Members, children, parents, reachability and assets on the small fixture bag
//! (expectations from the rows `FixtureSpec::default()` documents).

mod common;

use common::*;
use deriva_bag_core::features::{DatasetInfo, Members, Rid, TableName};
use deriva_bag_core::fixtures::Layout;
use deriva_bag_core::{DatasetBag, MissingAsset};

fn rids(members: &Members, schema: &str, table: &str) -> Vec<String> {
    members[&TableName::new(schema, table)]
        .iter()
        .map(|r| r.rid().unwrap().to_string())
        .collect()
}

fn info_rids(infos: &[DatasetInfo]) -> Vec<&str> {
    infos.iter().map(|i| i.rid.as_str()).collect()
}

fn ds(bag: &DatasetBag, rid: &str) -> DatasetBag {
    bag.dataset(&Rid::new(rid)).unwrap()
}

#[test]
fn members_of_each_dataset_match_the_oracle() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let m = ds(&bag, "1-D001")
        .list_dataset_members(false, None)
        .unwrap();
    assert_eq!(rids(&m, "demo", "Image"), ["1-I001", "1-I002", "1-I005"]);
    assert_eq!(rids(&m, "demo", "Subject"), ["1-S001"]);
    assert!(rids(&m, "deriva-ml", "Dataset").is_empty());
    let m = ds(&bag, "1-D002")
        .list_dataset_members(false, None)
        .unwrap();
    assert_eq!(rids(&m, "demo", "Image"), ["1-I003", "1-I004", "1-I005"]);
    assert_eq!(rids(&m, "demo", "Subject"), ["1-S002"]);
    let m = ds(&bag, "1-D003")
        .list_dataset_members(false, None)
        .unwrap();
    assert!(rids(&m, "demo", "Image").is_empty());
    assert_eq!(rids(&m, "demo", "Subject"), ["1-S003"]);
}

/// `members_iter` as `(schema:table, RID)` pairs, in stream order.
fn streamed(bag: &DatasetBag, recurse: bool, limit: Option<usize>) -> Vec<(String, String)> {
    bag.members_iter(recurse, limit)
        .unwrap()
        .map(|m| {
            let (table, row) = m.unwrap();
            (table.to_string(), row.rid().unwrap().to_string())
        })
        .collect()
}

/// `list_dataset_members` flattened in key order, as `(schema:table, RID)` pairs.
fn listed(bag: &DatasetBag, recurse: bool, limit: Option<usize>) -> Vec<(String, String)> {
    let members = bag.list_dataset_members(recurse, limit).unwrap();
    members
        .iter()
        .flat_map(|(table, rows)| {
            rows.iter()
                .map(move |r| (table.to_string(), r.rid().unwrap().to_string()))
        })
        .collect()
}

#[test]
fn streamed_members_come_table_by_table_level_by_level() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(t, r)| (t.to_string(), r.to_string()))
            .collect()
    };
    assert_eq!(
        streamed(&bag, true, None),
        pairs(&[
            ("demo:Image", "1-I001"),
            ("demo:Image", "1-I002"),
            ("demo:Image", "1-I005"),
            ("demo:Image", "1-I003"),
            ("demo:Image", "1-I004"),
            ("demo:Image", "1-I005"),
            ("demo:Subject", "1-S001"),
            ("demo:Subject", "1-S002"),
            ("demo:Subject", "1-S003"),
            ("deriva-ml:Dataset", "1-D001"),
            ("deriva-ml:Dataset", "1-D002"),
            ("deriva-ml:Dataset", "1-D003"),
        ])
    );
    for (recurse, limit) in [
        (false, None),
        (true, None),
        (true, Some(1)),
        (true, Some(0)),
    ] {
        assert_eq!(
            streamed(&bag, recurse, limit),
            listed(&bag, recurse, limit),
            "recurse {recurse}, limit {limit:?}"
        );
    }
    let nested = ds(&bag, "1-D002");
    assert_eq!(streamed(&nested, true, None), listed(&nested, true, None));
}

#[test]
fn a_members_stream_dropped_early_stops_its_reader() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let mut members = bag.members_iter(true, None).unwrap();
    let (table, row) = members.next().unwrap().unwrap();
    assert_eq!(
        (table.table.as_str(), row.rid().unwrap().as_str()),
        ("Image", "1-I001")
    );
    drop(members);
    // The bag stays usable: a new stream reads from the start.
    assert_eq!(streamed(&bag, true, None).len(), 12);
}

#[test]
fn root_members_are_its_nested_datasets_and_every_element_type_is_a_key() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let m = bag.list_dataset_members(false, None).unwrap();
    let keys: Vec<String> = m.keys().map(|t| t.to_string()).collect();
    assert_eq!(keys, ["demo:Image", "demo:Subject", "deriva-ml:Dataset"]);
    assert_eq!(
        rids(&m, "deriva-ml", "Dataset"),
        ["1-D001", "1-D002", "1-D003"]
    );
    assert!(rids(&m, "demo", "Image").is_empty());
}

#[test]
fn recursive_members_append_children_in_rid_order_without_dedup() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let m = bag.list_dataset_members(true, None).unwrap();
    assert_eq!(
        rids(&m, "demo", "Image"),
        ["1-I001", "1-I002", "1-I005", "1-I003", "1-I004", "1-I005"]
    );
    assert_eq!(rids(&m, "demo", "Subject"), ["1-S001", "1-S002", "1-S003"]);
    let limited = bag.list_dataset_members(true, Some(1)).unwrap();
    assert_eq!(rids(&limited, "demo", "Image"), ["1-I001", "1-I003"]);
    assert_eq!(rids(&limited, "deriva-ml", "Dataset"), ["1-D001"]);
    let none = bag.list_dataset_members(true, Some(0)).unwrap();
    assert!(none.values().all(Vec::is_empty));
    assert_eq!(none.len(), 3);
}

#[test]
fn children_and_parents_are_sorted_and_carry_info() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let children = bag.list_dataset_children(false).unwrap();
    assert_eq!(info_rids(&children), ["1-D001", "1-D002", "1-D003"]);
    assert_eq!(children[0].types, ["Training"]);
    assert_eq!(children[1].types, ["Testing"]);
    assert_eq!(children[2].version.as_deref(), Some("1.0.0"));
    assert_eq!(
        info_rids(&bag.list_dataset_children(true).unwrap()),
        ["1-D001", "1-D002", "1-D003"]
    );
    assert!(ds(&bag, "1-D001")
        .list_dataset_children(true)
        .unwrap()
        .is_empty());
    let parents = ds(&bag, "1-D002").list_dataset_parents(true).unwrap();
    assert_eq!(info_rids(&parents), ["1-D000"]);
    assert_eq!(parents[0].types, ["Complete"]);
    assert!(bag.list_dataset_parents(false).unwrap().is_empty());
}

#[test]
fn reachable_images_follow_members_and_fk_paths() {
    let (_tmp, _g, bag) = small(Layout::FormatB, false);
    let image = TableName::new("demo", "Image");
    let rids_of = |b: &DatasetBag| -> Vec<String> {
        b.reachable_rows(&image)
            .unwrap()
            .iter()
            .map(|r| r.rid().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        rids_of(&bag),
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
    );
    // D003 has no Image members: I005 and I006 come through Subject S003.
    assert_eq!(rids_of(&ds(&bag, "1-D003")), ["1-I005", "1-I006"]);
    // D001: members I001, I002, I005; Subject S001's images are I001 and I002; the path
    // never repeats Image, so I006 (via I005's subject) is not reached.
    assert_eq!(rids_of(&ds(&bag, "1-D001")), ["1-I001", "1-I002", "1-I005"]);
    let subjects: Vec<String> = ds(&bag, "1-D001")
        .reachable_rows(&TableName::new("demo", "Subject"))
        .unwrap()
        .iter()
        .map(|r| r.rid().unwrap().to_string())
        .collect();
    assert_eq!(subjects, ["1-S001", "1-S003"]);
    assert!(bag.reachable_rows(&TableName::new("demo", "Nope")).is_err());
}

#[test]
fn asset_paths_resolve_through_fetch_txt_when_materialized() {
    let (_tmp, g, bag) = small(Layout::FormatB, true);
    let p = bag
        .asset_path("Image", &Rid::new("1-I002"))
        .unwrap()
        .unwrap();
    assert_eq!(p, g.path.join("data/asset/1-I002/Image/retina 002.jpg"));
    let p = bag
        .asset_path("demo:Image", &Rid::new("1-I005"))
        .unwrap()
        .unwrap();
    assert_eq!(p, g.path.join("data/asset/1-I005/Image/retina%005.jpg"));
    let p = bag
        .asset_path("Image", &Rid::new("1-I003"))
        .unwrap()
        .unwrap();
    assert_eq!(p, g.path.join("data/asset/1-I003/Image/rétine_003.png"));
    assert!(bag.is_materialized());
    assert!(bag.missing_assets().unwrap().is_empty());
    assert!(bag.asset_path("Image", &Rid::new("1-I999")).is_err());
}

#[test]
fn metadata_only_bags_report_every_missing_asset() {
    let (_tmp, g, bag) = small(Layout::FormatB, false);
    assert!(!bag.is_materialized());
    assert_eq!(bag.asset_path("Image", &Rid::new("1-I002")).unwrap(), None);
    let missing = bag.missing_assets().unwrap();
    let expected: Vec<MissingAsset> = g
        .assets
        .iter()
        .map(|a| MissingAsset {
            table: a.table.clone(),
            rid: a.rid.clone(),
            path: a.bag_path.clone(),
        })
        .collect();
    assert_eq!(missing, expected);
    assert_eq!(missing[1].path, "data/asset/1-I002/Image/retina 002.jpg");
}
