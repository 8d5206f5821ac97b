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

use arrow::array::{Array, AsArray, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;
use streamsql_engine::connector::{Pulled, Source, SourceContext, TableDef};
use streamsql_engine::metrics::PipelineMetrics;
use streamsql_engine::operator::StateSnapshot;
use streamsql_engine::{Result, StreamError};

use super::options::{ColumnSource, KafkaOptions, RecordFormat, StartupMode};
use super::{METADATA_TIMEOUT, client_config, kafka_error, list_topics, source_topics};
use crate::format::OnError;
use crate::format::csv_fields::{FieldSplitter, Progress};
use crate::format::decode::{FieldValue, JsonColumns, RecordDecoder, declared_name};

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
    /// Topic → (partition number, local index), found without allocating per record.
    by_partition: HashMap<String, Vec<(i32, usize)>>,
    /// Declared names of the value and key columns, as JSON keys.
    value_names: Vec<String>,
    key_names: Vec<String>,
    has_metadata: bool,
    decoders: Vec<RecordDecoder>,
    /// Finds value columns in JSON objects, and key columns in JSON keys.
    value_json: JsonColumns,
    key_json: JsonColumns,
    splitter: FieldSplitter,
    /// `'scan.bounded.mode' = 'latest-offset'`: the offset each partition stops before.
    stop_at: Option<Vec<i64>>,
    done: Vec<bool>,
    /// The offset of the last record taken from each partition since offsets were last stored.
    taken: Vec<Option<i64>>,
    /// Per partition, the offset after the last record taken (decoded or skipped as bad).
    decoded_next: Vec<i64>,
    /// Per partition, the offset after the last record in a batch returned: where a restore
    /// from a checkpoint taken now reads on from.
    returned_next: Vec<i64>,
    /// Partitions whose rows are to be returned before polling again.
    ready: VecDeque<usize>,
    batch_size: usize,
    metrics: Arc<PipelineMetrics>,
    last_report: Option<Instant>,
    /// The pipeline checkpoints: offsets are not committed to the group.
    checkpoints: bool,
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
        // End-of-partition events finish a bounded read's partitions (see `reached_end`).
        config
            .set("enable.partition.eof", if options.bounded { "true" } else { "false" })
            .set("allow.auto.create.topics", "false")
            .set("enable.auto.offset.store", "false");
        match &options.group_id {
            // The offsets of records taken are committed to the group every few seconds and
            // when reading ends (see `store_offsets`).
            Some(_) => config.set("enable.auto.commit", "true"),
            // librdkafka wants a group id even for assigned partitions; nothing is committed.
            None => config.set("group.id", "streamsql").set("enable.auto.commit", "false"),
        };
        if !options.properties.iter().any(|(k, _)| k == "auto.offset.reset") {
            config.set("auto.offset.reset", "earliest");
        }
        let consumer: BaseConsumer =
            config.create().map_err(|e| kafka_error(&table.name, "cannot create a Kafka consumer", e))?;

        // Where each partition starts and (bounded) stops, resolved up front, so that a bounded
        // read knows at once which partitions have nothing to read.
        let mut ranges = Vec::with_capacity(partitions.len());
        for (topic, partition) in &partitions {
            let range = consumer
                .fetch_watermarks(topic, *partition, METADATA_TIMEOUT)
                .map_err(|e| kafka_error(&table.name, &format!("cannot read the offsets of {topic}/{partition}"), e))?;
            ranges.push(range);
        }
        let starts = start_offsets(&consumer, &options, &partitions, &ranges)
            .map_err(|e| kafka_error(&table.name, "cannot find where to start reading", e))?;
        let mut assignment = TopicPartitionList::new();
        for ((topic, partition), start) in partitions.iter().zip(&starts) {
            assignment
                .add_partition_offset(topic, *partition, Offset::Offset(*start))
                .map_err(|e| kafka_error(&table.name, "cannot assign partitions", e))?;
        }
        consumer.assign(&assignment).map_err(|e| kafka_error(&table.name, "cannot assign partitions", e))?;
        let stop_at: Option<Vec<i64>> = options.bounded.then(|| ranges.iter().map(|(_, high)| *high).collect());
        // A partition with nothing between its start and its end is done before it starts.
        let done = match &stop_at {
            Some(ends) => starts.iter().zip(ends).map(|(start, end)| start >= end).collect(),
            None => vec![false; partitions.len()],
        };
        let schema = &table.schema;
        let value_schema = schema.project(&options.value_columns)?;
        let key_schema = schema.project(&options.key_columns)?;
        let decoders = partitions.iter().map(|_| RecordDecoder::new(schema.clone())).collect::<Result<Vec<_>>>()?;
        tracing::debug!("table '{}': reader {} of {instances} reads {partitions:?}", table.name, ctx.instance);
        Ok(Self {
            table: table.name.clone(),
            consumer,
            by_partition: partitions.iter().enumerate().fold(HashMap::new(), |mut map, (local, (topic, number))| {
                map.entry(topic.clone()).or_insert_with(Vec::new).push((*number, local));
                map
            }),
            value_names: value_schema.fields().iter().map(|f| declared_name(f).to_string()).collect(),
            key_names: key_schema.fields().iter().map(|f| declared_name(f).to_string()).collect(),
            has_metadata: options.columns.iter().any(|c| matches!(c, ColumnSource::Metadata(_))),
            partitions,
            decoders,
            value_json: JsonColumns::new(&value_schema).with_metrics(ctx.metrics.clone()),
            key_json: JsonColumns::new(&key_schema),
            splitter: FieldSplitter::new(b','),
            stop_at,
            decoded_next: starts.clone(),
            returned_next: starts,
            taken: vec![None; done.len()],
            done,
            ready: VecDeque::new(),
            batch_size: ctx.batch_size.max(1),
            metrics: ctx.metrics.clone(),
            last_report: None,
            checkpoints: ctx.checkpoints,
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
        // Every record taken from the partition is in this batch (or was skipped as bad).
        self.returned_next[local] = self.decoded_next[local];
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

/// The offset each partition starts at under `'scan.startup.mode'`, given its `(low, high)`
/// offsets: earliest, latest, the group's committed offset (where it has none, the earliest, or
/// the latest under `'properties.auto.offset.reset' = 'latest'`), or the first record at or
/// after a timestamp (the end where there is none).
fn start_offsets(
    consumer: &BaseConsumer,
    options: &KafkaOptions,
    partitions: &[(String, i32)],
    ranges: &[(i64, i64)],
) -> std::result::Result<Vec<i64>, KafkaError> {
    let list = |offset: &dyn Fn(usize) -> Offset| -> std::result::Result<TopicPartitionList, KafkaError> {
        let mut list = TopicPartitionList::new();
        for (i, (topic, partition)) in partitions.iter().enumerate() {
            list.add_partition_offset(topic, *partition, offset(i))?;
        }
        Ok(list)
    };
    let found = |list: TopicPartitionList, otherwise: &dyn Fn(usize) -> i64| -> Vec<i64> {
        partitions
            .iter()
            .enumerate()
            .map(|(i, (topic, partition))| {
                let (low, high) = ranges[i];
                match list.find_partition(topic, *partition).map(|e| e.offset()) {
                    Some(Offset::Offset(offset)) => offset.clamp(low, high),
                    _ => otherwise(i),
                }
            })
            .collect()
    };
    let earliest = |i: usize| ranges[i].0;
    let latest = |i: usize| ranges[i].1;
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match options.startup {
        StartupMode::Earliest => (0..partitions.len()).map(earliest).collect(),
        StartupMode::Latest => (0..partitions.len()).map(latest).collect(),
        StartupMode::GroupOffsets => {
            let reset_latest = options
                .properties
                .iter()
                .any(|(k, v)| k == "auto.offset.reset" && matches!(v.as_str(), "latest" | "largest" | "end"));
            let otherwise: &dyn Fn(usize) -> i64 = if reset_latest { &latest } else { &earliest };
            match options.group_id {
                Some(_) => found(consumer.committed_offsets(list(&|_| Offset::Invalid)?, METADATA_TIMEOUT)?, otherwise),
                None => (0..partitions.len()).map(otherwise).collect(),
            }
        }
        StartupMode::Timestamp(millis) => {
            let offsets = consumer.offsets_for_times(list(&|_| Offset::Offset(millis))?, METADATA_TIMEOUT)?;
            found(offsets, &latest)
        }
    })
}

impl KafkaSource {
    fn pull_rows(&mut self) -> Result<Pulled> {
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
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    self.reached_end(partition)?;
                    continue;
                }
                Some(Err(e)) => {
                    self.transient(e)?;
                    continue;
                }
                // Owned, so the consumer can be polled again while it is decoded.
                Some(Ok(message)) => message.detach(),
            };
            let local = self
                .by_partition
                .get(message.topic())
                .and_then(|numbers| numbers.iter().find(|(n, _)| *n == message.partition()).map(|(_, local)| *local));
            let Some(local) = local else { continue };
            if self.done[local] {
                continue;
            }
            if let Some(stop) = self.stop_at.as_ref().map(|stops| stops[local])
                && message.offset() + 1 >= stop
            {
                self.finish_partition(local)?;
                if message.offset() >= stop {
                    continue;
                }
            }
            self.taken[local] = Some(message.offset());
            self.decoded_next[local] = message.offset() + 1;
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

    /// A bounded read is done with a partition: it is no longer fetched.
    fn finish_partition(&mut self, local: usize) -> Result<()> {
        self.done[local] = true;
        let (topic, partition) = &self.partitions[local];
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, *partition);
        self.consumer.pause(&list).map_err(|e| kafka_error(&self.table, "cannot pause a finished partition", e))
    }

    /// The consumer reached the end of partition number `partition` (of some topic). Under
    /// `read_committed` the last offset before the end may be a transaction marker, which is
    /// never delivered, so a bounded read's partition is finished here rather than by its last
    /// record: the one of that number still open whose position reached its stop offset minus
    /// a marker, or the only one of that number.
    fn reached_end(&mut self, partition: i32) -> Result<()> {
        let Some(stop_at) = self.stop_at.clone() else { return Ok(()) };
        let open: Vec<usize> =
            (0..self.partitions.len()).filter(|&i| !self.done[i] && self.partitions[i].1 == partition).collect();
        let positions = self.consumer.position().map_err(|e| kafka_error(&self.table, "cannot read positions", e))?;
        for &local in &open {
            let (topic, number) = &self.partitions[local];
            let position = match positions.find_partition(topic, *number).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => -1,
            };
            if open.len() == 1 || position + 1 >= stop_at[local] {
                self.finish_partition(local)?;
            }
        }
        Ok(())
    }

    /// An error from the consumer: one that cannot pass (authorization, a fatal client error)
    /// fails the pipeline; others are reported now and then while librdkafka retries.
    fn transient(&mut self, error: KafkaError) -> Result<()> {
        use rdkafka::types::RDKafkaErrorCode as Code;
        let fatal = matches!(error, KafkaError::MessageConsumptionFatal(_))
            || matches!(
                error.rdkafka_error_code(),
                Some(
                    Code::Fatal
                        | Code::TopicAuthorizationFailed
                        | Code::GroupAuthorizationFailed
                        | Code::ClusterAuthorizationFailed
                        | Code::SaslAuthenticationFailed
                )
            );
        if fatal {
            return Err(kafka_error(&self.table, "reading from Kafka failed", error));
        }
        self.report(&error);
        Ok(())
    }

    /// Stores the offset after the last record taken of each partition, for the group's
    /// automatic commit (only with `'properties.group.id'`, and not when the pipeline
    /// checkpoints: a restart then reads from the checkpoint's offsets, and group offsets
    /// ahead of them would skip rows after a crash before the first checkpoint).
    fn store_offsets(&mut self) -> Result<()> {
        if self.options.group_id.is_none() || self.checkpoints || self.taken.iter().all(Option::is_none) {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (local, taken) in self.taken.iter_mut().enumerate() {
            if let Some(offset) = taken.take() {
                let (topic, partition) = &self.partitions[local];
                list.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
                    .map_err(|e| kafka_error(&self.table, "cannot store offsets", e))?;
            }
        }
        self.consumer.store_offsets(&list).map_err(|e| kafka_error(&self.table, "cannot store offsets", e))
    }
}

impl Drop for KafkaSource {
    /// Says how many records lacked a declared JSON field (read as NULL), as the file source does.
    fn drop(&mut self) {
        for (json, what) in [(&self.value_json, "values"), (&self.key_json, "keys")] {
            if let Some(summary) = json.missing_summary() {
                tracing::warn!("table '{}' (Kafka record {what}): {summary}", self.table);
            }
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
        ("value", source.options.value_columns.len()),
    )?;
    let key = match source.options.key_format {
        Some(format) => {
            let Some(bytes) = message.key() else {
                return Err("the record has no key, but 'key.fields' are read from it".into());
            };
            let expected = ("key", source.options.key_columns.len());
            Some(parse(format, bytes, &mut source.key_json, &source.table, &mut source.splitter, expected)?)
        }
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
    let metadata_values: Vec<Option<Value>> = match source.has_metadata {
        true => source
            .options
            .columns
            .iter()
            .map(|c| match c {
                ColumnSource::Metadata(name) => Some(metadata(name)),
                _ => None,
            })
            .collect(),
        false => Vec::new(),
    };
    let columns = &source.options.columns;
    let (value_names, key_names) = (&source.value_names, &source.key_names);
    source.decoders[local].push(|i| match &columns[i] {
        ColumnSource::Metadata(_) => {
            metadata_values.get(i).and_then(Option::as_ref).map_or(FieldValue::Missing, FieldValue::Json)
        }
        ColumnSource::Value(n) => value.field(*n, value_names),
        ColumnSource::Key(n) => key.as_ref().map_or(FieldValue::Missing, |k| k.field(*n, key_names)),
    })
}

/// A record's value or key, parsed.
enum Parsed {
    /// A JSON object; columns by their declared names.
    Json(serde_json::Map<String, Value>),
    /// CSV fields or the raw text; columns by position.
    Text(Vec<String>),
}

impl Parsed {
    /// The `n`-th column, of those called `names`.
    fn field<'a>(&'a self, n: usize, names: &[String]) -> FieldValue<'a> {
        match self {
            Parsed::Json(object) => {
                names.get(n).and_then(|name| object.get(name)).map_or(FieldValue::Missing, FieldValue::Json)
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
    (what, columns): (&str, usize),
) -> std::result::Result<Parsed, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("the {what} is not valid UTF-8 (at byte {})", e.valid_up_to() + 1))?;
    match format {
        RecordFormat::Json => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => {
                // Counts the columns the record lacks (and warns about keys in other case).
                let fields = json.fields(&object, table);
                json.count_missing(&fields);
                Ok(Parsed::Json(object))
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
            if fields.len() != columns {
                return Err(format!("the {what} has {} CSV fields, the table reads {columns}", fields.len()));
            }
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

    fn partition_id(&self, local: usize) -> String {
        self.partitions.get(local).map_or_else(|| local.to_string(), |(topic, number)| format!("{topic}/{number}"))
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.options.idle_timeout
    }

    fn pull(&mut self) -> Result<Pulled> {
        let pulled = self.pull_rows();
        // Offsets of the records taken (decoded or counted bad) go to the group's next commit.
        self.store_offsets()?;
        pulled
    }

    /// Per partition: the offset after the last record returned, and a bounded read's stop
    /// offset (fixed at the first start, so a restart stops where the first run would have).
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("topic", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("next", DataType::Int64, false),
            Field::new("stop", DataType::Int64, true),
        ]));
        let stops: Vec<Option<i64>> =
            (0..self.partitions.len()).map(|i| self.stop_at.as_ref().map(|stops| stops[i])).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(self.partitions.iter().map(|(t, _)| t.as_str()))),
                Arc::new(Int32Array::from_iter_values(self.partitions.iter().map(|(_, p)| *p))),
                Arc::new(Int64Array::from(self.returned_next.clone())),
                Arc::new(Int64Array::from(stops)),
            ],
        )?;
        Ok(StateSnapshot::single("offsets", vec![batch]))
    }

    /// Seeks each partition to its checkpointed offset. A partition the checkpoint does not
    /// know was added since (or its topic began to match): it is read from its earliest
    /// offset, as Flink reads partitions it discovers, so none of its records is skipped.
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        let mut stored: HashMap<(String, i32), (i64, Option<i64>)> = HashMap::new();
        for batch in state.table("offsets") {
            let topics = batch.column(0).as_string::<i32>();
            let numbers = batch.column(1).as_primitive::<Int32Type>();
            let next = batch.column(2).as_primitive::<Int64Type>();
            let stops = batch.column(3).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let stop = stops.is_valid(row).then(|| stops.value(row));
                stored.insert((topics.value(row).to_string(), numbers.value(row)), (next.value(row), stop));
            }
        }
        let mut assignment = TopicPartitionList::new();
        for (local, (topic, partition)) in self.partitions.iter().enumerate() {
            if let Some(&(next, stop)) = stored.get(&(topic.clone(), *partition)) {
                self.returned_next[local] = next;
                self.decoded_next[local] = next;
                if let (Some(stops), Some(stop)) = (self.stop_at.as_mut(), stop) {
                    stops[local] = stop;
                }
            } else {
                let (low, _) = self.consumer.fetch_watermarks(topic, *partition, METADATA_TIMEOUT).map_err(|e| {
                    kafka_error(&self.table, &format!("cannot find where new partition {topic}/{partition} begins"), e)
                })?;
                tracing::info!(
                    "table '{}': partition {topic}/{partition} is new since the checkpoint: read from offset {low}",
                    self.table
                );
                self.returned_next[local] = low;
                self.decoded_next[local] = low;
            }
            if let Some(stops) = &self.stop_at {
                self.done[local] = self.returned_next[local] >= stops[local];
            }
            assignment
                .add_partition_offset(topic, *partition, Offset::Offset(self.returned_next[local]))
                .map_err(|e| kafka_error(&self.table, "cannot seek to the checkpoint's offsets", e))?;
        }
        self.consumer
            .assign(&assignment)
            .map_err(|e| kafka_error(&self.table, "cannot seek to the checkpoint's offsets", e))?;
        for local in 0..self.partitions.len() {
            if self.done[local] {
                self.finish_partition(local)?;
            }
        }
        Ok(())
    }
}
