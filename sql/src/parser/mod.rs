//! The Flink-dialect front end, built on sqlparser's tokenizer and parser.
//!
//! sqlparser (as shipped with DataFusion 55) rejects two things streaming SQL needs:
//! `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), ...))` and `WATERMARK FOR ... AS ...` in
//! `CREATE TABLE`. Like DataFusion's `DFParser`, we parse our own statements and delegate
//! everything else (queries, expressions, types) to sqlparser:
//!
//! ```text
//!  text ─tokenize─▶ tokens (with line/column) ─window_tvf::rewrite─▶ tokens, WindowTvf specs
//!       ─parse_statements─▶ [Statement]   (SET / CREATE TABLE / CREATE VIEW / INSERT / SELECT)
//! ```
//!
//! The rewrite replaces each window TVF call by a reference to a generated relation name whose
//! tokens keep the call's position, so every later error still points at the user's text.

mod ddl;
pub mod window_tvf;

use datafusion::sql::sqlparser::ast::{DataType, Expr, Ident, ObjectName, Query};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Span, Token, Tokenizer};

pub use window_tvf::WindowTvf;

use crate::error::{SqlError, SqlResult};

/// A column in `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: Ident,
    pub data_type: DataType,
    pub span: Span,
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
    /// `INSERT INTO table query`.
    Insert {
        table: ObjectName,
        query: Box<Query>,
    },
    /// A bare query: its rows are printed.
    Query(Box<Query>),
}

/// A statement and where it starts.
#[derive(Debug, Clone)]
pub struct Located {
    pub statement: Statement,
    pub start: Location,
}

/// The parsed script: statements plus the window TVF calls found in them.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub statements: Vec<Located>,
    pub windows: Vec<WindowTvf>,
}

/// Parses a whole script. `window_counter` numbers generated window relations uniquely across
/// the session.
pub fn parse_script(sql: &str, window_counter: &mut usize) -> SqlResult<Script> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).with_unescape(true).tokenize_with_location()?;
    let (tokens, windows) = window_tvf::rewrite(tokens, window_counter)?;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let next = parser.peek_token();
        if next.token == Token::EOF {
            break;
        }
        let start = next.span.start;
        let statement = parse_statement(&mut parser)?;
        statements.push(Located { statement, start });
        let after = parser.peek_token();
        if after.token != Token::EOF && after.token != Token::SemiColon {
            return Err(SqlError::at_span(
                format!("expected ';' after the statement, found {}", after.token),
                after.span,
            ));
        }
    }
    Ok(Script { statements, windows })
}

fn parse_statement(parser: &mut Parser<'_>) -> SqlResult<Statement> {
    let first = parser.peek_token();
    if parser.parse_keyword(Keyword::SET) {
        return parse_set(parser);
    }
    if parser.parse_keyword(Keyword::CREATE) {
        let or_replace = parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
        let _ = parser.parse_keyword(Keyword::TEMPORARY);
        if parser.parse_keyword(Keyword::TABLE) {
            if or_replace {
                return Err(SqlError::at_span("CREATE OR REPLACE TABLE is not supported; drop OR REPLACE", first.span));
            }
            return Ok(Statement::CreateTable(Box::new(ddl::parse_create_table(parser)?)));
        }
        if parser.parse_keyword(Keyword::VIEW) {
            let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = parser.parse_object_name(false)?;
            parser.expect_keyword(Keyword::AS)?;
            let query = parser.parse_query()?;
            return Ok(Statement::CreateView { name, or_replace, if_not_exists, query });
        }
        if parser.parse_keywords(&[Keyword::MATERIALIZED, Keyword::VIEW]) {
            return Err(SqlError::at_span(
                "CREATE MATERIALIZED VIEW (live tables) is not supported yet; use CREATE VIEW with INSERT INTO a sink table",
                first.span,
            ));
        }
        let found = parser.peek_token();
        return Err(SqlError::at_span(
            format!("expected TABLE or VIEW after CREATE, found {}", found.token),
            found.span,
        ));
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
        format!("{what} is not supported in scripts; expected SET, CREATE TABLE, CREATE VIEW, INSERT INTO or SELECT"),
        first.span,
    ))
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
