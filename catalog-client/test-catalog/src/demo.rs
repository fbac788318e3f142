//! The end-to-end demo: the whole offline chapter in one run, against the local test catalog.
//!
//! [`run_demo`] generates the small fixture bag (`FixtureSpec::default()`), serves it from a
//! [`TestCatalog`], downloads dataset `1-D000` with `materialize = true` and opens it as a
//! [`DatasetBag`](deriva_bag_core::DatasetBag) (both through the facade,
//! `deriva_bag_core::catalog`), prints its info, members and newest Glaucoma label counts,
//! writes the dataset report page (label balance, agreement, leakage), restructures it into
//! class folders, does the same with the live dataset (`ml.lookup_dataset`, read at the
//! version's snapshot, assets fetched on demand into the client's asset cache) and checks that
//! both manifests place the same assets at the same relative paths, builds Glaucoma records
//! offline for the unlabeled
//! images (validated against the bag's vocabulary, saved to JSON and reloaded), commits them
//! through a new Execution and reads them back from the catalog.
//! Every number it prints comes from the APIs; any disagreement is an error.
//!
//! Layout under the work directory (only these entries are removed on a re-run):
//!
//! | path | what |
//! |---|---|
//! | `source/Dataset_1-D000` | the generated bag the catalog is seeded from |
//! | `deriva-ml/` | the client's working dir (execution registry, downloaded bag cache) |
//! | `bag-index/` | the `DatasetBag` SQLite index cache |
//! | `ml_data/` | the restructured class folders (symlinks) |
//! | `ml_data_live/` | the same, restructured from the live dataset (symlinks into `deriva-ml/cache/assets`) |
//! | `pending_records.json` | the records built offline |
//! | `summary.json` | the [`DemoSummary`] |
//! | `report.html` | the dataset report (`DatasetBag::report`, one self-contained page) |
//!
//! ```no_run
//! let summary = deriva_test_catalog::demo::run_demo(
//!     std::path::Path::new("target/demo"),
//!     &mut std::io::stdout(),
//! )?;
//! assert_eq!(summary.committed, summary.unlabeled.len());
//! # Ok::<(), deriva_test_catalog::demo::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use deriva_bag_core::fixtures::{generate, FixtureSpec};
use deriva_bag_core::report::ReportOptions;
use deriva_bag_core::restructure::{
    restructure_assets, Manifest, RestructureOptions, Targets, LEDGER_NAME,
};
use deriva_bag_core::OpenOptions;
use deriva_bag_features::{FeatureRecord, Selector, TermCache};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use deriva_bag_core::catalog::{
    ConnectOptions, Credential, DatasetSpec, DerivaML, DerivaMlExt, ExecutionConfiguration,
    UploadReport,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::{TestCatalog, TestCatalogOptions};

/// Why the demo stopped: a client, bag or I/O failure, or a step whose result was not the
/// expected one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog client (or a bag it read or wrote) failed.
    #[error(transparent)]
    Client(#[from] deriva_bag_core::catalog::Error),
    /// A step of the end-to-end demo failed or found a result it did not expect.
    #[error("demo step {step:?}: {reason}")]
    Demo {
        /// The step (e.g. `restructure`, `verify`).
        step: String,
        /// What went wrong.
        reason: String,
    },
}

/// Result alias for the demo.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Client(deriva_bag_core::catalog::Error::Io {
            path: path.into(),
            source,
        })
    }
}

impl From<deriva_bag_core::Error> for Error {
    fn from(e: deriva_bag_core::Error) -> Self {
        Error::Client(e.into())
    }
}

impl From<deriva_bag_features::Error> for Error {
    fn from(e: deriva_bag_features::Error) -> Self {
        Error::Client(e.into())
    }
}

/// Characters kept verbatim in an ERMrest URL literal (deriva-py quotes with `safe=''`).
const LITERAL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The dataset the demo downloads (the fixture's root dataset).
pub const DEMO_DATASET: &str = "1-D000";
/// The element table the demo labels.
pub const DEMO_TABLE: &str = "Image";
/// The feature the demo reads and writes.
pub const DEMO_FEATURE: &str = "Glaucoma";
/// A term that is not in the Glaucoma vocabulary; the demo shows it is refused offline.
pub const NOT_A_TERM: &str = "Catastrophic";

/// What one demo run found and did; also written to `<work>/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoSummary {
    /// The generated source bag (`<work>/source/Dataset_1-D000`).
    pub source_bag: PathBuf,
    /// The test catalog's URL (it is stopped when the demo returns).
    pub catalog_url: String,
    /// The downloaded, materialized bag.
    pub downloaded_bag: PathBuf,
    /// Dataset RID.
    pub dataset: String,
    /// Resolved dataset version.
    pub version: String,
    /// Dataset types of the root dataset.
    pub dataset_types: Vec<String>,
    /// Rows per non-empty table of the downloaded bag (`schema:table` → rows).
    pub table_rows: BTreeMap<String, u64>,
    /// Direct members of the root dataset per table (non-recursive; empty tables left out).
    pub members: BTreeMap<String, usize>,
    /// Members of the root dataset and its nested datasets per table (recursive; a member
    /// of two nested datasets counts twice, as the listing repeats it).
    pub members_recursive: BTreeMap<String, usize>,
    /// Distinct member RIDs per table of the recursive listing.
    pub members_recursive_distinct: BTreeMap<String, usize>,
    /// Newest Glaucoma label per image, counted by grade.
    pub label_counts: BTreeMap<String, usize>,
    /// The dataset report page (`<work>/report.html`).
    pub report: PathBuf,
    /// The restructured tree (`<work>/ml_data`).
    pub ml_data: PathBuf,
    /// Files per class folder, relative to `ml_data` (e.g. `training/Severe` → 2), counted on disk.
    pub class_folders: BTreeMap<String, usize>,
    /// Placements in the restructure manifest.
    pub placements: usize,
    /// The tree restructured from the live dataset (`<work>/ml_data_live`).
    pub ml_data_live: PathBuf,
    /// Whether the live dataset's manifest places the same assets at the same relative
    /// paths as the bag's (the demo fails otherwise).
    pub live_manifest_equal: bool,
    /// The images without any Glaucoma label, by RID.
    pub unlabeled: Vec<String>,
    /// The grade assigned to the unlabeled images (the most frequent newest grade).
    pub predicted_grade: String,
    /// The offline validation error for the term [`NOT_A_TERM`].
    pub rejected_term_error: String,
    /// `<work>/pending_records.json`.
    pub records_file: PathBuf,
    /// RID of the Execution created for the commit.
    pub execution: String,
    /// Records staged by `add_features`.
    pub staged: usize,
    /// Feature rows inserted by the commit.
    pub committed: usize,
    /// Feature rows inserted by a second commit (0: the commit is idempotent).
    pub recommitted: usize,
    /// `(Image, Glaucoma)` pairs read back from the catalog for the new Execution.
    pub verified: Vec<(String, String)>,
    /// The Execution's status in the catalog after the commit.
    pub execution_status: String,
}

/// Runs the demo in `work` (created if needed), writing the human-readable narration to
/// `out`. Starts its own tokio runtime: call it from synchronous code (use
/// [`run_demo_async`] inside a runtime).
pub fn run_demo(work: &Path, out: &mut dyn Write) -> Result<DemoSummary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io(work, e))?;
    runtime.block_on(run_demo_async(work, out))
}

fn fail(step: &str, reason: impl std::fmt::Display) -> Error {
    Error::Demo {
        step: step.to_string(),
        reason: reason.to_string(),
    }
}

/// Writes one narration line. A failed write (e.g. a closed pipe) ends the demo with an I/O
/// error rather than silently continuing without output.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err(|e| Error::io(Path::new("<demo output>"), e))?
    };
}

/// `(asset RID, path relative to the output directory)` of every placement, sorted: what two
/// restructured trees must agree on.
fn layout(manifest: &Manifest, out: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut placed: Vec<(String, PathBuf)> = manifest
        .placements()
        .map(|p| {
            p.map(|p| {
                let rel = p.dst.strip_prefix(out).unwrap_or(&p.dst);
                (p.rid.to_string(), rel.to_path_buf())
            })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| fail("restructure manifest", e))?;
    placed.sort();
    Ok(placed)
}

/// Removes what an earlier run of the demo left in `work` (and nothing else).
fn clean(work: &Path) -> Result<()> {
    for dir in [
        "source",
        "deriva-ml",
        "bag-index",
        "ml_data",
        "ml_data_live",
    ] {
        let p = work.join(dir);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    for file in ["pending_records.json", "summary.json", "report.html"] {
        let p = work.join(file);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// [`run_demo`] for callers already inside a tokio runtime.
pub async fn run_demo_async(work: &Path, out: &mut dyn Write) -> Result<DemoSummary> {
    std::fs::create_dir_all(work).map_err(|e| Error::io(work, e))?;
    clean(work)?;
    let work = std::path::absolute(work).map_err(|e| Error::io(work, e))?;

    // 1. A bag to serve.
    say!(out, "== 1. Generate the demo bag");
    let spec = FixtureSpec::default();
    let generated = generate(&spec, &work.join("source"))?;
    say!(
        out,
        "   {} ({} images, seed {}, {} asset files)",
        generated.path.display(),
        spec.images,
        spec.seed,
        generated.assets.len()
    );

    // 2. The catalog.
    say!(out, "== 2. Start the test catalog seeded from it");
    let server = TestCatalog::start_from_bag(&generated.path, TestCatalogOptions::default(), 0)
        .map_err(|e| fail("start test catalog", e))?;
    let catalog_url = server.url();
    say!(out, "   {catalog_url}/ermrest/catalog/1");
    let ml = DerivaML::connect_with(
        &catalog_url,
        "1",
        ConnectOptions {
            credential: Some(Credential::BearerToken(server.token().to_string())),
            working_dir: Some(work.join("deriva-ml")),
            ..Default::default()
        },
    )
    .await?;
    match ml.whoami().await? {
        Some(session) => say!(out, "   connected as {}", session.id),
        None => return Err(fail("connect", "the test catalog did not accept the token")),
    }

    // 3. Download.
    say!(
        out,
        "== 3. Download dataset {DEMO_DATASET} (materialize = true)"
    );
    // Through the facade: download (or reuse) the bag and open it as a DatasetBag.
    let bag = ml
        .download_dataset_bag_opened_with(
            DatasetSpec::new(DEMO_DATASET, None),
            &OpenOptions {
                cache_dir: Some(work.join("bag-index")),
                ..OpenOptions::default()
            },
        )
        .await?;
    if !bag.is_materialized() {
        return Err(fail(
            "download",
            format!("{} is not fully materialized", bag.path().display()),
        ));
    }
    say!(
        out,
        "   version {} -> {}",
        bag.version().unwrap_or("-"),
        bag.path().display()
    );

    // 4. Offline: inspect.
    say!(out, "== 4. Inspect it offline as a DatasetBag");
    let missing = bag.missing_assets()?;
    say!(
        out,
        "   dataset {} version {} types {:?} description {:?}",
        bag.rid(),
        bag.version().unwrap_or("-"),
        bag.dataset_types(),
        bag.description().unwrap_or("")
    );
    say!(
        out,
        "   materialized: {} ({} missing assets)",
        bag.is_materialized(),
        missing.len()
    );
    if !missing.is_empty() {
        return Err(fail(
            "open",
            format!("{} assets missing after materialize", missing.len()),
        ));
    }
    let mut table_rows = BTreeMap::new();
    for table in bag.list_tables() {
        let n = bag.row_count(&table)?;
        if n > 0 {
            table_rows.insert(table.to_string(), n);
        }
    }
    say!(out, "   tables with rows:");
    for (t, n) in &table_rows {
        say!(out, "     {t:<40} {n:>4}");
    }
    // Counts per table as the API returns the lists (empty tables left out), plus distinct
    // RIDs: a recursive listing repeats a member of two nested datasets, as deriva-ml does.
    let count_members =
        |recurse: bool| -> Result<(BTreeMap<String, usize>, BTreeMap<String, usize>)> {
            let mut all = BTreeMap::new();
            let mut distinct = BTreeMap::new();
            for (table, rows) in bag.list_dataset_members(recurse, None)? {
                if rows.is_empty() {
                    continue;
                }
                let rids: BTreeSet<_> = rows.iter().filter_map(|r| r.rid()).collect();
                all.insert(table.table.clone(), rows.len());
                distinct.insert(table.table.clone(), rids.len());
            }
            Ok((all, distinct))
        };
    let (members, _) = count_members(false)?;
    let (members_recursive, members_recursive_distinct) = count_members(true)?;
    say!(out, "   members (direct):    {}", fmt_counts(&members));
    say!(
        out,
        "   members (recursive): {}   distinct: {}",
        fmt_counts(&members_recursive),
        fmt_counts(&members_recursive_distinct)
    );
    for child in bag.list_dataset_children(false)? {
        say!(
            out,
            "   child dataset {} types {:?}",
            child.rid,
            child.types
        );
    }
    let newest = bag.feature_values(DEMO_TABLE, DEMO_FEATURE, Some(&Selector::Newest))?;
    let mut label_counts: BTreeMap<String, usize> = BTreeMap::new();
    for rec in &newest {
        let grade = rec.text(DEMO_FEATURE).unwrap_or("<null>").to_string();
        *label_counts.entry(grade).or_default() += 1;
    }
    say!(
        out,
        "   {DEMO_FEATURE} labels (select_newest, {} images): {}",
        newest.len(),
        fmt_counts(&label_counts)
    );
    // Look before training: label balance per split, agreement, leakage, as a page.
    let report = bag.report(&ReportOptions::default())?;
    let report_html = work.join("report.html");
    report.write_html(&report_html)?;
    say!(
        out,
        "   report: {} ({} split(s), {} image(s) in several splits)",
        report_html.display(),
        report.splits.len(),
        report.leakage.members.len()
    );

    // 5. Restructure.
    let ml_data = work.join("ml_data");
    say!(
        out,
        "== 5. Restructure into {} (symlinks)",
        ml_data.display()
    );
    let options =
        RestructureOptions::new().targets(Targets::new().with(DEMO_FEATURE, Selector::Newest));
    let manifest = bag
        .restructure_assets(&ml_data, &options)
        .map_err(|e| fail("restructure", e))?;
    let class_folders = count_files(&ml_data, &ml_data)?;
    let on_disk: usize = class_folders.values().sum();
    for (dir, n) in &class_folders {
        say!(out, "   {dir:<24} {n:>3}");
    }
    say!(
        out,
        "   {} placements in the manifest, {} files on disk",
        manifest.len(),
        on_disk
    );
    let overlap: Vec<_> = manifest
        .assets_in_several_splits()
        .collect::<Result<_, _>>()
        .map_err(|e| fail("restructure manifest", e))?;
    if !overlap.is_empty() {
        let rids: Vec<&str> = overlap.iter().map(|r| r.as_str()).collect();
        say!(
            out,
            "   warning: {} asset(s) in more than one split ({}): a model tested on testing/ has seen them in training",
            overlap.len(),
            rids.join(", ")
        );
    }
    if on_disk != manifest.len() {
        return Err(fail(
            "restructure",
            format!(
                "the manifest lists {} placements but {} files are on disk",
                manifest.len(),
                on_disk
            ),
        ));
    }

    // 5b. The same from the live dataset: no bag, reads at the version's snapshot.
    let ml_data_live = work.join("ml_data_live");
    say!(
        out,
        "== 5b. Restructure the live dataset into {} (ml.lookup_dataset, assets on demand)",
        ml_data_live.display()
    );
    let live = ml
        .lookup_dataset(DEMO_DATASET, bag.version())
        .await
        .map_err(|e| fail("lookup_dataset", e))?;
    let live_cache = live.asset_cache_dir().to_path_buf();
    let live_out = ml_data_live.clone();
    // The DatasetLike methods block: off the async worker threads.
    let live_options = options.clone();
    let live_manifest =
        tokio::task::spawn_blocking(move || restructure_assets(&live, &live_out, &live_options))
            .await
            .map_err(|e| fail("restructure live", e))?
            .map_err(|e| fail("restructure live", e))?;
    let live_manifest_equal =
        layout(&live_manifest, &ml_data_live)? == layout(&manifest, &ml_data)?;
    say!(
        out,
        "   {} placements from {} (assets cached in {})",
        live_manifest.len(),
        DEMO_DATASET,
        live_cache.display()
    );
    if !live_manifest_equal {
        return Err(fail(
            "restructure live",
            "the live dataset's manifest differs from the bag's",
        ));
    }
    say!(out, "   the live dataset's manifest equals the bag's");

    // 6. Offline records.
    say!(
        out,
        "== 6. Build {DEMO_FEATURE} records offline for the unlabeled images"
    );
    let feature = bag.lookup_feature(DEMO_TABLE, DEMO_FEATURE)?;
    let labeled: BTreeSet<String> = bag
        .feature_values(DEMO_TABLE, DEMO_FEATURE, None)?
        .iter()
        .filter_map(|r| r.target().map(str::to_string))
        .collect();
    let unlabeled: Vec<String> = bag
        .get_table(DEMO_TABLE)?
        .iter()
        .filter_map(|row| row.rid().map(|r| r.as_str().to_string()))
        .filter(|rid| !labeled.contains(rid))
        .collect();
    // A baseline "model": the most frequent newest grade (ties: the smaller name, since the
    // map iterates in name order and only a strictly greater count replaces the pick).
    let predicted_grade = label_counts
        .iter()
        .fold(None::<(&String, usize)>, |best, (g, &n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((g, n)),
        })
        .map(|(g, _)| g.clone())
        .ok_or_else(|| fail("records", "the bag has no labels to predict from"))?;
    if unlabeled.is_empty() {
        return Err(fail("records", "every image is already labeled"));
    }
    say!(
        out,
        "   unlabeled: {} -> predicted grade {predicted_grade} (the most frequent newest grade)",
        unlabeled.join(", ")
    );
    // Validation against the bag's vocabulary table, read once.
    let terms = TermCache::new(&bag);
    let rejected_term_error = match feature
        .record_builder()
        .set(feature.target_column.clone(), unlabeled[0].clone())
        .set(DEMO_FEATURE, NOT_A_TERM)
        .build(&terms)
    {
        Ok(_) => {
            return Err(fail(
                "records",
                format!("the unknown term {NOT_A_TERM:?} was accepted"),
            ))
        }
        Err(e) => e.to_string(),
    };
    say!(
        out,
        "   offline validation refuses {NOT_A_TERM:?}: {rejected_term_error}"
    );
    let records = unlabeled
        .iter()
        .map(|rid| {
            feature
                .record_builder()
                .set(feature.target_column.clone(), rid.clone())
                .set(DEMO_FEATURE, predicted_grade.clone())
                .build(&terms)
        })
        .collect::<std::result::Result<Vec<FeatureRecord>, _>>()?;
    let records_file = work.join("pending_records.json");
    let json = serde_json::to_vec_pretty(&records)
        .map_err(|e| fail("records", format!("cannot serialize records: {e}")))?;
    std::fs::write(&records_file, json).map_err(|e| Error::io(&records_file, e))?;
    say!(
        out,
        "   {} record(s) saved to {}",
        records.len(),
        records_file.display()
    );

    // 7. Online again: reload, commit through a new Execution.
    say!(
        out,
        "== 7. Reload the records and commit them through a new Execution"
    );
    let bytes = std::fs::read(&records_file).map_err(|e| Error::io(&records_file, e))?;
    let reloaded: Vec<FeatureRecord> = serde_json::from_slice(&bytes)
        .map_err(|e| fail("reload", format!("{}: {e}", records_file.display())))?;
    if reloaded != records {
        return Err(fail(
            "reload",
            "the reloaded records differ from the saved ones",
        ));
    }
    let workflow = ml
        .find_workflows()
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| fail("execution", "the catalog has no Workflow"))?;
    let exe = ml
        .create_execution(ExecutionConfiguration {
            description: format!(
                "deriva-bag demo: baseline {DEMO_FEATURE} grades for unlabeled images"
            ),
            workflow: workflow.clone(),
            // The records were computed from the demo dataset's current version.
            datasets: vec![DatasetSpec::new(DEMO_DATASET, None)],
        })
        .await?;
    say!(
        out,
        "   execution {} (workflow {} {})",
        exe.rid(),
        workflow.rid,
        workflow.name.as_deref().unwrap_or("")
    );
    let staged = exe.add_features(&reloaded)?;
    let report: UploadReport = exe.upload_execution_outputs().await?;
    let again = exe.upload_execution_outputs().await?;
    say!(
        out,
        "   staged {staged}, committed {} ({} request(s)); a second commit inserts {}",
        report.features_inserted,
        report.feature_requests,
        again.features_inserted
    );

    // 8. Verify in the catalog.
    say!(out, "== 8. Verify in the catalog");
    let feature_table = format!(
        "{}:{}",
        feature.feature_table.schema, feature.feature_table.table
    );
    let rows = get_entities(
        &server,
        &format!(
            "{}/Execution={}",
            enc_table(&feature_table),
            enc(exe.rid().as_str())
        ),
    )
    .await?;
    let mut verified: Vec<(String, String)> = Vec::new();
    for row in &rows {
        let text = |c: &str| row.get(c).and_then(Json::as_str).unwrap_or("").to_string();
        if text("Feature_Name") != DEMO_FEATURE {
            return Err(fail(
                "verify",
                format!(
                    "row {} has Feature_Name {:?}",
                    text("RID"),
                    text("Feature_Name")
                ),
            ));
        }
        verified.push((text(&feature.target_column), text(DEMO_FEATURE)));
    }
    verified.sort();
    let mut expected: Vec<(String, String)> = reloaded
        .iter()
        .map(|r| {
            (
                r.target().unwrap_or("").to_string(),
                r.text(DEMO_FEATURE).unwrap_or("").to_string(),
            )
        })
        .collect();
    expected.sort();
    if verified != expected {
        return Err(fail(
            "verify",
            format!(
                "catalog rows for execution {} are {verified:?}, expected {expected:?}",
                exe.rid()
            ),
        ));
    }
    for (image, grade) in &verified {
        say!(
            out,
            "   {feature_table} row: Image {image} {DEMO_FEATURE} {grade} Execution {}",
            exe.rid()
        );
    }
    let exe_rows = get_entities(
        &server,
        &format!(
            "{}/RID={}",
            enc_table("deriva-ml:Execution"),
            enc(exe.rid().as_str())
        ),
    )
    .await?;
    let execution_status = exe_rows
        .first()
        .and_then(|r| r.get("Status"))
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    say!(
        out,
        "   execution {} status in the catalog: {execution_status}",
        exe.rid()
    );
    if execution_status != "Uploaded" {
        return Err(fail(
            "verify",
            format!(
                "execution {} has status {execution_status:?}, expected \"Uploaded\"",
                exe.rid()
            ),
        ));
    }
    // Provenance: the execution names the dataset version its records came from.
    let links = get_entities(
        &server,
        &format!(
            "{}/Execution={}",
            enc_table("deriva-ml:Dataset_Execution"),
            enc(exe.rid().as_str())
        ),
    )
    .await?;
    let inputs: Vec<String> = links
        .iter()
        .map(|r| {
            let text = |c: &str| r.get(c).and_then(Json::as_str).unwrap_or("").to_string();
            format!(
                "{} (version row {})",
                text("Dataset"),
                text("Dataset_Version")
            )
        })
        .collect();
    if links.len() != 1 || links[0].get("Dataset").and_then(Json::as_str) != Some(DEMO_DATASET) {
        return Err(fail(
            "verify",
            format!(
                "execution {} has input links {inputs:?}, expected one to {DEMO_DATASET}",
                exe.rid()
            ),
        ));
    }
    say!(out, "   execution {} read {}", exe.rid(), inputs.join(", "));
    if report.features_inserted != reloaded.len() || again.features_inserted != 0 {
        return Err(fail(
            "verify",
            format!(
                "commit inserted {} then {}; expected {} then 0",
                report.features_inserted,
                again.features_inserted,
                reloaded.len()
            ),
        ));
    }

    let summary = DemoSummary {
        source_bag: generated.path.clone(),
        catalog_url,
        downloaded_bag: bag.path().to_path_buf(),
        dataset: bag.rid().as_str().to_string(),
        version: bag.version().unwrap_or("-").to_string(),
        dataset_types: bag.dataset_types().to_vec(),
        table_rows,
        members,
        members_recursive,
        members_recursive_distinct,
        label_counts,
        report: report_html,
        ml_data,
        class_folders,
        placements: manifest.len(),
        ml_data_live,
        live_manifest_equal,
        unlabeled,
        predicted_grade,
        rejected_term_error,
        records_file,
        execution: exe.rid().as_str().to_string(),
        staged,
        committed: report.features_inserted,
        recommitted: again.features_inserted,
        verified,
        execution_status,
    };
    let summary_file = work.join("summary.json");
    let json = serde_json::to_vec_pretty(&summary)
        .map_err(|e| fail("summary", format!("cannot serialize the summary: {e}")))?;
    std::fs::write(&summary_file, json).map_err(|e| Error::io(&summary_file, e))?;
    say!(
        out,
        "OK: downloaded {} v{} ({} images), placed {} files, committed {} {DEMO_FEATURE} record(s) as execution {} and found them in the catalog; summary in {}",
        summary.dataset,
        summary.version,
        summary.table_rows.get("demo:Image").copied().unwrap_or(0),
        summary.placements,
        summary.committed,
        summary.execution,
        summary_file.display()
    );
    Ok(summary)
}

fn fmt_counts(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Files (and symlinks) per directory under `dir`, keyed by the path relative to `root`;
/// the restructure ledger at the root is not a placement.
fn count_files(root: &Path, dir: &Path) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if kind.is_dir() {
                pending.push(path);
            } else if !(d == root && entry.file_name() == LEDGER_NAME) {
                let rel = d
                    .strip_prefix(root)
                    .unwrap_or(&d)
                    .to_string_lossy()
                    .into_owned();
                *counts.entry(rel).or_default() += 1;
            }
        }
    }
    Ok(counts)
}

fn enc(text: &str) -> String {
    utf8_percent_encode(text, LITERAL).to_string()
}

/// `schema:table` with both names percent-encoded.
fn enc_table(qualified: &str) -> String {
    match qualified.split_once(':') {
        Some((s, t)) => format!("{}:{}", enc(s), enc(t)),
        None => enc(qualified),
    }
}

/// `GET /ermrest/catalog/1/entity/<path>` over HTTP, as any client would read the catalog.
async fn get_entities(server: &TestCatalog, path: &str) -> Result<Vec<Map<String, Json>>> {
    let url = format!("{}/ermrest/catalog/1/entity/{path}", server.url());
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(server.token())
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| fail("verify", format!("GET {url}: {e}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| fail("verify", format!("GET {url}: {e}")))?;
    if !status.is_success() {
        return Err(fail("verify", format!("GET {url}: {status}: {body}")));
    }
    serde_json::from_str(&body).map_err(|e| fail("verify", format!("GET {url}: {e}: {body}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_files_counts_files_and_symlinks_per_class_folder_but_not_the_ledger() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("training/Severe")).unwrap();
        std::fs::create_dir_all(root.join("testing/unknown")).unwrap();
        std::fs::create_dir_all(root.join("testing/empty")).unwrap();
        std::fs::write(root.join("training/Severe/a.jpg"), b"a").unwrap();
        std::fs::write(root.join("training/Severe/b.jpg"), b"b").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            root.join("training/Severe/a.jpg"),
            root.join("testing/unknown/a.jpg"),
        )
        .unwrap();
        #[cfg(not(unix))]
        std::fs::write(root.join("testing/unknown/a.jpg"), b"a").unwrap();
        std::fs::write(root.join(LEDGER_NAME), b"{}").unwrap();
        let counts = count_files(root, root).unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([
                ("testing/unknown".to_string(), 1),
                ("training/Severe".to_string(), 2),
            ])
        );
    }

    #[test]
    fn clean_removes_only_what_the_demo_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path();
        for dir in [
            "source/x",
            "deriva-ml/cache",
            "bag-index",
            "ml_data/training",
            "mine",
        ] {
            std::fs::create_dir_all(work.join(dir)).unwrap();
        }
        for file in [
            "pending_records.json",
            "summary.json",
            "report.html",
            "notes.txt",
        ] {
            std::fs::write(work.join(file), b"x").unwrap();
        }
        clean(work).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(work)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["mine".to_string(), "notes.txt".to_string()]);
    }

    #[test]
    fn entity_paths_percent_encode_schema_and_table_names() {
        assert_eq!(
            enc_table("deriva-ml:Execution"),
            "deriva-ml:Execution".to_string()
        );
        assert_eq!(enc_table("my schema:Tab/le"), "my%20schema:Tab%2Fle");
        assert_eq!(
            fmt_counts(&BTreeMap::from([
                ("Mild".to_string(), 1),
                ("Severe".to_string(), 2)
            ])),
            "Mild=1 Severe=2"
        );
    }
}
