//! `deriva-bag members BAG [--dataset RID] [--recurse]`: a dataset's members by element table.

use std::io::Write;

use clap::Args;

use super::{Context, Run};
use crate::args::{BagArg, DatasetArg};
use crate::exit::{CliError, Outcome};
use crate::output::{
    member_keys, members_text, write_item_lines, write_members_json, MemberLine, MemberRow,
};

/// Arguments of `members`.
#[derive(Debug, Clone, Args)]
pub struct MembersArgs {
    #[command(flatten)]
    bag: BagArg,
    #[command(flatten)]
    dataset: DatasetArg,
    /// Include the members of nested datasets (parent rows first).
    #[arg(long)]
    recurse: bool,
    /// Also show the system columns RCT, RMT, RCB and RMB in human text (`--json` always
    /// has every column).
    #[arg(long)]
    all_columns: bool,
    /// Print JSON Lines instead: one `{"table": KEY, "row": {...}}` object per member row
    /// (KEY as in `--json`), written as the rows are read.
    #[arg(long)]
    jsonl: bool,
}

impl Run for MembersArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let dataset = ctx.open_dataset(&self.bag.bag, &self.dataset)?;
        if self.jsonl || ctx.json {
            // Streamed: rows are written as the index yields them, in flat memory.
            let tables = dataset.list_dataset_element_types();
            // With --recurse each row names the dataset it is a direct member of (member_of).
            let recurse = self.recurse;
            let members = dataset
                .members_json_iter(self.recurse, None)?
                .map(move |member| {
                    member.map(|(table, origin, row)| {
                        let member_of = recurse.then_some(origin);
                        (table, MemberRow { row, member_of })
                    })
                });
            if self.jsonl {
                let keys = member_keys(&tables);
                let lines = members.map(|member| {
                    member.map(|(table, row)| {
                        let at = tables.iter().position(|t| *t == table).unwrap_or(0);
                        MemberLine {
                            table: keys.get(at).map_or("", String::as_str),
                            row,
                        }
                    })
                });
                write_item_lines(out, lines)?;
            } else {
                write_members_json(out, &tables, members)?;
            }
            return Ok(Outcome::Success);
        }
        let members = dataset.list_dataset_members(self.recurse, None)?;
        out.write_all(members_text(&members, self.all_columns).as_bytes())?;
        Ok(Outcome::Success)
    }
}
