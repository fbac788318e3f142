//! `bagit.txt` and `bag-info.txt`, plus the line reader every tag-file parser shares.
//!
//! Tag files are UTF-8 text. We tolerate a byte-order mark and CRLF or CR line endings
//! (constructive and Windows-made bags have them), which bagit-python also accepts.

use std::path::Path;

use super::BagItVersion;
use crate::{Error, Result};

/// Splits tag-file bytes into `(1-based line number, line)` pairs: a leading UTF-8 BOM is
/// dropped, lines end at LF, CRLF or a lone CR, and invalid UTF-8 is an [`Error::TagFile`]
/// naming the line it is on.
pub(crate) fn text_lines<'a>(bytes: &'a [u8], source: &Path) -> Result<Vec<(usize, &'a str)>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        Error::TagFile {
            path: source.to_path_buf(),
            line,
            detail: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        }
    })?;
    let mut out = Vec::new();
    let mut line_no = 0;
    let mut rest = text;
    while !rest.is_empty() {
        line_no += 1;
        match rest.find(['\n', '\r']) {
            Some(i) => {
                out.push((line_no, &rest[..i]));
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                out.push((line_no, rest));
                rest = "";
            }
        }
    }
    Ok(out)
}

/// [`text_lines`] over a reader, one line at a time into `each(line number, line)`, so a tag
/// file of millions of lines (a large bag's manifests and fetch.txt) is never whole in
/// memory. Lines, line numbers and errors are those of [`text_lines`] over the whole text;
/// stops at the first error `each` returns.
pub(crate) fn for_each_line(
    mut reader: impl std::io::BufRead,
    source: &Path,
    each: &mut dyn FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let mut chunk = Vec::new();
    // Bytes (after a BOM) and `\n`s before `chunk`; lines numbered so far.
    let (mut offset, mut newlines, mut line_no) = (0usize, 0usize, 0usize);
    let mut first = true;
    loop {
        chunk.clear();
        let read = reader.read_until(b'\n', &mut chunk);
        if read.map_err(|e| Error::io(source, e))? == 0 {
            return Ok(());
        }
        let mut bytes = chunk.as_slice();
        if std::mem::take(&mut first) {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        // A `\n` never sits inside a multi-byte character, so each chunk decodes alone.
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let valid = &bytes[..e.valid_up_to()];
            let line = 1 + newlines + valid.iter().filter(|&&b| b == b'\n').count();
            tag_error(
                source,
                line,
                format!("invalid UTF-8 at byte {}", offset + e.valid_up_to()),
            )
        })?;
        offset += bytes.len();
        newlines += usize::from(bytes.ends_with(b"\n"));
        // The line ends `text_lines` knows: `\n`, `\r\n` and a lone `\r`.
        let mut rest = text;
        while !rest.is_empty() {
            line_no += 1;
            let line = match rest.find(['\n', '\r']) {
                Some(i) => {
                    let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                    let line = &rest[..i];
                    rest = &rest[i + skip..];
                    line
                }
                None => std::mem::take(&mut rest),
            };
            each(line_no, line)?;
        }
    }
}

fn tag_error(source: &Path, line: usize, detail: impl Into<String>) -> Error {
    Error::TagFile {
        path: source.to_path_buf(),
        line,
        detail: detail.into(),
    }
}

/// Parses `Key: value` lines with RFC 8493 continuation lines (a line starting with a space
/// or TAB continues the previous value). Blank lines are skipped.
fn parse_tags(bytes: &[u8], source: &Path) -> Result<Vec<(usize, String, String)>> {
    let mut tags: Vec<(usize, String, String)> = Vec::new();
    for (line_no, line) in text_lines(bytes, source)? {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match tags.last_mut() {
                // Unfold: bagit-python keeps the raw newline inside the value, RFC 8493 says
                // the fold is not part of the value; join with one space so a wrapped
                // profile URL or description reads as one line.
                Some((_, _, value)) => {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(line.trim());
                }
                None => {
                    return Err(tag_error(
                        source,
                        line_no,
                        format!("continuation line {line:?} before any \"Key: value\" line"),
                    ))
                }
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(tag_error(
                source,
                line_no,
                format!("expected \"Key: value\", found {line:?}"),
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(tag_error(source, line_no, format!("empty key in {line:?}")));
        }
        tags.push((line_no, key.to_string(), value.trim().to_string()));
    }
    Ok(tags)
}

/// Parses `bagit.txt`: it must declare `BagIt-Version` 0.97 or 1.0 (0.96 is read as 0.97,
/// the two differ only in details a reader does not see) and
/// `Tag-File-Character-Encoding: UTF-8`.
///
/// ```
/// use std::path::Path;
/// use deriva_bag_format::bagit::{tagfile::parse_bagit_txt, BagItVersion};
/// let text = b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n";
/// assert_eq!(parse_bagit_txt(text, Path::new("bagit.txt")).unwrap(), BagItVersion::V0_97);
/// ```
pub fn parse_bagit_txt(bytes: &[u8], source: &Path) -> Result<BagItVersion> {
    let tags = parse_tags(bytes, source)?;
    let last_line = tags.last().map_or(1, |t| t.0);
    let find = |name: &str| {
        tags.iter()
            .find(|(_, k, _)| k.eq_ignore_ascii_case(name))
            .map(|(line, _, v)| (*line, v.as_str()))
    };
    let version = match find("BagIt-Version") {
        Some((_, "0.97" | "0.96")) => BagItVersion::V0_97,
        Some((_, "1.0")) => BagItVersion::V1_0,
        Some((line, other)) => {
            return Err(tag_error(
                source,
                line,
                format!("unsupported BagIt-Version {other:?} (expected 0.97 or 1.0)"),
            ))
        }
        None => {
            return Err(tag_error(
                source,
                last_line,
                "missing \"BagIt-Version\" line",
            ))
        }
    };
    match find("Tag-File-Character-Encoding") {
        Some((_, enc)) if enc.eq_ignore_ascii_case("UTF-8") || enc.eq_ignore_ascii_case("utf8") => {
        }
        Some((line, other)) => {
            return Err(tag_error(
                source,
                line,
                format!("unsupported Tag-File-Character-Encoding {other:?} (expected UTF-8)"),
            ))
        }
        None => {
            return Err(tag_error(
                source,
                last_line,
                "missing \"Tag-File-Character-Encoding\" line",
            ))
        }
    }
    Ok(version)
}

/// Parses `bag-info.txt` into ordered `(key, value)` pairs, continuation lines joined with
/// one space. Repeated keys are kept (BagIt allows them).
///
/// ```
/// use std::path::Path;
/// use deriva_bag_format::bagit::tagfile::parse_bag_info;
/// let text = b"Payload-Oxum: 83.4\nExternal-Description: a long\n  wrapped value\n";
/// let info = parse_bag_info(text, Path::new("bag-info.txt")).unwrap();
/// assert_eq!(info[0], ("Payload-Oxum".to_string(), "83.4".to_string()));
/// assert_eq!(info[1].1, "a long wrapped value");
/// ```
pub fn parse_bag_info(bytes: &[u8], source: &Path) -> Result<Vec<(String, String)>> {
    Ok(parse_tags(bytes, source)?
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect())
}

/// Parses a `Payload-Oxum` value `<octets>.<streams>` into `(bytes, files)`.
pub fn parse_oxum(value: &str) -> Option<(u64, u64)> {
    let (bytes, files) = value.trim().split_once('.')?;
    Some((bytes.parse().ok()?, files.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("bag/bagit.txt")
    }

    #[test]
    fn bagit_txt_accepts_097_and_10_with_bom_and_crlf() {
        assert_eq!(
            parse_bagit_txt(
                b"\xEF\xBB\xBFBagIt-Version: 0.97\r\nTag-File-Character-Encoding: UTF-8\r\n",
                p()
            )
            .unwrap(),
            BagItVersion::V0_97
        );
        assert_eq!(
            parse_bagit_txt(
                b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8",
                p()
            )
            .unwrap(),
            BagItVersion::V1_0
        );
    }

    #[test]
    fn bagit_txt_rejects_unknown_version_naming_line_and_value() {
        let err = parse_bagit_txt(
            b"Tag-File-Character-Encoding: UTF-8\nBagIt-Version: 2.5\n",
            p(),
        )
        .unwrap_err();
        match &err {
            Error::TagFile { path, line, detail } => {
                assert_eq!(path, p());
                assert_eq!(*line, 2);
                assert!(detail.contains("\"2.5\""), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "bag/bagit.txt line 2: unsupported BagIt-Version \"2.5\" (expected 0.97 or 1.0)"
        );
    }

    #[test]
    fn bagit_txt_rejects_latin1_encoding_and_missing_lines() {
        let err = parse_bagit_txt(
            b"BagIt-Version: 0.97\nTag-File-Character-Encoding: ISO-8859-1\n",
            p(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::TagFile { line: 2, .. }), "{err}");
        let err = parse_bagit_txt(b"BagIt-Version: 0.97\n", p()).unwrap_err();
        assert!(
            err.to_string()
                .contains("missing \"Tag-File-Character-Encoding\""),
            "{err}"
        );
    }

    #[test]
    fn bag_info_joins_continuation_lines_and_rejects_lines_without_colon() {
        let info = parse_bag_info(
            b"Bag-Software-Agent: BDBag\n\tversion 1.7\nPayload-Oxum: 83.4\n\n",
            Path::new("bag-info.txt"),
        )
        .unwrap();
        assert_eq!(
            info,
            vec![
                ("Bag-Software-Agent".into(), "BDBag version 1.7".into()),
                ("Payload-Oxum".into(), "83.4".into())
            ]
        );
        let err = parse_bag_info(
            b"Payload-Oxum: 1.1\nno colon here\n",
            Path::new("bag-info.txt"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bag-info.txt line 2: expected \"Key: value\", found \"no colon here\""
        );
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let err = parse_bag_info(b"A: b\nC: \xff\n", Path::new("bag-info.txt")).unwrap_err();
        assert!(matches!(err, Error::TagFile { line: 2, .. }), "{err}");
    }

    #[test]
    fn oxum_parses_bytes_then_files() {
        assert_eq!(parse_oxum("83.4"), Some((83, 4)));
        assert_eq!(parse_oxum(" 0.0 "), Some((0, 0)));
        assert_eq!(parse_oxum("83"), None);
        assert_eq!(parse_oxum("a.4"), None);
    }

    proptest! {
        #[test]
        fn tag_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_bagit_txt(&bytes, p());
            let _ = parse_bag_info(&bytes, p());
        }

        #[test]
        fn tag_parsers_never_panic_on_text(text in "[A-Za-z:\\- \t\r\n.0-9]{0,120}") {
            let _ = parse_bagit_txt(text.as_bytes(), p());
            if let Ok(info) = parse_bag_info(text.as_bytes(), p()) {
                for (k, _) in info {
                    prop_assert!(!k.is_empty());
                }
            }
        }
    }
}
