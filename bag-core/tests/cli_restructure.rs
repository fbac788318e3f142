//! `deriva-bag restructure` against the small fixture bag: the `--json` manifest, the layout
//! on disk, and exit status 2 with a message naming the fault.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use deriva_bag_core::fixtures;
use serde_json::Value;

fn run(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deriva-bag"))
        .args(args)
        .env("DERIVA_BAG_CACHE", cache)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn restructure_json_lists_one_src_dst_pair_per_placement() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(&dir.path().join("bags")).unwrap();
    let out = dir.path().join("ml_data");
    let args = [
        "restructure",
        bag.path.to_str().unwrap(),
        out.to_str().unwrap(),
        "--targets",
        "Glaucoma",
        "--selector",
        "newest",
        "--copy",
        "--type-map",
        "Training=train,Testing=test",
        "--json",
    ];
    let o = run(&dir.path().join("cache"), &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // The one warning: I005 is in the Training and the Testing dataset.
    let stderr = text(&o.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "WARN 1 asset(s) are placed in more than one split (e.g. training and testing)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("first=1-I005"), "{stderr}");
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut pairs: Vec<(String, String)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let src = e["src"].as_str().unwrap();
            let dst = Path::new(e["dst"].as_str().unwrap());
            let rel = dst
                .strip_prefix(&out)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let rid = src
                .split("/data/asset/")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            (rid.to_string(), rel)
        })
        .collect();
    pairs.sort();
    let expected = [
        ("1-I001", "train/Severe/retina_001.jpg"),
        ("1-I002", "train/Mild/retina 002.jpg"),
        ("1-I003", "test/Moderate/rétine_003.png"),
        ("1-I004", "test/unknown/retina_004.png"),
        ("1-I005", "test/Severe/retina%005.jpg"),
        ("1-I005", "train/Severe/retina%005.jpg"),
        ("1-I006", "test/Normal/retina_006.jpg"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(pairs, expected);
    let copied = out.join("train/Severe/retina_001.jpg");
    assert!(!std::fs::symlink_metadata(&copied)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn restructure_missing_error_exits_2_naming_the_unlabeled_rid_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(&dir.path().join("bags")).unwrap();
    let out = dir.path().join("ml_data");
    let o = run(
        &dir.path().join("cache"),
        &[
            "restructure",
            bag.path.to_str().unwrap(),
            out.to_str().unwrap(),
            "--targets",
            "Glaucoma",
            "--selector",
            "newest",
            "--missing",
            "error",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("Unlabeled RIDs: [1-I004]"), "{err}");
    assert!(!out.exists());

    let o = run(
        &dir.path().join("cache"),
        &[
            "restructure",
            bag.path.to_str().unwrap(),
            out.to_str().unwrap(),
            "--targets",
            "Nope",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("target \"Nope\" is not a column of demo:Image"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn restructure_into_the_bag_exits_2_naming_both_directories_and_leaves_the_bag_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(&dir.path().join("bags")).unwrap();
    let before = common::tree_digest(&bag.path);
    for out in [bag.path.join("data/ml_data"), bag.path.clone()] {
        let o = run(
            &dir.path().join("cache"),
            &[
                "restructure",
                bag.path.to_str().unwrap(),
                out.to_str().unwrap(),
                "--copy",
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!(
                "output directory {} lies inside the dataset's files at {}",
                out.display(),
                bag.path.display()
            )),
            "{err}"
        );
        assert_eq!(common::tree_digest(&bag.path), before);
    }
}

#[test]
fn restructure_rerun_keeps_and_lists_a_copy_the_user_edited() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(&dir.path().join("bags")).unwrap();
    let out = dir.path().join("ml_data");
    let args = [
        "restructure",
        bag.path.to_str().unwrap(),
        out.to_str().unwrap(),
        "--targets",
        "Glaucoma",
        "--selector",
        "newest",
        "--copy",
    ];
    let o = run(&dir.path().join("cache"), &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let edited = out.join("training/Severe/retina_001.jpg");
    std::fs::write(&edited, b"cropped by hand").unwrap();
    let o = run(&dir.path().join("cache"), &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!(
            "placed 6 file(s) for 5 asset(s) under {}\n\
             class indices of Glaucoma (every vocabulary term, sorted): Mild=0, Moderate=1, \
             Normal=2, Severe=3\n\
             1 file(s) recorded by an earlier run were kept, not replaced or removed:\n  {} (changed)\n",
            out.display(),
            edited.display()
        )
    );
    assert!(
        text(&o.stderr).contains("kept, not replaced or removed"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(std::fs::read(&edited).unwrap(), b"cropped by hand");
}

#[test]
fn restructure_of_an_archive_with_symlinks_warns_that_they_point_into_the_cache_and_names_copy() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(&dir.path().join("bags")).unwrap();
    let zip = dir.path().join("Dataset_1-D000.zip");
    deriva_bag_core::archive_write::write_zip(&bag.path, &zip).unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("ml_data");
    let args = ["restructure", zip.to_str().unwrap(), out.to_str().unwrap()];
    let o = run(&cache, &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stderr = text(&o.stderr);
    let warning = stderr
        .lines()
        .find(|l| l.contains("symbolic link(s) point into"))
        .unwrap_or_else(|| panic!("no cache warning in {stderr}"));
    assert!(warning.contains("the 7 symbolic link(s)"), "{warning}");
    assert!(warning.contains(&cache.display().to_string()), "{warning}");
    assert!(warning.contains(&zip.display().to_string()), "{warning}");
    assert!(
        warning.contains("pass --copy to copy the files instead"),
        "{warning}"
    );

    // With --copy, and for a bag directory, there is nothing to warn about.
    for args in [
        vec![
            "restructure",
            zip.to_str().unwrap(),
            out.to_str().unwrap(),
            "--copy",
        ],
        vec![
            "restructure",
            bag.path.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    ] {
        let out_dir = dir.path().join(format!("ml_data_{}", args.len()));
        let mut args = args;
        args[2] = out_dir.to_str().unwrap();
        let o = run(&cache, &args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert!(
            !text(&o.stderr).contains("symbolic link(s) point into"),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}

/// The `--json` manifest is written as it is serialized, not built whole first: these are
/// the exact bytes the whole value pretty-printed gave, placements sorted by (source,
/// destination), recorded on the small fixture.
#[test]
fn restructure_json_is_the_recorded_manifest_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(&dir.path().join("bags")).unwrap();
    let out = std::path::absolute(dir.path().join("ml_data")).unwrap();
    let args = [
        "restructure",
        bag.path.to_str().unwrap(),
        out.to_str().unwrap(),
        "--targets",
        "Glaucoma",
        "--selector",
        "newest",
        "--json",
    ];
    let o = run(&dir.path().join("cache"), &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let recorded = [
        ("1-I001", "training/Severe/retina_001.jpg"),
        ("1-I002", "training/Mild/retina 002.jpg"),
        ("1-I003", "testing/Moderate/rétine_003.png"),
        ("1-I004", "testing/unknown/retina_004.png"),
        ("1-I005", "testing/Severe/retina%005.jpg"),
        ("1-I005", "training/Severe/retina%005.jpg"),
        ("1-I006", "testing/Normal/retina_006.jpg"),
    ];
    let quoted = |p: &Path| serde_json::to_string(p.to_str().unwrap()).unwrap();
    let entries: Vec<String> = recorded
        .iter()
        .map(|(rid, rel)| {
            let src =
                std::path::absolute(bag.path.join(&bag.asset(rid).unwrap().bag_path)).unwrap();
            format!(
                "  {{\n    \"src\": {},\n    \"dst\": {}\n  }}",
                quoted(&src),
                quoted(&out.join(rel))
            )
        })
        .collect();
    assert_eq!(text(&o.stdout), format!("[\n{}\n]\n", entries.join(",\n")));
}
