//! Bounds on what SQL text may ask of the planner, shared by the statement front end and the
//! Flight SQL query server, so no statement can overflow a stack or hang planning.
//!
//! Three things can make planning blow up, and each has a guard here:
//!
//! | shape                                   | what goes wrong                                  | guard                                  |
//! |-----------------------------------------|--------------------------------------------------|----------------------------------------|
//! | deep nesting: `CAST(CAST(…))`, `((…))`, `CASE … CASE`, `NOT NOT …` | sqlparser recurses per level; once its recursion limit is hit it backtracks through alternatives, and time doubles per level | [`check_nesting`] on the tokens, well below the parser's limit ([`PARSER_RECURSION_LIMIT`]) |
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
pub fn check_nesting(tokens: &[TokenWithSpan]) -> Result<(), LimitExceeded> {
    let mut depth: usize = 0;
    let mut prefix_run: usize = 0;
    let mut previous_is_operand = false;
    for token in tokens {
        let mut operand = false;
        match &token.token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                prefix_run = 0;
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                depth = depth.saturating_sub(1);
                operand = true;
            }
            Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("CASE") => {
                depth += 1;
                prefix_run = 0;
            }
            Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("END") => {
                depth = depth.saturating_sub(1);
                operand = true;
            }
            Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("NOT") => {
                prefix_run += 1;
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
            }
            Token::Number(..) | Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => {
                prefix_run = 0;
                operand = true;
            }
            _ => prefix_run = 0,
        }
        previous_is_operand = operand;
        if depth + prefix_run > MAX_NESTING {
            return Err(LimitExceeded {
                message: format!("the statement is nested too deeply (more than {MAX_NESTING} levels)"),
                location: token.span.start,
            });
        }
    }
    Ok(())
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
        assert!(check_nesting(&tokens(&nested_casts(MAX_NESTING))).is_ok());
        let error = check_nesting(&tokens(&nested_casts(MAX_NESTING + 1))).expect_err("too deep");
        assert!(error.message.contains("nested too deeply"), "{error}");
        assert_eq!(error.location.line, 1);
        assert!(check_nesting(&tokens(&format!("SELECT {}1", "NOT ".repeat(MAX_NESTING + 1)))).is_err());
        assert!(check_nesting(&tokens(&format!("SELECT {}1", "- ".repeat(MAX_NESTING + 1)))).is_err());
        // Binary minus is not a prefix: a long difference is flat.
        assert!(check_nesting(&tokens(&format!("SELECT 1{}", " - 1".repeat(5000)))).is_ok());
    }

    #[test]
    fn the_parser_never_reaches_its_limit_on_what_passes() {
        on_planning_stack(the_parser_never_reaches_its_limit_on_what_passes_body).expect("thread starts");
    }

    fn the_parser_never_reaches_its_limit_on_what_passes_body() {
        let sql = nested_casts(MAX_NESTING);
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
