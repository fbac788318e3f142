//! Materializing a holey bag: fetching every `fetch.txt` file that is missing or wrong.
//!
//! Every entry of `fetch.txt` is untrusted (a bag may come from anywhere), so:
//!
//! - its URL becomes an [`AllowedUrl`] before anything is fetched — one refused URL refuses
//!   the whole run at once, before any connection; requests then go through
//!   [`Transport::start`](crate::transport), which follows same-origin redirects only and
//!   sends the catalog credential to the catalog's origin only;
//! - its PATH went through bag-core's path-safety check when `fetch.txt` was parsed;
//! - its LENGTH bounds the download: reading stops at the first byte past it
//!   ([`Error::LengthExceeded`]), and a shorter answer is [`Error::LengthMismatch`], whether
//!   or not `manifest-md5.txt` lists a digest (which is then checked too);
//! - the timeouts are the caller's [`Timeouts`]: a stall ends with [`Error::Timeout`] naming
//!   the URL, while a slow but steady transfer is never cut off.
//!
//! Bytes are written to a partial file under `<bag>/`[`PARTIAL_DIR`], outside the payload
//! (`data/`), named after the URL and path, and renamed into place only once length and
//! digest match. A run that is killed leaves the partial file there; the next run resumes it
//! with a `Range` request (falling back to the whole file when the server ignores the range),
//! removes partial files no entry needs any more, and removes the `.NAME.part-UUID` files
//! that earlier versions of this client left next to the payload files. The partial
//! directory is removed when a run leaves it empty.
//!
//! ## Speed and durability
//!
//! Per file the async side only talks HTTP; the disk work runs on blocking threads in few
//! steps: one that creates the destination's folder and opens the partial file (a few files
//! ahead of the downloads, `OPEN_AHEAD`); one per
//! `WRITE_BLOCK` of body (or per pause of the network), which also feeds the md5; and a
//! finishing task that writes the last piece, checks LENGTH and md5, syncs the file and
//! renames it — while the next download already runs. At most `FINISHING_AT_ONCE` files
//! are finishing at once, and a run returns only once all have finished. Every file is still
//! synced before its rename, so a crash never leaves a file in place whose bytes were lost; a
//! crash before a rename reached the disk leaves the complete partial file, which the next
//! run checks (length and md5) and renames without fetching it again.

use std::collections::{BTreeSet, HashMap};
use std::fs::TryLockError;
use std::io::{Read, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use deriva_bag_format::bagit::paths::safe_join;
use deriva_bag_format::bagit::{Algorithm, BagItFiles};
use futures_util::{FutureExt, StreamExt};
use md5::Digest;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_RANGE, RANGE};
use reqwest::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client::DerivaML;
use crate::error::{Error, Result};
use crate::transport::{RetryPolicy, Timeouts, Transport};
use crate::urls::AllowedUrl;

/// Default number of concurrent asset downloads (`DatasetSpec.fetch_concurrency` in the
/// reference).
pub const DEFAULT_PARALLELISM: usize = 8;

/// The directory under the bag root that holds partial downloads (never inside `data/`).
pub const PARTIAL_DIR: &str = ".deriva-partial";

/// Body pieces are gathered up to this size before one write, unless the network pauses
/// first.
const WRITE_BLOCK: usize = 256 * 1024;

/// Downloaded files that may be checked, synced and renamed at once in the background.
const FINISHING_AT_ONCE: usize = 32;

/// Files checked and opened ahead of the downloads (beyond the parallelism).
const OPEN_AHEAD: usize = 8;

/// What [`DerivaML::materialize`] did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MaterializeReport {
    /// Files downloaded (completely or the rest of a partial file).
    pub fetched: usize,
    /// Files already present with the right length and md5.
    pub already_present: usize,
    /// Bytes downloaded by this run.
    pub bytes: u64,
    /// Fetched files that continued a partial file left by an interrupted run.
    pub resumed: usize,
}

/// One file to fetch, checked: a `fetch.txt` entry, or an asset for the live dataset's cache.
pub(crate) struct Job {
    pub url: AllowedUrl,
    /// Bag- or cache-relative path (for messages).
    pub rel: String,
    pub dest: PathBuf,
    /// LENGTH, when not `-`.
    pub length: Option<u64>,
    /// Hex md5 from `manifest-md5.txt`, when listed.
    pub md5: Option<String>,
}

impl Job {
    /// The partial file's name: stable across runs for the same URL and path, so that a
    /// re-run resumes it, and different when `fetch.txt` changes the URL.
    fn partial_name(&self) -> String {
        let key = sha2::Sha256::digest(format!("{}\n{}", self.url, self.rel).as_bytes());
        format!("{}.part", &hex::encode(key)[..32])
    }
}

/// The partial directory of one bag, or of a cache that several runs share.
struct Partials {
    dir: PathBuf,
    /// Shared by concurrent runs (the live dataset's asset cache): nothing is swept and the
    /// directory stays, since another run may be writing in it.
    shared: bool,
}

impl Partials {
    /// `<root>/.deriva-partial` of a directory that several runs and processes fill at once:
    /// created if absent, never swept (a run cannot tell another's wanted partial files from
    /// stale ones; each is resumed by the next fetch of its file).
    fn shared(root: &Path) -> Result<Partials> {
        let dir = root.join(PARTIAL_DIR);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if !m.is_dir() => Err(Error::UnsafePath {
                path: PARTIAL_DIR.to_string(),
                source_file: root.to_path_buf(),
            }),
            Ok(_) => Ok(Partials { dir, shared: true }),
            Err(_) => match std::fs::create_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(Error::io(&dir, e)),
                _ => Ok(Partials { dir, shared: true }),
            },
        }
    }

    /// Checks `<bag>/.deriva-partial` and clears what no job needs: partial files of entries
    /// no longer listed (unless another process holds them) and the `.NAME.part-<32 hex>`
    /// files older versions left next to the payload files.
    fn prepare(bag_dir: &Path, jobs: &[Job]) -> Result<Partials> {
        let dir = bag_dir.join(PARTIAL_DIR);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if !m.is_dir() => {
                // A bag could plant a symlink here to make us write elsewhere.
                return Err(Error::UnsafePath {
                    path: PARTIAL_DIR.to_string(),
                    source_file: bag_dir.to_path_buf(),
                });
            }
            Ok(_) => {
                let wanted: BTreeSet<String> = jobs.iter().map(Job::partial_name).collect();
                let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !wanted.contains(&name) {
                        remove_unless_locked(&e.path());
                    }
                }
            }
            Err(_) => match std::fs::create_dir(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::io(&dir, e))
                }
                _ => {}
            },
        }
        let parents: BTreeSet<&Path> = jobs.iter().filter_map(|j| j.dest.parent()).collect();
        let names: BTreeSet<String> = jobs
            .iter()
            .filter_map(|j| j.dest.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if is_legacy_part(&name, &names) && e.path().is_file() {
                    tracing::info!(path = %e.path().display(), "removing a partial file an interrupted run left in the payload");
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(Partials { dir, shared: false })
    }

    /// Opens (creating) the partial file `name` in `dir`, locked for this process. If another
    /// process holds it, a fresh uniquely named file is used instead (no resume).
    fn open(dir: &Path, name: &str) -> Result<(std::fs::File, PathBuf)> {
        let path = dir.join(name);
        let file = open_rw(&path)?;
        match file.try_lock() {
            Ok(()) => Ok((file, path)),
            Err(TryLockError::WouldBlock) => {
                let path = dir.join(format!("{}-{name}", uuid::Uuid::new_v4().simple()));
                let file = open_rw(&path)?;
                file.try_lock()
                    .map_err(|e| Error::io(&path, std::io::Error::other(e.to_string())))?;
                Ok((file, path))
            }
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// Removes the partial directory if this run left it empty (a shared one stays).
    fn finish(&self) {
        if !self.shared {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

fn open_rw(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

fn remove_unless_locked(path: &Path) {
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) else {
        return;
    };
    if file.try_lock().is_ok() {
        tracing::info!(path = %path.display(), "removing a partial file no fetch.txt entry needs");
        let _ = std::fs::remove_file(path);
    }
}

/// `.NAME.part-<32 hex>` for a NAME this bag fetches: what earlier versions wrote.
fn is_legacy_part(file_name: &str, fetched_names: &BTreeSet<String>) -> bool {
    let Some(rest) = file_name.strip_prefix('.') else {
        return false;
    };
    let Some((name, uuid)) = rest.rsplit_once(".part-") else {
        return false;
    };
    uuid.len() == 32 && uuid.bytes().all(|b| b.is_ascii_hexdigit()) && fetched_names.contains(name)
}

impl DerivaML {
    /// Fetches every `fetch.txt` file of `bag_dir` that is missing or wrong, `parallelism` at
    /// a time, with the connection's timeouts (see [`DerivaML::materialize_with`]).
    pub async fn materialize(
        &self,
        bag_dir: &Path,
        parallelism: usize,
    ) -> Result<MaterializeReport> {
        self.materialize_with(bag_dir, parallelism, self.transport().timeouts())
            .await
    }

    /// Materializes `bag_dir`. Every `fetch.txt` URL must be an [`AllowedUrl`] (one refused
    /// URL fetches nothing); redirects are followed on the same origin only and the
    /// credential goes to the catalog's origin only. Each file is streamed to a partial file
    /// under `<bag>/`[`PARTIAL_DIR`] (outside `data/`), reading stops past its `fetch.txt`
    /// LENGTH, and it is renamed into place once LENGTH and the `manifest-md5.txt` digest
    /// (where listed) match; a file already present with the right length and digest is not
    /// fetched again. `timeouts` apply to every request: a stall ends with
    /// [`Error::Timeout`] naming the URL. Transport errors, timeouts and 5xx are
    /// retried with backoff, resuming with `Range`; refusals and length or checksum
    /// mismatches are not, and name the URL and the file.
    pub async fn materialize_with(
        &self,
        bag_dir: &Path,
        parallelism: usize,
        timeouts: Timeouts,
    ) -> Result<MaterializeReport> {
        let jobs = read_jobs(bag_dir)?;
        let transport = self.transport().with_timeouts(timeouts)?;
        let partials = Partials::prepare(bag_dir, &jobs)?;
        run_jobs(&transport, bag_dir, partials, jobs, parallelism).await
    }
}

/// Fetches `jobs` into `root`, a directory that concurrent runs share (the live dataset's
/// asset cache), with the same checks as a bag's materialization: LENGTH bound, md5, partial
/// files under `<root>/`[`PARTIAL_DIR`] resumed with `Range` and renamed into place only when
/// whole. Files already in place with the right length and md5 are not fetched again.
pub(crate) async fn fetch_shared(
    transport: &Transport,
    root: &Path,
    jobs: Vec<Job>,
    parallelism: usize,
) -> Result<MaterializeReport> {
    let partials = Partials::shared(root)?;
    run_jobs(transport, root, partials, jobs, parallelism).await
}

/// Materializes `bag_dir` without a catalog — the `bdbag --resolve-fetch all` use case: the
/// same checks as [`DerivaML::materialize_with`] (every URL an [`AllowedUrl`], LENGTH bound,
/// md5, partial files resumed with `Range`), but no credential is sent anywhere.
///
/// ```no_run
/// # async fn run() -> deriva_catalog_client::Result<()> {
/// use deriva_catalog_client::{materialize_bag, Timeouts};
///
/// let report = materialize_bag("Dataset_1-D000".as_ref(), 8, Timeouts::default()).await?;
/// println!("{} files, {} bytes fetched", report.fetched, report.bytes);
/// # Ok(())
/// # }
/// ```
pub async fn materialize_bag(
    bag_dir: &Path,
    parallelism: usize,
    timeouts: Timeouts,
) -> Result<MaterializeReport> {
    let jobs = read_jobs(bag_dir)?;
    let Some(first) = jobs.first() else {
        return run_jobs_without_transport(bag_dir, jobs);
    };
    // The base only scopes a credential, and there is none.
    let transport = Transport::new(&first.url, None, RetryPolicy::default(), timeouts)?;
    let partials = Partials::prepare(bag_dir, &jobs)?;
    run_jobs(&transport, bag_dir, partials, jobs, parallelism).await
}

/// The checked `fetch.txt` entries of `bag_dir`. Every URL is checked here, before the first
/// request: a bag with one refused URL fetches nothing.
fn read_jobs(bag_dir: &Path) -> Result<Vec<Job>> {
    let files = BagItFiles::read(bag_dir)?;
    let md5s: HashMap<String, String> = files
        .manifest(Algorithm::Md5)
        .map(|m| {
            m.entries
                .iter()
                .map(|e| (e.path.clone(), e.digest.clone()))
                .collect()
        })
        .unwrap_or_default();
    let fetch_txt = bag_dir.join("fetch.txt");
    let bag_root = files.bag_root();
    let mut jobs = Vec::with_capacity(files.fetch.len());
    for entry in &files.fetch {
        jobs.push(Job {
            url: AllowedUrl::parse(&entry.url)?,
            rel: entry.path.clone(),
            // Never through a directory that links out of the bag.
            dest: bag_root.writable(&entry.path, &fetch_txt)?,
            length: entry.length,
            md5: md5s.get(&entry.path).cloned(),
        });
    }
    Ok(jobs)
}

/// A bag with an empty `fetch.txt`: only the partial directory is tidied.
fn run_jobs_without_transport(bag_dir: &Path, jobs: Vec<Job>) -> Result<MaterializeReport> {
    Partials::prepare(bag_dir, &jobs)?.finish();
    Ok(MaterializeReport::default())
}

/// Fetches `jobs`, `parallelism` at a time, through `partials`.
async fn run_jobs(
    transport: &Transport,
    bag_dir: &Path,
    partials: Partials,
    jobs: Vec<Job>,
    parallelism: usize,
) -> Result<MaterializeReport> {
    let (partials, finishing) = (&partials, &Arc::new(Semaphore::new(FINISHING_AT_ONCE)));
    let parallelism = parallelism.max(1);
    let results: Vec<Result<Fetched>> = futures_util::stream::iter(jobs)
        .map(move |job| prepare_one(partials, job))
        .buffer_unordered(parallelism + OPEN_AHEAD)
        .map(move |prepared| async move {
            match prepared? {
                Prepared::Present => Ok(Fetched::Present),
                Prepared::Open(open) => {
                    let (job, slot) = *open;
                    fetch_one(transport, job, slot, finishing).await
                }
            }
        })
        .buffer_unordered(parallelism)
        .collect()
        .await;
    // Every finishing task is awaited, failed runs included: nothing is renamed after return.
    let mut report = MaterializeReport::default();
    let mut first_error = None;
    for r in results {
        match r {
            Ok(Fetched::Present) => report.already_present += 1,
            Ok(Fetched::Downloaded {
                bytes,
                resumed,
                task,
            }) => match task.await {
                Ok(Ok(())) => {
                    report.fetched += 1;
                    report.bytes += bytes;
                    report.resumed += usize::from(resumed);
                }
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(Error::io(bag_dir, std::io::Error::other(e)));
                }
            },
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    partials.finish();
    if let Some(e) = first_error {
        return Err(e);
    }
    if partials.shared {
        tracing::debug!(cache = %bag_dir.display(), ?report, "fetched into the cache");
    } else {
        tracing::info!(bag = %bag_dir.display(), ?report, "materialized");
    }
    Ok(report)
}

/// What [`prepare_one`] found.
enum Prepared {
    /// Already in place with the right length and md5.
    Present,
    /// To fetch, into this partial file.
    Open(Box<(Job, Slot)>),
}

/// Checks whether `job`'s file is already in place and, if not, creates its folder and
/// opens its partial file. Runs up to `OPEN_AHEAD` files ahead of the downloads, so that
/// this disk work overlaps them.
async fn prepare_one(partials: &Partials, job: Job) -> Result<Prepared> {
    if job.dest.is_file() && file_matches(&job.dest, job.length, job.md5.as_deref()).await? {
        // A partial file an interrupted run left for it is of no use any more.
        remove_unless_locked(&partials.dir.join(job.partial_name()));
        return Ok(Prepared::Present);
    }
    let slot = Slot::open(partials, &job).await?;
    Ok(Prepared::Open(Box::new((job, slot))))
}

/// Fetches one file, retrying what may be transient; the partial file survives a retryable
/// failure (the next attempt or run resumes it) and is removed on any other. A downloaded
/// file is checked, synced and renamed by a [`Finishing`] task, so that the next download
/// need not wait for the disk.
async fn fetch_one(
    transport: &Transport,
    job: Job,
    mut slot: Slot,
    finishing: &Arc<Semaphore>,
) -> Result<Fetched> {
    let retry = transport.retry;
    let mut attempt = 0;
    let mut bytes = 0;
    loop {
        match download_into(transport, &job, &mut slot, &mut bytes).await {
            Ok((from, restart, rest)) => {
                let permit = finishing
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::io(&slot.path, std::io::Error::other(e)))?;
                let task = slot.finish(job, restart, rest, permit)?;
                return Ok(Fetched::Downloaded {
                    bytes,
                    resumed: from > 0,
                    task,
                });
            }
            Err(e) if e.is_retryable() && attempt + 1 < retry.attempts => {
                tracing::warn!(error = %e, url = %job.url, attempt, "retrying asset download");
                tokio::time::sleep(retry.delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => {
                if !e.is_retryable() {
                    slot.discard().await;
                }
                return Err(e);
            }
        }
    }
}

/// What [`fetch_one`] did.
enum Fetched {
    Present,
    Downloaded {
        bytes: u64,
        resumed: bool,
        /// Checks length and md5, syncs and renames the file into place.
        task: Finishing,
    },
}

/// The background task that finishes one downloaded file.
type Finishing = tokio::task::JoinHandle<Result<()>>;

/// A partial file, locked for this process, with the md5 of the bytes it holds. Its file
/// operations run on tokio's blocking threads, several at once ([`Slot::run`]).
struct Sink {
    file: std::fs::File,
    /// Bytes in the file.
    len: u64,
    /// md5 of those bytes.
    hasher: md5::Md5,
}

impl Sink {
    /// Keeps the first `from` bytes of the file (hashing them again) and writes after them.
    fn restart_at(&mut self, from: u64) -> std::io::Result<()> {
        use std::io::Seek;
        self.hasher = md5::Md5::new();
        if from == 0 && self.len == 0 {
            // A new, empty partial file: nothing to cut or hash, and writing is at its start.
            return Ok(());
        }
        self.file.set_len(from)?;
        self.file.seek(SeekFrom::Start(0))?;
        let mut left = from;
        let mut buf = vec![0u8; WRITE_BLOCK.min(usize::try_from(from).unwrap_or(WRITE_BLOCK))];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = self.file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            left -= n as u64;
        }
        self.file.seek(SeekFrom::Start(from))?;
        self.len = from;
        Ok(())
    }

    /// Appends `pieces`.
    fn write(&mut self, pieces: &[Bytes]) -> std::io::Result<()> {
        use std::io::Write;
        for piece in pieces {
            self.file.write_all(piece)?;
            self.hasher.update(piece);
            self.len += piece.len() as u64;
        }
        Ok(())
    }

    fn md5(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// Where a [`Sink`] lives between blocking operations.
struct Slot {
    sink: Option<Sink>,
    path: PathBuf,
}

impl Slot {
    /// Creates the destination's folder and opens (resuming) the partial file of `job`, in
    /// one blocking operation.
    async fn open(partials: &Partials, job: &Job) -> Result<Slot> {
        let parent = job.dest.parent().map(Path::to_path_buf);
        let (dir, name) = (partials.dir.clone(), job.partial_name());
        let opened =
            tokio::task::spawn_blocking(move || -> Result<(std::fs::File, PathBuf, u64)> {
                if let Some(parent) = parent {
                    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
                }
                let (file, path) = Partials::open(&dir, &name)?;
                let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
                Ok((file, path, len))
            })
            .await
            .map_err(|e| Error::io(&job.dest, std::io::Error::other(e)))?;
        let (file, path, len) = opened?;
        Ok(Slot {
            sink: Some(Sink {
                file,
                len,
                // Valid once `restart_at` has run; every download starts with it.
                hasher: md5::Md5::new(),
            }),
            path,
        })
    }

    /// Bytes in the partial file.
    fn len(&self) -> u64 {
        self.sink.as_ref().map_or(0, |s| s.len)
    }

    /// Runs `op` on the sink in a blocking thread.
    async fn run<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut Sink) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let Some(mut sink) = self.sink.take() else {
            return Err(Error::io(
                &self.path,
                std::io::Error::other("partial file lost"),
            ));
        };
        let (sink, out) = tokio::task::spawn_blocking(move || {
            let out = op(&mut sink);
            (sink, out)
        })
        .await
        .map_err(|e| Error::io(&self.path, std::io::Error::other(e)))?;
        self.sink = Some(sink);
        out.map_err(|e| Error::io(&self.path, e))
    }

    /// Closes and removes the partial file.
    async fn discard(mut self) {
        self.sink.take();
        let _ = tokio::fs::remove_file(&self.path).await;
    }

    /// Starts the task that writes `rest` (after truncating the file to `restart` bytes,
    /// when given), checks the partial file's length and md5 against
    /// `job`, syncs it and renames it onto the destination (same file system: both are
    /// inside the bag). A mismatch removes the partial file. `permit` bounds how many such
    /// tasks run at once.
    fn finish(
        mut self,
        job: Job,
        restart: Option<u64>,
        rest: Vec<Bytes>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Finishing> {
        let Some(mut sink) = self.sink.take() else {
            return Err(Error::io(
                &self.path,
                std::io::Error::other("partial file lost"),
            ));
        };
        let path = self.path;
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let io = |e| Error::io(&path, e);
            if let Some(from) = restart {
                sink.restart_at(from).map_err(io)?;
            }
            sink.write(&rest).map_err(io)?;
            let mismatch = if let Some(expected) = job.length.filter(|l| sink.len != *l) {
                Some(Error::LengthMismatch {
                    url: job.url.to_string(),
                    path: job.rel.clone(),
                    expected,
                    received: sink.len,
                })
            } else {
                let actual = sink.md5();
                job.md5
                    .as_deref()
                    .filter(|expected| !expected.eq_ignore_ascii_case(&actual))
                    .map(|expected| Error::ChecksumMismatch {
                        url: job.url.to_string(),
                        path: job.rel.clone(),
                        expected: expected.to_string(),
                        actual,
                    })
            };
            if let Some(e) = mismatch {
                drop(sink);
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            sink.file.sync_all().map_err(io)?;
            std::fs::rename(&path, &job.dest).map_err(|e| Error::io(&job.dest, e))
        }))
    }
}

/// One attempt: continues the partial file from its current length (a `Range` request)
/// and stops reading past LENGTH. Returns the offset it resumed from, the length to truncate
/// the partial file to when nothing was written yet, and the last pieces of the body, not
/// yet written (the [`Finishing`] task writes them); adds the bytes received to `bytes`.
///
/// Pieces are gathered and written [`WRITE_BLOCK`] at a time, or as soon as the network
/// pauses, so that a run killed while a download stalls leaves what arrived in the partial
/// file; after a retryable error what arrived is written before the error is returned.
async fn download_into(
    transport: &Transport,
    job: &Job,
    slot: &mut Slot,
    bytes: &mut u64,
) -> Result<(u64, Option<u64>, Vec<Bytes>)> {
    let mut have = slot.len();
    if job.length.is_some_and(|l| have > l) {
        have = 0;
    }
    if have > 0 && job.length == Some(have) {
        // Killed after the last byte, before the rename: check what is there.
        let md5 = slot
            .run(move |s| {
                s.restart_at(have)?;
                Ok(s.md5())
            })
            .await?;
        if job
            .md5
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(&md5))
        {
            return Ok((have, None, Vec::new()));
        }
        have = 0;
    }
    let mut headers = HeaderMap::new();
    if have > 0 {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes={have}-")) {
            headers.insert(RANGE, v);
        }
    }
    let (mut resp, mut url) = transport
        .start(Method::GET, job.url.clone(), &headers, None)
        .await?;
    if have > 0 && resp.status().as_u16() == 416 {
        // The server cannot continue this partial file: start over.
        have = 0;
        (resp, url) = transport
            .start(Method::GET, job.url.clone(), &HeaderMap::new(), None)
            .await?;
    }
    let status = resp.status().as_u16();
    if status == 206 && have > 0 {
        let start = resp
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(content_range_start);
        if start != Some(have) {
            return Err(Error::Protocol {
                url: job.url.to_string(),
                reason: format!(
                    "asked for bytes {have}- and got a Content-Range starting at {start:?}"
                ),
            });
        }
    } else {
        // 200 (the server ignored the range, or none was asked): the whole file.
        have = 0;
    }
    let resp = transport.check_status(&Method::GET, &url, resp).await?;
    if status != 200 && status != 206 {
        return Err(Error::Protocol {
            url: job.url.to_string(),
            reason: format!("unexpected status {status} for an asset"),
        });
    }
    // The first write truncates the partial file to `have` and hashes what it keeps.
    let mut restart = Some(have);
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0;
    let mut total = have;
    let mut body = transport.body(&Method::GET, &url, resp);
    let mut next = body.next().await;
    loop {
        let piece = match next {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(e) => {
                if e.is_retryable() {
                    write_pending(slot, restart.take(), std::mem::take(&mut pending)).await?;
                }
                return Err(e);
            }
        };
        let received = total + piece.len() as u64;
        if let Some(expected) = job.length.filter(|l| received > *l) {
            return Err(Error::LengthExceeded {
                url: job.url.to_string(),
                path: job.rel.clone(),
                expected,
                received,
            });
        }
        *bytes += piece.len() as u64;
        total = received;
        pending_len += piece.len();
        pending.push(piece);
        next = match body.next().now_or_never() {
            Some(ready) if pending_len < WRITE_BLOCK => ready,
            ready => {
                // A full block, or the network paused: write what has arrived.
                write_pending(slot, restart.take(), std::mem::take(&mut pending)).await?;
                pending_len = 0;
                match ready {
                    Some(ready) => ready,
                    None => body.next().await,
                }
            }
        };
    }
    if let Some(expected) = job.length.filter(|l| total != *l) {
        return Err(Error::LengthMismatch {
            url: job.url.to_string(),
            path: job.rel.clone(),
            expected,
            received: total,
        });
    }
    Ok((have, restart, pending))
}

/// Writes `pieces` to the partial file in one blocking operation (after truncating it to
/// `restart` bytes, when given).
async fn write_pending(slot: &mut Slot, restart: Option<u64>, pieces: Vec<Bytes>) -> Result<()> {
    slot.run(move |s| {
        if let Some(from) = restart {
            s.restart_at(from)?;
        }
        s.write(&pieces)
    })
    .await
}

/// `bytes START-END/TOTAL` → START.
fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes ")?;
    range.split(['-', '/']).next()?.trim().parse().ok()
}

/// Whether `path` has the expected length and (where listed) md5, hashed in a blocking
/// thread without reading the whole file into memory.
async fn file_matches(path: &Path, length: Option<u64>, md5: Option<&str>) -> Result<bool> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if length.is_some_and(|l| l != meta.len()) {
        return Ok(false);
    }
    let Some(expected) = md5.map(str::to_string) else {
        return Ok(true);
    };
    let owned = path.to_path_buf();
    let actual = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = md5::Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(hex::encode(hasher.finalize()));
            }
            hasher.update(&buf[..n]);
        }
    })
    .await
    .map_err(|e| Error::io(path, std::io::Error::other(e)))?
    .map_err(|e| Error::io(path, e))?;
    Ok(actual.eq_ignore_ascii_case(&expected))
}

/// Whether every `fetch.txt` file of the bag is on disk with its declared length.
pub fn fully_materialized(bag_dir: &Path) -> Result<bool> {
    if !bag_dir.is_dir() {
        return Ok(false);
    }
    let files = BagItFiles::read(bag_dir)?;
    let fetch_txt = bag_dir.join("fetch.txt");
    for e in &files.fetch {
        let p = safe_join(bag_dir, &e.path, &fetch_txt)?;
        match std::fs::metadata(&p) {
            Ok(m) if e.length.is_none_or(|l| l == m.len()) => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use deriva_bag_format::bagit::write::{BagWriter, RemoteFile};

    use super::*;

    const CONTENT: &[u8] = b"the asset's bytes, as the server has them\n";

    /// A loopback server answering every request with `CONTENT`; counts the requests.
    async fn counting_server() -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = vec![0u8; 4096];
                let _ = stream.read(&mut head).await;
                seen.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    CONTENT.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.write_all(CONTENT).await;
            }
        });
        (url, count)
    }

    /// A holey bag with `data/asset/a.bin` fetched from `url`; returns its partial file's
    /// path.
    fn holey_bag(bag: &Path, url: &str) -> PathBuf {
        std::fs::create_dir_all(bag.join("data")).unwrap();
        std::fs::write(bag.join("data/README.txt"), "test bag\n").unwrap();
        BagWriter::new()
            .remote_files(vec![RemoteFile {
                url: format!("{url}/a.bin"),
                length: CONTENT.len() as u64,
                path: "data/asset/a.bin".into(),
                md5: hex::encode(md5::Md5::digest(CONTENT)),
                sha256: None,
            }])
            .write(bag)
            .unwrap();
        let jobs = read_jobs(bag).unwrap();
        bag.join(PARTIAL_DIR).join(jobs[0].partial_name())
    }

    /// A crash after the last byte but before the rename reached the disk leaves a complete
    /// partial file: the next run checks it and renames it without fetching it again.
    #[tokio::test]
    async fn a_complete_partial_file_left_by_a_crash_is_checked_and_renamed_without_a_request() {
        let (url, requests) = counting_server().await;
        let dir = tempfile::tempdir().unwrap();
        let bag = dir.path().join("bag");
        let partial = holey_bag(&bag, &url);
        std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
        std::fs::write(&partial, CONTENT).unwrap();
        let report = materialize_bag(&bag, 1, Timeouts::default()).await.unwrap();
        assert_eq!(
            report,
            MaterializeReport {
                fetched: 1,
                already_present: 0,
                bytes: 0,
                resumed: 1
            }
        );
        assert_eq!(requests.load(Ordering::SeqCst), 0);
        assert_eq!(
            std::fs::read(bag.join("data/asset/a.bin")).unwrap(),
            CONTENT
        );
        assert!(!bag.join(PARTIAL_DIR).exists());
    }

    /// The same, with bytes that do not match the md5 (torn by the crash): fetched afresh.
    #[tokio::test]
    async fn a_complete_partial_file_with_wrong_bytes_is_fetched_again() {
        let (url, requests) = counting_server().await;
        let dir = tempfile::tempdir().unwrap();
        let bag = dir.path().join("bag");
        let partial = holey_bag(&bag, &url);
        std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
        std::fs::write(&partial, vec![0u8; CONTENT.len()]).unwrap();
        let report = materialize_bag(&bag, 1, Timeouts::default()).await.unwrap();
        assert_eq!(
            report,
            MaterializeReport {
                fetched: 1,
                already_present: 0,
                bytes: CONTENT.len() as u64,
                resumed: 0
            }
        );
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        assert_eq!(
            std::fs::read(bag.join("data/asset/a.bin")).unwrap(),
            CONTENT
        );
        assert!(!bag.join(PARTIAL_DIR).exists());
    }

    #[test]
    fn only_our_own_legacy_part_files_are_recognized() {
        let names: BTreeSet<String> = ["retina_004.png".to_string()].into();
        let uuid = "0123456789abcdef0123456789abcdef";
        assert!(is_legacy_part(
            &format!(".retina_004.png.part-{uuid}"),
            &names
        ));
        assert!(!is_legacy_part(&format!(".other.png.part-{uuid}"), &names));
        assert!(!is_legacy_part(".retina_004.png.part-mine", &names));
        assert!(!is_legacy_part(
            &format!("retina_004.png.part-{uuid}"),
            &names
        ));
    }

    #[test]
    fn content_range_start_reads_the_first_byte_position() {
        assert_eq!(content_range_start("bytes 100-1999/2000"), Some(100));
        assert_eq!(content_range_start("bytes */2000"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }

    /// A bag directory is input too: a `data/` subdirectory that is a symbolic link out of
    /// the bag must not carry a fetched file (or its partial) outside the bag.
    #[tokio::test]
    async fn a_fetch_path_through_a_directory_linking_out_of_the_bag_is_refused_before_any_request()
    {
        let (url, requests) = counting_server().await;
        let dir = tempfile::tempdir().unwrap();
        let bag = dir.path().join("bag");
        holey_bag(&bag, &url);
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, bag.join("data/asset")).unwrap();
        let err = materialize_bag(&bag, 1, Timeouts::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Bag(e) if matches!(
                    &**e,
                    deriva_bag_format::Error::LinkEscapesBag { path, .. }
                        if path == &bag.join("data/asset")
                )
            ),
            "{err:?}"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 0);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
