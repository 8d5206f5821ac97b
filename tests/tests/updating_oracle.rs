//! Aggregations over an updating input against the batch oracle.
//!
//! A `GROUP BY` without a window over the result of another `GROUP BY` without a window reads a
//! changelog: each change of an upstream key retracts the row it emitted before (`-U`, `-D`) and
//! adds its new row (`+U`). The downstream aggregation must undo what it was told to retract,
//! delete a group once every row it held is gone, and end, after the input ends, with exactly the
//! table DataFusion computes as a batch query over the same input rows.
//!
//! Seeded random rows (hot keys with many rows, cold keys with a few, NULL keys and values) are
//! written as JSON lines and read through a file table. Each case runs at every parallelism and
//! batch size of [`MATRIX`] (over at least two batches, see [`rows_read`]) and every update
//! interval of [`INTERVALS`]. Its JSON changelog (`op` first) must be a well-formed upsert
//! stream: every retraction takes out a row that is there, no key ever has two rows at once, and
//! as many changes are written as the pipeline reports. Replayed, it must equal the batch result
//! (floats within [`TOLERANCE`]). At update interval 0, result rows must be updated (`-U`/`+U`)
//! at every batch size, so that retractions were really exercised.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};
use streamsql_tests::oracle::{apply_changelog, sql_columns};
use streamsql_tests::{
    Cell, Row, TestDir, describe_sql_error, diff_rows, plan, rows_from_batches, rows_from_jsonl, run_specs, show_row,
    write_jsonl,
};

/// Relative tolerance for floating-point aggregates (AVG retracted and merged in another order).
const TOLERANCE: f64 = 1e-9;

/// `SET 'parallelism.default'`, `SET 'execution.batch-size'`.
const MATRIX: &[(usize, usize)] = &[(1, 1), (1, 8192), (4, 1), (4, 8192)];

/// `SET 'update-interval'`: every change emitted at once, or (`None`) the session's default.
const INTERVALS: &[Option<&str>] = &[Some("0"), None];

/// The input table every case reads.
const TABLE: &str = "t (k BIGINT, v BIGINT)";

/// How one seed's input rows are drawn.
#[derive(Debug, Clone, Copy)]
struct Shape {
    seed: u64,
    /// Rows read at batch size 1 (see [`rows_read`] for the others).
    rows: usize,
    /// Most rows have a key in `0..hot_keys`, so these keys change many times.
    hot_keys: i64,
    /// The others have a key in `hot_keys..hot_keys + cold_keys`: a few rows each, or none.
    cold_keys: i64,
    /// Probability of a row in `hot_keys..` rather than `0..hot_keys`.
    cold: f64,
    /// Probability that `k` is NULL, and that `v` is NULL.
    null_keys: f64,
    null_values: f64,
    /// `v` is drawn from this range; sums wander across zero when it is about symmetric.
    values: (i64, i64),
}

const SHAPES: &[Shape] = &[
    Shape {
        seed: 7_001,
        rows: 1_600,
        hot_keys: 30,
        cold_keys: 400,
        cold: 0.1,
        null_keys: 0.02,
        null_values: 0.1,
        values: (-300, 700),
    },
    // Few keys with long histories, many NULL values (keys whose MAX is NULL for a while).
    Shape {
        seed: 7_002,
        rows: 1_200,
        hot_keys: 6,
        cold_keys: 40,
        cold: 0.05,
        null_keys: 0.05,
        null_values: 0.4,
        values: (-500, 500),
    },
    // Many keys with short histories: most changes move a key by one.
    Shape {
        seed: 7_003,
        rows: 2_000,
        hot_keys: 200,
        cold_keys: 1_500,
        cold: 0.3,
        null_keys: 0.01,
        null_values: 0.05,
        values: (-100, 1_000),
    },
];

/// One input row.
#[derive(Debug, Clone, Copy)]
struct Input {
    k: Option<i64>,
    v: Option<i64>,
}

/// The first `rows` rows of the shape's sequence.
fn generate(s: &Shape, rows: usize) -> Vec<Input> {
    let mut rng = SmallRng::seed_from_u64(s.seed);
    (0..rows)
        .map(|_| {
            let k = if rng.random_bool(s.null_keys) {
                None
            } else if rng.random_bool(s.cold) {
                Some(s.hot_keys + rng.random_range(0..s.cold_keys))
            } else {
                Some(rng.random_range(0..s.hot_keys))
            };
            let v = (!rng.random_bool(s.null_values)).then(|| rng.random_range(s.values.0..=s.values.1));
            Input { k, v }
        })
        .collect()
}

/// The row as a JSON line; a NULL is either `null` or left out.
fn input_json(row: &Input, rng: &mut SmallRng) -> Value {
    let mut object = Map::new();
    for (key, value) in [("k", row.k), ("v", row.v)] {
        match value {
            Some(value) => {
                object.insert(key.into(), Value::from(value));
            }
            None if rng.random_bool(0.5) => {
                object.insert(key.into(), Value::Null);
            }
            None => {}
        }
    }
    Value::Object(object)
}

/// The query run as a DataFusion batch query over every input row as the table `t`, with
/// streamsql's functions (`MOD`); its rows, and its schema (names and types of the sink).
async fn oracle(query: &str, rows: &[Input]) -> anyhow::Result<(Vec<Row>, SchemaRef)> {
    let schema = Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new("v", DataType::Int64, true)]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.k).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|r| r.v).collect::<Int64Array>()),
    ];
    let ctx = SessionContext::new_with_state(streamsql_sql::functions::session_state());
    ctx.register_batch("t", RecordBatch::try_new(Arc::new(schema), columns)?)?;
    let frame = ctx.sql(query).await?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok((rows_from_batches(&batches)?, schema))
}

/// A two-level query: `query` runs as is in the stream and in the oracle.
struct Case {
    name: &'static str,
    query: &'static str,
    /// The result's GROUP BY columns, first in its SELECT list (0 for a global aggregate).
    keys: usize,
}

/// How many changes of each kind the runs of a case wrote.
#[derive(Debug, Default, Clone, Copy)]
struct Ops {
    insert: usize,
    update_before: usize,
    update_after: usize,
    delete: usize,
}

impl Ops {
    fn add(&mut self, other: Ops) {
        self.insert += other.insert;
        self.update_before += other.update_before;
        self.update_after += other.update_after;
        self.delete += other.delete;
    }
}

/// Checks that a changelog is a well-formed upsert stream (each op known, no key with two rows at
/// once) and counts its ops; the replay checks that retractions take out rows that are there.
fn check_upserts(changes: &[(String, Row)], keys: usize) -> Result<Ops, String> {
    let mut ops = Ops::default();
    let mut live: HashMap<String, usize> = HashMap::new();
    for (i, (op, row)) in changes.iter().enumerate() {
        let (counter, adds) = match op.as_str() {
            "+I" => (&mut ops.insert, true),
            "+U" => (&mut ops.update_after, true),
            "-U" => (&mut ops.update_before, false),
            "-D" => (&mut ops.delete, false),
            other => return Err(format!("change {i}: unknown op '{other}'")),
        };
        *counter += 1;
        let key = show_row(&row[..keys]);
        let rows = live.entry(key.clone()).or_insert(0);
        if adds {
            *rows += 1;
            if *rows > 1 {
                return Err(format!("change {i}: {op} {} while key {key} already has a row", show_row(row)));
            }
        } else {
            *rows = rows.saturating_sub(1);
        }
    }
    Ok(ops)
}

/// Rows read at batch size `batch`: the shape's rows, or enough for two batches, so that keys
/// change between batches (the first level flushes after each one) at every batch size.
fn rows_read(shape: &Shape, batch: usize) -> usize {
    shape.rows.max(batch + shape.rows / 2)
}

/// One input file of a seed (its first `rows` rows) and the oracle's result over it.
struct Seeded {
    file: String,
    rows: usize,
    expected: Vec<Row>,
    schema: SchemaRef,
}

impl Seeded {
    async fn new(case: &Case, shape: &Shape, rows: usize, dir: &TestDir) -> Seeded {
        let inputs = generate(shape, rows);
        let (expected, schema) = oracle(case.query, &inputs)
            .await
            .unwrap_or_else(|e| panic!("case '{}' seed {} rows {rows}: oracle: {e:#}", case.name, shape.seed));
        assert!(!expected.is_empty(), "case '{}' seed {} rows {rows}: the oracle has no rows", case.name, shape.seed);
        let mut rng = SmallRng::seed_from_u64(shape.seed ^ 0x5eed);
        let lines: Vec<Value> = inputs.iter().map(|r| input_json(r, &mut rng)).collect();
        let file = format!("in-{rows}.jsonl");
        write_jsonl(&dir.file(&file), &lines);
        Seeded { file, rows, expected, schema }
    }
}

/// Runs `case` once over `seeded` and compares the table its changelog describes with the oracle.
async fn run_one(
    case: &Case,
    dir: &TestDir,
    seeded: &Seeded,
    parallelism: usize,
    batch: usize,
    interval: Option<&str>,
) -> Result<Ops, String> {
    let Seeded { file, rows, expected, schema } = seeded;
    let out = format!("out-p{parallelism}-b{batch}-i{}.jsonl", interval.unwrap_or("default").replace(' ', ""));
    let mut script = format!("SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '{batch}';\n");
    if let Some(interval) = interval {
        let _ = writeln!(script, "SET 'update-interval' = '{interval}';");
    }
    let _ = write!(
        script,
        "CREATE TABLE {TABLE} WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
         CREATE TABLE out ({columns}) WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');\n\
         INSERT INTO out {query};\n",
        input = dir.sql_path(file),
        output = dir.sql_path(&out),
        columns = sql_columns(schema),
        query = case.query,
    );
    let specs = plan(&script).map_err(|e| format!("planning failed: {}\n{script}", describe_sql_error(&e)))?;
    if specs.len() != 1 || !specs[0].is_updating() {
        let updating: Vec<bool> = specs.iter().map(|s| s.is_updating()).collect();
        return Err(format!("expected one updating pipeline, planned {} (updating: {updating:?})", specs.len()));
    }
    let reports = run_specs(specs).await.map_err(|e| format!("{e:#}"))?;
    let metrics = reports[0].metrics;
    if metrics.rows_in != *rows as u64 || metrics.bad_records != 0 || metrics.late_rows != 0 {
        return Err(format!(
            "{} rows read of {rows}, {} bad records, {} late rows",
            metrics.rows_in, metrics.bad_records, metrics.late_rows
        ));
    }

    let mut fields = vec![Field::new("op", DataType::Utf8, false)];
    fields.extend(schema.fields().iter().map(|f| f.as_ref().clone()));
    let changes: Vec<(String, Row)> = rows_from_jsonl(&dir.file(&out), &Schema::new(fields))
        .map_err(|e| format!("{e:#}"))?
        .into_iter()
        .map(|mut row| match row.remove(0) {
            Cell::Str(op) => (op, row),
            other => (other.to_string(), row),
        })
        .collect();
    if metrics.rows_out != changes.len() as u64 {
        return Err(format!("rows_out is {} but {} changes were written", metrics.rows_out, changes.len()));
    }
    let ops = check_upserts(&changes, case.keys)?;
    let table = apply_changelog(&changes).map_err(|e| format!("{e:#}"))?;
    if let Some(diff) = diff_rows(expected, &table, TOLERANCE) {
        return Err(format!(
            "the replayed changelog ({} changes) differs from the batch oracle: {diff}",
            changes.len()
        ));
    }
    Ok(ops)
}

/// Runs `case` over every shape, at every point of the matrix; panics with every failure. Returns
/// the changes written over all runs.
async fn check(case: &Case, shapes: &[Shape]) -> Ops {
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut total = Ops::default();
    // Per batch size, the changes written with an update interval of 0.
    let mut at_once: Vec<(usize, Ops)> = Vec::new();
    let mut runs = 0;
    // Every seed's directory lives until the end, so a failing run's files are kept.
    let mut dirs = Vec::new();
    for shape in shapes {
        let seed = shape.seed;
        let dir = TestDir::new(&format!("updating-oracle-{}-seed{seed}", case.name));
        let mut inputs: Vec<Seeded> = Vec::new();
        for &(parallelism, batch) in MATRIX {
            let rows = rows_read(shape, batch);
            let seeded = match inputs.iter().position(|s| s.rows == rows) {
                Some(at) => &inputs[at],
                None => {
                    inputs.push(Seeded::new(case, shape, rows, &dir).await);
                    &inputs[inputs.len() - 1]
                }
            };
            for &interval in INTERVALS {
                runs += 1;
                match run_one(case, &dir, seeded, parallelism, batch, interval).await {
                    Ok(ops) => {
                        total.add(ops);
                        if interval == Some("0") {
                            match at_once.iter_mut().find(|(b, _)| *b == batch) {
                                Some((_, sum)) => sum.add(ops),
                                None => at_once.push((batch, ops)),
                            }
                        }
                    }
                    Err(message) => failures.push(format!(
                        "case '{}' seed {seed} ({rows} rows) parallelism {parallelism} batch size {batch} \
                         update interval {}:\n{message}",
                        case.name,
                        interval.unwrap_or("default")
                    )),
                }
            }
        }
        dirs.push(dir);
    }
    eprintln!("case '{}': {runs} runs in {:.1?}; changes written: {total:?}", case.name, started.elapsed());
    if !failures.is_empty() {
        // The first failure in full, the others by their first two lines.
        let mut message = format!("{} of {runs} runs differ from the oracle.\n\n{}", failures.len(), failures[0]);
        for other in &failures[1..] {
            let mut lines = other.lines();
            let _ = write!(message, "\n\nalso: {} {}", lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        }
        panic!("{message}");
    }
    // Retractions reached the second level at every batch size, or the runs tested little.
    for (batch, ops) in &at_once {
        assert!(
            ops.update_before > 0 && ops.update_after > 0,
            "case '{}': no result row was updated at batch size {batch}: {ops:?}",
            case.name
        );
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extremes_and_averages_of_maxima_match_the_oracle() {
    // Nexmark q4's shape: an aggregate of the MAX per key, which is NULL while a key's values are.
    let case = Case {
        name: "max-per-key",
        query: "SELECT k2, COUNT(*) AS n, SUM(m) AS sm, MIN(m) AS mn, MAX(m) AS mx, AVG(m) AS am \
                FROM (SELECT k, MOD(k, 3) AS k2, MAX(v) AS m FROM t GROUP BY k, MOD(k, 3)) AS per_key \
                GROUP BY k2",
        keys: 1,
    };
    check(&case, SHAPES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_of_counts_matches_the_oracle() {
    // The downstream key is the upstream value: a key's -U and +U go to different groups (and
    // instances), and the group a key leaves empties out and is deleted.
    let case = Case {
        name: "count-histogram",
        query: "SELECT c, COUNT(*) AS keys FROM (SELECT k, COUNT(*) AS c FROM t GROUP BY k) AS per_key GROUP BY c",
        keys: 1,
    };
    let ops = check(&case, SHAPES).await;
    assert!(ops.delete > 0, "no group emptied out, so deletions were not tested: {ops:?}");
}

/// HAVING upstream: keys leave and re-enter the upstream result as their sums cross zero, so the
/// downstream sees a -U without its +U, or a +U without a -U. FILTER downstream: a group's
/// filtered sum goes back to NULL when its last passing row is retracted.
const HAVING_AND_FILTER: Case = Case {
    name: "having-and-filter",
    query: "SELECT k2, SUM(s) FILTER (WHERE s > 10) AS big, COUNT(*) AS n \
            FROM (SELECT k, MOD(k, 4) AS k2, SUM(v) AS s FROM t GROUP BY k, MOD(k, 4) HAVING SUM(v) > 0) \
            AS per_key GROUP BY k2",
    keys: 1,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn having_between_the_levels_and_filter_match_the_oracle() {
    check(&HAVING_AND_FILTER, SHAPES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_between_the_levels_and_filter_match_the_oracle() {
    // WHERE on the changelog between the levels; FILTER on another column than the aggregate's,
    // NULL for the keys whose values are all NULL.
    let case = Case {
        name: "where-and-filter",
        query: "SELECT k2, COUNT(*) AS n, SUM(s) AS total, MAX(s) FILTER (WHERE c > 5) AS top, \
                AVG(c) FILTER (WHERE s < 0) AS neg_c, MIN(c) AS min_c \
                FROM (SELECT k, MOD(k, 4) AS k2, SUM(v) AS s, COUNT(*) AS c FROM t GROUP BY k, MOD(k, 4)) \
                AS per_key WHERE c > 1 GROUP BY k2",
        keys: 1,
    };
    check(&case, SHAPES).await;
}

/// Regression: a FILTER whose condition has no NULL in a batch (no null buffer) panicked in the
/// retracting aggregation (`prep_null_mask_filter` on a mask without nulls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_over_a_changelog_without_nulls() {
    let no_nulls = Shape {
        seed: 7_101,
        rows: 40,
        hot_keys: 3,
        cold_keys: 5,
        cold: 0.2,
        null_keys: 0.0,
        null_values: 0.0,
        values: (-20, 40),
    };
    check(&HAVING_AND_FILTER, &[no_nulls]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_aggregate_of_counts_matches_the_oracle() {
    let case = Case {
        name: "global",
        query: "SELECT COUNT(*) AS n, MAX(c) AS mx, SUM(c) AS total, MIN(c) AS mn, COUNT(DISTINCT c) AS sizes \
                FROM (SELECT k, COUNT(*) AS c FROM t GROUP BY k) AS per_key",
        keys: 0,
    };
    check(&case, SHAPES).await;
}

#[test]
fn functions_that_cannot_retract_are_refused_when_planned() {
    // Functions streamsql runs over append-only rows, but not (yet) over a changelog.
    for function in ["STDDEV_POP", "VAR_POP"] {
        let script = |query: &str| {
            format!(
                "CREATE TABLE {TABLE} WITH ('connector' = 'file', 'path' = 'in.jsonl', 'format' = 'json');\n\
                 CREATE TABLE out (k2 BIGINT, f DOUBLE) WITH ('connector' = 'file', 'path' = 'out.jsonl', \
                 'format' = 'json');\n\
                 INSERT INTO out {query};\n"
            )
        };
        let over_rows = format!("SELECT MOD(k, 3) AS k2, {function}(v) AS f FROM t GROUP BY MOD(k, 3)");
        if let Err(error) = plan(&script(&over_rows)) {
            panic!("{function} over input rows: {}", describe_sql_error(&error));
        }
        let over_changelog = format!(
            "SELECT k2, {function}(m) AS f \
             FROM (SELECT k, MOD(k, 3) AS k2, MAX(v) AS m FROM t GROUP BY k, MOD(k, 3)) AS per_key GROUP BY k2"
        );
        let error = match plan(&script(&over_changelog)) {
            Ok(_) => panic!("{function} over an updating input was planned"),
            Err(error) => describe_sql_error(&error),
        };
        assert!(
            error.contains("not supported") && error.contains(function) && error.contains("updating input"),
            "{function}: {error}"
        );
    }
}
