/*
 * admin_rotate.h - tokenctl's key rotations (issue #18; SECURITY.md, "Key rotation").
 *
 *   keys new-master --out F            the next master key file: a fresh KEK and this key
 *                                      line's sub-key root (keyring.h), mode 0600, O_EXCL
 *   keys new-master --pkcs11 URI [--pin-file F]
 *                                      the next master key made in a token, carrying the
 *                                      line's sub-key root (master_key.h); the current key
 *                                      may be a file or another token key
 *   keys rotate-master (--new-master-key-file F | --new-master-key-pkcs11 URI
 *                       [--new-master-key-pin-file F]) [--batch N] [--pause-ms MS]
 *                                      re-wraps every tenant key under the new KEK, as master
 *                                      version max+1; resumable (rows below the target)
 *   keys retire-master --version N [--destroy-pkcs11 URI [--pin-file F]]
 *                                      records that no wrapped key uses master version N
 *                                      (refused, exit 1, while any does or a rotation runs);
 *                                      with a URI, destroys that token key, refused if it
 *                                      still opens a wrapped key in use
 *   keys rotate-data --tenant T [--batch N] [--pause-ms MS] [--settle-ms MS]
 *   keys rotate-fingerprint --tenant T --yes-break-dedup [same options]
 *                                      a new tenant key version (fresh DEK; fresh FPK too for
 *                                      rotate-fingerprint), then every row moved to it in
 *                                      transactions of at most N rows (default 500); a rotation
 *                                      killed half-way resumes when either command is rerun
 *   keys retire --tenant T --version N destroys version N's wrapped keys; refused (exit 1)
 *                                      while it is active or any row uses it
 *
 * Progress goes to stderr: a bar (rows done/total, rate, time left) on a terminal, plain
 * "tokenctl: ..." lines otherwise. Every rotation and retirement writes audit events
 * (key.rotation_started, key.rotated, key.retired) with versions and row counts. A PIN file
 * not given for a second token key defaults to its URI's pin-source, else
 * --master-key-pin-file (the same token).
 */
#ifndef TOKEND_ADMIN_ROTATE_H
#define TOKEND_ADMIN_ROTATE_H

#include "tokend/admin/admin.h"

#define TOK_ROTATE_BATCH_DEFAULT 500
#define TOK_ROTATE_BATCH_MAX 10000
#define TOK_ROTATE_SETTLE_MS_DEFAULT 5000 /* > tokend's auth cache TTL (3 s), auth.h */
#define TOK_ROTATE_WAIT_MS_MAX 600000

/** The subcommands above; argv (borrowed) starts at the subcommand's first argument. */
TOK_MUST_CHECK tok_status tok_admin_keys_new_master(const struct tok_admin *a, int argc,
                                                    char **argv);
TOK_MUST_CHECK tok_status tok_admin_keys_rotate_master(const struct tok_admin *a, int argc,
                                                       char **argv);
TOK_MUST_CHECK tok_status tok_admin_keys_rotate_data(const struct tok_admin *a, int argc,
                                                     char **argv);
TOK_MUST_CHECK tok_status tok_admin_keys_rotate_fingerprint(const struct tok_admin *a, int argc,
                                                            char **argv);
TOK_MUST_CHECK tok_status tok_admin_keys_retire(const struct tok_admin *a, int argc, char **argv);
TOK_MUST_CHECK tok_status tok_admin_keys_retire_master(const struct tok_admin *a, int argc,
                                                       char **argv);

#endif
