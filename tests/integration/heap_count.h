/*
 * The heap a test program uses, counted exactly: in a build without sanitizers on glibc,
 * heap_count.c replaces malloc, calloc, realloc, reallocarray, free and the aligned allocators of
 * the program that links it (glibc's documented way to replace malloc), forwards each call to
 * glibc's own (`__libc_malloc`, ...) and keeps the sum of the usable sizes of the blocks not yet
 * freed, whoever allocated them: the service, libmosquitto, OpenSSL, the C library itself.
 *
 * Unlike mallinfo2(), the count leaves out what the allocator keeps for itself (per-thread
 * caches, chunk headers, free lists), which drifts over a long run as threads fill their caches.
 *
 * Linked into the soak only. Under ASan or TSan (which replace malloc themselves) and on other C
 * libraries, it counts nothing and hc_in_use() returns -1. Valgrind replaces these functions in
 * the program too: there the count means nothing. Heaptrack, which replaces malloc through
 * LD_PRELOAD, does not see the allocations of a program that links it.
 */
#ifndef HEAP_COUNT_H
#define HEAP_COUNT_H

#include <stdlib.h> /* defines __GLIBC__ on glibc */

/* Defined where heap_count.c counts (hc_in_use() >= 0), outside valgrind. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define HC_COUNTS 1
#endif

/* Bytes allocated and not yet freed, as usable sizes; -1 when this build does not count.
 * Any thread; a relaxed read of a counter that every allocation updates atomically. */
long hc_in_use(void);

#endif
