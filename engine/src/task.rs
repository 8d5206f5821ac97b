//! The one task loop that drives any [`Operator`]: it owns the channels, keeps the watermark of
//! each input, aligns barriers, fires timers, and sends what the operator emits. See
//! [`crate::operator`] for the protocol it guarantees.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use crate::error::{Result, StreamError};
use crate::message::Message;
use crate::metrics::{OperatorMetrics, PipelineMetrics};
use crate::operator::{Checkpointer, Emitter, Epoch, Operator};
use crate::operators::aggregate::{LocalWindowAggregate, represented_rows};
use crate::operators::exchange::HashRouter;
use crate::time::WATERMARK_MAX;

/// Where a task's results go: one downstream instance, several chosen by hash of keys, all of
/// them (broadcast), or each in turn (rebalance).
/// Watermarks, barriers and `End` go to every downstream instance.
pub struct Output {
    targets: Vec<mpsc::Sender<Message>>,
    router: Option<HashRouter>,
    /// A hash edge into a two-phase aggregation: batches are pre-aggregated, and the partial
    /// rows routed by their own key columns. (In a mutex only so that an `Output` is `Sync`, as
    /// the futures borrowing it across `await`s must be `Send`; only its task locks it.)
    pre_aggregation: Option<std::sync::Mutex<(LocalWindowAggregate, HashRouter)>>,
    /// A rebalance edge: the target of the next batch (round robin); `None` for other edges.
    next: Option<usize>,
    /// The sending node's counters, where time spent waiting for a full channel is added.
    counters: Option<Arc<OperatorMetrics>>,
}

/// When `target` is full, the moment a send to it starts waiting, for [`waited`].
fn waiting<'a>(
    target: &mpsc::Sender<Message>,
    counters: Option<&'a OperatorMetrics>,
) -> Option<(std::time::Instant, &'a OperatorMetrics)> {
    counters.filter(|_| target.capacity() == 0).map(|c| (std::time::Instant::now(), c))
}

/// Adds the time a send waited for room (backpressure) to the sender's counters.
fn waited(since: Option<(std::time::Instant, &OperatorMetrics)>) {
    if let Some((at, counters)) = since {
        counters.backpressured_ns.fetch_add(at.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Sends `message` to `target`, counting the time spent waiting for room in `counters`.
async fn send_to(
    target: &mpsc::Sender<Message>,
    message: Message,
    counters: Option<&OperatorMetrics>,
) -> std::result::Result<(), mpsc::error::SendError<Message>> {
    let since = waiting(target, counters);
    let sent = target.send(message).await;
    waited(since);
    sent
}

/// [`send_to`] from a blocking thread.
fn send_blocking_to(
    target: &mpsc::Sender<Message>,
    message: Message,
    counters: Option<&OperatorMetrics>,
) -> std::result::Result<(), mpsc::error::SendError<Message>> {
    let since = waiting(target, counters);
    let sent = target.blocking_send(message);
    waited(since);
    sent
}

impl Output {
    /// Every batch to `target` (a forward edge, or the fan-in into a sink).
    pub fn forward(target: mpsc::Sender<Message>) -> Self {
        Self { targets: vec![target], router: None, pre_aggregation: None, next: None, counters: None }
    }

    /// Each row to the target its keys hash to.
    pub fn hash(router: HashRouter, targets: Vec<mpsc::Sender<Message>>) -> Self {
        Self { targets, router: Some(router), pre_aggregation: None, next: None, counters: None }
    }

    /// Every batch to every target (a broadcast edge).
    pub fn broadcast(targets: Vec<mpsc::Sender<Message>>) -> Self {
        Self { targets, router: None, pre_aggregation: None, next: None, counters: None }
    }

    /// Each batch to the next target in turn (a rebalance edge: rows that may go anywhere).
    pub fn rebalance(targets: Vec<mpsc::Sender<Message>>) -> Self {
        Self { targets, router: None, pre_aggregation: None, next: Some(0), counters: None }
    }

    /// Pre-aggregates batches with `local` before they are routed (a hash edge into a two-phase
    /// aggregation of `parallelism` instances).
    pub fn pre_aggregating(mut self, local: LocalWindowAggregate, parallelism: usize) -> Self {
        let router = HashRouter::new(local.key_columns(), parallelism);
        self.pre_aggregation = Some(std::sync::Mutex::new((local, router)));
        self
    }

    /// The pieces of `batch` a hash edge sends (pre-aggregated first on a two-phase edge), or
    /// the batch itself on other edges.
    fn route(&mut self, batch: RecordBatch) -> Result<std::result::Result<Vec<(usize, RecordBatch)>, RecordBatch>> {
        if let Some(pre) = self.pre_aggregation.as_mut() {
            let (local, router) =
                pre.get_mut().map_err(|_| StreamError::Internal("a pre-aggregation panicked".into()))?;
            if let Some(partial) = local.aggregate(&batch)? {
                return Ok(Ok(router.route(partial)?));
            }
        }
        match self.router.as_mut() {
            Some(router) => Ok(Ok(router.route(batch)?)),
            None => Ok(Err(batch)),
        }
    }

    /// Time spent waiting for room downstream is added to `counters` (the sending node's).
    pub fn count_backpressure(&mut self, counters: Arc<OperatorMetrics>) {
        self.counters = Some(counters);
    }

    /// A rebalance edge's target for the next batch.
    fn take_turn(&mut self) -> Option<usize> {
        let next = self.next?;
        self.next = Some((next + 1) % self.targets.len().max(1));
        Some(next)
    }

    /// Sends rows on; false when downstream has gone away (the pipeline is stopping).
    pub async fn send_batch(&mut self, batch: RecordBatch) -> Result<bool> {
        let counters = self.counters.clone();
        let counters = counters.as_deref();
        let batch = match self.route(batch)? {
            Ok(pieces) => {
                for (target, piece) in pieces {
                    if send_to(&self.targets[target], Message::Batch(piece), counters).await.is_err() {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            Err(batch) => batch,
        };
        if let Some(turn) = self.take_turn() {
            return Ok(send_to(&self.targets[turn], Message::Batch(batch), counters).await.is_ok());
        }
        let Some((last, others)) = self.targets.split_last() else { return Ok(false) };
        for target in others {
            if send_to(target, Message::Batch(batch.clone()), counters).await.is_err() {
                return Ok(false);
            }
        }
        Ok(send_to(last, Message::Batch(batch), counters).await.is_ok())
    }

    /// [`Output::send_batch`] from a blocking thread (a source task).
    pub fn send_batch_blocking(&mut self, batch: RecordBatch) -> Result<bool> {
        let counters = self.counters.clone();
        let counters = counters.as_deref();
        let batch = match self.route(batch)? {
            Ok(pieces) => {
                for (target, piece) in pieces {
                    if send_blocking_to(&self.targets[target], Message::Batch(piece), counters).is_err() {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            Err(batch) => batch,
        };
        if let Some(turn) = self.take_turn() {
            return Ok(send_blocking_to(&self.targets[turn], Message::Batch(batch), counters).is_ok());
        }
        let Some((last, others)) = self.targets.split_last() else { return Ok(false) };
        for target in others {
            if send_blocking_to(target, Message::Batch(batch.clone()), counters).is_err() {
                return Ok(false);
            }
        }
        Ok(send_blocking_to(last, Message::Batch(batch), counters).is_ok())
    }

    /// Sends a watermark, barrier or end to every target; false when one has gone away.
    pub async fn send_all(&self, message: Message) -> bool {
        for target in &self.targets {
            if target.send(message.clone()).await.is_err() {
                return false;
            }
        }
        true
    }

    /// [`Output::send_all`] from a blocking thread (a source task).
    pub fn send_all_blocking(&self, message: Message) -> bool {
        self.targets.iter().all(|target| target.blocking_send(message.clone()).is_ok())
    }
}

/// How often a task samples its operator's state size for the metrics (at most; after messages).
const STATE_SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What a task needs besides its channels.
pub struct TaskContext<'a> {
    /// Which instance of its operator this task runs (0-based).
    pub instance: usize,
    pub metrics: &'a PipelineMetrics,
    /// Takes snapshots at barriers; without one, a barrier is an error.
    pub checkpointer: Option<&'a dyn Checkpointer>,
    /// The counters of the node this task is an instance of.
    pub operator: Option<&'a OperatorMetrics>,
    /// Where late rows the operator routes go (the pipeline's late-rows sink), if anywhere;
    /// with checkpoints, barriers and the end follow them there.
    pub late_rows: Option<&'a mpsc::Sender<Message>>,
}

/// Drives `operator` over its channels until every channel has ended, a channel closes without
/// `End` (cancelled or failed upstream: nothing more is emitted), or downstream goes away. An
/// error from the operator ends the loop with that error.
///
/// Each channel is `(input, receiver)`: several channels may feed one input (one per upstream
/// instance, or the branches of a `UNION ALL`); the watermark is the minimum over all channels.
pub async fn run_operator(
    operator: &mut dyn Operator,
    channels: Vec<(usize, mpsc::Receiver<Message>)>,
    output: &mut Output,
    ctx: &TaskContext<'_>,
) -> Result<()> {
    let (input_of, mut inputs): (Vec<usize>, Vec<mpsc::Receiver<Message>>) = channels.into_iter().unzip();
    let n = inputs.len();
    if n == 0 {
        return Err(StreamError::Internal(format!("the {} operator has no inputs", operator.name())));
    }
    let mut input_watermarks = vec![i64::MIN; n];
    let mut ended = vec![false; n];
    // Channels whose sender said it is idle, until it sends rows or a watermark again.
    let mut idle = vec![false; n];
    let mut aligning = vec![false; n];
    let mut barrier: Option<Epoch> = None;
    let mut watermark = i64::MIN;
    // What was sent downstream: at most `watermark` (see `Operator::output_watermark`).
    let mut sent_watermark = i64::MIN;
    let mut emitter = Emitter::default();
    let mut next_input = 0;
    // When the state's size is next sampled for the metrics.
    let mut next_sample: Option<std::time::Instant> = None;

    loop {
        let skip: Vec<bool> = ended.iter().zip(&aligning).map(|(e, a)| *e || *a).collect();
        let received = match operator.next_timer() {
            Some(at) => tokio::select! {
                received = receive(&mut inputs, &skip, &mut next_input) => Some(received),
                () = tokio::time::sleep_until(at) => None,
            },
            None => Some(receive(&mut inputs, &skip, &mut next_input).await),
        };
        let Some((channel, message)) = received else {
            operator.on_timer(&mut emitter)?;
            if !send_emitted(&mut emitter, output, ctx).await? {
                return Ok(());
            }
            continue;
        };
        // Closed without End: cancelled or failed upstream; nothing more is emitted.
        let Some(message) = message else { return Ok(()) };
        match message {
            Message::Batch(batch) => {
                idle[channel] = false;
                match ctx.operator {
                    Some(counters) => {
                        PipelineMetrics::add(&counters.rows_in, represented_rows(&batch));
                        let started = std::time::Instant::now();
                        operator.on_batch(input_of[channel], batch, &mut emitter)?;
                        counters.batch_seconds.observe(started.elapsed());
                    }
                    None => operator.on_batch(input_of[channel], batch, &mut emitter)?,
                }
            }
            Message::Watermark(w) => {
                idle[channel] = false;
                input_watermarks[channel] = input_watermarks[channel].max(w);
            }
            Message::Idle => idle[channel] = true,
            Message::End => {
                ended[channel] = true;
                input_watermarks[channel] = WATERMARK_MAX;
                let input = input_of[channel];
                if input_of.iter().zip(&ended).all(|(i, e)| *i != input || *e) {
                    operator.on_input_end(input, &mut emitter)?;
                }
            }
            Message::Barrier(epoch) => match barrier {
                // A newer checkpoint: the one being aligned was given up (it timed out), and
                // an input that never sent its barrier sent this one. Align on the newer one.
                Some(aligned) if epoch > aligned => {
                    aligning.iter_mut().for_each(|a| *a = false);
                    barrier = Some(epoch);
                    aligning[channel] = true;
                }
                // The barrier of a checkpoint given up: nothing to align.
                Some(aligned) if epoch < aligned => {}
                _ => {
                    barrier = Some(epoch);
                    aligning[channel] = true;
                }
            },
        }
        if ended.iter().all(|e| *e) {
            operator.on_end(&mut emitter)?;
            if send_emitted(&mut emitter, output, ctx).await? {
                // What is left stands for this instance in later checkpoints (others may still run).
                if let Some(checkpointer) = ctx.checkpointer {
                    checkpointer.finished(ctx.instance, operator.snapshot(0)?)?;
                }
                if let Some(late) = ctx.late_rows {
                    let _ = late.send(Message::End).await;
                }
                output.send_all(Message::End).await;
            }
            return Ok(());
        }
        // Idle channels are left out; when every channel not ended is idle, the watermark holds
        // (ended ones count as +∞, which must not release every window while one is only idle).
        let minimum = if (0..n).all(|c| ended[c] || idle[c]) {
            watermark
        } else {
            input_watermarks.iter().zip(&idle).filter(|(_, idle)| !**idle).map(|(w, _)| *w).min().unwrap_or(watermark)
        };
        let rose = minimum > watermark;
        if rose {
            watermark = minimum;
            operator.on_watermark(watermark, &mut emitter)?;
        }
        if let Some(counters) = ctx.operator {
            let now = std::time::Instant::now();
            if next_sample.is_none_or(|at| now >= at) {
                counters.set_state_bytes(ctx.instance, operator.state_bytes());
                // A state that takes long to measure (many keys) is measured less often, so
                // that measuring costs at most about 1 % of the task's time.
                next_sample = Some(now + STATE_SAMPLE_INTERVAL.max(now.elapsed() * 100));
            }
        }
        // Results first, then the watermark that released them.
        if !send_emitted(&mut emitter, output, ctx).await? {
            return Ok(());
        }
        let forward = operator.output_watermark(watermark).min(watermark);
        if rose && forward > sent_watermark {
            sent_watermark = forward;
            if !output.send_all(Message::Watermark(forward)).await {
                return Ok(());
            }
        }
        if let Some(epoch) = barrier
            && ended.iter().zip(&aligning).all(|(e, a)| *e || *a)
        {
            let Some(checkpointer) = ctx.checkpointer else {
                return Err(StreamError::Internal(format!(
                    "the {} operator got a checkpoint barrier but the pipeline has no checkpoint store",
                    operator.name()
                )));
            };
            let state = operator.snapshot(epoch)?;
            checkpointer.store(operator.name(), ctx.instance, epoch, state)?;
            // The late rows before the barrier were sent with the results before it. The
            // late-rows sink's barrier goes first: the sink that stores first waits for the
            // other to store (see `Checkpoints::wait_complete`), so the late-rows sink must
            // not depend on the results' path to get its barrier.
            if let Some(late) = ctx.late_rows
                && late.send(Message::Barrier(epoch)).await.is_err()
            {
                return Ok(());
            }
            if !output.send_all(Message::Barrier(epoch)).await {
                return Ok(());
            }
            barrier = None;
            aligning.iter_mut().for_each(|a| *a = false);
        }
    }
}

/// The next message from any input not in `skip`, taking inputs in turn so none is starved:
/// `(input, None)` when that input's channel closed.
async fn receive(
    inputs: &mut [mpsc::Receiver<Message>],
    skip: &[bool],
    next_input: &mut usize,
) -> (usize, Option<Message>) {
    poll_fn(|cx| {
        let n = inputs.len();
        for offset in 0..n {
            let input = (*next_input + offset) % n;
            if skip[input] {
                continue;
            }
            if let Poll::Ready(message) = inputs[input].poll_recv(cx) {
                *next_input = (input + 1) % n;
                return Poll::Ready((input, message));
            }
        }
        Poll::Pending
    })
    .await
}

/// Sends what the operator emitted and counts its late rows; false when downstream is gone.
async fn send_emitted(emitter: &mut Emitter, output: &mut Output, ctx: &TaskContext<'_>) -> Result<bool> {
    let (batches, late_rows, late_batches) = emitter.take();
    let late_by_input = emitter.take_late_by_input();
    if late_rows > 0 {
        ctx.metrics.late_rows.fetch_add(late_rows, Ordering::Relaxed);
    }
    if let Some(counters) = ctx.operator {
        counters.late_rows.fetch_add(late_rows, Ordering::Relaxed);
        for (counter, late) in counters.late_by_input.iter().zip(late_by_input) {
            counter.fetch_add(late, Ordering::Relaxed);
        }
        PipelineMetrics::add(&counters.rows_out, batches.iter().map(RecordBatch::num_rows).sum());
    }
    for batch in late_batches {
        let Some(late) = ctx.late_rows else {
            return Err(StreamError::Internal("late rows routed in a pipeline without a late-rows sink".into()));
        };
        let rows = batch.num_rows();
        if late.send(Message::Batch(batch)).await.is_err() {
            return Ok(false);
        }
        PipelineMetrics::add(&ctx.metrics.late_rows_routed, rows);
    }
    for batch in batches {
        if !output.send_batch(batch).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::operator::StateSnapshot;

    /// Records every call, emits each batch it gets, and fails on a batch of 13 rows.
    #[derive(Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<String>>>,
        timer: Option<tokio::time::Instant>,
    }

    impl Recorder {
        fn log(&self, call: String) {
            self.calls.lock().expect("log").push(call);
        }
    }

    impl Operator for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn on_batch(&mut self, input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
            self.log(format!("batch {input}:{}", batch.num_rows()));
            if batch.num_rows() == 13 {
                return Err(StreamError::Config("unlucky batch".into()));
            }
            out.emit(batch);
            Ok(())
        }
        fn on_watermark(&mut self, watermark: i64, _out: &mut Emitter) -> Result<()> {
            self.log(format!("watermark {watermark}"));
            Ok(())
        }
        fn on_end(&mut self, _out: &mut Emitter) -> Result<()> {
            self.log("end".into());
            Ok(())
        }
        fn next_timer(&self) -> Option<tokio::time::Instant> {
            self.timer
        }
        fn on_timer(&mut self, _out: &mut Emitter) -> Result<()> {
            self.timer = None;
            self.log("timer".into());
            Ok(())
        }
        fn snapshot(&mut self, epoch: Epoch) -> Result<StateSnapshot> {
            self.log(format!("snapshot {epoch}"));
            Ok(StateSnapshot::default())
        }
    }

    #[derive(Default)]
    struct Store(Mutex<Vec<(String, usize, Epoch)>>);

    impl Checkpointer for Store {
        fn store(&self, operator: &str, instance: usize, epoch: Epoch, _state: StateSnapshot) -> Result<()> {
            self.0.lock().expect("store").push((operator.to_string(), instance, epoch));
            Ok(())
        }

        fn finished(&self, instance: usize, _state: StateSnapshot) -> Result<()> {
            self.0.lock().expect("store").push(("finished".to_string(), instance, 0));
            Ok(())
        }
    }

    fn rows(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))]).expect("batch")
    }

    fn describe(message: &Message) -> String {
        match message {
            Message::Batch(b) => format!("batch {}", b.num_rows()),
            Message::Watermark(w) => format!("watermark {w}"),
            Message::Barrier(e) => format!("barrier {e}"),
            Message::End => "end".into(),
            Message::Idle => "idle".into(),
        }
    }

    /// Runs a recorder over `inputs` channels fed with `messages` (input, message), in order,
    /// then closes them; returns the recorder's calls, what it sent downstream, and the result.
    async fn run(inputs: usize, messages: Vec<(usize, Message)>) -> (Vec<String>, Vec<String>, Result<()>) {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..inputs).map(|_| mpsc::channel(64)).unzip();
        for (input, message) in messages {
            senders[input].send(message).await.expect("send");
        }
        drop(senders);
        let (tx, mut rx) = mpsc::channel(64);
        let mut recorder = Recorder::default();
        let calls = recorder.calls.clone();
        let metrics = PipelineMetrics::default();
        let store = Store::default();
        let ctx =
            TaskContext { instance: 3, metrics: &metrics, checkpointer: Some(&store), operator: None, late_rows: None };
        let channels = receivers.into_iter().enumerate().collect();
        let result = run_operator(&mut recorder, channels, &mut Output::forward(tx), &ctx).await;
        let mut sent = Vec::new();
        while let Ok(message) = rx.try_recv() {
            sent.push(describe(&message));
        }
        let calls = calls.lock().expect("calls").clone();
        (calls, sent, result)
    }

    #[tokio::test]
    async fn the_watermark_is_the_minimum_over_inputs_and_end_counts_as_infinity() {
        let (calls, sent, result) = run(
            2,
            vec![
                (0, Message::Watermark(10)),
                (1, Message::Watermark(5)),
                (1, Message::Watermark(20)),
                (0, Message::End),
                (1, Message::End),
            ],
        )
        .await;
        assert!(result.is_ok());
        // Inputs are read in turn: 0:W10, 1:W5 (min 5), 0:End (+∞, min still 5), 1:W20 (min 20).
        assert_eq!(calls, ["watermark 5", "watermark 20", "end", "snapshot 0"]);
        assert_eq!(sent, ["watermark 5", "watermark 20", "end"]);
    }

    #[tokio::test]
    async fn an_idle_input_is_left_out_of_the_minimum_until_it_sends_again() {
        let (calls, sent, result) = run(
            2,
            vec![
                (0, Message::Watermark(10)),
                (0, Message::Watermark(30)),
                (0, Message::End),
                (1, Message::Watermark(5)),
                (1, Message::Idle),
                (1, Message::Watermark(7)),
                (1, Message::Idle),
                (1, Message::End),
            ],
        )
        .await;
        assert!(result.is_ok());
        // In turn: 0:W10, 1:W5 (min 5), 0:W30, 1:Idle (only input 0 counts: 30), 0:End,
        // 1:W7 (back, but the watermark never goes back), 1:Idle, 1:End.
        assert_eq!(
            calls,
            ["watermark 5", "watermark 30", "end", "snapshot 0"],
            "the final state stands in for later checkpoints"
        );
        assert_eq!(sent, ["watermark 5", "watermark 30", "end"]);
    }

    #[tokio::test]
    async fn barriers_are_aligned_before_the_snapshot_and_forwarded_after_it() {
        let (calls, sent, result) = run(
            2,
            vec![
                (0, Message::Batch(rows(1))),
                (0, Message::Barrier(7)),
                (0, Message::Batch(rows(2))), // after the barrier on input 0: held back
                (1, Message::Batch(rows(3))),
                (1, Message::Barrier(7)),
                (0, Message::End),
                (1, Message::End),
            ],
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(calls, ["batch 0:1", "batch 1:3", "snapshot 7", "batch 0:2", "end", "snapshot 0"]);
        assert_eq!(sent, ["batch 1", "batch 3", "barrier 7", "batch 2", "end"]);
    }

    #[tokio::test]
    async fn an_input_closed_without_end_stops_the_operator_quietly() {
        let (calls, sent, result) = run(2, vec![(0, Message::Batch(rows(4))), (0, Message::End)]).await;
        assert!(result.is_ok());
        assert_eq!(calls, ["batch 0:4"], "no end: input 1 closed without End");
        assert_eq!(sent, ["batch 4"]);
    }

    #[tokio::test]
    async fn an_operator_error_ends_the_task_with_it() {
        let (calls, sent, result) =
            run(1, vec![(0, Message::Batch(rows(13))), (0, Message::Batch(rows(1))), (0, Message::End)]).await;
        let error = result.expect_err("the unlucky batch fails");
        assert!(error.to_string().contains("unlucky batch"), "{error}");
        assert_eq!(calls, ["batch 0:13"]);
        assert!(sent.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn timers_fire_while_no_message_comes() {
        let (input, receiver) = mpsc::channel(4);
        let (tx, mut rx) = mpsc::channel(4);
        let mut recorder =
            Recorder { timer: Some(tokio::time::Instant::now() + Duration::from_secs(5)), ..Default::default() };
        let calls = recorder.calls.clone();
        let task = tokio::spawn(async move {
            let metrics = PipelineMetrics::default();
            let ctx =
                TaskContext { instance: 0, metrics: &metrics, checkpointer: None, operator: None, late_rows: None };
            run_operator(&mut recorder, vec![(0, receiver)], &mut Output::forward(tx), &ctx).await
        });
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(calls.lock().expect("calls").as_slice(), ["timer"]);
        input.send(Message::End).await.expect("send");
        assert!(task.await.expect("task").is_ok());
        assert_eq!(rx.recv().await.map(|m| describe(&m)), Some("end".into()));
    }

    #[tokio::test]
    async fn a_slow_consumer_holds_the_operator_back() {
        let (input, receiver) = mpsc::channel(16);
        let (tx, mut rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            let metrics = PipelineMetrics::default();
            let ctx =
                TaskContext { instance: 0, metrics: &metrics, checkpointer: None, operator: None, late_rows: None };
            run_operator(&mut Recorder::default(), vec![(0, receiver)], &mut Output::forward(tx), &ctx).await
        });
        for _ in 0..5 {
            input.send(Message::Batch(rows(1))).await.expect("send");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One batch fits downstream, one is being sent: the rest wait in the input channel.
        assert!(input.capacity() < 16 - 1, "the operator stopped reading while downstream was full");
        input.send(Message::End).await.expect("send");
        let mut received = 0;
        while let Some(message) = rx.recv().await {
            if matches!(message, Message::Batch(_)) {
                received += 1;
            }
        }
        assert_eq!(received, 5);
        assert!(task.await.expect("task").is_ok());
    }

    #[tokio::test]
    async fn a_barrier_without_a_checkpoint_store_is_an_error() {
        let (tx, _rx) = mpsc::channel(4);
        let (input, receiver) = mpsc::channel(4);
        input.send(Message::Barrier(1)).await.expect("send");
        drop(input);
        let metrics = PipelineMetrics::default();
        let ctx = TaskContext { instance: 0, metrics: &metrics, checkpointer: None, operator: None, late_rows: None };
        let result = run_operator(&mut Recorder::default(), vec![(0, receiver)], &mut Output::forward(tx), &ctx).await;
        assert!(result.expect_err("no store").to_string().contains("no checkpoint store"));
    }
}
