//! Loopback benchmarks of the catalog client against the local test catalog (run in release:
//! `cargo run -p deriva-test-catalog --release --example bench`).
//!
//! 1. materialize 2,000 × 100 KB assets from `fetch.txt` with parallelism 1 and 8;
//! 2. stage and commit 100,000 feature records.
//!
//! Arguments: `[files] [file_kb] [records]` (defaults 2000 100 100000).

use std::time::Instant;

use deriva_bag_core::bagit::write::{BagWriter, RemoteFile};
use deriva_bag_features::{FeatureId, FeatureRecord};
use deriva_catalog_client::{ConnectOptions, Credential, DerivaML, ExecutionConfiguration};
use deriva_test_catalog::{image_bytes, TestCatalog};
use md5::Digest;
use serde_json::json;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let files = args.first().copied().unwrap_or(2000);
    let file_kb = args.get(1).copied().unwrap_or(100);
    let records = args.get(2).copied().unwrap_or(100_000);

    let server = TestCatalog::start().await.expect("start test catalog");
    let work = tempfile::tempdir().expect("tempdir");
    let ml = DerivaML::connect_with(
        &server.url(),
        "1",
        ConnectOptions {
            credential: Some(Credential::BearerToken(server.token().into())),
            working_dir: Some(work.path().join("work")),
            ..Default::default()
        },
    )
    .await
    .expect("connect");

    // --- materialize ---
    let bag = work.path().join("bench-bag");
    std::fs::create_dir_all(bag.join("data")).expect("mkdir");
    std::fs::write(bag.join("data/README.txt"), "benchmark bag\n").expect("write");
    let mut remote = Vec::with_capacity(files);
    for i in 0..files {
        let bytes = image_bytes(10_000 + i as u64, file_kb * 1024);
        let md5 = hex::encode(md5::Md5::digest(&bytes));
        let url = server
            .put_object(&format!("/hatrac/Bench/{md5}.f{i:05}.bin"), &bytes)
            .expect("put object");
        remote.push(RemoteFile {
            url: format!("{}{url}", server.url()),
            length: bytes.len() as u64,
            path: format!("data/asset/B-{i:05}/Bench/f{i:05}.bin"),
            md5,
            sha256: None,
        });
    }
    BagWriter::new()
        .remote_files(remote)
        .write(&bag)
        .expect("write bag");
    let total_mb = (files * file_kb * 1024) as f64 / 1e6;
    for parallelism in [1usize, 8] {
        let _ = std::fs::remove_dir_all(bag.join("data/asset"));
        let t = Instant::now();
        let report = ml
            .materialize(&bag, parallelism)
            .await
            .expect("materialize");
        let s = t.elapsed().as_secs_f64();
        assert_eq!(report.fetched, files);
        println!(
            "materialize parallelism={parallelism}: {files} files x {file_kb} KB in {s:.2} s = {:.0} files/s, {:.1} MB/s",
            files as f64 / s,
            total_mb / s
        );
    }

    // --- commit ---
    let rows: Vec<_> = (0..records)
        .map(|i| {
            json!({"RID": format!("3-{i:05}"), "URL": format!("/hatrac/Image/b{i}.jpg"), "Filename": format!("b{i}.jpg"),
                   "Length": 1, "MD5": "00", "Subject": "1-S001",
                   "RCT": "2026-05-28T16:54:02+00:00", "RMT": "2026-05-28T16:54:02+00:00"})
        })
        .collect();
    for chunk in rows.chunks(10_000) {
        server
            .insert_rows("demo:Image", chunk)
            .expect("seed images");
    }
    let recs: Vec<FeatureRecord> = (0..records)
        .map(|i| {
            let mut fields = indexmap::IndexMap::new();
            fields.insert("Image".to_string(), json!(format!("3-{i:05}")));
            fields.insert(
                "Glaucoma".to_string(),
                json!(["Normal", "Mild", "Moderate", "Severe"][i % 4]),
            );
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
        })
        .collect();
    let workflow = ml.find_workflows().await.expect("workflows")[0].clone();
    let exe = ml
        .create_execution(ExecutionConfiguration {
            description: "bench".into(),
            workflow,
            datasets: Vec::new(),
        })
        .await
        .expect("create execution");
    let t = Instant::now();
    let staged = exe.add_features(&recs).expect("add_features");
    let stage_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = exe.upload_execution_outputs().await.expect("commit");
    let commit_s = t.elapsed().as_secs_f64();
    assert_eq!(report.features_inserted, records);
    println!(
        "add_features: {staged} records in {stage_s:.2} s = {:.0} records/s",
        staged as f64 / stage_s
    );
    println!(
        "commit: {records} records in {commit_s:.2} s = {:.0} records/s ({} POSTs)",
        records as f64 / commit_s,
        report.feature_requests
    );
}
