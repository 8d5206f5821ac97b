//! # streamsql-engine: the dataflow runtime
//!
//! This crate runs *pipelines*: a source, a fused chain of stateless operators, an optional
//! aggregation (event-time windows, or an updating aggregate emitting a changelog) spread over
//! `parallelism` instances, and a sink. Everything that
//! moves is an Arrow [`RecordBatch`](arrow::record_batch::RecordBatch).
//!
//! ```text
//!  source task (1 per source, blocking thread)           aggregation instances (tokio tasks)   sink task
//!  ┌──────────────────────────────────────────────┐     ┌────────────────────────────┐
//!  │ Source::next_batch                           │ ──▶ │ WindowAggregator #0 + post │ ──┐
//!  │  → WatermarkAssigner (adds _ts, _wm columns)  │hash │  chain (HAVING, project)   │   │  ┌──────────┐
//!  │  → pre chain (WHERE, projections)             │ ──▶ │ WindowAggregator #1 + post │ ──┼─▶│ Sink     │
//!  │  → HashRouter on GROUP BY keys               │ ... │ ...                        │ ──┘  └──────────┘
//!  └──────────────────────────────────────────────┘     └────────────────────────────┘
//! ```
//!
//! Edges are bounded channels of [`Message`]s (`Batch | Watermark | Barrier | End`), so a slow
//! sink slows the source. Pipelines without aggregation send the pre chain's output straight to
//! the sink.
//!
//! ## One operator contract
//!
//! Every stateful operator implements [`operator::Operator`] (rows and watermarks per input,
//! end, processing-time timers, `snapshot`/`restore` at aligned checkpoint barriers), and one
//! loop, [`task::run_operator`], drives any of them: it owns the channels, takes the minimum
//! watermark over inputs, aligns barriers and sends what the operator emitted. The protocol is
//! drawn in [`operator`]. Keyed edges route rows through fixed key groups
//! ([`operators::exchange`]), so keyed state can later move between instances.
//!
//! ## Event time
//!
//! Every batch leaving a source carries two hidden trailing columns (see [`time`]): `_ts`, the
//! event time of the row, and `_wm`, the source watermark *before* that row
//! (`max(ts of earlier rows) - delay`). Window operators use `_wm` to decide, row by row, which
//! windows a row may still join, so results do not depend on batch boundaries or on how rows are
//! spread over aggregation instances. See [`operators::aggregate`] for the contract.
//!
//! ## Where to start reading
//!
//! - [`connector`]: the ports ([`connector::Source`], [`connector::Sink`], the registry) that
//!   connectors implement and the SQL layer looks up.
//! - [`pipeline`]: what a lowered query looks like ([`pipeline::PipelineSpec`]).
//! - [`operator`] and [`task`]: the operator contract and the loop that drives it.
//! - [`runtime`]: how a pipeline runs, stops and reports.
//! - [`operators::aggregate`]: windowed and updating aggregation over DataFusion accumulators.
//! - [`live`]: live tables, pipeline results kept in memory for queries while they run.

pub mod connector;
pub mod error;
pub mod limits;
pub mod live;
pub mod message;
pub mod metrics;
pub mod operator;
pub mod operators;
pub mod pipeline;
pub mod runtime;
pub mod task;
pub mod time;
pub mod types;

pub use error::{Result, StreamError};
