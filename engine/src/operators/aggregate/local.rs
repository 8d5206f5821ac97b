//! The first phase of a two-phase window aggregation: each batch is pre-aggregated where it is
//! produced, before the hash exchange, so the exchange ships a few partial rows per key and pane
//! instead of every input row (Flink's local/global aggregation).
//!
//! A batch becomes *partial rows*, one per segment, pane and group key, where a segment is a
//! run of rows whose `_wm` lies between the same two window ends (as the window operator cuts
//! them, see [`WindowAggregator::process_batch`](super::WindowAggregator::process_batch)). The
//! window operator would give every row of a partial row the same verdict: they share their
//! pane, hence their windows, and their watermarks close the same windows. So a partial row
//! stands for its rows exactly:
//!
//! | column          | value                                                                   |
//! |-----------------|-------------------------------------------------------------------------|
//! | `k0`, `k1`, ... | the group keys                                                          |
//! | `a<i>_<j>`      | the accumulator state of aggregate call `i` (DataFusion's `state()`)    |
//! | `_ts`           | the pane's start (NULL for rows without an event time, which are late)  |
//! | `_wm`           | the watermark of the segment's first row                                |
//! | `_rows`         | how many input rows it stands for (all counted as late if it is late)   |
//!
//! and the window operator merges it into its pane, or drops and counts it as late, as it would
//! have done with each of its rows. Nothing is kept between batches: the first phase holds no
//! state for checkpoints and holds nothing back.
//!
//! Pre-aggregating pays when a batch holds few groups. With [`LocalWindowAggregate::adaptive`],
//! once the first [`PROBE_ROWS`] rows have left as more than half as many partial rows, batches
//! go on as they are (the window operator takes both kinds).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, RecordBatchOptions, TimestampMillisecondArray};
use arrow::compute::concat;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

use super::inputs::BatchInputs;
use super::pane::{Pane, PaneInput, SealedChunk};
use super::spec::{AggregateSpec, WindowKind, WindowShape};
use super::window::event_time_columns;
use crate::error::{Result, StreamError};
use crate::time::{TS_COLUMN, WM_COLUMN, timestamp_type};

/// The column of partial rows that says how many input rows each stands for.
pub const ROWS_COLUMN: &str = "_rows";

/// Rows the adaptive first phase looks at before it decides whether pre-aggregating pays.
pub const PROBE_ROWS: usize = 100_000;

/// How many input rows `batch` stands for: the sum of `_rows` for partial rows, else its rows.
pub fn represented_rows(batch: &RecordBatch) -> usize {
    match batch.schema().index_of(ROWS_COLUMN) {
        Ok(i) => batch
            .column(i)
            .as_primitive_opt::<Int64Type>()
            .map_or(batch.num_rows(), |rows| rows.values().iter().map(|r| *r as usize).sum()),
        Err(_) => batch.num_rows(),
    }
}

/// One piece of a partial batch: the groups of one pane within one segment.
struct Piece {
    pane: Option<i64>,
    watermark: i64,
    chunk: SealedChunk,
    rows: Vec<i64>,
}

/// Pre-aggregates batches for a window aggregation (TUMBLE, HOP, CUMULATE over event time).
pub struct LocalWindowAggregate {
    spec: Arc<AggregateSpec>,
    shape: WindowShape,
    /// Reused between pieces: sealing it leaves it empty.
    pane: Pane,
    scratch: Vec<usize>,
    adaptive: bool,
    /// Pre-aggregating did not pay: batches go on as they are.
    passing: bool,
    rows_in: usize,
    rows_out: usize,
}

impl LocalWindowAggregate {
    /// Pre-aggregates every batch.
    pub fn new(spec: Arc<AggregateSpec>) -> Result<Self> {
        let shape = match spec.window {
            Some(shape) if shape.kind != WindowKind::Session && !shape.processing_time => shape,
            _ => {
                return Err(StreamError::Internal(
                    "only TUMBLE, HOP and CUMULATE windows over event time are pre-aggregated".into(),
                ));
            }
        };
        let pane = Pane::new(&spec)?;
        Ok(Self { spec, shape, pane, scratch: Vec::new(), adaptive: false, passing: false, rows_in: 0, rows_out: 0 })
    }

    /// Stops pre-aggregating when the first [`PROBE_ROWS`] rows show that it does not pay.
    pub fn adaptive(mut self) -> Self {
        self.adaptive = true;
        self
    }

    /// The key columns of partial rows, by which the exchange routes them: they hash as the
    /// GROUP BY values they hold, so a key's partial rows and rows reach the same instance.
    pub fn key_columns(&self) -> Vec<Arc<dyn PhysicalExpr>> {
        (0..self.spec.key_fields.len())
            .map(|i| Arc::new(Column::new(&format!("k{i}"), i)) as Arc<dyn PhysicalExpr>)
            .collect()
    }

    /// Whether batches now go on as they are.
    pub fn passing(&self) -> bool {
        self.passing
    }

    /// `batch` (with the hidden `_ts` and `_wm` columns) as partial rows, or `None` when it goes
    /// on as it is (empty, or pre-aggregating has not paid).
    pub fn aggregate(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let n = batch.num_rows();
        if self.passing || n == 0 {
            return Ok(None);
        }
        let (ts, wm) = event_time_columns(batch)?;
        let wm = wm.values();
        let inputs = BatchInputs::evaluate(&self.spec, batch)?;
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < n {
            let next_end = self.shape.next_window_end_after(wm[start]);
            let mut end = start + 1;
            while end < n && wm[end] < next_end {
                end += 1;
            }
            self.add_segment(&ts, &inputs, start, end, wm[start], &mut pieces)?;
            start = end;
        }
        let partial = self.partial_batch(pieces)?;
        self.rows_in += n;
        self.rows_out += partial.num_rows();
        if self.adaptive && self.rows_in >= PROBE_ROWS && self.rows_out * 2 > self.rows_in {
            tracing::debug!(
                rows = self.rows_in,
                partial_rows = self.rows_out,
                "pre-aggregation before the exchange does not pay for this input; rows go on as they are"
            );
            self.passing = true;
        }
        Ok(Some(partial))
    }

    /// Rows `[start, end)`, which see the same windows closed, as one piece per pane.
    fn add_segment(
        &mut self,
        ts: &TimestampMillisecondArray,
        inputs: &BatchInputs,
        start: usize,
        end: usize,
        watermark: i64,
        pieces: &mut Vec<Piece>,
    ) -> Result<()> {
        let shape = self.shape;
        let values = &ts.values()[start..end];
        let pane = shape.pane_start(values[0]);
        let pane_end = pane.saturating_add(shape.pane_ms);
        let valid = ts.null_count() == 0 || (start..end).all(|row| ts.is_valid(row));
        if valid && values.iter().all(|&t| t >= pane && t < pane_end) {
            return self.add_piece(Some(pane), watermark, &inputs.slice(start, end - start), end - start, pieces);
        }
        let mut by_pane: BTreeMap<Option<i64>, Vec<u32>> = BTreeMap::new();
        for row in start..end {
            let pane = ts.is_valid(row).then(|| shape.pane_start(ts.value(row)));
            by_pane.entry(pane).or_default().push(row as u32);
        }
        for (pane, rows) in by_pane {
            self.add_piece(pane, watermark, &inputs.take(&rows)?, rows.len(), pieces)?;
        }
        Ok(())
    }

    fn add_piece(
        &mut self,
        pane: Option<i64>,
        watermark: i64,
        input: &BatchInputs,
        rows: usize,
        pieces: &mut Vec<Piece>,
    ) -> Result<()> {
        let update = PaneInput { rows, keys: &input.keys, args: &input.args, filters: &input.filters };
        self.pane.update(update, &mut self.scratch)?;
        let Some(chunk) = self.pane.take_live()? else { return Ok(()) };
        let mut counts = vec![0i64; chunk.groups];
        for &group in &self.scratch[..rows] {
            counts[group] += 1;
        }
        pieces.push(Piece { pane, watermark, chunk, rows: counts });
        Ok(())
    }

    /// The pieces as one batch of partial rows (see the [module docs](self)).
    fn partial_batch(&self, pieces: Vec<Piece>) -> Result<RecordBatch> {
        let total: usize = pieces.iter().map(|p| p.chunk.groups).sum();
        let joined = |arrays: Vec<&ArrayRef>| -> Result<ArrayRef> {
            match arrays.as_slice() {
                [one] => Ok((*one).clone()),
                _ => Ok(concat(&arrays.iter().map(|a| a.as_ref()).collect::<Vec<&dyn Array>>())?),
            }
        };
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for i in 0..self.spec.key_fields.len() {
            let key = joined(pieces.iter().map(|p| &p.chunk.keys[i]).collect())?;
            fields.push(Field::new(format!("k{i}"), key.data_type().clone(), true));
            columns.push(key);
        }
        for agg in 0..self.spec.aggregates.len() {
            let states = pieces.first().map_or(0, |p| p.chunk.states[agg].len());
            for j in 0..states {
                let state = joined(pieces.iter().map(|p| &p.chunk.states[agg][j]).collect())?;
                fields.push(Field::new(format!("a{agg}_{j}"), state.data_type().clone(), true));
                columns.push(state);
            }
        }
        fields.push(Field::new(TS_COLUMN, timestamp_type(), true));
        let panes = pieces.iter().flat_map(|p| std::iter::repeat_n(p.pane, p.chunk.groups));
        columns.push(Arc::new(panes.collect::<TimestampMillisecondArray>()));
        fields.push(Field::new(WM_COLUMN, DataType::Int64, false));
        let watermarks = pieces.iter().flat_map(|p| std::iter::repeat_n(p.watermark, p.chunk.groups));
        columns.push(Arc::new(Int64Array::from_iter_values(watermarks)));
        fields.push(Field::new(ROWS_COLUMN, DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from_iter_values(pieces.iter().flat_map(|p| p.rows.iter().copied()))));
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(total)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::StringArray;
    use arrow::util::display::array_value_to_string;
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::{cast, col};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::operators::aggregate::{AggregateCall, GroupOutput, WindowAggregator};
    use crate::time::{WATERMARK_MAX, hidden_fields};

    fn input_schema() -> Arc<Schema> {
        let mut fields = vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)];
        fields.extend(hidden_fields());
        Arc::new(Schema::new(fields))
    }

    fn spec(shape: WindowShape, keyed: bool) -> Arc<AggregateSpec> {
        let input = input_schema();
        let v = col("v", &input).expect("column v");
        let as_float = cast(v.clone(), &input, DataType::Float64).expect("CAST(v AS DOUBLE)");
        let call = |f, arg: &Arc<dyn PhysicalExpr>, name: &str| {
            let e = AggregateExprBuilder::new(f, vec![arg.clone()]).schema(input.clone()).alias(name).build();
            AggregateCall::new(Arc::new(e.expect("aggregate")), None)
        };
        let mut outputs = vec![GroupOutput::WindowStart, GroupOutput::WindowEnd];
        let mut fields = vec![
            Field::new("window_start", timestamp_type(), false),
            Field::new("window_end", timestamp_type(), false),
        ];
        if keyed {
            outputs.push(GroupOutput::Key(0));
            fields.push(Field::new("k", DataType::Utf8, true));
        }
        fields.extend([Field::new("s", DataType::Int64, true), Field::new("a", DataType::Float64, true)]);
        Arc::new(AggregateSpec {
            window: Some(shape),
            key_exprs: if keyed { vec![col("k", &input).expect("column k")] } else { Vec::new() },
            key_fields: if keyed { vec![Arc::new(Field::new("k", DataType::Utf8, true))] } else { Vec::new() },
            aggregates: vec![call(sum_udaf(), &v, "s"), call(avg_udaf(), &as_float, "a")],
            outputs,
            output_schema: Arc::new(Schema::new(fields)),
        })
    }

    /// Rows mostly in time order, some going back past the watermark, some without a time or
    /// key, cut into batches of random sizes; `_wm` as a source computes it (delay 500 ms).
    fn batches(seed: u64) -> Vec<RecordBatch> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut rows = Vec::new();
        let (mut max, mut t) = (i64::MIN, 1_700_000_000_000i64);
        for _ in 0..3_000 {
            t += rng.random_range(0..120);
            let ts = match rng.random_range(0..100) {
                0 => None,
                1..=10 => Some(t - rng.random_range(0..4_000)),
                _ => Some(t),
            };
            let wm = if max == i64::MIN { crate::time::WATERMARK_MIN } else { max - 500 };
            max = max.max(ts.unwrap_or(i64::MIN));
            let key = (rng.random_range(0..20) != 0).then(|| ["a", "b", "c", "d"][rng.random_range(0..4)]);
            let v = (rng.random_range(0..10) != 0).then(|| rng.random_range(-50..1_000));
            rows.push((key, v, ts, wm));
        }
        let mut out = Vec::new();
        let mut at = 0;
        while at < rows.len() {
            let n = rng.random_range(1..400).min(rows.len() - at);
            let part = &rows[at..at + n];
            let columns: Vec<ArrayRef> = vec![
                Arc::new(part.iter().map(|r| r.0).collect::<StringArray>()),
                Arc::new(part.iter().map(|r| r.1).collect::<Int64Array>()),
                Arc::new(part.iter().map(|r| r.2).collect::<TimestampMillisecondArray>()),
                Arc::new(part.iter().map(|r| r.3).collect::<Int64Array>()),
            ];
            out.push(RecordBatch::try_new(input_schema(), columns).expect("batch"));
            at += n;
        }
        out
    }

    fn rows(batches: &[RecordBatch]) -> Vec<String> {
        let mut lines: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |r| {
                    let cells: Vec<String> =
                        (0..b.num_columns()).map(|c| array_value_to_string(b.column(c), r).expect("value")).collect();
                    cells.join(" ")
                })
            })
            .collect();
        lines.sort();
        lines
    }

    /// Results and late rows of the window operator over `batches`, pre-aggregated or not.
    fn run(
        spec: &Arc<AggregateSpec>,
        batches: &[RecordBatch],
        local: Option<&mut LocalWindowAggregate>,
        ordered: bool,
    ) -> (Vec<String>, u64, usize) {
        let mut window = WindowAggregator::new(spec.clone(), ordered).expect("window");
        let mut out = Vec::new();
        let mut sent = 0;
        let mut local = local;
        for batch in batches {
            let batch = match local.as_deref_mut().map(|l| l.aggregate(batch).expect("pre-aggregates")) {
                Some(Some(partial)) => {
                    assert_eq!(represented_rows(&partial), batch.num_rows());
                    partial
                }
                _ => batch.clone(),
            };
            sent += batch.num_rows();
            window.process_batch(&batch, &mut out).expect("window");
            if !ordered {
                // The operator watermark trails the rows: the smallest _wm of the batch.
                let wm = event_time_columns(&batch).expect("hidden").1.values()[0];
                window.advance(wm, &mut out).expect("advance");
            }
        }
        window.advance(WATERMARK_MAX, &mut out).expect("end");
        (rows(&out), window.take_late_rows(), sent)
    }

    #[test]
    fn two_phases_give_the_results_and_late_counts_of_one() {
        let shapes = [
            (WindowShape::tumble(1_000).expect("tumble"), true),
            (WindowShape::tumble(1_000).expect("tumble"), false),
            (WindowShape::hop(500, 2_000).expect("hop"), true),
            (WindowShape::hop(700, 2_000).expect("hop"), true),
            (WindowShape::cumulate(500, 2_000).expect("cumulate"), true),
        ];
        for seed in 0..6 {
            let input = batches(seed);
            for (shape, ordered) in shapes {
                for keyed in [true, false] {
                    let spec = spec(shape, keyed);
                    let (expected, late, rows) = run(&spec, &input, None, ordered);
                    assert!(late > 0, "the input has late rows");
                    let mut local = LocalWindowAggregate::new(spec.clone()).expect("local");
                    let (got, got_late, sent) = run(&spec, &input, Some(&mut local), ordered);
                    let case = format!("seed {seed}, {shape:?}, ordered {ordered}, keyed {keyed}");
                    assert_eq!(got, expected, "{case}");
                    assert_eq!(got_late, late, "{case}");
                    assert!(sent < rows, "{case}: {sent} partial rows for {rows} rows");
                }
            }
        }
    }

    #[test]
    fn the_adaptive_first_phase_stops_when_it_does_not_pay() {
        let spec = spec(WindowShape::tumble(3_600_000).expect("tumble"), true);
        let distinct = |at: usize, n: usize| {
            let keys: StringArray = (at..at + n).map(|i| Some(format!("key-{i}"))).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(keys),
                Arc::new(Int64Array::from_value(1, n)),
                Arc::new(TimestampMillisecondArray::from_value(1_000, n)),
                Arc::new(Int64Array::from_value(0, n)),
            ];
            RecordBatch::try_new(input_schema(), columns).expect("batch")
        };
        let mut local = LocalWindowAggregate::new(spec).expect("local").adaptive();
        let mut at = 0;
        while !local.passing() {
            assert!(at < 2 * PROBE_ROWS, "still pre-aggregating after {at} rows of distinct keys");
            let partial = local.aggregate(&distinct(at, 8_192)).expect("pre-aggregates").expect("partial rows");
            assert_eq!(partial.num_rows(), 8_192);
            at += 8_192;
        }
        assert!(at >= PROBE_ROWS);
        assert!(local.aggregate(&distinct(at, 10)).expect("passes").is_none(), "rows go on as they are");
    }
}
