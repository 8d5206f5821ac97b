//! The `flight` sink against a real Arrow Flight server (pyarrow, `tests/clients/flight_put_server.py`):
//! every result row arrives once, at the declared path, also when the server refuses the first
//! calls (they are retried).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::Value;
use streamsql_tests::flight::{clients, repo};
use streamsql_tests::{Cell, Row, TestDir, diff_rows, rows_from_jsonl, run_script};

/// The put server, killed when dropped.
struct PutServer {
    child: Child,
    port: u16,
}

impl PutServer {
    fn start(out: &std::path::Path, fail_first: u32) -> PutServer {
        let mut child = Command::new(&clients().python)
            .arg(repo().join("tests/clients/flight_put_server.py"))
            .arg("--out")
            .arg(out)
            .args(["--fail-first", &fail_first.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Flight put server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the port");
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok());
        let port = port.unwrap_or_else(|| panic!("the put server said {line:?} instead of its port"));
        PutServer { child, port }
    }
}

impl Drop for PutServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_reach_a_flight_server_once_even_after_refusals() -> anyhow::Result<()> {
    let dir = TestDir::new("flight-sink");
    let received = dir.file("received.jsonl");
    let server = PutServer::start(&received, 2);
    let query = "SELECT window_start, flow_type, COUNT(*) AS flows, SUM(bytes_in) AS bytes_in \
                 FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY window_start, window_end, flow_type";
    let columns = "window_start TIMESTAMP(3), flow_type STRING, flows BIGINT, bytes_in BIGINT";
    let sql = format!(
        "SET 'execution.batch-size' = '500';\n\
         CREATE TABLE flows (ts TIMESTAMP(3), flow_type STRING, bytes_in BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
           WITH ('connector' = 'netflow', 'number-of-rows' = '40000', 'seed' = '7');\n\
         CREATE TABLE remote ({columns}) WITH ('connector' = 'flight', 'endpoint' = 'grpc://127.0.0.1:{port}', 'path' = 'netflow/counts');\n\
         CREATE TABLE local ({columns}) WITH ('connector' = 'file', 'path' = '{local}', 'format' = 'json');\n\
         INSERT INTO remote {query};\n\
         INSERT INTO local {query};\n",
        port = server.port,
        local = dir.sql_path("local.jsonl"),
    );
    let reports = run_script(&sql).await?;
    let (remote, local) = (reports[0].metrics, reports[1].metrics);
    assert_eq!(remote.rows_out, local.rows_out, "both sinks got every row");
    assert!(local.rows_out > 50, "too few rows to test: {}", local.rows_out);

    let schema = Schema::new(vec![
        Field::new("window_start", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("flow_type", DataType::Utf8, true),
        Field::new("flows", DataType::Int64, true),
        Field::new("bytes_in", DataType::Int64, true),
    ]);
    let expected = rows_from_jsonl(&dir.file("local.jsonl"), &schema)?;
    let text = std::fs::read_to_string(&received)?;
    let mut actual: Vec<Row> = Vec::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line)?;
        assert_eq!(row["_path"], "netflow/counts", "{line}");
        actual.push(vec![
            Cell::Ts(row["window_start"].as_i64().expect("a timestamp")),
            Cell::Str(row["flow_type"].as_str().expect("a string").to_string()),
            Cell::Int(row["flows"].as_i64().expect("a count")),
            Cell::Int(row["bytes_in"].as_i64().expect("a sum")),
        ]);
    }
    if let Some(diff) = diff_rows(&expected, &actual, 0.0) {
        panic!("the Flight server received other rows than the file sink wrote: {diff}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_the_pipeline_with_its_address() {
    let sql = "CREATE TABLE flows WITH ('connector' = 'netflow', 'number-of-rows' = '100');\n\
               CREATE TABLE remote (flow_type STRING) WITH ('connector' = 'flight', 'endpoint' = 'grpc://127.0.0.1:9', \
                 'path' = 'x', 'retry.max-duration' = '300 ms');\n\
               INSERT INTO remote SELECT flow_type FROM flows;";
    let error = run_script(sql).await.expect_err("no server listens on port 9").to_string();
    assert!(error.contains("DoPut to http://127.0.0.1:9 failed"), "{error}");
}
