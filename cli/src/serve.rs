//! `--flight ADDR`: the Flight SQL server over this process's live tables.

use std::net::SocketAddr;
use std::sync::Arc;

use streamsql_engine::live::LiveCatalog;
use streamsql_flight::{FlightSqlServer, QueryEngine, QueryLimits, ServerHandle, SessionFunctions};

/// Queries over live tables (Flight SQL, the shell) run with Flink's functions, as pipelines
/// do: `DATE_FORMAT(t, 'yyyy-MM-dd')` must not mean DataFusion's strftime namesake there.
pub fn flink_functions() -> SessionFunctions {
    Arc::new(streamsql_sql::functions::with_flink_functions)
}

/// Where the server listens when `--flight` is given without an address: loopback only.
pub const DEFAULT_FLIGHT_ADDR: &str = "127.0.0.1:50051";

/// How to reach the Flight SQL server, from the command line.
#[derive(Debug, Clone)]
pub struct FlightOptions {
    pub address: SocketAddr,
    pub token: Option<String>,
    pub limits: QueryLimits,
}

/// Binds and starts serving `catalog` on the current runtime, saying where on stderr.
pub fn start_server(options: &FlightOptions, catalog: Arc<LiveCatalog>) -> anyhow::Result<ServerHandle> {
    if !options.address.ip().is_loopback() && options.token.is_none() {
        tracing::warn!(
            "Flight SQL listens on {} without --flight-token: anyone who can reach it can read the live tables",
            options.address
        );
    }
    let engine = QueryEngine::new(catalog, options.limits).with_functions(flink_functions());
    let server = FlightSqlServer::bind_engine(options.address, engine, options.token.clone())?.spawn();
    errln!("streamsql: Flight SQL serving live tables on grpc://{}", server.address);
    Ok(server)
}

/// The signal that asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM (`kill`, a service manager).
    Terminate,
}

impl Stop {
    /// The exit code shells expect after the signal: 128 + its number.
    pub fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => 128 + 2,
            Stop::Terminate => 128 + 15,
        }
    }

    /// How the user would name it.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "Ctrl-C",
            Stop::Terminate => "SIGTERM",
        }
    }
}

/// Completes on Ctrl-C or SIGTERM, saying which.
pub async fn interrupted() -> Stop {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Stop::Interrupt,
        () = terminate => Stop::Terminate,
    }
}
