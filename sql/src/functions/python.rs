//! Python functions: `CREATE FUNCTION name AS 'module.function' LANGUAGE PYTHON`.
//!
//! As in PyFlink, the user's Python code runs in Python processes beside the engine, not inside
//! it. Each function keeps a pool of worker processes (`python3 -c` [the driver](DRIVER)), one
//! per task evaluating it at a time; a batch of rows goes over in one JSON line and comes back
//! as one, so a call costs one round trip per batch:
//!
//! ```text
//!  CREATE FUNCTION ─▶ a worker imports module.function, says what it is ─▶ ScalarUDF / AggregateUDF
//!  scalar call     ─▶ {"call": [[args], ...]}            ─▶ {"ok": [result, ...]}
//!  aggregate       ─▶ rows kept per group (as JSON text, the accumulator's state, so panes
//!                     merge and checkpoints keep it); when the group is emitted:
//!                     {"aggregate": [[[args], ...]]}     ─▶ create_accumulator, accumulate each
//!                                                           row, get_value
//! ```
//!
//! Arguments are passed as JSON: integers, floats, strings, booleans and NULL as themselves,
//! other types as their text. The result type comes from the function's return annotation
//! (`-> int`: BIGINT, `float`: DOUBLE, `str`: STRING, `bool`: BOOLEAN) or a `result_type`
//! attribute naming a SQL type; a result that does not fit it fails the pipeline, naming the
//! function. An exception in the user's code fails the pipeline with Python's message.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringArray,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use serde_json::{Value, json};

/// The Python side: loads the function and answers requests (see the module docs).
pub const DRIVER: &str = include_str!("python_driver.py");

/// Where Python is and where the user's modules are: `SET 'python.executable'` and
/// `SET 'python.files'`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PythonConfig {
    pub executable: String,
    /// Directories put first on the module path (a `.py` file stands for its directory).
    pub paths: Vec<String>,
}

impl Default for PythonConfig {
    fn default() -> Self {
        Self { executable: "python3".into(), paths: Vec::new() }
    }
}

/// A Python function registered under `name`, scalar or aggregate.
pub enum PythonFunction {
    Scalar(ScalarUDF),
    Aggregate(AggregateUDF),
}

/// Imports `identifier` (`module.function`) in a worker and makes a function of it named `name`.
pub fn load(name: &str, identifier: &str, config: &PythonConfig) -> std::result::Result<PythonFunction, String> {
    let mut workers = Workers {
        name: name.to_string(),
        identifier: identifier.to_string(),
        result: DataType::Null,
        config: config.clone(),
        idle: Mutex::new(Vec::new()),
    };
    let (worker, description) = workers.spawn()?;
    workers.put_back(worker);
    let kind = description["kind"].as_str().unwrap_or_default();
    let args = description["args"].as_u64().unwrap_or(0) as usize;
    let varargs = description["varargs"].as_bool().unwrap_or(false);
    let result = match description["result"].as_str() {
        Some(declared) => result_type(declared).ok_or_else(|| {
            format!(
                "Python function '{identifier}' declares the result type {declared}, which streamsql cannot take \
                 from Python yet (BIGINT, INT, DOUBLE, FLOAT, STRING or BOOLEAN)"
            )
        })?,
        None => {
            return Err(format!(
                "Python function '{identifier}' does not say what it returns: annotate it (def f(...) -> int, \
                 float, str or bool) or set its result_type attribute to a SQL type ('BIGINT')"
            ));
        }
    };
    let signature = match (args, varargs) {
        (_, true) => Signature::variadic_any(Volatility::Volatile),
        (0, false) => Signature::nullary(Volatility::Volatile),
        (n, false) => Signature::any(n, Volatility::Volatile),
    };
    if kind == "aggregate" && args == 0 && !varargs {
        return Err(format!(
            "Python aggregate '{identifier}' takes no argument in accumulate(accumulator, ...); an aggregate needs at \
             least one (the value it aggregates)"
        ));
    }
    workers.result = result;
    let function = Python { name: name.to_string(), signature, workers: Arc::new(workers) };
    match kind {
        "scalar" => Ok(PythonFunction::Scalar(ScalarUDF::new_from_impl(function))),
        "aggregate" => Ok(PythonFunction::Aggregate(AggregateUDF::new_from_impl(function))),
        other => Err(format!("Python function '{identifier}': unknown kind {other}")),
    }
}

/// Whether `udaf` is a Python aggregate (it keeps its groups' rows until they are emitted, so it
/// can only run where groups end: windows).
pub fn is_python_aggregate(udaf: &AggregateUDF) -> bool {
    let function: &dyn std::any::Any = udaf.inner().as_ref();
    function.downcast_ref::<Python>().is_some()
}

/// The SQL types a Python result can be read as.
fn result_type(declared: &str) -> Option<DataType> {
    Some(match declared.trim().to_ascii_uppercase().as_str() {
        "BIGINT" => DataType::Int64,
        "INT" | "INTEGER" => DataType::Int32,
        "DOUBLE" | "DOUBLE PRECISION" => DataType::Float64,
        "FLOAT" | "REAL" => DataType::Float32,
        "STRING" | "VARCHAR" => DataType::Utf8,
        "BOOLEAN" => DataType::Boolean,
        _ => return None,
    })
}

/// The worker processes of one function.
#[derive(Debug)]
struct Workers {
    name: String,
    identifier: String,
    /// The declared result type (until the function is described: `Null`).
    result: DataType,
    config: PythonConfig,
    idle: Mutex<Vec<Worker>>,
}

impl Workers {
    /// Starts a worker that has loaded the function; with what the function said it is.
    fn spawn(&self) -> std::result::Result<(Worker, Value), String> {
        let mut command = Command::new(&self.config.executable);
        command.arg("-c").arg(DRIVER).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        // Its own process group: Ctrl-C at the shell (which cancels a query) does not reach it.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start Python ('{}': {e}); install python3 or SET 'python.executable' to one",
                self.config.executable
            )
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("cannot talk to the Python process".into());
        };
        let mut worker = Worker { child, stdin, stdout: BufReader::new(stdout) };
        let paths: Vec<String> = self.config.paths.iter().map(|p| module_dir(p)).collect();
        let description = worker
            .exchange(&json!({"load": self.identifier, "paths": paths}))
            .map_err(|e| format!("Python function '{}': {e}", self.identifier))?;
        Ok((worker, description))
    }

    fn put_back(&self, worker: Worker) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(worker);
        }
    }

    /// Sends `request` to an idle worker (started if there is none) and returns its answer. A
    /// worker that died while idle is replaced; one that dies on the request is retried once on
    /// a fresh worker (the request is a pure function of its rows).
    fn request(&self, request: &Value) -> Result<Value> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let idle = idle.and_then(|mut worker| worker.alive().then_some(worker));
            let mut worker = match idle {
                Some(worker) => worker,
                None => match self.spawn() {
                    Ok((worker, _)) => worker,
                    Err(e) => return exec_err!("{e}"),
                },
            };
            match worker.exchange(request) {
                Ok(answer) => {
                    self.put_back(worker);
                    return Ok(answer);
                }
                Err(Failure::Python(message)) => {
                    self.put_back(worker);
                    return exec_err!("Python function {} ('{}') failed: {message}", self.name, self.identifier);
                }
                // The worker is dropped (and killed).
                Err(Failure::Process(message)) if attempts > 1 => {
                    return exec_err!("Python function {} ('{}'): {message}", self.name, self.identifier);
                }
                Err(Failure::Process(_)) => continue,
            }
        }
    }
}

/// `python.files` names files or directories; modules are found in the directory.
fn module_dir(path: &str) -> String {
    let path = std::path::Path::new(path);
    let dir = if path.extension().is_some_and(|e| e == "py") { path.parent().unwrap_or(path) } else { path };
    let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()).to_string_lossy().into_owned()
}

/// One Python process, killed when dropped.
#[derive(Debug)]
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

enum Failure {
    /// The user's code raised (the worker is fine).
    Python(String),
    /// The process died or said something unreadable.
    Process(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Python(m) | Failure::Process(m) => f.write_str(m),
        }
    }
}

impl Worker {
    /// Whether the process still runs.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn exchange(&mut self, request: &Value) -> std::result::Result<Value, Failure> {
        let lost = |e: std::io::Error| Failure::Process(format!("the Python process stopped answering ({e})"));
        let mut line = serde_json::to_string(request).map_err(|e| Failure::Process(e.to_string()))?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).map_err(lost)?;
        self.stdin.flush().map_err(lost)?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer).map_err(lost)? == 0 {
            return Err(Failure::Process("the Python process exited".into()));
        }
        let mut answer: Value = serde_json::from_str(&answer)
            .map_err(|e| Failure::Process(format!("unreadable answer from the Python process: {e}")))?;
        if let Some(error) = answer.get("error") {
            return Err(Failure::Python(error.as_str().unwrap_or("unknown error").to_string()));
        }
        Ok(answer["ok"].take())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python function as DataFusion sees it: scalar or aggregate by how it is registered.
#[derive(Debug)]
struct Python {
    name: String,
    signature: Signature,
    workers: Arc<Workers>,
}

impl PartialEq for Python {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.workers, &other.workers)
    }
}

impl Eq for Python {}

impl std::hash::Hash for Python {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.workers.identifier.hash(state);
    }
}

impl ScalarUDFImpl for Python {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.workers.result.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<Vec<_>>>()?;
        if rows == 0 {
            return Ok(ColumnarValue::Array(arrow::array::new_empty_array(&self.workers.result)));
        }
        let answer = self.workers.request(&json!({ "call": json_rows(&arrays, rows)? }))?;
        let values = answer.as_array().map(Vec::as_slice).unwrap_or_default();
        if values.len() != rows {
            return exec_err!("Python function {} gave {} results for {rows} rows", self.name, values.len());
        }
        Ok(ColumnarValue::Array(self.workers.results(values)?))
    }
}

impl Workers {
    /// Python's results as an array of the declared result type.
    fn results(&self, values: &[Value]) -> Result<ArrayRef> {
        let wrong = |value: &Value| {
            exec_err!(
                "Python function {} returned {value}, which is not a {} (its declared result type)",
                self.name,
                crate::types::sql_name(&self.result)
            )
        };
        macro_rules! build {
            ($builder:expr, $read:expr) => {{
                let mut builder = $builder;
                for value in values {
                    match value {
                        Value::Null => builder.append_null(),
                        other => match $read(other) {
                            Some(v) => builder.append_value(v),
                            None => return wrong(other),
                        },
                    }
                }
                Arc::new(builder.finish()) as ArrayRef
            }};
        }
        Ok(match &self.result {
            DataType::Int64 => build!(Int64Builder::with_capacity(values.len()), |v: &Value| v.as_i64()),
            DataType::Int32 => build!(Int32Builder::with_capacity(values.len()), |v: &Value| v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())),
            DataType::Float64 => build!(Float64Builder::with_capacity(values.len()), float_from_wire),
            DataType::Float32 => {
                build!(Float32Builder::with_capacity(values.len()), |v: &Value| float_from_wire(v).map(|f| f as f32))
            }
            DataType::Boolean => build!(BooleanBuilder::with_capacity(values.len()), |v: &Value| v.as_bool()),
            DataType::Utf8 => build!(StringBuilder::new(), |v: &Value| v.as_str().map(str::to_string)),
            other => return exec_err!("Python function {}: result type {other} is not supported", self.name),
        })
    }
}

/// JSON has no NaN or infinities: both sides write them as `{"float": "nan" | "inf" | "-inf"}`.
fn float_to_wire(f: f64) -> Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => json!({"float": "nan"}),
        None => json!({"float": if f > 0.0 { "inf" } else { "-inf" }}),
    }
}

fn float_from_wire(value: &Value) -> Option<f64> {
    match value {
        Value::Object(tagged) if tagged.len() == 1 => match tagged.get("float")?.as_str()? {
            "nan" => Some(f64::NAN),
            "inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        other => other.as_f64(),
    }
}

/// Rows of arguments as JSON values: numbers, strings, booleans and NULL as themselves, other
/// types as their text.
fn json_rows(arrays: &[ArrayRef], rows: usize) -> Result<Vec<Vec<Value>>> {
    let mut out: Vec<Vec<Value>> = (0..rows).map(|_| Vec::with_capacity(arrays.len())).collect();
    for array in arrays {
        let values = json_values(array)?;
        for (row, value) in out.iter_mut().zip(values) {
            row.push(value);
        }
    }
    Ok(out)
}

fn json_values(array: &ArrayRef) -> Result<Vec<Value>> {
    use arrow::datatypes::*;
    let n = array.len();
    let each = |f: &dyn Fn(usize) -> Value| (0..n).map(|i| if array.is_null(i) { Value::Null } else { f(i) }).collect();
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; n],
        DataType::Boolean => each(&|i| Value::from(array.as_boolean().value(i))),
        DataType::Int8 => each(&|i| Value::from(array.as_primitive::<Int8Type>().value(i))),
        DataType::Int16 => each(&|i| Value::from(array.as_primitive::<Int16Type>().value(i))),
        DataType::Int32 => each(&|i| Value::from(array.as_primitive::<Int32Type>().value(i))),
        DataType::Int64 => each(&|i| Value::from(array.as_primitive::<Int64Type>().value(i))),
        DataType::UInt8 => each(&|i| Value::from(array.as_primitive::<UInt8Type>().value(i))),
        DataType::UInt16 => each(&|i| Value::from(array.as_primitive::<UInt16Type>().value(i))),
        DataType::UInt32 => each(&|i| Value::from(array.as_primitive::<UInt32Type>().value(i))),
        DataType::UInt64 => each(&|i| Value::from(array.as_primitive::<UInt64Type>().value(i))),
        DataType::Float32 => each(&|i| float_to_wire(f64::from(array.as_primitive::<Float32Type>().value(i)))),
        DataType::Float64 => each(&|i| float_to_wire(array.as_primitive::<Float64Type>().value(i))),
        DataType::Utf8 => each(&|i| Value::from(array.as_string::<i32>().value(i))),
        DataType::LargeUtf8 => each(&|i| Value::from(array.as_string::<i64>().value(i))),
        DataType::Utf8View => each(&|i| Value::from(array.as_string_view().value(i))),
        _ => {
            let text = arrow::compute::cast(array, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            (0..n).map(|i| if text.is_null(i) { Value::Null } else { Value::from(text.value(i)) }).collect()
        }
    })
}

impl AggregateUDFImpl for Python {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.workers.result.clone())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PythonAccumulator { workers: self.workers.clone(), rows: Vec::new(), bytes: 0 }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format_state_name(args.name, "rows"), DataType::Utf8, true))])
    }
}

/// A group's rows until the group is emitted; its state is the rows as one JSON text.
#[derive(Debug)]
struct PythonAccumulator {
    workers: Arc<Workers>,
    rows: Vec<Vec<Value>>,
    bytes: usize,
}

impl Accumulator for PythonAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map(|a| a.len()).unwrap_or(0);
        for row in json_rows(values, rows)? {
            self.bytes += row.iter().map(|v| v.to_string().len() + 8).sum::<usize>();
            self.rows.push(row);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let answer = self.workers.request(&json!({ "aggregate": [self.rows] }))?;
        let value = answer.as_array().and_then(|a| a.first()).cloned().unwrap_or(Value::Null);
        let array = self.workers.results(&[value])?;
        ScalarValue::try_from_array(&array, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.bytes
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let text =
            serde_json::to_string(&self.rows).map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
        Ok(vec![ScalarValue::Utf8(Some(text))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(texts) = states.first().and_then(|s| s.as_any().downcast_ref::<StringArray>()) else {
            return plan_err!("Python aggregate {}: unexpected state", self.workers.name);
        };
        for text in texts.iter().flatten() {
            let rows: Vec<Vec<Value>> =
                serde_json::from_str(text).map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
            self.bytes += text.len();
            self.rows.extend(rows);
        }
        Ok(())
    }
}
