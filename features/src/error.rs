//! The one error type of the features crate.

use crate::{Rid, ValueError};

/// Errors of the model layer. Every variant names the value, table, feature or field at fault.
///
/// Variant fields are not documented one by one: their names (`feature`, `field`, `value`,
/// `known`, …) say what they hold, and each variant's message shows them.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A user-given RID does not have the catalog's RID shape.
    #[error("{value:?} is not a RID (expected something like 1-ABC0)")]
    InvalidRid { value: String },

    /// `schema.json` could not be parsed or is inconsistent.
    #[error("malformed schema.json: {detail}")]
    MalformedModel { detail: String },

    /// No table has this name.
    #[error(
        "table {name:?} does not exist in the bag's model{}; known tables: {}",
        did_you_mean(name, known),
        sorted(known)
    )]
    TableNotFound { name: String, known: Vec<String> },

    /// A bare table name matches tables in several schemas.
    #[error("table name {name:?} is ambiguous; qualify it as one of: {}", candidates.join(", "))]
    AmbiguousTable {
        name: String,
        candidates: Vec<String>,
    },

    /// The table has no feature with this name.
    #[error(
        "feature {name:?} not found on table {table}{}; features there: [{}]",
        did_you_mean(name, known),
        sorted(known)
    )]
    FeatureNotFound {
        table: String,
        name: String,
        known: Vec<String>,
    },

    /// The bag (or catalog) has no dataset with this RID.
    #[error("dataset {rid} not found: no Dataset_Version row for it")]
    DatasetNotFound { rid: Rid },

    /// A value does not parse as its column's type.
    #[error("column {column:?}: {source}")]
    BadValue {
        column: String,
        #[source]
        source: ValueError,
    },

    /// A feature record names a field its feature does not have.
    #[error("feature {feature:?} has no field {field:?}; its fields are: {}", known.join(", "))]
    UnknownField {
        feature: String,
        field: String,
        known: Vec<String>,
    },

    /// A feature record field holds a value of the wrong type.
    #[error("feature {feature:?}, field {field:?}: expected {expected}, got {value}")]
    WrongType {
        feature: String,
        field: String,
        expected: String,
        value: String,
    },

    /// A required feature record field (the target) is missing.
    #[error("feature {feature:?}: the required field {field:?} is missing")]
    MissingField { feature: String, field: String },

    /// A term column holds a value that is neither a Name nor a Synonym of its vocabulary.
    #[error(
        "feature {feature:?}, column {column:?}: {value:?} is not a term of vocabulary {vocabulary}; allowed terms: {}",
        allowed.join(", ")
    )]
    UnknownTerm {
        feature: String,
        column: String,
        vocabulary: String,
        value: String,
        allowed: Vec<String>,
    },

    /// Class labels were asked of a feature with no vocabulary term column (a measurement,
    /// an asset): its values are not classes.
    #[error(
        "feature {feature:?} on table {table} has no vocabulary term column, so it has no \
         classes (its columns: [{}]); map its values with a target_transform of your own",
        columns.join(", ")
    )]
    NoTermColumn {
        feature: String,
        table: String,
        columns: Vec<String>,
    },

    /// Class labels were asked of a feature with several vocabulary term columns without
    /// naming one (`requested: None`), or naming a column that is not one of them.
    #[error(
        "feature {feature:?} {}; its term columns: {}; pick one with ClassLabels::for_column",
        match requested {
            None => "has several vocabulary term columns".to_string(),
            Some(c) => format!("has no vocabulary term column {c:?}"),
        },
        columns.join(", ")
    )]
    AmbiguousTermColumn {
        feature: String,
        requested: Option<String>,
        columns: Vec<String>,
    },

    /// Records of several features were given where one feature was expected.
    #[error("records belong to {} different features ({}); pass the records of one feature per call", features.len(), features.join(", "))]
    MixedFeatures { features: Vec<String> },

    /// `select_majority_vote(None)` on a feature with several term columns.
    #[error("Selector::majority_vote needs a column name for feature {feature:?}, which has several term columns: {}", columns.join(", "))]
    AmbiguousMajorityColumn {
        feature: String,
        columns: Vec<String>,
    },

    /// `select_majority_vote(None)` on a feature without term columns.
    #[error("Selector::majority_vote(None) could not auto-detect a column: feature {feature:?} has no term column; name one of: {}", columns.join(", "))]
    NoMajorityColumn {
        feature: String,
        columns: Vec<String>,
    },

    /// A workflow given by RID or Workflow_Type name resolves to nothing.
    #[error("no workflow resolved for {workflow:?}: tried as a Workflow RID and as a Workflow_Type name{detail}")]
    WorkflowNotFound { workflow: String, detail: String },

    /// A target name is neither a column of the element table, nor a feature on it, nor a
    /// feature on a table it references.
    #[error(
        "target {name:?} is not a column of {table}, nor a feature on it or on a table it references{}; columns: [{}]; features: [{}]",
        if name.contains('.') {
            // The Python reference once accepted "Feature.column"; say what replaces it.
            " (the dotted \"Feature.column\" form is not supported: name the feature and pick the column with a target_transform)"
        } else {
            ""
        },
        columns.join(", "),
        features.join(", ")
    )]
    UnknownTarget {
        /// The requested target name.
        name: String,
        /// The element table, `schema:table`.
        table: String,
        /// Columns of the element table.
        columns: Vec<String>,
        /// Features on the element table and (as `Name (via Column)`) on referenced tables.
        features: Vec<String>,
    },

    /// Several differing values for one target of one element, with conflicts refused
    /// (`TargetRules::refuse_conflicts`, on with restructure's `enforce_vocabulary` and by
    /// default in the adapters). `conflicts` lists element RID → conflicting
    /// feature-record RIDs.
    #[error(
        "target {target:?} has several differing values for {} element(s) of {table} and \
         conflicts are refused (enforce_vocabulary / refuse_conflicts): {}{}; pass a selector \
         for the target (Selector::newest(), Selector::first(), Selector::majority_vote(..); \
         CLI: --selector), or call .refuse_conflicts(false) (restructure: \
         .enforce_vocabulary(false); CLI: --no-enforce-vocabulary) to take the first value by RCT",
        conflicts.len() + more,
        conflicts.iter().map(|(e, r)| format!("{e}: [{}]", r.iter().map(Rid::as_str).collect::<Vec<_>>().join(", "))).collect::<Vec<_>>().join("; "),
        if *more > 0 { format!(" (and {more} more)") } else { String::new() }
    )]
    ConflictingTargetValues {
        /// The target name.
        target: String,
        /// The labelled table, `schema:table`.
        table: String,
        /// Up to 20 elements (target RIDs) with their conflicting record RIDs, sorted.
        conflicts: Vec<(String, Vec<Rid>)>,
        /// How many more elements conflict.
        more: usize,
    },

    /// `missing = Error` and some elements have no value.
    #[error(
        "{count} element(s) of {table} have no value for one or more targets in [{}]. Unlabeled RIDs: [{}]{}. \
         Use Missing::Skip (CLI: --missing skip) to drop unlabeled elements, or Missing::Unknown \
         (--missing unknown) to keep them",
        targets.join(", "),
        listed.iter().map(Rid::as_str).collect::<Vec<_>>().join(", "),
        if *more > 0 { format!(" (and {more} more)") } else { String::new() }
    )]
    UnlabeledElements {
        /// How many elements lack a value.
        count: usize,
        /// The element table, `schema:table`.
        table: String,
        /// The requested target names.
        targets: Vec<String>,
        /// The first 20 unlabeled RIDs, sorted.
        listed: Vec<Rid>,
        /// How many more (`count - listed.len()`).
        more: usize,
    },

    /// An adapter was asked for an asset table's elements without a sample loader
    ///. `example` is a working loader for the adapter at hand.
    #[error(
        "element table {table} is an asset table and requires a sample_loader, which turns each \
         file into a sample. For example:\n    {example}\nor `|path, _row| std::fs::read(path)` \
         for the raw bytes"
    )]
    SampleLoaderRequired {
        /// The element table.
        table: String,
        /// A working `sample_loader` call for the adapter at hand.
        example: String,
    },

    /// A row sample has NULL in a column whose tensor dtype has no NULL (integer, boolean,
    /// text); float columns hold NaN instead.
    #[error(
        "column {column} of {table} row {rid} is NULL, which a {dtype} tensor cannot hold; \
         pass a row_loader that builds the sample from the row"
    )]
    NullInRowColumn {
        /// The element table.
        table: String,
        /// The column.
        column: String,
        /// The element.
        rid: Rid,
        /// The column's tensor dtype (`int64`, `bool`, `string`).
        dtype: &'static str,
    },

    /// Asset files of kept elements are not on disk (a bag that is not materialized).
    #[error(
        "{count} file(s) of asset table {table} are not on disk (materialize the bag first): [{}]{}",
        listed.iter().map(|(rid, file)| format!("{rid} {file:?}")).collect::<Vec<_>>().join(", "),
        if *more > 0 { format!(" and {more} more") } else { String::new() }
    )]
    MissingAssetFiles {
        /// The asset table.
        table: String,
        /// How many kept elements have no file.
        count: usize,
        /// Up to 20 `(RID, Filename)` pairs.
        listed: Vec<(Rid, String)>,
        /// How many more are not listed.
        more: usize,
    },

    /// A sample loader, transform or target transform failed for one element.
    #[error("{stage} failed for {table} element {rid}{}: {source}",
        path.as_ref().map(|p| format!(" (file {})", p.display())).unwrap_or_default())]
    SampleLoad {
        /// The element table.
        table: String,
        /// The element.
        rid: Rid,
        /// Its asset file, if any.
        path: Option<std::path::PathBuf>,
        /// `sample_loader`, `row_loader`, `transform` or `target_transform`.
        stage: &'static str,
        /// The closure's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Any other failure with a message that names what went wrong.
    #[error("{0}")]
    Invalid(String),

    /// An error from the storage or network layer behind a `DatasetLike`.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// `known`, sorted case-insensitively and joined with `, `: the lists in "not found" messages.
fn sorted(known: &[String]) -> String {
    let mut names: Vec<&str> = known.iter().map(String::as_str).collect();
    names.sort_by_key(|n| (n.to_lowercase(), *n));
    names.join(", ")
}

/// ` (did you mean X?)` when `name` is one of `known` but for letter case (for a table, also
/// its bare name: `image` for `demo:Image`), or within two edits of one (one for names
/// shorter than six letters, none below three); else the empty
/// string. Several candidates are all named, sorted.
fn did_you_mean(name: &str, known: &[String]) -> String {
    let wanted = name.to_lowercase();
    let bare = |k: &str| k.rsplit_once(':').map_or(k, |(_, t)| t).to_lowercase();
    let mut exact: Vec<String> = known
        .iter()
        .filter(|k| k.to_lowercase() == wanted || bare(k) == wanted)
        .cloned()
        .collect();
    if exact.is_empty() {
        exact = known
            .iter()
            .filter(|k| {
                let d =
                    edit_distance(&bare(k), &wanted).min(edit_distance(&k.to_lowercase(), &wanted));
                d <= (wanted.chars().count() / 3).min(2)
            })
            .cloned()
            .collect();
    }
    if exact.is_empty() {
        return String::new();
    }
    format!(" (did you mean {}?)", sorted(&exact).replace(", ", " or "))
}

/// Levenshtein distance over chars (names are short: tables, features).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_table_in_another_case_suggests_it_and_lists_tables_sorted() {
        let err = Error::TableNotFound {
            name: "image".into(),
            known: names(&["demo:Subject", "deriva-ml:Dataset", "demo:Image"]),
        };
        assert_eq!(
            err.to_string(),
            "table \"image\" does not exist in the bag's model (did you mean demo:Image?); \
             known tables: demo:Image, demo:Subject, deriva-ml:Dataset"
        );
    }

    #[test]
    fn a_near_miss_is_suggested_and_a_far_one_is_not() {
        let known = names(&["Glaucoma", "Diagnosis"]);
        let near = Error::FeatureNotFound {
            table: "demo:Image".into(),
            name: "glaucomma".into(),
            known: known.clone(),
        };
        assert_eq!(
            near.to_string(),
            "feature \"glaucomma\" not found on table demo:Image (did you mean Glaucoma?); \
             features there: [Diagnosis, Glaucoma]"
        );
        let far = Error::FeatureNotFound {
            table: "demo:Image".into(),
            name: "Severity".into(),
            known,
        };
        assert_eq!(
            far.to_string(),
            "feature \"Severity\" not found on table demo:Image; features there: [Diagnosis, Glaucoma]"
        );
    }

    #[test]
    fn a_bare_name_in_two_schemas_suggests_both() {
        assert_eq!(
            did_you_mean("IMAGE", &names(&["b:Image", "a:Image", "a:Subject"])),
            " (did you mean a:Image or b:Image?)"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
