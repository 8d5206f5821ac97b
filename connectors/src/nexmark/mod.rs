//! `'connector' = 'nexmark'`: the persons, auctions and bids of the Nexmark benchmark, generated
//! deterministically.
//!
//! Nexmark's reference generator (and Flink's `nexmark` source) produces one stream of events,
//! 1 person : 3 auctions : 46 bids, with synthetic event times. Flink declares it as one table
//! with a `ROW` column per kind and three views on `event_type`; our `CREATE TABLE` has no `ROW`
//! type, so each table here holds one kind, chosen by `'kind'`, with that kind's columns:
//!
//! ```text
//!  event n ─ kind by n mod 50 ─┬─ 0      person   ─▶ table with 'kind' = 'person'
//!  (fields from seed and n)    ├─ 1..=3  auction  ─▶ table with 'kind' = 'auction'
//!                              └─ 4..=49 bid      ─▶ table with 'kind' = 'bid'
//! ```
//!
//! Every table walks the same event sequence and keeps its kind, so tables declared with the
//! same options see the events a union would (joins across them match), and `'number-of-rows'`
//! and `'rows-per-second'` count events of the sequence. [`model`] says what event `n` is;
//! [`generator`] emits a kind's events in order as Arrow batches and paces them.

mod generator;
pub mod model;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use streamsql_engine::connector::{Connector, Delivery, OptionSpec, Role, Source, SourceContext, TableDef};
use streamsql_engine::time::{parse_duration_ms, timestamp_type};
use streamsql_engine::types::sql_name;
use streamsql_engine::{Result, StreamError};

pub use generator::NexmarkGenerator;
pub use model::{EventKind, EventSequence};

use crate::generate::start_time;

pub struct NexmarkConnector;

const SRC: &[Role] = &[Role::Source];

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "kind",
        required: true,
        roles: SRC,
        help: "which events the table holds: 'person', 'auction' or 'bid'",
    },
    OptionSpec {
        key: "number-of-rows",
        required: false,
        roles: SRC,
        help: "stop after this many events of the sequence, all kinds counted (default: unbounded); \
               the table emits its kind's share: 2 % persons, 6 % auctions, 92 % bids",
    },
    OptionSpec {
        key: "rows-per-second",
        required: false,
        roles: SRC,
        help: "wall-clock pace, in events of the sequence per second; 0 (default) = as fast as possible",
    },
    OptionSpec {
        key: "events-per-second",
        required: false,
        roles: SRC,
        help: "events per second of event time (default: 'rows-per-second' if set, else 10000)",
    },
    OptionSpec {
        key: "seed",
        required: false,
        roles: SRC,
        help: "random seed (default 42); the same seed gives the same events",
    },
    OptionSpec {
        key: "start-time",
        required: false,
        roles: SRC,
        help: "event time of the first event (default '2015-07-15 00:00:00')",
    },
    OptionSpec {
        key: "delayed-event.probability",
        required: false,
        roles: SRC,
        help: "share of events emitted after their time, out of order (default 0.1)",
    },
    OptionSpec {
        key: "delayed-event.max-delay",
        required: false,
        roles: SRC,
        help: "longest delay of a delayed event (default '3 s'; '0' for events in order)",
    },
];

/// Parsed options.
#[derive(Debug, Clone)]
pub struct NexmarkOptions {
    pub kind: EventKind,
    /// Events of the sequence to go through; `None` = unbounded.
    pub number_of_rows: Option<u64>,
    /// Wall-clock pace in events of the sequence per second; 0 = unthrottled.
    pub rows_per_second: u64,
    pub events_per_second: u64,
    pub seed: u64,
    pub start_time_ms: i64,
    pub delay_probability: f64,
    pub max_delay_ms: i64,
}

impl NexmarkOptions {
    /// The reference generator's defaults for `kind`, unbounded and unthrottled.
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            number_of_rows: None,
            rows_per_second: 0,
            events_per_second: 10_000,
            seed: 42,
            start_time_ms: 1_436_918_400_000, // 2015-07-15 00:00:00
            delay_probability: 0.1,
            max_delay_ms: 3_000,
        }
    }

    pub fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let config = |message: String| StreamError::Config(format!("table '{}': {message}", table.name));
        let kind = match opts.choice("kind", &["person", "auction", "bid"], "bid")? {
            "person" => EventKind::Person,
            "auction" => EventKind::Auction,
            _ => EventKind::Bid,
        };
        let d = Self::new(kind);
        let number_of_rows = match opts.get("number-of-rows") {
            None => None,
            Some(_) => Some(opts.parse("number-of-rows", 0u64, "a non-negative integer")?),
        };
        let rows_per_second = opts.parse("rows-per-second", 0u64, "a non-negative integer")?;
        let default_rate = if rows_per_second > 0 { rows_per_second } else { d.events_per_second };
        let events_per_second = opts.parse("events-per-second", default_rate, "a positive integer")?;
        if events_per_second == 0 {
            return Err(config("option 'events-per-second' must be a positive integer".into()));
        }
        let start_time_ms = start_time(table, d.start_time_ms, "2015-07-15 00:00:00")?;
        let delay_probability = opts.parse("delayed-event.probability", d.delay_probability, "a number from 0 to 1")?;
        if !(0.0..=1.0).contains(&delay_probability) {
            return Err(config(format!(
                "option 'delayed-event.probability' must be a number from 0 to 1, got {delay_probability}"
            )));
        }
        let max_delay_ms = match opts.get("delayed-event.max-delay") {
            None => d.max_delay_ms,
            Some(text) => parse_duration_ms(text).ok_or_else(|| {
                config(format!(
                    "option 'delayed-event.max-delay' must be a duration like '3 s' or '500 ms', got '{text}'"
                ))
            })?,
        };
        Ok(Self {
            kind,
            number_of_rows,
            rows_per_second,
            events_per_second,
            seed: opts.parse("seed", d.seed, "an integer")?,
            start_time_ms,
            delay_probability,
            max_delay_ms,
        })
    }

    /// The event sequence these options describe.
    pub fn sequence(&self) -> EventSequence {
        EventSequence {
            seed: self.seed,
            start_time_ms: self.start_time_ms,
            events_per_second: self.events_per_second,
            delay_probability: self.delay_probability,
            max_delay_ms: self.max_delay_ms,
        }
    }
}

/// Every column of a table of `kind`, as Flink's Nexmark names them (SQL names are
/// case-insensitive: `dateTime` is `datetime`).
pub fn kind_schema(kind: EventKind) -> SchemaRef {
    let int = |name: &str| Field::new(name, DataType::Int64, false);
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let time = |name: &str| Field::new(name, timestamp_type(), false);
    Arc::new(Schema::new(match kind {
        EventKind::Person => vec![
            int("id"),
            text("name"),
            text("emailaddress"),
            text("creditcard"),
            text("city"),
            text("state"),
            time("datetime"),
            text("extra"),
        ],
        EventKind::Auction => vec![
            int("id"),
            text("itemname"),
            text("description"),
            int("initialbid"),
            int("reserve"),
            time("datetime"),
            time("expires"),
            int("seller"),
            int("category"),
            text("extra"),
        ],
        EventKind::Bid => vec![
            int("auction"),
            int("bidder"),
            int("price"),
            text("channel"),
            text("url"),
            time("datetime"),
            text("extra"),
        ],
    }))
}

/// A column's name as Flink's Nexmark writes it (`dateTime` for `datetime`), for messages.
fn declared_name(name: &str) -> &str {
    const CAMEL_CASE: [&str; 5] = ["emailAddress", "creditCard", "dateTime", "itemName", "initialBid"];
    CAMEL_CASE.into_iter().find(|c| c.eq_ignore_ascii_case(name)).unwrap_or(name)
}

/// The generator's column index for each declared column, checking names and types.
fn column_mapping(table: &TableDef, kind: EventKind) -> Result<Vec<usize>> {
    let full = kind_schema(kind);
    let bid = kind_schema(EventKind::Bid);
    let columns_of = |schema: &Schema| {
        schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", declared_name(f.name()), sql_name(f.data_type())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if kind != EventKind::Bid && table.schema.fields().len() == bid.fields().len() {
        let same = table.schema.fields().iter().zip(bid.fields()).all(|(a, b)| a.name().eq_ignore_ascii_case(b.name()));
        if same {
            return Err(StreamError::Config(format!(
                "table '{}' has the bid columns, which a nexmark table declared without columns gets; \
                 for 'kind' = '{}' declare its columns: {}",
                table.name,
                kind.name(),
                columns_of(&full)
            )));
        }
    }
    table
        .schema
        .fields()
        .iter()
        .map(|declared| {
            let found = full.fields().iter().position(|f| f.name().eq_ignore_ascii_case(declared.name()));
            let Some(index) = found else {
                return Err(StreamError::Config(format!(
                    "table '{}': nexmark {} events have no column '{}'; their columns are {}",
                    table.name,
                    kind.name(),
                    declared.name(),
                    columns_of(&full)
                )));
            };
            let produced = full.field(index).data_type();
            if produced != declared.data_type() {
                return Err(StreamError::Config(format!(
                    "table '{}': column '{}' is declared {} but nexmark {} events have it as {}",
                    table.name,
                    declared.name(),
                    sql_name(declared.data_type()),
                    kind.name(),
                    sql_name(produced)
                )));
            }
            Ok(index)
        })
        .collect()
}

impl Connector for NexmarkConnector {
    fn name(&self) -> &'static str {
        "nexmark"
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn supports(&self, role: Role) -> bool {
        role == Role::Source
    }

    /// Deterministic by seed: a restore generates the same rows again from its position.
    fn delivery(&self, _table: &TableDef, _role: Role) -> Delivery {
        Delivery::ExactlyOnce
    }

    /// The bid columns: the default schema cannot depend on `'kind'` (it is chosen before the
    /// options are read), and bids are what most queries read.
    fn default_schema(&self) -> Option<SchemaRef> {
        Some(kind_schema(EventKind::Bid))
    }

    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        let options = NexmarkOptions::parse(table)?;
        column_mapping(table, options.kind)?;
        Ok(())
    }

    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        let options = NexmarkOptions::parse(table)?;
        let columns = column_mapping(table, options.kind)?;
        Ok(Box::new(generator::NexmarkSource::new(&options, columns, table.schema.clone(), ctx.batch_size)))
    }
}

#[cfg(test)]
mod tests;
