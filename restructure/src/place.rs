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

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use rusqlite::OptionalExtension;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{io, Error, Result};
use crate::manifest::{KeptFile, KeptReason, Placement};
use crate::options::RestructureOptions;
use crate::output;
use crate::plan::Planned;
use crate::scratch::{
    bytes_os, is_confined, key_path, os_bytes, path_key, PagedQuery, Scratch, PAGE,
};
use deriva_bag_features::Rid;

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

/// The shape of a ledger's `placed`: a list of paths (version 1) or paths → proofs (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    List,
    Map,
}

fn rel_key(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A proof as the store keeps it: JSON text, NULL for none.
fn proof_text(proof: Option<&Proof>) -> Option<String> {
    // A proof is paths and numbers; one that cannot be JSON (a non-UTF-8 link target) is
    // recorded as none, which proves nothing later.
    proof.and_then(|p| serde_json::to_string(p).ok())
}

fn proof_of_text(text: Option<String>) -> Option<Proof> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// Reads a ledger entry by entry into the store's `ledger_old` (never whole in memory).
struct LedgerSeed<'a> {
    scratch: &'a Scratch,
    failure: &'a RefCell<Option<Error>>,
}

impl LedgerSeed<'_> {
    fn insert<E: de::Error>(&self, rel: &str, proof: Option<&Proof>) -> Result<(), E> {
        self.scratch
            .exec(
                "INSERT OR REPLACE INTO ledger_old (rel, proof) VALUES (?1, ?2)",
                rusqlite::params![rel, proof_text(proof)],
            )
            .map(drop)
            .map_err(|e| {
                *self.failure.borrow_mut() = Some(e);
                E::custom("scratch store failed")
            })
    }
}

impl<'de> DeserializeSeed<'de> for &LedgerSeed<'_> {
    type Value = (u32, Shape);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &LedgerSeed<'_> {
    type Value = (u32, Shape);
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("struct RawLedger")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut version, mut shape) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" if version.is_some() => {
                    return Err(de::Error::duplicate_field("version"))
                }
                "version" => version = Some(map.next_value::<u32>()?),
                "placed" if shape.is_some() => return Err(de::Error::duplicate_field("placed")),
                "placed" => shape = Some(map.next_value_seed(Placed(self))?),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let version = version.ok_or_else(|| de::Error::missing_field("version"))?;
        let shape = shape.ok_or_else(|| de::Error::missing_field("placed"))?;
        Ok((version, shape))
    }
}

/// The `placed` value, either shape, inserted as read.
struct Placed<'s, 'a>(&'s LedgerSeed<'a>);

impl<'de> DeserializeSeed<'de> for Placed<'_, '_> {
    type Value = Shape;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Placed<'_, '_> {
    type Value = Shape;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of paths or a map of paths to proofs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while let Some(rel) = seq.next_element::<String>()? {
            self.0.insert(&rel, None)?;
        }
        Ok(Shape::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while let Some((rel, proof)) = map.next_entry::<String, Option<Proof>>()? {
            self.0.insert(&rel, proof.as_ref())?;
        }
        Ok(Shape::Map)
    }
}

/// Reads the ledger at `path` (if any) into the store's `ledger_old`, streamed; returns how
/// many entries it holds.
fn load_ledger(path: &Path, scratch: &Scratch) -> Result<usize> {
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path)(e)),
    }
    let file = fs::File::open(path).map_err(io(path))?;
    let failure = RefCell::new(None);
    let seed = LedgerSeed {
        scratch,
        failure: &failure,
    };
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    let read = (&seed)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    if let Some(failure) = failure.into_inner() {
        return Err(failure);
    }
    let (version, shape) = read.map_err(|e| bad(e.to_string()))?;
    match (version, shape) {
        (1, Shape::List) | (LEDGER_VERSION, Shape::Map) => {}
        (1, Shape::Map) => return Err(bad("invalid type: map, expected a sequence".into())),
        (LEDGER_VERSION, Shape::List) => {
            return Err(bad("invalid type: sequence, expected a map".into()))
        }
        (other, _) => return Err(bad(format!("unsupported ledger version {other}"))),
    }
    scratch.count("SELECT count(*) FROM ledger_old")
}

/// The rows `(path, proof text)` of a ledger table of the store (`from`, aliased `t`) that
/// match `filter`, in path order.
fn ledger_rows(from: &'static str, filter: &'static str) -> PagedQuery<(String, Option<String>)> {
    PagedQuery {
        from,
        key: &["rel"],
        cols: "t.proof",
        filter,
        decode: |r, at| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(at)?)),
    }
}

/// The store's `ledger_new` in path order, serialized as it is read.
struct LedgerEntries<'a>(&'a Scratch);

impl Serialize for LedgerEntries<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap};
        let total = self
            .0
            .count("SELECT count(*) FROM ledger_new")
            .map_err(S::Error::custom)?;
        let query = ledger_rows("ledger_new t", "1");
        let mut map = serializer.serialize_map(Some(total))?;
        for entry in self.0.paged(query, total) {
            let (rel, proof) = entry.map_err(S::Error::custom)?;
            map.serialize_entry(&rel, &proof_of_text(proof))?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct LedgerOut<'a> {
    version: u32,
    placed: LedgerEntries<'a>,
}

/// Writes the store's `ledger_new` as the ledger, streamed, through a fresh temporary file
/// (never through whatever is at the temporary name: a planted symlink there is removed, not
/// written through) and a rename.
fn save_ledger(path: &Path, scratch: &Scratch) -> Result<()> {
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
    let mut out = std::io::BufWriter::new(file);
    let written = serde_json::to_writer_pretty(
        &mut out,
        &LedgerOut {
            version: LEDGER_VERSION,
            placed: LedgerEntries(scratch),
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

impl State {
    /// The store's code for a state (never `Foreign`, which stops the run).
    fn code(&self) -> i64 {
        match self {
            State::Absent | State::Foreign => 0,
            State::Same(_) => 1,
            State::Ours => 2,
            State::Kept(KeptReason::Changed) => 3,
            State::Kept(KeptReason::Unproven) => 4,
            State::Kept(KeptReason::BehindSymlink) => 5,
        }
    }

    fn of_code(code: i64, proof: Option<Proof>) -> State {
        match (code, proof) {
            (1, Some(proof)) => State::Same(proof),
            (2, _) => State::Ours,
            (3, _) => State::Kept(KeptReason::Changed),
            (4, _) => State::Kept(KeptReason::Unproven),
            (5, _) => State::Kept(KeptReason::BehindSymlink),
            _ => State::Absent,
        }
    }
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

/// What is at `p`'s destination; `entry` is the earlier ledger's entry for its path, if any.
fn state(
    root: &Path,
    p: &Planned,
    rel: &str,
    symlink: bool,
    entry: Option<&Option<Proof>>,
) -> Result<State> {
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
    let Some(proof) = entry else {
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

/// What [`write`] did: how many placements and kept paths it recorded in the store
/// (`manifest`, `kept`).
pub(crate) struct Written {
    pub placements: usize,
    pub kept: usize,
}

/// One planned placement read back from the store, with its ledger path.
struct Item {
    p: Planned,
    rel: String,
    /// The earlier ledger's entry for `rel`, if it has one.
    entry: Option<Option<Proof>>,
}

/// Records a kept path: in `kept`, and in the new ledger with the proof it had.
fn keep(scratch: &Scratch, kept: &KeptFile, rel: &str, proof: Option<&Proof>) -> Result<()> {
    warn_kept(kept);
    let reason = State::Kept(kept.reason).code();
    scratch.exec(
        "INSERT OR IGNORE INTO kept (key, reason, path) VALUES (?1, ?2, ?3)",
        rusqlite::params![
            path_key(&kept.path),
            reason,
            os_bytes(kept.path.as_os_str())
        ],
    )?;
    scratch.exec(
        "INSERT OR REPLACE INTO ledger_new (rel, proof) VALUES (?1, ?2)",
        rusqlite::params![rel, proof_text(proof)],
    )?;
    Ok(())
}

/// Writes the plan in the store's `place` under `output_dir`; records the placements and
/// kept paths in the store. `source_root` is the dataset's own directory, which nothing may
/// be written into. Works a page of placements at a time.
pub(crate) fn write(
    output_dir: &Path,
    source_root: Option<&Path>,
    scratch: &Scratch,
    planned: usize,
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
    // Only an earlier run's ledger has entries to settle; a first run keeps no set of them.
    let earlier = load_ledger(&ledger_path, scratch)? > 0;
    let symlink = options.use_symlinks && options.file_transformer.is_none();

    // Classify every destination first, so a foreign file stops the run before any write.
    // A destination whose parent directory does not exist is absent too; on a first run that
    // is every destination, so one `lstat` per directory replaces one per file. Only a clean
    // `NotFound` on the directory counts: anything else (a file, a symlink, an error) falls
    // back to the per-file check, which reports it exactly as before.
    let mut absent_dirs: HashMap<PathBuf, bool> = HashMap::new();
    let mut foreign: Vec<PathBuf> = Vec::new();
    let mut foreign_count = 0usize;
    // Directories to create (bounded by the directories of the tree, not the files).
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut total = 0usize;
    let query = PagedQuery {
        from: "place t",
        key: &["rel", "rid"],
        cols: "t.src",
        filter: "1",
        decode: |r, at| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(at)?,
            ))
        },
    };
    let mut places = scratch.paged(query, planned);
    loop {
        let mut page: Vec<Item> = Vec::with_capacity(PAGE);
        for row in places.by_ref().take(PAGE) {
            let (rel, rid, src) = row?;
            let rel = key_path(&rel);
            let key = rel_key(&rel);
            let entry = if earlier {
                let text: Option<Option<String>> = scratch
                    .conn()
                    .prepare_cached("SELECT proof FROM ledger_old WHERE rel = ?1")
                    .and_then(|mut s| {
                        s.query_row([&key], |r| r.get::<_, Option<String>>(0))
                            .optional()
                    })
                    .map_err(scratch.err())?;
                text.map(proof_of_text)
            } else {
                None
            };
            if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !absent_dirs.contains_key(parent) {
                    let absent = matches!(fs::symlink_metadata(root.join(parent)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound);
                    absent_dirs.insert(parent.to_path_buf(), absent);
                }
            }
            page.push(Item {
                p: Planned {
                    rel,
                    rid: Rid::new(rid),
                    src: PathBuf::from(bytes_os(src)),
                },
                rel: key,
                entry,
            });
        }
        if page.is_empty() {
            break;
        }
        let states: Vec<State> = page
            .par_iter()
            .map(|item| {
                let p = &item.p;
                let parent_absent = p
                    .rel
                    .parent()
                    .is_some_and(|d| absent_dirs.get(d).copied().unwrap_or(false));
                let st = if parent_absent {
                    State::Absent
                } else {
                    state(&root, p, &item.rel, symlink, item.entry.as_ref())?
                };
                Ok(
                    if options.file_transformer.is_some() && st == State::Foreign {
                        // A transformer writes its own (possibly renamed) output; the
                        // suggested path is only a hint and is not ours to judge unless the
                        // ledger says so.
                        State::Absent
                    } else {
                        st
                    },
                )
            })
            .collect::<Result<_>>()?;
        for (item, st) in page.into_iter().zip(states) {
            let dst = root.join(&item.p.rel);
            if earlier {
                scratch.exec(
                    "INSERT OR IGNORE INTO handled (rel) VALUES (?1)",
                    [&item.rel],
                )?;
            }
            if st == State::Foreign {
                if foreign.len() < MAX_LISTED {
                    foreign.push(dst);
                }
                foreign_count += 1;
                continue;
            }
            let proof = match &st {
                State::Same(proof) => proof_text(Some(proof)),
                // The entry's proof, recorded again for a kept path.
                State::Kept(_) => item.entry.as_ref().and_then(|e| proof_text(e.as_ref())),
                _ => None,
            };
            if !matches!(st, State::Kept(_)) {
                total += 1;
                if let Some(dir) = dst.parent() {
                    if !dirs.contains(dir) {
                        dirs.insert(dir.to_path_buf());
                    }
                }
            }
            // Absent is what a destination without a row is (every one, on a first run).
            if st != State::Absent {
                scratch.exec(
                    "INSERT INTO classified (rel, rid, state, proof) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![path_key(&item.p.rel), item.p.rid.as_str(), st.code(), proof],
                )?;
            }
        }
    }
    drop(places);
    if foreign_count > 0 {
        return Err(Error::Occupied {
            more: foreign_count.saturating_sub(foreign.len()),
            paths: foreign,
        });
    }

    // Every directory is checked before it is created: a symlinked directory in the output
    // directory must not make us create anything outside it, or inside the dataset.
    for dir in &dirs {
        // The output directory itself was created and resolved above.
        if dir != &root {
            bounds.check(dir)?;
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
    }
    drop(dirs);

    let done = AtomicUsize::new(0);
    let query = PagedQuery {
        from: "place t LEFT JOIN classified c ON c.rel = t.rel AND c.rid = t.rid",
        key: &["rel", "rid"],
        cols: "t.src, c.state, c.proof",
        filter: "1",
        decode: |r, at| {
            let planned = Planned {
                rel: key_path(&r.get::<_, Vec<u8>>(0)?),
                rid: Rid::new(r.get::<_, String>(1)?),
                src: PathBuf::from(bytes_os(r.get::<_, Vec<u8>>(at)?)),
            };
            let code = r.get::<_, Option<i64>>(at + 1)?.unwrap_or(0);
            let proof = r.get::<_, Option<String>>(at + 2)?;
            Ok((planned, code, proof))
        },
    };
    let mut rows = scratch.paged(query, planned);
    loop {
        let mut page = Vec::with_capacity(PAGE);
        let mut read = 0;
        for row in rows.by_ref().take(PAGE) {
            read += 1;
            let (p, code, proof) = row?;
            let dst = root.join(&p.rel);
            let proof = proof_of_text(proof);
            match State::of_code(code, proof.clone()) {
                State::Kept(reason) => {
                    let kept = KeptFile { path: dst, reason };
                    keep(scratch, &kept, &rel_key(&p.rel), proof.as_ref())?;
                }
                st => page.push((p, dst, st)),
            }
        }
        if read == 0 {
            break;
        }
        let placed: Vec<(Placement, Option<Proof>)> = page
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
        for (placement, proof) in placed {
            if let Ok(rel) = placement.dst.strip_prefix(&root) {
                let rel = rel_key(rel);
                if earlier {
                    scratch.exec("INSERT OR IGNORE INTO handled (rel) VALUES (?1)", [&rel])?;
                }
                scratch.exec(
                    "INSERT OR REPLACE INTO ledger_new (rel, proof) VALUES (?1, ?2)",
                    rusqlite::params![rel, proof_text(proof.as_ref())],
                )?;
            }
            scratch.exec(
                "INSERT OR IGNORE INTO manifest (src_key, dst_key, rid, src, dst)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    path_key(&placement.src),
                    path_key(&placement.dst),
                    placement.rid.as_str(),
                    os_bytes(placement.src.as_os_str()),
                    os_bytes(placement.dst.as_os_str())
                ],
            )?;
        }
    }
    drop(rows);
    if earlier {
        remove_stale(&root, scratch)?;
    }
    save_ledger(&ledger_path, scratch)?;
    Ok(Written {
        placements: scratch.count("SELECT count(*) FROM manifest")?,
        kept: scratch.count("SELECT count(*) FROM kept")?,
    })
}

/// Removes the files an earlier run provably placed that this run did not (and the
/// directories emptied); records the stale entries it keeps.
fn remove_stale(root: &Path, scratch: &Scratch) -> Result<()> {
    let query = ledger_rows(
        "ledger_old t",
        "NOT EXISTS (SELECT 1 FROM handled h WHERE h.rel = t.rel)",
    );
    for entry in scratch.scan(query) {
        let (rel, proof) = entry?;
        let proof = proof_of_text(proof);
        let rel_path = Path::new(&rel);
        if !is_confined(rel_path) {
            tracing::warn!(entry = %rel, "ignoring an unsafe ledger entry");
            continue;
        }
        match judge(root, &rel, proof.as_ref(), None)? {
            Verdict::Gone => continue,
            Verdict::Kept(reason) => {
                let kept = KeptFile {
                    path: root.join(&rel),
                    reason,
                };
                keep(scratch, &kept, &rel, proof.as_ref())?;
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

    /// The store's `ledger_old` after loading the ledger at `path`.
    fn loaded(path: &Path) -> Result<Vec<(String, Option<Proof>)>> {
        let scratch = Scratch::create(&path.parent().unwrap().join("out"))?;
        load_ledger(path, &scratch)?;
        let query = ledger_rows("ledger_old t", "1");
        scratch
            .scan(query)
            .map(|e| e.map(|(rel, proof)| (rel, proof_of_text(proof))))
            .collect()
    }

    #[test]
    fn a_version_1_ledger_is_read_without_proofs_and_an_unknown_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(LEDGER_NAME);
        fs::write(&path, r#"{"version":1,"placed":["a/b.jpg"]}"#).unwrap();
        assert_eq!(loaded(&path).unwrap(), [("a/b.jpg".to_string(), None)]);
        fs::write(&path, r#"{"version":9,"placed":{}}"#).unwrap();
        let err = loaded(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a restructure ledger: unsupported ledger version 9",
                path.display()
            )
        );
        fs::write(&path, r#"{"placed":{}}"#).unwrap();
        let err = loaded(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a restructure ledger: missing field `version` at line 1 column 13",
                path.display()
            )
        );
        fs::write(&path, r#"{"version":1,"placed":{"a":null}}"#).unwrap();
        let err = loaded(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a restructure ledger: invalid type: map, expected a sequence",
                path.display()
            )
        );
    }

    #[test]
    fn the_ledger_round_trips_its_proofs_in_path_order() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(LEDGER_NAME);
        let scratch = Scratch::create(&tmp.path().join("out")).unwrap();
        let entries = [
            (
                "a/link.jpg",
                Some(Proof::Symlink(PathBuf::from("/bag/data/asset/a.jpg"))),
            ),
            (
                "a/copy.jpg",
                Some(Proof::Copy {
                    size: 3,
                    sha256: "ab".repeat(32),
                }),
            ),
            ("a/old.jpg", None),
        ];
        for (rel, proof) in &entries {
            scratch
                .exec(
                    "INSERT INTO ledger_new (rel, proof) VALUES (?1, ?2)",
                    rusqlite::params![rel, proof_text(proof.as_ref())],
                )
                .unwrap();
        }
        save_ledger(&path, &scratch).unwrap();
        let mut want: Vec<(String, Option<Proof>)> = entries
            .iter()
            .map(|(r, p)| (r.to_string(), p.clone()))
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(loaded(&path).unwrap(), want);
        // The bytes serde_json writes for the whole map.
        #[derive(Serialize)]
        struct Whole {
            version: u32,
            placed: std::collections::BTreeMap<String, Option<Proof>>,
        }
        let expected = serde_json::to_string_pretty(&Whole {
            version: LEDGER_VERSION,
            placed: want.into_iter().collect(),
        })
        .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), expected);
    }
}
