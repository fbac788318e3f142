//! Write operations that a downloaded bag refuses: bags are read-only snapshots.
//! Each returns [`Error::ReadOnly`] telling the user to use a live
//! Execution instead.

use deriva_bag_features::Rid;

use super::DatasetBag;
use crate::{Error, Result};

impl DatasetBag {
    /// Always `Err(Error::ReadOnly)`: membership changes need a live catalog Execution.
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// # let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
    /// # let options = deriva_bag_core::OpenOptions { cache_dir: Some(tmp.path().join("c")), ..Default::default() };
    /// let bag = deriva_bag_core::DatasetBag::open_with(&generated.path, &options)?;
    /// let err = bag.add_dataset_members(&["1-I001".into()]).unwrap_err();
    /// assert!(err.to_string().contains("use it instead"));
    /// # Ok(()) }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn add_dataset_members(&self, members: &[Rid]) -> Result<()> {
        let _ = members;
        Err(Error::ReadOnly {
            operation: "add_dataset_members",
        })
    }

    /// Always `Err(Error::ReadOnly)`: versions are minted by the live catalog.
    pub fn increment_version(&self) -> Result<()> {
        Err(Error::ReadOnly {
            operation: "increment_version",
        })
    }

    /// Always `Err(Error::ReadOnly)`: uploads go through a live Execution.
    pub fn upload_assets(&self) -> Result<()> {
        Err(Error::ReadOnly {
            operation: "upload_assets",
        })
    }
}
