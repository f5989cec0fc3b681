-- 002_vault.sql - tenants, their wrapped keys, API keys, tokens and the
-- encrypted gateway references. Idempotent.
--
-- Row-level security: every table with tenant data has tenant_id and a policy
-- that admits only rows of the tenant named by the transaction-local setting
-- tokend.tenant_id (set by tokend per job with set_config(..., true)). FORCE
-- makes it apply to the table owner too, except through the SECURITY DEFINER
-- functions below, which are the only doors across tenants.

CREATE TABLE IF NOT EXISTS vault.tenants (
    id            text PRIMARY KEY CHECK (id ~ '^ten_[0-9A-Za-z]{22}$'),
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    bin_mode      smallint NOT NULL DEFAULT 6 CHECK (bin_mode IN (0, 6, 8)),
    cvc_optional  boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Data key (DEK) and fingerprint key (FPK), each XChaCha20-Poly1305-wrapped by
-- the master key with the tenant id and version as associated data.
CREATE TABLE IF NOT EXISTS vault.tenant_keys (
    tenant_id     text NOT NULL REFERENCES vault.tenants (id),
    version       integer NOT NULL CHECK (version > 0),
    wrapped_dek   bytea NOT NULL,
    wrapped_fpk   bytea NOT NULL,
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS tenant_keys_one_active
    ON vault.tenant_keys (tenant_id) WHERE state = 'active';

-- Only a keyed hash of each API key's secret is stored.
CREATE TABLE IF NOT EXISTS vault.api_keys (
    id            text PRIMARY KEY CHECK (id ~ '^key_[0-9A-Za-z]{22}$'),
    tenant_id     text NOT NULL REFERENCES vault.tenants (id),
    secret_hash   bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    prefix        text NOT NULL CHECK (prefix IN ('sk_live_', 'sk_test_', 'pk_live_', 'pk_test_')),
    hint          text NOT NULL,
    publishable   boolean NOT NULL,
    livemode      boolean NOT NULL,
    scopes        text[] NOT NULL,
    origins       text[] NOT NULL DEFAULT '{}',
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT publishable OR scopes = ARRAY['tokens:write'])
);

CREATE TABLE IF NOT EXISTS vault.tokens (
    tenant_id     text NOT NULL REFERENCES vault.tenants (id),
    id            text NOT NULL CHECK (id ~ '^tok_[0-9A-Za-z]{22}$'),
    livemode      boolean NOT NULL,
    format        text NOT NULL CHECK (format IN ('opaque', 'pan_shaped')),
    pan_shaped    text CHECK (pan_shaped ~ '^[0-9]{12,19}$'),
    fingerprint   bytea NOT NULL CHECK (length(fingerprint) = 32),
    brand         text NOT NULL,
    last4         text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    bin           text CHECK (bin ~ '^[0-9]{6}([0-9]{2})?$'),
    exp_month     smallint NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year      smallint NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    key_version   integer NOT NULL,
    expires_at    timestamptz,
    redacted_at   timestamptz,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, pan_shaped)
);
CREATE INDEX IF NOT EXISTS tokens_fingerprint
    ON vault.tokens (tenant_id, livemode, fingerprint) WHERE redacted_at IS NULL;

-- Each gateway's own payment-method reference, sealed under the tenant DEK
-- with (tenant, table, column, token:gateway) as associated data. NULL once
-- the token is redacted.
CREATE TABLE IF NOT EXISTS vault.gateway_refs (
    tenant_id     text NOT NULL,
    token_id      text NOT NULL,
    gateway       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('active', 'failed', 'destroyed')),
    ref_sealed    bytea,
    key_version   integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, token_id, gateway),
    FOREIGN KEY (tenant_id, token_id) REFERENCES vault.tokens (tenant_id, id)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'tenant_keys', 'api_keys', 'tokens', 'gateway_refs'] LOOP
        EXECUTE format('ALTER TABLE vault.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE vault.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON vault.%I', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON vault.%I
                         USING (%I = current_setting('tokend.tenant_id', true))
                         WITH CHECK (%I = current_setting('tokend.tenant_id', true))$p$,
                       t, CASE WHEN t = 'tenants' THEN 'id' ELSE 'tenant_id' END,
                       CASE WHEN t = 'tenants' THEN 'id' ELSE 'tenant_id' END);
    END LOOP;
END
$$;

-- The owner (migrations, tokenctl) manages every tenant: give it a policy of
-- its own instead of BYPASSRLS, so tokend's role can never take that path.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'tenant_keys', 'api_keys', 'tokens', 'gateway_refs'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS owner_all ON vault.%I', t);
        EXECUTE format('CREATE POLICY owner_all ON vault.%I TO %I USING (true) WITH CHECK (true)',
                       t, current_user);
    END LOOP;
END
$$;

-- API-key lookup before the tenant is known: the one door across tenants.
-- Returns the key's tenant, scopes, origins and the tenant's active wrapped keys.
CREATE OR REPLACE FUNCTION vault.authenticate(p_hash bytea)
RETURNS TABLE (key_id text, tenant_id text, publishable boolean, livemode boolean,
               scopes text[], origins text[], revoked boolean, bin_mode smallint,
               cvc_optional boolean, key_version integer, wrapped_dek bytea, wrapped_fpk bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, vault AS $$
    SELECT k.id, k.tenant_id, k.publishable, k.livemode, k.scopes, k.origins,
           k.revoked_at IS NOT NULL, t.bin_mode, t.cvc_optional,
           tk.version, tk.wrapped_dek, tk.wrapped_fpk
      FROM vault.api_keys k
      JOIN vault.tenants t ON t.id = k.tenant_id
      JOIN vault.tenant_keys tk ON tk.tenant_id = k.tenant_id AND tk.state = 'active'
     WHERE k.secret_hash = p_hash
$$;
REVOKE ALL ON FUNCTION vault.authenticate(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vault.authenticate(bytea) TO tokend_service;

-- Keys for a token's key version (decrypting older references after rotation).
GRANT SELECT ON vault.tenant_keys TO tokend_service;
GRANT SELECT, INSERT, UPDATE ON vault.tokens TO tokend_service;
GRANT SELECT, INSERT, UPDATE ON vault.gateway_refs TO tokend_service;
