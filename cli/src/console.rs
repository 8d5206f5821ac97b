//! `--http ADDR`: the HTTP side of streamsql, and the [`Board`] of running pipelines it and the
//! status line ([`crate::status`]) read. It serves
//!
//! - `/`: the web console (one page, its assets embedded in the binary): the pipelines with
//!   their SQL, plan, graph and counters, and a stop button; a live chart and table of any live
//!   table; an ad-hoc query box over the live tables;
//! - `/api/...`: what the console reads, as JSON; pipelines and live tables are pushed as
//!   Server-Sent Events (`/api/pipelines/events`, `/api/tables/{name}/events`), not polled;
//! - `/metrics`: the pipelines' counters in Prometheus' text format:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `streamsql_pipeline_rows_in_total`, `..._rows_out_total`, `..._late_rows_total`, `..._bad_records_total`, `..._rows_missing_fields_total`, `..._source_errors_total` | counter | `pipeline`, `statement` |
//! | `streamsql_pipeline_running` | gauge (1 running, 0 ended) | `pipeline`, `statement` |
//! | `streamsql_pipeline_watermark_seconds`, `streamsql_pipeline_watermark_lag_seconds` | gauge (event time; wall clock minus it) | `pipeline`, `statement` |
//! | `streamsql_pipeline_last_checkpoint_id`, `..._last_checkpoint_duration_seconds`, `..._last_checkpoint_size_bytes` | gauge | `pipeline`, `statement` |
//! | `streamsql_operator_rows_in_total`, `..._rows_out_total`, `..._late_rows_total` | counter | `pipeline`, `operator` (`[3] window aggregate`) |
//! | `streamsql_operator_backpressured_seconds_total` | counter (time its instances waited for room downstream) | `pipeline`, `operator` |
//! | `streamsql_pipeline_sink_retries_total` | counter (writes the sink retried after a failure) | `pipeline`, `statement` |
//! | `streamsql_operator_state_bytes` | gauge (estimated memory of a stage's state, sampled each second) | `pipeline`, `operator` |
//! | `streamsql_operator_batch_seconds` | histogram (time a stage took per input batch) | `pipeline`, `operator` |
//! | `streamsql_connector_errors_total` | counter | `pipeline`, `role` (`source`, `sink`), `table`, `connector`, `kind` (`bad_record`, `missing_field`, `failed_request`, `retry`) |
//!
//! The counters are the ones the end-of-run report prints. With `--flight-token` set, `/api` and
//! `/metrics` need `Authorization: Bearer <token>` (or, where a browser cannot send a header,
//! `?token=<token>`); the page itself holds no data. The server keeps serving after bounded
//! pipelines end, until Ctrl-C or SIGTERM, so the last values can be scraped.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, TimestampMillisecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use streamsql_engine::live::LiveCatalog;
use streamsql_engine::metrics::BATCH_SECONDS_BUCKETS;
use streamsql_engine::pipeline::GraphNode;
use streamsql_engine::runtime::PipelineControl;
use streamsql_engine::time::{WATERMARK_MAX, WATERMARK_MIN};
use streamsql_flight::QueryEngine;

/// One pipeline the console reports on.
#[derive(Clone)]
pub struct Entry {
    /// Its statement, as the end-of-run report names it.
    pub name: String,
    /// What the user wrote, and how it runs (`EXPLAIN`'s text and the graph).
    pub info: Arc<PipelineInfo>,
    pub control: PipelineControl,
    pub running: bool,
    /// Stopped from the console.
    pub stopped: bool,
}

/// What the console shows of a pipeline besides its counters.
#[derive(Debug, Default)]
pub struct PipelineInfo {
    /// The statement's SQL.
    pub sql: String,
    /// `EXPLAIN`'s text.
    pub plan: String,
    pub graph: Vec<GraphNode>,
    pub parallelism: usize,
}

/// The pipelines the console reports on.
#[derive(Default)]
pub struct Board {
    pipelines: Mutex<Vec<Entry>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.pipelines.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a started pipeline; it is number `index + 1` of the board's.
    pub fn add(&self, name: String, info: PipelineInfo, control: PipelineControl) {
        self.lock().push(Entry { name, info: Arc::new(info), control, running: true, stopped: false });
    }

    /// Marks pipeline `index` (in the order added) as ended.
    pub fn ended(&self, index: usize) {
        if let Some(entry) = self.lock().get_mut(index) {
            entry.running = false;
        }
    }

    /// Marks pipeline `index` as stopped before its input ended (by the shell's STOP PIPELINE
    /// or Ctrl-C as much as by the console's button).
    pub fn stopped(&self, index: usize) {
        if let Some(entry) = self.lock().get_mut(index) {
            entry.running = false;
            entry.stopped = true;
        }
    }

    /// Stops pipeline `index` (after a final checkpoint, when it takes them); false when there
    /// is no such pipeline running.
    fn stop(&self, index: usize) -> bool {
        let control = {
            let mut pipelines = self.lock();
            match pipelines.get_mut(index) {
                Some(entry) if entry.running && !entry.stopped => {
                    entry.stopped = true;
                    entry.control.clone()
                }
                _ => return false,
            }
        };
        tracing::info!("pipeline {} stopped from the console", index + 1);
        if control.checkpoints() {
            tokio::spawn(async move { control.stop_with_savepoint(Duration::from_secs(60)).await });
        } else {
            control.cancel();
        }
        true
    }

    /// The pipelines as they are now.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.lock().clone()
    }
}

/// What the console serves from.
pub struct ConsoleConfig {
    pub board: Arc<Board>,
    /// The live tables, and the engine ad-hoc queries over them run on.
    pub catalog: Arc<LiveCatalog>,
    pub queries: QueryEngine,
    /// `--flight-token`: required of `/api` and `/metrics` clients when set.
    pub token: Option<String>,
}

type Console = Arc<ConsoleConfig>;

/// A running console server.
pub struct ConsoleHandle {
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for ConsoleHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The page and its assets, embedded: the console works without any network but this one.
const PAGE: &str = include_str!("../assets/console.html");
const SCRIPT: &str = include_str!("../assets/console.js");
const STYLE: &str = include_str!("../assets/console.css");

/// Binds `address` and serves the console on the current runtime.
pub async fn start(address: SocketAddr, config: ConsoleConfig) -> std::io::Result<ConsoleHandle> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    let console: Console = Arc::new(config);
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/pipelines", get(pipelines))
        .route("/api/pipelines/events", get(pipeline_events))
        .route("/api/pipelines/{n}/stop", post(stop))
        .route("/api/tables", get(tables))
        .route("/api/tables/{name}/events", get(table_events))
        .route("/api/query", post(query))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), authorize));
    let app = Router::new()
        .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }))
        .route("/console.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .merge(guarded)
        .with_state(console);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = served.await {
            tracing::error!("the console server at {address} stopped: {e}");
        }
    });
    Ok(ConsoleHandle { address, stop: Some(stop) })
}

/// Lets a request through when no token is set, or when it brings the token: as a bearer token,
/// or as `?token=` (an `EventSource` cannot send headers).
async fn authorize(State(console): State<Console>, request: Request, next: Next) -> Response {
    if let Some(token) = &console.token {
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = request.uri().query().and_then(|q| query_param(q, "token"));
        if header != Some(token.as_str()) && query.as_deref() != Some(token.as_str()) {
            return (StatusCode::UNAUTHORIZED, "a bearer token is required (--flight-token)\n").into_response();
        }
    }
    next.run(request).await
}

/// The value of `name` in a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn metrics(State(console): State<Console>) -> Response {
    let body = render(&console.board.snapshot(), now_millis());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Every pipeline as JSON: its SQL, plan, graph and counters now.
fn pipelines_json(board: &Board) -> Value {
    let now = now_millis();
    let pipelines: Vec<Value> = board
        .snapshot()
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let m = entry.control.metrics();
            let operators = entry.control.operators();
            let nodes: Vec<Value> = entry
                .info
                .graph
                .iter()
                .enumerate()
                .map(|(n, node)| {
                    let counters = operators.get(n).filter(|o| o.name == node.name);
                    let (rows_in, rows_out) = match counters {
                        Some(o) => (o.rows_in, o.rows_out),
                        // The sink: what the pipeline handed it.
                        None => (m.rows_out, m.rows_out),
                    };
                    json!({
                        "id": n + 1,
                        "name": node.name,
                        "instances": node.instances,
                        "inputs": node.inputs.iter().map(|(from, edge)| json!({"from": from + 1, "edge": edge})).collect::<Vec<_>>(),
                        "rows_in": rows_in,
                        "rows_out": rows_out,
                        "late_rows": counters.map_or(0, |o| o.late_rows),
                        "backpressured_ms": counters.map_or(0, |o| o.backpressured_ns / 1_000_000),
                        "state_bytes": counters.map(|o| o.state_bytes),
                        "batches": counters.map(|o| o.batch_seconds.count()),
                        "batch_seconds_sum": counters.map(|o| o.batch_seconds.sum_seconds),
                    })
                })
                .collect();
            let checkpoint = entry.control.last_checkpoint().map(|k| {
                json!({"id": k.epoch, "duration_ms": k.duration.as_millis() as u64, "bytes": k.bytes})
            });
            let state = match (entry.running, entry.stopped) {
                (true, false) => "running",
                (true, true) => "stopping",
                (false, true) => "stopped",
                (false, false) => "finished",
            };
            json!({
                "id": i + 1,
                "name": entry.name,
                "sql": entry.info.sql,
                "plan": entry.info.plan,
                "parallelism": entry.info.parallelism,
                "state": state,
                "rows_in": m.rows_in,
                "rows_out": m.rows_out,
                "late_rows": m.late_rows,
                "bad_records": m.bad_records,
                "source_errors": m.source_errors,
                "sink_retries": m.sink_retries,
                "connectors": entry.control.connectors().iter().map(|c| json!({
                    "table": c.table, "connector": c.connector, "role": c.role,
                    "bad_records": c.bad_records, "rows_missing_fields": c.rows_missing_fields,
                    "source_errors": c.source_errors, "sink_retries": c.sink_retries,
                })).collect::<Vec<_>>(),
                "watermark_ms": watermark(&entry.control),
                "watermark_lag_ms": watermark(&entry.control).map(|w| now - w),
                "checkpoints": entry.control.checkpoints(),
                "last_checkpoint": checkpoint,
                "nodes": nodes,
            })
        })
        .collect();
    json!({"now_ms": now, "pipelines": pipelines})
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

async fn pipelines(State(console): State<Console>) -> Response {
    json_response(StatusCode::OK, &pipelines_json(&console.board))
}

/// The pipelines every second, as events.
async fn pipeline_events(State(console): State<Console>) -> impl IntoResponse {
    let ticks = tokio::time::interval(Duration::from_secs(1));
    let events = futures::stream::unfold((ticks, console), |(mut ticks, console)| async move {
        ticks.tick().await;
        let event = Event::default().data(pipelines_json(&console.board).to_string());
        Some((Ok::<_, std::convert::Infallible>(event), (ticks, console)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

async fn stop(State(console): State<Console>, Path(n): Path<String>) -> Response {
    match n.parse::<usize>() {
        Ok(n) if n >= 1 && console.board.stop(n - 1) => json_response(StatusCode::ACCEPTED, &json!({"stopping": n})),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": format!("no running pipeline {n}")})),
    }
}

fn chart_json(chart: &streamsql_engine::live::Chart) -> Value {
    json!({"kind": chart.kind.name(), "x": chart.x, "y": chart.y, "series": chart.series})
}

fn columns_json(schema: &arrow::datatypes::Schema) -> Vec<Value> {
    schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "kind": kind(f.data_type())}))
        .collect()
}

async fn tables(State(console): State<Console>) -> Response {
    let tables: Vec<Value> = console
        .catalog
        .tables()
        .into_iter()
        .filter_map(|(name, schema)| {
            let table = console.catalog.table(&name)?;
            Some(json!({
                "name": name,
                "columns": columns_json(&schema),
                "primary_key": table.options().primary_key.iter().map(|&i| schema.field(i).name().clone()).collect::<Vec<_>>(),
                "chart": chart_json(&table.options().chart),
            }))
        })
        .collect();
    json_response(StatusCode::OK, &json!({"tables": tables}))
}

/// Rows a table event or a query answer carries at most, unless the request asks for fewer.
const MAX_ROWS: usize = 10_000;

/// A live table's rows (the newest `limit`) whenever they change, at most four times a second.
async fn table_events(State(console): State<Console>, Path(name): Path<String>, RawQuery(query): RawQuery) -> Response {
    let Some(table) = console.catalog.table(&name) else {
        return json_response(StatusCode::NOT_FOUND, &json!({"error": format!("no live table '{name}'")}));
    };
    let limit = query
        .as_deref()
        .and_then(|q| query_param(q, "limit"))
        .and_then(|l| l.parse::<usize>().ok())
        .map_or(2_000, |l| l.clamp(1, MAX_ROWS));
    let changes = console.catalog.subscribe();
    // `None` first: the rows as they are now go out at once, even when nothing changes.
    let events = futures::stream::unfold((changes, table, None::<u64>), move |(mut changes, table, sent)| async move {
        loop {
            if sent.is_some_and(|v| v == table.version()) {
                if changes.changed().await.is_err() {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                changes.borrow_and_update();
                continue;
            }
            let data = match table.snapshot() {
                Ok((version, batches)) => {
                    let (rows, total) = rows_json(&batches, limit, true);
                    let columns = columns_json(table.schema());
                    let event = json!({"version": version, "total_rows": total, "columns": columns, "rows": rows});
                    (version, event)
                }
                Err(e) => (table.version(), json!({"error": e.to_string()})),
            };
            let event = Event::default().data(data.1.to_string());
            return Some((Ok::<_, std::convert::Infallible>(event), (changes, table, Some(data.0))));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// Runs the body's SQL over the live tables, as Flight SQL would.
async fn query(State(console): State<Console>, body: Bytes) -> Response {
    let Ok(sql) = std::str::from_utf8(&body) else {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "the query is not UTF-8"}));
    };
    if sql.trim().is_empty() {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "no query"}));
    }
    match console.queries.run(sql).await {
        Ok(result) => {
            let columns = columns_json(&result.schema);
            let (rows, total) = rows_json(&result.batches, MAX_ROWS, false);
            json_response(StatusCode::OK, &json!({"columns": columns, "rows": rows, "total_rows": total}))
        }
        Err(e) => json_response(StatusCode::BAD_REQUEST, &json!({"error": e.strip_backtrace()})),
    }
}

/// How the page treats a column: `time` (epoch ms), `number`, `bool` or `text`.
fn kind(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => "time",
        t if t.is_numeric() => "number",
        DataType::Boolean => "bool",
        _ => "text",
    }
}

/// Up to `limit` rows as JSON arrays (the first ones, or the last when `newest`), and how many
/// rows there are: times as epoch milliseconds, numbers as numbers (NaN and infinities as
/// null), everything else as its text.
fn rows_json(batches: &[RecordBatch], limit: usize, newest: bool) -> (Vec<Value>, usize) {
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let skip = if newest { total.saturating_sub(limit) } else { 0 };
    let mut rows = Vec::with_capacity(total.min(limit));
    let mut seen = 0;
    for batch in batches {
        let (start, end) = (seen, seen + batch.num_rows());
        seen = end;
        if end <= skip || rows.len() >= limit {
            continue;
        }
        let from = skip.saturating_sub(start);
        let count = (batch.num_rows() - from).min(limit - rows.len());
        let columns: Vec<Vec<Value>> = batch.columns().iter().map(|c| column_json(&c.slice(from, count))).collect();
        for r in 0..count {
            rows.push(Value::Array(columns.iter().map(|c| c[r].clone()).collect()));
        }
    }
    (rows, total)
}

fn column_json(array: &dyn Array) -> Vec<Value> {
    let as_text = |array: &dyn Array| -> Vec<Value> {
        let options = FormatOptions::default().with_null("");
        match ArrayFormatter::try_new(array, &options) {
            Ok(formatter) => (0..array.len())
                .map(|i| if array.is_null(i) { Value::Null } else { Value::String(formatter.value(i).to_string()) })
                .collect(),
            Err(_) => vec![Value::Null; array.len()],
        }
    };
    match kind(array.data_type()) {
        "time" => {
            match arrow::compute::cast(array, &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None)) {
                Ok(cast) => cast
                    .as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .map(|v| v.map_or(Value::Null, Value::from))
                    .collect(),
                Err(_) => as_text(array),
            }
        }
        "number" if !matches!(array.data_type(), DataType::Int64 | DataType::UInt64) => {
            match arrow::compute::cast(array, &DataType::Float64) {
                Ok(cast) => cast
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number))
                    .collect(),
                Err(_) => as_text(array),
            }
        }
        "number" => match array.data_type() {
            DataType::Int64 => array
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect(),
            _ => array
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect(),
        },
        "bool" => array.as_boolean().iter().map(|v| v.map_or(Value::Null, Value::Bool)).collect(),
        _ => as_text(array),
    }
}

/// A label value with `\`, `"` and newlines escaped, as the text format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The text exposition of every pipeline's counters at `now_ms`.
fn render(pipelines: &[Entry], now_ms: i64) -> String {
    type Value = fn(&Entry, i64) -> Option<f64>;
    let families: [(&str, &str, &str, Value); 14] = [
        ("streamsql_pipeline_rows_in_total", "counter", "Rows read by the pipeline's sources.", |e, _| {
            Some(e.control.metrics().rows_in as f64)
        }),
        ("streamsql_pipeline_rows_out_total", "counter", "Rows handed to the pipeline's sink.", |e, _| {
            Some(e.control.metrics().rows_out as f64)
        }),
        ("streamsql_pipeline_late_rows_total", "counter", "Rows dropped as late.", |e, _| {
            Some(e.control.metrics().late_rows as f64)
        }),
        ("streamsql_pipeline_bad_records_total", "counter", "Input records skipped as malformed.", |e, _| {
            Some(e.control.metrics().bad_records as f64)
        }),
        (
            "streamsql_pipeline_rows_missing_fields_total",
            "counter",
            "JSON records read that lacked a declared field.",
            |e, _| Some(e.control.metrics().rows_missing_fields as f64),
        ),
        (
            "streamsql_pipeline_source_errors_total",
            "counter",
            "Source requests that failed after their retries.",
            |e, _| Some(e.control.metrics().source_errors as f64),
        ),
        (
            "streamsql_pipeline_sink_retries_total",
            "counter",
            "Writes the sink retried after a failure (a service outage).",
            |e, _| Some(e.control.metrics().sink_retries as f64),
        ),
        ("streamsql_pipeline_running", "gauge", "1 while the pipeline runs, 0 once it ended.", |e, _| {
            Some(if e.running { 1.0 } else { 0.0 })
        }),
        ("streamsql_pipeline_watermark_seconds", "gauge", "The pipeline's watermark (event time).", |e, _| {
            watermark(&e.control).map(|w| w as f64 / 1000.0)
        }),
        ("streamsql_pipeline_watermark_lag_seconds", "gauge", "Wall-clock time minus the watermark.", |e, now| {
            watermark(&e.control).map(|w| (now - w) as f64 / 1000.0)
        }),
        ("streamsql_pipeline_last_checkpoint_id", "gauge", "The last complete checkpoint's number.", |e, _| {
            e.control.last_checkpoint().map(|k| k.epoch as f64)
        }),
        (
            "streamsql_pipeline_last_checkpoint_duration_seconds",
            "gauge",
            "How long the last complete checkpoint took.",
            |e, _| e.control.last_checkpoint().map(|k| k.duration.as_secs_f64()),
        ),
        (
            "streamsql_pipeline_last_checkpoint_size_bytes",
            "gauge",
            "The size of the last complete checkpoint.",
            |e, _| e.control.last_checkpoint().map(|k| k.bytes as f64),
        ),
        ("streamsql_pipelines", "gauge", "Pipelines started.", |_, _| None),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        if name == "streamsql_pipelines" {
            let _ = writeln!(out, "{name} {}", pipelines.len());
            continue;
        }
        for (i, entry) in pipelines.iter().enumerate() {
            if let Some(v) = value(entry, now_ms) {
                let _ = writeln!(out, "{name}{{pipeline=\"{}\",statement=\"{}\"}} {v}", i + 1, label(&entry.name));
            }
        }
    }
    type OperatorValue = fn(&streamsql_engine::metrics::OperatorSnapshot) -> f64;
    let operator_families: [(&str, &str, OperatorValue); 4] = [
        ("streamsql_operator_rows_in_total", "Rows an operator read or received.", |o| o.rows_in as f64),
        ("streamsql_operator_rows_out_total", "Rows an operator sent on.", |o| o.rows_out as f64),
        ("streamsql_operator_late_rows_total", "Rows an operator dropped as late.", |o| o.late_rows as f64),
        (
            "streamsql_operator_backpressured_seconds_total",
            "Time an operator's instances waited for room downstream (its output edge was full).",
            |o| o.backpressured_ns as f64 / 1e9,
        ),
    ];
    let operators: Vec<_> = pipelines.iter().map(|e| e.control.operators()).collect();
    for (name, help, value) in operator_families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (i, ops) in operators.iter().enumerate() {
            for op in ops {
                let operator = format!("[{}] {}", op.label, op.name);
                let _ =
                    writeln!(out, "{name}{{pipeline=\"{}\",operator=\"{}\"}} {}", i + 1, label(&operator), value(op));
            }
        }
    }
    let stages = || {
        operators.iter().enumerate().flat_map(|(i, ops)| {
            ops.iter()
                .filter(|o| !o.name.starts_with("source "))
                .map(move |o| (i + 1, format!("[{}] {}", o.label, o.name), o))
        })
    };
    let name = "streamsql_operator_state_bytes";
    let _ = writeln!(
        out,
        "# HELP {name} Estimated memory of a stage's state (groups, accumulators, rows kept), sampled each second.\n# TYPE {name} gauge"
    );
    for (pipeline, operator, op) in stages() {
        let _ = writeln!(out, "{name}{{pipeline=\"{pipeline}\",operator=\"{}\"}} {}", label(&operator), op.state_bytes);
    }
    let name = "streamsql_operator_batch_seconds";
    let _ = writeln!(out, "# HELP {name} Time a stage took to process one input batch.\n# TYPE {name} histogram");
    for (pipeline, operator, op) in stages() {
        let labels = format!("pipeline=\"{pipeline}\",operator=\"{}\"", label(&operator));
        let mut cumulative = 0;
        for (bound, count) in BATCH_SECONDS_BUCKETS.iter().zip(&op.batch_seconds.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", op.batch_seconds.count());
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", op.batch_seconds.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", op.batch_seconds.count());
    }
    let name = "streamsql_connector_errors_total";
    let _ = writeln!(
        out,
        "# HELP {name} Errors per source and sink table: bad records skipped (bad_record), JSON rows missing a \
         field (missing_field), requests failed after retries (failed_request), writes retried (retry).\n# TYPE {name} counter"
    );
    for (i, entry) in pipelines.iter().enumerate() {
        for c in entry.control.connectors() {
            let kinds: &[(&str, u64)] = match c.role {
                "sink" => &[("retry", c.sink_retries)],
                _ => &[
                    ("bad_record", c.bad_records),
                    ("missing_field", c.rows_missing_fields),
                    ("failed_request", c.source_errors),
                ],
            };
            for (kind, value) in kinds {
                let _ = writeln!(
                    out,
                    "{name}{{pipeline=\"{}\",role=\"{}\",table=\"{}\",connector=\"{}\",kind=\"{kind}\"}} {value}",
                    i + 1,
                    c.role,
                    label(&c.table),
                    label(&c.connector)
                );
            }
        }
    }
    out
}

/// Wall-clock time in milliseconds since the epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The watermark, when there is one and the input has not ended.
pub fn watermark(control: &PipelineControl) -> Option<i64> {
    match control.metrics().watermark {
        WATERMARK_MIN | WATERMARK_MAX => None,
        w => Some(w),
    }
}
