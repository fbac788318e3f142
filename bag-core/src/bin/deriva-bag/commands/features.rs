//! `deriva-bag features BAG [TABLE]`: the features of the bag (or of one target table).

use std::io::Write;

use clap::Args;

use super::{Context, Run};
use crate::args::BagArg;
use crate::exit::{CliError, Outcome};
use crate::output::{features_table, write_json, FeatureSummary};

/// Arguments of `features`.
#[derive(Debug, Clone, Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    bag: BagArg,
    /// Only features whose target is this table (`schema:table` or an unambiguous bare name).
    #[arg(value_name = "TABLE")]
    table: Option<String>,
}

impl Run for FeaturesArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let bag = ctx.open(&self.bag.bag)?;
        let features: Vec<FeatureSummary> = bag
            .find_features(self.table.as_deref())?
            .iter()
            .map(FeatureSummary::from)
            .collect();
        if ctx.json {
            write_json(out, &features)?;
        } else if features.is_empty() {
            writeln!(out, "(no features)")?;
        } else {
            out.write_all(features_table(&features).render().as_bytes())?;
        }
        Ok(Outcome::Success)
    }
}
