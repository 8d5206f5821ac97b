//! Kafka throughput against a real broker on this machine (`scripts/kafka.sh start`): the sink
//! writing netflow rows as JSON into a 4-partition topic, then the source reading them back to
//! the topic's end. CPU time is this process's (librdkafka's threads included, the broker's not).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arrow::record_batch::RecordBatch;
use streamsql_connectors::kafka::KafkaConnector;
use streamsql_connectors::netflow::{NetflowGenerator, NetflowOptions, netflow_schema};
use streamsql_engine::connector::{Connector, Pulled, Role, SourceContext, TableDef};
use streamsql_engine::metrics::PipelineMetrics;

use crate::cases::{cpu_seconds, peak_rss_bytes};

/// One measured direction.
pub struct KafkaResult {
    pub what: &'static str,
    pub rows: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
}

fn table(topic: &str, schema: arrow::datatypes::SchemaRef, extra: &[(&str, &str)]) -> TableDef {
    let mut options: BTreeMap<String, String> = [
        ("connector", "kafka"),
        ("topic", topic),
        ("properties.bootstrap.servers", "127.0.0.1:9092"),
        ("format", "json"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    options.insert("scan.startup.mode".into(), "earliest-offset".into());
    TableDef {
        name: topic.to_string(),
        schema,
        options,
        watermark: None,
        primary_key: Vec::new(),
        computed: Vec::new(),
    }
}

fn measure(what: &'static str, rows: u64, run: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<KafkaResult> {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    run()?;
    let result = KafkaResult {
        what,
        rows,
        seconds: wall.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds() - cpu,
        peak_rss_bytes: peak_rss_bytes(),
    };
    eprintln!(
        "  {what}: {:.0} rows/s, {:.0} rows per CPU-second",
        rows as f64 / result.seconds,
        rows as f64 / result.cpu_seconds.max(1e-9)
    );
    Ok(result)
}

pub fn run(rows: u64) -> anyhow::Result<Vec<KafkaResult>> {
    let schema = netflow_schema();
    let columns =
        ["ts", "src_ip", "flow_type", "bytes_in"].iter().map(|c| schema.index_of(c)).collect::<Result<Vec<_>, _>>()?;
    let mut generator =
        NetflowGenerator::new(NetflowOptions { number_of_rows: Some(rows), ..NetflowOptions::default() });
    let mut batches: Vec<RecordBatch> = Vec::new();
    while let Some(batch) = generator.next_batch(8192) {
        batches.push(batch.project(&columns)?);
    }
    let schema = batches.first().context("no rows generated")?.schema();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let topic = format!("bench-flows-{nanos}");

    let connector = KafkaConnector;
    let sink_table = table(
        &topic,
        schema.clone(),
        &[
            ("sink.create-topic", "true"),
            ("sink.create-topic.partitions", "4"),
            ("key.format", "raw"),
            ("key.fields", "src_ip"),
        ],
    );
    connector.validate(&sink_table, Role::Sink)?;
    connector.check_external(&sink_table, Role::Sink).context("is Kafka running? scripts/kafka.sh start")?;
    let mut results = Vec::new();
    results.push(measure("sink: JSON records, keyed, at least once", rows, || {
        let mut sink = connector.open_sink(&sink_table)?;
        for batch in &batches {
            sink.write(batch)?;
        }
        sink.finish()?;
        Ok(())
    })?);
    drop(batches);

    let source_table = table(&topic, schema, &[("scan.bounded.mode", "latest-offset")]);
    connector.validate(&source_table, Role::Source)?;
    let ctx = SourceContext {
        batch_size: 8192,
        metrics: Arc::new(PipelineMetrics::default()),
        instance: 0,
        instances: 1,
        parallelism: 1,
        checkpoints: false,
    };
    let mut read = 0_u64;
    results.push(measure("source: JSON records, 4 partitions, one reader", rows, || {
        let mut source = connector.open_source(&source_table, &ctx)?;
        loop {
            match source.pull()? {
                Pulled::Rows { batch, .. } => read += batch.num_rows() as u64,
                Pulled::Nothing => {}
                Pulled::End => break,
            }
        }
        Ok(())
    })?);
    anyhow::ensure!(read == rows, "read {read} of {rows} rows back");
    Ok(results)
}

pub fn markdown(results: &[KafkaResult]) -> String {
    let mut out = String::from(
        "| direction | rows | seconds | rows/s | rows per CPU-second | peak RSS |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.0} | {:.0} | {:.0} MiB |\n",
            r.what,
            r.rows,
            r.seconds,
            r.rows as f64 / r.seconds,
            r.rows as f64 / r.cpu_seconds.max(1e-9),
            r.peak_rss_bytes as f64 / (1 << 20) as f64
        ));
    }
    out
}
