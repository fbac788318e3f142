//! Payload manifests (`manifest-<alg>.txt`) and tag manifests (`tagmanifest-<alg>.txt`).
//!
//! A line is `<hex digest><whitespace><path>`. bdbag writes two spaces in payload manifests
//! and one in tag manifests, so we split on the first run of whitespace. Paths are raw UTF-8
//! with only CR and LF encoded (`%0D`, `%0A`); every other `%` is literal.

use std::path::Path;

use super::paths::normalize;
use super::tagfile::{for_each_line, text_lines};
use super::{Algorithm, ManifestEntry};
use crate::{Error, Result};

impl Algorithm {
    /// Every algorithm this crate reads, in the order we prefer to report them.
    pub const ALL: [Algorithm; 2] = [Algorithm::Md5, Algorithm::Sha256];

    /// The name used in manifest file names: `md5`, `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha256 => "sha256",
        }
    }

    /// The algorithm for a manifest-name suffix (`md5`, `sha256`, case-insensitive).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Length of a hex digest: 32 for md5, 64 for sha256.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }
}

/// What a tag-directory file name is: a payload manifest, a tag manifest, or neither.
/// Returns `(is_tag_manifest, algorithm name)` for `manifest-<alg>.txt` /
/// `tagmanifest-<alg>.txt`.
pub(crate) fn manifest_file_kind(file_name: &str) -> Option<(bool, &str)> {
    let stem = file_name.strip_suffix(".txt")?;
    if let Some(alg) = stem.strip_prefix("tagmanifest-") {
        Some((true, alg))
    } else {
        stem.strip_prefix("manifest-").map(|alg| (false, alg))
    }
}

/// Decodes a manifest path: `%0D` → CR and `%0A` → LF (case-insensitive, as bagit does);
/// every other byte, `%` included, is literal.
pub fn decode_manifest_path(raw: &str) -> String {
    if !raw.contains('%') {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let code = tail.get(1..3).map(|s| s.to_ascii_uppercase());
        match code.as_deref() {
            Some("0D") => {
                out.push('\r');
                rest = &tail[3..];
            }
            Some("0A") => {
                out.push('\n');
                rest = &tail[3..];
            }
            _ => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `<source> line <n>`: how [`Error::UnsafePath`] (which has no line field) names the line
/// of a tag file that holds an escaping path, so its message reads like [`Error::TagFile`]'s.
pub(crate) fn with_line(source: &Path, line: usize) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{} line {line}", source.display()))
}

/// Parses the bytes of a payload or tag manifest for `algorithm`.
///
/// Errors name `source` and the line: a digest of the wrong length or with non-hex
/// characters ([`Error::TagFile`]), a line without a path ([`Error::TagFile`]), a path that
/// escapes the bag ([`Error::UnsafePath`]). Digests are lowercased; paths are decoded and
/// normalised (see [`super::paths::normalize`]).
///
/// ```
/// use std::path::Path;
/// use deriva_bag_format::bagit::{manifest::parse_manifest, Algorithm};
/// let text = b"d41d8cd98f00b204e9800998ecf8427e  data/Image 01%0A.csv\n";
/// let entries = parse_manifest(text, Algorithm::Md5, Path::new("manifest-md5.txt")).unwrap();
/// assert_eq!(entries[0].path, "data/Image 01\n.csv");
/// assert_eq!(entries[0].digest, "d41d8cd98f00b204e9800998ecf8427e");
/// ```
pub fn parse_manifest(
    bytes: &[u8],
    algorithm: Algorithm,
    source: &Path,
) -> Result<Vec<ManifestEntry>> {
    let mut entries = Vec::new();
    for (line_no, line) in text_lines(bytes, source)? {
        if let Some(entry) = parse_line(line_no, line, algorithm, source)? {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// [`parse_manifest`] that skips the lines it cannot parse instead of failing on the first
/// (a file that is not UTF-8 still fails). For the index's digest checks, which need only
/// the entries of the files they read: a malformed line for another file must not stop an
/// open, and [`super::BagItFiles::read`] still reports it. A file whose own line is malformed
/// counts as unlisted.
#[cfg(test)]
pub(crate) fn parse_manifest_lenient(
    bytes: &[u8],
    algorithm: Algorithm,
    source: &Path,
) -> Result<Vec<ManifestEntry>> {
    read_manifest_lenient(bytes, algorithm, source, &|_| true)
}

/// [`parse_manifest_lenient`] over a reader, line by line, keeping only the entries whose
/// path `keep` accepts: memory holds one line and the kept entries, however long the
/// manifest (one line per asset file, millions in a large bag). Lines, line numbers and
/// errors are those of [`parse_manifest_lenient`] over the whole text.
pub(crate) fn read_manifest_lenient(
    reader: impl std::io::BufRead,
    algorithm: Algorithm,
    source: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<ManifestEntry>> {
    let mut out = Vec::new();
    for_each_line(reader, source, &mut |line_no, line| {
        if let Ok(Some(entry)) = parse_line(line_no, line, algorithm, source) {
            if keep(&entry.path) {
                out.push(entry);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// One manifest line: `None` for a blank line.
fn parse_line(
    line_no: usize,
    line: &str,
    algorithm: Algorithm,
    source: &Path,
) -> Result<Option<ManifestEntry>> {
    // bagit-python strips the whole line; a file name that ends in whitespace cannot be
    // represented in a manifest either way.
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let tag_error = |detail: String| Error::TagFile {
        path: source.to_path_buf(),
        line: line_no,
        detail,
    };
    let (digest, raw_path) = match line.split_once(char::is_whitespace) {
        Some((d, p)) => (d, p.trim_start()),
        None => (line, ""),
    };
    if digest.len() != algorithm.hex_len() || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(tag_error(format!(
            "bad {} digest {digest:?}: expected {} hex digits",
            algorithm.name(),
            algorithm.hex_len()
        )));
    }
    if raw_path.is_empty() {
        return Err(tag_error(format!("digest {digest:?} has no path")));
    }
    let decoded = decode_manifest_path(raw_path);
    let path = normalize(&decoded, source).map_err(|_| Error::UnsafePath {
        source_file: with_line(source, line_no),
        path: decoded.clone(),
    })?;
    Ok(Some(ManifestEntry {
        path,
        digest: digest.to_ascii_lowercase(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn payload_lines_with_two_spaces_and_tag_lines_with_one_parse_alike() {
        let text = format!("{MD5}  data/a b.csv\r\n{MD5} bagit.txt\n\n{MD5}\tdata/c%25.csv\n");
        let e = parse_manifest(text.as_bytes(), Algorithm::Md5, Path::new("m")).unwrap();
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["data/a b.csv", "bagit.txt", "data/c%25.csv"]);
    }

    #[test]
    fn uppercase_digests_are_lowercased_and_cr_lf_decoded() {
        let text = format!("{}  data/x%0dy%0A\n", SHA.to_uppercase());
        let e = parse_manifest(text.as_bytes(), Algorithm::Sha256, Path::new("m")).unwrap();
        assert_eq!(e[0].digest, SHA);
        assert_eq!(e[0].path, "data/x\ry\n");
    }

    #[test]
    fn bad_digest_is_a_tag_file_error_naming_file_line_and_value() {
        let text = format!("{MD5}  data/a.csv\n{SHA}  data/b.csv\n");
        let err = parse_manifest(
            text.as_bytes(),
            Algorithm::Md5,
            Path::new("bag/manifest-md5.txt"),
        )
        .unwrap_err();
        match &err {
            Error::TagFile { path, line, detail } => {
                assert_eq!(path, Path::new("bag/manifest-md5.txt"));
                assert_eq!(*line, 2);
                assert!(detail.contains(SHA), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        let err = parse_manifest(
            b"zz1d8cd98f00b204e9800998ecf8427e  data/a.csv\n",
            Algorithm::Md5,
            Path::new("manifest-md5.txt"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "manifest-md5.txt line 1: bad md5 digest \"zz1d8cd98f00b204e9800998ecf8427e\": \
             expected 32 hex digits"
        );
    }

    #[test]
    fn escaping_path_is_unsafe_path_naming_line() {
        let text = format!("{MD5}  data/a.csv\n{MD5}  ../../etc/passwd\n");
        let err = parse_manifest(
            text.as_bytes(),
            Algorithm::Md5,
            Path::new("manifest-md5.txt"),
        )
        .unwrap_err();
        match err {
            Error::UnsafePath { source_file, path } => {
                assert_eq!(source_file, Path::new("manifest-md5.txt line 2"));
                assert_eq!(path, "../../etc/passwd");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn digest_without_path_is_an_error() {
        let err = parse_manifest(MD5.as_bytes(), Algorithm::Md5, Path::new("m")).unwrap_err();
        assert!(matches!(err, Error::TagFile { line: 1, .. }), "{err}");
    }

    #[test]
    fn manifest_file_names_are_classified() {
        assert_eq!(manifest_file_kind("manifest-md5.txt"), Some((false, "md5")));
        assert_eq!(
            manifest_file_kind("tagmanifest-sha256.txt"),
            Some((true, "sha256"))
        );
        assert_eq!(manifest_file_kind("fetch.txt"), None);
        assert_eq!(Algorithm::from_name("SHA256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_name("sha1"), None);
    }

    proptest! {
        #[test]
        fn manifest_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_manifest(&bytes, Algorithm::Md5, Path::new("m"));
            let _ = parse_manifest(&bytes, Algorithm::Sha256, Path::new("m"));
        }

        #[test]
        fn lenient_parse_keeps_the_good_lines_and_agrees_with_the_strict_one(
            good in proptest::collection::vec("[a-z0-9]{1,8}", 0..5),
            bad in proptest::collection::vec("[a-z ./]{0,12}", 0..3),
        ) {
            let mut text = String::new();
            for (i, name) in good.iter().enumerate() {
                text.push_str(&format!("{MD5}  data/{name}\n"));
                if let Some(b) = bad.get(i) {
                    text.push_str(b);
                    text.push('\n');
                }
            }
            let lenient = parse_manifest_lenient(text.as_bytes(), Algorithm::Md5, Path::new("m")).unwrap();
            let paths: Vec<String> = lenient.iter().map(|e| e.path.clone()).collect();
            let expected: Vec<String> = good.iter().map(|n| format!("data/{n}")).collect();
            prop_assert_eq!(paths, expected);
            if let Ok(strict) = parse_manifest(text.as_bytes(), Algorithm::Md5, Path::new("m")) {
                prop_assert_eq!(strict, lenient);
            }
        }

        #[test]
        fn reading_a_manifest_line_by_line_gives_the_lines_and_errors_of_the_whole_text(
            bytes in proptest::collection::vec(
                prop_oneof![
                    Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'a'), Just(0xEFu8), Just(0xBBu8),
                    Just(0xBFu8), Just(0xC3u8), Just(0xA9u8), Just(b'/'), Just(b'.'),
                ],
                0..200,
            ),
            digest_every in 1usize..4,
            capacity in 1usize..16,
        ) {
            // Lines that parse need a digest: prefix some of the generated lines with one.
            let mut text = Vec::new();
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if i.is_multiple_of(digest_every) {
                    text.extend_from_slice(format!("{MD5}  data/").as_bytes());
                }
                text.extend_from_slice(line);
                text.push(b'\n');
            }
            let source = Path::new("manifest-md5.txt");
            let whole = text_lines(&text, source).map(|lines| {
                lines
                    .into_iter()
                    .filter_map(|(n, l)| parse_line(n, l, Algorithm::Md5, source).ok().flatten())
                    .collect::<Vec<_>>()
            });
            let reader = std::io::BufReader::with_capacity(capacity, text.as_slice());
            let streamed = read_manifest_lenient(reader, Algorithm::Md5, source, &|_| true);
            prop_assert_eq!(format!("{whole:?}"), format!("{streamed:?}"));
            // A filter keeps the accepted entries, in order.
            if let Ok(all) = whole {
                let keep = |p: &str| p.len().is_multiple_of(2);
                let kept = read_manifest_lenient(text.as_slice(), Algorithm::Md5, source, &keep).unwrap();
                let expected: Vec<_> = all.into_iter().filter(|e| keep(&e.path)).collect();
                prop_assert_eq!(kept, expected);
            }
        }

        #[test]
        fn manifest_parser_keeps_entries_inside_the_bag(
            path in "[a-z%./\\\\ 0-9AD]{0,30}",
        ) {
            let text = format!("{MD5}  {path}\n");
            if let Ok(entries) = parse_manifest(text.as_bytes(), Algorithm::Md5, Path::new("m")) {
                for e in entries {
                    prop_assert!(!e.path.split('/').any(|c| c == ".." || c.is_empty()));
                    prop_assert!(!e.path.starts_with('/'));
                }
            }
        }
    }
}
