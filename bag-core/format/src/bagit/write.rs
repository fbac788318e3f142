//! Writing the BagIt tag files of a bag whose payload is already in `data/`.
//!
//! [`BagWriter`] produces what bdbag produces for a client-built dataset
//! bag: `bagit.txt`, `bag-info.txt` (sorted keys, `Payload-Oxum`
//! counting local *and* remote files), payload manifests, `fetch.txt` and tag manifests.
//! Remote files (the assets listed in `fetch.txt`) are described by [`RemoteFile`]s; a copy
//! that already sits in `data/` (a materialized bag) is checked against its declared length
//! and md5 but is otherwise treated exactly like a remote file, so a materialized bag and
//! its metadata-only twin carry identical tag files, as bdbag's do.
//!
//! ```
//! use deriva_bag_format::bagit::write::{BagWriter, RemoteFile};
//! let dir = tempfile::tempdir().unwrap();
//! let bag = dir.path().join("Dataset_1-D000");
//! std::fs::create_dir_all(bag.join("data/demo")).unwrap();
//! std::fs::write(bag.join("data/demo/Subject.csv"), "RID,Name\n1-S001,Thing1\n").unwrap();
//! let summary = BagWriter::new()
//!     .remote_file(RemoteFile {
//!         url: "https://example.org/hatrac/Image/abc.x.jpg:1".into(),
//!         length: 10,
//!         path: "data/asset/1-I001/Image/x%y.jpg".into(),
//!         md5: "0123456789abcdef0123456789abcdef".into(),
//!         sha256: None,
//!     })
//!     .write(&bag)
//!     .unwrap();
//! assert_eq!(summary.payload_oxum(), "33.2");
//! let fetch = std::fs::read_to_string(bag.join("fetch.txt")).unwrap();
//! assert_eq!(fetch, "https://example.org/hatrac/Image/abc.x.jpg:1\t10\tdata/asset/1-I001/Image/x%25y.jpg\n");
//! let md5 = std::fs::read_to_string(bag.join("manifest-md5.txt")).unwrap();
//! assert!(md5.ends_with("0123456789abcdef0123456789abcdef  data/asset/1-I001/Image/x%y.jpg\n"));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use rayon::prelude::*;
use sha2::Sha256;

use super::{Algorithm, BagItVersion};
use crate::{Error, Result};

/// The deriva-bag BagIt profile that client-built bags declare.
pub const DERIVA_BAG_PROFILE: &str = "https://raw.githubusercontent.com/informatics-isi-edu/deriva-py/deriva-ml/deriva/bag/profiles/deriva-bag-profile.json";

/// A payload file that lives elsewhere and is listed in `fetch.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Absolute URL, written as given (already escaped; an existing `%` is not re-escaped).
    pub url: String,
    /// Byte count (the catalog's `Length`).
    pub length: u64,
    /// Bag-relative, *unescaped* path, e.g. `data/asset/1-I002/Image/retina 002.jpg`.
    pub path: String,
    /// Lowercase hex md5 (the catalog's `MD5`).
    pub md5: String,
    /// Lowercase hex sha256, when known; catalogs supply none, so usually `None`.
    pub sha256: Option<String>,
}

/// What [`BagWriter::write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagSummary {
    /// Total payload bytes, local plus remote.
    pub payload_bytes: u64,
    /// Number of payload files, local plus remote.
    pub payload_files: u64,
    /// Number of local payload files hashed (remote copies on disk excluded).
    pub local_files: usize,
    /// Number of `fetch.txt` entries.
    pub remote_files: usize,
}

impl BagSummary {
    /// The `Payload-Oxum` value, `<bytes>.<files>`.
    pub fn payload_oxum(&self) -> String {
        format!("{}.{}", self.payload_bytes, self.payload_files)
    }
}

/// Writes the tag files of a bag directory whose `data/` payload is already in place.
#[derive(Debug, Clone)]
pub struct BagWriter {
    version: BagItVersion,
    algorithms: BTreeSet<Algorithm>,
    info: BTreeMap<String, String>,
    remote: Vec<RemoteFile>,
}

impl Default for BagWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl BagWriter {
    /// BagIt 0.97, md5 and sha256 manifests, the deriva-bag profile and agent in bag-info.
    pub fn new() -> Self {
        let mut info = BTreeMap::new();
        info.insert(
            "Bag-Software-Agent".to_string(),
            format!("deriva-bag {}", env!("CARGO_PKG_VERSION")),
        );
        info.insert(
            "BagIt-Profile-Identifier".to_string(),
            DERIVA_BAG_PROFILE.to_string(),
        );
        BagWriter {
            version: BagItVersion::V0_97,
            algorithms: [Algorithm::Md5, Algorithm::Sha256].into_iter().collect(),
            info,
            remote: Vec::new(),
        }
    }

    /// The `BagIt-Version` to declare.
    pub fn version(mut self, version: BagItVersion) -> Self {
        self.version = version;
        self
    }

    /// The manifest algorithms to write (md5 is always written: remote entries need it).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.iter().copied().collect();
        self.algorithms.insert(Algorithm::Md5);
        self
    }

    /// Adds or replaces a `bag-info.txt` entry. `Payload-Oxum` is always computed.
    pub fn info(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.info.insert(key.into(), value.into());
        self
    }

    /// Adds one remote file.
    pub fn remote_file(mut self, file: RemoteFile) -> Self {
        self.remote.push(file);
        self
    }

    /// Adds remote files.
    pub fn remote_files(mut self, files: impl IntoIterator<Item = RemoteFile>) -> Self {
        self.remote.extend(files);
        self
    }

    /// Writes every tag file into `bag_dir`, replacing old ones, and returns the payload size.
    ///
    /// Local payload files are hashed in parallel. A remote file already present on disk must
    /// match its declared length and md5.
    pub fn write(&self, bag_dir: &Path) -> Result<BagSummary> {
        let data = bag_dir.join("data");
        if !data.is_dir() {
            return Err(Error::NotABag {
                path: bag_dir.to_path_buf(),
                detail: "no data/ directory to bag".to_string(),
            });
        }
        let mut remote = self.remote.clone();
        remote.sort_by(|a, b| a.path.cmp(&b.path));
        let mut seen = BTreeSet::new();
        for file in &remote {
            check_relative(bag_dir, &file.path)?;
            if !seen.insert(file.path.as_str()) {
                return Err(Error::Write {
                    path: bag_dir.join("fetch.txt"),
                    detail: format!("remote path {:?} listed twice", file.path),
                });
            }
        }

        let mut local_paths = Vec::new();
        walk_sorted(bag_dir, &data, None, &mut local_paths)?;
        let (on_disk_remote, local_paths): (Vec<String>, Vec<String>) = local_paths
            .into_iter()
            .partition(|p| seen.contains(p.as_str()));
        let want_sha256 = self.algorithms.contains(&Algorithm::Sha256);
        let local: Vec<FileDigests> = local_paths
            .par_iter()
            .map(|rel| hash_file(&bag_dir.join(rel), rel, want_sha256))
            .collect::<Result<_>>()?;
        let remote_by_path: BTreeMap<&str, &RemoteFile> =
            remote.iter().map(|f| (f.path.as_str(), f)).collect();
        on_disk_remote.par_iter().try_for_each(|rel| {
            let actual = hash_file(&bag_dir.join(rel), rel, false)?;
            match remote_by_path.get(rel.as_str()) {
                Some(declared)
                    if declared.length == actual.length
                        && declared.md5.eq_ignore_ascii_case(&actual.md5) =>
                {
                    Ok(())
                }
                Some(declared) => Err(Error::Write {
                    path: bag_dir.join(rel),
                    detail: format!(
                        "on-disk copy has {} bytes, md5 {}; fetch entry declares {} bytes, md5 {}",
                        actual.length, actual.md5, declared.length, declared.md5
                    ),
                }),
                None => Ok(()),
            }
        })?;

        let summary = BagSummary {
            payload_bytes: local.iter().map(|f| f.length).sum::<u64>()
                + remote.iter().map(|f| f.length).sum::<u64>(),
            payload_files: (local.len() + remote.len()) as u64,
            local_files: local.len(),
            remote_files: remote.len(),
        };

        let version = match self.version {
            BagItVersion::V0_97 => "0.97",
            BagItVersion::V1_0 => "1.0",
        };
        write_text(
            &bag_dir.join("bagit.txt"),
            &format!("BagIt-Version: {version}\nTag-File-Character-Encoding: UTF-8\n"),
        )?;
        let mut info = self.info.clone();
        info.insert("Payload-Oxum".to_string(), summary.payload_oxum());
        let mut text = String::new();
        for (key, value) in &info {
            // bdbag strips CR/LF from values so each entry stays on one line.
            let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            text.push_str(&format!("{key}: {value}\n"));
        }
        write_text(&bag_dir.join("bag-info.txt"), &text)?;

        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let path = bag_dir.join(manifest_name(algorithm, false));
            if !self.algorithms.contains(&algorithm) {
                remove_if_present(&path)?;
                continue;
            }
            let mut text = String::new();
            for file in &local {
                let digest = match algorithm {
                    Algorithm::Md5 => file.md5.as_str(),
                    Algorithm::Sha256 => file.sha256.as_deref().unwrap_or_default(),
                };
                text.push_str(&format!("{digest}  {}\n", escape_manifest_path(&file.path)));
            }
            for file in &remote {
                let digest = match algorithm {
                    Algorithm::Md5 => Some(file.md5.to_ascii_lowercase()),
                    Algorithm::Sha256 => file.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
                };
                if let Some(digest) = digest {
                    text.push_str(&format!("{digest}  {}\n", escape_manifest_path(&file.path)));
                }
            }
            write_text(&path, &text)?;
        }

        let fetch_path = bag_dir.join("fetch.txt");
        if remote.is_empty() {
            remove_if_present(&fetch_path)?;
        } else {
            let mut text = String::new();
            for file in &remote {
                text.push_str(&format!(
                    "{}\t{}\t{}\n",
                    file.url,
                    file.length,
                    escape_fetch_path(&file.path)
                ));
            }
            write_text(&fetch_path, &text)?;
        }

        self.write_tag_manifests(bag_dir)?;
        tracing::debug!(bag = %bag_dir.display(), oxum = %summary.payload_oxum(), "wrote bag tag files");
        Ok(summary)
    }

    fn write_tag_manifests(&self, bag_dir: &Path) -> Result<()> {
        // Every non-payload file except the tag manifests themselves (bagit `_find_tag_files`).
        // The payload is not walked again: at millions of files that is minutes of stat calls.
        let mut tag_files = Vec::new();
        walk_sorted(
            bag_dir,
            bag_dir,
            Some(&bag_dir.join("data")),
            &mut tag_files,
        )?;
        tag_files.retain(|p| {
            let own_tag_manifest = p.starts_with("tagmanifest-") && !p.contains('/');
            !own_tag_manifest
        });
        let digests: Vec<FileDigests> = tag_files
            .par_iter()
            .map(|rel| hash_file(&bag_dir.join(rel), rel, true))
            .collect::<Result<_>>()?;
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let path = bag_dir.join(manifest_name(algorithm, true));
            if !self.algorithms.contains(&algorithm) {
                remove_if_present(&path)?;
                continue;
            }
            let mut text = String::new();
            for file in &digests {
                let digest = match algorithm {
                    Algorithm::Md5 => file.md5.as_str(),
                    Algorithm::Sha256 => file.sha256.as_deref().unwrap_or_default(),
                };
                text.push_str(&format!("{digest} {}\n", escape_manifest_path(&file.path)));
            }
            write_text(&path, &text)?;
        }
        Ok(())
    }
}

/// `manifest-md5.txt`, `tagmanifest-sha256.txt`, …
fn manifest_name(algorithm: Algorithm, tag: bool) -> String {
    let alg = match algorithm {
        Algorithm::Md5 => "md5",
        Algorithm::Sha256 => "sha256",
    };
    if tag {
        format!("tagmanifest-{alg}.txt")
    } else {
        format!("manifest-{alg}.txt")
    }
}

/// Manifest paths: only CR and LF are encoded (bagit `_encode_filename`).
pub fn escape_manifest_path(path: &str) -> String {
    path.replace('\r', "%0D").replace('\n', "%0A")
}

/// fetch.txt PATHs: `%`, CR and LF are encoded; spaces and non-ASCII stay raw (bdbag
/// `escape_uri(path, encode_whitespace=False)`).
pub fn escape_fetch_path(path: &str) -> String {
    path.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

struct FileDigests {
    path: String,
    length: u64,
    md5: String,
    sha256: Option<String>,
}

fn hash_file(abs: &Path, rel: &str, want_sha256: bool) -> Result<FileDigests> {
    let mut file = fs::File::open(abs).map_err(|e| Error::io(abs, e))?;
    let mut md5 = Md5::new();
    let mut sha = want_sha256.then(Sha256::new);
    let mut buf = vec![0u8; 256 * 1024];
    let mut length = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(abs, e))?;
        if n == 0 {
            break;
        }
        length += n as u64;
        md5.update(&buf[..n]);
        if let Some(sha) = sha.as_mut() {
            sha.update(&buf[..n]);
        }
    }
    Ok(FileDigests {
        path: rel.to_string(),
        length,
        md5: hex::encode(md5.finalize()),
        sha256: sha.map(|s| hex::encode(s.finalize())),
    })
}

/// Collects the `/`-separated paths (relative to `root`) of every file under `dir`, sorted,
/// leaving out the directory `skip`.
fn walk_sorted(root: &Path, dir: &Path, skip: Option<&Path>, out: &mut Vec<String>) -> Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    for path in entries {
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            if skip != Some(path.as_path()) {
                walk_sorted(root, &path, skip, out)?;
            }
        } else if meta.is_file() {
            out.push(relative_slash_path(root, &path)?);
        } else {
            // bagit refuses symlinks and specials in the payload; so do we.
            return Err(Error::Write {
                path,
                detail: "not a regular file or directory".to_string(),
            });
        }
    }
    Ok(())
}

fn relative_slash_path(root: &Path, path: &Path) -> Result<String> {
    let rel = path.strip_prefix(root).map_err(|_| Error::Write {
        path: path.to_path_buf(),
        detail: format!("not inside {}", root.display()),
    })?;
    let mut parts = Vec::new();
    for part in rel.components() {
        let text = part.as_os_str().to_str().ok_or_else(|| Error::Write {
            path: path.to_path_buf(),
            detail: "file name is not valid UTF-8".to_string(),
        })?;
        parts.push(text.to_string());
    }
    Ok(parts.join("/"))
}

fn check_relative(bag_dir: &Path, path: &str) -> Result<()> {
    let bad = !path.starts_with("data/")
        || path.contains('\0')
        || path.contains('\\')
        || path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..");
    if bad {
        return Err(Error::UnsafePath {
            source_file: bag_dir.join("fetch.txt"),
            path: path.to_string(),
        });
    }
    Ok(())
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5_hex(bytes: &[u8]) -> String {
        hex::encode(Md5::digest(bytes))
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn bag_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let bag = dir.path().join("Dataset_1-D000");
        for (rel, bytes) in files {
            let path = bag.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
        (dir, bag)
    }

    fn read(bag: &Path, name: &str) -> String {
        fs::read_to_string(bag.join(name)).unwrap()
    }

    #[test]
    fn manifests_list_local_files_sorted_with_two_spaces() {
        let (_dir, bag) = bag_with(&[
            ("data/schema.json", b"{}"),
            ("data/demo/Subject.csv", b"RID\n1-S001\n"),
            ("data/deriva-ml/Dataset.csv", b"RID\n1-D000\n"),
        ]);
        let summary = BagWriter::new().write(&bag).unwrap();
        assert_eq!(summary.payload_oxum(), "24.3");
        assert_eq!(
            read(&bag, "manifest-md5.txt"),
            format!(
                "{}  data/demo/Subject.csv\n{}  data/deriva-ml/Dataset.csv\n{}  data/schema.json\n",
                md5_hex(b"RID\n1-S001\n"),
                md5_hex(b"RID\n1-D000\n"),
                md5_hex(b"{}")
            )
        );
        assert_eq!(
            read(&bag, "manifest-sha256.txt"),
            format!(
                "{}  data/demo/Subject.csv\n{}  data/deriva-ml/Dataset.csv\n{}  data/schema.json\n",
                sha256_hex(b"RID\n1-S001\n"),
                sha256_hex(b"RID\n1-D000\n"),
                sha256_hex(b"{}")
            )
        );
        assert!(!bag.join("fetch.txt").exists());
    }

    #[test]
    fn bagit_and_bag_info_are_sorted_and_carry_the_profile() {
        let (_dir, bag) = bag_with(&[("data/schema.json", b"{}")]);
        BagWriter::new()
            .info("Internal-Sender-Identifier", "deriva@example.org\r\n")
            .write(&bag)
            .unwrap();
        assert_eq!(
            read(&bag, "bagit.txt"),
            "BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n"
        );
        assert_eq!(
            read(&bag, "bag-info.txt"),
            format!(
                "Bag-Software-Agent: deriva-bag {}\nBagIt-Profile-Identifier: {DERIVA_BAG_PROFILE}\n\
                 Internal-Sender-Identifier: deriva@example.org\nPayload-Oxum: 2.1\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        BagWriter::new()
            .version(BagItVersion::V1_0)
            .write(&bag)
            .unwrap();
        assert!(read(&bag, "bagit.txt").starts_with("BagIt-Version: 1.0\n"));
    }

    #[test]
    fn remote_files_count_in_oxum_and_md5_but_not_sha256_without_digest() {
        let (_dir, bag) = bag_with(&[("data/schema.json", b"{}")]);
        let remote = vec![
            RemoteFile {
                url: "https://example.org/hatrac/Image/b.jpg:2".into(),
                length: 100,
                path: "data/asset/1-I002/Image/retina 002.jpg".into(),
                md5: "BB".repeat(16),
                sha256: None,
            },
            RemoteFile {
                url: "https://example.org/hatrac/Image/a.jpg:1".into(),
                length: 50,
                path: "data/asset/1-I001/Image/line\nbreak%.jpg".into(),
                md5: "aa".repeat(16),
                sha256: Some("cc".repeat(32)),
            },
        ];
        let summary = BagWriter::new().remote_files(remote).write(&bag).unwrap();
        assert_eq!(summary.payload_oxum(), "152.3");
        assert_eq!(
            read(&bag, "fetch.txt"),
            "https://example.org/hatrac/Image/a.jpg:1\t50\tdata/asset/1-I001/Image/line%0Abreak%25.jpg\n\
             https://example.org/hatrac/Image/b.jpg:2\t100\tdata/asset/1-I002/Image/retina 002.jpg\n"
        );
        let md5 = read(&bag, "manifest-md5.txt");
        assert!(md5.contains(&format!(
            "{}  data/asset/1-I001/Image/line%0Abreak%.jpg\n",
            "aa".repeat(16)
        )));
        assert!(md5.contains(&format!(
            "{}  data/asset/1-I002/Image/retina 002.jpg\n",
            "bb".repeat(16)
        )));
        let sha = read(&bag, "manifest-sha256.txt");
        assert_eq!(sha.lines().count(), 2);
        assert!(!sha.contains("retina 002"));
    }

    #[test]
    fn tag_manifests_cover_tag_files_but_not_themselves() {
        let (_dir, bag) = bag_with(&[("data/schema.json", b"{}"), ("metadata/extra.json", b"[]")]);
        BagWriter::new()
            .remote_file(RemoteFile {
                url: "https://example.org/x:1".into(),
                length: 1,
                path: "data/asset/1-I001/Image/x".into(),
                md5: "00".repeat(16),
                sha256: None,
            })
            .write(&bag)
            .unwrap();
        let tag = read(&bag, "tagmanifest-md5.txt");
        let names: Vec<&str> = tag.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(
            names,
            [
                "bag-info.txt",
                "bagit.txt",
                "fetch.txt",
                "manifest-md5.txt",
                "manifest-sha256.txt",
                "metadata/extra.json"
            ]
        );
        let bag_info = fs::read(bag.join("bag-info.txt")).unwrap();
        assert!(tag.starts_with(&format!("{} bag-info.txt\n", md5_hex(&bag_info))));
        let tag_sha = read(&bag, "tagmanifest-sha256.txt");
        assert!(tag_sha.starts_with(&format!("{} bag-info.txt\n", sha256_hex(&bag_info))));
    }

    #[test]
    fn materialized_copy_of_a_remote_file_is_checked_not_rehashed_into_sha256() {
        let bytes = b"image bytes";
        let (_dir, bag) = bag_with(&[
            ("data/schema.json", b"{}"),
            ("data/asset/1-I001/Image/a.jpg", bytes),
        ]);
        let file = RemoteFile {
            url: "https://example.org/a:1".into(),
            length: bytes.len() as u64,
            path: "data/asset/1-I001/Image/a.jpg".into(),
            md5: md5_hex(bytes),
            sha256: None,
        };
        let summary = BagWriter::new()
            .remote_file(file.clone())
            .write(&bag)
            .unwrap();
        assert_eq!(summary.payload_oxum(), "13.2");
        assert_eq!(summary.local_files, 1);
        assert_eq!(read(&bag, "manifest-sha256.txt").lines().count(), 1);

        let wrong = RemoteFile {
            md5: "ff".repeat(16),
            ..file
        };
        let err = BagWriter::new().remote_file(wrong).write(&bag).unwrap_err();
        assert!(err.to_string().contains("a.jpg"), "{err}");
    }

    #[test]
    fn remote_paths_outside_data_are_rejected() {
        let (_dir, bag) = bag_with(&[("data/schema.json", b"{}")]);
        for path in ["data/../x", "/etc/passwd", "bagit.txt", "data/a//b"] {
            let err = BagWriter::new()
                .remote_file(RemoteFile {
                    url: "https://example.org/x".into(),
                    length: 1,
                    path: path.into(),
                    md5: "00".repeat(16),
                    sha256: None,
                })
                .write(&bag)
                .unwrap_err();
            assert!(matches!(err, Error::UnsafePath { .. }), "{path}: {err}");
        }
    }

    #[test]
    fn md5_only_writer_removes_stale_sha256_manifests() {
        let (_dir, bag) = bag_with(&[("data/schema.json", b"{}")]);
        BagWriter::new().write(&bag).unwrap();
        assert!(bag.join("manifest-sha256.txt").exists());
        BagWriter::new()
            .algorithms(&[Algorithm::Md5])
            .write(&bag)
            .unwrap();
        assert!(!bag.join("manifest-sha256.txt").exists());
        assert!(!bag.join("tagmanifest-sha256.txt").exists());
        assert_eq!(read(&bag, "tagmanifest-md5.txt").lines().count(), 3);
    }
}
