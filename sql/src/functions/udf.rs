//! `CREATE FUNCTION`: user-defined functions.
//!
//! - `LANGUAGE PYTHON` (`AS 'module.function'`): the user's Python, run by [`super::python`].
//! - `LANGUAGE JAVA` (the default, as in Flink) names a JVM class, which streamsql cannot load
//!   (it has no JVM). The classes published SQL names, such as Nexmark's
//!   `com.github.nexmark.flink.udf.CountChar`, are built in under their class names, so those
//!   scripts run as published; any other class is refused, saying how to write it in Python.

use arrow::array::{Array, Int64Builder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::args::{Arrays, Param, array, coerce};

/// JVM classes streamsql implements natively: (class name, what it does).
pub const JAVA_CLASSES: &[(&str, &str)] = &[(
    "com.github.nexmark.flink.udf.CountChar",
    "count_char(s, c): how many bytes of s equal the first byte of c (0 for a NULL s), as Nexmark's UDF",
)];

/// The built-in implementation of JVM class `class`, registered as `name`.
pub fn java_class(class: &str, name: &str) -> Option<ScalarUDF> {
    match class {
        "com.github.nexmark.flink.udf.CountChar" => Some(ScalarUDF::new_from_impl(CountChar {
            name: name.to_string(),
            signature: Signature::user_defined(Volatility::Immutable),
        })),
        _ => None,
    }
}

/// Nexmark's `CountChar`: `eval(StringData s, StringData character)` counts the bytes of `s`
/// equal to the first byte of `character`; a NULL `s` counts 0.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CountChar {
    name: String,
    signature: Signature,
}

impl ScalarUDFImpl for CountChar {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(&self.name.to_uppercase(), arg_types, &[&[Param::Str, Param::Str]])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let strings = arrays.str(0)?;
        let characters = arrays.str(1)?;
        let mut out = Int64Builder::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            if characters.is_null(row) {
                out.append_null();
                continue;
            }
            let Some(&wanted) = characters.value(row).as_bytes().first() else {
                return exec_err!("{}: the character to count is empty", self.name);
            };
            let count = if strings.is_null(row) {
                0
            } else {
                strings.value(row).bytes().filter(|b| *b == wanted).count() as i64
            };
            out.append_value(count);
        }
        array(out.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, AsArray, StringArray};
    use arrow::datatypes::{Field, Int64Type};
    use datafusion::config::ConfigOptions;

    use super::*;

    #[test]
    fn count_char_counts_bytes_as_nexmarks_java_class() {
        let udf = java_class("com.github.nexmark.flink.udf.CountChar", "count_char").expect("built in");
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("banana"), None, Some("héé"), Some("")]));
        // Java compares bytes: the first byte of "é" (0xC3) is found once per "é".
        let c: ArrayRef = Arc::new(StringArray::from(vec![Some("an"), Some("a"), Some("é"), None]));
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(s), ColumnarValue::Array(c)],
            arg_fields: vec![
                Arc::new(Field::new("s", DataType::Utf8, true)),
                Arc::new(Field::new("c", DataType::Utf8, true)),
            ],
            number_rows: 4,
            return_field: Arc::new(Field::new("n", DataType::Int64, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(counts) = udf.invoke_with_args(args).expect("runs") else { panic!("an array") };
        let counts = counts.as_primitive::<Int64Type>();
        assert_eq!(counts.iter().collect::<Vec<_>>(), vec![Some(3), Some(0), Some(2), None]);
    }
}
