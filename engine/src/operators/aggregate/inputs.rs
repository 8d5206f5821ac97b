//! Aggregation inputs evaluated once per batch: keys, arguments and FILTER masks.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, UInt32Array};
use arrow::compute::take;
use arrow::record_batch::RecordBatch;

use super::pane::chunk_of;
use super::spec::AggregateSpec;
use crate::error::{Result, StreamError};
use crate::operators::stateless::evaluate_predicate;

/// Evaluated inputs of one batch.
pub(super) struct BatchInputs {
    pub keys: Vec<ArrayRef>,
    /// Per aggregate call, its arguments; of partial rows, its accumulator states.
    pub args: Vec<Vec<ArrayRef>>,
    pub filters: Vec<Option<BooleanArray>>,
    /// Partial rows of a first phase ([`super::local`]): `args` are states to merge.
    pub partial: bool,
}

impl BatchInputs {
    pub(super) fn evaluate(spec: &AggregateSpec, batch: &RecordBatch) -> Result<Self> {
        let n = batch.num_rows();
        let eval =
            |e: &Arc<dyn datafusion::physical_expr::PhysicalExpr>| e.evaluate(batch).and_then(|v| v.into_array(n));
        let keys = spec.key_exprs.iter().map(eval).collect::<datafusion::error::Result<_>>()?;
        let args = spec
            .aggregates
            .iter()
            .map(|a| a.args.iter().map(eval).collect::<datafusion::error::Result<Vec<_>>>())
            .collect::<datafusion::error::Result<_>>()?;
        let filters = spec
            .aggregates
            .iter()
            .map(|a| a.filter.as_ref().map(|f| evaluate_predicate(f, batch)).transpose())
            .collect::<Result<_>>()?;
        Ok(Self { keys, args, filters, partial: false })
    }

    /// Partial rows of a first phase ([`super::local`]): keys and accumulator states, no filters
    /// (the first phase applied them).
    pub(super) fn partial(spec: &AggregateSpec, batch: &RecordBatch) -> Result<Self> {
        let chunk = chunk_of(spec, batch, 0)?;
        if chunk.states.iter().any(Vec::is_empty) {
            return Err(StreamError::Internal("partial rows without the state of every aggregate".into()));
        }
        Ok(Self { keys: chunk.keys, args: chunk.states, filters: vec![None; spec.aggregates.len()], partial: true })
    }

    pub(super) fn slice(&self, offset: usize, len: usize) -> Self {
        Self {
            keys: self.keys.iter().map(|a| a.slice(offset, len)).collect(),
            args: self.args.iter().map(|v| v.iter().map(|a| a.slice(offset, len)).collect()).collect(),
            filters: self.filters.iter().map(|f| f.as_ref().map(|f| f.slice(offset, len))).collect(),
            partial: self.partial,
        }
    }

    pub(super) fn take(&self, rows: &[u32]) -> Result<Self> {
        let idx = UInt32Array::from(rows.to_vec());
        let take_one = |a: &ArrayRef| take(a.as_ref(), &idx, None);
        Ok(Self {
            keys: self.keys.iter().map(take_one).collect::<Result<_, _>>()?,
            args: self
                .args
                .iter()
                .map(|v| v.iter().map(take_one).collect::<Result<Vec<_>, _>>())
                .collect::<Result<_, _>>()?,
            filters: self
                .filters
                .iter()
                .map(|f| f.as_ref().map(|f| take(f, &idx, None).map(|a| a.as_boolean().clone())).transpose())
                .collect::<Result<_, _>>()?,
            partial: self.partial,
        })
    }
}
