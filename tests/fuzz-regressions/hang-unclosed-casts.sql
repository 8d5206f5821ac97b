-- fuzz: hang 20 unclosed CASTs take 23 s to parse in a debug build, and twice as long per level more
-- fuzz: reduced by hand from the two hang-*.sql files beside it
SELECT CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(CAST(1
