//! Reachability: which rows of a table belong to a dataset through its members and FK paths,
//! as SQL over the index.
//!
//! Path discovery follows the reference walker (`DenormalizePlanner._schema_to_paths`):
//! start at `deriva-ml:Dataset`, follow foreign keys in both directions within the domain
//! schemas and `deriva-ml`, enter vocabularies but never leave them, never repeat a table,
//! skip `Dataset_Dataset` and `Execution`, never step straight back to the table we came
//! from, and never enter a Dataset association (`Dataset_<T>`) except from `Dataset` itself
//! (so `Subject → Dataset_Subject → Dataset` cannot loop back). The rows of the target are
//! the union over every such path ending at it, with `Dataset` restricted to the dataset and
//! its descendants. Unlike the reference, the result is deduplicated and sorted by RID.

use std::collections::BTreeSet;

use deriva_bag_features::model::{is_system_schema, ML_SCHEMA};
use deriva_bag_features::{CatalogModel, ForeignKey, Table, TableName};

use super::query::Index;
use super::schema::TableLayout;

/// Tables the walker never enters (by bare name, as the reference compares them).
pub(crate) const SKIP_TABLES: [&str; 2] = ["Dataset_Dataset", "Execution"];

/// Upper bound on explored path prefixes; a pathological schema stops here with a warning.
const MAX_STEPS: usize = 200_000;

/// `deriva-ml:Dataset`.
pub(crate) fn dataset_table() -> TableName {
    TableName::new(ML_SCHEMA, "Dataset")
}

/// If `table` is a pure binary association (exactly two foreign keys that together cover all
/// non-system columns, with a unique key over exactly those columns), its two foreign keys.
pub(crate) fn pure_binary_association(table: &Table) -> Option<(&ForeignKey, &ForeignKey)> {
    let own: BTreeSet<&str> = table
        .non_system_columns()
        .map(|c| c.name.as_str())
        .collect();
    let fks: Vec<&ForeignKey> = table
        .foreign_keys
        .iter()
        .filter(|fk| fk.columns.iter().all(|c| own.contains(c.as_str())))
        .collect();
    if fks.len() != 2 {
        return None;
    }
    let covered: BTreeSet<&str> = fks
        .iter()
        .flat_map(|fk| fk.columns.iter().map(String::as_str))
        .collect();
    if covered != own {
        return None;
    }
    let keyed = table.keys.iter().any(|k| {
        let cols: BTreeSet<&str> = k.unique_columns.iter().map(String::as_str).collect();
        cols == covered
    });
    keyed.then_some((fks[0], fks[1]))
}

/// True for a pure binary association with one end at `deriva-ml:Dataset`.
pub(crate) fn is_dataset_association(table: &Table) -> bool {
    let ds = dataset_table();
    pure_binary_association(table)
        .is_some_and(|(a, b)| a.referenced_table == ds || b.referenced_table == ds)
}

struct Walker<'a> {
    model: &'a CatalogModel,
    target: &'a TableName,
    paths: Vec<Vec<TableName>>,
    steps: usize,
}

impl Walker<'_> {
    fn valid(&self, t: &TableName) -> bool {
        !is_system_schema(&t.schema) && self.model.table(t).is_some()
    }

    /// Neighbours by FK in either direction, deduplicated and sorted (determinism).
    fn arcs(&self, table: &Table) -> BTreeSet<TableName> {
        let mut out: BTreeSet<TableName> = table
            .foreign_keys
            .iter()
            .map(|fk| fk.referenced_table.clone())
            .collect();
        out.extend(
            self.model
                .referencing(&table.name)
                .map(|(t, _)| t.name.clone()),
        );
        out.retain(|t| self.valid(t));
        out
    }

    fn walk(&mut self, path: &mut Vec<TableName>) {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return;
        }
        let Some(root_name) = path.last().cloned() else {
            return;
        };
        if &root_name == self.target {
            self.paths.push(path.clone());
        }
        let Some(root) = self.model.table(&root_name) else {
            return;
        };
        if root.is_vocabulary() {
            return;
        }
        let parent = path.len().checked_sub(2).map(|i| path[i].clone());
        let ds = dataset_table();
        for child in self.arcs(root) {
            if SKIP_TABLES.contains(&child.table.as_str())
                || Some(&child) == parent.as_ref()
                || path.contains(&child)
            {
                continue;
            }
            let Some(child_table) = self.model.table(&child) else {
                continue;
            };
            if root_name != ds && is_dataset_association(child_table) {
                continue;
            }
            path.push(child);
            self.walk(path);
            path.pop();
        }
    }
}

/// Every walker path from `deriva-ml:Dataset` that ends at `target` (table lists).
pub(crate) fn paths_to(model: &CatalogModel, target: &TableName) -> Vec<Vec<TableName>> {
    let mut walker = Walker {
        model,
        target,
        paths: Vec::new(),
        steps: 0,
    };
    if model.table(&dataset_table()).is_some() {
        walker.walk(&mut vec![dataset_table()]);
    }
    if walker.steps > MAX_STEPS {
        tracing::warn!(table = %target, "FK path discovery stopped after {MAX_STEPS} steps; reachability may be incomplete");
    }
    walker.paths
}

/// `alias.col` or `(alias.a, alias.b, …)` with the layout's identifiers; `None` when the
/// table lacks one of the columns.
fn column_list(alias: &str, layout: &TableLayout, cols: &[String]) -> Option<String> {
    let list = cols
        .iter()
        .map(|c| layout.col(c).map(|sql| format!("{alias}.{sql}")))
        .collect::<Option<Vec<String>>>()?;
    Some(if list.len() == 1 {
        list[0].clone()
    } else {
        format!("({})", list.join(", "))
    })
}

/// SQL literal for a text value.
pub(crate) fn sql_text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `SELECT "RID" …` giving the RIDs of `target` reachable from the datasets `dataset_rids`
/// (already including descendants). Self-contained (the RIDs are inlined as literals), so it
/// can be embedded as `… IN (<fragment>)`.
pub(crate) fn reachable_rids_sql(
    model: &CatalogModel,
    index: &Index,
    target: &TableName,
    dataset_rids: &[String],
) -> String {
    let ds_list = if dataset_rids.is_empty() {
        "SELECT NULL WHERE 0".to_string()
    } else {
        format!(
            "VALUES {}",
            dataset_rids
                .iter()
                .map(|r| format!("({})", sql_text(r)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut selects = Vec::new();
    for path in paths_to(model, target) {
        if let Some(sql) = path_sql(model, index, &path, &ds_list) {
            selects.push(sql);
        }
    }
    if selects.is_empty() {
        return "SELECT NULL WHERE 0".to_string();
    }
    selects.join(" UNION ")
}

/// RIDs of the last table of `path` reached along it.
fn path_sql(
    model: &CatalogModel,
    index: &Index,
    path: &[TableName],
    ds_list: &str,
) -> Option<String> {
    // Level 0: the dataset RIDs themselves (the path starts at Dataset).
    let mut current = ds_list.to_string();
    for pair in path.windows(2) {
        let (from, to) = (&pair[0], &pair[1]);
        let from_t = model.table(from)?;
        let to_t = model.table(to)?;
        let (from_l, to_l) = (index.layout(from).ok()?, index.layout(to).ok()?);
        let (from_sql, from_rid) = (&from_l.sql_name, from_l.col("RID")?);
        let mut conds = Vec::new();
        // from.fk -> to.ref
        for fk in from_t
            .foreign_keys
            .iter()
            .filter(|fk| &fk.referenced_table == to)
        {
            conds.push(format!(
                "{} IN (SELECT {} FROM {from_sql} AS f WHERE f.{from_rid} IN ({current}))",
                column_list("t", to_l, &fk.referenced_columns)?,
                column_list("f", from_l, &fk.columns)?,
            ));
        }
        // to.fk -> from.ref
        for fk in to_t
            .foreign_keys
            .iter()
            .filter(|fk| &fk.referenced_table == from)
        {
            conds.push(format!(
                "{} IN (SELECT {} FROM {from_sql} AS f WHERE f.{from_rid} IN ({current}))",
                column_list("t", to_l, &fk.columns)?,
                column_list("f", from_l, &fk.referenced_columns)?,
            ));
        }
        if conds.is_empty() {
            return None;
        }
        current = format!(
            "SELECT t.{} FROM {} AS t WHERE {}",
            to_l.col("RID")?,
            to_l.sql_name,
            conds.join(" OR ")
        );
    }
    if path.len() == 1 {
        // The target is Dataset itself.
        let l = index.layout(&path[0]).ok()?;
        let rid = l.col("RID")?;
        current = format!(
            "SELECT t.{rid} FROM {} AS t WHERE t.{rid} IN ({current})",
            l.sql_name
        );
    }
    Some(current)
}

#[cfg(all(test, feature = "fixtures"))]
mod tests {
    use super::*;

    fn fixture_model() -> CatalogModel {
        let tmp = tempfile::tempdir().unwrap();
        let bag = crate::fixtures::small_bag(tmp.path()).unwrap();
        let bytes = std::fs::read(bag.path.join("data/schema.json")).unwrap();
        CatalogModel::from_json(&bytes).unwrap()
    }

    fn names(paths: &[Vec<TableName>]) -> Vec<String> {
        paths
            .iter()
            .map(|p| {
                p.iter()
                    .map(|t| t.table.as_str())
                    .collect::<Vec<_>>()
                    .join(">")
            })
            .collect()
    }

    #[test]
    fn image_is_reached_through_its_membership_and_through_subjects() {
        let model = fixture_model();
        let paths = paths_to(&model, &TableName::new("demo", "Image"));
        assert_eq!(
            names(&paths),
            [
                "Dataset>Dataset_Image>Image",
                "Dataset>Dataset_Subject>Subject>Image"
            ]
        );
    }

    #[test]
    fn walker_skips_nesting_executions_and_never_leaves_a_vocabulary() {
        let model = fixture_model();
        let all: Vec<TableName> = model.tables().map(|t| t.name.clone()).collect();
        for target in &all {
            for path in paths_to(&model, target) {
                let inner = &path[..path.len() - 1];
                assert!(
                    !path.iter().any(|t| SKIP_TABLES.contains(&t.table.as_str())),
                    "{path:?}"
                );
                assert!(
                    inner
                        .iter()
                        .all(|t| !model.table(t).unwrap().is_vocabulary()),
                    "{path:?}"
                );
                // A Dataset association is only ever entered straight from Dataset.
                for (i, t) in path.iter().enumerate().skip(2) {
                    assert!(
                        !is_dataset_association(model.table(t).unwrap()),
                        "{path:?} at {i}"
                    );
                }
            }
        }
        assert!(paths_to(&model, &TableName::new("deriva-ml", "Dataset_Dataset")).is_empty());
    }

    #[test]
    fn pure_binary_associations_are_found_by_structure() {
        let model = fixture_model();
        let t = |s: &str, n: &str| model.table(&TableName::new(s, n)).unwrap();
        assert!(is_dataset_association(t("demo", "Dataset_Image")));
        assert!(is_dataset_association(t("deriva-ml", "Dataset_Dataset")));
        // Three non-system columns: not pure.
        assert!(pure_binary_association(t("deriva-ml", "Dataset_Execution")).is_none());
        assert!(pure_binary_association(t("demo", "Image")).is_none());
    }

    #[test]
    fn rid_literals_are_quoted_safely() {
        assert_eq!(sql_text("1-D000"), "'1-D000'");
        assert_eq!(sql_text("a'b"), "'a''b'");
    }
}
