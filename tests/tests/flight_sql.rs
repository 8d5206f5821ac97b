//! Live tables over Flight SQL, queried by the clients users have (Python ADBC and the JDBC
//! driver), checked against the batch oracle.
//!
//! Each test runs pipelines in process, with a Flight SQL server on a free port over their live
//! tables, exactly as `streamsql -f ... --flight` wires them; the clients run as subprocesses.

use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use streamsql_tests::flight::{LiveServer, answer_rows, blocking, clients};
use streamsql_tests::oracle::{EVENT_COLUMNS, Event, Oracle, Query, Window};
use streamsql_tests::{Cell, Row, TestDir, diff_rows, write_jsonl};

const TOLERANCE: f64 = 1e-9;
const DELAY_S: i64 = 2;

/// Mostly increasing event times with rows going back up to 6 s (beyond the 2 s watermark
/// delay, so some are late for their windows), a null key now and then.
fn events(seed: u64, rows: usize) -> Vec<Event> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut max = 1_700_000_000_000_i64;
    (0..rows)
        .map(|_| {
            let ts =
                if rng.random_bool(0.2) { max - rng.random_range(0..6_000) } else { max + rng.random_range(0..300) };
            max = max.max(ts);
            Event {
                ts,
                k: (!rng.random_bool(0.03)).then(|| ["a", "b", "c", "d"][rng.random_range(0..4)].to_string()),
                k2: Some(rng.random_range(0..3)),
                v: (!rng.random_bool(0.05)).then(|| rng.random_range(-50..1000)),
                d: (!rng.random_bool(0.05)).then(|| f64::from(rng.random_range(-100_000..100_000)) / 100.0),
                p: None,
                ok: (!rng.random_bool(0.05)).then(|| rng.random_bool(0.8)),
                day: None,
            }
        })
        .collect()
}

fn event_json(e: &Event) -> Value {
    json!({"ts": e.ts, "k": e.k, "k2": e.k2, "v": e.v, "d": e.d, "ok": e.ok})
}

/// An updating aggregate whose HAVING drops keys again (sums grow past the bound), so lone
/// retractions reach the live table.
const PER_KEY_SELECT: &str = "SELECT k, k2, COUNT(*) AS n, SUM(v) AS sv, MAX(d) AS md, AVG(v) AS av FROM events \
     WHERE ok IS NOT FALSE GROUP BY k, k2 HAVING SUM(v) < 60000 OR SUM(v) IS NULL";
const TOTALS_SELECT: &str = "SELECT k, COUNT(*) AS n FROM events GROUP BY k";

fn script(input: &str, parallelism: usize) -> String {
    format!(
        "SET 'parallelism.default' = '{parallelism}';\n\
         SET 'execution.batch-size' = '7';\n\
         SET 'update-interval' = '0';\n\
         CREATE TABLE events ({EVENT_COLUMNS}, WATERMARK FOR ts AS ts - INTERVAL '{DELAY_S}' SECOND)\n\
           WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
         CREATE MATERIALIZED VIEW per_key AS {PER_KEY_SELECT};\n\
         CREATE MATERIALIZED VIEW per_window AS\n\
           SELECT window_start, window_end, k, COUNT(*) AS n, SUM(v) AS sv\n\
           FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND))\n\
           GROUP BY window_start, window_end, k;\n\
         CREATE TABLE totals (k STRING, n BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH ('connector' = 'live');\n\
         INSERT INTO totals {TOTALS_SELECT};\n"
    )
}

fn check(what: &str, expected: &[Row], actual: &[Row], problems: &mut String) {
    if let Some(diff) = diff_rows(expected, actual, TOLERANCE) {
        let _ = writeln!(problems, "{what}: {diff}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tables_match_the_oracle_through_adbc_and_jdbc() -> anyhow::Result<()> {
    let clients = clients();
    let mut late_seen = false;
    for (seed, parallelism) in [(31_u64, 1_usize), (32, 3)] {
        let events = events(seed, 1500);
        let dir = TestDir::new(&format!("flight-oracle-{seed}"));
        write_jsonl(&dir.file("in.jsonl"), &events.iter().map(event_json).collect::<Vec<_>>());

        let (per_key, _) = Oracle::run_batch(&events, PER_KEY_SELECT).await?;
        let (totals, _) = Oracle::run_batch(&events, TOTALS_SELECT).await?;
        let window_query = Query {
            select: "window_start, window_end, k, COUNT(*) AS n, SUM(v) AS sv".into(),
            filter: None,
            group_by: "window_start, window_end, k".into(),
            having: None,
        };
        let per_window = Oracle::run(&events, DELAY_S * 1000, Window::Tumble { size_s: 5 }, &window_query).await?;
        late_seen |= per_window.late_rows > 0;

        let mut server = LiveServer::start(&script(&dir.sql_path("in.jsonl"), parallelism), None)?;
        let reports = server.finish_pipelines().await?;
        assert_eq!(reports.len(), 3);

        let uri = server.uri();
        let answers = blocking(move || {
            clients.adbc(
                &uri,
                &["--metadata"],
                &[
                    "SELECT * FROM per_key",
                    "SELECT * FROM per_window",
                    "SELECT * FROM totals",
                    // A join and an aggregate across two live tables, on one snapshot.
                    "SELECT t.k, t.n, COUNT(p.k2) AS groups FROM totals t LEFT JOIN per_key p ON t.k = p.k GROUP BY t.k, t.n",
                    // Flink's DATE_FORMAT, as in pipelines (DataFusion's namesake would print the pattern).
                    "SELECT DATE_FORMAT(TIMESTAMP '2024-05-06 07:08:09', 'yyyy/MM/dd') AS d FROM totals LIMIT 1",
                ],
            )
        })
        .await?;
        let mut problems = String::new();
        let metadata = &answers[0]["metadata"];
        let mut tables: Vec<&str> = metadata["tables"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t["table"].as_str()).collect())
            .unwrap_or_default();
        tables.sort_unstable();
        if tables != ["per_key", "per_window", "totals"] || metadata["catalogs"] != json!(["streamsql"]) {
            let _ = writeln!(problems, "metadata lists {metadata}");
        }
        check("per_key over ADBC", &per_key, &answer_rows(&answers[1], &[])?, &mut problems);
        check("per_window over ADBC", &per_window.rows, &answer_rows(&answers[2], &[0, 1])?, &mut problems);
        check("totals over ADBC", &totals, &answer_rows(&answers[3], &[])?, &mut problems);
        let joined: Vec<Row> = totals
            .iter()
            .map(|t| {
                let groups = per_key.iter().filter(|p| p[0].approx_eq(&t[0], 0.0) && !matches!(t[0], Cell::Null));
                vec![t[0].clone(), t[1].clone(), Cell::Int(groups.count() as i64)]
            })
            .collect();
        check("join over ADBC", &joined, &answer_rows(&answers[4], &[])?, &mut problems);
        let formatted = answers[5].to_string();
        if !formatted.contains("2024/05/06") {
            let _ = writeln!(problems, "DATE_FORMAT over ADBC gave {formatted}");
        }

        if parallelism == 1 {
            let url = server.jdbc_url("");
            let jdbc = blocking(move || {
                clients.jdbc(&url, &["-Dmetadata=true"], &["SELECT * FROM per_key", "SELECT * FROM per_window"])
            })
            .await?;
            check("per_key over JDBC", &per_key, &answer_rows(&jdbc[0], &[])?, &mut problems);
            check("per_window over JDBC", &per_window.rows, &answer_rows(&jdbc[1], &[0, 1])?, &mut problems);
            let mut listed: Vec<&str> =
                jdbc[2]["tables"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            listed.sort_unstable();
            if listed != ["per_key", "per_window", "totals"] {
                let _ = writeln!(problems, "JDBC getTables lists {}", jdbc[2]);
            }
        }
        assert!(problems.is_empty(), "seed {seed}, parallelism {parallelism}:\n{problems}");
        assert!(per_key.len() > 3 && !per_window.rows.is_empty(), "the oracle produced too few rows to test");
    }
    assert!(late_seen, "no seed produced late rows");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_while_ingesting_see_progress_and_do_not_stall_the_pipeline() -> anyhow::Result<()> {
    let clients = clients();
    let sql = "SET 'update-interval' = '50 ms';\n\
               CREATE TABLE flows (ts TIMESTAMP(3), protocol STRING, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
                 WITH ('connector' = 'netflow', 'number-of-rows' = '150000', 'rows-per-second' = '15000');\n\
               CREATE MATERIALIZED VIEW per_protocol AS SELECT protocol, COUNT(*) AS flows FROM flows GROUP BY protocol;\n\
               CREATE MATERIALIZED VIEW per_window AS SELECT window_start, COUNT(*) AS flows\n\
                 FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end;";
    let mut server = LiveServer::start(sql, None)?;
    let uri = server.uri();
    // Two clients at once, each querying over and over while rows arrive (about 10 s of input,
    // so the rounds overlap ingestion even when a client takes seconds to start on a busy machine).
    let query = "SELECT COALESCE(SUM(flows), 0) AS flows FROM per_protocol";
    let first = {
        let uri = uri.clone();
        tokio::task::spawn_blocking(move || clients.adbc(&uri, &["--repeat", "12", "--interval", "0.15"], &[query]))
    };
    let second = blocking(move || {
        clients.adbc(&uri, &["--repeat", "12", "--interval", "0.1"], &["SELECT COUNT(*) FROM per_window", query])
    })
    .await?;
    let first = first.await??;
    let reports = server.finish_pipelines().await?;
    assert_eq!(reports[0].metrics.rows_in, 150_000);

    let counts: Vec<i64> = first.iter().filter_map(|a| a["rows"][0][0].as_i64()).collect();
    assert_eq!(counts.len(), 12, "every query answered: {first:?}");
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "counts never go back: {counts:?}");
    let distinct = counts.windows(2).filter(|w| w[0] < w[1]).count();
    assert!(distinct >= 5, "the pipeline kept ingesting while queried (counts grew between most rounds): {counts:?}");
    assert!(second.iter().all(|a| a.get("error").is_none()), "{second:?}");
    let done = blocking({
        let uri = server.uri();
        move || clients.adbc(&uri, &[], &[query])
    })
    .await?;
    assert_eq!(done[0]["rows"][0][0], json!(150_000), "after the input ended every row is counted");
    Ok(())
}

/// A server whose one live table `per_type` counts `rows` flows per type, after its input ended.
async fn finished_server(rows: u64, token: Option<&str>) -> anyhow::Result<LiveServer> {
    let sql = format!(
        "CREATE TABLE flows WITH ('connector' = 'netflow', 'number-of-rows' = '{rows}');\n\
         CREATE MATERIALIZED VIEW per_type AS SELECT flow_type, COUNT(*) AS n FROM flows GROUP BY flow_type;"
    );
    let mut server = LiveServer::start(&sql, token)?;
    server.finish_pipelines().await?;
    Ok(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_set() -> anyhow::Result<()> {
    let clients = clients();
    let server = finished_server(1000, Some("s3cret")).await?;
    let uri = server.uri();
    let url = server.jdbc_url("&token=s3cret");
    let query = "SELECT SUM(n) FROM per_type";
    let (wrong, bearer, basic, jdbc) = blocking(move || {
        (
            clients.adbc(&uri, &["--token", "guess"], &[query]),
            clients.adbc(&uri, &["--token", "s3cret"], &[query]),
            clients.adbc(&uri, &["--user", "anyone", "--password", "s3cret"], &[query]),
            clients.jdbc(&url, &[], &[query]),
        )
    })
    .await;
    let wrong = wrong.expect_err("a wrong token is refused").to_string();
    assert!(wrong.to_lowercase().contains("unauthenticated") || wrong.contains("needs a token"), "{wrong}");
    for (name, answer) in [("bearer", bearer?), ("basic", basic?), ("jdbc", jdbc?)] {
        assert_eq!(answer[0]["rows"], json!([[1000]]), "{name}: {}", answer[0]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_clear_errors() -> anyhow::Result<()> {
    let clients = clients();
    let server = finished_server(100, None).await?;
    for (query, expected) in [
        ("SELECT * FROM nowhere", "live tables: per_type"),
        ("CREATE TABLE x (a INT)", "DDL not supported"),
        ("DELETE FROM per_type", "DML not supported"),
        ("SELEC 1", "Expected"),
    ] {
        let uri = server.uri();
        let error = blocking(move || clients.adbc(&uri, &[], &[query])).await.expect_err("an error").to_string();
        assert!(error.contains(expected), "{query}: expected '{expected}' in: {error}");
    }
    // The server still answers after the errors.
    let uri = server.uri();
    let ok = blocking(move || clients.adbc(&uri, &[], &["SELECT SUM(n) AS n FROM per_type"])).await?;
    assert_eq!(ok[0]["rows"], json!([[100]]), "{}", ok[0]);
    Ok(())
}
