//! Protocol fidelity of the test catalog, checked with the real Python client
//! (`deriva==1.7.12` from PyPI): schema parsing, entity
//! GET/POST with `on_conflict_skip`, RID resolution, Hatrac single PUT, chunked job and GET
//! with checksum verification. Skips (printing `SKIPPED: why`) only when pip cannot install
//! deriva, and fails instead under `CI=true`.

use std::path::PathBuf;
use std::process::Command;

use deriva_test_catalog::TestCatalog;
use serde_json::Value;

/// A venv with deriva 1.7.12 under the cargo target tmp dir (created once, then reused).
fn python_with_deriva() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deriva-py-1.7.12");
    let python = venv.join("bin").join("python");
    let has = |p: &PathBuf| {
        Command::new(p)
            .args(["-c", "import deriva.core, sys; sys.exit(0 if deriva.core.__version__ == '1.7.12' else 1)"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && has(&python) {
        return Ok(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !made.success() {
        return Err("python3 -m venv failed".into());
    }
    let pip = Command::new(venv.join("bin").join("pip"))
        .args([
            "install",
            "--quiet",
            "--timeout",
            "20",
            "--retries",
            "1",
            "deriva==1.7.12",
        ])
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !pip.status.success() || !has(&python) {
        return Err(format!(
            "pip install deriva==1.7.12 failed: {}",
            String::from_utf8_lossy(&pip.stderr)
        ));
    }
    Ok(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deriva_py_reads_the_schema_inserts_idempotently_and_round_trips_hatrac_objects() {
    let python = match python_with_deriva() {
        Ok(p) => p,
        Err(reason) => {
            return deriva_test_catalog::skip_test(&format!(
                "the deriva-py fidelity check needs deriva==1.7.12: {reason}"
            ));
        }
    };
    let server = TestCatalog::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/fidelity.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(server.addr().to_string())
        .arg(server.token())
        .arg(work.path())
        .env("HOME", work.path())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "deriva-py failed against the test catalog:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        out["feature_keys"],
        serde_json::json!([["Execution", "Feature_Name", "Image"], ["RID"]])
    );
    assert_eq!(out["feature_fkeys"], 4);
    assert_eq!(
        out["schemas"],
        serde_json::json!(["demo", "deriva-ml", "public"])
    );
    assert_eq!(out["image_filename"], "retina 002.jpg");
    assert_eq!(out["image_length"], 1601);
    assert_eq!(out["resolved"], "Image");
    assert_eq!(out["insert_first"], 1);
    assert_eq!(out["insert_again"], 0);
    assert_eq!(
        out["terms"],
        serde_json::json!(["Normal", "Mild", "Moderate", "Severe"])
    );
    assert!(out["put_obj_location"]
        .as_str()
        .unwrap()
        .starts_with("/hatrac/Fidelity/blob.bin:"));
    assert_eq!(out["get_obj_equal"], true);
    assert_eq!(out["chunked_equal"], true);
    assert_eq!(out["content_equals"], true);
    // The chunked upload used the job protocol: create, 3 chunks of 1024/1024/952, finalize.
    let log = server.log();
    let chunk_puts = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/hatrac/Fidelity/chunked.bin;upload/"))
        .count();
    assert_eq!(chunk_puts, 3);
}
