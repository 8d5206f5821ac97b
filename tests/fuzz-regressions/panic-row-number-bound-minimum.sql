-- fuzz: panic "attempt to subtract with overflow" at sql/src/planner/over.rs (x < -9223372036854775808
-- fuzz: read as a ROW_NUMBER bound rn < N took N - 1); found by sql-fuzz --seed 4242, reduced.
CREATE TABLE src3 (
) WITH ('connector' = 'netflow', 'event-time.rows-per-second' = '1000');
CREATE TABLE sink9 (
) WITH ('connector' = 'flight', 'endpoint' = 'grpc://127.0.0.1:50052', 'path' = 'a/b');
INSERT INTO sink9
SELECT FROM TABLE(TUMBLE(TABLE src3, DESCRIPTOR(ts), INTERVAL '2' HOUR))
GROUP BY window_start, flow_type
HAVING SUM(((CAST(703 AS DOUBLE)))) < -9223372036854775808;
