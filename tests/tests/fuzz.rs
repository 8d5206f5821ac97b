//! A bounded slice of the SQL fuzzer (`sql-fuzz`, see README "Fuzzing"), the replay of every
//! kept regression case, and a check that the harness notices panics, aborts and hangs at all.
//!
//! A failure prints the seed and case index; `sql-fuzz --seed S --print-case I` prints the
//! script, and the run's output holds a reduced version of it.

use std::path::Path;
use std::process::{Command, Output};

use streamsql_tests::TestDir;

const FUZZ: &str = env!("CARGO_BIN_EXE_sql-fuzz");

/// Seconds of generated cases per fuzz test (two tests: a fixed seed and a random one).
const SLICE_SECONDS: &str = "15";

fn sql_fuzz(args: &[&str]) -> Output {
    let output = Command::new(FUZZ).args(args).output().unwrap_or_else(|e| panic!("cannot run {FUZZ}: {e}"));
    eprintln!(
        "$ sql-fuzz {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn assert_clean(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: sql-fuzz found problems (exit {}); its output is above\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
}

fn slice(seed: u64) {
    let seed = seed.to_string();
    let output = sql_fuzz(&[
        "--seed",
        &seed,
        "--seconds",
        SLICE_SECONDS,
        "--no-save",
        "--reduce-secs",
        "20",
        "--progress-secs",
        "0",
    ]);
    assert_clean(&output, &format!("seed {seed}"));
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains(" statements in "), "no summary line from sql-fuzz:\n{summary}");
}

#[test]
fn a_fixed_seed_finds_nothing() {
    slice(1);
}

#[test]
fn a_random_seed_finds_nothing() {
    let seed: u64 = rand::random();
    eprintln!(
        "seed {seed} (rerun: cargo run -p streamsql-tests --bin sql-fuzz -- --seed {seed} --seconds {SLICE_SECONDS})"
    );
    slice(seed);
}

#[test]
fn kept_regression_cases_replay_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-regressions");
    let dir = dir.to_string_lossy();
    let output = sql_fuzz(&["--replay", &dir]);
    assert_clean(&output, "regression replay");
}

/// Scripts that make the worker panic, overflow its stack, abort and hang on purpose (only with
/// `SQL_FUZZ_SELF_TEST` set): each must be reported as what it is, and a plain script must pass.
#[test]
fn the_harness_reports_panics_aborts_and_hangs() {
    let dir = TestDir::new("fuzz-self-test");
    for (name, text) in [
        ("1-panic.sql", "-- sql-fuzz self-test: panic\n"),
        ("2-overflow.sql", "-- sql-fuzz self-test: overflow\n"),
        ("3-abort.sql", "-- sql-fuzz self-test: abort\n"),
        ("4-hang.sql", "-- sql-fuzz self-test: hang\n"),
        ("5-plain.sql", "SHOW TABLES;\n"),
    ] {
        std::fs::write(dir.file(name), text).unwrap();
    }
    let output = Command::new(FUZZ)
        .args(["--replay", &dir.path().to_string_lossy(), "--case-timeout-secs", "2"])
        .env("SQL_FUZZ_SELF_TEST", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "a replay with failures must exit with 1");
    let verdict = |file: &str| {
        stdout.lines().find(|l| l.ends_with(file)).map(|l| l.split_whitespace().next().unwrap_or("").to_string())
    };
    assert_eq!(verdict("1-panic.sql").as_deref(), Some("panic"));
    assert_eq!(verdict("2-overflow.sql").as_deref(), Some("abort"));
    assert!(stdout.contains("overflowed its stack"), "the stack overflow is not named:\n{stdout}");
    assert_eq!(verdict("3-abort.sql").as_deref(), Some("abort"));
    assert_eq!(verdict("4-hang.sql").as_deref(), Some("hang"));
    assert_eq!(verdict("5-plain.sql").as_deref(), Some("ok"));
}
