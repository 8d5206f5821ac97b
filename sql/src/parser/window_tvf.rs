//! Window table-valued functions: `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size))`,
//! `TABLE(HOP(TABLE t, DESCRIPTOR(ts), slide, size))`, `TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts),
//! step, size))` and `TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), gap))`.
//!
//! sqlparser cannot parse these calls, so they are recognised on the token stream: the whole
//! call is replaced by one quoted identifier naming a generated relation (`"__window_0"`), given
//! the position of the call's `TABLE` keyword, and aliased as the input table unless the user
//! wrote an alias. The catalog resolves that relation to the input's columns plus
//! `window_start`, `window_end` and `window_time`.

use datafusion::sql::sqlparser::ast::{DateTimeField, Expr, Ident, ObjectName, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Span, Token, TokenWithSpan, Whitespace, Word};
use streamsql_engine::operators::aggregate::WindowShape;

use crate::error::{SqlError, SqlResult};

/// One window TVF call found in a script.
#[derive(Debug, Clone)]
pub struct WindowTvf {
    /// The generated relation name that replaced the call.
    pub relation: String,
    pub shape: WindowShape,
    /// `TABLE t`.
    pub input: ObjectName,
    pub input_span: Span,
    /// `SESSION(TABLE t PARTITION BY k, ...)`: the columns sessions are kept per.
    pub partition_by: Vec<Ident>,
    /// `DESCRIPTOR(column)`.
    pub descriptor: Ident,
    pub descriptor_span: Span,
    /// The call's `TABLE` keyword.
    pub span: Span,
}

/// Prefix of generated relation names.
pub const RELATION_PREFIX: &str = "__window_";

fn significant(tokens: &[TokenWithSpan], mut i: usize) -> usize {
    while i < tokens.len() && matches!(tokens[i].token, Token::Whitespace(_)) {
        i += 1;
    }
    i
}

fn is_keyword(token: &TokenWithSpan, keyword: Keyword) -> bool {
    matches!(&token.token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

fn word_value(token: &TokenWithSpan) -> Option<String> {
    match &token.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_uppercase()),
        _ => None,
    }
}

/// Index of the `)` matching the `(` at `open`.
fn matching_paren(tokens: &[TokenWithSpan], open: usize) -> SqlResult<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err(SqlError::at_span("this '(' is never closed", tokens[open].span))
}

/// Replaces every window TVF call in `tokens`; returns the new tokens and the calls.
pub fn rewrite(tokens: Vec<TokenWithSpan>, counter: &mut usize) -> SqlResult<(Vec<TokenWithSpan>, Vec<WindowTvf>)> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut windows = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if is_keyword(&tokens[i], Keyword::TABLE) {
            let open_outer = significant(&tokens, i + 1);
            let function = significant(&tokens, open_outer + 1);
            let open_inner = significant(&tokens, function + 1);
            let is_call = open_outer < tokens.len()
                && tokens[open_outer].token == Token::LParen
                && open_inner < tokens.len()
                && tokens[open_inner].token == Token::LParen
                && word_value(&tokens[function])
                    .is_some_and(|f| ["TUMBLE", "HOP", "CUMULATE", "SESSION"].contains(&f.as_str()));
            if is_call {
                let close_outer = matching_paren(&tokens, open_outer)?;
                let close_inner = matching_paren(&tokens, open_inner)?;
                let after_inner = significant(&tokens, close_inner + 1);
                if after_inner != close_outer {
                    return Err(SqlError::at_span(
                        "expected ')' after the window function call",
                        tokens[after_inner.min(tokens.len() - 1)].span,
                    ));
                }
                let name = word_value(&tokens[function]).unwrap_or_default();
                let relation = format!("{RELATION_PREFIX}{}", *counter);
                *counter += 1;
                let window = parse_call(
                    &name,
                    &tokens[function],
                    &tokens[open_inner + 1..close_inner],
                    relation.clone(),
                    tokens[i].span,
                )?;
                let span = tokens[i].span;
                out.push(TokenWithSpan::new(quoted_word(&relation), span));
                let next = significant(&tokens, close_outer + 1);
                let has_alias = next < tokens.len()
                    && matches!(&tokens[next].token, Token::Word(w) if w.keyword == Keyword::AS || w.keyword == Keyword::NoKeyword || w.quote_style.is_some());
                if !has_alias {
                    let alias =
                        window.input.0.last().and_then(|p| p.as_ident()).map(|id| id.value.clone()).unwrap_or_default();
                    out.push(TokenWithSpan::new(Token::Whitespace(Whitespace::Space), span));
                    out.push(TokenWithSpan::new(Token::make_keyword("AS"), span));
                    out.push(TokenWithSpan::new(Token::Whitespace(Whitespace::Space), span));
                    out.push(TokenWithSpan::new(
                        quoted_word(&normalize(&alias, window.input.0.last().and_then(|p| p.as_ident()))),
                        span,
                    ));
                }
                windows.push(window);
                i = close_outer + 1;
                continue;
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    Ok((out, windows))
}

fn quoted_word(value: &str) -> Token {
    Token::Word(Word { value: value.to_string(), quote_style: Some('"'), keyword: Keyword::NoKeyword })
}

/// Unquoted identifiers are case-insensitive (lower-cased), as in DataFusion.
fn normalize(value: &str, ident: Option<&Ident>) -> String {
    match ident.and_then(|i| i.quote_style) {
        Some(_) => value.to_string(),
        None => value.to_lowercase(),
    }
}

/// Where the arguments are in `tokens`, split at top-level commas.
fn argument_ranges(tokens: &[TokenWithSpan]) -> Vec<std::ops::Range<usize>> {
    let mut args = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                args.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
    }
    args.push(start..tokens.len());
    args
}

fn first_span(tokens: &[TokenWithSpan], fallback: Span) -> Span {
    tokens.iter().find(|t| !matches!(t.token, Token::Whitespace(_))).map_or(fallback, |t| t.span)
}

fn parse_call(
    function: &str,
    function_token: &TokenWithSpan,
    arguments: &[TokenWithSpan],
    relation: String,
    span: Span,
) -> SqlResult<WindowTvf> {
    let call_span = function_token.span;
    let usage = match function {
        "TUMBLE" => "TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '5' SECOND)",
        "HOP" => "HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND /* slide */, INTERVAL '10' SECOND /* size */)",
        "SESSION" => "SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '5' MINUTE /* gap */)",
        "CUMULATE" => "CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE /* step */, INTERVAL '1' HOUR /* size */)",
        other => {
            return Err(SqlError::at_span(
                format!("the {other} window is not supported; use TUMBLE, HOP, CUMULATE or SESSION"),
                call_span,
            ));
        }
    };
    let mut ranges = argument_ranges(arguments);
    // `PARTITION BY a, b`: the commas between keys are not argument separators.
    if function == "SESSION" {
        let descriptor = ranges.iter().position(|r| {
            arguments[r.clone()]
                .iter()
                .find(|t| !matches!(t.token, Token::Whitespace(_)))
                .and_then(word_value)
                .as_deref()
                == Some("DESCRIPTOR")
        });
        if let Some(at) = descriptor.filter(|&at| at > 1) {
            let table = ranges[0].start..ranges[at - 1].end;
            ranges.splice(0..at, [table]);
        }
    }
    let args: Vec<&[TokenWithSpan]> = ranges.into_iter().map(|r| &arguments[r]).collect();
    let expected = match function {
        "HOP" | "CUMULATE" => 4,
        _ => 3,
    };
    if args.len() != expected {
        let hint = if function == "TUMBLE" && args.len() == 4 { " (window offsets are not supported yet)" } else { "" };
        return Err(SqlError::at_span(
            format!("{function} takes {expected} arguments, got {}{hint}: {usage}", args.len()),
            call_span,
        ));
    }
    let dialect = GenericDialect {};
    let sub = |tokens: &[TokenWithSpan]| Parser::new(&dialect).with_tokens_with_locations(tokens.to_vec());

    // TABLE t
    let input_span = first_span(args[0], call_span);
    let mut p = sub(args[0]);
    if !p.parse_keyword(Keyword::TABLE) {
        return Err(SqlError::at_span(
            format!("the first argument of {function} must be TABLE name: {usage}"),
            input_span,
        ));
    }
    let input = p.parse_object_name(false)?;
    let mut partition_by = Vec::new();
    if p.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        if function != "SESSION" {
            return Err(SqlError::at_span(
                format!("PARTITION BY is an argument of SESSION windows only: {usage}"),
                input_span,
            ));
        }
        let parenthesized = p.consume_token(&Token::LParen);
        partition_by = p.parse_comma_separated(|p| p.parse_identifier())?;
        if parenthesized {
            p.expect_token(&Token::RParen)?;
        }
    }
    expect_end(&p, function)?;

    // DESCRIPTOR(column)
    let descriptor_span = first_span(args[1], call_span);
    let mut p = sub(args[1]);
    let descriptor_word = p.next_token();
    if word_value(&descriptor_word).as_deref() != Some("DESCRIPTOR") {
        return Err(SqlError::at_span(
            format!("the second argument of {function} must be DESCRIPTOR(time column): {usage}"),
            descriptor_span,
        ));
    }
    p.expect_token(&Token::LParen)?;
    let descriptor = p.parse_identifier()?;
    p.expect_token(&Token::RParen)?;
    expect_end(&p, function)?;

    let mut intervals = Vec::new();
    for arg in &args[2..] {
        let at = first_span(arg, call_span);
        let mut p = sub(arg);
        let expr = p.parse_expr()?;
        expect_end(&p, function)?;
        intervals.push(interval_millis(&expr).map_err(|m| SqlError::at_span(m, at))?);
    }
    let shape = match function {
        "TUMBLE" => WindowShape::tumble(intervals[0]),
        "SESSION" => WindowShape::session(intervals[0]),
        "CUMULATE" => WindowShape::cumulate(intervals[0], intervals[1]),
        _ => WindowShape::hop(intervals[0], intervals[1]),
    }
    .map_err(|e| SqlError::at_span(e.to_string(), call_span))?;
    Ok(WindowTvf { relation, shape, input, input_span, partition_by, descriptor, descriptor_span, span })
}

fn expect_end(parser: &Parser<'_>, function: &str) -> SqlResult<()> {
    let next = parser.peek_token();
    if next.token == Token::EOF {
        return Ok(());
    }
    Err(SqlError::at_span(format!("unexpected {} in the arguments of {function}", next.token), next.span))
}

fn unit_millis(field: &DateTimeField) -> Option<i64> {
    Some(match field {
        DateTimeField::Millisecond | DateTimeField::Milliseconds => 1,
        DateTimeField::Second | DateTimeField::Seconds => 1_000,
        DateTimeField::Minute | DateTimeField::Minutes => 60_000,
        DateTimeField::Hour | DateTimeField::Hours => 3_600_000,
        DateTimeField::Day | DateTimeField::Days => 86_400_000,
        _ => return None,
    })
}

fn unit_millis_from_text(unit: &str) -> Option<i64> {
    Some(match unit.to_lowercase().trim_end_matches('s') {
        "millisecond" | "ms" => 1,
        "second" | "sec" => 1_000,
        "minute" | "min" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        _ => return None,
    })
}

/// Milliseconds of `INTERVAL '5' SECOND` (or `INTERVAL '5 seconds'`); window shapes reject zero.
pub fn interval_millis(expr: &Expr) -> Result<i64, String> {
    const HELP: &str = "expected an interval like INTERVAL '5' SECOND (units: MILLISECOND, SECOND, MINUTE, HOUR, DAY)";
    let Expr::Interval(interval) = expr else {
        return Err(HELP.to_string());
    };
    if interval.last_field.is_some() {
        return Err(format!("interval ranges like MINUTE TO SECOND are not supported; {HELP}"));
    }
    let text = match interval.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            _ => return Err(HELP.to_string()),
        },
        _ => return Err(HELP.to_string()),
    };
    let (amount, unit_ms) = match &interval.leading_field {
        Some(field) => (
            text.trim().to_string(),
            unit_millis(field).ok_or_else(|| format!("unit {field} is not supported; {HELP}"))?,
        ),
        None => {
            let mut parts = text.split_whitespace();
            let amount = parts.next().unwrap_or_default().to_string();
            let unit = parts.next().ok_or_else(|| HELP.to_string())?;
            (amount, unit_millis_from_text(unit).ok_or_else(|| format!("unit '{unit}' is not supported; {HELP}"))?)
        }
    };
    let amount: f64 = amount.parse().map_err(|_| format!("'{amount}' is not a number; {HELP}"))?;
    let ms = amount * unit_ms as f64;
    if !(ms >= 0.0 && ms.fract() == 0.0 && ms < 1e15) {
        return Err(format!("the interval must be a whole, non-negative number of milliseconds; {HELP}"));
    }
    Ok(ms as i64)
}
