//! `'connector' = 'kafka'` and `'connector' = 'upsert-kafka'`: Apache Kafka topics, with
//! Flink's option names (rdkafka, librdkafka built from source).
//!
//! ```sql
//! CREATE TABLE flows (
//!   ts TIMESTAMP(3), src_ip STRING, bytes BIGINT,
//!   part INT METADATA FROM 'partition' VIRTUAL,
//!   WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
//! ) WITH ('connector' = 'kafka', 'topic' = 'flows', 'properties.bootstrap.servers' = 'localhost:9092',
//!         'scan.startup.mode' = 'earliest-offset', 'format' = 'json');
//! ```
//!
//! Reading (`source.rs`): every partition of the topics is read by one of the table's readers
//! (`parallelism` of them, partition *i* by reader *i mod n*), whatever `'properties.group.id'`
//! says, as in Flink: the group id is only where offsets are committed. Each partition has its
//! own watermark (the engine's partitioned-source contract), so the output does not depend on how
//! partitions interleave. A record is one row: its value (and key, for `'key.fields'`) decoded by
//! the format; a record that cannot be decoded follows `'format.on-error'` and is reported with
//! its topic, partition and offset.
//!
//! Writing (`sink.rs`): one Kafka record per row, at least once by default (librdkafka retries
//! while the broker is away; a record it finally cannot deliver fails the pipeline, and the
//! sink flushes before the pipeline ends). Updating results are written with an `op` field
//! (`kafka`) or as upserts keyed by the PRIMARY KEY with tombstones for deletes (`upsert-kafka`).

mod options;
mod sink;
mod source;

use std::time::Duration;

use arrow::datatypes::{DataType, TimeUnit};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use streamsql_engine::connector::{
    ChangelogMode, Connector, Delivery, MetadataSpec, OptionSpec, Role, Sink, Source, SourceContext, TableDef,
};
use streamsql_engine::{Result, StreamError};

pub use options::{Guarantee, KafkaOptions, RecordFormat};

/// How long plan-time checks wait for the broker.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

const BOTH: &[Role] = &[Role::Source, Role::Sink];
const SOURCE: &[Role] = &[Role::Source];
const SINK: &[Role] = &[Role::Sink];

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "topic",
        required: false,
        roles: BOTH,
        help: "the topic to read (or several, separated by ';') or to write",
    },
    OptionSpec {
        key: "topic-pattern",
        required: false,
        roles: SOURCE,
        help: "a regular expression: read every topic whose whole name matches it (instead of 'topic')",
    },
    OptionSpec {
        key: "properties.bootstrap.servers",
        required: true,
        roles: BOTH,
        help: "the brokers to connect to, 'host:port[,host:port...]'",
    },
    OptionSpec {
        key: "properties.group.id",
        required: false,
        roles: SOURCE,
        help: "the consumer group offsets are committed to (and read from with 'group-offsets'); every partition \
               is read whatever the group",
    },
    OptionSpec { key: "properties.*", required: false, roles: BOTH, help: "passed to the Kafka client (librdkafka)" },
    OptionSpec {
        key: "scan.startup.mode",
        required: false,
        roles: SOURCE,
        help: "'group-offsets' (default; 'earliest-offset' where the group has none), 'earliest-offset', \
               'latest-offset' or 'timestamp'",
    },
    OptionSpec {
        key: "scan.startup.timestamp-millis",
        required: false,
        roles: SOURCE,
        help: "with 'timestamp': start at the first record at or after this time (epoch milliseconds)",
    },
    OptionSpec {
        key: "scan.bounded.mode",
        required: false,
        roles: SOURCE,
        help: "'unbounded' (default) or 'latest-offset': stop at the end each partition had when reading began",
    },
    OptionSpec {
        key: "source.idle-timeout",
        required: false,
        roles: SOURCE,
        help: "a partition without records this long stops holding the watermark back (default: never); its \
               records that then find their window closed are late",
    },
    OptionSpec {
        key: "format",
        required: false,
        roles: BOTH,
        help: "the format of record values: 'json' (default), 'csv' (one line, columns in declared order) or \
               'raw' (one STRING column)",
    },
    OptionSpec { key: "value.format", required: false, roles: BOTH, help: "the same as 'format'" },
    OptionSpec {
        key: "key.format",
        required: false,
        roles: BOTH,
        help: "the format of record keys ('json', 'csv' or 'raw'), for 'key.fields'",
    },
    OptionSpec {
        key: "key.fields",
        required: false,
        roles: BOTH,
        help: "columns read from (and written to) the record key, separated by ';'",
    },
    OptionSpec {
        key: "value.fields-include",
        required: false,
        roles: BOTH,
        help: "'ALL' (default): the value holds every column; 'EXCEPT_KEY': the value leaves out 'key.fields'",
    },
    OptionSpec {
        key: "format.on-error",
        required: false,
        roles: SOURCE,
        help: "'fail' (default) stops at a record that cannot be decoded; 'skip' skips and counts it",
    },
    OptionSpec {
        key: "sink.delivery-guarantee",
        required: false,
        roles: SINK,
        help: "'at-least-once' (default: a record that cannot be delivered fails the pipeline, and the sink \
               flushes before it ends), 'exactly-once' (Kafka transactions committed when a checkpoint \
               completes; needs checkpoints and 'sink.transactional-id-prefix') or 'none'",
    },
    OptionSpec {
        key: "sink.transactional-id-prefix",
        required: false,
        roles: SINK,
        help: "exactly once: the sink's transactional id is '<prefix>-0'; unique per job on the cluster",
    },
    OptionSpec {
        key: "sink.partitioner",
        required: false,
        roles: SINK,
        help: "'default' (by key hash, or spread when there is no key), 'fixed' (all to partition 0) or \
               'round-robin'",
    },
    OptionSpec {
        key: "sink.create-topic",
        required: false,
        roles: SINK,
        help: "'true' creates a missing topic when the pipeline is planned (default 'false': a missing topic is \
               an error)",
    },
    OptionSpec {
        key: "sink.create-topic.partitions",
        required: false,
        roles: SINK,
        help: "partitions of a created topic (default 1)",
    },
    OptionSpec {
        key: "sink.create-topic.replication-factor",
        required: false,
        roles: SINK,
        help: "replication factor of a created topic (default 1)",
    },
];

const TIMESTAMP: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

const METADATA: &[MetadataSpec] = &[
    MetadataSpec {
        key: "timestamp",
        data_type: TIMESTAMP,
        writable: true,
        help: "the record's timestamp (a sink sets it)",
    },
    MetadataSpec { key: "partition", data_type: DataType::Int32, writable: false, help: "the record's partition" },
    MetadataSpec { key: "offset", data_type: DataType::Int64, writable: false, help: "the record's offset" },
    MetadataSpec { key: "topic", data_type: DataType::Utf8, writable: false, help: "the record's topic" },
    MetadataSpec {
        key: "timestamp-type",
        data_type: DataType::Utf8,
        writable: false,
        help: "'CreateTime', 'LogAppendTime' or 'NoTimestampType'",
    },
];

/// `'connector' = 'kafka'`.
pub struct KafkaConnector;

/// `'connector' = 'upsert-kafka'`: a sink of upserts keyed by the PRIMARY KEY.
pub struct UpsertKafkaConnector;

impl Connector for KafkaConnector {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn metadata(&self) -> &'static [MetadataSpec] {
        METADATA
    }

    fn supports(&self, _role: Role) -> bool {
        true
    }

    /// Partitions interleave: a watermark per partition, readers spread over instances.
    fn partitioned(&self, _table: &TableDef) -> bool {
        true
    }

    fn validate(&self, table: &TableDef, role: Role) -> Result<()> {
        KafkaOptions::parse(table, role, false).map(|_| ())
    }

    fn check_external(&self, table: &TableDef, role: Role) -> Result<()> {
        let options = KafkaOptions::parse(table, role, false)?;
        check_topics(table, &options, role)
    }

    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        let options = KafkaOptions::parse(table, Role::Source, false)?;
        Ok(Box::new(source::KafkaSource::open(table, options, ctx)?))
    }

    /// Sources keep their offsets per partition and read again from them. Sinks: transactions
    /// committed with each checkpoint (exactly once), or flushed at each checkpoint (at least
    /// once); `'none'` cannot be checkpointed.
    fn delivery(&self, table: &TableDef, role: Role) -> Delivery {
        match (role, KafkaOptions::parse(table, role, false)) {
            (Role::Source, Ok(_)) => Delivery::ExactlyOnce,
            (Role::Sink, Ok(options)) => match options.guarantee {
                Guarantee::ExactlyOnce => Delivery::Transactional,
                Guarantee::AtLeastOnce => Delivery::AtLeastOnce,
                Guarantee::None => Delivery::Unsupported,
            },
            _ => Delivery::Unsupported,
        }
    }

    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        let options = KafkaOptions::parse(table, Role::Sink, false)?;
        Ok(Box::new(sink::KafkaSink::open(table, options, false)?))
    }
}

impl Connector for UpsertKafkaConnector {
    fn name(&self) -> &'static str {
        "upsert-kafka"
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn metadata(&self) -> &'static [MetadataSpec] {
        &METADATA[..1]
    }

    fn supports(&self, role: Role) -> bool {
        role == Role::Sink
    }

    /// Changes are applied as upserts and tombstones by key.
    fn changelog(&self) -> ChangelogMode {
        ChangelogMode::Native
    }

    /// Upserts by key, flushed at each checkpoint: a replay rewrites the same latest values.
    fn delivery(&self, table: &TableDef, role: Role) -> Delivery {
        match KafkaOptions::parse(table, role, true) {
            Ok(options) if role == Role::Sink && options.guarantee == Guarantee::ExactlyOnce => Delivery::Transactional,
            Ok(options) if role == Role::Sink && options.guarantee.waits() => Delivery::Idempotent,
            _ => Delivery::Unsupported,
        }
    }

    fn validate(&self, table: &TableDef, role: Role) -> Result<()> {
        KafkaOptions::parse(table, role, true).map(|_| ())
    }

    fn check_external(&self, table: &TableDef, role: Role) -> Result<()> {
        let options = KafkaOptions::parse(table, role, true)?;
        check_topics(table, &options, role)
    }

    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        let options = KafkaOptions::parse(table, Role::Sink, true)?;
        Ok(Box::new(sink::KafkaSink::open(table, options, true)?))
    }
}

/// A client configuration with every `'properties.*'` option.
fn client_config(options: &KafkaOptions) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in &options.properties {
        config.set(key, value);
    }
    config
}

fn kafka_error(table: &str, what: &str, e: impl std::fmt::Display) -> StreamError {
    StreamError::Remote(format!("table '{table}': {what}: {e}"))
}

/// Every topic on the brokers with its partition count (never creates one, as asking about a
/// single topic by name may).
fn list_topics(table: &str, options: &KafkaOptions) -> Result<Vec<(String, usize)>> {
    let consumer: BaseConsumer = client_config(options)
        .set("allow.auto.create.topics", "false")
        .create()
        .map_err(|e| kafka_error(table, "cannot create a Kafka client", e))?;
    let metadata = consumer.fetch_metadata(None, METADATA_TIMEOUT).map_err(|e| {
        kafka_error(table, &format!("cannot reach Kafka at '{}' (is it running?)", options.bootstrap_servers()), e)
    })?;
    Ok(metadata.topics().iter().map(|t| (t.name().to_string(), t.partitions().len())).collect())
}

/// The topics a source reads: those named (each must exist) or those matching the pattern.
fn source_topics(table: &str, options: &KafkaOptions, topics: &[(String, usize)]) -> Result<Vec<(String, usize)>> {
    match &options.topic_pattern {
        Some(pattern) => {
            let found: Vec<(String, usize)> =
                topics.iter().filter(|(name, _)| pattern.is_match(name)).cloned().collect();
            if found.is_empty() {
                return Err(StreamError::Config(format!(
                    "table '{table}': no topic matches 'topic-pattern' = '{}'",
                    pattern.as_str()
                )));
            }
            Ok(found)
        }
        None => options
            .topics
            .iter()
            .map(|name| {
                topics.iter().find(|(t, _)| t == name).cloned().ok_or_else(|| {
                    StreamError::Config(format!(
                        "table '{table}': topic '{name}' does not exist on {}",
                        options.bootstrap_servers()
                    ))
                })
            })
            .collect(),
    }
}

/// A source's topics exist; a sink's topic exists, or is created if `'sink.create-topic'` says so.
fn check_topics(table: &TableDef, options: &KafkaOptions, role: Role) -> Result<()> {
    let topics = list_topics(&table.name, options)?;
    match role {
        Role::Source => source_topics(&table.name, options, &topics).map(|_| ()),
        Role::Sink => {
            let topic = &options.topics[0];
            if topics.iter().any(|(t, _)| t == topic) {
                return Ok(());
            }
            match options.create_topic {
                Some((partitions, replication)) => create_topic(table, options, topic, partitions, replication),
                None => Err(StreamError::Config(format!(
                    "table '{}': topic '{topic}' does not exist on {}; create it, or set 'sink.create-topic' = 'true'",
                    table.name,
                    options.bootstrap_servers()
                ))),
            }
        }
    }
}

fn create_topic(
    table: &TableDef,
    options: &KafkaOptions,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = client_config(options)
        .create()
        .map_err(|e| kafka_error(&table.name, "cannot create a Kafka admin client", e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let admin_options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&new], &admin_options))
        .map_err(|e| kafka_error(&table.name, &format!("cannot create topic '{topic}'"), e))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!("table '{}': created topic '{topic}' ({partitions} partitions)", table.name),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(kafka_error(&table.name, &format!("cannot create topic '{topic}'"), code)),
        }
    }
    Ok(())
}
