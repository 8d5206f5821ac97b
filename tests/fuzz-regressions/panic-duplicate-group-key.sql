-- fuzz: panic index out of bounds: the len is 1 but the index is 1 at arrow-schema/src/schema.rs:375:10 (GROUP BY the same key twice)
-- fuzz: reported by hand; fixed by grouping by the distinct keys, as DataFusion's aggregate schema does
CREATE TABLE flows WITH ('connector' = 'netflow', 'number-of-rows' = '1000');
SELECT src_ip FROM flows GROUP BY src_ip, src_ip;
