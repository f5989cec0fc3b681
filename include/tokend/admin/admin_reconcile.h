/*
 * admin_reconcile.h - `tokenctl reconcile --gateway stripe|adyen --file F --tenant T
 * [--live|--test] [--exceptions OUT.csv]`: the settlement matcher (reconcile.h) run from the
 * command line on the owner's connection, streaming the file in 64 KiB reads, so a
 * 1,000,000-line report never sits in memory. Progress goes to stderr (a bar on a terminal,
 * a line every TOK_RECON_PROGRESS_LINES lines otherwise), the summary table to stdout,
 * and with --exceptions every unmatched line to OUT.csv
 * (kind,line,reference,object_id,report_amount,ledger_amount,report_currency,ledger_currency,reason).
 */
#ifndef TOKEND_ADMIN_RECONCILE_H
#define TOKEND_ADMIN_RECONCILE_H

#include "tokend/admin/admin.h"

#define TOK_RECON_PROGRESS_LINES 100000
#define TOK_RECON_READ_CHUNK (64u * 1024u)

/**
 * Runs the command; argv (borrowed) holds the words after "reconcile". TOK_ERR_INPUT: bad
 * command line or report header. TOK_ERR_NOTFOUND: no such tenant. TOK_ERR_IO: the file.
 * TOK_ERR_DB. Exceptions found are not an error (exit 0); the summary says how many.
 */
TOK_MUST_CHECK tok_status tok_admin_reconcile(const struct tok_admin *a, int argc, char **argv);

#endif
