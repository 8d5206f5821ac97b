//! The options of a Kafka table, parsed and checked against its columns.

use std::time::Duration;

use arrow::datatypes::DataType;
use streamsql_engine::connector::{Role, TableDef, metadata_key};
use streamsql_engine::time::parse_duration_ms;
use streamsql_engine::{Result, StreamError};

use crate::format::OnError;

/// How a record's value or key is written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON object; columns by name.
    Json,
    /// One CSV line without a header; columns in declared order.
    Csv,
    /// The bytes as one STRING column.
    Raw,
}

impl RecordFormat {
    const CHOICES: &'static [&'static str] = &["json", "csv", "raw"];

    fn from_choice(choice: &str) -> Self {
        match choice {
            "csv" => RecordFormat::Csv,
            "raw" => RecordFormat::Raw,
            _ => RecordFormat::Json,
        }
    }
}

/// `'scan.startup.mode'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupMode {
    GroupOffsets,
    Earliest,
    Latest,
    Timestamp(i64),
}

/// `'sink.partitioner'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    Default,
    Fixed,
    RoundRobin,
}

/// Where each column of the table comes from in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnSource {
    /// The n-th column of the value.
    Value(usize),
    /// The n-th of `'key.fields'`.
    Key(usize),
    /// A metadata key (`'partition'`, ...).
    Metadata(String),
}

/// `'sink.delivery-guarantee'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Nothing waited for; failures are only logged.
    None,
    /// Every record acknowledged before a checkpoint completes and before the sink ends; a
    /// restart writes again what came after the last checkpoint.
    AtLeastOnce,
    /// Records are committed in a Kafka transaction when the checkpoint after them completes.
    ExactlyOnce,
}

impl Guarantee {
    /// Whether a record that cannot be delivered fails the pipeline.
    pub fn waits(self) -> bool {
        self != Guarantee::None
    }
}

#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// `'properties.*'` with the prefix taken off.
    pub properties: Vec<(String, String)>,
    pub topics: Vec<String>,
    pub topic_pattern: Option<regex::Regex>,
    pub group_id: Option<String>,
    pub startup: StartupMode,
    pub bounded: bool,
    pub idle_timeout: Option<Duration>,
    pub value_format: RecordFormat,
    pub key_format: Option<RecordFormat>,
    /// Columns of the key (table column indices), in `'key.fields'` order.
    pub key_columns: Vec<usize>,
    /// Columns of the value (table column indices), in declared order.
    pub value_columns: Vec<usize>,
    /// Where each table column comes from.
    pub columns: Vec<ColumnSource>,
    pub on_error: OnError,
    /// `'sink.delivery-guarantee'`.
    pub guarantee: Guarantee,
    /// `'sink.transactional-id-prefix'` (exactly once): the sink's transactional id is
    /// `<prefix>-0`.
    pub transactional_id_prefix: Option<String>,
    pub partitioner: Partitioner,
    /// `'sink.create-topic'`: partitions and replication factor.
    pub create_topic: Option<(i32, i32)>,
    /// The column holding the record timestamp a sink writes.
    pub timestamp_column: Option<usize>,
}

impl KafkaOptions {
    pub fn bootstrap_servers(&self) -> &str {
        self.properties.iter().find(|(k, _)| k == "bootstrap.servers").map_or("", |(_, v)| v.as_str())
    }

    /// Parses and checks `table`'s options for `role`; `upsert`: the `upsert-kafka` connector.
    pub fn parse(table: &TableDef, role: Role, upsert: bool) -> Result<Self> {
        let opts = table.opts();
        let name = &table.name;
        let config = |message: String| StreamError::Config(format!("table '{name}': {message}"));
        let properties: Vec<(String, String)> = table
            .options
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("properties.").map(|k| (k.to_string(), v.clone())))
            .collect();
        // Set by the connector itself: a different value would break how it reads.
        for key in
            ["enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof", "allow.auto.create.topics"]
        {
            if opts.get(&format!("properties.{key}")).is_some() {
                return Err(config(format!(
                    "option 'properties.{key}' is set by the connector (offsets are committed to \
                     'properties.group.id' as records are read; partitions are assigned, not subscribed)"
                )));
            }
        }
        let group_id = opts.get("properties.group.id").map(str::to_string);
        let topics: Vec<String> = opts
            .get("topic")
            .map(|t| t.split(';').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let topic_pattern = match opts.get("topic-pattern") {
            None => None,
            Some(pattern) => Some(
                regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| config(format!("option 'topic-pattern' is not a regular expression: {e}")))?,
            ),
        };
        match (role, topics.len(), &topic_pattern) {
            (Role::Source, 0, None) => {
                return Err(config("set 'topic' (or 'topic-pattern') to the topic to read".into()));
            }
            (Role::Source, 1.., Some(_)) => {
                return Err(config("set either 'topic' or 'topic-pattern', not both".into()));
            }
            (Role::Sink, 1, _) => {}
            (Role::Sink, _, _) => return Err(config("a sink writes one topic: set 'topic' to its name".into())),
            _ => {}
        }

        let startup = match opts.choice(
            "scan.startup.mode",
            &["group-offsets", "earliest-offset", "latest-offset", "timestamp", "specific-offsets"],
            "group-offsets",
        )? {
            "earliest-offset" => StartupMode::Earliest,
            "latest-offset" => StartupMode::Latest,
            "timestamp" => {
                let millis = opts.parse("scan.startup.timestamp-millis", i64::MIN, "epoch milliseconds")?;
                if millis == i64::MIN {
                    return Err(config(
                        "'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis'".into(),
                    ));
                }
                StartupMode::Timestamp(millis)
            }
            "specific-offsets" => {
                return Err(config("'scan.startup.mode' = 'specific-offsets' is not supported yet".into()));
            }
            _ => StartupMode::GroupOffsets,
        };
        if opts.get("scan.startup.timestamp-millis").is_some() && !matches!(startup, StartupMode::Timestamp(_)) {
            return Err(config("'scan.startup.timestamp-millis' needs 'scan.startup.mode' = 'timestamp'".into()));
        }
        if startup == StartupMode::GroupOffsets && group_id.is_none() && opts.get("scan.startup.mode").is_some() {
            return Err(config("'scan.startup.mode' = 'group-offsets' needs 'properties.group.id'".into()));
        }
        let bounded = match opts.choice(
            "scan.bounded.mode",
            &["unbounded", "latest-offset", "group-offsets", "timestamp", "specific-offsets"],
            "unbounded",
        )? {
            "unbounded" => false,
            "latest-offset" => true,
            other => return Err(config(format!("'scan.bounded.mode' = '{other}' is not supported yet"))),
        };
        let idle_timeout = match opts.get("source.idle-timeout") {
            None => None,
            Some(text) => Some(
                parse_duration_ms(text).filter(|ms| *ms > 0).map(|ms| Duration::from_millis(ms as u64)).ok_or_else(
                    || config(format!("option 'source.idle-timeout' must be a duration such as '10 s', got '{text}'")),
                )?,
            ),
        };

        let format_choice = |key: &str| opts.choice(key, RecordFormat::CHOICES, "json").map(RecordFormat::from_choice);
        if opts.get("format").is_some() && opts.get("value.format").is_some() {
            return Err(config("set 'format' or 'value.format', not both".into()));
        }
        let value_format =
            if opts.get("value.format").is_some() { format_choice("value.format")? } else { format_choice("format")? };
        let key_format = opts.get("key.format").map(|_| format_choice("key.format")).transpose()?;

        // Columns: metadata, key, value.
        let schema = &table.schema;
        let mut columns = Vec::with_capacity(schema.fields().len());
        let key_names: Vec<String> = match (upsert, opts.get("key.fields")) {
            (true, Some(_)) => {
                return Err(config("'upsert-kafka' keys records by the PRIMARY KEY; remove 'key.fields'".into()));
            }
            (true, None) if table.primary_key.is_empty() => {
                return Err(config(
                    "'upsert-kafka' needs a PRIMARY KEY (...) NOT ENFORCED: records are keyed by it".into(),
                ));
            }
            (true, None) => table.primary_key.clone(),
            (false, Some(fields)) => fields.split(';').map(|f| f.trim().to_string()).collect(),
            (false, None) => Vec::new(),
        };
        let mut key_columns = Vec::new();
        for key in &key_names {
            let index = schema
                .fields()
                .iter()
                .position(|f| f.name() == key || crate::format::decode::declared_name(f) == key)
                .ok_or_else(|| config(format!("'key.fields' names '{key}', which is not a column")))?;
            if metadata_key(schema.field(index)).is_some() {
                return Err(config(format!("'key.fields' names '{key}', a metadata column")));
            }
            key_columns.push(index);
        }
        let key_format = match (key_format, key_columns.is_empty(), upsert) {
            (Some(_), true, false) => return Err(config("'key.format' needs 'key.fields'".into())),
            (None, false, false) => return Err(config("'key.fields' needs 'key.format'".into())),
            (None, false, true) => Some(RecordFormat::Json),
            (format, ..) => format,
        };
        let except_key = opts.choice("value.fields-include", &["ALL", "EXCEPT_KEY"], "ALL")? == "EXCEPT_KEY";
        let mut value_columns = Vec::new();
        let mut timestamp_column = None;
        for (i, field) in schema.fields().iter().enumerate() {
            if let Some(key) = metadata_key(field) {
                if role == Role::Sink {
                    if key != "timestamp" || field.metadata().contains_key("streamsql.metadata.virtual") {
                        return Err(config(format!(
                            "column '{}': a sink writes only the 'timestamp' metadata; metadata '{key}' is read-only \
                             (a table with it can only be read)",
                            field.name()
                        )));
                    }
                    timestamp_column = Some(i);
                }
                columns.push(ColumnSource::Metadata(key.to_string()));
            } else if let Some(k) = key_columns.iter().position(|&c| c == i)
                && (except_key || role == Role::Source)
            {
                if !except_key {
                    value_columns.push(i);
                }
                columns.push(ColumnSource::Key(k));
            } else {
                columns.push(ColumnSource::Value(value_columns.len()));
                value_columns.push(i);
            }
        }
        for (format, list, what) in [(Some(value_format), &value_columns, "value"), (key_format, &key_columns, "key")] {
            if format == Some(RecordFormat::Raw) {
                let [only] = list[..] else {
                    return Err(config(format!(
                        "the 'raw' {what} format holds exactly one column, this {what} has {}",
                        list.len()
                    )));
                };
                if schema.field(only).data_type() != &DataType::Utf8 {
                    return Err(config(format!("the 'raw' {what} format holds one STRING column")));
                }
            }
        }
        let on_error = OnError::from_choice(opts.choice("format.on-error", OnError::CHOICES, "fail")?);
        let guarantee = match opts.choice(
            "sink.delivery-guarantee",
            &["at-least-once", "none", "exactly-once"],
            "at-least-once",
        )? {
            "exactly-once" => Guarantee::ExactlyOnce,
            "none" => Guarantee::None,
            _ => Guarantee::AtLeastOnce,
        };
        let transactional_id_prefix = opts.get("sink.transactional-id-prefix").map(str::trim);
        let transactional_id_prefix = match (guarantee, transactional_id_prefix) {
            (Guarantee::ExactlyOnce, Some(prefix)) if !prefix.is_empty() => Some(prefix.to_string()),
            (Guarantee::ExactlyOnce, _) => {
                return Err(config(
                    "'sink.delivery-guarantee' = 'exactly-once' needs 'sink.transactional-id-prefix': a name for \
                     this sink's Kafka transactions, unique among the jobs writing to the cluster (a restart \
                     with the same prefix aborts what a killed run left open)"
                        .into(),
                ));
            }
            (_, Some(_)) => {
                return Err(config(
                    "option 'sink.transactional-id-prefix' is only used with 'sink.delivery-guarantee' = \
                     'exactly-once'"
                        .into(),
                ));
            }
            (_, None) => None,
        };
        if guarantee == Guarantee::ExactlyOnce {
            for key in ["transactional.id", "isolation.level"] {
                if opts.get(&format!("properties.{key}")).is_some() {
                    return Err(config(format!(
                        "option 'properties.{key}' is set by the exactly-once sink (from \
                         'sink.transactional-id-prefix')"
                    )));
                }
            }
        }
        let partitioner = match opts.choice("sink.partitioner", &["default", "fixed", "round-robin"], "default")? {
            "fixed" => Partitioner::Fixed,
            "round-robin" if upsert => {
                return Err(config(
                    "'upsert-kafka' writes every change of a key to the key's partition, so that the latest wins; \
                     'sink.partitioner' = 'round-robin' would scatter them"
                        .into(),
                ));
            }
            "round-robin" => Partitioner::RoundRobin,
            _ => Partitioner::Default,
        };
        let create_topic = if opts.parse("sink.create-topic", false, "'true' or 'false'")? {
            let partitions = opts.parse("sink.create-topic.partitions", 1_i32, "a positive number")?;
            let replication = opts.parse("sink.create-topic.replication-factor", 1_i32, "a positive number")?;
            if partitions < 1 || replication < 1 {
                return Err(config("'sink.create-topic.partitions' and '.replication-factor' must be positive".into()));
            }
            Some((partitions, replication))
        } else {
            for key in ["sink.create-topic.partitions", "sink.create-topic.replication-factor"] {
                if opts.get(key).is_some() {
                    return Err(config(format!("option '{key}' needs 'sink.create-topic' = 'true'")));
                }
            }
            None
        };
        if role == Role::Source {
            // Every column type must be decodable.
            crate::format::decode::RecordDecoder::new(table.schema.clone()).map_err(|e| config(e.to_string()))?;
        }
        Ok(Self {
            properties,
            topics,
            topic_pattern,
            group_id,
            startup,
            bounded,
            idle_timeout,
            value_format,
            key_format,
            key_columns,
            value_columns,
            columns,
            on_error,
            guarantee,
            transactional_id_prefix,
            partitioner,
            create_topic,
            timestamp_column,
        })
    }
}
