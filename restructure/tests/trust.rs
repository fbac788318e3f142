//! Trust boundaries of restructure (issue 11): an asset that links out of the bag is never
//! copied or linked (item 4), the output directory may not lie inside the bag (item 5), and a
//! re-run deletes only what it can prove it placed, whatever the ledger says (item 6).
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{open, paths, small, tree};
use deriva_bag_core::fixtures;
use deriva_bag_restructure::{
    restructure_assets, Error, KeptFile, KeptReason, RestructureOptions, Selector, Targets,
    LEDGER_NAME,
};
use sha2::{Digest, Sha256};

fn newest() -> RestructureOptions {
    RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest))
}

/// Every entry under `root` (relative path → what it is: a directory, a symlink and its
/// target, or a file and its bytes), so two listings are equal only when nothing changed.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let md = fs::symlink_metadata(&path).unwrap();
            if md.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, format!("link {}", target.display()));
            } else if md.is_dir() {
                out.insert(rel, "dir".to_string());
                walk(root, &path, out);
            } else {
                out.insert(rel, format!("file {}", hex(&fs::read(&path).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

// ---------------------------------------------------------------------------------------
// Item 4: an asset that links out of the bag is never copied or linked.

/// The small bag with `1-I001`'s file replaced by a symlink to `tmp/hostname`.
fn bag_with_an_asset_linking_out() -> (tempfile::TempDir, PathBuf, deriva_bag_core::DatasetBag) {
    let tmp = tempfile::tempdir().unwrap();
    let g = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    let outside = tmp.path().join("hostname");
    fs::write(&outside, "host.example\n").unwrap();
    let rel = &g.asset("1-I001").unwrap().bag_path;
    fs::remove_file(g.path.join(rel)).unwrap();
    symlink(&outside, g.path.join(rel)).unwrap();
    let bag = open(tmp.path(), &g.path);
    (tmp, outside, bag)
}

#[test]
fn copy_mode_never_copies_an_asset_that_links_out_of_the_bag() {
    let (tmp, _outside, bag) = bag_with_an_asset_linking_out();
    let out = tmp.path().join("out");
    let manifest = restructure_assets(&bag, &out, &newest().use_symlinks(false)).unwrap();
    assert!(!tree(&out).contains(&"training/Severe/retina_001.jpg".to_string()));
    let missing: Vec<String> = common::all(manifest.missing_files())
        .into_iter()
        .map(|m| m.rid.to_string())
        .collect();
    assert_eq!(missing, ["1-I001"]);
    assert_eq!(manifest.len(), 6);
    for (_, dst) in &common::pairs(&manifest) {
        assert_ne!(
            fs::read(dst).unwrap(),
            b"host.example\n",
            "{}",
            dst.display()
        );
    }
}

#[test]
fn symlink_mode_never_links_to_an_asset_that_links_out_of_the_bag() {
    let (tmp, outside, bag) = bag_with_an_asset_linking_out();
    let out = tmp.path().join("out");
    let manifest = restructure_assets(&bag, &out, &newest()).unwrap();
    assert!(!tree(&out).contains(&"training/Severe/retina_001.jpg".to_string()));
    assert_eq!(manifest.missing_files().len(), 1);
    for (src, dst) in &common::pairs(&manifest) {
        assert_ne!(
            fs::canonicalize(dst).unwrap(),
            fs::canonicalize(&outside).unwrap(),
            "{} -> {}",
            dst.display(),
            src.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Item 5: the output directory may not lie inside the bag.

fn assert_refused_inside(err: Error, output_dir: &Path, bag: &Path) {
    match err {
        Error::OutputInsideSource {
            output_dir: o,
            source_root: s,
        } => {
            assert_eq!(o, output_dir);
            assert_eq!(s, bag);
        }
        other => panic!("expected OutputInsideSource, got {other:?}"),
    }
}

#[test]
fn restructure_into_a_directory_inside_the_bag_is_refused_and_the_bag_is_unchanged() {
    let fx = small();
    let bag_dir = fx.generated.path.clone();
    let before = snapshot(&bag_dir);
    for out in [bag_dir.join("data/ml_data"), bag_dir.join("data/asset")] {
        let err = restructure_assets(&fx.bag, &out, &newest()).unwrap_err();
        assert_refused_inside(err, &out, &bag_dir);
        assert_unchanged(&bag_dir, &before);
    }
}

/// The bag holds exactly what it held before: same entries, same bytes, same link targets.
fn assert_unchanged(bag_dir: &Path, before: &BTreeMap<String, String>) {
    assert_eq!(&snapshot(bag_dir), before);
}

#[test]
fn restructure_into_the_bag_root_is_refused_and_the_bag_is_unchanged() {
    let fx = small();
    let bag_dir = fx.generated.path.clone();
    let before = snapshot(&bag_dir);
    let err = restructure_assets(&fx.bag, &bag_dir, &newest().use_symlinks(false)).unwrap_err();
    assert_refused_inside(err, &bag_dir, &bag_dir);
    assert_unchanged(&bag_dir, &before);
}

#[test]
fn restructure_into_the_bag_through_a_symlink_is_refused_and_the_bag_is_unchanged() {
    let fx = small();
    let bag_dir = fx.generated.path.clone();
    let link = fx.tmp.path().join("looks_elsewhere");
    symlink(bag_dir.join("data"), &link).unwrap();
    let before = snapshot(&bag_dir);
    for out in [link.clone(), link.join("ml_data"), link.join("new/deeper")] {
        let err = restructure_assets(&fx.bag, &out, &newest()).unwrap_err();
        assert_refused_inside(err, &out, &bag_dir);
        assert_unchanged(&bag_dir, &before);
    }
    // `..` after a symlink climbs from where the link leads, as the kernel does.
    let climbing = link.join("asset/../../data/x");
    let err = restructure_assets(&fx.bag, &climbing, &newest()).unwrap_err();
    assert_refused_inside(err, &climbing, &bag_dir);
    assert_unchanged(&bag_dir, &before);
}

#[test]
fn restructure_into_the_extraction_dir_of_an_archive_bag_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let g = fixtures::small_bag(&tmp.path().join("bags")).unwrap();
    let zip = tmp.path().join("bag.zip");
    deriva_bag_core::archive_write::write_zip(&g.path, &zip).unwrap();
    let bag = open(tmp.path(), &zip);
    let extracted = bag.path().to_path_buf();
    assert!(extracted.starts_with(tmp.path().join("cache")));
    let before = snapshot(&extracted);
    let out = extracted.join("data/ml_data");
    let err = restructure_assets(&bag, &out, &newest()).unwrap_err();
    assert_refused_inside(err, &out, &extracted);
    assert_unchanged(&extracted, &before);
}

#[test]
fn restructure_beside_the_bag_still_works() {
    let fx = small();
    // A sibling whose name starts like the bag's is not inside it.
    let out = fx.generated.path.with_file_name(format!(
        "{}_ml",
        fx.generated.path.file_name().unwrap().to_string_lossy()
    ));
    let manifest = restructure_assets(&fx.bag, &out, &newest()).unwrap();
    assert_eq!(manifest.len(), 7);
}

// ---------------------------------------------------------------------------------------
// Item 6: the ledger is not trusted.

fn write_ledger(out: &Path, json: &serde_json::Value) {
    fs::write(out.join(LEDGER_NAME), serde_json::to_vec(json).unwrap()).unwrap();
}

#[test]
fn a_forged_ledger_cannot_delete_a_file_outside_the_output_dir_through_a_symlinked_directory() {
    let fx = small();
    let out = fx.out();
    restructure_assets(&fx.bag, &out, &newest()).unwrap();
    let victim_dir = fx.tmp.path().join("victim");
    fs::create_dir_all(&victim_dir).unwrap();
    let victim = victim_dir.join("secret.txt");
    fs::write(&victim, b"keep me").unwrap();
    symlink(&victim_dir, out.join("escape")).unwrap();

    // The old ledger format (a list of paths), and the current one with a correct proof:
    // neither reaches through a symlinked directory.
    let forged = [
        serde_json::json!({"version": 1, "placed": ["escape/secret.txt"]}),
        serde_json::json!({"version": 2, "placed": {"escape/secret.txt":
            {"copy": {"size": 7, "sha256": sha256_hex(b"keep me")}}}}),
    ];
    for ledger in forged {
        write_ledger(&out, &ledger);
        let manifest = restructure_assets(&fx.bag, &out, &newest()).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me", "ledger {ledger}");
        assert_eq!(
            common::all(manifest.kept_files()),
            [KeptFile {
                path: out.join("escape/secret.txt"),
                reason: KeptReason::BehindSymlink,
            }]
        );
        assert_eq!(manifest.len(), 7);
    }
}

#[test]
fn a_forged_ledger_cannot_delete_a_users_own_file_inside_the_output_dir() {
    let fx = small();
    let out = fx.out();
    restructure_assets(&fx.bag, &out, &newest()).unwrap();
    let notes = out.join("notes.txt");
    fs::write(&notes, b"my own notes").unwrap();
    let cases = [
        (
            serde_json::json!({"version": 1, "placed": ["notes.txt"]}),
            KeptReason::Unproven,
        ),
        (
            serde_json::json!({"version": 2, "placed": {"notes.txt":
                {"copy": {"size": 12, "sha256": sha256_hex(b"something else")}}}}),
            KeptReason::Changed,
        ),
        (
            serde_json::json!({"version": 2, "placed": {"notes.txt":
                {"symlink": "/etc/hostname"}}}),
            KeptReason::Changed,
        ),
    ];
    for (ledger, reason) in cases {
        write_ledger(&out, &ledger);
        let manifest = restructure_assets(&fx.bag, &out, &newest()).unwrap();
        assert_eq!(
            fs::read(&notes).unwrap(),
            b"my own notes",
            "ledger {ledger}"
        );
        assert_eq!(
            common::all(manifest.kept_files()),
            [KeptFile {
                path: notes.clone(),
                reason,
            }],
            "ledger {ledger}"
        );
    }
}

#[test]
fn a_forged_ledger_cannot_make_a_rerun_replace_a_users_file_at_a_destination() {
    let fx = small();
    let out = fx.out();
    let mine = out.join("training/Severe/retina_001.jpg");
    fs::create_dir_all(mine.parent().unwrap()).unwrap();
    fs::write(&mine, b"my own notes").unwrap();
    write_ledger(
        &out,
        &serde_json::json!({"version": 1, "placed": ["training/Severe/retina_001.jpg"]}),
    );
    let manifest = restructure_assets(&fx.bag, &out, &newest()).unwrap();
    assert_eq!(fs::read(&mine).unwrap(), b"my own notes");
    assert_eq!(
        common::all(manifest.kept_files()),
        [KeptFile {
            path: mine.clone(),
            reason: KeptReason::Unproven,
        }]
    );
    // Every other asset is placed; the kept path is not reported as a placement.
    assert_eq!(manifest.len(), 6);
    assert!(common::pairs(&manifest).iter().all(|(_, dst)| dst != &mine));
}

#[test]
fn a_placed_copy_the_user_edited_is_kept_and_reported_not_overwritten() {
    let fx = small();
    let out = fx.out();
    let copies = newest().use_symlinks(false);
    restructure_assets(&fx.bag, &out, &copies).unwrap();
    let edited = out.join("training/Severe/retina_001.jpg");
    fs::write(&edited, b"cropped by hand").unwrap();
    let expected = [KeptFile {
        path: edited.clone(),
        reason: KeptReason::Changed,
    }];
    // Planned again at the same path, in copy mode and in symlink mode.
    for options in [copies.clone(), newest()] {
        let manifest = restructure_assets(&fx.bag, &out, &options).unwrap();
        assert_eq!(fs::read(&edited).unwrap(), b"cropped by hand");
        assert_eq!(common::all(manifest.kept_files()), expected);
        assert_eq!(manifest.len(), 6);
    }
    // No longer planned (other targets): kept too, not removed as stale.
    let by_subject = RestructureOptions::new().targets(Targets::names(["Subject"]));
    let manifest = restructure_assets(&fx.bag, &out, &by_subject).unwrap();
    assert_eq!(fs::read(&edited).unwrap(), b"cropped by hand");
    assert_eq!(common::all(manifest.kept_files()), expected);
}

#[test]
fn unedited_copies_of_an_earlier_run_are_still_replaced_and_removed() {
    let fx = small();
    let out = fx.out();
    restructure_assets(&fx.bag, &out, &newest().use_symlinks(false)).unwrap();
    let by_subject = RestructureOptions::new()
        .targets(Targets::names(["Subject"]))
        .use_symlinks(false);
    let manifest = restructure_assets(&fx.bag, &out, &by_subject).unwrap();
    assert_eq!(common::all(manifest.kept_files()), []);
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
    // Copies placed by this run are replaced by symlinks in the next.
    let manifest = restructure_assets(&fx.bag, &out, &newest()).unwrap();
    assert_eq!(common::all(manifest.kept_files()), []);
    for (src, dst) in &common::pairs(&manifest) {
        assert_eq!(&fs::read_link(dst).unwrap(), src);
    }
}

#[test]
fn a_planted_symlink_at_the_ledgers_temporary_name_is_not_written_through() {
    let fx = small();
    let out = fx.out();
    fs::create_dir_all(&out).unwrap();
    let victim = fx.tmp.path().join("victim.txt");
    fs::write(&victim, b"keep me").unwrap();
    symlink(&victim, out.join(format!("{LEDGER_NAME}.tmp"))).unwrap();
    restructure_assets(&fx.bag, &out, &newest()).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"keep me");
    assert!(fs::symlink_metadata(out.join(LEDGER_NAME))
        .unwrap()
        .is_file());
}
