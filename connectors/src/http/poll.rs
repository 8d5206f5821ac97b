//! The polling source: one GET (or recorded poll) every interval, its rows decoded into batches.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use streamsql_engine::checkpoint::{position_of, position_state};
use streamsql_engine::connector::{Pulled, Source, SourceContext, TableDef, metadata_key};
use streamsql_engine::metrics::PipelineMetrics;
use streamsql_engine::operator::StateSnapshot;
use streamsql_engine::{Result, StreamError};

use super::{Endpoint, HttpOptions};
use crate::format::OnError;
use crate::format::decode::{FieldValue, JsonColumns, RecordDecoder};
use crate::format::parse::timestamp_millis;

/// The largest response read; a longer one is a failed poll, not a process out of memory.
const MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy)]
enum Column {
    /// The n-th member column (of those read from the objects).
    Member(usize),
    PollTime,
}

enum Responses {
    Live {
        url: String,
        client: reqwest::blocking::Client,
    },
    /// The recorded polls, and the file they came from.
    Replay {
        lines: Vec<String>,
        path: String,
    },
}

pub(super) struct PollSource {
    table: String,
    options: HttpOptions,
    responses: Responses,
    /// Polls made (or recorded polls taken).
    polls: u64,
    next_poll: Option<Instant>,
    columns: Vec<Column>,
    json: JsonColumns,
    decoder: RecordDecoder,
    metrics: Arc<PipelineMetrics>,
}

impl PollSource {
    pub(super) fn new(table: &TableDef, options: HttpOptions, ctx: &SourceContext) -> Result<Self> {
        let mut member_fields = Vec::new();
        let columns = table
            .schema
            .fields()
            .iter()
            .map(|f| match metadata_key(f) {
                Some(_) => Column::PollTime,
                None => {
                    member_fields.push(f.as_ref().clone());
                    Column::Member(member_fields.len() - 1)
                }
            })
            .collect();
        let responses = match &options.endpoint {
            Endpoint::Url(url) => {
                let mut headers = reqwest::header::HeaderMap::new();
                for (name, value) in &options.headers {
                    let (Ok(name), Ok(value)) = (
                        reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                        reqwest::header::HeaderValue::from_str(value),
                    ) else {
                        return Err(StreamError::Config(format!(
                            "table '{}': header '{name}' is not valid",
                            table.name
                        )));
                    };
                    headers.insert(name, value);
                }
                let client = reqwest::blocking::Client::builder()
                    .timeout(options.timeout)
                    .connect_timeout(options.timeout)
                    .default_headers(headers)
                    .user_agent(concat!("streamsql/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| {
                        StreamError::Config(format!("table '{}': cannot make an HTTP client: {e}", table.name))
                    })?;
                Responses::Live { url: url.clone(), client }
            }
            Endpoint::Replay(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StreamError::Config(format!(
                        "table '{}': cannot read 'replay.path' {}: {e}",
                        table.name,
                        path.display()
                    ))
                })?;
                Responses::Replay {
                    lines: text.lines().map(str::to_string).collect(),
                    path: path.display().to_string(),
                }
            }
        };
        Ok(Self {
            table: table.name.clone(),
            json: JsonColumns::new(&Schema::new(member_fields)).with_metrics(ctx.metrics.clone()),
            decoder: RecordDecoder::new(table.schema.clone())?,
            options,
            responses,
            polls: 0,
            next_poll: None,
            columns,
            metrics: ctx.metrics.clone(),
        })
    }

    fn finished(&self) -> bool {
        let replay_done = match &self.responses {
            Responses::Replay { lines, .. } => self.polls >= lines.len() as u64,
            Responses::Live { .. } => false,
        };
        replay_done || self.options.number_of_polls.is_some_and(|n| self.polls >= n)
    }

    /// The next poll's place (for messages), body and poll time; `None` when the poll failed
    /// after its retries (counted and logged).
    fn poll(&mut self) -> Result<Option<(String, Vec<u8>, i64)>> {
        self.polls += 1;
        let n = self.polls;
        match &self.responses {
            Responses::Live { url, client } => {
                let poll_time = chrono::Utc::now().timestamp_millis();
                match fetch(client, url, &self.options) {
                    Ok(body) => Ok(Some((format!("GET {url} (poll {n})"), body, poll_time))),
                    Err(reason) => {
                        PipelineMetrics::add(&self.metrics.source_errors, 1);
                        tracing::warn!(
                            "table '{}': poll {n} of {url} failed: {reason}; polling again in {:?}",
                            self.table,
                            self.options.poll_interval
                        );
                        Ok(None)
                    }
                }
            }
            Responses::Replay { lines, path } => {
                let place = format!("{path}:{n}");
                let line = lines[(n - 1) as usize].clone();
                let recorded = serde_json::from_str::<Value>(&line).map_err(|e| e.to_string()).and_then(|v| {
                    let time = match v.get("poll_time") {
                        Some(Value::Number(ms)) => ms.as_i64(),
                        Some(Value::String(text)) => timestamp_millis(text),
                        _ => None,
                    };
                    let time = time.ok_or("a recorded poll needs \"poll_time\" (a timestamp or epoch milliseconds)")?;
                    let body = v.get("body").ok_or("a recorded poll needs \"body\"")?;
                    Ok((body.to_string().into_bytes(), time))
                });
                match recorded {
                    Ok((body, time)) => Ok(Some((place, body, time))),
                    Err(reason) => {
                        self.bad(&place, &reason)?;
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Applies `'format.on-error'` to something that cannot be read.
    fn bad(&self, place: &str, reason: &str) -> Result<()> {
        match self.options.on_error {
            OnError::Fail => Err(StreamError::Data(format!(
                "table '{}': {place}: {reason} (set 'format.on-error' = 'skip' to skip such responses and rows)",
                self.table
            ))),
            OnError::Skip => {
                tracing::warn!("table '{}': skipped {place}: {reason}", self.table);
                PipelineMetrics::add(&self.metrics.bad_records, 1);
                Ok(())
            }
        }
    }

    /// Decodes one response's rows into the decoder.
    fn decode(&mut self, place: &str, body: &[u8], poll_time: i64) -> Result<()> {
        let document: Value = match serde_json::from_slice(body) {
            Ok(document) => document,
            Err(e) => return self.bad(place, &format!("the response is not valid JSON: {e}")),
        };
        let rows = match self.options.path.select(&document) {
            Ok(rows) => rows,
            Err(reason) => return self.bad(place, &reason),
        };
        let poll_time = Value::from(poll_time);
        for (i, row) in rows.into_iter().enumerate() {
            let outcome = match row {
                Value::Object(object) => {
                    let fields = self.json.fields(object, &self.table);
                    let columns = &self.columns;
                    let outcome = self.decoder.push(|c| match columns[c] {
                        Column::PollTime => FieldValue::Json(&poll_time),
                        Column::Member(m) => fields[m].map_or(FieldValue::Missing, FieldValue::Json),
                    });
                    if outcome.is_ok() {
                        self.json.count_missing(&fields);
                    }
                    outcome
                }
                other => Err(format!("a row must be a JSON object, got {other}")),
            };
            if let Err(reason) = outcome {
                self.bad(&format!("{place}, row {}", i + 1), &reason)?;
            }
        }
        Ok(())
    }
}

/// GETs `url`, retrying connection errors, timeouts, 5xx and 429 with a doubling backoff.
fn fetch(client: &reqwest::blocking::Client, url: &str, options: &HttpOptions) -> std::result::Result<Vec<u8>, String> {
    let mut wait = options.backoff;
    for attempt in 1..=options.attempts {
        let reason = match client.get(url).send() {
            Ok(response) if response.status().is_success() => {
                let mut body = Vec::new();
                match response.take(MAX_RESPONSE_BYTES + 1).read_to_end(&mut body) {
                    Ok(_) if body.len() as u64 > MAX_RESPONSE_BYTES => {
                        return Err(format!("the response is longer than {} MiB", MAX_RESPONSE_BYTES >> 20));
                    }
                    Ok(_) => return Ok(body),
                    Err(e) => format!("reading the response failed: {e}"),
                }
            }
            Ok(response) => {
                let status = response.status();
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return Err(format!("HTTP {status} (not retried)"));
                }
                format!("HTTP {status}")
            }
            Err(e) if e.is_timeout() => format!("no response within {:?}", options.timeout),
            Err(e) => format!("{e}"),
        };
        if attempt == options.attempts {
            return Err(format!("{reason} (attempt {attempt} of {})", options.attempts));
        }
        tracing::debug!("GET {url}: {reason}; retrying in {wait:?}");
        std::thread::sleep(wait);
        wait = wait.saturating_mul(2);
    }
    Err("no attempt was made".into())
}

impl Source for PollSource {
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
        if self.finished() {
            return Ok(Pulled::End);
        }
        let now = Instant::now();
        let due = *self.next_poll.get_or_insert(now);
        if now < due {
            // Short sleeps, so a cancelled pipeline is noticed between polls.
            std::thread::sleep((due - now).min(Duration::from_millis(100)));
            return Ok(Pulled::Nothing);
        }
        // Fixed rate; polls missed while one took long are not made up.
        let next = due + self.options.poll_interval;
        self.next_poll = Some(if next < now { now + self.options.poll_interval } else { next });
        if let Some((place, body, poll_time)) = self.poll()? {
            self.decode(&place, &body, poll_time)?;
        }
        if self.decoder.rows() == 0 {
            return Ok(Pulled::Nothing);
        }
        // One batch per poll, whatever its size: a checkpoint then never falls inside a poll.
        Ok(Pulled::Rows { partition: 0, batch: self.decoder.finish()? })
    }

    /// A replay's position: the recorded polls taken (each poll's rows are one batch).
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        Ok(position_state(self.polls))
    }

    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        self.polls = position_of(&state)?;
        Ok(())
    }
}
