//! Directory names from labels: `/`, `\` and NUL become `_`; `.`, `..` and the
//! empty string are refused, naming the RID. The Python reference does none of this, so a
//! label `..` or `/etc` there writes outside the output directory.

use deriva_bag_features::Rid;

use crate::error::{Error, Result};

/// What a name is for (only changes the error message).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LabelKind {
    Label,
    TypeDir,
}

/// Makes `label` safe as one directory name, or refuses it naming `rid` (the asset).
///
/// ```
/// use deriva_bag_features::Rid;
/// use deriva_bag_restructure::sanitize_label;
/// let rid = Rid::new("1-I001");
/// assert_eq!(sanitize_label("N/A", &rid).unwrap(), "N_A");
/// assert!(sanitize_label("..", &rid).unwrap_err().to_string().contains("1-I001"));
/// ```
pub fn sanitize_label(label: &str, rid: &Rid) -> Result<String> {
    sanitize(label, rid, LabelKind::Label)
}

pub(crate) fn sanitize(label: &str, rid: &Rid, kind: LabelKind) -> Result<String> {
    let what = match kind {
        LabelKind::Label => "label",
        LabelKind::TypeDir => "type directory",
    };
    let refuse = |reason| Error::UnsafeLabel {
        what,
        label: label.to_string(),
        rid: rid.clone(),
        reason,
    };
    match label {
        "" => return Err(refuse("it is empty")),
        "." | ".." => return Err(refuse("it names the current or parent directory")),
        _ => {}
    }
    Ok(label
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rid() -> Rid {
        Rid::new("1-I004")
    }

    #[test]
    fn separators_and_nul_become_underscores() {
        assert_eq!(sanitize_label("N/A", &rid()).unwrap(), "N_A");
        assert_eq!(sanitize_label("a\\b", &rid()).unwrap(), "a_b");
        assert_eq!(sanitize_label("x\0y", &rid()).unwrap(), "x_y");
        assert_eq!(sanitize_label("/etc", &rid()).unwrap(), "_etc");
        assert_eq!(sanitize_label("../up", &rid()).unwrap(), ".._up");
        assert_eq!(sanitize_label("Late stage", &rid()).unwrap(), "Late stage");
        assert_eq!(sanitize_label("...", &rid()).unwrap(), "...");
    }

    #[test]
    fn dot_dotdot_and_empty_are_errors_naming_the_rid() {
        for bad in ["", ".", ".."] {
            let err = sanitize_label(bad, &rid()).unwrap_err().to_string();
            assert!(err.contains("1-I004"), "{err}");
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        let err = sanitize("..", &Rid::new("1-D001"), LabelKind::TypeDir)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("type directory \"..\" for 1-D001"), "{err}");
    }

    proptest! {
        #[test]
        fn sanitized_labels_are_one_normal_path_component(label in "\\PC{0,12}") {
            if let Ok(name) = sanitize_label(&label, &rid()) {
                let path = std::path::Path::new(&name);
                let comps: Vec<_> = path.components().collect();
                prop_assert_eq!(comps.len(), 1);
                prop_assert!(matches!(comps[0], std::path::Component::Normal(_)));
                prop_assert!(!name.contains('\0'));
            }
        }
    }
}
