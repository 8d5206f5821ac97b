//! Arithmetic functions whose Flink meaning differs from DataFusion's, or that DataFusion lacks:
//! `MOD`, `LOG` (natural by default; DataFusion's is base 10), `POWER` (always DOUBLE), `SIGN`,
//! `E`, `BIN`, `HEX`, `ROUND` and `TRUNCATE` (on the decimal a DOUBLE prints as, as Flink's
//! `BigDecimal.valueOf` does: `ROUND(125.315, 2)` is 125.32, where rounding the binary value gives
//! 125.31), and `CEILING` as another name of DataFusion's `CEIL`.

use arrow::array::{Array, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    ColumnarValue, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Arrays, Param, array, coerce};

use Param::{Int, Num, Str};

pub(super) fn functions() -> Vec<ScalarUDF> {
    let f = |name: &'static str, kind: Kind| {
        ScalarUDF::new_from_impl(MathFunction { name, kind, signature: Signature::user_defined(Volatility::Immutable) })
    };
    vec![
        f("mod", Kind::Mod),
        f("log", Kind::Log),
        f("power", Kind::Power),
        f("sign", Kind::Sign),
        f("e", Kind::E),
        f("bin", Kind::Bin),
        f("hex", Kind::Hex),
        f("truncate", Kind::Truncate),
        f("round", Kind::Round),
        datafusion::functions::math::ceil().as_ref().clone().with_aliases(["ceiling"]),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Mod,
    Log,
    Power,
    Sign,
    E,
    Bin,
    Hex,
    Truncate,
    Round,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MathFunction {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for MathFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name.to_uppercase();
        match self.kind {
            Kind::Mod => {
                let [a, b] = arg_types else {
                    return plan_err!("MOD takes two numbers, MOD(numeric1, numeric2)");
                };
                let numeric = |t: &DataType| t.is_numeric() || *t == DataType::Null;
                if !numeric(a) || !numeric(b) {
                    return coerce(&name, arg_types, &[&[Num, Num]]);
                }
                let (a, b) = BinaryTypeCoercer::new(a, &Operator::Modulo, b).get_input_types()?;
                Ok(vec![a, b])
            }
            Kind::Log => coerce(&name, arg_types, &[&[Num], &[Num, Num]]),
            Kind::Power => coerce(&name, arg_types, &[&[Num, Num]]),
            Kind::Sign => coerce(&name, arg_types, &[&[Int], &[Num]]),
            Kind::E => coerce(&name, arg_types, &[&[]]),
            Kind::Bin => coerce(&name, arg_types, &[&[Int]]),
            Kind::Hex => coerce(&name, arg_types, &[&[Int], &[Str]]),
            Kind::Truncate | Kind::Round => coerce(&name, arg_types, &[&[Int], &[Num], &[Int, Int], &[Num, Int]]),
        }
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Mod => match arg_types {
                [a, b] => BinaryTypeCoercer::new(a, &Operator::Modulo, b).get_result_type()?,
                _ => return plan_err!("MOD takes two numbers"),
            },
            Kind::Sign | Kind::Truncate | Kind::Round => arg_types.first().cloned().unwrap_or(DataType::Float64),
            Kind::Bin | Kind::Hex => DataType::Utf8,
            Kind::Log | Kind::Power | Kind::E => DataType::Float64,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.kind == Kind::E {
            return Ok(ColumnarValue::Scalar(ScalarValue::Float64(Some(std::f64::consts::E))));
        }
        let arrays = Arrays::new(&args)?;
        if self.kind == Kind::Mod {
            // Java's remainder: the sign of the dividend; integer MOD by zero fails, as in Flink.
            let result = arrow::compute::kernels::numeric::rem(arrays.get(0), arrays.get(1))?;
            return Ok(ColumnarValue::Array(result));
        }
        let rows = arrays.rows();
        let integers = arrays.get(0).data_type() == &DataType::Int64;
        match self.kind {
            Kind::Bin | Kind::Hex => {
                let mut out = StringBuilder::with_capacity(rows, rows * 8);
                for row in 0..rows {
                    if arrays.any_null(row) {
                        out.append_null();
                    } else if integers {
                        // Java's Long.toBinaryString / toHexString: two's complement.
                        let n = arrays.int(0)?.value(row) as u64;
                        out.append_value(if self.kind == Kind::Bin { format!("{n:b}") } else { format!("{n:X}") });
                    } else {
                        let hex: String = arrays.str(0)?.value(row).bytes().map(|b| format!("{b:02X}")).collect();
                        out.append_value(hex);
                    }
                }
                array(out.finish())
            }
            Kind::Sign | Kind::Truncate | Kind::Round if integers => {
                let mut out = Int64Builder::with_capacity(rows);
                for row in 0..rows {
                    if arrays.any_null(row) {
                        out.append_null();
                        continue;
                    }
                    let n = arrays.int(0)?.value(row);
                    let places = if arrays.len() == 2 { arrays.int(1)?.value(row) } else { 0 };
                    out.append_value(match self.kind {
                        Kind::Sign => n.signum(),
                        Kind::Round => match round_integer(n, places) {
                            Some(rounded) => rounded,
                            None => return exec_err!("ROUND({n}, {places}) overflows BIGINT"),
                        },
                        _ => truncate_integer(n, places),
                    });
                }
                array(out.finish())
            }
            _ => {
                let mut out = Float64Builder::with_capacity(rows);
                for row in 0..rows {
                    if arrays.any_null(row) {
                        out.append_null();
                        continue;
                    }
                    let x = arrays.float(0)?.value(row);
                    let value = match self.kind {
                        Kind::Log if arrays.len() == 2 => arrays.float(1)?.value(row).ln() / x.ln(),
                        Kind::Log => x.ln(),
                        Kind::Power => x.powf(arrays.float(1)?.value(row)),
                        Kind::Sign if x == 0.0 || x.is_nan() => x,
                        Kind::Sign => x.signum(),
                        Kind::Truncate | Kind::Round => {
                            let places = if arrays.len() == 2 { arrays.int(1)?.value(row) } else { 0 };
                            round_decimal(x, places, self.kind == Kind::Round)
                        }
                        other => return exec_err!("{other:?} does not return a DOUBLE"),
                    };
                    out.append_value(value);
                }
                array(out.finish())
            }
        }
    }
}

/// `TRUNCATE(n, places)` of an integer: negative places zero the digits left of the point.
fn truncate_integer(n: i64, places: i64) -> i64 {
    if places >= 0 {
        return n;
    }
    match 10i64.checked_pow(places.unsigned_abs().min(u32::MAX as u64) as u32) {
        Some(scale) => n / scale * scale,
        None => 0,
    }
}

/// `ROUND(n, places)` of an integer: half away from zero at a negative number of places.
fn round_integer(n: i64, places: i64) -> Option<i64> {
    if places >= 0 {
        return Some(n);
    }
    let Some(scale) = 10i64.checked_pow(places.unsigned_abs().min(u32::MAX as u64) as u32) else {
        return Some(0);
    };
    let magnitude = (n.unsigned_abs().checked_add(scale as u64 / 2)? / scale as u64).checked_mul(scale as u64)?;
    let magnitude = i64::try_from(magnitude).ok()?;
    Some(if n < 0 { -magnitude } else { magnitude })
}

/// `x` rounded (half up) or truncated to `places` decimals, working on the shortest decimal that
/// prints as `x`, as Java's `BigDecimal.valueOf(x).setScale(places, HALF_UP | DOWN)` does.
fn round_decimal(x: f64, places: i64, half_up: bool) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    // Shortest round-trip digits: 125.315 → "1.25315e2".
    let text = format!("{:e}", x.abs());
    let Some((mantissa, exponent)) = text.split_once('e') else {
        return x;
    };
    let Ok(exponent) = exponent.parse::<i64>() else {
        return x;
    };
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
    let places = places.clamp(-400, 400);
    // Digits kept: those before the point plus `places` after it.
    let keep = exponent + 1 + places;
    if keep >= digits.len() as i64 {
        return x;
    }
    let mut kept: i128 = 0;
    for digit in &digits[..keep.max(0) as usize] {
        kept = kept * 10 + i128::from(*digit);
    }
    let next = if keep >= 0 { digits[keep as usize] } else { 0 };
    if half_up && next >= 5 {
        kept += 1;
    }
    let magnitude: f64 = format!("{kept}e{}", -places).parse().unwrap_or(0.0);
    if magnitude == 0.0 { 0.0 } else { magnitude.copysign(x) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_the_printed_decimal() {
        assert_eq!(round_decimal(125.315, 2, true), 125.32);
        assert_eq!(round_decimal(-125.315, 2, true), -125.32);
        assert_eq!(round_decimal(0.5, 0, true), 1.0);
        assert_eq!(round_decimal(0.04, 0, true), 0.0);
        assert_eq!(round_decimal(1.5, 3, true), 1.5);
        assert_eq!(round_decimal(125.0, -1, true), 130.0);
        assert_eq!(round_decimal(0.29, 2, false), 0.29);
        assert_eq!(round_decimal(42.324, 2, false), 42.32);
        assert_eq!(round_decimal(-42.324, 0, false), -42.0);
        assert_eq!(round_integer(125, -1), Some(130));
        assert_eq!(round_integer(-125, -1), Some(-130));
        assert_eq!(round_integer(i64::MAX, -1), None);
        assert_eq!(truncate_integer(129, -1), 120);
    }
}
