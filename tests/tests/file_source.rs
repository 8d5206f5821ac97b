//! The file source end to end: malformed records under both `'format.on-error'` policies, CSV
//! input, and a pipeline without aggregation.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use streamsql_tests::{Cell, Row, TestDir, diff_rows, rows_from_jsonl, run_script, write_text};

const GOOD_1: &str = r#"{"ts":"2024-01-01 00:00:01","k":"a","v":1}"#;
const GOOD_2: &str = r#"{"ts":"2024-01-01T00:00:02Z","k":"b","v":2}"#;
const BAD_JSON: &str = r#"{"ts":"2024-01-01 00:00:03","k":"a","v":"#;
const BAD_TYPE: &str = r#"{"ts":"2024-01-01 00:00:04","k":"a","v":"four"}"#;
const GOOD_5: &str = r#"{"ts":1704067205000,"k":"a","v":5}"#;
const NOT_JSON: &str = "not json at all";
const GOOD_7: &str = r#"{"ts":"2024-01-01 00:00:12.000","k":"b","v":7}"#;
const BAD_TS: &str = r#"{"ts":"yesterday","k":"b","v":8}"#;

/// 2024-01-01 00:00:00 UTC.
const T0: i64 = 1_704_067_200_000;

fn counts_schema() -> Schema {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    Schema::new(vec![
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
        Field::new("k", DataType::Utf8, true),
        Field::new("c", DataType::Int64, false),
        Field::new("s", DataType::Int64, true),
    ])
}

fn window_counts_script(dir: &TestDir, format: &str, on_error: Option<&str>) -> String {
    let input = if format == "csv" { "in.csv" } else { "in.jsonl" };
    let on_error = on_error.map(|p| format!(", 'format.on-error' = '{p}'")).unwrap_or_default();
    format!(
        "SET 'execution.batch-size' = '2';\n\
         CREATE TABLE events (ts TIMESTAMP(3), k STRING, v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{input}', 'format' = '{format}'{on_error});\n\
         CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING, c BIGINT, s BIGINT)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');\n\
         INSERT INTO counts\n\
         SELECT window_start, window_end, k, COUNT(*), SUM(v)\n\
         FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND))\n\
         GROUP BY window_start, window_end, k;\n",
        input = dir.sql_path(input),
        output = dir.sql_path("out.jsonl"),
    )
}

/// The windows of the good records GOOD_1, GOOD_2, GOOD_5, GOOD_7.
fn expected_counts() -> Vec<Row> {
    let w = |start_s: i64| (Cell::Ts(T0 + start_s * 1000), Cell::Ts(T0 + start_s * 1000 + 10_000));
    let row = |start_s: i64, k: &str, c: i64, s: i64| {
        let (start, end) = w(start_s);
        vec![start, end, Cell::Str(k.into()), Cell::Int(c), Cell::Int(s)]
    };
    vec![row(0, "a", 2, 6), row(0, "b", 1, 2), row(10, "b", 1, 7)]
}

fn lines(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

async fn expect_failure_at(dir: &TestDir, input: &str, script: &str, line: u64, also: &[&str]) {
    let error = match run_script(script).await {
        Ok(reports) => {
            panic!("expected the pipeline to fail on {input}:{line}, it ended with {reports:?}")
        }
        Err(e) => format!("{e:#}"),
    };
    let position = format!("{}:{line}", dir.file(input).display());
    assert!(error.contains(&position), "the error should contain '{position}': {error}");
    for fragment in also {
        assert!(error.contains(fragment), "the error should mention {fragment:?}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_line_fails_with_its_position() {
    let dir = TestDir::new("file-bad-json");
    write_text(&dir.file("in.jsonl"), &lines(&[GOOD_1, GOOD_2, BAD_JSON, BAD_TYPE, GOOD_5]));
    let script = window_counts_script(&dir, "json", None);
    expect_failure_at(&dir, "in.jsonl", &script, 3, &["format.on-error"]).await;

    // Explicit 'fail' is the same as the default.
    let script = window_counts_script(&dir, "json", Some("fail"));
    expect_failure_at(&dir, "in.jsonl", &script, 3, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_value_fails_with_position_and_column() {
    let dir = TestDir::new("file-bad-value");
    // The blank line still counts as a line.
    write_text(&dir.file("in.jsonl"), &lines(&[GOOD_1, "", BAD_TYPE, GOOD_5]));
    let script = window_counts_script(&dir, "json", None);
    expect_failure_at(&dir, "in.jsonl", &script, 3, &["'v'", "four"]).await;

    write_text(&dir.file("in.jsonl"), &lines(&[GOOD_1, GOOD_2, GOOD_5, BAD_TS]));
    expect_failure_at(&dir, "in.jsonl", &script, 4, &["'ts'", "yesterday"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_counts_bad_records_and_keeps_the_rest() {
    let dir = TestDir::new("file-skip");
    write_text(&dir.file("in.jsonl"), &lines(&[GOOD_1, GOOD_2, BAD_JSON, BAD_TYPE, GOOD_5, NOT_JSON, GOOD_7, BAD_TS]));
    let reports =
        run_script(&window_counts_script(&dir, "json", Some("skip"))).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reports.len(), 1);
    let metrics = reports[0].metrics;
    assert_eq!(metrics.bad_records, 4, "{metrics:?}");
    assert_eq!(metrics.rows_in, 4, "{metrics:?}");
    assert_eq!(metrics.late_rows, 0, "{metrics:?}");
    let actual = rows_from_jsonl(&dir.file("out.jsonl"), &counts_schema()).unwrap_or_else(|e| panic!("{e:#}"));
    if let Some(diff) = diff_rows(&expected_counts(), &actual, 0.0) {
        panic!("{diff}");
    }
    assert_eq!(metrics.rows_out, 3, "{metrics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_source_with_a_bad_record() {
    let dir = TestDir::new("file-csv");
    let csv = "ts,k,v\n\
               2024-01-01 00:00:01,a,1\n\
               2024-01-01T00:00:02Z,b,2\n\
               2024-01-01 00:00:04,a,four\n\
               1704067205000,a,5\n\
               2024-01-01 00:00:12.000,b,7\n";
    write_text(&dir.file("in.csv"), csv);
    let script = window_counts_script(&dir, "csv", None);
    expect_failure_at(&dir, "in.csv", &script, 4, &["'v'"]).await;

    let reports =
        run_script(&window_counts_script(&dir, "csv", Some("skip"))).await.unwrap_or_else(|e| panic!("{e:#}"));
    let metrics = reports[0].metrics;
    assert_eq!(metrics.bad_records, 1, "{metrics:?}");
    let actual = rows_from_jsonl(&dir.file("out.jsonl"), &counts_schema()).unwrap_or_else(|e| panic!("{e:#}"));
    if let Some(diff) = diff_rows(&expected_counts(), &actual, 0.0) {
        panic!("{diff}");
    }
}

/// WHERE and a projection with no aggregation: rows pass through in order, late or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_and_projection_without_aggregation() {
    let dir = TestDir::new("file-stateless");
    write_text(
        &dir.file("in.jsonl"),
        &lines(&[
            GOOD_1,
            GOOD_2,
            GOOD_7,
            GOOD_5, // 7 s behind: would be late for a window, but nothing is windowed here
            r#"{"ts":"2024-01-01 00:00:13","k":null,"v":null}"#,
            r#"{"ts":"2024-01-01 00:00:14","k":"c","v":40}"#,
        ]),
    );
    let script = format!(
        "SET 'parallelism.default' = '4';\n\
         SET 'execution.batch-size' = '2';\n\
         CREATE TABLE events (ts TIMESTAMP(3), k STRING, v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
         CREATE TABLE projected (ts TIMESTAMP(3), name STRING, doubled BIGINT)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');\n\
         INSERT INTO projected SELECT ts, UPPER(k), v * 2 FROM events WHERE v IS NULL OR v > 1;\n",
        input = dir.sql_path("in.jsonl"),
        output = dir.sql_path("out.jsonl"),
    );
    let reports = run_script(&script).await.unwrap_or_else(|e| panic!("{e:#}"));
    let metrics = reports[0].metrics;
    assert_eq!((metrics.rows_in, metrics.rows_out, metrics.late_rows), (6, 5, 0), "{metrics:?}");
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let schema = Schema::new(vec![
        Field::new("ts", ts, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("doubled", DataType::Int64, true),
    ]);
    let actual = rows_from_jsonl(&dir.file("out.jsonl"), &schema).unwrap_or_else(|e| panic!("{e:#}"));
    let row = |s: i64, name: Option<&str>, doubled: Option<i64>| -> Row {
        vec![
            Cell::Ts(T0 + s * 1000),
            name.map_or(Cell::Null, |n| Cell::Str(n.into())),
            doubled.map_or(Cell::Null, Cell::Int),
        ]
    };
    let expected = [
        row(2, Some("B"), Some(4)),
        row(12, Some("B"), Some(14)),
        row(5, Some("A"), Some(10)),
        row(13, None, None),
        row(14, Some("C"), Some(80)),
    ];
    // Same rows, and in input order (there is a single source and no exchange).
    let shown: Vec<String> = actual.iter().map(|r| streamsql_tests::show_row(r)).collect();
    let wanted: Vec<String> = expected.iter().map(|r| streamsql_tests::show_row(r)).collect();
    assert_eq!(shown, wanted);
}

/// A HOP window TVF puts each row in size / slide windows. Without an aggregation the engine
/// must either expand the rows that way or reject the query (it rejects selecting
/// `window_start` there); it must not silently return each row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_without_aggregation_expands_rows_or_is_rejected() {
    let dir = TestDir::new("file-hop-passthrough");
    write_text(
        &dir.file("in.jsonl"),
        &lines(&[
            GOOD_1,
            r#"{"ts":"2024-01-01 00:00:05","k":"b","v":2}"#,
            r#"{"ts":"2024-01-01 00:00:06.5","k":"c","v":3}"#,
        ]),
    );
    let script = format!(
        "CREATE TABLE events (ts TIMESTAMP(3), k STRING, v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)\n\
         \x20 WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');\n\
         CREATE TABLE o (k STRING, v BIGINT) WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');\n\
         INSERT INTO o SELECT k, v FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '4' SECOND));\n",
        input = dir.sql_path("in.jsonl"),
        output = dir.sql_path("out.jsonl"),
    );
    let specs = match streamsql_tests::plan(&script) {
        Err(e) => {
            // Rejecting is fine, with a message that says why.
            let message = e.message().to_lowercase();
            assert!(
                message.contains("window") || message.contains("hop"),
                "{}",
                streamsql_tests::describe_sql_error(&e)
            );
            return;
        }
        Ok(specs) => specs,
    };
    streamsql_tests::run_specs(specs).await.unwrap_or_else(|e| panic!("{e:#}"));
    let out = streamsql_tests::read_jsonl(&dir.file("out.jsonl"));
    assert_eq!(
        out.len(),
        6,
        "each of the 3 rows is in 2 HOP windows (slide 2 s, size 4 s), so 6 rows are expected; got {out:?}"
    );
}

/// The CSV sink: a header row, then one row per result; timestamps as YYYY-MM-DD HH:MM:SS.fff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_sink_writes_a_header_and_rows() {
    let dir = TestDir::new("file-csv-sink");
    write_text(&dir.file("in.jsonl"), &lines(&[GOOD_1, GOOD_2, GOOD_5, GOOD_7]));
    let script = window_counts_script(&dir, "json", None).replace(
        &format!("'{}', 'format' = 'json'", dir.sql_path("out.jsonl")),
        &format!("'{}', 'format' = 'csv'", dir.sql_path("out.csv")),
    );
    assert!(script.contains("out.csv"), "{script}");
    run_script(&script).await.unwrap_or_else(|e| panic!("{e:#}"));
    let text = std::fs::read_to_string(dir.file("out.csv")).expect("the CSV sink file");
    let mut got: Vec<&str> = text.lines().collect();
    assert_eq!(got.first().copied(), Some("window_start,window_end,k,c,s"), "{text}");
    got.remove(0);
    got.sort_unstable();
    assert_eq!(
        got,
        vec![
            "2024-01-01 00:00:00.000,2024-01-01 00:00:10.000,a,2,6",
            "2024-01-01 00:00:00.000,2024-01-01 00:00:10.000,b,1,2",
            "2024-01-01 00:00:10.000,2024-01-01 00:00:20.000,b,1,7",
        ],
        "{text}"
    );
}

async fn run_with_timeout(script: &str) -> anyhow::Result<Vec<streamsql_tests::PipelineReport>> {
    match tokio::time::timeout(std::time::Duration::from_secs(30), run_script(script)).await {
        Ok(result) => result,
        Err(_) => panic!("the pipeline neither finished nor failed within 30 s:\n{script}"),
    }
}

fn many_lines(n: usize) -> String {
    (0..n).map(|i| format!("{{\"ts\":{},\"k\":\"k{}\",\"v\":{i}}}\n", T0 + i as i64 * 10, i % 13)).collect()
}

/// A missing input file fails the pipeline with the table and the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_input_file_fails_with_its_path() {
    let dir = TestDir::new("file-missing");
    let error = match run_with_timeout(&window_counts_script(&dir, "json", None)).await {
        Ok(reports) => panic!("expected a failure, got {reports:?}"),
        Err(e) => format!("{e:#}"),
    };
    let path = dir.file("in.jsonl").display().to_string();
    assert!(error.contains(&path) && error.contains("events"), "{error}");
}

/// A sink that cannot be created (its path is a directory) fails the pipeline instead of
/// hanging it, even while the source has plenty left to send through 4 instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_sink_fails_the_pipeline() {
    let dir = TestDir::new("file-bad-sink");
    write_text(&dir.file("in.jsonl"), &many_lines(20_000));
    std::fs::create_dir_all(dir.file("out.jsonl")).expect("a directory where the sink file should go");
    let script = window_counts_script(&dir, "json", None).replace(
        "SET 'execution.batch-size' = '2';",
        "SET 'execution.batch-size' = '16';\nSET 'parallelism.default' = '4';",
    );
    let error = match run_with_timeout(&script).await {
        Ok(reports) => panic!("expected a failure, got {reports:?}"),
        Err(e) => format!("{e:#}"),
    };
    let path = dir.file("out.jsonl").display().to_string();
    assert!(error.contains(&path), "the error should name {path}: {error}");
}

/// A bad record deep in a large input stops a parallel pipeline with its position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_record_deep_in_a_large_file_fails_a_parallel_pipeline() {
    let dir = TestDir::new("file-bad-deep");
    let mut text = many_lines(15_000);
    text.push_str(NOT_JSON);
    text.push('\n');
    text.push_str(&many_lines(100));
    write_text(&dir.file("in.jsonl"), &text);
    let script = window_counts_script(&dir, "json", None).replace(
        "SET 'execution.batch-size' = '2';",
        "SET 'execution.batch-size' = '64';\nSET 'parallelism.default' = '4';",
    );
    let error = match run_with_timeout(&script).await {
        Ok(reports) => panic!("expected a failure, got {reports:?}"),
        Err(e) => format!("{e:#}"),
    };
    let position = format!("{}:15001", dir.file("in.jsonl").display());
    assert!(error.contains(&position), "the error should contain {position}: {error}");
}

/// A file sink table `o (k STRING, v BIGINT)` writing JSON lines to `path`, opened directly.
fn open_file_sink(
    path: &std::path::Path,
) -> (Box<dyn streamsql_engine::connector::Sink>, arrow::record_batch::RecordBatch) {
    use std::sync::Arc;
    use streamsql_engine::connector::Connector;
    let schema =
        Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("v", DataType::Int64, true)]));
    let options = [("connector", "file"), ("path", &*path.to_string_lossy()), ("format", "json")];
    let table = streamsql_engine::connector::TableDef {
        name: "o".into(),
        schema: schema.clone(),
        options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        watermark: None,
        primary_key: Vec::new(),
        computed: Vec::new(),
    };
    let sink = streamsql_connectors::file::FileConnector.open_sink(&table).unwrap_or_else(|e| panic!("{e}"));
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow::array::StringArray::from(vec!["new", "rows"])),
            Arc::new(arrow::array::Int64Array::from(vec![1, 2])),
        ],
    )
    .expect("a batch");
    (sink, batch)
}

/// Names of the files in `dir`, sorted.
fn file_names(dir: &TestDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("the test directory")
        .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const NEW_ROWS: &str = "{\"k\":\"new\",\"v\":1}\n{\"k\":\"rows\",\"v\":2}\n";

/// The issue: a rerun truncated its file sink the moment it opened. The previous output stays
/// until the new one is complete; meanwhile rows are readable, flushed per batch, in a part file
/// next to it.
#[test]
fn file_sink_replaces_the_previous_output_only_when_finished() {
    let dir = TestDir::new("file-sink-rerun");
    let old = "{\"k\":\"old\",\"v\":0}\n";
    write_text(&dir.file("out.jsonl"), old);
    let (mut sink, batch) = open_file_sink(&dir.file("out.jsonl"));
    let read = |name: &str| std::fs::read_to_string(dir.file(name)).expect("a sink file");
    assert_eq!(read("out.jsonl"), old, "opening the sink must not touch the previous output");

    sink.write(&batch).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read("out.jsonl"), old, "writing must not touch the previous output");
    let names = file_names(&dir);
    let part =
        names.iter().find(|n| n.starts_with(".out.jsonl.part-")).unwrap_or_else(|| panic!("no part file: {names:?}"));
    assert_eq!(read(part), NEW_ROWS, "the rows written so far are in the part file");

    sink.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read("out.jsonl"), NEW_ROWS);
    assert_eq!(file_names(&dir), vec!["out.jsonl"], "the part file was renamed");
}

/// A sink dropped without finishing (its task died) leaves the previous output and no part file.
#[test]
fn file_sink_dropped_unfinished_keeps_the_previous_output() {
    let dir = TestDir::new("file-sink-dropped");
    write_text(&dir.file("out.jsonl"), "old\n");
    let (mut sink, batch) = open_file_sink(&dir.file("out.jsonl"));
    sink.write(&batch).unwrap_or_else(|e| panic!("{e}"));
    drop(sink);
    assert_eq!(std::fs::read_to_string(dir.file("out.jsonl")).expect("the output"), "old\n");
    assert_eq!(file_names(&dir), vec!["out.jsonl"]);
}

/// Running the same script twice gives the same output, and leaves no part files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_of_a_pipeline_replaces_its_output() {
    let dir = TestDir::new("file-sink-rerun-pipeline");
    write_text(&dir.file("in.jsonl"), &lines(&[GOOD_1, GOOD_2, GOOD_5, GOOD_7]));
    let script = window_counts_script(&dir, "json", None);
    for _ in 0..2 {
        run_script(&script).await.unwrap_or_else(|e| panic!("{e:#}"));
        let actual = rows_from_jsonl(&dir.file("out.jsonl"), &counts_schema()).unwrap_or_else(|e| panic!("{e:#}"));
        if let Some(diff) = diff_rows(&expected_counts(), &actual, 0.0) {
            panic!("{diff}");
        }
        assert_eq!(file_names(&dir), vec!["in.jsonl", "out.jsonl"]);
    }
}

/// A path that is not a regular file (here a named pipe) is written directly, not replaced.
#[test]
fn file_sink_into_a_named_pipe_writes_through_it() {
    let dir = TestDir::new("file-sink-fifo");
    let fifo = dir.file("rows.pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).expect("reading the pipe"))
    };
    let (mut sink, batch) = open_file_sink(&fifo);
    sink.write(&batch).unwrap_or_else(|e| panic!("{e}"));
    sink.finish().unwrap_or_else(|e| panic!("{e}"));
    drop(sink);
    assert_eq!(reader.join().expect("the reader"), NEW_ROWS);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).expect("the pipe").file_type().is_fifo());
    assert_eq!(file_names(&dir), vec!["rows.pipe"]);
}

/// A rerun that fails (here on a bad record upstream of a window, under the default `fail`
/// policy) keeps the previous run's output and leaves no part file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rerun_keeps_the_previous_output() {
    let dir = TestDir::new("file-sink-failed-rerun");
    write_text(&dir.file("in.jsonl"), &lines(&[GOOD_1, GOOD_2, GOOD_5, GOOD_7]));
    let script = window_counts_script(&dir, "json", None);
    run_script(&script).await.unwrap_or_else(|e| panic!("{e:#}"));
    let first = std::fs::read_to_string(dir.file("out.jsonl")).expect("the first output");

    write_text(&dir.file("in.jsonl"), &lines(&[GOOD_1, GOOD_2, BAD_JSON, GOOD_5, GOOD_7]));
    assert!(run_script(&script).await.is_err(), "the bad record fails the pipeline");
    assert_eq!(std::fs::read_to_string(dir.file("out.jsonl")).expect("the output"), first);
    assert_eq!(file_names(&dir), vec!["in.jsonl", "out.jsonl"]);
}
