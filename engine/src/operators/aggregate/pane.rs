//! The state of one pane: interned GROUP BY keys and one accumulator per aggregate call.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::spec::AggregateSpec;
use crate::error::Result;

/// Interned group keys; a query without keys has a single group.
pub(super) enum Groups {
    Single { seen: bool },
    Keyed(Box<dyn GroupValues>, SchemaRef),
}

impl Groups {
    pub(super) fn new(spec: &AggregateSpec) -> Result<Self> {
        if spec.key_fields.is_empty() {
            return Ok(Groups::Single { seen: false });
        }
        let schema = Arc::new(Schema::new(spec.key_fields.clone()));
        Ok(Groups::Keyed(new_group_values(schema.clone(), &GroupOrdering::None)?, schema))
    }

    /// Fills `groups` with a group index per row; returns the number of groups.
    pub(super) fn intern(&mut self, keys: &[ArrayRef], rows: usize, groups: &mut Vec<usize>) -> Result<usize> {
        match self {
            Groups::Single { seen } => {
                groups.clear();
                groups.resize(rows, 0);
                *seen |= rows > 0;
                Ok(usize::from(*seen))
            }
            Groups::Keyed(values, _) => {
                values.intern(keys, groups)?;
                Ok(values.len())
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Groups::Single { seen } => usize::from(*seen),
            Groups::Keyed(values, _) => values.len(),
        }
    }

    /// Takes every key out, leaving the groups empty.
    pub(super) fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        match self {
            Groups::Single { seen } => {
                *seen = false;
                Ok(Vec::new())
            }
            // A fresh table, not the drained one: DataFusion 55's multi-column group values keep
            // their hash table across `emit(EmitTo::All)`, so interning into them again (a pane
            // that gets rows after it was sealed) indexes keys that are gone.
            Groups::Keyed(values, schema) => {
                let keys = values.emit(EmitTo::All)?;
                *values = new_group_values(schema.clone(), &GroupOrdering::None)?;
                Ok(keys)
            }
        }
    }
}

/// Group keys, one final value array per aggregate call, and the number of groups.
pub(super) type Evaluated = (Vec<ArrayRef>, Vec<ArrayRef>, usize);

/// Partial state taken out of a pane as Arrow arrays: keys plus each accumulator's `state()`.
pub(super) struct SealedChunk {
    pub keys: Vec<ArrayRef>,
    pub states: Vec<Vec<ArrayRef>>,
    pub groups: usize,
}

/// One pane: live groups and accumulators, plus chunks already sealed for window merges.
pub(super) struct Pane {
    groups: Groups,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    sealed: Vec<SealedChunk>,
}

/// Inputs of one update, already restricted to the pane's rows.
pub(super) struct PaneInput<'a> {
    pub rows: usize,
    pub keys: &'a [ArrayRef],
    pub args: &'a [Vec<ArrayRef>],
    pub filters: &'a [Option<BooleanArray>],
}

impl Pane {
    pub(super) fn new(spec: &AggregateSpec) -> Result<Self> {
        Ok(Self { groups: Groups::new(spec)?, accumulators: new_accumulators(spec)?, sealed: Vec::new() })
    }

    pub(super) fn update(&mut self, input: PaneInput<'_>, scratch: &mut Vec<usize>) -> Result<()> {
        let total = self.groups.intern(input.keys, input.rows, scratch)?;
        for ((acc, args), filter) in self.accumulators.iter_mut().zip(input.args).zip(input.filters) {
            acc.update_batch(args, scratch, filter.as_ref(), total)?;
        }
        Ok(())
    }

    /// Final values of the live state (TUMBLE: the pane is the whole window).
    pub(super) fn evaluate(mut self) -> Result<Option<Evaluated>> {
        let groups = self.groups.len();
        if groups == 0 {
            return Ok(None);
        }
        let keys = self.groups.emit()?;
        let values = self
            .accumulators
            .iter_mut()
            .map(|acc| acc.evaluate(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok(Some((keys, values, groups)))
    }

    /// Moves the live state into a sealed chunk (no-op when nothing arrived since the last
    /// call) and returns every sealed chunk.
    pub(super) fn sealed(&mut self) -> Result<&[SealedChunk]> {
        let groups = self.groups.len();
        if groups > 0 {
            let keys = self.groups.emit()?;
            let states = self
                .accumulators
                .iter_mut()
                .map(|acc| acc.state(EmitTo::All))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            self.sealed.push(SealedChunk { keys, states, groups });
        }
        Ok(&self.sealed)
    }
}

pub(super) fn new_accumulators(spec: &AggregateSpec) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
    spec.aggregates.iter().map(|a| a.new_accumulator()).collect()
}
