//! `SET`, `CREATE TABLE` (sources and sinks over every connector), views and catalog statements.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::{Column, Generator, Kind, Relation, Scope, ShuffleSome, TYPES, Ty};

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

impl Generator<'_> {
    pub(super) fn set(&mut self) -> String {
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

    pub(super) fn options(&mut self, pairs: Vec<(&str, String)>) -> String {
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

    pub(super) fn interval(&mut self) -> String {
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

    pub(super) fn source_table(&mut self) -> String {
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

    pub(super) fn column_type(&mut self, ty: Ty) -> String {
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

    pub(super) fn view(&mut self) -> String {
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

    pub(super) fn catalog_statement(&mut self) -> String {
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

    /// A sink table whose columns fit `outputs` (mostly).
    pub(super) fn sink_table(&mut self, outputs: &[Column]) -> (String, String) {
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
}
