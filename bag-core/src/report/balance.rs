//! Label balance per split and feature: label counts under the selector, unlabeled targets,
//! and targets with several annotations (one per execution) and how many of them disagree.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use deriva_bag_features::{apply_selector, DatasetLike, Feature, FeatureRecord, Rid, Selector};
use serde::Serialize;

use super::agreement::{agreement, Agreement};
use super::{label_column, label_text, ReportOptions, SkippedFeature, SplitData};
use crate::Result;

/// Balance and agreement of one feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureReport {
    /// The target table, `schema:table`.
    pub table: String,
    /// The feature name.
    pub feature: String,
    /// The column whose values are the labels.
    pub label_column: String,
    /// Every label counted in any split, sorted.
    pub labels: Vec<String>,
    /// One entry per split, in split order.
    pub splits: Vec<SplitBalance>,
    /// Agreement among executions over the whole dataset.
    pub agreement: Agreement,
}

/// One feature in one split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitBalance {
    /// The split's RID.
    pub split: Rid,
    /// Rows of the target table reachable from the split.
    pub targets: usize,
    /// Selected labels per label value (a target with qualifier columns, e.g. an image
    /// side, may count once per qualifier value).
    pub labels: BTreeMap<String, usize>,
    /// Targets with no selected label.
    pub unlabeled: usize,
    /// Targets with at least one annotation.
    pub annotated: usize,
    /// Targets annotated by two or more executions.
    pub several: usize,
    /// Of those, targets whose annotations are not all one label.
    pub disagreeing: usize,
    /// `disagreeing / several`; `None` when no target has several annotations.
    pub disagreement_share: Option<f64>,
}

/// One target (and qualifier values): its label per execution.
struct Ratings {
    target: String,
    labels: Vec<String>,
}

/// The balance of every feature with a label column; the others are skipped.
pub(crate) fn features<D: DatasetLike>(
    dataset: &D,
    splits: &[SplitData<D>],
    options: &ReportOptions,
) -> Result<(Vec<FeatureReport>, Vec<SkippedFeature>)> {
    let mut all = dataset.find_features(None)?;
    all.sort_by(|a, b| (&a.target_table, &a.name).cmp(&(&b.target_table, &b.name)));
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    // Reachable target RIDs per (split, table): several features usually share a table.
    let mut reachable: HashMap<(usize, String), Vec<Rid>> = HashMap::new();
    for feature in &all {
        let table = feature.target_table.to_string();
        let Some(column) = label_column(feature, options) else {
            skipped.push(SkippedFeature {
                table,
                feature: feature.name.clone(),
                reason: "no vocabulary term column to count labels of".to_string(),
            });
            continue;
        };
        let records = dataset.feature_values(&table, &feature.name, None)?;
        let selector = match &options.selector {
            // Vote over the label column this feature is counted by.
            Selector::MajorityVote(_) => Selector::majority_vote(Some(&column)),
            other => other.clone(),
        };
        let ratings = ratings(feature, &records, &column);
        let raters: BTreeSet<&str> = records.iter().filter_map(|r| r.execution()).collect();
        let raters = raters.len();
        let rated: Vec<Vec<String>> = ratings.iter().map(|r| r.labels.clone()).collect();
        let selected = apply_selector(feature, records, Some(&selector))?;
        // (target, label) of each selected record with a label.
        let selected: Vec<(&str, String)> = selected
            .iter()
            .filter_map(|r| Some((r.target()?, label_text(r.get(&column))?)))
            .collect();

        let mut per_split = Vec::with_capacity(splits.len());
        let mut labels = BTreeSet::new();
        for (i, split) in splits.iter().enumerate() {
            let rids = match reachable.get(&(i, table.clone())) {
                Some(rids) => rids,
                None => {
                    let rids = split.handle.reachable_rids(&feature.target_table)?;
                    reachable.entry((i, table.clone())).or_insert(rids)
                }
            };
            let targets: HashSet<&str> = rids.iter().map(Rid::as_str).collect();
            let balance = split_balance(&split.info.rid, &targets, &selected, &ratings);
            labels.extend(balance.labels.keys().cloned());
            per_split.push(balance);
        }
        reports.push(FeatureReport {
            table,
            feature: feature.name.clone(),
            label_column: column,
            labels: labels.into_iter().collect(),
            splits: per_split,
            agreement: agreement(&rated, raters),
        });
    }
    Ok((reports, skipped))
}

/// Groups records by target and qualifier values, keeping one label per execution (the
/// newest: records arrive in time order). A record without an execution is its own rater;
/// a NULL label is no rating.
fn ratings(feature: &Feature, records: &[FeatureRecord], column: &str) -> Vec<Ratings> {
    let mut groups: BTreeMap<(&str, Vec<String>), BTreeMap<String, String>> = BTreeMap::new();
    for record in records {
        let (Some(target), Some(label)) = (record.target(), label_text(record.get(column))) else {
            continue;
        };
        let qualifiers = feature
            .qualifier_columns
            .iter()
            .map(|q| label_text(record.get(q)).unwrap_or_default())
            .collect();
        let rater = match (record.execution(), &record.rid) {
            (Some(e), _) => e.to_string(),
            (None, Some(rid)) => format!("record {rid}"),
            (None, None) => format!("record #{}", groups.len()),
        };
        groups
            .entry((target, qualifiers))
            .or_default()
            .insert(rater, label);
    }
    groups
        .into_iter()
        .map(|((target, _), by_rater)| Ratings {
            target: target.to_string(),
            labels: by_rater.into_values().collect(),
        })
        .collect()
}

fn split_balance(
    split: &Rid,
    targets: &HashSet<&str>,
    selected: &[(&str, String)],
    ratings: &[Ratings],
) -> SplitBalance {
    let inside = |target: &str| targets.contains(target);
    let mut labels: BTreeMap<String, usize> = BTreeMap::new();
    let mut labelled = HashSet::new();
    for (target, label) in selected {
        if inside(target) {
            match labels.get_mut(label) {
                Some(n) => *n += 1,
                None => {
                    labels.insert(label.clone(), 1);
                }
            }
            labelled.insert(*target);
        }
    }
    let mut annotated = HashSet::new();
    let (mut several, mut disagreeing) = (0, 0);
    for r in ratings.iter().filter(|r| inside(&r.target)) {
        annotated.insert(r.target.as_str());
        if r.labels.len() >= 2 {
            several += 1;
            if r.labels.iter().any(|l| *l != r.labels[0]) {
                disagreeing += 1;
            }
        }
    }
    SplitBalance {
        split: split.clone(),
        targets: targets.len(),
        labels,
        unlabeled: targets.iter().filter(|t| !labelled.contains(*t)).count(),
        annotated: annotated.len(),
        several,
        disagreeing,
        disagreement_share: (several > 0).then(|| disagreeing as f64 / several as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deriva_bag_features::{FeatureId, Value};

    fn record(target: &str, execution: &str, label: &str) -> FeatureRecord {
        let id = FeatureId {
            schema: "demo".into(),
            table: "Execution_Image_Glaucoma".into(),
            name: "Glaucoma".into(),
        };
        FeatureRecord::from_values(
            id,
            "Image".into(),
            None,
            [
                ("Execution".to_string(), Value::Text(execution.into())),
                ("Glaucoma".to_string(), Value::Text(label.into())),
                ("Image".to_string(), Value::Text(target.into())),
            ],
        )
    }

    #[test]
    fn ratings_keep_one_label_per_execution_the_newest() {
        let model = deriva_bag_features::testing::demo_model().unwrap();
        let feature =
            deriva_bag_features::lookup_feature(&model, "demo:Image", "Glaucoma").unwrap();
        // In time order, as feature_values returns them.
        let records = vec![
            record("1-I001", "1-E001", "Normal"),
            record("1-I001", "1-E002", "Normal"),
            record("1-I001", "1-E001", "Severe"),
            record("1-I002", "1-E001", "Mild"),
        ];
        let r = ratings(&feature, &records, "Glaucoma");
        let got: Vec<(&str, Vec<&str>)> = r
            .iter()
            .map(|r| {
                (
                    r.target.as_str(),
                    r.labels.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("1-I001", vec!["Severe", "Normal"]),
                ("1-I002", vec!["Mild"])
            ]
        );
    }

    #[test]
    fn split_balance_counts_only_the_split_s_targets() {
        let selected = vec![
            ("1-I001", "Severe".to_string()),
            ("1-I003", "Mild".to_string()),
        ];
        let ratings = vec![
            Ratings {
                target: "1-I001".into(),
                labels: vec!["Normal".into(), "Severe".into()],
            },
            Ratings {
                target: "1-I003".into(),
                labels: vec!["Mild".into(), "Mild".into()],
            },
        ];
        let targets: HashSet<&str> = ["1-I001", "1-I002"].into_iter().collect();
        let b = split_balance(&Rid::from("1-D001"), &targets, &selected, &ratings);
        assert_eq!(b.targets, 2);
        assert_eq!(b.labels, BTreeMap::from([("Severe".to_string(), 1)]));
        assert_eq!(b.unlabeled, 1);
        assert_eq!((b.annotated, b.several, b.disagreeing), (1, 1, 1));
        assert_eq!(b.disagreement_share, Some(1.0));
    }
}
