//! A table CSV read with a schema, as the index build reads it: the first bytes choose the
//! table's columns (names that SQLite would confuse included), the rest is the CSV. Reading
//! must never panic, bad input must be a CSV / unknown-column / bad-value error naming the
//! file, and every row that loads must read back.
#![no_main]

use deriva_bag_core::features::{CatalogModel, TableName};
use deriva_bag_core::fuzzing::read_table_csv;
use deriva_bag_core::Error;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 10] = [
    "Name", "name", "T", "T__utc", "rowid", "__origin", "Tags", "a\"b", "Count", "",
];

const TYPES: [&str; 16] = [
    "text",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "boolean",
    "date",
    "timestamp",
    "timestamptz",
    "jsonb",
    "text[]",
    "int4[]",
    "ermrest_rct",
    "markdown",
    "numeric",
];

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 6);
    if rest.len() < 2 * n {
        return;
    }
    let (spec, csv) = rest.split_at(2 * n);
    let mut columns = vec![r#"{"name":"RID","type":{"typename":"ermrest_rid"}}"#.to_string()];
    for pair in spec.chunks(2) {
        let name = NAMES[usize::from(pair[0]) % NAMES.len()].replace('"', "\\\"");
        let ty = TYPES[usize::from(pair[1]) % TYPES.len()];
        columns.push(format!(
            r#"{{"name":"{name}","type":{{"typename":"{ty}"}}}}"#
        ));
    }
    let json = format!(
        r#"{{"schemas":{{"demo":{{"tables":{{"Thing":{{"column_definitions":[{}]}}}}}}}}}}"#,
        columns.join(",")
    );
    let Ok(model) = CatalogModel::from_json(json.as_bytes()) else {
        return;
    };
    let table = TableName::new("demo", "Thing");
    match read_table_csv(&model, &table, csv) {
        Ok((rows, conflicts)) => {
            let lines = csv.iter().filter(|b| **b == b'\n' || **b == b'\r').count() + 1;
            assert!(
                rows.len() + conflicts <= lines,
                "{} rows from {lines} lines",
                rows.len()
            );
        }
        Err(
            Error::Csv { path, .. }
            | Error::BadValue { path, .. }
            | Error::UnknownColumn { path, .. },
        ) => {
            assert_eq!(path, std::path::Path::new("fuzz.csv"));
        }
        Err(other) => panic!("not a parse error: {other:?}"),
    }
});
