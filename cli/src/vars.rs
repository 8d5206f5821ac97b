//! Variables in scripts: `${name}` and `${name:-default}` in a `-f` file, `-e` statements or
//! piped statements are replaced before the statements are read, by `-D name=value`, else the
//! environment variable `name`, else the default. One pipeline file can so run on its built-in
//! generators and files (the defaults) or against real services:
//!
//! ```sql
//! INSERT INTO alerts_${mode:-embedded} SELECT ...;   -- streamsql -f job.sql -D mode=services
//! ```
//!
//! `$${` stands for a literal `${`. A `${name}` with no value and no default is an error naming
//! it, so nothing runs half-configured.

use std::collections::BTreeMap;

/// `-D name=value`: the name and value.
pub fn parse_define(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("'{text}' is not NAME=VALUE"))?;
    let name = name.trim();
    if !valid_name(name) {
        return Err(format!("'{name}' is not a variable name (letters, digits, '_', '.', '-')"));
    }
    Ok((name.to_string(), value.to_string()))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `text` with every variable replaced (see the module docs).
pub fn substitute(text: &str, defined: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let end = body.find('}').ok_or_else(|| {
            let line = text[..text.len() - rest.len() + at].matches('\n').count() + 1;
            format!("line {line}: '${{' without a closing '}}'")
        })?;
        let inside = &body[..end];
        let (name, default) = match inside.split_once(":-") {
            Some((name, default)) => (name.trim(), Some(default)),
            None => (inside.trim(), None),
        };
        if !valid_name(name) {
            return Err(format!("'${{{inside}}}' does not name a variable"));
        }
        let value = defined.get(name).cloned().or_else(|| std::env::var(name).ok()).or(default.map(str::to_string));
        match value {
            Some(value) => out.push_str(&value),
            None => {
                return Err(format!(
                    "variable '{name}' is not set: pass -D {name}=VALUE (or give it a default, ${{{name}:-VALUE}})"
                ));
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defined(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn values_then_defaults() {
        let vars = defined(&[("mode", "services")]);
        assert_eq!(substitute("INSERT INTO t_${mode:-embedded};", &vars).unwrap(), "INSERT INTO t_services;");
        assert_eq!(substitute("'${streamsql_test_unset_x:-out}/a.json'", &vars).unwrap(), "'out/a.json'");
        assert_eq!(substitute("cost $5 and $${literal}", &vars).unwrap(), "cost $5 and ${literal}");
        assert_eq!(substitute("${mode}${mode}", &vars).unwrap(), "servicesservices");
    }

    #[test]
    fn errors_name_the_variable() {
        let vars = BTreeMap::new();
        assert!(
            substitute("x ${streamsql_test_unset_y}", &vars).unwrap_err().contains("-D streamsql_test_unset_y=VALUE")
        );
        assert!(substitute("x\n${mode", &vars).unwrap_err().contains("line 2"));
        assert!(substitute("${a b}", &vars).is_err());
        assert_eq!(parse_define("out=/tmp/x=y").unwrap(), ("out".into(), "/tmp/x=y".into()));
        assert!(parse_define("novalue").is_err());
    }
}
