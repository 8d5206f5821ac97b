//! `--flight ADDR`: the Flight SQL server over this process's live tables.

use std::net::SocketAddr;
use std::sync::Arc;

use streamsql_engine::connector::ConnectorRegistry;
use streamsql_engine::live::LiveCatalog;
use streamsql_flight::FlightSqlServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the server listens when `--flight` is given without an address: loopback only.
pub const DEFAULT_FLIGHT_ADDR: &str = "127.0.0.1:50051";

/// The connectors of this process, with `live` tables kept in `catalog`.
pub fn registry(catalog: &Arc<LiveCatalog>) -> Arc<dyn ConnectorRegistry> {
    Arc::new(
        streamsql_connectors::Connectors::builtin()
            .with(Arc::new(streamsql_connectors::live::LiveConnector::new(catalog.clone()))),
    )
}

/// How to reach the Flight SQL server, from the command line.
#[derive(Debug, Clone)]
pub struct FlightOptions {
    pub address: SocketAddr,
    pub token: Option<String>,
}

/// A running Flight SQL server.
pub struct RunningServer {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Binds and starts serving `catalog` on the current runtime.
    pub fn start(options: &FlightOptions, catalog: Arc<LiveCatalog>) -> anyhow::Result<Self> {
        if !options.address.ip().is_loopback() && options.token.is_none() {
            tracing::warn!(
                "Flight SQL listens on {} without --flight-token: anyone who can reach it can read the live tables",
                options.address
            );
        }
        let server = FlightSqlServer::bind(options.address, catalog, options.token.clone())?;
        let address = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        eprintln!("streamsql: Flight SQL serving live tables on grpc://{address}");
        Ok(Self { address, stop: Some(stop), task })
    }

    /// Stops accepting calls and waits for the server to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
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
