//! The fixture generator writes the bags that `deriva_bag_core::fixtures` documents, and
//! they are valid BagIt bags whose tag files agree with their payload.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use deriva_bag_core::archive_write::{write_tgz, write_zip};
use deriva_bag_core::bagit::{BagItFiles, ValidationMode};
use deriva_bag_core::features::{CatalogModel, TableName};
use deriva_bag_core::fixtures::{self, FixtureSpec, Layout};
use md5::{Digest, Md5};
use sha2::Sha256;

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// All files below `root` as bag-relative path → bytes.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// RIDs of a CSV file's rows (first column).
fn rids(path: &Path) -> Vec<String> {
    read(path)
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("1-") || l.starts_with("I-"))
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn small_bag_has_the_format_b_files_of_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(dir.path()).unwrap();
    assert_eq!(bag.path, dir.path().join("Dataset_1-D000"));
    assert_eq!(
        bag.csv_files,
        [
            "data/demo/Dataset_Image.csv",
            "data/demo/Dataset_Subject.csv",
            "data/demo/Execution_Image_Glaucoma.csv",
            "data/demo/Execution_Measurement_IOP_Reading.csv",
            "data/demo/Glaucoma.csv",
            "data/demo/Image.csv",
            "data/demo/Image_Asset_Type.csv",
            "data/demo/Image_Execution.csv",
            "data/demo/Measurement.csv",
            "data/demo/Subject.csv",
            "data/deriva-ml/Asset_Role.csv",
            "data/deriva-ml/Asset_Type.csv",
            "data/deriva-ml/Dataset.csv",
            "data/deriva-ml/Dataset_Dataset.csv",
            "data/deriva-ml/Dataset_Dataset_Type.csv",
            "data/deriva-ml/Dataset_Execution.csv",
            "data/deriva-ml/Dataset_Type.csv",
            "data/deriva-ml/Dataset_Version.csv",
            "data/deriva-ml/Execution.csv",
            "data/deriva-ml/Execution_Status.csv",
            "data/deriva-ml/Feature_Name.csv",
            "data/deriva-ml/Workflow.csv",
        ]
    );
    let top: BTreeSet<String> = fs::read_dir(&bag.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        top.into_iter().collect::<Vec<_>>(),
        [
            "bag-info.txt",
            "bagit.txt",
            "data",
            "fetch.txt",
            "manifest-md5.txt",
            "manifest-sha256.txt",
            "tagmanifest-md5.txt",
            "tagmanifest-sha256.txt"
        ]
    );
    let datasets = read(&bag.path.join("data/deriva-ml/Dataset.csv"));
    assert_eq!(
        rids(&bag.path.join("data/deriva-ml/Dataset.csv")),
        ["1-D000", "1-D001", "1-D002", "1-D003"]
    );
    assert!(datasets.starts_with("RID,RCT,RMT,RCB,RMB,Description,Deleted,Version\n"));
    assert!(datasets.contains("\n1-D003,2026-05-28 16:54:02.232194+00,2026-05-28 16:54:02.232194+00,https://auth.globus.org/0b6e8a3c-4d1f-4e2a-9c55-7d1c2f0e9a11,https://auth.globus.org/0b6e8a3c-4d1f-4e2a-9c55-7d1c2f0e9a11,,f,1-V003\n"));
    assert_eq!(
        rids(&bag.path.join("data/deriva-ml/Dataset_Version.csv")),
        ["1-V000", "1-V001", "1-V002", "1-V003", "1-V010"]
    );
    assert_eq!(
        rids(&bag.path.join("data/demo/Image.csv")),
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
    );
    assert_eq!(
        rids(&bag.path.join("data/demo/Subject.csv")),
        ["1-S001", "1-S002", "1-S003"]
    );
    assert_eq!(
        rids(&bag.path.join("data/deriva-ml/Execution.csv")),
        ["1-E000", "1-E001", "1-E002", "1-E003"]
    );
}

#[test]
fn small_bag_feature_rows_match_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(dir.path()).unwrap();
    let csv = read(&bag.path.join("data/demo/Execution_Image_Glaucoma.csv"));
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "RID",
            "RCT",
            "RMT",
            "RCB",
            "RMB",
            "Execution",
            "Image",
            "Feature_Name",
            "Glaucoma"
        ]
    );
    let got: Vec<(&str, &str, &str, &str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[0], r[5], r[6], r[8], r[1]))
        .collect();
    assert_eq!(
        got,
        [
            (
                "1-A001",
                "1-E001",
                "1-I001",
                "Normal",
                "2026-05-28 16:54:02.232194+00"
            ),
            (
                "1-A002",
                "1-E002",
                "1-I001",
                "Severe",
                "2026-05-28 10:00:00-07"
            ),
            (
                "1-A003",
                "1-E001",
                "1-I002",
                "Mild",
                "2026-05-28 16:54:02.232194+00"
            ),
            (
                "1-A004",
                "1-E001",
                "1-I003",
                "Normal",
                "2026-05-29 08:00:00+00"
            ),
            (
                "1-A005",
                "1-E002",
                "1-I003",
                "Moderate",
                "2026-05-29 08:00:00+00"
            ),
            (
                "1-A006",
                "1-E001",
                "1-I005",
                "Mild",
                "2026-05-30 08:00:00+00"
            ),
            (
                "1-A007",
                "1-E002",
                "1-I005",
                "Severe",
                "2026-05-30 12:00:00+00"
            ),
            (
                "1-A008",
                "1-E003",
                "1-I005",
                "Mild",
                "2026-05-30 09:00:00+00"
            ),
            (
                "1-A009",
                "1-E001",
                "1-I006",
                "Normal",
                "2026-05-28 16:54:02+00"
            ),
        ]
    );
    let membership = read(&bag.path.join("data/demo/Dataset_Image.csv"));
    let pairs: Vec<(String, String)> = membership
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[5].to_string(), f[6].to_string())
        })
        .collect();
    let pairs: BTreeSet<(String, String)> = pairs.into_iter().collect();
    let expected: BTreeSet<(String, String)> = [
        ("1-D001", "1-I001"),
        ("1-D001", "1-I002"),
        ("1-D001", "1-I005"),
        ("1-D002", "1-I003"),
        ("1-D002", "1-I004"),
        ("1-D002", "1-I005"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(pairs, expected);
    let severe = read(&bag.path.join("data/demo/Glaucoma.csv"));
    assert!(
        severe.contains(",Severe,Glaucoma Severe,\"{Advanced,\"\"Late stage\"\"}\"\n"),
        "{severe}"
    );
}

#[test]
fn small_bag_fetch_txt_escapes_percent_and_keeps_spaces_and_accents() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(dir.path()).unwrap();
    let fetch = read(&bag.path.join("fetch.txt"));
    let paths: Vec<&str> = fetch
        .lines()
        .map(|l| l.split('\t').nth(2).unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "data/asset/1-I001/Image/retina_001.jpg",
            "data/asset/1-I002/Image/retina 002.jpg",
            "data/asset/1-I003/Image/rétine_003.png",
            "data/asset/1-I004/Image/retina_004.png",
            "data/asset/1-I005/Image/retina%25005.jpg",
            "data/asset/1-I006/Image/retina_006.jpg",
        ]
    );
    for (line, asset) in fetch.lines().zip(&bag.assets) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[0], asset.fetch_url);
        assert_eq!(fields[1], asset.length.to_string());
        assert!(asset
            .fetch_url
            .starts_with("https://example.org/hatrac/Image/"));
        assert_eq!(
            fs::read(bag.path.join(&asset.bag_path)).unwrap().len() as u64,
            asset.length
        );
    }
    assert!(bag
        .asset("1-I005")
        .unwrap()
        .url
        .contains(".retina%25005.jpg:"));
}

#[test]
fn manifests_and_payload_oxum_agree_with_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(dir.path()).unwrap();
    let files = snapshot(&bag.path);
    let payload: Vec<(&String, &Vec<u8>)> = files
        .iter()
        .filter(|(p, _)| p.starts_with("data/"))
        .collect();
    let bytes: usize = payload.iter().map(|(_, b)| b.len()).sum();
    let info = read(&bag.path.join("bag-info.txt"));
    assert!(
        info.ends_with(&format!("Payload-Oxum: {bytes}.{}\n", payload.len())),
        "{info}"
    );
    assert_eq!(bag.bagit.payload_files as usize, payload.len());

    let md5 = read(&bag.path.join("manifest-md5.txt"));
    assert_eq!(md5.lines().count(), payload.len());
    for line in md5.lines() {
        let (digest, path) = line.split_once("  ").unwrap();
        assert_eq!(digest, hex::encode(Md5::digest(&files[path])), "{path}");
    }
    let sha = read(&bag.path.join("manifest-sha256.txt"));
    // Catalogs give no sha256 for assets, so only local files are listed.
    assert_eq!(sha.lines().count(), payload.len() - 6);
    for line in sha.lines() {
        let (digest, path) = line.split_once("  ").unwrap();
        assert!(!path.starts_with("data/asset/"));
        assert_eq!(digest, hex::encode(Sha256::digest(&files[path])), "{path}");
    }
    let tag = read(&bag.path.join("tagmanifest-sha256.txt"));
    let names: Vec<&str> = tag.lines().map(|l| l.split_once(' ').unwrap().1).collect();
    assert_eq!(
        names,
        [
            "bag-info.txt",
            "bagit.txt",
            "fetch.txt",
            "manifest-md5.txt",
            "manifest-sha256.txt"
        ]
    );

    let parsed = BagItFiles::read(&bag.path).unwrap();
    assert_eq!(parsed.fetch.len(), 6);
    assert_eq!(
        parsed.fetch[4].path,
        "data/asset/1-I005/Image/retina%005.jpg"
    );
    let report = parsed.validate(ValidationMode::Full, None).unwrap();
    assert!(report.valid, "{:?}", report.errors);
}

#[test]
fn metadata_only_bag_has_the_same_tag_files_and_no_assets() {
    let dir = tempfile::tempdir().unwrap();
    let full = fixtures::generate(&FixtureSpec::default(), &dir.path().join("full")).unwrap();
    let holey_spec = FixtureSpec {
        materialized: false,
        ..FixtureSpec::default()
    };
    let holey = fixtures::generate(&holey_spec, &dir.path().join("holey")).unwrap();
    assert!(!holey.path.join("data/asset").exists());
    for name in [
        "bag-info.txt",
        "fetch.txt",
        "manifest-md5.txt",
        "manifest-sha256.txt",
        "tagmanifest-md5.txt",
    ] {
        assert_eq!(
            read(&full.path.join(name)),
            read(&holey.path.join(name)),
            "{name}"
        );
    }
    let parsed = BagItFiles::read(&holey.path).unwrap();
    assert!(
        parsed
            .validate(ValidationMode::Completeness, None)
            .unwrap()
            .valid
    );
}

#[test]
fn same_seed_gives_byte_identical_bags_and_archives() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let spec = FixtureSpec {
        images: 40,
        layout: Layout::FormatA,
        ..FixtureSpec::default()
    };
    let bag_a = fixtures::generate(&spec, a.path()).unwrap();
    let bag_b = fixtures::generate(&spec, b.path()).unwrap();
    assert_eq!(snapshot(&bag_a.path), snapshot(&bag_b.path));
    write_zip(&bag_a.path, &a.path().join("bag.zip")).unwrap();
    write_zip(&bag_b.path, &b.path().join("bag.zip")).unwrap();
    assert_eq!(
        fs::read(a.path().join("bag.zip")).unwrap(),
        fs::read(b.path().join("bag.zip")).unwrap()
    );
    write_tgz(&bag_a.path, &a.path().join("bag.tgz")).unwrap();
    write_tgz(&bag_b.path, &b.path().join("bag.tgz")).unwrap();
    assert_eq!(
        fs::read(a.path().join("bag.tgz")).unwrap(),
        fs::read(b.path().join("bag.tgz")).unwrap()
    );

    let other =
        fixtures::generate(&FixtureSpec { seed: 7, ..spec }, &a.path().join("other")).unwrap();
    assert_ne!(
        fs::read(bag_a.path.join("manifest-md5.txt")).unwrap(),
        fs::read(other.path.join("manifest-md5.txt")).unwrap()
    );
}

#[test]
fn format_a_splits_tables_over_overlapping_path_files() {
    let dir = tempfile::tempdir().unwrap();
    let spec = FixtureSpec {
        layout: Layout::FormatA,
        ..FixtureSpec::default()
    };
    let bag = fixtures::generate(&spec, dir.path()).unwrap();
    let image_a = rids(&bag.path.join("data/demo/Dataset_Dataset_Image/Image.csv"));
    let image_b = rids(
        &bag.path
            .join("data/demo/Dataset_Dataset_Subject_Subject/Image.csv"),
    );
    assert_eq!(image_a, ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005"]);
    assert_eq!(
        image_b,
        ["1-I001", "1-I002", "1-I003", "1-I004", "1-I005", "1-I006"]
    );
    let subject_a = rids(
        &bag.path
            .join("data/demo/Dataset_Dataset_Subject/Subject.csv"),
    );
    let subject_b = rids(
        &bag.path
            .join("data/demo/Dataset_Dataset_Image_Image/Subject.csv"),
    );
    assert_eq!(subject_a, ["1-S001", "1-S002", "1-S003"]);
    assert_eq!(subject_b, ["1-S001", "1-S002", "1-S003"]);
    let labels_a = rids(
        &bag.path
            .join("data/demo/Dataset_Dataset_Image_Image/Execution_Image_Glaucoma.csv"),
    );
    let labels_b = rids(
        &bag.path
            .join("data/demo/Dataset_Dataset_Subject_Subject_Image/Execution_Image_Glaucoma.csv"),
    );
    assert_eq!(labels_a.len(), 8);
    assert_eq!(labels_b.len(), 9);
    assert!(!bag.path.join("data/demo/Image.csv").exists());
    assert!(bag.path.join("data/deriva-ml/Dataset.csv").is_file());
    assert!(bag.path.join("data/demo/Glaucoma.csv").is_file());
    assert_eq!(
        bag.assets[0].bag_path,
        "data/asset/1-I001/Image/retina_001.jpg"
    );
}

#[test]
fn legacy_layout_has_no_schema_directory_and_table_level_asset_paths() {
    let dir = tempfile::tempdir().unwrap();
    let spec = FixtureSpec {
        layout: Layout::Legacy,
        ..FixtureSpec::default()
    };
    let bag = fixtures::generate(&spec, dir.path()).unwrap();
    assert!(!bag.path.join("data/demo").exists());
    assert!(!bag.path.join("data/deriva-ml").exists());
    for file in [
        "data/Dataset.csv",
        "data/Glaucoma.csv",
        "data/Dataset_Type.csv",
        "data/Dataset/Dataset_Version.csv",
        "data/Dataset/Dataset_Image/Image.csv",
        "data/Dataset/Dataset_Subject/Subject.csv",
        "data/Dataset/Dataset_Image/Image/Execution_Image_Glaucoma.csv",
    ] {
        assert!(bag.path.join(file).is_file(), "{file}");
    }
    let fetch = read(&bag.path.join("fetch.txt"));
    assert!(fetch.contains("\tdata/asset/Image/retina 002.jpg\n"));
    assert!(fetch.contains("\tdata/asset/Image/retina%25005.jpg\n"));
    assert!(bag.path.join("data/asset/Image/retina%005.jpg").is_file());
}

#[test]
fn schema_json_parses_with_assets_vocabularies_and_the_feature_default() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(dir.path()).unwrap();
    let model =
        CatalogModel::from_json(&fs::read(bag.path.join("data/schema.json")).unwrap()).unwrap();
    assert_eq!(model.snaptime.as_deref(), Some("33Q-WXWN-SM7M"));
    let image = model.table(&TableName::new("demo", "Image")).unwrap();
    assert!(image.is_asset());
    assert!(model
        .table(&TableName::new("demo", "Glaucoma"))
        .unwrap()
        .is_vocabulary());
    assert!(model
        .table(&TableName::new("deriva-ml", "Dataset_Type"))
        .unwrap()
        .is_vocabulary());
    assert!(model
        .table(&TableName::new("public", "ERMrest_Client"))
        .is_some());
    let feature = model
        .table(&TableName::new("demo", "Execution_Image_Glaucoma"))
        .unwrap();
    let default = feature.column("Feature_Name").unwrap().default.clone();
    assert_eq!(default, Some(serde_json::json!("Glaucoma")));
    let names: Vec<&str> = feature.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "RID",
            "RCT",
            "RMT",
            "RCB",
            "RMB",
            "Execution",
            "Image",
            "Feature_Name",
            "Glaucoma"
        ]
    );
}

#[test]
fn large_bag_has_quarter_subjects_and_two_labels_per_bulk_image() {
    let dir = tempfile::tempdir().unwrap();
    let spec = FixtureSpec {
        images: 206,
        extra_glaucoma_rows: 10,
        materialized: false,
        ..FixtureSpec::default()
    };
    let bag = fixtures::generate(&spec, dir.path()).unwrap();
    assert_eq!(bag.row_counts["demo:Image"], 206);
    assert_eq!(bag.row_counts["demo:Subject"], 51);
    assert_eq!(
        bag.row_counts["demo:Execution_Image_Glaucoma"],
        9 + 2 * 200 + 10
    );
    assert_eq!(bag.row_counts["deriva-ml:Execution"], 5);
    assert_eq!(bag.assets.len(), 206);
    assert_eq!(bag.assets[205].filename, "retina_000206.jpg");
    assert_eq!(bag.bagit.remote_files, 206);
    let glaucoma = read(&bag.path.join("data/demo/Execution_Image_Glaucoma.csv"));
    assert_eq!(glaucoma.lines().count(), 1 + 419);
}

#[test]
fn small_bag_images_are_real_64_by_48_jpegs_and_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let bag = fixtures::small_bag(dir.path()).unwrap();
    let formats: Vec<image::ImageFormat> = bag
        .assets
        .iter()
        .map(|asset| {
            let bytes = fs::read(bag.path.join(&asset.bag_path)).unwrap();
            assert_eq!(hex::encode(Md5::digest(&bytes)), asset.md5);
            let decoded = image::load_from_memory(&bytes).unwrap();
            assert_eq!(
                (decoded.width(), decoded.height()),
                (64, 48),
                "{}",
                asset.filename
            );
            image::guess_format(&bytes).unwrap()
        })
        .collect();
    use image::ImageFormat::{Jpeg, Png};
    assert_eq!(formats, [Jpeg, Jpeg, Png, Png, Jpeg, Jpeg]);
}

#[test]
fn fewer_than_six_images_keeps_the_first_hand_written_ones_and_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let three =
        fixtures::generate(&FixtureSpec::with_images(3), &dir.path().join("three")).unwrap();
    assert_eq!(
        rids(&three.path.join("data/demo/Image.csv")),
        ["1-I001", "1-I002", "1-I003"]
    );
    assert_eq!(three.row_counts["demo:Execution_Image_Glaucoma"], 5);
    assert_eq!(three.row_counts["demo:Dataset_Image"], 3);

    let none = FixtureSpec {
        images: 0,
        extra_glaucoma_rows: 4,
        ..FixtureSpec::default()
    };
    let empty = fixtures::generate(&none, &dir.path().join("none")).unwrap();
    assert!(empty.assets.is_empty());
    assert!(!empty.path.join("fetch.txt").exists());
    assert!(!empty.path.join("data/demo/Image.csv").exists());
    assert_eq!(empty.row_counts["demo:Subject"], 3);
}
