//! Tab completion of SQL keywords, table and column names for rustyline.

use std::sync::{Arc, Mutex};

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

/// Words of the statements streamsql understands, completed in the case the user types.
const KEYWORDS: &[&str] = &[
    "ALL",
    "AND",
    "AS",
    "AVG",
    "BETWEEN",
    "BIGINT",
    "BOOLEAN",
    "BY",
    "CASE",
    "CAST",
    "COUNT",
    "CREATE",
    "DATE",
    "DAY",
    "DECIMAL",
    "DESCRIBE",
    "DESCRIPTOR",
    "DISTINCT",
    "DOUBLE",
    "ELSE",
    "END",
    "ENFORCED",
    "EXISTS",
    "EXPLAIN",
    "FALSE",
    "FILTER",
    "FLOAT",
    "FOR",
    "FROM",
    "GROUP",
    "HAVING",
    "HOP",
    "HOUR",
    "IF",
    "IN",
    "INSERT",
    "INT",
    "INTERVAL",
    "INTO",
    "IS",
    "KEY",
    "LIKE",
    "MAX",
    "MIN",
    "MINUTE",
    "NOT",
    "NULL",
    "OR",
    "PIPELINE",
    "PIPELINES",
    "PRIMARY",
    "REPLACE",
    "SECOND",
    "SELECT",
    "SET",
    "SHOW",
    "SMALLINT",
    "STOP",
    "STRING",
    "SUM",
    "TABLE",
    "TABLES",
    "THEN",
    "TIMESTAMP",
    "TINYINT",
    "TRUE",
    "TUMBLE",
    "VARCHAR",
    "VIEW",
    "VIEWS",
    "WATERMARK",
    "WHEN",
    "WHERE",
    "WITH",
    "window_end",
    "window_start",
    "window_time",
];

/// What `SHOW` can show.
const SHOWABLE: &[&str] = &["PIPELINES", "TABLES", "VIEWS"];

/// Words after which a table or view name comes.
const RELATION_BEFORE: &[&str] = &["FROM", "JOIN", "INTO", "TABLE", "DESCRIBE", "DESC", "VIEW"];

/// Names declared in the session, refreshed after every statement.
#[derive(Debug, Default)]
pub struct Names {
    pub relations: Vec<String>,
    pub columns: Vec<String>,
}

/// The shell's rustyline helper: completion only; hints, highlighting and validation are
/// rustyline's defaults (multi-line statements are assembled by the shell loop).
pub struct SqlHelper {
    names: Arc<Mutex<Names>>,
}

impl SqlHelper {
    /// A helper completing from `names`, which the shell keeps up to date.
    pub fn new(names: Arc<Mutex<Names>>) -> Self {
        Self { names }
    }

    /// Words starting with `prefix`; only table and view names after a word that names one
    /// (`FROM`, `INTO`, `TABLE`, `DESCRIBE`, ...).
    fn candidates(&self, previous_word: &str, prefix: &str) -> Vec<String> {
        let lower = prefix.to_lowercase();
        let matches = |word: &str| word.to_lowercase().starts_with(&lower) && word.len() > prefix.len();
        let relation_only = RELATION_BEFORE.iter().any(|w| w.eq_ignore_ascii_case(previous_word));
        let keywords = if previous_word.eq_ignore_ascii_case("SHOW") { SHOWABLE } else { KEYWORDS };
        // Keywords follow the case of what was typed: `sel` → `select`, `SEL` → `SELECT`.
        let typed_lower = prefix.chars().any(|c| c.is_lowercase());
        let mut out: Vec<String> = Vec::new();
        if let Ok(names) = self.names.lock() {
            out.extend(names.relations.iter().filter(|w| matches(w)).cloned());
            if !relation_only {
                out.extend(names.columns.iter().filter(|w| matches(w)).cloned());
            }
        }
        if !relation_only {
            out.extend(keywords.iter().filter(|k| matches(k)).map(|k| {
                if typed_lower || k.chars().any(|c| c.is_lowercase()) { k.to_lowercase() } else { k.to_string() }
            }));
        }
        out.sort();
        out.dedup();
        out
    }
}

impl Completer for SqlHelper {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
            .last()
            .map_or(pos, |(i, _)| i);
        let prefix = &before[start..];
        if prefix.is_empty() || in_quotes(&before[..start]) {
            return Ok((pos, Vec::new()));
        }
        // `TABLE(TUMBLE(TABLE fl` → the word before is `TABLE`.
        let previous_word = before[..start].split_whitespace().last().unwrap_or("");
        let previous_word = previous_word.rsplit('(').next().unwrap_or(previous_word);
        Ok((start, self.candidates(previous_word, prefix)))
    }
}

/// Whether text ending here is inside a string literal (an odd number of `'`).
fn in_quotes(text: &str) -> bool {
    text.chars().filter(|c| *c == '\'').count() % 2 == 1
}

impl Hinter for SqlHelper {
    type Hint = String;
}

impl Highlighter for SqlHelper {}

impl Validator for SqlHelper {}

impl Helper for SqlHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_keywords_in_the_typed_case_and_declared_names() {
        let names = Arc::new(Mutex::new(Names {
            relations: vec!["flows".into(), "flow_counts".into()],
            columns: vec!["flow_type".into(), "bytes_in".into()],
        }));
        let helper = SqlHelper::new(names);
        assert_eq!(helper.candidates("", "SEL"), vec!["SELECT"]);
        assert_eq!(helper.candidates("", "sel"), vec!["select"]);
        assert_eq!(helper.candidates("SELECT", "flo"), vec!["float", "flow_counts", "flow_type", "flows"]);
        assert_eq!(helper.candidates("from", "flo"), vec!["flow_counts", "flows"]);
        assert_eq!(helper.candidates(",", "window_s"), vec!["window_start"]);
        assert_eq!(helper.candidates("SHOW", "tab"), vec!["tables"]);
        assert!(in_quotes("WITH ('conn"));
    }
}
