//! Cassandra table schemas: CQL types of our columns, CREATE TABLE, and checking an existing
//! table against the sink's DDL.

use std::collections::HashMap;

use arrow::datatypes::{DataType, TimeUnit};
use scylla::client::session::Session;
use streamsql_engine::connector::TableDef;
use streamsql_engine::{Result, StreamError};

use super::options::CassandraOptions;

/// The CQL type a column of `data_type` is written as.
pub fn cql_type(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Utf8 => "text",
        DataType::Boolean => "boolean",
        DataType::Int8 => "tinyint",
        DataType::Int16 => "smallint",
        DataType::Int32 => "int",
        DataType::Int64 => "bigint",
        DataType::Float32 => "float",
        DataType::Float64 => "double",
        DataType::Decimal128(..) => "decimal",
        DataType::Date32 => "date",
        DataType::Timestamp(TimeUnit::Millisecond, None) => "timestamp",
        _ => return None,
    })
}

/// `CREATE TABLE IF NOT EXISTS` for the sink's DDL: first key column partitions, the rest
/// cluster.
pub fn create_table_cql(options: &CassandraOptions, table: &TableDef) -> String {
    let columns: Vec<String> = table
        .schema
        .fields()
        .iter()
        .map(|f| format!("\"{}\" {}", f.name(), cql_type(f.data_type()).unwrap_or("blob")))
        .collect();
    let key: Vec<String> = if table.primary_key.is_empty() {
        table.schema.fields().first().map(|f| f.name().clone()).into_iter().collect()
    } else {
        table.primary_key.clone()
    };
    let quoted: Vec<String> = key.iter().map(|k| format!("\"{k}\"")).collect();
    let primary = match quoted.split_first() {
        Some((partition, [])) => format!("({partition})"),
        Some((partition, clustering)) => format!("(({partition}), {})", clustering.join(", ")),
        None => "()".into(),
    };
    let order = if options.clustering_order.is_empty() {
        String::new()
    } else {
        let columns: Vec<String> = options
            .clustering_order
            .iter()
            .map(|(c, descending)| format!("\"{c}\" {}", if *descending { "DESC" } else { "ASC" }))
            .collect();
        format!(" WITH CLUSTERING ORDER BY ({})", columns.join(", "))
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY {primary}){order}",
        options.qualified_table(),
        columns.join(", ")
    )
}

fn cql_error(what: &str, options: &CassandraOptions, e: impl std::fmt::Display) -> StreamError {
    StreamError::Config(format!("Cassandra at {}: {what} failed: {e}", options.hosts.join(", ")))
}

/// Creates the keyspace (if missing) and the table (if missing).
pub async fn create(session: &Session, options: &CassandraOptions, table: &TableDef) -> Result<()> {
    let keyspace =
        format!("CREATE KEYSPACE IF NOT EXISTS \"{}\" WITH replication = {}", options.keyspace, options.replication);
    session.query_unpaged(keyspace.as_str(), &[]).await.map_err(|e| cql_error(&keyspace, options, e))?;
    let create = create_table_cql(options, table);
    session.query_unpaged(create.as_str(), &[]).await.map_err(|e| cql_error(&create, options, e))?;
    session.await_schema_agreement().await.map_err(|e| cql_error("waiting for schema agreement", options, e))?;
    Ok(())
}

/// The Cassandra table's columns: name → (CQL type, kind); empty when the table does not exist.
pub async fn columns(session: &Session, options: &CassandraOptions) -> Result<HashMap<String, (String, String)>> {
    let query = "SELECT column_name, type, kind FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?";
    let rows = session
        .query_unpaged(query, (&options.keyspace, &options.table))
        .await
        .map_err(|e| cql_error("reading the table schema", options, e))?
        .into_rows_result()
        .map_err(|e| cql_error("reading the table schema", options, e))?;
    let mut columns: HashMap<String, (String, String)> = HashMap::new();
    for row in rows.rows::<(String, String, String)>().map_err(|e| cql_error("reading the table schema", options, e))? {
        let (name, cql_type, kind) = row.map_err(|e| cql_error("reading the table schema", options, e))?;
        columns.insert(name, (cql_type.to_ascii_lowercase(), kind));
    }
    Ok(columns)
}

/// Whether a column of `data_type` can be written into a Cassandra column of type `cql`: its
/// own type, or one that holds every value of it (INT into bigint, FLOAT into double, STRING
/// into varchar or ascii; an ASCII column refuses a non-ASCII value when it is written).
pub fn writable(cql: &str, data_type: &DataType) -> bool {
    let cql = cql.to_ascii_lowercase();
    let cql = cql.as_str();
    match data_type {
        DataType::Utf8 => matches!(cql, "text" | "varchar" | "ascii"),
        DataType::Int8 => matches!(cql, "tinyint" | "smallint" | "int" | "bigint"),
        DataType::Int16 => matches!(cql, "smallint" | "int" | "bigint"),
        DataType::Int32 => matches!(cql, "int" | "bigint"),
        DataType::Float32 => matches!(cql, "float" | "double"),
        other => cql_type(other) == Some(cql),
    }
}

/// Checks that the table exists, has every sink column with a type it can be written to, and
/// that every key column of the Cassandra table is written.
pub async fn check(session: &Session, options: &CassandraOptions, table: &TableDef) -> Result<()> {
    let columns = columns(session, options).await?;
    if columns.is_empty() {
        return Err(StreamError::Config(format!(
            "Cassandra table {}.{} does not exist at {}; create it with\n    {};\n  or set 'create-table' = 'true' on table '{}'",
            options.keyspace,
            options.table,
            options.hosts.join(", "),
            create_table_cql(options, table),
            table.name
        )));
    }
    for field in table.schema.fields() {
        let expected = cql_type(field.data_type()).unwrap_or("?");
        match columns.get(field.name()) {
            None => {
                return Err(StreamError::Config(format!(
                    "table '{}': column '{}' does not exist in Cassandra table {}.{} (add it with ALTER TABLE {} ADD \"{}\" {expected})",
                    table.name,
                    field.name(),
                    options.keyspace,
                    options.table,
                    options.qualified_table(),
                    field.name()
                )));
            }
            Some((actual, _)) if !writable(actual, field.data_type()) => {
                return Err(StreamError::Config(format!(
                    "table '{}': column '{}' is {} in Cassandra table {}.{}, but the sink writes {expected}",
                    table.name,
                    field.name(),
                    actual,
                    options.keyspace,
                    options.table
                )));
            }
            Some(_) => {}
        }
    }
    for (name, (_, kind)) in &columns {
        if (kind == "partition_key" || kind == "clustering") && table.schema.column_with_name(name).is_none() {
            return Err(StreamError::Config(format!(
                "table '{}': Cassandra table {}.{} has key column '{name}', which the sink does not write",
                table.name, options.keyspace, options.table
            )));
        }
    }
    Ok(())
}
