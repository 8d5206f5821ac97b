//! The JSON path subset that says where a response's rows are: `$` (the whole response),
//! `.name` or `['name']` (a member), `[n]` (an element) and `[*]` (every element, or every
//! member's value of an object), in any sequence: `'$.data[*]'`, `'$[*]'`, `'$.result.list[*]'`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Member(String),
    Index(usize),
    Every,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `text`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let Some(mut rest) = trimmed.strip_prefix('$') else {
            return Err(format!("a JSON path starts with '$', got '{text}'"));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() {
                    return Err(format!("JSON path '{text}': a '.' must be followed by a member name"));
                }
                if name == "*" {
                    steps.push(Step::Every);
                } else {
                    steps.push(Step::Member(name.to_string()));
                }
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| format!("JSON path '{text}': '[' without ']'"))?;
                let inside = after[..end].trim();
                let step = if inside == "*" {
                    Step::Every
                } else if let Some(quoted) = inside
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    Step::Member(quoted.to_string())
                } else {
                    Step::Index(inside.parse().map_err(|_| {
                        format!("JSON path '{text}': [{inside}] is not [*], a member name in quotes or an index")
                    })?)
                };
                steps.push(step);
                rest = &after[end + 1..];
            } else {
                return Err(format!("JSON path '{text}': expected '.' or '[' at '{rest}'"));
            }
        }
        Ok(Self { text: trimmed.to_string(), steps })
    }

    /// The values the path selects in `document`, in document order; an error names the first
    /// step that finds nothing (a missing member, an index past the end, `[*]` on a number).
    pub fn select<'a>(&self, document: &'a Value) -> Result<Vec<&'a Value>, String> {
        let mut current = vec![document];
        for (i, step) in self.steps.iter().enumerate() {
            let mut next = Vec::with_capacity(current.len());
            for value in current {
                match (step, value) {
                    (Step::Member(name), Value::Object(object)) => match object.get(name) {
                        Some(v) => next.push(v),
                        None => return Err(self.missing(i, &format!("no member \"{name}\""))),
                    },
                    (Step::Index(n), Value::Array(items)) => match items.get(*n) {
                        Some(v) => next.push(v),
                        None => return Err(self.missing(i, &format!("no element {n} (the array has {})", items.len()))),
                    },
                    (Step::Every, Value::Array(items)) => next.extend(items),
                    (Step::Every, Value::Object(object)) => next.extend(object.values()),
                    (_, other) => return Err(self.missing(i, &format!("{} instead", kind(other)))),
                }
            }
            current = next;
        }
        Ok(current)
    }

    fn missing(&self, step: usize, what: &str) -> String {
        format!("the response has nothing at step {} of JSON path '{}': {what}", step + 1, self.text)
    }
}

/// What a JSON value is, for messages: "a number", "an object".
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selects_rows() {
        let doc = json!({"data": [{"id": 1}, {"id": 2}], "info": {"time": 5}});
        let rows = JsonPath::parse("$.data[*]").unwrap().select(&doc).unwrap();
        assert_eq!(rows, vec![&json!({"id": 1}), &json!({"id": 2})]);
        assert_eq!(JsonPath::parse("$['info'].time").unwrap().select(&doc).unwrap(), vec![&json!(5)]);
        assert_eq!(JsonPath::parse("$.data[1]").unwrap().select(&doc).unwrap(), vec![&json!({"id": 2})]);
        assert_eq!(JsonPath::parse("$").unwrap().select(&doc).unwrap(), vec![&doc]);
        let array = json!([{"a": 1}]);
        assert_eq!(JsonPath::parse("$[*]").unwrap().select(&array).unwrap().len(), 1);
    }

    #[test]
    fn says_what_is_missing() {
        let doc = json!({"status": {"error_code": 429}});
        let error = JsonPath::parse("$.data[*]").unwrap().select(&doc).unwrap_err();
        assert!(error.contains("no member \"data\""), "{error}");
        let error = JsonPath::parse("$.status.error_code[*]").unwrap().select(&doc).unwrap_err();
        assert!(error.contains("a number instead"), "{error}");
        assert!(JsonPath::parse("data").is_err());
        assert!(JsonPath::parse("$.data[").is_err());
        assert!(JsonPath::parse("$.data[x]").is_err());
    }
}
