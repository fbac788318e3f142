//! `deriva-bag children BAG [--dataset RID] [--recurse]`: datasets nested in a dataset.

use std::io::Write;

use clap::Args;

use super::{Context, Run};
use crate::args::{BagArg, DatasetArg};
use crate::exit::{CliError, Outcome};
use crate::output::{datasets_table, write_json};

/// Arguments of `children`.
#[derive(Debug, Clone, Args)]
pub struct ChildrenArgs {
    #[command(flatten)]
    bag: BagArg,
    #[command(flatten)]
    dataset: DatasetArg,
    /// Include every descendant, not only direct children.
    #[arg(long)]
    recurse: bool,
}

impl Run for ChildrenArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let dataset = ctx.open_dataset(&self.bag.bag, &self.dataset)?;
        let children = dataset.list_dataset_children(self.recurse)?;
        if ctx.json {
            write_json(out, &children)?;
        } else if children.is_empty() {
            writeln!(out, "(no nested datasets)")?;
        } else {
            out.write_all(datasets_table(&children).render().as_bytes())?;
        }
        Ok(Outcome::Success)
    }
}
