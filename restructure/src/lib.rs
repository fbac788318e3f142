//! Lay out a dataset's assets as class folders (`training/Severe/retina_001.jpg`), the tree
//! that torchvision's `ImageFolder`, Keras' `image_dataset_from_directory` and similar tools
//! walk. Generic over [`DatasetLike`], so it works on a downloaded bag and a live dataset.
//!
//! The layout:
//!
//! * **Type levels.** Each dataset contributes the directory its type maps to
//!   (`Training→training`, `Testing→testing`, `Validation→validation` by default); a type not
//!   in the map adds no level (e.g. a `Complete` or `Split` parent is transparent); an untyped
//!   dataset is treated as Testing. Nested datasets nest their levels.
//! * **Which dataset an asset belongs to.** A dataset *contains* every asset reachable from
//!   it — members, and assets reached by foreign keys from members (the Images of a member
//!   Subject) — including its nested datasets'. An asset is placed under each *deepest*
//!   dataset containing it, i.e. each containing dataset none of whose children contains it.
//!   Siblings that both contain an asset (Training and Testing) both get it, so the overlap is
//!   visible; two placements of one asset at the same path are one placement.
//! * **Target levels.** One level per target, in order, named by the `target_transform` or
//!   the value's default text (a column value; a feature's term), made safe by
//!   [`sanitize_label`]. A missing value is `unknown` (under [`Missing::Unknown`]); unlike the
//!   Python reference, the other levels keep their values. `target_transform` is called once
//!   per level with that level's [`TargetValue`], never for a missing value.
//! * **Files.** Absolute symlinks (default), copies, or a `file_transformer`'s output, placed
//!   in parallel. Two assets on one path: the smaller RID keeps the name, the other becomes
//!   `<stem>_<RID><ext>`. Nothing is written outside `output_dir`, and re-runs are idempotent
//!   (see [`LEDGER_NAME`]).
//! * **Trust.** `output_dir` may not be, or lie inside, the dataset's own directory
//!   ([`DatasetLike::source_root`]: the bag, or an archive bag's extraction directory), even
//!   through a symbolic link ([`Error::OutputInsideSource`], before anything is written). The
//!   ledger of an earlier run is untrusted: a re-run replaces or removes only what it can
//!   prove it placed (a symlink to the recorded asset, a copy with the recorded size and
//!   sha256), never behind a symlinked directory; a placed copy edited since is kept, logged
//!   and listed in [`Manifest::kept_files`].
//! * **Memory.** Every per-asset fact of a run (which datasets reach each asset, target
//!   values, planned paths, the ledgers, the manifest) lives in a scratch SQLite file on disk,
//!   a hidden temporary file beside `output_dir` (on its filesystem, not in `/tmp`), removed
//!   when the run fails or when the returned [`Manifest`] is dropped; memory holds pages of
//!   rows, so millions of assets restructure in flat memory.
//! * **Missing files** (a bag that is not materialized, or an asset that is a symbolic link
//!   out of the bag): one warning per file, and the rest is placed;
//!   [`Manifest::missing_files`] lists them.
//! * **Classes.** [`Manifest::classes`] and [`Manifest::class_to_idx`] record the first
//!   target level's classes as torchvision's `ImageFolder` indexes folders: every term of the
//!   target feature's vocabulary as a folder name, sorted, so indices agree across splits and
//!   versions ([`TargetClasses`] says exactly how they relate to the folders present).
//! * **Assets in several splits** (an image of both a Training and a Testing dataset): one
//!   warning with the count, and [`Manifest::assets_in_several_splits`] lists them.
//! * [`Missing::Error`] is checked on exactly the assets that would be placed, before anything
//!   is written (the output directory is not even created).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use deriva_bag_core::{fixtures, DatasetBag};
//! use deriva_bag_features::{Selector, Targets};
//! use deriva_bag_restructure::{restructure_assets, RestructureOptions};
//!
//! let tmp = tempfile::tempdir()?;
//! let generated = fixtures::small_bag(&tmp.path().join("bags"))?;
//! let bag = DatasetBag::open(&generated.path)?;
//! let out = tmp.path().join("ml_data");
//! let options =
//!     RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest));
//! let manifest = restructure_assets(&bag, &out, &options)?;
//! assert!(out.join("training/Severe/retina_001.jpg").exists());
//! assert!(out.join("testing/unknown/retina_004.png").exists());
//! for placement in manifest.placements() {
//!     let p = placement?;
//!     assert!(p.dst.starts_with(std::path::absolute(&out)?), "{} -> {}", p.src.display(), p.dst.display());
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod classes;
mod error;
mod manifest;
mod options;
mod output;
mod place;
mod plan;
mod sanitize;
mod scratch;

use std::path::Path;

pub use classes::TargetClasses;
pub use deriva_bag_features::{DatasetLike, Missing, Selector, TargetValue, Targets};
pub use error::{BoxError, Error, Result};
pub use manifest::{KeptFile, KeptReason, Manifest, MissingFile, Placement};
pub use options::{
    default_type_map, FileTransformer, ProgressFn, RestructureOptions, TargetTransform,
    TypeSelector,
};
pub use place::LEDGER_NAME;
pub use sanitize::sanitize_label;
pub use scratch::Paged;

/// Builds the class-folder tree of `dataset`'s assets under `output_dir` and returns the
/// manifest of every placement (see the crate docs for the layout rules).
///
/// Everything that can fail on the data (unknown target, conflicting values, unlabeled assets
/// under [`Missing::Error`], unsafe labels, an ambiguous asset table) fails before the output
/// directory is touched.
pub fn restructure_assets<D: DatasetLike>(
    dataset: &D,
    output_dir: &Path,
    options: &RestructureOptions,
) -> Result<Manifest> {
    let started = std::time::Instant::now();
    // Before the (possibly slow) plan, and before anything is written.
    let source_root = dataset.source_root();
    output::check_outside_source(
        &std::path::absolute(output_dir).map_err(error::io(output_dir))?,
        source_root,
        output::canonical_source(source_root)?.as_deref(),
    )?;
    // Every per-asset fact of the run lives in this store on disk (flat memory at any
    // number of assets); the manifest reads from it and removes it when dropped.
    let scratch =
        scratch::Scratch::create(&std::path::absolute(output_dir).map_err(error::io(output_dir))?)?;
    let table = plan::asset_table(dataset, options)?;
    let plan = plan::plan(dataset, &table, options, &scratch)?;
    let classes = classes::record(dataset, &table, options)?;
    let plan_ms = started.elapsed().as_millis() as u64;
    let written = place::write(output_dir, source_root, &scratch, plan.placements, options)?;
    tracing::info!(
        table = %table,
        planned = plan.placements,
        placed = written.placements,
        missing_files = plan.missing,
        kept = written.kept,
        plan_ms,
        elapsed_ms = started.elapsed().as_millis() as u64,
        output_dir = %output_dir.display(),
        "restructured assets"
    );
    Ok(Manifest {
        scratch,
        placements: written.placements,
        missing: plan.missing,
        kept: written.kept,
        in_several_splits: plan.in_several_splits,
        classes,
    })
}
