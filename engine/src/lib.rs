//! # streamsql-engine: the dataflow runtime
//!
//! This crate runs *pipelines*: dataflow graphs shaped as trees. Sources (each with a fused
//! chain of stateless operators) feed stages — window and updating aggregations, joins — each
//! spread over `parallelism` instances and followed by its own fused chain; stages feed further
//! stages, and everything ends in one sink. `UNION ALL` is several nodes feeding the same input.
//! Everything that moves is an Arrow [`RecordBatch`](arrow::record_batch::RecordBatch).
//!
//! ```text
//!  source tasks (1 per source,        stage instances (tokio tasks)                 sink task
//!  blocking threads)                  ┌──────────────────────────┐
//!  ┌─────────────────────────────┐    │ join #0 + post chain     │ ─┐  ┌─────────────────┐
//!  │ bids: next_batch → _ts, _wm │─┬─▶│ join #1 + post chain     │ ─┼─▶│ aggregate #0..n │─┐  ┌──────┐
//!  │  → chain (WHERE, project)   │ │  └──────────────────────────┘  │  └─────────────────┘ ├─▶│ Sink │
//!  └─────────────────────────────┘ │hash on each side's join keys   │hash on GROUP BY keys │  └──────┘
//!  ┌─────────────────────────────┐ │                                                      │
//!  │ auctions: …                 │─┘                            (or straight to the sink)─┘
//!  └─────────────────────────────┘
//! ```
//!
//! Edges are bounded channels of [`Message`](message::Message)s (`Batch | Watermark | Barrier | End`), one per
//! (upstream instance, downstream instance), so a slow sink slows every source. See
//! [`pipeline`] for the graph and [`runtime`] for how it runs.
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
//! A source that reads several partitions (a Kafka topic;
//! [`Connector::partitioned`](connector::Connector::partitioned)) runs as `parallelism` tasks, each
//! given its share of the partitions; its batches hold one partition's rows each
//! ([`Source::pull`](connector::Source::pull)), `_wm` comes from the rows before each row *in
//! its partition*, and the watermark sent on is the minimum over the partitions
//! ([`operators::watermark::PartitionWatermarks`]; an idle timeout lets a quiet partition stop
//! holding it back). So the output does not depend on how partitions interleave.
//!
//! Window results carry their `window_time` as `_ts`, so a window (or a GROUP BY of
//! `window_start, window_end`) over them is windowed too; they are never late for it, being
//! judged by the operator watermark only (their `_wm` is "none"). A join's results have no event
//! time yet and cannot be windowed again.
//!
//! The contract per operator, each row judged by its own `_wm`: a row joins window `W` iff
//! `W.start <= ts < W.end` and `wm(r) < W.end` (windowed aggregations, [window
//! joins](operators::window_join)); for an [interval join](operators::join::IntervalBounds) a
//! row is late iff `ts < wm(r)`; regular and lookup joins have no late rows. Late rows are
//! counted, and routed per input to the pipeline's late-rows sink when it has one.
//!
//! ## Where to start reading
//!
//! - [`connector`]: the ports ([`connector::Source`], [`connector::Sink`], the registry) that
//!   connectors implement and the SQL layer looks up.
//! - [`pipeline`]: what a lowered query looks like: a tree of [`pipeline::Node`]s into a sink.
//! - [`operator`] and [`task`]: the operator contract and the loop that drives it.
//! - [`runtime`]: how a pipeline runs, stops and reports.
//! - [`operators::aggregate`]: windowed and updating aggregation over DataFusion accumulators.
//! - [`operators::join`]: regular (inner and outer, over append-only or updating inputs),
//!   interval and lookup equi-joins; [`operators::window_join`]: window joins.
//! - [`operators::aggregate::retract`]: aggregations over updating inputs (retractions).
//! - [`live`]: live tables, pipeline results kept in memory for queries while they run.

pub mod checkpoint;
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
pub mod state_store;
pub mod task;
pub mod time;
pub mod types;

pub use error::{Result, StreamError};
