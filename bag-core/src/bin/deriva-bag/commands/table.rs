//! `deriva-bag table BAG TABLE`: every row of one table.
//!
//! With `--json` (or `--jsonl`) the rows stream from the index one per line, so a table of
//! any size is printed without being held in memory; the human table needs every row to
//! align columns.

use std::io::Write;

use clap::Args;

use super::{Context, Run};
use crate::args::BagArg;
use crate::exit::{CliError, Outcome};
use crate::output::{
    row_count, rows_table, shows_column, write_json_lines, write_json_lines_array, TextTable,
};

/// Arguments of `table`.
#[derive(Debug, Clone, Args)]
pub struct TableArgs {
    #[command(flatten)]
    bag: BagArg,
    /// The table: `schema:table`, or a bare name when only one schema has it.
    #[arg(value_name = "TABLE")]
    table: String,
    /// Also show the system columns RCT, RMT, RCB and RMB in human text (`--json` always
    /// has every column).
    #[arg(long)]
    all_columns: bool,
    /// Print JSON Lines instead: one row object per line.
    #[arg(long)]
    jsonl: bool,
}

impl Run for TableArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let bag = ctx.open(&self.bag.bag)?;
        let name = bag.resolve_table(&self.table)?;
        let qualified = name.to_string();
        if self.jsonl {
            write_json_lines(out, bag.table_iter(&qualified)?)?;
            return Ok(Outcome::Success);
        }
        if ctx.json {
            write_json_lines_array(out, bag.table_iter(&qualified)?)?;
            return Ok(Outcome::Success);
        }
        let rows = bag.get_table(&qualified)?;
        let table = if rows.is_empty() {
            // No row to take the column list from: show the model's columns.
            TextTable::new(
                bag.model()
                    .table(&name)
                    .map(|t| {
                        t.columns
                            .iter()
                            .map(|c| c.name.clone())
                            .filter(|c| shows_column(c, self.all_columns))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            )
        } else {
            rows_table(&rows, self.all_columns)
        };
        out.write_all(table.render().as_bytes())?;
        writeln!(out, "({})", row_count(rows.len()))?;
        Ok(Outcome::Success)
    }
}
