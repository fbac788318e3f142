//! Opens generated fixture bags for the adapter tests.

use deriva_bag_core::fixtures::{open_cached, FixtureSpec};
use deriva_bag_core::DatasetBag;
use tempfile::TempDir;

/// A generated bag, opened, with its temp dir kept alive.
pub struct Fixture {
    pub bag: DatasetBag,
    _dir: TempDir,
}

pub fn open(spec: &FixtureSpec) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let bag = open_cached(spec, dir.path()).unwrap();
    Fixture { bag, _dir: dir }
}

pub fn small() -> Fixture {
    open(&FixtureSpec::default())
}

/// RIDs as strings, for exact comparisons.
pub fn rids<'a>(rids: impl IntoIterator<Item = &'a deriva_bag_features::Rid>) -> Vec<String> {
    rids.into_iter().map(|r| r.to_string()).collect()
}
