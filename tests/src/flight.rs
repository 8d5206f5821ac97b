//! Real Flight SQL clients for tests, and an in-process streamsql serving live tables.
//!
//! The clients are the ones users have: Python ADBC (`adbc-driver-flightsql` with `pyarrow`) and
//! the Arrow Flight SQL JDBC driver, installed by `scripts/flight-clients.sh` from PyPI and Maven
//! Central and driven through `tests/clients/`. They are never mocked: a test that cannot install
//! them fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;
use streamsql_engine::live::LiveCatalog;
use streamsql_engine::runtime::{self, PipelineReport, RunningPipeline};
use streamsql_flight::{FlightSqlServer, QueryEngine, QueryLimits, ServerHandle};
use streamsql_sql::Session;

use crate::{Cell, Row, describe_sql_error};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The installed clients.
pub struct Clients {
    pub python: PathBuf,
    pub jdbc_jar: PathBuf,
}

fn script_output(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(repo().join("scripts/flight-clients.sh"))
        .args(args)
        .output()
        .expect("run scripts/flight-clients.sh");
    assert!(
        output.status.success(),
        "scripts/flight-clients.sh {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Installs the clients once per test process (a no-op when they are installed).
pub fn clients() -> &'static Clients {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS.get_or_init(|| {
        script_output(&["ensure"]);
        Clients { python: script_output(&["python"]).into(), jdbc_jar: script_output(&["jdbc-jar"]).into() }
    })
}

/// What a client printed for one query: `{"sql", "columns", "types"?, "rows"}` or `{"error"}`.
pub type Answer = Value;

fn json_lines(output: &std::process::Output, what: &str) -> anyhow::Result<Vec<Answer>> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Answer> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("{what} printed a line that is not JSON: {l}")))
        .collect::<anyhow::Result<_>>()?;
    if !output.status.success() {
        bail!(
            "{what} exited with {}: {}\nstderr:\n{}",
            output.status,
            lines.last().map(Value::to_string).unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(lines)
}

impl Clients {
    /// Runs `tests/clients/adbc_query.py --uri URI <options> SQL...`.
    pub fn adbc(&self, uri: &str, options: &[&str], sqls: &[&str]) -> anyhow::Result<Vec<Answer>> {
        let output = Command::new(&self.python)
            .arg(repo().join("tests/clients/adbc_query.py"))
            .args(["--uri", uri])
            .args(options)
            .args(sqls)
            .output()
            .context("run the ADBC client")?;
        json_lines(&output, "the ADBC client")
    }

    /// Runs `tests/clients/JdbcQuery.java URL SQL...` with the JDBC driver.
    pub fn jdbc(&self, url: &str, properties: &[&str], sqls: &[&str]) -> anyhow::Result<Vec<Answer>> {
        let output = Command::new("java")
            .arg("--add-opens=java.base/java.nio=ALL-UNNAMED")
            .args(properties)
            .arg("-cp")
            .arg(&self.jdbc_jar)
            .arg(repo().join("tests/clients/JdbcQuery.java"))
            .arg(url)
            .args(sqls)
            .output()
            .context("run the JDBC client")?;
        json_lines(&output, "the JDBC client")
    }
}

/// The rows of a client's answer; columns listed in `timestamps` hold epoch milliseconds.
pub fn answer_rows(answer: &Answer, timestamps: &[usize]) -> anyhow::Result<Vec<Row>> {
    if let Some(error) = answer.get("error") {
        bail!("the query failed: {error}");
    }
    let rows = answer.get("rows").and_then(Value::as_array).ok_or_else(|| anyhow!("no rows in {answer}"))?;
    rows.iter()
        .map(|row| {
            let values = row.as_array().ok_or_else(|| anyhow!("a row that is not a list: {row}"))?;
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    Ok(match v {
                        Value::Null => Cell::Null,
                        Value::Bool(b) => Cell::Bool(*b),
                        Value::Number(n) if timestamps.contains(&i) => {
                            Cell::Ts(n.as_i64().ok_or_else(|| anyhow!("timestamp {n}"))?)
                        }
                        Value::Number(n) => match n.as_i64() {
                            Some(i) => Cell::Int(i),
                            None => Cell::Float(n.as_f64().ok_or_else(|| anyhow!("number {n}"))?),
                        },
                        Value::String(s) => Cell::Str(s.clone()),
                        other => bail!("unexpected value {other}"),
                    })
                })
                .collect()
        })
        .collect()
}

/// An in-process streamsql: a session whose `live` tables a Flight SQL server serves, as
/// `streamsql -f ... --flight` runs them.
pub struct LiveServer {
    pub address: SocketAddr,
    pub catalog: Arc<LiveCatalog>,
    pipelines: Vec<RunningPipeline>,
    _server: ServerHandle,
}

impl LiveServer {
    /// Plans `sql`, starts its pipelines and a Flight SQL server on a free loopback port.
    pub fn start(sql: &str, token: Option<&str>) -> anyhow::Result<Self> {
        Self::start_with_limits(sql, token, QueryLimits::default())
    }

    /// As [`LiveServer::start`], with queries held to `limits`.
    pub fn start_with_limits(sql: &str, token: Option<&str>, limits: QueryLimits) -> anyhow::Result<Self> {
        let catalog = LiveCatalog::new();
        let mut session = Session::new(streamsql_connectors::registry_with_live(&catalog));
        let specs = session
            .execute(sql)
            .map_err(|e| anyhow!("planning failed: {}\n--- script ---\n{sql}", describe_sql_error(&e)))?;
        // As the binary serves: with Flink's functions.
        let engine = QueryEngine::new(catalog.clone(), limits)
            .with_functions(Arc::new(streamsql_sql::functions::with_flink_functions));
        let server = FlightSqlServer::bind_engine(
            "127.0.0.1:0".parse().expect("an address"),
            engine,
            token.map(str::to_string),
        )?
        .spawn();
        let pipelines = specs.into_iter().map(runtime::start).collect();
        Ok(Self { address: server.address, catalog, pipelines, _server: server })
    }

    /// `grpc://127.0.0.1:PORT`, for ADBC.
    pub fn uri(&self) -> String {
        format!("grpc://{}", self.address)
    }

    /// The JDBC URL (`extra` is appended to its query string, e.g. `&token=...`).
    pub fn jdbc_url(&self, extra: &str) -> String {
        format!("jdbc:arrow-flight-sql://{}/?useEncryption=false{extra}", self.address)
    }

    /// Waits for every pipeline to finish (bounded inputs); the server keeps serving.
    pub async fn finish_pipelines(&mut self) -> anyhow::Result<Vec<PipelineReport>> {
        let mut reports = Vec::new();
        for pipeline in self.pipelines.drain(..) {
            reports.push(pipeline.join().await?);
        }
        Ok(reports)
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        for pipeline in &self.pipelines {
            pipeline.control().cancel();
        }
    }
}

/// Runs a client on a blocking thread, so the server and pipelines keep running meanwhile.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("client thread")
}
