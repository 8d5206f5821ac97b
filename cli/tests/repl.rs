//! The interactive shell, driven through a pseudo-terminal as a person would use it, and
//! `streamsql -e`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use expectrl::process::unix::{PtyStream, UnixProcess, WaitStatus};
use expectrl::{ControlCode, Eof, Expect, Regex, Session};

/// Generous: a debug build on a busy 2-core machine can be slow to plan the first query.
const TIMEOUT: Duration = Duration::from_secs(20);
const PROMPT: &str = "streamsql> ";

type Shell = Session<UnixProcess, PtyStream>;

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamsql-repl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `streamsql` on a terminal, at its first prompt; history goes to the test's directory.
fn shell(name: &str) -> Shell {
    let dir = scratch(name);
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamsql"));
    command.env("HOME", &dir).env("STREAMSQL_HISTORY", dir.join("history")).env("TERM", "xterm");
    let mut shell = Session::spawn(command).expect("spawn streamsql on a pty");
    shell.get_process_mut().set_window_size(200, 50).expect("size the terminal");
    shell.set_expect_timeout(Some(TIMEOUT));
    shell.expect(PROMPT).expect("the first prompt");
    shell
}

/// `streamsql --http 127.0.0.1:0` on a terminal, at its first prompt, and the console's URL.
fn shell_with_console(name: &str) -> (Shell, String) {
    let dir = scratch(name);
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamsql"));
    command.args(["--http", "127.0.0.1:0"]);
    command.env("HOME", &dir).env("STREAMSQL_HISTORY", dir.join("history")).env("TERM", "xterm");
    let mut shell = Session::spawn(command).expect("spawn streamsql on a pty");
    shell.get_process_mut().set_window_size(200, 50).expect("size the terminal");
    shell.set_expect_timeout(Some(TIMEOUT));
    let found = shell.expect(Regex("console on (http://[0-9.:]+)/")).expect("the console's address");
    let url = String::from_utf8_lossy(found.matches().nth(1).expect("url")).into_owned();
    shell.expect(PROMPT).expect("the first prompt");
    (shell, url)
}

/// `GET url` as JSON.
fn get_json(url: &str) -> serde_json::Value {
    let output = Command::new("curl").args(["-s", url]).output().expect("curl");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// What rustyline writes when it hands over an entered line (bracketed paste off). The prompt
/// also appears in redraws while a line is typed, so answers are read from this mark on.
const ENTERED: &str = "\x1b[?2004l";

/// Types `input` and Enter, and waits until the shell has taken the line.
fn submit(shell: &mut Shell, input: &str) {
    shell.send_line(input).expect("type a line");
    shell.expect(ENTERED).unwrap_or_else(|e| panic!("the shell did not take {input:?}: {e}"));
}

/// Sends one input and returns what the shell printed until its next prompt.
fn run(shell: &mut Shell, input: &str) -> String {
    submit(shell, input);
    let found = shell.expect(PROMPT).unwrap_or_else(|e| panic!("no prompt after {input:?}: {e}"));
    String::from_utf8_lossy(found.before()).into_owned()
}

const FLOWS: &str = "CREATE TABLE flows (WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
                     WITH ('connector' = 'netflow', 'rows-per-second' = '2000');";

#[test]
fn ddl_show_describe_explain_and_errors() {
    let mut shell = shell("ddl");
    assert!(run(&mut shell, FLOWS).contains("table 'flows' created (13 columns)"));

    let tables = run(&mut shell, "SHOW TABLES;");
    assert!(tables.contains("flows") && tables.contains("netflow"), "{tables}");

    let described = run(&mut shell, "DESCRIBE flows;");
    assert!(described.contains("flow_type") && described.contains("TIMESTAMP(3)"), "{described}");
    assert!(described.contains("ts - INTERVAL '1' SECOND"), "{described}");
    assert!(described.contains("'rows-per-second' = '2000'"), "{described}");

    let explained = run(
        &mut shell,
        "EXPLAIN SELECT window_start, flow_type, COUNT(*) AS flows \
         FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND)) \
         GROUP BY window_start, window_end, flow_type;",
    );
    for part in [
        "source     flows",
        "exchange   none",
        "TUMBLE size 5 s",
        "count(*)",
        "group by window_start, window_end, flow_type",
    ] {
        assert!(explained.contains(part), "EXPLAIN lacks {part:?}: {explained}");
    }

    // An error shows the message and a caret, and the shell goes on.
    let error = run(&mut shell, "SELECT nope FROM flows;");
    assert!(error.contains("error:") && error.contains("nope") && error.contains('^'), "{error}");
    let error = run(&mut shell, "DESCRIBE nothing;");
    assert!(error.contains("'nothing' does not exist"), "{error}");

    // A statement over several lines, with the continuation prompt.
    submit(&mut shell, "SHOW");
    shell.expect("-> ").expect("the continuation prompt");
    assert!(run(&mut shell, "VIEWS;").contains("no views yet"));

    shell.send_line("\\q").expect("type \\q");
    shell.expect(Eof).expect("the shell exits");
    assert_exit_success(&shell);
}

#[test]
fn a_select_streams_rows_until_ctrl_c_and_the_shell_goes_on() {
    let mut shell = shell("select");
    run(&mut shell, FLOWS);
    submit(
        &mut shell,
        "SELECT window_start, flow_type, COUNT(*) AS n \
         FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND)) \
         GROUP BY window_start, window_end, flow_type;",
    );
    // Rows of closed windows appear while the query runs: a header, then a timestamp.
    shell.expect("window_start").expect("a table of rows");
    shell.expect(Regex(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}")).expect("a window row");
    shell.send(ControlCode::EndOfText).expect("press Ctrl-C");
    shell.expect("query cancelled (Ctrl-C)").expect("the query stops");
    shell.expect(PROMPT).expect("back at the prompt");

    // The shell is alive and answers.
    assert!(run(&mut shell, "SHOW TABLES;").contains("flows"));

    // Ctrl-C at the prompt clears what was typed, and Ctrl-D quits.
    shell.send("SELECT oops").expect("type without Enter");
    shell.send(ControlCode::EndOfText).expect("press Ctrl-C");
    shell.expect(ENTERED).expect("the line is dropped");
    shell.expect(PROMPT).expect("a fresh prompt");
    assert!(run(&mut shell, "SHOW VIEWS;").contains("no views yet"));
    shell.send(ControlCode::EndOfTransmission).expect("press Ctrl-D");
    shell.expect(Eof).expect("the shell exits");
    assert_exit_success(&shell);
}

#[test]
fn insert_starts_a_background_pipeline_shown_and_stopped_by_id() {
    let mut shell = shell("insert");
    run(&mut shell, FLOWS);
    run(&mut shell, "CREATE TABLE sink (k STRING, n BIGINT) WITH ('connector' = 'blackhole');");
    let started = run(&mut shell, "INSERT INTO sink SELECT flow_type, bytes_in FROM flows;");
    assert!(started.contains("pipeline 1 started"), "{started}");

    let listed = run(&mut shell, "SHOW PIPELINES;");
    assert!(listed.contains("INSERT INTO sink SELECT flow_type") && listed.contains("running"), "{listed}");

    assert!(run(&mut shell, "STOP PIPELINE 1;").contains("stopping pipeline 1"));
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let listed = run(&mut shell, "SHOW PIPELINES;");
        if listed.contains("stopped") {
            break;
        }
        assert!(Instant::now() < deadline, "pipeline 1 did not stop: {listed}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let error = run(&mut shell, "STOP PIPELINE 7;");
    assert!(error.contains("there is no pipeline 7"), "{error}");

    // A bounded pipeline finishes by itself and says so.
    run(&mut shell, "CREATE TABLE few WITH ('connector' = 'netflow', 'number-of-rows' = '100');");
    submit(&mut shell, "INSERT INTO sink SELECT flow_type, bytes_in FROM few;");
    shell.expect("pipeline 2 finished: 100 rows in, 100 rows out").expect("a notice when it finishes");

    // Quitting stops what still runs.
    assert!(run(&mut shell, "INSERT INTO sink SELECT app, packets FROM flows;").contains("pipeline 3 started"));
    submit(&mut shell, "quit");
    shell.expect("stopping 1 running pipeline(s)").expect("running pipelines are stopped");
    shell.expect(Eof).expect("the shell exits");
    assert_exit_success(&shell);
}

#[test]
fn materialized_views_are_queried_in_the_shell_as_they_fill() {
    let mut shell = shell("live");
    run(&mut shell, "CREATE TABLE few WITH ('connector' = 'netflow', 'number-of-rows' = '5000');");
    let started = run(
        &mut shell,
        "CREATE MATERIALIZED VIEW per_type AS SELECT flow_type, COUNT(*) AS n FROM few GROUP BY flow_type;",
    );
    assert!(started.contains("pipeline 1 started"), "{started}");
    shell.expect("pipeline 1 finished").expect("the bounded pipeline finishes");
    shell.expect(PROMPT).expect("a prompt");
    // A query over live tables runs at once as a batch query, with ORDER BY and LIMIT.
    let total = run(&mut shell, "SELECT SUM(n) AS total FROM per_type;");
    assert!(total.contains("total") && total.contains("5000"), "{total}");
    let top = run(&mut shell, "SELECT flow_type FROM per_type ORDER BY n DESC LIMIT 1;");
    assert!(top.contains("flow_type"), "{top}");
    // Flink's DATE_FORMAT here too, not DataFusion's strftime namesake (which prints the pattern).
    let day = run(
        &mut shell,
        "SELECT DATE_FORMAT(TIMESTAMP '2024-05-06 07:08:09', 'yyyy/MM/dd') AS d FROM per_type LIMIT 1;",
    );
    assert!(day.contains("2024/05/06"), "{day}");
    let mixed = run(&mut shell, "SELECT * FROM per_type JOIN few ON per_type.flow_type = few.flow_type;");
    assert!(mixed.contains("cannot read live tables") && mixed.contains("together with streams"), "{mixed}");
    shell.send_line("exit").expect("type exit");
    shell.expect(Eof).expect("the shell exits");
}

#[test]
fn the_web_console_shows_the_shells_pipelines_and_live_tables() {
    let (mut shell, url) = shell_with_console("console");
    run(&mut shell, FLOWS);
    let started = run(
        &mut shell,
        "CREATE MATERIALIZED VIEW per_type AS SELECT flow_type, COUNT(*) AS n FROM flows GROUP BY flow_type;",
    );
    assert!(started.contains("pipeline 1 started"), "{started}");
    let pipelines = get_json(&format!("{url}/api/pipelines"));
    assert_eq!(pipelines["pipelines"][0]["state"], "running", "{pipelines}");
    assert!(pipelines["pipelines"][0]["sql"].as_str().expect("sql").starts_with("CREATE MATERIALIZED VIEW per_type"));
    let tables = get_json(&format!("{url}/api/tables"));
    assert_eq!(tables["tables"][0]["name"], "per_type", "{tables}");
    assert_eq!(tables["tables"][0]["chart"]["kind"], "bar", "{tables}");

    // Stopped in the shell, the console says so.
    assert!(run(&mut shell, "STOP PIPELINE 1;").contains("stopping pipeline 1"));
    let deadline = Instant::now() + TIMEOUT;
    while get_json(&format!("{url}/api/pipelines"))["pipelines"][0]["state"] != "stopped" {
        assert!(Instant::now() < deadline, "the console still shows pipeline 1 running");
        std::thread::sleep(Duration::from_millis(200));
    }
    submit(&mut shell, "quit");
    shell.expect(Eof).expect("the shell exits");
    assert_exit_success(&shell);
}

#[test]
fn tab_completes_table_names_and_keywords() {
    let mut shell = shell("complete");
    run(&mut shell, FLOWS);
    shell.send("DESCRIBE flo\t").expect("type and press Tab");
    let described = run(&mut shell, ";");
    assert!(described.contains("flow_type"), "completed to DESCRIBE flows: {described}");
    shell.send("show tab\t").expect("type and press Tab");
    let tables = run(&mut shell, ";");
    assert!(tables.contains("netflow"), "completed to show tables: {tables}");
    shell.send_line("exit").expect("type exit");
    shell.expect(Eof).expect("the shell exits");
}

/// What Flink SQL client and psql users type first.
#[test]
fn first_things_users_type_work() {
    let mut shell = shell("first");
    let two = run(&mut shell, "SELECT 1 + 1 AS two;");
    assert!(two.contains("two") && two.contains("│ 2 "), "{two}");
    let now = run(&mut shell, "SELECT now() IS NOT NULL AS ticking;");
    assert!(now.contains("true"), "{now}");
    // Flink's DATE_FORMAT, not DataFusion's strftime namesake.
    let day = run(&mut shell, "SELECT DATE_FORMAT(TIMESTAMP '2024-05-06 07:08:09', 'yyyy/MM/dd') AS d;");
    assert!(day.contains("2024/05/06"), "{day}");

    run(&mut shell, FLOWS);
    // LIMIT ends a query over an unbounded stream after its rows.
    let limited = run(&mut shell, "SELECT flow_id FROM flows LIMIT 5;");
    assert!(limited.contains("query finished: 5 rows shown"), "{limited}");

    let listed = run(&mut shell, "\\d");
    assert!(listed.contains("flows") && listed.contains("no views yet"), "{listed}");
    assert!(run(&mut shell, "\\dt").contains("netflow"));
    assert!(run(&mut shell, "\\d flows").contains("flow_type"));

    run(&mut shell, "CREATE TEMPORARY VIEW tcp AS SELECT * FROM flows WHERE protocol = 'TCP';");
    let shown = run(&mut shell, "SHOW CREATE VIEW tcp;");
    assert!(shown.contains("CREATE TEMPORARY VIEW tcp AS SELECT * FROM flows WHERE protocol = 'TCP';"), "{shown}");
    assert!(run(&mut shell, "SHOW CREATE TABLE flows;").contains("'rows-per-second' = '2000'"));
    let refused = run(&mut shell, "DROP TABLE flows;");
    assert!(refused.contains("view 'tcp' reads 'flows'; drop that view first"), "{refused}");
    assert!(run(&mut shell, "DROP VIEW tcp;").contains("view 'tcp' dropped"));
    assert!(run(&mut shell, "DROP TABLE flows;").contains("table 'flows' dropped"));
    assert!(run(&mut shell, "DROP TABLE IF EXISTS flows;").contains("nothing changed"));
    assert!(run(&mut shell, "SHOW TABLES;").contains("no tables yet"));

    shell.send_line("\\q").expect("type \\q");
    shell.expect(Eof).expect("the shell exits");
    assert_exit_success(&shell);
}

fn assert_exit_success(shell: &Shell) {
    let status = shell.get_process().wait().expect("wait for the shell");
    assert_eq!(status, WaitStatus::Exited(shell.get_process().pid(), 0));
}

fn execute(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamsql")).args(args).output().expect("run streamsql")
}

const BOUNDED: &str = "CREATE TABLE flows (flow_id BIGINT, flow_type STRING) \
                       WITH ('connector' = 'netflow', 'number-of-rows' = '3', 'seed' = '7');";

#[test]
fn dash_e_runs_statements_and_exits() {
    let csv = execute(&["-e", &format!("{BOUNDED} SELECT flow_id, flow_type FROM flows;"), "--format", "csv"]);
    assert!(csv.status.success(), "{}", String::from_utf8_lossy(&csv.stderr));
    let stdout = String::from_utf8_lossy(&csv.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(lines[0], "flow_id,flow_type");
    assert!(lines[1].starts_with("0,"), "{stdout}");

    let json = execute(&["-e", &format!("{BOUNDED} SELECT flow_id FROM flows;"), "--format", "json"]);
    assert_eq!(String::from_utf8_lossy(&json.stdout), "{\"flow_id\":0}\n{\"flow_id\":1}\n{\"flow_id\":2}\n");

    let table = execute(&["-e", &format!("{BOUNDED} DESCRIBE flows; SELECT flow_id FROM flows;")]);
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert!(stdout.contains("│ flow_type ┆ STRING"), "{stdout}");
    assert!(stdout.contains("│ 2       │"), "{stdout}");

    let error = execute(&["-e", "SELECT 1 FROM nowhere;"]);
    assert_eq!(error.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&error.stderr);
    assert!(stderr.contains("error: -e:1:15") && stderr.contains("'nowhere' does not exist"), "{stderr}");

    let constant = execute(&["-e", "SELECT 6 * 7 AS answer, UPPER('a') AS up;", "--format", "csv"]);
    assert!(constant.status.success(), "{}", String::from_utf8_lossy(&constant.stderr));
    assert_eq!(String::from_utf8_lossy(&constant.stdout), "answer,up\n42,A\n");

    // LIMIT stops an endless stream: this generator would run for ever.
    let endless = "CREATE TABLE flows (flow_id BIGINT) WITH ('connector' = 'netflow', 'rows-per-second' = '100');";
    let limited = execute(&["-e", &format!("{endless} SELECT flow_id FROM flows LIMIT 3;"), "--format", "csv"]);
    assert!(limited.status.success(), "{}", String::from_utf8_lossy(&limited.stderr));
    assert_eq!(String::from_utf8_lossy(&limited.stdout), "flow_id\n0\n1\n2\n");

    let control = execute(&["-e", "SHOW PIPELINES;"]);
    assert_eq!(control.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&control.stderr).contains("interactive"));
}
