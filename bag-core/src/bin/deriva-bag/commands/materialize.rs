//! `deriva-bag materialize BAG [--parallelism N] [--timeout CONNECT,READ]` (cargo feature
//! `catalog`): fetches the files a bag's `fetch.txt` lists into the bag directory, as
//! `bdbag --resolve-fetch all` does, without connecting to a catalog.
//!
//! Every check is the online client's (`deriva_bag_core::catalog::materialize_bag`): each URL
//! is https or plain http to loopback, redirects stay on their origin, a download stops at
//! its `fetch.txt` LENGTH and is md5-checked before it is renamed into place, partial files
//! stay out of `data/` and are resumed with `Range`, and a file already present with the
//! right length and md5 is not fetched again.

use std::io::Write;

use clap::Args;
use deriva_bag_core::archive;
use deriva_bag_core::catalog::{materialize_bag, MaterializeReport, Timeouts, DEFAULT_PARALLELISM};

use super::{Context, Run};
use crate::args::BagArg;
use crate::exit::{CliError, Outcome};
use crate::output::write_json;

/// Arguments of `materialize`.
#[derive(Debug, Clone, Args)]
pub struct MaterializeArgs {
    #[command(flatten)]
    bag: BagArg,
    /// How many files to download at once.
    #[arg(long, default_value_t = DEFAULT_PARALLELISM as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallelism: u16,
    /// Connect and read timeouts in seconds, `CONNECT,READ` (read: the longest silence
    /// between bytes, not a total deadline).
    #[arg(long, value_name = "CONNECT,READ", default_value = "6,63")]
    timeout: Timeouts,
}

impl Run for MaterializeArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let bag = &self.bag.bag;
        // An archive's extraction lives in the cache, published once and never changed.
        if archive::is_archive(bag) {
            return Err(deriva_bag_core::Error::NotABag {
                path: bag.clone(),
                detail: "materialize fetches into a bag directory; unpack the archive and \
                         give its bag directory"
                    .into(),
            }
            .into());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| deriva_bag_core::Error::io(bag, e))?;
        let report = runtime.block_on(materialize_bag(
            bag,
            usize::from(self.parallelism),
            self.timeout,
        ))?;
        if ctx.json {
            write_json(out, &report)?;
        } else {
            write_text(out, &report)?;
        }
        Ok(Outcome::Success)
    }
}

fn write_text(out: &mut dyn Write, report: &MaterializeReport) -> std::io::Result<()> {
    writeln!(
        out,
        "fetched {} file{} ({} bytes, {} resumed); {} already present",
        report.fetched,
        if report.fetched == 1 { "" } else { "s" },
        report.bytes,
        report.resumed,
        report.already_present
    )
}
