/*
 * log.c - JSON log lines on stderr. One write(2) per line, so lines from
 * different threads never interleave (stderr is unbuffered, lines are short).
 */
#include "tokend/core/log.h"
#include "tokend/core/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum tok_log_level min_level = TOK_LOG_INFO;

void tok_log_set_level(enum tok_log_level level)
{
    min_level = level;
}

tok_status tok_log_parse_level(const char *s, enum tok_log_level *out)
{
    static const struct {
        const char *name;
        enum tok_log_level level;
    } names[] = {{"debug", TOK_LOG_DEBUG}, {"info", TOK_LOG_INFO}, {"warn", TOK_LOG_WARN},
                 {"error", TOK_LOG_ERR}};
    TOK_ENSURE(s != NULL && out != NULL, TOK_ERR_INTERNAL);
    for (size_t i = 0; i < TOK_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return TOK_OK;
        }
    }
    return TOK_ERR_INPUT;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

void tok_log_mask_pans(uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (!is_digit(s[i]) || (i > 0 && is_digit(s[i - 1]))) {
            i++;
            continue;
        }
        /* collect a run of digits with single space/dash separators */
        size_t pos[40];
        size_t n = 0, j = i;
        while (j < len && n < TOK_ARRAY_LEN(pos)) {
            if (is_digit(s[j])) {
                pos[n++] = j++;
                continue;
            }
            if ((s[j] == ' ' || s[j] == '-') && j + 1 < len && is_digit(s[j + 1]) && n > 0) {
                j++;
                continue;
            }
            break;
        }
        if (n >= 12 && n <= 19) {
            for (size_t k = 0; k + 4 < n; k++)
                s[pos[k]] = '*';
        }
        i = j > i ? j : i + 1;
    }
}

static void write_line(uint8_t *line, size_t len)
{
    tok_log_mask_pans(line, len);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

static const char *level_name(enum tok_log_level level)
{
    switch (level) {
    case TOK_LOG_DEBUG:
        return "debug";
    case TOK_LOG_INFO:
        return "info";
    case TOK_LOG_WARN:
        return "warn";
    case TOK_LOG_ERR:
        return "error";
    default:
        return "error";
    }
}

static tok_status put_ts(struct tok_buf *b)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    return tok_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                          (long)(tv.tv_usec / 1000));
}

void tok_log(enum tok_log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[TOK_LOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t mlen = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;

    uint8_t mem[TOK_LOG_MSG_MAX * 6 + 128];
    struct tok_buf b;
    uint8_t ts[32];
    struct tok_buf tsb;
    tok_buf_init(&b, mem, sizeof mem);
    tok_buf_init(&tsb, ts, sizeof ts);
    if (put_ts(&tsb) != TOK_OK)
        return;
    struct tok_json_writer w;
    tok_jw_init(&w, &b);
    tok_jw_obj_begin(&w);
    tok_jw_key(&w, "ts");
    tok_jw_strn(&w, tok_buf_slice(&tsb));
    tok_jw_kstr(&w, "level", level_name(level));
    tok_jw_key(&w, "msg");
    tok_jw_strn(&w, tok_slice_of(msg, mlen));
    tok_jw_obj_end(&w);
    if (w.st != TOK_OK || tok_buf_putc(&b, '\n') != TOK_OK)
        return;
    write_line(b.data, b.len);
}

void tok_log_json_line(struct tok_slice json)
{
    uint8_t mem[4096];
    struct tok_buf b;
    tok_buf_init(&b, mem, sizeof mem);
    if (tok_buf_write(&b, json.ptr, json.len) != TOK_OK || tok_buf_putc(&b, '\n') != TOK_OK)
        return;
    write_line(b.data, b.len);
}
