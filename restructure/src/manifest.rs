//! [`Manifest`]: every placement a restructure made, read from the run's scratch store on
//! disk a page at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deriva_bag_features::Rid;
use serde::Serialize;

use crate::classes::TargetClasses;
use crate::error::Result;
use crate::scratch::{bytes_os, path_key, Paged, PagedQuery, Scratch};

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

/// The result of a restructure: every placement (source → path written; an asset in two
/// sibling datasets has two), the assets skipped for lack of a file, the recorded paths
/// kept, the assets in several splits, and the class index.
///
/// The per-asset lists live on disk, in the run's scratch store (a hidden temporary file
/// beside the output directory, removed when the manifest is dropped), so a manifest of
/// millions of placements holds no more memory than one of ten: each list is an iterator
/// ([`Paged`]) that reads a page of rows at a time, in a fixed order, and knows its length.
/// An item is an error only if the store cannot be read (the disk failed).
#[derive(Debug)]
pub struct Manifest {
    pub(crate) scratch: Scratch,
    pub(crate) placements: usize,
    pub(crate) missing: usize,
    pub(crate) kept: usize,
    pub(crate) in_several_splits: usize,
    pub(crate) classes: Vec<TargetClasses>,
}

fn placement(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Placement> {
    Ok(Placement {
        src: PathBuf::from(bytes_os(r.get::<_, Vec<u8>>(at)?)),
        dst: PathBuf::from(bytes_os(r.get::<_, Vec<u8>>(at + 1)?)),
        rid: Rid::new(r.get::<_, String>(2)?),
    })
}

impl Manifest {
    /// Every placement, sorted by (source, destination).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{fixtures, DatasetBag};
    /// use deriva_bag_restructure::{restructure_assets, RestructureOptions};
    ///
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(&tmp.path().join("bags"))?;
    /// let bag = DatasetBag::open(&generated.path)?;
    /// let out = tmp.path().join("out");
    /// let manifest = restructure_assets(&bag, &out, &RestructureOptions::new())?;
    /// assert_eq!(manifest.placements().len(), 7);
    /// for p in manifest.placements() {
    ///     let p = p?;
    ///     assert!(p.dst.starts_with(std::path::absolute(&out)?));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn placements(&self) -> Paged<'_, Placement> {
        let query = PagedQuery {
            from: "manifest t",
            key: &["src_key", "dst_key", "rid"],
            cols: "t.src, t.dst",
            filter: "1",
            decode: placement,
        };
        self.scratch.paged(query, self.placements)
    }

    /// Number of placements (files written or kept).
    pub fn len(&self) -> usize {
        self.placements
    }

    /// Whether nothing was placed.
    pub fn is_empty(&self) -> bool {
        self.placements == 0
    }

    /// How many different source files were placed (assets with a placement).
    pub fn source_count(&self) -> Result<usize> {
        self.scratch
            .count("SELECT count(*) FROM (SELECT DISTINCT src_key FROM manifest)")
    }

    /// The destinations of `src`, sorted.
    pub fn destinations(&self, src: &Path) -> Result<Vec<PathBuf>> {
        let mut stmt = self
            .scratch
            .conn()
            .prepare_cached("SELECT dst FROM manifest WHERE src_key = ?1 ORDER BY dst_key, rid")
            .map_err(self.scratch.err())?;
        let rows = stmt
            .query_map([path_key(src)], |r| {
                Ok(PathBuf::from(bytes_os(r.get::<_, Vec<u8>>(0)?)))
            })
            .map_err(self.scratch.err())?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.scratch.err())
    }

    /// Assets skipped because their file is not on disk, sorted by RID.
    pub fn missing_files(&self) -> Paged<'_, MissingFile> {
        let query = PagedQuery {
            from: "missing t",
            key: &["rid"],
            cols: "t.filename",
            filter: "1",
            decode: |r, at| {
                Ok(MissingFile {
                    rid: Rid::new(r.get::<_, String>(0)?),
                    filename: r.get(at)?,
                })
            },
        };
        self.scratch.paged(query, self.missing)
    }

    /// Paths an earlier run recorded that this run kept instead of replacing or removing them,
    /// sorted: placed copies edited since, and anything the ledger names without proof. Each
    /// was also logged as a warning.
    pub fn kept_files(&self) -> Paged<'_, KeptFile> {
        let query = PagedQuery {
            from: "kept t",
            key: &["key", "reason"],
            cols: "t.path",
            filter: "1",
            decode: |r, at| {
                let reason = match r.get::<_, i64>(1)? {
                    3 => KeptReason::Changed,
                    4 => KeptReason::Unproven,
                    _ => KeptReason::BehindSymlink,
                };
                Ok(KeptFile {
                    path: PathBuf::from(bytes_os(r.get::<_, Vec<u8>>(at)?)),
                    reason,
                })
            },
        };
        self.scratch.paged(query, self.kept)
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
    /// let several = manifest.assets_in_several_splits().collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(several, [Rid::new("1-I005")]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn assets_in_several_splits(&self) -> Paged<'_, Rid> {
        let query = PagedQuery {
            from: "several t",
            key: &["rid"],
            cols: "",
            filter: "1",
            decode: |r, _| Ok(Rid::new(r.get::<_, String>(0)?)),
        };
        self.scratch.paged(query, self.in_several_splits)
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

    /// The CLI's JSON shape, `[{"src","dst"}, ...]` (one entry per placement, in
    /// [`placements`](Self::placements) order), written to `out` as
    /// `serde_json::to_writer_pretty` writes such a value, one placement at a time.
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
    /// let whole: Vec<serde_json::Value> = manifest
    ///     .placements()
    ///     .map(|p| p.map(|p| serde_json::json!({"src": p.src, "dst": p.dst})))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(streamed, serde_json::to_vec_pretty(&whole)?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_json(&self, out: impl std::io::Write) -> serde_json::Result<()> {
        serde_json::to_writer_pretty(out, &JsonPlacements(self))
    }
}

/// The placements in [`Manifest::write_json`]'s shape, serialized as they are read.
struct JsonPlacements<'a>(&'a Manifest);

impl Serialize for JsonPlacements<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap, SerializeSeq};
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
        for p in self.0.placements() {
            seq.serialize_element(&Pair(&p.map_err(S::Error::custom)?))?;
        }
        seq.end()
    }
}

impl<'a> IntoIterator for &'a Manifest {
    type Item = Result<Placement>;
    type IntoIter = Paged<'a, Placement>;

    fn into_iter(self) -> Self::IntoIter {
        self.placements()
    }
}
