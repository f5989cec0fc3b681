-- 009_audit_chain_per_transaction.sql - the audit chain costs one pass per
-- transaction instead of a full pass per row (issue #9). Idempotent.
--
-- 003 chained each row from its own deferred trigger: an advisory lock, a
-- look-up of the chain's head, a call of the SQL function audit.row_hash
-- (planned anew on every call) and an UPDATE, for every row. A group-committed
-- batch inserts hundreds of rows in one transaction, so now the first firing
-- at commit chains every row the transaction inserted, in id order, in one
-- loop, and records the highest id it chained in a transaction-local setting;
-- the later firings see their row is covered and return. A row inserted after
-- that (SET CONSTRAINTS ... IMMEDIATE mid-transaction) has a higher id and
-- starts another pass. Forging the setting only leaves rows unchained, which
-- `tokenctl audit verify` reports as a break: the chain stays tamper-evident.
--
-- The BEFORE trigger that reset the chain columns (stamp) is replaced by
-- column privileges: tokend's role may insert only the descriptive columns,
-- so id, created_at and the chain columns always come from their defaults
-- and the chain, and a forged value is refused rather than overwritten.

CREATE INDEX IF NOT EXISTS events_unchained ON audit.events (id) WHERE seq IS NULL;

ALTER TABLE audit.events ALTER COLUMN created_at SET DEFAULT clock_timestamp();

CREATE OR REPLACE FUNCTION audit.chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    done bigint := coalesce(nullif(current_setting('tokend.audit_chained', true), ''), '0')::bigint;
    prev bytea;
    r audit.events;
BEGIN
    IF NEW.id <= done THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7242500002);
    SELECT e.hash INTO prev FROM audit.events e WHERE e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;
    prev := coalesce(prev, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    -- other transactions' uncommitted rows are invisible, committed ones are chained:
    -- what is left unchained is this transaction's
    FOR r IN SELECT * FROM audit.events e WHERE e.seq IS NULL ORDER BY e.id LOOP
        r.seq := nextval('audit.events_seq');
        r.prev_hash := prev;
        -- audit.row_hash(prev, r), inlined: a LANGUAGE sql function is planned on every call
        r.hash := sha256(prev || convert_to(jsonb_build_array(
            r.seq, r.id, r.tenant_id, r.actor, r.action, r.object, r.request_id, r.detail,
            to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text, 'UTF8'));
        UPDATE audit.events e SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash
         WHERE e.id = r.id;
        prev := r.hash;
        done := greatest(done, r.id);
    END LOOP;
    PERFORM set_config('tokend.audit_chained', done::text, true);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS stamp ON audit.events;
DROP FUNCTION IF EXISTS audit.stamp();

REVOKE INSERT ON audit.events FROM tokend_service;
GRANT INSERT (tenant_id, actor, action, object, request_id, detail) ON audit.events TO tokend_service;
