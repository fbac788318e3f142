//! Dataset identity (version, types, description), nesting (children/parents) and tables.

use std::collections::HashSet;
use std::sync::Arc;

use deriva_bag_features::model::ML_SCHEMA;
use deriva_bag_features::{DatasetInfo, Rid, Row, TableName};

use super::{BagShared, DatasetBag};
use crate::index::query::TableRows;
use crate::version::max_version;
use crate::Result;

fn ml(table: &str) -> TableName {
    TableName::new(ML_SCHEMA, table)
}

impl DatasetBag {
    /// A `DatasetBag` for `rid` over the shared bag; DatasetNotFound without a version row.
    pub(crate) fn for_rid(shared: &Arc<BagShared>, rid: &Rid) -> Result<DatasetBag> {
        let info = dataset_info(shared, rid)?;
        if info.version.is_none() {
            return Err(deriva_bag_features::Error::DatasetNotFound { rid: rid.clone() }.into());
        }
        Ok(DatasetBag {
            shared: shared.clone(),
            info,
        })
    }

    /// Another dataset of this bag (nested or not), sharing the opened index.
    ///
    /// Errors with `DatasetNotFound` when the bag has no `Dataset_Version` row for `rid`.
    pub fn dataset(&self, rid: &Rid) -> Result<DatasetBag> {
        DatasetBag::for_rid(&self.shared, rid)
    }

    /// Datasets nested in this one, sorted by RID; with `recurse`, each child is followed by
    /// its own descendants (depth first). Unlike the reference, a child without a
    /// `Dataset_Version` row is still listed (with `version: None`). A visited set stops the
    /// recursion on cycles, and a nesting cycle back to this dataset never lists it as its
    /// own descendant; a dataset reached twice in a diamond is listed twice, as in the
    /// reference.
    pub fn list_dataset_children(&self, recurse: bool) -> Result<Vec<DatasetInfo>> {
        let mut out = Vec::new();
        let mut visited = HashSet::from([self.info.rid.clone()]);
        self.walk_nesting(&self.info.rid, true, recurse, &mut visited, &mut out)?;
        Ok(out)
    }

    /// Datasets that nest this one, sorted by RID; with `recurse`, their ancestors follow
    /// (direct parents first, then each parent's ancestors). Parents without a version row are
    /// listed with `version: None`; a nesting cycle never lists this dataset as its own
    /// ancestor.
    pub fn list_dataset_parents(&self, recurse: bool) -> Result<Vec<DatasetInfo>> {
        let mut out = Vec::new();
        let mut visited = HashSet::from([self.info.rid.clone()]);
        self.walk_nesting(&self.info.rid, false, recurse, &mut visited, &mut out)?;
        Ok(out)
    }

    fn walk_nesting(
        &self,
        rid: &Rid,
        down: bool,
        recurse: bool,
        visited: &mut HashSet<Rid>,
        out: &mut Vec<DatasetInfo>,
    ) -> Result<()> {
        let mut next = if down {
            nested_rids(&self.shared, rid)?
        } else {
            parent_rids(&self.shared, rid)?
        };
        // A cycle leads back here: this dataset is not its own child or parent.
        next.retain(|r| *r != self.info.rid);
        let mut infos = Vec::with_capacity(next.len());
        for r in &next {
            infos.push(dataset_info(&self.shared, r)?);
        }
        out.extend(infos);
        if recurse {
            for r in next {
                if visited.insert(r.clone()) {
                    self.walk_nesting(&r, down, recurse, visited, out)?;
                }
            }
        }
        Ok(())
    }

    /// This dataset's RID followed by every descendant's (depth first, each once).
    pub(crate) fn dataset_and_descendants(&self) -> Result<Vec<String>> {
        let mut out = vec![self.info.rid.to_string()];
        let mut visited = HashSet::from([self.info.rid.clone()]);
        let mut stack = vec![self.info.rid.clone()];
        while let Some(r) = stack.pop() {
            for child in nested_rids(&self.shared, &r)?.into_iter().rev() {
                if visited.insert(child.clone()) {
                    out.push(child.to_string());
                    stack.push(child);
                }
            }
        }
        Ok(out)
    }

    /// Every non-system table of the model (all but `public`/`WWW`), sorted.
    pub fn list_tables(&self) -> Vec<TableName> {
        let mut out: Vec<TableName> = self
            .shared
            .model
            .tables()
            .filter(|t| !deriva_bag_features::model::is_system_schema(&t.name.schema))
            .map(|t| t.name.clone())
            .collect();
        out.sort();
        out
    }

    /// Resolves `schema:table`, `schema.table` or an unambiguous bare table name.
    pub fn resolve_table(&self, name: &str) -> Result<TableName> {
        Ok(self.shared.model.resolve_table(name)?.name.clone())
    }

    /// Number of rows of a table in the bag.
    pub fn row_count(&self, table: &TableName) -> Result<u64> {
        self.index().row_count(table)
    }

    /// All rows of a table in the bag (not only this dataset's), sorted by RID.
    pub fn get_table(&self, name: &str) -> Result<Vec<Row>> {
        let table = self.resolve_table(name)?;
        self.table_rows_of(&table)
    }

    pub(crate) fn table_rows_of(&self, table: &TableName) -> Result<Vec<Row>> {
        let layout = self.index().layout(table)?;
        let order = format!("ORDER BY {}", layout.key_sql());
        self.index().select_rows(table, &order, [])
    }

    /// Rows of a table streamed from the index page by page (RID order), without loading the
    /// whole table.
    pub fn table_iter(&self, name: &str) -> Result<TableRows> {
        let table = self.resolve_table(name)?;
        TableRows::new(self.shared.index.clone(), &table)
    }
}

/// `Dataset_Dataset.Nested_Dataset` where `Dataset = rid`, sorted, distinct.
pub(crate) fn nested_rids(shared: &BagShared, rid: &Rid) -> Result<Vec<Rid>> {
    nesting_query(shared, rid, "Dataset", "Nested_Dataset")
}

fn parent_rids(shared: &BagShared, rid: &Rid) -> Result<Vec<Rid>> {
    nesting_query(shared, rid, "Nested_Dataset", "Dataset")
}

fn nesting_query(shared: &BagShared, rid: &Rid, by: &str, get: &str) -> Result<Vec<Rid>> {
    let Ok(layout) = shared.index.layout(&ml("Dataset_Dataset")) else {
        return Ok(Vec::new());
    };
    let (Some(by), Some(get)) = (layout.col(by), layout.col(get)) else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT DISTINCT {get} FROM {t} WHERE {by} = ?1 AND {get} IS NOT NULL ORDER BY {get}",
        t = layout.sql_name
    );
    Ok(shared
        .index
        .query_strings(&sql, [rid.as_str()])?
        .into_iter()
        .map(Rid::new)
        .collect())
}

/// Version (highest PEP 440), types (association row order) and description of `rid`.
pub(crate) fn dataset_info(shared: &BagShared, rid: &Rid) -> Result<DatasetInfo> {
    let index = &shared.index;
    // `SELECT <get> FROM <table> WHERE <by> = rid [ORDER BY RID]`, empty when the model lacks
    // the table or a column.
    let values_of = |table: &str, get: &str, by: &str, ordered: bool| -> Result<Vec<String>> {
        let Ok(layout) = index.layout(&ml(table)) else {
            return Ok(Vec::new());
        };
        let (Some(get), Some(by)) = (layout.col(get), layout.col(by)) else {
            return Ok(Vec::new());
        };
        let order = match layout.col("RID") {
            Some(rid) if ordered => format!("ORDER BY {rid}"),
            _ => String::new(),
        };
        index.query_strings(
            &format!(
                "SELECT {get} FROM {} WHERE {by} = ?1 {order}",
                layout.sql_name
            ),
            [rid.as_str()],
        )
    };
    let versions = values_of("Dataset_Version", "Version", "Dataset", false)?;
    let version = max_version(versions.iter().map(String::as_str)).map(str::to_string);
    let types = values_of("Dataset_Dataset_Type", "Dataset_Type", "Dataset", true)?;
    let description = values_of("Dataset", "Description", "RID", false)?
        .into_iter()
        .next();
    Ok(DatasetInfo {
        rid: rid.clone(),
        version,
        types,
        description,
    })
}
