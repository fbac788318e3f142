//! Materialize against hostile servers: URLs that break the https-or-loopback rule,
//! redirects, over-long and short bodies, stalls, and killed runs.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::hostile::{holey_bag, md5_hex, Hostile, Reply};
use common::*;
use deriva_catalog_client::{Error, Timeouts};
use deriva_test_catalog::TestCatalog;

/// A 1 s connect timeout and a read timeout of `read_ms`.
fn short(read_ms: u64) -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        read: Duration::from_millis(read_ms),
    }
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_refuses_plain_http_to_a_non_loopback_host_before_any_connection() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let good = body(100);
    let assets = Hostile::start({
        let good = good.clone();
        move |_| Reply::Body(good.clone())
    })
    .await;
    let bag = dir.path().join("bag");
    holey_bag(
        &bag,
        &[
            (
                format!("{}/a.bin", assets.url()),
                100,
                "data/a.bin",
                &md5_hex(&good),
            ),
            (
                "http://assets.invalid/b.bin".into(),
                100,
                "data/b.bin",
                &md5_hex(&good),
            ),
        ],
    );
    let started = Instant::now();
    let err = ml.materialize(&bag, 2).await.unwrap_err();
    let elapsed = started.elapsed();
    match &err {
        Error::InsecureUrl { url } => assert_eq!(url, "http://assets.invalid/b.bin"),
        other => panic!("expected InsecureUrl, got {other:?}"),
    }
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
    // Refused up front: not even the good entry was fetched.
    assert_eq!(assets.connections.load(Ordering::SeqCst), 0);
    assert_eq!(files_under(&bag.join("data")), ["schema.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_refuses_file_and_ftp_urls_at_once() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    for url in ["file:///etc/hostname", "ftp://assets.invalid/a.bin"] {
        let bag = dir.path().join(format!("bag-{}", &url[..3]));
        holey_bag(
            &bag,
            &[(url.to_string(), 10, "data/a.bin", &"0".repeat(32))],
        );
        let started = Instant::now();
        let err = ml.materialize(&bag, 1).await.unwrap_err();
        match &err {
            Error::InvalidUrl { url: named, reason } => {
                assert_eq!(named, url);
                assert!(reason.contains("unsupported scheme"), "{reason}");
            }
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(!bag.join("data/a.bin").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_never_follows_a_redirect_to_another_origin() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let content = body(64);
    let elsewhere = Hostile::start({
        let c = content.clone();
        move |_| Reply::Body(c.clone())
    })
    .await;
    let target = format!("{}/stolen.bin", elsewhere.url());
    let first = Hostile::start({
        let t = target.clone();
        move |_| Reply::Redirect(t.clone())
    })
    .await;
    let bag = dir.path().join("bag");
    let url = format!("{}/a.bin", first.url());
    holey_bag(&bag, &[(url.clone(), 64, "data/a.bin", &md5_hex(&content))]);
    let err = ml.materialize(&bag, 1).await.unwrap_err();
    match &err {
        Error::RedirectRefused { from, to, .. } => {
            assert_eq!(from, &url);
            assert_eq!(to, &target);
        }
        other => panic!("expected RedirectRefused, got {other:?}"),
    }
    assert_eq!(first.seen().len(), 1, "refused at once, no retry");
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
    assert!(!bag.join("data/a.bin").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_origin_redirect_is_followed_and_cross_origin_assets_get_no_credential() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let content = body(300);
    let assets = Hostile::start({
        let c = content.clone();
        move |req| match req.path.as_str() {
            "/old/a.bin" => Reply::Redirect("/new/a.bin".into()),
            _ => Reply::Body(c.clone()),
        }
    })
    .await;
    let bag = dir.path().join("bag");
    holey_bag(
        &bag,
        &[(
            format!("{}/old/a.bin", assets.url()),
            300,
            "data/a.bin",
            &md5_hex(&content),
        )],
    );
    let report = ml.materialize(&bag, 1).await.unwrap();
    assert_eq!((report.fetched, report.bytes), (1, 300));
    assert_eq!(std::fs::read(bag.join("data/a.bin")).unwrap(), content);
    let seen = assets.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/old/a.bin", "/new/a.bin"]);
    for s in &seen {
        assert!(!s.headers.contains_key("authorization"), "{s:?}");
        assert!(!s.headers.contains_key("cookie"), "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_stops_reading_past_the_fetch_length() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let assets = Hostile::start(|_| Reply::Endless {
        limit: 64 * 1024 * 1024,
    })
    .await;
    let bag = dir.path().join("bag");
    let url = format!("{}/small.bin", assets.url());
    holey_bag(
        &bag,
        &[(url.clone(), 1500, "data/small.bin", &md5_hex(&body(1500)))],
    );
    let err = ml.materialize(&bag, 1).await.unwrap_err();
    match &err {
        Error::LengthExceeded {
            url: named,
            path,
            expected,
            received,
        } => {
            assert_eq!(named, &url);
            assert_eq!(path, "data/small.bin");
            assert_eq!(*expected, 1500);
            // Stopped at the first piece past LENGTH, not at the end of the stream.
            assert!(
                *received > 1500 && *received <= 1500 + 64 * 1024,
                "{received}"
            );
        }
        other => panic!("expected LengthExceeded, got {other:?}"),
    }
    assert_eq!(assets.seen().len(), 1, "an over-long body is not retried");
    assert!(
        assets.body_bytes_sent.load(Ordering::SeqCst) < 32 * 1024 * 1024,
        "the client kept reading"
    );
    assert_eq!(files_under(&bag.join("data")), ["schema.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_checks_the_length_where_no_md5_is_listed() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let assets = Hostile::start(|req| match req.path.as_str() {
        "/long.bin" => Reply::Body(body(2000)),
        _ => Reply::Body(body(1000)),
    })
    .await;
    for (name, kind) in [
        ("long.bin", "LengthExceeded"),
        ("short.bin", "LengthMismatch"),
    ] {
        let bag = dir.path().join(name);
        std::fs::create_dir_all(bag.join("data")).unwrap();
        std::fs::write(
            bag.join("bagit.txt"),
            "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        )
        .unwrap();
        std::fs::write(bag.join("manifest-md5.txt"), "").unwrap();
        std::fs::write(
            bag.join("fetch.txt"),
            format!("{}/{name}\t1500\tdata/{name}\n", assets.url()),
        )
        .unwrap();
        let err = ml.materialize(&bag, 1).await.unwrap_err();
        let (expected, received) = match (&err, kind) {
            (
                Error::LengthExceeded {
                    expected, received, ..
                },
                "LengthExceeded",
            ) => (*expected, *received),
            (
                Error::LengthMismatch {
                    expected, received, ..
                },
                "LengthMismatch",
            ) => (*expected, *received),
            (other, _) => panic!("{name}: expected {kind}, got {other:?}"),
        };
        assert_eq!(expected, 1500);
        assert_eq!(received, if name == "long.bin" { 2000 } else { 1000 });
        assert!(!bag.join("data").join(name).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_asset_ends_with_a_timeout_naming_the_url() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let assets = Hostile::start(|_| Reply::HeadersThenStall {
        content_length: 1000,
        first: vec![1; 10],
    })
    .await;
    let bag = dir.path().join("bag");
    let url = format!("{}/stall.bin", assets.url());
    holey_bag(
        &bag,
        &[(url.clone(), 1000, "data/stall.bin", &md5_hex(&body(1000)))],
    );
    let started = Instant::now();
    let err = ml.materialize_with(&bag, 1, short(300)).await.unwrap_err();
    match &err {
        Error::Timeout {
            method,
            url: named,
            phase,
            limit,
        } => {
            assert_eq!(
                (method.as_str(), named, phase.as_str()),
                ("GET", &url, "read")
            );
            assert_eq!(*limit, Duration::from_millis(300));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_asset_is_not_cut_off_by_the_read_timeout() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let content = body(2000);
    let assets = Hostile::start({
        let c = content.clone();
        move |_| Reply::Trickle {
            body: c.clone(),
            chunk: 100,
            every: Duration::from_millis(60),
        }
    })
    .await;
    let bag = dir.path().join("bag");
    holey_bag(
        &bag,
        &[(
            format!("{}/slow.bin", assets.url()),
            2000,
            "data/slow.bin",
            &md5_hex(&content),
        )],
    );
    // 20 writes 60 ms apart: 1.2 s in all, never 400 ms of silence.
    let report = ml.materialize_with(&bag, 1, short(400)).await.unwrap();
    assert_eq!((report.fetched, report.bytes), (1, 2000));
    assert_eq!(assets.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_catalog_response_ends_with_a_timeout_naming_the_url() {
    let catalog = Hostile::start(|_| Reply::HeadersThenStall {
        content_length: 100,
        first: b"{".to_vec(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = deriva_catalog_client::DerivaML::connect_with(
        &catalog.url(),
        "1",
        deriva_catalog_client::ConnectOptions {
            working_dir: Some(dir.path().to_path_buf()),
            credential: None,
            credential_file: Some(dir.path().join("none.json")),
            retry: Some(deriva_catalog_client::RetryPolicy {
                attempts: 1,
                ..Default::default()
            }),
            timeout: short(300),
        },
    )
    .await
    .unwrap_err();
    match &err {
        Error::Timeout { url, phase, .. } => {
            assert_eq!(url, &format!("{}/ermrest/catalog/1/schema", catalog.url()));
            assert_eq!(phase, "read");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_materialize_resumes_with_range_and_leaves_nothing_under_data() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let content = body(4000);
    let assets = Hostile::start({
        let c = content.clone();
        move |req| match req.headers.get("range") {
            Some(r) => {
                let start: usize = r
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                Reply::Partial {
                    body: c.clone(),
                    start,
                }
            }
            None => Reply::Trickle {
                body: c.clone(),
                chunk: 100,
                every: Duration::from_millis(50),
            },
        }
    })
    .await;
    let bag = dir.path().join("bag");
    holey_bag(
        &bag,
        &[(
            format!("{}/big.bin", assets.url()),
            4000,
            "data/big.bin",
            &md5_hex(&content),
        )],
    );
    kill_after_partial_bytes(&ml, &bag, 1000).await;
    // Second run: resumes where the first stopped.
    let report = ml.materialize(&bag, 1).await.unwrap();
    assert_eq!(report.fetched, 1);
    assert_eq!(std::fs::read(bag.join("data/big.bin")).unwrap(), content);
    let seen = assets.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let range = seen[1].headers.get("range").cloned().unwrap_or_default();
    let from: u64 = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap_or(0);
    assert!(range.starts_with("bytes=") && from >= 1000, "{range:?}");
    assert_eq!(
        (report.bytes, report.resumed),
        (4000 - from, 1),
        "{report:?}"
    );
    assert_eq!(files_under(&bag.join("data")), ["big.bin", "schema.json"]);
    assert!(files_under(&bag).iter().all(|f| !f.contains("part")));
    // Third run: the file matches its length and digest, so nothing is requested.
    let report = ml.materialize(&bag, 1).await.unwrap();
    assert_eq!((report.fetched, report.already_present), (0, 1));
    assert_eq!(assets.seen().len(), 2);
}

/// Starts a materialize of `bag` and kills it (drops the task, as a killed process would
/// stop) once at least `bytes` are in a partial file.
async fn kill_after_partial_bytes(ml: &deriva_catalog_client::DerivaML, bag: &Path, bytes: u64) {
    let run = tokio::spawn({
        let (ml, bag) = (ml.clone(), bag.to_path_buf());
        async move { ml.materialize(&bag, 1).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let partial: u64 = files_under(bag)
            .iter()
            .filter(|f| f.contains("part"))
            .map(|f| std::fs::metadata(bag.join(f)).map(|m| m.len()).unwrap_or(0))
            .sum();
        if partial >= bytes {
            break;
        }
        assert!(Instant::now() < deadline, "no partial file appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.abort();
    let _ = run.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_the_range_gets_the_whole_file_fetched_again() {
    let server = TestCatalog::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ml = connect(&server, &dir.path().join("work")).await;
    let content = body(3000);
    let assets = Hostile::start({
        let c = content.clone();
        move |_| Reply::Trickle {
            body: c.clone(),
            chunk: 300,
            every: Duration::from_millis(50),
        }
    })
    .await;
    let bag = dir.path().join("bag");
    let url = format!("{}/plain.bin", assets.url());
    holey_bag(&bag, &[(url, 3000, "data/plain.bin", &md5_hex(&content))]);
    kill_after_partial_bytes(&ml, &bag, 600).await;
    let report = ml.materialize(&bag, 1).await.unwrap();
    assert_eq!((report.fetched, report.bytes, report.resumed), (1, 3000, 0));
    assert_eq!(std::fs::read(bag.join("data/plain.bin")).unwrap(), content);
    let seen = assets.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].headers.contains_key("range"), "{seen:?}");
    assert_eq!(files_under(&bag.join("data")), ["plain.bin", "schema.json"]);
    assert!(!bag.join(deriva_catalog_client::PARTIAL_DIR).exists());
}
