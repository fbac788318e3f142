//! TensorFlow (C API) adapter for DerivaML datasets: the chapter's `bag.as_tf_dataset(...)`.
//!
//! [`as_tf_dataset`] turns one element table of any
//! [`DatasetLike`](deriva_bag_features::DatasetLike) into a re-iterable dataset of
//! `(sample, target, rid)` elements with an output [`Signature`] — inferred from the first
//! element (which is not skipped) or given explicitly with `-1` for variable dimensions.
//! [`TfDataset::batches`] batches, shuffles, shards and prefetches with the same
//! framework-neutral loader core as the PyTorch adapter, producing `tensorflow::Tensor`
//! batches ready to feed a `Session` (there is no `tf.data` in the C API).
//!
//! [`image`] decodes, resizes, crops and normalizes images into `float32 [H, W, 3]` samples
//! with the same pipeline as the PyTorch adapter. It is not a model library: build your
//! graph with `tensorflow::ops`, through the re-exported [`tensorflow`] (so its version always
//! matches this adapter's).
//!
//! Build and run with the TF 2.13.0 C library (`. .ci/ml-libs.sh` provisions it and sets
//! `PKG_CONFIG_PATH`/`LD_LIBRARY_PATH`).
//!
//! ```no_run
//! # fn demo(bag: &impl deriva_bag_features::DatasetLike) -> Result<(), deriva_bag_tf::Error> {
//! use deriva_bag_tf::image::{ImagePipeline, ToSample};
//! use deriva_bag_tf::{as_tf_dataset, LoaderOptions, TfOptions};
//! let pipeline = ImagePipeline::new().resize(224).center_crop(224, 224).imagenet_normalize();
//! let options = TfOptions::default().sample_loader(move |path, _row| pipeline.load(path));
//! let ds = as_tf_dataset(bag, "Image", options, None)?;
//! println!("{:?}", ds.signature()); // float32 [224, 224, 3]
//! let batches = ds.batches(LoaderOptions::default().batch_size(32).shuffle(7).num_workers(2))?;
//! for batch in &batches {
//!     let batch = batch?;
//!     println!("{:?}", batch.samples.dims()); // [32, 224, 224, 3]
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod dataset;
mod error;
pub mod image;
mod spec;

pub use dataset::{
    as_tf_dataset, collate, read_bytes, BatchTargets, BatchTensor, TfBatch, TfDataset, TfItem,
    TfLoader, TfOptions, SAMPLE_LOADER_EXAMPLE,
};
pub use deriva_bag_features::loader::elements::{Label, Sample, Target};
pub use deriva_bag_features::loader::{Batches, LoaderOptions};
pub use error::Error;
pub use spec::{DType, Signature, TargetSpec, TensorSpec, TfSample};
/// The `tensorflow` crate this adapter is built with (exactly `=0.21.0`, for the TF 2.13.0 C
/// API). A training loop names it as `deriva_bag_tf::tensorflow` (or
/// `deriva_bag_core::tf::tensorflow`) instead of depending on `tensorflow` itself, so the
/// tensors it feeds are the adapter's.
///
/// ```no_run
/// use deriva_bag_tf::tensorflow::{Scope, Session, SessionOptions};
/// let scope = Scope::new_root_scope();
/// let _session = Session::new(&SessionOptions::new(), &scope.graph()).unwrap();
/// ```
pub use tensorflow;
