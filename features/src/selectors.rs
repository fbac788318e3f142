//! Selectors: pick one record from a group of records about the same target.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::value::parse_timestamptz;
use crate::{DatasetLike, Error, Feature, FeatureRecord, Rid};

/// A user-supplied selector: the group's records in, at most one record out.
pub type SelectorFn =
    dyn Fn(&[FeatureRecord]) -> Result<Option<FeatureRecord>, Error> + Send + Sync;

/// How to reduce the records of one `(target, qualifiers)` group to one record.
#[derive(Clone)]
pub enum Selector {
    /// Greatest RCT (as an instant); ties → greatest row RID.
    Newest,
    /// Smallest RCT; ties → smallest row RID.
    First,
    /// Most frequent value of the column (auto-detected when `None` and the feature has one
    /// term column); ties between values → the newest record among the tied.
    MajorityVote(Option<String>),
    /// Newest record among those produced by this Execution; none → the target is dropped.
    ByExecution(Rid),
    /// Newest record among those produced by these Executions (see `select_by_workflow`).
    ByExecutions(BTreeSet<Rid>),
    /// A user closure.
    Custom(Arc<SelectorFn>),
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Newest => f.write_str("Newest"),
            Selector::First => f.write_str("First"),
            Selector::MajorityVote(c) => write!(f, "MajorityVote({c:?})"),
            Selector::ByExecution(r) => write!(f, "ByExecution({r})"),
            Selector::ByExecutions(s) => write!(f, "ByExecutions({s:?})"),
            Selector::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Selector {
    /// Greatest RCT by instant (so `10:00-07` is newer than `16:54+00`); ties → greatest row RID.
    pub fn newest() -> Self {
        Selector::Newest
    }

    /// Smallest RCT by instant; ties → smallest row RID.
    pub fn first() -> Self {
        Selector::First
    }

    /// Most frequent value of `column`; `None` picks the feature's only term column.
    pub fn majority_vote(column: Option<&str>) -> Self {
        Selector::MajorityVote(column.map(str::to_string))
    }

    /// Whether this selector can pick among `feature`'s records, checked before any record
    /// is read: a majority vote needs the column it counts (the named one, or the feature's
    /// only term column). The error is the one selection itself would give.
    ///
    /// ```
    /// use deriva_bag_features::{Feature, Selector};
    /// # fn check(feature: &Feature) {
    /// assert!(Selector::newest().check_for(feature).is_ok());
    /// # }
    /// ```
    pub fn check_for(&self, feature: &Feature) -> Result<(), Error> {
        match self {
            Selector::MajorityVote(column) => majority_column(feature, column.as_deref()).map(drop),
            _ => Ok(()),
        }
    }

    /// The newest record produced by Execution `rid`; groups without one are dropped.
    pub fn by_execution(rid: impl Into<Rid>) -> Self {
        Selector::ByExecution(rid.into())
    }

    /// The newest record produced by any Execution of `workflow` (a Workflow RID or a
    /// Workflow_Type name), resolved now through `container.list_workflow_executions`, so an
    /// unknown workflow is an error here rather than at selection time.
    pub fn select_by_workflow<D: DatasetLike + ?Sized>(
        workflow: &str,
        container: &D,
    ) -> Result<Self, Error> {
        let executions = container.list_workflow_executions(workflow)?;
        Ok(Selector::ByExecutions(executions.into_iter().collect()))
    }

    /// A user closure: the group's records in, at most one record out.
    pub fn custom(
        f: impl Fn(&[FeatureRecord]) -> Option<FeatureRecord> + Send + Sync + 'static,
    ) -> Self {
        Selector::Custom(Arc::new(move |records: &[FeatureRecord]| Ok(f(records))))
    }

    /// A user closure that may fail; its error is returned by `feature_values`.
    pub fn try_custom(
        f: impl Fn(&[FeatureRecord]) -> Result<Option<FeatureRecord>, Error> + Send + Sync + 'static,
    ) -> Self {
        Selector::Custom(Arc::new(f))
    }

    /// Reduces one group (records of one target and qualifier values) to at most one record.
    pub fn select(
        &self,
        feature: &Feature,
        group: &[FeatureRecord],
    ) -> Result<Option<FeatureRecord>, Error> {
        Ok(match self {
            Selector::Newest => pick_newest(group.iter()).cloned(),
            Selector::First => pick_first(group.iter()).cloned(),
            Selector::MajorityVote(column) => {
                let column = majority_column(feature, column.as_deref())?;
                majority(group, &column).cloned()
            }
            Selector::ByExecution(rid) => {
                pick_newest(group.iter().filter(|r| r.execution() == Some(rid.as_str()))).cloned()
            }
            Selector::ByExecutions(rids) => pick_newest(
                group
                    .iter()
                    .filter(|r| r.execution().is_some_and(|e| rids.contains(&Rid::from(e)))),
            )
            .cloned(),
            Selector::Custom(f) => f(group)?,
        })
    }
}

/// The RCT of a record as an instant (`None` when absent or unparseable: such a record is
/// the oldest, as the reference treats a missing RCT as `""`).
fn instant<R: Selectable>(record: &R) -> Option<DateTime<Utc>> {
    record.rct().and_then(parse_timestamptz)
}

/// Time order of two records: RCT instant, then row RID.
fn time_order(a: &FeatureRecord, b: &FeatureRecord) -> Ordering {
    instant(a).cmp(&instant(b)).then_with(|| a.rid.cmp(&b.rid))
}

/// The greatest record by [`time_order`]; among full ties the first in input order.
fn pick_newest<'r>(records: impl Iterator<Item = &'r FeatureRecord>) -> Option<&'r FeatureRecord> {
    records.fold(None, |best, r| match best {
        Some(b) if time_order(r, b) != Ordering::Greater => Some(b),
        _ => Some(r),
    })
}

/// The smallest record by [`time_order`]; among full ties the first in input order.
fn pick_first<'r>(records: impl Iterator<Item = &'r FeatureRecord>) -> Option<&'r FeatureRecord> {
    records.fold(None, |best, r| match best {
        Some(b) if time_order(r, b) != Ordering::Less => Some(b),
        _ => Some(r),
    })
}

fn majority_column(feature: &Feature, column: Option<&str>) -> Result<String, Error> {
    if let Some(column) = column {
        // The reference silently degrades a misspelled column to "newest"; naming it is kinder.
        let known = feature.field_names();
        if !known.iter().any(|k| k == column) {
            return Err(Error::UnknownField {
                feature: feature.name.clone(),
                field: column.to_string(),
                known,
            });
        }
        return Ok(column.to_string());
    }
    let mut terms = feature.term_columns();
    match terms.len() {
        1 => Ok(terms.remove(0)),
        0 => Err(Error::NoMajorityColumn {
            feature: feature.name.clone(),
            columns: feature.columns.iter().map(|c| c.name.clone()).collect(),
        }),
        _ => {
            terms.sort();
            Err(Error::AmbiguousMajorityColumn {
                feature: feature.name.clone(),
                columns: terms,
            })
        }
    }
}

/// Candidates are the records whose `column` value has the highest count; the newest of them
/// wins (so a tie between values goes to the newest record among the tied). NULL is a value.
fn majority<'r>(group: &'r [FeatureRecord], column: &str) -> Option<&'r FeatureRecord> {
    let key = |r: &FeatureRecord| r.get(column).map(|v| v.to_string()).unwrap_or_default();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in group {
        *counts.entry(key(r)).or_default() += 1;
    }
    let top = counts.values().copied().max()?;
    pick_newest(group.iter().filter(|r| counts.get(&key(r)) == Some(&top)))
}

/// Sorts records into the canonical order every backend returns: target RID, then RCT as an
/// instant (records without a parseable RCT first, then by RCT text), then row RID.
pub fn sort_records(records: &mut [FeatureRecord]) {
    // Parse each RCT once, not once per comparison: the comparator runs O(n log n) times and
    // timestamp parsing dominated feature_values on 40k records.
    let mut instants: Vec<Option<DateTime<Utc>>> = records.iter().map(instant).collect();
    sort_with_instants(records, &mut instants);
}

/// [`sort_records`] followed by [`apply_selector`], for a backend that already holds each
/// record's RCT instant (a bag index stores it when it parses the CSV), so no RCT text is
/// parsed again. `instants[i]` must be what [`parse_timestamptz`] gives for `records[i]`'s
/// `RCT` (`None` when absent or unparseable); order and choices are then exactly those of
/// the two functions.
///
/// # Panics
/// If the two lengths differ (a programming error, never input-derived).
///
/// ```
/// use deriva_bag_features::{lookup_feature, sort_and_select, parse_timestamptz, FeatureRecord, Selector, Value};
/// let model = deriva_bag_features::testing::demo_model().unwrap();
/// let feature = lookup_feature(&model, "demo:Image", "Glaucoma").unwrap();
/// let rec = |rid: &str, rct: &str, term: &str| FeatureRecord::from_values(feature.id(), "Image".into(),
///     Some(rid.into()), [("RCT", rct), ("Glaucoma", term), ("Image", "1-I001")]
///         .map(|(k, v)| (k.to_string(), Value::Text(v.to_string()))));
/// let records = vec![rec("1-A002", "2026-05-28 10:00:00-07", "Severe"), rec("1-A001", "2026-05-28 16:54:02+00", "Normal")];
/// let instants = records.iter().map(|r| r.rct().and_then(parse_timestamptz)).collect();
/// let all = sort_and_select(&feature, records.clone(), instants, None).unwrap();
/// assert_eq!(all[0].text("Glaucoma"), Some("Normal"));
/// let instants = records.iter().map(|r| r.rct().and_then(parse_timestamptz)).collect();
/// let newest = sort_and_select(&feature, records, instants, Some(&Selector::newest())).unwrap();
/// assert_eq!(newest.len(), 1);
/// assert_eq!(newest[0].text("Glaucoma"), Some("Severe"));
/// ```
pub fn sort_and_select(
    feature: &Feature,
    mut records: Vec<FeatureRecord>,
    mut instants: Vec<Option<DateTime<Utc>>>,
    selector: Option<&Selector>,
) -> Result<Vec<FeatureRecord>, Error> {
    assert_eq!(records.len(), instants.len(), "one instant per record");
    debug_assert!(
        records.iter().zip(&instants).all(|(r, i)| instant(r) == *i),
        "instants must be the records' parsed RCT"
    );
    sort_with_instants(&mut records, &mut instants);
    select_with_instants(feature, records, selector, Some(instants))
}

/// A feature record with its parsed RCT, as [`select_stream`] takes them: the instant must
/// be what [`parse_timestamptz`] gives for the record's `RCT` (`None` when absent or
/// unparseable).
pub type TimedRecord = (FeatureRecord, Option<DateTime<Utc>>);

/// What the built-in selectors read from a record, so that a backend can reduce a record
/// type of its own (a bag streams lighter rows that share their field names) with the same
/// code as [`FeatureRecord`]s: [`select_stream`] takes either. A user closure
/// ([`Selector::Custom`]) still sees [`FeatureRecord`]s: a group is converted for it with
/// [`into_record`](Self::into_record), its choice back with [`from_record`](Self::from_record).
///
/// Every method must answer what the same method of the record's
/// [`into_record`](Self::into_record) does.
pub trait Selectable: Sized {
    /// The target RID ([`FeatureRecord::target`]).
    fn target(&self) -> Option<&str>;
    /// The stored RCT text ([`FeatureRecord::rct`]).
    fn rct(&self) -> Option<&str>;
    /// The feature row's own RID ([`FeatureRecord::rid`]).
    fn row_rid(&self) -> Option<&Rid>;
    /// The Execution ([`FeatureRecord::execution`]).
    fn execution(&self) -> Option<&str>;
    /// Field `name` as selectors compare values (qualifier groups, majority votes).
    fn field_key(&self, name: &str) -> FieldKey<'_>;
    /// Whether the record is one of `feature`'s (by identity, as [`records_share_feature`](crate::records_share_feature)).
    fn is_of(&self, feature: &Feature) -> bool;
    /// The record's feature as errors name it: `schema:table (name)`.
    fn feature_label(&self) -> String;
    /// The record as a [`FeatureRecord`].
    fn into_record(self) -> FeatureRecord;
    /// A [`FeatureRecord`] (a user closure's choice) as this type.
    fn from_record(record: FeatureRecord) -> Self;
}

/// A field value as the selectors compare them: equal keys for equal values, and a missing
/// field equal only to another missing one (NULL is a value: `Other("null")`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldKey<'r> {
    /// The record has no such field.
    Missing,
    /// A string value, by its text.
    Text(&'r str),
    /// Any other value, by its JSON text.
    Other(String),
}

impl Selectable for FeatureRecord {
    fn target(&self) -> Option<&str> {
        FeatureRecord::target(self)
    }
    fn rct(&self) -> Option<&str> {
        FeatureRecord::rct(self)
    }
    fn row_rid(&self) -> Option<&Rid> {
        self.rid.as_ref()
    }
    fn execution(&self) -> Option<&str> {
        FeatureRecord::execution(self)
    }
    fn field_key(&self, name: &str) -> FieldKey<'_> {
        match self.get(name) {
            None => FieldKey::Missing,
            Some(serde_json::Value::String(s)) => FieldKey::Text(s),
            Some(v) => FieldKey::Other(v.to_string()),
        }
    }
    fn is_of(&self, feature: &Feature) -> bool {
        self.feature.name == feature.name
            && self.feature.table == feature.feature_table.table
            && self.feature.schema == feature.feature_table.schema
    }
    fn feature_label(&self) -> String {
        let id = &self.feature;
        format!("{}:{} ({})", id.schema, id.table, id.name)
    }
    fn into_record(self) -> FeatureRecord {
        self
    }
    fn from_record(record: FeatureRecord) -> Self {
        record
    }
}

/// [`sort_and_select`] in one pass over records that arrive ordered by target RID (a bag
/// index reads them in that order from the index on the target column): the records of one
/// target are put in canonical order and reduced by the same grouping and selectors as soon
/// as the next target begins, so any number of records passes in the memory of one
/// target's. The output is exactly what [`sort_and_select`] gives on the same records (for
/// input whose targets are merely grouped, not sorted, the targets keep the input order).
///
/// Records without a target are skipped when there is a selector (as [`apply_selector`]
/// does); records of another feature are an [`Error::MixedFeatures`].
///
/// ```
/// use deriva_bag_features::{lookup_feature, parse_timestamptz, select_stream, sort_records};
/// use deriva_bag_features::{Error, FeatureRecord, Selector, Value};
/// let model = deriva_bag_features::testing::demo_model().unwrap();
/// let feature = lookup_feature(&model, "demo:Image", "Glaucoma").unwrap();
/// let rec = |rid: &str, image: &str, rct: &str, term: &str| FeatureRecord::from_values(
///     feature.id(), "Image".into(), Some(rid.into()),
///     [("RCT", rct), ("Glaucoma", term), ("Image", image)]
///         .map(|(k, v)| (k.to_string(), Value::Text(v.to_string()))));
/// let mut records = vec![
///     rec("1-A001", "1-I001", "2026-05-28 16:54:02+00", "Normal"),
///     rec("1-A002", "1-I001", "2026-05-28 10:00:00-07", "Severe"), // 17:00 UTC: newer
///     rec("1-A003", "1-I002", "2026-05-28 16:54:02+00", "Mild"),
/// ];
/// sort_records(&mut records);
/// let timed = records.into_iter().map(|r| {
///     let instant = r.rct().and_then(parse_timestamptz);
///     Ok::<_, Error>((r, instant))
/// });
/// let newest: Vec<FeatureRecord> = select_stream(&feature, Some(Selector::newest()), timed)
///     .collect::<Result<_, _>>()?;
/// let picked: Vec<_> = newest.iter().map(|r| (r.target(), r.text("Glaucoma"))).collect();
/// assert_eq!(picked, [(Some("1-I001"), Some("Severe")), (Some("1-I002"), Some("Mild"))]);
/// # Ok::<(), Error>(())
/// ```
pub fn select_stream<I, E, R>(
    feature: &Feature,
    selector: Option<Selector>,
    records: I,
) -> SelectStream<I, R>
where
    I: Iterator<Item = Result<(R, Option<DateTime<Utc>>), E>>,
    R: Selectable,
    E: From<Error>,
{
    SelectStream {
        feature: feature.clone(),
        selector,
        input: records,
        lookahead: None,
        ready: VecDeque::new(),
        done: false,
    }
}

/// The iterator [`select_stream`] returns.
pub struct SelectStream<I, R = FeatureRecord> {
    feature: Feature,
    selector: Option<Selector>,
    input: I,
    /// The first record of the next target, read while finding the end of the current one.
    lookahead: Option<(R, Option<DateTime<Utc>>)>,
    /// Records chosen from the last target's run, not yet handed out.
    ready: VecDeque<R>,
    done: bool,
}

impl<I, R> fmt::Debug for SelectStream<I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectStream")
            .field("feature", &self.feature.name)
            .field("selector", &self.selector)
            .field("done", &self.done)
            .finish()
    }
}

impl<I, E, R> SelectStream<I, R>
where
    I: Iterator<Item = Result<(R, Option<DateTime<Utc>>), E>>,
    R: Selectable,
    E: From<Error>,
{
    /// Reads the next target's run of records and reduces it into `ready`; `Ok(false)` at
    /// the end of the input.
    fn next_run(&mut self) -> Result<bool, E> {
        let mut records: Vec<R> = Vec::new();
        let mut instants = Vec::new();
        while let Some(item) = self.lookahead.take().map(Ok).or_else(|| self.input.next()) {
            let (record, instant) = item?;
            if records
                .first()
                .is_some_and(|first| first.target() != record.target())
            {
                self.lookahead = Some((record, instant));
                break;
            }
            records.push(record);
            instants.push(instant);
        }
        if records.is_empty() {
            return Ok(false);
        }
        // Canonical order sorts by target first, so sorting each target's run and grouping
        // it in first-seen order gives the groups, and the records, in the order the whole
        // input sorted and grouped at once would.
        sort_with_instants(&mut records, &mut instants);
        let chosen = select_with_instants(
            &self.feature,
            records,
            self.selector.as_ref(),
            Some(instants),
        )?;
        self.ready.extend(chosen);
        Ok(true)
    }
}

impl<I, E, R> Iterator for SelectStream<I, R>
where
    I: Iterator<Item = Result<(R, Option<DateTime<Utc>>), E>>,
    R: Selectable,
    E: From<Error>,
{
    type Item = Result<R, E>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.ready.pop_front() {
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            match self.next_run() {
                Ok(true) => {}
                Ok(false) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Sorts `records` (and `instants` alongside) into canonical order; `instants[i]` is
/// `records[i]`'s parsed RCT.
fn sort_with_instants<R: Selectable>(records: &mut [R], instants: &mut [Option<DateTime<Utc>>]) {
    let mut order: Vec<usize> = (0..records.len()).collect();
    // Stable, like a `sort_by` on the records, so full ties keep their input order.
    order.sort_by(|&i, &j| {
        let (a, b) = (&records[i], &records[j]);
        a.target()
            .cmp(&b.target())
            .then_with(|| instants[i].cmp(&instants[j]))
            .then_with(|| a.rct().cmp(&b.rct()))
            .then_with(|| a.row_rid().cmp(&b.row_rid()))
    });
    // Follow each cycle of the permutation, swapping every element into place once
    // (position `k` gets the element that was at `order[k]`).
    for start in 0..records.len() {
        let mut current = start;
        while order[current] != start {
            let next = order[current];
            records.swap(current, next);
            instants.swap(current, next);
            order[current] = current;
            current = next;
        }
        order[current] = current;
    }
}

/// Applies `selector` to records of `feature` (the reference's `reduce_with_selector`).
///
/// Without a selector the records come back unchanged. With one, records are grouped by
/// `(target, qualifier columns)` in first-seen order (so input in canonical order gives output
/// in canonical order), the selector is called on every group, even a single-record one, and
/// groups it maps to `None` are dropped. Records without a target are skipped. Records of
/// another feature are an error.
///
/// ```
/// use deriva_bag_features::{apply_selector, lookup_feature, Selector, Value};
/// let model = deriva_bag_features::testing::demo_model().unwrap();
/// let feature = lookup_feature(&model, "demo:Image", "Glaucoma").unwrap();
/// let rec = |rid: &str, rct: &str, term: &str| {
///     let row = [("RID", rid), ("RCT", rct), ("Execution", "1-E001"), ("Feature_Name", "Glaucoma"),
///                ("Glaucoma", term), ("Image", "1-I001")];
///     deriva_bag_features::FeatureRecord::from_values(feature.id(), "Image".into(), Some(rid.into()),
///         row.iter().filter(|(k, _)| *k != "RID").map(|(k, v)| (k.to_string(), Value::Text(v.to_string()))))
/// };
/// let records = vec![
///     rec("1-A001", "2026-05-28 16:54:02.232194+00", "Normal"),
///     rec("1-A002", "2026-05-28 10:00:00-07", "Severe"), // 17:00 UTC: newer
/// ];
/// let newest = apply_selector(&feature, records, Some(&Selector::newest())).unwrap();
/// assert_eq!(newest.len(), 1);
/// assert_eq!(newest[0].text("Glaucoma"), Some("Severe"));
/// ```
pub fn apply_selector(
    feature: &Feature,
    records: Vec<FeatureRecord>,
    selector: Option<&Selector>,
) -> Result<Vec<FeatureRecord>, Error> {
    select_with_instants(feature, records, selector, None)
}

/// [`apply_selector`], with the records' parsed RCTs when the caller has them.
fn select_with_instants<R: Selectable>(
    feature: &Feature,
    records: Vec<R>,
    selector: Option<&Selector>,
    instants: Option<Vec<Option<DateTime<Utc>>>>,
) -> Result<Vec<R>, Error> {
    if let Some(other) = records.iter().find(|r| !r.is_of(feature)) {
        let id = feature.id();
        return Err(Error::MixedFeatures {
            features: vec![
                format!("{}:{} ({})", id.schema, id.table, id.name),
                other.feature_label(),
            ],
        });
    }
    let Some(selector) = selector else {
        return Ok(records);
    };
    // Group by index first (borrowing the records), so that no key or record is cloned.
    let mut slots: HashMap<(&str, Vec<FieldKey<'_>>), usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    // One target's run without qualifier columns (what `select_stream` hands over): a
    // single group in input order, found without hashing.
    let one_target = records.first().and_then(R::target);
    let one_group = feature.qualifier_columns.is_empty()
        && one_target.is_some()
        && records.iter().all(|r| r.target() == one_target);
    if one_group {
        groups.push((0..records.len()).collect());
    }
    for (i, record) in records.iter().enumerate().filter(|_| !one_group) {
        let Some(target) = record.target() else {
            continue;
        };
        let qualifiers = feature
            .qualifier_columns
            .iter()
            .map(|q| record.field_key(q))
            .collect();
        let slot = *slots.entry((target, qualifiers)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push(i);
    }
    drop(slots);
    let builtin = match selector {
        Selector::Custom(_) => None,
        // Resolved only when there is a group to vote in, as `select` does per group.
        Selector::MajorityVote(column) if !groups.is_empty() => {
            Some(Some(majority_column(feature, column.as_deref())?))
        }
        _ => Some(None),
    };
    let Some(majority_col) = builtin else {
        // A user closure needs each group as a slice of records: move them into place.
        let mut owned: Vec<Option<R>> = records.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(groups.len());
        for members in groups {
            let group: Vec<FeatureRecord> = members
                .iter()
                .filter_map(|&i| owned[i].take().map(R::into_record))
                .collect();
            if let Some(chosen) = selector.select(feature, &group)? {
                out.push(R::from_record(chosen));
            }
        }
        return Ok(out);
    };
    // Built-in selectors pick an index with each RCT parsed once; the chosen record is then
    // moved out instead of cloned.
    let instants = instants.unwrap_or_else(|| records.iter().map(instant).collect());
    let newer = |i: usize, j: usize| {
        instants[i]
            .cmp(&instants[j])
            .then_with(|| records[i].row_rid().cmp(&records[j].row_rid()))
    };
    let newest = |candidates: &mut dyn Iterator<Item = usize>| {
        candidates.fold(None, |best: Option<usize>, i| match best {
            Some(b) if newer(i, b) != Ordering::Greater => Some(b),
            _ => Some(i),
        })
    };
    let mut chosen: Vec<usize> = Vec::with_capacity(groups.len());
    for members in &groups {
        let pick = match selector {
            Selector::Newest => newest(&mut members.iter().copied()),
            Selector::First => members.iter().copied().fold(None, |best, i| match best {
                Some(b) if newer(i, b) != Ordering::Less => Some(b),
                _ => Some(i),
            }),
            Selector::ByExecution(rid) => newest(
                &mut members
                    .iter()
                    .copied()
                    .filter(|&i| records[i].execution() == Some(rid.as_str())),
            ),
            Selector::ByExecutions(rids) => newest(&mut members.iter().copied().filter(|&i| {
                records[i]
                    .execution()
                    .is_some_and(|e| rids.contains(&Rid::from(e)))
            })),
            Selector::MajorityVote(_) => {
                let column = majority_col.as_deref().unwrap_or_default();
                let keys: Vec<FieldKey<'_>> = members
                    .iter()
                    .map(|&i| records[i].field_key(column))
                    .collect();
                // Groups are small: count by linear scan rather than hashing.
                let counts: Vec<usize> = keys
                    .iter()
                    .map(|k| keys.iter().filter(|o| *o == k).count())
                    .collect();
                let top = counts.iter().copied().max().unwrap_or(0);
                newest(
                    &mut members
                        .iter()
                        .zip(&counts)
                        .filter(|(_, &c)| c == top)
                        .map(|(&i, _)| i),
                )
            }
            Selector::Custom(_) => None,
        };
        chosen.extend(pick);
    }
    let mut owned: Vec<Option<R>> = records.into_iter().map(Some).collect();
    Ok(chosen.into_iter().filter_map(|i| owned[i].take()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{lookup_feature, testing, Value};

    fn glaucoma() -> Feature {
        lookup_feature(&testing::demo_model().unwrap(), "demo:Image", "Glaucoma").unwrap()
    }

    /// A stored Glaucoma row: (row RID, Execution, Image, term, RCT).
    fn rec(f: &Feature, rid: &str, exe: &str, image: &str, term: &str, rct: &str) -> FeatureRecord {
        let t = |s: &str| Value::Text(s.to_string());
        FeatureRecord::from_values(
            f.id(),
            "Image".into(),
            Some(Rid::new(rid)),
            [
                ("Execution".to_string(), t(exe)),
                ("Feature_Name".to_string(), t("Glaucoma")),
                ("RCT".to_string(), t(rct)),
                ("Glaucoma".to_string(), t(term)),
                ("Image".to_string(), t(image)),
            ],
        )
    }

    /// The fixture bag's nine labels , in canonical order.
    fn oracle(f: &Feature) -> Vec<FeatureRecord> {
        let mut v = vec![
            rec(
                f,
                "1-A001",
                "1-E001",
                "1-I001",
                "Normal",
                "2026-05-28 16:54:02.232194+00",
            ),
            rec(
                f,
                "1-A002",
                "1-E002",
                "1-I001",
                "Severe",
                "2026-05-28 10:00:00-07",
            ),
            rec(
                f,
                "1-A003",
                "1-E001",
                "1-I002",
                "Mild",
                "2026-05-28 16:54:02.232194+00",
            ),
            rec(
                f,
                "1-A004",
                "1-E001",
                "1-I003",
                "Normal",
                "2026-05-29 08:00:00+00",
            ),
            rec(
                f,
                "1-A005",
                "1-E002",
                "1-I003",
                "Moderate",
                "2026-05-29 08:00:00+00",
            ),
            rec(
                f,
                "1-A006",
                "1-E001",
                "1-I005",
                "Mild",
                "2026-05-30 08:00:00+00",
            ),
            rec(
                f,
                "1-A007",
                "1-E002",
                "1-I005",
                "Severe",
                "2026-05-30 12:00:00+00",
            ),
            rec(
                f,
                "1-A008",
                "1-E003",
                "1-I005",
                "Mild",
                "2026-05-30 09:00:00+00",
            ),
            rec(
                f,
                "1-A009",
                "1-E001",
                "1-I006",
                "Normal",
                "2026-05-28 16:54:02+00",
            ),
        ];
        v.reverse();
        sort_records(&mut v);
        v
    }

    fn picks(out: &[FeatureRecord]) -> Vec<(&str, &str)> {
        out.iter()
            .map(|r| (r.target().unwrap(), r.text("Glaucoma").unwrap()))
            .collect()
    }

    #[test]
    fn sort_records_orders_by_target_then_rct_instant_then_row_rid() {
        let f = glaucoma();
        let v = oracle(&f);
        let rids: Vec<&str> = v.iter().map(|r| r.rid.as_ref().unwrap().as_str()).collect();
        // 1-A001 (16:54Z) sorts before 1-A002 (10:00-07 = 17:00Z) although its text is greater.
        assert_eq!(
            rids,
            [
                "1-A001", "1-A002", "1-A003", "1-A004", "1-A005", "1-A006", "1-A008", "1-A007",
                "1-A009"
            ]
        );
    }

    #[test]
    fn select_newest_compares_rct_as_instants_and_breaks_ties_by_greatest_row_rid() {
        let f = glaucoma();
        let out = apply_selector(&f, oracle(&f), Some(&Selector::newest())).unwrap();
        assert_eq!(
            picks(&out),
            [
                ("1-I001", "Severe"),
                ("1-I002", "Mild"),
                ("1-I003", "Moderate"),
                ("1-I005", "Severe"),
                ("1-I006", "Normal")
            ]
        );
    }

    #[test]
    fn select_first_takes_smallest_rct_and_breaks_ties_by_smallest_row_rid() {
        let f = glaucoma();
        let out = apply_selector(&f, oracle(&f), Some(&Selector::first())).unwrap();
        assert_eq!(
            picks(&out),
            [
                ("1-I001", "Normal"),
                ("1-I002", "Mild"),
                ("1-I003", "Normal"),
                ("1-I005", "Mild"),
                ("1-I006", "Normal")
            ]
        );
        assert_eq!(out[2].rid.as_ref().unwrap().as_str(), "1-A004");
    }

    #[test]
    fn select_majority_vote_breaks_ties_by_newest_rct() {
        let f = glaucoma();
        let out = apply_selector(&f, oracle(&f), Some(&Selector::majority_vote(None))).unwrap();
        let p = picks(&out);
        assert!(p.contains(&("1-I005", "Mild")), "{p:?}"); // 2 Mild vs 1 Severe
        assert!(p.contains(&("1-I003", "Moderate")), "{p:?}"); // 1-1, RCT tie → 1-A005
        assert!(p.contains(&("1-I001", "Severe")), "{p:?}"); // 1-1 → newest instant
                                                             // The winning Mild record for I005 is the newer of the two Mild rows.
        let i005 = out.iter().find(|r| r.target() == Some("1-I005")).unwrap();
        assert_eq!(i005.rid.as_ref().unwrap().as_str(), "1-A008");
    }

    #[test]
    fn majority_three_three_tie_goes_to_newest_record_overall() {
        let f = glaucoma();
        let mut v = Vec::new();
        for (i, term) in ["Mild", "Severe", "Mild", "Severe", "Mild", "Severe"]
            .iter()
            .enumerate()
        {
            let rct = format!("2026-01-0{} 00:00:00+00", i + 1);
            v.push(rec(
                &f,
                &format!("1-A00{i}"),
                "1-E001",
                "1-I001",
                term,
                &rct,
            ));
        }
        let out = apply_selector(&f, v, Some(&Selector::majority_vote(Some("Glaucoma")))).unwrap();
        assert_eq!(picks(&out), [("1-I001", "Severe")]);
        assert_eq!(out[0].rid.as_ref().unwrap().as_str(), "1-A005");
    }

    #[test]
    fn clear_plurality_beats_a_newer_minority() {
        let f = glaucoma();
        let v = vec![
            rec(
                &f,
                "1-A001",
                "1-E001",
                "1-I001",
                "Mild",
                "2026-01-01 00:00:00+00",
            ),
            rec(
                &f,
                "1-A002",
                "1-E001",
                "1-I001",
                "Mild",
                "2026-01-02 00:00:00+00",
            ),
            rec(
                &f,
                "1-A003",
                "1-E001",
                "1-I001",
                "Severe",
                "2026-01-09 00:00:00+00",
            ),
        ];
        let out = apply_selector(&f, v, Some(&Selector::majority_vote(None))).unwrap();
        assert_eq!(picks(&out), [("1-I001", "Mild")]);
    }

    #[test]
    fn majority_vote_without_column_on_two_term_columns_names_them() {
        let model = testing::demo_model().unwrap();
        let f = lookup_feature(&model, "demo:Subject", "Diagnosis").unwrap();
        let r = FeatureRecord::from_values(
            f.id(),
            "Subject".into(),
            None,
            [("Subject".to_string(), Value::Text("1-S001".into()))],
        );
        let err =
            apply_selector(&f, vec![r.clone()], Some(&Selector::majority_vote(None))).unwrap_err();
        match &err {
            Error::AmbiguousMajorityColumn { columns, .. } => {
                assert_eq!(columns, &["Condition", "Glaucoma"])
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("Condition, Glaucoma"));
        // An explicit column overrides auto-detection.
        let out = apply_selector(
            &f,
            vec![r],
            Some(&Selector::majority_vote(Some("Condition"))),
        )
        .unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn check_for_refuses_a_majority_without_its_column_before_any_record() {
        let model = testing::demo_model().unwrap();
        let boxes = lookup_feature(&model, "demo:Image", "BoundingBox").unwrap();
        let glaucoma = lookup_feature(&model, "demo:Image", "Glaucoma").unwrap();
        let err = Selector::majority_vote(None).check_for(&boxes).unwrap_err();
        assert!(matches!(err, Error::NoMajorityColumn { .. }), "{err:?}");
        let err = Selector::majority_vote(Some("Nope"))
            .check_for(&glaucoma)
            .unwrap_err();
        assert!(
            matches!(&err, Error::UnknownField { field, .. } if field == "Nope"),
            "{err:?}"
        );
        assert!(Selector::majority_vote(None).check_for(&glaucoma).is_ok());
        assert!(Selector::newest().check_for(&boxes).is_ok());
    }

    #[test]
    fn majority_vote_on_feature_without_terms_cannot_auto_detect() {
        let model = testing::demo_model().unwrap();
        let f = lookup_feature(&model, "demo:Image", "BoundingBox").unwrap();
        let r = FeatureRecord::from_values(
            f.id(),
            "Image".into(),
            None,
            [("Image".to_string(), Value::Text("1-I001".into()))],
        );
        let err =
            apply_selector(&f, vec![r.clone()], Some(&Selector::majority_vote(None))).unwrap_err();
        assert!(matches!(err, Error::NoMajorityColumn { .. }), "{err:?}");
        let err =
            apply_selector(&f, vec![r], Some(&Selector::majority_vote(Some("Scroe")))).unwrap_err();
        assert!(matches!(err, Error::UnknownField { field, .. } if field == "Scroe"));
    }

    #[test]
    fn select_by_execution_keeps_that_executions_records_and_drops_other_targets() {
        let f = glaucoma();
        let out = apply_selector(&f, oracle(&f), Some(&Selector::by_execution("1-E002"))).unwrap();
        assert_eq!(
            picks(&out),
            [
                ("1-I001", "Severe"),
                ("1-I003", "Moderate"),
                ("1-I005", "Severe")
            ]
        );
        let set = Selector::ByExecutions(BTreeSet::from([Rid::new("1-E003"), Rid::new("1-E001")]));
        let out = apply_selector(&f, oracle(&f), Some(&set)).unwrap();
        assert_eq!(
            picks(&out),
            [
                ("1-I001", "Normal"),
                ("1-I002", "Mild"),
                ("1-I003", "Normal"),
                ("1-I005", "Mild"),
                ("1-I006", "Normal")
            ]
        );
        assert_eq!(out[3].rid.as_ref().unwrap().as_str(), "1-A008");
    }

    #[test]
    fn custom_selector_returning_none_omits_the_target() {
        let f = glaucoma();
        let sel = Selector::custom(|group| {
            group
                .iter()
                .find(|r| r.text("Glaucoma") == Some("Normal"))
                .cloned()
        });
        let out = apply_selector(&f, oracle(&f), Some(&sel)).unwrap();
        assert_eq!(
            picks(&out),
            [
                ("1-I001", "Normal"),
                ("1-I003", "Normal"),
                ("1-I006", "Normal")
            ]
        );
        let failing = Selector::try_custom(|_| Err(Error::Invalid("boom".into())));
        assert!(apply_selector(&f, oracle(&f), Some(&failing)).is_err());
    }

    #[test]
    fn selector_is_called_on_single_record_groups_too() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let f = glaucoma();
        let sel = Selector::custom(move |g| {
            c.fetch_add(1, Ordering::SeqCst);
            g.first().cloned()
        });
        let out = apply_selector(&f, oracle(&f), Some(&sel)).unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn no_selector_returns_every_record_in_input_order() {
        let f = glaucoma();
        let input = oracle(&f);
        let out = apply_selector(&f, input.clone(), None).unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn qualified_feature_keeps_one_record_per_target_and_qualifier() {
        let model = testing::demo_model().unwrap();
        let f = lookup_feature(&model, "demo:Subject", "Chart_Label").unwrap();
        let r = |rid: &str, side: &str, cond: &str, rct: &str| {
            let t = |s: &str| Value::Text(s.to_string());
            FeatureRecord::from_values(
                f.id(),
                "Subject".into(),
                Some(Rid::new(rid)),
                [
                    ("Execution".to_string(), t("1-E001")),
                    ("RCT".to_string(), t(rct)),
                    ("Condition".to_string(), t(cond)),
                    ("Image_Side".to_string(), t(side)),
                    ("Subject".to_string(), t("1-S001")),
                ],
            )
        };
        let v = vec![
            r("1-A001", "Left", "Healthy", "2026-01-01 00:00:00+00"),
            r("1-A002", "Right", "Sick", "2026-01-02 00:00:00+00"),
            r("1-A003", "Left", "Sick", "2026-01-03 00:00:00+00"),
            r("1-A004", "Right", "Healthy", "2026-01-01 00:00:00+00"),
        ];
        let out = apply_selector(&f, v, Some(&Selector::newest())).unwrap();
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|r| (r.text("Image_Side").unwrap(), r.text("Condition").unwrap()))
            .collect();
        assert_eq!(got, [("Left", "Sick"), ("Right", "Sick")]);
    }

    #[test]
    fn select_stream_holds_one_target_and_stops_at_the_first_error() {
        let f = glaucoma();
        let timed = |r: FeatureRecord| {
            let at = instant(&r);
            Ok::<_, Error>((r, at))
        };
        let failing = oracle(&f)
            .into_iter()
            .take(3)
            .map(timed)
            .chain([Err(Error::Invalid("index read failed".into()))])
            .chain(oracle(&f).into_iter().skip(3).map(timed));
        let mut stream = select_stream(&f, Some(Selector::newest()), failing);
        // 1-I001's run ends at the first record of 1-I002: its newest is handed out.
        let first = stream.next().unwrap().unwrap();
        assert_eq!(
            (first.target(), first.text("Glaucoma")),
            (Some("1-I001"), Some("Severe"))
        );
        let err = stream.next().unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            Error::Invalid("index read failed".into()).to_string()
        );
        assert!(stream.next().is_none());
    }

    #[test]
    fn records_of_another_feature_are_rejected() {
        let model = testing::demo_model().unwrap();
        let f = glaucoma();
        let other = lookup_feature(&model, "demo:Image", "BoundingBox").unwrap();
        let err = apply_selector(&other, oracle(&f), None).unwrap_err();
        assert!(matches!(err, Error::MixedFeatures { .. }), "{err:?}");
    }

    #[test]
    fn missing_rct_counts_as_oldest() {
        let f = glaucoma();
        let mut a = rec(&f, "1-A001", "1-E001", "1-I001", "Mild", "x");
        a.fields.insert("RCT".into(), serde_json::Value::Null);
        let b = rec(
            &f,
            "1-A000",
            "1-E001",
            "1-I001",
            "Severe",
            "2020-01-01 00:00:00+00",
        );
        let out =
            apply_selector(&f, vec![a.clone(), b.clone()], Some(&Selector::newest())).unwrap();
        assert_eq!(out[0].text("Glaucoma"), Some("Severe"));
        let out = apply_selector(&f, vec![a, b], Some(&Selector::first())).unwrap();
        assert_eq!(out[0].text("Glaucoma"), Some("Mild"));
    }

    /// The pre-optimization algorithm (comparator parsing RCT per comparison, groups in an
    /// `IndexMap`, `Selector::select` per group), kept as the oracle for the fast paths.
    fn reference_sort_and_select(
        f: &Feature,
        mut records: Vec<FeatureRecord>,
        selector: Option<&Selector>,
    ) -> Vec<FeatureRecord> {
        records.sort_by(|a, b| {
            a.target()
                .cmp(&b.target())
                .then_with(|| instant(a).cmp(&instant(b)))
                .then_with(|| a.rct().cmp(&b.rct()))
                .then_with(|| a.rid.cmp(&b.rid))
        });
        let Some(selector) = selector else {
            return records;
        };
        let mut groups: indexmap::IndexMap<(String, Vec<String>), Vec<FeatureRecord>> =
            indexmap::IndexMap::new();
        for record in records {
            let Some(target) = record.target().map(str::to_string) else {
                continue;
            };
            let qualifiers = f
                .qualifier_columns
                .iter()
                .map(|q| record.get(q).map(|v| v.to_string()).unwrap_or_default())
                .collect();
            groups.entry((target, qualifiers)).or_default().push(record);
        }
        groups
            .values()
            .filter_map(|g| selector.select(f, g).unwrap())
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn sort_and_select_matches_sort_records_then_per_group_select(
            rows in proptest::collection::vec((0u8..3, 0u8..4, -2i32..=2, 0u8..3, 0u8..2), 0..24),
        ) {
            let f = glaucoma();
            let terms = ["Normal", "Mild", "Severe"];
            let records: Vec<FeatureRecord> = rows.iter().enumerate().map(|(i, (img, hour, off, term, exe))| {
                // Hour 3 is an RCT that does not parse (sorted first, by text).
                let rct = if *hour == 3 {
                    "not a time".to_string()
                } else {
                    let sign = if *off < 0 { '-' } else { '+' };
                    format!("2026-05-28 1{hour}:00:00{sign}{:02}", off.abs())
                };
                // RIDs repeat their order loosely so that ties on the instant occur.
                rec(&f, &format!("1-A{:03}", (i * 7) % 11), &format!("1-E00{exe}"),
                    &format!("1-I00{img}"), terms[*term as usize], &rct)
            }).collect();
            let selectors = [
                None,
                Some(Selector::newest()),
                Some(Selector::first()),
                Some(Selector::majority_vote(None)),
                Some(Selector::by_execution("1-E001")),
                Some(Selector::ByExecutions(BTreeSet::from([Rid::new("1-E000")]))),
                Some(Selector::custom(|g: &[FeatureRecord]| g.last().cloned())),
            ];
            for selector in &selectors {
                let expected = reference_sort_and_select(&f, records.clone(), selector.as_ref());
                let instants = records.iter().map(instant).collect();
                let fast = sort_and_select(&f, records.clone(), instants, selector.as_ref()).unwrap();
                proptest::prop_assert_eq!(&fast, &expected, "{:?}", selector);
                let mut sorted = records.clone();
                sort_records(&mut sorted);
                let applied = apply_selector(&f, sorted, selector.as_ref()).unwrap();
                proptest::prop_assert_eq!(&applied, &expected, "{:?}", selector);
                // Streamed, from input ordered by target only (as a bag index reads it),
                // each target's records in reverse input order; RIDs unique, as in a bag
                // (full ties keep their input order, which the reversal changes).
                let unique: Vec<FeatureRecord> = records.iter().cloned().enumerate().map(|(i, mut r)| {
                    r.rid = Some(Rid::new(format!("1-B{:03}", (i * 7) % 24 + 100 * (i % 2))));
                    r
                }).collect();
                let expected = reference_sort_and_select(&f, unique.clone(), selector.as_ref());
                let mut by_target = unique;
                by_target.reverse();
                by_target.sort_by(|a, b| a.target().cmp(&b.target()));
                let timed = by_target.into_iter().map(|r| {
                    let at = instant(&r);
                    Ok::<_, Error>((r, at))
                });
                let streamed: Vec<FeatureRecord> = select_stream(&f, selector.clone(), timed)
                    .collect::<Result<_, _>>()
                    .unwrap();
                proptest::prop_assert_eq!(&streamed, &expected, "{:?}", selector);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn newest_is_invariant_under_input_permutation(offsets in proptest::collection::vec(-12i32..=12, 1..8), seed in 0u64..1000) {
            let f = glaucoma();
            let mut v: Vec<FeatureRecord> = offsets.iter().enumerate().map(|(i, off)| {
                let sign = if *off < 0 { '-' } else { '+' };
                let rct = format!("2026-05-28 10:00:00{sign}{:02}", off.abs());
                rec(&f, &format!("1-A{i:03}"), "1-E001", "1-I001", "Mild", &rct)
            }).collect();
            let a = apply_selector(&f, v.clone(), Some(&Selector::newest())).unwrap();
            let n = v.len();
            v.rotate_left((seed as usize) % n);
            let b = apply_selector(&f, v, Some(&Selector::newest())).unwrap();
            proptest::prop_assert_eq!(&a, &b);
            // The winner has the greatest instant: the most negative offset.
            let min_off = offsets.iter().min().unwrap();
            let winner = &a[0];
            let rct = winner.rct().unwrap();
            let sign = if *min_off < 0 { '-' } else { '+' };
            let suffix = format!("{}{:02}", sign, min_off.abs());
            proptest::prop_assert!(rct.ends_with(&suffix), "{} does not end with {}", rct, suffix);
        }
    }
}
