//! [`DerivaML`]: a connection to one catalog, its workflows and executions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deriva_bag_features::{CatalogModel, Rid};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use serde_json::{json, Value as Json};
use sha2::Digest;

use crate::credentials::{default_credential_file, load_credential, Credential};
use crate::error::{Error, Result};
use crate::execution::Execution;
use crate::state::{ExecutionStatus, StateStore};
use crate::transport::{host_key, parse_json, RequestBody, RetryPolicy, Timeouts, Transport};
use crate::urls::AllowedUrl;

/// Characters kept verbatim in an ERMrest URL literal (deriva-py quotes with `safe=''`).
pub(crate) const LITERAL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a filter literal or name for an ERMrest URL.
pub(crate) fn q(text: &str) -> String {
    utf8_percent_encode(text, LITERAL).to_string()
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Use this credential instead of reading the credential file.
    pub credential: Option<Credential>,
    /// Credential file (default: `DERIVA_CREDENTIAL_FILE`, else `~/.deriva/credential.json`).
    pub credential_file: Option<PathBuf>,
    /// Working directory for the execution registry and the bag cache
    /// (default `~/.deriva-ml/<host>/<catalog>`).
    pub working_dir: Option<PathBuf>,
    /// Retry policy for idempotent requests.
    pub retry: Option<RetryPolicy>,
    /// `(connect, read)` timeouts of every catalog request (read: the longest silence
    /// between bytes); default [`Timeouts::default`], the reference's `(6 s, 63 s)`.
    pub timeout: Timeouts,
}

/// A workflow row (`deriva-ml:Workflow` plus its `Workflow_Type` terms).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Workflow {
    /// Workflow RID.
    pub rid: Rid,
    /// Name.
    pub name: Option<String>,
    /// Source URL.
    pub url: Option<String>,
    /// Version text.
    pub version: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Checksum of the source.
    pub checksum: Option<String>,
    /// `Workflow_Type` terms.
    pub workflow_types: Vec<String>,
}

/// What `create_execution` needs (DerivaML's `ExecutionConfiguration`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionConfiguration {
    /// Free-text description, sent as `Execution.Description`.
    pub description: String,
    /// The workflow that produced the outputs.
    pub workflow: Workflow,
    /// The input datasets (DerivaML's `datasets=[DatasetSpecConfig(..)]`): each is linked
    /// to the execution by a `Dataset_Execution` row naming the version read (`None` = the
    /// highest), which is the provenance of every record the execution commits. Only
    /// `rid` and `version` matter here; nothing is downloaded.
    pub datasets: Vec<crate::DatasetSpec>,
}

/// The webauthn session (`GET /authn/session`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Session {
    /// Client id.
    pub id: String,
    /// Display name.
    pub display_name: Option<String>,
}

pub(crate) struct Inner {
    pub transport: Transport,
    pub catalog_id: String,
    pub host_url: String,
    pub working_dir: PathBuf,
    pub state: StateStore,
    pub model: CatalogModel,
}

/// A connection to one DerivaML catalog. Cheap to clone.
#[derive(Clone)]
pub struct DerivaML {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for DerivaML {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerivaML")
            .field("host", &self.inner.host_url)
            .field("catalog", &self.inner.catalog_id)
            .field("working_dir", &self.inner.working_dir)
            .finish()
    }
}

impl DerivaML {
    /// Connects to `catalog_id` on `host_url` with the credential file's credential for that
    /// host. `host_url` is a bare host name as DerivaML writes it (`example.org`, https
    /// implied), an `https://` URL, or `http://` to loopback only (`http://127.0.0.1:PORT`);
    /// see [`AllowedUrl::parse_server`].
    pub async fn connect(host_url: &str, catalog_id: &str) -> Result<DerivaML> {
        Self::connect_with(host_url, catalog_id, ConnectOptions::default()).await
    }

    /// [`DerivaML::connect`] with explicit options.
    pub async fn connect_with(
        host_url: &str,
        catalog_id: &str,
        options: ConnectOptions,
    ) -> Result<DerivaML> {
        let url = AllowedUrl::parse_server(host_url)?;
        if catalog_id.is_empty() || catalog_id.contains(['/', '?', '#']) {
            return Err(Error::InvalidUrl {
                url: host_url.to_string(),
                reason: format!("bad catalog id {catalog_id:?}"),
            });
        }
        let host = host_key(&url);
        let credential = match options.credential {
            Some(c) => Some(c),
            None => match options.credential_file.or_else(default_credential_file) {
                Some(file) => load_credential(&host, &file)?,
                None => None,
            },
        };
        let transport = Transport::new(
            &url,
            credential.as_ref(),
            options.retry.unwrap_or_default(),
            options.timeout,
        )?;
        let working_dir = match options.working_dir {
            Some(d) => d,
            None => dirs::home_dir()
                .ok_or_else(|| {
                    Error::Validation("no home directory; pass ConnectOptions::working_dir".into())
                })?
                .join(".deriva-ml")
                .join(host.replace(':', "_"))
                .join(catalog_id),
        };
        let state = StateStore::open(&working_dir)?;
        let schema_path = format!("/ermrest/catalog/{}/schema", q(catalog_id));
        let reply = transport
            .get_raw(&schema_path, Some("application/json"))
            .await?;
        let model = CatalogModel::from_json(&reply.body)?;
        tracing::info!(host = %host, catalog = catalog_id, authenticated = credential.is_some(), "connected");
        Ok(DerivaML {
            inner: Arc::new(Inner {
                transport,
                catalog_id: catalog_id.to_string(),
                host_url: host_url.to_string(),
                working_dir,
                state,
                model,
            }),
        })
    }

    /// The catalog model read at connect time.
    pub fn model(&self) -> &CatalogModel {
        &self.inner.model
    }

    /// The working directory (registry database and bag cache).
    pub fn working_dir(&self) -> &Path {
        &self.inner.working_dir
    }

    /// `/ermrest/catalog/<id>` (optionally `@snapshot`).
    pub(crate) fn catalog_path(&self, snapshot: Option<&str>) -> String {
        match snapshot {
            Some(s) => format!("/ermrest/catalog/{}@{}", q(&self.inner.catalog_id), q(s)),
            None => format!("/ermrest/catalog/{}", q(&self.inner.catalog_id)),
        }
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    pub(crate) fn state(&self) -> &StateStore {
        &self.inner.state
    }

    /// Who the server thinks we are: `None` when not logged in (401 or 404, as deriva-ml does).
    pub async fn whoami(&self) -> Result<Option<Session>> {
        match self.transport().get_json("/authn/session").await {
            Ok(j) => Ok(Some(Session {
                id: j["client"]["id"].as_str().unwrap_or_default().to_string(),
                display_name: j["client"]["display_name"].as_str().map(str::to_string),
            })),
            Err(Error::Unauthorized { .. } | Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GETs an ERMrest path relative to the catalog, as JSON rows.
    pub(crate) async fn get_rows(&self, snapshot: Option<&str>, path: &str) -> Result<Vec<Json>> {
        let full = format!("{}{}", self.catalog_path(snapshot), path);
        match self.transport().get_json(&full).await? {
            Json::Array(rows) => Ok(rows),
            other => Err(Error::Protocol {
                url: self.transport().url(&full),
                reason: format!("expected a JSON array, got {}", other),
            }),
        }
    }

    /// All workflows, with their types (DerivaML: `ml.find_workflows()`), newest first.
    pub async fn find_workflows(&self) -> Result<Vec<Workflow>> {
        let rows = self
            .get_rows(
                None,
                "/entity/Workflow:=deriva-ml:Workflow@sort(RCT::desc::)",
            )
            .await?;
        let types = self
            .get_rows(
                None,
                "/attribute/Workflow_Workflow_Type:=deriva-ml:Workflow_Workflow_Type/Workflow,Workflow_Type",
            )
            .await?;
        let text = |r: &Json, k: &str| r.get(k).and_then(Json::as_str).map(str::to_string);
        Ok(rows
            .iter()
            .filter_map(|r| {
                let rid = text(r, "RID")?;
                let workflow_types = types
                    .iter()
                    .filter(|t| t.get("Workflow").and_then(Json::as_str) == Some(rid.as_str()))
                    .filter_map(|t| text(t, "Workflow_Type"))
                    .collect();
                Some(Workflow {
                    rid: Rid::new(rid),
                    name: text(r, "Name"),
                    url: text(r, "URL"),
                    version: text(r, "Version"),
                    description: text(r, "Description"),
                    checksum: text(r, "Checksum"),
                    workflow_types,
                })
            })
            .collect())
    }

    /// Creates an Execution for `config` (status `Created`) and returns its handle.
    ///
    /// Crash safety: the RID
    /// is leased from `public:ERMrest_RID_Lease` and recorded in the local registry *before*
    /// the Execution row is POSTed with that RID. If the process dies after the POST
    /// committed, calling `create_execution` again with the same configuration (or
    /// [`DerivaML::resume_execution`]) finds the recorded RID, sees the row through
    /// `/entity_rid`, and adopts it: there is never a second Execution.
    pub async fn create_execution(&self, config: ExecutionConfiguration) -> Result<Execution> {
        let hash = config_hash(&config);
        if let Some(rid) = self.state().unfinished_creation(&hash)? {
            tracing::info!(%rid, "completing an interrupted execution creation");
            self.ensure_execution_row(&rid).await?;
            return Ok(Execution::new(self.clone(), Rid::new(rid)));
        }
        // Resolved before the lease so that a wrong dataset or version costs nothing.
        let mut inputs = Vec::with_capacity(config.datasets.len());
        for spec in &config.datasets {
            let (_, _, version_rid) = self.resolve_version(spec).await?;
            inputs.push((spec.rid.as_str().to_string(), version_rid));
        }
        let token = uuid::Uuid::new_v4().to_string();
        let lease_path = format!(
            "{}/entity/public:ERMrest_RID_Lease",
            self.catalog_path(None)
        );
        let body = json!([{ "ID": token }]);
        // A lost lease response only wastes a RID, so one plain POST is enough.
        let reply = self
            .transport()
            .send_once(
                Method::POST,
                &lease_path,
                Some(RequestBody::Json(&body)),
                None,
            )
            .await?;
        let leased = parse_json(&self.transport().url(&lease_path), &reply.body)?;
        let rid = leased
            .get(0)
            .and_then(|r| r.get("RID"))
            .and_then(Json::as_str)
            .ok_or_else(|| Error::Protocol {
                url: self.transport().url(&lease_path),
                reason: "lease response has no RID".into(),
            })?
            .to_string();
        self.state().insert_leased_execution(
            &rid,
            &token,
            &hash,
            config.workflow.rid.as_str(),
            &config.description,
            &inputs,
        )?;
        self.ensure_execution_row(&rid).await?;
        Ok(Execution::new(self.clone(), Rid::new(rid)))
    }

    /// Makes sure the Execution row with the leased `rid` exists: `/entity_rid` first, POST
    /// only when it is absent; transport errors and 5xx loop back to the check instead of
    /// re-sending blindly.
    pub(crate) async fn ensure_execution_row(&self, rid: &str) -> Result<()> {
        let record = self
            .state()
            .execution(rid)?
            .ok_or_else(|| Error::ExecutionNotFound {
                rid: rid.to_string(),
                path: self.state().path.clone(),
            })?;
        let retry = self.transport().retry;
        let mut attempt = 0;
        loop {
            let outcome: Result<()> = async {
                if !self.execution_row_exists(rid).await? {
                    let path = format!(
                        "{}/entity/deriva-ml:Execution?nondefaults=RID&defaults=RCT,RMT,RCB,RMB",
                        self.catalog_path(None)
                    );
                    let body = json!([{ "RID": rid, "Workflow": record.workflow_rid,
                                        "Description": record.description, "Status": "Created" }]);
                    self.transport()
                        .send_once(Method::POST, &path, Some(RequestBody::Json(&body)), None)
                        .await?;
                }
                self.link_inputs(rid).await
            }
            .await;
            match outcome {
                Ok(()) => break,
                // 409: the row appeared (an earlier attempt landed); re-check.
                Err(e)
                    if (e.is_retryable() || e.status() == Some(409))
                        && attempt + 1 < retry.attempts =>
                {
                    tracing::warn!(error = %e, rid, "execution creation outcome unknown; re-checking");
                    tokio::time::sleep(retry.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        self.state().mark_created(rid)?;
        Ok(())
    }

    /// Creates the `Dataset_Execution` rows of the execution's input datasets that the
    /// registry has not seen land. `onconflict=skip` on the (Dataset, Execution) key makes a
    /// resend after a lost response harmless, so a crash anywhere leaves one row per input.
    /// A catalog without the table (or its `Dataset_Version` column) gets what it can hold.
    pub(crate) async fn link_inputs(&self, rid: &str) -> Result<()> {
        let pending = self.state().unlinked_inputs(rid)?;
        if pending.is_empty() {
            return Ok(());
        }
        let link = deriva_bag_features::TableName::new("deriva-ml", "Dataset_Execution");
        let Some(table) = self.model().table(&link) else {
            tracing::warn!(
                execution = rid,
                "the catalog has no deriva-ml:Dataset_Execution table; input datasets are not linked"
            );
            return Ok(());
        };
        let with_version = table.column("Dataset_Version").is_some();
        let rows: Vec<Json> = pending
            .iter()
            .map(|(dataset, version)| {
                let mut row = json!({ "Dataset": dataset, "Execution": rid });
                if with_version {
                    row["Dataset_Version"] = json!(version);
                }
                row
            })
            .collect();
        let path = format!(
            "{}/entity/deriva-ml:Dataset_Execution?defaults=RID,RCT,RMT,RCB,RMB&onconflict=skip",
            self.catalog_path(None)
        );
        self.transport()
            .send_idempotent(
                Method::POST,
                &path,
                Some(RequestBody::Json(&Json::Array(rows))),
                None,
            )
            .await?;
        for (dataset, _) in &pending {
            self.state().mark_input_linked(rid, dataset)?;
        }
        tracing::info!(
            execution = rid,
            inputs = pending.len(),
            "input datasets linked"
        );
        Ok(())
    }

    /// Whether `rid` resolves to a `deriva-ml:Execution` row in the live catalog (a leased,
    /// not yet used RID resolves to its `ERMrest_RID_Lease` row instead).
    pub(crate) async fn execution_row_exists(&self, rid: &str) -> Result<bool> {
        let path = format!("{}/entity_rid/{}", self.catalog_path(None), q(rid));
        match self.transport().get_json(&path).await {
            Ok(j) => Ok(
                j.get("schema_name").and_then(Json::as_str) == Some("deriva-ml")
                    && j.get("table_name").and_then(Json::as_str) == Some("Execution"),
            ),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Re-opens an execution from the local registry after a crash or in a new process:
    /// finishes an interrupted creation, flushes a status the catalog has not seen
    /// (`sync_pending`), and checks the catalog row. Then call
    /// [`Execution::upload_execution_outputs`] to commit what is still pending.
    pub async fn resume_execution(&self, rid: &Rid) -> Result<Execution> {
        let record =
            self.state()
                .execution(rid.as_str())?
                .ok_or_else(|| Error::ExecutionNotFound {
                    rid: rid.to_string(),
                    path: self.state().path.clone(),
                })?;
        if record.created_in_catalog {
            // Inputs recorded later (`Execution::download_dataset_bag`) whose link did not
            // land before the crash.
            self.link_inputs(rid.as_str()).await?;
        } else {
            self.ensure_execution_row(rid.as_str()).await?;
        }
        let exe = Execution::new(self.clone(), rid.clone());
        if record.sync_pending {
            exe.flush_status().await?;
        }
        let rows = self
            .get_rows(
                None,
                &format!(
                    "/entity/Execution:=deriva-ml:Execution/RID={}",
                    q(rid.as_str())
                ),
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(Error::StateInconsistency {
                rid: rid.to_string(),
                reason: "the local registry has it but the catalog has no Execution row".into(),
            });
        };
        let local = self.local_status(rid)?;
        let pending = self
            .state()
            .execution(rid.as_str())?
            .is_some_and(|r| r.sync_pending);
        let catalog = row
            .get("Status")
            .and_then(Json::as_str)
            .and_then(ExecutionStatus::parse);
        if let (Some(catalog), false) = (catalog, pending) {
            match reconcile(local, catalog) {
                Reconcile::Agree => {}
                Reconcile::Adopt => {
                    tracing::info!(rid = %rid, %local, %catalog, "adopting the catalog's status");
                    self.state().set_status(rid.as_str(), catalog, None, None)?;
                    self.state().mark_synced(rid.as_str(), catalog)?;
                }
                Reconcile::Push => {
                    tracing::info!(rid = %rid, %local, %catalog, "pushing the local status");
                    let detail = self
                        .state()
                        .execution(rid.as_str())?
                        .and_then(|r| r.status_detail);
                    self.state()
                        .set_status(rid.as_str(), local, detail.as_deref(), None)?;
                    exe.flush_status().await?;
                }
                Reconcile::Inconsistent => {
                    return Err(Error::StateInconsistency {
                        rid: rid.to_string(),
                        reason: format!(
                            "the local registry says {local} but the catalog says {catalog}"
                        ),
                    })
                }
            }
        }
        Ok(exe)
    }

    /// Every execution in the local registry (newest first).
    pub fn local_executions(&self) -> Result<Vec<crate::state::ExecutionRecord>> {
        self.state().executions()
    }

    /// The local status of `rid`.
    pub fn local_status(&self, rid: &Rid) -> Result<ExecutionStatus> {
        self.state()
            .execution(rid.as_str())?
            .map(|r| r.status)
            .ok_or_else(|| Error::ExecutionNotFound {
                rid: rid.to_string(),
                path: self.state().path.clone(),
            })
    }
}

/// What resume does when the registry and the catalog disagree.
#[derive(Debug, PartialEq, Eq)]
enum Reconcile {
    Agree,
    /// The catalog wins.
    Adopt,
    /// The local registry wins: re-send it.
    Push,
    Inconsistent,
}

/// The reference's disagreement table, extended with
/// the states our own two-phase writes can leave behind (local ahead by one step).
fn reconcile(local: ExecutionStatus, catalog: ExecutionStatus) -> Reconcile {
    use ExecutionStatus::*;
    if local == catalog {
        return Reconcile::Agree;
    }
    match (local, catalog) {
        (Running, Aborted) | (PendingUpload, Uploaded) | (Running, Failed) => Reconcile::Adopt,
        (Stopped | Failed | Uploaded | Aborted, Running)
        | (Uploaded, PendingUpload)
        | (Running | Stopped, Created)
        | (PendingUpload | Failed | Uploaded, Created | Stopped | Failed | PendingUpload) => {
            Reconcile::Push
        }
        _ => Reconcile::Inconsistent,
    }
}

fn config_hash(config: &ExecutionConfiguration) -> String {
    let mut doc = json!({"workflow": config.workflow.rid, "description": config.description});
    // Only when there are inputs, so that the hash of a configuration without datasets is
    // the one registries written before this field existed hold.
    if !config.datasets.is_empty() {
        doc["datasets"] = config
            .datasets
            .iter()
            .map(|d| json!([d.rid, d.version]))
            .collect();
    }
    hex::encode(sha2::Sha256::digest(doc.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionStatus::*;

    #[test]
    fn reconcile_follows_the_reference_disagreement_table() {
        assert_eq!(reconcile(Running, Aborted), Reconcile::Adopt);
        assert_eq!(reconcile(PendingUpload, Uploaded), Reconcile::Adopt);
        assert_eq!(reconcile(Running, Failed), Reconcile::Adopt);
        assert_eq!(reconcile(Stopped, Running), Reconcile::Push);
        assert_eq!(reconcile(Uploaded, PendingUpload), Reconcile::Push);
        assert_eq!(reconcile(Uploaded, Uploaded), Reconcile::Agree);
        assert_eq!(reconcile(Created, Uploaded), Reconcile::Inconsistent);
    }
}
