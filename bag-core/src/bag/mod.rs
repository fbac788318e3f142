//! [`DatasetBag`]: one dataset of a downloaded bag, served from the SQLite index.
//!
//! Opening a bag reads its tag files and `data/schema.json`, builds (first time) or reuses
//! the index in the cache directory, and finds the bag's root dataset. A `DatasetBag` is
//! cheap to clone; nested datasets ([`DatasetBag::dataset`]) share the same opened bag.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use deriva_bag_features::{CatalogModel, DatasetInfo, Rid};

use crate::bagit::paths::BagRoot;
use crate::bagit::BagItFiles;
use crate::index::query::Index;

mod assets;
mod dataset;
mod features;
mod like;
mod members;
mod open;
mod readonly;

pub(crate) use assets::Located;
pub use assets::{AssetCheck, AssetStatus, MissingAsset, FEW_ASSET_DIRS};
pub use features::{FeatureRow, FeatureRows, FeatureValues};
pub use members::{Member, MemberOrigins, MemberRows};

/// Progress of the one-time index build, reported after each CSV file is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildProgress {
    /// CSV files loaded so far.
    pub files_done: usize,
    /// CSV files to load.
    pub files_total: usize,
    /// Bytes of CSV loaded so far.
    pub bytes_done: u64,
    /// Bytes of CSV to load.
    pub bytes_total: u64,
}

/// A progress callback (the CLI turns it into a progress bar; the library prints nothing).
pub type ProgressFn = Arc<dyn Fn(&BuildProgress) + Send + Sync>;

/// How to open a bag.
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// Cache root for the index and extracted archives; default [`crate::cache::cache_root`].
    pub cache_dir: Option<PathBuf>,
    /// Called during a (cold) index build; never called when the index is reused.
    pub progress: Option<ProgressFn>,
    /// The most bytes extracting an archive may write. `None`: `$DERIVA_BAG_MAX_EXTRACTED_BYTES`
    /// if set, else the smaller of 100 × the archive's size and the cache volume's free space
    /// (see [`crate::archive`]). Raise it for a genuine bag that compresses better than 100:1;
    /// the default stops archive bombs with [`crate::Error::ArchiveTooLarge`].
    ///
    /// ```
    /// use deriva_bag_core::OpenOptions;
    /// let options = OpenOptions { max_extracted_bytes: Some(50 << 30), ..OpenOptions::default() };
    /// assert_eq!(options.max_extracted_bytes, Some(53_687_091_200));
    /// ```
    pub max_extracted_bytes: Option<u64>,
}

impl fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenOptions")
            .field("cache_dir", &self.cache_dir)
            .field("progress", &self.progress.is_some())
            .field("max_extracted_bytes", &self.max_extracted_bytes)
            .finish()
    }
}

pub(crate) use deriva_bag_features::membership::ElementType;

/// State shared by every `DatasetBag` of one opened bag.
pub(crate) struct BagShared {
    pub path: PathBuf,
    /// `path` as a boundary: asset files are reached through it, never through a symbolic
    /// link out of the bag.
    pub bag_root: BagRoot,
    /// The parsed tag files, read on first use: opening needs only the cache key, and
    /// parsing 40k manifest and fetch lines was most of a warm open.
    bagit: OnceLock<BagItFiles>,
    pub model: CatalogModel,
    pub index: Arc<Index>,
    /// Whether this open built the index (false when an existing one was reused).
    pub index_built: bool,
    pub root_rid: Rid,
    pub element_types: Vec<ElementType>,
    /// fetch.txt lookup: full URL, URL path and percent-decoded URL path → fetch entry path.
    pub fetch_map: OnceLock<assets::FetchLookup>,
    /// Payload path → content digest from the manifests (the report's duplicate content).
    pub payload_digests: OnceLock<std::collections::BTreeMap<String, String>>,
    /// The cache directory the bag was opened with (asset-check records live there).
    pub cache_root: PathBuf,
    /// The bag's cache key (the digest of its manifests and `fetch.txt`).
    pub cache_key: String,
}

impl BagShared {
    /// The parsed tag files (parsed now if this is the first use).
    pub fn bagit(&self) -> crate::Result<&BagItFiles> {
        if let Some(files) = self.bagit.get() {
            return Ok(files);
        }
        // Two threads may both parse; the first stored result wins and they are equal.
        let parsed = BagItFiles::read(&self.path)?;
        Ok(self.bagit.get_or_init(|| parsed))
    }
}

/// One dataset of a downloaded bag (DerivaML's `DatasetBag`).
///
/// ```
/// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use deriva_bag_core::{DatasetBag, OpenOptions};
/// let tmp = tempfile::tempdir()?;
/// let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
/// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
/// let bag = DatasetBag::open_with(&generated.path, &options)?;
/// assert_eq!(bag.rid().as_str(), "1-D000");
/// assert_eq!(bag.version(), Some("1.0.0"));
/// let members = bag.dataset(&"1-D001".into())?.list_dataset_members(false, None)?;
/// let images: Vec<String> = members[&deriva_bag_core::features::TableName::new("demo", "Image")]
///     .iter().map(|r| r.rid().unwrap().to_string()).collect();
/// assert_eq!(images, ["1-I001", "1-I002", "1-I005"]);
/// # Ok(()) }
/// # #[cfg(not(feature = "fixtures"))] fn main() {}
/// ```
#[derive(Clone)]
pub struct DatasetBag {
    pub(crate) shared: Arc<BagShared>,
    pub(crate) info: DatasetInfo,
}

impl fmt::Debug for DatasetBag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatasetBag")
            .field("path", &self.shared.path)
            .field("rid", &self.info.rid)
            .field("version", &self.info.version)
            .field("types", &self.info.types)
            .finish()
    }
}

impl DatasetBag {
    /// The bag directory (for an archive: the extracted directory in the cache).
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// This dataset's RID.
    pub fn rid(&self) -> &Rid {
        &self.info.rid
    }

    /// The highest `Dataset_Version.Version` of this dataset (PEP 440 order).
    pub fn version(&self) -> Option<&str> {
        self.info.version.as_deref()
    }

    /// `Dataset_Type` term names of this dataset.
    pub fn dataset_types(&self) -> &[String] {
        &self.info.types
    }

    /// `Dataset.Description`.
    pub fn description(&self) -> Option<&str> {
        self.info.description.as_deref()
    }

    /// RID, version, types and description together.
    pub fn info(&self) -> &DatasetInfo {
        &self.info
    }

    /// The RID of the bag's root dataset (the one it was downloaded for).
    pub fn root_rid(&self) -> &Rid {
        &self.shared.root_rid
    }

    /// The bag's BagIt tag files, parsed on first use (opening a bag reads only the raw bytes
    /// its cache key needs). Errors: [`crate::Error::TagFile`] / [`crate::Error::UnsafePath`]
    /// for a malformed manifest or `fetch.txt` line, [`crate::Error::Io`].
    pub fn bagit(&self) -> crate::Result<&BagItFiles> {
        self.shared.bagit()
    }

    /// The catalog model from `data/schema.json`.
    pub fn model(&self) -> &CatalogModel {
        &self.shared.model
    }

    /// The SQLite index file in the cache.
    pub fn index_path(&self) -> &Path {
        self.shared.index.path()
    }

    /// Whether opening this bag built the index (false when a cached index was reused).
    pub fn index_was_built(&self) -> bool {
        self.shared.index_built
    }

    pub(crate) fn index(&self) -> &Index {
        &self.shared.index
    }

    /// Validates the bag's files against its manifests (see [`crate::bagit::ValidationMode`]),
    /// plus what the index found in its tables ([`index_findings`](Self::index_findings)).
    pub fn validate(
        &self,
        mode: crate::bagit::ValidationMode,
    ) -> crate::Result<crate::bagit::ValidationReport> {
        let mut report = self.shared.bagit()?.validate(mode, None)?;
        report.extend(self.index_findings()?);
        Ok(report)
    }

    /// What building the index found wrong in the bag's tables, as validation findings:
    /// `duplicate-rid` for each row that repeats the RID of an earlier row of its table with
    /// other values (the earlier row is served; identical repeats, normal in path-encoded
    /// exports, are not findings). Sorted by path, then line.
    ///
    /// ```
    /// # #[cfg(feature = "fixtures")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{DatasetBag, OpenOptions};
    /// let tmp = tempfile::tempdir()?;
    /// let generated = deriva_bag_core::fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// assert!(bag.index_findings()?.is_empty());
    /// # Ok(()) }
    /// # #[cfg(not(feature = "fixtures"))] fn main() {}
    /// ```
    pub fn index_findings(&self) -> crate::Result<Vec<crate::bagit::ValidationIssue>> {
        let mut issues: Vec<crate::bagit::ValidationIssue> = self
            .index()
            .rid_conflicts()?
            .into_iter()
            .map(|c| {
                crate::bagit::ValidationIssue::duplicate_rid(
                    &c.file,
                    c.line,
                    &c.table.to_string(),
                    &c.rid,
                    &c.first_file,
                    c.first_line,
                )
            })
            .collect();
        // Stable: within a file, line order as the index lists them.
        issues.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(issues)
    }
}
