//! # streamsql-sql: from Flink-dialect SQL to engine pipelines
//!
//! ```text
//!  script ──parser──▶ statements ──Session──▶ catalog (tables, views)
//!                                   │
//!                                   └─ INSERT / SELECT ──SqlToRel + analyzer──▶ LogicalPlan
//!                                          ──planner::lower──▶ PipelineSpec (engine)
//! ```
//!
//! - [`parser`]: our statements on sqlparser's tokenizer; window TVFs rewritten on tokens.
//! - [`catalog`]: tables and views as DataFusion sees them (`ContextProvider`).
//! - [`functions`]: Flink's built-in functions where DataFusion's differ; unsupported ones refused.
//! - [`planner`]: DDL checks, lowering of logical plans, sink column mapping.
//! - [`session`]: settings and statement execution — start reading at [`Session::execute`]
//!   (whole scripts into pipelines) or [`Session::execute_statement`] (one statement at a time,
//!   returning an [`Outcome`], as the interactive shell runs them).
//! - [`describe`], [`explain`]: `SHOW`/`DESCRIBE` and `EXPLAIN` answers as text.
//!
//! This crate never depends on the connectors: it finds them by name through the engine's
//! [`ConnectorRegistry`](streamsql_engine::connector::ConnectorRegistry).

pub mod catalog;
pub mod describe;
pub mod error;
pub mod explain;
pub mod functions;
pub mod outcome;
pub mod parser;
pub mod planner;
pub mod session;
pub mod types;

pub use error::SqlError;
pub use outcome::{Control, Outcome, ResultTable, run_constant};
pub use session::{Session, Settings};
