-- reporting.sql - what finance jobs may read, and settlement reconciliation
-- runs. Idempotent.
--
-- tokend_reporting reaches only the views below: ids, amounts, currencies,
-- statuses and gateway references. No token fingerprint, ciphertext, sealed
-- reference or secret is in any of them, and the role has no grant on a
-- vault.* or ledger.* table, so a bug in report code cannot read one.
--
-- A view runs with its owner's rights (the migration owner, which has an
-- owner_all policy), so the tenant filter RLS would apply is written into
-- each view. security_barrier keeps a caller's predicates (which may call
-- leaky functions) from running before that filter.

DROP VIEW IF EXISTS reporting.charges;
CREATE VIEW reporting.charges WITH (security_barrier) AS
    SELECT c.id, c.tenant_id, c.livemode, c.amount, c.captured_amount, c.refunded_amount,
           c.currency, c.status, c.gateway, c.gateway_ref, c.invoice_ref, c.created_at
      FROM ledger.charges c
     WHERE c.tenant_id = current_setting('tokend.tenant_id', true);

DROP VIEW IF EXISTS reporting.charge_attempts;
CREATE VIEW reporting.charge_attempts WITH (security_barrier) AS
    SELECT a.charge_id, a.tenant_id, a.attempt, a.gateway, a.outcome, a.code, a.gateway_ref,
           a.created_at
      FROM ledger.charge_attempts a
     WHERE a.tenant_id = current_setting('tokend.tenant_id', true);

DROP VIEW IF EXISTS reporting.refunds;
CREATE VIEW reporting.refunds WITH (security_barrier) AS
    SELECT r.id, r.tenant_id, r.livemode, r.charge_id, r.amount, r.currency, r.status,
           r.gateway, r.gateway_ref, c.invoice_ref, r.created_at
      FROM ledger.refunds r
      JOIN ledger.charges c ON c.tenant_id = r.tenant_id AND c.id = r.charge_id
     WHERE r.tenant_id = current_setting('tokend.tenant_id', true);

REVOKE ALL ON reporting.charges, reporting.charge_attempts, reporting.refunds FROM PUBLIC;
GRANT SELECT ON reporting.charges, reporting.charge_attempts, reporting.refunds TO tokend_reporting;

-- Defence in depth: whatever an earlier release granted, the reporting role
-- holds nothing on the tables themselves.
REVOKE ALL ON ALL TABLES IN SCHEMA vault FROM tokend_reporting;
REVOKE ALL ON ALL TABLES IN SCHEMA ledger FROM tokend_reporting;
REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM tokend_reporting;

CREATE INDEX IF NOT EXISTS charges_gateway_ref ON ledger.charges (tenant_id, gateway_ref)
    WHERE gateway_ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS refunds_gateway_ref ON ledger.refunds (tenant_id, gateway_ref)
    WHERE gateway_ref IS NOT NULL;

-- One settlement file matched against the ledger. result holds the summary
-- (counts, totals, fees and net per currency) once status is 'succeeded'.
CREATE TABLE IF NOT EXISTS ledger.reconciliation_runs (
    tenant_id    text NOT NULL REFERENCES vault.tenants (id),
    id           text NOT NULL CHECK (id ~ '^rec_[0-9A-Za-z]{22}$'),
    livemode     boolean NOT NULL,
    gateway      text NOT NULL CHECK (gateway IN ('stripe', 'adyen')),
    status       text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    period_from  timestamptz,
    period_to    timestamptz,
    result       jsonb,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- Every line that did not match, and every ledger row the file lacks.
CREATE TABLE IF NOT EXISTS ledger.reconciliation_exceptions (
    tenant_id        text NOT NULL,
    run_id           text NOT NULL,
    seq              integer NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('missing_in_ledger', 'missing_in_report',
                         'amount_mismatch', 'currency_mismatch', 'malformed')),
    line             integer,
    reference        text,
    object_id        text,
    report_amount    bigint,
    ledger_amount    bigint,
    report_currency  text,
    ledger_currency  text,
    reason           text,
    PRIMARY KEY (tenant_id, run_id, seq),
    FOREIGN KEY (tenant_id, run_id) REFERENCES ledger.reconciliation_runs (tenant_id, id)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['reconciliation_runs', 'reconciliation_exceptions'] LOOP
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

GRANT SELECT, INSERT, UPDATE ON ledger.reconciliation_runs, ledger.reconciliation_exceptions
    TO tokend_service;
