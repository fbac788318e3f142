//! Split leakage: the same row in two splits, FK parents (e.g. Subjects) whose members fall
//! in different splits, and the same file content under different RIDs in different splits.
//!
//! Leakage is judged on membership (each split's members, its nested datasets' included):
//! the rows someone put into a split. A parent leaks when two *different* members of it sit
//! in different splits, so a member that is itself in two splits is reported once, as a
//! shared member, not again through its parent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deriva_bag_features::model::{is_system_schema, ML_SCHEMA};
use deriva_bag_features::{DatasetLike, Rid, TableName};
use serde::Serialize;

use super::assets::AssetFile;
use super::SplitData;
use crate::Result;

/// Everything shared between splits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Leakage {
    /// Rows that are members of two or more splits, by table then RID.
    pub members: Vec<SharedMember>,
    /// FK parents whose different members fall in different splits, by table then RID.
    pub parents: Vec<ParentLeak>,
    /// Asset files with one content under different RIDs in different splits, by table then
    /// digest.
    pub duplicate_content: Vec<DuplicateContent>,
}

/// A row that is a member of several splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedMember {
    /// The element table, `schema:table`.
    pub table: String,
    /// The row.
    pub rid: Rid,
    /// The splits (RIDs) it is a member of, in split order.
    pub splits: Vec<Rid>,
}

/// The members of one split that belong to one leaking parent (or share one content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitMembers {
    /// The split's RID.
    pub split: Rid,
    /// Member RIDs, sorted.
    pub members: Vec<Rid>,
}

/// An FK parent (e.g. a Subject) whose members fall in different splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParentLeak {
    /// The parent table, `schema:table`.
    pub table: String,
    /// The parent row.
    pub rid: Rid,
    /// The member table and column holding the FK, `schema:table.column`.
    pub via: String,
    /// Its members per split, in split order.
    pub splits: Vec<SplitMembers>,
}

/// One file content found under different RIDs in different splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateContent {
    /// The asset table, `schema:table`.
    pub table: String,
    /// The content digest, `md5:<hex>` (or `sha256:<hex>`).
    pub digest: String,
    /// The RIDs with this content per split, in split order.
    pub splits: Vec<SplitMembers>,
}

/// Split indexes a member RID is in.
type Splits = BTreeSet<usize>;
/// Members (member RID → its splits) grouped under one key (a parent, a digest).
type Groups<'a, K> = BTreeMap<K, BTreeMap<&'a str, &'a Splits>>;

pub(crate) fn find<D: DatasetLike>(
    dataset: &D,
    splits: &[SplitData<D>],
    files: &BTreeMap<TableName, HashMap<String, AssetFile>>,
) -> Result<Leakage> {
    let tables: BTreeSet<&TableName> = splits.iter().flat_map(|s| s.members.keys()).collect();
    let mut leakage = Leakage::default();
    for table in tables {
        // RID → splits it is a member of.
        let mut membership: BTreeMap<&str, Splits> = BTreeMap::new();
        for (i, split) in splits.iter().enumerate() {
            for row in split.members.get(table).into_iter().flatten() {
                if let Some(rid) = row.text("RID") {
                    membership.entry(rid).or_default().insert(i);
                }
            }
        }
        for (rid, at) in &membership {
            if at.len() >= 2 {
                leakage.members.push(SharedMember {
                    table: table.to_string(),
                    rid: Rid::from(*rid),
                    splits: at.iter().map(|&i| splits[i].info.rid.clone()).collect(),
                });
            }
        }
        parents(dataset, splits, table, &membership, &mut leakage.parents);

        let mut by_digest: Groups<&str> = BTreeMap::new();
        let table_files = files.get(table);
        for (rid, at) in &membership {
            let file = table_files.and_then(|f| f.get(*rid));
            if let Some(digest) = file.and_then(AssetFile::digest) {
                by_digest.entry(digest).or_default().insert(rid, at);
            }
        }
        for (digest, members) in by_digest {
            if leaks(&members) {
                leakage.duplicate_content.push(DuplicateContent {
                    table: table.to_string(),
                    digest: digest.to_string(),
                    splits: per_split(splits, &members),
                });
            }
        }
    }
    leakage
        .parents
        .sort_by(|a, b| (&a.table, &a.rid).cmp(&(&b.table, &b.rid)));
    Ok(leakage)
}

/// Parents reached from `table`'s members by a single-column FK to the parent's RID, where
/// the parent is a domain table that is not a vocabulary (e.g. `Image.Subject → Subject`).
fn parents<'a, D: DatasetLike>(
    dataset: &D,
    splits: &'a [SplitData<D>],
    table: &TableName,
    membership: &'a BTreeMap<&'a str, Splits>,
    out: &mut Vec<ParentLeak>,
) {
    let model = dataset.model();
    let Some(def) = model.table(table) else {
        return;
    };
    for fk in &def.foreign_keys {
        let parent = &fk.referenced_table;
        let is_parent = fk.columns.len() == 1
            && fk.referenced_columns.first().map(String::as_str) == Some("RID")
            && parent != table
            && parent.schema != ML_SCHEMA
            && !is_system_schema(&parent.schema)
            && model.table(parent).is_some_and(|t| !t.is_vocabulary());
        if !is_parent {
            continue;
        }
        let column = &fk.columns[0];
        let mut groups: Groups<&str> = BTreeMap::new();
        for split in splits {
            for row in split.members.get(table).into_iter().flatten() {
                let (Some(rid), Some(key)) = (row.text("RID"), row.text(column)) else {
                    continue;
                };
                if let Some((rid, at)) = membership.get_key_value(rid) {
                    groups.entry(key).or_default().insert(rid, at);
                }
            }
        }
        for (rid, members) in groups {
            if leaks(&members) {
                out.push(ParentLeak {
                    table: parent.to_string(),
                    rid: Rid::from(rid),
                    via: format!("{table}.{column}"),
                    splits: per_split(splits, &members),
                });
            }
        }
    }
}

/// Whether two different members sit in different splits: false for a single member, and
/// when every member is in the same one split.
fn leaks(members: &BTreeMap<&str, &Splits>) -> bool {
    let mut sets = members.values();
    let Some(first) = sets.next() else {
        return false;
    };
    members.len() >= 2 && !(first.len() == 1 && sets.all(|s| s == first))
}

fn per_split<D>(splits: &[SplitData<D>], members: &BTreeMap<&str, &Splits>) -> Vec<SplitMembers> {
    splits
        .iter()
        .enumerate()
        .filter_map(|(i, split)| {
            let rids: Vec<Rid> = members
                .iter()
                .filter(|(_, at)| at.contains(&i))
                .map(|(rid, _)| Rid::from(*rid))
                .collect();
            (!rids.is_empty()).then(|| SplitMembers {
                split: split.info.rid.clone(),
                members: rids,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaks_with(members: &[(&str, &[usize])]) -> bool {
        let sets: Vec<(&str, Splits)> = members
            .iter()
            .map(|(rid, at)| (*rid, at.iter().copied().collect()))
            .collect();
        leaks(&sets.iter().map(|(rid, at)| (*rid, at)).collect())
    }

    #[test]
    fn a_parent_leaks_only_when_two_different_members_sit_in_different_splits() {
        assert!(!leaks_with(&[]));
        // One member in two splits is a shared member, not a parent leak.
        assert!(!leaks_with(&[("1-I005", &[0, 1])]));
        assert!(!leaks_with(&[("1-I001", &[0]), ("1-I002", &[0])]));
        assert!(leaks_with(&[("1-I001", &[0]), ("1-I004", &[1])]));
        assert!(leaks_with(&[("1-I001", &[0]), ("1-I005", &[0, 1])]));
    }
}
