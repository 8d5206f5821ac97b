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
