/* Helpers of the dispatch suites (see dispatch_helpers.h). */
#include "unit/dispatch_helpers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

#include <cmocka.h>

void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits until `*v >= target`, at most BOUND_MS; returns whether it happened. */
bool wait_for(atomic_long *v, long target)
{
    int64_t until = pelix__now_ms() + BOUND_MS;
    while (atomic_load(v) < target) {
        if (pelix__now_ms() > until) {
            return false;
        }
        sleep_ms(1);
    }
    return true;
}

/* Joins `t` or fails the test if it has not finished within BOUND_MS. */
void join_bounded(pthread_t t)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += BOUND_MS / 1000;
    if (pthread_timedjoin_np(t, NULL, &until) != 0) {
        fail_msg("a call did not return within %ld ms (deadlock, or waits it should not)",
                 BOUND_MS);
    }
}

void check_stats(mqtt_queue_t *q, uint64_t pushed, uint64_t delivered, uint64_t dropped,
                 size_t queued, size_t queued_bytes)
{
    mqtt_queue_stats_t st;
    mqtt__queue_stats(q, &st);
    assert_int_equal(st.pushed, st.delivered + st.dropped + st.queued);
    assert_int_equal(st.queued_bytes, queued_bytes);
    assert_int_equal(st.pushed, pushed);
    assert_int_equal(st.delivered, delivered);
    assert_int_equal(st.dropped, dropped);
    assert_int_equal(st.queued, queued);
}

/* ---- tracked items: numbered, heap-allocated, released exactly once ------------------------- */

atomic_int released[MAX_TRACKED];
atomic_int delivered_n[MAX_TRACKED];
atomic_long total_released;

void track_reset(void)
{
    for (size_t i = 0; i < MAX_TRACKED; i++) {
        atomic_store(&released[i], 0);
        atomic_store(&delivered_n[i], 0);
    }
    atomic_store(&total_released, 0);
}

void *item_new(long n)
{
    long *p = malloc(sizeof(*p));
    assert_non_null(p);
    *p = n;
    return p;
}

void item_release(void *item)
{
    long n = *(const long *)item;
    if (n >= 0 && n < MAX_TRACKED) {
        atomic_fetch_add(&released[n], 1);
    }
    atomic_fetch_add(&total_released, 1);
    free(item);
}

/* Every item below `n` released exactly once; returns how many were delivered. */
long check_released_once(long n)
{
    long delivered = 0;
    for (long i = 0; i < n; i++) {
        if (atomic_load(&released[i]) != 1) {
            fail_msg("item %ld released %d times", i, atomic_load(&released[i]));
        }
        if (atomic_load(&delivered_n[i]) > 1) {
            fail_msg("item %ld delivered %d times", i, atomic_load(&delivered_n[i]));
        }
        delivered += atomic_load(&delivered_n[i]);
    }
    return delivered;
}

/* Pushes items `from`..`to - 1` (1 byte each), all accepted. */
void push_range(mqtt_queue_t *q, long from, long to)
{
    for (long n = from; n < to; n++) {
        assert_int_equal(mqtt__queue_push(q, item_new(n), 1), 0);
    }
}

/* ---- a recording listener whose first item (n == 0) waits for a gate ------------------------ */

void rec_init(rec_t *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->m, NULL);
    pelix__cond_init(&r->c);
}

void rec_open(rec_t *r)
{
    pthread_mutex_lock(&r->m);
    r->open = true;
    pthread_cond_broadcast(&r->c);
    pthread_mutex_unlock(&r->m);
}

void rec_destroy(rec_t *r)
{
    pthread_cond_destroy(&r->c);
    pthread_mutex_destroy(&r->m);
}

/* The listener received exactly items 0..n-1, in order. */
void check_in_order(const rec_t *r, long n)
{
    assert_int_equal(r->norder, n);
    for (long i = 0; i < n; i++) {
        assert_int_equal(r->order[i], i);
    }
}

void rec_deliver(void *ctx, void *item)
{
    rec_t *r = ctx;
    long n = *(const long *)item;

    if (atomic_exchange(&r->inside, 1)) {
        atomic_fetch_add(&r->overlaps, 1);
    }
    atomic_fetch_add(&r->entered, 1);
    if (n >= 0 && n < MAX_TRACKED) {
        atomic_fetch_add(&delivered_n[n], 1);
        r->order[r->norder++] = n;
    }
    if (n == 0) {
        pthread_mutex_lock(&r->m);
        while (!r->open) {
            pthread_cond_wait(&r->c, &r->m);
        }
        pthread_mutex_unlock(&r->m);
    } else if (r->sleep_ms) {
        sleep_ms(r->sleep_ms);
    }
    if (r->self_close && n == 5) {
        atomic_store(&r->rc_flush_inside, mqtt__queue_flush(r->q, 10));
        mqtt__queue_close(r->q, r->self_close == 2, BOUND_MS);
        atomic_store(&r->rc_push_after_close, mqtt__queue_push(r->q, item_new(1000), 1));
        atomic_store(&r->released_at_close, (int)atomic_load(&total_released));
    }
    atomic_store(&r->inside, 0);
    atomic_fetch_add(&r->finished, 1);
}

/* Forgets the tracked items and starts a pool of `workers`. */
mqtt_dispatch_t *pool(size_t workers)
{
    mqtt_dispatch_t *d;
    track_reset();
    assert_int_equal(mqtt__dispatch_new(workers, &d), 0);
    return d;
}

/* A queue of tracked items delivered to a new recording listener `r`. */
mqtt_queue_t *rec_queue(mqtt_dispatch_t *d, rec_t *r, size_t max_items, size_t max_bytes,
                        mqtt_overflow_t policy)
{
    mqtt_queue_t *q;
    rec_init(r);
    assert_int_equal(
        mqtt__queue_new(d, max_items, max_bytes, policy, rec_deliver, item_release, r, &q), 0);
    return q;
}

/* A queue whose item 0 is stuck in its deliver call until rec_open(): what follows waits. */
mqtt_queue_t *stuck_queue(mqtt_dispatch_t *d, rec_t *r, size_t max_items, size_t max_bytes,
                          mqtt_overflow_t policy)
{
    mqtt_queue_t *q = rec_queue(d, r, max_items, max_bytes, policy);
    assert_int_equal(mqtt__queue_push(q, item_new(0), 0), 0);
    assert_true(wait_for(&r->entered, 1));
    return q;
}

/* Lets item 0 go, checks the items delivered, closes the queue. */
void finish(mqtt_queue_t *q, rec_t *r, const long *expect, long n)
{
    rec_open(r);
    assert_int_equal(mqtt__queue_flush(q, BOUND_MS), 0);
    assert_int_equal(r->norder, n);
    for (long i = 0; i < n; i++) {
        assert_int_equal(r->order[i], expect[i]);
    }
    mqtt__queue_close(q, false, 0);
    rec_destroy(r);
}
