//! The bridge from the synchronous [`DatasetLike`](deriva_bag_features::DatasetLike) methods
//! to the async client: one process-wide tokio runtime of this crate's own.
//!
//! A live dataset's reads always run on this runtime, never on the caller's: a blocking wait
//! is then safe from any thread, inside a runtime or not (tokio's `block_on` panics inside a
//! runtime, and a current-thread runtime blocked on its own future would never finish it).
//! The runtime is started on first use and lives as long as the process, so it is never
//! dropped inside an async context either. Its connections belong to an HTTP client of the
//! dataset's own ([`Transport::detached`](crate::transport::Transport)), never to the
//! caller's pool.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

use crate::error::{Error, Result};

/// Worker threads of the bridge runtime: requests are I/O-bound and file work goes to its
/// blocking pool, so two are enough for the bounded asset parallelism.
const WORKERS: usize = 2;

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .thread_name("deriva-live-dataset")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Validation(format!("cannot start the live dataset's runtime: {e}")))
}

fn lost() -> Error {
    Error::Validation("a live dataset read ended without an answer (its task panicked)".into())
}

/// Runs `work` on the bridge runtime and blocks the calling thread until it is done. Safe on
/// any thread, including a tokio worker (which it then blocks: in async code, prefer
/// `spawn_blocking` around the call, or the async [`run`]).
pub(crate) fn block_on<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv().map_err(|_| lost())?
}

/// Runs `work` on the bridge runtime and awaits it from any runtime.
pub(crate) async fn run<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    runtime()?.spawn(work).await.map_err(|_| lost())?
}
