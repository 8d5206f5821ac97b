//! # streamsql-flight: live results over Arrow Flight SQL
//!
//! Serves the live tables of a [`LiveCatalog`] to any Flight SQL client (ADBC, the JDBC driver,
//! pyarrow): ad-hoc SQL run by DataFusion over a consistent snapshot, plus the metadata calls
//! and prepared statements clients issue. See [`service`] for the RPCs answered.
//!
//! ```text
//!  pipeline ─▶ live sink ─▶ LiveCatalog ◀─ snapshot ─ QueryEngine (DataFusion) ◀─ Flight SQL ◀─ clients
//! ```

pub mod governor;
pub mod query;
pub mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use streamsql_engine::live::LiveCatalog;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

pub use governor::QueryLimits;
pub use query::{QueryEngine, SessionFunctions};
pub use service::StreamsqlFlightService;

/// A bound Flight SQL server, not yet serving.
pub struct FlightSqlServer {
    incoming: TcpIncoming,
    address: SocketAddr,
    service: StreamsqlFlightService,
}

impl FlightSqlServer {
    /// Binds `address` (port 0 picks a free port) to serve `catalog`; with `token`, clients must
    /// authenticate with it; queries keep to `limits`.
    pub fn bind(
        address: SocketAddr,
        catalog: Arc<LiveCatalog>,
        token: Option<String>,
        limits: QueryLimits,
    ) -> anyhow::Result<Self> {
        Self::bind_engine(address, QueryEngine::new(catalog, limits), token)
    }

    /// [`FlightSqlServer::bind`] with the engine queries run on (its catalog, limits and
    /// functions).
    pub fn bind_engine(address: SocketAddr, engine: QueryEngine, token: Option<String>) -> anyhow::Result<Self> {
        let incoming = TcpIncoming::bind(address)
            .map_err(|e| anyhow::anyhow!("cannot listen for Flight SQL on {address}: {e}"))?
            .with_nodelay(Some(true));
        let address = incoming.local_addr()?;
        let service = StreamsqlFlightService::new(engine, token).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        Ok(Self { incoming, address, service })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        Server::builder()
            .add_service(FlightServiceServer::new(self.service))
            .serve_with_incoming_shutdown(self.incoming, shutdown)
            .await
            .map_err(|e| anyhow::anyhow!("Flight SQL server failed: {e}"))
    }

    /// Serves on a task of the current tokio runtime until [`ServerHandle::stop`] (or until the
    /// handle is dropped).
    pub fn spawn(self) -> ServerHandle {
        let address = self.address;
        let governor = self.service.governor();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(async {
            let _ = stopped.await;
        }));
        ServerHandle { address, stop: Some(stop), task, governor }
    }
}

/// How long [`ServerHandle::stop`] lets calls under way finish.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A Flight SQL server serving on a task.
pub struct ServerHandle {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    governor: Arc<governor::Governor>,
}

impl ServerHandle {
    /// Stops accepting calls, cancels the queries running, and waits for the calls under way to
    /// finish, for at most [`SHUTDOWN_GRACE`]; calls still running then are dropped.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.governor.stop();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(finished) => finished?,
            Err(_) => {
                self.task.abort();
                tracing::warn!("Flight SQL calls still running after {SHUTDOWN_GRACE:?} were cancelled at shutdown");
                Ok(())
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.governor.stop();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}
