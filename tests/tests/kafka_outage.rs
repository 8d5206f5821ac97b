//! The broker goes away for 15 s while a pipeline writes to it and reads from it, then comes
//! back: at least once, no row is missing. (A test binary of its own: it stops the broker
//! that the other Kafka tests use.)

use std::collections::BTreeSet;
use std::time::Duration;

use streamsql_tests::kafka::{BOOTSTRAP, consume, new_topic, run_script as kafka_script};
use streamsql_tests::{TestDir, describe_sql_error, plan, read_jsonl};

const ROWS: i64 = 40_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_away_for_15_s_loses_no_row() {
    let topic = new_topic("it-outage", 3);
    let dir = TestDir::new("kafka-outage");
    // 2,000 generated flows per second for 20 s go to Kafka; a second pipeline copies the topic
    // to a file as they arrive. Both keep running while the broker is stopped and restarted.
    let write = format!(
        "CREATE TABLE flows WITH ('connector' = 'netflow', 'rows-per-second' = '2000', 'number-of-rows' = '{ROWS}');\n\
         CREATE TABLE topic_out (flow_id BIGINT, ts TIMESTAMP(3), src_ip STRING, bytes_in BIGINT)\n\
         WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{BOOTSTRAP}',\n\
         \x20 'format' = 'json', 'key.format' = 'raw', 'key.fields' = 'src_ip');\n\
         INSERT INTO topic_out SELECT flow_id, ts, src_ip, bytes_in FROM flows;\n"
    );
    let read = format!(
        "CREATE TABLE topic_in (flow_id BIGINT, ts TIMESTAMP(3), src_ip STRING, bytes_in BIGINT)\n\
         WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{BOOTSTRAP}',\n\
         \x20 'scan.startup.mode' = 'earliest-offset', 'format' = 'json');\n\
         CREATE TABLE copy (flow_id BIGINT) WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
         INSERT INTO copy SELECT flow_id FROM topic_in;\n",
        path = dir.sql_path("copy.jsonl"),
    );
    let start = |sql: &str| {
        let mut specs = plan(sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
        streamsql_engine::runtime::start(specs.remove(0))
    };
    let writer = start(&write);
    let reader = start(&read);
    let reader_control = reader.control();

    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::spawn_blocking(|| kafka_script(&["stop"], true)).await.expect("stop Kafka");
    let stopped = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    tokio::task::spawn_blocking(|| kafka_script(&["start"], true)).await.expect("start Kafka");
    eprintln!("the broker was away for {:.1?}", stopped.elapsed());

    let report = tokio::time::timeout(Duration::from_secs(240), writer.join())
        .await
        .expect("the writer ends once the broker is back")
        .expect("the writer succeeds: every record is delivered");
    assert_eq!(report.metrics.rows_in, ROWS as u64);
    assert_eq!(report.metrics.rows_out, ROWS as u64);

    // Every flow is in the topic (at least once: duplicates would be allowed, gaps are not).
    let written: Vec<i64> = consume(&topic)
        .iter()
        .map(|r| {
            let row: serde_json::Value = serde_json::from_str(r.value.as_deref().expect("a value")).expect("JSON");
            row["flow_id"].as_i64().expect("flow_id")
        })
        .collect();
    let distinct: BTreeSet<i64> = written.iter().copied().collect();
    assert_eq!(distinct.len() as i64, ROWS, "flows missing from the topic ({} records)", written.len());

    // The reader, which lived through the outage too, catches up with every record.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while reader_control.metrics().rows_in < written.len() as u64 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    reader_control.cancel();
    let report = reader.join().await.expect("the reader stops cleanly");
    let copied: BTreeSet<i64> =
        read_jsonl(&dir.file("copy.jsonl")).iter().map(|r| r["flow_id"].as_i64().expect("flow_id")).collect();
    assert_eq!(report.metrics.rows_in, written.len() as u64, "the reader read every record once");
    assert_eq!(copied, distinct, "the reader missed flows");
}
