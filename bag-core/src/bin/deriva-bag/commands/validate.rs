//! `deriva-bag validate BAG [--mode structure|completeness|fast|full]`.
//!
//! Validation checks the BagIt tag files and payload first, without the CSVs or the index: a
//! bag whose `Image.csv` is corrupted must be reported as a checksum mismatch (exit 1),
//! not fail to open as a CSV error (exit 2). Then, for a DerivaML bag (one with
//! `data/schema.json`) that opens, the index's findings are added (`duplicate-rid`: a row
//! that repeats a RID of its table with other values); a bag that does not open adds none,
//! its BagIt findings stand.
//!
//! Default mode: `full` when the bag is materialized (every `fetch.txt` file is on disk),
//! else `completeness`. Full validation counts a not-yet-fetched file as missing, so on a
//! holey bag it would always fail; completeness accepts files that `fetch.txt` provides.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use deriva_bag_core::bagit::{BagItFiles, ValidationMode, ValidationReport};
use deriva_bag_core::{archive, cache};
use serde_json::json;

use super::{Context, Run};
use crate::args::BagArg;
use crate::exit::{CliError, Outcome};
use crate::output::{write_json, TextTable};

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Every file on disk is listed in the manifests; tag files exist.
    Structure,
    /// Structure, plus every manifest entry is on disk or in fetch.txt.
    Completeness,
    /// Structure, plus Payload-Oxum matches the payload on disk.
    Fast,
    /// Every file present and every md5/sha256 digest recomputed (parallel).
    Full,
}

impl From<ModeArg> for ValidationMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Structure => ValidationMode::Structure,
            ModeArg::Completeness => ValidationMode::Completeness,
            ModeArg::Fast => ValidationMode::Fast,
            ModeArg::Full => ValidationMode::Full,
        }
    }
}

/// Arguments of `validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    bag: BagArg,
    /// How thoroughly to check [default: full when every fetch.txt file is on disk, else
    /// completeness].
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
}

/// The bag directory for `path`: the path itself, or where its archive is extracted in the
/// cache (the same place `DatasetBag::open` uses, so the extraction is shared).
pub fn bag_directory(path: &Path, cache_dir: Option<&Path>) -> Result<PathBuf, CliError> {
    let root = cache_dir.map_or_else(cache::cache_root, Path::to_path_buf);
    Ok(archive::bag_dir(path, &root)?)
}

/// The mode used when `--mode` is not given.
pub fn default_mode(files: &BagItFiles) -> ValidationMode {
    if files.fetched_files_present() {
        ValidationMode::Full
    } else {
        ValidationMode::Completeness
    }
}

/// `validate --json`: exactly `{"valid","errors":[{"kind","path","detail"}]}`.
pub fn report_json(report: &ValidationReport) -> serde_json::Value {
    json!({
        "valid": report.valid,
        "errors": report.errors.iter().map(|e| json!({
            "kind": e.kind,
            "path": e.path,
            "detail": e.detail,
        })).collect::<Vec<_>>(),
    })
}

/// The human text of a report.
pub fn report_text(report: &ValidationReport, mode: ValidationMode, bag: &Path) -> String {
    if report.valid {
        return format!("{}: valid ({mode} validation)\n", bag.display());
    }
    let mut table = TextTable::new(["KIND", "PATH", "DETAIL"]);
    for e in &report.errors {
        table.push([e.kind.as_str(), e.path.as_str(), e.detail.as_str()]);
    }
    let n = report.errors.len();
    format!(
        "{}: INVALID ({mode} validation, {n} problem{})\n{}",
        bag.display(),
        if n == 1 { "" } else { "s" },
        table.render()
    )
}

impl Run for ValidateArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let dir = bag_directory(&self.bag.bag, ctx.cache_dir.as_deref())?;
        let files = BagItFiles::read(&dir)?;
        let mode = self.mode.map_or_else(|| default_mode(&files), Into::into);
        tracing::info!(bag = %dir.display(), %mode, "validating");
        let bar = ctx.progress.lazy_bytes("validating");
        let progress = |done: u64, total: u64| bar.update(done, total);
        let report = files.validate(mode, Some(&progress));
        bar.finish();
        let mut report = report?;
        if dir.join("data").join("schema.json").is_file() {
            match ctx.open(&dir) {
                Ok(bag) => report.extend(bag.index_findings()?),
                Err(e) => tracing::debug!(error = %e, "no index findings: the bag does not open"),
            }
        }
        if ctx.json {
            write_json(out, &report_json(&report))?;
        } else {
            out.write_all(report_text(&report, mode, &self.bag.bag).as_bytes())?;
        }
        Ok(if report.valid {
            Outcome::Success
        } else {
            Outcome::ValidationFailed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deriva_bag_core::bagit::ValidationIssue;

    fn issue(kind: &str, path: &str, detail: &str) -> ValidationIssue {
        ValidationIssue {
            kind: kind.into(),
            path: path.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn report_json_has_exactly_the_spec_keys() {
        let report = ValidationReport {
            valid: false,
            errors: vec![issue(
                "checksum-mismatch",
                "data/asset/1-I001/Image/retina_001.jpg",
                "md5 expected 00, found 11",
            )],
        };
        assert_eq!(
            serde_json::to_string(&report_json(&report)).unwrap(),
            r#"{"valid":false,"errors":[{"kind":"checksum-mismatch","path":"data/asset/1-I001/Image/retina_001.jpg","detail":"md5 expected 00, found 11"}]}"#
        );
    }

    #[test]
    fn report_text_lists_each_problem() {
        let report = ValidationReport {
            valid: false,
            errors: vec![
                issue("missing-file", "data/a.txt", "listed in manifest-md5.txt"),
                issue("oxum-mismatch", "bag-info.txt", "expected 3.1, found 4.1"),
            ],
        };
        assert_eq!(
            report_text(&report, ValidationMode::Fast, Path::new("bag")),
            "bag: INVALID (fast validation, 2 problems)\n\
             KIND           PATH          DETAIL\n\
             -------------  ------------  --------------------------\n\
             missing-file   data/a.txt    listed in manifest-md5.txt\n\
             oxum-mismatch  bag-info.txt  expected 3.1, found 4.1\n"
        );
        let ok = ValidationReport {
            valid: true,
            errors: vec![],
        };
        assert_eq!(
            report_text(&ok, ValidationMode::Full, Path::new("bag")),
            "bag: valid (full validation)\n"
        );
    }

    #[test]
    fn mode_arg_names_match_the_library_modes() {
        for mode in ModeArg::value_variants() {
            let name = mode.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(ValidationMode::from(*mode).name(), name);
        }
    }
}
