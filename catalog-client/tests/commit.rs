//! Executions and the crash-safe commit against the local test catalog, including the crash
//! matrix C1–C6 (C1 a kill before commit, C2 a connection dropped after the server committed
//! the feature POST, C3 a kill between the Execution POST and the local registry, C4 a kill
//! mid chunked upload, C5 a failing status PUT, C6 a second commit). A "crash" drops every client object
//! after a failed or interrupted call and reconnects a fresh `DerivaML` over the same working
//! directory, as a new process would.

mod common;

use std::collections::HashMap;

use common::*;
use deriva_catalog_client::{DatasetSpec, Error, ExecutionStatus};
use deriva_test_catalog::{Fault, FaultMode, TestCatalog};

const FEATURE_POST: &str = "/ermrest/catalog/1/entity/demo:Execution_Image_Glaucoma";
const STATUS_PUT: &str = "/ermrest/catalog/1/attributegroup/deriva-ml:Execution";

fn posts_to(server: &TestCatalog, prefix: &str) -> Vec<u16> {
    server
        .log()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.starts_with(prefix))
        .map(|r| r.status)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_inserts_each_staged_record_once_and_marks_the_execution_uploaded() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let workflows = ml.find_workflows().await.unwrap();
    assert_eq!(workflows.len(), 1);
    assert_eq!(workflows[0].rid.as_str(), "1-W001");
    let exe = ml
        .create_execution(config(&ml, "Offline inference results").await)
        .await
        .unwrap();
    exe.start().await.unwrap();
    assert_eq!(exe.add_features(&six_records()).unwrap(), 6);
    // add_features sends no HTTP: the catalog has nothing yet.
    assert_eq!(feature_rows(&server, exe.rid().as_str()), 0);
    exe.stop().await.unwrap();
    let report = exe.upload_execution_outputs().await.unwrap();
    assert_eq!(report.features_inserted, 6);
    assert_eq!(report.features_already_present, 0);
    assert_eq!(report.feature_requests, 1);
    assert_eq!(feature_rows(&server, exe.rid().as_str()), 6);
    assert_eq!(catalog_status(&server, exe.rid().as_str()), "Uploaded");
    assert_eq!(exe.status().unwrap(), ExecutionStatus::Uploaded);
    assert_eq!(exe.record_counts().unwrap(), (0, 6));
    let rows = server
        .rows(&format!(
            "demo:Execution_Image_Glaucoma/Execution={}/Image=1-I003",
            exe.rid()
        ))
        .unwrap();
    assert_eq!(rows[0]["Glaucoma"], "Moderate");
    assert_eq!(rows[0]["Feature_Name"], "Glaucoma");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_crash_after_add_features_resumes_stops_and_commits_every_record() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rid = {
        let ml = connect(&server, dir.path()).await;
        let exe = ml.create_execution(config(&ml, "C1").await).await.unwrap();
        exe.start().await.unwrap();
        exe.add_features(&six_records()).unwrap();
        exe.rid().clone()
        // Process "dies" here: nothing committed.
    };
    assert_eq!(feature_rows(&server, rid.as_str()), 0);
    let ml = connect(&server, dir.path()).await;
    assert_eq!(ml.local_status(&rid).unwrap(), ExecutionStatus::Running);
    let exe = ml.resume_execution(&rid).await.unwrap();
    let report = exe.upload_execution_outputs().await.unwrap();
    assert_eq!(report.features_inserted, 6);
    assert_eq!(feature_rows(&server, rid.as_str()), 6);
    assert_eq!(catalog_status(&server, rid.as_str()), "Uploaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_lost_response_to_the_feature_post_is_resent_without_duplicates() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let exe = ml.create_execution(config(&ml, "C2").await).await.unwrap();
    exe.add_features(&six_records()).unwrap();
    server.add_fault(Fault::new(
        "POST",
        FEATURE_POST,
        FaultMode::CommitThenDropConnection,
    ));
    let report = exe.upload_execution_outputs().await.unwrap();
    // First POST committed but dropped (logged as 0); the re-sent one skipped all six.
    assert_eq!(posts_to(&server, FEATURE_POST), vec![0, 200]);
    assert_eq!(report.features_inserted, 0);
    assert_eq!(report.features_already_present, 6);
    assert_eq!(feature_rows(&server, exe.rid().as_str()), 6);
    assert_eq!(catalog_status(&server, exe.rid().as_str()), "Uploaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_crash_after_the_feature_post_committed_resumes_without_409_or_duplicates() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rid = {
        let ml = connect(&server, dir.path()).await;
        let exe = ml
            .create_execution(config(&ml, "C2 crash").await)
            .await
            .unwrap();
        exe.add_features(&six_records()).unwrap();
        server.add_fault(Fault::new(
            "POST",
            FEATURE_POST,
            FaultMode::CommitThenDropConnection,
        ));
        let mut again = Fault::new("POST", FEATURE_POST, FaultMode::FailBeforeCommit503);
        again.times = 10;
        server.add_fault(again);
        let err = exe.upload_execution_outputs().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        // Rows landed, records still pending locally: the gap G1 situation.
        assert_eq!(feature_rows(&server, exe.rid().as_str()), 6);
        assert_eq!(exe.record_counts().unwrap(), (6, 0));
        assert_eq!(exe.status().unwrap(), ExecutionStatus::Failed);
        exe.rid().clone()
    };
    server.clear_faults();
    let ml = connect(&server, dir.path()).await;
    let exe = ml.resume_execution(&rid).await.unwrap();
    let report = exe.upload_execution_outputs().await.unwrap();
    assert_eq!(report.features_inserted, 0);
    assert_eq!(report.features_already_present, 6);
    assert_eq!(feature_rows(&server, rid.as_str()), 6);
    assert_eq!(exe.record_counts().unwrap(), (0, 6));
    assert_eq!(catalog_status(&server, rid.as_str()), "Uploaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_partial_multi_batch_commit_lands_every_record_exactly_once() {
    let server = TestCatalog::start().await.unwrap();
    let images = add_images(&server, 2500);
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let exe = ml
        .create_execution(config(&ml, "batches").await)
        .await
        .unwrap();
    let records: Vec<_> = images.iter().map(|i| glaucoma(i, "Normal")).collect();
    assert_eq!(exe.add_features(&records).unwrap(), 2500);
    // Batch 1 lands, batch 2 commits but its answer is lost, then the process dies.
    let mut drop2 = Fault::new("POST", FEATURE_POST, FaultMode::CommitThenDropConnection);
    drop2.skip = 1;
    server.add_fault(drop2);
    let mut dead = Fault::new("POST", FEATURE_POST, FaultMode::FailBeforeCommit503);
    dead.times = 10;
    server.add_fault(dead);
    assert!(exe.upload_execution_outputs().await.is_err());
    assert_eq!(feature_rows(&server, exe.rid().as_str()), 2000);
    assert_eq!(exe.record_counts().unwrap(), (1500, 1000));
    server.clear_faults();
    let ml = connect(&server, dir.path()).await;
    let exe = ml.resume_execution(exe.rid()).await.unwrap();
    let report = exe.upload_execution_outputs().await.unwrap();
    assert_eq!(report.features_inserted, 500);
    assert_eq!(report.features_already_present, 1000);
    let rows = server
        .rows(&format!(
            "demo:Execution_Image_Glaucoma/Execution={}",
            exe.rid()
        ))
        .unwrap();
    let mut per_image: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *per_image
            .entry(r["Image"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_image.len(), 2500);
    assert!(per_image.values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_crash_after_the_execution_post_committed_never_creates_a_second_execution() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let description = "C3 offline inference";
    {
        let ml = connect(&server, dir.path()).await;
        let cfg = config(&ml, description).await;
        server.add_fault(Fault::new(
            "POST",
            "/ermrest/catalog/1/entity/deriva-ml:Execution",
            FaultMode::CommitThenDropConnection,
        ));
        // The process cannot learn the outcome: every later check fails too, then it dies.
        let mut blind = Fault::new(
            "GET",
            "/ermrest/catalog/1/entity_rid/",
            FaultMode::FailBeforeCommit503,
        );
        blind.skip = 1;
        blind.times = 10;
        server.add_fault(blind);
        let err = ml.create_execution(cfg).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
    server.clear_faults();
    let executions = || {
        server
            .rows("deriva-ml:Execution")
            .unwrap()
            .into_iter()
            .filter(|r| r["Description"] == description)
            .count()
    };
    assert_eq!(executions(), 1);
    let ml = connect(&server, dir.path()).await;
    let exe = ml
        .create_execution(config(&ml, description).await)
        .await
        .unwrap();
    assert_eq!(executions(), 1);
    let local = ml.local_executions().unwrap();
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].rid, exe.rid().as_str());
    assert!(local[0].created_in_catalog);
    exe.add_features(&six_records()).unwrap();
    exe.upload_execution_outputs().await.unwrap();
    assert_eq!(feature_rows(&server, exe.rid().as_str()), 6);
    // Exactly one Execution POST reached the server.
    assert_eq!(
        posts_to(&server, "/ermrest/catalog/1/entity/deriva-ml:Execution").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_crash_mid_chunked_upload_resumes_the_job_and_commits_the_asset_once() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("heatmap 01.png");
    let bytes = deriva_test_catalog::image_bytes(99, 1500);
    std::fs::write(&file, &bytes).unwrap();
    let rid = {
        let ml = connect(&server, &dir.path().join("work")).await;
        let exe = ml
            .create_execution(config(&ml, "C4").await)
            .await
            .unwrap()
            .with_chunk_bytes(1000);
        let mut meta = serde_json::Map::new();
        meta.insert("Subject".into(), serde_json::json!("1-S002"));
        let mut bad = meta.clone();
        bad.insert("MD5".into(), serde_json::json!("forged"));
        assert!(exe
            .add_asset_with("demo:Image", &file, None, &bad)
            .unwrap_err()
            .to_string()
            .contains("\"MD5\""));
        exe.add_asset_with("demo:Image", &file, Some("saliency map"), &meta)
            .unwrap();
        exe.add_features(&six_records()).unwrap();
        // Chunk 0 of 2 lands, chunk 1 fails until the process gives up.
        let mut f = Fault::new("PUT", "/hatrac/Image/", FaultMode::FailBeforeCommit503);
        f.skip = 1;
        f.times = 10;
        server.add_fault(f);
        assert!(exe.upload_execution_outputs().await.is_err());
        exe.rid().clone()
    };
    server.clear_faults();
    let ml = connect(&server, &dir.path().join("work")).await;
    let exe = ml
        .resume_execution(&rid)
        .await
        .unwrap()
        .with_chunk_bytes(1000);
    let report = exe.upload_execution_outputs().await.unwrap();
    assert_eq!(report.assets_uploaded, 1);
    let log = server.log();
    let jobs = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains(";upload?"))
        .count();
    let chunk0 = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/0") && r.status == 204)
        .count();
    let chunk1 = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/1") && r.status == 204)
        .count();
    assert_eq!(
        (jobs, chunk0, chunk1),
        (1, 1, 1),
        "the recorded job was resumed at chunk 1"
    );
    let md5 = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(&bytes))
    };
    let images = server.rows("demo:Image").unwrap();
    let mine: Vec<_> = images.iter().filter(|r| r["MD5"] == md5.as_str()).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        mine[0]["URL"],
        format!("/hatrac/Image/{md5}.heatmap%2001.png")
    );
    assert_eq!(mine[0]["Length"], 1500);
    assert_eq!(mine[0]["Subject"], "1-S002");
    assert_eq!(mine[0]["Description"], "saliency map");
    let links = server
        .rows(&format!("demo:Image_Execution/Execution={rid}"))
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["Asset_Role"], "Output");
    let asset_rid = mine[0]["RID"].as_str().unwrap();
    let tags = server
        .rows(&format!("demo:Image_Asset_Type/Image={asset_rid}"))
        .unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0]["Asset_Type"], "Output_File");
    assert_eq!(feature_rows(&server, rid.as_str()), 6);
    // The object is served with the uploaded bytes.
    let got = reqwest::Client::new()
        .get(format!(
            "{}/hatrac/Image/{md5}.heatmap%2001.png",
            server.url()
        ))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), bytes.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c5_failed_status_put_stays_pending_locally_and_resume_flushes_it() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rid = {
        let ml = connect(&server, dir.path()).await;
        let exe = ml.create_execution(config(&ml, "C5").await).await.unwrap();
        exe.add_features(&six_records()).unwrap();
        let mut f = Fault::new("PUT", STATUS_PUT, FaultMode::FailBeforeCommit503);
        f.times = 1000;
        server.add_fault(f);
        exe.upload_execution_outputs().await.unwrap();
        assert_eq!(feature_rows(&server, exe.rid().as_str()), 6);
        // SQLite is ahead of the catalog.
        assert_eq!(exe.status().unwrap(), ExecutionStatus::Uploaded);
        assert_eq!(catalog_status(&server, exe.rid().as_str()), "Created");
        let rec = ml.local_executions().unwrap().remove(0);
        assert!(rec.sync_pending);
        exe.rid().clone()
    };
    server.clear_faults();
    let ml = connect(&server, dir.path()).await;
    ml.resume_execution(&rid).await.unwrap();
    assert_eq!(catalog_status(&server, rid.as_str()), "Uploaded");
    assert!(!ml.local_executions().unwrap()[0].sync_pending);
    let row = &server
        .rows(&format!("deriva-ml:Execution/RID={rid}"))
        .unwrap()[0];
    assert!(row["Upload_Duration"].as_str().unwrap().contains("sec"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c6_second_commit_is_a_no_op_with_zero_inserts() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let exe = ml.create_execution(config(&ml, "C6").await).await.unwrap();
    exe.add_features(&six_records()).unwrap();
    exe.upload_execution_outputs().await.unwrap();
    server.clear_log();
    let report = exe.upload_execution_outputs().await.unwrap();
    assert_eq!(report, Default::default());
    let log = server.log();
    assert!(
        log.iter().all(|r| r.method != "POST" && r.method != "PUT"),
        "{log:?}"
    );
    assert_eq!(feature_rows(&server, exe.rid().as_str()), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_staged_after_an_upload_are_committed_by_the_next_call() {
    // The reference's gap G5: its Uploaded short-circuit ignores newly staged features.
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let exe = ml.create_execution(config(&ml, "G5").await).await.unwrap();
    exe.add_features(&six_records()[..3]).unwrap();
    exe.upload_execution_outputs().await.unwrap();
    exe.add_features(&six_records()[3..]).unwrap();
    let report = exe.upload_execution_outputs().await.unwrap();
    assert_eq!(report.features_inserted, 3);
    assert_eq!(feature_rows(&server, exe.rid().as_str()), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_features_rejects_mixed_features_duplicates_and_unknown_columns_and_stages_nothing() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let exe = ml
        .create_execution(config(&ml, "validation").await)
        .await
        .unwrap();
    let mut other = glaucoma("1-I002", "Mild");
    other.feature.name = "Cataract".into();
    let err = exe
        .add_features(&[glaucoma("1-I001", "Normal"), other])
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)));
    assert!(err.to_string().contains("record 1"), "{err}");
    let err = exe
        .add_features(&[glaucoma("1-I001", "Normal"), glaucoma("1-I001", "Severe")])
        .unwrap_err();
    assert!(err.to_string().contains("already staged"), "{err}");
    let mut bad = glaucoma("1-I001", "Normal");
    bad.fields.insert("Grade".into(), serde_json::json!(3));
    let err = exe.add_features(&[bad]).unwrap_err();
    assert!(err.to_string().contains("\"Grade\""), "{err}");
    assert!(exe.add_features(&[]).is_err());
    assert_eq!(exe.record_counts().unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_an_unknown_execution_names_the_registry() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let err = ml
        .resume_execution(&deriva_bag_features::Rid::new("1-NOPE"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ExecutionNotFound { .. }));
    assert!(err.to_string().contains("state.db"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_adopts_an_abort_recorded_in_the_catalog_and_refuses_to_commit() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let exe = ml
        .create_execution(config(&ml, "aborted elsewhere").await)
        .await
        .unwrap();
    exe.start().await.unwrap();
    exe.add_features(&six_records()).unwrap();
    let put = reqwest::Client::new()
        .put(format!(
            "{}/ermrest/catalog/1/attributegroup/deriva-ml:Execution/RID;Status",
            server.url()
        ))
        .bearer_auth(server.token())
        .json(&serde_json::json!([{"RID": exe.rid().as_str(), "Status": "Aborted"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let exe = ml.resume_execution(exe.rid()).await.unwrap();
    assert_eq!(exe.status().unwrap(), ExecutionStatus::Aborted);
    let err = exe.upload_execution_outputs().await.unwrap_err();
    assert!(err.to_string().contains("aborted"), "{err}");
    assert_eq!(feature_rows(&server, exe.rid().as_str()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_links_each_input_dataset_version_it_read() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let mut cfg = config(&ml, "with inputs").await;
    cfg.datasets = vec![
        DatasetSpec::new("1-D000", Some("0.1.0")),
        DatasetSpec::new("1-D001", None),
    ];
    let exe = ml.create_execution(cfg).await.unwrap();
    // 1-D000 at the version asked for (1-V010), 1-D001 at its highest (1-V001).
    assert_eq!(
        dataset_links(&server, exe.rid().as_str()),
        [
            ("1-D000".to_string(), "1-V010".to_string()),
            ("1-D001".to_string(), "1-V001".to_string())
        ]
    );
    exe.add_features(&six_records()).unwrap();
    exe.upload_execution_outputs().await.unwrap();
    assert_eq!(dataset_links(&server, exe.rid().as_str()).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_input_version_is_an_error_before_any_lease() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let mut cfg = config(&ml, "bad input").await;
    cfg.datasets = vec![DatasetSpec::new("1-D001", Some("9.9.9"))];
    let err = ml.create_execution(cfg).await.unwrap_err().to_string();
    assert!(
        err.contains("1-D001") && err.contains("9.9.9") && err.contains("1.0.0"),
        "{err}"
    );
    assert!(posts_to(
        &server,
        "/ermrest/catalog/1/entity/public:ERMrest_RID_Lease"
    )
    .is_empty());
    assert!(ml.local_executions().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_input_link_committed_leaves_one_link_and_one_execution() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let description = "inputs with a lost response";
    let with_input = |mut cfg: deriva_catalog_client::ExecutionConfiguration| {
        cfg.datasets = vec![DatasetSpec::new("1-D002", None)];
        cfg
    };
    {
        let ml = connect(&server, dir.path()).await;
        let cfg = with_input(config(&ml, description).await);
        // The link lands but its response is lost, and so is every retry's.
        let mut lost = Fault::new(
            "POST",
            "/ermrest/catalog/1/entity/deriva-ml:Dataset_Execution",
            FaultMode::CommitThenDropConnection,
        );
        lost.times = 20;
        server.add_fault(lost);
        let err = ml.create_execution(cfg).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
    server.clear_faults();
    let ml = connect(&server, dir.path()).await;
    let exe = ml
        .create_execution(with_input(config(&ml, description).await))
        .await
        .unwrap();
    let executions: Vec<_> = server
        .rows("deriva-ml:Execution")
        .unwrap()
        .into_iter()
        .filter(|r| r["Description"] == description)
        .collect();
    assert_eq!(executions.len(), 1);
    assert_eq!(
        dataset_links(&server, exe.rid().as_str()),
        [("1-D002".to_string(), "1-V002".to_string())]
    );
    assert!(ml.local_executions().unwrap()[0].created_in_catalog);
}
