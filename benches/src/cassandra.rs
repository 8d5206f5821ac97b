//! Writing into a real Cassandra (started with `scripts/cassandra.sh start`): rows per second and
//! write latency through the sink's writer, at several concurrency limits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use streamsql_connectors::cassandra::CassandraWriter;
use streamsql_connectors::netflow::{NetflowGenerator, NetflowOptions, netflow_schema};
use streamsql_engine::connector::{Connector, Role, TableDef};

/// One measured configuration.
pub struct CassandraResult {
    pub concurrency: usize,
    pub rows: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn table(name: &str, concurrency: usize) -> TableDef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let options: BTreeMap<String, String> = [
        ("connector", "cassandra".to_string()),
        ("hosts", "127.0.0.1:9042".into()),
        ("keyspace", "streamsql_bench".into()),
        ("table", name.to_string()),
        ("create-table", "true".into()),
        ("consistency", "ONE".into()),
        ("max-concurrent-requests", concurrency.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    TableDef {
        name: name.to_string(),
        schema: Arc::new(Schema::new(vec![
            Field::new("flow_id", DataType::Int64, true),
            Field::new("ts", ts, true),
            Field::new("src_ip", DataType::Utf8, true),
            Field::new("flow_type", DataType::Utf8, true),
            Field::new("bytes_in", DataType::Int64, true),
        ])),
        options,
        watermark: None,
        primary_key: vec!["flow_id".into()],
        computed: Vec::new(),
    }
}

pub fn run(rows: u64) -> anyhow::Result<Vec<CassandraResult>> {
    let mut generator =
        NetflowGenerator::new(NetflowOptions { number_of_rows: Some(rows), ..NetflowOptions::default() });
    let full = netflow_schema();
    let columns = ["flow_id", "ts", "src_ip", "flow_type", "bytes_in"]
        .iter()
        .map(|c| full.index_of(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut batches = Vec::new();
    while let Some(batch) = generator.next_batch(8192) {
        batches.push(batch.project(&columns)?);
    }
    let connector = streamsql_connectors::cassandra::CassandraConnector;
    let mut results = Vec::new();
    for concurrency in [16, 64, 256] {
        let def = table(&format!("flows_c{concurrency}"), concurrency);
        connector.validate(&def, Role::Sink)?;
        connector.check_external(&def, Role::Sink).context("is Cassandra running? scripts/cassandra.sh start")?;
        let mut writer = CassandraWriter::open(&def)?;
        let started = Instant::now();
        for batch in &batches {
            writer.write_batch(&RecordBatch::try_new(def.schema.clone(), batch.columns().to_vec())?)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let ms = |p: f64| writer.latency_percentile(p).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        results.push(CassandraResult {
            concurrency,
            rows: writer.rows_written(),
            seconds,
            p50_ms: ms(50.0),
            p99_ms: ms(99.0),
        });
        eprintln!(
            "  concurrency {concurrency}: {:.0} rows/s, p50 {:.2} ms, p99 {:.2} ms",
            rows as f64 / seconds,
            ms(50.0),
            ms(99.0)
        );
    }
    Ok(results)
}

pub fn markdown(results: &[CassandraResult]) -> String {
    let mut out = String::from(
        "| max-concurrent-requests | rows | seconds | rows/s | p50 write latency | p99 write latency |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.0} | {:.2} ms | {:.2} ms |\n",
            r.concurrency,
            r.rows,
            r.seconds,
            r.rows as f64 / r.seconds,
            r.p50_ms,
            r.p99_ms
        ));
    }
    out
}
