//! Index integrity: the index serves only what the bag's payload manifests vouch for.
//!
//! The index is keyed by the manifests alone ([`crate::bagit::BagItFiles::cache_key`]), so
//! two bag directories with the same manifests share one index, and a CSV edited after the
//! bag was made would otherwise reach it (or be served stale from it) unnoticed. So:
//!
//! - **While building**, every table CSV and `data/schema.json` is checked against its
//!   payload manifest digest (sha256 where a manifest lists one, else md5). CSVs are hashed
//!   as they are parsed ([`DigestReader`]), never read twice; a CSV no manifest lists is
//!   refused before anything is parsed ([`Error::NotInManifest`]), a mismatch is
//!   [`Error::ChecksumMismatch`] naming the file, and a CSV that fails to parse is reported as
//!   a mismatch when that is why.
//! - **On every later open** ([`index_serves_bag`]) the bag directory must show the index
//!   what it was built from. A record in the cache, `<cache>/verified/<key>` per bag
//!   directory and index key, holds the identity (device, inode, size, mtime, ctime) of each
//!   verified CSV, of `schema.json` and of each directory walked under `data/`. When they all
//!   still match, a warm open costs a few `stat` calls. Otherwise the CSVs are found again:
//!   one the manifests do not list is refused; a different set of CSVs than the index holds
//!   (a listed CSV restored or removed) rebuilds the index; every file whose identity changed
//!   is hashed again, so an edit after indexing is a checksum error, never a stale answer.
//!
//! ctime cannot be set back by any user call, so a changed file never keeps its recorded
//! identity; as for the remembered cache keys, an identity is recorded only once the file is
//! older than [`MEMO_SETTLE`] (a write within the timestamp granularity of the last one could
//! otherwise keep its times), and a younger file is simply hashed again on the next open.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::build::BuildRequest;
use super::schema::FILES_TABLE;
use crate::bagit::{payload_manifests_lenient_for, Algorithm, MEMO_SETTLE};
use crate::csv::{scan, CsvFile};
use crate::{Error, Result};

/// The identity of a file or directory: when any part differs, its content may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    /// Seconds and nanoseconds since the Unix epoch.
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    #[cfg(unix)]
    pub(crate) fn of(meta: &Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Without inodes and ctimes, the size and mtime (a weaker identity).
    #[cfg(not(unix))]
    pub(crate) fn of(meta: &Metadata) -> FileStamp {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or((0, 0), |d| {
                (d.as_secs() as i64, i64::from(d.subsec_nanos()))
            });
        FileStamp {
            dev: 0,
            ino: 0,
            size: meta.len(),
            mtime,
            ctime: mtime,
        }
    }

    /// Device and inode.
    pub(crate) fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// Whether both times are at least `settle` before `now`.
    pub(crate) fn settled(&self, now: SystemTime, settle: Duration) -> bool {
        let at = |(secs, nanos): (i64, i64)| {
            SystemTime::UNIX_EPOCH
                + Duration::from_secs(secs.max(0) as u64)
                + Duration::from_nanos(nanos.max(0) as u64)
        };
        let newest = at(self.mtime).max(at(self.ctime));
        now.duration_since(newest).is_ok_and(|age| age >= settle)
    }
}

/// `data/schema.json` as read for the model, with the identity of the file it came from.
#[derive(Debug)]
pub(crate) struct SchemaFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub stamp: FileStamp,
}

impl SchemaFile {
    /// Reads the file; an I/O error keeps its kind (the caller turns NotFound into NotABag).
    pub(crate) fn read(path: &Path) -> std::io::Result<SchemaFile> {
        let mut file = File::open(path)?;
        let before = FileStamp::of(&file.metadata()?);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let stamp = FileStamp::of(&file.metadata()?);
        if stamp != before {
            return Err(std::io::Error::other("changed while being read"));
        }
        Ok(SchemaFile {
            path: path.to_path_buf(),
            bytes,
            stamp,
        })
    }
}

/// The bag-relative path of the catalog model, whose digest every index check reads.
const SCHEMA_PATH: &str = "data/schema.json";

/// The digest a payload manifest lists for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    pub algorithm: Algorithm,
    /// Lowercase hex.
    pub digest: String,
}

/// The digests the payload manifests list, by bag-relative path: sha256 where a manifest
/// lists one (the stronger check), else md5.
#[derive(Debug, Default)]
pub(crate) struct PayloadDigests(HashMap<String, Expected>);

impl PayloadDigests {
    /// Reads the md5 and sha256 payload manifests at `root` (malformed lines skipped, see
    /// [`crate::bagit::manifest::read_manifest_lenient`]).
    pub(crate) fn read(root: &Path) -> Result<PayloadDigests> {
        Self::read_keeping(root, &|_| true)
    }

    /// [`read`](Self::read) keeping only the digests of `data/schema.json` and of `csvs`:
    /// what a build or a check of the index needs. The manifests are read line by line and
    /// the asset lines dropped as they come, so memory does not grow with the assets.
    pub(crate) fn read_for(root: &Path, csvs: &[CsvFile]) -> Result<PayloadDigests> {
        let wanted: HashSet<&str> = csvs
            .iter()
            .map(|f| f.relative.as_str())
            .chain([SCHEMA_PATH])
            .collect();
        Self::read_keeping(root, &|path| wanted.contains(path))
    }

    fn read_keeping(root: &Path, keep: &dyn Fn(&str) -> bool) -> Result<PayloadDigests> {
        let mut map: HashMap<String, Expected> = HashMap::new();
        for manifest in payload_manifests_lenient_for(root, keep)? {
            for entry in manifest.entries {
                let stronger = match map.get(&entry.path) {
                    Some(have) => {
                        manifest.algorithm == Algorithm::Sha256 && have.algorithm == Algorithm::Md5
                    }
                    None => true,
                };
                if stronger {
                    map.insert(
                        entry.path,
                        Expected {
                            algorithm: manifest.algorithm,
                            digest: entry.digest,
                        },
                    );
                }
            }
        }
        Ok(PayloadDigests(map))
    }

    /// The digest listed for `relative`; [`Error::NotInManifest`] naming `path` when none is.
    pub(crate) fn expect(&self, relative: &str, path: &Path) -> Result<&Expected> {
        self.0.get(relative).ok_or_else(|| Error::NotInManifest {
            path: path.to_path_buf(),
        })
    }
}

/// A running md5 or sha256.
enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Md5 => Hasher::Md5(Md5::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
        }
    }
}

/// `found` against `expected`: [`Error::ChecksumMismatch`] naming `path` when they differ.
fn compare(path: &Path, expected: &Expected, found: String) -> Result<()> {
    if found == expected.digest {
        return Ok(());
    }
    Err(Error::ChecksumMismatch {
        path: path.to_path_buf(),
        algorithm: expected.algorithm.name(),
        expected: expected.digest.clone(),
        found,
    })
}

/// Checks bytes already in memory (`schema.json`) against their manifest digest.
pub(crate) fn check_bytes(path: &Path, bytes: &[u8], expected: &Expected) -> Result<()> {
    let mut hasher = Hasher::new(expected.algorithm);
    hasher.update(bytes);
    compare(path, expected, hasher.finish())
}

/// A bag file being read and hashed in one pass: the index build parses a CSV through it,
/// then [`finish`](Self::finish) compares the digest and returns the identity of what was
/// read.
pub(crate) struct DigestReader {
    file: File,
    path: PathBuf,
    expected: Expected,
    hasher: Hasher,
    before: FileStamp,
}

impl DigestReader {
    pub(crate) fn open(path: &Path, expected: &Expected) -> Result<DigestReader> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let before = FileStamp::of(&file.metadata().map_err(|e| Error::io(path, e))?);
        Ok(DigestReader {
            file,
            path: path.to_path_buf(),
            expected: expected.clone(),
            hasher: Hasher::new(expected.algorithm),
            before,
        })
    }

    /// Reads what is left of the file, then checks the digest of everything read: the
    /// file's identity when it matches its manifest digest, [`Error::ChecksumMismatch`] when
    /// not, an I/O error when the file changed while being read.
    pub(crate) fn finish(mut self) -> Result<FileStamp> {
        std::io::copy(&mut self, &mut std::io::sink()).map_err(|e| Error::io(&self.path, e))?;
        let after = FileStamp::of(&self.file.metadata().map_err(|e| Error::io(&self.path, e))?);
        if after != self.before {
            return Err(Error::io(
                &self.path,
                std::io::Error::other("changed while being read"),
            ));
        }
        compare(&self.path, &self.expected, self.hasher.finish())?;
        Ok(after)
    }

    /// The error to report for `error`, met while parsing this file: the checksum mismatch
    /// when the file differs from its manifest digest (the damage is the cause, whatever
    /// line it broke), else `error` itself.
    pub(crate) fn explain(self, error: Error) -> Error {
        match self.finish() {
            Err(mismatch @ Error::ChecksumMismatch { .. }) => mismatch,
            _ => error,
        }
    }
}

impl Read for DigestReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Hashes a whole file against its manifest digest; returns its identity.
fn check_file(path: &Path, expected: &Expected) -> Result<FileStamp> {
    DigestReader::open(path, expected)?.finish()
}

/// What a build or a full check verified: the record of [`index_serves_bag`].
#[derive(Debug, Default)]
pub(crate) struct Verified {
    pub dirs: Vec<(String, FileStamp)>,
    pub files: Vec<(String, FileStamp)>,
}

/// The record of one bag directory against one index (see the module docs).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    /// Device and inode of the index main file the bag was checked against.
    index: (u64, u64),
    schema: FileStamp,
    dirs: BTreeMap<String, FileStamp>,
    files: BTreeMap<String, FileStamp>,
    /// Every identity of the bag was settled when recorded (none left out).
    complete: bool,
}

const RECORD_FORMAT: &str = "deriva-bag verified 1";

/// `<verified dir>/<sha256 of the bag directory's identity and the index key>`.
fn record_path(req: &BuildRequest<'_>) -> Option<PathBuf> {
    let dir = std::fs::metadata(req.bag_root).ok()?;
    let stamp = FileStamp::of(&dir);
    let id = format!(
        "{RECORD_FORMAT}\n{} {}\n{}",
        stamp.dev, stamp.ino, req.cache_key
    );
    Some(
        req.verified_dir
            .join(hex::encode(Sha256::digest(id.as_bytes()))),
    )
}

/// Device and inode of the index main file.
fn index_id(index: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(index).ok().map(|m| {
        let s = FileStamp::of(&m);
        (s.dev, s.ino)
    })
}

fn load(path: &Path) -> Option<Record> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Whether every directory and file the record names still has its recorded identity.
fn unchanged(root: &Path, record: &Record) -> bool {
    let same = |rel: &str, stamp: &FileStamp| {
        let mut path = root.to_path_buf();
        path.extend(rel.split('/'));
        std::fs::metadata(&path).is_ok_and(|m| FileStamp::of(&m) == *stamp)
    };
    record.dirs.iter().all(|(rel, s)| same(rel, s))
        && record.files.iter().all(|(rel, s)| same(rel, s))
}

/// Whether the current index at `index` may serve the bag of `req` (see the module docs):
/// `Ok(true)` when the bag shows exactly what the index was built from, `Ok(false)` when
/// the bag holds another set of listed CSVs (rebuild), an error for a CSV or `schema.json`
/// that differs from its manifest digest or a CSV no manifest lists.
pub(crate) fn index_serves_bag(index: &Path, req: &BuildRequest<'_>) -> Result<bool> {
    Ok(check(index, req, MEMO_SETTLE)? != Check::Rebuild)
}

/// What [`check`] found.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// Every recorded identity still holds: nothing was read.
    Unchanged,
    /// The CSVs were found again and the given number hashed; all match.
    Verified { hashed: usize },
    /// The bag holds another set of CSVs than the index.
    Rebuild,
}

/// [`index_serves_bag`] with an explicit settle time (tests use zero).
fn check(index: &Path, req: &BuildRequest<'_>, settle: Duration) -> Result<Check> {
    let Some(index_id) = index_id(index) else {
        return Ok(Check::Rebuild);
    };
    let record_path = record_path(req);
    let record = record_path.as_deref().and_then(load);
    if let Some(r) = &record {
        if r.complete
            && r.index == index_id
            && r.schema == req.schema.stamp
            && unchanged(req.bag_root, r)
        {
            return Ok(Check::Unchanged);
        }
    }
    let started = std::time::Instant::now();
    let found = scan(req.bag_root, req.model)?;
    let digests = PayloadDigests::read_for(req.bag_root, &found.files)?;
    if record.as_ref().is_none_or(|r| r.schema != req.schema.stamp) {
        check_schema(req, &digests)?;
    }
    let expected = expected_digests(&found.files, &digests)?;
    let indexed = indexed_files(index)?;
    let present: BTreeSet<&str> = found.files.iter().map(|f| f.relative.as_str()).collect();
    if indexed
        .iter()
        .map(String::as_str)
        .ne(present.iter().copied())
    {
        tracing::info!(bag = %req.bag_root.display(), "the bag holds other CSV files than its index was built from; rebuilding");
        return Ok(Check::Rebuild);
    }
    let mut verified = Verified {
        dirs: found
            .dirs
            .iter()
            .map(|(rel, m)| (rel.clone(), FileStamp::of(m)))
            .collect(),
        files: Vec::with_capacity(found.files.len()),
    };
    let mut hashed = 0usize;
    for (file, expected) in found.files.iter().zip(expected) {
        let recorded = record.as_ref().and_then(|r| r.files.get(&file.relative));
        let now = std::fs::metadata(&file.path)
            .map(|m| FileStamp::of(&m))
            .map_err(|e| Error::io(&file.path, e))?;
        let stamp = if recorded == Some(&now) {
            now
        } else {
            hashed += 1;
            check_file(&file.path, expected)?
        };
        verified.files.push((file.relative.clone(), stamp));
    }
    tracing::debug!(
        bag = %req.bag_root.display(),
        files = found.files.len(),
        hashed,
        elapsed_us = started.elapsed().as_micros() as u64,
        "checked the bag against its index"
    );
    remember_settled(index, req, &verified, settle);
    Ok(Check::Verified { hashed })
}

/// Checks `schema.json` (as read for the model) against its manifest digest.
pub(crate) fn check_schema(req: &BuildRequest<'_>, digests: &PayloadDigests) -> Result<()> {
    let expected = digests.expect(SCHEMA_PATH, &req.schema.path)?;
    check_bytes(&req.schema.path, &req.schema.bytes, expected)
}

/// The manifest digest of every CSV, in order; the first CSV no manifest lists is an error.
pub(crate) fn expected_digests<'d>(
    files: &[CsvFile],
    digests: &'d PayloadDigests,
) -> Result<Vec<&'d Expected>> {
    files
        .iter()
        .map(|f| digests.expect(&f.relative, &f.path))
        .collect()
}

/// The bag-relative paths of the CSVs the index at `index` was built from, sorted.
fn indexed_files(index: &Path) -> Result<Vec<String>> {
    let err = |source| Error::Index {
        path: index.to_path_buf(),
        source,
    };
    let conn = rusqlite::Connection::open_with_flags(
        index,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let mut stmt = conn
        .prepare(&format!("SELECT path FROM {FILES_TABLE} ORDER BY path"))
        .map_err(err)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
    rows.collect::<rusqlite::Result<Vec<String>>>().map_err(err)
}

/// Records what was verified for the bag of `req` against the index at `index`, so the next
/// open can trust what has not changed. Best effort: a record that cannot be written (a
/// read-only cache) only means checking again next time.
pub(crate) fn remember(index: &Path, req: &BuildRequest<'_>, verified: &Verified) {
    remember_settled(index, req, verified, MEMO_SETTLE);
}

fn remember_settled(index: &Path, req: &BuildRequest<'_>, verified: &Verified, settle: Duration) {
    let (Some(path), Some(index)) = (record_path(req), index_id(index)) else {
        return;
    };
    let now = SystemTime::now();
    let settled = |s: &FileStamp| s.settled(now, settle);
    let record = Record {
        index,
        schema: req.schema.stamp,
        dirs: verified
            .dirs
            .iter()
            .filter(|(_, s)| settled(s))
            .cloned()
            .collect(),
        files: verified
            .files
            .iter()
            .filter(|(_, s)| settled(s))
            .cloned()
            .collect(),
        complete: settled(&req.schema.stamp)
            && verified.dirs.iter().all(|(_, s)| settled(s))
            && verified.files.iter().all(|(_, s)| settled(s)),
    };
    if load(&path).as_ref() == Some(&record) {
        return;
    }
    write_record(&path, &record, "the verified bag files");
}

/// Writes a JSON record into the cache (temporary file, then rename, so a reader never sees
/// half of one). Best effort: a record that cannot be written (a read-only cache) only
/// means checking again next time; `what` names it in the debug log.
pub(crate) fn write_record<T: Serialize>(path: &Path, record: &T, what: &str) {
    let Ok(json) = serde_json::to_vec(record) else {
        return;
    };
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let temp = crate::cache::temp_sibling(path);
            std::fs::write(&temp, &json)
                .and_then(|()| std::fs::rename(&temp, path))
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&temp);
                })
        });
    if let Err(e) = written {
        tracing::debug!(record = %path.display(), error = %e, "cannot record {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_preferred_where_both_manifests_list_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let bag = tmp.path();
        std::fs::create_dir_all(bag.join("data")).unwrap();
        std::fs::write(
            bag.join("bagit.txt"),
            "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        )
        .unwrap();
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        std::fs::write(
            bag.join("manifest-md5.txt"),
            format!("{md5}  data/a.csv\n{md5}  data/b.csv\nnot a line\n"),
        )
        .unwrap();
        std::fs::write(
            bag.join("manifest-sha256.txt"),
            format!("{sha}  data/a.csv\n"),
        )
        .unwrap();
        let digests = PayloadDigests::read(bag).unwrap();
        let a = digests.expect("data/a.csv", Path::new("a")).unwrap();
        assert_eq!((a.algorithm, a.digest.as_str()), (Algorithm::Sha256, sha));
        let b = digests.expect("data/b.csv", Path::new("b")).unwrap();
        assert_eq!((b.algorithm, b.digest.as_str()), (Algorithm::Md5, md5));
        assert!(matches!(
            digests.expect("data/c.csv", Path::new("/bag/data/c.csv")),
            Err(Error::NotInManifest { path }) if path == Path::new("/bag/data/c.csv")
        ));
    }

    #[test]
    fn a_digest_reader_names_the_file_whose_bytes_differ() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.csv");
        std::fs::write(&path, "RID\n1-A\n").unwrap();
        let right = Expected {
            algorithm: Algorithm::Md5,
            digest: hex::encode(Md5::digest(b"RID\n1-A\n")),
        };
        let mut reader = DigestReader::open(&path, &right).unwrap();
        let mut head = [0u8; 3];
        reader.read_exact(&mut head).unwrap();
        // `finish` hashes what the parser did not read.
        let stamp = reader.finish().unwrap();
        assert_eq!(stamp.size, 8);
        let wrong = Expected {
            algorithm: Algorithm::Md5,
            digest: "0".repeat(32),
        };
        match check_file(&path, &wrong).unwrap_err() {
            Error::ChecksumMismatch {
                path: p,
                algorithm,
                expected,
                found,
            } => {
                assert_eq!(p, path);
                assert_eq!(algorithm, "md5");
                assert_eq!(expected, "0".repeat(32));
                assert_eq!(found, right.digest);
            }
            other => panic!("{other:?}"),
        }
        // A parse error on a file that matches its digest stays the parse error.
        let parse = Error::Csv {
            path: path.clone(),
            line: 2,
            detail: "bad".into(),
        };
        let explained = DigestReader::open(&path, &right).unwrap().explain(parse);
        assert!(matches!(explained, Error::Csv { line: 2, .. }));
    }

    #[cfg(feature = "fixtures")]
    #[test]
    fn a_warm_check_trusts_recorded_identities_and_hashes_only_changed_files() {
        use crate::index::build::ensure_index;
        let tmp = tempfile::tempdir().unwrap();
        let g = crate::fixtures::small_bag(&tmp.path().join("bags")).unwrap();
        let schema = SchemaFile::read(&g.path.join("data/schema.json")).unwrap();
        let model = deriva_bag_features::CatalogModel::from_json(&schema.bytes).unwrap();
        let key = crate::bagit::BagItFiles::cache_key_of(&g.path).unwrap();
        let verified_dir = tmp.path().join("cache/verified");
        let req = BuildRequest {
            bag_root: &g.path,
            model: &model,
            schema: &schema,
            cache_key: &key,
            verified_dir: &verified_dir,
            progress: None,
        };
        let index = tmp.path().join("cache/index").join(format!("{key}.sqlite"));
        assert!(ensure_index(&index, &req).unwrap());
        let csvs = scan(&g.path, &model).unwrap().files.len();
        assert!(csvs > 5, "{csvs}");
        let zero = Duration::ZERO;
        // The files are younger than the settle time, so the build recorded none of them.
        assert_eq!(
            check(&index, &req, zero).unwrap(),
            Check::Verified { hashed: csvs }
        );
        assert_eq!(check(&index, &req, zero).unwrap(), Check::Unchanged);
        // Rewritten with the same bytes: only that file is hashed again.
        let image = g.path.join("data/demo/Image.csv");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&image, std::fs::read(&image).unwrap()).unwrap();
        assert_eq!(
            check(&index, &req, zero).unwrap(),
            Check::Verified { hashed: 1 }
        );
        assert_eq!(check(&index, &req, zero).unwrap(), Check::Unchanged);
        // A new file in a walked directory is noticed through the directory's identity.
        let stray = g.path.join("data/demo/Nope.csv");
        std::fs::write(&stray, "RID\n").unwrap();
        assert_eq!(
            check(&index, &req, zero).unwrap(),
            Check::Verified { hashed: 0 }
        );
        std::fs::remove_file(&stray).unwrap();
        // An edit is a checksum error, however the record looks.
        let text = std::fs::read_to_string(&image).unwrap();
        std::fs::write(&image, text.replacen("1-I001", "1-I00X", 1)).unwrap();
        assert!(matches!(
            check(&index, &req, zero),
            Err(Error::ChecksumMismatch { path, .. }) if path == image
        ));
        // A cache where records cannot be written still checks (every time).
        std::fs::write(&image, &text).unwrap();
        let blocked = tmp.path().join("not-a-dir");
        std::fs::write(&blocked, "").unwrap();
        let req = BuildRequest {
            verified_dir: &blocked.join("verified"),
            ..req
        };
        assert_eq!(
            check(&index, &req, zero).unwrap(),
            Check::Verified { hashed: csvs }
        );
        assert_eq!(
            check(&index, &req, zero).unwrap(),
            Check::Verified { hashed: csvs }
        );
    }

    #[test]
    fn identities_settle_after_the_settle_time() {
        let stamp = FileStamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (100, 0),
            ctime: (100, 500),
        };
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert!(!stamp.settled(at(101), Duration::from_secs(2)));
        assert!(stamp.settled(at(103), Duration::from_secs(2)));
    }
}
