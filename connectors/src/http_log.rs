//! `'connector' = 'http-log'`: request events of a web shop's API, as a request-logging
//! middleware would emit them, deterministic by seed, with incidents for change detection to find.
//!
//! Each row is one request: `request_id`, `ts`, `method`, `path`, `status`, `latency_ms`,
//! `bytes`, `client_ip`, `user_agent` and `incident`. Event time advances steadily
//! (`'event-time.rows-per-second'`, twice as fast in rows during a burst) and each row lags the
//! leading edge by up to `'max-out-of-orderness'` ms, as in the netflow generator.
//!
//! Normal traffic spreads over eight endpoints by fixed weights, with log-normal latencies around
//! each endpoint's median and a few 4xx/5xx answers. Incidents: event time is cut into quarters
//! of an hour; in each quarter, with probability 0.6, one endpoint has an incident of 2 to 5
//! minutes starting in the first 10 minutes, of one of three kinds:
//! - `burst`: the endpoint gets as many extra requests as all endpoints together get (the
//!   request rate doubles; the other endpoints keep theirs);
//! - `outage`: 90 % of its requests answer 503, fast (its error rate jumps, latency falls);
//! - `slow`: its latency is ten times the usual.
//!
//! The `incident` column names the incident a request was part of (NULL otherwise): the label a
//! change detector is checked against. `'incidents' = 'false'` turns them off. The schedule
//! depends only on the seed and the quarter, not on the rows before it.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use streamsql_engine::connector::{OptionSpec, TableDef};
use streamsql_engine::time::timestamp_type;
use streamsql_engine::{Result, StreamError};

use crate::generate::{
    COMMON_OPTIONS, CommonOptions, GeneratorConnector, GeneratorKind, RowGenerator, SRC, cumulative_weights,
    random_hosts, start_time,
};

/// The connector.
pub type HttpLogConnector = GeneratorConnector<HttpLog>;

const OPTIONS: &[OptionSpec] = &[
    COMMON_OPTIONS[0],
    COMMON_OPTIONS[1],
    COMMON_OPTIONS[2],
    OptionSpec {
        key: "start-time",
        required: false,
        roles: SRC,
        help: "event time of the first request (default '2024-01-15 09:00:00')",
    },
    OptionSpec {
        key: "event-time.rows-per-second",
        required: false,
        roles: SRC,
        help: "requests per second of event time (default: 'rows-per-second' if set, else 100)",
    },
    OptionSpec {
        key: "max-out-of-orderness",
        required: false,
        roles: SRC,
        help: "largest lag of a row behind the newest event time, in ms (default 500)",
    },
    OptionSpec {
        key: "incidents",
        required: false,
        roles: SRC,
        help: "'true' (default): bursts, outages and slow-downs on some endpoints; 'false': none",
    },
];

/// Every column the generator produces.
pub fn http_log_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("request_id", DataType::Int64, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("method", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("status", DataType::Int32, false),
        Field::new("latency_ms", DataType::Float64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("client_ip", DataType::Utf8, false),
        Field::new("user_agent", DataType::Utf8, false),
        Field::new("incident", DataType::Utf8, true),
    ]))
}

/// Parsed options.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLogOptions {
    pub common: CommonOptions,
    pub start_time_ms: i64,
    pub event_rows_per_second: u64,
    pub max_out_of_orderness_ms: i64,
    pub incidents: bool,
}

impl Default for HttpLogOptions {
    fn default() -> Self {
        Self {
            common: CommonOptions { rows_per_second: 0, number_of_rows: None, seed: 42 },
            start_time_ms: 1_705_309_200_000, // 2024-01-15 09:00:00
            event_rows_per_second: 100,
            max_out_of_orderness_ms: 500,
            incidents: true,
        }
    }
}

impl HttpLogOptions {
    pub fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let d = Self::default();
        let common = CommonOptions::parse(table)?;
        let default_rate = if common.rows_per_second > 0 { common.rows_per_second } else { d.event_rows_per_second };
        let event_rows_per_second = opts.parse("event-time.rows-per-second", default_rate, "a positive integer")?;
        let max_out_of_orderness_ms =
            opts.parse("max-out-of-orderness", d.max_out_of_orderness_ms, "a number of milliseconds")?;
        if event_rows_per_second == 0 || max_out_of_orderness_ms < 0 {
            return Err(StreamError::Config(format!(
                "table '{}': 'event-time.rows-per-second' must be positive and 'max-out-of-orderness' not negative",
                table.name
            )));
        }
        Ok(Self {
            common,
            start_time_ms: start_time(table, d.start_time_ms, "2024-01-15 09:00:00")?,
            event_rows_per_second,
            max_out_of_orderness_ms,
            incidents: opts.parse("incidents", true, "'true' or 'false'")?,
        })
    }
}

struct Endpoint {
    method: &'static str,
    path: &'static str,
    weight: u32,
    /// Median latency in ms.
    latency: f64,
    /// Typical response size in bytes.
    bytes: i64,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint { method: "GET", path: "/api/products", weight: 30, latency: 35.0, bytes: 12_000 },
    Endpoint { method: "GET", path: "/api/search", weight: 18, latency: 80.0, bytes: 8_000 },
    Endpoint { method: "GET", path: "/api/cart", weight: 14, latency: 20.0, bytes: 2_000 },
    Endpoint { method: "POST", path: "/api/cart", weight: 8, latency: 45.0, bytes: 600 },
    Endpoint { method: "POST", path: "/api/checkout", weight: 4, latency: 250.0, bytes: 900 },
    Endpoint { method: "POST", path: "/api/login", weight: 6, latency: 120.0, bytes: 400 },
    Endpoint { method: "GET", path: "/api/orders", weight: 5, latency: 60.0, bytes: 5_000 },
    Endpoint { method: "GET", path: "/health", weight: 15, latency: 2.0, bytes: 20 },
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
    "kube-probe/1.28",
];

const CLIENTS: usize = 400;
const QUARTER_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Burst,
    Outage,
    Slow,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Burst => "burst",
            Kind::Outage => "outage",
            Kind::Slow => "slow",
        }
    }
}

/// One incident: an endpoint, a kind and its event-time span `[from, to)` in ms from the start.
#[derive(Debug, Clone, Copy)]
struct Incident {
    endpoint: usize,
    kind: Kind,
    from: i64,
    to: i64,
}

/// The incident of quarter `quarter` (if any), from the seed alone.
fn incident_of(seed: u64, quarter: i64) -> Option<Incident> {
    let mut rng = SmallRng::seed_from_u64(seed ^ (quarter as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if rng.random::<f64>() >= 0.6 {
        return None;
    }
    let endpoint = rng.random_range(0..ENDPOINTS.len());
    let kind = [Kind::Burst, Kind::Outage, Kind::Slow][rng.random_range(0..3)];
    let from = quarter * QUARTER_MS + rng.random_range(0..10 * 60_000);
    let to = from + rng.random_range(2 * 60_000..=5 * 60_000);
    Some(Incident { endpoint, kind, from, to })
}

/// Generates the requests.
pub struct HttpLogGenerator {
    options: HttpLogOptions,
    rng: SmallRng,
    next_row: u64,
    cumulative: Vec<u32>,
    clients: Vec<String>,
    /// The incident schedule of the quarter last asked for.
    quarter: Option<(i64, Option<Incident>)>,
    /// The leading edge of event time, in ms from the start.
    clock: f64,
}

impl HttpLogGenerator {
    pub fn new(options: HttpLogOptions) -> Self {
        let mut rng = SmallRng::seed_from_u64(options.common.seed);
        let clients = random_hosts(&mut rng, CLIENTS);
        let cumulative = cumulative_weights(ENDPOINTS.iter().map(|e| e.weight));
        Self { options, rng, next_row: 0, cumulative, clients, quarter: None, clock: 0.0 }
    }

    fn incident_at(&mut self, offset: i64) -> Option<Incident> {
        if !self.options.incidents {
            return None;
        }
        let quarter = offset.div_euclid(QUARTER_MS);
        let seed = self.options.common.seed;
        let (_, incident) = match self.quarter {
            Some(known) if known.0 == quarter => known,
            _ => *self.quarter.insert((quarter, incident_of(seed, quarter))),
        };
        incident.filter(|i| (i.from..i.to).contains(&offset))
    }

    /// A standard normal draw (Box–Muller).
    fn standard_normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

impl RowGenerator for HttpLogGenerator {
    fn rows_generated(&self) -> u64 {
        self.next_row
    }

    fn next_batch(&mut self, rows: usize) -> Option<RecordBatch> {
        let rows = match self.options.common.number_of_rows {
            Some(n) if self.next_row >= n => return None,
            Some(n) => rows.min((n - self.next_row) as usize),
            None => rows,
        };
        let mut id = Int64Builder::with_capacity(rows);
        let mut ts = TimestampMillisecondBuilder::with_capacity(rows);
        let mut method = StringBuilder::with_capacity(rows, rows * 4);
        let mut path = StringBuilder::with_capacity(rows, rows * 12);
        let mut status = Int32Builder::with_capacity(rows);
        let mut latency = Float64Builder::with_capacity(rows);
        let mut bytes = Int64Builder::with_capacity(rows);
        let mut client = StringBuilder::with_capacity(rows, rows * 14);
        let mut agent = StringBuilder::with_capacity(rows, rows * 80);
        let mut incident = StringBuilder::with_capacity(rows, rows);
        let total_weight = *self.cumulative.last().unwrap_or(&1);
        let disorder = self.options.max_out_of_orderness_ms;
        for _ in 0..rows {
            let i = self.next_row;
            self.next_row += 1;
            let edge = self.clock as i64;
            let lag = if disorder > 0 { self.rng.random_range(0..=disorder) } else { 0 };
            let offset = edge.saturating_sub(lag);
            let now = self.incident_at(offset);
            let burst = self.incident_at(edge).filter(|i| i.kind == Kind::Burst);
            let step = 1000.0 / self.options.event_rows_per_second as f64;
            // A burst doubles the rate: every other row is one of the burst's extra requests.
            self.clock += if burst.is_some() { step / 2.0 } else { step };
            let pick = self.rng.random_range(0..total_weight);
            let mut e = self.cumulative.partition_point(|&c| c <= pick);
            let burst_draw: f64 = self.rng.random();
            if let Some(burst) = burst
                && burst_draw < 0.5
            {
                e = burst.endpoint;
            }
            let endpoint = &ENDPOINTS[e];
            let affected = now.filter(|i| i.endpoint == e);
            let mut ms = endpoint.latency * (0.5 * self.standard_normal()).exp();
            let draw: f64 = self.rng.random();
            let mut code = match draw {
                d if d < 0.002 => 500,
                d if d < 0.012 => 404,
                d if d < 0.017 => 400,
                d if d < 0.047 && endpoint.path == "/api/login" => 401,
                _ if endpoint.method == "POST" && endpoint.path != "/api/login" => 201,
                _ => 200,
            };
            let outage_draw: f64 = self.rng.random();
            match affected.map(|i| i.kind) {
                Some(Kind::Outage) if outage_draw < 0.9 => {
                    code = 503;
                    ms = 1.0 + ms * 0.05;
                }
                Some(Kind::Slow) => ms *= 10.0,
                _ => {}
            }
            let size = if code >= 400 { 120 } else { endpoint.bytes / 2 + self.rng.random_range(0..=endpoint.bytes) };
            let client_index = self.rng.random_range(0..CLIENTS);
            let agent_index = if endpoint.path == "/health" {
                USER_AGENTS.len() - 1
            } else {
                self.rng.random_range(0..USER_AGENTS.len() - 1)
            };
            id.append_value(i as i64);
            ts.append_value(self.options.start_time_ms.saturating_add(offset));
            method.append_value(endpoint.method);
            path.append_value(endpoint.path);
            status.append_value(code);
            latency.append_value((ms * 100.0).round() / 100.0);
            bytes.append_value(size);
            client.append_value(&self.clients[client_index]);
            agent.append_value(USER_AGENTS[agent_index]);
            incident.append_option(affected.map(|i| i.kind.name()));
        }
        if rows == 0 {
            return None;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(ts.finish()),
            Arc::new(method.finish()),
            Arc::new(path.finish()),
            Arc::new(status.finish()),
            Arc::new(latency.finish()),
            Arc::new(bytes.finish()),
            Arc::new(client.finish()),
            Arc::new(agent.finish()),
            Arc::new(incident.finish()),
        ];
        RecordBatch::try_new(http_log_schema(), columns).ok()
    }
}

/// `'connector' = 'http-log'`.
pub struct HttpLog;

impl GeneratorKind for HttpLog {
    const NAME: &'static str = "http-log";
    const DESCRIPTION: &'static str = "http-log generator";
    type Options = HttpLogOptions;
    type Generator = HttpLogGenerator;

    fn options() -> &'static [OptionSpec] {
        OPTIONS
    }

    fn schema() -> SchemaRef {
        http_log_schema()
    }

    fn parse(table: &TableDef) -> Result<HttpLogOptions> {
        HttpLogOptions::parse(table)
    }

    fn rows_per_second(options: &HttpLogOptions) -> u64 {
        options.common.rows_per_second
    }

    fn generator(options: HttpLogOptions) -> HttpLogGenerator {
        HttpLogGenerator::new(options)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int32Type};

    use super::*;
    use crate::generate::generate_all;

    fn generate(options: HttpLogOptions, batch: usize) -> RecordBatch {
        generate_all(HttpLogGenerator::new(options), batch, &http_log_schema())
    }

    fn two_hours() -> HttpLogOptions {
        HttpLogOptions {
            common: CommonOptions { number_of_rows: Some(2 * 3600 * 20), ..HttpLogOptions::default().common },
            event_rows_per_second: 20,
            ..HttpLogOptions::default()
        }
    }

    #[test]
    fn rows_do_not_depend_on_batch_size() {
        assert_eq!(generate(two_hours(), 13), generate(two_hours(), 5000));
    }

    #[test]
    fn incidents_change_what_they_label() {
        let rows = generate(two_hours(), 8192);
        let status = rows.column(4).as_primitive::<Int32Type>();
        let latency = rows.column(5).as_primitive::<Float64Type>();
        let path = rows.column(3).as_string::<i32>();
        let incident = rows.column(9).as_string::<i32>();
        // (rows, 503s) per incident kind; (rows, latency sum) per path and kind.
        let mut kinds: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut latencies: HashMap<(&str, &str), (usize, f64)> = HashMap::new();
        for i in 0..rows.num_rows() {
            let kind = if incident.is_null(i) { "none" } else { incident.value(i) };
            let entry = kinds.entry(kind).or_default();
            entry.0 += 1;
            entry.1 += usize::from(status.value(i) == 503);
            let entry = latencies.entry((path.value(i), kind)).or_default();
            entry.0 += 1;
            entry.1 += latency.value(i);
        }
        assert_eq!(kinds.len(), 4, "every kind of incident in two hours: {kinds:?}");
        let (n, errors) = kinds["none"];
        assert_eq!(errors, 0, "no 503 outside outages");
        assert!(n > rows.num_rows() / 2);
        let (n, errors) = kinds["outage"];
        assert!(errors as f64 > 0.8 * n as f64);
        for (&(path, kind), &(n, sum)) in &latencies {
            if kind == "slow" {
                let (m, calm) = latencies[&(path, "none")];
                assert!(sum / n as f64 > 4.0 * calm / m as f64, "{path}");
            }
        }
        let quiet = generate(HttpLogOptions { incidents: false, ..two_hours() }, 8192);
        assert_eq!(quiet.column(9).null_count(), quiet.num_rows());
    }
}
