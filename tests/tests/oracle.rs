//! Streaming window aggregation against an independent batch oracle.
//!
//! Seeded random inputs (mostly increasing event times, some rows going back further than the
//! watermark delay, nulls, several timestamp spellings) go through the whole stack: SQL script →
//! `Session::execute` → pipeline → file sink. The oracle (`streamsql_tests::oracle`) applies the
//! event-time contract row by row in plain Rust and runs the same GROUP BY as batch SQL in
//! DataFusion. Output must match as a multiset for every parallelism and batch size, and the
//! pipeline's `late_rows` must equal the oracle's late count.

use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use streamsql_tests::oracle::{EVENT_COLUMNS, Event, Expected, Oracle, Query, Window};
use streamsql_tests::{TestDir, describe_sql_error, diff_rows, plan, rows_from_jsonl, run_specs, write_jsonl};

/// Relative tolerance for floating-point aggregates (AVG over different merge orders).
const TOLERANCE: f64 = 1e-9;

/// One random input.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    seed: u64,
    rows: usize,
    /// Probability that a row goes back in time (up to `max_back_ms` behind the largest so far).
    disorder: f64,
    max_back_ms: i64,
    /// Range of the forward step between in-order rows, ms.
    step_ms: (i64, i64),
    /// Event time of the first row, ms since the epoch.
    base_ms: i64,
}

const SCENARIOS: &[Scenario] = &[
    // In order (apart from snapping to whole seconds): no late rows.
    Scenario { seed: 11, rows: 300, disorder: 0.0, max_back_ms: 0, step_ms: (0, 400), base_ms: 1_710_000_000_000 },
    Scenario { seed: 12, rows: 2000, disorder: 0.1, max_back_ms: 6_000, step_ms: (0, 400), base_ms: 1_710_000_000_123 },
    // Crosses the epoch: negative event times, windows around 0.
    Scenario { seed: 13, rows: 800, disorder: 0.3, max_back_ms: 5_000, step_ms: (0, 400), base_ms: -90_000 },
    Scenario {
        seed: 14,
        rows: 1200,
        disorder: 0.2,
        max_back_ms: 12_000,
        step_ms: (0, 400),
        base_ms: 1_700_000_000_000,
    },
    // Dense and very disordered: many rows per window, many late.
    Scenario { seed: 15, rows: 1500, disorder: 0.5, max_back_ms: 4_000, step_ms: (0, 60), base_ms: 1_650_000_000_500 },
    // Sparse: most windows hold one row, and rows skip whole windows.
    Scenario {
        seed: 16,
        rows: 400,
        disorder: 0.15,
        max_back_ms: 9_000,
        step_ms: (500, 7_000),
        base_ms: 1_600_000_000_000,
    },
];

/// `SET 'parallelism.default'`, `SET 'execution.batch-size'`.
const FULL_MATRIX: &[(usize, usize)] = &[(1, 1), (1, 1000), (2, 8192), (3, 2), (4, 1), (4, 7), (4, 1000)];
const SMALL_MATRIX: &[(usize, usize)] = &[(1, 1), (4, 7), (4, 1000)];

const KEYS: &[&str] = &["alpha", "beta", "gamma", "delta", "epsilon"];

fn generate(s: &Scenario) -> Vec<Event> {
    let mut rng = SmallRng::seed_from_u64(s.seed);
    let key_count = rng.random_range(2..=KEYS.len());
    let mut max = s.base_ms;
    let mut events = Vec::with_capacity(s.rows);
    for i in 0..s.rows {
        let mut ts = if i > 0 && s.max_back_ms > 0 && rng.random_bool(s.disorder) {
            max - rng.random_range(0..=s.max_back_ms)
        } else {
            let step = if rng.random_bool(0.01) {
                rng.random_range(5_000..30_000) // a gap: whole windows with no rows
            } else {
                rng.random_range(s.step_ms.0..=s.step_ms.1)
            };
            max + step
        };
        // Whole seconds now and then, so rows land exactly on window starts / ends and the
        // watermark lands exactly on window ends.
        if rng.random_bool(0.1) {
            ts = ts.div_euclid(1000) * 1000;
        }
        max = max.max(ts);
        events.push(Event {
            ts,
            k: (!rng.random_bool(0.02)).then(|| KEYS[rng.random_range(0..key_count)].to_string()),
            k2: (!rng.random_bool(0.05)).then(|| rng.random_range(0..6)),
            v: (!rng.random_bool(0.1)).then(|| rng.random_range(-50..1000)),
            d: (!rng.random_bool(0.05)).then(|| f64::from(rng.random_range(-1_000_000..1_000_000)) / 1000.0),
            p: (!rng.random_bool(0.05)).then(|| rng.random_range(-10_000_000..10_000_000)),
            ok: (!rng.random_bool(0.05)).then(|| rng.random_bool(0.6)),
            day: (!rng.random_bool(0.05)).then(|| rng.random_range(19_000..19_500)),
        });
    }
    events
}

/// The event as a JSON line, with the timestamp in one of the accepted spellings and nulls
/// either explicit or left out.
fn event_json(e: &Event, rng: &mut SmallRng) -> Value {
    let t = chrono::DateTime::from_timestamp_millis(e.ts).expect("timestamp in range");
    let ts = match rng.random_range(0..5) {
        0 => json!(t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
        1 => json!(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        2 => json!(e.ts),
        3 => {
            let offset = chrono::FixedOffset::east_opt(2 * 3600).expect("valid offset");
            json!(t.with_timezone(&offset).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string())
        }
        _ if e.ts % 1000 == 0 => json!(t.format("%Y-%m-%d %H:%M:%S").to_string()),
        _ => json!(t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
    };
    let mut object = Map::new();
    object.insert("ts".into(), ts);
    let mut put = |key: &str, value: Option<Value>, rng: &mut SmallRng| match value {
        Some(v) => {
            object.insert(key.into(), v);
        }
        None if rng.random_bool(0.5) => {
            object.insert(key.into(), Value::Null);
        }
        None => {}
    };
    put("k", e.k.clone().map(Value::from), rng);
    put("k2", e.k2.map(Value::from), rng);
    put("v", e.v.map(Value::from), rng);
    put("d", e.d.map(Value::from), rng);
    // DECIMAL(10, 2) as a JSON number or as a string.
    let p = e.p.map(|cents| {
        let text = format!("{}{}.{:02}", if cents < 0 { "-" } else { "" }, cents.abs() / 100, cents.abs() % 100);
        if rng.random_bool(0.5) { Value::from(text) } else { serde_json::from_str(&text).expect("a JSON number") }
    });
    put("p", p, rng);
    put("ok", e.ok.map(Value::from), rng);
    let day = e.day.map(|d| {
        let date = chrono::DateTime::from_timestamp(i64::from(d) * 86_400, 0).expect("date in range");
        Value::from(date.format("%Y-%m-%d").to_string())
    });
    put("day", day, rng);
    Value::Object(object)
}

/// The sink column list for the oracle's result schema.
fn sink_columns(expected: &Expected) -> String {
    streamsql_tests::oracle::sql_columns(&expected.schema)
}

struct Case {
    name: &'static str,
    window: Window,
    delay_ms: i64,
    query: Query,
    /// `SET 'table.optimizer.agg-phase-strategy'` (default: AUTO).
    phases: Option<&'static str>,
    /// Window over `CREATE VIEW filtered AS SELECT * FROM events WHERE <this>` instead of over
    /// `events`.
    view_filter: Option<&'static str>,
}

impl Case {
    fn new(name: &'static str, window: Window, delay_s: i64, query: Query) -> Self {
        Case { name, window, delay_ms: delay_s * 1000, query, phases: None, view_filter: None }
    }

    /// The expression after `WATERMARK FOR ts AS`.
    fn watermark_sql(&self) -> String {
        match self.delay_ms {
            0 => "ts".to_string(),
            ms if ms % 1000 == 0 => format!("ts - INTERVAL '{}' SECOND", ms / 1000),
            ms => format!("ts - INTERVAL '{}.{:03}' SECOND", ms / 1000, ms % 1000),
        }
    }

    /// The query the oracle runs: a view's filter becomes a WHERE clause.
    fn oracle_query(&self) -> Query {
        let mut query = self.query.clone();
        if let Some(view) = self.view_filter {
            query.filter = Some(match &query.filter {
                Some(f) => format!("({view}) AND ({f})"),
                None => view.to_string(),
            });
        }
        query
    }
}

fn script(case: &Case, dir: &TestDir, out: &str, columns: &str, parallelism: usize, batch: usize) -> String {
    let watermark = case.watermark_sql();
    let (view, source) = match case.view_filter {
        Some(filter) => (format!("CREATE VIEW filtered AS SELECT * FROM events WHERE {filter};\n"), "filtered"),
        None => (String::new(), "events"),
    };
    let phases = case.phases.map(|p| format!("SET 'table.optimizer.agg-phase-strategy' = '{p}';\n"));
    format!(
        "SET 'parallelism.default' = '{parallelism}';\n\
         SET 'execution.batch-size' = '{batch}';\n\
         {phases}\
         CREATE TABLE events (\n  {EVENT_COLUMNS},\n  WATERMARK FOR ts AS {watermark}\n\
         ) WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
         {view}\
         CREATE TABLE out ({columns})\n  WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');\n\
         INSERT INTO out\n{query};\n",
        input = dir.sql_path("in.jsonl"),
        output = dir.sql_path(out),
        phases = phases.unwrap_or_default(),
        query = case.query.streaming_sql(source, case.window),
    )
}

/// Runs one configuration; `Err` describes how it differs from the oracle.
async fn run_one(
    case: &Case,
    dir: &TestDir,
    events: &[Event],
    expected: &Expected,
    parallelism: usize,
    batch: usize,
) -> Result<(), String> {
    let out = format!("out-p{parallelism}-b{batch}.jsonl");
    let sql = script(case, dir, &out, &sink_columns(expected), parallelism, batch);
    let specs =
        plan(&sql).map_err(|e| format!("planning failed: {}\n--- script ---\n{sql}", describe_sql_error(&e)))?;
    if specs.len() != 1 {
        return Err(format!("expected 1 pipeline, got {}", specs.len()));
    }
    if specs[0].parallelism != parallelism || specs[0].batch_size != batch {
        return Err(format!(
            "SET was not applied: pipeline has parallelism {} and batch size {}",
            specs[0].parallelism, specs[0].batch_size
        ));
    }
    let reports = run_specs(specs).await.map_err(|e| format!("{e:#}\n--- script ---\n{sql}"))?;
    let metrics = reports[0].metrics;
    let actual = rows_from_jsonl(&dir.file(&out), &expected.schema).map_err(|e| format!("{e:#}"))?;

    let mut problems = String::new();
    if let Some(diff) = diff_rows(&expected.rows, &actual, TOLERANCE) {
        let _ = writeln!(problems, "output differs from the oracle: {diff}");
    }
    if metrics.late_rows != expected.late_rows {
        let _ = writeln!(problems, "late_rows = {}, oracle says {}", metrics.late_rows, expected.late_rows);
    }
    if metrics.rows_in != events.len() as u64 {
        let _ = writeln!(problems, "rows_in = {}, input has {} rows", metrics.rows_in, events.len());
    }
    if metrics.rows_out != actual.len() as u64 {
        let _ = writeln!(problems, "rows_out = {}, but the sink file has {} rows", metrics.rows_out, actual.len());
    }
    if metrics.bad_records != 0 {
        let _ = writeln!(problems, "bad_records = {}", metrics.bad_records);
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{problems}--- script ---\n{sql}")) }
}

async fn check(case: Case, scenarios: &[Scenario], matrix: &[(usize, usize)]) {
    let started = std::time::Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let mut runs = 0;
    let mut late_by_seed = Vec::new();
    let mut dirs = Vec::new();
    for scenario in scenarios {
        let events = generate(scenario);
        let expected = Oracle::run(&events, case.delay_ms, case.window, &case.oracle_query())
            .await
            .unwrap_or_else(|e| panic!("oracle failed for case {}: {e:#}", case.name));
        late_by_seed.push((scenario.seed, expected.late_unfiltered, expected.late_rows, expected.rows.len()));

        let dir = TestDir::new(&format!("oracle-{}-seed{}", case.name, scenario.seed));
        let mut rng = SmallRng::seed_from_u64(scenario.seed ^ 0x5eed);
        let lines: Vec<Value> = events.iter().map(|e| event_json(e, &mut rng)).collect();
        write_jsonl(&dir.file("in.jsonl"), &lines);

        for &(parallelism, batch) in matrix {
            runs += 1;
            if let Err(message) = run_one(&case, &dir, &events, &expected, parallelism, batch).await {
                failures.push(format!(
                    "case '{}' seed {} ({} rows, disorder {}) parallelism {parallelism} batch size {batch}:\n{message}",
                    case.name, scenario.seed, scenario.rows, scenario.disorder
                ));
            }
        }
        // Keep the inputs of failing seeds (TestDir keeps them when the test panics).
        dirs.push(dir);
    }
    eprintln!(
        "case '{}': {runs} runs in {:.1?}; (seed, late rows, late after WHERE, result rows) = {late_by_seed:?}",
        case.name,
        started.elapsed()
    );
    if !failures.is_empty() {
        // The first failure in full; the rest by their first lines.
        let mut message = format!("{} of {runs} runs differ from the oracle.\n\n{}", failures.len(), failures[0]);
        for other in &failures[1..] {
            let mut lines = other.lines();
            let _ = write!(message, "\n\nalso: {} {}", lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        }
        panic!("{message}");
    }
    assert!(
        late_by_seed.iter().any(|&(_, late, _, _)| late > 0),
        "case '{}': no seed produced late rows, so lateness was not tested",
        case.name
    );
    assert!(
        late_by_seed.iter().any(|&(_, _, _, rows)| rows > 0),
        "case '{}': no seed produced any result row",
        case.name
    );
    assert!(
        late_by_seed.iter().any(|&(_, late, _, _)| late == 0),
        "case '{}': every seed produced late rows; the in-order seed should not",
        case.name
    );
}

fn all_aggregates() -> Query {
    Query {
        select: "window_start, window_end, k, COUNT(*) AS c, SUM(v) AS s, MIN(v) AS mn, MAX(v) AS mx, \
                 AVG(d) AS a, COUNT(DISTINCT k2) AS dc"
            .into(),
        filter: None,
        group_by: "window_start, window_end, k".into(),
        having: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumble_matches_oracle() {
    let window = Window::Tumble { size_s: 5 };
    check(Case::new("tumble-5s", window, 2, all_aggregates()), SCENARIOS, FULL_MATRIX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_matches_oracle() {
    let window = Window::Hop { slide_s: 1, size_s: 4 };
    check(Case::new("hop-1s-4s", window, 2, all_aggregates()), SCENARIOS, FULL_MATRIX).await;
}

/// Windows growing by 2 s up to 8 s from each period start; a row joins those still open for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulate_matches_oracle() {
    let window = Window::Cumulate { step_s: 2, size_s: 8 };
    check(Case::new("cumulate-2s-8s", window, 2, all_aggregates()), SCENARIOS, FULL_MATRIX).await;
}

/// The size is not a multiple of the slide: panes are gcd(2 s, 5 s) = 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_with_uneven_size_matches_oracle() {
    let window = Window::Hop { slide_s: 2, size_s: 5 };
    check(Case::new("hop-2s-5s", window, 2, all_aggregates()), SCENARIOS, FULL_MATRIX).await;
}

/// Every row across the exchange (ONE_PHASE) and every batch pre-aggregated before it
/// (TWO_PHASE, which AUTO also does for inputs this small) give the same results and late rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_and_two_phases_match_oracle() {
    for phases in ["ONE_PHASE", "TWO_PHASE"] {
        let window = Window::Hop { slide_s: 2, size_s: 6 };
        let case = Case { phases: Some(phases), ..Case::new("hop-2s-6s-phases", window, 2, all_aggregates()) };
        check(case, SCENARIOS, SMALL_MATRIX).await;
    }
}

/// No GROUP BY key besides the window: one group per window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_without_keys_matches_oracle() {
    let window = Window::Hop { slide_s: 2, size_s: 6 };
    let query = Query {
        select: "window_start, window_end, COUNT(*) AS c, SUM(v) AS s, AVG(d) AS a, COUNT(DISTINCT k) AS dk".into(),
        filter: None,
        group_by: "window_start, window_end".into(),
        having: None,
    };
    check(Case::new("hop-global", window, 2, query), SCENARIOS, SMALL_MATRIX).await;
}

/// WHERE drops rows before windowing (they still advance the watermark, which is assigned at
/// the source), so late rows are counted only among rows that pass it; HAVING filters groups,
/// including on an aggregate that is not selected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_and_having_match_oracle() {
    let window = Window::Hop { slide_s: 2, size_s: 5 };
    let query = Query {
        select: "window_start, window_end, k, COUNT(*) AS c, SUM(v) AS s, AVG(d) AS a".into(),
        filter: Some("d > -500 AND k <> 'gamma'".into()),
        group_by: "window_start, window_end, k".into(),
        having: Some("COUNT(*) > 2 AND MAX(d) > 0".into()),
    };
    check(Case::new("where-having", window, 2, query), SCENARIOS, SMALL_MATRIX).await;
}

/// The same key twice in GROUP BY groups as if it were written once, as a batch query does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_group_keys_match_oracle() {
    let window = Window::Tumble { size_s: 5 };
    let query = Query {
        select: "window_start, window_end, k, COUNT(*) AS c, SUM(v) AS s".into(),
        filter: None,
        group_by: "window_start, window_end, k, k, window_start".into(),
        having: None,
    };
    check(Case::new("duplicate-keys", window, 2, query), SCENARIOS, SMALL_MATRIX).await;
}

/// A CASE expression as a GROUP BY key, selected before the window columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_expression_key_matches_oracle() {
    let bucket =
        "CASE WHEN v IS NULL THEN 'none' WHEN v < 300 THEN 'small' WHEN v < 700 THEN 'medium' ELSE 'large' END";
    let window = Window::Tumble { size_s: 10 };
    let query = Query {
        select: format!("{bucket} AS bucket, window_start, window_end, COUNT(*) AS c, SUM(v) AS s, MAX(d) AS mxd"),
        filter: None,
        group_by: format!("window_start, window_end, {bucket}"),
        having: None,
    };
    check(Case::new("case-key", window, 1, query), SCENARIOS, SMALL_MATRIX).await;
}

/// A window over a view that filters the source: the view's WHERE acts like the query's, and
/// the watermark still comes from every source row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_over_a_filtering_view_matches_oracle() {
    let window = Window::Tumble { size_s: 3 };
    let query = Query {
        select: "window_start, window_end, k, COUNT(*) AS c, MIN(v) AS mn, MAX(d) AS mxd".into(),
        filter: None,
        group_by: "window_start, window_end, k".into(),
        having: None,
    };
    let mut case = Case::new("view", window, 2, query);
    case.view_filter = Some("v > 400 OR k = 'alpha'");
    check(case, SCENARIOS, SMALL_MATRIX).await;
}

/// DECIMAL, BOOLEAN and DATE columns, FILTER clauses on aggregates, `window_time`, and a
/// watermark delay longer than the slide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimals_dates_filters_and_window_time_match_oracle() {
    let window = Window::Hop { slide_s: 3, size_s: 6 };
    let query = Query {
        select: "window_start, window_end, window_time, k, SUM(p) AS sp, AVG(p) AS ap, MIN(p) AS mnp, \
                 MAX(day) AS last_day, COUNT(*) FILTER (WHERE ok) AS c_ok, SUM(v) FILTER (WHERE k2 > 2) AS s_f, \
                 COUNT(DISTINCT day) AS days"
            .into(),
        filter: None,
        group_by: "window_start, window_end, window_time, k".into(),
        having: None,
    };
    check(Case::new("types-filter", window, 7, query), SCENARIOS, SMALL_MATRIX).await;
}

/// Two INSERTs in one script, each planned with the settings in force when it is reached, over
/// windows written in MINUTE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_inserts_in_one_script_use_their_own_settings() {
    let tumble = Window::Tumble { size_s: 60 };
    let hop = Window::Hop { slide_s: 30, size_s: 120 };
    let query = all_aggregates();
    for scenario in SCENARIOS.iter().filter(|s| [12, 16].contains(&s.seed)) {
        let events = generate(scenario);
        let expected_a = Oracle::run(&events, 2_000, tumble, &query).await.expect("oracle");
        let expected_b = Oracle::run(&events, 2_000, hop, &query).await.expect("oracle");
        let dir = TestDir::new(&format!("oracle-two-inserts-seed{}", scenario.seed));
        let mut rng = SmallRng::seed_from_u64(scenario.seed);
        let lines: Vec<Value> = events.iter().map(|e| event_json(e, &mut rng)).collect();
        write_jsonl(&dir.file("in.jsonl"), &lines);
        let sql = format!(
            "SET 'parallelism.default' = '1';\n\
             SET 'execution.batch-size' = '5';\n\
             CREATE TABLE events ({EVENT_COLUMNS}, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)\n\
             \x20 WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
             CREATE TABLE out_a ({columns_a}) WITH ('connector' = 'file', 'path' = '{out_a}', 'format' = 'json');\n\
             CREATE TABLE out_b ({columns_b}) WITH ('connector' = 'file', 'path' = '{out_b}', 'format' = 'json');\n\
             INSERT INTO out_a {query_a};\n\
             SET 'parallelism.default' = '3';\n\
             SET 'execution.batch-size' = '64';\n\
             INSERT INTO out_b {query_b};\n",
            input = dir.sql_path("in.jsonl"),
            columns_a = sink_columns(&expected_a),
            columns_b = sink_columns(&expected_b),
            out_a = dir.sql_path("a.jsonl"),
            out_b = dir.sql_path("b.jsonl"),
            query_a = query.streaming_sql("events", tumble),
            query_b = query.streaming_sql("events", hop),
        );
        let specs = plan(&sql).unwrap_or_else(|e| panic!("{}\n{sql}", describe_sql_error(&e)));
        let settings: Vec<(usize, usize)> = specs.iter().map(|s| (s.parallelism, s.batch_size)).collect();
        assert_eq!(settings, vec![(1, 5), (3, 64)], "settings of each pipeline\n{sql}");
        let reports = run_specs(specs).await.unwrap_or_else(|e| panic!("{e:#}\n{sql}"));
        for (report, (expected, out)) in reports.iter().zip([(&expected_a, "a.jsonl"), (&expected_b, "b.jsonl")]) {
            let actual = rows_from_jsonl(&dir.file(out), &expected.schema).unwrap_or_else(|e| panic!("{e:#}"));
            if let Some(diff) = diff_rows(&expected.rows, &actual, TOLERANCE) {
                panic!("seed {}: {out} differs from the oracle: {diff}\n{sql}", scenario.seed);
            }
            assert_eq!(report.metrics.late_rows, expected.late_rows, "seed {}: late rows of {out}", scenario.seed);
        }
    }
}

/// GROUP BY window_start alone (window_end follows from it) is accepted; results must match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_window_start_only_matches_oracle() {
    let window = Window::Hop { slide_s: 2, size_s: 5 };
    let query = Query {
        select: "k, window_start, COUNT(*) AS c, SUM(v) AS s".into(),
        filter: None,
        group_by: "window_start, k".into(),
        having: None,
    };
    check(Case::new("start-only", window, 2, query), SCENARIOS, SMALL_MATRIX).await;
}

/// Keys of other types (BOOLEAN, INT, a DOUBLE expression; all with nulls) through the hash
/// exchange, with a strict watermark (`WATERMARK FOR ts AS ts`: no delay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_keys_with_a_strict_watermark_match_oracle() {
    let window = Window::Tumble { size_s: 1 };
    let query = Query {
        select: "window_start, window_end, ok, k2, ROUND(d / 500) AS dk, COUNT(*) AS c, SUM(v) AS s".into(),
        filter: None,
        group_by: "window_start, window_end, ok, k2, ROUND(d / 500)".into(),
        having: None,
    };
    check(Case::new("typed-keys", window, 0, query), SCENARIOS, SMALL_MATRIX).await;
}

/// A watermark delay that is not a whole number of seconds (`INTERVAL '1.5' SECOND`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fractional_watermark_delay_matches_oracle() {
    let window = Window::Hop { slide_s: 1, size_s: 3 };
    let mut case = Case::new("delay-1.5s", window, 0, all_aggregates());
    case.delay_ms = 1_500;
    check(case, SCENARIOS, SMALL_MATRIX).await;
}
