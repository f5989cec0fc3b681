-- 011_audit_blocks.sql - the audit log chained in blocks, rows never updated (issue #9).
-- Idempotent.
--
-- Until now (003, 009) each row got its chain position by an UPDATE of its own: a second
-- heap tuple, two more btree entries, and an entry in two indexes that only existed to find
-- unchained rows, one plpgsql iteration per row. The benchmark measured that at ~30 us of
-- PostgreSQL CPU per stored token, a third of its whole cost.
--
-- Now a pass hashes the rows it takes (audit.row_digest: SHA-256 of each row's canonical
-- JSON, set-based, in one statement) and appends ONE row to audit.blocks:
--
--     first_id..last_id  the ids it covers; each block starts where the last one ended
--     digests            the row digests in id order (32 bytes each), so verify names the row
--     hash               SHA-256(prev_hash || digests), prev_hash = the previous block's hash
--
-- audit.events rows are never updated again: tokend pays one heap tuple and one btree entry
-- (the primary key) per audit row.
--
-- Which ids a block may cover. An id is taken (nextval) before its transaction commits, so a
-- row with a smaller id can become visible after one with a larger id. A range is closed only
-- when no transaction can add a row to it any more: a pass notes the sequence's last value
-- and the transactions holding a lock on audit.events at that moment (an INSERT takes
-- RowExclusiveLock when it is parsed, before its default takes an id, and keeps it until
-- the transaction ends). Once none of them runs (their virtual xid lock is gone, which
-- happens after their commit is visible), every id up to that value is committed or never
-- will be, and the range up to it is final (chain_state.stable_to). A long transaction that
-- does not write the audit log (an export, a report) holds nothing up. tokend's chainer
-- calls this every 100 ms, so a row is chained within 100-200 ms of its commit; `tokenctl
-- audit verify` waits for the writers it sees and chains everything first. Prepared
-- (two-phase) transactions have no virtual xid: while any exists, nothing is promoted
-- (tokend uses none; max_prepared_transactions defaults to 0).
--
-- Rows chained before this migration keep their per-row chain (seq, prev_hash, hash,
-- audit.row_hash); the first block's prev_hash is the last of those hashes, and
-- chain_state.legacy_to is the highest id among them.

CREATE TABLE IF NOT EXISTS audit.blocks (
    block       bigint PRIMARY KEY CHECK (block > 0),
    first_id    bigint NOT NULL,
    last_id     bigint NOT NULL CHECK (last_id >= first_id),
    n_rows      integer NOT NULL CHECK (n_rows > 0),
    digests     bytea NOT NULL CHECK (length(digests) = 32 * n_rows),
    prev_hash   bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- hashes of hashes and id ranges: no tenant data, and no role but the owner has a grant
REVOKE ALL ON audit.blocks FROM PUBLIC;

CREATE TABLE IF NOT EXISTS audit.chain_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    legacy_to   bigint NOT NULL, -- rows with id <= legacy_to were chained row by row (009)
    chained_to  bigint NOT NULL, -- every row with id <= chained_to is chained
    last_block  bigint NOT NULL DEFAULT 0,
    last_hash   bytea NOT NULL CHECK (length(last_hash) = 32),
    stable_to   bigint NOT NULL, -- no transaction can add a row with id <= stable_to any more
    cand_to     bigint,          -- becomes stable_to once none of cand_vxids runs
    cand_vxids  text[]
);
REVOKE ALL ON audit.chain_state FROM PUBLIC;

-- The canonical form of a row, as the block digests hash it (no seq: blocks are in id order).
CREATE OR REPLACE FUNCTION audit.row_digest(e audit.events) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(convert_to(jsonb_build_array(
        e.id, e.tenant_id, e.actor, e.action, e.object, e.request_id, e.detail,
        to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text, 'UTF8'))
$$;

-- The switch: the row-by-row chain takes what is still pending, under a lock that keeps
-- writers out until this migration commits, and its last hash becomes the blocks' start.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit.chain_state) THEN
        LOCK TABLE audit.events IN EXCLUSIVE MODE;
        IF to_regprocedure('audit.chain_pending(integer, boolean, bigint)') IS NOT NULL THEN
            PERFORM audit.chain_pending(2147483647, true, 0);
        END IF;
        INSERT INTO audit.chain_state (legacy_to, chained_to, last_hash, stable_to)
        SELECT coalesce(max(e.id), 0), coalesce(max(e.id), 0),
               coalesce((SELECT l.hash FROM audit.events l WHERE l.seq IS NOT NULL
                          ORDER BY l.seq DESC LIMIT 1),
                        '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea),
               coalesce(max(e.id), 0)
          FROM audit.events e;
    END IF;
END
$$;

DROP TRIGGER IF EXISTS chain ON audit.events;
DROP FUNCTION IF EXISTS audit.chain();
DROP FUNCTION IF EXISTS audit.chain_pending(integer, boolean, bigint);
DROP INDEX IF EXISTS audit.events_unchained;
-- only the rows chained before this migration have a seq: no index entry for the others
ALTER TABLE audit.events DROP CONSTRAINT IF EXISTS events_seq_key;
CREATE UNIQUE INDEX IF NOT EXISTS events_seq ON audit.events (seq) WHERE seq IS NOT NULL;

-- The next candidate for stable_to: the id sequence's last value, and the transactions
-- (other than the caller's) that hold a lock on audit.events, so may still add a row at or
-- below it.
CREATE OR REPLACE FUNCTION audit.chain_candidate(OUT cand_to bigint, OUT cand_vxids text[])
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
    SELECT coalesce(pg_sequence_last_value('audit.events_id_seq'), 0),
           (SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), '{}') FROM pg_locks l
             WHERE l.locktype = 'relation' AND l.relation = 'audit.events'::regclass
               AND l.mode = 'RowExclusiveLock'
               AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
               AND l.pid IS DISTINCT FROM pg_backend_pid())
$$;
REVOKE ALL ON FUNCTION audit.chain_candidate() FROM PUBLIC;

-- Chains the final range in blocks of at most p_max rows; returns how many rows it chained
-- and the highest id chained. p_wait_ms = 0 (tokend's chainer, every 100 ms): promotes the
-- previous pass's candidate if it is final, chains one block, notes a new candidate; if
-- another pass holds the state, does nothing. p_wait_ms > 0 (verify; tokend at stop): waits
-- for the other pass, then up to p_wait_ms for the transactions running now, and chains
-- every row committed before the call.
CREATE OR REPLACE FUNCTION audit.chain_pending(p_max integer DEFAULT 10000, p_wait_ms integer DEFAULT 0)
RETURNS TABLE (chained integer, high bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    s audit.chain_state;
    deadline timestamptz := clock_timestamp() + make_interval(secs => greatest(p_wait_ms, 0) / 1000.0);
    n integer;
    top bigint;
    d bytea;
    h bytea;
BEGIN
    chained := 0;
    IF p_wait_ms > 0 THEN
        SELECT * INTO s FROM audit.chain_state FOR UPDATE;
    ELSE
        SELECT * INTO s FROM audit.chain_state FOR UPDATE SKIP LOCKED;
    END IF;
    IF NOT FOUND THEN -- another pass is running: it or the next one takes these rows
        high := 0;
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_wait_ms > 0 OR s.cand_to IS NULL THEN
        SELECT c.cand_to, c.cand_vxids INTO s.cand_to, s.cand_vxids FROM audit.chain_candidate() c;
    END IF;
    LOOP
        IF s.cand_to IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_locks l
                            WHERE l.locktype = 'virtualxid' AND l.virtualxid = ANY (s.cand_vxids))
           AND NOT EXISTS (SELECT 1 FROM pg_prepared_xacts) THEN
            s.stable_to := greatest(s.stable_to, s.cand_to);
            s.cand_to := NULL;
            s.cand_vxids := NULL;
        END IF;
        LOOP
            SELECT count(*), max(e.id), string_agg(audit.row_digest(e), ''::bytea ORDER BY e.id)
              INTO n, top, d
              FROM (SELECT * FROM audit.events x WHERE x.id > s.chained_to AND x.id <= s.stable_to
                     ORDER BY x.id LIMIT greatest(p_max, 1)) e;
            EXIT WHEN n = 0;
            h := sha256(s.last_hash || d);
            s.last_block := s.last_block + 1;
            INSERT INTO audit.blocks (block, first_id, last_id, n_rows, digests, prev_hash, hash)
            VALUES (s.last_block, s.chained_to + 1, top, n, d, s.last_hash, h);
            s.chained_to := top;
            s.last_hash := h;
            chained := chained + n;
            EXIT WHEN p_wait_ms <= 0 OR n < p_max;
        END LOOP;
        EXIT WHEN p_wait_ms <= 0 OR s.cand_to IS NULL OR clock_timestamp() >= deadline;
        PERFORM pg_sleep(0.01);
    END LOOP;
    IF s.cand_to IS NULL THEN
        SELECT c.cand_to, c.cand_vxids INTO s.cand_to, s.cand_vxids FROM audit.chain_candidate() c;
    END IF;
    UPDATE audit.chain_state c
       SET chained_to = s.chained_to, last_block = s.last_block, last_hash = s.last_hash,
           stable_to = s.stable_to, cand_to = s.cand_to, cand_vxids = s.cand_vxids
     WHERE c.singleton;
    high := s.chained_to;
    RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION audit.chain_pending(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.chain_pending(integer, integer) TO tokend_service;
