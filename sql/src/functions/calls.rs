//! Checks on function calls as written, for errors that point at the call: the catalog lookup
//! that refuses an unsupported function sees only its name, not where it is.
//!
//! [`reject_unsupported_calls`] is meant to run on each query before DataFusion plans it.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, visit_expressions};

use super::registry;
use super::unsupported::message;
use crate::error::{SqlError, SqlResult};

/// Refuses the first call of a Flink built-in that is not supported yet, at its position.
pub fn reject_unsupported_calls(query: &Query) -> SqlResult<()> {
    let found = visit_expressions(query, |expr| {
        if let Expr::Function(call) = expr
            && let [part] = call.name.0.as_slice()
            && let Some(ident) = part.as_ident()
            && ident.quote_style.is_none()
            && let Some(function) = registry::find(&ident.value)
            && !function.is_supported()
        {
            return ControlFlow::Break((function, ident.span));
        }
        ControlFlow::Continue(())
    });
    match found {
        ControlFlow::Break((function, span)) => Err(SqlError::at_span(message(function), span)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn check(sql: &str) -> SqlResult<()> {
        let statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap_or_default();
        match statements.first() {
            Some(Statement::Query(query)) => reject_unsupported_calls(query),
            other => panic!("not a query: {other:?}"),
        }
    }

    #[test]
    fn unsupported_calls_are_refused_where_they_are_written() {
        let error = check("SELECT ts,\n  upper(k), LISTAGG(k) FROM t").err();
        let error = error.unwrap_or_else(|| SqlError::new("planned"));
        assert!(error.message().starts_with("LISTAGG is not supported yet"), "{error}");
        assert_eq!(error.location(), Some((2, 13)));
        assert!(check("SELECT upper(k), \"listagg\"(ts) FROM t WHERE date_format(ts, 'yyyy') > '2'").is_ok());
        let nested = check("SELECT * FROM (SELECT listagg(k) FROM t) WHERE k IN (1)").err();
        assert!(nested.is_some_and(|e| e.message().starts_with("LISTAGG")));
    }
}
