//! Flink SQL as users write it, with no silent wrong answers: scalar functions DataFusion
//! rewrites before running them, processing time, subqueries, camelCase JSON keys, the numeric
//! conversions of INSERT INTO, and file sinks seen while they run.

use std::time::{Duration, Instant};

use streamsql_engine::runtime;
use streamsql_tests::{TestDir, describe_sql_error, parse_sink_timestamp, plan, read_jsonl, run_script, write_text};

/// The lines of a JSON-lines sink, sorted.
fn sorted_lines(dir: &TestDir, name: &str) -> Vec<String> {
    let path = dir.file(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

/// 1-based (line, column) of the first occurrence of `marker` in `text`.
fn position_of(text: &str, marker: &str) -> (u64, u64) {
    let offset = text.find(marker).unwrap_or_else(|| panic!("marker {marker:?} not in script"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u64, column as u64)
}

fn events_ddl(dir: &TestDir) -> String {
    format!(
        "CREATE TABLE events (ts TIMESTAMP(3), k STRING, v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n",
        dir.sql_path("in.jsonl")
    )
}

const EVENTS: &str = r#"{"ts":"2024-01-01 00:00:01","k":"a","v":1}
{"ts":"2024-01-01 00:00:02","k":null,"v":2}
{"ts":"2024-01-01 00:00:03","k":"a","v":null}
{"ts":"2024-01-01 00:00:04","k":null,"v":null}
"#;

/// COALESCE, NVL, IFNULL, NVL2 and arrow_cast only run once DataFusion has rewritten them:
/// in projections, filters, GROUP BY keys, aggregate arguments and FILTER clauses.
#[tokio::test]
async fn functions_that_datafusion_rewrites_run_in_every_clause() {
    let dir = TestDir::new("flink-simplify");
    write_text(&dir.file("in.jsonl"), EVENTS);
    let sql = format!(
        "{events}\
         CREATE TABLE plain (k STRING, v BIGINT, w BIGINT, z BIGINT)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{plain}', 'format' = 'json');\n\
         CREATE TABLE per_key (window_start TIMESTAMP(3), k STRING, total BIGINT, big BIGINT)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{per_key}', 'format' = 'json');\n\
         INSERT INTO plain\n\
         SELECT COALESCE(k, 'none'), NVL(v, 0), IFNULL(v, -1), arrow_cast(NVL2(v, 1, 0), 'Int64') FROM events WHERE COALESCE(v, 0) < 2;\n\
         INSERT INTO per_key\n\
         SELECT window_start, COALESCE(k, 'none'), SUM(COALESCE(v, 10)), COUNT(*) FILTER (WHERE IFNULL(v, 0) > 1)\n\
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND))\n\
         GROUP BY window_start, window_end, COALESCE(k, 'none');\n",
        events = events_ddl(&dir),
        plain = dir.sql_path("plain.jsonl"),
        per_key = dir.sql_path("per_key.jsonl"),
    );
    run_script(&sql).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        sorted_lines(&dir, "plain.jsonl"),
        vec![r#"{"k":"a","v":0,"w":-1,"z":0}"#, r#"{"k":"a","v":1,"w":1,"z":1}"#, r#"{"k":"none","v":0,"w":-1,"z":0}"#,]
    );
    assert_eq!(
        sorted_lines(&dir, "per_key.jsonl"),
        vec![
            r#"{"window_start":"2024-01-01 00:00:00.000","k":"a","total":11,"big":0}"#,
            r#"{"window_start":"2024-01-01 00:00:00.000","k":"none","total":12,"big":1}"#,
        ]
    );
}

/// `now()` and `CURRENT_TIMESTAMP` are the time each batch is processed: not the time the query
/// was planned, and not one value for the whole run.
#[tokio::test]
async fn now_and_current_timestamp_are_processing_time_per_batch() {
    let dir = TestDir::new("flink-now");
    // 20 rows per second, one row per batch: six batches over about 250 ms.
    let sql = format!(
        "CREATE TABLE flows (flow_id BIGINT) WITH ('connector' = 'netflow', 'rows-per-second' = '20', 'number-of-rows' = '6');\n\
         CREATE TABLE times (flow_id BIGINT, n TIMESTAMP(3), c TIMESTAMP(3))\n\
         \x20 WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n\
         INSERT INTO times SELECT flow_id, now(), CURRENT_TIMESTAMP FROM flows WHERE now() IS NOT NULL;\n",
        dir.sql_path("times.jsonl")
    );
    let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    std::thread::sleep(Duration::from_millis(1200));
    let started_ms = chrono::Utc::now().timestamp_millis();
    streamsql_tests::run_specs(specs).await.unwrap_or_else(|e| panic!("{e:#}"));
    let finished_ms = chrono::Utc::now().timestamp_millis();
    let rows = read_jsonl(&dir.file("times.jsonl"));
    assert_eq!(rows.len(), 6, "{rows:?}");
    let mut seen = Vec::new();
    for row in &rows {
        for key in ["n", "c"] {
            let text = row[key].as_str().unwrap_or_else(|| panic!("{key} is not a timestamp: {row:?}"));
            let ms = parse_sink_timestamp(text).unwrap_or_else(|| panic!("{key}: bad timestamp {text}"));
            assert!(
                (started_ms..=finished_ms).contains(&ms),
                "{key} = {text} is not within the run ({started_ms}..={finished_ms} ms): folded at plan time?"
            );
            seen.push(ms);
        }
    }
    seen.sort();
    seen.dedup();
    assert!(seen.len() >= 3, "now() gave {} distinct values over 6 batches 50 ms apart: {seen:?}", seen.len());
}

/// Subqueries in WHERE (IN, EXISTS, scalar) are refused when planned, at the subquery.
#[test]
fn subqueries_that_cannot_run_on_streams_are_refused_where_they_are_written() {
    let dir = TestDir::new("flink-subquery");
    let cases = [
        ("scalar", "SELECT k FROM events\nWHERE v > (SELECT MAX(v) FROM events);\n", "SELECT MAX(v)", "subqueries"),
        ("NOT IN", "SELECT k FROM events\nWHERE v NOT IN (SELECT v FROM events);\n", "SELECT v FROM", "NOT IN"),
        (
            "NOT EXISTS",
            "SELECT k FROM events\nWHERE NOT EXISTS (SELECT v FROM events);\n",
            "SELECT v FROM",
            "NOT EXISTS",
        ),
        ("in SELECT", "SELECT k, v IN (SELECT v FROM events) FROM events;\n", "SELECT v FROM", "subqueries"),
        (
            "under OR",
            "SELECT k FROM events\nWHERE k = 'a' OR v IN (SELECT v FROM events);\n",
            "SELECT v FROM",
            "subqueries",
        ),
    ];
    for (kind, query, marker, expected) in cases {
        let sql = format!("{}{query}", events_ddl(&dir));
        let error = match plan(&sql) {
            Ok(_) => panic!("{kind}: planned:\n{sql}"),
            Err(e) => e,
        };
        let message = error.message();
        assert!(
            message.contains(expected) && message.contains("not supported"),
            "{kind}: {}",
            describe_sql_error(&error)
        );
        assert!(!message.contains("physical plan"), "{kind}: an internal message: {}", describe_sql_error(&error));
        assert_eq!(error.location(), Some(position_of(&sql, marker)), "{kind}: {}", describe_sql_error(&error));
    }
    // A state TTL does not bound semi joins yet: refused, not ignored.
    let sql = format!(
        "SET 'table.exec.state.ttl' = '1 h';\n{}SELECT k FROM events\nWHERE v IN (SELECT v FROM events);\n",
        events_ddl(&dir)
    );
    let error = plan(&sql).expect_err("refused");
    assert!(error.message().contains("does not bound IN (SELECT ...)"), "{}", describe_sql_error(&error));
    // An IN over the same stream with a correlated condition that is not an equality.
    let sql =
        format!("{}SELECT k FROM events e\nWHERE v IN (SELECT v FROM events f WHERE f.ts > e.ts);\n", events_ddl(&dir));
    let error = plan(&sql).expect_err("refused");
    assert!(error.message().contains("equality conditions"), "{}", describe_sql_error(&error));
}

/// `WHERE x IN (SELECT y ...)` and `EXISTS (... WHERE a.k = b.k)` run as semi joins: each row
/// is emitted once, when a match is known, whichever side came first; the same rows as the batch
/// query at parallelism 1 and 2.
#[tokio::test]
async fn in_and_exists_subqueries_run_as_semi_joins() {
    let dir = TestDir::new("flink-semi-join");
    let mut events = String::new();
    let mut allowed = String::new();
    let mut expected_in = Vec::new();
    for i in 0..400u32 {
        let k = format!("k{}", (i * 7919) % 37);
        events.push_str(&format!("{{\"k\":\"{k}\",\"v\":{i}}}\n"));
    }
    events.push_str("{\"k\":null,\"v\":1000}\n");
    for k in [0u32, 3, 5, 8, 13, 21, 34, 3, 5] {
        allowed.push_str(&format!("{{\"k\":\"k{k}\"}}\n"));
    }
    allowed.push_str("{\"k\":null}\n");
    let allowed_keys = ["k0", "k3", "k5", "k8", "k13", "k21", "k34"];
    for i in 0..400u32 {
        let k = format!("k{}", (i * 7919) % 37);
        if allowed_keys.contains(&k.as_str()) {
            expected_in.push(format!("{{\"k\":\"{k}\",\"v\":{i}}}"));
        }
    }
    expected_in.sort();
    write_text(&dir.file("events.jsonl"), &events);
    write_text(&dir.file("allowed.jsonl"), &allowed);
    for parallelism in [1, 2] {
        for (name, condition) in [
            ("in", "k IN (SELECT k FROM allowed)"),
            ("exists", "EXISTS (SELECT 1 FROM allowed a WHERE a.k = e.k) AND v >= 0"),
        ] {
            let out = format!("{name}-{parallelism}.jsonl");
            let sql = format!(
                "SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '7';\n\
                 CREATE TABLE events (k STRING, v BIGINT) WITH ('connector' = 'file', 'path' = '{events}', 'format' = 'json');\n\
                 CREATE TABLE allowed (k STRING) WITH ('connector' = 'file', 'path' = '{allowed}', 'format' = 'json');\n\
                 CREATE TABLE out (k STRING, v BIGINT) WITH ('connector' = 'file', 'path' = '{out}', 'format' = 'json');\n\
                 INSERT INTO out SELECT k, v FROM events e WHERE {condition};\n",
                events = dir.sql_path("events.jsonl"),
                allowed = dir.sql_path("allowed.jsonl"),
                out = dir.sql_path(&out),
            );
            run_script(&sql).await.unwrap_or_else(|e| panic!("{name} at parallelism {parallelism}: {e:#}"));
            assert_eq!(sorted_lines(&dir, &out), expected_in, "{name} at parallelism {parallelism}");
        }
    }
}

/// JSON keys are matched as the columns are declared, camelCase included, though SQL names are
/// case-insensitive; a key that differs in case only is not taken for the column.
#[tokio::test]
async fn json_keys_match_the_declared_spelling() {
    let dir = TestDir::new("flink-camel");
    write_text(
        &dir.file("in.jsonl"),
        "{\"userId\":1,\"emailAddress\":\"a@example.com\"}\n\
         {\"userId\":2,\"EmailAddress\":\"b@example.com\"}\n\
         {\"userId\":3}\n",
    );
    let sql = format!(
        "CREATE TABLE users (userId BIGINT, emailAddress STRING)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
         CREATE TABLE out (id BIGINT, email STRING) WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');\n\
         INSERT INTO out SELECT userid, EMAILADDRESS FROM users;\n",
        input = dir.sql_path("in.jsonl"),
        output = dir.sql_path("out.jsonl"),
    );
    let reports = run_script(&sql).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reports[0].metrics.bad_records, 0);
    // Rows 2 (a key in other case) and 3 lack the declared "emailAddress": counted.
    assert_eq!(reports[0].metrics.rows_missing_fields, 2);
    assert_eq!(
        sorted_lines(&dir, "out.jsonl"),
        vec![r#"{"id":1,"email":"a@example.com"}"#, r#"{"id":2,"email":null}"#, r#"{"id":3,"email":null}"#,]
    );
}

/// Computed columns as Flink declares them: the event time computed from epoch milliseconds
/// (with the watermark on it), a processing-time column, any expression over the other
/// columns; JSON is read for the declared columns only, so computed ones count as no absent key.
#[tokio::test]
async fn computed_columns_feed_watermarks_and_queries() {
    let dir = TestDir::new("flink-computed");
    write_text(
        &dir.file("in.jsonl"),
        "{\"id\":1,\"epochMs\":1700000000000,\"name\":\"a\"}\n\
         {\"id\":2,\"epochMs\":1700000005000,\"name\":\"b\"}\n\
         {\"id\":3,\"epochMs\":1700000012000,\"name\":null}\n\
         {\"id\":4,\"epochMs\":1700000001000,\"name\":\"late\"}\n",
    );
    let ddl = format!(
        "CREATE TABLE events (\n\
         \x20 id BIGINT,\n\
         \x20 epochMs BIGINT,\n\
         \x20 name STRING,\n\
         \x20 ts AS TO_TIMESTAMP_LTZ(epochMs, 3),\n\
         \x20 pt AS PROCTIME(),\n\
         \x20 shout AS UPPER(name) || '!' COMMENT 'computed from name',\n\
         \x20 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND\n\
         ) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n",
        dir.sql_path("in.jsonl")
    );
    let sql = format!(
        "{ddl}CREATE TABLE rows_out (id BIGINT, ts TIMESTAMP(3), fresh BOOLEAN, shout STRING)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{rows}', 'format' = 'json');\n\
         CREATE TABLE counts (window_start TIMESTAMP(3), n BIGINT)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{counts}', 'format' = 'json');\n\
         INSERT INTO rows_out SELECT id, ts, pt > TIMESTAMP '2020-01-01 00:00:00', shout FROM events;\n\
         INSERT INTO counts SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND))\n\
         \x20 GROUP BY window_start, window_end;\n",
        rows = dir.sql_path("rows.jsonl"),
        counts = dir.sql_path("counts.jsonl"),
    );
    let reports = run_script(&sql).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reports[0].metrics.bad_records, 0);
    assert_eq!(
        sorted_lines(&dir, "rows.jsonl"),
        vec![
            r#"{"id":1,"ts":"2023-11-14 22:13:20.000","fresh":true,"shout":"A!"}"#,
            r#"{"id":2,"ts":"2023-11-14 22:13:25.000","fresh":true,"shout":"B!"}"#,
            r#"{"id":3,"ts":"2023-11-14 22:13:32.000","fresh":true,"shout":null}"#,
            r#"{"id":4,"ts":"2023-11-14 22:13:21.000","fresh":true,"shout":"LATE!"}"#,
        ]
    );
    // Row 4 is late (the watermark on the computed ts passed 22:13:31): dropped and counted.
    assert_eq!(reports[1].metrics.late_rows, 1);
    assert_eq!(
        sorted_lines(&dir, "counts.jsonl"),
        vec![
            r#"{"window_start":"2023-11-14 22:13:20.000","n":2}"#,
            r#"{"window_start":"2023-11-14 22:13:30.000","n":1}"#
        ]
    );

    // Refused, pointing at the column: a sink with computed columns, an aggregate, a column
    // that does not exist.
    let sink = format!("{ddl}INSERT INTO events SELECT id, epochMs, name FROM events;\n");
    let error = plan(&sink).expect_err("a computed table is no sink");
    assert!(error.message().contains("has computed columns (ts, pt, shout)"), "{}", describe_sql_error(&error));
    for (column, expected) in [("n AS COUNT(id)", "an aggregate"), ("n AS nope + 1", "nope")] {
        let sql = format!(
            "CREATE TABLE t (id BIGINT,\n  {column}) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n",
            dir.sql_path("in.jsonl")
        );
        let error = plan(&sql).expect_err("refused");
        assert!(
            error.message().contains("computed column 'n'") && error.message().contains(expected),
            "{}",
            describe_sql_error(&error)
        );
        assert_eq!(error.location(), Some((2, 3)), "{}", describe_sql_error(&error));
    }
}

fn bids_ddl(dir: &TestDir) -> String {
    format!(
        "CREATE TABLE bids (ts TIMESTAMP(3), auction BIGINT, price BIGINT, ratio DOUBLE,\n\
         \x20 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n",
        dir.sql_path("bids.jsonl")
    )
}

const BIDS: &str = r#"{"ts":"2024-01-01 00:00:01","auction":1,"price":100,"ratio":2.5}
{"ts":"2024-01-01 00:00:02","auction":1,"price":101,"ratio":-2.5}
{"ts":"2024-01-01 00:00:03","auction":2,"price":7,"ratio":0.0004}
"#;

/// INSERT INTO converts between numeric types as Flink does (Nexmark q1 writes `0.908 * price`,
/// a DOUBLE here, into DECIMAL; q17 writes AVG, a DOUBLE, into BIGINT), and takes an integer
/// literal into an INT column.
#[tokio::test]
async fn insert_converts_between_numeric_types() {
    let dir = TestDir::new("flink-insert-casts");
    write_text(&dir.file("bids.jsonl"), BIDS);
    let sql = format!(
        "{bids}\
         CREATE TABLE q1 (auction BIGINT, price DECIMAL(23, 3), ratio BIGINT, one INT, small SMALLINT, tiny DECIMAL(5, 3))\n\
         \x20 WITH ('connector' = 'file', 'path' = '{q1}', 'format' = 'json');\n\
         CREATE TABLE q17 (auction BIGINT, window_start TIMESTAMP(3), total INT, avg_price BIGINT, n INT)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{q17}', 'format' = 'json');\n\
         INSERT INTO q1 SELECT auction, 0.908 * price, ratio, 1, price, ratio FROM bids;\n\
         INSERT INTO q17\n\
         SELECT auction, window_start, SUM(price), AVG(price), COUNT(*)\n\
         FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))\n\
         GROUP BY auction, window_start, window_end;\n",
        bids = bids_ddl(&dir),
        q1 = dir.sql_path("q1.jsonl"),
        q17 = dir.sql_path("q17.jsonl"),
    );
    run_script(&sql).await.unwrap_or_else(|e| panic!("{e:#}"));
    // DOUBLE → DECIMAL rounds half up; DOUBLE → BIGINT truncates toward zero.
    assert_eq!(
        sorted_lines(&dir, "q1.jsonl"),
        vec![
            r#"{"auction":1,"price":90.800,"ratio":2,"one":1,"small":100,"tiny":2.500}"#,
            r#"{"auction":1,"price":91.708,"ratio":-2,"one":1,"small":101,"tiny":-2.500}"#,
            r#"{"auction":2,"price":6.356,"ratio":0,"one":1,"small":7,"tiny":0.000}"#,
        ]
    );
    assert_eq!(
        sorted_lines(&dir, "q17.jsonl"),
        vec![
            r#"{"auction":1,"window_start":"2024-01-01 00:00:00.000","total":201,"avg_price":100,"n":2}"#,
            r#"{"auction":2,"window_start":"2024-01-01 00:00:00.000","total":7,"avg_price":7,"n":1}"#,
        ]
    );
}

/// A value out of the sink column's range fails the pipeline, naming the column: it never wraps
/// or turns into NULL silently. A literal that cannot fit is refused when planned.
#[tokio::test]
async fn insert_conversions_that_overflow_fail_loudly() {
    let dir = TestDir::new("flink-insert-overflow");
    write_text(
        &dir.file("bids.jsonl"),
        &format!("{BIDS}{}\n", r#"{"ts":"2024-01-01 00:00:04","auction":3,"price":70000,"ratio":1e300}"#),
    );
    let sink = |name: &str, column: &str| {
        format!(
            "CREATE TABLE {name} ({column}) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n",
            dir.sql_path(&format!("{name}.jsonl"))
        )
    };
    for (column, query, value) in [
        ("small SMALLINT", "SELECT price FROM bids", "70000"),
        ("big BIGINT", "SELECT ratio FROM bids", "1e300"),
        ("d DECIMAL(10, 2)", "SELECT ratio FROM bids", "1e300"),
    ] {
        let name = column.split(' ').next().unwrap_or_default();
        let sql = format!("{}{}INSERT INTO t_{name} {query};\n", bids_ddl(&dir), sink(&format!("t_{name}"), column));
        let error = match run_script(&sql).await {
            Ok(_) => panic!("{column}: {value} was written without an error"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains(&format!("'{name}'")), "{column}: the error does not name the column: {error}");
        assert!(error.contains("out of range"), "{column}: {error}");
    }

    let sql = format!("{}{}INSERT INTO lit SELECT 3000000000 FROM bids;\n", bids_ddl(&dir), sink("lit", "i INT"));
    let error = match plan(&sql) {
        Ok(_) => panic!("3000000000 planned into an INT column"),
        Err(e) => e,
    };
    assert!(
        error.message().contains("'i'") && error.message().contains("3000000000"),
        "{}",
        describe_sql_error(&error)
    );
}

/// `LIMIT n` ends a pipeline over an endless stream once its sink has written n rows, at any
/// parallelism, through a window aggregation too; the output is complete (not cancelled).
#[tokio::test]
async fn limit_ends_an_endless_stream_after_its_rows() {
    let dir = TestDir::new("flink-limit");
    let rows_ddl = "flow_id BIGINT, flow_type STRING";
    for (parallelism, columns, query, rows) in [
        (1, rows_ddl, "SELECT flow_id, flow_type FROM flows WHERE bytes_in > 0 LIMIT 7", 7),
        (2, rows_ddl, "SELECT flow_id, flow_type FROM flows LIMIT 1000", 1000),
        (
            2,
            "flow_type STRING, n BIGINT",
            "SELECT flow_type, COUNT(*) FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
             GROUP BY window_start, window_end, flow_type LIMIT 4",
            4,
        ),
    ] {
        let name = format!("out-{parallelism}-{rows}.jsonl");
        let out = dir.sql_path(&name);
        let sql = format!(
            "SET 'parallelism.default' = '{parallelism}';\n\
             CREATE TABLE flows (flow_id BIGINT, flow_type STRING, bytes_in BIGINT, ts TIMESTAMP(3), \
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'netflow');\n\
             CREATE TABLE out ({columns}) WITH ('connector' = 'file', 'path' = '{out}', 'format' = 'json');\n\
             INSERT INTO out {query};\n"
        );
        let reports = tokio::time::timeout(Duration::from_secs(60), run_script(&sql))
            .await
            .unwrap_or_else(|_| panic!("{query}: LIMIT did not end the pipeline"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!reports[0].cancelled, "{query}");
        assert_eq!(reports[0].metrics.rows_out, rows, "{query}");
        let written = std::fs::read_to_string(dir.file(&name)).expect("the output file");
        assert_eq!(written.lines().count() as u64, rows, "{query}");
    }
}

/// Windows over processing time (a `PROCTIME()` column) close by the clock while an endless
/// source keeps going: each result is a whole second of the wall clock, emitted once it is over.
#[tokio::test]
async fn processing_time_windows_close_by_the_clock() {
    let dir = TestDir::new("flink-proctime");
    let out = dir.sql_path("out.jsonl");
    let sql = format!(
        "CREATE TABLE flows (pt AS PROCTIME()) WITH ('connector' = 'netflow', 'rows-per-second' = '1000');\n\
         CREATE TABLE out (window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, emitted TIMESTAMP(3))\n\
         \x20 WITH ('connector' = 'file', 'path' = '{out}', 'format' = 'json');\n\
         INSERT INTO out SELECT window_start, window_end, COUNT(*), CURRENT_TIMESTAMP\n\
         FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(pt), INTERVAL '1' SECOND))\n\
         GROUP BY window_start, window_end LIMIT 3;\n"
    );
    let started = chrono::Utc::now().timestamp_millis();
    let reports = tokio::time::timeout(Duration::from_secs(30), run_script(&sql))
        .await
        .expect("three one-second windows close by the clock")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reports[0].metrics.rows_out, 3);
    let time = |row: &serde_json::Map<String, serde_json::Value>, key: &str| {
        let text = row[key].as_str().unwrap_or_else(|| panic!("{key}: {row:?}"));
        parse_sink_timestamp(text).unwrap_or_else(|| panic!("{key}: {row:?}"))
    };
    for row in read_jsonl(&dir.file("out.jsonl")) {
        let (start, end, emitted) = (time(&row, "window_start"), time(&row, "window_end"), time(&row, "emitted"));
        assert_eq!(end - start, 1000, "{row:?}");
        assert!(start >= started - 1000, "a window of the wall clock: {row:?}");
        // Emitted once the second is over, not much later (the clock closes it, not a row).
        assert!(emitted >= end && emitted < end + 900, "{row:?}");
        assert!(row["n"].as_i64().is_some_and(|n| n > 0), "{row:?}");
    }

    // A window join over processing time.
    let join = "CREATE TABLE a (pt AS PROCTIME()) WITH ('connector' = 'netflow');\n\
                CREATE TABLE b (pt AS PROCTIME()) WITH ('connector' = 'netflow');\n\
                SELECT l.flow_id FROM (SELECT * FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(pt), INTERVAL '1' SECOND))) l \
                JOIN (SELECT * FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(pt), INTERVAL '1' SECOND))) r \
                ON l.flow_id = r.flow_id AND l.window_start = r.window_start AND l.window_end = r.window_end;\n";
    let error = plan(join).expect_err("refused");
    assert!(error.message().contains("window join of windows over processing time"), "{}", describe_sql_error(&error));

    // SESSION over processing time, and windows over the results of processing-time windows.
    let ddl = "CREATE TABLE flows (pt AS PROCTIME()) WITH ('connector' = 'netflow');\n";
    let session = format!(
        "{ddl}SELECT COUNT(*) FROM TABLE(SESSION(TABLE flows PARTITION BY src_ip, DESCRIPTOR(pt), INTERVAL '1' SECOND)) \
         GROUP BY window_start, window_end, src_ip;\n"
    );
    let error = plan(&session).expect_err("refused");
    assert!(error.message().contains("SESSION windows over processing time"), "{}", describe_sql_error(&error));
    let nested = format!(
        "{ddl}CREATE VIEW per_second AS SELECT window_time AS t, COUNT(*) AS n \
         FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(pt), INTERVAL '1' SECOND)) GROUP BY window_start, window_end, window_time;\n\
         SELECT SUM(n) FROM TABLE(TUMBLE(TABLE per_second, DESCRIPTOR(t), INTERVAL '10' SECOND)) \
         GROUP BY window_start, window_end;\n"
    );
    let error = plan(&nested).expect_err("refused");
    assert!(
        error.message().contains("DESCRIPTOR(t) must name the event-time column"),
        "{}",
        describe_sql_error(&error)
    );
}

/// `CURRENT_WATERMARK(ts)` is the watermark each row is judged by: filtering on it keeps
/// exactly the rows a window would not drop as late, so the late ones can go elsewhere.
#[tokio::test]
async fn current_watermark_separates_late_rows() {
    let dir = TestDir::new("flink-current-watermark");
    write_text(
        &dir.file("in.jsonl"),
        "{\"ts\":\"2024-01-01 00:00:05.000\",\"v\":1}\n\
         {\"ts\":\"2024-01-01 00:00:09.000\",\"v\":2}\n\
         {\"ts\":\"2024-01-01 00:00:06.000\",\"v\":3}\n\
         {\"ts\":\"2024-01-01 00:00:15.000\",\"v\":4}\n\
         {\"ts\":\"2024-01-01 00:00:07.000\",\"v\":5}\n",
    );
    let sql = format!(
        "CREATE TABLE events (ts TIMESTAMP(3), v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
         CREATE TABLE marked (v BIGINT, wm TIMESTAMP(3), late BOOLEAN)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{marked}', 'format' = 'json');\n\
         CREATE TABLE on_time (v BIGINT) WITH ('connector' = 'file', 'path' = '{on_time}', 'format' = 'json');\n\
         INSERT INTO marked SELECT v, CURRENT_WATERMARK(ts), ts < CURRENT_WATERMARK(ts) FROM events;\n\
         INSERT INTO on_time SELECT v FROM events WHERE CURRENT_WATERMARK(ts) IS NULL OR ts >= CURRENT_WATERMARK(ts);\n",
        input = dir.sql_path("in.jsonl"),
        marked = dir.sql_path("marked.jsonl"),
        on_time = dir.sql_path("on_time.jsonl"),
    );
    run_script(&sql).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        sorted_lines(&dir, "marked.jsonl"),
        vec![
            r#"{"v":1,"wm":null,"late":null}"#,
            r#"{"v":2,"wm":"2024-01-01 00:00:03.000","late":false}"#,
            r#"{"v":3,"wm":"2024-01-01 00:00:07.000","late":true}"#,
            r#"{"v":4,"wm":"2024-01-01 00:00:07.000","late":false}"#,
            r#"{"v":5,"wm":"2024-01-01 00:00:13.000","late":true}"#,
        ]
    );
    assert_eq!(sorted_lines(&dir, "on_time.jsonl"), vec![r#"{"v":1}"#, r#"{"v":2}"#, r#"{"v":4}"#]);

    let ddl = format!(
        "CREATE TABLE events (ts TIMESTAMP(3), other TIMESTAMP(3), v BIGINT, WATERMARK FOR ts AS ts)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n",
        dir.sql_path("in.jsonl")
    );
    for (query, expected) in [
        ("SELECT CURRENT_WATERMARK(other) FROM events", "takes the table's event-time column"),
        ("SELECT MAX(CURRENT_WATERMARK(ts)) FROM events GROUP BY v", "inside an aggregation is not supported"),
        (
            "SELECT * FROM (SELECT window_time AS t, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), \
             INTERVAL '1' SECOND)) GROUP BY window_start, window_end, window_time) WHERE t > CURRENT_WATERMARK(t)",
            "on a table's rows",
        ),
    ] {
        let error = plan(&format!("{ddl}{query};\n")).expect_err(query);
        assert!(error.message().contains(expected), "{query}: {}", describe_sql_error(&error));
    }
}

/// `ROW<...>`, `ARRAY<...>` and `MAP<STRING, ...>` columns read from JSON (a value that does
/// not fit is a bad record, as at the top level), queried with `person.name`, `tags[1]` and
/// `attrs['k']`, and written back as JSON, or as JSON text in CSV that reads back the same.
#[tokio::test]
async fn nested_row_array_and_map_columns() {
    let dir = TestDir::new("flink-nested");
    write_text(
        &dir.file("in.jsonl"),
        concat!(
            r#"{"id":1,"person":{"name":"Ann","age":31,"since":"2024-01-02 03:04:05"},"tags":["a","b"],"attrs":{"k":"v","n":"1"},"scores":[[1,2],[3]]}"#,
            "\n",
            r#"{"id":2,"person":{"name":"Bob","extra":true},"tags":[],"attrs":{},"scores":null}"#,
            "\n",
            r#"{"id":3,"person":{"name":"Cy","age":"x"},"tags":["c"]}"#,
            "\n",
            r#"{"id":4,"person":null,"tags":[null,"d"],"attrs":null,"scores":[[]]}"#,
            "\n",
            r#"{"id":5,"tags":"not an array"}"#,
            "\n",
        ),
    );
    let types = "person ROW<name STRING, age INT, since TIMESTAMP(3)>, tags ARRAY<STRING>, attrs MAP<STRING, STRING>, \
                 scores ARRAY<ARRAY<BIGINT>>";
    let sql = format!(
        "CREATE TABLE t (id BIGINT, {types})\n\
         \x20 WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json', 'format.on-error' = 'skip');\n\
         CREATE TABLE picked (id BIGINT, name STRING, age INT, first_tag STRING, k STRING)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{picked}', 'format' = 'json');\n\
         CREATE TABLE whole (id BIGINT, {types}) WITH ('connector' = 'file', 'path' = '{whole}', 'format' = 'json');\n\
         CREATE TABLE as_csv (id BIGINT, {types}) WITH ('connector' = 'file', 'path' = '{csv}', 'format' = 'csv');\n\
         INSERT INTO picked SELECT id, person.name, person.age, tags[1], attrs['k'] FROM t;\n\
         INSERT INTO whole SELECT * FROM t;\n\
         INSERT INTO as_csv SELECT * FROM t;\n",
        input = dir.sql_path("in.jsonl"),
        picked = dir.sql_path("picked.jsonl"),
        whole = dir.sql_path("whole.jsonl"),
        csv = dir.sql_path("whole.csv"),
    );
    let reports = run_script(&sql).await.unwrap_or_else(|e| panic!("{e:#}"));
    // Row 3 (age "x") and row 5 (tags not an array) are bad records.
    assert_eq!(reports[0].metrics.bad_records, 2);
    assert_eq!(
        sorted_lines(&dir, "picked.jsonl"),
        vec![
            r#"{"id":1,"name":"Ann","age":31,"first_tag":"a","k":"v"}"#,
            r#"{"id":2,"name":"Bob","age":null,"first_tag":null,"k":null}"#,
            r#"{"id":4,"name":null,"age":null,"first_tag":null,"k":null}"#,
        ]
    );
    let whole = vec![
        r#"{"id":1,"person":{"name":"Ann","age":31,"since":"2024-01-02 03:04:05.000"},"tags":["a","b"],"attrs":{"k":"v","n":"1"},"scores":[[1,2],[3]]}"#,
        r#"{"id":2,"person":{"name":"Bob","age":null,"since":null},"tags":[],"attrs":{},"scores":null}"#,
        r#"{"id":4,"person":null,"tags":[null,"d"],"attrs":null,"scores":[[]]}"#,
    ];
    assert_eq!(sorted_lines(&dir, "whole.jsonl"), whole);

    // The CSV reads back into the same values.
    let back = format!(
        "CREATE TABLE c (id BIGINT, {types}) WITH ('connector' = 'file', 'path' = '{csv}', 'format' = 'csv');\n\
         CREATE TABLE again (id BIGINT, {types}) WITH ('connector' = 'file', 'path' = '{again}', 'format' = 'json');\n\
         INSERT INTO again SELECT * FROM c;\n",
        csv = dir.sql_path("whole.csv"),
        again = dir.sql_path("again.jsonl"),
    );
    let reports = run_script(&back).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reports[0].metrics.bad_records, 0);
    assert_eq!(sorted_lines(&dir, "again.jsonl"), whole);

    for (declared, expected) in [
        ("m MAP<INT, STRING>", "MAP keys must be STRING"),
        ("r ROW<a INT, a STRING>", "ROW field 'a' is declared twice"),
        ("r ROW<a INT", "expected '>' closing the type"),
    ] {
        let sql = format!("CREATE TABLE bad ({declared}) WITH ('connector' = 'blackhole');\n");
        let error = plan(&sql).expect_err(declared);
        assert!(error.message().contains(expected), "{declared}: {}", describe_sql_error(&error));
    }
}

/// The Python module of test functions, as a user would write one.
fn udfs_file() -> String {
    format!("{}/udfs/nexmark_udfs.py", env!("CARGO_MANIFEST_DIR"))
}

/// Python functions (`CREATE FUNCTION ... LANGUAGE PYTHON`), scalar and aggregate, in a query
/// and a window at parallelism 2; Python's answers typed by the function's annotations.
#[tokio::test]
async fn python_functions_scalar_and_aggregate() {
    let dir = TestDir::new("flink-python");
    write_text(
        &dir.file("in.jsonl"),
        "{\"ts\":\"2024-01-01 00:00:01.000\",\"k\":\"x\",\"v\":10,\"s\":\"banana\"}\n\
         {\"ts\":\"2024-01-01 00:00:02.000\",\"k\":\"y\",\"v\":3,\"s\":null}\n\
         {\"ts\":\"2024-01-01 00:00:03.000\",\"k\":\"x\",\"v\":12,\"s\":\"cab\"}\n\
         {\"ts\":\"2024-01-01 00:00:04.000\",\"k\":\"x\",\"v\":15,\"s\":\"a\"}\n\
         {\"ts\":\"2024-01-01 00:00:05.000\",\"k\":\"y\",\"v\":1,\"s\":\"\"}\n\
         {\"ts\":\"2024-01-01 00:00:06.000\",\"k\":\"x\",\"v\":19,\"s\":\"aaa\"}\n\
         {\"ts\":\"2024-01-01 00:00:20.000\",\"k\":\"x\",\"v\":0,\"s\":\"z\"}\n",
    );
    let sql = format!(
        "SET 'python.files' = '{udfs}';\n\
         SET 'parallelism.default' = '2';\n\
         CREATE FUNCTION py_count_char AS 'nexmark_udfs.count_char' LANGUAGE PYTHON;\n\
         CREATE TEMPORARY SYSTEM FUNCTION shout AS 'nexmark_udfs.shout' LANGUAGE PYTHON;\n\
         CREATE FUNCTION ratio AS 'nexmark_udfs.ratio' LANGUAGE PYTHON;\n\
         CREATE FUNCTION holt AS 'nexmark_udfs.HoltForecast' LANGUAGE PYTHON;\n\
         CREATE FUNCTION IF NOT EXISTS count_rows AS 'nexmark_udfs.CountRows' LANGUAGE PYTHON;\n\
         CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar';\n\
         CREATE TABLE events (ts TIMESTAMP(3), k STRING, v BIGINT, s STRING, WATERMARK FOR ts AS ts)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
         CREATE TABLE rows_out (v BIGINT, a BIGINT, java_a BIGINT, loud STRING, half DOUBLE)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{rows}', 'format' = 'json');\n\
         CREATE TABLE windows_out (k STRING, forecast DOUBLE, n BIGINT)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{windows}', 'format' = 'json');\n\
         INSERT INTO rows_out SELECT v, py_count_char(s, 'a'), count_char(s, 'a'), shout(k, s, NULL), ratio(v, 2) FROM events;\n\
         INSERT INTO windows_out SELECT k, holt(v), count_rows(v)\n\
         \x20 FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, k;\n",
        udfs = udfs_file(),
        input = dir.sql_path("in.jsonl"),
        rows = dir.sql_path("rows.jsonl"),
        windows = dir.sql_path("windows.jsonl"),
    );
    run_script(&sql).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        sorted_lines(&dir, "rows.jsonl"),
        vec![
            r#"{"v":0,"a":0,"java_a":0,"loud":"X-Z","half":0.0}"#,
            r#"{"v":1,"a":0,"java_a":0,"loud":"Y-","half":0.5}"#,
            r#"{"v":10,"a":3,"java_a":3,"loud":"X-BANANA","half":5.0}"#,
            r#"{"v":12,"a":1,"java_a":1,"loud":"X-CAB","half":6.0}"#,
            r#"{"v":15,"a":1,"java_a":1,"loud":"X-A","half":7.5}"#,
            r#"{"v":19,"a":3,"java_a":3,"loud":"X-AAA","half":9.5}"#,
            r#"{"v":3,"a":0,"java_a":0,"loud":"Y","half":1.5}"#,
        ]
    );
    // NaN and infinities cross in both directions; what the function reads from stdin is empty
    // and what it prints stays out of the answers.
    let edge = format!(
        "SET 'python.files' = '{udfs}';\n\
         CREATE FUNCTION is_nan AS 'nexmark_udfs.is_nan' LANGUAGE PYTHON;\n\
         CREATE FUNCTION times_infinity AS 'nexmark_udfs.times_infinity' LANGUAGE PYTHON;\n\
         CREATE FUNCTION noisy AS 'nexmark_udfs.noisy' LANGUAGE PYTHON;\n\
         CREATE TABLE events (v BIGINT) WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
         CREATE TABLE edge_out (v BIGINT, nan BOOLEAN, big BOOLEAN, same BIGINT)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{edge}', 'format' = 'json');\n\
         INSERT INTO edge_out SELECT v, is_nan(CAST('NaN' AS DOUBLE)), times_infinity(CAST(v AS DOUBLE)) > 1e308, \
         noisy(v) FROM events WHERE v = 10;\n",
        udfs = udfs_file(),
        input = dir.sql_path("in.jsonl"),
        edge = dir.sql_path("edge.jsonl"),
    );
    run_script(&edge).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(sorted_lines(&dir, "edge.jsonl"), vec![r#"{"v":10,"nan":true,"big":true,"same":10}"#]);

    // A query over no table sees the session's functions too.
    let mut session = streamsql_sql::Session::new(streamsql_connectors::registry());
    let script = format!(
        "SET 'python.files' = '{}';\nCREATE FUNCTION cc AS 'nexmark_udfs.count_char' LANGUAGE PYTHON;\n\
         SELECT cc('banana', 'a') AS n;\n",
        udfs_file()
    );
    let mut last = None;
    for statement in session.parse(&script).expect("parses") {
        last = Some(session.execute_statement(&script, statement).unwrap_or_else(|e| panic!("{e}")));
    }
    let Some(streamsql_sql::Outcome::Constant(plan, state)) = last else { panic!("a constant query") };
    let (_, batches) = streamsql_sql::run_constant(*plan, *state).await.expect("runs");
    let n = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().expect("BIGINT").value(0);
    assert_eq!(n, 3);

    // Holt's forecast of 10, 12, 15, 19 (alpha 0.5, beta 0.3) is 20.3275; of 3, 1 it is -1.
    assert_eq!(
        sorted_lines(&dir, "windows.jsonl"),
        vec![
            r#"{"k":"x","forecast":0.0,"n":1}"#,
            r#"{"k":"x","forecast":20.3275,"n":4}"#,
            r#"{"k":"y","forecast":-1.0,"n":2}"#,
        ]
    );
}

/// A Python function that cannot be used is refused when it is created, saying why; one that
/// fails or returns the wrong type fails the pipeline with Python's message.
#[tokio::test]
async fn python_function_errors_say_what_went_wrong() {
    let dir = TestDir::new("flink-python-errors");
    let prelude = format!("SET 'python.files' = '{}';\n", udfs_file());
    for (create, expected) in [
        ("CREATE FUNCTION f AS 'nexmark_udfs.untyped' LANGUAGE PYTHON", "does not say what it returns"),
        ("CREATE FUNCTION f AS 'no_such_module.f' LANGUAGE PYTHON", "ModuleNotFoundError"),
        ("CREATE FUNCTION f AS 'nexmark_udfs.nothing' LANGUAGE PYTHON", "AttributeError"),
        ("CREATE FUNCTION f AS 'com.example.MyUdf'", "Java class 'com.example.MyUdf' cannot be loaded"),
        ("CREATE FUNCTION upper AS 'nexmark_udfs.shout' LANGUAGE PYTHON", "'upper' is a built-in function"),
        ("CREATE FUNCTION f AS 'x.y' LANGUAGE RUST", "LANGUAGE RUST is not supported"),
    ] {
        let error = plan(&format!("{prelude}{create};\n")).expect_err(create);
        assert!(error.message().contains(expected), "{create}: {}", describe_sql_error(&error));
        assert_eq!(error.location().map(|(line, _)| line), Some(2), "{create}");
    }
    let recreated = format!(
        "{prelude}CREATE FUNCTION f AS 'nexmark_udfs.shout' LANGUAGE PYTHON;\nDROP FUNCTION f;\n\
         DROP FUNCTION IF EXISTS f;\nCREATE FUNCTION f AS 'nexmark_udfs.count_char' LANGUAGE PYTHON;\n"
    );
    plan(&recreated).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let error = plan("DROP FUNCTION upper;").expect_err("a built-in");
    assert!(error.message().contains("not a function made with CREATE FUNCTION"), "{}", describe_sql_error(&error));
    // Where a Python aggregate cannot run: groups that never end, frames that slide.
    let events = format!(
        "{prelude}CREATE FUNCTION holt AS 'nexmark_udfs.HoltForecast' LANGUAGE PYTHON;\n\
         CREATE TABLE e (ts TIMESTAMP(3), k STRING, v DOUBLE, WATERMARK FOR ts AS ts) WITH ('connector' = 'file', \
         'path' = '{}', 'format' = 'json');\n",
        dir.sql_path("in.jsonl")
    );
    for query in [
        "SELECT k, holt(v) FROM e GROUP BY k",
        "SELECT k, holt(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM e",
    ] {
        let error = plan(&format!("{events}{query};\n")).expect_err(query);
        assert!(error.message().contains("runs over windows only"), "{query}: {}", describe_sql_error(&error));
    }
    let error = plan("SET 'python.files' = '/no/such/dir';").expect_err("a missing path");
    assert!(error.message().contains("does not exist"), "{}", describe_sql_error(&error));

    write_text(&dir.file("in.jsonl"), "{\"v\":1}\n{\"v\":2}\n");
    for (function, expected) in
        [("fails", "ValueError: cannot take 1"), ("wrong_type", "returned \"not a number\", which is not a BIGINT")]
    {
        let sql = format!(
            "{prelude}CREATE FUNCTION f AS 'nexmark_udfs.{function}' LANGUAGE PYTHON;\n\
             CREATE TABLE events (v BIGINT) WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
             CREATE TABLE out (v BIGINT) WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');\n\
             INSERT INTO out SELECT f(v) FROM events;\n",
            input = dir.sql_path("in.jsonl"),
            output = dir.sql_path(&format!("{function}.jsonl")),
        );
        let error = run_script(&sql).await.expect_err(function);
        assert!(format!("{error:#}").contains(expected), "{function}: {error:#}");
    }
}

/// `SHOW CREATE TABLE` masks secrets as `DESCRIBE` does; LIMIT with checkpoints is refused (a
/// restart would not know how many rows were written).
#[test]
fn show_create_masks_secrets_and_limit_refuses_checkpoints() {
    let mut session = streamsql_sql::Session::new(streamsql_connectors::registry());
    let script = "CREATE TABLE k (v BIGINT) WITH ('connector' = 'kafka', 'topic' = 't', \
                  'properties.bootstrap.servers' = 'localhost:1', 'properties.sasl.password' = 'hunter2', \
                  'format' = 'json');\nSHOW CREATE TABLE k;\n";
    let mut shown = String::new();
    for statement in session.parse(script).expect("parses") {
        if let streamsql_sql::Outcome::Text(text) = session.execute_statement(script, statement).expect("runs") {
            shown = text;
        }
    }
    assert!(shown.contains("'properties.sasl.password' = '***'") && !shown.contains("hunter2"), "{shown}");

    let dir = TestDir::new("flink-limit-checkpoints");
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '1 s';\nSET 'state.checkpoints.dir' = '{}';\n\
         CREATE TABLE flows (flow_id BIGINT) WITH ('connector' = 'netflow');\n\
         CREATE TABLE out (flow_id BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT flow_id FROM flows LIMIT 5;\n",
        dir.sql_path("state")
    );
    let error = plan(&sql).expect_err("refused");
    assert!(error.message().contains("LIMIT with checkpoints is not supported"), "{}", describe_sql_error(&error));
}

/// Rows a JSON file sink has written can be read while the pipeline still runs.
#[tokio::test]
async fn a_json_file_sink_shows_rows_before_the_pipeline_ends() {
    let dir = TestDir::new("flink-sink-visible");
    let sql = format!(
        "CREATE TABLE flows (flow_id BIGINT) WITH ('connector' = 'netflow', 'rows-per-second' = '200');\n\
         CREATE TABLE out (flow_id BIGINT) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n\
         INSERT INTO out SELECT flow_id FROM flows;\n",
        dir.sql_path("out.jsonl")
    );
    let mut specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let running = runtime::start(specs.remove(0));
    let control = running.control();
    let deadline = Instant::now() + Duration::from_secs(20);
    let visible = loop {
        let lines: usize = std::fs::read_dir(dir.path())
            .expect("list the test directory")
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(".out.jsonl.part-"))
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .map(|text| text.lines().count())
            .sum();
        if lines > 0 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    control.cancel();
    let report = running.join().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(visible > 0, "no row of the running pipeline could be read within 20 s");
    assert!(report.metrics.rows_out >= visible as u64);
}

/// Two pipelines writing one file would each replace the other's output: a file is written by
/// one pipeline at a time, and a second writer is refused when it is planned.
#[tokio::test]
async fn a_file_written_by_a_running_pipeline_cannot_get_a_second_writer() {
    let dir = TestDir::new("flink-one-writer");
    let tables = format!(
        "CREATE TABLE flows (flow_id BIGINT) WITH ('connector' = 'netflow', 'rows-per-second' = '200');\n\
         CREATE TABLE first (flow_id BIGINT) WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
         CREATE TABLE second (flow_id BIGINT) WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'csv');\n",
        path = dir.sql_path("out.jsonl")
    );
    let mut specs = plan(&format!("{tables}INSERT INTO first SELECT flow_id FROM flows;\n"))
        .unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let running = runtime::start(specs.remove(0));
    let control = running.control();
    // The sink is opened when the pipeline starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while control.metrics().rows_out == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = plan(&format!("{tables}INSERT INTO second SELECT flow_id FROM flows;\n"));
    control.cancel();
    running.join().await.unwrap_or_else(|e| panic!("{e}"));
    let error = match second {
        Ok(_) => panic!("a second pipeline writing the same file was planned"),
        Err(e) => e,
    };
    assert!(
        error.message().contains("out.jsonl") && error.message().contains("first"),
        "{}",
        describe_sql_error(&error)
    );
    // Once the first pipeline has ended, the file may be written again.
    plan(&format!("{tables}INSERT INTO second SELECT flow_id FROM flows;\n"))
        .unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
}
