//! The regular equi-join of two append-only streams (`a JOIN b ON a.k = b.k`), as Flink runs
//! it: every row of each side is kept; a row arriving on one side is joined with every row seen
//! so far on the other side with the same keys, then kept for the rows still to come. Each pair
//! is emitted exactly once, by whichever of its two rows arrived second, so an INNER join of
//! append-only inputs is append-only, and its result over bounded inputs is the batch join.
//!
//! ```text
//!  row on side s:  keys → probe the other side's index ─▶ pairs (left columns, right columns)
//!                                                         ─▶ residual condition, SELECT … (post)
//!                  then index the row on side s
//! ```
//!
//! Rows with a NULL key never match (SQL equality) and are not kept. Keys are compared in
//! Arrow's row format, both sides cast to the key types chosen at planning. The hidden
//! event-time columns of the inputs are dropped: a regular join's result has no event time
//! (as in Flink), so it cannot be windowed again. State grows with the inputs; bounding it
//! (by watermark for windowed inputs, by `table.exec.state.ttl`) is still to come.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::{cast, interleave, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Operator};
use crate::operators::stateless::StatelessChain;

/// Joined rows per emitted batch, at most.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// One input of a join.
#[derive(Debug, Clone)]
pub struct JoinSide {
    /// The equi-join keys over this side's batches, in the order of [`JoinSpec::key_types`].
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The side's visible columns: the first `visible` of each batch (hidden columns follow).
    pub visible: usize,
}

/// What a join computes.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub left: JoinSide,
    pub right: JoinSide,
    /// The type both sides' keys are compared as.
    pub key_types: Vec<DataType>,
    /// Joined rows: the left side's visible columns, then the right side's.
    pub output_schema: SchemaRef,
    /// When kept rows can be dropped, for joins of window results on a window column.
    pub expiry: Option<JoinExpiry>,
}

/// Rows of both sides joined on a window column: a row whose value `v` in that column satisfies
/// `v + offset_ms <= watermark` can match no row still to come, and is dropped.
#[derive(Debug, Clone, Copy)]
pub struct JoinExpiry {
    /// The window column (a millisecond timestamp) among the left side's visible columns.
    pub left_column: usize,
    /// The same among the right side's.
    pub right_column: usize,
    /// From the column's value to the latest window end it may belong to on either side
    /// (`0` for `window_end`, the window size for `window_start`).
    pub offset_ms: i64,
}

/// The rows kept of one side, indexed by key.
#[derive(Default)]
struct SideState {
    /// Kept batches; one whose rows have all expired is replaced by an empty batch.
    batches: Vec<RecordBatch>,
    /// Rows of each batch still kept.
    live: Vec<usize>,
    /// Key (row format) → (batch, row) of every kept row with that key.
    index: HashMap<Box<[u8]>, Vec<(usize, usize)>>,
    /// With [`JoinSpec::expiry`]: the keys that expire at each time.
    expiring: BTreeMap<i64, Vec<Box<[u8]>>>,
}

impl SideState {
    /// Drops the rows whose keys expire at or before `watermark`.
    fn expire(&mut self, watermark: i64) {
        let kept = match watermark.checked_add(1) {
            Some(after) => self.expiring.split_off(&after),
            None => BTreeMap::new(),
        };
        for keys in std::mem::replace(&mut self.expiring, kept).into_values() {
            for key in keys {
                for (batch, _) in self.index.remove(&key).unwrap_or_default() {
                    self.live[batch] -= 1;
                    if self.live[batch] == 0 {
                        self.batches[batch] = RecordBatch::new_empty(self.batches[batch].schema());
                    }
                }
            }
        }
    }

    /// Rows kept.
    #[cfg(test)]
    fn rows(&self) -> usize {
        self.live.iter().sum()
    }
}

/// The operator: see the [module docs](self).
pub struct JoinOperator {
    spec: Arc<JoinSpec>,
    post: StatelessChain,
    converter: RowConverter,
    sides: [SideState; 2],
}

impl JoinOperator {
    pub fn new(spec: Arc<JoinSpec>, post: StatelessChain) -> Result<Self> {
        if spec.key_types.is_empty() {
            return Err(StreamError::Internal("a join without equality keys".into()));
        }
        let converter = RowConverter::new(spec.key_types.iter().map(|t| SortField::new(t.clone())).collect())?;
        Ok(Self { spec, post, converter, sides: [SideState::default(), SideState::default()] })
    }

    fn side(&self, input: usize) -> &JoinSide {
        if input == 0 { &self.spec.left } else { &self.spec.right }
    }

    /// The key columns of `batch` (arriving on `input`), cast to the key types.
    fn keys(&self, input: usize, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let n = batch.num_rows();
        self.side(input)
            .keys
            .iter()
            .zip(&self.spec.key_types)
            .map(|(expr, data_type)| {
                let array = expr.evaluate(batch)?.into_array(n)?;
                Ok(if array.data_type() == data_type { array } else { cast(&array, data_type)? })
            })
            .collect()
    }

    /// Emits the pairs `(probe row, kept row)` as joined rows through the post chain.
    fn emit_pairs(
        &self,
        input: usize,
        probe: &RecordBatch,
        pairs: &[(u32, (usize, usize))],
        out: &mut Emitter,
    ) -> Result<()> {
        let kept = &self.sides[1 - input].batches;
        for chunk in pairs.chunks(OUTPUT_BATCH_ROWS) {
            let probe_rows = UInt32Array::from_iter_values(chunk.iter().map(|(row, _)| *row));
            let kept_rows: Vec<(usize, usize)> = chunk.iter().map(|(_, at)| *at).collect();
            let probe_columns =
                probe.columns().iter().map(|c| take(c.as_ref(), &probe_rows, None)).collect::<Result<Vec<_>, _>>()?;
            let kept_columns = (0..self.side(1 - input).visible)
                .map(|c| {
                    let arrays: Vec<&dyn Array> = kept.iter().map(|b| b.column(c).as_ref()).collect();
                    interleave(&arrays, &kept_rows)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let columns = if input == 0 {
                [probe_columns, kept_columns].concat()
            } else {
                [kept_columns, probe_columns].concat()
            };
            let joined = RecordBatch::try_new_with_options(
                self.spec.output_schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(chunk.len())),
            )?;
            if let Some(result) = self.post.apply(joined)? {
                out.emit(result);
            }
        }
        Ok(())
    }
}

impl Operator for JoinOperator {
    fn name(&self) -> &str {
        "join"
    }

    fn on_batch(&mut self, input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        let input = input.min(1);
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let keys = self.keys(input, &batch)?;
        let rows = self.converter.convert_columns(&keys)?;
        let visible = batch.project(&(0..self.side(input).visible).collect::<Vec<_>>())?;
        let valid = |row: usize| keys.iter().all(|k| k.is_valid(row));

        let other = &self.sides[1 - input];
        let mut pairs = Vec::new();
        if !other.index.is_empty() {
            for row in (0..n).filter(|&r| valid(r)) {
                if let Some(matches) = other.index.get(rows.row(row).as_ref()) {
                    pairs.extend(matches.iter().map(|&at| (row as u32, at)));
                }
            }
        }
        if !pairs.is_empty() {
            self.emit_pairs(input, &visible, &pairs, out)?;
        }

        let expiry = match &self.spec.expiry {
            Some(e) => {
                let column = if input == 0 { e.left_column } else { e.right_column };
                let values = cast(visible.column(column), &DataType::Int64)?;
                Some((values.as_primitive::<Int64Type>().clone(), e.offset_ms))
            }
            None => None,
        };
        let own = &mut self.sides[input];
        let batch_index = own.batches.len();
        let mut kept = 0;
        for row in (0..n).filter(|&r| valid(r)) {
            let key: Box<[u8]> = Box::from(rows.row(row).as_ref());
            if let Some((values, offset)) = &expiry
                && values.is_valid(row)
                && !own.index.contains_key(&key)
            {
                own.expiring.entry(values.value(row).saturating_add(*offset)).or_default().push(key.clone());
            }
            own.index.entry(key).or_default().push((batch_index, row));
            kept += 1;
        }
        if kept > 0 {
            own.batches.push(visible);
            own.live.push(kept);
        }
        Ok(())
    }

    /// Results do not wait for event time; rows that can match no more are dropped.
    fn on_watermark(&mut self, watermark: i64, _out: &mut Emitter) -> Result<()> {
        if self.spec.expiry.is_some() {
            self.sides.iter_mut().for_each(|side| side.expire(watermark));
        }
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Int64Type, Schema};
    use datafusion::physical_expr::expressions::Column;

    use super::*;

    fn side_batch(keys: &[Option<i64>], tag: &str) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new("v", DataType::Utf8, true)]);
        let values: Vec<String> = (0..keys.len()).map(|i| format!("{tag}{i}")).collect();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from(keys.to_vec())), Arc::new(StringArray::from(values))],
        )
        .expect("batch")
    }

    fn operator() -> JoinOperator {
        operator_with(None)
    }

    fn operator_with(expiry: Option<JoinExpiry>) -> JoinOperator {
        let side = JoinSide { keys: vec![Arc::new(Column::new("k", 0))], visible: 2 };
        let output = Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
            Field::new("k2", DataType::Int64, true),
            Field::new("v2", DataType::Utf8, true),
        ]);
        let spec = JoinSpec {
            left: side.clone(),
            right: side,
            key_types: vec![DataType::Int64],
            output_schema: Arc::new(output),
            expiry,
        };
        JoinOperator::new(Arc::new(spec), StatelessChain::default()).expect("operator")
    }

    fn pairs(out: &Emitter) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = out
            .batches()
            .iter()
            .flat_map(|b| {
                let (l, r) = (b.column(1).as_string::<i32>(), b.column(3).as_string::<i32>());
                (0..b.num_rows()).map(|i| (l.value(i).to_string(), r.value(i).to_string())).collect::<Vec<_>>()
            })
            .collect();
        pairs.sort();
        pairs
    }

    #[test]
    fn each_pair_is_emitted_once_by_the_later_row_in_left_right_order() {
        let mut join = operator();
        let mut out = Emitter::default();
        join.on_batch(0, side_batch(&[Some(1), Some(2), None], "l"), &mut out).expect("left");
        assert!(out.batches().is_empty());
        join.on_batch(1, side_batch(&[Some(2), Some(1), Some(2), None], "r"), &mut out).expect("right");
        join.on_batch(0, side_batch(&[Some(2)], "m"), &mut out).expect("left again");
        let expected = [("l0", "r1"), ("l1", "r0"), ("l1", "r2"), ("m0", "r0"), ("m0", "r2")]
            .map(|(l, r)| (l.to_string(), r.to_string()));
        assert_eq!(pairs(&out), expected);
        let keys: i64 =
            out.batches().iter().map(|b| b.column(0).as_primitive::<Int64Type>().iter().flatten().sum::<i64>()).sum();
        assert_eq!(keys, 1 + 2 + 2 + 2 + 2, "left keys come first");
    }

    #[test]
    fn rows_whose_window_has_passed_are_dropped_on_both_sides() {
        // Keyed on the column itself, as window results are on window_end (offset 0).
        let mut join = operator_with(Some(JoinExpiry { left_column: 0, right_column: 0, offset_ms: 0 }));
        let mut out = Emitter::default();
        join.on_batch(0, side_batch(&[Some(10), Some(20)], "l"), &mut out).expect("left");
        join.on_batch(1, side_batch(&[Some(10), Some(30)], "r"), &mut out).expect("right");
        assert_eq!((join.sides[0].rows(), join.sides[1].rows()), (2, 2));
        join.on_watermark(10, &mut out).expect("watermark");
        assert_eq!((join.sides[0].rows(), join.sides[1].rows()), (1, 1), "the rows of 10 are gone");
        assert_eq!(join.sides[0].batches[0].num_rows(), 2, "a batch with a live row stays");
        join.on_batch(1, side_batch(&[Some(20)], "s"), &mut out).expect("right again");
        join.on_watermark(30, &mut out).expect("watermark");
        assert_eq!((join.sides[0].rows(), join.sides[1].rows()), (0, 0));
        assert!(join.sides.iter().all(|s| s.batches.iter().all(|b| b.num_rows() == 0)), "memory is returned");
        let expected = [("l0", "r0"), ("l1", "s0")].map(|(l, r)| (l.to_string(), r.to_string()));
        assert_eq!(pairs(&out), expected);
    }
}
