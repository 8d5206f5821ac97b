//! SQL errors that point at the user's text.

use datafusion::sql::sqlparser::tokenizer::{Location, Span};
use streamsql_engine::StreamError;

/// An error in a SQL script: what is wrong and where.
#[derive(Debug, Clone)]
pub struct SqlError {
    message: String,
    location: Option<(u64, u64)>,
    /// The offending line of the script, with a caret under the column.
    snippet: Option<String>,
}

/// Result with [`SqlError`] as the error type.
pub type SqlResult<T> = Result<T, SqlError>;

impl SqlError {
    /// An error with no position.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), location: None, snippet: None }
    }

    /// An error at a location (1-based line and column; line 0 means unknown).
    pub fn at(message: impl Into<String>, location: Location) -> Self {
        let mut e = Self::new(message);
        if location.line > 0 {
            e.location = Some((location.line, location.column));
        }
        e
    }

    /// An error at the start of a span.
    pub fn at_span(message: impl Into<String>, span: Span) -> Self {
        Self::at(message, span.start)
    }

    /// Sets the location if the error has none yet.
    pub fn or_at(mut self, location: Location) -> Self {
        if self.location.is_none() && location.line > 0 {
            self.location = Some((location.line, location.column));
        }
        self
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The offending line with a caret under the column, once [`SqlError::with_source`] ran.
    pub fn snippet(&self) -> Option<&str> {
        self.snippet.as_deref()
    }

    /// 1-based `(line, column)` in the script, when known.
    pub fn location(&self) -> Option<(u64, u64)> {
        self.location
    }

    /// Adds the offending line of `sql` with a caret, for display.
    pub fn with_source(mut self, sql: &str) -> Self {
        if let Some((line, column)) = self.location
            && let Some(text) = sql.lines().nth(line.saturating_sub(1) as usize)
        {
            let caret_at = text.chars().take(column.saturating_sub(1) as usize).count();
            self.snippet = Some(format!("  {text}\n  {}^", " ".repeat(caret_at)));
        }
        self
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.location {
            Some((line, column)) => write!(f, "line {line}, column {column}: {}", self.message)?,
            None => write!(f, "{}", self.message)?,
        }
        if let Some(snippet) = &self.snippet {
            write!(f, "\n{snippet}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

impl From<StreamError> for SqlError {
    fn from(e: StreamError) -> Self {
        SqlError::new(e.to_string())
    }
}

impl From<datafusion::error::DataFusionError> for SqlError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        let location =
            e.diagnostic().and_then(|d| d.span).map(|s| Location { line: s.start.line, column: s.start.column });
        let message = clean_datafusion_message(&e);
        match location {
            Some(l) => SqlError::at(message, l),
            None => SqlError::new(message),
        }
    }
}

impl From<datafusion::sql::sqlparser::tokenizer::TokenizerError> for SqlError {
    fn from(e: datafusion::sql::sqlparser::tokenizer::TokenizerError) -> Self {
        SqlError::at(e.message, e.location)
    }
}

impl From<datafusion::sql::sqlparser::parser::ParserError> for SqlError {
    fn from(e: datafusion::sql::sqlparser::parser::ParserError) -> Self {
        use datafusion::sql::sqlparser::parser::ParserError;
        let text = match &e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
            ParserError::RecursionLimitExceeded => "the statement is nested too deeply".into(),
        };
        // sqlparser appends " at Line: L, Column: C"; turn it into our location.
        if let Some((message, position)) = text.rsplit_once(" at Line: ")
            && let Some((line, column)) = position.split_once(", Column: ")
            && let (Ok(line), Ok(column)) = (line.trim().parse(), column.trim().parse())
        {
            return SqlError::at(message.to_string(), Location { line, column });
        }
        SqlError::new(text)
    }
}

/// DataFusion's messages without the `Error during planning:` style prefixes.
fn clean_datafusion_message(e: &datafusion::error::DataFusionError) -> String {
    let text = e.strip_backtrace();
    // A function applied to the wrong types is the query's fault, though DataFusion reports it
    // as an internal error with a plea to file a bug.
    if let Some(at) = text.find("failed to match any signature") {
        // "Function 'sum' failed to match any signature, errors: ... requires Int64, but received
        // String ..." → one readable sentence per rejected signature.
        let function = text[..at].rsplit("Function ").next().unwrap_or("").trim().to_string();
        let reasons: Vec<&str> = text[at..]
            .split("Error during planning: ")
            .skip(1)
            .map(|r| r.trim().trim_end_matches([',', '.']))
            .collect();
        return format!("function {function} cannot be applied to these argument types: {}", reasons.join("; "));
    }
    for prefix in ["Error during planning: ", "Schema error: ", "This feature is not implemented: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    text
}
