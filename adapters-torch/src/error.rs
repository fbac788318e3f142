//! The one error type of the PyTorch adapter.

use std::path::PathBuf;

/// Errors of the PyTorch adapter; each names the file, element or value at fault.
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
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A file is not a decodable PNG/JPEG image.
    #[error("cannot decode image {}: {source}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: deriva_bag_features::loader::image::ImageError,
    },

    /// Samples of one batch cannot be stacked.
    #[error("cannot collate batch: {detail}")]
    Collate {
        /// What differs, naming the RIDs.
        detail: String,
    },

    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}
