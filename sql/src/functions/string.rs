//! String functions whose Flink meaning differs from DataFusion's, or that DataFusion lacks:
//! `SUBSTR`/`SUBSTRING`, `LEFT`, `RIGHT`, `LPAD`, `RPAD`, `LOCATE`, `SPLIT_INDEX`, `CONCAT`, `CHR`,
//! `TO_BASE64`, `FROM_BASE64`, `STARTSWITH`, `ENDSWITH`, `ELT`, `URL_ENCODE`, `URL_DECODE`.
//!
//! Lengths and positions count characters (Unicode scalar values), 1-based as in SQL.

use arrow::array::{Array, BooleanBuilder, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use base64::Engine;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::args::{Arrays, Param, array, coerce};

use Param::{Int, Str};

/// The longest result `LPAD` and `RPAD` build: a larger length is a mistake that would exhaust
/// memory one row at a time.
const MAX_PADDED_CHARS: i64 = 1 << 24;

/// Flink's `SUBSTR`, also planned for `SUBSTRING(... FROM ... FOR ...)`.
pub(super) fn substr() -> ScalarUDF {
    string_function("substr", &["substring"], &[&[Str, Int], &[Str, Int, Int]], Shape::Substr)
}

fn string_function(
    name: &'static str,
    aliases: &[&str],
    forms: &'static [&'static [Param]],
    shape: Shape,
) -> ScalarUDF {
    ScalarUDF::new_from_impl(StringFunction {
        name,
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        forms,
        shape,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

pub(super) fn functions() -> Vec<ScalarUDF> {
    use Shape::*;
    let f = string_function;
    vec![
        substr(),
        f("left", &[], &[&[Str, Int]], Left),
        f("right", &[], &[&[Str, Int]], Right),
        f("lpad", &[], &[&[Str, Int, Str]], Lpad),
        f("rpad", &[], &[&[Str, Int, Str]], Rpad),
        f("locate", &[], &[&[Str, Str], &[Str, Str, Int]], Locate),
        f("split_index", &[], &[&[Str, Str, Int]], SplitIndex),
        f("concat", &[], &[], Concat),
        f("chr", &[], &[&[Int]], Chr),
        f("to_base64", &[], &[&[Str]], ToBase64),
        f("from_base64", &[], &[&[Str]], FromBase64),
        f("startswith", &[], &[&[Str, Str]], StartsWith),
        f("endswith", &[], &[&[Str, Str]], EndsWith),
        f("elt", &[], &[], Elt),
        f("url_encode", &[], &[&[Str]], UrlEncode),
        f("url_decode", &[], &[&[Str]], UrlDecode),
    ]
}

/// Which function: they share the struct, the coercion and the null rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    Substr,
    Left,
    Right,
    Lpad,
    Rpad,
    Locate,
    SplitIndex,
    Concat,
    Chr,
    ToBase64,
    FromBase64,
    StartsWith,
    EndsWith,
    Elt,
    UrlEncode,
    UrlDecode,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct StringFunction {
    name: &'static str,
    aliases: Vec<String>,
    /// The parameter lists it takes; empty for the variadic CONCAT and ELT.
    forms: &'static [&'static [Param]],
    shape: Shape,
    signature: Signature,
}

impl ScalarUDFImpl for StringFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name.to_uppercase();
        match self.shape {
            Shape::Concat if !arg_types.is_empty() => coerce(&name, arg_types, &[&vec![Str; arg_types.len()]]),
            Shape::Elt if arg_types.len() >= 2 => {
                let mut form = vec![Str; arg_types.len()];
                form[0] = Int;
                coerce(&name, arg_types, &[&form])
            }
            Shape::Concat => coerce(&name, arg_types, &[&[Str]]),
            Shape::Elt => coerce(&name, arg_types, &[&[Int, Str]]),
            _ => coerce(&name, arg_types, self.forms),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.shape {
            Shape::Locate => DataType::Int32,
            Shape::StartsWith | Shape::EndsWith => DataType::Boolean,
            _ => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        match self.shape {
            Shape::Locate => locate(&arrays),
            Shape::StartsWith => predicate(&arrays, |s, p| s.starts_with(p)),
            Shape::EndsWith => predicate(&arrays, |s, p| s.ends_with(p)),
            shape => {
                let mut out = StringBuilder::with_capacity(arrays.rows(), 0);
                let mut text = String::new();
                for row in 0..arrays.rows() {
                    // ELT is NULL only for a NULL index or a NULL chosen argument.
                    if shape != Shape::Elt && arrays.any_null(row) {
                        out.append_null();
                        continue;
                    }
                    text.clear();
                    match string_row(shape, &arrays, row, &mut text)? {
                        true => out.append_value(&text),
                        false => out.append_null(),
                    }
                }
                array(out.finish())
            }
        }
    }
}

/// Writes the result of `row` (no argument NULL) into `out`; `false` means NULL.
fn string_row(shape: Shape, arrays: &Arrays, row: usize, out: &mut String) -> Result<bool> {
    let s = |i: usize| -> Result<&str> { Ok(arrays.str(i)?.value(row)) };
    let n = |i: usize| -> Result<i64> { Ok(arrays.int(i)?.value(row)) };
    match shape {
        Shape::Substr => {
            let length = if arrays.len() == 3 { n(2)? } else { i64::MAX };
            return Ok(substring(s(0)?, n(1)?, length, out));
        }
        Shape::Left | Shape::Right => {
            let text = s(0)?;
            let count = usize::try_from(n(1)?.max(0)).unwrap_or(usize::MAX);
            if shape == Shape::Left {
                out.extend(text.chars().take(count));
            } else {
                let chars = text.chars().count();
                out.extend(text.chars().skip(chars.saturating_sub(count)));
            }
        }
        Shape::Lpad | Shape::Rpad => {
            let length = n(1)?;
            if length > MAX_PADDED_CHARS {
                return exec_err!("{shape:?}: a result of {length} characters is longer than {MAX_PADDED_CHARS}");
            }
            return Ok(pad(s(0)?, length, s(2)?, shape == Shape::Lpad, out));
        }
        Shape::SplitIndex => {
            let index = n(2)?;
            let text = s(0)?;
            if index < 0 || text.is_empty() {
                return Ok(false);
            }
            let separator = s(1)?;
            let index = usize::try_from(index).unwrap_or(usize::MAX);
            // Apache Commons' splitByWholeSeparatorPreserveAllTokens: an empty separator splits
            // at each whitespace character.
            let part = if separator.is_empty() {
                text.split(char::is_whitespace).nth(index)
            } else {
                text.split(separator).nth(index)
            };
            match part {
                Some(part) => out.push_str(part),
                None => return Ok(false),
            }
        }
        Shape::Concat => {
            for i in 0..arrays.len() {
                out.push_str(s(i)?);
            }
        }
        Shape::Chr => {
            let code = n(0)?;
            // Flink takes the low byte of a non-negative code (CHR(256 + 97) = 'a').
            if code >= 0 {
                out.push(char::from((code & 0xFF) as u8));
            }
        }
        Shape::ToBase64 => out.push_str(&base64::engine::general_purpose::STANDARD.encode(s(0)?)),
        Shape::FromBase64 => {
            let text = s(0)?;
            match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
                Ok(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
                Err(e) => return exec_err!("FROM_BASE64: '{text}' is not base64 ({e})"),
            }
        }
        Shape::Elt => {
            let index = arrays.int(0)?;
            if index.is_null(row) {
                return Ok(false);
            }
            let chosen = index.value(row);
            if chosen < 1 || chosen >= arrays.len() as i64 {
                return Ok(false);
            }
            let values: &StringArray = arrays.str(chosen as usize)?;
            if values.is_null(row) {
                return Ok(false);
            }
            out.push_str(values.value(row));
        }
        Shape::UrlEncode => url_encode(s(0)?, out),
        Shape::UrlDecode => return Ok(url_decode(s(0)?, out)),
        Shape::Locate | Shape::StartsWith | Shape::EndsWith => {
            return exec_err!("{shape:?} does not return a string");
        }
    }
    Ok(true)
}

/// Flink's `SUBSTRING`: a start of 0 means 1, a negative start counts from the end, a negative
/// length gives NULL.
fn substring(text: &str, start: i64, length: i64, out: &mut String) -> bool {
    if length < 0 {
        return false;
    }
    let chars = text.chars().count() as i64;
    let first = match start {
        s if s > 0 => s - 1,
        s if s < 0 => chars + s,
        _ => 0,
    };
    if first < 0 || first >= chars {
        return true;
    }
    let count = length.min(chars - first);
    out.extend(text.chars().skip(first as usize).take(count as usize));
    true
}

/// Flink's `LPAD`/`RPAD`: the text cut to `length`, or padded with repeats of `padding`; NULL
/// for a negative length or an empty padding.
fn pad(text: &str, length: i64, padding: &str, left: bool, out: &mut String) -> bool {
    if length < 0 || padding.is_empty() {
        return false;
    }
    let length = length as usize;
    let chars = text.chars().count();
    let fill = length.saturating_sub(chars);
    let padding = padding.chars().cycle().take(fill);
    if left {
        out.extend(padding);
        out.extend(text.chars().take(length));
    } else {
        out.extend(text.chars().take(length));
        out.extend(padding);
    }
    true
}

/// `LOCATE(needle, haystack[, from])`: the 1-based position of the first `needle` at or after
/// `from`, 0 when there is none or `from` is out of range.
fn locate(arrays: &Arrays) -> Result<ColumnarValue> {
    let needles = arrays.str(0)?;
    let haystacks = arrays.str(1)?;
    let mut out = arrow::array::Int32Builder::with_capacity(arrays.rows());
    for row in 0..arrays.rows() {
        if arrays.any_null(row) {
            out.append_null();
            continue;
        }
        let from = if arrays.len() == 3 { arrays.int(2)?.value(row) } else { 1 };
        let haystack = haystacks.value(row);
        let chars = haystack.chars().count() as i64;
        if from < 1 || from - 1 > chars {
            out.append_value(0);
            continue;
        }
        let skip = (from - 1) as usize;
        let byte_start = haystack.char_indices().nth(skip).map_or(haystack.len(), |(b, _)| b);
        let position = match haystack[byte_start..].find(needles.value(row)) {
            Some(at) => skip + haystack[byte_start..byte_start + at].chars().count() + 1,
            None => 0,
        };
        out.append_value(i32::try_from(position).unwrap_or(0));
    }
    array(out.finish())
}

fn predicate(arrays: &Arrays, test: impl Fn(&str, &str) -> bool) -> Result<ColumnarValue> {
    let texts = arrays.str(0)?;
    let parts = arrays.str(1)?;
    let mut out = BooleanBuilder::with_capacity(arrays.rows());
    for row in 0..arrays.rows() {
        if arrays.any_null(row) {
            out.append_null();
        } else {
            out.append_value(test(texts.value(row), parts.value(row)));
        }
    }
    array(out.finish())
}

/// Java's `URLEncoder.encode(text, UTF_8)`: `application/x-www-form-urlencoded`.
fn url_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}

/// Java's `URLDecoder.decode(text, UTF_8)`; `false` (NULL, as in Flink) for a broken escape.
fn url_decode(text: &str, out: &mut String) -> bool {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => decoded.push(byte),
                    None => return false,
                }
                i += 2;
            }
            byte => decoded.push(byte),
        }
        i += 1;
    }
    out.push_str(&String::from_utf8_lossy(&decoded));
    true
}
