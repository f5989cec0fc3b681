/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz share: the entry points
 * (declared, since the build has -Wmissing-prototypes), an assertion that
 * survives NDEBUG and names the broken property, and a line splitter for
 * targets whose input is several fields.
 */
#ifndef TOKEND_FUZZ_H
#define TOKEND_FUZZ_H

#include "tokend/core/common.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property that must hold for every input: abort() makes libFuzzer save the input. */
#define FUZZ_ASSERT(c)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz: %s:%d: property broken: %s\n", __FILE__, __LINE__, #c);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The next '\n'-terminated field of *rest (without the '\n'); the last one runs to the end. */
static inline struct tok_slice fuzz_line(struct tok_slice *rest)
{
    const uint8_t *nl = rest->len > 0 ? memchr(rest->ptr, '\n', rest->len) : NULL;
    size_t n = nl != NULL ? (size_t)(nl - rest->ptr) : rest->len;
    struct tok_slice f = tok_slice_of(rest->ptr, n);
    size_t skip = nl != NULL ? n + 1 : n;
    *rest = tok_slice_of(rest->ptr + skip, rest->len - skip);
    return f;
}

#endif
