//! Lowering DataFusion logical plans onto engine pipelines.
//!
//! The plan is walked bottom-up into a [`Stream`]: a source, stateless operators before the
//! aggregation (fused into the source task), at most one window aggregation, and stateless
//! operators after it. Anything that cannot run incrementally on an unbounded stream is
//! rejected here, with a message saying what to do instead.
//!
//! ```text
//!  TableScan(table)            → Stream { source }
//!  TableScan(__window_N)       → Stream of the TVF input + virtual window columns
//!  Filter / Projection         → pre (before aggregation) or post (after)
//!  Aggregate over window TVF   → AggregateSpec with a window (keys, accumulators, output layout)
//!  Aggregate without a window  → AggregateSpec without one: an updating aggregate (changelog)
//!  Window (OVER ...)           → OverSpec: window functions over event time (see `over`)
//!  Sort, Limit, Join, ...      → error
//! ```
//!
//! Window columns are *virtual* until the aggregation: they appear in the plan's schemas (after
//! the input's columns) but not in the batches, so expressions before the aggregation may not
//! read them; the aggregation produces them from each window's bounds.
//!
//! Every expression the engine evaluates (projections, filters, GROUP BY keys, aggregate
//! arguments, FILTER and ORDER BY of aggregates) goes through [`prepare`] first: functions are
//! rewritten by their simplification hooks, which is the only way `COALESCE`, `NVL`, `IFNULL`,
//! `NVL2`, `arrow_cast` and a few others can run (DataFusion's optimizer does it for a batch
//! query; we skip the optimizer on purpose, as it would rewrite `COUNT(DISTINCT)` and hide the
//! window), then types are coerced. Constant subexpressions are not folded while planning (see
//! [`rewrite_functions`]). `now()`/`CURRENT_TIMESTAMP`, `CURRENT_DATE` and `CURRENT_TIME` are
//! processing time: given no query start time their hooks leave them alone, and they become
//! [`ProcessingTime`] calls that read the clock once per batch (rows of one batch share a value).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DFSchemaRef, internal_err};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::{Alias, ScalarFunction};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::utils::grouping_set_to_exprlist;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TableScan, Volatility,
};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr, create_physical_expr};
use streamsql_engine::operators::aggregate::{
    AggregateCall, AggregateSpec, GroupOutput, WindowKind, WindowShape, check_retractable,
};
use streamsql_engine::operators::join::JoinSpec;
use streamsql_engine::operators::over::OverSpec;
use streamsql_engine::operators::stateless::StatelessOp;
use streamsql_engine::operators::top_n::TopNSpec;
use streamsql_engine::pipeline::BoundTable;

use crate::catalog::{ConnectorTableSource, Relation, WINDOW_COLUMNS, WindowTableSource};
use crate::error::{SqlError, SqlResult};
use crate::functions::watermark;

/// Virtual window columns of a window TVF's output.
#[derive(Debug, Clone, Copy)]
pub struct WindowInput {
    pub shape: WindowShape,
    /// Index of `window_start` in the plan schema; the physical batch has this many visible
    /// columns.
    pub first_virtual: usize,
    /// SESSION with PARTITION BY: bit `i` set for input column `i` among its keys.
    pub session_keys: u64,
}

/// Where a windowed aggregation's results keep their window: the shape, and the positions of
/// `window_start`, `window_end` and `window_time` among the visible columns, while selected.
#[derive(Debug, Clone, Copy)]
pub struct WindowResult {
    pub shape: WindowShape,
    pub columns: [Option<usize>; 3],
}

/// A stage of a partly lowered query.
pub enum PlannedStage {
    /// An aggregation, with the visible columns of its input (what a late row has).
    Aggregate(Arc<AggregateSpec>, SchemaRef),
    Join(Arc<JoinSpec>),
    /// OVER window functions, with the visible columns of its input (what a late row has).
    Over(Arc<OverSpec>, SchemaRef),
    /// An updating Top-N.
    TopN(Arc<TopNSpec>),
}

/// A partly lowered query: a tree of sources and stages, each with the stateless operators
/// that follow it (fused into its task), and `UNION ALL`s of them.
pub enum Plan {
    Source { source: BoundTable, ops: Vec<StatelessOp> },
    Stage { stage: PlannedStage, inputs: Vec<(usize, Plan)>, post: Vec<StatelessOp> },
    Union(Vec<Plan>),
}

impl Plan {
    /// Whether its rows are a table's own (sources, maybe a UNION ALL of them), not a stage's.
    fn reads_rows(&self) -> bool {
        match self {
            Plan::Source { .. } => true,
            Plan::Stage { .. } => false,
            Plan::Union(branches) => branches.iter().all(Plan::reads_rows),
        }
    }

    /// Appends `op` after every branch that ends here.
    fn push(&mut self, op: StatelessOp) {
        match self {
            Plan::Source { ops, .. } => ops.push(op),
            Plan::Stage { post, .. } => post.push(op),
            Plan::Union(branches) => branches.iter_mut().for_each(|b| b.push(op.clone())),
        }
    }

    /// Whether its rows are a changelog: the output of an aggregation without a window.
    pub fn is_changelog(&self) -> bool {
        match self {
            Plan::Source { .. } => false,
            Plan::Stage { stage: PlannedStage::Aggregate(spec, _), .. } => spec.window.is_none(),
            Plan::Stage { stage: PlannedStage::Join(spec), .. } => spec.is_changelog(),
            Plan::Stage { stage: PlannedStage::Over(..), .. } => false,
            Plan::Stage { stage: PlannedStage::TopN(..), .. } => true,
            Plan::Union(branches) => branches.iter().any(Plan::is_changelog),
        }
    }

    /// Every source, left to right.
    pub fn sources(&self) -> Vec<&BoundTable> {
        match self {
            Plan::Source { source, .. } => vec![source],
            Plan::Stage { inputs, .. } => inputs.iter().flat_map(|(_, p)| p.sources()).collect(),
            Plan::Union(branches) => branches.iter().flat_map(|b| b.sources()).collect(),
        }
    }
}

/// A partly lowered query and what is known about its rows.
pub struct Stream {
    pub plan: Plan,
    /// Virtual window columns of a window TVF not aggregated yet.
    pub window: Option<WindowInput>,
    /// Index of the event-time column in the current visible columns, if still there.
    pub time_column: Option<usize>,
    /// Set on the results of a windowed aggregation (and what is computed from them).
    pub window_result: Option<WindowResult>,
    /// Results are a changelog (an aggregation without a window), not append-only rows.
    pub updating: bool,
    /// Batches carry the hidden event-time columns (`_ts`, `_wm`).
    pub timed: bool,
}

impl Stream {
    fn new(source: BoundTable) -> Self {
        let time_column = source.table.watermark.as_ref().map(|w| w.column);
        Self {
            plan: Plan::Source { source, ops: Vec::new() },
            window: None,
            time_column,
            window_result: None,
            updating: false,
            timed: true,
        }
    }

    /// The stream of `stage` over this one (its input 0).
    fn into_stage(self, stage: PlannedStage) -> Plan {
        Plan::Stage { stage, inputs: vec![(0, self.plan)], post: Vec::new() }
    }

    /// Appends `op` after the stream's last operators.
    pub fn push(&mut self, op: StatelessOp) {
        self.plan.push(op);
    }
}

/// Schemas of operator outputs are nullable: nullability is not tracked through streams.
pub fn nullable(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<Field>>(),
    ))
}

pub(crate) fn physical(expr: &Expr, schema: &DFSchemaRef) -> SqlResult<Arc<dyn PhysicalExpr>> {
    let expr = prepare(expr, schema)?;
    let physical = create_physical_expr(&expr, schema, &ExecutionProps::new(), &PhysicalPlanningContext::default())?;
    // CURRENT_WATERMARK(ts) reads the watermark each row carries.
    let resolved = physical.transform_up(|e| {
        Ok(match e.downcast_ref::<ScalarFunctionExpr>() {
            Some(call) if call.name() == watermark::NAME => {
                Transformed::yes(Arc::new(watermark::CurrentWatermark) as Arc<dyn PhysicalExpr>)
            }
            _ => Transformed::no(e),
        })
    })?;
    Ok(resolved.data)
}

/// `CURRENT_WATERMARK` only where rows carry their own watermark (a table's rows, before any
/// aggregation or join), and only of the event-time column.
fn check_current_watermark(exprs: &[&Expr], schema: &DFSchemaRef, stream: &Stream) -> SqlResult<()> {
    let calls = current_watermark_calls(exprs)?;
    if calls.is_empty() {
        return Ok(());
    }
    if !stream.plan.reads_rows() {
        return Err(SqlError::new(
            "CURRENT_WATERMARK is supported on a table's rows (before aggregations, joins and OVER), where each \
             row carries the watermark it is judged by",
        ));
    }
    for args in calls {
        let column = match args.as_slice() {
            [Expr::Column(column)] => schema.index_of_column(column).ok(),
            _ => None,
        };
        if column.is_none() || column != stream.time_column {
            return Err(SqlError::new(
                "CURRENT_WATERMARK takes the table's event-time column (the one its WATERMARK FOR names)",
            ));
        }
    }
    Ok(())
}

/// Why a subquery in an expression cannot run, and what comes instead.
pub const SUBQUERY_UNSUPPORTED: &str = "subqueries in WHERE and in other expressions (IN (SELECT ...), EXISTS (SELECT ...), \
     (SELECT ...)) are not supported yet; most can be written as joins, which come later";

/// `expr` as the engine evaluates it: subqueries refused, processing-time functions read per
/// batch, functions rewritten by their simplification hooks, types coerced (see the module docs).
pub(crate) fn prepare(expr: &Expr, schema: &DFSchemaRef) -> SqlResult<Expr> {
    let has_subquery =
        expr.exists(|e| Ok(matches!(e, Expr::InSubquery(_) | Expr::Exists(_) | Expr::ScalarSubquery(_))))?;
    if has_subquery {
        return Err(SqlError::new(SUBQUERY_UNSUPPORTED));
    }
    let expr = per_batch_time(expr.clone())?;
    // No query start time: functions of it (now()) are left as they are, not folded.
    let context = SimplifyContext::builder().with_schema(schema.clone()).build();
    let expr = rewrite_functions(expr, &context)?;
    Ok(ExprSimplifier::new(context).coerce(expr, schema)?)
}

/// Passes of function rewrites over an expression, as DataFusion's simplifier makes by default:
/// a rewrite may give calls to rewrite again, and some hooks say they rewrote when nothing
/// changed.
const FUNCTION_REWRITE_PASSES: usize = 3;

/// Applies each scalar function's own simplification ([`ScalarUDF::simplify`]) bottom-up, until
/// nothing changes (at most [`FUNCTION_REWRITE_PASSES`] times): `COALESCE`, `NVL2`,
/// `arrow_cast`, ... can only run rewritten. The rest of DataFusion's `ExprSimplifier` is not
/// run: it folds constant subexpressions by evaluating them while planning, and a constant such
/// as `rpad('x', 2147483647)` would then take planning, not the job, minutes and gigabytes (the
/// fuzzer found it); planning stays bounded, and such an expression costs what it costs when
/// the query runs.
fn rewrite_functions(mut expr: Expr, context: &SimplifyContext) -> SqlResult<Expr> {
    for _ in 0..FUNCTION_REWRITE_PASSES {
        let pass = expr.clone().transform_up(|e| {
            let Expr::ScalarFunction(ScalarFunction { func, args }) = e else { return Ok(Transformed::no(e)) };
            Ok(match func.simplify(args, context)? {
                ExprSimplifyResult::Original(args) => {
                    Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args }))
                }
                ExprSimplifyResult::Simplified(simpler) => Transformed::yes(simpler),
            })
        })?;
        if !pass.transformed || pass.data == expr {
            return Ok(pass.data);
        }
        expr = pass.data;
    }
    Ok(expr)
}

/// An aggregate call with its arguments, FILTER and ORDER BY prepared; the call itself is kept
/// (simplifying it whole could rewrite it into something that is not an aggregate).
fn prepare_aggregate(expr: &Expr, schema: &DFSchemaRef) -> SqlResult<Expr> {
    match expr {
        Expr::Alias(alias) => {
            let inner = prepare_aggregate(&alias.expr, schema)?;
            Ok(Expr::Alias(Alias { expr: Box::new(inner), ..alias.clone() }))
        }
        Expr::AggregateFunction(call) => {
            let mut call = call.clone();
            let params = &mut call.params;
            for arg in &mut params.args {
                *arg = prepare(arg, schema)?;
            }
            if let Some(filter) = &mut params.filter {
                **filter = prepare(filter, schema)?;
            }
            for sort in &mut params.order_by {
                sort.expr = prepare(&sort.expr, schema)?;
            }
            Ok(Expr::AggregateFunction(call))
        }
        other => Ok(other.clone()),
    }
}

/// Functions of the time a query runs, which DataFusion simplifies into one constant for the
/// whole (batch) query.
const PROCESSING_TIME_FUNCTIONS: &[&str] = &["now", "current_date", "current_time"];

/// Replaces calls of [`PROCESSING_TIME_FUNCTIONS`] by [`ProcessingTime`] calls.
fn per_batch_time(expr: Expr) -> SqlResult<Expr> {
    let replaced = expr.transform_up(|e| match e {
        Expr::ScalarFunction(call)
            if call.args.is_empty()
                && call.func.signature().volatility != Volatility::Volatile
                && PROCESSING_TIME_FUNCTIONS.contains(&call.func.name()) =>
        {
            let per_batch = ScalarUDF::new_from_impl(ProcessingTime::new(call.func));
            Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(per_batch), Vec::new()))))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(replaced.data)
}

/// A time function (`now()`, ...) evaluated when each batch is processed: DataFusion's own
/// simplifies to the query's start time and cannot be invoked, so this one simplifies it
/// again, with the current time, every time it is invoked. Volatile, so the simplifier leaves
/// it alone.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ProcessingTime {
    time: Arc<ScalarUDF>,
    signature: Signature,
}

impl ProcessingTime {
    fn new(time: Arc<ScalarUDF>) -> Self {
        Self { time, signature: Signature::nullary(Volatility::Volatile) }
    }
}

impl ScalarUDFImpl for ProcessingTime {
    fn name(&self) -> &str {
        self.time.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        self.time.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::common::Result<FieldRef> {
        self.time.return_field_from_args(args)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        let now = SimplifyContext::builder().with_current_time().build();
        match self.time.simplify(Vec::new(), &now)? {
            ExprSimplifyResult::Simplified(Expr::Literal(value, _)) => Ok(ColumnarValue::Scalar(value)),
            _ => internal_err!("{}() did not simplify to a time", self.name()),
        }
    }
}

/// Rejects expressions that read virtual window columns before the aggregation.
fn check_no_window_columns(
    expr: &Expr,
    schema: &DFSchema,
    window: Option<WindowInput>,
    context: &str,
) -> SqlResult<()> {
    let Some(window) = window else { return Ok(()) };
    for column in expr.column_refs() {
        if let Ok(index) = schema.index_of_column(column)
            && index >= window.first_virtual
        {
            return Err(SqlError::new(format!(
                "{} can only be used in the GROUP BY of a windowed aggregation and after it, not in {context}",
                column.name
            )));
        }
    }
    Ok(())
}

/// A window TVF's rows (one per row and window) are only available through GROUP BY so far.
pub fn window_without_aggregation() -> SqlError {
    SqlError::new(format!(
        "a window TVF must be aggregated with GROUP BY {}, {}, ...; selecting its rows directly is not supported yet",
        WINDOW_COLUMNS[0], WINDOW_COLUMNS[1]
    ))
}

/// Why ORDER BY cannot run on a stream, and what to do instead.
pub const ORDER_BY_UNSUPPORTED: &str = "ORDER BY is not supported on an unbounded stream (it would never finish); order results in the sink or query them afterwards";
/// Why LIMIT cannot run on a stream, and what to do instead.
pub const LIMIT_UNSUPPORTED: &str =
    "LIMIT is not supported on an unbounded stream; filter with WHERE, or aggregate per window";

fn unsupported(plan: &LogicalPlan) -> SqlError {
    let message = match plan {
        LogicalPlan::Sort(_) => ORDER_BY_UNSUPPORTED,
        LogicalPlan::Limit(_) => LIMIT_UNSUPPORTED,
        LogicalPlan::Distinct(_) => {
            "SELECT DISTINCT is not supported on a stream yet; use GROUP BY window_start, window_end, ... over a window TVF"
        }
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => {
            "a streaming query must read FROM a table declared with CREATE TABLE"
        }
        LogicalPlan::Unnest(_) => "UNNEST is not supported yet",
        LogicalPlan::Subquery(_) => SUBQUERY_UNSUPPORTED,
        LogicalPlan::RecursiveQuery(_) => "recursive queries are not supported",
        _ => "",
    };
    if message.is_empty() {
        SqlError::new(format!("{} is not supported in streaming queries", plan.display()))
    } else {
        SqlError::new(message)
    }
}

/// Lowers a whole query: [`lower`], with the `ROW_NUMBER` bounds found on the way kept for this
/// plan only.
pub fn lower_query(plan: &LogicalPlan) -> SqlResult<Stream> {
    super::over::forget_row_number_limits();
    let stream = lower(plan);
    super::over::forget_row_number_limits();
    stream
}

/// Lowers `plan` (analyzed, unoptimized) to a [`Stream`].
pub fn lower(plan: &LogicalPlan) -> SqlResult<Stream> {
    match plan {
        LogicalPlan::TableScan(scan) => lower_scan(scan),
        LogicalPlan::SubqueryAlias(alias) => lower(&alias.input),
        LogicalPlan::Filter(filter) => {
            // The WHERE of a comma join holds its condition.
            if let LogicalPlan::Join(join) = filter.input.as_ref()
                && join.on.is_empty()
                && join.filter.is_none()
            {
                return super::join::lower_join(join, Some(&filter.predicate));
            }
            super::over::note_row_number_limit(filter);
            let mut stream = lower(&filter.input)?;
            let schema = filter.input.schema();
            check_no_window_columns(&filter.predicate, schema, stream.window, "WHERE")?;
            check_current_watermark(&[&filter.predicate], schema, &stream)?;
            let predicate = physical(&filter.predicate, schema)?;
            stream.push(StatelessOp::Filter(predicate));
            Ok(stream)
        }
        LogicalPlan::Projection(projection) => {
            let mut stream = lower(&projection.input)?;
            let schema = projection.input.schema();
            if stream.window.is_some() {
                return Err(window_without_aggregation());
            }
            check_current_watermark(&projection.expr.iter().collect::<Vec<_>>(), schema, &stream)?;
            let position_of = |column: usize| {
                projection.expr.iter().position(
                    |e| matches!(e.clone().unalias(), Expr::Column(c) if schema.index_of_column(&c).ok() == Some(column)),
                )
            };
            stream.time_column = stream.time_column.and_then(position_of);
            if let Some(result) = &mut stream.window_result {
                result.columns = result.columns.map(|c| c.and_then(position_of));
            }
            let exprs = projection.expr.iter().map(|e| physical(e, schema)).collect::<SqlResult<Vec<_>>>()?;
            stream.push(StatelessOp::Project { exprs, schema: nullable(projection.schema.as_arrow()) });
            Ok(stream)
        }
        LogicalPlan::Aggregate(aggregate) => {
            let exprs: Vec<&Expr> = aggregate.group_expr.iter().chain(&aggregate.aggr_expr).collect();
            if !current_watermark_calls(&exprs)?.is_empty() {
                return Err(SqlError::new(
                    "CURRENT_WATERMARK inside an aggregation is not supported; use it in WHERE (or the SELECT list) \
                     of the rows before they are aggregated",
                ));
            }
            let mut stream = lower(&aggregate.input)?;
            if stream.updating && stream.window.is_some() {
                return Err(SqlError::new(
                    "a window over the result of an aggregation without a window (an updating result) is not \
                     supported; window the input rows instead",
                ));
            }
            let Some(window) = stream.window.take() else {
                if let Some(result) = stream.window_result.filter(|r| groups_by_window(aggregate, r)) {
                    if !groups_by_one_window(aggregate, &result) {
                        return Err(SqlError::new(format!(
                            "{} of CUMULATE and SESSION results does not identify one window (their windows share \
                             starts); GROUP BY {} (or {}) as well",
                            WINDOW_COLUMNS[0], WINDOW_COLUMNS[1], WINDOW_COLUMNS[2]
                        )));
                    }
                    return lower_cascaded_aggregate(aggregate, stream, result);
                }
                return lower_updating_aggregate(aggregate, stream);
            };
            let input_schema = aggregate.input.schema();
            let output_schema = aggregate.schema.as_arrow();
            let mut outputs = Vec::new();
            let mut key_exprs = Vec::new();
            let mut key_fields = Vec::new();
            for (i, expr) in group_keys(aggregate)?.into_iter().enumerate() {
                if let Expr::Column(column) = expr
                    && let Ok(index) = input_schema.index_of_column(column)
                    && index >= window.first_virtual
                {
                    outputs.push(match index - window.first_virtual {
                        0 => GroupOutput::WindowStart,
                        1 => GroupOutput::WindowEnd,
                        _ => GroupOutput::WindowTime,
                    });
                    continue;
                }
                check_no_window_columns(
                    expr,
                    input_schema,
                    Some(window),
                    "an expression (group by the window column itself)",
                )?;
                outputs.push(GroupOutput::Key(key_exprs.len()));
                key_exprs.push(physical(expr, input_schema)?);
                key_fields.push(key_field(output_schema, i)?);
            }
            if !outputs.iter().any(|o| matches!(o, GroupOutput::WindowStart | GroupOutput::WindowEnd)) {
                return Err(SqlError::new(format!(
                    "a windowed aggregation must GROUP BY {} and {} of its window TVF",
                    WINDOW_COLUMNS[0], WINDOW_COLUMNS[1]
                )));
            }
            if window.shape.kind == WindowKind::Session {
                check_session_keys(aggregate, window)?;
            }
            let position = |wanted: fn(&GroupOutput) -> bool| outputs.iter().position(wanted);
            let result = WindowResult {
                shape: window.shape,
                columns: [
                    position(|o| matches!(o, GroupOutput::WindowStart)),
                    position(|o| matches!(o, GroupOutput::WindowEnd)),
                    position(|o| matches!(o, GroupOutput::WindowTime)),
                ],
            };
            let spec = AggregateSpec {
                window: Some(window.shape),
                key_exprs,
                key_fields,
                aggregates: aggregate_calls(aggregate, Some(window))?,
                outputs,
                output_schema: nullable(output_schema),
            };
            let input = visible_input(aggregate, window.first_virtual);
            Ok(windowed(stream, spec, result, input))
        }
        LogicalPlan::Join(join) => super::join::lower_join(join, None),
        LogicalPlan::Window(window) => {
            refuse_row_keeping_aggregates(&window.window_expr, "OVER (frames drop rows as they slide)", true)?;
            super::over::lower_over(window)
        }
        LogicalPlan::Union(union) => {
            let branches = union.inputs.iter().map(|input| lower(input)).collect::<SqlResult<Vec<_>>>()?;
            if branches.iter().any(|b| b.window.is_some()) {
                return Err(window_without_aggregation());
            }
            if branches.iter().any(|b| b.updating) {
                return Err(SqlError::new(
                    "UNION ALL of an updating result (an aggregation without a window) is not supported yet",
                ));
            }
            let timed = branches[0].timed;
            if branches.iter().any(|b| b.timed != timed) {
                return Err(SqlError::new(
                    "UNION ALL of inputs with an event time (tables with a WATERMARK, window results) and inputs \
                     without one (join results) is not supported yet",
                ));
            }
            let time_column = branches[0].time_column.filter(|t| branches.iter().all(|b| b.time_column == Some(*t)));
            Ok(Stream {
                plan: Plan::Union(branches.into_iter().map(|b| b.plan).collect()),
                window: None,
                time_column,
                window_result: None,
                updating: false,
                timed,
            })
        }
        other => Err(unsupported(other)),
    }
}

/// The stream of a windowed aggregation over `stream`: its results carry their window_time as
/// their event time.
fn windowed(stream: Stream, spec: AggregateSpec, result: WindowResult, input: SchemaRef) -> Stream {
    Stream {
        plan: stream.into_stage(PlannedStage::Aggregate(Arc::new(spec), input)),
        window: None,
        // Results of windows over processing time have no event time (the watermarks that
        // follow them are the input's, not the clock's): nothing downstream may close windows
        // of them (cascaded windows, window Top-N, window joins of results).
        time_column: if result.shape.processing_time { None } else { result.columns[2] },
        window_result: (!result.shape.processing_time).then_some(result),
        updating: false,
        timed: true,
    }
}

/// The first `visible` columns of `aggregate`'s input: those its batches carry.
fn visible_input(aggregate: &datafusion::logical_expr::Aggregate, visible: usize) -> SchemaRef {
    let fields: Vec<FieldRef> = aggregate.input.schema().fields().iter().take(visible).cloned().collect();
    Arc::new(Schema::new(fields))
}

/// A SESSION window with PARTITION BY must GROUP BY exactly its keys (besides the window): the
/// sessions are kept per key, and each group is one session.
fn check_session_keys(aggregate: &datafusion::logical_expr::Aggregate, window: WindowInput) -> SqlResult<()> {
    if window.session_keys == 0 {
        return Ok(());
    }
    let schema = aggregate.input.schema();
    let mut grouped = 0u64;
    let mut other = false;
    for key in group_keys(aggregate)? {
        match key {
            Expr::Column(c) => match schema.index_of_column(c) {
                Ok(i) if i >= window.first_virtual => {}
                Ok(i) if i < 64 && window.session_keys & (1 << i) != 0 => grouped |= 1 << i,
                _ => other = true,
            },
            _ => other = true,
        }
    }
    if other || grouped != window.session_keys {
        let keys: Vec<&str> =
            (0..64).filter(|i| window.session_keys & (1 << i) != 0).map(|i| schema.field(i).name().as_str()).collect();
        return Err(SqlError::new(format!(
            "a SESSION window with PARTITION BY {0} must GROUP BY {1}, {2} and exactly {0} (sessions are kept per \
             PARTITION BY key); to group by other columns, leave PARTITION BY out: the GROUP BY keys are then the \
             session keys",
            keys.join(", "),
            WINDOW_COLUMNS[0],
            WINDOW_COLUMNS[1]
        )));
    }
    Ok(())
}

/// Whether `aggregate` groups by a window column of the window results it reads: then each of
/// its groups lies within one window, and it is a windowed aggregation too (as in Flink).
fn groups_by_window(aggregate: &datafusion::logical_expr::Aggregate, result: &WindowResult) -> bool {
    let schema = aggregate.input.schema();
    let Ok(keys) = group_keys(aggregate) else { return false };
    keys.iter().any(|key| {
        matches!(key, Expr::Column(c) if schema.index_of_column(c).is_ok_and(|i| result.columns.contains(&Some(i))))
    })
}

/// Whether `aggregate` groups by a column that identifies one window of `result`: any window
/// column of TUMBLE and HOP results, but only window_end or window_time of CUMULATE and SESSION
/// results, whose windows share their starts.
fn groups_by_one_window(aggregate: &datafusion::logical_expr::Aggregate, result: &WindowResult) -> bool {
    let schema = aggregate.input.schema();
    let Ok(keys) = group_keys(aggregate) else { return false };
    let identifying = match result.shape.kind {
        WindowKind::Tumble | WindowKind::Hop => &result.columns[..],
        WindowKind::Cumulate | WindowKind::Session => &result.columns[1..],
    };
    keys.iter().any(
        |key| matches!(key, Expr::Column(c) if schema.index_of_column(c).is_ok_and(|i| identifying.contains(&Some(i)))),
    )
}

/// An aggregation grouped by a window column of window results (`GROUP BY window_start,
/// window_end` of an aggregation over a TUMBLE or HOP): every row of a group comes from the same
/// window, so it runs as a TUMBLE over the rows' window_time with one pane of the window's
/// shape as its size — each window ends where the window its rows came from ends — and the
/// window columns are ordinary keys.
fn lower_cascaded_aggregate(
    aggregate: &datafusion::logical_expr::Aggregate,
    stream: Stream,
    upstream: WindowResult,
) -> SqlResult<Stream> {
    let input_schema = aggregate.input.schema();
    let output_schema = aggregate.schema.as_arrow();
    if upstream.shape.kind == WindowKind::Session {
        return Err(SqlError::new(
            "an aggregation grouped by the windows of SESSION results is not supported yet; aggregate the input \
             rows per session directly",
        ));
    }
    let shape = WindowShape::tumble(upstream.shape.pane_ms).map_err(|e| SqlError::new(e.to_string()))?;
    let mut key_exprs = Vec::new();
    let mut key_fields = Vec::new();
    let mut columns = [None; 3];
    for (i, expr) in group_keys(aggregate)?.into_iter().enumerate() {
        if let Expr::Column(c) = expr
            && let Ok(index) = input_schema.index_of_column(c)
            && let Some(which) = upstream.columns.iter().position(|w| *w == Some(index))
        {
            columns[which] = Some(i);
        }
        key_exprs.push(physical(expr, input_schema)?);
        key_fields.push(key_field(output_schema, i)?);
    }
    let spec = AggregateSpec {
        window: Some(shape),
        outputs: (0..key_exprs.len()).map(GroupOutput::Key).collect(),
        key_exprs,
        key_fields,
        aggregates: aggregate_calls(aggregate, None)?,
        output_schema: nullable(output_schema),
    };
    let input = visible_input(aggregate, input_schema.fields().len());
    Ok(windowed(stream, spec, WindowResult { shape: upstream.shape, columns }, input))
}

/// The distinct GROUP BY keys, in the order of the aggregate's output columns. DataFusion keeps
/// `GROUP BY k, k` as written but gives the aggregate one column per distinct key, as a batch
/// query groups by it: the same key twice groups the same rows.
fn group_keys(aggregate: &datafusion::logical_expr::Aggregate) -> SqlResult<Vec<&Expr>> {
    if aggregate.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
        return Err(SqlError::new("GROUPING SETS, CUBE and ROLLUP are not supported on streams yet"));
    }
    Ok(grouping_set_to_exprlist(&aggregate.group_expr)?)
}

/// The output column of the `i`th distinct GROUP BY key (they come first).
fn key_field(output_schema: &Schema, i: usize) -> SqlResult<Arc<Field>> {
    let field = output_schema.fields().get(i).ok_or_else(|| {
        SqlError::new(format!("internal: the aggregate has no output column for GROUP BY key {}", i + 1))
    })?;
    Ok(Arc::new(field.as_ref().clone().with_nullable(true)))
}

/// A GROUP BY without a window: state per key, results emitted as a changelog.
fn lower_updating_aggregate(aggregate: &datafusion::logical_expr::Aggregate, stream: Stream) -> SqlResult<Stream> {
    refuse_row_keeping_aggregates(
        &aggregate.aggr_expr,
        "an aggregation without a window (its groups never end)",
        false,
    )?;
    let input_schema = aggregate.input.schema();
    let output_schema = aggregate.schema.as_arrow();
    let mut key_exprs = Vec::new();
    let mut key_fields = Vec::new();
    for (i, expr) in group_keys(aggregate)?.into_iter().enumerate() {
        key_exprs.push(physical(expr, input_schema)?);
        key_fields.push(key_field(output_schema, i)?);
    }
    let spec = AggregateSpec {
        window: None,
        outputs: (0..key_exprs.len()).map(GroupOutput::Key).collect(),
        key_exprs,
        key_fields,
        aggregates: aggregate_calls(aggregate, None)?,
        output_schema: nullable(output_schema),
    };
    if stream.updating {
        // Over a changelog: every call must be able to take rows back out.
        for call in &spec.aggregates {
            check_retractable(call).map_err(SqlError::new)?;
        }
    }
    Ok(Stream {
        plan: stream
            .into_stage(PlannedStage::Aggregate(Arc::new(spec), visible_input(aggregate, input_schema.fields().len()))),
        window: None,
        time_column: None,
        window_result: None,
        updating: true,
        timed: false,
    })
}

/// The aggregate calls of `aggregate`, prepared for execution.
fn aggregate_calls(
    aggregate: &datafusion::logical_expr::Aggregate,
    window: Option<WindowInput>,
) -> SqlResult<Vec<AggregateCall>> {
    let input_schema = aggregate.input.schema();
    let physical_input = input_schema.as_arrow();
    aggregate
        .aggr_expr
        .iter()
        .map(|expr| {
            check_no_window_columns(expr, input_schema, window, "an aggregate function")?;
            let expr = prepare_aggregate(expr, input_schema)?;
            let props = ExecutionProps::new();
            let context = PhysicalPlanningContext::default();
            let lowered =
                LoweredAggregateBuilder::new(&expr, input_schema, physical_input, &props, &context).build()?;
            // Accumulators are made per group while the job runs: one made now reports what
            // their arguments get wrong (FORECAST's constants) when the query is planned.
            lowered.aggregate.create_accumulator()?;
            Ok(AggregateCall::new(lowered.aggregate, lowered.filter))
        })
        .collect()
}

fn lower_relation(relation: &Relation) -> SqlResult<Stream> {
    match relation {
        Relation::Table(bound) => Ok(Stream::new(bound.clone())),
        Relation::View(plan) => lower(plan),
    }
}

fn lower_scan(scan: &TableScan) -> SqlResult<Stream> {
    if !scan.filters.is_empty() || scan.fetch.is_some() {
        return Err(SqlError::new("internal: table scans with pushed-down filters or limits are not expected"));
    }
    let source = scan.source.as_ref();
    let mut stream = if let Some(table) = source.downcast_ref::<ConnectorTableSource>() {
        Stream::new(table.bound.clone())
    } else if let Some(window) = source.downcast_ref::<WindowTableSource>() {
        lower_window(window)?
    } else {
        return Err(SqlError::new(format!("table '{}' cannot be read as a stream", scan.table_name)));
    };
    if let Some(projection) = &scan.projection {
        if stream.window.is_some() {
            return Err(SqlError::new("internal: projected scans of window TVFs are not expected"));
        }
        let schema = scan.source.schema();
        let exprs = projection
            .iter()
            .map(|&i| Arc::new(PhysicalColumn::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>)
            .collect();
        stream.time_column = stream.time_column.and_then(|t| projection.iter().position(|&i| i == t));
        stream.push(StatelessOp::Project {
            exprs,
            schema: nullable(&schema.project(projection).map_err(|e| SqlError::new(e.to_string()))?),
        });
    }
    Ok(stream)
}

fn lower_window(source: &WindowTableSource) -> SqlResult<Stream> {
    let window = &source.window;
    let mut stream = lower_relation(&source.input).map_err(|e| e.or_at(window.span.start))?;
    if stream.updating || stream.window.is_some() {
        return Err(SqlError::at_span(
            "the input of a window TVF must be a table, a view without aggregation, or window results",
            window.input_span,
        ));
    }
    let input_schema = source.input.schema();
    let descriptor = crate::planner::normalize_ident(&window.descriptor);
    let Some((index, _)) = input_schema.column_with_name(&descriptor) else {
        return Err(SqlError::at_span(
            format!("DESCRIPTOR({descriptor}): '{}' has no column '{descriptor}'", window.input),
            window.descriptor_span,
        ));
    };
    let mut shape = window.shape;
    if stream.time_column != Some(index) && processing_time_column(&source.input, index) {
        if shape.kind == WindowKind::Session {
            return Err(SqlError::at_span(
                "SESSION windows over processing time (PROCTIME()) are not supported yet; use an event-time column",
                window.descriptor_span,
            ));
        }
        shape = shape.over_processing_time();
    } else if stream.time_column != Some(index) {
        let hint = match &stream.plan {
            Plan::Source { source, .. } => time_hint(&source.table, &descriptor),
            _ if !stream.timed => "the input has no event time (the result of a join has none)".to_string(),
            _ => "the event time of window results is their window_time column, when selected".to_string(),
        };
        return Err(SqlError::at_span(
            format!(
                "DESCRIPTOR({descriptor}) must name the event-time column of the input, or a PROCTIME() \
                 column for windows over processing time; {hint}"
            ),
            window.descriptor_span,
        ));
    }
    let mut session_keys = 0u64;
    for key in &window.partition_by {
        let name = crate::planner::normalize_ident(key);
        match input_schema.column_with_name(&name) {
            Some((i, _)) if i < 64 => session_keys |= 1 << i,
            Some(_) => {
                return Err(SqlError::at_span(
                    format!("PARTITION BY {name}: only the first 64 columns of the input can be session keys"),
                    window.input_span,
                ));
            }
            None => {
                return Err(SqlError::at_span(
                    format!("PARTITION BY {name}: '{}' has no column '{name}'", window.input),
                    window.input_span,
                ));
            }
        }
    }
    stream.window = Some(WindowInput { shape, first_virtual: input_schema.fields().len(), session_keys });
    Ok(stream)
}

/// The arguments of each `CURRENT_WATERMARK` call in `exprs`.
fn current_watermark_calls(exprs: &[&Expr]) -> SqlResult<Vec<Vec<Expr>>> {
    let mut calls = Vec::new();
    for expr in exprs {
        expr.apply(|e| {
            if let Expr::ScalarFunction(call) = e
                && call.func.name() == watermark::NAME
            {
                calls.push(call.args.clone());
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })?;
    }
    Ok(calls)
}

/// Python aggregates and FORECAST keep a group's rows until the group is emitted: only windows
/// end groups. Python aggregates cannot take rows back out either, so `retracting` places (OVER
/// frames) refuse them alone.
fn refuse_row_keeping_aggregates(exprs: &[Expr], place: &str, retracting: bool) -> SqlResult<()> {
    let refused = |udaf: &datafusion::logical_expr::AggregateUDF| {
        crate::functions::python::is_python_aggregate(udaf) || (!retracting && udaf.name() == "forecast")
    };
    for expr in exprs {
        let mut found = None;
        expr.apply(|e| {
            match e {
                Expr::AggregateFunction(call) if refused(&call.func) => {
                    found = Some(call.func.name().to_string());
                }
                Expr::WindowFunction(call) => {
                    if let datafusion::logical_expr::WindowFunctionDefinition::AggregateUDF(udaf) = &call.fun
                        && refused(udaf)
                    {
                        found = Some(udaf.name().to_string());
                    }
                }
                _ => {}
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })?;
        if let Some(name) = found {
            let what = if name == "forecast" { "FORECAST".to_string() } else { format!("the Python aggregate {name}") };
            return Err(SqlError::new(format!(
                "{what} runs over windows only, not in {place}; aggregate per window \
                 (GROUP BY window_start, window_end, ...)"
            )));
        }
    }
    Ok(())
}

/// Field metadata marking a table's computed `PROCTIME()` column (a processing-time attribute).
pub const PROCESSING_TIME_FIELD: &str = "streamsql.proctime";

/// Whether `expr` is `PROCTIME()` (or `NOW()`, `CURRENT_TIMESTAMP`: one function), maybe aliased.
pub(crate) fn is_processing_time_call(expr: &Expr) -> bool {
    match expr {
        Expr::Alias(alias) => is_processing_time_call(&alias.expr),
        Expr::ScalarFunction(call) => call.args.is_empty() && call.func.name() == "now",
        _ => false,
    }
}

/// Whether column `index` of `relation` is processing time: a `PROCTIME()` computed column of a
/// table, or a view's `PROCTIME() AS name`, passed through projections, filters and aliases.
fn processing_time_column(relation: &Relation, index: usize) -> bool {
    match relation {
        Relation::Table(bound) => marked_processing_time(&bound.table.schema, index),
        Relation::View(plan) => processing_time_in_plan(plan, index),
    }
}

/// Whether column `index` of `schema` carries the [`PROCESSING_TIME_FIELD`] mark.
fn marked_processing_time(schema: &Schema, index: usize) -> bool {
    index < schema.fields().len() && schema.field(index).metadata().contains_key(PROCESSING_TIME_FIELD)
}

fn processing_time_in_plan(plan: &LogicalPlan, index: usize) -> bool {
    match plan {
        LogicalPlan::Projection(projection) => match projection.expr.get(index) {
            Some(expr) if is_processing_time_call(expr) => true,
            Some(expr) => match expr.clone().unalias() {
                Expr::Column(column) => projection
                    .input
                    .schema()
                    .index_of_column(&column)
                    .is_ok_and(|i| processing_time_in_plan(&projection.input, i)),
                _ => false,
            },
            None => false,
        },
        LogicalPlan::Filter(filter) => processing_time_in_plan(&filter.input, index),
        LogicalPlan::SubqueryAlias(alias) => processing_time_in_plan(&alias.input, index),
        LogicalPlan::TableScan(scan) => marked_processing_time(scan.projected_schema.as_arrow(), index),
        _ => false,
    }
}

/// Which column of `table` is its event time, or how to declare one.
fn time_hint(table: &streamsql_engine::connector::TableDef, descriptor: &str) -> String {
    match &table.watermark {
        Some(w) => format!(
            "the event-time column of '{}' is '{}' (declared with WATERMARK FOR)",
            table.name,
            table.schema.field(w.column).name()
        ),
        None => format!(
            "table '{}' has no event time: declare WATERMARK FOR {descriptor} AS {descriptor} - INTERVAL '1' SECOND in its CREATE TABLE",
            table.name
        ),
    }
}
