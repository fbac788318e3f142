//! The DerivaML bag format, without the dataset API: BagIt tag files, validation and the bag
//! writer ([`bagit`]), bag CSVs ([`csv`]), PEP 440 dataset versions ([`version`]), the
//! on-disk cache conventions ([`cache`]) and the one bag [`Error`].
//!
//! This crate exists so that both halves of deriva-bag can share the format without depending
//! on each other: `deriva-bag-core` (the offline `DatasetBag`) re-exports every module here
//! unchanged (`deriva_bag_format::bagit`, `deriva_bag_format::Error`, …), and
//! `deriva-catalog-client` (the online client) writes and materializes bags with it. Use it
//! through `deriva-bag-core`; depend on it directly only to write or check bags without the
//! SQLite index and the dataset API.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use deriva_bag_format::bagit::paths::safe_join;
//!
//! let root = std::path::Path::new("/bags/Dataset_1-D000");
//! let joined = safe_join(root, "data/asset/retina_001.jpg", std::path::Path::new("fetch.txt"))?;
//! assert_eq!(joined, root.join("data/asset/retina_001.jpg"));
//! assert!(safe_join(root, "../escape", std::path::Path::new("fetch.txt")).is_err());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod bagit;
pub mod cache;
pub mod csv;
mod error;
pub mod version;

pub use error::{Error, Result};
