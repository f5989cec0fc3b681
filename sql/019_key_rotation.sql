-- 019_key_rotation.sql - online key rotation (issue #18). Idempotent.
--
-- Master key: each wrapped tenant key row says which master-key version wraps it
-- (master_version); `tokenctl keys rotate-master` re-wraps the rows in place, one small
-- transaction per tenant, and is resumable because it only takes rows below the target.
--
-- Data key: `tokenctl keys rotate-data` adds version N+1 as 'active' and turns N into
-- 'previous' (it opens older rows, seals nothing new), then re-seals every row of N in
-- bounded batches. tokend holds the active and the previous version, so a row opens whichever
-- of the two it is on (service/vault/auth.c). `keys retire` destroys a version's wrapped keys
-- ('retired', NULLs) only when no row uses it. vault.key_rotations records each rotation
-- so a killed one resumes where it stopped.

ALTER TABLE vault.tenant_keys ADD COLUMN IF NOT EXISTS master_version integer NOT NULL DEFAULT 1
    CHECK (master_version > 0);
-- a new tenant's keys are wrapped by tokenctl's current master key: the newest version
CREATE OR REPLACE FUNCTION vault.master_version_now() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, vault AS $$
    SELECT coalesce(max(master_version), 1) FROM vault.tenant_keys
$$;
REVOKE ALL ON FUNCTION vault.master_version_now() FROM PUBLIC;
ALTER TABLE vault.tenant_keys ALTER COLUMN master_version SET DEFAULT vault.master_version_now();
ALTER TABLE vault.tenant_keys ALTER COLUMN wrapped_dek DROP NOT NULL;
ALTER TABLE vault.tenant_keys ALTER COLUMN wrapped_fpk DROP NOT NULL;
ALTER TABLE vault.tenant_keys DROP CONSTRAINT IF EXISTS tenant_keys_state_check;
ALTER TABLE vault.tenant_keys ADD CONSTRAINT tenant_keys_state_check
    CHECK (state IN ('active', 'previous', 'retired'));
ALTER TABLE vault.tenant_keys DROP CONSTRAINT IF EXISTS tenant_keys_wrapped_present;
ALTER TABLE vault.tenant_keys ADD CONSTRAINT tenant_keys_wrapped_present
    CHECK (state = 'retired' OR (wrapped_dek IS NOT NULL AND wrapped_fpk IS NOT NULL));
-- at most one version that opens older rows while its rows move to the active one
CREATE UNIQUE INDEX IF NOT EXISTS tenant_keys_one_previous
    ON vault.tenant_keys (tenant_id) WHERE state = 'previous';

CREATE TABLE IF NOT EXISTS vault.key_rotations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text REFERENCES vault.tenants (id),       -- NULL for the master key
    kind          text NOT NULL CHECK (kind IN ('master', 'data', 'fingerprint')),
    from_version  integer NOT NULL,
    to_version    integer NOT NULL,
    state         text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
    rows_done     bigint NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    CHECK ((kind = 'master') = (tenant_id IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS key_rotations_one_running
    ON vault.key_rotations (coalesce(tenant_id, '')) WHERE state = 'running';

ALTER TABLE vault.key_rotations ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault.key_rotations FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON vault.key_rotations;
CREATE POLICY tenant_isolation ON vault.key_rotations
    USING (tenant_id = current_setting('tokend.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('tokend.tenant_id', true));
DO $$
BEGIN
    EXECUTE format('DROP POLICY IF EXISTS owner_all ON vault.key_rotations');
    EXECUTE format('CREATE POLICY owner_all ON vault.key_rotations TO %I USING (true) WITH CHECK (true)',
                   current_user);
END
$$;

-- Up to 50 wrapped key pairs (the newest) per master-key version still in use, so tokend can
-- check at start that its key files open some of each version (a wrong or missing file: one
-- line, exit 2). Some, not all: one tenant wrapped by another key (restored from elsewhere,
-- another provider) must not stop every other tenant's service.
DROP FUNCTION IF EXISTS vault.master_key_probe();
CREATE FUNCTION vault.master_key_probe()
RETURNS TABLE (master_version integer, tenant_id text, version integer, wrapped_dek bytea,
               wrapped_fpk bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, vault AS $$
    SELECT p.master_version, p.tenant_id, p.version, p.wrapped_dek, p.wrapped_fpk
      FROM (SELECT k.*, row_number() OVER (PARTITION BY k.master_version
                                           ORDER BY k.created_at DESC, k.tenant_id, k.version) AS n
              FROM vault.tenant_keys k
             WHERE k.state <> 'retired' AND k.wrapped_dek IS NOT NULL) p
     WHERE p.n <= 50
     ORDER BY p.master_version, p.n
$$;
REVOKE ALL ON FUNCTION vault.master_key_probe() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vault.master_key_probe() TO tokend_service;
