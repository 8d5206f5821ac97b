//! Reading a Kafka table: this reader's share of the partitions, one batch per partition.
//!
//! Partitions of all the table's topics, sorted by topic and number, are dealt to the readers:
//! partition *i* to reader *i mod n*. Each reader assigns its partitions to one consumer (no
//! group rebalancing: the engine decides who reads what) and keeps a decoder per partition, so
//! every batch it returns holds rows of one partition in offset order, which is what the
//! engine's per-partition watermarks need. A batch leaves when it is full, or when no record
//! came for [`FLUSH_AFTER`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;
use streamsql_engine::connector::{Pulled, Source, SourceContext, TableDef};
use streamsql_engine::metrics::PipelineMetrics;
use streamsql_engine::{Result, StreamError};

use super::options::{ColumnSource, KafkaOptions, RecordFormat, StartupMode};
use super::{METADATA_TIMEOUT, client_config, kafka_error, list_topics, source_topics};
use crate::format::OnError;
use crate::format::csv_fields::{FieldSplitter, Progress};
use crate::format::decode::{FieldValue, JsonColumns, RecordDecoder};

/// How long partly filled batches wait for more records.
const FLUSH_AFTER: Duration = Duration::from_millis(100);

/// How often a broken connection is reported while librdkafka reconnects.
const REPORT_EVERY: Duration = Duration::from_secs(10);

pub(super) struct KafkaSource {
    table: String,
    consumer: BaseConsumer,
    options: KafkaOptions,
    /// The partitions this reader reads, `(topic, partition)`, by local index.
    partitions: Vec<(String, i32)>,
    by_partition: HashMap<(String, i32), usize>,
    decoders: Vec<RecordDecoder>,
    /// Finds value columns in JSON objects, and key columns in JSON keys.
    value_json: JsonColumns,
    key_json: JsonColumns,
    splitter: FieldSplitter,
    /// `'scan.bounded.mode' = 'latest-offset'`: the offset each partition stops before.
    stop_at: Option<Vec<i64>>,
    done: Vec<bool>,
    /// Partitions whose rows are to be returned before polling again.
    ready: VecDeque<usize>,
    batch_size: usize,
    metrics: Arc<PipelineMetrics>,
    last_report: Option<Instant>,
}

impl KafkaSource {
    pub(super) fn open(table: &TableDef, options: KafkaOptions, ctx: &SourceContext) -> Result<Self> {
        let topics = list_topics(&table.name, &options)?;
        let mut all: Vec<(String, i32)> = source_topics(&table.name, &options, &topics)?
            .into_iter()
            .flat_map(|(topic, count)| (0..count as i32).map(move |p| (topic.clone(), p)))
            .collect();
        all.sort();
        let instances = ctx.instances.max(1);
        let partitions: Vec<(String, i32)> =
            all.into_iter().enumerate().filter(|(i, _)| i % instances == ctx.instance).map(|(_, p)| p).collect();

        let mut config = client_config(&options);
        config.set("enable.partition.eof", "false").set("allow.auto.create.topics", "false");
        match &options.group_id {
            // Offsets are committed to the group as records are read.
            Some(_) => config.set("enable.auto.commit", "true").set("enable.auto.offset.store", "true"),
            // librdkafka wants a group id even for assigned partitions; nothing is committed.
            None => config.set("group.id", "streamsql").set("enable.auto.commit", "false"),
        };
        if !options.properties.iter().any(|(k, _)| k == "auto.offset.reset") {
            config.set("auto.offset.reset", "earliest");
        }
        let consumer: BaseConsumer =
            config.create().map_err(|e| kafka_error(&table.name, "cannot create a Kafka consumer", e))?;

        let stop_at = if options.bounded {
            let mut ends = Vec::with_capacity(partitions.len());
            for (topic, partition) in &partitions {
                let (_, high) = consumer
                    .fetch_watermarks(topic, *partition, METADATA_TIMEOUT)
                    .map_err(|e| kafka_error(&table.name, &format!("cannot read the end of {topic}/{partition}"), e))?;
                ends.push(high);
            }
            Some(ends)
        } else {
            None
        };
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &partitions {
            let offset = match options.startup {
                StartupMode::Earliest => Offset::Beginning,
                StartupMode::Latest => Offset::End,
                StartupMode::GroupOffsets if options.group_id.is_some() => Offset::Stored,
                StartupMode::GroupOffsets => Offset::Beginning,
                StartupMode::Timestamp(millis) => Offset::Offset(millis),
            };
            assignment
                .add_partition_offset(topic, *partition, offset)
                .map_err(|e| kafka_error(&table.name, "cannot assign partitions", e))?;
        }
        if let StartupMode::Timestamp(_) = options.startup
            && !partitions.is_empty()
        {
            assignment = consumer.offsets_for_times(assignment, METADATA_TIMEOUT).map_err(|e| {
                kafka_error(&table.name, "cannot find the offsets for 'scan.startup.timestamp-millis'", e)
            })?;
        }
        consumer.assign(&assignment).map_err(|e| kafka_error(&table.name, "cannot assign partitions", e))?;
        let schema = &table.schema;
        let value_schema = schema.project(&options.value_columns)?;
        let key_schema = schema.project(&options.key_columns)?;
        let decoders = partitions.iter().map(|_| RecordDecoder::new(schema.clone())).collect::<Result<Vec<_>>>()?;
        let done = match &stop_at {
            // A partition already at its end (empty) is done before it starts.
            Some(ends) => {
                let mut done = Vec::with_capacity(partitions.len());
                for ((topic, partition), end) in partitions.iter().zip(ends) {
                    let (low, _) = consumer.fetch_watermarks(topic, *partition, METADATA_TIMEOUT).map_err(|e| {
                        kafka_error(&table.name, &format!("cannot read the start of {topic}/{partition}"), e)
                    })?;
                    done.push(*end <= low);
                }
                done
            }
            None => vec![false; partitions.len()],
        };
        tracing::debug!("table '{}': reader {} of {instances} reads {partitions:?}", table.name, ctx.instance);
        Ok(Self {
            table: table.name.clone(),
            consumer,
            by_partition: partitions.iter().cloned().enumerate().map(|(i, p)| (p, i)).collect(),
            partitions,
            decoders,
            value_json: JsonColumns::new(&value_schema),
            key_json: JsonColumns::new(&key_schema),
            splitter: FieldSplitter::new(b','),
            stop_at,
            done,
            ready: VecDeque::new(),
            batch_size: ctx.batch_size.max(1),
            metrics: ctx.metrics.clone(),
            last_report: None,
            options,
        })
    }

    /// Decodes one record into its partition's decoder, or applies the on-error policy.
    fn take(&mut self, local: usize, message: &impl Message) -> Result<()> {
        let outcome = decode(self, local, message);
        if let Err(reason) = outcome {
            let place =
                format!("topic '{}' partition {} offset {}", message.topic(), message.partition(), message.offset());
            match self.options.on_error {
                OnError::Fail => {
                    return Err(StreamError::Data(format!(
                        "table '{}': {place}: {reason} (set 'format.on-error' = 'skip' to skip such records)",
                        self.table
                    )));
                }
                OnError::Skip => {
                    tracing::debug!("table '{}': skipped {place}: {reason}", self.table);
                    PipelineMetrics::add(&self.metrics.bad_records, 1);
                }
            }
        }
        Ok(())
    }

    fn batch_of(&mut self, local: usize) -> Result<Pulled> {
        Ok(Pulled::Rows { partition: local, batch: self.decoders[local].finish()? })
    }

    /// The partition with rows waiting, if any, queued by [`KafkaSource::flush_all`].
    fn next_ready(&mut self) -> Option<usize> {
        while let Some(local) = self.ready.pop_front() {
            if self.decoders[local].rows() > 0 {
                return Some(local);
            }
        }
        None
    }

    fn flush_all(&mut self) {
        self.ready.extend((0..self.decoders.len()).filter(|&i| self.decoders[i].rows() > 0));
    }

    /// A transient error while librdkafka reconnects: reported now and then, not fatal.
    fn report(&mut self, error: &KafkaError) {
        if self.last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            self.last_report = Some(Instant::now());
            tracing::warn!("table '{}': Kafka: {error} (retrying)", self.table);
        }
    }
}

/// The rows of one record: value (and key) decoded by their formats, metadata from the record.
fn decode(source: &mut KafkaSource, local: usize, message: &impl Message) -> std::result::Result<(), String> {
    let Some(payload) = message.payload() else {
        return Err("the record has no value (a tombstone)".into());
    };
    let value = parse(
        source.options.value_format,
        payload,
        &mut source.value_json,
        &source.table,
        &mut source.splitter,
        "value",
    )?;
    let key = match source.options.key_format {
        Some(format) => match message.key() {
            Some(bytes) => {
                Some(parse(format, bytes, &mut source.key_json, &source.table, &mut source.splitter, "key")?)
            }
            None => None,
        },
        None => None,
    };
    let metadata = |name: &str| -> Value {
        match name {
            "partition" => Value::from(message.partition()),
            "offset" => Value::from(message.offset()),
            "topic" => Value::from(message.topic()),
            "timestamp" => message.timestamp().to_millis().map_or(Value::Null, Value::from),
            "timestamp-type" => Value::from(match message.timestamp() {
                Timestamp::NotAvailable => "NoTimestampType",
                Timestamp::CreateTime(_) => "CreateTime",
                Timestamp::LogAppendTime(_) => "LogAppendTime",
            }),
            _ => Value::Null,
        }
    };
    let metadata_values: Vec<Option<Value>> = source
        .options
        .columns
        .iter()
        .map(|c| match c {
            ColumnSource::Metadata(name) => Some(metadata(name)),
            _ => None,
        })
        .collect();
    let columns = &source.options.columns;
    source.decoders[local].push(|i| match &columns[i] {
        ColumnSource::Metadata(_) => metadata_values[i].as_ref().map_or(FieldValue::Missing, FieldValue::Json),
        ColumnSource::Value(n) => value.field(*n),
        ColumnSource::Key(n) => key.as_ref().map_or(FieldValue::Missing, |k| k.field(*n)),
    })
}

/// A record's value or key, parsed.
enum Parsed {
    Json(Vec<Option<Value>>),
    Text(Vec<String>),
}

impl Parsed {
    fn field(&self, n: usize) -> FieldValue<'_> {
        match self {
            Parsed::Json(fields) => {
                fields.get(n).and_then(Option::as_ref).map_or(FieldValue::Missing, FieldValue::Json)
            }
            Parsed::Text(fields) => fields.get(n).map_or(FieldValue::Missing, |t| FieldValue::Text(t)),
        }
    }
}

fn parse(
    format: RecordFormat,
    bytes: &[u8],
    json: &mut JsonColumns,
    table: &str,
    splitter: &mut FieldSplitter,
    what: &str,
) -> std::result::Result<Parsed, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("the {what} is not valid UTF-8 (at byte {})", e.valid_up_to() + 1))?;
    match format {
        RecordFormat::Json => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => {
                let fields = json.fields(&object, table);
                json.count_missing(&fields);
                Ok(Parsed::Json(fields.into_iter().map(|f| f.cloned()).collect()))
            }
            Ok(_) => Err(format!("the {what} is not a JSON object")),
            Err(e) => Err(format!("the {what} is not valid JSON: {e}")),
        },
        RecordFormat::Csv => {
            splitter.start();
            let text = text.strip_suffix('\n').unwrap_or(text);
            let mut progress = Progress::Complete;
            for line in text.split('\n') {
                progress = splitter.feed_line(line.as_bytes()).map_err(|e| format!("the {what}: {e}"))?;
            }
            if progress != Progress::Complete {
                return Err(format!("the {what} ends inside a quoted field"));
            }
            let fields = splitter.fields().map_err(|e| format!("the {what}: {e}"))?;
            Ok(Parsed::Text(fields.iter().map(str::to_string).collect()))
        }
        RecordFormat::Raw => Ok(Parsed::Text(vec![text.to_string()])),
    }
}

impl Source for KafkaSource {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            match self.pull()? {
                Pulled::Rows { batch, .. } => return Ok(Some(batch)),
                Pulled::Nothing => {}
                Pulled::End => return Ok(None),
            }
        }
    }

    fn partitions(&self) -> usize {
        self.partitions.len()
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.options.idle_timeout
    }

    fn pull(&mut self) -> Result<Pulled> {
        if let Some(local) = self.next_ready() {
            return self.batch_of(local);
        }
        let deadline = Instant::now() + FLUSH_AFTER;
        loop {
            if self.stop_at.is_some() && self.done.iter().all(|d| *d) {
                self.flush_all();
                return match self.next_ready() {
                    Some(local) => self.batch_of(local),
                    None => Ok(Pulled::End),
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let message = match self.consumer.poll(left) {
                None => break,
                Some(Err(e)) => {
                    self.report(&e);
                    continue;
                }
                // Owned, so the consumer can be polled again while it is decoded.
                Some(Ok(message)) => message.detach(),
            };
            let Some(&local) = self.by_partition.get(&(message.topic().to_string(), message.partition())) else {
                continue;
            };
            if self.done[local] {
                continue;
            }
            if let Some(stop_at) = &self.stop_at
                && message.offset() + 1 >= stop_at[local]
            {
                self.done[local] = true;
                if message.offset() >= stop_at[local] {
                    continue;
                }
            }
            self.take(local, &message)?;
            if self.decoders[local].rows() >= self.batch_size {
                return self.batch_of(local);
            }
        }
        self.flush_all();
        match self.next_ready() {
            Some(local) => self.batch_of(local),
            None => Ok(Pulled::Nothing),
        }
    }
}
