//! `cargo xtask bench`: time `DatasetBag` on a generated bag.
//!
//! Measured (the performance targets in brackets): cold open, i.e. index build in a fresh cache
//! [≥ 30× deriva-ml]; warm open [≤ 20 ms]; `list_dataset_members(recurse)`;
//! `feature_values("Image", "Glaucoma")` unselected, newest and majority vote; the
//! dataset report (`bag.report`); full validation throughput; peak RSS. Medians of five runs except the cold open.
//! Then the same operations as whole `deriva-bag` processes, as a user runs them (stdout to
//! `/dev/null`), each with its wall time and its own peak RSS (target: ≤ 256 MiB at 2 M
//! images for open, members, feature values and restructure): cold open (index build into
//! an empty cache), warm `info`, `members --recurse --json`, `feature-values --selector
//! newest --json` and `restructure` into a fresh directory (the kernel's caches dropped
//! first where the bench may drop them), then the `sync` of what it left to write back.
//! `--loaders` instead runs the adapters' image-loading throughput example.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deriva_bag_core::bagit::ValidationMode;
use deriva_bag_core::features::Selector;
use deriva_bag_core::fixtures::{self, FixtureSpec};
use deriva_bag_core::{DatasetBag, OpenOptions};
use serde_json::json;

const RUNS: usize = 5;
/// `cargo xtask bench`'s default bag size (the 20k-image bag the performance targets are set on).
const DEFAULT_IMAGES: usize = 20_000;

/// Entry point: re-executes itself in release mode when built for debug.
///
/// `processes_only` measures just the `deriva-bag` processes (after generating the bag if
/// needed): the in-process measurements hold every row, which at millions of images takes
/// longer than the processes themselves and measures nothing a user runs.
pub fn run(images: usize, json: bool, processes_only: bool) -> Result<(), String> {
    if cfg!(debug_assertions) {
        eprintln!("xtask bench: building and running the release build …");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        // The `deriva-bag` binary the process measurements run.
        let built = Command::new(&cargo)
            .args(["build", "--release", "--quiet", "-p", "deriva-bag-core"])
            .args(["--features", "cli", "--bin", "deriva-bag"])
            .current_dir(crate::workspace_root())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !built.success() {
            return Err(format!("building deriva-bag failed ({built})"));
        }
        let mut cmd = Command::new(cargo);
        cmd.args(["run", "--release", "--quiet", "-p", "xtask", "--", "bench"])
            .args(["--images", &images.to_string()])
            .current_dir(crate::workspace_root());
        if json {
            cmd.arg("--json");
        }
        if processes_only {
            cmd.arg("--processes-only");
        }
        let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        return if status.success() {
            Ok(())
        } else {
            Err(format!("release bench failed ({status})"))
        };
    }
    if processes_only {
        let (bag, generated) = bench_bag(images)?;
        println!("deriva-bag bench: {images} images, {}", bag.display());
        match generated {
            Some(d) => println!("  {:<56} {:>10.1} s", "generate bag", d.as_secs_f64()),
            None => println!("  {:<56} {:>10}", "generate bag", "reused"),
        }
        print_processes(&processes_from_helper(&bag, images)?, &load_average());
        return Ok(());
    }
    let report = measure(images)?;
    if json {
        println!("{}", report.to_json());
    } else {
        report.print_table();
    }
    Ok(())
}

/// `cargo xtask bench --loaders`: runs the `loader_throughput` example (release, both
/// adapters) on a bag of `images` 256×256 images kept under `target/bench-loaders`, with 2
/// workers, after provisioning libtorch and TensorFlow; JPEGs are decoded with libjpeg-turbo
/// (feature `libjpeg-turbo`).
pub fn run_loaders(images: usize) -> Result<(), String> {
    let dir = crate::workspace_root().join("target/bench-loaders");
    let script = format!(
        "set -euo pipefail\n. .ci/ml-libs.sh\n\
         exec \"${{CARGO:-cargo}}\" run --release --quiet -p deriva-bag-core \
         --features torch,tf,fixtures,libjpeg-turbo --example loader_throughput -- {images} 256 2 '{}'\n",
        dir.display()
    );
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(crate::workspace_root())
        .status()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("loader benchmark failed ({status})"))
    }
}

struct Report {
    images: usize,
    bag: PathBuf,
    generated: Option<Duration>,
    cold_open: Duration,
    warm_open: Duration,
    members: Duration,
    member_rows: usize,
    feature_values: Vec<(&'static str, Duration, usize)>,
    /// `bag.report(..)` on a freshly opened bag, and the median of five more.
    report_first: Duration,
    report_again: Duration,
    validation_bytes: u64,
    validation: Duration,
    peak_rss_kib: Option<u64>,
    processes: Vec<ProcessRun>,
    load_average: Option<String>,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(f: impl FnOnce() -> Result<T, String>) -> Result<(Duration, T), String> {
    let start = Instant::now();
    let value = f()?;
    Ok((start.elapsed(), value))
}

/// Median of [`RUNS`] timed runs, and the value of the last one.
fn time_median<T>(mut f: impl FnMut() -> Result<T, String>) -> Result<(Duration, T), String> {
    let mut samples = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let (elapsed, value) = time(&mut f)?;
        samples.push(elapsed);
        last = Some(value);
    }
    let value = last.ok_or("no runs")?;
    Ok((median(samples), value))
}

/// Generates the bench bag unless one with the same parameters is already there.
fn bench_bag(images: usize) -> Result<(PathBuf, Option<Duration>), String> {
    // The default size keeps `target/bench`; other sizes get their own directory so that a
    // one-off large run does not replace the bag everyone else benchmarks.
    let dir = match images {
        DEFAULT_IMAGES => crate::workspace_root().join("target/bench"),
        n => crate::workspace_root().join(format!("target/bench-{n}")),
    };
    let (bag, generated) = fixtures::generate_cached(&FixtureSpec::with_images(images), &dir)
        .map_err(|e| e.to_string())?;
    if generated.is_some() {
        // A fresh bag leaves gigabytes to write back; the first fsync measured (the index
        // cache's) would otherwise wait for all of it.
        sync_all();
    }
    Ok((bag, generated))
}

fn measure(images: usize) -> Result<Report, String> {
    let (bag_path, generated) = bench_bag(images)?;
    let cache = bag_path.parent().unwrap_or(Path::new(".")).join("cache");
    if cache.exists() {
        std::fs::remove_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    }
    let options = OpenOptions {
        cache_dir: Some(cache),
        ..OpenOptions::default()
    };
    let open = || DatasetBag::open_with(&bag_path, &options).map_err(|e| e.to_string());
    let (cold_open, bag) = time(open)?;
    let (warm_open, _) = time_median(open)?;
    let (members, member_rows) = time_median(|| {
        let members = bag
            .list_dataset_members(true, None)
            .map_err(|e| e.to_string())?;
        Ok(members.values().map(Vec::len).sum::<usize>())
    })?;
    let selectors: [(&'static str, Option<Selector>); 3] = [
        ("all", None),
        ("newest", Some(Selector::Newest)),
        ("majority", Some(Selector::MajorityVote(None))),
    ];
    let mut feature_values = Vec::new();
    for (name, selector) in &selectors {
        let (elapsed, n) = time_median(|| {
            bag.feature_values("Image", "Glaucoma", selector.as_ref())
                .map(|records| records.len())
                .map_err(|e| e.to_string())
        })?;
        feature_values.push((*name, elapsed, n));
    }
    // The dataset report on a freshly opened bag (its index warm, nothing else computed yet),
    // then the median of five more on that bag.
    let report_options = deriva_bag_core::report::ReportOptions::default();
    let fresh = open()?;
    let (report_first, _) = time(|| fresh.report(&report_options).map_err(|e| e.to_string()))?;
    let (report_again, _) =
        time_median(|| fresh.report(&report_options).map_err(|e| e.to_string()))?;
    let validation_bytes = bag
        .bagit()
        .map_err(|e| e.to_string())?
        .payload_oxum()
        .map_or(0, |(bytes, _)| bytes);
    let (validation, report) = time(|| {
        bag.validate(ValidationMode::Full)
            .map_err(|e| e.to_string())
    })?;
    if !report.valid {
        return Err(format!("bench bag does not validate: {:?}", report.errors));
    }
    let peak_rss_kib = peak_rss_kib();
    drop(bag);
    let processes = processes_from_helper(&bag_path, images)?;
    Ok(Report {
        images,
        bag: bag_path,
        generated,
        cold_open,
        warm_open,
        members,
        member_rows,
        feature_values,
        report_first,
        report_again,
        validation_bytes,
        validation,
        peak_rss_kib,
        processes,
        load_average: load_average(),
    })
}

/// The 1-, 5- and 15-minute load averages.
fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn print_processes(processes: &[ProcessRun], load_average: &Option<String>) {
    println!(
        "deriva-bag processes (stdout to /dev/null; warm runs: median of 3, 1 above 50k images):"
    );
    for p in processes {
        match p.peak_rss_kib {
            Some(kib) => println!(
                "  {:<56} {:>10.1} ms  {:>8.1} MiB peak RSS",
                p.name,
                ms(p.wall),
                kib as f64 / 1024.0
            ),
            // Not a `deriva-bag` process (the `sync` after restructure).
            None => println!("  {:<56} {:>10.1} ms", p.name, ms(p.wall)),
        }
    }
    if let Some(load) = load_average {
        println!("  load average: {load}");
    }
}

/// One measured run: what it ran, its wall time and, for a `deriva-bag` process, its peak
/// resident set.
struct ProcessRun {
    name: &'static str,
    wall: Duration,
    peak_rss_kib: Option<u64>,
}

/// Runs [`run_processes`] in a fresh `xtask bench-processes` and reads its JSON.
///
/// Linux counts the memory a process had when it `exec`ed into its child's peak RSS, so
/// children of this process (which holds the bench bag's rows) would all report at least
/// its own peak; a fresh helper holds almost nothing.
fn processes_from_helper(bag: &Path, images: usize) -> Result<Vec<ProcessRun>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask: {e}"))?;
    let out = Command::new(exe)
        .arg("bench-processes")
        .arg(bag)
        .args(["--runs", if images > 50_000 { "1" } else { "3" }])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run xtask bench-processes: {e}"))?;
    if !out.status.success() {
        return Err(format!("xtask bench-processes failed ({})", out.status));
    }
    let runs: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bench-processes: {e}"))?;
    runs.iter()
        .map(|r| {
            let name = r["run"].as_str().ok_or("bench-processes: no run name")?;
            let name = PROCESS_RUNS
                .iter()
                .copied()
                .find(|n| *n == name)
                .ok_or_else(|| format!("bench-processes: unknown run {name}"))?;
            Ok(ProcessRun {
                name,
                wall: Duration::from_secs_f64(r["ms"].as_f64().unwrap_or(0.0) / 1000.0),
                peak_rss_kib: r["peak_rss_kib"].as_u64(),
            })
        })
        .collect()
}

/// `cargo xtask bench-processes BAG` (run by `bench`): the CLI operations on `bag` as
/// processes, printed as a JSON array of `{"run", "ms", "peak_rss_kib"}`.
pub fn run_processes(bag: &Path, runs: usize) -> Result<(), String> {
    let measured = measure_processes(bag, runs.max(1))?;
    let json: Vec<serde_json::Value> = measured
        .iter()
        .map(|p| json!({"run": p.name, "ms": ms(p.wall), "peak_rss_kib": p.peak_rss_kib}))
        .collect();
    println!("{}", serde_json::Value::Array(json));
    Ok(())
}

/// The names of the process runs, in order (a run prints one of the two restructure names).
const PROCESS_RUNS: [&str; 8] = [
    "open, cold (tables --json)",
    "open, warm (tables --json)",
    "info --json (warm)",
    "members --recurse --json",
    "feature-values Image Glaucoma --selector newest --json",
    RESTRUCTURE_COLD,
    RESTRUCTURE_AS_FOUND,
    SYNC_AFTER_RESTRUCTURE,
];

const RESTRUCTURE_COLD: &str = "restructure --json (kernel caches dropped)";
const RESTRUCTURE_AS_FOUND: &str = "restructure --json (kernel caches as found)";
const SYNC_AFTER_RESTRUCTURE: &str = "sync after restructure (its writeback)";

/// The `deriva-bag` binary next to this (release) xtask binary.
fn deriva_bag_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask: {e}"))?;
    let bin = exe.with_file_name("deriva-bag");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: cargo build --release -p deriva-bag-core --features cli",
            bin.display()
        ))
    }
}

/// Runs `deriva-bag args…` with its index cache at `cache` and stdout to `/dev/null`: wall
/// time and peak RSS (from `wait4`, so the child's own peak, whatever it did).
fn run_process(bin: &Path, cache: &Path, args: &[&str]) -> Result<(Duration, u64), String> {
    let started = Instant::now();
    let child = Command::new(bin)
        .args(args)
        .env("DERIVA_BAG_CACHE", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data that `wait4` fills in; `pid` is our own child, waited
    // for exactly once (the `Child` handle is never waited on).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if waited != pid {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("deriva-bag {args:?} failed (wait status {status})"));
    }
    // Linux reports ru_maxrss in KiB.
    Ok((wall, u64::try_from(usage.ru_maxrss).unwrap_or(0)))
}

/// Writes back every dirty page, then drops the kernel's page, dentry and inode caches:
/// `false` when this process may not (dropping them takes root).
fn drop_kernel_caches() -> bool {
    sync_all();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// Writes every dirty page back to disk (`sync(2)`).
fn sync_all() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// The CLI operations as processes: cold open once, the others the median of `runs` runs
/// (with the largest peak RSS of them).
///
/// `restructure` starts with the kernel's caches dropped where this process may drop them:
/// a user restructures a bag downloaded earlier, whose files are no longer in memory, and
/// the earlier runs here (`info` reads every asset's metadata) would otherwise have cached
/// a small bag's metadata but not that of a bag larger than memory. Each run writes into a
/// directory of its own, all removed at the end: on ext4 without a journal, inodes freed
/// less than a minute (up to five) earlier are skipped when new ones are allocated, so a
/// restructure right after deleting an earlier output measures that search.
fn measure_processes(bag: &Path, runs_each: usize) -> Result<Vec<ProcessRun>, String> {
    let bin = deriva_bag_binary()?;
    let work = bag.parent().unwrap_or(Path::new(".")).join("processes");
    if work.exists() {
        // An earlier bench's outputs, if it stopped before removing them.
        remove_tree(&work)?;
    }
    let cache = work.join("cache");
    let bag_arg = bag.to_str().ok_or("bench bag path is not UTF-8")?;
    let mut runs = Vec::new();
    let (wall, peak_rss_kib) = run_process(&bin, &cache, &["tables", bag_arg, "--json"])?;
    runs.push(ProcessRun {
        name: PROCESS_RUNS[0],
        wall,
        peak_rss_kib: Some(peak_rss_kib),
    });
    // `info` records the asset check once; the warm runs use the record.
    run_process(&bin, &cache, &["info", bag_arg, "--json"])?;
    let ops: [Vec<&str>; 4] = [
        vec!["tables", bag_arg, "--json"],
        vec!["info", bag_arg, "--json"],
        vec!["members", bag_arg, "--recurse", "--json"],
        vec![
            "feature-values",
            bag_arg,
            "Image",
            "Glaucoma",
            "--selector",
            "newest",
            "--json",
        ],
    ];
    for (name, args) in PROCESS_RUNS[1..].iter().copied().zip(ops) {
        let mut walls = Vec::new();
        let mut peak = 0;
        for _ in 0..runs_each {
            let (wall, rss) = run_process(&bin, &cache, &args)?;
            walls.push(wall);
            peak = peak.max(rss);
        }
        runs.push(ProcessRun {
            name,
            wall: median(walls),
            peak_rss_kib: Some(peak),
        });
    }
    let mut walls = Vec::new();
    let mut syncs = Vec::new();
    let mut peak = 0;
    let mut cold = true;
    for run in 1..=runs_each {
        let out = work.join(format!("restructured-{run}"));
        let out_arg = out.to_str().ok_or("bench output path is not UTF-8")?;
        cold &= drop_kernel_caches();
        let (wall, rss) = run_process(&bin, &cache, &["restructure", bag_arg, out_arg, "--json"])?;
        let started = Instant::now();
        sync_all();
        syncs.push(started.elapsed());
        walls.push(wall);
        peak = peak.max(rss);
    }
    runs.push(ProcessRun {
        name: if cold {
            RESTRUCTURE_COLD
        } else {
            RESTRUCTURE_AS_FOUND
        },
        wall: median(walls),
        peak_rss_kib: Some(peak),
    });
    runs.push(ProcessRun {
        name: SYNC_AFTER_RESTRUCTURE,
        wall: median(syncs),
        peak_rss_kib: None,
    });
    for run in 1..=runs_each {
        remove_tree(&work.join(format!("restructured-{run}")))?;
    }
    Ok(runs)
}

/// Removes the directory `dir`, each of its subdirectories on a thread of its own: a
/// restructured tree holds millions of links in a few directories (`training`, `testing`),
/// which one thread took minutes to remove at 2 M images.
fn remove_tree(dir: &Path) -> Result<(), String> {
    let failed = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    let entries = std::fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| failed(dir, e))?;
    std::thread::scope(|scope| {
        let removals: Vec<_> = entries
            .iter()
            .map(|path| {
                scope.spawn(move || match std::fs::symlink_metadata(path) {
                    Ok(md) if md.is_dir() => std::fs::remove_dir_all(path),
                    Ok(_) => std::fs::remove_file(path),
                    Err(e) => Err(e),
                })
            })
            .collect();
        for (path, removal) in entries.iter().zip(removals) {
            match removal.join() {
                Ok(done) => done.map_err(|e| failed(path, e))?,
                Err(_) => return Err(format!("{}: removal panicked", path.display())),
            }
        }
        Ok(())
    })?;
    std::fs::remove_dir_all(dir).map_err(|e| failed(dir, e))
}

/// `VmHWM` (peak resident set) from `/proc/self/status`, in KiB; Linux only.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Report {
    fn validation_mb_s(&self) -> f64 {
        self.validation_bytes as f64 / 1e6 / self.validation.as_secs_f64().max(1e-9)
    }

    fn to_json(&self) -> serde_json::Value {
        let features: serde_json::Map<String, serde_json::Value> = self
            .feature_values
            .iter()
            .map(|(name, d, n)| (name.to_string(), json!({"ms": ms(*d), "records": n})))
            .collect();
        json!({
            "images": self.images,
            "bag": self.bag.display().to_string(),
            "generate_ms": self.generated.map(ms),
            "cold_open_ms": ms(self.cold_open),
            "warm_open_ms": ms(self.warm_open),
            "list_dataset_members_ms": ms(self.members),
            "member_rows": self.member_rows,
            "feature_values": features,
            "report_first_ms": ms(self.report_first),
            "report_ms": ms(self.report_again),
            "validation_full_ms": ms(self.validation),
            "validation_full_mb_s": self.validation_mb_s(),
            "validation_bytes": self.validation_bytes,
            "peak_rss_kib": self.peak_rss_kib,
            "processes": self.processes.iter().map(|p| json!({
                "run": p.name,
                "ms": ms(p.wall),
                "peak_rss_kib": p.peak_rss_kib,
            })).collect::<Vec<_>>(),
            "load_average": self.load_average,
        })
    }

    fn print_table(&self) {
        println!(
            "deriva-bag bench: {} images, {}",
            self.images,
            self.bag.display()
        );
        match self.generated {
            Some(d) => println!("  {:<44} {:>10.1} ms", "generate bag", ms(d)),
            None => println!("  {:<44} {:>10}", "generate bag", "reused"),
        }
        println!(
            "  {:<44} {:>10.1} ms",
            "open, cold (index build)",
            ms(self.cold_open)
        );
        println!(
            "  {:<44} {:>10.2} ms",
            "open, warm (median of 5)",
            ms(self.warm_open)
        );
        println!(
            "  {:<44} {:>10.2} ms  ({} rows)",
            "list_dataset_members(recurse) (median of 5)",
            ms(self.members),
            self.member_rows
        );
        for (name, d, n) in &self.feature_values {
            println!(
                "  {:<44} {:>10.2} ms  ({n} records)",
                format!("feature_values Image/Glaucoma, {name}"),
                ms(*d)
            );
        }
        println!(
            "  {:<44} {:>10.1} ms",
            "report, first on a freshly opened bag",
            ms(self.report_first)
        );
        println!(
            "  {:<44} {:>10.1} ms",
            "report, again (median of 5)",
            ms(self.report_again)
        );
        println!(
            "  {:<44} {:>10.1} ms  ({:.1} MB/s over {} bytes)",
            "validate full",
            ms(self.validation),
            self.validation_mb_s(),
            self.validation_bytes
        );
        match self.peak_rss_kib {
            Some(kib) => println!("  {:<44} {:>10.1} MiB", "peak RSS", kib as f64 / 1024.0),
            None => println!("  {:<44} {:>10}", "peak RSS", "n/a"),
        }
        print_processes(&self.processes, &self.load_average);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree like a restructure's output: directories of files and links, links at the top,
    /// one to a directory outside. All of it goes; nothing a link points to does.
    #[test]
    fn remove_tree_removes_the_tree_and_never_what_its_links_point_to() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("kept.jpg"), "k").unwrap();
        let out = tmp.path().join("restructured-1");
        for split in ["training/Severe", "testing"] {
            let dir = out.join(split);
            std::fs::create_dir_all(&dir).unwrap();
            symlink(outside.join("kept.jpg"), dir.join("a.jpg")).unwrap();
            std::fs::write(dir.join("b.jpg"), "b").unwrap();
        }
        symlink(&outside, out.join("linked-dir")).unwrap();
        std::fs::write(out.join("ledger.json"), "{}").unwrap();

        remove_tree(&out).unwrap();
        assert!(!out.exists() && std::fs::symlink_metadata(&out).is_err());
        assert!(outside.join("kept.jpg").is_file());

        let err = remove_tree(&out).unwrap_err();
        assert!(err.contains("restructured-1"), "{err}");
    }
}
