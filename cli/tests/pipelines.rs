//! The workload pipelines of `pipelines/`, run by the binary on their embedded defaults, each
//! checked against an independent computation of the same results.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Map, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamsql-pipelines-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `streamsql -f pipelines/<file> -D ...` from the repository root; panics with its stderr when
/// it fails.
fn run_pipeline(file: &str, defines: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamsql"));
    command.current_dir(repo()).arg("-f").arg(format!("pipelines/{file}"));
    for (name, value) in defines {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    let output = command.output().expect("run streamsql");
    assert!(output.status.success(), "{file} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn read_jsonl(path: &Path) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(object)) => object,
            other => panic!("{}: not a JSON object: {other:?}", path.display()),
        })
        .collect()
}

/// The python of the statistics reference venv (pandas, statsmodels).
fn reference_python() -> String {
    let output =
        Command::new(repo().join("scripts/stats-reference.sh")).arg("python").output().expect("stats-reference.sh");
    assert!(output.status.success(), "scripts/stats-reference.sh: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("path").trim().to_string()
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("{value} is not a number"))
}

#[test]
fn fraud_features_equal_the_handbooks_pandas_code() {
    let dir = scratch("fraud");
    let out = dir.display().to_string();
    let defines =
        [("out", out), ("days", "40".into()), ("customers", "500".into()), ("terminals", "1000".into())];
    run_pipeline("fraud.sql", &defines);
    let transactions = dir.join("fraud_transactions.jsonl");
    let reference = dir.join("reference.jsonl");
    let status = Command::new(reference_python())
        .arg(repo().join("tests/python/fraud_features.py"))
        .arg(&transactions)
        .arg(&reference)
        .status()
        .expect("python");
    assert!(status.success(), "the handbook's feature code failed");

    // Transactions sharing a second with another of their customer or terminal: pandas counts
    // the ones sorted before them, the RANGE frame all of them (peers), so those may differ.
    let mut seen: HashMap<(&str, i64, String), usize> = HashMap::new();
    let rows = read_jsonl(&transactions);
    for row in &rows {
        let time = row["tx_datetime"].as_str().expect("time").to_string();
        *seen.entry(("customer", row["customer_id"].as_i64().expect("id"), time.clone())).or_default() += 1;
        *seen.entry(("terminal", row["terminal_id"].as_i64().expect("id"), time)).or_default() += 1;
    }
    let tied: HashSet<i64> = rows
        .iter()
        .filter(|row| {
            let time = row["tx_datetime"].as_str().expect("time").to_string();
            seen[&("customer", row["customer_id"].as_i64().expect("id"), time.clone())] > 1
                || seen[&("terminal", row["terminal_id"].as_i64().expect("id"), time)] > 1
        })
        .map(|row| row["transaction_id"].as_i64().expect("id"))
        .collect();

    let expected: BTreeMap<i64, Map<String, Value>> =
        read_jsonl(&reference).into_iter().map(|r| (r["transaction_id"].as_i64().expect("id"), r)).collect();
    let features = read_jsonl(&dir.join("fraud_features.jsonl"));
    assert_eq!(features.len(), expected.len(), "one feature row per transaction");
    assert!(features.len() > 20_000, "{} transactions", features.len());
    let mut compared = 0;
    for row in &features {
        let id = row["transaction_id"].as_i64().expect("id");
        let want = &expected[&id];
        for (column, value) in row {
            if column == "tx_datetime" {
                assert_eq!(value.as_str().map(|t| &t[..19]), want[column].as_str(), "transaction {id}");
                continue;
            }
            let (got, wanted) = (number(value), number(&want[column]));
            let close = (got - wanted).abs() <= 1e-9 * wanted.abs().max(1.0);
            assert!(close || tied.contains(&id), "transaction {id}: {column} is {got}, the handbook's code says {wanted}");
            compared += 1;
        }
    }
    assert!(compared > 20 * 20_000);
    // The features mean something: frauds happen, risk is seen on compromised terminals.
    let risky = features.iter().filter(|r| number(&r["terminal_id_risk_30day_window"]) > 0.0).count();
    assert!(risky > 100, "{risky} transactions with a terminal risk");
}
