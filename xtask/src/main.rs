//! `cargo xtask`: developer chores for deriva-bag.
//!
//! - `cargo xtask fixtures [--out DIR] [--images N] [--seed S] [--layout format-b|format-a|legacy]
//!   [--no-materialize] [--archive zip|tgz]` writes a seeded fixture bag and prints its path.
//! - `cargo xtask bench [--images N] [--json]` generates (or reuses) a bench bag under
//!   `target/bench` (`target/bench-N` for a non-default N) and times `DatasetBag` on it.
//!   It always measures a release build: run
//!   from the debug `cargo xtask` alias it re-executes itself through
//!   `cargo run --release -p xtask -- bench …`. `--loaders` measures the adapters' image
//!   loading instead (bag-core's `loader_throughput` example); `--processes-only` only the
//!   `deriva-bag` processes, for bags of millions of images.
//! - `cargo xtask codegen-features BAG [--out FILE]` prints (or writes) typed record structs
//!   for every feature of the bag's schema.
//! - `cargo xtask demo [--work DIR] [--train|--no-train]` runs the end-to-end demo (download, inspect,
//!   restructure, offline records, commit, verify) against the local test catalog, then
//!   trains the torch and TF examples on the downloaded bag when both libraries are
//!   provisioned or `--train` is given.
//! - `cargo xtask test` is the one command that runs every check: it provisions libtorch and
//!   TensorFlow (`.ci/ml-libs.sh`), then fmt --check, clippy --all-features -D warnings and
//!   test --workspace --all-features, exiting with the failing step's code.
//! - `cargo xtask ci` is the same as `cargo xtask test` (what `.ci/run` calls).

mod bench;
mod codegen;
mod demo;
mod fixtures;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Developer chores for deriva-bag")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Fixture layouts as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LayoutArg {
    /// `data/<schema>/<table>.csv` (current bags).
    FormatB,
    /// Tables split over `data/<schema>/<T1>_<T2>/<table>.csv` path files.
    FormatA,
    /// `data/Dataset/Dataset_Image/Image.csv`, assets at `data/asset/<Table>/<Filename>`.
    Legacy,
}

impl From<LayoutArg> for deriva_bag_core::fixtures::Layout {
    fn from(value: LayoutArg) -> Self {
        use deriva_bag_core::fixtures::Layout;
        match value {
            LayoutArg::FormatB => Layout::FormatB,
            LayoutArg::FormatA => Layout::FormatA,
            LayoutArg::Legacy => Layout::Legacy,
        }
    }
}

/// Archive formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ArchiveArg {
    /// `Dataset_<RID>.zip`, as bdbag delivers bags.
    Zip,
    /// `Dataset_<RID>.tar.gz`.
    Tgz,
}

#[derive(Subcommand)]
enum Command {
    /// Write a seeded fixture bag and print its path.
    Fixtures {
        /// Output directory; the bag is `<DIR>/Dataset_1-D000`.
        #[arg(long, default_value = "target/fixtures")]
        out: PathBuf,
        /// Number of images (6 = the small demo bag).
        #[arg(long, default_value_t = 6)]
        images: usize,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// CSV and asset layout.
        #[arg(long, value_enum, default_value = "format-b")]
        layout: LayoutArg,
        /// Leave asset files out (fetch.txt and manifests still list them).
        #[arg(long)]
        no_materialize: bool,
        /// Also write an idempotent archive next to the bag and print its path instead.
        #[arg(long, value_enum)]
        archive: Option<ArchiveArg>,
    },
    /// Time DatasetBag on a generated bag (release build).
    Bench {
        /// Number of images in the bench bag.
        #[arg(long, default_value_t = 20_000)]
        images: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Instead: image-loading throughput of the PyTorch and TensorFlow adapters (256 px
        /// images, 2 workers) against the raw decode rate; provisions libtorch and
        /// TensorFlow with `.ci/ml-libs.sh` first.
        #[arg(long, conflicts_with = "json")]
        loaders: bool,
        /// Only the `deriva-bag` processes (time, peak RSS), after generating the bag: for
        /// millions of images, where the in-process measurements take longest.
        #[arg(long, conflicts_with_all = ["json", "loaders"])]
        processes_only: bool,
    },
    /// Run by `bench`: the CLI operations on BAG as processes, with their peak RSS (JSON).
    #[command(hide = true)]
    BenchProcesses {
        /// The bench bag.
        bag: PathBuf,
        /// Runs per warm operation (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// What CI runs: the same as `test` (fmt --check, clippy -D warnings, every test).
    Ci,
    /// The end-to-end demo against the local test catalog (plus training when available).
    Demo {
        /// Work directory for the demo's bags, class folders and records.
        #[arg(long, default_value = "target/demo")]
        work: PathBuf,
        /// Also train the torch and TF examples on the downloaded bag, provisioning the
        /// libraries first.
        #[arg(long, conflicts_with = "no_train")]
        train: bool,
        /// Skip training even when the libraries are already provisioned.
        #[arg(long)]
        no_train: bool,
    },
    /// Every check and test on a fresh machine: ml-libs, fmt, clippy and tests, all features.
    Test,
    /// Generate typed record structs for every feature of a bag's schema.
    CodegenFeatures {
        /// The bag directory or archive.
        bag: PathBuf,
        /// Write the source here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Path the generated code imports the model types from.
        #[arg(long, default_value = "deriva_bag_core::features")]
        crate_path: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fixtures {
            out,
            images,
            seed,
            layout,
            no_materialize,
            archive,
        } => fixtures::run(&fixtures::Args {
            out,
            images,
            seed,
            layout: layout.into(),
            materialized: !no_materialize,
            archive,
        }),
        Command::Bench {
            images,
            loaders: true,
            ..
        } => bench::run_loaders(images),
        Command::Bench {
            images,
            json,
            processes_only,
            ..
        } => bench::run(images, json, processes_only),
        Command::BenchProcesses { bag, runs } => bench::run_processes(&bag, runs),
        Command::Demo {
            work,
            train,
            no_train,
        } => demo::run(&demo::Args {
            work,
            train: if no_train {
                demo::Train::Never
            } else if train {
                demo::Train::Always
            } else {
                demo::Train::IfProvisioned
            },
        }),
        Command::Test | Command::Ci => {
            // Propagate the failing step's own exit code, not just "failure".
            return match test::run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            };
        }
        Command::CodegenFeatures {
            bag,
            out,
            crate_path,
        } => codegen::run(bag, out, &crate_path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's manifest directory).
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A relative path is taken from the workspace root, so `cargo xtask` behaves the same
/// from any directory.
fn from_root(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        workspace_root().join(path)
    }
}
