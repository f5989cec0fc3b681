-- 004_ledger.sql - charges, their gateway attempts, refunds and idempotency
-- records. Idempotent. Amounts are integers in the currency's minor unit.
--
-- The refund rule is enforced here, not in C: refunded_amount can never pass
-- captured_amount (CHECK), and a refund reserves its amount with one atomic
-- UPDATE before the gateway is called, so concurrent refunds cannot overshoot.

CREATE TABLE IF NOT EXISTS ledger.charges (
    tenant_id        text NOT NULL REFERENCES vault.tenants (id),
    id               text NOT NULL CHECK (id ~ '^ch_[0-9A-Za-z]{22}$'),
    livemode         boolean NOT NULL,
    token_id         text NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    currency         text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    capture_method   text NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
    status           text NOT NULL CHECK (status IN ('pending', 'requires_capture', 'succeeded',
                         'partially_refunded', 'refunded', 'disputed', 'failed', 'declined', 'canceled')),
    captured_amount  bigint NOT NULL DEFAULT 0 CHECK (captured_amount >= 0 AND captured_amount <= amount),
    refunded_amount  bigint NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0 AND refunded_amount <= captured_amount),
    gateway          text,
    gateway_ref      text,
    failure_code     text,
    decline_code     text,
    description      text CHECK (length(description) <= 500),
    invoice_ref      text CHECK (length(invoice_ref) <= 200),
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, token_id) REFERENCES vault.tokens (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS charges_created ON ledger.charges (tenant_id, livemode, created_at, id);

-- Every call made to a gateway for a charge, failed ones included (failover).
CREATE TABLE IF NOT EXISTS ledger.charge_attempts (
    tenant_id    text NOT NULL,
    charge_id    text NOT NULL,
    attempt      smallint NOT NULL,
    gateway      text NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('succeeded', 'declined', 'error', 'unavailable')),
    code         text,
    gateway_ref  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, charge_id, attempt),
    FOREIGN KEY (tenant_id, charge_id) REFERENCES ledger.charges (tenant_id, id)
);

CREATE TABLE IF NOT EXISTS ledger.refunds (
    tenant_id    text NOT NULL,
    id           text NOT NULL CHECK (id ~ '^re_[0-9A-Za-z]{22}$'),
    livemode     boolean NOT NULL,
    charge_id    text NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     text NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    gateway      text,
    gateway_ref  text,
    failure_code text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, charge_id) REFERENCES ledger.charges (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS refunds_created ON ledger.refunds (tenant_id, livemode, created_at, id);

-- Idempotency-Key records: the first response is replayed for 24 hours.
CREATE TABLE IF NOT EXISTS ledger.idempotency (
    tenant_id     text NOT NULL REFERENCES vault.tenants (id),
    livemode      boolean NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL CHECK (length(request_hash) = 32),
    state         text NOT NULL CHECK (state IN ('in_flight', 'done')),
    status        smallint,
    response      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (tenant_id, livemode, key)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['charges', 'charge_attempts', 'refunds', 'idempotency'] LOOP
        EXECUTE format('ALTER TABLE ledger.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE ledger.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON ledger.%I', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON ledger.%I
                         USING (tenant_id = current_setting('tokend.tenant_id', true))
                         WITH CHECK (tenant_id = current_setting('tokend.tenant_id', true))$p$, t);
        EXECUTE format('DROP POLICY IF EXISTS owner_all ON ledger.%I', t);
        EXECUTE format('CREATE POLICY owner_all ON ledger.%I TO %I USING (true) WITH CHECK (true)',
                       t, current_user);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE ON ledger.charges, ledger.charge_attempts, ledger.refunds TO tokend_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON ledger.idempotency TO tokend_service;
