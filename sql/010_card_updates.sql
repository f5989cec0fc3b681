-- 010_card_updates.sql - card-updater webhooks and endpoint disabling (issue #6). Idempotent.
--
-- vault.gateway_refs.ref_lookup  keyed BLAKE2b-256 of the gateway's reference under a
--                                per-tenant lookup key (keyring.c,
--                                tok_tenant_keys_ref_lookup): a card-updater event
--                                names the gateway's payment method, and this finds
--                                its token without unsealing every ref_sealed. The
--                                key does not change with the tenant key version, so
--                                a reference stored before a rotation still matches.
--                                NULL for rows stored before this migration (their
--                                reference is only sealed) and once destroyed.
-- ledger.gateway_events.token_id the token a card-updater event matched.
-- vault.token_object()           the token as token.updated events carry it.

ALTER TABLE vault.gateway_refs ADD COLUMN IF NOT EXISTS ref_lookup bytea
    CHECK (length(ref_lookup) = 32);
CREATE INDEX IF NOT EXISTS gateway_refs_lookup ON vault.gateway_refs (tenant_id, gateway, ref_lookup)
    WHERE ref_lookup IS NOT NULL;

ALTER TABLE ledger.gateway_events ADD COLUMN IF NOT EXISTS token_id text;

-- Card data never reaches an event: only what GET /v1/tokens/{id} shows of the card
-- (brand, last 4, expiry), no fingerprint, BIN or PAN-shaped value.
CREATE OR REPLACE FUNCTION vault.token_object(t vault.tokens) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', t.id, 'object', 'token', 'livemode', t.livemode, 'brand', t.brand,
        'last4', t.last4, 'exp_month', t.exp_month, 'exp_year', t.exp_year,
        'created_at', to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

-- Finance reads keep out of the vault (008): token events are not reported.
CREATE OR REPLACE VIEW reporting.events WITH (security_barrier) AS
    SELECT e.id, e.tenant_id, e.livemode, e.type, e.data - 'token' AS data, e.created_at
      FROM ledger.events e
     WHERE e.tenant_id = current_setting('tokend.tenant_id', true)
       AND e.type NOT LIKE 'token.%'
     ORDER BY e.created_at, e.id;
