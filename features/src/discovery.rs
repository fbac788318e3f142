//! Feature discovery by structure.
//!
//! A feature is an association table with foreign keys to `Execution`, `Feature_Name` and the
//! target table; its name is the default of the `Feature_Name` column. Nothing is read from
//! data: a feature defined in the model is found even when the bag holds no values for it.

use std::collections::BTreeSet;

use crate::feature::{ColumnRole, Feature, FeatureColumn};
use crate::model::{CatalogModel, ForeignKey, Table, ML_SCHEMA, SYSTEM_COLUMNS};
use crate::{Error, TableName};

/// deriva-ml's `find_features` asks for associations of at least three covered FKs
/// (`min_arity=3`), with no upper bound, so key-qualified features count.
const MIN_ARITY: usize = 3;

/// Features whose target is `table` (bare or `schema:table` name), or every feature in the
/// model when `table` is `None`.
///
/// The global scan visits the domain schemas in document order, then `deriva-ml`, skipping
/// `Execution` and vocabularies as targets, and yields each feature table once. Per target,
/// features come in the model's table order, so the result is deterministic.
///
/// ```
/// use deriva_bag_features::{find_features, CatalogModel};
/// let json = deriva_bag_features::testing::demo_schema_json();
/// let model = CatalogModel::from_json(json.as_bytes()).unwrap();
/// let features = find_features(&model, Some("demo:Image")).unwrap();
/// assert_eq!(features.len(), 2);
/// assert_eq!(features[0].name, "Glaucoma");
/// assert_eq!(features[0].term_columns(), vec!["Glaucoma".to_string()]);
/// assert!(find_features(&model, Some("Imagez")).is_err());
/// ```
pub fn find_features(model: &CatalogModel, table: Option<&str>) -> Result<Vec<Feature>, Error> {
    if let Some(name) = table {
        let target = model.resolve_table(name)?;
        return Ok(features_of(model, target));
    }
    let execution = TableName::new(ML_SCHEMA, "Execution");
    let targets = model
        .domain_schemas()
        .chain(model.schemas.get(ML_SCHEMA))
        .flat_map(|s| s.tables.values())
        .filter(|t| t.name != execution && !t.is_vocabulary());
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for target in targets {
        for feature in features_of(model, target) {
            if seen.insert(feature.feature_table.clone()) {
                out.push(feature);
            }
        }
    }
    Ok(out)
}

/// The feature called `name` whose target is `table`.
///
/// Errors: [`Error::TableNotFound`] (listing the model's tables) for an unknown table,
/// [`Error::FeatureNotFound`] (listing the features on that table) for an unknown feature.
pub fn lookup_feature(model: &CatalogModel, table: &str, name: &str) -> Result<Feature, Error> {
    let target = model.resolve_table(table)?;
    let features = features_of(model, target);
    if let Some(found) = features.iter().find(|f| f.name == name) {
        return Ok(found.clone());
    }
    Err(Error::FeatureNotFound {
        table: target.name.to_string(),
        name: name.to_string(),
        known: features.into_iter().map(|f| f.name).collect(),
    })
}

/// Every feature targeting `target`, one per feature table, in table order.
fn features_of(model: &CatalogModel, target: &Table) -> Vec<Feature> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (assoc, self_fk) in model.referencing(&target.name) {
        if seen.contains(&assoc.name) {
            continue;
        }
        let Some(covered) = association_fkeys(assoc) else {
            continue;
        };
        // deriva-py's find_associations only yields the association through an FK it covers.
        if !covered.iter().any(|fk| std::ptr::eq(*fk, self_fk)) {
            continue;
        }
        let Some(target_column) = self_fk.columns.first() else {
            continue;
        };
        let has = |c: &str| assoc.column(c).is_some();
        if !(has("Feature_Name") && has("Execution") && has(target_column)) {
            continue;
        }
        if let Some(feature) = build_feature(model, assoc, target, target_column, &covered) {
            seen.insert(assoc.name.clone());
            out.push(feature);
        }
    }
    out
}

/// deriva-py's `Table.is_association(min_arity=3, max_arity=None, unqualified=True,
/// pure=False, no_overlap=True, return_fkeys=True)`: the covered FKs, or `None`.
fn association_fkeys(table: &Table) -> Option<Vec<&ForeignKey>> {
    let non_system: BTreeSet<&str> = table
        .non_system_columns()
        .map(|c| c.name.as_str())
        .collect();
    // The longest multi-column key made only of non-system columns. deriva-py breaks length
    // ties arbitrarily (set order); we take the first such key in model order so the result
    // is deterministic.
    let mut row_key: Option<BTreeSet<&str>> = None;
    for key in &table.keys {
        let cols: BTreeSet<&str> = key.unique_columns.iter().map(String::as_str).collect();
        if cols.len() > 1
            && cols.is_subset(&non_system)
            && row_key.as_ref().is_none_or(|k| cols.len() > k.len())
        {
            row_key = Some(cols);
        }
    }
    let row_key = row_key?;
    let covered: Vec<&ForeignKey> = table
        .foreign_keys
        .iter()
        .filter(|fk| fk.columns.iter().all(|c| row_key.contains(c.as_str())))
        .collect();
    if covered.len() < MIN_ARITY {
        return None;
    }
    let mut covered_cols = BTreeSet::new();
    for fk in &covered {
        for c in &fk.columns {
            if !covered_cols.insert(c.as_str()) {
                return None; // no_overlap
            }
        }
    }
    if !row_key.is_subset(&covered_cols) {
        return None; // unqualified: every key column belongs to a covered FK
    }
    Some(covered)
}

fn build_feature(
    model: &CatalogModel,
    assoc: &Table,
    target: &Table,
    target_column: &str,
    covered: &[&ForeignKey],
) -> Option<Feature> {
    let name_column = assoc.column("Feature_Name")?;
    // The name lives only in the column default (`Feature.__init__`); without it lookup by
    // name cannot work, so such a table is not offered as a feature.
    let name = match name_column.default.as_ref().and_then(|d| d.as_str()) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            tracing::warn!(
                table = %assoc.name,
                "association looks like a feature but its Feature_Name column has no default name; skipped"
            );
            return None;
        }
    };
    let structural = ["Feature_Name", "Execution", target_column];
    let columns = assoc
        .columns
        .iter()
        .filter(|c| {
            !SYSTEM_COLUMNS.contains(&c.name.as_str()) && !structural.contains(&c.name.as_str())
        })
        .map(|c| {
            // Role by what a single-column FK on the column points at. Departure from
            // deriva-ml's code: a qualifier FK to a vocabulary is also a term column, so its
            // values are vocabulary-checked too.
            let referenced = assoc
                .fk_on(&c.name)
                .and_then(|fk| model.table(&fk.referenced_table));
            let (role, references) = match referenced {
                Some(t) if t.is_asset() => (ColumnRole::Asset, Some(t.name.clone())),
                Some(t) if t.is_vocabulary() => (ColumnRole::Term, Some(t.name.clone())),
                _ => (ColumnRole::Value, None),
            };
            FeatureColumn {
                name: c.name.clone(),
                ty: c.ty.clone(),
                nullok: c.nullok,
                role,
                references,
            }
        })
        .collect();
    let qualifier_columns = covered
        .iter()
        .filter_map(|fk| {
            let col = fk.columns.first()?;
            (!structural.contains(&col.as_str()) && fk.columns.len() == 1).then(|| col.clone())
        })
        .collect::<Vec<_>>();
    // Qualifiers in table column order, whatever the FK order.
    let qualifier_columns = assoc
        .columns
        .iter()
        .filter(|c| qualifier_columns.contains(&c.name))
        .map(|c| c.name.clone())
        .collect();
    Some(Feature {
        name,
        target_table: target.name.clone(),
        feature_table: assoc.name.clone(),
        target_column: target_column.to_string(),
        columns,
        qualifier_columns,
    })
}

/// Hand-built `schema.json` documents for examples and unit tests of discovery, records and
/// selectors. Not part of the stable API.
#[doc(hidden)]
pub mod testing {

    use serde_json::{json, Value as Json};

    use crate::CatalogModel;

    fn ty(typename: &str) -> Json {
        match typename {
            "text[]" => {
                json!({"typename": "text[]", "is_array": true, "base_type": {"typename": "text"}})
            }
            "ermrest_rid" | "ermrest_rcb" | "ermrest_rmb" => {
                json!({"typename": typename, "is_domain": true, "base_type": {"typename": "text"}})
            }
            "ermrest_rct" | "ermrest_rmt" => {
                json!({"typename": typename, "is_domain": true, "base_type": {"typename": "timestamptz"}})
            }
            other => json!({"typename": other}),
        }
    }

    /// `(name, type, nullok, default)`.
    type Col<'a> = (&'a str, &'a str, bool, Option<&'a str>);
    /// `(columns, referenced schema, referenced table, referenced columns)`.
    type Fk<'a> = (&'a [&'a str], &'a str, &'a str, &'a [&'a str]);

    fn table(schema: &str, name: &str, cols: &[Col], keys: &[&[&str]], fks: &[Fk]) -> Json {
        let mut columns = vec![
            json!({"name": "RID", "type": ty("ermrest_rid"), "nullok": false}),
            json!({"name": "RCT", "type": ty("ermrest_rct"), "nullok": false}),
            json!({"name": "RMT", "type": ty("ermrest_rmt"), "nullok": false}),
            json!({"name": "RCB", "type": ty("ermrest_rcb"), "nullok": true}),
            json!({"name": "RMB", "type": ty("ermrest_rmb"), "nullok": true}),
        ];
        for (c, t, nullok, default) in cols {
            columns.push(json!({"name": c, "type": ty(t), "nullok": nullok, "default": default}));
        }
        let mut key_list = vec![json!({"unique_columns": ["RID"]})];
        key_list.extend(keys.iter().map(|k| json!({"unique_columns": k})));
        let fk_list: Vec<Json> = fks
            .iter()
            .map(|(cols, rs, rt, rcols)| {
                json!({
                    "foreign_key_columns": cols.iter().map(|c| json!({"schema_name": schema, "table_name": name, "column_name": c})).collect::<Vec<_>>(),
                    "referenced_columns": rcols.iter().map(|c| json!({"schema_name": rs, "table_name": rt, "column_name": c})).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"schema_name": schema, "table_name": name, "column_definitions": columns, "keys": key_list, "foreign_keys": fk_list})
    }

    fn vocab(schema: &str, name: &str) -> Json {
        table(
            schema,
            name,
            &[
                ("ID", "ermrest_curie", false, None),
                ("URI", "ermrest_uri", false, None),
                ("Name", "text", false, None),
                ("Description", "markdown", false, None),
                ("Synonyms", "text[]", true, None),
            ],
            &[&["ID"], &["URI"], &["Name"]],
            &[],
        )
    }

    fn asset(schema: &str, name: &str, extra_cols: &[Col], fks: &[Fk]) -> Json {
        let mut cols: Vec<Col> = vec![
            ("URL", "text", false, None),
            ("Filename", "text", true, None),
            ("Description", "markdown", true, None),
            ("Length", "int8", false, None),
            ("MD5", "text", false, None),
        ];
        cols.extend_from_slice(extra_cols);
        let mut t = table(schema, name, &cols, &[&["URL"]], fks);
        // Column 5 is URL (after the five system columns).
        t["column_definitions"][5]["annotations"] =
            json!({"tag:isrd.isi.edu,2017:asset": {"filename_column": "Filename"}});
        t
    }

    fn feature_table(
        name: &str,
        target: &str,
        feature: &str,
        extra_cols: &[Col],
        extra_key: &[&str],
        extra_fks: &[Fk],
    ) -> Json {
        let mut cols: Vec<Col> = vec![
            ("Execution", "text", false, None),
            (target, "text", false, None),
            ("Feature_Name", "text", false, Some(feature)),
        ];
        cols.extend_from_slice(extra_cols);
        let mut key = vec!["Execution", target, "Feature_Name"];
        key.extend_from_slice(extra_key);
        let mut fks: Vec<Fk> = vec![
            (&["Execution"], "deriva-ml", "Execution", &["RID"]),
            (&["Feature_Name"], "deriva-ml", "Feature_Name", &["Name"]),
        ];
        let target_cols: &[&str] = match target {
            "Image" => &["Image"],
            _ => &["Subject"],
        };
        fks.insert(1, (target_cols, "demo", target, &["RID"]));
        fks.extend_from_slice(extra_fks);
        table("demo", name, &cols, &[&key], &fks)
    }

    /// The small demo model (the minimal realistic DerivaML bag's, schema `demo`) plus a qualified feature, an asset feature, a
    /// value feature, and a same-named table in a second schema.
    pub fn demo_schema_json() -> String {
        let ml = json!({
            "Execution": table("deriva-ml", "Execution", &[("Workflow", "text", true, None), ("Status", "text", true, None)], &[], &[]),
            "Workflow": table("deriva-ml", "Workflow", &[("Name", "text", true, None)], &[], &[]),
            "Feature_Name": vocab("deriva-ml", "Feature_Name"),
            "Dataset": table("deriva-ml", "Dataset", &[("Description", "markdown", true, None)], &[], &[]),
        });
        let demo = json!({
            "Subject": table("demo", "Subject", &[("Name", "text", true, None)], &[], &[]),
            "Image": asset("demo", "Image", &[("Subject", "text", false, None)],
                &[(&["Subject"], "demo", "Subject", &["RID"])]),
            "Box": asset("demo", "Box", &[], &[]),
            "Glaucoma": vocab("demo", "Glaucoma"),
            "Image_Side": vocab("demo", "Image_Side"),
            "Condition": vocab("demo", "Condition"),
            "Dataset_Image": table("demo", "Dataset_Image", &[("Dataset", "text", false, None), ("Image", "text", false, None)],
                &[&["Dataset", "Image"]],
                &[(&["Dataset"], "deriva-ml", "Dataset", &["RID"]), (&["Image"], "demo", "Image", &["RID"])]),
            "Execution_Image_Glaucoma": feature_table("Execution_Image_Glaucoma", "Image", "Glaucoma",
                &[("Glaucoma", "text", false, None)], &[],
                &[(&["Glaucoma"], "demo", "Glaucoma", &["Name"])]),
            "Execution_Image_BoundingBox": feature_table("Execution_Image_BoundingBox", "Image", "BoundingBox",
                &[("Box", "text", false, None), ("Score", "float4", true, None), ("Count", "int4", true, None), ("Checked", "boolean", true, None)], &[],
                &[(&["Box"], "demo", "Box", &["RID"])]),
            "Execution_Subject_Chart_Label": feature_table("Execution_Subject_Chart_Label", "Subject", "Chart_Label",
                &[("Condition", "text", false, None), ("Image_Side", "text", false, None), ("Note", "text", true, None)],
                &["Image_Side"],
                &[(&["Condition"], "demo", "Condition", &["Name"]), (&["Image_Side"], "demo", "Image_Side", &["Name"])]),
            // Two term columns, no qualifier: majority vote needs a column name.
            "Execution_Subject_Diagnosis": feature_table("Execution_Subject_Diagnosis", "Subject", "Diagnosis",
                &[("Condition", "text", false, None), ("Glaucoma", "text", true, None)], &[],
                &[(&["Condition"], "demo", "Condition", &["Name"]), (&["Glaucoma"], "demo", "Glaucoma", &["Name"])]),
            // Looks like a feature but lacks the Feature_Name column: not a feature.
            "Image_Execution": table("demo", "Image_Execution", &[("Image", "text", false, None), ("Execution", "text", false, None), ("Asset_Role", "text", false, None)],
                &[&["Image", "Execution"]],
                &[(&["Image"], "demo", "Image", &["RID"]), (&["Execution"], "deriva-ml", "Execution", &["RID"])]),
        });
        let other = json!({
            "Image": table("other", "Image", &[("Name", "text", true, None)], &[], &[]),
        });
        json!({"snaptime": "33Q-WXWN-SM7M", "schemas": {
            "demo": {"schema_name": "demo", "tables": demo},
            "other": {"schema_name": "other", "tables": other},
            "deriva-ml": {"schema_name": "deriva-ml", "tables": ml},
        }})
        .to_string()
    }

    /// [`demo_schema_json`] parsed.
    pub fn demo_model() -> Result<CatalogModel, crate::Error> {
        CatalogModel::from_json(demo_schema_json().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_model() -> CatalogModel {
        testing::demo_model().unwrap()
    }

    #[test]
    fn find_features_on_image_lists_glaucoma_and_bounding_box_in_table_order() {
        let model = demo_model();
        let features = find_features(&model, Some("demo:Image")).unwrap();
        let names: Vec<&str> = features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Glaucoma", "BoundingBox"]);
        let g = &features[0];
        assert_eq!(
            g.feature_table,
            TableName::new("demo", "Execution_Image_Glaucoma")
        );
        assert_eq!(g.target_table, TableName::new("demo", "Image"));
        assert_eq!(g.target_column, "Image");
        assert_eq!(g.term_columns(), ["Glaucoma"]);
        assert!(g.asset_columns().is_empty() && g.value_columns().is_empty());
        assert!(g.qualifier_columns.is_empty());
        assert_eq!(
            g.column("Glaucoma").unwrap().references,
            Some(TableName::new("demo", "Glaucoma"))
        );
    }

    #[test]
    fn asset_and_value_columns_are_classified_by_what_their_fk_points_at() {
        let model = demo_model();
        let bb = lookup_feature(&model, "demo:Image", "BoundingBox").unwrap();
        assert_eq!(bb.asset_columns(), ["Box"]);
        assert_eq!(bb.value_columns(), ["Score", "Count", "Checked"]);
        assert!(bb.term_columns().is_empty());
    }

    #[test]
    fn qualified_feature_is_discovered_with_its_qualifier_column() {
        let model = demo_model();
        let f = lookup_feature(&model, "Subject", "Chart_Label").unwrap();
        assert_eq!(f.qualifier_columns, ["Image_Side"]);
        // A qualifier FK to a vocabulary is also a term column (its values are vocabulary-checked).
        assert_eq!(f.term_columns(), ["Condition", "Image_Side"]);
        assert_eq!(f.value_columns(), ["Note"]);
    }

    #[test]
    fn find_features_without_table_scans_every_target_once_in_schema_order() {
        let model = demo_model();
        let all = find_features(&model, None).unwrap();
        let tables: Vec<String> = all.iter().map(|f| f.feature_table.table.clone()).collect();
        // Subject comes before Image in the demo schema's table order.
        assert_eq!(
            tables,
            [
                "Execution_Subject_Chart_Label",
                "Execution_Subject_Diagnosis",
                "Execution_Image_Glaucoma",
                "Execution_Image_BoundingBox"
            ]
        );
    }

    #[test]
    fn association_without_feature_name_column_is_not_a_feature() {
        let model = demo_model();
        let all = find_features(&model, None).unwrap();
        assert!(all
            .iter()
            .all(|f| f.feature_table.table != "Image_Execution"));
    }

    #[test]
    fn lookup_unknown_feature_lists_the_features_of_the_table() {
        let model = demo_model();
        let err = lookup_feature(&model, "demo:Image", "Glaucous").unwrap_err();
        match &err {
            Error::FeatureNotFound { table, name, known } => {
                assert_eq!(table, "demo:Image");
                assert_eq!(name, "Glaucous");
                assert_eq!(known, &["Glaucoma", "BoundingBox"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "feature \"Glaucous\" not found on table demo:Image (did you mean Glaucoma?); \
             features there: [BoundingBox, Glaucoma]"
        );
    }

    #[test]
    fn lookup_on_unknown_table_lists_known_tables() {
        let model = demo_model();
        let err = lookup_feature(&model, "Imagez", "Glaucoma").unwrap_err();
        match err {
            Error::TableNotFound { name, known } => {
                assert_eq!(name, "Imagez");
                assert!(known.contains(&"demo:Image".to_string()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bare_name_in_two_schemas_is_ambiguous_and_qualified_name_resolves() {
        let model = demo_model();
        assert!(matches!(
            find_features(&model, Some("Image")),
            Err(Error::AmbiguousTable { .. })
        ));
        assert!(find_features(&model, Some("other:Image"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn two_lookups_give_the_same_feature_id() {
        let model = demo_model();
        let a = lookup_feature(&model, "demo:Image", "Glaucoma").unwrap();
        let b = lookup_feature(&model, "demo:Image", "Glaucoma").unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().table, "Execution_Image_Glaucoma");
        assert_eq!(a.id().schema, "demo");
        assert_eq!(a.id().name, "Glaucoma");
    }
}
