//! ERMrest's system tables `public:ERMrest_Client` and `public:ERMrest_Group`, filled as
//! ERMrest fills them (`ermrest/url/ast/data/__init__.py::Api.client_register_body`): each
//! webauthn client that reaches the catalog gets an `ERMrest_Client` row with `ID`,
//! `Display_Name`, `Full_Name`, `Email` and `Client_Object` (the whole webauthn client object
//! as JSON; `{"id": <id>}` when only the id is known), and each session attribute that has a
//! `display_name` and no `identities` (a group) gets an `ERMrest_Group` row with `ID` and
//! `Display_Name`.
//!
//! The test catalog has one client, so it registers it when seeding instead of on its first
//! request, together with every client named by a seeded row's `RCB`/`RMB` (bags never carry
//! these tables, but their rows' `RCB`/`RMB` reference them). A model's table may lack some
//! of these columns (a hand-written fixture model); only the columns it has are written.

use serde_json::{json, Map, Value as Json};

use super::store::{ApiError, Identity, InsertOptions, Store};

/// The client id every authenticated request runs as.
pub(crate) const TEST_CLIENT_ID: &str = "test-user";
/// The one group the test client belongs to.
pub(crate) const TEST_GROUP_ID: &str = "test-group";

/// The webauthn session document (`GET /authn/session`) of client `id`.
pub(crate) fn session(id: &str) -> Json {
    json!({
        "client": {"id": id, "display_name": "Test User", "full_name": "Test User",
                   "email": null, "identities": [id]},
        "attributes": [{"id": id}, {"id": TEST_GROUP_ID, "display_name": "Test Group"}],
        "seconds_remaining": 3600
    })
}

/// The `ERMrest_Client` row ERMrest writes for webauthn client object `client`.
fn client_row(client: &Map<String, Json>) -> Json {
    let field = |k: &str| client.get(k).cloned().unwrap_or(Json::Null);
    json!({
        "ID": field("id"),
        "Display_Name": field("display_name"),
        "Full_Name": field("full_name"),
        "Email": field("email"),
        "Client_Object": Json::Object(client.clone()),
    })
}

/// Inserts `rows` into `public:<table>` (only the columns the model has; rows whose `ID` is
/// already there are kept as they are). A model without the table gets nothing.
fn insert_system_rows(store: &mut Store, table: &str, rows: Vec<Json>) -> Result<(), ApiError> {
    let name = deriva_bag_features::TableName::new("public", table);
    let Some(model) = store.model.table(&name).cloned() else {
        return Ok(());
    };
    if model.column("ID").is_none() || rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<Json> = rows
        .into_iter()
        .map(|r| {
            let kept = r
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| model.column(k).is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Json::Object(kept)
        })
        .collect();
    let seeder = Identity {
        id: TEST_CLIENT_ID.to_string(),
        owner: true,
    };
    let options = InsertOptions {
        skip_conflicts: true,
        ..Default::default()
    };
    store.insert(&name.to_string(), &rows, &options, &seeder, true)?;
    Ok(())
}

/// Registers the test client and its groups, and every other client a seeded row names in
/// `RCB`/`RMB`, as ERMrest would have.
pub(crate) fn register(store: &mut Store) -> Result<(), ApiError> {
    let session = session(TEST_CLIENT_ID);
    let mut clients = Vec::new();
    if let Some(client) = session["client"].as_object() {
        clients.push(client_row(client));
    }
    for id in store.row_authors()? {
        if id != TEST_CLIENT_ID {
            let known_by_id = Map::from_iter([("id".to_string(), Json::String(id))]);
            clients.push(client_row(&known_by_id));
        }
    }
    insert_system_rows(store, "ERMrest_Client", clients)?;
    let groups = session["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a.get("identities").is_none() && a.get("display_name").is_some())
        .map(|g| json!({"ID": g["id"], "Display_Name": g["display_name"]}))
        .collect();
    insert_system_rows(store, "ERMrest_Group", groups)
}
