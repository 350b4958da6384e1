/*
 * Allocation wrappers. Every allocation of the library goes through here so that tests can make
 * the n-th one fail and check that each failure path releases what it holds.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static atomic_long fail_after = -1;
static atomic_long failures = 0;

void pelix__alloc_fail_after(long n)
{
    atomic_store(&fail_after, n);
    atomic_store(&failures, 0);
}

long pelix__alloc_failures(void)
{
    return atomic_load(&failures);
}

static bool should_fail(void)
{
    long n = atomic_load_explicit(&fail_after, memory_order_relaxed);
    if (n < 0) {
        return false;
    }
    if (n == 0) {
        atomic_fetch_add(&failures, 1);
        return true;
    }
    atomic_store(&fail_after, n - 1);
    return false;
}

void *pelix__malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size ? size : 1);
}

void *pelix__calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *pelix__realloc(void *ptr, size_t size)
{
    return should_fail() ? NULL : realloc(ptr, size ? size : 1);
}

static void (*_Atomic free_hook)(void *ptr);

void pelix__set_free_hook(void (*hook)(void *ptr))
{
    atomic_store(&free_hook, hook);
}

void pelix__free(void *ptr)
{
    void (*hook)(void *) = atomic_load_explicit(&free_hook, memory_order_relaxed);
    if (hook && ptr) {
        hook(ptr);
    }
    free(ptr);
}

char *pelix__strndup(const char *s, size_t n)
{
    char *copy = pelix__malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

char *pelix__strdup(const char *s)
{
    return pelix__strndup(s, strlen(s));
}

char *pelix__sprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *out;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return NULL;
    }
    out = pelix__malloc((size_t)n + 1);
    if (!out) {
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

int pelix__grow(void **items, size_t *cap, size_t need, size_t size)
{
    size_t ncap;
    void *p;

    if (need <= *cap) {
        return 0;
    }
    ncap = *cap ? *cap : 4;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size) {
            return -ENOMEM;
        }
        ncap *= 2;
    }
    p = pelix__realloc(*items, ncap * size);
    if (!p) {
        return -ENOMEM;
    }
    *items = p;
    *cap = ncap;
    return 0;
}
