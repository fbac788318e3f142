//! Convenience methods that forward to the optional layer crates (cargo feature
//! `restructure`), so a user who depends on `deriva-bag-core` alone can write
//! `bag.restructure_assets(..)` as DerivaML does.

#[cfg(feature = "restructure")]
use std::path::Path;

#[cfg(feature = "restructure")]
use crate::restructure::{Manifest, RestructureOptions};
use crate::DatasetBag;

#[cfg(feature = "restructure")]
impl DatasetBag {
    /// Lays the bag's assets out as class folders under `output_dir` (DerivaML's
    /// `bag.restructure_assets(...)`); see [`crate::restructure`] for the layout rules.
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::restructure::{RestructureOptions, Selector, Targets};
    /// use deriva_bag_core::{fixtures, DatasetBag, OpenOptions};
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(&tmp.path().join("bags"))?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..OpenOptions::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let out = tmp.path().join("ml_data");
    /// let manifest = bag.restructure_assets(
    ///     &out,
    ///     &RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest)),
    /// )?;
    /// assert_eq!(manifest.len(), 7);
    /// assert!(out.join("training/Severe/retina_001.jpg").exists());
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn restructure_assets(
        &self,
        output_dir: impl AsRef<Path>,
        options: &RestructureOptions,
    ) -> Result<Manifest, crate::restructure::Error> {
        crate::restructure::restructure_assets(self, output_dir.as_ref(), options)
    }
}

#[cfg(feature = "torch")]
#[cfg_attr(docsrs, doc(cfg(feature = "torch")))]
impl DatasetBag {
    /// DerivaML's `bag.as_torch_dataset(...)`: a lazy `(sample, target, rid)` dataset over
    /// `element_table` in RID order; see [`crate::torch::as_torch_dataset`].
    ///
    /// ```no_run
    /// # fn demo(bag: &deriva_bag_core::DatasetBag) -> Result<(), deriva_bag_core::torch::Error> {
    /// use deriva_bag_core::torch::{image::load_rgb, DataLoader, LoaderOptions, TorchOptions};
    /// let ds = bag.as_torch_dataset("Image", TorchOptions::default().sample_loader(|p, _row| load_rgb(p)))?;
    /// let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(32).shuffle(0).num_workers(4))?;
    /// # let _ = loader;
    /// # Ok(()) }
    /// ```
    pub fn as_torch_dataset(
        &self,
        element_table: &str,
        options: crate::torch::TorchOptions,
    ) -> Result<crate::torch::TorchDataset, crate::torch::Error> {
        crate::torch::as_torch_dataset(self, element_table, options)
    }
}

#[cfg(feature = "tf")]
#[cfg_attr(docsrs, doc(cfg(feature = "tf")))]
impl DatasetBag {
    /// DerivaML's `bag.as_tf_dataset(...)`: a re-iterable dataset with an output signature
    /// (inferred from the first element when `None`); see [`crate::tf::as_tf_dataset`].
    ///
    /// ```no_run
    /// # fn demo(bag: &deriva_bag_core::DatasetBag) -> Result<(), deriva_bag_core::tf::Error> {
    /// use deriva_bag_core::tf::image::{ImagePipeline, ToSample};
    /// use deriva_bag_core::tf::TfOptions;
    /// let pipeline = ImagePipeline::new().resize(224).center_crop(224, 224);
    /// let options = TfOptions::default().sample_loader(move |p, _row| pipeline.load(p));
    /// let ds = bag.as_tf_dataset("Image", options, None)?;
    /// println!("{:?}", ds.signature()); // float32 [224, 224, 3]
    /// # Ok(()) }
    /// ```
    pub fn as_tf_dataset(
        &self,
        element_table: &str,
        options: crate::tf::TfOptions,
        output_signature: Option<crate::tf::Signature>,
    ) -> Result<crate::tf::TfDataset, crate::tf::Error> {
        crate::tf::as_tf_dataset(self, element_table, options, output_signature)
    }
}
