//! Shared helpers for bag-core's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use deriva_bag_core::bagit::write::BagWriter;
use deriva_bag_core::fixtures::{self, FixtureSpec, GeneratedBag, Layout};
use deriva_bag_core::{DatasetBag, OpenOptions};
use sha2::{Digest, Sha256};

/// Options with a private cache directory under `tmp`.
pub fn options(tmp: &Path) -> OpenOptions {
    OpenOptions {
        cache_dir: Some(tmp.join("cache")),
        ..Default::default()
    }
}

/// Generates a fixture bag and opens it with a private cache.
pub fn open_fixture(spec: &FixtureSpec) -> (tempfile::TempDir, GeneratedBag, DatasetBag) {
    let tmp = tempfile::tempdir().unwrap();
    let generated = fixtures::generate(spec, &tmp.path().join("bags")).unwrap();
    let bag = DatasetBag::open_with(&generated.path, &options(tmp.path())).unwrap();
    (tmp, generated, bag)
}

/// The small bag in `layout`, metadata-only unless `materialized`.
pub fn small(layout: Layout, materialized: bool) -> (tempfile::TempDir, GeneratedBag, DatasetBag) {
    open_fixture(&FixtureSpec {
        layout,
        materialized,
        ..FixtureSpec::default()
    })
}

/// Writes a hand-made bag at `<dir>/Dataset_<root>`: `data/schema.json`, the given
/// `data/...` files, and BagIt tag files.
pub fn write_bag(dir: &Path, root: &str, schema: &str, files: &[(&str, &str)]) -> PathBuf {
    let bag = dir.join(format!("Dataset_{root}"));
    fs::create_dir_all(bag.join("data")).unwrap();
    fs::write(bag.join("data/schema.json"), schema).unwrap();
    for (rel, text) in files {
        let p = bag.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    BagWriter::new().write(&bag).unwrap();
    bag
}

/// sha256 of every file (path + bytes) under `root`, sorted by path.
pub fn tree_digest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.insert(format!("{rel}/"), String::new());
                stack.push(p);
            } else {
                out.insert(rel, hex::encode(Sha256::digest(fs::read(&p).unwrap())));
            }
        }
    }
    out
}

const SYS: &str = r#"
  {"name":"RID","type":{"typename":"ermrest_rid","is_domain":true,"base_type":{"typename":"text"}},"nullok":false},
  {"name":"RCT","type":{"typename":"ermrest_rct","is_domain":true,"base_type":{"typename":"timestamptz"}},"nullok":false},
  {"name":"RMT","type":{"typename":"ermrest_rmt","is_domain":true,"base_type":{"typename":"timestamptz"}},"nullok":false},
  {"name":"RCB","type":{"typename":"ermrest_rcb","is_domain":true,"base_type":{"typename":"text"}}},
  {"name":"RMB","type":{"typename":"ermrest_rmb","is_domain":true,"base_type":{"typename":"text"}}}"#;

fn fk(schema: &str, table: &str, col: &str, rs: &str, rt: &str, rc: &str) -> String {
    format!(
        r#"{{"foreign_key_columns":[{{"schema_name":"{schema}","table_name":"{table}","column_name":"{col}"}}],
            "referenced_columns":[{{"schema_name":"{rs}","table_name":"{rt}","column_name":"{rc}"}}],
            "names":[["{schema}","{table}_{col}_fkey"]]}}"#
    )
}

/// A small hand-written model: deriva-ml Dataset/Dataset_Version/Dataset_Dataset/File,
/// demo.Thing (every value kind), demo.File (same name as deriva-ml.File),
/// demo.Dataset_Thing (membership).
pub fn typed_schema() -> String {
    format!(
        r#"{{"snaptime":"33Q-TEST-0000","schemas":{{
 "deriva-ml":{{"schema_name":"deriva-ml","tables":{{
  "Dataset":{{"table_name":"Dataset","column_definitions":[{SYS},
     {{"name":"Description","type":{{"typename":"markdown"}}}},
     {{"name":"Version","type":{{"typename":"text"}}}}],
     "keys":[{{"unique_columns":["RID"]}}],"foreign_keys":[]}},
  "Dataset_Version":{{"table_name":"Dataset_Version","column_definitions":[{SYS},
     {{"name":"Version","type":{{"typename":"text"}}}},
     {{"name":"Dataset","type":{{"typename":"text"}}}}],
     "keys":[{{"unique_columns":["RID"]}}],"foreign_keys":[{dv}]}},
  "Dataset_Dataset":{{"table_name":"Dataset_Dataset","column_definitions":[{SYS},
     {{"name":"Dataset","type":{{"typename":"text"}}}},
     {{"name":"Nested_Dataset","type":{{"typename":"text"}}}}],
     "keys":[{{"unique_columns":["RID"]}},{{"unique_columns":["Dataset","Nested_Dataset"]}}],
     "foreign_keys":[{dd1},{dd2}]}},
  "File":{{"table_name":"File","column_definitions":[{SYS},{{"name":"Name","type":{{"typename":"text"}}}}],
     "keys":[{{"unique_columns":["RID"]}}],"foreign_keys":[]}}}}}},
 "demo":{{"schema_name":"demo","tables":{{
  "Thing":{{"table_name":"Thing","column_definitions":[{SYS},
     {{"name":"Name","type":{{"typename":"text"}}}},
     {{"name":"Count","type":{{"typename":"int4"}}}},
     {{"name":"Score","type":{{"typename":"float8"}}}},
     {{"name":"Flag","type":{{"typename":"boolean"}}}},
     {{"name":"Day","type":{{"typename":"date"}}}},
     {{"name":"Tags","type":{{"typename":"text[]","is_array":true,"base_type":{{"typename":"text"}}}}}},
     {{"name":"Meta","type":{{"typename":"jsonb"}}}}],
     "keys":[{{"unique_columns":["RID"]}}],"foreign_keys":[]}},
  "File":{{"table_name":"File","column_definitions":[{SYS},{{"name":"Name","type":{{"typename":"text"}}}}],
     "keys":[{{"unique_columns":["RID"]}}],"foreign_keys":[]}},
  "Dataset_Thing":{{"table_name":"Dataset_Thing","column_definitions":[{SYS},
     {{"name":"Dataset","type":{{"typename":"text"}}}},
     {{"name":"Thing","type":{{"typename":"text"}}}}],
     "keys":[{{"unique_columns":["RID"]}},{{"unique_columns":["Dataset","Thing"]}}],
     "foreign_keys":[{dt1},{dt2}]}}}}}}}}}}"#,
        dv = fk(
            "deriva-ml",
            "Dataset_Version",
            "Dataset",
            "deriva-ml",
            "Dataset",
            "RID"
        ),
        dd1 = fk(
            "deriva-ml",
            "Dataset_Dataset",
            "Dataset",
            "deriva-ml",
            "Dataset",
            "RID"
        ),
        dd2 = fk(
            "deriva-ml",
            "Dataset_Dataset",
            "Nested_Dataset",
            "deriva-ml",
            "Dataset",
            "RID"
        ),
        dt1 = fk(
            "demo",
            "Dataset_Thing",
            "Dataset",
            "deriva-ml",
            "Dataset",
            "RID"
        ),
        dt2 = fk("demo", "Dataset_Thing", "Thing", "demo", "Thing", "RID"),
    )
}

pub const TS: &str = "2026-05-28 16:54:02.232194+00";

/// The datasets of the typed bag: root 1-R000 (version 0.4.0.post1.dev3 and 0.4.0).
pub fn typed_dataset_files() -> Vec<(&'static str, String)> {
    vec![
        (
            "data/deriva-ml/Dataset.csv",
            format!("RID,RCT,RMT,RCB,RMB,Description,Version\n1-R000,{TS},{TS},,,root,1-V001\n"),
        ),
        (
            "data/deriva-ml/Dataset_Version.csv",
            format!(
                "RID,RCT,RMT,RCB,RMB,Version,Dataset\n1-V000,{TS},{TS},,,0.4.0,1-R000\n1-V001,{TS},{TS},,,0.4.0.post1.dev3,1-R000\n"
            ),
        ),
    ]
}

/// Writes the typed bag with extra files; returns the bag path.
pub fn typed_bag(dir: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let base = typed_dataset_files();
    let mut files: Vec<(&str, &str)> = base.iter().map(|(p, t)| (*p, t.as_str())).collect();
    files.extend_from_slice(extra);
    write_bag(dir, "1-R000", &typed_schema(), &files)
}
