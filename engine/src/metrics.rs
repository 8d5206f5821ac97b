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
    pub watermark: i64,
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
}

impl OperatorMetrics {
    pub fn new(name: String) -> Self {
        Self { name, ..Self::default() }
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
        }
    }
}

/// A point-in-time copy of [`OperatorMetrics`].
#[derive(Debug, Clone, PartialEq, Eq)]
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
