//! `--flight ADDR`: the Flight SQL server over this process's live tables.

use std::net::SocketAddr;
use std::sync::Arc;

use streamsql_engine::live::LiveCatalog;
use streamsql_flight::{FlightSqlServer, QueryLimits, ServerHandle};

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
    let server = FlightSqlServer::bind(options.address, catalog, options.token.clone(), options.limits)?.spawn();
    eprintln!("streamsql: Flight SQL serving live tables on grpc://{}", server.address);
    Ok(server)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
