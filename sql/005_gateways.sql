-- 005_gateways.sql - each tenant's accounts at payment gateways. Idempotent.
--
-- credentials_sealed is the credentials JSON ({"api_key", "merchant_account",
-- "webhook_secret", ...}) sealed under the tenant's data key with
-- (tenant, 'vault.gateways', 'credentials_sealed', id) as associated data;
-- tokenctl never prints it back. Lower priority numbers are tried first.

CREATE TABLE IF NOT EXISTS vault.gateways (
    tenant_id           text NOT NULL REFERENCES vault.tenants (id),
    id                  text NOT NULL CHECK (id ~ '^gw_[0-9A-Za-z]{22}$'),
    kind                text NOT NULL CHECK (kind IN ('sandbox', 'stripe', 'adyen')),
    livemode            boolean NOT NULL,
    priority            integer NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 1000),
    base_url            text NOT NULL CHECK (base_url ~ '^https://[^/?#]+$' OR kind = 'sandbox'),
    credentials_sealed  bytea NOT NULL,
    key_version         integer NOT NULL,
    removed_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (kind <> 'sandbox' OR NOT livemode)
);
CREATE INDEX IF NOT EXISTS gateways_active ON vault.gateways (tenant_id, livemode, priority)
    WHERE removed_at IS NULL;

ALTER TABLE vault.gateways ENABLE ROW LEVEL SECURITY;
ALTER TABLE vault.gateways FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON vault.gateways;
CREATE POLICY tenant_isolation ON vault.gateways
    USING (tenant_id = current_setting('tokend.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('tokend.tenant_id', true));
DROP POLICY IF EXISTS owner_all ON vault.gateways;
DO $$ BEGIN
    EXECUTE format('CREATE POLICY owner_all ON vault.gateways TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

GRANT SELECT ON vault.gateways TO tokend_service;
