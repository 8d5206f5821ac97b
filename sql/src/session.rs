//! A SQL session: settings, the catalog, and statement execution.

use std::sync::Arc;

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use datafusion::sql::sqlparser::ast::{Query, Spanned, Statement as SqlStatement};
use streamsql_engine::connector::{ConnectorRegistry, Role, TableDef};
use streamsql_engine::operators::stateless::StatelessChain;
use streamsql_engine::pipeline::{AggregateStage, BoundTable, PipelineSpec};
use streamsql_engine::time::hidden_fields;

use crate::catalog::{Catalog, Relation};
use crate::error::{SqlError, SqlResult};
use crate::parser::{Statement, parse_script};
use crate::planner::ddl::{check_role, create_table};
use crate::planner::lower::{lower, nullable};
use crate::planner::normalize_object_name;
use crate::planner::sink::sink_projection;

/// Settings changed with `SET 'key' = 'value'`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `'parallelism.default'`: instances of each aggregation.
    pub parallelism: usize,
    /// `'execution.batch-size'`: largest number of rows per source batch.
    pub batch_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self { parallelism: 1, batch_size: 8192 }
    }
}

/// The settings `SET` accepts, with what they mean.
pub const SETTINGS: &[(&str, &str)] = &[
    ("parallelism.default", "number of instances of each aggregation (default 1)"),
    ("execution.batch-size", "largest number of rows per source batch (default 8192)"),
];

/// Runs SQL statements against a catalog of tables and views.
pub struct Session {
    registry: Arc<dyn ConnectorRegistry>,
    catalog: Catalog,
    settings: Settings,
    window_counter: usize,
}

impl Session {
    /// A new session whose tables use the connectors of `registry`.
    pub fn new(registry: Arc<dyn ConnectorRegistry>) -> Self {
        Self { registry, catalog: Catalog::default(), settings: Settings::default(), window_counter: 0 }
    }

    /// Current settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs every statement of `sql` in order. `SET`, `CREATE TABLE` and `CREATE VIEW` change
    /// the session; each `INSERT INTO` or bare query is planned into a pipeline, returned in
    /// order (not started).
    pub fn execute(&mut self, sql: &str) -> Result<Vec<PipelineSpec>, SqlError> {
        self.execute_script(sql).map_err(|e| e.with_source(sql))
    }

    fn execute_script(&mut self, sql: &str) -> SqlResult<Vec<PipelineSpec>> {
        let script = parse_script(sql, &mut self.window_counter)?;
        for window in script.windows {
            self.catalog.windows.insert(window.relation.clone(), window);
        }
        let mut pipelines = Vec::new();
        for located in script.statements {
            let start = located.start;
            let planned = match located.statement {
                Statement::Set { key, value } => self.set(&key, &value).map(|_| None),
                Statement::CreateTable(create) => {
                    let name = normalize_object_name(&create.name);
                    if self.catalog.relations.contains_key(&name) {
                        if create.if_not_exists {
                            continue;
                        }
                        return Err(SqlError::at_span(format!("table '{name}' already exists"), create.name.span()));
                    }
                    let bound = create_table(&create, &name, self.registry.as_ref())?;
                    self.catalog.relations.insert(name, Relation::Table(bound));
                    Ok(None)
                }
                Statement::CreateView { name, or_replace, if_not_exists, query } => {
                    let key = normalize_object_name(&name);
                    if self.catalog.relations.contains_key(&key) && !or_replace {
                        if if_not_exists {
                            continue;
                        }
                        return Err(SqlError::at_span(format!("'{key}' already exists"), name.span()));
                    }
                    if matches!(self.catalog.relations.get(&key), Some(Relation::Table(_))) {
                        return Err(SqlError::at_span(format!("'{key}' is a table, not a view"), name.span()));
                    }
                    let plan = self.plan_query(&query)?;
                    // Reject views that cannot run as streams now, not when first used.
                    lower(&plan)?;
                    self.catalog.relations.insert(key, Relation::View(Arc::new(plan)));
                    Ok(None)
                }
                Statement::Insert { table, query } => {
                    let name = normalize_object_name(&table);
                    let sink = match self.catalog.relations.get(&name) {
                        Some(Relation::Table(bound)) => bound.clone(),
                        Some(Relation::View(_)) => {
                            return Err(SqlError::at_span(format!("cannot INSERT INTO view '{name}'"), table.span()));
                        }
                        None => {
                            return Err(SqlError::at_span(
                                format!("table '{name}' does not exist; declare it with CREATE TABLE first"),
                                table.span(),
                            ));
                        }
                    };
                    check_role(&sink)(Role::Sink).map_err(|e| e.or_at(table.span().start))?;
                    let query = name_insert_columns(*query, &sink.table.schema);
                    self.plan_pipeline(format!("INSERT INTO {name}"), &query, Some(sink)).map(Some)
                }
                Statement::Query(query) => self.plan_pipeline("SELECT".into(), &query, None).map(Some),
            };
            if let Some(pipeline) = planned.map_err(|e| e.or_at(start))? {
                pipelines.push(pipeline)
            }
        }
        Ok(pipelines)
    }

    fn set(&mut self, key: &str, value: &str) -> SqlResult<()> {
        let positive = |value: &str| -> SqlResult<usize> {
            value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| SqlError::new(format!("SET '{key}' needs a positive integer, got '{value}'")))
        };
        match key {
            "parallelism.default" => self.settings.parallelism = positive(value)?,
            "execution.batch-size" => self.settings.batch_size = positive(value)?,
            _ => {
                let known = SETTINGS.iter().map(|(k, help)| format!("'{k}' ({help})")).collect::<Vec<_>>().join(", ");
                return Err(SqlError::new(format!("unknown setting '{key}'; known settings: {known}")));
            }
        }
        Ok(())
    }

    /// Plans a query with DataFusion and runs its analyzer (type coercion), not its optimizer:
    /// optimizer rewrites (e.g. of COUNT(DISTINCT)) would hide the window aggregation.
    fn plan_query(&self, query: &Query) -> SqlResult<LogicalPlan> {
        reject_unbounded_clauses(query)?;
        let options =
            ParserOptions { collect_spans: true, map_string_types_to_utf8view: false, ..ParserOptions::default() };
        let planner = SqlToRel::new_with_options(&self.catalog, options);
        let plan = planner.sql_statement_to_plan(SqlStatement::Query(Box::new(query.clone())))?;
        let state = self.catalog.state();
        Ok(state.analyzer().execute_and_check(plan, state.config_options(), |_, _| {})?)
    }

    /// Plans `query` into a pipeline writing to `sink`, or printing its rows when there is none.
    fn plan_pipeline(&self, name: String, query: &Query, sink: Option<BoundTable>) -> SqlResult<PipelineSpec> {
        let plan = self.plan_query(query)?;
        let sink = match sink {
            Some(sink) => sink,
            None => self.print_sink(&plan)?,
        };
        let mut stream = lower(&plan)?;
        if stream.window.is_some() {
            return Err(crate::planner::lower::window_without_aggregation());
        }
        check_role(&stream.source)(Role::Source)?;
        let mapping = sink_projection(&sink.table.name, plan.schema(), &sink.table.schema)?;
        let sink_schema = sink.table.schema.clone();
        let aggregate = match stream.aggregate.take() {
            Some((spec, mut post)) => {
                post.push(mapping);
                Some(AggregateStage { spec, post: StatelessChain::new(post, &[]) })
            }
            None => {
                stream.pre.push(mapping);
                None
            }
        };
        Ok(PipelineSpec {
            name,
            source: stream.source,
            pre: StatelessChain::new(stream.pre, &hidden_fields()),
            aggregate,
            sink,
            sink_schema,
            parallelism: self.settings.parallelism,
            batch_size: self.settings.batch_size,
        })
    }

    /// The sink of a bare `SELECT`: rows printed to stdout.
    fn print_sink(&self, plan: &LogicalPlan) -> SqlResult<BoundTable> {
        let connector = self
            .registry
            .get("print")
            .ok_or_else(|| SqlError::new("a bare SELECT needs the 'print' connector, which is not available"))?;
        let table = TableDef {
            name: String::new(),
            schema: nullable(plan.schema().as_arrow()),
            options: [("connector".to_string(), "print".to_string()), ("print-identifier".to_string(), String::new())]
                .into_iter()
                .collect(),
            watermark: None,
            primary_key: Vec::new(),
        };
        Ok(BoundTable { table, connector })
    }
}

/// INSERT matches columns by position, so two unnamed select items may compute the same
/// expression (`SELECT k, k`); DataFusion needs distinct names, so unnamed items of a plain
/// SELECT are named after their sink columns. User aliases are kept (GROUP BY may use them).
fn name_insert_columns(mut query: Query, sink: &arrow::datatypes::Schema) -> Query {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem, SetExpr};
    if let SetExpr::Select(select) = query.body.as_mut()
        && select.projection.len() == sink.fields().len()
    {
        for (item, field) in select.projection.iter_mut().zip(sink.fields()) {
            if let SelectItem::UnnamedExpr(expr) = item {
                let alias = Ident::with_quote('"', field.name());
                *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias };
            }
        }
    }
    query
}

/// ORDER BY and LIMIT at the top of a streaming query, reported where they are written.
fn reject_unbounded_clauses(query: &Query) -> SqlResult<()> {
    if let Some(order_by) = &query.order_by {
        return Err(SqlError::at_span(
            "ORDER BY is not supported on an unbounded stream (it would never finish); order results in the sink or query them afterwards",
            order_by.span(),
        ));
    }
    if let Some(limit) = &query.limit_clause {
        return Err(SqlError::at_span(
            "LIMIT is not supported on an unbounded stream; filter with WHERE, or aggregate per window",
            limit.span(),
        ));
    }
    Ok(())
}
