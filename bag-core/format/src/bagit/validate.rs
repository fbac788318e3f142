//! The four validation modes of bdbag, over an already parsed [`BagItFiles`].
//!
//! - **Structure**: what is on disk is accounted for. Every tag file a tag manifest lists
//!   exists; every file under `data/` is listed in every payload manifest, or is a
//!   `fetch.txt` file (bdbag lists remote files in `manifest-md5.txt` only, so a fetched
//!   file may be missing from `manifest-sha256.txt`); no symlink under `data/` leads out of
//!   the bag. Remote files not yet fetched are skipped.
//! - **Completeness**: Structure, plus what is declared is accounted for: every payload
//!   manifest entry is on disk or in `fetch.txt`, and every `fetch.txt` entry is in a
//!   payload manifest.
//! - **Fast**: Structure, plus `Payload-Oxum` equals the bytes and file count under
//!   `data/`. It fails on a holey bag, as bdbag's does, because Payload-Oxum counts remote
//!   files too.
//! - **Full**: Completeness without the `fetch.txt` allowance (an absent file is
//!   "missing-file" even if it could be fetched), plus every digest of every present
//!   payload and tag file recomputed. Each file is read once, feeding md5 and sha256
//!   together, files in parallel. Unlike bagit-python we do not also check Payload-Oxum
//!   here: a full pass already reports each absent, extra or altered file by name.
//!
//! Findings are [`ValidationIssue`]s in a [`ValidationReport`]; only I/O failures are
//! errors.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use md5::Md5;
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::paths::InBag;
use super::{Algorithm, BagItFiles};
use crate::{Error, Result};

/// Read buffer for hashing: large enough that syscalls do not dominate on big images.
const HASH_BUFFER: usize = 1 << 20;

/// How thoroughly [`BagItFiles::validate`] checks a bag (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValidationMode {
    /// Files on disk are listed; tag files exist. Remote files are skipped.
    Structure,
    /// Structure, plus every manifest entry is on disk or in fetch.txt.
    Completeness,
    /// Structure, plus Payload-Oxum matches the payload on disk.
    Fast,
    /// Completeness with every file present, plus every digest recomputed.
    Full,
}

impl ValidationMode {
    /// The lowercase name: `structure`, `completeness`, `fast`, `full`.
    pub fn name(self) -> &'static str {
        match self {
            ValidationMode::Structure => "structure",
            ValidationMode::Completeness => "completeness",
            ValidationMode::Fast => "fast",
            ValidationMode::Full => "full",
        }
    }
}

impl FromStr for ValidationMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            ValidationMode::Structure,
            ValidationMode::Completeness,
            ValidationMode::Fast,
            ValidationMode::Full,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            format!(
                "unknown validation mode {s:?} (expected structure, completeness, fast or full)"
            )
        })
    }
}

impl std::fmt::Display for ValidationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of a validation: `valid` is true exactly when `errors` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationReport {
    /// No issue was found.
    pub valid: bool,
    /// Every issue, sorted by path then kind.
    pub errors: Vec<ValidationIssue>,
}

/// One finding of a validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationIssue {
    /// What is wrong: `missing-tag-file`, `missing-file`, `unexpected-file`,
    /// `missing-manifest-entry`, `fetch-not-in-manifest`, `unsafe-path`, `missing-oxum`,
    /// `invalid-oxum`, `oxum-mismatch`, `checksum-mismatch` or `tagmanifest-mismatch`; from
    /// the index of a DerivaML bag (`deriva_bag_core::DatasetBag::index_findings`) also
    /// `duplicate-rid` (a row repeats the RID of an earlier row of its table with other
    /// values; the earlier row is the one served).
    pub kind: String,
    /// The bag-relative path concerned (`bag-info.txt` for Payload-Oxum issues).
    pub path: String,
    /// A human-readable explanation, with expected and found values where there are some.
    pub detail: String,
}

impl ValidationIssue {
    fn new(kind: &str, path: &str, detail: String) -> Self {
        ValidationIssue {
            kind: kind.to_string(),
            path: path.to_string(),
            detail,
        }
    }

    /// `duplicate-rid`: line `line` of `file` repeats the RID `rid` of table `table` that
    /// line `first_line` of `first_file` already had, with other values.
    #[doc(hidden)]
    pub fn duplicate_rid(
        file: &str,
        line: u64,
        table: &str,
        rid: &str,
        first_file: &str,
        first_line: u64,
    ) -> Self {
        ValidationIssue::new(
            "duplicate-rid",
            file,
            format!(
                "line {line}: RID {rid} of table {table} has other values than {first_file} \
                 line {first_line}, whose row is used"
            ),
        )
    }
}

impl ValidationReport {
    /// Adds findings from beyond the BagIt checks (such as
    /// `deriva_bag_core::DatasetBag::index_findings`), keeping the
    /// report sorted by path then kind and `valid` true exactly when there is no finding.
    ///
    /// ```
    /// use deriva_bag_format::bagit::{ValidationIssue, ValidationReport};
    /// let mut report = ValidationReport { valid: true, errors: vec![] };
    /// report.extend([ValidationIssue {
    ///     kind: "duplicate-rid".into(),
    ///     path: "data/demo/Image.csv".into(),
    ///     detail: "line 3: …".into(),
    /// }]);
    /// assert!(!report.valid);
    /// ```
    pub fn extend(&mut self, issues: impl IntoIterator<Item = ValidationIssue>) {
        self.errors.extend(issues);
        sort_issues(&mut self.errors);
        self.valid = self.errors.is_empty();
    }
}

/// Sorted by path, kind, then detail; duplicates dropped.
fn sort_issues(issues: &mut Vec<ValidationIssue>) {
    issues.sort_by(|a, b| (&a.path, &a.kind, &a.detail).cmp(&(&b.path, &b.kind, &b.detail)));
    issues.dedup();
}

/// Progress callback: `(bytes hashed so far, bytes to hash)`; called from worker threads.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

impl BagItFiles {
    /// Validates the bag in `mode`; `progress` is called as payload bytes are hashed (Full
    /// mode only).
    ///
    /// Returns `Err` only for I/O failures other than an absent file; every problem with the
    /// bag itself is a [`ValidationIssue`].
    pub fn validate(
        &self,
        mode: ValidationMode,
        progress: Option<Progress<'_>>,
    ) -> Result<ValidationReport> {
        let payload = PayloadInventory::walk(&self.root)?;
        let mut issues = payload.issues.clone();
        self.check_structure(&payload, &mut issues);
        match mode {
            ValidationMode::Structure => {}
            ValidationMode::Completeness => self.check_completeness(&payload, true, &mut issues),
            ValidationMode::Fast => self.check_oxum(&payload, &mut issues),
            ValidationMode::Full => {
                self.check_completeness(&payload, false, &mut issues);
                self.check_digests(&payload, progress, &mut issues)?;
            }
        }
        sort_issues(&mut issues);
        tracing::debug!(
            bag = %self.root.display(),
            mode = mode.name(),
            issues = issues.len(),
            "validated bag"
        );
        Ok(ValidationReport {
            valid: issues.is_empty(),
            errors: issues,
        })
    }

    fn fetch_paths(&self) -> HashSet<&str> {
        self.fetch.iter().map(|f| f.path.as_str()).collect()
    }

    fn check_structure(&self, payload: &PayloadInventory, issues: &mut Vec<ValidationIssue>) {
        let mut tag_paths: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
        for m in &self.tag_manifests {
            for e in &m.entries {
                tag_paths
                    .entry(&e.path)
                    .or_default()
                    .push(m.algorithm.name());
            }
        }
        for (path, algs) in tag_paths {
            let names: Vec<String> = algs
                .iter()
                .map(|a| format!("tagmanifest-{a}.txt"))
                .collect();
            let listed_in = self.root.join(&names[0]);
            match self.bag_root().resolve_file(path, &listed_in) {
                Ok(InBag::Inside(_)) => {}
                Ok(InBag::Outside { target, .. }) => issues.push(ValidationIssue::new(
                    "unsafe-path",
                    path,
                    format!("symlink to {} outside the bag", target.display()),
                )),
                _ => issues.push(ValidationIssue::new(
                    "missing-tag-file",
                    path,
                    format!("listed in {} but absent", names.join(", ")),
                )),
            }
        }

        let fetch = self.fetch_paths();
        let listed: Vec<HashSet<&str>> = self
            .manifests
            .iter()
            .map(|m| m.entries.iter().map(|e| e.path.as_str()).collect())
            .collect();
        for path in payload.files.keys() {
            let in_fetch = fetch.contains(path.as_str());
            let missing_from: Vec<String> = self
                .manifests
                .iter()
                .zip(&listed)
                .filter(|(_, set)| !set.contains(path.as_str()))
                .map(|(m, _)| format!("manifest-{}.txt", m.algorithm.name()))
                .collect();
            if missing_from.len() == self.manifests.len() && !in_fetch {
                issues.push(ValidationIssue::new(
                    "unexpected-file",
                    path,
                    "present under data/ but listed in no payload manifest and not in fetch.txt"
                        .into(),
                ));
            } else if !missing_from.is_empty() && !in_fetch {
                issues.push(ValidationIssue::new(
                    "missing-manifest-entry",
                    path,
                    format!("present but not listed in {}", missing_from.join(", ")),
                ));
            }
        }
    }

    /// `allow_remote`: an absent file that fetch.txt lists is fine (Completeness) or is
    /// "missing-file" (Full).
    fn check_completeness(
        &self,
        payload: &PayloadInventory,
        allow_remote: bool,
        issues: &mut Vec<ValidationIssue>,
    ) {
        let fetch = self.fetch_paths();
        let mut declared: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
        for m in &self.manifests {
            for e in &m.entries {
                declared
                    .entry(&e.path)
                    .or_default()
                    .push(m.algorithm.name());
            }
        }
        for (path, algs) in &declared {
            if payload.files.contains_key(*path) || payload.unsafe_links.contains(*path) {
                continue;
            }
            let in_fetch = fetch.contains(path);
            if in_fetch && allow_remote {
                continue;
            }
            let names: Vec<String> = algs.iter().map(|a| format!("manifest-{a}.txt")).collect();
            let detail = if in_fetch {
                format!(
                    "listed in {} and fetch.txt but not fetched",
                    names.join(", ")
                )
            } else {
                format!(
                    "listed in {} but absent and not in fetch.txt",
                    names.join(", ")
                )
            };
            issues.push(ValidationIssue::new("missing-file", path, detail));
        }
        for f in &self.fetch {
            if !declared.contains_key(f.path.as_str()) {
                issues.push(ValidationIssue::new(
                    "fetch-not-in-manifest",
                    &f.path,
                    format!("fetch.txt lists {} but no payload manifest does", f.url),
                ));
            }
        }
    }

    fn check_oxum(&self, payload: &PayloadInventory, issues: &mut Vec<ValidationIssue>) {
        let Some(value) = self.info_value("Payload-Oxum") else {
            issues.push(ValidationIssue::new(
                "missing-oxum",
                "bag-info.txt",
                "fast validation needs a Payload-Oxum line in bag-info.txt".into(),
            ));
            return;
        };
        let Some((bytes, files)) = super::tagfile::parse_oxum(value) else {
            issues.push(ValidationIssue::new(
                "invalid-oxum",
                "bag-info.txt",
                format!("Payload-Oxum {value:?} is not <bytes>.<files>"),
            ));
            return;
        };
        let found_files = payload.files.len() as u64;
        let found_bytes: u64 = payload.files.values().sum();
        if (bytes, files) != (found_bytes, found_files) {
            issues.push(ValidationIssue::new(
                "oxum-mismatch",
                "bag-info.txt",
                format!(
                    "Payload-Oxum {value}: expected {files} files and {bytes} bytes but found \
                     {found_files} files and {found_bytes} bytes under data/"
                ),
            ));
        }
    }

    fn check_digests(
        &self,
        payload: &PayloadInventory,
        progress: Option<Progress<'_>>,
        issues: &mut Vec<ValidationIssue>,
    ) -> Result<()> {
        // One job per present file, carrying every digest any manifest expects of it.
        let mut jobs: BTreeMap<&str, HashJob> = BTreeMap::new();
        for (manifests, is_tag) in [(&self.manifests, false), (&self.tag_manifests, true)] {
            for m in manifests {
                for e in &m.entries {
                    let size = if is_tag {
                        let inside = match self.bag_root().resolve(&e.path, &self.root) {
                            Ok(InBag::Inside(p)) => p,
                            // Absent and escaping tag files were reported by the structure
                            // check; a link out of the bag is never read.
                            _ => continue,
                        };
                        match std::fs::metadata(inside) {
                            Ok(md) if md.is_file() => md.len(),
                            _ => continue,
                        }
                    } else {
                        match payload.files.get(e.path.as_str()) {
                            Some(size) => *size,
                            None => continue,
                        }
                    };
                    jobs.entry(&e.path)
                        .or_insert_with(|| HashJob {
                            path: &e.path,
                            size,
                            is_tag,
                            expected: Vec::new(),
                        })
                        .expected
                        .push((m.algorithm, &e.digest));
                }
            }
        }
        let mut jobs: Vec<HashJob> = jobs.into_values().collect();
        // Biggest first, so one large file does not start last and run alone.
        jobs.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(b.path)));
        let total: u64 = jobs.iter().map(|j| j.size).sum();
        let done = AtomicU64::new(0);
        if let Some(cb) = progress {
            cb(0, total);
        }
        let results: Vec<Result<Vec<ValidationIssue>>> = jobs
            .par_iter()
            .map(|job| job.run(self, &done, total, progress))
            .collect();
        for r in results {
            issues.extend(r?);
        }
        Ok(())
    }
}

/// One file to hash and the digests its manifests expect. Borrows from the parsed manifests
/// (no copies of paths and digests: at 200k files those copies were tens of MiB).
struct HashJob<'a> {
    path: &'a str,
    size: u64,
    is_tag: bool,
    expected: Vec<(Algorithm, &'a str)>,
}

impl HashJob<'_> {
    fn run(
        &self,
        bag: &BagItFiles,
        done: &AtomicU64,
        total: u64,
        progress: Option<Progress<'_>>,
    ) -> Result<Vec<ValidationIssue>> {
        let want = |alg| self.expected.iter().any(|(a, _)| *a == alg);
        let mut md5 = want(Algorithm::Md5).then(Md5::new);
        let mut sha256 = want(Algorithm::Sha256).then(Sha256::new);
        let abs = bag.path_of(self.path);
        let Some(mut file) = bag.bag_root().open(self.path, &bag.root)? else {
            return Ok(vec![ValidationIssue::new(
                "missing-file",
                self.path,
                "disappeared during validation".into(),
            )]);
        };
        let mut buf = vec![0u8; HASH_BUFFER.min(self.size.max(1) as usize)];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&abs, e)),
            };
            if let Some(h) = md5.as_mut() {
                h.update(&buf[..n]);
            }
            if let Some(h) = sha256.as_mut() {
                h.update(&buf[..n]);
            }
            let now = done.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            if let Some(cb) = progress {
                cb(now, total);
            }
        }
        let found_md5 = md5.map(|h| hex::encode(h.finalize()));
        let found_sha256 = sha256.map(|h| hex::encode(h.finalize()));
        let mut issues = Vec::new();
        for (alg, expected) in &self.expected {
            let found = match alg {
                Algorithm::Md5 => found_md5.as_deref(),
                Algorithm::Sha256 => found_sha256.as_deref(),
            };
            if let Some(found) = found {
                if found != *expected {
                    let (kind, manifest) = if self.is_tag {
                        (
                            "tagmanifest-mismatch",
                            format!("tagmanifest-{}.txt", alg.name()),
                        )
                    } else {
                        ("checksum-mismatch", format!("manifest-{}.txt", alg.name()))
                    };
                    issues.push(ValidationIssue::new(
                        kind,
                        self.path,
                        format!(
                            "{} expected {expected} ({manifest}) but found {found}",
                            alg.name()
                        ),
                    ));
                }
            }
        }
        Ok(issues)
    }
}

/// The regular files under `data/`, by bag-relative path, with their sizes.
struct PayloadInventory {
    files: BTreeMap<String, u64>,
    /// Symlinks under `data/` whose target lies outside the bag (reported, never read).
    unsafe_links: BTreeSet<String>,
    issues: Vec<ValidationIssue>,
}

impl PayloadInventory {
    fn walk(root: &Path) -> Result<PayloadInventory> {
        let canonical_root = root.canonicalize().map_err(|e| Error::io(root, e))?;
        let mut inv = PayloadInventory {
            files: BTreeMap::new(),
            unsafe_links: BTreeSet::new(),
            issues: Vec::new(),
        };
        let mut stack: Vec<(PathBuf, String)> = vec![(root.join("data"), "data".to_string())];
        // Directories already entered (by canonical path), so a symlink loop ends.
        let mut seen_dirs: HashSet<PathBuf> = HashSet::new();
        while let Some((dir, rel)) = stack.pop() {
            if let Ok(c) = dir.canonicalize() {
                if !seen_dirs.insert(c) {
                    continue;
                }
            }
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let child_rel = format!("{rel}/{name}");
                let path = entry.path();
                let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
                if ft.is_symlink() {
                    match path.canonicalize() {
                        Ok(target) if !target.starts_with(&canonical_root) => {
                            inv.issues.push(ValidationIssue::new(
                                "unsafe-path",
                                &child_rel,
                                format!("symlink to {} outside the bag", target.display()),
                            ));
                            inv.unsafe_links.insert(child_rel);
                            continue;
                        }
                        Ok(_) => {}
                        // A dangling link is not a file; completeness reports it if listed.
                        Err(_) => continue,
                    }
                }
                let md = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
                if md.is_dir() {
                    stack.push((path, child_rel));
                } else if md.is_file() {
                    inv.files.insert(child_rel, md.len());
                }
            }
        }
        Ok(inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_from_their_names() {
        assert_eq!(
            "Full".parse::<ValidationMode>().unwrap(),
            ValidationMode::Full
        );
        assert_eq!(ValidationMode::Completeness.to_string(), "completeness");
        assert!("quick".parse::<ValidationMode>().is_err());
    }

    #[test]
    fn issues_serialize_with_kind_path_detail() {
        let report = ValidationReport {
            valid: false,
            errors: vec![ValidationIssue::new(
                "missing-file",
                "data/a",
                "gone".into(),
            )],
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"valid":false,"errors":[{"kind":"missing-file","path":"data/a","detail":"gone"}]}"#
        );
    }
}
