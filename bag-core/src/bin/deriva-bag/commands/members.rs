//! `deriva-bag members BAG [--dataset RID] [--recurse]`: a dataset's members by element table.

use std::io::Write;

use clap::Args;

use super::{Context, Run};
use crate::args::{BagArg, DatasetArg};
use crate::exit::{CliError, Outcome};
use crate::output::{members_by_origin_json, members_json, members_text, write_json};

/// Arguments of `members`.
#[derive(Debug, Clone, Args)]
pub struct MembersArgs {
    #[command(flatten)]
    bag: BagArg,
    #[command(flatten)]
    dataset: DatasetArg,
    /// Include the members of nested datasets (parent rows first); with `--json`, each row
    /// gets a `member_of` field, the RID of the dataset it is a direct member of.
    #[arg(long)]
    recurse: bool,
    /// Also show the system columns RCT, RMT, RCB and RMB in human text (`--json` always
    /// has every column).
    #[arg(long)]
    all_columns: bool,
}

impl Run for MembersArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let dataset = ctx.open_dataset(&self.bag.bag, &self.dataset)?;
        if ctx.json && self.recurse {
            // Nested datasets' rows also name the dataset that lists them.
            let members = dataset.list_dataset_members_by_origin(true, None)?;
            write_json(out, &members_by_origin_json(&members))?;
            return Ok(Outcome::Success);
        }
        let members = dataset.list_dataset_members(self.recurse, None)?;
        if ctx.json {
            write_json(out, &members_json(&members))?;
        } else {
            out.write_all(members_text(&members, self.all_columns).as_bytes())?;
        }
        Ok(Outcome::Success)
    }
}
