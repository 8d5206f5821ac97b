//! `'connector' = 'http-ingest'`: rows POSTed by applications.
//!
//! ```text
//!  POST /events ─▶ body: one JSON object, an array of objects, or NDJSON (one object per line)
//!     ├─ not JSON, not objects, a value that does not fit its column ─▶ 400 + the reason
//!     │      (the whole request is refused: nothing of it is taken, the client can fix it)
//!     ├─ larger than 'max-body-bytes' ─▶ 413
//!     ├─ the queue holds 'queue.max-rows' rows already ─▶ 503 + Retry-After: the pipeline is
//!     │      behind; the client retries, nothing is lost silently
//!     └─ otherwise ─▶ queued ─▶ 202 {"accepted": n}
//!  other paths ─▶ 404; other methods ─▶ 405
//! ```
//!
//! The source takes the queued rows in the order they were accepted, one request's rows per
//! batch. `ts TIMESTAMP(3) METADATA FROM 'ingest-time'` is when the request was accepted.
//! Accepted rows live in memory until the pipeline reads them: they are not checkpointed, so a
//! pipeline with checkpoints refuses this source, and a crash loses what was queued.
//!
//! A table has one listener, so one pipeline reads it: to feed several queries, write the rows
//! to a Kafka topic and read that (as `pipelines/http-monitor.sql` does). A second pipeline
//! opening the same address is refused with a message that says so.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value};
use streamsql_engine::connector::{
    Connector, MetadataSpec, OptionSpec, Pulled, Role, Source, SourceContext, TableDef, metadata_key,
};
use streamsql_engine::metrics::PipelineMetrics;
use streamsql_engine::time::timestamp_type;
use streamsql_engine::{Result, StreamError};

use super::json_path::kind;
use crate::format::decode::{FieldValue, JsonColumns, RecordDecoder};
use crate::generate::SRC;

pub struct HttpIngestConnector;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "listen",
        required: false,
        roles: SRC,
        help: "address to listen on (default '127.0.0.1:8088'; '0.0.0.0:8088' for every interface)",
    },
    OptionSpec { key: "path", required: false, roles: SRC, help: "the path POSTed to (default '/events')" },
    OptionSpec { key: "format", required: false, roles: SRC, help: "'json' (objects, arrays of objects or NDJSON)" },
    OptionSpec {
        key: "queue.max-rows",
        required: false,
        roles: SRC,
        help: "rows accepted but not yet read beyond which requests get 503 (default 100000)",
    },
    OptionSpec {
        key: "max-body-bytes",
        required: false,
        roles: SRC,
        help: "largest request body; larger ones get 413 (default 16777216)",
    },
    OptionSpec {
        key: "number-of-rows",
        required: false,
        roles: SRC,
        help: "end the input once this many rows were accepted (the request reaching it is taken whole); default: never",
    },
];

const METADATA: &[MetadataSpec] = &[MetadataSpec {
    key: "ingest-time",
    data_type: arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
    writable: false,
    help: "when the request was accepted",
}];

/// Parsed options.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub listen: SocketAddr,
    pub path: String,
    pub max_rows: usize,
    pub max_body_bytes: usize,
    pub number_of_rows: Option<u64>,
}

impl IngestOptions {
    pub fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let config = |message: String| StreamError::Config(format!("table '{}': {message}", table.name));
        let listen_text = opts.get("listen").unwrap_or("127.0.0.1:8088");
        let listen = listen_text.trim().parse().map_err(|_| {
            config(format!("option 'listen' must be an address like '127.0.0.1:8088', got '{listen_text}'"))
        })?;
        let path = opts.get("path").unwrap_or("/events").trim().to_string();
        if !path.starts_with('/') || path.contains(['{', '}', '*', ' ']) {
            return Err(config(format!("option 'path' must be a plain path starting with '/', got '{path}'")));
        }
        opts.choice("format", &["json"], "json")?;
        let max_rows = opts.parse("queue.max-rows", 100_000usize, "a positive integer")?;
        let max_body_bytes = opts.parse("max-body-bytes", 16usize << 20, "a positive integer")?;
        if max_rows == 0 || max_body_bytes == 0 {
            return Err(config("options 'queue.max-rows' and 'max-body-bytes' must be positive".into()));
        }
        let number_of_rows = match opts.get("number-of-rows") {
            None => None,
            Some(_) => Some(opts.parse("number-of-rows", 0u64, "a non-negative integer")?),
        };
        for field in table.schema.fields() {
            if let Some(key) = metadata_key(field)
                && (key != "ingest-time" || field.data_type() != &timestamp_type())
            {
                return Err(config(format!(
                    "column '{}': the http-ingest connector's only metadata is 'ingest-time' (TIMESTAMP(3))",
                    field.name()
                )));
            }
        }
        Ok(Self { listen, path, max_rows, max_body_bytes, number_of_rows })
    }
}

/// Rows accepted and not yet read.
#[derive(Debug, Default)]
struct Queue {
    batches: VecDeque<RecordBatch>,
    rows: usize,
    accepted: u64,
    /// No more rows will be accepted ('number-of-rows' reached, or the source is gone).
    closed: bool,
}

/// Why a request's rows were not queued.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Full,
    Closed,
}

impl Queue {
    fn offer(
        &mut self,
        batch: RecordBatch,
        max_rows: usize,
        limit: Option<u64>,
    ) -> std::result::Result<usize, Refusal> {
        if self.closed {
            return Err(Refusal::Closed);
        }
        let n = batch.num_rows();
        // A request larger than the whole queue is taken when the queue is empty, so it cannot
        // be refused for ever.
        if self.rows > 0 && self.rows + n > max_rows {
            return Err(Refusal::Full);
        }
        self.rows += n;
        self.accepted += n as u64;
        self.batches.push_back(batch);
        if limit.is_some_and(|l| self.accepted >= l) {
            self.closed = true;
        }
        Ok(n)
    }
}

/// What the HTTP handler and the source share.
struct Shared {
    table: String,
    schema: SchemaRef,
    /// Per column, whether it is the ingest-time metadata column.
    ingest_time: Vec<bool>,
    member_schema: Schema,
    options: IngestOptions,
    queue: Mutex<Queue>,
    arrived: Condvar,
    metrics: Arc<PipelineMetrics>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rows of a request body, or why it is refused.
    fn decode(&self, body: &[u8]) -> std::result::Result<RecordBatch, String> {
        let objects = objects(body)?;
        let mut decoder = RecordDecoder::new(self.schema.clone()).map_err(|e| e.to_string())?;
        let mut json = JsonColumns::new(&self.member_schema);
        let now = Value::from(chrono::Utc::now().timestamp_millis());
        let mut member_of = Vec::with_capacity(self.ingest_time.len());
        let mut next = 0;
        for &is_time in &self.ingest_time {
            member_of.push(if is_time { None } else { Some(next) });
            next += usize::from(!is_time);
        }
        let mut missing = 0;
        for (i, object) in objects.iter().enumerate() {
            let fields = json.fields(object, &self.table);
            missing += usize::from(fields.iter().any(Option::is_none));
            decoder
                .push(|c| match member_of[c] {
                    None => FieldValue::Json(&now),
                    Some(m) => fields[m].map_or(FieldValue::Missing, FieldValue::Json),
                })
                .map_err(|reason| if objects.len() == 1 { reason } else { format!("row {}: {reason}", i + 1) })?;
        }
        PipelineMetrics::add(&self.metrics.rows_missing_fields, missing);
        decoder.finish().map_err(|e| e.to_string())
    }
}

/// The JSON objects of a body: one object, an array of objects, or one object per line.
fn objects(body: &[u8]) -> std::result::Result<Vec<Map<String, Value>>, String> {
    let text =
        std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8 (at byte {})", e.valid_up_to() + 1))?;
    if text.trim().is_empty() {
        return Err("the body is empty; send a JSON object, an array of objects or one object per line".into());
    }
    let object = |value: Value, at: &dyn Fn() -> String| match value {
        Value::Object(object) => Ok(object),
        other => Err(format!("{}: expected a JSON object, got {}", at(), kind(&other))),
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => {
            items.into_iter().enumerate().map(|(i, item)| object(item, &|| format!("element {}", i + 1))).collect()
        }
        Ok(value) => Ok(vec![object(value, &|| "the body".to_string())?]),
        Err(whole) => {
            let lines: Vec<(usize, &str)> =
                text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, l)).collect();
            if lines.len() < 2 {
                return Err(format!("the body is not valid JSON: {whole}"));
            }
            lines
                .into_iter()
                .map(|(n, line)| {
                    let value = serde_json::from_str(line).map_err(|e| format!("line {n} is not valid JSON: {e}"))?;
                    object(value, &|| format!("line {n}"))
                })
                .collect()
        }
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn accept(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let batch = match shared.decode(&body) {
        Ok(batch) => batch,
        Err(reason) => {
            PipelineMetrics::add(&shared.metrics.bad_records, 1);
            tracing::debug!("table '{}': refused a request: {reason}", shared.table);
            return answer(StatusCode::BAD_REQUEST, serde_json::json!({ "error": reason }));
        }
    };
    let outcome = shared.lock().offer(batch, shared.options.max_rows, shared.options.number_of_rows);
    match outcome {
        Ok(n) => {
            shared.arrived.notify_one();
            answer(StatusCode::ACCEPTED, serde_json::json!({ "accepted": n }))
        }
        Err(refusal) => {
            let reason = match refusal {
                Refusal::Full => "the pipeline is behind (its queue is full); retry after a second",
                Refusal::Closed => "this source takes no more rows",
            };
            let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "error": reason }));
            if refusal == Refusal::Full {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            response
        }
    }
}

/// The running source: the server's thread stops when the source is dropped.
struct IngestSource {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The addresses this process's ingest sources listen on.
fn listening() -> std::sync::MutexGuard<'static, std::collections::HashSet<SocketAddr>> {
    static LISTENING: std::sync::OnceLock<Mutex<std::collections::HashSet<SocketAddr>>> = std::sync::OnceLock::new();
    LISTENING.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for IngestSource {
    fn drop(&mut self) {
        listening().remove(&self.shared.options.listen);
        self.shared.lock().closed = true;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Source for IngestSource {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            match self.pull()? {
                Pulled::Rows { batch, .. } => return Ok(Some(batch)),
                Pulled::Nothing => {}
                Pulled::End => return Ok(None),
            }
        }
    }

    fn pull(&mut self) -> Result<Pulled> {
        let mut queue = self.shared.lock();
        if queue.batches.is_empty() && !queue.closed {
            // Waits a little, so a cancelled pipeline is noticed while nothing is posted.
            queue = self
                .shared
                .arrived
                .wait_timeout(queue, Duration::from_millis(100))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        match queue.batches.pop_front() {
            Some(batch) => {
                queue.rows -= batch.num_rows();
                Ok(Pulled::Rows { partition: 0, batch })
            }
            None if queue.closed => Ok(Pulled::End),
            None => Ok(Pulled::Nothing),
        }
    }
}

impl Connector for HttpIngestConnector {
    fn name(&self) -> &'static str {
        "http-ingest"
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn metadata(&self) -> &'static [MetadataSpec] {
        METADATA
    }

    fn supports(&self, role: Role) -> bool {
        role == Role::Source
    }

    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        IngestOptions::parse(table).map(|_| ())
    }

    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        let options = IngestOptions::parse(table)?;
        if !listening().insert(options.listen) {
            return Err(StreamError::Config(format!(
                "table '{}': {} is already taken by another pipeline reading an http-ingest table; one pipeline \
                 reads each listener: write its rows to a Kafka topic and have the other queries read that",
                table.name, options.listen
            )));
        }
        let listener = std::net::TcpListener::bind(options.listen).map_err(|e| {
            listening().remove(&options.listen);
            StreamError::Config(format!("table '{}': cannot listen on {}: {e}", table.name, options.listen))
        })?;
        let io = |context: &str| {
            let context = format!("table '{}': {context}", table.name);
            move |source| StreamError::Io { context, source }
        };
        listener.set_nonblocking(true).map_err(io("setting up the listener"))?;
        let ingest_time: Vec<bool> = table.schema.fields().iter().map(|f| metadata_key(f).is_some()).collect();
        let member_schema = Schema::new(
            table.schema.fields().iter().filter(|f| metadata_key(f).is_none()).cloned().collect::<Vec<_>>(),
        );
        let shared = Arc::new(Shared {
            table: table.name.clone(),
            schema: table.schema.clone(),
            ingest_time,
            member_schema,
            queue: Mutex::new(Queue::default()),
            arrived: Condvar::new(),
            metrics: ctx.metrics.clone(),
            options: options.clone(),
        });
        let router = Router::new()
            .route(&options.path, post(accept))
            .layer(DefaultBodyLimit::max(options.max_body_bytes))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting the HTTP server"))?;
        let name = table.name.clone();
        std::thread::Builder::new()
            .name(format!("http-ingest {name}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let served = async {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        axum::serve(listener, router)
                            .with_graceful_shutdown(async {
                                let _ = stopped.await;
                            })
                            .await
                    };
                    if let Err(e) = served.await {
                        tracing::error!("table '{name}': the HTTP ingest server stopped: {e}");
                    }
                });
            })
            .map_err(io("starting the HTTP server thread"))?;
        tracing::info!("table '{}': taking POSTs on http://{}{}", table.name, options.listen, options.path);
        Ok(Box::new(IngestSource { shared, stop: Some(stop) }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};

    use super::*;

    fn batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1; rows]))]).unwrap()
    }

    #[test]
    fn a_full_queue_refuses_until_read_and_a_limit_closes_it() {
        let mut queue = Queue::default();
        assert_eq!(queue.offer(batch(8), 10, None), Ok(8));
        assert_eq!(queue.offer(batch(3), 10, None), Err(Refusal::Full));
        assert_eq!(queue.offer(batch(2), 10, None), Ok(2));
        let taken = queue.batches.pop_front().unwrap();
        queue.rows -= taken.num_rows();
        assert_eq!(queue.offer(batch(3), 10, None), Ok(3));
        // Larger than the queue: taken once the queue is empty.
        let mut empty = Queue::default();
        assert_eq!(empty.offer(batch(50), 10, None), Ok(50));
        let mut limited = Queue::default();
        assert_eq!(limited.offer(batch(4), 100, Some(5)), Ok(4));
        assert_eq!(limited.offer(batch(4), 100, Some(5)), Ok(4));
        assert_eq!(limited.offer(batch(1), 100, Some(5)), Err(Refusal::Closed));
    }

    #[test]
    fn bodies_are_objects_arrays_or_ndjson() {
        assert_eq!(objects(br#"{"a": 1}"#).unwrap().len(), 1);
        assert_eq!(objects(br#"[{"a": 1}, {"a": 2}]"#).unwrap().len(), 2);
        assert_eq!(objects(b"{\"a\": 1}\n\n{\"a\": 2}\n").unwrap().len(), 2);
        assert!(objects(b"[1, 2]").unwrap_err().contains("element 1: expected a JSON object, got a number"));
        assert!(objects(b"{\"a\": 1}\n{\"a\": ").unwrap_err().contains("line 2 is not valid JSON"));
        assert!(objects(b"{\"a\": ").unwrap_err().contains("not valid JSON"));
        assert!(objects(b"  ").unwrap_err().contains("empty"));
    }
}
