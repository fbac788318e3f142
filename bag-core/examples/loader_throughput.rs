//! Image-loading throughput of both framework adapters on one bag: decode + resize (shorter
//! side 224) + center-crop 224 + ImageNet normalize + batch (32), with 0 and N worker
//! threads, against the machine's single-thread raw decode rate on the same files. The
//! target is N = 2 workers reaching 0.75 × 2 × the raw rate.
//!
//! ```sh
//! cargo xtask bench --loaders          # provisions the libraries, runs this in release
//! . .ci/ml-libs.sh && cargo run --release -p deriva-bag-core \
//!     --features torch,tf,fixtures,libjpeg-turbo --example loader_throughput \
//!     -- [images] [side | WxH] [workers] [dir]
//! ```
//! Defaults: 20000 images of 256×256 px (two thirds JPEG, one third PNG), 2 workers, bag
//! under `$TMPDIR/deriva-throughput` (generated once, reused). A size written `WxH` (e.g.
//! `1000 3000x2000`) generates camera-sized photographs (`FixtureSpec::photographs`) instead,
//! and the torch loader then also runs with full-size JPEG decoding, for comparison.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use deriva_bag_core::features::loader::image::{decode_rgb, ImagePipeline, Layout};
use deriva_bag_core::features::loader::LoaderOptions;
use deriva_bag_core::fixtures::{open_cached, FixtureSpec};
use deriva_bag_core::tf::image::ToSample;
use deriva_bag_core::tf::TfOptions;
use deriva_bag_core::torch::image::ToTensor;
use deriva_bag_core::torch::{DataLoader, TorchOptions};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Images per second of `run`, which returns how many images it handled.
fn rate(run: impl FnOnce() -> Result<usize, Box<dyn Error>>) -> Result<f64, Box<dyn Error>> {
    Ok(rate_and_faults(run)?.0)
}

/// Images per second of `run` and the minor page faults the process took meanwhile (all
/// threads, also the loader workers that ended).
fn rate_and_faults(
    run: impl FnOnce() -> Result<usize, Box<dyn Error>>,
) -> Result<(f64, u64), Box<dyn Error>> {
    let faults = minor_faults();
    let started = Instant::now();
    let count = run()?;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    Ok((rate, minor_faults().saturating_sub(faults)))
}

/// [`PASSES`] passes of `run`: the images per second over all of them, and each pass's page
/// faults (the first pass also pays for warming up the pools).
fn passes(
    mut run: impl FnMut() -> Result<usize, Box<dyn Error>>,
) -> Result<(f64, Vec<u64>), Box<dyn Error>> {
    let mut rates = Vec::with_capacity(PASSES);
    let mut faults = Vec::with_capacity(PASSES);
    for _ in 0..PASSES {
        let (r, f) = rate_and_faults(&mut run)?;
        rates.push(r);
        faults.push(f);
    }
    let harmonic = PASSES as f64 / rates.iter().map(|r| 1.0 / r).sum::<f64>();
    Ok((harmonic, faults))
}

/// Passes (epochs) per loader configuration.
const PASSES: usize = 3;

/// The process's minor page faults so far (`minflt` of `/proc/self/stat`; 0 elsewhere).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces:
    // state ppid pgrp session tty_nr tpgid flags minflt …
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

/// The 1-minute load average, for the record beside the numbers.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn main() -> Result<(), Box<dyn Error>> {
    let images: usize = arg(1, 20_000);
    let size = std::env::args().nth(2).unwrap_or_else(|| "256".into());
    let photographs = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    let workers: usize = arg(3, 2);
    let dir: PathBuf = std::env::args()
        .nth(4)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("deriva-throughput"));
    let spec = match photographs {
        Some(dims) => FixtureSpec::photographs(images, dims),
        None => {
            let side: u32 = size.parse()?;
            FixtureSpec {
                images,
                image_size: Some((side, side)),
                ..FixtureSpec::default()
            }
        }
    };
    let bag = open_cached(&spec, &dir.join(format!("{images}x{size}")))?;
    let pipeline = ImagePipeline::new()
        .resize(224)
        .center_crop(224, 224)
        .imagenet_normalize();
    // Full-size decoding of the same files: only compared on photographs.
    let full_pipeline = pipeline.clone().reduced_jpeg_decode(false);
    let torch_full = bag.as_torch_dataset(
        "Image",
        TorchOptions::default()
            .sample_loader(move |path, _row| ToTensor::load(&full_pipeline, path)),
    )?;

    let torch_pipeline = pipeline.clone();
    let torch_ds = bag.as_torch_dataset(
        "Image",
        TorchOptions::default()
            .sample_loader(move |path, _row| ToTensor::load(&torch_pipeline, path)),
    )?;
    let tf_pipeline = pipeline.clone();
    let tf_ds = bag.as_tf_dataset(
        "Image",
        TfOptions::default().sample_loader(move |path, _row| ToSample::load(&tf_pipeline, path)),
        None,
    )?;
    let paths: Vec<PathBuf> = torch_ds
        .plan()
        .elements
        .iter()
        .filter_map(|e| e.asset_path.clone())
        .collect();
    println!("{} images of {size} px", paths.len());

    let sample = &paths[..paths.len().min(5_000)];
    let raw = rate(|| {
        for p in sample {
            std::hint::black_box(decode_rgb(&std::fs::read(p)?)?);
        }
        Ok(sample.len())
    })?;
    println!("raw decode (read + decode), 1 thread: {raw:.0} images/s");
    let piped = rate(|| {
        for p in sample {
            let img = decode_rgb(&std::fs::read(p)?)?;
            std::hint::black_box(pipeline.to_values(&img, Layout::Hwc));
        }
        Ok(sample.len())
    })?;
    println!("+ resize + crop + normalize, 1 thread, no loader: {piped:.0} images/s");

    let report = |name: &str, w: usize, (r, faults): (f64, Vec<u64>)| {
        println!(
            "{name}, {w} workers: {r:.0} images/s = {:.2}x the raw decode rate, page faults \
             per pass {faults:?}, load average {}{}",
            r / raw,
            load_average(),
            if w == 2 {
                format!(
                    " (target 1.50x: {})",
                    if r / raw >= 1.5 { "met" } else { "not met" }
                )
            } else {
                String::new()
            }
        );
    };
    // On photographs the torch loader also runs with full-size decoding, for comparison.
    let mut torch_runs = vec![("torch DataLoader [32, 3, 224, 224]", &torch_ds)];
    if photographs.is_some() {
        torch_runs.insert(
            0,
            (
                "torch DataLoader [32, 3, 224, 224], full-size JPEG decoding",
                &torch_full,
            ),
        );
    }
    let mut torch_rates = Vec::new();
    for w in [0, workers] {
        let options = LoaderOptions::default().batch_size(32).num_workers(w);
        for (name, ds) in &torch_runs {
            let loader = DataLoader::new(ds, options.clone())?;
            let r = passes(|| {
                let mut count = 0;
                for batch in &loader {
                    count += batch?.rids.len();
                }
                Ok(count)
            })?;
            if std::ptr::eq(*ds, &torch_ds) {
                torch_rates.push(r.0);
            }
            report(name, w, r);
        }
        let batches = tf_ds.batches(options)?;
        let r = passes(|| {
            let mut count = 0;
            for batch in &batches {
                count += batch?.rids.len();
            }
            Ok(count)
        })?;
        report("TF batches [32, 224, 224, 3]", w, r);
    }
    if let [zero, n] = torch_rates[..] {
        println!(
            "torch DataLoader: {workers} workers give {:.2}x the 0-worker rate (target 1.8x on a \
             quiet machine)",
            n / zero
        );
    }
    Ok(())
}
