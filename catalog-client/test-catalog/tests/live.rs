//! The live `Dataset` (`ml.lookup_dataset`) against the downloaded `DatasetBag` of the same
//! version: identical members, children, feature values and restructured layout, on the demo
//! dataset and on a generated 2,000-image one; snapshot-bound reads; the sync bridge; the
//! content-addressed asset cache.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use deriva_bag_core::catalog::Dataset;
use deriva_bag_core::fixtures::{generate, FixtureSpec};
use deriva_bag_core::restructure::{restructure_assets, Manifest, RestructureOptions, Targets};
use deriva_bag_core::DatasetBag;
use deriva_bag_features::{DatasetLike, Rid, Selector, TableName};
use deriva_catalog_client::{DatasetSpec, DerivaML};
use deriva_test_catalog::TestCatalog;

fn image() -> TableName {
    TableName::new("demo", "Image")
}

/// `(RID, path under the output directory)` of every placement, sorted.
fn layout(manifest: &Manifest, out: &Path) -> Vec<(String, PathBuf)> {
    let mut placed: Vec<(String, PathBuf)> = manifest
        .placements()
        .map(|p| {
            let p = p.unwrap();
            (
                p.rid.to_string(),
                p.dst.strip_prefix(out).unwrap().to_path_buf(),
            )
        })
        .collect();
    placed.sort();
    placed
}

/// Downloads `rid@version` as a bag and looks it up live, both from `ml`.
async fn both(ml: &DerivaML, rid: &str, version: &str) -> (DatasetBag, Dataset) {
    let downloaded = ml
        .download_dataset_bag(DatasetSpec::new(rid, Some(version)))
        .await
        .unwrap();
    assert!(downloaded.materialized);
    let bag = DatasetBag::open(&downloaded.path).unwrap();
    let live = ml.lookup_dataset(rid, Some(version)).await.unwrap();
    (bag, live)
}

/// Every answer the equivalence promises, compared on a blocking thread (the trait is sync).
/// Returns the number of placements of the restructured tree.
async fn assert_equivalent(bag: DatasetBag, live: Dataset, work: PathBuf) -> usize {
    tokio::task::spawn_blocking(move || {
        assert_eq!(live.rid(), bag.rid());
        assert_eq!(live.version(), bag.version());
        assert_eq!(live.dataset_types(), bag.dataset_types());
        assert_eq!(live.description(), bag.description());
        for (recurse, limit) in [
            (true, None),
            (false, None),
            (true, Some(1)),
            (true, Some(3)),
        ] {
            assert_eq!(
                DatasetLike::list_dataset_members(&live, recurse, limit).unwrap(),
                DatasetLike::list_dataset_members(&bag, recurse, limit).unwrap(),
                "members, recurse {recurse}, limit {limit:?}"
            );
        }
        for recurse in [false, true] {
            let children = DatasetLike::list_dataset_children(&live, recurse).unwrap();
            assert_eq!(
                children,
                DatasetLike::list_dataset_children(&bag, recurse).unwrap(),
                "children, recurse {recurse}"
            );
            for child in children.iter().filter(|c| c.version.is_some()) {
                let (l, b) = (
                    DatasetLike::dataset(&live, &child.rid).unwrap(),
                    DatasetLike::dataset(&bag, &child.rid).unwrap(),
                );
                assert_eq!(
                    DatasetLike::list_dataset_parents(&l, true).unwrap(),
                    DatasetLike::list_dataset_parents(&b, true).unwrap()
                );
                assert_eq!(
                    DatasetLike::list_dataset_members(&l, true, None).unwrap(),
                    DatasetLike::list_dataset_members(&b, true, None).unwrap(),
                    "members of child {}",
                    child.rid
                );
            }
        }
        for table in ["Image", "Subject"] {
            let t = TableName::new("demo", table);
            assert_eq!(
                DatasetLike::reachable_rows(&live, &t).unwrap(),
                DatasetLike::reachable_rows(&bag, &t).unwrap(),
                "reachable {table}"
            );
        }
        assert_eq!(
            DatasetLike::find_features(&live, Some("Image")).unwrap(),
            DatasetLike::find_features(&bag, Some("Image")).unwrap()
        );
        for selector in [
            None,
            Some(Selector::newest()),
            Some(Selector::first()),
            Some(Selector::majority_vote(None)),
        ] {
            let l =
                DatasetLike::feature_values(&live, "Image", "Glaucoma", selector.as_ref()).unwrap();
            let b =
                DatasetLike::feature_values(&bag, "Image", "Glaucoma", selector.as_ref()).unwrap();
            assert!(!b.is_empty());
            assert_eq!(l, b, "feature_values with {selector:?}");
        }
        let options =
            RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest));
        let (out_live, out_bag) = (work.join("live"), work.join("bag"));
        let from_live = restructure_assets(&live, &out_live, &options).unwrap();
        let from_bag = restructure_assets(&bag, &out_bag, &options).unwrap();
        let missing: Vec<_> = from_live.missing_files().map(Result::unwrap).collect();
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(layout(&from_live, &out_live), layout(&from_bag, &out_bag));
        // The live tree links into the asset cache, never into the bag.
        for p in from_live.placements() {
            let p = p.unwrap();
            assert!(
                p.src.starts_with(live.asset_cache_dir()),
                "{}",
                p.src.display()
            );
        }
        from_live.placements().len()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_demo_dataset_answers_exactly_like_its_downloaded_bag() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let (bag, live) = both(&ml, "1-D000", "1.0.0").await;
    assert_eq!(live.snapshot(), None);
    let workflow = ml.find_workflows().await.unwrap()[0].rid.clone();
    let (b, l) = (bag.clone(), live.clone());
    tokio::task::spawn_blocking(move || {
        // Live: every execution of the workflow at the snapshot; the bag: those its export
        // reached. Selecting by workflow gives the same records either way.
        let executions = DatasetLike::list_workflow_executions(&l, workflow.as_str()).unwrap();
        let rids = |v: &[Rid]| v.iter().map(|r| r.to_string()).collect::<Vec<_>>();
        assert_eq!(rids(&executions), ["1-E000", "1-E001", "1-E002", "1-E003"]);
        let reached = DatasetLike::list_workflow_executions(&b, workflow.as_str()).unwrap();
        assert_eq!(rids(&reached), ["1-E001", "1-E002", "1-E003"]);
        let live_selector = Selector::select_by_workflow(workflow.as_str(), &l).unwrap();
        let bag_selector = Selector::select_by_workflow(workflow.as_str(), &b).unwrap();
        let selected = DatasetLike::feature_values(&l, "Image", "Glaucoma", Some(&live_selector));
        assert_eq!(
            selected.unwrap(),
            DatasetLike::feature_values(&b, "Image", "Glaucoma", Some(&bag_selector)).unwrap()
        );
        match DatasetLike::dataset(&l, &Rid::new("1-ZZZZ")) {
            Err(deriva_bag_features::Error::DatasetNotFound { rid }) => {
                assert_eq!(rid.as_str(), "1-ZZZZ")
            }
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap();
    let placed = assert_equivalent(bag, live, dir.path().to_path_buf()).await;
    assert_eq!(placed, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_dataset_of_two_thousand_images_answers_exactly_like_its_downloaded_bag() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = generate(&FixtureSpec::with_images(2000), &dir.path().join("fixture")).unwrap();
    let server = TestCatalog::start_from_bag(&fixture.path, Default::default(), 0).unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let (bag, live) = both(&ml, fixture.root_rid.as_str(), "1.0.0").await;
    let images = DatasetLike::reachable_rows(&bag, &image()).unwrap().len();
    assert_eq!(images, 2000);
    let placed = assert_equivalent(bag, live, dir.path().to_path_buf()).await;
    assert!(placed >= 2000, "{placed} placements");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_version_looked_up_live_shows_only_the_labels_of_its_snapshot() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let old_snap = release(&server, "1-D001", "1.1.0").await;
    let exe = commit_two_new_labels(&ml).await;
    release(&server, "1-D001", "1.2.0").await;

    let old = ml.lookup_dataset("1-D001", Some("1.1.0")).await.unwrap();
    let new = ml.lookup_dataset("1-D001", None).await.unwrap();
    assert_eq!(old.snapshot(), Some(old_snap.as_str()));
    assert_eq!(new.version(), Some("1.2.0"));
    let labels = |d: Dataset| {
        tokio::task::spawn_blocking(move || {
            DatasetLike::feature_values(&d, "Image", "Glaucoma", None)
                .unwrap()
                .iter()
                .map(|r| {
                    let t = |c: &str| r.text(c).unwrap_or_default().to_string();
                    (t("Execution"), t("Image"), t("Glaucoma"))
                })
                .collect::<BTreeSet<_>>()
        })
    };
    let l = |e: &str, i: &str, g: &str| (e.to_string(), i.to_string(), g.to_string());
    let seeded = seeded_d001_labels();
    assert_eq!(labels(old).await.unwrap(), seeded);
    let mut expected = seeded;
    expected.insert(l(&exe, "1-I001", "Moderate"));
    expected.insert(l(&exe, "1-I002", "Severe"));
    assert_eq!(labels(new).await.unwrap(), expected);
}

#[tokio::test(flavor = "current_thread")]
async fn dataset_methods_called_on_a_current_thread_runtime_block_without_panicking() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let live = ml.lookup_dataset("1-D001", Some("1.0.0")).await.unwrap();
    // Straight from the runtime's only thread: the reads run on the bridge runtime.
    let members = live.list_dataset_members(false, None).unwrap();
    let rids: Vec<String> = members[&image()]
        .iter()
        .map(|r| r.rid().unwrap().to_string())
        .collect();
    assert_eq!(rids, ["1-I001", "1-I002", "1-I005"]);
    // Dropped inside the runtime as well.
    drop(live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_fetched_once_into_a_content_addressed_cache_shared_by_lookups() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let cache = dir.path().join("assets");
    let first = ml
        .lookup_dataset("1-D001", Some("1.0.0"))
        .await
        .unwrap()
        .with_asset_cache(&cache, 2);
    server.clear_log();
    let cache_dir = cache.clone();
    let paths = tokio::task::spawn_blocking(move || {
        let rows = first.reachable_rows(&image()).unwrap();
        rows.iter()
            .map(|r| {
                let path = first.asset_path(&image(), r).unwrap();
                let md5 = r.text("MD5").unwrap();
                // <root>/<md5[..2]>/<md5>/<Filename>, md5-verified.
                assert_eq!(
                    path,
                    cache_dir
                        .join(&md5[..2])
                        .join(md5)
                        .join(r.text("Filename").unwrap())
                );
                use md5::Digest;
                let found = hex::encode(md5::Md5::digest(std::fs::read(&path).unwrap()));
                assert_eq!(found, md5);
                path
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(paths.len(), 3);
    let hatrac_gets = |server: &TestCatalog| {
        server
            .log()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/hatrac/"))
            .count()
    };
    assert_eq!(hatrac_gets(&server), 3);
    assert!(!cache
        .join(deriva_catalog_client::PARTIAL_DIR)
        .read_dir()
        .unwrap()
        .any(|_| true));

    // Another lookup (another run) with the same cache fetches nothing.
    let second = ml
        .lookup_dataset("1-D001", Some("1.0.0"))
        .await
        .unwrap()
        .with_asset_cache(&cache, 2);
    let again = tokio::task::spawn_blocking(move || {
        let rows = second.reachable_rows(&image()).unwrap();
        rows.iter()
            .map(|r| second.asset_path(&image(), r).unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(again, paths);
    assert_eq!(hatrac_gets(&server), 3);
}

/// Tables read without any filter (`/entity/S:T@sort(RID)…`), from the request log.
fn whole_table_reads(server: &TestCatalog) -> BTreeSet<String> {
    server
        .log()
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| {
            let (_, rest) = r
                .path
                .split_once("/entity/")
                .or_else(|| r.path.split_once("/attribute/"))?;
            let rest = rest.split(['@', '?']).next()?;
            (!rest.contains('/')).then(|| {
                percent_encoding::percent_decode_str(rest)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_and_the_live_dataset_read_no_table_whole_but_vocabularies() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let vocabularies: BTreeSet<String> = ml
        .model()
        .tables()
        .filter(|t| t.is_vocabulary())
        .map(|t| t.name.to_string())
        .collect();
    server.clear_log();
    let spec = DatasetSpec {
        materialize: false,
        ..DatasetSpec::new("1-D001", Some("1.0.0"))
    };
    ml.download_dataset_bag(spec).await.unwrap();
    let whole = whole_table_reads(&server);
    assert!(whole.is_subset(&vocabularies), "{whole:?}");
    assert!(whole.contains("demo:Glaucoma"), "{whole:?}");

    server.clear_log();
    let live = ml.lookup_dataset("1-D001", Some("1.0.0")).await.unwrap();
    tokio::task::spawn_blocking(move || {
        live.list_dataset_members(true, None).unwrap();
        live.list_dataset_children(true).unwrap();
        live.feature_values("Image", "Glaucoma", Some(&Selector::newest()))
            .unwrap();
        let restructured = restructure_assets(
            &live,
            &live.asset_cache_dir().with_file_name("ml_data"),
            &RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest)),
        )
        .unwrap();
        assert_eq!(restructured.len(), 3);
    })
    .await
    .unwrap();
    let whole = whole_table_reads(&server);
    assert!(whole.is_subset(&vocabularies), "{whole:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_asset_fetch_resumes_with_range_and_places_only_the_whole_file() {
    use md5::Digest;
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let cache = dir.path().join("assets");
    let live = ml
        .lookup_dataset("1-D001", Some("1.0.0"))
        .await
        .unwrap()
        .with_asset_cache(&cache, 1);
    let l = live.clone();
    let row = tokio::task::spawn_blocking(move || {
        let rows = l.reachable_rows(&image()).unwrap();
        rows.into_iter()
            .find(|r| r.text("RID") == Some("1-I001"))
            .unwrap()
    })
    .await
    .unwrap();
    let url_path = row.text("URL").unwrap().to_string();
    let md5 = row.text("MD5").unwrap().to_string();
    let url = format!("{}{url_path}", server.url());
    let whole = reqwest::Client::new()
        .get(&url)
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex::encode(md5::Md5::digest(&whole)), md5.as_str());
    // What a run killed halfway through this file left: half of it, in the partial file the
    // cache names after the URL and the cache path.
    let rel = format!("{}/{md5}/{}", &md5[..2], row.text("Filename").unwrap());
    let key = hex::encode(sha2::Sha256::digest(format!("{url}\n{rel}").as_bytes()));
    let partial = cache
        .join(deriva_catalog_client::PARTIAL_DIR)
        .join(format!("{}.part", &key[..32]));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    let half = whole.len() / 2;
    std::fs::write(&partial, &whole[..half]).unwrap();
    let final_path = cache.join(&rel);
    assert!(!final_path.exists());

    server.clear_log();
    let path = tokio::task::spawn_blocking(move || live.asset_path(&image(), &row).unwrap())
        .await
        .unwrap();
    assert_eq!(path, final_path);
    assert_eq!(std::fs::read(&path).unwrap(), whole.to_vec());
    assert!(!partial.exists());
    let ranges: Vec<Option<String>> = server
        .log()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == url_path)
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges, [Some(format!("bytes={half}-"))]);
}
