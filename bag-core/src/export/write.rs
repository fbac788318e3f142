//! Writing record batches as Parquet: one file per table or feature, row groups flushed as
//! the batches stream through (memory stays at about one row group), and a whole export
//! built in a temporary directory that is renamed into place only when every file is
//! complete. Nothing existing is overwritten.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use deriva_bag_features::{Selector, TableName};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::RecordBatches;
use crate::{cache, DatasetBag, Error, Result};

/// Rows per Parquet row group unless [`ParquetOptions::row_group_rows`] says otherwise: small
/// enough that the writer's buffer stays a few MiB, large enough for readers to scan well.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 65_536;

/// How an export writes its files.
#[derive(Debug, Clone, Copy)]
pub struct ParquetOptions {
    /// Rows per row group (at least 1).
    pub row_group_rows: usize,
    /// Rows per Arrow batch read from the index (at least 1).
    pub batch_rows: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            batch_rows: super::DEFAULT_BATCH_ROWS,
        }
    }
}

impl ParquetOptions {
    fn writer_properties(&self) -> WriterProperties {
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            // Snappy: the codec every Parquet reader has, and cheap to write.
            .set_compression(Compression::SNAPPY)
            .set_created_by(concat!("deriva-bag ", env!("CARGO_PKG_VERSION")).to_string())
            .build()
    }
}

/// One Parquet file of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    /// The exported table; for a feature, its target table.
    pub table: TableName,
    /// The feature name, for a feature's values.
    pub feature: Option<String>,
    /// The file, relative to the export directory.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
}

/// A feature an export left out because its selector does not apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFeature {
    /// The feature's target table.
    pub table: TableName,
    /// The feature name.
    pub feature: String,
    /// Why the selector does not apply.
    pub reason: String,
}

/// Why `selector` cannot pick among `feature`'s values, when that is a reason to leave the
/// feature out ([`Selector::check_for`]: a majority vote without the column it counts).
/// Features of one bag differ (a float measurement has no term), so a whole-bag export skips
/// those instead of failing on them; any other selector error fails the export.
fn selector_skips(
    feature: &deriva_bag_features::Feature,
    selector: Option<&Selector>,
) -> Result<Option<deriva_bag_features::Error>> {
    use deriva_bag_features::Error as FeatureError;
    match selector.map(|s| s.check_for(feature)) {
        Some(Err(
            e @ (FeatureError::NoMajorityColumn { .. } | FeatureError::UnknownField { .. }),
        )) => Ok(Some(e)),
        Some(Err(e)) => Err(e.into()),
        _ => Ok(None),
    }
}

/// What [`DatasetBag::export_parquet`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The export directory.
    pub out: PathBuf,
    /// One file per table of the bag (`tables/<schema>/<table>.parquet`), in table order.
    pub tables: Vec<ExportedFile>,
    /// Features a `majority` selector cannot count (no term column, or not the named
    /// column), left out with the reason; the other features are written.
    pub skipped: Vec<SkippedFeature>,
    /// One file per feature (`features/<schema>/<target table>/<feature>.parquet`), in
    /// feature order.
    pub features: Vec<ExportedFile>,
}

/// Characters kept out of file names made from model names: path separators, what Windows
/// forbids, and `%` itself, so the encoding is reversible and two names never share a file.
const NAME_ESCAPES: &AsciiSet = &CONTROLS
    .add(b'/')
    .add(b'\\')
    .add(b':')
    .add(b'*')
    .add(b'?')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'|')
    .add(b'%');

/// A model name (schema, table or feature; untrusted, from `schema.json`) as one file-name
/// component: percent-encoded per [`NAME_ESCAPES`], a leading `.` as `%2E` (so neither `.`,
/// `..` nor a hidden file can come out), the empty name as `%`.
fn file_component(name: &str) -> String {
    if name.is_empty() {
        return "%".to_string();
    }
    let encoded = utf8_percent_encode(name, NAME_ESCAPES).to_string();
    match encoded.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => encoded,
    }
}

impl RecordBatches {
    /// Writes every batch to a new Parquet file at `path` and returns the number of rows.
    /// The file is written under a temporary name beside `path` and appears only when
    /// complete; an existing `path` is an error ([`Error::Write`] naming it), never
    /// overwritten.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{fixtures, DatasetBag, OpenOptions};
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let file = tmp.path().join("Image.parquet");
    /// assert_eq!(bag.get_table_as_arrow("Image")?.write_parquet(&file)?, 6);
    /// assert!(bag.get_table_as_arrow("Image")?.write_parquet(&file).is_err());
    /// # Ok(()) }
    /// ```
    pub fn write_parquet(self, path: &Path) -> Result<u64> {
        if fs::symlink_metadata(path).is_ok() {
            return Err(exists(path));
        }
        let temp = cache::temp_sibling(path);
        let written = create_new(&temp)
            .and_then(|file| self.write_to(file, &temp, &ParquetOptions::default()))
            .and_then(|rows| publish_new(&temp, path).map(|()| rows));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written
    }

    /// Streams the batches into `file` (at `path`, for errors) as Parquet.
    fn write_to(self, file: File, path: &Path, options: &ParquetOptions) -> Result<u64> {
        let failed = |e: parquet::errors::ParquetError| Error::Write {
            path: path.to_path_buf(),
            detail: format!("Parquet: {e}"),
        };
        let mut writer =
            ArrowWriter::try_new(file, self.schema(), Some(options.writer_properties()))
                .map_err(failed)?;
        let mut rows = 0u64;
        for batch in self.with_batch_rows(options.batch_rows) {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(failed)?;
        }
        let file = writer.into_inner().map_err(failed)?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        Ok(rows)
    }
}

fn exists(path: &Path) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        detail: "already exists; not overwritten (remove it or choose another name)".into(),
    }
}

fn create_new(path: &Path) -> Result<File> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => exists(path),
            _ => Error::io(path, e),
        })
}

/// Moves the finished `temp` to `path` unless something appeared there meanwhile: a hard
/// link fails on an existing name, where a rename would replace it.
fn publish_new(temp: &Path, path: &Path) -> Result<()> {
    match fs::hard_link(temp, path) {
        Ok(()) => fs::remove_file(temp).map_err(|e| Error::io(temp, e)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(exists(path)),
        // A file system without hard links: check, then rename.
        Err(_) if fs::symlink_metadata(path).is_ok() => Err(exists(path)),
        Err(_) => cache::publish(temp, path),
    }
}

/// Removes a temporary export directory unless disarmed: an export that fails leaves nothing.
struct TempDirGuard(Option<PathBuf>);

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!(path = %dir.display(), "cannot remove a failed export: {e}");
            }
        }
    }
}

impl DatasetBag {
    /// Exports the bag as Parquet into the new directory `out`: one file per table
    /// (`tables/<schema>/<table>.parquet`, every row of the bag's copy of it, as
    /// [`get_table_as_arrow`](Self::get_table_as_arrow) gives them) and one per feature
    /// (`features/<schema>/<target table>/<feature>.parquet`: this dataset's values under
    /// `selector`, as [`feature_values_as_arrow`](Self::feature_values_as_arrow) gives them).
    /// Model names are percent-encoded where a file name cannot hold them (`/`, `:`, `%`, …).
    ///
    /// Everything is written into a temporary directory beside `out` that is renamed to `out`
    /// when complete, so `out` either holds the whole export or does not exist; a failed
    /// export leaves nothing. `out` must not exist (an empty directory is replaced): an
    /// existing one is [`Error::Write`] naming it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use deriva_bag_core::{fixtures, DatasetBag, OpenOptions};
    /// use deriva_bag_core::export::ParquetOptions;
    /// use deriva_bag_core::features::Selector;
    /// let tmp = tempfile::tempdir()?;
    /// let generated = fixtures::small_bag(tmp.path())?;
    /// let options = OpenOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    /// let bag = DatasetBag::open_with(&generated.path, &options)?;
    /// let out = tmp.path().join("export");
    /// let summary = bag.export_parquet(&out, Some(&Selector::newest()), &ParquetOptions::default())?;
    /// let glaucoma = summary.features.iter().find(|f| f.feature.as_deref() == Some("Glaucoma")).unwrap();
    /// assert_eq!(glaucoma.path, std::path::Path::new("features/demo/Image/Glaucoma.parquet"));
    /// assert_eq!(glaucoma.rows, 5);
    /// assert!(out.join("tables/demo/Image.parquet").is_file());
    /// # Ok(()) }
    /// ```
    pub fn export_parquet(
        &self,
        out: &Path,
        selector: Option<&Selector>,
        options: &ParquetOptions,
    ) -> Result<ExportSummary> {
        check_free(out)?;
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let temp = cache::temp_sibling(out);
        fs::create_dir(&temp).map_err(|e| Error::io(&temp, e))?;
        let mut guard = TempDirGuard(Some(temp.clone()));
        let write = |relative: PathBuf, batches: RecordBatches| -> Result<u64> {
            let path = temp.join(&relative);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            // `create_new`: two model names never share a file, whatever their encoding.
            batches.write_to(create_new(&path)?, &path, options)
        };
        let mut tables = Vec::new();
        for table in self.list_tables() {
            let relative: PathBuf = ["tables", &file_component(&table.schema)]
                .iter()
                .collect::<PathBuf>()
                .join(format!("{}.parquet", file_component(&table.table)));
            let rows = write(
                relative.clone(),
                self.get_table_as_arrow(&table.to_string())?,
            )?;
            tracing::debug!(table = %table, rows, "exported table");
            tables.push(ExportedFile {
                table,
                feature: None,
                path: relative,
                rows,
            });
        }
        let mut features = Vec::new();
        let mut skipped = Vec::new();
        for feature in self.find_features(None)? {
            let target = feature.target_table.clone();
            if let Some(why) = selector_skips(&feature, selector)? {
                tracing::warn!(feature = %feature.name, table = %target, "export leaves the feature out: {why}");
                skipped.push((feature, why));
                continue;
            }
            let relative: PathBuf = [
                "features",
                &file_component(&target.schema),
                &file_component(&target.table),
            ]
            .iter()
            .collect::<PathBuf>()
            .join(format!("{}.parquet", file_component(&feature.name)));
            let batches =
                self.feature_values_as_arrow(&target.to_string(), &feature.name, selector)?;
            let rows = write(relative.clone(), batches)?;
            tracing::debug!(feature = %feature.name, table = %target, rows, "exported feature");
            features.push(ExportedFile {
                table: target,
                feature: Some(feature.name),
                path: relative,
                rows,
            });
        }
        if features.is_empty() && !skipped.is_empty() {
            // The selector applies to no feature at all: a mistake, not a skip.
            let (_, why) = skipped.swap_remove(0);
            return Err(why.into());
        }
        let skipped = skipped
            .into_iter()
            .map(|(feature, why)| SkippedFeature {
                table: feature.target_table,
                feature: feature.name,
                reason: why.to_string(),
            })
            .collect();
        check_free(out)?;
        // A directory rename never replaces a non-empty directory, so an `out` created
        // meanwhile is refused here too.
        fs::rename(&temp, out).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty | ErrorKind::NotADirectory => {
                exists(out)
            }
            _ => Error::io(out, e),
        })?;
        guard.0 = None;
        Ok(ExportSummary {
            out: out.to_path_buf(),
            tables,
            skipped,
            features,
        })
    }
}

/// `out` may be written: it does not exist, or is an empty directory.
fn check_free(out: &Path) -> Result<()> {
    if out.file_name().is_none() {
        return Err(Error::Write {
            path: out.to_path_buf(),
            detail: "not a directory name to export into".into(),
        });
    }
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(out, e)),
        Ok(meta) if meta.is_dir() => {
            let mut entries = fs::read_dir(out).map_err(|e| Error::io(out, e))?;
            if entries.next().is_none() {
                Ok(())
            } else {
                Err(exists(out))
            }
        }
        Ok(_) => Err(exists(out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_become_single_safe_file_name_components() {
        assert_eq!(file_component("Image"), "Image");
        assert_eq!(file_component("deriva-ml"), "deriva-ml");
        assert_eq!(
            file_component("Execution_Image_Glaucoma"),
            "Execution_Image_Glaucoma"
        );
        assert_eq!(file_component("a/b"), "a%2Fb");
        assert_eq!(file_component("..\\x"), "%2E.%5Cx");
        assert_eq!(file_component(".."), "%2E.");
        assert_eq!(file_component("."), "%2E");
        assert_eq!(file_component("C:"), "C%3A");
        assert_eq!(file_component("50%"), "50%25");
        assert_eq!(file_component(""), "%");
        assert_eq!(file_component("Größe"), "Gr%C3%B6%C3%9Fe");
    }

    #[test]
    fn distinct_names_never_share_a_file_name() {
        let names = ["a/b", "a%2Fb", "a_b", ".a", "%2Ea", "", "%"];
        let encoded: std::collections::BTreeSet<String> =
            names.iter().map(|n| file_component(n)).collect();
        assert_eq!(encoded.len(), names.len(), "{encoded:?}");
    }
}
