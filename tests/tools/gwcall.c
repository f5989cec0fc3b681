/*
 * gwcall.c - drives one gateway adapter (stripe, adyen) through tok_httpc from the command
 * line and prints each outcome as one JSON line, so tests can exercise the adapters end to
 * end against gwsim before (and besides) going through tokend. Test tooling: test cards only.
 *
 *   gwcall --kind stripe|adyen --base-url https://localhost:PORT --op OP [options]
 *     --op tokenise|charge|capture|void|refund|detach  [--off-session true|false]
 *     --pan DIGITS --exp-month M --exp-year YYYY [--cvc C] [--name N]    (tokenise)
 *     --pm-ref REF (charge)   --charge-ref REF (capture, void, refund)
 *     --amount N --currency C --capture true|false --idempotency-key K
 *     --merchant M --ca-file F --connect-timeout-ms N --timeout-ms N
 *     --repeat N     N calls at once (each with its own idempotency key unless one is given)
 *   The API key comes from the environment (GWCALL_API_KEY), never from argv.
 *   Output: {"outcome":"ok|declined|error|unavailable","code":..,"decline_code":..,"ref":..,
 *            "captured":..}; exit 0 when every call completed (whatever its outcome).
 */
#include "tokend/gateways/gateway.h"
#include "tokend/gateways/registry.h"
#include "tokend/gateways/gateway_wire.h"
#include "tokend/http/httpc.h"
#include "tokend/core/json.h"
#include "tokend/core/log.h"

#include <getopt.h>
#include <h2o.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GWCALL_MAX 64

struct gwcall {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t replies;
    unsigned pending;
};

static struct gwcall g;

static const char *outcome_name(enum tok_gateway_outcome o)
{
    switch (o) {
    case TOK_GW_OK:
        return "ok";
    case TOK_GW_DECLINED:
        return "declined";
    case TOK_GW_ERROR:
        return "error";
    case TOK_GW_UNAVAILABLE:
        return "unavailable";
    default:
        return "unknown";
    }
}

static void on_done(struct tok_gateway_call *call)
{
    char mem[1024];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    struct tok_json_writer w;
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_kstr(&w, "outcome", outcome_name(call->outcome));
    tok_jw_kstr(&w, "code", call->code);
    tok_jw_kstr(&w, "decline_code", call->decline_code[0] != '\0' ? call->decline_code : NULL);
    tok_jw_kstr(&w, "ref", call->ref[0] != '\0' ? call->ref : NULL);
    tok_jw_kbool(&w, "captured", call->captured);
    tok_jw_obj_end(&w);
    if (tok_jw_finish(&w) == TOK_OK)
        printf("%.*s\n", (int)b.len, (const char *)b.data);
    else
        printf("{\"outcome\":\"unprintable\"}\n");
    fflush(stdout);
    g.pending--;
}

static void usage(void)
{
    fprintf(stderr, "usage: gwcall --kind stripe|adyen --base-url URL --op "
                    "tokenise|charge|capture|void|refund|detach [options] (see gwcall.c)\n");
    exit(2);
}

static int parse_int(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < -1000000000L || v > 1000000000L)
        usage();
    return (int)v;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 2;
    const char *kind = NULL, *base = NULL, *op = NULL, *pan = "", *cvc = "", *name = "";
    const char *pm_ref = NULL, *charge_ref = NULL, *currency = "usd", *idem = "", *merchant = "";
    const char *ca = NULL;
    int month = 0, year = 0, repeat = 1;
    long long amount = 0;
    bool capture = true, off_session = true;
    unsigned ct = 0, tt = 0;
    static const struct option lopts[] = {
        {"kind", required_argument, NULL, 'k'},        {"base-url", required_argument, NULL, 'b'},
        {"op", required_argument, NULL, 'o'},          {"pan", required_argument, NULL, 'p'},
        {"exp-month", required_argument, NULL, 'm'},   {"exp-year", required_argument, NULL, 'y'},
        {"cvc", required_argument, NULL, 'c'},         {"name", required_argument, NULL, 'n'},
        {"pm-ref", required_argument, NULL, 'P'},      {"charge-ref", required_argument, NULL, 'C'},
        {"amount", required_argument, NULL, 'a'},      {"currency", required_argument, NULL, 'u'},
        {"capture", required_argument, NULL, 'x'},     {"idempotency-key", required_argument, NULL, 'i'},
        {"merchant", required_argument, NULL, 'M'},    {"ca-file", required_argument, NULL, 'f'},
        {"connect-timeout-ms", required_argument, NULL, 'T'},
        {"timeout-ms", required_argument, NULL, 't'},  {"repeat", required_argument, NULL, 'r'},
        {"off-session", required_argument, NULL, 'O'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case 'k': kind = optarg; break;
        case 'b': base = optarg; break;
        case 'o': op = optarg; break;
        case 'p': pan = optarg; break;
        case 'm': month = parse_int(optarg); break;
        case 'y': year = parse_int(optarg); break;
        case 'c': cvc = optarg; break;
        case 'n': name = optarg; break;
        case 'P': pm_ref = optarg; break;
        case 'C': charge_ref = optarg; break;
        case 'a': amount = parse_int(optarg); break;
        case 'u': currency = optarg; break;
        case 'x': capture = strcmp(optarg, "false") != 0; break;
        case 'i': idem = optarg; break;
        case 'M': merchant = optarg; break;
        case 'f': ca = optarg; break;
        case 'T': ct = (unsigned)parse_int(optarg); break;
        case 't': tt = (unsigned)parse_int(optarg); break;
        case 'r': repeat = parse_int(optarg); break;
        case 'O': off_session = strcmp(optarg, "false") != 0; break;
        default: usage();
        }
    }
    if (kind == NULL || base == NULL || op == NULL || repeat < 1 || repeat > GWCALL_MAX)
        usage();
    const struct tok_gateway_ops *ops = tok_gateway_find(tok_slice_str(kind));
    if (ops == NULL)
        usage();
    enum tok_gateway_op gop;
    if (strcmp(op, "tokenise") == 0)
        gop = TOK_GW_TOKENISE;
    else if (strcmp(op, "charge") == 0)
        gop = TOK_GW_CHARGE;
    else if (strcmp(op, "capture") == 0)
        gop = TOK_GW_CAPTURE;
    else if (strcmp(op, "void") == 0)
        gop = TOK_GW_VOID;
    else if (strcmp(op, "refund") == 0)
        gop = TOK_GW_REFUND;
    else if (strcmp(op, "detach") == 0)
        gop = TOK_GW_DETACH;
    else
        usage();

    static struct tok_gateway_account acct;
    snprintf(acct.id, sizeof acct.id, "gw_gwcall");
    acct.ops = ops;
    snprintf(acct.base_url, sizeof acct.base_url, "%s", base);
    snprintf(acct.merchant_account, sizeof acct.merchant_account, "%s", merchant);
    const char *key = getenv("GWCALL_API_KEY");
    size_t klen = key != NULL ? strlen(key) : 0;
    acct.api_key = sodium_malloc(klen + 1);
    if (acct.api_key == NULL)
        return 2;
    tok_copy(acct.api_key, key != NULL ? key : "", klen + 1);

    struct tok_httpc_config hc = {ca, ct, tt, 0, 0};
    struct tok_httpc *httpc = NULL;
    tok_status st = tok_httpc_new(&hc, &httpc);
    if (st != TOK_OK) {
        fprintf(stderr, "gwcall: cannot start the HTTP client (%s)\n", tok_status_name(st));
        return 2;
    }
    g.loop = h2o_evloop_create();
    g.queue = h2o_multithread_create_queue(g.loop);
    h2o_multithread_register_receiver(g.queue, &g.replies, tok_httpc_on_replies);
    struct tok_gateway_env env = {httpc, &g.replies, NULL};

    struct tok_card_data card;
    memset(&card, 0, sizeof card);
    card.pan = tok_slice_str(pan);
    card.cvc = tok_slice_str(cvc);
    card.name = tok_slice_str(name);
    card.exp_month = month;
    card.exp_year = year;

    static struct tok_gateway_call calls[GWCALL_MAX];
    g.pending = (unsigned)repeat;
    for (int i = 0; i < repeat; i++) {
        struct tok_gateway_call *c = &calls[i];
        c->op = gop;
        c->account = &acct;
        c->env = &env;
        c->card = &card;
        c->pm_ref = pm_ref;
        c->charge_ref = charge_ref;
        c->amount = amount;
        snprintf(c->currency, sizeof c->currency, "%s", currency);
        c->capture = capture;
        c->off_session = off_session;
        snprintf(c->idempotency_key, sizeof c->idempotency_key, "%s", idem);
        c->done = on_done;
        ops->submit(ops, c);
    }
    while (g.pending > 0)
        h2o_evloop_run(g.loop, 1000);

    tok_httpc_free(&httpc);
    h2o_multithread_unregister_receiver(g.queue, &g.replies);
    h2o_multithread_destroy_queue(g.queue);
    h2o_evloop_destroy(g.loop);
    sodium_free(acct.api_key);
    return 0;
}
