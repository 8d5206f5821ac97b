//! Flink's built-in scalar functions, where they differ from DataFusion's.
//!
//! Users write Flink SQL, and some of DataFusion's functions share a name with Flink's but not
//! its meaning: `date_format` takes strftime patterns and copies `'yyyy-MM-dd'` through as
//! text, `log(x)` is base 10, `regexp_replace` replaces only the first match, `concat` skips
//! NULLs. Such a query would run and give a wrong answer with no error. This module gives
//! DataFusion's SQL planner Flink's functions under Flink's names instead:
//!
//! ```text
//!  Catalog (ContextProvider) ──get_function_meta(name)──▶ SessionState functions
//!                                                          ├─ DataFusion's built-ins
//!                                                          ├─ ours, same name: shadow them
//!                                                          └─ unsupported::NotYet stubs: refuse
//!                                                             at plan time, naming the function
//!  SUBSTRING(s FROM a FOR b) ──planner::FlinkExprPlanner──▶ our SUBSTR
//!  analyzer (after type coercion) ──rewrite::LazyBranches──▶ IF(c, a, b) as CASE (lazy branches)
//! ```
//!
//! [`registry::FLINK_FUNCTIONS`] lists every Flink built-in with how we support it (ours,
//! DataFusion's with the same semantics, or not yet); `docs/FUNCTIONS.md` is generated from it
//! (see [`docs`]). Each family of functions has a file: [`time`] (formatting and parsing
//! timestamps), [`time_fields`] (`HOUR`, `YEAR`, ...), [`time_arith`] (`TIMESTAMPADD`,
//! `TIMESTAMPDIFF`), [`string`], [`regex`], [`math`], [`json`], [`conditional`], [`hash`].
//!
//! Two hooks sit outside the catalog, for whoever owns the parser and the session:
//! [`calls::reject_unsupported_calls`] refuses an unsupported function where it is written (the
//! catalog's refusal has no position), and [`time_arith::unit_keyword_to_literal`] lets Flink's
//! `TIMESTAMPADD(DAY, ...)` through (sqlparser reads `DAY` as a column).
//!
//! Conventions all of them follow, as Flink does: a NULL argument gives NULL (unless Flink says
//! otherwise, e.g. `IS_DIGIT`); a pattern argument written as a literal is checked when the query
//! is planned; timestamps without a time zone are read and written as UTC wall-clock time (the
//! session time zone of Flink's documented examples).

mod args;
pub mod calls;
mod conditional;
pub mod docs;
pub mod forecast;
mod hash;
mod java_format;
mod json;
mod math;
mod planner;
pub mod python;
mod regex;
pub mod registry;
mod rewrite;
mod string;
mod time;
pub mod time_arith;
mod time_fields;
pub mod udf;
pub mod unsupported;
pub mod watermark;

use std::sync::Arc;

use datafusion::execution::{FunctionRegistry, SessionState, SessionStateBuilder, SessionStateDefaults};
use datafusion::logical_expr::ScalarUDF;
use datafusion::logical_expr::planner::ExprPlanner;

pub use registry::{Category, FLINK_FUNCTIONS, FlinkFunction, Support};

/// DataFusion's session state with Flink's functions: ours shadow DataFusion's of the same
/// name, unsupported Flink built-ins refuse to plan, `SUBSTRING` syntax and `IF` follow Flink.
pub fn session_state() -> SessionState {
    with_flink_functions(SessionStateBuilder::new())
}

/// [`session_state`] on what `builder` already has (its configuration and runtime): how
/// every SQL that streamsql runs as a batch (queries over live tables, Flight SQL, a `SELECT`
/// without a table) gets Flink's functions, so no query path falls back to DataFusion's
/// namesakes and their other meanings.
pub fn with_flink_functions(builder: SessionStateBuilder) -> SessionState {
    let mut planners: Vec<Arc<dyn ExprPlanner>> = vec![Arc::new(planner::FlinkExprPlanner::new())];
    planners.extend(SessionStateDefaults::default_expr_planners());
    let mut state = builder.with_default_features().with_expr_planners(planners).build();
    for udf in scalar_functions() {
        // Replaces DataFusion's function (or alias) of the same name; never fails.
        let _previous = state.register_udf(Arc::new(udf));
    }
    // Flink's VARIANCE is the sample variance.
    let variance =
        datafusion::functions_aggregate::variance::var_samp_udaf().as_ref().clone().with_aliases(["variance"]);
    let _previous = state.register_udaf(Arc::new(variance));
    let _previous = state.register_udaf(Arc::new(forecast::forecast()));
    state.add_analyzer_rule(Arc::new(rewrite::LazyBranches));
    state
}

/// Our functions and the stubs of the Flink built-ins not supported yet.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    let mut udfs = Vec::new();
    udfs.extend(time::functions());
    udfs.extend(time_fields::functions());
    udfs.extend(time_arith::functions());
    udfs.extend(string::functions());
    udfs.extend(regex::functions());
    udfs.extend(math::functions());
    udfs.extend(json::functions());
    udfs.extend(conditional::functions());
    udfs.extend(hash::functions());
    udfs.push(watermark::function());
    udfs.extend(unsupported::stubs());
    udfs
}
