//! `--http ADDR`: the HTTP side of streamsql, and the [`Board`] of running pipelines it and the
//! status line ([`crate::status`]) read. Today it serves `/metrics`, the pipelines'
//! counters in Prometheus' text format:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `streamsql_pipeline_rows_in_total`, `..._rows_out_total`, `..._late_rows_total`, `..._bad_records_total`, `..._rows_missing_fields_total`, `..._source_errors_total` | counter | `pipeline`, `statement` |
//! | `streamsql_pipeline_running` | gauge (1 running, 0 ended) | `pipeline`, `statement` |
//! | `streamsql_pipeline_watermark_seconds`, `streamsql_pipeline_watermark_lag_seconds` | gauge (event time; wall clock minus it) | `pipeline`, `statement` |
//! | `streamsql_pipeline_last_checkpoint_id`, `..._last_checkpoint_duration_seconds`, `..._last_checkpoint_size_bytes` | gauge | `pipeline`, `statement` |
//! | `streamsql_operator_rows_in_total`, `..._rows_out_total`, `..._late_rows_total` | counter | `pipeline`, `operator` (`[3] window aggregate`) |
//!
//! The counters are the ones the end-of-run report prints. With `--flight-token` set, requests
//! need `Authorization: Bearer <token>`. The server keeps serving after bounded pipelines end,
//! until Ctrl-C or SIGTERM, so the last values can be scraped.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use streamsql_engine::runtime::PipelineControl;
use streamsql_engine::time::{WATERMARK_MAX, WATERMARK_MIN};

/// One pipeline the console reports on.
#[derive(Clone)]
pub struct Entry {
    /// Its statement, as the end-of-run report names it.
    pub name: String,
    pub control: PipelineControl,
    pub running: bool,
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
    pub fn add(&self, name: String, control: PipelineControl) {
        self.lock().push(Entry { name, control, running: true });
    }

    /// Marks pipeline `index` (in the order added) as ended.
    pub fn ended(&self, index: usize) {
        if let Some(entry) = self.lock().get_mut(index) {
            entry.running = false;
        }
    }

    /// The pipelines as they are now.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.lock().clone()
    }
}

struct Console {
    board: Arc<Board>,
    token: Option<String>,
}

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

/// Binds `address` and serves the console for `board` on the current runtime.
pub async fn start(address: SocketAddr, token: Option<String>, board: Arc<Board>) -> std::io::Result<ConsoleHandle> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(metrics)).with_state(Arc::new(Console { board, token }));
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

async fn metrics(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if let Some(token) = &console.token {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return (StatusCode::UNAUTHORIZED, "a bearer token is required (--flight-token)\n").into_response();
        }
    }
    let now_ms = now_millis();
    let body = render(&console.board.snapshot(), now_ms);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// A label value with `\`, `"` and newlines escaped, as the text format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The text exposition of every pipeline's counters at `now_ms`.
fn render(pipelines: &[Entry], now_ms: i64) -> String {
    type Value = fn(&Entry, i64) -> Option<f64>;
    let families: [(&str, &str, &str, Value); 13] = [
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
    type OperatorValue = fn(&streamsql_engine::metrics::OperatorSnapshot) -> u64;
    let operator_families: [(&str, &str, OperatorValue); 3] = [
        ("streamsql_operator_rows_in_total", "Rows an operator read or received.", |o| o.rows_in),
        ("streamsql_operator_rows_out_total", "Rows an operator sent on.", |o| o.rows_out),
        ("streamsql_operator_late_rows_total", "Rows an operator dropped as late.", |o| o.late_rows),
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
