-- fuzz: panic called `Option::unwrap()` on a `None` value at arrow-select/src/filter.rs:168:32 (least() of constants folded at plan time, from sql/src/functions/conditional.rs while it was being written)
-- fuzz: sql-fuzz --seed 3 --print-case 0, reduced by hand
CREATE TABLE src1 (ts TIMESTAMP(3), v BIGINT, WATERMARK FOR ts AS ts) WITH ('connector' = 'file', 'path' = '/tmp/streamsql-fuzz/src1.json', 'format' = 'json');
SELECT 3 % least(19.66, 133.92) FROM src1;
SELECT AVG(CASE WHEN TRUE THEN 358.26 WHEN v > 856 THEN 166.17 END - length('dns') % least(19.66, 133.92)) FROM TABLE(TUMBLE(TABLE src1, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY window_end, v;
