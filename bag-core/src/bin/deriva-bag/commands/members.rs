//! `deriva-bag members BAG [--dataset RID] [--recurse]`: a dataset's members by element table.

use std::io::Write;

use clap::Args;

use super::{Context, Run};
use crate::args::{BagArg, DatasetArg};
use crate::exit::{CliError, Outcome};
use deriva_bag_core::features::TableName;

use crate::output::{member_keys, members_text, JsonItem, MemberLine, MemberRow, MembersWriter};

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
            // Streamed: rows are written as the index yields them, in flat memory, each from
            // its JSON as the index writes it. With --recurse each row names the dataset it
            // is a direct member of (member_of).
            let tables = dataset.list_dataset_element_types();
            let keys = member_keys(&tables);
            let recurse = self.recurse;
            let at = |table: &TableName| tables.iter().position(|t| t == table);
            if self.jsonl {
                let mut line = Vec::new();
                dataset.for_each_member_json(self.recurse, None, |table, origin, row| {
                    let key = at(table).and_then(|at| keys.get(at));
                    let member_of = recurse.then_some(origin.as_str());
                    line.clear();
                    MemberLine {
                        table: key.map_or("", String::as_str),
                        row: MemberRow { row, member_of },
                    }
                    .write_json(&mut line)?;
                    line.push(b'\n');
                    out.write_all(&line).map_err(CliError::from)
                })?;
            } else {
                let mut w = MembersWriter::start(out, &keys)?;
                dataset.for_each_member_json(self.recurse, None, |table, origin, row| {
                    let member_of = recurse.then_some(origin.as_str());
                    w.row(at(table), &MemberRow { row, member_of })
                        .map_err(CliError::from)
                })?;
                w.finish()?;
            }
            return Ok(Outcome::Success);
        }
        let members = dataset.list_dataset_members(self.recurse, None)?;
        out.write_all(members_text(&members, self.all_columns).as_bytes())?;
        Ok(Outcome::Success)
    }
}
