//! The state of one pane: interned GROUP BY keys and one accumulator per aggregate call.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::spec::AggregateSpec;
use crate::error::{Result, StreamError};

/// Interned group keys; a query without keys has a single group.
pub(super) enum Groups {
    Single { seen: bool },
    Keyed(Box<dyn GroupValues>, SchemaRef),
}

impl Groups {
    /// Memory the group keys hold.
    pub(super) fn size(&self) -> usize {
        match self {
            Groups::Single { .. } => 0,
            Groups::Keyed(values, _) => values.size(),
        }
    }

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
    /// Memory the pane holds: its groups, accumulators and sealed chunks.
    pub(super) fn size(&self) -> usize {
        let sealed: usize = self
            .sealed
            .iter()
            .flat_map(|chunk| chunk.keys.iter().chain(chunk.states.iter().flatten()))
            .map(|array| array.get_array_memory_size())
            .sum();
        self.groups.size() + self.accumulators.iter().map(|a| a.size()).sum::<usize>() + sealed
    }

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

    /// Merges partial rows (a first phase's keys and accumulator states, in `input.args`).
    pub(super) fn merge(&mut self, input: PaneInput<'_>, scratch: &mut Vec<usize>) -> Result<()> {
        let total = self.groups.intern(input.keys, input.rows, scratch)?;
        for (acc, states) in self.accumulators.iter_mut().zip(input.args) {
            acc.merge_batch(states, scratch, total)?;
        }
        Ok(())
    }

    /// The live state as a chunk, leaving the pane empty; `None` when it holds no groups.
    pub(super) fn take_live(&mut self) -> Result<Option<SealedChunk>> {
        let sealed = self.sealed.len();
        self.sealed()?;
        Ok(if self.sealed.len() > sealed { self.sealed.pop() } else { None })
    }

    /// A pane holding `chunks` (restored from a checkpoint).
    pub(super) fn restored(spec: &AggregateSpec, chunks: Vec<SealedChunk>) -> Result<Self> {
        Ok(Self { groups: Groups::new(spec)?, accumulators: new_accumulators(spec)?, sealed: chunks })
    }

    /// Final values of the pane, sealed chunks (restored from a checkpoint, or left by a
    /// snapshot) included (TUMBLE: the pane is the whole window).
    pub(super) fn evaluate_all(mut self, spec: &AggregateSpec) -> Result<Option<Evaluated>> {
        if !self.sealed.is_empty() {
            // Restored or snapshotted state: merge the chunks.
            self.sealed()?;
            let (mut groups, mut accumulators, total) = merge_chunks(spec, &self.sealed)?;
            if total == 0 {
                return Ok(None);
            }
            let keys = groups.emit()?;
            let values = accumulators
                .iter_mut()
                .map(|acc| acc.evaluate(EmitTo::All))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            return Ok(Some((keys, values, total)));
        }
        self.evaluate()
    }

    /// Final values of the live state (a pane that never sealed a chunk).
    pub(super) fn evaluate(mut self) -> Result<Option<Evaluated>> {
        if !self.sealed.is_empty() {
            return Err(StreamError::Internal("a pane with sealed chunks evaluated as live state".into()));
        }
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

    /// Seals the live state and merges the sealed chunks into one, so that chunks do not pile
    /// up with every checkpoint; the chunk, if the pane holds any groups.
    pub(super) fn compacted(&mut self, spec: &AggregateSpec) -> Result<Option<&SealedChunk>> {
        self.sealed()?;
        if self.sealed.len() > 1 {
            let (mut groups, mut accumulators, total) = merge_chunks(spec, &self.sealed)?;
            let keys = groups.emit()?;
            let states = accumulators
                .iter_mut()
                .map(|acc| acc.state(EmitTo::All))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            self.sealed = vec![SealedChunk { keys, states, groups: total }];
        }
        Ok(self.sealed.first())
    }

    /// The sealed chunks (call [`Pane::sealed`] first to include the live state).
    pub(super) fn chunks(&self) -> &[SealedChunk] {
        &self.sealed
    }

    /// Adds a chunk restored from a checkpoint.
    pub(super) fn push_sealed(&mut self, chunk: SealedChunk) {
        self.sealed.push(chunk);
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

/// Group keys and accumulators holding a merge, and the number of groups.
type Merged = (Groups, Vec<Box<dyn GroupsAccumulator>>, usize);

/// Group keys and accumulators holding the merge of `chunks`, and the number of groups.
pub(super) fn merge_chunks<'a>(
    spec: &AggregateSpec,
    chunks: impl IntoIterator<Item = &'a SealedChunk>,
) -> Result<Merged> {
    let mut groups = Groups::new(spec)?;
    let mut accumulators = new_accumulators(spec)?;
    let mut scratch = Vec::new();
    let mut total = 0;
    for chunk in chunks {
        total = groups.intern(&chunk.keys, chunk.groups, &mut scratch)?;
        for (acc, state) in accumulators.iter_mut().zip(&chunk.states) {
            acc.merge_batch(state, &scratch, total)?;
        }
    }
    Ok((groups, accumulators, total))
}

pub(super) fn new_accumulators(spec: &AggregateSpec) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
    spec.aggregates.iter().map(|a| a.new_accumulator()).collect()
}

/// Column names of a chunk as a checkpoint stores it: `k<i>` for keys, `a<agg>_<j>` for the
/// state arrays of aggregate call `agg`, after any leading columns the caller adds.
pub(super) fn chunk_columns(leading: Vec<(Field, ArrayRef)>, chunk: &SealedChunk) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in leading {
        fields.push(field);
        columns.push(column);
    }
    for (i, key) in chunk.keys.iter().enumerate() {
        fields.push(Field::new(format!("k{i}"), key.data_type().clone(), true));
        columns.push(key.clone());
    }
    for (agg, states) in chunk.states.iter().enumerate() {
        for (j, state) in states.iter().enumerate() {
            fields.push(Field::new(format!("a{agg}_{j}"), state.data_type().clone(), true));
            columns.push(state.clone());
        }
    }
    let options = RecordBatchOptions::new().with_row_count(Some(chunk.groups));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?)
}

/// The rows of `batch` marked in `keep`.
pub(super) fn chunk_rows(batch: &RecordBatch, keep: &[bool]) -> Result<RecordBatch> {
    Ok(arrow::compute::filter_record_batch(batch, &BooleanArray::from(keep.to_vec()))?)
}

/// A chunk back from [`chunk_columns`]: the columns after the first `leading`.
pub(super) fn chunk_of(spec: &AggregateSpec, batch: &RecordBatch, leading: usize) -> Result<SealedChunk> {
    let keys_count = spec.key_fields.len();
    let schema = batch.schema();
    let mut keys = Vec::with_capacity(keys_count);
    let mut states: Vec<Vec<ArrayRef>> = vec![Vec::new(); spec.aggregates.len()];
    for (i, field) in schema.fields().iter().enumerate().skip(leading) {
        let name = field.name();
        if name.starts_with('k') {
            keys.push(batch.column(i).clone());
        } else if let Some((agg, _)) = name.strip_prefix('a').and_then(|rest| rest.split_once('_')) {
            let agg: usize = agg.parse().map_err(|_| StreamError::Internal(format!("state column {name}")))?;
            states
                .get_mut(agg)
                .ok_or_else(|| {
                    StreamError::Config(format!(
                        "the checkpoint has state of aggregate {agg}, which this query does not have"
                    ))
                })?
                .push(batch.column(i).clone());
        }
    }
    if keys.len() != keys_count {
        return Err(StreamError::Config(format!(
            "the checkpoint has {} group keys, and this query {keys_count}",
            keys.len()
        )));
    }
    Ok(SealedChunk { keys, states, groups: batch.num_rows() })
}
