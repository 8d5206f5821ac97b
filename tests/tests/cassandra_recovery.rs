//! Checkpoints into a real Cassandra (started by `scripts/cassandra.sh`): the `streamsql`
//! binary is killed with SIGKILL at random points and started again; the table ends up equal
//! to the batch oracle's rows — upserts by primary key make the rows written again after each
//! restore harmless. Fails (never skips) when Cassandra cannot be started.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use streamsql_connectors::netflow::{NetflowGenerator, NetflowOptions};
use streamsql_tests::cassandra::{self, HOSTS, KEYSPACE};
use streamsql_tests::oracle::{Event, Oracle, Query, Window};
use streamsql_tests::{TestDir, diff_rows, sort_rows};

/// The `streamsql` binary `cargo test --workspace` builds next to this test's directory.
fn streamsql() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let binary = exe.parent().and_then(|deps| deps.parent()).map(|dir| dir.join("streamsql")).expect("target dir");
    assert!(binary.exists(), "{} is missing: build it with `cargo build -p streamsql-cli`", binary.display());
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_into_cassandra_killed_at_random_points_equal_the_oracle() {
    cassandra::ensure_running();
    let dir = TestDir::new("cassandra-recovery");
    let table = cassandra::unique_table("recovered");
    let rows: u64 = 500_000;
    let source = format!(
        "CREATE TABLE flows (ts TIMESTAMP(3), flow_type STRING, bytes_in BIGINT,
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'netflow', 'number-of-rows' = '{rows}', 'rows-per-second' = '100000',
           'event-time.rows-per-second' = '1000', 'max-out-of-orderness' = '1500', 'seed' = '3');"
    );
    let script = dir.file("job.sql");
    std::fs::write(
        &script,
        format!(
            "SET 'execution.checkpointing.interval' = '150 ms';
             SET 'parallelism.default' = '2';
             {source}
             CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING,
               flows BIGINT, bytes BIGINT, PRIMARY KEY (flow_type, window_start) NOT ENFORCED)
             WITH ('connector' = 'cassandra', 'hosts' = '{HOSTS}', 'keyspace' = '{KEYSPACE}', 'table' = '{table}',
               'create-table' = 'true');
             INSERT INTO counts SELECT window_start, window_end, flow_type, COUNT(*), SUM(bytes_in)
             FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND))
             GROUP BY window_start, window_end, flow_type;"
        ),
    )
    .expect("write job");
    let state = dir.file("state");
    let run = || {
        Command::new(streamsql())
            .args(["-f", script.to_str().expect("utf-8"), "--state-dir", state.to_str().expect("utf-8")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn streamsql")
    };
    // Kill points 0.3–0.8 s into each run (fixed seed); each run reads at most 80,000 rows.
    let mut seed: u64 = 2026;
    let mut killed = 0;
    let report = loop {
        let mut child = run();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(300 + (seed >> 33) % 500));
        if killed < 10 && child.try_wait().expect("poll").is_none() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            killed += 1;
            continue;
        }
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(output.status.code(), Some(0), "after {killed} kills: {stderr}");
        break stderr;
    };
    assert_eq!(killed, 10, "the job ended before its tenth kill: {report}");
    assert!(report.contains("resumed from checkpoint"), "{report}");

    // The oracle: the same rows (the generator is deterministic by seed), windowed as a batch
    // by DataFusion under the event-time contract.
    let options = NetflowOptions {
        number_of_rows: Some(rows),
        seed: 3,
        event_rows_per_second: 1000,
        max_out_of_orderness_ms: 1500,
        ..NetflowOptions::default()
    };
    let mut generator = NetflowGenerator::new(options);
    let mut events = Vec::new();
    while let Some(batch) = generator.next_batch(8192) {
        let schema = batch.schema();
        let column = |name: &str| batch.column(schema.index_of(name).expect("netflow column")).clone();
        let (ts, flow_type, bytes) = (column("ts"), column("flow_type"), column("bytes_in"));
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let (flow_type, bytes) = (flow_type.as_string::<i32>(), bytes.as_primitive::<Int64Type>());
        for i in 0..batch.num_rows() {
            events.push(Event {
                ts: ts.value(i),
                k: Some(flow_type.value(i).to_string()),
                k2: None,
                v: Some(bytes.value(i)),
                d: None,
                p: None,
                ok: None,
                day: None,
            });
        }
    }
    let query = Query {
        select: "window_start, window_end, k AS flow_type, COUNT(*) AS flows, SUM(v) AS bytes".into(),
        filter: None,
        group_by: "window_start, window_end, k".into(),
        having: None,
    };
    let expected = Oracle::run(&events, 1000, Window::Tumble { size_s: 5 }, &query).await.expect("oracle");
    assert!(expected.late_rows > 0, "the input has late rows");
    let expected = expected.rows;
    let session = cassandra::connect().await;
    let mut written =
        cassandra::select_rows(&session, &table, &["window_start", "window_end", "flow_type", "flows", "bytes"]).await;
    let mut expected = expected;
    sort_rows(&mut expected);
    sort_rows(&mut written);
    if let Some(diff) = diff_rows(&expected, &written, 0.0) {
        panic!("after {killed} kills, Cassandra differs from the oracle:\n{diff}");
    }
}
