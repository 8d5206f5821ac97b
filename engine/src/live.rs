//! Live tables: pipeline results kept in memory, for ad-hoc queries while the pipelines run.
//!
//! A [`LiveCatalog`] is shared by the `live` sink connector (which writes) and the Flight SQL
//! server (which reads). A table keeps its rows in one of two layouts, chosen by what reaches it:
//!
//! - **append**: windowed (append-only) results are appended batch by batch, bounded by a
//!   retention in event time (rows whose time column is older than the newest by more than
//!   `max_age`) and/or a row cap (the newest `max_rows`);
//! - **keyed**: updating results (a changelog) and tables with a PRIMARY KEY. With a key, `+I`/`+U`
//!   upsert and `-U`/`-D` delete by key; without one, rows are a multiset and `-U`/`-D` take out
//!   one equal row.
//!
//! Readers see a consistent snapshot: [`LiveCatalog::snapshot`] takes every table at one instant,
//! and each written batch is applied whole. Writers of different tables do not block each other;
//! a snapshot blocks writers only while it clones (append) or materializes (keyed: a filter of
//! the last materialized rows plus the rows changed since, cached until the next change) each
//! table.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::{Array, AsArray, BooleanArray, Int8Array, RecordBatch};
use arrow::compute::{filter_record_batch, max};
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimestampMillisecondType};
use arrow::row::{OwnedRow, RowConverter, SortField};

use crate::error::{Result, StreamError};
use crate::operators::aggregate::ChangeOp;

/// How much of an append-only table is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep rows whose `column` (a TIMESTAMP) is at most this many ms older than the newest.
    pub max_age: Option<(usize, i64)>,
    /// Keep at most this many of the newest rows.
    pub max_rows: Option<usize>,
}

/// How a live table is declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveTableOptions {
    /// Indices of PRIMARY KEY columns; empty when there is none.
    pub primary_key: Vec<usize>,
    pub retention: Retention,
    /// How the web console draws the table.
    pub chart: Chart,
}

/// The kinds of chart the web console draws a live table as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChartKind {
    /// A line per series over a time column.
    Line,
    /// Stacked areas per series over a time column.
    Area,
    /// A bar per category: an updating aggregate's latest value per key.
    Bar,
    /// The latest value of one column, with a sparkline of its history.
    Value,
    /// Rows only.
    #[default]
    Table,
}

impl ChartKind {
    pub const ALL: [ChartKind; 5] =
        [ChartKind::Line, ChartKind::Area, ChartKind::Bar, ChartKind::Value, ChartKind::Table];

    /// Its name in `WITH ('chart' = ...)`.
    pub fn name(self) -> &'static str {
        match self {
            ChartKind::Line => "line",
            ChartKind::Area => "area",
            ChartKind::Bar => "bar",
            ChartKind::Value => "value",
            ChartKind::Table => "table",
        }
    }
}

/// A live table's chart: its kind and the columns it draws, resolved when the table is declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chart {
    pub kind: ChartKind,
    /// The horizontal axis (line, area: a TIMESTAMP column) or the categories (bar).
    pub x: Option<String>,
    /// The value drawn.
    pub y: Option<String>,
    /// The column whose values are separate lines or areas, each in its own colour.
    pub series: Option<String>,
}

/// The tables of one process, by name.
pub struct LiveCatalog {
    tables: RwLock<BTreeMap<String, Arc<LiveTable>>>,
    /// Held shared while a batch is applied, exclusively while a snapshot is taken.
    gate: Arc<RwLock<()>>,
    /// Counts the batches applied to any table, for readers waiting on changes.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for LiveCatalog {
    fn default() -> Self {
        Self { tables: RwLock::default(), gate: Arc::default(), changes: Arc::new(tokio::sync::watch::Sender::new(0)) }
    }
}

/// One table in a snapshot.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl TableSnapshot {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

fn poisoned() -> StreamError {
    StreamError::Internal("a live table lock was poisoned by a panic".into())
}

impl LiveCatalog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The table `name`, created empty if it does not exist. A second pipeline writing to the
    /// same table must agree on its schema and options.
    pub fn get_or_create(&self, name: &str, schema: SchemaRef, options: LiveTableOptions) -> Result<Arc<LiveTable>> {
        let mut tables = self.tables.write().map_err(|_| poisoned())?;
        if let Some(table) = tables.get(name) {
            if table.schema.fields() != schema.fields() || table.options != options {
                return Err(StreamError::Config(format!(
                    "live table '{name}' already exists with other columns or options"
                )));
            }
            return Ok(table.clone());
        }
        let table = Arc::new(LiveTable {
            name: name.to_string(),
            schema,
            options,
            gate: self.gate.clone(),
            state: Mutex::new(State::Empty),
            version: AtomicU64::new(0),
            changes: self.changes.clone(),
            writers: AtomicUsize::new(0),
        });
        tables.insert(name.to_string(), table.clone());
        Ok(table)
    }

    /// Names and schemas of every table.
    pub fn tables(&self) -> Vec<(String, SchemaRef)> {
        match self.tables.read() {
            Ok(tables) => tables.values().map(|t| (t.name.clone(), t.schema.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The table `name`, if it exists.
    pub fn table(&self, name: &str) -> Option<Arc<LiveTable>> {
        self.tables.read().ok()?.get(name).cloned()
    }

    /// A receiver that sees a change whenever a batch has been applied to any table.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every table's rows at one instant.
    pub fn snapshot(&self) -> Result<Vec<TableSnapshot>> {
        let tables: Vec<Arc<LiveTable>> = self.tables.read().map_err(|_| poisoned())?.values().cloned().collect();
        let _exclusive = self.gate.write().map_err(|_| poisoned())?;
        tables
            .iter()
            .map(|table| {
                let batches = table.state.lock().map_err(|_| poisoned())?.batches(&table.schema)?;
                Ok(TableSnapshot { name: table.name.clone(), schema: table.schema.clone(), batches })
            })
            .collect()
    }
}

/// One live table. Writes come from sinks; reads go through [`LiveCatalog::snapshot`].
pub struct LiveTable {
    name: String,
    schema: SchemaRef,
    options: LiveTableOptions,
    gate: Arc<RwLock<()>>,
    state: Mutex<State>,
    /// Batches applied so far.
    version: AtomicU64,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Sinks writing to the table now ([`LiveTable::writer`]).
    writers: AtomicUsize,
}

/// A sink's hold on a [`LiveTable`] it writes to; counted while it lives.
pub struct Writer {
    table: Arc<LiveTable>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.table.writers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::ops::Deref for Writer {
    type Target = LiveTable;
    fn deref(&self) -> &LiveTable {
        &self.table
    }
}

/// A live table's rows as a checkpoint holds them: how they are laid out (`None`: nothing
/// written yet; `Some(true)`: kept by key) and the rows.
pub struct LiveRows {
    pub keyed: Option<bool>,
    pub batches: Vec<RecordBatch>,
}

enum State {
    /// Nothing written yet: the first batch decides the layout.
    Empty,
    Append(AppendRows),
    Keyed(Box<KeyedRows>),
}

impl LiveTable {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn options(&self) -> &LiveTableOptions {
        &self.options
    }

    /// How many batches have changed the table; rises with every change.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// This table's rows now, with the version they are at.
    pub fn snapshot(&self) -> Result<(u64, Vec<RecordBatch>)> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        let version = self.version();
        Ok((version, state.batches(&self.schema)?))
    }

    /// A hold for a sink that writes to the table.
    pub fn writer(self: &Arc<Self>) -> Writer {
        self.writers.fetch_add(1, Ordering::AcqRel);
        Writer { table: self.clone() }
    }

    /// Sinks writing to the table now.
    pub fn writers(&self) -> usize {
        self.writers.load(Ordering::Acquire)
    }

    /// The table's rows and layout, for a checkpoint of the one pipeline writing to it.
    pub fn checkpoint_rows(&self) -> Result<LiveRows> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        let keyed = match &*state {
            State::Empty => None,
            State::Append(_) => Some(false),
            State::Keyed(_) => Some(true),
        };
        Ok(LiveRows { keyed, batches: state.batches(&self.schema)? })
    }

    /// Replaces the table's rows with those of a [`LiveTable::checkpoint_rows`] (a restart
    /// resuming from a checkpoint): appended again, or inserted by key.
    pub fn restore_rows(&self, rows: LiveRows) -> Result<()> {
        let _shared = self.gate.read().map_err(|_| poisoned())?;
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        let mut restored = match rows.keyed {
            None => State::Empty,
            Some(false) => State::Append(AppendRows::default()),
            Some(true) => State::Keyed(Box::new(KeyedRows::new(&self.schema, &self.options.primary_key)?)),
        };
        for batch in rows.batches.iter().filter(|b| b.num_rows() > 0) {
            match &mut restored {
                State::Append(append) => append.push(batch.clone(), &self.options.retention)?,
                State::Keyed(keyed) => keyed.apply(batch, None)?,
                State::Empty => {
                    return Err(StreamError::Config(format!(
                        "live table '{}': the checkpoint holds rows but no layout",
                        self.name
                    )));
                }
            }
        }
        *state = restored;
        self.version.fetch_add(1, Ordering::AcqRel);
        drop(state);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Appends rows (append-only results), or upserts them when the table has a key.
    pub fn append(&self, batch: &RecordBatch) -> Result<()> {
        self.apply(batch, None)
    }

    /// Applies a changelog: `ops` holds a [`ChangeOp`] per row.
    pub fn apply_changes(&self, batch: &RecordBatch, ops: &Int8Array) -> Result<()> {
        self.apply(batch, Some(ops))
    }

    fn apply(&self, batch: &RecordBatch, ops: Option<&Int8Array>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let _shared = self.gate.read().map_err(|_| poisoned())?;
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        if matches!(*state, State::Empty) {
            *state = if ops.is_some() || !self.options.primary_key.is_empty() {
                if self.options.retention != Retention::default() {
                    return Err(StreamError::Config(format!(
                        "live table '{}': 'retention' and 'max-rows' bound append-only (windowed) results, but this \
                         table is kept by key (it has a PRIMARY KEY or receives updating results); remove them",
                        self.name
                    )));
                }
                State::Keyed(Box::new(KeyedRows::new(&self.schema, &self.options.primary_key)?))
            } else {
                State::Append(AppendRows::default())
            };
        }
        let applied = match (&mut *state, ops) {
            (State::Append(rows), None) => rows.push(batch.clone(), &self.options.retention),
            (State::Keyed(rows), ops) => rows.apply(batch, ops),
            (State::Append(_), Some(_)) => Err(StreamError::Config(format!(
                "live table '{}' holds append-only results and cannot also take updating results",
                self.name
            ))),
            (State::Empty, _) => Err(StreamError::Internal("live table layout not chosen".into())),
        };
        if applied.is_ok() {
            self.version.fetch_add(1, Ordering::AcqRel);
            drop(state);
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        applied
    }
}

impl State {
    fn batches(&mut self, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
        match self {
            State::Empty => Ok(Vec::new()),
            State::Append(rows) => Ok(rows.batches.iter().cloned().collect()),
            State::Keyed(rows) => rows.materialize(schema),
        }
    }
}

#[derive(Default)]
struct AppendRows {
    batches: VecDeque<RecordBatch>,
    rows: usize,
    /// Newest value of the retention column.
    newest: Option<i64>,
}

impl AppendRows {
    fn push(&mut self, batch: RecordBatch, retention: &Retention) -> Result<()> {
        self.rows += batch.num_rows();
        if let Some((column, _)) = retention.max_age {
            let newest = time_values(&batch, column)?.and_then(|t| max(&t));
            self.newest = self.newest.max(newest);
        }
        self.batches.push_back(batch);
        if let (Some((column, age)), Some(newest)) = (retention.max_age, self.newest) {
            let cutoff = newest.saturating_sub(age);
            while let Some(front) = self.batches.front() {
                let Some(times) = time_values(front, column)? else { break };
                let keep: BooleanArray = times.iter().map(|t| Some(t.is_none_or(|t| t >= cutoff))).collect();
                if keep.true_count() == front.num_rows() {
                    break;
                }
                let kept = filter_record_batch(front, &keep)?;
                self.rows -= front.num_rows() - kept.num_rows();
                self.batches.pop_front();
                if kept.num_rows() > 0 {
                    self.batches.push_front(kept);
                    break;
                }
            }
        }
        if let Some(cap) = retention.max_rows {
            while self.rows > cap {
                let Some(front) = self.batches.pop_front() else { break };
                let excess = self.rows - cap;
                if front.num_rows() > excess {
                    self.batches.push_front(front.slice(excess, front.num_rows() - excess));
                    self.rows = cap;
                } else {
                    self.rows -= front.num_rows();
                }
            }
        }
        Ok(())
    }
}

/// The retention column as epoch milliseconds.
fn time_values(batch: &RecordBatch, column: usize) -> Result<Option<arrow::array::Int64Array>> {
    let array = batch.column(column);
    Ok(match array.data_type() {
        DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, _) => {
            Some(array.as_primitive::<TimestampMillisecondType>().reinterpret_cast::<Int64Type>())
        }
        DataType::Timestamp(..) => {
            let cast = arrow::compute::cast(array, &crate::time::timestamp_type())?;
            Some(cast.as_primitive::<TimestampMillisecondType>().reinterpret_cast::<Int64Type>())
        }
        _ => None,
    })
}

/// Where a row of a keyed table is: in the materialized base batch, or among rows added since.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Base(u32),
    Added(u32),
}

/// Rows kept by key, stored so that a snapshot costs little more than the changes since the
/// last one: a materialized `base` batch with a liveness mask, plus rows added since (in
/// arrow-row form). A snapshot filters the base and converts the added rows; once the changes
/// outgrow a quarter of the base, they are folded into a new base.
struct KeyedRows {
    /// Encodes the key columns (every column when there is no primary key).
    keys: RowConverter,
    key_columns: Vec<usize>,
    has_primary_key: bool,
    /// Encodes whole rows.
    rows: RowConverter,
    /// key → the rows with that key (at most one with a primary key; equal rows without).
    index: HashMap<OwnedRow, Vec<Slot>>,
    base: RecordBatch,
    base_alive: Vec<bool>,
    base_dead: usize,
    added: Vec<OwnedRow>,
    added_alive: Vec<bool>,
    /// The snapshot, until the next change.
    cache: Option<Vec<RecordBatch>>,
}

impl KeyedRows {
    fn new(schema: &SchemaRef, primary_key: &[usize]) -> Result<Self> {
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        let key_columns = if primary_key.is_empty() { all.clone() } else { primary_key.to_vec() };
        let sort_fields = |columns: &[usize]| -> Vec<SortField> {
            columns.iter().map(|&i| SortField::new(schema.field(i).data_type().clone())).collect()
        };
        Ok(Self {
            keys: RowConverter::new(sort_fields(&key_columns))?,
            rows: RowConverter::new(sort_fields(&all))?,
            key_columns,
            has_primary_key: !primary_key.is_empty(),
            index: HashMap::new(),
            base: RecordBatch::new_empty(schema.clone()),
            base_alive: Vec::new(),
            base_dead: 0,
            added: Vec::new(),
            added_alive: Vec::new(),
            cache: None,
        })
    }

    fn kill(&mut self, slot: Slot) {
        match slot {
            Slot::Base(i) => {
                self.base_alive[i as usize] = false;
                self.base_dead += 1;
            }
            Slot::Added(i) => self.added_alive[i as usize] = false,
        }
    }

    fn apply(&mut self, batch: &RecordBatch, ops: Option<&Int8Array>) -> Result<()> {
        let key_arrays: Vec<_> = self.key_columns.iter().map(|&i| batch.column(i).clone()).collect();
        let keys = self.keys.convert_columns(&key_arrays)?;
        let rows = self.rows.convert_columns(batch.columns())?;
        for i in 0..batch.num_rows() {
            let op = match ops {
                Some(ops) => ChangeOp::from_i8(ops.value(i))?,
                None => ChangeOp::Insert,
            };
            let key = keys.row(i).owned();
            if op.is_addition() {
                if self.has_primary_key
                    && let Some(old) = self.index.remove(&key)
                {
                    old.into_iter().for_each(|slot| self.kill(slot));
                }
                let slot = Slot::Added(self.added.len() as u32);
                self.added.push(rows.row(i).owned());
                self.added_alive.push(true);
                self.index.entry(key).or_default().push(slot);
            } else if let Some(slots) = self.index.get_mut(&key) {
                // With a key every row of it goes; without, one equal row.
                let gone: Vec<Slot> =
                    if self.has_primary_key { std::mem::take(slots) } else { slots.pop().into_iter().collect() };
                if slots.is_empty() {
                    self.index.remove(&key);
                }
                gone.into_iter().for_each(|slot| self.kill(slot));
            }
        }
        self.cache = None;
        Ok(())
    }

    fn materialize(&mut self, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
        if let Some(batches) = &self.cache {
            return Ok(batches.clone());
        }
        let base = if self.base_dead == 0 {
            self.base.clone()
        } else {
            filter_record_batch(&self.base, &BooleanArray::from(self.base_alive.clone()))?
        };
        let live_added = self.added.iter().zip(&self.added_alive).filter(|(_, alive)| **alive).map(|(r, _)| r.row());
        let columns = self.rows.convert_rows(live_added)?;
        let added = if columns.is_empty() || columns[0].is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            RecordBatch::try_new(schema.clone(), columns)?
        };
        let changes = self.added.len() + self.base_dead;
        if changes > (self.base.num_rows() / 4).max(4096) {
            self.compact(&base, &added)?;
        }
        let batches: Vec<RecordBatch> = [base, added].into_iter().filter(|b| b.num_rows() > 0).collect();
        self.cache = Some(batches.clone());
        Ok(batches)
    }

    /// Makes `base` + `added` (the live rows, in that order) the new base and renumbers slots.
    fn compact(&mut self, base: &RecordBatch, added: &RecordBatch) -> Result<()> {
        let renumber = |alive: &[bool], first: u32| -> Vec<u32> {
            let mut next = first;
            alive
                .iter()
                .map(|a| {
                    let at = next;
                    next += u32::from(*a);
                    at
                })
                .collect()
        };
        let base_at = renumber(&self.base_alive, 0);
        let added_at = renumber(&self.added_alive, base.num_rows() as u32);
        for slots in self.index.values_mut() {
            for slot in slots.iter_mut() {
                *slot = Slot::Base(match *slot {
                    Slot::Base(i) => base_at[i as usize],
                    Slot::Added(i) => added_at[i as usize],
                });
            }
        }
        self.base = arrow::compute::concat_batches(&base.schema(), [base, added])?;
        self.base_alive = vec![true; self.base.num_rows()];
        self.base_dead = 0;
        self.added.clear();
        self.added_alive.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]))
    }

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        let k: StringArray = rows.iter().map(|r| Some(r.0)).collect();
        let n: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
        RecordBatch::try_new(schema(), vec![Arc::new(k), Arc::new(n)]).expect("batch")
    }

    fn rows(catalog: &LiveCatalog) -> Vec<(String, i64)> {
        let snapshot = catalog.snapshot().expect("snapshot");
        let mut out = Vec::new();
        for b in &snapshot[0].batches {
            let k = b.column(0).as_string::<i32>();
            let n = b.column(1).as_primitive::<Int64Type>();
            out.extend((0..b.num_rows()).map(|r| (k.value(r).to_string(), n.value(r))));
        }
        out.sort();
        out
    }

    fn owned(rows: &[(&str, i64)]) -> Vec<(String, i64)> {
        rows.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn changelog_without_key_retracts_equal_rows() -> Result<()> {
        let catalog = LiveCatalog::new();
        let table = catalog.get_or_create("t", schema(), LiveTableOptions::default())?;
        let (i, ub, ua) = (ChangeOp::Insert as i8, ChangeOp::UpdateBefore as i8, ChangeOp::UpdateAfter as i8);
        table.apply_changes(&batch(&[("a", 1), ("b", 1)]), &Int8Array::from(vec![i, i]))?;
        table.apply_changes(&batch(&[("a", 1), ("a", 2)]), &Int8Array::from(vec![ub, ua]))?;
        assert_eq!(rows(&catalog), owned(&[("a", 2), ("b", 1)]));
        // A lone -U (a key that stopped passing HAVING) removes the row.
        table.apply_changes(&batch(&[("b", 1)]), &Int8Array::from(vec![ub]))?;
        assert_eq!(rows(&catalog), owned(&[("a", 2)]));
        assert!(table.append(&batch(&[("c", 1)])).is_ok(), "a keyed table upserts plain rows");
        Ok(())
    }

    #[test]
    fn keyed_tables_stay_right_across_compactions() -> Result<()> {
        let catalog = LiveCatalog::new();
        let options = LiveTableOptions { primary_key: vec![0], ..Default::default() };
        let table = catalog.get_or_create("t", schema(), options)?;
        let names: Vec<String> = (0..6000).map(|i| format!("k{i}")).collect();
        let mut expected = BTreeMap::new();
        for round in 0..4_i64 {
            // Each round upserts every key and deletes every third; snapshots in between compact.
            let upserts: Vec<(&str, i64)> = names.iter().map(|k| (k.as_str(), round)).collect();
            table.append(&batch(&upserts))?;
            assert_eq!(catalog.snapshot()?[0].num_rows(), names.len());
            let gone: Vec<(&str, i64)> = names.iter().step_by(3).map(|k| (k.as_str(), round)).collect();
            table.apply_changes(&batch(&gone), &Int8Array::from(vec![ChangeOp::Delete as i8; gone.len()]))?;
            expected = names.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, k)| (k.clone(), round)).collect();
            let actual: BTreeMap<String, i64> = rows(&catalog).into_iter().collect();
            assert_eq!(actual, expected, "round {round}");
        }
        assert_eq!(expected.len(), 4000);
        Ok(())
    }

    #[test]
    fn retention_of_a_keyed_table_is_refused() -> Result<()> {
        let catalog = LiveCatalog::new();
        let options =
            LiveTableOptions { retention: Retention { max_rows: Some(3), max_age: None }, ..Default::default() };
        let table = catalog.get_or_create("t", schema(), options)?;
        let err = table.apply_changes(&batch(&[("a", 1)]), &Int8Array::from(vec![0])).expect_err("refused");
        assert!(err.to_string().contains("kept by key"), "{err}");
        Ok(())
    }

    #[test]
    fn primary_key_upserts() -> Result<()> {
        let catalog = LiveCatalog::new();
        let options = LiveTableOptions { primary_key: vec![0], ..Default::default() };
        let table = catalog.get_or_create("t", schema(), options)?;
        table.append(&batch(&[("a", 1), ("b", 1)]))?;
        table.append(&batch(&[("a", 5)]))?;
        assert_eq!(rows(&catalog), owned(&[("a", 5), ("b", 1)]));
        table.apply_changes(&batch(&[("b", 9)]), &Int8Array::from(vec![ChangeOp::Delete as i8]))?;
        assert_eq!(rows(&catalog), owned(&[("a", 5)]));
        Ok(())
    }

    #[test]
    fn append_tables_keep_the_newest_rows() -> Result<()> {
        let catalog = LiveCatalog::new();
        let options =
            LiveTableOptions { retention: Retention { max_rows: Some(3), max_age: None }, ..Default::default() };
        let table = catalog.get_or_create("t", schema(), options)?;
        table.append(&batch(&[("a", 1), ("b", 2)]))?;
        table.append(&batch(&[("c", 3), ("d", 4)]))?;
        assert_eq!(rows(&catalog), owned(&[("b", 2), ("c", 3), ("d", 4)]));
        let err = table.apply_changes(&batch(&[("a", 1)]), &Int8Array::from(vec![0])).expect_err("mixed");
        assert!(err.to_string().contains("append-only"), "{err}");
        Ok(())
    }

    #[test]
    fn retention_by_event_time() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("t", crate::time::timestamp_type(), true)]));
        let catalog = LiveCatalog::new();
        let retention = Retention { max_age: Some((0, 1_000)), max_rows: None };
        let table = catalog.get_or_create("w", schema.clone(), LiveTableOptions { retention, ..Default::default() })?;
        let times = |t: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(TimestampMillisecondArray::from(t))]).expect("batch")
        };
        table.append(&times(vec![0, 500]))?;
        table.append(&times(vec![1_000, 1_200]))?;
        table.append(&times(vec![1_600]))?;
        assert_eq!(catalog.snapshot()?[0].num_rows(), 3, "0 and 500 are more than 1 s older than 1.6 s");
        Ok(())
    }
}
