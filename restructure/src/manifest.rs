//! [`Manifest`]: every placement a restructure made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deriva_bag_features::Rid;
use serde::Serialize;

use crate::classes::TargetClasses;

/// One placed file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Placement {
    /// The source file in the bag.
    pub src: PathBuf,
    /// The path written (a symlink, a copy, or what the file transformer returned).
    pub dst: PathBuf,
    /// The asset's RID.
    #[serde(skip)]
    pub rid: Rid,
}

/// An asset whose file is not on disk (a bag that is not materialized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFile {
    /// The asset's RID.
    pub rid: Rid,
    /// Its `Filename` column, if set.
    pub filename: Option<String>,
}

/// A path an earlier run recorded in its ledger that this run left alone, because it cannot
/// prove that what is there now is what it placed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KeptFile {
    /// The path in the output directory.
    pub path: PathBuf,
    /// Why it was kept.
    pub reason: KeptReason,
}

/// Why a recorded path was kept (see [`KeptFile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeptReason {
    /// What is there differs from the record: a copy whose size or sha256 changed (edited
    /// since it was placed), a symlink that now leads elsewhere, or another kind of file.
    Changed,
    /// The ledger holds no proof for the path (a ledger written before proofs were recorded).
    Unproven,
    /// A directory on the way is a symbolic link; nothing behind one is ever deleted.
    BehindSymlink,
}

impl std::fmt::Display for KeptReason {
    /// The serialized name: `changed`, `unproven`, `behind-symlink`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeptReason::Changed => "changed",
            KeptReason::Unproven => "unproven",
            KeptReason::BehindSymlink => "behind-symlink",
        })
    }
}

/// The result of a restructure: source path → every path written for it (an asset in two
/// sibling datasets has two), plus the assets skipped for lack of a file.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub(crate) placements: Vec<Placement>,
    pub(crate) missing: Vec<MissingFile>,
    pub(crate) kept: Vec<KeptFile>,
    pub(crate) in_several_splits: Vec<Rid>,
    pub(crate) classes: Vec<TargetClasses>,
}

impl Manifest {
    /// Source → destinations, sorted.
    pub fn by_source(&self) -> BTreeMap<PathBuf, Vec<PathBuf>> {
        let mut map: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for p in &self.placements {
            map.entry(p.src.clone()).or_default().push(p.dst.clone());
        }
        map
    }

    /// Every placement, sorted by (source, destination).
    pub fn placements(&self) -> &[Placement] {
        &self.placements
    }

    /// `(source, destination)` pairs, one per placement.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &Path)> {
        self.placements
            .iter()
            .map(|p| (p.src.as_path(), p.dst.as_path()))
    }

    /// Number of placements (files written or kept).
    pub fn len(&self) -> usize {
        self.placements.len()
    }

    /// Whether nothing was placed.
    pub fn is_empty(&self) -> bool {
        self.placements.is_empty()
    }

    /// The destinations of `src`.
    pub fn destinations(&self, src: &Path) -> Vec<&Path> {
        self.placements
            .iter()
            .filter(|p| p.src == src)
            .map(|p| p.dst.as_path())
            .collect()
    }

    /// Assets skipped because their file is not on disk, sorted by RID.
    pub fn missing_files(&self) -> &[MissingFile] {
        &self.missing
    }

    /// Paths an earlier run recorded that this run kept instead of replacing or removing them,
    /// sorted: placed copies edited since, and anything the ledger names without proof. Each
    /// was also logged as a warning.
    pub fn kept_files(&self) -> &[KeptFile] {
        &self.kept
    }

    /// Assets placed under more than one dataset type path, sorted by RID: an image in both
    /// a Training and a Testing dataset lands in `training/…` and `testing/…`, so a model
    /// tested on `testing/` has seen it in training. Logged as one warning with the count.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::features::Rid;
    /// use deriva_bag_core::{fixtures, DatasetBag};
    /// use deriva_bag_restructure::{restructure_assets, RestructureOptions};
    ///
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(&tmp.path().join("bags"))?;
    /// let bag = DatasetBag::open(&generated.path)?;
    /// let manifest = restructure_assets(&bag, &tmp.path().join("out"), &RestructureOptions::new())?;
    /// // 1-I005 is a member of the Training dataset 1-D001 and of the Testing dataset 1-D002.
    /// assert_eq!(manifest.assets_in_several_splits(), [Rid::new("1-I005")]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn assets_in_several_splits(&self) -> &[Rid] {
        &self.in_several_splits
    }

    /// The classes of the first target level, the folders `ImageFolder` indexes below a split
    /// folder: every term of the target feature's vocabulary as a folder name, sorted
    /// (`ImageFolder`'s `classes`). `None` when that level is not named by a vocabulary
    /// feature's terms (no targets, a column target, a `target_transform`). See
    /// [`TargetClasses`] for how this relates to the folders `ImageFolder` finds.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{fixtures, DatasetBag};
    /// use deriva_bag_features::{Selector, Targets};
    /// use deriva_bag_restructure::{restructure_assets, RestructureOptions};
    ///
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(&tmp.path().join("bags"))?;
    /// let bag = DatasetBag::open(&generated.path)?;
    /// let options =
    ///     RestructureOptions::new().targets(Targets::new().with("Glaucoma", Selector::Newest));
    /// let manifest = restructure_assets(&bag, &tmp.path().join("out"), &options)?;
    /// let classes = manifest.classes().unwrap();
    /// assert_eq!(classes, ["Mild", "Moderate", "Normal", "Severe"]);
    /// // training/ holds only Mild and Severe images; their indices stay 0 and 3.
    /// assert_eq!(manifest.class_to_idx().unwrap()["Severe"], 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn classes(&self) -> Option<&[String]> {
        self.level_classes(0).map(|c| c.classes.as_slice())
    }

    /// Folder name → class index of the first target level (`ImageFolder`'s
    /// `class_to_idx`); see [`Manifest::classes`].
    pub fn class_to_idx(&self) -> Option<&BTreeMap<String, usize>> {
        self.level_classes(0).map(|c| &c.class_to_idx)
    }

    /// The classes of every target level named by a vocabulary feature's terms, in level
    /// order.
    pub fn target_classes(&self) -> &[TargetClasses] {
        &self.classes
    }

    fn level_classes(&self, level: usize) -> Option<&TargetClasses> {
        self.classes.iter().find(|c| c.level == level)
    }

    /// The CLI's JSON shape: `[{"src","dst"}, ...]`, one entry per placement.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.placements
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "src": p.src.to_string_lossy(),
                        "dst": p.dst.to_string_lossy(),
                    })
                })
                .collect(),
        )
    }

    /// [`to_json`](Self::to_json) written to `out` as `serde_json::to_writer_pretty` writes
    /// it, byte for byte, one placement at a time instead of building the whole value first.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{fixtures, DatasetBag};
    /// use deriva_bag_restructure::{restructure_assets, RestructureOptions};
    ///
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(&tmp.path().join("bags"))?;
    /// let bag = DatasetBag::open(&generated.path)?;
    /// let manifest = restructure_assets(&bag, &tmp.path().join("out"), &RestructureOptions::new())?;
    /// let mut streamed = Vec::new();
    /// manifest.write_json(&mut streamed)?;
    /// assert_eq!(streamed, serde_json::to_vec_pretty(&manifest.to_json())?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_json(&self, out: impl std::io::Write) -> serde_json::Result<()> {
        serde_json::to_writer_pretty(out, &JsonPlacements(&self.placements))
    }
}

/// The placements in [`Manifest::to_json`]'s shape, serialized as they are read.
struct JsonPlacements<'a>(&'a [Placement]);

impl Serialize for JsonPlacements<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Pair<'a>(&'a Placement);
        impl Serialize for Pair<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("src", &self.0.src.to_string_lossy())?;
                map.serialize_entry("dst", &self.0.dst.to_string_lossy())?;
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for p in self.0 {
            seq.serialize_element(&Pair(p))?;
        }
        seq.end()
    }
}

impl<'a> IntoIterator for &'a Manifest {
    type Item = &'a Placement;
    type IntoIter = std::slice::Iter<'a, Placement>;

    fn into_iter(self) -> Self::IntoIter {
        self.placements.iter()
    }
}
