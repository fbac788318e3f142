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
