//! `cargo xtask demo [--work DIR] [--train]`: the README's main job.
//!
//! Runs the end-to-end demo example of `deriva-test-catalog` (generate the demo bag, serve
//! it from the local test catalog, download it materialized, inspect, restructure, build
//! Glaucoma records offline, commit them through a new Execution, verify them in the
//! catalog). Then, with `--train` — or automatically when libtorch and TensorFlow are already
//! provisioned (`$LIBTORCH/build-version`, default `/opt/libtorch-2.13.0`, and
//! `$TF_PREFIX/lib/pkgconfig/tensorflow.pc`, default `/opt/libtensorflow-2.13.0`, see
//! `.ci/ml-libs.sh`), unless `--no-train` — trains the `deriva-bag-torch` example CNN and the
//! `deriva-bag-tf` example softmax regression, 30 epochs each under a heading of its own, on
//! the bag the demo downloaded. `--train` provisions both libraries through `.ci/ml-libs.sh`
//! if needed; the automatic mode never downloads anything.
//!
//! xtask itself stays free of the catalog and ML crates: both steps are `cargo run`s.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The libtorch version `.ci/ml-libs.sh` provisions (tch 0.26.0 needs exactly this).
const TORCH_VERSION: &str = "2.13.0";
/// The TensorFlow C library version `.ci/ml-libs.sh` provisions.
const TF_VERSION: &str = "2.13.0";

/// The training examples the demo runs after it, in order: heading (numbered on from the
/// demo's eight steps), package, example.
const TRAINING: [(&str, &str, &str); 2] = [
    (
        "9. Train with PyTorch: a small CNN (deriva-bag-torch, example `train`)",
        "deriva-bag-torch",
        "train",
    ),
    (
        "10. Train with TensorFlow: softmax regression (deriva-bag-tf, example `tf_train`)",
        "deriva-bag-tf",
        "tf_train",
    ),
];

/// Whether to run the training step after the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Train {
    /// `--train`: provision libtorch and TensorFlow if needed, then train.
    Always,
    /// Default: train only when both libraries are already in place.
    IfProvisioned,
    /// `--no-train`.
    Never,
}

/// What `cargo xtask demo` was asked to do.
pub struct Args {
    /// The demo's work directory (relative paths are taken from the workspace root).
    pub work: PathBuf,
    /// Whether to train after the demo.
    pub train: Train,
}

/// Runs the demo, then the training step when asked for or available.
pub fn run(args: &Args) -> Result<(), String> {
    let root = crate::workspace_root();
    let work = crate::from_root(args.work.clone());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let work_arg = work.to_string_lossy().into_owned();
    let demo_args = [
        "run",
        "--quiet",
        "-p",
        "deriva-test-catalog",
        "--example",
        "demo",
        "--",
        "--work",
        work_arg.as_str(),
    ];
    eprintln!("xtask demo: cargo {}", demo_args.join(" "));
    let status = Command::new(&cargo)
        .args(demo_args)
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("the demo failed ({status})"));
    }

    match args.train {
        Train::Never => {
            eprintln!("xtask demo: OK (training skipped: --no-train)");
            return Ok(());
        }
        Train::IfProvisioned if !ml_libs_provisioned() => {
            eprintln!(
                "xtask demo: OK (libtorch/TensorFlow are not provisioned, so no training step; pass --train to provision them with .ci/ml-libs.sh and train)"
            );
            return Ok(());
        }
        Train::IfProvisioned | Train::Always => {}
    }
    let bag = downloaded_bag(&work.join("summary.json"))?;
    for (heading, package, example) in TRAINING {
        println!("== {heading}\n   on {}", bag.display());
        // `$0`, `$1`, `$2` carry the bag, package and example into the script without any
        // shell quoting of our own.
        let script = "set -e; . .ci/ml-libs.sh; \
                      exec \"${CARGO:-cargo}\" run --quiet -p \"$1\" --example \"$2\" -- \"$0\"";
        let status = Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(&bag)
            .args([package, example])
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        if !status.success() {
            return Err(format!(
                "the training step failed: {package} example {example} ({status})"
            ));
        }
    }
    eprintln!("xtask demo: OK (demo and training)");
    Ok(())
}

/// Whether `.ci/ml-libs.sh` would find libtorch and TensorFlow already in place (no
/// download needed).
fn ml_libs_provisioned() -> bool {
    let prefix = |var: &str, default: String| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let torch = prefix("LIBTORCH", format!("/opt/libtorch-{TORCH_VERSION}"));
    let tf = prefix("TF_PREFIX", format!("/opt/libtensorflow-{TF_VERSION}"));
    torch.join("build-version").is_file() && tf.join("lib/pkgconfig/tensorflow.pc").is_file()
}

/// The `downloaded_bag` the demo recorded in its `summary.json`.
fn downloaded_bag(summary: &Path) -> Result<PathBuf, String> {
    let bytes = std::fs::read(summary).map_err(|e| format!("{}: {e}", summary.display()))?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", summary.display()))?;
    json.get("downloaded_bag")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{}: no \"downloaded_bag\" string", summary.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloaded_bag_is_read_from_the_demo_summary() {
        let dir = std::env::temp_dir().join(format!("xtask-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("summary.json");
        std::fs::write(
            &file,
            br#"{"downloaded_bag": "/w/deriva-ml/cache/bags/x/Dataset_1-D000"}"#,
        )
        .unwrap();
        assert_eq!(
            downloaded_bag(&file).unwrap(),
            PathBuf::from("/w/deriva-ml/cache/bags/x/Dataset_1-D000")
        );
        std::fs::write(&file, br#"{"dataset": "1-D000"}"#).unwrap();
        let err = downloaded_bag(&file).unwrap_err();
        assert!(err.contains("summary.json: no \"downloaded_bag\""), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
