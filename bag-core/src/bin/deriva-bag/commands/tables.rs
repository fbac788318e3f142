//! `deriva-bag tables BAG`: the tables of the bag's model, as `schema:table`.

use std::io::Write;

use clap::Args;

use super::{Context, Run};
use crate::args::BagArg;
use crate::exit::{CliError, Outcome};
use crate::output::{table_names_json, write_json};

/// Arguments of `tables`.
#[derive(Debug, Clone, Args)]
pub struct TablesArgs {
    #[command(flatten)]
    bag: BagArg,
}

impl Run for TablesArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let bag = ctx.open(&self.bag.bag)?;
        let tables = bag.list_tables();
        if ctx.json {
            write_json(out, &table_names_json(&tables))?;
        } else {
            for table in &tables {
                writeln!(out, "{table}")?;
            }
        }
        Ok(Outcome::Success)
    }
}
