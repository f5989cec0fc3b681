-- 020_charge_actions.sql - customer authentication (3-D Secure, issue #16): a charge the
-- gateway wants authenticated waits in 'requires_action' with the page the customer is sent
-- to, until POST /v1/charges/{id}/complete or a gateway webhook decides it.

ALTER TABLE ledger.charges DROP CONSTRAINT IF EXISTS charges_status_check;
ALTER TABLE ledger.charges ADD CONSTRAINT charges_status_check CHECK (status IN ('pending',
    'requires_action', 'requires_capture', 'succeeded', 'partially_refunded', 'refunded',
    'disputed', 'failed', 'declined', 'canceled'));

ALTER TABLE ledger.charge_attempts DROP CONSTRAINT IF EXISTS charge_attempts_outcome_check;
ALTER TABLE ledger.charge_attempts ADD CONSTRAINT charge_attempts_outcome_check CHECK (outcome IN
    ('succeeded', 'declined', 'error', 'unavailable', 'requires_action'));

-- the gateway's authentication page (Stripe next_action.redirect_to_url.url, Adyen
-- action.url): set while the charge is requires_action, cleared when it is decided
ALTER TABLE ledger.charges ADD COLUMN IF NOT EXISTS next_action_url text
    CHECK (length(next_action_url) <= 1024);
ALTER TABLE ledger.charges DROP CONSTRAINT IF EXISTS charges_next_action_only_waiting;
ALTER TABLE ledger.charges ADD CONSTRAINT charges_next_action_only_waiting
    CHECK (next_action_url IS NULL OR status = 'requires_action');

-- The charge object of events: next_action as GET /v1/charges/{id} shows it.
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
        'next_action', CASE WHEN c.next_action_url IS NOT NULL THEN jsonb_build_object(
            'type', 'redirect_to_url', 'url', c.next_action_url) END,
        'created_at', to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;
