/*
 * Helpers of the dispatch suites (test_mqtt_dispatch, test_mqtt_dispatch_close): tracked items
 * released exactly once, a recording listener whose first item waits for a gate, pools and
 * queues built on them. Functions that assert (cmocka) run on the test's main thread; the
 * deliver and release callbacks only count, in atomics.
 */
#ifndef DISPATCH_HELPERS_H
#define DISPATCH_HELPERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mqtt/dispatch/dispatch.h"

#define BOUND_MS 5000L
/* The bound of the 800 000-item order test, generous for TSan and valgrind. */
#define LONG_BOUND_MS 120000L
#define MAX_TRACKED 4096

typedef struct rec {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool open;
    atomic_long entered;  /* deliver calls started */
    atomic_long finished; /* deliver calls ended */
    atomic_int inside;
    atomic_int overlaps;
    long order[MAX_TRACKED]; /* written by deliver only (serial), read after flush/close */
    long norder;
    long sleep_ms; /* per item after the first */
    mqtt_queue_t *q;
    int self_close; /* 0: no; 1: close(q, false) at item 5; 2: close(q, true) at item 5 */
    atomic_int rc_flush_inside, rc_push_after_close, released_at_close;
} rec_t;

extern atomic_int released[MAX_TRACKED];
extern atomic_int delivered_n[MAX_TRACKED];
extern atomic_long total_released;

void sleep_ms(long ms);
bool wait_for(atomic_long *v, long target);
void join_bounded(pthread_t t);
void check_stats(mqtt_queue_t *q, uint64_t pushed, uint64_t delivered, uint64_t dropped,
                 size_t queued, size_t queued_bytes);
void track_reset(void);
void *item_new(long n);
void item_release(void *item);
long check_released_once(long n);
void push_range(mqtt_queue_t *q, long from, long to);
void rec_init(rec_t *r);
void rec_open(rec_t *r);
void rec_destroy(rec_t *r);
void check_in_order(const rec_t *r, long n);
void rec_deliver(void *ctx, void *item);
mqtt_dispatch_t *pool(size_t workers);
mqtt_queue_t *rec_queue(mqtt_dispatch_t *d, rec_t *r, size_t max_items, size_t max_bytes,
                        mqtt_overflow_t policy);
mqtt_queue_t *stuck_queue(mqtt_dispatch_t *d, rec_t *r, size_t max_items, size_t max_bytes,
                          mqtt_overflow_t policy);
void finish(mqtt_queue_t *q, rec_t *r, const long *expect, long n);

#endif
