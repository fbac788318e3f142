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

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::bagit::paths::{normalize, resolve_link_target, safe_join};
use crate::cache::{lock_for, publish, temp_sibling};
use crate::{Error, Result};

/// Bytes read from each end of the archive for its cache key.
const KEY_SAMPLE: u64 = 64 * 1024;
/// Write buffer for extracted files.
const WRITE_BUFFER: usize = 1 << 20;
/// Longest symlink target we accept from a zip entry body.
const MAX_LINK_TARGET: u64 = 4096;

/// The bag directory for a user-given path: an archive is extracted into `cache_root` (or
/// reused from there), a directory is returned as is.
pub fn bag_dir(path: &Path, cache_root: &Path) -> Result<PathBuf> {
    if path.is_file() && is_archive(path) {
        extract(path, cache_root)
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
/// returns the bag directory inside it. Reuses an earlier extraction of the same archive.
///
/// Errors: [`Error::UnsafePath`] for an entry that escapes (naming archive and entry);
/// [`Error::NotABag`] for an unreadable archive or one without a single top-level bag
/// directory holding `bagit.txt`; [`Error::Io`]. On error nothing is left in the cache.
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
    let key = archive_key(archive)?;
    let final_dir = cache_root.join("extracted").join(&key);
    let _lock = lock_for(&final_dir)?;
    if final_dir.is_dir() {
        tracing::debug!(archive = %archive.display(), dir = %final_dir.display(), "reusing extraction");
        return bag_dir_in(&final_dir, archive);
    }
    remove_stale_temps(&final_dir);
    let temp = temp_sibling(&final_dir);
    let result = unpack(archive, &temp).and_then(|()| bag_dir_in(&temp, archive));
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

/// Removes temporary directories a crashed extraction of the same key left behind. Runs
/// under the key's lock, so no live extraction of this key owns one.
fn remove_stale_temps(final_dir: &Path) {
    let (Some(parent), Some(name)) = (final_dir.parent(), final_dir.file_name()) else {
        return;
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::debug!(dir = %entry.path().display(), "removing stale extraction");
            let _ = fs::remove_dir_all(entry.path());
        }
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

/// Unpacks every entry of `archive` into `dest` (created here).
fn unpack(archive: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let mut out = Extractor {
        archive,
        dest,
        links: Vec::new(),
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

/// Writes entries below `dest`, refusing any name that escapes it.
struct Extractor<'a> {
    archive: &'a Path,
    dest: &'a Path,
    /// `(entry path normalised, target path normalised)`, materialised after all files.
    links: Vec<(String, String)>,
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
        // A read error here is the archive's (bad deflate stream, truncated tar).
        io::copy(reader, &mut writer).map_err(|e| Error::io(self.archive, e))?;
        writer
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
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
