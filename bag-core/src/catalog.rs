//! Online DerivaML through the facade (cargo feature `catalog`): everything of
//! `deriva-catalog-client` — [`DerivaML`], [`DatasetSpec`], executions, the crash-safe commit —
//! re-exported here, plus [`DerivaMlExt`], which downloads a dataset bag and returns it opened
//! as a [`DatasetBag`], DerivaML's `ml.download_dataset_bag(spec)`, and [`ExecutionExt`],
//! the same inside an execution (`exe.download_dataset_bag(spec)`), which also links the
//! dataset version to the execution as one of its inputs. [`DerivaML::lookup_dataset`] gives
//! the live [`Dataset`]: the same `DatasetLike` answers as the bag of that version, read from
//! the catalog at the version's snapshot, with assets fetched on demand.
//!
//! Depend on `deriva-bag-core` alone, with `features = ["catalog"]`; without the feature this
//! crate pulls in no HTTP client and no async runtime.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use deriva_bag_core::catalog::{DatasetSpec, DerivaML, DerivaMlExt, ExecutionConfiguration};
//! use deriva_bag_core::features::Selector;
//!
//! // The credential comes from ~/.deriva/credential.json (or DERIVA_CREDENTIAL_FILE).
//! let ml = DerivaML::connect("https://example.org", "1").await?;
//! // Download (or reuse) the bag of a dataset version, opened as a DatasetBag.
//! let bag = ml
//!     .download_dataset_bag_opened(DatasetSpec::new("1-D000", Some("1.0.0")))
//!     .await?;
//! let labels = bag.feature_values("Image", "Glaucoma", Some(&Selector::newest()))?;
//! println!("{} labelled images in {}", labels.len(), bag.path().display());
//! // The same dataset version live, without a download: same answers, read at its snapshot
//! // (the `DatasetLike` methods block; in async code run them in `spawn_blocking`).
//! use deriva_bag_core::catalog::Dataset;
//! use deriva_bag_core::features::DatasetLike;
//! let live: Dataset = ml.lookup_dataset("1-D000", Some("1.0.0")).await?;
//! let same = tokio::task::spawn_blocking(move || {
//!     live.feature_values("Image", "Glaucoma", Some(&Selector::newest()))
//! })
//! .await??;
//! assert_eq!(same, labels);
//! // A record built offline, committed through an execution linked to the version it read.
//! let feature = bag.lookup_feature("Image", "Glaucoma")?;
//! let record = feature
//!     .record_builder()
//!     .set("Image", "1-I004")
//!     .set("Glaucoma", "Normal")
//!     .build(&bag)?;
//! let workflow = ml.find_workflows().await?[0].clone();
//! let exe = ml
//!     .create_execution(ExecutionConfiguration {
//!         description: "Offline inference results".into(),
//!         workflow,
//!         datasets: vec![DatasetSpec::new("1-D000", Some("1.0.0"))],
//!     })
//!     .await?;
//! exe.add_features(&[record])?; // staged locally, no HTTP
//! exe.upload_execution_outputs().await?; // the crash-safe commit
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::path::PathBuf;

pub use deriva_catalog_client::*;

use crate::{DatasetBag, OpenOptions};

/// Downloads that return the bag opened, as a [`DatasetBag`], instead of its directory.
///
/// [`DerivaML::download_dataset_bag`] (the catalog client's own) returns a [`DownloadedBag`]
/// (the directory, version, snapshot, whether it is materialized); these methods download (or
/// reuse) the same bag and open it, building the SQLite index on a blocking thread so the
/// async runtime keeps running.
pub trait DerivaMlExt {
    /// Downloads (or reuses from the cache) the bag of `spec` and opens it with the default
    /// [`OpenOptions`] (index cache under `$DERIVA_BAG_CACHE` or the platform cache dir).
    fn download_dataset_bag_opened(
        &self,
        spec: DatasetSpec,
    ) -> impl Future<Output = Result<DatasetBag>> + Send;

    /// [`download_dataset_bag_opened`](Self::download_dataset_bag_opened) with explicit
    /// [`OpenOptions`] (e.g. the index cache directory).
    fn download_dataset_bag_opened_with(
        &self,
        spec: DatasetSpec,
        options: &OpenOptions,
    ) -> impl Future<Output = Result<DatasetBag>> + Send;
}

impl DerivaMlExt for DerivaML {
    async fn download_dataset_bag_opened(&self, spec: DatasetSpec) -> Result<DatasetBag> {
        opened(self.download_dataset_bag(spec), OpenOptions::default()).await
    }

    async fn download_dataset_bag_opened_with(
        &self,
        spec: DatasetSpec,
        options: &OpenOptions,
    ) -> Result<DatasetBag> {
        opened(self.download_dataset_bag(spec), options.clone()).await
    }
}

/// DerivaML's `exe.download_dataset_bag(spec)` returning the bag opened.
///
/// [`Execution::download_dataset_bag`] (the catalog client's own) downloads (or reuses) the
/// bag and links the dataset version to the execution as one of its inputs, returning a
/// [`DownloadedBag`]; these methods do the same and open the bag as a [`DatasetBag`] on a
/// blocking thread, as [`DerivaMlExt`] does. (The inherent method keeps the plain name, so
/// the opened form is `download_dataset_bag_opened`, as on [`DerivaML`].)
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use deriva_bag_core::catalog::{DatasetSpec, DerivaML, ExecutionConfiguration, ExecutionExt};
///
/// let ml = DerivaML::connect("https://example.org", "1").await?;
/// let workflow = ml.find_workflows().await?[0].clone();
/// let exe = ml
///     .create_execution(ExecutionConfiguration {
///         description: "Training run".into(),
///         workflow,
///         datasets: vec![],
///     })
///     .await?;
/// // Downloaded (or reused), linked to the execution, and opened.
/// let bag = exe
///     .download_dataset_bag_opened(DatasetSpec::new("1-D000", Some("1.0.0")))
///     .await?;
/// let members = bag.list_dataset_members(true, None)?;
/// println!("{} member tables in {}", members.len(), bag.path().display());
/// # Ok(())
/// # }
/// ```
pub trait ExecutionExt {
    /// Downloads (or reuses) the bag of `spec`, links its version to this execution, and
    /// opens it with the default [`OpenOptions`].
    fn download_dataset_bag_opened(
        &self,
        spec: DatasetSpec,
    ) -> impl Future<Output = Result<DatasetBag>> + Send;

    /// [`download_dataset_bag_opened`](Self::download_dataset_bag_opened) with explicit
    /// [`OpenOptions`] (e.g. the index cache directory).
    fn download_dataset_bag_opened_with(
        &self,
        spec: DatasetSpec,
        options: &OpenOptions,
    ) -> impl Future<Output = Result<DatasetBag>> + Send;
}

impl ExecutionExt for Execution {
    async fn download_dataset_bag_opened(&self, spec: DatasetSpec) -> Result<DatasetBag> {
        opened(self.download_dataset_bag(spec), OpenOptions::default()).await
    }

    async fn download_dataset_bag_opened_with(
        &self,
        spec: DatasetSpec,
        options: &OpenOptions,
    ) -> Result<DatasetBag> {
        opened(self.download_dataset_bag(spec), options.clone()).await
    }
}

/// Waits for a download (the client's, from [`DerivaML`] or an [`Execution`]), then opens
/// its bag with `options`.
async fn opened(
    download: impl Future<Output = Result<DownloadedBag>>,
    options: OpenOptions,
) -> Result<DatasetBag> {
    open_blocking(download.await?.path, options).await
}

/// Opens the bag at `path` on tokio's blocking pool (a cold open builds the index).
async fn open_blocking(path: PathBuf, options: OpenOptions) -> Result<DatasetBag> {
    let at = path.clone();
    match tokio::task::spawn_blocking(move || DatasetBag::open_with(&path, &options)).await {
        Ok(opened) => Ok(opened?),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Io {
            path: at,
            source: std::io::Error::other(format!("opening the downloaded bag: {e}")),
        }),
    }
}
