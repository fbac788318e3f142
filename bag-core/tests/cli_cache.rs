//! `deriva-bag` on a cache it may only read: a shared cache another account filled, or one
//! made read-only, serves an archive bag without writing anything.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use deriva_bag_core::archive_write::write_zip;
use deriva_bag_core::fixtures;
use serde_json::Value;

/// The `nobody` account: it owns nothing in the cache.
const NOBODY: u32 = 65534;

/// Removes every write permission under `root` (directories keep `r-x`).
fn make_read_only(root: &Path) {
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            make_read_only(&path);
        }
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o555)).unwrap();
    }
    let mode = fs::metadata(root).unwrap().permissions().mode();
    fs::set_permissions(root, fs::Permissions::from_mode(mode & 0o555)).unwrap();
}

/// Runs `deriva-bag args` on the cache at `cache`. Permission bits do not stop root, so when
/// the tests run as root the command runs as `nobody`, for whom the cache root made is
/// read-only exactly as a cache someone else filled is; otherwise as the current user.
fn run_read_only(cache: &Path, args: &[&str], as_root: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deriva-bag"));
    cmd.args(args)
        .env("DERIVA_BAG_CACHE", cache)
        .env_remove("RUST_LOG");
    if as_root {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd.output().unwrap()
}

#[test]
fn info_opens_an_archive_from_a_read_only_warm_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let as_root = fs::metadata(tmp.path()).unwrap().uid() == 0;
    // `nobody` must reach the archive and the cache (tempdir makes its directory 0700).
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let generated = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    let zip = tmp.path().join("Dataset_1-D000.zip");
    write_zip(&generated.path, &zip).unwrap();
    let cache = tmp.path().join("cache");

    let warm_up = Command::new(env!("CARGO_BIN_EXE_deriva-bag"))
        .args(["info", zip.to_str().unwrap(), "--json"])
        .env("DERIVA_BAG_CACHE", &cache)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(
        warm_up.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&warm_up.stderr)
    );
    make_read_only(&cache);

    let out = run_read_only(&cache, &["info", zip.to_str().unwrap(), "--json"], as_root);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["dataset"]["rid"], "1-D000");
    assert_eq!(
        info,
        serde_json::from_slice::<Value>(&warm_up.stdout).unwrap()
    );
}

/// Gives the owner write permission back everywhere under `root`.
fn make_writable(root: &Path) {
    let mode = fs::metadata(root).unwrap().permissions().mode();
    fs::set_permissions(root, fs::Permissions::from_mode(mode | 0o200)).unwrap();
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o200)).unwrap();
        if path.is_dir() {
            make_writable(&path);
        }
    }
}

/// The reachable-set files in the cache's index directory.
fn reachable_sets(cache: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(cache.join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".reach-"))
        .collect();
    out.sort();
    out
}

#[test]
fn feature_values_from_a_read_only_cache_equal_those_from_the_reachable_set_it_cannot_keep() {
    let tmp = tempfile::tempdir().unwrap();
    let as_root = fs::metadata(tmp.path()).unwrap().uid() == 0;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let generated = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    let bag = generated.path.to_str().unwrap();
    let cache = tmp.path().join("cache");
    let args = [
        "feature-values",
        bag,
        "Image",
        "Glaucoma",
        "--selector",
        "newest",
        "--json",
    ];
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_deriva-bag"))
            .args(args)
            .env("DERIVA_BAG_CACHE", &cache)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let warm_up = run(&["info", bag, "--json"]);
    assert_eq!(warm_up.status.code(), Some(0));
    assert_eq!(reachable_sets(&cache), Vec::<String>::new());
    make_read_only(&cache);

    // The walk runs inline: nothing is written, nothing is said.
    let read_only = run_read_only(&cache, &args, as_root);
    let stderr = String::from_utf8_lossy(&read_only.stderr);
    assert_eq!(read_only.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
    assert_eq!(reachable_sets(&cache), Vec::<String>::new());

    // Writable again: the set is kept, and read back on the next run; the same records.
    make_writable(&cache);
    let keeping = run(&args);
    assert_eq!(keeping.status.code(), Some(0));
    assert_eq!(reachable_sets(&cache).len(), 1);
    let reading = run(&args);
    assert_eq!(reachable_sets(&cache).len(), 1);
    let records: Value = serde_json::from_slice(&read_only.stdout).unwrap();
    assert_eq!(records.as_array().map(Vec::len), Some(5));
    assert_eq!(records[0]["Image"], "1-I001");
    assert_eq!(records[0]["Glaucoma"], "Severe");
    assert_eq!(keeping.stdout, read_only.stdout);
    assert_eq!(reading.stdout, read_only.stdout);
}
