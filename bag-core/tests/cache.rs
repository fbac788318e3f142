//! The cache's lifecycle across processes: what a killed build left behind is removed by the
//! next open (never a live builder's work), and a warm cache is only read.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::SystemTime;

use deriva_bag_core::archive_write::write_zip;
use deriva_bag_core::fixtures;
use deriva_bag_core::DatasetBag;

/// Every file and directory under `root` (relative path → length and modification time).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let md = entry.metadata().unwrap();
            if md.is_dir() {
                stack.push(entry.path());
            }
            let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
            out.insert(rel, (md.len(), md.modified().unwrap()));
        }
    }
    out
}

/// Every `*.lock` file under `root`.
fn lock_files(root: &Path) -> Vec<PathBuf> {
    snapshot(root)
        .into_keys()
        .filter(|p| p.extension().is_some_and(|e| e == "lock"))
        .collect()
}

/// The small fixture bag written as a zip under `tmp`.
fn small_zip(tmp: &Path) -> PathBuf {
    let generated = fixtures::small_bag(&tmp.join("bags")).unwrap();
    let zip = tmp.join("Dataset_1-D000.zip");
    write_zip(&generated.path, &zip).unwrap();
    zip
}

#[test]
fn a_warm_open_of_an_archive_creates_and_changes_nothing_in_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = small_zip(tmp.path());
    let options = common::options(tmp.path());
    let cache = tmp.path().join("cache");
    let cold = DatasetBag::open_with(&zip, &options).unwrap();
    drop(cold);
    // A cache filled by another account keeps its lock files, but they are not ours to
    // open for writing: remove them, so that any lock the warm open takes shows up.
    for lock in lock_files(&cache) {
        fs::remove_file(cache.join(lock)).unwrap();
    }
    let extracted_and_index = |s: BTreeMap<PathBuf, (u64, SystemTime)>| {
        // The remembered cache keys under keys/ are best effort (a memo that cannot be
        // written only means hashing again), so they are left out of the comparison.
        s.into_iter()
            .filter(|(p, _)| !p.starts_with("keys"))
            .collect::<BTreeMap<_, _>>()
    };
    let before = extracted_and_index(snapshot(&cache));
    let warm = DatasetBag::open_with(&zip, &options).unwrap();
    assert_eq!(warm.rid().as_str(), "1-D000");
    let after = extracted_and_index(snapshot(&cache));
    let created: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    let changed: Vec<&PathBuf> = before
        .iter()
        .filter(|(p, v)| after.get(*p).is_some_and(|a| a != *v))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(created, Vec::<&PathBuf>::new(), "created by the warm open");
    assert_eq!(changed, Vec::<&PathBuf>::new(), "changed by the warm open");
    assert_eq!(after.len(), before.len());
}

/// A process that has been killed and reaped: its pid names no running process.
fn killed_pid() -> u32 {
    let mut child: Child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    pid
}

#[test]
fn the_next_open_removes_what_a_killed_build_left_and_keeps_a_live_builders_work() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = small_zip(tmp.path());
    let cache = tmp.path().join("cache");
    let (index, extracted) = (cache.join("index"), cache.join("extracted"));
    fs::create_dir_all(&index).unwrap();
    fs::create_dir_all(&extracted).unwrap();

    // What a process killed while building another bag's index and extracting another
    // archive leaves: the part files of the index and a half-extracted directory.
    let dead = killed_pid();
    let dead_main = index.join(format!(".0badc0de.sqlite.tmp-{dead}-0"));
    let dead_part = index.join(format!(".0badc0de.1.sqlite.tmp-{dead}-1"));
    let dead_extraction = extracted.join(format!(".0badc0de.tmp-{dead}-2"));
    fs::write(&dead_main, b"half an index").unwrap();
    fs::write(&dead_part, b"half a part").unwrap();
    fs::create_dir_all(dead_extraction.join("B/data")).unwrap();
    fs::write(dead_extraction.join("B/data/x.csv"), b"RID\n").unwrap();

    // The same names from a process that is still running: a concurrent builder.
    let mut live: Child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = live.id();
    let live_main = index.join(format!(".5ca1ab1e.sqlite.tmp-{pid}-0"));
    let live_extraction = extracted.join(format!(".5ca1ab1e.tmp-{pid}-1"));
    fs::write(&live_main, b"being built").unwrap();
    fs::create_dir_all(&live_extraction).unwrap();

    let opened = DatasetBag::open_with(&zip, &common::options(tmp.path()));
    live.kill().unwrap();
    live.wait().unwrap();
    assert_eq!(opened.unwrap().rid().as_str(), "1-D000");

    for gone in [&dead_main, &dead_part, &dead_extraction] {
        assert!(!gone.exists(), "{} is still there", gone.display());
    }
    for kept in [&live_main, &live_extraction] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
}

#[test]
fn open_refuses_an_archive_past_max_extracted_bytes_and_keeps_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = small_zip(tmp.path());
    let options = deriva_bag_core::OpenOptions {
        max_extracted_bytes: Some(1000),
        ..common::options(tmp.path())
    };
    match DatasetBag::open_with(&zip, &options).unwrap_err() {
        deriva_bag_core::Error::ArchiveTooLarge { path, limit, why } => {
            assert_eq!(path, zip);
            assert_eq!(limit, 1000);
            assert_eq!(why, "the limit OpenOptions::max_extracted_bytes sets");
        }
        other => panic!("{other:?}"),
    }
    let left: Vec<PathBuf> = snapshot(&tmp.path().join("cache"))
        .into_keys()
        .filter(|p| p.extension().is_none_or(|e| e != "lock"))
        .collect();
    assert_eq!(left, [PathBuf::from("extracted")]);
    let bag = DatasetBag::open_with(&zip, &common::options(tmp.path())).unwrap();
    assert_eq!(bag.rid().as_str(), "1-D000");
}
