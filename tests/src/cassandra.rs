//! A real Cassandra for tests: started with `scripts/cassandra.sh` (never mocked, never
//! skipped), and read back with CQL.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::{CqlValue, Row as CqlRow};

use crate::{Cell, Row};

/// Where tests find Cassandra (`scripts/cassandra.sh` starts it there).
pub const HOSTS: &str = "127.0.0.1:9042";

/// The keyspace tests write to (created by the sink's `'create-table'`).
pub const KEYSPACE: &str = "streamsql_it";

/// `scripts/cassandra.sh` in this checkout.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/cassandra.sh")
}

/// Runs `scripts/cassandra.sh <command>` and panics with its output if it fails.
pub fn run_script(command: &str, keep_data: bool) {
    let output = Command::new("bash")
        .arg(script())
        .arg(command)
        .env("CASSANDRA_KEEP_DATA", if keep_data { "1" } else { "0" })
        .output()
        .expect("run scripts/cassandra.sh");
    assert!(
        output.status.success(),
        "scripts/cassandra.sh {command} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts Cassandra once per test process (a running node is reused). A test that needs
/// Cassandra fails here when it cannot start: it is never skipped.
pub fn ensure_running() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| run_script("start", true));
}

/// A table name no earlier run has used: `prefix_<pid>_<nanos>`.
pub fn unique_table(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() % 1_000_000_000);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A CQL session for reading results back.
pub async fn connect() -> Session {
    SessionBuilder::new().known_node(HOSTS).build().await.expect("connect to Cassandra")
}

/// Runs one CQL statement.
pub async fn execute(session: &Session, cql: &str) {
    session.query_unpaged(cql, &[]).await.unwrap_or_else(|e| panic!("{cql}: {e}"));
}

fn cell(value: Option<CqlValue>) -> Cell {
    match value {
        None => Cell::Null,
        Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => Cell::Str(s),
        Some(CqlValue::Boolean(b)) => Cell::Bool(b),
        Some(CqlValue::TinyInt(i)) => Cell::Int(i64::from(i)),
        Some(CqlValue::SmallInt(i)) => Cell::Int(i64::from(i)),
        Some(CqlValue::Int(i)) => Cell::Int(i64::from(i)),
        Some(CqlValue::BigInt(i)) => Cell::Int(i),
        Some(CqlValue::Float(f)) => Cell::Float(f64::from(f)),
        Some(CqlValue::Double(f)) => Cell::Float(f),
        Some(CqlValue::Timestamp(t)) => Cell::Ts(t.0),
        Some(CqlValue::Date(d)) => {
            let days = i64::from(d.0) - (1i64 << 31);
            let date = chrono::DateTime::from_timestamp(days * 86_400, 0).expect("date in range").date_naive();
            Cell::Str(date.format("%Y-%m-%d").to_string())
        }
        Some(CqlValue::Decimal(d)) => {
            let (bytes, scale) = d.as_signed_be_bytes_slice_and_exponent();
            let mut padded = [if bytes.first().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 }; 16];
            padded[16 - bytes.len()..].copy_from_slice(bytes);
            Cell::Float(i128::from_be_bytes(padded) as f64 / 10f64.powi(scale))
        }
        Some(other) => Cell::Str(format!("{other:?}")),
    }
}

/// Every row of `keyspace.table`, `columns` in order, as test cells.
pub async fn select_rows(session: &Session, table: &str, columns: &[&str]) -> Vec<Row> {
    let cql = format!("SELECT {} FROM {KEYSPACE}.{table}", columns.join(", "));
    let result = session.query_unpaged(cql.as_str(), &[]).await.unwrap_or_else(|e| panic!("{cql}: {e}"));
    let rows = result.into_rows_result().expect("rows");
    rows.rows::<CqlRow>()
        .expect("typed rows")
        .map(|row| row.expect("row").columns.into_iter().map(cell).collect())
        .collect()
}
