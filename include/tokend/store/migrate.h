/*
 * migrate.h - applies sql/NNN_name.sql files in order, each once, each in its
 * own transaction, recorded in tokend_meta.schema_migrations with a SHA-256
 * of its text. A file changed after it was applied is refused, so every
 * database that says "version N" has run the same SQL.
 */
#ifndef TOKEND_MIGRATE_H
#define TOKEND_MIGRATE_H

#include "tokend/core/common.h"

#include <libpq-fe.h>

#define TOK_MIGRATIONS_MAX 999
#define TOK_MIGRATION_FILE_MAX (1024u * 1024u)

/**
 * Applies every pending migration from dir over conn (borrowed, owner role).
 * Prints one line per applied file to stdout. Holds an advisory lock so two
 * runners never interleave. TOK_ERR_INPUT for a bad file name, a gap or a
 * changed file; TOK_ERR_DB when PostgreSQL refuses a file; TOK_ERR_IO when the
 * directory or a file cannot be read. why gets a one-line reason.
 */
TOK_MUST_CHECK tok_status tok_migrate_apply(PGconn *conn, const char *dir, int *applied,
                                            char *why, size_t why_len);

#endif
