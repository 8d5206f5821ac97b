//! `docs/FUNCTIONS.md`, generated from [`FLINK_FUNCTIONS`]. A test fails when the file is stale;
//! regenerate it with `UPDATE_FUNCTIONS_DOC=1 cargo test -p streamsql-sql functions_doc`.

use std::fmt::Write;

use super::registry::{Category, FLINK_FUNCTIONS, Support};

/// The command that rewrites `docs/FUNCTIONS.md`.
pub const REGENERATE: &str = "UPDATE_FUNCTIONS_DOC=1 cargo test -p streamsql-sql functions_doc";

/// The text of `docs/FUNCTIONS.md`.
pub fn render() -> String {
    let count = |support: Support| FLINK_FUNCTIONS.iter().filter(|f| f.support == support).count();
    let (ours, datafusion, not_yet) = (count(Support::Flink), count(Support::DataFusion), count(Support::NotYet));
    let mut out = String::new();
    let _ = write!(
        out,
        "# Flink built-in functions in streamsql\n\n\
         <!-- Generated from sql/src/functions/registry.rs by `{REGENERATE}`; do not edit. -->\n\n\
         Queries are written in Flink SQL and planned by DataFusion. Where a DataFusion function has \
         a Flink function's name but not its meaning (`DATE_FORMAT` with strftime patterns, `LOG` in \
         base 10, `CONCAT` skipping NULLs, ...), streamsql registers its own with Flink's semantics \
         in its place. A Flink built-in that is not supported yet fails the plan with an error \
         naming it, rather than running something else.\n\n\
         Of the {} functions listed: **{ours}** are implemented by streamsql with Flink's semantics, \
         **{datafusion}** are DataFusion's and behave as Flink's, **{not_yet}** are not supported yet.\n\n\
         Every supported scalar function is checked against Flink's documented examples (and edge \
         cases: NULLs, negative numbers, out-of-range positions, Unicode) by \
         `cargo test -p streamsql-tests --test flink_functions`, from the table in \
         `tests/flink-functions.slt`.\n\n\
         Everywhere:\n\n\
         - A NULL argument gives NULL, unless the notes say otherwise.\n\
         - The session time zone is UTC: timestamps without a zone are read and written as UTC.\n\
         - Date-time patterns are Java's (`yyyy-MM-dd HH:mm:ss.SSS`); a pattern letter streamsql \
         cannot format is an error when the query is planned, never literal text.\n\
         - Regular expressions use Rust's `regex` syntax: Java's for everyday patterns, without \
         look-around or back-references. A literal pattern that does not compile fails the plan.\n\
         - Operators and syntax (`||`, `LIKE`, `CASE`, `CAST`, `IS JSON`, ...) are DataFusion's and \
         are not listed.\n",
        FLINK_FUNCTIONS.len()
    );
    for category in Category::ALL {
        let _ = write!(out, "\n## {}\n\n| function | support | notes |\n|---|---|---|\n", category.title());
        for function in FLINK_FUNCTIONS.iter().filter(|f| f.category == category) {
            let support = match function.support {
                Support::Flink => "yes (streamsql, Flink semantics)",
                Support::DataFusion => "yes (DataFusion)",
                Support::NotYet => "**not yet**",
            };
            let _ = writeln!(out, "| `{}` | {support} | {} |", cell(function.syntax), cell(function.note));
        }
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_doc_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/FUNCTIONS.md");
        let expected = render();
        if std::env::var_os("UPDATE_FUNCTIONS_DOC").is_some() {
            std::fs::write(&path, &expected).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            return;
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(actual == expected, "{} is stale or missing; regenerate it with `{REGENERATE}`", path.display());
    }

    #[test]
    fn names_are_unique_and_upper_case() {
        let mut names: Vec<&str> = FLINK_FUNCTIONS.iter().map(|f| f.name).collect();
        assert!(names.iter().all(|n| *n == n.to_uppercase()), "names must be upper case");
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a function is listed twice");
    }

    #[test]
    fn not_yet_functions_say_so_at_plan_time() {
        let function = super::super::registry::find("CURRENT_WATERMARK");
        let message = function.map(super::super::unsupported::message).unwrap_or_default();
        assert!(message.starts_with("CURRENT_WATERMARK is not supported yet"), "{message}");
    }
}
