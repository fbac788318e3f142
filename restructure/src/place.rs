//! Writing the plan: symlinks, copies or transformer output, in parallel, never outside the
//! output directory, never over a file we did not place.
//!
//! Re-runs into the same output directory are idempotent. The rule: a ledger file
//! ([`LEDGER_NAME`], at the top of the output directory) lists every path the previous run
//! placed. For each planned destination:
//!
//! * absent → placed;
//! * already what we would write (a symlink to the same source, or a copy with the same
//!   bytes) → kept untouched;
//! * anything else listed in the ledger (our own earlier placement, e.g. a copy now wanted as
//!   a symlink) → replaced;
//! * anything else → not ours: the run fails before writing anything ([`Error::Occupied`]).
//!
//! Ledger entries the new plan no longer contains (e.g. an image whose label changed) are
//! removed when they are still plain files or symlinks, and directories left empty by that
//! are removed, so an ImageFolder walker never sees stale classes.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};
use crate::manifest::Placement;
use crate::options::RestructureOptions;
use crate::plan::{is_confined, Planned};

/// File name of the placement ledger kept at the top of the output directory.
pub const LEDGER_NAME: &str = ".deriva-restructure.json";

const MAX_LISTED: usize = 20;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    version: u32,
    /// Paths relative to the output directory, `/`-separated.
    placed: BTreeSet<String>,
}

fn rel_key(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn load_ledger(path: &Path) -> Result<Ledger> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Ledger {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::default()),
        Err(e) => Err(io(path)(e)),
    }
}

fn save_ledger(path: &Path, ledger: &Ledger) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(ledger).map_err(|e| Error::Ledger {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// What is at a planned destination now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    /// Already exactly what we would write.
    Same,
    /// Our earlier placement, to be replaced.
    Ours,
    /// Someone else's file.
    Foreign,
}

fn state(dst: &Path, src: &Path, rel: &str, symlink: bool, ledger: &Ledger) -> Result<State> {
    let md = match fs::symlink_metadata(dst) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::Absent),
        Err(e) => return Err(io(dst)(e)),
    };
    let same = if md.file_type().is_symlink() {
        symlink && fs::read_link(dst).map_err(io(dst))? == src
    } else if md.is_file() {
        !symlink && same_bytes(src, dst)?
    } else {
        false
    };
    Ok(if same {
        State::Same
    } else if !md.is_dir() && ledger.placed.contains(rel) {
        State::Ours
    } else {
        State::Foreign
    })
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let (ma, mb) = (
        fs::metadata(a).map_err(io(a))?,
        fs::metadata(b).map_err(io(b))?,
    );
    if ma.len() != mb.len() {
        return Ok(false);
    }
    let mut fa = fs::File::open(a).map_err(io(a))?;
    let mut fb = fs::File::open(b).map_err(io(b))?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = fa.read(&mut ba).map_err(io(a))?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n]).map_err(io(b))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Lexically normalizes an absolute path (`.` dropped, `..` pops); `None` if `..` would
/// climb above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Some(out)
}

/// Checks that `path` (absolute) is inside `root` (absolute) and `canon_root` once symlinks
/// of its existing parent are resolved.
fn check_inside(path: &Path, root: &Path, canon_root: &Path) -> Result<()> {
    let outside = || Error::OutsideOutput {
        path: path.to_path_buf(),
        output_dir: root.to_path_buf(),
    };
    let norm = normalize(path).ok_or_else(outside)?;
    let rel = norm.strip_prefix(root).map_err(|_| outside())?;
    if !is_confined(rel) {
        return Err(outside());
    }
    let parent = norm.parent().ok_or_else(outside)?;
    let canon_parent = fs::canonicalize(parent).map_err(io(parent))?;
    if !canon_parent.starts_with(canon_root) {
        return Err(outside());
    }
    Ok(())
}

fn place_file(src: &Path, dst: &Path, symlink: bool) -> Result<()> {
    if symlink {
        #[cfg(unix)]
        {
            match std::os::unix::fs::symlink(src, dst) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(src = %src.display(), dst = %dst.display(), error = %e, "symlink failed, falling back to copy")
                }
            }
        }
        #[cfg(not(unix))]
        tracing::warn!(dst = %dst.display(), "symlinks are unix-only here; copying");
    }
    fs::copy(src, dst).map_err(io(dst))?;
    Ok(())
}

/// Writes `plan` under `output_dir` and returns the placements (sorted).
pub(crate) fn write(
    output_dir: &Path,
    plan: Vec<Planned>,
    options: &RestructureOptions,
) -> Result<Vec<Placement>> {
    let root = std::path::absolute(output_dir).map_err(io(output_dir))?;
    fs::create_dir_all(&root).map_err(io(&root))?;
    let canon_root = fs::canonicalize(&root).map_err(io(&root))?;
    let ledger_path = root.join(LEDGER_NAME);
    let ledger = load_ledger(&ledger_path)?;
    let symlink = options.use_symlinks && options.file_transformer.is_none();

    // A destination whose parent directory does not exist is absent too; on a first run that
    // is every destination, so one `lstat` per directory replaces one per file. Only a clean
    // `NotFound` on the directory counts: anything else (a file, a symlink, an error) falls
    // back to the per-file check, which reports it exactly as before.
    let parents: HashSet<&Path> = plan.iter().filter_map(|p| p.rel.parent()).collect();
    let absent_dirs: HashSet<PathBuf> = parents
        .into_iter()
        .filter(|rel| !rel.as_os_str().is_empty())
        .filter(|rel| {
            matches!(fs::symlink_metadata(root.join(rel)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        })
        .map(Path::to_path_buf)
        .collect();

    // Classify every destination first, so a foreign file stops the run before any write.
    let classified: Vec<(Planned, PathBuf, State)> = plan
        .into_par_iter()
        .map(|p| {
            let dst = root.join(&p.rel);
            let parent_absent = p.rel.parent().is_some_and(|d| absent_dirs.contains(d));
            let st = if parent_absent {
                State::Absent
            } else {
                state(&dst, &p.src, &rel_key(&p.rel), symlink, &ledger)?
            };
            let st = if options.file_transformer.is_some() && st == State::Foreign {
                // A transformer writes its own (possibly renamed) output; the suggested path
                // is only a hint and is not ours to judge unless the ledger says so.
                State::Absent
            } else {
                st
            };
            Ok((p, dst, st))
        })
        .collect::<Result<_>>()?;
    let foreign: Vec<&PathBuf> = classified
        .iter()
        .filter(|(_, _, s)| *s == State::Foreign)
        .map(|(_, d, _)| d)
        .collect();
    if !foreign.is_empty() {
        return Err(Error::Occupied {
            paths: foreign
                .iter()
                .take(MAX_LISTED)
                .map(|p| (*p).clone())
                .collect(),
            more: foreign.len().saturating_sub(MAX_LISTED),
        });
    }

    let dirs: BTreeSet<&Path> = classified
        .iter()
        .filter_map(|(_, d, _)| d.parent())
        .collect();
    for dir in dirs {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let canon = fs::canonicalize(dir).map_err(io(dir))?;
        if !canon.starts_with(&canon_root) {
            return Err(Error::OutsideOutput {
                path: dir.to_path_buf(),
                output_dir: root.clone(),
            });
        }
    }

    let total = classified.len();
    let done = AtomicUsize::new(0);
    let placements: Vec<Placement> = classified
        .into_par_iter()
        .map(|(p, dst, st)| -> Result<Placement> {
            if st == State::Ours {
                fs::remove_file(&dst).map_err(io(&dst))?;
            }
            let written = match &options.file_transformer {
                Some(f) => {
                    let out = f(&p.src, &dst).map_err(|source| Error::FileTransformer {
                        src: p.src.clone(),
                        dst: dst.clone(),
                        source,
                    })?;
                    let out = std::path::absolute(&out).map_err(io(&out))?;
                    check_inside(&out, &root, &canon_root)?;
                    normalize(&out).unwrap_or(out)
                }
                None => {
                    if st != State::Same {
                        place_file(&p.src, &dst, symlink)?;
                    }
                    dst
                }
            };
            if let Some(progress) = &options.progress {
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            }
            Ok(Placement {
                src: p.src,
                dst: written,
                rid: p.rid,
            })
        })
        .collect::<Result<_>>()?;

    remove_stale(&root, &ledger, &placements)?;
    let new_ledger = Ledger {
        version: 1,
        placed: placements
            .iter()
            .filter_map(|p| p.dst.strip_prefix(&root).ok().map(rel_key))
            .collect(),
    };
    save_ledger(&ledger_path, &new_ledger)?;
    let mut placements = placements;
    placements.sort();
    Ok(placements)
}

/// Removes files an earlier run placed that this run did not, and the directories emptied.
fn remove_stale(root: &Path, ledger: &Ledger, placements: &[Placement]) -> Result<()> {
    let current: HashSet<String> = placements
        .iter()
        .filter_map(|p| p.dst.strip_prefix(root).ok().map(rel_key))
        .collect();
    for rel in ledger.placed.iter().filter(|r| !current.contains(*r)) {
        let rel_path = Path::new(rel);
        if !is_confined(rel_path) {
            tracing::warn!(entry = %rel, "ignoring an unsafe ledger entry");
            continue;
        }
        let path = root.join(rel_path);
        match fs::symlink_metadata(&path) {
            Ok(md) if md.file_type().is_symlink() || md.is_file() => {
                fs::remove_file(&path).map_err(io(&path))?;
                tracing::info!(path = %path.display(), "removed a stale placement of an earlier run");
            }
            _ => continue,
        }
        // Prune directories emptied by the removal, up to (not including) the root.
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_pops_parents_and_refuses_to_climb_above_root() {
        assert_eq!(
            normalize(Path::new("/out/a/../b/./c.jpg")),
            Some(PathBuf::from("/out/b/c.jpg"))
        );
        assert_eq!(normalize(Path::new("/..")), None);
    }

    #[test]
    fn check_inside_rejects_paths_that_leave_the_output_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        fs::create_dir_all(root.join("a")).unwrap();
        let canon = fs::canonicalize(&root).unwrap();
        assert!(check_inside(&root.join("a/x.png"), &root, &canon).is_ok());
        let err = check_inside(&root.join("a/../../x.png"), &root, &canon).unwrap_err();
        assert!(matches!(err, Error::OutsideOutput { .. }), "{err}");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path(), root.join("escape")).unwrap();
            let err = check_inside(&root.join("escape/x.png"), &root, &canon).unwrap_err();
            assert!(matches!(err, Error::OutsideOutput { .. }), "{err}");
        }
    }

    #[test]
    fn rel_keys_are_slash_separated() {
        assert_eq!(
            rel_key(Path::new("training/Severe/a.jpg")),
            "training/Severe/a.jpg"
        );
    }
}
