/*
 * admin_json.c - tokenctl --json: rows and created objects as JSON, so scripts parse with jq
 * instead of cutting tab-separated columns.
 */
#include "tokend/admin/admin_json.h"
#include "tokend/core/json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static tok_status put_value(struct tok_json_writer *w, enum tok_admin_json_kind kind,
                            struct tok_slice v)
{
    switch (kind) {
    case TOK_AJ_STR:
        if (v.ptr == NULL || v.len == 0)
            tok_jw_null(w);
        else
            tok_jw_strn(w, v);
        return TOK_OK;
    case TOK_AJ_BOOL:
        tok_jw_bool(w, v.ptr != NULL && (tok_slice_eq(v, "true") || tok_slice_eq(v, "t")));
        return TOK_OK;
    case TOK_AJ_INT: {
        TOK_ENSURE(v.ptr != NULL && v.len > 0 && v.len <= 18, TOK_ERR_INTERNAL);
        int64_t n = 0;
        bool neg = v.ptr[0] == '-';
        TOK_ENSURE(!neg || v.len > 1, TOK_ERR_INTERNAL);
        for (size_t i = neg ? 1 : 0; i < v.len; i++) {
            TOK_ENSURE(v.ptr[i] >= '0' && v.ptr[i] <= '9', TOK_ERR_INTERNAL);
            n = n * 10 + (v.ptr[i] - '0');
        }
        tok_jw_int(w, neg ? -n : n);
        return TOK_OK;
    }
    case TOK_AJ_LIST: {
        tok_jw_arr_begin(w);
        size_t start = 0;
        for (size_t i = 0; v.ptr != NULL && v.len > 0 && i <= v.len; i++) {
            if (i < v.len && v.ptr[i] != ',')
                continue;
            tok_jw_strn(w, tok_slice_of(v.ptr + start, i - start));
            start = i + 1;
        }
        tok_jw_arr_end(w);
        return TOK_OK;
    }
    default:
        return TOK_ERR_INTERNAL;
    }
}

/* One object from fields whose values come from row `row` of r (r != NULL) or from the
 * fields themselves. */
static tok_status put_object(struct tok_buf *b, const PGresult *r, int row,
                             const struct tok_admin_json_field *fields, size_t n)
{
    struct tok_json_writer w;
    tok_jw_init(&w, b);
    tok_jw_obj_begin(&w);
    for (size_t i = 0; i < n; i++) {
        struct tok_slice v = fields[i].value;
        if (r != NULL) {
            TOK_ENSURE(fields[i].col >= 0 && fields[i].col < PQnfields(r), TOK_ERR_INTERNAL);
            v = PQgetisnull(r, row, fields[i].col)
                    ? tok_slice_of(NULL, 0)
                    : tok_slice_of(PQgetvalue(r, row, fields[i].col),
                                   (size_t)PQgetlength(r, row, fields[i].col));
        }
        tok_jw_key(&w, fields[i].name);
        TOK_GUARD(put_value(&w, fields[i].kind, v));
    }
    tok_jw_obj_end(&w);
    return tok_jw_finish(&w);
}

static tok_status write_all(int fd, const uint8_t *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        TOK_ENSURE(w > 0, TOK_ERR_IO);
        done += (size_t)w;
    }
    return TOK_OK;
}

tok_status tok_admin_json_rows(const PGresult *r, const struct tok_admin_json_field *fields,
                               size_t nfields)
{
    TOK_ENSURE(r != NULL && fields != NULL, TOK_ERR_INTERNAL);
    struct tok_buf b;
    TOK_GUARD(tok_buf_alloc(&b, TOK_ADMIN_JSON_ROW_MAX, false));
    tok_status st = TOK_OK;
    int n = PQntuples(r);
    fputc('[', stdout);
    for (int i = 0; i < n && st == TOK_OK; i++) {
        tok_buf_reset(&b);
        st = put_object(&b, r, i, fields, nfields);
        if (st == TOK_OK) {
            fputs(i == 0 ? "\n" : ",\n", stdout);
            fwrite(b.data, 1, b.len, stdout);
        }
    }
    fputs(n > 0 ? "\n]\n" : "]\n", stdout);
    tok_buf_wipe(&b);
    TOK_GUARD(st);
    TOK_ENSURE(fflush(stdout) == 0 && !ferror(stdout), TOK_ERR_IO);
    return TOK_OK;
}

tok_status tok_admin_json_object(const struct tok_admin_json_field *fields, size_t nfields)
{
    TOK_ENSURE(fields != NULL, TOK_ERR_INTERNAL);
    TOK_ENSURE(fflush(stdout) == 0 && !ferror(stdout), TOK_ERR_IO);
    struct tok_buf b;
    TOK_GUARD(tok_buf_alloc(&b, TOK_ADMIN_JSON_ROW_MAX, true));
    tok_status st = put_object(&b, NULL, 0, fields, nfields);
    if (st == TOK_OK)
        st = tok_buf_write(&b, "\n", 1);
    if (st == TOK_OK)
        st = write_all(STDOUT_FILENO, b.data, b.len);
    tok_buf_wipe(&b);
    return st;
}
