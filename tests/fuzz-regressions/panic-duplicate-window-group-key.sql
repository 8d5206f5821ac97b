-- fuzz: panic index out of bounds: the len is 3 but the index is 3 at arrow-schema/src/schema.rs:375:10 (windowed GROUP BY the same key twice)
-- fuzz: variant of panic-duplicate-group-key.sql over a window TVF
CREATE TABLE flows (ts TIMESTAMP(3), src_ip STRING, WATERMARK FOR ts AS ts) WITH ('connector' = 'netflow', 'number-of-rows' = '1000');
SELECT window_start, window_end, src_ip FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY window_start, window_end, src_ip, src_ip;
