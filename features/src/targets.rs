//! Target resolution: the one implementation of `targets` / `missing` shared by
//! `restructure_assets` and the framework adapters.
//!
//! A target name is resolved, in this order (a deliberate departure from the
//! Python reference, which probes features first and never follows a foreign key):
//!
//! 1. a **column** of the element table (e.g. `Subject` on `Image`);
//! 2. a **feature** on the element table (e.g. `Glaucoma` on `Image`);
//! 3. a **feature on a table the element references by a foreign key** (e.g. a `Subject`
//!    feature for an `Image`, read through `Image.Subject`).
//!
//! A name that matches none of these is an error when the targets are resolved, naming the
//! name, the table and what exists — never a silent `unknown/` directory.
//!
//! ```
//! use deriva_bag_features::{Missing, Selector, Targets};
//! let targets = Targets::new().with("Glaucoma", Selector::Newest).with_name("Subject");
//! assert_eq!(targets.len(), 2);
//! assert_eq!(targets.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["Glaucoma", "Subject"]);
//! assert_eq!("skip".parse::<Missing>().unwrap(), Missing::Skip);
//! assert_eq!(Targets::names(["Glaucoma"]).iter().next().unwrap().0, "Glaucoma");
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use crate::{DatasetLike, Error, Feature, FeatureRecord, Rid, Row, Selector, TableName, Value};

/// How many unlabeled or conflicting RIDs an error message lists before "and K more".
pub const MAX_LISTED_RIDS: usize = 20;

/// What to do with an element that has no value for one or more targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Missing {
    /// Keep the element with a missing value (`None`); restructure files it under `unknown/`.
    Unknown,
    /// Drop the element.
    Skip,
    /// Fail before anything is written or yielded, listing the unlabeled RIDs.
    Error,
}

impl FromStr for Missing {
    type Err = Error;

    /// Parses `unknown`, `skip` or `error` (the CLI's and DerivaML's spelling).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "unknown" => Ok(Missing::Unknown),
            "skip" => Ok(Missing::Skip),
            "error" => Ok(Missing::Error),
            other => Err(Error::Invalid(format!(
                "missing policy {other:?} is not one of unknown, skip, error"
            ))),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missing::Unknown => "unknown",
            Missing::Skip => "skip",
            Missing::Error => "error",
        })
    }
}

/// The requested targets: names in order, each with an optional selector (DerivaML's
/// list form `["Glaucoma"]` and dict form `{"Glaucoma": select_newest}` in one type).
///
/// Adding a name twice replaces its selector and keeps its first position.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    entries: Vec<(String, Option<Selector>)>,
}

impl Targets {
    /// No targets (no grouping levels; adapters yield no target).
    pub fn new() -> Self {
        Targets::default()
    }

    /// Targets given by name, without selectors (the list form).
    pub fn names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        names
            .into_iter()
            .fold(Targets::new(), |t, name| t.with_name(name))
    }

    /// Adds `name` with a selector that reduces several values to one.
    pub fn with(self, name: impl Into<String>, selector: Selector) -> Self {
        self.insert(name.into(), Some(selector))
    }

    /// Adds `name` without a selector.
    pub fn with_name(self, name: impl Into<String>) -> Self {
        self.insert(name.into(), None)
    }

    fn insert(mut self, name: String, selector: Option<Selector>) -> Self {
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = selector,
            None => self.entries.push((name, selector)),
        }
        self
    }

    /// Whether no target was requested.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `(name, selector)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&Selector>)> {
        self.entries.iter().map(|(n, s)| (n.as_str(), s.as_ref()))
    }
}

impl<S: Into<String>> FromIterator<S> for Targets {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Targets::names(iter)
    }
}

/// The two checks restructure's `enforce_vocabulary` switches together, kept apart so that
/// a float feature (a regression target) can be used without giving up the conflict check.
/// [`resolve_targets`] is the one place that applies both.
///
/// * `require_vocabulary`: a feature target must have a vocabulary term column (restructure
///   needs a term to name a class folder);
/// * `refuse_conflicts`: several differing values for one element and no selector (annotators
///   disagree) are an error listing the RIDs ([`Error::ConflictingTargetValues`]); off, the
///   first value by RCT is taken (ties: the smaller record RID).
///
/// `TargetRules::from(bool)` is restructure's `enforce_vocabulary`: both on, or both off.
/// The adapters default to [`TargetRules::ADAPTERS`]: conflicts refused, any feature allowed
/// (a regression on `targets=["IOP_Reading"]`, a float feature, works as written).
///
/// ```
/// use deriva_bag_features::TargetRules;
/// assert_eq!(TargetRules::from(true), TargetRules { require_vocabulary: true, refuse_conflicts: true });
/// assert_eq!(TargetRules::from(false), TargetRules { require_vocabulary: false, refuse_conflicts: false });
/// assert!(TargetRules::ADAPTERS.refuse_conflicts && !TargetRules::ADAPTERS.require_vocabulary);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TargetRules {
    /// A feature target must have a vocabulary term column.
    pub require_vocabulary: bool,
    /// Differing values without a selector are an error (else the first by RCT wins).
    pub refuse_conflicts: bool,
}

impl TargetRules {
    /// The adapters' default: refuse conflicts, accept any feature (floats, free text).
    pub const ADAPTERS: TargetRules = TargetRules {
        require_vocabulary: false,
        refuse_conflicts: true,
    };
}

impl From<bool> for TargetRules {
    /// Restructure's `enforce_vocabulary`: both checks on or both off.
    fn from(enforce_vocabulary: bool) -> Self {
        TargetRules {
            require_vocabulary: enforce_vocabulary,
            refuse_conflicts: enforce_vocabulary,
        }
    }
}

/// What a target name resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    /// A column of the element row.
    Column(String),
    /// A feature whose target is the element table.
    Feature(Feature),
    /// A feature on the table that the element's `fk_column` references.
    FeatureViaFk {
        /// The element-table column holding the foreign key (e.g. `Subject`).
        fk_column: String,
        /// The feature on the referenced table.
        feature: Feature,
    },
}

/// One resolved target: its name, what it is, and its selector.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    /// The name as requested.
    pub name: String,
    /// Column, feature or feature through a foreign key.
    pub kind: TargetKind,
    /// The selector given with the name, if any.
    pub selector: Option<Selector>,
}

impl ResolvedTarget {
    /// The feature behind this target, if it is one.
    pub fn feature(&self) -> Option<&Feature> {
        match &self.kind {
            TargetKind::Column(_) => None,
            TargetKind::Feature(f) | TargetKind::FeatureViaFk { feature: f, .. } => Some(f),
        }
    }

    /// The default text of a value of this target (a directory name in restructure):
    /// a column's value as text; for a feature, its first non-NULL term column, else its first
    /// non-NULL value or asset column (in feature-table order). `None` when there is nothing
    /// to show.
    pub fn default_label(&self, value: &TargetValue) -> Option<String> {
        match (value, self.feature()) {
            (TargetValue::Feature(record), Some(feature)) => {
                let term = feature.term_columns();
                let others = feature
                    .columns
                    .iter()
                    .filter(|c| !term.contains(&c.name))
                    .map(|c| c.name.clone());
                term.iter()
                    .cloned()
                    .chain(others)
                    .find_map(|c| record.get(&c).and_then(scalar_text))
            }
            _ => value.label(),
        }
    }
}

/// The value of one target for one element.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetValue {
    /// A column target: the element row's (non-NULL) value.
    Column {
        /// The column name.
        name: String,
        /// Its value.
        value: Value,
    },
    /// A feature target: the selected record (for a feature through a foreign key, the record
    /// about the referenced row, e.g. the Subject).
    Feature(FeatureRecord),
}

impl TargetValue {
    /// The value's default text: a column value as text; for a record, its first non-NULL
    /// scalar field other than the provenance fields and the target column (for a one-term
    /// feature, the term name).
    pub fn label(&self) -> Option<String> {
        match self {
            TargetValue::Column { value, .. } => Some(value.to_string()),
            TargetValue::Feature(record) => record
                .fields
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "RID" | "RCT" | "RMT" | "RCB" | "RMB" | "Execution" | "Feature_Name"
                    ) && **k != record.target_column
                })
                .find_map(|(_, v)| scalar_text(v)),
        }
    }

    /// The record, for a feature target.
    pub fn record(&self) -> Option<&FeatureRecord> {
        match self {
            TargetValue::Feature(r) => Some(r),
            TargetValue::Column { .. } => None,
        }
    }

    /// The value, for a column target.
    pub fn value(&self) -> Option<&Value> {
        match self {
            TargetValue::Column { value, .. } => Some(value),
            TargetValue::Feature(_) => None,
        }
    }
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One kept element with the values of every target, in target order (`None` = missing,
/// only under [`Missing::Unknown`]).
#[derive(Debug, Clone)]
pub struct ResolvedElement {
    /// The element's RID.
    pub rid: Rid,
    /// The element row.
    pub row: Row,
    /// One entry per target.
    pub values: Vec<Option<TargetValue>>,
}

impl ResolvedElement {
    /// Whether some target has no value.
    pub fn has_missing(&self) -> bool {
        self.values.iter().any(Option::is_none)
    }
}

/// The result of [`resolve_targets`]: the resolved targets and the kept elements, in the
/// order they were given, each with its target values.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The targets in request order.
    pub targets: Vec<ResolvedTarget>,
    /// Kept elements in input order (minus skipped ones under [`Missing::Skip`]).
    pub elements: Vec<ResolvedElement>,
}

/// The brief's name for a [`Resolution`]: per element RID, the values of every target.
pub type ResolvedTargets = Resolution;

impl Resolution {
    /// The values of the element `rid`, if it was kept.
    pub fn values_for(&self, rid: &Rid) -> Option<&[Option<TargetValue>]> {
        self.elements
            .iter()
            .find(|e| &e.rid == rid)
            .map(|e| e.values.as_slice())
    }
}

/// Resolves each target name against `element_table` (column, then feature on the table,
/// then feature through a foreign key; see the module docs). Touches only the model and the
/// feature list, so it is cheap and fails early.
///
/// With [`TargetRules::require_vocabulary`] (restructure's `enforce_vocabulary`), a feature
/// target must have at least one vocabulary term column (only vocabulary features make class
/// folders), as DerivaML does.
pub fn classify_targets<D: DatasetLike>(
    dataset: &D,
    element_table: &TableName,
    targets: &Targets,
    rules: impl Into<TargetRules>,
) -> Result<Vec<ResolvedTarget>, Error> {
    let rules = rules.into();
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let model = dataset.model();
    let table = model
        .table(element_table)
        .ok_or_else(|| Error::TableNotFound {
            name: element_table.to_string(),
            known: model.tables().map(|t| t.name.to_string()).collect(),
        })?;
    let all_features = dataset.find_features(None)?;
    let mut out = Vec::with_capacity(targets.len());
    for (name, selector) in targets.iter() {
        let kind = if table.column(name).is_some() {
            TargetKind::Column(name.to_string())
        } else if let Some(f) = all_features
            .iter()
            .find(|f| &f.target_table == element_table && f.name == name)
        {
            TargetKind::Feature(f.clone())
        } else {
            // Features on tables the element references by a single-column FK.
            let via: Vec<(String, &Feature)> = table
                .foreign_keys
                .iter()
                .filter(|fk| fk.columns.len() == 1)
                .flat_map(|fk| {
                    all_features
                        .iter()
                        .filter(move |f| f.target_table == fk.referenced_table && f.name == name)
                        .map(move |f| (fk.columns[0].clone(), f))
                })
                .collect();
            match via.as_slice() {
                [(fk_column, feature)] => TargetKind::FeatureViaFk {
                    fk_column: fk_column.clone(),
                    feature: (*feature).clone(),
                },
                [] => {
                    return Err(unknown_target(name, table, &all_features, element_table));
                }
                several => {
                    return Err(Error::Invalid(format!(
                        "target {name:?} on table {element_table} is ambiguous: it is a feature \
                         on several referenced tables via columns {}",
                        several
                            .iter()
                            .map(|(c, f)| format!("{c} -> {}", f.target_table))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        };
        if rules.require_vocabulary {
            if let TargetKind::Feature(f) | TargetKind::FeatureViaFk { feature: f, .. } = &kind {
                if f.term_columns().is_empty() {
                    return Err(Error::Invalid(format!(
                        "feature {:?} on table {} has no controlled vocabulary term columns; \
                         only vocabulary-based features can be used as targets when \
                         enforce_vocabulary (require_vocabulary) is on (turn it off, and use a \
                         target_transform to name the value)",
                        f.name, f.target_table
                    )));
                }
            }
        }
        out.push(ResolvedTarget {
            name: name.to_string(),
            kind,
            selector: selector.cloned(),
        });
    }
    Ok(out)
}

fn unknown_target(
    name: &str,
    table: &crate::Table,
    all_features: &[Feature],
    element_table: &TableName,
) -> Error {
    let columns: Vec<String> = table.non_system_columns().map(|c| c.name.clone()).collect();
    let mut features: Vec<String> = all_features
        .iter()
        .filter(|f| &f.target_table == element_table)
        .map(|f| f.name.clone())
        .collect();
    for fk in table.foreign_keys.iter().filter(|fk| fk.columns.len() == 1) {
        features.extend(
            all_features
                .iter()
                .filter(|f| f.target_table == fk.referenced_table)
                .map(|f| format!("{} (via {})", f.name, fk.columns[0])),
        );
    }
    Error::UnknownTarget {
        name: name.to_string(),
        table: element_table.to_string(),
        columns,
        features,
    }
}

/// Resolves `targets` for `elements` (rows of `element_table`, in the order they will be
/// emitted) and applies the `missing` policy.
///
/// * Feature values come from `dataset.feature_values(table, name, selector)`.
/// * `rules` ([`TargetRules`]; a `bool` is restructure's `enforce_vocabulary`, both rules):
///   with `require_vocabulary` a feature target without a vocabulary term column is an error;
///   several differing values for one element (no selector, or a selector that keeps one
///   record per qualifier) are, with `refuse_conflicts`, an error listing the conflicting
///   record RIDs, else the first by RCT (instant; ties → smaller row RID). Identical values
///   from several records are not a conflict.
/// * [`Missing::Error`] fails listing up to [`MAX_LISTED_RIDS`] sorted unlabeled RIDs of
///   exactly `elements`; [`Missing::Skip`] drops them; [`Missing::Unknown`] keeps them with
///   `None` for the missing targets.
///
/// The result keeps the input order. Elements without a `RID` are an error.
pub fn resolve_targets<D: DatasetLike>(
    dataset: &D,
    element_table: &TableName,
    elements: &[Row],
    targets: &Targets,
    missing: Missing,
    rules: impl Into<TargetRules>,
) -> Result<Resolution, Error> {
    let rules = rules.into();
    let resolved = classify_targets(dataset, element_table, targets, rules)?;
    let element_table_text = element_table.to_string();
    let rids: Vec<Rid> = elements
        .iter()
        .map(|row| {
            row.rid().ok_or_else(|| {
                Error::Invalid(format!(
                    "a row of {element_table_text} has no RID: {}",
                    row.to_json()
                ))
            })
        })
        .collect::<Result<_, _>>()?;

    // Per target, the value of every element (index-aligned with `elements`).
    let mut columns: Vec<Vec<Option<TargetValue>>> = Vec::with_capacity(resolved.len());
    for target in &resolved {
        columns.push(values_of_target(
            dataset,
            element_table,
            target,
            elements,
            &rids,
            rules.refuse_conflicts,
        )?);
    }

    let missing_flags: Vec<bool> = (0..elements.len())
        .map(|i| columns.iter().any(|c| c[i].is_none()))
        .collect();
    let is_missing = |i: usize| missing_flags[i];
    if missing == Missing::Error {
        let mut unlabeled: Vec<&Rid> = (0..elements.len())
            .filter(|&i| is_missing(i))
            .map(|i| &rids[i])
            .collect();
        if !unlabeled.is_empty() {
            unlabeled.sort();
            unlabeled.dedup();
            let count = unlabeled.len();
            return Err(Error::UnlabeledElements {
                count,
                table: element_table_text,
                targets: resolved.iter().map(|t| t.name.clone()).collect(),
                listed: unlabeled
                    .iter()
                    .take(MAX_LISTED_RIDS)
                    .map(|r| (*r).clone())
                    .collect(),
                more: count.saturating_sub(MAX_LISTED_RIDS),
            });
        }
    }

    let mut kept = Vec::with_capacity(elements.len());
    for (i, row) in elements.iter().enumerate() {
        if missing == Missing::Skip && is_missing(i) {
            continue;
        }
        kept.push(ResolvedElement {
            rid: rids[i].clone(),
            row: row.clone(),
            values: columns.iter_mut().map(|c| c[i].take()).collect(),
        });
    }
    Ok(Resolution {
        targets: resolved,
        elements: kept,
    })
}

/// The value of one target for every element.
fn values_of_target<D: DatasetLike>(
    dataset: &D,
    element_table: &TableName,
    target: &ResolvedTarget,
    elements: &[Row],
    rids: &[Rid],
    refuse_conflicts: bool,
) -> Result<Vec<Option<TargetValue>>, Error> {
    let keys: Vec<Option<String>> = match &target.kind {
        TargetKind::Column(column) => {
            return Ok(elements
                .iter()
                .map(|row| match row.get(column) {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(TargetValue::Column {
                        name: column.clone(),
                        value: v.clone(),
                    }),
                })
                .collect());
        }
        TargetKind::Feature(_) => rids.iter().map(|r| Some(r.to_string())).collect(),
        TargetKind::FeatureViaFk { .. } => {
            let keys = TargetKeys::new(dataset, element_table, target)?;
            elements.iter().map(|row| keys.key(row)).collect()
        }
    };
    let wanted: HashSet<&str> = keys.iter().flatten().map(String::as_str).collect();
    let mut chosen: HashMap<String, FeatureRecord> = HashMap::new();
    for_each_target_record(
        dataset,
        target,
        refuse_conflicts,
        &mut |key| Ok(wanted.contains(key)),
        &mut |key, record| {
            // A target whose records are not consecutive keeps its first value.
            chosen.entry(key.to_string()).or_insert(record);
            Ok(())
        },
    )?;
    // Each chosen record moves to the last element that asks for it (the earlier ones get a
    // copy), so no record is held twice.
    let mut uses: HashMap<&str, usize> = HashMap::with_capacity(chosen.len());
    for k in keys.iter().flatten() {
        *uses.entry(k.as_str()).or_default() += 1;
    }
    Ok(keys
        .iter()
        .map(|k| {
            let k = k.as_deref()?;
            let left = uses.get_mut(k)?;
            *left -= 1;
            let record = if *left == 0 {
                chosen.remove(k)?
            } else {
                chosen.get(k)?.clone()
            };
            Some(TargetValue::Feature(record))
        })
        .collect())
}

/// The chosen record of a feature target for every target key `wanted` accepts, streamed in
/// the order the dataset gives them (target RID), one target's records held at a time: the
/// first by RCT, or — with `refuse_conflicts` — an [`Error::ConflictingTargetValues`] when a
/// wanted target has several differing values (listing the first [`MAX_LISTED_RIDS`] by
/// target, after every record was read). `wanted` is asked once per target key; `each` gets
/// the key (a RID of the feature's target table; see [`TargetKeys`]) and the record. Nothing
/// happens for a column target.
///
/// This is what [`resolve_targets`] does per feature target (its tests cover both), for a
/// consumer that keeps the elements elsewhere: restructure keeps them on disk and answers
/// `wanted` from there.
pub fn for_each_target_record<D: DatasetLike>(
    dataset: &D,
    target: &ResolvedTarget,
    refuse_conflicts: bool,
    wanted: &mut dyn FnMut(&str) -> Result<bool, Error>,
    each: &mut dyn FnMut(&str, FeatureRecord) -> Result<(), Error>,
) -> Result<(), Error> {
    let Some(feature) = target.feature() else {
        return Ok(());
    };
    // Records arrive in the canonical order (target RID, RCT instant, row RID;
    // `sort_records`), so one target's records are consecutive: one group is held at a time.
    // Only the first MAX_LISTED_RIDS conflicts (by target) are kept, and how many there were.
    let mut conflicts: BTreeMap<String, Vec<Rid>> = BTreeMap::new();
    let mut conflicting = 0usize;
    let mut group: Vec<FeatureRecord> = Vec::new();
    let mut current: Option<String> = None;
    let mut group_wanted = false;
    let mut settle = |group: &mut Vec<FeatureRecord>| -> Result<(), Error> {
        let Some(first) = group.first() else {
            return Ok(());
        };
        let Some(key) = first.target().map(str::to_string) else {
            group.clear();
            return Ok(());
        };
        // `group[0]` is the first value by RCT.
        let differ = group.iter().any(|r| !same_value(feature, r, first));
        if differ && refuse_conflicts {
            conflicting += 1;
            conflicts.insert(key, group.iter().filter_map(|r| r.rid.clone()).collect());
            if conflicts.len() > MAX_LISTED_RIDS {
                conflicts.pop_last();
            }
            group.clear();
            return Ok(());
        }
        group.truncate(1);
        match group.pop() {
            Some(first) => each(&key, first),
            None => Ok(()),
        }
    };
    dataset.for_each_feature_value(
        &feature.target_table.to_string(),
        &feature.name,
        target.selector.as_ref(),
        &mut |record| {
            let Some(key) = record.target() else {
                return Ok(());
            };
            if current.as_deref() != Some(key) {
                // A new target: the previous one is settled, and this one asked about once.
                settle(&mut group)?;
                group.clear();
                group_wanted = wanted(key)?;
                current = Some(key.to_string());
            }
            if group_wanted {
                group.push(record);
            }
            Ok(())
        },
    )?;
    settle(&mut group)?;
    if conflicting > 0 {
        return Err(Error::ConflictingTargetValues {
            target: target.name.clone(),
            table: feature.target_table.to_string(),
            conflicts: conflicts.into_iter().collect(),
            more: conflicting.saturating_sub(MAX_LISTED_RIDS),
        });
    }
    Ok(())
}

/// The key under which a feature target's value is found for an element row: the element's
/// RID for a feature on the element table, the RID of the row its foreign key references for
/// a feature through a foreign key (mapped once from another referenced key, e.g. a Name),
/// and none for a column target or a NULL foreign key.
pub struct TargetKeys {
    kind: KeyKind,
}

enum KeyKind {
    None,
    Rid,
    Fk {
        column: String,
        /// Referenced key value → RID, when the foreign key references another key than RID.
        by_key: Option<HashMap<String, String>>,
    },
}

impl TargetKeys {
    /// The keys of `target` for rows of `element_table`.
    pub fn new<D: DatasetLike>(
        dataset: &D,
        element_table: &TableName,
        target: &ResolvedTarget,
    ) -> Result<TargetKeys, Error> {
        let (fk_column, feature) = match &target.kind {
            TargetKind::Column(_) => {
                return Ok(TargetKeys {
                    kind: KeyKind::None,
                })
            }
            TargetKind::Feature(_) => return Ok(TargetKeys { kind: KeyKind::Rid }),
            TargetKind::FeatureViaFk { fk_column, feature } => (fk_column, feature),
        };
        let referenced_columns = dataset
            .model()
            .table(element_table)
            .and_then(|t| {
                t.foreign_keys.iter().find(|fk| {
                    fk.columns.len() == 1
                        && &fk.columns[0] == fk_column
                        && fk.referenced_table == feature.target_table
                })
            })
            .map(|fk| fk.referenced_columns.clone())
            .unwrap_or_else(|| vec!["RID".to_string()]);
        let key_column = referenced_columns
            .first()
            .cloned()
            .unwrap_or_else(|| "RID".to_string());
        let by_key = if key_column == "RID" {
            None
        } else {
            // The FK points at another key (e.g. a Name): map key value → RID once.
            let referenced = dataset.table_rows(&feature.target_table)?;
            Some(
                referenced
                    .iter()
                    .filter_map(|r| {
                        let k = r.get(&key_column).filter(|v| !v.is_null())?.to_string();
                        Some((k, r.rid()?.to_string()))
                    })
                    .collect(),
            )
        };
        Ok(TargetKeys {
            kind: KeyKind::Fk {
                column: fk_column.clone(),
                by_key,
            },
        })
    }

    /// The key of `row` (see the type's docs).
    pub fn key(&self, row: &Row) -> Option<String> {
        match &self.kind {
            KeyKind::None => None,
            KeyKind::Rid => row.rid().map(|r| r.to_string()),
            KeyKind::Fk { column, by_key } => {
                let text = row
                    .get(column)
                    .filter(|v| !v.is_null())
                    .map(|v| v.to_string())?;
                match by_key {
                    None => Some(text),
                    Some(map) => map.get(&text).cloned(),
                }
            }
        }
    }
}

/// Whether two records carry the same value in every feature column.
fn same_value(feature: &Feature, a: &FeatureRecord, b: &FeatureRecord) -> bool {
    feature
        .columns
        .iter()
        .all(|c| a.get(&c.name) == b.get(&c.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FeatureId;
    use indexmap::IndexMap;

    fn record(rid: &str, rct: &str, term: &str) -> FeatureRecord {
        let mut fields = IndexMap::new();
        fields.insert("Execution".to_string(), serde_json::json!("1-E001"));
        fields.insert("Feature_Name".to_string(), serde_json::json!("Glaucoma"));
        fields.insert("RCT".to_string(), serde_json::json!(rct));
        fields.insert("Glaucoma".to_string(), serde_json::json!(term));
        fields.insert("Image".to_string(), serde_json::json!("1-I001"));
        FeatureRecord {
            feature: FeatureId {
                schema: "demo".into(),
                table: "Execution_Image_Glaucoma".into(),
                name: "Glaucoma".into(),
            },
            target_column: "Image".into(),
            rid: Some(Rid::new(rid)),
            fields,
        }
    }

    #[test]
    fn targets_keep_order_and_replace_a_repeated_selector() {
        let t = Targets::names(["Glaucoma", "Subject"]).with("Glaucoma", Selector::Newest);
        let got: Vec<(&str, bool)> = t.iter().map(|(n, s)| (n, s.is_some())).collect();
        assert_eq!(got, [("Glaucoma", true), ("Subject", false)]);
        let collected: Targets = ["A", "B"].into_iter().collect();
        assert_eq!(collected.len(), 2);
        assert!(Targets::new().is_empty());
    }

    #[test]
    fn missing_policy_parses_the_chapter_spelling_and_rejects_typos() {
        for m in [Missing::Unknown, Missing::Skip, Missing::Error] {
            assert_eq!(m.to_string().parse::<Missing>().unwrap(), m);
        }
        let err = "Unknown".parse::<Missing>().unwrap_err().to_string();
        assert!(err.contains("\"Unknown\""), "{err}");
    }

    #[test]
    fn record_label_is_the_term_not_the_provenance_or_target() {
        let v = TargetValue::Feature(record("1-A001", "2026-05-28 16:54:02+00", "Normal"));
        assert_eq!(v.label().as_deref(), Some("Normal"));
        let c = TargetValue::Column {
            name: "Subject".into(),
            value: Value::Text("1-S001".into()),
        };
        assert_eq!(c.label().as_deref(), Some("1-S001"));
    }
}
