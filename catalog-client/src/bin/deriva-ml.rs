//! `deriva-ml`: download and materialize dataset bags, commit offline-built feature records,
//! resume interrupted commits, and show the local execution registry. Every command prints
//! one JSON document on stdout; errors go to stderr with exit status 1.

// The clap structs' doc comments are --help text, where a URL stays a bare URL.
#![allow(rustdoc::bare_urls)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use deriva_bag_features::{FeatureRecord, Rid};
use deriva_catalog_client::{
    ConnectOptions, DatasetSpec, DerivaML, ExecutionConfiguration, Timeouts, DEFAULT_PARALLELISM,
};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "deriva-ml",
    version,
    about = "Online DerivaML: bags, executions, crash-safe commits"
)]
struct Cli {
    /// Server: a host name (https implied), e.g. example.org, or a URL such as
    /// https://example.org (plain http only to loopback).
    #[arg(long)]
    host: String,
    /// Catalog id.
    #[arg(long, default_value = "1")]
    catalog: String,
    /// Working directory (registry and bag cache); default ~/.deriva-ml/HOST/CATALOG.
    #[arg(long)]
    working_dir: Option<PathBuf>,
    /// Credential file; default DERIVA_CREDENTIAL_FILE or ~/.deriva/credential.json.
    #[arg(long)]
    credential_file: Option<PathBuf>,
    /// Connect and read timeouts in seconds, `CONNECT,READ` (read: the longest silence
    /// between bytes, not a limit on a whole download), for catalog requests and asset
    /// fetches alike.
    #[arg(long, value_name = "CONNECT,READ", default_value = "6,63", value_parser = parse_timeouts)]
    timeout: Timeouts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download a dataset version as a bag (materialized unless --no-materialize).
    Download {
        /// Dataset RID.
        rid: String,
        /// Version (default: the latest).
        #[arg(long)]
        version: Option<String>,
        /// Only metadata; leave assets in fetch.txt.
        #[arg(long)]
        no_materialize: bool,
    },
    /// Fetch the missing fetch.txt files of a bag directory.
    Materialize {
        /// Bag directory.
        bag: PathBuf,
        /// Concurrent downloads.
        #[arg(long, default_value_t = DEFAULT_PARALLELISM)]
        parallelism: usize,
    },
    /// Row counts and byte totals of a dataset version's bag.
    Estimate {
        /// Dataset RID.
        rid: String,
        /// Version (default: the latest).
        #[arg(long)]
        version: Option<String>,
    },
    /// Create an execution, stage the records of a JSON file (an array of FeatureRecord built
    /// offline) and commit them.
    Commit {
        /// JSON file with the records.
        #[arg(long)]
        records: PathBuf,
        /// Execution description.
        #[arg(long, default_value = "Offline results")]
        description: String,
        /// Workflow RID (default: the newest workflow).
        #[arg(long)]
        workflow: Option<String>,
        /// Input dataset the records were computed from, `RID` or `RID@VERSION` (default:
        /// its highest version); linked to the execution. Repeatable.
        #[arg(long = "dataset", value_name = "RID[@VERSION]")]
        datasets: Vec<String>,
    },
    /// Resume an interrupted execution and commit what is still pending.
    Resume {
        /// Execution RID.
        rid: String,
    },
    /// Show the local execution registry (one execution or all).
    Status {
        /// Execution RID.
        rid: Option<String>,
    },
}

async fn run(cli: Cli) -> Result<serde_json::Value, deriva_catalog_client::Error> {
    let ml = DerivaML::connect_with(
        &cli.host,
        &cli.catalog,
        ConnectOptions {
            working_dir: cli.working_dir,
            credential_file: cli.credential_file,
            timeout: cli.timeout,
            ..Default::default()
        },
    )
    .await?;
    let to_json = |v: &dyn erased::Ser| v.json();
    Ok(match cli.command {
        Command::Download {
            rid,
            version,
            no_materialize,
        } => {
            let mut spec = DatasetSpec::new(rid, version.as_deref());
            spec.materialize = !no_materialize;
            spec.timeout = cli.timeout;
            to_json(&ml.download_dataset_bag(spec).await?)
        }
        Command::Materialize { bag, parallelism } => {
            to_json(&ml.materialize(&bag, parallelism).await?)
        }
        Command::Estimate { rid, version } => to_json(
            &ml.estimate_bag_size(&Rid::new(rid), version.as_deref())
                .await?,
        ),
        Command::Commit {
            records,
            description,
            workflow,
            datasets,
        } => {
            let text = std::fs::read_to_string(&records).map_err(|e| {
                deriva_catalog_client::Error::Validation(format!("{}: {e}", records.display()))
            })?;
            let recs: Vec<FeatureRecord> = serde_json::from_str(&text).map_err(|e| {
                deriva_catalog_client::Error::Validation(format!(
                    "{} line {} column {}: not a JSON array of feature records: {e}",
                    records.display(),
                    e.line(),
                    e.column()
                ))
            })?;
            let workflows = ml.find_workflows().await?;
            let known: Vec<String> = workflows.iter().map(|w| w.rid.to_string()).collect();
            let workflow = match &workflow {
                Some(w) => workflows.into_iter().find(|x| x.rid.as_str() == w),
                None => workflows.into_iter().next(),
            }
            .ok_or_else(|| {
                deriva_catalog_client::Error::Validation(format!(
                    "no workflow {}in the catalog; workflows: [{}]",
                    workflow.map(|w| format!("{w} ")).unwrap_or_default(),
                    known.join(", ")
                ))
            })?;
            let exe = ml
                .create_execution(ExecutionConfiguration {
                    description,
                    workflow,
                    datasets: datasets
                        .iter()
                        .map(|d| match d.split_once('@') {
                            Some((rid, version)) => DatasetSpec::new(rid, Some(version)),
                            None => DatasetSpec::new(d.as_str(), None),
                        })
                        .collect(),
                })
                .await?;
            exe.start().await?;
            let staged = exe.add_features(&recs)?;
            exe.stop().await?;
            let report = exe.upload_execution_outputs().await?;
            json!({"execution": exe.rid(), "staged": staged, "report": report})
        }
        Command::Resume { rid } => {
            let exe = ml.resume_execution(&Rid::new(rid)).await?;
            let report = exe.upload_execution_outputs().await?;
            json!({"execution": exe.rid(), "report": report})
        }
        Command::Status { rid } => {
            let all = ml.local_executions()?;
            match rid {
                Some(r) => json!(all.into_iter().find(|e| e.rid == r)),
                None => json!(all),
            }
        }
    })
}

/// `CONNECT,READ` in seconds, both positive (`Timeouts`' `FromStr`).
fn parse_timeouts(text: &str) -> Result<Timeouts, String> {
    text.parse()
}

/// A tiny object-safe "serialize to JSON" so the match arms can share one helper.
mod erased {
    pub trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DERIVA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("deriva-ml: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Err(e) => {
            eprintln!("deriva-ml: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_takes_connect_and_read_seconds() {
        assert_eq!(parse_timeouts("10,1800").unwrap(), Timeouts::new(10, 1800));
        assert_eq!(parse_timeouts(" 6 , 63 ").unwrap(), Timeouts::default());
        for bad in ["10", "0,5", "10,x", ""] {
            assert!(parse_timeouts(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timeout_defaults_to_the_reference_pair() {
        let cli = Cli::try_parse_from(["deriva-ml", "--host", "https://h", "status"]).unwrap();
        assert_eq!(cli.timeout, Timeouts::default());
    }
}
