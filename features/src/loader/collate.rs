//! Framework-neutral collation of labels: a batch of [`Label`]s becomes one dense column
//! (class indices, floats, vectors), a map of columns (multi-target), or a plain list when
//! the labels are not numeric or not uniform. Each adapter turns a [`LabelBatch`] into its
//! tensors, so the rules for "what stacks" exist once.

use indexmap::IndexMap;

use super::elements::Label;

/// The labels of one batch, stacked where they can be.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelBatch {
    /// No labels (no targets were requested).
    None,
    /// Class indices, shape `[batch]`.
    Class(Vec<i64>),
    /// Regression values, shape `[batch]`.
    Float(Vec<f32>),
    /// Vectors of one length `len`, row-major `[batch, len]`.
    Vector {
        /// Length of every vector.
        len: usize,
        /// `batch * len` values.
        data: Vec<f32>,
    },
    /// Multi-target: one column per name, in the order of the first label's map.
    Map(IndexMap<String, LabelBatch>),
    /// Anything else (raw targets, mixed kinds, missing values): the labels as they are.
    List(Vec<Label>),
}

impl LabelBatch {
    /// Stacks `labels`: all `Class` → [`LabelBatch::Class`], all `Float` → `Float`, all
    /// `Vector` of one length → `Vector`, all `Map` with the same keys → `Map` (per key),
    /// all `None` → `None`; otherwise [`LabelBatch::List`] (e.g. a missing label among
    /// classes, which has no numeric value to stand for it).
    pub fn collate(labels: Vec<Label>) -> LabelBatch {
        let Some(first) = labels.first() else {
            return LabelBatch::List(labels);
        };
        match first {
            Label::None if labels.iter().all(|l| matches!(l, Label::None)) => LabelBatch::None,
            Label::Class(_) => collect_all(&labels, |l| match l {
                Label::Class(c) => Some(*c),
                _ => None,
            })
            .map_or(LabelBatch::List(labels.clone()), LabelBatch::Class),
            Label::Float(_) => collect_all(&labels, |l| match l {
                Label::Float(f) => Some(*f as f32),
                _ => None,
            })
            .map_or(LabelBatch::List(labels.clone()), LabelBatch::Float),
            Label::Vector(v0) => {
                let len = v0.len();
                let uniform = labels
                    .iter()
                    .all(|l| matches!(l, Label::Vector(v) if v.len() == len));
                if uniform {
                    let mut data = Vec::with_capacity(len * labels.len());
                    for l in &labels {
                        if let Label::Vector(v) = l {
                            data.extend_from_slice(v);
                        }
                    }
                    LabelBatch::Vector { len, data }
                } else {
                    LabelBatch::List(labels)
                }
            }
            Label::Map(m0) => {
                let keys: Vec<String> = m0.keys().cloned().collect();
                let same_keys = labels.iter().all(|l| {
                    matches!(l, Label::Map(m) if m.len() == keys.len() && keys.iter().all(|k| m.contains_key(k)))
                });
                if !same_keys {
                    return LabelBatch::List(labels);
                }
                let mut columns: IndexMap<String, Vec<Label>> =
                    keys.iter().map(|k| (k.clone(), Vec::new())).collect();
                for l in labels {
                    if let Label::Map(mut m) = l {
                        for (k, column) in columns.iter_mut() {
                            column.push(m.shift_remove(k).unwrap_or(Label::None));
                        }
                    }
                }
                LabelBatch::Map(
                    columns
                        .into_iter()
                        .map(|(k, v)| (k, LabelBatch::collate(v)))
                        .collect(),
                )
            }
            _ => LabelBatch::List(labels),
        }
    }
}

fn collect_all<T>(labels: &[Label], f: impl Fn(&Label) -> Option<T>) -> Option<Vec<T>> {
    labels.iter().map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_labels_stack_and_mixed_ones_stay_a_list() {
        assert_eq!(
            LabelBatch::collate(vec![Label::Class(1), Label::Class(3)]),
            LabelBatch::Class(vec![1, 3])
        );
        assert_eq!(
            LabelBatch::collate(vec![Label::Float(0.5), Label::Float(2.0)]),
            LabelBatch::Float(vec![0.5, 2.0])
        );
        assert_eq!(
            LabelBatch::collate(vec![
                Label::Vector(vec![1.0, 2.0]),
                Label::Vector(vec![3.0, 4.0])
            ]),
            LabelBatch::Vector {
                len: 2,
                data: vec![1.0, 2.0, 3.0, 4.0]
            }
        );
        assert_eq!(
            LabelBatch::collate(vec![Label::None, Label::None]),
            LabelBatch::None
        );
        let mixed = vec![Label::Class(1), Label::None];
        assert_eq!(LabelBatch::collate(mixed.clone()), LabelBatch::List(mixed));
    }

    #[test]
    fn multi_target_maps_collate_per_name() {
        let m = |g: i64, c: f64| {
            Label::Map(IndexMap::from([
                ("grade".to_string(), Label::Class(g)),
                ("cdr".to_string(), Label::Float(c)),
            ]))
        };
        let batch = LabelBatch::collate(vec![m(0, 0.25), m(3, 0.5)]);
        let LabelBatch::Map(columns) = batch else {
            panic!("expected a map")
        };
        assert_eq!(columns.keys().collect::<Vec<_>>(), ["grade", "cdr"]);
        assert_eq!(columns["grade"], LabelBatch::Class(vec![0, 3]));
        assert_eq!(columns["cdr"], LabelBatch::Float(vec![0.25, 0.5]));
    }
}
