//! `deriva-bag restructure BAG OUT [...]`: lay the bag's assets out as class folders
//! (`OUT/training/Severe/retina_001.jpg`) for ImageFolder-style tools; `--json` prints one
//! `{"src","dst"}` per placement.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use clap::Args;
use deriva_bag_core::features::{Missing, Targets};
use deriva_bag_core::restructure::{restructure_assets, RestructureOptions};
use indicatif::ProgressBar;

use super::{Context, Run};
use crate::args::{BagArg, DatasetArg, SelectorSpec};
use crate::exit::{CliError, Outcome};

/// Arguments of `restructure`.
#[derive(Debug, Clone, Args)]
pub struct RestructureArgs {
    #[command(flatten)]
    bag: BagArg,
    /// The output directory (created if needed; re-runs into it are idempotent).
    #[arg(value_name = "OUT")]
    out: PathBuf,
    /// The asset table [default: the one asset table with members].
    #[arg(long, value_name = "TABLE")]
    asset_table: Option<String>,
    /// Comma-separated targets, one directory level each: columns of the asset table,
    /// features on it, or features on a table it references (e.g. a Subject feature).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    targets: Vec<String>,
    /// Selector for every feature target: newest, first, majority or majority:COLUMN
    /// [default: none; several differing values are then an error].
    #[arg(long, value_name = "SELECTOR")]
    selector: Option<SelectorSpec>,
    /// Assets without a value for some target: unknown (an `unknown` directory), skip, or
    /// error (fails before writing anything).
    #[arg(long, value_name = "POLICY", default_value = "unknown", value_parser = parse_missing)]
    missing: Missing,
    /// Copy files instead of creating absolute symlinks.
    #[arg(long)]
    copy: bool,
    /// Comma-separated dataset type → directory pairs, replacing the default
    /// Training=training,Testing=testing,Validation=validation. A type not in the map adds
    /// no directory level; untyped datasets use the Testing entry (else `testing`).
    #[arg(long, value_name = "TYPE=DIR,...", value_delimiter = ',', value_parser = parse_pair)]
    type_map: Vec<(String, String)>,
    /// Allow non-vocabulary feature targets and take the first value by RCT when an asset
    /// has several differing values and no selector.
    #[arg(long)]
    no_enforce_vocabulary: bool,
    #[command(flatten)]
    dataset: DatasetArg,
}

/// Whether `path` is an archive bag (extracted into the cache), not a bag directory.
fn is_archive_file(path: &std::path::Path) -> bool {
    path.is_file() && deriva_bag_core::archive::is_archive(path)
}

fn parse_missing(text: &str) -> Result<Missing, String> {
    text.parse::<Missing>().map_err(|e| e.to_string())
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not TYPE=DIR (e.g. Training=train)")),
    }
}

impl RestructureArgs {
    fn options(&self) -> RestructureOptions {
        let selector = self.selector.as_ref().map(SelectorSpec::to_selector);
        let targets =
            self.targets
                .iter()
                .filter(|t| !t.is_empty())
                .fold(Targets::new(), |t, name| match &selector {
                    Some(s) => t.with(name.clone(), s.clone()),
                    None => t.with_name(name.clone()),
                });
        let mut options = RestructureOptions::new()
            .targets(targets)
            .missing(self.missing)
            .use_symlinks(!self.copy)
            .enforce_vocabulary(!self.no_enforce_vocabulary);
        if let Some(table) = &self.asset_table {
            options = options.asset_table(table.clone());
        }
        if !self.type_map.is_empty() {
            let map: BTreeMap<String, String> = self.type_map.iter().cloned().collect();
            options = options.type_to_dir_map(map);
        }
        options
    }
}

impl Run for RestructureArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let dataset = ctx.open_dataset(&self.bag.bag, &self.dataset)?;
        let mut options = self.options();
        // A bar on an interactive stderr only (never on a pipe or with --json); it appears
        // with the first placed file, once the plan is known.
        let bar: Arc<OnceLock<ProgressBar>> = Arc::new(OnceLock::new());
        if ctx.progress.enabled() {
            let (bar, progress) = (Arc::clone(&bar), ctx.progress);
            options = options.progress(move |done, total| {
                let bar = bar.get_or_init(|| progress.items("placing", total as u64));
                bar.set_position(done as u64);
            });
        }
        let result = restructure_assets(&dataset, &self.out, &options);
        if let Some(bar) = bar.get() {
            bar.finish_and_clear();
        }
        let manifest = result?;
        if !self.copy && !manifest.is_empty() && is_archive_file(&self.bag.bag) {
            tracing::warn!(
                "the {} symbolic link(s) point into {}, where {} was extracted in the bag \
                 cache; clearing the cache breaks them: pass --copy to copy the files instead",
                manifest.len(),
                dataset.path().display(),
                self.bag.bag.display()
            );
        }
        if ctx.json {
            // Streamed: the same bytes as the whole value pretty-printed, without building it.
            manifest.write_json(&mut *out).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(
                out,
                "placed {} file(s) for {} asset(s) under {}",
                manifest.len(),
                manifest.source_count()?,
                self.out.display()
            )?;
            // The indices a training loop needs: every vocabulary term, as ImageFolder sorts
            // folder names (also for terms no asset of this bag carries).
            for level in manifest.target_classes() {
                let classes: Vec<String> = level
                    .classes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c}={i}"))
                    .collect();
                writeln!(
                    out,
                    "class indices of {} (every vocabulary term, sorted): {}",
                    level.target,
                    classes.join(", ")
                )?;
            }
            let missing = manifest.missing_files().len();
            if missing > 0 {
                writeln!(
                    out,
                    "{missing} asset file(s) are not on disk (bag not materialized?) and were not placed"
                )?;
            }
            let kept = manifest.kept_files();
            if kept.len() > 0 {
                writeln!(
                    out,
                    "{} file(s) recorded by an earlier run were kept, not replaced or removed:",
                    kept.len()
                )?;
                for k in kept {
                    let k = k?;
                    writeln!(out, "  {} ({})", k.path.display(), k.reason)?;
                }
            }
        }
        Ok(Outcome::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use crate::commands::Command;
    use clap::Parser;

    fn parse(args: &[&str]) -> RestructureArgs {
        let cli = Cli::try_parse_from(
            ["deriva-bag", "restructure", "bag", "out"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .unwrap();
        match cli.command {
            Command::Restructure(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restructure_flags_build_the_options() {
        let a = parse(&[
            "--targets",
            "Glaucoma,Subject",
            "--selector",
            "majority",
            "--missing",
            "skip",
            "--copy",
            "--type-map",
            "Training=train,Testing=test",
            "--no-enforce-vocabulary",
        ]);
        let o = a.options();
        let names: Vec<&str> = o.get_targets().iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Glaucoma", "Subject"]);
        assert!(o.get_targets().iter().all(|(_, s)| s.is_some()));
        assert_eq!(o.get_missing(), Missing::Skip);
        assert_eq!(o.type_dir("Training"), Some("train"));
        assert_eq!(
            o.type_dir("Validation"),
            None,
            "the map is replaced, not merged"
        );
    }

    #[test]
    fn bad_missing_and_type_map_values_are_usage_errors() {
        for args in [["--missing", "Unknown"], ["--type-map", "Training"]] {
            let err = Cli::try_parse_from(
                ["deriva-bag", "restructure", "bag", "out"]
                    .into_iter()
                    .chain(args),
            )
            .unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
        }
    }
}
