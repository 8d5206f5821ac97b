//! What flows along the edges of a running pipeline.

use arrow::record_batch::RecordBatch;

/// One message on a dataflow edge.
///
/// ```text
///   Batch* ─┬─▶ Watermark(t) ─▶ Batch* ─▶ Barrier(e) ─▶ Batch* ─▶ ... ─▶ End
///           └─ watermarks never decrease; End means "bounded input finished":
///              receivers treat it as Watermark(+∞), then stop.
/// ```
///
/// A `Barrier(e)` separates the rows before checkpoint `e` from those after it; an operator
/// with several inputs aligns them (see [`crate::operator`]).
///
/// A channel that closes without `End` means the pipeline was cancelled or failed upstream:
/// receivers stop without emitting open windows.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows, with the hidden event-time columns where the edge carries them.
    Batch(RecordBatch),
    /// No later row on this edge has `_wm` below this value (milliseconds since the epoch).
    Watermark(i64),
    /// The sender has no rows for now (every partition of a source reader is idle past
    /// `'source.idle-timeout'`): receivers leave this edge out of their minimum watermark until
    /// its next batch or watermark. Rows that then come for windows already closed are late.
    Idle,
    /// Checkpoint `e`: everything before this message belongs to it.
    Barrier(u64),
    /// The input is exhausted.
    End,
}
