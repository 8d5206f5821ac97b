//! Expressions of roughly a given type, and the deep and long shapes that stress recursion.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::{Column, Generator, Scope, TYPES, Ty};

impl Generator<'_> {
    pub(super) fn expr_top(&mut self, ty: Ty, scope: Scope<'_>) -> String {
        if self.chance(0.002) {
            return self.deep(ty, scope);
        }
        self.depth = self.rng.random_range(1..5);
        let wrong = if self.chance(0.03) { self.pick(&TYPES) } else { ty };
        self.expr(wrong, scope)
    }

    pub(super) fn literal(&mut self, ty: Ty) -> String {
        if self.chance(0.05) {
            return "NULL".into();
        }
        let odd = self.chance(0.08);
        match ty {
            Ty::Str => {
                if odd {
                    let s = self.pick(&[
                        "''",
                        "'ünïcødé'",
                        "'日本語'",
                        "'🦀'",
                        "'\u{202e}x'",
                        "'a''b'",
                        "E'\\n'",
                        "'\\'",
                        "'%_'",
                        "'\u{0}'",
                    ]);
                    return s.to_string();
                }
                let s = self.pick(&["'a'", "'TCP'", "'http'", "'dns'", "'10.0.0.1'", "'x'"]);
                s.to_string()
            }
            Ty::Bool => self.pick(&["TRUE", "FALSE"]).to_string(),
            Ty::Int | Ty::BigInt | Ty::Decimal => {
                if odd {
                    return self
                        .pick(&[
                            "2147483648",
                            "-2147483649",
                            "9223372036854775807",
                            "-9223372036854775808",
                            "9223372036854775808",
                            "18446744073709551616",
                            "99999999999999999999999999999999999999999",
                            "0",
                            "-0",
                            "1e400",
                            "0x7fffffff",
                        ])
                        .to_string();
                }
                self.rng.random_range(-5..1000).to_string()
            }
            Ty::Double => {
                if odd {
                    return self
                        .pick(&[
                            "1e308",
                            "-1e308",
                            "1e-320",
                            "0.0",
                            "-0.0",
                            "'NaN'::DOUBLE",
                            "'inf'::DOUBLE",
                            "1.7976931348623157e309",
                        ])
                        .to_string();
                }
                format!("{}.{}", self.rng.random_range(-50..500), self.rng.random_range(0..100))
            }
            Ty::Date => self
                .pick(&["DATE '2024-01-01'", "DATE '1970-01-01'", "DATE '9999-12-31'", "DATE '0000-01-01'"])
                .to_string(),
            Ty::Ts => {
                if odd {
                    return self
                        .pick(&[
                            "TIMESTAMP '9999-12-31 23:59:59.999'",
                            "TIMESTAMP '0001-01-01 00:00:00'",
                            "TIMESTAMP '2024-02-30 00:00:00'",
                            "TIMESTAMP 'not a time'",
                            "to_timestamp_millis(9223372036854775807)",
                            "to_timestamp_seconds(-9223372036854775807)",
                        ])
                        .to_string();
                }
                "TIMESTAMP '2024-01-01 00:00:00'".to_string()
            }
        }
    }

    pub(super) fn column_of(&mut self, ty: Ty, scope: Scope<'_>) -> Option<String> {
        let matching: Vec<&Column> = scope.columns.iter().filter(|c| c.ty == ty).collect();
        matching.choose(self.rng).map(|c| c.name.clone())
    }

    /// An expression of roughly type `ty` (the planner decides; coercion is part of the test).
    pub(super) fn expr(&mut self, ty: Ty, scope: Scope<'_>) -> String {
        if self.depth == 0 || self.chance(0.3) {
            if self.chance(0.7)
                && let Some(column) = self.column_of(ty, scope)
            {
                return column;
            }
            return self.literal(ty);
        }
        self.depth -= 1;
        let text = match ty {
            Ty::Bool => self.bool_expr(scope),
            Ty::Str => self.str_expr(scope),
            Ty::Int | Ty::BigInt | Ty::Decimal | Ty::Double => self.num_expr(ty, scope),
            Ty::Date => match self.rng.random_range(0..3) {
                0 => format!("CAST({} AS DATE)", self.expr(Ty::Ts, scope)),
                1 => format!("date_trunc('month', {})::DATE", self.expr(Ty::Ts, scope)),
                _ => self.literal(Ty::Date),
            },
            Ty::Ts => match self.rng.random_range(0..6) {
                0 => format!("{} + {}", self.expr(Ty::Ts, scope), self.interval()),
                1 => format!("{} - {}", self.expr(Ty::Ts, scope), self.interval()),
                2 => format!(
                    "date_trunc('{}', {})",
                    self.pick(&["minute", "hour", "day", "week", "second"]),
                    self.expr(Ty::Ts, scope)
                ),
                3 => format!("to_timestamp_millis({})", self.expr(Ty::BigInt, scope)),
                4 => format!("CAST({} AS TIMESTAMP)", self.expr(Ty::Str, scope)),
                _ => self.case_expr(Ty::Ts, scope),
            },
        };
        self.depth += 1;
        text
    }

    pub(super) fn bool_expr(&mut self, scope: Scope<'_>) -> String {
        match self.rng.random_range(0..12) {
            0 | 1 => {
                let ty = self.pick(&TYPES);
                let op = self.pick(&["=", "<>", "<", ">", "<=", ">=", "!=", "IS DISTINCT FROM"]);
                format!("{} {op} {}", self.expr(ty, scope), self.expr(ty, scope))
            }
            2 => format!("{} AND {}", self.expr(Ty::Bool, scope), self.expr(Ty::Bool, scope)),
            3 => format!("({} OR {})", self.expr(Ty::Bool, scope), self.expr(Ty::Bool, scope)),
            4 => format!("NOT {}", self.expr(Ty::Bool, scope)),
            5 => {
                let ty = self.pick(&TYPES);
                format!("{} IS {}NULL", self.expr(ty, scope), if self.chance(0.5) { "NOT " } else { "" })
            }
            6 => {
                let ty = self.pick(&[Ty::Int, Ty::BigInt, Ty::Double, Ty::Ts]);
                format!("{} BETWEEN {} AND {}", self.expr(ty, scope), self.literal(ty), self.literal(ty))
            }
            7 => {
                let ty = self.pick(&[Ty::Int, Ty::Str, Ty::BigInt]);
                let n = self.rng.random_range(1..6);
                let items: Vec<String> = (0..n).map(|_| self.literal(ty)).collect();
                format!(
                    "{} {}IN ({})",
                    self.expr(ty, scope),
                    if self.chance(0.2) { "NOT " } else { "" },
                    items.join(", ")
                )
            }
            8 => format!("{} LIKE {}", self.expr(Ty::Str, scope), self.pick(&["'%a%'", "'_'", "'%'", "'\\%'", "''"])),
            9 => format!(
                "regexp_like({}, {})",
                self.expr(Ty::Str, scope),
                self.pick(&["'^a.*'", "'('", "'[a-z]+'", "'(a*)*b'"])
            ),
            10 => format!("starts_with({}, {})", self.expr(Ty::Str, scope), self.literal(Ty::Str)),
            _ => self.case_expr(Ty::Bool, scope),
        }
    }

    pub(super) fn str_expr(&mut self, scope: Scope<'_>) -> String {
        match self.rng.random_range(0..12) {
            0 => format!("upper({})", self.expr(Ty::Str, scope)),
            1 => format!("lower({})", self.expr(Ty::Str, scope)),
            2 => format!("concat({}, {})", self.expr(Ty::Str, scope), self.expr(Ty::Str, scope)),
            3 => format!("{} || {}", self.expr(Ty::Str, scope), self.expr(Ty::Str, scope)),
            4 => format!(
                "substr({}, {}, {})",
                self.expr(Ty::Str, scope),
                self.expr(Ty::Int, scope),
                self.expr(Ty::Int, scope)
            ),
            5 => format!("trim({})", self.expr(Ty::Str, scope)),
            6 => {
                format!("replace({}, {}, {})", self.expr(Ty::Str, scope), self.literal(Ty::Str), self.literal(Ty::Str))
            }
            7 => {
                let from = self.pick(&TYPES);
                format!("CAST({} AS STRING)", self.expr(from, scope))
            }
            8 => format!("md5({})", self.expr(Ty::Str, scope)),
            9 => format!("coalesce({}, {})", self.expr(Ty::Str, scope), self.literal(Ty::Str)),
            10 => format!(
                "{}({}, {})",
                self.pick(&["lpad", "rpad", "repeat", "left", "right"]),
                self.expr(Ty::Str, scope),
                self.pick(&["3", "0", "-1", "1000000", "2147483647"])
            ),
            _ => self.case_expr(Ty::Str, scope),
        }
    }

    pub(super) fn num_expr(&mut self, ty: Ty, scope: Scope<'_>) -> String {
        match self.rng.random_range(0..12) {
            0..=2 => {
                let op = self.pick(&["+", "-", "*", "/", "%"]);
                format!("{} {op} {}", self.expr(ty, scope), self.expr(ty, scope))
            }
            3 => format!("({})", self.expr(ty, scope)),
            4 => format!("-{}", self.expr(ty, scope)),
            5 => format!("abs({})", self.expr(ty, scope)),
            6 => {
                let from = self.pick(&TYPES);
                format!("CAST({} AS {})", self.expr(from, scope), ty.sql())
            }
            7 => format!("length({})", self.expr(Ty::Str, scope)),
            8 => format!("round({}, {})", self.expr(Ty::Double, scope), self.pick(&["0", "2", "-1", "100"])),
            9 => format!(
                "{}({})",
                self.pick(&["sqrt", "ln", "exp", "floor", "ceil", "signum", "cbrt", "factorial"]),
                self.expr(ty, scope)
            ),
            10 => format!(
                "{}({}, {})",
                self.pick(&["power", "nullif", "coalesce", "greatest", "least", "gcd", "log"]),
                self.expr(ty, scope),
                self.expr(ty, scope)
            ),
            _ => {
                if self.chance(0.5) {
                    format!(
                        "extract({} FROM {})",
                        self.pick(&["hour", "minute", "year", "epoch", "dow"]),
                        self.expr(Ty::Ts, scope)
                    )
                } else {
                    self.case_expr(ty, scope)
                }
            }
        }
    }

    pub(super) fn case_expr(&mut self, ty: Ty, scope: Scope<'_>) -> String {
        let mut text = String::from("CASE");
        for _ in 0..self.rng.random_range(1..4) {
            text.push_str(&format!(" WHEN {} THEN {}", self.expr(Ty::Bool, scope), self.expr(ty, scope)));
        }
        if self.chance(0.7) {
            text.push_str(&format!(" ELSE {}", self.expr(ty, scope)));
        }
        text.push_str(" END");
        text
    }

    /// An expression that stresses recursion or size: long chains, and nesting that is deep,
    /// sometimes broken (left open, or wrong at the innermost level) so the parser fails deep down.
    pub(super) fn deep(&mut self, ty: Ty, scope: Scope<'_>) -> String {
        let n = self.pick(&[10, 20, 30, 49, 50, 64, 100, 200, 500, 1_000, 2_000, 5_000]);
        let column = self.column_of(ty, scope).unwrap_or_else(|| "1".into());
        match self.rng.random_range(0..10) {
            0 => vec!["1"; n].join(" + "),
            1 => (0..n).map(|i| format!("{column} = {i}")).collect::<Vec<_>>().join(" OR "),
            2 => (0..n).map(|i| format!("{column} <> {i}")).collect::<Vec<_>>().join(" AND "),
            3 => format!("{}1", "- ".repeat(n)),
            4 => format!("{}TRUE", "NOT ".repeat(n)),
            5 => format!("{column} IN ({})", (0..n * 10).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")),
            6 => format!("'{}'", "x".repeat(n.min(1_000) * 1_000)),
            7 => format!("concat({})", vec!["'a'"; n].join(", ")),
            _ => self.nested(n, &column),
        }
    }

    /// `n` levels of one construct around `inner`: closed, left open, or broken inside.
    fn nested(&mut self, n: usize, inner: &str) -> String {
        let (open, close) = self.pick(&[
            ("CAST(", " AS BIGINT)"),
            ("TRY_CAST(", " AS BIGINT)"),
            ("NOT (", ")"),
            ("(", ")"),
            ("abs(", ")"),
            ("coalesce(", ", 1)"),
            ("CASE WHEN TRUE THEN ", " END"),
            ("substring(", " FROM 1)"),
            ("extract(year FROM ", ")"),
            ("ceil(", ")"),
            ("trim(", ")"),
            ("ARRAY[", "]"),
            ("(SELECT ", ")"),
            ("EXISTS (SELECT ", ")"),
            ("INTERVAL (", ")"),
        ]);
        match self.rng.random_range(0..4) {
            0 => format!("{}{inner}", open.repeat(n)),
            1 => format!("{}{inner} +{}", open.repeat(n), close.repeat(n)),
            _ => format!("{}{inner}{}", open.repeat(n), close.repeat(n)),
        }
    }
}
