//! The one error type of the restructure crate.

use std::path::PathBuf;

use deriva_bag_features::Rid;

/// An error a user callback (`target_transform`, `file_transformer`) may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of `restructure_assets`. Every variant names the RID, path or table at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the model layer or the dataset behind `DatasetLike` (unknown table or target,
    /// conflicting values, unlabeled elements under `Missing::Error`, storage failures).
    #[error(transparent)]
    Features(#[from] deriva_bag_features::Error),

    /// An I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path being read, created or written.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// No asset table could be auto-detected.
    #[error(
        "could not auto-detect the asset table: {detail}; set RestructureOptions::asset_table"
    )]
    NoAssetTable {
        /// Why (what was looked at).
        detail: String,
    },

    /// Several asset tables have members.
    #[error(
        "several asset tables have members ({}); choose one with RestructureOptions::asset_table",
        tables.join(", ")
    )]
    AmbiguousAssetTable {
        /// The candidate tables, `schema:table`.
        tables: Vec<String>,
    },

    /// The requested `asset_table` is not an asset table.
    #[error("table {table} is not an asset table (it lacks URL/Filename/Length/MD5 and the asset annotation)")]
    NotAnAssetTable {
        /// The table, `schema:table`.
        table: String,
    },

    /// A label (or a type directory name) cannot be used as a directory name.
    #[error("{what} {label:?} for {rid} cannot be a directory name: {reason}")]
    UnsafeLabel {
        /// `label` or `type directory`.
        what: &'static str,
        /// The offending text.
        label: String,
        /// The asset (or dataset) RID it belongs to.
        rid: Rid,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A feature record offers no value to name a directory after.
    #[error("target {target:?} of {rid}: the record has no value to name a directory; give a target_transform")]
    NoLabel {
        /// The target name.
        target: String,
        /// The asset RID.
        rid: Rid,
    },

    /// The user's `target_transform` failed.
    #[error("target_transform failed for target {target:?} of {rid}: {source}")]
    TargetTransform {
        /// The target name.
        target: String,
        /// The asset RID.
        rid: Rid,
        /// The callback's error.
        #[source]
        source: BoxError,
    },

    /// The user's `file_transformer` failed.
    #[error("file_transformer failed for {src} -> {dst}: {source}")]
    FileTransformer {
        /// The source asset file.
        src: PathBuf,
        /// The suggested destination.
        dst: PathBuf,
        /// The callback's error.
        #[source]
        source: BoxError,
    },

    /// A path that would be written (or that a `file_transformer` returned) lies outside the
    /// output directory.
    #[error("{path} is outside the output directory {output_dir}; nothing is written there")]
    OutsideOutput {
        /// The offending path.
        path: PathBuf,
        /// The output directory.
        output_dir: PathBuf,
    },

    /// The output directory is, or lies inside, the directory holding the dataset's own files
    /// (a bag directory, or an archive bag's extraction directory), possibly through a
    /// symbolic link. Refused before anything is written.
    #[error(
        "output directory {output_dir} lies inside the dataset's files at {source_root}; \
         restructure never writes there (choose a directory outside it)"
    )]
    OutputInsideSource {
        /// The output directory, as given (made absolute).
        output_dir: PathBuf,
        /// The dataset's directory ([`DatasetLike::source_root`](deriva_bag_features::DatasetLike::source_root)).
        source_root: PathBuf,
    },

    /// Destinations already hold files that an earlier run did not place and that differ
    /// from what would be written; nothing is overwritten (and nothing was written).
    #[error(
        "{} destination(s) already exist and were not placed by an earlier restructure run: {}{}",
        paths.len() + more,
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if *more > 0 { format!(" (and {more} more)") } else { String::new() }
    )]
    Occupied {
        /// The first occupied paths.
        paths: Vec<PathBuf>,
        /// How many more.
        more: usize,
    },

    /// The scratch store on disk that holds the run's per-asset state failed (disk full?).
    #[error("{path}: restructure scratch store: {source}")]
    Scratch {
        /// The scratch file.
        path: PathBuf,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },

    /// The placement ledger of an earlier run is unreadable.
    #[error("{path}: not a restructure ledger: {detail}")]
    Ledger {
        /// The ledger file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
