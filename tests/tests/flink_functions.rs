//! Flink's built-in functions, differentially: every case of `tests/flink-functions.slt` (Flink's
//! documented examples, plus NULLs, negative numbers, out-of-range positions and Unicode) is
//! planned and run through the engine as `SELECT <expression> FROM t` over a one-row file, and
//! its result compared with what Flink gives.
//!
//! Also checked: every supported Flink function of the registry
//! (`streamsql_sql::functions::FLINK_FUNCTIONS`) has a case, and every one not supported yet
//! fails the plan with a message naming it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use streamsql_engine::connector::{Connector, OptionSpec, Role, Sink, TableDef};
use streamsql_sql::functions::registry::Kind;
use streamsql_sql::functions::{FLINK_FUNCTIONS, Support};
use streamsql_tests::{TestDir, describe_sql_error, plan, run_specs, write_text};

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/flink-functions.slt");

/// One case of the reference table.
#[derive(Debug)]
struct Case {
    line: usize,
    /// Evaluated over the windowed table `nums` instead of the one-row table `t`.
    aggregate: bool,
    expression: String,
    expected: Expected,
}

#[derive(Debug)]
enum Expected {
    Value(String),
    /// Planning or running fails with a message containing this (case-insensitively).
    Error(String),
}

fn read_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(REFERENCE).unwrap_or_else(|e| panic!("cannot read {REFERENCE}: {e}"));
    let mut cases = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let line_number = i + 1;
        let trimmed = line.trim_end();
        if trimmed.trim().is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let expected = if let Some(value) = trimmed.strip_prefix("=> ") {
            Some(Expected::Value(value.to_string()))
        } else {
            trimmed.strip_prefix("!! ").map(|e| Expected::Error(e.to_string()))
        };
        match (expected, pending.take()) {
            (Some(expected), Some((line, expression))) => {
                let (aggregate, expression) = match expression.strip_prefix("agg: ") {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, expression),
                };
                cases.push(Case { line, aggregate, expression, expected });
            }
            (Some(_), None) => panic!("{REFERENCE}:{line_number}: a result without an expression before it"),
            (None, Some((line, _))) => panic!("{REFERENCE}:{line}: an expression without '=> result' or '!! error'"),
            (None, None) => pending = Some((line_number, trimmed.to_string())),
        }
    }
    if let Some((line, _)) = pending {
        panic!("{REFERENCE}:{line}: an expression without '=> result' or '!! error'");
    }
    cases
}

/// The tables every case may use: `t` (one row) and `nums` (four rows with event time).
fn tables(dir: &TestDir) -> String {
    write_text(
        &dir.file("t.jsonl"),
        concat!(
            r#"{"ts": "2024-03-05 06:07:08.009", "d": "2024-03-05", "s": "Hello,World", "u": "Grüße, 世界", "#,
            r#""i": 7, "neg": -7, "big": 1700000000, "x": 2.5, "b": true, "#,
            r#""j": "{\"a\": {\"b\": [1, 2, {\"c\": \"x\"}]}, \"n\": null, \"t\": true, \"f\": 1.5}", "#,
            r#""ns": null, "ni": null, "nts": null, "nx": null, "nb": null}"#,
            "\n"
        ),
    );
    write_text(
        &dir.file("nums.jsonl"),
        concat!(
            r#"{"ts": "2024-03-05 00:00:01", "v": 1, "x": 1.0, "s": "a"}"#,
            "\n",
            r#"{"ts": "2024-03-05 00:00:02", "v": 2, "x": 2.0, "s": "b"}"#,
            "\n",
            r#"{"ts": "2024-03-05 00:00:03", "v": 3, "x": 4.0, "s": null}"#,
            "\n",
            r#"{"ts": "2024-03-05 00:00:04", "v": null, "x": null, "s": "d"}"#,
            "\n",
        ),
    );
    format!(
        "CREATE TABLE t (ts TIMESTAMP(3), d DATE, s STRING, u STRING, i INT, neg INT, big BIGINT, x DOUBLE, \
         b BOOLEAN, j STRING, ns STRING, ni INT, nts TIMESTAMP(3), nx DOUBLE, nb BOOLEAN) \
         WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n\
         CREATE TABLE nums (ts TIMESTAMP(3), v INT, x DOUBLE, s STRING, WATERMARK FOR ts AS ts) \
         WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');\n",
        dir.sql_path("t.jsonl"),
        dir.sql_path("nums.jsonl")
    )
}

fn query(case: &Case) -> String {
    if case.aggregate {
        format!(
            "SELECT {} AS v FROM TABLE(TUMBLE(TABLE nums, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
             GROUP BY window_start, window_end;",
            case.expression
        )
    } else {
        format!("SELECT {} AS v FROM t;", case.expression)
    }
}

/// A sink that keeps the batches it is given.
struct Capture {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

impl Connector for Capture {
    fn name(&self) -> &'static str {
        "capture"
    }
    fn options(&self) -> &'static [OptionSpec] {
        &[]
    }
    fn supports(&self, role: Role) -> bool {
        role == Role::Sink
    }
    fn validate(&self, _table: &TableDef, _role: Role) -> streamsql_engine::Result<()> {
        Ok(())
    }
    fn open_sink(&self, _table: &TableDef) -> streamsql_engine::Result<Box<dyn Sink>> {
        Ok(Box::new(CaptureSink { batches: self.batches.clone() }))
    }
}

struct CaptureSink {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

impl Sink for CaptureSink {
    fn write(&mut self, batch: &RecordBatch) -> streamsql_engine::Result<()> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner()).push(batch.clone());
        Ok(())
    }
    fn finish(&mut self) -> streamsql_engine::Result<()> {
        Ok(())
    }
}

/// Plans and runs one case; the result of its single row as text, or the error.
async fn evaluate(tables: &str, case: &Case) -> Result<String, String> {
    let sql = format!("{tables}{}", query(case));
    let mut specs = plan(&sql).map_err(|e| describe_sql_error(&e))?;
    let batches = Arc::new(Mutex::new(Vec::new()));
    for spec in &mut specs {
        spec.sink.connector = Arc::new(Capture { batches: batches.clone() });
    }
    run_specs(specs).await.map_err(|e| format!("{e:#}"))?;
    let batches = batches.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut values = Vec::new();
    for batch in &batches {
        let column = batch.column(0);
        for row in 0..batch.num_rows() {
            values.push(render(column.as_ref(), row));
        }
    }
    match values.as_slice() {
        [value] => Ok(value.clone()),
        _ => Err(format!("expected one row, got {}: {values:?}", values.len())),
    }
}

/// A value as Flink prints it: `'text'`, `NULL`, `TRUE`, `42`, `DATE '…'`, `TIMESTAMP '…'`.
fn render(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    macro_rules! number {
        ($t:ty) => {
            array.as_primitive::<$t>().value(row).to_string()
        };
    }
    let timestamp = |ms_text: Option<chrono::NaiveDateTime>| match ms_text {
        Some(t) => format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.f")),
        None => "<timestamp out of range>".into(),
    };
    match array.data_type() {
        DataType::Boolean => if array.as_boolean().value(row) { "TRUE" } else { "FALSE" }.into(),
        DataType::Int8 => number!(Int8Type),
        DataType::Int16 => number!(Int16Type),
        DataType::Int32 => number!(Int32Type),
        DataType::Int64 => number!(Int64Type),
        DataType::UInt8 => number!(UInt8Type),
        DataType::UInt16 => number!(UInt16Type),
        DataType::UInt32 => number!(UInt32Type),
        DataType::UInt64 => number!(UInt64Type),
        DataType::Float32 => format!("{:?}", array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => format!("{:?}", array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(..) => arrow::util::display::array_value_to_string(array, row).unwrap_or_default(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = arrow::util::display::array_value_to_string(array, row).unwrap_or_default();
            format!("'{}'", text.replace('\'', "''"))
        }
        DataType::Date32 => match array.as_primitive::<Date32Type>().value_as_date(row) {
            Some(d) => format!("DATE '{d}'"),
            None => "<date out of range>".into(),
        },
        DataType::Timestamp(unit, _) => timestamp(match unit {
            TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value_as_datetime(row),
            TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value_as_datetime(row),
            TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value_as_datetime(row),
            TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value_as_datetime(row),
        }),
        DataType::List(_) | DataType::LargeList(_) => {
            let list = arrow::compute::cast(&array.slice(row, 1), &DataType::new_list(DataType::Utf8, true));
            match list {
                Ok(list) => {
                    let items = list.as_list::<i32>().value(0);
                    let items: Vec<String> = (0..items.len()).map(|i| render(items.as_ref(), i)).collect();
                    format!("[{}]", items.join(", "))
                }
                Err(e) => format!("<list: {e}>"),
            }
        }
        other => format!("<{other}: {}>", arrow::util::display::array_value_to_string(array, row).unwrap_or_default()),
    }
}

/// Whether `actual` is the `expected` value: numbers compare as numbers (Flink's `4` is our
/// `4.0` when the types differ in precision only), timestamps without trailing zero fractions.
fn same(expected: &str, actual: &str) -> bool {
    if expected == actual {
        return true;
    }
    if let (Ok(e), Ok(a)) = (expected.parse::<f64>(), actual.parse::<f64>()) {
        return (e - a).abs() <= 1e-12 * e.abs().max(a.abs()).max(1.0);
    }
    let trim = |text: &str| -> String {
        match text.strip_prefix("TIMESTAMP '").and_then(|t| t.strip_suffix('\'')) {
            Some(t) if t.contains('.') => format!("TIMESTAMP '{}'", t.trim_end_matches('0').trim_end_matches('.')),
            _ => text.to_string(),
        }
    };
    trim(expected) == trim(actual)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flink_functions_match_the_reference() {
    let dir = TestDir::new("flink-functions");
    let tables = tables(&dir);
    let cases = read_cases();
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = evaluate(&tables, case).await;
        let failure = match (&case.expected, &outcome) {
            (Expected::Value(e), Ok(a)) if same(e, a) => None,
            (Expected::Error(e), Err(a)) if a.to_lowercase().contains(&e.to_lowercase()) => None,
            (Expected::Value(e), Ok(a)) => Some(format!("expected {e}, got {a}")),
            (Expected::Value(e), Err(a)) => Some(format!("expected {e}, failed: {a}")),
            (Expected::Error(e), Ok(a)) => Some(format!("expected an error with '{e}', got {a}")),
            (Expected::Error(e), Err(a)) => Some(format!("expected an error with '{e}', got the error: {a}")),
        };
        if let Some(failure) = failure {
            failures.push(format!("{REFERENCE}:{}: {}\n    {failure}", case.line, case.expression));
        }
    }
    eprintln!("{} cases, {} failed", cases.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Flink:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Whether `text` mentions `name` as a word (a function call or a bare `CURRENT_DATE`).
fn mentions(text: &str, name: &str) -> bool {
    let text = text.to_uppercase();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(name)
        .any(|(at, _)| !word(text[..at].chars().next_back()) && !word(text[at + name.len()..].chars().next()))
}

#[test]
fn every_supported_function_has_a_reference_case() {
    let cases = read_cases();
    let missing: Vec<&str> = FLINK_FUNCTIONS
        .iter()
        .filter(|f| f.is_supported() && f.kind() != Kind::Window)
        .filter(|f| {
            !cases.iter().any(|c| c.aggregate == (f.kind() == Kind::Aggregate) && mentions(&c.expression, f.name))
        })
        .map(|f| f.name)
        .collect();
    assert!(missing.is_empty(), "supported Flink functions without a case in {REFERENCE}: {missing:?}");
    let ours = FLINK_FUNCTIONS.iter().filter(|f| f.support == Support::Flink).count();
    eprintln!(
        "{} cases; {} functions supported ({ours} ours)",
        cases.len(),
        FLINK_FUNCTIONS.iter().filter(|f| f.is_supported()).count()
    );
}

#[test]
fn unsupported_functions_fail_the_plan_naming_them() {
    let dir = TestDir::new("flink-functions-unsupported");
    let tables = tables(&dir);
    let mut wrong = Vec::new();
    for function in FLINK_FUNCTIONS.iter().filter(|f| !f.is_supported()) {
        for call in [format!("{}()", function.name), format!("{}(i, s)", function.name)] {
            let sql = format!("{tables}SELECT {call} AS v FROM t;");
            match plan(&sql) {
                Ok(_) => wrong.push(format!("{call} planned")),
                Err(e) if e.message().starts_with(&format!("{} is not supported yet", function.name)) => {}
                Err(e) => wrong.push(format!("{call}: {}", describe_sql_error(&e))),
            }
        }
    }
    assert!(wrong.is_empty(), "unsupported functions not refused by name:\n{}", wrong.join("\n"));
}

#[test]
fn the_reference_table_parses() {
    assert!(Path::new(REFERENCE).exists());
    assert!(read_cases().len() > 100);
}
