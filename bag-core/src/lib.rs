//! Read DerivaML dataset bags offline.
//!
//! A bag is a BagIt directory (or `.zip` / `.tar.gz` archive) holding one dataset's rows as
//! CSV, the catalog model as `data/schema.json`, asset files and checksums. This crate opens
//! it, validates it, builds a SQLite index in a cache directory outside the bag, and serves
//! the chapter's `DatasetBag` API. It never writes inside a bag.
#![warn(missing_docs)]

pub mod bagit;
pub mod cache;
mod error;

pub use deriva_bag_features as features;
pub use error::{Error, Result};
