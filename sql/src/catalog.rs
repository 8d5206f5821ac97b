//! The session catalog: declared tables, views and window relations, seen by DataFusion's SQL
//! planner through [`ContextProvider`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{TableReference, plan_err};
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionState;
use datafusion::logical_expr::planner::{ContextProvider, ExprPlanner, TypePlanner};
use datafusion::logical_expr::{
    AggregateUDF, HigherOrderUDF, LogicalPlan, ScalarUDF, TableSource, TableType, WindowUDF,
};
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use streamsql_engine::pipeline::BoundTable;
use streamsql_engine::time::timestamp_type;

use crate::parser::WindowTvf;

/// Names of the columns a window TVF adds.
pub const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// A named relation.
#[derive(Clone)]
pub enum Relation {
    /// A `CREATE TABLE` with a connector.
    Table(BoundTable),
    /// A `CREATE VIEW`, planned and analyzed.
    View(Arc<LogicalPlan>),
}

impl Relation {
    /// The columns users see.
    pub fn schema(&self) -> SchemaRef {
        match self {
            Relation::Table(t) => t.table.schema.clone(),
            Relation::View(plan) => Arc::new(plan.schema().as_arrow().clone()),
        }
    }
}

/// A connector table as DataFusion sees it.
pub struct ConnectorTableSource {
    pub bound: BoundTable,
}

impl TableSource for ConnectorTableSource {
    fn schema(&self) -> SchemaRef {
        self.bound.table.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
}

/// The relation a window TVF call was rewritten to.
pub struct WindowTableSource {
    pub window: WindowTvf,
    pub input: Relation,
    schema: SchemaRef,
}

impl TableSource for WindowTableSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::View
    }
}

struct ViewTableSource {
    plan: Arc<LogicalPlan>,
}

impl TableSource for ViewTableSource {
    fn schema(&self) -> SchemaRef {
        Arc::new(self.plan.schema().as_arrow().clone())
    }
    fn table_type(&self) -> TableType {
        TableType::View
    }
    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        Some(Cow::Borrowed(self.plan.as_ref()))
    }
}

/// Tables, views and window relations of one session, plus DataFusion's function registry with
/// Flink's functions in it ([`crate::functions`]).
pub struct Catalog {
    pub relations: BTreeMap<String, Relation>,
    pub windows: HashMap<String, WindowTvf>,
    state: SessionState,
}

impl Default for Catalog {
    fn default() -> Self {
        Self { relations: BTreeMap::new(), windows: HashMap::new(), state: crate::functions::session_state() }
    }
}

impl Catalog {
    /// DataFusion's session state (functions, analyzer rules, config).
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// DataFusion's SQL planner over this catalog, as every statement is planned: spans kept
    /// (errors point at the text), strings as plain `Utf8` (the engine's string type).
    pub fn planner(&self) -> SqlToRel<'_, Catalog> {
        let options =
            ParserOptions { collect_spans: true, map_string_types_to_utf8view: false, ..ParserOptions::default() };
        SqlToRel::new_with_options(self, options)
    }

    /// The session state, to register user-defined functions in.
    pub fn state_mut(&mut self) -> &mut SessionState {
        &mut self.state
    }

    /// The schema of a window relation: the input's columns plus the window columns.
    pub fn window_schema(input: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(WINDOW_COLUMNS.iter().map(|n| Field::new(*n, timestamp_type(), false)));
        Arc::new(Schema::new(fields))
    }
}

impl ContextProvider for Catalog {
    fn get_table_source(&self, name: TableReference) -> DfResult<Arc<dyn TableSource>> {
        if name.schema().is_some() {
            return plan_err!("qualified table names are not supported: {name}");
        }
        let table = name.table();
        if let Some(window) = self.windows.get(table) {
            let input_name = window.input.to_string();
            let Some(input) = self.relations.get(&crate::planner::normalize_object_name(&window.input)) else {
                return plan_err!("table '{input_name}' does not exist");
            };
            let schema = Catalog::window_schema(&input.schema());
            return Ok(Arc::new(WindowTableSource { window: window.clone(), input: input.clone(), schema }));
        }
        match self.relations.get(table) {
            Some(Relation::Table(bound)) => Ok(Arc::new(ConnectorTableSource { bound: bound.clone() })),
            Some(Relation::View(plan)) => Ok(Arc::new(ViewTableSource { plan: plan.clone() })),
            None => {
                let known: Vec<&str> = self.relations.keys().map(String::as_str).collect();
                if known.is_empty() {
                    plan_err!("table '{table}' does not exist; declare it with CREATE TABLE first")
                } else {
                    plan_err!("table '{table}' does not exist; known tables: {}", known.join(", "))
                }
            }
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        self.state.expr_planners()
    }

    fn get_type_planner(&self) -> Option<Arc<dyn TypePlanner>> {
        None
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.state.scalar_functions().get(name).cloned()
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        self.state.higher_order_functions().get(name).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.state.aggregate_functions().get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.state.window_functions().get(name).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn get_variable_field(&self, _variable_names: &[String]) -> Option<FieldRef> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        self.state.config_options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.state.scalar_functions().keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.state.higher_order_functions().keys().cloned().collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.state.aggregate_functions().keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.state.window_functions().keys().cloned().collect()
    }
}
