//! Idempotent archives of a bag directory: `.zip` (what bdbag delivers) and `.tar.gz`.
//!
//! Same content gives byte-identical archives: entries are
//! the bag-relative paths prefixed by the bag directory's name, sorted, with directory
//! entries (the bag root itself has none); every timestamp is 1980-01-01 00:00:00,
//! files are `0644`, directories `0755`, zip members are deflated.
//!
//! This module only *writes* archives; reading them is [`crate::bagit`]'s and the
//! extractor's job.
//!
//! ```
//! use deriva_bag_core::archive_write::write_zip;
//! let dir = tempfile::tempdir().unwrap();
//! let bag = dir.path().join("Dataset_1-D000");
//! std::fs::create_dir_all(bag.join("data")).unwrap();
//! std::fs::write(bag.join("bagit.txt"), "BagIt-Version: 0.97\n").unwrap();
//! let names = write_zip(&bag, &dir.path().join("Dataset_1-D000.zip")).unwrap();
//! assert_eq!(names, ["Dataset_1-D000/bagit.txt", "Dataset_1-D000/data/"]);
//! ```

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Seconds from the Unix epoch to 1980-01-01 00:00:00 UTC, the earliest zip timestamp;
/// tar entries use it too so both archive kinds agree.
const EPOCH_1980: u64 = 315_532_800;

/// One archive entry: its name inside the archive and the file it comes from.
struct Entry {
    name: String,
    source: PathBuf,
    is_dir: bool,
}

/// Lists every file and directory below `bag_dir`, named `<bag dir name>/<relative path>`
/// (directories with a trailing `/`), sorted by name.
fn entries(bag_dir: &Path, out: &Path) -> Result<Vec<Entry>> {
    // An archive written inside the bag would end up archiving itself.
    if out.starts_with(bag_dir) {
        return Err(Error::Write {
            path: out.to_path_buf(),
            detail: format!("archive must be outside the bag {}", bag_dir.display()),
        });
    }
    let root_name = bag_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Write {
            path: bag_dir.to_path_buf(),
            detail: "bag directory has no UTF-8 name".to_string(),
        })?
        .to_string();
    let mut out = Vec::new();
    collect(bag_dir, &root_name, &mut out)?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn collect(dir: &Path, prefix: &str, out: &mut Vec<Entry>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|_| Error::Write {
            path: path.clone(),
            detail: "file name is not valid UTF-8".to_string(),
        })?;
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let full = format!("{prefix}/{name}");
        if meta.is_dir() {
            out.push(Entry {
                name: format!("{full}/"),
                source: path.clone(),
                is_dir: true,
            });
            collect(&path, &full, out)?;
        } else if meta.is_file() {
            out.push(Entry {
                name: full,
                source: path,
                is_dir: false,
            });
        } else {
            return Err(Error::Write {
                path,
                detail: "not a regular file or directory; bags hold only files".to_string(),
            });
        }
    }
    Ok(())
}

/// Writes `bag_dir` as an idempotent zip at `out`, returning the entry names in order.
pub fn write_zip(bag_dir: &Path, out: &Path) -> Result<Vec<String>> {
    use zip::write::SimpleFileOptions;
    let entries = entries(bag_dir, out)?;
    let file = File::create(out).map_err(|e| Error::io(out, e))?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(file));
    let zip_err = |e: zip::result::ZipError| Error::Write {
        path: out.to_path_buf(),
        detail: e.to_string(),
    };
    let dir_options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o755);
    let file_options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644)
        // Large-file (zip64) headers only where needed keeps small archives identical to bdbag's.
        .large_file(false);
    for entry in &entries {
        if entry.is_dir {
            zip.add_directory(entry.name.as_str(), dir_options)
                .map_err(zip_err)?;
        } else {
            let len = fs::metadata(&entry.source)
                .map_err(|e| Error::io(&entry.source, e))?
                .len();
            zip.start_file(
                entry.name.as_str(),
                file_options.large_file(len >= u32::MAX as u64),
            )
            .map_err(zip_err)?;
            let mut src = File::open(&entry.source).map_err(|e| Error::io(&entry.source, e))?;
            std::io::copy(&mut src, &mut zip).map_err(|e| Error::io(&entry.source, e))?;
        }
    }
    let mut inner = zip.finish().map_err(zip_err)?;
    inner.flush().map_err(|e| Error::io(out, e))?;
    Ok(entries.into_iter().map(|e| e.name).collect())
}

/// Writes `bag_dir` as an idempotent gzip-compressed tar at `out`, returning the entry names.
pub fn write_tgz(bag_dir: &Path, out: &Path) -> Result<Vec<String>> {
    let entries = entries(bag_dir, out)?;
    let file = File::create(out).map_err(|e| Error::io(out, e))?;
    // GzBuilder writes mtime 0 and no file name, so the gzip header is constant too.
    let gz = flate2::GzBuilder::new().write(BufWriter::new(file), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(EPOCH_1980);
        header.set_uid(0);
        header.set_gid(0);
        if entry.is_dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, &entry.name, std::io::empty())
                .map_err(|e| Error::io(out, e))?;
        } else {
            let src = File::open(&entry.source).map_err(|e| Error::io(&entry.source, e))?;
            let len = src
                .metadata()
                .map_err(|e| Error::io(&entry.source, e))?
                .len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(len);
            tar.append_data(&mut header, &entry.name, src)
                .map_err(|e| Error::io(&entry.source, e))?;
        }
    }
    let gz = tar.into_inner().map_err(|e| Error::io(out, e))?;
    let mut inner = gz.finish().map_err(|e| Error::io(out, e))?;
    inner.flush().map_err(|e| Error::io(out, e))?;
    Ok(entries.into_iter().map(|e| e.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample_bag(root: &Path) -> PathBuf {
        let bag = root.join("Dataset_1-D000");
        fs::create_dir_all(bag.join("data/demo")).unwrap();
        fs::create_dir_all(bag.join("data/asset/1-I002/Image")).unwrap();
        fs::write(bag.join("bagit.txt"), "BagIt-Version: 0.97\n").unwrap();
        fs::write(bag.join("data/demo/Subject.csv"), "RID\n1-S001\n").unwrap();
        fs::write(
            bag.join("data/asset/1-I002/Image/retina 002.jpg"),
            [0xff, 0xd8],
        )
        .unwrap();
        bag
    }

    const EXPECTED: [&str; 8] = [
        "Dataset_1-D000/bagit.txt",
        "Dataset_1-D000/data/",
        "Dataset_1-D000/data/asset/",
        "Dataset_1-D000/data/asset/1-I002/",
        "Dataset_1-D000/data/asset/1-I002/Image/",
        "Dataset_1-D000/data/asset/1-I002/Image/retina 002.jpg",
        "Dataset_1-D000/data/demo/",
        "Dataset_1-D000/data/demo/Subject.csv",
    ];

    #[test]
    fn zip_entries_are_sorted_prefixed_and_dated_1980() {
        let dir = tempfile::tempdir().unwrap();
        let bag = sample_bag(dir.path());
        let out = dir.path().join("bag.zip");
        let names = write_zip(&bag, &out).unwrap();
        assert_eq!(names, EXPECTED);
        let mut archive = zip::ZipArchive::new(File::open(&out).unwrap()).unwrap();
        assert_eq!(archive.len(), EXPECTED.len());
        for (i, expected) in EXPECTED.iter().enumerate() {
            let file = archive.by_index(i).unwrap();
            assert_eq!(file.name().unwrap(), *expected);
            assert_eq!(
                file.last_modified().map(|d| d.to_string()).as_deref(),
                Some("1980-01-01 00:00:00")
            );
            let mode = file.unix_mode().unwrap() & 0o777;
            if file.is_dir() {
                assert_eq!(mode, 0o755);
            } else {
                assert_eq!(mode, 0o644);
                assert_eq!(file.compression(), zip::CompressionMethod::Deflated);
            }
        }
        let mut subject = String::new();
        archive
            .by_name("Dataset_1-D000/data/demo/Subject.csv")
            .unwrap()
            .read_to_string(&mut subject)
            .unwrap();
        assert_eq!(subject, "RID\n1-S001\n");
    }

    #[test]
    fn same_content_gives_byte_identical_archives() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let bag_a = sample_bag(a.path());
        let bag_b = sample_bag(b.path());
        write_zip(&bag_a, &a.path().join("x.zip")).unwrap();
        write_zip(&bag_b, &b.path().join("x.zip")).unwrap();
        assert_eq!(
            fs::read(a.path().join("x.zip")).unwrap(),
            fs::read(b.path().join("x.zip")).unwrap()
        );
        write_tgz(&bag_a, &a.path().join("x.tgz")).unwrap();
        write_tgz(&bag_b, &b.path().join("x.tgz")).unwrap();
        assert_eq!(
            fs::read(a.path().join("x.tgz")).unwrap(),
            fs::read(b.path().join("x.tgz")).unwrap()
        );
    }

    #[test]
    fn archive_inside_the_bag_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bag = sample_bag(dir.path());
        let err = write_zip(&bag, &bag.join("self.zip")).unwrap_err();
        assert!(err.to_string().contains("outside the bag"), "{err}");
        assert!(!bag.join("self.zip").exists());
    }

    #[test]
    fn tgz_entries_round_trip_with_fixed_modes_and_mtimes() {
        let dir = tempfile::tempdir().unwrap();
        let bag = sample_bag(dir.path());
        let out = dir.path().join("bag.tar.gz");
        let names = write_tgz(&bag, &out).unwrap();
        assert_eq!(names, EXPECTED);
        let mut archive =
            tar::Archive::new(flate2::read::GzDecoder::new(File::open(&out).unwrap()));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            assert_eq!(header.mtime().unwrap(), EPOCH_1980);
            if header.entry_type().is_dir() {
                assert_eq!(header.mode().unwrap(), 0o755);
            } else {
                assert_eq!(header.mode().unwrap(), 0o644);
            }
            if name.ends_with("retina 002.jpg") {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                assert_eq!(bytes, [0xff, 0xd8]);
            }
            seen.push(name);
        }
        // tar strips the trailing slash of directory names when reading back.
        let expected: Vec<&str> = EXPECTED.iter().map(|n| n.trim_end_matches('/')).collect();
        let seen: Vec<&str> = seen.iter().map(|n| n.trim_end_matches('/')).collect();
        assert_eq!(seen, expected);
    }
}
