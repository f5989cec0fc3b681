-- 013_key_collation.sql - the vault's identifier columns compare bytes (COLLATE "C")
-- (issue #9). Idempotent.
--
-- Every index on the tokenise path starts with tenant_id, and the keys are text: tenant
-- and token ids, gateway names, PAN-shaped tokens, all ASCII. Under the database's own
-- collation (C.UTF-8, en_US.UTF-8, ...) PostgreSQL compares two such strings by copying
-- both into NUL-terminated buffers and calling strcoll(), ~20 times per btree insertion,
-- five insertions per token; only the "C" collation compares with memcmp. The benchmark
-- measured PostgreSQL's CPU per stored token at 44-49 us with the database in C.UTF-8 and
-- 41 us in C. For these columns the order of bytes is the only order anyone needs (ids
-- are compared for equality, and listed in creation order, not by name).
--
-- Changing a column's collation rebuilds its indexes (not the table). The row-level
-- security policies and 012's triggers that name these columns are dropped first and made
-- again exactly as they were, from their own definitions in the catalog.

DO $$
DECLARE
    t record;
    defs text[] := '{}';
    d text;
BEGIN
    IF (SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
         WHERE a.attrelid = 'vault.gateway_refs'::regclass AND a.attname = 'gateway') = 'C' THEN
        RETURN; -- done before
    END IF;
    FOR t IN SELECT tg.tgname, tg.tgrelid::regclass AS rel, pg_get_triggerdef(tg.oid) AS def
               FROM pg_trigger tg
              WHERE tg.tgrelid IN ('vault.tokens'::regclass, 'vault.gateway_refs'::regclass)
                AND NOT tg.tgisinternal LOOP
        defs := defs || t.def;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
    END LOOP;
    FOR t IN SELECT pol.polname, pol.polrelid::regclass AS rel,
                    CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                    WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS cmd,
                    CASE WHEN pol.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END AS kind,
                    (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END, ', ')
                       FROM unnest(pol.polroles) r) AS roles,
                    pg_get_expr(pol.polqual, pol.polrelid) AS qual,
                    pg_get_expr(pol.polwithcheck, pol.polrelid) AS chk
               FROM pg_policy pol
              WHERE pol.polrelid IN ('vault.tokens'::regclass, 'vault.gateway_refs'::regclass) LOOP
        defs := defs || format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', t.polname, t.rel,
                               t.kind, t.cmd, t.roles,
                               CASE WHEN t.qual IS NULL THEN '' ELSE ' USING (' || t.qual || ')' END,
                               CASE WHEN t.chk IS NULL THEN '' ELSE ' WITH CHECK (' || t.chk || ')' END);
        EXECUTE format('DROP POLICY %I ON %s', t.polname, t.rel);
    END LOOP;

    ALTER TABLE vault.tokens
        ALTER COLUMN tenant_id TYPE text COLLATE "C",
        ALTER COLUMN id TYPE text COLLATE "C",
        ALTER COLUMN pan_shaped TYPE text COLLATE "C";
    ALTER TABLE vault.gateway_refs
        ALTER COLUMN tenant_id TYPE text COLLATE "C",
        ALTER COLUMN token_id TYPE text COLLATE "C",
        ALTER COLUMN gateway TYPE text COLLATE "C";

    FOREACH d IN ARRAY defs LOOP
        EXECUTE d;
    END LOOP;
END
$$;
