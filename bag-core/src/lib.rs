//! Read DerivaML dataset bags offline.
//!
//! A bag is a BagIt directory (or `.zip` / `.tar.gz` archive) holding one dataset's rows as
//! CSV, the catalog model as `data/schema.json`, asset files and checksums. This crate opens
//! it, validates it, builds a SQLite index in a cache directory outside the bag
//! (`$DERIVA_BAG_CACHE`, else the platform cache dir), and serves DerivaML's `DatasetBag`
//! API: tables, members, nested datasets, features and their values with selectors, and
//! asset files. Opening, querying and validating never write inside the bag; the bag and
//! archive *writers* ([`bagit::write`], [`archive_write`]) are for producing new bags.
//!
//! An archive is extracted into the cache once ([`archive`]): every entry path is checked,
//! links become copies, and the bytes written are capped so that an archive bomb stops with
//! [`Error::ArchiveTooLarge`] and leaves nothing behind. The cap is
//! [`OpenOptions::max_extracted_bytes`], else `$DERIVA_BAG_MAX_EXTRACTED_BYTES` (bytes, or
//! e.g. `50G`), else the smaller of 100 × the archive's size and the cache volume's free
//! space. A warm cache is only read, so it may be read-only ([`cache`]).
//!
//! Talking to a catalog and training models come in through cargo features: `catalog`
//! re-exports the online client (`deriva-catalog-client`) as `deriva_bag_core::catalog`,
//! and `torch` / `tf` the framework adapters.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use deriva_bag_core::features::Selector;
//! use deriva_bag_core::DatasetBag;
//!
//! // A bag directory, or the .zip / .tar.gz / .tgz archive a download produced.
//! let bag = DatasetBag::open("Dataset_1-D000.zip")?;
//! println!("dataset {} version {:?} types {:?}", bag.rid(), bag.version(), bag.dataset_types());
//! for table in bag.list_tables() {
//!     println!("{table}: {} rows", bag.row_count(&table)?);
//! }
//! // Members of the dataset and of the datasets nested in it, by element table.
//! for (table, rows) in bag.list_dataset_members(true, None)? {
//!     println!("{table}: {} members", rows.len());
//! }
//! // One Glaucoma label per image, the newest where annotators disagree.
//! for record in bag.feature_values("Image", "Glaucoma", Some(&Selector::newest()))? {
//!     println!("{:?}: {:?}", record.target(), record.text("Glaucoma"));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The same on a generated bag, runnable with the `fixtures` cargo feature (seeded demo
//! bags for tests):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use deriva_bag_core::{fixtures, DatasetBag};
//! use deriva_bag_core::features::Selector;
//!
//! let tmp = tempfile::tempdir()?;
//! let generated = fixtures::small_bag(tmp.path())?; // a seeded demo bag
//! let bag = DatasetBag::open(&generated.path)?;
//! assert_eq!(bag.rid().as_str(), "1-D000");
//! let training = bag.dataset(&"1-D001".into())?;
//! let members = training.list_dataset_members(false, None)?;
//! let images = members.iter().find(|(t, _)| t.table == "Image").map(|(_, rows)| rows.len());
//! assert_eq!(images, Some(3));
//! let labels = bag.feature_values("Image", "Glaucoma", Some(&Selector::newest()))?;
//! assert_eq!(labels.len(), 5); // one per labelled image; I004 has no label
//! # Ok(())
//! # }
//! ```
//!
//! # Cargo features
//!
//! | feature | what it adds |
//! |---|---|
//! | *(default)* | `DatasetBag`, validation, features, selectors, offline records. No libtorch, TensorFlow, reqwest or tokio. |
//! | `catalog` | `deriva_bag_core::catalog`: online DerivaML (re-exports `deriva-catalog-client`) and `download_dataset_bag_opened` returning a `DatasetBag`. Pulls in reqwest and tokio. |
//! | `restructure` | `DatasetBag::restructure_assets` and the `deriva_bag_core::restructure` re-export of `deriva-bag-restructure`. |
//! | `torch` | `DatasetBag::as_torch_dataset` and the `torch` re-export of `deriva-bag-torch`, with its `tch` as `torch::tch`. Needs libtorch 2.13.0 at build and run time: `.ci/ml-libs.sh` in the repository provisions it without root and prints the `.cargo/config.toml` lines to use (README, "libtorch and TensorFlow for your own crate"). |
//! | `tf` | `DatasetBag::as_tf_dataset` and the `tf` re-export of `deriva-bag-tf`, with its `tensorflow` as `tf::tensorflow`. Needs the TensorFlow 2.13.0 C library, provisioned the same way. |
//! | `arrow` | `deriva_bag_core::export`: tables and feature values as Arrow record batches (`DatasetBag::get_table_as_arrow`), Parquet files and whole-bag Parquet export; with `cli` also `deriva-bag export`. Pulls in the arrow and parquet crates. |
//! | `cli` | the `deriva-bag` binary (implies `restructure` and `report-html`). |
//! | `fixtures` | `deriva_bag_core::fixtures`: deterministic demo and test bags with real PNG/JPEG assets. |
//! | `libjpeg-turbo` | JPEGs in the image pipeline both adapters share (`features::loader::image`) decoded with libjpeg-turbo's decoder (vendored C built by the `mozjpeg` crate): SIMD, and the scaled IDCT for large photographs resized small (on 3,000 × 2,000 photographs resized to 224: 7.1 ms CPU per decode against 19.1 ms pure-Rust, 2.1× the pipeline's images/s). Needs `nasm` to build the SIMD and `panic = "unwind"`. |
//! | `report-html` | `Report::to_html` / `write_html` in `deriva_bag_core::report`: the dataset report as one self-contained HTML page with inline SVG charts (plotters, SVG backend only). |
//! | `fuzzing` | entry points for the cargo-fuzz targets in `bag-core/fuzz` (hidden, not a stable API). |
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod archive;
pub mod archive_write;
mod bag;
#[cfg(feature = "catalog")]
#[cfg_attr(docsrs, doc(cfg(feature = "catalog")))]
pub mod catalog;
#[cfg(any(feature = "restructure", feature = "torch", feature = "tf"))]
mod convenience;
#[cfg(feature = "arrow")]
#[cfg_attr(docsrs, doc(cfg(feature = "arrow")))]
pub mod export;
#[cfg(feature = "fixtures")]
#[cfg_attr(docsrs, doc(cfg(feature = "fixtures")))]
pub mod fixtures;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod index;
pub mod report;

pub use bag::{
    AssetCheck, AssetStatus, BuildProgress, DatasetBag, FeatureRow, FeatureRows, FeatureValues,
    Member, MemberOrigins, MemberRows, MissingAsset, OpenOptions, ProgressFn, FEW_ASSET_DIRS,
};
pub use deriva_bag_features as features;
// The bag format lives in `deriva-bag-format` (shared with the catalog client); its modules
// and error type are bag-core's own public paths.
pub use deriva_bag_format::{bagit, cache, csv, version, Error, Result};
#[cfg(feature = "restructure")]
#[cfg_attr(docsrs, doc(cfg(feature = "restructure")))]
pub use deriva_bag_restructure as restructure;
#[cfg(feature = "tf")]
#[cfg_attr(docsrs, doc(cfg(feature = "tf")))]
pub use deriva_bag_tf as tf;
#[cfg(feature = "torch")]
#[cfg_attr(docsrs, doc(cfg(feature = "torch")))]
pub use deriva_bag_torch as torch;
pub use index::TableRows;
