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

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, UInt32Array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};

use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
use crate::operators::exchange::{owned_filter, owned_rows};
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
    /// Whether the right side's key columns are cast to the key types (known from its first
    /// batch): their values are then not what the exchange routed them by.
    right_cast: Option<bool>,
}

impl SemiJoinOperator {
    pub fn new(spec: Arc<JoinSpec>, post: StatelessChain) -> Result<Self> {
        let converter = RowConverter::new(spec.key_types.iter().map(|t| SortField::new(t.clone())).collect())?;
        Ok(Self { spec, post, converter, right_keys: HashSet::new(), pending: HashMap::new(), right_cast: None })
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
                if self.right_cast.is_none() {
                    let schema = batch.schema();
                    let types = self.spec.right.keys.iter().map(|key| key.data_type(&schema));
                    let types = types.collect::<datafusion::error::Result<Vec<_>>>()?;
                    self.right_cast = Some(types != self.spec.key_types);
                }
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

    /// The right side's keys (`right_keys`: columns `k0`, ... of the key types, with whether
    /// they were cast from the right side's own types as the table `right_cast`), and the left
    /// rows waiting for a match with their keys in a last column (`pending`, row format), in
    /// arrival order per key.
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        let key_field = || Field::new(KEY_COLUMN, DataType::Binary, false);
        let mut right = Vec::new();
        if !self.right_keys.is_empty() {
            let parser = self.converter.parser();
            let columns = self.converter.convert_rows(self.right_keys.iter().map(|key| parser.parse(key)))?;
            let fields: Vec<Field> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| Field::new(format!("k{i}"), c.data_type().clone(), true))
                .collect();
            right.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?);
        }
        // Unknown (NULL) until the right side's first batch.
        let cast_schema = Arc::new(Schema::new(vec![Field::new("cast", DataType::Boolean, true)]));
        let cast = BooleanArray::from(vec![self.right_cast]);
        let cast = RecordBatch::try_new(cast_schema, vec![Arc::new(cast)])?;
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
            tables: vec![("right_keys".into(), right), ("right_cast".into(), vec![cast]), ("pending".into(), pending)],
            rescaled: None,
        })
    }

    /// Takes back [`SemiJoinOperator::snapshot`]s. After a change of parallelism, this instance
    /// keeps the right keys and waiting left rows whose keys it owns, found as the exchange
    /// routes them: a left row by its key expressions, a right key by its value, which is what
    /// the exchange hashed unless the right side's keys were cast to the key types (then the
    /// restore is refused).
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        self.right_keys.clear();
        self.pending.clear();
        let casts: Vec<&BooleanArray> =
            state.table("right_cast").iter().filter_map(|b| b.column(0).as_boolean_opt()).collect();
        let cast = casts.iter().any(|c| c.true_count() > 0);
        // Known once any former instance had seen the right side's first batch.
        let known = casts.iter().any(|c| c.len() > c.null_count());
        if let (Some(_), true) = (state.rescaled, cast) {
            return Err(StreamError::Config(
                "the semi join's right keys are cast to the type they are compared as, so its state cannot be \
                 spread over another number of instances; start at the parallelism of the checkpoint, or with \
                 --from-scratch"
                    .into(),
            ));
        }
        for batch in state.table("right_keys") {
            if batch.schema().index_of(KEY_COLUMN).is_ok() {
                return Err(StreamError::Config(
                    "the checkpoint's semi join state is of an older format; start with --from-scratch".into(),
                ));
            }
            let columns = batch.columns().to_vec();
            let owned = match state.rescaled {
                Some((instance, parallelism)) => owned_rows(&columns, batch.num_rows(), instance, parallelism)?,
                None => vec![true; batch.num_rows()],
            };
            let rows = self.converter.convert_columns(&columns)?;
            self.right_keys.extend(rows.iter().zip(owned).filter(|(_, own)| *own).map(|(row, _)| row.as_ref().into()));
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
            let owned = match state.rescaled {
                Some((instance, parallelism)) => owned_filter(&rows, &self.spec.left.keys, instance, parallelism)?,
                None => BooleanArray::from(vec![true; rows.num_rows()]),
            };
            for i in 0..rows.num_rows() {
                if keys.is_null(i) {
                    return Err(bad_state("pending"));
                }
                if owned.value(i) {
                    self.pending.entry(keys.value(i).into()).or_default().push(rows.slice(i, 1));
                }
            }
        }
        self.right_cast = known.then_some(cast);
        Ok(())
    }
}

/// The column of a checkpoint's `pending` rows that holds their keys.
const KEY_COLUMN: &str = "__semi_join_key";

fn bad_state(table: &str) -> StreamError {
    StreamError::Config(format!("the semi join's checkpoint table '{table}' is not one it wrote"))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::operators::window_join::JoinKind;

    /// A semi join on `k`, compared as BIGINT (a right side's INT `k` is cast).
    fn operator() -> SemiJoinOperator {
        let side = crate::operators::join::JoinSide { keys: vec![Arc::new(Column::new("k", 0))], visible: 2 };
        let output = Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new("v", DataType::Utf8, true)]);
        let spec = JoinSpec {
            left: side.clone(),
            right: side,
            key_types: vec![DataType::Int64],
            output_schema: Arc::new(output),
            expiry: None,
            interval: None,
            window: None,
            lookup: None,
            kind: JoinKind::LeftSemi,
            condition: None,
            updating_inputs: [false, false],
        };
        SemiJoinOperator::new(Arc::new(spec), StatelessChain::default()).expect("operator")
    }

    fn batch(keys: impl IntoIterator<Item = i64>, right: &DataType, tag: &str) -> RecordBatch {
        let keys: Vec<i64> = keys.into_iter().collect();
        let values: Vec<String> = keys.iter().map(|k| format!("{tag}{k}")).collect();
        let column: ArrayRef = match right {
            DataType::Int32 => Arc::new(Int32Array::from_iter_values(keys.iter().map(|k| *k as i32))),
            _ => Arc::new(Int64Array::from(keys)),
        };
        let schema = Schema::new(vec![Field::new("k", right.clone(), true), Field::new("v", DataType::Utf8, true)]);
        RecordBatch::try_new(Arc::new(schema), vec![column, Arc::new(StringArray::from(values))]).expect("batch")
    }

    fn emitted(out: &Emitter) -> Vec<String> {
        let mut rows: Vec<String> = out
            .batches()
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(|i| b.column(1).as_string::<i32>().value(i).to_string()).collect::<Vec<_>>()
            })
            .collect();
        rows.sort();
        rows
    }

    /// Restored at parallelism 2 from one instance's snapshot, each instance keeps the right
    /// keys and waiting left rows it owns: together they emit what the original would, each row
    /// once. With right keys cast (INT to BIGINT), such a restore is refused.
    #[test]
    fn a_semi_join_spreads_its_state_over_other_instances_unless_its_keys_were_cast() -> Result<()> {
        let int64 = DataType::Int64;
        let mut original = operator();
        let mut out = Emitter::default();
        original.on_batch(1, batch(0..40, &int64, "r"), &mut out)?;
        original.on_batch(0, batch(30..80, &int64, "l"), &mut out)?;
        let state = original.snapshot(1)?;
        let mut expected = Emitter::default();
        original.on_batch(1, batch(60..70, &int64, "r"), &mut expected)?;
        original.on_batch(0, batch(0..100, &int64, "m"), &mut expected)?;

        let mut actual = Emitter::default();
        for instance in 0..2 {
            let mut restored = operator();
            restored.restore(StateSnapshot { tables: state.tables.clone(), rescaled: Some((instance, 2)) })?;
            // What the exchange routes to this instance.
            for (input, rows, tag) in [(1, 60..70, "r"), (0, 0..100, "m")] {
                let rows = batch(rows, &int64, tag);
                let owned = owned_filter(&rows, &[Arc::new(Column::new("k", 0))], instance, 2)?;
                restored.on_batch(input, arrow::compute::filter_record_batch(&rows, &owned)?, &mut actual)?;
            }
        }
        assert_eq!(emitted(&actual), emitted(&expected));
        assert_eq!(emitted(&expected).len(), 40 + 10 + 10);

        // Restored from a snapshot taken before its right side's first batch, it still finds
        // out that the keys are cast.
        let int32 = DataType::Int32;
        let mut cast = operator();
        cast.restore(operator().snapshot(1)?)?;
        cast.on_batch(1, batch(0..10, &int32, "r"), &mut out)?;
        let state = cast.snapshot(1)?;
        let error = operator().restore(StateSnapshot { tables: state.tables.clone(), rescaled: Some((0, 2)) });
        assert!(error.expect_err("cast keys").to_string().contains("cannot be spread"));
        operator().restore(state)?;
        Ok(())
    }
}
