-- 009_write_path.sql - a cheaper write path for tokenisation (issue #9). Idempotent.
--
-- 1. pan_shaped tokens are unique per tenant through a partial index: opaque
--    tokens (pan_shaped NULL, nearly all of them) no longer pay an index entry.
-- 2. The audit chain moves off tokend's commit path:
--
-- 003 chained every row from its own deferred trigger at commit: per row an
-- advisory lock, a look-up of the chain's head, a call of the SQL function
-- audit.row_hash (planned anew on every call) and an UPDATE; and since the
-- lock is held through the commit's WAL flush, the commits of tokend's
-- database threads queued behind each other. Now:
--
--   * audit.chain_pending(max) chains the rows not chained yet, in id order,
--     in one pass (row_hash inlined), under the same lock. What it sees
--     unchained is every committed row not chained yet plus the caller's own
--     (other transactions' uncommitted rows are invisible), so nothing is
--     chained twice and nothing is skipped.
--   * tokend's rows (role tokend_service) are chained by tokend's chainer
--     thread (service/audit_chain.c), its own connection and transaction,
--     every --audit-chain-interval-ms (100): a request never waits for the
--     chain, and a pass covers hundreds of rows. Until then such a row is
--     unchained; tokend_service may only INSERT, so within that window only
--     the database owner could alter it, and `tokenctl audit verify` chains
--     what is pending before it walks.
--   * everyone else's rows (tokenctl, as the owner) are chained at their
--     commit as before, by the deferred trigger, which no longer fires for
--     tokend_service at all (WHEN), and which chains its whole transaction in
--     its first firing (the later firings find their row chained).
--
-- The BEFORE trigger that reset the chain columns (stamp) is replaced by
-- column privileges: tokend's role may insert only the descriptive columns,
-- so id, created_at and the chain columns come from their defaults, and a
-- forged value is refused rather than overwritten.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'tokens_tenant_id_pan_shaped_key'
               AND conrelid = 'vault.tokens'::regclass) THEN
        ALTER TABLE vault.tokens DROP CONSTRAINT tokens_tenant_id_pan_shaped_key;
    END IF;
END
$$;
CREATE UNIQUE INDEX IF NOT EXISTS tokens_pan_shaped ON vault.tokens (tenant_id, pan_shaped)
    WHERE pan_shaped IS NOT NULL;

-- The rows to chain are found through a partial index of the unchained ones, by id.
-- Chaining a row leaves its old version's entry there until vacuum, so a pass that
-- scanned from the start would walk every row chained since the last vacuum; the
-- chainer instead starts a little below the highest id it chained before (p_from), and
-- now and then from 0 for a row whose transaction committed long after it took its id.
CREATE INDEX IF NOT EXISTS events_unchained ON audit.events (id) WHERE seq IS NULL;

ALTER TABLE audit.events ALTER COLUMN created_at SET DEFAULT clock_timestamp();

-- Chains up to p_max unchained rows with id > p_from, in id order; returns how many and
-- the highest id chained (0 when none).
CREATE OR REPLACE FUNCTION audit.chain_pending(p_max integer DEFAULT 10000, p_wait boolean DEFAULT false,
                                               p_from bigint DEFAULT 0)
RETURNS TABLE (chained integer, high bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    prev bytea;
    r audit.events;
BEGIN
    chained := 0;
    high := 0;
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock(7242500002);
    ELSIF NOT pg_try_advisory_xact_lock(7242500002) THEN
        RETURN NEXT; -- another pass is running: it or the next one takes these rows
        RETURN;
    END IF;
    SELECT e.hash INTO prev FROM audit.events e WHERE e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;
    prev := coalesce(prev, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    FOR r IN SELECT * FROM audit.events e WHERE e.seq IS NULL AND e.id > p_from
              ORDER BY e.id LIMIT greatest(p_max, 1) LOOP
        r.seq := nextval('audit.events_seq');
        r.prev_hash := prev;
        -- audit.row_hash(prev, r), inlined: a LANGUAGE sql function is planned on every call
        r.hash := sha256(prev || convert_to(jsonb_build_array(
            r.seq, r.id, r.tenant_id, r.actor, r.action, r.object, r.request_id, r.detail,
            to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text, 'UTF8'));
        UPDATE audit.events e SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash
         WHERE e.id = r.id;
        prev := r.hash;
        chained := chained + 1;
        high := r.id;
    END LOOP;
    RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION audit.chain_pending(integer, boolean, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.chain_pending(integer, boolean, bigint) TO tokend_service;

CREATE OR REPLACE FUNCTION audit.chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit.events e WHERE e.id = NEW.id AND e.seq IS NULL) THEN
        PERFORM audit.chain_pending(2147483647, true, 0);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS chain ON audit.events;
CREATE CONSTRAINT TRIGGER chain AFTER INSERT ON audit.events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (current_user <> 'tokend_service')
    EXECUTE FUNCTION audit.chain();

DROP TRIGGER IF EXISTS stamp ON audit.events;
DROP FUNCTION IF EXISTS audit.stamp();

REVOKE INSERT ON audit.events FROM tokend_service;
GRANT INSERT (tenant_id, actor, action, object, request_id, detail) ON audit.events TO tokend_service;
