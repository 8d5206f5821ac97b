//! `streamsql --http`: `/metrics` read by Prometheus' own parser (prometheus_client, from PyPI via
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
