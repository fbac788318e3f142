//! Selectors: pick one record from a group of records about the same target.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::{Error, FeatureRecord, Rid};

/// A user-supplied selector: the group's records in, at most one record out.
pub type SelectorFn =
    dyn Fn(&[FeatureRecord]) -> Result<Option<FeatureRecord>, Error> + Send + Sync;

/// How to reduce the records of one `(target, qualifiers)` group to one record.
#[derive(Clone)]
pub enum Selector {
    /// Greatest RCT (as an instant); ties → greatest row RID.
    Newest,
    /// Smallest RCT; ties → smallest row RID.
    First,
    /// Most frequent value of the column (auto-detected when `None` and the feature has one
    /// term column); ties between values → the newest record among the tied.
    MajorityVote(Option<String>),
    /// Newest record among those produced by this Execution; none → the target is dropped.
    ByExecution(Rid),
    /// Newest record among those produced by these Executions (see `select_by_workflow`).
    ByExecutions(BTreeSet<Rid>),
    /// A user closure.
    Custom(Arc<SelectorFn>),
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Newest => f.write_str("Newest"),
            Selector::First => f.write_str("First"),
            Selector::MajorityVote(c) => write!(f, "MajorityVote({c:?})"),
            Selector::ByExecution(r) => write!(f, "ByExecution({r})"),
            Selector::ByExecutions(s) => write!(f, "ByExecutions({s:?})"),
            Selector::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}
