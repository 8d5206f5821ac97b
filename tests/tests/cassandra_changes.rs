//! The Cassandra sink's updating results, clustering order and TTL, against a real Apache
//! Cassandra started by `scripts/cassandra.sh` (never skipped).

use std::collections::BTreeMap;

use streamsql_tests::cassandra::{self, HOSTS, KEYSPACE};
use streamsql_tests::{Cell, TestDir, read_jsonl, run_script};

fn options(table: &str, extra: &str) -> String {
    format!(
        "'connector' = 'cassandra', 'hosts' = '{HOSTS}', 'keyspace' = '{KEYSPACE}', 'table' = '{table}', 'create-table' = 'true'{extra}"
    )
}

/// Netflow rows into a file (for the expected counts) and `query` over them into Cassandra.
fn script(dir: &TestDir, sink: &str, query: &str) -> String {
    format!(
        "SET 'parallelism.default' = '2';
         CREATE TABLE flows (ts TIMESTAMP(3), flow_type STRING, app STRING, bytes_in BIGINT,
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'netflow', 'number-of-rows' = '20000', 'seed' = '5');
         CREATE TABLE raw (flow_type STRING, app STRING, bytes_in BIGINT)
           WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         {sink}
         INSERT INTO raw SELECT flow_type, app, bytes_in FROM flows;
         {query}",
        dir.sql_path("raw.jsonl")
    )
}

/// (count, sum of bytes_in) per app, from the rows the file sink got.
fn counts_per_app(dir: &TestDir) -> BTreeMap<String, (i64, i64)> {
    let mut counts: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for row in read_jsonl(&dir.file("raw.jsonl")) {
        let entry = counts.entry(row["app"].as_str().expect("app").to_string()).or_default();
        entry.0 += 1;
        entry.1 += row["bytes_in"].as_i64().expect("bytes_in");
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updating_aggregate_is_upserted_by_key() {
    cassandra::ensure_running();
    let dir = TestDir::new("cassandra-updating");
    let table = cassandra::unique_table("per_app");
    let sink = format!(
        "CREATE TABLE per_app (app STRING, flows BIGINT, bytes BIGINT, PRIMARY KEY (app) NOT ENFORCED) WITH ({});",
        options(&table, "")
    );
    let query = "INSERT INTO per_app SELECT app, COUNT(*), SUM(bytes_in) FROM flows GROUP BY app;";
    run_script(&script(&dir, &sink, query)).await.expect("pipelines run");
    let session = cassandra::connect().await;
    let mut written: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for row in cassandra::select_rows(&session, &table, &["app", "flows", "bytes"]).await {
        let [Cell::Str(app), Cell::Int(flows), Cell::Int(bytes)] = row.as_slice() else { panic!("row {row:?}") };
        written.insert(app.clone(), (*flows, *bytes));
    }
    assert_eq!(written, counts_per_app(&dir), "one row per app with its final count and sum");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_stop_qualifying_are_deleted() {
    cassandra::ensure_running();
    let dir = TestDir::new("cassandra-having");
    let table = cassandra::unique_table("small_apps");
    let sink = format!(
        "CREATE TABLE small_apps (app STRING, flows BIGINT, PRIMARY KEY (app) NOT ENFORCED) WITH ({});",
        options(&table, "")
    );
    // Every app passes 400 flows at some point: its row is written, then deleted, unless it
    // ends below.
    let query = "INSERT INTO small_apps SELECT app, COUNT(*) FROM flows GROUP BY app HAVING COUNT(*) < 400;";
    run_script(&script(&dir, &sink, query)).await.expect("pipelines run");
    let expected: BTreeMap<String, i64> =
        counts_per_app(&dir).into_iter().filter(|(_, (n, _))| *n < 400).map(|(app, (n, _))| (app, n)).collect();
    let session = cassandra::connect().await;
    let mut written: BTreeMap<String, i64> = BTreeMap::new();
    for row in cassandra::select_rows(&session, &table, &["app", "flows"]).await {
        let [Cell::Str(app), Cell::Int(flows)] = row.as_slice() else { panic!("row {row:?}") };
        written.insert(app.clone(), *flows);
    }
    assert_eq!(written, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_tables_get_the_clustering_order_and_rows_a_ttl() {
    cassandra::ensure_running();
    let dir = TestDir::new("cassandra-order-ttl");
    let table = cassandra::unique_table("latest");
    let sink = format!(
        "CREATE TABLE latest (flow_type STRING, window_start TIMESTAMP(3), flows BIGINT,
           PRIMARY KEY (flow_type, window_start) NOT ENFORCED)
         WITH ({});",
        options(&table, ", 'clustering-order' = 'window_start DESC', 'sink.ttl' = '2 d'")
    );
    let query = "INSERT INTO latest SELECT flow_type, window_start, COUNT(*)
                 FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND))
                 GROUP BY flow_type, window_start, window_end;";
    run_script(&script(&dir, &sink, query)).await.expect("pipelines run");
    let session = cassandra::connect().await;
    let order = format!(
        "SELECT clustering_order FROM system_schema.columns WHERE keyspace_name = '{KEYSPACE}' AND table_name = '{}' AND column_name = 'window_start'",
        table.to_lowercase()
    );
    let rows = session.query_unpaged(order.as_str(), &[]).await.expect("schema").into_rows_result().expect("rows");
    let (clustering_order,) = rows.first_row::<(String,)>().expect("window_start is a column");
    assert_eq!(clustering_order, "desc");
    // The newest window of a partition comes first, and every row carries the TTL.
    let rows = cassandra::select_rows(&session, &table, &["flow_type", "window_start", "TTL(flows)"]).await;
    assert!(rows.len() > 10);
    let mut previous: Option<(String, i64)> = None;
    for row in &rows {
        let [Cell::Str(flow_type), Cell::Ts(start), Cell::Int(ttl)] = row.as_slice() else { panic!("row {row:?}") };
        assert!((2 * 86_400 - 600..=2 * 86_400).contains(ttl), "TTL {ttl}");
        if let Some((previous_type, previous_start)) = &previous
            && previous_type == flow_type
        {
            assert!(previous_start > start, "descending within a partition");
        }
        previous = Some((flow_type.clone(), *start));
    }
}

#[test]
fn updating_results_need_a_primary_key_and_the_order_names_clustering_columns() {
    let base = "CREATE TABLE flows (ts TIMESTAMP(3), app STRING, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
                WITH ('connector' = 'netflow', 'number-of-rows' = '10');";
    let no_key = format!(
        "{base} CREATE TABLE c (app STRING, n BIGINT) WITH ({});
         INSERT INTO c SELECT app, COUNT(*) FROM flows GROUP BY app;",
        options("t", "").replace("'create-table' = 'true'", "'create-table' = 'false'")
    );
    let message = streamsql_tests::describe_sql_error(&streamsql_tests::plan(&no_key).expect_err("no key"));
    assert!(message.contains("declare PRIMARY KEY"), "{message}");
    let wrong_order = format!(
        "{base} CREATE TABLE c (app STRING, ts TIMESTAMP(3), PRIMARY KEY (app, ts) NOT ENFORCED)
           WITH ({});
         INSERT INTO c SELECT app, ts FROM flows;",
        options("t", ", 'clustering-order' = 'app DESC'")
    );
    let message = streamsql_tests::describe_sql_error(&streamsql_tests::plan(&wrong_order).expect_err("order"));
    assert!(message.contains("clustering columns in key order (ts)"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_written_in_the_types_of_a_table_declared_in_cql() {
    cassandra::ensure_running();
    let dir = TestDir::new("cassandra-declared");
    let table = cassandra::unique_table("declared");
    let session = cassandra::connect().await;
    cassandra::execute(
        &session,
        &format!(
            "CREATE TABLE {KEYSPACE}.{table} (id bigint, seen timestamp, n bigint, small int, name ascii, v double,
               PRIMARY KEY (id, seen)) WITH CLUSTERING ORDER BY (seen DESC)"
        ),
    )
    .await;
    let rows = [
        serde_json::json!({"id": 1, "seen": "2024-01-01 00:00:01", "n": 7, "small": 3, "name": "plain", "v": 1.5}),
        serde_json::json!({"id": 1, "seen": "2024-01-01 00:00:02", "n": -2147483648, "small": -1, "name": "", "v": -0.25}),
    ];
    streamsql_tests::write_jsonl(&dir.file("in.jsonl"), rows.iter());
    let columns = "id INT, seen TIMESTAMP(3), n INT, small SMALLINT, name STRING, v FLOAT";
    let script_with = |input: &str, sink_columns: &str| {
        format!(
            "CREATE TABLE src ({columns}) WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');
             CREATE TABLE dst ({sink_columns})
               WITH ('connector' = 'cassandra', 'hosts' = '{HOSTS}', 'keyspace' = '{KEYSPACE}', 'table' = '{table}');
             INSERT INTO dst SELECT * FROM src;"
        )
    };
    let script = |input: &str| script_with(input, columns);
    run_script(&script(&dir.sql_path("in.jsonl")))
        .await
        .expect("INT into bigint, FLOAT into double, STRING into ascii");
    let written = cassandra::select_rows(&session, &table, &["id", "seen", "n", "small", "name", "v"]).await;
    let shown: Vec<String> = written.iter().map(|r| streamsql_tests::show_row(r)).collect();
    assert_eq!(
        shown,
        [
            "[1, 2024-01-01 00:00:02.000, -2147483648, -1, \"\", -0.25]",
            "[1, 2024-01-01 00:00:01.000, 7, 3, \"plain\", 1.5]",
        ],
        "newest first (the table's clustering order)"
    );
    // A value an ascii column cannot hold fails the pipeline, naming it.
    streamsql_tests::write_jsonl(
        &dir.file("bad.jsonl"),
        [serde_json::json!({"id": 2, "seen": "2024-01-01 00:00:03", "n": 1, "small": 1, "name": "héllo", "v": 0.0})]
            .iter(),
    );
    let error = run_script(&script(&dir.sql_path("bad.jsonl"))).await.expect_err("not ASCII").to_string();
    assert!(error.contains("'héllo' is not ASCII"), "{error}");
    // A narrower column than the values is refused when the pipeline is planned.
    let narrow =
        script_with(&dir.sql_path("in.jsonl"), "id INT, seen TIMESTAMP(3), n INT, small BIGINT, name STRING, v FLOAT");
    let message = streamsql_tests::describe_sql_error(&streamsql_tests::plan(&narrow).expect_err("bigint into int"));
    assert!(message.contains("column 'small' is int"), "{message}");
}
