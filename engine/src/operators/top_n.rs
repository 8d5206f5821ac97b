//! The updating Top-N: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY price DESC)` under `WHERE
//! rn <= N`, over a whole stream (and `rn = 1` ordered by time descending: the last row per key).
//!
//! Rows are ranked as they arrive, not by event time: the result is a changelog whose table,
//! after any prefix of the input, is the batch Top-N of that prefix. For each row that enters
//! its partition's top N at rank r, each rank from r down to the last one shown has its old row
//! taken out (`-U`) and its new one put in (`+U`: the new row at r, the row from the rank above
//! at the others), so the row pushed past N leaves; a rank that did not exist yet (fewer than N
//! rows so far) comes in (`+I`). A table keyed by partition and rank stays right. A
//! row that ties with rows already in the top N ranks after them (as in Flink's Top-N), except
//! when ordered by event time descending, where it ranks before them (as in Flink's
//! deduplication: the later row to arrive is the last). State is the top N rows of each
//! partition; nothing is late.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int8Array, RecordBatch, RecordBatchOptions, UInt64Array};
use arrow::compute::interleave;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};

use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
use crate::operators::aggregate::updating::{ChangeOp, op_field};
use crate::operators::exchange::owned_rows;
use crate::operators::stateless::StatelessChain;

/// Each of `exprs` over `rows`, as arrays.
fn evaluate_all(exprs: &[Arc<dyn PhysicalExpr>], rows: &RecordBatch) -> Result<Vec<ArrayRef>> {
    Ok(exprs
        .iter()
        .map(|e| e.evaluate(rows).and_then(|v| v.into_array(rows.num_rows())))
        .collect::<datafusion::error::Result<Vec<_>>>()?)
}

/// A lowered updating Top-N.
#[derive(Debug)]
pub struct TopNSpec {
    /// PARTITION BY, over the input's visible columns (empty: one ranking of the whole stream).
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub order_by: LexOrdering,
    /// N of `rn <= N`.
    pub limit: usize,
    /// A row ranks before rows already kept with the same sort key (ordered by event time
    /// descending: of two rows with one time, the later to arrive is the later row, as in
    /// Flink's deduplication); otherwise after them.
    pub ties_to_newest: bool,
    /// Hidden columns at the end of input batches (the event-time columns, or none).
    pub input_hidden: usize,
    /// The input's visible columns, then the row number (`UInt64`).
    pub output_schema: SchemaRef,
}

/// A Top-N stage: its spec and the stateless chain fused after it.
#[derive(Debug, Clone)]
pub struct TopNStage {
    pub spec: Arc<TopNSpec>,
    pub post: StatelessChain,
}

/// One row of a partition's top N: its sort key, and where its values are.
struct Entry {
    key: OwnedRow,
    at: (usize, usize),
}

/// One instance of a Top-N stage. See the [module docs](self).
pub struct TopNOperator {
    spec: Arc<TopNSpec>,
    post: StatelessChain,
    partitions: Option<RowConverter>,
    sort: RowConverter,
    /// Per partition (`None`: the whole stream, without PARTITION BY), its top rows in order.
    tops: HashMap<Option<OwnedRow>, Vec<Entry>>,
    /// Input rows (visible columns) the entries point into; compacted as rows leave.
    arena: Vec<RecordBatch>,
    arena_rows: usize,
    /// Rows in some top N.
    live: usize,
    output_schema: SchemaRef,
}

impl TopNOperator {
    pub fn new(stage: &TopNStage) -> Result<Self> {
        let spec = stage.spec.clone();
        let visible = spec.output_schema.fields().len() - 1;
        let input = Schema::new(spec.output_schema.fields()[..visible].to_vec());
        let partitions = if spec.partition_by.is_empty() {
            None
        } else {
            let fields = spec
                .partition_by
                .iter()
                .map(|e| Ok(SortField::new(e.data_type(&input)?)))
                .collect::<Result<Vec<_>>>()?;
            Some(RowConverter::new(fields)?)
        };
        let fields = spec
            .order_by
            .iter()
            .map(|o| Ok(SortField::new_with_options(o.expr.data_type(&input)?, o.options)))
            .collect::<Result<Vec<_>>>()?;
        let mut output: Vec<Field> = spec.output_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        output.push(op_field());
        Ok(Self {
            post: stage.post.clone(),
            partitions,
            sort: RowConverter::new(fields)?,
            tops: HashMap::new(),
            arena: Vec::new(),
            arena_rows: 0,
            live: 0,
            output_schema: Arc::new(Schema::new(output)),
            spec,
        })
    }

    /// Rebuilds the arena from the rows still in some top N when most of it is dead.
    fn compact(&mut self) -> Result<()> {
        if self.arena_rows < 4096 || self.arena_rows < 2 * self.live {
            return Ok(());
        }
        let mut at = Vec::with_capacity(self.live);
        for top in self.tops.values() {
            at.extend(top.iter().map(|e| e.at));
        }
        let batch = self.gather(&at)?;
        let mut k = 0;
        for top in self.tops.values_mut() {
            for entry in top.iter_mut() {
                entry.at = (0, k);
                k += 1;
            }
        }
        self.arena_rows = batch.num_rows();
        self.arena = vec![batch];
        Ok(())
    }

    /// The partition keys (without PARTITION BY: none) and sort keys of `rows` (visible
    /// columns), in row format.
    fn keys(&self, rows: &RecordBatch) -> Result<(Option<Rows>, Rows)> {
        let partition_keys = match &self.partitions {
            Some(converter) => Some(converter.convert_columns(&evaluate_all(&self.spec.partition_by, rows)?)?),
            None => None,
        };
        let order: Vec<Arc<dyn PhysicalExpr>> = self.spec.order_by.iter().map(|o| o.expr.clone()).collect();
        let sort_keys = self.sort.convert_columns(&evaluate_all(&order, rows)?)?;
        Ok((partition_keys, sort_keys))
    }

    /// The arena rows at `at`, as one batch of the input's visible columns.
    fn gather(&self, at: &[(usize, usize)]) -> Result<RecordBatch> {
        let schema = match self.arena.first() {
            Some(b) => b.schema(),
            None => return Err(StreamError::Internal("Top-N gathers rows before any arrived".into())),
        };
        let mut columns = Vec::with_capacity(schema.fields().len());
        for c in 0..schema.fields().len() {
            let arrays: Vec<&dyn Array> = self.arena.iter().map(|b| b.column(c).as_ref()).collect();
            columns.push(interleave(&arrays, at)?);
        }
        Ok(RecordBatch::try_new_with_options(
            schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(at.len())),
        )?)
    }
}

impl Operator for TopNOperator {
    fn state_bytes(&self) -> usize {
        crate::operator::batches_bytes(&self.arena)
            + self.live * (self.tops.values().flatten().next().map_or(0, |e| e.key.as_ref().len()) + size_of::<Entry>())
    }

    fn name(&self) -> &str {
        "top-n"
    }

    fn on_batch(&mut self, _input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let visible = batch.num_columns() - self.spec.input_hidden;
        let fields: Vec<Field> =
            self.spec.output_schema.fields()[..visible].iter().map(|f| f.as_ref().clone()).collect();
        let rows = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            batch.columns()[..visible].to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let (partition_keys, sort_keys) = self.keys(&rows)?;
        let batch_index = self.arena.len();
        self.arena.push(rows);
        self.arena_rows += n;

        let limit = self.spec.limit;
        let mut changes: Vec<(ChangeOp, (usize, usize), u64)> = Vec::new();
        for i in 0..n {
            let partition = partition_keys.as_ref().map(|keys| keys.row(i).owned());
            let top = self.tops.entry(partition).or_default();
            let key = sort_keys.row(i);
            let position = if self.spec.ties_to_newest {
                top.partition_point(|e| e.key.row() < key)
            } else {
                top.partition_point(|e| e.key.row() <= key)
            };
            if position >= limit {
                continue;
            }
            // Rank by rank from the new row's, each rank's old row out and its new row in (as
            // Flink does), so a table keyed by rank stays right; a rank that did not exist yet
            // (fewer than N rows so far) comes in.
            let at = (batch_index, i);
            let shown = top.len().min(limit);
            for rank in position..shown {
                let incoming = if rank == position { at } else { top[rank - 1].at };
                changes.push((ChangeOp::UpdateBefore, top[rank].at, rank as u64 + 1));
                changes.push((ChangeOp::UpdateAfter, incoming, rank as u64 + 1));
            }
            if shown < limit {
                let incoming = if position == shown { at } else { top[shown - 1].at };
                changes.push((ChangeOp::Insert, incoming, shown as u64 + 1));
            }
            top.insert(position, Entry { key: key.owned(), at: (batch_index, i) });
            self.live += 1;
            if top.len() > limit {
                top.truncate(limit);
                self.live -= 1;
            }
        }
        if !changes.is_empty() {
            let at: Vec<(usize, usize)> = changes.iter().map(|c| c.1).collect();
            let values = self.gather(&at)?;
            let mut columns: Vec<ArrayRef> = values.columns().to_vec();
            columns.push(Arc::new(UInt64Array::from_iter_values(changes.iter().map(|c| c.2))));
            columns.push(Arc::new(Int8Array::from_iter_values(changes.iter().map(|c| c.0 as i8))));
            let output = RecordBatch::try_new_with_options(
                self.output_schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(changes.len())),
            )?;
            if let Some(batch) = self.post.apply(output)? {
                out.emit(batch);
            }
        }
        self.compact()
    }

    /// Ranks do not wait for event time.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    /// The rows of every partition's top N, partition by partition in rank order: what was
    /// emitted follows from them (the table of ranks).
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        let mut at = Vec::with_capacity(self.live);
        for top in self.tops.values() {
            at.extend(top.iter().map(|e| e.at));
        }
        if at.is_empty() {
            return Ok(StateSnapshot::single("tops", Vec::new()));
        }
        Ok(StateSnapshot::single("tops", vec![self.gather(&at)?]))
    }

    /// Ranks the rows of a [`TopNOperator::snapshot`] again, in their stored order (after a
    /// change of parallelism: the partitions this instance owns).
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        self.tops.clear();
        self.arena.clear();
        self.arena_rows = 0;
        self.live = 0;
        for batch in state.table("tops") {
            let mut rows = batch.clone();
            if let Some((instance, parallelism)) = state.rescaled {
                let keys = evaluate_all(&self.spec.partition_by, &rows)?;
                let owned = owned_rows(&keys, rows.num_rows(), instance, parallelism)?;
                rows = arrow::compute::filter_record_batch(&rows, &BooleanArray::from(owned))?;
            }
            let n = rows.num_rows();
            if n == 0 {
                continue;
            }
            let (partition_keys, sort_keys) = self.keys(&rows)?;
            let batch_index = self.arena.len();
            self.arena.push(rows);
            self.arena_rows += n;
            for i in 0..n {
                let partition = partition_keys.as_ref().map(|keys| keys.row(i).owned());
                let top = self.tops.entry(partition).or_default();
                if top.len() < self.spec.limit {
                    top.push(Entry { key: sort_keys.row(i).owned(), at: (batch_index, i) });
                    self.live += 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::compute::SortOptions;
    use arrow::datatypes::{DataType, Int8Type, Int64Type, UInt64Type};
    use datafusion::physical_expr::PhysicalSortExpr;
    use datafusion::physical_expr::expressions::Column;

    use super::*;

    /// `ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC) <= 2` over `(k STRING, v BIGINT)`.
    fn top_2_per_k() -> Result<TopNStage> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new("rn", DataType::UInt64, true),
        ]));
        let descending = SortOptions { descending: true, nulls_first: true };
        let order = LexOrdering::new([PhysicalSortExpr::new(Arc::new(Column::new("v", 1)), descending)]);
        let spec = TopNSpec {
            partition_by: vec![Arc::new(Column::new("k", 0))],
            order_by: order.ok_or_else(|| StreamError::Internal("order".into()))?,
            limit: 2,
            ties_to_newest: false,
            input_hidden: 0,
            output_schema: schema,
        };
        Ok(TopNStage { spec: Arc::new(spec), post: StatelessChain::default() })
    }

    /// The top 2 `v` per `k`, the changelog applied to a table keyed by `(k, rn)` as an upsert
    /// sink applies it: after every batch, each rank holds the row the batch Top-N puts there.
    #[test]
    fn a_table_keyed_by_rank_follows_the_top_n() -> Result<()> {
        let stage = top_2_per_k()?;
        let mut operator = TopNOperator::new(&stage)?;
        let input =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)]));
        let mut table: BTreeMap<(String, u64), i64> = BTreeMap::new();
        let mut seen: Vec<(String, i64)> = Vec::new();
        for rows in [vec![("a", 5)], vec![("a", 3), ("b", 1)], vec![("a", 9), ("a", 4)], vec![("a", 10), ("b", 2)]] {
            let keys: Vec<&str> = rows.iter().map(|r| r.0).collect();
            let values: Vec<i64> = rows.iter().map(|r| r.1).collect();
            let batch = RecordBatch::try_new(
                input.clone(),
                vec![Arc::new(StringArray::from(keys)), Arc::new(Int64Array::from(values))],
            )?;
            let mut out = Emitter::default();
            operator.on_batch(0, batch, &mut out)?;
            for batch in out.batches() {
                let (k, v) = (batch.column(0).as_string::<i32>(), batch.column(1).as_primitive::<Int64Type>());
                let (rn, op) =
                    (batch.column(2).as_primitive::<UInt64Type>(), batch.column(3).as_primitive::<Int8Type>());
                for i in 0..batch.num_rows() {
                    let key = (k.value(i).to_string(), rn.value(i));
                    if ChangeOp::from_i8(op.value(i))?.is_addition() {
                        table.insert(key, v.value(i));
                    } else {
                        table.remove(&key);
                    }
                }
            }
            seen.extend(rows.iter().map(|(k, v)| (k.to_string(), *v)));
            let mut expected = BTreeMap::new();
            for key in ["a", "b"] {
                let mut values: Vec<i64> = seen.iter().filter(|(k, _)| k == key).map(|(_, v)| *v).collect();
                values.sort_unstable_by(|x, y| y.cmp(x));
                for (rank, value) in values.into_iter().take(2).enumerate() {
                    expected.insert((key.to_string(), rank as u64 + 1), value);
                }
            }
            assert_eq!(table, expected, "after {seen:?}");
        }
        Ok(())
    }

    /// Restored from a snapshot (at one or at two instances), the Top-N changes what comes next
    /// exactly as the operator that took it.
    #[test]
    fn a_restored_top_n_continues_as_the_original() -> Result<()> {
        let stage = top_2_per_k()?;
        let input =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)]));
        let batch = |rows: &[(&str, i64)]| -> Result<RecordBatch> {
            let keys: Vec<&str> = rows.iter().map(|r| r.0).collect();
            let values: Vec<i64> = rows.iter().map(|r| r.1).collect();
            Ok(RecordBatch::try_new(
                input.clone(),
                vec![Arc::new(StringArray::from(keys)), Arc::new(Int64Array::from(values))],
            )?)
        };
        let changes = |operator: &mut TopNOperator, rows: &[(&str, i64)]| -> Result<Vec<String>> {
            let mut out = Emitter::default();
            operator.on_batch(0, batch(rows)?, &mut out)?;
            let mut lines = Vec::new();
            for b in out.batches() {
                let (k, v) = (b.column(0).as_string::<i32>(), b.column(1).as_primitive::<Int64Type>());
                let (rn, op) = (b.column(2).as_primitive::<UInt64Type>(), b.column(3).as_primitive::<Int8Type>());
                for i in 0..b.num_rows() {
                    lines.push(format!("{} {} {} {}", op.value(i), k.value(i), rn.value(i), v.value(i)));
                }
            }
            lines.sort();
            Ok(lines)
        };
        let mut original = TopNOperator::new(&stage)?;
        changes(&mut original, &[("a", 5), ("a", 3), ("b", 1), ("a", 9), ("c", 4), ("c", 4)])?;
        let state = original.snapshot(1)?;
        let mut restored = TopNOperator::new(&stage)?;
        restored.restore(state.clone())?;
        let mut halves = [TopNOperator::new(&stage)?, TopNOperator::new(&stage)?];
        for (instance, half) in halves.iter_mut().enumerate() {
            half.restore(StateSnapshot { rescaled: Some((instance, 2)), ..state.clone() })?;
        }
        for rows in [vec![("a", 7), ("b", 2)], vec![("c", 4), ("b", 0), ("a", 10), ("c", 5)]] {
            let expected = changes(&mut original, &rows)?;
            assert_eq!(changes(&mut restored, &rows)?, expected);
            // Each row goes to the instance that owns its partition, as the exchange routes it.
            let keys = Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as ArrayRef;
            let owner = |i: usize| -> Result<usize> {
                Ok(if owned_rows(std::slice::from_ref(&keys), rows.len(), 0, 2)?[i] { 0 } else { 1 })
            };
            let mut split = Vec::new();
            for (instance, half) in halves.iter_mut().enumerate() {
                let mine: Vec<(&str, i64)> =
                    (0..rows.len()).filter(|&i| owner(i).is_ok_and(|o| o == instance)).map(|i| rows[i]).collect();
                split.extend(changes(half, &mine)?);
            }
            split.sort();
            assert_eq!(split, expected);
        }
        Ok(())
    }
}
