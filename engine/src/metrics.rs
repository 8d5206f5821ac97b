//! Counters a running pipeline keeps, shared between its tasks.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Live counters of one pipeline. Cheap to update from any task.
#[derive(Debug)]
pub struct PipelineMetrics {
    /// Rows produced by the source (after decoding, before filters).
    pub rows_in: AtomicU64,
    /// Rows handed to the sink.
    pub rows_out: AtomicU64,
    /// Rows dropped because every window they belong to had already closed.
    pub late_rows: AtomicU64,
    /// Of the late rows, those written to the late-rows sink (`SET 'late-rows.sink'`).
    pub late_rows_routed: AtomicU64,
    /// Malformed input records skipped under `'format.on-error' = 'skip'`.
    pub bad_records: AtomicU64,
    /// JSON records read that lacked a declared field (read as NULL).
    pub rows_missing_fields: AtomicU64,
    /// Source requests that failed after their retries (an HTTP poll), logged and counted.
    pub source_errors: AtomicU64,
    /// The last watermark the source announced (ms since the epoch).
    pub watermark: AtomicI64,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        Self {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            late_rows: AtomicU64::new(0),
            late_rows_routed: AtomicU64::new(0),
            bad_records: AtomicU64::new(0),
            rows_missing_fields: AtomicU64::new(0),
            source_errors: AtomicU64::new(0),
            watermark: AtomicI64::new(crate::time::WATERMARK_MIN),
        }
    }
}

impl PipelineMetrics {
    /// A copy of the counters at this moment.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            rows_in: self.rows_in.load(Ordering::Relaxed),
            rows_out: self.rows_out.load(Ordering::Relaxed),
            late_rows: self.late_rows.load(Ordering::Relaxed),
            late_rows_routed: self.late_rows_routed.load(Ordering::Relaxed),
            bad_records: self.bad_records.load(Ordering::Relaxed),
            rows_missing_fields: self.rows_missing_fields.load(Ordering::Relaxed),
            source_errors: self.source_errors.load(Ordering::Relaxed),
            // Counted by the sink itself (ConnectorMetrics::retries).
            sink_retries: 0,
            watermark: self.watermark.load(Ordering::Relaxed),
        }
    }

    /// Adds `n` to one of the counters.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A point-in-time copy of [`PipelineMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub rows_in: u64,
    pub rows_out: u64,
    pub late_rows: u64,
    pub late_rows_routed: u64,
    pub bad_records: u64,
    /// JSON records read that lacked a declared field (read as NULL).
    pub rows_missing_fields: u64,
    /// Source requests that failed after their retries.
    pub source_errors: u64,
    /// Writes the sink retried.
    pub sink_retries: u64,
    pub watermark: i64,
}

impl MetricsSnapshot {
    /// Adds the error counters of `other` (a connector's) to these.
    pub fn add_errors(&mut self, other: &MetricsSnapshot) {
        self.bad_records += other.bad_records;
        self.rows_missing_fields += other.rows_missing_fields;
        self.source_errors += other.source_errors;
        self.sink_retries += other.sink_retries;
    }
}

/// The counters one table of a pipeline (a source, or the sink) keeps of its connector's errors.
#[derive(Debug)]
pub struct ConnectorMetrics {
    /// The table's name.
    pub table: String,
    /// Its connector (`kafka`, `file`, ...).
    pub connector: String,
    /// `source` or `sink`.
    pub role: &'static str,
    /// Only the error counters are kept here: bad records, rows missing fields, failed source
    /// requests.
    pub counters: std::sync::Arc<PipelineMetrics>,
    /// A sink's count of writes it retried, once the sink is open (it updates it while it
    /// retries, so an outage shows while it lasts).
    pub retries: std::sync::Arc<std::sync::OnceLock<std::sync::Arc<AtomicU64>>>,
}

/// A point-in-time copy of a [`ConnectorMetrics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorSnapshot {
    pub table: String,
    pub connector: String,
    pub role: &'static str,
    pub bad_records: u64,
    pub rows_missing_fields: u64,
    pub source_errors: u64,
    pub sink_retries: u64,
}

impl ConnectorMetrics {
    pub fn snapshot(&self) -> ConnectorSnapshot {
        let m = self.counters.snapshot();
        ConnectorSnapshot {
            table: self.table.clone(),
            connector: self.connector.clone(),
            role: self.role,
            bad_records: m.bad_records,
            rows_missing_fields: m.rows_missing_fields,
            source_errors: m.source_errors,
            sink_retries: self.retries.get().map_or(0, |r| r.load(Ordering::Relaxed)),
        }
    }
}

/// Counters of one node of a pipeline's graph — a source or a stage, over all its instances.
#[derive(Debug, Default)]
pub struct OperatorMetrics {
    /// What the node is: `source flows`, `window aggregate`, `join`, ...
    pub name: String,
    /// Rows read (a source, after decoding) or received (a stage).
    pub rows_in: AtomicU64,
    /// Rows sent on, after the stateless operators fused into the node.
    pub rows_out: AtomicU64,
    /// Rows dropped as late.
    pub late_rows: AtomicU64,
    /// Of those, per input of a join (left, right).
    pub late_by_input: [AtomicU64; 2],
    /// Nanoseconds its instances waited for room downstream: its output edge was full.
    pub backpressured_ns: AtomicU64,
    /// How long its instances took to process each input batch.
    pub batch_seconds: Histogram,
    /// The estimated size of each instance's state in bytes, as last sampled.
    state_bytes: std::sync::Mutex<Vec<u64>>,
}

/// Upper bounds (seconds) of [`Histogram`]'s buckets.
pub const BATCH_SECONDS_BUCKETS: [f64; 10] = [0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];

/// A histogram of durations over [`BATCH_SECONDS_BUCKETS`], cheap to update from any task.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; BATCH_SECONDS_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BATCH_SECONDS_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BATCH_SECONDS_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations per bucket of [`BATCH_SECONDS_BUCKETS`] (not cumulative), then above them.
    pub buckets: [u64; BATCH_SECONDS_BUCKETS.len() + 1],
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl OperatorMetrics {
    pub fn new(name: String) -> Self {
        Self { name, ..Self::default() }
    }

    /// Records instance `instance`'s state size.
    pub fn set_state_bytes(&self, instance: usize, bytes: usize) {
        let mut sizes = self.state_bytes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if sizes.len() <= instance {
            sizes.resize(instance + 1, 0);
        }
        sizes[instance] = bytes as u64;
    }

    /// A copy of the counters; `label` is the node's number (as `EXPLAIN` numbers them, from 1).
    pub fn snapshot(&self, label: usize) -> OperatorSnapshot {
        OperatorSnapshot {
            label,
            name: self.name.clone(),
            rows_in: self.rows_in.load(Ordering::Relaxed),
            rows_out: self.rows_out.load(Ordering::Relaxed),
            late_rows: self.late_rows.load(Ordering::Relaxed),
            late_by_input: [0, 1].map(|i| self.late_by_input[i].load(Ordering::Relaxed)),
            backpressured_ns: self.backpressured_ns.load(Ordering::Relaxed),
            batch_seconds: self.batch_seconds.snapshot(),
            state_bytes: self.state_bytes.lock().map(|s| s.iter().sum()).unwrap_or_default(),
        }
    }
}

/// A point-in-time copy of [`OperatorMetrics`].
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSnapshot {
    /// The node's number, as `EXPLAIN` shows it (`[3]`): inputs before the nodes they feed.
    pub label: usize,
    pub name: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub late_rows: u64,
    /// A join's late rows per input (left, right).
    pub late_by_input: [u64; 2],
    /// Nanoseconds its instances (together) waited for room downstream.
    pub backpressured_ns: u64,
    /// How long its instances took per input batch (stages only).
    pub batch_seconds: HistogramSnapshot,
    /// The estimated size of its state over all instances, in bytes, as last sampled.
    pub state_bytes: u64,
}

impl std::fmt::Display for OperatorSnapshot {
    /// `[3] window aggregate: 8000 rows in, 24 out, 2 late`; a join's late rows per input:
    /// `[3] interval join: 8000 rows in, 500 out, 12 late (left 10, right 2)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {} rows in, {} out", self.label, self.name, self.rows_in, self.rows_out)?;
        if self.late_rows > 0 {
            write!(f, ", {} late", self.late_rows)?;
            let [left, right] = self.late_by_input;
            if left + right > 0 {
                write!(f, " (left {left}, right {right})")?;
            }
        }
        Ok(())
    }
}
