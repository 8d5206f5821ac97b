//! Running one script the way a user's script runs: a fresh [`Session`], every statement in turn,
//! an error ending that statement only (as in the shell), every answer and error formatted. A
//! script that does not parse is then run statement by statement, as typed into the shell.

use std::sync::Arc;

use streamsql_connectors::Connectors;
use streamsql_connectors::live::LiveConnector;
use streamsql_engine::connector::{
    ChangelogMode, Connector, ConnectorRegistry, OptionSpec, Role, Sink, Source, SourceContext, TableDef,
};
use streamsql_engine::live::LiveCatalog;
use streamsql_sql::{Outcome, Session, SqlError};

use super::mutate::tokens;

/// What planning one script did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaseStats {
    /// Statements the parser found (0 when the script does not parse).
    pub parsed: usize,
    /// Statements that planned without an error.
    pub planned: usize,
}

/// Plans every statement of `sql` in a fresh session. Errors are expected (most fuzzed scripts
/// are wrong); only a panic, an abort or a hang is a finding, and those are the caller's to catch.
pub fn run_script(sql: &str, registry: &Arc<dyn ConnectorRegistry>) -> CaseStats {
    run_script_with(sql, registry, &mut |_| {})
}

/// [`run_script`], telling `on_error` every error (to see what the generator gets wrong).
pub fn run_script_with(
    sql: &str,
    registry: &Arc<dyn ConnectorRegistry>,
    on_error: &mut dyn FnMut(&SqlError),
) -> CaseStats {
    let mut session = Session::new(registry.clone());
    let mut stats = CaseStats::default();
    if !run_text(&mut session, sql, &mut stats, on_error) {
        // As a shell user would go on: statement by statement, each parsed on its own, so a
        // broken statement does not keep the others from the planner.
        let mut piece = String::new();
        for token in tokens(sql) {
            piece.push_str(token);
            if token == ";" {
                run_text(&mut session, &piece, &mut stats, on_error);
                piece.clear();
            }
        }
        if !piece.trim().is_empty() {
            run_text(&mut session, &piece, &mut stats, on_error);
        }
    }
    for (name, schema) in session.relations() {
        std::hint::black_box((name.len(), schema.fields().len()));
    }
    stats
}

/// Parses `sql` and runs its statements; false when it does not parse.
fn run_text(session: &mut Session, sql: &str, stats: &mut CaseStats, on_error: &mut dyn FnMut(&SqlError)) -> bool {
    let statements = match session.parse(sql) {
        Ok(statements) => statements,
        Err(error) => {
            on_error(&error);
            // Formatting is part of the path a user sees: positions, snippets, carets.
            std::hint::black_box(error.to_string());
            return false;
        }
    };
    stats.parsed += statements.len();
    for statement in statements {
        match session.execute_statement(sql, statement) {
            Ok(outcome) => {
                stats.planned += 1;
                std::hint::black_box(describe(&outcome));
            }
            Err(error) => {
                on_error(&error);
                std::hint::black_box((error.to_string(), error.location(), error.snippet().map(str::len)));
            }
        }
    }
    true
}

/// A short text of an outcome, so answers are built and walked as a caller would.
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done(text) | Outcome::Text(text) | Outcome::LiveQuery(text) => text.clone(),
        Outcome::Constant(plan, _) => plan.to_string(),
        Outcome::Insert(spec) | Outcome::Query(spec) => format!("{} {}", spec.name, spec.sink.table.schema),
        Outcome::Table(table) => format!("{:?}", table),
        Outcome::Control(control) => format!("{control:?}"),
    }
}

/// The built-in connectors plus `live`, with every check against the outside world turned off:
/// planning a fuzzed Cassandra or Flight table must not open connections.
pub fn offline_registry() -> Arc<dyn ConnectorRegistry> {
    let live = Arc::new(LiveConnector::new(LiveCatalog::new()));
    let connectors = Connectors::builtin().with(live);
    let names = connectors.names();
    let wrapped =
        names.iter().filter_map(|name| connectors.get(name)).map(|inner| Arc::new(Offline { inner })).collect();
    Arc::new(OfflineRegistry { connectors: wrapped })
}

struct OfflineRegistry {
    connectors: Vec<Arc<Offline>>,
}

impl ConnectorRegistry for OfflineRegistry {
    fn get(&self, name: &str) -> Option<Arc<dyn Connector>> {
        self.connectors.iter().find(|c| c.name().eq_ignore_ascii_case(name)).map(|c| c.clone() as Arc<dyn Connector>)
    }

    fn names(&self) -> Vec<&'static str> {
        self.connectors.iter().map(|c| c.name()).collect()
    }
}

/// A connector as it is, except that `check_external` never leaves the process.
struct Offline {
    inner: Arc<dyn Connector>,
}

impl Connector for Offline {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn options(&self) -> &'static [OptionSpec] {
        self.inner.options()
    }

    fn supports(&self, role: Role) -> bool {
        self.inner.supports(role)
    }

    fn default_schema(&self) -> Option<arrow::datatypes::SchemaRef> {
        self.inner.default_schema()
    }

    fn changelog(&self) -> ChangelogMode {
        self.inner.changelog()
    }

    fn validate(&self, table: &TableDef, role: Role) -> streamsql_engine::Result<()> {
        self.inner.validate(table, role)
    }

    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> streamsql_engine::Result<Box<dyn Source>> {
        self.inner.open_source(table, ctx)
    }

    fn open_sink(&self, table: &TableDef) -> streamsql_engine::Result<Box<dyn Sink>> {
        self.inner.open_sink(table)
    }
}
