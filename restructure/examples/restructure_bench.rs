//! Times restructure_assets on a generated N-image fixture bag (symlinks, an idempotent
//! re-run, copies) next to `cp -r` of the same asset directory.
//!
//! `cargo run --release -p deriva-bag-restructure --example restructure_bench -- 20000 /tmp/bench`

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use deriva_bag_core::fixtures::{self, FixtureSpec};
use deriva_bag_core::{DatasetBag, OpenOptions};
use deriva_bag_restructure::{restructure_assets, RestructureOptions, Selector, Targets};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "deriva_bag_restructure=info",
        ))
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let images: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let root = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/tmp/restructure-bench".into()),
    );
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;

    let t = Instant::now();
    let generated = fixtures::generate(&FixtureSpec::with_images(images), &root.join("bags"))?;
    println!("generate {images} images: {:.2?}", t.elapsed());
    let options = OpenOptions {
        cache_dir: Some(root.join("cache")),
        ..OpenOptions::default()
    };
    let t = Instant::now();
    let bag = DatasetBag::open_with(&generated.path, &options)?;
    println!("open (cold index): {:.2?}", t.elapsed());

    let opts = RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest));
    let t = Instant::now();
    let m = restructure_assets(&bag, &root.join("links"), &opts)?;
    println!(
        "restructure symlinks: {:.2?} ({} placements)",
        t.elapsed(),
        m.len()
    );
    let t = Instant::now();
    let m = restructure_assets(&bag, &root.join("links"), &opts)?;
    println!(
        "restructure symlinks, re-run (all kept): {:.2?} ({} placements)",
        t.elapsed(),
        m.len()
    );
    let t = Instant::now();
    let m = restructure_assets(
        &bag,
        &root.join("copies"),
        &opts.clone().use_symlinks(false),
    )?;
    println!(
        "restructure copies: {:.2?} ({} placements)",
        t.elapsed(),
        m.len()
    );
    let t = Instant::now();
    let status = Command::new("cp")
        .arg("-r")
        .arg(generated.path.join("data/asset"))
        .arg(root.join("cp_r"))
        .status()?;
    println!("cp -r data/asset: {:.2?} ({status})", t.elapsed());
    Ok(())
}
