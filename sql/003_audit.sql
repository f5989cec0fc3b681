-- 003_audit.sql - the append-only, hash-chained audit log. Idempotent.
--
-- Each row's hash = SHA-256(previous row's hash || canonical JSON of the row).
-- A row is chained when its transaction commits: a deferred constraint
-- trigger takes a transaction-scoped advisory lock, gives the row the next
-- chain position (seq) and its hashes. Taking the lock only at commit means
-- a transaction never waits for the chain while it holds other locks, so
-- group-committed batches on several connections cannot deadlock on it.
-- tokend's role may INSERT but never UPDATE, DELETE or TRUNCATE (grants), and
-- `tokenctl audit verify` recomputes the chain in seq order.

CREATE SEQUENCE IF NOT EXISTS audit.events_id_seq;
CREATE SEQUENCE IF NOT EXISTS audit.events_seq;
CREATE TABLE IF NOT EXISTS audit.events (
    id          bigint PRIMARY KEY DEFAULT nextval('audit.events_id_seq'),
    seq         bigint UNIQUE,
    tenant_id   text,
    actor       text NOT NULL,
    action      text NOT NULL,
    object      text,
    request_id  text,
    detail      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    prev_hash   bytea,
    hash        bytea
);

CREATE OR REPLACE FUNCTION audit.row_hash(p_prev bytea, e audit.events)
RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(p_prev || convert_to(jsonb_build_array(
        e.seq, e.id, e.tenant_id, e.actor, e.action, e.object, e.request_id, e.detail,
        to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text, 'UTF8'))
$$;

-- What a caller sends for the chain columns is ignored.
CREATE OR REPLACE FUNCTION audit.stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.id := nextval('audit.events_id_seq');
    NEW.seq := NULL;
    NEW.prev_hash := NULL;
    NEW.hash := NULL;
    NEW.created_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION audit.chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    prev bytea;
    r audit.events;
BEGIN
    PERFORM pg_advisory_xact_lock(7242500002);
    SELECT e.hash INTO prev FROM audit.events e WHERE e.seq IS NOT NULL ORDER BY e.seq DESC LIMIT 1;
    SELECT * INTO r FROM audit.events e WHERE e.id = NEW.id;
    r.seq := nextval('audit.events_seq');
    r.prev_hash := coalesce(prev, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    r.hash := audit.row_hash(r.prev_hash, r);
    UPDATE audit.events e SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash WHERE e.id = NEW.id;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS stamp ON audit.events;
CREATE TRIGGER stamp BEFORE INSERT ON audit.events FOR EACH ROW EXECUTE FUNCTION audit.stamp();
DROP TRIGGER IF EXISTS chain ON audit.events;
CREATE CONSTRAINT TRIGGER chain AFTER INSERT ON audit.events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit.chain();

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
GRANT USAGE ON SEQUENCE audit.events_id_seq TO tokend_service;
