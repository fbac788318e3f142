//! `deriva-bag feature-values BAG TABLE FEATURE [--selector S] [--dataset RID]`: the values
//! of one feature for the targets reachable from a dataset, optionally reduced to one
//! record per target by a selector.

use std::io::Write;

use clap::Args;
use serde_json::Value as Json;

use super::{Context, Run};
use crate::args::{BagArg, DatasetArg, SelectorSpec};
use crate::exit::{CliError, Outcome};
use crate::output::{record_json, records_table, write_json};

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
}

impl Run for FeatureValuesArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let dataset = ctx.open_dataset(&self.bag.bag, &self.dataset)?;
        let selector = self.selector.as_ref().map(SelectorSpec::to_selector);
        let records = dataset.feature_values(&self.table, &self.feature, selector.as_ref())?;
        if ctx.json {
            write_json(out, &Json::Array(records.iter().map(record_json).collect()))?;
        } else if records.is_empty() {
            writeln!(out, "(no values)")?;
        } else {
            out.write_all(records_table(&records).render().as_bytes())?;
        }
        Ok(Outcome::Success)
    }
}
