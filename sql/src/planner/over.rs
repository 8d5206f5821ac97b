//! `OVER (PARTITION BY ... ORDER BY ts ...)`: a DataFusion `Window` node → an OVER stage.
//!
//! What runs on a stream is what Flink runs: window functions ordered by the event-time column
//! ascending, over a bounded frame that ends at the current row (`RANGE BETWEEN INTERVAL '1'
//! HOUR PRECEDING AND CURRENT ROW`, `ROWS BETWEEN 10 PRECEDING AND CURRENT ROW`), and `LAG`.
//! Everything else is refused here with what to write instead.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::{BinaryExpr, NullTreatment};
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Expr, LogicalPlan, Operator, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_planner::create_window_expr;
use streamsql_engine::operators::aggregate::WindowKind;
use streamsql_engine::operators::over::{OverSpec, Slide};
use streamsql_engine::operators::top_n::TopNSpec;

use super::lower::{Plan, PlannedStage, Stream, lower, nullable, prepare, window_without_aggregation};
use crate::error::{SqlError, SqlResult};

/// How a bounded frame is written, for error messages.
const FRAME_EXAMPLE: &str =
    "RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW, or ROWS BETWEEN 10 PRECEDING AND CURRENT ROW";

/// The largest ROWS frame or LAG offset: rows kept per partition.
const MAX_HISTORY_ROWS: u64 = 100_000;

thread_local! {
    /// `ROW_NUMBER()` columns bounded by a `WHERE rn <= N` above them, by the address of their
    /// `Window` node and the column's name: found before the filter's input is lowered.
    static ROW_NUMBER_LIMITS: RefCell<HashMap<(usize, String), u64>> = RefCell::new(HashMap::new());
}

/// Notes the `ROW_NUMBER()` column `filter` bounds (`rn <= N`, `rn < N`, `rn = 1`), if any, for
/// the `Window` node that computes it: a Top-N.
pub fn note_row_number_limit(filter: &datafusion::logical_expr::Filter) {
    for conjunct in split_conjunction(&filter.predicate) {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = conjunct else { continue };
        let (column, op, value) = match (uncast(left), uncast(right)) {
            (Expr::Column(c), Expr::Literal(v, _)) => (c, *op, v),
            (Expr::Literal(v, _), Expr::Column(c)) => match op.swap() {
                Some(op) => (c, op, v),
                None => continue,
            },
            _ => continue,
        };
        let Ok(ScalarValue::Int64(Some(n))) = value.cast_to(&DataType::Int64) else { continue };
        let limit = match op {
            Operator::LtEq => n,
            Operator::Lt => n.saturating_sub(1),
            Operator::Eq if n == 1 => 1,
            _ => continue,
        };
        if limit < 1 {
            continue;
        }
        if let Some(key) = row_number_source(&filter.input, &column.name) {
            ROW_NUMBER_LIMITS.with(|limits| {
                let mut limits = limits.borrow_mut();
                let entry = limits.entry(key).or_insert(limit as u64);
                *entry = (*entry).min(limit as u64);
            });
        }
    }
}

/// `expr` without the casts type coercion put around it.
fn uncast(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast(cast) => uncast(&cast.expr),
        Expr::TryCast(cast) => uncast(&cast.expr),
        other => other,
    }
}

/// The `Window` node and column computing `ROW_NUMBER()` as column `name` of `plan`, followed
/// through aliases, projections that pass it on, and filters.
fn row_number_source(plan: &LogicalPlan, name: &str) -> Option<(usize, String)> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => row_number_source(&alias.input, name),
        LogicalPlan::Filter(filter) => row_number_source(&filter.input, name),
        LogicalPlan::Projection(projection) => {
            let index = projection.schema.fields().iter().position(|f| f.name() == name)?;
            match projection.expr.get(index)?.clone().unalias() {
                Expr::Column(c) => row_number_source(&projection.input, &c.name),
                _ => None,
            }
        }
        LogicalPlan::Window(window) => {
            let function = window
                .window_expr
                .iter()
                .find(|e| e.schema_name().to_string() == name || matches!(e, Expr::Alias(a) if a.name == name))?;
            let is_row_number = matches!(function.clone().unalias(), Expr::WindowFunction(f) if f.fun.name().eq_ignore_ascii_case("row_number"));
            is_row_number.then(|| (window as *const _ as usize, name.to_string()))
        }
        _ => None,
    }
}

/// Forgets every noted bound: they hold for the plan being lowered only (a later plan's node
/// may be allocated where one of them was).
pub fn forget_row_number_limits() {
    ROW_NUMBER_LIMITS.with(|limits| limits.borrow_mut().clear());
}

/// The bound noted for the `ROW_NUMBER()` column `name` of `window`.
fn row_number_limit(window: &datafusion::logical_expr::Window, name: &str) -> Option<u64> {
    ROW_NUMBER_LIMITS.with(|limits| limits.borrow().get(&(window as *const _ as usize, name.to_string())).copied())
}

/// Lowers a `Window` node: its input, then an OVER stage over it.
pub fn lower_over(window: &datafusion::logical_expr::Window) -> SqlResult<Stream> {
    let stream = lower(&window.input)?;
    if stream.window.is_some() {
        return Err(window_without_aggregation());
    }
    if stream.updating {
        return Err(SqlError::new(
            "OVER (...) over an updating result (an aggregation without a window) is not supported; \
             apply it to the input rows, or to the results of a windowed aggregation",
        ));
    }
    let schema = window.input.schema();
    let time = stream.time_column.filter(|_| stream.timed);
    let no_time = || {
        SqlError::new(
            "OVER (...) needs rows with an event time to ORDER BY, and this input has none (join results and \
             projections that drop the WATERMARK column have none); apply it to a table with a WATERMARK, to window \
             results that keep window_time, or within windows (PARTITION BY window_start, window_end, ...)",
        )
    };
    let time_name = time.map(|t| schema.field(t).name().clone()).unwrap_or_default();
    let mut partition: Option<Vec<Expr>> = None;
    let mut functions = Vec::new();
    let mut history_rows = 0u64;
    let mut history_ms = 0i64;
    let mut lead_rows = 0u64;
    let mut sliding = Vec::new();
    // The window columns that identify one window: any of them for TUMBLE and HOP, only
    // window_end and window_time for CUMULATE and SESSION (whose windows share starts).
    let window_ends: Vec<usize> = stream
        .window_result
        .map(|r| {
            let identifying = match r.shape.kind {
                WindowKind::Tumble | WindowKind::Hop => &r.columns[..],
                WindowKind::Cumulate | WindowKind::Session => &r.columns[1..],
            };
            identifying.iter().flatten().copied().collect()
        })
        .unwrap_or_default();
    let (mut window_mode, mut time_mode) = (false, false);
    for expr in &window.window_expr {
        let (name, inner) = match expr {
            Expr::Alias(alias) => (alias.name.clone(), alias.expr.as_ref()),
            other => (other.schema_name().to_string(), other),
        };
        let mut slide = None;
        let Expr::WindowFunction(function) = inner else {
            return Err(SqlError::new(format!("internal: window expression {name} is not a window function")));
        };
        let WindowFunction { fun, params } = function.as_ref();
        let function_name = fun.name().to_lowercase();
        match &partition {
            None => partition = Some(params.partition_by.clone()),
            Some(first) if *first != params.partition_by => {
                return Err(SqlError::new(
                    "OVER clauses with different PARTITION BY in one SELECT are not supported yet; \
                     compute each in its own query or view",
                ));
            }
            Some(_) => {}
        }
        // PARTITION BY a window column of window results: each partition is one window's rows,
        // all complete once the watermark passes the window's end, so any order and any
        // function runs over the whole partition (window Top-N).
        let per_window = params
            .partition_by
            .iter()
            .any(|p| matches!(p, Expr::Column(c) if schema.index_of_column(c).is_ok_and(|i| window_ends.contains(&i))));
        if per_window {
            window_mode = true;
        } else {
            let time_order = time.is_some_and(|t| orders_by_time(&params.order_by, schema, t));
            if function_name == "row_number" && !params.order_by.is_empty() && !time_order {
                if let Some(limit) = row_number_limit(window, &name) {
                    if window.window_expr.len() > 1 {
                        return Err(SqlError::new(
                            "an updating Top-N (ROW_NUMBER() under WHERE rn <= N, not within windows) must be the \
                             only OVER (...) of its SELECT; compute the others in a query of their own",
                        ));
                    }
                    return lower_top_n(window, stream, params, limit);
                }
                return Err(SqlError::new(format!(
                    "ROW_NUMBER() OVER (PARTITION BY ... ORDER BY {}) over a whole stream numbers every row since \
                     the stream began; keep the top rows with WHERE rn <= N right above it (an updating Top-N), or \
                     rank within windows (PARTITION BY window_start, window_end, ...) over window results",
                    params.order_by.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
            let time = time.ok_or_else(no_time)?;
            check_order(&params.order_by, schema, time, &time_name, &function_name)?;
            time_mode = true;
            match fun {
                WindowFunctionDefinition::AggregateUDF(_) => {
                    let frame =
                        frame_history(&params.window_frame, &function_name, &mut history_rows, &mut history_ms)?;
                    // Slid row by row over an accumulator that can take rows back out, when
                    // nothing but the frame decides which rows it sees.
                    if params.filter.is_none() && !params.distinct {
                        slide = frame;
                    }
                }
                WindowFunctionDefinition::WindowUDF(_) => match function_name.as_str() {
                    "lag" | "lead" if params.null_treatment == Some(NullTreatment::IgnoreNulls) => {
                        return Err(SqlError::new(format!(
                            "{}(...) IGNORE NULLS over a stream is not supported (it may reach any number of rows \
                             back or ahead); filter the NULLs out in a subquery first",
                            function_name.to_uppercase()
                        )));
                    }
                    "lag" => history_rows = history_rows.max(lag_offset(&params.args)?),
                    "first_value" | "last_value" | "nth_value" => {
                        frame_history(&params.window_frame, &function_name, &mut history_rows, &mut history_ms)?;
                    }
                    "row_number" => match row_number_limit(window, &name) {
                        // Rows of a key before its last N are numbered past N either way.
                        Some(limit) => history_rows = history_rows.max(limit),
                        None => {
                            return Err(SqlError::new(
                                "ROW_NUMBER() OVER (... ORDER BY the event time) numbers every row of a key since the \
                                 stream began; keep the first rows per key with WHERE rn <= N (or rn = 1, \
                                 deduplication) right above it",
                            ));
                        }
                    },
                    // Rows wait for the rows after them (and hold the watermark back).
                    "lead" => lead_rows = lead_rows.max(lag_offset(&params.args)?),
                    other => {
                        return Err(SqlError::new(format!(
                            "{}() over a whole stream is not supported: over event time, OVER runs aggregate \
                             functions over a bounded frame, FIRST_VALUE, LAST_VALUE, NTH_VALUE, LAG, LEAD \
                             and ROW_NUMBER with WHERE rn <= N; any window function runs within windows \
                             (PARTITION BY window_start, window_end, ... over window results)",
                            other.to_uppercase()
                        )));
                    }
                },
            }
        }
        let params = WindowFunctionParams {
            args: params.args.iter().map(|a| prepare(a, schema)).collect::<SqlResult<_>>()?,
            partition_by: params.partition_by.iter().map(|p| prepare(p, schema)).collect::<SqlResult<_>>()?,
            filter: params.filter.as_ref().map(|f| prepare(f, schema).map(Box::new)).transpose()?,
            ..params.clone()
        };
        let prepared = Expr::WindowFunction(Box::new(WindowFunction { fun: fun.clone(), params })).alias(name);
        functions.push(create_window_expr(
            &prepared,
            schema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )?);
        sliding.push(slide);
    }
    if window_mode && time_mode {
        return Err(SqlError::new(
            "internal: OVER clauses within windows and over the whole stream in one Window node",
        ));
    }
    if lead_rows > MAX_HISTORY_ROWS {
        return Err(SqlError::new(format!(
            "a LEAD offset of {lead_rows} rows holds that many rows per key back; at most {MAX_HISTORY_ROWS} are allowed"
        )));
    }
    if history_rows > MAX_HISTORY_ROWS {
        return Err(SqlError::new(format!(
            "a ROWS frame or LAG offset of {history_rows} rows keeps that many rows per key; at most {MAX_HISTORY_ROWS} \
             are allowed (use a RANGE frame over time instead)"
        )));
    }
    let partition_by = partition
        .unwrap_or_default()
        .iter()
        .map(|p| super::lower::physical(p, schema))
        .collect::<SqlResult<Vec<_>>>()?;
    let spec = OverSpec {
        partition_by,
        functions,
        history_rows: history_rows as usize,
        history_ms,
        lead_rows: lead_rows as usize,
        sliding,
        output_schema: nullable(window.schema.as_arrow()),
    };
    let input: Arc<Schema> = Arc::new(schema.as_arrow().clone());
    Ok(Stream {
        plan: Plan::Stage {
            stage: PlannedStage::Over(Arc::new(spec), input),
            inputs: vec![(0, stream.plan)],
            post: Vec::new(),
        },
        window: None,
        time_column: stream.time_column,
        window_result: stream.window_result,
        updating: false,
        timed: true,
    })
}

/// The largest N of an updating Top-N: rows kept per partition.
const MAX_TOP_N: u64 = 10_000;

/// `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` under `rn <= limit`, over a whole stream:
/// an updating Top-N stage.
fn lower_top_n(
    window: &datafusion::logical_expr::Window,
    stream: Stream,
    params: &WindowFunctionParams,
    limit: u64,
) -> SqlResult<Stream> {
    let schema = window.input.schema();
    if limit > MAX_TOP_N {
        return Err(SqlError::new(format!(
            "a Top-N keeps N rows per partition; at most {MAX_TOP_N} are allowed, got WHERE rn <= {limit}"
        )));
    }
    let partition_by =
        params.partition_by.iter().map(|p| super::lower::physical(p, schema)).collect::<SqlResult<Vec<_>>>()?;
    let order_by = params
        .order_by
        .iter()
        .map(|sort| {
            let options = SortOptions { descending: !sort.asc, nulls_first: sort.nulls_first };
            Ok(PhysicalSortExpr { expr: super::lower::physical(&sort.expr, schema)?, options })
        })
        .collect::<SqlResult<Vec<_>>>()?;
    let order_by = LexOrdering::new(order_by)
        .ok_or_else(|| SqlError::new("ROW_NUMBER() OVER (...) of a Top-N needs an ORDER BY to rank by"))?;
    let time_descending = matches!(
        (params.order_by.as_slice(), stream.time_column.filter(|_| stream.timed)),
        ([sort], Some(time)) if !sort.asc && matches!(&sort.expr, Expr::Column(c) if schema.index_of_column(c).ok() == Some(time))
    );
    let spec = TopNSpec {
        partition_by,
        order_by,
        limit: limit as usize,
        ties_to_newest: time_descending,
        input_hidden: if stream.timed { streamsql_engine::time::HIDDEN_COLUMNS } else { 0 },
        output_schema: nullable(window.schema.as_arrow()),
    };
    Ok(Stream {
        plan: Plan::Stage {
            stage: PlannedStage::TopN(Arc::new(spec)),
            inputs: vec![(0, stream.plan)],
            post: Vec::new(),
        },
        window: None,
        time_column: None,
        window_result: None,
        updating: true,
        timed: false,
    })
}

/// Whether `order_by` is the event-time column alone (in either direction).
fn orders_by_time(
    order_by: &[datafusion::logical_expr::SortExpr],
    schema: &datafusion::common::DFSchema,
    time: usize,
) -> bool {
    matches!(order_by, [sort] if matches!(&sort.expr, Expr::Column(c) if schema.index_of_column(c).ok() == Some(time)) && sort.asc)
}

/// The OVER must be ordered by the event-time column, ascending, and by nothing else.
fn check_order(
    order_by: &[datafusion::logical_expr::SortExpr],
    schema: &datafusion::common::DFSchema,
    time: usize,
    time_name: &str,
    function: &str,
) -> SqlResult<()> {
    let usage = format!("OVER (PARTITION BY ... ORDER BY {time_name} ...)");
    match order_by {
        [] => Err(SqlError::new(format!(
            "{}() OVER (...) without ORDER BY would need the whole stream; order it by the event-time column: {usage}",
            function.to_uppercase()
        ))),
        [sort] => {
            let is_time = matches!(&sort.expr, Expr::Column(c) if schema.index_of_column(c).ok() == Some(time));
            if !is_time {
                return Err(SqlError::new(format!(
                    "OVER (...) on a stream must ORDER BY its event-time column '{time_name}' (the WATERMARK column, \
                     or window_time of window results), not {}; ordering by other columns or by processing time \
                     (PROCTIME()) is not supported",
                    sort.expr
                )));
            }
            if !sort.asc {
                return Err(SqlError::new(format!(
                    "OVER (... ORDER BY {time_name} DESC) would need rows that have not arrived yet; order by event \
                     time ascending: {usage}"
                )));
            }
            Ok(())
        }
        _ => Err(SqlError::new(format!(
            "OVER (...) on a stream orders by the event-time column alone; remove the other ORDER BY columns: {usage}"
        ))),
    }
}

/// Checks that `frame` is bounded and ends at the current row; widens the history it needs.
fn frame_history(frame: &WindowFrame, function: &str, rows: &mut u64, ms: &mut i64) -> SqlResult<Option<Slide>> {
    let upper = function.to_uppercase();
    if let WindowFrameBound::Following(_) = frame.end_bound {
        return Err(SqlError::new(format!(
            "{upper}() OVER (... FOLLOWING) would need rows that have not arrived yet; end the frame at the current \
             row: {FRAME_EXAMPLE}"
        )));
    }
    let start = match &frame.start_bound {
        WindowFrameBound::Preceding(value) if !value.is_null() => value,
        WindowFrameBound::Preceding(_) => {
            return Err(SqlError::new(format!(
                "{upper}() OVER (...) over UNBOUNDED PRECEDING rows (the default frame with ORDER BY) keeps every row \
                 of every key forever; bound the frame: {FRAME_EXAMPLE} (a state TTL for unbounded OVER \
                 aggregations is not supported yet)"
            )));
        }
        WindowFrameBound::CurrentRow if frame.units == WindowFrameUnits::Range => {
            return Ok(ends_at_current_row(frame).then_some(Slide::Range(0)));
        }
        WindowFrameBound::CurrentRow => &ScalarValue::UInt64(Some(0)),
        WindowFrameBound::Following(_) => {
            return Err(SqlError::new(format!(
                "{upper}() OVER (...) with a frame that starts after the current row is not supported: {FRAME_EXAMPLE}"
            )));
        }
    };
    match frame.units {
        WindowFrameUnits::Rows => {
            let n = start.cast_to(&DataType::UInt64).ok().and_then(|v| match v {
                ScalarValue::UInt64(Some(n)) => Some(n),
                _ => None,
            });
            let n = n.ok_or_else(|| SqlError::new(format!("ROWS BETWEEN {start} PRECEDING: expected a row count")))?;
            *rows = (*rows).max(n);
            Ok(ends_at_current_row(frame).then_some(Slide::Rows(n as usize)))
        }
        WindowFrameUnits::Range => {
            let range = range_ms(start)?;
            *ms = (*ms).max(range);
            Ok(ends_at_current_row(frame).then_some(Slide::Range(range)))
        }
        WindowFrameUnits::Groups => {
            Err(SqlError::new(format!("GROUPS frames are not supported on streams: {FRAME_EXAMPLE}")))
        }
    }
}

fn ends_at_current_row(frame: &WindowFrame) -> bool {
    matches!(frame.end_bound, WindowFrameBound::CurrentRow)
}

/// A RANGE frame's `INTERVAL ... PRECEDING` in milliseconds.
fn range_ms(value: &ScalarValue) -> SqlResult<i64> {
    let ms = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            i64::from(v.days).checked_mul(86_400_000).and_then(|d| d.checked_add(v.nanoseconds.div_euclid(1_000_000)))
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            i64::from(v.days).checked_mul(86_400_000).and_then(|d| d.checked_add(i64::from(v.milliseconds)))
        }
        ScalarValue::DurationSecond(Some(s)) => s.checked_mul(1_000),
        ScalarValue::DurationMillisecond(Some(ms)) => Some(*ms),
        ScalarValue::DurationMicrosecond(Some(us)) => Some(us / 1_000),
        ScalarValue::DurationNanosecond(Some(ns)) => Some(ns / 1_000_000),
        ScalarValue::IntervalMonthDayNano(Some(_)) | ScalarValue::IntervalYearMonth(Some(_)) => {
            return Err(SqlError::new(
                "RANGE BETWEEN INTERVAL ... PRECEDING in months or years has no fixed length; use days",
            ));
        }
        other => {
            return Err(SqlError::new(format!(
                "RANGE BETWEEN {other} PRECEDING: over event time, the range is an interval, as in \
                 RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW"
            )));
        }
    };
    match ms {
        Some(ms) if ms >= 0 => Ok(ms),
        _ => Err(SqlError::new(format!("RANGE BETWEEN {value} PRECEDING: the interval must be a positive duration"))),
    }
}

/// `LAG`/`LEAD(x [, offset [, default]])`: the offset, a non-negative integer literal.
fn lag_offset(args: &[Expr]) -> SqlResult<u64> {
    let Some(offset) = args.get(1) else { return Ok(1) };
    let value = match offset {
        Expr::Literal(value, _) => value.cast_to(&DataType::Int64).ok(),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Literal(value, _) => value.cast_to(&DataType::Int64).ok(),
            _ => None,
        },
        _ => None,
    };
    match value {
        Some(ScalarValue::Int64(Some(n))) if n >= 0 => Ok(n as u64),
        _ => Err(SqlError::new(format!(
            "the offset of LAG and LEAD must be a non-negative integer literal, as in LAG(v, 1); got {offset}"
        ))),
    }
}
