//! Bounds on what SQL text may ask of the planner, shared by the statement front end and the
//! Flight SQL query server, so no statement can overflow a stack or hang planning.
//!
//! Three things can make planning blow up, and each has a guard here:
//!
//! | shape                                   | what goes wrong                                  | guard                                  |
//! |-----------------------------------------|--------------------------------------------------|----------------------------------------|
//! | deep nesting: `CAST(CAST(…))`, `((…))`, `CASE … CASE`, `NOT NOT …` | sqlparser recurses per level; once its recursion limit is hit it backtracks through alternatives, and time doubles per level | [`check_nesting`] on the tokens, well below the parser's limit ([`PARSER_RECURSION_LIMIT`]) |
//! | nested keyword calls around an error: `NOT (NOT (… 1 + …))` | sqlparser parses each `CAST(`, `NOT (`… twice (its syntax, then as a function call) when the inside fails: time doubles per level | [`check_nesting`] bounds their depth so that `2^depth × tokens` stays under [`RETRY_BUDGET`] |
//! | long chains: `a OR b OR …`, `1 + 1 + …` | the parser loops, but builds a left-deep tree that every later pass walks recursively | [`balance_chains`] makes `AND`/`OR` chains balanced; [`check_expression_depth`] bounds the rest |
//! | huge text                               | memory and time in the tokenizer                 | [`MAX_STATEMENT_BYTES`]                |
//!
//! Planning also runs on threads with [`PLANNING_STACK_BYTES`] of stack, so the depth allowed
//! here is far from what the stack holds.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Spanned, Value, Visit, VisitMut, Visitor, VisitorMut};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan};

/// The longest single statement accepted (an ad-hoc query), in bytes.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;
/// The longest script accepted (`-f`, `-e`, a shell entry), in bytes.
pub const MAX_SCRIPT_BYTES: usize = 16 << 20;
/// The deepest nesting of parentheses, `CASE` and prefix operators accepted.
pub const MAX_NESTING: usize = 64;
/// The deepest expression tree accepted, after `AND`/`OR` chains are balanced.
pub const MAX_EXPRESSION_DEPTH: usize = 400;
/// sqlparser's recursion limit: above anything [`check_nesting`] lets through (a level of
/// nesting costs the parser at most a few recursions), so the parser never reaches it.
pub const PARSER_RECURSION_LIMIT: usize = 8 * MAX_NESTING + 64;
/// Stack for threads that parse and plan statements.
pub const PLANNING_STACK_BYTES: usize = 256 << 20;

/// Runs `work` on a thread with [`PLANNING_STACK_BYTES`] of stack and waits for it.
pub fn on_planning_stack<T: Send>(work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("streamsql-plan".into())
            .stack_size(PLANNING_STACK_BYTES)
            .spawn_scoped(scope, work)?;
        thread.join().map_err(|panic| std::panic::resume_unwind(panic))
    })
}

/// A statement over one of the limits, with where in the text it goes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    pub message: String,
    /// 1-based line and column; 0 when unknown.
    pub location: Location,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.location.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} at line {}, column {}", self.message, self.location.line, self.location.column)
        }
    }
}

impl std::error::Error for LimitExceeded {}

/// Refuses text longer than `limit_bytes` ([`MAX_STATEMENT_BYTES`], [`MAX_SCRIPT_BYTES`]).
pub fn check_size(sql: &str, limit_bytes: usize, at: Location) -> Result<(), LimitExceeded> {
    if sql.len() > limit_bytes {
        return Err(LimitExceeded {
            message: format!("the SQL text is {} bytes; at most {limit_bytes} bytes are accepted", sql.len()),
            location: at,
        });
    }
    Ok(())
}

/// Refuses tokens nested deeper than [`MAX_NESTING`]: parentheses and brackets, `CASE … END`,
/// and runs of prefix operators (`NOT`, `-`, `+`, `~`, `!`), each of which makes the parser
/// recurse once more.
///
/// It also bounds how deeply calls of the keywords in [`RETRIED_KEYWORDS`] nest (`CAST(`,
/// `NOT (`, `EXTRACT(`…): when the text inside them has an error, sqlparser parses each such
/// call twice (as the keyword's syntax, then as a plain function call), so the time doubles per
/// level. The bound is the largest depth that keeps `2^depth × tokens` under [`RETRY_BUDGET`].
pub fn check_nesting(tokens: &[TokenWithSpan]) -> Result<(), LimitExceeded> {
    let meaningful = tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).count().max(1);
    let retry_limit = retried_nesting_limit(meaningful);
    let mut depth: usize = 0;
    let mut prefix_run: usize = 0;
    let mut previous_is_operand = false;
    let mut previous_retried = false;
    // For each open parenthesis, whether a retried keyword opened it.
    let mut opened_by_retried: Vec<bool> = Vec::new();
    let mut retried_depth: usize = 0;
    // `CASE` without its `END` yet: the parser retries each of these too.
    let mut open_cases: usize = 0;
    let too_deep = |token: &TokenWithSpan| LimitExceeded {
        message: format!(
            "calls of {} nest more than {retry_limit} levels deep here; \
             unnest them (a statement of {meaningful} tokens may nest them {retry_limit} deep)",
            retried_names()
        ),
        location: token.span.start,
    };
    for token in tokens {
        let mut operand = false;
        let mut retried = false;
        match &token.token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                prefix_run = 0;
                let by_retried = previous_retried && token.token != Token::LBrace;
                opened_by_retried.push(by_retried);
                if by_retried {
                    retried_depth += 1;
                    if retried_depth + open_cases > retry_limit {
                        return Err(too_deep(token));
                    }
                }
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                depth = depth.saturating_sub(1);
                operand = true;
                if opened_by_retried.pop() == Some(true) {
                    retried_depth -= 1;
                }
            }
            Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("CASE") => {
                depth += 1;
                prefix_run = 0;
                open_cases += 1;
                retried = true;
                if retried_depth + open_cases > retry_limit {
                    return Err(too_deep(token));
                }
            }
            Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("END") => {
                depth = depth.saturating_sub(1);
                operand = true;
                open_cases = open_cases.saturating_sub(1);
            }
            Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("NOT") => {
                prefix_run += 1;
                retried = true;
            }
            Token::Minus | Token::Plus | Token::Tilde | Token::ExclamationMark if !previous_is_operand => {
                prefix_run += 1;
            }
            Token::Whitespace(_) => continue,
            // A keyword (SELECT, WHEN, AND, …) is followed by an operand, so a `-` after it is a
            // prefix; a name is an operand, so a `-` after it is a binary minus.
            Token::Word(word) => {
                prefix_run = 0;
                operand = word.keyword == Keyword::NoKeyword || word.quote_style.is_some();
                retried = word.quote_style.is_none() && RETRIED_KEYWORDS.contains(&word.keyword);
            }
            Token::Number(..) | Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => {
                prefix_run = 0;
                operand = true;
            }
            _ => prefix_run = 0,
        }
        previous_is_operand = operand;
        previous_retried = retried;
        if depth + prefix_run > MAX_NESTING {
            return Err(LimitExceeded {
                message: format!("the statement is nested too deeply (more than {MAX_NESTING} levels)"),
                location: token.span.start,
            });
        }
    }
    Ok(())
}

/// Keywords whose call sqlparser parses again as a plain function call when their own syntax
/// fails (those with a syntax of their own that are not reserved for it).
pub const RETRIED_KEYWORDS: &[Keyword] = &[
    Keyword::ARRAY,
    Keyword::CASE,
    Keyword::CAST,
    Keyword::CEIL,
    Keyword::CONVERT,
    Keyword::EXTRACT,
    Keyword::FLOOR,
    Keyword::MAP,
    Keyword::MATCH,
    Keyword::NOT,
    Keyword::OVERLAY,
    Keyword::POSITION,
    Keyword::PRIOR,
    Keyword::SAFE_CAST,
    Keyword::SUBSTR,
    Keyword::SUBSTRING,
    Keyword::TRY_CAST,
    Keyword::TRY_CONVERT,
];

/// Token visits the parser may spend on retried calls: well under a second of parsing.
pub const RETRY_BUDGET: usize = 1 << 22;

/// How deep retried calls may nest in a statement of `tokens` tokens: the largest `d` with
/// `2^d × tokens ≤ RETRY_BUDGET`, but at least 8.
pub fn retried_nesting_limit(tokens: usize) -> usize {
    let mut depth = 0;
    while depth < 63 && (tokens << (depth + 1)) <= RETRY_BUDGET {
        depth += 1;
    }
    depth.max(8)
}

fn retried_names() -> &'static str {
    "CAST, NOT, EXTRACT, SUBSTRING, CEIL, FLOOR and similar keywords"
}

/// Rebuilds every left- or right-deep chain of `AND` (or of `OR`) as a balanced tree, so that
/// `p1 OR p2 OR … OR p2000` is 11 levels deep instead of 2000. Both operators are associative in
/// SQL's three-valued logic, so the result is the same.
pub fn balance_chains<V: VisitMut>(node: &mut V) {
    let _ = node.visit(&mut Balancer);
}

struct Balancer;

impl VisitorMut for Balancer {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::BinaryOp { op: op @ (BinaryOperator::And | BinaryOperator::Or), .. } = expr else {
            return ControlFlow::Continue(());
        };
        let op = op.clone();
        let mut operands = Vec::new();
        flatten(std::mem::replace(expr, null()), &op, &mut operands);
        *expr = balanced(operands, &op);
        ControlFlow::Continue(())
    }
}

/// The operands of a chain of `op`, left to right, without recursing on the chain's depth.
fn flatten(expr: Expr, op: &BinaryOperator, operands: &mut Vec<Expr>) {
    let mut pending = vec![expr];
    while let Some(expr) = pending.pop() {
        match expr {
            Expr::BinaryOp { left, op: this, right } if &this == op => {
                pending.push(*right);
                pending.push(*left);
            }
            other => operands.push(other),
        }
    }
}

fn balanced(mut operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
    if operands.len() == 1 {
        return operands.pop().unwrap_or_else(null);
    }
    let right = operands.split_off(operands.len() / 2);
    binary(balanced(operands, op), op, balanced(right, op))
}

fn null() -> Expr {
    Expr::value(Value::Null)
}

fn binary(left: Expr, op: &BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp { left: Box::new(left), op: op.clone(), right: Box::new(right) }
}

/// Refuses an expression tree deeper than [`MAX_EXPRESSION_DEPTH`], pointing at the expression
/// where it goes over.
pub fn check_expression_depth<V: Visit>(node: &V) -> Result<(), LimitExceeded> {
    let mut depth = DepthCheck { depth: 0 };
    match node.visit(&mut depth) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(location) => Err(LimitExceeded {
            message: format!("the expression is nested too deeply (more than {MAX_EXPRESSION_DEPTH} levels)"),
            location,
        }),
    }
}

struct DepthCheck {
    depth: usize,
}

impl Visitor for DepthCheck {
    type Break = Location;

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Location> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return ControlFlow::Break(expr.span().start);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Location> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn tokens(sql: &str) -> Vec<TokenWithSpan> {
        Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().expect("tokenizes")
    }

    fn nested_casts(levels: usize) -> String {
        let mut expr = "1".to_string();
        for _ in 0..levels {
            expr = format!("CAST({expr} AS BIGINT)");
        }
        format!("SELECT {expr}")
    }

    #[test]
    fn nesting_is_refused_with_its_position_before_the_parser_sees_it() {
        on_planning_stack(nesting_is_refused_with_its_position_before_the_parser_sees_it_body).expect("thread starts");
    }

    fn nesting_is_refused_with_its_position_before_the_parser_sees_it_body() {
        assert!(check_nesting(&tokens(&nested_calls("abs", MAX_NESTING))).is_ok());
        let error = check_nesting(&tokens(&nested_calls("abs", MAX_NESTING + 1))).expect_err("too deep");
        assert!(error.message.contains("nested too deeply"), "{error}");
        assert_eq!(error.location.line, 1);
        assert!(check_nesting(&tokens(&format!("SELECT {}1", "NOT ".repeat(MAX_NESTING + 1)))).is_err());
        assert!(check_nesting(&tokens(&format!("SELECT {}1", "- ".repeat(MAX_NESTING + 1)))).is_err());
        // Binary minus is not a prefix: a long difference is flat.
        assert!(check_nesting(&tokens(&format!("SELECT 1{}", " - 1".repeat(5000)))).is_ok());
    }

    fn nested_calls(function: &str, levels: usize) -> String {
        format!("SELECT {}1{}", format!("{function}(").repeat(levels), ")".repeat(levels))
    }

    /// `NOT (` levels around a syntax error: the parser's time doubles per level.
    fn not_levels_around_an_error(levels: usize) -> String {
        format!("SELECT {}1 +{}", "NOT (".repeat(levels), ")".repeat(levels))
    }

    #[test]
    fn retried_keywords_nest_only_as_deep_as_the_parser_can_afford() {
        assert_eq!(retried_nesting_limit(16), 18);
        assert_eq!(retried_nesting_limit(1 << 30), 8);
        let mut levels = 1;
        while check_nesting(&tokens(&nested_casts(levels + 1))).is_ok() {
            levels += 1;
        }
        assert!((12..=18).contains(&levels), "{levels} nested CASTs");
        let error = check_nesting(&tokens(&nested_casts(levels + 1))).expect_err("too deep");
        assert!(error.message.contains("CAST, NOT"), "{error}");
        assert_eq!(error.location.line, 1);
        let error = check_nesting(&tokens(&not_levels_around_an_error(40))).expect_err("too deep");
        assert!(error.message.contains("levels deep"), "{error}");
        // ARRAY[ and CASE are retried too (found by the fuzzer, left open).
        assert!(check_nesting(&tokens(&format!("SELECT {}v", "ARRAY[".repeat(30)))).is_err());
        assert!(check_nesting(&tokens(&format!("SELECT {}v", "CASE WHEN TRUE THEN ".repeat(30)))).is_err());
        let closed_cases = format!("SELECT {}v{}", "CASE WHEN TRUE THEN ".repeat(6), " END".repeat(6));
        assert!(check_nesting(&tokens(&closed_cases)).is_ok());
        // Plain function calls are parsed once: they may nest up to MAX_NESTING.
        assert!(check_nesting(&tokens(&nested_calls("abs", MAX_NESTING))).is_ok());
    }

    #[test]
    fn what_passes_parses_quickly_even_around_an_error() {
        on_planning_stack(what_passes_parses_quickly_even_around_an_error_body).expect("thread starts");
    }

    fn what_passes_parses_quickly_even_around_an_error_body() {
        let parse = |sql: &str| {
            Parser::new(&GenericDialect {})
                .with_recursion_limit(PARSER_RECURSION_LIMIT)
                .try_with_sql(sql)
                .and_then(|mut parser| parser.parse_statements())
        };
        let mut levels = 1;
        while check_nesting(&tokens(&not_levels_around_an_error(levels + 1))).is_ok() {
            levels += 1;
        }
        let started = std::time::Instant::now();
        assert!(parse(&not_levels_around_an_error(levels)).is_err());
        // A hang guard, not a benchmark: 2^levels re-parses of a few tokens.
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{levels} levels: {:?}", started.elapsed());
    }

    #[test]
    fn the_parser_never_reaches_its_limit_on_what_passes() {
        on_planning_stack(the_parser_never_reaches_its_limit_on_what_passes_body).expect("thread starts");
    }

    fn the_parser_never_reaches_its_limit_on_what_passes_body() {
        let sql = nested_calls("abs", MAX_NESTING);
        let statements = Parser::new(&GenericDialect {})
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .try_with_sql(&sql)
            .and_then(|mut parser| parser.parse_statements());
        assert!(statements.is_ok(), "{statements:?}");
    }

    #[test]
    fn or_chains_become_balanced_and_long_sums_are_refused() {
        on_planning_stack(or_chains_become_balanced_and_long_sums_are_refused_body).expect("thread starts");
    }

    fn or_chains_become_balanced_and_long_sums_are_refused_body() {
        let predicates: Vec<String> = (0..3000).map(|i| format!("x = {i}")).collect();
        let sql = format!("SELECT 1 FROM t WHERE {}", predicates.join(" OR "));
        let mut statements = Parser::parse_sql(&GenericDialect {}, &sql).expect("parses");
        assert!(check_expression_depth(&statements).is_err());
        balance_chains(&mut statements);
        assert!(check_expression_depth(&statements).is_ok());
        assert!(statements[0].to_string().contains("x = 2999"));

        let sum = format!("SELECT {}", vec!["1"; MAX_EXPRESSION_DEPTH + 10].join(" + "));
        let mut statements = Parser::parse_sql(&GenericDialect {}, &sum).expect("parses");
        balance_chains(&mut statements);
        let error = check_expression_depth(&statements).expect_err("too deep");
        assert_eq!(error.location.line, 1);
    }
}
