//! A real Kafka for tests: started with `scripts/kafka.sh` (never mocked, never skipped), written
//! and read with Python's `confluent-kafka` (`tests/python/kafka_records.py`), an independent
//! client, so streamsql's own client never checks itself.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Where tests find Kafka (`scripts/kafka.sh` starts it there).
pub const BOOTSTRAP: &str = "127.0.0.1:9092";

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Runs `scripts/kafka.sh <args>` and panics with its output if it fails.
pub fn run_script(args: &[&str], keep_data: bool) {
    let output = Command::new("bash")
        .arg(repo_file("scripts/kafka.sh"))
        .args(args)
        .env("KAFKA_KEEP_DATA", if keep_data { "1" } else { "0" })
        .output()
        .expect("run scripts/kafka.sh");
    assert!(
        output.status.success(),
        "scripts/kafka.sh {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts Kafka once per test process (a running broker is reused). A test that needs Kafka
/// fails here when it cannot start: it is never skipped.
pub fn ensure_running() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| run_script(&["start"], true));
}

/// The Python of the `confluent-kafka` venv (`scripts/kafka-client.sh python`).
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let output = Command::new("bash")
            .arg(repo_file("scripts/kafka-client.sh"))
            .arg("python")
            .output()
            .expect("run scripts/kafka-client.sh");
        assert!(
            output.status.success(),
            "scripts/kafka-client.sh python failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    })
}

/// A topic name no earlier run has used, created with `partitions` partitions.
pub fn new_topic(prefix: &str, partitions: usize) -> String {
    ensure_running();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() % 1_000_000_000);
    let topic = format!("{prefix}-{}-{nanos}", std::process::id());
    run_script(&["topic", &topic, &partitions.to_string()], true);
    topic
}

/// One Kafka record as the tests write and read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// `None`: a tombstone.
    pub value: Option<String>,
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record to produce to `partition`.
    pub fn new(partition: i32, key: Option<&str>, value: &str) -> Self {
        Self { partition, offset: -1, key: key.map(str::to_string), value: Some(value.to_string()), timestamp: None }
    }
}

/// Writes `records` in order (each to its partition), with confluent-kafka.
pub fn produce(topic: &str, records: &[Record]) {
    let mut child = Command::new(python())
        .arg(repo_file("tests/python/kafka_records.py"))
        .args([BOOTSTRAP, "produce", topic])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run kafka_records.py");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for r in records {
            let line = json!({"partition": r.partition, "key": r.key, "value": r.value, "timestamp": r.timestamp});
            writeln!(stdin, "{line}").expect("write to kafka_records.py");
        }
    }
    let output = child.wait_with_output().expect("wait for kafka_records.py");
    assert!(output.status.success(), "producing to {topic} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// Every record of `topic`, by partition and offset, read with confluent-kafka.
pub fn consume(topic: &str) -> Vec<Record> {
    let output = Command::new(python())
        .arg(repo_file("tests/python/kafka_records.py"))
        .args([BOOTSTRAP, "consume", topic])
        .output()
        .expect("run kafka_records.py");
    assert!(output.status.success(), "reading {topic} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON record");
            Record {
                partition: v["partition"].as_i64().expect("partition") as i32,
                offset: v["offset"].as_i64().expect("offset"),
                key: v["key"].as_str().map(str::to_string),
                value: v["value"].as_str().map(str::to_string),
                timestamp: v["timestamp"].as_i64(),
            }
        })
        .collect()
}
