//! `DatasetLike` for `DatasetBag`: the generic consumers' (restructure, adapters) view.

use std::path::{Path, PathBuf};

use deriva_bag_features::{
    CatalogModel, DatasetInfo, DatasetLike, Error, Feature, FeatureRecord, Members, Rid, Row,
    Selector, TableName,
};

use super::assets::Located;
use super::DatasetBag;

impl DatasetLike for DatasetBag {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }

    fn model(&self) -> &CatalogModel {
        &self.shared.model
    }

    fn list_dataset_members(&self, recurse: bool, limit: Option<usize>) -> Result<Members, Error> {
        Ok(DatasetBag::list_dataset_members(self, recurse, limit)?)
    }

    fn list_dataset_children(&self, recurse: bool) -> Result<Vec<DatasetInfo>, Error> {
        Ok(DatasetBag::list_dataset_children(self, recurse)?)
    }

    fn list_dataset_parents(&self, recurse: bool) -> Result<Vec<DatasetInfo>, Error> {
        Ok(DatasetBag::list_dataset_parents(self, recurse)?)
    }

    fn dataset(&self, rid: &Rid) -> Result<Self, Error> {
        Ok(DatasetBag::dataset(self, rid)?)
    }

    fn find_features(&self, table: Option<&str>) -> Result<Vec<Feature>, Error> {
        Ok(DatasetBag::find_features(self, table)?)
    }

    fn lookup_feature(&self, table: &str, name: &str) -> Result<Feature, Error> {
        Ok(DatasetBag::lookup_feature(self, table, name)?)
    }

    fn feature_values(
        &self,
        table: &str,
        feature: &str,
        selector: Option<&Selector>,
    ) -> Result<Vec<FeatureRecord>, Error> {
        Ok(DatasetBag::feature_values(self, table, feature, selector)?)
    }

    fn for_each_feature_value(
        &self,
        table: &str,
        feature: &str,
        selector: Option<&Selector>,
        each: &mut dyn FnMut(FeatureRecord) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // Read on a reader thread as consumed: one target's records at a time.
        for record in self.feature_values_iter(table, feature, selector.cloned())? {
            each(record?)?;
        }
        Ok(())
    }

    fn list_workflow_executions(&self, workflow: &str) -> Result<Vec<Rid>, Error> {
        Ok(DatasetBag::list_workflow_executions(self, workflow)?)
    }

    fn reachable_rows(&self, table: &TableName) -> Result<Vec<Row>, Error> {
        Ok(DatasetBag::reachable_rows(self, table)?)
    }

    fn for_each_reachable_row(
        &self,
        table: &TableName,
        each: &mut dyn FnMut(Row) -> Result<(), Error>,
    ) -> Result<(), Error> {
        for row in self.reachable_rows_stream(table)? {
            each(row?)?;
        }
        Ok(())
    }

    fn reachable_rids(&self, table: &TableName) -> Result<Vec<Rid>, Error> {
        // The reachability query alone: no rows are built.
        Ok(self
            .reachable_rids_stream(table)?
            .collect::<crate::Result<_>>()?)
    }

    fn for_each_reachable_rid(
        &self,
        table: &TableName,
        each: &mut dyn FnMut(Rid) -> Result<(), Error>,
    ) -> Result<(), Error> {
        for rid in self.reachable_rids_stream(table)? {
            each(rid?)?;
        }
        Ok(())
    }

    fn table_rows(&self, table: &TableName) -> Result<Vec<Row>, Error> {
        Ok(self.table_rows_of(table)?)
    }

    fn source_root(&self) -> Option<&Path> {
        Some(&self.shared.path)
    }

    fn asset_path(&self, table: &TableName, row: &Row) -> Option<PathBuf> {
        present(table, self.locate_asset(table, row))
    }

    fn asset_paths(&self, table: &TableName, rows: &[Row]) -> Vec<Option<PathBuf>> {
        match self.locate_assets(table, rows) {
            Ok(located) => located
                .into_iter()
                .map(|located| present(table, located))
                .collect(),
            Err(e) => {
                tracing::warn!(table = %table, rows = rows.len(), error = %e,
                    "asset paths rejected");
                vec![None; rows.len()]
            }
        }
    }
}

/// The file of a located asset row when it is on disk; a rejected row is logged and has none.
fn present(table: &TableName, located: crate::Result<Located>) -> Option<PathBuf> {
    match located {
        Ok(Located::Present(p)) => Some(p),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(table = %table, error = %e, "asset path rejected");
            None
        }
    }
}
