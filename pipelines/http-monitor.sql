-- HTTP request monitoring: request events of a web API, counted per endpoint over sliding
-- (HOP) windows, each window compared with the endpoint's previous one (LAG) to find
-- significant changes: error spikes, traffic bursts and drops, latency jumps.
--
-- Embedded default (no services): the http-log generator (requests of a web shop with bursts,
-- outages and slow-downs on some endpoints) replaces the application; alerts go to
-- out/http_alerts.jsonl and to the live table http_alerts.
--   streamsql -f pipelines/http-monitor.sql
--
-- With the real services: the application (or its logging middleware) POSTs its request events
-- as JSON to http://127.0.0.1:8088/events (one object, an array or NDJSON; 202 when taken, 503
-- with Retry-After when the pipeline is behind); they are published to the Kafka topic
-- http.requests, which the monitoring reads; alerts go to the Kafka topic http.alerts and the
-- live table, which Flight SQL clients query while the job runs (--flight).
--   scripts/kafka.sh start
--   streamsql -f pipelines/http-monitor.sql -D mode=services --flight      (runs until Ctrl-C)
--   curl -X POST localhost:8088/events -d '{"ts": "2024-01-15 09:00:00.123", "method": "GET",
--        "path": "/api/cart", "status": 200, "latency_ms": 12.5, "client_ip": "10.0.0.1",
--        "user_agent": "curl/8.5"}'
--
-- Charts in the web console (--http, http://127.0.0.1:8080/), declared on the live tables below:
-- http_alerts as a table; http_endpoint_counts as a line of requests over window_end per path.

SET 'parallelism.default' = '2';

-- The generator: two hours of requests at 20 per second of event time.
CREATE TABLE events_embedded (
  ts TIMESTAMP(3),
  method STRING,
  path STRING,
  status INT,
  latency_ms DOUBLE,
  client_ip STRING,
  user_agent STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'http-log',
  'number-of-rows' = '${rows:-144000}',
  'event-time.rows-per-second' = '20',
  'rows-per-second' = '${rate:-0}',
  'seed' = '${seed:-42}'
);

-- Requests POSTed by the application, and the Kafka topic they are published to: one pipeline
-- takes the POSTs (an http-ingest table has one listener), the others read the topic.
CREATE TABLE posted_services (
  ts TIMESTAMP(3),
  method STRING,
  path STRING,
  status INT,
  latency_ms DOUBLE,
  client_ip STRING,
  user_agent STRING
) WITH (
  'connector' = 'http-ingest',
  'listen' = '${listen:-127.0.0.1:8088}',
  'path' = '/events'
);

CREATE VIEW posted_embedded AS
SELECT ts, method, path, status, latency_ms, client_ip, user_agent FROM events_embedded;

CREATE TABLE requests_topic_embedded (ts TIMESTAMP(3), method STRING, path STRING, status INT, latency_ms DOUBLE,
  client_ip STRING, user_agent STRING) WITH ('connector' = 'blackhole');
CREATE TABLE requests_topic_services (ts TIMESTAMP(3), method STRING, path STRING, status INT, latency_ms DOUBLE,
  client_ip STRING, user_agent STRING)
WITH (
  'connector' = 'kafka',
  'topic' = '${requests_topic:-http.requests}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'format' = 'json',
  'sink.create-topic' = 'true'
);

CREATE TABLE events_services (
  ts TIMESTAMP(3),
  method STRING,
  path STRING,
  status INT,
  latency_ms DOUBLE,
  client_ip STRING,
  user_agent STRING,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${requests_topic:-http.requests}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'json'
);

CREATE TABLE alerts_embedded (
  window_end TIMESTAMP(3),
  method STRING,
  path STRING,
  alert STRING,
  requests BIGINT,
  prev_requests BIGINT,
  errors BIGINT,
  prev_errors BIGINT,
  avg_latency_ms DOUBLE,
  prev_latency_ms DOUBLE
) WITH (
  'connector' = 'file',
  'path' = '${out:-out}/http_alerts.jsonl',
  'format' = 'json'
);

CREATE TABLE alerts_services (
  window_end TIMESTAMP(3),
  method STRING,
  path STRING,
  alert STRING,
  requests BIGINT,
  prev_requests BIGINT,
  errors BIGINT,
  prev_errors BIGINT,
  avg_latency_ms DOUBLE,
  prev_latency_ms DOUBLE
) WITH (
  'connector' = 'kafka',
  'topic' = '${alerts_topic:-http.alerts}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'format' = 'json',
  'sink.create-topic' = 'true'
);

-- Requests, server errors and mean latency per endpoint, over 2 minutes every minute, and the
-- endpoint's share of all requests in the window.
CREATE VIEW endpoint_counts AS
SELECT
  window_start, window_end, window_time, method, path,
  COUNT(*) AS requests,
  SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors,
  AVG(latency_ms) AS avg_latency_ms
FROM TABLE(HOP(TABLE events_${mode:-embedded}, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE))
GROUP BY window_start, window_end, window_time, method, path;

CREATE VIEW endpoint_shares AS
SELECT
  window_start, window_end, window_time, method, path, requests, errors, avg_latency_ms,
  CAST(requests AS DOUBLE) / SUM(requests) OVER (PARTITION BY window_start, window_end) AS share
FROM endpoint_counts;

-- Each window beside the endpoint's previous disjoint window (two slides back).
CREATE VIEW changes AS
SELECT
  window_end, method, path, requests, errors, avg_latency_ms, share,
  LAG(requests, 2) OVER w AS prev_requests,
  LAG(errors, 2) OVER w AS prev_errors,
  LAG(avg_latency_ms, 2) OVER w AS prev_latency_ms,
  LAG(share, 2) OVER w AS prev_share
FROM endpoint_shares
WINDOW w AS (PARTITION BY method, path ORDER BY window_time);

-- What counts as significant:
--   error_spike: at least 10 server errors, a fifth of the requests, and three times the
--     previous error rate;
--   traffic_burst / traffic_drop: at least 1.5 times (at most half) the previous requests, of
--     windows of at least 50, and a share of all requests that moved the same way by a third
--     (so partial windows at the start and end of a stream, where every count falls, and an
--     endpoint whose share only moves because another one bursts, raise no alert);
--   latency_jump: a mean latency three times the previous one.
CREATE VIEW classified AS
SELECT
  window_end, method, path,
  CASE
    WHEN errors >= 10 AND errors * 5 >= requests
         AND CAST(errors AS DOUBLE) / requests > 3 * CAST(prev_errors AS DOUBLE) / prev_requests THEN 'error_spike'
    WHEN requests >= 50 AND requests * 2 >= prev_requests * 3 AND share * 3 >= prev_share * 4 THEN 'traffic_burst'
    WHEN prev_requests >= 50 AND requests * 2 <= prev_requests AND share * 4 <= prev_share * 3 THEN 'traffic_drop'
    WHEN avg_latency_ms > 3 * prev_latency_ms THEN 'latency_jump'
  END AS alert,
  requests, prev_requests, errors, prev_errors, avg_latency_ms, prev_latency_ms
FROM changes
WHERE prev_requests IS NOT NULL;

CREATE VIEW alerts AS SELECT * FROM classified WHERE alert IS NOT NULL;

-- 1. POSTed requests into the topic (services only; the generator is read directly).
-- First, so the topic exists (the sink creates it) before the readers are planned.
INSERT INTO requests_topic_${mode:-embedded}
SELECT * FROM posted_${mode:-embedded};

-- Live tables for the console and Flight SQL: the alerts, and the counts behind them.
CREATE MATERIALIZED VIEW http_alerts WITH ('retention' = '1 DAY', 'chart' = 'table') AS SELECT * FROM alerts;
CREATE MATERIALIZED VIEW http_endpoint_counts WITH (
  'retention' = '1 HOUR',
  'chart' = 'line', 'chart.x' = 'window_end', 'chart.y' = 'requests', 'chart.series' = 'path'
) AS
SELECT window_end, method, path, requests, errors, avg_latency_ms FROM endpoint_counts;

-- 2. The alerts.
INSERT INTO alerts_${mode:-embedded} SELECT * FROM alerts;
