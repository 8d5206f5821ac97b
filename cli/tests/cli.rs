//! End-to-end tests of the `streamsql` binary: files in, files out, exit codes, messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn streamsql() -> Command {
    Command::new(env!("CARGO_BIN_EXE_streamsql"))
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamsql-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

fn run(args: &[&str]) -> Output {
    streamsql().args(args).output().expect("run streamsql")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const INPUT: &str = r#"{"ts": "2024-01-01 00:00:00.500", "k": "a", "v": 1}
{"ts": "2024-01-01 00:00:01.000", "k": "b", "v": 2}
{"ts": "2024-01-01T00:00:04.999Z", "k": "a", "v": 3}
{"ts": 1704067207000, "k": "a", "v": 4}
{"ts": "2024-01-01 00:00:04.000", "k": "b", "v": 5}
{"ts": "2024-01-01 00:00:02.000", "k": "a", "v": 6}
{"ts": "2024-01-01 00:00:12.000", "k": "b", "v": 7}
"#;

fn pipeline(dir: &Path, window: &str, format: &str) -> String {
    format!(
        "CREATE TABLE events (ts TIMESTAMP(3), k STRING, v BIGINT,
           WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
         WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');
         CREATE TABLE totals (window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING, n BIGINT, total BIGINT)
         WITH ('connector' = 'file', 'path' = '{output}', 'format' = '{format}');
         INSERT INTO totals
         SELECT window_start, window_end, k, COUNT(*), SUM(v)
         FROM TABLE({window})
         GROUP BY window_start, window_end, k;",
        input = dir.join("in.jsonl").display(),
        output = dir.join(format!("out.{format}")).display(),
    )
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> =
        std::fs::read_to_string(path).expect("read output").lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn tumble_over_a_file_follows_the_event_time_contract() {
    let dir = scratch("tumble");
    write(&dir.join("in.jsonl"), INPUT);
    let sql = pipeline(&dir, "TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND)", "json");
    write(&dir.join("job.sql"), &sql);
    let output = run(&["-f", dir.join("job.sql").to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "streamsql failed: {}", stderr(&output));
    // Row 5 (04.000) arrives after 07.000: wm = 5.000 ≥ end of [0, 5) → late.
    // Row 6 (02.000) likewise. Row 4 (07.000) opens [5, 10); row 7 (12.000) opens [10, 15).
    assert_eq!(
        sorted_lines(&dir.join("out.json")),
        vec![
            r#"{"window_start":"2024-01-01 00:00:00.000","window_end":"2024-01-01 00:00:05.000","k":"a","n":2,"total":4}"#,
            r#"{"window_start":"2024-01-01 00:00:00.000","window_end":"2024-01-01 00:00:05.000","k":"b","n":1,"total":2}"#,
            r#"{"window_start":"2024-01-01 00:00:05.000","window_end":"2024-01-01 00:00:10.000","k":"a","n":1,"total":4}"#,
            r#"{"window_start":"2024-01-01 00:00:10.000","window_end":"2024-01-01 00:00:15.000","k":"b","n":1,"total":7}"#,
        ]
    );
    assert!(stderr(&output).contains("2 late rows dropped"), "{}", stderr(&output));
}

#[test]
fn hop_rows_can_be_late_for_some_windows_only() {
    let dir = scratch("hop");
    write(&dir.join("in.jsonl"), INPUT);
    let sql = pipeline(&dir, "HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND)", "csv");
    write(&dir.join("job.sql"), &sql);
    let output = run(&["-f", dir.join("job.sql").to_str().expect("utf-8 path"), "-p", "3"]);
    assert!(output.status.success(), "streamsql failed: {}", stderr(&output));
    // Windows [-5,5), [0,10), [5,15), [10,20). Row 5 (04.000, wm 5.000) misses [-5,5) but joins
    // [0,10); row 6 (02.000) likewise: neither is late.
    assert_eq!(
        sorted_lines(&dir.join("out.csv")),
        vec![
            "2023-12-31 23:59:55.000,2024-01-01 00:00:05.000,a,2,4",
            "2023-12-31 23:59:55.000,2024-01-01 00:00:05.000,b,1,2",
            "2024-01-01 00:00:00.000,2024-01-01 00:00:10.000,a,4,14",
            "2024-01-01 00:00:00.000,2024-01-01 00:00:10.000,b,2,7",
            "2024-01-01 00:00:05.000,2024-01-01 00:00:15.000,a,1,4",
            "2024-01-01 00:00:05.000,2024-01-01 00:00:15.000,b,1,7",
            "2024-01-01 00:00:10.000,2024-01-01 00:00:20.000,b,1,7",
            "window_start,window_end,k,n,total",
        ]
    );
    assert!(stderr(&output).contains("0 late rows dropped"), "{}", stderr(&output));
}

#[test]
fn sql_errors_point_at_the_text() {
    let dir = scratch("sql-error");
    write(&dir.join("job.sql"), "CREATE TABLE t (a INT)\n  WITH ('connector' = 'nope');\n");
    let output = run(&["-f", dir.join("job.sql").to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("job.sql:2:9"), "{message}");
    assert!(message.contains("unknown connector 'nope'"), "{message}");
    assert!(message.contains("'file'"), "lists the known connectors: {message}");
    assert!(message.contains("^"), "shows a caret: {message}");
}

#[test]
fn a_malformed_record_stops_the_run_with_its_position() {
    let dir = scratch("bad-record");
    write(
        &dir.join("in.jsonl"),
        "{\"ts\": \"2024-01-01 00:00:00\", \"k\": \"a\", \"v\": 1}\n{\"ts\": \"soon\", \"k\": \"a\", \"v\": 2}\n",
    );
    let sql = pipeline(&dir, "TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '5' SECOND)", "json");
    write(&dir.join("job.sql"), &sql);
    let output = run(&["-f", dir.join("job.sql").to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("in.jsonl:2: column 'ts'"), "{message}");
    assert!(message.contains("'format.on-error' = 'skip'"), "says how to skip: {message}");
}

#[test]
fn help_version_and_statements_from_stdin() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--file"));
    let version = run(&["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    // Without -f or -e and with standard input not a terminal, statements are read from it.
    let mut bare = streamsql().stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("run streamsql");
    let sql = "CREATE TABLE piped (a INT) WITH ('connector' = 'blackhole');\nSHOW TABLES;\n";
    bare.stdin.take().expect("stdin").write_all(sql.as_bytes()).expect("write stdin");
    let bare = bare.wait_with_output().expect("wait for streamsql");
    assert!(bare.status.success(), "{}", stderr(&bare));
    assert!(String::from_utf8_lossy(&bare.stdout).contains("piped"), "{}", String::from_utf8_lossy(&bare.stdout));
    let empty = streamsql().stdin(Stdio::null()).output().expect("run streamsql");
    assert!(empty.status.success());
    assert!(stderr(&empty).contains("nothing to run"), "{}", stderr(&empty));
}

#[test]
fn ctrl_c_stops_an_unbounded_pipeline_cleanly() {
    let dir = scratch("ctrl-c");
    write(
        &dir.join("job.sql"),
        "CREATE TABLE flows WITH ('connector' = 'netflow', 'rows-per-second' = '2000');
         CREATE TABLE sink (n BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO sink SELECT bytes_in FROM flows;",
    );
    let child = streamsql()
        .args(["-f", dir.join("job.sql").to_str().expect("utf-8 path")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn streamsql");
    std::thread::sleep(Duration::from_millis(800));
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("send SIGINT");
    assert!(killed.success());
    let started = Instant::now();
    let output = child.wait_with_output().expect("wait for streamsql");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?} to stop", started.elapsed());
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(stderr(&output).contains("(stopped)"), "{}", stderr(&output));
}

#[test]
fn sigterm_stops_an_unbounded_pipeline_with_143() {
    let dir = scratch("sigterm");
    write(
        &dir.join("job.sql"),
        "CREATE TABLE flows WITH ('connector' = 'netflow', 'rows-per-second' = '2000');
         CREATE TABLE sink (n BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO sink SELECT bytes_in FROM flows;",
    );
    let child = streamsql()
        .args(["-f", dir.join("job.sql").to_str().expect("utf-8 path")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn streamsql");
    std::thread::sleep(Duration::from_millis(800));
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("send SIGTERM");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait for streamsql");
    // 128 + 15, as shells report a process ended by SIGTERM; Ctrl-C gives 130.
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert!(stderr(&output).contains("stopping (SIGTERM)"), "{}", stderr(&output));
    assert!(stderr(&output).contains("(stopped)"), "{}", stderr(&output));
}

/// `streamsql -f job.sql 2>&1 | head`: stdout and stderr close early; no panic (exit 101).
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let dir = scratch("closed-pipe");
    write(
        &dir.join("job.sql"),
        "CREATE TABLE flows WITH ('connector' = 'netflow', 'number-of-rows' = '20000');
         SELECT flow_id, flow_type FROM flows;",
    );
    let job = dir.join("job.sql");
    for log in ["warn", "debug"] {
        let output = Command::new("bash")
            .arg("-c")
            .arg(r#""$0" -f "$1" 2>&1 | head -n 2; exit "${PIPESTATUS[0]}""#)
            .arg(env!("CARGO_BIN_EXE_streamsql"))
            .arg(&job)
            .env("RUST_LOG", log)
            .output()
            .expect("run bash");
        assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
        assert_eq!(output.status.code(), Some(0), "RUST_LOG={log}: {}", stderr(&output));
    }
}

#[test]
fn json_keys_are_matched_as_declared_and_missing_ones_are_counted() {
    let dir = scratch("json-keys");
    write(
        &dir.join("in.jsonl"),
        "{\"userId\": 1, \"emailAddress\": \"a@example.com\"}\n\
         {\"userId\": 2, \"EmailAddress\": \"b@example.com\"}\n\
         {\"userId\": 3, \"emailaddress\": \"c@example.com\"}\n\
         {\"userId\": 4, \"emailAddress\": null}\n",
    );
    write(
        &dir.join("job.sql"),
        &format!(
            "CREATE TABLE users (userId BIGINT, emailAddress STRING)
               WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');
             CREATE TABLE out (userId BIGINT, emailAddress STRING)
               WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');
             INSERT INTO out SELECT userid, emailaddress FROM users;",
            input = dir.join("in.jsonl").display(),
            output = dir.join("out.jsonl").display(),
        ),
    );
    let output = run(&["-f", dir.join("job.sql").to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Written back with the declared names, so the same DDL reads the output.
    assert_eq!(
        sorted_lines(&dir.join("out.jsonl")),
        vec![
            r#"{"userId":1,"emailAddress":"a@example.com"}"#,
            r#"{"userId":2,"emailAddress":null}"#,
            r#"{"userId":3,"emailAddress":null}"#,
            r#"{"userId":4,"emailAddress":null}"#,
        ]
    );
    let message = stderr(&output);
    assert!(message.contains("2 rows missing field(s)"), "{message}");
    assert!(message.contains("\"emailAddress\" (2)"), "{message}");
    // One warning about keys in other case, not one per row.
    assert_eq!(message.matches("differs only in case").count(), 1, "{message}");
    assert!(message.contains("0 bad records skipped"), "{message}");
}

#[test]
fn two_pipelines_writing_one_file_fail_before_either_runs() {
    let dir = scratch("one-writer");
    write(&dir.join("in.jsonl"), INPUT);
    std::fs::write(dir.join("out.jsonl"), "previous output\n").expect("write out.jsonl");
    write(
        &dir.join("job.sql"),
        &format!(
            "CREATE TABLE events (ts TIMESTAMP(3), k STRING, v BIGINT)
               WITH ('connector' = 'file', 'path' = '{input}', 'format' = 'json');
             CREATE TABLE a (k STRING) WITH ('connector' = 'file', 'path' = '{output}', 'format' = 'json');
             CREATE TABLE b (v BIGINT) WITH ('connector' = 'file', 'path' = '{dir}/./out.jsonl', 'format' = 'json');
             INSERT INTO a SELECT k FROM events;
             INSERT INTO b SELECT v FROM events;",
            input = dir.join("in.jsonl").display(),
            output = dir.join("out.jsonl").display(),
            dir = dir.display(),
        ),
    );
    let output = run(&["-f", dir.join("job.sql").to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("job.sql:6:"), "points at the second INSERT: {message}");
    assert!(message.contains("INSERT INTO a writes too"), "{message}");
    assert_eq!(std::fs::read_to_string(dir.join("out.jsonl")).expect("read"), "previous output\n");
}

/// The driver's warnings (coloured, one per host) are not shown; our error says what happened.
#[test]
fn an_unreachable_cassandra_is_reported_once_and_plainly() {
    let dir = scratch("cassandra-closed");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    write(
        &dir.join("job.sql"),
        &format!(
            "CREATE TABLE flows WITH ('connector' = 'netflow', 'number-of-rows' = '10');
             CREATE TABLE dst (flow_type STRING, PRIMARY KEY (flow_type) NOT ENFORCED)
               WITH ('connector' = 'cassandra', 'hosts' = '127.0.0.1:{port}', 'keyspace' = 'ks', 'table' = 't');
             INSERT INTO dst SELECT flow_type FROM flows;"
        ),
    );
    let started = Instant::now();
    let output = run(&["-f", dir.join("job.sql").to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(!message.contains('\u{1b}'), "colour codes in a pipe: {message:?}");
    assert!(!message.contains("WARN"), "the driver's warnings: {message}");
    assert!(
        message.contains(&format!("cannot connect to Cassandra at 127.0.0.1:{port}: the connection was refused")),
        "{message}"
    );
    assert!(!message.contains("tried each host"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5), "a refused connection took {:?}", started.elapsed());
}
