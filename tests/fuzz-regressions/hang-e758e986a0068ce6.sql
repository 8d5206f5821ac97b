-- fuzz: hang no answer after 10.0 s
-- fuzz: sql-fuzz --seed 2 --print-case 39963
;
CREATE TABLE sink2 (
  ts TIMESTAMP(3),
  price TIMESTAMP(3),
  note DATE
) WITH ('connector' = 'live', 'retention' = '1 HOUR');
EXPLAIN INSERT INTO sink2 SELECT * FROM src1;
EXPLAIN SELECT abs(924) AS c3, -length('x') AS c4, CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(