//! The Kafka source and sinks against a real broker (`scripts/kafka.sh`), read back with
//! Python's `confluent-kafka`:
//!
//! - a 4-partition topic of disordered, late and malformed records through a TUMBLE count, an
//!   updating aggregate (changelog with `op`) and `upsert-kafka`, compared with an oracle that
//!   judges each row by the rows before it *in its partition*, at several parallelisms and batch
//!   sizes;
//! - a query that reads the topic twice (a self-join) reads each record once;
//! - a single-partition topic gives exactly the results of the same rows read from a file;
//! - an empty partition holds windows back, unless `'source.idle-timeout'` lets them close, and
//!   a row that then comes for a closed window is late;
//! - metadata columns, key fields, CSV and raw formats, and the options refused by name.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use streamsql_tests::kafka::{BOOTSTRAP, Record, consume, new_topic, produce};
use streamsql_tests::{TestDir, describe_sql_error, parse_sink_timestamp, plan, read_jsonl, run_script, write_text};

const KEYS: &[&str] = &["alpha", "beta", "gamma", "delta", "epsilon"];
const BASE_MS: i64 = 1_717_000_000_000;
const DELAY_MS: i64 = 1_000;

/// One good input row.
#[derive(Debug, Clone)]
struct Ev {
    ts: i64,
    k: &'static str,
    v: i64,
}

/// What a partition holds, in order: a good row or a malformed record.
#[derive(Debug, Clone)]
enum Item {
    Row(Ev),
    Bad(String),
}

/// Seeded records for `partitions` partitions, each with its own pace and disorder.
fn generate(seed: u64, partitions: usize, rows: usize) -> Vec<Vec<Item>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..partitions)
        .map(|p| {
            let step = 40 + 60 * p as i64;
            let mut max = BASE_MS + 250 * p as i64;
            (0..rows)
                .map(|_| {
                    if rng.random_bool(0.03) {
                        let bad = match rng.random_range(0..3) {
                            0 => "{not json".to_string(),
                            1 => json!({"ts": "yesterday", "k": "alpha", "v": 1}).to_string(),
                            _ => json!({"ts": max, "k": "beta", "v": "many"}).to_string(),
                        };
                        return Item::Bad(bad);
                    }
                    let ts = if rng.random_bool(0.15) {
                        max - rng.random_range(0..3_000)
                    } else {
                        max + rng.random_range(0..=step)
                    };
                    max = max.max(ts);
                    Item::Row(Ev { ts, k: KEYS[rng.random_range(0..KEYS.len())], v: rng.random_range(-10..1000) })
                })
                .collect()
        })
        .collect()
}

fn ev_json(e: &Ev) -> String {
    json!({"ts": e.ts, "k": e.k, "v": e.v}).to_string()
}

fn records(partitions: &[Vec<Item>]) -> Vec<Record> {
    let mut out = Vec::new();
    // Interleave the partitions, so no partition is written (or read) all at once.
    let longest = partitions.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for (p, items) in partitions.iter().enumerate() {
            if let Some(item) = items.get(i) {
                let (key, value) = match item {
                    Item::Row(e) => (Some(e.k), ev_json(e)),
                    Item::Bad(text) => (None, text.clone()),
                };
                out.push(Record::new(p as i32, key, &value));
            }
        }
    }
    out
}

/// `(window_start, k) → (count, sum)`.
type Windows = BTreeMap<(i64, String), (i64, i64)>;

/// `(window_start, k) → (count, sum)` of a 1 s TUMBLE, and the late rows: each row judged by
/// `wm_p(r)`, the largest event time before it in its partition minus the delay.
fn tumble_oracle(partitions: &[Vec<Item>]) -> (Windows, u64) {
    let mut windows = Windows::new();
    let mut late = 0;
    for items in partitions {
        let mut max: Option<i64> = None;
        for item in items {
            let Item::Row(e) = item else { continue };
            let start = e.ts - e.ts.rem_euclid(1_000);
            match max {
                Some(m) if start + 1_000 <= m - DELAY_MS => late += 1,
                _ => {
                    let entry = windows.entry((start, e.k.to_string())).or_default();
                    entry.0 += 1;
                    entry.1 += e.v;
                }
            }
            max = Some(max.map_or(e.ts, |m| m.max(e.ts)));
        }
    }
    (windows, late)
}

/// `k → (count, sum)` over every good row.
fn totals_oracle(partitions: &[Vec<Item>]) -> BTreeMap<String, (i64, i64)> {
    let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for item in partitions.iter().flatten() {
        let Item::Row(e) = item else { continue };
        let entry = totals.entry(e.k.to_string()).or_default();
        entry.0 += 1;
        entry.1 += e.v;
    }
    totals
}

fn bad_count(partitions: &[Vec<Item>]) -> u64 {
    partitions.iter().flatten().filter(|i| matches!(i, Item::Bad(_))).count() as u64
}

fn source_table(topic: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE src (ts TIMESTAMP(3), k STRING, v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
         WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{BOOTSTRAP}',\n\
         \x20 'scan.startup.mode' = 'earliest-offset', 'format' = 'json'{extra});\n"
    )
}

fn value_json(record: &Record) -> serde_json::Map<String, Value> {
    match serde_json::from_str(record.value.as_deref().expect("a value")) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object: {other:?} in {record:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_partitions_of_disordered_late_and_bad_records_match_the_oracle() {
    let partitions = generate(11, 4, 700);
    let topic = new_topic("it-in4", 4);
    produce(&topic, &records(&partitions));
    let (windows, late) = tumble_oracle(&partitions);
    let totals = totals_oracle(&partitions);
    let bad = bad_count(&partitions);
    assert!(late > 20 && bad > 20, "the input needs late and bad records: {late} late, {bad} bad");
    eprintln!("{} records: {late} late rows, {bad} bad records, {} windows", records(&partitions).len(), windows.len());

    for (parallelism, batch) in [(1, 8192), (3, 1), (4, 64)] {
        let label = format!("parallelism {parallelism}, batch size {batch}");
        let counts = new_topic("it-counts", 3);
        let changes = new_topic("it-changes", 1);
        let upserts = new_topic("it-upserts", 2);
        let sql = format!(
            "SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '{batch}';\n{src}\
             CREATE TABLE counts (window_start TIMESTAMP(3), k STRING, n BIGINT, total BIGINT)\n\
             WITH ('connector' = 'kafka', 'topic' = '{counts}', 'properties.bootstrap.servers' = '{BOOTSTRAP}',\n\
             \x20 'format' = 'json', 'key.format' = 'raw', 'key.fields' = 'k');\n\
             CREATE TABLE changes (k STRING, n BIGINT, total BIGINT)\n\
             WITH ('connector' = 'kafka', 'topic' = '{changes}', 'properties.bootstrap.servers' = '{BOOTSTRAP}');\n\
             CREATE TABLE upserts (k STRING, n BIGINT, total BIGINT, PRIMARY KEY (k) NOT ENFORCED)\n\
             WITH ('connector' = 'upsert-kafka', 'topic' = '{upserts}', 'properties.bootstrap.servers' = '{BOOTSTRAP}',\n\
             \x20 'key.format' = 'json', 'value.format' = 'json');\n\
             INSERT INTO counts SELECT window_start, k, COUNT(*), SUM(v)\n\
             FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, k;\n\
             INSERT INTO changes SELECT k, COUNT(*), SUM(v) FROM src GROUP BY k;\n\
             INSERT INTO upserts SELECT k, COUNT(*), SUM(v) FROM src GROUP BY k;\n",
            src = source_table(&topic, ", 'scan.bounded.mode' = 'latest-offset', 'format.on-error' = 'skip'"),
        );
        let reports = run_script(&sql).await.unwrap_or_else(|e| panic!("{label}: {e:#}"));
        for (i, report) in reports.iter().enumerate() {
            let m = report.metrics;
            assert_eq!(m.bad_records, bad, "{label}: pipeline {i} bad records");
            assert_eq!(m.rows_in + m.bad_records, partitions.iter().map(Vec::len).sum::<usize>() as u64, "{label}");
            assert_eq!(m.late_rows, if i == 0 { late } else { 0 }, "{label}: pipeline {i} late rows");
        }

        // The TUMBLE counts, keyed by k.
        let mut actual = BTreeMap::new();
        for record in consume(&counts) {
            let row = value_json(&record);
            let k = row["k"].as_str().expect("k").to_string();
            assert_eq!(record.key.as_deref(), Some(k.as_str()), "{label}: the raw key is k");
            let start = parse_sink_timestamp(row["window_start"].as_str().expect("start")).expect("a timestamp");
            let value = (row["n"].as_i64().expect("n"), row["total"].as_i64().expect("total"));
            assert!(actual.insert((start, k), value).is_none(), "{label}: a window twice");
        }
        assert_eq!(actual, windows, "{label}: TUMBLE counts");

        // The changelog, replayed.
        let mut table: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for record in consume(&changes) {
            let row = value_json(&record);
            let k = row["k"].as_str().expect("k").to_string();
            let value = (row["n"].as_i64().expect("n"), row["total"].as_i64().expect("total"));
            match row["op"].as_str().expect("op") {
                "+I" | "+U" => {
                    table.insert(k, value);
                }
                "-U" | "-D" => {
                    assert_eq!(table.remove(&k), Some(value), "{label}: a retraction of a row not there");
                }
                other => panic!("{label}: op {other}"),
            }
        }
        assert_eq!(table, totals, "{label}: the changelog ends as the totals");

        // Upserts: the last value per key.
        let mut latest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for record in consume(&upserts) {
            let key: Value = serde_json::from_str(record.key.as_deref().expect("a key")).expect("a JSON key");
            let k = key["k"].as_str().expect("k").to_string();
            match record.value {
                None => {
                    latest.remove(&k);
                }
                Some(_) => {
                    let row = value_json(&record);
                    latest.insert(k, (row["n"].as_i64().expect("n"), row["total"].as_i64().expect("total")));
                }
            }
        }
        assert_eq!(latest, totals, "{label}: upserts end as the totals");
    }
}

/// A query that reads the topic twice (each window's counts per key beside the window's total,
/// a self-join) reads each record once, on every reader at once: its records and bad records
/// are counted once, and the joined windows are the oracle's, at one and at three readers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_join_reads_each_partition_once() {
    let partitions = generate(23, 4, 500);
    let topic = new_topic("it-self", 4);
    produce(&topic, &records(&partitions));
    let (windows, _) = tumble_oracle(&partitions);
    let mut totals: BTreeMap<i64, i64> = BTreeMap::new();
    for ((start, _), (n, _)) in &windows {
        *totals.entry(*start).or_default() += n;
    }
    let expected: BTreeMap<(i64, String), (i64, i64)> =
        windows.iter().map(|((start, k), (n, _))| ((*start, k.clone()), (*n, totals[start]))).collect();
    let dir = TestDir::new("kafka-self-join");
    for parallelism in [1, 3] {
        let label = format!("parallelism {parallelism}");
        let out = format!("out-{parallelism}.jsonl");
        let counts = "SELECT window_start, window_end, k, COUNT(*) AS n \
             FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, k";
        let sql = format!(
            "SET 'parallelism.default' = '{parallelism}';\n{src}\
             CREATE TABLE out (window_start TIMESTAMP(3), k STRING, n BIGINT, total BIGINT)\n\
             WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
             INSERT INTO out SELECT c.window_start, c.k, c.n, t.total FROM ({counts}) AS c\n\
             JOIN (SELECT window_start, window_end, COUNT(*) AS total\n\
             \x20 FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end) AS t\n\
             ON c.window_start = t.window_start AND c.window_end = t.window_end;\n",
            src = source_table(&topic, ", 'scan.bounded.mode' = 'latest-offset', 'format.on-error' = 'skip'"),
            path = dir.sql_path(&out),
        );
        let reports = run_script(&sql).await.unwrap_or_else(|e| panic!("{label}: {e:#}"));
        let m = reports[0].metrics;
        let records = partitions.iter().map(Vec::len).sum::<usize>() as u64;
        assert_eq!((m.rows_in + m.bad_records, m.bad_records), (records, bad_count(&partitions)), "{label}");
        let mut actual = BTreeMap::new();
        for row in read_jsonl(&dir.file(&out)) {
            let start = parse_sink_timestamp(row["window_start"].as_str().expect("start")).expect("a timestamp");
            let key = (start, row["k"].as_str().expect("k").to_string());
            let value = (row["n"].as_i64().expect("n"), row["total"].as_i64().expect("total"));
            assert!(actual.insert(key, value).is_none(), "{label}: a window and key twice");
        }
        assert_eq!(actual, expected, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_partition_topic_gives_the_file_results() {
    let partitions = generate(12, 1, 1500);
    let topic = new_topic("it-in1", 1);
    produce(&topic, &records(&partitions));
    let dir = TestDir::new("kafka-vs-file");
    let lines: Vec<String> = partitions[0]
        .iter()
        .map(|i| match i {
            Item::Row(e) => ev_json(e),
            Item::Bad(text) => text.clone(),
        })
        .collect();
    write_text(&dir.file("in.jsonl"), &(lines.join("\n") + "\n"));
    for (parallelism, batch) in [(1, 1), (2, 8192)] {
        let mut outputs = Vec::new();
        for from in ["kafka", "file"] {
            let out = format!("{from}-p{parallelism}-b{batch}.jsonl");
            let src = match from {
                "kafka" => source_table(&topic, ", 'scan.bounded.mode' = 'latest-offset', 'format.on-error' = 'skip'"),
                _ => format!(
                    "CREATE TABLE src (ts TIMESTAMP(3), k STRING, v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
                     WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json', 'format.on-error' = 'skip');\n",
                    dir.sql_path("in.jsonl")
                ),
            };
            let sql = format!(
                "SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '{batch}';\n{src}\
                 CREATE TABLE out (window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING, n BIGINT, total BIGINT)\n\
                 WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
                 INSERT INTO out SELECT window_start, window_end, k, COUNT(*), SUM(v)\n\
                 FROM TABLE(HOP(TABLE src, DESCRIPTOR(ts), INTERVAL '500' MILLISECOND, INTERVAL '2' SECOND))\n\
                 GROUP BY window_start, window_end, k;\n",
                path = dir.sql_path(&out),
            );
            let reports = run_script(&sql).await.unwrap_or_else(|e| panic!("{from}: {e:#}"));
            let mut rows: Vec<String> =
                read_jsonl(&dir.file(&out)).iter().map(|r| Value::Object(r.clone()).to_string()).collect();
            rows.sort();
            outputs.push((rows, reports[0].metrics.late_rows, reports[0].metrics.bad_records));
        }
        assert!(outputs[0].1 > 0, "the input needs late rows");
        assert_eq!(outputs[0], outputs[1], "parallelism {parallelism}, batch size {batch}: Kafka and file differ");
    }
}

/// Runs the one pipeline of `sql` until `ready` holds of its counters (or `patience` passes),
/// then runs `meanwhile`, then waits until `done` holds (or `patience` passes again), and stops
/// it. Waiting on the counters, not on fixed times, keeps a loaded machine from failing it.
async fn run_until(
    sql: &str,
    ready: impl Fn(&streamsql_engine::metrics::MetricsSnapshot) -> bool,
    meanwhile: impl FnOnce() + Send + 'static,
    done: impl Fn(&streamsql_engine::metrics::MetricsSnapshot) -> bool,
    patience: Duration,
) -> streamsql_engine::runtime::PipelineReport {
    let mut specs = plan(sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    assert_eq!(specs.len(), 1);
    let running = streamsql_engine::runtime::start(specs.remove(0));
    let control = running.control();
    let wait = async |until: &dyn Fn(&streamsql_engine::metrics::MetricsSnapshot) -> bool| {
        let deadline = tokio::time::Instant::now() + patience;
        while !until(&control.metrics()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait(&ready).await;
    tokio::task::spawn_blocking(meanwhile).await.expect("meanwhile");
    wait(&done).await;
    control.cancel();
    running.join().await.expect("the pipeline ends when stopped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_partition_holds_windows_back_unless_it_is_idle() {
    // Partition 0: 10 s of event time, in order; partition 1: nothing.
    let rows: Vec<Record> =
        (0..200).map(|i| Record::new(0, None, &ev_json(&Ev { ts: BASE_MS + i * 50, k: "alpha", v: 1 }))).collect();
    let dir = TestDir::new("kafka-idle");
    // At parallelism 2, the reader of partition 1 has only idle partitions: it tells the
    // aggregation to stop waiting for it.
    for (idle, parallelism) in [(None, 1), (Some("300 ms"), 1), (Some("300 ms"), 2)] {
        let label = format!("idle timeout {idle:?}, parallelism {parallelism}");
        // A topic per run: the late row of one run must not be in the next.
        let topic = new_topic("it-idle", 2);
        produce(&topic, &rows);
        let out = format!("out-{}-{parallelism}.jsonl", idle.is_some());
        let extra = idle.map(|t| format!(", 'source.idle-timeout' = '{t}'")).unwrap_or_default();
        let sql = format!(
            "SET 'parallelism.default' = '{parallelism}';\n{src}CREATE TABLE out (window_start TIMESTAMP(3), n BIGINT)\n\
             WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
             INSERT INTO out SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND))\n\
             GROUP BY window_start, window_end;\n",
            src = source_table(&topic, &extra),
            path = dir.sql_path(&out),
        );
        // With the idle timeout, a row for the first (long closed) window comes to partition 1
        // once the windows have closed: it is late, counted and dropped.
        let late_topic = topic.clone();
        let with_idle = idle.is_some();
        // Without the idle timeout nothing may come out: give it 4 s to show it does not.
        // With it, the 8 windows come out, then the late row is sent and dropped.
        let report = run_until(
            &sql,
            move |m| with_idle && m.rows_out >= 8,
            move || {
                if with_idle {
                    let late = Ev { ts: BASE_MS + 10, k: "beta", v: 1 };
                    produce(&late_topic, &[Record::new(1, None, &ev_json(&late))]);
                }
            },
            move |m| with_idle && m.late_rows >= 1,
            if with_idle { Duration::from_secs(30) } else { Duration::from_secs(2) },
        )
        .await;
        let windows: Vec<(i64, i64)> = read_jsonl(&dir.file(&out))
            .iter()
            .map(|r| {
                (
                    parse_sink_timestamp(r["window_start"].as_str().expect("start")).expect("ts"),
                    r["n"].as_i64().expect("n"),
                )
            })
            .collect();
        match idle {
            None => {
                assert!(windows.is_empty(), "{label}: an empty partition must hold every window open: {windows:?}");
                assert_eq!(report.metrics.late_rows, 0, "{label}");
            }
            Some(_) => {
                // The watermark is 10 s - 50 ms - 1 s past the base: 8 whole windows closed.
                let expected: Vec<(i64, i64)> = (0..8).map(|w| (BASE_MS + w * 1000, 20)).collect();
                assert_eq!(windows, expected, "{label}");
                assert_eq!(report.metrics.late_rows, 1, "{label}: the row for a closed window is late");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_columns_key_fields_and_other_formats() {
    let topic = new_topic("it-meta", 2);
    // Record timestamps of the last hour: older ones may fall to the broker's retention (7 days).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let base = now - 3_600_000;
    let mut input = Vec::new();
    for i in 0..10_i64 {
        let mut record = Record::new((i % 2) as i32, Some(&format!("{{\"id\":{i}}}")), &format!("{},name-{i}", i * 10));
        record.timestamp = Some(base + i);
        input.push(record);
    }
    produce(&topic, &input);
    let dir = TestDir::new("kafka-meta");
    let out_topic = new_topic("it-meta-out", 1);
    let sql = format!(
        "CREATE TABLE src (id BIGINT, amount INT, name STRING, part INT METADATA FROM 'partition' VIRTUAL,\n\
         \x20 off BIGINT METADATA FROM 'offset' VIRTUAL, ts TIMESTAMP(3) METADATA FROM 'timestamp', `topic` STRING METADATA VIRTUAL)\n\
         WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{BOOTSTRAP}',\n\
         \x20 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',\n\
         \x20 'key.format' = 'json', 'key.fields' = 'id', 'value.format' = 'csv', 'value.fields-include' = 'EXCEPT_KEY');\n\
         CREATE TABLE out (id BIGINT, amount INT, name STRING, part INT, off BIGINT, ts TIMESTAMP(3), `topic` STRING)\n\
         WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
         CREATE TABLE names (name STRING) WITH ('connector' = 'kafka', 'topic' = '{out_topic}',\n\
         \x20 'properties.bootstrap.servers' = '{BOOTSTRAP}', 'format' = 'raw', 'sink.partitioner' = 'round-robin');\n\
         INSERT INTO out SELECT * FROM src;\n\
         INSERT INTO names SELECT name FROM src WHERE amount >= 50;\n",
        path = dir.sql_path("out.jsonl"),
    );
    let reports = run_script(&sql).await.unwrap_or_else(|e| panic!("{e:#}"));
    let mut rows = read_jsonl(&dir.file("out.jsonl"));
    rows.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(rows.len(), 10, "{:?}", reports[0]);
    for (i, row) in rows.iter().enumerate() {
        let i = i as i64;
        assert_eq!(row["amount"].as_i64(), Some(i * 10), "{row:?}");
        assert_eq!(row["name"].as_str(), Some(format!("name-{i}").as_str()));
        assert_eq!(row["part"].as_i64(), Some(i % 2));
        assert_eq!(row["off"].as_i64(), Some(i / 2));
        assert_eq!(parse_sink_timestamp(row["ts"].as_str().expect("ts")), Some(base + i));
        assert_eq!(row["topic"].as_str(), Some(topic.as_str()));
    }
    let mut names: Vec<String> = consume(&out_topic).into_iter().map(|r| r.value.expect("a value")).collect();
    names.sort();
    assert_eq!(names, (5..10).map(|i| format!("name-{i}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_do_not_fit_the_table_are_bad_records() {
    let topic = new_topic("it-bad", 1);
    let key = Some("{\"id\":7}");
    produce(
        &topic,
        &[
            Record::new(0, key, "1,a"),
            Record::new(0, key, "2"),         // a field short
            Record::new(0, key, "3,c,extra"), // a field over
            Record::new(0, None, "4,d"),      // no key for 'key.fields'
            Record::new(0, key, "5,\"e"),     // a quote left open
            Record::new(0, key, "6,f"),
        ],
    );
    let dir = TestDir::new("kafka-bad");
    let table = |on_error: &str| {
        format!(
            "CREATE TABLE src (id BIGINT, name STRING, k BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}',\n\
             \x20 'properties.bootstrap.servers' = '{BOOTSTRAP}', 'scan.startup.mode' = 'earliest-offset',\n\
             \x20 'scan.bounded.mode' = 'latest-offset', 'format' = 'csv', 'key.format' = 'json', 'key.fields' = 'k',\n\
             \x20 'value.fields-include' = 'EXCEPT_KEY'{on_error});\n\
             CREATE TABLE out (id BIGINT, name STRING, k BIGINT) WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
             INSERT INTO out SELECT * FROM src;\n",
            path = dir.sql_path("out.jsonl"),
        )
    };
    let reports = run_script(&table(", 'format.on-error' = 'skip'")).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((reports[0].metrics.rows_in, reports[0].metrics.bad_records), (2, 4));
    let ids: Vec<i64> = read_jsonl(&dir.file("out.jsonl")).iter().map(|r| r["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, [1, 6]);
    // Under 'fail', the first bad record stops the pipeline and says where it is.
    let error = run_script(&table("")).await.expect_err("a bad record fails the pipeline");
    let message = format!("{error:#}");
    assert!(message.contains(&format!("topic '{topic}' partition 0 offset 1")), "{message}");
    assert!(message.contains("the value has 1 CSV fields, the table reads 2"), "{message}");
}

/// The ids a bounded read, at `parallelism`, of a Kafka table with `options` (its topics and
/// where to start) returns, sorted.
async fn read_ids(dir: &TestDir, name: &str, parallelism: usize, options: &str) -> Vec<i64> {
    let sql = format!(
        "SET 'parallelism.default' = '{parallelism}';\n\
         CREATE TABLE src (id BIGINT) WITH ('connector' = 'kafka', {options},\n\
         \x20 'properties.bootstrap.servers' = '{BOOTSTRAP}', 'scan.bounded.mode' = 'latest-offset');\n\
         CREATE TABLE out (id BIGINT) WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
         INSERT INTO out SELECT id FROM src;\n",
        path = dir.sql_path(name),
    );
    run_script(&sql).await.unwrap_or_else(|e| panic!("{options}: {e:#}"));
    let mut ids: Vec<i64> = read_jsonl(&dir.file(name)).iter().map(|r| r["id"].as_i64().expect("id")).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_modes_choose_where_reading_begins() {
    let topic = new_topic("it-startup", 2);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let first: Vec<Record> = (0..10_i64)
        .map(|i| {
            let mut record = Record::new((i % 2) as i32, None, &format!("{{\"id\":{i}}}"));
            record.timestamp = Some(now - 600_000 + i * 1000);
            record
        })
        .collect();
    produce(&topic, &first);
    let dir = TestDir::new("kafka-startup");
    let all: Vec<i64> = (0..10).collect();
    let from = |options: &str| format!("'topic' = '{topic}'{options}");
    assert_eq!(read_ids(&dir, "earliest.jsonl", 1, &from(", 'scan.startup.mode' = 'earliest-offset'")).await, all);
    assert_eq!(
        read_ids(&dir, "latest.jsonl", 1, &from(", 'scan.startup.mode' = 'latest-offset'")).await,
        Vec::<i64>::new()
    );
    let from_six =
        format!(", 'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{}'", now - 600_000 + 6_000);
    assert_eq!(read_ids(&dir, "timestamp.jsonl", 1, &from(&from_six)).await, (6..10).collect::<Vec<_>>());
    let after_all =
        format!(", 'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{}'", now + 60_000);
    assert_eq!(read_ids(&dir, "after.jsonl", 1, &from(&after_all)).await, Vec::<i64>::new());

    // A group reads everything once, then only what was written since.
    let group = format!(", 'properties.group.id' = '{topic}-group', 'scan.startup.mode' = 'group-offsets'");
    assert_eq!(read_ids(&dir, "group1.jsonl", 1, &from(&group)).await, all);
    produce(&topic, &(10..13).map(|i| Record::new(i % 2, None, &format!("{{\"id\":{i}}}"))).collect::<Vec<_>>());
    assert_eq!(read_ids(&dir, "group2.jsonl", 1, &from(&group)).await, vec![10, 11, 12]);
    assert_eq!(read_ids(&dir, "group3.jsonl", 1, &from(&group)).await, Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_reads_a_list_of_topics_or_a_pattern() {
    let first = new_topic("it-many", 2);
    let second = format!("{first}-second");
    streamsql_tests::kafka::run_script(&["topic", &second, "1"], true);
    produce(&first, &(0..6).map(|i| Record::new(i % 2, None, &format!("{{\"id\":{i}}}"))).collect::<Vec<_>>());
    produce(&second, &(6..9).map(|i| Record::new(0, None, &format!("{{\"id\":{i}}}"))).collect::<Vec<_>>());
    let dir = TestDir::new("kafka-many");
    let all: Vec<i64> = (0..9).collect();
    let read = |name: &'static str, topics: String| {
        let options = format!("{topics}, 'scan.startup.mode' = 'earliest-offset'");
        let dir = &dir;
        async move { read_ids(dir, name, 2, &options).await }
    };
    assert_eq!(read("list.jsonl", format!("'topic' = '{first};{second}'")).await, all);
    // Topic names here hold letters, digits and dashes only: no metacharacter to escape.
    let pattern = format!("'topic-pattern' = '{first}(-second)?'");
    assert_eq!(read("pattern.jsonl", pattern).await, all);
}

#[test]
fn options_that_cannot_work_are_refused_by_name() {
    let topic = new_topic("it-refuse", 1);
    let base = format!("'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{BOOTSTRAP}'");
    let cases = [
        (
            format!(
                "CREATE TABLE t (a STRING) WITH ({base}, 'sink.delivery-guarantee' = 'exactly-once');\nINSERT INTO t SELECT 'x';"
            ),
            "needs 'sink.transactional-id-prefix'",
        ),
        (
            format!(
                "CREATE TABLE t (a STRING) WITH ({base}, 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'it');\nCREATE TABLE f WITH ('connector' = 'netflow');\nINSERT INTO t SELECT src_ip FROM f;"
            ),
            "needs checkpoints: SET 'execution.checkpointing.interval'",
        ),
        (
            // An exactly-once late-rows sink would hold its rows until a checkpoint that never comes.
            format!(
                "CREATE TABLE late (operator STRING, src_ip STRING) WITH ({base}, 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'it-late');\nCREATE TABLE f (ts TIMESTAMP(3), src_ip STRING, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'netflow');\nCREATE TABLE o (n BIGINT) WITH ('connector' = 'blackhole');\nSET 'late-rows.sink' = 'late';\nINSERT INTO o SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE f, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end;"
            ),
            "table 'late' commits its output when a checkpoint completes (exactly once), so it needs checkpoints",
        ),
        (
            format!(
                "CREATE TABLE t (a STRING) WITH ({base}, 'sink.transactional-id-prefix' = 'it');\nINSERT INTO t SELECT 'x';"
            ),
            "'sink.transactional-id-prefix' is only used with 'sink.delivery-guarantee' = 'exactly-once'",
        ),
        (
            format!(
                "CREATE TABLE t (a STRING) WITH ({base}, 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'it', 'properties.transactional.id' = 'x');\nINSERT INTO t SELECT 'x';"
            ),
            "'properties.transactional.id' is set by the exactly-once sink",
        ),
        (
            format!(
                "CREATE TABLE t (a STRING) WITH ({base}, 'scan.startup.mode' = 'newest');\nCREATE TABLE o (a STRING) WITH ('connector' = 'blackhole');\nINSERT INTO o SELECT a FROM t;"
            ),
            "'scan.startup.mode' must be one of",
        ),
        (
            format!(
                "CREATE TABLE t (a STRING, p INT METADATA FROM 'partition') WITH ({base});\nINSERT INTO t SELECT 'x', 1;"
            ),
            "metadata 'partition' is read-only",
        ),
        (
            format!("CREATE TABLE t (a STRING, h STRING METADATA FROM 'headers') WITH ({base});"),
            "has no metadata 'headers'",
        ),
        (
            format!("CREATE TABLE t (a STRING, p BIGINT METADATA FROM 'partition') WITH ({base});"),
            "metadata 'partition' is INT",
        ),
        (
            "CREATE TABLE t (a STRING, p INT METADATA FROM 'partition') WITH ('connector' = 'blackhole');".to_string(),
            "has no metadata columns",
        ),
        (
            format!(
                "CREATE TABLE t (a STRING) WITH ('connector' = 'kafka', 'topic' = 'no-such-topic-anywhere', 'properties.bootstrap.servers' = '{BOOTSTRAP}');\nCREATE TABLE f WITH ('connector' = 'netflow');\nINSERT INTO t SELECT src_ip FROM f;"
            ),
            "topic 'no-such-topic-anywhere' does not exist",
        ),
        (
            format!(
                "CREATE TABLE t (a STRING, b STRING) WITH ({base}, 'format' = 'raw');\nCREATE TABLE o (a STRING) WITH ('connector' = 'blackhole');\nINSERT INTO o SELECT a FROM t;"
            ),
            "'raw' value format holds exactly one column",
        ),
        (
            format!(
                "CREATE TABLE t (a STRING) WITH ({base}, 'key.fields' = 'a');\nCREATE TABLE o (a STRING) WITH ('connector' = 'blackhole');\nINSERT INTO o SELECT a FROM t;"
            ),
            "'key.fields' needs 'key.format'",
        ),
        (
            format!(
                "CREATE TABLE t (a STRING) WITH ('connector' = 'upsert-kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{BOOTSTRAP}');"
            ),
            "needs a PRIMARY KEY",
        ),
    ];
    for (sql, expected) in cases {
        match plan(&sql) {
            Ok(_) => panic!("planned:\n{sql}"),
            Err(e) => {
                let message = describe_sql_error(&e);
                assert!(message.contains(expected), "{sql}\n  gave: {message}\n  expected: {expected}");
            }
        }
    }
}
