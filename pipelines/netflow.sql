-- Network flows (non-VPN 2016 traffic), on the built-in generator: no external services.
--   streamsql -f pipelines/netflow.sql
-- (a) flows per flow type per 5-second window; (b) average incoming bytes of HTTP and DNS flows
-- (chosen by destination port) per 5-second window. Both print to stdout.

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
  'number-of-rows' = '60000',          -- one minute of event time at 1000 flows/s; remove for an endless stream
  'event-time.rows-per-second' = '1000',
  'max-out-of-orderness' = '800',
  'seed' = '2016'
);

CREATE TABLE flow_counts (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  flow_type STRING,
  flows BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'flow_counts');

CREATE TABLE web_dns_bytes (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  service STRING,
  flows BIGINT,
  avg_bytes_in DOUBLE
) WITH ('connector' = 'print', 'print-identifier' = 'web_dns_bytes');

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
