//! The cache directory outside every bag: extracted archives and SQLite indexes live here.
//!
//! Layout: `<root>/extracted/<key>/<bag dir>` for archives, `<root>/index/<key>.sqlite` (plus
//! its part files `<key>.<n>.sqlite`, written in parallel) for indexes, with
//! `<key>.reach-<digest>.sqlite` beside them for the reachable-row sets queries materialize
//! on first need (one per dataset and table; removed when the index is rebuilt), and
//! `<root>/keys/<fingerprint>` for remembered cache keys of bag directories, and
//! `<root>/verified/<digest>` for the identities of the files each bag directory showed when
//! its index was last checked against the manifests (`index::integrity`), and
//! `<root>/assets/<digest>` for the last asset check of each bag directory
//! (`DatasetBag::asset_status`). Several
//! processes may open one bag at once: each builds into private temporary paths under an
//! exclusive file lock and publishes them by atomic renames, the main index file last.
//!
//! Lifecycle rules every user of the cache keeps:
//! - **One lock per key.** Everything published under `<key>` or `<key>.<suffix>` (keys hold
//!   no dot) is built while holding `<key>.lock` ([`lock_for`]), and only then.
//! - **Temporaries name their builder.** [`temp_sibling`] names carry the building process's
//!   id, `.<name>.tmp-<pid>-<n>`. A killed process leaves them behind; [`remove_leftovers`]
//!   removes one once its process is gone (or it is older than a day, as pids are reused)
//!   *and* its key's lock is free, so a live builder's work is never touched, even one in
//!   another pid namespace sharing the cache.
//! - **A published entry is only read.** Finding a current published entry needs no lock
//!   and no write, so a warm cache works when it is read-only (a shared cache another
//!   account filled, a read-only mount).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    let (lock_path, file) = open_lock(path)?;
    file.lock().map_err(|e| Error::io(&lock_path, e))?;
    Ok(CacheLock { _file: file })
}

/// The lock guarding `path`: `<key>.lock` beside it, where `<key>` is the file name up to
/// its first dot (`<key>.sqlite` and its parts `<key>.<n>.sqlite` share one lock).
fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let key = name.split('.').next().unwrap_or_default();
    path.with_file_name(format!("{key}.lock"))
}

/// Opens (creating it and its directory if needed) the lock file of `path`.
fn open_lock(path: &Path) -> Result<(PathBuf, File)> {
    let lock_path = lock_path(path);
    if let Some(parent) = lock_path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    Ok((lock_path, file))
}

/// The lock guarding `path` if nobody holds it now; `None` when it is held or cannot be
/// opened (a read-only cache).
fn try_lock_for(path: &Path) -> Option<CacheLock> {
    let (_, file) = open_lock(path).ok()?;
    file.try_lock().ok()?;
    Some(CacheLock { _file: file })
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
    path.with_file_name(format!(".{name}{TEMP_INFIX}{}-{n}", std::process::id()))
}

/// What [`temp_sibling`] puts between the published name and the process id.
const TEMP_INFIX: &str = ".tmp-";

/// A temporary older than this is a leftover even when a process with its pid is running:
/// pids are reused, and no index build or extraction takes a day.
const LEFTOVER_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// A [`temp_sibling`] name taken apart: the name it will be published as, and the id of
/// the process that writes it. `None` for any other name.
fn parse_temp(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_prefix('.')?;
    let at = rest.rfind(TEMP_INFIX)?;
    let (published, tail) = (&rest[..at], &rest[at + TEMP_INFIX.len()..]);
    let (pid, n) = tail.split_once('-')?;
    if published.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((published, pid.parse().ok()?))
}

/// Whether a process with id `pid` is running (on this host's pid namespace). Where this
/// cannot be told, every process counts as running and only the age rule applies.
fn process_running(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        // EPERM: it runs, under another user.
        !matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Which temporaries in a cache directory a lock guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub enum Guard {
    /// Built under the key's [`lock_for`] lock (`extracted/`, `index/`): a leftover is
    /// removed only while that lock is free.
    KeyLock,
    /// Written without a lock, in one short step (`keys/`): the process rule alone decides.
    None,
}

/// Removes what killed processes left in the cache directory `dir`: every [`temp_sibling`]
/// whose process is gone (or that is older than a day), and whose key's lock (with
/// [`Guard::KeyLock`]) nobody holds. A live builder holds that lock from before it creates
/// its temporary until after it publishes it, so its work is never removed. Best effort and
/// silent where the cache is read-only: nothing here can fail an open.
#[doc(hidden)]
pub fn remove_leftovers(dir: &Path, guard: Guard) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((published, pid)) = name.to_str().and_then(parse_temp) else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LEFTOVER_AGE);
        if !old && (pid == std::process::id() || process_running(pid)) {
            continue;
        }
        let _lock = match guard {
            Guard::KeyLock => match try_lock_for(&dir.join(published)) {
                Some(lock) => Some(lock),
                None => continue,
            },
            Guard::None => None,
        };
        let path = entry.path();
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {
                tracing::info!(path = %path.display(), pid, "removed what a killed process left in the cache")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::debug!(path = %path.display(), "cannot remove a leftover: {e}"),
        }
    }
}

/// Moves a finished temporary file or directory into place atomically.
pub fn publish(temp: &Path, path: &Path) -> Result<()> {
    fs::rename(temp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    /// The id of a process that has been killed and reaped.
    fn killed_pid() -> u32 {
        let mut child: Child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id();
        child.kill().unwrap();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn temporary_names_carry_the_published_name_and_the_process_id() {
        let temp = temp_sibling(Path::new("/cache/index/abc.1.sqlite"));
        let name = temp.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_temp(name), Some(("abc.1.sqlite", std::process::id())));
        assert_eq!(parse_temp(".abc.tmp-12-0"), Some(("abc", 12)));
        for other in [
            "abc.sqlite",
            "abc.lock",
            ".abc.tmp-x-0",
            ".abc.tmp-12-",
            ".tmp-12-0",
        ] {
            assert_eq!(parse_temp(other), None, "{other}");
        }
    }

    #[test]
    fn every_file_of_a_key_shares_the_key_lock() {
        let dir = Path::new("/cache/index");
        for name in ["abc.sqlite", "abc.2.sqlite", "abc"] {
            assert_eq!(lock_path(&dir.join(name)), dir.join("abc.lock"), "{name}");
        }
    }

    #[test]
    fn a_leftover_whose_key_lock_is_held_is_kept_even_when_its_process_is_gone() {
        // A builder in another pid namespace: its pid means nothing here, its lock does.
        let tmp = tempfile::tempdir().unwrap();
        let dead = killed_pid();
        let held = tmp.path().join(format!(".abc.sqlite.tmp-{dead}-0"));
        let free = tmp.path().join(format!(".def.sqlite.tmp-{dead}-0"));
        fs::write(&held, b"x").unwrap();
        fs::write(&free, b"x").unwrap();
        let _lock = lock_for(&tmp.path().join("abc.sqlite")).unwrap();
        remove_leftovers(tmp.path(), Guard::KeyLock);
        assert!(held.exists());
        assert!(!free.exists());
    }

    #[test]
    fn a_day_old_leftover_is_removed_even_when_its_pid_is_running_again() {
        let tmp = tempfile::tempdir().unwrap();
        let mut live = Command::new("sleep").arg("60").spawn().unwrap();
        let (old, young) = (
            tmp.path().join(format!(".abc.tmp-{}-0", live.id())),
            tmp.path().join(format!(".def.tmp-{}-0", live.id())),
        );
        fs::create_dir_all(old.join("B")).unwrap();
        fs::create_dir_all(&young).unwrap();
        let two_days_ago = std::time::SystemTime::now() - 2 * LEFTOVER_AGE;
        File::open(&old)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        remove_leftovers(tmp.path(), Guard::None);
        live.kill().unwrap();
        live.wait().unwrap();
        assert!(!old.exists());
        assert!(young.exists());
    }
}
