//! The netflow row generator (columnar).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::record_batch::RecordBatch;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use streamsql_engine::connector::TableDef;
use streamsql_engine::{Result, StreamError};

use super::netflow_schema;
use crate::generate::{CommonOptions, RowGenerator, cumulative_weights, random_hosts, start_time};

/// Parsed generator options.
#[derive(Debug, Clone)]
pub struct NetflowOptions {
    pub rows_per_second: u64,
    pub number_of_rows: Option<u64>,
    pub seed: u64,
    pub start_time_ms: i64,
    pub event_rows_per_second: u64,
    pub max_out_of_orderness_ms: i64,
}

impl Default for NetflowOptions {
    fn default() -> Self {
        Self {
            rows_per_second: 0,
            number_of_rows: None,
            seed: 42,
            start_time_ms: 1_459_501_200_000, // 2016-04-01 09:00:00
            event_rows_per_second: 1000,
            max_out_of_orderness_ms: 1000,
        }
    }
}

impl NetflowOptions {
    pub fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let d = Self::default();
        let CommonOptions { rows_per_second, number_of_rows, seed } = CommonOptions::parse(table)?;
        let start_time_ms = start_time(table, d.start_time_ms, "2016-04-01 09:00:00")?;
        let default_event_rate = if rows_per_second > 0 { rows_per_second } else { d.event_rows_per_second };
        let event_rows_per_second =
            opts.parse("event-time.rows-per-second", default_event_rate, "a positive integer")?;
        if event_rows_per_second == 0 {
            return Err(StreamError::Config(format!(
                "table '{}': option 'event-time.rows-per-second' must be a positive integer",
                table.name
            )));
        }
        let max_out_of_orderness_ms =
            opts.parse("max-out-of-orderness", d.max_out_of_orderness_ms, "a number of milliseconds")?;
        if max_out_of_orderness_ms < 0 {
            return Err(StreamError::Config(format!(
                "table '{}': option 'max-out-of-orderness' must not be negative",
                table.name
            )));
        }
        Ok(Self {
            rows_per_second,
            number_of_rows,
            seed,
            start_time_ms,
            event_rows_per_second,
            max_out_of_orderness_ms,
        })
    }
}

/// An application in the dataset: its flow type, transport, ports and traffic size.
struct App {
    name: &'static str,
    flow_type: &'static str,
    protocol: &'static str,
    ports: &'static [i32],
    /// Range of incoming bytes per flow.
    bytes_in: (i64, i64),
    weight: u32,
}

const APPS: &[App] = &[
    App { name: "http", flow_type: "browsing", protocol: "TCP", ports: &[80], bytes_in: (400, 60_000), weight: 14 },
    App { name: "https", flow_type: "browsing", protocol: "TCP", ports: &[443], bytes_in: (400, 90_000), weight: 12 },
    App { name: "dns", flow_type: "browsing", protocol: "UDP", ports: &[53], bytes_in: (60, 512), weight: 10 },
    App { name: "facebook_chat", flow_type: "chat", protocol: "TCP", ports: &[443], bytes_in: (100, 4_000), weight: 5 },
    App {
        name: "hangouts_chat",
        flow_type: "chat",
        protocol: "TCP",
        ports: &[443, 5228],
        bytes_in: (100, 3_000),
        weight: 4,
    },
    App { name: "icq_chat", flow_type: "chat", protocol: "TCP", ports: &[5190], bytes_in: (80, 2_000), weight: 2 },
    App {
        name: "skype_chat",
        flow_type: "chat",
        protocol: "TCP",
        ports: &[443, 3478],
        bytes_in: (100, 3_000),
        weight: 4,
    },
    App {
        name: "email",
        flow_type: "email",
        protocol: "TCP",
        ports: &[25, 110, 143, 587, 993],
        bytes_in: (500, 200_000),
        weight: 8,
    },
    App {
        name: "bittorrent",
        flow_type: "p2p",
        protocol: "TCP",
        ports: &[6881, 6889, 51413],
        bytes_in: (2_000, 5_000_000),
        weight: 10,
    },
    App {
        name: "netflix",
        flow_type: "streaming",
        protocol: "TCP",
        ports: &[443],
        bytes_in: (100_000, 8_000_000),
        weight: 5,
    },
    App {
        name: "youtube",
        flow_type: "streaming",
        protocol: "TCP",
        ports: &[443],
        bytes_in: (80_000, 6_000_000),
        weight: 6,
    },
    App {
        name: "spotify",
        flow_type: "streaming",
        protocol: "TCP",
        ports: &[4070, 443],
        bytes_in: (20_000, 900_000),
        weight: 4,
    },
    App {
        name: "skype_audio",
        flow_type: "voip",
        protocol: "UDP",
        ports: &[3478],
        bytes_in: (8_000, 400_000),
        weight: 5,
    },
    App {
        name: "hangouts_audio",
        flow_type: "voip",
        protocol: "UDP",
        ports: &[19302],
        bytes_in: (8_000, 300_000),
        weight: 4,
    },
    App {
        name: "voipbuster",
        flow_type: "voip",
        protocol: "UDP",
        ports: &[5060],
        bytes_in: (6_000, 200_000),
        weight: 3,
    },
    App {
        name: "sftp",
        flow_type: "file_transfer",
        protocol: "TCP",
        ports: &[22],
        bytes_in: (10_000, 20_000_000),
        weight: 5,
    },
    App {
        name: "ftps",
        flow_type: "file_transfer",
        protocol: "TCP",
        ports: &[21, 990],
        bytes_in: (10_000, 20_000_000),
        weight: 3,
    },
];

const SOURCE_HOSTS: usize = 256;
const DESTINATION_HOSTS: usize = 2048;

/// Generates netflow rows as Arrow batches of the full [`netflow_schema`].
pub struct NetflowGenerator {
    options: NetflowOptions,
    rng: SmallRng,
    next_row: u64,
    /// Cumulative app weights for sampling.
    cumulative: Vec<u32>,
    src_ips: Vec<String>,
    dst_ips: Vec<String>,
}

impl RowGenerator for NetflowGenerator {
    fn rows_generated(&self) -> u64 {
        self.next_row
    }

    fn next_batch(&mut self, rows: usize) -> Option<RecordBatch> {
        NetflowGenerator::next_batch(self, rows)
    }
}

impl NetflowGenerator {
    pub fn new(options: NetflowOptions) -> Self {
        let mut rng = SmallRng::seed_from_u64(options.seed);
        let src_ips = (0..SOURCE_HOSTS).map(|i| format!("10.0.{}.{}", 1 + i / 250, 1 + i % 250)).collect();
        let dst_ips = random_hosts(&mut rng, DESTINATION_HOSTS);
        let cumulative = cumulative_weights(APPS.iter().map(|a| a.weight));
        Self { options, rng, next_row: 0, cumulative, src_ips, dst_ips }
    }

    /// Rows produced so far.
    pub fn rows_generated(&self) -> u64 {
        self.next_row
    }

    /// Rows left before `'number-of-rows'`, if bounded.
    pub fn remaining(&self) -> Option<u64> {
        self.options.number_of_rows.map(|n| n.saturating_sub(self.next_row))
    }

    /// The next `rows` rows (fewer at the end of a bounded run), or `None` when done.
    pub fn next_batch(&mut self, rows: usize) -> Option<RecordBatch> {
        let rows = match self.remaining() {
            Some(0) => return None,
            Some(left) => rows.min(left as usize),
            None => rows,
        };
        let mut flow_id = Int64Builder::with_capacity(rows);
        let mut ts = TimestampMillisecondBuilder::with_capacity(rows);
        let mut src_ip = StringBuilder::with_capacity(rows, rows * 10);
        let mut dst_ip = StringBuilder::with_capacity(rows, rows * 14);
        let mut src_port = Int32Builder::with_capacity(rows);
        let mut dst_port = Int32Builder::with_capacity(rows);
        let mut protocol = StringBuilder::with_capacity(rows, rows * 3);
        let mut flow_type = StringBuilder::with_capacity(rows, rows * 9);
        let mut app = StringBuilder::with_capacity(rows, rows * 10);
        let mut bytes_in = Int64Builder::with_capacity(rows);
        let mut bytes_out = Int64Builder::with_capacity(rows);
        let mut packets = Int64Builder::with_capacity(rows);
        let mut duration = Float64Builder::with_capacity(rows);
        let total_weight = *self.cumulative.last().unwrap_or(&1);
        let disorder = self.options.max_out_of_orderness_ms;
        for _ in 0..rows {
            let i = self.next_row;
            self.next_row += 1;
            flow_id.append_value(i as i64);
            let offset = (i as i128 * 1000 / self.options.event_rows_per_second as i128) as i64;
            let edge = self.options.start_time_ms.saturating_add(offset);
            let lag = if disorder > 0 { self.rng.random_range(0..=disorder) } else { 0 };
            ts.append_value(edge.saturating_sub(lag));
            let pick = self.rng.random_range(0..total_weight);
            let a = &APPS[self.cumulative.partition_point(|&c| c <= pick)];
            src_ip.append_value(&self.src_ips[self.rng.random_range(0..SOURCE_HOSTS)]);
            dst_ip.append_value(&self.dst_ips[self.rng.random_range(0..DESTINATION_HOSTS)]);
            src_port.append_value(self.rng.random_range(49152..=65535));
            dst_port.append_value(a.ports[self.rng.random_range(0..a.ports.len())]);
            protocol.append_value(a.protocol);
            flow_type.append_value(a.flow_type);
            app.append_value(a.name);
            let inbound = self.rng.random_range(a.bytes_in.0..=a.bytes_in.1);
            bytes_in.append_value(inbound);
            bytes_out.append_value(inbound / self.rng.random_range(2..=20) + 40);
            packets.append_value(inbound / 1200 + self.rng.random_range(1..=8));
            duration
                .append_value((inbound as f64 / self.rng.random_range(5_000.0..2_000_000.0) * 1000.0).round() / 1000.0);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(flow_id.finish()),
            Arc::new(ts.finish()),
            Arc::new(src_ip.finish()),
            Arc::new(dst_ip.finish()),
            Arc::new(src_port.finish()),
            Arc::new(dst_port.finish()),
            Arc::new(protocol.finish()),
            Arc::new(flow_type.finish()),
            Arc::new(app.finish()),
            Arc::new(bytes_in.finish()),
            Arc::new(bytes_out.finish()),
            Arc::new(packets.finish()),
            Arc::new(duration.finish()),
        ];
        RecordBatch::try_new(netflow_schema(), columns).ok()
    }
}
