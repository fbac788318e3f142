//! Online DerivaML: download dataset bags, create executions and commit offline-built
//! feature records back to the catalog, crash-safely.
//!
//! This is the online half of the offline workflow: [`DerivaML::connect`] (credentials from
//! `~/.deriva/credential.json` or `DERIVA_CREDENTIAL_FILE`; https required except to
//! loopback), [`DerivaML::download_dataset_bag`] (a Format-B bag with md5+sha256 manifests and
//! `fetch.txt`, cached, materialized in parallel with md5 checks),
//! [`DerivaML::estimate_bag_size`], [`DerivaML::find_workflows`],
//! [`DerivaML::create_execution`], [`Execution::download_dataset_bag`] (the download inside
//! an execution, which links the dataset version to it as an input),
//! [`Execution::add_features`] (staged in local SQLite, no HTTP),
//! [`Execution::upload_execution_outputs`] (the commit) and [`DerivaML::resume_execution`].
//!
//! Catalog responses and bags are untrusted input, each rule enforced in one place: URLs
//! through [`AllowedUrl`] (https, or http to loopback; same-origin redirects only; the
//! credential only to the catalog's origin), catalog names through [`PathSegment`] before they
//! become paths, asset downloads bounded by their `fetch.txt` LENGTH, [`Timeouts`] on every
//! request, and partial downloads kept in [`PARTIAL_DIR`] outside the payload.
//!
//! The commit survives a crash at any point without duplicating or losing a record
//! (a crash before or after any request; the Python reference duplicates or loses records in two such cases):
//! the Execution RID is leased and recorded locally before the Execution row is created,
//! feature rows are inserted with `onconflict=skip` on their `(Execution, target,
//! Feature_Name)` key, asset bytes go to Hatrac through resumable chunked jobs before their
//! rows, and status changes are written locally first and flushed to the catalog later if the
//! catalog is unreachable.
//!
//! Most programs use this crate through `deriva-bag-core`'s `catalog` feature
//! (`deriva_bag_core::catalog`), which re-exports it and opens downloaded bags as
//! `DatasetBag`s. This crate itself depends only on the bag format (`deriva-bag-format`) and
//! the feature model, not on bag-core, so that bag-core can re-export it. Its tests run
//! against `deriva-test-catalog` (the nested crate `catalog-client/test-catalog`), a local
//! ERMrest/Hatrac/webauthn subset seeded with the small demo dataset, as in this example:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use deriva_test_catalog::TestCatalog;
//! use deriva_catalog_client::{
//!     ConnectOptions, Credential, DatasetSpec, DerivaML, ExecutionConfiguration,
//! };
//! use deriva_bag_features::{FeatureId, FeatureRecord};
//!
//! let server = TestCatalog::start().await.unwrap();
//! let work = tempfile::tempdir().unwrap();
//! let ml = DerivaML::connect_with(&server.url(), "1", ConnectOptions {
//!     credential: Some(Credential::BearerToken(server.token().into())),
//!     working_dir: Some(work.path().into()),
//!     ..Default::default()
//! }).await.unwrap();
//!
//! // Download dataset 1-D001 (Training) and its three images.
//! let bag = ml.download_dataset_bag(DatasetSpec::new("1-D001", Some("1.0.0"))).await.unwrap();
//! assert!(bag.materialized);
//! assert!(bag.path.join("data/asset/1-I001/Image/retina_001.jpg").is_file());
//!
//! // Offline: build a record. Online again: create an execution, stage, commit.
//! let mut fields = indexmap::IndexMap::new();
//! fields.insert("Image".to_string(), serde_json::json!("1-I001"));
//! fields.insert("Glaucoma".to_string(), serde_json::json!("Severe"));
//! let record = FeatureRecord {
//!     feature: FeatureId { schema: "demo".into(), table: "Execution_Image_Glaucoma".into(),
//!                          name: "Glaucoma".into() },
//!     target_column: "Image".into(), rid: None, fields,
//! };
//! let workflow = ml.find_workflows().await.unwrap()[0].clone();
//! let exe = ml.create_execution(ExecutionConfiguration {
//!     description: "Offline inference results".into(), workflow,
//!     datasets: vec![DatasetSpec::new("1-D000", Some("1.0.0"))], // provenance: what was read
//! }).await.unwrap();
//! assert_eq!(exe.add_features(&[record]).unwrap(), 1);
//! let report = exe.upload_execution_outputs().await.unwrap();
//! assert_eq!(report.features_inserted, 1);
//! // Committing again is a no-op.
//! assert_eq!(exe.upload_execution_outputs().await.unwrap().features_inserted, 0);
//! # });
//! ```
#![warn(missing_docs)]

mod client;
mod credentials;
mod dataset;
mod download;
mod error;
mod execution;
mod materialize;
mod names;
mod state;
mod transport;
mod urls;

pub use client::{ConnectOptions, DerivaML, ExecutionConfiguration, Session, Workflow};
pub use credentials::{default_credential_file, load_credential, Credential};
pub use dataset::Dataset;
pub use download::{BagSizeEstimate, DatasetSpec, DownloadedBag, TableEstimate};
pub use error::{Error, Result};
pub use execution::{Execution, UploadReport, DEFAULT_CHUNK_BYTES, FEATURE_BATCH_ROWS};
pub use materialize::{
    fully_materialized, materialize_bag, MaterializeReport, DEFAULT_PARALLELISM, PARTIAL_DIR,
};
pub use names::PathSegment;
pub use state::{ExecutionRecord, ExecutionStatus};
pub use transport::{RetryPolicy, Timeouts};
pub use urls::{AllowedUrl, MAX_REDIRECTS};
