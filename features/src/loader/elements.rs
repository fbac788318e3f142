//! The adapters' shared element pipeline: which elements, in which order, with which
//! targets, and how one `(sample, target, rid)` item is produced.
//!
//! [`ElementPlan::build`] enumerates the element table's rows (reachable from the dataset, or
//! its members), sorts them by RID, resolves targets with the one resolver
//! ([`crate::resolve_targets`]), applies `missing`, and checks that every kept asset file is
//! on disk. [`ElementDataset`] then produces items lazily from the plan and the user's
//! closures; it is a [`SampleSource`], so the [`Loader`](super::Loader) batches it.
//!
//! Nothing here knows a framework: samples are a type parameter, targets come out as a
//! [`Label`] that each adapter collates into its tensors.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::collate::RowColumns;
use super::SampleSource;
use crate::{
    resolve_targets, DatasetLike, Error, Missing, ResolvedTarget, Rid, Row, TableName, TargetRules,
    TargetValue, Targets, MAX_LISTED_RIDS,
};

/// The error a user closure may return: anything that is an error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Loads the sample of an asset element from its file: `(absolute path, element row)`.
pub type FileLoader<S> = Arc<dyn Fn(&Path, &Row) -> Result<S, BoxError> + Send + Sync>;
/// Makes the sample of a non-asset element from its row.
pub type RowLoader<S> = Arc<dyn Fn(&Row) -> Result<S, BoxError> + Send + Sync>;
/// Transforms a loaded sample (resize, normalize, augment, …).
pub type Transform<S> = Arc<dyn Fn(S) -> Result<S, BoxError> + Send + Sync>;
/// Turns an element's resolved target (`None` when missing under [`Missing::Unknown`]) into
/// the label the model trains on.
pub type TargetTransform = Arc<dyn Fn(Option<&Target>) -> Result<Label, BoxError> + Send + Sync>;

/// The resolved target of one element, as a `target_transform` receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// One target name: its value (a feature record or a column value).
    Single(TargetValue),
    /// Several target names: each name's value, in request order (`None` = missing for that
    /// name, possible only under [`Missing::Unknown`]).
    Multi(IndexMap<String, Option<TargetValue>>),
}

impl Target {
    /// The value of a single target, or of target `name` of a multi-target.
    pub fn value(&self, name: &str) -> Option<&TargetValue> {
        match self {
            Target::Single(v) => Some(v),
            Target::Multi(map) => map.get(name).and_then(Option::as_ref),
        }
    }

    /// The default text of a single target (for a one-term feature, the term, e.g. `Severe`).
    pub fn label(&self) -> Option<String> {
        match self {
            Target::Single(v) => v.label(),
            Target::Multi(_) => None,
        }
    }
}

/// A framework-neutral label: what a `target_transform` returns and what adapters collate.
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    /// No target requested, or the element's target is missing and no transform was given.
    None,
    /// A class index (collated to an `int64` tensor of shape `[batch]`).
    Class(i64),
    /// A regression value (collated to a `float32` tensor of shape `[batch]`).
    Float(f64),
    /// A fixed-length vector (collated to a `float32` tensor `[batch, len]`).
    Vector(Vec<f32>),
    /// Several named labels (multi-target), collated per name.
    Map(IndexMap<String, Label>),
    /// The resolved target itself (no `target_transform`); batches keep these as a list.
    Raw(Target),
}

/// Which elements an adapter yields and with which targets.
#[derive(Debug, Clone)]
pub struct ElementQuery {
    /// Target names (with optional selectors); empty = no targets.
    pub targets: Targets,
    /// What to do with elements missing a target. Adapters default to [`Missing::Error`].
    pub missing: Missing,
    /// `true`: rows reachable from the dataset (members and rows reached by foreign keys);
    /// `false`: only the dataset's (recursive) members.
    pub reachable: bool,
    /// The checks [`crate::resolve_targets`] applies. Default
    /// [`TargetRules::ADAPTERS`]: several differing values for one target without a selector
    /// are an error listing the conflicting record RIDs, as in restructure; any feature may
    /// be a target (a float measurement is a regression target), unlike restructure, whose
    /// class folders need vocabulary terms. See [`ElementOptions::enforce_vocabulary`].
    pub rules: TargetRules,
}

impl Default for ElementQuery {
    fn default() -> Self {
        ElementQuery {
            targets: Targets::new(),
            missing: Missing::Error,
            reachable: true,
            rules: TargetRules::ADAPTERS,
        }
    }
}

/// One element the adapter will yield.
#[derive(Debug, Clone)]
pub struct PlannedElement {
    /// The element's RID.
    pub rid: Rid,
    /// The element row.
    pub row: Row,
    /// The asset file (asset tables only; checked to exist at construction).
    pub asset_path: Option<PathBuf>,
    /// The resolved target (`None`: no targets requested, or missing under `Unknown`).
    pub target: Option<Target>,
}

/// The elements of one table of a dataset, in RID order, with their targets resolved.
#[derive(Debug, Clone)]
pub struct ElementPlan {
    /// The element table.
    pub table: TableName,
    /// Whether it is an asset table (samples come from files).
    pub is_asset: bool,
    /// The resolved targets, in request order.
    pub targets: Vec<ResolvedTarget>,
    /// The kept elements, sorted by RID.
    pub elements: Vec<PlannedElement>,
    /// The columns row samples collate into (non-asset tables; empty for asset tables).
    pub row_columns: RowColumns,
}

impl ElementPlan {
    /// Enumerates, resolves and checks the elements of `element_table` (bare or qualified).
    ///
    /// Errors: unknown table; unknown target name; with `require_vocabulary`, a feature
    /// target without a vocabulary term column; with `refuse_conflicts` (the default),
    /// annotators who disagree and no selector ([`Error::ConflictingTargetValues`], naming the
    /// target and the record RIDs); unlabeled
    /// elements under [`Missing::Error`] (listing RIDs); kept asset files not on disk
    /// ([`Error::MissingAssetFiles`], listing RIDs and file names).
    pub fn build<D: DatasetLike>(
        dataset: &D,
        element_table: &str,
        query: &ElementQuery,
    ) -> Result<Self, Error> {
        let table = dataset.model().resolve_table(element_table)?;
        let name = table.name.clone();
        let is_asset = table.is_asset();
        let row_columns = if is_asset {
            RowColumns::default()
        } else {
            RowColumns::of_table(table)
        };
        let mut rows = if query.reachable {
            dataset.reachable_rows(&name)?
        } else {
            let mut members = dataset.list_dataset_members(true, None)?;
            members.shift_remove(&name).unwrap_or_default()
        };
        // Recursive members can repeat a row (an Image in Training and Testing): one element
        // per RID, in RID order, whatever the enumeration order was.
        rows.sort_by_key(Row::rid);
        let mut seen = HashSet::new();
        rows.retain(|r| seen.insert(r.rid()));

        let resolution = resolve_targets(
            dataset,
            &name,
            &rows,
            &query.targets,
            query.missing,
            query.rules,
        )?;
        let names: Vec<String> = resolution.targets.iter().map(|t| t.name.clone()).collect();

        let mut elements = Vec::with_capacity(resolution.elements.len());
        let mut missing_files = Vec::new();
        for element in resolution.elements {
            let asset_path = if is_asset {
                let path = dataset.asset_path(&name, &element.row);
                if path.is_none() {
                    let file = element
                        .row
                        .text("Filename")
                        .or_else(|| element.row.text("URL"))
                        .unwrap_or("")
                        .to_string();
                    missing_files.push((element.rid.clone(), file));
                }
                path
            } else {
                None
            };
            let target = combine_target(&names, element.values);
            elements.push(PlannedElement {
                rid: element.rid,
                row: element.row,
                asset_path,
                target,
            });
        }
        if !missing_files.is_empty() {
            let count = missing_files.len();
            missing_files.truncate(MAX_LISTED_RIDS);
            return Err(Error::MissingAssetFiles {
                table: name.to_string(),
                count,
                listed: missing_files,
                more: count.saturating_sub(MAX_LISTED_RIDS),
            });
        }
        tracing::debug!(table = %name, elements = elements.len(), "element plan built");
        Ok(ElementPlan {
            table: name,
            is_asset,
            targets: resolution.targets,
            elements,
            row_columns,
        })
    }

    /// The RIDs of the kept elements, in order.
    pub fn rids(&self) -> impl Iterator<Item = &Rid> {
        self.elements.iter().map(|e| &e.rid)
    }
}

/// One target → [`Target::Single`]; several → [`Target::Multi`] unless all are missing.
fn combine_target(names: &[String], values: Vec<Option<TargetValue>>) -> Option<Target> {
    match values.len() {
        0 => None,
        1 => values.into_iter().next().flatten().map(Target::Single),
        _ if values.iter().all(Option::is_none) => None,
        _ => Some(Target::Multi(names.iter().cloned().zip(values).collect())),
    }
}

/// A sample as an item carries it: loaded by the user's loader, or the element row itself
/// (a non-asset table without a loader, as DerivaML's tabular example).
#[derive(Debug, Clone, PartialEq)]
pub enum Sample<S> {
    /// What the sample loader (then the transform) produced.
    Loaded(S),
    /// The element row.
    Row(Row),
}

/// One item: `(sample, target, rid)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Element<S> {
    /// The sample.
    pub sample: Sample<S>,
    /// The label ([`Label::None`] when no targets were requested).
    pub target: Label,
    /// The element's RID, passed through untransformed.
    pub rid: Rid,
}

impl<S> Element<S> {
    /// The item as DerivaML's tuple `(sample, target, rid)`.
    pub fn into_parts(self) -> (Sample<S>, Label, Rid) {
        (self.sample, self.target, self.rid)
    }
}

/// The user's side of an adapter: how to load, transform and label. Built with chained
/// setters; the adapters add their own options beside it.
pub struct ElementOptions<S> {
    /// Loads an asset element's file (required for asset tables).
    pub sample_loader: Option<FileLoader<S>>,
    /// Makes a non-asset element's sample from its row (default: the row itself).
    pub row_loader: Option<RowLoader<S>>,
    /// Applied to every loaded sample.
    pub transform: Option<Transform<S>>,
    /// Target names, missing policy and enumeration.
    pub query: ElementQuery,
    /// Turns targets into labels (default: [`Label::Raw`]).
    pub target_transform: Option<TargetTransform>,
}

impl<S> Default for ElementOptions<S> {
    fn default() -> Self {
        ElementOptions {
            sample_loader: None,
            row_loader: None,
            transform: None,
            query: ElementQuery::default(),
            target_transform: None,
        }
    }
}

impl<S> Clone for ElementOptions<S> {
    fn clone(&self) -> Self {
        ElementOptions {
            sample_loader: self.sample_loader.clone(),
            row_loader: self.row_loader.clone(),
            transform: self.transform.clone(),
            query: self.query.clone(),
            target_transform: self.target_transform.clone(),
        }
    }
}

impl<S> fmt::Debug for ElementOptions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElementOptions")
            .field("sample_loader", &self.sample_loader.is_some())
            .field("row_loader", &self.row_loader.is_some())
            .field("transform", &self.transform.is_some())
            .field("query", &self.query)
            .field("target_transform", &self.target_transform.is_some())
            .finish()
    }
}

impl<S> ElementOptions<S> {
    /// Loads asset files with `f(path, row)`; any error type converts.
    pub fn sample_loader<F, E>(mut self, f: F) -> Self
    where
        F: Fn(&Path, &Row) -> Result<S, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        self.sample_loader = Some(Arc::new(move |p, r| f(p, r).map_err(Into::into)));
        self
    }

    /// Makes non-asset samples with `f(row)` instead of yielding the row.
    pub fn row_loader<F, E>(mut self, f: F) -> Self
    where
        F: Fn(&Row) -> Result<S, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        self.row_loader = Some(Arc::new(move |r| f(r).map_err(Into::into)));
        self
    }

    /// Applies `f` to every loaded sample.
    pub fn transform<F, E>(mut self, f: F) -> Self
    where
        F: Fn(S) -> Result<S, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        self.transform = Some(Arc::new(move |s| f(s).map_err(Into::into)));
        self
    }

    /// Requests targets (list form via [`Targets::names`], dict form via [`Targets::with`]).
    pub fn targets(mut self, targets: impl Into<Targets>) -> Self {
        self.query.targets = targets.into();
        self
    }

    /// Turns each element's target (or `None`) into a [`Label`].
    /// [`ClassLabels::target_transform`](crate::ClassLabels::target_transform) is one: a
    /// vocabulary feature's terms as class indices.
    pub fn target_transform<F, E>(mut self, f: F) -> Self
    where
        F: Fn(Option<&Target>) -> Result<Label, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        self.target_transform = Some(Arc::new(move |t| f(t).map_err(Into::into)));
        self
    }

    /// Sets the missing-target policy (adapters default to [`Missing::Error`]).
    pub fn missing(mut self, missing: Missing) -> Self {
        self.query.missing = missing;
        self
    }

    /// Reachable rows (`true`, default) or only dataset members (`false`).
    pub fn reachable(mut self, reachable: bool) -> Self {
        self.query.reachable = reachable;
        self
    }

    /// Restructure's `enforce_vocabulary`, both [`TargetRules`] at once: `true` refuses a
    /// target whose annotators disagree unless it has a selector, and a feature target without
    /// a vocabulary term column; `false` takes the first value by RCT and accepts any feature.
    /// The default is [`TargetRules::ADAPTERS`] (conflicts refused, any feature); set the
    /// rules one by one with [`Self::require_vocabulary`] and [`Self::refuse_conflicts`].
    ///
    /// ```
    /// use deriva_bag_features::loader::elements::ElementOptions;
    /// use deriva_bag_features::TargetRules;
    /// let options = ElementOptions::<Vec<u8>>::default();
    /// assert_eq!(options.query.rules, TargetRules::ADAPTERS);
    /// assert_eq!(options.clone().enforce_vocabulary(true).query.rules, TargetRules::from(true));
    /// let lenient = options.enforce_vocabulary(false).query.rules;
    /// assert!(!lenient.refuse_conflicts && !lenient.require_vocabulary);
    /// ```
    pub fn enforce_vocabulary(mut self, yes: bool) -> Self {
        self.query.rules = TargetRules::from(yes);
        self
    }

    /// Requires (or not, the default) a vocabulary term column on every feature target.
    pub fn require_vocabulary(mut self, yes: bool) -> Self {
        self.query.rules.require_vocabulary = yes;
        self
    }

    /// Refuses (the default) or resolves to the first value by RCT several differing values
    /// of one target without a selector.
    pub fn refuse_conflicts(mut self, yes: bool) -> Self {
        self.query.rules.refuse_conflicts = yes;
        self
    }
}

/// Lazily produces `(sample, target, rid)` items from a plan; a [`SampleSource`].
pub struct ElementDataset<S> {
    plan: Arc<ElementPlan>,
    options: ElementOptions<S>,
}

impl<S> ElementDataset<S> {
    /// Builds the plan and checks the options against it. `loader_example` is a working
    /// sample loader for the calling adapter, quoted in [`Error::SampleLoaderRequired`].
    pub fn build<D: DatasetLike>(
        dataset: &D,
        element_table: &str,
        options: ElementOptions<S>,
        loader_example: &str,
    ) -> Result<Self, Error> {
        // Check the loader before the (possibly slow) enumeration, from the model alone.
        let table = dataset.model().resolve_table(element_table)?;
        if table.is_asset() && options.sample_loader.is_none() {
            return Err(Error::SampleLoaderRequired {
                table: table.name.to_string(),
                example: loader_example.to_string(),
            });
        }
        if !table.is_asset() && options.sample_loader.is_some() {
            return Err(Error::Invalid(format!(
                "element table {} is not an asset table, so there is no file for a \
                 sample_loader; use row_loader to build samples from rows",
                table.name
            )));
        }
        let plan = ElementPlan::build(dataset, element_table, &options.query)?;
        Ok(ElementDataset {
            plan: Arc::new(plan),
            options,
        })
    }

    /// The plan: table, targets and elements.
    pub fn plan(&self) -> &ElementPlan {
        &self.plan
    }

    /// The item at `index` (the [`SampleSource::get`] of this type).
    pub fn element(&self, index: usize) -> Result<Element<S>, Error> {
        let element = self.plan.elements.get(index).ok_or_else(|| {
            Error::Invalid(format!(
                "index {index} is out of range: {} has {} elements",
                self.plan.table,
                self.plan.elements.len()
            ))
        })?;
        let fail = |stage: &'static str, source: BoxError| Error::SampleLoad {
            table: self.plan.table.to_string(),
            rid: element.rid.clone(),
            path: element.asset_path.clone(),
            stage,
            source,
        };
        let loaded = match (&element.asset_path, &self.options.sample_loader) {
            (Some(path), Some(loader)) => Some(("sample_loader", loader(path, &element.row))),
            _ => self
                .options
                .row_loader
                .as_ref()
                .map(|f| ("row_loader", f(&element.row))),
        };
        let sample = match loaded {
            Some((stage, result)) => {
                let mut s = result.map_err(|e| fail(stage, e))?;
                if let Some(t) = &self.options.transform {
                    s = t(s).map_err(|e| fail("transform", e))?;
                }
                Sample::Loaded(s)
            }
            None => Sample::Row(element.row.clone()),
        };
        let target = match (&self.options.target_transform, self.plan.targets.is_empty()) {
            (_, true) => Label::None,
            (Some(tt), false) => {
                tt(element.target.as_ref()).map_err(|e| fail("target_transform", e))?
            }
            (None, false) => element.target.clone().map_or(Label::None, Label::Raw),
        };
        Ok(Element {
            sample,
            target,
            rid: element.rid.clone(),
        })
    }
}

impl<S> SampleSource for ElementDataset<S> {
    type Item = Element<S>;
    type Error = Error;

    fn len(&self) -> usize {
        self.plan.elements.len()
    }

    fn get(&self, index: usize) -> Result<Element<S>, Error> {
        self.element(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        apply_selector, find_features, lookup_feature, testing, CatalogModel, DatasetInfo, Feature,
        FeatureRecord, Members, Selector, Value,
    };

    /// Two images of the demo model: `1-I001` graded Severe (`1-A001`, older) then Normal
    /// (`1-A002`) by two annotators; `1-I002` graded Mild once.
    struct Disagreeing {
        info: DatasetInfo,
        model: CatalogModel,
    }

    impl Disagreeing {
        fn new() -> Self {
            Disagreeing {
                info: DatasetInfo {
                    rid: Rid::new("1-D001"),
                    version: None,
                    types: vec!["Training".into()],
                    description: None,
                },
                model: testing::demo_model().unwrap(),
            }
        }

        fn images() -> Vec<Row> {
            let columns: Arc<[Arc<str>]> = ["RID", "Filename"].map(Arc::from).into();
            ["1-I001", "1-I002"]
                .iter()
                .map(|rid| {
                    Row::new(
                        columns.clone(),
                        vec![
                            Value::Text((*rid).into()),
                            Value::Text(format!("{rid}.png")),
                        ],
                    )
                })
                .collect()
        }

        fn record(
            feature: &Feature,
            rid: &str,
            image: &str,
            rct: &str,
            term: &str,
        ) -> FeatureRecord {
            let mut fields = IndexMap::new();
            fields.insert("Execution".to_string(), serde_json::json!("1-E001"));
            fields.insert("Feature_Name".to_string(), serde_json::json!("Glaucoma"));
            fields.insert("RCT".to_string(), serde_json::json!(rct));
            fields.insert("Glaucoma".to_string(), serde_json::json!(term));
            fields.insert("Image".to_string(), serde_json::json!(image));
            FeatureRecord {
                feature: feature.id(),
                target_column: "Image".into(),
                rid: Some(Rid::new(rid)),
                fields,
            }
        }
    }

    impl DatasetLike for Disagreeing {
        fn info(&self) -> &DatasetInfo {
            &self.info
        }
        fn model(&self) -> &CatalogModel {
            &self.model
        }
        fn list_dataset_members(&self, _: bool, _: Option<usize>) -> Result<Members, Error> {
            let image = self.model.resolve_table("demo:Image")?.name.clone();
            Ok([(image, Self::images())].into_iter().collect())
        }
        fn list_dataset_children(&self, _: bool) -> Result<Vec<DatasetInfo>, Error> {
            Ok(Vec::new())
        }
        fn list_dataset_parents(&self, _: bool) -> Result<Vec<DatasetInfo>, Error> {
            Ok(Vec::new())
        }
        fn dataset(&self, _: &Rid) -> Result<Self, Error> {
            Ok(Disagreeing::new())
        }
        fn find_features(&self, table: Option<&str>) -> Result<Vec<Feature>, Error> {
            find_features(&self.model, table)
        }
        fn lookup_feature(&self, table: &str, name: &str) -> Result<Feature, Error> {
            lookup_feature(&self.model, table, name)
        }
        fn feature_values(
            &self,
            table: &str,
            name: &str,
            selector: Option<&Selector>,
        ) -> Result<Vec<FeatureRecord>, Error> {
            let feature = lookup_feature(&self.model, table, name)?;
            let records = vec![
                Self::record(
                    &feature,
                    "1-A001",
                    "1-I001",
                    "2026-05-28T10:00:00Z",
                    "Severe",
                ),
                Self::record(
                    &feature,
                    "1-A002",
                    "1-I001",
                    "2026-05-28T11:00:00Z",
                    "Normal",
                ),
                Self::record(&feature, "1-A003", "1-I002", "2026-05-28T10:00:00Z", "Mild"),
            ];
            apply_selector(&feature, records, selector)
        }
        fn list_workflow_executions(&self, _: &str) -> Result<Vec<Rid>, Error> {
            Ok(Vec::new())
        }
        fn reachable_rows(&self, _: &TableName) -> Result<Vec<Row>, Error> {
            Ok(Self::images())
        }
        fn table_rows(&self, _: &TableName) -> Result<Vec<Row>, Error> {
            Ok(Self::images())
        }
        fn asset_path(&self, _: &TableName, row: &Row) -> Option<PathBuf> {
            row.text("Filename").map(PathBuf::from)
        }
    }

    fn grades(plan: &ElementPlan) -> Vec<(String, Option<String>)> {
        plan.elements
            .iter()
            .map(|e| {
                let label = e.target.as_ref().and_then(Target::label);
                (e.rid.to_string(), label)
            })
            .collect()
    }

    #[test]
    fn disagreeing_annotators_without_a_selector_are_an_error_naming_the_target_and_rids() {
        let query = ElementQuery {
            targets: Targets::names(["Glaucoma"]),
            ..ElementQuery::default()
        };
        assert!(query.rules.refuse_conflicts, "restructure's default");
        let err = ElementPlan::build(&Disagreeing::new(), "demo:Image", &query).unwrap_err();
        match &err {
            Error::ConflictingTargetValues {
                target,
                conflicts,
                more,
                ..
            } => {
                assert_eq!(target, "Glaucoma");
                assert_eq!(
                    conflicts,
                    &vec![(
                        "1-I001".to_string(),
                        vec![Rid::new("1-A001"), Rid::new("1-A002")]
                    )]
                );
                assert_eq!(*more, 0);
            }
            other => panic!("expected a conflict error, got {other}"),
        }
        assert!(
            err.to_string().contains("1-I001: [1-A001, 1-A002]"),
            "{err}"
        );
    }

    #[test]
    fn without_enforce_vocabulary_the_oldest_label_wins() {
        let options = ElementOptions::<u8>::default()
            .targets(Targets::names(["Glaucoma"]))
            .enforce_vocabulary(false);
        let plan = ElementPlan::build(&Disagreeing::new(), "demo:Image", &options.query).unwrap();
        assert_eq!(
            grades(&plan),
            [
                ("1-I001".to_string(), Some("Severe".to_string())),
                ("1-I002".to_string(), Some("Mild".to_string())),
            ]
        );
    }

    #[test]
    fn conflict_checking_and_the_vocabulary_rule_are_separate_switches() {
        let lenient = ElementOptions::<u8>::default()
            .targets(Targets::names(["Glaucoma"]))
            .refuse_conflicts(false);
        assert!(!lenient.query.rules.require_vocabulary);
        let plan = ElementPlan::build(&Disagreeing::new(), "demo:Image", &lenient.query).unwrap();
        assert_eq!(grades(&plan)[0].1.as_deref(), Some("Severe"));
        // Requiring a vocabulary alone keeps conflicts refused (Glaucoma has its term column).
        let strict = ElementOptions::<u8>::default()
            .targets(Targets::names(["Glaucoma"]))
            .require_vocabulary(true);
        assert_eq!(strict.query.rules, TargetRules::from(true));
        let err = ElementPlan::build(&Disagreeing::new(), "demo:Image", &strict.query).unwrap_err();
        assert!(
            matches!(err, Error::ConflictingTargetValues { ref target, .. } if target == "Glaucoma"),
            "{err}"
        );
    }

    #[test]
    fn with_a_selector_disagreeing_annotators_are_resolved_without_error() {
        let options = ElementOptions::<u8>::default()
            .targets(Targets::new().with("Glaucoma", Selector::Newest));
        let plan = ElementPlan::build(&Disagreeing::new(), "demo:Image", &options.query).unwrap();
        assert_eq!(
            grades(&plan),
            [
                ("1-I001".to_string(), Some("Normal".to_string())),
                ("1-I002".to_string(), Some("Mild".to_string())),
            ]
        );
    }

    fn column(v: &str) -> TargetValue {
        TargetValue::Column {
            name: "Subject".into(),
            value: Value::Text(v.into()),
        }
    }

    #[test]
    fn one_target_is_single_and_several_are_a_map_keyed_by_name() {
        let names = vec!["Subject".to_string()];
        assert_eq!(
            combine_target(&names, vec![Some(column("1-S001"))]),
            Some(Target::Single(column("1-S001")))
        );
        assert_eq!(combine_target(&names, vec![None]), None);
        assert_eq!(combine_target(&[], vec![]), None);

        let two = vec!["Subject".to_string(), "Glaucoma".to_string()];
        let t = combine_target(&two, vec![Some(column("1-S001")), None]).unwrap();
        assert_eq!(t.value("Subject"), Some(&column("1-S001")));
        assert_eq!(t.value("Glaucoma"), None);
        match t {
            Target::Multi(map) => {
                assert_eq!(map.keys().collect::<Vec<_>>(), ["Subject", "Glaucoma"])
            }
            other => panic!("expected a map, got {other:?}"),
        }
        // Missing under Unknown is `None`, even for multi-target (as the reference does).
        assert_eq!(combine_target(&two, vec![None, None]), None);
    }

    #[test]
    fn options_default_to_missing_error_and_reachable() {
        let o = ElementOptions::<u8>::default();
        assert_eq!(o.query.missing, Missing::Error);
        assert!(o.query.reachable);
        assert_eq!(o.query.rules, TargetRules::ADAPTERS);
        assert!(o.query.targets.is_empty());
        let o = o
            .missing(Missing::Skip)
            .reachable(false)
            .targets(Targets::names(["Glaucoma"]));
        assert_eq!(o.query.missing, Missing::Skip);
        assert!(!o.query.reachable);
        assert_eq!(o.query.targets.len(), 1);
    }
}
