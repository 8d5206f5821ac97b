//! Lowering joins of two streams onto a join stage.
//!
//! The equalities between the two sides in `ON` (or in the `WHERE` over a comma join) become
//! the join's keys, by which both inputs are routed to the join's instances; the rest of the
//! condition is evaluated on each joined row. INNER joins of append-only inputs are append-only
//! too (and over bounded inputs exactly the batch join); a join of an updating input (a
//! changelog) retracts the pairs of each row taken back out; LEFT, RIGHT and FULL joins of streams produce a changelog: a row that matches nothing yet
//! is emitted NULL-padded, and retracted (`-D`) when its first match arrives. A join of
//! window results on a window column drops the rows of windows the watermark has passed.
//!
//! A condition bounding the two sides' event times against each other from both sides
//! (`a.ts BETWEEN b.ts - INTERVAL '1' MINUTE AND b.ts + INTERVAL '5' SECOND`, or the same with
//! `>=`/`<=`) makes it an *interval join*: a row is late iff `ts < wm(r)` (its own watermark),
//! and rows are kept only until the watermark shows they can match nothing more.
//!
//! When exactly one side is a bounded table without a watermark (a file: a dimension table) it
//! is a *lookup join*: the table is loaded once and the stream's rows are probed against it, not
//! kept once the table is complete. Its result is the batch join's, as for any inner join.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::common::{DFSchema, NullEquality};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Between, Cast};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Join, JoinType, LogicalPlan, Operator, Projection};
use datafusion::physical_expr::PhysicalExpr;
use streamsql_engine::operators::aggregate::WindowKind;
use streamsql_engine::operators::join::{IntervalBounds, JoinExpiry, JoinSide, JoinSpec};
use streamsql_engine::operators::stateless::StatelessOp;
use streamsql_engine::operators::window_join::{JoinKind, WindowJoin};

use super::lower::{Plan, PlannedStage, Stream, WindowInput, lower, nullable, physical};
use crate::error::{SqlError, SqlResult};

/// Lowers `join`, with `predicate` (the `WHERE` right above it, for a comma join) as part of
/// its condition.
pub fn lower_join(join: &Join, predicate: Option<&Expr>) -> SqlResult<Stream> {
    let kind = match join.join_type {
        JoinType::Inner => JoinKind::Inner,
        JoinType::Left => JoinKind::Left,
        JoinType::Right => JoinKind::Right,
        JoinType::Full => JoinKind::Full,
        JoinType::LeftSemi => JoinKind::LeftSemi,
        JoinType::LeftAnti | JoinType::RightAnti => {
            return Err(SqlError::new(
                "NOT IN (SELECT ...) and NOT EXISTS (anti joins) are not supported on streams yet: a row emitted \
                 for lacking a match would have to be retracted when a match arrives",
            ));
        }
        JoinType::LeftMark | JoinType::RightMark => {
            return Err(SqlError::new(
                "IN (SELECT ...) and EXISTS are supported as conditions of a WHERE (joined with AND), not inside \
                 other expressions yet",
            ));
        }
        other => return Err(SqlError::new(format!("{other} joins of streams are not supported yet"))),
    };
    if join.null_equality == NullEquality::NullEqualsNull || join.null_aware {
        return Err(SqlError::new("joins whose keys match NULL with NULL are not supported on streams yet"));
    }
    let left = lower_input(&join.left)?;
    let right = lower_input(&join.right)?;
    if let (Some(l), Some(r)) = (left.window, right.window) {
        return lower_window_join(join, predicate, kind, (left, l), (right, r));
    }
    for side in [&left, &right] {
        if side.window.is_some() {
            return Err(SqlError::new(
                "a window TVF can only be joined with another window TVF of the same window, on window_start and \
                 window_end (a window join); or join the results of windowed aggregations",
            ));
        }
    }

    let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
    let mut pairs: Vec<(Expr, Expr)> = join.on.clone();
    let mut residual = Vec::new();
    // A WHERE folded in here comes with comma joins, which are inner joins.
    let predicate = if kind == JoinKind::Inner { predicate } else { None };
    let conditions = join.filter.iter().chain(predicate).flat_map(split_conjunction);
    for condition in conditions {
        match equality(condition, left_schema, right_schema) {
            Some(pair) => pairs.push(pair),
            None => residual.push(condition.clone()),
        }
    }
    if pairs.is_empty() {
        return Err(SqlError::new(
            "a join of two streams needs an equality between them in its condition (ON a.k = b.k): \
             without one every row would be kept and paired with every other",
        ));
    }

    if kind == JoinKind::LeftSemi {
        if !residual.is_empty() {
            return Err(SqlError::new(
                "IN (SELECT ...) and EXISTS are supported with equality conditions between the query and the \
                 subquery only (x IN (SELECT y ...), EXISTS (... WHERE a.k = b.k)), not other correlated conditions",
            ));
        }
        if left.updating || right.updating {
            return Err(SqlError::new(
                "IN (SELECT ...) and EXISTS over an updating result (an aggregate without a window) are not \
                 supported yet",
            ));
        }
    }
    let (left_keys, right_keys, key_types) = join_keys(&pairs, left_schema, right_schema)?;
    let semi = kind == JoinKind::LeftSemi;
    let expiry =
        pairs.iter().find_map(|(l, r)| window_expiry(l, &left, left_schema, r, &right, right_schema)).filter(|_| !semi);
    let interval = interval_bounds(&residual, &left, left_schema, &right, right_schema).filter(|_| !semi);
    // A lookup join's table is never the side an outer join keeps unmatched: a table row's
    // match could come from any stream row still to come.
    // (A changelog on the stream side needs its rows kept to retract them: a regular join.)
    let updating_inputs = [left.updating, right.updating];
    let lookup = match (is_table(&left), is_table(&right), updating_inputs.contains(&true)) {
        _ if semi => None,
        (true, false, false) if !kind.keeps_unmatched(0) => Some(0),
        (false, true, false) if !kind.keeps_unmatched(1) => Some(1),
        _ => None,
    };
    let spec = JoinSpec {
        left: JoinSide { keys: left_keys, visible: left_schema.fields().len() },
        right: JoinSide { keys: right_keys, visible: right_schema.fields().len() },
        key_types,
        output_schema: nullable(join.schema.as_arrow()),
        expiry,
        interval,
        window: None,
        lookup,
        kind,
        condition: None,
        updating_inputs,
    };
    let mut spec = spec;
    let mut post = Vec::new();
    if let Some(condition) = conjunction(residual) {
        let condition = physical(&condition, &join.schema)?;
        // An outer join's ON condition decides what matches; an inner join's just filters.
        match kind {
            JoinKind::Inner => post.push(StatelessOp::Filter(condition)),
            _ => spec.condition = Some(condition),
        }
    }
    Ok(joined(spec, left, right, post))
}

/// One side's join keys, as physical expressions over its batches.
type KeyExprs = Vec<Arc<dyn PhysicalExpr>>;

/// The stream of a join stage over `left` and `right`: no event time; a changelog when the
/// join makes one.
fn joined(spec: JoinSpec, left: Stream, right: Stream, post: Vec<StatelessOp>) -> Stream {
    let updating = spec.is_changelog();
    Stream {
        plan: Plan::Stage {
            stage: PlannedStage::Join(Arc::new(spec)),
            inputs: vec![(0, left.plan), (1, right.plan)],
            post,
        },
        window: None,
        time_column: None,
        window_result: None,
        updating,
        timed: false,
    }
}

/// The physical keys of each side for `(left, right)` equality pairs, both cast to a common
/// type (so equal keys hash alike and go to the same instance), and those types.
fn join_keys(
    pairs: &[(Expr, Expr)],
    left_schema: &Arc<DFSchema>,
    right_schema: &Arc<DFSchema>,
) -> SqlResult<(KeyExprs, KeyExprs, Vec<DataType>)> {
    let mut left_keys = Vec::new();
    let mut right_keys = Vec::new();
    let mut key_types = Vec::new();
    for (l, r) in pairs {
        let (lt, rt) = (l.get_type(left_schema)?, r.get_type(right_schema)?);
        let common = if lt == rt { Some(lt.clone()) } else { comparison_coercion(&lt, &rt) };
        let Some(common) = common else {
            return Err(SqlError::new(format!("cannot join {l} ({lt}) with {r} ({rt}): the types cannot be compared")));
        };
        left_keys.push(physical(&cast_to(l, &lt, &common), left_schema)?);
        right_keys.push(physical(&cast_to(r, &rt, &common), right_schema)?);
        key_types.push(common);
    }
    Ok((left_keys, right_keys, key_types))
}

/// `e` (of type `from`) as type `to`.
fn cast_to(e: &Expr, from: &DataType, to: &DataType) -> Expr {
    if from == to { e.clone() } else { Expr::Cast(Cast::new(Box::new(e.clone()), to.clone())) }
}

/// Lowers a join input; `SELECT *` over a window TVF (Flink's usual window-join input) passes
/// its rows through unchanged, so it is looked through.
fn lower_input(plan: &LogicalPlan) -> SqlResult<Stream> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => lower_input(&alias.input),
        LogicalPlan::Projection(projection) if is_identity(projection) => {
            let stream = lower_input(&projection.input)?;
            if stream.window.is_some() { Ok(stream) } else { lower(plan) }
        }
        other => lower(other),
    }
}

/// Whether `projection` selects every input column once, in order, unchanged.
fn is_identity(projection: &Projection) -> bool {
    let input = projection.input.schema();
    projection.expr.len() == input.fields().len()
        && projection
            .expr
            .iter()
            .enumerate()
            .all(|(i, e)| matches!(e.clone().unalias(), Expr::Column(c) if input.index_of_column(&c).ok() == Some(i)))
}

/// Two window TVFs joined on `window_start`, `window_end` and keys: a window join.
fn lower_window_join(
    join: &Join,
    predicate: Option<&Expr>,
    kind: JoinKind,
    (left, left_window): (Stream, WindowInput),
    (right, right_window): (Stream, WindowInput),
) -> SqlResult<Stream> {
    if kind == JoinKind::LeftSemi {
        return Err(SqlError::new(
            "IN (SELECT ...) and EXISTS between two window TVFs are not supported yet; aggregate per window, or use \
             a window join",
        ));
    }
    if matches!(left_window.shape.kind, WindowKind::Session | WindowKind::Cumulate) {
        return Err(SqlError::new(
            "a window join of SESSION or CUMULATE windows is not supported yet; join TUMBLE or HOP windows, or \
             aggregate each side per window and join the results",
        ));
    }
    if left_window.shape.processing_time || right_window.shape.processing_time {
        return Err(SqlError::new(
            "a window join of windows over processing time (PROCTIME()) is not supported yet; join over event time",
        ));
    }
    if left_window.shape != right_window.shape {
        return Err(SqlError::new("a window join needs the same window on both sides (the same TVF, size and slide)"));
    }
    if [&left, &right].iter().any(|s| matches!(s.plan, Plan::Union(_))) {
        return Err(SqlError::new(
            "a window join over a UNION ALL is not supported yet; join each input, then UNION ALL",
        ));
    }
    let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
    let mut conditions: Vec<Expr> = join.on.iter().map(|(l, r)| l.clone().eq(r.clone())).collect();
    conditions.extend(join.filter.iter().chain(predicate).flat_map(split_conjunction).cloned());
    let virtual_of = |e: &Expr, schema: &DFSchema, window: &WindowInput| -> Option<usize> {
        let Expr::Column(c) = e else { return None };
        schema.index_of_column(c).ok()?.checked_sub(window.first_virtual)
    };
    let mut window_equalities = [false; 2];
    let mut pairs = Vec::new();
    let mut residual = Vec::new();
    for condition in &conditions {
        let Some((l, r)) = equality(condition, left_schema, right_schema) else {
            residual.push(condition.clone());
            continue;
        };
        match (virtual_of(&l, left_schema, &left_window), virtual_of(&r, right_schema, &right_window)) {
            (Some(a), Some(b)) if a == b && a < 2 => window_equalities[a] = true,
            (None, None) => pairs.push((l, r)),
            _ => residual.push(condition.clone()),
        }
    }
    if window_equalities != [true, true] {
        return Err(SqlError::new(
            "a join of two window TVFs must join them on both window_start and window_end \
             (l.window_start = r.window_start AND l.window_end = r.window_end): a window join",
        ));
    }
    for condition in &residual {
        for (schema, window) in [(left_schema, &left_window), (right_schema, &right_window)] {
            let uses_window = condition
                .column_refs()
                .iter()
                .any(|c| schema.index_of_column(c).is_ok_and(|i| i >= window.first_virtual));
            if uses_window && (kind != JoinKind::Inner) {
                return Err(SqlError::new(
                    "the condition of an outer window join may use window columns only in the window equalities",
                ));
            }
        }
    }
    let (left_keys, right_keys, key_types) = join_keys(&pairs, left_schema, right_schema)?;
    let residual = conjunction(residual);
    if kind != JoinKind::Inner && residual.is_some() {
        return Err(SqlError::new(format!(
            "a {} OUTER window join's condition may only hold equalities between the two sides (and the window \
             equalities); filter the inputs or the result instead",
            kind.sql()
        )));
    }
    let spec = JoinSpec {
        left: JoinSide { keys: left_keys, visible: left_window.first_virtual },
        right: JoinSide { keys: right_keys, visible: right_window.first_virtual },
        key_types,
        output_schema: nullable(join.schema.as_arrow()),
        expiry: None,
        interval: None,
        window: Some(WindowJoin { shape: left_window.shape, kind }),
        lookup: None,
        kind,
        condition: None,
        updating_inputs: [false, false],
    };
    let mut post = Vec::new();
    if let Some(condition) = residual {
        post.push(StatelessOp::Filter(physical(&condition, &join.schema)?));
    }
    Ok(joined(spec, left, right, post))
}

/// `lower <= l.ts - r.ts <= upper` as implied by `conditions`, when they bound the difference of
/// the two sides' event-time columns from both sides.
fn interval_bounds(
    conditions: &[Expr],
    left: &Stream,
    left_schema: &DFSchema,
    right: &Stream,
    right_schema: &DFSchema,
) -> Option<IntervalBounds> {
    if !left.timed || !right.timed {
        return None;
    }
    // A side's event-time column plus a constant offset: (0 = left | 1 = right, offset in ms).
    let operand = |e: &Expr| -> Option<(usize, i64)> {
        let (column, offset) = match e {
            Expr::BinaryExpr(BinaryExpr { left: a, op: Operator::Plus, right: b }) => match interval_ms(b) {
                Some(ms) => (a.as_ref(), ms),
                None => (b.as_ref(), interval_ms(a)?),
            },
            Expr::BinaryExpr(BinaryExpr { left: c, op: Operator::Minus, right: i }) => {
                (c.as_ref(), interval_ms(i)?.checked_neg()?)
            }
            other => (other, 0),
        };
        // A cast to a coarser type (DATE, TIMESTAMP(0)) would make the real condition looser
        // than the bounds: only casts that keep milliseconds are looked through.
        let column = match column {
            Expr::Cast(Cast { expr, field }) if matches!(field.data_type(), DataType::Timestamp(unit, _) if *unit != TimeUnit::Second) => {
                expr.as_ref()
            }
            Expr::Cast(_) => return None,
            other => other,
        };
        let Expr::Column(c) = column else { return None };
        let is_time = |stream: &Stream, schema: &DFSchema| {
            stream.time_column.is_some() && schema.index_of_column(c).ok() == stream.time_column
        };
        if is_time(left, left_schema) && !right_schema.has_column(c) {
            Some((0, offset))
        } else if is_time(right, right_schema) && !left_schema.has_column(c) {
            Some((1, offset))
        } else {
            None
        }
    };
    // `a >= b` as a bound on l.ts - r.ts: (is lower bound, value).
    let bound = |a: &Expr, b: &Expr| -> Option<(bool, i64)> {
        let ((sa, oa), (sb, ob)) = (operand(a)?, operand(b)?);
        match (sa, sb) {
            // l + oa >= r + ob  ⇔  l - r >= ob - oa
            (0, 1) => Some((true, ob.checked_sub(oa)?)),
            // r + oa >= l + ob  ⇔  l - r <= oa - ob
            (1, 0) => Some((false, oa.checked_sub(ob)?)),
            _ => None,
        }
    };
    let mut lower: Option<i64> = None;
    let mut upper: Option<i64> = None;
    let mut add = |found: Option<(bool, i64)>| match found {
        Some((true, v)) => lower = Some(lower.map_or(v, |l| l.max(v))),
        Some((false, v)) => upper = Some(upper.map_or(v, |u| u.min(v))),
        None => {}
    };
    for condition in conditions {
        match condition {
            Expr::BinaryExpr(BinaryExpr { left: a, op, right: b }) => match op {
                Operator::GtEq | Operator::Gt => add(bound(a, b)),
                Operator::LtEq | Operator::Lt => add(bound(b, a)),
                _ => {}
            },
            Expr::Between(Between { expr, negated: false, low, high }) => {
                add(bound(expr, low));
                add(bound(high, expr));
            }
            _ => {}
        }
    }
    Some(IntervalBounds { lower_ms: lower?, upper_ms: upper? })
}

/// A constant interval of days, hours, minutes, seconds or milliseconds, in milliseconds.
fn interval_ms(e: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = e else { return None };
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 && v.nanoseconds % 1_000_000 == 0 => {
            (v.days as i64).checked_mul(86_400_000)?.checked_add(v.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            (v.days as i64).checked_mul(86_400_000)?.checked_add(v.milliseconds as i64)
        }
        _ => None,
    }
}

/// Whether `stream` reads a bounded table with no watermark straight from its source (filters
/// and projections allowed): a lookup join's dimension table.
fn is_table(stream: &Stream) -> bool {
    match &stream.plan {
        Plan::Source { source, .. } => source.table.watermark.is_none() && source.connector.bounded(&source.table),
        _ => false,
    }
}

/// For `l = r` where both are window columns of window results (`window_start`, `window_end` or
/// `window_time`): a row with value `v` there comes before the watermark passes `v` plus the
/// distance from that column to its window's end, on its side; after the larger of the two, its
/// key can meet no new row.
fn window_expiry(
    l: &Expr,
    left: &Stream,
    left_schema: &DFSchema,
    r: &Expr,
    right: &Stream,
    right_schema: &DFSchema,
) -> Option<JoinExpiry> {
    let side = |e: &Expr, stream: &Stream, schema: &DFSchema| -> Option<(usize, i64)> {
        let Expr::Column(c) = e else { return None };
        let index = schema.index_of_column(c).ok()?;
        // Window ends follow from starts only for windows of one size.
        let result = stream.window_result.filter(|r| matches!(r.shape.kind, WindowKind::Tumble | WindowKind::Hop))?;
        let which = result.columns.iter().position(|w| *w == Some(index))?;
        let to_end = match which {
            0 => result.shape.size_ms,
            1 => 0,
            _ => 1,
        };
        Some((index, to_end))
    };
    let (left_column, left_to_end) = side(l, left, left_schema)?;
    let (right_column, right_to_end) = side(r, right, right_schema)?;
    Some(JoinExpiry { left_column, right_column, offset_ms: left_to_end.max(right_to_end) })
}

/// `l = r` with `l` over the left side only and `r` over the right only (either way round), as
/// a (left, right) key pair.
fn equality(condition: &Expr, left: &DFSchema, right: &DFSchema) -> Option<(Expr, Expr)> {
    let Expr::BinaryExpr(BinaryExpr { left: a, op: Operator::Eq, right: b }) = condition else { return None };
    let over = |e: &Expr, schema: &DFSchema| {
        let columns = e.column_refs();
        !columns.is_empty() && columns.iter().all(|c| schema.has_column(c))
    };
    if over(a, left) && over(b, right) {
        Some((a.as_ref().clone(), b.as_ref().clone()))
    } else if over(a, right) && over(b, left) {
        Some((b.as_ref().clone(), a.as_ref().clone()))
    } else {
        None
    }
}
