//! `streamsql --http`: the web console in headless Chromium (Debian's chromium, driven by Selenium
//! from PyPI via `scripts/browser.sh`); its JSON API (stopping a pipeline, queries, the token);
//! `/metrics` read by Prometheus' own parser (prometheus_client, from PyPI via
//! `scripts/stats-reference.sh`), its counters equal to the end-of-run report.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use expectrl::Expect;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// `streamsql` started with `args`; stderr lines arrive on the channel.
fn start(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamsql"))
        .current_dir(repo())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("streamsql");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, received)
}

/// The lines until one containing `marker` (that one included).
fn lines_until(lines: &mpsc::Receiver<String>, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line =
            lines.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| panic!("no '{marker}' in {seen:#?}"));
        let done = line.contains(marker);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

/// (name, labels) → value of every sample at `url`, as prometheus_client parses them.
fn scrape(url: &str, token: Option<&str>) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let python = Command::new(repo().join("scripts/stats-reference.sh")).arg("python").output().expect("venv");
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));
    let mut command = Command::new(String::from_utf8_lossy(&python.stdout).trim());
    command.arg(repo().join("tests/python/prometheus_samples.py")).arg(url);
    if let Some(token) = token {
        command.arg(token);
    }
    let output = command.output().expect("python");
    assert!(output.status.success(), "the parser refused /metrics: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let sample: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let labels = sample["labels"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_string()))
                .collect();
            ((sample["name"].as_str().expect("name").to_string(), labels), sample["value"].as_f64().expect("value"))
        })
        .collect()
}

/// The number before `what` in a report line: `12 rows in` → 12.
fn count(line: &str, what: &str) -> f64 {
    let before = &line[..line.find(what).unwrap_or_else(|| panic!("no '{what}' in {line}"))];
    before.trim_end().rsplit([' ', '(']).next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn metrics_equal_the_end_of_run_report() {
    let (mut child, lines) = start(&["-f", "pipelines/netflow.sql", "--http", "127.0.0.1:0"]);
    let first = lines_until(&lines, "metrics on http://");
    let url = first.last().expect("line").rsplit(' ').next().expect("url").to_string();
    let report = lines_until(&lines, "serving metrics on");
    let samples = scrape(&url, None);
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        *samples
            .get(&(name.to_string(), labels.clone()))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in {samples:#?}"))
    };
    assert_eq!(value("streamsql_pipelines", &[]), 2.0);
    // The report: a line per pipeline, then its operators indented.
    let mut pipeline: Option<(String, String)> = None;
    let mut checked = 0;
    for line in &report {
        if line.starts_with("  [") {
            let (number, _) = pipeline.as_ref().expect("a pipeline line first");
            let colon = line.find(": ").expect("operator name");
            let (name, operator) = (&line[2..colon], &line[colon..]);
            let labels = [("pipeline", number.as_str()), ("operator", name)];
            assert_eq!(value("streamsql_operator_rows_in_total", &labels), count(operator, "rows in"), "{line}");
            assert_eq!(value("streamsql_operator_rows_out_total", &labels), count(operator, "out"), "{line}");
            checked += 1;
        } else if let Some(colon) = line.find(": ").filter(|_| line.starts_with("INSERT INTO")) {
            let statement = line[..colon].to_string();
            let number = (1..=2)
                .find(|n| {
                    let key = (
                        "streamsql_pipeline_rows_in_total".to_string(),
                        BTreeMap::from([
                            ("pipeline".to_string(), n.to_string()),
                            ("statement".to_string(), statement.clone()),
                        ]),
                    );
                    samples.contains_key(&key)
                })
                .unwrap_or_else(|| panic!("no pipeline '{statement}' in /metrics"))
                .to_string();
            let labels = [("pipeline", number.as_str()), ("statement", statement.as_str())];
            assert_eq!(value("streamsql_pipeline_rows_in_total", &labels), count(line, "rows in"));
            assert_eq!(value("streamsql_pipeline_rows_out_total", &labels), count(line, "rows out"));
            assert_eq!(value("streamsql_pipeline_late_rows_total", &labels), count(line, "late rows dropped"));
            assert_eq!(value("streamsql_pipeline_bad_records_total", &labels), count(line, "bad records skipped"));
            assert_eq!(value("streamsql_pipeline_running", &labels), 0.0, "ended");
            pipeline = Some((number, statement));
            checked += 1;
        }
    }
    assert!(checked >= 6, "{report:#?}");
    // Every stage: a batch-time histogram whose count is the batches it took, and its state size.
    let stages: Vec<_> = samples
        .keys()
        .filter(|(name, _)| name == "streamsql_operator_batch_seconds_count")
        .map(|(_, labels)| labels.clone())
        .collect();
    assert!(stages.len() >= 2, "{stages:?}");
    for labels in stages {
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(value("streamsql_operator_batch_seconds_count", &pairs) > 0.0, "{labels:?}");
        let mut inf = pairs.clone();
        inf.push(("le", "+Inf"));
        assert_eq!(
            value("streamsql_operator_batch_seconds_bucket", &inf),
            value("streamsql_operator_batch_seconds_count", &pairs)
        );
        assert!(samples.contains_key(&("streamsql_operator_state_bytes".to_string(), labels.clone())), "{labels:?}");
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert!(child.wait().expect("exit").success(), "SIGTERM after the pipelines finished: exit 0");
}

#[test]
fn metrics_need_the_token_when_one_is_set() {
    let (mut child, lines) =
        start(&["-f", "pipelines/netflow.sql", "--http", "127.0.0.1:0", "--flight-token", "s3cret"]);
    let first = lines_until(&lines, "metrics on http://");
    let url = first.last().expect("line").rsplit(' ').next().expect("url").to_string();
    let status = |extra: &[&str]| {
        let output = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(&url)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(status(&[]), "401");
    assert_eq!(status(&["-H", "Authorization: Bearer wrong"]), "401");
    assert_eq!(status(&["-H", "Authorization: Bearer s3cret"]), "200");
    let samples = scrape(&url, Some("s3cret"));
    assert!(samples.keys().any(|(name, _)| name == "streamsql_pipeline_rows_in_total"));
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// `streamsql -e` over a generator paced to run about three seconds, on a terminal (a pty).
fn on_terminal(extra: &[&str]) -> String {
    let sql = "CREATE TABLE flows (WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
                 WITH ('connector' = 'netflow', 'rows-per-second' = '5000', 'number-of-rows' = '15000');
               CREATE TABLE out (flow_type STRING) WITH ('connector' = 'blackhole');
               INSERT INTO out SELECT flow_type FROM flows;";
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamsql"));
    command.arg("-e").arg(sql).args(extra).env("TERM", "xterm");
    let mut terminal = expectrl::session::Session::spawn(command).expect("spawn streamsql on a pty");
    terminal.set_expect_timeout(Some(Duration::from_secs(60)));
    let found = terminal.expect(expectrl::Eof).expect("streamsql ends");
    let mut shown = found.before().to_vec();
    for matched in found.matches() {
        shown.extend_from_slice(matched);
    }
    String::from_utf8_lossy(&shown).into_owned()
}

#[test]
fn a_terminal_shows_a_status_line_unless_quiet() {
    let shown = on_terminal(&[]);
    assert!(shown.contains("streamsql: 1 pipeline running · "), "{shown}");
    assert!(shown.contains(" events/s · watermark lag "), "{shown}");
    // Cleared before the report, which starts on a clean line.
    assert!(shown.contains("\r\x1b[2K"), "{shown:?}");
    let quiet = on_terminal(&["--quiet"]);
    assert!(!quiet.contains("pipeline running"), "{quiet}");
    assert!(quiet.contains("rows in"), "the report is still there: {quiet}");
}

/// The address the console serves on, from its first line on stderr.
fn console_url(lines: &mpsc::Receiver<String>) -> String {
    let seen = lines_until(lines, "console on http://");
    let line = seen.last().expect("line");
    let start = line.find("http://").expect("url");
    line[start..].split(' ').next().expect("url").trim_end_matches('/').to_string()
}

fn curl(args: &[&str]) -> (String, String) {
    let output = Command::new("curl").args(["-s", "-w", "\n%{http_code}"]).args(args).output().expect("curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').expect("status");
    (body.to_string(), status.to_string())
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[test]
fn the_console_shows_pipelines_and_a_live_chart_in_a_browser() {
    let python = Command::new(repo().join("scripts/browser.sh")).arg("python").output().expect("browser venv");
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));
    let (child, lines) = start(&["-f", "pipelines/netflow-live.sql", "--http", "127.0.0.1:0"]);
    let url = console_url(&lines);
    // Screenshots of each page are kept as the test's artifacts.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let output = Command::new(String::from_utf8_lossy(&python.stdout).trim())
        .arg(repo().join("tests/python/console_browser.py"))
        .arg(format!("{url}/"))
        .arg(&shots)
        .arg("flow_counts")
        .output()
        .expect("python");
    stop(child);
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the browser check failed: {}\n{seen}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_str(seen.trim()).expect("JSON");
    assert_eq!(seen["pipelines"], 3, "{seen}");
    assert_eq!(seen["chart_kind"], "line", "flow_counts declares a line chart: {seen}");
    let [before, after] = [0, 1].map(|i| seen["points"][i].as_u64().expect("points"));
    assert!(after > before, "{seen}");
    for page in ["pipelines", "chart", "query"] {
        let shot = shots.join(format!("{page}.png"));
        assert!(
            std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false),
            "no screenshot {}",
            shot.display()
        );
    }
    eprintln!("screenshots in {}", shots.display());
}

/// A generator paced to run for minutes, into a windowed live table and an updating one.
const LIVE_JOB: &str = "CREATE TABLE flows (WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
    WITH ('connector' = 'netflow', 'rows-per-second' = '2000', 'seed' = '7');
  CREATE MATERIALIZED VIEW per_second WITH ('chart' = 'area', 'chart.y' = 'bytes') AS
    SELECT window_start, window_end, protocol, COUNT(*) AS flows, SUM(bytes_in) AS bytes
    FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND))
    GROUP BY window_start, window_end, protocol;
  CREATE MATERIALIZED VIEW per_type AS SELECT flow_type, COUNT(*) AS flows FROM flows GROUP BY flow_type;";

#[test]
fn the_console_api_describes_stops_and_queries_pipelines() {
    let (child, lines) = start(&["-e", LIVE_JOB, "--http", "127.0.0.1:0", "--flight-token", "t0ken"]);
    let url = console_url(&lines);
    let auth = "Authorization: Bearer t0ken";
    // The page holds no data and loads without the token; the API needs it.
    assert_eq!(curl(&[&format!("{url}/")]).1, "200");
    assert_eq!(curl(&[&format!("{url}/api/pipelines")]).1, "401");
    assert_eq!(curl(&[&format!("{url}/api/tables?token=wrong")]).1, "401");
    assert_eq!(curl(&[&format!("{url}/api/tables?token=t0ken")]).1, "200");

    let json = |args: &[&str]| -> (serde_json::Value, String) {
        let (body, status) = curl(args);
        (serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")), status)
    };
    let (pipelines, _) = json(&["-H", auth, &format!("{url}/api/pipelines")]);
    let first = &pipelines["pipelines"][0];
    assert_eq!(first["name"], "CREATE MATERIALIZED VIEW per_second");
    assert!(first["sql"].as_str().expect("sql").contains("TUMBLE(TABLE flows"), "{first}");
    assert!(first["plan"].as_str().expect("plan").contains("window     TUMBLE size 1 s"), "{first}");
    let names: Vec<&str> =
        first["nodes"].as_array().expect("nodes").iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["source flows", "window aggregate", "sink per_second"]);
    assert_eq!(first["nodes"][1]["inputs"][0]["from"], 1);

    // Tables with their charts: declared, and the default for an updating aggregate.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let tables = loop {
        let (tables, _) = json(&["-H", auth, &format!("{url}/api/tables")]);
        if tables["tables"].as_array().is_some_and(|t| t.len() == 2) || std::time::Instant::now() > deadline {
            break tables;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let chart = |name: &str| {
        tables["tables"].as_array().expect("tables").iter().find(|t| t["name"] == name).expect(name)["chart"].clone()
    };
    assert_eq!(
        chart("per_second"),
        serde_json::json!({"kind": "area", "x": "window_start", "y": "bytes", "series": "protocol"})
    );
    assert_eq!(chart("per_type"), serde_json::json!({"kind": "bar", "x": "flow_type", "y": "flows", "series": null}));

    // A live table's rows arrive as Server-Sent Events, the first at once.
    let events = Command::new("curl")
        .args(["-s", "-N", "--max-time", "4", "-H", auth, &format!("{url}/api/tables/per_second/events?limit=5")])
        .output()
        .expect("curl");
    let events = String::from_utf8_lossy(&events.stdout);
    let versions: Vec<u64> = events
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<serde_json::Value>(d).expect("event")["version"].as_u64().expect("version"))
        .collect();
    assert!(versions.len() >= 2 && versions.windows(2).all(|w| w[0] < w[1]), "{events}");

    // Queries: rows, and errors as messages.
    let (answer, status) =
        json(&["-H", auth, "--data-binary", "SELECT COUNT(*) AS n FROM per_type", &format!("{url}/api/query")]);
    assert_eq!(status, "200", "{answer}");
    assert_eq!(answer["columns"][0]["name"], "n");
    let (answer, status) =
        json(&["-H", auth, "--data-binary", "SELECT nope FROM per_type", &format!("{url}/api/query")]);
    assert_eq!(status, "400");
    assert!(answer["error"].as_str().expect("error").contains("nope"), "{answer}");
    let (_, status) = json(&["-H", auth, "--data-binary", "DROP TABLE per_type", &format!("{url}/api/query")]);
    assert_eq!(status, "400");

    // Stopping pipeline 1 from the console ends it; pipeline 2 runs on.
    let (answer, status) = json(&["-X", "POST", "-H", auth, &format!("{url}/api/pipelines/1/stop")]);
    assert_eq!(status, "202", "{answer}");
    assert_eq!(json(&["-X", "POST", "-H", auth, &format!("{url}/api/pipelines/9/stop")]).1, "404");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let pipelines = loop {
        let (pipelines, _) = json(&["-H", auth, &format!("{url}/api/pipelines")]);
        if pipelines["pipelines"][0]["state"] != "stopping" || std::time::Instant::now() > deadline {
            break pipelines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pipelines["pipelines"][0]["state"], "stopped");
    assert_eq!(pipelines["pipelines"][1]["state"], "running");
    let rows_in = |p: &serde_json::Value| p["rows_in"].as_u64().expect("rows_in");
    std::thread::sleep(Duration::from_millis(1500));
    let (later, _) = json(&["-H", auth, &format!("{url}/api/pipelines")]);
    assert_eq!(
        rows_in(&later["pipelines"][0]),
        rows_in(&pipelines["pipelines"][0]),
        "a stopped pipeline reads no more"
    );
    assert!(rows_in(&later["pipelines"][1]) > rows_in(&pipelines["pipelines"][1]), "the other one runs on");
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let report = lines_until(&lines, "CREATE MATERIALIZED VIEW per_type:");
    let stopped = report.iter().find(|l| l.starts_with("CREATE MATERIALIZED VIEW per_second:")).expect("report line");
    assert!(stopped.ends_with("(stopped)"), "{report:#?}");
    stop(child);
}

#[test]
fn a_chart_the_table_cannot_draw_is_refused_at_plan_time() {
    let refused = |with: &str, fragments: &[&str]| {
        let sql = format!(
            "CREATE TABLE flows WITH ('connector' = 'netflow', 'number-of-rows' = '10');
             CREATE MATERIALIZED VIEW v WITH ({with}) AS SELECT flow_type, COUNT(*) AS flows FROM flows GROUP BY flow_type;"
        );
        let output = Command::new(env!("CARGO_BIN_EXE_streamsql")).arg("-e").arg(&sql).output().expect("streamsql");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{with}: {stderr}");
        for fragment in fragments {
            assert!(stderr.contains(fragment), "{with}: no '{fragment}' in {stderr}");
        }
    };
    refused("'chart' = 'pie'", &["'chart' must be one of 'line', 'area', 'bar', 'value' or 'table'", "'pie'"]);
    refused("'chart' = 'bar', 'chart.y' = 'flow_type'", &["'chart.y' 'flow_type' is Utf8, not a number"]);
    refused("'chart' = 'bar', 'chart.x' = 'nope'", &["'chart.x' 'nope' is not a column", "flow_type, flows"]);
    refused("'chart' = 'line'", &["a 'line' chart needs a TIMESTAMP column"]);
    refused("'chart.y' = 'flows'", &["need 'chart'"]);
    refused("'chart' = 'table', 'chart.y' = 'flows'", &["'chart.y' does not apply to 'chart' = 'table'"]);
}

#[test]
fn bad_records_are_counted_per_source_table() {
    let dir = std::env::temp_dir().join(format!("streamsql-console-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = dir.join("in.jsonl");
    std::fs::write(&input, "{\"k\": \"a\", \"v\": 1}\nnot json\n{\"k\": \"b\", \"v\": 2}\n{\"k\": 3\n").expect("input");
    let sql = format!(
        "CREATE TABLE events (k STRING, v BIGINT) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json', \
           'format.on-error' = 'skip');
         CREATE TABLE quiet (src_ip STRING, bytes_in BIGINT) WITH ('connector' = 'netflow', 'number-of-rows' = '5');
         CREATE TABLE out (k STRING, v BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO out SELECT k, v FROM events UNION ALL SELECT src_ip, bytes_in FROM quiet;",
        input.display()
    );
    let (child, lines) = start(&["-e", &sql, "--http", "127.0.0.1:0"]);
    let url = console_url(&lines);
    let report = lines_until(&lines, "serving metrics on");
    let samples = scrape(&format!("{url}/metrics"), None);
    let errors = |table: &str, kind: &str| {
        samples
            .iter()
            .find(|((name, labels), _)| {
                name == "streamsql_connector_errors_total"
                    && labels.get("table").map(String::as_str) == Some(table)
                    && labels.get("kind").map(String::as_str) == Some(kind)
            })
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {kind} errors of {table} in {samples:#?}"))
    };
    assert_eq!(errors("events", "bad_record"), 2.0);
    assert_eq!(errors("quiet", "bad_record"), 0.0);
    assert_eq!(errors("out", "retry"), 0.0);
    let line = report.iter().find(|l| l.starts_with("INSERT INTO out:")).expect("report");
    assert_eq!(count(line, "bad records skipped"), 2.0, "{line}");
    stop(child);
}
