//! Catalog names as file names: the one place a schema, table or column name, a RID or an
//! asset `Filename` from a catalog becomes a path component.
//!
//! A catalog is untrusted input. ERMrest allows almost any text as a schema or table name, so
//! a name like `/home/user/.ssh` or `../../x` is a valid model and would, joined onto the bag
//! directory, write outside it. [`PathSegment`] is built only by [`PathSegment::parse`], which
//! runs bag-core's path-safety check ([`deriva_bag_format::bagit::paths::normalize`], the one
//! `fetch.txt` and manifests go through) and additionally requires a single component.

use std::fmt;
use std::path::Path;

use deriva_bag_format::bagit::paths::normalize;

use crate::error::{Error, Result};

/// One path component taken from a catalog: not empty, not `.` or `..`, no `/`, `\` or NUL,
/// no drive prefix (`C:`). Joining it onto a directory stays in that directory.
///
/// ```
/// use deriva_catalog_client::{Error, PathSegment};
///
/// let table = PathSegment::parse("Image", "table name").unwrap();
/// assert_eq!(std::path::Path::new("data/demo").join(table.as_str()),
///            std::path::Path::new("data/demo/Image"));
/// for hostile in ["/etc", "../x", "..", "a/b", "a\\b", "", "C:x", "a\0b"] {
///     match PathSegment::parse(hostile, "schema name") {
///         Err(Error::UnsafeName { value, .. }) => assert_eq!(value, hostile),
///         other => panic!("{hostile:?}: {other:?}"),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathSegment(String);

impl PathSegment {
    /// Checks `value`; `what` says where it came from (`"schema name"`, `"Filename of
    /// demo:Image row 1-I001"`) and is named in the error with the value.
    pub fn parse(value: &str, what: impl Into<String>) -> Result<PathSegment> {
        let single = !value.contains(['/', '\\']);
        match normalize(value, Path::new("catalog")) {
            Ok(n) if single && n == value => Ok(PathSegment(n)),
            _ => Err(Error::UnsafeName {
                what: what.into(),
                value: value.to_string(),
            }),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<Path> for PathSegment {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass_unchanged() {
        for ok in [
            "demo",
            "deriva-ml",
            "Image",
            "retina 002.jpg",
            "50% a.jpg",
            "..hidden",
            "a..b",
            "rétine_003.png",
        ] {
            assert_eq!(PathSegment::parse(ok, "name").unwrap().as_str(), ok);
        }
    }

    #[test]
    fn hostile_names_are_refused_naming_the_value_and_its_origin() {
        for bad in [
            "/etc", "/", "..", ".", "../x", "a/b", "a\\b", "\\x", "", "C:", "c:x", "a\0b", "./a",
        ] {
            match PathSegment::parse(bad, "schema name") {
                Err(Error::UnsafeName { what, value }) => {
                    assert_eq!(what, "schema name");
                    assert_eq!(value, bad);
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let msg = PathSegment::parse("/tmp/x", "schema name")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("the catalog's schema name \"/tmp/x\""),
            "{msg}"
        );
    }
}
