//! `EXPLAIN`: a planned pipeline as a person reads it, stage by stage, in the order rows flow.
//!
//! ```text
//!  source ─▶ chain (fused into the source task) ─▶ exchange ─▶ window aggregate (+ chain) ─▶ sink
//! ```

use std::fmt::Write;
use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;
use streamsql_engine::operators::aggregate::{GroupOutput, WindowKind, WindowShape};
use streamsql_engine::operators::stateless::StatelessOp;
use streamsql_engine::pipeline::{BoundTable, PipelineSpec};

use crate::catalog::WINDOW_COLUMNS;
use crate::describe::{duration, options_text, watermark_text};

/// Renders `spec`; `query` says whether its sink is the caller's screen (a bare SELECT).
pub fn explain(spec: &PipelineSpec, query: bool) -> String {
    let mut out = String::new();
    let mut line = |stage: &str, text: String| {
        let _ = writeln!(out, "{stage:<10} {text}");
    };
    let source = &spec.source.table;
    line(
        "pipeline",
        format!("{} (parallelism {}, batches of up to {} rows)", spec.name, spec.parallelism, spec.batch_size),
    );
    line("source", table(&spec.source));
    match watermark_text(source) {
        Some(w) => line("", format!("watermark {w} (the largest event time seen, minus the delay)")),
        None => line("", "no watermark: the table declares no event time".into()),
    }
    let pre = chain(spec.pre.ops());
    if !pre.is_empty() {
        line("chain", "stateless operators fused into the source task:".into());
        pre.into_iter().for_each(|text| line("", format!("  {text}")));
    }
    match &spec.aggregate {
        None => line("exchange", "none: rows go straight from the source task to the sink".into()),
        Some(stage) => {
            let agg = &stage.spec;
            let keys: Vec<String> = agg.key_exprs.iter().map(expr).collect();
            let exchange = if spec.parallelism <= 1 {
                "none: one aggregation instance (parallelism 1)".to_string()
            } else if keys.is_empty() {
                format!(
                    "none: no GROUP BY keys besides the window, so one of the {} instances gets every row",
                    spec.parallelism
                )
            } else {
                format!("hash on ({}) to {} aggregation instances", keys.join(", "), spec.parallelism)
            };
            line("exchange", exchange);
            match &agg.window {
                Some(shape) => line("window", window(shape)),
                None => line(
                    "window",
                    format!(
                        "none: an updating aggregate; state is kept per key and changed keys are emitted as a \
                         changelog (+I, -U, +U) at most once per {} ms",
                        stage.update_interval.as_millis()
                    ),
                ),
            }
            let group: Vec<String> = agg
                .outputs
                .iter()
                .map(|o| match o {
                    GroupOutput::WindowStart => WINDOW_COLUMNS[0].to_string(),
                    GroupOutput::WindowEnd => WINDOW_COLUMNS[1].to_string(),
                    GroupOutput::WindowTime => WINDOW_COLUMNS[2].to_string(),
                    GroupOutput::Key(i) => keys.get(*i).cloned().unwrap_or_default(),
                })
                .collect();
            line("aggregate", format!("group by {}", group.join(", ")));
            for call in &agg.aggregates {
                let filter = call.filter.as_ref().map(|f| format!(" FILTER (WHERE {})", expr(f))).unwrap_or_default();
                line("", format!("{}{filter}", aggregate_name(call.function.name())));
            }
            if agg.window.is_some() {
                line(
                    "",
                    "a window is emitted when the watermark passes its end; later rows for it are dropped as late"
                        .into(),
                );
            }
            let post = chain(stage.post.ops());
            if !post.is_empty() {
                line("chain", "stateless operators fused into the aggregation task:".into());
                post.into_iter().for_each(|text| line("", format!("  {text}")));
            }
        }
    }
    if query {
        line("sink", "this terminal: rows are shown as they arrive".into());
    } else {
        line("sink", table(&spec.sink));
    }
    out
}

fn table(bound: &BoundTable) -> String {
    let table = &bound.table;
    let options = options_text(table);
    let options = if options.is_empty() { String::new() } else { format!(", {options}") };
    format!("{} (connector '{}'{options})", table.name, table.connector())
}

fn window(shape: &WindowShape) -> String {
    match shape.kind {
        WindowKind::Tumble => format!("TUMBLE size {}", duration(shape.size_ms)),
        WindowKind::Hop => format!(
            "HOP size {}, slide {} (state kept per {} pane)",
            duration(shape.size_ms),
            duration(shape.slide_ms),
            duration(shape.pane_ms)
        ),
    }
}

/// One line per operator; a projection that repeats the one before it (the mapping onto the
/// sink often does) is left out.
fn chain(ops: &[StatelessOp]) -> Vec<String> {
    let mut lines: Vec<String> = ops
        .iter()
        .map(|op| match op {
            StatelessOp::Filter(predicate) => format!("filter {}", expr(predicate)),
            StatelessOp::Project { exprs, schema } => {
                let items: Vec<String> = exprs
                    .iter()
                    .zip(schema.fields())
                    .map(|(e, field)| {
                        let (e, name) = (aggregate_name(&expr(e)), aggregate_name(field.name()));
                        if e == name { e } else { format!("{e} AS {name}") }
                    })
                    .collect();
                format!("project {}", items.join(", "))
            }
        })
        .collect();
    lines.dedup();
    lines
}

/// A physical expression without DataFusion's `@index` column suffixes, `COUNT(*)` as written.
fn expr(e: &Arc<dyn PhysicalExpr>) -> String {
    without_column_indices(&e.to_string())
}

fn aggregate_name(name: &str) -> String {
    name.replace("count(Int64(1))", "count(*)")
}

fn without_column_indices(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '@' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}
