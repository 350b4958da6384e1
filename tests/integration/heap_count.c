/* Exact count of the heap in use (see heap_count.h). */
#include "integration/heap_count.h"

#ifdef HC_COUNTS

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>

/* glibc's own allocator, under the names it exports for replacements to call. */
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_memalign(size_t alignment, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

/* The replacements must be seen by the libraries (the build hides symbols by default). */
#define REPLACES __attribute__((visibility("default")))

static atomic_long in_use;

static void *counted(void *p)
{
    if (p) {
        atomic_fetch_add_explicit(&in_use, (long)malloc_usable_size(p), memory_order_relaxed);
    }
    return p;
}

long hc_in_use(void)
{
    return atomic_load_explicit(&in_use, memory_order_relaxed);
}

REPLACES void *malloc(size_t size)
{
    return counted(__libc_malloc(size));
}

REPLACES void *calloc(size_t n, size_t size)
{
    return counted(__libc_calloc(n, size));
}

REPLACES void free(void *p)
{
    if (p) {
        atomic_fetch_sub_explicit(&in_use, (long)malloc_usable_size(p), memory_order_relaxed);
        __libc_free(p);
    }
}

REPLACES void *realloc(void *p, size_t size)
{
    long old = p ? (long)malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, size);

    if (q) {
        atomic_fetch_add_explicit(&in_use, (long)malloc_usable_size(q) - old, memory_order_relaxed);
    } else if (p && size == 0) {
        atomic_fetch_sub_explicit(&in_use, old, memory_order_relaxed); /* freed */
    }
    return q;
}

REPLACES void *reallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n * size);
}

REPLACES void *memalign(size_t alignment, size_t size)
{
    return counted(__libc_memalign(alignment, size));
}

REPLACES void *aligned_alloc(size_t alignment, size_t size)
{
    return counted(__libc_memalign(alignment, size));
}

REPLACES int posix_memalign(void **ret, size_t alignment, size_t size)
{
    if (alignment % sizeof(void *) || (alignment & (alignment - 1))) {
        return EINVAL;
    }
    void *p = counted(__libc_memalign(alignment, size));
    if (!p) {
        return ENOMEM;
    }
    *ret = p;
    return 0;
}

REPLACES void *valloc(size_t size)
{
    return counted(__libc_valloc(size));
}

REPLACES void *pvalloc(size_t size)
{
    return counted(__libc_pvalloc(size));
}

#else

long hc_in_use(void)
{
    return -1;
}

#endif
