//! The subcommands. Each lives in its own module with its clap `Args` struct and a
//! [`Run`] implementation; the `subcommands!` list below is the only other place that
//! names it, so adding a subcommand is one new module plus one line here (with a
//! `#[cfg(feature = "…")]` line after its doc for one that needs a cargo feature).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deriva_bag_core::{BuildProgress, DatasetBag, OpenOptions, ProgressFn};

use crate::exit::{CliError, Outcome};
use crate::progress::Progress;

/// What every subcommand gets besides its own arguments.
#[derive(Debug, Clone)]
pub struct Context {
    /// `--json`: print the stable JSON shapes instead of human text.
    pub json: bool,
    /// Whether progress bars may be drawn (interactive stderr, no `--json`).
    pub progress: Progress,
    /// `--cache-dir`, overriding `$DERIVA_BAG_CACHE`.
    pub cache_dir: Option<PathBuf>,
}

impl Context {
    /// Opens the bag (directory or archive), building its index on first use with a
    /// progress bar when allowed.
    pub fn open(&self, bag: &Path) -> Result<DatasetBag, CliError> {
        let bar = Arc::new(self.progress.lazy_bytes("indexing"));
        let progress = self.progress.enabled().then(|| {
            let bar = Arc::clone(&bar);
            let callback: ProgressFn = Arc::new(move |p: &BuildProgress| {
                bar.update(p.bytes_done, p.bytes_total);
            });
            callback
        });
        let options = OpenOptions {
            cache_dir: self.cache_dir.clone(),
            progress,
            max_extracted_bytes: None,
        };
        let opened = DatasetBag::open_with(bag, &options);
        bar.finish();
        Ok(opened?)
    }

    /// Opens the bag, then picks `--dataset` when given (else the root dataset).
    pub fn open_dataset(
        &self,
        bag: &Path,
        dataset: &crate::args::DatasetArg,
    ) -> Result<DatasetBag, CliError> {
        let bag = self.open(bag)?;
        Ok(match &dataset.dataset {
            Some(rid) => bag.dataset(rid)?,
            None => bag,
        })
    }
}

/// A subcommand's arguments, runnable.
pub trait Run {
    /// Runs the subcommand, writing its result to `out` (stdout).
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError>;
}

/// Declares the subcommand modules, the clap `Command` enum (variant names become
/// kebab-case subcommand names) and its dispatch, from one list.
macro_rules! subcommands {
    ($( $(#[doc = $doc:literal])* $(#[cfg($cfg:meta)])? $variant:ident => $module:ident :: $args:ident, )*) => {
        $( $(#[cfg($cfg)])? pub mod $module; )*

        /// The subcommand to run.
        #[derive(Debug, clap::Subcommand)]
        pub enum Command {
            $( $(#[doc = $doc])* $(#[cfg($cfg)])? $variant($module::$args), )*
        }

        impl Run for Command {
            fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
                match self {
                    $( $(#[cfg($cfg)])? Command::$variant(args) => args.run(ctx, out), )*
                }
            }
        }
    };
}

subcommands! {
    /// Summary of the bag: dataset identity, BagIt version, materialization, table sizes.
    Info => info::InfoArgs,
    /// Check the bag's integrity (default mode: full when materialized, else completeness).
    Validate => validate::ValidateArgs,
    /// List the tables of the bag's model as schema:table.
    Tables => tables::TablesArgs,
    /// Print every row of one table (TABLE is schema:table or an unambiguous bare name).
    Table => table::TableArgs,
    /// Members of the root dataset (or --dataset RID), grouped by element table.
    Members => members::MembersArgs,
    /// Datasets nested in the root dataset (or --dataset RID).
    Children => children::ChildrenArgs,
    /// Features of the bag, or of one target TABLE: name, feature table, column roles.
    Features => features::FeaturesArgs,
    /// Values of one feature for targets reachable from the dataset, optionally one per
    /// target (--selector newest, first, majority or majority:COL).
    FeatureValues => feature_values::FeatureValuesArgs,
    /// Lay the assets out as class folders (OUT/training/Severe/x.jpg) for ImageFolder-style
    /// tools: --targets, --selector, --missing, --copy, --type-map.
    Restructure => restructure::RestructureArgs,
    /// Label balance per split, annotator agreement (Fleiss' kappa), leakage between splits
    /// and missing assets; --html OUT.html writes the page with charts.
    Report => report::ReportArgs,
    /// Fetch the files a bag's fetch.txt lists into the bag directory (checked: https or
    /// loopback http, LENGTH, md5; resumable), without a catalog. Cargo feature `catalog`.
    #[cfg(feature = "catalog")]
    Materialize => materialize::MaterializeArgs,
    /// Write every table, and every feature's values (--selector), as Parquet files into the
    /// new directory OUT, for DuckDB, Polars, Spark, pyarrow. Cargo feature `arrow`.
    #[cfg(feature = "arrow")]
    Export => export::ExportArgs,
}
