-- Per-IP traffic features: network flows keyed by source IP, summarised per IP and minute
-- (flows, distinct destination IPs and ports, bytes), running averages of those over the IP's
-- last 10 minutes, and a forecast of the next 3 minutes of each IP's flows and distinct
-- destinations (FORECAST: Holt's linear trend fitted over the last 30 minutes).
--
-- Embedded default (no services): 20 minutes of the netflow generator at 500 flows/s; running
-- averages go to out/ip_features.jsonl, forecasts to out/ip_forecasts.jsonl, and both the
-- per-minute series and the forecasts to live tables.
--   streamsql -f pipelines/ip-features.sql
--
-- With the real services: the generator publishes flows to the Kafka topic netflow.ip-flows
-- (keyed by src_ip, 4 partitions; or point -D flows_topic=... at your own flow records), which is
-- read back for the features; running averages go to the topic netflow.ip-features, forecasts to
-- netflow.ip-forecasts, and the live tables are served to Flight SQL clients:
--   scripts/kafka.sh start
--   streamsql -f pipelines/ip-features.sql -D mode=services --flight   (runs until Ctrl-C)
--
-- Charts in the web console (--http, http://127.0.0.1:8080/), declared on the live tables below:
-- ip_minutes as a line of unq_dst_ip over window_end per src_ip; ip_forecasts as a table.

SET 'parallelism.default' = '2';

CREATE TABLE generator (
  ts TIMESTAMP(3),
  src_ip STRING,
  dst_ip STRING,
  dst_port INT,
  bytes_in BIGINT,
  bytes_out BIGINT,
  duration DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'netflow',
  'number-of-rows' = '${rows:-600000}',
  'event-time.rows-per-second' = '500',
  'rows-per-second' = '${rate:-0}',
  'max-out-of-orderness' = '800',
  'seed' = '${seed:-2016}'
);

-- The flow topic (services only).
CREATE TABLE flows_out_embedded (ts TIMESTAMP(3), src_ip STRING, dst_ip STRING, dst_port INT, bytes_in BIGINT,
  bytes_out BIGINT, duration DOUBLE) WITH ('connector' = 'blackhole');
CREATE TABLE flows_out_services (ts TIMESTAMP(3), src_ip STRING, dst_ip STRING, dst_port INT, bytes_in BIGINT,
  bytes_out BIGINT, duration DOUBLE)
WITH (
  'connector' = 'kafka',
  'topic' = '${flows_topic:-netflow.ip-flows}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'format' = 'json',
  'key.format' = 'raw',
  'key.fields' = 'src_ip',
  'sink.create-topic' = 'true',
  'sink.create-topic.partitions' = '4'
);

-- What the features read.
CREATE VIEW flows_embedded AS SELECT * FROM generator;
CREATE TABLE flows_services (
  ts TIMESTAMP(3),
  src_ip STRING,
  dst_ip STRING,
  dst_port INT,
  bytes_in BIGINT,
  bytes_out BIGINT,
  duration DOUBLE,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${flows_topic:-netflow.ip-flows}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = '${bounded:-unbounded}',
  'format' = 'json'
);

CREATE TABLE features_embedded (
  window_end TIMESTAMP(3),
  src_ip STRING,
  flows BIGINT,
  unq_dst_ip BIGINT,
  unq_dst_port BIGINT,
  bytes_in BIGINT,
  bytes_out BIGINT,
  avg_flows_10min DOUBLE,
  avg_unq_dst_ip_10min DOUBLE,
  avg_unq_dst_port_10min DOUBLE,
  avg_bytes_in_10min DOUBLE,
  avg_bytes_out_10min DOUBLE
) WITH (
  'connector' = 'file',
  'path' = '${out:-out}/ip_features.jsonl',
  'format' = 'json'
);
CREATE TABLE features_services (
  window_end TIMESTAMP(3),
  src_ip STRING,
  flows BIGINT,
  unq_dst_ip BIGINT,
  unq_dst_port BIGINT,
  bytes_in BIGINT,
  bytes_out BIGINT,
  avg_flows_10min DOUBLE,
  avg_unq_dst_ip_10min DOUBLE,
  avg_unq_dst_port_10min DOUBLE,
  avg_bytes_in_10min DOUBLE,
  avg_bytes_out_10min DOUBLE
) WITH (
  'connector' = 'kafka',
  'topic' = '${features_topic:-netflow.ip-features}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'format' = 'json',
  'key.format' = 'raw',
  'key.fields' = 'src_ip',
  'sink.create-topic' = 'true'
);

CREATE TABLE forecasts_embedded (
  window_end TIMESTAMP(3),
  src_ip STRING,
  flows BIGINT,
  unq_dst_ip BIGINT,
  next_flows ARRAY<DOUBLE>,
  next_unq_dst_ip ARRAY<DOUBLE>
) WITH (
  'connector' = 'file',
  'path' = '${out:-out}/ip_forecasts.jsonl',
  'format' = 'json'
);
CREATE TABLE forecasts_services (
  window_end TIMESTAMP(3),
  src_ip STRING,
  flows BIGINT,
  unq_dst_ip BIGINT,
  next_flows ARRAY<DOUBLE>,
  next_unq_dst_ip ARRAY<DOUBLE>
) WITH (
  'connector' = 'kafka',
  'topic' = '${forecasts_topic:-netflow.ip-forecasts}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'format' = 'json',
  'key.format' = 'raw',
  'key.fields' = 'src_ip',
  'sink.create-topic' = 'true'
);

-- Each IP's minute.
CREATE VIEW ip_minute AS
SELECT
  window_start, window_end, window_time, src_ip,
  COUNT(*) AS flows,
  COUNT(DISTINCT dst_ip) AS unq_dst_ip,
  COUNT(DISTINCT dst_port) AS unq_dst_port,
  SUM(bytes_in) AS bytes_in,
  SUM(bytes_out) AS bytes_out
FROM TABLE(TUMBLE(TABLE flows_${mode:-embedded}, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, window_time, src_ip;

-- Running averages over the IP's last 10 minutes with flows (this one included).
CREATE VIEW ip_features AS
SELECT
  window_end, src_ip, flows, unq_dst_ip, unq_dst_port, bytes_in, bytes_out,
  AVG(CAST(flows AS DOUBLE)) OVER w AS avg_flows_10min,
  AVG(CAST(unq_dst_ip AS DOUBLE)) OVER w AS avg_unq_dst_ip_10min,
  AVG(CAST(unq_dst_port AS DOUBLE)) OVER w AS avg_unq_dst_port_10min,
  AVG(CAST(bytes_in AS DOUBLE)) OVER w AS avg_bytes_in_10min,
  AVG(CAST(bytes_out AS DOUBLE)) OVER w AS avg_bytes_out_10min
FROM ip_minute
WINDOW w AS (PARTITION BY src_ip ORDER BY window_time ROWS BETWEEN 9 PRECEDING AND CURRENT ROW);

-- The next 3 minutes of each IP, from its last 30.
CREATE VIEW ip_forecast AS
SELECT
  window_end, src_ip, flows, unq_dst_ip,
  FORECAST(flows, window_time, 3) OVER f AS next_flows,
  FORECAST(unq_dst_ip, window_time, 3) OVER f AS next_unq_dst_ip
FROM ip_minute
WINDOW f AS (PARTITION BY src_ip ORDER BY window_time ROWS BETWEEN 29 PRECEDING AND CURRENT ROW);

-- 1. The generator into the flow topic (services only).
INSERT INTO flows_out_${mode:-embedded} SELECT ts, src_ip, dst_ip, dst_port, bytes_in, bytes_out, duration FROM generator;

-- 2. Running averages.
INSERT INTO features_${mode:-embedded} SELECT * FROM ip_features;

-- 3. Forecasts.
INSERT INTO forecasts_${mode:-embedded} SELECT * FROM ip_forecast;

-- Live tables: each IP's minutes over the last hour, and its latest forecast.
CREATE MATERIALIZED VIEW ip_minutes WITH (
  'retention' = '1 HOUR',
  'chart' = 'line', 'chart.x' = 'window_end', 'chart.y' = 'unq_dst_ip', 'chart.series' = 'src_ip'
) AS
SELECT window_end, src_ip, flows, unq_dst_ip, unq_dst_port, bytes_in, bytes_out FROM ip_minute;

CREATE MATERIALIZED VIEW ip_forecasts WITH ('retention' = '1 HOUR', 'chart' = 'table') AS SELECT * FROM ip_forecast;
