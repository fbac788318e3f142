//! `deriva-bag export BAG OUT --format parquet [--selector S] [--dataset RID]`: every table
//! of the bag as one Parquet file, and every feature's values (under the selector) as one
//! denormalized Parquet file each, in the new directory OUT (cargo feature `arrow`).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use deriva_bag_core::export::{ExportSummary, ExportedFile, ParquetOptions};
use serde_json::{json, Value as Json};

use super::{Context, Run};
use crate::args::{BagArg, DatasetArg, SelectorSpec};
use crate::exit::{CliError, Outcome};
use crate::output::{write_json, TextTable};

/// The file formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Apache Parquet: one file per table and per feature.
    Parquet,
}

/// Arguments of `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    bag: BagArg,
    /// The directory to create (it must not exist, or be empty): OUT/tables/SCHEMA/TABLE.parquet
    /// and OUT/features/SCHEMA/TABLE/FEATURE.parquet.
    #[arg(value_name = "OUT")]
    out: PathBuf,
    /// The file format.
    #[arg(long, value_enum, default_value = "parquet")]
    format: Format,
    /// Keep one feature value per target: newest, first, majority or majority:COLUMN
    /// [default: every value].
    #[arg(long, value_name = "SELECTOR")]
    selector: Option<SelectorSpec>,
    /// Rows per Parquet row group.
    #[arg(long, value_name = "ROWS", default_value_t = deriva_bag_core::export::DEFAULT_ROW_GROUP_ROWS)]
    row_group_rows: usize,
    #[command(flatten)]
    dataset: DatasetArg,
}

impl Run for ExportArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let dataset = ctx.open_dataset(&self.bag.bag, &self.dataset)?;
        let selector = self.selector.as_ref().map(SelectorSpec::to_selector);
        let options = ParquetOptions {
            row_group_rows: self.row_group_rows,
            ..ParquetOptions::default()
        };
        let summary = match self.format {
            Format::Parquet => dataset.export_parquet(&self.out, selector.as_ref(), &options)?,
        };
        if ctx.json {
            write_json(out, &summary_json(&summary))?;
        } else {
            let mut table = TextTable::new(["file", "rows"]);
            for file in summary.tables.iter().chain(&summary.features) {
                table.push([file.path.display().to_string(), file.rows.to_string()]);
            }
            out.write_all(table.render().as_bytes())?;
            for skip in &summary.skipped {
                writeln!(out, "skipped feature {} on {}: {}", skip.feature, skip.table, skip.reason)?;
            }
            writeln!(
                out,
                "({} tables, {} features written to {})",
                summary.tables.len(),
                summary.features.len(),
                summary.out.display()
            )?;
        }
        Ok(Outcome::Success)
    }
}

/// `{"out", "tables":[{"table","path","rows"}], "features":[{"table","feature","path","rows"}],
/// "skipped":[{"table","feature","reason"}]}`.
fn summary_json(summary: &ExportSummary) -> Json {
    let file = |f: &ExportedFile| {
        let mut entry = json!({"table": f.table.to_string()});
        if let Some(feature) = &f.feature {
            entry["feature"] = json!(feature);
        }
        entry["path"] = json!(f.path.to_string_lossy());
        entry["rows"] = json!(f.rows);
        entry
    };
    json!({
        "out": summary.out.to_string_lossy(),
        "tables": summary.tables.iter().map(file).collect::<Vec<_>>(),
        "features": summary.features.iter().map(file).collect::<Vec<_>>(),
        "skipped": summary.skipped.iter().map(|s| json!({
            "table": s.table.to_string(),
            "feature": s.feature,
            "reason": s.reason,
        })).collect::<Vec<_>>(),
    })
}
