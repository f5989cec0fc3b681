-- 001_roles.sql - roles and schemas. Idempotent: safe to run again.
--
-- tokend_service   the daemon's login role: no superuser, no BYPASSRLS, only
--                  the grants each later migration gives it.
-- tokend_reporting read-only views for finance jobs (no ciphertexts, no
--                  fingerprints, no secrets).
-- Migrations themselves run as the database owner (tokenctl migrate).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tokend_service') THEN
        CREATE ROLE tokend_service LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tokend_reporting') THEN
        CREATE ROLE tokend_reporting LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$$;

-- Nobody but the owner creates objects in public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS tokend_meta;
CREATE SCHEMA IF NOT EXISTS vault;
CREATE SCHEMA IF NOT EXISTS ledger;
CREATE SCHEMA IF NOT EXISTS audit;
CREATE SCHEMA IF NOT EXISTS reporting;

GRANT USAGE ON SCHEMA tokend_meta TO tokend_service, tokend_reporting;
GRANT SELECT ON tokend_meta.schema_migrations TO tokend_service, tokend_reporting;
GRANT USAGE ON SCHEMA vault, ledger, audit TO tokend_service;
GRANT USAGE ON SCHEMA reporting TO tokend_reporting;
