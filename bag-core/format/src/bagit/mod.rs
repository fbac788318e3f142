//! BagIt: the tag files of a bag (`bagit.txt`, `bag-info.txt`, payload and tag manifests,
//! `fetch.txt`) and the four validation modes.

pub mod write;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};
use paths::{BagRoot, InBag};

pub mod fetch;
pub mod manifest;
pub mod paths;
pub mod tagfile;
mod validate;

pub use validate::{Progress, ValidationIssue, ValidationMode, ValidationReport};

/// BagIt version declared in `bagit.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BagItVersion {
    /// `BagIt-Version: 0.97` (what bdbag writes).
    V0_97,
    /// `BagIt-Version: 1.0`.
    V1_0,
}

/// A checksum algorithm of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// `manifest-md5.txt`.
    Md5,
    /// `manifest-sha256.txt`.
    Sha256,
}

/// One manifest line: a bag-relative path (decoded, `/`-separated) and its hex digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Bag-relative path, e.g. `data/demo/Image.csv`.
    pub path: String,
    /// Lowercase hex digest.
    pub digest: String,
}

/// A payload or tag manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Entries in file order.
    pub entries: Vec<ManifestEntry>,
}

/// One `fetch.txt` line: `URL<TAB>LENGTH<TAB>PATH`, PATH percent-decoded and checked to stay
/// inside the bag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchEntry {
    /// The absolute URL, as written.
    pub url: String,
    /// The declared byte length (`-` means unknown).
    pub length: Option<u64>,
    /// Bag-relative path after percent-decoding, e.g. `data/asset/1-I002/Image/retina 002.jpg`.
    pub path: String,
}

/// Everything the tag files of one bag say.
#[derive(Debug, Clone)]
pub struct BagItFiles {
    /// The bag directory.
    pub root: PathBuf,
    /// `bagit.txt`'s version.
    pub version: BagItVersion,
    /// `bag-info.txt` as ordered `(key, value)` pairs (continuation lines joined).
    pub info: Vec<(String, String)>,
    /// Payload manifests (`manifest-*.txt`).
    pub manifests: Vec<Manifest>,
    /// Tag manifests (`tagmanifest-*.txt`).
    pub tag_manifests: Vec<Manifest>,
    /// `fetch.txt` entries (empty when there is no fetch.txt).
    pub fetch: Vec<FetchEntry>,
    /// sha256 hex over the manifests, tag manifests and fetch.txt (see [`BagItFiles::cache_key`]).
    cache_key: String,
    /// The bag directory as a boundary: every file validation reads is reached through it.
    bag_root: BagRoot,
}

impl BagItFiles {
    /// Reads and parses every tag file of the bag at `root`.
    ///
    /// Requires `bagit.txt` (BagIt 0.97 or 1.0, UTF-8) and a `data/` directory, else
    /// [`Error::NotABag`]. Reads `bag-info.txt` if present, every `manifest-<alg>.txt` and
    /// `tagmanifest-<alg>.txt` for md5 and sha256 (other algorithms are skipped with a
    /// warning) and `fetch.txt` if present. At least one md5 or sha256 payload manifest is
    /// required. Malformed lines are [`Error::TagFile`] and escaping paths
    /// [`Error::UnsafePath`], naming the file and line. Payload files are not read.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_format::bagit::{BagItFiles, BagItVersion, ValidationMode};
    /// let dir = tempfile::tempdir()?;
    /// let bag = dir.path();
    /// std::fs::create_dir(bag.join("data"))?;
    /// std::fs::write(bag.join("data/a.txt"), "")?;
    /// std::fs::write(bag.join("bagit.txt"), "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")?;
    /// std::fs::write(bag.join("bag-info.txt"), "Payload-Oxum: 0.1\n")?;
    /// std::fs::write(bag.join("manifest-md5.txt"), "d41d8cd98f00b204e9800998ecf8427e  data/a.txt\n")?;
    /// let files = BagItFiles::read(bag)?;
    /// assert_eq!(files.version, BagItVersion::V1_0);
    /// assert_eq!(files.payload_oxum(), Some((0, 1)));
    /// assert!(files.validate(ValidationMode::Full, None)?.valid);
    /// # Ok(()) }
    /// ```
    pub fn read(root: &Path) -> Result<BagItFiles> {
        let (bag_root, version, names) = checked_tag_file_names(root)?;

        let info_path = root.join("bag-info.txt");
        let info = match bag_root.read("bag-info.txt", root)? {
            Some(bytes) => tagfile::parse_bag_info(&bytes, &info_path)?,
            // Optional in BagIt 1.0 and in practice in 0.97 too (bagit-python does not
            // require it); only fast validation needs its Payload-Oxum.
            None => Vec::new(),
        };

        let mut key = Sha256::new();
        let mut manifests = Vec::new();
        let mut tag_manifests = Vec::new();
        let mut fetch = Vec::new();
        for name in &names {
            let path = root.join(name);
            let bytes = read_tag_file(&bag_root, name)?;
            hash_tag_file(&mut key, name, &bytes);
            if name == "fetch.txt" {
                fetch = fetch::parse_fetch(&bytes, &path)?;
                continue;
            }
            let Some((is_tag, alg_name)) = manifest::manifest_file_kind(name) else {
                continue;
            };
            let Some(algorithm) = Algorithm::from_name(alg_name) else {
                tracing::warn!(file = %path.display(), "skipping manifest of unsupported algorithm {alg_name:?}");
                continue;
            };
            let parsed = Manifest {
                algorithm,
                entries: manifest::parse_manifest(&bytes, algorithm, &path)?,
            };
            if is_tag {
                tag_manifests.push(parsed);
            } else {
                manifests.push(parsed);
            }
        }
        Ok(BagItFiles {
            root: root.to_path_buf(),
            version,
            info,
            manifests,
            tag_manifests,
            fetch,
            cache_key: hex::encode(key.finalize()),
            bag_root,
        })
    }

    /// The [`cache_key`](Self::cache_key) of the bag at `root`, computed from the raw bytes of
    /// its manifests and `fetch.txt` without parsing them, after the same "is this a bag"
    /// checks as [`read`](Self::read) ([`Error::NotABag`]: no directory, no or bad
    /// `bagit.txt`, no `data/`, no md5 or sha256 payload manifest). Malformed manifest or
    /// fetch lines are not detected here; [`read`](Self::read) reports them. Opening a bag
    /// whose index is cached needs only this, which is what keeps a warm open in
    /// milliseconds on a bag with tens of thousands of manifest lines.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_format::bagit::BagItFiles;
    /// let dir = tempfile::tempdir()?;
    /// let bag = dir.path();
    /// std::fs::create_dir(bag.join("data"))?;
    /// std::fs::write(bag.join("bagit.txt"), "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")?;
    /// std::fs::write(bag.join("manifest-md5.txt"), "d41d8cd98f00b204e9800998ecf8427e  data/a.txt\n")?;
    /// assert_eq!(BagItFiles::cache_key_of(bag)?, BagItFiles::read(bag)?.cache_key());
    /// # Ok(()) }
    /// ```
    pub fn cache_key_of(root: &Path) -> Result<String> {
        let (bag_root, _, names) = checked_tag_file_names(root)?;
        hash_tag_files(&bag_root, &names)
    }

    /// [`cache_key_of`](Self::cache_key_of), remembered in `memo_dir` (a cache directory,
    /// never inside the bag) under a name derived from the identity of the tag files: bag
    /// directory device and inode, and per file its name, size, inode, mtime and ctime. A warm
    /// open then costs a few `stat` calls instead of reading and hashing every manifest and
    /// `fetch.txt` (45 MB, 90 ms at 200k images). Any change to a tag file changes its
    /// ctime (which no user call can set back), so a changed bag misses the memo and is
    /// hashed again. As with git's racy-index rule, a memo is only written once every tag file
    /// is older than [`MEMO_SETTLE`]: a file rewritten within the timestamp granularity of its
    /// last write could otherwise keep its old times.
    #[doc(hidden)]
    pub fn cache_key_memo(root: &Path, memo_dir: &Path) -> Result<String> {
        cache_key_memo_settled(root, memo_dir, MEMO_SETTLE)
    }

    /// A sha256 hex digest over every `manifest-*.txt`, `tagmanifest-*.txt` and `fetch.txt`
    /// in sorted file-name order (each file's name and length, then its bytes). It changes
    /// whenever the bag's declared content changes and costs no payload reads, so it keys
    /// the SQLite index in the cache.
    pub fn cache_key(&self) -> String {
        self.cache_key.clone()
    }

    /// The first `bag-info.txt` value for `key` (case-insensitive).
    pub fn info_value(&self, key: &str) -> Option<&str> {
        self.info
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `Payload-Oxum` as `(bytes, files)`, if present and well-formed.
    pub fn payload_oxum(&self) -> Option<(u64, u64)> {
        self.info_value("Payload-Oxum")
            .and_then(tagfile::parse_oxum)
    }

    /// The payload manifest for `algorithm`, if the bag has one.
    pub fn manifest(&self, algorithm: Algorithm) -> Option<&Manifest> {
        self.manifests.iter().find(|m| m.algorithm == algorithm)
    }

    /// The bag directory as a boundary ([`BagRoot`]): where a bag-relative path leads once
    /// symbolic links are followed.
    pub fn bag_root(&self) -> &BagRoot {
        &self.bag_root
    }

    /// Whether every `fetch.txt` file is on disk inside the bag (an escaping path, or a
    /// symbolic link out of the bag, counts as absent).
    pub fn fetched_files_present(&self) -> bool {
        let fetch_txt = self.root.join("fetch.txt");
        self.fetch.iter().all(|e| {
            matches!(
                self.bag_root.resolve_file(&e.path, &fetch_txt),
                Ok(InBag::Inside(_))
            )
        })
    }

    /// The absolute path of a bag-relative path from a manifest or fetch.txt (already
    /// checked by [`paths::normalize`] when parsed). Lexical only: to open the file, go
    /// through [`bag_root`](Self::bag_root), which refuses symbolic links out of the bag.
    pub fn path_of(&self, relative: &str) -> PathBuf {
        let mut out = self.root.clone();
        out.extend(relative.split('/'));
        out
    }
}

/// The md5 and sha256 payload manifests at `root`, each with the lines that parse (see
/// [`manifest::read_manifest_lenient`]): what the index checks the files it reads against.
#[doc(hidden)]
pub fn payload_manifests_lenient(root: &Path) -> Result<Vec<Manifest>> {
    payload_manifests_lenient_for(root, &|_| true)
}

/// [`payload_manifests_lenient`] with only the entries whose path `keep` accepts, read line
/// by line: opening a bag needs the digests of its table CSVs and `schema.json`, not the
/// asset lines that make up almost all of a large bag's manifests, so memory stays flat.
#[doc(hidden)]
pub fn payload_manifests_lenient_for(
    root: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for name in tag_file_names(root)? {
        let Some((false, alg_name)) = manifest::manifest_file_kind(&name) else {
            continue;
        };
        let Some(algorithm) = Algorithm::from_name(alg_name) else {
            continue;
        };
        let path = root.join(&name);
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let reader = std::io::BufReader::with_capacity(64 * 1024, file);
        out.push(Manifest {
            algorithm,
            entries: manifest::read_manifest_lenient(reader, algorithm, &path, keep)?,
        });
    }
    Ok(out)
}

/// The manifest, tag manifest and `fetch.txt` file names at `root`, sorted: the files the
/// cache key covers.
fn tag_file_names(root: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        if let Some(name) = entry.file_name().to_str() {
            if manifest::manifest_file_kind(name).is_some() || name == "fetch.txt" {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// How old every tag file must be before its cache key is remembered (see
/// [`BagItFiles::cache_key_memo`]); the index's identity records use the same rule.
#[doc(hidden)]
pub const MEMO_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The BagIt version and the tag file names of a bag, after the "is this a bag" checks
/// [`BagItFiles::read`] and [`BagItFiles::cache_key_of`] share: a directory with a valid
/// `bagit.txt`, `data/` and an md5 or sha256 payload manifest.
fn checked_tag_file_names(root: &Path) -> Result<(BagRoot, BagItVersion, Vec<String>)> {
    let (bag_root, version) = read_bagit_txt(root)?;
    let names = tag_file_names(root)?;
    let has_payload_manifest = names.iter().any(|name| {
        manifest::manifest_file_kind(name)
            .is_some_and(|(is_tag, alg)| !is_tag && Algorithm::from_name(alg).is_some())
    });
    if !has_payload_manifest {
        return Err(Error::NotABag {
            path: root.to_path_buf(),
            detail: "no manifest-md5.txt or manifest-sha256.txt".into(),
        });
    }
    Ok((bag_root, version, names))
}

/// A tag file listed in the bag directory, read through the bag boundary.
fn read_tag_file(bag_root: &BagRoot, name: &str) -> Result<Vec<u8>> {
    bag_root.read(name, bag_root.path())?.ok_or_else(|| {
        let path = bag_root.path().join(name);
        Error::io(&path, std::io::ErrorKind::NotFound.into())
    })
}

/// The cache key over the named tag files, streamed through a fixed buffer (memory does
/// not grow with the manifests); the same key as [`hash_tag_file`] over whole files.
fn hash_tag_files(bag_root: &BagRoot, names: &[String]) -> Result<String> {
    use std::io::Read;
    let mut key = Sha256::new();
    let mut buf = vec![0u8; 1 << 18];
    for name in names {
        let path = bag_root.path().join(name);
        let io = |e| Error::io(&path, e);
        let mut file = bag_root
            .open(name, bag_root.path())?
            .ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
        let len = file.metadata().map_err(io)?.len();
        hash_tag_file_header(&mut key, name, len);
        let mut read = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            key.update(&buf[..n]);
            read += n as u64;
        }
        if read != len {
            // The length went into the key before the bytes: a file that changed size while
            // being read would give a key no later read reproduces.
            return Err(io(std::io::Error::other(format!(
                "changed while being read ({len} bytes announced, {read} read)"
            ))));
        }
    }
    Ok(hex::encode(key.finalize()))
}

/// [`BagItFiles::cache_key_memo`] with an explicit settle time (tests use zero).
fn cache_key_memo_settled(
    root: &Path,
    memo_dir: &Path,
    settle: std::time::Duration,
) -> Result<String> {
    let (bag_root, _, names) = checked_tag_file_names(root)?;
    let Some((fingerprint, newest)) = tag_files_fingerprint(root, &names) else {
        return hash_tag_files(&bag_root, &names);
    };
    let memo = memo_dir.join(hex::encode(Sha256::digest(fingerprint.as_bytes())));
    if let Ok(text) = std::fs::read_to_string(&memo) {
        let text = text.trim();
        if text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Ok(text.to_string());
        }
    }
    let key = hash_tag_files(&bag_root, &names)?;
    let settled = std::time::SystemTime::now()
        .duration_since(newest)
        .is_ok_and(|age| age >= settle);
    if settled {
        // Best effort: a memo that cannot be written only means hashing again next time.
        // Temporary file and rename, so a concurrent reader never sees half a key.
        let written = std::fs::create_dir_all(memo_dir).and_then(|()| {
            let temp = crate::cache::temp_sibling(&memo);
            std::fs::write(&temp, &key)
                .and_then(|()| std::fs::rename(&temp, &memo))
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&temp);
                })
        });
        if let Err(e) = written {
            tracing::debug!(memo = %memo.display(), error = %e, "cannot remember the bag's cache key");
        }
    }
    Ok(key)
}

/// A text naming the identity of the bag directory and of each tag file (device, inode,
/// size, mtime and ctime in nanoseconds), and the newest of those files' times. `None` where
/// the platform does not expose inodes and ctimes (the key is then always hashed).
#[cfg(unix)]
fn tag_files_fingerprint(root: &Path, names: &[String]) -> Option<(String, std::time::SystemTime)> {
    use std::fmt::Write;
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::metadata(root).ok()?;
    let mut out = format!("deriva-bag key memo 1\n{} {}\n", dir.dev(), dir.ino());
    let mut newest = std::time::UNIX_EPOCH;
    for name in names {
        let m = std::fs::metadata(root.join(name)).ok()?;
        let _ = writeln!(
            out,
            "{name}\0{} {} {} {}.{} {}.{}",
            m.dev(),
            m.ino(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        );
        let at = |secs: i64, nanos: i64| {
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(secs.max(0) as u64)
                + std::time::Duration::from_nanos(nanos.max(0) as u64)
        };
        newest = newest
            .max(at(m.mtime(), m.mtime_nsec()))
            .max(at(m.ctime(), m.ctime_nsec()));
    }
    Some((out, newest))
}

#[cfg(not(unix))]
fn tag_files_fingerprint(
    _root: &Path,
    _names: &[String],
) -> Option<(String, std::time::SystemTime)> {
    None
}

/// Adds one tag file to the cache key.
fn hash_tag_file(key: &mut Sha256, name: &str, bytes: &[u8]) {
    hash_tag_file_header(key, name, bytes.len() as u64);
    key.update(bytes);
}

/// What goes into the cache key before a tag file's bytes. Name and length go in first so
/// that content cannot shift from one file to the next without changing the key.
fn hash_tag_file_header(key: &mut Sha256, name: &str, len: u64) {
    key.update(name.as_bytes());
    key.update([0]);
    key.update(len.to_le_bytes());
}

/// Why a directory without `bagit.txt` is not a bag: `no bagit.txt`, and where a folder
/// directly inside it is a bag (a folder above a bag, e.g. where an archive was unpacked),
/// which one(s) to give instead.
fn no_bagit_txt(root: &Path) -> String {
    let mut inside: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.join("bagit.txt").is_file())
        .collect();
    inside.sort();
    match inside.as_slice() {
        [] => "no bagit.txt".to_string(),
        [one] => format!(
            "no bagit.txt; the bag is the folder inside it: {}",
            one.display()
        ),
        several => format!(
            "no bagit.txt; these folders inside it are bags: {}",
            several
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The checks every bag passes first: a directory with a valid `bagit.txt` and a `data/`
/// directory, neither a symbolic link out of the bag ([`Error::LinkEscapesBag`]). Returns
/// the bag boundary and the declared BagIt version.
/// The BagIt version `bagit.txt` declares, reading that file alone (no manifests): what
/// `deriva-bag info` shows without parsing a large bag's tag files.
pub fn bagit_version(root: &Path) -> Result<BagItVersion> {
    read_bagit_txt(root).map(|(_, version)| version)
}

fn read_bagit_txt(root: &Path) -> Result<(BagRoot, BagItVersion)> {
    let not_a_bag = |detail: &str| Error::NotABag {
        path: root.to_path_buf(),
        detail: detail.to_string(),
    };
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(not_a_bag(
                "a file that is not a bag archive: give a bag directory, or an archive named \
                 .zip, .tar.gz or .tgz",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_a_bag("no such file or directory"))
        }
        Err(e) => return Err(Error::io(root, e)),
    }
    let bag_root = BagRoot::new(root)?;
    let bagit_path = root.join("bagit.txt");
    let Some(bagit_bytes) = bag_root.read("bagit.txt", root)? else {
        return Err(not_a_bag(&no_bagit_txt(root)));
    };
    let version = tagfile::parse_bagit_txt(&bagit_bytes, &bagit_path)?;
    match bag_root.resolve("data", root)? {
        InBag::Inside(data) if data.is_dir() => {}
        InBag::Outside { path, target } => return Err(Error::LinkEscapesBag { path, target }),
        _ => return Err(not_a_bag("no data/ directory")),
    }
    Ok((bag_root, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_bag(dir: &Path) {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            dir.join("bagit.txt"),
            "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("manifest-md5.txt"),
            "d41d8cd98f00b204e9800998ecf8427e  data/a.txt\n",
        )
        .unwrap();
    }

    #[test]
    fn cache_key_memo_is_reused_until_a_tag_file_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let (bag, memo) = (tmp.path().join("bag"), tmp.path().join("keys"));
        tiny_bag(&bag);
        let hashed = BagItFiles::cache_key_of(&bag).unwrap();
        let zero = std::time::Duration::ZERO;
        assert_eq!(cache_key_memo_settled(&bag, &memo, zero).unwrap(), hashed);
        let memos: Vec<PathBuf> = std::fs::read_dir(&memo)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(memos.len(), 1);
        assert_eq!(std::fs::read_to_string(&memos[0]).unwrap(), hashed);
        // The memo, not the manifests, answers while the tag files are unchanged.
        let planted = "ab".repeat(32);
        std::fs::write(&memos[0], &planted).unwrap();
        assert_eq!(cache_key_memo_settled(&bag, &memo, zero).unwrap(), planted);
        // Same length, other digest: a new ctime (past the timestamp granularity) misses it.
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(
            bag.join("manifest-md5.txt"),
            "e41d8cd98f00b204e9800998ecf8427e  data/a.txt\n",
        )
        .unwrap();
        let changed = BagItFiles::cache_key_of(&bag).unwrap();
        assert_ne!(changed, hashed);
        assert_eq!(cache_key_memo_settled(&bag, &memo, zero).unwrap(), changed);
    }

    #[test]
    fn tag_files_younger_than_the_settle_time_are_not_remembered() {
        let tmp = tempfile::tempdir().unwrap();
        let (bag, memo) = (tmp.path().join("bag"), tmp.path().join("keys"));
        tiny_bag(&bag);
        let key = BagItFiles::cache_key_memo(&bag, &memo).unwrap();
        assert_eq!(key, BagItFiles::cache_key_of(&bag).unwrap());
        assert!(!memo.exists(), "a memo was written for files just created");
    }

    #[test]
    fn streamed_cache_key_equals_the_key_of_the_parsed_files() {
        let tmp = tempfile::tempdir().unwrap();
        let bag = tmp.path();
        tiny_bag(bag);
        // Larger than the read buffer, so the stream takes several reads.
        let mut fetch = String::new();
        for i in 0..20_000 {
            fetch.push_str(&format!(
                "https://example.org/{i}.jpg\t10\tdata/asset/{i}.jpg\n"
            ));
        }
        std::fs::write(bag.join("fetch.txt"), fetch).unwrap();
        assert_eq!(
            BagItFiles::cache_key_of(bag).unwrap(),
            BagItFiles::read(bag).unwrap().cache_key()
        );
    }
}
