//! The runtime with source and sink doubles that end, fail, panic, block and lag: errors reach
//! `join`, a failed pipeline aborts its sink, cancellation and drop stop blocking threads, and a
//! slow sink holds the source back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use arrow::array::Int64Array;
use arrow::datatypes::DataType;

use super::*;
use crate::connector::{Connector, OptionSpec, Role, Source, TableDef};
use crate::operators::stateless::StatelessChain;
use crate::pipeline::BoundTable;
use crate::time::hidden_fields;

const ROWS_PER_BATCH: i64 = 10;

#[derive(Clone, Copy)]
enum SourceKind {
    /// `n` batches, then the end.
    Bounded(usize),
    /// Batches forever (until the runtime stops asking).
    Unbounded,
    /// `n` batches, then an error.
    FailAfter(usize),
    /// `n` batches, then a panic.
    PanicAfter(usize),
}

#[derive(Clone, Copy)]
enum SinkKind {
    Collect,
    FailAt(usize),
    PanicAt(usize),
    /// Sleeps this long per batch.
    Slow(Duration),
}

/// What the doubles saw.
#[derive(Default)]
struct Log {
    sink_rows: AtomicUsize,
    finished: AtomicBool,
    aborted: AtomicBool,
    source_dropped: AtomicBool,
}

struct Doubles {
    source: SourceKind,
    sink: SinkKind,
    log: Arc<Log>,
}

struct DoubleSource {
    kind: SourceKind,
    produced: usize,
    log: Arc<Log>,
}

impl Drop for DoubleSource {
    fn drop(&mut self) {
        self.log.source_dropped.store(true, Ordering::SeqCst);
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]))
}

impl Source for DoubleSource {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let n = self.produced;
        match self.kind {
            SourceKind::Bounded(limit) if n >= limit => return Ok(None),
            SourceKind::FailAfter(limit) if n >= limit => {
                return Err(StreamError::Config("the source broke".into()));
            }
            SourceKind::PanicAfter(limit) if n >= limit => panic!("the source had a bug"),
            _ => {}
        }
        self.produced += 1;
        let start = n as i64 * ROWS_PER_BATCH;
        Ok(Some(RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from_iter_values(start..start + ROWS_PER_BATCH))],
        )?))
    }
}

struct DoubleSink {
    kind: SinkKind,
    batches: usize,
    log: Arc<Log>,
}

impl Sink for DoubleSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.batches += 1;
        match self.kind {
            SinkKind::FailAt(at) if self.batches == at => return Err(StreamError::Config("the sink broke".into())),
            SinkKind::PanicAt(at) if self.batches == at => panic!("the sink had a bug"),
            SinkKind::Slow(pause) => std::thread::sleep(pause),
            _ => {}
        }
        self.log.sink_rows.fetch_add(batch.num_rows(), Ordering::SeqCst);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.log.finished.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn abort(&mut self) -> Result<()> {
        self.log.aborted.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl Connector for Doubles {
    fn name(&self) -> &'static str {
        "doubles"
    }
    fn options(&self) -> &'static [OptionSpec] {
        &[]
    }
    fn supports(&self, _role: Role) -> bool {
        true
    }
    fn validate(&self, _table: &TableDef, _role: Role) -> Result<()> {
        Ok(())
    }
    fn open_source(&self, _table: &TableDef, _ctx: &SourceContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(DoubleSource { kind: self.source, produced: 0, log: self.log.clone() }))
    }
    fn open_sink(&self, _table: &TableDef) -> Result<Box<dyn Sink>> {
        Ok(Box::new(DoubleSink { kind: self.sink, batches: 0, log: self.log.clone() }))
    }
}

fn pipeline(source: SourceKind, sink: SinkKind) -> (PipelineSpec, Arc<Log>) {
    let log = Arc::new(Log::default());
    let connector: Arc<dyn Connector> = Arc::new(Doubles { source, sink, log: log.clone() });
    let table = |name: &str| TableDef {
        name: name.into(),
        schema: schema(),
        options: BTreeMap::new(),
        watermark: None,
        primary_key: Vec::new(),
        computed: Vec::new(),
    };
    let spec = PipelineSpec::linear(
        "INSERT INTO out".into(),
        BoundTable { table: table("in"), connector: connector.clone() },
        StatelessChain::new(Vec::new(), &hidden_fields()),
        None,
        BoundTable { table: table("out"), connector },
        1,
        ROWS_PER_BATCH as usize,
    );
    (spec, log)
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future).await.expect("the pipeline ends within 10 s")
}

#[tokio::test]
async fn a_bounded_input_ends_the_pipeline_with_every_row_counted() {
    let (spec, log) = pipeline(SourceKind::Bounded(5), SinkKind::Collect);
    let report = within(start(spec).join()).await.expect("no error");
    assert_eq!((report.metrics.rows_in, report.metrics.rows_out), (50, 50));
    assert!(!report.cancelled);
    assert_eq!(log.sink_rows.load(Ordering::SeqCst), 50);
    assert!(log.finished.load(Ordering::SeqCst) && !log.aborted.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_source_error_fails_the_pipeline_and_aborts_the_sink() {
    let (spec, log) = pipeline(SourceKind::FailAfter(3), SinkKind::Collect);
    let error = within(start(spec).join()).await.expect_err("the source error");
    assert!(error.to_string().contains("the source broke"), "{error}");
    assert!(log.aborted.load(Ordering::SeqCst) && !log.finished.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_source_panic_fails_the_pipeline_and_aborts_the_sink() {
    let (spec, log) = pipeline(SourceKind::PanicAfter(2), SinkKind::Collect);
    let error = within(start(spec).join()).await.expect_err("the panic");
    assert!(error.to_string().contains("the source panicked: the source had a bug"), "{error}");
    assert!(log.aborted.load(Ordering::SeqCst) && !log.finished.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_sink_error_or_panic_stops_an_unbounded_source() {
    for (sink, expected) in
        [(SinkKind::FailAt(4), "the sink broke"), (SinkKind::PanicAt(4), "the sink panicked: the sink had a bug")]
    {
        let (spec, log) = pipeline(SourceKind::Unbounded, sink);
        let error = within(start(spec).join()).await.expect_err("the sink error");
        assert!(error.to_string().contains(expected), "{error}");
        assert!(log.source_dropped.load(Ordering::SeqCst), "the source stopped");
    }
}

#[tokio::test]
async fn cancelling_stops_an_unbounded_source_and_finishes_the_sink() {
    let (spec, log) = pipeline(SourceKind::Unbounded, SinkKind::Collect);
    let running = start(spec);
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.control().cancel();
    let report = within(running.join()).await.expect("no error");
    assert!(report.cancelled);
    assert_eq!(report.metrics.rows_out as usize, log.sink_rows.load(Ordering::SeqCst));
    assert!(log.finished.load(Ordering::SeqCst) && !log.aborted.load(Ordering::SeqCst));
}

#[tokio::test]
async fn dropping_a_running_pipeline_stops_its_blocking_source() {
    let (spec, log) = pipeline(SourceKind::Unbounded, SinkKind::Slow(Duration::from_millis(1)));
    let running = start(spec);
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(running);
    within(async {
        while !log.source_dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_slow_sink_holds_the_source_back() {
    let (spec, _log) = pipeline(SourceKind::Unbounded, SinkKind::Slow(Duration::from_millis(20)));
    let running = start(spec);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = running.control().metrics();
    // Only what fits in the channel (and the batch in each task's hands) runs ahead of the sink.
    let ahead = metrics.rows_in.saturating_sub(metrics.rows_out);
    assert!(ahead <= (CHANNEL_CAPACITY as u64 + 3) * ROWS_PER_BATCH as u64, "{metrics:?}");
    running.control().cancel();
    within(running.join()).await.expect("no error");
}
