//! Aggregates over an updating input: `GROUP BY` over a changelog (the result of another
//! aggregation without a window), e.g. Nexmark q4's `AVG` over a `MAX` per auction.
//!
//! Each input row carries [`OP_COLUMN`]: `+I`/`+U` rows are added to their group's accumulators,
//! `-U`/`-D` rows are taken out again with DataFusion's `retract_batch`. A group also counts its
//! rows; when the count falls to zero every row it held has been retracted, so the group leaves
//! the result (`-D`) and its state is dropped, as in Flink. The output is a changelog in the same
//! form as [`UpdatingAggregator`](super::UpdatingAggregator)'s, flushed on the same schedule.
//!
//! Retraction must not depend on the order rows leave: a `-U` retracts a row added long ago.
//! `COUNT`, `SUM` and `AVG` (with or without `DISTINCT` where DataFusion has a retracting
//! accumulator) undo exactly; `MIN` and `MAX` keep a multiset of their values (DataFusion's
//! sliding `MIN`/`MAX` only retract the oldest value, as a window frame does). Any other
//! function over an updating input is refused when the query is planned ([`check_retractable`]).
//!
//! Within a batch the additions of a group are applied before its retractions, so a multiset
//! never holds a negative count; the end state does not depend on the order either way. The
//! changelog of one upstream key travels one channel, in order, so a row is never retracted
//! before it was added.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int8Array, Int64Array, UInt32Array, UInt64Array};
use arrow::compute::{filter, take};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt64Type};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::logical_expr::Accumulator;

use super::inputs::BatchInputs;
use super::spec::{AggregateCall, AggregateSpec, GroupOutput};
use super::updating::{ChangeOp, OP_COLUMN, with_op_column};
use crate::error::{Result, StreamError};
use crate::operator::StateSnapshot;
use crate::operators::exchange::owned_rows;

/// Whether `call` can run over an updating input; the error says why not, for the planner.
pub fn check_retractable(call: &AggregateCall) -> std::result::Result<(), String> {
    let name = call.function.fun().name().to_ascii_lowercase();
    let refuse = |why: &str| {
        Err(format!(
            "{}({}) over an updating input (the result of an aggregation without a window) is not supported{why}; \
             COUNT, SUM, AVG, MIN and MAX are",
            name.to_ascii_uppercase(),
            if call.function.is_distinct() { "DISTINCT ..." } else { "..." },
        ))
    };
    match name.as_str() {
        "min" | "max" => Ok(()),
        "count" | "sum" | "avg" | "mean" => match call.function.create_sliding_accumulator() {
            Ok(accumulator) if accumulator.supports_retract_batch() => Ok(()),
            Ok(_) => refuse(" for this argument type"),
            Err(error) => refuse(&format!(" ({error})")),
        },
        _ => refuse(" yet"),
    }
}

/// A fresh accumulator for `call` that can take rows back out.
fn retracting_accumulator(call: &AggregateCall) -> Result<Box<dyn Accumulator>> {
    let name = call.function.fun().name().to_ascii_lowercase();
    match name.as_str() {
        "min" | "max" => Ok(Box::new(MultisetExtreme::new(call.function.field().data_type(), name == "max")?)),
        _ => {
            let accumulator = call.function.create_sliding_accumulator()?;
            if !accumulator.supports_retract_batch() {
                return Err(StreamError::Internal(format!("{name} cannot retract rows")));
            }
            if call.function.is_distinct() {
                return Ok(Box::new(CountedDistinct { inner: accumulator, converter: None, values: BTreeMap::new() }));
            }
            Ok(accumulator)
        }
    }
}

/// Adds the non-NULL values of `column` (as `rows`) to a multiset: each value with how many
/// rows hold it.
fn add_to_multiset(values: &mut BTreeMap<OwnedRow, u64>, rows: &arrow::row::Rows, column: &ArrayRef) {
    for (i, row) in rows.iter().enumerate() {
        if column.is_valid(i) {
            *values.entry(row.owned()).or_insert(0) += 1;
        }
    }
}

/// Takes the non-NULL values of `column` (as `rows`) out of a multiset, once each; `what`
/// names the aggregate in the error for a value it never held.
fn remove_from_multiset(
    values: &mut BTreeMap<OwnedRow, u64>,
    rows: &arrow::row::Rows,
    column: &ArrayRef,
    what: &str,
) -> datafusion::error::Result<()> {
    for (i, row) in rows.iter().enumerate() {
        if !column.is_valid(i) {
            continue;
        }
        let row = row.owned();
        match values.get_mut(&row) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                values.remove(&row);
            }
            None => {
                return Err(datafusion::error::DataFusionError::Internal(format!(
                    "{what} retracted a value it never held"
                )));
            }
        }
    }
    Ok(())
}

/// A multiset as an accumulator's state: two single-row lists, its values (converted back by
/// `converter`; an empty list of type `empty` when it holds none) and how many rows hold each.
fn multiset_state(
    values: &BTreeMap<OwnedRow, u64>,
    converter: Option<&RowConverter>,
    empty: &DataType,
) -> datafusion::error::Result<Vec<ScalarValue>> {
    let distinct = match converter {
        Some(converter) if !values.is_empty() => converter.convert_rows(values.keys().map(|row| row.row()))?.remove(0),
        Some(_) | None => arrow::array::new_empty_array(empty),
    };
    let counts: ArrayRef = Arc::new(UInt64Array::from(values.values().copied().collect::<Vec<_>>()));
    Ok(vec![
        SingleRowListArrayBuilder::new(distinct).build_list_scalar(),
        SingleRowListArrayBuilder::new(counts).build_list_scalar(),
    ])
}

/// The multisets of [`multiset_state`]s (a column of values lists and one of counts lists), as
/// `(values, counts)` per state; `what` names the aggregate in errors.
fn multiset_states(states: &[ArrayRef], what: &str) -> datafusion::error::Result<Vec<(ArrayRef, UInt64Array)>> {
    let [values, counts] = states else {
        return Err(datafusion::error::DataFusionError::Internal(format!("{what}'s state of another form")));
    };
    let (values, counts) = (values.as_list::<i32>(), counts.as_list::<i32>());
    (0..values.len())
        .map(|state| {
            let counts = counts.value(state);
            let Some(counts) = counts.as_primitive_opt::<UInt64Type>() else {
                return Err(datafusion::error::DataFusionError::Internal(format!("{what}'s counts of another type")));
            };
            Ok((values.value(state), counts.clone()))
        })
        .collect()
}

/// A retracting DISTINCT aggregate (DataFusion's, which computes it) beside the multiset of its
/// values: DataFusion's exports its distinct values without how many rows hold each, so the
/// multiset is the state a checkpoint keeps, and a restore gives each value back as many times.
/// Nulls are left out of the multiset, as every DISTINCT aggregate ignores them.
#[derive(Debug)]
struct CountedDistinct {
    inner: Box<dyn Accumulator>,
    /// Made for the argument's type when the first values come.
    converter: Option<RowConverter>,
    values: BTreeMap<OwnedRow, u64>,
}

impl CountedDistinct {
    /// The values of `column` in row format, with their validity.
    fn rows(&mut self, column: &ArrayRef) -> datafusion::error::Result<arrow::row::Rows> {
        if self.converter.is_none() {
            self.converter = Some(RowConverter::new(vec![SortField::new(column.data_type().clone())])?);
        }
        let converter = self.converter.as_ref().expect("made above");
        Ok(converter.convert_columns(std::slice::from_ref(column))?)
    }

    fn argument(values: &[ArrayRef]) -> datafusion::error::Result<&ArrayRef> {
        match values {
            [column] => Ok(column),
            _ => Err(datafusion::error::DataFusionError::Internal("a DISTINCT aggregate of one argument".into())),
        }
    }
}

impl Accumulator for CountedDistinct {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        self.inner.update_batch(values)?;
        let column = Self::argument(values)?.clone();
        let rows = self.rows(&column)?;
        add_to_multiset(&mut self.values, &rows, &column);
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        self.inner.retract_batch(values)?;
        let column = Self::argument(values)?.clone();
        let rows = self.rows(&column)?;
        remove_from_multiset(&mut self.values, &rows, &column, "a DISTINCT aggregate")
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> datafusion::error::Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        self.inner.size()
            + self.converter.as_ref().map_or(0, RowConverter::size)
            + self.values.keys().map(|r| r.as_ref().len() + 48).sum::<usize>()
    }

    /// The multiset: its values and how many rows hold each, as two lists (empty lists, of
    /// type Null, before any value came).
    fn state(&mut self) -> datafusion::error::Result<Vec<ScalarValue>> {
        multiset_state(&self.values, self.converter.as_ref(), &DataType::Null)
    }

    /// Adds the multisets of [`CountedDistinct::state`]s: each value goes to DataFusion's
    /// accumulator as many times as rows held it.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::error::Result<()> {
        for (values, counts) in multiset_states(states, "a DISTINCT aggregate")? {
            if values.is_empty() {
                continue;
            }
            let mut repeated = Vec::new();
            for (i, count) in counts.values().iter().enumerate() {
                repeated.extend(std::iter::repeat_n(i as u32, *count as usize));
            }
            let repeated = take(values.as_ref(), &UInt32Array::from(repeated), None)?;
            self.update_batch(&[repeated])?;
        }
        Ok(())
    }
}

/// `MIN`/`MAX` that can retract any value: a multiset of the values in row format (whose byte
/// order is the values' order), nulls ignored as SQL's MIN/MAX ignore them.
#[derive(Debug)]
struct MultisetExtreme {
    converter: RowConverter,
    values: BTreeMap<OwnedRow, u64>,
    data_type: DataType,
    max: bool,
}

impl MultisetExtreme {
    fn new(data_type: &DataType, max: bool) -> Result<Self> {
        Ok(Self {
            converter: RowConverter::new(vec![SortField::new(data_type.clone())])?,
            values: BTreeMap::new(),
            data_type: data_type.clone(),
            max,
        })
    }

    fn rows(&self, values: &[ArrayRef]) -> datafusion::error::Result<Option<arrow::row::Rows>> {
        let Some(column) = values.first() else {
            return Err(datafusion::error::DataFusionError::Internal("MIN/MAX without an argument".into()));
        };
        if column.null_count() == column.len() {
            return Ok(None);
        }
        Ok(Some(self.converter.convert_columns(std::slice::from_ref(column))?))
    }
}

impl Accumulator for MultisetExtreme {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        let column = &values[0];
        if let Some(rows) = self.rows(values)? {
            add_to_multiset(&mut self.values, &rows, column);
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        let column = &values[0];
        match self.rows(values)? {
            Some(rows) => remove_from_multiset(&mut self.values, &rows, column, "MIN/MAX"),
            None => Ok(()),
        }
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> datafusion::error::Result<ScalarValue> {
        let extreme = if self.max { self.values.keys().next_back() } else { self.values.keys().next() };
        let Some(row) = extreme else {
            return ScalarValue::try_from(&self.data_type);
        };
        let columns = self.converter.convert_rows([row.row()])?;
        ScalarValue::try_from_array(&columns[0], 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.converter.size() + self.values.keys().map(|r| r.as_ref().len() + 48).sum::<usize>()
    }

    /// The multiset: its distinct values and how many rows hold each, as two lists.
    fn state(&mut self) -> datafusion::error::Result<Vec<ScalarValue>> {
        multiset_state(&self.values, Some(&self.converter), &self.data_type)
    }

    /// Adds the multisets of [`MultisetExtreme::state`]s.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::error::Result<()> {
        for (values, counts) in multiset_states(states, "MIN/MAX")? {
            let rows = self.converter.convert_columns(&[values])?;
            for (row, count) in rows.iter().zip(counts.values()) {
                *self.values.entry(row.owned()).or_insert(0) += count;
            }
        }
        Ok(())
    }
}

/// `values` with the empty lists of type Null (a DISTINCT aggregate's, before its first value
/// told it its type) made empty lists of the type the others have, so they make one array.
fn typed_lists(values: Vec<ScalarValue>) -> Vec<ScalarValue> {
    let inner = |value: &ScalarValue| match value {
        ScalarValue::List(list) => match list.data_type() {
            DataType::List(field) => Some(field.data_type().clone()),
            _ => None,
        },
        _ => None,
    };
    let Some(typed) = values.iter().filter_map(inner).find(|t| *t != DataType::Null) else { return values };
    values
        .into_iter()
        .map(|value| match inner(&value) {
            Some(DataType::Null) => {
                SingleRowListArrayBuilder::new(arrow::array::new_empty_array(&typed)).build_list_scalar()
            }
            _ => value,
        })
        .collect()
}

/// The `retracting` tables of several former instances as one batch. A DISTINCT state column
/// of an instance whose accumulators never held a value is a list of Null (see
/// [`typed_lists`]); it takes the list type another instance's column has.
fn one_batch(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let first = batches[0].schema();
    if batches.iter().any(|b| b.num_columns() != first.fields().len()) {
        return Err(StreamError::Config(
            "the checkpoint's instances hold the aggregate over an updating input in different forms".into(),
        ));
    }
    let null_list = |t: &DataType| matches!(t, DataType::List(f) if f.data_type() == &DataType::Null);
    let fields: Vec<Field> = first
        .fields()
        .iter()
        .enumerate()
        .map(|(c, field)| {
            let typed = batches.iter().map(|b| b.column(c).data_type()).find(|t| !null_list(t));
            field.as_ref().clone().with_data_type(typed.unwrap_or(field.data_type()).clone())
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batches = batches
        .iter()
        .map(|batch| {
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(column, field)| match column.data_type() == field.data_type() {
                    true => Ok(column.clone()),
                    false if null_list(column.data_type()) => Ok(arrow::compute::cast(column, field.data_type())?),
                    false => Err(StreamError::Config(format!(
                        "the checkpoint's instances hold column '{}' of the aggregate over an updating input as {} \
                         and {}",
                        field.name(),
                        column.data_type(),
                        field.data_type()
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// Whether a checkpoint can hold the state of an aggregation over an updating input: every
/// call but a DISTINCT one of several arguments (a DISTINCT aggregate keeps the multiset of its
/// one argument's values for the checkpoint, see [`CountedDistinct`]).
pub fn check_checkpointable(spec: &AggregateSpec) -> std::result::Result<(), String> {
    match spec.aggregates.iter().find(|call| call.function.is_distinct() && call.function.expressions().len() != 1) {
        Some(call) => Err(format!(
            "{}(DISTINCT ...) of several arguments over an updating input cannot be checkpointed yet",
            call.function.fun().name().to_ascii_uppercase()
        )),
        None => Ok(()),
    }
}

/// One group: its accumulators, how many rows it holds, and what was emitted for it last.
struct Group {
    accumulators: Vec<Box<dyn Accumulator>>,
    rows: i64,
    emitted: Option<Vec<ScalarValue>>,
    changed: bool,
}

/// Aggregation state over a changelog input. See the [module docs](self).
pub struct RetractingAggregator {
    spec: Arc<AggregateSpec>,
    keys: RowConverter,
    index: HashMap<Box<[u8]>, u32>,
    key_rows: Vec<OwnedRow>,
    groups: Vec<Group>,
    changed_list: Vec<u32>,
    output_schema: SchemaRef,
}

impl RetractingAggregator {
    /// Memory the keys (twice: rows and index), accumulators and emitted values hold.
    pub fn state_bytes(&self) -> usize {
        let keys: usize = self.key_rows.iter().map(|k| 2 * k.as_ref().len() + 64).sum();
        let groups: usize = self
            .groups
            .iter()
            .map(|g| {
                g.accumulators.iter().map(|a| a.size()).sum::<usize>()
                    + g.emitted.iter().flatten().map(ScalarValue::size).sum::<usize>()
                    + size_of::<Group>()
            })
            .sum();
        keys + groups
    }

    pub fn new(spec: Arc<AggregateSpec>) -> Result<Self> {
        if spec.outputs.iter().any(|o| !matches!(o, GroupOutput::Key(_))) {
            return Err(StreamError::Internal("aggregation over an updating input with window columns".into()));
        }
        for call in &spec.aggregates {
            check_retractable(call).map_err(StreamError::Config)?;
        }
        let keys = RowConverter::new(spec.key_fields.iter().map(|f| SortField::new(f.data_type().clone())).collect())?;
        Ok(Self {
            keys,
            index: HashMap::new(),
            key_rows: Vec::new(),
            groups: Vec::new(),
            changed_list: Vec::new(),
            output_schema: with_op_column(&spec.output_schema),
            spec,
        })
    }

    /// Whether a flush would emit something.
    pub fn has_changes(&self) -> bool {
        !self.changed_list.is_empty()
    }

    /// Every group as a row of table `retracting`: its keys (`k0`, ...), how many rows it holds,
    /// whether it changed since the last flush, whether and what it last emitted (`e0`, ...,
    /// as the accumulators evaluated it) and each accumulator's state (`s0_0`, ...). See
    /// [`check_checkpointable`].
    pub fn snapshot(&mut self) -> Result<StateSnapshot> {
        check_checkpointable(&self.spec).map_err(StreamError::Config)?;
        let groups = self.groups.len();
        if groups == 0 {
            return Ok(StateSnapshot::default());
        }
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        if !self.spec.key_fields.is_empty() {
            let keys = self.keys.convert_rows(self.key_rows.iter().map(|row| row.row()))?;
            for (i, key) in keys.into_iter().enumerate() {
                fields.push(Field::new(format!("k{i}"), key.data_type().clone(), true));
                columns.push(key);
            }
        }
        fields.push(Field::new("rows", DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from_iter_values(self.groups.iter().map(|g| g.rows))));
        fields.push(Field::new("changed", DataType::Boolean, false));
        columns.push(Arc::new(BooleanArray::from_iter(self.groups.iter().map(|g| Some(g.changed)))));
        fields.push(Field::new("emitted", DataType::Boolean, false));
        columns.push(Arc::new(BooleanArray::from_iter(self.groups.iter().map(|g| Some(g.emitted.is_some())))));
        for (i, call) in self.spec.aggregates.iter().enumerate() {
            // A group that emitted nothing: a null of the type the accumulator evaluates to.
            let null = ScalarValue::try_from(retracting_accumulator(call)?.evaluate()?.data_type())?;
            let values = self.groups.iter().map(|g| g.emitted.as_ref().map_or(null.clone(), |e| e[i].clone()));
            let emitted = ScalarValue::iter_to_array(values)?;
            fields.push(Field::new(format!("e{i}"), emitted.data_type().clone(), true));
            columns.push(emitted);
        }
        for (i, call) in self.spec.aggregates.iter().enumerate() {
            // Reading a state may empty an accumulator: each is replaced by a fresh one that
            // merged the state.
            let mut states: Vec<Vec<ScalarValue>> = Vec::new();
            for group in &mut self.groups {
                let state = group.accumulators[i].state()?;
                let arrays = state.iter().map(|v| v.to_array()).collect::<datafusion::error::Result<Vec<_>>>()?;
                let mut fresh = retracting_accumulator(call)?;
                fresh.merge_batch(&arrays)?;
                group.accumulators[i] = fresh;
                states.resize_with(state.len(), Vec::new);
                for (column, value) in states.iter_mut().zip(state) {
                    column.push(value);
                }
            }
            for (j, values) in states.into_iter().enumerate() {
                let state = ScalarValue::iter_to_array(typed_lists(values))?;
                fields.push(Field::new(format!("s{i}_{j}"), state.data_type().clone(), true));
                columns.push(state);
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        Ok(StateSnapshot::single("retracting", vec![batch]))
    }

    /// Takes the groups of [`RetractingAggregator::snapshot`]s (after a change of parallelism:
    /// the groups this instance owns of every former instance's).
    pub fn restore(&mut self, state: &StateSnapshot) -> Result<()> {
        check_checkpointable(&self.spec).map_err(StreamError::Config)?;
        let batches = state.table("retracting");
        if batches.is_empty() {
            return Ok(());
        }
        let batch = one_batch(batches)?;
        let width = self.spec.key_fields.len();
        let column = |name: &str| {
            batch.column_by_name(name).cloned().ok_or_else(|| {
                StreamError::Config(format!(
                    "the checkpoint's state of the aggregate over an updating input has no column '{name}'; the query \
                     changed since it was taken"
                ))
            })
        };
        let keys = (0..width).map(|i| column(&format!("k{i}"))).collect::<Result<Vec<_>>>()?;
        let owned = match state.rescaled {
            Some((instance, parallelism)) => owned_rows(&keys, batch.num_rows(), instance, parallelism)?,
            None => vec![true; batch.num_rows()],
        };
        *self = Self::new(self.spec.clone())?;
        let key_rows = self.keys.convert_columns(&keys)?;
        let (rows, changed, emitted) = (column("rows")?, column("changed")?, column("emitted")?);
        let rows = rows.as_primitive_opt::<Int64Type>().ok_or_else(|| StreamError::Internal("rows".into()))?;
        let (changed, emitted) = (changed.as_boolean(), emitted.as_boolean());
        let calls = self.spec.aggregates.len();
        let emitted_values = (0..calls).map(|i| column(&format!("e{i}"))).collect::<Result<Vec<_>>>()?;
        let states: Vec<Vec<ArrayRef>> = (0..calls)
            .map(|i| {
                let names: Vec<String> = batch
                    .schema()
                    .fields()
                    .iter()
                    .filter(|f| f.name().starts_with(&format!("s{i}_")))
                    .map(|f| f.name().clone())
                    .collect();
                names.iter().map(|name| column(name)).collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        for row in (0..batch.num_rows()).filter(|&r| owned[r]) {
            let index =
                u32::try_from(self.groups.len()).map_err(|_| StreamError::Internal("more than 2^32 groups".into()))?;
            if width > 0 {
                let key = key_rows.row(row);
                if self.index.insert(Box::from(key.as_ref()), index).is_some() {
                    return Err(StreamError::Config("the checkpoint's group keys are not distinct".into()));
                }
                self.key_rows.push(key.owned());
            }
            let mut group = self.new_group()?;
            for (accumulator, state) in group.accumulators.iter_mut().zip(&states) {
                let state: Vec<ArrayRef> = state.iter().map(|column| column.slice(row, 1)).collect();
                accumulator.merge_batch(&state)?;
            }
            group.rows = rows.value(row);
            if emitted.value(row) {
                let values = emitted_values.iter().map(|column| ScalarValue::try_from_array(column, row));
                group.emitted = Some(values.collect::<datafusion::error::Result<_>>()?);
            }
            if changed.value(row) {
                group.changed = true;
                self.changed_list.push(index);
            }
            self.groups.push(group);
        }
        Ok(())
    }

    fn new_group(&self) -> Result<Group> {
        Ok(Group {
            accumulators: self.spec.aggregates.iter().map(retracting_accumulator).collect::<Result<_>>()?,
            rows: 0,
            emitted: None,
            changed: false,
        })
    }

    /// Applies a batch of changelog rows to the state.
    pub fn process_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let ops = batch
            .column_by_name(OP_COLUMN)
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int8Type>())
            .ok_or_else(|| StreamError::Internal("an updating input without its changelog column".into()))?;
        let inputs = BatchInputs::evaluate(&self.spec, batch)?;

        // Group of each row, interning new keys.
        let mut row_groups = Vec::with_capacity(n);
        if self.spec.key_fields.is_empty() {
            if self.groups.is_empty() {
                let group = self.new_group()?;
                self.groups.push(group);
            }
            row_groups.resize(n, 0u32);
        } else {
            let rows = self.keys.convert_columns(&inputs.keys)?;
            for row in rows.iter() {
                let group = match self.index.get(row.as_ref()) {
                    Some(&group) => group,
                    None => {
                        let group = u32::try_from(self.groups.len())
                            .map_err(|_| StreamError::Internal("more than 2^32 groups".into()))?;
                        self.index.insert(Box::from(row.as_ref()), group);
                        self.key_rows.push(row.owned());
                        let state = self.new_group()?;
                        self.groups.push(state);
                        group
                    }
                };
                row_groups.push(group);
            }
        }

        // Rows ordered by (group, additions before retractions), then applied a run at a time.
        let retracts = |i: usize| !ChangeOp::from_i8(ops.value(i)).is_ok_and(ChangeOp::is_addition);
        for i in 0..n {
            ChangeOp::from_i8(ops.value(i))?;
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&i| (row_groups[i as usize], retracts(i as usize)));
        let order_idx = UInt32Array::from(order.clone());
        let sorted_args: Vec<Vec<ArrayRef>> = inputs
            .args
            .iter()
            .map(|args| args.iter().map(|a| take(a.as_ref(), &order_idx, None)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<_, _>>()?;
        let sorted_filters: Vec<Option<ArrayRef>> = inputs
            .filters
            .iter()
            .map(|f| f.as_ref().map(|f| take(f, &order_idx, None)).transpose())
            .collect::<Result<_, _>>()?;

        let mut start = 0;
        while start < n {
            let first = order[start] as usize;
            let (group, retract) = (row_groups[first], retracts(first));
            let mut end = start + 1;
            while end < n && row_groups[order[end] as usize] == group && retracts(order[end] as usize) == retract {
                end += 1;
            }
            let len = end - start;
            let state = &mut self.groups[group as usize];
            for ((accumulator, args), filter_mask) in
                state.accumulators.iter_mut().zip(&sorted_args).zip(&sorted_filters)
            {
                let mut values: Vec<ArrayRef> = args.iter().map(|a| a.slice(start, len)).collect();
                if let Some(mask) = filter_mask {
                    let mask = mask.slice(start, len);
                    let mask = mask.as_boolean(); // the filter kernel takes NULL as false
                    if mask.true_count() == 0 {
                        continue;
                    }
                    values = values.iter().map(|v| filter(v.as_ref(), mask)).collect::<Result<_, _>>()?;
                }
                if retract {
                    accumulator.retract_batch(&values)?;
                } else {
                    accumulator.update_batch(&values)?;
                }
            }
            state.rows += if retract { -(len as i64) } else { len as i64 };
            if state.rows < 0 {
                return Err(StreamError::Internal("a group retracted more rows than it received".into()));
            }
            if !state.changed {
                state.changed = true;
                self.changed_list.push(group);
            }
            start = end;
        }
        Ok(())
    }

    /// Emits the changes since the last flush into `out`.
    pub fn flush(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.changed_list.is_empty() {
            return Ok(());
        }
        let mut changed = std::mem::take(&mut self.changed_list);
        changed.sort_unstable();
        let calls = self.spec.aggregates.len();
        let mut key_picks: Vec<u32> = Vec::new();
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::new(); calls];
        let mut ops: Vec<i8> = Vec::new();
        let mut push = |group: u32, row: &[ScalarValue], op: ChangeOp| {
            key_picks.push(group);
            for (column, value) in values.iter_mut().zip(row) {
                column.push(value.clone());
            }
            ops.push(op as i8);
        };
        for &group in &changed {
            let fresh = if self.groups[group as usize].rows == 0 { Some(self.new_group()?) } else { None };
            let state = &mut self.groups[group as usize];
            state.changed = false;
            if let Some(fresh) = fresh {
                // Every row was retracted: the group leaves the result and starts over.
                if let Some(old) = state.emitted.take() {
                    push(group, &old, ChangeOp::Delete);
                }
                *state = fresh;
                continue;
            }
            let new =
                state.accumulators.iter_mut().map(|a| a.evaluate()).collect::<datafusion::error::Result<Vec<_>>>()?;
            match state.emitted.take() {
                Some(old) if old == new => state.emitted = Some(old),
                Some(old) => {
                    push(group, &old, ChangeOp::UpdateBefore);
                    push(group, &new, ChangeOp::UpdateAfter);
                    state.emitted = Some(new);
                }
                None => {
                    push(group, &new, ChangeOp::Insert);
                    state.emitted = Some(new);
                }
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        let rows = ops.len();
        let keys = if self.spec.key_fields.is_empty() {
            Vec::new()
        } else {
            self.keys.convert_rows(key_picks.iter().map(|g| self.key_rows[*g as usize].row()))?
        };
        let value_fields = &self.output_schema.fields()[self.spec.outputs.len()..self.output_schema.fields().len() - 1];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output_schema.fields().len());
        for output in &self.spec.outputs {
            let GroupOutput::Key(i) = output else {
                return Err(StreamError::Internal("aggregation over an updating input with window columns".into()));
            };
            columns.push(keys.get(*i).cloned().ok_or_else(|| StreamError::Internal(format!("missing group key {i}")))?);
        }
        for (column, field) in values.into_iter().zip(value_fields) {
            let array = ScalarValue::iter_to_array(column)?;
            columns.push(if array.data_type() == field.data_type() {
                array
            } else {
                arrow::compute::cast(&array, field.data_type())?
            });
        }
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
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Float64Type, Int64Type, Schema};
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::min_max::max_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::{CastExpr, col};

    use super::*;
    use crate::operators::aggregate::updating::op_field;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)]))
    }

    /// `function(v)`, with `v` cast to DOUBLE for AVG (as the planner's type coercion does).
    fn call(function: Arc<AggregateUDF>, alias: &str) -> AggregateCall {
        let input = input_schema();
        let mut v = col("v", &input).expect("column v");
        if function.name() == "avg" {
            v = Arc::new(CastExpr::new(v, DataType::Float64, None));
        }
        let expr = AggregateExprBuilder::new(function, vec![v]).schema(input).alias(alias).build().expect("aggregate");
        AggregateCall::new(Arc::new(expr), None)
    }

    fn spec() -> Arc<AggregateSpec> {
        spec_of(vec![call(max_udaf(), "mx"), call(avg_udaf(), "av"), call(count_udaf(), "n"), call(sum_udaf(), "s")])
    }

    /// An aggregation of `calls` over [`input_schema`] grouped by `k`.
    fn spec_of(calls: Vec<AggregateCall>) -> Arc<AggregateSpec> {
        let input = input_schema();
        let mut fields = vec![Field::new("k", DataType::Utf8, true)];
        fields.extend(calls.iter().map(|c| c.function.field().as_ref().clone().with_nullable(true)));
        Arc::new(AggregateSpec {
            window: None,
            key_exprs: vec![col("k", &input).expect("column k")],
            key_fields: vec![Arc::new(Field::new("k", DataType::Utf8, true))],
            aggregates: calls,
            outputs: vec![GroupOutput::Key(0)],
            output_schema: Arc::new(Schema::new(fields)),
        })
    }

    fn batch(rows: &[(&str, Option<i64>, ChangeOp)]) -> RecordBatch {
        let mut fields: Vec<Field> = input_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(op_field());
        let keys: StringArray = rows.iter().map(|(k, _, _)| Some(*k)).collect();
        let values: Int64Array = rows.iter().map(|(_, v, _)| *v).collect();
        let ops = Int8Array::from(rows.iter().map(|(_, _, op)| *op as i8).collect::<Vec<_>>());
        RecordBatch::try_new(Arc::new(Schema::new(fields)), vec![Arc::new(keys), Arc::new(values), Arc::new(ops)])
            .expect("batch")
    }

    fn changes(agg: &mut RetractingAggregator) -> Vec<String> {
        let mut out = Vec::new();
        agg.flush(&mut out).expect("flush");
        let mut lines = Vec::new();
        for b in out {
            let k = b.column(0).as_string::<i32>();
            let mx = b.column(1).as_primitive::<Int64Type>();
            let av = b.column(2).as_primitive::<Float64Type>();
            let n = b.column(3).as_primitive::<Int64Type>();
            let s = b.column(4).as_primitive::<Int64Type>();
            let op = b.column(5).as_primitive::<arrow::datatypes::Int8Type>();
            for r in 0..b.num_rows() {
                let op = ChangeOp::from_i8(op.value(r)).expect("op").symbol();
                let mx = if mx.is_null(r) { "null".to_string() } else { mx.value(r).to_string() };
                lines.push(format!(
                    "{op} {} max={mx} avg={} n={} sum={}",
                    k.value(r),
                    av.value(r),
                    n.value(r),
                    s.value(r)
                ));
            }
        }
        lines
    }

    use ChangeOp::{Delete, Insert, UpdateAfter, UpdateBefore};

    #[test]
    fn retractions_undo_any_earlier_row_and_empty_groups_are_deleted() -> Result<()> {
        let mut agg = RetractingAggregator::new(spec())?;
        agg.process_batch(&batch(&[("a", Some(5), Insert), ("a", Some(9), Insert), ("b", Some(1), Insert)]))?;
        assert_eq!(changes(&mut agg), ["+I a max=9 avg=7 n=2 sum=14", "+I b max=1 avg=1 n=1 sum=1"]);
        // 9 is replaced by 3 (a retraction of the largest value, not the oldest).
        agg.process_batch(&batch(&[("a", Some(9), UpdateBefore), ("a", Some(3), UpdateAfter)]))?;
        assert_eq!(changes(&mut agg), ["-U a max=9 avg=7 n=2 sum=14", "+U a max=5 avg=4 n=2 sum=8"]);
        // b's only row leaves: b is deleted. A retraction before its addition in one batch.
        agg.process_batch(&batch(&[("b", Some(1), Delete), ("a", Some(5), UpdateBefore), ("a", Some(5), Insert)]))?;
        assert_eq!(changes(&mut agg), ["-D b max=1 avg=1 n=1 sum=1"]);
        assert!(!agg.has_changes());
        // b comes back from scratch.
        agg.process_batch(&batch(&[("b", Some(4), Insert), ("b", None, Insert)]))?;
        assert_eq!(changes(&mut agg), ["+I b max=4 avg=4 n=1 sum=4"]);
        Ok(())
    }

    #[test]
    fn functions_that_cannot_retract_are_refused() {
        let input = input_schema();
        let v = col("v", &input).expect("column v");
        let first = AggregateExprBuilder::new(datafusion::functions_aggregate::first_last::first_value_udaf(), vec![v])
            .schema(input)
            .alias("f")
            .build()
            .expect("FIRST_VALUE");
        let error = check_retractable(&AggregateCall::new(Arc::new(first), None)).expect_err("FIRST_VALUE");
        assert!(error.contains("FIRST_VALUE(...) over an updating input"), "{error}");
        assert!(check_retractable(&call(avg_udaf(), "a")).is_ok());
    }

    /// COUNT(DISTINCT v), SUM(DISTINCT v) and MAX(v) per `k`.
    fn distinct_spec() -> Arc<AggregateSpec> {
        let input = input_schema();
        let call = |function: Arc<AggregateUDF>, alias: &str, distinct: bool| {
            let v = col("v", &input).expect("column v");
            let builder = AggregateExprBuilder::new(function, vec![v]).schema(input.clone()).alias(alias);
            let expr = if distinct { builder.distinct() } else { builder }.build().expect("aggregate");
            AggregateCall::new(Arc::new(expr), None)
        };
        spec_of(vec![call(count_udaf(), "dn", true), call(sum_udaf(), "ds", true), call(max_udaf(), "mx", false)])
    }

    /// The rows a flush emits, each column as text.
    fn shown(agg: &mut RetractingAggregator) -> Vec<String> {
        let mut out = Vec::new();
        agg.flush(&mut out).expect("flush");
        let text = |b: &RecordBatch, c: usize, r: usize| {
            arrow::util::display::array_value_to_string(b.column(c), r).expect("a value as text")
        };
        out.iter()
            .flat_map(|b| {
                (0..b.num_rows())
                    .map(move |r| (0..b.num_columns()).map(|c| text(b, c, r)).collect::<Vec<_>>().join(" "))
            })
            .collect()
    }

    /// A snapshot taken at any point (after a flush or not, and taken twice) and restored into
    /// a fresh aggregator gives the same changes from then on as running straight through, over
    /// seeded random changelogs of additions and retractions of earlier rows (some NULL), for
    /// COUNT, SUM, AVG and MAX, and for COUNT and SUM DISTINCT.
    #[test]
    fn a_restored_aggregator_continues_as_the_original() -> Result<()> {
        use rand::{Rng, SeedableRng};
        for (spec, label) in [(spec as fn() -> Arc<AggregateSpec>, "plain"), (distinct_spec, "distinct")] {
            for seed in 0..40_u64 {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
                let mut held: Vec<(String, Option<i64>)> = Vec::new();
                let mut batches = Vec::new();
                for _ in 0..30 {
                    let mut rows: Vec<(String, Option<i64>, ChangeOp)> = Vec::new();
                    for _ in 0..rng.random_range(1..20) {
                        if !held.is_empty() && rng.random_bool(0.4) {
                            let (k, v) = held.swap_remove(rng.random_range(0..held.len()));
                            rows.push((k, v, if rng.random_bool(0.5) { UpdateBefore } else { Delete }));
                        } else {
                            let k = format!("k{}", rng.random_range(0..5));
                            // Few distinct values, so DISTINCT sees values held by several rows.
                            let v = rng.random_bool(0.9).then(|| rng.random_range(-8..8));
                            held.push((k.clone(), v));
                            rows.push((k, v, if rng.random_bool(0.5) { Insert } else { UpdateAfter }));
                        }
                    }
                    let rows: Vec<(&str, Option<i64>, ChangeOp)> =
                        rows.iter().map(|(k, v, op)| (k.as_str(), *v, *op)).collect();
                    batches.push(batch(&rows));
                }
                let cut = rng.random_range(0..batches.len());
                let (mut straight, mut resumed) =
                    (RetractingAggregator::new(spec())?, RetractingAggregator::new(spec())?);
                let (mut expected, mut actual) = (Vec::new(), Vec::new());
                for (i, batch) in batches.iter().enumerate() {
                    if i == cut {
                        let state = resumed.snapshot()?;
                        assert_eq!(resumed.snapshot()?, state, "{label} seed {seed}: a second snapshot differs");
                        resumed = RetractingAggregator::new(spec())?;
                        resumed.restore(&state)?;
                    }
                    straight.process_batch(batch)?;
                    resumed.process_batch(batch)?;
                    if rng.random_bool(0.5) {
                        expected.extend(shown(&mut straight));
                        actual.extend(shown(&mut resumed));
                    }
                }
                expected.extend(shown(&mut straight));
                actual.extend(shown(&mut resumed));
                assert!(!expected.is_empty());
                assert_eq!(actual, expected, "{label} seed {seed}, restored before batch {cut}");
            }
        }
        Ok(())
    }

    /// Instances restored together at another parallelism, one of whose DISTINCT accumulators
    /// never held a value (its state a list of Null), continue as one aggregator that saw
    /// every row.
    #[test]
    fn instances_whose_distinct_held_no_value_restore_together() -> Result<()> {
        let nulls = batch(&[("a", None, Insert), ("a", None, Insert)]);
        let values = batch(&[("b", Some(3), Insert), ("b", Some(3), Insert), ("b", Some(5), Insert)]);
        let (mut empty, mut typed) =
            (RetractingAggregator::new(distinct_spec())?, RetractingAggregator::new(distinct_spec())?);
        empty.process_batch(&nulls)?;
        typed.process_batch(&values)?;
        let (mut straight, mut restored) =
            (RetractingAggregator::new(distinct_spec())?, RetractingAggregator::new(distinct_spec())?);
        straight.process_batch(&nulls)?;
        straight.process_batch(&values)?;
        let mut tables = empty.snapshot()?.tables;
        for (table, batches) in typed.snapshot()?.tables {
            tables.iter_mut().find(|(t, _)| *t == table).expect("the same table").1.extend(batches);
        }
        restored.restore(&StateSnapshot { tables, rescaled: Some((0, 1)) })?;
        let more = batch(&[("b", Some(3), Delete), ("a", Some(7), Insert)]);
        straight.process_batch(&more)?;
        restored.process_batch(&more)?;
        let (mut expected, mut actual) = (shown(&mut straight), shown(&mut restored));
        expected.sort();
        actual.sort();
        assert_eq!(actual, expected);
        Ok(())
    }
}
