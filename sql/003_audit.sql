-- 003_audit.sql - the append-only, hash-chained audit log. Idempotent.
--
-- Each row's hash = SHA-256(previous row's hash || canonical JSON of the row).
-- Inserts take a transaction-scoped advisory lock, so rows are chained in
-- commit order; tokend's role may INSERT but never UPDATE, DELETE or
-- TRUNCATE (grants), and `tokenctl audit verify` recomputes the chain.

-- seq comes from the trigger, under the chain lock, so seq order is chain order
-- and there are no gaps from a column default drawn before the lock.
CREATE SEQUENCE IF NOT EXISTS audit.events_seq;
CREATE TABLE IF NOT EXISTS audit.events (
    seq         bigint PRIMARY KEY,
    tenant_id   text,
    actor       text NOT NULL,
    action      text NOT NULL,
    object      text,
    request_id  text,
    detail      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL
);

CREATE OR REPLACE FUNCTION audit.row_hash(p_prev bytea, e audit.events)
RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(p_prev || convert_to(jsonb_build_array(
        e.seq, e.tenant_id, e.actor, e.action, e.object, e.request_id, e.detail,
        to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text, 'UTF8'))
$$;

CREATE OR REPLACE FUNCTION audit.chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE prev bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(7242500002);
    SELECT e.hash INTO prev FROM audit.events e ORDER BY e.seq DESC LIMIT 1;
    NEW.seq := nextval('audit.events_seq');
    NEW.created_at := clock_timestamp();
    NEW.prev_hash := coalesce(prev, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    NEW.hash := audit.row_hash(NEW.prev_hash, NEW);
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS chain ON audit.events;
CREATE TRIGGER chain BEFORE INSERT ON audit.events FOR EACH ROW EXECUTE FUNCTION audit.chain();

ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.events FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_insert ON audit.events;
CREATE POLICY tenant_insert ON audit.events FOR INSERT TO tokend_service
    WITH CHECK (tenant_id IS NULL OR tenant_id = current_setting('tokend.tenant_id', true));
DROP POLICY IF EXISTS owner_all ON audit.events;
DO $$ BEGIN
    EXECUTE format('CREATE POLICY owner_all ON audit.events TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

REVOKE ALL ON audit.events FROM tokend_service;
GRANT INSERT ON audit.events TO tokend_service;
