//! `fetch.txt`: the remote payload files of a holey bag.
//!
//! A line is `URL<TAB>LENGTH<TAB>PATH`. LENGTH is a decimal byte count or `-` (unknown).
//! PATH is percent-decoded (bdbag escapes `%` as `%25` and CR/LF as `%0D`/`%0A`) and must
//! stay inside the bag. Unlike deriva-py's `_build_asset_map`, which uses PATH undecoded and
//! so looks for the wrong file when a name holds `%`, every consumer of [`FetchEntry::path`]
//! sees the on-disk name.

use std::path::Path;

use percent_encoding::percent_decode_str;

use super::manifest::with_line;
use super::paths::normalize;
use super::tagfile::for_each_line;
use super::FetchEntry;
use crate::{Error, Result};

/// Parses the bytes of `fetch.txt`.
///
/// Fields are TAB-separated; a line without the two TABs is accepted only if it splits
/// into exactly three whitespace-separated fields (bagit-python splits on whitespace, which
/// is the same for bdbag's output since URL and LENGTH hold none). Errors name `source` and
/// the line: a wrong field count, a bad LENGTH or PATH that is not UTF-8 after decoding
/// ([`Error::TagFile`]), a PATH that escapes the bag ([`Error::UnsafePath`]).
///
/// ```
/// use std::path::Path;
/// use deriva_bag_format::bagit::fetch::parse_fetch;
/// let text = b"https://h/hatrac/a.jpg:2RQ\t12\tdata/asset/1-I001/Image/50%25 a.jpg\n";
/// let entries = parse_fetch(text, Path::new("fetch.txt")).unwrap();
/// assert_eq!(entries[0].path, "data/asset/1-I001/Image/50% a.jpg");
/// assert_eq!(entries[0].length, Some(12));
/// ```
pub fn parse_fetch(bytes: &[u8], source: &Path) -> Result<Vec<FetchEntry>> {
    let mut entries = Vec::new();
    for_each_fetch_entry(bytes, source, &mut |entry| {
        entries.push(entry);
        Ok(())
    })?;
    Ok(entries)
}

/// [`parse_fetch`] on a reader, one entry at a time in file order, so a `fetch.txt` of
/// millions of lines is never whole in memory (the one fetch.txt parser: [`parse_fetch`]
/// collects what it gives). Lines end at LF, CR or CRLF, and a leading UTF-8 BOM is
/// skipped; stops at the first error `each` returns.
///
/// ```
/// use std::path::Path;
/// use deriva_bag_format::bagit::fetch::for_each_fetch_entry;
/// let text = b"https://h/a.jpg\t1\tdata/a.jpg\r\nhttps://h/b.jpg\t-\tdata/b%25.jpg\n";
/// let mut paths = Vec::new();
/// for_each_fetch_entry(&text[..], Path::new("fetch.txt"), &mut |e| {
///     paths.push(e.path);
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(paths, ["data/a.jpg", "data/b%.jpg"]);
/// ```
pub fn for_each_fetch_entry(
    reader: impl std::io::BufRead,
    source: &Path,
    each: &mut dyn FnMut(FetchEntry) -> Result<()>,
) -> Result<()> {
    for_each_line(
        reader,
        source,
        &mut |line_no, line| match parse_line(line_no, line, source)? {
            Some(entry) => each(entry),
            None => Ok(()),
        },
    )
}

/// One line of `fetch.txt` (`None` for a blank one).
fn parse_line(line_no: usize, line: &str, source: &Path) -> Result<Option<FetchEntry>> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let tag_error = |detail: String| Error::TagFile {
        path: source.to_path_buf(),
        line: line_no,
        detail,
    };
    let tabbed: Vec<&str> = line.splitn(3, '\t').collect();
    let (url, length, raw_path) = if tabbed.len() == 3 {
        (tabbed[0].trim(), tabbed[1].trim(), tabbed[2])
    } else {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 3 {
            return Err(tag_error(format!(
                "expected URL<TAB>LENGTH<TAB>PATH, found {} field(s) in {line:?}",
                fields.len()
            )));
        }
        (fields[0], fields[1], fields[2])
    };
    if url.is_empty() {
        return Err(tag_error(format!("empty URL in {line:?}")));
    }
    let length =
        match length {
            "-" => None,
            n => Some(n.parse::<u64>().map_err(|_| {
                tag_error(format!("LENGTH {n:?} is neither a byte count nor \"-\""))
            })?),
        };
    let decoded = percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| tag_error(format!("PATH {raw_path:?} is not UTF-8 once decoded")))?;
    let path = normalize(&decoded, source).map_err(|_| Error::UnsafePath {
        source_file: with_line(source, line_no),
        path: decoded.to_string(),
    })?;
    Ok(Some(FetchEntry {
        url: url.to_string(),
        length,
        path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn src() -> &'static Path {
        Path::new("bag/fetch.txt")
    }

    #[test]
    fn tab_separated_lines_decode_percent_cr_lf_and_keep_spaces() {
        let text = b"https://h/a%20b.jpg\t5\tdata/asset/1-I002/Image/retina 002%0A.jpg\r\n\
                     https://h/c\t-\tdata/asset/x%25y\n";
        let e = parse_fetch(text, src()).unwrap();
        assert_eq!(
            e,
            vec![
                FetchEntry {
                    url: "https://h/a%20b.jpg".into(),
                    length: Some(5),
                    path: "data/asset/1-I002/Image/retina 002\n.jpg".into()
                },
                FetchEntry {
                    url: "https://h/c".into(),
                    length: None,
                    path: "data/asset/x%y".into()
                }
            ]
        );
    }

    #[test]
    fn space_separated_line_is_tolerated_only_with_three_fields() {
        let e = parse_fetch(b"https://h/a 7 data/a.jpg\n", src()).unwrap();
        assert_eq!(e[0].path, "data/a.jpg");
        assert_eq!(e[0].length, Some(7));
        let err = parse_fetch(b"https://h/a 7 data/a b.jpg\n", src()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bag/fetch.txt line 1: expected URL<TAB>LENGTH<TAB>PATH, found 4 field(s) in \
             \"https://h/a 7 data/a b.jpg\""
        );
    }

    #[test]
    fn bad_length_names_line_and_value() {
        let err = parse_fetch(b"u\t1\tdata/a\nu\tten\tdata/b\n", src()).unwrap_err();
        match err {
            Error::TagFile { path, line, detail } => {
                assert_eq!(path, src());
                assert_eq!(line, 2);
                assert!(detail.contains("\"ten\""), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn escaping_paths_are_unsafe_path_errors() {
        for (bad, shown) in [
            ("../outside.jpg", "../outside.jpg"),
            ("/etc/passwd", "/etc/passwd"),
            ("data/%2E%2E/%2E%2E/x", "data/../../x"),
        ] {
            let text = format!("https://h/x\t1\t{bad}\n");
            match parse_fetch(text.as_bytes(), src()).unwrap_err() {
                Error::UnsafePath { source_file, path } => {
                    assert_eq!(source_file, Path::new("bag/fetch.txt line 1"));
                    assert_eq!(path, shown);
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn empty_fetch_txt_has_no_entries() {
        assert!(parse_fetch(b"", src()).unwrap().is_empty());
        assert!(parse_fetch(b"\n\r\n  \n", src()).unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn fetch_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_fetch(&bytes, src());
        }

        #[test]
        fn fetch_parser_paths_stay_inside(
            url in "[a-z:/%]{1,10}", len in "[0-9-]{1,3}", path in "[a-z%0-9./ ]{1,20}"
        ) {
            let text = format!("{url}\t{len}\t{path}\n");
            if let Ok(entries) = parse_fetch(text.as_bytes(), src()) {
                for e in entries {
                    prop_assert!(!e.path.split('/').any(|c| c == ".." || c.is_empty()));
                }
            }
        }
    }

    #[test]
    fn lines_end_at_lf_cr_or_crlf_after_a_bom_and_errors_count_every_line() {
        let text: &[u8] = b"\xEF\xBB\xBFhttps://h/a%20b.jpg\t5\tdata/asset/a%0A.jpg\r\n\
                            \n\
                            https://h/c\t-\tdata/asset/x%25y\rhttps://h/d 7 data/d\n";
        let mut streamed = Vec::new();
        for_each_fetch_entry(text, src(), &mut |e| {
            streamed.push((e.url, e.length, e.path));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            streamed,
            [
                (
                    "https://h/a%20b.jpg".to_string(),
                    Some(5),
                    "data/asset/a\n.jpg".to_string()
                ),
                (
                    "https://h/c".to_string(),
                    None,
                    "data/asset/x%y".to_string()
                ),
                ("https://h/d".to_string(), Some(7), "data/d".to_string()),
            ]
        );
        // The bad LENGTH is on line 3: a lone CR ends line 2.
        let bad: &[u8] =
            b"https://h/a\t1\tdata/a\rhttps://h/c\t2\tdata/c\nhttps://h/b\tx\tdata/b\n";
        match parse_fetch(bad, src()).unwrap_err() {
            Error::TagFile { path, line, detail } => {
                assert_eq!((path.as_path(), line), (src(), 3));
                assert!(detail.contains("\"x\""), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // Invalid UTF-8 names the line and the byte offset in the file.
        let bytes: &[u8] = b"https://h/a\t1\tdata/a\nhttps://h/\xFF\t1\tdata/b\n";
        match parse_fetch(bytes, src()).unwrap_err() {
            Error::TagFile { line, detail, .. } => {
                assert_eq!((line, detail.as_str()), (2, "invalid UTF-8 at byte 31"));
            }
            other => panic!("{other:?}"),
        }
    }
}
