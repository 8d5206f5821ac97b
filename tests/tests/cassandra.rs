//! The Cassandra sink against a real Apache Cassandra started by `scripts/cassandra.sh`.
//! These tests fail (never skip) when Cassandra cannot be started or reached.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::json;
use streamsql_tests::cassandra::{self, HOSTS, KEYSPACE};
use streamsql_tests::{TestDir, diff_rows, plan, rows_from_jsonl, run_script, sort_rows, write_jsonl};

fn cassandra_options(table: &str, create: bool) -> String {
    format!(
        "'connector' = 'cassandra', 'hosts' = '{HOSTS}', 'keyspace' = '{KEYSPACE}', 'table' = '{table}', 'create-table' = '{create}'"
    )
}

/// The netflow job of pipelines/netflow-cassandra.sql, writing to Cassandra and to a file.
fn netflow_script(table: &str, file: &str) -> String {
    format!(
        "SET 'parallelism.default' = '2';
         CREATE TABLE flows (ts TIMESTAMP(3), flow_type STRING, dst_port INT, bytes_in BIGINT,
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'netflow', 'number-of-rows' = '30000', 'seed' = '7');
         CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING, flows BIGINT,
           avg_bytes_in DOUBLE, PRIMARY KEY (flow_type, window_start) NOT ENFORCED)
         WITH ({});
         CREATE TABLE expected (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING, flows BIGINT,
           avg_bytes_in DOUBLE) WITH ('connector' = 'file', 'path' = '{file}', 'format' = 'json');
         CREATE VIEW windows AS
           SELECT window_start, window_end, flow_type, COUNT(*) AS flows, AVG(bytes_in) AS avg_bytes_in
           FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND))
           GROUP BY window_start, window_end, flow_type;
         INSERT INTO counts SELECT * FROM windows;
         INSERT INTO expected SELECT * FROM windows;",
        cassandra_options(table, true)
    )
}

fn counts_schema() -> Schema {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    Schema::new(vec![
        Field::new("window_start", ts.clone(), true),
        Field::new("window_end", ts, true),
        Field::new("flow_type", DataType::Utf8, true),
        Field::new("flows", DataType::Int64, true),
        Field::new("avg_bytes_in", DataType::Float64, true),
    ])
}

const COUNT_COLUMNS: [&str; 5] = ["window_start", "window_end", "flow_type", "flows", "avg_bytes_in"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_results_land_in_cassandra_and_replays_are_idempotent() {
    cassandra::ensure_running();
    let dir = TestDir::new("cassandra-netflow");
    let table = cassandra::unique_table("counts");
    let script = netflow_script(&table, &dir.sql_path("expected.jsonl"));
    let reports = run_script(&script).await.expect("pipelines run");
    assert_eq!(reports[0].metrics.late_rows, 0);
    let mut expected = rows_from_jsonl(&dir.file("expected.jsonl"), &counts_schema()).expect("file output");
    assert!(expected.len() > 40, "expected dozens of windows, got {}", expected.len());

    let session = cassandra::connect().await;
    let mut written = cassandra::select_rows(&session, &table, &COUNT_COLUMNS).await;
    sort_rows(&mut expected);
    sort_rows(&mut written);
    if let Some(diff) = diff_rows(&expected, &written, 1e-9) {
        panic!("Cassandra rows differ from the file sink's:\n{diff}");
    }

    // The same pipeline again: upserts keyed by (flow_type, window_start) leave the same rows.
    run_script(&script).await.expect("pipelines run again");
    let mut again = cassandra::select_rows(&session, &table, &COUNT_COLUMNS).await;
    sort_rows(&mut again);
    assert!(diff_rows(&expected, &again, 1e-9).is_none(), "a replay changed the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sql_type_round_trips_with_nulls() {
    cassandra::ensure_running();
    let dir = TestDir::new("cassandra-types");
    let table = cassandra::unique_table("types");
    let rows = [
        json!({"id": 1, "s": "héllo, 'quoted'", "b": true, "i": -7, "l": 9007199254740993i64, "f": 1.5, "d": -2.25,
               "m": "12345.67", "dt": "2016-04-01", "ts": "2016-04-01 09:00:00.123"}),
        json!({"id": 2, "s": "", "b": false, "i": 2147483647, "l": -1, "f": -0.5, "d": 1e300,
               "m": "-0.01", "dt": "1969-12-31", "ts": "1969-12-31 23:59:59.999"}),
        json!({"id": 3, "s": null, "b": null, "i": null, "l": null, "f": null, "d": null, "m": null, "dt": null, "ts": null}),
    ];
    write_jsonl(&dir.file("in.jsonl"), rows.iter());
    let columns = "id BIGINT, s STRING, b BOOLEAN, i INT, l BIGINT, f FLOAT, d DOUBLE, m DECIMAL(10, 2), dt DATE, ts TIMESTAMP(3)";
    let script = format!(
        "CREATE TABLE src ({columns}) WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');
         CREATE TABLE dst ({columns}, PRIMARY KEY (id) NOT ENFORCED) WITH ({options});
         CREATE TABLE copy ({columns}) WITH ('connector' = 'file', 'path' = '{copy}', 'format' = 'json');
         INSERT INTO dst SELECT * FROM src;
         INSERT INTO copy SELECT * FROM src;",
        input = dir.sql_path("in.jsonl"),
        copy = dir.sql_path("copy.jsonl"),
        options = cassandra_options(&table, true)
    );
    run_script(&script).await.expect("pipelines run");
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("i", DataType::Int32, true),
        Field::new("l", DataType::Int64, true),
        Field::new("f", DataType::Float32, true),
        Field::new("d", DataType::Float64, true),
        Field::new("m", DataType::Decimal128(10, 2), true),
        Field::new("dt", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]);
    let mut expected = rows_from_jsonl(&dir.file("copy.jsonl"), &schema).expect("file copy");
    let session = cassandra::connect().await;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut written = cassandra::select_rows(&session, &table, &names).await;
    sort_rows(&mut expected);
    sort_rows(&mut written);
    if let Some(diff) = diff_rows(&expected, &written, 1e-9) {
        panic!("Cassandra rows differ from the input:\n{diff}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_a_plan_error_showing_the_cql() {
    cassandra::ensure_running();
    let table = cassandra::unique_table("missing");
    let script = format!(
        "CREATE TABLE src (k STRING, n BIGINT) WITH ('connector' = 'file', 'path' = '/dev/null', 'format' = 'json');
         CREATE TABLE dst (k STRING, n BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ({});
         INSERT INTO dst SELECT k, n FROM src;",
        cassandra_options(&table, false)
    );
    let error = tokio::task::spawn_blocking(move || plan(&script)).await.expect("plan").expect_err("must not plan");
    let message = error.message();
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains(&format!("CREATE TABLE IF NOT EXISTS \"{KEYSPACE}\".\"{table}\"")), "{message}");
    assert!(message.contains("PRIMARY KEY (\"k\")"), "{message}");
    assert!(message.contains("'create-table' = 'true'"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatched_column_type_is_a_plan_error_naming_the_column() {
    cassandra::ensure_running();
    let table = cassandra::unique_table("mismatch");
    let session = cassandra::connect().await;
    cassandra::execute(
        &session,
        &format!(
            "CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
    )
    .await;
    cassandra::execute(&session, &format!("CREATE TABLE {KEYSPACE}.{table} (k text PRIMARY KEY, flows text)")).await;
    let script = format!(
        "CREATE TABLE src (k STRING, n BIGINT) WITH ('connector' = 'file', 'path' = '/dev/null', 'format' = 'json');
         CREATE TABLE dst (k STRING, flows BIGINT) WITH ({});
         INSERT INTO dst SELECT k, n FROM src;",
        cassandra_options(&table, false)
    );
    let error = tokio::task::spawn_blocking(move || plan(&script)).await.expect("plan").expect_err("must not plan");
    let message = error.message();
    assert!(message.contains("column 'flows' is text"), "{message}");
    assert!(message.contains("the sink writes bigint"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cassandra_is_named_in_the_error() {
    let script = "CREATE TABLE src (k STRING) WITH ('connector' = 'file', 'path' = '/dev/null', 'format' = 'json');
         CREATE TABLE dst (k STRING, PRIMARY KEY (k) NOT ENFORCED)
           WITH ('connector' = 'cassandra', 'hosts' = '127.0.0.1:1', 'keyspace' = 'ks', 'table' = 't', 'connect-timeout' = '2');
         INSERT INTO dst SELECT k FROM src;";
    let error = tokio::task::spawn_blocking(move || plan(script)).await.expect("plan").expect_err("must not plan");
    let message = error.message();
    assert!(message.contains("cannot connect to Cassandra at 127.0.0.1:1"), "{message}");
}
