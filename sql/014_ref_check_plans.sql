-- 014_ref_check_plans.sql - the reference checks of sql/012 probe the parent's primary key
-- whatever the statistics say (issue #9). Idempotent.
--
-- A trigger function's query plan is made once per connection and kept until the tables'
-- statistics change. Made on a young database (tables never analysed, a few hundred rows),
-- the anti-join of the new rows against vault.tokens may be planned as a scan of the whole
-- parent table, and stay so until autovacuum's first ANALYZE: on a fresh database, three
-- closed-loop runs of 30,000 tokens went 20k, 16k, 10k/s (17k, 12k, 18k/s the second
-- time) as vault.tokens grew, and 22-27k/s with this (session 3).
-- A primary-key probe per new row is the right plan at every size, so these two functions
-- are planned without sequential scans.

ALTER FUNCTION vault.tokens_tenant_check() SET enable_seqscan = off;
ALTER FUNCTION vault.gateway_refs_token_check() SET enable_seqscan = off;
