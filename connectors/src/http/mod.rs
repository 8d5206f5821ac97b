//! `'connector' = 'http-ingest'` ([`ingest`]) takes rows POSTed by applications.
//!
//! `'connector' = 'http'`: rows polled from a JSON API (a GET every `'poll.interval'`), or
//! replayed from a file of recorded responses.
//!
//! ```text
//!  every poll.interval: GET url (headers, request.timeout)
//!     ├─ connection error, timeout, 5xx, 429 ─▶ retry after retry.backoff, doubling, up to
//!     │                                          retry.max-attempts; then the poll is counted
//!     │                                          as failed (source_errors), logged, and the
//!     │                                          next poll comes at its time
//!     ├─ other 4xx ─▶ not retried: counted and logged the same way
//!     └─ 2xx body ─▶ JSON ─▶ json.path ('$.data[*]') ─▶ one row per selected object
//!                    (a body that is not JSON, a path that finds nothing or an object whose
//!                     fields do not fit the columns is a bad record: 'format.on-error')
//! ```
//!
//! Columns are read from each object's members by their declared names, as the JSON format
//! does; `ts TIMESTAMP(3) METADATA FROM 'poll-time'` is the time of the poll (the event time
//! of APIs that give none). With `'replay.path'` instead of `'url'`, poll `n` answers with line
//! `n` of a file of recorded polls, `{"poll_time": "2024-05-01 12:00:00", "body": ...}` each,
//! and the source ends after the last one; a replay is deterministic, so it is checkpointed by
//! its position. A live API cannot be read again: a pipeline with checkpoints refuses it.
//!
//! Each pipeline that reads an `http` table polls on its own: to poll an API once for several
//! queries, write the polled rows to a Kafka topic and read that (as `pipelines/crypto.sql`
//! does).

pub mod ingest;
mod json_path;
mod poll;

use std::time::Duration;

use arrow::datatypes::DataType;
use streamsql_engine::connector::{
    Connector, Delivery, MetadataSpec, OptionSpec, Role, Source, SourceContext, TableDef, metadata_key,
};
use streamsql_engine::time::timestamp_type;
use streamsql_engine::{Result, StreamError};

pub use ingest::{HttpIngestConnector, IngestOptions};
pub use json_path::JsonPath;

use crate::format::OnError;
use crate::generate::SRC;

pub struct HttpConnector;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec { key: "url", required: false, roles: SRC, help: "the URL to GET (http:// or https://)" },
    OptionSpec {
        key: "replay.path",
        required: false,
        roles: SRC,
        help: "instead of 'url': a file of recorded polls, one {\"poll_time\": ..., \"body\": ...} per line",
    },
    OptionSpec { key: "poll.interval", required: false, roles: SRC, help: "time between polls (default '30 s')" },
    OptionSpec {
        key: "json.path",
        required: false,
        roles: SRC,
        help: "where the rows are in the response: '$' (default: the response is one row), '$[*]', '$.data[*]', ...",
    },
    OptionSpec { key: "format", required: false, roles: SRC, help: "'json' (the only format of responses)" },
    OptionSpec {
        key: "format.on-error",
        required: false,
        roles: SRC,
        help: "a response or row that cannot be read: 'fail' (default) stops the pipeline, 'skip' counts it",
    },
    OptionSpec {
        key: "request.timeout",
        required: false,
        roles: SRC,
        help: "longest wait for a response (default '10 s')",
    },
    OptionSpec {
        key: "retry.max-attempts",
        required: false,
        roles: SRC,
        help: "attempts per poll on connection errors, timeouts, 5xx and 429 (default 3)",
    },
    OptionSpec {
        key: "retry.backoff",
        required: false,
        roles: SRC,
        help: "wait before the first retry, doubled for each next one (default '1 s')",
    },
    OptionSpec {
        key: "number-of-polls",
        required: false,
        roles: SRC,
        help: "stop after this many polls (default: unbounded; a replay ends with its file)",
    },
    OptionSpec {
        key: "header.*",
        required: false,
        roles: SRC,
        help: "a request header: 'header.Accept' = 'application/json'",
    },
];

const METADATA: &[MetadataSpec] = &[MetadataSpec {
    key: "poll-time",
    data_type: DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
    writable: false,
    help: "when the poll was made (for a replay, when it was recorded)",
}];

/// Where responses come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Url(String),
    Replay(std::path::PathBuf),
}

/// Parsed options.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub endpoint: Endpoint,
    pub poll_interval: Duration,
    pub path: JsonPath,
    pub on_error: OnError,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
    pub number_of_polls: Option<u64>,
    pub headers: Vec<(String, String)>,
}

impl HttpOptions {
    pub fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let config = |message: String| StreamError::Config(format!("table '{}': {message}", table.name));
        let endpoint = match (opts.get("url"), opts.get("replay.path")) {
            (Some(url), None) => {
                let url = url.trim();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(config(format!("option 'url' must start with http:// or https://, got '{url}'")));
                }
                Endpoint::Url(url.to_string())
            }
            (None, Some(path)) => Endpoint::Replay(path.into()),
            (Some(_), Some(_)) => return Err(config("give either 'url' or 'replay.path', not both".into())),
            (None, None) => {
                return Err(config("option 'url' (or 'replay.path' to replay recorded polls) is required".into()));
            }
        };
        opts.choice("format", &["json"], "json")?;
        let path = JsonPath::parse(opts.get("json.path").unwrap_or("$"))
            .map_err(|e| config(format!("option 'json.path': {e}")))?;
        let attempts = opts.parse("retry.max-attempts", 3u32, "a positive integer")?;
        if attempts == 0 || attempts > 100 {
            return Err(config(format!("option 'retry.max-attempts' must be between 1 and 100, got {attempts}")));
        }
        let number_of_polls = match opts.get("number-of-polls") {
            None => None,
            Some(_) => Some(opts.parse("number-of-polls", 0u64, "a non-negative integer")?),
        };
        let mut headers = Vec::new();
        for (key, value) in &table.options {
            if let Some(name) = key.strip_prefix("header.") {
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(value).is_err()
                {
                    return Err(config(format!("option '{key}' is not a valid HTTP header")));
                }
                headers.push((name.to_string(), value.clone()));
            }
        }
        for field in table.schema.fields() {
            if let Some(key) = metadata_key(field)
                && (key != "poll-time" || field.data_type() != &timestamp_type())
            {
                return Err(config(format!(
                    "column '{}': the http connector's only metadata is 'poll-time' (TIMESTAMP(3))",
                    field.name()
                )));
            }
        }
        Ok(Self {
            endpoint,
            poll_interval: opts.duration("poll.interval", Duration::from_secs(30))?,
            path,
            on_error: OnError::from_choice(opts.choice("format.on-error", OnError::CHOICES, "fail")?),
            timeout: opts.duration("request.timeout", Duration::from_secs(10))?,
            attempts,
            backoff: opts.duration("retry.backoff", Duration::from_secs(1))?,
            number_of_polls,
            headers,
        })
    }
}

impl Connector for HttpConnector {
    fn name(&self) -> &'static str {
        "http"
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

    /// A replay reads again from its position; a live API cannot.
    fn delivery(&self, table: &TableDef, _role: Role) -> Delivery {
        match table.opts().get("replay.path") {
            Some(_) => Delivery::ExactlyOnce,
            None => Delivery::Unsupported,
        }
    }

    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        HttpOptions::parse(table).map(|_| ())
    }

    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        let options = HttpOptions::parse(table)?;
        Ok(Box::new(poll::PollSource::new(table, options, ctx)?))
    }
}
