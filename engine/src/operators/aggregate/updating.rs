//! Updating aggregates: `GROUP BY` without a window over an unbounded stream.
//!
//! No window ever closes, so state is kept per key for as long as the pipeline runs and results
//! are emitted as a *changelog*: each output row carries a hidden [`OP_COLUMN`] saying what it
//! does to the result table, as Flink's changelog rows do:
//!
//! | op   | meaning                                   |
//! |------|-------------------------------------------|
//! | `+I` | a key's first result                      |
//! | `-U` | retracts the previous result of a key     |
//! | `+U` | the new result of a key (after its `-U`)  |
//! | `-D` | a row leaves the result (sinks may get it from filters after the aggregation) |
//!
//! Rows update state as they arrive; [`UpdatingAggregator::flush`] emits the keys that changed
//! since the last flush, each at most once and only when its values changed. The runtime flushes
//! once per `'update-interval'` (and at the end of a bounded input), so a hot key costs sinks one
//! `-U`/`+U` pair per interval, not one per row.
//!
//! Filters after the aggregation (HAVING) apply to each changelog row on its own. That stays
//! consistent: a `-U` passes exactly when the row it retracts passed before, so a key that stops
//! matching leaves as a lone `-U` and one that starts matching arrives as a lone `+U`.
//!
//! ```text
//!  flush:  accumulators ──state()──▶ state arrays ──merge_batch()──▶ fresh accumulators (all keys)
//!                                        └─take(changed)─▶ merge_batch() ─▶ evaluate() ─▶ new values
//!          old values: kept from the previous flush; compared as Arrow rows to drop no-op updates
//! ```
//!
//! A flush costs O(keys) besides the changed keys, which is why it is rate-limited.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int8Array, UInt32Array, new_null_array};
use arrow::compute::{interleave, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use super::inputs::BatchInputs;
use super::pane::{Groups, SealedChunk, chunk_columns, chunk_of, new_accumulators};
use super::spec::{AggregateSpec, GroupOutput};
use crate::error::{Result, StreamError};
use crate::operator::StateSnapshot;
use crate::operators::exchange::owned_rows;

/// Name of the hidden changelog column of updating results.
pub const OP_COLUMN: &str = "_op";

/// The hidden changelog field (`Int8` holding a [`ChangeOp`]).
pub fn op_field() -> Field {
    Field::new(OP_COLUMN, DataType::Int8, false)
}

/// `schema` with the hidden changelog field appended: the rows of an updating result.
pub fn with_op_column(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(op_field());
    Arc::new(Schema::new(fields))
}

/// What a changelog row does to the result table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ChangeOp {
    Insert = 0,
    UpdateBefore = 1,
    UpdateAfter = 2,
    Delete = 3,
}

impl ChangeOp {
    /// How Flink prints it: `+I`, `-U`, `+U`, `-D`.
    pub fn symbol(self) -> &'static str {
        match self {
            ChangeOp::Insert => "+I",
            ChangeOp::UpdateBefore => "-U",
            ChangeOp::UpdateAfter => "+U",
            ChangeOp::Delete => "-D",
        }
    }

    /// Whether the row is added to the result (`+I`, `+U`) rather than taken out of it.
    pub fn is_addition(self) -> bool {
        matches!(self, ChangeOp::Insert | ChangeOp::UpdateAfter)
    }

    pub fn from_i8(value: i8) -> Result<Self> {
        Ok(match value {
            0 => ChangeOp::Insert,
            1 => ChangeOp::UpdateBefore,
            2 => ChangeOp::UpdateAfter,
            3 => ChangeOp::Delete,
            other => return Err(StreamError::Internal(format!("unknown changelog op {other}"))),
        })
    }
}

/// Updating aggregation state of one instance. See the [module docs](self).
pub struct UpdatingAggregator {
    spec: Arc<AggregateSpec>,
    groups: Groups,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    scratch: Vec<usize>,
    /// Per group: changed since the last flush.
    changed: Vec<bool>,
    changed_list: Vec<u32>,
    /// Aggregate values emitted by the last flush, one array per aggregate call, indexed by
    /// group; every group that existed then has its value here.
    emitted: Vec<ArrayRef>,
    /// Groups that existed at the last flush (all of them were emitted). Kept apart from
    /// `emitted`, which has no arrays when the query has no aggregate calls.
    emitted_groups: usize,
    /// Compares old and new values to drop updates that change nothing.
    values_converter: RowConverter,
    output_schema: SchemaRef,
}

impl UpdatingAggregator {
    /// Memory the groups, their accumulators and what was emitted per group hold.
    pub fn state_bytes(&self) -> usize {
        self.groups.size()
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
            + self.emitted.iter().map(|a| a.get_array_memory_size()).sum::<usize>()
            + self.changed.capacity()
            + self.changed_list.capacity() * size_of::<u32>()
    }

    pub fn new(spec: Arc<AggregateSpec>) -> Result<Self> {
        let keys = spec.outputs.iter().filter(|o| matches!(o, GroupOutput::Key(_))).count();
        if keys != spec.outputs.len() {
            return Err(StreamError::Internal("updating aggregation with window columns".into()));
        }
        let value_fields = &spec.output_schema.fields()[keys..];
        let values_converter =
            RowConverter::new(value_fields.iter().map(|f| SortField::new(f.data_type().clone())).collect())?;
        let emitted = value_fields.iter().map(|f| arrow::array::new_empty_array(f.data_type())).collect();
        Ok(Self {
            groups: Groups::new(&spec)?,
            accumulators: new_accumulators(&spec)?,
            scratch: Vec::new(),
            changed: Vec::new(),
            changed_list: Vec::new(),
            emitted,
            emitted_groups: 0,
            values_converter,
            output_schema: with_op_column(&spec.output_schema),
            spec,
        })
    }

    /// The schema of emitted batches: the aggregation's output plus [`OP_COLUMN`].
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// Whether a flush would emit something.
    pub fn has_changes(&self) -> bool {
        !self.changed_list.is_empty()
    }

    /// Adds a batch to the state (hidden columns, if any, are ignored).
    pub fn process_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let inputs = BatchInputs::evaluate(&self.spec, batch)?;
        let total = self.groups.intern(&inputs.keys, n, &mut self.scratch)?;
        for ((acc, args), filter) in self.accumulators.iter_mut().zip(&inputs.args).zip(&inputs.filters) {
            acc.update_batch(args, &self.scratch, filter.as_ref(), total)?;
        }
        self.changed.resize(total, false);
        for &group in &self.scratch {
            if !self.changed[group] {
                self.changed[group] = true;
                self.changed_list.push(group as u32);
            }
        }
        Ok(())
    }

    /// Every group's key, partial state, whether it changed since the last flush, and what
    /// was last emitted for it, for a checkpoint: a restore emits exactly what this
    /// aggregator would still have emitted (no second `+I` for a key already inserted).
    pub fn snapshot(&mut self) -> Result<StateSnapshot> {
        let groups = self.groups.len();
        if groups == 0 {
            return Ok(StateSnapshot::default());
        }
        let states = self.read_states(groups)?;
        let keys = self.read_keys(groups)?;
        let chunk = SealedChunk { keys, states, groups };
        let flags = |f: &dyn Fn(usize) -> bool| Arc::new(BooleanArray::from((0..groups).map(f).collect::<Vec<_>>()));
        let changed = flags(&|g| self.changed.get(g).copied().unwrap_or(false));
        let emitted_groups = self.emitted_groups;
        let mut leading = vec![
            (Field::new("changed", DataType::Boolean, false), changed as ArrayRef),
            (Field::new("emitted", DataType::Boolean, false), flags(&|g| g < emitted_groups) as ArrayRef),
        ];
        for (i, emitted) in self.emitted.iter().enumerate() {
            // Groups that came after the last flush have emitted nothing: null.
            let padding = new_null_array(emitted.data_type(), groups - emitted.len());
            let column = arrow::compute::concat(&[emitted.as_ref(), padding.as_ref()])?;
            leading.push((Field::new(format!("e{i}"), emitted.data_type().clone(), true), column));
        }
        Ok(StateSnapshot::single("groups", vec![chunk_columns(leading, &chunk)?]))
    }

    /// Takes the state of [`UpdatingAggregator::snapshot`]s (after a change of parallelism: the
    /// groups this instance owns of every former instance's).
    pub fn restore(&mut self, state: &StateSnapshot) -> Result<()> {
        let batches = state.table("groups");
        let Some(first) = batches.first() else { return Ok(()) };
        let batch = arrow::compute::concat_batches(&first.schema(), batches)?;
        if batch.schema().fields().get(1).is_none_or(|f| f.name() != "emitted") {
            return Err(StreamError::Config(
                "the checkpoint's updating aggregate state is of an older format; start with --from-scratch".into(),
            ));
        }
        let emitted_columns = self.emitted_width(&batch);
        let leading = 2 + emitted_columns;
        let mut batch = batch;
        if let Some((instance, parallelism)) = state.rescaled {
            let chunk = chunk_of(&self.spec, &batch, leading)?;
            let owned = owned_rows(&chunk.keys, chunk.groups, instance, parallelism)?;
            batch = arrow::compute::filter_record_batch(&batch, &BooleanArray::from(owned))?;
        }
        // Groups that were emitted first, as the aggregator keeps them (a prefix of its groups).
        let emitted = batch.column(1).as_boolean().clone();
        let order: Vec<u32> = (0..batch.num_rows() as u32)
            .filter(|&r| emitted.value(r as usize))
            .chain((0..batch.num_rows() as u32).filter(|&r| !emitted.value(r as usize)))
            .collect();
        let emitted_groups = emitted.true_count();
        let batch = arrow::compute::take_record_batch(&batch, &UInt32Array::from(order))?;
        let chunk = chunk_of(&self.spec, &batch, leading)?;
        let groups = chunk.groups;
        self.groups = Groups::new(&self.spec)?;
        let total = self.groups.intern(&chunk.keys, groups, &mut self.scratch)?;
        if total != groups {
            return Err(StreamError::Config("the checkpoint's group keys are not distinct".into()));
        }
        let identity: Vec<usize> = (0..groups).collect();
        self.accumulators = new_accumulators(&self.spec)?;
        for (acc, states) in self.accumulators.iter_mut().zip(&chunk.states) {
            acc.merge_batch(states, &identity, groups)?;
        }
        let changed = batch.column(0).as_boolean();
        self.changed = (0..groups).map(|g| changed.value(g)).collect();
        self.changed_list = (0..groups).filter(|g| self.changed[*g]).map(|g| g as u32).collect();
        self.emitted = (0..emitted_columns).map(|i| batch.column(2 + i).slice(0, emitted_groups)).collect();
        self.emitted_groups = emitted_groups;
        Ok(())
    }

    /// Every group's partial state, per aggregate call: accumulators cannot be read without
    /// emptying them, so the state is taken out and merged back into fresh ones.
    fn read_states(&mut self, groups: usize) -> Result<Vec<Vec<ArrayRef>>> {
        let identity: Vec<usize> = (0..groups).collect();
        let mut fresh = new_accumulators(&self.spec)?;
        let mut states = Vec::with_capacity(self.accumulators.len());
        for (acc, fresh) in self.accumulators.iter_mut().zip(&mut fresh) {
            let state = acc.state(EmitTo::All)?;
            fresh.merge_batch(&state, &identity, groups)?;
            states.push(state);
        }
        self.accumulators = fresh;
        Ok(states)
    }

    /// Every group's keys: GroupValues cannot be read without emptying them either, so the keys
    /// are taken out and interned again into fresh GroupValues (unique keys get the same
    /// indices, in order).
    fn read_keys(&mut self, groups: usize) -> Result<Vec<ArrayRef>> {
        let keys = self.groups.emit()?;
        self.groups = Groups::new(&self.spec)?;
        let regrouped = self.groups.intern(&keys, groups, &mut self.scratch)?;
        if regrouped != groups || self.scratch.iter().enumerate().any(|(i, g)| i != *g) {
            return Err(StreamError::Internal("group keys changed order when interned again".into()));
        }
        Ok(keys)
    }

    /// How many `e<i>` columns (last emitted values) a snapshot batch has.
    fn emitted_width(&self, batch: &RecordBatch) -> usize {
        batch.schema().fields().iter().filter(|f| f.name().starts_with('e') && f.name() != "emitted").count()
    }

    /// Emits the changes since the last flush into `out`.
    pub fn flush(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.changed_list.is_empty() {
            return Ok(());
        }
        let groups = self.groups.len();
        let mut changed = std::mem::take(&mut self.changed_list);
        changed.sort_unstable();
        for &group in &changed {
            self.changed[group as usize] = false;
        }
        let changed_idx = UInt32Array::from(changed.clone());

        // Evaluate the changed groups from a copy of their state.
        let dense: Vec<usize> = (0..changed.len()).collect();
        let mut scratch = new_accumulators(&self.spec)?;
        let mut new_values = Vec::with_capacity(self.accumulators.len());
        for (state, scratch) in self.read_states(groups)?.iter().zip(&mut scratch) {
            let taken = state.iter().map(|a| take(a.as_ref(), &changed_idx, None)).collect::<Result<Vec<_>, _>>()?;
            scratch.merge_batch(&taken, &dense, changed.len())?;
            new_values.push(scratch.evaluate(EmitTo::All)?);
        }
        let keys = self.read_keys(groups)?;

        // Old values of changed groups that were emitted before; drop those that did not change.
        let previous = self.emitted_groups;
        let old_positions: Vec<(usize, u32)> =
            changed.iter().enumerate().filter(|(_, g)| (**g as usize) < previous).map(|(i, g)| (i, *g)).collect();
        let mut unchanged = vec![false; changed.len()];
        if self.emitted.is_empty() {
            // Keys only (`SELECT k ... GROUP BY k`): a key seen before has nothing to update.
            old_positions.iter().for_each(|(i, _)| unchanged[*i] = true);
        } else if !old_positions.is_empty() {
            let old_idx = UInt32Array::from(old_positions.iter().map(|(_, g)| *g).collect::<Vec<_>>());
            let new_idx = UInt32Array::from(old_positions.iter().map(|(i, _)| *i as u32).collect::<Vec<_>>());
            let old: Vec<ArrayRef> =
                self.emitted.iter().map(|a| take(a.as_ref(), &old_idx, None)).collect::<Result<_, _>>()?;
            let new: Vec<ArrayRef> =
                new_values.iter().map(|a| take(a.as_ref(), &new_idx, None)).collect::<Result<_, _>>()?;
            let old_rows = self.values_converter.convert_columns(&old)?;
            let new_rows = self.values_converter.convert_columns(&new)?;
            for (k, (i, _)) in old_positions.iter().enumerate() {
                unchanged[*i] = old_rows.row(k) == new_rows.row(k);
            }
        }

        // The changelog: (source, index) pairs into [emitted, new_values], the group, the op.
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut key_rows: Vec<u32> = Vec::new();
        let mut ops: Vec<i8> = Vec::new();
        for (i, &group) in changed.iter().enumerate() {
            if unchanged[i] {
                continue;
            }
            if (group as usize) < previous {
                picks.push((0, group as usize));
                key_rows.push(group);
                ops.push(ChangeOp::UpdateBefore as i8);
                picks.push((1, i));
                key_rows.push(group);
                ops.push(ChangeOp::UpdateAfter as i8);
            } else {
                picks.push((1, i));
                key_rows.push(group);
                ops.push(ChangeOp::Insert as i8);
            }
        }

        // Remember what every group shows now.
        let mut latest: Vec<(usize, usize)> = (0..groups).map(|g| (0, g)).collect();
        for (i, &group) in changed.iter().enumerate() {
            latest[group as usize] = (1, i);
        }
        let mut emitted = Vec::with_capacity(self.emitted.len());
        let mut values = Vec::with_capacity(self.emitted.len());
        for (old, new) in self.emitted.iter().zip(&new_values) {
            let sources = [old.as_ref(), new.as_ref()];
            values.push(interleave(&sources, &picks)?);
            emitted.push(interleave(&sources, &latest)?);
        }
        self.emitted = emitted;
        self.emitted_groups = groups;
        if ops.is_empty() {
            return Ok(());
        }

        let rows = ops.len();
        let key_idx = UInt32Array::from(key_rows);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output_schema.fields().len());
        for output in &self.spec.outputs {
            let GroupOutput::Key(i) = output else {
                return Err(StreamError::Internal("updating aggregation with window columns".into()));
            };
            let key = keys.get(*i).ok_or_else(|| StreamError::Internal(format!("missing group key {i}")))?;
            columns.push(take(key.as_ref(), &key_idx, None)?);
        }
        columns.extend(values);
        columns.push(Arc::new(Int8Array::from(ops)));
        out.push(RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::Int64Type;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::col;

    use super::*;
    use crate::operators::aggregate::AggregateCall;

    fn spec() -> Arc<AggregateSpec> {
        let input =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)]));
        let v = col("v", &input).expect("column v");
        let sum =
            AggregateExprBuilder::new(sum_udaf(), vec![v]).schema(input.clone()).alias("s").build().expect("SUM(v)");
        Arc::new(AggregateSpec {
            window: None,
            key_exprs: vec![col("k", &input).expect("column k")],
            key_fields: vec![Arc::new(Field::new("k", DataType::Utf8, true))],
            aggregates: vec![AggregateCall::new(Arc::new(sum), None)],
            outputs: vec![GroupOutput::Key(0)],
            output_schema: Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, true),
                Field::new("s", DataType::Int64, true),
            ])),
        })
    }

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)]));
        let keys: StringArray = rows.iter().map(|(k, _)| Some(*k)).collect();
        let values: Int64Array = rows.iter().map(|(_, v)| Some(*v)).collect();
        RecordBatch::try_new(schema, vec![Arc::new(keys), Arc::new(values)]).expect("batch")
    }

    fn changes(agg: &mut UpdatingAggregator) -> Vec<String> {
        let mut out = Vec::new();
        agg.flush(&mut out).expect("flush");
        let mut lines = Vec::new();
        for b in out {
            let k = b.column(0).as_string::<i32>();
            let s = b.column(1).as_primitive::<Int64Type>();
            let op = b.column(2).as_primitive::<arrow::datatypes::Int8Type>();
            for r in 0..b.num_rows() {
                let op = ChangeOp::from_i8(op.value(r)).expect("op").symbol();
                lines.push(format!("{op} {} {}", k.value(r), s.value(r)));
            }
        }
        lines
    }

    #[test]
    fn emits_inserts_then_retract_and_update_pairs_and_skips_no_ops() -> Result<()> {
        let mut agg = UpdatingAggregator::new(spec())?;
        agg.process_batch(&batch(&[("a", 1), ("b", 2), ("a", 3)]))?;
        assert_eq!(changes(&mut agg), ["+I a 4", "+I b 2"]);
        assert!(!agg.has_changes());
        assert!(changes(&mut agg).is_empty(), "nothing changed");
        agg.process_batch(&batch(&[("b", 5), ("c", 1)]))?;
        agg.process_batch(&batch(&[("b", 1), ("a", 0)]))?;
        // a's sum is unchanged (+0): no update; b moves from 2 to 8 once, though two rows came.
        assert_eq!(changes(&mut agg), ["-U b 2", "+U b 8", "+I c 1"]);
        agg.process_batch(&batch(&[("c", -1), ("a", 1)]))?;
        assert_eq!(changes(&mut agg), ["-U a 4", "+U a 5", "-U c 1", "+U c 0"]);
        Ok(())
    }

    #[test]
    fn keys_without_aggregates_are_inserted_once() -> Result<()> {
        let full = spec();
        let keys_only = Arc::new(AggregateSpec {
            window: None,
            key_exprs: full.key_exprs.clone(),
            key_fields: full.key_fields.clone(),
            aggregates: Vec::new(),
            outputs: vec![GroupOutput::Key(0)],
            output_schema: Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)])),
        });
        let mut agg = UpdatingAggregator::new(keys_only)?;
        let mut out = Vec::new();
        agg.process_batch(&batch(&[("a", 1), ("b", 2)]))?;
        agg.flush(&mut out)?;
        agg.process_batch(&batch(&[("a", 3), ("c", 4)]))?;
        agg.flush(&mut out)?;
        let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 3, "+I a, +I b, then only +I c: {out:?}");
        Ok(())
    }
}
