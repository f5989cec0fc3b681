/*
 * tokenctl_main.c - the admin CLI. It talks to PostgreSQL with the owner role
 * (TOKEND_ADMIN_DB or --db) and, where keys are involved, reads the master
 * key file like tokend does.
 */
#include "tokend/admin/admin.h"
#include "tokend/admin/admin_reconcile.h"
#include "tokend/admin/admin_webhook.h"
#include "tokend/store/db.h"
#include "tokend/store/migrate.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2
#define EXIT_FAIL 1

struct ctl {
    const char *db;
    const char *master_key_file;
    const char *master_key_pkcs11;
    const char *master_key_pin_file;
    const char *sql_dir;
    int argc;
    char **argv;
    const char *master_key_previous;
    const char *master_key_previous_pkcs11;
    const char *master_key_previous_pin_file;
};

static void usage_to(FILE *out)
{
    fputs("usage: tokenctl [--db CONNINFO] [--master-key-file FILE |\n"
          "                 --master-key-pkcs11 URI --master-key-pin-file FILE]\n"
          "                [--master-key-previous FILE | --master-key-previous-pkcs11 URI\n"
          "                 [--master-key-previous-pin-file FILE]] [--json] COMMAND ...\n"
          "  migrate [--dir sql]          apply pending migrations\n"
          "  tenant create NAME [--bin 0|6|8] [--cvc-optional]\n"
          "                               create a tenant and its keys; prints its id\n"
          "  tenant list                  list tenants\n"
          "  key create --tenant T (--scopes a,b,... | --publishable --origin URL...)\n"
          "             [--live|--test]   create an API key; prints its secret, once\n"
          "  key list [--tenant T]        list API keys (never their secrets)\n"
          "  key revoke ID                revoke an API key\n"
          "  gateway add --tenant T --kind stripe|adyen|sandbox --credentials-file F\n"
          "             [--priority N] [--base-url URL] [--live|--test]\n"
          "                               add a gateway account; prints its id\n"
          "  gateway list [--tenant T]    list gateway accounts (never credentials)\n"
          "  gateway remove ID            stop using a gateway account\n"
          "  webhook add --tenant T --url URL [--live|--test]\n"
          "                               add an event receiver; prints its secret, once\n"
          "  webhook list [--tenant T]    list event receivers (never their secrets)\n"
          "  webhook replay EVENT         deliver an event again to every receiver\n"
          "  webhook disable|enable --tenant T ENDPOINT\n"
          "                               stop deliveries to a receiver (pending wait), or resume\n"
          "  audit verify [--audit-key-file F] [--audit-pubkey HEX] [--checkpoints FILE]...\n"
          "                               recompute the audit log's hash chain, its block MACs\n"
          "                               and check it against signed checkpoints\n"
          "  audit pubkey [--audit-key-file F]  the checkpoint-signing public key\n"
          "  audit report --since TIME [--until TIME] [--tenant T] [--json]\n"
          "                               what was done, by which key or admin, to which\n"
          "                               tenants' objects (breach scoping)\n"
          "  audit dedup [--minutes N]    per key: de-duplication hits and refusals (default 60)\n"
          "  keys status [--tenant T]     key versions per tenant and the rows using each\n"
          "  keys new-master --out F      the next master key file (fresh KEK, same sub-key root)\n"
          "  keys new-master --pkcs11 URI [--pin-file F]\n"
          "                               the next master key in a token (made there, carrying\n"
          "                               the same sub-key root): file -> token, token -> token\n"
          "  keys rotate-master (--new-master-key-file F | --new-master-key-pkcs11 URI\n"
          "                     [--new-master-key-pin-file F]) [--batch N]\n"
          "                               re-wrap every tenant key under the new master key\n"
          "                               (online, resumable)\n"
          "  keys retire-master --version N\n"
          "                               record that no wrapped key uses master version N\n"
          "  keys rotate-data --tenant T [--batch N] [--pause-ms MS] [--settle-ms MS]\n"
          "                               a new data key; every row re-sealed (online, resumable)\n"
          "  keys rotate-fingerprint --tenant T --yes-break-dedup [same options]\n"
          "                               rotate-data with a new fingerprint key too\n"
          "  keys retire --tenant T --version N\n"
          "                               destroy a version no row uses any more\n"
          "  keys hsm-init                make the master key in the --master-key-pkcs11 token\n"
          "  reconcile --gateway stripe|adyen --file F --tenant T [--live|--test] [--exceptions OUT]\n"
          "                               match a settlement report against the ledger\n"
          "  version                      print the version\n"
          "The connection string comes from --db or TOKEND_ADMIN_DB (owner role); the master\n"
          "key from --master-key-file or TOKEND_MASTER_KEY_FILE, or from a PKCS#11 token:\n"
          "--master-key-pkcs11 (TOKEND_MASTER_KEY_PKCS11) 'pkcs11:token=...;object=...' and\n"
          "--master-key-pin-file (TOKEND_MASTER_KEY_PIN_FILE). While a master rotation runs,\n"
          "the key it replaces: --master-key-previous FILE (TOKEND_MASTER_KEY_PREVIOUS) or\n"
          "--master-key-previous-pkcs11 URI (TOKEND_MASTER_KEY_PREVIOUS_PKCS11) with its PIN in\n"
          "--master-key-previous-pin-file (default: the URI's pin-source, else\n"
          "--master-key-pin-file). T is a tenant id or name.\n"
          "Scopes: tokens:write, tokens:read, charges:write, reports:read, admin (a publishable\n"
          "key gets tokens:create, POST /v1/tokens only).\n"
          "--json (anywhere on the line): the list and create commands and audit report print JSON.\n",
          out);
}

static int usage(void)
{
    usage_to(stderr);
    return EXIT_USAGE;
}

/* A mistyped word gets one line that names it, not the whole usage. */
static int unknown(const char *what, const char *word)
{
    fprintf(stderr, "tokenctl: unknown %s '%s' (see tokenctl --help)\n", what, word);
    return EXIT_USAGE;
}

/* --json may appear anywhere; it is taken out of argv so no command's parser sees it. */
static bool take_json_flag(int *argc, char **argv)
{
    bool json = false;
    int n = 0;
    for (int i = 0; i < *argc; i++) {
        if (i > 0 && strcmp(argv[i], "--json") == 0)
            json = true;
        else
            argv[n++] = argv[i];
    }
    *argc = n;
    return json;
}

/* The commands that print JSON with --json: every list, every create and audit report. */
static bool json_supported(const char *cmd, int argc, char **argv)
{
    static const char *const ok[][2] = {
        {"tenant", "create"}, {"tenant", "list"}, {"key", "create"},  {"key", "list"},
        {"gateway", "add"},   {"gateway", "list"}, {"webhook", "add"}, {"webhook", "list"},
        {"audit", "report"},
    };
    for (size_t i = 0; argc > 0 && i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(cmd, ok[i][0]) == 0 && strcmp(argv[0], ok[i][1]) == 0)
            return true;
    return false;
}

static int connect_or_die(const struct ctl *ctl, PGconn **out)
{
    char why[TOK_DB_WHY_MAX];
    if (ctl->db == NULL || ctl->db[0] == '\0') {
        fprintf(stderr, "tokenctl: no database: set --db or TOKEND_ADMIN_DB\n");
        return EXIT_USAGE;
    }
    if (tok_db_connect(ctl->db, out, why, sizeof why) != TOK_OK) {
        fprintf(stderr, "tokenctl: cannot connect to the database: %s\n", why);
        return EXIT_FAIL;
    }
    return 0;
}

static int cmd_migrate(struct ctl *ctl)
{
    for (int i = 0; i < ctl->argc; i++) {
        if (strcmp(ctl->argv[i], "--dir") == 0 && i + 1 < ctl->argc)
            ctl->sql_dir = ctl->argv[++i];
        else
            return usage();
    }
    PGconn *c = NULL;
    int rc = connect_or_die(ctl, &c);
    if (rc != 0)
        return rc;
    char why[512] = "";
    int applied = 0;
    tok_status st = tok_migrate_apply(c, ctl->sql_dir, &applied, why, sizeof why);
    PQfinish(c);
    if (st != TOK_OK) {
        fprintf(stderr, "tokenctl: migrate: %s\n", why);
        return EXIT_FAIL;
    }
    printf("migrate: %d applied, schema current\n", applied);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "tokenctl: libsodium failed to initialise\n");
        return EXIT_FAIL;
    }
    struct ctl ctl = {getenv("TOKEND_ADMIN_DB"),
                      getenv("TOKEND_MASTER_KEY_FILE"),
                      getenv("TOKEND_MASTER_KEY_PKCS11"),
                      getenv("TOKEND_MASTER_KEY_PIN_FILE"),
                      "sql",
                      0,
                      NULL,
                      getenv("TOKEND_MASTER_KEY_PREVIOUS"),
                      getenv("TOKEND_MASTER_KEY_PREVIOUS_PKCS11"),
                      getenv("TOKEND_MASTER_KEY_PREVIOUS_PIN_FILE")};
    bool json = take_json_flag(&argc, argv);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
            ctl.db = argv[++i];
        else if (strcmp(argv[i], "--master-key-file") == 0 && i + 1 < argc)
            ctl.master_key_file = argv[++i];
        else if (strcmp(argv[i], "--master-key-previous") == 0 && i + 1 < argc)
            ctl.master_key_previous = argv[++i];
        else if (strcmp(argv[i], "--master-key-pkcs11") == 0 && i + 1 < argc)
            ctl.master_key_pkcs11 = argv[++i];
        else if (strcmp(argv[i], "--master-key-pin-file") == 0 && i + 1 < argc)
            ctl.master_key_pin_file = argv[++i];
        else if (strcmp(argv[i], "--master-key-previous-pkcs11") == 0 && i + 1 < argc)
            ctl.master_key_previous_pkcs11 = argv[++i];
        else if (strcmp(argv[i], "--master-key-previous-pin-file") == 0 && i + 1 < argc)
            ctl.master_key_previous_pin_file = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_to(stdout);
            return 0;
        } else if (strcmp(argv[i], "--db") == 0 || strcmp(argv[i], "--master-key-file") == 0 ||
                   strcmp(argv[i], "--master-key-previous") == 0 ||
                   strcmp(argv[i], "--master-key-pkcs11") == 0 ||
                   strcmp(argv[i], "--master-key-pin-file") == 0 ||
                   strcmp(argv[i], "--master-key-previous-pkcs11") == 0 ||
                   strcmp(argv[i], "--master-key-previous-pin-file") == 0)
            return usage();
        else
            return unknown("option", argv[i]);
    }
    if (i >= argc)
        return usage();
    const char *cmd = argv[i];
    ctl.argc = argc - i - 1;
    ctl.argv = argv + i + 1;
    if (strcmp(cmd, "help") == 0) {
        usage_to(stdout);
        return 0;
    }
    if (json && !json_supported(cmd, ctl.argc, ctl.argv)) {
        fprintf(stderr,
                "tokenctl: --json is for the list and create commands and audit report, "
                "not '%s%s%s'\n",
                cmd, ctl.argc > 0 ? " " : "", ctl.argc > 0 ? ctl.argv[0] : "");
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(&ctl);
    struct tok_admin admin = {ctl.db,
                              ctl.master_key_file,
                              json,
                              ctl.master_key_previous,
                              ctl.master_key_pkcs11,
                              ctl.master_key_pin_file,
                              ctl.master_key_previous_pkcs11,
                              ctl.master_key_previous_pin_file};
    if (strcmp(cmd, "tenant") == 0)
        return tok_admin_exit_code(tok_admin_tenant(&admin, ctl.argc, ctl.argv));
    if (strcmp(cmd, "key") == 0)
        return tok_admin_exit_code(tok_admin_key(&admin, ctl.argc, ctl.argv));
    if (strcmp(cmd, "gateway") == 0)
        return tok_admin_exit_code(tok_admin_gateway(&admin, ctl.argc, ctl.argv));
    if (strcmp(cmd, "webhook") == 0)
        return tok_admin_exit_code(tok_admin_webhook(&admin, ctl.argc, ctl.argv));
    if (strcmp(cmd, "reconcile") == 0)
        return tok_admin_exit_code(tok_admin_reconcile(&admin, ctl.argc, ctl.argv));
    if (strcmp(cmd, "keys") == 0)
        return tok_admin_exit_code(tok_admin_keys(&admin, ctl.argc, ctl.argv));
    if (strcmp(cmd, "audit") == 0)
        return tok_admin_exit_code(tok_admin_audit(&admin, ctl.argc, ctl.argv));
    if (strcmp(cmd, "version") == 0) {
        printf("tokenctl %s\n", TOKEND_VERSION);
        return 0;
    }
    return unknown("command", cmd);
}
