//! Checkpoints: consistent snapshots of a running pipeline, and resuming from the latest one.
//!
//! ```text
//!  every interval: request(e) ──▶ each source instance, between two batches:
//!                                   snapshot(position, watermarks) ─▶ store ─▶ Barrier(e) downstream
//!                  each stage instance, once Barrier(e) came on every input (aligned):
//!                                   snapshot(operator state) ─▶ store ─▶ Barrier(e) downstream
//!                  the sink, once Barrier(e) came from every upstream instance:
//!                                   flush, snapshot(its position) ─▶ store
//!  every participant stored e ──▶ chk-<e>/_manifest.json written (temp file, then rename):
//!                                 checkpoint e is complete; older ones beyond the retained count go
//! ```
//!
//! State lives under `<dir>/<pipeline>/chk-<epoch>/` as one Arrow IPC file per table of each
//! participant's [`StateSnapshot`] (`n<node>-i<instance>-<table>.arrow`; nodes numbered as
//! `EXPLAIN` numbers them, then the sink and the late-rows sink). A checkpoint without its manifest is incomplete and
//! never read. `<dir>` is a local directory or `s3://bucket/prefix` ([`crate::state_store`]).
//!
//! Starting a pipeline whose state directory holds a complete checkpoint restores it: every
//! participant gets its own snapshot before its first message, sources seek to their stored
//! positions and replay what came after, so the results equal those of a run that never stopped
//! (exactly once into sinks that truncate or upsert; see [`Delivery`]). The manifest names each
//! node and its parallelism; a job that no longer matches is refused, naming the first node that
//! differs. A participant that finished (a bounded source at its end) stands in for every later
//! checkpoint with its final snapshot. A pipeline whose input ended and whose output is complete
//! removes its checkpoints: they would only replay a finished job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arrow::record_batch::RecordBatch;

use crate::error::{Result, StreamError};
use crate::operator::{Checkpointer, Epoch, StateSnapshot};
use crate::state_store::{self, StateStore};

/// How a pipeline checkpoints (`SET 'execution.checkpointing.interval'` and friends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Time between the starts of two checkpoints.
    pub interval: Duration,
    /// The state directory (or `s3://bucket/prefix`); each pipeline keeps its checkpoints in a
    /// folder of its own.
    pub dir: PathBuf,
    /// S3 settings (`'s3.endpoint'`, `'s3.access-key'`, …) for an `s3://` directory.
    pub s3: Vec<(String, String)>,
    /// Complete checkpoints kept (`'state.checkpoints.num-retained'`), at least 1.
    pub retained: usize,
    /// Checkpoints that may fail in a row before the pipeline fails
    /// (`'execution.checkpointing.tolerable-failed-checkpoints'`).
    pub tolerable_failures: u32,
    /// A checkpoint not complete after this long has failed (`'execution.checkpointing.timeout'`).
    pub timeout: Duration,
    /// Start from the beginning, removing the pipeline's earlier checkpoints (`--from-scratch`).
    pub from_scratch: bool,
}

impl CheckpointConfig {
    /// Checkpoints every `interval` into `dir`, with Flink's defaults otherwise (1 retained,
    /// no failure tolerated, 10 minutes to complete).
    pub fn new(interval: Duration, dir: impl Into<PathBuf>) -> Self {
        Self {
            interval,
            dir: dir.into(),
            s3: Vec::new(),
            retained: 1,
            tolerable_failures: 0,
            timeout: Duration::from_secs(600),
            from_scratch: false,
        }
    }
}

/// What a sink (or a source) promises when a pipeline resumes from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Cannot take part in checkpoints: a pipeline using it with checkpoints is refused.
    Unsupported,
    /// Sources: reads again exactly what it read after the checkpoint. Sinks: output after the
    /// checkpoint is taken back on restore (a file truncated to its checkpointed length), so
    /// every result is written once.
    ExactlyOnce,
    /// Sinks that upsert by primary key (Cassandra, keyed live tables): replayed results
    /// overwrite themselves, so the table ends up exactly as without the restart.
    Idempotent,
    /// Results after the last checkpoint are written again after a restart (print, blackhole).
    AtLeastOnce,
    /// Sinks that commit what came before a checkpoint once the checkpoint is complete
    /// ([`crate::connector::Sink::checkpoint_complete`]; Kafka transactions): exactly once, and
    /// only with checkpoints, since nothing is committed without them.
    Transactional,
}

impl Delivery {
    pub fn describe(self) -> &'static str {
        match self {
            Delivery::Unsupported => "cannot be checkpointed",
            Delivery::ExactlyOnce => "exactly once",
            Delivery::Idempotent => "exactly once (idempotent upserts)",
            Delivery::AtLeastOnce => "at least once (results after the last checkpoint are written again)",
            Delivery::Transactional => "exactly once (committed when each checkpoint completes)",
        }
    }
}

/// One node of a pipeline as a checkpoint records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// What the node is: `source netflow`, `window aggregate`, `sink flow_counts`.
    pub name: String,
    pub instances: usize,
    /// Whether its state can be restored at another parallelism (keyed state, partitioned
    /// sources).
    pub rescalable: bool,
}

/// The last complete checkpoint, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointStats {
    pub epoch: Epoch,
    pub completed_at: SystemTime,
    /// Bytes of state files.
    pub bytes: u64,
    /// From the request to the manifest.
    pub duration: Duration,
}

impl std::fmt::Display for CheckpointStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = self.completed_at.elapsed().unwrap_or_default();
        write!(
            f,
            "checkpoint {} ({} bytes, took {} ms, {:.1} s ago)",
            self.epoch,
            self.bytes,
            self.duration.as_millis(),
            age.as_secs_f64()
        )
    }
}

struct InFlight {
    started: Instant,
    acked: BTreeSet<(usize, usize)>,
    bytes: u64,
    failed: Option<String>,
}

#[derive(Default)]
struct Progress {
    in_flight: BTreeMap<Epoch, InFlight>,
    /// Participants that finished, with their final state.
    finished: BTreeMap<(usize, usize), StateSnapshot>,
    last: Option<CheckpointStats>,
    failures_in_a_row: u32,
    /// Set when too many checkpoints failed in a row: the pipeline fails with it.
    fatal: Option<String>,
    /// The pipeline has ended: no more checkpoints.
    closed: bool,
    /// The folder was released to a later run of the pipeline (which may hold it now).
    released: bool,
}

/// The checkpoints of one running pipeline: requests, the state files, manifests, restores.
pub struct Checkpoints {
    config: CheckpointConfig,
    /// `<dir>/<pipeline>`.
    store: Arc<dyn StateStore>,
    /// Where the store is, as a key of [`OPEN`].
    root: PathBuf,
    pipeline: String,
    nodes: Vec<NodeEntry>,
    participants: usize,
    /// The latest epoch requested (0: none yet).
    requested: AtomicU64,
    next_epoch: AtomicU64,
    progress: Mutex<Progress>,
    /// Signalled when a checkpoint in flight completes or fails, and when the pipeline ends.
    settled: Condvar,
    /// The checkpoint restored at start: its epoch and files.
    restored: Option<(Epoch, BTreeSet<String>)>,
    /// Instances of each node when the restored checkpoint was taken.
    restored_instances: Vec<usize>,
}

const MANIFEST: &str = "_manifest.json";

/// The checkpoint folders of the pipelines running in this process: one pipeline each.
static OPEN: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.release();
    }
}

impl Checkpoints {
    /// Opens the state of pipeline `pipeline` made of `nodes` (in `EXPLAIN`'s order, the sink
    /// last): finds the latest complete checkpoint to restore and checks that it fits, or, with
    /// `from_scratch`, removes the earlier checkpoints.
    pub fn open(config: CheckpointConfig, pipeline: &str, nodes: Vec<NodeEntry>) -> Result<Self> {
        let store = state_store::open(&config.dir, &folder_name(pipeline), &config.s3)?;
        let root = PathBuf::from(store.describe());
        {
            let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
            if !open.insert(root.clone()) {
                return Err(StreamError::Config(format!(
                    "checkpoints: another running pipeline keeps its checkpoints in '{}' (pipelines writing the \
                     same table have the same name); give one of them another state directory",
                    root.display()
                )));
            }
        }
        let opened = Self::open_claimed(config, pipeline, nodes, store, root.clone());
        if opened.is_err() {
            OPEN.lock().unwrap_or_else(|e| e.into_inner()).remove(&root);
        }
        opened
    }

    fn open_claimed(
        config: CheckpointConfig,
        pipeline: &str,
        nodes: Vec<NodeEntry>,
        store: Arc<dyn StateStore>,
        root: PathBuf,
    ) -> Result<Self> {
        if config.from_scratch {
            remove_all(store.as_ref())?;
        }
        let participants = nodes.iter().map(|n| n.instances).sum();
        let listing = listing(store.as_ref())?;
        let restored = listing.iter().rev().find(|(_, files)| files.contains(MANIFEST)).map(|(e, f)| (*e, f.clone()));
        let mut next = 1;
        let mut restored_instances = nodes.iter().map(|n| n.instances).collect();
        if let Some((epoch, _)) = restored {
            let manifest = read_manifest(store.as_ref(), epoch)?;
            restored_instances = check_fits(&manifest, &nodes, epoch, &store.describe())?;
            next = epoch + 1;
        }
        // Incomplete checkpoints (a crash while one was taken) are never read: remove them.
        for (epoch, files) in &listing {
            if !files.contains(MANIFEST) || restored.as_ref().is_some_and(|(e, _)| epoch > e) {
                let _ = remove_checkpoint(store.as_ref(), *epoch, files);
            }
        }
        store.tidy();
        Ok(Self {
            config,
            store,
            root,
            pipeline: pipeline.to_string(),
            nodes,
            participants,
            requested: AtomicU64::new(0),
            next_epoch: AtomicU64::new(next),
            progress: Mutex::new(Progress::default()),
            settled: Condvar::new(),
            restored,
            restored_instances,
        })
    }

    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// Where this pipeline's checkpoints are (a local directory or an `s3://` location).
    pub fn location(&self) -> String {
        self.store.describe()
    }

    /// The checkpoint restored at start, if any.
    pub fn restored_epoch(&self) -> Option<Epoch> {
        self.restored.as_ref().map(|(epoch, _)| *epoch)
    }

    /// The latest epoch requested (0: none): sources emit a barrier when it passes theirs.
    pub fn requested(&self) -> Epoch {
        self.requested.load(Ordering::Acquire)
    }

    /// The last complete checkpoint.
    pub fn last(&self) -> Option<CheckpointStats> {
        self.lock().last
    }

    /// Why the pipeline must fail (too many checkpoints failed in a row), if it must.
    pub fn fatal(&self) -> Option<String> {
        self.lock().fatal.clone()
    }

    /// Waits until checkpoint `epoch` (which the caller took part in) is complete, and says
    /// whether it is: `false` when it failed or was given up, when the pipeline ended, or when
    /// `stop` says to stop waiting (it is asked every 50 ms). For a pipeline with two sinks,
    /// each of which commits its output only once a checkpoint is complete: the one that
    /// stores first waits for the other, so it never commits output of a later checkpoint.
    pub fn wait_complete(&self, epoch: Epoch, stop: impl Fn() -> bool) -> bool {
        let mut progress = self.lock();
        loop {
            if progress.last.is_some_and(|last| last.epoch >= epoch) {
                return true;
            }
            if !progress.in_flight.contains_key(&epoch) || progress.closed || stop() {
                return false;
            }
            progress = match self.settled.wait_timeout(progress, Duration::from_millis(50)) {
                Ok((progress, _)) => progress,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Whether a checkpoint is being taken.
    pub fn in_flight(&self) -> bool {
        !self.lock().in_flight.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the next checkpoint, unless one is still being taken (one that took longer than
    /// the timeout fails first). Returns its epoch.
    pub fn request(&self) -> Option<Epoch> {
        let mut progress = self.lock();
        if progress.closed {
            return None;
        }
        if let Some((&epoch, flight)) = progress.in_flight.iter().next() {
            if flight.started.elapsed() < self.config.timeout {
                return None;
            }
            progress.in_flight.remove(&epoch);
            let why = format!("not complete after {} s", self.config.timeout.as_secs());
            self.failed(&mut progress, epoch, &why);
            self.discard(epoch);
            self.settled.notify_all();
        }
        let epoch = self.next_epoch.fetch_add(1, Ordering::AcqRel);
        progress
            .in_flight
            .insert(epoch, InFlight { started: Instant::now(), acked: BTreeSet::new(), bytes: 0, failed: None });
        // Finished participants stand in with their final state.
        let finished: Vec<((usize, usize), StateSnapshot)> =
            progress.finished.iter().map(|(k, s)| (*k, s.clone())).collect();
        for ((node, instance), state) in finished {
            self.ack(&mut progress, node, instance, epoch, &state);
        }
        self.requested.store(epoch, Ordering::Release);
        Some(epoch)
    }

    /// Keeps `state` of `instance` of `node` for checkpoint `epoch`.
    pub fn store(&self, node: usize, instance: usize, epoch: Epoch, state: &StateSnapshot) -> Result<()> {
        let mut progress = self.lock();
        self.ack(&mut progress, node, instance, epoch, state);
        match &progress.fatal {
            Some(why) => Err(StreamError::Remote(why.clone())),
            None => Ok(()),
        }
    }

    /// `instance` of `node` finished with `state`: it stands for every checkpoint it has not
    /// taken part in, now and later.
    pub fn finished(&self, node: usize, instance: usize, state: StateSnapshot) -> Result<()> {
        let mut progress = self.lock();
        let open: Vec<Epoch> =
            progress.in_flight.iter().filter(|(_, f)| !f.acked.contains(&(node, instance))).map(|(e, _)| *e).collect();
        for epoch in open {
            self.ack(&mut progress, node, instance, epoch, &state);
        }
        progress.finished.insert((node, instance), state);
        Ok(())
    }

    /// The state `instance` of `node` had in the restored checkpoint (`None` when nothing is
    /// restored). At another parallelism than then: the state of every former instance, marked
    /// [`StateSnapshot::rescaled`], for the instance to keep what it owns.
    pub fn restore_state(&self, node: usize, instance: usize) -> Result<Option<StateSnapshot>> {
        let Some((epoch, files)) = &self.restored else { return Ok(None) };
        let store = self.store.as_ref();
        let now = self.nodes.get(node).map_or(1, |n| n.instances);
        let then = self.restored_instances.get(node).copied().unwrap_or(now);
        if then == now {
            return Ok(Some(StateSnapshot {
                tables: read_tables(store, *epoch, files, node, instance)?,
                rescaled: None,
            }));
        }
        let mut tables: Vec<(String, Vec<RecordBatch>)> = Vec::new();
        for former in 0..then {
            for (table, batches) in read_tables(store, *epoch, files, node, former)? {
                match tables.iter_mut().find(|(t, _)| *t == table) {
                    Some((_, all)) => all.extend(batches),
                    None => tables.push((table, batches)),
                }
            }
        }
        Ok(Some(StateSnapshot { tables, rescaled: Some((instance, now)) }))
    }

    /// The pipeline's input ended and its output is complete: its checkpoints would only
    /// replay a finished job, so they go.
    pub fn completed(&self) -> Result<()> {
        let mut progress = self.lock();
        progress.closed = true;
        progress.in_flight.clear();
        self.settled.notify_all();
        remove_all(self.store.as_ref())
    }

    /// The pipeline has stopped: its folder may be used by the next run of it in this process.
    pub fn release(&self) {
        let mut progress = self.lock();
        progress.closed = true;
        self.settled.notify_all();
        if !std::mem::replace(&mut progress.released, true) {
            OPEN.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.root);
        }
    }

    /// Removes what an incomplete checkpoint `epoch` wrote.
    fn discard(&self, epoch: Epoch) {
        if let Ok(listing) = listing(self.store.as_ref())
            && let Some(files) = listing.get(&epoch)
        {
            let _ = remove_checkpoint(self.store.as_ref(), epoch, files);
            self.store.tidy();
        }
    }

    /// Writes a participant's state and counts it; the last one completes the checkpoint.
    fn ack(&self, progress: &mut Progress, node: usize, instance: usize, epoch: Epoch, state: &StateSnapshot) {
        if progress.closed {
            return;
        }
        let Some(flight) = progress.in_flight.get_mut(&epoch) else { return };
        if !flight.acked.insert((node, instance)) {
            return;
        }
        if flight.failed.is_none() {
            match write_state(self.store.as_ref(), epoch, node, instance, state) {
                Ok(bytes) => flight.bytes += bytes,
                Err(e) => flight.failed = Some(e.to_string()),
            }
        }
        if flight.acked.len() < self.participants {
            return;
        }
        let Some(flight) = progress.in_flight.remove(&epoch) else { return };
        self.settled.notify_all();
        let written = match flight.failed {
            Some(why) => Err(why),
            None => self.write_manifest(epoch, flight.bytes).map_err(|e| e.to_string()),
        };
        match written {
            Ok(()) => {
                progress.failures_in_a_row = 0;
                let stats = CheckpointStats {
                    epoch,
                    completed_at: SystemTime::now(),
                    bytes: flight.bytes,
                    duration: flight.started.elapsed(),
                };
                tracing::debug!("{}: {stats}", self.pipeline);
                progress.last = Some(stats);
                self.prune(epoch);
            }
            Err(why) => {
                self.discard(epoch);
                self.failed(progress, epoch, &why);
            }
        }
    }

    fn failed(&self, progress: &mut Progress, epoch: Epoch, why: &str) {
        progress.failures_in_a_row += 1;
        tracing::warn!("{}: checkpoint {epoch} failed: {why}", self.pipeline);
        if progress.failures_in_a_row > self.config.tolerable_failures {
            progress.fatal = Some(format!(
                "checkpoint {epoch} failed ({why}); {} checkpoints failed in a row, more than \
                 'execution.checkpointing.tolerable-failed-checkpoints' = {} allows",
                progress.failures_in_a_row, self.config.tolerable_failures
            ));
        }
    }

    fn write_manifest(&self, epoch: Epoch, bytes: u64) -> Result<()> {
        let nodes: Vec<serde_json::Value> =
            self.nodes.iter().map(|n| serde_json::json!({ "name": n.name, "instances": n.instances })).collect();
        let created = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let manifest = serde_json::json!({
            "epoch": epoch,
            "pipeline": self.pipeline,
            "nodes": nodes,
            "bytes": bytes,
            "created_ms": created,
        });
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| StreamError::Internal(e.to_string()))?;
        self.store.put(&key(epoch, MANIFEST), text.into_bytes())
    }

    /// Removes complete checkpoints beyond the retained count, oldest first.
    fn prune(&self, latest: Epoch) {
        let Ok(listing) = listing(self.store.as_ref()) else { return };
        let complete: Vec<(&Epoch, &BTreeSet<String>)> =
            listing.iter().filter(|(e, files)| **e <= latest && files.contains(MANIFEST)).collect();
        let keep = self.config.retained.max(1);
        if complete.len() > keep {
            for (epoch, files) in &complete[..complete.len() - keep] {
                let _ = remove_checkpoint(self.store.as_ref(), **epoch, files);
            }
            self.store.tidy();
        }
    }
}

/// A [`Checkpointer`] for the instances of one node.
pub struct NodeCheckpointer {
    pub checkpoints: Arc<Checkpoints>,
    pub node: usize,
}

impl Checkpointer for NodeCheckpointer {
    fn store(&self, _operator: &str, instance: usize, epoch: Epoch, state: StateSnapshot) -> Result<()> {
        self.checkpoints.store(self.node, instance, epoch, &state)
    }

    fn finished(&self, instance: usize, state: StateSnapshot) -> Result<()> {
        self.checkpoints.finished(self.node, instance, state)
    }
}

/// `INSERT INTO flow_counts` → `insert-into-flow_counts`: a folder name from a pipeline name.
fn folder_name(pipeline: &str) -> String {
    let mut name: String = pipeline
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches('-').trim_start_matches('.').to_string();
    if name.is_empty() { "pipeline".into() } else { name }
}

/// The key of file `file` of checkpoint `epoch`.
fn key(epoch: Epoch, file: &str) -> String {
    format!("chk-{epoch:08}/{file}")
}

/// The files of each checkpoint in the store, by epoch.
fn listing(store: &dyn StateStore) -> Result<BTreeMap<Epoch, BTreeSet<String>>> {
    let mut checkpoints: BTreeMap<Epoch, BTreeSet<String>> = BTreeMap::new();
    for key in store.list()? {
        let Some((folder, file)) = key.split_once('/') else { continue };
        let Some(epoch) = folder.strip_prefix("chk-").and_then(|e| e.parse().ok()) else { continue };
        checkpoints.entry(epoch).or_default().insert(file.to_string());
    }
    Ok(checkpoints)
}

/// Removes checkpoint `epoch` (its `files`), its manifest first: a removal cut short leaves an
/// incomplete checkpoint (never read), not a complete-looking one with files missing.
fn remove_checkpoint(store: &dyn StateStore, epoch: Epoch, files: &BTreeSet<String>) -> Result<()> {
    store.delete(&key(epoch, MANIFEST))?;
    for file in files.iter().filter(|f| *f != MANIFEST) {
        store.delete(&key(epoch, file))?;
    }
    Ok(())
}

/// Removes every checkpoint of a pipeline, every manifest first.
fn remove_all(store: &dyn StateStore) -> Result<()> {
    let listing = listing(store)?;
    for epoch in listing.keys() {
        store.delete(&key(*epoch, MANIFEST))?;
    }
    for (epoch, files) in &listing {
        remove_checkpoint(store, *epoch, files)?;
    }
    store.tidy();
    Ok(())
}

fn read_manifest(store: &dyn StateStore, epoch: Epoch) -> Result<serde_json::Value> {
    let name = key(epoch, MANIFEST);
    let bytes = store.get(&name)?.ok_or_else(|| {
        StreamError::Config(format!("checkpoint manifest '{name}' in '{}' is gone", store.describe()))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        StreamError::Config(format!("checkpoint manifest '{name}' in '{}' is not valid JSON: {e}", store.describe()))
    })
}

/// The tables instance `instance` of `node` stored in checkpoint `epoch` (whose files are
/// `files`).
fn read_tables(
    store: &dyn StateStore,
    epoch: Epoch,
    files: &BTreeSet<String>,
    node: usize,
    instance: usize,
) -> Result<Vec<(String, Vec<RecordBatch>)>> {
    let prefix = format!("n{node}-i{instance}-");
    let mut tables = Vec::new();
    for file in files {
        let Some(table) = file.strip_prefix(&prefix).and_then(|f| f.strip_suffix(".arrow")) else { continue };
        let name = key(epoch, file);
        let bytes = store.get(&name)?.ok_or_else(|| {
            StreamError::Config(format!("checkpoint file '{name}' in '{}' is gone", store.describe()))
        })?;
        let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)?;
        tables.push((table.to_string(), reader.collect::<std::result::Result<Vec<_>, _>>()?));
    }
    Ok(tables)
}

/// Refuses a checkpoint of a job other than `nodes`, naming the first node that differs;
/// returns each node's instances when it was taken.
fn check_fits(manifest: &serde_json::Value, nodes: &[NodeEntry], epoch: Epoch, root: &str) -> Result<Vec<usize>> {
    let stored: Vec<NodeEntry> = manifest["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| NodeEntry {
                    name: n["name"].as_str().unwrap_or("").to_string(),
                    instances: n["instances"].as_u64().unwrap_or(0) as usize,
                    rescalable: false,
                })
                .collect()
        })
        .unwrap_or_default();
    let advice = "start with --from-scratch (or use another state directory) to run this job from the beginning";
    let refuse = |what: String| {
        StreamError::Config(format!("cannot resume from checkpoint {epoch} in '{root}': {what}; {advice}"))
    };
    for (i, (old, new)) in stored.iter().zip(nodes).enumerate() {
        if old.name != new.name {
            return Err(refuse(format!(
                "it was taken by another job: operator {} was '{}' and is now '{}'",
                i + 1,
                old.name,
                new.name
            )));
        }
        if old.instances != new.instances && !new.rescalable {
            return Err(refuse(format!(
                "operator {} ('{}') ran {} instance(s) then and {} now, and its state cannot be spread over \
                 another number of instances yet",
                i + 1,
                new.name,
                old.instances,
                new.instances
            )));
        }
    }
    if stored.len() != nodes.len() {
        return Err(refuse(format!(
            "it was taken by another job: {} operators then, {} now",
            stored.len(),
            nodes.len()
        )));
    }
    Ok(stored.iter().map(|n| n.instances).collect())
}

/// Writes each non-empty table of `state` as an Arrow IPC file; returns the bytes written.
fn write_state(
    store: &dyn StateStore,
    epoch: Epoch,
    node: usize,
    instance: usize,
    state: &StateSnapshot,
) -> Result<u64> {
    let mut bytes = 0;
    for (table, batches) in &state.tables {
        let Some(first) = batches.first() else { continue };
        let mut writer = arrow::ipc::writer::FileWriter::try_new(Vec::new(), &first.schema())?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()?;
        let file = writer.into_inner()?;
        bytes += file.len() as u64;
        store.put(&key(epoch, &format!("n{node}-i{instance}-{table}.arrow")), file)?;
    }
    Ok(bytes)
}

/// A source position that is one count (records read, rows generated), as a snapshot.
pub fn position_state(position: u64) -> StateSnapshot {
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "position",
        arrow::datatypes::DataType::Int64,
        false,
    )]));
    let column = arrow::array::Int64Array::from(vec![position as i64]);
    let batch = RecordBatch::try_new(schema, vec![Arc::new(column)]).expect("one Int64 column");
    StateSnapshot::single("position", vec![batch])
}

/// The count of a [`position_state`].
pub fn position_of(state: &StateSnapshot) -> Result<u64> {
    use arrow::array::AsArray;
    let batch = state
        .table("position")
        .first()
        .filter(|b| b.num_rows() == 1 && b.num_columns() == 1)
        .ok_or_else(|| StreamError::Config("the checkpoint has no position for this source".into()))?;
    let column = batch
        .column(0)
        .as_primitive_opt::<arrow::datatypes::Int64Type>()
        .ok_or_else(|| StreamError::Config("the checkpoint's source position is not a BIGINT".into()))?;
    Ok(column.value(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use std::fs;

    fn state(value: i64) -> StateSnapshot {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![value]))]).unwrap();
        StateSnapshot::single("position", vec![batch])
    }

    fn nodes() -> Vec<NodeEntry> {
        vec![
            NodeEntry { name: "source s".into(), instances: 1, rescalable: false },
            NodeEntry { name: "window aggregate".into(), instances: 2, rescalable: false },
            NodeEntry { name: "sink t".into(), instances: 1, rescalable: false },
        ]
    }

    fn value(state: &StateSnapshot) -> i64 {
        use arrow::array::AsArray;
        state.table("position")[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0)
    }

    #[test]
    fn a_checkpoint_completes_when_every_participant_stored_and_is_restored_next_time() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("streamsql-chk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let config = CheckpointConfig::new(Duration::from_secs(1), &dir);
        let checkpoints = Checkpoints::open(config.clone(), "INSERT INTO t", nodes())?;
        let epoch = checkpoints.request().expect("first request");
        assert_eq!(checkpoints.request(), None, "one checkpoint at a time");
        checkpoints.store(0, 0, epoch, &state(10))?;
        checkpoints.store(1, 0, epoch, &state(20))?;
        checkpoints.store(1, 1, epoch, &state(21))?;
        assert!(checkpoints.last().is_none(), "the sink has not stored yet");
        checkpoints.store(3 - 1, 0, epoch, &StateSnapshot::default())?;
        assert_eq!(checkpoints.last().map(|s| s.epoch), Some(epoch));
        // The source finishes; the next checkpoint needs the others only.
        checkpoints.finished(0, 0, state(99))?;
        let second = checkpoints.request().expect("second request");
        for (node, instance, v) in [(1, 0, 30), (1, 1, 31), (2, 0, 0)] {
            checkpoints.store(node, instance, second, &state(v))?;
        }
        assert_eq!(checkpoints.last().map(|s| s.epoch), Some(second));
        assert_eq!(checkpoints.location(), dir.join("insert-into-t").display().to_string());
        assert!(!dir.join("insert-into-t").join(format!("chk-{epoch:08}")).exists(), "one retained");
        assert!(dir.join("insert-into-t").join(format!("chk-{second:08}")).join(MANIFEST).exists());

        drop(checkpoints);
        let reopened = Checkpoints::open(config.clone(), "INSERT INTO t", nodes())?;
        assert!(Checkpoints::open(config.clone(), "INSERT INTO t", nodes()).is_err(), "one pipeline per folder");
        assert_eq!(reopened.restored_epoch(), Some(second));
        assert_eq!(value(&reopened.restore_state(0, 0)?.expect("restored")), 99);
        assert_eq!(value(&reopened.restore_state(1, 1)?.expect("restored")), 31);

        drop(reopened);
        let mut other = nodes();
        other[1].name = "updating aggregate".into();
        let refused = Checkpoints::open(config.clone(), "INSERT INTO t", other).err().expect("refused").to_string();
        assert!(refused.contains("operator 2 was 'window aggregate' and is now 'updating aggregate'"), "{refused}");
        let mut wider = nodes();
        wider[1].instances = 4;
        let refused = Checkpoints::open(config.clone(), "INSERT INTO t", wider).err().expect("refused").to_string();
        assert!(refused.contains("2 instance(s) then and 4 now"), "{refused}");
        // Keyed state is spread: each new instance gets every former instance's state to pick from.
        let mut rescalable = nodes();
        rescalable[1].instances = 3;
        rescalable[1].rescalable = true;
        let spread = Checkpoints::open(config.clone(), "INSERT INTO t", rescalable)?;
        let state = spread.restore_state(1, 2)?.expect("restored");
        assert_eq!(state.rescaled, Some((2, 3)));
        assert_eq!(state.table("position").len(), 2, "both former instances' batches");
        drop(spread);

        let scratch = Checkpoints::open(CheckpointConfig { from_scratch: true, ..config }, "INSERT INTO t", nodes())?;
        assert_eq!(scratch.restored_epoch(), None);
        fs::remove_dir_all(&dir).ok();
        Ok(())
    }
}
