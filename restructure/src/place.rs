//! Writing the plan: symlinks, copies or transformer output, in parallel, never outside the
//! output directory, never inside the dataset's own files, never over a file we did not place.
//!
//! Re-runs into the same output directory are idempotent. A ledger file ([`LEDGER_NAME`], at
//! the top of the output directory) records every path the previous run placed together with
//! a *proof* of what it placed there: the target of a symlink (the bag asset), or the size and
//! sha256 of a copy. The ledger is untrusted input — anyone who can write to the output
//! directory can write it — so a path it names is replaced or removed only when what is there
//! now matches its proof, no directory on the way is a symbolic link, and the path stays
//! inside the output directory. For each planned destination:
//!
//! * absent → placed;
//! * already what we would write (a symlink to the same source, or a copy with the same
//!   bytes) → kept untouched;
//! * named by the ledger and matching its proof (our own earlier placement, e.g. a copy now
//!   wanted as a symlink) → replaced;
//! * named by the ledger but not matching its proof (a placed copy the user edited since, a
//!   ledger entry with no proof, a path behind a symlinked directory) → kept, logged as a
//!   warning and listed in [`Manifest::kept_files`](crate::Manifest::kept_files);
//! * anything else → not ours: the run fails before writing anything ([`Error::Occupied`]).
//!
//! Ledger entries the new plan no longer contains (e.g. an image whose label changed) are
//! removed under the same proof rule, and directories left empty by that are removed, so an
//! ImageFolder walker never sees stale classes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{io, Error, Result};
use crate::manifest::{KeptFile, KeptReason, Placement};
use crate::options::RestructureOptions;
use crate::output;
use crate::plan::{is_confined, Planned};

/// File name of the placement ledger kept at the top of the output directory.
pub const LEDGER_NAME: &str = ".deriva-restructure.json";

/// The ledger format written now: `{"version": 2, "placed": {path: proof}}`. Version 1 (a
/// list of paths without proofs) is still read; its entries prove nothing.
const LEDGER_VERSION: u32 = 2;

const MAX_LISTED: usize = 20;

/// What a run placed at one path, recorded so that a later run can recognise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Proof {
    /// A symbolic link to this target (the bag asset).
    Symlink(PathBuf),
    /// A regular file with this size and sha256 (lowercase hex).
    Copy { size: u64, sha256: String },
}

/// Paths relative to the output directory (`/`-separated) → their proof; `None` for an
/// entry of a version-1 ledger, which proves nothing.
#[derive(Debug, Default)]
struct Ledger {
    placed: BTreeMap<String, Option<Proof>>,
}

#[derive(Deserialize)]
struct RawLedger {
    version: u32,
    placed: serde_json::Value,
}

#[derive(Serialize)]
struct LedgerOut<'a> {
    version: u32,
    placed: &'a BTreeMap<String, Option<Proof>>,
}

fn rel_key(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn load_ledger(path: &Path) -> Result<Ledger> {
    let bad = |detail: String| Error::Ledger {
        path: path.to_path_buf(),
        detail,
    };
    match fs::symlink_metadata(path) {
        Ok(md) if !md.is_file() => {
            return Err(bad(
                "not a plain file (a ledger is never a symbolic link or a directory)".into(),
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ledger::default()),
        Err(e) => return Err(io(path)(e)),
    }
    let bytes = fs::read(path).map_err(io(path))?;
    let raw: RawLedger = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let placed = match raw.version {
        1 => serde_json::from_value::<BTreeSet<String>>(raw.placed)
            .map_err(|e| bad(e.to_string()))?
            .into_iter()
            .map(|rel| (rel, None))
            .collect(),
        LEDGER_VERSION => serde_json::from_value(raw.placed).map_err(|e| bad(e.to_string()))?,
        other => return Err(bad(format!("unsupported ledger version {other}"))),
    };
    Ok(Ledger { placed })
}

/// Writes the ledger through a fresh temporary file (never through whatever is at the
/// temporary name: a planted symlink there is removed, not written through) and a rename.
fn save_ledger(path: &Path, ledger: &Ledger) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp)(e)),
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    // Serialized straight into the file, never whole in memory.
    let mut out = std::io::BufWriter::new(file);
    let written = serde_json::to_writer_pretty(
        &mut out,
        &LedgerOut {
            version: LEDGER_VERSION,
            placed: &ledger.placed,
        },
    )
    .map_err(std::io::Error::from)
    .and_then(|()| out.flush());
    drop(out);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    fs::rename(&tmp, path).map_err(io(path))
}

/// What is at a planned destination now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Absent,
    /// Already exactly what we would write (with the proof to record for it).
    Same(Proof),
    /// Our earlier placement (proven), to be replaced.
    Ours,
    /// Named by the ledger but not proven ours: left alone and reported.
    Kept(KeptReason),
    /// Someone else's file.
    Foreign,
}

/// What a ledger entry's path holds, judged against its proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Nothing there.
    Gone,
    /// Exactly what the proof records: ours to replace or remove.
    Proven,
    /// Anything else: not ours to touch.
    Kept(KeptReason),
}

/// Judges `root/rel` against `proof`. `planned_src`, when the path is a planned destination,
/// is the asset it is planned for: a symlink to it is proof enough for an entry without one.
/// Nothing behind a symbolic link (or anything but a directory) on the way below `root` is
/// ever ours.
fn judge(
    root: &Path,
    rel: &str,
    proof: Option<&Proof>,
    planned_src: Option<&Path>,
) -> Result<Verdict> {
    let rel_path = Path::new(rel);
    let mut dir = root.to_path_buf();
    let parents: Vec<Component<'_>> = rel_path.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        dir.push(c.as_os_str());
        match fs::symlink_metadata(&dir) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Ok(Verdict::Kept(KeptReason::BehindSymlink)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verdict::Gone),
            Err(e) => return Err(io(&dir)(e)),
        }
    }
    let path = root.join(rel_path);
    let md = match fs::symlink_metadata(&path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verdict::Gone),
        Err(e) => return Err(io(&path)(e)),
    };
    let link = if md.file_type().is_symlink() {
        Some(fs::read_link(&path).map_err(io(&path))?)
    } else {
        None
    };
    let proven = match (proof, &link) {
        (Some(Proof::Symlink(target)), Some(link)) => link == target,
        (Some(Proof::Copy { size, sha256 }), None) if md.is_file() => {
            md.len() == *size && file_sha256(&path)?.1 == *sha256
        }
        (None, Some(link)) if planned_src == Some(link.as_path()) => true,
        (None, _) => return Ok(Verdict::Kept(KeptReason::Unproven)),
        _ => false,
    };
    Ok(if proven {
        Verdict::Proven
    } else {
        Verdict::Kept(KeptReason::Changed)
    })
}

fn state(root: &Path, p: &Planned, rel: &str, symlink: bool, ledger: &Ledger) -> Result<State> {
    let dst = root.join(&p.rel);
    let md = match fs::symlink_metadata(&dst) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::Absent),
        Err(e) => return Err(io(&dst)(e)),
    };
    if md.file_type().is_symlink() {
        if symlink && fs::read_link(&dst).map_err(io(&dst))? == p.src {
            return Ok(State::Same(Proof::Symlink(p.src.clone())));
        }
    } else if md.is_file() && !symlink {
        if let Some(proof) = same_bytes(&p.src, &dst)? {
            return Ok(State::Same(proof));
        }
    }
    let Some(proof) = ledger.placed.get(rel) else {
        return Ok(State::Foreign);
    };
    Ok(match judge(root, rel, proof.as_ref(), Some(&p.src))? {
        Verdict::Gone => State::Absent,
        Verdict::Proven => State::Ours,
        Verdict::Kept(reason) => State::Kept(reason),
    })
}

/// `Some(copy proof)` when `a` and `b` hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> Result<Option<Proof>> {
    let (ma, mb) = (
        fs::metadata(a).map_err(io(a))?,
        fs::metadata(b).map_err(io(b))?,
    );
    if ma.len() != mb.len() {
        return Ok(None);
    }
    let mut fa = fs::File::open(a).map_err(io(a))?;
    let mut fb = fs::File::open(b).map_err(io(b))?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut hash = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = fa.read(&mut ba).map_err(io(a))?;
        if n == 0 {
            return Ok(Some(Proof::Copy {
                size,
                sha256: hex(&hash.finalize()),
            }));
        }
        fb.read_exact(&mut bb[..n]).map_err(io(b))?;
        if ba[..n] != bb[..n] {
            return Ok(None);
        }
        hash.update(&ba[..n]);
        size += n as u64;
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Size and sha256 of a file.
fn file_sha256(path: &Path) -> Result<(u64, String)> {
    let mut file = fs::File::open(path).map_err(io(path))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut hash = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            return Ok((size, hex(&hash.finalize())));
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
}

/// Copies `src` to a new file `dst` (never through something already at `dst`), hashing the
/// bytes on the way; returns the proof to record.
fn copy_hashed(src: &Path, dst: &Path) -> Result<Proof> {
    let mut from = fs::File::open(src).map_err(io(src))?;
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(io(dst))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut hash = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf).map_err(io(src))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(io(dst))?;
        size += n as u64;
    }
    Ok(Proof::Copy {
        size,
        sha256: hex(&hash.finalize()),
    })
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

/// The output directory and the dataset's directory, resolved once: every path written is
/// checked against both.
struct Bounds<'a> {
    root: &'a Path,
    canon_root: &'a Path,
    canon_source: Option<&'a Path>,
}

impl Bounds<'_> {
    fn outside(&self, path: &Path) -> Error {
        Error::OutsideOutput {
            path: path.to_path_buf(),
            output_dir: self.root.to_path_buf(),
        }
    }

    /// Checks that `path` (absolute) is inside the output directory once symlinks of its
    /// existing ancestors are resolved, and not inside the dataset's directory.
    fn check(&self, path: &Path) -> Result<()> {
        let norm = normalize(path).ok_or_else(|| self.outside(path))?;
        let rel = norm
            .strip_prefix(self.root)
            .map_err(|_| self.outside(path))?;
        if !is_confined(rel) {
            return Err(self.outside(path));
        }
        let resolved = output::resolve(&norm)?;
        if !resolved.starts_with(self.canon_root)
            || self.canon_source.is_some_and(|s| resolved.starts_with(s))
        {
            return Err(self.outside(path));
        }
        Ok(())
    }
}

fn place_file(src: &Path, dst: &Path, symlink: bool) -> Result<Proof> {
    if symlink {
        #[cfg(unix)]
        {
            match std::os::unix::fs::symlink(src, dst) {
                Ok(()) => return Ok(Proof::Symlink(src.to_path_buf())),
                Err(e) => {
                    tracing::warn!(src = %src.display(), dst = %dst.display(), error = %e, "symlink failed, falling back to copy")
                }
            }
        }
        #[cfg(not(unix))]
        tracing::warn!(dst = %dst.display(), "symlinks are unix-only here; copying");
    }
    copy_hashed(src, dst)
}

/// The proof for what a file transformer wrote at `path`.
fn proof_of_written(path: &Path) -> Result<Option<Proof>> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    Ok(if md.file_type().is_symlink() {
        Some(Proof::Symlink(fs::read_link(path).map_err(io(path))?))
    } else if md.is_file() {
        let (size, sha256) = file_sha256(path)?;
        Some(Proof::Copy { size, sha256 })
    } else {
        None
    })
}

fn warn_kept(kept: &KeptFile) {
    let why = match kept.reason {
        KeptReason::Changed => "it changed since an earlier run placed it (edited?)",
        KeptReason::Unproven => "the ledger of an earlier run names it without a proof",
        KeptReason::BehindSymlink => "a directory on the way is a symbolic link",
    };
    tracing::warn!(path = %kept.path.display(), "kept, not replaced or removed: {why}");
}

/// What [`write`] did: the placements (sorted) and the recorded paths it kept (sorted).
pub(crate) struct Written {
    pub placements: Vec<Placement>,
    pub kept: Vec<KeptFile>,
}

/// Writes `plan` under `output_dir` and returns the placements and kept paths.
/// `source_root` is the dataset's own directory, which nothing may be written into.
pub(crate) fn write(
    output_dir: &Path,
    source_root: Option<&Path>,
    plan: Vec<Planned>,
    options: &RestructureOptions,
) -> Result<Written> {
    let root = std::path::absolute(output_dir).map_err(io(output_dir))?;
    let canon_source = output::canonical_source(source_root)?;
    output::check_outside_source(&root, source_root, canon_source.as_deref())?;
    fs::create_dir_all(&root).map_err(io(&root))?;
    let canon_root = fs::canonicalize(&root).map_err(io(&root))?;
    let bounds = Bounds {
        root: &root,
        canon_root: &canon_root,
        canon_source: canon_source.as_deref(),
    };
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
                state(&root, &p, &rel_key(&p.rel), symlink, &ledger)?
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

    // Every directory is checked before it is created: a symlinked directory in the output
    // directory must not make us create anything outside it, or inside the dataset.
    let dirs: BTreeSet<&Path> = classified
        .iter()
        .filter(|(_, _, s)| !matches!(s, State::Kept(_)))
        .filter_map(|(_, d, _)| d.parent())
        .collect();
    for dir in dirs {
        // The output directory itself was created and resolved above.
        if dir != root.as_path() {
            bounds.check(dir)?;
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
    }

    // Planned paths whose ledger entries this run settles (placed, kept or replaced); the
    // other ledger entries are stale.
    // Only an earlier run's ledger has entries to settle; a first run needs no such set.
    let earlier = !ledger.placed.is_empty();
    let mut handled: HashSet<String> = if earlier {
        classified.iter().map(|(p, _, _)| rel_key(&p.rel)).collect()
    } else {
        HashSet::new()
    };
    let mut kept: Vec<KeptFile> = Vec::new();
    let mut new_ledger = Ledger::default();
    let mut to_place = Vec::with_capacity(classified.len());
    for (p, dst, st) in classified {
        if let State::Kept(reason) = st {
            let rel = rel_key(&p.rel);
            if let Some(proof) = ledger.placed.get(&rel) {
                new_ledger.placed.insert(rel, proof.clone());
            }
            let k = KeptFile { path: dst, reason };
            warn_kept(&k);
            kept.push(k);
        } else {
            to_place.push((p, dst, st));
        }
    }

    let total = to_place.len();
    let done = AtomicUsize::new(0);
    let placed: Vec<(Placement, Option<Proof>)> = to_place
        .into_par_iter()
        .map(|(p, dst, st)| -> Result<(Placement, Option<Proof>)> {
            if st == State::Ours {
                fs::remove_file(&dst).map_err(io(&dst))?;
            }
            let (written, proof) = match &options.file_transformer {
                Some(f) => {
                    let out = f(&p.src, &dst).map_err(|source| Error::FileTransformer {
                        src: p.src.clone(),
                        dst: dst.clone(),
                        source,
                    })?;
                    let out = std::path::absolute(&out).map_err(io(&out))?;
                    bounds.check(&out)?;
                    let out = normalize(&out).unwrap_or(out);
                    let proof = proof_of_written(&out)?;
                    (out, proof)
                }
                None => {
                    let proof = match st {
                        State::Same(proof) => proof,
                        _ => place_file(&p.src, &dst, symlink)?,
                    };
                    (dst, Some(proof))
                }
            };
            if let Some(progress) = &options.progress {
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            }
            Ok((
                Placement {
                    src: p.src,
                    dst: written,
                    rid: p.rid,
                },
                proof,
            ))
        })
        .collect::<Result<_>>()?;

    let mut placements = Vec::with_capacity(placed.len());
    for (placement, proof) in placed {
        if let Ok(rel) = placement.dst.strip_prefix(&root) {
            let rel = rel_key(rel);
            if earlier {
                handled.insert(rel.clone());
            }
            new_ledger.placed.insert(rel, proof);
        }
        placements.push(placement);
    }
    for (rel, proof) in remove_stale(&root, &ledger, &handled)? {
        let k = KeptFile {
            path: root.join(&rel),
            reason: proof.1,
        };
        warn_kept(&k);
        kept.push(k);
        new_ledger.placed.insert(rel, proof.0);
    }
    save_ledger(&ledger_path, &new_ledger)?;
    placements.sort();
    kept.sort();
    Ok(Written { placements, kept })
}

/// Removes the files an earlier run provably placed that this run did not (and the
/// directories emptied). Returns the stale entries kept, with their proofs and why.
#[allow(clippy::type_complexity)]
fn remove_stale(
    root: &Path,
    ledger: &Ledger,
    handled: &HashSet<String>,
) -> Result<Vec<(String, (Option<Proof>, KeptReason))>> {
    let mut kept = Vec::new();
    for (rel, proof) in ledger.placed.iter().filter(|(r, _)| !handled.contains(*r)) {
        let rel_path = Path::new(rel);
        if !is_confined(rel_path) {
            tracing::warn!(entry = %rel, "ignoring an unsafe ledger entry");
            continue;
        }
        match judge(root, rel, proof.as_ref(), None)? {
            Verdict::Gone => continue,
            Verdict::Kept(reason) => {
                kept.push((rel.clone(), (proof.clone(), reason)));
                continue;
            }
            Verdict::Proven => {}
        }
        let path = root.join(rel_path);
        fs::remove_file(&path).map_err(io(&path))?;
        tracing::info!(path = %path.display(), "removed a stale placement of an earlier run");
        // Prune directories emptied by the removal, up to (not including) the root. `judge`
        // found each of them a real directory, not a symlink.
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    Ok(kept)
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
    fn bounds_reject_paths_that_leave_the_output_dir_or_enter_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        fs::create_dir_all(root.join("a")).unwrap();
        let source = tmp.path().join("bag");
        fs::create_dir_all(&source).unwrap();
        let canon = fs::canonicalize(&root).unwrap();
        let canon_source = fs::canonicalize(&source).unwrap();
        let bounds = Bounds {
            root: &root,
            canon_root: &canon,
            canon_source: Some(&canon_source),
        };
        assert!(bounds.check(&root.join("a/x.png")).is_ok());
        assert!(bounds.check(&root.join("new/dir/x.png")).is_ok());
        let err = bounds.check(&root.join("a/../../x.png")).unwrap_err();
        assert!(matches!(err, Error::OutsideOutput { .. }), "{err}");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path(), root.join("escape")).unwrap();
            let err = bounds.check(&root.join("escape/x.png")).unwrap_err();
            assert!(matches!(err, Error::OutsideOutput { .. }), "{err}");
            std::os::unix::fs::symlink(&source, root.join("into_bag")).unwrap();
            let err = bounds.check(&root.join("into_bag/new/x.png")).unwrap_err();
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

    #[test]
    fn a_version_1_ledger_is_read_without_proofs_and_an_unknown_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(LEDGER_NAME);
        fs::write(&path, r#"{"version":1,"placed":["a/b.jpg"]}"#).unwrap();
        let ledger = load_ledger(&path).unwrap();
        assert_eq!(
            ledger.placed,
            BTreeMap::from([("a/b.jpg".to_string(), None)])
        );
        fs::write(&path, r#"{"version":9,"placed":{}}"#).unwrap();
        let err = load_ledger(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a restructure ledger: unsupported ledger version 9",
                path.display()
            )
        );
    }

    #[test]
    fn the_ledger_round_trips_its_proofs() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(LEDGER_NAME);
        let mut ledger = Ledger::default();
        ledger.placed.insert(
            "a/link.jpg".into(),
            Some(Proof::Symlink(PathBuf::from("/bag/data/asset/a.jpg"))),
        );
        ledger.placed.insert(
            "a/copy.jpg".into(),
            Some(Proof::Copy {
                size: 3,
                sha256: "ab".repeat(32),
            }),
        );
        ledger.placed.insert("a/old.jpg".into(), None);
        save_ledger(&path, &ledger).unwrap();
        assert_eq!(load_ledger(&path).unwrap().placed, ledger.placed);
    }
}
