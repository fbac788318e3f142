//! Symbolic links in a directory bag (issue 11, item 4): a link that leads outside the bag is
//! never followed — not to read a tag file, `schema.json` or a CSV, not by `asset_path`, not
//! by the generic loader — and such an asset counts as missing, with a warning naming it. A
//! link that stays inside the bag keeps working.
#![cfg(unix)]

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::options;
use deriva_bag_core::bagit::{BagItFiles, ValidationMode};
use deriva_bag_core::features::loader::elements::{ElementPlan, ElementQuery};
use deriva_bag_core::features::{DatasetLike, Rid, TableName};
use deriva_bag_core::fixtures::{self, GeneratedBag};
use deriva_bag_core::{DatasetBag, Error, MissingAsset};

/// The small bag, generated under `tmp/bags`, not yet opened.
fn generate(tmp: &Path) -> GeneratedBag {
    fixtures::small_bag(&tmp.join("bags")).unwrap()
}

/// Moves `bag/rel` to `tmp/outside/<name>` and leaves an absolute symlink to it at `bag/rel`.
/// Returns the link target, canonical.
fn link_out(tmp: &Path, bag: &Path, rel: &str) -> PathBuf {
    let outside = tmp.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let name = rel.replace('/', "_");
    let target = outside.join(name);
    fs::rename(bag.join(rel), &target).unwrap();
    symlink(&target, bag.join(rel)).unwrap();
    target.canonicalize().unwrap()
}

fn assert_escape(err: Error, path: &Path, target: &Path) {
    match err {
        Error::LinkEscapesBag { path: p, target: t } => {
            assert_eq!(p, path);
            assert_eq!(t, target);
        }
        other => panic!("expected LinkEscapesBag, got {other:?}"),
    }
}

/// Runs `f` with every `tracing` event at WARN or above written into the returned text.
fn warnings_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[test]
fn open_refuses_tag_files_that_link_out_of_the_bag() {
    for name in [
        "bagit.txt",
        "manifest-md5.txt",
        "manifest-sha256.txt",
        "fetch.txt",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let g = generate(tmp.path());
        let target = link_out(tmp.path(), &g.path, name);
        let err = DatasetBag::open_with(&g.path, &options(tmp.path())).unwrap_err();
        assert_escape(err, &g.path.join(name), &target);
    }
}

#[test]
fn reading_the_tag_files_refuses_bag_info_and_tag_manifests_that_link_out_of_the_bag() {
    for name in [
        "bag-info.txt",
        "tagmanifest-md5.txt",
        "tagmanifest-sha256.txt",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let g = generate(tmp.path());
        let target = link_out(tmp.path(), &g.path, name);
        let err = BagItFiles::read(&g.path).unwrap_err();
        assert_escape(err, &g.path.join(name), &target);
        // Opening hashes the tag manifests into the cache key, so it refuses them at once;
        // bag-info.txt is read when the opened bag parses its tag files, on first use.
        let err = match DatasetBag::open_with(&g.path, &options(tmp.path())) {
            Ok(bag) if name == "bag-info.txt" => bag.bagit().unwrap_err(),
            Ok(_) => panic!("{name}: open followed the link"),
            Err(e) => e,
        };
        assert_escape(err, &g.path.join(name), &target);
    }
}

#[test]
fn open_refuses_a_schema_json_that_links_out_of_the_bag() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate(tmp.path());
    let target = link_out(tmp.path(), &g.path, "data/schema.json");
    let err = DatasetBag::open_with(&g.path, &options(tmp.path())).unwrap_err();
    assert_escape(err, &g.path.join("data/schema.json"), &target);
}

#[test]
fn a_data_directory_that_links_out_of_the_bag_is_refused_by_open_and_by_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate(tmp.path());
    let target = link_out(tmp.path(), &g.path, "data");
    let err = DatasetBag::open_with(&g.path, &options(tmp.path())).unwrap_err();
    assert_escape(err, &g.path.join("data"), &target);
    // Validation reads the tag files first, through the same "is this a bag" check.
    let err = BagItFiles::read(&g.path).unwrap_err();
    assert_escape(err, &g.path.join("data"), &target);
}

#[test]
fn validate_does_not_hash_a_tag_file_that_links_out_of_the_bag() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate(tmp.path());
    // An extra tag file, listed with the right digest of what lies outside: following the
    // link would make the bag valid and leak whether the outside file has that content.
    let outside = tmp.path().join("secret.txt");
    fs::write(&outside, "secret\n").unwrap();
    symlink(&outside, g.path.join("notes.txt")).unwrap();
    let mut manifest = fs::OpenOptions::new()
        .append(true)
        .open(g.path.join("tagmanifest-md5.txt"))
        .unwrap();
    // md5("secret\n")
    writeln!(manifest, "dd02c7c2232759874e1c205587017bed  notes.txt").unwrap();
    let files = BagItFiles::read(&g.path).unwrap();
    let report = files.validate(ValidationMode::Full, None).unwrap();
    let found: Vec<(&str, &str)> = report
        .errors
        .iter()
        .map(|i| (i.kind.as_str(), i.path.as_str()))
        .collect();
    assert_eq!(found, [("unsafe-path", "notes.txt")], "{report:?}");
}

#[test]
fn a_csv_that_links_out_of_the_bag_is_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate(tmp.path());
    let rel = g
        .csv_files
        .iter()
        .find(|p| p.ends_with("/Subject.csv"))
        .unwrap()
        .clone();
    link_out(tmp.path(), &g.path, &rel);
    let (bag, warnings) =
        warnings_of(|| DatasetBag::open_with(&g.path, &options(tmp.path())).unwrap());
    assert!(
        warnings.contains(&format!("skipping a symbolic link under data/ path={rel}")),
        "{warnings}"
    );
    assert_eq!(bag.get_table("demo:Subject").unwrap().len(), 0);
}

#[test]
fn an_asset_that_links_out_of_the_bag_is_missing_with_a_warning_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate(tmp.path());
    let rel = g.asset("1-I001").unwrap().bag_path.clone();
    assert_eq!(rel, "data/asset/1-I001/Image/retina_001.jpg");
    let outside = tmp.path().join("hostname");
    fs::write(&outside, "host.example\n").unwrap();
    fs::remove_file(g.path.join(&rel)).unwrap();
    symlink(&outside, g.path.join(&rel)).unwrap();
    let bag = DatasetBag::open_with(&g.path, &options(tmp.path())).unwrap();
    let rid = Rid::new("1-I001");

    let (found, warnings) = warnings_of(|| bag.asset_path("Image", &rid).unwrap());
    assert_eq!(found, None);
    assert!(warnings.contains(&rel), "{warnings}");
    assert!(warnings.contains("outside the bag"), "{warnings}");

    assert_eq!(
        bag.missing_assets().unwrap(),
        [MissingAsset {
            table: TableName::new("demo", "Image"),
            rid: rid.clone(),
            path: rel.clone(),
        }]
    );
    assert!(!bag.is_materialized());
    // Through the trait the loaders and restructure use.
    let table = TableName::new("demo", "Image");
    let row = bag
        .get_table("demo:Image")
        .unwrap()
        .into_iter()
        .find(|r| r.rid().as_ref() == Some(&rid))
        .unwrap();
    assert_eq!(DatasetLike::asset_path(&bag, &table, &row), None);
}

#[test]
fn an_asset_directory_that_links_out_of_the_bag_hides_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate(tmp.path());
    link_out(tmp.path(), &g.path, "data/asset/1-I002");
    let bag = DatasetBag::open_with(&g.path, &options(tmp.path())).unwrap();
    assert_eq!(bag.asset_path("Image", &Rid::new("1-I002")).unwrap(), None);
    let missing: Vec<(String, String)> = bag
        .missing_assets()
        .unwrap()
        .into_iter()
        .map(|m| (m.rid.to_string(), m.path))
        .collect();
    assert_eq!(
        missing,
        [(
            "1-I002".to_string(),
            "data/asset/1-I002/Image/retina 002.jpg".to_string()
        )]
    );
}

#[test]
fn a_symlink_that_stays_inside_the_bag_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate(tmp.path());
    let rel = g.asset("1-I001").unwrap().bag_path.clone();
    let moved = g.path.join("data/elsewhere/retina_001.jpg");
    fs::create_dir_all(moved.parent().unwrap()).unwrap();
    fs::rename(g.path.join(&rel), &moved).unwrap();
    // Relative, climbing up and down inside the bag.
    symlink("../../../elsewhere/retina_001.jpg", g.path.join(&rel)).unwrap();
    let bag = DatasetBag::open_with(&g.path, &options(tmp.path())).unwrap();
    assert_eq!(
        bag.asset_path("Image", &Rid::new("1-I001")).unwrap(),
        Some(g.path.join(&rel))
    );
    assert_eq!(bag.missing_assets().unwrap(), []);
    assert!(bag.is_materialized());
}

/// The generic loader of `features` (which both adapters build on) takes asset paths only
/// from `DatasetLike::asset_path`; the adapters never resolve a path themselves.
#[test]
fn the_generic_loader_gets_no_file_for_an_asset_that_links_out_of_the_bag() {
    let tmp = tempfile::tempdir().unwrap();
    let g = generate(tmp.path());
    let rel = g.asset("1-I001").unwrap().bag_path.clone();
    let outside = tmp.path().join("hostname");
    fs::write(&outside, "host.example\n").unwrap();
    fs::remove_file(g.path.join(&rel)).unwrap();
    symlink(&outside, g.path.join(&rel)).unwrap();
    let bag = DatasetBag::open_with(&g.path, &options(tmp.path())).unwrap();
    let err = ElementPlan::build(&bag, "Image", &ElementQuery::default()).unwrap_err();
    match err {
        deriva_bag_core::features::Error::MissingAssetFiles {
            table,
            count,
            listed,
            more,
        } => {
            assert_eq!(table, "demo:Image");
            assert_eq!(count, 1);
            assert_eq!(listed, [(Rid::new("1-I001"), "retina_001.jpg".to_string())]);
            assert_eq!(more, 0);
        }
        other => panic!("{other:?}"),
    }
}
