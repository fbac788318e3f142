//! [`as_torch_dataset`]: a lazy, indexable `(sample, target, rid)` dataset over one element
//! table of a [`DatasetLike`] (DerivaML's `torch.utils.data.Dataset`).

use std::sync::Arc;

use deriva_bag_features::loader::cache::SampleCache;
use deriva_bag_features::loader::elements::{
    Element, ElementDataset, ElementOptions, ElementPlan, Label, Sample,
};
use deriva_bag_features::loader::SampleSource;
use deriva_bag_features::{DatasetLike, Rid, Row};
use tch::{Device, Kind, Tensor};

use crate::Error;

/// What to load and how to label it: `sample_loader` (required for asset tables),
/// `row_loader`, `transform`, `targets`, `target_transform`, `missing` (default
/// [`Missing::Error`](deriva_bag_features::Missing::Error)) and `reachable` (default `true`).
pub type TorchOptions = ElementOptions<Tensor>;

/// One item: `sample` (a tensor, or the row for non-asset tables), `target`, `rid`.
pub type TorchItem = Element<Tensor>;

/// The working loader the "sample_loader required" error shows.
pub const SAMPLE_LOADER_EXAMPLE: &str =
    "TorchOptions::default().sample_loader(|path, _row| deriva_bag_core::torch::image::load_rgb(path))";

/// A map-style dataset: `len()` items in RID order (or the order a [`DataLoader`](crate::DataLoader)
/// shuffles them into), each loaded lazily by [`TorchDataset::get`]. Cheap to clone.
#[derive(Clone)]
pub struct TorchDataset {
    inner: Arc<ElementDataset<Tensor>>,
    cache: Option<Arc<SampleCache<CachedItem>>>,
}

impl std::fmt::Debug for TorchDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchDataset")
            .field("table", &self.inner.plan().table)
            .field("len", &self.len())
            .field("cached", &self.cached())
            .finish()
    }
}

/// Builds the dataset of `element_table`'s elements of `dataset`.
///
/// At construction: the table is resolved; an asset table without `sample_loader` is an
/// error showing a working closure; elements are enumerated (reachable rows, or members
/// with `reachable(false)`) and sorted by RID; targets are resolved with the shared resolver
/// and `missing` applied (`Error` lists unlabeled RIDs); every kept asset file must be on
/// disk (the error names the missing RIDs and files).
///
/// ```no_run
/// # fn demo(bag: &deriva_bag_core::DatasetBag) -> Result<(), deriva_bag_core::torch::Error> {
/// use deriva_bag_core::features::{Missing, Selector, Targets};
/// use deriva_bag_core::torch::image::{ImagePipeline, ToTensor};
/// use deriva_bag_core::torch::{as_torch_dataset, ClassLabels, TorchOptions};
/// let pipeline = ImagePipeline::new().resize(224).center_crop(224, 224).imagenet_normalize();
/// // Class indices over the Glaucoma vocabulary's terms, sorted (Mild 0, …, Severe 3).
/// let grades = ClassLabels::of_feature(bag, "Image", "Glaucoma")?;
/// let options = TorchOptions::default()
///     .sample_loader(move |path, _row| pipeline.load(path))
///     .targets(Targets::new().with("Glaucoma", Selector::Newest))
///     .target_transform(grades.target_transform())
///     .missing(Missing::Skip);
/// let ds = as_torch_dataset(bag, "Image", options)?;
/// let item = ds.get(0)?;
/// println!("{} {:?}", item.rid, item.target);
/// # Ok(()) }
/// ```
pub fn as_torch_dataset<D: DatasetLike>(
    dataset: &D,
    element_table: &str,
    options: TorchOptions,
) -> Result<TorchDataset, Error> {
    let inner = ElementDataset::build(dataset, element_table, options, SAMPLE_LOADER_EXAMPLE)?;
    tracing::info!(
        table = %inner.plan().table,
        elements = inner.len(),
        "torch dataset ready"
    );
    Ok(TorchDataset {
        inner: Arc::new(inner),
        cache: None,
    })
}

impl TorchDataset {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Loads item `index` (sample loader, transform and target transform run now), or takes
    /// a copy of it from the cache.
    pub fn get(&self, index: usize) -> Result<TorchItem, Error> {
        let Some(cache) = &self.cache else {
            return Ok(self.inner.element(index)?);
        };
        let load = || Ok::<_, Error>(CachedItem::from_item(self.inner.element(index)?));
        Ok(cache.get_or_load(index, load, CachedItem::clone)?.to_item())
    }

    /// This dataset with a sample cache in front (`tf.data`'s `.cache()`, shared with the
    /// TensorFlow adapter): the first epoch loads (decodes, transforms) each item, later
    /// epochs copy it from memory — for [`TorchDataset::get`], [`TorchDataset::iter`] and
    /// every [`DataLoader`](crate::DataLoader) worker. At most `max_samples` items are kept
    /// (the first loaded; the rest load every time), so memory stays bounded at
    /// `max_samples ×` one sample's size; `ds.cache(ds.len())` keeps all. Each `get` hands
    /// out a copy, so changing a returned tensor in place never changes the cache. A new call
    /// starts an empty cache. See `deriva_bag_core::features::loader::cache`.
    ///
    /// ```no_run
    /// # fn demo(ds: &deriva_bag_core::torch::TorchDataset) -> Result<(), deriva_bag_core::torch::Error> {
    /// use deriva_bag_core::torch::{DataLoader, LoaderOptions};
    /// let cached = ds.cache(ds.len());
    /// let loader = DataLoader::new(&cached, LoaderOptions::default().batch_size(32).shuffle(7))?;
    /// for epoch in 0..10 {
    ///     for batch in loader.epoch(epoch) {
    ///         let _batch = batch?; // epoch 0 decodes, epochs 1.. reuse the samples
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn cache(&self, max_samples: usize) -> TorchDataset {
        TorchDataset {
            inner: Arc::clone(&self.inner),
            cache: Some(Arc::new(SampleCache::bounded(self.len(), max_samples))),
        }
    }

    /// How many items the cache holds (0 without [`TorchDataset::cache`]).
    pub fn cached(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.cached())
    }

    /// The items' RIDs in index order.
    pub fn rids(&self) -> Vec<Rid> {
        self.inner.plan().rids().cloned().collect()
    }

    /// The element plan (table, resolved targets, elements).
    pub fn plan(&self) -> &ElementPlan {
        self.inner.plan()
    }

    /// Every item in index order, loaded one by one.
    pub fn iter(&self) -> impl Iterator<Item = Result<TorchItem, Error>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl SampleSource for TorchDataset {
    type Item = TorchItem;
    type Error = Error;

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn get(&self, index: usize) -> Result<TorchItem, Error> {
        TorchDataset::get(self, index)
    }
}

/// An item as the cache keeps it: the tensor's bytes in plain memory. tch tensors are
/// `Send` but not `Sync`, and the cache is read from every loader worker at once; bytes are
/// both, and every [`TorchDataset::get`] builds a fresh tensor from them, so a caller that
/// changes its tensor in place never changes the cache.
#[derive(Debug, Clone)]
pub(crate) struct CachedItem {
    sample: CachedSample,
    target: Label,
    rid: Rid,
}

#[derive(Debug, Clone)]
enum CachedSample {
    Tensor {
        shape: Vec<i64>,
        kind: Kind,
        device: Device,
        bytes: Vec<u8>,
    },
    Row(Row),
}

impl CachedItem {
    fn from_item(item: TorchItem) -> Self {
        let sample = match item.sample {
            Sample::Loaded(t) => {
                let (kind, device) = (t.kind(), t.device());
                let cpu = t.to_device(Device::Cpu).contiguous();
                let len = cpu.numel() * kind.elt_size_in_bytes();
                let bytes = if len == 0 {
                    Vec::new()
                } else {
                    // SAFETY: `cpu` is a contiguous CPU tensor of `numel` elements of `kind`,
                    // so its storage holds `len` bytes from `data_ptr`; it lives to the end
                    // of this block and nothing writes to it meanwhile.
                    unsafe { std::slice::from_raw_parts(cpu.data_ptr().cast::<u8>(), len) }.to_vec()
                };
                CachedSample::Tensor {
                    shape: cpu.size(),
                    kind,
                    device,
                    bytes,
                }
            }
            Sample::Row(r) => CachedSample::Row(r),
        };
        CachedItem {
            sample,
            target: item.target,
            rid: item.rid,
        }
    }

    fn to_item(&self) -> TorchItem {
        let sample = match &self.sample {
            CachedSample::Tensor {
                shape,
                kind,
                device,
                bytes,
            } => {
                let t = Tensor::empty(shape.as_slice(), (*kind, Device::Cpu));
                if !bytes.is_empty() {
                    // SAFETY: `t` was just allocated as a contiguous CPU tensor of `shape` and
                    // `kind`, i.e. `bytes.len()` bytes (they were read from a tensor of the
                    // same shape and kind); nothing else refers to it yet.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(t.data_ptr().cast::<u8>(), bytes.len())
                    };
                    out.copy_from_slice(bytes);
                }
                Sample::Loaded(if *device == Device::Cpu {
                    t
                } else {
                    t.to_device(*device)
                })
            }
            CachedSample::Row(r) => Sample::Row(r.clone()),
        };
        Element {
            sample,
            target: self.target.clone(),
            rid: self.rid.clone(),
        }
    }
}
