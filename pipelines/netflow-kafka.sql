-- Network flows through Apache Kafka into Apache Cassandra: the generator writes flows to a topic,
-- and a second pipeline reads the topic and writes flows per flow type per 5-second window.
--   scripts/kafka.sh start && scripts/cassandra.sh start
--   streamsql -f pipelines/netflow-kafka.sql          -- runs until Ctrl-C: the reader waits for more flows
-- The topic is created with 4 partitions if missing; flows are keyed (so partitioned) by source
-- IP, and each partition has its own watermark. The reader commits its offsets to the group
-- 'streamsql-netflow', so a second run reads only the flows written since. Windows still open
-- when the job stops are not written; with SET 'execution.checkpointing.interval' and --state-dir
-- they are kept, and a restart resumes from the checkpointed offsets (README: Checkpoints).

SET 'parallelism.default' = '2';

CREATE TABLE flows (
  ts TIMESTAMP(3),
  src_ip STRING,
  dst_ip STRING,
  dst_port INT,
  protocol STRING,
  flow_type STRING,
  bytes_in BIGINT
) WITH (
  'connector' = 'netflow',
  'number-of-rows' = '60000',           -- one minute of event time at 1000 flows/s ...
  'event-time.rows-per-second' = '1000',
  'rows-per-second' = '10000',          -- ... written in 6 s
  'max-out-of-orderness' = '800',
  'seed' = '2016'
);

CREATE TABLE flow_topic (
  ts TIMESTAMP(3),
  src_ip STRING,
  dst_port INT,
  flow_type STRING,
  bytes_in BIGINT,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'netflow.flows',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'streamsql-netflow',
  'scan.startup.mode' = 'group-offsets',
  'format' = 'json',
  'key.format' = 'raw',
  'key.fields' = 'src_ip',
  'sink.create-topic' = 'true',
  'sink.create-topic.partitions' = '4'
);

CREATE TABLE flow_counts (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  flow_type STRING,
  flows BIGINT,
  PRIMARY KEY (flow_type, window_start) NOT ENFORCED
) WITH (
  'connector' = 'cassandra',
  'hosts' = '127.0.0.1:9042',
  'keyspace' = 'netflow',
  'table' = 'kafka_flow_counts',
  'create-table' = 'true'
);

-- 1. The generator into the topic.
INSERT INTO flow_topic
SELECT ts, src_ip, dst_port, flow_type, bytes_in FROM flows;

-- 2. The topic into Cassandra.
INSERT INTO flow_counts
SELECT window_start, window_end, flow_type, COUNT(*) AS flows
FROM TABLE(TUMBLE(TABLE flow_topic, DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY window_start, window_end, flow_type;
