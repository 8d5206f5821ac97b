//! Cassandra stopped for more than 10 seconds in the middle of a run: the sink waits, retries
//! and finishes with every row written. Its own test binary, so no other test sees the outage.

use std::time::{Duration, Instant};

use streamsql_tests::cassandra::{self, HOSTS, KEYSPACE};
use streamsql_tests::plan;

const ROWS: u64 = 24_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_rides_out_an_outage_and_writes_every_row() {
    cassandra::ensure_running();
    let table = cassandra::unique_table("outage");
    let script = format!(
        "CREATE TABLE flows (flow_id BIGINT, ts TIMESTAMP(3), flow_type STRING, bytes_in BIGINT)
         WITH ('connector' = 'netflow', 'rows-per-second' = '1000', 'number-of-rows' = '{ROWS}');
         CREATE TABLE dst (flow_id BIGINT, ts TIMESTAMP(3), flow_type STRING, bytes_in BIGINT,
           PRIMARY KEY (flow_id) NOT ENFORCED)
         WITH ('connector' = 'cassandra', 'hosts' = '{HOSTS}', 'keyspace' = '{KEYSPACE}', 'table' = '{table}',
               'create-table' = 'true', 'retry.max-duration' = '120');
         INSERT INTO dst SELECT * FROM flows;"
    );
    let specs = tokio::task::spawn_blocking(move || plan(&script)).await.expect("plan").expect("plans");
    let pipeline = streamsql_engine::runtime::start(specs.into_iter().next().expect("one pipeline"));
    let control = pipeline.control();

    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = control.metrics().rows_out;
    assert!(before > 0 && before < ROWS, "the outage must start mid-run (rows out: {before})");
    let down = Instant::now();
    tokio::task::spawn_blocking(|| cassandra::run_script("stop", true)).await.expect("stop");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let during = control.metrics().rows_out;
    // The sink's retries show while the outage lasts, not only once it is over.
    let retries_during = control.metrics().sink_retries;
    tokio::task::spawn_blocking(|| cassandra::run_script("start", true)).await.expect("restart");
    let outage = down.elapsed();

    let report = pipeline.join().await.expect("the pipeline survives the outage");
    assert_eq!(report.metrics.rows_out, ROWS);
    assert!(outage > Duration::from_secs(10), "outage lasted {outage:?}");
    assert!(during < ROWS, "the pipeline must have waited during the outage");
    assert!(retries_during > 0, "no sink retries counted during the outage");
    let sink = control.connectors().into_iter().find(|c| c.role == "sink").expect("the sink's counters");
    assert_eq!((sink.connector.as_str(), sink.sink_retries), ("cassandra", report.metrics.sink_retries));
    assert!(report.metrics.sink_retries >= retries_during);

    let session = cassandra::connect().await;
    let rows = cassandra::select_rows(&session, &table, &["flow_id"]).await;
    let mut ids: Vec<i64> = rows
        .iter()
        .map(|r| match r[0] {
            streamsql_tests::Cell::Int(id) => id,
            ref other => panic!("flow_id {other}"),
        })
        .collect();
    ids.sort_unstable();
    let expected: Vec<i64> = (0..ROWS as i64).collect();
    assert_eq!(ids.len(), expected.len(), "rows in Cassandra after the outage");
    assert_eq!(ids, expected);
}
