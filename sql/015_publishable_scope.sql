-- 015_publishable_scope.sql - a publishable key's one scope is tokens:create (issue #15).
-- Idempotent.
--
-- Publishable keys (pk_) sit in web pages, where any script can read them. They used to
-- carry tokens:write, which also allows DELETE /v1/tokens/{id}: a page's script could redact
-- a customer's saved card and read its display data in the answer. tokens:create allows
-- POST /v1/tokens only (the card element's GETs need no scope). Existing publishable keys
-- are moved to it, and the CHECK that pinned them to tokens:write now pins them to it.
--
-- Also: the de-duplication figures `tokenctl audit dedup` reads (token.deduplicated and
-- token.dedup_limited rows of the last N minutes, per key) get a partial index, so the query an operator
-- alerts on stays cheap on a large audit log; other audit rows are not indexed by it.

DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT con.conname FROM pg_constraint con
              WHERE con.conrelid = 'vault.api_keys'::regclass AND con.contype = 'c'
                AND pg_get_constraintdef(con.oid) LIKE '%publishable%' LOOP
        EXECUTE format('ALTER TABLE vault.api_keys DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;

UPDATE vault.api_keys SET scopes = ARRAY['tokens:create']
 WHERE publishable AND scopes IS DISTINCT FROM ARRAY['tokens:create'];

ALTER TABLE vault.api_keys ADD CONSTRAINT api_keys_publishable_scopes
    CHECK (NOT publishable OR scopes = ARRAY['tokens:create']);

CREATE INDEX IF NOT EXISTS events_dedup_created ON audit.events (created_at)
    WHERE action IN ('token.deduplicated', 'token.dedup_limited');
