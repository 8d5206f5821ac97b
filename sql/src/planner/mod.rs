//! Planning statements: DDL into the catalog, queries into engine pipelines.
//!
//! - [`ddl`]: `CREATE TABLE` → a validated [`TableDef`](streamsql_engine::connector::TableDef).
//! - [`lower`]: DataFusion `LogicalPlan` → a tree of sources, stages and stateless chains.
//! - [`join`]: joins of two streams → a join stage.
//! - [`over`]: OVER window functions → an OVER stage.
//! - [`sink`]: `INSERT INTO` column mapping (by position, implicit widening casts only).

pub mod ddl;
pub mod join;
pub mod lower;
pub mod over;
pub mod sink;

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

/// Unquoted identifiers are case-insensitive (lower-cased), quoted ones are kept as written,
/// as in DataFusion.
pub fn normalize_ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The catalog key of a (single-part) table name.
pub fn normalize_object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| part.as_ident().map(normalize_ident).unwrap_or_else(|| part.to_string()))
        .collect::<Vec<_>>()
        .join(".")
}
