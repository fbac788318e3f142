//! The test catalog's built-in seed: the DerivaML model of the minimal realistic bag
//! (plus `public:ERMrest_RID_Lease`) and the rows of the small fixture bag
//! (`FixtureSpec::default()`), with Hatrac objects whose `URL`/`MD5`/`Length` match the bytes.

use serde_json::{json, Value as Json};

/// A column spec: `(name, typename, nullok, default)`.
type Col = (&'static str, &'static str, bool, Option<Json>);

fn system_columns() -> Vec<Json> {
    let dom = |t: &str, base: &str| json!({"typename": t, "is_domain": true, "base_type": {"typename": base}});
    vec![
        json!({"name": "RID", "type": dom("ermrest_rid", "text"), "nullok": false, "default": null}),
        json!({"name": "RCT", "type": dom("ermrest_rct", "timestamptz"), "nullok": false, "default": null}),
        json!({"name": "RMT", "type": dom("ermrest_rmt", "timestamptz"), "nullok": false, "default": null}),
        json!({"name": "RCB", "type": dom("ermrest_rcb", "text"), "nullok": true, "default": null}),
        json!({"name": "RMB", "type": dom("ermrest_rmb", "text"), "nullok": true, "default": null}),
    ]
}

fn type_json(t: &str) -> Json {
    match t {
        "text[]" => {
            json!({"typename": "text[]", "is_array": true, "base_type": {"typename": "text"}})
        }
        "ermrest_curie" | "ermrest_uri" => {
            json!({"typename": t, "is_domain": true, "base_type": {"typename": "text"}})
        }
        other => json!({"typename": other}),
    }
}

/// One table definition.
struct T {
    schema: &'static str,
    name: &'static str,
    cols: Vec<Col>,
    keys: Vec<Vec<&'static str>>,
    /// `(column, referenced schema, referenced table, referenced column)`.
    fks: Vec<(&'static str, &'static str, &'static str, &'static str)>,
    url_annotation: bool,
}

impl T {
    fn to_json(&self) -> Json {
        let mut cols = system_columns();
        for (name, ty, nullok, default) in &self.cols {
            let mut c = json!({"name": name, "type": type_json(ty), "nullok": nullok, "default": default, "comment": null, "annotations": {}});
            if *name == "URL" && self.url_annotation {
                c["annotations"] = json!({"tag:isrd.isi.edu,2017:asset": {
                    "filename_column": "Filename", "byte_count_column": "Length", "md5": "MD5",
                    "url_pattern": format!("/hatrac/{}/{{{{{{MD5}}}}}}.{{{{{{Filename}}}}}}", self.name)}});
            }
            cols.push(c);
        }
        let mut keys = vec![
            json!({"unique_columns": ["RID"], "names": [[self.schema, format!("{}_RID_key", self.name)]]}),
        ];
        for k in &self.keys {
            let kname = if k.len() == 1 {
                format!("{}_{}_key", self.name, k[0])
            } else {
                format!("{}_assoc_key", self.name)
            };
            keys.push(json!({"unique_columns": k, "names": [[self.schema, kname]]}));
        }
        let fks: Vec<Json> = self
            .fks
            .iter()
            .map(|(c, rs, rt, rc)| {
                json!({
                    "names": [[self.schema, format!("{}_{}_fkey", self.name, c)]],
                    "foreign_key_columns": [{"schema_name": self.schema, "table_name": self.name, "column_name": c}],
                    "referenced_columns": [{"schema_name": rs, "table_name": rt, "column_name": rc}],
                })
            })
            .collect();
        json!({
            "schema_name": self.schema, "table_name": self.name, "kind": "table", "comment": null,
            "annotations": {}, "column_definitions": cols, "keys": keys, "foreign_keys": fks,
        })
    }
}

fn c(name: &'static str, ty: &'static str, nullok: bool) -> Col {
    (name, ty, nullok, None)
}

fn vocab(schema: &'static str, name: &'static str) -> T {
    T {
        schema,
        name,
        cols: vec![
            (
                "ID",
                "ermrest_curie",
                false,
                Some(json!(format!("{schema}:{{RID}}"))),
            ),
            ("URI", "ermrest_uri", false, Some(json!("/id/{RID}"))),
            c("Name", "text", false),
            c("Description", "markdown", false),
            c("Synonyms", "text[]", true),
        ],
        keys: vec![vec!["ID"], vec!["URI"], vec!["Name"]],
        fks: vec![],
        url_annotation: false,
    }
}

fn assoc(
    schema: &'static str,
    name: &'static str,
    cols: Vec<Col>,
    key: Vec<&'static str>,
    fks: Vec<(&'static str, &'static str, &'static str, &'static str)>,
) -> T {
    T {
        schema,
        name,
        cols,
        keys: vec![key],
        fks,
        url_annotation: false,
    }
}

const ML: &str = "deriva-ml";

/// The seed model as the `/schema` document.
pub(crate) fn schema_json(snaptime: &str) -> Json {
    let tables = vec![
        T {
            schema: "public",
            name: "ERMrest_Client",
            cols: vec![c("ID", "text", false)],
            keys: vec![vec!["ID"]],
            fks: vec![],
            url_annotation: false,
        },
        T {
            schema: "public",
            name: "ERMrest_RID_Lease",
            cols: vec![c("ID", "text", false)],
            keys: vec![],
            fks: vec![],
            url_annotation: false,
        },
        T {
            schema: ML,
            name: "Dataset",
            cols: vec![
                c("Description", "markdown", true),
                c("Deleted", "boolean", true),
                c("Version", "text", true),
            ],
            keys: vec![],
            fks: vec![("Version", ML, "Dataset_Version", "RID")],
            url_annotation: false,
        },
        T {
            schema: ML,
            name: "Dataset_Version",
            cols: vec![
                ("Version", "text", true, Some(json!("0.1.0"))),
                c("Description", "markdown", true),
                c("Dataset", "text", true),
                c("Execution", "text", true),
                c("Minid", "text", true),
                c("Minid_Spec_Hash", "text", true),
                c("Snapshot", "text", true),
            ],
            keys: vec![vec!["Dataset", "Version"]],
            fks: vec![
                ("Dataset", ML, "Dataset", "RID"),
                ("Execution", ML, "Execution", "RID"),
            ],
            url_annotation: false,
        },
        vocab(ML, "Dataset_Type"),
        vocab(ML, "Feature_Name"),
        vocab(ML, "Asset_Type"),
        vocab(ML, "Asset_Role"),
        vocab(ML, "Execution_Status"),
        vocab(ML, "Workflow_Type"),
        assoc(
            ML,
            "Dataset_Dataset_Type",
            vec![
                c("Dataset", "text", false),
                c("Dataset_Type", "text", false),
            ],
            vec!["Dataset", "Dataset_Type"],
            vec![
                ("Dataset", ML, "Dataset", "RID"),
                ("Dataset_Type", ML, "Dataset_Type", "Name"),
            ],
        ),
        assoc(
            ML,
            "Dataset_Dataset",
            vec![
                c("Dataset", "text", false),
                c("Nested_Dataset", "text", false),
            ],
            vec!["Dataset", "Nested_Dataset"],
            vec![
                ("Dataset", ML, "Dataset", "RID"),
                ("Nested_Dataset", ML, "Dataset", "RID"),
            ],
        ),
        assoc(
            ML,
            "Dataset_Execution",
            vec![
                c("Dataset", "text", false),
                c("Execution", "text", false),
                c("Dataset_Version", "text", true),
            ],
            vec!["Dataset", "Execution"],
            vec![
                ("Dataset", ML, "Dataset", "RID"),
                ("Execution", ML, "Execution", "RID"),
                ("Dataset_Version", ML, "Dataset_Version", "RID"),
            ],
        ),
        T {
            schema: ML,
            name: "Workflow",
            cols: vec![
                c("Name", "text", true),
                c("Description", "markdown", true),
                c("URL", "ermrest_uri", true),
                c("Checksum", "text", true),
                c("Version", "text", true),
            ],
            keys: vec![],
            fks: vec![],
            url_annotation: false,
        },
        assoc(
            ML,
            "Workflow_Workflow_Type",
            vec![
                c("Workflow", "text", false),
                c("Workflow_Type", "text", false),
            ],
            vec!["Workflow", "Workflow_Type"],
            vec![
                ("Workflow", ML, "Workflow", "RID"),
                ("Workflow_Type", ML, "Workflow_Type", "Name"),
            ],
        ),
        T {
            schema: ML,
            name: "Execution",
            cols: vec![
                c("Workflow", "text", true),
                c("Description", "markdown", true),
                c("Execution_Duration", "text", true),
                c("Download_Duration", "text", true),
                c("Upload_Duration", "text", true),
                c("Status", "text", true),
                c("Status_Detail", "text", true),
            ],
            keys: vec![],
            fks: vec![
                ("Workflow", ML, "Workflow", "RID"),
                ("Status", ML, "Execution_Status", "Name"),
            ],
            url_annotation: false,
        },
        T {
            schema: "demo",
            name: "Subject",
            cols: vec![c("Name", "text", true)],
            keys: vec![],
            fks: vec![],
            url_annotation: false,
        },
        T {
            schema: "demo",
            name: "Image",
            cols: vec![
                c("URL", "text", false),
                c("Filename", "text", true),
                c("Description", "markdown", true),
                c("Length", "int8", false),
                c("MD5", "text", false),
                c("Subject", "text", true),
            ],
            keys: vec![vec!["URL"]],
            fks: vec![("Subject", "demo", "Subject", "RID")],
            url_annotation: true,
        },
        assoc(
            "demo",
            "Image_Asset_Type",
            vec![c("Image", "text", false), c("Asset_Type", "text", false)],
            vec!["Image", "Asset_Type"],
            vec![
                ("Image", "demo", "Image", "RID"),
                ("Asset_Type", ML, "Asset_Type", "Name"),
            ],
        ),
        assoc(
            "demo",
            "Image_Execution",
            vec![
                c("Image", "text", false),
                c("Execution", "text", false),
                c("Asset_Role", "text", false),
            ],
            vec!["Image", "Execution"],
            vec![
                ("Image", "demo", "Image", "RID"),
                ("Execution", ML, "Execution", "RID"),
                ("Asset_Role", ML, "Asset_Role", "Name"),
            ],
        ),
        assoc(
            "demo",
            "Dataset_Subject",
            vec![c("Dataset", "text", false), c("Subject", "text", false)],
            vec!["Dataset", "Subject"],
            vec![
                ("Dataset", ML, "Dataset", "RID"),
                ("Subject", "demo", "Subject", "RID"),
            ],
        ),
        assoc(
            "demo",
            "Dataset_Image",
            vec![c("Dataset", "text", false), c("Image", "text", false)],
            vec!["Dataset", "Image"],
            vec![
                ("Dataset", ML, "Dataset", "RID"),
                ("Image", "demo", "Image", "RID"),
            ],
        ),
        vocab("demo", "Glaucoma"),
        assoc(
            "demo",
            "Execution_Image_Glaucoma",
            vec![
                c("Execution", "text", false),
                c("Image", "text", false),
                ("Feature_Name", "text", false, Some(json!("Glaucoma"))),
                c("Glaucoma", "text", false),
            ],
            vec!["Execution", "Image", "Feature_Name"],
            vec![
                ("Execution", ML, "Execution", "RID"),
                ("Image", "demo", "Image", "RID"),
                ("Feature_Name", ML, "Feature_Name", "Name"),
                ("Glaucoma", "demo", "Glaucoma", "Name"),
            ],
        ),
    ];
    let mut schemas = serde_json::Map::new();
    for t in &tables {
        let s = schemas.entry(t.schema.to_string()).or_insert_with(
            || json!({"schema_name": t.schema, "comment": null, "annotations": {}, "tables": {}}),
        );
        s["tables"][t.name] = t.to_json();
    }
    json!({"snaptime": snaptime, "annotations": {}, "rights": {}, "features": {}, "acls": {}, "schemas": schemas})
}

/// Deterministic asset bytes: a small xorshift stream seeded by the image number.
pub fn image_bytes(n: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The seed images: `(RID, Filename, Subject, bytes)`.
pub(crate) fn images() -> Vec<(&'static str, &'static str, &'static str, Vec<u8>)> {
    vec![
        ("1-I001", "retina_001.jpg", "1-S001", image_bytes(1, 1500)),
        ("1-I002", "retina 002.jpg", "1-S001", image_bytes(2, 1601)),
        ("1-I003", "rétine_003.png", "1-S002", image_bytes(3, 1702)),
        ("1-I004", "retina_004.png", "1-S002", image_bytes(4, 1803)),
        ("1-I005", "retina%005.jpg", "1-S003", image_bytes(5, 1904)),
        ("1-I006", "retina_006.jpg", "1-S003", image_bytes(6, 2005)),
    ]
}

fn vocab_rows(schema: &str, prefix: &str, terms: &[&str]) -> Vec<Json> {
    terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let rid = format!("{prefix}{:03}", i + 1);
            json!({"RID": rid, "ID": format!("{schema}:{rid}"), "URI": format!("/id/{rid}"), "Name": t, "Description": format!("{t} term"), "Synonyms": null})
        })
        .collect()
}

/// Seed rows per table (in an FK-respecting order) — Hatrac URLs are filled in by the caller.
pub(crate) fn rows(image_urls: &[(String, u64, String)]) -> Vec<(&'static str, Vec<Json>)> {
    let rct = "2026-05-28T16:54:02.232194+00:00";
    let with_rct = |rows: Vec<Json>| -> Vec<Json> {
        rows.into_iter()
            .map(|mut r| {
                r["RCT"] = json!(rct);
                r["RMT"] = json!(rct);
                r
            })
            .collect()
    };
    let mut glaucoma = vocab_rows("demo", "1-G", &["Normal", "Mild", "Moderate", "Severe"]);
    glaucoma[3]["Synonyms"] = json!(["Advanced", "Late stage"]);
    let imgs = images();
    let image_rows: Vec<Json> = imgs
        .iter()
        .zip(image_urls)
        .map(|((rid, file, subj, _), (url, len, md5))| {
            json!({"RID": rid, "URL": url, "Filename": file, "Description": null, "Length": len, "MD5": md5, "Subject": subj})
        })
        .collect();
    let labels = [
        (
            "1-A001",
            "1-E001",
            "1-I001",
            "Normal",
            "2026-05-28 16:54:02.232194+00",
        ),
        (
            "1-A002",
            "1-E002",
            "1-I001",
            "Severe",
            "2026-05-28 10:00:00-07",
        ),
        (
            "1-A003",
            "1-E001",
            "1-I002",
            "Mild",
            "2026-05-28 16:54:02.232194+00",
        ),
        (
            "1-A004",
            "1-E001",
            "1-I003",
            "Normal",
            "2026-05-29 08:00:00+00",
        ),
        (
            "1-A005",
            "1-E002",
            "1-I003",
            "Moderate",
            "2026-05-29 08:00:00+00",
        ),
        (
            "1-A006",
            "1-E001",
            "1-I005",
            "Mild",
            "2026-05-30 08:00:00+00",
        ),
        (
            "1-A007",
            "1-E002",
            "1-I005",
            "Severe",
            "2026-05-30 12:00:00+00",
        ),
        (
            "1-A008",
            "1-E003",
            "1-I005",
            "Mild",
            "2026-05-30 09:00:00+00",
        ),
        (
            "1-A009",
            "1-E001",
            "1-I006",
            "Normal",
            "2026-05-28 16:54:02+00",
        ),
    ];
    let label_rows = labels
        .iter()
        .map(|(rid, e, i, g, t)| json!({"RID": rid, "RCT": t, "RMT": t, "Execution": e, "Image": i, "Feature_Name": "Glaucoma", "Glaucoma": g}))
        .collect();
    let pair = |prefix: &str, a: &str, b: &str, pairs: &[(&str, &str)]| -> Vec<Json> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (x, y))| json!({"RID": format!("{prefix}{:03}", i + 1), a: x, b: y}))
            .collect()
    };
    vec![
        ("deriva-ml:Execution_Status", with_rct(vocab_rows(ML, "1-X", &["Created", "Running", "Stopped", "Failed", "Pending_Upload", "Uploaded", "Aborted"]))),
        ("deriva-ml:Dataset_Type", with_rct(vocab_rows(ML, "1-Y", &["Complete", "File", "Directory", "Training", "Testing", "Validation", "Split", "Labeled", "Unlabeled"]))),
        ("deriva-ml:Feature_Name", with_rct(vocab_rows(ML, "1-F", &["Glaucoma"]))),
        ("deriva-ml:Asset_Type", with_rct(vocab_rows(ML, "1-T", &["Execution_Config", "Runtime_Env", "Hydra_Config", "Deriva_Config", "Metrics_File", "Execution_Metadata", "Execution_Asset", "File", "Input_File", "Output_File", "Model_File", "Notebook_Output", "Image"]))),
        ("deriva-ml:Asset_Role", with_rct(vocab_rows(ML, "1-R", &["Input", "Output"]))),
        ("deriva-ml:Workflow_Type", with_rct(vocab_rows(ML, "1-WT", &["Inference", "Annotation"]))),
        ("demo:Glaucoma", with_rct(glaucoma)),
        ("deriva-ml:Workflow", with_rct(vec![json!({"RID": "1-W001", "Name": "Glaucoma labelling", "Description": "Manual glaucoma grading", "URL": "https://example.org/labelling.py", "Checksum": "abc123", "Version": "1.0"})])),
        ("deriva-ml:Execution", with_rct(["1-E000", "1-E001", "1-E002", "1-E003"].iter().map(|e| json!({"RID": e, "Workflow": "1-W001", "Status": "Uploaded", "Description": format!("run {e}")})).collect())),
        ("deriva-ml:Dataset", with_rct(vec![
            json!({"RID": "1-D000", "Description": "root", "Deleted": false, "Version": "1-V000"}),
            json!({"RID": "1-D001", "Description": "training", "Deleted": false, "Version": "1-V001"}),
            json!({"RID": "1-D002", "Description": "testing", "Deleted": false, "Version": "1-V002"}),
            json!({"RID": "1-D003", "Description": "untyped", "Deleted": false, "Version": "1-V003"}),
        ])),
        ("deriva-ml:Dataset_Version", with_rct(vec![
            json!({"RID": "1-V000", "Dataset": "1-D000", "Version": "1.0.0", "Description": "release", "Snapshot": null}),
            json!({"RID": "1-V001", "Dataset": "1-D001", "Version": "1.0.0", "Snapshot": null}),
            json!({"RID": "1-V002", "Dataset": "1-D002", "Version": "1.0.0", "Snapshot": null}),
            json!({"RID": "1-V003", "Dataset": "1-D003", "Version": "1.0.0", "Snapshot": null}),
            json!({"RID": "1-V010", "Dataset": "1-D000", "Version": "0.1.0", "Snapshot": "33Q-AAAA-AAAA"}),
        ])),
        ("deriva-ml:Dataset_Dataset_Type", with_rct(pair("1-B", "Dataset", "Dataset_Type", &[("1-D000", "Complete"), ("1-D001", "Training"), ("1-D002", "Testing")]))),
        ("deriva-ml:Dataset_Dataset", with_rct(pair("1-C", "Dataset", "Nested_Dataset", &[("1-D000", "1-D001"), ("1-D000", "1-D002"), ("1-D000", "1-D003")]))),
        ("demo:Subject", with_rct(vec![json!({"RID": "1-S001", "Name": "Thing1"}), json!({"RID": "1-S002", "Name": "Thing2"}), json!({"RID": "1-S003", "Name": "Thing3"})])),
        ("demo:Image", with_rct(image_rows)),
        ("demo:Dataset_Image", with_rct(pair("1-J", "Dataset", "Image", &[("1-D001", "1-I001"), ("1-D001", "1-I002"), ("1-D001", "1-I005"), ("1-D002", "1-I003"), ("1-D002", "1-I004"), ("1-D002", "1-I005")]))),
        ("demo:Dataset_Subject", with_rct(pair("1-K", "Dataset", "Subject", &[("1-D001", "1-S001"), ("1-D002", "1-S002"), ("1-D003", "1-S003")]))),
        ("demo:Execution_Image_Glaucoma", label_rows),
    ]
}
