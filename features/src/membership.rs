//! Dataset membership in a catalog model: which tables hold dataset members (element types
//! and their association tables) and which foreign-key paths lead from `deriva-ml:Dataset` to a
//! table (reachability: members, and rows reached from them by foreign keys). Pure model logic, shared by the
//! bag index (`deriva-bag-core`) and the live catalog dataset (`deriva-catalog-client`), so both
//! answer `list_dataset_members` and `reachable_rows` from the same rules.
//!
//! Path discovery follows the reference walker (`DenormalizePlanner._schema_to_paths`):
//! start at `deriva-ml:Dataset`, follow foreign keys in both directions within the domain
//! schemas and `deriva-ml`, enter vocabularies but never leave them, never repeat a table,
//! skip `Dataset_Dataset` and `Execution`, never step straight back to the table we came
//! from, and never enter a Dataset association (`Dataset_<T>`) except from `Dataset` itself
//! (so `Subject → Dataset_Subject → Dataset` cannot loop back).
//!
//! ```
//! use deriva_bag_features::membership::{element_types, paths_to};
//! use deriva_bag_features::TableName;
//! let model = deriva_bag_features::testing::demo_model().unwrap();
//! let image = TableName::new("demo", "Image");
//! assert!(element_types(&model).iter().any(|e| e.table == image));
//! let paths = paths_to(&model, &image);
//! assert!(paths.iter().all(|p| p[0] == TableName::new("deriva-ml", "Dataset") && p.last() == Some(&image)));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{is_system_schema, ML_SCHEMA};
use crate::{CatalogModel, ForeignKey, Table, TableName};

/// Tables the walker never enters (by bare name, as the reference compares them).
pub const SKIP_TABLES: [&str; 2] = ["Dataset_Dataset", "Execution"];

/// Upper bound on explored path prefixes; a pathological schema stops here with a warning.
const MAX_STEPS: usize = 200_000;

/// `deriva-ml:Dataset`.
pub fn dataset_table() -> TableName {
    TableName::new(ML_SCHEMA, "Dataset")
}

/// If `table` is a pure binary association (exactly two foreign keys that together cover all
/// non-system columns, with a unique key over exactly those columns), its two foreign keys.
pub fn pure_binary_association(table: &Table) -> Option<(&ForeignKey, &ForeignKey)> {
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
pub fn is_dataset_association(table: &Table) -> bool {
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
pub fn paths_to(model: &CatalogModel, target: &TableName) -> Vec<Vec<TableName>> {
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

/// How a dataset links to members of one element table: an association table with a column
/// holding the dataset RID and one holding the member's RID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLink {
    /// The association table, e.g. `demo:Dataset_Image`.
    pub association: TableName,
    /// Its column holding the dataset RID.
    pub dataset_column: String,
    /// Its column holding the member's RID.
    pub member_column: String,
}

/// An element type: a table whose rows can be dataset members, and its association tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementType {
    /// The element table.
    pub table: TableName,
    /// How datasets link to its rows (sorted by association table).
    pub links: Vec<MemberLink>,
}

/// Element types: tables T (in a domain schema, or `Dataset` itself) joined to
/// `deriva-ml:Dataset` by a pure binary association whose FKs reference `RID`
/// (DerivaML's `Dataset_<Type>` tables). Sorted by table name; associations per type sorted.
pub fn element_types(model: &CatalogModel) -> Vec<ElementType> {
    let ds = dataset_table();
    let mut found: BTreeMap<TableName, Vec<MemberLink>> = BTreeMap::new();
    for table in model.tables() {
        if is_system_schema(&table.name.schema) {
            continue;
        }
        let Some((a, b)) = pure_binary_association(table) else {
            continue;
        };
        let single_rid =
            |fk: &ForeignKey| fk.columns.len() == 1 && fk.referenced_columns == ["RID"];
        if !single_rid(a) || !single_rid(b) {
            continue;
        }
        let (parent, member) = if a.referenced_table == ds && b.referenced_table == ds {
            // Dataset_Dataset: the column named `Dataset` is the parent, the other the child.
            if a.columns[0] == "Dataset" {
                (a, b)
            } else if b.columns[0] == "Dataset" {
                (b, a)
            } else {
                continue;
            }
        } else if a.referenced_table == ds {
            (a, b)
        } else if b.referenced_table == ds {
            (b, a)
        } else {
            continue;
        };
        let target = &member.referenced_table;
        let domain = target.schema != ML_SCHEMA && !is_system_schema(&target.schema);
        if !(domain || *target == ds) {
            continue;
        }
        found.entry(target.clone()).or_default().push(MemberLink {
            association: table.name.clone(),
            dataset_column: parent.columns[0].clone(),
            member_column: member.columns[0].clone(),
        });
    }
    found
        .into_iter()
        .map(|(table, mut links)| {
            links.sort_by(|x, y| x.association.cmp(&y.association));
            ElementType { table, links }
        })
        .collect()
}
