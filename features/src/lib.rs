//! The DerivaML model that every deriva-bag layer speaks.
//!
//! This crate holds the catalog model parsed from `data/schema.json` ([`CatalogModel`]),
//! typed values ([`Value`], [`Row`]), identifiers ([`Rid`], [`TableName`]), features and
//! their records ([`Feature`], [`FeatureRecord`]), selectors ([`Selector`]), class indices
//! from a feature's vocabulary ([`ClassLabels`]) and the
//! [`DatasetLike`] trait that a downloaded bag and a live catalog dataset both implement.
//!
//! It is not for reading files or talking to a catalog: it does no file or network I/O,
//! so `restructure` and the framework adapters can be generic over any [`DatasetLike`].
//!
//! ```
//! use deriva_bag_features::{ColumnType, Value, TableName};
//! let t = TableName::new("demo", "Image");
//! assert_eq!(t.to_string(), "demo:Image");
//! let len = Value::parse("1024", &ColumnType::simple("int8")).unwrap();
//! assert_eq!(len.as_i64(), Some(1024));
//! ```
#![warn(missing_docs)]

mod classes;
pub mod codegen;
mod dataset;
mod discovery;
mod error;
mod feature;
pub mod loader;
pub mod membership;
pub mod model;
mod names;
mod record;
mod row;
mod selectors;
mod targets;
mod value;

pub use classes::ClassLabels;
pub use dataset::{DatasetInfo, DatasetLike, Members};
pub use discovery::{find_features, lookup_feature, testing};
pub use error::Error;
pub use feature::{ColumnRole, Feature, FeatureColumn, FeatureId};
pub use model::{CatalogModel, Column, ColumnType, ForeignKey, Key, Table, ValueKind};
pub use names::{Rid, TableName};
pub use record::{
    records_share_feature, FeatureRecord, FieldValue, RecordBuilder, TermCache, TermLookup,
    Vocabulary,
};
pub use row::Row;
pub use selectors::{
    apply_selector, select_stream, sort_and_select, sort_records, FieldKey, SelectStream,
    Selectable, Selector, SelectorFn, TimedRecord,
};
pub use targets::{
    classify_targets, for_each_target_record, resolve_targets, Missing, Resolution,
    ResolvedElement, ResolvedTarget, ResolvedTargets, TargetKeys, TargetKind, TargetRules,
    TargetValue, Targets, MAX_LISTED_RIDS,
};
pub use value::{parse_timestamptz, Value, ValueError};
