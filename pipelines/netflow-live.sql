-- Network flows into live tables, watched in the web console and queried over Flight SQL while
-- the job runs.
--   streamsql -f pipelines/netflow-live.sql --http --flight
-- then open http://127.0.0.1:8080/ (the pipelines, a live chart of flows per type, a query box);
-- Flight SQL serves on 127.0.0.1:50051.
-- then, from Python (pip install adbc-driver-flightsql pyarrow):
--   import adbc_driver_flightsql.dbapi as flight_sql
--   with flight_sql.connect("grpc://127.0.0.1:50051") as conn, conn.cursor() as cur:
--       cur.execute("SELECT * FROM src_activity ORDER BY flows DESC LIMIT 10")
--       print(cur.fetch_arrow_table().to_pandas())
--
-- The generator runs in real time (2000 flows/s) and never ends; Ctrl-C stops it.

SET 'parallelism.default' = '2';
-- Updating results (GROUP BY without a window) reach live tables at most twice a second per key.
SET 'update-interval' = '500 ms';

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
  'rows-per-second' = '2000',
  'max-out-of-orderness' = '800',
  'seed' = '2016'
);

-- Windowed results append; the last hour of event time is kept. The console draws a line of
-- flows per second for each flow type.
CREATE MATERIALIZED VIEW flow_counts WITH (
  'retention' = '1 HOUR',
  'chart' = 'line', 'chart.x' = 'window_start', 'chart.y' = 'flows', 'chart.series' = 'flow_type'
) AS
SELECT window_start, window_end, flow_type, COUNT(*) AS flows, SUM(bytes_in) AS bytes_in
FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND))
GROUP BY window_start, window_end, flow_type;

-- An updating aggregate: one row per source address, changed in place; drawn as a bar per
-- address of its flows.
CREATE MATERIALIZED VIEW src_activity WITH ('chart' = 'bar', 'chart.x' = 'src_ip', 'chart.y' = 'flows') AS
SELECT src_ip, COUNT(*) AS flows, SUM(bytes_in) AS bytes_in, COUNT(DISTINCT dst_ip) AS unq_dst_ip
FROM flows
GROUP BY src_ip;

-- A live sink table declared like any other, upserted by its primary key.
CREATE TABLE protocol_bytes (
  protocol STRING,
  flows BIGINT,
  avg_bytes_in DOUBLE,
  PRIMARY KEY (protocol) NOT ENFORCED
) WITH ('connector' = 'live', 'chart' = 'bar', 'chart.y' = 'avg_bytes_in');

INSERT INTO protocol_bytes
SELECT protocol, COUNT(*), AVG(bytes_in) FROM flows GROUP BY protocol;
