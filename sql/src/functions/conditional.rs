//! `IF`, `GREATEST`, `LEAST`, `IS_ALPHA`, `IS_DECIMAL`, `IS_DIGIT`.
//!
//! `IF` is evaluated here only as a fallback: the analyzer rewrites it to `CASE` (see
//! [`super::rewrite`]) so that, as in Flink, only the chosen branch runs (`IF(n = 0, 0, x / n)`
//! does not divide by zero). `GREATEST` and `LEAST` are NULL when any argument is, as in Flink
//! (DataFusion's skip NULLs).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, BooleanBuilder};
use arrow::compute::kernels::cmp::{gt, lt};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{is_null, nullif, or};
use arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::type_coercion::binary::type_union_resolution;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::args::{Arrays, Param, array, coerce, nulls_as_false};

pub(super) fn functions() -> Vec<ScalarUDF> {
    let f = |name: &'static str, kind: Kind| {
        ScalarUDF::new_from_impl(Conditional { name, kind, signature: Signature::user_defined(Volatility::Immutable) })
    };
    vec![
        f("if", Kind::If),
        f("greatest", Kind::Greatest),
        f("least", Kind::Least),
        f("is_alpha", Kind::IsAlpha),
        f("is_decimal", Kind::IsDecimal),
        f("is_digit", Kind::IsDigit),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    If,
    Greatest,
    Least,
    IsAlpha,
    IsDecimal,
    IsDigit,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Conditional {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

/// The one type all of `types` convert to, as for `CASE` and `COALESCE`.
fn common_type(name: &str, types: &[DataType]) -> Result<DataType> {
    match type_union_resolution(types) {
        Some(t) => Ok(t),
        None => {
            let given = types.iter().map(streamsql_engine::types::sql_name).collect::<Vec<_>>().join(", ");
            plan_err!("{name}: the values ({given}) have no common type; CAST them to one")
        }
    }
}

impl ScalarUDFImpl for Conditional {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name.to_uppercase();
        match self.kind {
            Kind::If => match arg_types {
                [condition, a, b] => {
                    let condition = coerce(&name, std::slice::from_ref(condition), &[&[Param::Bool]])?;
                    let value = common_type(&name, &[a.clone(), b.clone()])?;
                    Ok(vec![condition[0].clone(), value.clone(), value])
                }
                _ => plan_err!("IF takes three arguments: IF(condition, true_value, false_value)"),
            },
            Kind::Greatest | Kind::Least => {
                if arg_types.is_empty() {
                    return plan_err!("{name} takes at least one argument");
                }
                let value = common_type(&name, arg_types)?;
                Ok(vec![value; arg_types.len()])
            }
            Kind::IsAlpha | Kind::IsDecimal | Kind::IsDigit => coerce(&name, arg_types, &[&[Param::Str]]),
        }
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::If => arg_types.get(1).cloned().unwrap_or(DataType::Null),
            Kind::Greatest | Kind::Least => arg_types.first().cloned().unwrap_or(DataType::Null),
            Kind::IsAlpha | Kind::IsDecimal | Kind::IsDigit => DataType::Boolean,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        match self.kind {
            Kind::If => {
                // A NULL condition chooses the false branch.
                let condition = nulls_as_false(arrays.bool(0)?);
                Ok(ColumnarValue::Array(zip(&condition, arrays.get(1), arrays.get(2))?))
            }
            Kind::Greatest | Kind::Least => {
                let mut result: ArrayRef = Arc::clone(arrays.get(0));
                let mut any_null: BooleanArray = is_null(arrays.get(0))?;
                for i in 1..arrays.len() {
                    let next = arrays.get(i);
                    let better = if self.kind == Kind::Greatest { gt(next, &result)? } else { lt(next, &result)? };
                    result = zip(&nulls_as_false(&better), next, &result)?;
                    any_null = or(&any_null, &is_null(next)?)?;
                }
                Ok(ColumnarValue::Array(nullif(&result, &any_null)?))
            }
            Kind::IsAlpha | Kind::IsDecimal | Kind::IsDigit => {
                let texts = arrays.str(0)?;
                let test: fn(&str) -> bool = match self.kind {
                    Kind::IsAlpha => |s| !s.is_empty() && s.chars().all(char::is_alphabetic),
                    Kind::IsDigit => |s| !s.is_empty() && s.chars().all(char::is_numeric),
                    _ => is_decimal,
                };
                let mut out = BooleanBuilder::with_capacity(arrays.rows());
                for row in 0..arrays.rows() {
                    // FALSE, not NULL, for NULL, as in Flink.
                    out.append_value(texts.is_valid(row) && test(texts.value(row)));
                }
                array(out.finish())
            }
        }
    }
}

/// Whether `text` is a number as Java's `BigDecimal` reads one: `-1`, `+1.5`, `.5`, `5.`, `1e3`.
fn is_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}
