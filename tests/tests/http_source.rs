//! The `http` source against a local HTTP server that serves prices in Coinlore's and
//! CoinGecko's response shapes and misbehaves on purpose: 500s, answers slower than the request
//! timeout, malformed JSON, a response without the rows' path.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use streamsql_tests::{TestDir, read_jsonl, run_script, write_text};

/// What the server does with one request.
#[derive(Debug, Clone)]
enum Answer {
    Json(Value),
    Status(u16),
    /// Waits this long, then answers.
    Slow(Duration, Value),
    /// A 200 whose body is not JSON.
    Malformed,
}

/// A server answering requests with `answers` in order (404 once they are used up), keeping each
/// request's head.
struct Server {
    address: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(answers: Vec<Answer>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let answer = answers.next();
                let seen = seen.clone();
                // Each connection on its own thread: a slow answer does not hold up the next.
                std::thread::spawn(move || serve(stream, answer, &seen));
            }
        });
        Server { address, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

fn serve(mut stream: TcpStream, answer: Option<Answer>, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    seen.lock().expect("requests").push(head);
    let (status, body) = match answer {
        Some(Answer::Json(value)) => (200, value.to_string()),
        Some(Answer::Status(code)) => (code, "{\"error\": \"on purpose\"}".to_string()),
        Some(Answer::Slow(wait, value)) => {
            std::thread::sleep(wait);
            (200, value.to_string())
        }
        Some(Answer::Malformed) => (200, "{\"data\": [{\"id\": \"90\", ".to_string()),
        None => (404, String::new()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A Coinlore `/api/tickers/` response (prices are strings there).
fn coinlore(prices: &[(&str, &str, &str)], time: i64) -> Value {
    let data: Vec<Value> = prices
        .iter()
        .map(|(id, name, price)| json!({"id": id, "symbol": name.to_uppercase(), "name": name, "price_usd": price, "rank": 1}))
        .collect();
    json!({"data": data, "info": {"coins_num": prices.len(), "time": time}})
}

fn table(url: &str, out: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE prices (
           id STRING, name STRING, price_usd DOUBLE, polled TIMESTAMP(3) METADATA FROM 'poll-time'
         ) WITH ('connector' = 'http', 'url' = '{url}', 'json.path' = '$.data[*]', 'poll.interval' = '50 ms',
                 'request.timeout' = '300 ms', 'retry.backoff' = '20 ms', 'header.X-Api-Key' = 'secret-key'{extra});
         CREATE TABLE out (id STRING, name STRING, price_usd DOUBLE, polled TIMESTAMP(3))
           WITH ('connector' = 'file', 'path' = '{out}', 'format' = 'json');
         INSERT INTO out SELECT * FROM prices;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_through_errors_slow_answers_and_malformed_json() {
    let dir = TestDir::new("http-poll");
    let out = dir.file("out.jsonl");
    let server = Server::start(vec![
        Answer::Json(coinlore(&[("90", "bitcoin", "63000.5"), ("80", "ethereum", "3100.25")], 1)),
        Answer::Status(500),
        Answer::Json(coinlore(&[("90", "bitcoin", "63010")], 2)),
        Answer::Slow(Duration::from_secs(2), coinlore(&[("90", "bitcoin", "1")], 0)),
        Answer::Json(coinlore(&[("80", "ethereum", "3101")], 3)),
        Answer::Malformed,
        Answer::Json(json!({"status": {"error_code": 429, "error_message": "rate limited"}})),
        Answer::Json(coinlore(&[("58", "ripple", "0.5")], 4)),
    ]);
    let sql =
        table(&server.address, &out.display().to_string(), ", 'number-of-polls' = '6', 'format.on-error' = 'skip'");
    let reports = run_script(&sql).await.expect("the pipeline runs");
    let metrics = reports[0].metrics;
    // Polls: rows; 500 then rows on the retry; too slow then rows on the retry; malformed
    // (skipped); no '$.data' (skipped); rows.
    assert_eq!(metrics.bad_records, 2, "{metrics:?}");
    assert_eq!(metrics.source_errors, 0, "{metrics:?}");
    let rows = read_jsonl(&out);
    let got: Vec<(String, f64)> =
        rows.iter().map(|r| (r["name"].as_str().unwrap().to_string(), r["price_usd"].as_f64().unwrap())).collect();
    let expected: Vec<(String, f64)> =
        [("bitcoin", 63000.5), ("ethereum", 3100.25), ("bitcoin", 63010.0), ("ethereum", 3101.0), ("ripple", 0.5)]
            .iter()
            .map(|(n, p)| (n.to_string(), *p))
            .collect();
    assert_eq!(got, expected);
    // Rows of one poll share its poll time; later polls have later times.
    let polled: Vec<&str> = rows.iter().map(|r| r["polled"].as_str().unwrap()).collect();
    assert_eq!(polled[0], polled[1]);
    assert!(polled.windows(2).all(|w| w[0] <= w[1]), "{polled:?}");
    let requests = server.requests();
    assert_eq!(requests.len(), 8, "6 polls and 2 retries");
    assert!(requests.iter().all(|r| r.to_ascii_lowercase().contains("x-api-key: secret-key")), "{requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_failing_every_attempt_is_counted_and_the_next_poll_goes_on() {
    let dir = TestDir::new("http-poll-fail");
    let out = dir.file("out.jsonl");
    let server = Server::start(vec![
        Answer::Status(503),
        Answer::Status(500),
        Answer::Status(502),
        Answer::Status(404),
        Answer::Json(coinlore(&[("90", "bitcoin", "63000")], 1)),
    ]);
    let sql = table(&server.address, &out.display().to_string(), ", 'number-of-polls' = '3'");
    let reports = run_script(&sql).await.expect("the pipeline runs");
    assert_eq!(reports[0].metrics.source_errors, 2, "three 5xx, then a 404 (not retried)");
    assert_eq!(read_jsonl(&out).len(), 1);
    assert_eq!(server.requests().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_stops_the_pipeline_by_default_saying_where() {
    let dir = TestDir::new("http-poll-malformed");
    let out = dir.file("out.jsonl");
    let server = Server::start(vec![Answer::Json(coinlore(&[("90", "bitcoin", "63000")], 1)), Answer::Malformed]);
    let sql = table(&server.address, &out.display().to_string(), "");
    let error = run_script(&sql).await.expect_err("malformed JSON fails the pipeline").to_string();
    assert!(error.contains("(poll 2)") && error.contains("not valid JSON"), "{error}");
    assert!(error.contains("'format.on-error' = 'skip'"), "{error}");
    // A price that is not a number is a bad row, not a NULL.
    let server = Server::start(vec![Answer::Json(coinlore(&[("90", "bitcoin", "n/a")], 1))]);
    let error =
        run_script(&table(&server.address, &out.display().to_string(), "")).await.expect_err("bad price").to_string();
    assert!(error.contains("row 1") && error.contains("price_usd"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coingecko_rows_take_event_time_from_a_field() {
    let dir = TestDir::new("http-poll-gecko");
    let out = dir.file("out.jsonl");
    let markets = json!([
        {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "current_price": 63000.5, "last_updated": "2024-05-01T12:00:01.123Z"},
        {"id": "ethereum", "symbol": "eth", "name": "Ethereum", "current_price": 3100, "last_updated": "2024-05-01T12:00:02.000Z"}
    ]);
    let server = Server::start(vec![Answer::Json(markets)]);
    let sql = format!(
        "CREATE TABLE markets (id STRING, current_price DOUBLE, last_updated TIMESTAMP(3),
                               WATERMARK FOR last_updated AS last_updated - INTERVAL '1' MINUTE)
           WITH ('connector' = 'http', 'url' = '{}/api/v3/coins/markets?vs_currency=usd', 'json.path' = '$[*]',
                 'number-of-polls' = '1');
         CREATE TABLE out (id STRING, price DOUBLE, at TIMESTAMP(3)) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         INSERT INTO out SELECT id, current_price, last_updated FROM markets;",
        server.address,
        out.display()
    );
    run_script(&sql).await.expect("the pipeline runs");
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["at"], json!("2024-05-01 12:00:01.123"));
    assert_eq!(rows[1]["price"], json!(3100.0));
    assert!(server.requests()[0].starts_with("GET /api/v3/coins/markets?vs_currency=usd HTTP/1.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_serves_recorded_polls_with_their_times() {
    let dir = TestDir::new("http-replay");
    let recorded = dir.file("polls.jsonl");
    let lines = [
        json!({"poll_time": "2024-05-01 12:00:00", "body": coinlore(&[("90", "bitcoin", "63000")], 1)}),
        json!({"poll_time": "2024-05-01 12:00:30", "body": coinlore(&[("90", "bitcoin", "63050"), ("80", "ethereum", "3100")], 2)}),
    ];
    write_text(&recorded, &lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"));
    let out = dir.file("out.jsonl");
    let sql = format!(
        "CREATE TABLE prices (id STRING, name STRING, price_usd DOUBLE, polled TIMESTAMP(3) METADATA FROM 'poll-time')
           WITH ('connector' = 'http', 'replay.path' = '{}', 'json.path' = '$.data[*]', 'poll.interval' = '10 ms');
         CREATE TABLE out (id STRING, name STRING, price_usd DOUBLE, polled TIMESTAMP(3))
           WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         INSERT INTO out SELECT * FROM prices;",
        recorded.display(),
        out.display()
    );
    run_script(&sql).await.expect("the replay runs to its end");
    let polled: Vec<Value> = read_jsonl(&out).iter().map(|r| r["polled"].clone()).collect();
    assert_eq!(
        polled,
        vec![json!("2024-05-01 12:00:00.000"), json!("2024-05-01 12:00:30.000"), json!("2024-05-01 12:00:30.000")]
    );
}

#[test]
fn options_are_checked_when_the_table_is_declared() {
    let cases = [
        ("'url' = 'ftp://example.com'", "must start with http:// or https://"),
        ("'url' = 'http://x', 'json.path' = 'data[*]'", "starts with '$'"),
        ("'url' = 'http://x', 'poll.interval' = 'soon'", "'poll.interval' must be a positive duration"),
        ("'url' = 'http://x', 'retry.max-attempts' = '0'", "between 1 and 100"),
        ("'json.path' = '$'", "option 'url'"),
        ("'url' = 'http://x', 'format' = 'csv'", "'format' must be one of 'json'"),
    ];
    for (options, expected) in cases {
        let sql = format!(
            "CREATE TABLE t (id STRING) WITH ('connector' = 'http', {options});
             CREATE TABLE o (id STRING) WITH ('connector' = 'blackhole');
             INSERT INTO o SELECT * FROM t;"
        );
        let error = streamsql_tests::plan(&sql).expect_err(options);
        let message = streamsql_tests::describe_sql_error(&error);
        assert!(message.contains(expected), "{options}: {message}");
    }
}
