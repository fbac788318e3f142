//! [`RestructureOptions`]: DerivaML's keyword arguments, as a builder.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deriva_bag_features::{Missing, TargetValue, Targets};

use crate::error::BoxError;

/// Names a directory after one target value (called once per directory level, never for a
/// missing value, which becomes `unknown`).
pub type TargetTransform = dyn Fn(&TargetValue) -> Result<String, BoxError> + Send + Sync;

/// Picks the type that names a multi-typed dataset's directory (never called with `[]`).
pub type TypeSelector = dyn Fn(&[String]) -> String + Send + Sync;

/// Writes the output for `(source, suggested destination)` itself and returns the path it
/// wrote (which may differ, e.g. in extension). Called in parallel from several threads.
pub type FileTransformer = dyn Fn(&Path, &Path) -> Result<PathBuf, BoxError> + Send + Sync;

/// Reports placement progress: `(files placed so far, files to place)`. Called from the
/// placing threads, so it must be cheap and thread-safe (an indicatif bar is).
pub type ProgressFn = dyn Fn(usize, usize) + Send + Sync;

/// Options of [`restructure_assets`](crate::restructure_assets), with DerivaML's
/// defaults: auto-detected asset table, no targets, `missing = Unknown` (`unknown/`),
/// symlinks, first dataset type, `Training→training, Testing→testing,
/// Validation→validation`, `enforce_vocabulary = true`, no file transformer.
///
/// ```
/// use deriva_bag_features::{Missing, Selector, Targets};
/// use deriva_bag_restructure::RestructureOptions;
/// let opts = RestructureOptions::new()
///     .asset_table("Image")
///     .targets(Targets::new().with("Glaucoma", Selector::Newest))
///     .missing(Missing::Skip)
///     .use_symlinks(false)
///     .map_type("Validation", "val");
/// assert_eq!(opts.type_dir("Validation"), Some("val"));
/// assert_eq!(opts.type_dir("Training"), Some("training"));
/// ```
#[derive(Clone)]
pub struct RestructureOptions {
    pub(crate) asset_table: Option<String>,
    pub(crate) targets: Targets,
    pub(crate) target_transform: Option<Arc<TargetTransform>>,
    pub(crate) missing: Missing,
    pub(crate) use_symlinks: bool,
    pub(crate) type_selector: Option<Arc<TypeSelector>>,
    pub(crate) type_to_dir_map: BTreeMap<String, String>,
    pub(crate) enforce_vocabulary: bool,
    pub(crate) file_transformer: Option<Arc<FileTransformer>>,
    pub(crate) progress: Option<Arc<ProgressFn>>,
}

impl Default for RestructureOptions {
    fn default() -> Self {
        RestructureOptions {
            asset_table: None,
            targets: Targets::new(),
            target_transform: None,
            missing: Missing::Unknown,
            use_symlinks: true,
            type_selector: None,
            type_to_dir_map: default_type_map(),
            enforce_vocabulary: true,
            file_transformer: None,
            progress: None,
        }
    }
}

/// `Training→training`, `Testing→testing`, `Validation→validation`.
pub fn default_type_map() -> BTreeMap<String, String> {
    [
        ("Training", "training"),
        ("Testing", "testing"),
        ("Validation", "validation"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl fmt::Debug for RestructureOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestructureOptions")
            .field("asset_table", &self.asset_table)
            .field("targets", &self.targets)
            .field("target_transform", &self.target_transform.is_some())
            .field("missing", &self.missing)
            .field("use_symlinks", &self.use_symlinks)
            .field("type_selector", &self.type_selector.is_some())
            .field("type_to_dir_map", &self.type_to_dir_map)
            .field("enforce_vocabulary", &self.enforce_vocabulary)
            .field("file_transformer", &self.file_transformer.is_some())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl RestructureOptions {
    /// The defaults (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// The asset table (`Image` or `schema:Image`); auto-detected when not set, which fails
    /// when several asset tables have members.
    pub fn asset_table(mut self, table: impl Into<String>) -> Self {
        self.asset_table = Some(table.into());
        self
    }

    /// The targets: one directory level per target, in order.
    pub fn targets(mut self, targets: Targets) -> Self {
        self.targets = targets;
        self
    }

    /// Names a level's directory from its value; must return the name (made safe, see
    /// [`sanitize_label`](crate::sanitize_label)). Not called for missing values.
    pub fn target_transform<F>(mut self, f: F) -> Self
    where
        F: Fn(&TargetValue) -> Result<String, BoxError> + Send + Sync + 'static,
    {
        self.target_transform = Some(Arc::new(f));
        self
    }

    /// What to do with assets lacking a value for some target (default `Unknown`).
    pub fn missing(mut self, missing: Missing) -> Self {
        self.missing = missing;
        self
    }

    /// Absolute symlinks (`true`, default) or copies. Ignored with a file transformer.
    pub fn use_symlinks(mut self, yes: bool) -> Self {
        self.use_symlinks = yes;
        self
    }

    /// Chooses the type of a multi-typed dataset (default: its first type).
    pub fn type_selector<F>(mut self, f: F) -> Self
    where
        F: Fn(&[String]) -> String + Send + Sync + 'static,
    {
        self.type_selector = Some(Arc::new(f));
        self
    }

    /// Replaces the dataset-type → directory map. A dataset whose (selected) type is not in
    /// the map adds no directory level; an untyped dataset uses the map's `Testing` entry
    /// (or `testing` when the map has none), as DerivaML treats it as Testing.
    pub fn type_to_dir_map(mut self, map: BTreeMap<String, String>) -> Self {
        self.type_to_dir_map = map;
        self
    }

    /// Adds or changes one entry of the type → directory map.
    pub fn map_type(mut self, dataset_type: impl Into<String>, dir: impl Into<String>) -> Self {
        self.type_to_dir_map.insert(dataset_type.into(), dir.into());
        self
    }

    /// With `true` (default), feature targets must be vocabulary features and several
    /// differing values without a selector are an error; with `false`, the first by RCT wins.
    pub fn enforce_vocabulary(mut self, yes: bool) -> Self {
        self.enforce_vocabulary = yes;
        self
    }

    /// Converts files instead of linking or copying them (see [`FileTransformer`]).
    pub fn file_transformer<F>(mut self, f: F) -> Self
    where
        F: Fn(&Path, &Path) -> Result<PathBuf, BoxError> + Send + Sync + 'static,
    {
        self.file_transformer = Some(Arc::new(f));
        self
    }

    /// Reports progress while files are placed (see [`ProgressFn`]).
    pub fn progress<F>(mut self, f: F) -> Self
    where
        F: Fn(usize, usize) + Send + Sync + 'static,
    {
        self.progress = Some(Arc::new(f));
        self
    }

    /// The directory a dataset type maps to, if any.
    pub fn type_dir(&self, dataset_type: &str) -> Option<&str> {
        self.type_to_dir_map.get(dataset_type).map(String::as_str)
    }

    /// The requested targets.
    pub fn get_targets(&self) -> &Targets {
        &self.targets
    }

    /// The missing policy.
    pub fn get_missing(&self) -> Missing {
        self.missing
    }
}
