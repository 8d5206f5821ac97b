//! Aggregation: event-time windows (`TUMBLE`, `HOP`, `SESSION`: see [`session`]) and updating
//! aggregates without a window.
//!
//! Both keep DataFusion [`GroupValues`] for the GROUP BY keys and one [`GroupsAccumulator`] per
//! aggregate call; [`AggregateSpec`] says what to compute and [`AggregateSpec::window`] which of
//! the two operators runs it. Updating aggregates are described in [`updating`], and
//! aggregates over an updating input (retractions) in [`retract`].
//!
//! # Windows: the contract
//!
//! Windows are `[start, end)` with `start` a multiple of the slide (epoch-aligned) and
//! `end = start + size`; TUMBLE is HOP with `slide = size`. For each row `r` with event time
//! `ts` and `wm(r) = max(ts of rows before r) - delay` (the hidden `_wm` column):
//!
//! - `r` joins every window `W` with `W.start <= ts < W.end` **and** `wm(r) < W.end`;
//! - a row that joins no window is *late*: it is dropped and counted;
//! - `W` is emitted once the watermark reaches `W.end`, and never again.
//!
//! Because the decision uses `wm(r)`, which the source computes from the rows before `r`, the
//! result depends only on the order of the input, not on batch boundaries or on how rows are
//! spread over aggregation instances.
//!
//! CUMULATE windows follow the same rule: its windows are `[p, p + k * step)` for each period `p`
//! of `size` and `k = 1 ..= size / step`, and a row joins those that contain it and end after
//! `wm(r)`. SESSION windows ([`session`]) judge a row as OVER does: late iff `ts < wm(r)`; the
//! sessions are those a batch query finds over the rows that are not late.
//!
//! # Windows over window results
//!
//! A window's results leave with `_ts = window_time = W.end - 1` and no watermark of their own
//! (`_wm` = [`WATERMARK_MIN`](crate::time::WATERMARK_MIN)). A window `V` over them (a TVF with
//! `DESCRIPTOR(window_time)`, or a GROUP BY of `window_start`/`window_end`, which runs as a TUMBLE
//! of one pane of `W`'s shape so that `V.end = W.end`) judges them by its operator watermark
//! alone: the minimum over the instances that send them. Each instance sends `W`'s results
//! before the watermark that closed `W`, so that minimum is below `W.end <= V.end` when they
//! arrive: **window results are never late** for the next window, and the second level sees
//! exactly the first level's results, whatever the parallelism and batch size. Late rows are
//! dropped (and counted) only where rows first meet a window.
//!
//! # Windows: how
//!
//! State is kept per *pane* of `gcd(size, slide)` milliseconds; every window is a whole number of
//! panes and every row updates exactly one pane, so the cost per row does not grow with
//! `size / slide`. A pane holds DataFusion [`GroupValues`] for the GROUP BY keys and one
//! [`GroupsAccumulator`] per aggregate call.
//!
//! Rows from one source arrive in its order, so `_wm` never decreases within an instance's
//! input. A batch is cut into *segments* of rows whose `_wm` lies between the same two window
//! ends; before a segment is added, every window ending at or before its watermark is emitted.
//! That is exactly "`r` joins `W` iff `wm(r) < W.end`", applied a segment at a time.
//!
//! Rows of a `UNION ALL`, and of a source with several partitions (Kafka), come from several
//! inputs whose `_wm`s are not comparable: there a row is still judged by its own `_wm`, but
//! windows close only when the operator watermark (the minimum over the inputs) passes their
//! end, so a fast input never closes a window a slow one still feeds. No row that is not late
//! can arrive after that: its input sends the watermark closing `W` only after every row with
//! `wm(r) < W.end`. A HOP row may then be late for some of its windows (those ending at or
//! before its own `_wm`) while they are still open for other inputs' rows: it goes to a pane
//! with a *floor*, the first window start it may join, and a window merges only the panes whose
//! floor is at or before its start. Each batch holds rows of one input (one partition), so
//! `_wm` still rises within a batch.
//!
//! ```text
//!   TUMBLE: pane == window.  emit = GroupValues::emit + GroupsAccumulator::evaluate, pane dropped.
//!   HOP:    emit window W = merge of panes in [W.start, W.end):
//!             pane live state ──state()──▶ sealed chunk (Arrow arrays)   (once per pane, again
//!                                                                          only after late rows)
//!             sealed chunks ──merge_batch()──▶ fresh accumulators ──evaluate()──▶ rows of W
//!           a pane is dropped when the last window containing it has been emitted.
//! ```
//!
//! # Two phases
//!
//! With several instances, a TUMBLE, HOP or CUMULATE window over event time is aggregated in two
//! phases: each batch is pre-aggregated before the hash exchange, per segment, pane and key
//! ([`local`]), and the instances merge those partial rows into their panes. The partial rows
//! carry what the contract above needs (pane, watermark, how many rows they stand for), so the
//! results and the late-row counts are those of one phase.
//!
//! [`GroupValues`]: datafusion::physical_plan::aggregates::group_values::GroupValues
//! [`GroupsAccumulator`]: datafusion::logical_expr::GroupsAccumulator

mod inputs;
pub mod local;
pub mod operator;
mod pane;
pub mod retract;
mod session;
mod spec;
pub mod updating;
mod window;

pub use local::{LocalWindowAggregate, ROWS_COLUMN, represented_rows};
pub use operator::{UpdatingOperator, WindowOperator, aggregate_operator};
pub use retract::{RetractingAggregator, check_retractable};
pub use session::SessionOperator;
pub use spec::{AggregateCall, AggregateSpec, GroupOutput, WindowKind, WindowShape};
pub use updating::{ChangeOp, UpdatingAggregator};
pub use window::WindowAggregator;
