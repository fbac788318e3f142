//! `deriva-bag report BAG [--dataset RID] [--selector S] [--html OUT.html]`: label balance per
//! split, annotator agreement, split leakage and missing assets; `--html` also writes the
//! self-contained page with charts.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use deriva_bag_core::report::{Report, ReportOptions};

use super::{Context, Run};
use crate::args::{BagArg, DatasetArg, SelectorSpec};
use crate::exit::{CliError, Outcome};
use crate::output::{write_json, TextTable};

/// Arguments of `report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    bag: BagArg,
    #[command(flatten)]
    dataset: DatasetArg,
    /// The label counted per target: newest, first, majority or majority:COLUMN.
    #[arg(long, value_name = "SELECTOR", default_value = "newest")]
    selector: SelectorSpec,
    /// Also write the report as one self-contained HTML page (inline SVG charts) to OUT.
    #[arg(long, value_name = "OUT.html")]
    html: Option<PathBuf>,
}

impl Run for ReportArgs {
    fn run(&self, ctx: &Context, out: &mut dyn Write) -> Result<Outcome, CliError> {
        let dataset = ctx.open_dataset(&self.bag.bag, &self.dataset)?;
        let options = ReportOptions {
            selector: self.selector.to_selector(),
            ..ReportOptions::default()
        };
        let report = dataset.report(&options)?;
        if let Some(path) = &self.html {
            report.write_html(path)?;
        }
        if ctx.json {
            write_json(out, &report)?;
        } else {
            out.write_all(report_text(&report).as_bytes())?;
            if let Some(path) = &self.html {
                writeln!(out, "\nwrote {}", path.display())?;
            }
        }
        Ok(Outcome::Success)
    }
}

fn decimal(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

/// The human summary: splits, a balance table and the agreement per feature, leakage and
/// asset counts with the RIDs at fault.
fn report_text(r: &Report) -> String {
    let mut text = format!(
        "dataset {} version {}, labels by {}\n\nsplits:\n",
        r.dataset.rid,
        r.dataset.version.as_deref().unwrap_or("-"),
        r.selector
    );
    for s in &r.splits {
        let members: Vec<String> = s.members.iter().map(|(t, n)| format!("{t} {n}")).collect();
        text.push_str(&format!("  {} ({}): {}\n", s.name, s.rid, members.join(", ")));
    }
    for f in &r.features {
        text.push_str(&format!(
            "\n{} {} (column {}):\n",
            f.table, f.feature, f.label_column
        ));
        let headers = ["split".to_string()]
            .into_iter()
            .chain(f.labels.iter().cloned())
            .chain(["unlabeled", "targets", "several", "disagreeing"].map(String::from));
        let mut table = TextTable::new(headers);
        for (b, s) in f.splits.iter().zip(&r.splits) {
            let cells = [s.name.clone()]
                .into_iter()
                .chain(f.labels.iter().map(|l| b.labels.get(l).copied().unwrap_or(0).to_string()))
                .chain([b.unlabeled, b.targets, b.several, b.disagreeing].map(|n| n.to_string()));
            table.push(cells);
        }
        text.push_str(&table.render());
        let a = &f.agreement;
        text.push_str(&format!(
            "agreement over {} targets rated twice or more ({} ratings, {} raters): percent agreement {}, Fleiss' kappa {}\n",
            a.targets,
            a.ratings,
            a.raters,
            decimal(a.percent_agreement),
            decimal(a.fleiss_kappa)
        ));
    }
    let l = &r.leakage;
    text.push_str(&format!(
        "\nleakage: {} member(s) in several splits, {} parent(s) with members in different splits, {} file content(s) under several RIDs\n",
        l.members.len(),
        l.parents.len(),
        l.duplicate_content.len()
    ));
    for m in &l.members {
        let splits: Vec<&str> = m.splits.iter().map(|s| s.as_str()).collect();
        text.push_str(&format!("  member {} {}: {}\n", m.table, m.rid, splits.join(", ")));
    }
    let per_split = |splits: &[deriva_bag_core::report::leakage::SplitMembers]| {
        splits
            .iter()
            .map(|s| {
                let rids: Vec<&str> = s.members.iter().map(|r| r.as_str()).collect();
                format!("{} [{}]", s.split, rids.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for p in &l.parents {
        text.push_str(&format!(
            "  parent {} {} via {}: {}\n",
            p.table,
            p.rid,
            p.via,
            per_split(&p.splits)
        ));
    }
    for d in &l.duplicate_content {
        text.push_str(&format!(
            "  content {} {}: {}\n",
            d.table,
            d.digest,
            per_split(&d.splits)
        ));
    }
    let a = &r.assets;
    text.push_str(&format!(
        "\nassets: {} present, {} missing, {} naming no file\n",
        a.present,
        a.missing.len(),
        a.without_file.len()
    ));
    for m in &a.missing {
        text.push_str(&format!("  missing {} {} {}\n", m.table, m.rid, m.path));
    }
    for m in &a.without_file {
        text.push_str(&format!("  no file {} {}\n", m.table, m.rid));
    }
    text
}
