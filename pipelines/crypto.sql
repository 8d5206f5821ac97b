-- Crypto prices: a price API polled every 30 s into Kafka, each coin's price stored per poll in
-- Cassandra and kept in live tables for a chart.
--
-- Embedded default (no services, no internet): 30 minutes of polls of Coinlore's
-- /api/tickers/ endpoint, replayed from pipelines/data/coinlore-tickers.jsonl (the response shape
-- is Coinlore's, the prices synthetic: scripts/price-replay.py), one poll every 100 ms; prices go
-- to out/crypto_prices.jsonl and the live tables.
--   streamsql -f pipelines/crypto.sql
--
-- With the real services: Coinlore's API polled every 30 s (-D url=... for another endpoint with
-- the same shape) into the Kafka topic crypto.prices; the topic read into the Cassandra table
--   crypto.prices (id TEXT, name TEXT, price_usd DOUBLE, ts BIGINT, processing_time TIMESTAMP,
--                  PRIMARY KEY (id, ts)) WITH CLUSTERING ORDER BY (ts DESC)
-- (created if missing) and into the live tables served to Flight SQL clients:
--   scripts/kafka.sh start && scripts/cassandra.sh start
--   streamsql -f pipelines/crypto.sql -D mode=services --flight        (runs until Ctrl-C)
-- Each pipeline reading an 'http' table polls on its own, so the API is polled once, into
-- Kafka, and the other pipelines read the topic. Bad answers are retried (5xx, timeouts) or
-- skipped and counted (malformed JSON), not fatal.
--
-- Charts in the web console (--http, http://127.0.0.1:8080/), declared on the live tables below:
-- crypto_prices as a line of price_usd over polled per name; crypto_5min as a bar of
-- avg_price_usd per name.

SET 'parallelism.default' = '2';

CREATE TABLE prices_embedded (
  id STRING,
  symbol STRING,
  name STRING,
  price_usd DOUBLE,
  polled TIMESTAMP(3) METADATA FROM 'poll-time',
  processing_time AS PROCTIME(),
  WATERMARK FOR polled AS polled - INTERVAL '1' SECOND
) WITH (
  'connector' = 'http',
  'replay.path' = '${replay:-pipelines/data/coinlore-tickers.jsonl}',
  'json.path' = '$.data[*]',
  'poll.interval' = '${interval:-100 ms}'
);

CREATE TABLE prices_services (
  id STRING,
  symbol STRING,
  name STRING,
  price_usd DOUBLE,
  polled TIMESTAMP(3) METADATA FROM 'poll-time',
  processing_time AS PROCTIME(),
  WATERMARK FOR polled AS polled - INTERVAL '1' SECOND
) WITH (
  'connector' = 'http',
  'url' = '${url:-https://api.coinlore.net/api/tickers/?start=0&limit=10}',
  'json.path' = '$.data[*]',
  'poll.interval' = '${interval:-30 s}',
  'request.timeout' = '${timeout:-10 s}',
  'retry.max-attempts' = '3',
  'format.on-error' = 'skip',
  'header.Accept' = 'application/json'
);

-- The topic between the poller and the readers (services only; the replay is read directly).
CREATE TABLE topic_embedded (id STRING, symbol STRING, name STRING, price_usd DOUBLE, polled TIMESTAMP(3))
  WITH ('connector' = 'blackhole');
CREATE TABLE topic_services (id STRING, symbol STRING, name STRING, price_usd DOUBLE, polled TIMESTAMP(3))
WITH (
  'connector' = 'kafka',
  'topic' = '${topic:-crypto.prices}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'format' = 'json',
  'key.format' = 'raw',
  'key.fields' = 'id',
  'sink.create-topic' = 'true'
);

-- What the store and the live tables read.
CREATE VIEW in_embedded AS SELECT * FROM prices_embedded;
CREATE TABLE in_services (
  id STRING,
  symbol STRING,
  name STRING,
  price_usd DOUBLE,
  polled TIMESTAMP(3),
  processing_time AS PROCTIME(),
  WATERMARK FOR polled AS polled - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic:-crypto.prices}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'json'
);

CREATE TABLE store_embedded (
  id STRING,
  name STRING,
  price_usd DOUBLE,
  ts BIGINT,
  processing_time TIMESTAMP(3)
) WITH (
  'connector' = 'file',
  'path' = '${out:-out}/crypto_prices.jsonl',
  'format' = 'json'
);

CREATE TABLE store_services (
  id STRING,
  name STRING,
  price_usd DOUBLE,
  ts BIGINT,
  processing_time TIMESTAMP(3),
  PRIMARY KEY (id, ts) NOT ENFORCED
) WITH (
  'connector' = 'cassandra',
  'hosts' = '${cassandra:-127.0.0.1:9042}',
  'keyspace' = 'crypto',
  'table' = '${table:-prices}',
  'create-table' = 'true',
  'clustering-order' = 'ts DESC'
);

-- 1. The poller into the topic (services only).
INSERT INTO topic_${mode:-embedded} SELECT id, symbol, name, price_usd, polled FROM prices_${mode:-embedded};

-- 2. The store. ts: the poll's time in seconds since the epoch, as the API's own info.time.
INSERT INTO store_${mode:-embedded}
SELECT id, name, price_usd,
       CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', polled) AS BIGINT) AS ts,
       processing_time
FROM in_${mode:-embedded};

-- Every price as polled, for a line chart per coin.
CREATE MATERIALIZED VIEW crypto_prices WITH (
  'retention' = '1 DAY',
  'chart' = 'line', 'chart.x' = 'polled', 'chart.y' = 'price_usd', 'chart.series' = 'name'
) AS
SELECT name, symbol, price_usd, polled FROM in_${mode:-embedded};

-- Average, lowest and highest price per coin over 5 minutes.
CREATE MATERIALIZED VIEW crypto_5min WITH (
  'retention' = '1 DAY', 'chart' = 'bar', 'chart.x' = 'name', 'chart.y' = 'avg_price_usd'
) AS
SELECT window_start, window_end, name, AVG(price_usd) AS avg_price_usd,
       MIN(price_usd) AS low_usd, MAX(price_usd) AS high_usd, COUNT(*) AS polls
FROM TABLE(TUMBLE(TABLE in_${mode:-embedded}, DESCRIPTOR(polled), INTERVAL '5' MINUTE))
GROUP BY window_start, window_end, name;
