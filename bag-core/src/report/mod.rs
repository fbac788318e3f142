//! The dataset report: label balance per split, annotator agreement, split leakage and
//! missing assets, computed before anyone trains on the data.
//!
//! *Splits* are the dataset's direct children (Training, Testing, Validation, …; a child
//! without a type is named by its RID), or the dataset itself when it nests none.
//!
//! - [`balance`]: per split and per feature, the label counts under the selector, the
//!   unlabeled targets, and the targets with several annotations and how many disagree. The
//!   targets of a split are the rows of the feature's table reachable from it (members and
//!   rows reached from them by foreign key, e.g. the Images of member Subjects), the scope of
//!   `feature_values`, restructure and the loaders: what training sees.
//! - [`agreement`]: per feature, over targets rated by at least two executions, percent
//!   agreement, Fleiss' kappa and the label confusion matrix.
//! - [`leakage`]: members of two splits, FK parents (e.g. Subjects) whose members fall in
//!   different splits, and identical asset content under different RIDs across splits
//!   (from the manifests' checksums).
//! - [`assets`]: asset rows whose file is not on disk, and rows that name no file.
//!
//! Everything but the asset files is computed over [`DatasetLike`]; asset files come
//! through [`AssetFiles`], which a bag implements from its manifests. The HTML page (cargo
//! feature `report-html`) is `Report::to_html` (and `Report::write_html`).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use deriva_bag_core::report::ReportOptions;
//! use deriva_bag_core::{fixtures, DatasetBag};
//! let tmp = tempfile::tempdir()?;
//! let bag = DatasetBag::open(&fixtures::small_bag(tmp.path())?.path)?;
//! let report = bag.report(&ReportOptions::default())?;
//! let names: Vec<&str> = report.splits.iter().map(|s| s.name.as_str()).collect();
//! assert_eq!(names, ["Training", "Testing", "1-D003"]);
//! let glaucoma = report.features.iter().find(|f| f.feature == "Glaucoma").unwrap();
//! assert_eq!(glaucoma.splits[0].labels["Severe"], 2); // newest label of I001 and I005
//! assert_eq!(report.leakage.members[0].rid.as_str(), "1-I005"); // in Training and Testing
//! # Ok(()) }
//! ```

pub mod agreement;
pub mod assets;
pub mod balance;
#[cfg(feature = "report-html")]
mod html;
pub mod leakage;

use std::collections::{BTreeMap, BTreeSet};

use deriva_bag_features::{DatasetInfo, DatasetLike, Feature, Rid, Row, Selector, TableName};
use serde::Serialize;

use crate::Result;

pub use agreement::Agreement;
pub use assets::{AssetFile, AssetFiles, AssetReport};
pub use balance::{FeatureReport, SplitBalance};
pub use leakage::Leakage;

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The selector that picks one label per target for the label counts (default newest).
    /// `MajorityVote(None)` votes over each feature's label column.
    pub selector: Selector,
    /// The label column of every feature that has it; others use their only (or first) term
    /// column. `None`: the majority selector's column if it names one.
    pub label_column: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            selector: Selector::newest(),
            label_column: None,
        }
    }
}

/// One split: a child dataset (or the dataset itself when it has no children).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    /// The split's dataset RID.
    pub rid: Rid,
    /// Its types joined by `+` (e.g. `Training`), else its RID.
    pub name: String,
    /// Its `Dataset_Type` terms.
    pub types: Vec<String>,
    /// Distinct members per element table (`schema:table`), this split and its nested
    /// datasets; tables without members are left out.
    pub members: BTreeMap<String, usize>,
}

/// A feature the report could not count labels for, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFeature {
    /// The target table, `schema:table`.
    pub table: String,
    /// The feature name.
    pub feature: String,
    /// Why, e.g. "no vocabulary term column".
    pub reason: String,
}

/// The dataset report (serde: the JSON of `deriva-bag report --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The dataset reported on.
    pub dataset: DatasetInfo,
    /// The selector that picked the counted label, e.g. `newest` or `majority:Glaucoma`.
    pub selector: String,
    /// The splits, in child order.
    pub splits: Vec<Split>,
    /// Label balance and agreement per feature, by target table then name.
    pub features: Vec<FeatureReport>,
    /// Features without a label column.
    pub skipped_features: Vec<SkippedFeature>,
    /// Rows and content shared between splits.
    pub leakage: Leakage,
    /// Asset files not on disk, and asset rows naming no file.
    pub assets: AssetReport,
}

impl crate::DatasetBag {
    /// The report of this dataset (see [`crate::report`]).
    ///
    /// Errors: a selector that does not fit a feature (e.g. `majority:COL` on a feature
    /// with several term columns where none is `COL` is skipped, not an error; a custom
    /// selector's error is returned), and the bag's own errors (index, manifests).
    pub fn report(&self, options: &ReportOptions) -> Result<Report> {
        build(self, self, options)
    }
}

/// A split's handle and what it holds.
pub(crate) struct SplitData<D> {
    pub info: Split,
    pub handle: D,
    /// Member RIDs per element table, with the member rows (parents are read from them).
    pub members: BTreeMap<TableName, Vec<Row>>,
}

/// Builds the report of `dataset`, reading asset files through `files`.
pub fn build<D: DatasetLike>(
    dataset: &D,
    files: &dyn AssetFiles,
    options: &ReportOptions,
) -> Result<Report> {
    let splits = splits(dataset)?;
    let (features, skipped_features) = balance::features(dataset, &splits, options)?;
    let assets = assets::scan(dataset, files)?;
    let leakage = leakage::find(dataset, &splits, &assets.files)?;
    Ok(Report {
        dataset: dataset.info().clone(),
        selector: selector_name(&options.selector),
        splits: splits.into_iter().map(|s| s.info).collect(),
        features,
        skipped_features,
        leakage,
        assets: assets.report,
    })
}

fn splits<D: DatasetLike>(dataset: &D) -> Result<Vec<SplitData<D>>> {
    let mut infos = dataset.list_dataset_children(false)?;
    if infos.is_empty() {
        infos.push(dataset.info().clone());
    }
    let mut out = Vec::with_capacity(infos.len());
    let mut seen = BTreeSet::new();
    for info in infos {
        if !seen.insert(info.rid.clone()) {
            continue;
        }
        let handle = dataset.dataset(&info.rid)?;
        let mut members = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for (table, mut rows) in handle.list_dataset_members(true, None)? {
            // A recursive listing repeats a member of two nested datasets: once per RID.
            let mut rids = BTreeSet::new();
            rows.retain(|r| r.rid().is_some_and(|rid| rids.insert(rid)));
            if rows.is_empty() {
                continue;
            }
            counts.insert(table.to_string(), rows.len());
            members.insert(table, rows);
        }
        let name = if info.types.is_empty() {
            info.rid.to_string()
        } else {
            info.types.join("+")
        };
        out.push(SplitData {
            info: Split {
                rid: info.rid.clone(),
                name,
                types: info.types.clone(),
                members: counts,
            },
            handle,
            members,
        });
    }
    Ok(out)
}

/// The label column of `feature` under `options`: the requested column when the feature
/// has it, else its only term column, else the first; `None` without term columns.
pub(crate) fn label_column(feature: &Feature, options: &ReportOptions) -> Option<String> {
    let requested = options.label_column.clone().or(match &options.selector {
        Selector::MajorityVote(column) => column.clone(),
        _ => None,
    });
    if let Some(column) = requested {
        if feature.column(&column).is_some() {
            return Some(column);
        }
    }
    feature.term_columns().into_iter().next()
}

/// How the report names a selector.
fn selector_name(selector: &Selector) -> String {
    match selector {
        Selector::Newest => "newest".to_string(),
        Selector::First => "first".to_string(),
        Selector::MajorityVote(None) => "majority".to_string(),
        Selector::MajorityVote(Some(column)) => format!("majority:{column}"),
        Selector::ByExecution(rid) => format!("execution:{rid}"),
        Selector::ByExecutions(rids) => format!(
            "executions:{}",
            rids.iter().map(Rid::as_str).collect::<Vec<_>>().join(",")
        ),
        Selector::Custom(_) => "custom".to_string(),
    }
}

/// The label text of a record's field: strings as they are, other JSON as JSON text;
/// `None` for NULL.
pub(crate) fn label_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deriva_bag_features::{lookup_feature, testing, ColumnRole};

    fn glaucoma() -> Feature {
        let model = testing::demo_model().unwrap();
        lookup_feature(&model, "demo:Image", "Glaucoma").unwrap()
    }

    #[test]
    fn the_label_column_is_the_requested_one_else_the_term_column() {
        let feature = glaucoma();
        let options = |selector: Selector, column: Option<&str>| ReportOptions {
            selector,
            label_column: column.map(str::to_string),
        };
        let label = |o: &ReportOptions| label_column(&feature, o);
        assert_eq!(
            label(&ReportOptions::default()).as_deref(),
            Some("Glaucoma")
        );
        // A column the feature lacks falls back to its term column.
        let majority = options(Selector::majority_vote(Some("Grade")), None);
        assert_eq!(label(&majority).as_deref(), Some("Glaucoma"));
        let explicit = options(Selector::newest(), Some("Grade"));
        assert_eq!(label(&explicit).as_deref(), Some("Glaucoma"));
    }

    #[test]
    fn a_feature_without_term_columns_has_no_label_column() {
        let mut feature = glaucoma();
        for column in &mut feature.columns {
            column.role = ColumnRole::Value;
        }
        assert_eq!(label_column(&feature, &ReportOptions::default()), None);
    }

    #[test]
    fn selectors_are_named_as_the_cli_spells_them() {
        assert_eq!(selector_name(&Selector::newest()), "newest");
        assert_eq!(selector_name(&Selector::first()), "first");
        assert_eq!(selector_name(&Selector::majority_vote(None)), "majority");
        assert_eq!(
            selector_name(&Selector::majority_vote(Some("Glaucoma"))),
            "majority:Glaucoma"
        );
        assert_eq!(
            selector_name(&Selector::by_execution("1-E001")),
            "execution:1-E001"
        );
    }
}
