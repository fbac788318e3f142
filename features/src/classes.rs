//! [`ClassLabels`]: a vocabulary feature's terms as class indices, the convention of
//! torchvision's `ImageFolder` (`classes`, `class_to_idx`) and Hugging Face `datasets`'
//! `ClassLabel` (`names`, `str2int`, `int2str`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::loader::elements::{Label, Target};
use crate::{
    ColumnRole, DatasetLike, Error, Feature, FeatureId, TableName, TargetValue, TermLookup,
    Vocabulary,
};

/// The classes of one vocabulary feature, as torchvision's `ImageFolder` (`classes`,
/// `class_to_idx`) and Hugging Face `datasets`' `ClassLabel` (`names`, `str2int`,
/// `int2str`) index labels.
///
/// The classes are **every term of the feature's vocabulary table**, sorted by name (by
/// Unicode code point, as Python's `sorted` orders `ImageFolder`'s folder names), and a term's
/// class index is its position. They come from the vocabulary, not from the values a dataset
/// happens to use, so a split that has no `Moderate` image, or a later version that adds
/// images, keeps every index: a model trained on one split reads the others. Adding a term to
/// the vocabulary shifts the terms sorted after it, as adding a folder does for `ImageFolder`.
///
/// An element whose target is missing (kept only under [`Missing::Unknown`]) gets
/// [`ClassLabels::MISSING`], `-1`: as in Hugging Face `datasets`, a missing label is not a
/// class. Give the loss `ignore_index = -1`, or leave such elements out with [`Missing::Skip`]
/// (or refuse them with [`Missing::Error`], the adapters' default). A value that is not a term
/// of the vocabulary is an error ([`Error::UnknownTerm`]), never a silent class.
///
/// ```
/// use std::collections::{BTreeMap, BTreeSet};
/// use deriva_bag_features::{lookup_feature, testing, ClassLabels, TableName};
/// let model = testing::demo_model()?;
/// let glaucoma = lookup_feature(&model, "demo:Image", "Glaucoma")?;
/// // The vocabulary table's terms (a bag reads them from `Glaucoma.csv`).
/// let terms = BTreeMap::from([(
///     TableName::new("demo", "Glaucoma"),
///     BTreeSet::from(["Normal", "Mild", "Moderate", "Severe"].map(String::from)),
/// )]);
/// let grades = ClassLabels::new(&glaucoma, &terms)?;
/// assert_eq!(grades.classes(), ["Mild", "Moderate", "Normal", "Severe"]);
/// assert_eq!(grades.class_to_idx()["Normal"], 2);
/// assert_eq!(grades.index("Severe"), Some(3));
/// assert_eq!(grades.name(0), Some("Mild"));
/// # Ok::<(), deriva_bag_features::Error>(())
/// ```
///
/// [`Missing::Unknown`]: crate::Missing::Unknown
/// [`Missing::Skip`]: crate::Missing::Skip
/// [`Missing::Error`]: crate::Missing::Error
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassLabels {
    feature: FeatureId,
    column: String,
    vocabulary_table: TableName,
    vocabulary: Arc<Vocabulary>,
    classes: Vec<String>,
}

impl ClassLabels {
    /// The label of an element whose target is missing: `-1`, Hugging Face `datasets`'
    /// missing label (give the loss `ignore_index = -1`).
    pub const MISSING: i64 = -1;

    /// The classes of `feature`'s one vocabulary term column, with the terms `terms` finds
    /// (a bag or live dataset is a [`TermLookup`]: it reads the vocabulary table).
    ///
    /// Errors: [`Error::NoTermColumn`] for a feature without a vocabulary term column (a float
    /// measurement, an asset), naming the feature; [`Error::AmbiguousTermColumn`] for a
    /// feature with several (pick one with [`ClassLabels::for_column`]).
    pub fn new(feature: &Feature, terms: &dyn TermLookup) -> Result<Self, Error> {
        match feature.term_columns().as_slice() {
            [column] => Self::for_column(feature, column, terms),
            [] => Err(no_term_column(feature)),
            several => Err(Error::AmbiguousTermColumn {
                feature: feature.name.clone(),
                requested: None,
                columns: several.to_vec(),
            }),
        }
    }

    /// The classes of `feature`'s term column `column` (for a feature with several).
    pub fn for_column(
        feature: &Feature,
        column: &str,
        terms: &dyn TermLookup,
    ) -> Result<Self, Error> {
        let vocabulary_table = feature
            .column(column)
            .filter(|c| c.role == ColumnRole::Term)
            .and_then(|c| c.references.clone());
        let Some(vocabulary_table) = vocabulary_table else {
            let columns = feature.term_columns();
            return Err(if columns.is_empty() {
                no_term_column(feature)
            } else {
                Error::AmbiguousTermColumn {
                    feature: feature.name.clone(),
                    requested: Some(column.to_string()),
                    columns,
                }
            });
        };
        let vocabulary = terms.vocabulary(&vocabulary_table)?;
        // `Vocabulary::names` is sorted (a BTreeSet of Strings: byte order, which for UTF-8
        // is code point order, Python's `sorted`).
        let classes = vocabulary.names().map(str::to_string).collect();
        Ok(ClassLabels {
            feature: feature.id(),
            column: column.to_string(),
            vocabulary_table,
            vocabulary,
            classes,
        })
    }

    /// The feature `name` on `table` of `dataset` (a bag, a live dataset), with the terms of
    /// its vocabulary table in that dataset: [`lookup_feature`](DatasetLike::lookup_feature)
    /// then [`ClassLabels::new`].
    pub fn of_feature<D: DatasetLike>(dataset: &D, table: &str, name: &str) -> Result<Self, Error> {
        let feature = dataset.lookup_feature(table, name)?;
        Self::new(&feature, dataset)
    }

    /// The classes, sorted: `ImageFolder`'s `classes`, `ClassLabel`'s `names`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Class name → index: `ImageFolder`'s `class_to_idx`.
    pub fn class_to_idx(&self) -> BTreeMap<String, usize> {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect()
    }

    /// How many classes (the width of the model's output layer).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The index of a term, given by name or by one of its synonyms (`ClassLabel.str2int`).
    pub fn index(&self, term: &str) -> Option<usize> {
        let name = self.vocabulary.resolve(term)?;
        self.classes.binary_search_by(|c| c.as_str().cmp(name)).ok()
    }

    /// The class at `index` (`ClassLabel.int2str`).
    pub fn name(&self, index: usize) -> Option<&str> {
        self.classes.get(index).map(String::as_str)
    }

    /// The feature these classes belong to.
    pub fn feature(&self) -> &FeatureId {
        &self.feature
    }

    /// The term column the classes come from.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The vocabulary table the classes come from.
    pub fn vocabulary_table(&self) -> &TableName {
        &self.vocabulary_table
    }

    /// The class index of one target value: a record of this feature, by its term.
    /// Errors name the feature and the value: a record of another feature, a column value, a
    /// NULL term, or a term not in the vocabulary ([`Error::UnknownTerm`]).
    pub fn index_of_value(&self, value: &TargetValue) -> Result<usize, Error> {
        let record = match value {
            TargetValue::Feature(record) if record.feature == self.feature => record,
            TargetValue::Feature(record) => {
                return Err(Error::Invalid(format!(
                    "class labels of feature {:?} were given a record of feature {:?}",
                    self.feature.name, record.feature.name
                )))
            }
            TargetValue::Column { name, .. } => {
                return Err(Error::Invalid(format!(
                    "class labels of feature {:?} were given the value of column {name:?}; \
                     request the feature as the target",
                    self.feature.name
                )))
            }
        };
        let term = record.text(&self.column).ok_or_else(|| {
            Error::Invalid(format!(
                "feature {:?}: record {} has no term in column {:?}",
                self.feature.name,
                record.rid.as_ref().map_or("(offline)", |r| r.as_str()),
                self.column
            ))
        })?;
        self.index(term).ok_or_else(|| Error::UnknownTerm {
            feature: self.feature.name.clone(),
            column: self.column.clone(),
            vocabulary: self.vocabulary_table.to_string(),
            value: term.to_string(),
            allowed: self.classes.clone(),
        })
    }

    /// The label of an element's target, as an adapter's `target_transform` receives it:
    /// [`Label::Class`] with the term's index, or with [`ClassLabels::MISSING`] (`-1`) when
    /// the target is missing. With several targets, the one named after this feature is used.
    pub fn label(&self, target: Option<&Target>) -> Result<Label, Error> {
        let value = match target {
            None => None,
            Some(t) => t.value(&self.feature.name),
        };
        Ok(Label::Class(match value {
            None => Self::MISSING,
            Some(v) => self.index_of_value(v)? as i64,
        }))
    }

    /// [`ClassLabels::label`] as a closure, to pass to an adapter's `target_transform`
    /// (torch: an `int64 [batch]` tensor for `cross_entropy`; TensorFlow: an `int64 [batch]`
    /// label tensor).
    pub fn target_transform(
        &self,
    ) -> impl Fn(Option<&Target>) -> Result<Label, Error> + Send + Sync + Clone + 'static {
        let labels = self.clone();
        move |target| labels.label(target)
    }
}

fn no_term_column(feature: &Feature) -> Error {
    Error::NoTermColumn {
        feature: feature.name.clone(),
        table: feature.target_table.to_string(),
        columns: feature.columns.iter().map(|c| c.name.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use indexmap::IndexMap;

    use super::*;
    use crate::{lookup_feature, testing, FeatureRecord, Rid, Value};

    /// The demo Glaucoma vocabulary with a term no record uses (`Suspect`) and one that sorts
    /// before the capitalized ones only by code point (`advanced` after `Severe`).
    fn terms() -> BTreeMap<TableName, BTreeSet<String>> {
        BTreeMap::from([(
            TableName::new("demo", "Glaucoma"),
            [
                "Severe", "Normal", "Suspect", "Mild", "Moderate", "advanced",
            ]
            .map(String::from)
            .into(),
        )])
    }

    fn glaucoma() -> Feature {
        lookup_feature(&testing::demo_model().unwrap(), "demo:Image", "Glaucoma").unwrap()
    }

    fn record(feature: &Feature, term: Option<&str>) -> FeatureRecord {
        let mut fields = IndexMap::new();
        fields.insert("Glaucoma".to_string(), serde_json::json!(term));
        fields.insert("Image".to_string(), serde_json::json!("1-I001"));
        FeatureRecord {
            feature: feature.id(),
            target_column: "Image".into(),
            rid: Some(Rid::new("1-A001")),
            fields,
        }
    }

    #[test]
    fn classes_are_every_vocabulary_term_sorted_by_code_point_with_unused_terms_kept() {
        let labels = ClassLabels::new(&glaucoma(), &terms()).unwrap();
        assert_eq!(
            labels.classes(),
            ["Mild", "Moderate", "Normal", "Severe", "Suspect", "advanced"]
        );
        assert_eq!(
            labels.class_to_idx().into_iter().collect::<Vec<_>>(),
            [
                ("Mild".to_string(), 0),
                ("Moderate".to_string(), 1),
                ("Normal".to_string(), 2),
                ("Severe".to_string(), 3),
                ("Suspect".to_string(), 4),
                ("advanced".to_string(), 5),
            ]
        );
        assert_eq!(labels.num_classes(), 6);
        assert_eq!(labels.name(4), Some("Suspect"));
        assert_eq!(labels.name(6), None);
        assert_eq!(labels.column(), "Glaucoma");
        assert_eq!(
            labels.vocabulary_table(),
            &TableName::new("demo", "Glaucoma")
        );
    }

    #[test]
    fn a_target_becomes_its_terms_index_and_a_missing_one_minus_one() {
        let feature = glaucoma();
        let labels = ClassLabels::new(&feature, &terms()).unwrap();
        let transform = labels.target_transform();
        let severe = Target::Single(TargetValue::Feature(record(&feature, Some("Severe"))));
        assert_eq!(transform(Some(&severe)).unwrap(), Label::Class(3));
        assert_eq!(transform(None).unwrap(), Label::Class(-1));
        assert_eq!(ClassLabels::MISSING, -1);
        // Several targets: the one named after the feature; missing there is -1 too.
        let multi = Target::Multi(IndexMap::from([
            (
                "Glaucoma".to_string(),
                Some(TargetValue::Feature(record(&feature, Some("Mild")))),
            ),
            ("Subject".to_string(), None),
        ]));
        assert_eq!(labels.label(Some(&multi)).unwrap(), Label::Class(0));
        let without = Target::Multi(IndexMap::from([("Glaucoma".to_string(), None)]));
        assert_eq!(labels.label(Some(&without)).unwrap(), Label::Class(-1));
    }

    #[test]
    fn a_value_outside_the_vocabulary_is_an_error_naming_feature_value_and_classes() {
        let feature = glaucoma();
        let labels = ClassLabels::new(&feature, &terms()).unwrap();
        let bad = TargetValue::Feature(record(&feature, Some("Glaucous")));
        let err = labels.index_of_value(&bad).unwrap_err();
        match &err {
            Error::UnknownTerm {
                feature,
                column,
                value,
                allowed,
                ..
            } => {
                assert_eq!(
                    (feature.as_str(), column.as_str()),
                    ("Glaucoma", "Glaucoma")
                );
                assert_eq!(value, "Glaucous");
                assert_eq!(allowed, labels.classes());
            }
            other => panic!("expected UnknownTerm, got {other}"),
        }
        let null = TargetValue::Feature(record(&feature, None));
        let err = labels.index_of_value(&null).unwrap_err().to_string();
        assert!(err.contains("record 1-A001 has no term"), "{err}");
        let column = TargetValue::Column {
            name: "Subject".into(),
            value: Value::Text("1-S001".into()),
        };
        let err = labels.index_of_value(&column).unwrap_err().to_string();
        assert!(err.contains("column \"Subject\""), "{err}");
    }

    #[test]
    fn synonyms_index_as_their_term() {
        let feature = glaucoma();
        let mut vocab = Vocabulary::new();
        vocab.insert("Severe", ["Advanced".to_string()]);
        vocab.insert("Mild", Vec::new());
        struct Fixed(Arc<Vocabulary>);
        impl TermLookup for Fixed {
            fn vocabulary(&self, _: &TableName) -> Result<Arc<Vocabulary>, Error> {
                Ok(Arc::clone(&self.0))
            }
        }
        let labels = ClassLabels::new(&feature, &Fixed(Arc::new(vocab))).unwrap();
        assert_eq!(labels.classes(), ["Mild", "Severe"]);
        assert_eq!(labels.index("Advanced"), Some(1));
        assert_eq!(labels.index("Moderate"), None);
    }

    #[test]
    fn a_feature_without_a_term_column_is_refused_naming_it() {
        let model = testing::demo_model().unwrap();
        let boxes = lookup_feature(&model, "demo:Image", "BoundingBox").unwrap();
        let err = ClassLabels::new(&boxes, &terms()).unwrap_err();
        assert!(
            matches!(&err, Error::NoTermColumn { feature, table, columns }
                if feature == "BoundingBox"
                    && table == "demo:Image"
                    && columns == &["Box", "Score", "Count", "Checked"]),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("feature \"BoundingBox\" on table demo:Image has no vocabulary"),
            "{err}"
        );
        let err = ClassLabels::for_column(&glaucoma(), "Image", &terms()).unwrap_err();
        assert!(
            matches!(&err, Error::AmbiguousTermColumn { requested: Some(r), columns, .. }
                if r == "Image" && columns == &["Glaucoma"]),
            "{err:?}"
        );
    }
}
