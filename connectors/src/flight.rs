//! `'connector' = 'flight'`: pushes result batches to a remote Arrow Flight endpoint with DoPut.
//!
//! Each written batch is one DoPut call carrying a `FlightDescriptor` path (`'path'` split on
//! `/`), so a failed call can be retried whole: UNAVAILABLE, timeouts and connection errors are
//! retried with exponential backoff for up to `'retry.max-duration'`, while the pipeline waits
//! (backpressure); other errors, or running out of time, fail the pipeline with the server's
//! message. A batch is never split across calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor, PutResult};
use futures::TryStreamExt;
use streamsql_engine::connector::{Connector, OptionSpec, Role, Sink, TableDef};
use streamsql_engine::{Result, StreamError};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "endpoint",
        required: true,
        roles: &[Role::Sink],
        help: "the Flight server, e.g. 'grpc://127.0.0.1:50052' (grpc+tls:// or https:// are not supported yet)",
    },
    OptionSpec {
        key: "path",
        required: true,
        roles: &[Role::Sink],
        help: "the FlightDescriptor path batches are put to, '/'-separated (e.g. 'netflow/flow_counts')",
    },
    OptionSpec { key: "timeout", required: false, roles: &[Role::Sink], help: "per DoPut call (default '30 s')" },
    OptionSpec {
        key: "retry.max-duration",
        required: false,
        roles: &[Role::Sink],
        help: "how long a failed DoPut is retried before the pipeline fails (default '60 s')",
    },
];

pub struct FlightConnector;

struct FlightOptions {
    uri: String,
    path: Vec<String>,
    timeout: Duration,
    retry_for: Duration,
}

impl FlightOptions {
    fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let endpoint = opts.required("endpoint")?.trim();
        let uri = match endpoint.split_once("://") {
            Some(("grpc" | "grpc+tcp" | "http", rest)) => format!("http://{rest}"),
            Some((scheme, _)) => {
                return Err(StreamError::Config(format!(
                    "table '{}': 'endpoint' scheme '{scheme}://' is not supported; use grpc://host:port",
                    table.name
                )));
            }
            None => format!("http://{endpoint}"),
        };
        Endpoint::from_shared(uri.clone()).map_err(|e| {
            StreamError::Config(format!("table '{}': 'endpoint' '{endpoint}' is not a valid address: {e}", table.name))
        })?;
        let path: Vec<String> =
            opts.required("path")?.split('/').filter(|p| !p.is_empty()).map(str::to_string).collect();
        if path.is_empty() {
            return Err(StreamError::Config(format!("table '{}': 'path' must not be empty", table.name)));
        }
        Ok(Self {
            uri,
            path,
            timeout: table.opts().duration("timeout", Duration::from_secs(30))?,
            retry_for: table.opts().duration("retry.max-duration", Duration::from_secs(60))?,
        })
    }
}

impl Connector for FlightConnector {
    fn name(&self) -> &'static str {
        "flight"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn supports(&self, role: Role) -> bool {
        role == Role::Sink
    }
    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        FlightOptions::parse(table).map(|_| ())
    }
    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        let options = FlightOptions::parse(table)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StreamError::io("starting the Flight client", e))?;
        let channel = {
            let _entered = runtime.enter();
            Endpoint::from_shared(options.uri.clone())
                .map_err(|e| StreamError::Config(format!("table '{}': {e}", table.name)))?
                .connect_timeout(options.timeout)
                .timeout(options.timeout)
                .connect_lazy()
        };
        Ok(Box::new(FlightSink { table: table.name.clone(), options, runtime, channel, retries: Arc::default() }))
    }
}

struct FlightSink {
    table: String,
    options: FlightOptions,
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    /// DoPuts retried after a failure.
    retries: Arc<std::sync::atomic::AtomicU64>,
}

/// Whether a failed DoPut may succeed when tried again.
fn retryable(error: &FlightError) -> bool {
    match error {
        FlightError::Tonic(status) => {
            matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Aborted)
        }
        _ => false,
    }
}

impl FlightSink {
    async fn put(&self, batch: &RecordBatch) -> std::result::Result<Vec<PutResult>, FlightError> {
        let mut client = FlightClient::new(self.channel.clone());
        let data = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(Some(FlightDescriptor::new_path(self.options.path.clone())))
            .build(futures::stream::iter([Ok(batch.clone())]));
        client.do_put(data).await?.try_collect().await
    }
}

impl Sink for FlightSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.runtime.block_on(self.put(batch)) {
                Ok(_) => return Ok(()),
                Err(e) if retryable(&e) && started.elapsed() + backoff < self.options.retry_for => {
                    tracing::warn!(table = %self.table, error = %e, "DoPut failed; retrying in {backoff:?}");
                    self.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(StreamError::Remote(format!(
                        "table '{}': DoPut to {} failed: {e}",
                        self.table, self.options.uri
                    )));
                }
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    fn retries(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        Some(self.retries.clone())
    }
}
