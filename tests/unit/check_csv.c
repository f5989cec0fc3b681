#include "tokend/core/csv.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

/* Collects records as "field|field|...@line[!error]" lines into one string. */
struct collect {
    char out[8192];
    size_t len;
    int stop_after; /* 0 = never */
};

static tok_status on_rec(void *ctx, const struct tok_csv_record *rec)
{
    struct collect *c = ctx;
    for (size_t i = 0; i < rec->nfields; i++) {
        size_t fl = rec->fields[i].len > 64 ? 0 : rec->fields[i].len; /* long ones print empty */
        int n = snprintf(c->out + c->len, sizeof c->out - c->len, "%s%.*s", i ? "|" : "",
                         (int)fl, (const char *)rec->fields[i].ptr);
        c->len += (size_t)n;
    }
    int n = snprintf(c->out + c->len, sizeof c->out - c->len, "@%llu%s%s\n",
                     (unsigned long long)rec->line, rec->error ? "!" : "",
                     rec->error ? rec->error : "");
    c->len += (size_t)n;
    if (c->stop_after > 0 && rec->index + 1 >= (uint64_t)c->stop_after)
        return TOK_ERR_INPUT;
    return TOK_OK;
}

/* Parses in with every chunk size from 1 to 7 and whole, checks each gives want. */
static void parse_all_ways(const char *in, size_t inlen, const char *want)
{
    for (size_t chunk = 1; chunk <= 8; chunk++) {
        struct collect c = {.len = 0};
        struct tok_csv *p = NULL;
        ck_assert_int_eq(tok_csv_new(on_rec, &c, &p), TOK_OK);
        size_t step = chunk == 8 ? inlen : chunk;
        for (size_t i = 0; i < inlen; i += step) {
            size_t n = inlen - i < step ? inlen - i : step;
            ck_assert_int_eq(tok_csv_feed(p, in + i, n), TOK_OK);
        }
        ck_assert_int_eq(tok_csv_finish(p), TOK_OK);
        tok_csv_free(&p);
        ck_assert_ptr_null(p);
        ck_assert_msg(strcmp(c.out, want) == 0, "chunk %zu: got\n%s\nwant\n%s", chunk, c.out, want);
    }
}
#define PARSE(in, want) parse_all_ways(in, sizeof(in) - 1, want)

START_TEST(test_simple)
{
    PARSE("a,b,c\n1,2,3\n", "a|b|c@1\n1|2|3@2\n");
    PARSE("a,b\r\n1,2\r\n", "a|b@1\n1|2@2\n");
    PARSE("a,b\r1,2", "a|b@1\n1|2@2\n");
    PARSE("a,,c\n,\n", "a||c@1\n|@2\n");
}
END_TEST

START_TEST(test_quoted)
{
    PARSE("\"a,b\",\"say \"\"hi\"\"\"\n", "a,b|say \"hi\"@1\n");
    PARSE("x,\"line1\r\nline2\"\ny,z\n", "x|line1\r\nline2@1\ny|z@3\n");
    PARSE("\"\",\"\"\n", "|@1\n");
    PARSE("\"\"\n", "@1\n");
}
END_TEST

START_TEST(test_bom_and_blank_lines)
{
    PARSE("\xEF\xBB\xBF" "id,amount\r\n\r\nch_1,100\r\n\r\n", "id|amount@1\nch_1|100@3\n");
    /* a partial BOM is data */
    PARSE("\xEF\xBBx,y\n", "\xEF\xBBx|y@1\n");
    PARSE("\xEF", "\xEF@1\n");
}
END_TEST

START_TEST(test_writer)
{
    uint8_t mem[128];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_csv_put_text(&b, tok_slice_str("plain"), true), TOK_OK);
    ck_assert_int_eq(tok_csv_put_text(&b, tok_slice_str("a,b"), false), TOK_OK);
    ck_assert_int_eq(tok_csv_put_text(&b, tok_slice_str("say \"x\""), false), TOK_OK);
    ck_assert_int_eq(tok_csv_put_text(&b, tok_slice_str("l1\nl2"), false), TOK_OK);
    ck_assert_int_eq(tok_csv_put_text(&b, tok_slice_str(""), false), TOK_OK);
    ck_assert_int_eq(tok_csv_end(&b), TOK_OK);
    const char want[] = "plain,\"a,b\",\"say \"\"x\"\"\",\"l1\nl2\",\r\n";
    ck_assert_uint_eq(b.len, sizeof want - 1);
    ck_assert(memcmp(b.data, want, b.len) == 0);
    /* and it reads back */
    struct collect c = {.len = 0};
    struct tok_csv *p = NULL;
    ck_assert_int_eq(tok_csv_new(on_rec, &c, &p), TOK_OK);
    ck_assert_int_eq(tok_csv_feed(p, b.data, b.len), TOK_OK);
    ck_assert_int_eq(tok_csv_finish(p), TOK_OK);
    tok_csv_free(&p);
    ck_assert_str_eq(c.out, "plain|a,b|say \"x\"|l1\nl2|@1\n");
}
END_TEST

/* One cell through put_text or put_number into a fresh buffer, compared with want. */
static void cell_is(bool number, const char *in, size_t inlen, const char *want)
{
    uint8_t mem[256];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    struct tok_slice v = tok_slice_of(in, inlen);
    tok_status st = number ? tok_csv_put_number(&b, v, true) : tok_csv_put_text(&b, v, true);
    ck_assert_int_eq(st, TOK_OK);
    ck_assert_msg(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
                  "%s cell [%.*s]: got [%.*s] want [%s]", number ? "number" : "text", (int)inlen,
                  in, (int)b.len, (const char *)b.data, want);
}
#define TEXT_IS(in, want) cell_is(false, in, sizeof(in) - 1, want)
#define NUMBER_IS(in, want) cell_is(true, in, sizeof(in) - 1, want)

START_TEST(test_text_neutralised)
{
    /* OWASP's six: each gets a ' and quotes, quotes inside doubled */
    TEXT_IS("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\"");
    TEXT_IS("+1+1", "\"'+1+1\"");
    TEXT_IS("-2+3", "\"'-2+3\"");
    TEXT_IS("@SUM(A1)", "\"'@SUM(A1)\"");
    TEXT_IS("\t=1+1", "\"'\t=1+1\"");
    TEXT_IS("\r=1+1", "\"'\r=1+1\"");
    TEXT_IS("=", "\"'=\"");
    /* a number in a text column is text: -5 as an invoice reference is not an amount */
    TEXT_IS("-5", "\"'-5\"");
    /* only the first byte counts; elsewhere = is harmless */
    TEXT_IS("a=1+1", "a=1+1");
    TEXT_IS("INV-7", "INV-7");
    TEXT_IS(" =1", " =1");
    TEXT_IS("", "");
    /* separators of other locales and a tab inside are quoted */
    TEXT_IS("a;=1+1", "\"a;=1+1\"");
    TEXT_IS("a\tb", "\"a\tb\"");
    ck_assert(tok_csv_formula_lead(tok_slice_str("@x")));
    ck_assert(!tok_csv_formula_lead(tok_slice_str("")));
    ck_assert(!tok_csv_formula_lead(tok_slice_str("'=x")));
}
END_TEST

START_TEST(test_numbers_stay_numbers)
{
    NUMBER_IS("0", "0");
    NUMBER_IS("1050", "1050");
    NUMBER_IS("-300", "-300"); /* a refund line stays a negative number */
    NUMBER_IS("", "");
    /* not a plain integer: written as a neutralised text cell */
    NUMBER_IS("-2+3", "\"'-2+3\"");
    NUMBER_IS("-", "\"'-\"");
    NUMBER_IS("=1", "\"'=1\"");
    NUMBER_IS("1.5", "1.5");
    NUMBER_IS("1,5", "\"1,5\"");
    NUMBER_IS("+1", "\"'+1\"");
}
END_TEST

START_TEST(test_neutralised_reads_back)
{
    uint8_t mem[256];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    ck_assert_int_eq(tok_csv_put_text(&b, tok_slice_str("=cmd|' /C calc'!A0"), true), TOK_OK);
    ck_assert_int_eq(tok_csv_put_number(&b, tok_slice_str("-300"), false), TOK_OK);
    ck_assert_int_eq(tok_csv_put_text(&b, tok_slice_str("@x,\"y\""), false), TOK_OK);
    ck_assert_int_eq(tok_csv_end(&b), TOK_OK);
    struct collect c = {.len = 0};
    struct tok_csv *p = NULL;
    ck_assert_int_eq(tok_csv_new(on_rec, &c, &p), TOK_OK);
    ck_assert_int_eq(tok_csv_feed(p, b.data, b.len), TOK_OK);
    ck_assert_int_eq(tok_csv_finish(p), TOK_OK);
    tok_csv_free(&p);
    /* a CSV parser sees the ' as data; no field starts with a formula character */
    ck_assert_str_eq(c.out, "'=cmd|' /C calc'!A0|-300|'@x,\"y\"@1\n");
}
END_TEST

START_TEST(test_writer_limits)
{
    /* the ' and the quotes count against the buffer: exactly enough, then one byte short */
    static const char v[] = "=1";
    const char want[] = "\"'=1\"";
    for (size_t cap = 0; cap <= sizeof want - 1; cap++) {
        uint8_t mem[8];
        struct tok_buf b;
        tok_buf_init(&b, mem, cap);
        tok_status st = tok_csv_put_text(&b, tok_slice_str(v), true);
        ck_assert_int_eq(st, cap == sizeof want - 1 ? TOK_OK : TOK_ERR_BOUNDS);
    }
    uint8_t mem[4];
    struct tok_buf b;
    tok_buf_init(&b, mem, 3);
    ck_assert_int_eq(tok_csv_put_number(&b, tok_slice_str("-30"), true), TOK_OK);
    ck_assert_int_eq(tok_csv_put_number(&b, tok_slice_str("1"), false), TOK_ERR_BOUNDS);
}
END_TEST

START_TEST(test_limits_fields)
{
    char in[TOK_CSV_FIELDS_MAX * 2 + 8];
    size_t n = 0;
    for (int i = 0; i < TOK_CSV_FIELDS_MAX; i++) {
        in[n++] = 'x';
        in[n++] = i + 1 < TOK_CSV_FIELDS_MAX ? ',' : '\n';
    }
    struct collect c = {.len = 0};
    struct tok_csv *p = NULL;
    ck_assert_int_eq(tok_csv_new(on_rec, &c, &p), TOK_OK);
    ck_assert_int_eq(tok_csv_feed(p, in, n), TOK_OK); /* exactly the maximum: fine */
    ck_assert_ptr_null(strchr(c.out, '!'));
    c.len = 0;
    c.out[0] = '\0';
    in[n - 1] = ',';
    in[n++] = 'y';
    in[n++] = '\n';
    ck_assert_int_eq(tok_csv_feed(p, in, n), TOK_OK); /* one more: malformed */
    ck_assert_ptr_nonnull(strstr(c.out, "!too many fields"));
    ck_assert_uint_eq(tok_csv_records(p), 2);
    tok_csv_free(&p);
}
END_TEST

START_TEST(test_limits_record_size)
{
    static char in[TOK_CSV_RECORD_MAX + 16];
    memset(in, 'a', TOK_CSV_RECORD_MAX);
    in[TOK_CSV_RECORD_MAX] = '\n';
    in[TOK_CSV_RECORD_MAX + 1] = 'b';
    in[TOK_CSV_RECORD_MAX + 2] = 'a';
    in[TOK_CSV_RECORD_MAX + 3] = 'a';
    in[TOK_CSV_RECORD_MAX + 4] = '\n';
    struct collect c = {.len = 0};
    struct tok_csv *p = NULL;
    ck_assert_int_eq(tok_csv_new(on_rec, &c, &p), TOK_OK);
    ck_assert_int_eq(tok_csv_feed(p, in, TOK_CSV_RECORD_MAX + 1), TOK_OK);
    ck_assert_ptr_null(strchr(c.out, '!')); /* exactly the maximum */
    ck_assert_int_eq(tok_csv_feed(p, "x", 1), TOK_OK);
    ck_assert_int_eq(tok_csv_feed(p, in, TOK_CSV_RECORD_MAX + 5), TOK_OK);
    ck_assert_ptr_nonnull(strstr(c.out, "@2!record too long\nbaa@3\n"));
    tok_csv_free(&p);
    /* empty input: no record */
    c.len = 0;
    c.out[0] = '\0';
    ck_assert_int_eq(tok_csv_new(on_rec, &c, &p), TOK_OK);
    ck_assert_int_eq(tok_csv_finish(p), TOK_OK);
    ck_assert_str_eq(c.out, "");
    tok_csv_free(&p);
    tok_csv_free(&p); /* NULL is fine */
}
END_TEST

START_TEST(test_malformed_continues)
{
    PARSE("a\"b,c\nok,1\n", "a\"b|c@1!quote inside an unquoted field\nok|1@2\n");
    PARSE("\"ab\"x,c\nok,2\n", "abx|c@1!text after a closing quote\nok|2@2\n");
    PARSE("ok,1\n\"open,2\n", "ok|1@1\nopen,2\n@2!quoted field not closed at the end of the file\n");
}
END_TEST

START_TEST(test_callback_stops)
{
    struct collect c = {.len = 0, .stop_after = 1};
    struct tok_csv *p = NULL;
    ck_assert_int_eq(tok_csv_new(on_rec, &c, &p), TOK_OK);
    ck_assert_int_eq(tok_csv_feed(p, "a\nb\nc\n", 6), TOK_ERR_INPUT);
    ck_assert_str_eq(c.out, "a@1\n");
    ck_assert_int_eq(tok_csv_finish(p), TOK_OK);
    tok_csv_free(&p);
}
END_TEST

START_TEST(test_binary_junk)
{
    /* NULs and high bytes are data; the reader never reads past what it was given */
    static const char in[] = "\x00\xff,\x01\n\"\x00\"\n";
    struct collect c = {.len = 0};
    struct tok_csv *p = NULL;
    ck_assert_int_eq(tok_csv_new(on_rec, &c, &p), TOK_OK);
    ck_assert_int_eq(tok_csv_feed(p, in, sizeof in - 1), TOK_OK);
    ck_assert_int_eq(tok_csv_finish(p), TOK_OK);
    ck_assert_uint_eq(tok_csv_records(p), 2);
    tok_csv_free(&p);
}
END_TEST

Suite *tok_csv_suite(void)
{
    Suite *s = suite_create("csv");
    TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
          *adv = tcase_create("adversarial");
    tcase_add_test(core, test_simple);
    tcase_add_test(core, test_quoted);
    tcase_add_test(core, test_bom_and_blank_lines);
    tcase_add_test(core, test_writer);
    tcase_add_test(core, test_text_neutralised);
    tcase_add_test(core, test_numbers_stay_numbers);
    tcase_add_test(core, test_neutralised_reads_back);
    tcase_add_test(limits, test_writer_limits);
    tcase_add_test(limits, test_limits_fields);
    tcase_add_test(limits, test_limits_record_size);
    tcase_add_test(adv, test_malformed_continues);
    tcase_add_test(adv, test_callback_stops);
    tcase_add_test(adv, test_binary_junk);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, adv);
    return s;
}
