/*
 * log.h - structured JSON logs, one line per event, to stderr.
 *
 * Every message is passed through a mask that replaces any run of 12-19
 * digits (spaces and dashes allowed between them) with asterisks, keeping the
 * last four: a PAN that reaches a log by a bug is still not written.
 */
#ifndef TOKEND_LOG_H
#define TOKEND_LOG_H

#include "tokend/core/common.h"

enum tok_log_level { TOK_LOG_DEBUG = 0, TOK_LOG_INFO, TOK_LOG_WARN, TOK_LOG_ERR };

/** Longest formatted message; longer ones are cut and marked with "...". */
#define TOK_LOG_MSG_MAX 1024

/** Sets the minimum level written (process-wide; set once before threads start). */
void tok_log_set_level(enum tok_log_level level);

/** Parses "debug", "info", "warn" or "error". TOK_ERR_INPUT otherwise. */
TOK_MUST_CHECK tok_status tok_log_parse_level(const char *s, enum tok_log_level *out);

/** Writes one log line {"ts","level","msg"} when level is enabled. */
void tok_log(enum tok_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tok_log_debug(...) tok_log(TOK_LOG_DEBUG, __VA_ARGS__)
#define tok_log_info(...) tok_log(TOK_LOG_INFO, __VA_ARGS__)
#define tok_log_warn(...) tok_log(TOK_LOG_WARN, __VA_ARGS__)
#define tok_log_err(...) tok_log(TOK_LOG_ERR, __VA_ARGS__)

/**
 * Writes a pre-built JSON object (the access log line) followed by a newline,
 * masked like every other line. `json` is borrowed.
 */
void tok_log_json_line(struct tok_slice json);

/**
 * Masks PAN-shaped digit runs in place: every digit of a run of 12-19 digits
 * (optionally separated by single spaces or dashes) except its last four
 * becomes '*'. Exposed for tests.
 */
void tok_log_mask_pans(uint8_t *s, size_t len);

#endif
