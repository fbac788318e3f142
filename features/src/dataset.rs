//! The [`DatasetLike`] trait: what restructure and the adapters need from a dataset,
//! implemented by a downloaded bag (`deriva-bag-core`) and a live catalog dataset
//! (`deriva-catalog-client`).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Serialize;

use crate::{CatalogModel, Error, Feature, FeatureRecord, Rid, Row, Selector, TableName};

/// Identity and description of one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetInfo {
    /// The dataset's RID.
    pub rid: Rid,
    /// The highest `Dataset_Version.Version` for it (PEP 440 text), if any.
    pub version: Option<String>,
    /// `Dataset_Type` term names, e.g. `["Training"]`.
    pub types: Vec<String>,
    /// `Dataset.Description`.
    pub description: Option<String>,
}

/// Members of a dataset grouped by element table. Every element type is a key, even when
/// it has no members (as the reference does).
pub type Members = IndexMap<TableName, Vec<Row>>;

/// DerivaML's DatasetLike protocol: read access to one dataset, its nested datasets,
/// its tables and its features. Generic consumers (restructure, adapters) use only this.
pub trait DatasetLike {
    /// RID, version, types and description of this dataset.
    fn info(&self) -> &DatasetInfo;

    /// The catalog model the dataset's rows follow.
    fn model(&self) -> &CatalogModel;

    /// The dataset's RID.
    fn rid(&self) -> &Rid {
        &self.info().rid
    }

    /// The dataset's version.
    fn version(&self) -> Option<&str> {
        self.info().version.as_deref()
    }

    /// The dataset's types.
    fn dataset_types(&self) -> &[String] {
        &self.info().types
    }

    /// The dataset's description.
    fn description(&self) -> Option<&str> {
        self.info().description.as_deref()
    }

    /// Members by element table; `recurse` adds nested datasets' members (parent rows first),
    /// `limit` caps rows per table per dataset level.
    fn list_dataset_members(&self, recurse: bool, limit: Option<usize>) -> Result<Members, Error>;

    /// Nested datasets (direct children first, then each child's descendants when `recurse`).
    fn list_dataset_children(&self, recurse: bool) -> Result<Vec<DatasetInfo>, Error>;

    /// Datasets that nest this one (direct parents first, then their ancestors when `recurse`).
    fn list_dataset_parents(&self, recurse: bool) -> Result<Vec<DatasetInfo>, Error>;

    /// Another dataset of the same bag or catalog, e.g. a nested one.
    fn dataset(&self, rid: &Rid) -> Result<Self, Error>
    where
        Self: Sized;

    /// Features whose target is `table` (bare or qualified name), or every feature.
    fn find_features(&self, table: Option<&str>) -> Result<Vec<Feature>, Error>;

    /// The feature `name` on `table`.
    fn lookup_feature(&self, table: &str, name: &str) -> Result<Feature, Error>;

    /// Values of a feature for targets reachable from this dataset, ordered by
    /// (target RID, RCT, row RID); with a selector, one record per (target, qualifiers).
    fn feature_values(
        &self,
        table: &str,
        feature: &str,
        selector: Option<&Selector>,
    ) -> Result<Vec<FeatureRecord>, Error>;

    /// [`feature_values`](Self::feature_values) one record at a time, in the same order, so a
    /// consumer that keeps only what it needs (restructure: one record per element) does not
    /// hold every record. The default reads the `Vec`; a backend that can stream (a bag)
    /// overrides it. Stops at the first error `each` returns.
    fn for_each_feature_value(
        &self,
        table: &str,
        feature: &str,
        selector: Option<&Selector>,
        each: &mut dyn FnMut(FeatureRecord) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.feature_values(table, feature, selector)?
            .into_iter()
            .try_for_each(each)
    }

    /// Execution RIDs of a workflow given by Workflow RID or Workflow_Type name.
    fn list_workflow_executions(&self, workflow: &str) -> Result<Vec<Rid>, Error>;

    /// Rows of `table` reachable from this dataset and its nested datasets: members, and rows
    /// reached from them by foreign keys (e.g. Images of member Subjects). Sorted by RID, unique.
    fn reachable_rows(&self, table: &TableName) -> Result<Vec<Row>, Error>;

    /// [`reachable_rows`](Self::reachable_rows) one row at a time, in the same order, so a
    /// consumer that keeps only a little of each row does not hold them all. The default reads
    /// the `Vec`; a backend that can stream (a bag) overrides it. Stops at the first error
    /// `each` returns.
    fn for_each_reachable_row(
        &self,
        table: &TableName,
        each: &mut dyn FnMut(Row) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.reachable_rows(table)?.into_iter().try_for_each(each)
    }

    /// [`reachable_rids`](Self::reachable_rids) one RID at a time, in the same order, so a
    /// consumer that keeps them on disk (restructure) does not hold them all. The default
    /// reads the `Vec`; a backend that can stream (a bag) overrides it. Stops at the first
    /// error `each` returns.
    fn for_each_reachable_rid(
        &self,
        table: &TableName,
        each: &mut dyn FnMut(Rid) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.reachable_rids(table)?.into_iter().try_for_each(each)
    }

    /// The RIDs of [`reachable_rows`](Self::reachable_rows), sorted. A backend may answer
    /// without building the rows (the dataset report asks this once per split).
    fn reachable_rids(&self, table: &TableName) -> Result<Vec<Rid>, Error> {
        Ok(self
            .reachable_rows(table)?
            .iter()
            .filter_map(Row::rid)
            .collect())
    }

    /// All rows of `table` in the bag or catalog snapshot (not only this dataset's).
    fn table_rows(&self, table: &TableName) -> Result<Vec<Row>, Error>;

    /// The local file of an asset row, when it is present on disk.
    fn asset_path(&self, table: &TableName, row: &Row) -> Option<PathBuf>;

    /// [`asset_path`](Self::asset_path) of each of `rows`, in order. The default asks one
    /// row at a time; a dataset whose lookups wait on the disk answers a batch on several
    /// threads (a bag does), which is how restructure asks for millions of assets.
    fn asset_paths(&self, table: &TableName, rows: &[Row]) -> Vec<Option<PathBuf>> {
        rows.iter().map(|row| self.asset_path(table, row)).collect()
    }

    /// The directory that holds this dataset's own files (a bag directory, or the extraction
    /// directory of an archive bag), which consumers such as restructure must never write
    /// into. `None` (the default) for a dataset with no local directory, e.g. a live catalog.
    fn source_root(&self) -> Option<&Path> {
        None
    }
}
