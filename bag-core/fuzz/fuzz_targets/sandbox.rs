//! Shared by the archive targets: extract one input in a fresh directory and check that
//! nothing appeared outside the cache inside it, that the extraction holds no link, and that
//! a refused archive left nothing but lock files.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use deriva_bag_core::archive::extract_with;

/// Keeps every iteration fast and small; the cap itself is part of what is fuzzed.
const MAX_BYTES: u64 = 1 << 20;

/// Every path under `dir` (not following links).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let md = fs::symlink_metadata(&path).expect("listed entry");
        out.push(path.clone());
        if md.is_dir() {
            walk(&path, out);
        }
    }
}

/// Writes `data` as `<jail>/<file_name>`, extracts it into `<jail>/cache`, checks, cleans up.
pub fn check(data: &[u8], file_name: &str) {
    static N: AtomicU64 = AtomicU64::new(0);
    let root = std::env::temp_dir().join(format!(
        "deriva-bag-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    // Four levels deep, so that an entry climbing out with `../` lands where we look.
    let jail = root.join("a/b/c/d");
    let cache = jail.join("cache");
    let archive = jail.join(file_name);
    fs::create_dir_all(&jail).expect("create the jail");
    fs::write(&archive, data).expect("write the archive");

    let result = extract_with(&archive, &cache, Some(MAX_BYTES));

    let mut found = Vec::new();
    walk(&root, &mut found);
    let allowed_outside = [
        root.join("a"),
        root.join("a/b"),
        root.join("a/b/c"),
        jail.clone(),
        archive.clone(),
    ];
    for path in &found {
        assert!(
            path.starts_with(&cache) || allowed_outside.contains(path),
            "{} appeared outside the cache",
            path.display()
        );
        assert!(
            !fs::symlink_metadata(path).expect("listed").file_type().is_symlink(),
            "{} is a link",
            path.display()
        );
    }
    let extracted = cache.join("extracted");
    match &result {
        Ok(bag) => {
            assert!(bag.starts_with(&extracted), "{}", bag.display());
            assert!(bag.join("bagit.txt").is_file());
        }
        Err(_) => {
            let left: Vec<&PathBuf> = found
                .iter()
                .filter(|p| p.starts_with(&extracted) && *p != &extracted)
                .filter(|p| p.extension().is_none_or(|e| e != "lock"))
                .collect();
            assert!(left.is_empty(), "a refused archive left {left:?}");
        }
    }
    fs::remove_dir_all(&root).expect("clean up");
}
