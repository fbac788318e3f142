//! Dataset versions read their catalog snapshot: the test catalog serves `@snapshot` reads as
//! of that snaptime, so labels committed after a release stay out of that release's bag.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use common::*;
use deriva_bag_core::DatasetBag;
use deriva_catalog_client::DatasetSpec;
use deriva_test_catalog::TestCatalog;
use serde_json::Value as Json;

/// `(Execution, Image, Glaucoma)` of every feature row in the bag.
fn labels(bag: &DatasetBag) -> BTreeSet<(String, String, String)> {
    bag.get_table("Execution_Image_Glaucoma")
        .unwrap()
        .iter()
        .map(|r| {
            let t = |c: &str| r.text(c).unwrap_or_default().to_string();
            (t("Execution"), t("Image"), t("Glaucoma"))
        })
        .collect()
}

fn label(e: &str, i: &str, g: &str) -> (String, String, String) {
    (e.to_string(), i.to_string(), g.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_released_before_new_labels_downloads_without_them_and_the_next_with_them() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let old_snap = release(&server, "1-D001", "1.1.0").await;

    // An execution commits two new labels about members of 1-D001.
    let exe = commit_two_new_labels(&ml).await;
    let new_snap = release(&server, "1-D001", "1.2.0").await;
    assert_ne!(old_snap, new_snap);

    let metadata_only = |v: &str| DatasetSpec {
        materialize: false,
        ..DatasetSpec::new("1-D001", Some(v))
    };
    let seeded = seeded_d001_labels();

    let old = ml
        .download_dataset_bag(metadata_only("1.1.0"))
        .await
        .unwrap();
    assert_eq!(old.snapshot.as_deref(), Some(old_snap.as_str()));
    let old_bag = DatasetBag::open(&old.path).unwrap();
    assert_eq!(labels(&old_bag), seeded);
    // The bag is cut at the snapshot: its schema.json says so, and the version rows are
    // those that existed then (1.2.0 did not).
    let schema: Json =
        serde_json::from_slice(&std::fs::read(old.path.join("data/schema.json")).unwrap()).unwrap();
    assert_eq!(schema["snaptime"], old_snap.as_str());
    let versions = |bag: &DatasetBag| -> Vec<String> {
        let mut v: Vec<String> = bag
            .get_table("Dataset_Version")
            .unwrap()
            .iter()
            .filter(|r| r.text("Dataset") == Some("1-D001"))
            .map(|r| r.text("Version").unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(versions(&old_bag), ["1.0.0", "1.1.0"]);

    let new = ml
        .download_dataset_bag(metadata_only("1.2.0"))
        .await
        .unwrap();
    assert_eq!(new.snapshot.as_deref(), Some(new_snap.as_str()));
    let new_bag = DatasetBag::open(&new.path).unwrap();
    let mut expected = seeded.clone();
    expected.insert(label(exe.as_str(), "1-I001", "Moderate"));
    expected.insert(label(exe.as_str(), "1-I002", "Severe"));
    assert_eq!(labels(&new_bag), expected);
    assert_eq!(versions(&new_bag), ["1.0.0", "1.1.0", "1.2.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_reads_resolve_rids_as_of_then_and_refuse_a_malformed_snaptime() {
    let server = TestCatalog::start().await.unwrap();
    let snap = release(&server, "1-D002", "1.1.0").await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http
            .get(format!("{}/ermrest/catalog/{path}", server.url()))
            .bearer_auth(server.token());
        async move { req.send().await.unwrap() }
    };
    // A row inserted after the snapshot does not exist at it.
    let later = release(&server, "1-D002", "1.2.0").await;
    let rows: Json = get("1/entity/deriva-ml:Dataset_Version/Version=1.2.0".into())
        .await
        .json()
        .await
        .unwrap();
    let rid = rows[0]["RID"].as_str().unwrap().to_string();
    assert_eq!(
        get(format!("1@{later}/entity_rid/{rid}")).await.status(),
        200
    );
    assert_eq!(
        get(format!("1@{snap}/entity_rid/{rid}")).await.status(),
        404
    );
    let at_snap: Json = get(format!("1@{snap}/")).await.json().await.unwrap();
    assert_eq!(at_snap["snaptime"], snap.as_str());
    // An updated row reads as it was: 1.1.0's Snapshot was stamped after `snap`.
    let v110: Json = get(format!(
        "1@{snap}/entity/deriva-ml:Dataset_Version/Dataset=1-D002/Version=1.1.0"
    ))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v110[0]["Snapshot"], Json::Null);
    // Not a base-32 snaptime: 404, as for an unknown snapshot.
    let bad = get("1@2TA-8ZQR-5E2U/schema".into()).await;
    assert_eq!(bad.status(), 404);
    assert_eq!(
        bad.text().await.unwrap(),
        "snapshot \"2TA-8ZQR-5E2U\" not found\n"
    );
}
