//! Writing batches to a JSON lines or CSV file, replacing the file only when the pipeline ends.
//!
//! ```text
//!  create ─▶ .out.jsonl.part-<pid>-<n> next to out.jsonl   (out.jsonl untouched)
//!  write  ─▶ rows appended to the part file and flushed    (watch it with `tail -f`)
//!  finish ─▶ fsync, rename the part file over out.jsonl    (one atomic step)
//!  a write or finish fails, or the sink is dropped unfinished
//!         ─▶ part file removed, out.jsonl untouched
//! ```
//!
//! So a rerun keeps the previous output until it has a complete new one. The engine calls
//! `finish` after a cancellation and also after a failure elsewhere in the pipeline (it does not
//! tell sinks why they finish), so a pipeline that fails upstream still replaces the file with
//! the rows written before the failure.
//!
//! A path that exists and is not a regular file (`/dev/stdout`, a named pipe) is written
//! directly: there is no previous output to keep, and rows reach the reader as they are written.
//!
//! A file is written by one sink at a time in a process ([`writer_of`]): two would each rename
//! their own part file over it, and the last to finish would silently win. A second sink for
//! the same file fails to open, and planning refuses it (see `check_external` in `mod.rs`).
//!
//! JSON keys and the CSV header are the columns' names as declared (`emailAddress`), so the
//! output reads back with the same CREATE TABLE.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{AsArray, BooleanArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use streamsql_engine::connector::{Sink, TableDef};
use streamsql_engine::operator::StateSnapshot;
use streamsql_engine::{Result, StreamError};

use super::{FileOptions, absolute};
use crate::format::decode::declared_name;
use crate::format::encode::RecordWriter;

/// The files sinks of this process are writing, with the table writing each.
static WRITING: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());

/// The table whose sink is writing `file` (an absolute path, see [`absolute`]), if any.
pub(super) fn writer_of(file: &Path) -> Option<String> {
    WRITING.lock().unwrap_or_else(|e| e.into_inner()).get(file).cloned()
}

/// A file this process writes; released when dropped.
struct Claim(PathBuf);

impl Claim {
    fn take(file: PathBuf, table: &str) -> Result<Self> {
        let mut writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(writer) = writing.get(&file) {
            return Err(StreamError::Config(one_writer_message(table, &file, writer)));
        }
        writing.insert(file.clone(), table.to_string());
        Ok(Self(file))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        WRITING.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.0);
    }
}

/// Why `table` cannot write `file`, which `writer` is writing.
pub(super) fn one_writer_message(table: &str, file: &Path, writer: &str) -> String {
    format!(
        "table '{table}': '{}' is being written by a running pipeline into table '{writer}'; a file has one \
         writer at a time, so write to another path or stop that pipeline first",
        file.display()
    )
}

pub(super) struct FileSink {
    /// The file the output is for.
    target: PathBuf,
    /// Where rows are written until `finish`: a part file, or `target` itself if it is not a
    /// regular file.
    written: PathBuf,
    /// `None` once finished or discarded.
    writer: Option<RecordWriter<BufWriter<File>>>,
    /// The table's schema with the columns' declared names, when they differ from the SQL names.
    declared: Option<SchemaRef>,
    /// What the writer was made with, to make it again on a restore.
    format: crate::format::Format,
    delimiter: u8,
    schema: SchemaRef,
    /// Held until the sink is dropped, after the rename.
    _claim: Option<Claim>,
    /// Whether a checkpoint refers to the part file: a failure then keeps it for the restart.
    checkpointed: bool,
}

impl FileSink {
    pub(super) fn create(table: &TableDef, options: FileOptions) -> Result<Self> {
        let path = PathBuf::from(&options.path);
        let cannot = |e| StreamError::io(format!("table '{}': cannot write '{}'", table.name, path.display()), e);
        let existing = std::fs::metadata(&path).ok();
        if existing.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(cannot(std::io::Error::other("it is a directory")));
        }
        if existing.as_ref().is_some_and(|m| !m.is_file()) {
            let file = OpenOptions::new().write(true).open(&path).map_err(cannot)?;
            return Ok(Self::new(path.clone(), path, file, table, &options, None));
        }
        // Replace what a symbolic link points to, not the link.
        let target = absolute(&path);
        let claim = Claim::take(target.clone(), &table.name)?;
        let Some(part) = part_path(&target) else {
            return Err(StreamError::Config(format!(
                "table '{}': option 'path' must name a file, got '{}'",
                table.name, options.path
            )));
        };
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StreamError::io(format!("table '{}': cannot create '{}'", table.name, dir.display()), e)
            })?;
        }
        // Never over an existing file: it may be the part file a checkpoint refers to, of a
        // killed run that had the same process id.
        let file =
            OpenOptions::new().write(true).create_new(true).open(&part).map_err(|e| {
                StreamError::io(format!("table '{}': cannot create '{}'", table.name, part.display()), e)
            })?;
        if let Some(existing) = existing {
            // The new output keeps the old one's permissions; failing to is not worth failing the sink.
            let _ = file.set_permissions(existing.permissions());
        }
        Ok(Self::new(target, part, file, table, &options, Some(claim)))
    }

    fn new(
        target: PathBuf,
        written: PathBuf,
        file: File,
        table: &TableDef,
        options: &FileOptions,
        claim: Option<Claim>,
    ) -> Self {
        let declared = table.schema.fields().iter().any(|f| declared_name(f) != f.name()).then(|| {
            let fields: Vec<Field> =
                table.schema.fields().iter().map(|f| f.as_ref().clone().with_name(declared_name(f))).collect();
            Arc::new(Schema::new(fields))
        });
        let schema = declared.clone().unwrap_or_else(|| table.schema.clone());
        let writer = RecordWriter::new(options.format, BufWriter::new(file), schema.clone(), options.delimiter);
        Self {
            target,
            written,
            writer: Some(writer),
            declared,
            format: options.format,
            delimiter: options.delimiter,
            schema,
            _claim: claim,
            checkpointed: false,
        }
    }

    fn is_part_file(&self) -> bool {
        self.written != self.target
    }

    /// Gives up the output: the part file is removed, the target keeps its previous contents.
    fn discard(&mut self) {
        if self.writer.take().is_some() && self.is_part_file() && !self.checkpointed {
            // Best effort: the error that led here is the one to report.
            let _ = std::fs::remove_file(&self.written);
        }
    }

    /// Writes the last rows and puts the output in place.
    fn commit(&self, mut writer: RecordWriter<BufWriter<File>>) -> Result<()> {
        writer.finish().map_err(|e| in_file(e, &self.written))?;
        let out = writer.get_mut();
        let io = |e| StreamError::io(format!("writing '{}'", self.written.display()), e);
        out.flush().map_err(io)?;
        if !self.is_part_file() {
            return Ok(());
        }
        out.get_ref().sync_all().map_err(io)?;
        drop(writer);
        std::fs::rename(&self.written, &self.target).map_err(|e| {
            StreamError::io(format!("renaming '{}' to '{}'", self.written.display(), self.target.display()), e)
        })
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(StreamError::Internal(format!("'{}' written after it was finished", self.target.display())));
        };
        let renamed;
        let batch = match &self.declared {
            Some(schema) => {
                renamed = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())?;
                &renamed
            }
            None => batch,
        };
        // Flushed per batch so the rows can be read while the pipeline runs.
        let written = writer
            .write(batch)
            .and_then(|()| writer.get_mut().flush().map_err(|e| StreamError::io("writing records", e)));
        if let Err(e) = written {
            self.discard();
            return Err(in_file(e, &self.written));
        }
        Ok(())
    }

    /// The pipeline failed: the earlier output stays, the part file goes — unless a
    /// checkpoint refers to it, for the restart to continue.
    fn abort(&mut self) -> Result<()> {
        self.discard();
        Ok(())
    }

    /// At a checkpoint: the part file is flushed and synced, and its name and length kept, so
    /// a restore cuts off whatever was written after.
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(StreamError::Internal(format!(
                "'{}' checkpointed after it was finished",
                self.target.display()
            )));
        };
        let io = |e| StreamError::io(format!("writing '{}'", self.written.display()), e);
        writer.get_mut().flush().map_err(io)?;
        if self.written == self.target {
            // A pipe or a device (at least once): nothing to cut back on restore.
            return Ok(StateSnapshot::default());
        }
        let file = writer.get_mut().get_ref();
        file.sync_data().map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        self.checkpointed = true;
        let header = writer.header_written();
        let schema = Arc::new(Schema::new(vec![
            Field::new("part", DataType::Utf8, false),
            Field::new("length", DataType::Int64, false),
            Field::new("header", DataType::Boolean, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![self.written.to_string_lossy().to_string()])),
                Arc::new(Int64Array::from(vec![length as i64])),
                Arc::new(BooleanArray::from(vec![header])),
            ],
        )?;
        Ok(StateSnapshot::single("file", vec![batch]))
    }

    /// Continues the part file of a checkpoint, cut back to the length it had then.
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        if !self.is_part_file() {
            return Ok(());
        }
        let Some(batch) = state.table("file").first().filter(|b| b.num_rows() == 1) else {
            return Err(StreamError::Config("the checkpoint has no position for this file sink".into()));
        };
        let part = PathBuf::from(batch.column(0).as_string::<i32>().value(0));
        let length = batch.column(1).as_primitive::<Int64Type>().value(0).max(0) as u64;
        let header = batch.column(2).as_boolean().value(0);
        if part == self.written {
            return Err(StreamError::Internal(format!("'{}' was created again on restore", part.display())));
        }
        if !part.exists() && self.target.is_file() {
            // The run stopped gracefully and put its output in place: continue from a copy of
            // that (copied under another name first: a copy cut short must not pass for it).
            let copying = PathBuf::from(format!("{}-copying", part.display()));
            let copied = std::fs::copy(&self.target, &copying).and_then(|_| std::fs::rename(&copying, &part));
            copied.map_err(|e| {
                StreamError::io(format!("copying '{}' to '{}'", self.target.display(), part.display()), e)
            })?;
        }
        let file = OpenOptions::new().write(true).open(&part).map_err(|e| {
            StreamError::io(
                format!(
                    "cannot resume writing '{}': the part file '{}' of the checkpoint",
                    self.target.display(),
                    part.display()
                ),
                e,
            )
        })?;
        let io = |e| StreamError::io(format!("cutting '{}' back to its checkpoint", part.display()), e);
        let found = file.metadata().map_err(io)?.len();
        if found < length {
            return Err(StreamError::Data(format!(
                "cannot resume writing '{}': its part file '{}' has {found} bytes, fewer than the {length} the \
                 checkpoint wrote; start with --from-scratch",
                self.target.display(),
                part.display()
            )));
        }
        file.set_len(length).map_err(io)?;
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(io)?;
        // The part file this run created is not needed.
        self.discard();
        self.written = part;
        self.checkpointed = true;
        let writer = RecordWriter::new(self.format, BufWriter::new(file), self.schema.clone(), self.delimiter);
        self.writer = Some(writer.with_header_written(header));
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let Some(writer) = self.writer.take() else { return Ok(()) };
        let committed = self.commit(writer);
        if committed.is_ok() && self.checkpointed {
            remove_stale_parts(&self.target);
        }
        if committed.is_err() && self.is_part_file() && !self.checkpointed {
            let _ = std::fs::remove_file(&self.written);
        }
        committed
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        self.discard();
    }
}

/// `dir/.name.part-<pid>-<n>-<nanos>` for `dir/name`: hidden, unique per sink in this
/// process, and unlike the part files of earlier processes with the same id.
fn part_path(target: &Path) -> Option<PathBuf> {
    static SINKS: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name()?.to_string_lossy();
    let n = SINKS.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Some(target.with_file_name(format!(".{name}.part-{}-{n}-{nanos}", std::process::id())))
}

/// Removes part files of `target` left by processes that are gone (killed before their first
/// checkpoint, whose restart began a part file of its own). Linux only: elsewhere they stay.
fn remove_stale_parts(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else { return };
    let prefix = format!(".{}.part-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = file.strip_prefix(&prefix).and_then(|rest| rest.split('-').next()) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Names the file in an I/O error of the record writer.
fn in_file(error: StreamError, path: &Path) -> StreamError {
    match error {
        StreamError::Io { context, source } => StreamError::io(format!("{context} to '{}'", path.display()), source),
        other => other,
    }
}
