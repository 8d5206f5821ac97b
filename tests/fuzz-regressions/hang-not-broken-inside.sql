-- fuzz: hang 20 NOT ( levels, closed, with an error in the middle: time doubles per level
-- fuzz: written by hand after hang-unclosed-casts.sql
SELECT NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (1 +))))))))))))))))))))
