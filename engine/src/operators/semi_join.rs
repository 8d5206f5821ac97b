//! The semi join of two append-only streams: `WHERE a.k IN (SELECT b.k FROM b)` (or `EXISTS`
//! with an equality), planned as DataFusion's `LEFT SEMI` join.
//!
//! Each left row is emitted once, as soon as a right row with its key has been seen, whichever
//! came first; so the result is append-only, and over bounded inputs it is the batch semi join.
//!
//! ```text
//!  left row:   key seen on the right?  yes ─▶ emit it (it is never needed again)
//!                                      no  ─▶ keep it, pending under its key
//!  right row:  key new?                yes ─▶ remember the key; emit and forget the rows pending
//!                                             under it
//! ```
//!
//! State: the distinct keys of the right side, and the left rows still waiting for a match.
//! Rows with a NULL key never match (SQL's `IN`) and are not kept. Like the regular join, the
//! result has no event time (the hidden columns are dropped).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, UInt32Array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};

use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
use crate::operators::join::JoinSpec;
use crate::operators::stateless::StatelessChain;

pub struct SemiJoinOperator {
    spec: Arc<JoinSpec>,
    post: StatelessChain,
    converter: RowConverter,
    /// Keys seen on the right side.
    right_keys: HashSet<Box<[u8]>>,
    /// Left rows without a match yet (visible columns, one-row batches), by key.
    pending: HashMap<Box<[u8]>, Vec<RecordBatch>>,
}

impl SemiJoinOperator {
    pub fn new(spec: Arc<JoinSpec>, post: StatelessChain) -> Result<Self> {
        let converter = RowConverter::new(spec.key_types.iter().map(|t| SortField::new(t.clone())).collect())?;
        Ok(Self { spec, post, converter, right_keys: HashSet::new(), pending: HashMap::new() })
    }

    /// The keys of `batch` (input `side`) in row format; `None` for a row with a NULL key.
    fn keys(&self, side: usize, batch: &RecordBatch) -> Result<Vec<Option<Box<[u8]>>>> {
        let columns = self.spec.key_columns(side, batch)?;
        let rows = self.converter.convert_columns(&columns)?;
        Ok((0..batch.num_rows())
            .map(|i| columns.iter().all(|c| c.is_valid(i)).then(|| rows.row(i).as_ref().into()))
            .collect())
    }

    /// The left side's visible columns of `batch`, as the join's output.
    fn visible(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = batch.columns()[..self.spec.left.visible].to_vec();
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.spec.output_schema.clone(), columns, &options)?)
    }

    fn emit(&self, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        if batch.num_rows() > 0
            && let Some(result) = self.post.apply(batch)?
        {
            out.emit(result);
        }
        Ok(())
    }
}

impl Operator for SemiJoinOperator {
    fn state_bytes(&self) -> usize {
        self.right_keys.iter().next().map_or(0, |k| k.len() + 16) * self.right_keys.len()
            + self.right_keys.capacity() * size_of::<Box<[u8]>>()
            + self.pending.values().map(crate::operator::batches_bytes).sum::<usize>()
    }

    fn name(&self) -> &str {
        "semi join"
    }

    fn on_batch(&mut self, input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        let keys = self.keys(input, &batch)?;
        match input {
            0 => {
                let rows = self.visible(&batch)?;
                let mut matched: Vec<u32> = Vec::new();
                for (i, key) in keys.into_iter().enumerate() {
                    let Some(key) = key else { continue };
                    if self.right_keys.contains(&key) {
                        matched.push(i as u32);
                    } else {
                        self.pending.entry(key).or_default().push(rows.slice(i, 1));
                    }
                }
                if !matched.is_empty() {
                    let indices = UInt32Array::from(matched);
                    let columns = rows
                        .columns()
                        .iter()
                        .map(|c| take(c.as_ref(), &indices, None))
                        .collect::<Result<Vec<_>, _>>()?;
                    let options = RecordBatchOptions::new().with_row_count(Some(indices.len()));
                    let batch = RecordBatch::try_new_with_options(rows.schema(), columns, &options)?;
                    self.emit(batch, out)?;
                }
            }
            1 => {
                let mut released = Vec::new();
                for key in keys.into_iter().flatten() {
                    if self.right_keys.contains(&key) {
                        continue;
                    }
                    if let Some(rows) = self.pending.remove(&key) {
                        released.extend(rows);
                    }
                    self.right_keys.insert(key);
                }
                if !released.is_empty() {
                    let batch = concat_batches(&self.spec.output_schema, &released)?;
                    self.emit(batch, out)?;
                }
            }
            other => return Err(StreamError::Internal(format!("a semi join has two inputs, not input {other}"))),
        }
        Ok(())
    }

    fn on_watermark(&mut self, _watermark: i64, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    /// The right side's keys (`right_keys`, in row format), and the left rows waiting for a
    /// match with their keys in a last column (`pending`), in arrival order per key.
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        let key_field = || Field::new(KEY_COLUMN, DataType::Binary, false);
        let keys = BinaryArray::from_iter_values(self.right_keys.iter());
        let right = RecordBatch::try_new(Arc::new(Schema::new(vec![key_field()])), vec![Arc::new(keys)])?;
        let mut rows = Vec::new();
        let mut row_keys = Vec::new();
        for (key, waiting) in &self.pending {
            for row in waiting {
                rows.push(row.clone());
                row_keys.push(key.as_ref());
            }
        }
        let mut pending = Vec::new();
        if !rows.is_empty() {
            let waiting = concat_batches(&self.spec.output_schema, &rows)?;
            let mut fields: Vec<Field> = waiting.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(key_field());
            let mut columns = waiting.columns().to_vec();
            columns.push(Arc::new(BinaryArray::from_iter_values(row_keys)) as ArrayRef);
            pending.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?);
        }
        Ok(StateSnapshot {
            tables: vec![("right_keys".into(), vec![right]), ("pending".into(), pending)],
            rescaled: None,
        })
    }

    /// Takes back a [`SemiJoinOperator::snapshot`] (at the same parallelism: the right keys are
    /// kept after the cast to the join's key types, not as the exchange routed them).
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        if state.rescaled.is_some() {
            return Err(StreamError::Config("the semi join's state cannot be spread over other instances".into()));
        }
        self.right_keys.clear();
        self.pending.clear();
        for batch in state.table("right_keys") {
            let keys = batch.column(0).as_binary_opt::<i32>().ok_or_else(|| bad_state("right_keys"))?;
            self.right_keys.extend(keys.iter().flatten().map(Box::<[u8]>::from));
        }
        for batch in state.table("pending") {
            let last = batch.num_columns().checked_sub(1).ok_or_else(|| bad_state("pending"))?;
            let keys = batch.column(last).as_binary_opt::<i32>().ok_or_else(|| bad_state("pending"))?;
            let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            let rows = RecordBatch::try_new_with_options(
                self.spec.output_schema.clone(),
                batch.columns()[..last].to_vec(),
                &options,
            )?;
            for i in 0..rows.num_rows() {
                if keys.is_null(i) {
                    return Err(bad_state("pending"));
                }
                self.pending.entry(keys.value(i).into()).or_default().push(rows.slice(i, 1));
            }
        }
        Ok(())
    }
}

/// The column of a checkpoint's `pending` rows that holds their keys.
const KEY_COLUMN: &str = "__semi_join_key";

fn bad_state(table: &str) -> StreamError {
    StreamError::Config(format!("the semi join's checkpoint table '{table}' is not one it wrote"))
}
