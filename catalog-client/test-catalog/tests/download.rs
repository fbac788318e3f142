//! Downloading, materializing and estimating dataset bags from the local test catalog.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::*;
use deriva_bag_core::bagit::ValidationMode;
use deriva_bag_core::DatasetBag;
use deriva_bag_features::Rid;
use deriva_catalog_client::{fully_materialized, DatasetSpec, Error};
use deriva_test_catalog::{Fault, FaultMode, TestCatalog};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_dataset_bag_writes_a_valid_materialized_format_b_bag() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let bag = ml
        .download_dataset_bag(DatasetSpec::new("1-D000", Some("1.0.0")))
        .await
        .unwrap();
    assert_eq!(bag.version, "1.0.0");
    assert_eq!(bag.snapshot, None);
    assert!(bag.materialized);
    assert!(!bag.from_cache);
    assert!(bag.path.ends_with("Dataset_1-D000"));
    let fetch = std::fs::read_to_string(bag.path.join("fetch.txt")).unwrap();
    assert_eq!(fetch.lines().count(), 6);
    assert!(
        fetch.contains("data/asset/1-I005/Image/retina%25005.jpg"),
        "{fetch}"
    );
    assert!(fetch.contains(&format!("{}/hatrac/Image/", server.url())));
    assert!(bag
        .path
        .join("data/asset/1-I002/Image/retina 002.jpg")
        .is_file());
    assert!(bag
        .path
        .join("data/asset/1-I003/Image/rétine_003.png")
        .is_file());
    assert!(bag.path.join("manifest-sha256.txt").is_file());
    assert!(bag
        .path
        .join("data/demo/Execution_Image_Glaucoma.csv")
        .is_file());

    let opened = DatasetBag::open(&bag.path).unwrap();
    let report = opened.validate(ValidationMode::Full).unwrap();
    assert!(report.valid, "{:?}", report.errors);
    assert_eq!(opened.rid().as_str(), "1-D000");
    let images = opened.get_table("Image").unwrap();
    let rids: Vec<String> = images
        .iter()
        .map(|r| r.rid().unwrap().to_string())
        .collect();
    assert_eq!(
        rids,
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
    );
    assert_eq!(
        opened.get_table("Execution_Image_Glaucoma").unwrap().len(),
        9
    );
    assert!(opened.is_materialized());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fully_materialized_cached_bag_is_reused_without_network() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let first = ml
        .download_dataset_bag(DatasetSpec::new("1-D001", Some("1.0.0")))
        .await
        .unwrap();
    server.clear_log();
    let again = ml
        .download_dataset_bag(DatasetSpec::new("1-D001", Some("1.0.0")))
        .await
        .unwrap();
    assert!(again.from_cache);
    assert_eq!(again.path, first.path);
    assert_eq!(server.log(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_members_reach_their_images_through_the_subject_foreign_key() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let bag = ml
        .download_dataset_bag(DatasetSpec {
            materialize: false,
            ..DatasetSpec::new("1-D003", None)
        })
        .await
        .unwrap();
    assert!(!bag.materialized);
    let opened = DatasetBag::open(&bag.path).unwrap();
    let images: Vec<String> = opened
        .get_table("Image")
        .unwrap()
        .iter()
        .map(|r| r.rid().unwrap().to_string())
        .collect();
    assert_eq!(images, ["1-I005", "1-I006"]);
    let est = ml
        .estimate_bag_size(&Rid::new("1-D003"), None)
        .await
        .unwrap();
    assert_eq!(est.tables["demo:Image"].row_count, 2);
    assert_eq!(est.tables["demo:Image"].asset_bytes, 1904 + 2005);
    assert!(est.tables["demo:Image"].is_asset);
    assert_eq!(est.total_asset_bytes, 1904 + 2005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_retries_5xx_and_resumes_only_missing_files() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let bag = ml
        .download_dataset_bag(DatasetSpec {
            materialize: false,
            ..DatasetSpec::new("1-D000", Some("1.0.0"))
        })
        .await
        .unwrap();
    let mut flaky = Fault::new("GET", "/hatrac/Image/", FaultMode::FailBeforeCommit503);
    flaky.times = 2;
    server.add_fault(flaky);
    let report = ml.materialize(&bag.path, 8).await.unwrap();
    assert_eq!(report.fetched, 6);
    assert!(fully_materialized(&bag.path).unwrap());
    std::fs::remove_file(bag.path.join("data/asset/1-I004/Image/retina_004.png")).unwrap();
    let report = ml.materialize(&bag.path, 1).await.unwrap();
    assert_eq!((report.fetched, report.already_present), (1, 5));
    assert_eq!(report.bytes, 1803);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_names_the_url_and_the_file_and_leaves_no_partial_file() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let bag = ml
        .download_dataset_bag(DatasetSpec {
            materialize: false,
            ..DatasetSpec::new("1-D002", Some("1.0.0"))
        })
        .await
        .unwrap();
    let manifest = bag.path.join("manifest-md5.txt");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let line = text
        .lines()
        .find(|l| l.ends_with("retina_004.png"))
        .unwrap()
        .to_string();
    let forged = format!("{}{}", "0".repeat(32), &line[32..]);
    std::fs::write(&manifest, text.replace(&line, &forged)).unwrap();
    let err = ml.materialize(&bag.path, 2).await.unwrap_err();
    match &err {
        Error::ChecksumMismatch { url, path, .. } => {
            assert!(
                url.starts_with(&format!("{}/hatrac/Image/", server.url())),
                "{url}"
            );
            assert_eq!(path, "data/asset/1-I004/Image/retina_004.png");
        }
        other => panic!("expected a checksum mismatch, got {other}"),
    }
    let folder = bag.path.join("data/asset/1-I004/Image");
    let left: Vec<_> = std::fs::read_dir(&folder)
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert_eq!(left, vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_entries_that_escape_the_bag_are_refused() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let bag = dir.path().join("evil");
    std::fs::create_dir_all(bag.join("data")).unwrap();
    std::fs::write(
        bag.join("bagit.txt"),
        "BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n",
    )
    .unwrap();
    std::fs::write(bag.join("bag-info.txt"), "Payload-Oxum: 1.1\n").unwrap();
    std::fs::write(bag.join("manifest-md5.txt"), "").unwrap();
    std::fs::write(
        bag.join("fetch.txt"),
        format!("{}/hatrac/x\t1\tdata/../../escaped.txt\n", server.url()),
    )
    .unwrap();
    let err = ml.materialize(&bag, 1).await.unwrap_err();
    assert!(
        err.to_string().contains("escapes") || err.to_string().contains("unsafe"),
        "{err}"
    );
    assert!(!dir.path().join("escaped.txt").exists());
    assert!(server
        .log()
        .iter()
        .all(|r| !r.path.starts_with("/hatrac/x")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixture_bag_round_trips_through_the_test_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = deriva_bag_core::fixtures::small_bag(&dir.path().join("fixture")).unwrap();
    let server = TestCatalog::start_from_bag(&fixture.path, Default::default(), 0).unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let bag = ml
        .download_dataset_bag(DatasetSpec::new("1-D000", Some("1.0.0")))
        .await
        .unwrap();
    assert!(bag.materialized);
    let original = DatasetBag::open(&fixture.path).unwrap();
    let copy = DatasetBag::open(&bag.path).unwrap();
    assert!(copy.validate(ValidationMode::Full).unwrap().valid);
    for table in [
        "demo:Image",
        "demo:Subject",
        "demo:Dataset_Image",
        "demo:Dataset_Subject",
        "demo:Execution_Image_Glaucoma",
        "demo:Glaucoma",
        "deriva-ml:Dataset",
        "deriva-ml:Dataset_Dataset",
    ] {
        let a: Vec<_> = original
            .get_table(table)
            .unwrap()
            .iter()
            .map(|r| r.to_json())
            .collect();
        let b: Vec<_> = copy
            .get_table(table)
            .unwrap()
            .iter()
            .map(|r| r.to_json())
            .collect();
        assert_eq!(a, b, "table {table} differs after the round trip");
    }
    for asset in &fixture.assets {
        let on_disk = copy.asset_path("Image", &asset.rid).unwrap().unwrap();
        use md5::Digest;
        let md5 = hex::encode(md5::Md5::digest(std::fs::read(&on_disk).unwrap()));
        assert_eq!(md5, asset.md5, "{}", asset.bag_path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_shared_with_a_non_member_image_does_not_pull_that_image_in() {
    // D002's members: I003, I004, I005 and Subject S002. I005's Subject S003 is exported
    // (Image → Subject), but S003's other Image I006 is not (no Image → Subject → Image path).
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let est = ml
        .estimate_bag_size(&Rid::new("1-D002"), None)
        .await
        .unwrap();
    assert_eq!(est.tables["demo:Image"].row_count, 3);
    assert_eq!(est.tables["demo:Image"].asset_bytes, 1702 + 1803 + 1904);
    assert_eq!(est.tables["demo:Subject"].row_count, 2);
    let root = ml
        .estimate_bag_size(&Rid::new("1-D000"), None)
        .await
        .unwrap();
    assert_eq!(root.tables["demo:Image"].row_count, 6);
    assert_eq!(root.tables["demo:Subject"].row_count, 3);
    assert_eq!(root.tables["demo:Execution_Image_Glaucoma"].row_count, 9);
}

/// Starts a catalog seeded from the fixture bag plus one vocabulary table (a copy of
/// `demo:Glaucoma`) named `schema:table` with one row: a catalog whose names are hostile.
async fn catalog_with_a_table_named(
    dir: &std::path::Path,
    schema: &str,
    table: &str,
) -> TestCatalog {
    let fixture = deriva_bag_core::fixtures::small_bag(&dir.join("fixture")).unwrap();
    let schema_path = fixture.path.join("data/schema.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&schema_path).unwrap()).unwrap();
    let mut vocab = doc["schemas"]["demo"]["tables"]["Glaucoma"].clone();
    vocab["schema_name"] = serde_json::json!(schema);
    vocab["table_name"] = serde_json::json!(table);
    vocab["foreign_keys"] = serde_json::json!([]);
    for (i, key) in vocab["keys"].as_array_mut().unwrap().iter_mut().enumerate() {
        key["names"] = serde_json::json!([[schema, format!("evil_key{i}")]]);
    }
    let target = doc["schemas"]
        .as_object_mut()
        .unwrap()
        .entry(schema)
        .or_insert_with(|| serde_json::json!({"schema_name": schema, "tables": {}}));
    target["tables"][table] = vocab;
    std::fs::write(&schema_path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let server = TestCatalog::start_from_bag(&fixture.path, Default::default(), 0).unwrap();
    let now = "2026-05-28T16:54:02+00:00";
    server
        .insert_rows(
            &format!("{schema}:{table}"),
            &[
                serde_json::json!({"RID": "9-EV01", "ID": "evil:1", "URI": "/id/evil/1",
                                 "Name": "Evil", "Description": "planted", "RCT": now, "RMT": now}),
            ],
        )
        .unwrap();
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_refuses_catalog_names_that_would_leave_the_bag() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    // The working dir is <case>/work and the CSVs are written under
    // work/cache/bags/.tmp-…/Dataset_1-D000/data/<schema>/<table>.csv.
    let cases = [
        // An absolute schema name: the CSV would land in that directory.
        (
            outside.to_string_lossy().into_owned(),
            "Evil".to_string(),
            "outside/Evil.csv",
        ),
        // A schema name climbing six levels: data → bag → tmp → bags → cache → work → case.
        (
            "../../../../../../climbed".into(),
            "Evil".into(),
            "case1/climbed/Evil.csv",
        ),
        // A table name climbing seven levels from data/demo/.
        (
            "demo".into(),
            "../../../../../../../evil".into(),
            "case2/evil.csv",
        ),
    ];
    for (i, (schema, table, escaped)) in cases.iter().enumerate() {
        let case = dir.path().join(format!("case{i}"));
        let escaped = dir.path().join(escaped);
        let server = catalog_with_a_table_named(&case, schema, table).await;
        let ml = connect(&server, &case.join("work")).await;
        let err = ml
            .download_dataset_bag(DatasetSpec {
                materialize: false,
                ..DatasetSpec::new("1-D000", Some("1.0.0"))
            })
            .await
            .unwrap_err();
        match &err {
            Error::UnsafeName { what, value } if schema == "demo" => {
                assert_eq!(value, table);
                assert_eq!(what, "table name (schema demo)");
            }
            Error::UnsafeName { what, value } => {
                assert_eq!(value, schema);
                assert_eq!(what, "schema name");
            }
            other => panic!("{schema}:{table}: expected UnsafeName, got {other:?}"),
        }
        assert!(!escaped.exists(), "{} was written", escaped.display());
        // Nothing half-written in the cache either.
        let bags = case.join("work/cache/bags");
        let left: Vec<_> = std::fs::read_dir(&bags)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_files_left_in_data_by_an_interrupted_run_are_removed_by_the_next() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let bag = ml
        .download_dataset_bag(DatasetSpec {
            materialize: false,
            ..DatasetSpec::new("1-D002", Some("1.0.0"))
        })
        .await
        .unwrap();
    let folder = bag.path.join("data/asset/1-I004/Image");
    std::fs::create_dir_all(&folder).unwrap();
    let leftover = folder.join(".retina_004.png.part-0123456789abcdef0123456789abcdef");
    std::fs::write(&leftover, vec![0u8; 700]).unwrap();
    let user_file = folder.join(".notes.part-mine");
    std::fs::write(&user_file, b"kept").unwrap();
    ml.materialize(&bag.path, 2).await.unwrap();
    assert!(!leftover.exists());
    assert!(user_file.exists(), "only our own part files are removed");
    std::fs::remove_file(&user_file).unwrap();
    let opened = DatasetBag::open(&bag.path).unwrap();
    let report = opened.validate(ValidationMode::Full).unwrap();
    assert!(report.valid, "{:?}", report.errors);
}

/// A download of 1-D001 1.0.0, materialized or metadata-only.
fn d001(materialize: bool) -> DatasetSpec {
    DatasetSpec {
        materialize,
        ..DatasetSpec::new("1-D001", Some("1.0.0"))
    }
}

/// The downloaded bag is whole: it opens, validates (fully when materialized) and holds the
/// dataset's three images.
fn assert_whole(path: &std::path::Path, materialize: bool) {
    let bag = DatasetBag::open(path).unwrap();
    let mode = if materialize {
        ValidationMode::Full
    } else {
        ValidationMode::Structure
    };
    let report = bag.validate(mode).unwrap();
    assert!(report.valid, "{:?}", report.errors);
    let images: Vec<String> = bag
        .get_table("Image")
        .unwrap()
        .iter()
        .map(|r| r.rid().unwrap().to_string())
        .collect();
    assert_eq!(images, ["1-I001", "1-I002", "1-I005"]);
    assert_eq!(bag.is_materialized(), materialize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_bag_directory_gives_a_fresh_download_for_both_spec_kinds() {
    let server = TestCatalog::start().await.unwrap();
    for materialize in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let ml = connect(&server, dir.path()).await;
        let first = ml.download_dataset_bag(d001(materialize)).await.unwrap();
        std::fs::remove_dir_all(&first.path).unwrap();
        let again = ml.download_dataset_bag(d001(materialize)).await.unwrap();
        assert_eq!(again.path, first.path, "materialize={materialize}");
        assert!(!again.from_cache, "materialize={materialize}");
        assert_eq!(again.materialized, materialize);
        assert_whole(&again.path, materialize);
        // The fresh bag is cached again.
        let third = ml.download_dataset_bag(d001(materialize)).await.unwrap();
        assert!(third.from_cache, "materialize={materialize}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_deleted_cached_bag_is_downloaded_afresh_for_both_spec_kinds() {
    let server = TestCatalog::start().await.unwrap();
    for materialize in [true, false] {
        for victim in [
            "data/demo/Image.csv",
            "data/schema.json",
            "bagit.txt",
            "data",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let ml = connect(&server, dir.path()).await;
            let first = ml.download_dataset_bag(d001(materialize)).await.unwrap();
            let gone = first.path.join(victim);
            if gone.is_dir() {
                std::fs::remove_dir_all(&gone).unwrap();
            } else {
                std::fs::remove_file(&gone).unwrap();
            }
            let again = ml
                .download_dataset_bag(d001(materialize))
                .await
                .unwrap_or_else(|e| panic!("{victim}, materialize={materialize}: {e}"));
            assert!(!again.from_cache, "{victim}, materialize={materialize}");
            assert!(gone.exists(), "{victim}, materialize={materialize}");
            assert_whole(&again.path, materialize);
        }
    }
}
