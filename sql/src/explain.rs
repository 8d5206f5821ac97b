//! `EXPLAIN`: a planned pipeline as a person reads it, stage by stage, in the order rows flow.
//!
//! ```text
//!  source ─▶ chain (fused into the source task) ─▶ exchange ─▶ window aggregate (+ chain) ─▶ sink
//! ```
//!
//! A graph is written inputs first: each source and stage after the nodes that feed it, numbered
//! (`[1]`) when there is more than one, so that exchanges can say where their rows come from.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;
use streamsql_engine::operators::aggregate::{GroupOutput, WindowKind, WindowShape};
use streamsql_engine::operators::join::JoinSpec;
use streamsql_engine::operators::over::OverSpec;
use streamsql_engine::operators::stateless::StatelessOp;
use streamsql_engine::operators::top_n::TopNSpec;
use streamsql_engine::pipeline::{AggPhases, AggregateStage, BoundTable, Node, PipelineSpec, Stage};

use crate::catalog::WINDOW_COLUMNS;
use crate::describe::{duration, options_text, watermark_text};

/// Renders `spec`; `query` says whether its sink is the caller's screen (a bare SELECT).
pub fn explain(spec: &PipelineSpec, query: bool) -> String {
    let mut out = Lines {
        text: String::new(),
        numbered: spec.sources().len() > 1 || spec.stages().len() > 1,
        next: 0,
        reads: spec.reuse_sources.then(Vec::new),
        parallelism: spec.parallelism,
    };
    out.line(
        "pipeline",
        format!("{} (parallelism {}, batches of up to {} rows)", spec.name, spec.parallelism, spec.batch_size),
    );
    let mut fed = Vec::new();
    for node in &spec.inputs {
        fed.push(out.node(node));
    }
    if let [Node::Source { .. }] = spec.inputs.as_slice() {
        out.line("exchange", "none: rows go straight from the source task to the sink".into());
    }
    let from = if out.numbered { format!(" (from {})", fed.join(", ")) } else { String::new() };
    if query {
        out.line("sink", format!("this terminal: rows are shown as they arrive{from}"));
    } else {
        out.line("sink", format!("{}{from}", table(&spec.sink)));
    }
    if let Some(limit) = spec.limit {
        out.line("limit", format!("{limit} rows: the pipeline ends once the sink has written them"));
    }
    if let Some(late) = &spec.late_sink {
        out.line("late rows", format!("{} (rows windows drop as late, with the operator and pipeline)", table(late)));
    }
    out.text
}

/// The text being written; in a graph of more than one source or stage, each node is numbered
/// (`[1]`) so that edges can name it.
struct Lines<'a> {
    text: String,
    numbered: bool,
    next: usize,
    /// The source nodes written so far, with their labels and instances, when nodes reading
    /// the same table share one read of it.
    reads: Option<Vec<(String, &'a BoundTable, usize)>>,
    parallelism: usize,
}

impl<'a> Lines<'a> {
    fn line(&mut self, stage: &str, text: String) {
        let _ = writeln!(self.text, "{stage:<10} {text}");
    }

    /// Writes `node` after everything upstream of it; returns its label (`[3]`).
    fn node(&mut self, node: &'a Node) -> String {
        match node {
            Node::Source { source, chain: ops, instances } => {
                let label = self.label();
                self.line("source", format!("{}{}", self.prefix(&label), table(source)));
                if let Some(reads) = &mut self.reads {
                    let first = reads.iter().find(|(_, read, n)| read.same_table(source) && n == instances);
                    match first {
                        Some((first, _, _)) => {
                            let text = format!(
                                "shares the read of {first}: each batch is decoded once for every node reading the table"
                            );
                            self.line("", text);
                        }
                        None => reads.push((label.clone(), source, *instances)),
                    }
                }
                if source.connector.partitioned(&source.table) {
                    self.line(
                        "",
                        format!(
                            "partitioned: {instances} reader(s), a watermark per partition, the source's is their minimum"
                        ),
                    );
                }
                if self.parallelism > 1
                    && !source.connector.partitioned(&source.table)
                    && source.connector.decodes_in_parallel(&source.table)
                {
                    let threads = self.parallelism;
                    self.line("", format!("decoded on {threads} threads, a chunk of the file each at a time; rows go on in the file's order"));
                }
                match watermark_text(&source.table) {
                    Some(w) => self.line("", format!("watermark {w} (the largest event time seen, minus the delay)")),
                    None => self.line("", "no watermark: the table declares no event time".into()),
                }
                let pre = chain(ops.ops());
                if !pre.is_empty() {
                    self.line("chain", "stateless operators fused into the source task:".into());
                    pre.into_iter().for_each(|text| self.line("", format!("  {text}")));
                }
                label
            }
            Node::Stage { stage, inputs, parallelism } => {
                let upstream: Vec<(usize, String)> = inputs.iter().map(|i| (i.input, self.node(&i.node))).collect();
                let label = self.label();
                let prefix = self.prefix(&label);
                match stage {
                    Stage::Aggregate(stage) => self.aggregate(stage, *parallelism, &prefix, &upstream),
                    Stage::Join(join) => self.join(&join.spec, *parallelism, &prefix, &upstream),
                    Stage::Over(over) => self.over(&over.spec, *parallelism, &prefix, &upstream),
                    Stage::TopN(top) => self.top_n(&top.spec, *parallelism, &prefix, &upstream),
                }
                let post = chain(stage.post().ops());
                if !post.is_empty() {
                    self.line("chain", format!("stateless operators fused into the {} task:", stage_name(stage)));
                    post.into_iter().for_each(|text| self.line("", format!("  {text}")));
                }
                label
            }
        }
    }

    fn label(&mut self) -> String {
        self.next += 1;
        format!("[{}]", self.next)
    }

    fn prefix(&self, label: &str) -> String {
        if self.numbered { format!("{label} ") } else { String::new() }
    }

    /// ` from [1], [2]` for the nodes feeding `input`, in a numbered graph.
    fn from(&self, upstream: &[(usize, String)], input: usize) -> String {
        if !self.numbered {
            return String::new();
        }
        let labels: Vec<&str> = upstream.iter().filter(|(i, _)| *i == input).map(|(_, l)| l.as_str()).collect();
        format!(" from {}", labels.join(", "))
    }

    fn aggregate(&mut self, stage: &AggregateStage, parallelism: usize, prefix: &str, upstream: &[(usize, String)]) {
        let agg = &stage.spec;
        let keys: Vec<String> = agg.key_exprs.iter().map(expr).collect();
        let from = self.from(upstream, 0);
        let exchange = if parallelism <= 1 {
            format!("none{from}: one aggregation instance (parallelism 1)")
        } else if keys.is_empty() {
            format!(
                "none{from}: no GROUP BY keys besides the window, so one of the {parallelism} instances gets every row"
            )
        } else {
            format!("hash{from} on ({}) to {parallelism} aggregation instances", keys.join(", "))
        };
        self.line("exchange", format!("{prefix}{exchange}"));
        if parallelism > 1 {
            match Stage::Aggregate(stage.clone()).pre_aggregation() {
                Ok(Some(_)) => self.line(
                    "",
                    match stage.phases {
                        AggPhases::Two => {
                            "two phases: each batch is pre-aggregated per pane and key before the exchange"
                        }
                        _ => {
                            "two phases: each batch is pre-aggregated per pane and key before the exchange, unless \
                             the first 100,000 rows show it does not pay"
                        }
                    }
                    .into(),
                ),
                _ if agg.window.is_some() && stage.phases != AggPhases::One => self.line(
                    "",
                    "one phase: every row crosses the exchange (a late-rows sink, a SESSION or processing-time \
                     window)"
                        .into(),
                ),
                _ => {}
            }
        }
        match &agg.window {
            Some(shape) => self.line("window", window_text(shape)),
            None => self.line(
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
        self.line("aggregate", format!("group by {}", group.join(", ")));
        for call in &agg.aggregates {
            let filter = call.filter.as_ref().map(|f| format!(" FILTER (WHERE {})", expr(f))).unwrap_or_default();
            self.line("", format!("{}{filter}", aggregate_name(call.function.name())));
        }
        match agg.window {
            Some(shape) if shape.kind == WindowKind::Session => self.line(
                "",
                "a session is emitted when the watermark reaches its end (last row + gap); rows behind their own \
                 watermark are dropped as late"
                    .into(),
            ),
            Some(shape) if shape.processing_time => self.line(
                "",
                "a row joins the windows of the time the aggregation takes it; a window is emitted when the clock \
                 passes its end (all at the end of input); no row is late"
                    .into(),
            ),
            Some(_) => self.line(
                "",
                "a window is emitted when the watermark passes its end; later rows for it are dropped as late".into(),
            ),
            None => {}
        }
    }

    fn over(&mut self, spec: &OverSpec, parallelism: usize, prefix: &str, upstream: &[(usize, String)]) {
        let keys: Vec<String> = spec.partition_by.iter().map(expr).collect();
        let from = self.from(upstream, 0);
        let exchange = if parallelism <= 1 {
            format!("none{from}: one OVER instance (parallelism 1)")
        } else if keys.is_empty() {
            format!("none{from}: no PARTITION BY, so one of the {parallelism} instances gets every row")
        } else {
            format!("hash{from} on ({}) to {parallelism} OVER instances", keys.join(", "))
        };
        self.line("exchange", format!("{prefix}{exchange}"));
        let partition = if keys.is_empty() { String::new() } else { format!("partition by {}, ", keys.join(", ")) };
        self.line("over", format!("{partition}ordered by event time"));
        for function in &spec.functions {
            self.line("", function.name().to_string());
        }
        if spec.lead_rows > 0 {
            self.line(
                "",
                format!(
                    "LEAD: a row waits for the {} row(s) after it in its partition, and holds the watermark sent on",
                    spec.lead_rows
                ),
            );
        }
        self.line(
            "",
            "a row is emitted when the watermark passes it, with its functions over the rows before it; \
             rows behind their watermark are dropped as late"
                .into(),
        );
    }

    fn top_n(&mut self, spec: &TopNSpec, parallelism: usize, prefix: &str, upstream: &[(usize, String)]) {
        let keys: Vec<String> = spec.partition_by.iter().map(expr).collect();
        let from = self.from(upstream, 0);
        let exchange = if parallelism <= 1 {
            format!("none{from}: one Top-N instance (parallelism 1)")
        } else if keys.is_empty() {
            format!("none{from}: no PARTITION BY, so one of the {parallelism} instances gets every row")
        } else {
            format!("hash{from} on ({}) to {parallelism} Top-N instances", keys.join(", "))
        };
        self.line("exchange", format!("{prefix}{exchange}"));
        let order: Vec<String> = spec.order_by.iter().map(|o| o.to_string()).collect();
        let partition = if keys.is_empty() { String::new() } else { format!("partition by {}, ", keys.join(", ")) };
        self.line("top-n", format!("{partition}order by {}, keep {}", order.join(", "), spec.limit));
        self.line(
            "",
            "rows are ranked as they arrive; an updating result: per rank from the new row's, -U old row / +U new row, +I for a new rank"
                .into(),
        );
    }

    fn join(&mut self, spec: &JoinSpec, parallelism: usize, prefix: &str, upstream: &[(usize, String)]) {
        let keys = |side: &streamsql_engine::operators::join::JoinSide| {
            side.keys.iter().map(expr).collect::<Vec<_>>().join(", ")
        };
        let (left, right) = (keys(&spec.left), keys(&spec.right));
        let exchange = if parallelism <= 1 {
            format!(
                "none: one join instance (parallelism 1); left{}, right{}",
                self.from(upstream, 0),
                self.from(upstream, 1)
            )
        } else if let Some(table) = spec.lookup {
            let name = |side: usize| if side == 0 { "left" } else { "right" };
            format!(
                "broadcast the table ({}{}) to {parallelism} join instances; {}{} round robin",
                name(table),
                self.from(upstream, table),
                name(1 - table),
                self.from(upstream, 1 - table)
            )
        } else {
            format!(
                "hash left{} on ({left}), right{} on ({right}) to {parallelism} join instances",
                self.from(upstream, 0),
                self.from(upstream, 1)
            )
        };
        self.line("exchange", format!("{prefix}{exchange}"));
        if let Some(window) = spec.window {
            let on = if left.is_empty() { String::new() } else { format!(" on ({left}) = ({right})") };
            self.line(
                "join",
                format!("{} window join{on} per window: {}", window.kind.sql(), window_text(&window.shape)),
            );
            self.line(
                "",
                "a row joins its windows unless behind its own watermark (wm < window end: else late and dropped); \
                 each window is joined once, when the watermark passes its end"
                    .to_string(),
            );
            return;
        }
        if let Some(table) = spec.lookup {
            let (table, stream) = if table == 0 { ("left", "right") } else { ("right", "left") };
            let kind = match spec.kind {
                streamsql_engine::operators::window_join::JoinKind::Inner => String::new(),
                other => format!("{} ", other.sql().to_lowercase()),
            };
            self.line(
                "join",
                format!("{kind}lookup join on ({left}) = ({right}); the {table} side is a bounded table"),
            );
            self.line(
                "",
                format!(
                    "the table is kept whole; {stream} rows are kept only until the table has been read, \
                     then probed and passed on"
                ),
            );
            return;
        }
        if let Some(bounds) = spec.interval {
            self.line(
                "join",
                format!(
                    "interval join on ({left}) = ({right}), left time - right time in [{}, {}]",
                    format_offset(bounds.lower_ms),
                    format_offset(bounds.upper_ms)
                ),
            );
            self.line(
                "",
                "a row behind its own watermark (ts < wm) is late and dropped; rows are kept until the watermark \
                 passes the last time they can match; each pair is emitted once, when its second row arrives"
                    .to_string(),
            );
            return;
        }
        self.line("join", format!("{} join on ({left}) = ({right})", spec.kind.sql().to_lowercase()));
        let kept = match &spec.expiry {
            Some(_) => "rows are kept until the watermark passes the end of their window (joined on a window column)",
            None => "every row of both sides is kept",
        };
        self.line("", format!("{kept}; each pair is emitted once, when its second row arrives"));
        if spec.is_changelog() {
            self.line(
                "",
                "a changelog: a row matching nothing yet is emitted NULL-padded (+I), and retracted (-D) at its \
                 first match"
                    .to_string(),
            );
        }
    }
}

/// A signed time offset: `-2 s`, `500 ms`, `0 ms`.
fn format_offset(ms: i64) -> String {
    if ms != 0 && ms % 1000 == 0 { format!("{} s", ms / 1000) } else { format!("{ms} ms") }
}

fn stage_name(stage: &Stage) -> &'static str {
    match stage {
        Stage::Aggregate(_) => "aggregation",
        Stage::Join(_) => "join",
        Stage::Over(_) => "OVER",
        Stage::TopN(_) => "Top-N",
    }
}

fn table(bound: &BoundTable) -> String {
    let table = &bound.table;
    let options = options_text(table);
    let options = if options.is_empty() { String::new() } else { format!(", {options}") };
    format!("{} (connector '{}'{options})", table.name, table.connector())
}

/// `TUMBLE size 10 s`, `HOP size 1 min, slide 10 s (...)`.
pub fn window_text(shape: &WindowShape) -> String {
    let text = match shape.kind {
        WindowKind::Tumble => format!("TUMBLE size {}", duration(shape.size_ms)),
        WindowKind::Session => format!("SESSION gap {}", duration(shape.size_ms)),
        WindowKind::Cumulate => {
            format!("CUMULATE step {} up to {}", duration(shape.slide_ms), duration(shape.size_ms))
        }
        WindowKind::Hop => format!(
            "HOP size {}, slide {} (state kept per {} pane)",
            duration(shape.size_ms),
            duration(shape.slide_ms),
            duration(shape.pane_ms)
        ),
    };
    if shape.processing_time { format!("{text} over processing time (closed by the clock)") } else { text }
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
