//! Seeding the test catalog from a dataset bag (e.g. `deriva_bag_core::fixtures::small_bag`):
//! the bag's `data/schema.json` becomes the model, every table CSV becomes rows (parsed with
//! bag-core's CSV reader and the one value parser), and every materialized `fetch.txt` file
//! becomes the Hatrac object version its `URL` names.

use std::io::BufReader;
use std::path::Path;

use deriva_bag_core::bagit::paths::safe_join;
use deriva_bag_core::bagit::BagItFiles;
use deriva_bag_core::csv::{discover, CsvReader, Field, Record};
use deriva_bag_features::Value;
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value as Json};

use super::store::{ApiError, Identity, InsertOptions, Store};

fn bad(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        500,
        format!("cannot seed the test catalog from the bag: {what}"),
    )
}

/// Adds `public:ERMrest_RID_Lease` when the bag's model lacks it (bags never hold it).
fn ensure_lease_table(schema: &mut Json) {
    let Some(schemas) = schema.get_mut("schemas").and_then(Json::as_object_mut) else {
        return;
    };
    let public = schemas
        .entry("public")
        .or_insert_with(|| json!({"schema_name": "public", "annotations": {}, "tables": {}}));
    if public["tables"].get("ERMrest_RID_Lease").is_some() {
        return;
    }
    let sys = |n: &str, t: &str, nullok: bool| json!({"name": n, "type": {"typename": t}, "nullok": nullok});
    public["tables"]["ERMrest_RID_Lease"] = json!({
        "schema_name": "public", "table_name": "ERMrest_RID_Lease", "kind": "table", "annotations": {},
        "column_definitions": [sys("RID", "ermrest_rid", false), sys("RCT", "ermrest_rct", false),
            sys("RMT", "ermrest_rmt", false), sys("RCB", "ermrest_rcb", true), sys("RMB", "ermrest_rmb", true),
            sys("ID", "text", false)],
        "keys": [{"unique_columns": ["RID"], "names": [["public", "ERMrest_RID_Lease_RID_key"]]}],
        "foreign_keys": []
    });
}

/// Builds a store holding the bag's model, rows and materialized assets.
pub(crate) fn store_from_bag(bag: &Path) -> Result<Store, ApiError> {
    let schema_path = bag.join("data").join("schema.json");
    let bytes =
        std::fs::read(&schema_path).map_err(|e| bad(format!("{}: {e}", schema_path.display())))?;
    let mut schema: Json = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("{}: {e}", schema_path.display())))?;
    ensure_lease_table(&mut schema);
    if schema.get("snaptime").is_none() {
        schema["snaptime"] = json!(super::urlb32_encode(
            chrono::Utc::now().timestamp_micros().max(0) as u64
        ));
    }
    let mut store = Store::new(schema)?;
    let seeder = Identity {
        id: "seed".to_string(),
        owner: true,
    };
    // Format A bags repeat rows in several CSVs of one table: skip the repeats.
    let options = InsertOptions {
        skip_conflicts: true,
        ..Default::default()
    };
    for file in discover(bag, &store.model).map_err(bad)? {
        let table = store
            .model
            .table(&file.table)
            .cloned()
            .ok_or_else(|| bad(format!("no table {}", file.table)))?;
        let handle = std::fs::File::open(&file.path)
            .map_err(|e| bad(format!("{}: {e}", file.path.display())))?;
        let mut reader = CsvReader::new(BufReader::new(handle), &file.path);
        let header = reader.read_header().map_err(bad)?;
        let columns: Vec<_> = header.iter().map(|h| table.column(h).cloned()).collect();
        let mut record = Record::default();
        let mut rows = Vec::new();
        while reader.read_record(&mut record).map_err(bad)? {
            let mut obj = Map::new();
            for (i, field) in record.fields().enumerate() {
                let Some(Some(col)) = columns.get(i) else {
                    continue;
                };
                let v = match field {
                    Field::Null => Json::Null,
                    Field::Text(t)
                        if matches!(col.name.as_str(), "RID" | "RCT" | "RMT" | "RCB" | "RMB") =>
                    {
                        json!(t)
                    }
                    Field::Text(t) => Value::parse(t, &col.ty)
                        .map_err(|e| {
                            bad(format!(
                                "{} line {} column {}: {e}",
                                file.relative,
                                record.line(),
                                col.name
                            ))
                        })?
                        .to_json(),
                };
                obj.insert(col.name.clone(), v);
            }
            rows.push(Json::Object(obj));
            if rows.len() >= 5000 {
                store.insert(&file.table.to_string(), &rows, &options, &seeder, true)?;
                rows.clear();
            }
        }
        store.insert(&file.table.to_string(), &rows, &options, &seeder, true)?;
    }
    super::clients::register(&mut store)?;
    let bagit = BagItFiles::read(bag).map_err(bad)?;
    let fetch_txt = bag.join("fetch.txt");
    for entry in &bagit.fetch {
        let local = safe_join(bag, &entry.path, &fetch_txt).map_err(bad)?;
        let Ok(content) = std::fs::read(&local) else {
            continue; // not materialized: the object simply does not exist
        };
        let Some(at) = entry.url.find("/hatrac/") else {
            continue;
        };
        let decoded = percent_decode_str(&entry.url[at..])
            .decode_utf8_lossy()
            .into_owned();
        let (name, version) = super::http::split_version(&decoded);
        match version {
            Some(v) => store.put_object_version(&name, &v, &content, None, None)?,
            None => store.put_object(&name, &content, None, None)?,
        };
    }
    Ok(store)
}
