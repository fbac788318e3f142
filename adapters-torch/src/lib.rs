//! PyTorch (tch/libtorch) adapter for DerivaML datasets: DerivaML's
//! `bag.as_torch_dataset(...)` and a `DataLoader` to batch it.
//!
//! Users depend on `deriva-bag-core` alone with its cargo feature `torch`, and reach this
//! crate as `deriva_bag_core::torch` (as every example here does), its `tch` as
//! `deriva_bag_core::torch::tch`, and `DatasetBag::as_torch_dataset` on the bag itself.
//!
//! [`as_torch_dataset`] turns one element table of any
//! [`DatasetLike`](deriva_bag_features::DatasetLike) (a downloaded bag, a live dataset) into
//! a lazy map-style dataset of `(sample, target, rid)` items in RID order. Samples come from
//! a `sample_loader` (required for asset tables; [`image`] has PNG/JPEG loaders with
//! torchvision-style resize, crop and normalize) or are the element rows; targets are
//! resolved by the one shared resolver (`targets`, `target_transform`, `missing`), and
//! [`ClassLabels`] turns a vocabulary feature's terms into class indices.
//! [`DataLoader`] batches it into stacked tensors with seeded shuffling, sharding by
//! `(rank, world_size)`, `drop_last` and worker threads — all from the framework-neutral
//! loader core in `deriva-bag-features`, which the TensorFlow adapter shares.
//! [`TorchDataset::cache`] keeps decoded samples for later epochs; the `DataLoader` reuses
//! the tensors of dropped batches instead of faulting in fresh memory for every batch.
//!
//! It is not a model zoo or a training framework: bring your own `tch::nn` model, written
//! against the re-exported [`tch`] (so the `tch` version always matches this adapter's).
//!
//! Build and run with libtorch 2.13.0 (`. .ci/ml-libs.sh` provisions it and sets
//! `LIBTORCH`/`LD_LIBRARY_PATH`).
//!
//! ```no_run
//! # fn demo(bag: &impl deriva_bag_core::features::DatasetLike) -> Result<(), deriva_bag_core::torch::Error> {
//! use deriva_bag_core::torch::{as_torch_dataset, DataLoader, LoaderOptions, TorchOptions};
//! let options = TorchOptions::default()
//!     .sample_loader(|path, _row| deriva_bag_core::torch::image::load_rgb(path));
//! let ds = as_torch_dataset(bag, "Image", options)?;
//! let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(2).num_workers(2))?;
//! for batch in &loader {
//!     let batch = batch?;
//!     println!("{:?} {:?}", batch.rids, batch.samples.tensor().map(|t| t.size()));
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
//! use deriva_bag_core::torch::{as_torch_dataset, DataLoader, EvenShards, LoaderOptions, TorchOptions};
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
//! let options = TorchOptions::default()
//!     .sample_loader(|path, _row| deriva_bag_core::torch::image::load_rgb(path));
//! let ds = as_torch_dataset(bag, "Image", options)?;
//! let loader = DataLoader::new(&ds, shard)?;
//! for epoch in 0..10 {
//!     for batch in loader.epoch(epoch) {
//!         let batch = batch?; // same number of batches on every rank
//!         # let _ = batch;
//!     }
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod dataloader;
mod dataset;
mod error;
pub mod image;
mod pool;

pub use dataloader::{collate, BatchSamples, BatchTargets, DataLoader, TorchBatch, CLASS_KIND};
pub use dataset::{as_torch_dataset, TorchDataset, TorchItem, TorchOptions, SAMPLE_LOADER_EXAMPLE};
pub use deriva_bag_features::loader::elements::{Label, Sample, Target};
pub use deriva_bag_features::loader::{Batches, EvenShards, LoaderOptions};
/// Class indices from a vocabulary feature's terms; [`ClassLabels::target_transform`] is a
/// `target_transform` whose batches are `int64 [batch]` tensors for `cross_entropy`.
pub use deriva_bag_features::ClassLabels;
pub use error::Error;
/// The `tch` this adapter is built with (exactly `=0.26.0`, for libtorch 2.13.0). A training
/// loop names it as `deriva_bag_core::torch::tch` instead of depending on `tch` itself: a
/// second `tch` version in one build does not link.
///
/// ```no_run
/// use deriva_bag_core::torch::tch::{nn, Device, Kind, Tensor};
/// let vs = nn::VarStore::new(Device::Cpu);
/// let fc = nn::linear(vs.root(), 3, 4, Default::default());
/// let logits = nn::Module::forward(&fc, &Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)));
/// assert_eq!(logits.size(), [2, 4]);
/// ```
pub use tch;
