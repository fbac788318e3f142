//! What a live dataset answers, as async reads of its snapshot: identity, nesting, members,
//! reachable rows, feature rows and workflow executions. Each follows the bag's meaning
//! (`deriva-bag-core`'s `bag/` and `index/reachable.rs`), with the model rules both share
//! ([`deriva_bag_features::membership`]) and only paged or RID-chunked reads
//! ([`SnapshotReader`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use deriva_bag_features::membership::{dataset_table, element_types, paths_to, ElementType};
use deriva_bag_features::model::ML_SCHEMA;
use deriva_bag_features::{
    CatalogModel, DatasetInfo, Feature, FeatureRecord, Members, Rid, Row, Table, TableName,
};
use deriva_bag_format::version::max_version;
use serde_json::{Map, Value as Json};

use super::snapshot::{literal, sort_by_rid, typed_rows, JsonRow, SnapshotReader, CHUNK};
use crate::client::q;
use crate::error::Result;

/// RIDs of one table reachable from one dataset (and its descendants).
pub(crate) type Reachable = Arc<BTreeSet<String>>;

fn ml(table: &str) -> TableName {
    TableName::new(ML_SCHEMA, table)
}

/// A row holding only its RID (a dataset RID the walk starts from, or a row a foreign key
/// names by RID).
fn rid_row(rid: String) -> JsonRow {
    let mut row = Map::new();
    row.insert("RID".into(), Json::String(rid));
    row
}

/// What every `Dataset` value of one lookup shares: the snapshot reader, the model as of the
/// snapshot, and the reachable sets computed so far (the snapshot never changes, so they
/// stay valid).
pub(crate) struct Shared {
    pub reader: SnapshotReader,
    pub snapshot: Option<String>,
    pub model: CatalogModel,
    element_types: Vec<ElementType>,
    reachable: Mutex<HashMap<(Rid, TableName), Reachable>>,
}

impl Shared {
    pub(crate) fn new(
        reader: SnapshotReader,
        snapshot: Option<String>,
        model: CatalogModel,
    ) -> Self {
        Shared {
            reader,
            snapshot,
            element_types: element_types(&model),
            model,
            reachable: Mutex::new(HashMap::new()),
        }
    }

    /// The model's table, or the model's `TableNotFound` error listing what exists.
    pub(crate) fn table(&self, name: &TableName) -> Result<&Table> {
        match self.model.table(name) {
            Some(t) => Ok(t),
            None => Ok(self.model.resolve_table(&name.to_string())?),
        }
    }

    fn has(&self, table: &TableName, columns: &[&str]) -> bool {
        self.model
            .table(table)
            .is_some_and(|t| columns.iter().all(|c| t.column(c).is_some()))
    }

    /// `get` of the rows of `deriva-ml:<table>` whose `by` is `value`, in RID order, NULLs
    /// skipped; empty when the model lacks the table or a column.
    async fn values_of(
        &self,
        table: &str,
        get: &str,
        by: &str,
        value: &str,
    ) -> Result<Vec<String>> {
        let t = ml(table);
        if !self.has(&t, &[get, by]) {
            return Ok(Vec::new());
        }
        let filter = format!("/{}={}", q(by), q(value));
        let rows = self.reader.scan(&t, &filter, Some(&[get])).await?;
        Ok(rows.iter().filter_map(|r| literal(r, get)).collect())
    }

    /// Version (highest PEP 440 at the snapshot), types (association row order) and
    /// description of `rid`, as the bag's `dataset_info`.
    pub(crate) async fn info(&self, rid: &Rid) -> Result<DatasetInfo> {
        let versions = self
            .values_of("Dataset_Version", "Version", "Dataset", rid.as_str())
            .await?;
        let version = max_version(versions.iter().map(String::as_str)).map(str::to_string);
        let types = self
            .values_of(
                "Dataset_Dataset_Type",
                "Dataset_Type",
                "Dataset",
                rid.as_str(),
            )
            .await?;
        let description = self
            .values_of("Dataset", "Description", "RID", rid.as_str())
            .await?
            .into_iter()
            .next();
        Ok(DatasetInfo {
            rid: rid.clone(),
            version,
            types,
            description,
        })
    }

    /// `Dataset_Dataset.<get>` where `<by>` is `rid`: distinct, sorted.
    async fn nesting(&self, rid: &Rid, by: &str, get: &str) -> Result<Vec<Rid>> {
        let found: BTreeSet<String> = self
            .values_of("Dataset_Dataset", get, by, rid.as_str())
            .await?
            .into_iter()
            .collect();
        Ok(found.into_iter().map(Rid::new).collect())
    }

    /// Children (`down`) or parents of `root`, as the bag's `walk_nesting`: direct ones
    /// first, then (with `recurse`) each one's own, depth first; `root` is never its own.
    pub(crate) async fn relatives(
        &self,
        root: &Rid,
        down: bool,
        recurse: bool,
    ) -> Result<Vec<DatasetInfo>> {
        let mut out = Vec::new();
        let mut visited = HashSet::from([root.clone()]);
        self.walk_nesting(root, root, down, recurse, &mut visited, &mut out)
            .await?;
        Ok(out)
    }

    fn walk_nesting<'a>(
        &'a self,
        root: &'a Rid,
        rid: &'a Rid,
        down: bool,
        recurse: bool,
        visited: &'a mut HashSet<Rid>,
        out: &'a mut Vec<DatasetInfo>,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let mut next = if down {
                self.nesting(rid, "Dataset", "Nested_Dataset").await?
            } else {
                self.nesting(rid, "Nested_Dataset", "Dataset").await?
            };
            next.retain(|r| r != root);
            for r in &next {
                out.push(self.info(r).await?);
            }
            if recurse {
                for r in next {
                    if visited.insert(r.clone()) {
                        self.walk_nesting(root, &r, down, recurse, visited, out)
                            .await?;
                    }
                }
            }
            Ok(())
        })
    }

    /// `root` and every descendant's RID (each once).
    async fn dataset_and_descendants(&self, root: &Rid) -> Result<Vec<String>> {
        let mut out = vec![root.to_string()];
        let mut visited = HashSet::from([root.clone()]);
        let mut stack = vec![root.clone()];
        while let Some(r) = stack.pop() {
            for child in self
                .nesting(&r, "Dataset", "Nested_Dataset")
                .await?
                .into_iter()
                .rev()
            {
                if visited.insert(child.clone()) {
                    out.push(child.to_string());
                    stack.push(child);
                }
            }
        }
        Ok(out)
    }

    /// Members by element table, as the bag's `list_dataset_members`: every element type a
    /// key; per dataset level the rows in RID order, at most `limit`; with `recurse` each
    /// nested dataset's rows appended after its parent's (children in RID order, depth first,
    /// duplicates across levels kept); `root` is never a member of itself.
    pub(crate) async fn members(
        &self,
        root: &Rid,
        recurse: bool,
        limit: Option<usize>,
    ) -> Result<Members> {
        let mut out: Members = self
            .element_types
            .iter()
            .map(|e| (e.table.clone(), Vec::new()))
            .collect();
        let mut visited = HashSet::new();
        // Depth first, children in RID order: the order of the bag's recursion.
        let mut stack = vec![root.clone()];
        while let Some(rid) = stack.pop() {
            if !visited.insert(rid.clone()) {
                continue;
            }
            for element in &self.element_types {
                let mut rows = self.member_rows(element, &rid, limit).await?;
                if element.table == dataset_table() {
                    rows.retain(|r| r.rid().as_ref() != Some(root));
                }
                if let Some(list) = out.get_mut(&element.table) {
                    list.extend(rows);
                }
            }
            if recurse {
                let children = self.nesting(&rid, "Dataset", "Nested_Dataset").await?;
                stack.extend(children.into_iter().rev());
            }
        }
        Ok(out)
    }

    /// One dataset's members of one element type, in RID order, at most `limit`.
    async fn member_rows(
        &self,
        element: &ElementType,
        rid: &Rid,
        limit: Option<usize>,
    ) -> Result<Vec<Row>> {
        let Some(table) = self.model.table(&element.table) else {
            return Ok(Vec::new());
        };
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let mut rids = BTreeSet::new();
        for link in &element.links {
            if !self.has(
                &link.association,
                &[&link.member_column, &link.dataset_column],
            ) {
                continue;
            }
            let filter = format!("/{}={}", q(&link.dataset_column), q(rid.as_str()));
            let rows = self
                .reader
                .scan(&link.association, &filter, Some(&[&link.member_column]))
                .await?;
            rids.extend(rows.iter().filter_map(|r| literal(r, &link.member_column)));
        }
        let rids: Vec<String> = rids.into_iter().collect();
        self.rows_by_rid(table, &rids, limit).await
    }

    /// The rows of `table` with these RIDs (sorted, distinct), in RID order; with `limit`, the
    /// first `limit`, read chunk by chunk only as far as needed.
    pub(crate) async fn rows_by_rid(
        &self,
        table: &Table,
        rids: &[String],
        limit: Option<usize>,
    ) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        match limit {
            None => {
                let found = self.reader.scan_any(&table.name, "RID", rids, None).await?;
                rows = typed_rows(table, found)?;
            }
            Some(n) => {
                for chunk in rids.chunks(CHUNK) {
                    let found = self
                        .reader
                        .scan_any(&table.name, "RID", chunk, None)
                        .await?;
                    rows.extend(typed_rows(table, found)?);
                    if rows.len() >= n {
                        break;
                    }
                }
            }
        }
        sort_by_rid(&mut rows);
        if let Some(n) = limit {
            rows.truncate(n);
        }
        Ok(rows)
    }

    /// The RIDs of `table` reachable from `root` and its descendants: the union over every
    /// walker path from `deriva-ml:Dataset` to it (the bag's `reachable_rids_sql`), computed
    /// once per dataset and table.
    pub(crate) async fn reachable(&self, root: &Rid, table: &TableName) -> Result<Reachable> {
        let key = (root.clone(), table.clone());
        let cached = self
            .reachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(set) = cached {
            return Ok(set);
        }
        self.table(table)?;
        let start = self.dataset_and_descendants(root).await?;
        let mut set = BTreeSet::new();
        for path in paths_to(&self.model, table) {
            set.extend(self.follow(&path, &start).await?);
        }
        let set = Arc::new(set);
        self.reachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Arc::clone(&set));
        Ok(set)
    }

    /// Columns of `from` a step to `to` reads: its foreign-key columns toward `to`, and the
    /// columns of `from` that `to`'s foreign keys reference.
    fn step_columns(&self, from: &TableName, to: &TableName) -> Vec<String> {
        let mut cols = BTreeSet::new();
        if let (Some(f), Some(t)) = (self.model.table(from), self.model.table(to)) {
            for fk in f
                .foreign_keys
                .iter()
                .filter(|fk| &fk.referenced_table == to)
            {
                cols.extend(fk.columns.iter().cloned());
            }
            for fk in t
                .foreign_keys
                .iter()
                .filter(|fk| &fk.referenced_table == from)
            {
                cols.extend(fk.referenced_columns.iter().cloned());
            }
        }
        cols.into_iter().collect()
    }

    /// RIDs of the last table of `path` reached along it from the datasets `start`.
    async fn follow(&self, path: &[TableName], start: &[String]) -> Result<BTreeSet<String>> {
        let rids = |rows: &[JsonRow]| rows.iter().filter_map(|r| literal(r, "RID")).collect();
        let Some(first) = path.first() else {
            return Ok(BTreeSet::new());
        };
        let need = match path.get(1) {
            Some(next) => self.step_columns(first, next),
            None => Vec::new(),
        };
        let mut current: Vec<JsonRow> = if need.iter().all(|c| c == "RID") && path.len() > 1 {
            start.iter().cloned().map(rid_row).collect()
        } else {
            // The datasets' own rows: for a path that is `Dataset` alone (only the datasets
            // that exist count), or a first step that reads more than their RIDs.
            let cols: Vec<&str> = need.iter().map(String::as_str).collect();
            self.reader
                .scan_any(first, "RID", start, Some(&cols))
                .await?
        };
        for (i, pair) in path.windows(2).enumerate() {
            let need = match path.get(i + 2) {
                Some(next) => self.step_columns(&pair[1], next),
                None => Vec::new(),
            };
            current = self.step(&pair[0], &pair[1], &current, &need).await?;
            if current.is_empty() {
                break;
            }
        }
        Ok(rids(&current))
    }

    /// The rows of `to` (RID plus `need`) linked by a foreign key, either way, to `rows` of
    /// `from` (which hold the columns [`Shared::step_columns`] names).
    async fn step(
        &self,
        from: &TableName,
        to: &TableName,
        rows: &[JsonRow],
        need: &[String],
    ) -> Result<Vec<JsonRow>> {
        let (Some(from_t), Some(to_t)) = (self.model.table(from), self.model.table(to)) else {
            return Ok(Vec::new());
        };
        // (columns of `to`, columns of `from`) that must be equal.
        let mut links: Vec<(&[String], &[String])> = Vec::new();
        for fk in from_t
            .foreign_keys
            .iter()
            .filter(|fk| &fk.referenced_table == to)
        {
            links.push((&fk.referenced_columns, &fk.columns));
        }
        for fk in to_t
            .foreign_keys
            .iter()
            .filter(|fk| &fk.referenced_table == from)
        {
            links.push((&fk.columns, &fk.referenced_columns));
        }
        let projection: Vec<&str> = need.iter().map(String::as_str).collect();
        let mut out: BTreeMap<String, JsonRow> = BTreeMap::new();
        for (to_cols, from_cols) in links {
            let tuples: BTreeSet<Vec<String>> = rows
                .iter()
                .filter_map(|r| from_cols.iter().map(|c| literal(r, c)).collect())
                .collect();
            if tuples.is_empty() {
                continue;
            }
            let found = if let [column] = to_cols {
                let values: Vec<String> = tuples.into_iter().flatten().collect();
                if column == "RID" && need.iter().all(|c| c == "RID") {
                    // A foreign key to `RID` names existing rows: nothing to read.
                    values.into_iter().map(rid_row).collect()
                } else {
                    self.reader
                        .scan_any(to, column, &values, Some(&projection))
                        .await?
                }
            } else {
                self.reader
                    .scan_tuples(to, to_cols, &tuples, Some(&projection))
                    .await?
            };
            for r in found {
                if let Some(rid) = literal(&r, "RID") {
                    out.entry(rid).or_insert(r);
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// Rows of `table` reachable from `root`, sorted by RID.
    pub(crate) async fn reachable_rows(&self, root: &Rid, table: &TableName) -> Result<Vec<Row>> {
        let set = self.reachable(root, table).await?;
        let rids: Vec<String> = set.iter().cloned().collect();
        self.rows_by_rid(self.table(table)?, &rids, None).await
    }

    /// Every row of `table` at the snapshot, page by page, sorted by RID.
    pub(crate) async fn table_rows(&self, table: &TableName) -> Result<Vec<Row>> {
        let t = self.table(table)?;
        let mut rows = typed_rows(t, self.reader.scan(table, "", None).await?)?;
        sort_by_rid(&mut rows);
        Ok(rows)
    }

    /// The feature's rows whose target is reachable from `root`, as records (unsorted).
    pub(crate) async fn feature_records(
        &self,
        root: &Rid,
        feature: &Feature,
    ) -> Result<Vec<FeatureRecord>> {
        let reach = self.reachable(root, &feature.target_table).await?;
        let table = self.table(&feature.feature_table)?;
        let targets: Vec<String> = reach.iter().cloned().collect();
        let rows = self
            .reader
            .scan_any(
                &feature.feature_table,
                &feature.target_column,
                &targets,
                None,
            )
            .await?;
        Ok(typed_rows(table, rows)?
            .iter()
            .map(|r| feature.record_from_row(r))
            .collect())
    }

    /// Execution RIDs of a workflow given by Workflow RID or `Workflow_Type` name, sorted (the
    /// bag's rules, over the whole snapshot rather than the rows a bag holds).
    pub(crate) async fn workflow_executions(&self, workflow: &str) -> Result<Vec<Rid>> {
        let (workflow_t, execution_t) = (ml("Workflow"), ml("Execution"));
        if !self.has(&execution_t, &["RID", "Workflow"]) {
            tracing::warn!("the catalog's model has no Execution.Workflow column; no executions");
            return Ok(Vec::new());
        }
        let executions_of = |workflows: Vec<String>| async move {
            let rows = self
                .reader
                .scan_any(&execution_t, "Workflow", &workflows, Some(&[]))
                .await?;
            let found: BTreeSet<String> = rows.iter().filter_map(|r| literal(r, "RID")).collect();
            Result::Ok(found.into_iter().map(Rid::new).collect::<Vec<Rid>>())
        };
        if self.has(&workflow_t, &["RID"]) {
            let rows = self
                .reader
                .scan(&workflow_t, &format!("/RID={}", q(workflow)), Some(&[]))
                .await?;
            if !rows.is_empty() {
                return executions_of(vec![workflow.to_string()]).await;
            }
        }
        let workflows = self
            .values_of(
                "Workflow_Workflow_Type",
                "Workflow",
                "Workflow_Type",
                workflow,
            )
            .await?;
        if !workflows.is_empty() {
            return executions_of(workflows).await;
        }
        Err(deriva_bag_features::Error::WorkflowNotFound {
            workflow: workflow.to_string(),
            detail: String::new(),
        }
        .into())
    }
}
