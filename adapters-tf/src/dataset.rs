//! [`as_tf_dataset`]: a re-iterable `(sample, target, rid)` dataset with an output signature,
//! and [`TfLoader`] batches that feed a `Session`.

use std::path::Path;
use std::sync::Arc;

use deriva_bag_features::loader::collate::LabelBatch;
use deriva_bag_features::loader::elements::{
    Element, ElementDataset, ElementOptions, ElementPlan, Label, Sample,
};
use deriva_bag_features::loader::{Batches, Loader, LoaderOptions, SampleSource};
use deriva_bag_features::{DatasetLike, Rid};
use indexmap::IndexMap;
use tensorflow::{Operation, SessionRunArgs, Tensor};

use crate::spec::{DType, Signature, TfSample};
use crate::Error;

/// What to load and how to label it (the PyTorch adapter's options, with [`TfSample`]
/// samples): `sample_loader` (required for asset tables), `row_loader`, `transform`,
/// `targets`, `target_transform`, `missing` (default `Error`), `reachable` (default `true`).
pub type TfOptions = ElementOptions<TfSample>;

/// One element: `sample`, `target`, `rid`.
pub type TfItem = Element<TfSample>;

/// The working loader the "sample_loader required" error shows.
pub const SAMPLE_LOADER_EXAMPLE: &str =
    "TfOptions::default().sample_loader(|path, _row| deriva_bag_tf::image::load_rgb(path))";

/// The raw bytes of a file as a `uint8 [n]` sample (`tf.io.read_file`); decode in a transform.
pub fn read_bytes(path: &Path) -> Result<TfSample, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    TfSample::uint8([bytes.len() as u64], bytes)
}

/// A re-iterable dataset: every pass ([`TfDataset::iter`]) yields every element, in RID order,
/// each checked against [`TfDataset::signature`]. Cheap to clone.
#[derive(Clone)]
pub struct TfDataset {
    inner: Arc<ElementDataset<TfSample>>,
    signature: Signature,
}

impl std::fmt::Debug for TfDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfDataset")
            .field("table", &self.inner.plan().table)
            .field("len", &self.len())
            .field("signature", &self.signature)
            .finish()
    }
}

/// Builds the dataset of `element_table`'s elements of `dataset`.
///
/// Construction does what [`as_torch_dataset`](https://docs.rs/deriva-bag-torch) does
/// (resolve, enumerate in RID order, resolve targets, apply `missing`, check asset files).
/// Then, with `output_signature = None`, it loads the first element to infer the signature —
/// so loader errors surface here — without consuming it: iteration starts at the first
/// element. An explicit signature reads nothing eagerly and may use `-1` for variable
/// dimensions; an element that does not fit it is an error naming its RID and both shapes.
///
/// ```no_run
/// # fn demo(bag: &impl deriva_bag_features::DatasetLike) -> Result<(), deriva_bag_tf::Error> {
/// use deriva_bag_tf::{as_tf_dataset, DType, Signature, TargetSpec, TensorSpec, TfOptions, TfSample};
/// let options = TfOptions::default().sample_loader(|path, _row| deriva_bag_tf::read_bytes(path));
/// let sig = Signature::new(TensorSpec::new(DType::UInt8, [-1]), TargetSpec::None);
/// let ds = as_tf_dataset(bag, "Image", options, Some(sig))?;
/// for epoch in 0..3 {
///     assert_eq!(ds.iter().count(), ds.len()); // every pass is complete
///     # let _ = epoch;
/// }
/// # Ok(()) }
/// ```
pub fn as_tf_dataset<D: DatasetLike>(
    dataset: &D,
    element_table: &str,
    options: TfOptions,
    output_signature: Option<Signature>,
) -> Result<TfDataset, Error> {
    let inner = ElementDataset::build(dataset, element_table, options, SAMPLE_LOADER_EXAMPLE)?;
    let signature = match output_signature {
        Some(sig) => sig,
        None => {
            if inner.is_empty() {
                return Err(Error::Empty {
                    table: inner.plan().table.to_string(),
                    targets: inner
                        .plan()
                        .targets
                        .iter()
                        .map(|t| t.name.clone())
                        .collect(),
                });
            }
            // Read, not consumed: iteration always starts again at index 0 (the reference
            // re-wraps a one-shot generator and so yields only the first element on later
            // passes; every pass here is complete).
            Signature::infer(&inner.element(0)?)?
        }
    };
    tracing::info!(table = %inner.plan().table, elements = inner.len(), ?signature, "tf dataset ready");
    Ok(TfDataset {
        inner: Arc::new(inner),
        signature,
    })
}

impl TfDataset {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The output signature (inferred or explicit).
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The element plan (table, resolved targets, elements).
    pub fn plan(&self) -> &ElementPlan {
        self.inner.plan()
    }

    /// The elements' RIDs in order.
    pub fn rids(&self) -> Vec<Rid> {
        self.inner.plan().rids().cloned().collect()
    }

    /// Loads element `index` and checks it against the signature.
    pub fn get(&self, index: usize) -> Result<TfItem, Error> {
        let element = self.inner.element(index)?;
        self.signature.check(&element)?;
        Ok(element)
    }

    /// One full pass over the elements, in order (call again for the next pass).
    pub fn iter(&self) -> impl Iterator<Item = Result<TfItem, Error>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Batches (`.batch(n)`), shuffles (`.shuffle(seed)`), shards (`.shard(n, i)`, evened
    /// out across ranks with `even_shards(Pad | Drop)`; see the crate docs for multi-node
    /// training) and prefetches on worker threads, with the same loader core as the PyTorch
    /// adapter.
    pub fn batches(&self, options: LoaderOptions) -> Result<TfLoader, Error> {
        Ok(TfLoader {
            inner: Loader::new(Arc::new(self.clone()), options, collate)?,
        })
    }
}

impl SampleSource for TfDataset {
    type Item = TfItem;
    type Error = Error;

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn get(&self, index: usize) -> Result<TfItem, Error> {
        TfDataset::get(self, index)
    }
}

/// A dense batch tensor of one of the fed dtypes.
#[derive(Debug, Clone)]
pub enum BatchTensor {
    /// `float32`.
    Float(Tensor<f32>),
    /// `int64`.
    Int64(Tensor<i64>),
    /// `uint8`.
    UInt8(Tensor<u8>),
}

impl BatchTensor {
    /// The dimensions.
    pub fn dims(&self) -> &[u64] {
        match self {
            BatchTensor::Float(t) => t.dims(),
            BatchTensor::Int64(t) => t.dims(),
            BatchTensor::UInt8(t) => t.dims(),
        }
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        match self {
            BatchTensor::Float(_) => DType::Float,
            BatchTensor::Int64(_) => DType::Int64,
            BatchTensor::UInt8(_) => DType::UInt8,
        }
    }

    /// Feeds this tensor to input `index` of `operation` (a placeholder).
    pub fn add_feed<'l>(
        &'l self,
        args: &mut SessionRunArgs<'l>,
        operation: &Operation,
        index: i32,
    ) {
        match self {
            BatchTensor::Float(t) => args.add_feed(operation, index, t),
            BatchTensor::Int64(t) => args.add_feed(operation, index, t),
            BatchTensor::UInt8(t) => args.add_feed(operation, index, t),
        }
    }
}

/// The targets of one batch.
#[derive(Debug, Clone)]
pub enum BatchTargets {
    /// No targets requested.
    None,
    /// Class indices (`int64 [batch]`), floats (`float32 [batch]`), vectors (`float32 [batch, n]`).
    Tensor(BatchTensor),
    /// Multi-target labels, per name.
    Map(IndexMap<String, BatchTargets>),
    /// Labels that do not stack.
    List(Vec<Label>),
}

impl BatchTargets {
    /// The stacked tensor, if the labels stacked into one.
    pub fn tensor(&self) -> Option<&BatchTensor> {
        match self {
            BatchTargets::Tensor(t) => Some(t),
            _ => None,
        }
    }

    fn from_labels(batch: LabelBatch) -> Result<BatchTargets, Error> {
        Ok(match batch {
            LabelBatch::None => BatchTargets::None,
            LabelBatch::Class(v) => BatchTargets::Tensor(BatchTensor::Int64(
                Tensor::new(&[v.len() as u64]).with_values(&v)?,
            )),
            LabelBatch::Float(v) => BatchTargets::Tensor(BatchTensor::Float(
                Tensor::new(&[v.len() as u64]).with_values(&v)?,
            )),
            LabelBatch::Vector { len, data } => {
                let rows = data.len().checked_div(len).unwrap_or(0);
                BatchTargets::Tensor(BatchTensor::Float(
                    Tensor::new(&[rows as u64, len as u64]).with_values(&data)?,
                ))
            }
            LabelBatch::Map(m) => BatchTargets::Map(
                m.into_iter()
                    .map(|(k, v)| Ok((k, Self::from_labels(v)?)))
                    .collect::<Result<_, Error>>()?,
            ),
            LabelBatch::List(l) => BatchTargets::List(l),
        })
    }
}

/// One batch: `[batch, ...]` samples, targets, and the RIDs in order.
#[derive(Debug, Clone)]
pub struct TfBatch {
    /// Stacked samples.
    pub samples: BatchTensor,
    /// Collated targets.
    pub targets: BatchTargets,
    /// RIDs in batch order.
    pub rids: Vec<Rid>,
}

impl TfBatch {
    /// The RIDs as a `string [batch]` tensor.
    pub fn rid_tensor(&self) -> Result<Tensor<String>, Error> {
        let rids: Vec<String> = self.rids.iter().map(|r| r.to_string()).collect();
        Ok(Tensor::new(&[rids.len() as u64]).with_values(&rids)?)
    }
}

/// Stacks the elements of one batch; samples must share dtype and shape.
pub fn collate(items: Vec<TfItem>) -> Result<TfBatch, Error> {
    let mut rids = Vec::with_capacity(items.len());
    let mut labels = Vec::with_capacity(items.len());
    let mut samples = Vec::with_capacity(items.len());
    for item in items {
        match item.sample {
            Sample::Loaded(s) => samples.push((s, item.rid.clone())),
            Sample::Row(_) => {
                return Err(Error::NotATensor {
                    rid: item.rid,
                    detail: "row samples cannot be batched; pass a row_loader".into(),
                })
            }
        }
        labels.push(item.target);
        rids.push(item.rid);
    }
    let samples = stack(samples)?;
    Ok(TfBatch {
        samples,
        targets: BatchTargets::from_labels(LabelBatch::collate(labels))?,
        rids,
    })
}

fn stack(samples: Vec<(TfSample, Rid)>) -> Result<BatchTensor, Error> {
    let Some((first, first_rid)) = samples.first() else {
        return Ok(BatchTensor::Float(Tensor::new(&[0])));
    };
    let (dtype, shape) = (first.dtype(), first.shape().to_vec());
    if let Some((odd, rid)) = samples
        .iter()
        .find(|(s, _)| s.dtype() != dtype || s.shape() != shape.as_slice())
    {
        return Err(Error::Collate {
            detail: format!(
                "element {rid} is {} {:?} but element {first_rid} is {dtype} {shape:?}; \
                 variable shapes batch only with batch_size 1",
                odd.dtype(),
                odd.shape()
            ),
        });
    }
    let mut dims = vec![samples.len() as u64];
    dims.extend_from_slice(&shape);
    Ok(match dtype {
        DType::Float => {
            let mut t = Tensor::<f32>::new(&dims);
            fill(
                &mut t,
                samples.iter().map(|(s, _)| match s {
                    TfSample::Float { data, .. } => data.as_slice(),
                    _ => &[],
                }),
            );
            BatchTensor::Float(t)
        }
        DType::Int64 => {
            let mut t = Tensor::<i64>::new(&dims);
            fill(
                &mut t,
                samples.iter().map(|(s, _)| match s {
                    TfSample::Int64 { data, .. } => data.as_slice(),
                    _ => &[],
                }),
            );
            BatchTensor::Int64(t)
        }
        DType::UInt8 => {
            let mut t = Tensor::<u8>::new(&dims);
            fill(
                &mut t,
                samples.iter().map(|(s, _)| match s {
                    TfSample::UInt8 { data, .. } => data.as_slice(),
                    _ => &[],
                }),
            );
            BatchTensor::UInt8(t)
        }
    })
}

/// Copies each sample's values into consecutive rows of the batch tensor.
fn fill<'a, T: tensorflow::TensorType + Copy + 'a>(
    t: &mut Tensor<T>,
    parts: impl Iterator<Item = &'a [T]>,
) {
    let mut offset = 0;
    for part in parts {
        t[offset..offset + part.len()].copy_from_slice(part);
        offset += part.len();
    }
}

/// Batches of a [`TfDataset`] (`.batch().shuffle().prefetch()` in one), over the shared loader
/// core. Each call to [`TfLoader::iter`] is the next epoch and yields every kept element.
pub struct TfLoader {
    inner: Loader<TfDataset, TfBatch>,
}

impl std::fmt::Debug for TfLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfLoader")
            .field("options", self.inner.options())
            .field("batches", &self.inner.len())
            .finish()
    }
}

impl TfLoader {
    /// Batches per epoch (for this shard).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether an epoch is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The next epoch's batches.
    pub fn iter(&self) -> Batches<TfBatch, Error> {
        self.inner.iter()
    }

    /// Epoch `epoch`'s batches.
    pub fn epoch(&self, epoch: u64) -> Batches<TfBatch, Error> {
        self.inner.epoch(epoch)
    }
}

impl IntoIterator for &TfLoader {
    type Item = Result<TfBatch, Error>;
    type IntoIter = Batches<TfBatch, Error>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
