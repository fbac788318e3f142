//! Loopback benchmarks of the catalog client against the local test catalog (run in release:
//! `cargo run -p deriva-test-catalog --release --example bench`).
//!
//! 1. materialize 2,000 × 100 KB assets from `fetch.txt` with parallelism 1 and 8;
//! 2. stage and commit 100,000 feature records.
//!
//! Arguments: `[files] [file_kb] [records]` (defaults 2000 100 100000).
//!
//! `bench live [--images N] [--runs R]` compares the live `Dataset` (`ml.lookup_dataset`) with
//! the downloaded `DatasetBag` of the same version on a generated dataset of N images (default
//! 2,000) served by the test catalog: `list_dataset_members(recurse)` and `feature_values`
//! (all records, newest) times (best of R runs, each on a fresh lookup and a freshly opened
//! bag, so the live reachability sets are computed every time), then the assets fetched on
//! demand through `asset_path` into an empty cache (read-ahead, parallelism 8), as assets/s.
//!
//! `bench materialize [--files N] [--kb K] [--runs R] [--parallelism 1,8] [--dir DIR]...
//! [--bdbag PATH] [--server static|catalog]` compares [`materialize_bag`] with
//! `bdbag --resolve-fetch all` on the same holey bag and the same loopback server: a small
//! static file server in this process (`static`, the default: in-memory objects, keep-alive,
//! `Range`) or the test catalog's Hatrac (`catalog`: bdbag gets its token through a keychain
//! file). Each `--dir` (e.g. one on disk and one under `/dev/shm`) gets its own copy of the
//! bag; every run gets a fresh copy. Prints one line per run with files/s, MB/s, the CPU
//! seconds the client used (ours: this process without the server's threads; bdbag: the
//! child process) and the load average.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use deriva_catalog_client::{materialize_bag, Timeouts};

use deriva_bag_core::bagit::write::{BagWriter, RemoteFile};
use deriva_bag_features::{FeatureId, FeatureRecord};
use deriva_catalog_client::{ConnectOptions, Credential, DerivaML, ExecutionConfiguration};
use deriva_test_catalog::{image_bytes, TestCatalog};
use md5::Digest;
use serde_json::json;

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("live") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        live_vs_bag(&args).await;
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("materialize") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        materialize_vs_bdbag(&args).await;
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let files = args.first().copied().unwrap_or(2000);
    let file_kb = args.get(1).copied().unwrap_or(100);
    let records = args.get(2).copied().unwrap_or(100_000);

    let server = TestCatalog::start().await.expect("start test catalog");
    let work = tempfile::tempdir().expect("tempdir");
    let ml = connect(&server, &work.path().join("work")).await;

    // --- materialize ---
    let bag = work.path().join("bench-bag");
    std::fs::create_dir_all(bag.join("data")).expect("mkdir");
    std::fs::write(bag.join("data/README.txt"), "benchmark bag\n").expect("write");
    let mut remote = Vec::with_capacity(files);
    for i in 0..files {
        let bytes = image_bytes(10_000 + i as u64, file_kb * 1024);
        let md5 = hex::encode(md5::Md5::digest(&bytes));
        let url = server
            .put_object(&format!("/hatrac/Bench/{md5}.f{i:05}.bin"), &bytes)
            .expect("put object");
        remote.push(RemoteFile {
            url: format!("{}{url}", server.url()),
            length: bytes.len() as u64,
            path: format!("data/asset/B-{i:05}/Bench/f{i:05}.bin"),
            md5,
            sha256: None,
        });
    }
    BagWriter::new()
        .remote_files(remote)
        .write(&bag)
        .expect("write bag");
    let total_mb = (files * file_kb * 1024) as f64 / 1e6;
    for parallelism in [1usize, 8] {
        let _ = std::fs::remove_dir_all(bag.join("data/asset"));
        let t = Instant::now();
        let report = ml
            .materialize(&bag, parallelism)
            .await
            .expect("materialize");
        let s = t.elapsed().as_secs_f64();
        assert_eq!(report.fetched, files);
        println!(
            "materialize parallelism={parallelism}: {files} files x {file_kb} KB in {s:.2} s = {:.0} files/s, {:.1} MB/s",
            files as f64 / s,
            total_mb / s
        );
    }

    // --- commit ---
    let rows: Vec<_> = (0..records)
        .map(|i| {
            json!({"RID": format!("3-{i:05}"), "URL": format!("/hatrac/Image/b{i}.jpg"), "Filename": format!("b{i}.jpg"),
                   "Length": 1, "MD5": "00", "Subject": "1-S001",
                   "RCT": "2026-05-28T16:54:02+00:00", "RMT": "2026-05-28T16:54:02+00:00"})
        })
        .collect();
    for chunk in rows.chunks(10_000) {
        server
            .insert_rows("demo:Image", chunk)
            .expect("seed images");
    }
    let recs: Vec<FeatureRecord> = (0..records)
        .map(|i| {
            let mut fields = indexmap::IndexMap::new();
            fields.insert("Image".to_string(), json!(format!("3-{i:05}")));
            fields.insert(
                "Glaucoma".to_string(),
                json!(["Normal", "Mild", "Moderate", "Severe"][i % 4]),
            );
            FeatureRecord {
                feature: FeatureId {
                    schema: "demo".into(),
                    table: "Execution_Image_Glaucoma".into(),
                    name: "Glaucoma".into(),
                },
                target_column: "Image".into(),
                rid: None,
                fields,
            }
        })
        .collect();
    let workflow = ml.find_workflows().await.expect("workflows")[0].clone();
    let exe = ml
        .create_execution(ExecutionConfiguration {
            description: "bench".into(),
            workflow,
            datasets: Vec::new(),
        })
        .await
        .expect("create execution");
    let t = Instant::now();
    let staged = exe.add_features(&recs).expect("add_features");
    let stage_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = exe.upload_execution_outputs().await.expect("commit");
    let commit_s = t.elapsed().as_secs_f64();
    assert_eq!(report.features_inserted, records);
    println!(
        "add_features: {staged} records in {stage_s:.2} s = {:.0} records/s",
        staged as f64 / stage_s
    );
    println!(
        "commit: {records} records in {commit_s:.2} s = {:.0} records/s ({} POSTs)",
        records as f64 / commit_s,
        report.feature_requests
    );
}

/// Options of `bench materialize`.
struct MaterializeArgs {
    files: usize,
    kb: usize,
    runs: usize,
    parallelism: Vec<usize>,
    dirs: Vec<PathBuf>,
    bdbag: Option<PathBuf>,
    catalog_server: bool,
}

fn parse_materialize_args(args: &[String]) -> MaterializeArgs {
    let mut out = MaterializeArgs {
        files: 2000,
        kb: 100,
        runs: 3,
        parallelism: vec![1, 8],
        dirs: Vec::new(),
        bdbag: None,
        catalog_server: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"))
            .clone();
        let number = |v: &str| -> usize { v.parse().unwrap_or_else(|_| panic!("{flag} {v}")) };
        match flag.as_str() {
            "--files" => out.files = number(&value),
            "--kb" => out.kb = number(&value),
            "--runs" => out.runs = number(&value),
            "--parallelism" => out.parallelism = value.split(',').map(number).collect(),
            "--dir" => out.dirs.push(PathBuf::from(value)),
            "--bdbag" => out.bdbag = Some(PathBuf::from(value)),
            "--server" => out.catalog_server = value == "catalog",
            other => panic!("unknown option {other}"),
        }
    }
    if out.dirs.is_empty() {
        out.dirs
            .push(std::env::temp_dir().join("deriva-bench-materialize"));
    }
    out
}

/// A minimal static file server on loopback: `GET`/`HEAD` of in-memory objects with a single
/// `bytes=START-` range, HTTP/1.1 keep-alive. Runs on its own runtime (two worker threads),
/// so that the client under test does not share its scheduler.
fn static_server(objects: HashMap<String, Bytes>) -> String {
    use http_body_util::Full;
    use hyper::{Request, Response, StatusCode};

    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", std_listener.local_addr().expect("addr"));
    let objects = Arc::new(objects);
    let spawned = std::thread::Builder::new()
        .name(SERVER_THREAD.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(SERVER_THREAD)
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let objects = objects.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(
                            move |req: Request<hyper::body::Incoming>| {
                                let objects = objects.clone();
                                async move {
                                    let mut resp = Response::new(Full::new(Bytes::new()));
                                    let Some(body) = objects.get(req.uri().path()) else {
                                        *resp.status_mut() = StatusCode::NOT_FOUND;
                                        return Ok::<_, Infallible>(resp);
                                    };
                                    let start = req
                                        .headers()
                                        .get("range")
                                        .and_then(|r| r.to_str().ok())
                                        .and_then(|r| r.strip_prefix("bytes="))
                                        .and_then(|r| r.strip_suffix('-'))
                                        .and_then(|r| r.parse::<usize>().ok())
                                        .filter(|s| *s < body.len());
                                    let part = body.slice(start.unwrap_or(0)..);
                                    let headers = resp.headers_mut();
                                    headers.insert("content-length", part.len().into());
                                    headers.insert(
                                        "content-type",
                                        hyper::header::HeaderValue::from_static(
                                            "application/octet-stream",
                                        ),
                                    );
                                    if let Some(s) = start {
                                        let range =
                                            format!("bytes {s}-{}/{}", body.len() - 1, body.len());
                                        if let Ok(v) = range.parse() {
                                            headers.insert("content-range", v);
                                        }
                                        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                                    }
                                    if req.method() != hyper::Method::HEAD {
                                        *resp.body_mut() = Full::new(part);
                                    }
                                    Ok(resp)
                                }
                            },
                        );
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    });
                }
            });
        });
    spawned.expect("server thread");
    url
}

/// The name of the static server's threads (their CPU time is not the client's).
const SERVER_THREAD: &str = "bench-server";

/// CPU seconds (user + system) of `/proc/self/stat`-like text: fields 14-15, or 16-17 for
/// waited-for children.
fn stat_cpu(stat: &str, children: bool) -> f64 {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    // `rest` starts at field 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let at = if children { 13 } else { 11 };
    let ticks: u64 = fields[at..at + 2]
        .iter()
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// CPU seconds of this process without the static server's threads, and of its waited-for
/// children.
fn cpu_seconds() -> (f64, f64) {
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let mut server = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            if stat.contains(&format!("({SERVER_THREAD})")) {
                server += stat_cpu(&stat, false);
            }
        }
    }
    (stat_cpu(&own, false) - server, stat_cpu(&own, true))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Total size and count of the regular files under `dir`.
fn tree_size(dir: &Path) -> (usize, u64) {
    let mut out = (0, 0);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                let (n, b) = tree_size(&p);
                out = (out.0 + n, out.1 + b);
            } else if let Ok(m) = p.metadata() {
                out = (out.0 + 1, out.1 + m.len());
            }
        }
    }
    out
}

async fn materialize_vs_bdbag(args: &[String]) {
    let a = parse_materialize_args(args);
    let _ = std::process::Command::new("sync").status();
    let (files, file_kb) = (a.files, a.kb);
    let mut objects = HashMap::new();
    let mut blobs = Vec::with_capacity(files);
    for i in 0..files {
        let bytes = image_bytes(10_000 + i as u64, file_kb * 1024);
        let md5 = hex::encode(md5::Md5::digest(&bytes));
        blobs.push((format!("/hatrac/Bench/{md5}.f{i:05}.bin"), md5, bytes));
    }
    // The catalog server must outlive every run.
    let mut _catalog = None;
    let mut keychain = None;
    let base = if a.catalog_server {
        let server = TestCatalog::start().await.expect("start test catalog");
        for (name, _, bytes) in &blobs {
            server.put_object(name, bytes).expect("put object");
        }
        let url = server.url();
        let file = std::env::temp_dir().join("deriva-bench-keychain.json");
        let entry = json!([{"uri": format!("{url}/"), "auth_type": "bearer-token",
                            "auth_params": {"token": server.token(), "allow_redirects_with_token": true}}]);
        std::fs::write(&file, entry.to_string()).expect("keychain");
        keychain = Some(file);
        _catalog = Some(server);
        url
    } else {
        for (name, _, bytes) in &blobs {
            objects.insert(name.clone(), Bytes::from(bytes.clone()));
        }
        static_server(std::mem::take(&mut objects))
    };
    let ml = match &_catalog {
        Some(server) => Some(
            DerivaML::connect_with(
                &server.url(),
                "1",
                ConnectOptions {
                    credential: Some(Credential::BearerToken(server.token().into())),
                    working_dir: Some(std::env::temp_dir().join("deriva-bench-work")),
                    ..Default::default()
                },
            )
            .await
            .expect("connect"),
        ),
        None => None,
    };
    let remote: Vec<RemoteFile> = blobs
        .iter()
        .enumerate()
        .map(|(i, (name, md5, bytes))| RemoteFile {
            url: format!("{base}{name}"),
            length: bytes.len() as u64,
            path: format!("data/asset/B-{i:05}/Bench/f{i:05}.bin"),
            md5: md5.clone(),
            sha256: None,
        })
        .collect();
    drop(blobs);
    let total_bytes = (files * file_kb * 1024) as u64;
    let mb = total_bytes as f64 / 1e6;
    println!(
        "server: {}; {files} files x {file_kb} KB = {mb:.1} MB",
        if a.catalog_server {
            "test catalog (Hatrac)"
        } else {
            "static (bench)"
        }
    );
    // Every run gets a fresh copy of the holey bag, and the copies are removed only at the
    // end: on ext4, creating directories right after removing thousands of them is slow
    // (`recently_deleted` in the inode allocator), which would be charged to the next run.
    let fresh_bag = |dir: &Path, name: String| -> PathBuf {
        let bag = dir.join(name);
        let _ = std::fs::remove_dir_all(&bag);
        std::fs::create_dir_all(bag.join("data")).expect("mkdir");
        std::fs::write(bag.join("data/README.txt"), "benchmark bag\n").expect("write");
        BagWriter::new()
            .remote_files(remote.clone())
            .write(&bag)
            .expect("write bag");
        // Let the bag's own writeback settle so that it is not charged to the run.
        let _ = std::process::Command::new("sync").status();
        bag
    };
    for dir in &a.dirs {
        for run in 1..=a.runs {
            for &p in &a.parallelism {
                let bag = fresh_bag(dir, format!("bench-bag-{run}-ours-p{p}"));
                let (cpu0, _) = cpu_seconds();
                let t = Instant::now();
                let report = match &ml {
                    Some(ml) => ml.materialize(&bag, p).await,
                    None => materialize_bag(&bag, p, Timeouts::default()).await,
                }
                .expect("materialize");
                let s = t.elapsed().as_secs_f64();
                let cpu = cpu_seconds().0 - cpu0;
                assert_eq!((report.fetched, report.bytes), (files, total_bytes));
                println!(
                    "{} run {run} ours  p={p}: {s:6.2} s {:7.0} files/s {:7.1} MB/s  cpu {cpu:5.2} s  load {}",
                    dir.display(),
                    files as f64 / s,
                    mb / s,
                    loadavg()
                );
            }
            if let Some(bdbag) = &a.bdbag {
                let bag = fresh_bag(dir, format!("bench-bag-{run}-bdbag"));
                let mut cmd = std::process::Command::new(bdbag);
                cmd.arg("--quiet").arg("--resolve-fetch").arg("all");
                if let Some(k) = &keychain {
                    cmd.arg("--keychain-file").arg(k);
                }
                cmd.arg(&bag);
                let (_, cpu0) = cpu_seconds();
                let t = Instant::now();
                let status = cmd.status().expect("run bdbag");
                let s = t.elapsed().as_secs_f64();
                let cpu = cpu_seconds().1 - cpu0;
                assert!(status.success(), "bdbag failed: {status}");
                let (n, bytes) = tree_size(&bag.join("data/asset"));
                assert_eq!((n, bytes), (files, total_bytes), "bdbag fetched");
                println!(
                    "{} run {run} bdbag p=1: {s:6.2} s {:7.0} files/s {:7.1} MB/s  cpu {cpu:5.2} s  load {}",
                    dir.display(),
                    files as f64 / s,
                    mb / s,
                    loadavg()
                );
            }
        }
    }
    for dir in &a.dirs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("bench-bag-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    // Written back, the removed inodes stop counting as recently deleted after 5 s instead
    // of 5 min (ext4 without a journal skips them when allocating).
    let _ = std::process::Command::new("sync").status();
}

/// Connects to the test catalog with its token and `working_dir`.
async fn connect(server: &TestCatalog, working_dir: &Path) -> DerivaML {
    DerivaML::connect_with(
        &server.url(),
        "1",
        ConnectOptions {
            credential: Some(Credential::BearerToken(server.token().into())),
            working_dir: Some(working_dir.to_path_buf()),
            ..Default::default()
        },
    )
    .await
    .expect("connect")
}

/// `bench live`: the live dataset against the downloaded bag (see the crate docs).
async fn live_vs_bag(args: &[String]) {
    use deriva_bag_core::fixtures::{generate, FixtureSpec};
    use deriva_bag_core::DatasetBag;
    use deriva_bag_features::{DatasetLike, Selector, TableName};
    use deriva_catalog_client::DatasetSpec;

    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (images, runs) = (value("--images", 2000), value("--runs", 3).max(1));
    let work = tempfile::tempdir().expect("tempdir");
    let fixture = generate(
        &FixtureSpec::with_images(images),
        &work.path().join("fixture"),
    )
    .expect("generate the fixture bag");
    let server = TestCatalog::start_from_bag(&fixture.path, Default::default(), 0)
        .expect("start the test catalog");
    let ml = connect(&server, &work.path().join("work")).await;
    let rid = fixture.root_rid.to_string();
    let downloaded = ml
        .download_dataset_bag(DatasetSpec::new(rid.as_str(), Some("1.0.0")))
        .await
        .expect("download");
    println!(
        "live vs bag: dataset {rid}, {images} images, best of {runs} runs, load average {}",
        loadavg()
    );
    let image = TableName::new("demo", "Image");
    for which in ["bag", "live"] {
        let mut best = [f64::MAX; 3];
        let mut sizes = [0usize; 3];
        for _ in 0..runs {
            let d: Box<dyn Measured> = if which == "bag" {
                Box::new(DatasetBag::open(&downloaded.path).expect("open"))
            } else {
                Box::new(
                    ml.lookup_dataset(rid.as_str(), Some("1.0.0"))
                        .await
                        .expect("lookup"),
                )
            };
            let times = tokio::task::spawn_blocking(move || {
                let mut out = [(0.0, 0usize); 3];
                let t = Instant::now();
                let members = d.members();
                out[0] = (t.elapsed().as_secs_f64(), members);
                let t = Instant::now();
                let all = d.features(None);
                out[1] = (t.elapsed().as_secs_f64(), all);
                let t = Instant::now();
                let newest = d.features(Some(Selector::newest()));
                out[2] = (t.elapsed().as_secs_f64(), newest);
                out
            })
            .await
            .expect("measure");
            for (i, (secs, n)) in times.iter().enumerate() {
                best[i] = best[i].min(*secs);
                sizes[i] = *n;
            }
        }
        println!(
            "  {which:<4}  list_dataset_members(recurse) {:>8.1} ms ({} rows)   feature_values {:>8.1} ms ({} records)   feature_values(newest) {:>8.1} ms ({} records)",
            best[0] * 1e3, sizes[0], best[1] * 1e3, sizes[1], best[2] * 1e3, sizes[2]
        );
    }
    // Assets on demand: asset_path over the reachable images, into an empty cache.
    let live = ml
        .lookup_dataset(rid.as_str(), Some("1.0.0"))
        .await
        .expect("lookup")
        .with_asset_cache(work.path().join("asset-cache"), 8);
    let (fetched, bytes, secs) = tokio::task::spawn_blocking(move || {
        let rows = live.reachable_rows(&image).expect("reachable images");
        let t = Instant::now();
        let mut bytes = 0u64;
        for r in &rows {
            let path = live.asset_path(&image, r).expect("asset fetched");
            bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        }
        (rows.len(), bytes, t.elapsed().as_secs_f64())
    })
    .await
    .expect("fetch");
    println!(
        "  assets on demand (asset_path, read-ahead, parallelism 8): {fetched} files, {:.1} MB in {:.2} s = {:.0} assets/s, {:.1} MB/s; load average {}",
        bytes as f64 / 1e6,
        secs,
        fetched as f64 / secs,
        bytes as f64 / 1e6 / secs,
        loadavg()
    );
}

/// What `bench live` measures, for a bag and a live dataset alike.
trait Measured: Send {
    fn members(&self) -> usize;
    fn features(&self, selector: Option<deriva_bag_features::Selector>) -> usize;
}

impl<D: deriva_bag_features::DatasetLike + Send> Measured for D {
    fn members(&self) -> usize {
        self.list_dataset_members(true, None)
            .expect("members")
            .values()
            .map(Vec::len)
            .sum()
    }
    fn features(&self, selector: Option<deriva_bag_features::Selector>) -> usize {
        self.feature_values("Image", "Glaucoma", selector.as_ref())
            .expect("feature values")
            .len()
    }
}
