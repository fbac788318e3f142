//! The main job, end to end: generate the demo bag, serve it from the local test catalog,
//! download it materialized, inspect it offline (members, newest Glaucoma labels),
//! restructure it into class folders (and the live dataset too, checking that both manifests
//! agree), build Glaucoma records offline for the unlabeled
//! images, commit them through a new Execution and verify them in the catalog.
//!
//! ```sh
//! cargo run -p deriva-test-catalog --example demo -- --work target/demo
//! ```
//!
//! Exits 0 after printing `OK: …`, 1 on any failure (the error names the step), 2 on bad
//! arguments. See [`deriva_test_catalog::demo`] for what is written under `--work`.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: demo [--work DIR]   (default DIR: target/demo)";

fn parse_args() -> Result<PathBuf, String> {
    let mut work = PathBuf::from("target/demo");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--work" => {
                work = args
                    .next()
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("--work needs a directory\n{USAGE}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(work)
}

fn main() -> ExitCode {
    let work = match parse_args() {
        Ok(w) => w,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match deriva_test_catalog::demo::run_demo(&work, &mut std::io::stdout()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
