//! The `http-ingest` source with a real HTTP client (reqwest): what each kind of body gets back
//! (202, 400 with the reason, 404, 405, 413, 503 under backpressure), and that clients retrying
//! their 503s lose nothing: every row posted is in the sink.

use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{Value, json};
use streamsql_tests::{TestDir, plan, read_jsonl};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// Starts `INSERT INTO out SELECT * FROM events` over an http-ingest table with `options`.
fn start(dir: &TestDir, port: u16, options: &str) -> streamsql_engine::runtime::RunningPipeline {
    let out = dir.file("out.jsonl");
    let sql = format!(
        "CREATE TABLE events (ts TIMESTAMP(3), path STRING, status INT, latency_ms DOUBLE,
                              received TIMESTAMP(3) METADATA FROM 'ingest-time')
           WITH ('connector' = 'http-ingest', 'listen' = '127.0.0.1:{port}', 'path' = '/events'{options});
         CREATE TABLE out (ts TIMESTAMP(3), path STRING, status INT, latency_ms DOUBLE, received TIMESTAMP(3))
           WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         INSERT INTO out SELECT * FROM events;",
        out.display()
    );
    let mut specs = plan(&sql).expect("plans");
    streamsql_engine::runtime::start(specs.remove(0))
}

/// POSTs `body` until the server answers (it starts with the pipeline).
fn post(client: &Client, url: &str, body: &str) -> (u16, Value) {
    for _ in 0..100 {
        match client.post(url).body(body.to_string()).send() {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().unwrap_or_default();
                return (status, serde_json::from_str(&text).unwrap_or(Value::String(text)));
            }
            Err(e) if e.is_connect() => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("POST {url}: {e}"),
        }
    }
    panic!("the ingest server at {url} never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_say_what_was_taken_and_why_not() {
    let dir = TestDir::new("http-ingest");
    let port = free_port();
    let running = start(&dir, port, ", 'number-of-rows' = '6', 'max-body-bytes' = '4096'");
    let url = format!("http://127.0.0.1:{port}/events");
    let answers = tokio::task::spawn_blocking(move || {
        let client = Client::new();
        let row = |i: i64| json!({"ts": format!("2024-01-15 09:00:0{i}"), "path": "/api/cart", "status": 200, "latency_ms": 1.5});
        let mut answers = Vec::new();
        answers.push(post(&client, &url, &row(1).to_string()));
        answers.push(post(&client, &url, &json!([row(2), row(3)]).to_string()));
        answers.push(post(&client, &url, "not json"));
        answers.push(post(&client, &url, &json!([row(4), {"ts": "2024-01-15 09:00:05", "status": "teapot"}]).to_string()));
        answers.push(post(&client, &url, &"x".repeat(5000)));
        let wrong_path = client.post(format!("http://127.0.0.1:{port}/other")).body("{}").send().expect("POST").status();
        let wrong_method = client.get(&url).send().expect("GET").status();
        answers.push((wrong_path.as_u16(), Value::Null));
        answers.push((wrong_method.as_u16(), Value::Null));
        answers.push(post(&client, &url, &format!("{}\n{}\n{}\n", row(4), row(5), row(6))));
        answers
    })
    .await
    .expect("client");
    assert_eq!(answers[0], (202, json!({"accepted": 1})));
    assert_eq!(answers[1], (202, json!({"accepted": 2})));
    assert_eq!(answers[2].0, 400);
    assert!(answers[2].1["error"].as_str().unwrap().contains("not valid JSON"), "{:?}", answers[2]);
    assert_eq!(answers[3].0, 400);
    let reason = answers[3].1["error"].as_str().unwrap();
    assert!(reason.contains("row 2") && reason.contains("status"), "{reason}");
    assert_eq!(answers[4].0, 413);
    assert_eq!(answers[5].0, 404);
    assert_eq!(answers[6].0, 405);
    assert_eq!(answers[7], (202, json!({"accepted": 3})));
    // Six rows reach 'number-of-rows': the input ends and the pipeline finishes.
    let report = tokio::time::timeout(Duration::from_secs(30), running.join()).await.expect("finishes").expect("runs");
    assert_eq!(report.metrics.rows_in, 6);
    assert_eq!(report.metrics.bad_records, 2, "two refused requests (the 413 never reached the decoder)");
    let rows = read_jsonl(&dir.file("out.jsonl"));
    let times: Vec<&str> = rows.iter().map(|r| r["ts"].as_str().unwrap()).collect();
    assert_eq!(times, (1..=6).map(|i| format!("2024-01-15 09:00:0{i}.000")).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r["received"].is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_retrying_503s_lose_nothing() {
    let dir = TestDir::new("http-ingest-busy");
    let port = free_port();
    const CLIENTS: usize = 4;
    const REQUESTS: usize = 40;
    const ROWS: usize = 25;
    let total = CLIENTS * REQUESTS * ROWS;
    let running = start(&dir, port, &format!(", 'queue.max-rows' = '60', 'number-of-rows' = '{total}'"));
    let url = format!("http://127.0.0.1:{port}/events");
    let busy = tokio::task::spawn_blocking(move || {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let client = Client::new();
                    let mut busy = 0;
                    for r in 0..REQUESTS {
                        let rows: Vec<Value> = (0..ROWS)
                            .map(|i| json!({"ts": "2024-01-15 09:00:00", "path": format!("/c{c}/r{r}/{i}"), "status": 200}))
                            .collect();
                        let body = Value::from(rows).to_string();
                        loop {
                            match post(&client, &url, &body) {
                                (202, _) => break,
                                (503, _) => {
                                    busy += 1;
                                    std::thread::sleep(Duration::from_millis(5));
                                }
                                other => panic!("unexpected answer {other:?}"),
                            }
                        }
                    }
                    busy
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).sum::<usize>()
    })
    .await
    .expect("clients");
    let report = tokio::time::timeout(Duration::from_secs(60), running.join()).await.expect("finishes").expect("runs");
    assert_eq!(report.metrics.rows_in as usize, total);
    let rows = read_jsonl(&dir.file("out.jsonl"));
    let mut paths: Vec<String> = rows.iter().map(|r| r["path"].as_str().unwrap().to_string()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), total, "every row once ({busy} requests were told to retry)");
}
