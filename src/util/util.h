/*
 * Internal helpers shared by every module: allocation (with a failure-injection hook for tests),
 * strings, UTF-8, error details, logging, hash maps, UUIDs and clocks. Not installed.
 */
#ifndef PELIX_UTIL_H
#define PELIX_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pelix/errors.h>
#include <pelix/log.h>

/* ---- memory ---------------------------------------------------------------------------------- */

void *pelix__malloc(size_t size);
void *pelix__calloc(size_t n, size_t size);
void *pelix__realloc(void *ptr, size_t size);
void pelix__free(void *ptr);
char *pelix__strdup(const char *s);
char *pelix__strndup(const char *s, size_t n);
/* Formats into a new string; NULL on allocation failure. */
char *pelix__sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Test hook: the next `n` allocations succeed, then every one fails until reset with a negative
 * value. Process-wide; only for single-threaded OOM tests.
 */
void pelix__alloc_fail_after(long n);
/* Number of allocations that were made to fail since the last pelix__alloc_fail_after(). */
long pelix__alloc_failures(void);
/* Test hook: called with each block pelix__free() is about to free (NULL: none). Process-wide. */
void pelix__set_free_hook(void (*hook)(void *ptr));

/* Grows `*items` (of `*cap` elements of `size` bytes) to hold at least `need` elements. */
int pelix__grow(void **items, size_t *cap, size_t need, size_t size);

/* ---- strings --------------------------------------------------------------------------------- */

/* ASCII case-insensitive comparison (OSGi keys are compared this way). */
int pelix__strcasecmp(const char *a, const char *b);
bool pelix__streq_nocase(const char *a, const char *b);
/* True if `len` bytes at `s` are well-formed UTF-8 (no overlongs, no surrogates, no NUL). */
bool pelix__utf8_valid(const char *s, size_t len);
/* True if `s` is empty or only ASCII whitespace. */
bool pelix__str_blank(const char *s);
/* A growable string buffer; `oom` latches the first allocation failure. */
typedef struct pelix_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
} pelix_buf_t;
void pelix__buf_putn(pelix_buf_t *b, const char *s, size_t n);
void pelix__buf_puts(pelix_buf_t *b, const char *s);
void pelix__buf_putc(pelix_buf_t *b, char c);
void pelix__buf_printf(pelix_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the NUL-terminated string (ownership to the caller) or NULL if an allocation failed. */
char *pelix__buf_take(pelix_buf_t *b);
void pelix__buf_reset(pelix_buf_t *b);

/* ---- errors and logs ------------------------------------------------------------------------- */

/* Fills `err` (if not NULL) and returns `code`. */
int pelix__error(pelix_error_t *err, int code, long position, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void pelix__log(const pelix_logger_t *logger, pelix_log_level_t level, const char *module,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- hash maps ------------------------------------------------------------------------------- */

/*
 * Open-addressing hash map from a key (a NUL-terminated string, or a positive long) to a pointer.
 * String keys are borrowed: the caller keeps them alive while they are in the map (typically the
 * key lives in the value). Not thread-safe.
 */
typedef struct pelix_map {
    struct pelix_map_slot *slots;
    uint32_t cap;
    uint32_t count;
    uint32_t used; /* count + tombstones */
    bool strings;
} pelix_map_t;

void pelix__map_init_str(pelix_map_t *m);
void pelix__map_init_long(pelix_map_t *m);
void pelix__map_clear(pelix_map_t *m);
void *pelix__map_get_str(const pelix_map_t *m, const char *key);
void *pelix__map_get_long(const pelix_map_t *m, long key);
/* Inserts or replaces (key and value: the key is borrowed, usually owned by the value); 0,
 * -ENOMEM, or -EINVAL for a long key <= 0. */
int pelix__map_put_str(pelix_map_t *m, const char *key, void *value);
int pelix__map_put_long(pelix_map_t *m, long key, void *value);
/* Removes and returns the value, or NULL if absent. */
void *pelix__map_remove_str(pelix_map_t *m, const char *key);
void *pelix__map_remove_long(pelix_map_t *m, long key);
/* Iteration: `*pos` starts at 0; returns false at the end. */
bool pelix__map_next(const pelix_map_t *m, size_t *pos, const char **ret_skey, long *ret_lkey,
                     void **ret_value);

/* ---- misc ------------------------------------------------------------------------------------ */

#define PELIX_UUID_STR_LEN 36
/* Writes a random (version 4) UUID in its 36-character form plus NUL; 0 or -errno. */
int pelix__uuid4(char out[PELIX_UUID_STR_LEN + 1]);
/* Monotonic clock in milliseconds. */
int64_t pelix__now_ms(void);
/* The same clock in microseconds. */
int64_t pelix__now_us(void);
/* Absolute CLOCK_MONOTONIC deadline `ms` from now, for pthread_cond_timedwait. */
struct timespec pelix__deadline_ms(int64_t ms);
/* Initialises a condition variable whose timed waits use CLOCK_MONOTONIC; 0 or -errno. */
int pelix__cond_init(pthread_cond_t *cond);

#define PELIX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
