//! Every CSV layout (Format B, Format A, legacy) gives the same tables and members.

mod common;

use common::*;
use deriva_bag_core::features::{Rid, TableName};
use deriva_bag_core::fixtures::Layout;

#[test]
fn every_layout_gives_identical_tables_members_and_reachability() {
    let (_t1, _g1, b) = small(Layout::FormatB, false);
    for layout in [Layout::FormatA, Layout::Legacy] {
        let (_t2, g2, other) = small(layout, false);
        assert!(g2.csv_files.iter().all(|f| f.ends_with(".csv")));
        assert_eq!(other.rid(), b.rid(), "{layout:?}");
        assert_eq!(other.version(), b.version(), "{layout:?}");
        assert_eq!(other.list_tables(), b.list_tables(), "{layout:?}");
        for table in b.list_tables() {
            assert_eq!(
                other.get_table(&table.to_string()).unwrap(),
                b.get_table(&table.to_string()).unwrap(),
                "{layout:?} {table}"
            );
        }
        for rid in ["1-D000", "1-D001", "1-D002", "1-D003"] {
            let x = b.dataset(&Rid::new(rid)).unwrap();
            let y = other.dataset(&Rid::new(rid)).unwrap();
            assert_eq!(y.info(), x.info(), "{layout:?} {rid}");
            assert_eq!(
                y.list_dataset_members(true, None).unwrap(),
                x.list_dataset_members(true, None).unwrap(),
                "{layout:?} {rid}"
            );
            let image = TableName::new("demo", "Image");
            assert_eq!(
                y.reachable_rows(&image).unwrap(),
                x.reachable_rows(&image).unwrap()
            );
        }
        assert_eq!(other.missing_assets().unwrap().len(), 6, "{layout:?}");
    }
}

#[test]
fn legacy_materialized_assets_are_found_in_the_old_layout() {
    let (_t, g, bag) = small(Layout::Legacy, true);
    let p = bag
        .asset_path("Image", &Rid::new("1-I002"))
        .unwrap()
        .unwrap();
    assert!(p.is_file(), "{}", p.display());
    assert!(p.starts_with(&g.path));
    assert!(bag.is_materialized());
}
