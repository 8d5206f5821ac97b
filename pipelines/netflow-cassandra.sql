-- Network flows into Apache Cassandra.
--   scripts/cassandra.sh start
--   streamsql -f pipelines/netflow-cassandra.sql
-- (a) flows per flow type per 5-second window; (b) average incoming bytes of HTTP and DNS flows
-- (chosen by destination port) per 5-second window. Tables are created in keyspace `netflow`
-- if missing; rows are upserts keyed by window, so running the job again rewrites the same rows.

SET 'parallelism.default' = '2';

CREATE TABLE flows (
  ts TIMESTAMP(3),
  src_ip STRING,
  dst_ip STRING,
  dst_port INT,
  protocol STRING,
  flow_type STRING,
  bytes_in BIGINT,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'netflow',
  'number-of-rows' = '300000',          -- five minutes of event time at 1000 flows/s
  'event-time.rows-per-second' = '1000',
  'max-out-of-orderness' = '800',
  'seed' = '2016'
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
  'table' = 'flow_counts',
  'create-table' = 'true'
);

CREATE TABLE web_dns_bytes (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  service STRING,
  flows BIGINT,
  avg_bytes_in DOUBLE,
  PRIMARY KEY (service, window_start) NOT ENFORCED
) WITH (
  'connector' = 'cassandra',
  'hosts' = '127.0.0.1:9042',
  'keyspace' = 'netflow',
  'table' = 'web_dns_bytes',
  'create-table' = 'true'
);

INSERT INTO flow_counts
SELECT window_start, window_end, flow_type, COUNT(*) AS flows
FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY window_start, window_end, flow_type;

INSERT INTO web_dns_bytes
SELECT window_start, window_end,
       CASE WHEN dst_port = 53 THEN 'dns' ELSE 'http' END AS service,
       COUNT(*) AS flows,
       AVG(bytes_in) AS avg_bytes_in
FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND))
WHERE dst_port IN (80, 53)
GROUP BY window_start, window_end, CASE WHEN dst_port = 53 THEN 'dns' ELSE 'http' END;
