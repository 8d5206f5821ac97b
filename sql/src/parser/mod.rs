//! The Flink-dialect front end, built on sqlparser's tokenizer and parser.
//!
//! sqlparser (as shipped with DataFusion 55) rejects two things streaming SQL needs:
//! `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), ...))` and `WATERMARK FOR ... AS ...` in
//! `CREATE TABLE`. Like DataFusion's `DFParser`, we parse our own statements and delegate
//! everything else (queries, expressions, types) to sqlparser:
//!
//! ```text
//!  text ─tokenize─▶ tokens (with line/column) ─window_tvf::rewrite─▶ tokens, WindowTvf specs
//!       ─parse_statements─▶ [Statement]   (SET / CREATE TABLE / CREATE VIEW / INSERT / SELECT /
//!                                           SHOW / STOP PIPELINE / DESCRIBE / EXPLAIN)
//! ```
//!
//! The rewrite replaces each window TVF call by a reference to a generated relation name whose
//! tokens keep the call's position, so every later error still points at the user's text.

mod ddl;
pub mod lookup;
pub mod window_tvf;

use datafusion::sql::sqlparser::ast::{DataType, Expr, Ident, ObjectName, Query};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Span, Token, Tokenizer};

pub use window_tvf::WindowTvf;

use streamsql_engine::limits;

use crate::error::{SqlError, SqlResult};

/// A column in `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: Ident,
    pub data_type: DataType,
    pub span: Span,
    /// `METADATA [FROM 'key'] [VIRTUAL]`: the key (`None`: the column's name) and whether the
    /// column is virtual (read, never written).
    pub metadata: Option<(Option<String>, bool)>,
    /// `name AS expr`: a computed column (its `data_type` is then unspecified).
    pub computed: Option<Expr>,
}

/// `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone)]
pub struct WatermarkClause {
    pub column: Ident,
    pub expr: Expr,
    pub span: Span,
}

/// `CREATE TABLE name (...) WITH (...)`.
#[derive(Debug, Clone)]
pub struct CreateTable {
    pub name: ObjectName,
    /// `CREATE OR REPLACE TABLE`: an existing table of that name is replaced.
    pub or_replace: bool,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    pub watermark: Option<WatermarkClause>,
    pub primary_key: Vec<Ident>,
    /// `'key' = 'value'` pairs with the position of each key.
    pub options: Vec<(String, String, Span)>,
}

/// One statement of a script.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `SET 'key' = 'value'`.
    Set {
        key: String,
        value: String,
    },
    CreateTable(Box<CreateTable>),
    /// `CREATE [OR REPLACE] VIEW name AS query`.
    CreateView {
        name: ObjectName,
        or_replace: bool,
        if_not_exists: bool,
        query: Box<Query>,
    },
    /// `CREATE MATERIALIZED VIEW name [WITH (...)] AS query`: a live table kept up to date by a
    /// pipeline.
    CreateMaterializedView {
        name: ObjectName,
        if_not_exists: bool,
        /// `'key' = 'value'` options of the live table, with the position of each key.
        options: Vec<(String, String, Span)>,
        query: Box<Query>,
    },
    /// `INSERT INTO table query`.
    Insert {
        table: ObjectName,
        query: Box<Query>,
    },
    /// A bare query: its rows are printed.
    Query(Box<Query>),
    /// `SHOW TABLES`: declared tables with their connectors.
    ShowTables,
    /// `SHOW VIEWS`: declared views.
    ShowViews,
    /// `SHOW PIPELINES`: pipelines started in this session; answered by whoever runs them.
    ShowPipelines,
    /// `STOP PIPELINE id [WITH SAVEPOINT]`; carried out by whoever runs the pipelines.
    StopPipeline {
        id: u64,
        /// `WITH SAVEPOINT`: a final checkpoint before stopping.
        savepoint: bool,
    },
    /// `DESCRIBE name` (or `DESC name`): columns, watermark, connector and options.
    Describe {
        name: ObjectName,
    },
    /// `DROP [TEMPORARY] TABLE | VIEW [IF EXISTS] name`.
    Drop {
        view: bool,
        if_exists: bool,
        name: ObjectName,
    },
    /// `CREATE [TEMPORARY] [SYSTEM] FUNCTION [IF NOT EXISTS] name AS 'identifier' [LANGUAGE l]`.
    CreateFunction {
        name: ObjectName,
        if_not_exists: bool,
        identifier: String,
        identifier_span: Span,
        /// As written, upper-cased; `None`: Flink's default, JAVA.
        language: Option<String>,
    },
    /// `DROP [TEMPORARY] [SYSTEM] FUNCTION [IF EXISTS] name`.
    DropFunction {
        name: ObjectName,
        if_exists: bool,
    },
    /// `SHOW CREATE TABLE | VIEW name`: the statement that declared it, as written.
    ShowCreate {
        view: bool,
        name: ObjectName,
    },
    /// `EXPLAIN statement`: the dataflow an `INSERT INTO` or query would run, not started.
    Explain(Box<Statement>),
}

impl Statement {
    /// What the statement is, in the words of an error message (`SHOW TABLES`, `EXPLAIN`).
    pub fn kind(&self) -> &'static str {
        match self {
            Statement::Set { .. } => "SET",
            Statement::CreateTable(_) => "CREATE TABLE",
            Statement::CreateView { .. } => "CREATE VIEW",
            Statement::CreateMaterializedView { .. } => "CREATE MATERIALIZED VIEW",
            Statement::Insert { .. } => "INSERT INTO",
            Statement::Query(_) => "SELECT",
            Statement::ShowTables => "SHOW TABLES",
            Statement::ShowViews => "SHOW VIEWS",
            Statement::ShowPipelines => "SHOW PIPELINES",
            Statement::StopPipeline { .. } => "STOP PIPELINE",
            Statement::Describe { .. } => "DESCRIBE",
            Statement::Drop { view: false, .. } => "DROP TABLE",
            Statement::Drop { view: true, .. } => "DROP VIEW",
            Statement::CreateFunction { .. } => "CREATE FUNCTION",
            Statement::DropFunction { .. } => "DROP FUNCTION",
            Statement::ShowCreate { view: false, .. } => "SHOW CREATE TABLE",
            Statement::ShowCreate { view: true, .. } => "SHOW CREATE VIEW",
            Statement::Explain(_) => "EXPLAIN",
        }
    }
}

/// A statement, where it starts, and its text as written (without the closing `;`).
#[derive(Debug, Clone)]
pub struct Located {
    pub statement: Statement,
    pub start: Location,
    pub text: String,
    /// The `FOR SYSTEM_TIME AS OF` clauses taken out of the statement (lookup joins).
    pub lookups: Vec<lookup::LookupClause>,
}

/// The parsed script: statements plus the window TVF calls found in them.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub statements: Vec<Located>,
    pub windows: Vec<WindowTvf>,
}

/// Parses a whole script. `window_counter` numbers generated window relations uniquely across
/// the session.
///
/// Text over the [limits](streamsql_engine::limits) is refused with its position: a script of
/// more than `MAX_SCRIPT_BYTES`, nesting deeper than `MAX_NESTING`, an expression deeper than
/// `MAX_EXPRESSION_DEPTH` (after `AND`/`OR` chains are balanced).
pub fn parse_script(sql: &str, window_counter: &mut usize) -> SqlResult<Script> {
    let dialect = GenericDialect {};
    limits::check_size(sql, limits::MAX_SCRIPT_BYTES, Location { line: 1, column: 1 }).map_err(limit_error)?;
    let tokens = Tokenizer::new(&dialect, sql).with_unescape(true).tokenize_with_location()?;
    limits::check_nesting(&tokens).map_err(limit_error)?;
    let (mut tokens, windows) = window_tvf::rewrite(tokens, window_counter)?;
    // Flink writes TIMESTAMPADD(DAY, 1, ts): the unit word becomes a string for our function.
    crate::functions::time_arith::unit_keyword_to_literal(&mut tokens);
    let mut lookups = lookup::strip(&mut tokens);
    let mut parser =
        Parser::new(&dialect).with_recursion_limit(limits::PARSER_RECURSION_LIMIT).with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let next = parser.peek_token();
        if next.token == Token::EOF {
            break;
        }
        let start = next.span.start;
        // An error at the end of the text (sqlparser's "found: EOF") has no position of its
        // own: point at where the text ends.
        let mut statement = parse_statement(&mut parser).map_err(|e| {
            let at = parser.peek_token().span.start;
            e.or_at(if at.line > 0 { at } else { end_of(sql) })
        })?;
        bound_expressions(&mut statement)?;
        let after = parser.peek_token();
        if after.token != Token::EOF && after.token != Token::SemiColon {
            return Err(SqlError::at_span(
                format!("expected ';' after the statement, found {}", after.token),
                after.span,
            ));
        }
        let end = if after.token == Token::SemiColon { after.span.start } else { Location::empty() };
        let text = statement_text(sql, start, end);
        let (here, later): (Vec<_>, Vec<_>) = lookups.into_iter().partition(|l| {
            let at = (l.span.start.line, l.span.start.column);
            at >= (start.line, start.column) && (end.line == 0 || at < (end.line, end.column))
        });
        lookups = later;
        statements.push(Located { statement, start, text, lookups: here });
    }
    Ok(Script { statements, windows })
}

fn limit_error(error: limits::LimitExceeded) -> SqlError {
    SqlError::at(error.message, error.location)
}

/// Balances `AND`/`OR` chains and refuses expressions nested deeper than the planner takes.
fn bound_expressions(statement: &mut Statement) -> SqlResult<()> {
    let query = match statement {
        Statement::CreateView { query, .. }
        | Statement::CreateMaterializedView { query, .. }
        | Statement::Insert { query, .. }
        | Statement::Query(query) => query,
        Statement::Explain(inner) => return bound_expressions(inner),
        Statement::CreateTable(table) => {
            let computed = table.columns.iter_mut().filter_map(|c| c.computed.as_mut());
            for expr in computed.chain(table.watermark.as_mut().map(|w| &mut w.expr)) {
                limits::balance_chains(expr);
                limits::check_expression_depth(expr).map_err(limit_error)?;
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    limits::balance_chains(query.as_mut());
    limits::check_expression_depth(query.as_ref()).map_err(limit_error)
}

/// The position just after the last character of `sql`.
fn end_of(sql: &str) -> Location {
    let line = sql.lines().count().max(1);
    let column = sql.lines().last().map(|l| l.chars().count()).unwrap_or(0) + 1;
    Location { line: line as u64, column: column as u64 }
}

/// The text between two token positions (to the end of `sql` when `end` is unknown).
fn statement_text(sql: &str, start: Location, end: Location) -> String {
    let from = byte_offset(sql, start).unwrap_or(0);
    let to = byte_offset(sql, end).filter(|to| *to >= from).unwrap_or(sql.len());
    sql[from..to].trim().trim_end_matches(';').trim_end().to_string()
}

/// The byte offset of a 1-based line and column (counted in characters), if it is in `sql`.
fn byte_offset(sql: &str, location: Location) -> Option<usize> {
    if location.line == 0 || location.column == 0 {
        return None;
    }
    let mut line_start = 0;
    for _ in 1..location.line {
        line_start += sql[line_start..].find('\n')? + 1;
    }
    let line = &sql[line_start..];
    let column = (location.column - 1) as usize;
    match line.char_indices().nth(column) {
        Some((at, _)) => Some(line_start + at),
        None => Some(sql.len()),
    }
}

/// Whether the next token is the unquoted word `word` (for words sqlparser has no keyword for).
fn peek_word(parser: &Parser<'_>, word: &str) -> bool {
    matches!(&parser.peek_token().token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

fn parse_statement(parser: &mut Parser<'_>) -> SqlResult<Statement> {
    let first = parser.peek_token();
    if parser.parse_keyword(Keyword::SHOW) {
        return parse_show(parser);
    }
    if peek_word(parser, "STOP") {
        parser.next_token();
        if !peek_word(parser, "PIPELINE") {
            let found = parser.peek_token();
            return Err(SqlError::at_span(format!("expected PIPELINE after STOP, found {}", found.token), found.span));
        }
        parser.next_token();
        let id_token = parser.next_token();
        let id = match &id_token.token {
            Token::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        };
        let id = id.ok_or_else(|| {
            SqlError::at_span(
                format!("expected a pipeline id (a number, as SHOW PIPELINES lists them), found {}", id_token.token),
                id_token.span,
            )
        })?;
        let savepoint = parser.parse_keyword(Keyword::WITH);
        if savepoint && !peek_word(parser, "SAVEPOINT") {
            let found = parser.peek_token();
            return Err(SqlError::at_span(format!("expected SAVEPOINT after WITH, found {}", found.token), found.span));
        }
        if savepoint {
            parser.next_token();
        }
        return Ok(Statement::StopPipeline { id, savepoint });
    }
    if parser.parse_keyword(Keyword::DESCRIBE) || parser.parse_keyword(Keyword::DESC) {
        let _ = parser.parse_keyword(Keyword::TABLE) || parser.parse_keyword(Keyword::VIEW);
        return Ok(Statement::Describe { name: parser.parse_object_name(false)? });
    }
    if parser.parse_keyword(Keyword::EXPLAIN) {
        let inner_token = parser.peek_token();
        if inner_token.token == Token::EOF {
            return Err(SqlError::new(
                "EXPLAIN needs a statement after it: EXPLAIN SELECT ... or EXPLAIN INSERT INTO ...",
            ));
        }
        let inner = parse_statement(parser)?;
        return match inner {
            Statement::Insert { .. } | Statement::Query(_) => Ok(Statement::Explain(Box::new(inner))),
            other => Err(SqlError::at_span(
                format!(
                    "EXPLAIN shows the dataflow of an INSERT INTO or a SELECT, not of {}; use DESCRIBE for a table",
                    other.kind()
                ),
                inner_token.span,
            )),
        };
    }
    if parser.parse_keyword(Keyword::SET) {
        return parse_set(parser);
    }
    if parser.parse_keyword(Keyword::CREATE) {
        let or_replace = parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
        let _ = parser.parse_keyword(Keyword::TEMPORARY);
        let _ = parser.parse_keyword(Keyword::SYSTEM);
        if parser.parse_keyword(Keyword::FUNCTION) {
            if or_replace {
                return Err(SqlError::at_span(
                    "CREATE OR REPLACE FUNCTION is not supported; DROP FUNCTION first",
                    first.span,
                ));
            }
            let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = parser.parse_object_name(false)?;
            parser.expect_keyword(Keyword::AS)?;
            let at = parser.peek_token();
            let identifier = parser.parse_literal_string()?;
            let language = if parser.parse_keyword(Keyword::LANGUAGE) {
                Some(parser.parse_identifier()?.value.to_uppercase())
            } else {
                None
            };
            if peek_word(parser, "USING") {
                let using = parser.peek_token();
                return Err(SqlError::at_span(
                    "CREATE FUNCTION ... USING JAR is not supported: streamsql runs no JVM; write the function in Python \
                     (LANGUAGE PYTHON)",
                    using.span,
                ));
            }
            return Ok(Statement::CreateFunction {
                name,
                if_not_exists,
                identifier,
                identifier_span: at.span,
                language,
            });
        }
        if parser.parse_keyword(Keyword::TABLE) {
            let mut table = ddl::parse_create_table(parser)?;
            if or_replace && table.if_not_exists {
                return Err(SqlError::at_span("CREATE OR REPLACE TABLE cannot also say IF NOT EXISTS", first.span));
            }
            table.or_replace = or_replace;
            if parser.parse_keyword(Keyword::AS) {
                let at = parser.peek_token();
                return Err(SqlError::at_span(
                    "CREATE TABLE ... AS SELECT is not supported yet; CREATE TABLE with its columns and connector, then INSERT INTO it",
                    at.span,
                ));
            }
            return Ok(Statement::CreateTable(Box::new(table)));
        }
        if parser.parse_keyword(Keyword::VIEW) {
            let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = parser.parse_object_name(false)?;
            parser.expect_keyword(Keyword::AS)?;
            let query = parser.parse_query()?;
            return Ok(Statement::CreateView { name, or_replace, if_not_exists, query });
        }
        if parser.parse_keywords(&[Keyword::MATERIALIZED, Keyword::VIEW]) {
            if or_replace {
                return Err(SqlError::at_span(
                    "CREATE OR REPLACE MATERIALIZED VIEW is not supported; drop OR REPLACE",
                    first.span,
                ));
            }
            let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = parser.parse_object_name(false)?;
            let options = ddl::parse_with_options(parser)?;
            parser.expect_keyword(Keyword::AS)?;
            let query = parser.parse_query()?;
            return Ok(Statement::CreateMaterializedView { name, if_not_exists, options, query });
        }
        let found = parser.peek_token();
        return Err(SqlError::at_span(
            format!("expected TABLE, VIEW, MATERIALIZED VIEW or FUNCTION after CREATE, found {}", found.token),
            found.span,
        ));
    }
    if parser.parse_keyword(Keyword::DROP) {
        let _ = parser.parse_keyword(Keyword::TEMPORARY);
        let _ = parser.parse_keyword(Keyword::SYSTEM);
        if parser.parse_keyword(Keyword::FUNCTION) {
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            return Ok(Statement::DropFunction { if_exists, name: parser.parse_object_name(false)? });
        }
        let view = parse_table_or_view(parser, "TABLE, VIEW or FUNCTION after DROP")?;
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = parser.parse_object_name(false)?;
        return Ok(Statement::Drop { view, if_exists, name });
    }
    if parser.parse_keyword(Keyword::INSERT) {
        if parser.parse_keyword(Keyword::OVERWRITE) {
            return Err(SqlError::at_span("INSERT OVERWRITE is not supported on streams; use INSERT INTO", first.span));
        }
        parser.expect_keyword(Keyword::INTO)?;
        let _ = parser.parse_keyword(Keyword::TABLE);
        let table = parser.parse_object_name(false)?;
        if parser.peek_token().token == Token::LParen && !starts_query(parser) {
            let at = parser.peek_token();
            return Err(SqlError::at_span(
                "INSERT with a column list is not supported yet: the query's columns map to the table's columns by position",
                at.span,
            ));
        }
        let query = parser.parse_query()?;
        return Ok(Statement::Insert { table, query });
    }
    if matches!(&first.token, Token::Word(w) if matches!(w.keyword, Keyword::SELECT | Keyword::WITH | Keyword::VALUES))
        || first.token == Token::LParen
    {
        return Ok(Statement::Query(parser.parse_query()?));
    }
    let what = match &first.token {
        Token::Word(w) => w.value.to_uppercase(),
        other => other.to_string(),
    };
    Err(SqlError::at_span(
        format!(
            "{what} is not supported; expected SET, CREATE TABLE, CREATE [MATERIALIZED] VIEW, DROP TABLE, DROP VIEW, \
             INSERT INTO, SELECT, SHOW TABLES, SHOW VIEWS, SHOW CREATE TABLE, SHOW PIPELINES, STOP PIPELINE, DESCRIBE \
             or EXPLAIN"
        ),
        first.span,
    ))
}

/// `SHOW TABLES | VIEWS | PIPELINES`.
fn parse_show(parser: &mut Parser<'_>) -> SqlResult<Statement> {
    let what = parser.next_token();
    let word = match &what.token {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_uppercase(),
        _ => String::new(),
    };
    match word.as_str() {
        "TABLES" => Ok(Statement::ShowTables),
        "VIEWS" => Ok(Statement::ShowViews),
        "PIPELINES" | "JOBS" => Ok(Statement::ShowPipelines),
        "CREATE" => {
            let view = parse_table_or_view(parser, "TABLE or VIEW after SHOW CREATE")?;
            Ok(Statement::ShowCreate { view, name: parser.parse_object_name(false)? })
        }
        _ if what.token == Token::EOF => {
            Err(SqlError::new("SHOW needs what to show: TABLES, VIEWS, CREATE TABLE name or PIPELINES"))
        }
        _ => Err(SqlError::at_span(
            format!("SHOW {} is not supported; try SHOW TABLES, SHOW VIEWS or SHOW PIPELINES", what.token),
            what.span,
        )),
    }
}

/// `TABLE` (false) or `VIEW` (true); otherwise an error saying `expected` was.
fn parse_table_or_view(parser: &mut Parser<'_>, expected: &str) -> SqlResult<bool> {
    if parser.parse_keyword(Keyword::TABLE) {
        return Ok(false);
    }
    if parser.parse_keyword(Keyword::VIEW) {
        return Ok(true);
    }
    let found = parser.peek_token();
    Err(SqlError::at_span(format!("expected {expected}, found {}", found.token), found.span))
}

/// Whether the tokens after `(` start a query (`INSERT INTO t (SELECT ...)`).
fn starts_query(parser: &Parser<'_>) -> bool {
    matches!(&parser.peek_nth_token(1).token, Token::Word(w) if matches!(w.keyword, Keyword::SELECT | Keyword::WITH | Keyword::VALUES))
}

/// `SET 'key' = 'value'` (quotes optional, as in Flink's SQL client).
fn parse_set(parser: &mut Parser<'_>) -> SqlResult<Statement> {
    let key = parse_setting_text(parser, true)?;
    if !parser.consume_token(&Token::Eq) {
        parser.expect_keyword(Keyword::TO)?;
    }
    let value = parse_setting_text(parser, false)?;
    Ok(Statement::Set { key, value })
}

fn parse_setting_text(parser: &mut Parser<'_>, dotted: bool) -> SqlResult<String> {
    let token = parser.next_token();
    let mut text = match &token.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => return Ok(s.clone()),
        Token::Word(w) => w.value.clone(),
        Token::Number(n, _) => n.clone(),
        other => {
            return Err(SqlError::at_span(format!("expected a setting name or value, found {other}"), token.span));
        }
    };
    while dotted && parser.consume_token(&Token::Period) {
        let part = parser.next_token();
        match &part.token {
            Token::Word(w) => {
                text.push('.');
                text.push_str(&w.value);
            }
            other => return Err(SqlError::at_span(format!("expected a name after '.', found {other}"), part.span)),
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> SqlResult<Vec<Located>> {
        parse_script(sql, &mut 0).map(|script| script.statements)
    }

    #[test]
    fn shell_statements_and_their_text() {
        let statements =
            parse("SHOW TABLES; show views;\nSHOW PIPELINES ; STOP PIPELINE 3; DESC flows; EXPLAIN SELECT a FROM t")
                .expect("parses");
        let kinds: Vec<&str> = statements.iter().map(|s| s.statement.kind()).collect();
        assert_eq!(kinds, ["SHOW TABLES", "SHOW VIEWS", "SHOW PIPELINES", "STOP PIPELINE", "DESCRIBE", "EXPLAIN"]);
        assert!(matches!(statements[3].statement, Statement::StopPipeline { id: 3, savepoint: false }));
        let savepoint = parse("STOP PIPELINE 2 WITH SAVEPOINT").expect("parses");
        assert!(matches!(savepoint[0].statement, Statement::StopPipeline { id: 2, savepoint: true }));
        let error = parse("STOP PIPELINE 2 WITH CHECKPOINT").expect_err("refused");
        assert!(error.message().contains("expected SAVEPOINT after WITH"), "{}", error.message());
        let texts: Vec<&str> = statements.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts[2], "SHOW PIPELINES");
        assert_eq!(texts[5], "EXPLAIN SELECT a FROM t");
    }

    #[test]
    fn statement_text_spans_lines_and_multibyte_characters() {
        let statements = parse("SELECT 'é'\n  FROM t;\nSELECT b FROM u;").expect("parses");
        assert_eq!(statements[0].text, "SELECT 'é'\n  FROM t");
        assert_eq!(statements[1].text, "SELECT b FROM u");
    }

    #[test]
    fn errors_at_the_end_of_the_text_point_there() {
        for sql in
            ["SELECT a FROM", "CREATE TABLE t (a INT", "SELECT CAST(1 AS", "INSERT INTO t\n  SELECT a FROM u WHERE"]
        {
            let error = parse(sql).expect_err("incomplete");
            let (line, column) = error.location().unwrap_or_else(|| panic!("{sql}: no position: {}", error.message()));
            assert_eq!(line as usize, sql.lines().count(), "{sql}");
            assert!(column > 1, "{sql}: column {column}");
        }
    }

    #[test]
    fn shell_statement_errors_say_what_is_expected() {
        let error = |sql: &str| parse(sql).expect_err("an error").message().to_string();
        assert!(error("STOP PIPELINE x").contains("expected a pipeline id"));
        assert!(error("SHOW FUNCTIONS").contains("try SHOW TABLES"));
        assert!(error("EXPLAIN SET 'a' = 'b'").contains("not of SET"));
        assert!(error("EXPLAIN").contains("EXPLAIN needs a statement"));
        assert!(error("DROP INDEX f").contains("expected TABLE, VIEW or FUNCTION after DROP"));
        assert!(error("SHOW CREATE FUNCTION f").contains("expected TABLE or VIEW after SHOW CREATE"));
        assert!(error("CREATE TABLE t AS SELECT 1").contains("AS SELECT is not supported yet"));
    }

    #[test]
    fn drop_and_show_create() {
        let statements = parse(
            "DROP TABLE IF EXISTS t; DROP TEMPORARY VIEW v; SHOW CREATE TABLE t; SHOW CREATE VIEW v; \
             CREATE OR REPLACE TABLE t (a INT) WITH ('connector' = 'blackhole')",
        )
        .expect("parses");
        let kinds: Vec<&str> = statements.iter().map(|s| s.statement.kind()).collect();
        assert_eq!(kinds, ["DROP TABLE", "DROP VIEW", "SHOW CREATE TABLE", "SHOW CREATE VIEW", "CREATE TABLE"]);
        assert!(matches!(statements[0].statement, Statement::Drop { view: false, if_exists: true, .. }));
        assert!(matches!(statements[1].statement, Statement::Drop { view: true, if_exists: false, .. }));
        assert!(matches!(&statements[4].statement, Statement::CreateTable(t) if t.or_replace));
    }
}
