-- 016_key_notify.sql - a change to an API key reaches every tokend at once (issue #15,
-- finding 8). Idempotent.
--
-- Each tokend loop thread caches principals (service/vault/auth.c). Before this, a revoked
-- key kept working until its cached copy expired (up to 3 s; 2.87 s was measured). Now every
-- UPDATE or DELETE of a row of vault.api_keys, by any role and any path (tokenctl key revoke,
-- psql), notifies channel tokend_keys with the key's id when its transaction commits; every
-- tokend process LISTENs there on a connection of its own (service/store/listen.c) and marks
-- that key's cached principals stale on all its threads. The payload is the key id only:
-- neither a secret nor its hash.

CREATE OR REPLACE FUNCTION vault.api_keys_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_notify('tokend_keys', OLD.id);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION vault.api_keys_notify() FROM PUBLIC;

DROP TRIGGER IF EXISTS api_keys_notify ON vault.api_keys;
CREATE TRIGGER api_keys_notify AFTER UPDATE OR DELETE ON vault.api_keys
    FOR EACH ROW EXECUTE FUNCTION vault.api_keys_notify();
