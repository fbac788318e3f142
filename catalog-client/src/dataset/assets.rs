//! The live dataset's asset cache: files fetched from Hatrac on demand into a
//! content-addressed directory shared by every run and every `Dataset` value.
//!
//! An asset with md5 `M` and `Filename` `F` lives at `<root>/<M[..2]>/<M>/<F>` (the
//! `Filename` is kept because consumers such as restructure name their output after the
//! source file). Files get there only through the client's checked fetch
//! (`materialize::fetch_shared`: https-or-loopback URL, same-origin redirects, LENGTH bound,
//! md5 verified, synced, then renamed), so a file under its final name is always whole and
//! verified; partial files live in `<root>/.deriva-partial` under a name derived from URL and
//! path, and the next fetch of that file resumes them with `Range`. The same content under
//! another `Filename` is hard-linked rather than fetched again. At most `parallelism`
//! downloads run at once.
//!
//! An asset is fetched when [`asset_path`](deriva_bag_features::DatasetLike::asset_path)
//! first asks for it, together with the next assets of the same listing (read-ahead): a
//! consumer that lists an asset table's rows (`reachable_rows`, `list_dataset_members`) and
//! then asks for their files one by one — restructure, the loaders — gets them
//! `parallelism` at a time without knowing about the cache.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use deriva_bag_features::{Row, TableName, Value};

use crate::error::{Error, Result};
use crate::materialize::{fetch_shared, Job, MaterializeReport};
use crate::names::PathSegment;
use crate::transport::Transport;
use crate::urls::AllowedUrl;

/// Assets fetched ahead per parallel download when `asset_path` misses.
const READ_AHEAD_PER_WORKER: usize = 8;

/// One asset row's place in the cache.
#[derive(Debug, Clone)]
pub(crate) struct CachedAsset {
    url: AllowedUrl,
    /// `<M[..2]>/<M>/<Filename>`.
    rel: String,
    dest: PathBuf,
    length: Option<u64>,
    md5: String,
}

/// The rows of one asset table in the order a consumer listed them, for read-ahead.
struct Listing {
    assets: Vec<Option<CachedAsset>>,
    position: HashMap<String, usize>,
}

/// The content-addressed asset cache of the live datasets of one catalog.
pub(crate) struct AssetCache {
    root: PathBuf,
    parallelism: usize,
    transport: Transport,
    /// Per asset table, the longest listing seen (a dataset's, which holds its children's).
    listings: Mutex<HashMap<TableName, Arc<Listing>>>,
}

impl std::fmt::Debug for AssetCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetCache")
            .field("root", &self.root)
            .field("parallelism", &self.parallelism)
            .finish()
    }
}

fn is_md5(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

impl AssetCache {
    pub(crate) fn new(root: PathBuf, parallelism: usize, transport: Transport) -> Self {
        AssetCache {
            root,
            parallelism: parallelism.max(1),
            transport,
            listings: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where `row`'s file belongs in the cache; `None` (with a warning naming the row) when
    /// the row names no file, has no valid md5 to address it by, or has an unsafe name or URL.
    pub(crate) fn locate(&self, table: &TableName, row: &Row) -> Option<CachedAsset> {
        let rid = row.text("RID").unwrap_or_default().to_string();
        let url = row.text("URL")?;
        let checked = || -> Result<CachedAsset> {
            let md5 = row
                .text("MD5")
                .filter(|m| is_md5(m))
                .ok_or_else(|| {
                    Error::Validation(format!(
                        "{table} row {rid} has no hex MD5 to address its file by"
                    ))
                })?
                .to_ascii_lowercase();
            let filename = row
                .text("Filename")
                .unwrap_or_else(|| url.rsplit('/').next().unwrap_or("asset"));
            // The same check as a download's `data/asset/<RID>/<Table>/<Filename>`.
            let filename = PathSegment::parse(filename, format!("Filename of {table} row {rid}"))?;
            let url = AllowedUrl::parse(&self.transport.url(url))?;
            let rel = format!("{}/{md5}/{filename}", &md5[..2]);
            let length = match row.get("Length") {
                Some(Value::Int(n)) => u64::try_from(*n).ok(),
                _ => None,
            };
            Ok(CachedAsset {
                url,
                dest: self.root.join(&rel),
                rel,
                length,
                md5,
            })
        };
        match checked() {
            Ok(asset) => Some(asset),
            Err(e) => {
                tracing::warn!(table = %table, rid, error = %e, "asset cannot be cached; treated as missing");
                None
            }
        }
    }

    /// The cached file, when it is in place (with its LENGTH, when known).
    pub(crate) fn present(asset: &CachedAsset) -> Option<PathBuf> {
        let meta = std::fs::metadata(&asset.dest).ok()?;
        (meta.is_file() && asset.length.is_none_or(|l| l == meta.len())).then(|| asset.dest.clone())
    }

    /// Remembers the order a consumer listed `table`'s rows in, for read-ahead; the longest
    /// listing per table is kept (a dataset's rows include its children's).
    pub(crate) fn remember(&self, table: &TableName, rows: &[Row]) {
        let mut listings = self.listings.lock().unwrap_or_else(|p| p.into_inner());
        if listings
            .get(table)
            .is_some_and(|l| l.assets.len() >= rows.len())
        {
            return;
        }
        let mut position = HashMap::with_capacity(rows.len());
        let assets = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if let Some(rid) = r.text("RID") {
                    position.entry(rid.to_string()).or_insert(i);
                }
                self.locate(table, r)
            })
            .collect();
        listings.insert(table.clone(), Arc::new(Listing { assets, position }));
    }

    /// `asset` plus the next assets of the listing `rid` is in that are not cached yet, up
    /// to the read-ahead window.
    pub(crate) fn batch_for(
        &self,
        table: &TableName,
        rid: &str,
        asset: CachedAsset,
    ) -> Vec<CachedAsset> {
        let window = self.parallelism * READ_AHEAD_PER_WORKER;
        let listing = self
            .listings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(table)
            .cloned();
        let mut batch = vec![asset];
        if let Some(listing) = listing {
            if let Some(&at) = listing.position.get(rid) {
                batch.extend(
                    listing.assets[at + 1..]
                        .iter()
                        .flatten()
                        .filter(|a| Self::present(a).is_none())
                        .take(window - 1)
                        .cloned(),
                );
            }
        }
        batch
    }

    /// Fetches `assets` into the cache, `parallelism` at a time; those already in place are
    /// not fetched, and content already cached under another `Filename` is hard-linked (both
    /// count as `already_present`).
    pub(crate) async fn fetch(&self, assets: Vec<CachedAsset>) -> Result<MaterializeReport> {
        // One job per destination: two rows may name the same file.
        let unique: BTreeMap<PathBuf, CachedAsset> =
            assets.into_iter().map(|a| (a.dest.clone(), a)).collect();
        let mut jobs = Vec::with_capacity(unique.len());
        // A file under its final name was verified before it was renamed there.
        let mut linked = 0;
        for asset in unique.into_values() {
            if Self::present(&asset).is_some() || link_same_content(&asset) {
                linked += 1;
                continue;
            }
            jobs.push(Job {
                url: asset.url,
                rel: asset.rel,
                dest: asset.dest,
                length: asset.length,
                md5: Some(asset.md5),
            });
        }
        if jobs.is_empty() {
            return Ok(MaterializeReport {
                already_present: linked,
                ..Default::default()
            });
        }
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let mut report = fetch_shared(&self.transport, &self.root, jobs, self.parallelism).await?;
        report.already_present += linked;
        Ok(report)
    }
}

/// Hard-links another file of the same md5 directory (same content, verified when it was
/// placed) to `asset`'s name; false when there is none or linking fails.
fn link_same_content(asset: &CachedAsset) -> bool {
    let Some(dir) = asset.dest.parent() else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.metadata()
            .is_ok_and(|m| m.is_file() && asset.length.is_none_or(|l| l == m.len()))
            && std::fs::hard_link(e.path(), &asset.dest).is_ok()
    })
}
