//! Mapping query results onto a sink table: by position, with implicit widening casts only.

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column};
use streamsql_engine::operators::stateless::StatelessOp;

use crate::error::{SqlError, SqlResult};
use crate::types::{implicitly_castable, sql_name};

/// The projection writing `query` columns into `sink` columns, or a message naming the column
/// that does not fit.
pub fn sink_projection(table: &str, query: &DFSchema, sink: &Schema) -> SqlResult<StatelessOp> {
    let produced = query.fields().len();
    let expected = sink.fields().len();
    if produced != expected {
        let columns = sink.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ");
        return Err(SqlError::new(format!(
            "INSERT INTO {table}: the query produces {produced} column{} but '{table}' has {expected} ({columns}); columns are matched by position",
            if produced == 1 { "" } else { "s" }
        )));
    }
    let mut exprs: Vec<Arc<dyn PhysicalExpr>> = Vec::with_capacity(expected);
    for (i, (source, target)) in query.fields().iter().zip(sink.fields()).enumerate() {
        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(source.name(), i));
        if source.data_type() == target.data_type() {
            exprs.push(column);
        } else if implicitly_castable(source.data_type(), target.data_type()) {
            exprs.push(Arc::new(CastExpr::new(column, target.data_type().clone(), None)));
        } else {
            return Err(SqlError::new(format!(
                "INSERT INTO {table}: column '{}' (position {}) is {} but the query produces {} (from '{}'); CAST it explicitly if that is what you mean",
                target.name(),
                i + 1,
                sql_name(target.data_type()),
                sql_name(source.data_type()),
                source.name()
            )));
        }
    }
    Ok(StatelessOp::Project { exprs, schema: Arc::new(sink.clone()) })
}
