-- fuzz: hang no answer after 10.0 s
-- fuzz: sql-fuzz --seed 1 --print-case 18929

CREATE MATERIALIZED VIEW mv6 AS
SELECT window_start, window_end, CAST(nullif(295 + flow_id, -219) - CAST(TIMESTAMP '2024-01-01 00:00:00' AS BIGINT) - flow_id AS STRING) AS g2, approx_distinct(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST((CAST(CAST(CAST(CAST(CAST(CAST(CAST(