-- fuzz: hang 30 levels of ARRAY[ left open: over 5 s in a release build, twice as long per level more
-- fuzz: written by hand from what sql-fuzz --seed 1 --statements 1000000 (release) found
CREATE TABLE t (ts TIMESTAMP(3), v BIGINT, WATERMARK FOR ts AS ts) WITH ('connector' = 'netflow');
SELECT ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[ARRAY[v FROM t;
