//! `SHOW TABLES`, `SHOW VIEWS` and `DESCRIBE`: the catalog as tables of text.

use std::collections::BTreeMap;

use arrow::datatypes::Schema;
use streamsql_engine::connector::{Role, TableDef};
use streamsql_engine::pipeline::BoundTable;

use crate::catalog::Relation;
use crate::outcome::ResultTable;
use crate::types::sql_name;

/// `text` (a statement as written) with the values of secret options (`'password' = '...'`)
/// replaced by `***`, as DESCRIBE shows them.
pub fn mask_secrets(text: &str, options: &[(String, String)]) -> String {
    let mut text = text.to_string();
    for (key, value) in options.iter().filter(|(k, v)| is_secret(k) && !v.is_empty()) {
        let quoted = format!("'{}'", value.replace('\'', "''"));
        let Some(key_at) = text.find(&format!("'{key}'")) else { continue };
        if let Some(offset) = text[key_at..].find(&quoted) {
            let at = key_at + offset;
            text.replace_range(at..at + quoted.len(), "'***'");
        }
    }
    text
}

/// Option keys whose values are not shown (`'password'`, `'s3.secret-key'`, `'header.Authorization'`,
/// `'header.X-Api-Key'`), so DESCRIBE output can be shared.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "authorization", "api-key", "apikey"].iter().any(|word| key.contains(word))
}

/// A duration in the largest unit that divides it (`5 s`, `1 min`, `250 ms`).
pub fn duration(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1_000, "s")];
    for (unit_ms, unit) in UNITS {
        if ms != 0 && ms % unit_ms == 0 {
            return format!("{} {unit}", ms / unit_ms);
        }
    }
    format!("{ms} ms")
}

/// `WITH` options besides `'connector'`, as `'key' = 'value'`, secrets masked.
pub fn options_text(table: &TableDef) -> String {
    table
        .options
        .iter()
        .filter(|(k, _)| k.as_str() != "connector")
        .map(|(k, v)| if is_secret(k) { format!("'{k}' = '***'") } else { format!("'{k}' = '{v}'") })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a table's watermark is declared, e.g. `ts - INTERVAL '1' SECOND`.
pub fn watermark_text(table: &TableDef) -> Option<String> {
    let watermark = table.watermark.as_ref()?;
    let column = table.schema.field(watermark.column).name();
    let delay_ms = watermark.delay_ms;
    const UNITS: [(i64, &str); 4] = [(86_400_000, "DAY"), (3_600_000, "HOUR"), (60_000, "MINUTE"), (1_000, "SECOND")];
    if delay_ms == 0 {
        return Some(column.to_string());
    }
    Some(match UNITS.iter().find(|(unit_ms, _)| delay_ms % unit_ms == 0) {
        Some((unit_ms, unit)) => format!("{column} - INTERVAL '{}' {unit}", delay_ms / unit_ms),
        None => format!("{column} - INTERVAL '{}' SECOND", delay_ms as f64 / 1000.0),
    })
}

fn roles(bound: &BoundTable) -> String {
    [Role::Source, Role::Sink]
        .into_iter()
        .filter(|r| bound.connector.supports(*r))
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SHOW TABLES`.
pub fn show_tables(relations: &BTreeMap<String, Relation>) -> ResultTable {
    let mut out = ResultTable::new(&["table", "connector", "can be", "columns", "watermark"]);
    for (name, relation) in relations {
        if let Relation::Table(bound) = relation {
            out.rows.push(vec![
                name.clone(),
                bound.table.connector().to_string(),
                roles(bound),
                bound.table.schema.fields().len().to_string(),
                watermark_text(&bound.table).unwrap_or_default(),
            ]);
        }
    }
    if out.rows.is_empty() {
        out.notes.push("no tables yet; declare one with CREATE TABLE t (...) WITH ('connector' = ...)".into());
    }
    out
}

/// `SHOW VIEWS`.
pub fn show_views(relations: &BTreeMap<String, Relation>, texts: &BTreeMap<String, String>) -> ResultTable {
    let mut out = ResultTable::new(&["view", "columns", "query"]);
    for (name, relation) in relations {
        if let Relation::View(plan) = relation {
            let query = texts.get(name).map(|t| one_line(t)).unwrap_or_default();
            out.rows.push(vec![name.clone(), plan.schema().fields().len().to_string(), query]);
        }
    }
    if out.rows.is_empty() {
        out.notes.push("no views yet; declare one with CREATE VIEW v AS SELECT ...".into());
    }
    out
}

/// `DESCRIBE name`.
pub fn describe(name: &str, relation: &Relation, view_text: Option<&str>) -> ResultTable {
    let schema = relation.schema();
    let mut out = columns(&schema);
    match relation {
        Relation::Table(bound) => {
            let table = &bound.table;
            for key in &table.primary_key {
                if let Some(row) = out.rows.iter_mut().find(|r| &r[0] == key) {
                    row[2] = "PRIMARY KEY".into();
                }
            }
            for column in &table.computed {
                if let Some(row) = out.rows.get_mut(column.index) {
                    row[1] = format!("{} AS {}", row[1], column.text);
                }
            }
            if let Some(w) = &table.watermark
                && let Some(text) = watermark_text(table)
            {
                out.rows[w.column][3] = text;
            }
            out.notes.push(format!("table '{name}': connector '{}' ({})", table.connector(), roles(bound)));
            let options = options_text(table);
            if !options.is_empty() {
                out.notes.push(format!("options: {options}"));
            }
            if table.watermark.is_none() && bound.connector.supports(Role::Source) {
                out.notes.push(
                    "no event time: declare WATERMARK FOR <timestamp column> AS <column> - INTERVAL '1' SECOND to use windows"
                        .into(),
                );
            }
        }
        Relation::View(_) => {
            out.notes.push(format!("view '{name}'"));
            if let Some(text) = view_text {
                out.notes.push(format!("query: {}", one_line(text)));
            }
        }
    }
    out
}

fn columns(schema: &Schema) -> ResultTable {
    let mut out = ResultTable::new(&["column", "type", "key", "watermark"]);
    for field in schema.fields() {
        let mut type_text = sql_name(field.data_type());
        // A metadata column as declared: `INT METADATA FROM 'partition' VIRTUAL`.
        if let Some(key) = streamsql_engine::connector::metadata_key(field) {
            type_text.push_str(&format!(" METADATA FROM '{key}'"));
            if field.metadata().contains_key(&format!("{}.virtual", streamsql_engine::connector::METADATA_FIELD)) {
                type_text.push_str(" VIRTUAL");
            }
        }
        out.rows.push(vec![field.name().clone(), type_text, String::new(), String::new()]);
    }
    out
}

/// SQL text on one line, whitespace collapsed.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
