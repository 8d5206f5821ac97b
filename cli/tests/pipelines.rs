//! The workload pipelines of `pipelines/`, run by the binary on their embedded defaults, each
//! checked against an independent computation of the same results.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Map, Value};

mod common;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamsql-pipelines-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `streamsql -f pipelines/<file> -D ...` from the repository root; panics with its stderr when
/// it fails.
fn run_pipeline(file: &str, defines: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamsql"));
    command.current_dir(repo()).arg("-f").arg(format!("pipelines/{file}"));
    for (name, value) in defines {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    let output = command.output().expect("run streamsql");
    assert!(output.status.success(), "{file} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn read_jsonl(path: &Path) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(object)) => object,
            other => panic!("{}: not a JSON object: {other:?}", path.display()),
        })
        .collect()
}

/// The python of the statistics reference venv (pandas, statsmodels).
fn reference_python() -> String {
    let output =
        Command::new(repo().join("scripts/stats-reference.sh")).arg("python").output().expect("stats-reference.sh");
    assert!(output.status.success(), "scripts/stats-reference.sh: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("path").trim().to_string()
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("{value} is not a number"))
}

/// The handbook's pandas features of the transactions in `transactions` (by transaction id), and
/// the transactions sharing a second with another of their customer or terminal: pandas counts
/// the ones sorted before them, the RANGE frame all of them (peers), so those may differ.
fn fraud_reference(dir: &Path, transactions: &Path) -> (BTreeMap<i64, Map<String, Value>>, HashSet<i64>) {
    let reference = dir.join("reference.jsonl");
    let status = Command::new(reference_python())
        .arg(repo().join("tests/python/fraud_features.py"))
        .arg(transactions)
        .arg(&reference)
        .status()
        .expect("python");
    assert!(status.success(), "the handbook's feature code failed");
    let mut seen: HashMap<(&str, i64, String), usize> = HashMap::new();
    let rows = read_jsonl(transactions);
    for row in &rows {
        let time = row["tx_datetime"].as_str().expect("time").to_string();
        *seen.entry(("customer", row["customer_id"].as_i64().expect("id"), time.clone())).or_default() += 1;
        *seen.entry(("terminal", row["terminal_id"].as_i64().expect("id"), time)).or_default() += 1;
    }
    let tied = rows
        .iter()
        .filter(|row| {
            let time = row["tx_datetime"].as_str().expect("time").to_string();
            seen[&("customer", row["customer_id"].as_i64().expect("id"), time.clone())] > 1
                || seen[&("terminal", row["terminal_id"].as_i64().expect("id"), time)] > 1
        })
        .map(|row| row["transaction_id"].as_i64().expect("id"))
        .collect();
    let expected = read_jsonl(&reference).into_iter().map(|r| (r["transaction_id"].as_i64().expect("id"), r)).collect();
    (expected, tied)
}

/// Every feature row equals the handbook's (timestamps to the second).
fn check_fraud_features(
    features: &[Map<String, Value>],
    (expected, tied): &(BTreeMap<i64, Map<String, Value>>, HashSet<i64>),
) {
    assert_eq!(features.len(), expected.len(), "one feature row per transaction");
    let mut compared = 0;
    for row in features {
        let id = row["transaction_id"].as_i64().expect("id");
        let want = &expected[&id];
        for (column, value) in row {
            if column == "tx_datetime" {
                assert_eq!(value.as_str().map(|t| &t[..19]), want[column].as_str(), "transaction {id}");
                continue;
            }
            let (got, wanted) = (number(value), number(&want[column]));
            let close = (got - wanted).abs() <= 1e-9 * wanted.abs().max(1.0);
            assert!(
                close || tied.contains(&id),
                "transaction {id}: {column} is {got}, the handbook's code says {wanted}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 19 * features.len());
    // The features mean something: risk is seen on compromised terminals.
    let risky = features.iter().filter(|r| number(&r["terminal_id_risk_30day_window"]) > 0.0).count();
    assert!(risky > 100, "{risky} transactions with a terminal risk");
}

/// The smaller simulation the fraud tests run.
fn fraud_size(out: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("out", out.display().to_string()),
        ("days", "40".into()),
        ("customers", "500".into()),
        ("terminals", "1000".into()),
    ]
}

#[test]
fn fraud_features_equal_the_handbooks_pandas_code() {
    let dir = scratch("fraud");
    run_pipeline("fraud.sql", &fraud_size(&dir));
    let reference = fraud_reference(&dir, &dir.join("fraud_transactions.jsonl"));
    let features = read_jsonl(&dir.join("fraud_features.jsonl"));
    assert!(features.len() > 20_000, "{} transactions", features.len());
    check_fraud_features(&features, &reference);
}

/// Starts the project's Kafka and Cassandra nodes (already running: nothing to do).
fn start_services(services: &[&str]) {
    for service in services {
        let started =
            Command::new(repo().join(format!("scripts/{service}.sh"))).arg("start").status().expect("start script");
        assert!(started.success(), "scripts/{service}.sh start failed");
    }
}

/// Every row of a Cassandra table as a JSON object (`SELECT JSON *`).
fn cassandra_rows(table: &str) -> Vec<Map<String, Value>> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_node("127.0.0.1:9042")
            .build()
            .await
            .expect("connect to Cassandra");
        let query = format!("SELECT JSON * FROM {table}");
        let result = session.query_unpaged(query.as_str(), &[]).await.unwrap_or_else(|e| panic!("{query}: {e}"));
        result
            .into_rows_result()
            .expect("rows")
            .rows::<(String,)>()
            .expect("JSON text")
            .map(|row| match serde_json::from_str(&row.expect("row").0) {
                Ok(Value::Object(object)) => object,
                other => panic!("{other:?}"),
            })
            .collect()
    })
}

#[test]
fn fraud_through_kafka_into_cassandra_equals_the_handbooks_pandas_code() {
    start_services(&["kafka", "cassandra"]);
    let dir = scratch("fraud-services");
    let run = std::process::id();
    let mut defines = fraud_size(&dir);
    defines.extend([
        ("mode", "services".to_string()),
        ("topic", format!("fraud.transactions.{run}")),
        ("tx_table", format!("transactions_{run}")),
        ("features_table", format!("features_{run}")),
        ("bounded", "latest-offset".into()),
    ]);
    // First run: the generator publishes every transaction (the readers stop at the offsets the
    // topic had when they started). Second run: nothing new is published, and the readers take
    // the whole topic.
    run_pipeline("fraud.sql", &defines);
    defines.push(("days", "0".into()));
    let output = run_pipeline("fraud.sql", &defines);
    let report = String::from_utf8_lossy(&output.stderr);
    // The transactions the generator made, for the reference: the embedded run's.
    run_pipeline("fraud.sql", &fraud_size(&dir));
    let reference = fraud_reference(&dir, &dir.join("fraud_transactions.jsonl"));
    let stored = cassandra_rows(&format!("fraud.transactions_{run}"));
    assert_eq!(stored.len(), reference.0.len(), "every transaction stored once ({report})");
    let features = cassandra_rows(&format!("fraud.features_{run}"));
    check_fraud_features(&features, &reference);
}

/// Milliseconds of a sink timestamp (`YYYY-MM-DD HH:MM:SS.fff`).
fn millis(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.3f")
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .and_utc()
        .timestamp_millis()
}

/// The generator's requests as `pipelines/http-monitor.sql` declares them, `rows` of them.
fn http_events(dir: &Path, rows: &str) -> Vec<Map<String, Value>> {
    let events = dir.join("events.jsonl");
    let dump = format!(
        "CREATE TABLE e WITH ('connector' = 'http-log', 'number-of-rows' = '{rows}', 'event-time.rows-per-second' = '20', 'seed' = '42');
         CREATE TABLE f (ts TIMESTAMP(3), method STRING, path STRING, status INT, latency_ms DOUBLE, client_ip STRING,
                         user_agent STRING, incident STRING)
           WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         INSERT INTO f SELECT ts, method, path, status, latency_ms, client_ip, user_agent, incident FROM e;",
        events.display()
    );
    let output = Command::new(env!("CARGO_BIN_EXE_streamsql")).arg("-e").arg(dump).output().expect("streamsql");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    read_jsonl(&events)
}

type AlertKey = (i64, String, String);

/// The alerts of `pipelines/http-monitor.sql` computed directly from `events`: HOP(1 min, 2 min)
/// counts per endpoint, each window against the one two before, by the pipeline's rules. No
/// row is late: the generator's disorder (500 ms) is within the watermark's second.
fn http_alerts_expected(events: &[Map<String, Value>]) -> BTreeMap<AlertKey, String> {
    const MINUTE: i64 = 60_000;
    type Endpoint = (String, String);
    let mut windows: BTreeMap<(Endpoint, i64), (i64, i64, f64)> = BTreeMap::new();
    let mut totals: HashMap<i64, i64> = HashMap::new();
    for event in events {
        let ts = millis(event["ts"].as_str().expect("ts"));
        let endpoint =
            (event["method"].as_str().expect("method").to_string(), event["path"].as_str().expect("path").to_string());
        let error = event["status"].as_i64().expect("status") >= 500;
        let first_end = ts - ts.rem_euclid(MINUTE) + MINUTE;
        for end in [first_end, first_end + MINUTE] {
            let entry = windows.entry((endpoint.clone(), end)).or_default();
            entry.0 += 1;
            entry.1 += i64::from(error);
            entry.2 += number(&event["latency_ms"]);
            *totals.entry(end).or_default() += 1;
        }
    }
    /// (window end, requests, errors, mean latency, share of all requests)
    type Window = (i64, i64, i64, f64, f64);
    let mut by_endpoint: BTreeMap<Endpoint, Vec<Window>> = BTreeMap::new();
    for ((endpoint, end), (requests, errors, latency)) in &windows {
        let share = *requests as f64 / totals[end] as f64;
        by_endpoint.entry(endpoint.clone()).or_default().push((
            *end,
            *requests,
            *errors,
            latency / *requests as f64,
            share,
        ));
    }
    let mut expected = BTreeMap::new();
    for ((method, path), series) in &by_endpoint {
        for pair in series.windows(3) {
            let (_, prev_requests, prev_errors, prev_latency, prev_share) = pair[0];
            let (end, requests, errors, latency, share) = pair[2];
            let alert = if errors >= 10
                && errors * 5 >= requests
                && errors as f64 / requests as f64 > 3.0 * prev_errors as f64 / prev_requests as f64
            {
                Some("error_spike")
            } else if requests >= 50 && requests * 2 >= prev_requests * 3 && share * 3.0 >= prev_share * 4.0 {
                Some("traffic_burst")
            } else if prev_requests >= 50 && requests * 2 <= prev_requests && share * 4.0 <= prev_share * 3.0 {
                Some("traffic_drop")
            } else if latency > 3.0 * prev_latency {
                Some("latency_jump")
            } else {
                None
            };
            if let Some(alert) = alert {
                expected.insert((end, method.clone(), path.clone()), alert.to_string());
            }
        }
    }
    expected
}

fn alert_rows(rows: &[Map<String, Value>]) -> BTreeMap<AlertKey, String> {
    rows.iter()
        .map(|a| {
            let key = (
                millis(a["window_end"].as_str().expect("window_end")),
                a["method"].as_str().expect("method").to_string(),
                a["path"].as_str().expect("path").to_string(),
            );
            (key, a["alert"].as_str().expect("alert").to_string())
        })
        .collect()
}

const HTTP_ROWS: &str = "144000";

#[test]
fn http_monitor_alerts_equal_a_direct_computation_and_find_every_incident() {
    let dir = scratch("http-monitor");
    run_pipeline("http-monitor.sql", &[("out", dir.display().to_string()), ("rows", HTTP_ROWS.into())]);
    let events = http_events(&dir, HTTP_ROWS);
    let alerts = alert_rows(&read_jsonl(&dir.join("http_alerts.jsonl")));
    assert_eq!(alerts, http_alerts_expected(&events));

    // Every labelled incident is seen on its endpoint within 3 minutes of its start.
    let mut incidents: BTreeMap<(String, String), i64> = BTreeMap::new();
    for event in events.iter().filter(|e| e["incident"].is_string()) {
        let ts = millis(event["ts"].as_str().expect("ts"));
        let key =
            (event["incident"].as_str().expect("kind").to_string(), event["path"].as_str().expect("path").to_string());
        let start = incidents.entry(key).or_insert(ts);
        *start = (*start).min(ts);
    }
    assert!(incidents.len() >= 2, "{incidents:?}");
    for ((kind, path), start) in &incidents {
        let seen = alerts.keys().any(|(end, _, p)| p == path && *end > *start && *end <= start + 4 * 60_000);
        assert!(seen, "the {kind} on {path} from {start} raised no alert: {alerts:?}");
    }
}

#[test]
fn http_monitor_takes_posted_events_and_sends_alerts_to_kafka() {
    start_services(&["kafka"]);
    let dir = scratch("http-monitor-services");
    let events = http_events(&dir, HTTP_ROWS);
    let expected = http_alerts_expected(&events);
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let topic = format!("http.alerts.{}.{}", std::process::id(), port);
    let mut job = Command::new(env!("CARGO_BIN_EXE_streamsql"))
        .current_dir(repo())
        .args(["-f", "pipelines/http-monitor.sql", "-D", "mode=services"])
        .arg("-D")
        .arg(format!("listen=127.0.0.1:{port}"))
        .arg("-D")
        .arg(format!("alerts_topic={topic}"))
        .arg("-D")
        .arg(format!("requests_topic={topic}.requests"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("streamsql");
    // The application's middleware: NDJSON batches of 500 events, retried on 503; then one
    // request an hour later, so event time moves past every window.
    let url = format!("http://127.0.0.1:{port}/events");
    let mut lines: Vec<String> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.remove("incident");
            Value::Object(e).to_string()
        })
        .collect();
    let last = millis(events.last().expect("events")["ts"].as_str().expect("ts"));
    let later = chrono::DateTime::from_timestamp_millis(last + 3_600_000).expect("time").naive_utc();
    lines.push(
        serde_json::json!({"ts": later.format("%Y-%m-%d %H:%M:%S%.3f").to_string(), "method": "GET", "path": "/health",
                           "status": 200, "latency_ms": 1.0, "client_ip": "10.0.0.1", "user_agent": "probe"})
        .to_string(),
    );
    let mut retried = 0;
    for chunk in lines.chunks(500) {
        let body = chunk.join("\n");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let answer = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary", "@-", &url])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut curl| {
                    use std::io::Write;
                    curl.stdin.take().expect("stdin").write_all(body.as_bytes())?;
                    curl.wait_with_output()
                })
                .expect("curl");
            match String::from_utf8_lossy(&answer.stdout).as_ref() {
                "202" => break,
                code if std::time::Instant::now() < deadline => {
                    retried += usize::from(code == "503");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                code => panic!("POST answered {code}"),
            }
        }
    }
    // Alerts arrive once the last request's time closes the windows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let alerts = loop {
        let rows: Vec<Map<String, Value>> = common::committed_values(&topic)
            .iter()
            .map(|v| match serde_json::from_str(v) {
                Ok(Value::Object(object)) => object,
                other => panic!("{other:?}"),
            })
            .collect();
        if rows.len() >= expected.len() || std::time::Instant::now() > deadline {
            break alert_rows(&rows);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let _ = Command::new("kill").arg("-TERM").arg(job.id().to_string()).status();
    let status = job.wait().expect("streamsql exits");
    assert!(status.code() == Some(143) || status.success(), "{status:?}");
    assert_eq!(alerts, expected, "({retried} requests retried after 503)");
}

/// Per recorded poll of `pipelines/data/coinlore-tickers.jsonl` (the first `polls`): its time
/// in seconds and each coin's (id, name, price).
/// (id, name, price) of one coin in one poll.
type Price = (String, String, f64);

fn recorded_prices(polls: usize) -> Vec<(i64, Vec<Price>)> {
    read_jsonl(&repo().join("pipelines/data/coinlore-tickers.jsonl"))
        .into_iter()
        .take(polls)
        .map(|poll| {
            let time = millis(&format!("{}.000", poll["poll_time"].as_str().expect("poll_time"))) / 1000;
            let coins = poll["body"]["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|c| {
                    let price: f64 = c["price_usd"].as_str().expect("price").parse().expect("a number");
                    (c["id"].as_str().expect("id").to_string(), c["name"].as_str().expect("name").to_string(), price)
                })
                .collect();
            (time, coins)
        })
        .collect()
}

#[test]
fn crypto_prices_are_the_replayed_polls() {
    let dir = scratch("crypto");
    let started = chrono::Utc::now().naive_utc();
    run_pipeline("crypto.sql", &[("out", dir.display().to_string()), ("interval", "10 ms".into())]);
    let mut expected: Vec<(String, i64, String, f64)> = recorded_prices(usize::MAX)
        .into_iter()
        .flat_map(|(time, coins)| coins.into_iter().map(move |(id, name, price)| (id, time, name, price)))
        .collect();
    let rows = read_jsonl(&dir.join("crypto_prices.jsonl"));
    let mut got: Vec<(String, i64, String, f64)> = rows
        .iter()
        .map(|r| {
            let processed = chrono::NaiveDateTime::parse_from_str(
                r["processing_time"].as_str().expect("time"),
                "%Y-%m-%d %H:%M:%S%.3f",
            )
            .expect("processing_time");
            assert!(processed >= started - chrono::Duration::seconds(1), "processing time is when it ran");
            (
                r["id"].as_str().unwrap().into(),
                r["ts"].as_i64().unwrap(),
                r["name"].as_str().unwrap().into(),
                number(&r["price_usd"]),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    got.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    assert_eq!(expected.len(), 600);
    assert_eq!(got, expected);
}

#[test]
fn crypto_polls_a_misbehaving_api_into_cassandra() {
    start_services(&["kafka", "cassandra"]);
    const POLLS: usize = 4;
    let mut server = Command::new("python3")
        .arg(repo().join("tests/python/price_server.py"))
        .arg(repo().join("pipelines/data/coinlore-tickers.jsonl"))
        .arg(POLLS.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("price server");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().expect("stdout")), &mut line)
        .expect("port");
    let port = line.trim().strip_prefix("port ").expect("port line").to_string();
    let table = format!("prices_{}", std::process::id());
    let job = Command::new(env!("CARGO_BIN_EXE_streamsql"))
        .current_dir(repo())
        .args(["-f", "pipelines/crypto.sql", "-D", "mode=services", "-D", "interval=1500 ms", "-D", "timeout=1 s"])
        .arg("-D")
        .arg(format!("url=http://127.0.0.1:{port}/api/tickers/"))
        .arg("-D")
        .arg(format!("table={table}"))
        .arg("-D")
        .arg(format!("topic=crypto.{table}"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("streamsql");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let rows = runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_node("127.0.0.1:9042")
            .build()
            .await
            .expect("connect to Cassandra");
        let query = format!("SELECT id, ts, name, price_usd, processing_time FROM crypto.{table}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            type Row = (String, i64, String, f64, scylla::value::CqlTimestamp);
            let rows: Vec<Row> = match session.query_unpaged(query.as_str(), &[]).await {
                Ok(result) => result
                    .into_rows_result()
                    .expect("rows")
                    .rows::<Row>()
                    .expect("typed")
                    .map(|r| r.expect("row"))
                    .collect(),
                Err(_) => Vec::new(),
            };
            if rows.len() >= POLLS * 10 || std::time::Instant::now() > deadline {
                // The newest poll of a coin comes first: CLUSTERING ORDER BY (ts DESC).
                let order = format!("SELECT ts FROM crypto.{table} WHERE id = '90'");
                let times: Vec<i64> = session
                    .query_unpaged(order.as_str(), &[])
                    .await
                    .expect("by id")
                    .into_rows_result()
                    .expect("rows")
                    .rows::<(i64,)>()
                    .expect("typed")
                    .map(|r| r.expect("row").0)
                    .collect();
                assert!(times.windows(2).all(|w| w[0] > w[1]), "{times:?}");
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    // SIGTERM: the job stops gracefully.
    let _ = Command::new("kill").arg("-TERM").arg(job.id().to_string()).status();
    let output = job.wait_with_output().expect("streamsql exits");
    let _ = server.kill();
    let _ = server.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut got: Vec<(String, i64, String, f64)> =
        rows.into_iter().map(|(id, ts, name, price, _)| (id, ts, name, price)).collect();
    let mut expected: Vec<(String, i64, String, f64)> = recorded_prices(POLLS)
        .into_iter()
        .flat_map(|(_, coins)| coins)
        .map(|(id, name, price)| (id, 0, name, price))
        .collect();
    // Poll times are the wall clock of this run: compare the prices, then the times' count.
    let polls: HashSet<i64> = got.iter().map(|r| r.1).collect();
    assert_eq!(polls.len(), POLLS, "one ts per poll that answered ({stderr})");
    for row in &mut got {
        row.1 = 0;
    }
    got.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    expected.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    assert_eq!(got, expected, "{stderr}");
    // The malformed answer was skipped and counted; the 500 and the slow answer were retried.
    assert!(stderr.contains("1 bad records skipped"), "{stderr}");
}

/// The flows of the netflow generator as `pipelines/ip-features.sql` declares it, `rows` of them,
/// per source IP: its minutes in order, (window end, [flows, unq_dst_ip, unq_dst_port, bytes_in,
/// bytes_out]). No row is late: the disorder (800 ms) is within the watermark's second.
fn ip_minutes(dir: &Path, rows: &str) -> BTreeMap<String, Vec<(i64, [f64; 5])>> {
    let flows_file = dir.join("flows.jsonl");
    let dump = format!(
        "CREATE TABLE g WITH ('connector' = 'netflow', 'number-of-rows' = '{rows}', 'event-time.rows-per-second' = '500',
                              'max-out-of-orderness' = '800', 'seed' = '2016');
         CREATE TABLE f (ts TIMESTAMP(3), src_ip STRING, dst_ip STRING, dst_port INT, bytes_in BIGINT, bytes_out BIGINT)
           WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         INSERT INTO f SELECT ts, src_ip, dst_ip, dst_port, bytes_in, bytes_out FROM g;",
        flows_file.display()
    );
    let output = Command::new(env!("CARGO_BIN_EXE_streamsql")).arg("-e").arg(dump).output().expect("streamsql");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    #[derive(Default)]
    struct Minute {
        flows: i64,
        dst_ips: HashSet<String>,
        dst_ports: HashSet<i64>,
        bytes_in: i64,
        bytes_out: i64,
    }
    let mut minutes: BTreeMap<(String, i64), Minute> = BTreeMap::new();
    for flow in read_jsonl(&flows_file) {
        let ts = millis(flow["ts"].as_str().expect("ts"));
        let end = ts - ts.rem_euclid(60_000) + 60_000;
        let minute = minutes.entry((flow["src_ip"].as_str().expect("ip").to_string(), end)).or_default();
        minute.flows += 1;
        minute.dst_ips.insert(flow["dst_ip"].as_str().expect("dst_ip").to_string());
        minute.dst_ports.insert(flow["dst_port"].as_i64().expect("port"));
        minute.bytes_in += flow["bytes_in"].as_i64().expect("bytes");
        minute.bytes_out += flow["bytes_out"].as_i64().expect("bytes");
    }
    let mut series: BTreeMap<String, Vec<(i64, [f64; 5])>> = BTreeMap::new();
    for ((ip, end), m) in &minutes {
        let values =
            [m.flows as f64, m.dst_ips.len() as f64, m.dst_ports.len() as f64, m.bytes_in as f64, m.bytes_out as f64];
        series.entry(ip.clone()).or_default().push((*end, values));
    }
    series
}

/// The running-average rows equal those computed from `series` directly.
fn check_ip_features(features: &[Map<String, Value>], series: &BTreeMap<String, Vec<(i64, [f64; 5])>>) {
    let mut expected: BTreeMap<(String, i64), [f64; 10]> = BTreeMap::new();
    for (ip, points) in series {
        for (i, (end, values)) in points.iter().enumerate() {
            let frame = &points[i.saturating_sub(9)..=i];
            let mut row = [0.0; 10];
            row[..5].copy_from_slice(values);
            for k in 0..5 {
                row[5 + k] = frame.iter().map(|p| p.1[k]).sum::<f64>() / frame.len() as f64;
            }
            expected.insert((ip.clone(), *end), row);
        }
    }
    let columns = [
        "flows",
        "unq_dst_ip",
        "unq_dst_port",
        "bytes_in",
        "bytes_out",
        "avg_flows_10min",
        "avg_unq_dst_ip_10min",
        "avg_unq_dst_port_10min",
        "avg_bytes_in_10min",
        "avg_bytes_out_10min",
    ];
    assert_eq!(features.len(), expected.len());
    for row in features {
        let key = (row["src_ip"].as_str().expect("ip").to_string(), millis(row["window_end"].as_str().expect("end")));
        let want = expected.get(&key).unwrap_or_else(|| panic!("unexpected {key:?}"));
        for (column, wanted) in columns.iter().zip(want) {
            let got = number(&row[*column]);
            assert!((got - wanted).abs() <= 1e-9 * wanted.abs().max(1.0), "{key:?} {column}: {got}, expected {wanted}");
        }
    }
}

/// A sample of the forecasts (rows with at least 10 minutes) equals statsmodels' Holt fits of
/// the IP's last 30 minutes.
fn check_ip_forecasts(forecasts: &[Map<String, Value>], series: &BTreeMap<String, Vec<(i64, [f64; 5])>>) {
    let rows: usize = series.values().map(Vec::len).sum();
    assert_eq!(forecasts.len(), rows);
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    // The sample must not depend on the order the instances' rows reached the file.
    let mut sorted: Vec<&Map<String, Value>> = forecasts.iter().collect();
    sorted.sort_by_key(|row| (row["src_ip"].to_string(), row["window_end"].to_string()));
    for row in sorted.into_iter().step_by(23) {
        let ip = row["src_ip"].as_str().expect("ip");
        let end = millis(row["window_end"].as_str().expect("end"));
        let points = &series[ip];
        let at = points.iter().position(|p| p.0 == end).expect("the minute exists");
        if at < 9 {
            continue;
        }
        let frame = &points[at.saturating_sub(29)..=at];
        for (k, column) in [(0, "next_flows"), (1, "next_unq_dst_ip")] {
            let values: Vec<f64> = frame.iter().map(|p| p.1[k]).collect();
            let got: Vec<f64> = row[column].as_array().expect("array").iter().map(number).collect();
            cases.push(serde_json::json!({"values": values, "h": 3}));
            ours.push((format!("{ip} {end} {column}"), values, got));
        }
    }
    assert!(cases.len() >= 40, "{} forecasts sampled", cases.len());
    let mut child = Command::new(reference_python())
        .arg(repo().join("tests/python/holt_reference.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    serde_json::to_writer(child.stdin.take().expect("stdin"), &Value::from(cases)).expect("cases");
    let answers: Vec<Value> =
        serde_json::from_slice(&child.wait_with_output().expect("holt_reference.py").stdout).expect("JSON");
    for ((what, values, got), answer) in ours.iter().zip(&answers) {
        let reference: Vec<f64> =
            answer["forecast"].as_array().unwrap_or_else(|| panic!("{what}: {answer}")).iter().map(number).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let spread = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt().max(1e-6);
        // Where the squared errors barely change with the smoothing parameters, the two
        // optimizers stop at slightly different points: forecasts agree to 0.1 % of the series'
        // spread or of their own size.
        for (a, b) in got.iter().zip(&reference) {
            let tolerance = 1e-3 * spread.max(b.abs());
            assert!((a - b).abs() <= tolerance, "{what}: ours {got:?}, statsmodels {reference:?}");
        }
    }
}

/// 13 minutes of flows: enough for forecasts over 10 minutes and more.
const IP_ROWS: &str = "400000";

#[test]
fn ip_features_equal_a_direct_computation_and_forecasts_statsmodels() {
    let dir = scratch("ip-features");
    run_pipeline("ip-features.sql", &[("out", dir.display().to_string()), ("rows", IP_ROWS.into())]);
    let series = ip_minutes(&dir, IP_ROWS);
    check_ip_features(&read_jsonl(&dir.join("ip_features.jsonl")), &series);
    check_ip_forecasts(&read_jsonl(&dir.join("ip_forecasts.jsonl")), &series);
}

#[test]
fn ip_features_through_kafka_equal_a_direct_computation() {
    start_services(&["kafka"]);
    let dir = scratch("ip-features-services");
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
    );
    let mut defines = vec![
        ("mode", "services".to_string()),
        ("rows", IP_ROWS.to_string()),
        ("bounded", "latest-offset".into()),
        ("flows_topic", format!("netflow.ip-flows.{run}")),
        ("features_topic", format!("netflow.ip-features.{run}")),
        ("forecasts_topic", format!("netflow.ip-forecasts.{run}")),
    ];
    // First run: the generator publishes the flows (the readers stop at the offsets the topic
    // had when they started; their output goes to other topics). Second run: nothing new is
    // published, the readers take the whole topic.
    run_pipeline("ip-features.sql", &defines);
    for (name, value) in defines.iter_mut() {
        match *name {
            "rows" => *value = "0".into(),
            "features_topic" | "forecasts_topic" => value.push_str(".all"),
            _ => {}
        }
    }
    run_pipeline("ip-features.sql", &defines);
    let series = ip_minutes(&dir, IP_ROWS);
    let parse = |topic: String| -> Vec<Map<String, Value>> {
        common::committed_values(&topic)
            .iter()
            .map(|v| match serde_json::from_str(v) {
                Ok(Value::Object(object)) => object,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    check_ip_features(&parse(format!("netflow.ip-features.{run}.all")), &series);
    check_ip_forecasts(&parse(format!("netflow.ip-forecasts.{run}.all")), &series);
}
