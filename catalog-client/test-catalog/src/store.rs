//! The test catalog's storage: ERMrest rows and Hatrac objects in one SQLite database.
//!
//! Rows are stored as JSON documents (column order = model order) with one `keyvals` entry per
//! unique key, so unique-key conflicts and foreign keys are checked by SQLite indexes even for
//! 100,000-row tables. Every mutating call runs in one SQLite transaction: a request is atomic,
//! as in ERMrest.
//!
//! ## Snapshots
//!
//! Each request that changes rows gets one snaptime (microseconds since the epoch, strictly
//! increasing; shown in ERMrest's base-32 form) and records, in `history`, the row image
//! *before* the change (none for an insert). The catalog's snaptime is that of its latest
//! change, or the seed's when nothing changed since. A read at snapshot `S` starts from the
//! live rows and undoes, per RID, the earliest change after `S`: it sees exactly the rows
//! committed at or before `S`. Seeded rows (and rows added with `TestCatalog::insert_rows`)
//! have no history: they stand for the catalog's past, visible at every snapshot.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use deriva_bag_features::{CatalogModel, Table, TableName, Value};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value as Json};

use super::urlpath::{CmpOp, DataPath, Filter, Projection};

/// An HTTP-level failure of a catalog operation: status code and plain-text message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::new(500, format!("test catalog storage error: {e}"))
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Who sends a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// Client id written to RCB/RMB.
    pub id: String,
    /// Catalog owners may supply any RID; others only RIDs they leased.
    pub owner: bool,
}

/// ERMrest's base-32 alphabet (`ermrest_schema.sql::urlb32_encode`).
const B32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Decodes ERMrest's base-32 form (the inverse of [`urlb32_encode`]; `-` separators ignored,
/// letters in either case). `None` for any other character or a value over 64 bits.
pub(crate) fn urlb32_decode(text: &str) -> Option<u64> {
    let mut value: u64 = 0;
    let mut digits = 0;
    for c in text.bytes() {
        if c == b'-' {
            continue;
        }
        let d = B32.iter().position(|&b| b == c.to_ascii_uppercase())? as u64;
        value = value.checked_mul(32)?.checked_add(d)?;
        digits += 1;
    }
    (digits > 0).then_some(value)
}

/// Encodes `value` the way ERMrest writes RIDs and snaptimes: base 32, grouped in fours from
/// the right with `-`.
pub(crate) fn urlb32_encode(mut value: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(B32[(value % 32) as usize]);
        value /= 32;
        if value == 0 {
            break;
        }
    }
    let mut out = String::new();
    for (i, d) in digits.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(*d as char);
    }
    out.chars().rev().collect()
}

/// Insert options from the query string.
#[derive(Debug, Clone, Default)]
pub(crate) struct InsertOptions {
    pub defaults: HashSet<String>,
    pub nondefaults: HashSet<String>,
    pub skip_conflicts: bool,
}

/// A Hatrac object version.
#[derive(Debug, Clone)]
pub(crate) struct ObjectVersion {
    pub name: String,
    pub version: String,
    pub bytes: Vec<u8>,
    pub md5_hex: String,
    pub sha256_hex: String,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
}

/// A chunked upload job.
#[derive(Debug, Clone)]
pub(crate) struct UploadJob {
    pub id: String,
    pub name: String,
    pub chunk_length: u64,
    pub content_length: u64,
    pub content_md5: Option<String>,
    pub content_sha256: Option<String>,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
}

/// The catalog's data.
pub(crate) struct Store {
    conn: Connection,
    pub model: CatalogModel,
    /// The `/schema` document as served (its `snaptime` is replaced by the snapshot read).
    pub schema_json: Json,
    next_rid: u64,
    /// The seed's snaptime (microseconds): the state before any logged change.
    seed_snap: u64,
    /// The snaptime of the latest change (`seed_snap` when nothing changed).
    snap: u64,
}

const SYSTEM_COLUMNS: [&str; 5] = ["RID", "RCT", "RMT", "RCB", "RMB"];

fn now_text() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

fn now_micros() -> u64 {
    Utc::now().timestamp_micros().max(0) as u64
}

/// Records the image of row `rid` before a change at `snap` (`None`: the row did not exist).
fn log_change(
    tx: &rusqlite::Transaction<'_>,
    snap: u64,
    rid: &str,
    tname: &str,
    before: Option<&str>,
) -> ApiResult<()> {
    tx.execute(
        "INSERT INTO history (snap, rid, tname, before) VALUES (?1, ?2, ?3, ?4)",
        params![snap as i64, rid, tname, before],
    )?;
    Ok(())
}

fn key_name(table: &Table, index: usize) -> String {
    table.keys[index]
        .names
        .first()
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| format!("{}_key{index}", table.name.table))
}

/// The text form of a JSON scalar used in key values and comparisons.
fn scalar_text(v: &Json) -> Option<String> {
    match v {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn key_value(row: &Map<String, Json>, columns: &[String]) -> Option<String> {
    let mut parts = Vec::with_capacity(columns.len());
    for c in columns {
        parts.push(Json::String(scalar_text(row.get(c)?)?));
    }
    Some(Json::Array(parts).to_string())
}

impl Store {
    /// An empty store for `schema_json` (the `/schema` document).
    pub(crate) fn new(schema_json: Json) -> ApiResult<Store> {
        let bytes = serde_json::to_vec(&schema_json)
            .map_err(|e| ApiError::new(500, format!("schema: {e}")))?;
        let model = CatalogModel::from_json(&bytes)
            .map_err(|e| ApiError::new(500, format!("test catalog schema: {e}")))?;
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(
            "PRAGMA journal_mode=MEMORY;
             CREATE TABLE rows (rid TEXT PRIMARY KEY, tname TEXT NOT NULL, doc TEXT NOT NULL);
             CREATE INDEX rows_tname ON rows(tname, rid);
             CREATE TABLE keyvals (tname TEXT NOT NULL, keyname TEXT NOT NULL, val TEXT NOT NULL,
                                   rid TEXT NOT NULL, PRIMARY KEY (tname, keyname, val));
             CREATE INDEX keyvals_rid ON keyvals(rid);
             CREATE TABLE objects (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
                                   version TEXT NOT NULL, bytes BLOB NOT NULL, md5 TEXT NOT NULL,
                                   sha256 TEXT NOT NULL, ctype TEXT, cdisp TEXT);
             CREATE INDEX objects_name ON objects(name, version);
             CREATE TABLE jobs (id TEXT PRIMARY KEY, name TEXT NOT NULL, chunk_length INTEGER NOT NULL,
                                content_length INTEGER NOT NULL, md5 TEXT, sha256 TEXT, ctype TEXT,
                                cdisp TEXT);
             CREATE TABLE chunks (job TEXT NOT NULL, n INTEGER NOT NULL, bytes BLOB NOT NULL,
                                  PRIMARY KEY (job, n));
             CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, snap INTEGER NOT NULL,
                                   rid TEXT NOT NULL, tname TEXT NOT NULL, before TEXT);
             CREATE INDEX history_table ON history(tname, snap);
             CREATE INDEX history_rid ON history(rid, snap);",
        )?;
        let seed_snap = schema_json
            .get("snaptime")
            .and_then(Json::as_str)
            .and_then(urlb32_decode)
            .unwrap_or_else(now_micros);
        Ok(Store {
            conn,
            model,
            schema_json,
            // 32^5: "10-0000", above every hand-written fixture RID such as 1-D000.
            next_rid: 32u64.pow(5),
            seed_snap,
            snap: seed_snap,
        })
    }

    /// The snaptime of the latest change, in ERMrest's form.
    pub(crate) fn snaptime(&self) -> String {
        urlb32_encode(self.snap)
    }

    /// Resolves a `@snapshot` of a URL to the point in history it reads: 404 when it is not
    /// a base-32 snaptime. Times before the seed read the seed (it stands for the past).
    pub(crate) fn snapshot(&self, text: &str) -> ApiResult<u64> {
        urlb32_decode(text)
            .ok_or_else(|| ApiError::new(404, format!("snapshot {text:?} not found")))
    }

    /// The snaptime ERMrest reports for a read at `at`: the latest change at or before it
    /// (the seed's when there is none).
    pub(crate) fn normalized_snaptime(&self, at: Option<u64>) -> ApiResult<String> {
        let Some(at) = at else {
            return Ok(self.snaptime());
        };
        let latest: Option<i64> = self.conn.query_row(
            "SELECT MAX(snap) FROM history WHERE snap <= ?1",
            params![at.min(i64::MAX as u64) as i64],
            |r| r.get(0),
        )?;
        Ok(urlb32_encode(latest.map_or(self.seed_snap, |s| s as u64)))
    }

    /// The `/schema` document as of `at`, stamped with its snaptime (the model itself does not
    /// change in the test catalog).
    pub(crate) fn schema_at(&self, at: Option<u64>) -> ApiResult<Json> {
        let mut doc = self.schema_json.clone();
        doc["snaptime"] = Json::String(self.normalized_snaptime(at)?);
        Ok(doc)
    }

    /// The snaptime for the next change: strictly after the latest one.
    fn next_snap(&self) -> u64 {
        now_micros().max(self.snap + 1)
    }

    fn allocate_rid(&mut self) -> String {
        let rid = urlb32_encode(self.next_rid);
        self.next_rid += 1;
        rid
    }

    /// Resolves `schema:table` or an unambiguous bare table name.
    pub(crate) fn table(&self, name: &str) -> ApiResult<Table> {
        self.model
            .resolve_table(name)
            .cloned()
            .map_err(|e| ApiError::new(404, e.to_string()))
    }

    /// Rows of `table` in RID order, live (`at` = `None`) or as of snaptime `at`.
    ///
    /// With `wanted` (a request filtered on `column=any(…)` of a text column, as paged and
    /// chunked clients send), only the current rows with one of those values are read (by
    /// index for `RID`), plus every row image the history needs for a snapshot read: a
    /// superset of the answer, which the caller's filters then cut exactly. Such a request
    /// costs about what it returns rather than parsing the whole table.
    fn load_rows(
        &self,
        table: &TableName,
        at: Option<u64>,
        wanted: Option<(&str, &[String])>,
    ) -> ApiResult<Vec<Map<String, Json>>> {
        let tname = table.to_string();
        // `?2`: the values as a JSON array, or NULL for every row.
        let values = wanted.map(|(_, v)| Json::from(v.to_vec()).to_string());
        let by_rid = wanted.is_some_and(|(c, _)| c == "RID");
        let mut docs: BTreeMap<String, String> = match wanted {
            Some((column, _)) if !by_rid => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT rid, doc FROM rows WHERE tname = ?1 \
                     AND json_extract(doc, ?3) IN (SELECT value FROM json_each(?2)) ORDER BY rid",
                )?;
                let json_path = format!("$.\"{column}\"");
                let docs = stmt
                    .query_map(params![tname, values, json_path], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<Result<_, _>>()?;
                docs
            }
            _ => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT rid, doc FROM rows WHERE tname = ?1 \
                     AND (?2 IS NULL OR rid IN (SELECT value FROM json_each(?2))) ORDER BY rid",
                )?;
                let docs = stmt
                    .query_map(params![tname, values], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                docs
            }
        };
        // History only by RID: a row's older image may match where its current one does not.
        let wanted = if by_rid { values } else { None };
        if let Some(at) = at.filter(|&at| at < self.snap) {
            // Undo, per RID, the earliest change after `at`.
            let mut stmt = self.conn.prepare_cached(
                "SELECT rid, before FROM history WHERE tname = ?1 AND snap > ?2 \
                 AND (?3 IS NULL OR rid IN (SELECT value FROM json_each(?3))) ORDER BY seq",
            )?;
            let changes = stmt
                .query_map(params![tname, at as i64, wanted], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut undone = HashSet::new();
            for (rid, before) in changes {
                if !undone.insert(rid.clone()) {
                    continue;
                }
                match before {
                    Some(doc) => docs.insert(rid, doc),
                    None => docs.remove(&rid),
                };
            }
        }
        docs.into_values()
            .map(|d| match serde_json::from_str::<Json>(&d) {
                Ok(Json::Object(m)) => Ok(m),
                _ => Err(ApiError::new(500, "corrupt row document")),
            })
            .collect()
    }

    /// Rows of the path's table that pass its filters, sorted and paged; live (`at` =
    /// `None`) or as of snaptime `at`.
    pub(crate) fn select(
        &self,
        path: &DataPath,
        limit: Option<usize>,
        at: Option<u64>,
    ) -> ApiResult<(Table, Vec<Map<String, Json>>)> {
        let table = self.table(&path.table)?;
        for f in &path.filters {
            check_filter_columns(&table, f)?;
        }
        // A top-level `col=…` filter on a text column bounds the rows the answer can hold.
        let wanted = path.filters.iter().find_map(|f| match f {
            Filter::Eq(column, values) if is_text_column(&table, column) => {
                Some((column.as_str(), values.as_slice()))
            }
            _ => None,
        });
        let mut rows: Vec<_> = self
            .load_rows(&table.name, at, wanted)?
            .into_iter()
            .filter(|r| path.filters.iter().all(|f| eval(f, r)))
            .collect();
        if !path.sort.is_empty() {
            for (c, _) in &path.sort {
                if table.column(c).is_none() {
                    return Err(ApiError::new(409, format!("unknown sort column {c:?}")));
                }
            }
            rows.sort_by(|a, b| {
                for (c, desc) in &path.sort {
                    let ord = cmp_nulls_last(a.get(c), b.get(c));
                    let ord = if *desc { ord.reverse() } else { ord };
                    if ord != std::cmp::Ordering::Equal {
                        return ord;
                    }
                }
                std::cmp::Ordering::Equal
            });
            if let Some(after) = &path.after {
                rows.retain(|r| {
                    for ((c, desc), lit) in path.sort.iter().zip(after) {
                        let lit = lit.as_ref().map(|s| Json::String(s.clone()));
                        let ord = cmp_nulls_last(r.get(c), lit.as_ref());
                        let ord = if *desc { ord.reverse() } else { ord };
                        match ord {
                            std::cmp::Ordering::Greater => return true,
                            std::cmp::Ordering::Less => return false,
                            std::cmp::Ordering::Equal => continue,
                        }
                    }
                    false
                });
            }
        } else if path.after.is_some() {
            return Err(ApiError::new(400, "@after requires @sort"));
        }
        if let Some(n) = limit {
            rows.truncate(n);
        }
        Ok((table, rows))
    }

    /// `GET /attribute`, `/attributegroup` and `/aggregate` results.
    pub(crate) fn project(
        &self,
        path: &DataPath,
        limit: Option<usize>,
        grouped: bool,
        at: Option<u64>,
    ) -> ApiResult<Vec<Map<String, Json>>> {
        let (table, rows) = self.select(path, limit, at)?;
        let (keys, rest) = path
            .projection
            .clone()
            .ok_or_else(|| ApiError::new(400, "missing projection"))?;
        let check = |p: &Projection| -> ApiResult<()> {
            match p {
                Projection::Column { column, .. }
                | Projection::Count {
                    column: Some(column),
                    ..
                } if table.column(column).is_none() => Err(ApiError::new(
                    409,
                    format!("column {column:?} does not exist in {}", table.name),
                )),
                _ => Ok(()),
            }
        };
        for p in keys.iter().chain(rest.iter()) {
            check(p)?;
        }
        let pick = |row: &Map<String, Json>, projs: &[Projection], out: &mut Map<String, Json>| {
            for p in projs {
                match p {
                    Projection::All => {
                        for (k, v) in row {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    Projection::Column { alias, column } => {
                        out.insert(
                            alias.clone(),
                            row.get(column).cloned().unwrap_or(Json::Null),
                        );
                    }
                    Projection::Count { .. } => {}
                }
            }
        };
        let counts = |group: &[&Map<String, Json>], out: &mut Map<String, Json>| {
            for p in keys.iter().chain(rest.iter()) {
                if let Projection::Count {
                    alias,
                    column,
                    distinct,
                } = p
                {
                    let n = match column {
                        None => group.len(),
                        Some(c) => {
                            let vals = group.iter().filter_map(|r| r.get(c).and_then(scalar_text));
                            if *distinct {
                                vals.collect::<HashSet<_>>().len()
                            } else {
                                vals.count()
                            }
                        }
                    };
                    out.insert(alias.clone(), Json::from(n));
                }
            }
        };
        let has_count = keys
            .iter()
            .chain(rest.iter())
            .any(|p| matches!(p, Projection::Count { .. }));
        if !grouped && !has_count {
            return Ok(rows
                .iter()
                .map(|r| {
                    let mut out = Map::new();
                    pick(r, &keys, &mut out);
                    out
                })
                .collect());
        }
        if !grouped {
            let refs: Vec<_> = rows.iter().collect();
            let mut out = Map::new();
            counts(&refs, &mut out);
            return Ok(vec![out]);
        }
        let mut groups: BTreeMap<String, Vec<&Map<String, Json>>> = BTreeMap::new();
        for r in &rows {
            let mut k = Map::new();
            pick(r, &keys, &mut k);
            groups
                .entry(Json::Object(k).to_string())
                .or_default()
                .push(r);
        }
        let mut out = Vec::new();
        for group in groups.values() {
            let mut o = Map::new();
            pick(group[0], &keys, &mut o);
            pick(group[0], &rest, &mut o);
            counts(group, &mut o);
            out.push(o);
        }
        Ok(out)
    }

    /// `POST /entity/S:T`: inserts `rows` atomically and returns the inserted rows.
    pub(crate) fn insert(
        &mut self,
        table_name: &str,
        rows: &[Json],
        options: &InsertOptions,
        who: &Identity,
        trusted_seed: bool,
    ) -> ApiResult<Vec<Map<String, Json>>> {
        let table = self.table(table_name)?;
        // Validate before touching storage so a bad request consumes no RIDs' state.
        let mut prepared = Vec::with_capacity(rows.len());
        for (i, input) in rows.iter().enumerate() {
            let obj = input
                .as_object()
                .ok_or_else(|| ApiError::new(400, format!("row {i} is not a JSON object")))?;
            for k in obj.keys() {
                if table.column(k).is_none() {
                    return Err(ApiError::new(
                        409,
                        format!(
                            "Input data violates model. column {k:?} does not exist in {}",
                            table.name
                        ),
                    ));
                }
            }
            prepared.push(obj.clone());
        }
        let now = now_text();
        let mut new_rids = Vec::new();
        for obj in &prepared {
            let given = obj.get("RID").and_then(Json::as_str).map(str::to_string);
            let supplies_rid = trusted_seed || options.nondefaults.contains("RID");
            new_rids.push(match (supplies_rid, given) {
                (true, Some(rid)) => (rid, true),
                _ => (self.allocate_rid(), false),
            });
        }
        let model_fks = table.foreign_keys.clone();
        // Seeding writes the catalog's past: only requests are changes with a snaptime.
        let snap = (!trusted_seed).then(|| self.next_snap());
        let mut logged = false;
        let tx = self.conn.transaction()?;
        let mut inserted = Vec::new();
        let mut batch_keys: HashSet<(String, String)> = HashSet::new();
        for (obj, (rid, supplied)) in prepared.iter().zip(new_rids) {
            let mut row = Map::new();
            for col in &table.columns {
                let name = col.name.as_str();
                let value = match name {
                    "RID" => Json::String(rid.clone()),
                    "RCT" | "RMT" => match obj.get(name) {
                        Some(v) if trusted_seed || options.nondefaults.contains(name) => v.clone(),
                        _ => Json::String(now.clone()),
                    },
                    "RCB" | "RMB" => match obj.get(name) {
                        Some(v) if trusted_seed || options.nondefaults.contains(name) => v.clone(),
                        _ => Json::String(who.id.clone()),
                    },
                    _ if options.defaults.contains(name) => match &col.default {
                        Some(Json::String(t)) => Json::String(t.replace("{RID}", &rid)),
                        Some(other) => other.clone(),
                        None => Json::Null,
                    },
                    // ERMrest: a column missing from the object is NULL, not its default.
                    _ => obj.get(name).cloned().unwrap_or(Json::Null),
                };
                if !value.is_null() && !SYSTEM_COLUMNS.contains(&name) {
                    Value::from_json(&value, &col.ty).map_err(|e| {
                        ApiError::new(400, format!("column {name:?} of {}: {e}", table.name))
                    })?;
                }
                if value.is_null() && !col.nullok {
                    return Err(ApiError::new(
                        409,
                        format!(
                            "Input data violates model. null value in column {name:?} of {} violates not-null constraint",
                            table.name
                        ),
                    ));
                }
                row.insert(col.name.clone(), value);
            }
            // Lease check before conflict skipping, as ERMrest does.
            if supplied && !trusted_seed {
                let lease_rid: Option<String> = tx
                    .query_row(
                        "SELECT rid FROM rows WHERE tname = 'public:ERMrest_RID_Lease' AND rid = ?1
                         AND json_extract(doc, '$.RCB') = ?2",
                        params![rid, who.id],
                        |r| r.get(0),
                    )
                    .optional()?;
                match lease_rid {
                    Some(l) => {
                        if let Some(snap) = snap {
                            let doc: String = tx.query_row(
                                "SELECT doc FROM rows WHERE rid = ?1",
                                params![l],
                                |r| r.get(0),
                            )?;
                            log_change(&tx, snap, &l, "public:ERMrest_RID_Lease", Some(&doc))?;
                            logged = true;
                        }
                        tx.execute("DELETE FROM rows WHERE rid = ?1", params![l])?;
                        tx.execute("DELETE FROM keyvals WHERE rid = ?1", params![l])?;
                    }
                    None if who.owner => {}
                    None => {
                        return Err(ApiError::new(
                            403,
                            format!(
                                "insert access on column \"RID\" with non-leased value {rid:?}"
                            ),
                        ))
                    }
                }
            }
            // Unique keys (RID is catalog-wide unique).
            let mut conflict: Option<String> = None;
            let rid_taken: bool = tx
                .query_row(
                    "SELECT 1 FROM rows WHERE rid = ?1",
                    params![rid],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if rid_taken {
                conflict = Some(format!("RID {rid}"));
            }
            let mut keyvals = Vec::new();
            for (i, key) in table.keys.iter().enumerate() {
                let Some(val) = key_value(&row, &key.unique_columns) else {
                    continue;
                };
                let kname = key_name(&table, i);
                let exists = tx
                    .query_row(
                        "SELECT 1 FROM keyvals WHERE tname = ?1 AND keyname = ?2 AND val = ?3",
                        params![table.name.to_string(), kname, val],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some()
                    || batch_keys.contains(&(kname.clone(), val.clone()));
                if exists && conflict.is_none() {
                    conflict = Some(format!("key {kname} {val}"));
                }
                keyvals.push((kname, val));
            }
            if let Some(what) = conflict {
                if options.skip_conflicts {
                    continue;
                }
                return Err(ApiError::new(
                    409,
                    format!(
                        "Input data violates model. duplicate key value violates unique constraint: {} {what}",
                        table.name
                    ),
                ));
            }
            if !trusted_seed {
                for fk in &model_fks {
                    let vals: Option<Vec<_>> = fk
                        .columns
                        .iter()
                        .map(|c| row.get(c).and_then(scalar_text))
                        .collect();
                    let Some(vals) = vals else { continue };
                    let Some(target) = self.model.table(&fk.referenced_table) else {
                        continue;
                    };
                    let Some(ki) = target.keys.iter().position(|k| {
                        let mut a = k.unique_columns.clone();
                        let mut b = fk.referenced_columns.clone();
                        a.sort();
                        b.sort();
                        a == b
                    }) else {
                        continue;
                    };
                    // Key values are stored in key-column order.
                    let ordered: Vec<Json> = target.keys[ki]
                        .unique_columns
                        .iter()
                        .map(|kc| {
                            let pos = fk
                                .referenced_columns
                                .iter()
                                .position(|rc| rc == kc)
                                .unwrap_or(0);
                            Json::String(vals[pos].clone())
                        })
                        .collect();
                    let val = Json::Array(ordered).to_string();
                    let found = tx
                        .query_row(
                            "SELECT 1 FROM keyvals WHERE tname = ?1 AND keyname = ?2 AND val = ?3",
                            params![target.name.to_string(), key_name(target, ki), val],
                            |_| Ok(()),
                        )
                        .optional()?
                        .is_some();
                    if !found {
                        return Err(ApiError::new(
                            409,
                            format!(
                                "Input data violates model. {} ({}) = ({}) is not present in {}",
                                table.name,
                                fk.columns.join(", "),
                                vals.join(", "),
                                target.name
                            ),
                        ));
                    }
                }
            }
            tx.execute(
                "INSERT INTO rows (rid, tname, doc) VALUES (?1, ?2, ?3)",
                params![
                    rid,
                    table.name.to_string(),
                    Json::Object(row.clone()).to_string()
                ],
            )?;
            if let Some(snap) = snap {
                log_change(&tx, snap, &rid, &table.name.to_string(), None)?;
                logged = true;
            }
            for (kname, val) in keyvals {
                tx.execute(
                    "INSERT INTO keyvals (tname, keyname, val, rid) VALUES (?1, ?2, ?3, ?4)",
                    params![table.name.to_string(), kname, val, rid],
                )?;
                batch_keys.insert((kname, val));
            }
            inserted.push(row);
        }
        tx.commit()?;
        if let (Some(snap), true) = (snap, logged) {
            self.snap = snap;
        }
        Ok(inserted)
    }

    /// `PUT /attributegroup/S:T/corr;targets`.
    pub(crate) fn update(
        &mut self,
        path: &DataPath,
        rows: &[Json],
        who: &Identity,
    ) -> ApiResult<Vec<Map<String, Json>>> {
        let table = self.table(&path.table)?;
        let (corr, targets) = path
            .projection
            .clone()
            .ok_or_else(|| ApiError::new(400, "attributegroup update needs corr;targets"))?;
        let names = |ps: &[Projection]| -> ApiResult<Vec<(String, String)>> {
            ps.iter()
                .map(|p| match p {
                    Projection::Column { alias, column } if table.column(column).is_some() => {
                        Ok((alias.clone(), column.clone()))
                    }
                    other => Err(ApiError::new(409, format!("bad update column {other:?}"))),
                })
                .collect()
        };
        let corr = names(&corr)?;
        let targets = names(&targets)?;
        let now = now_text();
        let existing = self.load_rows(&table.name, None, None)?;
        let snap = self.next_snap();
        let tname = table.name.to_string();
        let tx = self.conn.transaction()?;
        let mut out = Vec::new();
        for (i, input) in rows.iter().enumerate() {
            let obj = input
                .as_object()
                .ok_or_else(|| ApiError::new(400, format!("row {i} is not a JSON object")))?;
            let matches: Vec<&Map<String, Json>> = existing
                .iter()
                .filter(|r| {
                    corr.iter().all(|(alias, col)| {
                        scalar_text(r.get(col).unwrap_or(&Json::Null))
                            == obj.get(alias).and_then(scalar_text)
                    })
                })
                .collect();
            if matches.is_empty() {
                return Err(ApiError::new(
                    409,
                    format!("row {i} of the update matches no row of {}", table.name),
                ));
            }
            for m in matches {
                let mut row = m.clone();
                for (alias, col) in &targets {
                    let v = obj.get(alias).cloned().unwrap_or(Json::Null);
                    let cdef = table
                        .column(col)
                        .ok_or_else(|| ApiError::new(409, "column"))?;
                    if v.is_null() && !cdef.nullok {
                        return Err(ApiError::new(
                            409,
                            format!("null value in column {col:?} violates not-null constraint"),
                        ));
                    }
                    if !v.is_null() {
                        Value::from_json(&v, &cdef.ty)
                            .map_err(|e| ApiError::new(400, format!("column {col:?}: {e}")))?;
                    }
                    row.insert(col.clone(), v);
                }
                row.insert("RMT".into(), Json::String(now.clone()));
                row.insert("RMB".into(), Json::String(who.id.clone()));
                let rid = scalar_text(row.get("RID").unwrap_or(&Json::Null)).unwrap_or_default();
                let before: String =
                    tx.query_row("SELECT doc FROM rows WHERE rid = ?1", params![rid], |r| {
                        r.get(0)
                    })?;
                log_change(&tx, snap, &rid, &tname, Some(&before))?;
                tx.execute(
                    "UPDATE rows SET doc = ?1 WHERE rid = ?2",
                    params![Json::Object(row.clone()).to_string(), rid],
                )?;
                tx.execute("DELETE FROM keyvals WHERE rid = ?1", params![rid])?;
                for (ki, key) in table.keys.iter().enumerate() {
                    if let Some(val) = key_value(&row, &key.unique_columns) {
                        tx.execute(
                            "INSERT INTO keyvals (tname, keyname, val, rid) VALUES (?1, ?2, ?3, ?4)",
                            params![table.name.to_string(), key_name(&table, ki), val, rid],
                        )
                        .map_err(|_| ApiError::new(409, format!("Input data violates model. duplicate key {val}")))?;
                    }
                }
                let mut o = Map::new();
                for (alias, col) in corr.iter().chain(targets.iter()) {
                    o.insert(alias.clone(), row.get(col).cloned().unwrap_or(Json::Null));
                }
                out.push(o);
            }
        }
        tx.commit()?;
        if !out.is_empty() {
            self.snap = snap;
        }
        Ok(out)
    }

    /// `DELETE /entity/...`: returns how many rows went.
    pub(crate) fn delete(&mut self, path: &DataPath) -> ApiResult<usize> {
        let (table, rows) = self.select(path, None, None)?;
        let snap = self.next_snap();
        let tname = table.name.to_string();
        let tx = self.conn.transaction()?;
        for r in &rows {
            let rid = scalar_text(r.get("RID").unwrap_or(&Json::Null)).unwrap_or_default();
            log_change(
                &tx,
                snap,
                &rid,
                &tname,
                Some(&Json::Object(r.clone()).to_string()),
            )?;
            tx.execute("DELETE FROM rows WHERE rid = ?1", params![rid])?;
            tx.execute("DELETE FROM keyvals WHERE rid = ?1", params![rid])?;
        }
        tx.commit()?;
        if !rows.is_empty() {
            self.snap = snap;
        }
        Ok(rows.len())
    }

    /// Every client named in a row's `RCB` or `RMB`, in order.
    pub(crate) fn row_authors(&self) -> ApiResult<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT v FROM (SELECT CAST(json_extract(doc, '$.RCB') AS TEXT) AS v FROM rows
                            UNION SELECT CAST(json_extract(doc, '$.RMB') AS TEXT) FROM rows)
             WHERE v IS NOT NULL AND v <> '' ORDER BY v",
        )?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// `/entity_rid/<rid>`: the table holding `rid`, live or as of snaptime `at`.
    pub(crate) fn resolve_rid(&self, rid: &str, at: Option<u64>) -> ApiResult<Option<TableName>> {
        let earliest_change_after: Option<(String, Option<String>)> = match at {
            Some(at) if at < self.snap => self
                .conn
                .query_row(
                    "SELECT tname, before FROM history WHERE rid = ?1 AND snap > ?2
                     ORDER BY seq LIMIT 1",
                    params![rid, at as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?,
            _ => None,
        };
        let t: Option<String> = match earliest_change_after {
            // The row as it was then: present unless the change was its insert.
            Some((tname, before)) => before.map(|_| tname),
            None => self
                .conn
                .query_row("SELECT tname FROM rows WHERE rid = ?1", params![rid], |r| {
                    r.get(0)
                })
                .optional()?,
        };
        Ok(t.and_then(|t| TableName::parse_qualified(&t)))
    }

    /// Stores a new version of a Hatrac object and returns its version id.
    pub(crate) fn put_object(
        &mut self,
        name: &str,
        bytes: &[u8],
        content_type: Option<&str>,
        content_disposition: Option<&str>,
    ) -> ApiResult<String> {
        let version = self.allocate_rid();
        self.put_object_version(name, &version, bytes, content_type, content_disposition)?;
        Ok(version)
    }

    /// Stores an object version with a given version id (seeding from a bag's URLs).
    pub(crate) fn put_object_version(
        &mut self,
        name: &str,
        version: &str,
        bytes: &[u8],
        content_type: Option<&str>,
        content_disposition: Option<&str>,
    ) -> ApiResult<String> {
        use md5::Digest;
        let md5_hex = hex::encode(md5::Md5::digest(bytes));
        let sha_hex = hex::encode(sha2::Sha256::digest(bytes));
        let version = version.to_string();
        self.conn.execute(
            "INSERT INTO objects (name, version, bytes, md5, sha256, ctype, cdisp) VALUES (?1,?2,?3,?4,?5,?6,?7)",
            params![name, version, bytes, md5_hex, sha_hex, content_type, content_disposition],
        )?;
        Ok(version)
    }

    /// The latest (or the named) version of a Hatrac object.
    pub(crate) fn get_object(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> ApiResult<Option<ObjectVersion>> {
        let map = |r: &rusqlite::Row<'_>| {
            Ok(ObjectVersion {
                name: r.get(0)?,
                version: r.get(1)?,
                bytes: r.get(2)?,
                md5_hex: r.get(3)?,
                sha256_hex: r.get(4)?,
                content_type: r.get(5)?,
                content_disposition: r.get(6)?,
            })
        };
        let sql = "SELECT name, version, bytes, md5, sha256, ctype, cdisp FROM objects";
        Ok(match version {
            Some(v) => self
                .conn
                .query_row(
                    &format!("{sql} WHERE name = ?1 AND version = ?2"),
                    params![name, v],
                    map,
                )
                .optional()?,
            None => self
                .conn
                .query_row(
                    &format!("{sql} WHERE name = ?1 ORDER BY seq DESC LIMIT 1"),
                    params![name],
                    map,
                )
                .optional()?,
        })
    }

    /// Creates an upload job.
    pub(crate) fn create_job(&mut self, job: &UploadJob) -> ApiResult<()> {
        self.conn.execute(
            "INSERT INTO jobs (id, name, chunk_length, content_length, md5, sha256, ctype, cdisp)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![
                job.id,
                job.name,
                job.chunk_length as i64,
                job.content_length as i64,
                job.content_md5,
                job.content_sha256,
                job.content_type,
                job.content_disposition
            ],
        )?;
        Ok(())
    }

    /// An open upload job of object `name`.
    pub(crate) fn job(&self, name: &str, id: &str) -> ApiResult<Option<UploadJob>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, chunk_length, content_length, md5, sha256, ctype, cdisp FROM jobs
                 WHERE id = ?1 AND name = ?2",
                params![id, name],
                |r| {
                    Ok(UploadJob {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        chunk_length: r.get::<_, i64>(2)? as u64,
                        content_length: r.get::<_, i64>(3)? as u64,
                        content_md5: r.get(4)?,
                        content_sha256: r.get(5)?,
                        content_type: r.get(6)?,
                        content_disposition: r.get(7)?,
                    })
                },
            )
            .optional()?)
    }

    /// Stores chunk `n` of a job (idempotent per position).
    pub(crate) fn put_chunk(&mut self, job: &str, n: u64, bytes: &[u8]) -> ApiResult<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO chunks (job, n, bytes) VALUES (?1, ?2, ?3)",
            params![job, n as i64, bytes],
        )?;
        Ok(())
    }

    /// The job's chunks in order.
    pub(crate) fn job_chunks(&self, job: &str) -> ApiResult<Vec<(u64, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT n, bytes FROM chunks WHERE job = ?1 ORDER BY n")?;
        let rows = stmt
            .query_map(params![job], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Removes a job and its chunks.
    pub(crate) fn delete_job(&mut self, job: &str) -> ApiResult<()> {
        self.conn
            .execute("DELETE FROM chunks WHERE job = ?1", params![job])?;
        self.conn
            .execute("DELETE FROM jobs WHERE id = ?1", params![job])?;
        Ok(())
    }
}

/// Whether `column` of `table` holds JSON strings that compare as the URL literals do (so a
/// SQL prefilter on them keeps every row the exact filter keeps); a name JSON paths cannot
/// quote plainly is left to the exact filter.
fn is_text_column(table: &Table, column: &str) -> bool {
    const TEXT: [&str; 8] = [
        "text",
        "longtext",
        "markdown",
        "ermrest_rid",
        "ermrest_rcb",
        "ermrest_rmb",
        "ermrest_uri",
        "ermrest_curie",
    ];
    !column.contains(['"', '\\'])
        && table.column(column).is_some_and(|c| {
            !c.ty.is_array
                && (TEXT.contains(&c.ty.typename.as_str())
                    || c.ty
                        .base
                        .as_ref()
                        .is_some_and(|b| TEXT.contains(&b.typename.as_str())))
        })
}

fn check_filter_columns(table: &Table, f: &Filter) -> ApiResult<()> {
    let col = match f {
        Filter::Eq(c, _) | Filter::Null(c) | Filter::Cmp(c, _, _) => c,
        Filter::Not(inner) => return check_filter_columns(table, inner),
        Filter::And(fs) | Filter::Or(fs) => {
            return fs.iter().try_for_each(|f| check_filter_columns(table, f))
        }
    };
    if table.column(col).is_none() {
        return Err(ApiError::new(
            409,
            format!("column {col:?} does not exist in table {}", table.name),
        ));
    }
    Ok(())
}

/// Compares a stored JSON value with a URL literal (text, number or boolean semantics).
fn cmp_json_literal(v: &Json, lit: &str) -> Option<std::cmp::Ordering> {
    match v {
        Json::Null => None,
        Json::Bool(b) => {
            let l = match lit.to_ascii_lowercase().as_str() {
                "true" | "t" => true,
                "false" | "f" => false,
                _ => return None,
            };
            Some(b.cmp(&l))
        }
        Json::Number(n) => {
            let a = n.as_f64()?;
            let b: f64 = lit.parse().ok()?;
            a.partial_cmp(&b)
        }
        other => Some(scalar_text(other)?.as_str().cmp(lit)),
    }
}

fn cmp_nulls_last(a: Option<&Json>, b: Option<&Json>) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let a = a.filter(|v| !v.is_null());
    let b = b.filter(|v| !v.is_null());
    match (a, b) {
        (None, None) => Equal,
        (None, Some(_)) => Greater,
        (Some(_), None) => Less,
        (Some(x), Some(y)) => match (x, y) {
            (Json::Number(p), Json::Number(q)) => {
                p.as_f64().partial_cmp(&q.as_f64()).unwrap_or(Equal)
            }
            (Json::Number(p), Json::String(q)) => match q.parse::<f64>() {
                Ok(q) => p.as_f64().partial_cmp(&Some(q)).unwrap_or(Equal),
                Err(_) => Equal,
            },
            _ => scalar_text(x).cmp(&scalar_text(y)),
        },
    }
}

fn eval(f: &Filter, row: &Map<String, Json>) -> bool {
    use std::cmp::Ordering::*;
    match f {
        Filter::Eq(c, values) => {
            let v = row.get(c).unwrap_or(&Json::Null);
            values
                .iter()
                .any(|lit| cmp_json_literal(v, lit) == Some(Equal))
        }
        Filter::Null(c) => row.get(c).is_none_or(Json::is_null),
        Filter::Cmp(c, op, lit) => {
            let ord = cmp_json_literal(row.get(c).unwrap_or(&Json::Null), lit);
            matches!(
                (op, ord),
                (CmpOp::Lt, Some(Less))
                    | (CmpOp::Leq, Some(Less | Equal))
                    | (CmpOp::Gt, Some(Greater))
                    | (CmpOp::Geq, Some(Greater | Equal))
            )
        }
        Filter::Not(inner) => !eval(inner, row),
        Filter::And(fs) => fs.iter().all(|f| eval(f, row)),
        Filter::Or(fs) => fs.iter().any(|f| eval(f, row)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlb32_encode_groups_digits_in_fours_from_the_right() {
        assert_eq!(urlb32_encode(0), "0");
        assert_eq!(urlb32_encode(32u64.pow(5)), "10-0000");
        assert_eq!(urlb32_encode(31), "Z");
        assert_eq!(urlb32_encode(32u64.pow(4) + 1), "1-0001");
    }

    #[test]
    fn urlb32_decode_inverts_encode_and_refuses_letters_outside_the_alphabet() {
        for v in [0, 31, 32u64.pow(5), 1_796_000_000_000_000, u64::MAX] {
            assert_eq!(urlb32_decode(&urlb32_encode(v)), Some(v));
        }
        assert_eq!(
            urlb32_decode("2ta-8zqr-5e2c"),
            urlb32_decode("2TA-8ZQR-5E2C")
        );
        for bad in ["", "-", "2TA-8ZQR-5E2U", "1I", "0L", "O", "1-A2B3 ", "1_A"] {
            assert_eq!(urlb32_decode(bad), None, "{bad:?}");
        }
        // 14 digits of 'Z' overflow 64 bits.
        assert_eq!(urlb32_decode("ZZZZZZZZZZZZZZ"), None);
    }

    fn names_at(store: &Store, at: Option<u64>) -> Vec<(String, String)> {
        let path = super::super::urlpath::parse_data_path("demo:Subject", false).unwrap();
        let (_, rows) = store.select(&path, None, at).unwrap();
        rows.iter()
            .map(|r| {
                let t = |c: &str| r[c].as_str().unwrap().to_string();
                (t("RID"), t("Name"))
            })
            .collect()
    }

    #[test]
    fn a_read_at_a_snapshot_undoes_every_later_insert_update_and_delete() {
        use super::super::urlpath::parse_data_path;
        let mut store = Store::new(super::super::seed::schema_json("1")).unwrap();
        assert_eq!(store.snaptime(), "1");
        let who = Identity {
            id: "u".into(),
            owner: true,
        };
        let with_rids = InsertOptions {
            nondefaults: ["RID".to_string()].into(),
            ..Default::default()
        };
        let subject = |rid: &str, name: &str| serde_json::json!({"RID": rid, "Name": name});
        store
            .insert(
                "demo:Subject",
                &[subject("1-S001", "a"), subject("1-S002", "b")],
                &with_rids,
                &who,
                false,
            )
            .unwrap();
        let first = store.snap;
        assert!(first > 1);
        let rename = parse_data_path("demo:Subject/RID;Name", true).unwrap();
        store
            .update(&rename, &[subject("1-S001", "a2")], &who)
            .unwrap();
        let renamed = store.snap;
        store
            .delete(&parse_data_path("demo:Subject/RID=1-S002", false).unwrap())
            .unwrap();
        store
            .insert(
                "demo:Subject",
                &[subject("1-S003", "c")],
                &with_rids,
                &who,
                false,
            )
            .unwrap();
        let pair = |r: &str, n: &str| (r.to_string(), n.to_string());
        assert_eq!(names_at(&store, Some(0)), []);
        assert_eq!(names_at(&store, Some(1)), []);
        assert_eq!(
            names_at(&store, Some(first)),
            [pair("1-S001", "a"), pair("1-S002", "b")]
        );
        assert_eq!(
            names_at(&store, Some(renamed)),
            [pair("1-S001", "a2"), pair("1-S002", "b")]
        );
        let live = [pair("1-S001", "a2"), pair("1-S003", "c")];
        assert_eq!(names_at(&store, None), live);
        assert_eq!(names_at(&store, Some(store.snap)), live);
        assert_eq!(names_at(&store, Some(u64::MAX)), live);
        // Each change advanced the catalog's snaptime; a read reports the change it sees.
        assert_eq!(
            store.normalized_snaptime(Some(first)).unwrap(),
            urlb32_encode(first)
        );
        assert_eq!(
            store.normalized_snaptime(Some(renamed - 1)).unwrap(),
            urlb32_encode(first)
        );
        assert_eq!(store.normalized_snaptime(Some(0)).unwrap(), "1");
        assert_eq!(store.resolve_rid("1-S003", Some(renamed)).unwrap(), None);
        assert_eq!(
            store
                .resolve_rid("1-S002", Some(renamed))
                .unwrap()
                .map(|t| t.to_string()),
            Some("demo:Subject".to_string())
        );
        assert_eq!(store.resolve_rid("1-S002", None).unwrap(), None);
        // A RID-filtered read loads only those rows, and still undoes their later changes.
        let by_rid = parse_data_path("demo:Subject/RID=any(1-S001,1-S002,1-S003)", false).unwrap();
        let names = |at| -> Vec<(String, String)> {
            let (_, rows) = store.select(&by_rid, None, at).unwrap();
            rows.iter()
                .map(|r| pair(r["RID"].as_str().unwrap(), r["Name"].as_str().unwrap()))
                .collect()
        };
        assert_eq!(
            names(Some(renamed)),
            [pair("1-S001", "a2"), pair("1-S002", "b")]
        );
        assert_eq!(names(None), live);
        // So does one filtered on a text column: S001 was "a" and S002 existed then.
        let by_name = parse_data_path("demo:Subject/Name=any(a,b)", false).unwrap();
        let (_, then) = store.select(&by_name, None, Some(first)).unwrap();
        let rids: Vec<&str> = then.iter().map(|r| r["RID"].as_str().unwrap()).collect();
        assert_eq!(rids, ["1-S001", "1-S002"]);
        let (_, now) = store.select(&by_name, None, None).unwrap();
        assert!(now.is_empty());
    }
}
