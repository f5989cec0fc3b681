-- 018_recon_owner.sql - a reconciliation run belongs to the tokend process that started it,
-- and a run whose process is gone is failed, not left 'running' forever (issue #15,
-- finding 12). Idempotent.
--
-- Ownership is a PostgreSQL advisory lock, not a heartbeat: each tokend process picks a
-- random 63-bit key at start-up and holds pg_advisory_lock(key) on a connection of its own
-- (finance/recon_owner.c) for as long as it lives; every run it starts records that key in
-- `owner`. PostgreSQL drops a session's locks when the session ends, and the session ends
-- when the process dies (kill -9 included: the kernel closes its socket). So "is the owner
-- alive?" is exactly "is its lock held?", which pg_try_advisory_xact_lock(owner) answers
-- without a clock, a timeout or a guess; several tokend processes on one database each
-- reap only runs whose owner is gone, never a live neighbour's. The key is random and never
-- reused, so a new process cannot be mistaken for a dead one.

ALTER TABLE ledger.reconciliation_runs ADD COLUMN IF NOT EXISTS owner bigint;

CREATE INDEX IF NOT EXISTS reconciliation_runs_running ON ledger.reconciliation_runs (owner)
    WHERE status = 'running';

-- Fails every running run whose owner's lock is free (or that has no owner: rows from before
-- this migration), except p_self's (the caller holds its own key: a try-lock of it would
-- succeed). Each one gets result {"error": "interrupted by restart"}, finished_at, and an
-- audit row 'reconciliation.interrupted'. Returns how many. Runs across tenants, so it is
-- SECURITY DEFINER (the owner's owner_all policy); it takes no argument a caller could use
-- to reach a run it does not own the right to fail.
CREATE OR REPLACE FUNCTION ledger.reap_reconciliation_runs(p_self bigint)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, ledger, audit AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT x.tenant_id, x.id, x.owner FROM ledger.reconciliation_runs x
              WHERE x.status = 'running' AND x.owner IS DISTINCT FROM p_self
              ORDER BY x.owner, x.tenant_id, x.id
              FOR UPDATE SKIP LOCKED LOOP
        -- a transaction-scoped try: released at commit or rollback, so a failed pass can
        -- never leave this session holding a dead owner's key
        IF r.owner IS NOT NULL AND NOT pg_try_advisory_xact_lock(r.owner) THEN
            CONTINUE; -- its process is alive
        END IF;
        UPDATE ledger.reconciliation_runs x
           SET status = 'failed', finished_at = now(),
               result = jsonb_build_object('error', 'interrupted by restart')
         WHERE x.tenant_id = r.tenant_id AND x.id = r.id AND x.status = 'running';
        INSERT INTO audit.events (tenant_id, actor, action, object, detail)
        VALUES (r.tenant_id, 'tokend', 'reconciliation.interrupted', r.id,
                jsonb_build_object('reason', 'interrupted by restart', 'owner', r.owner));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION ledger.reap_reconciliation_runs(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.reap_reconciliation_runs(bigint) TO tokend_service;
