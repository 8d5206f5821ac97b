//! Live tables over Flight SQL: query latency on a table of 1 M rows, and freshness (how long
//! an event takes to become visible to a query) at a steady input rate.
//!
//! Queries go through a real Flight SQL round trip (GetFlightInfo, then DoGet) from the Rust
//! `arrow-flight` client to the server on loopback, so latency includes planning, the snapshot,
//! execution and Arrow IPC transfer.
//!
//! Freshness uses a `clock` source whose rows carry the wall-clock time they were produced; an
//! updating aggregate keeps `MAX(emitted_at)` in a live table, and a client polls it: freshness
//! is `now - MAX(emitted_at)` when the answer arrives (the newest visible event's age, so it
//! includes the query's own time).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use streamsql_connectors::Connectors;
use streamsql_connectors::live::LiveConnector;
use streamsql_connectors::netflow::{NetflowGenerator, NetflowOptions};
use streamsql_engine::live::{LiveCatalog, LiveTableOptions};
use streamsql_engine::operators::aggregate::ChangeOp;
use streamsql_engine::runtime;
use streamsql_flight::{FlightSqlServer, QueryLimits};
use streamsql_sql::Session;
use tonic::transport::{Channel, Endpoint};

use crate::clock::ClockConnector;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    if samples.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

async fn client(address: std::net::SocketAddr) -> anyhow::Result<FlightSqlServiceClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?.connect().await?;
    Ok(FlightSqlServiceClient::new(channel))
}

/// Runs one query end to end; returns the rows it answered.
async fn query(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let info = client.execute(sql.to_string(), None).await.with_context(|| format!("query: {sql}"))?;
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.context("an endpoint without a ticket")?;
        let stream = client.do_get(ticket).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(batches)
}

/// One query's latency over a live table.
pub struct LatencyResult {
    pub table: &'static str,
    pub query: &'static str,
    pub result_rows: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Fills an append table and a keyed table with `rows` netflow rows and times queries on them.
pub async fn query_latency(rows: u64, runs: usize) -> anyhow::Result<Vec<LatencyResult>> {
    let catalog = LiveCatalog::new();
    let mut generator =
        NetflowGenerator::new(NetflowOptions { number_of_rows: Some(rows), seed: 3, ..NetflowOptions::default() });
    let mut batches = Vec::new();
    while let Some(batch) = generator.next_batch(8192) {
        batches.push(batch);
    }
    let schema = batches.first().context("no rows generated")?.schema();
    let appended = catalog.get_or_create("flows", schema.clone(), LiveTableOptions::default())?;
    // The keyed table holds the same rows as the result of an updating aggregate: one row per
    // flow_id, upserted through the changelog path.
    let keyed = catalog.get_or_create("flows_by_id", schema.clone(), LiveTableOptions::default())?;
    for batch in &batches {
        appended.append(batch)?;
        let ops = arrow::array::Int8Array::from(vec![ChangeOp::Insert as i8; batch.num_rows()]);
        keyed.apply_changes(batch, &ops)?;
    }

    let server = FlightSqlServer::bind("127.0.0.1:0".parse()?, catalog, None, QueryLimits::default())?.spawn();
    let mut client = client(server.address).await?;

    const QUERIES: &[&str] = &[
        "SELECT COUNT(*) FROM {t}",
        "SELECT flow_type, COUNT(*), AVG(bytes_in) FROM {t} GROUP BY flow_type",
        "SELECT * FROM {t} WHERE flow_id = 123456",
        "SELECT src_ip, SUM(bytes_in) AS b FROM {t} GROUP BY src_ip ORDER BY b DESC LIMIT 10",
        "SELECT * FROM {t} LIMIT 10000",
    ];
    let mut results = Vec::new();
    for table in ["flows", "flows_by_id"] {
        for template in QUERIES {
            let sql = template.replace("{t}", table);
            let mut samples = Vec::with_capacity(runs);
            let mut result_rows = 0;
            query(&mut client, &sql).await?; // warm-up
            for _ in 0..runs {
                if table == "flows_by_id" {
                    // A change before every query, so each one rebuilds the keyed table's rows
                    // (the worst case: a table that updates faster than it is queried).
                    let one = batches[0].slice(0, 1);
                    keyed.apply_changes(&one, &arrow::array::Int8Array::from(vec![ChangeOp::UpdateBefore as i8]))?;
                    keyed.apply_changes(&one, &arrow::array::Int8Array::from(vec![ChangeOp::Insert as i8]))?;
                }
                let started = Instant::now();
                let answer = query(&mut client, &sql).await?;
                samples.push(started.elapsed().as_secs_f64() * 1e3);
                result_rows = answer.iter().map(RecordBatch::num_rows).sum();
            }
            let result = LatencyResult {
                table: if table == "flows" { "append (windowed results)" } else { "keyed (updating results)" },
                query: template,
                result_rows,
                p50_ms: percentile(&mut samples, 50.0),
                p99_ms: percentile(&mut samples, 99.0),
            };
            eprintln!("  {table}: {template}: p50 {:.1} ms, p99 {:.1} ms", result.p50_ms, result.p99_ms);
            results.push(result);
        }
    }
    server.stop().await?;
    Ok(results)
}

/// Freshness at one input rate and update interval.
pub struct FreshnessResult {
    pub rate: u64,
    pub update_interval: &'static str,
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub async fn freshness(rate: u64, update_interval: &'static str, seconds: u64) -> anyhow::Result<FreshnessResult> {
    let catalog = LiveCatalog::new();
    let registry = Connectors::builtin()
        .with(Arc::new(LiveConnector::new(catalog.clone())))
        .with(Arc::new(ClockConnector::default()));
    let mut session = Session::new(Arc::new(registry));
    let sql = format!(
        "SET 'update-interval' = '{update_interval}';\n\
         CREATE TABLE clock WITH ('connector' = 'clock', 'rows-per-second' = '{rate}', 'seconds' = '{seconds}');\n\
         CREATE MATERIALIZED VIEW newest AS SELECT k % 10 AS part, MAX(emitted_at) AS at FROM clock GROUP BY k % 10;"
    );
    let specs = session.execute(&sql).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let server = FlightSqlServer::bind("127.0.0.1:0".parse()?, catalog.clone(), None, QueryLimits::default())?.spawn();
    let pipelines: Vec<_> = specs.into_iter().map(runtime::start).collect();
    // The live table exists once its pipeline's sink has opened.
    while catalog.tables().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut client = client(server.address).await?;
    let mut samples = Vec::new();
    let warmup = Instant::now() + Duration::from_secs(1);
    let end = Instant::now() + Duration::from_secs(seconds.saturating_sub(1));
    while Instant::now() < end {
        let answer = query(&mut client, "SELECT MAX(at) FROM newest").await?;
        let received = now_ms();
        let newest = answer.first().map(|b| b.column(0).as_primitive::<Int64Type>()).filter(|a| !a.is_null(0));
        if let Some(newest) = newest
            && Instant::now() > warmup
        {
            samples.push((received - newest.value(0)) as f64);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pipeline in pipelines {
        let report = pipeline.join().await?;
        if report.metrics.rows_in == 0 {
            bail!("the clock produced no rows");
        }
    }
    server.stop().await?;
    let n = samples.len();
    let result = FreshnessResult {
        rate,
        update_interval,
        samples: n,
        p50_ms: percentile(&mut samples, 50.0),
        p99_ms: percentile(&mut samples, 99.0),
    };
    eprintln!(
        "  {rate} rows/s, update-interval {update_interval}: freshness p50 {:.1} ms, p99 {:.1} ms ({n} queries)",
        result.p50_ms, result.p99_ms
    );
    Ok(result)
}

pub fn markdown(rows: u64, latency: &[LatencyResult], fresh: &[FreshnessResult]) -> String {
    let mut out = format!(
        "Query latency over Flight SQL (GetFlightInfo + DoGet, Rust client on loopback) on live tables of {rows} netflow rows:\n\n\
         | table | query | result rows | p50 | p99 |\n|---|---|---:|---:|---:|\n"
    );
    for r in latency {
        out.push_str(&format!(
            "| {} | `{}` | {} | {:.1} ms | {:.1} ms |\n",
            r.table,
            r.query.replace("{t}", "t"),
            r.result_rows,
            r.p50_ms,
            r.p99_ms
        ));
    }
    out.push_str(
        "\nFreshness: age of the newest event visible to a query (`now - MAX(emitted_at)` over an updating \
         aggregate in a live table), polled every 20 ms while the input runs at a steady rate:\n\n\
         | input rows/s | update-interval | queries | p50 | p99 |\n|---:|---|---:|---:|---:|\n",
    );
    for r in fresh {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} ms | {:.0} ms |\n",
            r.rate, r.update_interval, r.samples, r.p50_ms, r.p99_ms
        ));
    }
    out
}
