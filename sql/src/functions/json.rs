//! `JSON_VALUE`, `JSON_QUERY`, `JSON_EXISTS` and `JSON_STRING` with Flink's defaults:
//! `NULL ON EMPTY`, `NULL ON ERROR` (`FALSE ON ERROR` for `JSON_EXISTS`), `RETURNING STRING`,
//! `WITHOUT WRAPPER`.
//!
//! Paths are the SQL/JSON subset everyday queries use: an optional `lax` / `strict` mode, `$`,
//! `.key`, `."key"`, `['key']`, `["key"]` and `[index]`. Documents are parsed by a small parser of
//! our own, so `JSON_QUERY` keeps the document's key order as Flink (Jackson) does.

use arrow::array::{Array, BooleanBuilder, StringBuilder};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Arrays, Compiled, Param, array, coerce, field, literal_str};

pub(super) fn functions() -> Vec<ScalarUDF> {
    let f = |name: &'static str, kind: Kind| {
        ScalarUDF::new_from_impl(JsonFunction { name, kind, signature: Signature::user_defined(Volatility::Immutable) })
    };
    vec![
        f("json_value", Kind::Value),
        f("json_query", Kind::Query),
        f("json_exists", Kind::Exists),
        f("json_string", Kind::Serialize),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Value,
    Query,
    Exists,
    Serialize,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFunction {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for JsonFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name.to_uppercase();
        if self.kind == Kind::Serialize {
            return match arg_types {
                [t] if t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null) => Ok(vec![t.clone()]),
                _ => coerce(&name, arg_types, &[&[Param::Str]]),
            };
        }
        coerce(&name, arg_types, &[&[Param::Str, Param::Str]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.kind == Kind::Exists { DataType::Boolean } else { DataType::Utf8 })
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if self.kind != Kind::Serialize
            && let Some(Some(path)) = literal_str(&args, 1)
            && let Err(e) = Path::parse(path)
        {
            return plan_err!("{}: invalid JSON path '{path}': {e}", self.name.to_uppercase());
        }
        Ok(field(self.name(), self.return_type(&[])?))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        if self.kind == Kind::Serialize {
            return serialize(&arrays);
        }
        let documents = arrays.str(0)?;
        let paths = arrays.str(1)?;
        let mut compiled = Compiled::new();
        let mut found = |row: usize| -> Option<Json> {
            let path = compiled.get(paths.value(row), Path::parse).ok()?;
            let document = Json::parse(documents.value(row)).ok()?;
            path.select(&document).cloned()
        };
        if self.kind == Kind::Exists {
            let mut out = BooleanBuilder::with_capacity(arrays.rows());
            for row in 0..arrays.rows() {
                if arrays.any_null(row) {
                    out.append_null();
                } else {
                    out.append_value(found(row).is_some());
                }
            }
            return array(out.finish());
        }
        let mut out = StringBuilder::with_capacity(arrays.rows(), 0);
        for row in 0..arrays.rows() {
            let value = if arrays.any_null(row) { None } else { found(row) };
            let text = match (self.kind, value) {
                (Kind::Value, Some(Json::String(s))) => Some(s),
                (Kind::Value, Some(Json::Bool(b))) => Some(b.to_string()),
                (Kind::Value, Some(Json::Number(n))) => Some(number_text(&n)),
                (Kind::Query, Some(value @ (Json::Array(_) | Json::Object(_)))) => Some(value.to_json()),
                _ => None,
            };
            out.append_option(text);
        }
        array(out.finish())
    }
}

/// `JSON_STRING(value)`: a SQL value as JSON text; NULL stays NULL.
fn serialize(arrays: &Arrays) -> Result<ColumnarValue> {
    let values = arrays.get(0);
    let mut out = StringBuilder::with_capacity(arrays.rows(), 0);
    let text = match values.data_type() {
        DataType::Utf8 => {
            let strings = arrays.str(0)?;
            (0..arrays.rows()).map(|row| Json::String(strings.value(row).to_string()).to_json()).collect()
        }
        DataType::Null => vec![String::new(); arrays.rows()],
        DataType::Float32 | DataType::Float64 => {
            let floats = arrow::compute::cast(values, &DataType::Float64)?;
            let floats = floats.as_any().downcast_ref::<arrow::array::Float64Array>();
            (0..arrays.rows()).map(|row| floats.map(|f| java_double(f.value(row))).unwrap_or_default()).collect()
        }
        _ => {
            let texts = arrow::compute::cast(values, &DataType::Utf8)?;
            let texts = texts.as_any().downcast_ref::<arrow::array::StringArray>();
            (0..arrays.rows()).map(|row| texts.map(|t| t.value(row).to_string()).unwrap_or_default()).collect()
        }
    };
    for (row, text) in text.into_iter().enumerate() {
        if values.is_null(row) {
            out.append_null();
        } else {
            out.append_value(text);
        }
    }
    array(out.finish())
}

/// A JSON number as `JSON_VALUE` gives it: integers as written, others as Java prints a double.
fn number_text(raw: &str) -> String {
    if raw.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return raw.to_string();
    }
    raw.parse::<f64>().map(java_double).unwrap_or_else(|_| raw.to_string())
}

/// Java's `Double.toString`: plain with at least one decimal between 10^-3 and 10^7, otherwise
/// scientific as `1.0E-5`.
fn java_double(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let magnitude = x.abs();
    if x == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{x}");
        return if text.contains('.') { text } else { format!("{text}.0") };
    }
    let text = format!("{x:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
    format!("{mantissa}E{exponent}")
}

/// A parsed JSON document; objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// The number as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut parser = JsonParser { bytes: text.as_bytes(), at: 0, depth: 0 };
        let value = parser.value()?;
        parser.skip_space();
        if parser.at != parser.bytes.len() {
            return Err(format!("unexpected text at byte {}", parser.at));
        }
        Ok(value)
    }

    /// Compact JSON text, as Jackson writes it.
    fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        '\u{8}' => out.push_str("\\b"),
                        '\u{c}' => out.push_str("\\f"),
                        c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    Json::String(key.clone()).write(out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Documents nest at most this deep (the parser recurses).
const MAX_JSON_DEPTH: usize = 256;

struct JsonParser<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

impl JsonParser<'_> {
    fn skip_space(&mut self) {
        while self.bytes.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn expect(&mut self, literal: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.at..].starts_with(literal.as_bytes()) {
            self.at += literal.len();
            Ok(value)
        } else {
            Err(format!("unexpected text at byte {}", self.at))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_space();
        match self.bytes.get(self.at) {
            None => Err("unexpected end of JSON".into()),
            Some(b'n') => self.expect("null", Json::Null),
            Some(b't') => self.expect("true", Json::Bool(true)),
            Some(b'f') => self.expect("false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'[') => self.nested(|p| {
                let mut items = Vec::new();
                p.skip_space();
                if p.bytes.get(p.at) == Some(&b']') {
                    p.at += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(p.value()?);
                    p.skip_space();
                    match p.bytes.get(p.at) {
                        Some(b',') => p.at += 1,
                        Some(b']') => {
                            p.at += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(format!("expected ',' or ']' at byte {}", p.at)),
                    }
                }
            }),
            Some(b'{') => self.nested(|p| {
                let mut members = Vec::new();
                p.skip_space();
                if p.bytes.get(p.at) == Some(&b'}') {
                    p.at += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    p.skip_space();
                    if p.bytes.get(p.at) != Some(&b'"') {
                        return Err(format!("expected a key at byte {}", p.at));
                    }
                    let key = p.string()?;
                    p.skip_space();
                    if p.bytes.get(p.at) != Some(&b':') {
                        return Err(format!("expected ':' at byte {}", p.at));
                    }
                    p.at += 1;
                    members.push((key, p.value()?));
                    p.skip_space();
                    match p.bytes.get(p.at) {
                        Some(b',') => p.at += 1,
                        Some(b'}') => {
                            p.at += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => return Err(format!("expected ',' or '}}' at byte {}", p.at)),
                    }
                }
            }),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    self.at += 1;
                }
                let text = std::str::from_utf8(&self.bytes[start..self.at]).map_err(|e| e.to_string())?;
                match text.parse::<f64>() {
                    Ok(_) => Ok(Json::Number(text.to_string())),
                    Err(_) => Err(format!("invalid number '{text}'")),
                }
            }
            Some(_) => Err(format!("unexpected character at byte {}", self.at)),
        }
    }

    fn nested(&mut self, parse: impl FnOnce(&mut Self) -> Result<Json, String>) -> Result<Json, String> {
        self.depth += 1;
        if self.depth > MAX_JSON_DEPTH {
            return Err(format!("JSON nested deeper than {MAX_JSON_DEPTH}"));
        }
        self.at += 1;
        let value = parse(self);
        self.depth -= 1;
        value
    }

    /// A string starting at the opening quote.
    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            while self.bytes.get(self.at).is_some_and(|b| *b != b'"' && *b != b'\\') {
                self.at += 1;
            }
            out.push_str(std::str::from_utf8(&self.bytes[start..self.at]).map_err(|e| e.to_string())?);
            match self.bytes.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let escaped = self.bytes.get(self.at + 1).copied();
                    self.at += 2;
                    match escaped {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code) && self.bytes[self.at..].starts_with(b"\\u") {
                                self.at += 2;
                                let low = self.hex4()?;
                                code = 0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(format!("invalid escape at byte {}", self.at - 1)),
                    }
                }
                _ => return Err("unterminated string".into()),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.bytes.get(self.at..self.at + 4).ok_or("truncated \\u escape")?;
        let text = std::str::from_utf8(digits).map_err(|e| e.to_string())?;
        self.at += 4;
        u32::from_str_radix(text, 16).map_err(|_| format!("invalid \\u escape '{text}'"))
    }
}

/// A compiled SQL/JSON path.
#[derive(Debug)]
struct Path {
    steps: Vec<Step>,
}

#[derive(Debug)]
enum Step {
    Key(String),
    Index(usize),
}

impl Path {
    fn parse(text: &str) -> Result<Path, String> {
        let trimmed = text.trim();
        let rest = ["lax ", "strict "]
            .iter()
            .find_map(|mode| {
                let starts = trimmed.len() >= mode.len() && trimmed[..mode.len()].eq_ignore_ascii_case(mode);
                starts.then(|| trimmed[mode.len()..].trim_start())
            })
            .unwrap_or(trimmed);
        let Some(mut rest) = rest.strip_prefix('$') else {
            return Err("a path starts with '$' (after an optional lax or strict)".into());
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                if after.starts_with('[') {
                    rest = after;
                    continue;
                }
                if let Some(quoted) = after.strip_prefix('"') {
                    let end = quoted.find('"').ok_or("unterminated quoted key")?;
                    steps.push(Step::Key(quoted[..end].to_string()));
                    rest = &quoted[end + 1..];
                    continue;
                }
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let key = &after[..end];
                if key.is_empty() || key == "*" {
                    return Err(if key == "*" { "wildcards are not supported yet".into() } else { "empty key".into() });
                }
                steps.push(Step::Key(key.to_string()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or("missing ']'")?;
                let inside = after[..end].trim();
                let quoted = ['\'', '"'].iter().find_map(|q| inside.strip_prefix(*q)?.strip_suffix(*q));
                steps.push(match quoted {
                    Some(key) => Step::Key(key.to_string()),
                    None if inside == "*" => return Err("wildcards are not supported yet".into()),
                    None => Step::Index(inside.parse().map_err(|_| format!("'{inside}' is not an array index"))?),
                });
                rest = &after[end + 1..];
            } else {
                return Err(format!("unexpected '{rest}'"));
            }
        }
        Ok(Path { steps })
    }

    fn select<'a>(&self, document: &'a Json) -> Option<&'a Json> {
        let mut at = document;
        for step in &self.steps {
            at = match (step, at) {
                (Step::Key(key), Json::Object(members)) => &members.iter().find(|(k, _)| k == key)?.1,
                (Step::Index(i), Json::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(document: &str, path: &str) -> Option<Json> {
        let document = Json::parse(document).ok()?;
        Path::parse(path).ok()?.select(&document).cloned()
    }

    #[test]
    fn paths_select_values() {
        assert_eq!(value(r#"{"a": true}"#, "$.a"), Some(Json::Bool(true)));
        assert_eq!(value(r#"{"a.b": [0.998, 0.996]}"#, r#"$.["a.b"][1]"#), Some(Json::Number("0.996".into())));
        assert_eq!(value(r#"{"a": [{"b": 1}]}"#, "lax $.a[0].b"), Some(Json::Number("1".into())));
        assert_eq!(value(r#"{"a": 1}"#, "strict $.b"), None);
        assert!(Path::parse("a.b").is_err());
        assert!(Path::parse("$.a[*]").is_err());
    }

    #[test]
    fn documents_keep_their_key_order() {
        let document = Json::parse(r#"{ "b" : [1, "x\"y\u00e9"], "a": {} }"#).unwrap_or(Json::Null);
        assert_eq!(document.to_json(), r#"{"b":[1,"x\"yé"],"a":{}}"#);
        assert!(Json::parse("{").is_err());
        assert!(Json::parse("[1,]").is_err());
        assert!(Json::parse("1 2").is_err());
    }

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(java_double(0.998), "0.998");
        assert_eq!(java_double(100.0), "100.0");
        assert_eq!(java_double(1e-5), "1.0E-5");
        assert_eq!(java_double(1.5e10), "1.5E10");
    }
}
