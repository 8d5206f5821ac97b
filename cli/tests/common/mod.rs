//! What several test files of the binary share.

use std::path::Path;
use std::process::Command;

/// Every record value of `topic` in partition and offset order, read by an independent client
/// (confluent-kafka, `tests/python/kafka_records.py`) with `isolation.level=read_committed`; it
/// fails when a transaction left open holds readers back.
pub fn committed_values(topic: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = Command::new("bash").arg(root.join("scripts/kafka-client.sh")).arg("python").output().expect("venv");
    assert!(python.status.success(), "scripts/kafka-client.sh python: {}", String::from_utf8_lossy(&python.stderr));
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();
    let output = Command::new(python)
        .arg(root.join("tests/python/kafka_records.py"))
        .args(["127.0.0.1:9092", "consume", topic])
        .output()
        .expect("run kafka_records.py");
    assert!(output.status.success(), "reading {topic}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
            record["value"].as_str().expect("a value").to_string()
        })
        .collect()
}
