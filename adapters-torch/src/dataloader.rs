//! [`DataLoader`]: batches of stacked tensors from a [`TorchDataset`], over the shared loader
//! core (ordering, seeded shuffle, sharding, `drop_last`, worker threads with prefetch).

use deriva_bag_features::loader::collate::LabelBatch;
use deriva_bag_features::loader::elements::{Label, Sample};
use deriva_bag_features::loader::{Batches, Loader, LoaderOptions};
use deriva_bag_features::{Rid, Row};
use std::sync::Arc;

use indexmap::IndexMap;
use tch::{Device, Kind, Tensor};

use crate::pool::{self, BatchPool};
use crate::{Error, TorchDataset, TorchItem};

/// The samples of one batch.
#[derive(Debug)]
pub enum BatchSamples {
    /// Tensor samples stacked on a new first dimension: `[batch, ...]`.
    Tensor(Tensor),
    /// Row samples (non-asset tables without a row loader).
    Rows(Vec<Row>),
}

impl BatchSamples {
    /// The stacked tensor, if the samples are tensors.
    pub fn tensor(&self) -> Option<&Tensor> {
        match self {
            BatchSamples::Tensor(t) => Some(t),
            BatchSamples::Rows(_) => None,
        }
    }
}

/// The targets of one batch.
#[derive(Debug)]
pub enum BatchTargets {
    /// No targets requested.
    None,
    /// Class indices (`int64`, `[batch]`), floats (`float32`, `[batch]`) or vectors
    /// (`float32`, `[batch, len]`).
    Tensor(Tensor),
    /// Multi-target labels, one entry per name.
    Map(IndexMap<String, BatchTargets>),
    /// Labels that do not stack (raw targets, missing values among classes).
    List(Vec<Label>),
}

impl BatchTargets {
    /// The stacked tensor, if the labels stacked into one.
    pub fn tensor(&self) -> Option<&Tensor> {
        match self {
            BatchTargets::Tensor(t) => Some(t),
            _ => None,
        }
    }

    fn from_labels(batch: LabelBatch) -> BatchTargets {
        match batch {
            LabelBatch::None => BatchTargets::None,
            LabelBatch::Class(v) => BatchTargets::Tensor(Tensor::from_slice(&v)),
            LabelBatch::Float(v) => BatchTargets::Tensor(Tensor::from_slice(&v)),
            LabelBatch::Vector { len, data } => {
                let rows = data.len().checked_div(len).unwrap_or(0);
                BatchTargets::Tensor(Tensor::from_slice(&data).view([rows as i64, len as i64]))
            }
            LabelBatch::Map(m) => BatchTargets::Map(
                m.into_iter()
                    .map(|(k, v)| (k, Self::from_labels(v)))
                    .collect(),
            ),
            LabelBatch::List(l) => BatchTargets::List(l),
        }
    }
}

/// One batch: stacked samples, collated targets, and the RIDs in batch order.
#[derive(Debug)]
pub struct TorchBatch {
    /// `[batch, ...]` samples.
    pub samples: BatchSamples,
    /// Targets (e.g. `int64 [batch]` class indices).
    pub targets: BatchTargets,
    /// The RIDs of the batch's elements, in order.
    pub rids: Vec<Rid>,
    /// Hands the sample tensor back to the loader's pool when the batch is dropped (dropped
    /// last, after `samples`).
    _lease: Option<Lease>,
}

/// A batch tensor's way back to the [`BatchPool`]: a second handle on it, given back on drop
/// only if it is then the last one (the caller kept no clone or view of the samples).
#[derive(Debug)]
struct Lease {
    tensor: Tensor,
    pool: Arc<BatchPool>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let tensor = std::mem::replace(&mut self.tensor, Tensor::new());
        self.pool.give_back(tensor);
    }
}

/// Stacks the items of one batch; tensor samples must share one shape (the error names the
/// first RID of each shape).
pub fn collate(items: Vec<TorchItem>) -> Result<TorchBatch, Error> {
    collate_pooled(items, None)
}

/// [`collate`] with the batch tensor taken from (and, when the batch is dropped, given back
/// to) `pool`, and the sample tensors recycled for the next samples.
fn collate_pooled(
    items: Vec<TorchItem>,
    pool: Option<&Arc<BatchPool>>,
) -> Result<TorchBatch, Error> {
    let mut tensors = Vec::with_capacity(items.len());
    let mut rows = Vec::new();
    let mut labels = Vec::with_capacity(items.len());
    let mut rids = Vec::with_capacity(items.len());
    let mut first_shape: Option<(Vec<i64>, Rid)> = None;
    for item in items {
        match item.sample {
            Sample::Loaded(t) => {
                let size = t.size();
                match &first_shape {
                    None => first_shape = Some((size, item.rid.clone())),
                    Some((shape, rid)) if *shape != size => {
                        return Err(Error::Collate {
                            detail: format!(
                                "sample {} has shape {size:?} but sample {rid} has {shape:?}; \
                                 resize or crop to one shape (e.g. ImagePipeline::center_crop)",
                                item.rid
                            ),
                        });
                    }
                    Some(_) => {}
                }
                tensors.push(t);
            }
            Sample::Row(r) => rows.push(r),
        }
        labels.push(item.target);
        rids.push(item.rid);
    }
    let mut lease = None;
    let samples = match (tensors.is_empty(), rows.is_empty()) {
        (false, true) => BatchSamples::Tensor(match first_shape {
            Some((shape, _))
                if tensors
                    .iter()
                    .all(|t| t.kind() == Kind::Float && t.device() == Device::Cpu) =>
            {
                let batch = stack_float_cpu(&tensors, &shape, pool.map(|p| &**p));
                for t in tensors {
                    pool::recycle_sample(t);
                }
                lease = pool.map(|pool| Lease {
                    tensor: batch.shallow_clone(),
                    pool: Arc::clone(pool),
                });
                batch
            }
            _ => Tensor::f_stack(&tensors, 0)?,
        }),
        (true, _) => BatchSamples::Rows(rows),
        (false, false) => {
            return Err(Error::Collate {
                detail: "the batch mixes tensor samples and row samples".into(),
            })
        }
    };
    Ok(TorchBatch {
        samples,
        targets: BatchTargets::from_labels(LabelBatch::collate(labels)),
        rids,
        _lease: lease,
    })
}

/// Stacks same-shape CPU float tensors with plain copies into one `empty` allocation, or a
/// pooled one (see `image::float_tensor_from_fn` for why loader threads avoid libtorch
/// kernels).
fn stack_float_cpu(tensors: &[Tensor], shape: &[i64], pool: Option<&BatchPool>) -> Tensor {
    let per = shape.iter().product::<i64>().max(0) as usize;
    let mut dims = Vec::with_capacity(shape.len() + 1);
    dims.push(tensors.len() as i64);
    dims.extend_from_slice(shape);
    let out = match pool {
        Some(pool) => pool.take(&dims),
        None => Tensor::empty(dims.as_slice(), (Kind::Float, Device::Cpu)),
    };
    crate::image::fill_float(out, |out| {
        for (slot, t) in out.chunks_exact_mut(per.max(1)).zip(tensors) {
            let t = t.contiguous();
            // SAFETY: `t` is a contiguous CPU float tensor of `shape` (checked by the
            // caller), so its storage holds `per` f32 values from `data_ptr`.
            let src = unsafe { std::slice::from_raw_parts(t.data_ptr().cast::<f32>(), per) };
            slot.copy_from_slice(src);
        }
    })
}

/// Batches a [`TorchDataset`]: `batch_size`, `shuffle(seed)`, `drop_last`, `num_workers`,
/// `prefetch`, `shard(rank, world_size)` and `even_shards(Pad | Drop)` from
/// [`LoaderOptions`] (see the crate docs for multi-node training). Iterating (`for batch
/// in &loader`) runs the next epoch; every epoch yields every kept element once (`Pad`
/// repeats a few to even out the ranks).
///
/// ```no_run
/// # fn demo(ds: &deriva_bag_core::torch::TorchDataset) -> Result<(), deriva_bag_core::torch::Error> {
/// use deriva_bag_core::torch::{DataLoader, LoaderOptions};
/// let loader = DataLoader::new(ds, LoaderOptions::default().batch_size(32).shuffle(0).num_workers(4))?;
/// for batch in &loader {
///     let batch = batch?;
///     let images = batch.samples.tensor().unwrap(); // [32, 3, 224, 224]
///     let labels = batch.targets.tensor().unwrap(); // [32] int64
///     # let _ = (images, labels);
/// }
/// # Ok(()) }
/// ```
pub struct DataLoader {
    inner: Loader<TorchDataset, TorchBatch>,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("options", self.inner.options())
            .field("batches", &self.inner.len())
            .finish()
    }
}

impl DataLoader {
    /// A loader over `dataset` (shares it; the dataset is cheap to clone).
    ///
    /// Batch tensors are reused: a dropped [`TorchBatch`] hands its sample tensor back to
    /// the loader, which fills it again for a later batch — unless the caller still holds it
    /// (a clone, a view, an autograd graph), in which case it is left alone. Keep a batch's
    /// values past the batch by holding on to the batch, or `copy()` them.
    pub fn new(dataset: &TorchDataset, options: LoaderOptions) -> Result<Self, Error> {
        // Batches in flight: `prefetch` per worker, the one being filled, the consumer's.
        let pool = Arc::new(BatchPool::new(
            options.num_workers.max(1) * (options.prefetch + 1) + 1,
        ));
        Ok(DataLoader {
            inner: Loader::new(Arc::new(dataset.clone()), options, move |items| {
                collate_pooled(items, Some(&pool))
            })?,
        })
    }

    /// Batches per epoch (for this rank).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether an epoch is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The next epoch's batches.
    pub fn iter(&self) -> Batches<TorchBatch, Error> {
        self.inner.iter()
    }

    /// Epoch `epoch`'s batches (its shuffle depends only on the seed and `epoch`).
    pub fn epoch(&self, epoch: u64) -> Batches<TorchBatch, Error> {
        self.inner.epoch(epoch)
    }

    /// The options.
    pub fn options(&self) -> &LoaderOptions {
        self.inner.options()
    }
}

impl IntoIterator for &DataLoader {
    type Item = Result<TorchBatch, Error>;
    type IntoIter = Batches<TorchBatch, Error>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The dtype a class-index batch has (for documentation and tests).
pub const CLASS_KIND: Kind = Kind::Int64;
