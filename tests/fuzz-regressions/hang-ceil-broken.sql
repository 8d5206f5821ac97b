-- fuzz: hang 30 levels of ceil( closed, with an error at the innermost level: over 5 s in a release build, twice as long per level more
-- fuzz: written by hand from what sql-fuzz --seed 1 --statements 1000000 (release) found
CREATE TABLE t (ts TIMESTAMP(3), v BIGINT, WATERMARK FOR ts AS ts) WITH ('connector' = 'netflow');
SELECT ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(ceil(v +)))))))))))))))))))))))))))))) FROM t;
