//! `Session::execute` rejects bad scripts with errors a user can act on, and never panics.

use streamsql_tests::{SqlError, TestDir, describe_sql_error, plan};

/// A source with a watermark on `ts` and a second, non-watermark timestamp column.
fn events_ddl(dir: &TestDir) -> String {
    format!(
        "CREATE TABLE events (\n\
         \x20 ts TIMESTAMP(3),\n\
         \x20 other_time TIMESTAMP(3),\n\
         \x20 k STRING,\n\
         \x20 k2 INT,\n\
         \x20 v BIGINT,\n\
         \x20 WATERMARK FOR ts AS ts - INTERVAL '2' SECOND\n\
         ) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n",
        dir.sql_path("in.jsonl")
    )
}

fn counts_ddl(dir: &TestDir) -> String {
    format!(
        "CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING, event_count BIGINT)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n",
        dir.sql_path("out.jsonl")
    )
}

const TUMBLE: &str = "TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND))";

fn valid_insert() -> String {
    format!(
        "INSERT INTO counts\nSELECT window_start, window_end, k, COUNT(*)\nFROM {TUMBLE}\nGROUP BY window_start, window_end, k;\n"
    )
}

/// Both tables and the given statements.
fn script(dir: &TestDir, statements: &str) -> String {
    format!("{}{}{statements}", events_ddl(dir), counts_ddl(dir))
}

/// Plans `sql`, which must fail; returns the error.
fn expect_err(sql: &str) -> SqlError {
    match plan(sql) {
        Ok(specs) => panic!("expected an error, but the script planned into {} pipeline(s):\n{sql}", specs.len()),
        Err(e) => {
            assert!(!e.message().trim().is_empty(), "empty error message for:\n{sql}");
            assert!(!e.to_string().trim().is_empty(), "empty Display for:\n{sql}");
            eprintln!("error: {}", describe_sql_error(&e));
            e
        }
    }
}

/// The error message mentions every fragment (case-insensitively).
fn assert_mentions(error: &SqlError, fragments: &[&str]) {
    let message = error.to_string().to_lowercase() + " " + &error.message().to_lowercase();
    let missing: Vec<&str> = fragments.iter().copied().filter(|f| !message.contains(&f.to_lowercase())).collect();
    assert!(missing.is_empty(), "error message does not mention {missing:?}:\n  {}", describe_sql_error(error));
}

/// 1-based (line, column) of the first occurrence of `marker` in `text`, columns in characters.
fn position_of(text: &str, marker: &str) -> (u64, u64) {
    let offset = text.find(marker).unwrap_or_else(|| panic!("marker {marker:?} not in script"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u64, column as u64)
}

#[test]
fn the_valid_script_plans() {
    let dir = TestDir::new("plan-valid");
    let specs = plan(&script(&dir, &valid_insert())).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    assert_eq!(specs.len(), 1);
}

#[test]
fn syntax_error_in_a_later_statement_points_at_the_token() {
    let dir = TestDir::new("plan-syntax");
    // A stray ')' after COUNT(*), on the 4th line of the INSERT.
    let sql = script(
        &dir,
        &format!(
            "INSERT INTO counts\nSELECT window_start, window_end, k, COUNT(*) )\nFROM {TUMBLE}\nGROUP BY window_start, window_end, k;\n"
        ),
    );
    let error = expect_err(&sql);
    let expected = position_of(&sql, "COUNT(*) )");
    let expected = (expected.0, expected.1 + "COUNT(*) ".len() as u64);
    assert_eq!(error.location(), Some(expected), "location of the stray ')' ({})", describe_sql_error(&error));
}

#[test]
fn syntax_error_at_a_statement_start_points_at_the_token() {
    let dir = TestDir::new("plan-syntax-start");
    let sql = script(&dir, "-- a comment line\n\n   SELEC k FROM events;\n");
    let error = expect_err(&sql);
    assert_eq!(error.location(), Some(position_of(&sql, "SELEC")), "{}", describe_sql_error(&error));
    assert_mentions(&error, &["SELEC"]);
}

#[test]
fn syntax_error_inside_create_table_points_at_the_token() {
    let _dir = TestDir::new("plan-syntax-ddl");
    let sql = format!(
        "SET 'parallelism.default' = '2';\n\
         CREATE TABLE events (\n  ts TIMESTAMP(3),\n  k STRING,\n  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND\n\
         ) WITH ('connector' = 'file', 'format' = 'json', 'path' = );\n{}",
        valid_insert()
    );
    let error = expect_err(&sql);
    assert_eq!(error.location(), Some(position_of(&sql, ");")), "{}", describe_sql_error(&error));
}

#[test]
fn unknown_connector_lists_the_known_ones() {
    let dir = TestDir::new("plan-connector");
    let sql = script(&dir, &valid_insert()).replacen("'connector' = 'file'", "'connector' = 'kinesis'", 1);
    let error = expect_err(&sql);
    assert_mentions(&error, &["kinesis", "kafka", "file", "netflow", "print", "blackhole"]);
}

#[test]
fn missing_required_path_option() {
    let dir = TestDir::new("plan-missing-path");
    let sql = script(&dir, &valid_insert()).replacen(&format!("'path' = '{}', ", dir.sql_path("in.jsonl")), "", 1);
    assert!(!sql.contains("in.jsonl"), "the test did not remove the path option:\n{sql}");
    let error = expect_err(&sql);
    assert_mentions(&error, &["path", "events"]);
}

#[test]
fn unknown_option_is_named() {
    let dir = TestDir::new("plan-unknown-option");
    let sql =
        script(&dir, &valid_insert()).replacen("'format' = 'json'", "'format' = 'json', 'fromat.on-eror' = 'skip'", 1);
    let error = expect_err(&sql);
    assert_mentions(&error, &["fromat.on-eror"]);
}

#[test]
fn insert_with_wrong_number_of_columns() {
    let dir = TestDir::new("plan-arity");
    let sql = script(
        &dir,
        &format!(
            "INSERT INTO counts\nSELECT window_start, window_end, COUNT(*)\nFROM {TUMBLE}\nGROUP BY window_start, window_end;\n"
        ),
    );
    let error = expect_err(&sql);
    assert_mentions(&error, &["counts", "4", "3"]);
}

#[test]
fn insert_with_a_type_mismatch_names_the_sink_column() {
    let dir = TestDir::new("plan-type");
    // k (STRING) lands in event_count (BIGINT).
    let sql = script(
        &dir,
        &format!(
            "INSERT INTO counts\nSELECT window_start, window_end, k, UPPER(k)\nFROM {TUMBLE}\nGROUP BY window_start, window_end, k;\n"
        ),
    );
    let error = expect_err(&sql);
    assert_mentions(&error, &["event_count"]);
}

#[test]
fn insert_widening_int_to_bigint_is_accepted() {
    let dir = TestDir::new("plan-widen");
    // MAX(k2) is INT, event_count is BIGINT.
    let sql = script(
        &dir,
        &format!(
            "INSERT INTO counts\nSELECT window_start, window_end, k, MAX(k2)\nFROM {TUMBLE}\nGROUP BY window_start, window_end, k;\n"
        ),
    );
    let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    assert_eq!(specs.len(), 1);
}

#[test]
fn unknown_column_is_named() {
    let dir = TestDir::new("plan-unknown-column");
    let sql = script(
        &dir,
        &format!(
            "INSERT INTO counts\nSELECT window_start, window_end, no_such_column, COUNT(*)\nFROM {TUMBLE}\nGROUP BY window_start, window_end, no_such_column;\n"
        ),
    );
    let error = expect_err(&sql);
    assert_mentions(&error, &["no_such_column"]);
}

#[test]
fn order_by_on_a_stream_is_unsupported() {
    let dir = TestDir::new("plan-order-by");
    let sql = script(
        &dir,
        &format!(
            "INSERT INTO counts\nSELECT window_start, window_end, k, COUNT(*) AS c\nFROM {TUMBLE}\nGROUP BY window_start, window_end, k\nORDER BY c;\n"
        ),
    );
    let error = expect_err(&sql);
    assert_mentions(&error, &["ORDER BY"]);
}

/// `LIMIT n` at the top of an append-only query ends it after n rows; the forms a stream cannot
/// run are refused where they are written.
#[test]
fn limit_forms_a_stream_cannot_run_are_refused() {
    let dir = TestDir::new("plan-limit");
    let windowed =
        format!("SELECT window_start, window_end, k, COUNT(*)\nFROM {TUMBLE}\nGROUP BY window_start, window_end, k");
    let specs = plan(&script(&dir, &format!("INSERT INTO counts\n{windowed}\nLIMIT 10;\n"))).expect("LIMIT plans");
    assert_eq!(specs[0].limit, Some(10));
    for (tail, fragments) in [
        ("LIMIT 10 OFFSET 5", &["only LIMIT n", "no OFFSET"][..]),
        ("LIMIT 1 + 1", &["LIMIT needs a whole number of rows"][..]),
        ("ORDER BY k LIMIT 3", &["ORDER BY ... LIMIT", "ROW_NUMBER()"][..]),
    ] {
        let error = expect_err(&script(&dir, &format!("INSERT INTO counts\n{windowed}\n{tail};\n")));
        assert_mentions(&error, fragments);
        assert_eq!(error.location().map(|(line, _)| line), Some(15), "{tail}: {}", describe_sql_error(&error));
    }
    let updating = expect_err(&format!("{}SELECT k, COUNT(*) FROM events GROUP BY k LIMIT 3;\n", events_ddl(&dir)));
    assert_mentions(&updating, &["LIMIT on an updating result"]);
    let in_view = expect_err(&format!("{}CREATE VIEW first AS SELECT k FROM events LIMIT 3;\n", events_ddl(&dir)));
    assert_mentions(&in_view, &["LIMIT"]);
}

#[test]
fn updating_results_into_cassandra_without_a_key_are_refused() {
    let dir = TestDir::new("plan-updating-cassandra");
    let sql = format!(
        "{}CREATE TABLE per_key (k STRING, event_count BIGINT)\n\
           WITH ('connector' = 'cassandra', 'hosts' = '127.0.0.1:1', 'keyspace' = 'ks', 'table' = 't');\n\
         INSERT INTO per_key SELECT k, COUNT(*) FROM events GROUP BY k;\n",
        events_ddl(&dir)
    );
    // Refused while planning, before Cassandra (not running on port 1) is contacted: changes
    // are applied by key, and there is none.
    let error = expect_err(&sql);
    assert_mentions(&error, &["updating results", "declare PRIMARY KEY"]);
}

#[test]
fn aggregating_an_updating_aggregate_with_a_function_that_cannot_retract_is_refused() {
    let dir = TestDir::new("plan-updating-twice");
    let sql = format!(
        "{}CREATE VIEW per_key AS SELECT k, COUNT(*) AS n FROM events GROUP BY k;\n\
         SELECT n, STDDEV_POP(n) FROM per_key GROUP BY n;\n",
        events_ddl(&dir)
    );
    assert_mentions(&expect_err(&sql), &["STDDEV_POP(...) over an updating input", "COUNT, SUM, AVG, MIN and MAX"]);
}

#[test]
fn window_over_an_unknown_table_is_named() {
    let dir = TestDir::new("plan-tvf-table");
    let sql = script(
        &dir,
        "INSERT INTO counts\nSELECT window_start, window_end, k, COUNT(*)\n\
         FROM TABLE(TUMBLE(TABLE no_such_table, DESCRIPTOR(ts), INTERVAL '5' SECOND))\n\
         GROUP BY window_start, window_end, k;\n",
    );
    let error = expect_err(&sql);
    assert_mentions(&error, &["no_such_table"]);
}

#[test]
fn descriptor_must_name_the_watermark_column() {
    let dir = TestDir::new("plan-descriptor");
    let sql = script(
        &dir,
        "INSERT INTO counts\nSELECT window_start, window_end, k, COUNT(*)\n\
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(other_time), INTERVAL '5' SECOND))\n\
         GROUP BY window_start, window_end, k;\n",
    );
    let error = expect_err(&sql);
    assert_mentions(&error, &["other_time", "watermark"]);
}

#[test]
fn window_over_a_table_without_watermark_is_rejected() {
    let dir = TestDir::new("plan-no-watermark");
    let sql = script(&dir, &valid_insert()).replacen(",\n  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND", "", 1);
    assert!(!sql.contains("WATERMARK"), "the test did not remove the watermark:\n{sql}");
    let error = expect_err(&sql);
    assert_mentions(&error, &["watermark"]);
}

/// A script using most of the dialect, for the truncation fuzz test.
fn rich_script(dir: &TestDir) -> String {
    format!(
        "-- settings\n\
         SET 'parallelism.default' = '4';\n\
         SET 'execution.batch-size' = '7';\n\
         CREATE TABLE events (\n  ts TIMESTAMP(3), k STRING, k2 INT, v BIGINT, d DOUBLE, p DECIMAL(10, 2), day DATE, ok BOOLEAN,\n  \
         WATERMARK FOR ts AS ts - INTERVAL '2' SECOND\n) WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json', 'format.on-error' = 'skip');\n\
         CREATE TABLE out (window_start TIMESTAMP(3), window_end TIMESTAMP(3), bucket STRING, c BIGINT, s BIGINT, a DOUBLE, dc BIGINT)\n  \
         WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'csv');\n\
         /* a block comment */\n\
         INSERT INTO out\n\
         SELECT window_start, window_end,\n  CASE WHEN k = 'it''s' THEN 'quoted' WHEN v IS NULL THEN 'none' ELSE UPPER(k) END AS bucket,\n  \
         COUNT(*), SUM(v), AVG(d), COUNT(DISTINCT k2)\n\
         FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '5' SECOND))\n\
         WHERE d > -1.5 AND ok\n\
         GROUP BY window_start, window_end, CASE WHEN k = 'it''s' THEN 'quoted' WHEN v IS NULL THEN 'none' ELSE UPPER(k) END\n\
         HAVING COUNT(*) > 1;\n",
        input = dir.sql_path("in.jsonl"),
        output = dir.sql_path("out.csv"),
    )
}

#[test]
fn the_rich_script_plans() {
    let dir = TestDir::new("plan-rich");
    let specs = plan(&rich_script(&dir)).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].parallelism, 4);
    assert_eq!(specs[0].batch_size, 7);
}

/// Truncated and slightly damaged scripts must give `Ok` or `Err`, never a panic.
#[test]
fn truncated_scripts_never_panic() {
    let dir = TestDir::new("plan-fuzz");
    let sql = rich_script(&dir);
    let boundaries: Vec<usize> = sql.char_indices().map(|(i, _)| i).chain([sql.len()]).collect();
    let step = (boundaries.len() / 200).max(1);
    let mut errors = 0;
    let mut checked = 0;
    let mut cuts: Vec<usize> = boundaries.iter().copied().step_by(step).collect();
    // Cut right before and after every token-ish boundary near the end too.
    cuts.extend(boundaries.iter().rev().take(20).copied());
    for cut in cuts {
        let prefix = &sql[..cut];
        checked += 1;
        if let Err(e) = plan(prefix) {
            errors += 1;
            assert!(!e.message().trim().is_empty(), "empty error message for the prefix:\n{prefix}");
            if let Some((line, column)) = e.location() {
                let lines = prefix.lines().count().max(1) as u64;
                assert!(
                    line >= 1 && column >= 1 && line <= lines + 1,
                    "location ({line}, {column}) outside the script of {lines} lines: {}\n{prefix}",
                    e.message()
                );
            }
        }
    }
    // Deleting one character here and there.
    for &at in boundaries.iter().step_by(step.max(2)).take(100) {
        let Some(ch) = sql[at..].chars().next() else {
            continue;
        };
        let damaged = format!("{}{}", &sql[..at], &sql[at + ch.len_utf8()..]);
        checked += 1;
        if plan(&damaged).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0, "no truncated script failed to plan ({checked} tried)");
}

#[test]
fn unknown_setting_lists_the_known_ones() {
    let dir = TestDir::new("plan-setting");
    let error = expect_err(&format!("SET 'paralelism.default' = '4';\n{}", script(&dir, &valid_insert())));
    assert_mentions(&error, &["paralelism.default", "parallelism.default", "execution.batch-size"]);
    assert_eq!(error.location(), Some((1, 1)), "{}", describe_sql_error(&error));
}

#[test]
fn bad_setting_values_are_rejected() {
    let dir = TestDir::new("plan-setting-value");
    let error = expect_err(&format!("SET 'parallelism.default' = '0';\n{}", script(&dir, &valid_insert())));
    assert_mentions(&error, &["parallelism.default", "'0'"]);
    let error = expect_err(&format!("SET 'execution.batch-size' = 'many';\n{}", script(&dir, &valid_insert())));
    assert_mentions(&error, &["execution.batch-size", "many"]);
}

#[test]
fn duplicate_table_is_named() {
    let dir = TestDir::new("plan-duplicate");
    let error = expect_err(&format!("{}{}", script(&dir, ""), counts_ddl(&dir)));
    assert_mentions(&error, &["counts", "exists"]);
}

#[test]
fn insert_into_an_unknown_table_is_named() {
    let dir = TestDir::new("plan-unknown-sink");
    let error = expect_err(&script(&dir, &valid_insert().replace("INTO counts", "INTO no_such_sink")));
    assert_mentions(&error, &["no_such_sink"]);
}

#[test]
fn insert_into_a_source_only_connector_is_rejected() {
    let dir = TestDir::new("plan-role");
    let error = expect_err(&script(
        &dir,
        "CREATE TABLE flows WITH ('connector' = 'netflow');\nINSERT INTO flows SELECT * FROM events;\n",
    ));
    assert_mentions(&error, &["flows", "netflow"]);
}

#[test]
fn watermark_column_must_exist_and_be_a_timestamp() {
    let dir = TestDir::new("plan-watermark-column");
    let error = expect_err(&script(&dir, &valid_insert()).replace("WATERMARK FOR ts", "WATERMARK FOR k"));
    assert_mentions(&error, &["k", "TIMESTAMP(3)", "STRING"]);
    let error = expect_err(&script(&dir, &valid_insert()).replace("WATERMARK FOR ts", "WATERMARK FOR nope"));
    assert_mentions(&error, &["nope"]);
}

#[test]
fn bad_window_intervals_are_rejected() {
    let dir = TestDir::new("plan-intervals");
    let hop = "TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '5' SECOND))";
    let error = expect_err(&script(&dir, &valid_insert().replace(TUMBLE, hop)));
    assert_mentions(&error, &["slide"]);
    let error = expect_err(&script(&dir, &valid_insert().replace("INTERVAL '5' SECOND", "INTERVAL '0' SECOND")));
    assert_mentions(&error, &["interval"]);
    let error = expect_err(&script(&dir, &valid_insert().replace("INTERVAL '5' SECOND", "INTERVAL '5' MONTH")));
    assert_mentions(&error, &["MONTH"]);
}

#[test]
fn unsupported_column_type_is_named() {
    let dir = TestDir::new("plan-type-name");
    let error = expect_err(&script(&dir, &valid_insert()).replace("v BIGINT", "v BIGNUM"));
    assert_mentions(&error, &["BIGNUM", "'v'"]);
}

#[test]
fn bad_option_value_lists_the_choices() {
    let dir = TestDir::new("plan-format");
    let error = expect_err(&script(&dir, &valid_insert()).replace("'format' = 'json'", "'format' = 'xml'"));
    assert_mentions(&error, &["xml", "json", "csv"]);
}

/// A user's type mistake is not an internal error: the engine reserves "internal error" for
/// its own bugs.
#[test]
fn aggregate_over_a_wrong_type_is_a_user_error() {
    let dir = TestDir::new("plan-sum-string");
    let error = expect_err(&script(&dir, &valid_insert().replace("COUNT(*)", "SUM(k)")));
    assert_mentions(&error, &["sum"]);
    assert!(
        !error.message().to_lowercase().contains("internal error"),
        "a type error in the user's query is reported as an internal error: {}",
        describe_sql_error(&error)
    );
}

/// INSERT matches columns by position, so the query may produce the same name twice (as in
/// Flink and standard SQL).
#[test]
fn insert_may_select_the_same_column_twice() {
    let dir = TestDir::new("plan-same-column");
    let sql = script(
        &dir,
        "CREATE TABLE pairs (a STRING, b STRING) WITH ('connector' = 'blackhole');\n\
         INSERT INTO pairs SELECT k, k FROM events;\n",
    );
    let specs = plan(&sql).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    assert_eq!(specs.len(), 1);
}

/// `SET` applies to the statements after it; a session keeps its tables between calls.
#[test]
fn settings_and_tables_carry_over_in_a_session() {
    let dir = TestDir::new("plan-session");
    let mut session = streamsql_tests::Session::new(streamsql_connectors::registry());
    let specs = session
        .execute(&format!("SET 'parallelism.default' = '3';\n{}", script(&dir, "")))
        .unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    assert!(specs.is_empty(), "DDL alone plans no pipeline");
    let specs = session
        .execute(&format!(
            "{}SET 'parallelism.default' = '2';\nSET 'execution.batch-size' = '9';\n{}",
            valid_insert(),
            valid_insert()
        ))
        .unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
    let settings: Vec<(usize, usize)> = specs.iter().map(|s| (s.parallelism, s.batch_size)).collect();
    assert_eq!(settings.len(), 2);
    assert_eq!(settings[0].0, 3, "{settings:?}");
    assert_eq!(settings[1], (2, 9), "{settings:?}");
}

/// What used to crash, hang or exhaust the process at plan time is refused with the limit and
/// the position (planned on a large stack, as the binary does).
#[test]
fn hostile_statements_are_refused_with_their_limit_and_position() {
    streamsql_engine::limits::on_planning_stack(hostile_statements_body).expect("a planning thread");
}

fn hostile_statements_body() {
    let dir = TestDir::new("plan-hostile");
    let query = |expr: &str| script(&dir, &format!("SELECT {expr} FROM events;"));

    // 8,000 terms aborted the binary (stack overflow), 3,000 took more than 30 s.
    let sum = vec!["v"; 8000].join(" + ");
    let error = expect_err(&query(&sum));
    assert_mentions(&error, &["nested too deeply", "400"]);
    assert!(error.location().is_some_and(|(line, _)| line > 1), "{}", describe_sql_error(&error));

    // 49 nested CASTs never finished planning: they are refused at once, with the position;
    // 10 plan.
    let mut cast = "v".to_string();
    for _ in 0..10 {
        cast = format!("CAST({cast} AS BIGINT)");
    }
    plan(&query(&cast)).unwrap_or_else(|e| panic!("10 casts: {}", describe_sql_error(&e)));
    for _ in 10..49 {
        cast = format!("CAST({cast} AS BIGINT)");
    }
    let started = std::time::Instant::now();
    let error = expect_err(&query(&cast));
    assert_mentions(&error, &["CAST, NOT", "levels deep"]);
    assert!(error.location().is_some(), "{}", describe_sql_error(&error));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "refused at once");
    // 20 `NOT (` around a syntax error took minutes (the parser tries each level twice).
    let nots = format!("SELECT {}v +{} FROM events;", "NOT (".repeat(20), ")".repeat(20));
    let started = std::time::Instant::now();
    assert_mentions(&expect_err(&script(&dir, &nots)), &["levels deep"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "refused at once");

    // A long OR chain is balanced, so any length plans.
    let predicates: Vec<String> = (0..3000).map(|i| format!("k2 = {i}")).collect();
    let chain = script(&dir, &format!("SELECT k FROM events WHERE {};", predicates.join(" OR ")));
    plan(&chain).unwrap_or_else(|e| panic!("OR chain: {}", describe_sql_error(&e)));

    // HOP 1 ms over 1 day put each row into 86.4 M windows.
    let hop = script(
        &dir,
        "SELECT window_start, COUNT(*) FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MILLISECOND, \
         INTERVAL '1' DAY)) GROUP BY window_start, window_end;",
    );
    assert_mentions(&expect_err(&hop), &["86400000 windows", "at most 10000"]);

    // A parallelism of a million aborted on allocation.
    let error = expect_err(&script(&dir, "SET 'parallelism.default' = '1000000';"));
    assert_mentions(&error, &["at most 256"]);
    assert!(error.location().is_some(), "{}", describe_sql_error(&error));
    assert_mentions(&expect_err("SET 'execution.batch-size' = '100000000';"), &["at most 1048576"]);
}

#[test]
fn over_forms_that_cannot_run_on_a_stream_say_what_to_write() {
    let dir = TestDir::new("plan-errors-over");
    let over = |select: &str| script(&dir, &format!("SELECT k, ts, {select} FROM events;\n"));
    let cases: &[(&str, &[&str])] = &[
        ("COUNT(*) OVER (PARTITION BY k)", &["without ORDER BY", "ORDER BY ts"]),
        ("COUNT(*) OVER (PARTITION BY k ORDER BY ts)", &["UNBOUNDED PRECEDING", "RANGE BETWEEN INTERVAL"]),
        (
            "SUM(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
            &["UNBOUNDED PRECEDING", "state TTL"],
        ),
        (
            "SUM(v) OVER (PARTITION BY k ORDER BY other_time RANGE BETWEEN INTERVAL '1' SECOND PRECEDING AND CURRENT ROW)",
            &["event-time column 'ts'", "processing time"],
        ),
        ("SUM(v) OVER (PARTITION BY k ORDER BY ts DESC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)", &["ascending"]),
        (
            "SUM(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)",
            &["FOLLOWING", "CURRENT ROW"],
        ),
        ("LEAD(v, k2) OVER (PARTITION BY k ORDER BY ts)", &["offset", "literal"]),
        ("ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts)", &["ROW_NUMBER", "rn <= N"]),
        ("ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC)", &["ROW_NUMBER", "updating Top-N"]),
        ("LAG(v, k2) OVER (PARTITION BY k ORDER BY ts)", &["offset", "literal"]),
        ("LAG(v) IGNORE NULLS OVER (PARTITION BY k ORDER BY ts)", &["IGNORE NULLS", "filter"]),
        (
            "SUM(v) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' MONTH PRECEDING AND CURRENT ROW)",
            &["months", "days"],
        ),
        (
            "SUM(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 1000000 PRECEDING AND CURRENT ROW)",
            &["at most 100000", "RANGE"],
        ),
    ];
    for (select, fragments) in cases {
        assert_mentions(&expect_err(&over(select)), fragments);
    }
    // A projection that drops the event time leaves nothing to order by.
    let sql = script(
        &dir,
        "SELECT k, COUNT(*) OVER (PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL '1' SECOND PRECEDING AND CURRENT ROW) \
         FROM (SELECT k, CAST(ts AS STRING) AS t FROM events);\n",
    );
    assert_mentions(&expect_err(&sql), &["event time"]);
    // A bound noted for one statement's ROW_NUMBER does not carry over to the next one's.
    let sql = script(
        &dir,
        "SELECT * FROM (SELECT k, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS rn FROM events) WHERE rn <= 1;\n\
         SELECT * FROM (SELECT k, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS rn FROM events);\n",
    );
    assert_mentions(&expect_err(&sql), &["ROW_NUMBER", "rn <= N"]);
    // The supported forms plan.
    let ok = over(
        "SUM(v) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW) AS s, \
         LAG(v, 2) OVER (PARTITION BY k ORDER BY ts) AS p",
    );
    plan(&ok).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
}

#[test]
fn session_and_cumulate_forms_that_cannot_run_say_why() {
    let dir = TestDir::new("plan-errors-session-cumulate");
    let session = "TABLE(SESSION(TABLE events PARTITION BY k, DESCRIPTOR(ts), INTERVAL '10' SECOND))";
    let cases: &[(String, &[&str])] = &[
        // Sessions are kept per PARTITION BY key: grouping by another key would mix them.
        (
            format!(
                "SELECT window_start, window_end, k2, COUNT(*) FROM {session} GROUP BY window_start, window_end, k2;"
            ),
            &["PARTITION BY k", "exactly k"],
        ),
        (
            "SELECT window_start, COUNT(*) FROM TABLE(CUMULATE(TABLE events, DESCRIPTOR(ts), INTERVAL '4' SECOND, \
             INTERVAL '10' SECOND)) GROUP BY window_start, window_end;"
                .to_string(),
            &["CUMULATE size", "multiple of its step"],
        ),
        (
            "SELECT COUNT(*) FROM TABLE(SESSION(TABLE events PARTITION BY nope, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
             GROUP BY window_start, window_end;"
                .to_string(),
            &["PARTITION BY nope", "no column"],
        ),
        (
            "SELECT COUNT(*) FROM TABLE(HOP(TABLE events PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' SECOND, \
             INTERVAL '2' SECOND)) GROUP BY window_start, window_end;"
                .to_string(),
            &["PARTITION BY", "SESSION windows only"],
        ),
        (
            format!(
                "SELECT l.k FROM (SELECT * FROM {session}) l JOIN (SELECT * FROM {session}) r ON l.k = r.k \
                 AND l.window_start = r.window_start AND l.window_end = r.window_end;"
            ),
            &["SESSION or CUMULATE", "not supported"],
        ),
        (format!("SELECT k, ts FROM {session};"), &["GROUP BY window_start"]),
        // CUMULATE windows of one period share their start: it does not identify a window.
        (
            "CREATE VIEW c AS SELECT window_start, window_end, k, COUNT(*) AS n FROM TABLE(CUMULATE(TABLE events, \
             DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '4' SECOND)) GROUP BY window_start, window_end, k;\n\
             SELECT window_start, SUM(n) FROM c GROUP BY window_start;"
                .to_string(),
            &["does not identify one window", "window_end"],
        ),
    ];
    for (statement, fragments) in cases {
        assert_mentions(&expect_err(&script(&dir, &format!("{statement}\n"))), fragments);
    }
    // Flink's GROUP BY form without PARTITION BY plans.
    let ok = script(
        &dir,
        "SELECT k2, window_start, window_end, COUNT(*) FROM TABLE(SESSION(TABLE events, DESCRIPTOR(ts), \
         INTERVAL '10' SECOND)) GROUP BY k2, window_start, window_end;\n",
    );
    plan(&ok).unwrap_or_else(|e| panic!("{}", describe_sql_error(&e)));
}

#[test]
fn casts_between_times_and_numbers_are_refused_where_written() {
    let dir = TestDir::new("plan-time-casts");
    // A TIMESTAMP literal would cast to nanoseconds, a TIMESTAMP(3) column to milliseconds:
    // Flink refuses both, and so do we, saying what to write, at the CAST's operand.
    let cases = [
        ("SELECT k, CAST(ts AS BIGINT) FROM events;\n", "ts AS BIGINT", "TIMESTAMPDIFF(SECOND"),
        ("SELECT k, v + CAST(CAST(ts AS DATE) AS INT) FROM events;\n", "ts AS DATE", "UNIX_TIMESTAMP"),
        ("SELECT k, CAST(v AS TIMESTAMP(3)) FROM events;\n", "v AS TIMESTAMP", "TO_TIMESTAMP_LTZ(n, 3)"),
    ];
    for (query, at, hint) in cases {
        let sql = format!("{}{query}", events_ddl(&dir));
        let error = expect_err(&sql);
        assert_mentions(&error, &["not supported (as in Flink)", hint]);
        assert_eq!(error.location(), Some(position_of(&sql, at)), "{}", describe_sql_error(&error));
    }
    let constant = plan("SELECT CAST(TIMESTAMP '2024-05-01 12:00:00' AS BIGINT);").expect_err("a literal too");
    assert!(describe_sql_error(&constant).contains("not supported (as in Flink)"));
    // Within times, within numbers, and to and from text stay allowed.
    plan(&format!(
        "{}SELECT k, CAST(ts AS DATE) AS d, CAST(v AS DOUBLE) AS x, CAST(ts AS STRING) AS s, CAST('2024-01-01 00:00:00' AS TIMESTAMP(3)) AS t FROM events;\n",
        events_ddl(&dir)
    ))
    .expect("other casts plan");
}
