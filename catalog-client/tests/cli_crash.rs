//! A real process crash: the `deriva-ml commit` process is killed (SIGKILL) while its feature
//! POST is in flight, then `deriva-ml resume` in a new process finishes the commit with no
//! duplicate and no lost record.
#![cfg(feature = "cli")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use deriva_test_catalog::{Fault, FaultMode, TestCatalog};
use serde_json::Value;

fn deriva_ml(server: &TestCatalog, dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deriva-ml"));
    c.arg("--host")
        .arg(server.url())
        .arg("--catalog")
        .arg("1")
        .arg("--working-dir")
        .arg(dir.join("work"))
        .arg("--credential-file")
        .arg(dir.join("credential.json"));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_commit_process_is_finished_by_resume_in_a_new_process() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("credential.json"),
        serde_json::json!({ server.addr().to_string(): {"bearer-token": server.token()} })
            .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("records.json"),
        serde_json::to_string(&six_records()).unwrap(),
    )
    .unwrap();
    let mut stall = Fault::new(
        "POST",
        "/ermrest/catalog/1/entity/demo:Execution_Image_Glaucoma",
        FaultMode::StallMs,
    );
    stall.stall_ms = 1500;
    server.add_fault(stall);
    let mut child = deriva_ml(&server, dir.path())
        .arg("commit")
        .arg("--records")
        .arg(dir.path().join("records.json"))
        .args(["--dataset", "1-D000@0.1.0", "--dataset", "1-D002"])
        .spawn()
        .unwrap();
    // Wait for the Pending_Upload status PUT (the third PUT): the feature POST is next.
    let started = Instant::now();
    while server.log().iter().filter(|r| r.method == "PUT").count() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "commit never reached Pending_Upload"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "deriva-ml exited early"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let status = deriva_ml(&server, dir.path())
        .arg("status")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let registry: Value = serde_json::from_slice(&status.stdout).unwrap();
    let rid = registry[0]["rid"].as_str().unwrap().to_string();
    assert_eq!(registry[0]["status"], "Pending_Upload");

    let resumed = deriva_ml(&server, dir.path())
        .arg("resume")
        .arg(&rid)
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let out: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    let report = &out["report"];
    assert_eq!(
        report["features_inserted"].as_u64().unwrap()
            + report["features_already_present"].as_u64().unwrap(),
        6
    );
    assert_eq!(feature_rows(&server, &rid), 6);
    assert_eq!(catalog_status(&server, &rid), "Uploaded");
    // The --dataset inputs were linked, each at the version asked for (or the highest).
    let mut links: Vec<(String, String)> = server
        .rows(&format!("deriva-ml:Dataset_Execution/Execution={rid}"))
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["Dataset"].as_str().unwrap().to_string(),
                r["Dataset_Version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    links.sort();
    assert_eq!(
        links,
        [
            ("1-D000".to_string(), "1-V010".to_string()),
            ("1-D002".to_string(), "1-V002".to_string())
        ]
    );
    let executions = server.rows("deriva-ml:Execution").unwrap();
    assert_eq!(
        executions
            .iter()
            .filter(|e| e["Description"] == "Offline results")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_with_an_unknown_workflow_names_it_and_the_known_ones() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("credential.json"),
        serde_json::json!({ server.addr().to_string(): {"bearer-token": server.token()} })
            .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("records.json"),
        serde_json::to_string(&six_records()).unwrap(),
    )
    .unwrap();
    let out = deriva_ml(&server, dir.path())
        .arg("commit")
        .arg("--records")
        .arg(dir.path().join("records.json"))
        .args(["--workflow", "9-ZZZZ"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no workflow 9-ZZZZ in the catalog; workflows: [1-W001]"),
        "{stderr}"
    );
    // Checked before anything was created in the catalog.
    assert!(!server
        .rows("deriva-ml:Execution")
        .unwrap()
        .iter()
        .any(|e| e["Description"] == "Offline results"));
}
