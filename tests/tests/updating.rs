//! Updating aggregates (GROUP BY without a window) against the batch oracle.
//!
//! The changelog an append-only sink receives (`op` first: `+I`, `-U`, `+U`, `-D`) is replayed
//! into the table it describes; the replay must never retract a row that is not there, and must
//! end equal to the same GROUP BY run as a batch by DataFusion over every input row. The matrix
//! covers parallelism, batch sizes and update intervals (emit after every batch, or rate-limited).

use std::fmt::Write as _;

use arrow::datatypes::{DataType, Field, Schema};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use streamsql_tests::oracle::{EVENT_COLUMNS, Event, Oracle, apply_changelog};
use streamsql_tests::{Cell, TestDir, diff_rows, rows_from_jsonl, run_script, write_jsonl};

fn events(seed: u64, rows: usize) -> Vec<Event> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ts = 1_700_000_000_000_i64;
    (0..rows)
        .map(|_| {
            // Event time is irrelevant to updating aggregates, but it goes back now and then.
            ts += rng.random_range(-2_000..1_000);
            Event {
                ts,
                k: (!rng.random_bool(0.03)).then(|| ["x", "y", "z", "w", "v"][rng.random_range(0..5)].to_string()),
                k2: (!rng.random_bool(0.05)).then(|| rng.random_range(0..4)),
                v: (!rng.random_bool(0.05)).then(|| rng.random_range(-50..1000)),
                d: (!rng.random_bool(0.05)).then(|| f64::from(rng.random_range(-100_000..100_000)) / 100.0),
                p: None,
                ok: (!rng.random_bool(0.05)).then(|| rng.random_bool(0.7)),
                day: None,
            }
        })
        .collect()
}

struct Case {
    name: &'static str,
    /// `SELECT ... FROM events ...` (the same text runs as stream and as batch).
    query: &'static str,
    /// Sink columns, in the query's order.
    columns: &'static str,
    fields: Vec<Field>,
}

fn cases() -> Vec<Case> {
    let int = |n: &str| Field::new(n, DataType::Int64, true);
    let float = |n: &str| Field::new(n, DataType::Float64, true);
    let string = |n: &str| Field::new(n, DataType::Utf8, true);
    vec![
        Case {
            name: "keys-and-aggregates",
            query: "SELECT k, k2, COUNT(*) AS n, SUM(v) AS sv, MIN(d) AS mn, MAX(v) AS mx, AVG(d) AS ad, \
                    COUNT(DISTINCT v) AS dv FROM events WHERE ok IS NOT FALSE GROUP BY k, k2",
            columns: "k STRING, k2 INT, n BIGINT, sv BIGINT, mn DOUBLE, mx BIGINT, ad DOUBLE, dv BIGINT",
            fields: vec![
                string("k"),
                Field::new("k2", DataType::Int32, true),
                int("n"),
                int("sv"),
                float("mn"),
                int("mx"),
                float("ad"),
                int("dv"),
            ],
        },
        Case {
            // Keys enter and leave the result as their sums cross the bounds.
            name: "having-enters-and-leaves",
            query: "SELECT k, COUNT(*) AS n, SUM(v) AS sv FROM events GROUP BY k HAVING SUM(v) BETWEEN 2000 AND 40000",
            columns: "k STRING, n BIGINT, sv BIGINT",
            fields: vec![string("k"), int("n"), int("sv")],
        },
        Case {
            // The same key twice groups as if it were written once.
            name: "duplicate-keys",
            query: "SELECT k, k2, COUNT(*) AS n, SUM(v) AS sv FROM events GROUP BY k, k2, k",
            columns: "k STRING, k2 INT, n BIGINT, sv BIGINT",
            fields: vec![string("k"), Field::new("k2", DataType::Int32, true), int("n"), int("sv")],
        },
        Case {
            name: "no-keys",
            query: "SELECT COUNT(*) AS n, SUM(v) AS sv, CASE WHEN COUNT(*) > 100 THEN 'many' ELSE 'few' END AS size FROM events",
            columns: "n BIGINT, sv BIGINT, size STRING",
            fields: vec![int("n"), int("sv"), string("size")],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changelogs_replay_to_the_oracle() -> anyhow::Result<()> {
    let mut failures = String::new();
    let mut saw_lone_retraction = false;
    for case in cases() {
        for seed in [41_u64, 42] {
            let events = events(seed, 900);
            let dir = TestDir::new(&format!("updating-{}-{seed}", case.name));
            let lines: Vec<_> = events
                .iter()
                .map(|e| json!({"ts": e.ts, "k": e.k, "k2": e.k2, "v": e.v, "d": e.d, "ok": e.ok}))
                .collect();
            write_jsonl(&dir.file("in.jsonl"), &lines);
            let (expected, _) = Oracle::run_batch(&events, case.query).await?;

            for (parallelism, batch, interval) in [(1, 1, "0"), (1, 1000, "0"), (3, 5, "0"), (4, 64, "5 ms")] {
                let out = format!("out-{parallelism}-{batch}.jsonl");
                let sql = format!(
                    "SET 'parallelism.default' = '{parallelism}';\n\
                     SET 'execution.batch-size' = '{batch}';\n\
                     SET 'update-interval' = '{interval}';\n\
                     CREATE TABLE events ({EVENT_COLUMNS}) WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
                     CREATE TABLE out ({columns}) WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');\n\
                     INSERT INTO out {query};\n",
                    input = dir.sql_path("in.jsonl"),
                    output = dir.sql_path(&out),
                    columns = case.columns,
                    query = case.query,
                );
                let reports = run_script(&sql).await?;
                let mut fields = vec![Field::new("op", DataType::Utf8, false)];
                fields.extend(case.fields.iter().cloned());
                let rows = rows_from_jsonl(&dir.file(&out), &Schema::new(fields))?;
                let changes: Vec<(String, Vec<Cell>)> = rows
                    .into_iter()
                    .map(|mut row| match row.remove(0) {
                        Cell::Str(op) => (op, row),
                        other => (other.to_string(), row),
                    })
                    .collect();
                let label =
                    format!("{} seed {seed} parallelism {parallelism} batch {batch} interval {interval}", case.name);
                // A -U not followed by its +U for the same key means the key left the result.
                saw_lone_retraction |= changes.windows(2).any(|w| {
                    w[0].0 == "-U"
                        && !(w[1].0 == "+U"
                            && w[1].1.first().map(|c| c.to_string()) == w[0].1.first().map(|c| c.to_string()))
                });
                if reports[0].metrics.rows_out != changes.len() as u64 {
                    let _ = writeln!(
                        failures,
                        "{label}: rows_out {} but {} changes written",
                        reports[0].metrics.rows_out,
                        changes.len()
                    );
                }
                match apply_changelog(&changes) {
                    Ok(table) => {
                        if let Some(diff) = diff_rows(&expected, &table, 1e-9) {
                            let _ = writeln!(failures, "{label}: {diff}");
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(failures, "{label}: {e:#}");
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures}");
    assert!(saw_lone_retraction, "no run made a key leave the result, so HAVING retractions were not tested");
    Ok(())
}
