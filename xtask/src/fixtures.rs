//! `cargo xtask fixtures`: write a seeded fixture bag (and optionally an archive of it).

use std::path::PathBuf;

use deriva_bag_core::archive_write::{write_tgz, write_zip};
use deriva_bag_core::fixtures::{self, FixtureSpec, Layout};

use crate::ArchiveArg;

/// Parsed `fixtures` arguments.
pub struct Args {
    pub out: PathBuf,
    pub images: usize,
    pub seed: u64,
    pub layout: Layout,
    pub materialized: bool,
    pub archive: Option<ArchiveArg>,
}

/// Generates the bag and prints the bag (or archive) path on stdout.
pub fn run(args: &Args) -> Result<(), String> {
    let out = crate::from_root(args.out.clone());
    let spec = FixtureSpec {
        images: args.images,
        seed: args.seed,
        layout: args.layout,
        materialized: args.materialized,
        ..FixtureSpec::default()
    };
    let bag = fixtures::generate(&spec, &out).map_err(|e| e.to_string())?;
    let printed = match args.archive {
        None => bag.path.clone(),
        Some(kind) => {
            let name = bag
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "Dataset_1-D000".to_string());
            let archive = match kind {
                ArchiveArg::Zip => out.join(format!("{name}.zip")),
                ArchiveArg::Tgz => out.join(format!("{name}.tar.gz")),
            };
            let written = match kind {
                ArchiveArg::Zip => write_zip(&bag.path, &archive),
                ArchiveArg::Tgz => write_tgz(&bag.path, &archive),
            };
            written.map_err(|e| e.to_string())?;
            archive
        }
    };
    println!("{}", printed.display());
    Ok(())
}
