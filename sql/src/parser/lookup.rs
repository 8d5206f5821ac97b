//! Flink's lookup-join clause, `JOIN dim FOR SYSTEM_TIME AS OF s.proc_time [AS d]`, taken out of
//! the tokens before sqlparser sees them (its dialect would parse it, and DataFusion would then
//! drop it without a word). What is left is a plain join; the table named before the clause is
//! recorded, and the statement is refused unless that table is one a lookup join reads: a
//! bounded table without a watermark (a file), loaded once. Against such a table the result does
//! not depend on the time named (`AS OF` any time sees the same rows).

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Span, Token, TokenWithSpan};

/// A `FOR SYSTEM_TIME AS OF` clause: the table it versions and where the clause is.
#[derive(Debug, Clone)]
pub struct LookupClause {
    /// The table name as written before the clause (last part of a qualified name).
    pub table: String,
    pub span: Span,
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

/// Removes every `FOR SYSTEM_TIME AS OF <column>` clause from `tokens`; returns what they named.
pub fn strip(tokens: &mut Vec<TokenWithSpan>) -> Vec<LookupClause> {
    let mut clauses = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !is_keyword(&tokens[i].token, Keyword::FOR) {
            i += 1;
            continue;
        }
        // FOR SYSTEM_TIME AS OF, whitespace between.
        let significant: Vec<usize> =
            (i..tokens.len()).filter(|&j| !matches!(tokens[j].token, Token::Whitespace(_))).take(4).collect();
        let words = [Keyword::FOR, Keyword::SYSTEM_TIME, Keyword::AS, Keyword::OF];
        if significant.len() < 4 || !significant.iter().zip(words).all(|(&j, k)| is_keyword(&tokens[j].token, k)) {
            i += 1;
            continue;
        }
        // The time: a column, maybe qualified (`s.proc_time`), or a call (`PROCTIME()`).
        let mut end = significant[3] + 1;
        let skip_space = |from: usize, tokens: &[TokenWithSpan]| {
            (from..tokens.len()).find(|&j| !matches!(tokens[j].token, Token::Whitespace(_))).unwrap_or(tokens.len())
        };
        let mut at = skip_space(end, tokens);
        while at < tokens.len() && matches!(tokens[at].token, Token::Word(_)) {
            end = at + 1;
            let next = skip_space(end, tokens);
            match tokens.get(next).map(|t| &t.token) {
                Some(Token::Period) => at = skip_space(next + 1, tokens),
                Some(Token::LParen)
                    if tokens.get(skip_space(next + 1, tokens)).map(|t| &t.token) == Some(&Token::RParen) =>
                {
                    end = skip_space(next + 1, tokens) + 1;
                    break;
                }
                _ => break,
            }
        }
        let table = (0..i)
            .rev()
            .find(|&j| !matches!(tokens[j].token, Token::Whitespace(_)))
            .and_then(|j| match &tokens[j].token {
                Token::Word(w) => Some(w.value.to_lowercase()),
                _ => None,
            })
            .unwrap_or_default();
        let span = Span::new(tokens[i].span.start, tokens[end - 1].span.end);
        clauses.push(LookupClause { table, span });
        tokens.drain(i..end);
    }
    clauses
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn stripped(sql: &str) -> (String, Vec<String>) {
        let mut tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().expect("tokens");
        let clauses = strip(&mut tokens);
        (tokens.iter().map(|t| t.token.to_string()).collect(), clauses.into_iter().map(|c| c.table).collect())
    }

    #[test]
    fn the_clause_is_taken_out_and_its_table_kept() {
        let (sql, tables) =
            stripped("SELECT * FROM b JOIN side_input FOR SYSTEM_TIME AS OF b.p_time AS s ON b.k = s.k");
        assert_eq!(sql, "SELECT * FROM b JOIN side_input  AS s ON b.k = s.k");
        assert_eq!(tables, ["side_input"]);
        let (sql, tables) = stripped("FROM o JOIN Rates FOR SYSTEM_TIME AS OF PROCTIME() r ON o.c = r.c");
        assert_eq!(sql, "FROM o JOIN Rates  r ON o.c = r.c");
        assert_eq!(tables, ["rates"]);
        let (sql, tables) = stripped("SELECT x FROM t WHERE a FOR b");
        assert_eq!((sql.as_str(), tables.len()), ("SELECT x FROM t WHERE a FOR b", 0));
    }
}
