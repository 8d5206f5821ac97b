//! Operators: what runs inside pipeline tasks.
//!
//! - [`stateless`]: filters and projections over `PhysicalExpr`s, fused into chains.
//! - [`watermark`]: computes the hidden `_ts`/`_wm` columns at the source.
//! - [`exchange`]: routes rows to aggregation instances by hash of the GROUP BY keys.
//! - [`aggregate`]: event-time TUMBLE/HOP and updating aggregation over DataFusion accumulators.
//! - [`join`]: the regular, interval and lookup equi-joins of two append-only streams.
//! - [`window_join`]: two windowed inputs joined per window (INNER, LEFT, RIGHT, FULL).
//! - [`over`]: OVER aggregations and LAG over event time, one output row per input row.
//! - [`top_n`]: the updating Top-N (`ROW_NUMBER()` under `rn <= N`), a changelog.

pub mod aggregate;
pub mod exchange;
pub mod join;
pub mod over;
pub mod semi_join;
pub mod stateless;
pub mod top_n;
pub mod watermark;
pub mod window_join;
