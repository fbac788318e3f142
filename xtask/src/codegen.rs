//! `cargo xtask codegen-features BAG [--out FILE]`: typed record structs for every feature in
//! a bag's `data/schema.json` (see `deriva_bag_features::codegen`).

use std::path::PathBuf;

use deriva_bag_core::features::codegen::feature_structs_using;
use deriva_bag_core::DatasetBag;

/// Opens the bag (directory or archive), generates the source, and writes it to `out` or
/// prints it on stdout.
pub fn run(bag: PathBuf, out: Option<PathBuf>, crate_path: &str) -> Result<(), String> {
    let bag = DatasetBag::open(&bag).map_err(|e| e.to_string())?;
    let features = bag.find_features(None).map_err(|e| e.to_string())?;
    let source = feature_structs_using(&features, crate_path);
    match out {
        Some(path) => {
            let path = crate::from_root(path);
            std::fs::write(&path, source).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("{}", path.display());
        }
        None => print!("{source}"),
    }
    Ok(())
}
