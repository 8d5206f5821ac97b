//! `OVER (PARTITION BY ... ORDER BY ts ...)`: a DataFusion `Window` node → an OVER stage.
//!
//! What runs on a stream is what Flink runs: window functions ordered by the event-time column
//! ascending, over a bounded frame that ends at the current row (`RANGE BETWEEN INTERVAL '1'
//! HOUR PRECEDING AND CURRENT ROW`, `ROWS BETWEEN 10 PRECEDING AND CURRENT ROW`), and `LAG`.
//! Everything else is refused here with what to write instead.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition};
use datafusion::physical_planner::create_window_expr;
use streamsql_engine::operators::over::OverSpec;

use super::lower::{Plan, PlannedStage, Stream, lower, nullable, prepare, window_without_aggregation};
use crate::error::{SqlError, SqlResult};

/// How a bounded frame is written, for error messages.
const FRAME_EXAMPLE: &str =
    "RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW, or ROWS BETWEEN 10 PRECEDING AND CURRENT ROW";

/// The largest ROWS frame or LAG offset: rows kept per partition.
const MAX_HISTORY_ROWS: u64 = 100_000;

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
    let time = match stream.time_column {
        Some(time) if stream.timed => time,
        _ => {
            return Err(SqlError::new(
                "OVER (...) needs rows with an event time to ORDER BY, and this input has none (join results and \
                 projections that drop the WATERMARK column have none); apply it to a table with a WATERMARK or to \
                 window results that keep window_time",
            ));
        }
    };
    let time_name = schema.field(time).name().clone();
    let mut partition: Option<Vec<Expr>> = None;
    let mut functions = Vec::new();
    let mut history_rows = 0u64;
    let mut history_ms = 0i64;
    for expr in &window.window_expr {
        let (name, inner) = match expr {
            Expr::Alias(alias) => (alias.name.clone(), alias.expr.as_ref()),
            other => (other.schema_name().to_string(), other),
        };
        let Expr::WindowFunction(function) = inner else {
            return Err(SqlError::new(format!("internal: window expression {name} is not a window function")));
        };
        let WindowFunction { fun, params } = function.as_ref();
        let function_name = fun.name().to_lowercase();
        check_order(&params.order_by, schema, time, &time_name, &function_name)?;
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
        match fun {
            WindowFunctionDefinition::AggregateUDF(_) => {
                frame_history(&params.window_frame, &function_name, &mut history_rows, &mut history_ms)?;
            }
            WindowFunctionDefinition::WindowUDF(_) => match function_name.as_str() {
                "lag" => history_rows = history_rows.max(lag_offset(&params.args)?),
                "first_value" | "last_value" | "nth_value" => {
                    frame_history(&params.window_frame, &function_name, &mut history_rows, &mut history_ms)?;
                }
                "lead" => {
                    return Err(SqlError::new(
                        "LEAD is not supported on streams yet: its value is a later row, which may not have arrived; \
                         compare with the previous row instead (LAG)",
                    ));
                }
                "row_number" | "rank" | "dense_rank" => {
                    return Err(SqlError::new(format!(
                        "{}() OVER (...) is not supported on streams yet: its value depends on every row of the \
                         partition since the stream began; Top-N and deduplication (WHERE rn <= N) come later",
                        function_name.to_uppercase()
                    )));
                }
                other => {
                    return Err(SqlError::new(format!(
                        "the window function {}() is not supported on streams; OVER supports aggregate functions \
                         over a bounded frame, FIRST_VALUE, LAST_VALUE, NTH_VALUE and LAG",
                        other.to_uppercase()
                    )));
                }
            },
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
        time_column: Some(time),
        window_result: stream.window_result,
        updating: false,
        timed: true,
    })
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
fn frame_history(frame: &WindowFrame, function: &str, rows: &mut u64, ms: &mut i64) -> SqlResult<()> {
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
        }
        WindowFrameUnits::Range => *ms = (*ms).max(range_ms(start)?),
        WindowFrameUnits::Groups => {
            return Err(SqlError::new(format!("GROUPS frames are not supported on streams: {FRAME_EXAMPLE}")));
        }
    }
    Ok(())
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

/// `LAG(x [, offset [, default]])`: the offset, a non-negative integer literal.
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
            "LAG's offset must be a non-negative integer literal, as in LAG(v, 1); got {offset}"
        ))),
    }
}
