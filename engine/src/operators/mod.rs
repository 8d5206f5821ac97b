//! Operators: what runs inside pipeline tasks.
//!
//! - [`stateless`]: filters and projections over `PhysicalExpr`s, fused into chains.
//! - [`watermark`]: computes the hidden `_ts`/`_wm` columns at the source.
//! - [`exchange`]: routes rows to aggregation instances by hash of the GROUP BY keys.
//! - [`window`]: event-time TUMBLE/HOP aggregation over DataFusion accumulators.

pub mod aggregate;
pub mod exchange;
pub mod stateless;
pub mod watermark;
