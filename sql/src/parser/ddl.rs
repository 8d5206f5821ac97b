//! `CREATE TABLE` with `WATERMARK FOR`, `PRIMARY KEY ... NOT ENFORCED`, metadata columns
//! (`METADATA [FROM 'key'] [VIRTUAL]`), computed columns (`name AS expr`) and `WITH (...)`.

use datafusion::sql::sqlparser::ast::{ArrayElemTypeDef, DataType, Spanned, StructBracketKind, StructField};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Span, Token};

use super::{ColumnDef, CreateTable, WatermarkClause};
use crate::error::{SqlError, SqlResult};

pub(super) fn parse_create_table(parser: &mut Parser<'_>) -> SqlResult<CreateTable> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false)?;
    let mut table = CreateTable {
        name,
        or_replace: false,
        if_not_exists,
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        options: Vec::new(),
    };
    if parser.consume_token(&Token::LParen) && !parser.consume_token(&Token::RParen) {
        loop {
            parse_table_element(parser, &mut table)?;
            if parser.consume_token(&Token::Comma) {
                continue;
            }
            parser.expect_token(&Token::RParen)?;
            break;
        }
    }
    table.options = parse_with_options(parser)?;
    Ok(table)
}

/// `WITH ('key' = 'value', ...)`, if present: each pair with the position of its key.
pub(super) fn parse_with_options(parser: &mut Parser<'_>) -> SqlResult<Vec<(String, String, Span)>> {
    let mut options = Vec::new();
    if parser.parse_keyword(Keyword::WITH) {
        parser.expect_token(&Token::LParen)?;
        loop {
            let key_token = parser.peek_token();
            let key = parser.parse_literal_string()?;
            parser.expect_token(&Token::Eq)?;
            let value = parser.parse_literal_string()?;
            options.push((key, value, key_token.span));
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        parser.expect_token(&Token::RParen)?;
    }
    Ok(options)
}

fn parse_table_element(parser: &mut Parser<'_>, table: &mut CreateTable) -> SqlResult<()> {
    let start = parser.peek_token();
    if matches!(&start.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("WATERMARK")) {
        parser.next_token();
        parser.expect_keyword(Keyword::FOR)?;
        let column = parser.parse_identifier()?;
        parser.expect_keyword(Keyword::AS)?;
        let expr = parser.parse_expr()?;
        if table.watermark.is_some() {
            return Err(SqlError::at_span("a table can have only one WATERMARK", start.span));
        }
        let span = Span::new(start.span.start, expr.span().end);
        table.watermark = Some(WatermarkClause { column, expr, span });
        return Ok(());
    }
    if parser.parse_keyword(Keyword::CONSTRAINT) {
        parser.parse_identifier()?;
    }
    if parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
        parser.expect_token(&Token::LParen)?;
        table.primary_key = parser.parse_comma_separated(|p| p.parse_identifier())?;
        parser.expect_token(&Token::RParen)?;
        if !parser.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]) {
            return Err(SqlError::at_span(
                "PRIMARY KEY must be declared NOT ENFORCED: streamsql does not check keys, sinks upsert by them",
                start.span,
            ));
        }
        return Ok(());
    }
    let name = parser.parse_identifier()?;
    if parser.parse_keyword(Keyword::AS) {
        let expr = parser.parse_expr()?;
        if parser.parse_keyword(Keyword::COMMENT) {
            parser.parse_literal_string()?;
        }
        let span = Span::new(start.span.start, expr.span().end);
        table.columns.push(ColumnDef {
            name,
            data_type: DataType::Unspecified,
            span,
            metadata: None,
            computed: Some(expr),
        });
        return Ok(());
    }
    let data_type = parse_column_type(parser, &mut 0)?;
    let is_word = |parser: &Parser<'_>, word: &str| matches!(&parser.peek_token().token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
    let mut metadata = None;
    if is_word(parser, "METADATA") {
        parser.next_token();
        let key = if parser.parse_keyword(Keyword::FROM) { Some(parser.parse_literal_string()?) } else { None };
        let is_virtual = is_word(parser, "VIRTUAL");
        if is_virtual {
            parser.next_token();
        }
        metadata = Some((key, is_virtual));
    }
    if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
        return Err(SqlError::at_span("NOT NULL columns are not supported yet; remove NOT NULL", start.span));
    }
    let _ = parser.parse_keyword(Keyword::NULL);
    if parser.parse_keyword(Keyword::COMMENT) {
        parser.parse_literal_string()?;
    }
    table.columns.push(ColumnDef { name, data_type, span: start.span, metadata, computed: None });
    Ok(())
}

/// A column type: sqlparser's, plus Flink's nested types `ROW<name TYPE, ...>` (or `ROW(...)`,
/// `STRUCT<...>`), `ARRAY<TYPE>` and `MAP<KEY, VALUE>`, nested at will. `closes` counts the `>`
/// still owed from a `>>` token that closed two levels at once.
fn parse_column_type(parser: &mut Parser<'_>, closes: &mut usize) -> SqlResult<DataType> {
    let word = match &parser.peek_token().token {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    match word.as_str() {
        "ROW" | "STRUCT" => {
            parser.next_token();
            let parenthesized = parser.consume_token(&Token::LParen);
            if !parenthesized {
                parser.expect_token(&Token::Lt)?;
            }
            let mut fields = Vec::new();
            loop {
                let name = parser.parse_identifier()?;
                let field_type = parse_column_type(parser, closes)?;
                if parser.parse_keyword(Keyword::COMMENT) {
                    parser.parse_literal_string()?;
                }
                fields.push(StructField { field_name: Some(name), field_type, options: None });
                if *closes > 0 || !parser.consume_token(&Token::Comma) {
                    break;
                }
            }
            if parenthesized {
                parser.expect_token(&Token::RParen)?;
            } else {
                expect_close(parser, closes)?;
            }
            Ok(DataType::Struct(fields, StructBracketKind::AngleBrackets))
        }
        "ARRAY" => {
            parser.next_token();
            parser.expect_token(&Token::Lt)?;
            let element = parse_column_type(parser, closes)?;
            expect_close(parser, closes)?;
            Ok(DataType::Array(ArrayElemTypeDef::AngleBracket(Box::new(element))))
        }
        "MAP" => {
            parser.next_token();
            parser.expect_token(&Token::Lt)?;
            let key = parse_column_type(parser, closes)?;
            parser.expect_token(&Token::Comma)?;
            let value = parse_column_type(parser, closes)?;
            expect_close(parser, closes)?;
            Ok(DataType::Map(Box::new(key), Box::new(value)))
        }
        _ => Ok(parser.parse_data_type()?),
    }
}

/// The `>` closing a nested type: one owed by an earlier `>>`, or the next token (`>`, or `>>`
/// which also closes the level around it).
fn expect_close(parser: &mut Parser<'_>, closes: &mut usize) -> SqlResult<()> {
    if *closes > 0 {
        *closes -= 1;
        return Ok(());
    }
    let token = parser.next_token();
    match token.token {
        Token::Gt => Ok(()),
        Token::ShiftRight => {
            *closes += 1;
            Ok(())
        }
        other => Err(SqlError::at_span(format!("expected '>' closing the type, found {other}"), token.span)),
    }
}
