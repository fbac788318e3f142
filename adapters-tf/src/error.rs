//! The one error type of the TensorFlow adapter.

use deriva_bag_features::Rid;

use crate::spec::TensorSpec;

/// Errors of the TensorFlow adapter; each names the element, shape or value at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Enumeration, target resolution, a missing sample loader or asset file, or a failing
    /// user closure (these carry the element's RID).
    #[error(transparent)]
    Dataset(#[from] deriva_bag_features::Error),

    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A file is not a decodable PNG/JPEG image.
    #[error("cannot decode image {}: {source}", path.display())]
    Image {
        /// The file.
        path: std::path::PathBuf,
        /// The decoder's error.
        #[source]
        source: deriva_bag_features::loader::image::ImageError,
    },

    /// Nothing to infer a signature from (as the reference's message says).
    #[error(
        "cannot infer the output signature of an empty dataset (element table {table}, targets \
         [{}]): either the bag has no elements of this table, or all were dropped by \
         Missing::Skip; pass an explicit output signature",
        targets.join(", ")
    )]
    Empty {
        /// The element table.
        table: String,
        /// The requested target names.
        targets: Vec<String>,
    },

    /// A sample or label has no tensor form (a row, an untransformed feature record).
    #[error("element {rid}: {detail}")]
    NotATensor {
        /// The element.
        rid: Rid,
        /// What it is and how to make it a tensor.
        detail: String,
    },

    /// A sample or target does not match the output signature.
    #[error("element {rid}: {part} has dtype {found_dtype} and shape {found:?}, but the output signature says {expected}")]
    SignatureMismatch {
        /// The element.
        rid: Rid,
        /// `sample` or `target` (or `target "name"`).
        part: String,
        /// The signature's spec.
        expected: TensorSpec,
        /// The actual dtype.
        found_dtype: String,
        /// The actual shape.
        found: Vec<u64>,
    },

    /// A sample's value count does not match its shape.
    #[error("sample of shape {shape:?} needs {expected} values, got {found}")]
    BadSample {
        /// The declared shape.
        shape: Vec<u64>,
        /// Product of the shape.
        expected: usize,
        /// Values given.
        found: usize,
    },

    /// The elements of one batch cannot be stacked (variable shapes need batch size 1).
    #[error("cannot collate batch: {detail}")]
    Collate {
        /// What differs, naming the RIDs.
        detail: String,
    },

    /// The TensorFlow C library reported an error.
    #[error("tensorflow: {0}")]
    Tf(#[from] tensorflow::Status),
}
