//! A SQL session: settings, the catalog, and statement execution.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef};
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Column, DataFusionError, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, LimitClause, ObjectName, Query, Spanned, Statement as SqlStatement, Value as SqlValue,
};
use datafusion::sql::sqlparser::tokenizer::Span;
use streamsql_engine::checkpoint::{CheckpointConfig, Delivery};
use streamsql_engine::connector::{ChangelogMode, ConnectorRegistry, Role, TableDef};
use streamsql_engine::operators::aggregate::WindowShape;
use streamsql_engine::operators::aggregate::updating::op_field;
use streamsql_engine::operators::join::JoinSpec;
use streamsql_engine::operators::over::OverStage;
use streamsql_engine::operators::stateless::StatelessChain;
use streamsql_engine::operators::top_n::TopNStage;
use streamsql_engine::operators::window_join::JoinKind;
use streamsql_engine::pipeline::{
    AggPhases, AggregateStage, BoundTable, JoinStage, LateColumn, LateOutput, Node, PipelineSpec, Stage, StageInput,
};
use streamsql_engine::time::{hidden_fields, parse_duration_ms};

use crate::catalog::{Catalog, Relation};
use crate::error::{SqlError, SqlResult};
use crate::functions::python::{self, PythonConfig, PythonFunction};
use crate::functions::udf;
use crate::outcome::{Control, Outcome};
use crate::parser::{Located, Statement, parse_script};
use crate::planner::ddl::{bind_connector, check_external, check_role, create_table};
use crate::planner::lower::{
    LIMIT_UNSUPPORTED, ORDER_BY_UNSUPPORTED, Plan, PlannedStage, SUBQUERY_UNSUPPORTED, lower_query, nullable,
};
use crate::planner::normalize_object_name;
use crate::planner::sink::sink_projection;
use crate::types::{implicitly_castable, sql_name};
use crate::{describe, explain};

/// Settings changed with `SET 'key' = 'value'`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `'parallelism.default'`: instances of each aggregation.
    pub parallelism: usize,
    /// `'execution.batch-size'`: largest number of rows per source batch.
    pub batch_size: usize,
    /// `'update-interval'`: how often an updating aggregate emits each changed key.
    pub update_interval: Duration,
    /// `'late-rows.sink'`: the table rows dropped as late are written to, if any.
    pub late_rows_sink: Option<String>,
    /// `'table.exec.state.ttl'`: how long a regular join keeps a row (`None`: as long as it
    /// can match).
    pub state_ttl: Option<Duration>,
    /// `'execution.checkpointing.interval'`: checkpoints this often (`None`: no checkpoints).
    pub checkpoint_interval: Option<Duration>,
    /// `'state.checkpoints.dir'` (or `--state-dir`): where checkpoints are kept.
    pub checkpoint_dir: Option<String>,
    /// `'s3.*'`: how an `s3://` state directory is reached.
    pub s3: Vec<(String, String)>,
    /// `'state.checkpoints.num-retained'`.
    pub checkpoints_retained: usize,
    /// `'execution.checkpointing.tolerable-failed-checkpoints'`.
    pub tolerable_failed_checkpoints: u32,
    /// `'execution.checkpointing.timeout'`.
    pub checkpoint_timeout: Duration,
    /// `--from-scratch`: earlier checkpoints are removed, not resumed from.
    pub from_scratch: bool,
    /// `'python.executable'` and `'python.files'`: how Python functions run.
    pub python: PythonConfig,
    /// `'table.optimizer.agg-phase-strategy'`: whether window aggregations pre-aggregate
    /// before the exchange.
    pub agg_phases: AggPhases,
    /// `'table.optimizer.reuse-source-enabled'`: whether the nodes of a query that read the
    /// same table share one read of it.
    pub reuse_sources: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            parallelism: 1,
            batch_size: 8192,
            update_interval: Duration::from_secs(1),
            late_rows_sink: None,
            state_ttl: None,
            checkpoint_interval: None,
            checkpoint_dir: None,
            s3: Vec::new(),
            checkpoints_retained: 1,
            tolerable_failed_checkpoints: 0,
            checkpoint_timeout: Duration::from_secs(600),
            from_scratch: false,
            python: PythonConfig::default(),
            agg_phases: AggPhases::Auto,
            reuse_sources: true,
        }
    }
}

/// The most instances of an aggregation: each is a task with its own state and channel.
pub const MAX_PARALLELISM: usize = 256;
/// The largest source batch, in rows.
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// The settings `SET` accepts, with what they mean.
pub const SETTINGS: &[(&str, &str)] = &[
    ("python.executable", "the Python that runs LANGUAGE PYTHON functions (default 'python3')"),
    (
        "python.files",
        "comma-separated .py files or directories whose modules LANGUAGE PYTHON functions are imported from",
    ),
    ("parallelism.default", "number of instances of each aggregation (default 1)"),
    ("execution.batch-size", "largest number of rows per source batch (default 8192)"),
    (
        "table.optimizer.agg-phase-strategy",
        "with parallelism above 1, whether TUMBLE/HOP/CUMULATE aggregations pre-aggregate each batch before the \
         exchange: 'AUTO' (default: until the first 100,000 rows show it does not pay), 'TWO_PHASE' (always) or \
         'ONE_PHASE' (never)",
    ),
    (
        "table.optimizer.reuse-source-enabled",
        "whether a query that reads a table more than once (a self-join) reads and decodes it once for all its \
         uses: 'true' (default) or 'false'",
    ),
    (
        "update-interval",
        "how often a GROUP BY without a window emits each changed key, e.g. '500 ms' (default '1 s'; '0' emits after every batch)",
    ),
    (
        "table.exec.state.ttl",
        "how long a join keeps each row it has seen, in processing time, e.g. '1 h' (default '0': as long as it can \
         still match); results then miss pairs whose rows came further apart",
    ),
    (
        "execution.checkpointing.interval",
        "take a checkpoint this often, e.g. '10 s', so a restarted job resumes where it was (default: none); \
         needs a state directory",
    ),
    (
        "state.checkpoints.dir",
        "where checkpoints are kept: a local directory or 's3://bucket/prefix' (also --state-dir)",
    ),
    (
        "s3.endpoint",
        "S3-compatible storage for an 's3://' state directory, e.g. 'http://127.0.0.1:8333' (default: AWS_ENDPOINT, else AWS)",
    ),
    ("s3.access-key", "the S3 access key (default: AWS_ACCESS_KEY_ID)"),
    ("s3.secret-key", "the S3 secret key (default: AWS_SECRET_ACCESS_KEY)"),
    ("s3.region", "the S3 region (default: AWS_DEFAULT_REGION, else 'us-east-1')"),
    (
        "s3.path.style.access",
        "'true' (default): path-style requests, as S3-compatible servers want; 'false': virtual-hosted style",
    ),
    ("state.checkpoints.num-retained", "complete checkpoints kept (default 1)"),
    (
        "execution.checkpointing.tolerable-failed-checkpoints",
        "checkpoints that may fail in a row before the pipeline fails (default 0)",
    ),
    ("execution.checkpointing.timeout", "a checkpoint not complete after this long has failed (default '10 min')"),
    (
        "late-rows.sink",
        "a table that rows dropped as late are written to, by column name (input columns, 'operator', 'pipeline'); '' for none (the default)",
    ),
];

/// A state directory as `SET 'state.checkpoints.dir'` or `--state-dir` gives it: a local path or
/// `s3://bucket/prefix` (`None`: empty, no directory).
pub fn checked_state_dir(value: &str) -> SqlResult<Option<String>> {
    let dir = value.trim();
    if let Some((scheme, rest)) = dir.split_once("://") {
        if scheme != "s3" {
            return Err(SqlError::new(format!(
                "state directory '{dir}': a local path or 's3://bucket/prefix' is supported, not '{scheme}://'"
            )));
        }
        if rest.split('/').next().is_none_or(str::is_empty) {
            return Err(SqlError::new(format!("state directory '{dir}' names no bucket")));
        }
    }
    Ok((!dir.is_empty()).then(|| dir.to_string()))
}

/// Runs SQL statements against a catalog of tables and views.
pub struct Session {
    registry: Arc<dyn ConnectorRegistry>,
    catalog: Catalog,
    settings: Settings,
    window_counter: usize,
    /// The query text of each view, for SHOW VIEWS and DESCRIBE.
    view_texts: BTreeMap<String, String>,
    /// The statement that declared each table and view, as written, for SHOW CREATE.
    create_texts: BTreeMap<String, String>,
    /// The tables and views each view reads: they cannot be dropped or replaced under it (the
    /// view is planned against what they were when it was created).
    view_reads: BTreeMap<String, BTreeSet<String>>,
    /// Functions made with CREATE FUNCTION (the only ones DROP FUNCTION removes).
    user_functions: BTreeSet<String>,
}

impl Session {
    /// A new session whose tables use the connectors of `registry`.
    pub fn new(registry: Arc<dyn ConnectorRegistry>) -> Self {
        Self {
            registry,
            catalog: Catalog::default(),
            settings: Settings::default(),
            window_counter: 0,
            view_texts: BTreeMap::new(),
            create_texts: BTreeMap::new(),
            view_reads: BTreeMap::new(),
            user_functions: BTreeSet::new(),
        }
    }

    /// Current settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs every statement of `sql` in order. `SET`, `CREATE TABLE` and `CREATE VIEW` change
    /// the session; each `INSERT INTO` or bare query is planned into a pipeline, returned in
    /// order (not started). Statements that answer with text (`SHOW`, `DESCRIBE`, `EXPLAIN`)
    /// are errors here: use [`Session::parse`] and [`Session::execute_statement`] to get them.
    pub fn execute(&mut self, sql: &str) -> Result<Vec<PipelineSpec>, SqlError> {
        let mut pipelines = Vec::new();
        for located in self.parse(sql)? {
            let (kind, start) = (located.statement.kind(), located.start);
            match self.execute_statement(sql, located)? {
                Outcome::Insert(spec) | Outcome::Query(spec) => pipelines.push(spec),
                Outcome::Done(_) => {}
                Outcome::Table(_)
                | Outcome::Text(_)
                | Outcome::Control(_)
                | Outcome::LiveQuery(_)
                | Outcome::Constant(..) => {
                    let message = format!(
                        "{kind} answers with text, which only the streamsql shell and `streamsql -e` or `-f` show; \
                         Session::execute only plans pipelines"
                    );
                    return Err(SqlError::at(message, start).with_source(sql));
                }
            }
        }
        Ok(pipelines)
    }

    /// Parses a script into statements to run one at a time with [`Session::execute_statement`].
    /// Registers the script's window TVF calls; changes nothing else.
    pub fn parse(&mut self, sql: &str) -> Result<Vec<Located>, SqlError> {
        let script = parse_script(sql, &mut self.window_counter).map_err(|e| e.with_source(sql))?;
        for window in script.windows {
            self.catalog.windows.insert(window.relation.clone(), window);
        }
        Ok(script.statements)
    }

    /// Runs one statement parsed from `sql` by [`Session::parse`]; errors quote `sql`.
    pub fn execute_statement(&mut self, sql: &str, located: Located) -> Result<Outcome, SqlError> {
        let start = located.start;
        self.run(located).map_err(|e| e.or_at(start).with_source(sql))
    }

    /// Tables and views with their columns, by name (for completion and listings).
    pub fn relations(&self) -> impl Iterator<Item = (&str, SchemaRef)> {
        self.catalog.relations.iter().map(|(name, relation)| (name.as_str(), relation.schema()))
    }

    fn run(&mut self, located: Located) -> SqlResult<Outcome> {
        self.check_lookups(&located.lookups)?;
        let text = located.text;
        match located.statement {
            Statement::Set { key, value } => {
                self.set(&key, &value)?;
                Ok(Outcome::Done(format!("'{key}' set to '{}'", value.trim())))
            }
            Statement::CreateTable(create) => {
                let name = normalize_object_name(&create.name);
                let exists = self.catalog.relations.get(&name);
                if exists.is_some() && !create.or_replace {
                    if create.if_not_exists {
                        return Ok(Outcome::Done(format!("'{name}' already exists; nothing changed")));
                    }
                    return Err(SqlError::at_span(
                        format!("table '{name}' already exists (CREATE OR REPLACE TABLE replaces it)"),
                        create.name.span(),
                    ));
                }
                let replaced = exists.is_some();
                if replaced {
                    self.check_droppable(&name, false, create.name.span())?;
                }
                let bound = create_table(&create, &name, self.registry.as_ref(), &self.catalog)?;
                let columns = bound.table.schema.fields().len();
                self.catalog.relations.insert(name.clone(), Relation::Table(bound));
                let options: Vec<(String, String)> =
                    create.options.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
                self.create_texts.insert(name.clone(), describe::mask_secrets(&text, &options));
                let done = if replaced { "replaced" } else { "created" };
                Ok(Outcome::Done(format!("table '{name}' {done} ({columns} columns)")))
            }
            Statement::CreateView { name, or_replace, if_not_exists, query } => {
                let key = normalize_object_name(&name);
                let exists = self.catalog.relations.contains_key(&key);
                if exists && !or_replace {
                    if if_not_exists {
                        return Ok(Outcome::Done(format!("'{key}' already exists; nothing changed")));
                    }
                    return Err(SqlError::at_span(format!("'{key}' already exists"), name.span()));
                }
                if matches!(self.catalog.relations.get(&key), Some(Relation::Table(_))) {
                    return Err(SqlError::at_span(format!("'{key}' is a table, not a view"), name.span()));
                }
                if exists {
                    self.check_droppable(&key, true, name.span())?;
                }
                let plan = self.plan_query(&query)?;
                // Reject views that cannot run as streams now, not when first used.
                lower_query(&plan)?;
                let reads = self.relations_read(&query)?;
                self.catalog.relations.insert(key.clone(), Relation::View(Arc::new(plan)));
                self.view_texts.insert(key.clone(), query.to_string());
                self.create_texts.insert(key.clone(), text);
                self.view_reads.insert(key.clone(), reads);
                Ok(Outcome::Done(format!("view '{key}' {}", if exists { "replaced" } else { "created" })))
            }
            Statement::CreateMaterializedView { name, if_not_exists, options, query } => {
                let key = normalize_object_name(&name);
                if self.catalog.relations.contains_key(&key) {
                    if if_not_exists {
                        return Ok(Outcome::Done(format!("'{key}' already exists; nothing changed")));
                    }
                    return Err(SqlError::at_span(format!("'{key}' already exists"), name.span()));
                }
                let sink = self.live_table(&key, &name, options, &query)?;
                let spec = self.plan_pipeline(format!("CREATE MATERIALIZED VIEW {key}"), &query, Some(sink.clone()))?;
                self.catalog.relations.insert(key.clone(), Relation::Table(sink));
                self.view_texts.insert(key.clone(), query.to_string());
                self.create_texts.insert(key, text);
                Ok(Outcome::Insert(spec))
            }
            Statement::Insert { table, query } => self.plan_insert(&table, *query).map(Outcome::Insert),
            Statement::Query(query) => {
                if reads_no_table(&query)? {
                    // Planned here, with the session's functions (Flink's and CREATE FUNCTION's).
                    let plan = self.plan_constant(&query)?;
                    return Ok(Outcome::Constant(Box::new(plan), Box::new(self.catalog.state().clone())));
                }
                if self.reads_live_tables(&query)? {
                    return Ok(Outcome::LiveQuery(text));
                }
                self.plan_pipeline("SELECT".into(), &query, None).map(Outcome::Query)
            }
            Statement::ShowTables => Ok(Outcome::Table(describe::show_tables(&self.catalog.relations))),
            Statement::ShowViews => Ok(Outcome::Table(describe::show_views(&self.catalog.relations, &self.view_texts))),
            Statement::ShowPipelines => Ok(Outcome::Control(Control::ShowPipelines)),
            Statement::StopPipeline { id, savepoint } => Ok(Outcome::Control(Control::StopPipeline { id, savepoint })),
            Statement::Describe { name } => {
                let key = normalize_object_name(&name);
                let Some(relation) = self.catalog.relations.get(&key) else {
                    return Err(SqlError::at_span(
                        format!("'{key}' does not exist; SHOW TABLES lists the tables"),
                        name.span(),
                    ));
                };
                Ok(Outcome::Table(describe::describe(&key, relation, self.view_texts.get(&key).map(String::as_str))))
            }
            Statement::Drop { view, if_exists, name } => {
                let key = normalize_object_name(&name);
                if !self.catalog.relations.contains_key(&key) {
                    if if_exists {
                        return Ok(Outcome::Done(format!("'{key}' does not exist; nothing changed")));
                    }
                    return Err(SqlError::at_span(
                        format!("'{key}' does not exist; SHOW TABLES and SHOW VIEWS list what does"),
                        name.span(),
                    ));
                }
                self.check_droppable(&key, view, name.span())?;
                self.catalog.relations.remove(&key);
                self.view_texts.remove(&key);
                self.create_texts.remove(&key);
                self.view_reads.remove(&key);
                Ok(Outcome::Done(format!("{} '{key}' dropped", if view { "view" } else { "table" })))
            }
            Statement::CreateFunction { name, if_not_exists, identifier, identifier_span, language } => {
                self.create_function(&name, if_not_exists, &identifier, identifier_span, language.as_deref())
            }
            Statement::DropFunction { name, if_exists } => {
                let key = normalize_object_name(&name);
                if !self.user_functions.remove(&key) {
                    if if_exists {
                        return Ok(Outcome::Done(format!("function '{key}' does not exist; nothing changed")));
                    }
                    return Err(SqlError::at_span(
                        format!("'{key}' is not a function made with CREATE FUNCTION"),
                        name.span(),
                    ));
                }
                let state = self.catalog.state_mut();
                let _ = state.deregister_udf(&key);
                let _ = state.deregister_udaf(&key);
                Ok(Outcome::Done(format!("function '{key}' dropped")))
            }
            Statement::ShowCreate { view, name } => {
                let key = normalize_object_name(&name);
                let what = if view { "view" } else { "table" };
                // A materialized view answers to both: it is a view by its statement, a table by its rows.
                let is_view = match self.catalog.relations.get(&key) {
                    Some(Relation::View(_)) => true,
                    Some(Relation::Table(bound)) if bound.connector.name() == "live" => view,
                    _ => false,
                };
                match self.create_texts.get(&key) {
                    Some(text) if is_view == view => Ok(Outcome::Text(format!("{text};\n"))),
                    Some(_) => Err(SqlError::at_span(
                        format!("'{key}' is not a {what}; use SHOW CREATE {}", if view { "TABLE" } else { "VIEW" }),
                        name.span(),
                    )),
                    None => Err(SqlError::at_span(
                        format!("{what} '{key}' does not exist; SHOW TABLES and SHOW VIEWS list what does"),
                        name.span(),
                    )),
                }
            }
            Statement::Explain(inner) => {
                let (spec, query) = match *inner {
                    Statement::Insert { table, query } => (self.plan_insert(&table, *query)?, false),
                    Statement::Query(query) => (self.plan_pipeline("SELECT".into(), &query, None)?, true),
                    other => return Err(SqlError::new(format!("EXPLAIN of {} is not supported", other.kind()))),
                };
                Ok(Outcome::Text(explain::explain(&spec, query)))
            }
        }
    }

    fn plan_insert(&self, table: &ObjectName, query: Query) -> SqlResult<PipelineSpec> {
        let name = normalize_object_name(table);
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
        check_role(&sink, Role::Sink).map_err(|e| e.or_at(table.span().start))?;
        let query = name_insert_columns(query, &sink.table.schema);
        self.plan_pipeline(format!("INSERT INTO {name}"), &query, Some(sink))
    }

    /// The live table of `CREATE MATERIALIZED VIEW name WITH (options) AS query`: the query's
    /// columns, the `live` connector.
    fn live_table(
        &self,
        key: &str,
        name: &ObjectName,
        mut options: Vec<(String, String, Span)>,
        query: &Query,
    ) -> SqlResult<BoundTable> {
        if let Some((_, value, span)) = options.iter().find(|(k, ..)| k == "connector") {
            return Err(SqlError::at_span(
                format!(
                    "a materialized view is a live table; drop 'connector' = '{value}' (or CREATE TABLE ... WITH ('connector' = '{value}') and INSERT INTO it)"
                ),
                *span,
            ));
        }
        options.push(("connector".into(), "live".into(), name.span()));
        if self.registry.get("live").is_none() {
            return Err(SqlError::at_span(
                "CREATE MATERIALIZED VIEW needs live tables, which are not available here",
                name.span(),
            ));
        }
        let (connector, options) = bind_connector(key, &options, name.span(), self.registry.as_ref())?;
        let plan = self.plan_query(query)?;
        let table = TableDef {
            name: key.to_string(),
            schema: nullable(plan.schema().as_arrow()),
            options,
            watermark: None,
            primary_key: Vec::new(),
            computed: Vec::new(),
        };
        let bound = BoundTable { table, connector };
        check_role(&bound, Role::Sink).map_err(|e| e.or_at(name.span().start))?;
        Ok(bound)
    }

    /// Whether `query` reads live tables only (then it is a batch query over their rows); an
    /// error when it mixes them with streams.
    fn reads_live_tables(&self, query: &Query) -> SqlResult<bool> {
        let relations = tables_read(query)?;
        let is_live = |name: &str| matches!(self.catalog.relations.get(name), Some(Relation::Table(bound)) if bound.connector.name() == "live");
        let live = relations.iter().filter(|r| is_live(r.table())).count();
        if live > 0 && live < relations.len() {
            return Err(SqlError::new(
                "a query cannot read live tables (results kept in memory) together with streams; \
                 query the live tables on their own, or make the stream a materialized view first",
            ));
        }
        Ok(live > 0)
    }

    /// `CREATE FUNCTION name AS 'identifier' [LANGUAGE language]`.
    fn create_function(
        &mut self,
        name: &ObjectName,
        if_not_exists: bool,
        identifier: &str,
        identifier_span: Span,
        language: Option<&str>,
    ) -> SqlResult<Outcome> {
        let key = normalize_object_name(name);
        if self.user_functions.contains(&key) {
            if if_not_exists {
                return Ok(Outcome::Done(format!("function '{key}' already exists; nothing changed")));
            }
            return Err(SqlError::at_span(format!("function '{key}' already exists"), name.span()));
        }
        let state = self.catalog.state();
        let built_in = state.scalar_functions().contains_key(&key)
            || state.aggregate_functions().contains_key(&key)
            || state.window_functions().contains_key(&key)
            || crate::functions::registry::find(&key).is_some();
        if built_in {
            return Err(SqlError::at_span(
                format!("'{key}' is a built-in function; give the user-defined one another name"),
                name.span(),
            ));
        }
        let language = language.unwrap_or("JAVA");
        let created = match language {
            "PYTHON" => match python::load(&key, identifier, &self.settings.python) {
                Ok(PythonFunction::Scalar(udf)) => {
                    let _ = self.catalog.state_mut().register_udf(Arc::new(udf))?;
                    "a Python function"
                }
                Ok(PythonFunction::Aggregate(udaf)) => {
                    let _ = self.catalog.state_mut().register_udaf(Arc::new(udaf))?;
                    "a Python aggregate function"
                }
                Err(message) => return Err(SqlError::at_span(message, identifier_span)),
            },
            "JAVA" | "SCALA" => match udf::java_class(identifier, &key) {
                Some(function) => {
                    let _ = self.catalog.state_mut().register_udf(Arc::new(function))?;
                    "a built-in implementation of the Java class"
                }
                None => {
                    let known: Vec<&str> = udf::JAVA_CLASSES.iter().map(|(class, _)| *class).collect();
                    return Err(SqlError::at_span(
                        format!(
                            "Java class '{identifier}' cannot be loaded: streamsql runs no JVM, and implements only \
                             these classes itself: {}. Write the function in Python: CREATE FUNCTION {key} AS \
                             'module.function' LANGUAGE PYTHON",
                            known.join(", ")
                        ),
                        identifier_span,
                    ));
                }
            },
            other => {
                return Err(SqlError::at_span(
                    format!("LANGUAGE {other} is not supported; functions are written in PYTHON"),
                    identifier_span,
                ));
            }
        };
        self.user_functions.insert(key.clone());
        Ok(Outcome::Done(format!("function '{key}' created ({created})")))
    }

    /// Whether the table (or view, when `view`) `key` may be dropped or replaced: of that kind,
    /// read by no view, not a live table filled by a pipeline, not the late-rows sink.
    fn check_droppable(&self, key: &str, view: bool, span: Span) -> SqlResult<()> {
        match self.catalog.relations.get(key) {
            Some(Relation::View(_)) if !view => {
                return Err(SqlError::at_span(format!("'{key}' is a view; use DROP VIEW"), span));
            }
            Some(Relation::Table(_)) if view => {
                return Err(SqlError::at_span(format!("'{key}' is a table; use DROP TABLE"), span));
            }
            Some(Relation::Table(bound)) if bound.connector.name() == "live" => {
                return Err(SqlError::at_span(
                    format!(
                        "'{key}' is a live table (a materialized view) filled by a pipeline; live tables cannot be \
                         dropped or replaced yet"
                    ),
                    span,
                ));
            }
            _ => {}
        }
        if let Some(reader) = self.view_reads.iter().find(|(name, reads)| *name != key && reads.contains(key)) {
            return Err(SqlError::at_span(format!("view '{}' reads '{key}'; drop that view first", reader.0), span));
        }
        if self.settings.late_rows_sink.as_deref() == Some(key) {
            return Err(SqlError::at_span(
                format!("'{key}' is the late-rows sink; SET 'late-rows.sink' = '' first"),
                span,
            ));
        }
        Ok(())
    }

    /// The tables and views `query` reads, window TVFs resolved to the relation they read.
    fn relations_read(&self, query: &Query) -> SqlResult<BTreeSet<String>> {
        let relations = tables_read(query)?;
        Ok(relations
            .iter()
            .map(|r| match self.catalog.windows.get(r.table()) {
                Some(window) => normalize_object_name(&window.input),
                None => r.table().to_string(),
            })
            .collect())
    }

    /// A `FOR SYSTEM_TIME AS OF` clause may only name a table a lookup join reads: bounded and
    /// without a watermark, so every time it is looked up "as of" sees the same rows.
    fn check_lookups(&self, lookups: &[crate::parser::lookup::LookupClause]) -> SqlResult<()> {
        for lookup in lookups {
            let fits = match self.catalog.relations.get(&lookup.table) {
                Some(Relation::Table(bound)) => {
                    bound.table.watermark.is_none() && bound.connector.bounded(&bound.table)
                }
                _ => false,
            };
            if !fits {
                return Err(SqlError::at_span(
                    format!(
                        "FOR SYSTEM_TIME AS OF: '{}' is not a table a lookup join can read; only a bounded table \
                         without a watermark (a file) is looked up. Temporal joins over versioned tables are not \
                         supported yet",
                        lookup.table
                    ),
                    lookup.span,
                ));
            }
        }
        Ok(())
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
        let at_most = |n: usize, limit: usize| -> SqlResult<usize> {
            if n > limit {
                return Err(SqlError::new(format!("SET '{key}' may be at most {limit}, got {n}")));
            }
            Ok(n)
        };
        match key {
            "parallelism.default" => self.settings.parallelism = at_most(positive(value)?, MAX_PARALLELISM)?,
            "execution.batch-size" => self.settings.batch_size = at_most(positive(value)?, MAX_BATCH_SIZE)?,
            "table.optimizer.agg-phase-strategy" => {
                self.settings.agg_phases = match value.trim().to_uppercase().as_str() {
                    "AUTO" => AggPhases::Auto,
                    "ONE_PHASE" => AggPhases::One,
                    "TWO_PHASE" => AggPhases::Two,
                    _ => {
                        return Err(SqlError::new(format!(
                            "SET '{key}' needs 'AUTO', 'ONE_PHASE' or 'TWO_PHASE', got '{value}'"
                        )));
                    }
                }
            }
            "table.optimizer.reuse-source-enabled" => {
                self.settings.reuse_sources = match value.trim().to_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(SqlError::new(format!("SET '{key}' needs 'true' or 'false', got '{value}'"))),
                }
            }
            "update-interval" => {
                let ms = parse_duration_ms(value).ok_or_else(|| {
                    SqlError::new(format!("SET '{key}' needs a duration such as '500 ms' or '2 s', got '{value}'"))
                })?;
                self.settings.update_interval = Duration::from_millis(ms as u64);
            }
            "table.exec.state.ttl" => {
                let ms = parse_duration_ms(value).ok_or_else(|| {
                    SqlError::new(format!("SET '{key}' needs a duration such as '1 h' or '30 min', got '{value}'"))
                })?;
                self.settings.state_ttl = (ms > 0).then(|| Duration::from_millis(ms as u64));
            }
            "execution.checkpointing.interval" => {
                let ms = parse_duration_ms(value).filter(|ms| *ms >= 0).ok_or_else(|| {
                    SqlError::new(format!("SET '{key}' needs a duration such as '10 s' or '1 min', got '{value}'"))
                })?;
                if ms > 0 && ms < 10 {
                    return Err(SqlError::new(format!("SET '{key}' must be at least 10 ms, got '{value}'")));
                }
                self.settings.checkpoint_interval = (ms > 0).then(|| Duration::from_millis(ms as u64));
            }
            "state.checkpoints.dir" => self.settings.checkpoint_dir = checked_state_dir(value)?,
            "s3.endpoint" | "s3.access-key" | "s3.secret-key" | "s3.region" | "s3.path.style.access" => {
                let value = value.trim();
                if key == "s3.path.style.access" && !["true", "false"].contains(&value.to_lowercase().as_str()) {
                    return Err(SqlError::new(format!("SET '{key}' needs 'true' or 'false', got '{value}'")));
                }
                if key == "s3.endpoint" && !(value.starts_with("http://") || value.starts_with("https://")) {
                    return Err(SqlError::new(format!("SET '{key}' needs an http:// or https:// URL, got '{value}'")));
                }
                self.settings.s3.retain(|(k, _)| k != key);
                if !value.is_empty() {
                    self.settings.s3.push((key.to_string(), value.to_string()));
                }
            }
            "state.checkpoints.num-retained" => self.settings.checkpoints_retained = at_most(positive(value)?, 1000)?,
            "execution.checkpointing.tolerable-failed-checkpoints" => {
                let n = value.trim().parse::<u32>().map_err(|_| {
                    SqlError::new(format!("SET '{key}' needs a number of checkpoints (0 or more), got '{value}'"))
                })?;
                self.settings.tolerable_failed_checkpoints = n;
            }
            "execution.checkpointing.timeout" => {
                let ms = parse_duration_ms(value).filter(|ms| *ms > 0).ok_or_else(|| {
                    SqlError::new(format!("SET '{key}' needs a positive duration such as '10 min', got '{value}'"))
                })?;
                self.settings.checkpoint_timeout = Duration::from_millis(ms as u64);
            }
            "python.executable" => {
                let executable = value.trim();
                if executable.is_empty() {
                    return Err(SqlError::new(format!("SET '{key}' needs a program, such as 'python3'")));
                }
                self.settings.python.executable = executable.to_string();
            }
            "python.files" => {
                let paths: Vec<String> =
                    value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect();
                if let Some(missing) = paths.iter().find(|p| !std::path::Path::new(p).exists()) {
                    return Err(SqlError::new(format!("SET '{key}': '{missing}' does not exist")));
                }
                self.settings.python.paths = paths;
            }
            "late-rows.sink" => {
                let name = value.trim();
                if name.is_empty() {
                    self.settings.late_rows_sink = None;
                } else {
                    let key = name.to_lowercase();
                    match self.catalog.relations.get(&key) {
                        Some(Relation::Table(bound)) => check_role(bound, Role::Sink)?,
                        _ => {
                            return Err(SqlError::new(format!(
                                "SET 'late-rows.sink': there is no table '{name}'; declare it with CREATE TABLE first"
                            )));
                        }
                    }
                    self.settings.late_rows_sink = Some(key);
                }
            }
            _ => {
                let known = SETTINGS.iter().map(|(k, help)| format!("'{k}' ({help})")).collect::<Vec<_>>().join(", ");
                return Err(SqlError::new(format!("unknown setting '{key}'; known settings: {known}")));
            }
        }
        Ok(())
    }

    /// A query over no table as a batch plan: planned and analyzed here, optimized and run by
    /// the caller with the session's state.
    fn plan_constant(&self, query: &Query) -> SqlResult<LogicalPlan> {
        let planner = self.catalog.planner();
        let plan = planner.sql_statement_to_plan(SqlStatement::Query(Box::new(query.clone())))?;
        reject_time_number_casts(&plan, query)?;
        Ok(plan)
    }

    /// Plans a query with DataFusion and runs its analyzer (type coercion), not its optimizer:
    /// optimizer rewrites (e.g. of COUNT(DISTINCT)) would hide the window aggregation.
    fn plan_query(&self, query: &Query) -> SqlResult<LogicalPlan> {
        reject_unbounded_clauses(query)?;
        reject_subqueries(query)?;
        let planner = self.catalog.planner();
        let plan = planner.sql_statement_to_plan(SqlStatement::Query(Box::new(query.clone())))?;
        let state = self.catalog.state();
        let plan = state.analyzer().execute_and_check(plan, state.config_options(), |_, _| {})?;
        reject_time_number_casts(&plan, query)?;
        decorrelate_subqueries(plan)
    }

    /// Plans `query` into a pipeline writing to `sink`, or printing its rows when there is none.
    fn plan_pipeline(&self, name: String, query: &Query, sink: Option<BoundTable>) -> SqlResult<PipelineSpec> {
        let (query, limit) = take_limit(query)?;
        let query = &query;
        let plan = self.plan_query(query)?;
        let sink = match sink {
            Some(sink) => sink,
            None => self.print_sink(&plan)?,
        };
        let plan = numeric_conversions(plan, &sink.table)?;
        let mut stream = lower_query(&plan)?;
        if stream.window.is_some() {
            return Err(crate::planner::lower::window_without_aggregation());
        }
        for source in stream.plan.sources() {
            check_role(source, Role::Source)?;
        }
        let mapping = sink_projection(&sink.table.name, plan.schema(), &sink.table.schema)?;
        let updating = stream.updating;
        if let Some((_, span)) = limit
            && updating
        {
            return Err(SqlError::at_span(
                "LIMIT on an updating result (an aggregate without a window, a join or Top-N) is not supported: \
                 which rows come first changes as the result is updated; aggregate per window, or keep the top \
                 rows with ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)",
                span,
            ));
        }
        let sink_at_run = if updating { changelog_sink(sink.clone())? } else { sink.clone() };
        // Last, as they may contact the outside world: pointless for a query that cannot run.
        for source in stream.plan.sources() {
            check_external(source, Role::Source)?;
        }
        check_external(&sink, Role::Sink)?;
        let late = self.late_rows_sink(&name, &sink)?;
        stream.push(mapping);
        let inputs = self.nodes(stream.plan, late.as_ref())?;
        let spec = PipelineSpec {
            name,
            inputs,
            sink: sink_at_run,
            updating,
            late_sink: late.map(|l| l.table),
            parallelism: self.settings.parallelism,
            batch_size: self.settings.batch_size,
            checkpoint: self.checkpoint_config()?,
            limit: limit.map(|(n, _)| n),
            reuse_sources: self.settings.reuse_sources,
        };
        // The sink and the late-rows sink alike.
        let transactional = std::iter::once(&spec.sink)
            .chain(&spec.late_sink)
            .find(|bound| bound.connector.delivery(&bound.table, Role::Sink) == Delivery::Transactional);
        if let (None, Some(bound)) = (&spec.checkpoint, transactional) {
            return Err(SqlError::new(format!(
                "table '{}' commits its output when a checkpoint completes (exactly once), so it needs \
                 checkpoints: SET 'execution.checkpointing.interval' = '10 s' and give a state directory \
                 (--state-dir DIR)",
                bound.table.name
            )));
        }
        if spec.checkpoint.is_some() {
            if spec.limit.is_some() {
                return Err(SqlError::new(
                    "LIMIT with checkpoints is not supported yet (a restart would not know how many rows were \
                     written); run the query without SET 'execution.checkpointing.interval'",
                ));
            }
            spec.checkpoint_nodes().map_err(|e| {
                SqlError::new(format!(
                    "{e}; run this query without SET 'execution.checkpointing.interval' (its results are then \
                     lost when the process stops)"
                ))
            })?;
        }
        Ok(spec)
    }

    /// Checkpoints as the settings ask for them, if they do.
    fn checkpoint_config(&self) -> SqlResult<Option<CheckpointConfig>> {
        let Some(interval) = self.settings.checkpoint_interval else { return Ok(None) };
        let Some(dir) = &self.settings.checkpoint_dir else {
            return Err(SqlError::new(
                "checkpoints need a state directory: start streamsql with --state-dir DIR or SET \
                 'state.checkpoints.dir' = 'DIR'",
            ));
        };
        Ok(Some(CheckpointConfig {
            interval,
            dir: dir.into(),
            s3: self.settings.s3.clone(),
            retained: self.settings.checkpoints_retained,
            tolerable_failures: self.settings.tolerable_failed_checkpoints,
            timeout: self.settings.checkpoint_timeout,
            from_scratch: self.settings.from_scratch,
        }))
    }

    /// Sets what the command line says of checkpoints: the state directory (`--state-dir`,
    /// unless a script sets `'state.checkpoints.dir'`) and `--from-scratch`.
    pub fn set_checkpoint_defaults(&mut self, dir: Option<String>, from_scratch: bool) -> SqlResult<()> {
        if let Some(dir) = dir {
            self.settings.checkpoint_dir = checked_state_dir(&dir)?;
        }
        self.settings.from_scratch = from_scratch;
        Ok(())
    }

    /// The late-rows sink of a pipeline writing to `sink`, if `SET 'late-rows.sink'` names one.
    fn late_rows_sink(&self, pipeline: &str, sink: &BoundTable) -> SqlResult<Option<LatePlan>> {
        let Some(name) = &self.settings.late_rows_sink else { return Ok(None) };
        let Some(Relation::Table(table)) = self.catalog.relations.get(name) else {
            return Err(SqlError::new(format!("SET 'late-rows.sink': table '{name}' no longer exists")));
        };
        if table.table.name == sink.table.name {
            return Err(SqlError::new(format!(
                "SET 'late-rows.sink' names '{name}', the table this query writes to; late rows need a table of their own"
            )));
        }
        check_external(table, Role::Sink)?;
        Ok(Some(LatePlan { table: table.clone(), pipeline: pipeline.to_string() }))
    }

    /// The engine's nodes for a lowered plan (several for a `UNION ALL`).
    fn nodes(&self, plan: Plan, late: Option<&LatePlan>) -> SqlResult<Vec<Node>> {
        Ok(match plan {
            Plan::Source { source, ops } => {
                // A partitioned source (Kafka) spreads its partitions over `parallelism` readers.
                let instances = if source.connector.partitioned(&source.table) { self.settings.parallelism } else { 1 };
                vec![Node::Source { source, chain: StatelessChain::new(ops, &hidden_fields()), instances }]
            }
            Plan::Union(branches) => {
                let mut nodes = Vec::new();
                for branch in branches {
                    nodes.extend(self.nodes(branch, late)?);
                }
                nodes
            }
            Plan::Stage { stage, inputs, post } => {
                let changelog_input = inputs.iter().any(|(_, plan)| plan.is_changelog());
                let mut stage_inputs = Vec::new();
                for (input, plan) in inputs {
                    stage_inputs.extend(self.nodes(plan, late)?.into_iter().map(|node| StageInput { node, input }));
                }
                let stage = match stage {
                    PlannedStage::Aggregate(spec, input) => {
                        let late_output = match (late, &spec.window) {
                            (Some(late), Some(shape)) => Some(Arc::new(late.output(&input, shape)?)),
                            _ => None,
                        };
                        // Window results carry the hidden event-time columns; updating ones `_op`.
                        let hidden: Vec<Field> = match spec.window {
                            Some(_) => hidden_fields().to_vec(),
                            None => vec![op_field()],
                        };
                        if spec.window.is_none() && self.settings.state_ttl.is_some() {
                            return Err(SqlError::new(
                                "SET 'table.exec.state.ttl' bounds the state of joins only; an aggregation without a \
                                 window keeps every key (a state TTL for it is not supported yet). SET it to '0' for \
                                 this query, or aggregate per window",
                            ));
                        }
                        Stage::Aggregate(AggregateStage {
                            spec,
                            post: StatelessChain::new(post, &hidden),
                            update_interval: self.settings.update_interval,
                            changelog_input,
                            // One node in, in one order: its rows' watermarks rise along the input.
                            row_watermarks: matches!(&stage_inputs[..], [only] if only.node.ordered()),
                            late: late_output,
                            phases: self.settings.agg_phases,
                        })
                    }
                    PlannedStage::Over(spec, input) => {
                        let late = match late {
                            Some(late) => Some(Arc::new(late.output_for(&input, None, "OVER aggregate".into())?)),
                            None => None,
                        };
                        Stage::Over(OverStage { spec, post: StatelessChain::new(post, &hidden_fields()), late })
                    }
                    PlannedStage::TopN(spec) => {
                        Stage::TopN(TopNStage { spec, post: StatelessChain::new(post, &[op_field()]) })
                    }
                    PlannedStage::Join(spec) => {
                        if spec.kind == JoinKind::LeftSemi && self.settings.state_ttl.is_some() {
                            return Err(SqlError::new(
                                "SET 'table.exec.state.ttl' does not bound IN (SELECT ...) / EXISTS (semi joins) \
                                 yet; SET it to '0' for this query",
                            ));
                        }
                        // An outer join's results are a changelog: `_op`.
                        let hidden = if spec.is_changelog() { vec![op_field()] } else { Vec::new() };
                        let late = match late {
                            Some(late) => join_late_outputs(late, &spec)?,
                            None => [None, None],
                        };
                        Stage::Join(JoinStage {
                            spec,
                            post: StatelessChain::new(post, &hidden),
                            state_ttl: self.settings.state_ttl,
                            late,
                        })
                    }
                };
                vec![Node::Stage { stage, inputs: stage_inputs, parallelism: self.settings.parallelism }]
            }
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
            computed: Vec::new(),
        };
        Ok(BoundTable { table, connector })
    }
}

/// Where the inputs of a join that drops late rows (interval and window joins) write them.
fn join_late_outputs(late: &LatePlan, spec: &JoinSpec) -> SqlResult<[Option<Arc<LateOutput>>; 2]> {
    let operator = match (&spec.window, &spec.interval) {
        (Some(window), _) => format!("window join ({})", explain::window_text(&window.shape)),
        (None, Some(_)) => "interval join".to_string(),
        (None, None) => return Ok([None, None]),
    };
    let fields = spec.output_schema.fields();
    let right_start = spec.left.visible + if spec.window.is_some() { 3 } else { 0 };
    let left = Schema::new(fields[..spec.left.visible].to_vec());
    let right = Schema::new(fields[right_start..right_start + spec.right.visible].to_vec());
    Ok([
        Some(Arc::new(late.output_for(&left, Some(&right), format!("{operator}, left input"))?)),
        Some(Arc::new(late.output_for(&right, Some(&left), format!("{operator}, right input"))?)),
    ])
}

/// The late-rows sink of one pipeline.
struct LatePlan {
    table: BoundTable,
    pipeline: String,
}

impl LatePlan {
    /// What a window aggregate over `input` writes to the late-rows sink: each of its columns by
    /// name — an input column, `operator` or `pipeline` — cast to the column's type.
    fn output(&self, input: &Schema, shape: &WindowShape) -> SqlResult<LateOutput> {
        self.output_for(input, None, format!("window aggregate ({})", explain::window_text(shape)))
    }

    /// What `operator` writes for the late rows of an input with columns `input`; a column only
    /// the other input of a join has (`other`) is NULL.
    fn output_for(&self, input: &Schema, other: Option<&Schema>, operator: String) -> SqlResult<LateOutput> {
        let table = &self.table.table;
        let mut columns = Vec::new();
        for field in table.schema.fields() {
            let name = field.name();
            let column = match input.fields().iter().position(|f| f.name().eq_ignore_ascii_case(name)) {
                Some(i) => {
                    let from = input.field(i).data_type();
                    if !arrow::compute::can_cast_types(from, field.data_type()) {
                        return Err(SqlError::new(format!(
                            "late-rows sink '{}': column '{name}' is {}, but the late rows' '{name}' is {from}",
                            table.name,
                            field.data_type(),
                        )));
                    }
                    LateColumn::Input(i)
                }
                None if other.is_some_and(|o| o.fields().iter().any(|f| f.name().eq_ignore_ascii_case(name))) => {
                    LateColumn::Null
                }
                None if name.eq_ignore_ascii_case("operator") => LateColumn::Operator,
                None if name.eq_ignore_ascii_case("pipeline") => LateColumn::Pipeline,
                None => {
                    let known: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(SqlError::new(format!(
                        "late-rows sink '{}': the late rows of {} have no column '{name}'; they have {}, \
                         'operator' and 'pipeline'",
                        table.name,
                        self.pipeline,
                        known.join(", ")
                    )));
                }
            };
            columns.push(column);
        }
        Ok(LateOutput { columns, schema: table.schema.clone(), operator, pipeline: self.pipeline.clone() })
    }
}

/// The sink of an updating query: as declared when it applies changes itself, with an `op`
/// column in front when it appends them, an error when it cannot take them.
fn changelog_sink(sink: BoundTable) -> SqlResult<BoundTable> {
    match sink.connector.changelog() {
        ChangelogMode::Native => {
            sink.connector.validate_updating(&sink.table).map_err(|e| SqlError::new(e.to_string()))?;
            Ok(sink)
        }
        ChangelogMode::OpColumn => Ok(BoundTable { table: sink.table.with_op_column(), connector: sink.connector }),
        ChangelogMode::Unsupported => Err(SqlError::new(format!(
            "'{}' (connector '{}') takes only append-only results, but this query is an updating aggregate \
             (GROUP BY without a window), whose results change; aggregate over a window TVF instead, \
             or write to a 'live', 'print' or 'file' table",
            sink.table.name,
            sink.connector.name()
        ))),
    }
}

/// INSERT matches columns by position, so two unnamed select items may compute the same
/// expression (`SELECT k, k`); DataFusion needs distinct names, so unnamed items of a plain
/// SELECT are named after their sink columns. User aliases are kept (GROUP BY may use them).
fn name_insert_columns(mut query: Query, sink: &Schema) -> Query {
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

/// Subqueries in expressions, reported where they are written (lowering finds them too, but
/// without a position).
fn reject_subqueries(query: &Query) -> SqlResult<()> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, visit_expressions};
    // `x IN (SELECT ...)` and `EXISTS (SELECT ...)` joined by AND at the top of a WHERE become
    // semi joins; anything else with a subquery is refused where it is written.
    let in_where = where_subqueries(query);
    let found = visit_expressions(query, |expr| match expr {
        SqlExpr::InSubquery { negated: true, subquery, .. } | SqlExpr::Exists { negated: true, subquery } => {
            ControlFlow::Break((subquery.span(), SUBQUERY_NEGATED))
        }
        SqlExpr::InSubquery { subquery, .. } | SqlExpr::Exists { subquery, .. }
            if !in_where.contains(&subquery.span()) =>
        {
            ControlFlow::Break((subquery.span(), SUBQUERY_UNSUPPORTED))
        }
        SqlExpr::Subquery(subquery) => ControlFlow::Break((subquery.span(), SUBQUERY_UNSUPPORTED)),
        _ => ControlFlow::Continue(()),
    });
    match found {
        ControlFlow::Break((span, message)) => Err(SqlError::at_span(message, span)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Why `NOT IN (SELECT ...)` and `NOT EXISTS` cannot run on streams yet.
const SUBQUERY_NEGATED: &str = "NOT IN (SELECT ...) and NOT EXISTS (SELECT ...) are not supported on streams yet: a row \
     emitted for lacking a match would have to be retracted when a match arrives";

/// The subqueries of `IN (SELECT ...)` / `EXISTS (SELECT ...)` conjuncts at the top of a WHERE,
/// in every query of `query` (subqueries and derived tables too), by position.
fn where_subqueries(query: &Query) -> Vec<Span> {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr as SqlExpr, SetExpr, Visit, Visitor};
    fn conjuncts(expr: &SqlExpr, out: &mut Vec<Span>) {
        match expr {
            SqlExpr::BinaryOp { left, op: BinaryOperator::And, right } => {
                conjuncts(left, out);
                conjuncts(right, out);
            }
            SqlExpr::Nested(inner) => conjuncts(inner, out),
            SqlExpr::InSubquery { negated: false, subquery, .. } | SqlExpr::Exists { negated: false, subquery } => {
                out.push(subquery.span());
            }
            _ => {}
        }
    }
    struct Wheres(Vec<Span>);
    impl Visitor for Wheres {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let SetExpr::Select(select) = query.body.as_ref()
                && let Some(selection) = &select.selection
            {
                conjuncts(selection, &mut self.0);
            }
            ControlFlow::Continue(())
        }
    }
    let mut wheres = Wheres(Vec::new());
    let _ = query.visit(&mut wheres);
    wheres.0
}

/// INSERT INTO converts between numeric types as Flink does (DOUBLE into DECIMAL or BIGINT,
/// BIGINT into INT, an integer literal into an INT column): a projection of [`CheckedCast`]s
/// on top of `plan` for the columns whose conversion may lose range. Conversions that cannot
/// ([`implicitly_castable`]) and non-numeric ones are left to `sink_projection`, which does the
/// first and refuses the others. A literal that does not fit is refused here.
fn numeric_conversions(plan: LogicalPlan, sink: &TableDef) -> SqlResult<LogicalPlan> {
    let produced = plan.schema().clone();
    let target = &sink.schema;
    let converts = |from: &DataType, to: &DataType| {
        from != to && from.is_numeric() && to.is_numeric() && !implicitly_castable(from, to)
    };
    if produced.fields().len() != target.fields().len()
        || !produced.fields().iter().zip(target.fields()).any(|(f, t)| converts(f.data_type(), t.data_type()))
    {
        return Ok(plan);
    }
    let literals: Vec<Option<ScalarValue>> = match &plan {
        LogicalPlan::Projection(projection) => projection
            .expr
            .iter()
            .map(|e| match e.clone().unalias() {
                Expr::Literal(value, _) => Some(value),
                _ => None,
            })
            .collect(),
        _ => vec![None; target.fields().len()],
    };
    let mut exprs = Vec::with_capacity(target.fields().len());
    for (i, (field, column)) in produced.fields().iter().zip(target.fields()).enumerate() {
        let value = Expr::Column(Column::from(produced.qualified_field(i)));
        if !converts(field.data_type(), column.data_type()) {
            exprs.push(value);
            continue;
        }
        let cast = CheckedCast::new(&sink.name, column.name(), column.data_type());
        if let Some(Some(literal)) = literals.get(i)
            && let Err(message) = cast.cast(&literal.to_array()?)
        {
            return Err(SqlError::new(message));
        }
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(cast)), vec![value]));
        exprs.push(call.alias(field.name()));
    }
    Ok(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(plan))?))
}

/// Converts a column to its sink column's numeric type, failing on the first value out of
/// range, where Flink would wrap it (integers) or write NULL (DECIMAL): never silently.
/// Rounding is Flink's: DOUBLE to DECIMAL rounds half away from zero, to an integer truncates.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedCast {
    /// `cast_to_<type>`, as EXPLAIN shows it.
    name: String,
    table: String,
    column: String,
    to: DataType,
    signature: Signature,
}

impl CheckedCast {
    fn new(table: &str, column: &str, to: &DataType) -> Self {
        Self {
            name: format!("cast_to_{}", sql_name(to).to_lowercase().replace([' ', '(', ')', ','], "")),
            table: table.to_string(),
            column: column.to_string(),
            to: to.clone(),
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    /// `values` converted, or a message naming the first one out of range.
    fn cast(&self, values: &ArrayRef) -> Result<ArrayRef, String> {
        let options = CastOptions { safe: true, ..CastOptions::default() };
        let converted = arrow::compute::cast_with_options(values, &self.to, &options).map_err(|e| e.to_string())?;
        // A safe cast gives NULL for a value out of range: find the first.
        let Some(row) = (0..values.len()).find(|&i| values.is_valid(i) && converted.is_null(i)) else {
            return Ok(converted);
        };
        let shown = ArrayFormatter::try_new(values.as_ref(), &FormatOptions::default())
            .map(|f| f.value(row).to_string())
            .unwrap_or_else(|_| "a value".to_string());
        let table = if self.table.is_empty() { String::new() } else { format!("INSERT INTO {}: ", self.table) };
        Err(format!(
            "{table}column '{}' is {}, and {shown} is out of range; CAST or filter it in the query to say what to write instead",
            self.column,
            sql_name(&self.to)
        ))
    }
}

impl ScalarUDFImpl for CheckedCast {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(self.to.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return datafusion::common::internal_err!("{} takes one argument", self.name);
        };
        let values = value.to_array(args.number_rows)?;
        self.cast(&values).map(ColumnarValue::Array).map_err(DataFusionError::Execution)
    }
}

/// The tables and views `query` names (its CTEs excluded).
fn tables_read(query: &Query) -> SqlResult<Vec<datafusion::common::TableReference>> {
    let statement = DFStatement::Statement(Box::new(SqlStatement::Query(Box::new(query.clone()))));
    Ok(resolve_table_references(&statement, true)?.0)
}

/// Whether `query` reads no table at all (`SELECT 1 + 1`): then it is no stream.
fn reads_no_table(query: &Query) -> SqlResult<bool> {
    Ok(tables_read(query)?.is_empty())
}

/// `LIMIT n` at the top of a streaming query: the pipeline ends after its first `n` rows. The
/// query without it, and `n` with where it is written. `OFFSET` and a limit that is not a
/// constant are refused.
fn take_limit(query: &Query) -> SqlResult<(Query, Option<(u64, Span)>)> {
    let Some(clause) = &query.limit_clause else { return Ok((query.clone(), None)) };
    let span = clause.span();
    let limit = match clause {
        LimitClause::LimitOffset { limit, offset: None, limit_by } if limit_by.is_empty() => limit.as_ref(),
        _ => {
            return Err(SqlError::at_span(
                "only LIMIT n is supported on a stream (no OFFSET): it ends the query after its first n rows",
                span,
            ));
        }
    };
    let n = match limit {
        // LIMIT ALL: no limit.
        None => None,
        Some(SqlExpr::Value(value)) => match &value.value {
            SqlValue::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        }
        .map(Some)
        .ok_or_else(|| SqlError::at_span(format!("LIMIT needs a whole number of rows, got {value}"), span))?,
        Some(other) => {
            return Err(SqlError::at_span(format!("LIMIT needs a whole number of rows, got {other}"), span));
        }
    };
    if query.order_by.is_some() {
        return Err(SqlError::at_span(
            "ORDER BY ... LIMIT is not supported on a stream (it would never finish); keep the top rows with \
             ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) <= n, or order results in the sink",
            span,
        ));
    }
    let mut query = query.clone();
    query.limit_clause = None;
    Ok((query, n.map(|n| (n, span))))
}

/// ORDER BY and LIMIT at the top of a streaming query, reported where they are written.
/// `CAST` between a timestamp or date and a number, which Flink refuses: the number's unit
/// would be a guess (a TIMESTAMP literal casts to nanoseconds, a TIMESTAMP(3) column to
/// milliseconds), a silently wrong answer. Refused where the CAST is written, with what to write.
fn reject_time_number_casts(plan: &LogicalPlan, query: &Query) -> SqlResult<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Cast, ExprSchemable, TryCast};
    use datafusion::sql::sqlparser::ast::{DataType as SqlType, Expr as SqlExpr, Spanned, visit_expressions};
    let is_time = |t: &DataType| matches!(t, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64);
    let is_number = |t: &DataType| t.is_numeric();
    // (from a time to a number?) of the first such cast in the plan.
    let mut found: Option<bool> = None;
    plan.apply(|node| {
        let schema = node.inputs().first().map(|i| i.schema().clone()).unwrap_or_else(|| node.schema().clone());
        for expr in node.expressions() {
            expr.apply(|e| {
                let (inner, to) = match e {
                    Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                        (expr, field.data_type())
                    }
                    _ => return Ok(TreeNodeRecursion::Continue),
                };
                if let Ok(from) = inner.get_type(schema.as_ref()) {
                    if is_time(&from) && is_number(to) {
                        found = Some(true);
                    } else if is_number(&from) && matches!(to, DataType::Timestamp(..)) {
                        found = Some(false);
                    }
                }
                Ok(if found.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })?;
            if found.is_some() {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let Some(to_number) = found else { return Ok(()) };
    let message = if to_number {
        "CAST of a TIMESTAMP or DATE to a number is not supported (as in Flink): its unit would be a guess; \
         for seconds since the epoch write UNIX_TIMESTAMP(CAST(ts AS STRING)) or \
         TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', ts)"
    } else {
        "CAST of a number to a TIMESTAMP is not supported (as in Flink): its unit would be a guess; \
         write TO_TIMESTAMP_LTZ(n, 3) for epoch milliseconds or TO_TIMESTAMP_LTZ(n, 0) for seconds"
    };
    // Where: the first CAST written to a number (or to a timestamp) type.
    let written = visit_expressions(query, |expr| match expr {
        SqlExpr::Cast { data_type, .. } => {
            let numeric = matches!(
                data_type,
                SqlType::TinyInt(_)
                    | SqlType::SmallInt(_)
                    | SqlType::Int(_)
                    | SqlType::Integer(_)
                    | SqlType::BigInt(_)
                    | SqlType::Float(_)
                    | SqlType::Real
                    | SqlType::Double(_)
                    | SqlType::DoublePrecision
                    | SqlType::Decimal(_)
                    | SqlType::Numeric(_)
            );
            let timestamp = matches!(data_type, SqlType::Timestamp(..));
            if (to_number && numeric) || (!to_number && timestamp) {
                ControlFlow::Break(expr.span())
            } else {
                ControlFlow::Continue(())
            }
        }
        _ => ControlFlow::Continue(()),
    });
    Err(match written {
        ControlFlow::Break(span) => SqlError::at_span(message, span),
        ControlFlow::Continue(()) => SqlError::new(message),
    })
}

fn reject_unbounded_clauses(query: &Query) -> SqlResult<()> {
    if let Some(order_by) = &query.order_by {
        return Err(SqlError::at_span(ORDER_BY_UNSUPPORTED, order_by.span()));
    }
    if let Some(limit) = &query.limit_clause {
        return Err(SqlError::at_span(LIMIT_UNSUPPORTED, limit.span()));
    }
    Ok(())
}

/// `x IN (SELECT y ...)` and `EXISTS (SELECT ...)` in a WHERE as DataFusion's `LEFT SEMI` joins
/// (its decorrelation rule alone, not the optimizer), which the planner runs as semi joins.
fn decorrelate_subqueries(plan: LogicalPlan) -> SqlResult<LogicalPlan> {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::optimizer::decorrelate_predicate_subquery::DecorrelatePredicateSubquery;
    use datafusion::optimizer::{OptimizerContext, OptimizerRule};
    let has_subquery = plan.exists(|node| {
        Ok(node
            .expressions()
            .iter()
            .any(|e| e.exists(|e| Ok(matches!(e, Expr::InSubquery(_) | Expr::Exists(_)))).unwrap_or(false)))
    })?;
    if !has_subquery {
        return Ok(plan);
    }
    let rule = DecorrelatePredicateSubquery::new();
    let config = OptimizerContext::new();
    Ok(plan.transform_down(|node| rule.rewrite(node, &config))?.data)
}
