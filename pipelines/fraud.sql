-- Card-fraud features: the transactions of the fraud-detection handbook's simulator and, for
-- every transaction, the handbook's baseline features (Le Borgne et al., "Reproducible Machine
-- Learning for Credit Card Fraud Detection", chapter 3.4):
--   tx_during_weekend, tx_during_night;
--   per customer, the number of transactions and their average amount over the last 1, 7 and
--   30 days (the transaction itself included);
--   per terminal, the number of transactions and the share of frauds among them over 1, 7 and
--   30 days that ended 7 days ago (fraud labels are known only after a delay).
--
-- Embedded default (no services): the generator feeds the features directly; transactions and
-- features are written to out/fraud_transactions.jsonl and out/fraud_features.jsonl.
--   streamsql -f pipelines/fraud.sql
--   streamsql -f pipelines/fraud.sql -D days=40 -D customers=500 -D terminals=1000   (smaller)
--
-- With the real services: the generator publishes one transaction per second (-D rate=1; 0 is
-- as fast as possible) to the Kafka topic fraud.transactions; the topic is read into the
-- Cassandra tables fraud.transactions and fraud.features (created if missing).
--   scripts/kafka.sh start && scripts/cassandra.sh start
--   streamsql -f pipelines/fraud.sql -D mode=services -D rate=1      (runs until Ctrl-C)
--
-- The windows are RANGE frames of N days minus one second, which over the simulator's whole
-- seconds is pandas' rolling('Nd'): the rows of (t - N days, t].

SET 'parallelism.default' = '2';

CREATE TABLE transactions (
  transaction_id BIGINT,
  tx_datetime TIMESTAMP(3),
  customer_id BIGINT,
  terminal_id BIGINT,
  tx_amount DOUBLE,
  tx_time_seconds BIGINT,
  tx_time_days BIGINT,
  tx_fraud INT,
  tx_fraud_scenario INT,
  WATERMARK FOR tx_datetime AS tx_datetime - INTERVAL '1' SECOND
) WITH (
  'connector' = 'transactions',
  'customers' = '${customers:-5000}',
  'terminals' = '${terminals:-10000}',
  'number-of-days' = '${days:-60}',
  'rows-per-second' = '${rate:-0}',
  'start-time' = '2018-04-01 00:00:00',
  'seed' = '${seed:-42}'
);

-- Where the generator's transactions go: nowhere in the embedded run (the generator is read
-- directly), the Kafka topic with the services.
CREATE TABLE tx_topic_embedded (
  transaction_id BIGINT,
  tx_datetime TIMESTAMP(3),
  customer_id BIGINT,
  terminal_id BIGINT,
  tx_amount DOUBLE,
  tx_time_seconds BIGINT,
  tx_time_days BIGINT,
  tx_fraud INT,
  tx_fraud_scenario INT
) WITH ('connector' = 'blackhole');
CREATE TABLE tx_topic_services (
  transaction_id BIGINT,
  tx_datetime TIMESTAMP(3),
  customer_id BIGINT,
  terminal_id BIGINT,
  tx_amount DOUBLE,
  tx_time_seconds BIGINT,
  tx_time_days BIGINT,
  tx_fraud INT,
  tx_fraud_scenario INT
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic:-fraud.transactions}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'format' = 'json',
  'key.format' = 'json',
  'key.fields' = 'customer_id',
  'sink.create-topic' = 'true',
  'sink.create-topic.partitions' = '4'
);

-- Where the features read transactions from.
CREATE VIEW tx_in_embedded AS SELECT * FROM transactions;
CREATE TABLE tx_in_services (
  transaction_id BIGINT,
  tx_datetime TIMESTAMP(3),
  customer_id BIGINT,
  terminal_id BIGINT,
  tx_amount DOUBLE,
  tx_time_seconds BIGINT,
  tx_time_days BIGINT,
  tx_fraud INT,
  tx_fraud_scenario INT,
  WATERMARK FOR tx_datetime AS tx_datetime - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic:-fraud.transactions}',
  'properties.bootstrap.servers' = '${kafka:-127.0.0.1:9092}',
  'properties.group.id' = 'streamsql-fraud',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = '${bounded:-unbounded}',
  'format' = 'json'
);

-- The transactions table.
CREATE TABLE tx_store_embedded (
  transaction_id BIGINT,
  tx_datetime TIMESTAMP(3),
  customer_id BIGINT,
  terminal_id BIGINT,
  tx_amount DOUBLE,
  tx_time_seconds BIGINT,
  tx_time_days BIGINT,
  tx_fraud INT,
  tx_fraud_scenario INT
) WITH (
  'connector' = 'file',
  'path' = '${out:-out}/fraud_transactions.jsonl',
  'format' = 'json'
);
CREATE TABLE tx_store_services (
  transaction_id BIGINT,
  tx_datetime TIMESTAMP(3),
  customer_id BIGINT,
  terminal_id BIGINT,
  tx_amount DOUBLE,
  tx_time_seconds BIGINT,
  tx_time_days BIGINT,
  tx_fraud INT,
  tx_fraud_scenario INT,
  PRIMARY KEY (transaction_id) NOT ENFORCED
) WITH (
  'connector' = 'cassandra',
  'hosts' = '${cassandra:-127.0.0.1:9042}',
  'keyspace' = 'fraud',
  'table' = '${tx_table:-transactions}',
  'create-table' = 'true'
);

-- The features table.
CREATE TABLE features_embedded (
  transaction_id BIGINT,
  tx_datetime TIMESTAMP(3),
  customer_id BIGINT,
  terminal_id BIGINT,
  tx_amount DOUBLE,
  tx_fraud INT,
  tx_during_weekend INT,
  tx_during_night INT,
  customer_id_nb_tx_1day_window BIGINT,
  customer_id_avg_amount_1day_window DOUBLE,
  customer_id_nb_tx_7day_window BIGINT,
  customer_id_avg_amount_7day_window DOUBLE,
  customer_id_nb_tx_30day_window BIGINT,
  customer_id_avg_amount_30day_window DOUBLE,
  terminal_id_nb_tx_1day_window BIGINT,
  terminal_id_risk_1day_window DOUBLE,
  terminal_id_nb_tx_7day_window BIGINT,
  terminal_id_risk_7day_window DOUBLE,
  terminal_id_nb_tx_30day_window BIGINT,
  terminal_id_risk_30day_window DOUBLE
) WITH (
  'connector' = 'file',
  'path' = '${out:-out}/fraud_features.jsonl',
  'format' = 'json'
);
CREATE TABLE features_services (
  transaction_id BIGINT,
  tx_datetime TIMESTAMP(3),
  customer_id BIGINT,
  terminal_id BIGINT,
  tx_amount DOUBLE,
  tx_fraud INT,
  tx_during_weekend INT,
  tx_during_night INT,
  customer_id_nb_tx_1day_window BIGINT,
  customer_id_avg_amount_1day_window DOUBLE,
  customer_id_nb_tx_7day_window BIGINT,
  customer_id_avg_amount_7day_window DOUBLE,
  customer_id_nb_tx_30day_window BIGINT,
  customer_id_avg_amount_30day_window DOUBLE,
  terminal_id_nb_tx_1day_window BIGINT,
  terminal_id_risk_1day_window DOUBLE,
  terminal_id_nb_tx_7day_window BIGINT,
  terminal_id_risk_7day_window DOUBLE,
  terminal_id_nb_tx_30day_window BIGINT,
  terminal_id_risk_30day_window DOUBLE,
  PRIMARY KEY (transaction_id) NOT ENFORCED
) WITH (
  'connector' = 'cassandra',
  'hosts' = '${cassandra:-127.0.0.1:9042}',
  'keyspace' = 'fraud',
  'table' = '${features_table:-features}',
  'create-table' = 'true'
);

-- Per customer: how many transactions and what they spent, over the last 1, 7 and 30 days.
CREATE VIEW customer_features AS
SELECT
  transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_fraud,
  CASE WHEN DAYOFWEEK(tx_datetime) IN (1, 7) THEN 1 ELSE 0 END AS tx_during_weekend,
  CASE WHEN HOUR(tx_datetime) <= 6 THEN 1 ELSE 0 END AS tx_during_night,
  COUNT(*) OVER c1 AS customer_id_nb_tx_1day_window,
  AVG(tx_amount) OVER c1 AS customer_id_avg_amount_1day_window,
  COUNT(*) OVER c7 AS customer_id_nb_tx_7day_window,
  AVG(tx_amount) OVER c7 AS customer_id_avg_amount_7day_window,
  COUNT(*) OVER c30 AS customer_id_nb_tx_30day_window,
  AVG(tx_amount) OVER c30 AS customer_id_avg_amount_30day_window
FROM tx_in_${mode:-embedded}
WINDOW
  c1 AS (PARTITION BY customer_id ORDER BY tx_datetime RANGE BETWEEN INTERVAL '86399' SECOND PRECEDING AND CURRENT ROW),
  c7 AS (PARTITION BY customer_id ORDER BY tx_datetime RANGE BETWEEN INTERVAL '604799' SECOND PRECEDING AND CURRENT ROW),
  c30 AS (PARTITION BY customer_id ORDER BY tx_datetime RANGE BETWEEN INTERVAL '2591999' SECOND PRECEDING AND CURRENT ROW);

-- Per terminal: transactions and the share of frauds in the N days before the last 7
-- (the frames of 7 + N days minus those of 7 days).
CREATE VIEW features AS
SELECT
  transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_fraud,
  tx_during_weekend, tx_during_night,
  customer_id_nb_tx_1day_window, customer_id_avg_amount_1day_window,
  customer_id_nb_tx_7day_window, customer_id_avg_amount_7day_window,
  customer_id_nb_tx_30day_window, customer_id_avg_amount_30day_window,
  COUNT(*) OVER t8 - COUNT(*) OVER t7 AS terminal_id_nb_tx_1day_window,
  COALESCE(CAST(SUM(tx_fraud) OVER t8 - SUM(tx_fraud) OVER t7 AS DOUBLE)
           / NULLIF(COUNT(*) OVER t8 - COUNT(*) OVER t7, 0), 0) AS terminal_id_risk_1day_window,
  COUNT(*) OVER t14 - COUNT(*) OVER t7 AS terminal_id_nb_tx_7day_window,
  COALESCE(CAST(SUM(tx_fraud) OVER t14 - SUM(tx_fraud) OVER t7 AS DOUBLE)
           / NULLIF(COUNT(*) OVER t14 - COUNT(*) OVER t7, 0), 0) AS terminal_id_risk_7day_window,
  COUNT(*) OVER t37 - COUNT(*) OVER t7 AS terminal_id_nb_tx_30day_window,
  COALESCE(CAST(SUM(tx_fraud) OVER t37 - SUM(tx_fraud) OVER t7 AS DOUBLE)
           / NULLIF(COUNT(*) OVER t37 - COUNT(*) OVER t7, 0), 0) AS terminal_id_risk_30day_window
FROM customer_features
WINDOW
  t7 AS (PARTITION BY terminal_id ORDER BY tx_datetime RANGE BETWEEN INTERVAL '604799' SECOND PRECEDING AND CURRENT ROW),
  t8 AS (PARTITION BY terminal_id ORDER BY tx_datetime RANGE BETWEEN INTERVAL '691199' SECOND PRECEDING AND CURRENT ROW),
  t14 AS (PARTITION BY terminal_id ORDER BY tx_datetime RANGE BETWEEN INTERVAL '1209599' SECOND PRECEDING AND CURRENT ROW),
  t37 AS (PARTITION BY terminal_id ORDER BY tx_datetime RANGE BETWEEN INTERVAL '3196799' SECOND PRECEDING AND CURRENT ROW);

-- 1. The generator into Kafka (services only).
INSERT INTO tx_topic_${mode:-embedded} SELECT * FROM transactions;

-- 2. The transactions table.
INSERT INTO tx_store_${mode:-embedded} SELECT * FROM tx_in_${mode:-embedded};

-- 3. The features table.
INSERT INTO features_${mode:-embedded} SELECT * FROM features;
