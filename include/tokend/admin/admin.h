/*
 * admin.h - tokenctl's commands for tenants, API keys and the audit chain.
 *
 * The commands run with the owner role (the role that ran the migrations, or
 * the superuser in tests), so vault's forced row-level security admits them
 * through the owner_all policy. Every statement is parameterised; bytea goes
 * over the wire in binary. Each command that changes the vault writes its
 * audit event in the same statement, so a change without its event (or the
 * reverse) cannot be committed.
 *
 * Output contract (scripts rely on it): `tenant create` prints the tenant id,
 * `key create` prints the secret, each followed by one newline and nothing
 * else on stdout. Errors and notes are single lines on stderr starting with
 * "tokenctl: ". `audit verify` prints its verdict on stdout.
 */
#ifndef TOKEND_ADMIN_H
#define TOKEND_ADMIN_H

#include "tokend/core/common.h"
#include "tokend/vault/audit_seal.h"
#include "tokend/http/origin.h"
#include "tokend/vault/keyring.h"

#include <libpq-fe.h>

#define TOK_ADMIN_EXIT_OK 0
#define TOK_ADMIN_EXIT_FAIL 1
#define TOK_ADMIN_EXIT_USAGE 2

#define TOK_ADMIN_NAME_CHARS_MAX 100 /* vault.tenants.name CHECK */
#define TOK_ADMIN_NAME_BYTES_MAX 400 /* 100 characters of up to 4 UTF-8 bytes */
#define TOK_ADMIN_SCOPES_MAX 5       /* the number of known scopes */
#define TOK_ADMIN_SCOPE_LIST_MAX 128 /* "tokens:write,tokens:read,...": every scope once */
#define TOK_ADMIN_SCOPES_IN_MAX 256  /* longest --scopes argument accepted */
#define TOK_ADMIN_ORIGINS_MAX 16 /* --origin may be given this many times */
#define TOK_ADMIN_ORIGIN_LIST_MAX (TOK_ADMIN_ORIGINS_MAX * (TOK_ORIGIN_MAX + 1))
#define TOK_ADMIN_AUDIT_FETCH 10000        /* rows per FETCH while verifying the chain */
#define TOK_ADMIN_AUDIT_FETCH_BLOCKS 16    /* blocks (up to 10,000 rows each) per FETCH */
#define TOK_ADMIN_AUDIT_BLOCK_ROWS 10000   /* rows per block that verify chains first */
#define TOK_ADMIN_AUDIT_CHAIN_WAIT_MS 10000 /* how long verify waits for transactions in flight */
#define TOK_ADMIN_AUDIT_HASH_LEN 32 /* SHA-256 */

/** Where the commands find the database and the master key (both borrowed). */
struct tok_admin {
    const char *db;              /* conninfo for the owner role; secret, never printed */
    const char *master_key_file; /* path; NULL when not given */
    bool json;                   /* --json: list and create commands print JSON (admin_json.h) */
    const char *master_key_previous; /* path during a master rotation (keyring.h); NULL: none */
    const char *master_key_pkcs11;   /* RFC 7512 URI instead of the file; NULL when not given */
    const char *master_key_pin_file; /* the token's PIN file; NULL when not given */
    /* the previous version in a token during a master rotation, and its PIN file (NULL: the
     * URI's pin-source, else master_key_pin_file); NULL when not given */
    const char *master_key_previous_pkcs11;
    const char *master_key_previous_pin_file;
};

/**
 * `tenant create NAME [--bin 0|6|8] [--cvc-optional]` and `tenant list`.
 * argv (borrowed) holds the words after "tenant". Prints as the file comment says.
 * TOK_ERR_INPUT: bad command line (usage printed). TOK_ERR_CONFLICT: the name is taken.
 * TOK_ERR_IO: master key file refused. TOK_ERR_DB, TOK_ERR_CRYPTO, TOK_ERR_NOMEM,
 * TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_admin_tenant(const struct tok_admin *a, int argc, char **argv);

/**
 * `key create --tenant T (--scopes a,b | --publishable --origin URL...) [--live|--test]`,
 * `key list [--tenant T]` and `key revoke ID`. argv (borrowed) holds the words after "key".
 * The secret is printed once on stdout and wiped; only its keyed hash is stored.
 * TOK_ERR_INPUT: bad command line, scope or origin. TOK_ERR_NOTFOUND: no such tenant or key.
 * TOK_ERR_CONFLICT: the key is already revoked. TOK_ERR_IO: master key file refused.
 * TOK_ERR_DB, TOK_ERR_CRYPTO, TOK_ERR_NOMEM, TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_admin_key(const struct tok_admin *a, int argc, char **argv);

/**
 * `audit verify`: chains every committed row first (audit.chain_pending), then, in one
 * read-only snapshot, walks the rows chained one by one before sql/011 in seq order and the
 * blocks after them in order, recomputing every hash and row digest (sql/011). Prints
 * "audit: N events, chain intact" (plus how many newer rows are not chained yet, if any) or
 * "audit: chain broken at seq|event|block N: ..." on stdout. TOK_ERR_CRYPTO: the chain is
 * broken. TOK_ERR_INPUT: bad command line. TOK_ERR_DB, TOK_ERR_INTERNAL.
 */
TOK_MUST_CHECK tok_status tok_admin_audit(const struct tok_admin *a, int argc, char **argv);

/**
 * `keys status [--tenant T]`: per tenant and key version, its state and how many tokens,
 * sealed gateway references, gateway accounts and webhook endpoints use it, the master-key
 * version that wraps it and the last rotation that touched it ("data 1->2 done", or "-")
 * (tab-separated, with a header line). The rotation subcommands are admin_rotate.h's.
 * TOK_ERR_INPUT, TOK_ERR_NOTFOUND (tenant), TOK_ERR_DB.
 */
TOK_MUST_CHECK tok_status tok_admin_keys(const struct tok_admin *a, int argc, char **argv);

/** tokenctl's exit code for a command's status: 0 ok, 2 usage (TOK_ERR_INPUT), else 1. */
int tok_admin_exit_code(tok_status st);

/**
 * Checks a comma-separated scope list and appends it to out without duplicates, in the
 * order given, comma-separated (no NUL). Scopes: tokens:write, tokens:read, charges:write,
 * reports:read, admin. Nothing is appended on failure.
 * TOK_ERR_INPUT: empty list, empty element, unknown scope, longer than
 * TOK_ADMIN_SCOPES_IN_MAX. TOK_ERR_BOUNDS: out lacks room.
 */
TOK_MUST_CHECK tok_status tok_admin_scopes_parse(struct tok_slice list, struct tok_buf *out);

/**
 * Checks a tenant name: 1..TOK_ADMIN_NAME_CHARS_MAX characters (UTF-8 code points counted
 * by their lead bytes; PostgreSQL validates the encoding itself) and no control character,
 * so `tenant list` stays one row per line. TOK_ERR_INPUT otherwise.
 */
TOK_MUST_CHECK tok_status tok_admin_tenant_name_check(struct tok_slice name);

/** State of an audit chain walk: rows seen so far, the last hash and what must come next. */
struct tok_audit_walk {
    uint64_t count;
    uint8_t last_hash[TOK_ADMIN_AUDIT_HASH_LEN];
    int64_t next_block, next_id; /* the block walk: the next block's number and first id */
    const char *broken_what;     /* "seq", "event" or "block" when a step fails */
    int64_t broken_at;
    const char *why; /* static text when a step fails, else NULL */
    /* keyed checks (issue #18, audit_seal.h); all optional, all borrowed */
    const struct tok_audit_key *ak;              /* recompute and check block MACs */
    const struct tok_audit_checkpoint *cps;      /* signed checkpoints sorted by block */
    size_t n_cps, cp_next;                       /* how many; the next one to meet */
    uint8_t last_mac[TOK_ADMIN_AUDIT_HASH_LEN];  /* mac(n-1), zeros before block 1 */
    int64_t unsealed_from;                       /* first block without a stored MAC, 0 = none */
    int64_t macs_checked, cps_checked;
};

/** Starts a walk at the beginning of the chain (the first prev_hash must be all zeros). */
void tok_audit_walk_init(struct tok_audit_walk *w);

/**
 * Takes the next row chained one by one (before sql/011), in seq order: its stored
 * prev_hash and hash, and expected, the hash recomputed from its content (audit.row_hash).
 * All slices borrowed. TOK_ERR_CRYPTO with w->broken_what = "seq", w->broken_at = seq and
 * w->why = "previous row missing or altered" when prev_hash is not the previous row's hash
 * (all zeros for the first row), or "row altered" when hash differs from expected (or a
 * hash is not 32 bytes). Hashes are compared in constant time. TOK_ERR_INTERNAL on NULL w.
 */
TOK_MUST_CHECK tok_status tok_audit_walk_step(struct tok_audit_walk *w, int64_t seq,
                                              struct tok_slice prev_hash, struct tok_slice hash,
                                              struct tok_slice expected);

/** The block walk starts after the rows chained one by one: block 1, id legacy_to + 1. */
void tok_audit_walk_blocks_start(struct tok_audit_walk *w, int64_t legacy_to);

/** One row of audit.blocks and what its id range holds now. All slices borrowed. */
struct tok_audit_block {
    int64_t block, first_id, last_id;
    struct tok_slice digests;            /* stored: 32 bytes per row, in id order */
    struct tok_slice prev_hash, hash;    /* stored */
    struct tok_slice now_digests;        /* audit.row_digest of the rows in the range now */
    struct tok_slice now_ids;            /* their ids, 8 bytes big-endian each, in id order */
    struct tok_slice mac;                /* stored MAC (sql/017), empty when not sealed */
};

/**
 * Takes the next block. TOK_ERR_CRYPTO, naming it (w->broken_what = "block"): "block
 * missing" (its number is not the next), "block out of place" (its range does not start
 * where the previous one ended), "previous block missing or altered", "block altered"
 * (hash != SHA-256(prev_hash || digests)); or naming a row ("event", its id): "row altered",
 * "row added", "a row before it is missing"; a row missing at the end of the range names
 * the block ("last row missing"). TOK_ERR_INTERNAL: slices of the wrong shape.
 */
TOK_MUST_CHECK tok_status tok_audit_walk_block(struct tok_audit_walk *w,
                                               const struct tok_audit_block *b);

/*
 * With w->ak set, tok_audit_walk_block also recomputes the block's MAC (audit_seal.h) and
 * fails with "block altered: its MAC does not match (rewritten without the audit key)" when
 * a stored MAC differs, or "block's MAC removed" when a sealed block follows an unsealed one.
 * With w->cps set, every checkpoint naming the block must match its range and hash (and its
 * MAC, with w->ak): "block differs from the signed checkpoint (rewritten)".
 * tok_audit_walk_end then fails with "block named by a signed checkpoint missing" when a
 * checkpoint names a block past the end of the chain.
 */

/**
 * Ends the block walk against audit.chain_state: its last block number and hash must be the
 * last block walked ("block missing": blocks removed from the end). TOK_ERR_CRYPTO.
 */
TOK_MUST_CHECK tok_status tok_audit_walk_end(struct tok_audit_walk *w, int64_t last_block,
                                             struct tok_slice last_hash);

/**
 * `gateway add --tenant T --kind stripe|adyen|sandbox --credentials-file F [--priority N]
 * [--base-url URL] [--live|--test]` (prints the gateway id), `gateway list [--tenant T]`
 * (never credentials), `gateway remove ID`. Credentials are sealed under the tenant's key.
 */
TOK_MUST_CHECK tok_status tok_admin_gateway(const struct tok_admin *a, int argc, char **argv);

/* Shared by the tokenctl command files (admin_*.c). */

#define TOK_ADMIN_TENANT_MAX 64

struct tok_keyring;
struct tok_tenant_keys;

/** One subcommand: `tokenctl <group> <name> ARGS...` runs fn(a, argc, argv) with ARGS. */
struct tok_admin_cmd {
    const char *name;
    tok_status (*fn)(const struct tok_admin *a, int argc, char **argv);
};

/** Runs the subcommand named by argv[0], or usage() when there is none or it is unknown. */
TOK_MUST_CHECK tok_status tok_admin_dispatch(const struct tok_admin *a, int argc, char **argv,
                                             const struct tok_admin_cmd *cmds, size_t n,
                                             tok_status (*usage)(void));

/** Connects with a->db (the owner role); says why on failure. */
TOK_MUST_CHECK tok_status tok_admin_connect(const struct tok_admin *a, PGconn **out);

/** Loads a->master_key_file after hardening the process; says why on failure. */
TOK_MUST_CHECK tok_status tok_admin_keyring(const struct tok_admin *a, struct tok_keyring **out);

/**
 * Resolves a tenant by id or name and opens its active keys: the id goes into tenant, the
 * keys into *out (free with tok_tenant_keys_free), their version into *version. `what`
 * prefixes messages. TOK_ERR_NOTFOUND, TOK_ERR_CRYPTO (another master key), TOK_ERR_DB.
 */
TOK_MUST_CHECK tok_status tok_admin_tenant_keys(PGconn *pg, const struct tok_keyring *kr,
                                                const char *ref, const char *what,
                                                char tenant[TOK_ADMIN_TENANT_MAX],
                                                struct tok_tenant_keys **out, uint32_t *version);

#endif
