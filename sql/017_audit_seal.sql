-- 017_audit_seal.sql - the audit blocks keyed (issue #18). Idempotent.
--
-- sql/011 chains the audit log in blocks with plain SHA-256: a superuser who rewrites a row
-- can recompute every later digest and hash, and `tokenctl audit verify` sees a sound chain.
-- Each block now also gets a MAC under a key the database never holds (the audit key file,
-- keyring.h), computed by tokend (vault/audit_seal.c) after the block is chained:
--
--     mac(n) = BLAKE2b-256(audit MAC key, "tokend:v1:audit-block" || block || first_id ||
--                          last_id || hash(n) || mac(n-1))      (mac(0) = 32 zero bytes)
--
-- and tokend appends a line signed with Ed25519 (the key is outside the database too) per
-- sealed block to a checkpoint file the operator ships elsewhere. The MAC column is only a
-- convenience for verify between checkpoints: whoever rewrites blocks can set it to NULL,
-- but not to a value that verifies, and not the checkpoints that were shipped away.

ALTER TABLE audit.blocks ADD COLUMN IF NOT EXISTS mac bytea CHECK (mac IS NULL OR length(mac) = 32);

-- The oldest blocks without a MAC, in order, and the MAC of the block before the first.
CREATE OR REPLACE FUNCTION audit.blocks_to_seal(p_max integer)
RETURNS TABLE (block bigint, first_id bigint, last_id bigint, hash bytea, prev_mac bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
    SELECT b.block, b.first_id, b.last_id, b.hash,
           (SELECT p.mac FROM audit.blocks p WHERE p.block = b.block - 1)
      FROM audit.blocks b WHERE b.mac IS NULL ORDER BY b.block LIMIT greatest(p_max, 1)
$$;
REVOKE ALL ON FUNCTION audit.blocks_to_seal(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.blocks_to_seal(integer) TO tokend_service;

-- Stores MACs (hex) for blocks that have none; a MAC once set is never replaced here.
CREATE OR REPLACE FUNCTION audit.seal_blocks(p_blocks bigint[], p_macs text[])
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
    WITH s AS (
        UPDATE audit.blocks b SET mac = decode(m.mac, 'hex')
          FROM unnest(p_blocks, p_macs) AS m(block, mac)
         WHERE b.block = m.block AND b.mac IS NULL
        RETURNING 1)
    SELECT count(*)::integer FROM s
$$;
REVOKE ALL ON FUNCTION audit.seal_blocks(bigint[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.seal_blocks(bigint[], text[]) TO tokend_service;
