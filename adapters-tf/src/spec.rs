//! Samples, dtypes and the output signature (`tf.TensorSpec`, with `-1` for a variable
//! dimension, as `None` in Python).

use std::fmt;

use deriva_bag_features::loader::collate::{ColumnDType, RowColumns};
use deriva_bag_features::loader::elements::{Element, Label, Sample};
use deriva_bag_features::Rid;
use indexmap::IndexMap;

use crate::Error;

/// Element dtypes the adapter feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `tf.float32`.
    Float,
    /// `tf.int64`.
    Int64,
    /// `tf.uint8`.
    UInt8,
    /// `tf.bool` (boolean columns of row samples).
    Bool,
    /// `tf.string` (text columns of row samples).
    String,
}

impl From<ColumnDType> for DType {
    fn from(d: ColumnDType) -> Self {
        match d {
            ColumnDType::Int64 => DType::Int64,
            ColumnDType::Float => DType::Float,
            ColumnDType::Bool => DType::Bool,
            ColumnDType::Text => DType::String,
        }
    }
}

impl DType {
    /// The TensorFlow data type.
    pub fn data_type(self) -> tensorflow::DataType {
        match self {
            DType::Float => tensorflow::DataType::Float,
            DType::Int64 => tensorflow::DataType::Int64,
            DType::UInt8 => tensorflow::DataType::UInt8,
            DType::Bool => tensorflow::DataType::Bool,
            DType::String => tensorflow::DataType::String,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::Float => "float32",
            DType::Int64 => "int64",
            DType::UInt8 => "uint8",
            DType::Bool => "bool",
            DType::String => "string",
        })
    }
}

/// A dense sample: values in row-major order and their shape (e.g. `HWC` pixels).
#[derive(Debug, Clone, PartialEq)]
pub enum TfSample {
    /// `float32` values.
    Float {
        /// Dimensions.
        shape: Vec<u64>,
        /// `product(shape)` values.
        data: Vec<f32>,
    },
    /// `int64` values.
    Int64 {
        /// Dimensions.
        shape: Vec<u64>,
        /// `product(shape)` values.
        data: Vec<i64>,
    },
    /// `uint8` values (raw pixels).
    UInt8 {
        /// Dimensions.
        shape: Vec<u64>,
        /// `product(shape)` values.
        data: Vec<u8>,
    },
}

fn checked(shape: &[u64], found: usize) -> Result<(), Error> {
    let expected = shape.iter().product::<u64>() as usize;
    if expected == found {
        Ok(())
    } else {
        Err(Error::BadSample {
            shape: shape.to_vec(),
            expected,
            found,
        })
    }
}

impl TfSample {
    /// A `float32` sample; the value count must match the shape.
    pub fn float(shape: impl Into<Vec<u64>>, data: Vec<f32>) -> Result<Self, Error> {
        let shape = shape.into();
        checked(&shape, data.len())?;
        Ok(TfSample::Float { shape, data })
    }

    /// An `int64` sample.
    pub fn int64(shape: impl Into<Vec<u64>>, data: Vec<i64>) -> Result<Self, Error> {
        let shape = shape.into();
        checked(&shape, data.len())?;
        Ok(TfSample::Int64 { shape, data })
    }

    /// A `uint8` sample.
    pub fn uint8(shape: impl Into<Vec<u64>>, data: Vec<u8>) -> Result<Self, Error> {
        let shape = shape.into();
        checked(&shape, data.len())?;
        Ok(TfSample::UInt8 { shape, data })
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        match self {
            TfSample::Float { .. } => DType::Float,
            TfSample::Int64 { .. } => DType::Int64,
            TfSample::UInt8 { .. } => DType::UInt8,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[u64] {
        match self {
            TfSample::Float { shape, .. }
            | TfSample::Int64 { shape, .. }
            | TfSample::UInt8 { shape, .. } => shape,
        }
    }
}

/// One tensor's spec: dtype and shape, `-1` for a dimension of any size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    /// Element type.
    pub dtype: DType,
    /// Dimensions; `-1` = variable.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// A spec with this dtype and shape.
    pub fn new(dtype: DType, shape: impl Into<Vec<i64>>) -> Self {
        TensorSpec {
            dtype,
            shape: shape.into(),
        }
    }

    /// The exact spec of a value of this dtype and shape.
    pub fn of(dtype: DType, shape: &[u64]) -> Self {
        TensorSpec::new(dtype, shape.iter().map(|&d| d as i64).collect::<Vec<_>>())
    }

    /// Whether a value of `dtype` and `shape` fits (same rank; `-1` matches any size).
    pub fn accepts(&self, dtype: DType, shape: &[u64]) -> bool {
        self.dtype == dtype
            && self.shape.len() == shape.len()
            && self
                .shape
                .iter()
                .zip(shape)
                .all(|(&s, &d)| s < 0 || s as u64 == d)
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TensorSpec(shape={:?}, dtype={})",
            self.shape, self.dtype
        )
    }
}

/// The spec of an element's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// No targets requested: elements are `(sample, rid)`.
    None,
    /// One tensor (a class index is `int64 []`, a float `float32 []`, a vector `float32 [n]`).
    Tensor(TensorSpec),
    /// A multi-target label: one spec per name.
    Map(IndexMap<String, TensorSpec>),
}

/// The spec of an element's sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleSpec {
    /// One tensor (what a `sample_loader` or `row_loader` returns).
    Tensor(TensorSpec),
    /// A table row without a `row_loader` (tabular regression): one scalar per
    /// non-system column, keyed by column name, typed from the catalog model (`int64`,
    /// `float32`, `bool`, `string`); a batch holds one `[batch]` tensor per column.
    Columns(IndexMap<String, TensorSpec>),
}

impl SampleSpec {
    /// The spec of tensor samples.
    pub fn tensor(&self) -> Option<&TensorSpec> {
        match self {
            SampleSpec::Tensor(t) => Some(t),
            SampleSpec::Columns(_) => None,
        }
    }

    /// The per-column specs of row samples.
    pub fn columns(&self) -> Option<&IndexMap<String, TensorSpec>> {
        match self {
            SampleSpec::Columns(c) => Some(c),
            SampleSpec::Tensor(_) => None,
        }
    }

    /// The spec of row samples with these columns.
    pub fn of_columns(columns: &RowColumns) -> Self {
        SampleSpec::Columns(
            columns
                .iter()
                .map(|(name, dtype)| (name.to_string(), TensorSpec::new(dtype.into(), [])))
                .collect(),
        )
    }
}

impl fmt::Display for SampleSpec {
    /// One [`TensorSpec`], or `{"column": TensorSpec(…), …}` for row samples.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleSpec::Tensor(spec) => spec.fmt(f),
            SampleSpec::Columns(specs) => write_spec_map(f, specs),
        }
    }
}

/// `{"name": TensorSpec(…), …}`, as Python prints a dict of specs.
fn write_spec_map(f: &mut fmt::Formatter<'_>, specs: &IndexMap<String, TensorSpec>) -> fmt::Result {
    f.write_str("{")?;
    for (i, (name, spec)) in specs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{name:?}: {spec}")?;
    }
    f.write_str("}")
}

impl From<TensorSpec> for SampleSpec {
    fn from(spec: TensorSpec) -> Self {
        SampleSpec::Tensor(spec)
    }
}

impl fmt::Display for TargetSpec {
    /// `None`, one [`TensorSpec`], or `{"name": TensorSpec(…), …}` for a multi-target label.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::None => f.write_str("None"),
            TargetSpec::Tensor(spec) => spec.fmt(f),
            TargetSpec::Map(specs) => write_spec_map(f, specs),
        }
    }
}

/// The output signature: sample spec and target spec; the RID is always a scalar string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The sample's spec.
    pub sample: SampleSpec,
    /// The target's spec.
    pub target: TargetSpec,
}

impl Signature {
    /// A signature from a sample spec (a [`TensorSpec`] or [`SampleSpec`]) and a target spec.
    pub fn new(sample: impl Into<SampleSpec>, target: TargetSpec) -> Self {
        Signature {
            sample: sample.into(),
            target,
        }
    }

    /// The exact signature of one element (as `tf.type_spec_from_value`); a row sample has
    /// the spec of `columns` (the plan's [`RowColumns`]).
    pub fn infer(element: &Element<TfSample>, columns: &RowColumns) -> Result<Signature, Error> {
        let sample = match &element.sample {
            Sample::Loaded(s) => SampleSpec::Tensor(TensorSpec::of(s.dtype(), s.shape())),
            Sample::Row(_) => SampleSpec::of_columns(columns),
        };
        let target = match &element.target {
            Label::None => TargetSpec::None,
            Label::Map(m) => TargetSpec::Map(
                m.iter()
                    .map(|(k, l)| Ok((k.clone(), label_spec(l, &element.rid)?)))
                    .collect::<Result<_, Error>>()?,
            ),
            other => TargetSpec::Tensor(label_spec(other, &element.rid)?),
        };
        Ok(Signature { sample, target })
    }

    /// Checks one element against the signature; the error names the RID and both shapes.
    pub fn check(&self, element: &Element<TfSample>) -> Result<(), Error> {
        let rid = &element.rid;
        match (&element.sample, &self.sample) {
            (Sample::Loaded(s), SampleSpec::Tensor(spec)) => {
                check_one(spec, s.dtype(), s.shape(), rid, "sample")?
            }
            // Row values are typed by the model; NULLs surface when the batch is collated.
            (Sample::Row(_), SampleSpec::Columns(_)) => {}
            (Sample::Loaded(s), SampleSpec::Columns(_)) => {
                return Err(Error::NotATensor {
                    rid: rid.clone(),
                    detail: format!(
                        "the sample is a {} {:?} tensor but the signature expects row columns",
                        s.dtype(),
                        s.shape()
                    ),
                })
            }
            (Sample::Row(_), SampleSpec::Tensor(spec)) => {
                return Err(Error::NotATensor {
                    rid: rid.clone(),
                    detail: format!(
                        "the sample is a table row but the signature expects {spec}; pass a \
                         row_loader, or a signature with SampleSpec::Columns"
                    ),
                })
            }
        }
        match (&self.target, &element.target) {
            (TargetSpec::None, Label::None) => Ok(()),
            (TargetSpec::Tensor(spec), label) => {
                let (dtype, shape) = label_value_shape(label, rid)?;
                check_one(spec, dtype, &shape, rid, "target")
            }
            (TargetSpec::Map(specs), Label::Map(labels)) => {
                for (name, spec) in specs {
                    let label = labels.get(name).ok_or_else(|| Error::NotATensor {
                        rid: rid.clone(),
                        detail: format!("the multi-target label has no {name:?} entry"),
                    })?;
                    let (dtype, shape) = label_value_shape(label, rid)?;
                    check_one(spec, dtype, &shape, rid, &format!("target {name:?}"))?;
                }
                Ok(())
            }
            (spec, label) => Err(Error::NotATensor {
                rid: rid.clone(),
                detail: format!("target {label:?} does not match the signature's {spec:?}"),
            }),
        }
    }
}

/// The element spec as Python's `dataset.element_spec` prints it: `(sample, target, rid)`,
/// or `(sample, rid)` without targets.
///
/// ```
/// use deriva_bag_core::tf::{DType, Signature, TargetSpec, TensorSpec};
/// let signature = Signature::new(
///     TensorSpec::new(DType::Float, [32, 32, 3]),
///     TargetSpec::Tensor(TensorSpec::new(DType::Int64, [])),
/// );
/// assert_eq!(
///     signature.to_string(),
///     "(TensorSpec(shape=[32, 32, 3], dtype=float32), \
///      TensorSpec(shape=[], dtype=int64), \
///      TensorSpec(shape=[], dtype=string))"
/// );
/// ```
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, ", self.sample)?;
        if self.target != TargetSpec::None {
            write!(f, "{}, ", self.target)?;
        }
        f.write_str("TensorSpec(shape=[], dtype=string))")
    }
}

fn check_one(
    spec: &TensorSpec,
    dtype: DType,
    shape: &[u64],
    rid: &Rid,
    part: &str,
) -> Result<(), Error> {
    if spec.accepts(dtype, shape) {
        Ok(())
    } else {
        Err(Error::SignatureMismatch {
            rid: rid.clone(),
            part: part.to_string(),
            expected: spec.clone(),
            found_dtype: dtype.to_string(),
            found: shape.to_vec(),
        })
    }
}

fn label_value_shape(label: &Label, rid: &Rid) -> Result<(DType, Vec<u64>), Error> {
    match label {
        Label::Class(_) => Ok((DType::Int64, vec![])),
        Label::Float(_) => Ok((DType::Float, vec![])),
        Label::Vector(v) => Ok((DType::Float, vec![v.len() as u64])),
        Label::None => Err(Error::NotATensor {
            rid: rid.clone(),
            detail: "the target is missing (Missing::Unknown) and has no tensor form; map it \
                     to a value in target_transform"
                .into(),
        }),
        Label::Raw(_) | Label::Map(_) => Err(Error::NotATensor {
            rid: rid.clone(),
            detail: "the target is a resolved record, which has no tensor form; pass a \
                     target_transform that returns a Label (e.g. Label::Class)"
                .into(),
        }),
    }
}

fn label_spec(label: &Label, rid: &Rid) -> Result<TensorSpec, Error> {
    let (dtype, shape) = label_value_shape(label, rid)?;
    Ok(TensorSpec::of(dtype, &shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_one_matches_any_size_but_not_another_rank() {
        let spec = TensorSpec::new(DType::Float, [-1, -1, 3]);
        assert!(spec.accepts(DType::Float, &[48, 64, 3]));
        assert!(spec.accepts(DType::Float, &[10, 7, 3]));
        assert!(!spec.accepts(DType::Float, &[10, 7, 1]));
        assert!(!spec.accepts(DType::Float, &[10, 3]));
        assert!(!spec.accepts(DType::Int64, &[10, 7, 3]));
    }

    #[test]
    fn samples_check_their_value_count() {
        assert!(TfSample::float([2u64, 2], vec![0.0; 4]).is_ok());
        let err = TfSample::float([2u64, 3], vec![0.0; 4])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "sample of shape [2, 3] needs 6 values, got 4");
    }

    #[test]
    fn a_signature_prints_like_python_element_spec() {
        let sample = TensorSpec::new(DType::Float, [-1, -1, 3]);
        assert_eq!(
            Signature::new(sample.clone(), TargetSpec::None).to_string(),
            "(TensorSpec(shape=[-1, -1, 3], dtype=float32), TensorSpec(shape=[], dtype=string))"
        );
        let map = TargetSpec::Map(IndexMap::from([
            ("Glaucoma".to_string(), TensorSpec::new(DType::Int64, [])),
            ("Severity".to_string(), TensorSpec::new(DType::Float, [4])),
        ]));
        assert_eq!(
            Signature::new(sample, map).to_string(),
            "(TensorSpec(shape=[-1, -1, 3], dtype=float32), \
             {\"Glaucoma\": TensorSpec(shape=[], dtype=int64), \
             \"Severity\": TensorSpec(shape=[4], dtype=float32)}, \
             TensorSpec(shape=[], dtype=string))"
        );
    }
}
