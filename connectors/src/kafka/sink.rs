//! Writing a Kafka table: one record per row.
//!
//! At least once (the default): librdkafka retries a record while the broker is unreachable
//! (for `'properties.message.timeout.ms'`, 5 minutes unless set), with idempotence on, so a
//! broker that goes away and comes back loses nothing and reorders nothing; a record it finally
//! cannot deliver fails the pipeline with the reason, and [`Sink::finish`] waits until every
//! record is acknowledged. With `'none'` nothing is waited for, and failures are only counted
//! in the log.
//!
//! Exactly once (`'sink.delivery-guarantee' = 'exactly-once'`, with checkpoints): records are
//! held back, encoded, until the checkpoint after them completes, then written and committed in
//! one Kafka transaction, so a `read_committed` reader sees each result once whatever crashed
//! when. A snapshot holds the records not yet committed, each group numbered; the transaction
//! that writes a group also commits the group's number as the offset of consumer group
//! `<prefix>-0` (the transactional id) on partition 0 of the topic — atomically with the
//! records. After a crash, opening the sink fences the killed producer (its open transaction is
//! aborted), reads that number, and commits the restored groups above it: a group whose
//! transaction had committed before the crash is not written again.
//!
//! ```text
//!  write ─▶ pending ── snapshot (barrier e) ─▶ held (numbered n, in checkpoint e)
//!                        checkpoint e complete ─▶ begin; send held; offset n ─▶ group; commit
//!  restart from e: init_transactions (fences, aborts) ─▶ committed n' ─▶ commit held above n'
//! ```
//!
//! Updating results: `kafka` writes each change as a row with its `op` column (as the file sink
//! does); `upsert-kafka` keys each record by the PRIMARY KEY, writes `+I`/`+U` as the row and
//! `-D` as a tombstone (no value), and leaves `-U` out, as Flink does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, BinaryBuilder, Int32Builder, Int64Builder, UInt64Array};
use arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimestampMillisecondType, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use streamsql_engine::connector::{Sink, TableDef, split_changes};
use streamsql_engine::operator::{Epoch, StateSnapshot};
use streamsql_engine::operators::aggregate::ChangeOp;
use streamsql_engine::{Result, StreamError};

use super::options::{KafkaOptions, Partitioner, RecordFormat};
use super::{client_config, kafka_error, list_topics};
use crate::format::encode::RecordWriter;
use crate::format::{Format, RowFormatter};

/// How long [`Sink::finish`] waits for outstanding records beyond librdkafka's own timeout.
const FLUSH_MARGIN: Duration = Duration::from_secs(30);

/// How long a transaction call (init, offsets, commit, abort) may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Attempts at committing held records when the broker says to abort and start again.
const TRANSACTION_ATTEMPTS: usize = 3;

/// Collects delivery failures reported by librdkafka's callbacks.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<(u64, Option<String>)>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result
            && let Ok(mut failed) = self.failed.lock()
        {
            failed.0 += 1;
            failed.1.get_or_insert_with(|| error.to_string());
        }
    }
}

pub(super) struct KafkaSink {
    table: String,
    topic: String,
    producer: BaseProducer<Deliveries>,
    options: KafkaOptions,
    /// The table's columns (an upsert sink's batches carry `_op` after them).
    columns: usize,
    upsert: bool,
    partitions: i32,
    next_partition: i32,
    /// How long librdkafka keeps retrying a record.
    message_timeout: Option<Duration>,
    /// Exactly once: what is held back for transactions.
    transactions: Option<Transactions>,
    /// Transactions written again after an abort, for the metrics.
    retries: Arc<std::sync::atomic::AtomicU64>,
}

/// The exactly-once sink's records between their write and their transaction.
struct Transactions {
    /// `<prefix>-0`: the transactional id, and the consumer group whose offset on partition 0
    /// of the topic is the number of the last group of records committed.
    id: String,
    group: ConsumerGroupMetadata,
    /// Written since the last snapshot.
    pending: Vec<RecordBatch>,
    /// Covered by a snapshot, in number order, each waiting for its checkpoint to complete.
    held: Vec<(u64, Vec<RecordBatch>)>,
    /// The number of the next group sealed.
    next: u64,
    /// The number of the last group committed (read from the broker when the sink opened).
    committed: u64,
}

impl Transactions {
    /// Numbers what was written since the last snapshot, to be committed with the checkpoint.
    fn seal(&mut self) {
        if !self.pending.is_empty() {
            self.held.push((self.next, std::mem::take(&mut self.pending)));
            self.next += 1;
        }
    }

    /// The held records (with their group number) and the next number.
    fn state(&self) -> Result<StateSnapshot> {
        let schema = held_schema();
        let mut held = Vec::new();
        for (number, batches) in &self.held {
            for batch in batches {
                let mut columns = batch.columns().to_vec();
                columns.push(Arc::new(UInt64Array::from(vec![*number; batch.num_rows()])));
                held.push(RecordBatch::try_new(schema.clone(), columns)?);
            }
        }
        let next = Arc::new(Schema::new(vec![Field::new("next", DataType::UInt64, false)]));
        let next = RecordBatch::try_new(next, vec![Arc::new(UInt64Array::from(vec![self.next]))])?;
        Ok(StateSnapshot { tables: vec![("held".to_string(), held), ("next".to_string(), vec![next])], rescaled: None })
    }

    /// Takes back a [`Transactions::state`]: the groups not committed yet, numbering on after
    /// both the snapshot's and the broker's last number.
    fn restore(&mut self, state: &StateSnapshot) -> Result<()> {
        if state.tables.is_empty() {
            // A checkpoint of the sink before it wrote exactly once: nothing held.
            return Ok(());
        }
        let corrupt = |what: &str| StreamError::Internal(format!("the Kafka sink's checkpoint state {what}"));
        let next = state
            .table("next")
            .first()
            .and_then(|b| b.column(0).as_primitive_opt::<UInt64Type>())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| corrupt("has no 'next'"))?
            .value(0);
        self.held.clear();
        // No file is written for an empty table: nothing held.
        for batch in state.table("held") {
            if batch.num_columns() != RECORD_COLUMNS + 1 {
                return Err(corrupt("has a 'held' table of another shape"));
            }
            let numbers = batch
                .column(RECORD_COLUMNS)
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| corrupt("has no group numbers"))?;
            let records = RecordBatch::try_new(records_schema(), batch.columns()[..RECORD_COLUMNS].to_vec())?;
            // A batch was written under one number.
            let Some(number) = numbers.iter().flatten().next() else { continue };
            if number <= self.committed {
                continue;
            }
            match self.held.last_mut() {
                Some((last, batches)) if *last == number => batches.push(records),
                _ => self.held.push((number, vec![records])),
            }
        }
        self.pending.clear();
        self.next = next.max(self.committed + 1);
        Ok(())
    }
}

/// Columns of held records: key, value (null: a tombstone), timestamp, partition.
const RECORD_COLUMNS: usize = 4;

fn records_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("timestamp", DataType::Int64, true),
        Field::new("partition", DataType::Int32, true),
    ]))
}

fn held_schema() -> SchemaRef {
    let mut fields: Vec<Field> = records_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("number", DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// Encoded records of one batch, built while they are held back.
struct HeldRecords {
    keys: BinaryBuilder,
    values: BinaryBuilder,
    timestamps: Int64Builder,
    partitions: Int32Builder,
}

impl HeldRecords {
    fn new(rows: usize) -> Self {
        Self {
            keys: BinaryBuilder::with_capacity(rows, 0),
            values: BinaryBuilder::with_capacity(rows, 0),
            timestamps: Int64Builder::with_capacity(rows),
            partitions: Int32Builder::with_capacity(rows),
        }
    }

    fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: Option<i64>, partition: Option<i32>) {
        self.keys.append_option(key);
        self.values.append_option(value);
        self.timestamps.append_option(timestamp);
        self.partitions.append_option(partition);
    }

    fn finish(mut self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            records_schema(),
            vec![
                Arc::new(self.keys.finish()),
                Arc::new(self.values.finish()),
                Arc::new(self.timestamps.finish()),
                Arc::new(self.partitions.finish()),
            ],
        )?)
    }
}

/// Why a transaction did not commit.
enum TransactionFailure {
    /// The broker asks for an abort, after which the records may be sent again.
    Abortable(KafkaError),
    Fatal(KafkaError),
    /// A record could not be sent.
    Send(StreamError),
}

impl From<KafkaError> for TransactionFailure {
    fn from(e: KafkaError) -> Self {
        match &e {
            KafkaError::Transaction(txn) if txn.txn_requires_abort() => TransactionFailure::Abortable(e),
            _ => TransactionFailure::Fatal(e),
        }
    }
}

impl KafkaSink {
    pub(super) fn open(table: &TableDef, options: KafkaOptions, upsert: bool) -> Result<Self> {
        let topic = options.topics[0].clone();
        let partitions = list_topics(&table.name, &options)?
            .into_iter()
            .find(|(t, _)| *t == topic)
            .map_or(1, |(_, count)| count.max(1) as i32);
        let mut config = client_config(&options);
        // A table read and written shares its options; the group is the reader's.
        config.remove("group.id");
        let transactional_id = options.transactional_id_prefix.as_ref().map(|prefix| format!("{prefix}-0"));
        if let Some(id) = &transactional_id {
            config.set("transactional.id", id);
        }
        if options.guarantee.waits() {
            if !options.properties.iter().any(|(k, _)| k == "enable.idempotence") {
                config.set("enable.idempotence", "true");
            }
        } else if !options.properties.iter().any(|(k, _)| k == "acks") {
            config.set("acks", "0");
        }
        // librdkafka gives up on a record after this (0: never); `finish` waits as long.
        let message_timeout = ["message.timeout.ms", "delivery.timeout.ms"]
            .iter()
            .find_map(|key| config.get(key).and_then(|ms| ms.parse::<u64>().ok()))
            .map_or(Some(Duration::from_secs(300)), |ms| (ms > 0).then(|| Duration::from_millis(ms)));
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| kafka_error(&table.name, "cannot create a Kafka producer", e))?;
        let transactions = match transactional_id {
            Some(id) => Some(open_transactions(&table.name, &options, &producer, &topic, id)?),
            None => None,
        };
        Ok(Self {
            table: table.name.clone(),
            topic,
            producer,
            columns: table.schema.fields().len(),
            options,
            upsert,
            partitions,
            next_partition: 0,
            message_timeout,
            transactions,
            retries: Arc::default(),
        })
    }

    /// Fails the pipeline if a record could not be delivered (at least once).
    fn check_deliveries(&self) -> Result<()> {
        let (count, first) = match self.producer.context().failed.lock() {
            Ok(failed) => (failed.0, failed.1.clone()),
            Err(_) => return Err(StreamError::Internal("the delivery report lock was poisoned".into())),
        };
        if count == 0 {
            return Ok(());
        }
        let reason = first.unwrap_or_default();
        if self.options.guarantee.waits() {
            return Err(StreamError::Remote(format!(
                "table '{}': {count} record(s) could not be written to topic '{}': {reason}",
                self.table, self.topic
            )));
        }
        tracing::warn!("table '{}': {count} record(s) were not delivered ('none' guarantee): {reason}", self.table);
        Ok(())
    }

    fn partition(&mut self) -> Option<i32> {
        match self.options.partitioner {
            Partitioner::Default => None,
            Partitioner::Fixed => Some(0),
            Partitioner::RoundRobin => {
                let p = self.next_partition;
                self.next_partition = (p + 1) % self.partitions;
                Some(p)
            }
        }
    }

    /// Sends one record, waiting while librdkafka's queue is full.
    fn send(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: Option<i64>,
        partition: Option<i32>,
    ) -> Result<()> {
        loop {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(value) = value {
                record = record.payload(value);
            }
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            if let Some(timestamp) = timestamp {
                record = record.timestamp(timestamp);
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Backpressure: serve delivery reports until there is room.
                    self.producer.poll(Duration::from_millis(100));
                }
                Err((e, _)) => {
                    return Err(kafka_error(&self.table, &format!("cannot write to topic '{}'", self.topic), e));
                }
            }
        }
    }
}

/// Each row of `batch` encoded in `format`, one byte string per row.
fn encode_rows(format: RecordFormat, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    match format {
        RecordFormat::Raw => {
            let rows = RowFormatter::new(batch, "")?;
            Ok((0..batch.num_rows()).map(|row| rows.value(0, row).into_bytes()).collect())
        }
        RecordFormat::Json => {
            // JSON lines escape every line break inside a value: the batch is written once and
            // split at its line ends.
            let mut writer = RecordWriter::new(Format::Json, Vec::new(), batch.schema(), b',');
            writer.write(batch)?;
            let text = std::mem::take(writer.get_mut());
            Ok(text.split(|b| *b == b'\n').take(batch.num_rows()).map(<[u8]>::to_vec).collect())
        }
        RecordFormat::Csv => {
            let mut out = Vec::with_capacity(batch.num_rows());
            // One row at a time: a CSV field may hold a line break, so lines cannot be split.
            for row in 0..batch.num_rows() {
                let mut writer = RecordWriter::new(Format::Csv, Vec::new(), batch.schema(), b',').without_header();
                writer.write(&batch.slice(row, 1))?;
                let mut bytes = std::mem::take(writer.get_mut());
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                }
                out.push(bytes);
            }
            Ok(out)
        }
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let (rows, ops) = if self.upsert { split_changes(batch, self.columns)? } else { (batch.clone(), None) };
        let values = encode_rows(self.options.value_format, &rows.project(&self.options.value_columns)?)?;
        let keys = match self.options.key_format {
            Some(format) => Some(encode_rows(format, &rows.project(&self.options.key_columns)?)?),
            None => None,
        };
        let timestamps =
            self.options.timestamp_column.map(|c| rows.column(c).as_primitive::<TimestampMillisecondType>().clone());
        // Exactly once: held back until the checkpoint after them completes.
        let mut held = self.transactions.is_some().then(|| HeldRecords::new(rows.num_rows()));
        for row in 0..rows.num_rows() {
            let op = ops.as_ref().map(|ops| ChangeOp::from_i8(ops.value(row))).transpose()?;
            let value = match op {
                Some(ChangeOp::UpdateBefore) => continue,
                Some(ChangeOp::Delete) => None,
                _ => Some(values[row].as_slice()),
            };
            let key = keys.as_ref().map(|k| k[row].as_slice());
            let timestamp = timestamps.as_ref().filter(|t| t.is_valid(row)).map(|t| t.value(row));
            let partition = self.partition();
            match held.as_mut() {
                Some(held) => held.push(key, value, timestamp, partition),
                None => self.send(key, value, timestamp, partition)?,
            }
        }
        if let (Some(held), Some(transactions)) = (held, self.transactions.as_mut()) {
            let records = held.finish()?;
            if records.num_rows() > 0 {
                transactions.pending.push(records);
            }
            return Ok(());
        }
        self.producer.poll(Duration::ZERO);
        self.check_deliveries()
    }

    /// At a checkpoint: every record written so far is acknowledged (at least once), or
    /// numbered and kept in the checkpoint until it completes (exactly once).
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        if let Some(transactions) = self.transactions.as_mut() {
            transactions.seal();
            return transactions.state();
        }
        self.flush()?;
        Ok(StateSnapshot::default())
    }

    /// Exactly once: the groups the restored checkpoint held that the broker has not committed
    /// (the crash came between the checkpoint and its transaction) are committed now.
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        let Some(transactions) = self.transactions.as_mut() else { return Ok(()) };
        transactions.restore(&state)?;
        self.commit()
    }

    fn checkpoint_complete(&mut self, _epoch: Epoch) -> Result<()> {
        self.commit()
    }

    /// Exactly once: everything written is committed (the pipeline's input ended).
    fn finish(&mut self) -> Result<()> {
        if let Some(transactions) = self.transactions.as_mut() {
            transactions.seal();
            return self.commit();
        }
        self.flush()
    }

    /// Exactly once: only what complete checkpoints cover is committed; a restart from the
    /// last one writes the rest.
    fn cancel(&mut self) -> Result<()> {
        if self.transactions.is_some() {
            return Ok(());
        }
        self.flush()
    }

    fn abort(&mut self) -> Result<()> {
        self.cancel()
    }

    fn retries(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        Some(self.retries.clone())
    }
}

impl KafkaSink {
    /// Commits the held records in one transaction, with the number of the last group.
    fn commit(&mut self) -> Result<()> {
        let Some(mut transactions) = self.transactions.take() else { return Ok(()) };
        let result = self.commit_held(&mut transactions);
        self.transactions = Some(transactions);
        result
    }

    fn commit_held(&self, transactions: &mut Transactions) -> Result<()> {
        let Some(&(last, _)) = transactions.held.last() else { return Ok(()) };
        let what = format!("cannot commit transaction '{}' to topic '{}'", transactions.id, self.topic);
        let mut attempt = 1;
        loop {
            match self.transaction(&transactions.held, last, &transactions.group) {
                Ok(()) => break,
                Err(TransactionFailure::Abortable(e)) if attempt < TRANSACTION_ATTEMPTS => {
                    tracing::warn!("table '{}': transaction aborted, writing it again: {e}", self.table);
                    self.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.producer
                        .abort_transaction(TRANSACTION_TIMEOUT)
                        .map_err(|e| kafka_error(&self.table, &what, e))?;
                    attempt += 1;
                }
                // What is held stays for the next attempt; a restart commits it from the checkpoint.
                Err(TransactionFailure::Abortable(e) | TransactionFailure::Fatal(e)) => {
                    return Err(kafka_error(&self.table, &what, e));
                }
                Err(TransactionFailure::Send(e)) => {
                    let _ = self.producer.abort_transaction(TRANSACTION_TIMEOUT);
                    return Err(e);
                }
            }
        }
        transactions.held.clear();
        transactions.committed = last;
        Ok(())
    }

    /// One transaction: the held records, then group number `last` as the consumer group's
    /// offset, committed together.
    fn transaction(
        &self,
        held: &[(u64, Vec<RecordBatch>)],
        last: u64,
        group: &ConsumerGroupMetadata,
    ) -> std::result::Result<(), TransactionFailure> {
        if let Ok(mut failed) = self.producer.context().failed.lock() {
            *failed = (0, None);
        }
        self.producer.begin_transaction()?;
        for (_, batches) in held {
            for batch in batches {
                let keys = batch.column(0).as_binary::<i32>();
                let values = batch.column(1).as_binary::<i32>();
                let timestamps = batch.column(2).as_primitive::<Int64Type>();
                let partitions = batch.column(3).as_primitive::<Int32Type>();
                for row in 0..batch.num_rows() {
                    let key = keys.is_valid(row).then(|| keys.value(row));
                    let value = values.is_valid(row).then(|| values.value(row));
                    let timestamp = timestamps.is_valid(row).then(|| timestamps.value(row));
                    let partition = partitions.is_valid(row).then(|| partitions.value(row));
                    self.send(key, value, timestamp, partition).map_err(TransactionFailure::Send)?;
                }
            }
        }
        let mut marker = TopicPartitionList::new();
        marker.add_partition_offset(&self.topic, 0, Offset::Offset(last as i64))?;
        self.producer.send_offsets_to_transaction(&marker, group, TRANSACTION_TIMEOUT)?;
        let deadline = Instant::now() + TRANSACTION_TIMEOUT;
        loop {
            match self.producer.commit_transaction(TRANSACTION_TIMEOUT) {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(txn)) if txn.is_retriable() && Instant::now() < deadline => {
                    tracing::info!("table '{}': committing again: {}", self.table, txn.string());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Every record written so far is acknowledged (at least once), or given up on ('none').
    fn flush(&mut self) -> Result<()> {
        if self.options.guarantee.waits() {
            // Until every record is acknowledged or given up on (a delivery failure, reported
            // below): librdkafka retries each for the message timeout.
            let deadline = self.message_timeout.map(|t| Instant::now() + t + FLUSH_MARGIN);
            while let Err(e) = self.producer.flush(Duration::from_secs(10)) {
                if self.producer.in_flight_count() == 0 {
                    break;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let what = format!("cannot flush the records for topic '{}'", self.topic);
                    return Err(kafka_error(&self.table, &what, e));
                }
                tracing::info!(
                    "table '{}': waiting for {} record(s) to reach topic '{}'",
                    self.table,
                    self.producer.in_flight_count(),
                    self.topic
                );
            }
        } else {
            let _ = self.producer.flush(Duration::from_secs(5));
        }
        self.check_deliveries()
    }
}

/// Readies `producer` for transactions under `id`: fences an earlier producer with the same id
/// (a killed run) and aborts its open transaction, then reads the number of the last group of
/// records committed under it.
fn open_transactions(
    table: &str,
    options: &KafkaOptions,
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    id: String,
) -> Result<Transactions> {
    producer.init_transactions(TRANSACTION_TIMEOUT).map_err(|e| {
        kafka_error(table, &format!("cannot start transactions as '{id}' (does the broker allow transactions?)"), e)
    })?;
    let consumer: BaseConsumer = client_config(options)
        .set("group.id", &id)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| kafka_error(table, "cannot create a Kafka client", e))?;
    let group = consumer
        .group_metadata()
        .ok_or_else(|| StreamError::Remote(format!("table '{table}': no consumer group metadata for '{id}'")))?;
    let mut marker = TopicPartitionList::new();
    marker
        .add_partition_offset(topic, 0, Offset::Invalid)
        .map_err(|e| kafka_error(table, "cannot name the commit marker", e))?;
    let committed = consumer
        .committed_offsets(marker, TRANSACTION_TIMEOUT)
        .map_err(|e| kafka_error(table, &format!("cannot read what '{id}' committed last"), e))?;
    let committed = match committed.elements().first().map(|e| e.offset()) {
        Some(Offset::Offset(n)) if n > 0 => n as u64,
        _ => 0,
    };
    Ok(Transactions { id, group, pending: Vec::new(), held: Vec::new(), next: committed + 1, committed })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn rows_encode_one_record_each() -> Result<()> {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a,\"b\"\nc"), None])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2)])),
            ],
        )?;
        let json = encode_rows(RecordFormat::Json, &batch)?;
        assert_eq!(json, [br#"{"k":"a,\"b\"\nc","n":1}"#.to_vec(), br#"{"k":null,"n":2}"#.to_vec()]);
        let csv = encode_rows(RecordFormat::Csv, &batch)?;
        assert_eq!(csv, [b"\"a,\"\"b\"\"\nc\",1".to_vec(), b",2".to_vec()]);
        Ok(())
    }

    fn transactions(committed: u64) -> Transactions {
        let consumer: BaseConsumer =
            rdkafka::ClientConfig::new().set("group.id", "t-0").create().expect("an offline consumer");
        let group = consumer.group_metadata().expect("group metadata");
        Transactions { id: "t-0".into(), group, pending: Vec::new(), held: Vec::new(), next: committed + 1, committed }
    }

    fn records(values: &[&str]) -> RecordBatch {
        let mut held = HeldRecords::new(values.len());
        for (i, value) in values.iter().enumerate() {
            held.push(None, Some(value.as_bytes()), Some(i as i64), None);
        }
        held.finish().expect("records")
    }

    fn values(held: &[(u64, Vec<RecordBatch>)]) -> Vec<(u64, Vec<String>)> {
        held.iter()
            .map(|(n, batches)| {
                let values = batches
                    .iter()
                    .flat_map(|b| {
                        let column = b.column(1).as_binary::<i32>().clone();
                        (0..b.num_rows()).map(move |r| String::from_utf8_lossy(column.value(r)).into_owned())
                    })
                    .collect();
                (*n, values)
            })
            .collect()
    }

    /// A restore keeps the groups the broker has not committed, and numbers on after both.
    #[test]
    fn held_records_survive_a_restore_unless_the_broker_committed_them() -> Result<()> {
        let mut writer = transactions(4);
        writer.pending.push(records(&["a", "b"]));
        writer.seal();
        writer.seal(); // nothing new: no empty group
        writer.pending.push(records(&["c"]));
        writer.pending.push(records(&["d"]));
        writer.seal();
        writer.pending.push(records(&["not in the snapshot"]));
        let state = writer.state()?;
        assert_eq!(values(&writer.held), [(5, vec!["a".into(), "b".into()]), (6, vec!["c".into(), "d".into()])]);

        // The crash came before either transaction.
        let mut restored = transactions(4);
        restored.restore(&state)?;
        assert_eq!(values(&restored.held), values(&writer.held));
        assert!(restored.pending.is_empty());
        assert_eq!(restored.next, 7);

        // Group 5 was committed before the crash: only 6 is written again.
        let mut restored = transactions(5);
        restored.restore(&state)?;
        assert_eq!(values(&restored.held), [(6, vec!["c".into(), "d".into()])]);

        // The broker is ahead of the checkpoint (an older checkpoint restored): nothing held,
        // and new groups are numbered after the broker's.
        let mut restored = transactions(9);
        restored.restore(&state)?;
        assert!(restored.held.is_empty());
        assert_eq!(restored.next, 10);

        // Nothing held: the checkpoint store writes no file for an empty table.
        let only_next = StateSnapshot {
            tables: state.tables.iter().filter(|(t, _)| t == "next").cloned().collect(),
            rescaled: None,
        };
        let mut restored = transactions(4);
        restored.restore(&only_next)?;
        assert!(restored.held.is_empty());
        assert_eq!(restored.next, 7);

        // A checkpoint of an at-least-once sink holds nothing.
        let mut restored = transactions(2);
        restored.restore(&StateSnapshot::default())?;
        assert!(restored.held.is_empty());
        assert_eq!(restored.next, 3);
        Ok(())
    }
}
