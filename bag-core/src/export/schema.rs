//! From `schema.json` column types to Arrow types: the one mapping every batch and every
//! Parquet file uses.
//!
//! | ERMrest type (`schema.json`) | Arrow type |
//! |---|---|
//! | text, markdown, ermrest_rid, ermrest_curie, … | `Utf8` |
//! | int2 / smallint / serial2 | `Int16` |
//! | int4 / integer / serial4 | `Int32` |
//! | int8 / bigint / serial8 (and integer domains of unknown width) | `Int64` |
//! | float4 / float8 / numeric / real | `Float64` (the value as parsed; `NaN` and `±Infinity` kept) |
//! | boolean | `Boolean` |
//! | date | `Date32` |
//! | timestamp | `Timestamp(Microsecond, None)` |
//! | timestamptz, ermrest_rct, ermrest_rmt | `Timestamp(Microsecond, "UTC")`: the instant in UTC |
//! | json, jsonb | `Utf8` holding the JSON text |
//! | arrays (`text[]`, `int4[]`, …) | `List` of the element's type |
//!
//! Every field is nullable (a bag may hold a NULL where the model forbids one), and every
//! field carries the ERMrest type name under the metadata key [`TYPENAME_KEY`], so a reader
//! can tell `jsonb` text from plain text. NULL and the empty string stay apart: NULL is an
//! Arrow null, `""` an empty `Utf8` value. Timestamps have PostgreSQL's precision,
//! microseconds.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use deriva_bag_features::model::ValueKind;
use deriva_bag_features::{ColumnType, Feature, Table};

/// Field metadata key holding a column's ERMrest type name (e.g. `jsonb`, `ermrest_rct`).
pub const TYPENAME_KEY: &str = "deriva:typename";

/// The time zone of timestamptz columns: the instant, in UTC.
const UTC: &str = "UTC";

/// The Arrow type of a column of ERMrest type `ty` (see the module table).
///
/// ```
/// use deriva_bag_core::export::arrow::datatypes::{DataType, TimeUnit};
/// use deriva_bag_core::export::arrow_type;
/// use deriva_bag_core::features::ColumnType;
/// assert_eq!(arrow_type(&ColumnType::simple("int4")), DataType::Int32);
/// assert_eq!(
///     arrow_type(&ColumnType::simple("timestamptz")),
///     DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
/// );
/// assert!(matches!(arrow_type(&ColumnType::simple("text[]")), DataType::List(_)));
/// ```
pub fn arrow_type(ty: &ColumnType) -> DataType {
    let scalar = scalar_type(ty);
    if ty.is_array() {
        DataType::List(list_item(scalar))
    } else {
        scalar
    }
}

/// The element field of a list column.
pub(crate) fn list_item(scalar: DataType) -> FieldRef {
    Arc::new(Field::new_list_field(scalar, true))
}

/// The type of one value (for arrays: of one element).
fn scalar_type(ty: &ColumnType) -> DataType {
    match ty.kind() {
        ValueKind::Text | ValueKind::Json => DataType::Utf8,
        ValueKind::Int => match ty.int_range() {
            Some((lo, _)) if lo == i64::from(i16::MIN) => DataType::Int16,
            Some((lo, _)) if lo == i64::from(i32::MIN) => DataType::Int32,
            _ => DataType::Int64,
        },
        ValueKind::Float => DataType::Float64,
        ValueKind::Bool => DataType::Boolean,
        ValueKind::Date => DataType::Date32,
        ValueKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ValueKind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
    }
}

/// The field of column `name` of type `ty`: nullable, with its ERMrest type name.
pub(crate) fn field(name: &str, ty: &ColumnType) -> Field {
    Field::new(name, arrow_type(ty), true).with_metadata(HashMap::from([(
        TYPENAME_KEY.to_string(),
        ty.typename.clone(),
    )]))
}

/// The Arrow schema of a table: one field per column, in catalog order.
///
/// ```
/// use deriva_bag_core::export::table_schema;
/// use deriva_bag_core::features::TableName;
/// let model = deriva_bag_core::features::testing::demo_model().unwrap();
/// let image = model.table(&TableName::new("demo", "Image")).unwrap();
/// let schema = table_schema(image);
/// assert_eq!(schema.field(0).name(), "RID");
/// assert_eq!(schema.fields().len(), image.columns.len());
/// ```
pub fn table_schema(table: &Table) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .columns
            .iter()
            .map(|c| field(&c.name, &c.ty))
            .collect::<Vec<_>>(),
    ))
}

/// The columns of a feature's denormalized table: the feature row's `RID`, then the record
/// fields in [`Feature::field_names`] order (`Execution`, `Feature_Name`, `RCT`, the term,
/// asset and value columns, the target), each typed from the feature table's column (a
/// field the table lacks is text, always NULL). Pairs of (name, type).
pub(crate) fn feature_columns(
    feature: &Feature,
    table: Option<&Table>,
) -> Vec<(String, ColumnType)> {
    let type_of = |name: &str| {
        table
            .and_then(|t| t.columns.iter().find(|c| c.name == name))
            .map(|c| c.ty.clone())
            .unwrap_or_else(|| ColumnType::simple("text"))
    };
    std::iter::once("RID".to_string())
        .chain(feature.field_names())
        .map(|name| {
            let ty = type_of(&name);
            (name, ty)
        })
        .collect()
}

/// The Arrow schema of [`feature_columns`].
pub(crate) fn columns_schema(columns: &[(String, ColumnType)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, ty)| field(name, ty))
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deriva_bag_features::lookup_feature;

    fn domain(typename: &str, base: &str) -> ColumnType {
        ColumnType {
            typename: typename.into(),
            base: Some(Box::new(ColumnType::simple(base))),
            is_array: false,
            is_domain: true,
        }
    }

    #[test]
    fn integer_columns_get_the_width_of_their_postgres_type() {
        for (typename, expected) in [
            ("int2", DataType::Int16),
            ("smallint", DataType::Int16),
            ("serial2", DataType::Int16),
            ("int4", DataType::Int32),
            ("integer", DataType::Int32),
            ("serial4", DataType::Int32),
            ("int8", DataType::Int64),
            ("bigint", DataType::Int64),
            ("serial8", DataType::Int64),
        ] {
            assert_eq!(
                arrow_type(&ColumnType::simple(typename)),
                expected,
                "{typename}"
            );
        }
        // A domain over int4 keeps the base type's width.
        assert_eq!(arrow_type(&domain("my_count", "int4")), DataType::Int32);
    }

    #[test]
    fn scalar_columns_map_to_their_arrow_types() {
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        for (typename, expected) in [
            ("text", DataType::Utf8),
            ("markdown", DataType::Utf8),
            ("float4", DataType::Float64),
            ("float8", DataType::Float64),
            ("numeric", DataType::Float64),
            ("boolean", DataType::Boolean),
            ("date", DataType::Date32),
            (
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            ("timestamptz", utc.clone()),
            ("json", DataType::Utf8),
            ("jsonb", DataType::Utf8),
        ] {
            assert_eq!(
                arrow_type(&ColumnType::simple(typename)),
                expected,
                "{typename}"
            );
        }
        // The system columns are domains over timestamptz and text.
        assert_eq!(arrow_type(&domain("ermrest_rct", "timestamptz")), utc);
        assert_eq!(arrow_type(&domain("ermrest_rmt", "timestamptz")), utc);
        assert_eq!(arrow_type(&domain("ermrest_rid", "text")), DataType::Utf8);
        assert_eq!(arrow_type(&domain("ermrest_curie", "text")), DataType::Utf8);
    }

    #[test]
    fn array_columns_are_lists_of_their_element_type() {
        let list = |item: DataType| DataType::List(list_item(item));
        assert_eq!(
            arrow_type(&ColumnType::simple("text[]")),
            list(DataType::Utf8)
        );
        assert_eq!(
            arrow_type(&ColumnType::simple("int2[]")),
            list(DataType::Int16)
        );
        assert_eq!(
            arrow_type(&ColumnType::simple("float8[]")),
            list(DataType::Float64)
        );
        let declared = ColumnType {
            typename: "text[]".into(),
            base: Some(Box::new(ColumnType::simple("text"))),
            is_array: true,
            is_domain: false,
        };
        assert_eq!(arrow_type(&declared), list(DataType::Utf8));
    }

    #[test]
    fn fields_are_nullable_and_carry_the_ermrest_type_name() {
        let f = field("Meta", &ColumnType::simple("jsonb"));
        assert!(f.is_nullable());
        assert_eq!(f.data_type(), &DataType::Utf8);
        assert_eq!(
            f.metadata().get(TYPENAME_KEY).map(String::as_str),
            Some("jsonb")
        );
    }

    #[test]
    fn a_feature_table_has_the_row_rid_then_the_record_fields_typed_from_the_model() {
        let model = deriva_bag_features::testing::demo_model().unwrap();
        let feature = lookup_feature(&model, "demo:Image", "Glaucoma").unwrap();
        let table = model.table(&feature.feature_table);
        let columns = feature_columns(&feature, table);
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "RID",
                "Execution",
                "Feature_Name",
                "RCT",
                "Glaucoma",
                "Image"
            ]
        );
        let schema = columns_schema(&columns);
        assert_eq!(
            schema.field_with_name("RCT").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            schema.field_with_name("Glaucoma").unwrap().data_type(),
            &DataType::Utf8
        );
        // Without the table in the model every field is text.
        let untyped = feature_columns(&feature, None);
        assert!(untyped.iter().all(|(_, ty)| ty.typename == "text"));
    }
}
