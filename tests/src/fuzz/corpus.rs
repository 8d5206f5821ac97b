//! Valid scripts the mutator starts from: the shipped pipelines and a few handwritten ones
//! covering what they do not (views, HOP, updating aggregates, EXPLAIN, DESCRIBE, file tables).

/// The scripts in `pipelines/`, as shipped.
pub const PIPELINES: &[&str] = &[
    include_str!("../../../pipelines/netflow.sql"),
    include_str!("../../../pipelines/netflow-live.sql"),
    include_str!("../../../pipelines/netflow-cassandra.sql"),
];

/// Handwritten scripts; `{dir}` stands for a scratch directory.
pub const HANDWRITTEN: &[&str] = &[
    "CREATE TABLE events (
  ts TIMESTAMP(3),
  k STRING,
  v BIGINT,
  d DOUBLE,
  ok BOOLEAN,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH ('connector' = 'file', 'path' = '{dir}/in.jsonl', 'format' = 'json');
CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), k STRING, n BIGINT, total BIGINT)
  WITH ('connector' = 'file', 'path' = '{dir}/out.jsonl', 'format' = 'json');
INSERT INTO counts
SELECT window_start, window_end, k, COUNT(*), SUM(v)
FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '5' SECOND))
WHERE ok IS NOT FALSE
GROUP BY window_start, window_end, k
HAVING COUNT(*) > 1;
",
    "SET 'execution.batch-size' = '128';
SET 'update-interval' = '0';
CREATE TABLE flows WITH ('connector' = 'netflow', 'number-of-rows' = '1000', 'seed' = '7');
CREATE VIEW tcp AS SELECT ts, src_ip, bytes_in FROM flows WHERE protocol = 'TCP';
CREATE TABLE per_ip (src_ip STRING, n BIGINT, total BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO per_ip SELECT src_ip, COUNT(*), SUM(bytes_in) FROM tcp GROUP BY src_ip;
EXPLAIN SELECT src_ip, COUNT(*) FROM tcp GROUP BY src_ip;
DESCRIBE tcp;
SHOW TABLES;
SHOW VIEWS;
",
    "CREATE TABLE readings (
  ts TIMESTAMP(3),
  sensor INT,
  temp DECIMAL(6, 2),
  day DATE,
  WATERMARK FOR ts AS ts
) WITH ('connector' = 'file', 'path' = '{dir}/r.csv', 'format' = 'csv', 'csv.delimiter' = ';', 'format.on-error' = 'skip');
SELECT window_start, window_end, sensor,
       AVG(CAST(temp AS DOUBLE)) AS avg_temp,
       MAX(temp) AS max_temp,
       COUNT(DISTINCT day) FILTER (WHERE temp > 20) AS warm_days,
       CASE WHEN MIN(temp) < 0 THEN 'frost' ELSE 'ok' END AS status
FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, sensor;
",
    "CREATE TABLE flows (ts TIMESTAMP(3), src_ip STRING, dst_port INT, bytes_in BIGINT,
  WATERMARK FOR ts AS ts - INTERVAL '500' MILLISECOND)
  WITH ('connector' = 'netflow', 'event-time.rows-per-second' = '100', 'max-out-of-orderness' = '0');
CREATE MATERIALIZED VIEW top WITH ('retention' = '10 MINUTE', 'max-rows' = '1000') AS
SELECT window_start, window_end, src_ip, SUM(bytes_in) AS b
FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '10' SECOND))
WHERE dst_port BETWEEN 1 AND 1024 AND src_ip LIKE '10.%'
GROUP BY window_start, window_end, src_ip;
SELECT * FROM top;
CREATE TABLE alerts (src_ip STRING, b BIGINT, PRIMARY KEY (src_ip) NOT ENFORCED)
  WITH ('connector' = 'print', 'print-identifier' = 'alerts', 'standard-error' = 'true');
INSERT INTO alerts SELECT src_ip, SUM(bytes_in) FROM flows GROUP BY src_ip HAVING SUM(bytes_in) > 1000000;
STOP PIPELINE 1;
SHOW PIPELINES;
",
];

/// Every corpus script, with `{dir}` replaced by `dir`.
pub fn scripts(dir: &str) -> Vec<String> {
    PIPELINES.iter().chain(HANDWRITTEN).map(|s| s.replace("{dir}", dir)).collect()
}
