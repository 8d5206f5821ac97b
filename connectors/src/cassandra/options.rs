//! Options of a Cassandra table, parsed, and connecting with them.

use std::time::Duration;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{ConnectionError, ConnectionPoolError, MetadataError, NewSessionError};
use scylla::statement::Consistency;
use streamsql_engine::connector::{OptionSpec, Role, TableDef};
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
        key: "ttl",
        required: false,
        roles: SINK,
        help: "time to live of written rows, in seconds (default: none)",
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
        let ttl_seconds = match opts.get("ttl") {
            None => None,
            Some(_) => Some(opts.parse::<u32>("ttl", 0, "a whole number of seconds").and_then(|t| {
                if t == 0 {
                    Err(StreamError::Config(format!("table '{}': option 'ttl' must be at least 1 second", table.name)))
                } else {
                    Ok(t)
                }
            })?),
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
        let mut builder = SessionBuilder::new().known_nodes(&self.hosts).connection_timeout(self.connect_timeout);
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
