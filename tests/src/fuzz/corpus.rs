//! Valid scripts the mutator starts from: the shipped pipelines and a few handwritten ones
//! covering what they do not (views, HOP, CUMULATE, SESSION, OVER, Top-N, updating aggregates,
//! EXPLAIN, DESCRIBE, file tables).

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
    "CREATE TABLE tx (ts TIMESTAMP(3), card STRING, amount DOUBLE, merchant INT,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
  WITH ('connector' = 'file', 'path' = '{dir}/tx.jsonl', 'format' = 'json');
SELECT card, ts, COUNT(*) OVER (PARTITION BY card ORDER BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW) AS n,
  AVG(amount) OVER (PARTITION BY card ORDER BY ts ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS avg5,
  LAG(amount, 1, 0.0) OVER (PARTITION BY card ORDER BY ts) AS previous
FROM tx;
SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY card ORDER BY ts) AS rn FROM tx) WHERE rn = 1;
SELECT * FROM (SELECT card, amount, ROW_NUMBER() OVER (PARTITION BY merchant ORDER BY amount DESC) AS rn FROM tx) WHERE rn <= 3;
CREATE VIEW per_window AS SELECT window_start, window_end, window_time, card, SUM(amount) AS total
FROM TABLE(CUMULATE(TABLE tx, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' HOUR))
GROUP BY window_start, window_end, window_time, card;
SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY total DESC) AS rn
  FROM per_window) WHERE rn <= 2;
SELECT card, window_start, total - LAG(total) OVER (PARTITION BY card ORDER BY window_time) AS change FROM per_window;
SELECT card, window_start, window_end, COUNT(*) FROM TABLE(SESSION(TABLE tx PARTITION BY card, DESCRIPTOR(ts), INTERVAL '10' MINUTE))
GROUP BY card, window_start, window_end;
",
];

/// Every corpus script, with `{dir}` replaced by `dir`.
pub fn scripts(dir: &str) -> Vec<String> {
    PIPELINES.iter().chain(HANDWRITTEN).map(|s| s.replace("{dir}", dir)).collect()
}
