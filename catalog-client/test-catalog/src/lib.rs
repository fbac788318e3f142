//! A local ERMrest/Hatrac/webauthn-compatible test catalog for `deriva-catalog-client`, and the
//! end-to-end [`demo`].
//!
//! A nested crate of its own (`catalog-client/test-catalog`) so that the catalog client
//! depends on no fixture or bag-core code: the catalog client's tests use it as a
//! dev-dependency, and it seeds itself from `deriva_bag_core::fixtures` bags.
//!
//! It implements the subset of the ERMrest and Hatrac protocols that DerivaML's
//! offline workflow needs, on `127.0.0.1` with an ephemeral port, backed by an in-memory
//! SQLite database seeded with the small fixture dataset (`FixtureSpec::default()`'s rows plus
//! Hatrac objects for the six images). Reads at `/ermrest/catalog/<id>@<snaptime>/…` see the
//! catalog as of that snaptime: every request that changes rows advances the catalog's
//! snaptime (`GET /ermrest/catalog/<id>/`), and a dataset version stamped with it keeps
//! reading the rows of that moment (see `store`; seeded rows are visible at every snapshot,
//! a snaptime that is not ERMrest base-32 is 404). Besides the catalog it serves a test
//! control plane:
//! `POST /_test/fault` (fault injection: `commit_then_500`, `commit_then_drop_connection`,
//! `fail_before_commit_503`, `stall_ms`), `GET /_test/log` (every request with its status and
//! `Range` header),
//! `DELETE /_test/log` and `POST /_test/reset`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use deriva_test_catalog::TestCatalog;
//! let server = TestCatalog::start().await.unwrap();
//! let body = reqwest::Client::new()
//!     .get(format!("{}/ermrest/catalog/1/entity/demo:Subject", server.url()))
//!     .bearer_auth(server.token())
//!     .send().await.unwrap()
//!     .text().await.unwrap();
//! assert!(body.contains("Thing3"));
//! # });
//! ```

mod bagseed;
mod clients;
pub mod demo;
mod http;
mod seed;
mod store;
mod urlpath;

/// The workspace's one skip helper for tests that cannot run here (prints `SKIPPED: why`,
/// fails under `CI=true`), for the catalog client's tests.
pub use deriva_bag_core::fixtures::skip_test;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tokio::sync::oneshot;

pub use seed::image_bytes;
pub(crate) use store::urlb32_encode;
use store::{ApiError, Store};

/// A fault to inject into matching requests (`POST /_test/fault` takes the same JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// HTTP method to match (`POST`, `PUT`, …); `None` matches any.
    #[serde(default)]
    pub method: Option<String>,
    /// The raw (percent-encoded) request path must start with this.
    pub path_prefix: String,
    /// `commit_then_500`, `commit_then_drop_connection`, `fail_before_commit_503` or `stall_ms`.
    pub mode: FaultMode,
    /// How many matching requests it applies to (default 1).
    #[serde(default = "one")]
    pub times: u32,
    /// Delay for `stall_ms`.
    #[serde(default)]
    pub stall_ms: u64,
    /// How many matching requests to let through untouched before the fault applies
    /// (e.g. 1 = fail the second chunk of an upload).
    #[serde(default)]
    pub skip: u32,
}

fn one() -> u32 {
    1
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Perform the request, then answer 500.
    CommitThen500,
    /// Perform the request, then close the connection without any response.
    CommitThenDropConnection,
    /// Answer 503 without performing the request.
    FailBeforeCommit503,
    /// Wait `stall_ms`, then perform the request normally.
    StallMs,
}

impl Fault {
    /// A one-shot fault on `method` requests whose path starts with `path_prefix`.
    pub fn new(method: &str, path_prefix: &str, mode: FaultMode) -> Fault {
        Fault {
            method: Some(method.to_string()),
            path_prefix: path_prefix.to_string(),
            mode,
            times: 1,
            stall_ms: 0,
            skip: 0,
        }
    }
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Raw path and query.
    pub path: String,
    /// Status sent; 0 when the connection was dropped without a response.
    pub status: u16,
    /// The `Range` header, when the request had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
}

/// How the test catalog behaves.
#[derive(Debug, Clone)]
pub struct TestCatalogOptions {
    /// The bearer token it accepts.
    pub token: String,
    /// The session cookie (`name=value`) it accepts.
    pub cookie: String,
    /// Whether the authenticated client is a catalog owner (owners may insert any RID;
    /// non-owners only RIDs they leased, as in ERMrest).
    pub owner: bool,
    /// The catalog id served (`/ermrest/catalog/<id>`).
    pub catalog_id: String,
}

impl Default for TestCatalogOptions {
    fn default() -> Self {
        TestCatalogOptions {
            token: "test-token".to_string(),
            cookie: "webpy_session=test-cookie".to_string(),
            owner: false,
            catalog_id: "1".to_string(),
        }
    }
}

/// Shared server state.
pub(crate) struct State {
    pub store: Mutex<Store>,
    pub faults: Mutex<Vec<Fault>>,
    pub log: Mutex<Vec<LoggedRequest>>,
    pub options: TestCatalogOptions,
    pub base_url: String,
    pub seed: Seed,
}

/// What the catalog is seeded with (and reset to by `POST /_test/reset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    /// The built-in small demo dataset (`FixtureSpec::default()`'s rows).
    Builtin,
    /// A dataset bag directory: its model, CSV rows and materialized assets.
    Bag(PathBuf),
}

fn build_store(seed: &Seed) -> Result<Store, ApiError> {
    match seed {
        Seed::Builtin => seeded_store(),
        Seed::Bag(p) => bagseed::store_from_bag(p),
    }
}

impl State {
    fn lock_store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds a freshly seeded store whose Hatrac URLs point at this server.
fn seeded_store() -> Result<Store, ApiError> {
    let snaptime = urlb32_encode(chrono::Utc::now().timestamp_micros().max(0) as u64);
    let mut store = Store::new(seed::schema_json(&snaptime))?;
    let mut urls = Vec::new();
    for (_, file, _, bytes) in seed::images() {
        use md5::Digest;
        let md5 = hex::encode(md5::Md5::digest(&bytes));
        let name = format!("/hatrac/Image/{md5}.{file}");
        let version = store.put_object(&name, &bytes, Some("application/octet-stream"), None)?;
        urls.push((
            format!("{}:{version}", http::encode_hatrac_path(&name)),
            bytes.len() as u64,
            md5,
        ));
    }
    let seeder = store::Identity {
        id: "seed".to_string(),
        owner: true,
    };
    for (table, rows) in seed::rows(&urls) {
        store.insert(table, &rows, &Default::default(), &seeder, true)?;
    }
    clients::register(&mut store)?;
    Ok(store)
}

/// A running test catalog. Dropping it stops the server.
pub struct TestCatalog {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TestCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCatalog")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Errors starting the test catalog.
#[derive(Debug, thiserror::Error)]
pub enum TestCatalogError {
    /// Binding or running the listener failed.
    #[error("test catalog I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Seeding failed.
    #[error("test catalog seed: {0}")]
    Seed(String),
}

impl TestCatalog {
    /// Starts a seeded catalog on `127.0.0.1:<ephemeral>` with default options, on its own
    /// thread and runtime (so it survives a client runtime being dropped, like a real server).
    pub async fn start() -> Result<TestCatalog, TestCatalogError> {
        Self::start_with(TestCatalogOptions::default(), 0)
    }

    /// Starts a seeded catalog with `options` on `port` (0 = ephemeral). Blocking-safe: it
    /// spawns its own thread, so it can be called from sync code too.
    pub fn start_with(
        options: TestCatalogOptions,
        port: u16,
    ) -> Result<TestCatalog, TestCatalogError> {
        Self::start_seeded(Seed::Builtin, options, port)
    }

    /// Starts a catalog seeded from the dataset bag at `bag` (e.g. a
    /// `deriva_bag_core::fixtures` bag): its `schema.json` (plus `public:ERMrest_RID_Lease`),
    /// every table CSV, and each materialized `fetch.txt` file as the Hatrac object version
    /// its URL names, so a download from this catalog reproduces the bag's rows and assets.
    pub fn start_from_bag(
        bag: &Path,
        options: TestCatalogOptions,
        port: u16,
    ) -> Result<TestCatalog, TestCatalogError> {
        Self::start_seeded(Seed::Bag(bag.to_path_buf()), options, port)
    }

    /// Starts a catalog with an explicit [`Seed`].
    pub fn start_seeded(
        seed: Seed,
        options: TestCatalogOptions,
        port: u16,
    ) -> Result<TestCatalog, TestCatalogError> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let store = build_store(&seed).map_err(|e| TestCatalogError::Seed(e.message))?;
        let state = Arc::new(State {
            store: Mutex::new(store),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            options,
            base_url: format!("http://{addr}"),
            seed,
        });
        let (tx, rx) = oneshot::channel();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("deriva-test-catalog".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(4)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("test catalog runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => http::serve(l, thread_state, rx).await,
                        Err(e) => tracing::error!("test catalog listener: {e}"),
                    }
                });
            })?;
        Ok(TestCatalog {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs until the process is killed (the `deriva-test-catalog` binary).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.state.base_url.clone()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The accepted bearer token.
    pub fn token(&self) -> &str {
        &self.state.options.token
    }

    /// Queues a fault.
    pub fn add_fault(&self, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
    }

    /// Removes every queued fault.
    pub fn clear_faults(&self) {
        self.state
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The requests received so far.
    pub fn log(&self) -> Vec<LoggedRequest> {
        self.state
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.state
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Rows of an ERMrest entity path such as `demo:Execution_Image_Glaucoma/Execution=10-0001`,
    /// read directly from storage (for test assertions, without HTTP).
    pub fn rows(&self, entity_path: &str) -> Result<Vec<Map<String, Json>>, String> {
        let path = urlpath::parse_data_path(entity_path, false)?;
        let store = self.state.lock_store();
        store
            .select(&path, None, None)
            .map(|(_, r)| r)
            .map_err(|e| e.message)
    }

    /// Stores a Hatrac object directly (for benchmarks and tests); returns its versioned URL path.
    pub fn put_object(&self, name: &str, bytes: &[u8]) -> Result<String, String> {
        let mut store = self.state.lock_store();
        let v = store
            .put_object(name, bytes, None, None)
            .map_err(|e| e.message)?;
        Ok(format!("{}:{v}", http::encode_hatrac_path(name)))
    }

    /// Inserts rows directly as the owner with the given RIDs (for benchmarks and tests).
    /// They join the seed: like seeded rows, they are visible at every snapshot.
    pub fn insert_rows(&self, table: &str, rows: &[Json]) -> Result<usize, String> {
        let mut store = self.state.lock_store();
        let who = store::Identity {
            id: "seed".into(),
            owner: true,
        };
        store
            .insert(table, rows, &Default::default(), &who, true)
            .map(|r| r.len())
            .map_err(|e| e.message)
    }
}

impl Drop for TestCatalog {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
