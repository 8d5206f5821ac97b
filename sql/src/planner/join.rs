//! Lowering joins of two streams onto a join stage.
//!
//! The equalities between the two sides in `ON` (or in the `WHERE` over a comma join) become
//! the join's keys, by which both inputs are routed to the join's instances; the rest of the
//! condition is evaluated on each joined row. Only INNER joins of append-only inputs run so
//! far (their results are append-only, and over bounded inputs exactly the batch join). A join of
//! window results on a window column drops the rows of windows the watermark has passed.

use std::sync::Arc;

use datafusion::common::{DFSchema, NullEquality};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Join, JoinType, Operator};
use streamsql_engine::operators::join::{JoinExpiry, JoinSide, JoinSpec};
use streamsql_engine::operators::stateless::StatelessOp;

use super::lower::{Plan, PlannedStage, Stream, lower, nullable, physical};
use crate::error::{SqlError, SqlResult};

/// Lowers `join`, with `predicate` (the `WHERE` right above it, for a comma join) as part of
/// its condition.
pub fn lower_join(join: &Join, predicate: Option<&Expr>) -> SqlResult<Stream> {
    match join.join_type {
        JoinType::Inner => {}
        JoinType::Left | JoinType::Right | JoinType::Full => {
            return Err(SqlError::new(format!(
                "{} OUTER JOIN of streams is not supported yet (its results change as rows arrive); use an INNER JOIN",
                join.join_type.to_string().to_uppercase()
            )));
        }
        other => return Err(SqlError::new(format!("{other} joins of streams are not supported yet"))),
    }
    if join.null_equality == NullEquality::NullEqualsNull || join.null_aware {
        return Err(SqlError::new("joins whose keys match NULL with NULL are not supported on streams yet"));
    }
    let left = lower(&join.left)?;
    let right = lower(&join.right)?;
    for side in [&left, &right] {
        if side.window.is_some() {
            return Err(SqlError::new(
                "joining the rows of window TVFs (a window join) is not supported yet; \
                 join the results of windowed aggregations (GROUP BY window_start, window_end, ...) instead",
            ));
        }
        if side.updating {
            return Err(SqlError::new(
                "joining an updating result (an aggregation without a window) is not supported yet; \
                 join append-only streams: tables, or the results of windowed aggregations",
            ));
        }
    }

    let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
    let mut pairs: Vec<(Expr, Expr)> = join.on.clone();
    let mut residual = Vec::new();
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

    let mut left_keys = Vec::new();
    let mut right_keys = Vec::new();
    let mut key_types = Vec::new();
    for (l, r) in &pairs {
        let (lt, rt) = (l.get_type(left_schema)?, r.get_type(right_schema)?);
        let common = if lt == rt { Some(lt.clone()) } else { comparison_coercion(&lt, &rt) };
        let Some(common) = common else {
            return Err(SqlError::new(format!("cannot join {l} ({lt}) with {r} ({rt}): the types cannot be compared")));
        };
        left_keys.push(physical(l, left_schema)?);
        right_keys.push(physical(r, right_schema)?);
        key_types.push(common);
    }
    let expiry = pairs.iter().find_map(|(l, r)| window_expiry(l, &left, left_schema, r, &right, right_schema));
    let spec = JoinSpec {
        left: JoinSide { keys: left_keys, visible: left_schema.fields().len() },
        right: JoinSide { keys: right_keys, visible: right_schema.fields().len() },
        key_types,
        output_schema: nullable(join.schema.as_arrow()),
        expiry,
    };
    let mut post = Vec::new();
    if let Some(condition) = conjunction(residual) {
        post.push(StatelessOp::Filter(physical(&condition, &join.schema)?));
    }
    Ok(Stream {
        plan: Plan::Stage {
            stage: PlannedStage::Join(Arc::new(spec)),
            inputs: vec![(0, left.plan), (1, right.plan)],
            post,
        },
        window: None,
        time_column: None,
        window_result: None,
        updating: false,
        timed: false,
    })
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
        let result = stream.window_result?;
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
