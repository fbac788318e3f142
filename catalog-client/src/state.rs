//! The local execution state (`<working_dir>/state.db`, SQLite in WAL mode, every mutation
//! committed at once): the execution registry, staged feature records and staged assets.
//!
//! Departures from the Python reference: the Execution
//! RID is leased and written here *before* the Execution POST (G3); records are never marked
//! `failed` — a failed commit leaves them `pending` with `attempts`/`last_error` (G1/G2); the
//! "already uploaded" short-circuit looks at pending features as well as assets (G5).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};

/// Execution status, the seven `deriva-ml:Execution_Status` terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExecutionStatus {
    /// Row created.
    Created,
    /// Work in progress.
    Running,
    /// Work finished, outputs not yet committed.
    Stopped,
    /// A commit failed; a retry is allowed.
    Failed,
    /// A commit is in progress (or was interrupted).
    #[serde(rename = "Pending_Upload")]
    PendingUpload,
    /// All staged outputs are in the catalog.
    Uploaded,
    /// Abandoned.
    Aborted,
}

impl ExecutionStatus {
    /// The vocabulary term.
    pub fn as_str(&self) -> &'static str {
        match self {
            ExecutionStatus::Created => "Created",
            ExecutionStatus::Running => "Running",
            ExecutionStatus::Stopped => "Stopped",
            ExecutionStatus::Failed => "Failed",
            ExecutionStatus::PendingUpload => "Pending_Upload",
            ExecutionStatus::Uploaded => "Uploaded",
            ExecutionStatus::Aborted => "Aborted",
        }
    }

    /// Parses a vocabulary term.
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        Some(match s {
            "Created" => ExecutionStatus::Created,
            "Running" => ExecutionStatus::Running,
            "Stopped" => ExecutionStatus::Stopped,
            "Failed" => ExecutionStatus::Failed,
            "Pending_Upload" => ExecutionStatus::PendingUpload,
            "Uploaded" => ExecutionStatus::Uploaded,
            "Aborted" => ExecutionStatus::Aborted,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registry row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExecutionRecord {
    /// The Execution RID (leased before the catalog row existed).
    pub rid: String,
    /// Hash of the configuration, to find an interrupted creation of the same execution.
    pub config_hash: String,
    /// Workflow RID.
    pub workflow_rid: String,
    /// Description.
    pub description: String,
    /// Whether the catalog row is known to exist.
    pub created_in_catalog: bool,
    /// Local status (may be ahead of the catalog when `sync_pending`).
    pub status: ExecutionStatus,
    /// Error or detail text sent as `Status_Detail`.
    pub status_detail: Option<String>,
    /// The catalog has not yet seen the latest status.
    pub sync_pending: bool,
    /// `Upload_Duration` text of the last successful commit.
    pub upload_duration: Option<String>,
}

/// A staged feature record.
#[derive(Debug, Clone)]
pub(crate) struct StagedRecord {
    pub stage_id: i64,
    pub feature_schema: String,
    pub feature_table: String,
    pub row_json: String,
}

/// A staged output asset.
#[derive(Debug, Clone)]
pub(crate) struct StagedAsset {
    pub asset_schema: String,
    pub asset_table: String,
    pub filename: String,
    pub path: PathBuf,
    pub md5: String,
    pub length: u64,
    pub description: Option<String>,
    /// Extra asset-table columns (e.g. `Subject`), as a JSON object.
    pub metadata_json: String,
    pub hatrac_url: Option<String>,
    pub job_url: Option<String>,
    pub next_chunk: u64,
}

/// Handle on the state database (shared; one connection behind a mutex).
#[derive(Clone)]
pub(crate) struct StateStore {
    conn: Arc<Mutex<Connection>>,
    pub path: PathBuf,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    rid TEXT PRIMARY KEY,
    lease_token TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    workflow_rid TEXT NOT NULL,
    description TEXT NOT NULL,
    created_in_catalog INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    status_detail TEXT,
    sync_pending INTEGER NOT NULL DEFAULT 0,
    upload_duration TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_hash ON executions(config_hash, created_in_catalog);
CREATE TABLE IF NOT EXISTS execution_inputs (
    execution_rid TEXT NOT NULL,
    dataset_rid TEXT NOT NULL,
    version_rid TEXT NOT NULL,
    linked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (execution_rid, dataset_rid)
);
CREATE TABLE IF NOT EXISTS feature_records (
    stage_id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_rid TEXT NOT NULL,
    feature_schema TEXT NOT NULL,
    feature_table TEXT NOT NULL,
    feature_name TEXT NOT NULL,
    key_json TEXT NOT NULL,
    row_json TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL,
    uploaded_at TEXT,
    UNIQUE (execution_rid, feature_schema, feature_table, key_json)
);
CREATE INDEX IF NOT EXISTS feature_records_status ON feature_records(execution_rid, status);
CREATE TABLE IF NOT EXISTS assets (
    execution_rid TEXT NOT NULL,
    asset_schema TEXT NOT NULL,
    asset_table TEXT NOT NULL,
    filename TEXT NOT NULL,
    path TEXT NOT NULL,
    md5 TEXT NOT NULL,
    length INTEGER NOT NULL,
    description TEXT,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'pending',
    hatrac_url TEXT,
    job_url TEXT,
    next_chunk INTEGER NOT NULL DEFAULT 0,
    rid TEXT,
    last_error TEXT,
    PRIMARY KEY (execution_rid, asset_table, filename)
);
";

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

impl StateStore {
    /// Opens (creating) `<dir>/state.db`.
    pub(crate) fn open(dir: &Path) -> Result<StateStore> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join("state.db");
        let conn = Connection::open(&path).map_err(|e| Error::state(&path, e))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;",
        )
        .and_then(|_| conn.execute_batch(SCHEMA))
        .map_err(|e| Error::state(&path, e))?;
        Ok(StateStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| Error::state(&self.path, e))
    }

    /// Records a leased Execution RID, and the dataset versions it reads (`(dataset RID,
    /// Dataset_Version RID)`), in one transaction, before the Execution row is POSTed.
    pub(crate) fn insert_leased_execution(
        &self,
        rid: &str,
        token: &str,
        config_hash: &str,
        workflow_rid: &str,
        description: &str,
        inputs: &[(String, String)],
    ) -> Result<()> {
        let t = now();
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO executions (rid, lease_token, config_hash, workflow_rid, description, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'Created', ?6, ?6)",
                params![rid, token, config_hash, workflow_rid, description, t],
            )?;
            for (dataset, version) in inputs {
                tx.execute(
                    "INSERT OR IGNORE INTO execution_inputs (execution_rid, dataset_rid, version_rid)
                     VALUES (?1, ?2, ?3)",
                    params![rid, dataset, version],
                )?;
            }
            tx.commit()
        })
    }

    /// Whether `dataset` is already an input of execution `rid` (linked or not).
    pub(crate) fn has_input(&self, rid: &str, dataset: &str) -> Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM execution_inputs WHERE execution_rid = ?1 AND dataset_rid = ?2",
                params![rid, dataset],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
    }

    /// Records `dataset` at `version_rid` as an input of execution `rid`, not yet linked in
    /// the catalog. An input already recorded for that dataset is kept as it is (the
    /// catalog's `Dataset_Execution` holds one row per (dataset, execution)).
    pub(crate) fn add_input(&self, rid: &str, dataset: &str, version_rid: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO execution_inputs (execution_rid, dataset_rid, version_rid)
                 VALUES (?1, ?2, ?3)",
                params![rid, dataset, version_rid],
            )
            .map(|_| ())
        })
    }

    /// The input datasets of `rid` not yet linked in the catalog: `(dataset, version RID)`.
    pub(crate) fn unlinked_inputs(&self, rid: &str) -> Result<Vec<(String, String)>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT dataset_rid, version_rid FROM execution_inputs
                 WHERE execution_rid = ?1 AND linked = 0 ORDER BY dataset_rid",
            )?;
            let rows = stmt.query_map(params![rid], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Records that the `Dataset_Execution` row of (`rid`, `dataset`) exists.
    pub(crate) fn mark_input_linked(&self, rid: &str, dataset: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE execution_inputs SET linked = 1 WHERE execution_rid = ?1 AND dataset_rid = ?2",
                params![rid, dataset],
            )
            .map(|_| ())
        })
    }

    /// An execution whose creation was interrupted (leased, row not confirmed) for this config.
    pub(crate) fn unfinished_creation(&self, config_hash: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT rid FROM executions WHERE config_hash = ?1 AND created_in_catalog = 0
                 ORDER BY created_at DESC LIMIT 1",
                params![config_hash],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Marks the catalog row as existing.
    pub(crate) fn mark_created(&self, rid: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE executions SET created_in_catalog = 1, updated_at = ?2 WHERE rid = ?1",
                params![rid, now()],
            )
            .map(|_| ())
        })
    }

    /// The registry row of `rid`.
    pub(crate) fn execution(&self, rid: &str) -> Result<Option<ExecutionRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT rid, config_hash, workflow_rid, description, created_in_catalog, status,
                        status_detail, sync_pending, upload_duration FROM executions WHERE rid = ?1",
                params![rid],
                row_to_record,
            )
            .optional()
        })
    }

    /// Every registry row, newest first.
    pub(crate) fn executions(&self) -> Result<Vec<ExecutionRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT rid, config_hash, workflow_rid, description, created_in_catalog, status,
                        status_detail, sync_pending, upload_duration FROM executions
                 ORDER BY created_at DESC",
            )?;
            let rows = stmt.query_map([], row_to_record)?;
            rows.collect()
        })
    }

    /// Sets the local status first (two-phase: SQLite, then catalog), with `sync_pending`.
    pub(crate) fn set_status(
        &self,
        rid: &str,
        status: ExecutionStatus,
        detail: Option<&str>,
        upload_duration: Option<&str>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE executions SET status = ?2, status_detail = ?3, sync_pending = 1,
                        upload_duration = COALESCE(?4, upload_duration), updated_at = ?5 WHERE rid = ?1",
                params![rid, status.as_str(), detail, upload_duration, now()],
            )
            .map(|_| ())
        })
    }

    /// Clears `sync_pending` if the status is still `status` (a newer local change stays pending).
    pub(crate) fn mark_synced(&self, rid: &str, status: ExecutionStatus) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE executions SET sync_pending = 0 WHERE rid = ?1 AND status = ?2",
                params![rid, status.as_str()],
            )
            .map(|_| ())
        })
    }

    /// Stages feature rows in one transaction. `rows` are `(feature_name, key_json, row_json)`.
    pub(crate) fn stage_records(
        &self,
        rid: &str,
        schema: &str,
        table: &str,
        rows: &[(String, String, String)],
    ) -> Result<std::result::Result<usize, String>> {
        let t = now();
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut exists = tx.prepare_cached(
                    "SELECT 1 FROM feature_records WHERE execution_rid = ?1 AND feature_schema = ?2
                     AND feature_table = ?3 AND key_json = ?4",
                )?;
                let mut ins = tx.prepare_cached(
                    "INSERT INTO feature_records (execution_rid, feature_schema, feature_table, feature_name,
                        key_json, row_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (name, key, row) in rows {
                    if exists.exists(params![rid, schema, table, key])? {
                        // Roll back: the whole call is rejected.
                        return Ok(Err(key.clone()));
                    }
                    ins.execute(params![rid, schema, table, name, key, row, t])?;
                }
            }
            tx.commit()?;
            Ok(Ok(rows.len()))
        })
    }

    /// Pending records of an execution in stage order.
    pub(crate) fn pending_records(&self, rid: &str) -> Result<Vec<StagedRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT stage_id, feature_schema, feature_table, row_json FROM feature_records
                 WHERE execution_rid = ?1 AND status = 'pending' ORDER BY stage_id",
            )?;
            let rows = stmt.query_map(params![rid], |r| {
                Ok(StagedRecord {
                    stage_id: r.get(0)?,
                    feature_schema: r.get(1)?,
                    feature_table: r.get(2)?,
                    row_json: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// `(pending, uploaded)` record counts.
    pub(crate) fn record_counts(&self, rid: &str) -> Result<(u64, u64)> {
        self.with(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'uploaded'), 0)
                 FROM feature_records WHERE execution_rid = ?1",
                params![rid],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
        })
    }

    /// Marks records uploaded in one transaction.
    pub(crate) fn mark_records_uploaded(&self, ids: &[i64]) -> Result<()> {
        let t = now();
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut up = tx.prepare_cached(
                    "UPDATE feature_records SET status = 'uploaded', uploaded_at = ?2, last_error = NULL
                     WHERE stage_id = ?1",
                )?;
                for id in ids {
                    up.execute(params![id, t])?;
                }
            }
            tx.commit()
        })
    }

    /// Notes a failed attempt on records (they stay pending).
    pub(crate) fn note_record_failure(&self, ids: &[i64], error: &str) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut up = tx.prepare_cached(
                    "UPDATE feature_records SET attempts = attempts + 1, last_error = ?2 WHERE stage_id = ?1",
                )?;
                for id in ids {
                    up.execute(params![id, error])?;
                }
            }
            tx.commit()
        })
    }

    /// Stages an output asset.
    pub(crate) fn stage_asset(&self, rid: &str, a: &StagedAsset) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO assets (execution_rid, asset_schema, asset_table, filename, path, md5, length, description, metadata_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (execution_rid, asset_table, filename) DO UPDATE SET
                   path = excluded.path, md5 = excluded.md5, length = excluded.length,
                   description = excluded.description, metadata_json = excluded.metadata_json,
                   status = 'pending', hatrac_url = NULL, job_url = NULL, next_chunk = 0
                 WHERE assets.md5 != excluded.md5",
                params![
                    rid,
                    a.asset_schema,
                    a.asset_table,
                    a.filename,
                    a.path.to_string_lossy(),
                    a.md5,
                    a.length as i64,
                    a.description,
                    a.metadata_json
                ],
            )
            .map(|_| ())
        })
    }

    /// Pending assets of an execution.
    pub(crate) fn pending_assets(&self, rid: &str) -> Result<Vec<StagedAsset>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT asset_schema, asset_table, filename, path, md5, length, description, hatrac_url,
                        job_url, next_chunk, metadata_json FROM assets WHERE execution_rid = ?1 AND status = 'pending'
                 ORDER BY asset_table, filename",
            )?;
            let rows = stmt.query_map(params![rid], |r| {
                Ok(StagedAsset {
                    asset_schema: r.get(0)?,
                    asset_table: r.get(1)?,
                    filename: r.get(2)?,
                    path: PathBuf::from(r.get::<_, String>(3)?),
                    md5: r.get(4)?,
                    length: r.get::<_, i64>(5)? as u64,
                    description: r.get(6)?,
                    hatrac_url: r.get(7)?,
                    job_url: r.get(8)?,
                    next_chunk: r.get::<_, i64>(9)? as u64,
                    metadata_json: r.get(10)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Persists upload-job progress (`job_url`, next chunk) so a crash resumes mid-file.
    pub(crate) fn set_asset_job(
        &self,
        rid: &str,
        table: &str,
        filename: &str,
        job_url: Option<&str>,
        next_chunk: u64,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE assets SET job_url = ?4, next_chunk = ?5 WHERE execution_rid = ?1 AND asset_table = ?2 AND filename = ?3",
                params![rid, table, filename, job_url, next_chunk as i64],
            )
            .map(|_| ())
        })
    }

    /// Records the uploaded object's versioned URL.
    pub(crate) fn set_asset_uploaded_bytes(
        &self,
        rid: &str,
        table: &str,
        filename: &str,
        hatrac_url: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE assets SET hatrac_url = ?4, job_url = NULL WHERE execution_rid = ?1 AND asset_table = ?2 AND filename = ?3",
                params![rid, table, filename, hatrac_url],
            )
            .map(|_| ())
        })
    }

    /// Marks an asset fully committed (bytes, row and association).
    pub(crate) fn set_asset_done(
        &self,
        rid: &str,
        table: &str,
        filename: &str,
        asset_rid: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE assets SET rid = ?4, status = 'uploaded', last_error = NULL WHERE execution_rid = ?1 AND asset_table = ?2 AND filename = ?3",
                params![rid, table, filename, asset_rid],
            )
            .map(|_| ())
        })
    }
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    let status: String = r.get(5)?;
    Ok(ExecutionRecord {
        rid: r.get(0)?,
        config_hash: r.get(1)?,
        workflow_rid: r.get(2)?,
        description: r.get(3)?,
        created_in_catalog: r.get::<_, i64>(4)? != 0,
        status: ExecutionStatus::parse(&status).unwrap_or(ExecutionStatus::Failed),
        status_detail: r.get(6)?,
        sync_pending: r.get::<_, i64>(7)? != 0,
        upload_duration: r.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_a_duplicate_key_rejects_the_whole_call() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let rows = vec![
            (
                "Glaucoma".to_string(),
                "[\"1-I001\"]".to_string(),
                "{}".to_string(),
            ),
            (
                "Glaucoma".to_string(),
                "[\"1-I002\"]".to_string(),
                "{}".to_string(),
            ),
        ];
        assert_eq!(
            s.stage_records("10-0001", "demo", "F", &rows).unwrap(),
            Ok(2)
        );
        let again = vec![
            (
                "Glaucoma".to_string(),
                "[\"1-I003\"]".to_string(),
                "{}".to_string(),
            ),
            (
                "Glaucoma".to_string(),
                "[\"1-I001\"]".to_string(),
                "{}".to_string(),
            ),
        ];
        assert_eq!(
            s.stage_records("10-0001", "demo", "F", &again).unwrap(),
            Err("[\"1-I001\"]".to_string())
        );
        assert_eq!(s.record_counts("10-0001").unwrap(), (2, 0));
    }

    #[test]
    fn status_round_trips_through_the_vocabulary_term() {
        for s in [
            ExecutionStatus::Created,
            ExecutionStatus::PendingUpload,
            ExecutionStatus::Uploaded,
        ] {
            assert_eq!(ExecutionStatus::parse(s.as_str()), Some(s));
        }
    }
}
