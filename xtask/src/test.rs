//! `cargo xtask test`: the one command that runs every check and test on a fresh machine.
//!
//! It provisions libtorch and the TensorFlow C library with `.ci/ml-libs.sh` (a no-op when
//! they are in place), then runs `cargo fmt --check`, `cargo clippy --all-features -D
//! warnings` and `cargo test --workspace --all-features` (the adapters and the `torch`/`tf`
//! features included), in one `bash` so that the script's environment reaches every step.
//! It stops at the first failure and exits with that step's exit code.

use std::process::Command;

/// The steps, in order, as shell commands.
pub const STEPS: [&str; 3] = [
    "cargo fmt --all -- --check",
    "cargo clippy --workspace --all-targets --all-features -- -D warnings",
    "cargo test --workspace --all-features",
];

/// The bash script: provisioning, then each step announced before it runs.
pub fn script() -> String {
    let mut s = String::from(
        "set -euo pipefail\necho 'xtask test: . .ci/ml-libs.sh' >&2\n. .ci/ml-libs.sh\n",
    );
    for (i, step) in STEPS.iter().enumerate() {
        s.push_str(&format!(
            "echo 'xtask test: [{}/{}] {step}' >&2\n{step}\n",
            i + 1,
            STEPS.len()
        ));
    }
    s.push_str("echo 'xtask test: all checks passed' >&2\n");
    s
}

/// Runs the script from the workspace root; `Err(code)` carries the failing step's exit code.
pub fn run() -> Result<(), i32> {
    run_script(&script())
}

/// Runs `script` with `bash -c` from the workspace root; `Err(code)` on failure.
fn run_script(script: &str) -> Result<(), i32> {
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(crate::workspace_root())
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            let code = s.code().unwrap_or(1);
            eprintln!("xtask test: failed (exit code {code})");
            Err(code)
        }
        Err(e) => {
            eprintln!("xtask test: cannot run bash: {e}");
            Err(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_script_provisions_first_then_runs_fmt_clippy_and_all_feature_tests_in_order() {
        let s = script();
        let lines: Vec<&str> = s.lines().filter(|l| !l.starts_with("echo")).collect();
        assert_eq!(
            lines,
            vec![
                "set -euo pipefail",
                ". .ci/ml-libs.sh",
                "cargo fmt --all -- --check",
                "cargo clippy --workspace --all-targets --all-features -- -D warnings",
                "cargo test --workspace --all-features",
            ]
        );
        assert!(s.contains("echo 'xtask test: [2/3] cargo clippy"));
    }

    #[test]
    fn a_failing_step_stops_the_script_with_its_exit_code() {
        assert_eq!(run_script("set -euo pipefail\n(exit 3)\nexit 0"), Err(3));
        assert_eq!(run_script("set -euo pipefail\ntrue"), Ok(()));
    }
}
