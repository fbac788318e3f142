//! The class index a restructure records: for each target level whose folders are named by
//! a vocabulary feature's terms, the folder names of every term, sorted, as torchvision's
//! `ImageFolder` indexes folders.

use std::collections::BTreeMap;

use deriva_bag_features::{classify_targets, ClassLabels, DatasetLike, TableName};
use serde::Serialize;

use crate::error::Result;
use crate::options::RestructureOptions;
use crate::sanitize::{sanitize, LabelKind};

/// The classes of one target level of the tree.
///
/// `classes` are the folder names of **every term** of the feature's vocabulary (the terms
/// made safe by [`sanitize_label`](crate::sanitize_label)), sorted by code point as Python's
/// `sorted` sorts them, and `class_to_idx` maps each to its position. They are the
/// [`ClassLabels`] of the feature, which the adapters' `target_transform` uses, as folder names:
/// the two agree index for index unless a term holds `/`, `\` or NUL (made `_` in a folder
/// name, which can move it in the order).
///
/// How this relates to `ImageFolder(root)` on a split folder (e.g. `out/training`, whose
/// first level below is the first target): `ImageFolder` indexes the folders it finds, so its
/// classes are the subset of these that hold an image in that split, plus `unknown` when
/// unlabeled assets were kept (`Missing::Unknown`); `unknown` is not a class here, as a missing
/// label is none for [`ClassLabels`] (`-1`). The two indexings are equal exactly when every
/// term has an image in the split and no `unknown` folder exists; otherwise map
/// `ImageFolder`'s index `i` to `class_to_idx[dataset.classes[i]]` (or pass this mapping to a
/// `DatasetFolder` through `find_classes`), which keeps the indices of every split and
/// version equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetClasses {
    /// The target name, as requested.
    pub target: String,
    /// Which target level (0: the first level below the dataset type levels).
    pub level: usize,
    /// Folder names of every vocabulary term, sorted.
    pub classes: Vec<String>,
    /// Folder name → class index.
    pub class_to_idx: BTreeMap<String, usize>,
}

/// The classes of every target level named by a vocabulary feature's one term column. Not
/// recorded: levels named by a column value, by a feature without exactly one term column
/// (its folders are values, not classes), and every level when a `target_transform` names
/// the folders.
pub(crate) fn record<D: DatasetLike>(
    dataset: &D,
    table: &TableName,
    options: &RestructureOptions,
) -> Result<Vec<TargetClasses>> {
    if options.target_transform.is_some() {
        return Ok(Vec::new());
    }
    let targets = classify_targets(dataset, table, &options.targets, options.enforce_vocabulary)?;
    let mut out = Vec::new();
    for (level, target) in targets.iter().enumerate() {
        let Some(feature) = target.feature() else {
            continue;
        };
        if feature.term_columns().len() != 1 {
            continue;
        }
        let labels = ClassLabels::new(feature, dataset)?;
        // A term that cannot be a folder name (empty, `.`, `..`) never names one: restructure
        // refuses an asset labelled with it before writing anything.
        let mut classes: Vec<String> = labels
            .classes()
            .iter()
            .filter_map(|term| sanitize(term, dataset.rid(), LabelKind::Label).ok())
            .collect();
        classes.sort_unstable();
        // Two terms that differ only in a separator share one folder.
        classes.dedup();
        let class_to_idx = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        out.push(TargetClasses {
            target: target.name.clone(),
            level,
            classes,
            class_to_idx,
        });
    }
    Ok(out)
}
