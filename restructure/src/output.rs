//! The output directory as a boundary: where it really leads once symbolic links are
//! followed, and the one check that it does not lie inside the dataset's own files.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::{io, Error, Result};

/// Where `path` (absolute) leads: its deepest existing ancestor with every symbolic link
/// resolved, then the components that do not exist yet, applied lexically (`..` pops). Those
/// cannot be links: they do not exist, and what restructure creates there are directories.
pub(crate) fn resolve(path: &Path) -> Result<PathBuf> {
    let mut existing = path;
    let mut rest: Vec<Component<'_>> = Vec::new();
    let mut canonical = loop {
        match fs::canonicalize(existing) {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(parent), Some(last)) =
                    (existing.parent(), existing.components().next_back())
                else {
                    return Err(io(path)(e));
                };
                rest.push(last);
                existing = parent;
            }
            Err(e) => return Err(io(existing)(e)),
        }
    };
    for c in rest.into_iter().rev() {
        match c {
            Component::ParentDir => {
                canonical.pop();
            }
            Component::CurDir => {}
            other => canonical.push(other.as_os_str()),
        }
    }
    Ok(canonical)
}

/// The canonical form of the dataset's directory, when it has one on disk.
pub(crate) fn canonical_source(source_root: Option<&Path>) -> Result<Option<PathBuf>> {
    source_root
        .map(|s| fs::canonicalize(s).map_err(io(s)))
        .transpose()
}

/// Refuses `output_dir` (absolute) when it is, or lies inside, the dataset's directory once
/// symbolic links are followed ([`Error::OutputInsideSource`]). Writes nothing.
pub(crate) fn check_outside_source(
    output_dir: &Path,
    source_root: Option<&Path>,
    canonical_source: Option<&Path>,
) -> Result<()> {
    let (Some(source_root), Some(canonical_source)) = (source_root, canonical_source) else {
        return Ok(());
    };
    if resolve(output_dir)?.starts_with(canonical_source) {
        return Err(Error::OutputInsideSource {
            output_dir: output_dir.to_path_buf(),
            source_root: source_root.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_links_of_existing_ancestors_and_pops_parents_of_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir_all(base.join("real/sub")).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
            assert_eq!(
                resolve(&base.join("link/sub/new/x")).unwrap(),
                base.join("real/sub/new/x")
            );
        }
        assert_eq!(
            resolve(&base.join("real/new/../other/./y")).unwrap(),
            base.join("real/other/y")
        );
        assert_eq!(
            resolve(&base.join("real/sub/..")).unwrap(),
            base.join("real")
        );
    }
}
