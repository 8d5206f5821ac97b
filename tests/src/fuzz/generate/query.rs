//! Queries: projections, windowed and updating aggregations, and clauses streams refuse.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::{Column, Generator, Kind, Relation, Scope, ShuffleSome, TYPES, Ty};

impl Generator<'_> {
    pub(super) fn sources(&self) -> Vec<usize> {
        (0..self.relations.len()).filter(|&i| self.relations[i].kind != Kind::Sink).collect()
    }

    /// An `INSERT INTO` (with its sink table), a bare `SELECT`, an `EXPLAIN` or a materialized view.
    pub(super) fn query_statement(&mut self) -> Vec<String> {
        let Some((query, outputs)) = self.query() else {
            return vec!["SHOW TABLES".into()];
        };
        match self.rng.random_range(0..10) {
            0..=4 => {
                let (ddl, sink) = self.sink_table(&outputs);
                vec![ddl, format!("INSERT INTO {sink}\n{query}")]
            }
            5 | 6 => vec![query],
            7 => {
                let name = self.fresh("mv");
                let options = match self.rng.random_range(0..5) {
                    0 => format!(" WITH ('retention' = '{}')", self.option_value("1 HOUR")),
                    1 => format!(" WITH ('max-rows' = '{}')", self.option_value("100")),
                    2 => " WITH ('connector' = 'print')".to_string(),
                    _ => String::new(),
                };
                self.relations.push(Relation {
                    name: name.clone(),
                    kind: Kind::Sink,
                    columns: outputs,
                    event_time: None,
                });
                vec![format!("CREATE MATERIALIZED VIEW {name}{options} AS\n{query}")]
            }
            8 => vec![format!("EXPLAIN {query}")],
            _ => {
                let (ddl, sink) = self.sink_table(&outputs);
                vec![ddl, format!("EXPLAIN INSERT INTO {sink} {query}")]
            }
        }
    }

    /// A query and the columns it produces.
    pub(super) fn query(&mut self) -> Option<(String, Vec<Column>)> {
        let input = *self.sources().choose(self.rng)?;
        let relation = self.relations[input].clone();
        let shape = self.rng.random_range(0..100);
        let query = if shape < 40 && relation.event_time.is_some() {
            self.windowed(&relation)
        } else if shape < 60 {
            self.updating(&relation)
        } else if shape < 88 {
            self.projection(&relation)
        } else {
            self.unusual(&relation)
        };
        let (mut text, outputs) = query;
        if self.chance(0.02) {
            text = format!("WITH q AS ({text}) SELECT * FROM q");
        }
        if self.chance(0.02) {
            text = format!("({text})");
        }
        Some((text, outputs))
    }

    pub(super) fn projection(&mut self, relation: &Relation) -> (String, Vec<Column>) {
        let scope = Scope { columns: &relation.columns };
        let mut items = Vec::new();
        let mut outputs = Vec::new();
        if self.chance(0.1) {
            return (format!("SELECT * FROM {}", relation.name), relation.columns.clone());
        }
        for _ in 0..self.rng.random_range(1..6) {
            let ty = self.pick(&TYPES);
            let expr = self.expr_top(ty, scope);
            let name = self.fresh("c");
            items.push(format!("{expr} AS {name}"));
            outputs.push(Column { name, ty });
        }
        let mut text = format!("SELECT {} FROM {}", items.join(", "), self.from(relation));
        if self.chance(0.5) {
            let predicate = self.expr_top(Ty::Bool, scope);
            text.push_str(&format!("\nWHERE {predicate}"));
        }
        (text, outputs)
    }

    /// `relation`, or a subquery over it (the planner sees through both).
    pub(super) fn from(&mut self, relation: &Relation) -> String {
        if self.chance(0.005) {
            // Subqueries nested deeply.
            let n = self.pick(&[20, 100, 500]);
            return format!("{}{}{}", "(SELECT * FROM ".repeat(n), relation.name, ") AS s".repeat(n));
        }
        if self.chance(0.1) {
            let alias = self.fresh("s");
            return format!("(SELECT * FROM {}) AS {alias}", relation.name);
        }
        if self.chance(0.1) {
            let alias = self.pick(&["t", "AS t", "\"T\"", "x"]);
            return format!("{} {alias}", relation.name);
        }
        relation.name.clone()
    }

    pub(super) fn keys(&mut self, scope: Scope<'_>) -> Vec<(String, Column)> {
        let mut keys = Vec::new();
        for _ in 0..self.rng.random_range(0..4) {
            if self.chance(0.6) {
                let column = self.pick_column(scope.columns);
                if let Some(column) = column
                    && keys.iter().all(|(_, c): &(String, Column)| c.name != column.name)
                {
                    keys.push((column.name.clone(), column));
                }
            } else {
                let ty = self.pick(&[Ty::Str, Ty::Int, Ty::BigInt, Ty::Bool]);
                let expr = self.expr_top(ty, scope);
                let name = self.fresh("g");
                keys.push((expr, Column { name, ty }));
            }
        }
        keys
    }

    /// Now and then the same key twice in GROUP BY, as users write it by accident.
    pub(super) fn maybe_repeat_key(&mut self, groups: &mut Vec<String>) {
        if self.chance(0.08)
            && let Some(key) = groups.choose(self.rng).cloned()
        {
            groups.push(key);
        }
    }

    pub(super) fn pick_column(&mut self, columns: &[Column]) -> Option<Column> {
        columns.choose(self.rng).cloned()
    }

    pub(super) fn aggregates(&mut self, scope: Scope<'_>) -> Vec<(String, Column)> {
        let mut out = Vec::new();
        let count = if self.chance(0.1) { 0 } else { self.rng.random_range(1..5) };
        for _ in 0..count {
            let (expr, ty) = self.aggregate_call(scope);
            let name = self.fresh("a");
            out.push((expr, Column { name, ty }));
        }
        out
    }

    pub(super) fn aggregate_call(&mut self, scope: Scope<'_>) -> (String, Ty) {
        let inner = scope;
        let numeric = self.pick(&[Ty::Int, Ty::BigInt, Ty::Double]);
        let any = self.pick(&TYPES);
        let (text, ty) = match self.rng.random_range(0..14) {
            0 | 1 => ("COUNT(*)".to_string(), Ty::BigInt),
            2 => (format!("COUNT({})", self.expr_top(any, inner)), Ty::BigInt),
            3 => (format!("COUNT(DISTINCT {})", self.expr_top(any, inner)), Ty::BigInt),
            4 => (
                format!("SUM({})", self.expr_top(numeric, inner)),
                if numeric == Ty::Double { Ty::Double } else { Ty::BigInt },
            ),
            5 => (format!("AVG({})", self.expr_top(numeric, inner)), Ty::Double),
            6 => (format!("MIN({})", self.expr_top(any, inner)), any),
            7 => (format!("MAX({})", self.expr_top(any, inner)), any),
            8 => (format!("approx_distinct({})", self.expr_top(any, inner)), Ty::BigInt),
            9 => (format!("stddev({})", self.expr_top(numeric, inner)), Ty::Double),
            10 => (format!("bool_and({})", self.expr_top(Ty::Bool, inner)), Ty::Bool),
            11 => (format!("string_agg({}, ',')", self.expr_top(Ty::Str, inner)), Ty::Str),
            12 => {
                let f = self.pick(&[
                    "median",
                    "var_pop",
                    "array_agg",
                    "first_value",
                    "last_value",
                    "approx_median",
                    "bit_or",
                ]);
                (format!("{f}({})", self.expr_top(numeric, inner)), numeric)
            }
            _ => (format!("SUM(DISTINCT {})", self.expr_top(Ty::BigInt, inner)), Ty::BigInt),
        };
        if self.chance(0.1) {
            let predicate = self.expr_top(Ty::Bool, inner);
            return (format!("{text} FILTER (WHERE {predicate})"), ty);
        }
        (text, ty)
    }

    pub(super) fn window_tvf(&mut self, relation: &Relation) -> String {
        let time = relation.event_time.clone().unwrap_or_else(|| "ts".into());
        let descriptor =
            if self.chance(0.97) { time } else { self.pick(&["k", "nope", "\"TS\"", "ts, ts"]).to_string() };
        let input =
            if self.chance(0.98) { relation.name.clone() } else { self.pick(&["missing", "(SELECT 1)"]).to_string() };
        let call = match self.rng.random_range(0..14) {
            0..=5 => format!("TUMBLE(TABLE {input}, DESCRIPTOR({descriptor}), {})", self.interval()),
            6..=8 => {
                let slide = self.interval();
                let size = self.interval();
                format!("HOP(TABLE {input}, DESCRIPTOR({descriptor}), {slide}, {size})")
            }
            9..=10 => {
                let step = self.interval();
                let size = self.interval();
                format!("CUMULATE(TABLE {input}, DESCRIPTOR({descriptor}), {step}, {size})")
            }
            11..=12 => {
                let partition = if self.chance(0.5) {
                    let key = relation.columns.first().map_or_else(|| "k".to_string(), |c| c.name.clone());
                    format!(" PARTITION BY {key}")
                } else {
                    String::new()
                };
                format!("SESSION(TABLE {input}{partition}, DESCRIPTOR({descriptor}), {})", self.interval())
            }
            _ => self
                .pick(&[
                    "HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MILLISECOND, INTERVAL '1' DAY)",
                    "CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '1' MINUTE)",
                    "SESSION(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND)",
                    "TUMBLE(TABLE t, DESCRIPTOR(ts))",
                    "TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '1' SECOND)",
                    "TUMBLE(DESCRIPTOR(ts), TABLE t, INTERVAL '1' SECOND)",
                    "TUMBLE()",
                    "TUMBLE(TABLE t, DESCRIPTOR(), INTERVAL '1' SECOND)",
                    "TUMBLE(TABLE (t), DESCRIPTOR(ts), INTERVAL '1' SECOND)",
                ])
                .replace("TABLE t", &format!("TABLE {input}")),
        };
        format!("TABLE({call})")
    }

    pub(super) fn windowed(&mut self, relation: &Relation) -> (String, Vec<Column>) {
        let scope = Scope { columns: &relation.columns };
        let keys = self.keys(scope);
        let aggregates = self.aggregates(scope);
        let mut groups = vec!["window_start".to_string(), "window_end".to_string()];
        if self.chance(0.1) {
            groups.push("window_time".into());
        }
        if self.chance(0.05) {
            groups.retain(|g| g != "window_end");
        }
        let mut items: Vec<String> = groups.clone();
        let mut outputs: Vec<Column> = groups.iter().map(|g| Column { name: g.clone(), ty: Ty::Ts }).collect();
        for (expr, column) in &keys {
            items.push(format!("{expr} AS {}", column.name));
            outputs.push(column.clone());
            groups.push(expr.clone());
        }
        for (expr, column) in &aggregates {
            items.push(format!("{expr} AS {}", column.name));
            outputs.push(column.clone());
        }
        if self.chance(0.05) {
            groups = (1..=groups.len()).map(|i| i.to_string()).collect();
        }
        self.maybe_repeat_key(&mut groups);
        if self.chance(0.1) {
            groups.shuffle_some(self.rng);
        }
        let mut text = format!("SELECT {}\nFROM {}", items.join(", "), self.window_tvf(relation));
        if self.chance(0.3) {
            let predicate = self.expr_top(Ty::Bool, scope);
            text.push_str(&format!("\nWHERE {predicate}"));
        }
        if self.chance(0.97) {
            text.push_str(&format!("\nGROUP BY {}", groups.join(", ")));
        }
        if self.chance(0.15) {
            let predicate = self.having(scope);
            text.push_str(&format!("\nHAVING {predicate}"));
        }
        (text, outputs)
    }

    pub(super) fn having(&mut self, scope: Scope<'_>) -> String {
        let (aggregate, ty) = self.aggregate_call(scope);
        let literal = self.literal(if ty.numeric() { ty } else { Ty::BigInt });
        let op = self.pick(&[">", "<", "=", "<>", ">="]);
        format!("{aggregate} {op} {literal}")
    }

    pub(super) fn updating(&mut self, relation: &Relation) -> (String, Vec<Column>) {
        let scope = Scope { columns: &relation.columns };
        let keys = self.keys(scope);
        let aggregates = self.aggregates(scope);
        let mut items = Vec::new();
        let mut outputs = Vec::new();
        let mut groups = Vec::new();
        for (expr, column) in &keys {
            items.push(format!("{expr} AS {}", column.name));
            outputs.push(column.clone());
            groups.push(expr.clone());
        }
        for (expr, column) in &aggregates {
            items.push(format!("{expr} AS {}", column.name));
            outputs.push(column.clone());
        }
        if items.is_empty() {
            items.push("COUNT(*) AS n".into());
            outputs.push(Column { name: "n".into(), ty: Ty::BigInt });
        }
        let mut text = format!("SELECT {}\nFROM {}", items.join(", "), self.from(relation));
        if self.chance(0.3) {
            let predicate = self.expr_top(Ty::Bool, scope);
            text.push_str(&format!("\nWHERE {predicate}"));
        }
        self.maybe_repeat_key(&mut groups);
        if !groups.is_empty() {
            text.push_str(&format!("\nGROUP BY {}", groups.join(", ")));
        }
        if self.chance(0.15) {
            let predicate = self.having(scope);
            text.push_str(&format!("\nHAVING {predicate}"));
        }
        (text, outputs)
    }

    /// Clauses streams do not support, or plans outside the common shapes.
    pub(super) fn unusual(&mut self, relation: &Relation) -> (String, Vec<Column>) {
        let name = &relation.name;
        let column = relation.columns.first().map(|c| c.name.clone()).unwrap_or_else(|| "ts".into());
        let outputs = vec![relation.columns.first().cloned().unwrap_or(Column { name: "ts".into(), ty: Ty::Ts })];
        let other = self.relations.choose(self.rng).map(|r| r.name.clone()).unwrap_or_else(|| name.clone());
        let text = match self.rng.random_range(0..22) {
            0 => format!("SELECT {column} FROM {name} ORDER BY {column}"),
            1 => format!("SELECT {column} FROM {name} LIMIT 10"),
            2 => format!("SELECT DISTINCT {column} FROM {name}"),
            3 => format!("SELECT a.{column} FROM {name} a JOIN {other} b ON a.{column} = b.{column}"),
            4 => format!("SELECT {column} FROM {name} UNION ALL SELECT {column} FROM {other}"),
            5 => format!("SELECT {column}, ROW_NUMBER() OVER (PARTITION BY {column}) FROM {name}"),
            6 => format!("SELECT {column} FROM {name} WHERE {column} IN (SELECT {column} FROM {other})"),
            7 => format!("SELECT (SELECT MAX({column}) FROM {other}) FROM {name}"),
            8 => format!("SELECT {column} FROM {name} WHERE EXISTS (SELECT 1 FROM {other})"),
            9 => format!("SELECT {column}, COUNT(*) FROM {name} GROUP BY ROLLUP({column})"),
            10 => format!("SELECT {column}, COUNT(*) FROM {name} GROUP BY GROUPING SETS (({column}), ())"),
            11 => format!("SELECT {column}, COUNT(*) FROM {name} GROUP BY CUBE({column}, {column})"),
            12 => "SELECT 1".to_string(),
            13 => "VALUES (1), (2)".to_string(),
            14 => format!("SELECT * FROM {name}, {other}"),
            15 => format!("SELECT {column} FROM {name} GROUP BY {column}, {column}, {column}"),
            16 => format!("SELECT COUNT(*) FROM (SELECT {column}, COUNT(*) AS n FROM {name} GROUP BY {column}) s"),
            17 => format!("SELECT unnest([1, 2]) FROM {name}"),
            18 => format!("SELECT {column} FROM {name} CROSS JOIN UNNEST([1]) AS u(x)"),
            19 => format!("SELECT {column} FROM {name} GROUP BY {column} HAVING COUNT(*) > 1 ORDER BY 1 LIMIT 1"),
            20 => format!("SELECT * FROM {name} WHERE {column} = $1"),
            _ => format!("SELECT {column} FROM {name}, LATERAL (SELECT 1) l"),
        };
        (text, outputs)
    }
}
