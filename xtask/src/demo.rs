//! `cargo xtask demo [--work DIR] [--train|--no-train]`: the README's main job.
//!
//! Runs the end-to-end demo example of `deriva-test-catalog` (generate the demo bag, serve
//! it from the local test catalog, download it materialized, inspect, restructure, build
//! Glaucoma records offline, commit them through a new Execution, verify them in the
//! catalog). Then, with `--train` — or automatically when libtorch and TensorFlow are already
//! provisioned (see [`ml_prefixes`]: `$LIBTORCH`/`$TF_PREFIX`, else `/opt`, else the user's
//! cache dir, as `.ci/ml-libs.sh` chooses) — unless `--no-train`, trains the
//! `deriva-bag-torch` example CNN and the `deriva-bag-tf` example softmax regression, 30
//! epochs each under a heading of its own, on the bag the demo downloaded. `--train` provisions both libraries through
//! `.ci/ml-libs.sh` if needed; the automatic mode never downloads anything.
//!
//! No silent minutes: each long step is announced before it starts (first builds, the
//! one-time library download), and cargo's own progress is shown (no `--quiet`).
//!
//! xtask itself stays free of the catalog and ML crates: both steps are `cargo run`s.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The libtorch version `.ci/ml-libs.sh` provisions (tch 0.26.0 needs exactly this).
const TORCH_VERSION: &str = "2.13.0";
/// The TensorFlow C library version `.ci/ml-libs.sh` provisions.
const TF_VERSION: &str = "2.13.0";

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
        "-p",
        "deriva-test-catalog",
        "--example",
        "demo",
        "--",
        "--work",
        work_arg.as_str(),
    ];
    eprintln!(
        "xtask demo: building the demo (deriva-test-catalog's `demo` example) — the first build \
         takes several minutes; cargo shows its progress below"
    );
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
                "xtask demo: OK (libtorch/TensorFlow are not provisioned, so no training step; pass --train to download them once, about 0.8 GB, with .ci/ml-libs.sh and train)"
            );
            return Ok(());
        }
        Train::IfProvisioned | Train::Always => {}
    }
    let bag = downloaded_bag(&work.join("summary.json"))?;
    if !ml_libs_provisioned() {
        let (torch, tf) = ml_prefixes(&|var| std::env::var_os(var), &|p| p.exists());
        eprintln!(
            "xtask demo: downloading libtorch {TORCH_VERSION} and TensorFlow {TF_VERSION} \
             (about 0.8 GB, once) into {} and {}",
            torch.display(),
            tf.display()
        );
    }
    let status = Command::new("bash")
        .arg("-c")
        .arg(TRAIN_SCRIPT)
        .arg(&bag)
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if !status.success() {
        return Err(format!("the training step failed ({status})"));
    }
    eprintln!("xtask demo: OK (demo and training)");
    Ok(())
}

/// The training step: provisions the libraries (`.ci/ml-libs.sh`, a no-op once done), then
/// runs the torch and the TF example, each under a heading and announced, since the first
/// build of each takes minutes. Both decode JPEGs with libjpeg-turbo (feature
/// `deriva-bag-features/libjpeg-turbo`, which needs `nasm`). `$0` carries the bag path in without any shell quoting of
/// ours.
const TRAIN_SCRIPT: &str = r#"set -e
. .ci/ml-libs.sh
echo "xtask demo: training on $0" >&2
echo "xtask demo: building the PyTorch example (the first build compiles libtorch's C++ bindings: several minutes)" >&2
"${CARGO:-cargo}" build -p deriva-bag-torch --features deriva-bag-features/libjpeg-turbo --example train
echo
echo "== 9. Train with PyTorch (tch): a small CNN (deriva-bag-torch, example train) =="
"${CARGO:-cargo}" run --quiet -p deriva-bag-torch --features deriva-bag-features/libjpeg-turbo --example train -- "$0"
echo "xtask demo: building the TensorFlow example (the first build compiles the tensorflow crate: a few minutes)" >&2
"${CARGO:-cargo}" build -p deriva-bag-tf --features deriva-bag-features/libjpeg-turbo --example tf_train
echo
echo "== 10. Train with TensorFlow (C API): softmax regression (deriva-bag-tf, example tf_train) =="
exec "${CARGO:-cargo}" run --quiet -p deriva-bag-tf --features deriva-bag-features/libjpeg-turbo --example tf_train -- "$0"
"#;

/// Whether `.ci/ml-libs.sh` would find libtorch and TensorFlow already in place (no
/// download needed).
fn ml_libs_provisioned() -> bool {
    let (torch, tf) = ml_prefixes(&|var| std::env::var_os(var), &|p| p.exists());
    torch.join("build-version").is_file() && tf.join("lib/pkgconfig/tensorflow.pc").is_file()
}

/// The libtorch and TensorFlow prefixes `.ci/ml-libs.sh` uses, by its rule: `$LIBTORCH` /
/// `$TF_PREFIX` when set; else `/opt/libtorch-<v>` / `/opt/libtensorflow-<v>` when
/// provisioned there; else under `${XDG_CACHE_HOME:-$HOME/.cache}/deriva-bag/`. `env` reads
/// a variable, `exists` tells whether a path exists.
fn ml_prefixes(
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    exists: &dyn Fn(&Path) -> bool,
) -> (PathBuf, PathBuf) {
    let set = |var: &str| env(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    let cache = set("XDG_CACHE_HOME")
        .or_else(|| set("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("deriva-bag");
    let pick = |var: &str, name: String, marker: &str| {
        set(var).unwrap_or_else(|| {
            let opt = Path::new("/opt").join(&name);
            if exists(&opt.join(marker)) {
                opt
            } else {
                cache.join(&name)
            }
        })
    };
    (
        pick(
            "LIBTORCH",
            format!("libtorch-{TORCH_VERSION}"),
            "build-version",
        ),
        pick(
            "TF_PREFIX",
            format!("libtensorflow-{TF_VERSION}"),
            "lib/pkgconfig/tensorflow.pc",
        ),
    )
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
    fn ml_prefixes_follow_the_variables_then_opt_then_the_user_cache() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                vars.iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let nothing = |_: &Path| false;
        let set = env(&[("LIBTORCH", "/t"), ("TF_PREFIX", "/f"), ("HOME", "/home/u")]);
        assert_eq!(
            ml_prefixes(&set, &nothing),
            (PathBuf::from("/t"), PathBuf::from("/f"))
        );
        let home = env(&[("HOME", "/home/u")]);
        assert_eq!(
            ml_prefixes(&home, &nothing),
            (
                PathBuf::from("/home/u/.cache/deriva-bag/libtorch-2.13.0"),
                PathBuf::from("/home/u/.cache/deriva-bag/libtensorflow-2.13.0")
            )
        );
        let xdg = env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]);
        let torch_in_opt = |p: &Path| p == Path::new("/opt/libtorch-2.13.0/build-version");
        assert_eq!(
            ml_prefixes(&xdg, &torch_in_opt),
            (
                PathBuf::from("/opt/libtorch-2.13.0"),
                PathBuf::from("/xdg/deriva-bag/libtensorflow-2.13.0")
            )
        );
    }

    #[test]
    fn the_training_script_announces_each_build_and_heads_each_framework() {
        let lines: Vec<&str> = TRAIN_SCRIPT.lines().collect();
        let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
        assert_eq!(lines[1], ". .ci/ml-libs.sh");
        assert!(at("building the PyTorch example") < at("build -p deriva-bag-torch"));
        assert!(at("Train with PyTorch (tch)") < at("run --quiet -p deriva-bag-torch"));
        assert!(at("building the TensorFlow example") < at("build -p deriva-bag-tf"));
        assert!(at("Train with TensorFlow (C API)") < at("run --quiet -p deriva-bag-tf"));
        // The builds show cargo's progress; only the runs of the just-built examples are quiet.
        assert!(!TRAIN_SCRIPT.contains("build --quiet"));
    }

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
