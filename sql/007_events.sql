-- 007_events.sql - gateway webhooks in, signed events out (issue #6). Idempotent.
--
-- ledger.gateway_events     every verified inbound gateway event, once per
--                           (tenant, gateway account, gateway event id): the
--                           primary key is the de-duplication. payload holds only
--                           the fields tokend uses (never card data).
-- ledger.events             normalised outbound events (evt_...), written in the
--                           same transaction as the state change they describe.
-- ledger.webhook_endpoints  the tenant's receivers; secret_sealed is the signing
--                           secret sealed under the tenant DEK with
--                           (tenant, 'ledger.webhook_endpoints', 'secret_sealed', id).
-- ledger.deliveries         the outbox: one row per event x endpoint.
-- ledger.delivery_attempts  every try, kept.
--
-- The SECURITY DEFINER functions at the end are the only doors across tenants:
-- the webhook route knows only the gateway account id, and the delivery thread
-- serves every tenant.

CREATE TABLE IF NOT EXISTS ledger.gateway_events (
    tenant_id         text NOT NULL REFERENCES vault.tenants (id),
    gateway_id        text NOT NULL,
    gateway_event_id  text NOT NULL CHECK (length(gateway_event_id) BETWEEN 1 AND 255),
    gateway           text NOT NULL CHECK (gateway IN ('sandbox', 'stripe', 'adyen')),
    livemode          boolean NOT NULL,
    type              text NOT NULL CHECK (length(type) BETWEEN 1 AND 100),
    gateway_ref       text CHECK (length(gateway_ref) <= 255),
    charge_id         text,
    applied           boolean NOT NULL DEFAULT false,
    outcome           text NOT NULL CHECK (outcome IN ('applied', 'not_applied', 'unmatched', 'ignored')),
    from_status       text,
    to_status         text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    payload           jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, gateway_id, gateway_event_id),
    FOREIGN KEY (tenant_id, gateway_id) REFERENCES vault.gateways (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS gateway_events_charge ON ledger.gateway_events (tenant_id, charge_id);

-- Events match charges by the gateway's own reference.
CREATE INDEX IF NOT EXISTS charges_gateway_ref ON ledger.charges (tenant_id, gateway_ref)
    WHERE gateway_ref IS NOT NULL;

CREATE TABLE IF NOT EXISTS ledger.events (
    tenant_id   text NOT NULL REFERENCES vault.tenants (id),
    id          text NOT NULL CHECK (id ~ '^evt_[0-9A-Za-z]{22}$'),
    livemode    boolean NOT NULL,
    type        text NOT NULL CHECK (type ~ '^[a-z_]+(\.[a-z_]+)+$'),
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS events_created ON ledger.events (tenant_id, livemode, created_at, id);

CREATE TABLE IF NOT EXISTS ledger.webhook_endpoints (
    tenant_id      text NOT NULL REFERENCES vault.tenants (id),
    id             text NOT NULL CHECK (id ~ '^we_[0-9A-Za-z]{22}$'),
    livemode       boolean NOT NULL,
    url            text NOT NULL CHECK (url ~ '^https?://[^[:space:]]+$' AND length(url) <= 500),
    secret_sealed  bytea NOT NULL,
    key_version    integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE IF NOT EXISTS ledger.deliveries (
    tenant_id        text NOT NULL,
    id               text NOT NULL CHECK (id ~ '^dlv_[0-9A-Za-z]{22}$'),
    event_id         text NOT NULL,
    endpoint_id      text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    deadline_at      timestamptz NOT NULL DEFAULT now() + interval '3 days',
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, event_id, endpoint_id),
    FOREIGN KEY (tenant_id, event_id) REFERENCES ledger.events (tenant_id, id),
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES ledger.webhook_endpoints (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON ledger.deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS ledger.delivery_attempts (
    tenant_id    text NOT NULL,
    delivery_id  text NOT NULL,
    attempt      integer NOT NULL,
    http_status  integer,
    error        text,
    duration_ms  integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, delivery_id, attempt),
    FOREIGN KEY (tenant_id, delivery_id) REFERENCES ledger.deliveries (tenant_id, id)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['gateway_events', 'events', 'webhook_endpoints', 'deliveries',
                             'delivery_attempts'] LOOP
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

GRANT SELECT, INSERT, UPDATE ON ledger.gateway_events, ledger.events, ledger.webhook_endpoints,
    ledger.deliveries, ledger.delivery_attempts TO tokend_service;

-- A new outbox row wakes the delivery thread (LISTEN tokend_deliveries); NOTIFY is
-- delivered at commit, so the thread never sees an uncommitted row.
CREATE OR REPLACE FUNCTION ledger.deliveries_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tokend_deliveries', '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS deliveries_notify ON ledger.deliveries;
CREATE TRIGGER deliveries_notify AFTER INSERT ON ledger.deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.deliveries_notify();

-- The outbound event document, as sent and as signed.
CREATE OR REPLACE FUNCTION ledger.event_body(e ledger.events) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', e.id, 'object', 'event', 'type', e.type,
                              'livemode', e.livemode,
                              'created', extract(epoch FROM e.created_at)::bigint,
                              'data', jsonb_build_object('object', e.data))::text
$$;

-- The charge object of events (the same fields GET /v1/charges/{id} shows, but
-- the attempts list).
CREATE OR REPLACE FUNCTION ledger.charge_object(c ledger.charges) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', c.id, 'object', 'charge', 'livemode', c.livemode, 'token', c.token_id,
        'amount', c.amount, 'currency', c.currency, 'capture_method', c.capture_method,
        'status', c.status, 'amount_captured', c.captured_amount,
        'amount_refunded', c.refunded_amount, 'gateway', c.gateway,
        'gateway_reference', c.gateway_ref, 'failure_code', c.failure_code,
        'decline_code', c.decline_code, 'description', c.description,
        'invoice_ref', c.invoice_ref,
        'created_at', to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

-- The webhook route's lookup, before the tenant is known: the account named in
-- the URL and the tenant keys its credentials were sealed with.
CREATE OR REPLACE FUNCTION vault.gateway_for_webhook(p_id text)
RETURNS TABLE (tenant_id text, kind text, livemode boolean, credentials_sealed bytea,
               key_version integer, wrapped_dek bytea, wrapped_fpk bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, vault AS $$
    SELECT g.tenant_id, g.kind, g.livemode, g.credentials_sealed, g.key_version,
           tk.wrapped_dek, tk.wrapped_fpk
      FROM vault.gateways g
      JOIN vault.tenant_keys tk ON tk.tenant_id = g.tenant_id AND tk.version = g.key_version
     WHERE g.id = p_id AND g.removed_at IS NULL
$$;
REVOKE ALL ON FUNCTION vault.gateway_for_webhook(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vault.gateway_for_webhook(text) TO tokend_service;

-- The delivery thread takes due rows of every tenant. Each taken row is leased
-- (next_attempt_at moves p_lease_s ahead and attempts counts this try), so a
-- crash mid-flight only delays the row; SKIP LOCKED lets several tokend
-- processes share the outbox.
CREATE OR REPLACE FUNCTION ledger.deliveries_claim(p_limit integer, p_lease_s integer)
RETURNS TABLE (tenant_id text, delivery_id text, event_id text, attempt integer, url text,
               secret_sealed bytea, endpoint_id text, key_version integer, wrapped_dek bytea,
               wrapped_fpk bytea, body text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, ledger, vault AS $$
    WITH due AS (
        SELECT d.tenant_id, d.id FROM ledger.deliveries d
          JOIN ledger.webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND e.disabled_at IS NULL
         ORDER BY d.next_attempt_at
         LIMIT p_limit
           FOR UPDATE OF d SKIP LOCKED),
    upd AS (
        UPDATE ledger.deliveries d
           SET next_attempt_at = now() + make_interval(secs => p_lease_s),
               attempts = d.attempts + 1, updated_at = now()
          FROM due WHERE d.tenant_id = due.tenant_id AND d.id = due.id
        RETURNING d.tenant_id, d.id, d.event_id, d.endpoint_id, d.attempts)
    SELECT upd.tenant_id, upd.id, upd.event_id, upd.attempts, e.url, e.secret_sealed,
           e.id, e.key_version, tk.wrapped_dek, tk.wrapped_fpk, ledger.event_body(ev)
      FROM upd
      JOIN ledger.webhook_endpoints e ON e.tenant_id = upd.tenant_id AND e.id = upd.endpoint_id
      JOIN ledger.events ev ON ev.tenant_id = upd.tenant_id AND ev.id = upd.event_id
      JOIN vault.tenant_keys tk ON tk.tenant_id = e.tenant_id AND tk.version = e.key_version
$$;
REVOKE ALL ON FUNCTION ledger.deliveries_claim(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.deliveries_claim(integer, integer) TO tokend_service;

-- Records one try: 2xx delivers; otherwise the row waits p_retry_s (chosen by the
-- caller: exponential backoff with jitter) unless that passes its deadline, when
-- it fails for good.
CREATE OR REPLACE FUNCTION ledger.delivery_record(p_tenant text, p_delivery text, p_attempt integer,
                                                  p_http_status integer, p_error text,
                                                  p_duration_ms integer, p_retry_s double precision)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, ledger AS $$
DECLARE
    ok boolean := p_http_status BETWEEN 200 AND 299;
    st text;
BEGIN
    INSERT INTO ledger.delivery_attempts (tenant_id, delivery_id, attempt, http_status, error, duration_ms)
    VALUES (p_tenant, p_delivery, p_attempt, p_http_status, left(p_error, 200), greatest(p_duration_ms, 0))
    ON CONFLICT DO NOTHING;
    UPDATE ledger.deliveries d
       SET status = CASE WHEN ok THEN 'delivered'
                         WHEN now() + make_interval(secs => p_retry_s) > d.deadline_at THEN 'failed'
                         ELSE 'pending' END,
           next_attempt_at = now() + make_interval(secs => CASE WHEN ok THEN 0 ELSE p_retry_s END),
           last_status = p_http_status, last_error = left(p_error, 200),
           delivered_at = CASE WHEN ok THEN now() ELSE d.delivered_at END, updated_at = now()
     WHERE d.tenant_id = p_tenant AND d.id = p_delivery AND d.status = 'pending'
    RETURNING d.status INTO st;
    RETURN st;
END
$$;
REVOKE ALL ON FUNCTION ledger.delivery_record(text, text, integer, integer, text, integer, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.delivery_record(text, text, integer, integer, text, integer, double precision) TO tokend_service;
