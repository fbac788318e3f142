//! Decoding real-size photographs: images/s of the shared image pipeline (decode + resize
//! shorter side 224 + center-crop 224 + ImageNet normalize + batch of 32) on camera-sized
//! JPEGs, with reduced-size JPEG decoding (the default: 1/2, 1/4 or 1/8 in the DCT domain)
//! against full decoding, at 0 and N loader workers; the single-thread decode rates of both
//! paths; and the PSNR of the reduced path against the full one. No ML framework is needed:
//! batches are the `[32, 3, 224, 224]` values a framework's collation would copy.
//!
//! ```sh
//! cargo run --release -p deriva-bag-core --features fixtures,libjpeg-turbo \
//!     --example large_jpeg_throughput -- [jpegs] [width] [height] [workers] [dir]
//! ```
//! With `libjpeg-turbo` (needs `nasm`) each measurement is made for libjpeg-turbo's decoder
//! and for the pure-Rust ones; without it, for the pure-Rust ones only.
//! Defaults: 1000 JPEGs of 3000 × 2000 px (`FixtureSpec::photographs`, about 0.5 GB; the bag
//! also holds the two hand-written PNGs, which are skipped), 2 workers, bag under
//! `$TMPDIR/deriva-large-jpeg` (generated once, reused).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use deriva_bag_core::features::loader::image::{psnr, ImageError, ImagePipeline, Layout};
use deriva_bag_core::features::loader::{Loader, LoaderOptions, SampleSource};
use deriva_bag_core::fixtures::{generate_cached, FixtureSpec};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// The 1-, 5- and 15-minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// CPU seconds this process has used, all threads (`/proc/self/stat`, 100 ticks/s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    fields.iter().sum::<u64>() as f64 / 100.0
}

/// Every `.jpg` under `dir`, sorted.
fn jpegs(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            jpegs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "jpg") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// The JPEG files as a loader source: each sample is the pipeline's values.
struct Files {
    paths: Vec<PathBuf>,
    pipeline: ImagePipeline,
}

impl SampleSource for Files {
    type Item = Vec<f32>;
    type Error = ImageError;
    fn len(&self) -> usize {
        self.paths.len()
    }
    fn get(&self, i: usize) -> Result<Vec<f32>, ImageError> {
        let bytes = std::fs::read(&self.paths[i])?;
        let img = self.pipeline.decode(&bytes)?;
        Ok(self.pipeline.to_values(&img, Layout::Chw).1)
    }
}

/// `(images/s, CPU s per image)` of `run`, which returns how many images it handled.
fn rate(run: impl FnOnce() -> Result<usize, Box<dyn Error>>) -> Result<(f64, f64), Box<dyn Error>> {
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let count = run()?.max(1);
    let wall = started.elapsed().as_secs_f64();
    Ok((count as f64 / wall, (cpu_seconds() - cpu) / count as f64))
}

fn main() -> Result<(), Box<dyn Error>> {
    let count: usize = arg(1, 1000);
    let (width, height): (u32, u32) = (arg(2, 3000), arg(3, 2000));
    let workers: usize = arg(4, 2);
    let dir: PathBuf = std::env::args()
        .nth(5)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("deriva-large-jpeg"));
    println!("load average at start: {}", load_average());
    // Two of the six hand-written images are PNGs: two more images give `count` JPEGs.
    let spec = FixtureSpec::photographs(count + 2, (width, height));
    let out = dir.join(format!("{count}x{width}x{height}"));
    let (bag, took) = generate_cached(&spec, &out)?;
    if let Some(took) = took {
        println!("generated in {:.0} s", took.as_secs_f64());
    }
    let mut paths = Vec::new();
    jpegs(&bag.join("data"), &mut paths)?;
    let bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    println!(
        "{} JPEGs of {width}x{height} px, {:.2} MB each on average",
        paths.len(),
        bytes as f64 / paths.len().max(1) as f64 / 1e6
    );

    let reduced = ImagePipeline::new()
        .resize(224)
        .center_crop(224, 224)
        .imagenet_normalize();
    let full = reduced.clone().reduced_jpeg_decode(false);
    // With `libjpeg-turbo`, libjpeg-turbo's paths (the default) beside the pure-Rust ones.
    #[cfg(feature = "libjpeg-turbo")]
    let decoders = [
        ("full (pure Rust)", full.clone().libjpeg_turbo(false)),
        ("reduced (pure Rust)", reduced.clone().libjpeg_turbo(false)),
        ("full (libjpeg-turbo)", full.clone()),
        ("reduced (libjpeg-turbo)", reduced.clone()),
    ];
    #[cfg(not(feature = "libjpeg-turbo"))]
    let decoders = [("full", full.clone()), ("reduced", reduced.clone())];
    // The reference: the pure-Rust full decode + antialiased resize.
    let reference = &decoders[0].1;

    // Quality: each other path against the reference, on the first 20 images, in units of
    // [0, 1] pixel values (the ImageNet std is undone: peak = 1 / std ≈ 4.4).
    let checked = &paths[..paths.len().min(20)];
    for (name, pipeline) in &decoders[1..] {
        let mut worst = f64::INFINITY;
        let mut sum = 0.0;
        for p in checked {
            let bytes = std::fs::read(p)?;
            let a = pipeline.to_values(&pipeline.decode(&bytes)?, Layout::Chw).1;
            let b = reference
                .to_values(&reference.decode(&bytes)?, Layout::Chw)
                .1;
            let db = psnr(&a, &b, 1.0 / 0.225);
            worst = worst.min(db);
            sum += db;
        }
        println!(
            "PSNR {name} vs {} + resize, {} images: mean {:.1} dB, worst {worst:.1} dB",
            decoders[0].0,
            checked.len(),
            sum / checked.len().max(1) as f64
        );
    }

    // Single-thread decode (read + decode only), on the first 100 images.
    let sample = &paths[..paths.len().min(100)];
    let mut decode_rates = Vec::new();
    for (name, pipeline) in &decoders {
        let (r, cpu) = rate(|| {
            for p in sample {
                std::hint::black_box(pipeline.decode(&std::fs::read(p)?)?);
            }
            Ok(sample.len())
        })?;
        println!(
            "{name} decode, 1 thread: {r:.1} images/s ({:.1} ms CPU per image)",
            cpu * 1e3
        );
        decode_rates.push(r);
    }
    for (i, (name, _)) in decoders.iter().enumerate().skip(1) {
        println!(
            "decode-rate ratio {name} / {}: {:.2}x",
            decoders[0].0,
            decode_rates[i] / decode_rates[0]
        );
    }

    for w in [0, workers] {
        for (name, pipeline) in &decoders {
            let source = Arc::new(Files {
                paths: paths.clone(),
                pipeline: pipeline.clone(),
            });
            let options = LoaderOptions::default().batch_size(32).num_workers(w);
            let loader = Loader::new(source, options, |items: Vec<Vec<f32>>| Ok(items.concat()))?;
            let (r, _) = rate(|| {
                let mut values = 0;
                for batch in loader.epoch(0) {
                    values += batch?.len();
                }
                Ok(values / (3 * 224 * 224))
            })?;
            println!(
                "{name} decode + pipeline + batch [32, 3, 224, 224], {w} workers: {r:.1} images/s"
            );
        }
    }
    println!("load average at end: {}", load_average());
    Ok(())
}
