//! The report page in a real browser: `deriva-bag report --json --html` on a bag with planted
//! leakage, the page rendered by headless chromium to PNG (not blank) and its DOM read back
//! (every number shown equals the JSON report).
//!
//! Without a `chromium` on PATH the browser tests print SKIPPED and pass, except under
//! `CI=true`, where `.ci/run` installs Debian's chromium and its absence fails. The CLI tests
//! at the end need no browser.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use deriva_bag_core::fixtures::{self, FixtureSpec};
use serde_json::Value;

/// A bag with both planted leaks, its report as JSON and as a page.
struct Page {
    dir: tempfile::TempDir,
    json: Value,
    html: PathBuf,
}

fn page() -> Page {
    let dir = tempfile::tempdir().unwrap();
    let spec = FixtureSpec {
        leak_subject: true,
        duplicate_image: true,
        ..FixtureSpec::default()
    };
    let bag = fixtures::generate(&spec, &dir.path().join("bags")).unwrap();
    let html = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_deriva-bag"))
        .arg("report")
        .arg(&bag.path)
        .arg("--json")
        .arg("--html")
        .arg(&html)
        .env("DERIVA_BAG_CACHE", dir.path().join("cache"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout).unwrap();
    Page { dir, json, html }
}

/// The chromium binary, or `None` (SKIPPED) when absent outside CI.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "chromium is not installed; .ci/run installs Debian's chromium"
        );
        println!("SKIPPED: chromium is not installed");
    }
    found
}

/// Runs headless chromium on the page with `args`, killed after 90 s.
fn run_chromium(chromium: &Path, page: &Page, args: &[String]) -> Output {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            page.dir.path().join("profile").display()
        ))
        .args(args)
        .arg(format!("file://{}", page.html.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(90) {
            child.kill().unwrap();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_report_page_renders_to_a_screenshot_with_charts_and_tables() {
    let Some(chromium) = chromium() else { return };
    let page = page();
    let shot = page.dir.path().join("shot.png");
    run_chromium(
        &chromium,
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1800".into(),
        ],
    );
    let image = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (1280, 1800));
    let pixels = image.pixels().count();
    let ink = image
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c < 235))
        .count();
    let colours: HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    // Text, tables and two coloured charts: a blank or error page has neither this much ink
    // nor this many colours.
    assert!(
        ink * 100 > pixels * 3,
        "only {ink} of {pixels} pixels are not white"
    );
    assert!(
        colours.len() > 50,
        "only {} distinct colours",
        colours.len()
    );
    // The bar colours of the label balance chart are on screen (Okabe–Ito blue and orange).
    assert!(colours.contains(&[0, 114, 178]) && colours.contains(&[230, 159, 0]));
}

/// `data-key` → text of every element that carries one, from chromium's serialized DOM.
fn keyed_values(dom: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = dom;
    while let Some(i) = rest.find("data-key=\"") {
        rest = &rest[i + 10..];
        let Some(end) = rest.find('"') else { break };
        let key = unescape(&rest[..end]);
        rest = &rest[end..];
        let Some(open) = rest.find('>') else { break };
        rest = &rest[open + 1..];
        // The text up to the element's end, without inner tags (e.g. <code>).
        let close = ["</td>", "</span>", "</b>"]
            .iter()
            .filter_map(|end| rest.find(end))
            .min();
        let Some(close) = close else { break };
        let mut text = String::new();
        let mut in_tag = false;
        for c in rest[..close].chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        out.insert(key, unescape(&text));
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn shown_decimal(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "–".to_string(), |v| format!("{v:.3}"))
}

#[test]
fn every_number_on_the_page_equals_the_json_report() {
    let Some(chromium) = chromium() else { return };
    let page = page();
    let out = run_chromium(&chromium, &page, &["--dump-dom".to_string()]);
    let dom = String::from_utf8(out.stdout).unwrap();
    assert!(
        dom.matches("<svg").count() >= 2,
        "the balance chart and the heatmap"
    );
    let shown = keyed_values(&dom);
    let r = &page.json;

    // What the JSON says, keyed the way the page keys it.
    let mut expected = BTreeMap::new();
    let splits = r["splits"].as_array().unwrap();
    // The page shows a column per member table, 0 where a split has none.
    let tables: std::collections::BTreeSet<&String> = splits
        .iter()
        .flat_map(|s| s["members"].as_object().unwrap().keys())
        .collect();
    for split in splits {
        for table in &tables {
            let n = split["members"]
                .get(table.as_str())
                .map_or("0".to_string(), Value::to_string);
            expected.insert(
                format!("split/{}/members/{table}", split["rid"].as_str().unwrap()),
                n,
            );
        }
    }
    for f in r["features"].as_array().unwrap() {
        let (table, name) = (f["table"].as_str().unwrap(), f["feature"].as_str().unwrap());
        for s in f["splits"].as_array().unwrap() {
            let key = format!("balance/{table}/{name}/{}", s["split"].as_str().unwrap());
            for label in f["labels"].as_array().unwrap() {
                let label = label.as_str().unwrap();
                let n = s["labels"]
                    .get(label)
                    .map_or("0".to_string(), Value::to_string);
                expected.insert(format!("{key}/label/{label}"), n);
            }
            for field in ["unlabeled", "targets", "several", "disagreeing"] {
                expected.insert(format!("{key}/{field}"), s[field].to_string());
            }
            expected.insert(
                format!("{key}/disagreement_share"),
                shown_decimal(&s["disagreement_share"]),
            );
        }
        let a = &f["agreement"];
        let key = format!("agreement/{table}/{name}");
        for field in ["targets", "ratings", "raters"] {
            expected.insert(format!("{key}/{field}"), a[field].to_string());
        }
        for field in ["percent_agreement", "fleiss_kappa"] {
            expected.insert(format!("{key}/{field}"), shown_decimal(&a[field]));
        }
        let labels = a["labels"].as_array().unwrap();
        for (i, row) in a["matrix"].as_array().unwrap().iter().enumerate() {
            for (j, n) in row.as_array().unwrap().iter().enumerate() {
                let (x, y) = (labels[i].as_str().unwrap(), labels[j].as_str().unwrap());
                expected.insert(format!("{key}/matrix/{x}/{y}"), n.to_string());
            }
        }
    }
    let l = &r["leakage"];
    for section in ["members", "parents", "duplicate_content"] {
        let list = l[section].as_array().unwrap();
        expected.insert(format!("leakage/{section}/count"), list.len().to_string());
        for item in list {
            let (key, text) = match section {
                "duplicate_content" => {
                    let digest = item["digest"].as_str().unwrap();
                    (format!("leakage/{section}/{digest}"), digest.to_string())
                }
                _ => {
                    let rid = item["rid"].as_str().unwrap();
                    (
                        format!(
                            "leakage/{section}/{}/{rid}",
                            item["table"].as_str().unwrap()
                        ),
                        rid.to_string(),
                    )
                }
            };
            expected.insert(key, text);
        }
    }
    let a = &r["assets"];
    expected.insert("assets/present".into(), a["present"].to_string());
    expected.insert(
        "assets/missing".into(),
        a["missing"].as_array().unwrap().len().to_string(),
    );
    expected.insert(
        "assets/without_file".into(),
        a["without_file"].as_array().unwrap().len().to_string(),
    );
    expected.insert("selector".into(), "newest".into());
    expected.insert("dataset/version".into(), "1.0.0".into());

    assert_eq!(shown, expected);
    // The planted leaks are on the page by RID.
    assert_eq!(shown["leakage/parents/demo:Subject/1-S001"], "1-S001");
    assert_eq!(shown["leakage/parents/count"], "1");
    assert_eq!(
        shown["agreement/demo:Image/Glaucoma/fleiss_kappa"],
        "-0.210"
    );
}

/// The CLI (no browser needed): `--json` is the library's report, and the page is written.
#[test]
fn deriva_bag_report_json_is_the_library_report_and_the_page_is_written() {
    let page = page();
    let bag = deriva_bag_core::DatasetBag::open_with(
        page.dir.path().join("bags/Dataset_1-D000"),
        &deriva_bag_core::OpenOptions {
            cache_dir: Some(page.dir.path().join("cache")),
            ..Default::default()
        },
    )
    .unwrap();
    let report = bag
        .report(&deriva_bag_core::report::ReportOptions::default())
        .unwrap();
    assert_eq!(page.json, serde_json::to_value(&report).unwrap());
    assert_eq!(
        std::fs::read_to_string(&page.html).unwrap(),
        report.to_html()
    );
}

#[test]
fn deriva_bag_report_prints_the_leaks_with_their_rids() {
    let page = page();
    let out = Command::new(env!("CARGO_BIN_EXE_deriva-bag"))
        .args(["report", "--selector", "majority"])
        .arg(page.dir.path().join("bags/Dataset_1-D000"))
        .env("DERIVA_BAG_CACHE", page.dir.path().join("cache"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("dataset 1-D000 version 1.0.0, labels by majority\n"),
        "{text}"
    );
    assert!(
        text.contains("  member demo:Image 1-I005: 1-D001, 1-D002\n"),
        "{text}"
    );
    assert!(
        text.contains("  parent demo:Subject 1-S001 via demo:Image.Subject: 1-D001 [1-I001, 1-I002], 1-D002 [1-I004]\n"),
        "{text}"
    );
    assert!(text.contains("Fleiss' kappa -0.210\n"), "{text}");
}
