//! Planning: which asset goes where. Computed over the dataset into the scratch store
//! ([`Scratch`]); writes nothing in the output directory. Every per-asset fact (which
//! datasets reach it, its target values, its planned paths) lives in the store; memory holds
//! one page of rows and what is bounded by the number of datasets and directories.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use deriva_bag_features::{
    classify_targets, for_each_target_record, DatasetInfo, DatasetLike, FeatureRecord, Members,
    Missing, ResolvedTarget, Rid, Row, TableName, TargetKeys, TargetKind, TargetRules, TargetValue,
    Value, MAX_LISTED_RIDS,
};

use crate::error::{io, Error, Result};
use crate::options::RestructureOptions;
use crate::sanitize::{sanitize, LabelKind};
use crate::scratch::{bytes_os, key_path, os_bytes, path_key, PagedQuery, Scratch, PAGE};

/// One file to place: the asset, its source file, and its path relative to the output dir.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Planned {
    pub rel: PathBuf,
    pub rid: Rid,
    pub src: PathBuf,
}

/// What the plan left in the store: `place` (collisions already renamed), `missing` and
/// `several`, with their sizes.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub placements: usize,
    pub missing: usize,
    /// Placed assets under more than one dataset type path (e.g. training and testing).
    pub in_several_splits: usize,
}

/// The asset table: the option, or the one asset table with members.
pub(crate) fn asset_table<D: DatasetLike>(
    dataset: &D,
    options: &RestructureOptions,
) -> Result<TableName> {
    let model = dataset.model();
    if let Some(name) = &options.asset_table {
        let table = model.resolve_table(name)?;
        if !table.is_asset() {
            return Err(Error::NotAnAssetTable {
                table: table.name.to_string(),
            });
        }
        return Ok(table.name.clone());
    }
    // Only which tables have members matters here, and `limit` caps rows per table per
    // dataset level, so one row per table per level answers that without loading every row.
    let members: Members = dataset.list_dataset_members(true, Some(1))?;
    let is_asset = |t: &TableName| model.table(t).is_some_and(|t| t.is_asset());
    let with_members: Vec<&TableName> = members
        .iter()
        .filter(|(t, rows)| is_asset(t) && !rows.is_empty())
        .map(|(t, _)| t)
        .collect();
    let chosen = match with_members.as_slice() {
        [one] => (*one).clone(),
        [] => {
            // No direct asset members (e.g. a dataset of Subjects): fall back to asset tables
            // whose rows are reachable through foreign keys.
            let mut reachable = Vec::new();
            for t in members.keys().filter(|t| is_asset(t)) {
                if reaches_any(dataset, t)? {
                    reachable.push(t.clone());
                }
            }
            match reachable.len() {
                1 => reachable.remove(0),
                0 => {
                    return Err(Error::NoAssetTable {
                        detail: format!(
                            "no asset table has members or reachable rows in dataset {}",
                            dataset.rid()
                        ),
                    })
                }
                _ => {
                    return Err(Error::AmbiguousAssetTable {
                        tables: reachable.iter().map(ToString::to_string).collect(),
                    })
                }
            }
        }
        several => {
            return Err(Error::AmbiguousAssetTable {
                tables: several.iter().map(ToString::to_string).collect(),
            })
        }
    };
    tracing::info!(table = %chosen, "auto-detected asset table");
    Ok(chosen)
}

/// The directory level a dataset contributes: `None` for a type not in the map.
pub(crate) fn type_level(
    info: &DatasetInfo,
    options: &RestructureOptions,
) -> Result<Option<String>> {
    let dir = if info.types.is_empty() {
        // The chapter: "Datasets with no type defined are treated as Testing."
        Some(options.type_dir("Testing").unwrap_or("testing").to_string())
    } else {
        let chosen = match &options.type_selector {
            Some(select) => select(&info.types),
            None => info.types[0].clone(),
        };
        options.type_dir(&chosen).map(str::to_string)
    };
    dir.map(|d| sanitize(&d, &info.rid, LabelKind::TypeDir))
        .transpose()
}

/// Whether `dataset` reaches any row of `table` (reads one RID at most).
fn reaches_any<D: DatasetLike>(dataset: &D, table: &TableName) -> Result<bool> {
    let mut any = false;
    let read = dataset.for_each_reachable_rid(table, &mut |_| {
        any = true;
        // Stops the stream after the first RID.
        Err(deriva_bag_features::Error::Invalid(String::new()))
    });
    match read {
        Err(_) if any => Ok(true),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(false),
    }
}

/// How one target level is found for an element, and what the store keeps of it.
enum Level {
    /// A column of the asset row: its value (JSON) is kept in the asset row's `k<i>`.
    Column {
        name: String,
        ty: deriva_bag_features::ColumnType,
    },
    /// A feature on the asset table: its chosen record is found by the asset's RID.
    Feature,
    /// A feature through a foreign key: the key is kept in `k<i>`.
    ViaFk,
}

/// The target levels: what each is, and how each's key is read from an asset row.
struct Levels {
    targets: Vec<ResolvedTarget>,
    kinds: Vec<Level>,
    keys: Vec<TargetKeys>,
}

impl Levels {
    fn new<D: DatasetLike>(
        dataset: &D,
        table: &TableName,
        options: &RestructureOptions,
    ) -> Result<Levels> {
        let targets =
            classify_targets(dataset, table, &options.targets, options.enforce_vocabulary)?;
        let model_table = dataset.model().table(table);
        let mut kinds = Vec::with_capacity(targets.len());
        let mut keys = Vec::with_capacity(targets.len());
        for target in &targets {
            kinds.push(match &target.kind {
                TargetKind::Column(name) => Level::Column {
                    name: name.clone(),
                    ty: model_table
                        .and_then(|t| t.column(name))
                        .map(|c| c.ty.clone())
                        .unwrap_or_else(|| deriva_bag_features::ColumnType::simple("text")),
                },
                TargetKind::Feature(_) => Level::Feature,
                TargetKind::FeatureViaFk { .. } => Level::ViaFk,
            });
            keys.push(TargetKeys::new(dataset, table, target)?);
        }
        Ok(Levels {
            targets,
            kinds,
            keys,
        })
    }

    /// `k<i>` of an asset row: a column target's value as JSON, a foreign key, or NULL.
    fn stored(&self, level: usize, row: &Row) -> Option<String> {
        match &self.kinds[level] {
            Level::Column { name, .. } => match row.get(name) {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.to_json().to_string()),
            },
            Level::Feature => None,
            Level::ViaFk => self.keys[level].key(row),
        }
    }

    /// The SQL of level `i`'s value for asset `a`: `k<i>` or the joined record `v<i>.rec`.
    fn value_sql(&self, i: usize) -> String {
        match self.kinds[i] {
            Level::Column { .. } => format!("a.k{i}"),
            Level::Feature | Level::ViaFk => format!("v{i}.rec"),
        }
    }

    /// The joins that bring every feature level's chosen record to asset `a`.
    fn joins(&self) -> String {
        let mut sql = String::new();
        for (i, kind) in self.kinds.iter().enumerate() {
            let key = match kind {
                Level::Column { .. } => continue,
                Level::Feature => "a.rid".to_string(),
                Level::ViaFk => format!("a.k{i}"),
            };
            sql.push_str(&format!(
                " LEFT JOIN val v{i} ON v{i}.level = {i} AND v{i}.key = {key}"
            ));
        }
        sql
    }

    /// SQL true for an asset without a value for some level.
    fn missing_sql(&self) -> Option<String> {
        let parts: Vec<String> = (0..self.kinds.len())
            .map(|i| format!("{} IS NULL", self.value_sql(i)))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" OR "))
    }

    /// Level `i`'s value from its stored text (`None`: missing).
    fn value(&self, i: usize, stored: Option<String>) -> Result<Option<TargetValue>> {
        let Some(text) = stored else { return Ok(None) };
        let bad = |e: String| deriva_bag_features::Error::Invalid(e);
        Ok(Some(match &self.kinds[i] {
            Level::Column { name, ty } => {
                let json: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
                TargetValue::Column {
                    name: name.clone(),
                    value: Value::from_json(&json, ty).map_err(|e| bad(e.to_string()))?,
                }
            }
            Level::Feature | Level::ViaFk => TargetValue::Feature(
                serde_json::from_str::<FeatureRecord>(&text).map_err(|e| bad(e.to_string()))?,
            ),
        }))
    }
}

/// Asset rows whose files are looked up together (see [`DatasetLike::asset_paths`]).
const TAKE_BATCH: usize = 2048;

/// The dataset tree walk: type paths of the visited datasets (nodes), and into the store
/// which assets each reaches and which nodes nest which.
struct Walk<'a> {
    table: &'a TableName,
    options: &'a RestructureOptions,
    scratch: &'a Scratch,
    levels: &'a Levels,
    /// Type path of each visited dataset, in depth-first order.
    type_paths: Vec<Vec<String>>,
    /// Node of each visited dataset.
    nodes: HashMap<Rid, usize>,
    visiting: HashSet<Rid>,
    /// Assets of the root without a file, and present ones.
    missing: usize,
    present: usize,
    /// `INSERT` of one row of the `asset` table (its width depends on the levels).
    asset_insert: String,
    /// The working directory, read at the first relative asset path (not once per asset).
    cwd: Option<PathBuf>,
}

impl Walk<'_> {
    /// Files one reachable asset row of the root: its source file and target keys, or a
    /// missing file.
    fn take(&mut self, row: &Row, rid: &Rid, file: Option<PathBuf>) -> Result<()> {
        let table = self.table;
        match file {
            Some(path) => {
                let path = self.absolute(path)?;
                let mut values: Vec<rusqlite::types::Value> =
                    vec![rid.to_string().into(), os_bytes(path.as_os_str()).into()];
                for i in 0..self.levels.kinds.len() {
                    values.push(match self.levels.stored(i, row) {
                        Some(k) => k.into(),
                        None => rusqlite::types::Value::Null,
                    });
                }
                self.scratch
                    .exec(&self.asset_insert, rusqlite::params_from_iter(values))?;
                self.present += 1;
            }
            None => {
                let filename = row.text("Filename").map(str::to_string);
                tracing::warn!(rid = %rid, filename = filename.as_deref().unwrap_or(""), table = %table, "asset file not found; not placed");
                self.scratch.exec(
                    "INSERT OR IGNORE INTO missing (rid, filename) VALUES (?1, ?2)",
                    rusqlite::params![rid.as_str(), filename],
                )?;
                self.missing += 1;
            }
        }
        Ok(())
    }

    /// `path` made absolute against the working directory, which is read once.
    fn absolute(&mut self, path: PathBuf) -> Result<PathBuf> {
        if path.is_absolute() {
            return std::path::absolute(&path).map_err(io(&path));
        }
        let cwd = match self.cwd.take() {
            Some(cwd) => cwd,
            None => std::env::current_dir().map_err(io(&path))?,
        };
        let joined = cwd.join(&path);
        self.cwd = Some(cwd);
        std::path::absolute(&joined).map_err(io(&path))
    }

    /// Files a batch of the root's reachable asset rows in order (a row without a RID is
    /// skipped), and empties it.
    fn take_batch<D: DatasetLike>(
        &mut self,
        ds: &D,
        node: usize,
        batch: &mut Vec<Row>,
    ) -> Result<()> {
        let files = ds.asset_paths(self.table, batch);
        for (row, file) in batch.drain(..).zip(files) {
            let Some(asset) = row.rid() else { continue };
            self.scratch.exec(
                "INSERT OR IGNORE INTO reach (rid, node) VALUES (?1, ?2)",
                rusqlite::params![asset.as_str(), node as i64],
            )?;
            self.take(&row, &asset, file)?;
        }
        Ok(())
    }

    /// Visits `ds` (reached under `parent_path`) and returns its node, `None` on a nesting
    /// cycle. The root's rows stream through [`take`](Self::take); the nested datasets'
    /// RIDs alone are read.
    fn visit<D: DatasetLike>(
        &mut self,
        ds: &D,
        parent_path: &[String],
        root: bool,
    ) -> Result<Option<usize>> {
        let rid = ds.rid().clone();
        if let Some(&done) = self.nodes.get(&rid) {
            // A dataset nested under two parents: its first path wins, as in the reference.
            return Ok(Some(done));
        }
        if !self.visiting.insert(rid.clone()) {
            tracing::warn!(dataset = %rid, "dataset nesting cycle; not descending again");
            return Ok(None);
        }
        let mut path = parent_path.to_vec();
        if let Some(level) = type_level(ds.info(), self.options)? {
            path.push(level);
        }
        let node = self.type_paths.len();
        self.type_paths.push(path.clone());

        // A failure of the store stops the dataset's stream and is reported as itself.
        let mut failure: Option<Error> = None;
        let stop = || deriva_bag_features::Error::Invalid("restructure scratch store".into());
        let read = if root {
            // Rows are taken in batches, so the dataset can look their files up together.
            let mut batch: Vec<Row> = Vec::with_capacity(TAKE_BATCH);
            let read = ds.for_each_reachable_row(self.table, &mut |row| {
                batch.push(row);
                if batch.len() < TAKE_BATCH {
                    return Ok(());
                }
                self.take_batch(ds, node, &mut batch).map_err(|e| {
                    failure = Some(e);
                    stop()
                })
            });
            if read.is_ok() && failure.is_none() {
                self.take_batch(ds, node, &mut batch)?;
            }
            read
        } else {
            let scratch = self.scratch;
            ds.for_each_reachable_rid(self.table, &mut |asset| {
                scratch
                    .exec(
                        "INSERT OR IGNORE INTO reach (rid, node) VALUES (?1, ?2)",
                        rusqlite::params![asset.as_str(), node as i64],
                    )
                    .map(drop)
                    .map_err(|e| {
                        failure = Some(e);
                        stop()
                    })
            })
        };
        if let Some(failure) = failure {
            return Err(failure);
        }
        read?;
        for child in ds.list_dataset_children(false)? {
            let handle = ds.dataset(&child.rid)?;
            if let Some(child) = self.visit(&handle, &path, false)? {
                self.scratch.exec(
                    "INSERT OR IGNORE INTO edge (parent, child) VALUES (?1, ?2)",
                    [node as i64, child as i64],
                )?;
            }
        }
        self.visiting.remove(&rid);
        self.nodes.insert(rid, node);
        Ok(Some(node))
    }
}

/// Each feature level's chosen record for every key some present asset asks for, into `val`.
fn store_values<D: DatasetLike>(
    dataset: &D,
    scratch: &Scratch,
    levels: &Levels,
    rules: TargetRules,
) -> Result<()> {
    for (i, (target, kind)) in levels.targets.iter().zip(&levels.kinds).enumerate() {
        let wanted_sql = match kind {
            Level::Column { .. } => continue,
            Level::Feature => "SELECT 1 FROM asset WHERE rid = ?1".to_string(),
            Level::ViaFk => {
                scratch.batch(&format!("CREATE INDEX asset_k{i} ON asset (k{i})"))?;
                format!("SELECT 1 FROM asset WHERE k{i} = ?1")
            }
        };
        let failure: std::cell::RefCell<Option<Error>> = std::cell::RefCell::new(None);
        let stop = |e: Error| {
            *failure.borrow_mut() = Some(e);
            deriva_bag_features::Error::Invalid("restructure scratch store".into())
        };
        let read = for_each_target_record(
            dataset,
            target,
            rules.refuse_conflicts,
            &mut |key| scratch.exists(&wanted_sql, [key]).map_err(stop),
            &mut |key, record| {
                let json = serde_json::to_string(&record)
                    .map_err(|e| deriva_bag_features::Error::Invalid(e.to_string()))?;
                scratch
                    .exec(
                        "INSERT OR IGNORE INTO val (level, key, rec) VALUES (?1, ?2, ?3)",
                        rusqlite::params![i as i64, key, json],
                    )
                    .map(drop)
                    .map_err(stop)
            },
        );
        if let Some(failure) = failure.into_inner() {
            return Err(failure);
        }
        read?;
    }
    Ok(())
}

/// [`Missing::Error`]: fails listing the first unlabeled assets (by RID) and their count.
fn check_unlabeled(scratch: &Scratch, levels: &Levels, table: &TableName) -> Result<()> {
    let Some(missing) = levels.missing_sql() else {
        return Ok(());
    };
    let sql = format!(
        "SELECT a.rid FROM asset a{} WHERE {missing} ORDER BY a.rid",
        levels.joins()
    );
    let mut stmt = scratch.conn().prepare(&sql).map_err(scratch.err())?;
    let mut rows = stmt.query([]).map_err(scratch.err())?;
    let mut listed = Vec::new();
    let mut count = 0usize;
    while let Some(row) = rows.next().map_err(scratch.err())? {
        if listed.len() < MAX_LISTED_RIDS {
            listed.push(Rid::new(row.get::<_, String>(0).map_err(scratch.err())?));
        }
        count += 1;
    }
    if count == 0 {
        return Ok(());
    }
    Err(deriva_bag_features::Error::UnlabeledElements {
        count,
        table: table.to_string(),
        targets: levels.targets.iter().map(|t| t.name.clone()).collect(),
        listed,
        more: count.saturating_sub(MAX_LISTED_RIDS),
    }
    .into())
}

/// The directory name of each level for one asset.
fn labels(
    levels: &Levels,
    options: &RestructureOptions,
    rid: &Rid,
    values: Vec<Option<TargetValue>>,
) -> Result<Vec<String>> {
    let mut labels = Vec::with_capacity(values.len());
    for (target, value) in levels.targets.iter().zip(&values) {
        let label = match value {
            None => "unknown".to_string(),
            Some(v) => {
                let text = match &options.target_transform {
                    Some(f) => f(v).map_err(|source| Error::TargetTransform {
                        target: target.name.clone(),
                        rid: rid.clone(),
                        source,
                    })?,
                    None => target.default_label(v).ok_or_else(|| Error::NoLabel {
                        target: target.name.clone(),
                        rid: rid.clone(),
                    })?,
                };
                sanitize(&text, rid, LabelKind::Label)?
            }
        };
        labels.push(label);
    }
    Ok(labels)
}

/// One asset of the final pass, with the nodes that own it.
struct Owned {
    rid: Rid,
    src: PathBuf,
    labels: Vec<String>,
    owners: Vec<usize>,
}

/// Files one asset's placements (one per owning dataset) into `place`.
fn file_placements(scratch: &Scratch, type_paths: &[Vec<String>], asset: Owned) -> Result<()> {
    let Some(file_name) = asset.src.file_name() else {
        return Err(Error::Io {
            path: asset.src.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "asset path has no file name",
            ),
        });
    };
    let splits: HashSet<&Vec<String>> = asset.owners.iter().map(|&o| &type_paths[o]).collect();
    if splits.len() > 1 {
        scratch.exec(
            "INSERT OR IGNORE INTO several (rid) VALUES (?1)",
            [asset.rid.as_str()],
        )?;
    }
    let src = os_bytes(asset.src.as_os_str());
    for owner in asset.owners {
        let mut rel: PathBuf = type_paths[owner].iter().collect();
        rel.extend(&asset.labels);
        rel.push(file_name);
        scratch.exec(
            "INSERT OR IGNORE INTO place (rel, rid, src) VALUES (?1, ?2, ?3)",
            rusqlite::params![path_key(&rel), asset.rid.as_str(), src],
        )?;
    }
    Ok(())
}

/// Builds the full plan into `scratch`. Fails before anything is written in the output.
pub(crate) fn plan<D: DatasetLike>(
    dataset: &D,
    table: &TableName,
    options: &RestructureOptions,
    scratch: &Scratch,
) -> Result<Plan> {
    let levels = Levels::new(dataset, table, options)?;
    let key_columns: String = (0..levels.kinds.len())
        .map(|i| format!(", k{i} TEXT"))
        .collect();
    scratch.batch(&format!(
        "CREATE TABLE asset (rid TEXT PRIMARY KEY, src BLOB NOT NULL{key_columns}) WITHOUT ROWID"
    ))?;
    let mut walk = Walk {
        table,
        options,
        scratch,
        levels: &levels,
        type_paths: Vec::new(),
        nodes: HashMap::new(),
        visiting: HashSet::new(),
        missing: 0,
        present: 0,
        asset_insert: format!(
            "INSERT OR IGNORE INTO asset VALUES (?1, ?2{})",
            (0..levels.kinds.len())
                .map(|i| format!(", ?{}", i + 3))
                .collect::<String>()
        ),
        cwd: None,
    };
    // Assets whose file is not on disk are skipped with one warning each (SPEC §5.8); the
    // remaining ones are exactly the set that will be emitted, so `Missing::Error` is checked
    // against them.
    walk.visit(dataset, &[], true)?;
    let Walk {
        type_paths,
        missing,
        present,
        ..
    } = walk;
    if missing > 0 {
        tracing::warn!(
            missing,
            present,
            table = %table,
            "some asset files are not on disk (bag not materialized?); placed only the files present"
        );
    }
    let rules = TargetRules::from(options.enforce_vocabulary);
    store_values(dataset, scratch, &levels, rules)?;
    if options.missing == Missing::Error {
        check_unlabeled(scratch, &levels, table)?;
    }

    // One pass over the assets in RID order, joined with their values and with the nodes that
    // own them: the deepest datasets containing them (no child of the node reaches them).
    let values: String = (0..levels.kinds.len())
        .map(|i| format!(", {}", levels.value_sql(i)))
        .collect();
    let skip = match (options.missing, levels.missing_sql()) {
        (Missing::Skip, Some(missing)) => format!(" WHERE NOT ({missing})"),
        _ => String::new(),
    };
    let sql = format!(
        "SELECT a.rid, a.src{values}, r.node FROM asset a{joins}
         LEFT JOIN reach r ON r.rid = a.rid AND NOT EXISTS (
             SELECT 1 FROM edge e JOIN reach c ON c.rid = r.rid AND c.node = e.child
             WHERE e.parent = r.node){skip}
         ORDER BY a.rid, r.node",
        joins = levels.joins()
    );
    let n = levels.kinds.len();
    let mut stmt = scratch.conn().prepare(&sql).map_err(scratch.err())?;
    let mut rows = stmt.query([]).map_err(scratch.err())?;
    let mut current: Option<Owned> = None;
    while let Some(row) = rows.next().map_err(scratch.err())? {
        let rid: String = row.get(0).map_err(scratch.err())?;
        let node: Option<i64> = row.get(n + 2).map_err(scratch.err())?;
        if current.as_ref().map(|c| c.rid.as_str()) != Some(rid.as_str()) {
            if let Some(done) = current.take() {
                file_placements(scratch, &type_paths, done)?;
            }
            let rid = Rid::new(rid);
            let src = PathBuf::from(bytes_os(row.get(1).map_err(scratch.err())?));
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(levels.value(i, row.get(2 + i).map_err(scratch.err())?)?);
            }
            let labels = labels(&levels, options, &rid, values)?;
            current = Some(Owned {
                rid,
                src,
                labels,
                owners: Vec::new(),
            });
        }
        if let (Some(c), Some(node)) = (current.as_mut(), node) {
            c.owners.push(usize::try_from(node).unwrap_or(usize::MAX));
        }
    }
    if let Some(done) = current.take() {
        file_placements(scratch, &type_paths, done)?;
    }
    drop(rows);
    drop(stmt);

    resolve_collisions(scratch)?;
    let in_several_splits = scratch.count("SELECT count(*) FROM several")?;
    if in_several_splits > 0 {
        let first: String = scratch
            .conn()
            .query_row("SELECT min(rid) FROM several", [], |r| r.get(0))
            .map_err(scratch.err())?;
        tracing::warn!(
            assets = in_several_splits,
            first = %first,
            "{} asset(s) are placed in more than one split (e.g. training and testing): a model \
             evaluated on one split has seen them in another",
            in_several_splits
        );
    }
    Ok(Plan {
        placements: scratch.count("SELECT count(*) FROM place")?,
        missing,
        in_several_splits,
    })
}

/// Two different assets on one path: the smallest RID keeps the name, the others get
/// `<stem>_<RID><ext>` (then `_2`, `_3`… if even that is taken by any planned or renamed
/// path). Works on `place`, a page of colliding rows at a time.
pub(crate) fn resolve_collisions(scratch: &Scratch) -> Result<()> {
    let query = PagedQuery {
        from: "place t",
        key: &["rel", "rid"],
        cols: "",
        filter: "EXISTS (SELECT 1 FROM place q WHERE q.rel = t.rel AND q.rid < t.rid)",
        decode: |r, _| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)),
    };
    // Renamed rows move to a free name, so they never collide again; the smallest RID of
    // each name stays, so the rows after the page read are still the colliding ones.
    let mut colliders = scratch.scan(query);
    loop {
        let mut page = Vec::with_capacity(PAGE);
        for item in colliders.by_ref().take(PAGE) {
            page.push(item?);
        }
        if page.is_empty() {
            return Ok(());
        }
        for (key, rid) in page {
            let original = key_path(&key);
            let rid = Rid::new(rid);
            let mut n = 1;
            let renamed = loop {
                let candidate = path_key(&with_rid_suffix(&original, &rid, n));
                if !scratch.exists("SELECT 1 FROM place WHERE rel = ?1", [&candidate])? {
                    break candidate;
                }
                n += 1;
            };
            tracing::info!(rid = %rid, from = %original.display(), to = %key_path(&renamed).display(), "file name collision; renamed");
            scratch.exec(
                "UPDATE place SET rel = ?1 WHERE rel = ?2 AND rid = ?3",
                rusqlite::params![renamed, key, rid.as_str()],
            )?;
        }
    }
}

/// `dir/<stem>_<RID><ext>`; `n > 1` adds `_<n>` after the RID.
fn with_rid_suffix(rel: &Path, rid: &Rid, n: usize) -> PathBuf {
    let stem = rel.file_stem().map(OsString::from).unwrap_or_default();
    let mut name = stem;
    name.push("_");
    name.push(rid.as_str());
    if n > 1 {
        name.push(format!("_{n}"));
    }
    if let Some(ext) = rel.extension() {
        name.push(".");
        name.push(ext);
    }
    rel.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs [`resolve_collisions`] on `planned` (`(rel, rid)`) and returns the result in
    /// path order.
    fn resolved(planned: &[(&str, &str)]) -> Vec<(String, String)> {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = Scratch::create(&tmp.path().join("out")).unwrap();
        for (rel, rid) in planned {
            scratch
                .exec(
                    "INSERT INTO place (rel, rid, src) VALUES (?1, ?2, ?3)",
                    rusqlite::params![path_key(Path::new(rel)), rid, b"/bag".to_vec()],
                )
                .unwrap();
        }
        resolve_collisions(&scratch).unwrap();
        let mut stmt = scratch
            .conn()
            .prepare("SELECT rel, rid FROM place ORDER BY rel, rid")
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    key_path(&r.get::<_, Vec<u8>>(0)?).display().to_string(),
                    r.get::<_, String>(1)?,
                ))
            })
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn collision_keeps_the_smallest_rid_and_renames_the_rest_with_their_rid() {
        let got = resolved(&[
            ("training/Severe/a.jpg", "1-I001"),
            ("training/Severe/a.jpg", "1-I007"),
            ("training/Severe/a.jpg", "1-I009"),
            ("training/Severe/b", "1-I002"),
            ("training/Severe/b", "1-I003"),
        ]);
        assert_eq!(
            got,
            [
                ("training/Severe/a.jpg", "1-I001"),
                ("training/Severe/a_1-I007.jpg", "1-I007"),
                ("training/Severe/a_1-I009.jpg", "1-I009"),
                ("training/Severe/b", "1-I002"),
                ("training/Severe/b_1-I003", "1-I003"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn a_renamed_file_never_takes_another_assets_plain_name() {
        // I001's plain name is literally what I002 would be renamed to.
        let got = resolved(&[
            ("x/a_1-I002.jpg", "1-I001"),
            ("x/a.jpg", "1-I000"),
            ("x/a.jpg", "1-I002"),
        ]);
        assert_eq!(
            got,
            [
                ("x/a.jpg", "1-I000"),
                ("x/a_1-I002.jpg", "1-I001"),
                ("x/a_1-I002_2.jpg", "1-I002"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn collisions_across_pages_are_all_renamed() {
        let planned: Vec<(String, String)> = (0..PAGE + 5)
            .map(|i| ("x/a.jpg".to_string(), format!("1-{i:06}")))
            .collect();
        let refs: Vec<(&str, &str)> = planned
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let got = resolved(&refs);
        assert_eq!(got.len(), PAGE + 5);
        assert_eq!(got[0], ("x/a.jpg".to_string(), "1-000000".to_string()));
        let last = format!("1-{:06}", PAGE + 4);
        assert!(got.contains(&(format!("x/a_{last}.jpg"), last)));
    }

    #[test]
    fn confinement_rejects_parent_and_absolute_components() {
        use crate::scratch::is_confined;
        assert!(is_confined(Path::new("training/Severe/a.jpg")));
        assert!(!is_confined(Path::new("../a.jpg")));
        assert!(!is_confined(Path::new("/etc/passwd")));
        assert!(!is_confined(Path::new("")));
    }
}
