//! [`as_tf_dataset`]: a re-iterable `(sample, target, rid)` dataset with an output signature,
//! and [`TfLoader`] batches that feed a `Session`.

use std::path::Path;
use std::sync::Arc;

use deriva_bag_features::loader::cache::SampleCache;
use deriva_bag_features::loader::collate::{
    pad_into, padded_shape, ColumnBatch, LabelBatch, RowColumns,
};
use deriva_bag_features::loader::elements::{
    Element, ElementDataset, ElementOptions, ElementPlan, Label, Sample,
};
use deriva_bag_features::loader::{Batches, Loader, LoaderOptions, SampleSource};
use deriva_bag_features::{DatasetLike, Rid, Row};
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
    "TfOptions::default().sample_loader(|path, _row| deriva_bag_core::tf::image::load_rgb(path))";

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
    cache: Option<Arc<SampleCache<TfItem>>>,
}

impl std::fmt::Debug for TfDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfDataset")
            .field("table", &self.inner.plan().table)
            .field("len", &self.len())
            .field("signature", &self.signature)
            .field("cached", &self.cache.as_ref().map(|c| c.cached()))
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
/// # fn demo(bag: &impl deriva_bag_core::features::DatasetLike) -> Result<(), deriva_bag_core::tf::Error> {
/// use deriva_bag_core::tf::{as_tf_dataset, DType, Signature, TargetSpec, TensorSpec, TfOptions, TfSample};
/// let options = TfOptions::default().sample_loader(|path, _row| deriva_bag_core::tf::read_bytes(path));
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
            Signature::infer(&inner.element(0)?, &inner.plan().row_columns)?
        }
    };
    tracing::info!(table = %inner.plan().table, elements = inner.len(), ?signature, "tf dataset ready");
    Ok(TfDataset {
        inner: Arc::new(inner),
        signature,
        cache: None,
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

    /// Loads element `index` (or takes it from the cache) and checks it against the
    /// signature.
    pub fn get(&self, index: usize) -> Result<TfItem, Error> {
        let load = || {
            let element = self.inner.element(index)?;
            self.signature.check(&element)?;
            Ok(element)
        };
        match &self.cache {
            Some(cache) => cache.get_or_load(index, load, TfItem::clone),
            None => load(),
        }
    }

    /// This dataset with a sample cache in front (`tf.data`'s `.cache()`): the first pass
    /// loads (decodes, transforms) each element, later passes and epochs reuse it — across
    /// [`TfDataset::iter`], [`TfDataset::batches`] and every worker. At most `max_samples`
    /// elements are kept (the first loaded; the rest load every time), so memory stays
    /// bounded at `max_samples ×` one sample's size; `ds.cache(ds.len())` keeps all. A new
    /// call starts an empty cache. See `deriva_bag_core::features::loader::cache`.
    ///
    /// ```no_run
    /// # fn demo(ds: &deriva_bag_core::tf::TfDataset) -> Result<(), deriva_bag_core::tf::Error> {
    /// use deriva_bag_core::tf::LoaderOptions;
    /// let cached = ds.cache(ds.len());
    /// let loader = cached.batches(LoaderOptions::default().batch_size(32).shuffle(7))?;
    /// for epoch in 0..10 {
    ///     for batch in loader.epoch(epoch) {
    ///         let _batch = batch?; // epoch 0 decodes, epochs 1.. reuse the samples
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn cache(&self, max_samples: usize) -> TfDataset {
        TfDataset {
            cache: Some(Arc::new(SampleCache::bounded(self.len(), max_samples))),
            ..self.clone()
        }
    }

    /// How many elements the cache holds (0 without [`TfDataset::cache`]).
    pub fn cached(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.cached())
    }

    /// One full pass over the elements, in order (call again for the next pass).
    pub fn iter(&self) -> impl Iterator<Item = Result<TfItem, Error>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Batches (`.batch(n)`), shuffles (`.shuffle(seed)`), shards (`.shard(n, i)`, evened
    /// out across ranks with `even_shards(Pad | Drop)`; see the crate docs for multi-node
    /// training) and prefetches on worker threads, with the same loader core as the PyTorch
    /// adapter.
    ///
    /// Samples of one batch must share one shape (else use [`TfDataset::padded_batches`]).
    /// Row samples (a non-asset table without a `row_loader`) become one `[batch]` tensor per
    /// column ([`TfSamples::Columns`]).
    pub fn batches(&self, options: LoaderOptions) -> Result<TfLoader, Error> {
        self.loader(options, None)
    }

    /// [`TfDataset::batches`] for samples of different shapes (`tf.data`'s
    /// `padded_batch`): every sample of a batch is padded at the end of each dimension to
    /// the batch's padded shape — per dimension `padding.shape`'s size, or where that is `-1`
    /// (or `padding.shape` is empty) the largest size in the batch — and the padded area
    /// holds `padding.value`. The batch is `[batch, padded...]`; [`TfBatch::shapes`] keeps
    /// each sample's own shape (for masks). Samples must share dtype and rank; one larger
    /// than a fixed size is an error naming it.
    ///
    /// ```no_run
    /// # fn demo(ds: &deriva_bag_core::tf::TfDataset) -> Result<(), deriva_bag_core::tf::Error> {
    /// use deriva_bag_core::tf::{LoaderOptions, Padding};
    /// // Variable-width images: pad H and W to the batch's largest, channels fixed at 3.
    /// let padding = Padding::default().value(-1.0).shape([-1, -1, 3]);
    /// let loader = ds.padded_batches(LoaderOptions::default().batch_size(8), padding)?;
    /// for batch in &loader {
    ///     let batch = batch?;
    ///     println!("{:?} from {:?}", batch.samples.tensor().map(|t| t.dims()), batch.shapes);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn padded_batches(
        &self,
        options: LoaderOptions,
        padding: Padding,
    ) -> Result<TfLoader, Error> {
        self.loader(options, Some(padding))
    }

    fn loader(&self, options: LoaderOptions, padding: Option<Padding>) -> Result<TfLoader, Error> {
        let collator = Collator {
            table: self.inner.plan().table.to_string(),
            columns: self.inner.plan().row_columns.clone(),
            padding,
        };
        Ok(TfLoader {
            inner: Loader::new(Arc::new(self.clone()), options, move |items| {
                collator.collate(items)
            })?,
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

/// The samples of one batch.
#[derive(Debug, Clone)]
pub enum TfSamples {
    /// Tensor samples stacked (and padded, with [`TfDataset::padded_batches`]):
    /// `[batch, ...]`.
    Tensor(BatchTensor),
    /// Row samples: one `[batch]` column per non-system column of the element table, in
    /// catalog order — `int64` (integer columns), `float32` (float columns; NULL is NaN),
    /// `bool`, or `string` (every other column, as text).
    Columns(IndexMap<String, BatchColumn>),
}

/// One `[batch]` column of row samples.
///
/// `int64` and `float32` columns are tensors ready to feed. TensorFlow's `bool` and
/// `string` tensors cannot move between threads (the `tensorflow` crate does not make them
/// `Send`), so batches, which loader workers build, carry those values and
/// [`BatchColumn::bool_tensor`] / [`BatchColumn::string_tensor`] make the tensor on the thread
/// that feeds it.
#[derive(Debug, Clone)]
pub enum BatchColumn {
    /// An `int64` or `float32` tensor.
    Tensor(BatchTensor),
    /// Boolean values.
    Bool(Vec<bool>),
    /// Text values.
    Text(Vec<String>),
}

impl BatchColumn {
    /// The column's dtype.
    pub fn dtype(&self) -> DType {
        match self {
            BatchColumn::Tensor(t) => t.dtype(),
            BatchColumn::Bool(_) => DType::Bool,
            BatchColumn::Text(_) => DType::String,
        }
    }

    /// The tensor of an `int64` / `float32` column.
    pub fn tensor(&self) -> Option<&BatchTensor> {
        match self {
            BatchColumn::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// A `bool [batch]` tensor of a boolean column (`None` for other columns).
    pub fn bool_tensor(&self) -> Result<Option<Tensor<bool>>, Error> {
        match self {
            BatchColumn::Bool(v) => Ok(Some(Tensor::new(&[v.len() as u64]).with_values(v)?)),
            _ => Ok(None),
        }
    }

    /// A `string [batch]` tensor of a text column (`None` for other columns).
    pub fn string_tensor(&self) -> Result<Option<Tensor<String>>, Error> {
        match self {
            BatchColumn::Text(v) => Ok(Some(Tensor::new(&[v.len() as u64]).with_values(v)?)),
            _ => Ok(None),
        }
    }
}

impl TfSamples {
    /// The stacked tensor of tensor samples.
    pub fn tensor(&self) -> Option<&BatchTensor> {
        match self {
            TfSamples::Tensor(t) => Some(t),
            TfSamples::Columns(_) => None,
        }
    }

    /// The per-column values of row samples.
    pub fn columns(&self) -> Option<&IndexMap<String, BatchColumn>> {
        match self {
            TfSamples::Columns(c) => Some(c),
            TfSamples::Tensor(_) => None,
        }
    }
}

/// One batch: `[batch, ...]` samples, targets, and the RIDs in order.
#[derive(Debug, Clone)]
pub struct TfBatch {
    /// Stacked samples, or per-column tensors of row samples.
    pub samples: TfSamples,
    /// Collated targets.
    pub targets: BatchTargets,
    /// RIDs in batch order.
    pub rids: Vec<Rid>,
    /// Each tensor sample's own shape before padding, in batch order (all equal unless the
    /// batch was padded); empty for row samples.
    pub shapes: Vec<Vec<u64>>,
}

impl TfBatch {
    /// The RIDs as a `string [batch]` tensor.
    pub fn rid_tensor(&self) -> Result<Tensor<String>, Error> {
        let rids: Vec<String> = self.rids.iter().map(|r| r.to_string()).collect();
        Ok(Tensor::new(&[rids.len() as u64]).with_values(&rids)?)
    }
}

/// How [`TfDataset::padded_batches`] pads samples of different shapes (`tf.data`'s
/// `padded_batch(padded_shapes, padding_values)`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Padding {
    /// What the padded area holds (default 0), converted to the sample dtype (`float32`
    /// as is; `int64` and `uint8` rounded toward zero and saturated).
    pub value: f64,
    /// Per-dimension sizes to pad to; `-1` (or an empty list) is the largest size in the
    /// batch.
    pub shape: Vec<i64>,
}

impl Padding {
    /// Sets the pad value.
    pub fn value(mut self, value: f64) -> Self {
        self.value = value;
        self
    }

    /// Sets the padded shape (`-1` = the batch's largest).
    pub fn shape(mut self, shape: impl Into<Vec<i64>>) -> Self {
        self.shape = shape.into();
        self
    }
}

/// Stacks the elements of one batch; samples must share dtype and shape. (Without a
/// dataset there are no row columns to collate: batch row samples with
/// [`TfDataset::batches`].)
pub fn collate(items: Vec<TfItem>) -> Result<TfBatch, Error> {
    Collator::default().collate(items)
}

/// Collation of one dataset: its table and row columns, and the padding if any.
#[derive(Debug, Clone, Default)]
struct Collator {
    table: String,
    columns: RowColumns,
    padding: Option<Padding>,
}

impl Collator {
    fn collate(&self, items: Vec<TfItem>) -> Result<TfBatch, Error> {
        let mut rids = Vec::with_capacity(items.len());
        let mut labels = Vec::with_capacity(items.len());
        let mut tensors = Vec::with_capacity(items.len());
        let mut rows = Vec::new();
        for item in items {
            match item.sample {
                Sample::Loaded(s) => tensors.push((s, item.rid.clone())),
                Sample::Row(r) => rows.push(r),
            }
            labels.push(item.target);
            rids.push(item.rid);
        }
        let (samples, shapes) = match (tensors.is_empty(), rows.is_empty()) {
            (true, false) => (self.columns(&rows)?, Vec::new()),
            (_, true) => {
                let shapes = tensors.iter().map(|(s, _)| s.shape().to_vec()).collect();
                (
                    TfSamples::Tensor(stack(tensors, self.padding.as_ref())?),
                    shapes,
                )
            }
            (false, false) => {
                return Err(Error::Collate {
                    detail: "the batch mixes tensor samples and row samples".into(),
                })
            }
        };
        Ok(TfBatch {
            samples,
            targets: BatchTargets::from_labels(LabelBatch::collate(labels))?,
            rids,
            shapes,
        })
    }

    fn columns(&self, rows: &[Row]) -> Result<TfSamples, Error> {
        let refs: Vec<&Row> = rows.iter().collect();
        let n = [rows.len() as u64];
        let mut out = IndexMap::new();
        for (name, column) in self.columns.collate(&self.table, &refs)? {
            let tensor = match column {
                ColumnBatch::Int64(v) => {
                    BatchColumn::Tensor(BatchTensor::Int64(Tensor::new(&n).with_values(&v)?))
                }
                ColumnBatch::Float(v) => {
                    BatchColumn::Tensor(BatchTensor::Float(Tensor::new(&n).with_values(&v)?))
                }
                ColumnBatch::Bool(v) => BatchColumn::Bool(v),
                ColumnBatch::Text(v) => BatchColumn::Text(v),
            };
            out.insert(name, tensor);
        }
        Ok(TfSamples::Columns(out))
    }
}

fn stack(samples: Vec<(TfSample, Rid)>, padding: Option<&Padding>) -> Result<BatchTensor, Error> {
    let Some((first, first_rid)) = samples.first() else {
        return Ok(BatchTensor::Float(Tensor::new(&[0])));
    };
    let (dtype, shape) = (first.dtype(), first.shape().to_vec());
    if let Some((odd, rid)) = samples.iter().find(|(s, _)| s.dtype() != dtype) {
        return Err(Error::Collate {
            detail: format!(
                "element {rid} is {} but element {first_rid} is {dtype}",
                odd.dtype()
            ),
        });
    }
    let same = samples.iter().all(|(s, _)| s.shape() == shape.as_slice());
    let padded = match (same, padding) {
        (true, None) => shape,
        (false, None) => {
            let odd = samples.iter().find(|(s, _)| s.shape() != shape.as_slice());
            let (odd_shape, rid) = odd.map_or((&[][..], first_rid), |(s, r)| (s.shape(), r));
            return Err(Error::Collate {
                detail: format!(
                    "element {rid} has shape {odd_shape:?} but element {first_rid} has \
                     {shape:?}; use padded_batches (or batch_size 1) for variable shapes"
                ),
            });
        }
        (_, Some(p)) => {
            let shapes: Vec<Vec<u64>> = samples.iter().map(|(s, _)| s.shape().to_vec()).collect();
            padded_shape(&shapes, &p.shape).map_err(|(i, detail)| Error::Collate {
                detail: format!("cannot pad element {}: {detail}", samples[i].1),
            })?
        }
    };
    let pad = padding.map_or(0.0, |p| p.value);
    let mut dims = vec![samples.len() as u64];
    dims.extend_from_slice(&padded);
    let parts = samples.iter().map(|(s, _)| s);
    Ok(match dtype {
        DType::Float => BatchTensor::Float(fill(&dims, pad as f32, parts, |s| match s {
            TfSample::Float { data, .. } => data,
            _ => &[],
        })),
        DType::Int64 => BatchTensor::Int64(fill(&dims, pad as i64, parts, |s| match s {
            TfSample::Int64 { data, .. } => data,
            _ => &[],
        })),
        DType::UInt8 | DType::Bool | DType::String => {
            BatchTensor::UInt8(fill(&dims, pad as u8, parts, |s| match s {
                TfSample::UInt8 { data, .. } => data,
                _ => &[],
            }))
        }
    })
}

/// A `dims` tensor (`[batch, padded...]`) holding each sample in its row, padded with `pad`
/// where the sample is smaller than the padded shape.
fn fill<'a, T: tensorflow::TensorType + Copy + 'a>(
    dims: &[u64],
    pad: T,
    samples: impl Iterator<Item = &'a TfSample>,
    data: impl Fn(&'a TfSample) -> &'a [T],
) -> Tensor<T> {
    let mut t = Tensor::<T>::new(dims);
    let padded = &dims[1..];
    let per = padded.iter().product::<u64>() as usize;
    let samples: Vec<&TfSample> = samples.collect();
    if samples.iter().any(|s| s.shape() != padded) {
        t.iter_mut().for_each(|v| *v = pad);
    }
    for (row, sample) in t.chunks_mut(per.max(1)).zip(samples) {
        let values = data(sample);
        if sample.shape() == padded {
            row[..values.len()].copy_from_slice(values);
        } else {
            pad_into(row, padded, values, sample.shape());
        }
    }
    t
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
