//! Scripts generated from the grammar streamsql accepts: `SET`, `CREATE TABLE` over the
//! built-in connectors, views, materialized views, `INSERT`/`SELECT` over tables, views and
//! `TUMBLE`/`HOP` window TVFs, `GROUP BY`/`HAVING`, `EXPLAIN`, `DESCRIBE`, `SHOW`.
//!
//! The generator keeps a model of the tables it declared (columns, types, event time) so most
//! statements are meaningful and get deep into the planner; a small share of every choice is
//! deliberately wrong or extreme (odd intervals, huge numbers, duplicate keys, unsupported
//! clauses), and now and then an expression takes one of the shapes that stress recursion:
//! thousands of chained terms, deep nesting of parentheses, CASTs, CASEs or function calls.

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

/// Netflow's default columns (a table declared with no columns gets these).
const NETFLOW_COLUMNS: &[(&str, Ty)] = &[
    ("flow_id", Ty::BigInt),
    ("ts", Ty::Ts),
    ("src_ip", Ty::Str),
    ("dst_ip", Ty::Str),
    ("src_port", Ty::Int),
    ("dst_port", Ty::Int),
    ("protocol", Ty::Str),
    ("flow_type", Ty::Str),
    ("app", Ty::Str),
    ("bytes_in", Ty::BigInt),
    ("bytes_out", Ty::BigInt),
    ("packets", Ty::BigInt),
    ("duration", Ty::Double),
];

const COLUMN_NAMES: &[&str] = &["k", "v", "name", "amount", "price", "ok", "day", "note", "n", "x", "y", "city"];

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

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        *items.choose(self.rng).unwrap_or(&items[0])
    }

    fn fresh(&mut self, prefix: &str) -> String {
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

    fn set(&mut self) -> String {
        let key = if self.chance(0.95) {
            self.pick(&["parallelism.default", "execution.batch-size", "update-interval"])
        } else {
            self.pick(&["pipeline.name", "", "parallelism", "PARALLELISM.DEFAULT"])
        };
        let value = if self.chance(0.7) {
            match key {
                "update-interval" => self.pick(&["500 ms", "0", "2 s", "1 DAY", "1 h"]).to_string(),
                _ => self.rng.random_range(1..9).to_string(),
            }
        } else {
            self.odd_text()
        };
        match self.rng.random_range(0..10) {
            0 => format!("SET {key} = {}", value.replace('\'', "")),
            1 => format!("SET '{key}' TO '{}'", value.replace('\'', "''")),
            _ => format!("SET '{key}' = '{}'", value.replace('\'', "''")),
        }
    }

    /// A string that is wrong as most values: empty, negative, huge, unicode, not a number.
    fn odd_text(&mut self) -> String {
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

    fn option_value(&mut self, good: &str) -> String {
        if self.chance(0.9) { good.to_string() } else { self.odd_text() }
    }

    fn options(&mut self, pairs: Vec<(&str, String)>) -> String {
        let mut pairs: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if self.chance(0.05) && !pairs.is_empty() {
            let i = self.rng.random_range(0..pairs.len());
            pairs.remove(i);
        }
        if self.chance(0.05) {
            let key = self.pick(&["connector", "path", "format", "unknown-key", "seed", ""]).to_string();
            let value = self.odd_text();
            pairs.push((key, value));
        }
        let body =
            pairs.iter().map(|(k, v)| format!("'{}' = '{}'", k, v.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
        format!("WITH ({body})")
    }

    fn interval(&mut self) -> String {
        if self.chance(0.85) {
            let (amount, unit) = self.pick(&[
                ("1", "SECOND"),
                ("5", "SECOND"),
                ("10", "SECOND"),
                ("1", "MINUTE"),
                ("500", "MILLISECOND"),
                ("2", "HOUR"),
                ("1", "DAY"),
            ]);
            return format!("INTERVAL '{amount}' {unit}");
        }
        self.pick(&[
            "INTERVAL '0' SECOND",
            "INTERVAL '-1' SECOND",
            "INTERVAL '1' MILLISECOND",
            "INTERVAL '1' DAY",
            "INTERVAL '100000' DAY",
            "INTERVAL '999999999999' DAY",
            "INTERVAL '99999999999999999999' SECOND",
            "INTERVAL '1.5' SECOND",
            "INTERVAL '0.0001' SECOND",
            "INTERVAL '1e3' SECOND",
            "INTERVAL 'NaN' SECOND",
            "INTERVAL 'inf' SECOND",
            "INTERVAL '' SECOND",
            "INTERVAL '5 seconds'",
            "INTERVAL '5'",
            "INTERVAL '1' YEAR",
            "INTERVAL '1' MONTH",
            "INTERVAL '1' WEEK",
            "INTERVAL '1:30' MINUTE TO SECOND",
            "INTERVAL 5 SECOND",
            "5",
            "NULL",
            "'5 seconds'",
            "INTERVAL '5' SECOND + INTERVAL '1' SECOND",
            "INTERVAL '７' SECOND",
        ])
        .to_string()
    }

    fn source_table(&mut self) -> String {
        let name = self.fresh("src");
        let with_time = self.chance(0.85);
        let (columns, declared, connector) = if self.chance(0.5) {
            let columns: Vec<Column> =
                NETFLOW_COLUMNS.iter().map(|(n, t)| Column { name: n.to_string(), ty: *t }).collect();
            let declared = if self.chance(0.3) {
                Vec::new()
            } else {
                columns
                    .iter()
                    .filter(|c| c.name != "flow_id" && (c.name == "ts" || self.chance(0.8)))
                    .cloned()
                    .collect()
            };
            let mut options = vec![("connector", "netflow".to_string())];
            if self.chance(0.6) {
                let rows = self.option_value("1000");
                options.push(("number-of-rows", rows));
            }
            if self.chance(0.4) {
                let rate = self.option_value("1000");
                options.push(("event-time.rows-per-second", rate));
            }
            if self.chance(0.3) {
                let rate = self.option_value("2000");
                options.push(("rows-per-second", rate));
            }
            if self.chance(0.4) {
                let disorder = self.option_value("800");
                options.push(("max-out-of-orderness", disorder));
            }
            if self.chance(0.4) {
                let seed = self.option_value("2016");
                options.push(("seed", seed));
            }
            if self.chance(0.1) {
                let start = self.option_value("2024-01-01 00:00:00");
                options.push(("start-time", start));
            }
            let connector = self.options(options);
            let all = if declared.is_empty() { columns } else { declared.clone() };
            (all, declared, connector)
        } else {
            let mut columns = vec![Column { name: "ts".into(), ty: Ty::Ts }];
            for _ in 0..self.rng.random_range(1..6) {
                let name = self.pick(COLUMN_NAMES).to_string();
                if columns.iter().all(|c| c.name != name) {
                    let ty = self.pick(&TYPES);
                    columns.push(Column { name, ty });
                }
            }
            let format = self.pick(&["json", "json", "csv", "JSON", "parquet"]);
            let mut options = vec![
                ("connector", "file".to_string()),
                ("path", format!("{}/{name}.{format}", self.dir)),
                ("format", format.to_string()),
            ];
            if self.chance(0.2) {
                let on_error = self.pick(&["skip", "fail", "ignore"]).to_string();
                options.push(("format.on-error", on_error));
            }
            if format == "csv" && self.chance(0.3) {
                let delimiter = self.pick(&[";", "\t", "", "ab", "é"]).to_string();
                options.push(("csv.delimiter", delimiter));
            }
            let connector = self.options(options);
            (columns.clone(), columns, connector)
        };
        let mut elements: Vec<String> =
            declared.iter().map(|c| format!("{} {}", c.name, self.column_type(c.ty))).collect();
        let event_time = if with_time && columns.iter().any(|c| c.name == "ts") {
            let delay = if self.chance(0.3) { String::new() } else { format!(" - {}", self.interval()) };
            let column = if self.chance(0.97) { "ts" } else { self.pick(&["k", "nope", "TS", "\"ts\""]) };
            elements.push(format!("WATERMARK FOR {column} AS ts{delay}"));
            Some("ts".to_string())
        } else {
            None
        };
        if self.chance(0.03) && !declared.is_empty() {
            elements.push(format!("PRIMARY KEY ({}) NOT ENFORCED", declared[0].name));
        }
        if self.chance(0.1) {
            elements.shuffle_some(self.rng);
        }
        let if_not_exists = if self.chance(0.05) { "IF NOT EXISTS " } else { "" };
        self.relations.push(Relation { name: name.clone(), kind: Kind::Source, columns, event_time });
        if elements.is_empty() {
            format!("CREATE TABLE {if_not_exists}{name} {connector}")
        } else {
            format!("CREATE TABLE {if_not_exists}{name} (\n  {}\n) {connector}", elements.join(",\n  "))
        }
    }

    fn column_type(&mut self, ty: Ty) -> String {
        if self.chance(0.97) {
            return ty.sql().to_string();
        }
        self.pick(&[
            "TIMESTAMP(6)",
            "TIMESTAMP(3) WITH TIME ZONE",
            "DECIMAL(39, 2)",
            "DECIMAL(0, 0)",
            "DECIMAL(5, 9)",
            "DECIMAL(38, 38)",
            "VARCHAR(99999999999)",
            "ARRAY<INT>",
            "MAP<STRING, INT>",
            "ROW(a INT)",
            "BYTES",
            "TINYINT",
            "SMALLINT",
            "FLOAT",
            "REAL",
            "CHAR(1)",
            "INTERVAL",
            "UUID",
        ])
        .to_string()
    }

    fn sources(&self) -> Vec<usize> {
        (0..self.relations.len()).filter(|&i| self.relations[i].kind != Kind::Sink).collect()
    }

    fn view(&mut self) -> String {
        let Some(&input) = self.sources().choose(self.rng) else {
            return "SHOW TABLES".into();
        };
        let relation = self.relations[input].clone();
        let name = self.fresh("v");
        let scope = Scope { columns: &relation.columns };
        let mut items = Vec::new();
        let mut columns = Vec::new();
        for column in &relation.columns {
            if column.name == "ts" || self.chance(0.6) {
                items.push(column.name.clone());
                columns.push(column.clone());
            }
        }
        if self.chance(0.5) {
            let ty = self.pick(&TYPES);
            let expr = self.expr_top(ty, scope);
            let alias = self.fresh("e");
            items.push(format!("{expr} AS {alias}"));
            columns.push(Column { name: alias, ty });
        }
        let filter =
            if self.chance(0.5) { format!(" WHERE {}", self.expr_top(Ty::Bool, scope)) } else { String::new() };
        let or_replace = if self.chance(0.1) { "OR REPLACE " } else { "" };
        let event_time = relation.event_time.clone().filter(|t| columns.iter().any(|c| &c.name == t));
        self.relations.push(Relation { name: name.clone(), kind: Kind::View, columns, event_time });
        format!("CREATE {or_replace}VIEW {name} AS SELECT {} FROM {}{filter}", items.join(", "), relation.name)
    }

    fn catalog_statement(&mut self) -> String {
        let name = self.relations.choose(self.rng).map(|r| r.name.clone()).unwrap_or_else(|| "nothing".into());
        match self.rng.random_range(0..7) {
            0 => "SHOW TABLES".into(),
            1 => "SHOW VIEWS".into(),
            2 => "SHOW PIPELINES".into(),
            3 => format!("STOP PIPELINE {}", self.pick(&["1", "0", "18446744073709551616", "-1", "x"])),
            4 => format!("DESCRIBE {name}"),
            5 => format!("DESC TABLE {name}"),
            _ => format!("SHOW {}", self.pick(&["JOBS", "FUNCTIONS", "", "TABLES TABLES"])),
        }
    }

    /// An `INSERT INTO` (with its sink table), a bare `SELECT`, an `EXPLAIN` or a materialized view.
    fn query_statement(&mut self) -> Vec<String> {
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

    /// A sink table whose columns fit `outputs` (mostly).
    fn sink_table(&mut self, outputs: &[Column]) -> (String, String) {
        let name = self.fresh("sink");
        let mut columns: Vec<Column> = outputs.to_vec();
        if self.chance(0.05) {
            columns.pop();
        }
        if self.chance(0.05) {
            let ty = self.pick(&TYPES);
            columns.push(Column { name: "extra".into(), ty });
        }
        if self.chance(0.05)
            && let Some(c) = columns.first_mut()
        {
            c.ty = self.pick(&TYPES);
        }
        let mut seen = Vec::new();
        let elements: Vec<String> = columns
            .iter()
            .map(|c| {
                let mut column_name = c.name.clone();
                if seen.contains(&column_name) {
                    column_name = format!("{column_name}_{}", seen.len());
                }
                seen.push(column_name.clone());
                // The model's types are approximate: sink columns take the widest of a family.
                let ty = match c.ty {
                    Ty::Int => Ty::BigInt,
                    Ty::Decimal => Ty::Double,
                    other => other,
                };
                format!("{column_name} {}", ty.sql())
            })
            .collect();
        let connector = match self.rng.random_range(0..9) {
            0 | 1 => {
                let id = self.option_value(&name);
                self.options(vec![("connector", "print".into()), ("print-identifier", id)])
            }
            2 | 3 => self.options(vec![("connector", "blackhole".into())]),
            4 | 5 => {
                let format = self.pick(&["json", "csv"]);
                let path = format!("{}/{name}.{format}", self.dir);
                self.options(vec![("connector", "file".into()), ("path", path), ("format", format.into())])
            }
            6 => {
                let mut options = vec![("connector", "live".to_string())];
                if self.chance(0.5) {
                    let retention = self.option_value("1 HOUR");
                    options.push(("retention", retention));
                }
                self.options(options)
            }
            7 => {
                let hosts = self.option_value("127.0.0.1:9042");
                self.options(vec![
                    ("connector", "cassandra".into()),
                    ("hosts", hosts),
                    ("keyspace", "ks".into()),
                    ("table", name.clone()),
                    ("create-table", "true".into()),
                ])
            }
            _ => {
                let endpoint = self.option_value("grpc://127.0.0.1:50052");
                self.options(vec![("connector", "flight".into()), ("endpoint", endpoint), ("path", "a/b".into())])
            }
        };
        let key = if (self.chance(0.1) || connector.contains("'cassandra'") && self.chance(0.9)) && !seen.is_empty() {
            format!(",\n  PRIMARY KEY ({}) NOT ENFORCED", seen[0])
        } else {
            String::new()
        };
        self.relations.push(Relation { name: name.clone(), kind: Kind::Sink, columns, event_time: None });
        (format!("CREATE TABLE {name} (\n  {}{key}\n) {connector}", elements.join(",\n  ")), name)
    }

    /// A query and the columns it produces.
    fn query(&mut self) -> Option<(String, Vec<Column>)> {
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

    fn expr_top(&mut self, ty: Ty, scope: Scope<'_>) -> String {
        if self.chance(0.002) {
            return self.deep(ty, scope);
        }
        self.depth = self.rng.random_range(1..5);
        let wrong = if self.chance(0.03) { self.pick(&TYPES) } else { ty };
        self.expr(wrong, scope)
    }

    fn projection(&mut self, relation: &Relation) -> (String, Vec<Column>) {
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
    fn from(&mut self, relation: &Relation) -> String {
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

    fn keys(&mut self, scope: Scope<'_>) -> Vec<(String, Column)> {
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
    fn maybe_repeat_key(&mut self, groups: &mut Vec<String>) {
        if self.chance(0.08)
            && let Some(key) = groups.choose(self.rng).cloned()
        {
            groups.push(key);
        }
    }

    fn pick_column(&mut self, columns: &[Column]) -> Option<Column> {
        columns.choose(self.rng).cloned()
    }

    fn aggregates(&mut self, scope: Scope<'_>) -> Vec<(String, Column)> {
        let mut out = Vec::new();
        let count = if self.chance(0.1) { 0 } else { self.rng.random_range(1..5) };
        for _ in 0..count {
            let (expr, ty) = self.aggregate_call(scope);
            let name = self.fresh("a");
            out.push((expr, Column { name, ty }));
        }
        out
    }

    fn aggregate_call(&mut self, scope: Scope<'_>) -> (String, Ty) {
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

    fn window_tvf(&mut self, relation: &Relation) -> String {
        let time = relation.event_time.clone().unwrap_or_else(|| "ts".into());
        let descriptor =
            if self.chance(0.97) { time } else { self.pick(&["k", "nope", "\"TS\"", "ts, ts"]).to_string() };
        let input =
            if self.chance(0.98) { relation.name.clone() } else { self.pick(&["missing", "(SELECT 1)"]).to_string() };
        let call = match self.rng.random_range(0..10) {
            0..=5 => format!("TUMBLE(TABLE {input}, DESCRIPTOR({descriptor}), {})", self.interval()),
            6..=8 => {
                let slide = self.interval();
                let size = self.interval();
                format!("HOP(TABLE {input}, DESCRIPTOR({descriptor}), {slide}, {size})")
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

    fn windowed(&mut self, relation: &Relation) -> (String, Vec<Column>) {
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

    fn having(&mut self, scope: Scope<'_>) -> String {
        let (aggregate, ty) = self.aggregate_call(scope);
        let literal = self.literal(if ty.numeric() { ty } else { Ty::BigInt });
        let op = self.pick(&[">", "<", "=", "<>", ">="]);
        format!("{aggregate} {op} {literal}")
    }

    fn updating(&mut self, relation: &Relation) -> (String, Vec<Column>) {
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
    fn unusual(&mut self, relation: &Relation) -> (String, Vec<Column>) {
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

    fn literal(&mut self, ty: Ty) -> String {
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

    fn column_of(&mut self, ty: Ty, scope: Scope<'_>) -> Option<String> {
        let matching: Vec<&Column> = scope.columns.iter().filter(|c| c.ty == ty).collect();
        matching.choose(self.rng).map(|c| c.name.clone())
    }

    /// An expression of roughly type `ty` (the planner decides; coercion is part of the test).
    fn expr(&mut self, ty: Ty, scope: Scope<'_>) -> String {
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

    fn bool_expr(&mut self, scope: Scope<'_>) -> String {
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

    fn str_expr(&mut self, scope: Scope<'_>) -> String {
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

    fn num_expr(&mut self, ty: Ty, scope: Scope<'_>) -> String {
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

    fn case_expr(&mut self, ty: Ty, scope: Scope<'_>) -> String {
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

    /// An expression that stresses recursion or size: long chains and deep nesting.
    fn deep(&mut self, ty: Ty, scope: Scope<'_>) -> String {
        let n = self.pick(&[10, 49, 50, 64, 100, 200, 500, 1_000, 2_000, 5_000]);
        let column = self.column_of(ty, scope).unwrap_or_else(|| "1".into());
        match self.rng.random_range(0..12) {
            0 => vec!["1"; n].join(" + "),
            1 => (0..n).map(|i| format!("{column} = {i}")).collect::<Vec<_>>().join(" OR "),
            2 => (0..n).map(|i| format!("{column} <> {i}")).collect::<Vec<_>>().join(" AND "),
            3 => format!("{}{column}{}", "CAST(".repeat(n), " AS BIGINT)".repeat(n)),
            4 => format!("{}{column}{}", "(".repeat(n), ")".repeat(n)),
            5 => format!("{}1{}", "CASE WHEN TRUE THEN ".repeat(n), " END".repeat(n)),
            6 => format!("{}{column}{}", "abs(".repeat(n), ")".repeat(n)),
            7 => format!("{}1", "- ".repeat(n)),
            8 => format!("{}TRUE", "NOT ".repeat(n)),
            9 => format!("{column} IN ({})", (0..n * 10).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")),
            10 => format!("'{}'", "x".repeat(n.min(1_000) * 1_000)),
            _ => format!("concat({})", vec!["'a'"; n].join(", ")),
        }
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
