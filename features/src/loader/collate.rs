//! Framework-neutral collation: the rules for "what stacks" exist once, and each adapter
//! only turns the result into its tensors.
//!
//! * Labels: a batch of [`Label`]s becomes one dense column (class indices, floats,
//!   vectors), a map of columns (multi-target), or a plain list when the labels are not
//!   numeric or not uniform ([`LabelBatch`]).
//! * Row samples (a non-asset table without a `row_loader`, as in a tabular
//!   regression): one column per non-system column of the table ([`RowColumns`]), typed
//!   from the catalog model, not from the values, so every batch has the same dtypes.
//! * Variable shapes: [`padded_shape`] and [`pad_into`] pad samples to one shape, as
//!   `tf.data`'s `padded_batch`.

use indexmap::IndexMap;

use super::elements::Label;
use crate::model::SYSTEM_COLUMNS;
use crate::{Error, Rid, Row, Table, Value, ValueKind};

/// The dtype a column of row samples collates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnDType {
    /// int2/int4/int8 columns: `int64`.
    Int64,
    /// float4/float8/numeric columns: `float32`; NULL becomes NaN.
    Float,
    /// boolean columns.
    Bool,
    /// Every other column (text, dates, timestamps, JSON, arrays): its text.
    Text,
}

impl ColumnDType {
    fn of(kind: ValueKind, is_array: bool) -> Self {
        match kind {
            _ if is_array => ColumnDType::Text,
            ValueKind::Int => ColumnDType::Int64,
            ValueKind::Float => ColumnDType::Float,
            ValueKind::Bool => ColumnDType::Bool,
            _ => ColumnDType::Text,
        }
    }

    /// The dtype's name as a framework prints it (`int64`, `float32`, `bool`, `string`).
    pub fn name(self) -> &'static str {
        match self {
            ColumnDType::Int64 => "int64",
            ColumnDType::Float => "float32",
            ColumnDType::Bool => "bool",
            ColumnDType::Text => "string",
        }
    }
}

/// One column of a batch of row samples, `[batch]` values.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnBatch {
    /// Integers.
    Int64(Vec<i64>),
    /// Floats (NULL is NaN).
    Float(Vec<f32>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Text.
    Text(Vec<String>),
}

/// The columns row samples collate into: the element table's non-system columns in catalog
/// order, each with the dtype of its declared type (`RID` is the batch's RID list already).
///
/// ```
/// use deriva_bag_features::loader::collate::{ColumnBatch, ColumnDType, RowColumns};
/// use deriva_bag_features::{testing, Rid, Row, Value};
/// use std::sync::Arc;
///
/// let model = testing::demo_model().unwrap();
/// let subject = model.resolve_table("demo:Subject").unwrap();
/// let columns = RowColumns::of_table(subject);
/// assert_eq!(columns.iter().collect::<Vec<_>>(), [("Name", ColumnDType::Text)]);
/// let names: Arc<[Arc<str>]> = ["RID", "Name"].map(Arc::from).into();
/// let row = Row::new(names, vec![Value::Text("1-S001".into()), Value::Text("Thing1".into())]);
/// let batch = columns.collate("demo:Subject", &[&row]).unwrap();
/// assert_eq!(batch["Name"], ColumnBatch::Text(vec!["Thing1".into()]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowColumns {
    columns: Vec<(String, ColumnDType)>,
}

impl RowColumns {
    /// The non-system columns of `table` with their dtypes.
    pub fn of_table(table: &Table) -> Self {
        RowColumns {
            columns: table
                .columns
                .iter()
                .filter(|c| !SYSTEM_COLUMNS.contains(&c.name.as_str()))
                .map(|c| {
                    (
                        c.name.clone(),
                        ColumnDType::of(c.ty.kind(), c.ty.is_array()),
                    )
                })
                .collect(),
        }
    }

    /// Whether there are no columns (asset tables, whose samples come from files).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// `(name, dtype)` in catalog order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ColumnDType)> {
        self.columns.iter().map(|(n, d)| (n.as_str(), *d))
    }

    /// Collates the rows of one batch (of `table`, named in errors) into one `[batch]`
    /// column per column. NULL in a float column is NaN; in any other column it is
    /// [`Error::NullInRowColumn`] naming the row's RID.
    pub fn collate(
        &self,
        table: &str,
        rows: &[&Row],
    ) -> Result<IndexMap<String, ColumnBatch>, Error> {
        let mut out = IndexMap::with_capacity(self.columns.len());
        for (name, dtype) in &self.columns {
            let null = |row: &Row| Error::NullInRowColumn {
                table: table.to_string(),
                column: name.clone(),
                rid: row.rid().unwrap_or_else(|| Rid::new("")),
                dtype: dtype.name(),
            };
            fn value<'r>(row: &'r Row, name: &str) -> Option<&'r Value> {
                row.get(name).filter(|v| !v.is_null())
            }
            let column = match dtype {
                ColumnDType::Float => ColumnBatch::Float(
                    rows.iter()
                        .map(|r| match value(r, name) {
                            Some(Value::Float(f)) => *f as f32,
                            Some(Value::Int(i)) => *i as f32,
                            _ => f32::NAN,
                        })
                        .collect(),
                ),
                ColumnDType::Int64 => ColumnBatch::Int64(
                    rows.iter()
                        .map(|r| match value(r, name) {
                            Some(Value::Int(i)) => Ok(*i),
                            _ => Err(null(r)),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                ColumnDType::Bool => ColumnBatch::Bool(
                    rows.iter()
                        .map(|r| match value(r, name) {
                            Some(Value::Bool(b)) => Ok(*b),
                            _ => Err(null(r)),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                ColumnDType::Text => ColumnBatch::Text(
                    rows.iter()
                        .map(|r| value(r, name).map(Value::to_string).ok_or_else(|| null(r)))
                        .collect::<Result<_, _>>()?,
                ),
            };
            out.insert(name.clone(), column);
        }
        Ok(out)
    }
}

/// The shape a batch of samples of `shapes` pads to: per dimension, `fixed`'s size where it
/// is ≥ 0, else the largest size in the batch (`tf.data`'s `padded_shapes`, `-1` as `None`).
/// An empty `fixed` means all `-1`. Errors give the index of the first sample that does not
/// fit (another rank, or a size larger than a fixed one) and say why.
///
/// ```
/// use deriva_bag_features::loader::collate::padded_shape;
/// assert_eq!(padded_shape(&[vec![2, 5], vec![4, 3]], &[]), Ok(vec![4, 5]));
/// assert_eq!(padded_shape(&[vec![2, 5], vec![4, 3]], &[6, -1]), Ok(vec![6, 5]));
/// assert!(padded_shape(&[vec![2, 5], vec![4, 3]], &[3, -1]).is_err());
/// ```
pub fn padded_shape(shapes: &[Vec<u64>], fixed: &[i64]) -> Result<Vec<u64>, (usize, String)> {
    let Some(first) = shapes.first() else {
        return Ok(fixed.iter().map(|&d| d.max(0) as u64).collect());
    };
    let rank = first.len();
    if !fixed.is_empty() && fixed.len() != rank {
        return Err((
            0,
            format!(
                "sample 0 has rank {rank} but the padded shape {fixed:?} has rank {}",
                fixed.len()
            ),
        ));
    }
    let mut out = vec![0u64; rank];
    for (i, shape) in shapes.iter().enumerate() {
        if shape.len() != rank {
            return Err((
                i,
                format!(
                    "sample {i} has shape {shape:?}, rank {} (sample 0 has {first:?}); \
                     padding cannot change the rank",
                    shape.len()
                ),
            ));
        }
        for (d, &size) in shape.iter().enumerate() {
            out[d] = out[d].max(size);
        }
    }
    for (d, &want) in fixed.iter().enumerate() {
        if want >= 0 {
            if out[d] > want as u64 {
                let i = shapes.iter().position(|s| s[d] > want as u64).unwrap_or(0);
                return Err((
                    i,
                    format!(
                        "sample {i} has shape {:?}, larger than the padded shape {fixed:?} \
                         in dimension {d}",
                        shapes[i]
                    ),
                ));
            }
            out[d] = want as u64;
        }
    }
    Ok(out)
}

/// Copies a row-major sample of `shape` into the top-left corner of `out`, a row-major block
/// of `padded` (each dimension ≥ the sample's), leaving the rest of `out` as it is (the
/// caller fills it with the pad value first).
///
/// ```
/// use deriva_bag_features::loader::collate::pad_into;
/// let mut out = [0.0f32; 6];
/// pad_into(&mut out, &[2, 3], &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// assert_eq!(out, [1.0, 2.0, 0.0, 3.0, 4.0, 0.0]);
/// ```
pub fn pad_into<T: Copy>(out: &mut [T], padded: &[u64], src: &[T], shape: &[u64]) {
    match shape.len() {
        0 => {
            if let (Some(o), Some(s)) = (out.first_mut(), src.first()) {
                *o = *s;
            }
        }
        1 => {
            let n = (shape[0] as usize).min(src.len()).min(out.len());
            out[..n].copy_from_slice(&src[..n]);
        }
        _ => {
            let inner_src: usize = shape[1..].iter().product::<u64>() as usize;
            let inner_out: usize = padded[1..].iter().product::<u64>() as usize;
            for i in 0..shape[0] as usize {
                let (s, o) = (i * inner_src, i * inner_out);
                if s + inner_src > src.len() || o + inner_out > out.len() {
                    break;
                }
                pad_into(
                    &mut out[o..o + inner_out],
                    &padded[1..],
                    &src[s..s + inner_src],
                    &shape[1..],
                );
            }
        }
    }
}

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
    fn padding_keeps_each_sample_in_the_corner_of_a_pad_filled_block() {
        let shapes = [vec![1, 2, 1], vec![2, 1, 1]];
        let padded = padded_shape(&shapes, &[]).unwrap();
        assert_eq!(padded, [2, 2, 1]);
        let mut a = [-1i64; 4];
        pad_into(&mut a, &padded, &[7, 8], &shapes[0]);
        assert_eq!(a, [7, 8, -1, -1]);
        let mut b = [-1i64; 4];
        pad_into(&mut b, &padded, &[5, 6], &shapes[1]);
        assert_eq!(b, [5, -1, 6, -1]);
        let (i, err) = padded_shape(&[vec![2, 2], vec![2]], &[]).unwrap_err();
        assert_eq!(i, 1);
        assert!(err.contains("sample 1 has shape [2]"), "{err}");
        let (i, err) = padded_shape(&[vec![2], vec![5]], &[4]).unwrap_err();
        assert_eq!(i, 1);
        assert!(err.contains("sample 1 has shape [5], larger"), "{err}");
    }

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
