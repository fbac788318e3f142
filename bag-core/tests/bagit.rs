//! BagIt reading, validation and archive extraction on small bags built by hand.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use deriva_bag_core::archive::{extract, is_archive};
use deriva_bag_core::bagit::{
    Algorithm, BagItFiles, BagItVersion, ValidationIssue, ValidationMode, ValidationReport,
};
use deriva_bag_core::Error;
use md5::Md5;
use sha2::{Digest, Sha256};

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A remote (fetch.txt) file: bag path, bytes, URL.
struct Remote<'a> {
    path: &'a str,
    bytes: &'a [u8],
    url: &'a str,
}

/// Writes a bag as bdbag does: local files on disk, remote files only in fetch.txt and
/// manifest-md5.txt, Payload-Oxum counting both, tag manifests over every tag file.
fn write_bag(root: &Path, version: &str, local: &[(&str, &[u8])], remote: &[Remote<'_>]) {
    fs::create_dir_all(root.join("data")).unwrap();
    for (path, bytes) in local {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    fs::write(
        root.join("bagit.txt"),
        format!("BagIt-Version: {version}\nTag-File-Character-Encoding: UTF-8\n"),
    )
    .unwrap();
    let bytes: usize = local.iter().map(|f| f.1.len()).sum::<usize>()
        + remote.iter().map(|r| r.bytes.len()).sum::<usize>();
    let count = local.len() + remote.len();
    fs::write(
        root.join("bag-info.txt"),
        format!("Bag-Software-Agent: hand-made\nPayload-Oxum: {bytes}.{count}\n"),
    )
    .unwrap();
    let mut md5 = String::new();
    let mut sha = String::new();
    for (path, bytes) in local {
        md5 += &format!("{}  {}\n", md5_hex(bytes), path.replace('\n', "%0A"));
        sha += &format!("{}  {}\n", sha256_hex(bytes), path.replace('\n', "%0A"));
    }
    let mut fetch = String::new();
    for r in remote {
        md5 += &format!("{}  {}\n", md5_hex(r.bytes), r.path);
        fetch += &format!(
            "{}\t{}\t{}\n",
            r.url,
            r.bytes.len(),
            r.path.replace('%', "%25")
        );
    }
    fs::write(root.join("manifest-md5.txt"), md5).unwrap();
    fs::write(root.join("manifest-sha256.txt"), sha).unwrap();
    let mut tag_files = vec![
        "bagit.txt",
        "bag-info.txt",
        "manifest-md5.txt",
        "manifest-sha256.txt",
    ];
    if !remote.is_empty() {
        fs::write(root.join("fetch.txt"), fetch).unwrap();
        tag_files.push("fetch.txt");
    }
    write_tag_manifests(root, &tag_files);
}

fn write_tag_manifests(root: &Path, tag_files: &[&str]) {
    let mut tag_md5 = String::new();
    let mut tag_sha = String::new();
    for name in tag_files {
        let bytes = fs::read(root.join(name)).unwrap();
        tag_md5 += &format!("{} {name}\n", md5_hex(&bytes));
        tag_sha += &format!("{} {name}\n", sha256_hex(&bytes));
    }
    fs::write(root.join("tagmanifest-md5.txt"), tag_md5).unwrap();
    fs::write(root.join("tagmanifest-sha256.txt"), tag_sha).unwrap();
}

const SCHEMA: &[u8] = b"{\"schemas\": {}}";
const DATASET_CSV: &[u8] = b"RID,Description\n1-D000,demo\n";
const IMAGE: &[u8] = b"\x89PNG fake image bytes";
/// Payload bytes of [`simple_bag`]: 15 + 28 + 21.
const SIMPLE_BYTES: u64 = 64;

fn simple_bag(dir: &Path, version: &str) -> PathBuf {
    let root = dir.join("Dataset_1-D000");
    write_bag(
        &root,
        version,
        &[
            ("data/schema.json", SCHEMA),
            ("data/deriva-ml/Dataset.csv", DATASET_CSV),
            ("data/asset/1-I001/Image/retina 001.png", IMAGE),
        ],
        &[],
    );
    root
}

/// A bag with one local CSV and two remote images, one of them with `%` in its name.
fn holey_bag(dir: &Path) -> PathBuf {
    let root = dir.join("Dataset_1-D000");
    write_bag(
        &root,
        "0.97",
        &[
            ("data/schema.json", SCHEMA),
            ("data/deriva-ml/Dataset.csv", DATASET_CSV),
        ],
        &[
            Remote {
                path: "data/asset/1-I001/Image/a.png",
                bytes: b"image one",
                url: "https://example.org/hatrac/Image/a.png:1",
            },
            Remote {
                path: "data/asset/1-I002/Image/50% b.png",
                bytes: b"image two!",
                url: "https://example.org/hatrac/Image/50%25%20b.png:1",
            },
        ],
    );
    root
}

fn kinds(report: &ValidationReport) -> Vec<(&str, &str)> {
    report
        .errors
        .iter()
        .map(|i| (i.kind.as_str(), i.path.as_str()))
        .collect()
}

fn validate(root: &Path, mode: ValidationMode) -> ValidationReport {
    BagItFiles::read(root)
        .unwrap()
        .validate(mode, None)
        .unwrap()
}

const ALL_MODES: [ValidationMode; 4] = [
    ValidationMode::Structure,
    ValidationMode::Completeness,
    ValidationMode::Fast,
    ValidationMode::Full,
];

#[test]
fn bagit_097_bag_reads_and_passes_every_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    let files = BagItFiles::read(&root).unwrap();
    assert_eq!(files.version, BagItVersion::V0_97);
    assert_eq!(files.payload_oxum(), Some((SIMPLE_BYTES, 3)));
    assert_eq!(files.info_value("bag-software-agent"), Some("hand-made"));
    assert_eq!(files.manifests.len(), 2);
    assert_eq!(files.tag_manifests.len(), 2);
    assert!(files.fetch.is_empty());
    let md5 = files.manifest(Algorithm::Md5).unwrap();
    assert_eq!(
        md5.entries[2].path,
        "data/asset/1-I001/Image/retina 001.png"
    );
    assert_eq!(md5.entries[2].digest, md5_hex(IMAGE));
    for mode in ALL_MODES {
        let report = files.validate(mode, None).unwrap();
        assert_eq!(
            report,
            ValidationReport {
                valid: true,
                errors: vec![]
            },
            "{mode}"
        );
    }
}

#[test]
fn bagit_10_bag_without_bag_info_passes_all_but_fast() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "1.0");
    fs::remove_file(root.join("bag-info.txt")).unwrap();
    write_tag_manifests(
        &root,
        &["bagit.txt", "manifest-md5.txt", "manifest-sha256.txt"],
    );
    let files = BagItFiles::read(&root).unwrap();
    assert_eq!(files.version, BagItVersion::V1_0);
    assert!(files.info.is_empty());
    for mode in [
        ValidationMode::Structure,
        ValidationMode::Completeness,
        ValidationMode::Full,
    ] {
        assert!(files.validate(mode, None).unwrap().valid, "{mode}");
    }
    let fast = files.validate(ValidationMode::Fast, None).unwrap();
    assert_eq!(kinds(&fast), [("missing-oxum", "bag-info.txt")]);
}

#[test]
fn tag_files_with_bom_and_crlf_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    for name in [
        "bagit.txt",
        "bag-info.txt",
        "manifest-md5.txt",
        "manifest-sha256.txt",
    ] {
        let text = fs::read_to_string(root.join(name)).unwrap();
        fs::write(
            root.join(name),
            format!("\u{feff}{}", text.replace('\n', "\r\n")),
        )
        .unwrap();
    }
    write_tag_manifests(
        &root,
        &[
            "bagit.txt",
            "bag-info.txt",
            "manifest-md5.txt",
            "manifest-sha256.txt",
        ],
    );
    let files = BagItFiles::read(&root).unwrap();
    assert_eq!(files.payload_oxum(), Some((SIMPLE_BYTES, 3)));
    assert!(files.validate(ValidationMode::Full, None).unwrap().valid);
}

#[test]
fn missing_bagit_txt_is_not_a_bag() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    fs::remove_file(root.join("bagit.txt")).unwrap();
    let err = BagItFiles::read(&root).unwrap_err();
    match &err {
        Error::NotABag { path, detail } => {
            assert_eq!(path, &root);
            assert_eq!(detail, "no bagit.txt");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("{}: not a bag: no bagit.txt", root.display())
    );
}

#[test]
fn missing_data_directory_is_not_a_bag() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    fs::remove_dir_all(root.join("data")).unwrap();
    match BagItFiles::read(&root).unwrap_err() {
        Error::NotABag { detail, .. } => assert_eq!(detail, "no data/ directory"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn manifest_line_with_bad_digest_names_file_line_and_value() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    let path = root.join("manifest-sha256.txt");
    let mut text = fs::read_to_string(&path).unwrap();
    text += "abc123  data/extra.csv\n";
    fs::write(&path, text).unwrap();
    let err = BagItFiles::read(&root).unwrap_err();
    match &err {
        Error::TagFile {
            path: p,
            line,
            detail,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*line, 4);
            assert_eq!(
                detail,
                "bad sha256 digest \"abc123\": expected 64 hex digits"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "{} line 4: bad sha256 digest \"abc123\": expected 64 hex digits",
            path.display()
        )
    );
}

#[test]
fn altered_payload_file_fails_full_validation_with_path_expected_and_found() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    let tampered = b"\x89PNG other image bytes";
    fs::write(
        root.join("data/asset/1-I001/Image/retina 001.png"),
        tampered,
    )
    .unwrap();
    let files = BagItFiles::read(&root).unwrap();
    // Structure and completeness do not read payload bytes.
    assert!(
        files
            .validate(ValidationMode::Structure, None)
            .unwrap()
            .valid
    );
    assert!(
        files
            .validate(ValidationMode::Completeness, None)
            .unwrap()
            .valid
    );
    let report = files.validate(ValidationMode::Full, None).unwrap();
    assert!(!report.valid);
    let path = "data/asset/1-I001/Image/retina 001.png";
    assert_eq!(
        report.errors,
        vec![
            ValidationIssue {
                kind: "checksum-mismatch".into(),
                path: path.into(),
                detail: format!(
                    "md5 expected {} (manifest-md5.txt) but found {}",
                    md5_hex(IMAGE),
                    md5_hex(tampered)
                ),
            },
            ValidationIssue {
                kind: "checksum-mismatch".into(),
                path: path.into(),
                detail: format!(
                    "sha256 expected {} (manifest-sha256.txt) but found {}",
                    sha256_hex(IMAGE),
                    sha256_hex(tampered)
                ),
            },
        ]
    );
}

#[test]
fn altered_and_missing_tag_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    let info = fs::read_to_string(root.join("bag-info.txt")).unwrap();
    fs::write(root.join("bag-info.txt"), info + "Contact-Name: someone\n").unwrap();
    let mut tm = fs::read_to_string(root.join("tagmanifest-md5.txt")).unwrap();
    tm += &format!("{} metadata/provenance.json\n", md5_hex(b"{}"));
    fs::write(root.join("tagmanifest-md5.txt"), tm).unwrap();
    let structure = validate(&root, ValidationMode::Structure);
    assert_eq!(
        kinds(&structure),
        [("missing-tag-file", "metadata/provenance.json")]
    );
    assert_eq!(
        structure.errors[0].detail,
        "listed in tagmanifest-md5.txt but absent"
    );
    let full = validate(&root, ValidationMode::Full);
    assert_eq!(
        kinds(&full),
        [
            ("tagmanifest-mismatch", "bag-info.txt"),
            ("tagmanifest-mismatch", "bag-info.txt"),
            ("missing-tag-file", "metadata/provenance.json"),
        ]
    );
}

#[test]
fn unlisted_payload_file_is_unexpected_in_every_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    fs::write(root.join("data/deriva-ml/Stray.csv"), b"RID\n").unwrap();
    for mode in [
        ValidationMode::Structure,
        ValidationMode::Completeness,
        ValidationMode::Full,
    ] {
        let report = validate(&root, mode);
        assert_eq!(
            kinds(&report),
            [("unexpected-file", "data/deriva-ml/Stray.csv")],
            "{mode}"
        );
    }
    let fast = validate(&root, ValidationMode::Fast);
    assert_eq!(
        kinds(&fast),
        [
            ("oxum-mismatch", "bag-info.txt"),
            ("unexpected-file", "data/deriva-ml/Stray.csv")
        ]
    );
}

#[test]
fn file_listed_in_md5_only_is_missing_from_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    let sha = fs::read_to_string(root.join("manifest-sha256.txt")).unwrap();
    let kept: String = sha
        .lines()
        .filter(|l| !l.contains("Dataset.csv"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(root.join("manifest-sha256.txt"), kept).unwrap();
    let report = validate(&root, ValidationMode::Structure);
    assert_eq!(
        report.errors,
        vec![ValidationIssue {
            kind: "missing-manifest-entry".into(),
            path: "data/deriva-ml/Dataset.csv".into(),
            detail: "present but not listed in manifest-sha256.txt".into(),
        }]
    );
}

#[test]
fn deleted_local_file_passes_structure_but_fails_completeness() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    fs::remove_file(root.join("data/deriva-ml/Dataset.csv")).unwrap();
    assert!(validate(&root, ValidationMode::Structure).valid);
    let report = validate(&root, ValidationMode::Completeness);
    assert_eq!(
        report.errors,
        vec![ValidationIssue {
            kind: "missing-file".into(),
            path: "data/deriva-ml/Dataset.csv".into(),
            detail:
                "listed in manifest-md5.txt, manifest-sha256.txt but absent and not in fetch.txt"
                    .into(),
        }]
    );
}

#[test]
fn holey_bag_passes_structure_and_completeness_and_fails_fast_and_full() {
    let tmp = tempfile::tempdir().unwrap();
    let root = holey_bag(tmp.path());
    let files = BagItFiles::read(&root).unwrap();
    assert_eq!(files.fetch.len(), 2);
    assert_eq!(files.fetch[1].path, "data/asset/1-I002/Image/50% b.png");
    assert_eq!(files.fetch[1].length, Some(10));
    assert!(
        files
            .validate(ValidationMode::Structure, None)
            .unwrap()
            .valid
    );
    assert!(
        files
            .validate(ValidationMode::Completeness, None)
            .unwrap()
            .valid
    );

    let fast = files.validate(ValidationMode::Fast, None).unwrap();
    let local = (SCHEMA.len() + DATASET_CSV.len()) as u64;
    let oxum_bytes = local + 9 + 10;
    assert_eq!(
        fast.errors,
        vec![ValidationIssue {
            kind: "oxum-mismatch".into(),
            path: "bag-info.txt".into(),
            detail: format!(
                "Payload-Oxum {oxum_bytes}.4: expected 4 files and {oxum_bytes} bytes but found \
                 2 files and {local} bytes under data/"
            ),
        }]
    );

    let full = files.validate(ValidationMode::Full, None).unwrap();
    assert_eq!(
        kinds(&full),
        [
            ("missing-file", "data/asset/1-I001/Image/a.png"),
            ("missing-file", "data/asset/1-I002/Image/50% b.png"),
        ]
    );
    assert_eq!(
        full.errors[0].detail,
        "listed in manifest-md5.txt and fetch.txt but not fetched"
    );

    // Materialise the remote files: now everything passes, the `%` name included.
    fs::create_dir_all(root.join("data/asset/1-I001/Image")).unwrap();
    fs::create_dir_all(root.join("data/asset/1-I002/Image")).unwrap();
    fs::write(root.join("data/asset/1-I001/Image/a.png"), b"image one").unwrap();
    fs::write(
        root.join("data/asset/1-I002/Image/50% b.png"),
        b"image two!",
    )
    .unwrap();
    for mode in ALL_MODES {
        assert!(files.validate(mode, None).unwrap().valid, "{mode}");
    }
}

#[test]
fn full_validation_reports_progress_up_to_total_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    let files = BagItFiles::read(&root).unwrap();
    let last_done = AtomicU64::new(0);
    let last_total = AtomicU64::new(0);
    let cb = |done: u64, total: u64| {
        last_done.fetch_max(done, Ordering::SeqCst);
        last_total.store(total, Ordering::SeqCst);
    };
    assert!(
        files
            .validate(ValidationMode::Full, Some(&cb))
            .unwrap()
            .valid
    );
    let tag_bytes: u64 = [
        "bagit.txt",
        "bag-info.txt",
        "manifest-md5.txt",
        "manifest-sha256.txt",
    ]
    .iter()
    .map(|n| fs::metadata(root.join(n)).unwrap().len())
    .sum();
    assert_eq!(last_total.load(Ordering::SeqCst), SIMPLE_BYTES + tag_bytes);
    assert_eq!(last_done.load(Ordering::SeqCst), SIMPLE_BYTES + tag_bytes);
}

#[test]
fn fetch_txt_path_escaping_the_bag_is_unsafe_path() {
    for (bad, shown) in [
        ("../../outside.png", "../../outside.png"),
        ("/etc/passwd", "/etc/passwd"),
        ("data/%2e%2e/%2e%2e/x", "data/../../x"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let root = simple_bag(tmp.path(), "0.97");
        fs::write(
            root.join("fetch.txt"),
            format!("https://example.org/a\t5\tdata/ok.png\nhttps://example.org/b\t5\t{bad}\n"),
        )
        .unwrap();
        match BagItFiles::read(&root).unwrap_err() {
            Error::UnsafePath { source_file, path } => {
                assert_eq!(
                    source_file,
                    PathBuf::from(format!("{} line 2", root.join("fetch.txt").display()))
                );
                assert_eq!(path, shown);
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn manifest_path_escaping_the_bag_is_unsafe_path() {
    for bad in ["../secret.txt", "/etc/passwd", "data/../../secret.txt"] {
        let tmp = tempfile::tempdir().unwrap();
        let root = simple_bag(tmp.path(), "0.97");
        let path = root.join("manifest-md5.txt");
        let mut text = fs::read_to_string(&path).unwrap();
        text += &format!("{}  {bad}\n", md5_hex(b""));
        fs::write(&path, text).unwrap();
        let err = BagItFiles::read(&root).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} line 4: path {bad:?} escapes the bag", path.display())
        );
        assert!(matches!(err, Error::UnsafePath { .. }));
    }
}

#[test]
fn cache_key_follows_tag_files_not_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let root = holey_bag(tmp.path());
    let key = BagItFiles::read(&root).unwrap().cache_key();
    assert_eq!(key.len(), 64);
    assert_eq!(BagItFiles::read(&root).unwrap().cache_key(), key);
    // Materialising payload does not change the key…
    fs::create_dir_all(root.join("data/asset/1-I001/Image")).unwrap();
    fs::write(root.join("data/asset/1-I001/Image/a.png"), b"image one").unwrap();
    assert_eq!(BagItFiles::read(&root).unwrap().cache_key(), key);
    // …a different fetch.txt does.
    let fetch = fs::read_to_string(root.join("fetch.txt")).unwrap();
    fs::write(root.join("fetch.txt"), fetch.replace(":1\t", ":2\t")).unwrap();
    assert_ne!(BagItFiles::read(&root).unwrap().cache_key(), key);
}

#[test]
fn escaping_symlink_under_data_is_an_unsafe_path_issue() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    fs::write(tmp.path().join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("data/leak")).unwrap();
    let report = validate(&root, ValidationMode::Full);
    assert_eq!(kinds(&report), [("unsafe-path", "data/leak")]);
}

// ---- archives ----

fn zip_dir(bag: &Path, out: &Path) {
    let top = bag.file_name().unwrap().to_str().unwrap().to_string();
    let mut zip = zip::ZipWriter::new(fs::File::create(out).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let mut stack = vec![(bag.to_path_buf(), top)];
    while let Some((dir, rel)) = stack.pop() {
        zip.add_directory(format!("{rel}/"), opts).unwrap();
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = format!("{rel}/{}", p.file_name().unwrap().to_str().unwrap());
            if p.is_dir() {
                stack.push((p, name));
            } else {
                zip.start_file(name, opts).unwrap();
                zip.write_all(&fs::read(&p).unwrap()).unwrap();
            }
        }
    }
    zip.finish().unwrap();
}

fn tgz_dir(bag: &Path, out: &Path) {
    let gz =
        flate2::write::GzEncoder::new(fs::File::create(out).unwrap(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(bag.file_name().unwrap(), bag).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn zip_and_tgz_bags_open_and_validate_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "0.97");
    let cache = tmp.path().join("cache");
    for name in [
        "Dataset_1-D000.zip",
        "Dataset_1-D000.tar.gz",
        "Dataset_1-D000.tgz",
    ] {
        let archive = tmp.path().join(name);
        if name.ends_with(".zip") {
            zip_dir(&root, &archive);
        } else {
            tgz_dir(&root, &archive);
        }
        assert!(is_archive(&archive));
        let bag = extract(&archive, &cache).unwrap();
        assert_eq!(bag.file_name().unwrap(), "Dataset_1-D000");
        assert_eq!(
            bag.parent().unwrap().parent().unwrap(),
            cache.join("extracted")
        );
        let files = BagItFiles::read(&bag).unwrap();
        for mode in ALL_MODES {
            assert!(files.validate(mode, None).unwrap().valid, "{name} {mode}");
        }
        // A second open reuses the extraction.
        assert_eq!(extract(&archive, &cache).unwrap(), bag);
    }
    assert!(!is_archive(&root));
    // Nothing was written next to the user's files.
    let mut beside: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        [
            "Dataset_1-D000",
            "Dataset_1-D000.tar.gz",
            "Dataset_1-D000.tgz",
            "Dataset_1-D000.zip",
            "cache"
        ]
    );
}

#[test]
fn concurrent_extractions_of_one_archive_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = simple_bag(tmp.path(), "1.0");
    let archive = tmp.path().join("bag.zip");
    zip_dir(&root, &archive);
    let cache = tmp.path().join("cache");
    let results: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| extract(&archive, &cache).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|p| p == &results[0]));
    let extracted: Vec<String> = fs::read_dir(cache.join("extracted"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(extracted.len(), 1, "{extracted:?}");
}

#[test]
fn zip_entry_escaping_the_extraction_dir_is_rejected() {
    for evil in [
        "Dataset_X/../../../evil.txt",
        "/tmp/evil.txt",
        "Dataset_X\\..\\..\\evil.txt",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("evil.zip");
        let mut zip = zip::ZipWriter::new(fs::File::create(&archive).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("Dataset_X/bagit.txt", opts).unwrap();
        zip.write_all(b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n")
            .unwrap();
        zip.start_file(evil, opts).unwrap();
        zip.write_all(b"pwned").unwrap();
        zip.finish().unwrap();
        let cache = tmp.path().join("cache");
        let err = extract(&archive, &cache).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: path {evil:?} escapes the bag", archive.display())
        );
        assert!(matches!(err, Error::UnsafePath { .. }));
        let left: Vec<String> = fs::read_dir(cache.join("extracted"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert!(left.is_empty(), "{evil}: {left:?}");
        assert!(!tmp.path().join("evil.txt").exists());
    }
}

#[test]
fn tar_entry_with_parent_components_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("evil.tar");
    let mut tar = tar::Builder::new(fs::File::create(&archive).unwrap());
    let body = b"pwned";
    let mut header = tar::Header::new_gnu();
    // Header::set_path refuses `..`, so write the raw name as an attacker would.
    let name = b"Dataset_X/../../evil.txt";
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, &body[..]).unwrap();
    tar.finish().unwrap();
    drop(tar);
    match extract(&archive, &tmp.path().join("cache")).unwrap_err() {
        Error::UnsafePath { source_file, path } => {
            assert_eq!(source_file, archive);
            assert_eq!(path, "Dataset_X/../../evil.txt");
        }
        other => panic!("{other:?}"),
    }
    assert!(!tmp.path().join("evil.txt").exists());
}

#[test]
fn archive_without_bagit_txt_is_not_a_bag_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("plain.zip");
    let mut zip = zip::ZipWriter::new(fs::File::create(&archive).unwrap());
    zip.start_file(
        "Dataset_X/data/a.csv",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(b"RID\n").unwrap();
    zip.finish().unwrap();
    let cache = tmp.path().join("cache");
    let err = extract(&archive, &cache).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not a bag: no bagit.txt in top-level directory \"Dataset_X\"",
            archive.display()
        )
    );
    let left: Vec<_> = fs::read_dir(cache.join("extracted"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
