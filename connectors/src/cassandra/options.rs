//! Options of a Cassandra table, parsed, and connecting with them.

use std::time::Duration;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{ConnectionError, ConnectionPoolError, MetadataError, NewSessionError};
use scylla::statement::Consistency;
use streamsql_engine::connector::{OptionSpec, Role, TableDef};
use streamsql_engine::time::parse_duration_ms;
use streamsql_engine::{Result, StreamError};

const SINK: &[Role] = &[Role::Sink];

pub(super) const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "hosts",
        required: true,
        roles: SINK,
        help: "comma-separated host:port contact points, e.g. '127.0.0.1:9042'",
    },
    OptionSpec { key: "keyspace", required: true, roles: SINK, help: "the keyspace of the table" },
    OptionSpec { key: "table", required: true, roles: SINK, help: "the Cassandra table to write" },
    OptionSpec {
        key: "consistency",
        required: false,
        roles: SINK,
        help: "write consistency level (default 'LOCAL_QUORUM')",
    },
    OptionSpec { key: "username", required: false, roles: SINK, help: "user for password authentication" },
    OptionSpec { key: "password", required: false, roles: SINK, help: "password for password authentication" },
    OptionSpec {
        key: "sink.ttl",
        required: false,
        roles: SINK,
        help: "time to live of written rows: '7 d', '12 h', '3600 s' (default: none)",
    },
    OptionSpec {
        key: "ttl",
        required: false,
        roles: SINK,
        help: "time to live of written rows, in seconds (the older spelling of 'sink.ttl')",
    },
    OptionSpec {
        key: "clustering-order",
        required: false,
        roles: SINK,
        help: "with 'create-table': the clustering columns' order, e.g. 'ts DESC' (default ascending)",
    },
    OptionSpec {
        key: "max-concurrent-requests",
        required: false,
        roles: SINK,
        help: "writes in flight at once (default 64)",
    },
    OptionSpec {
        key: "create-table",
        required: false,
        roles: SINK,
        help: "'true' creates the keyspace and table from the DDL (default 'false')",
    },
    OptionSpec {
        key: "replication",
        required: false,
        roles: SINK,
        help: "replication of a created keyspace (default {'class': 'SimpleStrategy', 'replication_factor': 1})",
    },
    OptionSpec {
        key: "connect-timeout",
        required: false,
        roles: SINK,
        help: "seconds to wait for a connection (default 10)",
    },
    OptionSpec {
        key: "request-timeout",
        required: false,
        roles: SINK,
        help: "seconds one write attempt may take (default 10)",
    },
    OptionSpec {
        key: "retry.max-duration",
        required: false,
        roles: SINK,
        help: "seconds a failing write is retried before the pipeline fails (default 300)",
    },
];

/// Cassandra's longest TTL (20 years).
const MAX_TTL_SECONDS: u32 = 630_720_000;

/// `'clustering-order'` = `'ts DESC, id ASC'`: clustering columns of the PRIMARY KEY, in key order.
fn clustering_order(table: &TableDef, text: &str) -> Result<Vec<(String, bool)>> {
    let config =
        |message: String| StreamError::Config(format!("table '{}': option 'clustering-order': {message}", table.name));
    let clustering: Vec<&String> = table.primary_key.iter().skip(1).collect();
    if clustering.is_empty() {
        return Err(config("the PRIMARY KEY has no clustering columns (those after the first)".into()));
    }
    let mut order = Vec::new();
    for part in text.split(',') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let (column, descending) = match words.as_slice() {
            [column] => (*column, false),
            [column, direction] if direction.eq_ignore_ascii_case("asc") => (*column, false),
            [column, direction] if direction.eq_ignore_ascii_case("desc") => (*column, true),
            _ => return Err(config(format!("expected 'column [ASC|DESC], ...', got '{}'", part.trim()))),
        };
        let column = column.to_ascii_lowercase();
        if clustering.get(order.len()).is_none_or(|c| **c != column) {
            return Err(config(format!(
                "name the clustering columns in key order ({}), got '{column}'",
                clustering.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        order.push((column, descending));
    }
    Ok(order)
}

const CONSISTENCIES: &[&str] =
    &["ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"];

/// Parsed options of one Cassandra table.
#[derive(Debug, Clone)]
pub struct CassandraOptions {
    pub hosts: Vec<String>,
    pub keyspace: String,
    pub table: String,
    pub consistency: Consistency,
    pub credentials: Option<(String, String)>,
    pub ttl_seconds: Option<u32>,
    /// `(column, descending)` of `'clustering-order'`, for a created table.
    pub clustering_order: Vec<(String, bool)>,
    pub max_concurrent_requests: usize,
    pub create_table: bool,
    pub replication: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry_max_duration: Duration,
}

fn seconds(table: &TableDef, key: &str, default: u64) -> Result<Duration> {
    let value: u64 = table.opts().parse(key, default, "a whole number of seconds")?;
    if value == 0 {
        return Err(StreamError::Config(format!("table '{}': option '{key}' must be at least 1 second", table.name)));
    }
    Ok(Duration::from_secs(value))
}

impl CassandraOptions {
    pub fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let hosts: Vec<String> = opts
            .required("hosts")?
            .split(',')
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .map(|h| if h.contains(':') { h.to_string() } else { format!("{h}:9042") })
            .collect();
        if hosts.is_empty() {
            return Err(StreamError::Config(format!("table '{}': option 'hosts' names no host", table.name)));
        }
        let consistency = match opts.choice("consistency", CONSISTENCIES, "LOCAL_QUORUM")? {
            "ANY" => Consistency::Any,
            "ONE" => Consistency::One,
            "TWO" => Consistency::Two,
            "THREE" => Consistency::Three,
            "QUORUM" => Consistency::Quorum,
            "ALL" => Consistency::All,
            "EACH_QUORUM" => Consistency::EachQuorum,
            "LOCAL_ONE" => Consistency::LocalOne,
            _ => Consistency::LocalQuorum,
        };
        let credentials = match (opts.get("username"), opts.get("password")) {
            (None, None) => None,
            (Some(user), Some(password)) => Some((user.to_string(), password.to_string())),
            _ => {
                return Err(StreamError::Config(format!(
                    "table '{}': give both 'username' and 'password', or neither",
                    table.name
                )));
            }
        };
        let ttl_seconds = match (opts.get("sink.ttl"), opts.get("ttl")) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(StreamError::Config(format!("table '{}': give 'sink.ttl' or 'ttl', not both", table.name)));
            }
            (Some(text), None) => {
                let ms = parse_duration_ms(text).filter(|ms| *ms >= 1000 && ms % 1000 == 0).ok_or_else(|| {
                    StreamError::Config(format!(
                        "table '{}': option 'sink.ttl' must be whole seconds of at least 1 s, like '7 d' or '3600 s', got '{text}'",
                        table.name
                    ))
                })?;
                Some(u32::try_from(ms / 1000).ok().filter(|s| *s <= MAX_TTL_SECONDS).ok_or_else(|| {
                    StreamError::Config(format!(
                        "table '{}': option 'sink.ttl' is longer than Cassandra's 20 years",
                        table.name
                    ))
                })?)
            }
            (None, Some(_)) => Some(opts.parse::<u32>("ttl", 0, "a whole number of seconds").and_then(|t| {
                if t == 0 || t > MAX_TTL_SECONDS {
                    Err(StreamError::Config(format!(
                        "table '{}': option 'ttl' must be between 1 second and 20 years",
                        table.name
                    )))
                } else {
                    Ok(t)
                }
            })?),
        };
        let clustering_order = match opts.get("clustering-order") {
            None => Vec::new(),
            Some(text) => clustering_order(table, text)?,
        };
        let max_concurrent_requests = opts.parse("max-concurrent-requests", 64usize, "a positive integer")?;
        if max_concurrent_requests == 0 {
            return Err(StreamError::Config(format!(
                "table '{}': option 'max-concurrent-requests' must be at least 1",
                table.name
            )));
        }
        let identifier = |key: &str| -> Result<String> {
            let value = opts.required(key)?;
            if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(StreamError::Config(format!(
                    "table '{}': option '{key}' must be a Cassandra name (letters, digits, '_'), got '{value}'",
                    table.name
                )));
            }
            Ok(value.to_string())
        };
        Ok(Self {
            hosts,
            keyspace: identifier("keyspace")?,
            table: identifier("table")?,
            consistency,
            credentials,
            ttl_seconds,
            clustering_order,
            max_concurrent_requests,
            create_table: opts.parse("create-table", false, "'true' or 'false'")?,
            replication: opts
                .get("replication")
                .unwrap_or("{'class': 'SimpleStrategy', 'replication_factor': 1}")
                .to_string(),
            connect_timeout: seconds(table, "connect-timeout", 10)?,
            request_timeout: seconds(table, "request-timeout", 10)?,
            retry_max_duration: seconds(table, "retry.max-duration", 300)?,
        })
    }

    /// `keyspace.table`, quoted for CQL.
    pub fn qualified_table(&self) -> String {
        format!("\"{}\".\"{}\"", self.keyspace, self.table)
    }

    /// Connects to the cluster, with an error that names the hosts.
    pub async fn connect(&self) -> Result<Session> {
        // Client-side timestamps that only rise: an upsert after a delete of the same key wins
        // whichever node coordinates it.
        let mut builder = SessionBuilder::new()
            .known_nodes(&self.hosts)
            .connection_timeout(self.connect_timeout)
            .timestamp_generator(std::sync::Arc::new(
                scylla::policies::timestamp_generator::MonotonicTimestampGenerator::new(),
            ));
        if let Some((user, password)) = &self.credentials {
            builder = builder.user(user, password);
        }
        match tokio::time::timeout(self.connect_timeout * 2, builder.build()).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(e)) => Err(StreamError::Remote(format!(
                "cannot connect to Cassandra at {}: {}",
                self.hosts.join(", "),
                connect_failure(&e, self.hosts.len(), self.connect_timeout)
            ))),
            Err(_) => Err(StreamError::Remote(format!(
                "cannot connect to Cassandra at {}: no answer within {} s",
                self.hosts.join(", "),
                (self.connect_timeout * 2).as_secs()
            ))),
        }
    }
}

/// What went wrong connecting, in words. The driver wraps the cause in pool and metadata errors
/// and has already logged (at WARN, silenced by the binary) each host it tried.
fn connect_failure(error: &NewSessionError, hosts: usize, timeout: Duration) -> String {
    let last = match error {
        NewSessionError::FailedToResolveAnyHostname(names) => {
            return format!("cannot resolve {} to an address", names.join(", "));
        }
        NewSessionError::MetadataError(MetadataError::ConnectionPoolError(ConnectionPoolError::Broken {
            last_connection_error,
        })) => last_connection_error,
        other => return other.to_string(),
    };
    let cause = match last {
        ConnectionError::ConnectTimeout => {
            format!(
                "no connection within {} s ('connect-timeout'); is the host up and the port open?",
                timeout.as_secs()
            )
        }
        ConnectionError::IoError(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "the connection was refused: nothing listens on that port (is Cassandra running, on this port?)".to_string()
        }
        ConnectionError::IoError(io) => io.to_string(),
        ConnectionError::ConnectionSetupRequestError(e) => format!("connected, but setting up the session failed: {e}"),
        other => other.to_string(),
    };
    if hosts > 1 { format!("no host accepted a connection; the last attempt failed: {cause}") } else { cause }
}
