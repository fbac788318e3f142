//! Command-line arguments (clap derive): the top-level [`Cli`], the options every
//! subcommand shares, and the small value parsers (RIDs, `--selector` specs) that several
//! subcommands reuse. Each subcommand's own arguments live beside its code in `commands/`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser};
use deriva_bag_core::features::{Rid, Selector};

use crate::commands::Command;

/// `deriva-bag`: inspect and validate DerivaML dataset bags offline.
#[derive(Debug, Parser)]
#[command(
    name = "deriva-bag",
    version,
    about = "Inspect and validate DerivaML dataset bags (BDBag/BagIt) offline",
    long_about = "Inspect and validate DerivaML dataset bags (BDBag/BagIt) offline.\n\n\
        BAG is a bag directory or an archive (.zip, .tar.gz, .tgz). Output is human text by \
        default and JSON with --json (stable shapes). Exit status: 0 success, 1 validation \
        failure, 2 bad input (unopenable bag, unknown table/feature/RID, malformed files).\n\n\
        Logging goes to stderr; RUST_LOG controls it (default: warn)."
)]
pub struct Cli {
    /// Options shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every subcommand (before or after the subcommand name).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Print machine-readable JSON (stable shapes) instead of human text. Never draws
    /// progress bars.
    #[arg(long, global = true)]
    pub json: bool,

    /// Cache directory for SQLite indexes and extracted archives
    /// [default: $DERIVA_BAG_CACHE, else the platform cache directory].
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// The bag positional argument.
#[derive(Debug, Clone, Args)]
pub struct BagArg {
    /// A bag directory or archive (.zip, .tar.gz, .tgz).
    #[arg(value_name = "BAG")]
    pub bag: PathBuf,
}

/// `--dataset RID`: pick a nested dataset of the bag instead of its root dataset.
#[derive(Debug, Clone, Args)]
pub struct DatasetArg {
    /// Work on this dataset of the bag (e.g. a nested one) instead of the root dataset.
    #[arg(long, value_name = "RID", value_parser = parse_rid)]
    pub dataset: Option<Rid>,
}

/// Parses a user-given RID, checking the catalog's RID shape (clap shows the message).
pub fn parse_rid(text: &str) -> Result<Rid, String> {
    Rid::parse(text).map_err(|e| e.to_string())
}

/// A `--selector` value: `newest`, `first`, `majority` or `majority:COLUMN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorSpec {
    /// Greatest RCT (by instant); ties → greatest row RID.
    Newest,
    /// Smallest RCT; ties → smallest row RID.
    First,
    /// Majority vote over a column (auto-detected when the feature has one term column).
    Majority(Option<String>),
}

/// A `--selector` text that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a selector; expected newest, first, majority or majority:COLUMN")]
pub struct SelectorSpecError {
    /// The offending text.
    pub value: String,
}

impl FromStr for SelectorSpec {
    type Err = SelectorSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || SelectorSpecError {
            value: text.to_string(),
        };
        let (name, column) = match text.split_once(':') {
            Some((name, column)) => (name, Some(column)),
            None => (text, None),
        };
        match (name, column) {
            ("newest", None) => Ok(SelectorSpec::Newest),
            ("first", None) => Ok(SelectorSpec::First),
            ("majority", None) => Ok(SelectorSpec::Majority(None)),
            // Column names may hold any character but must not be empty.
            ("majority", Some(column)) if !column.is_empty() => {
                Ok(SelectorSpec::Majority(Some(column.to_string())))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for SelectorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectorSpec::Newest => f.write_str("newest"),
            SelectorSpec::First => f.write_str("first"),
            SelectorSpec::Majority(None) => f.write_str("majority"),
            SelectorSpec::Majority(Some(column)) => write!(f, "majority:{column}"),
        }
    }
}

impl SelectorSpec {
    /// The library selector this spec names.
    pub fn to_selector(&self) -> Selector {
        match self {
            SelectorSpec::Newest => Selector::newest(),
            SelectorSpec::First => Selector::first(),
            SelectorSpec::Majority(column) => Selector::majority_vote(column.as_deref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use proptest::prelude::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("deriva-bag").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn selector_spec_parses_the_three_selectors() {
        assert_eq!("newest".parse(), Ok(SelectorSpec::Newest));
        assert_eq!("first".parse(), Ok(SelectorSpec::First));
        assert_eq!("majority".parse(), Ok(SelectorSpec::Majority(None)));
        assert_eq!(
            "majority:Glaucoma".parse(),
            Ok(SelectorSpec::Majority(Some("Glaucoma".into())))
        );
        // Only the first colon splits: a column name keeps any later colon.
        assert_eq!(
            "majority:a:b".parse(),
            Ok(SelectorSpec::Majority(Some("a:b".into())))
        );
    }

    #[test]
    fn selector_spec_rejects_unknown_names_and_empty_columns() {
        for bad in [
            "",
            "newest:x",
            "first:RCT",
            "majority:",
            "Newest",
            "vote",
            "last",
        ] {
            assert_eq!(
                bad.parse::<SelectorSpec>(),
                Err(SelectorSpecError { value: bad.into() }),
                "{bad:?}"
            );
        }
        let err = "vote".parse::<SelectorSpec>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"vote\" is not a selector; expected newest, first, majority or majority:COLUMN"
        );
    }

    #[test]
    fn selector_spec_maps_to_library_selectors() {
        assert!(matches!(
            SelectorSpec::Newest.to_selector(),
            Selector::Newest
        ));
        assert!(matches!(SelectorSpec::First.to_selector(), Selector::First));
        assert!(matches!(
            SelectorSpec::Majority(Some("Glaucoma".into())).to_selector(),
            Selector::MajorityVote(Some(c)) if c == "Glaucoma"
        ));
        assert!(matches!(
            SelectorSpec::Majority(None).to_selector(),
            Selector::MajorityVote(None)
        ));
    }

    #[test]
    fn json_flag_is_accepted_before_or_after_the_subcommand() {
        let before = parse(&["--json", "tables", "bag.zip"]).unwrap();
        let after = parse(&["tables", "bag.zip", "--json"]).unwrap();
        assert!(before.global.json);
        assert!(after.global.json);
        assert!(!parse(&["tables", "bag.zip"]).unwrap().global.json);
    }

    #[test]
    fn dataset_option_rejects_a_malformed_rid() {
        let err = parse(&["members", "bag", "--dataset", "1-d0"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("\"1-d0\" is not a RID"), "{err}");
        // clap's own usage errors exit with 2, the CLI's "bad input" status.
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_subcommand_is_required() {
        let err = parse(&[]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    proptest! {
        #[test]
        fn selector_spec_display_round_trips(column in "[^:]{1,12}(:[^:]{0,5})?") {
            for spec in [
                SelectorSpec::Newest,
                SelectorSpec::First,
                SelectorSpec::Majority(None),
                SelectorSpec::Majority(Some(column.clone())),
            ] {
                prop_assert_eq!(spec.to_string().parse::<SelectorSpec>(), Ok(spec));
            }
        }

        #[test]
        fn selector_spec_parser_never_panics(text in ".{0,40}") {
            let _ = text.parse::<SelectorSpec>();
        }
    }
}
