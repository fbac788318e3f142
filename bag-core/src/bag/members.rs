//! Dataset members, reachable rows, and the internal query API other modules (features) use.

use std::collections::HashSet;
use std::sync::Arc;

use deriva_bag_features::{Members, Rid, Row, TableName};
use indexmap::IndexMap;
use rusqlite::Params;

use super::{DatasetBag, ElementType, ReachableRids};
use crate::index::reachable::dataset_table;
use crate::index::reachable::reachable_rids_sql;
use crate::Result;

impl DatasetBag {
    /// Members of this dataset by element table (every element type is a key, even when
    /// empty; keys sorted by table name, rows by RID).
    ///
    /// `limit` caps rows per table per dataset level. With `recurse`, each nested dataset's
    /// members (children in RID order, depth first) are appended after this level's rows, as in
    /// the reference (no de-duplication across levels); a visited set guards against cycles,
    /// and a nesting cycle back to this dataset never lists it as a `Dataset` member of itself.
    pub fn list_dataset_members(&self, recurse: bool, limit: Option<usize>) -> Result<Members> {
        let mut members: Members = self
            .shared
            .element_types
            .iter()
            .map(|e| (e.table.clone(), Vec::new()))
            .collect();
        let mut visited = HashSet::new();
        self.collect_members(
            &self.info.rid,
            recurse,
            limit,
            &mut visited,
            &mut |table, _, rows| {
                if let Some(list) = members.get_mut(table) {
                    list.extend(rows);
                }
            },
        )?;
        Ok(members)
    }

    /// [`list_dataset_members`](Self::list_dataset_members) with each row paired with the RID
    /// of the dataset it is a direct member of: this dataset, or the nested dataset whose
    /// level listed it. Same keys, rows and order.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{fixtures, DatasetBag};
    /// let tmp = tempfile::tempdir()?;
    /// let bag = DatasetBag::open(fixtures::small_bag(tmp.path())?.path)?;
    /// let members = bag.list_dataset_members_by_origin(true, None)?;
    /// let images = members.iter().find(|(t, _)| t.table == "Image").map(|(_, r)| r).unwrap();
    /// // 1-I001 is a member of the Training dataset 1-D001.
    /// let (origin, _) = images.iter().find(|(_, row)| row.text("RID") == Some("1-I001")).unwrap();
    /// assert_eq!(origin.as_str(), "1-D001");
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_dataset_members_by_origin(
        &self,
        recurse: bool,
        limit: Option<usize>,
    ) -> Result<IndexMap<TableName, Vec<(Rid, Row)>>> {
        let mut members: IndexMap<TableName, Vec<(Rid, Row)>> = self
            .shared
            .element_types
            .iter()
            .map(|e| (e.table.clone(), Vec::new()))
            .collect();
        let mut visited = HashSet::new();
        self.collect_members(
            &self.info.rid,
            recurse,
            limit,
            &mut visited,
            &mut |table, origin, rows| {
                if let Some(list) = members.get_mut(table) {
                    list.extend(rows.into_iter().map(|row| (origin.clone(), row)));
                }
            },
        )?;
        Ok(members)
    }

    fn collect_members(
        &self,
        rid: &Rid,
        recurse: bool,
        limit: Option<usize>,
        visited: &mut HashSet<Rid>,
        out: &mut dyn FnMut(&TableName, &Rid, Vec<Row>),
    ) -> Result<()> {
        if !visited.insert(rid.clone()) {
            return Ok(());
        }
        for element in &self.shared.element_types {
            let mut rows = self.member_rows(element, rid, limit)?;
            if element.table == dataset_table() {
                rows.retain(|r| r.rid().as_ref() != Some(&self.info.rid));
            }
            out(&element.table, rid, rows);
        }
        if recurse {
            for child in super::dataset::nested_rids(&self.shared, rid)? {
                self.collect_members(&child, recurse, limit, visited, out)?;
            }
        }
        Ok(())
    }

    fn member_rows(
        &self,
        element: &ElementType,
        rid: &Rid,
        limit: Option<usize>,
    ) -> Result<Vec<Row>> {
        if limit == Some(0) || element.links.is_empty() {
            return Ok(Vec::new());
        }
        let index = self.index();
        let mut subqueries: Vec<String> = Vec::new();
        for l in &element.links {
            let a = index.layout(&l.association)?;
            if let (Some(m), Some(d)) = (a.col(&l.member_column), a.col(&l.dataset_column)) {
                subqueries.push(format!("SELECT {m} FROM {} WHERE {d} = ?1", a.sql_name));
            }
        }
        let Some(key) = index.col(&element.table, "RID") else {
            return Ok(Vec::new());
        };
        if subqueries.is_empty() {
            return Ok(Vec::new());
        }
        let limit_sql = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        index.select_rows(
            &element.table,
            &format!(
                "WHERE {key} IN ({}) ORDER BY {key}{limit_sql}",
                subqueries.join(" UNION ")
            ),
            [rid.as_str()],
        )
    }

    /// Element types of this bag: tables whose rows can be dataset members (sorted).
    pub fn list_dataset_element_types(&self) -> Vec<TableName> {
        self.shared
            .element_types
            .iter()
            .map(|e| e.table.clone())
            .collect()
    }

    /// Rows of `table` reachable from this dataset and all its descendants through member
    /// rows and FK paths in either direction (`reference/api-semantics.md` §7.1), unique and
    /// sorted by RID. E.g. the Images of member Subjects.
    pub fn reachable_rows(&self, table: &TableName) -> Result<Vec<Row>> {
        let fragment = self.reachable_rids_sql(table)?;
        let Some(key) = self.index().col(table, "RID") else {
            return Ok(Vec::new());
        };
        self.index().select_rows(
            table,
            &format!("WHERE {key} IN ({fragment}) ORDER BY {key}"),
            [],
        )
    }

    /// A self-contained SQL query (`SELECT "RID" …`, no parameters) for the RIDs of `table`
    /// reachable from this dataset and its descendants; embed it as `… IN (<fragment>)`.
    pub(crate) fn reachable_rids_sql(&self, table: &TableName) -> Result<String> {
        // Fails with TableNotFound for a table the model lacks.
        self.index().layout(table)?;
        let rids = self.dataset_and_descendants()?;
        Ok(reachable_rids_sql(
            &self.shared.model,
            self.index(),
            table,
            &rids,
        ))
    }

    /// The RIDs of `table` reachable from this dataset and its descendants (the set
    /// [`reachable_rids_sql`](Self::reachable_rids_sql) selects), queried once per dataset and
    /// table and then kept for the life of the opened bag.
    pub(crate) fn reachable_rid_set(&self, table: &TableName) -> Result<ReachableRids> {
        let key = (self.info.rid.clone(), table.clone());
        let cached = self
            .shared
            .reachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(set) = cached {
            return Ok(set);
        }
        // Not holding the lock while querying: two threads may both compute the same set,
        // which is harmless (equal results), and neither waits on the other's query.
        let sql = self.reachable_rids_sql(table)?;
        let set: ReachableRids = Arc::new(self.query_strings(&sql, [])?.into_iter().collect());
        self.shared
            .reachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Arc::clone(&set));
        Ok(set)
    }

    /// First column of each result row as text (NULLs skipped).
    pub(crate) fn query_strings<P: Params>(&self, sql: &str, params: P) -> Result<Vec<String>> {
        self.index().query_strings(sql, params)
    }
}
