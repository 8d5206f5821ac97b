//! Decoding one file on several threads, its rows in the file's order.
//!
//! The source's thread reads the file a chunk at a time ([`CHUNK_BYTES`], cut after the last
//! `\n` in it, so no line is split), numbers the chunks and deals them to the decoding threads in
//! turn, at most two per thread ahead of the one being handed on. Each thread reads its chunk's
//! records into batches with the code that reads a whole file ([`Records`], its lines numbered
//! and placed as in the file), and the source hands the batches on in chunk order, with what
//! reading them counted (records, bad records, missing JSON keys) as each batch's turn comes.
//!
//! What only the rest of the file can decide is left to the source's thread, which reads on by
//! itself from there for a batch (the chunks dealt after it are dropped) and then deals chunks
//! again from where it stopped:
//! - a CSV record whose quoted field is still open at the end of its chunk (it may close in
//!   the next one, or make the record bad);
//! - a line of more than [`MAX_CHUNK_BYTES`], which one thread reads keeping only its start.
//!
//! So the rows, their order, the bad records and the positions a checkpoint keeps are those of
//! reading the file on one thread.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use arrow::record_batch::RecordBatch;
use streamsql_engine::{Result, StreamError};

use super::lines::{Place, grew_since_end, read_full};
use super::source::Records;

/// How much of the file a chunk holds, about.
pub(super) const CHUNK_BYTES: usize = 4 << 20;

/// A chunk with no line end in this many bytes hands the rest of the file to the source's thread.
const MAX_CHUNK_BYTES: usize = 64 << 20;

/// Whole lines of the file.
pub(super) struct Chunk {
    pub bytes: Vec<u8>,
    /// Where the first line starts.
    pub at: Place,
    /// Whether the chunk ends where the file does.
    pub last: bool,
}

/// What reading some records counted.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Records read (what a checkpoint's position counts).
    pub records: u64,
    /// Bad records skipped.
    pub skipped: u64,
    /// JSON records lacking a column's key, and how many lacked each.
    pub missing: (u64, Vec<u64>),
}

/// The rows of one chunk.
#[derive(Debug, Default)]
pub(super) struct ChunkRows {
    /// Batches in order, each with what was counted reading its records (since the batch before).
    pub batches: std::collections::VecDeque<(RecordBatch, Counts)>,
    /// What was counted after the last batch.
    pub tail: Counts,
    /// Where a CSV record starts that runs past the chunk's end (reading stopped before it).
    pub crossed: Option<Place>,
    /// The bad record that stopped reading under `'format.on-error' = 'fail'`, or another error.
    pub error: Option<StreamError>,
}

/// Deals the chunks of a file to decoding threads and takes their rows back in order.
pub(super) struct ParallelReader {
    path: String,
    file: File,
    opened_len_bytes: u64,
    chunk_bytes: usize,
    /// Where the next chunk starts.
    next: Place,
    /// Bytes read past the last chunk dealt: the start of a line.
    carry: Vec<u8>,
    /// No more chunks are dealt: the file ended, or the rest is the source thread's.
    stopped: bool,
    /// Where the source's thread reads on, once the chunks before are handed on.
    handoff: Option<Place>,
    senders: Vec<SyncSender<(u64, Chunk)>>,
    threads: Vec<JoinHandle<()>>,
    results: Receiver<(u64, ChunkRows)>,
    /// Chunks dealt; the chunk to hand on next.
    dealt: u64,
    taken: u64,
    /// Rows of chunks after the one to hand on next, as they came.
    arrived: BTreeMap<u64, ChunkRows>,
}

impl ParallelReader {
    /// Starts reading `path` (first opened with `opened_len_bytes` bytes) from `at`, the start of
    /// a record, on a thread per reader of `readers`.
    pub(super) fn start(
        path: &str,
        at: Place,
        opened_len_bytes: u64,
        readers: Vec<Records>,
        batch_size: usize,
        chunk_bytes: usize,
    ) -> Result<Self> {
        use std::io::{Seek, SeekFrom};
        let mut file = File::open(path).map_err(|e| StreamError::io(format!("cannot open '{path}' again"), e))?;
        file.seek(SeekFrom::Start(at.offset))
            .map_err(|e| StreamError::io(format!("reading '{path}' from byte {}", at.offset), e))?;
        let (results_to, results) = channel();
        let mut senders = Vec::with_capacity(readers.len());
        let mut threads = Vec::with_capacity(readers.len());
        for (i, records) in readers.into_iter().enumerate() {
            let (chunks_to, chunks) = sync_channel(2);
            senders.push(chunks_to);
            threads.push(spawn_decoder(i, records, chunks, results_to.clone(), batch_size)?);
        }
        Ok(Self {
            path: path.to_string(),
            file,
            opened_len_bytes,
            chunk_bytes: chunk_bytes.max(1),
            next: at,
            carry: Vec::new(),
            stopped: false,
            handoff: None,
            senders,
            threads,
            results,
            dealt: 0,
            taken: 0,
            arrived: BTreeMap::new(),
        })
    }

    /// The rows of the next chunk in the file's order; `None` once there are no more, at the end
    /// of the file or at [`ParallelReader::handoff`].
    pub(super) fn next_chunk(&mut self) -> Result<Option<ChunkRows>> {
        self.deal()?;
        if self.taken == self.dealt {
            return Ok(None);
        }
        loop {
            if let Some(rows) = self.arrived.remove(&self.taken) {
                self.taken += 1;
                return Ok(Some(rows));
            }
            let (number, rows) = self.results.recv().map_err(|_| {
                StreamError::Internal(format!("the threads decoding '{}' stopped before its end", self.path))
            })?;
            self.arrived.insert(number, rows);
        }
    }

    /// Leaves the file from `at` on (a record in the chunk handed on last) to the source's thread.
    pub(super) fn hand_off(&mut self, at: Place) {
        self.stopped = true;
        self.handoff = Some(at);
        self.dealt = self.taken;
        self.arrived.clear();
    }

    /// Where the source's thread reads on, and the file's length when first opened, once
    /// [`ParallelReader::next_chunk`] said there are no more chunks; `None` at the end of the file.
    pub(super) fn handoff(&self) -> Option<(Place, u64)> {
        self.handoff.map(|at| (at, self.opened_len_bytes))
    }

    /// Deals chunks until each thread has two or the file ends.
    fn deal(&mut self) -> Result<()> {
        let ahead = 2 * self.senders.len() as u64;
        while !self.stopped && self.dealt - self.taken < ahead {
            let Some(chunk) = self.read_chunk()? else { break };
            let thread = (self.dealt % self.senders.len() as u64) as usize;
            self.senders[thread].send((self.dealt, chunk)).map_err(|_| {
                StreamError::Internal(format!("a thread decoding '{}' stopped before its end", self.path))
            })?;
            self.dealt += 1;
        }
        Ok(())
    }

    /// Reads the next chunk: whole lines, the last one ending the file.
    fn read_chunk(&mut self) -> Result<Option<Chunk>> {
        let mut bytes = std::mem::take(&mut self.carry);
        loop {
            let filled = bytes.len();
            bytes.resize(filled + self.chunk_bytes, 0);
            let read = read_full(&self.path, &mut self.file, &mut bytes[filled..])?;
            bytes.truncate(filled + read);
            if read == 0 {
                let end = Place { offset: self.next.offset + filled as u64, line: self.next.line };
                if grew_since_end(&self.path, &self.file, self.opened_len_bytes, end)? {
                    continue;
                }
                self.stopped = true;
                return Ok((!bytes.is_empty()).then(|| self.cut(bytes, true)));
            }
            if let Some(newline) = memchr::memrchr(b'\n', &bytes[filled..]) {
                let end = filled + newline + 1;
                self.carry = bytes[end..].to_vec();
                bytes.truncate(end);
                return Ok(Some(self.cut(bytes, false)));
            }
            if bytes.len() >= MAX_CHUNK_BYTES {
                // One thread reads so long a line keeping only its start.
                self.stopped = true;
                self.handoff = Some(self.next);
                return Ok(None);
            }
        }
    }

    /// `bytes` as the chunk at `self.next`.
    fn cut(&mut self, bytes: Vec<u8>, last: bool) -> Chunk {
        let at = self.next;
        self.next = Place {
            offset: at.offset + bytes.len() as u64,
            line: at.line + memchr::memchr_iter(b'\n', &bytes).count() as u64,
        };
        Chunk { bytes, at, last }
    }
}

impl Drop for ParallelReader {
    fn drop(&mut self) {
        // Each thread ends after the chunk it is reading.
        self.senders.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A thread reading the chunks that come to it into rows, sent back with their chunk numbers.
fn spawn_decoder(
    i: usize,
    mut records: Records,
    chunks: Receiver<(u64, Chunk)>,
    results: Sender<(u64, ChunkRows)>,
    batch_size: usize,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("file-decode-{i}"))
        .spawn(move || {
            while let Ok((number, chunk)) = chunks.recv() {
                let rows =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| records.read_chunk(chunk, batch_size)))
                        .unwrap_or_else(|_| ChunkRows {
                            error: Some(StreamError::Internal("decoding a chunk of the file panicked".into())),
                            ..ChunkRows::default()
                        });
                if results.send((number, rows)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| StreamError::io("cannot start a thread to decode the file".to_string(), e))
}
