//! The live [`Dataset`]: one dataset version read straight from the catalog, with the same
//! [`DatasetLike`] answers a downloaded bag of that version gives.
//!
//! [`DerivaML::lookup_dataset`] resolves the version (the highest when `None`, as
//! [`DerivaML::download_dataset_bag`] does) to its catalog snapshot, and every later read goes
//! to `/ermrest/catalog/<id>@<snapshot>`: labels committed after the version was released
//! stay out, as they stay out of its bag. Members, children, parents, reachable rows and
//! feature values follow the bag's meaning exactly (the membership and reachability rules are
//! shared through [`deriva_bag_features::membership`], selectors through
//! [`deriva_bag_features::sort_and_select`]); where a bag can only answer from the rows it
//! holds, the live dataset answers from the whole snapshot (`table_rows`,
//! `list_workflow_executions`, `dataset` of a RID the bag did not export).
//!
//! Reads are paged (`@sort(RID)@after(…)?limit=N`) or RID-chunked (`col=any(…)`, see
//! `snapshot`): no table is read whole unless `table_rows` asks for it. Assets come from
//! Hatrac on demand into a content-addressed cache shared by runs and `Dataset` values (see
//! `assets`; default `<working_dir>/cache/assets`).
//!
//! ## Calling it from sync and async code
//!
//! [`DatasetLike`] is synchronous; the client is async. Each method runs its reads on a
//! process-wide runtime of this crate (`bridge`) and blocks the calling thread until they are
//! done, over an HTTP client of the dataset's own. The rule: **call the `DatasetLike` methods
//! from any thread — plain, a `spawn_blocking` task, or even a tokio worker — they never
//! panic; in async code prefer `spawn_blocking`, since a blocked worker cannot run other
//! tasks meanwhile.** [`DerivaML::lookup_dataset`] itself is async.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use deriva_bag_features::{DatasetLike, Selector, TableName};
//! use deriva_catalog_client::{ConnectOptions, Credential, DerivaML};
//! use deriva_test_catalog::TestCatalog;
//!
//! let server = TestCatalog::start().await.unwrap();
//! let work = tempfile::tempdir().unwrap();
//! let ml = DerivaML::connect_with(&server.url(), "1", ConnectOptions {
//!     credential: Some(Credential::BearerToken(server.token().into())),
//!     working_dir: Some(work.path().into()),
//!     ..Default::default()
//! }).await.unwrap();
//!
//! let dataset = ml.lookup_dataset("1-D001", Some("1.0.0")).await.unwrap();
//! let members = tokio::task::spawn_blocking(move || {
//!     let members = dataset.list_dataset_members(false, None).unwrap();
//!     let newest = dataset.feature_values("Image", "Glaucoma", Some(&Selector::newest())).unwrap();
//!     assert_eq!(newest[0].target(), Some("1-I001"));
//!     members
//! }).await.unwrap();
//! let images: Vec<String> = members[&TableName::new("demo", "Image")]
//!     .iter().map(|r| r.rid().unwrap().to_string()).collect();
//! assert_eq!(images, ["1-I001", "1-I002", "1-I005"]);
//! # });
//! ```

mod assets;
mod bridge;
mod queries;
mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deriva_bag_features::{
    parse_timestamptz, sort_and_select, CatalogModel, DatasetInfo, DatasetLike, Feature,
    FeatureRecord, Members, Rid, Row, Selector, TableName,
};

use crate::client::DerivaML;
use crate::download::DatasetSpec;
use crate::error::Result;
use crate::materialize::{MaterializeReport, DEFAULT_PARALLELISM};
use assets::AssetCache;
use queries::Shared;
pub(crate) use snapshot::SnapshotReader;

type ModelResult<T> = std::result::Result<T, deriva_bag_features::Error>;

/// One dataset version of a live catalog (DerivaML's `Dataset`), read at the version's
/// snapshot, answering as a downloaded bag does. Cheap to clone; nested datasets
/// ([`DatasetLike::dataset`]) share the snapshot, the reachability sets and the asset cache.
#[derive(Clone)]
pub struct Dataset {
    shared: Arc<Shared>,
    info: DatasetInfo,
    assets: Arc<AssetCache>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("rid", &self.info.rid)
            .field("version", &self.info.version)
            .field("snapshot", &self.shared.snapshot)
            .field("asset_cache", &self.assets.root())
            .finish()
    }
}

impl DerivaML {
    /// The live dataset `rid` at `version` (`None`: the highest), reading the catalog at that
    /// version's snapshot (the live catalog when the version row has none). Its
    /// [`DatasetLike::version`] is the resolved version; assets are cached under
    /// `<working_dir>/cache/assets` ([`Dataset::with_asset_cache`] changes that).
    ///
    /// Errors: [`Error::Validation`](crate::Error::Validation) for a RID that is not a dataset or a version it lacks,
    /// and whatever reading the catalog's model at the snapshot fails with.
    pub async fn lookup_dataset(
        &self,
        rid: impl Into<String>,
        version: Option<&str>,
    ) -> Result<Dataset> {
        let spec = DatasetSpec {
            materialize: false,
            ..DatasetSpec::new(rid, version)
        };
        let (version, snapshot, _) = self.resolve_version(&spec).await?;
        // The dataset's own client: its connections live on the bridge runtime.
        let transport = self.transport().detached()?;
        let base = self.catalog_path(snapshot.as_deref());
        let reader = SnapshotReader::new(transport.clone(), base.clone());
        let assets = Arc::new(AssetCache::new(
            self.working_dir().join("cache").join("assets"),
            DEFAULT_PARALLELISM,
            transport,
        ));
        let rid = spec.rid;
        bridge::run(async move {
            let schema = reader
                .transport()
                .get_raw(&format!("{base}/schema"), Some("application/json"))
                .await?
                .body;
            let model = CatalogModel::from_json(&schema)?;
            let shared = Arc::new(Shared::new(reader, snapshot, model));
            let mut info = shared.info(&rid).await?;
            info.version = Some(version);
            Ok(Dataset {
                shared,
                info,
                assets,
            })
        })
        .await
    }
}

impl Dataset {
    /// The catalog snapshot this dataset reads (`None`: the live catalog, for a version row
    /// without one).
    pub fn snapshot(&self) -> Option<&str> {
        self.shared.snapshot.as_deref()
    }

    /// The asset cache directory.
    pub fn asset_cache_dir(&self) -> &Path {
        self.assets.root()
    }

    /// The same dataset with its assets cached in `dir`, fetched `parallelism` at a time.
    pub fn with_asset_cache(mut self, dir: impl Into<PathBuf>, parallelism: usize) -> Dataset {
        let transport = self.shared.reader.transport().clone();
        self.assets = Arc::new(AssetCache::new(dir.into(), parallelism, transport));
        self
    }

    /// Fetches the files of `rows` (asset rows of `table`) into the cache now, at most the
    /// cache's parallelism at a time, instead of one read-ahead batch at a time from
    /// [`DatasetLike::asset_path`]. Files already cached are not fetched again; rows naming
    /// no file, or no md5, are skipped (with a warning).
    pub fn fetch_assets(&self, table: &TableName, rows: &[Row]) -> Result<MaterializeReport> {
        let wanted: Vec<_> = rows
            .iter()
            .filter_map(|r| self.assets.locate(table, r))
            .collect();
        let cache = Arc::clone(&self.assets);
        bridge::block_on(async move { cache.fetch(wanted).await })
    }

    /// Runs one query of the shared state on the bridge.
    fn query<T: Send + 'static, F>(&self, work: impl FnOnce(Arc<Shared>, Rid) -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        bridge::block_on(work(Arc::clone(&self.shared), self.info.rid.clone()))
    }

    /// Lets the asset cache read ahead along `rows` when they are an asset table's.
    fn remember_assets(&self, table: &TableName, rows: &[Row]) {
        if self.shared.model.table(table).is_some_and(|t| t.is_asset()) {
            self.assets.remember(table, rows);
        }
    }
}

impl DatasetLike for Dataset {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }

    fn model(&self) -> &CatalogModel {
        &self.shared.model
    }

    fn list_dataset_members(&self, recurse: bool, limit: Option<usize>) -> ModelResult<Members> {
        let members = self
            .query(move |shared, rid| async move { shared.members(&rid, recurse, limit).await })?;
        for (table, rows) in &members {
            self.remember_assets(table, rows);
        }
        Ok(members)
    }

    fn list_dataset_children(&self, recurse: bool) -> ModelResult<Vec<DatasetInfo>> {
        Ok(self
            .query(move |shared, rid| async move { shared.relatives(&rid, true, recurse).await })?)
    }

    fn list_dataset_parents(&self, recurse: bool) -> ModelResult<Vec<DatasetInfo>> {
        Ok(self.query(
            move |shared, rid| async move { shared.relatives(&rid, false, recurse).await },
        )?)
    }

    fn dataset(&self, rid: &Rid) -> ModelResult<Self> {
        let wanted = rid.clone();
        let info = self.query(move |shared, _| async move { shared.info(&wanted).await })?;
        if info.version.is_none() {
            return Err(deriva_bag_features::Error::DatasetNotFound { rid: rid.clone() });
        }
        Ok(Dataset {
            shared: Arc::clone(&self.shared),
            info,
            assets: Arc::clone(&self.assets),
        })
    }

    fn find_features(&self, table: Option<&str>) -> ModelResult<Vec<Feature>> {
        deriva_bag_features::find_features(&self.shared.model, table)
    }

    fn lookup_feature(&self, table: &str, name: &str) -> ModelResult<Feature> {
        deriva_bag_features::lookup_feature(&self.shared.model, table, name)
    }

    fn feature_values(
        &self,
        table: &str,
        feature: &str,
        selector: Option<&Selector>,
    ) -> ModelResult<Vec<FeatureRecord>> {
        let feature = self.lookup_feature(table, feature)?;
        let wanted = feature.clone();
        let records = self
            .query(move |shared, rid| async move { shared.feature_records(&rid, &wanted).await })?;
        // Ordering and selection on this thread, by the one implementation bags use too
        // (a custom selector need not be `Send`).
        let instants = records
            .iter()
            .map(|r| r.rct().and_then(parse_timestamptz))
            .collect();
        sort_and_select(&feature, records, instants, selector)
    }

    fn list_workflow_executions(&self, workflow: &str) -> ModelResult<Vec<Rid>> {
        let workflow = workflow.to_string();
        Ok(self
            .query(move |shared, _| async move { shared.workflow_executions(&workflow).await })?)
    }

    fn reachable_rows(&self, table: &TableName) -> ModelResult<Vec<Row>> {
        let wanted = table.clone();
        let rows = self
            .query(move |shared, rid| async move { shared.reachable_rows(&rid, &wanted).await })?;
        self.remember_assets(table, &rows);
        Ok(rows)
    }

    fn table_rows(&self, table: &TableName) -> ModelResult<Vec<Row>> {
        let wanted = table.clone();
        Ok(self.query(move |shared, _| async move { shared.table_rows(&wanted).await })?)
    }

    /// The cached file of an asset row, fetched now (with the next rows of the listing it
    /// came from, see the `assets` module) when it is not cached yet. `None`, with a warning,
    /// when the row names no file or the fetch fails.
    fn asset_path(&self, table: &TableName, row: &Row) -> Option<PathBuf> {
        let asset = self.assets.locate(table, row)?;
        if let Some(path) = AssetCache::present(&asset) {
            return Some(path);
        }
        let rid = row.text("RID").unwrap_or_default().to_string();
        let batch = self.assets.batch_for(table, &rid, asset.clone());
        let cache = Arc::clone(&self.assets);
        if let Err(e) = bridge::block_on(async move { cache.fetch(batch).await }) {
            // The batch ran to the end: this row's file may be in place all the same.
            tracing::warn!(table = %table, rid, error = %e, "fetching assets into the cache failed");
        }
        AssetCache::present(&asset)
    }
}
