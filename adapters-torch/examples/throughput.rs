//! Image-loading throughput: the DataLoader's decode + resize + crop + normalize + batch
//! rate against the machine's single-thread raw decode rate on the same files.
//!
//! ```sh
//! . .ci/ml-libs.sh
//! cargo run --release -p deriva-bag-torch --example throughput -- [images] [side] [workers] [dir]
//! ```
//! Defaults: 20000 images of 256×256 px, 2 workers, bag under `$TMPDIR/deriva-throughput`
//! (generated once, reused).

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use deriva_bag_core::fixtures::{generate, FixtureSpec};
use deriva_bag_core::{DatasetBag, OpenOptions};
use deriva_bag_torch::image::{decode_rgb, ImagePipeline};
use deriva_bag_torch::{as_torch_dataset, DataLoader, LoaderOptions, TorchOptions};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn Error>> {
    let images: usize = arg(1, 20_000);
    let side: u32 = arg(2, 256);
    let workers: usize = arg(3, 2);
    let dir: PathBuf = std::env::args()
        .nth(4)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("deriva-throughput"));
    let spec = FixtureSpec {
        images,
        image_size: Some((side, side)),
        ..FixtureSpec::default()
    };
    let bag_dir = dir.join(format!("{images}x{side}"));
    let marker = bag_dir.join("generated");
    let started = Instant::now();
    let generated = if marker.exists() {
        bag_dir.join("Dataset_1-D000")
    } else {
        let g = generate(&spec, &bag_dir)?;
        std::fs::write(&marker, b"")?;
        g.path
    };
    println!(
        "bag ready in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        generated.display()
    );
    let bag = DatasetBag::open_with(
        &generated,
        &OpenOptions {
            cache_dir: Some(dir.join("cache")),
            ..OpenOptions::default()
        },
    )?;

    let pipeline = ImagePipeline::new()
        .resize(224)
        .center_crop(224, 224)
        .imagenet_normalize();
    let options = TorchOptions::default().sample_loader(move |path, _row| pipeline.load(path));
    let t = Instant::now();
    let ds = as_torch_dataset(&bag, "Image", options)?;
    println!(
        "dataset of {} images built in {:.2}s",
        ds.len(),
        t.elapsed().as_secs_f64()
    );

    // Raw decode limit: one thread, decode only, same files.
    let paths: Vec<PathBuf> = ds
        .plan()
        .elements
        .iter()
        .filter_map(|e| e.asset_path.clone())
        .collect();
    let n_raw = paths.len().min(5_000);
    let t = Instant::now();
    for p in &paths[..n_raw] {
        std::hint::black_box(decode_rgb(p)?);
    }
    let raw = n_raw as f64 / t.elapsed().as_secs_f64();
    println!("raw decode, 1 thread: {raw:.0} images/s ({n_raw} images)");
    {
        use deriva_bag_torch::image::{
            center_crop, resize_shorter, to_chw, IMAGENET_MEAN, IMAGENET_STD,
        };
        let n = n_raw.min(500);
        let (mut t_dec, mut t_res, mut t_crop, mut t_chw) = (0.0, 0.0, 0.0, 0.0);
        for p in &paths[..n] {
            let t0 = Instant::now();
            let img = decode_rgb(p)?;
            let t1 = Instant::now();
            let r = resize_shorter(&img, 224);
            let t2 = Instant::now();
            let c = center_crop(&r, 224, 224);
            let t3 = Instant::now();
            std::hint::black_box(to_chw(&c, IMAGENET_MEAN, IMAGENET_STD));
            let t4 = Instant::now();
            t_dec += (t1 - t0).as_secs_f64();
            t_res += (t2 - t1).as_secs_f64();
            t_crop += (t3 - t2).as_secs_f64();
            t_chw += (t4 - t3).as_secs_f64();
        }
        let ms = |s: f64| s * 1000.0 / n as f64;
        println!(
            "per image (ms): decode {:.3}, resize {:.3}, crop {:.3}, chw+normalize {:.3}",
            ms(t_dec),
            ms(t_res),
            ms(t_crop),
            ms(t_chw)
        );
    }
    let stages = ImagePipeline::new()
        .resize(224)
        .center_crop(224, 224)
        .imagenet_normalize();
    let t = Instant::now();
    for p in &paths[..n_raw] {
        drop(std::hint::black_box(stages.load(p)?));
    }
    let piped = n_raw as f64 / t.elapsed().as_secs_f64();
    println!("decode+resize+crop+normalize, 1 thread, no loader: {piped:.0} images/s");

    for w in [0, workers] {
        let loader = DataLoader::new(&ds, LoaderOptions::default().batch_size(32).num_workers(w))?;
        let t = Instant::now();
        let mut count = 0;
        for batch in &loader {
            count += batch?.rids.len();
        }
        let rate = count as f64 / t.elapsed().as_secs_f64();
        println!(
            "DataLoader decode+resize+crop+normalize+batch, {w} workers: {rate:.0} images/s \
             ({count} images) = {:.2}x the 1-thread raw decode rate",
            rate / raw
        );
    }
    Ok(())
}
