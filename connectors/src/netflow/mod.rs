//! `'connector' = 'netflow'`: a deterministic generator of network flow records resembling the
//! ISCX VPN-nonVPN 2016 (non-VPN) traffic dataset.
//!
//! Every row is drawn from one seeded random stream in a fixed order, so the rows do not depend
//! on batch size. Event time advances steadily (`'event-time.rows-per-second'` rows per second
//! of event time) and each row lags the leading edge by up to `'max-out-of-orderness'` ms:
//! bounded disorder, the kind a `WATERMARK FOR ts AS ts - INTERVAL ...` absorbs.

mod generator;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use streamsql_engine::Result;
use streamsql_engine::connector::{OptionSpec, TableDef};
use streamsql_engine::time::timestamp_type;

pub use generator::{NetflowGenerator, NetflowOptions};

use crate::generate::{COMMON_OPTIONS, GeneratorConnector, GeneratorKind, SRC};

/// The connector.
pub type NetflowConnector = GeneratorConnector<Netflow>;

const OPTIONS: &[OptionSpec] = &[
    COMMON_OPTIONS[0],
    COMMON_OPTIONS[1],
    COMMON_OPTIONS[2],
    OptionSpec {
        key: "start-time",
        required: false,
        roles: SRC,
        help: "event time of the first row (default '2016-04-01 09:00:00')",
    },
    OptionSpec {
        key: "event-time.rows-per-second",
        required: false,
        roles: SRC,
        help: "rows per second of event time (default: 'rows-per-second' if set, else 1000)",
    },
    OptionSpec {
        key: "max-out-of-orderness",
        required: false,
        roles: SRC,
        help: "largest lag of a row behind the newest event time, in ms (default 1000)",
    },
];

/// Every column the generator produces.
pub fn netflow_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("flow_id", DataType::Int64, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("src_ip", DataType::Utf8, false),
        Field::new("dst_ip", DataType::Utf8, false),
        Field::new("src_port", DataType::Int32, false),
        Field::new("dst_port", DataType::Int32, false),
        Field::new("protocol", DataType::Utf8, false),
        Field::new("flow_type", DataType::Utf8, false),
        Field::new("app", DataType::Utf8, false),
        Field::new("bytes_in", DataType::Int64, false),
        Field::new("bytes_out", DataType::Int64, false),
        Field::new("packets", DataType::Int64, false),
        Field::new("duration", DataType::Float64, false),
    ]))
}

/// `'connector' = 'netflow'`.
pub struct Netflow;

impl GeneratorKind for Netflow {
    const NAME: &'static str = "netflow";
    const DESCRIPTION: &'static str = "netflow generator";
    type Options = NetflowOptions;
    type Generator = NetflowGenerator;

    fn options() -> &'static [OptionSpec] {
        OPTIONS
    }

    fn schema() -> SchemaRef {
        netflow_schema()
    }

    fn parse(table: &TableDef) -> Result<NetflowOptions> {
        NetflowOptions::parse(table)
    }

    fn rows_per_second(options: &NetflowOptions) -> u64 {
        options.rows_per_second
    }

    fn generator(options: NetflowOptions) -> NetflowGenerator {
        NetflowGenerator::new(options)
    }
}
