//! [`as_torch_dataset`]: a lazy, indexable `(sample, target, rid)` dataset over one element
//! table of a [`DatasetLike`] (the chapter's `torch.utils.data.Dataset`).

use std::sync::Arc;

use deriva_bag_features::loader::elements::{Element, ElementDataset, ElementOptions, ElementPlan};
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
}

impl std::fmt::Debug for TorchDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchDataset")
            .field("table", &self.inner.plan().table)
            .field("len", &self.len())
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

    /// Loads item `index` (sample loader, transform and target transform run now).
    pub fn get(&self, index: usize) -> Result<TorchItem, Error> {
        Ok(self.inner.element(index)?)
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
