//! # streamsql-connectors: where rows come from and go to
//!
//! Implements the engine's ports ([`streamsql_engine::connector`]) for the built-in connectors:
//!
//! | connector   | source | sink | module        |
//! |-------------|--------|------|---------------|
//! | `file`      | yes    | yes  | [`file`]      |
//! | `netflow`   | yes    |      | [`netflow`]   |
//! | `nexmark`   | yes    |      | [`nexmark`]   |
//! | `http`      | yes    |      | `http` (polls a JSON API, or replays recorded polls; feature `http`) |
//! | `http-ingest` | yes  |      | `http` (applications POST JSON rows; feature `http`) |
//! | `http-log`  | yes    |      | [`http_log`] (web requests with incidents) |
//! | `transactions` | yes |      | [`transactions`] (card transactions with fraud labels) |
//! | `print`     |        | yes  | [`print`]     |
//! | `blackhole` |        | yes  | [`blackhole`] |
//! | `live`      |        | yes  | [`live`] (in-memory tables for queries; added with a catalog) |
//! | `cassandra` |        | yes  | `cassandra` (feature `cassandra`, on by default) |
//! | `flight`    |        | yes  | `flight` (DoPut to a Flight endpoint; feature `flight`, on by default) |
//! | `kafka`     | yes    | yes  | `kafka` (feature `kafka`, on by default) |
//! | `upsert-kafka` |     | yes  | `kafka` (upserts by PRIMARY KEY, tombstones for deletes) |
//!
//! Formats are separate from transports: [`format`] decodes JSON lines and CSV into Arrow
//! batches (with `file:line` errors) and encodes batches back.
//!
//! [`registry`] returns every built-in connector behind the engine's
//! [`ConnectorRegistry`](streamsql_engine::connector::ConnectorRegistry) trait; the SQL layer only
//! ever sees that trait.

pub mod blackhole;
#[cfg(feature = "cassandra")]
pub mod cassandra;
pub mod file;
#[cfg(feature = "flight")]
pub mod flight;
pub mod format;
pub mod generate;
#[cfg(feature = "http")]
pub mod http;
pub mod http_log;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod live;
pub mod netflow;
pub mod nexmark;
pub mod print;
pub mod transactions;

use std::sync::Arc;

use streamsql_engine::connector::{Connector, ConnectorRegistry};

/// A registry of connectors; starts with the built-ins, more can be added.
#[derive(Clone)]
pub struct Connectors {
    connectors: Vec<Arc<dyn Connector>>,
}

impl Connectors {
    /// Every built-in connector.
    pub fn builtin() -> Self {
        Self {
            connectors: vec![
                Arc::new(file::FileConnector),
                Arc::new(netflow::NetflowConnector::default()),
                Arc::new(nexmark::NexmarkConnector),
                Arc::new(transactions::TransactionsConnector::default()),
                Arc::new(http_log::HttpLogConnector::default()),
                #[cfg(feature = "http")]
                Arc::new(http::HttpConnector),
                #[cfg(feature = "http")]
                Arc::new(http::HttpIngestConnector),
                Arc::new(print::PrintConnector),
                Arc::new(blackhole::BlackholeConnector),
                #[cfg(feature = "cassandra")]
                Arc::new(cassandra::CassandraConnector),
                #[cfg(feature = "flight")]
                Arc::new(flight::FlightConnector),
                #[cfg(feature = "kafka")]
                Arc::new(kafka::KafkaConnector),
                #[cfg(feature = "kafka")]
                Arc::new(kafka::UpsertKafkaConnector),
            ],
        }
    }

    /// Adds (or replaces, by name) a connector.
    pub fn with(mut self, connector: Arc<dyn Connector>) -> Self {
        self.connectors.retain(|c| c.name() != connector.name());
        self.connectors.push(connector);
        self
    }
}

impl ConnectorRegistry for Connectors {
    fn get(&self, name: &str) -> Option<Arc<dyn Connector>> {
        self.connectors.iter().find(|c| c.name().eq_ignore_ascii_case(name)).cloned()
    }

    fn names(&self) -> Vec<&'static str> {
        self.connectors.iter().map(|c| c.name()).collect()
    }
}

/// The built-in connectors plus `live` tables kept in `catalog`, as a shareable registry.
pub fn registry_with_live(catalog: &Arc<streamsql_engine::live::LiveCatalog>) -> Arc<dyn ConnectorRegistry> {
    Arc::new(Connectors::builtin().with(Arc::new(live::LiveConnector::new(catalog.clone()))))
}

/// The built-in connectors as a shareable registry.
pub fn registry() -> Arc<dyn ConnectorRegistry> {
    Arc::new(Connectors::builtin())
}
