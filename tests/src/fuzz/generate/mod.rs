//! Scripts generated from the grammar streamsql accepts: `SET`, `CREATE TABLE` over the
//! built-in connectors, views, materialized views, `INSERT`/`SELECT` over tables, views and
//! `TUMBLE`/`HOP` window TVFs, `GROUP BY`/`HAVING`, `EXPLAIN`, `DESCRIBE`, `SHOW`.
//!
//! The generator keeps a model of the tables it declared (columns, types, event time) so most
//! statements are meaningful and get deep into the planner; a small share of every choice is
//! deliberately wrong or extreme (odd intervals, huge numbers, duplicate keys, unsupported
//! clauses), and now and then an expression takes one of the shapes that stress recursion:
//! thousands of chained terms, deep nesting of parentheses, CASTs, CASEs or function calls.

mod ddl;
mod expr;
mod query;

use rand::Rng;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;

/// Column types the generator knows how to build expressions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Bool,
    Int,
    BigInt,
    Double,
    Decimal,
    Date,
    Ts,
}

const TYPES: [Ty; 8] = [Ty::Str, Ty::Bool, Ty::Int, Ty::BigInt, Ty::Double, Ty::Decimal, Ty::Date, Ty::Ts];

impl Ty {
    fn sql(self) -> &'static str {
        match self {
            Ty::Str => "STRING",
            Ty::Bool => "BOOLEAN",
            Ty::Int => "INT",
            Ty::BigInt => "BIGINT",
            Ty::Double => "DOUBLE",
            Ty::Decimal => "DECIMAL(12, 2)",
            Ty::Date => "DATE",
            Ty::Ts => "TIMESTAMP(3)",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::BigInt | Ty::Double | Ty::Decimal)
    }
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    ty: Ty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Source,
    Sink,
    View,
}

#[derive(Debug, Clone)]
struct Relation {
    name: String,
    kind: Kind,
    columns: Vec<Column>,
    /// The event-time column, for window TVFs.
    event_time: Option<String>,
}

/// A generated script: its statements, joined with `;` by [`Script::text`].
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub statements: Vec<String>,
}

impl Script {
    pub fn text(&self) -> String {
        let mut text = self.statements.join(";\n");
        text.push_str(";\n");
        text
    }
}

/// Scope of an expression: the columns it may read.
#[derive(Clone, Copy)]
struct Scope<'a> {
    columns: &'a [Column],
}

/// The generator of one script; `dir` is where file tables point (never touched by planning).
pub struct Generator<'a> {
    rng: &'a mut SmallRng,
    dir: String,
    relations: Vec<Relation>,
    names: usize,
    /// Expression nesting budget left for the current expression.
    depth: u32,
}
impl<'a> Generator<'a> {
    pub fn new(rng: &'a mut SmallRng, dir: &str) -> Self {
        Self { rng, dir: dir.to_string(), relations: Vec::new(), names: 0, depth: 0 }
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        *items.choose(self.rng).unwrap_or(&items[0])
    }

    pub(super) fn fresh(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}{}", self.names)
    }

    /// A whole script: settings, tables, views, then queries.
    pub fn script(&mut self) -> Script {
        let mut script = Script::default();
        for _ in 0..self.rng.random_range(0..3) {
            script.statements.push(self.set());
        }
        for _ in 0..self.rng.random_range(1..4) {
            let ddl = self.source_table();
            script.statements.push(ddl);
        }
        if self.chance(0.4) {
            let view = self.view();
            script.statements.push(view);
        }
        for _ in 0..self.rng.random_range(1..5) {
            let statements = self.query_statement();
            script.statements.extend(statements);
        }
        if self.chance(0.15) {
            let extra = self.catalog_statement();
            script.statements.push(extra);
        }
        if self.chance(0.003) {
            // Many statements in one script.
            let n = self.pick(&[100, 1_000]);
            script.statements.extend((0..n).map(|i| format!("SET 'execution.batch-size' = '{}'", i + 1)));
        }
        if self.chance(0.1) {
            script.statements.shuffle_some(self.rng);
        }
        script
    }

    /// A string that is wrong as most values: empty, negative, huge, unicode, not a number.
    pub(super) fn odd_text(&mut self) -> String {
        self.pick(&[
            "",
            "0",
            "-1",
            "-9223372036854775808",
            "9223372036854775807",
            "18446744073709551616",
            "99999999999999999999999999999999",
            "1e308",
            "1e309",
            "NaN",
            "inf",
            "-0",
            "0x10",
            "1.5",
            " 7 ",
            "abc",
            "ünïcødé",
            "日本語",
            "🦀🦀",
            "\u{202e}rtl",
            "a\u{0}b",
            "1 fortnight",
            "-5 s",
            "9999999999999999 d",
            "1 ms",
            "'",
            "''",
            "\\",
        ])
        .to_string()
    }

    pub(super) fn option_value(&mut self, good: &str) -> String {
        if self.chance(0.9) { good.to_string() } else { self.odd_text() }
    }
}

/// Shuffles a little: swaps two random elements.
trait ShuffleSome {
    fn shuffle_some(&mut self, rng: &mut SmallRng);
}

impl<T> ShuffleSome for Vec<T> {
    fn shuffle_some(&mut self, rng: &mut SmallRng) {
        if self.len() > 1 {
            let a = rng.random_range(0..self.len());
            let b = rng.random_range(0..self.len());
            self.swap(a, b);
        }
    }
}
