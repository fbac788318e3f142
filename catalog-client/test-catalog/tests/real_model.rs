//! The test catalog serves bags exported with deriva-ml's real model, whose ERMrest system
//! tables carry ERMrest's own constraints (`Client_Object jsonb NOT NULL`).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::*;
use deriva_test_catalog::TestCatalog;
use serde_json::{json, Value as Json};

/// The fixture's RCB/RMB client (`deriva_bag_core::fixtures`, rows.rs).
const FIXTURE_CLIENT: &str = "https://auth.globus.org/0b6e8a3c-4d1f-4e2a-9c55-7d1c2f0e9a11";

fn col(name: &str, typename: &str, nullok: bool) -> Json {
    json!({"name": name, "type": {"typename": typename}, "nullok": nullok})
}

/// An ERMrest system table as ERMrest creates it (`ermrest_schema.sql`): system columns,
/// then `columns`, unique keys on RID and ID.
fn system_table(name: &str, columns: Vec<Json>) -> Json {
    let mut all = vec![
        col("RID", "ermrest_rid", false),
        col("RCT", "ermrest_rct", false),
        col("RMT", "ermrest_rmt", false),
        col("RCB", "ermrest_rcb", true),
        col("RMB", "ermrest_rmb", true),
    ];
    all.extend(columns);
    json!({
        "schema_name": "public", "table_name": name, "kind": "table", "annotations": {},
        "column_definitions": all,
        "keys": [
            {"unique_columns": ["RID"], "names": [["public", format!("{name}_pkey")]]},
            {"unique_columns": ["ID"], "names": [["public", format!("{name}_ID_key")]]}
        ],
        "foreign_keys": []
    })
}

/// The fixture bag with `public:ERMrest_Client` and `public:ERMrest_Group` replaced by the
/// definitions of deriva-ml's real model (as ERMrest defines them).
fn real_model_bag(dir: &std::path::Path) -> std::path::PathBuf {
    let fixture = deriva_bag_core::fixtures::small_bag(&dir.join("fixture")).unwrap();
    let schema_path = fixture.path.join("data/schema.json");
    let mut doc: Json = serde_json::from_slice(&std::fs::read(&schema_path).unwrap()).unwrap();
    let tables = &mut doc["schemas"]["public"]["tables"];
    tables["ERMrest_Client"] = system_table(
        "ERMrest_Client",
        vec![
            col("ID", "text", false),
            col("Display_Name", "text", true),
            col("Full_Name", "text", true),
            col("Email", "text", true),
            col("Client_Object", "jsonb", false),
        ],
    );
    tables["ERMrest_Group"] = system_table(
        "ERMrest_Group",
        vec![
            col("ID", "text", false),
            col("URL", "text", true),
            col("Display_Name", "text", true),
            col("Description", "text", true),
        ],
    );
    std::fs::write(&schema_path, serde_json::to_vec(&doc).unwrap()).unwrap();
    fixture.path
}

/// `ID` → the row without its system columns.
fn by_id(server: &TestCatalog, table: &str) -> BTreeMap<String, Json> {
    server
        .rows(table)
        .unwrap()
        .into_iter()
        .map(|mut r| {
            for c in ["RID", "RCT", "RMT", "RCB", "RMB"] {
                r.remove(c);
            }
            (r["ID"].as_str().unwrap().to_string(), Json::Object(r))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_a_real_model_bag_fills_ermrest_client_and_group_as_ermrest_does() {
    let dir = tempfile::tempdir().unwrap();
    let bag = real_model_bag(dir.path());
    let server = TestCatalog::start_from_bag(&bag, Default::default(), 0).unwrap();

    let clients = by_id(&server, "public:ERMrest_Client");
    let expected = BTreeMap::from([
        (
            FIXTURE_CLIENT.to_string(),
            json!({"ID": FIXTURE_CLIENT, "Display_Name": null, "Full_Name": null, "Email": null,
                   "Client_Object": {"id": FIXTURE_CLIENT}}),
        ),
        (
            "test-user".to_string(),
            json!({"ID": "test-user", "Display_Name": "Test User", "Full_Name": "Test User",
                   "Email": null,
                   "Client_Object": {"id": "test-user", "display_name": "Test User",
                                     "full_name": "Test User", "email": null,
                                     "identities": ["test-user"]}}),
        ),
    ]);
    assert_eq!(clients, expected);
    // The Client_Object is the session's client object, as ERMrest stores it.
    let session: Json = reqwest::Client::new()
        .get(format!("{}/authn/session", server.url()))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clients["test-user"]["Client_Object"], session["client"]);
    assert_eq!(
        by_id(&server, "public:ERMrest_Group"),
        BTreeMap::from([(
            "test-group".to_string(),
            json!({"ID": "test-group", "URL": null, "Display_Name": "Test Group",
                   "Description": null})
        )])
    );

    // Rows the client writes satisfy the model's RCB/RMB foreign keys to ERMrest_Client.
    let work = dir.path().join("work");
    let ml = connect(&server, &work).await;
    let exe = ml
        .create_execution(config(&ml, "on the real model").await)
        .await
        .unwrap();
    let row = server
        .rows(&format!("deriva-ml:Execution/RID={}", exe.rid()))
        .unwrap();
    assert_eq!(row[0]["RCB"], "test-user");
}
