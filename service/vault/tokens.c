/*
 * tokens.c - tokenise, read and redact.
 *
 * POST /v1/tokens, in order, on the request's loop thread unless noted:
 *   auth (tokens:write, or a publishable key's tokens:create) -> parse the
 *   body into locked memory and wipe the request body -> validate every
 *   field (422 + code + param), text included as PostgreSQL will store it ->
 *   normalise the PAN, fingerprint it with the tenant's key -> [deduplicate,
 *   secret keys only, within the key's budget (dedup_guard.h): look up the
 *   fingerprint on a DB thread] -> the gateway adapter tokenises -> seal its
 *   reference under the tenant DEK -> wipe PAN/CVC -> one DB job inserts
 *   token, sealed reference and audit event (group-committed) -> 201. A
 *   gateway failure stores nothing.
 *
 * A publishable key never learns whether a card was stored before (issue #15:
 * deduplicate was a PAN oracle): it cannot ask for deduplicate, and its answer
 * holds the new token's display data only, no fingerprint, no metadata.
 */
#include "tokend/vault/tokens.h"
#include "tokend/vault/auth.h"
#include "tokend/vault/dedup_guard.h"
#include "tokend/vault/idempotency.h"
#include "tokend/core/base62.h"
#include "tokend/vault/card.h"
#include "tokend/core/encoding.h"
#include "tokend/gateways/gateway.h"
#include "tokend/gateways/gateway_metrics.h"
#include "tokend/gateways/registry.h"
#include "tokend/core/json.h"
#include "tokend/vault/keyring.h"
#include "tokend/core/log.h"
#include "tokend/store/pgarr.h"
#include "tokend/core/secmem.h"
#include "tokend/http/app.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define METADATA_JSON_MAX 16384
#define EXPIRES_MAX_SECONDS (20LL * 366 * 24 * 3600)
#define EXPIRES_UNIX_MAX (INT64_MAX / 1000000) /* in microseconds it still fits */

/* ---- what a token looks like to the API ---------------------------------------- */

struct token_row {
    char id[TOK_ID_MAX];
    bool livemode;
    char format[16];
    char pan_shaped[TOK_PAN_MAX + 1];
    char fingerprint[65];
    char brand[16];
    char last4[5];
    char bin[9];
    int exp_month, exp_year;
    char created_at[32];
    char expires_at[32];
    bool redacted;
    bool expired;
    char gateways[256]; /* "sandbox:active stripe:failed" */
    char *metadata;     /* JSON text, malloc'd */
};

#define TOKEN_COLUMNS                                                                               \
    "t.id, t.livemode, t.format, coalesce(t.pan_shaped, ''), encode(t.fingerprint, 'hex'), "      \
    "t.brand, t.last4, coalesce(t.bin, ''), t.exp_month, t.exp_year, t.metadata::text, "           \
    "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                 \
    "coalesce(to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "   \
    "t.redacted_at IS NOT NULL, coalesce(t.expires_at <= now(), false), "                          \
    "coalesce((SELECT string_agg(g.gateway || ':' || g.status, ' ' ORDER BY g.gateway) "           \
    "FROM vault.gateway_refs g WHERE g.tenant_id = t.tenant_id AND g.token_id = t.id), '')"

static const struct tok_sql token_by_id_sql = {
    "token_by_id",
    "SELECT " TOKEN_COLUMNS " FROM vault.tokens t WHERE t.tenant_id = $1 AND t.id = $2 AND t.livemode = $3",
    3};

static const struct tok_sql token_by_fingerprint_sql = {
    "token_by_fingerprint",
    "SELECT " TOKEN_COLUMNS " FROM vault.tokens t WHERE t.tenant_id = $1 AND t.livemode = $2 "
    "AND t.fingerprint = $3 AND t.redacted_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) "
    "ORDER BY t.created_at LIMIT 1",
    3};

/*
 * One statement stores a set of tokenisations (one request's, or a whole
 * batch's: issue #9): the tokens, their sealed gateway references and their
 * audit events, for one tenant ($1). A pan_shaped token whose candidate is
 * taken is left out (ON CONFLICT DO NOTHING) with its references and audit
 * row; the caller tries it again with its next candidate. Returns what the
 * API shows that only the database knows.
 *
 * Each column comes as its own array in PostgreSQL's binary format (pgarr.h,
 * parameter format 1): $2-$16 hold one element per token, $17-$21 one per
 * gateway reference, which names its token by position in the token arrays
 * (r.n = x.n). Why binary arrays: this statement used to take one JSON
 * document, and PostgreSQL spent 7-9% of all CPU of a tokenise run parsing
 * it: json_in validated $2::json, json_to_recordset parsed it again, the
 * nested references were parsed a third time from the materialised CTE, and
 * decode(..., 'hex') turned fingerprints and sealed references back into
 * bytes. A binary array element is a length word and its bytes, read as is.
 * Metadata stays JSON text (text[], cast once to jsonb): jsonb's binary
 * format is that same text, parsed the same way.
 */
#define STORE_PARAMS 21
static const struct tok_sql token_store_sql = {
    "token_store",
    "WITH x AS MATERIALIZED (SELECT * FROM unnest($2::text[], $3::bool[], $4::text[], "
    "$5::text[], $6::bytea[], $7::text[], $8::text[], $9::text[], $10::int2[], $11::int2[], "
    "$12::text[], $13::int4[], $14::timestamptz[], $15::text[], $16::text[]) WITH ORDINALITY "
    "AS x(id, livemode, format, pan_shaped, fingerprint, brand, last4, bin, exp_month, "
    "exp_year, metadata, key_version, expires_at, created_by, request_id, n)), "
    "t AS (INSERT INTO vault.tokens (tenant_id, id, livemode, format, pan_shaped, fingerprint, "
    "brand, last4, bin, exp_month, exp_year, metadata, key_version, expires_at, created_by) "
    "SELECT $1, id, livemode, format, pan_shaped, fingerprint, brand, last4, bin, exp_month, "
    "exp_year, metadata::jsonb, key_version, expires_at, created_by FROM x "
    "ON CONFLICT (tenant_id, pan_shaped) WHERE pan_shaped IS NOT NULL DO NOTHING "
    "RETURNING id, created_at, expires_at, metadata), "
    "g AS (INSERT INTO vault.gateway_refs (tenant_id, token_id, gateway, status, ref_sealed, "
    "key_version, ref_lookup) SELECT $1, x.id, r.gateway, r.status, r.sealed, x.key_version, "
    "r.lookup FROM unnest($17::int4[], $18::text[], $19::text[], $20::bytea[], $21::bytea[]) "
    "AS r(n, gateway, status, sealed, lookup) JOIN x ON x.n = r.n JOIN t ON t.id = x.id "
    "RETURNING token_id, gateway, status), "
    "a AS (INSERT INTO audit.events (tenant_id, actor, action, object, request_id) "
    "SELECT $1, x.created_by, 'token.created', x.id, x.request_id FROM x JOIN t USING (id)), "
    "ga AS (SELECT token_id, string_agg(gateway || ':' || status, ' ' ORDER BY gateway) AS s "
    "FROM g GROUP BY token_id) "
    "SELECT t.id, to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "coalesce(to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "
    "coalesce(t.expires_at <= now(), false), t.metadata::text, coalesce(ga.s, '') "
    "FROM t LEFT JOIN ga ON ga.token_id = t.id",
    STORE_PARAMS};

static const struct tok_sql token_redact_sql = {
    "token_redact",
    "UPDATE vault.tokens SET redacted_at = coalesce(redacted_at, now()) "
    "WHERE tenant_id = $1 AND id = $2 AND livemode = $3 RETURNING id",
    3};

/* what redaction asks the gateways to forget: read in the job that destroys it */
static const struct tok_sql refs_to_detach_sql = {
    "gateway_refs_to_detach",
    "SELECT gateway, ref_sealed, key_version FROM vault.gateway_refs "
    "WHERE tenant_id = $1 AND token_id = $2 AND status = 'active' AND ref_sealed IS NOT NULL "
    "AND gateway <> 'sandbox' ORDER BY gateway",
    2};

static const struct tok_sql refs_destroy_sql = {
    "gateway_refs_destroy",
    "UPDATE vault.gateway_refs SET ref_sealed = NULL, ref_lookup = NULL, status = 'destroyed' "
    "WHERE tenant_id = $1 AND token_id = $2",
    2};

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    tok_copy(dst, src, n);
    dst[n] = '\0';
}

static tok_status row_from_result(PGresult *res, int i, struct token_row *row)
{
    copy_field(row->id, sizeof row->id, PQgetvalue(res, i, 0));
    row->livemode = PQgetvalue(res, i, 1)[0] == 't';
    copy_field(row->format, sizeof row->format, PQgetvalue(res, i, 2));
    copy_field(row->pan_shaped, sizeof row->pan_shaped, PQgetvalue(res, i, 3));
    copy_field(row->fingerprint, sizeof row->fingerprint, PQgetvalue(res, i, 4));
    copy_field(row->brand, sizeof row->brand, PQgetvalue(res, i, 5));
    copy_field(row->last4, sizeof row->last4, PQgetvalue(res, i, 6));
    copy_field(row->bin, sizeof row->bin, PQgetvalue(res, i, 7));
    row->exp_month = (int)strtol(PQgetvalue(res, i, 8), NULL, 10);
    row->exp_year = (int)strtol(PQgetvalue(res, i, 9), NULL, 10);
    copy_field(row->created_at, sizeof row->created_at, PQgetvalue(res, i, 11));
    copy_field(row->expires_at, sizeof row->expires_at, PQgetvalue(res, i, 12));
    row->redacted = PQgetvalue(res, i, 13)[0] == 't';
    row->expired = PQgetvalue(res, i, 14)[0] == 't';
    copy_field(row->gateways, sizeof row->gateways, PQgetvalue(res, i, 15));
    free(row->metadata);
    row->metadata = strdup(PQgetvalue(res, i, 10));
    return row->metadata != NULL ? TOK_OK : TOK_ERR_NOMEM;
}

/*
 * A token as JSON. The publishable view (a pk_ key's answer, read by a web page) holds only
 * what the page needs about the card it just sent: no fingerprint (equal for equal cards, so
 * comparing two would tell whether a card is one already stored), no BIN, metadata or
 * gateway list (the tenant's data and settings, not the page's).
 */
static void token_json(struct tok_json_writer *w, const struct token_row *row, bool publishable)
{
    tok_jw_obj_begin(w);
    tok_jw_kstr(w, "id", row->id);
    tok_jw_kstr(w, "object", "token");
    tok_jw_kbool(w, "livemode", row->livemode);
    tok_jw_kstr(w, "format", row->format);
    if (row->pan_shaped[0] != '\0') {
        tok_jw_kstr(w, "pan_shaped", row->pan_shaped);
    }
    tok_jw_kstr(w, "brand", row->brand);
    tok_jw_kstr(w, "last4", row->last4);
    if (publishable) {
        tok_jw_kint(w, "exp_month", row->exp_month);
        tok_jw_kint(w, "exp_year", row->exp_year);
        tok_jw_kstr(w, "created_at", row->created_at);
        tok_jw_kstr(w, "expires_at", row->expires_at[0] != '\0' ? row->expires_at : NULL);
        tok_jw_obj_end(w);
        return;
    }
    tok_jw_kstr(w, "bin", row->bin[0] != '\0' ? row->bin : NULL);
    tok_jw_kint(w, "exp_month", row->exp_month);
    tok_jw_kint(w, "exp_year", row->exp_year);
    tok_jw_kstr(w, "fingerprint", row->fingerprint);
    tok_jw_kstr(w, "created_at", row->created_at);
    tok_jw_kstr(w, "expires_at", row->expires_at[0] != '\0' ? row->expires_at : NULL);
    tok_jw_kbool(w, "expired", row->expired);
    tok_jw_kbool(w, "redacted", row->redacted);
    tok_jw_key(w, "metadata");
    tok_jw_raw(w, tok_slice_str(row->metadata != NULL ? row->metadata : "{}"));
    tok_jw_key(w, "gateways");
    tok_jw_arr_begin(w);
    const char *g = row->gateways;
    while (*g != '\0') {
        size_t n = strcspn(g, " ");
        const char *colon = memchr(g, ':', n);
        if (colon != NULL) {
            tok_jw_obj_begin(w);
            tok_jw_key(w, "gateway");
            tok_jw_strn(w, tok_slice_of(g, (size_t)(colon - g)));
            tok_jw_key(w, "status");
            tok_jw_strn(w, tok_slice_of(colon + 1, n - (size_t)(colon - g) - 1));
            tok_jw_obj_end(w);
        }
        g += n;
        while (*g == ' ')
            g++;
    }
    tok_jw_arr_end(w);
    tok_jw_obj_end(w);
}

/* The token's JSON into a new buffer b (the caller wipes it). */
static tok_status token_body(const struct token_row *row, bool publishable, struct tok_buf *b)
{
    TOK_GUARD(tok_buf_alloc(b, TOK_TOKEN_JSON_MAX, false));
    struct tok_json_writer w;
    tok_jw_init(&w, b);
    token_json(&w, row, publishable);
    return tok_jw_finish(&w);
}

static void send_token(struct tok_req *r, int status, const struct token_row *row)
{
    struct tok_buf b = {0};
    tok_status st = token_body(row, r->principal != NULL && r->principal->publishable, &b);
    if (st == TOK_ERR_NOMEM) {
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    if (st != TOK_OK) {
        tok_log_err("%s: %s: token JSON does not fit", __func__, r->id);
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
    } else {
        tok_http_json(r, status, tok_buf_slice(&b));
    }
    tok_buf_wipe(&b);
}

/* ---- helpers ------------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(struct tok_slice s, size_t at, size_t n, int *out)
{
    if (at > s.len || n > s.len - at)
        return false;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s.ptr[at + i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
}

tok_status tok_rfc3339_parse(struct tok_slice s, int64_t *out)
{
    int y, mo, d, h, mi, sec;
    TOK_ENSURE(s.len >= 20 && s.len <= 40, TOK_ERR_INPUT);
    TOK_ENSURE(digits(s, 0, 4, &y) && s.ptr[4] == '-' && digits(s, 5, 2, &mo) && s.ptr[7] == '-' &&
                   digits(s, 8, 2, &d) && (s.ptr[10] == 'T' || s.ptr[10] == 't') &&
                   digits(s, 11, 2, &h) && s.ptr[13] == ':' && digits(s, 14, 2, &mi) &&
                   s.ptr[16] == ':' && digits(s, 17, 2, &sec),
               TOK_ERR_INPUT);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    TOK_ENSURE(mo >= 1 && mo <= 12 && d >= 1 && d <= mdays[mo - 1] && h <= 23 && mi <= 59 && sec <= 60,
               TOK_ERR_INPUT);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    TOK_ENSURE(!(mo == 2 && d == 29 && !leap), TOK_ERR_INPUT);
    size_t i = 19;
    if (i < s.len && s.ptr[i] == '.') {
        i++;
        size_t start = i;
        while (i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9')
            i++;
        TOK_ENSURE(i > start && i - start <= 9, TOK_ERR_INPUT);
    }
    int64_t offset = 0;
    TOK_ENSURE(i < s.len, TOK_ERR_INPUT);
    if (s.ptr[i] == 'Z' || s.ptr[i] == 'z') {
        TOK_ENSURE(i + 1 == s.len, TOK_ERR_INPUT);
    } else {
        int oh, om;
        TOK_ENSURE((s.ptr[i] == '+' || s.ptr[i] == '-') && i + 6 == s.len && digits(s, i + 1, 2, &oh) &&
                       s.ptr[i + 3] == ':' && digits(s, i + 4, 2, &om) && oh <= 23 && om <= 59,
                   TOK_ERR_INPUT);
        offset = (int64_t)(oh * 3600 + om * 60) * (s.ptr[i] == '-' ? -1 : 1);
    }
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    return TOK_OK;
}

bool tok_contains_pan(struct tok_slice s)
{
    uint8_t run[TOK_PAN_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; i <= s.len; i++) {
        uint8_t c = i < s.len ? s.ptr[i] : 0;
        if (c >= '0' && c <= '9') {
            if (n < sizeof run)
                run[n] = c;
            n++;
            continue;
        }
        bool sep = (c == ' ' || c == '-') && n > 0 && i + 1 < s.len && s.ptr[i + 1] >= '0' &&
                   s.ptr[i + 1] <= '9';
        if (sep)
            continue;
        if (n >= TOK_PAN_MIN && n <= TOK_PAN_MAX && tok_card_luhn_ok(tok_slice_of(run, n))) {
            sodium_memzero(run, sizeof run);
            return true;
        }
        n = 0;
    }
    sodium_memzero(run, sizeof run);
    return false;
}

/* ---- POST /v1/tokens ---------------------------------------------------------------- */

/* Card data while it exists: guarded, locked memory (secmem.h), never in a core dump. */
struct card_secret {
    uint8_t pan[TOK_PAN_MAX + 1];
    uint8_t cvc[8];
    uint8_t name[TOK_CARD_NAME_MAX + 1];
    struct tok_buf pan_buf, cvc_buf, name_buf;
    struct tok_card_data card;
};

struct create_call {
    struct tok_call call; /* first */
    bool keep;             /* skip one release: the call object is reused for the insert */
    struct card_secret *secret;
    bool deduplicate;
    bool found_existing;
    struct tok_dedup_guard *dedup_guard; /* set while a de-duplication hit is reserved */
    bool insert_phase;
    /*
     * Idempotency-Key (issue #16): claimed in the first job, before any gateway call; the
     * stored answer is written with the token, or by the settle job when none was stored
     */
    struct tok_idem idem;
    bool publishable; /* the caller's view, which is also the view stored for its replays */
    bool settle_phase;
    int settle_status;
    uint8_t settle_mem[1024];
    struct tok_buf settle_body;
    struct token_row row;
    char tenant_id[TOK_ID_MAX];
    char actor[TOK_ID_MAX];
    char request_id[TOK_REQUEST_ID_LEN + 1];
    uint32_t key_version;
    uint8_t fingerprint[32];
    char candidates[TOK_PAN_SHAPED_TRIES][TOK_PAN_MAX + 1];
    int64_t expires_at; /* 0 = none */
    /*
     * JSON text, malloc'd at its size: a 16 KiB array here made each call 21 KiB, 21 MB with
     * 1,000 tokenisations waiting on a gateway
     */
    char *metadata;
    /* one tokenisation per gateway account, run concurrently */
    struct tok_gateway_account accounts[TOK_ACCOUNTS_MAX]; /* copies without secrets */
    unsigned naccounts, pending, succeeded;
    struct tok_gateway_call gw[TOK_ACCOUNTS_MAX];
    uint8_t sealed[TOK_ACCOUNTS_MAX][TOK_GATEWAY_REF_MAX + TOK_SEALED_OVERHEAD];
    struct tok_buf sealed_buf[TOK_ACCOUNTS_MAX];
    uint8_t ref_lookup[TOK_ACCOUNTS_MAX][TOK_KEYRING_HASH_LEN]; /* card updaters match on it */
};

static void wipe_card(struct create_call *c)
{
    if (c->secret == NULL)
        return;
    tok_secmem_free(c->secret); /* wipes it */
    c->secret = NULL;
}

static uint64_t monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

/* Ends the de-duplication reservation, if one is open: a hit is counted, a miss given back. */
static void dedup_settle(struct create_call *c)
{
    if (c->dedup_guard == NULL)
        return;
    tok_dedup_guard_settle(c->dedup_guard, c->actor, monotonic_s(), c->found_existing);
    c->dedup_guard = NULL;
}

static void create_release(struct tok_call *call)
{
    struct create_call *c = (struct create_call *)call;
    if (c->keep) {
        c->keep = false;
        return;
    }
    dedup_settle(c); /* the client went away before the lookup's answer */
    wipe_card(c);
    tok_idem_wipe(&c->idem);
    free(c->row.metadata);
    free(c->metadata);
    sodium_memzero(c, sizeof *c);
    free(c);
}

struct field_error {
    const char *code;
    const char *param;
    const char *detail;
};

#define FAIL_FIELD(fe, c, p, d)                                                                    \
    do {                                                                                           \
        (fe)->code = (c);                                                                          \
        (fe)->param = (p);                                                                         \
        (fe)->detail = (d);                                                                        \
        return TOK_ERR_INPUT;                                                                      \
    } while (0)

static tok_status get_int(const struct tok_json_node *obj, const char *key, bool required,
                          int64_t *out, bool *present)
{
    const struct tok_json_node *n = tok_json_get(obj, key);
    *present = n != NULL;
    if (n == NULL)
        return required ? TOK_ERR_INPUT : TOK_OK;
    return tok_json_int64(n, out);
}

static tok_status validate_metadata(const struct tok_json_node *m, struct create_call *c,
                                    struct field_error *fe)
{
    char text[METADATA_JSON_MAX];
    struct tok_buf b;
    tok_buf_init(&b, text, sizeof text - 1);
    struct tok_json_writer w;
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    if (m != NULL) {
        if (tok_json_type(m) != TOK_JSON_OBJECT)
            FAIL_FIELD(fe, "invalid_type", "metadata", "metadata must be an object of strings");
        size_t n = tok_json_object_size(m);
        if (n > TOK_METADATA_KEYS_MAX)
            FAIL_FIELD(fe, "metadata_too_many_keys", "metadata", "at most 20 metadata keys");
        for (size_t i = 0; i < n; i++) {
            struct tok_slice k, v;
            const struct tok_json_node *val = NULL;
            TOK_GUARD(tok_json_object_at(m, i, &k, &val));
            if (k.len == 0 || k.len > TOK_METADATA_KEY_MAX)
                FAIL_FIELD(fe, "metadata_key_invalid", "metadata",
                           "metadata keys are 1 to 40 bytes");
            if (tok_json_string(val, &v) != TOK_OK)
                FAIL_FIELD(fe, "invalid_type", "metadata", "metadata values must be strings");
            if (v.len > TOK_METADATA_VALUE_MAX)
                FAIL_FIELD(fe, "metadata_value_too_long", "metadata",
                           "metadata values are at most 500 bytes");
            /* jsonb refuses \u0000 (22P05): refused here, before the card reaches a gateway */
            if (!tok_json_text_storable(v))
                FAIL_FIELD(fe, "invalid_text", "metadata",
                           "metadata values must be UTF-8 text without NUL (\\u0000)");
            if (tok_contains_pan(v) || tok_contains_pan(k))
                FAIL_FIELD(fe, "metadata_contains_pan", "metadata",
                           "metadata must not hold card numbers");
            char key[TOK_METADATA_KEY_MAX + 1];
            if (memchr(k.ptr, 0, k.len) != NULL)
                FAIL_FIELD(fe, "metadata_key_invalid", "metadata", "metadata keys cannot hold NUL");
            tok_copy(key, k.ptr, k.len);
            key[k.len] = '\0';
            tok_jw_key(&w, key);
            tok_jw_strn(&w, v);
        }
    }
    tok_jw_obj_end(&w);
    TOK_GUARD(tok_jw_finish(&w));
    text[b.len] = '\0';
    free(c->metadata);
    c->metadata = malloc(b.len + 1);
    TOK_ENSURE(c->metadata != NULL, TOK_ERR_NOMEM);
    tok_copy(c->metadata, text, b.len + 1);
    return TOK_OK;
}

static const char *const top_fields[] = {"card", "metadata", "deduplicate", "expires_at", "format"};
static const char *const card_fields[] = {"number", "exp_month", "exp_year", "cvc", "name"};

/* Validates the body into c (card data into c->secret). */
static tok_status validate(struct tok_req *r, const struct tok_json_node *root, struct create_call *c,
                           struct field_error *fe)
{
    const struct tok_principal *p = r->principal;
    if (tok_json_type(root) != TOK_JSON_OBJECT)
        FAIL_FIELD(fe, "invalid_type", "body", "the body must be a JSON object");
    struct tok_slice unknown;
    if (tok_json_check_keys(root, top_fields, TOK_ARRAY_LEN(top_fields), &unknown) != TOK_OK)
        FAIL_FIELD(fe, "unknown_field", tok_json_key_echoable(unknown) ? NULL : "body",
                   "the body has a field this API does not know");
    /* before the card is read: the refusal is the same whatever card comes with it */
    const struct tok_json_node *dd = tok_json_get(root, "deduplicate");
    if (dd != NULL && tok_json_bool(dd, &c->deduplicate) != TOK_OK)
        FAIL_FIELD(fe, "invalid_type", "deduplicate", "deduplicate must be true or false");
    if (c->deduplicate && p->publishable)
        FAIL_FIELD(fe, "deduplicate_not_allowed", "deduplicate",
                   "a publishable key cannot de-duplicate: whether a card is stored is never "
                   "told to a web page");
    const struct tok_json_node *card = tok_json_get(root, "card");
    if (card == NULL)
        FAIL_FIELD(fe, "missing_field", "card", "card is required");
    if (tok_json_type(card) != TOK_JSON_OBJECT)
        FAIL_FIELD(fe, "invalid_type", "card", "card must be an object");
    if (tok_json_check_keys(card, card_fields, TOK_ARRAY_LEN(card_fields), &unknown) != TOK_OK)
        FAIL_FIELD(fe, "unknown_field", "card", "card has a field this API does not know");

    struct card_secret *cs = c->secret;
    const char *code = NULL;
    struct tok_slice num;
    const struct tok_json_node *n = tok_json_get(card, "number");
    if (n == NULL)
        FAIL_FIELD(fe, "missing_field", "card[number]", "card number is required");
    if (tok_json_string(n, &num) != TOK_OK)
        FAIL_FIELD(fe, "invalid_type", "card[number]", "card number must be a string");
    if (tok_card_normalise(num, &cs->pan_buf, &code) != TOK_OK)
        FAIL_FIELD(fe, code != NULL ? code : "invalid_number", "card[number]",
                   "the card number must be 12 to 19 digits");
    enum tok_card_brand brand = TOK_BRAND_UNKNOWN;
    if (tok_card_pan_check(tok_buf_slice(&cs->pan_buf), &brand, &code) != TOK_OK)
        FAIL_FIELD(fe, code != NULL ? code : "invalid_number", "card[number]",
                   "the card number is not valid");

    int64_t month = 0, year = 0;
    bool present = false;
    if (get_int(card, "exp_month", true, &month, &present) != TOK_OK)
        FAIL_FIELD(fe, present ? "invalid_type" : "missing_field", "card[exp_month]",
                   "exp_month must be an integer from 1 to 12");
    if (get_int(card, "exp_year", true, &year, &present) != TOK_OK)
        FAIL_FIELD(fe, present ? "invalid_type" : "missing_field", "card[exp_year]",
                   "exp_year must be an integer (4 digits)");
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (month < -1000000 || month > 1000000 || year < -1000000 || year > 1000000)
        FAIL_FIELD(fe, "invalid_expiry_year", "card[exp_year]", "expiry out of range");
    if (tok_card_expiry_check((int)month, (int)year, tm.tm_mon + 1, tm.tm_year + 1900, &code) != TOK_OK)
        FAIL_FIELD(fe, code != NULL ? code : "invalid_expiry_year",
                   code != NULL && strcmp(code, TOK_CARD_CODE_EXPIRY_MONTH) == 0 ? "card[exp_month]"
                                                                                 : "card[exp_year]",
                   "the expiry date is not acceptable");
    if (year < 100)
        year += 2000;

    n = tok_json_get(card, "cvc");
    if (n == NULL) {
        if (!p->cvc_optional)
            FAIL_FIELD(fe, "missing_field", "card[cvc]", "cvc is required");
    } else {
        struct tok_slice cvc;
        if (tok_json_string(n, &cvc) != TOK_OK)
            FAIL_FIELD(fe, "invalid_type", "card[cvc]", "cvc must be a string");
        if (tok_card_cvc_check(brand, cvc, &code) != TOK_OK)
            FAIL_FIELD(fe, "invalid_cvc", "card[cvc]",
                       brand == TOK_BRAND_AMEX ? "cvc must be 4 digits" : "cvc must be 3 digits");
        if (tok_buf_write(&cs->cvc_buf, cvc.ptr, cvc.len) != TOK_OK)
            FAIL_FIELD(fe, "invalid_cvc", "card[cvc]", "cvc too long");
    }
    n = tok_json_get(card, "name");
    if (n != NULL && tok_json_type(n) != TOK_JSON_NULL) {
        struct tok_slice name;
        if (tok_json_string(n, &name) != TOK_OK)
            FAIL_FIELD(fe, "invalid_type", "card[name]", "name must be a string");
        if (tok_card_name_check(name, &code) != TOK_OK || tok_buf_write(&cs->name_buf, name.ptr, name.len) != TOK_OK)
            FAIL_FIELD(fe, "invalid_name", "card[name]",
                       "name must be at most 100 bytes of UTF-8 without control characters");
    }

    TOK_GUARD(validate_metadata(tok_json_get(root, "metadata"), c, fe));

    n = tok_json_get(root, "expires_at");
    if (n != NULL && tok_json_type(n) != TOK_JSON_NULL) {
        struct tok_slice ts;
        if (tok_json_string(n, &ts) != TOK_OK || tok_rfc3339_parse(ts, &c->expires_at) != TOK_OK)
            FAIL_FIELD(fe, "invalid_expires_at", "expires_at", "expires_at must be an RFC 3339 time");
        if (c->expires_at <= (int64_t)now || c->expires_at > (int64_t)now + EXPIRES_MAX_SECONDS)
            FAIL_FIELD(fe, "invalid_expires_at", "expires_at",
                       "expires_at must be in the future and at most 20 years ahead");
    }

    const char *format = "opaque";
    n = tok_json_get(root, "format");
    if (n != NULL) {
        struct tok_slice f;
        if (tok_json_string(n, &f) != TOK_OK)
            FAIL_FIELD(fe, "invalid_type", "format", "format must be \"opaque\" or \"pan_shaped\"");
        if (tok_slice_eq(f, "pan_shaped"))
            format = "pan_shaped";
        else if (!tok_slice_eq(f, "opaque"))
            FAIL_FIELD(fe, "invalid_format", "format", "format must be \"opaque\" or \"pan_shaped\"");
    }

    /* derived, non-secret data */
    struct token_row *row = &c->row;
    struct tok_slice pan = tok_buf_slice(&cs->pan_buf);
    copy_field(row->format, sizeof row->format, format);
    copy_field(row->brand, sizeof row->brand, tok_card_brand_name(brand));
    row->exp_month = (int)month;
    row->exp_year = (int)year;
    row->livemode = p->livemode;
    struct tok_buf lb, bb;
    tok_buf_init(&lb, row->last4, sizeof row->last4 - 1);
    tok_buf_init(&bb, row->bin, sizeof row->bin - 1);
    TOK_GUARD(tok_card_last4(pan, &lb));
    if (p->bin_mode != 0) {
        tok_status bst = tok_card_bin(pan, p->bin_mode, &bb);
        if (bst != TOK_OK) /* an 8-digit BIN needs a 16+ digit PAN: fall back to 6 */
            TOK_GUARD(tok_card_bin(pan, TOK_BIN_LEN, &bb));
    }
    if (strcmp(format, "pan_shaped") == 0) {
        for (int i = 0; i < TOK_PAN_SHAPED_TRIES; i++) {
            struct tok_buf pb;
            tok_buf_init(&pb, c->candidates[i], sizeof c->candidates[i] - 1);
            TOK_GUARD(tok_card_pan_shaped(pan, &pb));
        }
    }
    TOK_GUARD(tok_tenant_keys_fingerprint(p->keys, pan, c->fingerprint));
    c->key_version = tok_tenant_keys_version(p->keys);
    struct tok_buf fb;
    tok_buf_init(&fb, row->fingerprint, sizeof row->fingerprint - 1);
    TOK_GUARD(tok_hex_encode(tok_slice_of(c->fingerprint, 32), &fb));
    struct tok_buf ib;
    tok_buf_init(&ib, row->id, sizeof row->id - 1);
    TOK_GUARD(tok_random_id("tok_", &ib));

    cs->card.pan = pan;
    cs->card.cvc = tok_buf_slice(&cs->cvc_buf);
    cs->card.name = tok_buf_slice(&cs->name_buf);
    cs->card.exp_month = (int)month;
    cs->card.exp_year = (int)year;
    return TOK_OK;
}

static void submit_insert(struct tok_req *r, struct create_call *c);
static tok_status create_exec(struct tok_db_job *job, struct tok_db_conn *conn);
static void create_result(struct tok_call *call, struct tok_req *r);

/*
 * Ends a tokenisation that stored no token, and answers (r NULL: the client left). With an
 * Idempotency-Key claimed, a decline (402) is kept for its replays: the issuer would answer a
 * retry the same, and a retry must not ask the gateway again; any other ending gives the key
 * back (nothing happened that a retry must see), in a job that answers once it is done.
 */
static void settle(struct tok_req *r, struct create_call *c, int status, const char *code,
                   const char *detail, const char *param, const char *decline)
{
    if (!c->idem.present || c->idem.state != TOK_IDEM_NEW) {
        if (r != NULL)
            tok_http_problem_decline(r, status, code, detail, param, decline);
        create_release(&c->call);
        return;
    }
    c->settle_phase = true;
    c->settle_status = status;
    tok_buf_init(&c->settle_body, c->settle_mem, sizeof c->settle_mem);
    if (tok_http_problem_body(&c->settle_body, status, code, detail, param, c->request_id,
                              decline) != TOK_OK) {
        tok_buf_reset(&c->settle_body);
        if (tok_http_problem_body(&c->settle_body, status, code, NULL, NULL, c->request_id,
                                  NULL) != TOK_OK)
            tok_buf_reset(&c->settle_body);
    }
    c->call.job.exec = create_exec;
    c->call.job.group = NULL;
    c->call.on_result = create_result;
    c->call.release = create_release;
    if (r != NULL)
        tok_http_call(r, &c->call);
    else
        tok_http_call_detached(&c->call);
}

/* Every gateway has answered: store what succeeded, or nothing if none did. */
static void on_all_gateways_done(struct tok_req *r, struct create_call *c)
{
    wipe_card(c); /* the gateway calls were the card data's last use */
    const struct tok_gateway_call *first_failure = NULL;
    for (unsigned i = 0; i < c->naccounts; i++) {
        struct tok_gateway_call *gw = &c->gw[i];
        if (gw->outcome != TOK_GW_OK) {
            if (first_failure == NULL)
                first_failure = gw;
            if (r != NULL)
                tok_log_info("%s: %s: gateway %s refused tokenisation: %s", __func__, r->id,
                             c->accounts[i].id, gw->code != NULL ? gw->code : "unknown");
            continue;
        }
        char row_id[TOK_ID_MAX + sizeof c->accounts[i].id + 2];
        snprintf(row_id, sizeof row_id, "%s:%s", c->row.id, c->accounts[i].id);
        struct tok_aad aad = {c->tenant_id, "vault.gateway_refs", "ref_sealed", row_id};
        tok_buf_init(&c->sealed_buf[i], c->sealed[i], sizeof c->sealed[i]);
        tok_status st = r == NULL ? TOK_ERR_INTERNAL
                                  : tok_tenant_keys_seal(r->principal->keys, aad,
                                                         tok_slice_str(gw->ref), &c->sealed_buf[i]);
        /* the lookup hash covers the gateway's payment-method id only (before a '|': Stripe's
         * pm_ without its cus_, Adyen's storedPaymentMethodId without the shopper), the id
         * a card updater's webhook names */
        size_t idlen = strcspn(gw->ref, "|");
        if (st == TOK_OK)
            st = tok_tenant_keys_ref_lookup(r->principal->keys, tok_slice_of(gw->ref, idlen),
                                            c->ref_lookup[i]);
        sodium_memzero(gw->ref, sizeof gw->ref);
        if (st != TOK_OK) {
            gw->outcome = TOK_GW_ERROR;
            gw->code = "internal_error";
            if (first_failure == NULL)
                first_failure = gw;
            continue;
        }
        c->succeeded++;
    }
    if (r == NULL) { /* the client went away: nothing is stored (the tenant's keys went with r) */
        settle(NULL, c, 503, "client_gone", NULL, NULL, NULL);
        return;
    }
    if (c->succeeded == 0) {
        const char *code = first_failure != NULL && first_failure->code != NULL
                               ? first_failure->code
                               : "the gateway could not tokenise the card";
        tok_audit_async(r, c->tenant_id, c->actor, "token.gateway_failed", c->row.id);
        /* the issuer refused the card (Adyen's zero-value authorisation asks it): a decline,
         * as a charge's is, not a gateway failure */
        if (first_failure != NULL && first_failure->outcome == TOK_GW_DECLINED)
            settle(r, c, 402, "card_declined", code, "card",
                   first_failure->decline_code[0] != '\0' ? first_failure->decline_code : code);
        else
            settle(r, c, 502, "gateway_error", code, "card", NULL);
        return;
    }
    submit_insert(r, c);
}

static void on_gateway_done(struct tok_gateway_call *gw)
{
    struct create_call *c = gw->data;
    if (--c->pending > 0)
        return;
    on_all_gateways_done(tok_http_unwatch(&c->call), c);
}

static const struct tok_gateway_account implicit_sandbox = {.id = "sandbox", .priority = 1000};

static void run_gateway(struct tok_req *r, struct create_call *c)
{
    const struct tok_principal *p = r->principal;
    if (tok_req_cancelled(r)) { /* a connection being cut: no gateway call */
        settle(r, c, 503, "connection_closing", "this connection is being closed", NULL, NULL);
        return;
    }
    c->naccounts = 0;
    for (unsigned i = 0; i < p->naccounts && c->naccounts < TOK_ACCOUNTS_MAX; i++)
        c->accounts[c->naccounts++] = p->accounts[i]; /* api_key pointer stays owned by p */
    if (c->naccounts == 0) {
        if (p->livemode) {
            settle(r, c, 422, "no_live_gateway", "no live gateway is configured for this tenant",
                   NULL, NULL);
            return;
        }
        c->accounts[0] = implicit_sandbox;
        c->accounts[0].ops = tok_gateway_sandbox();
        c->naccounts = 1;
    }
    c->pending = c->naccounts;
    tok_http_watch(r, &c->call);
    for (unsigned i = 0; i < c->naccounts; i++) {
        struct tok_gateway_call *gw = &c->gw[i];
        memset(gw, 0, sizeof *gw);
        gw->op = TOK_GW_TOKENISE;
        gw->card = &c->secret->card;
        gw->livemode = p->livemode;
        gw->account = i < p->naccounts ? &p->accounts[i] : NULL; /* NULL: implicit sandbox */
        gw->env = &r->worker->gw_env;
        struct tok_buf kb;
        const char *ks = NULL;
        tok_buf_init(&kb, gw->idempotency_key, sizeof gw->idempotency_key);
        if (tok_buf_printf(&kb, "tokend_%s_%s", c->row.id, c->accounts[i].id) != TOK_OK ||
            tok_buf_cstr(&kb, &ks) != TOK_OK)
            gw->idempotency_key[0] = '\0'; /* the adapter then makes its own */
        gw->done = on_gateway_done;
        gw->data = c;
    }
    /* launched after all are set up: a synchronous adapter may finish at once, and
     * the last completion may free c, so nothing of c is read after the last submit */
    unsigned n = c->naccounts;
    const struct tok_gateway_ops *ops[TOK_ACCOUNTS_MAX];
    struct tok_gateway_call *calls[TOK_ACCOUNTS_MAX];
    for (unsigned i = 0; i < n; i++) {
        ops[i] = c->accounts[i].ops;
        calls[i] = &c->gw[i];
    }
    for (unsigned i = 0; i < n; i++)
        tok_gateway_submit(ops[i], calls[i]);
}

/*
 * token_store_sql's array parameters, $2 onwards, in order: one element per
 * token (STORE_TOKEN_COLS of them), then one per gateway reference.
 */
enum store_col {
    COL_ID,
    COL_LIVEMODE,
    COL_FORMAT,
    COL_PAN_SHAPED,
    COL_FINGERPRINT,
    COL_BRAND,
    COL_LAST4,
    COL_BIN,
    COL_EXP_MONTH,
    COL_EXP_YEAR,
    COL_METADATA,
    COL_KEY_VERSION,
    COL_EXPIRES_AT,
    COL_CREATED_BY,
    COL_REQUEST_ID,
    STORE_TOKEN_COLS,
    COL_REF_TOKEN = STORE_TOKEN_COLS, /* the token's position (x.n, from 1) */
    COL_REF_GATEWAY,
    COL_REF_STATUS,
    COL_REF_SEALED,
    COL_REF_LOOKUP,
    STORE_COLS
};
_Static_assert(STORE_PARAMS == 1 + STORE_COLS, "token_store_sql: $1 and one array per column");

static const uint32_t store_col_oid[STORE_COLS] = {
    [COL_ID] = TOK_PG_OID_TEXT,
    [COL_LIVEMODE] = TOK_PG_OID_BOOL,
    [COL_FORMAT] = TOK_PG_OID_TEXT,
    [COL_PAN_SHAPED] = TOK_PG_OID_TEXT,
    [COL_FINGERPRINT] = TOK_PG_OID_BYTEA,
    [COL_BRAND] = TOK_PG_OID_TEXT,
    [COL_LAST4] = TOK_PG_OID_TEXT,
    [COL_BIN] = TOK_PG_OID_TEXT,
    [COL_EXP_MONTH] = TOK_PG_OID_INT2,
    [COL_EXP_YEAR] = TOK_PG_OID_INT2,
    [COL_METADATA] = TOK_PG_OID_TEXT, /* JSON text, cast to jsonb in the SQL */
    [COL_KEY_VERSION] = TOK_PG_OID_INT4,
    [COL_EXPIRES_AT] = TOK_PG_OID_TIMESTAMPTZ,
    [COL_CREATED_BY] = TOK_PG_OID_TEXT,
    [COL_REQUEST_ID] = TOK_PG_OID_TEXT,
    [COL_REF_TOKEN] = TOK_PG_OID_INT4,
    [COL_REF_GATEWAY] = TOK_PG_OID_TEXT,
    [COL_REF_STATUS] = TOK_PG_OID_TEXT,
    [COL_REF_SEALED] = TOK_PG_OID_BYTEA,
    [COL_REF_LOOKUP] = TOK_PG_OID_BYTEA,
};

/*
 * The most one token's elements take, metadata aside (fifteen length words and
 * fields of at most a few dozen bytes), and the most one reference's take.
 */
#define STORE_TOKEN_FIXED 1024
#define STORE_REF_FIXED                                                                            \
    (5 * TOK_PGARR_ITEM_OVERHEAD + 4 + TOK_ID_MAX + 8 + TOK_GATEWAY_REF_MAX +                      \
     TOK_SEALED_OVERHEAD + TOK_KEYRING_HASH_LEN)

static bool is_pan_shaped(const struct create_call *c)
{
    return strcmp(c->row.format, "pan_shaped") == 0;
}

/* Whether a job's token goes into this attempt's statement. */
static bool store_pending(const struct tok_db_job *job, unsigned attempt)
{
    const struct create_call *c = (const struct create_call *)job;
    return job->status == TOK_ERR_CONFLICT && (attempt == 0 || is_pan_shaped(c));
}

static tok_status text_or_null(struct tok_pgarr *a, const char *s)
{
    return s != NULL ? tok_pgarr_text(a, tok_slice_str(s)) : tok_pgarr_null(a);
}

/* One token's element of column col. */
static tok_status put_token_col(struct tok_pgarr *a, enum store_col col,
                                const struct create_call *c, unsigned attempt)
{
    switch (col) {
    case COL_ID:
        return tok_pgarr_text(a, tok_slice_str(c->row.id));
    case COL_LIVEMODE:
        return tok_pgarr_bool(a, c->row.livemode);
    case COL_FORMAT:
        return tok_pgarr_text(a, tok_slice_str(c->row.format));
    case COL_PAN_SHAPED:
        return text_or_null(a, is_pan_shaped(c) ? c->candidates[attempt] : NULL);
    case COL_FINGERPRINT:
        return tok_pgarr_bytea(a, tok_slice_of(c->fingerprint, sizeof c->fingerprint));
    case COL_BRAND:
        return tok_pgarr_text(a, tok_slice_str(c->row.brand));
    case COL_LAST4:
        return tok_pgarr_text(a, tok_slice_str(c->row.last4));
    case COL_BIN:
        return text_or_null(a, c->row.bin[0] != '\0' ? c->row.bin : NULL);
    case COL_EXP_MONTH:
        return tok_pgarr_int2(a, c->row.exp_month);
    case COL_EXP_YEAR:
        return tok_pgarr_int2(a, c->row.exp_year);
    case COL_METADATA:
        return tok_pgarr_text(a, tok_slice_str(c->metadata));
    case COL_KEY_VERSION:
        return tok_pgarr_int4(a, c->key_version);
    case COL_EXPIRES_AT:
        if (c->expires_at == 0)
            return tok_pgarr_null(a);
        TOK_ENSURE(c->expires_at > 0 && c->expires_at <= EXPIRES_UNIX_MAX, TOK_ERR_INPUT);
        return tok_pgarr_timestamptz(a, c->expires_at * 1000000);
    case COL_CREATED_BY:
        return tok_pgarr_text(a, tok_slice_str(c->actor));
    case COL_REQUEST_ID:
        return tok_pgarr_text(a, tok_slice_str(c->request_id));
    default:
        return TOK_ERR_INTERNAL;
    }
}

/* Gateway reference i's element of column col; pos is its token's position (from 1). */
static tok_status put_ref_col(struct tok_pgarr *a, enum store_col col,
                              const struct create_call *c, unsigned i, uint32_t pos)
{
    bool ok = c->gw[i].outcome == TOK_GW_OK;
    switch (col) {
    case COL_REF_TOKEN:
        return tok_pgarr_int4(a, pos);
    case COL_REF_GATEWAY:
        return tok_pgarr_text(a, tok_slice_str(c->accounts[i].id));
    case COL_REF_STATUS:
        return tok_pgarr_text(a, tok_slice_str(ok ? "active" : "failed"));
    case COL_REF_SEALED:
        return ok ? tok_pgarr_bytea(a, tok_buf_slice(&c->sealed_buf[i])) : tok_pgarr_null(a);
    case COL_REF_LOOKUP:
        return ok ? tok_pgarr_bytea(a, tok_slice_of(c->ref_lookup[i], TOK_KEYRING_HASH_LEN))
                  : tok_pgarr_null(a);
    default:
        return TOK_ERR_INTERNAL;
    }
}

/*
 * Writes token_store_sql's arrays for this attempt's tokens into b, one column
 * after another; cols[k] is parameter $(k + 2), borrowed from b. *pending is
 * how many tokens they hold.
 */
static tok_status store_params(struct tok_buf *b, struct tok_db_job *const *jobs, unsigned n,
                               unsigned attempt, struct tok_slice cols[STORE_COLS],
                               unsigned *pending)
{
    *pending = 0;
    for (unsigned k = 0; k < STORE_COLS; k++) {
        enum store_col col = (enum store_col)k;
        struct tok_pgarr a;
        TOK_GUARD(tok_pgarr_begin(&a, b, store_col_oid[col]));
        uint32_t pos = 0;
        for (unsigned j = 0; j < n; j++) {
            const struct create_call *c = (const struct create_call *)jobs[j];
            if (!store_pending(jobs[j], attempt))
                continue;
            pos++;
            if (col < STORE_TOKEN_COLS) {
                TOK_GUARD(put_token_col(&a, col, c, attempt));
                continue;
            }
            for (unsigned i = 0; i < c->naccounts; i++)
                TOK_GUARD(put_ref_col(&a, col, c, i, pos));
        }
        TOK_GUARD(tok_pgarr_end(&a, &cols[col]));
        *pending = pos;
    }
    return TOK_OK;
}

/* The created row of a job, from token_store_sql's row i. */
static tok_status store_row_result(struct create_call *c, PGresult *res, int i, unsigned attempt)
{
    if (is_pan_shaped(c))
        copy_field(c->row.pan_shaped, sizeof c->row.pan_shaped, c->candidates[attempt]);
    copy_field(c->row.created_at, sizeof c->row.created_at, PQgetvalue(res, i, 1));
    copy_field(c->row.expires_at, sizeof c->row.expires_at, PQgetvalue(res, i, 2));
    c->row.expired = PQgetvalue(res, i, 3)[0] == 't';
    c->row.redacted = false;
    copy_field(c->row.gateways, sizeof c->row.gateways, PQgetvalue(res, i, 5));
    free(c->row.metadata);
    c->row.metadata = strdup(PQgetvalue(res, i, 4));
    return c->row.metadata != NULL ? TOK_OK : TOK_ERR_NOMEM;
}

/*
 * Stores the tokenisations of jobs[0..n), all of one tenant, with token_store_sql:
 * one statement for all of them, then one more for each pan_shaped candidate
 * that was taken. Sets each job's status (TOK_ERR_CONFLICT: every candidate was
 * taken); returns an error only when the statement failed.
 */
static tok_status store_exec(struct tok_db_job *const *jobs, unsigned n, struct tok_db_conn *conn)
{
    struct create_call *first = (struct create_call *)jobs[0];
    TOK_GUARD(tok_db_set_tenant(conn, first->tenant_id));
    size_t cap = STORE_COLS * TOK_PGARR_HEADER_LEN;
    for (unsigned i = 0; i < n; i++) {
        const struct create_call *c = (const struct create_call *)jobs[i];
        jobs[i]->status = TOK_ERR_CONFLICT; /* until its row comes back */
        cap += STORE_TOKEN_FIXED + strlen(c->metadata) + c->naccounts * STORE_REF_FIXED;
    }
    TOK_ENSURE(cap <= INT32_MAX, TOK_ERR_BOUNDS); /* each array's length goes to libpq as an int */
    /*
     * Not locked memory, as the JSON it replaced: it holds keyed hashes, sealed
     * references and pan_shaped tokens, no card data, and libpq copies it into
     * its own send buffer anyway (SECURITY.md, "Buffers we cannot wipe"). Wiped
     * between attempts and when freed all the same.
     */
    struct tok_buf b = {0};
    TOK_GUARD(tok_buf_alloc(&b, (uint32_t)cap, false));
    tok_status st = TOK_OK;
    for (unsigned attempt = 0; attempt < TOK_PAN_SHAPED_TRIES && st == TOK_OK; attempt++) {
        tok_buf_reset(&b);
        struct tok_slice cols[STORE_COLS];
        unsigned pending = 0;
        st = store_params(&b, jobs, n, attempt, cols, &pending);
        if (st != TOK_OK || pending == 0)
            break;
        const char *v[STORE_PARAMS] = {first->tenant_id};
        int l[STORE_PARAMS] = {0}, f[STORE_PARAMS] = {0}; /* $1 is text */
        for (unsigned k = 0; k < STORE_COLS; k++) {
            v[1 + k] = (const char *)cols[k].ptr;
            l[1 + k] = (int)cols[k].len;
            f[1 + k] = 1;
        }
        PGresult *res = NULL;
        st = tok_db_exec(conn, &token_store_sql, v, l, f, &res);
        /* rows come back in any order: find each one's job, starting where the last was */
        unsigned at = 0;
        for (int r = 0; st == TOK_OK && r < PQntuples(res); r++) {
            const char *id = PQgetvalue(res, r, 0);
            unsigned k = 0;
            while (k < n && strcmp(((struct create_call *)jobs[(at + k) % n])->row.id, id) != 0)
                k++;
            if (k == n) { /* not a row we sent: fail the group (res and b are freed below) */
                st = TOK_ERR_INTERNAL;
                break;
            }
            at = (at + k) % n;
            st = store_row_result((struct create_call *)jobs[at], res, r, attempt);
            jobs[at]->status = st;
            at = (at + 1) % n;
        }
        PQclear(res);
    }
    tok_buf_wipe(&b);
    /* the answer each stored token's Idempotency-Key replays, in the same transaction */
    for (unsigned i = 0; i < n && st == TOK_OK; i++) {
        struct create_call *c = (struct create_call *)jobs[i];
        if (jobs[i]->status != TOK_OK || !c->idem.present)
            continue;
        struct tok_buf body = {0};
        st = token_body(&c->row, c->publishable, &body);
        if (st == TOK_OK)
            st = tok_idem_finish(conn, c->tenant_id, c->row.livemode, &c->idem, 201,
                                 tok_buf_slice(&body));
        tok_buf_wipe(&body);
    }
    return st;
}

static const struct tok_db_group store_group = {"token_store", store_exec};

static tok_status create_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct create_call *c = (struct create_call *)job;
    if (c->insert_phase) {
        TOK_GUARD(store_exec(&job, 1, conn));
        return job->status;
    }
    const char *live = c->row.livemode ? "t" : "f";
    TOK_GUARD(tok_db_set_tenant(conn, c->tenant_id));
    if (c->settle_phase) {
        if (c->settle_status == 402)
            return tok_idem_finish(conn, c->tenant_id, c->row.livemode, &c->idem, 402,
                                   tok_buf_slice(&c->settle_body));
        return tok_idem_release(conn, c->tenant_id, c->row.livemode, &c->idem);
    }
    TOK_GUARD(tok_idem_begin(conn, c->tenant_id, c->row.livemode, &c->idem));
    if (c->idem.state != TOK_IDEM_NEW || !c->deduplicate)
        return TOK_OK;
    PGresult *res = NULL;
    const char *v[3] = {c->tenant_id, live, (const char *)c->fingerprint};
    const int l[3] = {0, 0, 32}, f[3] = {0, 0, 1};
    TOK_GUARD(tok_db_exec(conn, &token_by_fingerprint_sql, v, l, f, &res));
    tok_status st = TOK_OK;
    if (PQntuples(res) == 1) {
        c->found_existing = true;
        st = row_from_result(res, 0, &c->row);
    }
    PQclear(res);
    if (st == TOK_OK && c->found_existing)
        st = tok_audit_insert(conn, c->tenant_id, c->actor, "token.deduplicated", c->row.id,
                              c->request_id);
    if (st == TOK_OK && c->found_existing && c->idem.present) {
        struct tok_buf body = {0};
        st = token_body(&c->row, c->publishable, &body);
        if (st == TOK_OK)
            st = tok_idem_finish(conn, c->tenant_id, c->row.livemode, &c->idem, 200,
                                 tok_buf_slice(&body));
        tok_buf_wipe(&body);
    }
    return st;
}

static void create_result(struct tok_call *call, struct tok_req *r)
{
    struct create_call *c = (struct create_call *)call;
    if (!c->insert_phase && !c->settle_phase) {
        if (call->job.status != TOK_OK)
            c->found_existing = false; /* a failed lookup told nothing: give the hit back */
        dedup_settle(c);
    }
    if (call->job.status != TOK_OK) {
        wipe_card(c);
        tok_log_err("%s: %s: %s failed (%s)", __func__, r->id,
                    c->insert_phase   ? "token insert"
                    : c->settle_phase ? "idempotency record"
                                      : "idempotency claim or dedup lookup",
                    tok_status_name(call->job.status));
        tok_http_problem_db(r, &call->job, "the token could not be stored");
        return;
    }
    if (c->settle_phase) {
        tok_http_send(r, c->settle_status, "application/problem+json",
                      tok_buf_slice(&c->settle_body));
        return;
    }
    if (c->insert_phase) {
        send_token(r, 201, &c->row);
        return;
    }
    if (c->idem.state != TOK_IDEM_NEW) { /* a replay, a mismatch or a duplicate in flight */
        wipe_card(c);
        tok_idem_respond(r, &c->idem);
        return;
    }
    if (c->found_existing) {
        wipe_card(c);
        send_token(r, 200, &c->row);
        return;
    }
    /* not found: tokenise for real; this call object is reused for the insert */
    c->keep = true;
    run_gateway(r, c);
}

static void submit_insert(struct tok_req *r, struct create_call *c)
{
    c->insert_phase = true;
    c->call.job.exec = create_exec;
    c->call.job.group = &store_group;
    c->call.job.group_key = c->tenant_id;
    c->call.on_result = create_result;
    c->call.release = create_release;
    tok_http_call_cancellable(r, &c->call); /* a reset stream stores nothing */
}

/*
 * Reserves one of the key's de-duplication hits before the lookup; at the limit answers 429
 * itself (whatever the card: the refusal tells nothing about it), audits and, once a
 * window, logs it, and returns false.
 */
static bool dedup_reserve(struct tok_req *r, struct create_call *c)
{
    struct tok_dedup_guard *g = r->app->dedup_guard;
    bool allowed = false, first = false;
    uint32_t retry_after = 0;
    if (g == NULL || tok_dedup_guard_reserve(g, c->actor, monotonic_s(), &allowed, &retry_after,
                                             &first) != TOK_OK) {
        tok_log_err("%s: %s: no de-duplication guard", __func__, r->id);
        tok_http_problem(r, 500, "internal_error", NULL, NULL);
        return false;
    }
    if (allowed) {
        c->dedup_guard = g;
        return true;
    }
    if (first) {
        struct tok_dedup_stats st;
        tok_dedup_guard_stats(g, &st);
        tok_log_warn("%s: %s: key %s reached its de-duplication limit (%u hits per %u s); "
                     "refused for %u s (process: %llu lookups, %llu hits, %llu refused)",
                     __func__, r->id, c->actor, r->app->cfg->dedup_hits_max,
                     r->app->cfg->dedup_window_s, retry_after, (unsigned long long)st.lookups,
                     (unsigned long long)st.hits, (unsigned long long)st.refused);
    }
    tok_audit_async(r, c->tenant_id, c->actor, "token.dedup_limited", NULL);
    char ra[16];
    snprintf(ra, sizeof ra, "%u", retry_after);
    tok_http_header(r, "retry-after", ra);
    tok_http_problem(r, 429, "dedup_limit_exceeded",
                     "this key used its de-duplication budget; retry after the window ends, or "
                     "tokenise without deduplicate",
                     "deduplicate");
    return false;
}

/*
 * The request hash of an Idempotency-Key: the request as validated, the CVC left out (no
 * form of it may be kept: a retry with another CVC replays). The card is its tenant-keyed
 * fingerprint, as stored with the token.
 */
static tok_status idem_hash(struct tok_req *r, struct create_call *c)
{
    char exp[32], expires[24];
    snprintf(exp, sizeof exp, "%d/%d", c->row.exp_month, c->row.exp_year);
    snprintf(expires, sizeof expires, "%lld", (long long)c->expires_at);
    const struct tok_slice parts[] = {
        tok_slice_of(c->fingerprint, sizeof c->fingerprint),
        tok_slice_str(exp),
        c->secret->card.name,
        tok_slice_str(c->secret->card.cvc.len > 0 ? "cvc" : "-"),
        tok_slice_str(c->metadata),
        tok_slice_str(c->deduplicate ? "dedup" : "-"),
        tok_slice_str(expires),
        tok_slice_str(c->row.format),
    };
    return tok_idem_hash_parts(r, parts, TOK_ARRAY_LEN(parts), &c->idem);
}

static void create_authed(struct tok_req *r)
{
    h2o_req_t *req = r->req;
    struct tok_slice ct;
    if (tok_http_req_header(r, "content-type", &ct) && !(ct.len >= 16 && strncasecmp((const char *)ct.ptr, "application/json", 16) == 0)) {
        tok_http_problem(r, 415, "unsupported_media_type", "send application/json", NULL);
        return;
    }
    struct tok_json_limits lim = tok_json_limits_default();
    lim.max_body = r->app->cfg->body_limit;
    lim.max_string_len = r->app->cfg->body_limit; /* long fields get their own 422 below */
    struct tok_json_doc *doc = NULL;
    struct tok_json_error jerr;
    tok_status st = tok_json_parse(tok_slice_of(req->entity.base, req->entity.len), &lim, &doc, &jerr);
    /* the body held the PAN and CVC: wipe h2o's copy now that ours is in locked memory */
    if (req->entity.base != NULL && req->entity.len > 0)
        sodium_memzero((void *)req->entity.base, req->entity.len);
    if (st != TOK_OK) {
        tok_http_problem(r, 400, jerr.code != NULL ? jerr.code : "malformed_json", jerr.detail, NULL);
        return;
    }
    struct create_call *c = calloc(1, sizeof *c);
    struct card_secret *cs = tok_secmem_alloc(sizeof *cs); /* zeroed */
    if (c == NULL || cs == NULL) {
        free(c);
        tok_secmem_free(cs);
        tok_json_doc_free(&doc);
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    tok_buf_init(&cs->pan_buf, cs->pan, sizeof cs->pan);
    tok_buf_init(&cs->cvc_buf, cs->cvc, sizeof cs->cvc);
    tok_buf_init(&cs->name_buf, cs->name, sizeof cs->name);
    c->secret = cs;
    copy_field(c->tenant_id, sizeof c->tenant_id, r->principal->tenant_id);
    copy_field(c->actor, sizeof c->actor, r->principal->key_id);
    copy_field(c->request_id, sizeof c->request_id, r->id);
    c->publishable = r->principal->publishable;
    if (tok_idem_key_scoped(r, r->principal->key_id, &c->idem) != TOK_OK) {
        tok_json_doc_free(&doc);
        tok_http_problem(r, 400, "invalid_idempotency_key",
                         "Idempotency-Key must be 1 to 255 printable ASCII characters", NULL);
        create_release(&c->call);
        return;
    }
    struct field_error fe = {0};
    st = validate(r, tok_json_root(doc), c, &fe);
    tok_json_doc_free(&doc);
    if (st == TOK_OK && c->idem.present)
        st = idem_hash(r, c);
    if (st != TOK_OK) {
        if (fe.code != NULL)
            tok_http_problem(r, 422, fe.code, fe.detail, fe.param);
        else
            tok_http_problem(r, 500, "internal_error", NULL, NULL);
        create_release(&c->call);
        return;
    }
    if (c->deduplicate && !dedup_reserve(r, c)) {
        create_release(&c->call);
        return;
    }
    if (c->deduplicate || c->idem.present) {
        c->call.job.exec = create_exec;
        c->call.on_result = create_result;
        c->call.release = create_release;
        tok_http_call(r, &c->call);
        return;
    }
    run_gateway(r, c);
}

void tok_tokens_create(struct tok_req *r)
{
    tok_auth_require_limited(r, TOK_SCOPE_TOKENS_WRITE | TOK_SCOPE_TOKENS_CREATE, TOK_RL_TOKENISE,
                             create_authed);
}

/* ---- GET and DELETE /v1/tokens/{id} ------------------------------------------------- */

#define DETACH_SEALED_MAX (TOK_GATEWAY_REF_MAX + TOK_SEALED_OVERHEAD)

/* A gateway reference redaction asks its gateway to forget (Stripe detach, Adyen delete). */
struct detach_ref {
    char gateway[48];
    uint8_t sealed[DETACH_SEALED_MAX];
    size_t sealed_len;
    uint32_t key_version;
    char pm_ref[TOK_GATEWAY_REF_MAX + 1]; /* secret while it exists */
    struct tok_gateway_call gw;
};

struct token_call {
    struct tok_call call; /* first */
    bool redact;
    bool found;
    char tenant_id[TOK_ID_MAX];
    char actor[TOK_ID_MAX];
    char request_id[TOK_REQUEST_ID_LEN + 1];
    char token_id[TOK_ID_MAX];
    bool livemode;
    struct token_row row;
    struct detach_ref refs[TOK_ACCOUNTS_MAX];
    unsigned nrefs, pending;
    bool keep; /* skip one release: the gateway calls still use it */
};

static tok_status read_refs_to_detach(struct tok_db_conn *conn, struct token_call *t)
{
    const char *v[2] = {t->tenant_id, t->token_id};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_exec(conn, &refs_to_detach_sql, v, NULL, NULL, &res));
    for (int i = 0; i < PQntuples(res) && t->nrefs < TOK_ACCOUNTS_MAX; i++) {
        struct detach_ref *d = &t->refs[t->nrefs];
        size_t n = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 1), &n);
        if (raw == NULL || n > sizeof d->sealed) {
            PQfreemem(raw);
            continue;
        }
        tok_copy(d->sealed, raw, n);
        d->sealed_len = n;
        PQfreemem(raw);
        copy_field(d->gateway, sizeof d->gateway, PQgetvalue(res, i, 0));
        d->key_version = (uint32_t)strtoul(PQgetvalue(res, i, 2), NULL, 10);
        t->nrefs++;
    }
    PQclear(res);
    return TOK_OK;
}

static tok_status token_exec(struct tok_db_job *job, struct tok_db_conn *conn)
{
    struct token_call *t = (struct token_call *)job;
    const char *v[3] = {t->tenant_id, t->token_id, t->livemode ? "t" : "f"};
    PGresult *res = NULL;
    TOK_GUARD(tok_db_set_tenant(conn, t->tenant_id));
    if (t->redact) {
        TOK_GUARD(tok_db_exec(conn, &token_redact_sql, v, NULL, NULL, &res));
        bool hit = PQntuples(res) == 1;
        PQclear(res);
        if (!hit)
            return TOK_OK; /* found stays false: 404 */
        TOK_GUARD(read_refs_to_detach(conn, t));
        TOK_GUARD(tok_db_exec(conn, &refs_destroy_sql, v, NULL, NULL, &res));
        PQclear(res);
    }
    TOK_GUARD(tok_db_exec(conn, &token_by_id_sql, v, NULL, NULL, &res));
    tok_status st = TOK_OK;
    if (PQntuples(res) == 1) {
        t->found = true;
        st = row_from_result(res, 0, &t->row);
    }
    PQclear(res);
    if (st == TOK_OK && t->found)
        st = tok_audit_insert(conn, t->tenant_id, t->actor, t->redact ? "token.redacted" : "token.read",
                              t->token_id, t->request_id);
    return st;
}

static void token_release(struct tok_call *call);

/* Every gateway has answered the redaction (or the request went away): answer. */
static void on_detach_done(struct tok_gateway_call *gw)
{
    struct token_call *t = gw->data;
    struct detach_ref *d = (struct detach_ref *)((uint8_t *)gw - offsetof(struct detach_ref, gw));
    sodium_memzero(d->pm_ref, sizeof d->pm_ref);
    struct tok_req *r = t->call.r;
    bool ok = gw->outcome == TOK_GW_OK;
    if (!ok)
        tok_log_warn("%s: %s: gateway %s did not forget the card of %s: %s", __func__,
                     t->request_id, d->gateway, t->token_id, gw->code != NULL ? gw->code : "-");
    if (r != NULL)
        tok_audit_async(r, t->tenant_id, t->actor,
                        ok ? "token.gateway_detached" : "token.gateway_detach_failed",
                        t->token_id);
    if (--t->pending > 0)
        return;
    r = tok_http_unwatch(&t->call);
    if (r != NULL)
        send_token(r, 200, &t->row);
    token_release(&t->call);
}

/*
 * Redaction asks each gateway to forget the card (Stripe: detach the PaymentMethod; Adyen:
 * delete the stored payment method), after the references are destroyed here: the
 * redaction never depends on a gateway. A gateway that fails is logged and audited
 * (token.gateway_detach_failed); the reference is gone all the same.
 */
static bool start_detach(struct tok_req *r, struct token_call *t)
{
    const struct tok_principal *p = r->principal;
    unsigned n = 0;
    for (unsigned i = 0; i < t->nrefs; i++) {
        struct detach_ref *d = &t->refs[i];
        const struct tok_gateway_account *acct = NULL;
        for (unsigned k = 0; k < p->naccounts; k++)
            if (strcmp(p->accounts[k].id, d->gateway) == 0)
                acct = &p->accounts[k];
        char row_id[TOK_ID_MAX + sizeof d->gateway + 2];
        snprintf(row_id, sizeof row_id, "%s:%s", t->token_id, d->gateway);
        struct tok_aad aad = {t->tenant_id, "vault.gateway_refs", "ref_sealed", row_id};
        struct tok_buf pm;
        tok_buf_init(&pm, d->pm_ref, sizeof d->pm_ref - 1);
        const struct tok_tenant_keys *keys = tok_principal_keys(p, d->key_version);
        if (acct == NULL || keys == NULL ||
            tok_tenant_keys_open(keys, aad, tok_slice_of(d->sealed, d->sealed_len), &pm) !=
                TOK_OK) {
            tok_log_warn("%s: %s: the %s reference of %s cannot be sent for detaching", __func__,
                         r->id, d->gateway, t->token_id);
            tok_audit_async(r, t->tenant_id, t->actor, "token.gateway_detach_failed", t->token_id);
            sodium_memzero(d->pm_ref, sizeof d->pm_ref);
            d->gateway[0] = '\0';
            continue;
        }
        d->pm_ref[pm.len] = '\0';
        memset(&d->gw, 0, sizeof d->gw);
        d->gw.op = TOK_GW_DETACH;
        d->gw.livemode = t->livemode;
        d->gw.account = acct;
        d->gw.env = &r->worker->gw_env;
        d->gw.pm_ref = d->pm_ref;
        char key[sizeof d->gw.idempotency_key];
        snprintf(key, sizeof key, "tokend_%s_%s_detach", t->token_id, d->gateway);
        copy_field(d->gw.idempotency_key, sizeof d->gw.idempotency_key, key);
        d->gw.done = on_detach_done;
        d->gw.data = t;
        n++;
    }
    if (n == 0)
        return false;
    t->pending = n;
    /* set before any submit: an adapter may complete at once (the sandbox does), and then
     * the last on_detach_done must leave t to the db job's release */
    t->keep = true;
    tok_http_watch(r, &t->call);
    /* submitted after all are set up: the last completion frees t */
    struct tok_gateway_call *calls[TOK_ACCOUNTS_MAX];
    const struct tok_gateway_ops *ops[TOK_ACCOUNTS_MAX];
    unsigned m = 0;
    for (unsigned i = 0; i < t->nrefs; i++) {
        if (t->refs[i].gateway[0] == '\0')
            continue;
        calls[m] = &t->refs[i].gw;
        ops[m] = t->refs[i].gw.account->ops;
        m++;
    }
    for (unsigned i = 0; i < m; i++)
        tok_gateway_submit(ops[i], calls[i]);
    return true;
}

static void token_result(struct tok_call *call, struct tok_req *r)
{
    struct token_call *t = (struct token_call *)call;
    if (call->job.status != TOK_OK) {
        tok_log_err("%s: %s: token %s failed (%s)", __func__, r->id, t->redact ? "redaction" : "read",
                    tok_status_name(call->job.status));
        tok_http_problem_db(r, &call->job, NULL);
        return;
    }
    if (!t->found) {
        tok_http_problem(r, 404, "token_not_found", "no such token", "id");
        return;
    }
    if (t->redact && t->nrefs > 0 && start_detach(r, t))
        return; /* on_detach_done answers; the job's release or the last detach frees t */
    send_token(r, 200, &t->row);
}

static void token_release(struct tok_call *call)
{
    struct token_call *t = (struct token_call *)call;
    if (t->keep) {
        t->keep = false;
        return;
    }
    free(t->row.metadata);
    sodium_memzero(t, sizeof *t);
    free(t);
}

static void token_authed(struct tok_req *r, bool redact)
{
    struct tok_slice id = r->params[0];
    bool ok = id.len == 4 + TOK_RANDOM_ID_CHARS && memcmp(id.ptr, "tok_", 4) == 0 &&
              tok_base62_is_alphabet(tok_slice_of(id.ptr + 4, id.len - 4));
    if (!ok) {
        tok_http_problem(r, 404, "token_not_found", "no such token", "id");
        return;
    }
    struct token_call *t = calloc(1, sizeof *t);
    if (t == NULL) {
        tok_http_problem(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    t->redact = redact;
    t->livemode = r->principal->livemode;
    tok_copy(t->token_id, id.ptr, id.len);
    copy_field(t->tenant_id, sizeof t->tenant_id, r->principal->tenant_id);
    copy_field(t->actor, sizeof t->actor, r->principal->key_id);
    copy_field(t->request_id, sizeof t->request_id, r->id);
    t->call.job.exec = token_exec;
    t->call.on_result = token_result;
    t->call.release = token_release;
    tok_http_call(r, &t->call);
}

static void get_authed(struct tok_req *r)
{
    token_authed(r, false);
}

static void redact_authed(struct tok_req *r)
{
    token_authed(r, true);
}

void tok_tokens_get(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_TOKENS_READ, get_authed);
}

void tok_tokens_redact(struct tok_req *r)
{
    tok_auth_require(r, TOK_SCOPE_TOKENS_WRITE, redact_authed);
}
