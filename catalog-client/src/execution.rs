//! [`Execution`]: staging feature records and output assets, and the crash-safe commit.
//!
//! The commit (`upload_execution_outputs`, DerivaML's name; the reference now calls it
//! `commit_output_assets`) goes in these steps:
//! 1. status → `Pending_Upload` (SQLite first, then an attributegroup PUT; a failed PUT
//!    leaves `sync_pending` for the next call to flush);
//! 2. each pending asset: bytes to Hatrac first (HEAD dedup by base64 `Content-MD5`, else a
//!    chunked job whose URL and next chunk are persisted after every chunk), then the asset
//!    row keyed by its content-addressed, unversioned URL with `onconflict=skip`, then the
//!    `<Asset>_Execution` link with `onconflict=skip`;
//! 3. feature rows in batches of at most 1000 with `defaults=RID,…&onconflict=skip`: the
//!    feature table's key `(Execution, <Target>, Feature_Name)` makes a re-sent batch a
//!    no-op, so a batch whose response was lost is simply sent again and then marked;
//! 4. status → `Uploaded` with `Upload_Duration`.
//!
//! A failure anywhere leaves the unfinished records `pending` (never `failed`, gap G2) and
//! the status `Failed`; the next call starts again from the first unfinished step.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

use base64::Engine;
use deriva_bag_features::{FeatureRecord, Rid, Table, TableName, Value};
use md5::Digest;
use reqwest::Method;
use serde_json::{json, Map, Value as Json};

use crate::client::{q, DerivaML};
use crate::download::{DatasetSpec, DownloadedBag};
use crate::error::{Error, Result};
use crate::state::{ExecutionStatus, StagedAsset};
use crate::transport::RequestBody;

/// Rows per feature POST (deriva-py's `_TableWrapper.insert` batch size).
pub const FEATURE_BATCH_ROWS: usize = 1000;

/// Hatrac chunk size used by deriva-py (25 MiB).
pub const DEFAULT_CHUNK_BYTES: u64 = 25 * 1024 * 1024;

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct UploadReport {
    /// Feature rows the catalog inserted in this call.
    pub features_inserted: usize,
    /// Feature rows already present (landed in an earlier, interrupted attempt).
    pub features_already_present: usize,
    /// Assets committed in this call.
    pub assets_uploaded: usize,
    /// Feature POSTs sent.
    pub feature_requests: usize,
}

/// An execution: stage outputs locally, then commit them.
#[derive(Debug, Clone)]
pub struct Execution {
    ml: DerivaML,
    rid: Rid,
    chunk_bytes: u64,
}

fn system_column(name: &str) -> bool {
    matches!(name, "RID" | "RCT" | "RMT" | "RCB" | "RMB")
}

/// The non-RID key of a feature table that makes inserts idempotent: the one containing
/// `Execution` (normally `(Execution, <Target>, Feature_Name)`).
fn natural_key(table: &Table) -> Option<Vec<String>> {
    table
        .keys
        .iter()
        .map(|k| k.unique_columns.clone())
        .find(|cols| cols.iter().any(|c| c == "Execution") && !cols.iter().any(|c| c == "RID"))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Execution {
    pub(crate) fn new(ml: DerivaML, rid: Rid) -> Execution {
        Execution {
            ml,
            rid,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }

    /// The Execution RID.
    pub fn rid(&self) -> &Rid {
        &self.rid
    }

    /// Sets the Hatrac chunk size for asset uploads (default 25 MiB).
    pub fn with_chunk_bytes(mut self, bytes: u64) -> Execution {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// The local status.
    pub fn status(&self) -> Result<ExecutionStatus> {
        self.ml.local_status(&self.rid)
    }

    /// `(pending, uploaded)` staged feature-record counts.
    pub fn record_counts(&self) -> Result<(u64, u64)> {
        self.ml.state().record_counts(self.rid.as_str())
    }

    /// Downloads (or reuses from the cache) the bag of `spec`, exactly as
    /// [`DerivaML::download_dataset_bag`] does, and records the dataset version as an input
    /// of this execution: DerivaML's `exe.download_dataset_bag(spec)`.
    ///
    /// The input is recorded in the local registry first and then linked by the same
    /// `Dataset_Execution` POST (`onconflict=skip`) that links the inputs of
    /// [`DerivaML::create_execution`], so calling this twice, or again after a crash (or
    /// [`DerivaML::resume_execution`], which links what is still unlinked), leaves one link row.
    /// The catalog holds one link per (dataset, execution): a dataset that is already an input
    /// keeps the version it was first recorded with, and its second download sends no
    /// request beyond the download's own (none at all for a cached bag with an explicit
    /// version).
    ///
    /// bag-core's `catalog` feature has `download_dataset_bag_opened`, which returns the bag
    /// opened as a `DatasetBag`.
    ///
    /// ```no_run
    /// # async fn run() -> deriva_catalog_client::Result<()> {
    /// use deriva_catalog_client::{DatasetSpec, DerivaML, ExecutionConfiguration};
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
    /// // Downloaded (or reused) and linked to the execution as one of its inputs.
    /// let bag = exe
    ///     .download_dataset_bag(DatasetSpec::new("1-D000", Some("1.0.0")))
    ///     .await?;
    /// println!("version {} at {}", bag.version, bag.path.display());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn download_dataset_bag(&self, spec: DatasetSpec) -> Result<DownloadedBag> {
        let state = self.ml.state();
        if state.execution(self.rid.as_str())?.is_none() {
            return Err(Error::ExecutionNotFound {
                rid: self.rid.to_string(),
                path: state.path.clone(),
            });
        }
        let dataset = spec.rid.as_str().to_string();
        let bag = self.ml.download_dataset_bag(spec).await?;
        if !state.has_input(self.rid.as_str(), &dataset)? {
            // The version the bag holds, now explicit, names its Dataset_Version row.
            let downloaded = DatasetSpec::new(dataset.clone(), Some(&bag.version));
            let (_, _, version_rid) = self.ml.resolve_version(&downloaded).await?;
            state.add_input(self.rid.as_str(), &dataset, &version_rid)?;
        }
        self.ml.link_inputs(self.rid.as_str()).await?;
        Ok(bag)
    }

    /// Created → Running (DerivaML's `with ml.create_execution(cfg) as exe:` entry).
    pub async fn start(&self) -> Result<()> {
        self.transition(ExecutionStatus::Running, None, None).await
    }

    /// Running → Stopped (the `with` block's exit).
    pub async fn stop(&self) -> Result<()> {
        self.transition(ExecutionStatus::Stopped, None, None).await
    }

    /// SQLite first, then the catalog (best effort: a failed PUT stays `sync_pending`).
    async fn transition(
        &self,
        to: ExecutionStatus,
        detail: Option<&str>,
        upload_duration: Option<&str>,
    ) -> Result<()> {
        self.ml
            .state()
            .set_status(self.rid.as_str(), to, detail, upload_duration)?;
        self.flush_status().await?;
        Ok(())
    }

    /// Sends the local status to the catalog if it has not seen it. Returns whether the
    /// catalog is now in sync; a server or transport failure is logged and leaves
    /// `sync_pending` set (reference behaviour, case C5).
    pub async fn flush_status(&self) -> Result<bool> {
        let state = self.ml.state();
        let Some(rec) = state.execution(self.rid.as_str())? else {
            return Err(Error::ExecutionNotFound {
                rid: self.rid.to_string(),
                path: state.path.clone(),
            });
        };
        if !rec.sync_pending {
            return Ok(true);
        }
        let detail = rec.status_detail.clone().unwrap_or(rec.description.clone());
        let mut row =
            json!({"RID": rec.rid, "Status": rec.status.as_str(), "Status_Detail": detail});
        let mut targets = "Status,Status_Detail".to_string();
        if let Some(d) = &rec.upload_duration {
            row["Upload_Duration"] = json!(d);
            targets.push_str(",Upload_Duration");
        }
        let path = format!(
            "{}/attributegroup/deriva-ml:Execution/RID;{targets}",
            self.ml.catalog_path(None)
        );
        let body = json!([row]);
        match self
            .ml
            .transport()
            .send_idempotent(Method::PUT, &path, Some(RequestBody::Json(&body)), None)
            .await
        {
            Ok(_) => {
                state.mark_synced(self.rid.as_str(), rec.status)?;
                Ok(true)
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, rid = %self.rid, status = %rec.status,
                    "catalog status update failed; it stays pending locally and is flushed on resume");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Stages feature records for commit; sends no HTTP and returns how many were staged.
    ///
    /// All records must belong to one feature (same [`FeatureId`](deriva_bag_features::FeatureId)).
    /// `Execution` is filled with this execution where it is unset, `Feature_Name` with the
    /// feature name; `RID`/`RCT` of records read from a bag are dropped. Records are checked
    /// against the feature table's columns, types and NOT NULL constraints, and a record whose
    /// key (target, qualifiers) was already staged in this execution is refused, so the
    /// whole call is accepted or nothing is staged.
    pub fn add_features(&self, records: &[FeatureRecord]) -> Result<usize> {
        let Some(first) = records.first() else {
            return Err(Error::Validation(
                "add_features needs at least one record".into(),
            ));
        };
        let fid = &first.feature;
        if let Some((i, other)) = records.iter().enumerate().find(|(_, r)| &r.feature != fid) {
            return Err(Error::Validation(format!(
                "all records of one add_features call must share a feature: record 0 is {}:{} ({}), record {i} is {}:{} ({})",
                fid.schema, fid.table, fid.name, other.feature.schema, other.feature.table, other.feature.name
            )));
        }
        let tname = TableName::new(fid.schema.clone(), fid.table.clone());
        let table = self.ml.model().table(&tname).ok_or_else(|| {
            Error::Validation(format!(
                "feature table {tname} does not exist in the catalog"
            ))
        })?;
        let key = natural_key(table).ok_or_else(|| {
            Error::Validation(format!(
                "feature table {tname} has no (Execution, target, Feature_Name) key; its rows cannot be committed idempotently"
            ))
        })?;
        let mut staged = Vec::with_capacity(records.len());
        for (i, rec) in records.iter().enumerate() {
            let mut row = Map::new();
            for (k, v) in &rec.fields {
                if system_column(k) {
                    continue;
                }
                let col = table.column(k).ok_or_else(|| {
                    Error::Validation(format!(
                        "record {i}: feature table {tname} has no column {k:?}"
                    ))
                })?;
                if !v.is_null() {
                    Value::from_json(v, &col.ty)
                        .map_err(|e| Error::Validation(format!("record {i}: column {k:?}: {e}")))?;
                }
                row.insert(k.clone(), v.clone());
            }
            match row.get("Execution") {
                None | Some(Json::Null) => {
                    row.insert("Execution".into(), json!(self.rid.as_str()));
                }
                Some(Json::String(e)) if e == self.rid.as_str() => {}
                Some(other) => {
                    return Err(Error::Validation(format!(
                        "record {i} already belongs to execution {other}; only new records (Execution unset) can be added to {}",
                        self.rid
                    )))
                }
            }
            if row.get("Feature_Name").is_none_or(Json::is_null) {
                row.insert("Feature_Name".into(), json!(fid.name));
            }
            for col in table.columns.iter().filter(|c| !system_column(&c.name)) {
                if !col.nullok && row.get(&col.name).is_none_or(Json::is_null) {
                    return Err(Error::Validation(format!(
                        "record {i}: column {:?} of {tname} must not be null",
                        col.name
                    )));
                }
            }
            let key_vals: Vec<&Json> = key
                .iter()
                .map(|c| row.get(c).unwrap_or(&Json::Null))
                .collect();
            let key_json = serde_json::to_string(&key_vals).unwrap_or_default();
            staged.push((fid.name.clone(), key_json, Json::Object(row).to_string()));
        }
        match self
            .ml
            .state()
            .stage_records(self.rid.as_str(), &fid.schema, &fid.table, &staged)?
        {
            Ok(n) => {
                tracing::info!(rid = %self.rid, count = n, feature = %fid.name, "staged feature records");
                Ok(n)
            }
            Err(dup) => Err(Error::Validation(format!(
                "a record with key {dup} ({}) is already staged in execution {}; nothing was staged",
                key.join(", "),
                self.rid
            ))),
        }
    }

    /// Stages an output file of asset table `table` (e.g. `demo:Image`) for commit.
    pub fn add_asset(&self, table: &str, path: &Path, description: Option<&str>) -> Result<()> {
        self.add_asset_with(table, path, description, &Map::new())
    }

    /// [`Execution::add_asset`] with values for the asset table's other columns (e.g. a NOT
    /// NULL `Subject`), checked against the model now so the commit cannot fail on them.
    pub fn add_asset_with(
        &self,
        table: &str,
        path: &Path,
        description: Option<&str>,
        metadata: &Map<String, Json>,
    ) -> Result<()> {
        let t = self.ml.model().resolve_table(table)?;
        if !t.is_asset() {
            return Err(Error::Validation(format!(
                "{} is not an asset table",
                t.name
            )));
        }
        const MANAGED: [&str; 9] = [
            "RID", "RCT", "RMT", "RCB", "RMB", "URL", "Filename", "Length", "MD5",
        ];
        for (k, v) in metadata {
            let col = t
                .column(k)
                .filter(|_| !MANAGED.contains(&k.as_str()))
                .ok_or_else(|| {
                    Error::Validation(format!(
                        "asset metadata: {} has no settable column {k:?}",
                        t.name
                    ))
                })?;
            if !v.is_null() {
                Value::from_json(v, &col.ty)
                    .map_err(|e| Error::Validation(format!("asset metadata column {k:?}: {e}")))?;
            }
        }
        for col in &t.columns {
            let set = metadata.get(&col.name).is_some_and(|v| !v.is_null())
                || (col.name == "Description" && description.is_some());
            if !col.nullok && !MANAGED.contains(&col.name.as_str()) && !set {
                return Err(Error::Validation(format!(
                    "asset metadata: column {:?} of {} must not be null",
                    col.name, t.name
                )));
            }
        }
        let filename = path
            .file_name()
            .and_then(|f| f.to_str())
            .ok_or_else(|| Error::Validation(format!("{} has no UTF-8 file name", path.display())))?
            .to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let md5 = hex::encode(md5::Md5::digest(&bytes));
        let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        self.ml.state().stage_asset(
            self.rid.as_str(),
            &StagedAsset {
                asset_schema: t.name.schema.clone(),
                asset_table: t.name.table.clone(),
                filename,
                path: abs,
                md5,
                length: bytes.len() as u64,
                description: description.map(str::to_string),
                metadata_json: Json::Object(metadata.clone()).to_string(),
                hatrac_url: None,
                job_url: None,
                next_chunk: 0,
            },
        )
    }

    /// Commits every staged asset and feature record (see the module docs). Safe to call
    /// again after any failure or crash; a second call after success sends no inserts.
    pub async fn upload_execution_outputs(&self) -> Result<UploadReport> {
        let state = self.ml.state();
        let rid = self.rid.as_str();
        let rec = state
            .execution(rid)?
            .ok_or_else(|| Error::ExecutionNotFound {
                rid: rid.to_string(),
                path: state.path.clone(),
            })?;
        if !rec.created_in_catalog {
            self.ml.ensure_execution_row(rid).await?;
        }
        match rec.status {
            ExecutionStatus::Created | ExecutionStatus::Running => {
                self.transition(ExecutionStatus::Stopped, None, None)
                    .await?
            }
            ExecutionStatus::Aborted => {
                return Err(Error::Validation(format!(
                    "execution {rid} was aborted; its outputs cannot be committed"
                )))
            }
            _ => {}
        }
        let pending_records = state.pending_records(rid)?;
        let pending_assets = state.pending_assets(rid)?;
        if pending_records.is_empty()
            && pending_assets.is_empty()
            && rec.status == ExecutionStatus::Uploaded
        {
            self.flush_status().await?;
            tracing::info!(rid, "nothing pending; commit is a no-op");
            return Ok(UploadReport::default());
        }
        self.transition(ExecutionStatus::PendingUpload, None, None)
            .await?;
        let started = Instant::now();
        let mut report = UploadReport::default();
        let outcome = async {
            for asset in &pending_assets {
                self.commit_asset(asset).await?;
                report.assets_uploaded += 1;
            }
            self.commit_features(&pending_records, &mut report).await
        }
        .await;
        match outcome {
            Ok(()) => {
                let secs = started.elapsed().as_secs_f64();
                let duration = format!(
                    "{:.0}H {:.0}min {:.4}sec",
                    (secs / 3600.0).floor(),
                    ((secs % 3600.0) / 60.0).floor(),
                    secs % 60.0
                );
                self.transition(
                    ExecutionStatus::Uploaded,
                    Some(&rec.description),
                    Some(&duration),
                )
                .await?;
                tracing::info!(rid, ?report, "commit complete");
                Ok(report)
            }
            Err(e) => {
                let msg = e.to_string();
                if let Err(e2) = self
                    .transition(ExecutionStatus::Failed, Some(&msg), None)
                    .await
                {
                    tracing::warn!(error = %e2, "could not record the failed status");
                }
                Err(e)
            }
        }
    }

    async fn commit_features(
        &self,
        pending: &[crate::state::StagedRecord],
        report: &mut UploadReport,
    ) -> Result<()> {
        let state = self.ml.state();
        let transport = self.ml.transport();
        let mut i = 0;
        while i < pending.len() {
            let (schema, table) = (&pending[i].feature_schema, &pending[i].feature_table);
            let mut j = i;
            while j < pending.len()
                && j - i < FEATURE_BATCH_ROWS
                && &pending[j].feature_schema == schema
                && &pending[j].feature_table == table
            {
                j += 1;
            }
            let batch = &pending[i..j];
            let ids: Vec<i64> = batch.iter().map(|r| r.stage_id).collect();
            let rows: Vec<Json> = batch
                .iter()
                .map(|r| serde_json::from_str(&r.row_json).unwrap_or(Json::Null))
                .collect();
            let body = Json::Array(rows);
            let path = format!(
                "{}/entity/{}:{}?defaults=RID,RCT,RMT,RCB,RMB&onconflict=skip",
                self.ml.catalog_path(None),
                q(schema),
                q(table)
            );
            report.feature_requests += 1;
            // Safe to re-send: onconflict=skip on the (Execution, target, Feature_Name) key.
            match transport
                .send_idempotent(Method::POST, &path, Some(RequestBody::Json(&body)), None)
                .await
            {
                Ok(reply) => {
                    let inserted =
                        crate::transport::parse_json(&transport.url(&path), &reply.body)?
                            .as_array()
                            .map(Vec::len)
                            .unwrap_or(0);
                    state.mark_records_uploaded(&ids)?;
                    report.features_inserted += inserted;
                    report.features_already_present += batch.len() - inserted.min(batch.len());
                }
                Err(e) => {
                    state.note_record_failure(&ids, &e.to_string())?;
                    return Err(e);
                }
            }
            i = j;
        }
        Ok(())
    }

    async fn commit_asset(&self, asset: &StagedAsset) -> Result<()> {
        let state = self.ml.state();
        let transport = self.ml.transport();
        let rid = self.rid.as_str();
        // Content-addressed, unversioned: the same bytes always get the same URL, so the URL
        // key deduplicates asset rows across retries.
        let object = format!(
            "/hatrac/{}/{}.{}",
            q(&asset.asset_table),
            asset.md5,
            q(&asset.filename)
        );
        if asset.hatrac_url.is_none() {
            let version_url = self.upload_bytes(asset, &object).await?;
            state.set_asset_uploaded_bytes(
                rid,
                &asset.asset_table,
                &asset.filename,
                &version_url,
            )?;
        }
        let table_path = format!("{}:{}", q(&asset.asset_schema), q(&asset.asset_table));
        let mut fields: Map<String, Json> =
            serde_json::from_str(&asset.metadata_json).unwrap_or_default();
        fields.insert("URL".into(), json!(object));
        fields.insert("Filename".into(), json!(asset.filename));
        fields.insert("Length".into(), json!(asset.length));
        fields.insert("MD5".into(), json!(asset.md5));
        fields.insert("Description".into(), json!(asset.description));
        let row = Json::Array(vec![Json::Object(fields)]);
        let path = format!(
            "{}/entity/{table_path}?defaults=RID,RCT,RMT,RCB,RMB&onconflict=skip",
            self.ml.catalog_path(None)
        );
        transport
            .send_idempotent(Method::POST, &path, Some(RequestBody::Json(&row)), None)
            .await?;
        let found = self
            .ml
            .get_rows(
                None,
                &format!("/attribute/{table_path}/URL={}/RID", q(&object)),
            )
            .await?;
        let asset_rid = found
            .first()
            .and_then(|r| r.get("RID"))
            .and_then(Json::as_str)
            .ok_or_else(|| Error::Protocol {
                url: transport.url(&path),
                reason: format!("asset row for {object} not found after insert"),
            })?
            .to_string();
        let link = TableName::new(
            asset.asset_schema.clone(),
            format!("{}_Execution", asset.asset_table),
        );
        if let Some(link_table) = self.ml.model().table(&link) {
            let mut link_row = json!({ asset.asset_table.clone(): asset_rid, "Execution": rid });
            if link_table.column("Asset_Role").is_some() {
                link_row["Asset_Role"] = json!("Output");
            }
            let path = format!(
                "{}/entity/{}:{}?defaults=RID,RCT,RMT,RCB,RMB&onconflict=skip",
                self.ml.catalog_path(None),
                q(&link.schema),
                q(&link.table)
            );
            let body = json!([link_row]);
            transport
                .send_idempotent(Method::POST, &path, Some(RequestBody::Json(&body)), None)
                .await?;
        }
        // The reference tags every committed output `Output_File`;
        // the (asset, Asset_Type) key with onconflict=skip makes a resend harmless.
        let tags = TableName::new(
            asset.asset_schema.clone(),
            format!("{}_Asset_Type", asset.asset_table),
        );
        if self.ml.model().table(&tags).is_some() {
            let path = format!(
                "{}/entity/{}:{}?defaults=RID,RCT,RMT,RCB,RMB&onconflict=skip",
                self.ml.catalog_path(None),
                q(&tags.schema),
                q(&tags.table)
            );
            let body =
                json!([{ asset.asset_table.clone(): asset_rid, "Asset_Type": "Output_File" }]);
            transport
                .send_idempotent(Method::POST, &path, Some(RequestBody::Json(&body)), None)
                .await?;
        }
        state.set_asset_done(rid, &asset.asset_table, &asset.filename, &asset_rid)?;
        Ok(())
    }

    /// Puts the asset's bytes at `object` (HEAD dedup, then a resumable chunked job).
    async fn upload_bytes(&self, asset: &StagedAsset, object: &str) -> Result<String> {
        let transport = self.ml.transport();
        let state = self.ml.state();
        let rid = self.rid.as_str();
        let md5_b64 = b64(&hex::decode(&asset.md5).unwrap_or_default());
        if let Some(url) = self.existing_object(object, &md5_b64).await? {
            return Ok(url);
        }
        // Resume the recorded job if the server still has it.
        let mut job = None;
        let mut next = 0;
        if let Some(j) = &asset.job_url {
            match transport.get_json(j).await {
                Ok(_) => {
                    job = Some(j.clone());
                    next = asset.next_chunk;
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let chunk = self.chunk_bytes;
        let job_url = match job {
            Some(j) => j,
            None => {
                let spec = json!({"chunk-length": chunk, "content-length": asset.length,
                                  "content-md5": md5_b64, "content-type": "application/octet-stream"});
                let path = format!("{object};upload?parents=true");
                let reply = transport
                    .send_idempotent(Method::POST, &path, Some(RequestBody::Json(&spec)), None)
                    .await?;
                let j = String::from_utf8_lossy(&reply.body).trim().to_string();
                if !j.starts_with("/hatrac/") {
                    return Err(Error::Protocol {
                        url: transport.url(&path),
                        reason: format!("job creation returned {j:?}"),
                    });
                }
                state.set_asset_job(rid, &asset.asset_table, &asset.filename, Some(&j), 0)?;
                j
            }
        };
        let count = asset.length.div_ceil(chunk).max(1);
        let mut file = std::fs::File::open(&asset.path).map_err(|e| Error::io(&asset.path, e))?;
        for n in next..count {
            let start = n * chunk;
            let len = chunk.min(asset.length - start.min(asset.length));
            let mut buf = vec![0u8; len as usize];
            file.seek(SeekFrom::Start(start))
                .and_then(|_| file.read_exact(&mut buf))
                .map_err(|e| Error::io(&asset.path, e))?;
            let path = format!("{job_url}/{n}");
            transport
                .send_idempotent(
                    Method::PUT,
                    &path,
                    Some(RequestBody::Bytes(buf.into(), "application/octet-stream")),
                    None,
                )
                .await?;
            state.set_asset_job(
                rid,
                &asset.asset_table,
                &asset.filename,
                Some(&job_url),
                n + 1,
            )?;
        }
        match transport
            .send_once(Method::POST, &job_url, None, None)
            .await
        {
            Ok(reply) => Ok(String::from_utf8_lossy(&reply.body).trim().to_string()),
            Err(e) => {
                // The job may have been finalized by a request whose answer was lost.
                if let Some(url) = self.existing_object(object, &md5_b64).await? {
                    return Ok(url);
                }
                Err(e)
            }
        }
    }

    /// The versioned URL of `object` if it exists with these bytes.
    async fn existing_object(&self, object: &str, md5_b64: &str) -> Result<Option<String>> {
        match self
            .ml
            .transport()
            .send_idempotent(Method::HEAD, object, None, None)
            .await
        {
            Ok(reply) => {
                let same = reply
                    .headers
                    .get("content-md5")
                    .and_then(|v| v.to_str().ok())
                    == Some(md5_b64);
                let loc = reply
                    .headers
                    .get("content-location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                Ok(if same {
                    loc.or(Some(object.to_string()))
                } else {
                    None
                })
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
