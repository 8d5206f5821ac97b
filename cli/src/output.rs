//! How results look on the terminal: the `--format` of query rows, and tables of text.

use comfy_table::{ContentArrangement, Table, presets};

/// How the rows of a `SELECT` are shown (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table per arriving batch of rows.
    Table,
    /// Comma-separated values, with a header row first.
    Csv,
    /// One JSON object per row.
    Json,
}

/// A table of text as people read it, sized to the terminal.
pub fn render_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    // Wrap cells to the terminal's width, unless the width is unknown or too small to help.
    if table.width().is_some_and(|width| width >= 40) {
        table.set_content_arrangement(ContentArrangement::Dynamic);
    }
    table.set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

/// A [`streamsql_sql::ResultTable`] with its notes under it.
pub fn render_result(result: &streamsql_sql::ResultTable) -> String {
    let mut text = String::new();
    if !result.rows.is_empty() {
        text.push_str(&render_table(&result.header, &result.rows));
        text.push('\n');
    }
    for note in &result.notes {
        text.push_str(note);
        text.push('\n');
    }
    text
}
