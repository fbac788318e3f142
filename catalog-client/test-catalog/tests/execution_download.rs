//! `exe.download_dataset_bag(spec)`: the bag is downloaded (or reused) inside an execution,
//! comes back opened through the facade, and its version is linked to the execution as an
//! input exactly once.

#[path = "../../tests/common/mod.rs"]
mod common;
mod opened;

use common::{config, connect, dataset_links};
use deriva_bag_core::catalog::{DatasetSpec, ExecutionExt};
use deriva_bag_core::OpenOptions;
use deriva_test_catalog::{Fault, FaultMode, TestCatalog};
use opened::assert_opened_training_bag;

const LINKS: &str = "/ermrest/catalog/1/entity/deriva-ml:Dataset_Execution";

/// `(method, path)` of every logged request that wrote a `Dataset_Execution` row.
fn link_posts(server: &TestCatalog) -> Vec<String> {
    server
        .log()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.starts_with(LINKS))
        .map(|r| r.path)
        .collect()
}

fn d001_link() -> Vec<(String, String)> {
    vec![("1-D001".to_string(), "1-V001".to_string())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exe_download_dataset_bag_opened_returns_the_bag_and_links_its_version_once() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let options = OpenOptions {
        cache_dir: Some(dir.path().join("index")),
        ..OpenOptions::default()
    };
    let exe = ml
        .create_execution(config(&ml, "training on 1-D001").await)
        .await
        .unwrap();
    assert_eq!(dataset_links(&server, exe.rid().as_str()), []);

    let bag = exe
        .download_dataset_bag_opened_with(DatasetSpec::new("1-D001", Some("1.0.0")), &options)
        .await
        .unwrap();

    assert_opened_training_bag(&bag, &dir.path().join("work"));
    // Version 1.0.0 of 1-D001 is the Dataset_Version row 1-V001.
    assert_eq!(dataset_links(&server, exe.rid().as_str()), d001_link());

    // The second call reuses the cached bag and the link: no request at all.
    server.clear_log();
    let again = exe
        .download_dataset_bag_opened_with(DatasetSpec::new("1-D001", Some("1.0.0")), &options)
        .await
        .unwrap();
    assert_eq!(again.path(), bag.path());
    assert_eq!(server.log(), vec![]);
    assert_eq!(dataset_links(&server, exe.rid().as_str()), d001_link());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_download_in_an_execution_comes_from_the_cache_without_a_request() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let exe = ml
        .create_execution(config(&ml, "two downloads").await)
        .await
        .unwrap();

    let first = exe
        .download_dataset_bag(DatasetSpec::new("1-D001", Some("1.0.0")))
        .await
        .unwrap();
    assert!(!first.from_cache);
    assert!(first.materialized);
    assert_eq!(first.version, "1.0.0");
    assert_eq!(link_posts(&server).len(), 1);

    server.clear_log();
    let again = exe
        .download_dataset_bag(DatasetSpec::new("1-D001", Some("1.0.0")))
        .await
        .unwrap();
    assert!(again.from_cache);
    assert_eq!(again.path, first.path);
    assert_eq!(server.log(), vec![]);
    assert_eq!(dataset_links(&server, exe.rid().as_str()), d001_link());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_already_an_input_of_the_execution_is_not_linked_again() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, dir.path()).await;
    let mut cfg = config(&ml, "input named up front").await;
    cfg.datasets = vec![DatasetSpec::new("1-D001", None)];
    let exe = ml.create_execution(cfg).await.unwrap();
    assert_eq!(dataset_links(&server, exe.rid().as_str()), d001_link());

    server.clear_log();
    let bag = exe
        .download_dataset_bag(DatasetSpec::new("1-D001", Some("1.0.0")))
        .await
        .unwrap();
    assert!(!bag.from_cache);
    assert_eq!(link_posts(&server), Vec::<String>::new());
    assert_eq!(dataset_links(&server, exe.rid().as_str()), d001_link());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_whose_response_was_lost_is_completed_once_by_resume_and_never_duplicated() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rid = {
        let ml = connect(&server, dir.path()).await;
        let exe = ml
            .create_execution(config(&ml, "lost link response").await)
            .await
            .unwrap();
        // The link lands but its response is lost, and so is every retry's.
        let mut lost = Fault::new("POST", LINKS, FaultMode::CommitThenDropConnection);
        lost.times = 20;
        server.add_fault(lost);
        let err = exe
            .download_dataset_bag(DatasetSpec::new("1-D001", Some("1.0.0")))
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        exe.rid().clone()
    };
    server.clear_faults();
    assert_eq!(dataset_links(&server, rid.as_str()), d001_link());

    // A new process resumes the execution: the unconfirmed link is sent again
    // (`onconflict=skip`), and the catalog still has one row.
    server.clear_log();
    let ml = connect(&server, dir.path()).await;
    let exe = ml.resume_execution(&rid).await.unwrap();
    assert_eq!(
        link_posts(&server),
        [format!(
            "{LINKS}?defaults=RID,RCT,RMT,RCB,RMB&onconflict=skip"
        )]
    );
    assert_eq!(dataset_links(&server, rid.as_str()), d001_link());

    // Now confirmed locally: downloading again reuses the bag and sends no link.
    server.clear_log();
    let bag = exe
        .download_dataset_bag(DatasetSpec::new("1-D001", Some("1.0.0")))
        .await
        .unwrap();
    assert!(bag.from_cache);
    assert_eq!(server.log(), vec![]);
    assert_eq!(dataset_links(&server, rid.as_str()), d001_link());
}
