//! `REGEXP_EXTRACT`, `REGEXP_REPLACE` and `REGEXP`, with Flink's rules: every match is replaced,
//! replacements use Java's `$1` / `${name}` / `\$` syntax, a group that did not take part gives
//! NULL, and a pattern that does not compile gives NULL (`FALSE` for `REGEXP`) at run time.
//!
//! Patterns are Rust `regex` syntax, which is Java's for everyday patterns but has no
//! look-around or back-references; a literal pattern that does not compile fails the plan
//! (where Flink would silently give NULL).

use std::convert::Infallible;

use arrow::array::{BooleanBuilder, StringBuilder};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

use super::args::{Arrays, Compiled, Param, array, coerce, field, literal_str};

use Param::{Int, Str};

pub(super) fn functions() -> Vec<ScalarUDF> {
    let f = |name: &'static str, kind: Kind| {
        ScalarUDF::new_from_impl(RegexFunction {
            name,
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    };
    vec![f("regexp_extract", Kind::Extract), f("regexp_replace", Kind::Replace), f("regexp", Kind::Matches)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Extract,
    Replace,
    Matches,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexFunction {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

fn compile(pattern: &str) -> Result<Option<Regex>, Infallible> {
    Ok(Regex::new(pattern).ok())
}

impl ScalarUDFImpl for RegexFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let forms: &[&[Param]] = match self.kind {
            Kind::Extract => &[&[Str, Str], &[Str, Str, Int]],
            Kind::Replace => &[&[Str, Str, Str]],
            Kind::Matches => &[&[Str, Str]],
        };
        coerce(&self.name.to_uppercase(), arg_types, forms)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.kind == Kind::Matches { DataType::Boolean } else { DataType::Utf8 })
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.name.to_uppercase();
        if let Some(Some(pattern)) = literal_str(&args, 1) {
            let regex = match Regex::new(pattern) {
                Ok(regex) => regex,
                Err(e) => return plan_err!("{name}: invalid regular expression '{pattern}': {e}"),
            };
            if self.kind == Kind::Replace
                && let Some(Some(replacement)) = literal_str(&args, 2)
                && let Err(e) = java_replacement(replacement, regex.captures_len() - 1)
            {
                return plan_err!("{name}: invalid replacement '{replacement}': {e}");
            }
        }
        Ok(field(self.name(), self.return_type(&[])?))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let texts = arrays.str(0)?;
        let patterns = arrays.str(1)?;
        let mut regexes = Compiled::new();
        if self.kind == Kind::Matches {
            let mut out = BooleanBuilder::with_capacity(arrays.rows());
            for row in 0..arrays.rows() {
                if arrays.any_null(row) {
                    out.append_null();
                    continue;
                }
                // As in Flink: an empty or invalid pattern matches nothing.
                let pattern = patterns.value(row);
                let matched = !pattern.is_empty()
                    && matches!(regexes.get(pattern, compile), Ok(Some(regex)) if regex.is_match(texts.value(row)));
                out.append_value(matched);
            }
            return array(out.finish());
        }
        let mut out = StringBuilder::with_capacity(arrays.rows(), 0);
        for row in 0..arrays.rows() {
            if arrays.any_null(row) {
                out.append_null();
                continue;
            }
            let Ok(Some(regex)) = regexes.get(patterns.value(row), compile) else {
                out.append_null();
                continue;
            };
            let text = texts.value(row);
            let result = match self.kind {
                Kind::Extract => {
                    let group = if arrays.len() == 3 { arrays.int(2)?.value(row) } else { 1 };
                    usize::try_from(group)
                        .ok()
                        .and_then(|group| regex.captures(text)?.get(group))
                        .map(|m| m.as_str().to_string())
                }
                _ => java_replacement(arrays.str(2)?.value(row), regex.captures_len() - 1)
                    .ok()
                    .map(|replacement| regex.replace_all(text, replacement.as_str()).into_owned()),
            };
            out.append_option(result);
        }
        array(out.finish())
    }
}

/// Java's replacement syntax (`$1`, `${name}`, `\x` for a literal x) as the `regex` crate's
/// (`${1}`, `${name}`, `$$`). Java reads as many digits after `$` as still name a group.
fn java_replacement(java: &str, groups: usize) -> Result<String, String> {
    let mut out = String::with_capacity(java.len());
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(escaped) => out.push(escaped),
                None => return Err("a '\\' at the end escapes nothing".into()),
            },
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(format!("'${{{name}}}' is not a group name"));
                }
                out.push_str(&format!("${{{name}}}"));
            }
            '$' => {
                let Some(first) = chars.next_if(char::is_ascii_digit) else {
                    return Err("'$' must be followed by a group number or {name}; write \\$ for a dollar sign".into());
                };
                let mut group = first.to_digit(10).unwrap_or(0) as usize;
                if group > groups {
                    return Err(format!("there is no group {group}"));
                }
                while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
                    let longer = group * 10 + digit as usize;
                    if longer > groups {
                        break;
                    }
                    group = longer;
                    chars.next();
                }
                out.push_str(&format!("${{{group}}}"));
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::java_replacement;

    #[test]
    fn java_replacements_translate() {
        assert_eq!(java_replacement("$1-$2", 2).as_deref(), Ok("${1}-${2}"));
        assert_eq!(java_replacement("$10", 2).as_deref(), Ok("${1}0"));
        assert_eq!(java_replacement("$10", 10).as_deref(), Ok("${10}"));
        assert_eq!(java_replacement("\\$1 costs \\\\", 1).as_deref(), Ok("$$1 costs \\"));
        assert_eq!(java_replacement("${year}", 1).as_deref(), Ok("${year}"));
        assert!(java_replacement("$3", 2).is_err());
        assert!(java_replacement("$", 2).is_err());
        assert!(java_replacement("\\", 2).is_err());
    }
}
