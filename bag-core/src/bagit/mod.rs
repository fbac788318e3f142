//! BagIt: the tag files of a bag (`bagit.txt`, `bag-info.txt`, payload and tag manifests,
//! `fetch.txt`) and the four validation modes.

use std::path::{Path, PathBuf};

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
}
