//! `CREATE TABLE`: types, watermark, primary key and connector options, checked up front.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::catalog::Catalog;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{Expr as LogicalExpr, ExprSchemable};
use datafusion::sql::planner::PlannerContext;
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Spanned};
use datafusion::sql::sqlparser::tokenizer::Span;
use streamsql_engine::connector::{
    ComputedColumn, Connector, ConnectorRegistry, METADATA_FIELD, Role, TableDef, WatermarkDef,
};
use streamsql_engine::pipeline::BoundTable;

use super::lower::{PROCESSING_TIME_FIELD, is_processing_time_call, physical as lower_physical, prepare};
use super::normalize_ident;
use crate::error::{SqlError, SqlResult};
use crate::parser::window_tvf::interval_millis;
use crate::parser::{CreateTable, WatermarkClause};
use crate::types::arrow_type;

/// Field metadata holding a column's name as declared (`emailAddress`) when its SQL name is
/// lower-cased (`emailaddress`), for connectors that match names in the data. Connectors read
/// it under the same key (`streamsql_connectors::format::decode::DECLARED_NAME`).
pub const DECLARED_NAME: &str = "streamsql.declared_name";

/// Builds and validates the table declared by `create`; `functions` resolves the functions of
/// computed columns.
pub fn create_table(
    create: &CreateTable,
    name: &str,
    registry: &dyn ConnectorRegistry,
    functions: &Catalog,
) -> SqlResult<BoundTable> {
    let name_span = create.name.span();
    let (connector, options) = bind_connector(name, &create.options, name_span, registry)?;

    // Columns read by the connector; computed ones are planned over them afterwards.
    let mut fields: Vec<Field> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for column in &create.columns {
        let column_name = normalize_ident(&column.name);
        if names.contains(&column_name) {
            return Err(SqlError::at_span(format!("column '{column_name}' is declared twice"), column.span));
        }
        names.push(column_name.clone());
        if column.computed.is_some() {
            continue;
        }
        let data_type = arrow_type(&column.data_type)
            .map_err(|m| SqlError::at_span(format!("column '{column_name}': {m}"), column.span))?;
        let mut metadata = HashMap::new();
        if column.name.value != column_name {
            // SQL finds `emailAddress` as `emailaddress`; a JSON key or a CSV header is matched
            // as it was declared.
            metadata.insert(DECLARED_NAME.to_string(), column.name.value.clone());
        }
        if let Some((key, is_virtual)) = &column.metadata {
            let key = key.clone().unwrap_or_else(|| column.name.value.clone());
            let offered = connector.metadata();
            let Some(spec) = offered.iter().find(|m| m.key == key) else {
                let choices: Vec<String> = offered.iter().map(|m| format!("'{}'", m.key)).collect();
                let message = if choices.is_empty() {
                    format!("column '{column_name}': connector '{}' has no metadata columns", connector.name())
                } else {
                    format!(
                        "column '{column_name}': connector '{}' has no metadata '{key}'; it offers {}",
                        connector.name(),
                        choices.join(", ")
                    )
                };
                return Err(SqlError::at_span(message, column.span));
            };
            if spec.data_type != data_type {
                return Err(SqlError::at_span(
                    format!(
                        "column '{column_name}': metadata '{key}' is {}, declared {}",
                        crate::types::sql_name(&spec.data_type),
                        crate::types::sql_name(&data_type)
                    ),
                    column.span,
                ));
            }
            if *is_virtual {
                metadata.insert(format!("{METADATA_FIELD}.virtual"), "true".into());
            }
            metadata.insert(METADATA_FIELD.to_string(), key);
        }
        let field = Field::new(column_name.clone(), data_type, true).with_metadata(metadata);
        fields.push(field);
    }
    let physical = if fields.is_empty() {
        match connector.default_schema() {
            Some(schema) => Arc::new(Schema::new(
                schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>(),
            )),
            None => {
                return Err(SqlError::at_span(
                    format!("table '{name}' declares no columns; connector '{}' needs them", connector.name()),
                    name_span,
                ));
            }
        }
    } else {
        Arc::new(Schema::new(fields))
    };
    let (schema, computed) = computed_columns(create, physical, functions)?;

    let watermark = create.watermark.as_ref().map(|w| watermark(w, &schema)).transpose()?;

    let mut primary_key = Vec::new();
    for key in &create.primary_key {
        let key_name = normalize_ident(key);
        let Some((index, _)) = schema.column_with_name(&key_name) else {
            return Err(SqlError::at_span(
                format!("PRIMARY KEY column '{key_name}' is not a column of '{name}'"),
                key.span,
            ));
        };
        if computed.iter().any(|c| c.index == index) {
            return Err(SqlError::at_span(
                format!("PRIMARY KEY column '{key_name}' is a computed column; a key must be a physical column"),
                key.span,
            ));
        }
        primary_key.push(key_name);
    }

    let table = TableDef { name: name.to_string(), schema, options, watermark, primary_key, computed };
    let roles: Vec<Role> = [Role::Source, Role::Sink].into_iter().filter(|r| connector.supports(*r)).collect();
    if let [only] = roles.as_slice() {
        if !table.computed.is_empty() && *only == Role::Sink {
            return Err(SqlError::at_span(computed_sink(&table), name_span));
        }
        connector.validate(&table.physical(), *only).map_err(|e| SqlError::at_span(e.to_string(), name_span))?;
    }
    Ok(BoundTable { table, connector })
}

/// The table's columns in declared order, computed ones planned over the others (`physical`,
/// which holds every column when none is computed); the computed columns.
fn computed_columns(
    create: &CreateTable,
    physical: SchemaRef,
    functions: &Catalog,
) -> SqlResult<(SchemaRef, Vec<ComputedColumn>)> {
    if create.columns.iter().all(|c| c.computed.is_none()) {
        return Ok((physical, Vec::new()));
    }
    let input = Arc::new(DFSchema::try_from(physical.as_ref().clone())?);
    let planner = functions.planner();
    let mut fields: Vec<FieldRef> = Vec::new();
    let mut computed = Vec::new();
    let mut next_physical = physical.fields().iter();
    // Declared only computed columns (the connector's columns by default): those come first.
    if create.columns.iter().all(|c| c.computed.is_some()) {
        fields.extend(physical.fields().iter().cloned());
    }
    for column in &create.columns {
        let Some(expr) = &column.computed else {
            fields.extend(next_physical.next().cloned());
            continue;
        };
        let column_name = normalize_ident(&column.name);
        let at =
            |message: String| SqlError::at_span(format!("computed column '{column_name}': {message}"), column.span);
        let logical = planner
            .sql_to_expr(expr.clone(), &input, &mut PlannerContext::new())
            .map_err(|e| at(e.strip_backtrace()))?;
        let aggregates =
            logical.exists(|e| Ok(matches!(e, LogicalExpr::AggregateFunction(_) | LogicalExpr::WindowFunction(_))))?;
        if aggregates {
            return Err(
                at("an aggregate or window function is not allowed here (a column is computed per row)".into()),
            );
        }
        let prepared = prepare(&logical, &input).map_err(|e| at(e.message().to_string()))?;
        let data_type = prepared.get_type(&input)?;
        let physical_expr = lower_physical(&prepared, &input).map_err(|e| at(e.message().to_string()))?;
        computed.push(ComputedColumn { index: fields.len(), expr: physical_expr, text: expr.to_string() });
        let mut field = Field::new(column_name, data_type, true);
        if is_processing_time_call(&logical) {
            // A processing-time attribute: windows over it close by the clock.
            field = field.with_metadata(HashMap::from([(PROCESSING_TIME_FIELD.to_string(), "true".to_string())]));
        }
        fields.push(Arc::new(field));
    }
    Ok((Arc::new(Schema::new_with_metadata(fields, physical.metadata().clone())), computed))
}

/// Why a table with computed columns cannot be written.
fn computed_sink(table: &TableDef) -> String {
    let names: Vec<&str> = table.computed.iter().map(|c| table.schema.field(c.index).name().as_str()).collect();
    format!(
        "table '{}' has computed columns ({}), which are read, never written; declare the sink without them",
        table.name,
        names.join(", ")
    )
}

/// Finds the connector named by `'connector'` in `options` and checks the options against it:
/// no key twice, no unknown key, and every key each use of the connector needs.
pub fn bind_connector(
    name: &str,
    options: &[(String, String, Span)],
    name_span: Span,
    registry: &dyn ConnectorRegistry,
) -> SqlResult<(Arc<dyn Connector>, BTreeMap<String, String>)> {
    let mut map = BTreeMap::new();
    for (key, value, span) in options {
        if map.insert(key.clone(), value.clone()).is_some() {
            return Err(SqlError::at_span(format!("option '{key}' is given twice"), *span));
        }
    }
    let names = registry.names().iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    let Some(connector_name) = map.get("connector") else {
        return Err(SqlError::at_span(
            format!("table '{name}' needs WITH ('connector' = ...); available connectors: {names}"),
            name_span,
        ));
    };
    let connector_span = options.iter().find(|(k, ..)| k == "connector").map_or(name_span, |(_, _, s)| *s);
    let Some(connector) = registry.get(connector_name) else {
        return Err(SqlError::at_span(
            format!("unknown connector '{connector_name}'; available connectors: {names}"),
            connector_span,
        ));
    };
    let specs = connector.options();
    for (key, _, span) in options {
        // A key ending in `.*` (`'properties.*'`) stands for every key with that prefix.
        let known = |spec: &&streamsql_engine::connector::OptionSpec| {
            spec.key == key
                || spec.key.strip_suffix('*').is_some_and(|prefix| key.len() > prefix.len() && key.starts_with(prefix))
        };
        if key != "connector" && !specs.iter().any(|s| known(&s)) {
            let valid = specs.iter().map(|s| format!("'{}'", s.key)).collect::<Vec<_>>();
            let valid = if valid.is_empty() { "none".to_string() } else { valid.join(", ") };
            return Err(SqlError::at_span(
                format!("unknown option '{key}' for connector '{}'; valid options: {valid}", connector.name()),
                *span,
            ));
        }
    }
    let roles: Vec<Role> = [Role::Source, Role::Sink].into_iter().filter(|r| connector.supports(*r)).collect();
    for spec in specs.iter().filter(|s| s.required && roles.iter().all(|r| s.roles.contains(r))) {
        if !map.contains_key(spec.key) {
            return Err(SqlError::at_span(
                format!("table '{name}': option '{}' is required ({})", spec.key, spec.help),
                name_span,
            ));
        }
    }
    Ok((connector, map))
}

/// Checks a table can be used in `role` (options required for it, values, schema), without
/// touching the outside world; [`check_external`] does that once the whole query is planned.
pub fn check_role(bound: &BoundTable, role: Role) -> SqlResult<()> {
    let table = &bound.table;
    let connector = &bound.connector;
    if !connector.supports(role) {
        let verb = if role == Role::Source { "read from" } else { "written to" };
        return Err(SqlError::new(format!(
            "table '{}' (connector '{}') cannot be {verb}",
            table.name,
            connector.name()
        )));
    }
    if role == Role::Sink && !table.computed.is_empty() {
        return Err(SqlError::new(computed_sink(table)));
    }
    for spec in connector.options().iter().filter(|s| s.required && s.roles.contains(&role)) {
        if !table.options.contains_key(spec.key) {
            return Err(SqlError::new(format!(
                "table '{}': option '{}' is required when it is used as a {role} ({})",
                table.name, spec.key, spec.help
            )));
        }
    }
    connector.validate(&table.physical(), role).map_err(SqlError::from)
}

/// The connector's check against the outside world (may connect; see `Connector::check_external`).
pub fn check_external(bound: &BoundTable, role: Role) -> SqlResult<()> {
    bound.connector.check_external(&bound.table.physical(), role).map_err(SqlError::from)
}

/// `WATERMARK FOR ts AS ts - INTERVAL '2' SECOND` (or just `AS ts`).
fn watermark(clause: &WatermarkClause, schema: &Schema) -> SqlResult<WatermarkDef> {
    let column = normalize_ident(&clause.column);
    let Some((index, field)) = schema.column_with_name(&column) else {
        return Err(SqlError::at_span(format!("WATERMARK FOR {column}: there is no column '{column}'"), clause.span));
    };
    if field.data_type() != &DataType::Timestamp(TimeUnit::Millisecond, None) {
        return Err(SqlError::at_span(
            format!(
                "WATERMARK FOR {column}: the event-time column must be TIMESTAMP(3), not {}",
                crate::types::sql_name(field.data_type())
            ),
            clause.span,
        ));
    }
    let same_column = |e: &Expr| match e {
        Expr::Identifier(id) => normalize_ident(id) == column,
        Expr::CompoundIdentifier(ids) => ids.last().is_some_and(|id| normalize_ident(id) == column),
        _ => false,
    };
    let mut expr = &clause.expr;
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    let usage = format!("the watermark must be {column} - INTERVAL 'n' SECOND (or just {column})");
    let delay_ms = match expr {
        e if same_column(e) => 0,
        Expr::BinaryOp { left, op: BinaryOperator::Minus, right } if same_column(left) => {
            interval_millis(right).map_err(|m| SqlError::at_span(format!("{usage}: {m}"), clause.span))?
        }
        _ => return Err(SqlError::at_span(usage, clause.span)),
    };
    Ok(WatermarkDef { column: index, delay_ms })
}
