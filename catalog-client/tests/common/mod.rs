//! Shared helpers for the catalog-client integration tests.
#![allow(dead_code)]

pub mod hostile;

use std::path::Path;
use std::time::Duration;

use deriva_bag_features::{FeatureId, FeatureRecord};
use deriva_catalog_client::{
    ConnectOptions, Credential, DerivaML, ExecutionConfiguration, RetryPolicy,
};
use deriva_test_catalog::TestCatalog;
use indexmap::IndexMap;
use serde_json::{json, Value as Json};

/// Connects with the server's bearer token, fast retries, and `dir` as working directory.
pub async fn connect(server: &TestCatalog, dir: &Path) -> DerivaML {
    DerivaML::connect_with(
        &server.url(),
        "1",
        ConnectOptions {
            credential: Some(Credential::BearerToken(server.token().to_string())),
            working_dir: Some(dir.to_path_buf()),
            retry: Some(RetryPolicy {
                attempts: 3,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
            }),
            ..Default::default()
        },
    )
    .await
    .expect("connect to the test catalog")
}

/// A Glaucoma record built offline (no Execution, no RID).
pub fn glaucoma(image: &str, grade: &str) -> FeatureRecord {
    let mut fields = IndexMap::new();
    fields.insert("Execution".to_string(), json!(null));
    fields.insert("Feature_Name".to_string(), json!("Glaucoma"));
    fields.insert("Image".to_string(), json!(image));
    fields.insert("Glaucoma".to_string(), json!(grade));
    FeatureRecord {
        feature: FeatureId {
            schema: "demo".into(),
            table: "Execution_Image_Glaucoma".into(),
            name: "Glaucoma".into(),
        },
        target_column: "Image".into(),
        rid: None,
        fields,
    }
}

/// Records for the six seeded images.
pub fn six_records() -> Vec<FeatureRecord> {
    ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
        .iter()
        .zip(["Normal", "Mild", "Moderate", "Severe", "Normal", "Mild"])
        .map(|(i, g)| glaucoma(i, g))
        .collect()
}

/// DerivaML's usual execution configuration, with the seeded workflow.
pub async fn config(ml: &DerivaML, description: &str) -> ExecutionConfiguration {
    let workflow = ml.find_workflows().await.expect("find_workflows")[0].clone();
    ExecutionConfiguration {
        description: description.to_string(),
        workflow,
        datasets: Vec::new(),
    }
}

/// Number of feature rows of an execution in the catalog.
pub fn feature_rows(server: &TestCatalog, execution: &str) -> usize {
    server
        .rows(&format!(
            "demo:Execution_Image_Glaucoma/Execution={execution}"
        ))
        .unwrap()
        .len()
}

/// The catalog's status of an execution.
pub fn catalog_status(server: &TestCatalog, execution: &str) -> String {
    let rows = server
        .rows(&format!("deriva-ml:Execution/RID={execution}"))
        .unwrap();
    rows[0]["Status"].as_str().unwrap_or_default().to_string()
}

/// Adds `n` images (`2-0001`, …) owned by the seed, for multi-batch tests.
pub fn add_images(server: &TestCatalog, n: usize) -> Vec<String> {
    let rows: Vec<_> = (0..n)
        .map(|i| {
            json!({"RID": format!("2-{i:04}"), "URL": format!("/hatrac/Image/bulk{i}.jpg"),
                   "Filename": format!("bulk{i}.jpg"), "Length": 1, "MD5": "00", "Subject": "1-S001",
                   "RCT": "2026-05-28T16:54:02+00:00", "RMT": "2026-05-28T16:54:02+00:00"})
        })
        .collect();
    server.insert_rows("demo:Image", &rows).unwrap();
    (0..n).map(|i| format!("2-{i:04}")).collect()
}

/// The execution's `Dataset_Execution` rows as `(Dataset, Dataset_Version)`, sorted.
pub fn dataset_links(server: &TestCatalog, execution: &str) -> Vec<(String, String)> {
    let mut links: Vec<(String, String)> = server
        .rows(&format!(
            "deriva-ml:Dataset_Execution/Execution={execution}"
        ))
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r["Dataset"].as_str().unwrap_or_default().to_string(),
                r["Dataset_Version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    links.sort();
    links
}

/// Releases `version` of `dataset` the way deriva-ml does:
/// insert the `Dataset_Version` row, point `Dataset.Version` at it, read the catalog's
/// snaptime, and stamp it into the row. Returns the snaptime.
pub async fn release(server: &TestCatalog, dataset: &str, version: &str) -> String {
    let http = reqwest::Client::new();
    let base = format!("{}/ermrest/catalog/1", server.url());
    let send = |req: reqwest::RequestBuilder| async move {
        let resp = req.bearer_auth(server.token()).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.json::<Json>().await.unwrap()
    };
    let rows = send(
        http.post(format!("{base}/entity/deriva-ml:Dataset_Version"))
            .json(&json!([{"Dataset": dataset, "Version": version, "Description": "release"}])),
    )
    .await;
    let version_rid = rows[0]["RID"].as_str().unwrap().to_string();
    send(
        http.put(format!(
            "{base}/attributegroup/deriva-ml:Dataset/RID;Version"
        ))
        .json(&json!([{"RID": dataset, "Version": version_rid}])),
    )
    .await;
    let snaptime = send(http.get(format!("{base}/"))).await["snaptime"]
        .as_str()
        .unwrap()
        .to_string();
    send(
        http.put(format!(
            "{base}/attributegroup/deriva-ml:Dataset_Version/RID;Snapshot"
        ))
        .json(&json!([{"RID": version_rid, "Snapshot": snaptime}])),
    )
    .await;
    snaptime
}

/// An execution commits two new Glaucoma labels about members of `1-D001` (`1-I001`
/// Moderate, `1-I002` Severe); returns the execution's RID.
pub async fn commit_two_new_labels(ml: &DerivaML) -> String {
    let exe = ml
        .create_execution(config(ml, "relabel").await)
        .await
        .unwrap();
    exe.start().await.unwrap();
    exe.add_features(&[glaucoma("1-I001", "Moderate"), glaucoma("1-I002", "Severe")])
        .unwrap();
    exe.stop().await.unwrap();
    let report = exe.upload_execution_outputs().await.unwrap();
    assert_eq!(report.features_inserted, 2);
    exe.rid().as_str().to_string()
}

/// `(Execution, Image, Glaucoma)` of the seeded labels of `1-D001`'s images.
pub fn seeded_d001_labels() -> std::collections::BTreeSet<(String, String, String)> {
    [
        ("1-E001", "1-I001", "Normal"),
        ("1-E002", "1-I001", "Severe"),
        ("1-E001", "1-I002", "Mild"),
        ("1-E001", "1-I005", "Mild"),
        ("1-E002", "1-I005", "Severe"),
        ("1-E003", "1-I005", "Mild"),
    ]
    .iter()
    .map(|(e, i, g)| (e.to_string(), i.to_string(), g.to_string()))
    .collect()
}
