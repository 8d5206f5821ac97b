//! Writing a Kafka table: one record per row.
//!
//! At least once (the default): librdkafka retries a record while the broker is unreachable
//! (for `'properties.message.timeout.ms'`, 5 minutes unless set), with idempotence on, so a
//! broker that goes away and comes back loses nothing and reorders nothing; a record it finally
//! cannot deliver fails the pipeline with the reason, and [`Sink::finish`] waits until every
//! record is acknowledged. With `'none'` nothing is waited for, and failures are only counted
//! in the log.
//!
//! Updating results: `kafka` writes each change as a row with its `op` column (as the file sink
//! does); `upsert-kafka` keys each record by the PRIMARY KEY, writes `+I`/`+U` as the row and
//! `-D` as a tombstone (no value), and leaves `-U` out, as Flink does.

use std::sync::Mutex;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use streamsql_engine::connector::{Sink, TableDef, split_changes};
use streamsql_engine::operator::StateSnapshot;
use streamsql_engine::operators::aggregate::ChangeOp;
use streamsql_engine::{Result, StreamError};

use super::options::{KafkaOptions, Partitioner, RecordFormat};
use super::{client_config, kafka_error, list_topics};
use crate::format::encode::RecordWriter;
use crate::format::{Format, RowFormatter};

/// How long [`Sink::finish`] waits for outstanding records beyond librdkafka's own timeout.
const FLUSH_MARGIN: Duration = Duration::from_secs(30);

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
        if options.at_least_once {
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
        if self.options.at_least_once {
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
    fn send(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: Option<i64>) -> Result<()> {
        let partition = self.partition();
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
        for row in 0..rows.num_rows() {
            let op = ops.as_ref().map(|ops| ChangeOp::from_i8(ops.value(row))).transpose()?;
            let value = match op {
                Some(ChangeOp::UpdateBefore) => continue,
                Some(ChangeOp::Delete) => None,
                _ => Some(values[row].as_slice()),
            };
            let key = keys.as_ref().map(|k| k[row].clone());
            let timestamp = timestamps.as_ref().filter(|t| t.is_valid(row)).map(|t| t.value(row));
            self.send(key.as_deref(), value, timestamp)?;
        }
        self.producer.poll(Duration::ZERO);
        self.check_deliveries()
    }

    /// At a checkpoint: every record written so far is acknowledged (at least once).
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        self.finish()?;
        Ok(StateSnapshot::default())
    }

    fn finish(&mut self) -> Result<()> {
        if self.options.at_least_once {
            // Until every record is acknowledged or given up on (a delivery failure, reported
            // below): librdkafka retries each for the message timeout.
            let deadline = self.message_timeout.map(|t| std::time::Instant::now() + t + FLUSH_MARGIN);
            while let Err(e) = self.producer.flush(Duration::from_secs(10)) {
                if self.producer.in_flight_count() == 0 {
                    break;
                }
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
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
}
