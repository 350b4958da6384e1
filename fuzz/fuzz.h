/*
 * Shared by the fuzz targets (fuzz/fuzz_*.c): the libFuzzer entry point and small helpers.
 *
 * A target is one LLVMFuzzerTestOneInput(). It is linked either with libFuzzer (clang,
 * `make fuzz`) or with replay.c (any compiler, under ASan and UBSan in `make test`), which runs
 * the target over its committed corpus and a fixed number of mutations of it. A target reports
 * a broken property by abort(): both drivers then keep the input that did it.
 */
#ifndef PELIX_FUZZ_H
#define PELIX_FUZZ_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a C string, up to its first NUL byte (free()); aborts without memory. */
static inline char *fz_string(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t len = nul ? (size_t)(nul - data) : size;
    char *s = malloc(len + 1);

    if (!s) {
        abort();
    }
    memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

/* Stops the run with the property that failed, on stderr. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
