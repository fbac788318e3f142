//! TensorFlow (C API) adapter for DerivaML datasets: DerivaML's `bag.as_tf_dataset(...)`.
//!
//! Users depend on `deriva-bag-core` alone with its cargo feature `tf`, and reach this crate
//! as `deriva_bag_core::tf` (as every example here does), its `tensorflow` as
//! `deriva_bag_core::tf::tensorflow`, and `DatasetBag::as_tf_dataset` on the bag itself.
//!
//! [`as_tf_dataset`] turns one element table of any
//! [`DatasetLike`](deriva_bag_features::DatasetLike) into a re-iterable dataset of
//! `(sample, target, rid)` elements with an output [`Signature`] — inferred from the first
//! element (which is not skipped) or given explicitly with `-1` for variable dimensions.
//! [`TfDataset::batches`] batches, shuffles, shards and prefetches with the same
//! framework-neutral loader core as the PyTorch adapter, producing `tensorflow::Tensor`
//! batches ready to feed a `Session` (there is no `tf.data` in the C API). Rows of a
//! non-asset table (a tabular regression) batch into one `[batch]` column per
//! table column ([`TfSamples::Columns`]); [`TfDataset::padded_batches`] pads samples of
//! different shapes (`padded_batch`); [`TfDataset::cache`] keeps decoded samples for later
//! epochs (`.cache()`). [`ClassLabels`] turns a vocabulary feature's terms into `int64` class
//! labels.
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
//! # fn demo(bag: &impl deriva_bag_core::features::DatasetLike) -> Result<(), deriva_bag_core::tf::Error> {
//! use deriva_bag_core::tf::image::{ImagePipeline, ToSample};
//! use deriva_bag_core::tf::{as_tf_dataset, LoaderOptions, TfOptions};
//! let pipeline = ImagePipeline::new().resize(224).center_crop(224, 224).imagenet_normalize();
//! let options = TfOptions::default().sample_loader(move |path, _row| pipeline.load(path));
//! let ds = as_tf_dataset(bag, "Image", options, None)?;
//! println!("{:?}", ds.signature()); // float32 [224, 224, 3]
//! let batches = ds.batches(LoaderOptions::default().batch_size(32).shuffle(7).num_workers(2))?;
//! for batch in &batches {
//!     let batch = batch?;
//!     println!("{:?}", batch.samples.tensor().map(|t| t.dims())); // [32, 224, 224, 3]
//! }
//! # Ok(()) }
//! ```
//!
//! ## Multi-node training
//!
//! Every process (rank) opens the same bag and builds the same loader options, differing
//! only in its `rank`; the launcher (`torchrun`, `mpirun`, Slurm, …) says which rank it is.
//! The adapter reads no environment itself: read `RANK` and `WORLD_SIZE` (torchrun's names;
//! e.g. `OMPI_COMM_WORLD_RANK` / `OMPI_COMM_WORLD_SIZE` under Open MPI) and pass them to
//! [`LoaderOptions::shard`]. Use the same `shuffle` seed on every rank: the order of epoch
//! `e` is a function of `(seed, e)` alone, so every rank computes the same permutation and
//! the shards of an epoch are disjoint, reshuffled every epoch (torch's
//! `DistributedSampler.set_epoch(e)` is `loader.epoch(e)`). Ask for
//! [`EvenShards::Pad`] (repeat a few elements, wrapping to the start of the epoch's
//! order) or [`EvenShards::Drop`] (leave out the last `len % world_size`) so that every rank
//! runs the same number of steps — with uneven shards a rank with one batch fewer leaves
//! the others waiting in a collective op (all-reduce) forever.
//!
//! ```no_run
//! # fn demo(bag: &impl deriva_bag_core::features::DatasetLike) -> Result<(), Box<dyn std::error::Error>> {
//! use deriva_bag_core::tf::{as_tf_dataset, EvenShards, LoaderOptions, TfOptions};
//! // torchrun --nnodes=2 --nproc-per-node=4 … sets RANK in 0..8 and WORLD_SIZE=8.
//! let env = |name: &str| -> Result<usize, Box<dyn std::error::Error>> {
//!     Ok(std::env::var(name).map_err(|e| format!("{name}: {e}"))?.parse()?)
//! };
//! let (rank, world_size) = (env("RANK")?, env("WORLD_SIZE")?);
//! let shard = LoaderOptions::default()
//!     .batch_size(32)
//!     .shuffle(2024) // the same seed on every rank
//!     .shard(rank, world_size)
//!     .even_shards(EvenShards::Pad);
//! let options = TfOptions::default()
//!     .sample_loader(|path, _row| deriva_bag_core::tf::image::load_rgb(path));
//! let ds = as_tf_dataset(bag, "Image", options, None)?;
//! let loader = ds.batches(shard)?;
//! for epoch in 0..10 {
//!     for batch in loader.epoch(epoch) {
//!         let batch = batch?; // same number of batches on every rank
//!         # let _ = batch;
//!     }
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod dataset;
mod error;
pub mod image;
mod spec;

pub use dataset::{
    as_tf_dataset, collate, read_bytes, BatchColumn, BatchTargets, BatchTensor, Padding, TfBatch,
    TfDataset, TfItem, TfLoader, TfOptions, TfSamples, SAMPLE_LOADER_EXAMPLE,
};
pub use deriva_bag_features::loader::elements::{Label, Sample, Target};
pub use deriva_bag_features::loader::{Batches, EvenShards, LoaderOptions};
/// Class indices from a vocabulary feature's terms; [`ClassLabels::target_transform`] is a
/// `target_transform` whose batches are `int64 [batch]` label tensors (signature `int64 []`).
pub use deriva_bag_features::ClassLabels;
pub use error::Error;
pub use spec::{DType, SampleSpec, Signature, TargetSpec, TensorSpec, TfSample};
/// The `tensorflow` crate this adapter is built with (exactly `=0.21.0`, for the TF 2.13.0 C
/// API). A training loop names it as `deriva_bag_core::tf::tensorflow` instead of depending on
/// `tensorflow` itself, so the tensors it feeds are the adapter's.
///
/// ```no_run
/// use deriva_bag_core::tf::tensorflow::{Scope, Session, SessionOptions};
/// let scope = Scope::new_root_scope();
/// let _session = Session::new(&SessionOptions::new(), &scope.graph()).unwrap();
/// ```
pub use tensorflow;
