//! [`as_torch_dataset`]: a lazy, indexable `(sample, target, rid)` dataset over one element
//! table of a [`DatasetLike`] (the chapter's `torch.utils.data.Dataset`).

use std::sync::Arc;

use deriva_bag_features::loader::cache::SampleCache;
use deriva_bag_features::loader::elements::{
    Element, ElementDataset, ElementOptions, ElementPlan, Sample,
};
use deriva_bag_features::loader::SampleSource;
use deriva_bag_features::{DatasetLike, Rid};
use tch::Tensor;

use crate::Error;

/// What to load and how to label it: `sample_loader` (required for asset tables),
/// `row_loader`, `transform`, `targets`, `target_transform`, `missing` (default
/// [`Missing::Error`](deriva_bag_features::Missing::Error)) and `reachable` (default `true`).
pub type TorchOptions = ElementOptions<Tensor>;

/// One item: `sample` (a tensor, or the row for non-asset tables), `target`, `rid`.
pub type TorchItem = Element<Tensor>;

/// The working loader the "sample_loader required" error shows.
pub const SAMPLE_LOADER_EXAMPLE: &str =
    "TorchOptions::default().sample_loader(|path, _row| deriva_bag_torch::image::load_rgb(path))";

/// A map-style dataset: `len()` items in RID order (or the order a [`DataLoader`](crate::DataLoader)
/// shuffles them into), each loaded lazily by [`TorchDataset::get`]. Cheap to clone.
#[derive(Clone)]
pub struct TorchDataset {
    inner: Arc<ElementDataset<Tensor>>,
    cache: Option<Arc<SampleCache<TorchItem>>>,
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
/// # fn demo(bag: &impl deriva_bag_features::DatasetLike) -> Result<(), deriva_bag_torch::Error> {
/// use deriva_bag_features::{Missing, Selector, Targets};
/// use deriva_bag_torch::image::{ImagePipeline, ToTensor};
/// use deriva_bag_torch::{as_torch_dataset, Label, TorchOptions};
/// let pipeline = ImagePipeline::new().resize(224).center_crop(224, 224).imagenet_normalize();
/// let classes = ["Normal", "Mild", "Moderate", "Severe"];
/// let options = TorchOptions::default()
///     .sample_loader(move |path, _row| pipeline.load(path))
///     .targets(Targets::new().with("Glaucoma", Selector::Newest))
///     .target_transform(move |t| {
///         let term = t.and_then(|t| t.label()).ok_or("unlabeled image")?;
///         let idx = classes.iter().position(|c| *c == term).ok_or("unknown grade")?;
///         Ok::<_, &str>(Label::Class(idx as i64))
///     })
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
        let load = || Ok(self.inner.element(index)?);
        match &self.cache {
            Some(cache) => cache.get_or_load(index, load, copy_item),
            None => load(),
        }
    }

    /// This dataset with a sample cache in front (`tf.data`'s `.cache()`, shared with the
    /// TensorFlow adapter): the first epoch loads (decodes, transforms) each item, later
    /// epochs copy it from memory — for [`TorchDataset::get`], [`TorchDataset::iter`] and
    /// every [`DataLoader`](crate::DataLoader) worker. At most `max_samples` items are kept
    /// (the first loaded; the rest load every time), so memory stays bounded at
    /// `max_samples ×` one sample's size; `ds.cache(ds.len())` keeps all. Each `get` hands
    /// out a copy, so changing a returned tensor in place never changes the cache. A new call
    /// starts an empty cache. See `deriva_bag_features::loader::cache`.
    ///
    /// ```no_run
    /// # fn demo(ds: &deriva_bag_torch::TorchDataset) -> Result<(), deriva_bag_torch::Error> {
    /// use deriva_bag_torch::{DataLoader, LoaderOptions};
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

/// A copy of an item whose tensor shares nothing with the original (the cache keeps one, the
/// caller may change the other in place).
fn copy_item(item: &TorchItem) -> TorchItem {
    let sample = match &item.sample {
        Sample::Loaded(t) => Sample::Loaded(crate::image::deep_copy(t)),
        Sample::Row(r) => Sample::Row(r.clone()),
    };
    Element {
        sample,
        target: item.target.clone(),
        rid: item.rid.clone(),
    }
}
