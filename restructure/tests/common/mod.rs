//! Shared helpers of the restructure integration tests: the fixture bag opened with a private
//! index cache, a walk of the output tree, and small bag edits for extra fixtures.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use deriva_bag_core::fixtures::{self, FixtureSpec, GeneratedBag};
use deriva_bag_core::{DatasetBag, OpenOptions};
use deriva_bag_restructure::LEDGER_NAME;

/// A generated bag, opened, with its temp dir kept alive.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub generated: GeneratedBag,
    pub bag: DatasetBag,
}

impl Fixture {
    pub fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }
}

/// Opens `bag_dir` with an index cache inside `tmp` (tests never share or touch a user cache).
pub fn open(tmp: &Path, bag_dir: &Path) -> DatasetBag {
    let options = OpenOptions {
        cache_dir: Some(tmp.join("cache")),
        ..OpenOptions::default()
    };
    DatasetBag::open_with(bag_dir, &options).expect("open fixture bag")
}

/// The small demo bag (`FixtureSpec::default()`).
pub fn small() -> Fixture {
    with_spec(&FixtureSpec::default())
}

/// A bag generated from `spec`.
pub fn with_spec(spec: &FixtureSpec) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let generated = fixtures::generate(spec, &tmp.path().join("bags")).expect("generate fixture");
    let bag = open(tmp.path(), &generated.path);
    Fixture {
        tmp,
        generated,
        bag,
    }
}

/// The small bag after `edit` changed its files; manifests and fetch.txt are rewritten so
/// the bag stays valid, then it is opened with a fresh cache.
pub fn edited(edit: impl FnOnce(&mut GeneratedBag)) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut generated = fixtures::small_bag(&tmp.path().join("bags")).expect("generate fixture");
    edit(&mut generated);
    let remote = generated
        .assets
        .iter()
        .map(|a| deriva_bag_core::bagit::write::RemoteFile {
            url: a.fetch_url.clone(),
            length: a.length,
            path: a.bag_path.clone(),
            md5: a.md5.clone(),
            sha256: None,
        });
    deriva_bag_core::bagit::write::BagWriter::new()
        .remote_files(remote)
        .write(&generated.path)
        .expect("rewrite manifests");
    let bag = open(tmp.path(), &generated.path);
    Fixture {
        tmp,
        generated,
        bag,
    }
}

/// Every file or symlink under `root` (relative, `/`-separated, sorted), without the ledger.
pub fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        let ft = entry.file_type().expect("file type");
        if ft.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if rel != LEDGER_NAME {
                out.push(rel);
            }
        }
    }
}

/// A minimal ImageFolder: under `split_dir`, each subdirectory is a class; counts the image
/// files (by extension, as torchvision's IMG_EXTENSIONS) per class, following symlinks.
pub fn image_folder_counts(split_dir: &Path) -> BTreeMap<String, usize> {
    let mut classes = BTreeMap::new();
    for entry in fs::read_dir(split_dir).expect("read split dir") {
        let entry = entry.expect("entry");
        if !entry.file_type().expect("ft").is_dir() {
            continue;
        }
        let class = entry.file_name().to_string_lossy().into_owned();
        let mut n = 0;
        for f in fs::read_dir(entry.path()).expect("read class dir") {
            let p = f.expect("file").path();
            let ext = p
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if ["jpg", "jpeg", "png"].contains(&ext.as_str())
                && fs::metadata(&p).is_ok_and(|m| m.is_file())
            {
                n += 1;
            }
        }
        classes.insert(class, n);
    }
    classes
}

/// `(rel → rel)` helper: the paths of `expected` as owned strings.
pub fn paths(expected: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Every `(source, destination)` of a manifest, in its order.
pub fn pairs(manifest: &deriva_bag_restructure::Manifest) -> Vec<(PathBuf, PathBuf)> {
    manifest
        .placements()
        .map(|p| p.map(|p| (p.src, p.dst)))
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every item of one of a manifest's lists (missing files, kept files, several splits).
pub fn all<T>(items: impl Iterator<Item = Result<T, deriva_bag_restructure::Error>>) -> Vec<T> {
    items.collect::<Result<_, _>>().unwrap()
}
