//! `deriva-bag feature-values BAG TABLE FEATURE [--selector S] [--dataset RID]`: the values
//! of one feature for the targets reachable from a dataset, optionally reduced to one
//! record per target by a selector.

use std::io::Write;

use clap::Args;

use super::{Context, Run};
use crate::args::{BagArg, DatasetArg, SelectorSpec};
use crate::exit::{CliError, Outcome};
use crate::output::{records_table, write_json_lines, write_json_lines_array};

/// Arguments of `feature-values`.
#[derive(Debug, Clone, Args)]
pub struct FeatureValuesArgs {
    #[command(flatten)]
    bag: BagArg,
    /// The target table (`schema:table` or an unambiguous bare name), e.g. `Image`.
    #[arg(value_name = "TABLE")]
    table: String,
    /// The feature name, e.g. `Glaucoma`.
    #[arg(value_name = "FEATURE")]
    feature: String,
    /// Keep one record per target: newest, first, majority or majority:COLUMN
    /// [default: every record].
    #[arg(long, value_name = "SELECTOR")]
    selector: Option<SelectorSpec>,
    #[command(flatten)]
    dataset: DatasetArg,
    /// Print JSON Lines instead: one record object per line, written as the records are
    /// read.
    #[arg(long)]
    jsonl: bool,
}

impl Run for FeatureValuesArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let dataset = ctx.open_dataset(&self.bag.bag, &self.dataset)?;
        let selector = self.selector.as_ref().map(SelectorSpec::to_selector);
        if self.jsonl || ctx.json {
            // Streamed: one target's records are held at a time, each written straight
            // from its row of field values (the same object as the record's fields).
            let records = dataset.feature_rows_iter(&self.table, &self.feature, selector)?;
            if self.jsonl {
                write_json_lines(out, records)?;
            } else {
                write_json_lines_array(out, records)?;
            }
            return Ok(Outcome::Success);
        }
        let records = dataset.feature_values(&self.table, &self.feature, selector.as_ref())?;
        if records.is_empty() {
            writeln!(out, "(no values)")?;
        } else {
            out.write_all(records_table(&records).render().as_bytes())?;
        }
        Ok(Outcome::Success)
    }
}
