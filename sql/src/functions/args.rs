//! Plumbing every function shares: argument types as Flink accepts them, literal arguments seen
//! at plan time, and arguments as arrays of the batch's length.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs};
use streamsql_engine::types::sql_name;

/// What one parameter takes, and the Arrow type its argument is coerced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Param {
    /// STRING (any Arrow string type) → `Utf8`.
    Str,
    /// Any integer type → `Int64`.
    Int,
    /// Any number → `Float64`.
    Num,
    /// TIMESTAMP (any precision, with or without zone) or DATE, kept as is.
    Time,
    /// `Time` or STRING (parsed as Flink parses timestamps).
    TimeOrStr,
    /// BOOLEAN.
    Bool,
}

impl Param {
    fn describe(self) -> &'static str {
        match self {
            Param::Str => "STRING",
            Param::Int => "INT",
            Param::Num => "numeric",
            Param::Time => "TIMESTAMP or DATE",
            Param::TimeOrStr => "TIMESTAMP, DATE or STRING",
            Param::Bool => "BOOLEAN",
        }
    }

    fn coerce(self, data_type: &DataType) -> Option<DataType> {
        use DataType::*;
        let null = *data_type == Null;
        match self {
            Param::Str if null || matches!(data_type, Utf8 | LargeUtf8 | Utf8View) => Some(Utf8),
            Param::Int if null || data_type.is_integer() => Some(Int64),
            Param::Num if null || data_type.is_numeric() => Some(Float64),
            Param::Time | Param::TimeOrStr if null => Some(Timestamp(TimeUnit::Millisecond, None)),
            Param::Time | Param::TimeOrStr if matches!(data_type, Timestamp(..) | Date32) => Some(data_type.clone()),
            Param::TimeOrStr if matches!(data_type, Utf8 | LargeUtf8 | Utf8View) => Some(Utf8),
            Param::Bool if null || *data_type == Boolean => Some(Boolean),
            _ => None,
        }
    }
}

/// Coerces `arg_types` to the first of `forms` (parameter lists) that takes them, or explains
/// which forms `name` has.
pub(super) fn coerce(name: &str, arg_types: &[DataType], forms: &[&[Param]]) -> Result<Vec<DataType>> {
    for form in forms.iter().filter(|form| form.len() == arg_types.len()) {
        let coerced: Option<Vec<DataType>> = form.iter().zip(arg_types).map(|(p, t)| p.coerce(t)).collect();
        if let Some(types) = coerced {
            return Ok(types);
        }
    }
    let given = arg_types.iter().map(sql_name).collect::<Vec<_>>().join(", ");
    let takes = forms
        .iter()
        .map(|form| format!("{name}({})", form.iter().map(|p| p.describe()).collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join(" or ");
    plan_err!("{name} takes {takes}, not {name}({given})")
}

/// A nullable return field named after the function.
pub(super) fn field(name: &str, data_type: DataType) -> FieldRef {
    Arc::new(Field::new(name, data_type, true))
}

/// Argument `i` when it is a literal: `Some(None)` for a NULL literal.
pub(super) fn literal<'a>(args: &ReturnFieldArgs<'a>, i: usize) -> Option<&'a ScalarValue> {
    args.scalar_arguments.get(i).copied().flatten()
}

/// Argument `i` when it is a string literal (`Some(None)` for NULL).
pub(super) fn literal_str<'a>(args: &ReturnFieldArgs<'a>, i: usize) -> Option<Option<&'a str>> {
    match literal(args, i)? {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => Some(s.as_deref()),
        ScalarValue::Null => Some(None),
        _ => None,
    }
}

/// The arguments of one call, each as an array of the batch's length.
pub(super) struct Arrays {
    arrays: Vec<ArrayRef>,
    rows: usize,
}

impl Arrays {
    pub(super) fn new(args: &ScalarFunctionArgs) -> Result<Self> {
        let rows = args.number_rows;
        let arrays = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<Vec<_>>>()?;
        Ok(Self { arrays, rows })
    }

    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    pub(super) fn len(&self) -> usize {
        self.arrays.len()
    }

    pub(super) fn get(&self, i: usize) -> &ArrayRef {
        &self.arrays[i]
    }

    /// Whether any argument is NULL in `row` (the row's result is then NULL).
    pub(super) fn any_null(&self, row: usize) -> bool {
        self.arrays.iter().any(|a| a.is_null(row))
    }

    pub(super) fn str(&self, i: usize) -> Result<&StringArray> {
        match self.arrays[i].as_string_opt::<i32>() {
            Some(a) => Ok(a),
            None => exec_err!("argument {} is {}, expected STRING", i + 1, self.arrays[i].data_type()),
        }
    }

    pub(super) fn int(&self, i: usize) -> Result<&Int64Array> {
        match self.arrays[i].as_primitive_opt() {
            Some(a) => Ok(a),
            None => exec_err!("argument {} is {}, expected BIGINT", i + 1, self.arrays[i].data_type()),
        }
    }

    pub(super) fn float(&self, i: usize) -> Result<&Float64Array> {
        match self.arrays[i].as_primitive_opt() {
            Some(a) => Ok(a),
            None => exec_err!("argument {} is {}, expected DOUBLE", i + 1, self.arrays[i].data_type()),
        }
    }

    pub(super) fn bool(&self, i: usize) -> Result<&BooleanArray> {
        match self.arrays[i].as_boolean_opt() {
            Some(a) => Ok(a),
            None => exec_err!("argument {} is {}, expected BOOLEAN", i + 1, self.arrays[i].data_type()),
        }
    }
}

/// A condition with NULL as FALSE (arrow's `prep_null_mask_filter` wants a null buffer).
pub(super) fn nulls_as_false(condition: &BooleanArray) -> BooleanArray {
    match condition.nulls() {
        Some(nulls) => BooleanArray::new(condition.values() & nulls.inner(), None),
        None => condition.clone(),
    }
}

/// Wraps a result array.
pub(super) fn array(result: impl Array + 'static) -> Result<ColumnarValue> {
    Ok(ColumnarValue::Array(Arc::new(result)))
}

/// The last pattern compiled and what it compiled to: a literal pattern compiles once per batch,
/// a pattern column once per distinct run of values.
pub(super) struct Compiled<T> {
    last: Option<(String, T)>,
}

impl<T> Compiled<T> {
    pub(super) fn new() -> Self {
        Self { last: None }
    }

    /// The compiled form of `text`, compiling it if it differs from the last one.
    pub(super) fn get<E>(&mut self, text: &str, compile: impl FnOnce(&str) -> Result<T, E>) -> Result<&T, E> {
        let same = self.last.as_ref().is_some_and(|(last, _)| last == text);
        let entry = match self.last.take() {
            Some(entry) if same => entry,
            _ => (text.to_string(), compile(text)?),
        };
        Ok(&self.last.insert(entry).1)
    }
}
