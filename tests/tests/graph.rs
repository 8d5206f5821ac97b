//! Queries over several inputs, run end to end: `UNION ALL` of sources that advance at
//! different paces, what the planner refuses by name, and EXPLAIN of a graph.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use streamsql_tests::{TestDir, describe_sql_error, plan, read_jsonl, run_specs, write_text};

/// `rows` JSON events, one every `step_ms` from 2024-01-01 00:00:00, with key `k`.
fn events(rows: usize, step_ms: i64, k: &str) -> (String, Vec<i64>) {
    let base = 1_704_067_200_000_i64;
    let mut text = String::new();
    let mut times = Vec::with_capacity(rows);
    for i in 0..rows as i64 {
        let ts = base + i * step_ms;
        let _ = writeln!(text, r#"{{"ts":"{}","k":"{k}","v":{i}}}"#, streamsql_engine::time::format_millis(ts));
        times.push(ts);
    }
    (text, times)
}

fn table(name: &str, path: &str) -> String {
    format!(
        "CREATE TABLE {name} (ts TIMESTAMP(3), k STRING, v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n"
    )
}

/// A source 100× faster in event time than the other must not close the windows the slow one
/// still feeds: every row of both is counted, none is late, at every parallelism and batch size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_union_of_a_fast_and_a_slow_source_loses_no_row() {
    let dir = TestDir::new("graph-union");
    let (fast, fast_times) = events(4_000, 1_000, "fast");
    let (slow, slow_times) = events(4_000, 10, "slow");
    write_text(&dir.file("fast.jsonl"), &fast);
    write_text(&dir.file("slow.jsonl"), &slow);
    let mut expected: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for (times, k) in [(&fast_times, "fast"), (&slow_times, "slow")] {
        for ts in times {
            *expected.entry((ts - ts.rem_euclid(10_000), k.to_string())).or_default() += 1;
        }
    }
    for (parallelism, batch_size) in [(1, 1), (2, 1), (4, 64), (1, 8192)] {
        let out = format!("counts-p{parallelism}-b{batch_size}.jsonl");
        let sql = format!(
            "SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '{batch_size}';\n{fast}{slow}\
             CREATE VIEW both_inputs AS SELECT ts, k, v FROM fast UNION ALL SELECT ts, k, v FROM slow;\n\
             CREATE TABLE counts (window_start TIMESTAMP(3), k STRING, n BIGINT, total BIGINT)\n\
             \x20 WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
             INSERT INTO counts SELECT window_start, k, COUNT(*), SUM(v)\n\
             FROM TABLE(TUMBLE(TABLE both_inputs, DESCRIPTOR(ts), INTERVAL '10' SECOND))\n\
             GROUP BY window_start, window_end, k;\n",
            fast = table("fast", &dir.sql_path("fast.jsonl")),
            slow = table("slow", &dir.sql_path("slow.jsonl")),
            path = dir.sql_path(&out),
        );
        let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
        let reports = run_specs(specs).await.expect("the union runs");
        let metrics = reports[0].metrics;
        let label = format!("parallelism {parallelism}, batch size {batch_size}");
        assert_eq!((metrics.rows_in, metrics.late_rows), (8_000, 0), "{label}");
        let operators = &reports[0].operators;
        let names: Vec<&str> = operators.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["source fast", "source slow", "window aggregate"], "{label}");
        assert_eq!((operators[2].rows_in, operators[2].rows_out), (8_000, metrics.rows_out), "{label}");
        let mut actual: BTreeMap<(i64, String), i64> = BTreeMap::new();
        for row in read_jsonl(&dir.file(&out)) {
            let start = streamsql_tests::parse_sink_timestamp(row["window_start"].as_str().expect("start"))
                .expect("a timestamp");
            let k = row["k"].as_str().expect("k").to_string();
            assert!(actual.insert((start, k), row["n"].as_i64().expect("n")).is_none(), "{label}: a window twice");
        }
        assert_eq!(actual, expected, "{label}");
    }
}

/// A stream joined with a file without a watermark (a dimension table) is a lookup join: the
/// table's rows are looked up, the stream's rows are not kept once the table is read, and a
/// LEFT join pads a stream row only when no table row can still come: append-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_join_enriches_every_stream_row_once() {
    let dir = TestDir::new("graph-lookup");
    let (stream, _) = events(3_000, 10, "s");
    write_text(&dir.file("s.jsonl"), &stream);
    // Names for v % 7 in 0..5: rows with v % 7 of 5 or 6 find nothing.
    let mut dim = String::from("id,name\n");
    for id in 0..5 {
        let _ = writeln!(dim, "{id},name-{id}");
    }
    write_text(&dir.file("dim.csv"), &dim);
    for (kind, parallelism, batch_size) in [("LEFT", 1, 1), ("LEFT", 4, 64), ("INNER", 4, 8192), ("LEFT", 2, 8192)] {
        let out = format!("out-{kind}-p{parallelism}-b{batch_size}.jsonl");
        let sql = format!(
            "SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '{batch_size}';\n{s}\
             CREATE TABLE dim (id BIGINT, name STRING) WITH ('connector' = 'file', 'path' = '{dim}', 'format' = 'csv');\n\
             CREATE TABLE out (v BIGINT, name STRING) WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
             INSERT INTO out SELECT s.v, d.name FROM s {kind} JOIN dim AS d ON s.v % 7 = d.id;\n",
            s = table("s", &dir.sql_path("s.jsonl")),
            dim = dir.sql_path("dim.csv"),
            path = dir.sql_path(&out),
        );
        let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
        assert!(!specs[0].is_updating(), "a lookup join is append-only");
        let text = streamsql_sql::explain::explain(&specs[0], false);
        assert!(text.contains("lookup join on"), "{text}");
        if parallelism > 1 {
            assert!(
                text.contains(&format!(
                    "broadcast the table (right from [2]) to {parallelism} join instances; left from [1] round robin"
                )),
                "{text}"
            );
        }
        run_specs(specs).await.expect("the lookup join runs");
        let label = format!("{kind} at parallelism {parallelism}, batch size {batch_size}");
        let mut seen = vec![0; 3_000];
        for row in read_jsonl(&dir.file(&out)) {
            let v = row["v"].as_i64().expect("v");
            let expected = (v % 7 < 5).then(|| format!("name-{}", v % 7));
            assert_eq!(row["name"].as_str().map(str::to_string), expected, "{label}: row {v}");
            seen[v as usize] += 1;
        }
        for (v, count) in seen.iter().enumerate() {
            let expected = usize::from(kind == "LEFT" || v % 7 < 5);
            assert_eq!(*count, expected, "{label}: row {v} written {count} times");
        }
    }
}

/// Rows of every branch reach the sink; a branch may be a view with its own filter.
#[tokio::test]
async fn union_all_without_aggregation_writes_every_branch() {
    let dir = TestDir::new("graph-union-plain");
    let (a, _) = events(500, 100, "a");
    let (b, _) = events(300, 100, "b");
    write_text(&dir.file("a.jsonl"), &a);
    write_text(&dir.file("b.jsonl"), &b);
    let sql = format!(
        "{a}{b}CREATE TABLE out (k STRING, v BIGINT) WITH ('connector' = 'file', 'path' = '{out}', 'format' = 'json');\n\
         INSERT INTO out SELECT k, v FROM a UNION ALL SELECT k, v FROM b WHERE v % 3 = 0 UNION ALL SELECT 'again', v FROM a;\n",
        a = table("a", &dir.sql_path("a.jsonl")),
        b = table("b", &dir.sql_path("b.jsonl")),
        out = dir.sql_path("out.jsonl"),
    );
    let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    assert_eq!(specs[0].sources().len(), 3);
    let reports = run_specs(specs).await.expect("runs");
    let rows = read_jsonl(&dir.file("out.jsonl"));
    let count = |k: &str| rows.iter().filter(|r| r["k"] == k).count();
    assert_eq!((count("a"), count("b"), count("again")), (500, 100, 500));
    // `a` is read once for both branches that read it; each branch counts its rows.
    assert_eq!((reports[0].metrics.rows_in, reports[0].metrics.rows_out), (800, 1_100));
    let operators: Vec<String> = reports[0].operators.iter().map(ToString::to_string).collect();
    assert_eq!(
        operators,
        [
            "[1] source a: 500 rows in, 500 out",
            "[2] source b: 300 rows in, 100 out",
            "[3] source a: 500 rows in, 500 out"
        ]
    );
}

/// What the graph cannot run yet fails the plan with a message saying so, never a wrong answer.
#[test]
fn unsupported_graphs_are_refused_by_name() {
    let dir = TestDir::new("graph-refused");
    let tables = format!(
        "{}{}CREATE TABLE out (k STRING, n BIGINT) WITH ('connector' = 'blackhole');\n\
         CREATE VIEW ab AS SELECT * FROM a UNION ALL SELECT * FROM b;\n\
         CREATE VIEW joined AS SELECT a.ts, a.k FROM a JOIN b ON a.k = b.k;\n",
        table("a", &dir.sql_path("a.jsonl")),
        table("b", &dir.sql_path("b.jsonl"))
    );
    let cases = [
        ("SELECT a.k, b.v FROM a JOIN b ON a.v < b.v", "needs an equality between them"),
        ("SELECT a.k, b.v FROM a, b", "needs an equality between them"),
        (
            "SELECT k, STDDEV_POP(n) FROM (SELECT k, COUNT(*) AS n FROM a GROUP BY k) GROUP BY k",
            "STDDEV_POP(...) over an updating input (the result of an aggregation without a window) is not supported",
        ),
        (
            "SELECT l.k, r.v FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '1' SECOND)) l \
             JOIN TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '1' SECOND)) r \
             ON l.k = r.k AND l.window_start = r.window_start",
            "must join them on both window_start and window_end",
        ),
        (
            "SELECT l.k, r.v FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '1' SECOND)) l \
             JOIN TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '2' SECOND)) r \
             ON l.k = r.k AND l.window_start = r.window_start AND l.window_end = r.window_end",
            "the same window on both sides",
        ),
        (
            "SELECT l.k, r.v FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '1' SECOND)) l \
             LEFT JOIN TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '1' SECOND)) r \
             ON l.k = r.k AND l.window_start = r.window_start AND l.window_end = r.window_end AND l.v < r.v",
            "LEFT OUTER window join's condition may only hold equalities",
        ),
        (
            "SELECT a.k, b.v FROM a JOIN b FOR SYSTEM_TIME AS OF a.ts ON a.k = b.k",
            "FOR SYSTEM_TIME AS OF: 'b' is not a table a lookup join can read",
        ),
        (
            "SELECT l.k, b.v FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '1' SECOND)) l JOIN b ON l.k = b.k",
            "can only be joined with another window TVF",
        ),
        (
            "SELECT k, COUNT(*) FROM TABLE(TUMBLE(TABLE joined, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
             GROUP BY k, window_start, window_end",
            "the result of a join has none",
        ),
    ];
    for (query, expected) in cases {
        let sql = format!("{tables}INSERT INTO out {query};");
        match plan(&sql) {
            Ok(_) => panic!("planned: {query}"),
            Err(e) => {
                let message = describe_sql_error(&e);
                assert!(message.contains(expected), "{query}\n  gave: {message}\n  expected: {expected}");
            }
        }
    }
}

/// `SET 'table.exec.state.ttl'` bounds join state; where it cannot be honoured the plan says so.
#[test]
fn state_ttl_applies_to_joins_and_is_refused_where_it_cannot_be_honoured() {
    let dir = TestDir::new("graph-ttl");
    let tables = format!(
        "{}{}CREATE TABLE out (k STRING, n BIGINT) WITH ('connector' = 'blackhole');\n",
        table("a", &dir.sql_path("a.jsonl")),
        table("b", &dir.sql_path("b.jsonl"))
    );
    let join = "INSERT INTO out SELECT a.k, b.v FROM a JOIN b ON a.k = b.k;";
    let specs = plan(&format!("SET 'table.exec.state.ttl' = '1 h';\n{tables}{join}"))
        .unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let ttl = specs[0].inputs.iter().find_map(|node| match node {
        streamsql_engine::pipeline::Node::Stage { stage: streamsql_engine::pipeline::Stage::Join(join), .. } => {
            Some(join.state_ttl)
        }
        _ => None,
    });
    assert_eq!(ttl, Some(Some(std::time::Duration::from_secs(3_600))));
    let specs = plan(&format!("SET 'table.exec.state.ttl' = '0';\n{tables}{join}")).expect("plans");
    assert!(format!("{:?}", specs[0].inputs).contains("state_ttl: None"));

    let aggregate = "INSERT INTO out SELECT k, COUNT(*) FROM a GROUP BY k;";
    let error = plan(&format!("SET 'table.exec.state.ttl' = '10 min';\n{tables}{aggregate}")).expect_err("refused");
    assert!(describe_sql_error(&error).contains("bounds the state of joins only"), "{}", describe_sql_error(&error));
    let error = plan(&format!("SET 'table.exec.state.ttl' = 'forever';\n{tables}{join}")).expect_err("refused");
    assert!(describe_sql_error(&error).contains("needs a duration"), "{}", describe_sql_error(&error));
}

/// EXPLAIN numbers the nodes of a graph and says which feed which, on which keys.
#[test]
fn explain_shows_the_graph() {
    let dir = TestDir::new("graph-explain");
    let sql = format!(
        "SET 'parallelism.default' = '4';\n{}{}\
         CREATE TABLE out (k STRING, v BIGINT, n BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT a.k, a.v, c.n FROM a JOIN (\n\
         \x20 SELECT k, COUNT(*) AS n, window_start FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '1' SECOND))\n\
         \x20 GROUP BY k, window_start, window_end) c ON a.k = c.k WHERE a.v > c.n;",
        table("a", &dir.sql_path("a.jsonl")),
        table("b", &dir.sql_path("b.jsonl"))
    );
    let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let text = streamsql_sql::explain::explain(&specs[0], false);
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    for expected in [
        "source     [1] a (connector 'file'",
        "source     [2] b (connector 'file'",
        "exchange   [3] hash from [2] on (k) to 4 aggregation instances",
        "           two phases: each batch is pre-aggregated per pane and key before the exchange",
        "window     TUMBLE size 1 s",
        "exchange   [4] hash left from [1] on (k), right from [3] on (k) to 4 join instances",
        "join       inner join on (k) = (k)",
        "sink       out (connector 'blackhole') (from [4])",
    ] {
        assert!(has(expected), "no line starting {expected:?} in:\n{text}");
    }
    assert!(lines.iter().any(|l| l.contains("filter v > n")), "the residual condition after the join:\n{text}");
    assert!(text.contains("every row of both sides is kept"), "{text}");

    // Flink's key turns the first phase off, and only its three values are taken.
    let one_phase = plan(&format!("SET 'table.optimizer.agg-phase-strategy' = 'ONE_PHASE';\n{sql}"))
        .unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let one_phase = streamsql_sql::explain::explain(&one_phase[0], false);
    assert!(!one_phase.contains("two phases"), "{one_phase}");
    let error = plan(&format!("SET 'table.optimizer.agg-phase-strategy' = 'SOMETIMES';\n{sql}")).expect_err("refused");
    assert!(
        describe_sql_error(&error).contains("'AUTO', 'ONE_PHASE' or 'TWO_PHASE'"),
        "{}",
        describe_sql_error(&error)
    );

    // Window results joined on their window: rows leave as the watermark passes it.
    let windowed = |t: &str| {
        format!(
            "SELECT k, COUNT(*) AS n, window_start AS s, window_end AS e \
             FROM TABLE(TUMBLE(TABLE {t}, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY k, window_start, window_end"
        )
    };
    let sql = format!(
        "{}{}CREATE TABLE out (k STRING, v BIGINT, n BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT x.k, x.n, y.n FROM ({}) x JOIN ({}) y ON x.k = y.k AND x.e = y.e;",
        table("a", &dir.sql_path("a.jsonl")),
        table("b", &dir.sql_path("b.jsonl")),
        windowed("a"),
        windowed("b")
    );
    let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let text = streamsql_sql::explain::explain(&specs[0], false);
    assert!(text.contains("rows are kept until the watermark passes the end of their window"), "{text}");

    // Event times bounded against each other: an interval join.
    let sql = format!(
        "{}{}CREATE TABLE out (k STRING, v BIGINT, n BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT a.k, a.v, b.v FROM a JOIN b ON a.k = b.k \
         AND a.ts BETWEEN b.ts - INTERVAL '2' SECOND AND b.ts + INTERVAL '0.5' SECOND;",
        table("a", &dir.sql_path("a.jsonl")),
        table("b", &dir.sql_path("b.jsonl")),
    );
    let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let text = streamsql_sql::explain::explain(&specs[0], false);
    assert!(text.contains("interval join on (k) = (k), left time - right time in [-2 s, 500 ms]"), "{text}");
    assert!(text.contains("(ts < wm) is late"), "{text}");

    // A file without a watermark is a dimension table: a lookup join.
    let sql = format!(
        "{}CREATE TABLE dim (k STRING, name STRING) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');\n\
         CREATE TABLE out (k STRING, v BIGINT, name STRING) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT a.k, a.v, d.name FROM a JOIN dim d ON a.k = d.k;",
        table("a", &dir.sql_path("a.jsonl")),
        dir.sql_path("dim.csv"),
    );
    let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let text = streamsql_sql::explain::explain(&specs[0], false);
    assert!(text.contains("lookup join on (k) = (k); the right side is a bounded table"), "{text}");

    // Two window TVFs joined on their window: a window join.
    let sql = format!(
        "{}{}CREATE TABLE out (k STRING, v BIGINT, n BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT l.k, l.v, r.v FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '5' SECOND)) l \
         FULL JOIN TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '5' SECOND)) r \
         ON l.k = r.k AND l.window_start = r.window_start AND l.window_end = r.window_end;",
        table("a", &dir.sql_path("a.jsonl")),
        table("b", &dir.sql_path("b.jsonl")),
    );
    let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let text = streamsql_sql::explain::explain(&specs[0], false);
    assert!(text.contains("FULL window join on (k) = (k) per window: TUMBLE size 5 s"), "{text}");
}

/// `SET 'late-rows.sink'`: rows a window drops as late are written there, by column name, with
/// the operator and pipeline that dropped them; rows counted + rows routed = rows in. A SESSION
/// window holds only the columns its keys and aggregates read, and still routes late rows whole
/// (`V` and `ts`, which it does not read, reach the sink).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_go_to_the_late_rows_sink() {
    let dir = TestDir::new("graph-late");
    // Every 7th row goes 30 s back: late for the 10 s windows, with a 1 s delay, and behind its
    // own watermark for the sessions.
    let base = 1_704_067_200_000_i64;
    let mut text = String::new();
    let mut late_expected = 0;
    let rows = 3_000;
    for i in 0..rows as i64 {
        let back = if i % 7 == 6 && i > 300 { 30_000 } else { 0 };
        late_expected += usize::from(back > 0);
        let ts = base + i * 100 - back;
        let _ = writeln!(text, r#"{{"ts":"{}","k":"k{}","v":{i}}}"#, streamsql_engine::time::format_millis(ts), i % 3);
    }
    write_text(&dir.file("in.jsonl"), &text);
    let windows = [
        ("window aggregate (TUMBLE size 10 s)", "TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND)"),
        (
            "window aggregate (SESSION gap 1 s)",
            "SESSION(TABLE events PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' SECOND)",
        ),
    ];
    for (n, (operator, window)) in windows.iter().enumerate() {
        for (parallelism, batch_size) in [(1, 1), (4, 64), (2, 8192)] {
            let (out, late) = (
                format!("out-{n}-{parallelism}-{batch_size}.jsonl"),
                format!("late-{n}-{parallelism}-{batch_size}.jsonl"),
            );
            let sql = format!(
                "SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '{batch_size}';\n{input}\
                 CREATE TABLE counts (k STRING, n BIGINT) WITH ('connector' = 'file', 'path' = '{out}', 'format' = 'json');\n\
                 CREATE TABLE late_rows (operator STRING, V BIGINT, k STRING, ts TIMESTAMP(3), pipeline STRING)\n\
                 \x20 WITH ('connector' = 'file', 'path' = '{late}', 'format' = 'json');\n\
                 SET 'late-rows.sink' = 'late_rows';\n\
                 INSERT INTO counts SELECT k, COUNT(*) FROM TABLE({window})\n\
                 GROUP BY k, window_start, window_end;\n",
                input = table("events", &dir.sql_path("in.jsonl")),
                out = dir.sql_path(&out),
                late = dir.sql_path(&late),
            );
            let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
            let reports = run_specs(specs).await.expect("runs");
            let m = reports[0].metrics;
            let label = format!("{operator} at parallelism {parallelism}, batch size {batch_size}");
            assert_eq!((m.late_rows, m.late_rows_routed), (late_expected as u64, late_expected as u64), "{label}");
            let counted: i64 = read_jsonl(&dir.file(&out)).iter().map(|r| r["n"].as_i64().expect("n")).sum();
            let routed = read_jsonl(&dir.file(&late));
            assert_eq!(counted as usize + routed.len(), rows, "{label}: every row counted or routed");
            for row in &routed {
                let v = row["V"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{label}: V, as the late-rows table declares it: {row:?}"));
                assert_eq!(v % 7, 6, "{label}: only the rows that went back are late: {row:?}");
                assert_eq!(row["k"], format!("k{}", v % 3), "{label}");
                assert_eq!(row["operator"], *operator, "{label}");
                assert_eq!(row["pipeline"], "INSERT INTO counts", "{label}");
                let ts = streamsql_tests::parse_sink_timestamp(row["ts"].as_str().expect("ts")).expect("a timestamp");
                assert_eq!(ts, base + v * 100 - 30_000, "{label}");
            }
        }
    }
}

/// Interval and window joins route the rows they drop as late too, per input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_route_their_late_rows() {
    let dir = TestDir::new("graph-late-joins");
    // Input a: every 7th row after the 300th goes 30 s back. Input b: in order.
    let base = 1_704_067_200_000_i64;
    let (mut a, mut late_expected) = (String::new(), 0);
    for i in 0..2_000_i64 {
        let back = if i % 7 == 6 && i > 300 { 30_000 } else { 0 };
        late_expected += u64::from(back > 0);
        let ts = streamsql_engine::time::format_millis(base + i * 100 - back);
        let _ = writeln!(a, r#"{{"ts":"{ts}","k":"k{}","v":{i}}}"#, i % 3);
    }
    let (b, _) = events(2_000, 100, "k1");
    write_text(&dir.file("a.jsonl"), &a);
    write_text(&dir.file("b.jsonl"), &b);
    let queries = [
        (
            "interval join, left input",
            "SELECT a.v, b.v FROM a JOIN b ON a.k = b.k \
             AND a.ts BETWEEN b.ts - INTERVAL '1' SECOND AND b.ts + INTERVAL '1' SECOND",
        ),
        (
            "window join (TUMBLE size 10 s), left input",
            "SELECT l.v, r.v FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '10' SECOND)) l \
             FULL JOIN TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '10' SECOND)) r \
             ON l.k = r.k AND l.window_start = r.window_start AND l.window_end = r.window_end",
        ),
    ];
    for (n, (operator, query)) in queries.iter().enumerate() {
        for (parallelism, batch_size) in [(1, 1), (4, 8192)] {
            let late = format!("late-{n}-{parallelism}-{batch_size}.jsonl");
            let sql = format!(
                "SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '{batch_size}';\n{a}{b}\
                 CREATE TABLE out (x BIGINT, y BIGINT) WITH ('connector' = 'blackhole');\n\
                 CREATE TABLE late_rows (operator STRING, v BIGINT, k STRING)\n\
                 \x20 WITH ('connector' = 'file', 'path' = '{late}', 'format' = 'json');\n\
                 SET 'late-rows.sink' = 'late_rows';\nINSERT INTO out {query};\n",
                a = table("a", &dir.sql_path("a.jsonl")),
                b = table("b", &dir.sql_path("b.jsonl")),
                late = dir.sql_path(&late),
            );
            let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
            let reports = run_specs(specs).await.expect("runs");
            let m = reports[0].metrics;
            let label = format!("{operator} at parallelism {parallelism}, batch size {batch_size}");
            assert_eq!((m.late_rows, m.late_rows_routed), (late_expected, late_expected), "{label}");
            let join = reports[0].operators.iter().find(|o| o.name.ends_with(" join")).expect("the join's counters");
            assert_eq!(join.late_by_input, [late_expected, 0], "{label}: counted per input");
            assert!(
                join.to_string().ends_with(&format!("{late_expected} late (left {late_expected}, right 0)")),
                "{join}"
            );
            let routed = read_jsonl(&dir.file(&late));
            assert_eq!(routed.len() as u64, late_expected, "{label}");
            for row in &routed {
                assert_eq!(row["operator"], *operator, "{label}");
                assert_eq!(row["v"].as_i64().expect("v") % 7, 6, "{label}: {row:?}");
            }
        }
    }
}

#[test]
fn a_late_rows_sink_must_fit_the_late_rows() {
    let dir = TestDir::new("graph-late-refused");
    let tables = format!(
        "{}CREATE TABLE counts (k STRING, n BIGINT) WITH ('connector' = 'blackhole');\n\
         CREATE TABLE odd (k STRING, colour STRING) WITH ('connector' = 'blackhole');\n",
        table("events", &dir.sql_path("in.jsonl"))
    );
    let query = "INSERT INTO counts SELECT k, COUNT(*) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), \
                 INTERVAL '10' SECOND)) GROUP BY k, window_start, window_end;";
    for (setting, expected) in [
        ("nowhere", "there is no table 'nowhere'"),
        ("odd", "have no column 'colour'; they have ts, k, v, 'operator' and 'pipeline'"),
        ("counts", "late rows need a table of their own"),
    ] {
        let sql = format!("{tables}SET 'late-rows.sink' = '{setting}';\n{query}");
        let message = plan(&sql).map(|_| String::from("planned")).unwrap_or_else(|e| describe_sql_error(&e));
        assert!(message.contains(expected), "{setting}: {message}");
    }
    let sql = format!("{tables}SET 'late-rows.sink' = 'odd';\nSET 'late-rows.sink' = '';\n{query}");
    assert!(plan(&sql).is_ok(), "'' turns it off");
}

/// A query that reads a table twice (a self-join, as Nexmark q5 and q7 do) reads and decodes it
/// once: its rows and bad records are counted once, each use runs its own filter, and the
/// results are those of one read per use (`'table.optimizer.reuse-source-enabled' = 'false'`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_join_reads_its_table_once() {
    let dir = TestDir::new("graph-self-join");
    let (mut text, _) = events(3_000, 10, "s");
    text.push_str("{\"ts\":\"not a time\",\"k\":\"s\",\"v\":1}\nnot json\n");
    write_text(&dir.file("s.jsonl"), &text);
    // Pairs (v, v - 1) for v a multiple of 3 whose predecessor is even.
    let expected: Vec<(i64, i64)> = (1..3_000).filter(|v| v % 3 == 0 && (v - 1) % 2 == 0).map(|v| (v, v - 1)).collect();
    for (reuse, parallelism, batch_size) in [("true", 1, 1), ("true", 2, 64), ("true", 4, 8192), ("false", 2, 64)] {
        let out = format!("out-{reuse}-p{parallelism}-b{batch_size}.jsonl");
        let sql = format!(
            "SET 'parallelism.default' = '{parallelism}';\nSET 'execution.batch-size' = '{batch_size}';\n\
             SET 'table.optimizer.reuse-source-enabled' = '{reuse}';\n\
             CREATE TABLE s (ts TIMESTAMP(3), k STRING, v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
             \x20 WITH ('connector' = 'file', 'path' = '{s}', 'format' = 'json', 'format.on-error' = 'skip');\n\
             CREATE TABLE out (l BIGINT, r BIGINT) WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json');\n\
             INSERT INTO out SELECT l.v, r.v FROM (SELECT * FROM s WHERE v % 3 = 0) AS l\n\
             JOIN (SELECT * FROM s WHERE v % 2 = 0) AS r ON l.v = r.v + 1\n\
             AND l.ts BETWEEN r.ts AND r.ts + INTERVAL '1' SECOND;\n",
            s = dir.sql_path("s.jsonl"),
            path = dir.sql_path(&out),
        );
        let label = format!("reuse {reuse} at parallelism {parallelism}, batch size {batch_size}");
        let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
        let text = streamsql_sql::explain::explain(&specs[0], false);
        assert_eq!(text.contains("shares the read of [1]"), reuse == "true", "{label}: {text}");
        let threads = format!("decoded on {parallelism} threads");
        assert_eq!(text.contains(&threads), parallelism > 1, "{label}: {text}");
        let reports = run_specs(specs).await.unwrap_or_else(|e| panic!("{label}: {e}"));
        let metrics = reports[0].metrics;
        let reads = if reuse == "true" { 1 } else { 2 };
        assert_eq!((metrics.rows_in, metrics.bad_records), (3_000 * reads, 2 * reads), "{label}: {metrics:?}");
        let operators = &reports[0].operators;
        let names: Vec<&str> = operators.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["source s", "source s", "interval join"], "{label}");
        // Each use saw every row and kept what its own filter keeps.
        assert_eq!((operators[0].rows_in, operators[0].rows_out), (3_000, 1_000), "{label}");
        assert_eq!((operators[1].rows_in, operators[1].rows_out), (3_000, 1_500), "{label}");
        let mut actual: Vec<(i64, i64)> = read_jsonl(&dir.file(&out))
            .iter()
            .map(|row| (row["l"].as_i64().expect("l"), row["r"].as_i64().expect("r")))
            .collect();
        actual.sort_unstable();
        assert_eq!(actual, expected, "{label}");
    }
}
