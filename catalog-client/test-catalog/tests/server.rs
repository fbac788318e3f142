//! The test catalog's ERMrest and Hatrac protocol behaviour, checked
//! over HTTP with a plain client.

use deriva_test_catalog::{TestCatalog, TestCatalogOptions};
use serde_json::{json, Value};

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    fn new(server: &TestCatalog) -> Client {
        Client {
            base: server.url(),
            token: server.token().to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, accept: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, body: Value) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_csv_pages_with_sort_and_after_and_writes_null_as_empty() {
    let server = TestCatalog::start().await.unwrap();
    let c = Client::new(&server);
    let (status, csv) = c
        .get(
            "/ermrest/catalog/1/entity/demo:Glaucoma@sort(RID)?limit=2",
            "text/csv",
        )
        .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "RID,RCT,RMT,RCB,RMB,ID,URI,Name,Description,Synonyms"
    );
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("1-G001,"));
    assert!(lines[1].ends_with(",Normal,Normal term,"), "{}", lines[1]);
    let (_, rest) = c
        .get(
            "/ermrest/catalog/1/entity/demo:Glaucoma@sort(RID)@after(1-G002)?limit=100000",
            "text/csv",
        )
        .await;
    let rest: Vec<&str> = rest.lines().collect();
    assert_eq!(rest.len(), 3);
    assert!(
        rest[2].contains("\"{Advanced,\"\"Late stage\"\"}\""),
        "{}",
        rest[2]
    );
    let (_, done) = c
        .get(
            "/ermrest/catalog/1/entity/demo:Glaucoma@sort(RID)@after(1-G004)",
            "text/csv",
        )
        .await;
    assert_eq!(done.lines().count(), 1, "header only: the pager stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_projection_renames_and_filters_with_any_and_json_stream() {
    let server = TestCatalog::start().await.unwrap();
    let c = Client::new(&server);
    let (status, body) = c
        .get(
            "/ermrest/catalog/1/attribute/demo:Image/RID=any(1-I001,1-I002)/url:=URL,length:=Length,filename:=Filename,md5:=MD5,asset_rid:=RID",
            "application/x-json-stream",
        )
        .await;
    assert_eq!(status, 200);
    let rows: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["filename"], "retina 002.jpg");
    assert_eq!(rows[1]["length"], 1601);
    assert_eq!(rows[1]["asset_rid"], "1-I002");
    assert!(rows[1]["url"]
        .as_str()
        .unwrap()
        .contains("retina%20002.jpg:"));
    let (_, groups) = c
        .get(
            "/ermrest/catalog/1/attributegroup/F:=demo:Execution_Image_Glaucoma/Execution=1-E001/Image;n:=cnt(*)",
            "application/json",
        )
        .await;
    let groups: Value = serde_json::from_str(&groups).unwrap();
    assert_eq!(groups.as_array().unwrap().len(), 5);
    assert_eq!(groups[0], json!({"Image": "1-I001", "n": 1}));
    let (_, wf) = c
        .get(
            "/ermrest/catalog/1/attribute/Workflow:=deriva-ml:Workflow/(URL=none);(Checksum=abc123)/RID",
            "application/json",
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&wf).unwrap(),
        json!([{"RID": "1-W001"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onconflict_skip_returns_only_inserted_rows_and_a_plain_reinsert_is_409() {
    let server = TestCatalog::start().await.unwrap();
    let c = Client::new(&server);
    let path = "/ermrest/catalog/1/entity/demo:Execution_Image_Glaucoma?defaults=RID,RCT,RMT,RCB,RMB&onconflict=skip";
    let rows = json!([{"Execution": "1-E003", "Image": "1-I001", "Feature_Name": "Glaucoma", "Glaucoma": "Normal"},
                      {"Execution": "1-E003", "Image": "1-I002", "Feature_Name": "Glaucoma", "Glaucoma": "Severe"}]);
    let (s1, b1) = c.post(path, rows.clone()).await;
    assert_eq!(s1, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&b1)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (s2, b2) = c.post(path, rows.clone()).await;
    assert_eq!((s2, b2.as_str()), (200, "[]"));
    let plain =
        "/ermrest/catalog/1/entity/demo:Execution_Image_Glaucoma?defaults=RID,RCT,RMT,RCB,RMB";
    let (s3, b3) = c.post(plain, rows).await;
    assert_eq!(s3, 409, "{b3}");
    let bad_term = json!([{"Execution": "1-E003", "Image": "1-I004", "Feature_Name": "Glaucoma", "Glaucoma": "Purple"}]);
    let (s4, b4) = c.post(plain, bad_term).await;
    assert_eq!(s4, 409);
    assert!(b4.contains("Glaucoma"), "{b4}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_owners_may_insert_only_rids_they_leased_and_only_once() {
    let server = TestCatalog::start().await.unwrap();
    let c = Client::new(&server);
    let (_, lease) = c
        .post(
            "/ermrest/catalog/1/entity/public:ERMrest_RID_Lease",
            json!([{"ID": "tok-1"}]),
        )
        .await;
    let rid = serde_json::from_str::<Value>(&lease).unwrap()[0]["RID"]
        .as_str()
        .unwrap()
        .to_string();
    let path =
        "/ermrest/catalog/1/entity/deriva-ml:Execution?nondefaults=RID&defaults=RCT,RMT,RCB,RMB";
    let row = json!([{"RID": rid, "Workflow": "1-W001", "Description": "x", "Status": "Created"}]);
    let (s1, _) = c.post(path, row.clone()).await;
    assert_eq!(s1, 200);
    // The lease is consumed: re-posting is 403 even with onconflict=skip (checked first).
    let (s2, b2) = c.post(&format!("{path}&onconflict=skip"), row).await;
    assert_eq!(s2, 403, "{b2}");
    let forged = json!([{"RID": "1-ZZZZ", "Workflow": "1-W001", "Status": "Created"}]);
    assert_eq!(c.post(path, forged).await.0, 403);
    let owner = TestCatalog::start_with(
        TestCatalogOptions {
            owner: true,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let oc = Client::new(&owner);
    let forged = json!([{"RID": "1-ZZZZ", "Workflow": "1-W001", "Status": "Created"}]);
    assert_eq!(oc.post(path, forged).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_read_only_and_authn_session_is_404_without_a_credential() {
    let server = TestCatalog::start().await.unwrap();
    let c = Client::new(&server);
    let (s, _) = c
        .get(
            "/ermrest/catalog/1@33Q-AAAA-AAAA/entity/demo:Subject",
            "application/json",
        )
        .await;
    assert_eq!(s, 200);
    let (s, body) = c
        .post(
            "/ermrest/catalog/1@33Q-AAAA-AAAA/entity/demo:Subject",
            json!([{"Name": "x"}]),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    let anon = reqwest::Client::new()
        .get(format!("{}/authn/session", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hatrac_put_checks_content_md5_and_serves_base64_digests() {
    let server = TestCatalog::start().await.unwrap();
    let c = Client::new(&server);
    let bad = c
        .http
        .put(format!("{}/hatrac/Test/a.bin?parents=true", server.url()))
        .bearer_auth(server.token())
        .header("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let ok = c
        .http
        .put(format!("{}/hatrac/Test/a.bin?parents=true", server.url()))
        .bearer_auth(server.token())
        .header("content-md5", "XUFAKrxLKna5cZ2REBfFkg==")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 201);
    let loc = ok.text().await.unwrap();
    assert!(
        loc.starts_with("/hatrac/Test/a.bin:") && loc.ends_with('\n'),
        "{loc:?}"
    );
    let head = c
        .http
        .head(format!("{}/hatrac/Test/a.bin", server.url()))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["content-md5"], "XUFAKrxLKna5cZ2REBfFkg==");
    assert_eq!(head.headers()["content-length"], "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hatrac_get_honours_a_single_byte_range() {
    let server = TestCatalog::start().await.unwrap();
    let c = Client::new(&server);
    let (_, body) = c
        .get(
            "/ermrest/catalog/1/attribute/demo:Image/RID=1-I001/URL,Length",
            "application/json",
        )
        .await;
    let row = &serde_json::from_str::<Value>(&body).unwrap()[0];
    let url = format!("{}{}", server.url(), row["URL"].as_str().unwrap());
    let length = row["Length"].as_u64().unwrap();
    let get = |range: &'static str| {
        c.http
            .get(&url)
            .bearer_auth(server.token())
            .header("range", range)
            .send()
    };
    let full = c
        .http
        .get(&url)
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(full.len() as u64, length);
    let tail = get("bytes=100-").await.unwrap();
    assert_eq!(tail.status().as_u16(), 206);
    assert_eq!(
        tail.headers()["content-range"],
        format!("bytes 100-{}/{length}", length - 1).as_str()
    );
    assert_eq!(tail.bytes().await.unwrap(), full.slice(100..));
    let mid = get("bytes=10-19").await.unwrap();
    assert_eq!(mid.status().as_u16(), 206);
    assert_eq!(mid.bytes().await.unwrap(), full.slice(10..20));
    let beyond = get("bytes=999999-").await.unwrap();
    assert_eq!(beyond.status().as_u16(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{length}").as_str()
    );
    assert_eq!(
        server.log().last().map(|r| r.range.clone()),
        Some(Some("bytes=999999-".to_string()))
    );
}
