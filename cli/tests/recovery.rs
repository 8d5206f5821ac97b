//! Checkpoints proven by `kill -9`: a job killed at random points and started again with the
//! same state directory ends with exactly the output of a run that was never killed — no row
//! lost, none written twice.
//!
//! The inputs are the netflow generator (deterministic by seed, disordered, with late rows),
//! paced so that a run takes a few seconds; kill points come from a fixed seed.
//! `STREAMSQL_RECOVERY_KILLS` sets the number of kills per job (default 10; the README's long
//! run uses 20).

mod common;
use common::committed_values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn streamsql() -> Command {
    Command::new(env!("CARGO_BIN_EXE_streamsql"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamsql-recovery-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn kills() -> usize {
    std::env::var("STREAMSQL_RECOVERY_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(10)
}

/// A small deterministic generator of kill points (no clock, no OS randomness).
struct Lcg(u64);

impl Lcg {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        low + (self.0 >> 33) % (high - low)
    }
}

/// Rows for a job killed `kills` times: each killed run reads at most 0.6 s × 100 000 rows/s,
/// so the job is never done before its last kill.
fn rows_for_kills(kills: usize) -> u64 {
    70_000 * kills as u64 + 100_000
}

/// The netflow source: `rows` rows at 100 000 rows/s, 1 000 rows per event-time second, up to
/// 1.5 s out of order behind a 1 s watermark delay, so some rows are late.
fn source(rows: u64) -> String {
    format!(
        "CREATE TABLE flows (ts TIMESTAMP(3), src_ip STRING, flow_type STRING, bytes_in BIGINT,
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'netflow', 'number-of-rows' = '{rows}', 'rows-per-second' = '100000',
           'event-time.rows-per-second' = '1000', 'max-out-of-orderness' = '1500', 'seed' = '11');"
    )
}

/// A second generated stream over the same source IPs, sparser than [`source`] (20 rows per
/// second of event time).
fn probes(rows: u64) -> String {
    format!(
        "CREATE TABLE probes (ts TIMESTAMP(3), src_ip STRING, bytes_in BIGINT,
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'netflow', 'number-of-rows' = '{rows}', 'rows-per-second' = '2000',
           'event-time.rows-per-second' = '20', 'seed' = '12');"
    )
}

fn job(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(format!("{name}.sql"));
    std::fs::write(&path, sql).expect("write job");
    path
}

fn start(job: &Path, state: &Path) -> Child {
    streamsql()
        .args(["-f", job.to_str().expect("utf-8"), "--state-dir", state.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn streamsql")
}

/// The newest complete checkpoint under `state` (a `chk-N` folder with its manifest), if any.
fn latest_checkpoint(state: &Path) -> Option<u64> {
    let pipelines = std::fs::read_dir(state).ok()?;
    pipelines
        .filter_map(|p| std::fs::read_dir(p.ok()?.path()).ok())
        .flatten()
        .filter_map(|c| {
            let c = c.ok()?;
            let epoch = c.file_name().to_str()?.strip_prefix("chk-")?.parse::<u64>().ok()?;
            c.path().join("_manifest.json").exists().then_some(epoch)
        })
        .max()
}

/// Runs `job` once, to its end.
fn run_once(job: &Path, state: &Path) -> Output {
    streamsql()
        .args(["-f", job.to_str().expect("utf-8"), "--state-dir", state.to_str().expect("utf-8")])
        .output()
        .expect("run streamsql")
}

/// Runs `job` to its end, killing it with SIGKILL at `kills` random points first (each run
/// is killed after 0.2–0.6 s, enough for it to take checkpoints and make progress). Returns the
/// number of runs killed and the final run's stderr.
fn run_with_kills(job: &Path, state: &Path, kills: usize, seed: u64) -> (usize, String) {
    run_with_kills_then(job, job, state, kills, seed)
}

/// [`run_with_kills`], the last run (to the end) with `finish` instead of `job`.
fn run_with_kills_then(job: &Path, finish: &Path, state: &Path, kills: usize, seed: u64) -> (usize, String) {
    run_with_kills_after(job, finish, state, kills, seed, (200, 600))
}

/// [`run_with_kills_then`], each run killed after `ms.0..ms.1` milliseconds.
fn run_with_kills_after(
    job: &Path,
    finish: &Path,
    state: &Path,
    kills: usize,
    seed: u64,
    ms: (u64, u64),
) -> (usize, String) {
    let mut points = Lcg(seed);
    let mut killed = 0;
    for _ in 0..kills + 200 {
        let mut child = start(if killed < kills { job } else { finish }, state);
        if killed < kills {
            std::thread::sleep(Duration::from_millis(points.next_ms(ms.0, ms.1)));
            if child.try_wait().expect("poll").is_none() {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                killed += 1;
                continue;
            }
        }
        let output = child.wait_with_output().expect("wait");
        assert_eq!(output.status.code(), Some(0), "after {killed} kills: {}", stderr(&output));
        return (killed, stderr(&output));
    }
    panic!("the job never finished");
}

/// Runs `sql` once to its end, without kills (the reference), and returns the lines of the file
/// `out` it wrote in `dir`.
fn reference_run(dir: &Path, sql: &str, out: &str) -> Vec<String> {
    let reference = job(dir, "reference", sql);
    let output = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    lines(&dir.join(out))
}

/// Runs `sql(out, parallelism)` (a job writing the file `out` in `dir`) to its end at
/// parallelism 2, the reference; then killed at [`kills`] random points at parallelism 2 and
/// finished from its checkpoints at 3. Returns the reference's lines, the killed job's and the
/// last run's report.
fn killed_then_rescaled(
    dir: &Path,
    sql: impl Fn(&str, usize) -> String,
    seed: u64,
) -> (Vec<String>, Vec<String>, String) {
    let expected = reference_run(dir, &sql("reference.csv", 2), "reference.csv");
    let state = dir.join("state");
    let killed_job = job(dir, "killed", &sql("killed.csv", 2));
    let finish = job(dir, "finish", &sql("killed.csv", 3));
    let (killed, report) = run_with_kills_then(&killed_job, &finish, &state, kills(), seed);
    assert_eq!(killed, kills());
    assert!(report.contains("resumed from checkpoint"), "{report}");
    (expected, lines(&dir.join("killed.csv")), report)
}

/// [`killed_then_rescaled`], whose output must be the reference's lines (`what`), each once.
/// Returns the reference's lines and the last run's report.
fn killed_then_rescaled_writes_each_row_once(
    dir: &Path,
    sql: impl Fn(&str, usize) -> String,
    seed: u64,
    what: &str,
) -> (Vec<String>, String) {
    let (expected, actual, report) = killed_then_rescaled(dir, sql, seed);
    assert_eq!(actual.len(), expected.len(), "{what} written: {report}");
    assert_eq!(sorted(actual), sorted(expected.clone()));
    (expected, report)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(String::from)
        .collect()
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[test]
fn windows_killed_at_random_points_write_every_result_exactly_once() {
    let dir = scratch("tumble");
    let sql = |out: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '2';
             {}
             CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING,
               flows BIGINT, bytes BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO counts SELECT window_start, window_end, flow_type, COUNT(*), SUM(bytes_in)
             FROM TABLE(HOP(TABLE flows, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '6' SECOND))
             GROUP BY window_start, window_end, flow_type;",
            source(rows_for_kills(kills())),
            dir.join(out).display()
        )
    };
    let expected = reference_run(&dir, &sql("reference.csv"), "reference.csv");
    assert!(expected.len() > 100, "{} result rows", expected.len());

    let state = dir.join("state");
    let killed_job = job(&dir, "killed", &sql("killed.csv"));
    let (killed, report) = run_with_kills(&killed_job, &state, kills(), 42);
    assert_eq!(killed, kills());
    assert!(report.contains("resumed from checkpoint"), "{report}");
    let actual = lines(&dir.join("killed.csv"));
    // The CSV header once, then every window once: the same rows, and no row twice.
    assert_eq!(actual[0], expected[0], "header");
    assert_eq!(actual.len(), expected.len(), "rows written: {report}");
    assert_eq!(sorted(actual), sorted(expected));
    // A complete job leaves no checkpoints and no part files behind.
    assert!(std::fs::read_dir(&state).expect("state dir").next().is_none(), "checkpoints left after the end");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".part-"))
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "part files left: {leftovers:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// TUMBLE windows whose late rows go to a late-rows sink (a CSV file),
/// killed at random points and finished at another parallelism: the late-rows sink takes part
/// in checkpoints as the sink does, so both files hold what an uninterrupted run writes, each
/// row once.
#[test]
fn a_late_rows_sink_killed_at_random_points_writes_every_late_row_once() {
    let dir = scratch("late-rows");
    let rows = rows_for_kills(kills());
    let sql = |out: &str, late: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE counts (window_start TIMESTAMP(3), flow_type STRING, flows BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             CREATE TABLE late_rows (operator STRING, ts TIMESTAMP(3), src_ip STRING, bytes_in BIGINT,
               pipeline STRING)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             SET 'late-rows.sink' = 'late_rows';
             INSERT INTO counts SELECT window_start, flow_type, COUNT(*)
             FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND))
             GROUP BY window_start, window_end, flow_type;",
            source(rows),
            dir.join(out).display(),
            dir.join(late).display()
        )
    };
    let reference = job(&dir, "reference", &sql("reference.csv", "reference-late.csv", 2));
    let output = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let (expected, expected_late) = (lines(&dir.join("reference.csv")), lines(&dir.join("reference-late.csv")));
    assert!(expected_late.len() > 1000, "{} late rows", expected_late.len());

    let state = dir.join("state");
    let killed_job = job(&dir, "killed", &sql("killed.csv", "killed-late.csv", 2));
    let finish = job(&dir, "finish", &sql("killed.csv", "killed-late.csv", 3));
    let (killed, report) = run_with_kills_then(&killed_job, &finish, &state, kills(), 71);
    assert_eq!(killed, kills());
    assert!(report.contains("resumed from checkpoint"), "{report}");
    let (actual, actual_late) = (lines(&dir.join("killed.csv")), lines(&dir.join("killed-late.csv")));
    assert_eq!(actual_late.len(), expected_late.len(), "late rows written: {report}");
    assert_eq!(sorted(actual_late), sorted(expected_late));
    assert_eq!(actual.len(), expected.len(), "results written: {report}");
    assert_eq!(sorted(actual), sorted(expected));
    std::fs::remove_dir_all(&dir).ok();
}

/// Applies a changelog (`op,key,values...` lines after the header) to a table by key; fails on
/// a `+I` of a key already there or a `-U`/`-D` of a row that is not.
fn apply_changelog(lines: &[String]) -> BTreeMap<String, String> {
    let mut table = BTreeMap::new();
    for line in &lines[1..] {
        let (op, rest) = line.split_once(',').expect("op column");
        let (key, values) = rest.split_once(',').expect("key column");
        match op {
            "+I" | "+U" => {
                if op == "+I" {
                    assert!(!table.contains_key(key), "a second +I for '{key}': {line}");
                }
                table.insert(key.to_string(), values.to_string());
            }
            "-U" | "-D" => {
                let old = table.remove(key);
                assert_eq!(old.as_deref(), Some(values), "{op} of a row the table does not hold: {line}");
            }
            other => panic!("unknown op {other}"),
        }
    }
    table
}

#[test]
fn an_updating_aggregate_killed_at_random_points_ends_in_the_same_table() {
    let dir = scratch("updating");
    let sql = |out: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '150 ms';
             SET 'update-interval' = '50 ms';
             SET 'parallelism.default' = 'PARALLELISM';
             {}
             CREATE TABLE per_type (flow_type STRING, flows BIGINT, bytes BIGINT, biggest BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO per_type SELECT flow_type, COUNT(*), SUM(bytes_in), MAX(bytes_in)
             FROM flows GROUP BY flow_type;",
            source(rows_for_kills(kills())),
            dir.join(out).display()
        )
    };
    let reference = job(&dir, "reference", &sql("reference.csv").replace("PARALLELISM", "2"));
    let output = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected = apply_changelog(&lines(&dir.join("reference.csv")));
    assert!(expected.len() >= 5, "{expected:?}");

    let state = dir.join("state");
    // Killed at parallelism 2, finished at 3: each instance takes the keys it owns now.
    let killed_job = job(&dir, "killed", &sql("killed.csv").replace("PARALLELISM", "2"));
    let finish = job(&dir, "finish", &sql("killed.csv").replace("PARALLELISM", "3"));
    let (killed, report) = run_with_kills_then(&killed_job, &finish, &state, kills(), 7);
    assert_eq!(killed, kills());
    assert!(report.contains("resumed from checkpoint"), "{report}");
    // What was emitted per key is part of the state: the changelog applies cleanly (no second
    // +I, every -U retracts the row shown), and ends in the same table.
    assert_eq!(apply_changelog(&lines(&dir.join("killed.csv"))), expected);
    std::fs::remove_dir_all(&dir).ok();
}

/// An aggregate over an updating aggregate (flows per source IP, then the IPs per hundred
/// flows), killed at random points and finished at another parallelism: each group's
/// accumulators (MIN/MAX and COUNT(DISTINCT) as the multiset of their values), row count and
/// last emitted row come back, so the changelog applies cleanly and ends in the same table.
#[test]
fn an_aggregate_over_an_updating_input_killed_at_random_points_ends_in_the_same_table() {
    let dir = scratch("updating-twice");
    let sql = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '150 ms';
             SET 'update-interval' = '50 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE by_size (hundreds BIGINT, ips BIGINT, flows BIGINT, fewest BIGINT, most BIGINT, biggest BIGINT,
               sizes BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO by_size SELECT flows / 100, COUNT(*), SUM(flows), MIN(flows), MAX(flows), MAX(biggest),
               COUNT(DISTINCT flows)
             FROM (SELECT src_ip, COUNT(*) AS flows, MAX(bytes_in) AS biggest FROM flows GROUP BY src_ip)
             GROUP BY flows / 100;",
            source(rows_for_kills(kills())),
            dir.join(out).display()
        )
    };
    let reference = job(&dir, "reference", &sql("reference.csv", 2));
    let output = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected = apply_changelog(&lines(&dir.join("reference.csv")));
    assert!(!expected.is_empty(), "{expected:?}");

    let state = dir.join("state");
    let killed_job = job(&dir, "killed", &sql("killed.csv", 2));
    let finish = job(&dir, "finish", &sql("killed.csv", 3));
    let (killed, report) = run_with_kills_then(&killed_job, &finish, &state, kills(), 19);
    assert_eq!(killed, kills());
    assert!(report.contains("resumed from checkpoint"), "{report}");
    assert_eq!(apply_changelog(&lines(&dir.join("killed.csv"))), expected);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigterm_takes_a_final_checkpoint_and_the_restart_replays_nothing() {
    let dir = scratch("savepoint");
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '10 s';
         {}
         CREATE TABLE counts (window_start TIMESTAMP(3), flow_type STRING, flows BIGINT)
         WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
         INSERT INTO counts SELECT window_start, flow_type, COUNT(*)
         FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND))
         GROUP BY window_start, window_end, flow_type;",
        source(400_000),
        dir.join("out.csv").display()
    );
    let path = job(&dir, "job", &sql);
    let state = dir.join("state");
    let child = start(&path, &state);
    std::thread::sleep(Duration::from_millis(1200));
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("SIGTERM");
    assert!(term.success());
    let stopped = child.wait_with_output().expect("wait");
    assert_eq!(stopped.status.code(), Some(143), "{}", stderr(&stopped));
    assert!(stderr(&stopped).contains("after a final checkpoint"), "{}", stderr(&stopped));
    // No checkpoint came on the 10 s interval: the one taken at the stop is checkpoint 1.
    assert!(stderr(&stopped).contains("last checkpoint 1 "), "{}", stderr(&stopped));
    let partial = lines(&dir.join("out.csv"));
    assert!(partial.len() > 1, "the stopped run's results are in place");

    let resumed = streamsql()
        .args(["-f", path.to_str().expect("utf-8"), "--state-dir", state.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("resumed from checkpoint 1"), "{}", stderr(&resumed));
    let reference = job(&dir, "reference", &sql.replace("out.csv", "reference.csv"));
    let once = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(once.status.code(), Some(0), "{}", stderr(&once));
    assert_eq!(sorted(lines(&dir.join("out.csv"))), sorted(lines(&dir.join("reference.csv"))));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_changed_job_is_refused_naming_the_operator_and_another_parallelism_resumes() {
    let dir = scratch("refused");
    let sql = |parallelism: usize, aggregate: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE out (flow_type STRING, n BIGINT) WITH ('connector' = 'blackhole');
             INSERT INTO out SELECT flow_type, COUNT(*) FROM {aggregate} GROUP BY flow_type;",
            source(1_000_000)
        )
    };
    let state = dir.join("state");
    let first = job(&dir, "first", &sql(1, "flows"));
    let mut child = start(&first, &state);
    std::thread::sleep(Duration::from_millis(1000));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    // Another parallelism is not another job: the aggregation's groups are spread by key.
    let wider = job(&dir, "wider", &sql(2, "flows"));
    let mut child = start(&wider, &state);
    std::thread::sleep(Duration::from_millis(700));
    assert!(child.try_wait().expect("poll").is_none(), "the job resumed at parallelism 2 runs");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let windowed = job(
        &dir,
        "windowed",
        &sql(1, "TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND))")
            .replace("GROUP BY flow_type", "GROUP BY window_start, window_end, flow_type"),
    );
    let output = streamsql()
        .args(["-f", windowed.to_str().expect("utf-8"), "--state-dir", state.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("operator 2 was 'updating aggregate' and is now 'window aggregate'"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("--from-scratch"), "{}", stderr(&output));

    let output = streamsql()
        .args(["-f", windowed.to_str().expect("utf-8"), "--state-dir", state.to_str().expect("utf-8")])
        .args(["--from-scratch"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut output = output;
    std::thread::sleep(Duration::from_millis(500));
    assert!(output.try_wait().expect("poll").is_none(), "--from-scratch starts the new job");
    output.kill().ok();
    output.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_query_that_cannot_be_checkpointed_is_refused_at_plan_time() {
    let dir = scratch("unsupported");
    // A named pipe cannot be read again after a restart.
    let fifo = dir.join("flows.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo");
    let path = job(
        &dir,
        "job",
        &format!(
            "SET 'execution.checkpointing.interval' = '1 s';
             CREATE TABLE piped (src_ip STRING, bytes_in BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             CREATE TABLE out (src_ip STRING, bytes_in BIGINT) WITH ('connector' = 'blackhole');
             INSERT INTO out SELECT src_ip, bytes_in FROM piped;",
            fifo.display()
        ),
    );
    let output = streamsql()
        .args(["-f", path.to_str().expect("utf-8"), "--state-dir", dir.join("state").to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("source table 'piped' (connector 'file') cannot be checkpointed yet"),
        "{}",
        stderr(&output)
    );

    let no_dir = job(
        &dir,
        "no_dir",
        &format!(
            "SET 'execution.checkpointing.interval' = '1 s';
             {}
             CREATE TABLE out (flow_type STRING) WITH ('connector' = 'blackhole');
             INSERT INTO out SELECT flow_type FROM flows;",
            source(1000)
        ),
    );
    let output = streamsql().args(["-f", no_dir.to_str().expect("utf-8")]).output().expect("run");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("--state-dir"), "{}", stderr(&output));
    std::fs::remove_dir_all(&dir).ok();
}

/// Starts the project's Kafka node (`scripts/kafka.sh start`; already running: nothing to do).
fn ensure_kafka() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
    let status = Command::new(&script).arg("start").status().expect("run scripts/kafka.sh");
    assert!(status.success(), "scripts/kafka.sh start failed");
}

#[test]
fn a_kafka_reader_killed_at_random_points_resumes_from_its_offsets() {
    ensure_kafka();
    let dir = scratch("kafka");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let topic = format!("recovery-{}-{nanos}", std::process::id());
    let table = |extra: &str| {
        format!(
            "CREATE TABLE flow_topic (ts TIMESTAMP(3), src_ip STRING, flow_type STRING, bytes_in BIGINT,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json',
               'key.format' = 'raw', 'key.fields' = 'src_ip'{extra});"
        )
    };
    // 4 partitions keyed by source IP: each partition is in order of its own, disordered
    // against the others and within itself (the generator's disorder), with late rows.
    let produce = job(
        &dir,
        "produce",
        &format!(
            "CREATE TABLE flows (ts TIMESTAMP(3), src_ip STRING, flow_type STRING, bytes_in BIGINT)
             WITH ('connector' = 'netflow', 'number-of-rows' = '300000', 'event-time.rows-per-second' = '1000',
               'max-out-of-orderness' = '1500', 'seed' = '5');
             {}
             INSERT INTO flow_topic SELECT * FROM flows;",
            table(", 'sink.create-topic' = 'true', 'sink.create-topic.partitions' = '4'")
        ),
    );
    let output = streamsql().args(["-f", produce.to_str().expect("utf-8")]).output().expect("run");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let read = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE counts (window_start TIMESTAMP(3), flow_type STRING, flows BIGINT, bytes BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO counts SELECT window_start, flow_type, COUNT(*), SUM(bytes_in)
             FROM TABLE(TUMBLE(TABLE flow_topic, DESCRIPTOR(ts), INTERVAL '10' SECOND))
             GROUP BY window_start, window_end, flow_type;",
            table(", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'"),
            dir.join(out).display()
        )
    };
    let reference = job(&dir, "reference", &read("reference.csv", 2));
    let output = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected = lines(&dir.join("reference.csv"));
    assert!(expected.len() > 100, "{} result rows", expected.len());

    // Reading is fast: kill early and often, at parallelism 1 (one reader of the 4 partitions,
    // one aggregation instance); then finish at parallelism 4 from the last checkpoint: each
    // reader takes its partitions' offsets and watermarks, each aggregation its key groups.
    let state = dir.join("state");
    let killed_job = job(&dir, "killed", &read("killed.csv", 1));
    let mut points = Lcg(99);
    let mut killed = 0;
    while killed < 3 {
        // Each run makes progress past a new checkpoint before its kill, however slowly it
        // starts on a busy machine (connecting to the broker takes a while).
        let before = latest_checkpoint(&state);
        let mut child = start(&killed_job, &state);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while latest_checkpoint(&state) <= before && std::time::Instant::now() < deadline {
            assert!(child.try_wait().expect("poll").is_none(), "the job ended before its kill {}", killed + 1);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(latest_checkpoint(&state) > before, "no checkpoint within 60 s before kill {}", killed + 1);
        std::thread::sleep(Duration::from_millis(points.next_ms(0, 150)));
        assert!(child.try_wait().expect("poll").is_none(), "the job ended before its kill {}", killed + 1);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        killed += 1;
    }
    let wider = job(&dir, "wider", &read("killed.csv", 4));
    let output = run_once(&wider, &state);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("resumed from checkpoint"), "{}", stderr(&output));
    assert_eq!(sorted(lines(&dir.join("killed.csv"))), sorted(expected), "after {killed} kills");
    std::fs::remove_dir_all(&dir).ok();
}

/// A fresh topic name (the sink creates it).
fn fresh_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Runs `killed_job` until it has been killed `kills` times, each kill after a new checkpoint
/// completed (plus 0–300 ms), then `finish` to its end; returns the final run's stderr.
fn run_killed_after_checkpoints(killed_job: &Path, finish: &Path, state: &Path, kills: usize, seed: u64) -> String {
    let mut points = Lcg(seed);
    for kill in 1..=kills {
        let before = latest_checkpoint(state);
        let mut child = start(killed_job, state);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let ended = |child: Child| {
            let output = child.wait_with_output().expect("wait");
            panic!("the job ended ({}) before kill {kill}: {}", output.status, stderr(&output));
        };
        while latest_checkpoint(state) <= before && std::time::Instant::now() < deadline {
            if child.try_wait().expect("poll").is_some() {
                ended(child);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(latest_checkpoint(state) > before, "no checkpoint within 60 s before kill {kill}");
        std::thread::sleep(Duration::from_millis(points.next_ms(0, 300)));
        if child.try_wait().expect("poll").is_some() {
            ended(child);
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    let output = run_once(finish, state);
    assert_eq!(output.status.code(), Some(0), "after {kills} kills: {}", stderr(&output));
    stderr(&output)
}

/// The options of an exactly-once Kafka sink writing `format` records to `topic` (created with
/// `partitions`), its transactional ids named after the topic.
fn exactly_once_kafka(topic: &str, format: &str, partitions: usize) -> String {
    format!(
        "'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '127.0.0.1:9092',
         'format' = '{format}', 'sink.create-topic' = 'true', 'sink.create-topic.partitions' = '{partitions}',
         'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = '{topic}'"
    )
}

/// Runs `sql(parallelism, sink options)` once into a JSON file (the reference, at parallelism
/// 2), then into `topic` exactly once, killed `kills()` times at parallelism `killed` and
/// finished at `finish`: the records committed equal the reference, none lost, none twice.
fn kafka_equals_the_reference_after_kills(
    dir: &Path,
    topic: &str,
    partitions: usize,
    sql: impl Fn(usize, &str) -> String,
    (killed, finish): (usize, usize),
    seed: u64,
) -> usize {
    let file = format!("'connector' = 'file', 'path' = '{}', 'format' = 'json'", dir.join("reference.jsonl").display());
    let reference = job(dir, "reference", &sql(2, &file));
    let output = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected = lines(&dir.join("reference.jsonl"));

    let kafka = exactly_once_kafka(topic, "json", partitions);
    let state = dir.join("state");
    let killed_job = job(dir, "killed", &sql(killed, &kafka));
    let finish = job(dir, "finish", &sql(finish, &kafka));
    let report = run_killed_after_checkpoints(&killed_job, &finish, &state, kills(), seed);
    assert!(report.contains("resumed from checkpoint"), "{report}");
    let written = committed_values(topic);
    assert_eq!(written.len(), expected.len(), "records committed (0 lost, 0 repeated): {report}");
    assert_eq!(sorted(written), sorted(expected.clone()));
    expected.len()
}

#[test]
fn windows_into_kafka_exactly_once_survive_kills_with_nothing_lost_or_repeated() {
    ensure_kafka();
    let dir = scratch("kafka-exactly-once");
    let topic = fresh_topic("eos-windows");
    let sql = |parallelism: usize, sink: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING,
               flows BIGINT, bytes BIGINT) WITH ({sink});
             INSERT INTO counts SELECT window_start, window_end, flow_type, COUNT(*), SUM(bytes_in)
             FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '2' SECOND))
             GROUP BY window_start, window_end, flow_type;",
            // Each run waits for a new checkpoint, which waits for the transactional producer
            // to start (a second or more when the broker is busy): rows for twice the kills.
            source(2 * rows_for_kills(kills()))
        )
    };
    // Killed at parallelism 1, finished at 4 from the last parallelism-1 checkpoint.
    let rows = kafka_equals_the_reference_after_kills(&dir, &topic, 2, sql, (1, 4), 31);
    assert!(rows > 100, "{rows} result rows");
    std::fs::remove_dir_all(&dir).ok();
}

/// Windows into one exactly-once Kafka topic and their late rows into another, killed after
/// checkpoints at parallelism 2 and finished at 3: both sinks commit a checkpoint's output only
/// once it is complete (the first to store waits for the other), so `read_committed` readers
/// of both topics see what an uninterrupted run writes, each record once.
#[test]
fn windows_and_their_late_rows_into_kafka_exactly_once_survive_kills() {
    ensure_kafka();
    let dir = scratch("kafka-exactly-once-late");
    let (topic, late_topic) = (fresh_topic("eos-late-results"), fresh_topic("eos-late-rows"));
    let sql = |parallelism: usize, sink: &str, late: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE counts (window_start TIMESTAMP(3), flow_type STRING, flows BIGINT) WITH ({sink});
             CREATE TABLE late_rows (operator STRING, ts TIMESTAMP(3), src_ip STRING, bytes_in BIGINT) WITH ({late});
             SET 'late-rows.sink' = 'late_rows';
             INSERT INTO counts SELECT window_start, flow_type, COUNT(*)
             FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '2' SECOND))
             GROUP BY window_start, window_end, flow_type;",
            source(2 * rows_for_kills(kills()))
        )
    };
    let file = |name: &str| format!("'connector' = 'file', 'path' = '{}', 'format' = 'json'", dir.join(name).display());
    let reference = job(&dir, "reference", &sql(2, &file("reference.jsonl"), &file("reference-late.jsonl")));
    let output = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let (expected, expected_late) = (lines(&dir.join("reference.jsonl")), lines(&dir.join("reference-late.jsonl")));
    assert!(expected_late.len() > 1000, "{} late rows", expected_late.len());

    let (kafka, late_kafka) = (exactly_once_kafka(&topic, "json", 2), exactly_once_kafka(&late_topic, "json", 2));
    let state = dir.join("state");
    let killed_job = job(&dir, "killed", &sql(2, &kafka, &late_kafka));
    let finish = job(&dir, "finish", &sql(3, &kafka, &late_kafka));
    let report = run_killed_after_checkpoints(&killed_job, &finish, &state, kills(), 47);
    assert!(report.contains("resumed from checkpoint"), "{report}");
    let (written, written_late) = (committed_values(&topic), committed_values(&late_topic));
    assert_eq!(written_late.len(), expected_late.len(), "late rows committed (0 lost, 0 repeated): {report}");
    assert_eq!(sorted(written_late), sorted(expected_late));
    assert_eq!(written.len(), expected.len(), "results committed (0 lost, 0 repeated): {report}");
    assert_eq!(sorted(written), sorted(expected));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_updating_aggregate_into_kafka_exactly_once_commits_each_change_once() {
    ensure_kafka();
    let dir = scratch("kafka-exactly-once-updating");
    let topic = fresh_topic("eos-updating");
    let sql = |sink: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '150 ms';
             SET 'update-interval' = '50 ms';
             SET 'parallelism.default' = '2';
             {}
             CREATE TABLE per_type (flow_type STRING, flows BIGINT, bytes BIGINT, biggest BIGINT) WITH ({sink});
             INSERT INTO per_type SELECT flow_type, COUNT(*), SUM(bytes_in), MAX(bytes_in)
             FROM flows GROUP BY flow_type;",
            source(rows_for_kills(kills()))
        )
    };
    let file = format!("'connector' = 'file', 'path' = '{}', 'format' = 'csv'", dir.join("reference.csv").display());
    let reference = job(&dir, "reference", &sql(&file));
    let output = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected = apply_changelog(&lines(&dir.join("reference.csv")));
    assert!(expected.len() >= 5, "{expected:?}");

    // One partition: the changelog is read back in the order it was written.
    let kafka = exactly_once_kafka(&topic, "csv", 1);
    let state = dir.join("state");
    let killed_job = job(&dir, "killed", &sql(&kafka));
    let report = run_killed_after_checkpoints(&killed_job, &killed_job, &state, kills(), 8);
    assert!(report.contains("resumed from checkpoint"), "{report}");
    // Each committed change applies cleanly (no second +I, every -U retracts the row shown) and
    // the changelog ends in the reference's table.
    let mut changelog = vec!["op,flow_type,flows,bytes,biggest".to_string()];
    changelog.extend(committed_values(&topic));
    assert_eq!(apply_changelog(&changelog), expected);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_interval_join_into_kafka_exactly_once_survives_kills_and_a_new_parallelism() {
    ensure_kafka();
    let dir = scratch("kafka-exactly-once-join");
    let topic = fresh_topic("eos-join");
    // Nexmark auctions and bids (the same event sequence; 10 % of events up to 3 s late against
    // a 4 s watermark delay), paced so that each killed run makes progress.
    let events = 60_000 * kills() as u64 + 100_000;
    let table = |kind: &str, columns: &str| {
        format!(
            "CREATE TABLE {kind} ({columns}, WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND)
             WITH ('connector' = 'nexmark', 'kind' = '{kind}', 'number-of-rows' = '{events}',
               'rows-per-second' = '100000', 'seed' = '17');"
        )
    };
    let sql = |parallelism: usize, sink: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             {}
             CREATE TABLE matched (auction BIGINT, seller BIGINT, price BIGINT, bid_time TIMESTAMP(3)) WITH ({sink});
             INSERT INTO matched SELECT a.id, a.seller, b.price, b.dateTime
             FROM auction a JOIN bid b ON a.id = b.auction
               AND b.dateTime BETWEEN a.dateTime AND a.dateTime + INTERVAL '2' SECOND;",
            table("auction", "id BIGINT, seller BIGINT, dateTime TIMESTAMP(3)"),
            table("bid", "auction BIGINT, price BIGINT, dateTime TIMESTAMP(3)"),
        )
    };
    // Killed at parallelism 2; finished at 3: each join instance keeps the rows whose keys it
    // owns now, of every former instance.
    let rows = kafka_equals_the_reference_after_kills(&dir, &topic, 4, sql, (2, 3), 5);
    assert!(rows > 1000, "{rows} joined rows");
    std::fs::remove_dir_all(&dir).ok();
}

/// Starts the project's S3-compatible server (`scripts/seaweedfs.sh start`; already running:
/// nothing to do) and creates `bucket` in it.
fn ensure_s3_bucket(bucket: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/seaweedfs.sh");
    let status = Command::new(&script).arg("start").status().expect("run scripts/seaweedfs.sh");
    assert!(status.success(), "scripts/seaweedfs.sh start failed");
    let created = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .arg(format!("http://127.0.0.1:8333/{bucket}"))
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&created.stdout).to_string();
    assert!(code == "200" || code == "409", "creating bucket {bucket}: HTTP {code} {}", stderr(&created));
}

/// The keys under `prefix` in `bucket`, as the S3 server lists them (ListObjectsV2).
fn s3_keys(bucket: &str, prefix: &str) -> String {
    let listed = Command::new("curl")
        .arg("-fsS")
        .arg(format!("http://127.0.0.1:8333/{bucket}?list-type=2&prefix={prefix}"))
        .output()
        .expect("curl");
    assert!(listed.status.success(), "listing {bucket}/{prefix}: {}", stderr(&listed));
    String::from_utf8_lossy(&listed.stdout).into_owned()
}

#[test]
fn checkpoints_in_s3_storage_survive_kills() {
    let bucket = "streamsql-tests";
    ensure_s3_bucket(bucket);
    let dir = scratch("s3");
    let prefix = format!("recovery-{}", std::process::id());
    let sql = |out: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 's3.endpoint' = 'http://127.0.0.1:8333';
             SET 's3.access-key' = 'streamsql';
             SET 's3.secret-key' = 'streamsql';
             SET 'parallelism.default' = '2';
             {}
             CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING,
               flows BIGINT, bytes BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO counts SELECT window_start, window_end, flow_type, COUNT(*), SUM(bytes_in)
             FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '2' SECOND))
             GROUP BY window_start, window_end, flow_type;",
            source(rows_for_kills(kills())),
            dir.join(out).display()
        )
    };
    let expected = reference_run(&dir, &sql("reference.csv"), "reference.csv");
    assert!(expected.len() > 100, "{} result rows", expected.len());

    let state = PathBuf::from(format!("s3://{bucket}/{prefix}"));
    let killed_job = job(&dir, "killed", &sql("killed.csv"));
    // The first run is killed once a checkpoint is complete in the bucket.
    let mut child = start(&killed_job, &state);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !s3_keys(bucket, &prefix).contains("_manifest.json") {
        assert!(std::time::Instant::now() < deadline, "no manifest in s3://{bucket}/{prefix} within 60 s");
        assert!(child.try_wait().expect("poll").is_none(), "the job ended before its first checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let (killed, report) = run_with_kills(&killed_job, &state, kills(), 77);
    assert_eq!(killed, kills());
    assert!(report.contains("resumed from checkpoint"), "{report}");
    assert_eq!(sorted(lines(&dir.join("killed.csv"))), sorted(expected));
    // A complete job removes its checkpoints from the bucket.
    assert!(!s3_keys(bucket, &prefix).contains("chk-"), "{}", s3_keys(bucket, &prefix));
    assert!(!Path::new("s3:").exists(), "no local folder named after the location");
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `tests/python/kafka_records.py BOOTSTRAP <args>` (confluent-kafka), feeding `input`.
fn kafka_records(args: &[&str], input: &str) {
    use std::io::Write as _;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = Command::new("bash").arg(root.join("scripts/kafka-client.sh")).arg("python").output().expect("venv");
    assert!(python.status.success(), "scripts/kafka-client.sh python: {}", stderr(&python));
    let mut child = Command::new(String::from_utf8_lossy(&python.stdout).trim())
        .arg(root.join("tests/python/kafka_records.py"))
        .arg("127.0.0.1:9092")
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kafka_records.py");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write records");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "kafka_records.py {args:?}: {}", stderr(&output));
}

#[test]
fn a_partition_added_after_a_checkpoint_is_read_from_its_beginning() {
    ensure_kafka();
    let dir = scratch("kafka-new-partition");
    let topic = fresh_topic("grown");
    let records = |partition: i32, ids: std::ops::Range<i64>| -> String {
        ids.map(|id| format!("{{\"partition\": {partition}, \"key\": null, \"value\": \"{{\\\"id\\\": {id}}}\"}}\n"))
            .collect()
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
    let created = Command::new(&script).args(["topic", &topic, "1"]).output().expect("run scripts/kafka.sh");
    assert!(created.status.success(), "scripts/kafka.sh topic: {}", stderr(&created));
    let sql = |extra: &str| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             CREATE TABLE t (id BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json',
               'scan.startup.mode' = 'latest-offset'{extra});
             CREATE TABLE ids (id BIGINT) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO ids SELECT id FROM t;",
            dir.join("ids.csv").display()
        )
    };
    let state = dir.join("state");
    // The reader starts at the end of the one partition, checkpoints, and is killed.
    let unbounded = job(&dir, "unbounded", &sql(""));
    let mut child = start(&unbounded, &state);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while latest_checkpoint(&state).is_none() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint within 60 s");
        assert!(child.try_wait().expect("poll").is_none(), "the reader ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    // While it is down, a second partition comes, and records to both.
    kafka_records(&["partitions", &topic, "2"], "");
    kafka_records(&["produce", &topic], &(records(0, 0..50) + &records(1, 50..100)));
    // Resumed (reading up to the ends the partitions have now): the new partition from its start.
    let bounded = job(&dir, "bounded", &sql(", 'scan.bounded.mode' = 'latest-offset'"));
    let output = run_once(&bounded, &state);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("resumed from checkpoint"), "{}", stderr(&output));
    let mut ids: Vec<i64> = lines(&dir.join("ids.csv")).iter().skip(1).map(|l| l.parse().expect("an id")).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..100).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_top_n_killed_at_random_points_ends_in_the_same_ranks() {
    let dir = scratch("top-n");
    let sql = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE top (flow_type STRING, bytes BIGINT, rn BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO top SELECT flow_type, bytes_in, rn FROM (
               SELECT flow_type, bytes_in, ROW_NUMBER() OVER (PARTITION BY flow_type ORDER BY bytes_in DESC) AS rn
               FROM flows) WHERE rn <= 3;",
            source(rows_for_kills(kills())),
            dir.join(out).display()
        )
    };
    // The changelog applied to a table keyed by (flow_type, rank): every -U takes out the row shown.
    let fold = |path: &Path| -> BTreeMap<(String, String), String> {
        let mut table = BTreeMap::new();
        for line in lines(path).iter().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            let [op, flow_type, bytes, rn] = fields[..] else { panic!("a changelog row: {line}") };
            let key = (flow_type.to_string(), rn.to_string());
            match op {
                "+I" | "+U" => {
                    table.insert(key, bytes.to_string());
                }
                _ => assert_eq!(table.remove(&key).as_deref(), Some(bytes), "{op} of a row not shown: {line}"),
            }
        }
        table
    };
    let reference = job(&dir, "reference", &sql("reference.csv", 2));
    let output = run_once(&reference, &dir.join("reference-state"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected = fold(&dir.join("reference.csv"));
    assert!(expected.len() >= 10, "{expected:?}");

    // Killed at parallelism 2, finished at 3: each instance ranks the partitions it owns now.
    let state = dir.join("state");
    let killed_job = job(&dir, "killed", &sql("killed.csv", 2));
    let finish = job(&dir, "finish", &sql("killed.csv", 3));
    let (killed, report) = run_with_kills_then(&killed_job, &finish, &state, kills(), 13);
    assert_eq!(killed, kills());
    assert!(report.contains("resumed from checkpoint"), "{report}");
    assert_eq!(fold(&dir.join("killed.csv")), expected);
    std::fs::remove_dir_all(&dir).ok();
}

/// OVER aggregates over RANGE and ROWS frames with LAG and LEAD, killed at parallelism 2 and
/// finished at 3: the held rows, each partition's history and the slid accumulators come back,
/// so every row is written once with the values an uninterrupted run gives it.
#[test]
fn over_aggregates_killed_at_random_points_write_every_row_once() {
    let dir = scratch("over");
    let sql = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE rows_out (src_ip STRING, ts TIMESTAMP(3), flow_type STRING, bytes_in BIGINT,
               s BIGINT, c BIGINT, mx BIGINT, s3 BIGINT, prev BIGINT, nxt BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO rows_out SELECT src_ip, ts, flow_type, bytes_in,
               SUM(bytes_in) OVER (PARTITION BY flow_type ORDER BY ts
                 RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW),
               COUNT(*) OVER (PARTITION BY flow_type ORDER BY ts
                 RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW),
               MAX(bytes_in) OVER (PARTITION BY flow_type ORDER BY ts
                 RANGE BETWEEN INTERVAL '1' SECOND PRECEDING AND CURRENT ROW),
               SUM(bytes_in) OVER (PARTITION BY flow_type ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW),
               LAG(bytes_in) OVER (PARTITION BY flow_type ORDER BY ts),
               LEAD(bytes_in) OVER (PARTITION BY flow_type ORDER BY ts)
             FROM flows;",
            source(rows_for_kills(kills())),
            dir.join(out).display()
        )
    };
    let (expected, _) = killed_then_rescaled_writes_each_row_once(&dir, sql, 34, "rows");
    assert!(expected.len() > 100_000, "{} rows", expected.len());
    std::fs::remove_dir_all(&dir).ok();
}

/// Starts `job` with the web console on a free port; returns the process and its console's
/// URL once it has printed it.
fn start_with_console(job: &Path, state: &Path) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = streamsql()
        .args(["-f", job.to_str().expect("utf-8"), "--state-dir", state.to_str().expect("utf-8")])
        .args(["--http", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn streamsql");
    let (send, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(at) = line.find("console on http://") {
                    let rest = &line[at + "console on ".len()..];
                    break rest.split(' ').next().expect("url").trim_end_matches('/').to_string();
                }
                seen.push(line);
            }
            Err(_) => panic!("no console line: {seen:?}"),
        }
    };
    (child, url, lines)
}

/// Waits until the job's pipelines have all finished (it then serves until SIGTERM).
fn wait_finished(lines: &std::sync::mpsc::Receiver<String>) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.contains("pipelines finished") => return seen,
            Ok(line) => seen.push(line),
            Err(_) => panic!("the pipelines did not finish: {seen:?}"),
        }
    }
}

/// The rows of `sql` over the live tables, through the console's query API, as sorted JSON.
fn query_rows(url: &str, sql: &str) -> Vec<String> {
    let output = Command::new("curl")
        .args(["-s", "-X", "POST", "--data-binary", sql, &format!("{url}/api/query")])
        .output()
        .expect("curl");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    let rows = answer["rows"].as_array().unwrap_or_else(|| panic!("no rows: {answer}"));
    assert_eq!(answer["total_rows"].as_u64(), Some(rows.len() as u64), "{sql}: rows left out");
    sorted(rows.iter().map(|r| r.to_string()).collect())
}

/// Live tables (windowed results appended, an updating aggregate kept by key) come back from
/// the checkpoint after each kill: the final run's tables equal an uninterrupted run's.
#[test]
fn live_tables_killed_at_random_points_come_back_from_checkpoints() {
    let dir = scratch("live");
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '100 ms';
         SET 'parallelism.default' = '2';
         {}
         CREATE MATERIALIZED VIEW per_second AS
           SELECT window_start, window_end, flow_type, COUNT(*) AS flows, SUM(bytes_in) AS bytes
           FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND))
           GROUP BY window_start, window_end, flow_type;
         CREATE MATERIALIZED VIEW per_type AS
           SELECT flow_type, COUNT(*) AS flows, SUM(bytes_in) AS bytes FROM flows GROUP BY flow_type;",
        source(rows_for_kills(kills()))
    );
    let job = job(&dir, "job", &sql);
    // The windows one flow type at a time: the console answers at most 10 000 rows, and the
    // long run (20 kills) has more windows than that.
    let tables = |url: &str| {
        let per_type = query_rows(url, "SELECT * FROM per_type");
        let mut windows = Vec::new();
        for row in &per_type {
            let row: serde_json::Value = serde_json::from_str(row).expect("a JSON row");
            let flow_type = row[0].as_str().expect("a flow type first");
            windows.extend(query_rows(url, &format!("SELECT * FROM per_second WHERE flow_type = '{flow_type}'")));
        }
        (sorted(windows), per_type)
    };
    let stop = |mut child: Child| {
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let _ = child.wait();
    };
    let (child, url, lines) = start_with_console(&job, &dir.join("reference-state"));
    wait_finished(&lines);
    let expected = tables(&url);
    stop(child);
    assert!(expected.0.len() > 1000, "{} windows", expected.0.len());
    assert_eq!(expected.1.len(), 7, "{:?}", expected.1);

    let state = dir.join("state");
    let mut points = Lcg(55);
    for _ in 0..kills() {
        let mut child = start(&job, &state);
        std::thread::sleep(Duration::from_millis(points.next_ms(300, 700)));
        assert!(child.try_wait().expect("poll").is_none(), "the job ended before it was killed");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    let (child, url, lines) = start_with_console(&job, &state);
    let report = wait_finished(&lines).join("\n");
    let actual = tables(&url);
    stop(child);
    assert!(report.contains("resumed from checkpoint"), "{report}");
    assert_eq!(actual.0.len(), expected.0.len(), "windows in the live table: {report}");
    assert_eq!(actual.0, expected.0);
    assert_eq!(actual.1, expected.1);
    std::fs::remove_dir_all(&dir).ok();
}

/// A semi join (`IN (SELECT ...)`) of two generated streams, killed at random points: the right
/// side's keys and the left rows still waiting for one come back, so each row is written once.
#[test]
fn a_semi_join_killed_at_random_points_writes_every_row_once() {
    let dir = scratch("semi");
    let rows = rows_for_kills(kills());
    let sql = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             {}
             CREATE TABLE matched (ts TIMESTAMP(3), src_ip STRING, flow_type STRING, bytes_in BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO matched SELECT ts, src_ip, flow_type, bytes_in FROM flows
             WHERE src_ip IN (SELECT src_ip FROM probes WHERE bytes_in > 5000);",
            source(rows),
            // Rare probes: the subquery's keys turn up over the first part of the run, while
            // rows with other keys wait.
            probes(rows / 50),
            dir.join(out).display()
        )
    };
    // Finished at parallelism 3: each instance keeps the right keys and waiting rows it owns
    // (the keys, STRING on both sides, are not cast).
    let (expected, _) = killed_then_rescaled_writes_each_row_once(&dir, sql, 89, "rows");
    assert!(expected.len() > 1000, "{} rows", expected.len());
    std::fs::remove_dir_all(&dir).ok();
}

/// A LEFT lookup join of the flows with a CSV table of host names, killed at random points: the
/// table's rows come back from the checkpoint (its file source, restored at its end, reads
/// nothing more), so every flow is written once, named or padded; the last run, at another
/// parallelism, gives each instance the whole table of one former instance.
#[test]
fn a_lookup_join_killed_at_random_points_writes_every_row_once() {
    let dir = scratch("lookup");
    let mut hosts = String::from("src_ip,host\n");
    for i in 1..=200 {
        hosts.push_str(&format!("10.0.1.{i},host-{i}\n"));
    }
    std::fs::write(dir.join("hosts.csv"), hosts).expect("write the table");
    let rows = rows_for_kills(kills());
    let sql = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE hosts (src_ip STRING, host STRING)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             CREATE TABLE named (ts TIMESTAMP(3), src_ip STRING, host STRING, bytes_in BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO named SELECT f.ts, f.src_ip, h.host, f.bytes_in
             FROM flows f LEFT JOIN hosts AS h ON f.src_ip = h.src_ip;",
            source(rows),
            dir.join("hosts.csv").display(),
            dir.join(out).display()
        )
    };
    let expected = reference_run(&dir, &sql("reference.csv", 2), "reference.csv");
    let padded = expected.iter().filter(|line| line.split(',').nth(2) == Some("")).count();
    assert_eq!(expected.len() as u64, rows + 1, "every flow once, after the header");
    assert!(padded > 1000 && padded < expected.len() / 2, "{padded} padded of {}", expected.len());
    let state = dir.join("state");
    let killed_job = job(&dir, "killed", &sql("killed.csv", 2));
    let finish = job(&dir, "finish", &sql("killed.csv", 3));
    let (killed, report) = run_with_kills_then(&killed_job, &finish, &state, kills(), 61);
    assert_eq!(killed, kills());
    assert!(report.contains("resumed from checkpoint") && report.contains("lookup join"), "{report}");
    let actual = lines(&dir.join("killed.csv"));
    assert_eq!(actual.len(), expected.len(), "rows written: {report}");
    assert_eq!(sorted(actual), sorted(expected));
    std::fs::remove_dir_all(&dir).ok();
}

/// A changelog written as CSV lines (`op` first) folded into the rows it leaves, with their
/// multiplicity.
fn folded(lines: Vec<String>) -> BTreeMap<String, i64> {
    let mut rows: BTreeMap<String, i64> = BTreeMap::new();
    for line in lines {
        let (op, row) = line.split_once(',').unwrap_or_else(|| panic!("no op in {line}"));
        if op == "op" {
            continue; // the header
        }
        *rows.entry(row.to_string()).or_default() += match op {
            "+I" | "+U" => 1,
            "-D" | "-U" => -1,
            other => panic!("op {other} in {line}"),
        };
    }
    rows.retain(|_, n| *n != 0);
    rows
}

/// A LEFT interval join killed at random points and finished at another parallelism: each
/// side's kept rows come back with their match counts, so a padded row is taken back when its
/// first match arrives and no row is padded twice; the folded changelog equals the reference's.
#[test]
fn an_outer_interval_join_killed_at_random_points_folds_to_the_same_rows() {
    outer_interval_join_survives_kills("outer", "", 144);
}

/// The same under `'table.exec.state.ttl'` (an hour, so that no row ages out in the test): the
/// kept rows come back with when they were kept, at another parallelism too.
#[test]
fn an_outer_interval_join_with_a_state_ttl_killed_at_random_points_folds_to_the_same_rows() {
    outer_interval_join_survives_kills("outer-ttl", "SET 'table.exec.state.ttl' = '1 h';", 145);
}

/// [`an_outer_interval_join_killed_at_random_points_folds_to_the_same_rows`], with `settings`
/// added to the job.
fn outer_interval_join_survives_kills(name: &str, settings: &str, seed: u64) {
    let dir = scratch(name);
    // Runs of 0.6-1.4 s: long enough for probes to meet flows kept in the checkpoint.
    let rows = 150_000 * kills() as u64 + 100_000;
    let sql = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {settings}
             CREATE TABLE flows (ts TIMESTAMP(3), src_ip STRING, flow_type STRING, bytes_in BIGINT,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'netflow', 'number-of-rows' = '{rows}', 'rows-per-second' = '100000',
               'event-time.rows-per-second' = '1000', 'max-out-of-orderness' = '500', 'seed' = '11');
             CREATE TABLE probes (ts TIMESTAMP(3), src_ip STRING, bytes_in BIGINT,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'netflow', 'number-of-rows' = '{}', 'rows-per-second' = '2000',
               'event-time.rows-per-second' = '20', 'max-out-of-orderness' = '500', 'seed' = '12');
             CREATE TABLE joined (ts TIMESTAMP(3), src_ip STRING, bytes_in BIGINT, probe_bytes BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO joined SELECT f.ts, f.src_ip, f.bytes_in, p.bytes_in
             FROM flows f LEFT JOIN probes p ON f.src_ip = p.src_ip
               AND p.ts BETWEEN f.ts - INTERVAL '1' SECOND AND f.ts + INTERVAL '1' SECOND;",
            rows / 50,
            dir.join(out).display()
        )
    };
    let expected = folded(reference_run(&dir, &sql("reference.csv", 2), "reference.csv"));
    let padded = expected.keys().filter(|row| matches!(row.rsplit(',').next(), Some("" | "null"))).count();
    assert!(padded > 1000 && expected.len() > padded + 1000, "{padded} padded of {}", expected.len());
    let state = dir.join("state");
    let killed_job = job(&dir, "killed", &sql("killed.csv", 2));
    let finish = job(&dir, "finish", &sql("killed.csv", 3));
    let (killed, report) = run_with_kills_after(&killed_job, &finish, &state, kills(), seed, (600, 1400));
    assert_eq!(killed, kills());
    assert!(report.contains("resumed from checkpoint"), "{report}");
    let actual = folded(lines(&dir.join("killed.csv")));
    assert_eq!(actual.len(), expected.len(), "rows left: {report}");
    assert!(actual == expected, "the folded changelog differs from the reference's");
    std::fs::remove_dir_all(&dir).ok();
}

/// A LEFT join of two updating aggregates (flows and probes per source IP), killed at random
/// points and finished at another parallelism: each side's kept rows come back, so every `-U`
/// finds the row it takes back and the folded changelog equals the reference's.
#[test]
fn a_join_of_updating_inputs_killed_at_random_points_folds_to_the_same_rows() {
    let dir = scratch("updating-join");
    let rows = rows_for_kills(kills());
    let sql = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'update-interval' = '50 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             {}
             CREATE TABLE both_counts (src_ip STRING, flows BIGINT, probes BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO both_counts SELECT f.src_ip, f.n, p.n
             FROM (SELECT src_ip, COUNT(*) AS n FROM flows GROUP BY src_ip) AS f
             LEFT JOIN (SELECT src_ip, COUNT(*) AS n FROM probes WHERE bytes_in > 8000 GROUP BY src_ip) AS p
             ON f.src_ip = p.src_ip;",
            source(rows),
            probes(rows / 50),
            dir.join(out).display()
        )
    };
    let (expected, actual, report) = killed_then_rescaled(&dir, sql, 71);
    let (expected, actual) = (folded(expected), folded(actual));
    assert!(expected.len() > 200, "{} rows", expected.len());
    assert!(actual == expected, "the folded changelog differs from the reference's: {report}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A LEFT window join (Flink's, over two TUMBLE tables), killed at random points and finished
/// at another parallelism: the rows of the windows not joined yet come back, so each window's
/// results are written once.
#[test]
fn a_window_join_killed_at_random_points_writes_every_window_once() {
    let dir = scratch("window-join");
    let rows = rows_for_kills(kills());
    let sql = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             {}
             CREATE TABLE joined (window_start TIMESTAMP(3), src_ip STRING, flow_bytes BIGINT, probe_bytes BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO joined SELECT l.window_start, l.src_ip, l.bytes_in, r.bytes_in
             FROM (SELECT * FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND))) AS l
             LEFT JOIN (SELECT * FROM TABLE(TUMBLE(TABLE probes, DESCRIPTOR(ts), INTERVAL '5' SECOND))) AS r
             ON l.src_ip = r.src_ip AND l.window_start = r.window_start AND l.window_end = r.window_end;",
            source(rows),
            probes(rows / 50),
            dir.join(out).display()
        )
    };
    let (expected, report) = killed_then_rescaled_writes_each_row_once(&dir, sql, 233, "rows");
    let padded = expected.iter().filter(|line| line.ends_with(',')).count();
    assert!(expected.len() > 100_000 && padded > 10_000, "{padded} padded of {}", expected.len());
    assert!(report.contains("window join"), "{report}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Nexmark q5's shape over the flows: each window's busiest source IPs, found by joining the
/// counts per IP with their maximum per window, two uses of one table that share one read of
/// it. Killed at random points and finished at another parallelism, each window's rows are
/// written once: the shared read resumes from the one position both uses stored.
#[test]
fn a_self_join_sharing_one_read_killed_at_random_points_writes_every_row_once() {
    let dir = scratch("self-join");
    let sql = |out: &str, parallelism: usize| {
        let counts = "SELECT window_start, window_end, src_ip, COUNT(*) AS flows
             FROM TABLE(HOP(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '3' SECOND))
             GROUP BY window_start, window_end, src_ip";
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE busiest (window_start TIMESTAMP(3), src_ip STRING, flows BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO busiest SELECT c.window_start, c.src_ip, c.flows
             FROM ({counts}) AS c
             JOIN (SELECT window_start, window_end, MAX(flows) AS most FROM ({counts}) GROUP BY window_start, window_end) AS m
             ON c.window_start = m.window_start AND c.window_end = m.window_end AND c.flows >= m.most;",
            source(rows_for_kills(kills())),
            dir.join(out).display()
        )
    };
    let (expected, _) = killed_then_rescaled_writes_each_row_once(&dir, sql, 97, "rows");
    assert!(expected.len() > 300, "{} result rows", expected.len());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn session_windows_killed_at_random_points_write_every_session_once() {
    let dir = scratch("session");
    let sql = |out: &str, parallelism: usize| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';
             SET 'parallelism.default' = '{parallelism}';
             {}
             CREATE TABLE sessions (src_ip STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3),
               flows BIGINT, bytes BIGINT)
             WITH ('connector' = 'file', 'path' = '{}', 'format' = 'csv');
             INSERT INTO sessions SELECT src_ip, window_start, window_end, COUNT(*), SUM(bytes_in)
             FROM TABLE(SESSION(TABLE flows PARTITION BY src_ip, DESCRIPTOR(ts), INTERVAL '3' SECOND))
             GROUP BY src_ip, window_start, window_end;",
            source(rows_for_kills(kills())),
            dir.join(out).display()
        )
    };
    // At parallelism 3, each instance takes the open sessions and held rows of the keys it owns.
    let (expected, _) = killed_then_rescaled_writes_each_row_once(&dir, sql, 21, "sessions");
    assert!(expected.len() > 100, "{} sessions", expected.len());
    std::fs::remove_dir_all(&dir).ok();
}
