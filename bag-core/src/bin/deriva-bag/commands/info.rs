//! `deriva-bag info BAG`: dataset identity, BagIt version, materialization and table sizes.

use std::io::Write;

use clap::Args;
use deriva_bag_core::bagit::{bagit_version, BagItVersion};
use deriva_bag_core::AssetCheck;
use indexmap::IndexMap;

use super::{Context, Run};
use crate::args::BagArg;
use crate::exit::{CliError, Outcome};
use crate::output::{info_text, write_json, InfoSummary};

/// Arguments of `info`.
#[derive(Debug, Clone, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    bag: BagArg,
    /// Look for every asset file now instead of using the cache's record of the last check
    /// (which is renewed when the bag's asset directories change; a file removed inside its
    /// own asset directory is only seen by this check, `validate`, and the commands that
    /// read assets).
    #[arg(long)]
    check_assets: bool,
}

/// `bagit.txt`'s version as written there.
pub fn bagit_version_text(version: BagItVersion) -> &'static str {
    match version {
        BagItVersion::V0_97 => "0.97",
        BagItVersion::V1_0 => "1.0",
    }
}

impl Run for InfoArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let bag = ctx.open(&self.bag.bag)?;
        let mut tables = IndexMap::new();
        for table in bag.list_tables() {
            let rows = bag.row_count(&table)?;
            tables.insert(table.to_string(), rows);
        }
        let assets = bag.asset_status(if self.check_assets {
            AssetCheck::Files
        } else {
            AssetCheck::Recorded
        })?;
        let given = &self.bag.bag;
        let summary = InfoSummary {
            path: given.display().to_string(),
            // An archive is read from the folder it was extracted to; a directory in place.
            extracted_to: (bag.path() != given).then(|| bag.path().display().to_string()),
            dataset: bag.info().clone(),
            bagit_version: bagit_version_text(bagit_version(bag.path())?).to_string(),
            materialized: assets.materialized,
            missing_assets: assets.missing_assets,
            assets_checked_now: assets.checked_now,
            tables,
        };
        if ctx.json {
            write_json(out, &summary)?;
        } else {
            out.write_all(info_text(&summary).as_bytes())?;
        }
        Ok(Outcome::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bagit_versions_print_as_bagit_txt_writes_them() {
        assert_eq!(bagit_version_text(BagItVersion::V0_97), "0.97");
        assert_eq!(bagit_version_text(BagItVersion::V1_0), "1.0");
    }
}
