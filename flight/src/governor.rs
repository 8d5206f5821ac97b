//! What one ad-hoc query may take: memory, time, a place among the running queries, and threads
//! of its own, so no query can starve or abort the pipelines that share the process.
//!
//! ```text
//!  client ─▶ Flight SQL (main runtime) ─▶ wait for a slot (Semaphore, max_concurrent)
//!        ─▶ a thread of its own (large stack, own runtime) ─▶ plan + run under a per-query MemoryPool
//!        ─▶ the result's bytes stay reserved in the pool until DoGet has sent them or they expire
//!  timeout or client gone: the query's future is dropped, closing DataFusion's streams and
//!  freeing its memory
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datafusion::common::{DataFusionError, Result, resources_datafusion_err};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryLimit, MemoryPool, MemoryReservation};
use streamsql_engine::limits::PLANNING_STACK_BYTES;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

/// Bounds on ad-hoc queries, from `--query-memory-limit`, `--query-timeout` and
/// `--query-concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory one query may hold while it runs, its result included.
    pub memory_per_query_bytes: usize,
    /// Memory all queries together may hold, results waiting for their DoGet included.
    pub memory_total_bytes: usize,
    /// How long a query may take, waiting for a slot included.
    pub timeout: Duration,
    /// Queries running at once; more wait for a slot.
    pub max_concurrent: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            memory_per_query_bytes: 512 << 20,
            memory_total_bytes: 1 << 30,
            timeout: Duration::from_secs(60),
            max_concurrent: 4,
        }
    }
}

/// Runs each query on a thread of its own, bounds how many run at once, and holds the memory
/// they share.
pub struct Governor {
    limits: QueryLimits,
    slots: Arc<Semaphore>,
    total: Arc<GreedyMemoryPool>,
    stopping: watch::Sender<bool>,
}

impl fmt::Debug for Governor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Governor").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Governor {
    pub fn new(limits: QueryLimits) -> Self {
        Self {
            limits,
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            total: Arc::new(GreedyMemoryPool::new(limits.memory_total_bytes)),
            stopping: watch::channel(false).0,
        }
    }

    /// Cancels every query running or waiting now and refuses new ones (the server is
    /// stopping).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Memory reserved by running queries and kept results, in bytes.
    pub fn reserved_bytes(&self) -> usize {
        self.total.reserved()
    }

    /// A memory pool for one query: at most `memory_per_query_bytes`, out of the shared total.
    pub fn query_pool(&self) -> Arc<dyn MemoryPool> {
        Arc::new(QueryPool {
            limit: self.limits.memory_per_query_bytes,
            total_limit: self.limits.memory_total_bytes,
            used: AtomicUsize::new(0),
            total: self.total.clone(),
        })
    }

    /// Runs `work` once a slot is free, within the time limit, on a thread of its own (with a
    /// large stack, and a runtime of its own): the OS shares the cores fairly between it, other
    /// queries and the pipelines, so a heavy query cannot starve a light one or ingestion. On
    /// timeout, or when the caller goes away, the work is dropped (its streams closed, its
    /// memory returned).
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let mut stopping = self.stopping.subscribe();
        if *stopping.borrow() {
            return Err(DataFusionError::Execution("the query service is stopping".into()));
        }
        let timeout = self.limits.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let permit: OwnedSemaphorePermit =
            match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(DataFusionError::Execution("the query service has stopped".into())),
                Err(_) => {
                    return Err(resources_datafusion_err!(
                        "{} queries were already running for the whole query timeout ({}); try again later",
                        self.limits.max_concurrent,
                        humane(timeout)
                    ));
                }
            };
        let (done, result) = oneshot::channel();
        let (cancel, cancelled) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("streamsql-query".into())
            .stack_size(PLANNING_STACK_BYTES)
            .spawn(move || {
                let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime.block_on(async move {
                        tokio::select! {
                            outcome = work => Some(outcome),
                            _ = cancelled => None,
                        }
                    }),
                    Err(e) => Some(Err(DataFusionError::External(Box::new(e)))),
                };
                drop(permit);
                if let Some(outcome) = outcome {
                    let _ = done.send(outcome);
                }
            })
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let finished = tokio::select! {
            finished = tokio::time::timeout_at(deadline, result) => finished,
            _ = stopping.wait_for(|stopping| *stopping) => {
                drop(cancel);
                return Err(DataFusionError::Execution("the query was cancelled: the server is stopping".into()));
            }
        };
        match finished {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => {
                Err(DataFusionError::Execution("the query failed unexpectedly (a panic in the engine)".into()))
            }
            Err(_) => {
                drop(cancel);
                Err(DataFusionError::External(Box::new(TimedOut(timeout))))
            }
        }
    }
}

/// A query cancelled at the query timeout.
#[derive(Debug)]
pub struct TimedOut(pub Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the query ran longer than the query timeout ({}, --query-timeout) and was cancelled", humane(self.0))
    }
}

impl std::error::Error for TimedOut {}

fn humane(duration: Duration) -> String {
    if duration.subsec_millis() == 0 { format!("{} s", duration.as_secs()) } else { format!("{duration:?}") }
}

/// One query's pool: its own limit, drawn from the pool all queries share.
#[derive(Debug)]
struct QueryPool {
    limit: usize,
    total_limit: usize,
    used: AtomicUsize,
    total: Arc<GreedyMemoryPool>,
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query memory ({} of {} bytes used)", self.used.load(Ordering::Relaxed), self.limit)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "streamsql-query"
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.total.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.total.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|new| *new <= self.limit)
            })
            .map_err(|_| {
                resources_datafusion_err!(
                    "the query needs more than the per-query memory limit ({} MiB, --query-memory-limit); \
                     add a LIMIT, filter or aggregate",
                    self.limit >> 20
                )
            })?;
        if self.total.try_grow(reservation, additional).is_err() {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(resources_datafusion_err!(
                "the queries running now hold all the memory allowed for queries ({} MiB); try again later",
                self.total_limit >> 20
            ));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}
