-- 012_vault_refs.sql - set-based reference checks for the tokenisation write path
-- (issue #9). Idempotent.
--
-- Why. tokend stores a batch of tokenisations with one statement (tokens.c,
-- token_store_sql), but the two foreign keys on that path were checked row by row:
-- PostgreSQL's RI trigger runs, for every inserted row, its own SPI query (one
-- executor start-up each) that also takes a FOR KEY SHARE lock on the parent row.
-- For vault.tokens (tenant_id) -> vault.tenants that is the one hot tenant row,
-- locked by every batch of both database connections, so it carries a MultiXact.
-- The profile of the tokenise benchmark put these checks at 8-10 % of all CPU.
--
-- What replaces each part of the foreign keys' guarantee:
--
--   child rows refer to a parent that exists
--       An AFTER INSERT ... FOR EACH STATEMENT trigger per child table runs ONE
--       anti-join of the statement's new rows (transition table) against the parent
--       and raises 23503 foreign_key_violation, with PostgreSQL's wording, if any
--       has no parent: the whole statement fails, as a foreign key fails it. It is
--       checked at the end of the statement, like a NOT DEFERRABLE foreign key, so
--       a parent inserted by the same statement (token_store_sql's CTE) counts.
--       INSERT (with ON CONFLICT), COPY and MERGE all fire it.
--         vault.tokens (tenant_id)            -> vault.tenants (id)       tokens_tenant_ref
--         vault.gateway_refs (tenant_id, token_id)
--                                             -> vault.tokens (tenant_id, id)
--                                                                         gateway_refs_token_ref
--       The look-up is SECURITY DEFINER (the owner, whose owner_all policy sees
--       every tenant): tokend_service has no SELECT on vault.tenants at all, and row-
--       level security must not hide a parent that exists. It adds nothing across
--       tenants: the new rows already passed tokend_service's WITH CHECK (their
--       tenant is the current one), and the function only answers "missing or not".
--
--   child rows keep referring to a parent that exists (a child's key never changes)
--       UPDATE of vault.gateway_refs (tenant_id, token_id) and of vault.tokens
--       (tenant_id) is refused by a BEFORE UPDATE OF ... statement trigger: nothing
--       changes them (a token is redacted in place), and a transition table cannot
--       be combined with a column list, so checking them would cost a trigger on
--       every UPDATE. tokend_service's UPDATE grant is also narrowed to the columns
--       tokend updates (tokens.c: redaction; webhooks.c: card updater).
--
--   a parent that has children is not deleted and its key does not change
--       tokend never deletes a tenant or a token (a token is redacted by UPDATE).
--       DELETE and TRUNCATE of vault.tenants and vault.tokens, and UPDATE of
--       vault.tenants (id) and vault.tokens (tenant_id, id), are refused for every
--       role by BEFORE ... FOR EACH STATEMENT triggers (23001 restrict_violation).
--       Since a parent can never go away, a child's check needs no row lock on it.
--       The other tables' foreign keys to vault.tenants and vault.tokens (api_keys,
--       ledger.charges, ...) are left as they are.
--
-- What is not covered, or differs from a foreign key:
--   * the owner (or a superuser) can disable or drop these triggers, as it could drop
--     a foreign key; session_replication_role = replica (superuser) skips both alike;
--   * rows stored while the triggers were disabled are not re-checked when they are
--     enabled again (as with a foreign key's triggers; only adding a key scans);
--   * pg_dump no longer orders tokens before gateway_refs: a data-only restore into a
--     schema that has these triggers needs --disable-triggers (a full restore creates
--     them after the data);
--   * the planner no longer knows the relation (foreign keys refine join estimates),
--     and tools that draw the schema from pg_constraint do not show it.

CREATE OR REPLACE FUNCTION vault.tokens_tenant_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, vault AS $$
DECLARE
    missing text;
BEGIN
    -- LIMIT 1 asks the planner for a fast-start plan: a probe of the parent's primary key per row
    SELECT n.tenant_id INTO missing
      FROM new_tokens n
     WHERE NOT EXISTS (SELECT 1 FROM vault.tenants p WHERE p.id = n.tenant_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert on table "tokens" violates foreign key check "%"', TG_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (tenant_id)=(%s) is not present in table "tenants".', missing),
                  SCHEMA = 'vault', TABLE = 'tokens', CONSTRAINT = TG_NAME;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION vault.tokens_tenant_check() FROM PUBLIC;

CREATE OR REPLACE FUNCTION vault.gateway_refs_token_check() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, vault AS $$
DECLARE
    missing record;
BEGIN
    SELECT n.tenant_id, n.token_id INTO missing
      FROM new_refs n
     WHERE NOT EXISTS (SELECT 1 FROM vault.tokens p
                        WHERE p.tenant_id = n.tenant_id AND p.id = n.token_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert on table "gateway_refs" violates foreign key check "%"', TG_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (tenant_id, token_id)=(%s, %s) is not present in table "tokens".',
                                  missing.tenant_id, missing.token_id),
                  SCHEMA = 'vault', TABLE = 'gateway_refs', CONSTRAINT = TG_NAME;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION vault.gateway_refs_token_check() FROM PUBLIC;

-- TG_ARGV[0]: why, for the error's DETAIL.
CREATE OR REPLACE FUNCTION vault.refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION '% of table "%" is not allowed',
                    CASE TG_OP WHEN 'UPDATE' THEN 'UPDATE of the key' ELSE TG_OP END, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation', DETAIL = TG_ARGV[0],
              SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
END
$$;
REVOKE ALL ON FUNCTION vault.refuse_change() FROM PUBLIC;

-- Children: every inserted row has its parent; a row's reference never changes.
DROP TRIGGER IF EXISTS tokens_tenant_ref ON vault.tokens;
CREATE TRIGGER tokens_tenant_ref AFTER INSERT ON vault.tokens
    REFERENCING NEW TABLE AS new_tokens FOR EACH STATEMENT
    EXECUTE FUNCTION vault.tokens_tenant_check();
DROP TRIGGER IF EXISTS gateway_refs_token_ref ON vault.gateway_refs;
CREATE TRIGGER gateway_refs_token_ref AFTER INSERT ON vault.gateway_refs
    REFERENCING NEW TABLE AS new_refs FOR EACH STATEMENT
    EXECUTE FUNCTION vault.gateway_refs_token_check();
DROP TRIGGER IF EXISTS gateway_refs_key_fixed ON vault.gateway_refs;
CREATE TRIGGER gateway_refs_key_fixed BEFORE UPDATE OF tenant_id, token_id ON vault.gateway_refs
    FOR EACH STATEMENT EXECUTE FUNCTION vault.refuse_change(
        'The token a gateway reference belongs to never changes (sql/012_vault_refs.sql).');

-- Parents: never deleted, their key never changes.
DROP TRIGGER IF EXISTS tenants_no_delete ON vault.tenants;
CREATE TRIGGER tenants_no_delete BEFORE DELETE ON vault.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION vault.refuse_change(
        'Tenants are never deleted: vault.tokens refers to them without a foreign key (sql/012_vault_refs.sql).');
DROP TRIGGER IF EXISTS tenants_no_truncate ON vault.tenants;
CREATE TRIGGER tenants_no_truncate BEFORE TRUNCATE ON vault.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION vault.refuse_change(
        'Tenants are never deleted: vault.tokens refers to them without a foreign key (sql/012_vault_refs.sql).');
DROP TRIGGER IF EXISTS tenants_key_fixed ON vault.tenants;
CREATE TRIGGER tenants_key_fixed BEFORE UPDATE OF id ON vault.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION vault.refuse_change(
        'A tenant''s id never changes: vault.tokens refers to it without a foreign key (sql/012_vault_refs.sql).');
DROP TRIGGER IF EXISTS tokens_no_delete ON vault.tokens;
CREATE TRIGGER tokens_no_delete BEFORE DELETE ON vault.tokens
    FOR EACH STATEMENT EXECUTE FUNCTION vault.refuse_change(
        'Tokens are never deleted, only redacted by UPDATE: vault.gateway_refs refers to them without a foreign key (sql/012_vault_refs.sql).');
DROP TRIGGER IF EXISTS tokens_no_truncate ON vault.tokens;
CREATE TRIGGER tokens_no_truncate BEFORE TRUNCATE ON vault.tokens
    FOR EACH STATEMENT EXECUTE FUNCTION vault.refuse_change(
        'Tokens are never deleted, only redacted by UPDATE: vault.gateway_refs refers to them without a foreign key (sql/012_vault_refs.sql).');
DROP TRIGGER IF EXISTS tokens_key_fixed ON vault.tokens;
CREATE TRIGGER tokens_key_fixed BEFORE UPDATE OF tenant_id, id ON vault.tokens
    FOR EACH STATEMENT EXECUTE FUNCTION vault.refuse_change(
        'A token''s (tenant_id, id) never changes: vault.gateway_refs refers to it without a foreign key (sql/012_vault_refs.sql).');

-- tokend_service updates only these columns (tokens.c: redaction; webhooks.c: the card
-- updater). Revoking the table-wide grant also revokes column grants, so this order
-- gives the same result on every run.
REVOKE UPDATE ON vault.tokens, vault.gateway_refs FROM tokend_service;
GRANT UPDATE (redacted_at, exp_month, exp_year, last4, brand) ON vault.tokens TO tokend_service;
GRANT UPDATE (status, ref_sealed, ref_lookup) ON vault.gateway_refs TO tokend_service;

-- Last, now that the triggers stand in for them: the two foreign keys, whatever their names.
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
              WHERE contype = 'f'
                AND ((conrelid = 'vault.tokens'::regclass AND confrelid = 'vault.tenants'::regclass)
                  OR (conrelid = 'vault.gateway_refs'::regclass AND confrelid = 'vault.tokens'::regclass))
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.tbl, c.conname);
    END LOOP;
END
$$;
