//! The cache directory outside every bag: extracted archives and SQLite indexes live here.
//!
//! Layout: `<root>/extracted/<key>/<bag dir>` for archives, `<root>/index/<key>.sqlite` (plus
//! its part files `<key>.<n>.sqlite`, written in parallel) for indexes, and
//! `<root>/keys/<fingerprint>` for remembered cache keys of bag directories. Several
//! processes may open one bag at once: each builds into private temporary paths under an
//! exclusive file lock and publishes them by atomic renames, the main index file last.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Environment variable that overrides the cache root.
pub const CACHE_ENV: &str = "DERIVA_BAG_CACHE";

/// The cache root: `$DERIVA_BAG_CACHE`, else `<platform cache dir>/deriva-bag`.
pub fn cache_root() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("deriva-bag"),
    }
}

/// Holds an exclusive lock on `<path>.lock` until dropped.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// Takes the exclusive lock that guards building `path` (blocking until it is free).
pub fn lock_for(path: &Path) -> Result<CacheLock> {
    let lock_path = path.with_extension("lock");
    if let Some(parent) = lock_path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    file.lock().map_err(|e| Error::io(&lock_path, e))?;
    Ok(CacheLock { _file: file })
}

/// A private temporary sibling of `path`, unique to this process and call.
pub fn temp_sibling(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Moves a finished temporary file or directory into place atomically.
pub fn publish(temp: &Path, path: &Path) -> Result<()> {
    fs::rename(temp, path).map_err(|e| Error::io(path, e))
}
