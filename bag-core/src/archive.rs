//! Opening bag archives: `.zip` (what bdbag writes), `.tar.gz`/`.tgz` and `.tar`.
//!
//! [`extract`] unpacks an archive into `<cache_root>/extracted/<key>/` and returns the bag
//! directory inside it (the archive's single top-level directory). It never writes next to
//! the user's file. Extraction happens in a private temporary directory under an exclusive
//! lock and is published by an atomic rename, so concurrent processes are safe, a failed or
//! rejected archive leaves nothing behind, and a second open reuses the extraction.
//!
//! Every entry name goes through [`crate::bagit::paths::safe_join`]: an entry that would land
//! outside the extraction directory (zip-slip `../`, absolute paths, drive prefixes) is an
//! [`Error::UnsafePath`] naming the archive and the entry. Symlink and hard-link entries are
//! never created as links: a link whose target stays inside the archive is materialised as a
//! copy of the target file, one whose target escapes is rejected. Keeping the extraction
//! free of links is what makes the lexical path check sufficient.
//!
//! # How much an extraction may write
//!
//! An archive bomb (a few MB of zip that inflate to many GB of zeros) must not fill the
//! disk. Extraction counts the bytes it really writes, file contents and link copies alike,
//! never the sizes an entry header declares, and stops with [`Error::ArchiveTooLarge`] as
//! soon as the count passes the cap; the partial extraction is removed. The cap is, first
//! that is set:
//!
//! 1. [`OpenOptions::max_extracted_bytes`](crate::OpenOptions::max_extracted_bytes) (or the
//!    `max_bytes` argument of [`extract_with`]);
//! 2. the environment variable [`MAX_EXTRACTED_ENV`] (`DERIVA_BAG_MAX_EXTRACTED_BYTES`), a
//!    byte count such as `50000000000` or `50G` (suffixes `K`, `M`, `G`, `T`: powers of 1024);
//! 3. by default, the smaller of [`DEFAULT_RATIO`] (100) × the archive's size and the free
//!    space of the cache volume.
//!
//! A set cap replaces the default as a whole: raising it above the free space lets the
//! extraction run until the disk itself refuses (still leaving nothing behind).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::bagit::paths::{normalize, resolve_link_target, safe_join};
use crate::cache::{lock_for, publish, remove_leftovers, temp_sibling, Guard};
use crate::{Error, Result};

/// Environment variable that sets the most bytes one archive's extraction may write (see
/// the [module docs](self)).
pub const MAX_EXTRACTED_ENV: &str = "DERIVA_BAG_MAX_EXTRACTED_BYTES";

/// By default an extraction may write at most this many times the archive's size (bags of
/// CSV and images compress far less than 100:1; a bomb of zeros compresses about 1000:1).
pub const DEFAULT_RATIO: u64 = 100;

/// Bytes read from each end of the archive for its cache key.
const KEY_SAMPLE: u64 = 64 * 1024;
/// Write buffer for extracted files.
const WRITE_BUFFER: usize = 1 << 20;
/// Bytes moved (and counted against the cap) per read from an entry.
const COPY_BUFFER: usize = 64 * 1024;
/// Longest symlink target we accept from a zip entry body.
const MAX_LINK_TARGET: u64 = 4096;

/// The bag directory for a user-given path: an archive is extracted into `cache_root` (or
/// reused from there), a directory is returned as is.
pub fn bag_dir(path: &Path, cache_root: &Path) -> Result<PathBuf> {
    bag_dir_with(path, cache_root, None)
}

/// [`bag_dir`] with an explicit extraction cap (`None`: [`MAX_EXTRACTED_ENV`], else the
/// default; see the [module docs](self)).
pub fn bag_dir_with(path: &Path, cache_root: &Path, max_bytes: Option<u64>) -> Result<PathBuf> {
    if path.is_file() && is_archive(path) {
        extract_with(path, cache_root, max_bytes)
    } else {
        Ok(path.to_path_buf())
    }
}

/// Whether `path` names an archive this module can open: a file (not a directory) whose
/// name ends in `.zip`, `.tar.gz`, `.tgz` or `.tar` (case-insensitive).
///
/// ```
/// use std::path::Path;
/// use deriva_bag_core::archive::is_archive;
/// assert!(is_archive(Path::new("Dataset_1-D000.zip")));
/// assert!(is_archive(Path::new("bag.TAR.GZ")));
/// assert!(!is_archive(Path::new("Dataset_1-D000")));
/// ```
pub fn is_archive(path: &Path) -> bool {
    if path.is_dir() {
        return false;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    [".zip", ".tar.gz", ".tgz", ".tar"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The cache key of an archive: sha256 hex over its canonical path, size, modification
/// time and its first and last 64 KiB.
///
/// Why not a hash of all its bytes: a materialized bag archive can be many gigabytes, and
/// the key is computed on every open, so a full hash would make every warm open cost a full
/// read (seconds to minutes) against a target of milliseconds. Size and mtime change on any
/// ordinary rewrite; the sampled ends cover the zip central directory (which holds every
/// entry's CRC-32) and the gzip trailer (CRC-32 and length of the whole tar), so an
/// in-place rewrite that kept size and mtime is still caught in practice. The price: a copy
/// of the same archive at another path or with another mtime is extracted again.
pub fn archive_key(archive: &Path) -> Result<String> {
    let io_err = |e| Error::io(archive, e);
    let canonical = archive.canonicalize().map_err(io_err)?;
    let mut file = File::open(archive).map_err(io_err)?;
    let md = file.metadata().map_err(io_err)?;
    let size = md.len();
    let mtime_ns = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(b"deriva-bag archive key v1\0");
    h.update(canonical.to_string_lossy().as_bytes());
    h.update([0]);
    h.update(size.to_le_bytes());
    h.update(mtime_ns.to_le_bytes());
    let mut buf = Vec::with_capacity(KEY_SAMPLE as usize);
    (&mut file)
        .take(KEY_SAMPLE)
        .read_to_end(&mut buf)
        .map_err(io_err)?;
    h.update(&buf);
    if size > KEY_SAMPLE {
        buf.clear();
        file.seek(SeekFrom::Start(
            size.saturating_sub(KEY_SAMPLE).max(KEY_SAMPLE),
        ))
        .map_err(io_err)?;
        file.read_to_end(&mut buf).map_err(io_err)?;
        h.update(&buf);
    }
    Ok(hex::encode(h.finalize()))
}

/// Extracts `archive` into `<cache_root>/extracted/<key>/` (key: [`archive_key`]) and
/// returns the bag directory inside it. Reuses an earlier extraction of the same archive
/// without taking a lock or writing anything, so a read-only warm cache serves it. Removes
/// what killed extractions left behind ([`crate::cache`]). The extraction cap is the
/// default one (see the [module docs](self)); [`extract_with`] sets it.
///
/// Errors: [`Error::UnsafePath`] for an entry that escapes (naming archive and entry);
/// [`Error::ArchiveTooLarge`] when extraction passes the cap; [`Error::NotABag`] for an
/// unreadable archive or one without a single top-level bag directory holding `bagit.txt`;
/// [`Error::Setting`] for an unreadable [`MAX_EXTRACTED_ENV`]; [`Error::Io`]. On error
/// nothing is left in the cache.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::Write;
/// use deriva_bag_core::archive::extract;
/// let tmp = tempfile::tempdir()?;
/// let zip_path = tmp.path().join("Dataset_1-D000.zip");
/// let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path)?);
/// let opts = zip::write::SimpleFileOptions::default();
/// zip.add_directory("Dataset_1-D000/data/", opts)?;
/// zip.start_file("Dataset_1-D000/bagit.txt", opts)?;
/// zip.write_all(b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n")?;
/// zip.finish()?;
/// let bag = extract(&zip_path, &tmp.path().join("cache"))?;
/// assert_eq!(bag.file_name().unwrap(), "Dataset_1-D000");
/// assert!(bag.join("bagit.txt").is_file());
/// assert_eq!(extract(&zip_path, &tmp.path().join("cache"))?, bag); // reused
/// # Ok(()) }
/// ```
pub fn extract(archive: &Path, cache_root: &Path) -> Result<PathBuf> {
    extract_with(archive, cache_root, None)
}

/// [`extract`] with an explicit cap on the bytes the extraction may write: `Some(n)` allows
/// `n` bytes whatever the archive's size and the free space; `None` takes
/// [`MAX_EXTRACTED_ENV`], else the default (see the [module docs](self)).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::Write;
/// use deriva_bag_core::{archive::extract_with, Error};
/// let tmp = tempfile::tempdir()?;
/// let zip_path = tmp.path().join("Dataset_1-D000.zip");
/// let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path)?);
/// let opts = zip::write::SimpleFileOptions::default();
/// zip.start_file("Dataset_1-D000/bagit.txt", opts)?;
/// zip.write_all(b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n")?;
/// zip.start_file("Dataset_1-D000/data/zeros.bin", opts)?;
/// zip.write_all(&[0u8; 4096])?;
/// zip.finish()?;
/// let cache = tmp.path().join("cache");
/// match extract_with(&zip_path, &cache, Some(1000)) {
///     Err(Error::ArchiveTooLarge { limit, .. }) => assert_eq!(limit, 1000),
///     other => panic!("{other:?}"),
/// }
/// assert!(extract_with(&zip_path, &cache, Some(1 << 20))?.join("data/zeros.bin").is_file());
/// # Ok(()) }
/// ```
pub fn extract_with(archive: &Path, cache_root: &Path, max_bytes: Option<u64>) -> Result<PathBuf> {
    let key = archive_key(archive)?;
    let extracted = cache_root.join("extracted");
    remove_leftovers(&extracted, Guard::KeyLock);
    let final_dir = extracted.join(&key);
    // Published by an atomic rename, so a directory that exists is complete: reading it
    // needs no lock (and a read-only cache allows none).
    if final_dir.is_dir() {
        tracing::debug!(archive = %archive.display(), dir = %final_dir.display(), "reusing extraction");
        return bag_dir_in(&final_dir, archive);
    }
    let _lock = lock_for(&final_dir)?;
    if final_dir.is_dir() {
        tracing::debug!(archive = %archive.display(), dir = %final_dir.display(), "reusing extraction");
        return bag_dir_in(&final_dir, archive);
    }
    let cap = Cap::resolve(archive, &extracted, max_bytes)?;
    let temp = temp_sibling(&final_dir);
    let result = unpack(archive, &temp, cap).and_then(|()| bag_dir_in(&temp, archive));
    match result {
        Ok(bag_in_temp) => {
            let rel = bag_in_temp
                .strip_prefix(&temp)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            if let Err(e) = publish(&temp, &final_dir) {
                let _ = fs::remove_dir_all(&temp);
                return Err(e);
            }
            tracing::info!(archive = %archive.display(), dir = %final_dir.display(), "extracted bag archive");
            Ok(final_dir.join(rel))
        }
        Err(e) => {
            if let Err(rm) = fs::remove_dir_all(&temp) {
                if rm.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(dir = %temp.display(), "could not remove failed extraction: {rm}");
                }
            }
            Err(e)
        }
    }
}

/// The most bytes one extraction may write, and where that number comes from (for the
/// error message). Built only by [`Cap::resolve`]; enforced only by [`Extractor::charge`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cap {
    bytes: u64,
    why: String,
}

impl Cap {
    /// The cap for extracting `archive` into `dir`: `explicit`, else [`MAX_EXTRACTED_ENV`],
    /// else the default.
    fn resolve(archive: &Path, dir: &Path, explicit: Option<u64>) -> Result<Cap> {
        let env = std::env::var_os(MAX_EXTRACTED_ENV);
        let archive_bytes = || {
            fs::metadata(archive)
                .map(|m| m.len())
                .map_err(|e| Error::io(archive, e))
        };
        Cap::choose(
            explicit,
            env.as_deref(),
            archive_bytes,
            || free_space(dir),
            dir,
        )
    }

    /// [`Cap::resolve`] on given inputs (the archive's size and the free space are asked
    /// for only when the default applies).
    fn choose(
        explicit: Option<u64>,
        env: Option<&std::ffi::OsStr>,
        archive_bytes: impl FnOnce() -> Result<u64>,
        free: impl FnOnce() -> Option<u64>,
        dir: &Path,
    ) -> Result<Cap> {
        if let Some(bytes) = explicit {
            return Ok(Cap {
                bytes,
                why: "the limit OpenOptions::max_extracted_bytes sets".into(),
            });
        }
        if let Some(value) = env.filter(|v| !v.is_empty()) {
            let bytes =
                value
                    .to_str()
                    .and_then(parse_byte_count)
                    .ok_or_else(|| Error::Setting {
                        name: MAX_EXTRACTED_ENV,
                        value: value.to_string_lossy().into_owned(),
                        detail: "not a byte count (e.g. 50000000000 or 50G)".into(),
                    })?;
            return Ok(Cap {
                bytes,
                why: format!("the limit {MAX_EXTRACTED_ENV} sets"),
            });
        }
        let archive_bytes = archive_bytes()?;
        let ratio = Cap {
            bytes: archive_bytes.saturating_mul(DEFAULT_RATIO),
            why: format!("{DEFAULT_RATIO} × the archive's {archive_bytes} bytes"),
        };
        Ok(match free() {
            Some(free) if free < ratio.bytes => Cap {
                bytes: free,
                why: format!("the free space of the cache volume at {}", dir.display()),
            },
            _ => ratio,
        })
    }
}

/// A byte count: decimal digits, optionally followed by `K`, `M`, `G` or `T` (powers of
/// 1024, case-insensitive, an optional `B` or `iB` after them).
fn parse_byte_count(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let number: u64 = digits.parse().ok()?;
    let unit = unit.to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

/// Bytes an unprivileged user may still write on the volume holding `dir`, where the
/// platform tells.
fn free_space(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let stat = rustix::fs::statvfs(dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// The bag directory of an extraction: the single top-level directory (ignoring macOS
/// `__MACOSX` litter), or the extraction root itself when the archive holds the bag's
/// files at top level.
fn bag_dir_in(dir: &Path, archive: &Path) -> Result<PathBuf> {
    let not_a_bag = |detail: String| Error::NotABag {
        path: archive.to_path_buf(),
        detail,
    };
    let mut top = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name() == "__MACOSX" {
            continue;
        }
        top.push(entry.path());
    }
    let bag = match top.as_slice() {
        [only] if only.is_dir() => only.clone(),
        _ if dir.join("bagit.txt").is_file() => dir.to_path_buf(),
        _ => {
            let mut names: Vec<String> = top
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            names.sort();
            return Err(not_a_bag(format!(
                "expected one top-level bag directory, found {} entries {:?}",
                names.len(),
                names
            )));
        }
    };
    if !bag.join("bagit.txt").is_file() {
        let name = bag
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(not_a_bag(format!(
            "no bagit.txt in top-level directory {name:?}"
        )));
    }
    Ok(bag)
}

enum Format {
    Zip,
    TarGz,
    Tar,
}

/// Picks the format from the leading magic bytes, falling back to the file name.
fn detect(archive: &Path) -> Result<Format> {
    let mut head = [0u8; 4];
    let mut file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let n = file.read(&mut head).map_err(|e| Error::io(archive, e))?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Format::Zip);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Format::TarGz);
    }
    let name = archive.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".tar") {
        return Ok(Format::Tar);
    }
    Err(Error::NotABag {
        path: archive.to_path_buf(),
        detail: "not a zip, gzip'd tar or tar archive".into(),
    })
}

/// Unpacks every entry of `archive` into `dest` (created here), writing at most `cap` bytes.
fn unpack(archive: &Path, dest: &Path, cap: Cap) -> Result<()> {
    fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let mut out = Extractor {
        archive,
        dest,
        links: Vec::new(),
        cap,
        written: 0,
        buf: vec![0; COPY_BUFFER],
    };
    match detect(archive)? {
        Format::Zip => unpack_zip(archive, &mut out)?,
        Format::TarGz => {
            let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
            unpack_tar(
                archive,
                MultiGzDecoder::new(io::BufReader::with_capacity(WRITE_BUFFER, file)),
                &mut out,
            )?
        }
        Format::Tar => {
            let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
            unpack_tar(archive, io::BufReader::new(file), &mut out)?
        }
    }
    out.finish_links()
}

fn unpack_zip(archive: &Path, out: &mut Extractor<'_>) -> Result<()> {
    let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let bad = |detail: String| Error::NotABag {
        path: archive.to_path_buf(),
        detail,
    };
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| bad(format!("unreadable zip archive: {e}")))?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("unreadable zip entry #{i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| bad(format!("zip entry #{i} has an unreadable name: {e}")))?
            .into_owned();
        if entry.is_dir() {
            out.dir(&name)?;
        } else if entry.is_symlink() {
            let mut target = String::new();
            (&mut entry)
                .take(MAX_LINK_TARGET)
                .read_to_string(&mut target)
                .map_err(|_| Error::UnsafePath {
                    source_file: archive.to_path_buf(),
                    path: name.clone(),
                })?;
            out.link(&name, &target, false)?;
        } else {
            out.file(&name, &mut entry)?;
        }
    }
    Ok(())
}

fn unpack_tar<R: Read>(archive: &Path, reader: R, out: &mut Extractor<'_>) -> Result<()> {
    let bad = |detail: String| Error::NotABag {
        path: archive.to_path_buf(),
        detail,
    };
    let mut tar = tar::Archive::new(reader);
    let entries = tar
        .entries()
        .map_err(|e| bad(format!("unreadable tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("unreadable tar entry: {e}")))?;
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw_name)
            .map_err(|e| bad(format!("tar entry name {:?} is not UTF-8", e.as_bytes())))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            out.dir(&name)?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            out.link(&name, &target, kind.is_hard_link())?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            out.file(&name, &mut entry)?;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            // Metadata records, not files.
        } else {
            tracing::warn!(archive = %archive.display(), entry = %name, "skipping special tar entry ({kind:?})");
        }
    }
    Ok(())
}

/// Writes entries below `dest`, refusing any name that escapes it and any byte past the cap.
struct Extractor<'a> {
    archive: &'a Path,
    dest: &'a Path,
    /// `(entry path normalised, target path normalised)`, materialised after all files.
    links: Vec<(String, String)>,
    cap: Cap,
    /// Bytes written so far: file contents and link copies, as written.
    written: u64,
    buf: Vec<u8>,
}

/// An entry that names the extraction root itself (`./`, `/`-only), which tar writes.
fn names_root(name: &str) -> bool {
    name.split('/').all(|c| c.is_empty() || c == ".")
}

impl Extractor<'_> {
    fn dir(&mut self, name: &str) -> Result<()> {
        if names_root(name) && !name.starts_with('/') {
            return Ok(());
        }
        let path = safe_join(self.dest, name, self.archive)?;
        fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))
    }

    fn file(&mut self, name: &str, reader: &mut dyn Read) -> Result<()> {
        let path = safe_join(self.dest, name, self.archive)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, file);
        // Counted as read from the decompressor, never taken from the entry's header.
        loop {
            let n = match reader.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A read error here is the archive's (bad deflate stream, truncated tar).
                Err(e) => return Err(Error::io(self.archive, e)),
            };
            self.charge(n as u64)?;
            writer
                .write_all(&self.buf[..n])
                .map_err(|e| Error::io(&path, e))?;
        }
        writer
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        Ok(())
    }

    /// Counts `bytes` about to be written; past the cap, the extraction stops here.
    fn charge(&mut self, bytes: u64) -> Result<()> {
        self.written = self.written.saturating_add(bytes);
        if self.written > self.cap.bytes {
            return Err(Error::ArchiveTooLarge {
                path: self.archive.to_path_buf(),
                limit: self.cap.bytes,
                why: self.cap.why.clone(),
            });
        }
        Ok(())
    }

    /// Records a link entry. `hard`: tar hard links name their target from the archive root;
    /// symlink targets are relative to the link's directory.
    fn link(&mut self, name: &str, target: &str, hard: bool) -> Result<()> {
        let rel = normalize(name, self.archive)?;
        let resolved = if hard {
            normalize(target, self.archive).ok()
        } else {
            resolve_link_target(&rel, target)
        };
        match resolved {
            Some(t) => {
                self.links.push((rel, t));
                Ok(())
            }
            None => Err(Error::UnsafePath {
                source_file: self.archive.to_path_buf(),
                path: format!("{name} -> {target}"),
            }),
        }
    }

    /// Materialises recorded links as copies of their targets. A link to a link resolves
    /// once its target has been materialised; links to directories or to nothing are
    /// skipped with a warning (bags hold neither).
    fn finish_links(&mut self) -> Result<()> {
        let mut pending = std::mem::take(&mut self.links);
        loop {
            let before = pending.len();
            let mut still = Vec::new();
            for (rel, target) in pending {
                let src = safe_join(self.dest, &target, self.archive)?;
                let dst = safe_join(self.dest, &rel, self.archive)?;
                if src.is_file() {
                    if let Some(parent) = dst.parent() {
                        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                    }
                    // Our own extracted file: its length is what the copy writes.
                    let len = fs::metadata(&src).map_err(|e| Error::io(&src, e))?.len();
                    self.charge(len)?;
                    fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
                } else if src.is_dir() {
                    tracing::warn!(archive = %self.archive.display(), entry = %rel, "skipping link to directory {target}");
                } else {
                    still.push((rel, target));
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            if still.len() == before {
                for (rel, target) in still {
                    tracing::warn!(archive = %self.archive.display(), entry = %rel, "skipping dangling link to {target}");
                }
                return Ok(());
            }
            pending = still;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        for (name, body) in entries {
            if name.ends_with('/') {
                zip.add_directory(*name, opts).unwrap();
            } else {
                zip.start_file(*name, opts).unwrap();
                zip.write_all(body).unwrap();
            }
        }
        zip.finish().unwrap();
    }

    const BAGIT: &[u8] = b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n";

    #[test]
    fn archive_names_are_recognised_case_insensitively() {
        for name in ["a.zip", "a.ZIP", "a.tar.gz", "a.tgz", "a.tar"] {
            assert!(is_archive(Path::new(name)), "{name}");
        }
        for name in ["a.gz", "a.csv", "a"] {
            assert!(!is_archive(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn zip_slip_entry_is_rejected_and_nothing_is_left_in_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let zip_path = tmp.path().join("evil.zip");
        zip_with(
            &zip_path,
            &[
                ("Dataset_X/bagit.txt", BAGIT),
                ("Dataset_X/../../evil.txt", b"pwned"),
            ],
        );
        let cache = tmp.path().join("cache");
        match extract(&zip_path, &cache).unwrap_err() {
            Error::UnsafePath { source_file, path } => {
                assert_eq!(source_file, zip_path);
                assert_eq!(path, "Dataset_X/../../evil.txt");
            }
            other => panic!("{other:?}"),
        }
        let left: Vec<_> = fs::read_dir(cache.join("extracted"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(!tmp.path().join("evil.txt").exists());
    }

    #[test]
    fn symlink_escaping_is_rejected_and_inside_link_is_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = zip::write::SimpleFileOptions::default();
        let evil = tmp.path().join("link.zip");
        let mut zip = zip::ZipWriter::new(File::create(&evil).unwrap());
        zip.start_file("B/bagit.txt", opts).unwrap();
        zip.write_all(BAGIT).unwrap();
        zip.add_symlink("B/data/passwd", "../../../etc/passwd", opts)
            .unwrap();
        zip.finish().unwrap();
        match extract(&evil, &tmp.path().join("cache")).unwrap_err() {
            Error::UnsafePath { path, .. } => {
                assert_eq!(path, "B/data/passwd -> ../../../etc/passwd")
            }
            other => panic!("{other:?}"),
        }

        let good = tmp.path().join("good.zip");
        let mut zip = zip::ZipWriter::new(File::create(&good).unwrap());
        zip.start_file("B/bagit.txt", opts).unwrap();
        zip.write_all(BAGIT).unwrap();
        zip.start_file("B/data/a.txt", opts).unwrap();
        zip.write_all(b"hello").unwrap();
        zip.add_symlink("B/data/sub/b.txt", "../a.txt", opts)
            .unwrap();
        zip.finish().unwrap();
        let bag = extract(&good, &tmp.path().join("cache")).unwrap();
        let copy = bag.join("data/sub/b.txt");
        assert!(!copy.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(fs::read(copy).unwrap(), b"hello");
    }

    #[test]
    fn archive_without_single_bag_directory_is_not_a_bag() {
        let tmp = tempfile::tempdir().unwrap();
        let zip_path = tmp.path().join("two.zip");
        zip_with(&zip_path, &[("A/x", b""), ("B/y", b"")]);
        let err = extract(&zip_path, &tmp.path().join("cache")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a bag: expected one top-level bag directory, found 2 entries [\"A\", \"B\"]",
                zip_path.display()
            )
        );
    }

    /// `bytes` zeros: compresses about 1000:1, the shape of an archive bomb.
    const BOMB: usize = 8 << 20;

    /// Names left in `<cache>/extracted` besides lock files.
    fn extracted_entries(cache: &Path) -> Vec<String> {
        let mut left: Vec<String> = fs::read_dir(cache.join("extracted"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.ends_with(".lock"))
                    .collect()
            })
            .unwrap_or_default();
        left.sort();
        left
    }

    fn zip_bomb(path: &Path, zeros: usize) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("B/bagit.txt", opts).unwrap();
        zip.write_all(BAGIT).unwrap();
        zip.start_file("B/data/zeros.bin", opts).unwrap();
        zip.write_all(&vec![0u8; zeros]).unwrap();
        zip.finish().unwrap();
    }

    /// A tar.gz holding `B/bagit.txt`, `B/data/zeros.bin` and `links` hard links to it.
    fn tgz_bomb(path: &Path, zeros: usize, links: usize) {
        let gz = flate2::write::GzEncoder::new(
            File::create(path).unwrap(),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(BAGIT.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, "B/bagit.txt", BAGIT).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(zeros as u64);
        header.set_mode(0o644);
        tar.append_data(
            &mut header,
            "B/data/zeros.bin",
            io::repeat(0).take(zeros as u64),
        )
        .unwrap();
        for n in 0..links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            tar.append_link(
                &mut header,
                format!("B/data/copy{n}.bin"),
                "B/data/zeros.bin",
            )
            .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
    }

    /// `err` is the refusal of `archive` (`size` bytes) at the default 100:1 ratio.
    fn assert_refused_at_default_ratio(err: &Error, archive: &Path, size: u64) {
        match err {
            Error::ArchiveTooLarge { path, limit, why } => {
                assert_eq!(path, archive);
                assert_eq!(*limit, 100 * size);
                assert_eq!(why, &format!("100 × the archive's {size} bytes"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "{}: extracting it would write more than {} bytes (100 × the archive's {size} \
                 bytes); nothing was kept. If the archive is genuine, raise the cap with \
                 OpenOptions::max_extracted_bytes or DERIVA_BAG_MAX_EXTRACTED_BYTES",
                archive.display(),
                100 * size
            )
        );
    }

    #[test]
    fn a_zip_bomb_is_refused_past_100_times_the_archive_size_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let zip_path = tmp.path().join("bomb.zip");
        zip_bomb(&zip_path, BOMB);
        let size = fs::metadata(&zip_path).unwrap().len();
        let cache = tmp.path().join("cache");
        let err = extract(&zip_path, &cache).expect_err("an 8 MiB bomb must be refused");
        assert_refused_at_default_ratio(&err, &zip_path, size);
        assert_eq!(extracted_entries(&cache), Vec::<String>::new());
    }

    #[test]
    fn a_tar_gz_bomb_is_refused_past_100_times_the_archive_size_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("bomb.tar.gz");
        tgz_bomb(&path, BOMB, 0);
        let size = fs::metadata(&path).unwrap().len();
        let cache = tmp.path().join("cache");
        let err = extract(&path, &cache).expect_err("an 8 MiB bomb must be refused");
        assert_refused_at_default_ratio(&err, &path, size);
        assert_eq!(extracted_entries(&cache), Vec::<String>::new());
    }

    #[test]
    fn copies_of_linked_files_count_toward_the_cap() {
        // 64 KiB written once, then 200 hard links, each materialised as a 64 KiB copy.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("links.tar.gz");
        tgz_bomb(&path, 64 << 10, 200);
        let size = fs::metadata(&path).unwrap().len();
        assert!(100 * size < 200 * (64 << 10), "archive is {size} bytes");
        let cache = tmp.path().join("cache");
        let err = extract(&path, &cache).expect_err("200 copies of 64 KiB must be refused");
        assert_refused_at_default_ratio(&err, &path, size);
        assert_eq!(extracted_entries(&cache), Vec::<String>::new());
    }

    /// The error of extracting `archive` under a cap of `limit` bytes set by the option.
    fn refused_with_cap(archive: &Path, cache: &Path, limit: u64) {
        match extract_with(archive, cache, Some(limit)).unwrap_err() {
            Error::ArchiveTooLarge {
                path,
                limit: found,
                why,
            } => {
                assert_eq!(path, archive);
                assert_eq!(found, limit);
                assert_eq!(why, "the limit OpenOptions::max_extracted_bytes sets");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(extracted_entries(cache), Vec::<String>::new());
    }

    #[test]
    fn a_zip_is_refused_one_byte_past_the_cap_it_is_given_and_opens_at_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let zip_path = tmp.path().join("z.zip");
        zip_bomb(&zip_path, 100_000);
        let cache = tmp.path().join("cache");
        let total = (BAGIT.len() + 100_000) as u64;
        refused_with_cap(&zip_path, &cache, total - 1);
        let bag = extract_with(&zip_path, &cache, Some(total)).unwrap();
        assert_eq!(
            fs::metadata(bag.join("data/zeros.bin")).unwrap().len(),
            100_000
        );
    }

    #[test]
    fn a_tar_gz_is_refused_one_byte_past_the_cap_it_is_given_and_opens_at_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.tar.gz");
        tgz_bomb(&path, 100_000, 2);
        let cache = tmp.path().join("cache");
        let total = (BAGIT.len() + 3 * 100_000) as u64;
        refused_with_cap(&path, &cache, total - 1);
        let bag = extract_with(&path, &cache, Some(total)).unwrap();
        assert_eq!(
            fs::metadata(bag.join("data/copy1.bin")).unwrap().len(),
            100_000
        );
    }

    #[test]
    fn the_cap_is_the_option_then_the_environment_then_the_smaller_default() {
        let dir = Path::new("/cache/extracted");
        let never = || -> Result<u64> { panic!("the archive size is not needed") };
        let cap = |explicit, env: Option<&str>, size: u64, free: Option<u64>| {
            Cap::choose(
                explicit,
                env.map(std::ffi::OsStr::new),
                || Ok(size),
                || free,
                dir,
            )
        };
        assert_eq!(
            Cap::choose(Some(7), Some("9".as_ref()), never, || None, dir).unwrap(),
            Cap {
                bytes: 7,
                why: "the limit OpenOptions::max_extracted_bytes sets".into()
            }
        );
        assert_eq!(
            Cap::choose(None, Some("50G".as_ref()), never, || None, dir).unwrap(),
            Cap {
                bytes: 50 << 30,
                why: "the limit DERIVA_BAG_MAX_EXTRACTED_BYTES sets".into()
            }
        );
        assert_eq!(
            cap(None, Some(""), 1000, Some(1 << 30)).unwrap(),
            Cap {
                bytes: 100_000,
                why: "100 × the archive's 1000 bytes".into()
            }
        );
        assert_eq!(
            cap(None, None, 1000, Some(5000)).unwrap(),
            Cap {
                bytes: 5000,
                why: "the free space of the cache volume at /cache/extracted".into()
            }
        );
        assert_eq!(cap(None, None, 1000, None).unwrap().bytes, 100_000);
        match cap(None, Some("lots"), 1000, None).unwrap_err() {
            Error::Setting { name, value, .. } => {
                assert_eq!(name, MAX_EXTRACTED_ENV);
                assert_eq!(value, "lots");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_byte_count("123"), Some(123));
        assert_eq!(parse_byte_count("2K"), Some(2048));
        assert_eq!(parse_byte_count("3m"), Some(3 << 20));
        assert_eq!(parse_byte_count("50GiB"), Some(50 << 30));
        assert_eq!(parse_byte_count("1TB"), Some(1 << 40));
        for bad in ["", "G", "1.5G", "-1", "12X", "99999999999T"] {
            assert_eq!(parse_byte_count(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_changes_when_the_archive_is_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.zip");
        fs::write(&p, b"one").unwrap();
        let k1 = archive_key(&p).unwrap();
        assert_eq!(archive_key(&p).unwrap(), k1);
        fs::write(&p, b"two").unwrap();
        assert_ne!(archive_key(&p).unwrap(), k1);
        assert_eq!(k1.len(), 64);
    }
}
