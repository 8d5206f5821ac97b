//! `FORECAST(value, ts, h [, alpha, beta])` against statsmodels' Holt model
//! (`scripts/stats-reference.sh`, `tests/python/holt_reference.py`) on the same series.
//!
//! Seeded random series per key (drift, noise, missing minutes), written to a file in disorder
//! with late rows, run through HOP windows and an OVER frame. The expected series of each result
//! are the rows of its window or frame that were not late by the event-time contract
//! (`wm(r) = max(ts before r) - delay`), in time order; statsmodels fits each of them. With
//! alpha and beta given the forecasts must agree to 1e-9 of the series' spread (standard
//! deviation); with them fitted, to 1e-3 of it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use streamsql_engine::time::format_millis;
use streamsql_tests::{TestDir, parse_sink_timestamp, read_jsonl, run_script, write_jsonl};

const MINUTE: i64 = 60_000;
const DELAY: i64 = 5 * MINUTE;
const START: i64 = 1_704_067_200_000; // 2024-01-01 00:00:00

/// One input row.
#[derive(Debug, Clone)]
struct Point {
    key: String,
    ts: i64,
    value: f64,
}

/// Per key, a point at most minutes of `hours` hours; in an order with bounded disorder, plus
/// some rows far behind (late).
fn input(seed: u64, keys: usize, hours: i64) -> Vec<Point> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut points = Vec::new();
    for k in 0..keys {
        let drift = rng.random_range(-2.0..2.0);
        let noise = rng.random_range(0.1..4.0);
        let mut level: f64 = rng.random_range(50.0..150.0);
        for minute in 0..hours * 60 {
            level += drift + rng.random_range(-noise..noise);
            if rng.random_bool(0.85) {
                let value = ((level + rng.random_range(-noise..noise)) * 1000.0).round() / 1000.0;
                points.push(Point { key: format!("k{k}"), ts: START + minute * MINUTE, value });
            }
        }
    }
    points.sort_by_key(|p| p.ts);
    // Disorder within a few minutes, then a few rows moved far later (late when they arrive).
    let mut keyed: Vec<(i64, Point)> =
        points.into_iter().map(|p| (p.ts + rng.random_range(0..4 * MINUTE), p)).collect();
    for entry in keyed.iter_mut() {
        if rng.random_bool(0.02) {
            entry.0 += 90 * MINUTE;
        }
    }
    keyed.sort_by_key(|(arrival, _)| *arrival);
    keyed.into_iter().map(|(_, p)| p).collect()
}

/// Each row with whether it is late: `ts < wm(r)` (for OVER) and, for windows ending at or
/// before `wm(r)`, which windows it misses.
fn watermarks(points: &[Point]) -> Vec<i64> {
    let mut max = i64::MIN;
    points
        .iter()
        .map(|p| {
            let wm = max.saturating_sub(DELAY);
            max = max.max(p.ts);
            wm
        })
        .collect()
}

fn write_input(dir: &Path, points: &[Point]) -> std::path::PathBuf {
    let path = dir.join("points.jsonl");
    let rows: Vec<Value> =
        points.iter().map(|p| json!({"k": p.key, "ts": format_millis(p.ts), "v": p.value})).collect();
    write_jsonl(&path, &rows);
    path
}

/// What statsmodels forecasts for each case (`None` where it cannot fit the series).
fn reference(cases: &[Value]) -> Vec<Option<(Vec<f64>, f64)>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
    let python =
        Command::new(root.join("scripts/stats-reference.sh")).arg("python").output().expect("stats-reference.sh");
    assert!(python.status.success(), "scripts/stats-reference.sh: {}", String::from_utf8_lossy(&python.stderr));
    let python = String::from_utf8(python.stdout).expect("path").trim().to_string();
    let mut child = Command::new(python)
        .arg(root.join("tests/python/holt_reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    serde_json::to_writer(child.stdin.take().expect("stdin"), &Value::from(cases.to_vec())).expect("write cases");
    let output = child.wait_with_output().expect("holt_reference.py");
    assert!(output.status.success(), "holt_reference.py failed");
    let answers: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON answers");
    answers
        .into_iter()
        .map(|a| {
            let forecast = a.get("forecast")?.as_array()?.iter().map(|x| x.as_f64()).collect::<Option<Vec<_>>>()?;
            Some((forecast, a.get("sse")?.as_f64()?))
        })
        .collect()
}

fn spread(y: &[f64]) -> f64 {
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / y.len() as f64).sqrt().max(1e-6)
}

/// Our forecast from a sink row's array column.
fn forecast_of(row: &serde_json::Map<String, Value>, column: &str) -> Vec<f64> {
    row[column]
        .as_array()
        .unwrap_or_else(|| panic!("{column} is an array: {row:?}"))
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

/// Compares one result with statsmodels: `fixed` to 1e-9 and `fitted` to 1e-3 of the spread.
fn check(what: &str, y: &[f64], ours: &[f64], theirs: &(Vec<f64>, f64), tolerance: f64) {
    let scale = spread(y);
    assert_eq!(ours.len(), theirs.0.len(), "{what}: horizon");
    for (a, b) in ours.iter().zip(&theirs.0) {
        assert!((a - b).abs() <= tolerance * scale, "{what}: ours {ours:?}, statsmodels {:?} (series {y:?})", theirs.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_windows_forecast_as_statsmodels_does() {
    let dir = TestDir::new("forecast-hop");
    let points = input(7, 5, 4);
    let path = write_input(dir.path(), &points);
    let out = dir.file("hop.jsonl");
    let sql = format!(
        "CREATE TABLE points (k STRING, ts TIMESTAMP(3), v DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE)
           WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         CREATE TABLE out (k STRING, window_start TIMESTAMP(3), fitted ARRAY<DOUBLE>, fixed ARRAY<DOUBLE>, n BIGINT)
           WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         INSERT INTO out
         SELECT k, window_start, FORECAST(v, ts, 3), FORECAST(v, ts, 3, 0.5, 0.2), COUNT(*)
         FROM TABLE(HOP(TABLE points, DESCRIPTOR(ts), INTERVAL '30' MINUTE, INTERVAL '1' HOUR))
         GROUP BY k, window_start, window_end;",
        path.display(),
        out.display()
    );
    run_script(&sql).await.expect("the HOP job runs");

    // Expected series: per (key, window start), the values of the rows on time for that window.
    let wm = watermarks(&points);
    let mut series: BTreeMap<(String, i64), Vec<(i64, f64)>> = BTreeMap::new();
    for (p, &wm) in points.iter().zip(&wm) {
        let last_start = p.ts - p.ts.rem_euclid(30 * MINUTE);
        for start in [last_start - 30 * MINUTE, last_start] {
            if wm < start + 60 * MINUTE {
                series.entry((p.key.clone(), start)).or_default().push((p.ts, p.value));
            }
        }
    }
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), series.len(), "one result per key and window");
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for row in &rows {
        let key = row["k"].as_str().expect("k").to_string();
        let start = parse_sink_timestamp(row["window_start"].as_str().expect("window_start")).expect("timestamp");
        let mut points =
            series.get(&(key.clone(), start)).unwrap_or_else(|| panic!("unexpected window {row:?}")).clone();
        points.sort_by_key(|p| p.0);
        let y: Vec<f64> = points.iter().map(|p| p.1).collect();
        assert_eq!(row["n"].as_i64(), Some(y.len() as i64));
        cases.push(json!({"values": y, "h": 3}));
        cases.push(json!({"values": y, "h": 3, "alpha": 0.5, "beta": 0.2}));
        expected.push((
            format!("{key} {}", format_millis(start)),
            y,
            forecast_of(row, "fitted"),
            forecast_of(row, "fixed"),
        ));
    }
    let answers = reference(&cases);
    for ((what, y, fitted, fixed), answer) in expected.iter().zip(answers.chunks(2)) {
        let (Some(reference_fitted), Some(reference_fixed)) = (&answer[0], &answer[1]) else {
            panic!("{what}: statsmodels could not fit {y:?}");
        };
        check(&format!("{what} fixed"), y, fixed, reference_fixed, 1e-9);
        check(&format!("{what} fitted"), y, fitted, reference_fitted, 1e-3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_frames_forecast_as_statsmodels_does() {
    let dir = TestDir::new("forecast-over");
    let points = input(11, 2, 2);
    let path = write_input(dir.path(), &points);
    let out = dir.file("over.jsonl");
    let sql = format!(
        "CREATE TABLE points (k STRING, ts TIMESTAMP(3), v DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE)
           WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         CREATE TABLE out (k STRING, ts TIMESTAMP(3), f ARRAY<DOUBLE>)
           WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
         INSERT INTO out
         SELECT k, ts, FORECAST(v, ts, 2, 0.6, 0.3) OVER (
           PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '20' MINUTE PRECEDING AND CURRENT ROW)
         FROM points;",
        path.display(),
        out.display()
    );
    run_script(&sql).await.expect("the OVER job runs");

    let wm = watermarks(&points);
    let on_time: Vec<&Point> = points.iter().zip(&wm).filter(|(p, wm)| p.ts >= **wm).map(|(p, _)| p).collect();
    let mut by_key: HashMap<&str, Vec<(i64, f64)>> = HashMap::new();
    for p in &on_time {
        by_key.entry(&p.key).or_default().push((p.ts, p.value));
    }
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), on_time.len(), "one row out per row on time");
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for row in &rows {
        let key = row["k"].as_str().expect("k");
        let ts = parse_sink_timestamp(row["ts"].as_str().expect("ts")).expect("timestamp");
        let mut frame: Vec<(i64, f64)> =
            by_key[key].iter().copied().filter(|&(t, _)| t >= ts - 20 * MINUTE && t <= ts).collect();
        frame.sort_by_key(|p| p.0);
        let y: Vec<f64> = frame.iter().map(|p| p.1).collect();
        cases.push(json!({"values": y, "h": 2, "alpha": 0.6, "beta": 0.3}));
        expected.push((format!("{key} {}", format_millis(ts)), y, forecast_of(row, "f")));
    }
    let answers = reference(&cases);
    let mut compared = 0;
    for ((what, y, ours), answer) in expected.iter().zip(&answers) {
        match answer {
            Some(theirs) => {
                check(what, y, ours, theirs, 1e-9);
                compared += 1;
            }
            // statsmodels needs a few points; a frame of one value is forecast flat.
            None if y.len() == 1 => assert_eq!(ours, &vec![y[0]; 2], "{what}"),
            None => panic!("{what}: statsmodels could not fit {y:?}"),
        }
    }
    assert!(compared > rows.len() / 2, "{compared} of {} compared", rows.len());
}

#[test]
fn forecast_outside_windows_and_with_column_arguments_is_refused() {
    let table =
        "CREATE TABLE points (k STRING, ts TIMESTAMP(3), v DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' MINUTE)
                 WITH ('connector' = 'file', 'path' = '/nonexistent.jsonl', 'format' = 'json');";
    let cases = [
        ("SELECT k, FORECAST(v, ts, 3) FROM points GROUP BY k", "runs over windows only"),
        (
            "SELECT k, FORECAST(v, ts, CAST(v AS INT)) FROM TABLE(TUMBLE(TABLE points, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
             GROUP BY k, window_start, window_end",
            "must be a constant",
        ),
        (
            "SELECT k, FORECAST(v, ts, 0) FROM TABLE(TUMBLE(TABLE points, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
             GROUP BY k, window_start, window_end",
            "between 1 and",
        ),
        (
            "SELECT k, FORECAST(v, ts, 2, 1.5, 0.1) FROM TABLE(TUMBLE(TABLE points, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
             GROUP BY k, window_start, window_end",
            "alpha must be between 0 and 1",
        ),
        (
            "SELECT k, FORECAST(k, ts, 2) FROM TABLE(TUMBLE(TABLE points, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
             GROUP BY k, window_start, window_end",
            "forecasts numbers",
        ),
    ];
    for (query, expected) in cases {
        let error = streamsql_tests::plan(&format!("{table} {query};")).expect_err(query);
        let message = streamsql_tests::describe_sql_error(&error);
        assert!(message.contains(expected), "{query}: {message}");
    }
}
