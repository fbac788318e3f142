//! The report as one self-contained HTML page (cargo feature `report-html`): no scripts, no
//! network, charts as inline SVG drawn by `plotters`' SVG backend, print-friendly CSS.
//!
//! Every number shown sits in an element with a stable `data-key` attribute
//! (`balance/<table>/<feature>/<split>/label/<label>`, `agreement/<table>/<feature>/fleiss_kappa`,
//! `leakage/members/count`, …; see [`Report::to_html`]), so tests and scripts can read the page.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{FeatureReport, Report};
use crate::{Error, Result};

/// Bar and legend colours (colour-blind safe, Okabe–Ito), then grey for "unlabeled".
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];
const UNLABELED: RGBColor = RGBColor(190, 190, 190);

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;\
max-width:1100px;margin:1.5rem auto;padding:0 1rem;line-height:1.4}\
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #ddd;margin-top:2rem}\
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.92rem}\
th,td{border:1px solid #ccc;padding:.2rem .55rem;text-align:right;vertical-align:top}\
th{background:#f2f2f2}.l{text-align:left}.muted{color:#777}.bad{color:#b00020;font-weight:600}\
.ok{color:#1b7f3b;font-weight:600}.charts{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}\
svg{max-width:100%;height:auto}section{break-inside:avoid;page-break-inside:avoid}\
code{font-size:.9em}@media print{body{max-width:none;margin:0}h2{break-after:avoid}}";

impl Report {
    /// The report as one self-contained HTML page: the splits, label balance per split as
    /// stacked bars with the counts beside them, an agreement heatmap per feature, the
    /// leakage tables with RIDs and the missing asset files.
    ///
    /// Numbers carry `data-key` attributes: `split/<split>/members/<table>`,
    /// `balance/<table>/<feature>/<split>/{label/<label>,unlabeled,targets,several,disagreeing,disagreement_share}`,
    /// `agreement/<table>/<feature>/{targets,ratings,raters,percent_agreement,fleiss_kappa}`,
    /// `agreement/<table>/<feature>/matrix/<label>/<label>`,
    /// `leakage/{members,parents,duplicate_content}/count`, `assets/{present,missing,without_file}`.
    /// Shares show three decimals; an undefined value shows `–`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::report::ReportOptions;
    /// use deriva_bag_core::{fixtures, DatasetBag};
    /// let tmp = tempfile::tempdir()?;
    /// let bag = DatasetBag::open(&fixtures::small_bag(tmp.path())?.path)?;
    /// let html = bag.report(&ReportOptions::default())?.to_html();
    /// assert!(html.starts_with("<!DOCTYPE html>"));
    /// assert!(html.contains(r#"data-key="agreement/demo:Image/Glaucoma/fleiss_kappa">-0.210<"#));
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "report-html")))]
    pub fn to_html(&self) -> String {
        let mut page = Page::default();
        page.head(self);
        page.splits(self);
        page.balance(self);
        page.agreement(self);
        page.leakage(self);
        page.assets(self);
        page.out.push_str("</body>\n</html>\n");
        page.out
    }

    /// Writes [`Report::to_html`] to `path` through a temporary file in the same directory,
    /// renamed into place, so an interrupted write leaves no half page.
    #[cfg_attr(docsrs, doc(cfg(feature = "report-html")))]
    pub fn write_html(&self, path: &Path) -> Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "report.html".to_string());
        let tmp = dir.join(format!(".{name}.partial"));
        std::fs::write(&tmp, self.to_html()).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A share or kappa as the page shows it: three decimals, `–` when undefined.
pub(crate) fn decimal(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"))
}

/// One finding of a leakage table.
struct LeakRow {
    table: String,
    key: String,
    id: String,
    cells: Vec<String>,
}

#[derive(Default)]
struct Page {
    out: String,
}

impl Page {
    /// A table cell holding a number (or text) under `key`.
    fn cell(&mut self, key: &str, text: &str) {
        let _ = write!(self.out, "<td data-key=\"{}\">{}</td>", esc(key), esc(text));
    }

    fn head(&mut self, r: &Report) {
        let d = &r.dataset;
        let title = format!("Dataset report: {}", d.rid);
        let _ = write!(
            self.out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
             <p>Version <b data-key=\"dataset/version\">{v}</b> · types <b>{ty}</b> · labels \
             chosen by the <b data-key=\"selector\">{s}</b> selector{desc}</p>\n",
            t = esc(&title),
            v = esc(d.version.as_deref().unwrap_or("–")),
            ty = esc(&if d.types.is_empty() {
                "–".to_string()
            } else {
                d.types.join(", ")
            }),
            s = esc(&r.selector),
            desc = d
                .description
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| format!(" · {}", esc(s)))
                .unwrap_or_default(),
        );
        let leaks =
            r.leakage.members.len() + r.leakage.parents.len() + r.leakage.duplicate_content.len();
        let summary = if leaks == 0 {
            "<span class=\"ok\">No leakage between splits found.</span>".to_string()
        } else {
            format!("<span class=\"bad\">{leaks} leakage finding(s) between splits.</span>")
        };
        let _ = writeln!(self.out, "<p>{summary}</p>");
    }

    fn splits(&mut self, r: &Report) {
        let tables: std::collections::BTreeSet<&String> =
            r.splits.iter().flat_map(|s| s.members.keys()).collect();
        self.out.push_str("<section><h2>Splits</h2>\n<table><tr><th class=\"l\">split</th><th class=\"l\">RID</th>");
        for t in &tables {
            let _ = write!(self.out, "<th>{}</th>", esc(t));
        }
        self.out.push_str("</tr>\n");
        for s in &r.splits {
            let _ = write!(
                self.out,
                "<tr><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td>",
                esc(&s.name),
                esc(s.rid.as_str())
            );
            for t in &tables {
                let n = s.members.get(*t).copied().unwrap_or(0);
                self.cell(&format!("split/{}/members/{t}", s.rid), &n.to_string());
            }
            self.out.push_str("</tr>\n");
        }
        self.out.push_str("</table>\n<p class=\"muted\">Members per table, nested datasets included.</p></section>\n");
    }

    fn balance(&mut self, r: &Report) {
        self.out
            .push_str("<section><h2>Label balance per split</h2>\n");
        if r.features.is_empty() {
            self.out
                .push_str("<p class=\"muted\">No feature with a label column.</p>\n");
        }
        for f in &r.features {
            let base = format!("balance/{}/{}", f.table, f.feature);
            let _ = write!(
                self.out,
                "<section><h3>{} · {} <span class=\"muted\">(column {})</span></h3>\n<div class=\"charts\">{}</div>\n<table><tr><th class=\"l\">split</th>",
                esc(&f.table),
                esc(&f.feature),
                esc(&f.label_column),
                balance_chart(f, r)
            );
            for label in &f.labels {
                let _ = write!(self.out, "<th>{}</th>", esc(label));
            }
            self.out.push_str("<th>unlabeled</th><th>targets</th><th>several annotations</th><th>disagreeing</th><th>share disagreeing</th></tr>\n");
            for (s, split) in f.splits.iter().zip(&r.splits) {
                let key = format!("{base}/{}", s.split);
                let _ = write!(self.out, "<tr><td class=\"l\">{}</td>", esc(&split.name));
                for label in &f.labels {
                    let n = s.labels.get(label).copied().unwrap_or(0);
                    self.cell(&format!("{key}/label/{label}"), &n.to_string());
                }
                self.cell(&format!("{key}/unlabeled"), &s.unlabeled.to_string());
                self.cell(&format!("{key}/targets"), &s.targets.to_string());
                self.cell(&format!("{key}/several"), &s.several.to_string());
                self.cell(&format!("{key}/disagreeing"), &s.disagreeing.to_string());
                self.cell(
                    &format!("{key}/disagreement_share"),
                    &decimal(s.disagreement_share),
                );
                self.out.push_str("</tr>\n");
            }
            self.out.push_str("</table></section>\n");
        }
        for s in &r.skipped_features {
            let _ = writeln!(
                self.out,
                "<p class=\"muted\">{} · {}: {}</p>",
                esc(&s.table),
                esc(&s.feature),
                esc(&s.reason)
            );
        }
        self.out.push_str("</section>\n");
    }

    fn agreement(&mut self, r: &Report) {
        self.out.push_str("<section><h2>Annotator agreement</h2>\n<p class=\"muted\">Executions are the raters; targets labelled by at least two executions count. Percent agreement is the mean share of agreeing rating pairs; the matrix counts ordered pairs of ratings of one target.</p>\n");
        for f in &r.features {
            let a = &f.agreement;
            let key = format!("agreement/{}/{}", f.table, f.feature);
            let _ = write!(
                self.out,
                "<section><h3>{} · {}</h3>\n<table><tr><th>targets rated twice or more</th><th>ratings</th><th>raters</th><th>percent agreement</th><th>Fleiss' κ</th></tr><tr>",
                esc(&f.table),
                esc(&f.feature)
            );
            self.cell(&format!("{key}/targets"), &a.targets.to_string());
            self.cell(&format!("{key}/ratings"), &a.ratings.to_string());
            self.cell(&format!("{key}/raters"), &a.raters.to_string());
            self.cell(
                &format!("{key}/percent_agreement"),
                &decimal(a.percent_agreement),
            );
            self.cell(&format!("{key}/fleiss_kappa"), &decimal(a.fleiss_kappa));
            self.out.push_str("</tr></table>\n");
            if a.labels.is_empty() {
                self.out
                    .push_str("<p class=\"muted\">No target has two ratings.</p></section>\n");
                continue;
            }
            let _ = write!(
                self.out,
                "<div class=\"charts\">{}</div>\n<table><tr><th></th>",
                heatmap(f)
            );
            for l in &a.labels {
                let _ = write!(self.out, "<th>{}</th>", esc(l));
            }
            self.out.push_str("</tr>\n");
            for (i, row) in a.matrix.iter().enumerate() {
                let _ = write!(self.out, "<tr><th class=\"l\">{}</th>", esc(&a.labels[i]));
                for (j, n) in row.iter().enumerate() {
                    self.cell(
                        &format!("{key}/matrix/{}/{}", a.labels[i], a.labels[j]),
                        &n.to_string(),
                    );
                }
                self.out.push_str("</tr>\n");
            }
            self.out.push_str("</table></section>\n");
        }
        self.out.push_str("</section>\n");
    }

    /// One leakage section: a count heading, then per finding its table, its RID or digest
    /// (keyed `leakage/<section>/<key>`) and further cells (already HTML).
    fn leak_table(&mut self, title: &str, section: &str, headers: &[&str], rows: Vec<LeakRow>) {
        let n = rows.len();
        let class = if n == 0 { "ok" } else { "bad" };
        let _ = writeln!(
            self.out,
            "<h3>{} <span class=\"{class}\" data-key=\"leakage/{section}/count\">{n}</span></h3>",
            esc(title)
        );
        if rows.is_empty() {
            return;
        }
        self.out.push_str("<table><tr>");
        for h in headers {
            let _ = write!(self.out, "<th class=\"l\">{}</th>", esc(h));
        }
        self.out.push_str("</tr>\n");
        for row in rows {
            let _ = write!(
                self.out,
                "<tr><td class=\"l\">{}</td><td class=\"l\" data-key=\"leakage/{section}/{}\"><code>{}</code></td>",
                esc(&row.table),
                esc(&row.key),
                esc(&row.id)
            );
            for cell in row.cells {
                let _ = write!(self.out, "<td class=\"l\">{cell}</td>");
            }
            self.out.push_str("</tr>\n");
        }
        self.out.push_str("</table>\n");
    }

    fn leakage(&mut self, r: &Report) {
        let name = |rid: &deriva_bag_features::Rid| {
            r.splits
                .iter()
                .find(|s| &s.rid == rid)
                .map_or_else(|| rid.to_string(), |s| format!("{} ({rid})", s.name))
        };
        let l = &r.leakage;
        self.out
            .push_str("<section><h2>Leakage between splits</h2>\n");
        let members = l.members.iter().map(|m| {
            let splits: Vec<String> = m.splits.iter().map(name).collect();
            LeakRow {
                table: m.table.clone(),
                key: format!("{}/{}", m.table, m.rid),
                id: m.rid.to_string(),
                cells: vec![esc(&splits.join(", "))],
            }
        });
        self.leak_table(
            "Members of several splits",
            "members",
            &["table", "RID", "splits"],
            members.collect(),
        );
        let parents = l.parents.iter().map(|p| LeakRow {
            table: p.table.clone(),
            key: format!("{}/{}", p.table, p.rid),
            id: p.rid.to_string(),
            cells: vec![esc(&p.via), members_text(&p.splits, &name)],
        });
        self.leak_table(
            "Parents (e.g. subjects) with members in different splits",
            "parents",
            &["parent", "RID", "via", "members per split"],
            parents.collect(),
        );
        let duplicates = l.duplicate_content.iter().map(|d| LeakRow {
            table: d.table.clone(),
            key: d.digest.clone(),
            id: d.digest.clone(),
            cells: vec![members_text(&d.splits, &name)],
        });
        self.leak_table(
            "Identical files under different RIDs in different splits",
            "duplicate_content",
            &["table", "content", "RIDs per split"],
            duplicates.collect(),
        );
        self.out.push_str("</section>\n");
    }

    fn assets(&mut self, r: &Report) {
        let a = &r.assets;
        self.out.push_str("<section><h2>Asset files</h2>\n<table><tr><th class=\"l\">asset rows</th><th>present</th><th>missing</th><th>naming no file</th></tr><tr>");
        let rows: Vec<String> = a.rows.iter().map(|(t, n)| format!("{t}: {n}")).collect();
        let _ = write!(self.out, "<td class=\"l\">{}</td>", esc(&rows.join(", ")));
        self.cell("assets/present", &a.present.to_string());
        self.cell("assets/missing", &a.missing.len().to_string());
        self.cell("assets/without_file", &a.without_file.len().to_string());
        self.out.push_str("</tr></table>\n");
        for (title, list) in [
            ("Missing files", &a.missing),
            ("Rows naming no file", &a.without_file),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(self.out, "<h3>{title}</h3>\n<table><tr><th class=\"l\">table</th><th class=\"l\">RID</th><th class=\"l\">path</th></tr>");
            for row in list {
                let _ = writeln!(
                    self.out,
                    "<tr><td class=\"l\">{}</td><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td></tr>",
                    esc(&row.table),
                    esc(row.rid.as_str()),
                    esc(&row.path)
                );
            }
            self.out.push_str("</table>\n");
        }
        self.out.push_str("</section>\n");
    }
}

fn members_text(
    splits: &[super::leakage::SplitMembers],
    name: &dyn Fn(&deriva_bag_features::Rid) -> String,
) -> String {
    splits
        .iter()
        .map(|s| {
            let rids: Vec<&str> = s.members.iter().map(|r| r.as_str()).collect();
            format!(
                "{}: <code>{}</code>",
                esc(&name(&s.split)),
                esc(&rids.join(", "))
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// The SVG, or a note when plotters could not draw it (a String backend does not fail in
/// practice; the page is still written without the chart).
fn svg_or_note(drawn: std::result::Result<String, String>, what: &str) -> String {
    drawn.unwrap_or_else(|e| {
        tracing::warn!(chart = what, error = %e, "report chart not drawn");
        format!(
            "<p class=\"muted\">{} chart not drawn: {}</p>",
            esc(what),
            esc(&e)
        )
    })
}

/// Label balance per split as stacked bars: one bar per split, one colour per label, grey
/// for unlabeled targets.
fn balance_chart(f: &FeatureReport, r: &Report) -> String {
    svg_or_note(draw_balance(f, r), "balance")
}

/// One label's segments of the stacked bars.
struct Stack {
    label: String,
    color: RGBColor,
    /// Per split, the segment's (low, high) count.
    spans: Vec<(u64, u64)>,
}

fn draw_balance(f: &FeatureReport, r: &Report) -> std::result::Result<String, String> {
    let names: Vec<String> = r.splits.iter().map(|s| s.name.clone()).collect();
    let n = f.splits.len().max(1);
    let mut series: Vec<Stack> = Vec::new();
    let mut base = vec![0u64; f.splits.len()];
    let stacks = f
        .labels
        .iter()
        .map(|l| {
            (
                l.clone(),
                f.splits
                    .iter()
                    .map(|s| s.labels.get(l).copied().unwrap_or(0))
                    .collect::<Vec<_>>(),
            )
        })
        .chain(std::iter::once((
            "unlabeled".to_string(),
            f.splits.iter().map(|s| s.unlabeled).collect(),
        )));
    for (k, (label, counts)) in stacks.enumerate() {
        let color = if label == "unlabeled" && k == f.labels.len() {
            UNLABELED
        } else {
            PALETTE[k % PALETTE.len()]
        };
        let spans = counts
            .iter()
            .zip(base.iter_mut())
            .map(|(&c, b)| {
                let low = *b;
                *b += c as u64;
                (low, *b)
            })
            .collect();
        series.push(Stack {
            label,
            color,
            spans,
        });
    }
    // Integer counts on the y axis, with headroom for the legend.
    let top = (base.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.25).ceil() as u64;
    let width = (220 + 110 * n as u32).min(900);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{} per split", f.feature), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0u64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_labels(top.min(10) as usize + 1)
            .light_line_style(WHITE)
            .y_desc("targets")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        for Stack {
            label,
            color,
            spans,
        } in series
        {
            chart
                .draw_series(
                    spans
                        .iter()
                        .enumerate()
                        .filter(|(_, (lo, hi))| hi > lo)
                        .map(|(i, &(lo, hi))| {
                            let x = i as f64;
                            Rectangle::new([(x - 0.32, lo), (x + 0.32, hi)], color.filled())
                        }),
                )
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The agreement matrix as a heatmap: rows and columns are labels, darker is more pairs,
/// the count written in each cell.
fn heatmap(f: &FeatureReport) -> String {
    svg_or_note(draw_heatmap(f), "agreement heatmap")
}

fn draw_heatmap(f: &FeatureReport) -> std::result::Result<String, String> {
    let a = &f.agreement;
    let k = a.labels.len();
    let max = a.matrix.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let side = (140 + 70 * k as u32).min(760);
    // Row i is drawn at y = k − 1 − i, so the first label is the top row, as in the table.
    let label_at = |v: &f64, flip: bool| {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 || i as usize >= k {
            return String::new();
        }
        let i = if flip { k - 1 - i as usize } else { i as usize };
        a.labels.get(i).cloned().unwrap_or_default()
    };
    let x_label = |v: &f64| label_at(v, false);
    let y_label = |v: &f64| label_at(v, true);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (side + 40, side)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let range = -0.5f64..(k as f64 - 0.5);
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{}: rating pairs", f.feature), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(90)
            .build_cartesian_2d(range.clone(), range)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(k + 1)
            .y_labels(k + 1)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        let cells: Vec<(usize, usize, u64)> = a
            .matrix
            .iter()
            .enumerate()
            .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, &n)| (i, j, n)))
            .collect();
        chart
            .draw_series(cells.iter().map(|&(i, j, n)| {
                let t = n as f64 / max;
                let shade = |full: u8| (255.0 - t * (255.0 - full as f64)).round() as u8;
                let color = RGBColor(shade(8), shade(69), shade(148));
                let (x, y) = (j as f64, (k - 1 - i) as f64);
                Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
        let centered = Pos::new(HPos::Center, VPos::Center);
        chart
            .draw_series(cells.iter().map(|&(i, j, n)| {
                let color = if n as f64 / max > 0.55 { WHITE } else { BLACK };
                Text::new(
                    n.to_string(),
                    (j as f64, (k - 1 - i) as f64),
                    ("sans-serif", 14).into_font().color(&color).pos(centered),
                )
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_is_escaped_and_undefined_shares_show_a_dash() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(decimal(None), "–");
        assert_eq!(decimal(Some(-17.0 / 81.0)), "-0.210");
        assert_eq!(decimal(Some(1.0)), "1.000");
    }
}
