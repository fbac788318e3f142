//! The one error type of the bag format and of bag-core (re-exported unchanged as
//! `deriva_bag_core::Error`). Every variant names the file, line, value or RID at fault.

use std::path::PathBuf;

/// Errors from opening, validating and querying a bag.
///
/// Variant fields are not documented one by one: their names (`path`, `line`, `column`,
/// `detail`, …) say what they hold, and each variant's message shows them.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The directory or archive is not a bag (e.g. no `bagit.txt`).
    #[error("{path}: not a bag: {detail}")]
    NotABag { path: PathBuf, detail: String },

    /// A BagIt tag file (bagit.txt, bag-info.txt, manifest, tag manifest, fetch.txt) is malformed.
    #[error("{path} line {line}: {detail}")]
    TagFile {
        path: PathBuf,
        line: usize,
        detail: String,
    },

    /// A path in a manifest, fetch.txt, archive entry or `Filename` escapes the bag.
    #[error("{source_file}: path {path:?} escapes the bag")]
    UnsafePath { source_file: PathBuf, path: String },

    /// A bag path is (or runs through) a symbolic link that leads outside the bag; the link
    /// is not followed. `path` is the path inside the bag, `target` where the link leads.
    #[error("{path}: a symbolic link leads outside the bag, to {target}; not followed")]
    LinkEscapesBag { path: PathBuf, target: PathBuf },

    /// Extracting an archive would write more bytes than the cap allows (an archive bomb, or
    /// a bag larger than the default cap; see `deriva_bag_core::archive`). Nothing is left behind.
    #[error(
        "{path}: extracting it would write more than {limit} bytes ({why}); nothing was kept. \
         If the archive is genuine, raise the cap with OpenOptions::max_extracted_bytes or \
         DERIVA_BAG_MAX_EXTRACTED_BYTES"
    )]
    ArchiveTooLarge {
        path: PathBuf,
        limit: u64,
        why: String,
    },

    /// A setting (an environment variable) has a value that cannot be used.
    #[error("{name}={value:?}: {detail}")]
    Setting {
        name: &'static str,
        value: String,
        detail: String,
    },

    /// A CSV file is malformed (truncated row, unterminated quote, wrong field count…).
    #[error("{path} line {line}: {detail}")]
    Csv {
        path: PathBuf,
        line: u64,
        detail: String,
    },

    /// A CSV header names a column that `schema.json` does not define for the table.
    #[error(
        "{path} line 1: column {column:?} is not a column of table {table} in data/schema.json"
    )]
    UnknownColumn {
        path: PathBuf,
        table: String,
        column: String,
    },

    /// A CSV cell does not parse as its column's type.
    #[error("{path} line {line}, column {column:?}: {detail}")]
    BadValue {
        path: PathBuf,
        line: u64,
        column: String,
        detail: String,
    },

    /// `data/schema.json` is malformed.
    #[error("{path}: {source}")]
    Model {
        path: PathBuf,
        #[source]
        source: deriva_bag_features::Error,
    },

    /// A model-level error (unknown table, feature, dataset…).
    #[error(transparent)]
    Features(#[from] deriva_bag_features::Error),

    /// A bag file the index reads (a table CSV, `data/schema.json`) differs from the digest
    /// its payload manifest lists: it was changed after the bag was made.
    #[error(
        "{path}: {algorithm} digest is {found} but manifest-{algorithm}.txt lists {expected}: \
         the file was changed after the bag was made"
    )]
    ChecksumMismatch {
        path: PathBuf,
        algorithm: &'static str,
        expected: String,
        found: String,
    },

    /// A bag file the index would read (a table CSV, `data/schema.json`) is listed in no
    /// payload manifest, so the bag does not vouch for its content.
    #[error(
        "{path}: not listed in any payload manifest (manifest-md5.txt, manifest-sha256.txt); \
         a file the bag does not vouch for is not read"
    )]
    NotInManifest { path: PathBuf },

    /// Building the index failed on one table (or its metadata): names the bag and the
    /// table, not the cache's temporary file.
    #[error("{bag}: cannot index {what}: {source}")]
    IndexBuild {
        bag: PathBuf,
        /// `table <schema>:<table>`, or what else was being written.
        what: String,
        #[source]
        source: rusqlite::Error,
    },

    /// The SQLite index failed.
    #[error("index {path}: {source}")]
    Index {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// Writing a bag, archive or fixture failed for a reason other than I/O (a remote file's
    /// on-disk copy disagrees with its fetch entry, an image cannot be encoded, …).
    #[error("{path}: cannot write: {detail}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },

    /// A write was attempted on a read-only bag.
    #[error(
        "{operation} is not possible on a downloaded bag: bags are read-only snapshots; \
             create an Execution on the live catalog (deriva-catalog-client) and use it instead"
    )]
    ReadOnly { operation: &'static str },
}

/// Result alias for the bag format and bag-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<Error> for deriva_bag_features::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Features(inner) => inner,
            other => deriva_bag_features::Error::Backend(Box::new(other)),
        }
    }
}
