//! Joins and cascaded windows against an independent batch oracle.
//!
//! Like `oracle.rs`, but for pipelines with more than one stage between source and sink:
//!
//! - a regular INNER join of two disordered streams (no row is ever late to it: its result
//!   must be the batch join over every input row);
//! - a windowed aggregation over the results of a windowed aggregation (late rows are dropped
//!   by the first level only, by the contract in `streamsql_tests::oracle`);
//! - a join of two windowed aggregations on their windows and keys, each side with its own
//!   watermark and its own late rows.
//!
//! Seeded random inputs are written as JSON lines and read through file tables with a
//! WATERMARK. The oracle expands each side's non-late rows into their windows with
//! [`assign`] and runs the same query as DataFusion batch SQL; the streaming output must
//! match as a multiset at every parallelism and batch size, with the expected `late_rows`.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use streamsql_tests::oracle::{Window, apply_changelog, assign, expand_windows, sql_columns};
use streamsql_tests::{
    Cell, Row, TestDir, describe_sql_error, diff_rows, plan, rows_from_batches, rows_from_jsonl, run_specs, write_jsonl,
};

/// Relative tolerance for floating-point aggregates.
const TOLERANCE: f64 = 1e-9;

/// `SET 'parallelism.default'`, `SET 'execution.batch-size'`.
const MATRIX: &[(usize, usize)] = &[(1, 1), (1, 64), (4, 1), (4, 64), (4, 8192)];

/// The columns of every input table.
const COLUMNS: &str = "ts TIMESTAMP(3), k STRING, k2 INT, v BIGINT, d DOUBLE";

const KEYS: &[&str] = &["alpha", "beta", "gamma", "delta", "epsilon"];

/// One input row.
#[derive(Debug, Clone)]
struct Ev {
    ts: i64,
    k: Option<String>,
    k2: Option<i32>,
    v: Option<i64>,
    d: Option<f64>,
}

/// How one side's rows are drawn.
#[derive(Debug, Clone, Copy)]
struct Shape {
    seed: u64,
    rows: usize,
    /// Probability that a row goes back in time (up to `max_back_ms` behind the largest so far).
    disorder: f64,
    max_back_ms: i64,
    /// Range of the forward step between in-order rows, ms.
    step_ms: (i64, i64),
    base_ms: i64,
    /// `k2` is drawn from `0..k2_range`.
    k2_range: i32,
    /// Probability of NULL in each of `k`, `k2`, `v`, `d`.
    nulls: f64,
}

fn generate(s: &Shape) -> Vec<Ev> {
    let mut rng = SmallRng::seed_from_u64(s.seed);
    let key_count = rng.random_range(3..=KEYS.len());
    let mut max = s.base_ms;
    let mut events = Vec::with_capacity(s.rows);
    for i in 0..s.rows {
        let mut ts = if i > 0 && rng.random_bool(s.disorder) {
            max - rng.random_range(0..=s.max_back_ms)
        } else if rng.random_bool(0.01) {
            max + rng.random_range(5_000..20_000) // a gap: whole windows with no rows
        } else {
            max + rng.random_range(s.step_ms.0..=s.step_ms.1)
        };
        // Whole seconds now and then: rows on window bounds, watermarks on window ends.
        if rng.random_bool(0.1) {
            ts = ts.div_euclid(1000) * 1000;
        }
        max = max.max(ts);
        events.push(Ev {
            ts,
            k: (!rng.random_bool(s.nulls)).then(|| KEYS[rng.random_range(0..key_count)].to_string()),
            k2: (!rng.random_bool(s.nulls)).then(|| rng.random_range(0..s.k2_range)),
            v: (!rng.random_bool(s.nulls)).then(|| rng.random_range(-50..1000)),
            d: (!rng.random_bool(s.nulls)).then(|| f64::from(rng.random_range(-1_000_000..1_000_000)) / 1000.0),
        });
    }
    events
}

/// The row as a JSON line; a NULL is either `null` or left out.
fn ev_json(e: &Ev, rng: &mut SmallRng) -> Value {
    let t = chrono::DateTime::from_timestamp_millis(e.ts).expect("timestamp in range");
    let mut object = Map::new();
    let ts = if rng.random_bool(0.5) { json!(t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()) } else { json!(e.ts) };
    object.insert("ts".into(), ts);
    for (key, value) in [
        ("k", e.k.clone().map(Value::from)),
        ("k2", e.k2.map(Value::from)),
        ("v", e.v.map(Value::from)),
        ("d", e.d.map(Value::from)),
    ] {
        match value {
            Some(value) => {
                object.insert(key.into(), value);
            }
            None if rng.random_bool(0.5) => {
                object.insert(key.into(), Value::Null);
            }
            None => {}
        }
    }
    Value::Object(object)
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn ev_fields() -> Vec<Field> {
    vec![
        Field::new("ts", ts_type(), false),
        Field::new("k", DataType::Utf8, true),
        Field::new("k2", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
        Field::new("d", DataType::Float64, true),
    ]
}

fn ev_columns(events: &[&Ev]) -> Vec<ArrayRef> {
    vec![
        Arc::new(TimestampMillisecondArray::from(events.iter().map(|e| e.ts).collect::<Vec<_>>())),
        Arc::new(StringArray::from(events.iter().map(|e| e.k.clone()).collect::<Vec<_>>())),
        Arc::new(Int32Array::from(events.iter().map(|e| e.k2).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(events.iter().map(|e| e.v).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(events.iter().map(|e| e.d).collect::<Vec<_>>())),
    ]
}

/// Every row, as a batch table.
fn raw_batch(events: &[Ev]) -> RecordBatch {
    let all: Vec<&Ev> = events.iter().collect();
    RecordBatch::try_new(Arc::new(Schema::new(ev_fields())), ev_columns(&all)).expect("raw batch")
}

/// One row per (window, non-late row), with `window_start`, `window_end`, `window_time`; and
/// the number of late rows.
fn expanded_batch(events: &[Ev], delay_ms: i64, window: Window) -> (RecordBatch, u64) {
    let ts: Vec<i64> = events.iter().map(|e| e.ts).collect();
    let assignment = assign(&ts, delay_ms, window);
    let batch = expand_windows(events, &assignment, ev_fields(), ev_columns).expect("expanded batch");
    (batch, assignment.late_count() as u64)
}

/// Rows that arrive at or behind the watermark of the rows before them (late to any window
/// that ends at or before the watermark), with a watermark delay of `delay_ms`.
fn behind_watermark(events: &[Ev], delay_ms: i64) -> usize {
    let mut max: Option<i64> = None;
    let mut behind = 0;
    for e in events {
        if max.is_some_and(|m| e.ts < m - delay_ms) {
            behind += 1;
        }
        max = Some(max.map_or(e.ts, |m| m.max(e.ts)));
    }
    behind
}

/// The rows that are not late for an interval join: `ts >= wm(r)`, where `wm(r)` is the largest
/// `ts` before `r` minus `delay_ms`.
fn on_time_rows(events: &[Ev], delay_ms: i64) -> Vec<Ev> {
    let mut max: Option<i64> = None;
    let mut kept = Vec::new();
    for e in events {
        if max.is_none_or(|m| e.ts >= m - delay_ms) {
            kept.push(e.clone());
        }
        max = Some(max.map_or(e.ts, |m| m.max(e.ts)));
    }
    kept
}

/// The sink column list for the oracle's result schema.
fn sink_columns(schema: &Schema) -> String {
    sql_columns(schema)
}

/// One input table of a case: its name in SQL and its watermark delay.
#[derive(Debug, Clone, Copy)]
struct Side {
    name: &'static str,
    delay_ms: i64,
    /// Event times made distinct (a repeated one moved on by a millisecond until it is new):
    /// a ROWS frame or LAG orders rows of equal time as they arrive, which no batch query knows.
    distinct_times: bool,
}

/// A query over the sides' tables. In `template`, `{a}` / `{b}` stand for what the query reads
/// of side `a` / `b`: the table itself for a regular join, or the window TVF over it (in the
/// batch query: the oracle's expanded table of that side).
struct Case {
    name: &'static str,
    sides: &'static [Side],
    window: Option<Window>,
    /// An interval join or OVER: each side's rows with `ts < wm(r)` (behind their own
    /// watermark) are late and left out of the batch query.
    interval: bool,
    template: &'static str,
}

impl Case {
    fn streaming_sql(&self) -> String {
        let mut sql = self.template.to_string();
        for side in self.sides {
            let read = match self.window {
                Some(window) => window.tvf_sql(side.name, "ts"),
                None => side.name.to_string(),
            };
            sql = sql.replace(&format!("{{{}}}", side.name), &read);
        }
        // `{a+b}`: the window TVF over a view that is the UNION ALL of both sides.
        if let Some(window) = self.window {
            sql = sql.replace("{a+b}", &window.tvf_sql(UNION_VIEW, "ts"));
        }
        for token in session_tokens(&sql) {
            let partition = if token.partitioned { format!(" PARTITION BY {}", token.key) } else { String::new() };
            let tvf = format!(
                "TABLE(SESSION(TABLE {}{partition}, DESCRIPTOR(ts), INTERVAL '{}' SECOND))",
                token.side, token.gap_s
            );
            sql = sql.replace(&token.text, &tvf);
        }
        sql
    }

    fn batch_sql(&self) -> String {
        let mut sql = self.template.to_string();
        for side in self.sides {
            let read = match self.window {
                Some(_) => format!("{}_expanded", side.name),
                None => side.name.to_string(),
            };
            sql = sql.replace(&format!("{{{}}}", side.name), &read);
        }
        for token in session_tokens(&sql) {
            sql = sql.replace(&token.text, &token.table());
        }
        sql.replace("{a+b}", "(SELECT * FROM a_expanded UNION ALL SELECT * FROM b_expanded)")
    }
}

/// `{session a k 2}` (a SESSION TVF over side `a` with PARTITION BY `k` and a 2 s gap) or
/// `{session a k 2 grouped}` (no PARTITION BY: the query groups by `k`, which keys the sessions).
/// In the batch query: the side's rows that are not late, each with its session's bounds.
struct SessionToken {
    text: String,
    side: String,
    key: String,
    gap_s: i64,
    partitioned: bool,
}

impl SessionToken {
    fn table(&self) -> String {
        format!("{}_sessions_{}_{}", self.side, self.key, self.gap_s)
    }
}

fn session_tokens(sql: &str) -> Vec<SessionToken> {
    let mut tokens = Vec::new();
    let mut rest = sql;
    while let Some(at) = rest.find("{session ") {
        let end = rest[at..].find('}').expect("a session token ends with '}'") + at + 1;
        let text = &rest[at..end];
        let words: Vec<&str> = text[1..text.len() - 1].split_whitespace().collect();
        tokens.push(SessionToken {
            text: text.to_string(),
            side: words[1].to_string(),
            key: words[2].to_string(),
            gap_s: words[3].parse().expect("gap in seconds"),
            partitioned: words.get(4) != Some(&"grouped"),
        });
        rest = &rest[end..];
    }
    tokens
}

/// The rows of `events` with the bounds of their session: per value of `key` (`k` or `k2`),
/// rows less than `gap_ms` apart in time, `[first ts, last ts + gap)`.
fn sessions_batch(events: &[Ev], key: &str, gap_ms: i64) -> RecordBatch {
    let key_of = |e: &Ev| match key {
        "k" => format!("{:?}", e.k),
        "k2" => format!("{:?}", e.k2),
        other => panic!("sessions by {other}: use k or k2"),
    };
    let mut by_key: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        by_key.entry(key_of(e)).or_default().push(i);
    }
    let mut windows = vec![Vec::new(); events.len()];
    for rows in by_key.values_mut() {
        rows.sort_by_key(|&i| events[i].ts);
        let mut first = 0;
        for j in 0..rows.len() {
            let last = j + 1 == rows.len() || events[rows[j + 1]].ts >= events[rows[j]].ts + gap_ms;
            if last {
                let bounds = (events[rows[first]].ts, events[rows[j]].ts + gap_ms);
                for &i in &rows[first..=j] {
                    windows[i] = vec![bounds];
                }
                first = j + 1;
            }
        }
    }
    let assignment = streamsql_tests::oracle::Assignment { windows, watermarks: vec![None; events.len()] };
    expand_windows(events, &assignment, ev_fields(), ev_columns).expect("session batch")
}

/// The view `{a+b}` reads in a streaming query.
const UNION_VIEW: &str = "a_and_b";

/// What a case must produce for one seed.
struct Expected {
    rows: Vec<Row>,
    schema: SchemaRef,
    late_rows: u64,
    /// Late rows of each side.
    late_by_side: Vec<u64>,
}

async fn oracle(case: &Case, inputs: &[Vec<Ev>]) -> anyhow::Result<Expected> {
    let ctx = SessionContext::new();
    let mut late_by_side = Vec::new();
    for (side, events) in case.sides.iter().zip(inputs) {
        match case.window {
            Some(window) => {
                let (batch, late) = expanded_batch(events, side.delay_ms, window);
                late_by_side.push(late);
                ctx.register_batch(format!("{}_expanded", side.name), batch)?;
            }
            None if case.interval => {
                let on_time = on_time_rows(events, side.delay_ms);
                late_by_side.push((events.len() - on_time.len()) as u64);
                for token in session_tokens(case.template).iter().filter(|t| t.side == side.name) {
                    ctx.register_batch(token.table(), sessions_batch(&on_time, &token.key, token.gap_s * 1000))?;
                }
                ctx.register_batch(side.name, raw_batch(&on_time))?;
            }
            None => {
                late_by_side.push(0);
                ctx.register_batch(side.name, raw_batch(events))?;
            }
        }
    }
    let sql = case.batch_sql();
    let frame = ctx.sql(&sql).await.map_err(|e| anyhow::anyhow!("oracle query failed: {e}\n{sql}"))?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(|e| anyhow::anyhow!("oracle query failed: {e}\n{sql}"))?;
    let late_rows = late_by_side.iter().sum();
    Ok(Expected { rows: rows_from_batches(&batches)?, schema, late_rows, late_by_side })
}

fn watermark_sql(delay_ms: i64) -> String {
    match delay_ms {
        0 => "ts".to_string(),
        ms if ms % 1000 == 0 => format!("ts - INTERVAL '{}' SECOND", ms / 1000),
        ms => format!("ts - INTERVAL '{}.{:03}' SECOND", ms / 1000, ms % 1000),
    }
}

fn script(case: &Case, dir: &TestDir, out: &str, expected: &Expected, parallelism: usize, batch: usize) -> String {
    // Updating aggregates emit after every batch: their changelogs are as long as they get.
    let mut sql = format!(
        "SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '{batch}';\n\
         SET 'update-interval' = '0';\n"
    );
    for side in case.sides {
        let _ = writeln!(
            sql,
            "CREATE TABLE {name} (\n  {COLUMNS},\n  WATERMARK FOR ts AS {watermark}\n\
             ) WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');",
            name = side.name,
            watermark = watermark_sql(side.delay_ms),
            input = dir.sql_path(&format!("{}.jsonl", side.name)),
        );
    }
    if case.template.contains("{a+b}") {
        let _ = writeln!(sql, "CREATE VIEW {UNION_VIEW} AS SELECT * FROM a UNION ALL SELECT * FROM b;");
    }
    let _ = write!(
        sql,
        "CREATE TABLE out ({columns})\n  WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');\n\
         INSERT INTO out\n{query};\n",
        columns = sink_columns(&expected.schema),
        output = dir.sql_path(out),
        query = case.streaming_sql(),
    );
    sql
}

/// Runs one configuration; `Err` describes how it differs from the oracle.
async fn run_one(
    case: &Case,
    dir: &TestDir,
    input_rows: usize,
    expected: &Expected,
    parallelism: usize,
    batch: usize,
) -> Result<(), String> {
    let out = format!("out-{}-p{parallelism}-b{batch}.jsonl", case.name);
    let sql = script(case, dir, &out, expected, parallelism, batch);
    let specs =
        plan(&sql).map_err(|e| format!("planning failed: {}\n--- script ---\n{sql}", describe_sql_error(&e)))?;
    if specs.len() != 1 {
        return Err(format!("expected 1 pipeline, got {}\n--- script ---\n{sql}", specs.len()));
    }
    if specs[0].parallelism != parallelism || specs[0].batch_size != batch {
        return Err(format!(
            "SET was not applied: pipeline has parallelism {} and batch size {}",
            specs[0].parallelism, specs[0].batch_size
        ));
    }
    if specs[0].sources().len() != case.sides.len() {
        return Err(format!("the pipeline reads {} sources, expected {}", specs[0].sources().len(), case.sides.len()));
    }
    let updating = specs[0].is_updating();
    let sink_schema = specs[0].sink.table.schema.clone();
    let reports = run_specs(specs).await.map_err(|e| format!("{e:#}\n--- script ---\n{sql}"))?;
    let metrics = reports[0].metrics;
    let (actual, written) = if updating {
        // A changelog (`op` first): the table it describes.
        let changes = rows_from_jsonl(&dir.file(&out), &sink_schema).map_err(|e| format!("{e:#}"))?;
        let written = changes.len();
        let changes: Vec<(String, Row)> = changes
            .into_iter()
            .map(|mut row| match row.remove(0) {
                Cell::Str(op) => Ok((op, row)),
                other => Err(format!("a changelog row without an op: {other}")),
            })
            .collect::<Result<_, _>>()?;
        (apply_changelog(&changes).map_err(|e| format!("{e:#}\n--- script ---\n{sql}"))?, written)
    } else {
        let rows = rows_from_jsonl(&dir.file(&out), &expected.schema).map_err(|e| format!("{e:#}"))?;
        let written = rows.len();
        (rows, written)
    };

    let mut problems = String::new();
    if let Some(diff) = diff_rows(&expected.rows, &actual, TOLERANCE) {
        let _ = writeln!(problems, "output differs from the oracle: {diff}");
    }
    if metrics.late_rows != expected.late_rows {
        let _ = writeln!(problems, "late_rows = {}, oracle says {}", metrics.late_rows, expected.late_rows);
    }
    if metrics.rows_in != input_rows as u64 {
        let _ = writeln!(problems, "rows_in = {}, the inputs have {input_rows} rows", metrics.rows_in);
    }
    if metrics.rows_out != written as u64 {
        let _ = writeln!(problems, "rows_out = {}, but the sink file has {written} rows", metrics.rows_out);
    }
    if metrics.bad_records != 0 {
        let _ = writeln!(problems, "bad_records = {}", metrics.bad_records);
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{problems}--- script ---\n{sql}")) }
}

/// Per seed, the shape of each side's rows.
type Seeds = &'static [&'static [Shape]];

/// What one seed of one case showed, for the summary and the coverage checks.
#[derive(Debug)]
struct SeedSummary {
    seed: u64,
    late_by_side: Vec<u64>,
    behind_watermark: usize,
    result_rows: usize,
}

async fn check(cases: &[Case], seeds: Seeds) -> Vec<(&'static str, Vec<SeedSummary>)> {
    check_in(cases, seeds, MATRIX).await
}

/// Moves each repeated event time on by a millisecond until it is new (see [`Side`]).
fn distinct_times(mut events: Vec<Ev>) -> Vec<Ev> {
    let mut seen = std::collections::HashSet::new();
    for e in &mut events {
        while !seen.insert(e.ts) {
            e.ts += 1;
        }
    }
    events
}

/// [`check`] at the given (parallelism, batch size) pairs.
async fn check_in(cases: &[Case], seeds: Seeds, matrix: &[(usize, usize)]) -> Vec<(&'static str, Vec<SeedSummary>)> {
    let started = std::time::Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let mut runs = 0;
    let mut summaries = Vec::new();
    let mut dirs = Vec::new();
    for case in cases {
        let mut by_seed = Vec::new();
        for shapes in seeds {
            assert_eq!(shapes.len(), case.sides.len(), "case '{}': a shape per side", case.name);
            let seed = shapes[0].seed;
            let inputs: Vec<Vec<Ev>> = shapes
                .iter()
                .zip(case.sides)
                .map(|(shape, side)| {
                    let events = generate(shape);
                    if side.distinct_times { distinct_times(events) } else { events }
                })
                .collect();
            let expected =
                oracle(case, &inputs).await.unwrap_or_else(|e| panic!("case '{}' seed {seed}: {e:#}", case.name));
            let behind =
                case.sides.iter().zip(&inputs).map(|(side, events)| behind_watermark(events, side.delay_ms)).sum();
            by_seed.push(SeedSummary {
                seed,
                late_by_side: expected.late_by_side.clone(),
                behind_watermark: behind,
                result_rows: expected.rows.len(),
            });

            let dir = TestDir::new(&format!("graph-oracle-{}-seed{seed}", case.name));
            for ((side, events), shape) in case.sides.iter().zip(&inputs).zip(shapes.iter()) {
                let mut rng = SmallRng::seed_from_u64(shape.seed ^ 0x5eed);
                let lines: Vec<Value> = events.iter().map(|e| ev_json(e, &mut rng)).collect();
                write_jsonl(&dir.file(&format!("{}.jsonl", side.name)), &lines);
            }
            let input_rows = inputs.iter().map(Vec::len).sum();
            for &(parallelism, batch) in matrix {
                runs += 1;
                if let Err(message) = run_one(case, &dir, input_rows, &expected, parallelism, batch).await {
                    failures.push(format!(
                        "case '{}' seed {seed} parallelism {parallelism} batch size {batch}:\n{message}",
                        case.name
                    ));
                }
            }
            dirs.push(dir);
        }
        summaries.push((case.name, by_seed));
    }
    let mut report = format!(
        "{runs} runs in {:.1?}; (seed, late rows per side, rows behind the watermark, result rows):",
        started.elapsed()
    );
    for (name, by_seed) in &summaries {
        let seeds: Vec<String> = by_seed
            .iter()
            .map(|s| format!("({}, {:?}, {}, {})", s.seed, s.late_by_side, s.behind_watermark, s.result_rows))
            .collect();
        let _ = write!(report, "\n  {name}: {}", seeds.join(" "));
    }
    eprintln!("{report}");
    if !failures.is_empty() {
        let mut message = format!("{} of {runs} runs differ from the oracle.\n\n{}", failures.len(), failures[0]);
        for other in &failures[1..] {
            let mut lines = other.lines();
            let _ = write!(message, "\n\nalso: {} {}", lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        }
        panic!("{message}");
    }
    for (name, by_seed) in &summaries {
        assert!(by_seed.iter().all(|s| s.result_rows > 0), "case '{name}': a seed gave no result rows: {by_seed:?}");
    }
    summaries
}

// ---------------------------------------------------------------------------------------------
// 1. Regular joins of two disordered streams.

const JOIN_SIDES: &[Side] = &[
    Side { name: "a", delay_ms: 1_000, distinct_times: false },
    Side { name: "b", delay_ms: 2_000, distinct_times: false },
];

const JOIN_SEEDS: Seeds = &[
    &[
        Shape {
            seed: 101,
            rows: 500,
            disorder: 0.2,
            max_back_ms: 8_000,
            step_ms: (0, 300),
            base_ms: 1_710_000_000_000,
            k2_range: 40,
            nulls: 0.1,
        },
        Shape {
            seed: 102,
            rows: 400,
            disorder: 0.3,
            max_back_ms: 6_000,
            step_ms: (0, 400),
            base_ms: 1_710_000_003_217,
            k2_range: 40,
            nulls: 0.1,
        },
    ],
    // Crosses the epoch; side b much denser and far more disordered than side a.
    &[
        Shape {
            seed: 103,
            rows: 300,
            disorder: 0.05,
            max_back_ms: 3_000,
            step_ms: (0, 500),
            base_ms: -40_000,
            k2_range: 30,
            nulls: 0.15,
        },
        Shape {
            seed: 104,
            rows: 700,
            disorder: 0.5,
            max_back_ms: 12_000,
            step_ms: (0, 150),
            base_ms: -45_000,
            k2_range: 30,
            nulls: 0.05,
        },
    ], // Dense, many NULL keys on side a, and side a going back far behind its watermark.
    &[
        Shape {
            seed: 105,
            rows: 800,
            disorder: 0.1,
            max_back_ms: 20_000,
            step_ms: (0, 50),
            base_ms: 1_650_000_000_500,
            k2_range: 60,
            nulls: 0.2,
        },
        Shape {
            seed: 106,
            rows: 800,
            disorder: 0.25,
            max_back_ms: 3_000,
            step_ms: (0, 50),
            base_ms: 1_650_000_000_000,
            k2_range: 60,
            nulls: 0.02,
        },
    ],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_of_two_disordered_streams_matches_the_batch_join() {
    let cases = [
        // One INT key, a residual over both sides (NULL v never passes it).
        Case {
            name: "join-on",
            sides: JOIN_SIDES,
            window: None,
            interval: false,
            template: "SELECT a.ts AS a_ts, a.k AS a_k, a.k2 AS k2, a.v AS a_v, b.ts AS b_ts, b.k AS b_k, \
                       b.v AS b_v, b.d AS b_d \
                       FROM {a} JOIN {b} ON a.k2 = b.k2 AND a.v < b.v",
        },
        // A comma join: two keys (STRING, INT) and an OR residual, all in WHERE.
        Case {
            name: "join-comma",
            sides: JOIN_SIDES,
            window: None,
            interval: false,
            template: "SELECT a.k AS k, a.k2 AS k2, a.d AS a_d, b.d AS b_d, a.ts AS a_ts, b.ts AS b_ts \
                       FROM {a}, {b} WHERE a.k = b.k AND a.k2 = b.k2 AND (a.d > b.d OR b.v IS NULL)",
        },
        // A key expression of another type (BIGINT against INT), a residual on event times, and
        // an expression over both sides in SELECT.
        Case {
            name: "join-expr",
            sides: JOIN_SIDES,
            window: None,
            interval: false,
            template: "SELECT a.k2 AS a_k2, b.v AS b_v, a.ts AS a_ts, b.ts AS b_ts, a.v + b.v AS vv \
                       FROM {a} JOIN {b} ON b.v % 40 = a.k2 AND a.ts <= b.ts + INTERVAL '3' SECOND",
        },
    ];
    let summaries = check(&cases, JOIN_SEEDS).await;
    for (name, by_seed) in &summaries {
        assert!(
            by_seed.iter().all(|s| s.late_by_side.iter().all(|&late| late == 0)),
            "case '{name}': a regular join has no late rows"
        );
        // The inputs go back further than the watermark, so a join that dropped rows behind it
        // (or waited for it) would differ from the batch join.
        assert!(
            by_seed.iter().all(|s| s.behind_watermark > 10),
            "case '{name}': too few rows behind the watermark to test that none is dropped: {by_seed:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Cascaded windows.

const ONE_SIDE: &[Side] = &[Side { name: "a", delay_ms: 2_000, distinct_times: false }];

const CASCADE_SEEDS: Seeds = &[
    &[Shape {
        seed: 201,
        rows: 1500,
        disorder: 0.2,
        max_back_ms: 9_000,
        step_ms: (0, 100),
        base_ms: 1_710_000_000_123,
        k2_range: 6,
        nulls: 0.05,
    }],
    // Crosses the epoch, dense and very disordered.
    &[Shape {
        seed: 202,
        rows: 1200,
        disorder: 0.45,
        max_back_ms: 10_000,
        step_ms: (0, 60),
        base_ms: -30_000,
        k2_range: 6,
        nulls: 0.05,
    }],
    // Sparse: windows with one row or none.
    &[Shape {
        seed: 203,
        rows: 400,
        disorder: 0.15,
        max_back_ms: 12_000,
        step_ms: (300, 5_000),
        base_ms: 1_600_000_000_000,
        k2_range: 6,
        nulls: 0.05,
    }],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascaded_windows_match_the_oracle() {
    let cases = [
        // Per window, over the per-key results of the same window.
        Case {
            name: "cascade-tumble",
            sides: ONE_SIDE,
            window: Some(Window::Tumble { size_s: 5 }),
            interval: false,
            template: "SELECT window_start, window_end, COUNT(*) AS keys, MAX(c) AS max_c, SUM(c) AS total, \
                       SUM(s) AS s, MIN(k) AS first_k \
                       FROM (SELECT k, window_start, window_end, COUNT(*) AS c, SUM(v) AS s \
                             FROM {a} GROUP BY k, window_start, window_end) AS per_key \
                       GROUP BY window_start, window_end",
        },
        // A histogram of the per-key counts: the second level has a key of its own.
        Case {
            name: "cascade-tumble-histogram",
            sides: ONE_SIDE,
            window: Some(Window::Tumble { size_s: 3 }),
            interval: false,
            template: "SELECT window_start, window_end, c, COUNT(*) AS n \
                       FROM (SELECT k2, window_start, window_end, COUNT(*) AS c \
                             FROM {a} GROUP BY k2, window_start, window_end) AS per_key \
                       GROUP BY window_start, window_end, c",
        },
        // Overlapping windows, with a filter between the levels.
        Case {
            name: "cascade-hop",
            sides: ONE_SIDE,
            window: Some(Window::Hop { slide_s: 2, size_s: 6 }),
            interval: false,
            template: "SELECT window_start, window_end, COUNT(*) AS n, SUM(c) AS total, MAX(mx) AS mx, \
                       MIN(mn) AS mn \
                       FROM (SELECT k2, window_start, window_end, COUNT(*) AS c, MAX(d) AS mx, MIN(v) AS mn \
                             FROM {a} GROUP BY k2, window_start, window_end) AS per_key \
                       WHERE c > 1 \
                       GROUP BY window_start, window_end",
        },
    ];
    let summaries = check(&cases, CASCADE_SEEDS).await;
    for (name, by_seed) in &summaries {
        assert!(
            by_seed.iter().all(|s| s.late_by_side.iter().all(|&late| late > 0)),
            "case '{name}': a seed had no late rows on some side: {by_seed:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Joins of windowed aggregations.

const TWO_SIDES: &[Side] = &[
    Side { name: "a", delay_ms: 2_000, distinct_times: false },
    Side { name: "b", delay_ms: 1_000, distinct_times: false },
];

const WINDOW_JOIN_SEEDS: Seeds = &[
    &[
        Shape {
            seed: 301,
            rows: 1200,
            disorder: 0.2,
            max_back_ms: 8_000,
            step_ms: (0, 120),
            base_ms: 1_710_000_000_000,
            k2_range: 5,
            nulls: 0.08,
        },
        Shape {
            seed: 302,
            rows: 900,
            disorder: 0.35,
            max_back_ms: 5_000,
            step_ms: (0, 160),
            base_ms: 1_710_000_000_700,
            k2_range: 5,
            nulls: 0.08,
        },
    ],
    // Side b starts later and is sparser, so its windows and watermark lag side a's.
    &[
        Shape {
            seed: 303,
            rows: 1000,
            disorder: 0.4,
            max_back_ms: 6_000,
            step_ms: (0, 80),
            base_ms: -20_000,
            k2_range: 4,
            nulls: 0.08,
        },
        Shape {
            seed: 304,
            rows: 500,
            disorder: 0.1,
            max_back_ms: 10_000,
            step_ms: (0, 300),
            base_ms: -10_000,
            k2_range: 4,
            nulls: 0.08,
        },
    ], // Sparse: windows with a row or two, and windows that only one side has.
    &[
        Shape {
            seed: 305,
            rows: 400,
            disorder: 0.2,
            max_back_ms: 12_000,
            step_ms: (200, 3_000),
            base_ms: 1_600_000_000_000,
            k2_range: 3,
            nulls: 0.08,
        },
        Shape {
            seed: 306,
            rows: 600,
            disorder: 0.3,
            max_back_ms: 6_000,
            step_ms: (100, 2_000),
            base_ms: 1_600_000_000_000,
            k2_range: 3,
            nulls: 0.08,
        },
    ],
];

/// HOP and CUMULATE over a UNION ALL: each row is judged by its own input's watermark, so a row may be late
/// for some of its windows and on time for the others while the operator watermark (the
/// minimum over both inputs) keeps those windows open for the other input's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_and_cumulate_over_a_union_judge_each_row_by_its_own_input() {
    let cases = [
        Case {
            name: "union-hop",
            sides: TWO_SIDES,
            window: Some(Window::Hop { slide_s: 2, size_s: 6 }),
            interval: false,
            template: "SELECT window_start, window_end, k, COUNT(*) AS c, SUM(v) AS s, MAX(d) AS mx \
                       FROM {a+b} GROUP BY window_start, window_end, k",
        },
        // CUMULATE the same way: a row may miss the early windows of its period, not the later.
        Case {
            name: "union-cumulate",
            sides: TWO_SIDES,
            window: Some(Window::Cumulate { step_s: 2, size_s: 8 }),
            interval: false,
            template: "SELECT window_start, window_end, k, COUNT(*) AS c, SUM(v) AS s, MAX(d) AS mx \
                       FROM {a+b} GROUP BY window_start, window_end, k",
        },
    ];
    let summaries = check(&cases, WINDOW_JOIN_SEEDS).await;
    for (name, by_seed) in &summaries {
        for side in 0..2 {
            assert!(
                by_seed.iter().map(|s| s.late_by_side[side]).sum::<u64>() > 0,
                "case '{name}': the seeds need late rows on side {side}: {by_seed:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_of_window_results_matches_the_oracle() {
    let cases = [
        // Nexmark q5/q8 style: per window and key on each side, joined on all three.
        Case {
            name: "window-join-tumble",
            sides: TWO_SIDES,
            window: Some(Window::Tumble { size_s: 5 }),
            interval: false,
            template: "SELECT l.window_start AS window_start, l.window_end AS window_end, l.k AS k, l.c AS l_c, \
                       l.s AS l_s, r.c AS r_c, r.mx AS r_mx \
                       FROM (SELECT k, window_start, window_end, COUNT(*) AS c, SUM(v) AS s \
                             FROM {a} GROUP BY k, window_start, window_end) AS l \
                       JOIN (SELECT k, window_start, window_end, COUNT(*) AS c, MAX(d) AS mx \
                             FROM {b} GROUP BY k, window_start, window_end) AS r \
                       ON l.window_start = r.window_start AND l.window_end = r.window_end AND l.k = r.k",
        },
        // Overlapping windows, a comma join with a residual over the aggregates.
        Case {
            name: "window-join-hop",
            sides: TWO_SIDES,
            window: Some(Window::Hop { slide_s: 2, size_s: 4 }),
            interval: false,
            template: "SELECT l.window_start AS window_start, l.window_end AS window_end, l.k2 AS k2, \
                       l.c AS l_c, r.c AS r_c, r.sd AS r_sd \
                       FROM (SELECT k2, window_start, window_end, COUNT(*) AS c \
                             FROM {a} GROUP BY k2, window_start, window_end) AS l, \
                            (SELECT k2, window_start, window_end, COUNT(*) AS c, SUM(d) AS sd \
                             FROM {b} GROUP BY k2, window_start, window_end) AS r \
                       WHERE l.window_start = r.window_start AND l.window_end = r.window_end \
                       AND l.k2 = r.k2 AND l.c >= r.c",
        },
        // Joined on the window alone: every key of one side with every key of the other.
        Case {
            name: "window-join-window-only",
            sides: TWO_SIDES,
            window: Some(Window::Tumble { size_s: 4 }),
            interval: false,
            template: "SELECT l.window_end AS window_end, l.k AS l_k, r.k2 AS r_k2, l.c AS l_c, r.c AS r_c \
                       FROM (SELECT k, window_start, window_end, COUNT(*) AS c \
                             FROM {a} GROUP BY k, window_start, window_end) AS l \
                       JOIN (SELECT k2, window_start, window_end, COUNT(*) AS c \
                             FROM {b} GROUP BY k2, window_start, window_end) AS r \
                       ON l.window_start = r.window_start AND l.window_end = r.window_end",
        },
    ];
    let summaries = check(&cases, WINDOW_JOIN_SEEDS).await;
    for (name, by_seed) in &summaries {
        assert!(
            by_seed.iter().all(|s| s.late_by_side.iter().all(|&late| late > 0)),
            "case '{name}': a seed had no late rows on some side: {by_seed:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Interval joins: rows judged late by their own watermark (`ts < wm(r)`), state expiring.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_join_matches_the_batch_join_over_rows_that_were_not_late() {
    let cases = [
        // Flink's BETWEEN form, asymmetric bounds.
        Case {
            name: "interval-between",
            sides: JOIN_SIDES,
            window: None,
            interval: true,
            template: "SELECT a.k2 AS k2, a.ts AS a_ts, b.ts AS b_ts, a.v AS a_v, b.v AS b_v \
                       FROM {a} JOIN {b} ON a.k2 = b.k2 \
                       AND a.ts BETWEEN b.ts - INTERVAL '2' SECOND AND b.ts + INTERVAL '1' SECOND",
        },
        // Inequalities written either way round, one strict, in WHERE of a comma join, with a
        // residual on values.
        Case {
            name: "interval-inequalities",
            sides: JOIN_SIDES,
            window: None,
            interval: true,
            template: "SELECT a.k AS k, a.ts AS a_ts, b.ts AS b_ts, a.d AS a_d, b.d AS b_d \
                       FROM {a}, {b} WHERE a.k = b.k AND b.ts + INTERVAL '4' SECOND > a.ts \
                       AND a.ts >= b.ts - INTERVAL '0.5' SECOND AND (a.v IS NULL OR a.v <> b.v)",
        },
    ];
    let summaries = check(&cases, JOIN_SEEDS).await;
    for (name, by_seed) in &summaries {
        assert!(
            by_seed.iter().all(|s| s.late_by_side.iter().all(|&late| late > 0)),
            "case '{name}': a seed had no late rows on some side: {by_seed:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Window joins: two window TVFs joined per window (INNER, LEFT, RIGHT, FULL).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_tvf_joins_match_the_batch_join_of_non_late_windowed_rows() {
    let tumble = Some(Window::Tumble { size_s: 5 });
    let cases = [
        // Flink's documented form, with a residual over both sides.
        Case {
            name: "tvf-join-inner",
            sides: TWO_SIDES,
            window: tumble,
            interval: false,
            template: "SELECT l.k AS k, l.window_start AS window_start, l.window_end AS window_end, \
                       l.ts AS l_ts, r.ts AS r_ts, l.v AS l_v, r.v AS r_v \
                       FROM (SELECT * FROM {a}) l JOIN (SELECT * FROM {b}) r \
                       ON l.k = r.k AND l.window_start = r.window_start AND l.window_end = r.window_end \
                       AND (l.v < r.v OR r.v IS NULL)",
        },
        // Overlapping windows, the TVF joined directly, unmatched left rows NULL-padded.
        Case {
            name: "tvf-join-left-hop",
            sides: TWO_SIDES,
            window: Some(Window::Hop { slide_s: 2, size_s: 4 }),
            interval: false,
            template: "SELECT l.k2 AS k2, l.window_start AS window_start, l.window_end AS window_end, l.ts AS l_ts, \
                       r.ts AS r_ts, r.window_start AS r_start, r.d AS r_d \
                       FROM {a} l LEFT JOIN {b} r \
                       ON l.k2 = r.k2 AND l.window_start = r.window_start AND l.window_end = r.window_end",
        },
        Case {
            name: "tvf-join-right",
            sides: TWO_SIDES,
            window: tumble,
            interval: false,
            template: "SELECT l.ts AS l_ts, l.window_end AS l_end, r.k AS k, r.ts AS r_ts, r.window_time AS r_time \
                       FROM (SELECT * FROM {a}) l RIGHT JOIN (SELECT * FROM {b}) r \
                       ON l.window_start = r.window_start AND l.window_end = r.window_end AND l.k = r.k \
                       AND l.k2 = r.k2",
        },
        // Both sides kept; the window taken from whichever side is there, as Flink users write it.
        Case {
            name: "tvf-join-full",
            sides: TWO_SIDES,
            window: tumble,
            interval: false,
            template: "SELECT COALESCE(l.window_start, r.window_start) AS window_start, l.k AS l_k, r.k AS r_k, \
                       l.ts AS l_ts, r.ts AS r_ts \
                       FROM (SELECT * FROM {a}) l FULL JOIN (SELECT * FROM {b}) r \
                       ON l.k = r.k AND l.window_start = r.window_start AND l.window_end = r.window_end",
        },
    ];
    let summaries = check(&cases, WINDOW_JOIN_SEEDS).await;
    for (name, by_seed) in &summaries {
        assert!(
            by_seed.iter().all(|s| s.late_by_side.iter().all(|&late| late > 0)),
            "case '{name}': a seed had no late rows on some side: {by_seed:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Outer joins of streams: a changelog whose final table is the batch outer join.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outer_joins_of_streams_end_as_the_batch_outer_join() {
    let cases = [
        // The ON condition decides what matches: a left row whose pairs all fail it stays padded.
        Case {
            name: "left-join",
            sides: JOIN_SIDES,
            window: None,
            interval: false,
            template: "SELECT a.k2 AS k2, a.ts AS a_ts, a.v AS a_v, b.ts AS b_ts, b.v AS b_v \
                       FROM {a} LEFT JOIN {b} ON a.k2 = b.k2 AND a.v < b.v",
        },
        Case {
            name: "full-join",
            sides: JOIN_SIDES,
            window: None,
            interval: false,
            template: "SELECT a.k AS a_k, b.k AS b_k, a.ts AS a_ts, b.ts AS b_ts \
                       FROM {a} FULL JOIN {b} ON a.k = b.k AND a.k2 = b.k2",
        },
        // Retractions flowing on into an aggregation.
        Case {
            name: "right-join-aggregated",
            sides: JOIN_SIDES,
            window: None,
            interval: false,
            template: "SELECT b.k2 AS k2, COUNT(*) AS n, COUNT(a.v) AS matched, MAX(a.v) AS mx, SUM(a.d) AS sd \
                       FROM {a} RIGHT JOIN {b} ON a.k2 = b.k2 AND a.k = b.k GROUP BY b.k2",
        },
    ];
    check(&cases, JOIN_SEEDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_of_updating_results_end_as_the_batch_join() {
    let cases = [
        // Each row of a with its key's running count on b: every count change retracts pairs.
        Case {
            name: "join-updating",
            sides: JOIN_SIDES,
            window: None,
            interval: false,
            template: "SELECT a.k2 AS k2, a.ts AS a_ts, c.n AS n, c.mx AS mx \
                       FROM {a} JOIN (SELECT k2, COUNT(*) AS n, MAX(v) AS mx FROM {b} GROUP BY k2) c ON a.k2 = c.k2",
        },
        // Two changelogs, an outer join with a condition on their values, aggregated again.
        Case {
            name: "full-join-of-updating",
            sides: JOIN_SIDES,
            window: None,
            interval: false,
            template: "SELECT x.k AS xk, y.k AS yk, x.n AS xn, y.s AS ys \
                       FROM (SELECT k, COUNT(*) AS n FROM {a} GROUP BY k) x \
                       FULL JOIN (SELECT k, SUM(v) AS s FROM {b} GROUP BY k) y ON x.k = y.k AND x.n * 100 < y.s",
        },
        Case {
            name: "left-join-of-updating-aggregated",
            sides: JOIN_SIDES,
            window: None,
            interval: false,
            template: "SELECT c.n AS n, COUNT(*) AS rows_, COUNT(b.v) AS matched \
                       FROM (SELECT k2, COUNT(*) AS n FROM {a} GROUP BY k2) c \
                       LEFT JOIN {b} ON c.k2 = b.k2 AND b.v > 100 GROUP BY c.n",
        },
    ];
    check(&cases, JOIN_SEEDS).await;
}

// ---------------------------------------------------------------------------------------------
// 7. OVER aggregations and LAG: one row out per row in that is not behind its own watermark.

/// Parallelism 1 and 4, batch sizes 1 and 8192 (and 64).
const OVER_MATRIX: &[(usize, usize)] = &[(1, 1), (1, 8192), (4, 1), (4, 64), (4, 8192)];

const OVER_SIDE: &[Side] = &[Side { name: "a", delay_ms: 1_500, distinct_times: false }];
const OVER_DISTINCT_SIDE: &[Side] = &[Side { name: "a", delay_ms: 1_500, distinct_times: true }];

/// A RANGE frame over an interval of event time, per key and over the whole stream.
const OVER_RANGE: &str = "SELECT k, ts, v, d, \
    COUNT(*) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '3' SECOND PRECEDING AND CURRENT ROW) AS c, \
    SUM(v) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '3' SECOND PRECEDING AND CURRENT ROW) AS s, \
    MIN(d) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1.5' SECOND PRECEDING AND CURRENT ROW) AS mn, \
    AVG(v) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '0' SECOND PRECEDING AND CURRENT ROW) AS peers, \
    COUNT(*) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN CURRENT ROW AND CURRENT ROW) AS same_time \
    FROM {a}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_aggregations_match_the_batch_query_over_rows_on_time() {
    let cases = [
        Case { name: "over-range", sides: OVER_SIDE, window: None, interval: true, template: OVER_RANGE },
        // No PARTITION BY: one instance sees every row.
        Case {
            name: "over-range-unpartitioned",
            sides: OVER_SIDE,
            window: None,
            interval: true,
            template: "SELECT ts, v, MAX(v) OVER (ORDER BY ts RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND \
                       CURRENT ROW) AS mx, COUNT(k) OVER (ORDER BY ts RANGE BETWEEN INTERVAL '2' SECOND PRECEDING \
                       AND CURRENT ROW) AS c FROM {a}",
        },
        // ROWS frames and LAG order rows within a key: event times are distinct.
        Case {
            name: "over-rows-and-lag",
            sides: OVER_DISTINCT_SIDE,
            window: None,
            interval: true,
            template: "SELECT k2, ts, v, \
                       SUM(v) OVER (PARTITION BY k2 ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS s, \
                       COUNT(d) OVER (PARTITION BY k2 ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS c, \
                       LAG(v) OVER (PARTITION BY k2 ORDER BY ts) AS prev, \
                       LAG(d, 2, 0.5) OVER (PARTITION BY k2 ORDER BY ts) AS prev2, \
                       LEAD(v) OVER (PARTITION BY k2 ORDER BY ts) AS nxt, \
                       LEAD(d, 3, -1.0) OVER (PARTITION BY k2 ORDER BY ts) AS nxt3 \
                       FROM {a}",
        },
        // A held LEAD row's RANGE frame reaches back from its own time, below the watermark.
        Case {
            name: "range-beside-lead",
            sides: OVER_DISTINCT_SIDE,
            window: None,
            interval: true,
            template: "SELECT k, ts, SUM(v) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '3' SECOND \
                       PRECEDING AND CURRENT ROW) AS s, LEAD(v, 2) OVER (PARTITION BY k ORDER BY ts) AS nxt FROM {a}",
        },
        // LEAD holds rows (and the watermark) back: an OVER after it must see none of them late.
        Case {
            name: "lag-after-lead",
            sides: OVER_DISTINCT_SIDE,
            window: None,
            interval: true,
            template: "SELECT k, ts, nxt, LAG(nxt) OVER (PARTITION BY k ORDER BY ts) AS prev_nxt, \
                       COUNT(*) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND \
                       CURRENT ROW) AS c FROM (SELECT k, ts, LEAD(v, 2) OVER (PARTITION BY k ORDER BY ts) AS nxt \
                       FROM {a})",
        },
    ];
    let summaries = check_in(&cases, CASCADE_SEEDS, OVER_MATRIX).await;
    for (name, by_seed) in &summaries {
        assert!(by_seed.iter().all(|s| s.late_by_side[0] > 0), "case '{name}': a seed had no late rows: {by_seed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_over_window_results_matches_the_batch_query() {
    let cases = [
        // Each key's count per window against its previous window's.
        Case {
            name: "lag-over-tumble",
            sides: ONE_SIDE,
            window: Some(Window::Tumble { size_s: 2 }),
            interval: false,
            template: "SELECT k, window_start, n, LAG(n) OVER (PARTITION BY k ORDER BY window_time) AS prev, \
                       n - LAG(n, 1, 0) OVER (PARTITION BY k ORDER BY window_time) AS delta, \
                       SUM(n) OVER (PARTITION BY k ORDER BY window_time RANGE BETWEEN INTERVAL '6' SECOND \
                       PRECEDING AND CURRENT ROW) AS recent \
                       FROM (SELECT k, window_start, window_end, window_time, COUNT(*) AS n FROM {a} \
                       GROUP BY k, window_start, window_end, window_time)",
        },
    ];
    let summaries = check_in(&cases, CASCADE_SEEDS, OVER_MATRIX).await;
    for (name, by_seed) in &summaries {
        assert!(by_seed.iter().all(|s| s.late_by_side[0] > 0), "case '{name}': a seed had no late rows: {by_seed:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Top-N within windows, and the first rows per key (deduplication): append-only.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_top_n_and_first_rows_per_key_match_the_batch_query() {
    let cases = [
        // Flink's window Top-N over window results, with a RANK over another order beside it.
        Case {
            name: "window-top-n",
            sides: ONE_SIDE,
            window: Some(Window::Tumble { size_s: 2 }),
            interval: false,
            template: "SELECT window_start, window_end, k, n, s, rn, r FROM (\
                       SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY n DESC, k ASC) AS rn, \
                       RANK() OVER (PARTITION BY window_start, window_end ORDER BY n DESC) AS r \
                       FROM (SELECT window_start, window_end, k, COUNT(*) AS n, SUM(v) AS s FROM {a} \
                       GROUP BY window_start, window_end, k)) WHERE rn <= 2",
        },
        // Per window and key over HOP results, LEAD within the window.
        Case {
            name: "window-top-n-hop-keyed",
            sides: ONE_SIDE,
            window: Some(Window::Hop { slide_s: 2, size_s: 6 }),
            interval: false,
            template: "SELECT window_start, k, k2, mx, rn, nxt FROM (\
                       SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, k ORDER BY mx DESC, k2) AS rn, \
                       LEAD(k2) OVER (PARTITION BY window_start, k ORDER BY mx DESC, k2) AS nxt \
                       FROM (SELECT window_start, window_end, k, k2, MAX(d) AS mx FROM {a} \
                       GROUP BY window_start, window_end, k, k2)) WHERE rn < 3",
        },
        // Deduplication: the first row of each key in event time.
        Case {
            name: "dedup-first",
            sides: OVER_DISTINCT_SIDE,
            window: None,
            interval: true,
            template: "SELECT k, ts, v FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS rn FROM {a}) \
                       WHERE rn = 1",
        },
        Case {
            name: "first-3-per-key",
            sides: OVER_DISTINCT_SIDE,
            window: None,
            interval: true,
            template: "SELECT k2, ts, v, rn FROM (SELECT k2, ts, v, ROW_NUMBER() OVER (PARTITION BY k2 ORDER BY ts ASC) \
                       AS rn FROM {a}) t WHERE 3 >= rn",
        },
    ];
    check_in(&cases, CASCADE_SEEDS, OVER_MATRIX).await;
}

// ---------------------------------------------------------------------------------------------
// 9. The updating Top-N and the last row per key: a changelog ending as the batch Top-N.

const TOP_N_SIDES: &[Side] = &[
    Side { name: "a", delay_ms: 1_000, distinct_times: true },
    Side { name: "b", delay_ms: 2_000, distinct_times: true },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_top_n_ends_as_the_batch_top_n() {
    let one_side = [
        // The 3 largest v per key, ties broken by time; the rank is in the result.
        Case {
            name: "top-n-updating",
            sides: OVER_DISTINCT_SIDE,
            window: None,
            interval: false,
            template: "SELECT k, ts, v, rn FROM (SELECT k, ts, v, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC, \
                       ts ASC) AS rn FROM {a}) WHERE rn <= 3",
        },
        // Deduplication keeping the last row of each key in event time.
        Case {
            name: "dedup-last",
            sides: OVER_DISTINCT_SIDE,
            window: None,
            interval: false,
            template: "SELECT k2, ts, v FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k2 ORDER BY ts DESC) AS rn \
                       FROM {a}) WHERE rn = 1",
        },
        // No PARTITION BY: the 5 smallest d of the whole stream, NULLs ranked as DataFusion does.
        Case {
            name: "top-n-global",
            sides: OVER_DISTINCT_SIDE,
            window: None,
            interval: false,
            template: "SELECT ts, d FROM (SELECT ts, d, ROW_NUMBER() OVER (ORDER BY d, ts) AS rn FROM {a}) WHERE rn < 6",
        },
    ];
    check_in(&one_side, CASCADE_SEEDS, OVER_MATRIX).await;
    // Over join results (no event time), as in Nexmark q9: the best match of each row of a.
    let join = [Case {
        name: "top-n-over-join",
        sides: TOP_N_SIDES,
        window: None,
        interval: false,
        template: "SELECT a_ts, k2, b_ts, b_v FROM (SELECT a.ts AS a_ts, a.k2 AS k2, b.ts AS b_ts, b.v AS b_v, \
                   ROW_NUMBER() OVER (PARTITION BY a.ts ORDER BY b.v DESC, b.ts) AS rn \
                   FROM {a} JOIN {b} ON a.k2 = b.k2) WHERE rn <= 1",
    }];
    check_in(&join, JOIN_SEEDS, OVER_MATRIX).await;
}

// ---------------------------------------------------------------------------------------------
// 10. SESSION windows: late rows are those behind their own watermark.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_windows_match_the_batch_sessions_of_rows_on_time() {
    let cases = [
        Case {
            name: "session-partitioned",
            sides: OVER_SIDE,
            window: None,
            interval: true,
            template: "SELECT k, window_start, window_end, window_time, COUNT(*) AS n, SUM(v) AS s, MAX(d) AS mx \
                       FROM {session a k 1} GROUP BY k, window_start, window_end, window_time",
        },
        // Flink's GROUP BY form: no PARTITION BY, the GROUP BY key keys the sessions; HAVING after.
        Case {
            name: "session-grouped",
            sides: OVER_SIDE,
            window: None,
            interval: true,
            template: "SELECT window_start, k2, window_end, COUNT(DISTINCT k) AS kinds, AVG(d) AS avg_d \
                       FROM {session a k2 2 grouped} GROUP BY window_start, window_end, k2 HAVING COUNT(*) > 1",
        },
    ];
    let summaries = check_in(&cases, CASCADE_SEEDS, OVER_MATRIX).await;
    for (name, by_seed) in &summaries {
        assert!(by_seed.iter().all(|s| s.late_by_side[0] > 0), "case '{name}': a seed had no late rows: {by_seed:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 11. CUMULATE at parallelism 1 and 4, batch sizes 1 and 8192, with its results cascaded.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulate_windows_match_the_oracle() {
    let cumulate = Some(Window::Cumulate { step_s: 2, size_s: 6 });
    let cases = [
        Case {
            name: "cumulate",
            sides: ONE_SIDE,
            window: cumulate,
            interval: false,
            template: "SELECT window_start, window_end, k, COUNT(*) AS c, SUM(v) AS s, MIN(d) AS mn, \
                       COUNT(DISTINCT k2) AS dk FROM {a} GROUP BY window_start, window_end, k",
        },
        // Per window over the per-key results of the same window.
        Case {
            name: "cumulate-cascaded",
            sides: ONE_SIDE,
            window: cumulate,
            interval: false,
            template: "SELECT window_start, window_end, COUNT(*) AS keys, MAX(c) AS most FROM (\
                       SELECT window_start, window_end, k, COUNT(*) AS c FROM {a} GROUP BY window_start, window_end, k) \
                       GROUP BY window_start, window_end",
        },
    ];
    let summaries = check_in(&cases, CASCADE_SEEDS, OVER_MATRIX).await;
    for (name, by_seed) in &summaries {
        assert!(by_seed.iter().all(|s| s.late_by_side[0] > 0), "case '{name}': a seed had no late rows: {by_seed:?}");
    }
}
