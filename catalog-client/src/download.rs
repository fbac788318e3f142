//! Downloading a dataset version as a Format-B bag, materializing its assets, and
//! estimating its size.
//!
//! The bag is built client-side, as the reference's Tier 3 does: resolve the version's
//! snapshot, read the rows the dataset reaches (paged and RID-chunked reads through the live
//! dataset's `SnapshotReader`: each step reads only the rows linked to what was reached so
//! far; vocabularies whole), write
//! `data/schema.json` and `data/<schema>/<table>.csv`, and let bag-core's
//! [`BagWriter`](deriva_bag_format::bagit::write::BagWriter) write md5+sha256 manifests and
//! `fetch.txt`. The cache lives at `<working_dir>/cache/bags/<RID>_<version>_<snapshot>/` (not
//! DerivaML's `~/.deriva/bags/…`, which the reference does not use either).
//!
//! The cache never hands out a path that does not hold the bag: a cached bag is reused only
//! while every file its tag files list is on disk (files of `fetch.txt` aside, which
//! materializing fetches). "Delete the bag directory for a fresh download", as DerivaML
//! says, works in whole or in part: the next download builds the bag again.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use deriva_bag_features::{CatalogModel, Rid, Table, TableName};
use deriva_bag_format::bagit::paths::safe_join;
use deriva_bag_format::bagit::write::{BagWriter, RemoteFile};
use deriva_bag_format::bagit::{Algorithm, BagItFiles};
use deriva_bag_format::csv;
use serde_json::{Map, Value as Json};

use crate::client::{q, DerivaML};
use crate::dataset::SnapshotReader;
use crate::error::{Error, Result};
use crate::materialize::{fully_materialized, DEFAULT_PARALLELISM};
use crate::names::PathSegment;
use crate::transport::Timeouts;

/// Which dataset version to download (DerivaML's `DatasetSpec`).
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    /// Dataset RID.
    pub rid: Rid,
    /// Version (`None` = the highest PEP 440 version).
    pub version: Option<String>,
    /// Fetch every asset into `data/asset/` (DerivaML's default: true).
    pub materialize: bool,
    /// DerivaML's `timeout=(connect, read)` for the asset fetches of this download
    /// (read: the longest silence between bytes, not a deadline for a whole file); default
    /// [`Timeouts::default`]. Catalog requests use [`ConnectOptions::timeout`](crate::ConnectOptions::timeout).
    pub timeout: Timeouts,
}

impl DatasetSpec {
    /// A materialized download of `rid` at `version`.
    pub fn new(rid: impl Into<String>, version: Option<&str>) -> DatasetSpec {
        DatasetSpec {
            rid: Rid::new(rid.into()),
            version: version.map(str::to_string),
            materialize: true,
            timeout: Timeouts::default(),
        }
    }
}

/// A downloaded bag.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DownloadedBag {
    /// The bag directory `…/Dataset_<RID>`; open it with `deriva_bag_core::DatasetBag::open`
    /// (bag-core's `catalog` feature has `download_dataset_bag_opened`, which does).
    pub path: PathBuf,
    /// Dataset RID.
    pub rid: String,
    /// Resolved version.
    pub version: String,
    /// Catalog snapshot the rows were read from (`None`: the version row has no snapshot, the
    /// live catalog was read).
    pub snapshot: Option<String>,
    /// Whether every fetch.txt file is on disk.
    pub materialized: bool,
    /// Whether the bag came from the cache without building.
    pub from_cache: bool,
}

/// Per-table part of a size estimate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableEstimate {
    /// Rows reached.
    pub row_count: u64,
    /// Whether it is an asset table.
    pub is_asset: bool,
    /// Sum of `Length` over reached rows.
    pub asset_bytes: u64,
    /// Size of the CSV the bag would hold.
    pub csv_bytes: u64,
}

/// `estimate_bag_size` result (the shape deriva-ml returns).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BagSizeEstimate {
    /// Per table, keyed `schema:table`.
    pub tables: BTreeMap<String, TableEstimate>,
    /// Sum of rows.
    pub total_rows: u64,
    /// Sum of asset bytes.
    pub total_asset_bytes: u64,
    /// Sum of CSV bytes.
    pub total_csv_bytes: u64,
    /// Asset plus CSV bytes.
    pub total_estimated_bytes: u64,
}

/// The rows a dataset version reaches, by table.
struct Export {
    model: CatalogModel,
    schema_bytes: bytes::Bytes,
    tables: BTreeMap<TableName, Vec<Map<String, Json>>>,
}

fn text(row: &Map<String, Json>, col: &str) -> Option<String> {
    match row.get(col)? {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn is_domain(t: &Table) -> bool {
    !deriva_bag_features::model::is_system_schema(&t.name.schema) && t.name.schema != "deriva-ml"
}

/// The element walk (deriva-ml's FK paths), one step: records `rids` of `table`, then follows
/// every single-column FK to `RID` between element tables (both directions) to a table not yet
/// on `path`. Each step reads only the rows it follows from (RID-chunked queries).
fn walk_elements<'a>(
    reader: &'a SnapshotReader,
    model: &'a CatalogModel,
    elements: &'a [TableName],
    table: TableName,
    rids: BTreeSet<String>,
    path: &'a mut Vec<TableName>,
    reached: &'a mut BTreeMap<TableName, BTreeSet<String>>,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        reached
            .entry(table.clone())
            .or_default()
            .extend(rids.iter().cloned());
        let rid_list: Vec<String> = rids.iter().cloned().collect();
        let mut steps: Vec<(TableName, BTreeSet<String>)> = Vec::new();
        for name in elements {
            let Some(t) = model.table(name) else { continue };
            for fk in &t.foreign_keys {
                if fk.referenced_columns != ["RID"] || fk.columns.len() != 1 {
                    continue;
                }
                let col = fk.columns[0].as_str();
                if name == &table && elements.contains(&fk.referenced_table) {
                    // Outbound: the rows our rows point at.
                    let rows = reader
                        .scan_any(&table, "RID", &rid_list, Some(&[col]))
                        .await?;
                    let next = rows.iter().filter_map(|r| text(r, col)).collect();
                    steps.push((fk.referenced_table.clone(), next));
                }
                if fk.referenced_table == table {
                    // Inbound: the rows of `name` that point at our rows.
                    let rows = reader.scan_any(name, col, &rid_list, Some(&[])).await?;
                    let next = rows.iter().filter_map(|r| text(r, "RID")).collect();
                    steps.push((name.clone(), next));
                }
            }
        }
        for (next_table, next_rids) in steps {
            if next_rids.is_empty() || path.contains(&next_table) {
                continue;
            }
            path.push(next_table.clone());
            walk_elements(
                reader, model, elements, next_table, next_rids, path, reached,
            )
            .await?;
            path.pop();
        }
        Ok(())
    })
}

fn table_csv(table: &Table, rows: &[Map<String, Json>]) -> String {
    let mut out = String::new();
    csv::push_line(
        &mut out,
        table.columns.iter().map(|c| Some(c.name.as_str())),
    );
    for r in rows {
        let cells: Vec<Option<String>> = table
            .columns
            .iter()
            .map(|c| r.get(&c.name).and_then(csv::json_cell))
            .collect();
        csv::push_line(&mut out, cells.iter().map(|c| c.as_deref()));
    }
    out
}

/// Whether a cached bag is still whole: its tag files parse and every file its payload and
/// tag manifests list is on disk, except `fetch.txt` files (materializing fetches those).
/// A bag deleted in whole or in part is not, and is built again.
fn cached_bag_is_whole(bag_dir: &Path) -> bool {
    let Ok(files) = BagItFiles::read(bag_dir) else {
        return false;
    };
    let fetched: BTreeSet<&str> = files.fetch.iter().map(|f| f.path.as_str()).collect();
    let manifest = bag_dir.join("manifest-md5.txt");
    files
        .manifests
        .iter()
        .chain(&files.tag_manifests)
        .flat_map(|m| &m.entries)
        .filter(|e| !fetched.contains(e.path.as_str()))
        .all(|e| safe_join(bag_dir, &e.path, &manifest).is_ok_and(|p| p.is_file()))
}

impl DerivaML {
    /// Resolves `(version, snapshot)` of a dataset.
    /// The version `spec` asks for (the highest when `None`): `(version, snapshot,
    /// Dataset_Version RID)`.
    pub(crate) async fn resolve_version(
        &self,
        spec: &DatasetSpec,
    ) -> Result<(String, Option<String>, String)> {
        let rid = spec.rid.as_str();
        let path = format!("{}/entity_rid/{}", self.catalog_path(None), q(rid));
        let found = match self.transport().get_json(&path).await {
            Ok(j) => j,
            Err(Error::NotFound { .. }) => {
                return Err(Error::Validation(format!(
                    "{rid} is not a RID of this catalog"
                )))
            }
            Err(e) => return Err(e),
        };
        if found.get("table_name").and_then(Json::as_str) != Some("Dataset") {
            return Err(Error::Validation(format!(
                "{rid} is a row of {}:{}, not a Dataset",
                found["schema_name"].as_str().unwrap_or("?"),
                found["table_name"].as_str().unwrap_or("?")
            )));
        }
        let versions = self
            .get_rows(
                None,
                &format!(
                    "/entity/Dataset_Version:=deriva-ml:Dataset_Version/Dataset={}",
                    q(rid)
                ),
            )
            .await?;
        let texts: Vec<String> = versions
            .iter()
            .filter_map(|v| v["Version"].as_str().map(str::to_string))
            .collect();
        let wanted = match &spec.version {
            Some(v) => v.clone(),
            None => deriva_bag_format::version::max_version(texts.iter().map(String::as_str))
                .map(str::to_string)
                .ok_or_else(|| Error::Validation(format!("dataset {rid} has no versions")))?,
        };
        let row = versions
            .iter()
            .find(|v| v["Version"].as_str() == Some(wanted.as_str()))
            .ok_or_else(|| {
                Error::Validation(format!(
                    "dataset {rid} has no version {wanted}; versions: {}",
                    texts.join(", ")
                ))
            })?;
        let snapshot = row["Snapshot"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let version_rid = row["RID"].as_str().unwrap_or_default().to_string();
        Ok((wanted, snapshot, version_rid))
    }

    /// Computes the rows a dataset reaches at `snapshot` (see the module docs), with paged and
    /// RID-chunked reads only: vocabularies are read whole (a bag holds them whole), every
    /// other table only where it is linked to what was reached so far.
    async fn export(&self, rid: &str, snapshot: Option<&str>) -> Result<Export> {
        let schema_path = format!("{}/schema", self.catalog_path(snapshot));
        let schema_bytes = self
            .transport()
            .get_raw(&schema_path, Some("application/json"))
            .await?
            .body;
        let model = CatalogModel::from_json(&schema_bytes)?;
        let reader = SnapshotReader::new(self.transport().clone(), self.catalog_path(snapshot));
        let dataset_t = TableName::new("deriva-ml", "Dataset");
        let mut reached: BTreeMap<TableName, BTreeSet<String>> = BTreeMap::new();
        // Nested datasets, level by level.
        let mut datasets: BTreeSet<String> = [rid.to_string()].into();
        let nesting = TableName::new("deriva-ml", "Dataset_Dataset");
        if model.table(&nesting).is_some() {
            let mut frontier: Vec<String> = vec![rid.to_string()];
            while !frontier.is_empty() {
                let rows = reader
                    .scan_any(&nesting, "Dataset", &frontier, Some(&["Nested_Dataset"]))
                    .await?;
                frontier = rows
                    .iter()
                    .filter_map(|r| text(r, "Nested_Dataset"))
                    .filter(|c| datasets.insert(c.clone()))
                    .collect();
            }
        }
        reached.insert(dataset_t.clone(), datasets.clone());
        let dataset_list: Vec<String> = datasets.iter().cloned().collect();
        let tables: Vec<Table> = model.tables().cloned().collect();
        let fk_to = |t: &Table, col: &str, target: &TableName| {
            t.foreign_keys.iter().any(|fk| {
                fk.columns == [col]
                    && &fk.referenced_table == target
                    && fk.referenced_columns == ["RID"]
            })
        };
        // Dataset-keyed tables: element associations, versions, nesting, types.
        for t in &tables {
            if t.is_vocabulary()
                || !fk_to(t, "Dataset", &dataset_t)
                || t.name.table == "Dataset_Execution"
            {
                continue;
            }
            let element_assoc = t.name.table.starts_with("Dataset_")
                && !matches!(
                    t.name.table.as_str(),
                    "Dataset_Dataset" | "Dataset_Version" | "Dataset_Dataset_Type"
                );
            let members: Vec<(&TableName, &str)> = if element_assoc {
                t.foreign_keys
                    .iter()
                    .filter(|fk| {
                        fk.referenced_table != dataset_t
                            && fk.referenced_columns == ["RID"]
                            && model
                                .table(&fk.referenced_table)
                                .is_some_and(|target| !target.is_vocabulary())
                    })
                    .map(|fk| (&fk.referenced_table, fk.columns[0].as_str()))
                    .collect()
            } else {
                Vec::new()
            };
            let columns: Vec<&str> = members.iter().map(|(_, c)| *c).collect();
            let rows = reader
                .scan_any(&t.name, "Dataset", &dataset_list, Some(&columns))
                .await?;
            for r in &rows {
                if let Some(rr) = text(r, "RID") {
                    reached.entry(t.name.clone()).or_default().insert(rr);
                }
                for (target, column) in &members {
                    if let Some(v) = text(r, column) {
                        reached.entry((*target).clone()).or_default().insert(v);
                    }
                }
            }
        }
        // Element walk (deriva-ml's FK paths): from each member table, follow foreign keys
        // between domain element tables, outbound or inbound, never re-entering a table already
        // on the path. An Image reached through its Subject is included (Dataset_Subject →
        // Subject ← Image), but Image → Subject → Image is not a path, so a Subject shared with
        // a non-member Image does not drag that Image in.
        let has = |t: &Table, c: &str| t.column(c).is_some();
        let elements: Vec<TableName> = tables
            .iter()
            .filter(|t| {
                is_domain(t) && !t.is_vocabulary() && !has(t, "Dataset") && !has(t, "Execution")
            })
            .map(|t| t.name.clone())
            .collect();
        let starts: Vec<(TableName, BTreeSet<String>)> = reached
            .iter()
            .filter(|(t, _)| elements.contains(t))
            .map(|(t, s)| (t.clone(), s.clone()))
            .collect();
        for (table, rids) in starts {
            let mut path = vec![table.clone()];
            walk_elements(
                &reader,
                &model,
                &elements,
                table,
                rids,
                &mut path,
                &mut reached,
            )
            .await?;
        }
        // Provenance: feature tables and <Asset>_Execution rows about reached elements.
        let execution_t = TableName::new("deriva-ml", "Execution");
        let mut executions: BTreeSet<String> = BTreeSet::new();
        for t in &tables {
            if !is_domain(t) || !has(t, "Execution") || t.is_vocabulary() {
                continue;
            }
            let targets: Vec<(&str, &TableName)> = t
                .foreign_keys
                .iter()
                .filter(|fk| fk.referenced_columns == ["RID"] && fk.referenced_table != execution_t)
                .filter(|fk| {
                    model
                        .table(&fk.referenced_table)
                        .is_some_and(|x| is_domain(x) && !x.is_vocabulary())
                })
                .map(|fk| (fk.columns[0].as_str(), &fk.referenced_table))
                .collect();
            for (column, target) in targets {
                let Some(about) = reached.get(target) else {
                    continue;
                };
                let about: Vec<String> = about.iter().cloned().collect();
                let rows = reader
                    .scan_any(&t.name, column, &about, Some(&["Execution"]))
                    .await?;
                for r in &rows {
                    if let Some(rr) = text(r, "RID") {
                        reached.entry(t.name.clone()).or_default().insert(rr);
                    }
                    if let Some(e) = text(r, "Execution") {
                        executions.insert(e);
                    }
                }
            }
        }
        let version_t = TableName::new("deriva-ml", "Dataset_Version");
        if let Some(vs) = reached.get(&version_t) {
            let vs: Vec<String> = vs.iter().cloned().collect();
            let rows = reader
                .scan_any(&version_t, "RID", &vs, Some(&["Execution"]))
                .await?;
            executions.extend(rows.iter().filter_map(|r| text(r, "Execution")));
        }
        if model.table(&execution_t).is_some() && !executions.is_empty() {
            let list: Vec<String> = executions.iter().cloned().collect();
            let rows = reader
                .scan_any(&execution_t, "RID", &list, Some(&["Workflow"]))
                .await?;
            let wf_t = TableName::new("deriva-ml", "Workflow");
            for w in rows.iter().filter_map(|r| text(r, "Workflow")) {
                reached.entry(wf_t.clone()).or_default().insert(w);
            }
            reached.insert(execution_t.clone(), executions);
        }
        let mut out: BTreeMap<TableName, Vec<Map<String, Json>>> = BTreeMap::new();
        for t in &tables {
            if deriva_bag_features::model::is_system_schema(&t.name.schema) {
                continue;
            }
            let rows = if t.is_vocabulary() {
                reader.scan(&t.name, "", None).await?
            } else {
                let Some(set) = reached.get(&t.name).filter(|s| !s.is_empty()) else {
                    continue;
                };
                let rids: Vec<String> = set.iter().cloned().collect();
                reader.scan_any(&t.name, "RID", &rids, None).await?
            };
            if !rows.is_empty() {
                out.insert(t.name.clone(), rows);
            }
        }
        Ok(Export {
            model,
            schema_bytes,
            tables: out,
        })
    }

    /// Remote files of the reached asset rows: `data/asset/<RID>/<Table>/<Filename>`.
    fn remote_files(&self, export: &Export) -> Result<Vec<RemoteFile>> {
        let mut files = Vec::new();
        for (name, rows) in &export.tables {
            let Some(t) = export.model.table(name) else {
                continue;
            };
            if !t.is_asset() {
                continue;
            }
            for r in rows {
                let (Some(rid), Some(url), Some(md5)) =
                    (text(r, "RID"), text(r, "URL"), text(r, "MD5"))
                else {
                    continue;
                };
                let filename = text(r, "Filename")
                    .unwrap_or_else(|| url.rsplit('/').next().unwrap_or("asset").to_string());
                // Every component comes from the catalog: each must stay one component.
                let rid = PathSegment::parse(&rid, format!("RID of a {name} row"))?;
                let table = PathSegment::parse(&name.table, "asset table name")?;
                let filename =
                    PathSegment::parse(&filename, format!("Filename of {name} row {rid}"))?;
                let rel = format!("data/asset/{rid}/{table}/{filename}");
                let length = r.get("Length").and_then(Json::as_u64).unwrap_or(0);
                files.push(RemoteFile {
                    url: self.transport().url(&url),
                    length,
                    path: rel,
                    md5,
                    sha256: None,
                });
            }
        }
        Ok(files)
    }

    fn cache_dir(&self, rid: &str, version: &str, snapshot: Option<&str>) -> PathBuf {
        let safe = |s: &str| {
            s.replace(
                |c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'),
                "_",
            )
        };
        self.working_dir().join("cache").join("bags").join(format!(
            "{}_{}_{}",
            safe(rid),
            safe(version),
            safe(snapshot.unwrap_or("live"))
        ))
    }

    /// Downloads (or reuses from the cache) the bag of a dataset version; with
    /// `spec.materialize`, also fetches every asset. A cached, fully materialized bag with
    /// an explicit version is returned without any network traffic. A cached bag that was
    /// deleted, in whole or in part, is downloaded afresh: the returned path always holds
    /// the bag.
    pub async fn download_dataset_bag(&self, spec: DatasetSpec) -> Result<DownloadedBag> {
        let rid = spec.rid.as_str().to_string();
        let bag_name = PathSegment::parse(&format!("Dataset_{rid}"), "dataset RID")?;
        // Tier 1 without network: an explicit version whose bag is complete in the cache.
        if let Some(v) = &spec.version {
            let root = self.working_dir().join("cache").join("bags");
            if let Ok(entries) = std::fs::read_dir(&root) {
                let prefix = format!("{}_{}_", rid, v);
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !name.starts_with(&prefix) || !e.path().join("complete.json").is_file() {
                        continue;
                    }
                    let path = e.path().join(&bag_name);
                    if !cached_bag_is_whole(&path) {
                        continue;
                    }
                    let materialized = fully_materialized(&path)?;
                    if materialized || !spec.materialize {
                        let snapshot = name[prefix.len()..].to_string();
                        tracing::info!(path = %path.display(), "using cached bag");
                        return Ok(DownloadedBag {
                            path,
                            rid,
                            version: v.clone(),
                            snapshot: (snapshot != "live").then_some(snapshot),
                            materialized,
                            from_cache: true,
                        });
                    }
                }
            }
        }
        let (version, snapshot, _) = self.resolve_version(&spec).await?;
        let dir = self.cache_dir(&rid, &version, snapshot.as_deref());
        let path = dir.join(&bag_name);
        let mut from_cache = true;
        if !dir.join("complete.json").is_file() || !cached_bag_is_whole(&path) {
            from_cache = false;
            self.build_bag(&rid, snapshot.as_deref(), &dir, &bag_name)
                .await?;
            let marker = serde_json::json!({"rid": rid, "version": version, "snapshot": snapshot});
            std::fs::write(dir.join("complete.json"), marker.to_string())
                .map_err(|e| Error::io(&dir, e))?;
        }
        if spec.materialize {
            self.materialize_with(&path, DEFAULT_PARALLELISM, spec.timeout)
                .await?;
        }
        let materialized = fully_materialized(&path)?;
        Ok(DownloadedBag {
            path,
            rid,
            version,
            snapshot,
            materialized,
            from_cache,
        })
    }

    /// Builds the bag in a temporary directory beside `dir`, then renames it into place.
    /// Every path is computed (and every catalog name checked) before anything is written,
    /// and a failure removes the temporary directory: nothing half-written stays behind.
    async fn build_bag(
        &self,
        rid: &str,
        snapshot: Option<&str>,
        dir: &Path,
        bag_name: &PathSegment,
    ) -> Result<()> {
        let export = self.export(rid, snapshot).await?;
        let remote = self.remote_files(&export)?;
        // data/<schema>/<table>.csv, with both names from the catalog.
        let mut csvs = Vec::new();
        for (name, rows) in &export.tables {
            let Some(t) = export.model.table(name) else {
                continue;
            };
            let schema = PathSegment::parse(&name.schema, "schema name")?;
            let table = PathSegment::parse(&name.table, format!("table name (schema {schema})"))?;
            csvs.push((schema, format!("{table}.csv"), t, rows));
        }
        let tmp = dir.with_file_name(format!(
            ".tmp-{}-{}",
            dir.file_name().and_then(|f| f.to_str()).unwrap_or("bag"),
            uuid::Uuid::new_v4().simple()
        ));
        let written = (|| -> Result<()> {
            let bag = tmp.join(bag_name);
            let data = bag.join("data");
            std::fs::create_dir_all(&data).map_err(|e| Error::io(&data, e))?;
            let write = |p: PathBuf, bytes: &[u8]| -> Result<()> {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))
            };
            write(data.join("schema.json"), &export.schema_bytes)?;
            for (schema, file, t, rows) in &csvs {
                write(data.join(schema).join(file), table_csv(t, rows).as_bytes())?;
            }
            BagWriter::new()
                .algorithms(&[Algorithm::Md5, Algorithm::Sha256])
                .remote_files(remote)
                .write(&bag)?;
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        written
    }

    /// Row counts and byte totals of a dataset version's bag, without writing anything.
    pub async fn estimate_bag_size(
        &self,
        rid: &Rid,
        version: Option<&str>,
    ) -> Result<BagSizeEstimate> {
        let spec = DatasetSpec {
            rid: rid.clone(),
            version: version.map(str::to_string),
            materialize: false,
            timeout: Timeouts::default(),
        };
        let (_, snapshot, _) = self.resolve_version(&spec).await?;
        let export = self.export(rid.as_str(), snapshot.as_deref()).await?;
        let mut tables = BTreeMap::new();
        for (name, rows) in &export.tables {
            let Some(t) = export.model.table(name) else {
                continue;
            };
            let asset_bytes = if t.is_asset() {
                rows.iter()
                    .filter_map(|r| r.get("Length").and_then(Json::as_u64))
                    .sum()
            } else {
                0
            };
            tables.insert(
                name.to_string(),
                TableEstimate {
                    row_count: rows.len() as u64,
                    is_asset: t.is_asset(),
                    asset_bytes,
                    csv_bytes: table_csv(t, rows).len() as u64,
                },
            );
        }
        let total_rows = tables.values().map(|t| t.row_count).sum();
        let total_asset_bytes = tables.values().map(|t| t.asset_bytes).sum();
        let total_csv_bytes = tables.values().map(|t| t.csv_bytes).sum();
        Ok(BagSizeEstimate {
            tables,
            total_rows,
            total_asset_bytes,
            total_csv_bytes,
            total_estimated_bytes: total_asset_bytes + total_csv_bytes,
        })
    }
}
