/*
 * Dispatch queues (src/mqtt/dispatch): order and seriality per queue, independence of queues,
 * bounds and their counters, exactly-once release on every path, close in its three situations,
 * OOM. Each test fails (or exceeds its bound) when its property is broken; the suite also runs
 * under ThreadSanitizer, where a second deliver call of one queue running at the same time as
 * another is also a reported race.
 *
 * Time is only used as a generous bound ("this must have happened within 5 s"), never to judge
 * speed. Failures seen on workers are counted in atomics and asserted on the main thread.
 */
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

#include "mqtt/dispatch/dispatch.h"
#include "util/util.h"

#include <cmocka.h>

#define BOUND_MS 5000L
/* The bound of the 800 000-item order test, generous for TSan and valgrind. */
#define LONG_BOUND_MS 120000L

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits until `*v >= target`, at most BOUND_MS; returns whether it happened. */
static bool wait_for(atomic_long *v, long target)
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
static void join_bounded(pthread_t t)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += BOUND_MS / 1000;
    if (pthread_timedjoin_np(t, NULL, &until) != 0) {
        fail_msg("a call did not return within %ld ms (deadlock, or waits it should not)",
                 BOUND_MS);
    }
}

static void check_stats(mqtt_queue_t *q, uint64_t pushed, uint64_t delivered, uint64_t dropped,
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

#define MAX_TRACKED 4096

static atomic_int released[MAX_TRACKED];
static atomic_int delivered_n[MAX_TRACKED];
static atomic_long total_released;

static void track_reset(void)
{
    for (size_t i = 0; i < MAX_TRACKED; i++) {
        atomic_store(&released[i], 0);
        atomic_store(&delivered_n[i], 0);
    }
    atomic_store(&total_released, 0);
}

static void *item_new(long n)
{
    long *p = malloc(sizeof(*p));
    assert_non_null(p);
    *p = n;
    return p;
}

static void item_release(void *item)
{
    long n = *(const long *)item;
    if (n >= 0 && n < MAX_TRACKED) {
        atomic_fetch_add(&released[n], 1);
    }
    atomic_fetch_add(&total_released, 1);
    free(item);
}

/* Every item below `n` released exactly once; returns how many were delivered. */
static long check_released_once(long n)
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
static void push_range(mqtt_queue_t *q, long from, long to)
{
    for (long n = from; n < to; n++) {
        assert_int_equal(mqtt__queue_push(q, item_new(n), 1), 0);
    }
}

/* ---- a recording listener whose first item (n == 0) waits for a gate ------------------------ */

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

static void rec_init(rec_t *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->m, NULL);
    pelix__cond_init(&r->c);
}

static void rec_open(rec_t *r)
{
    pthread_mutex_lock(&r->m);
    r->open = true;
    pthread_cond_broadcast(&r->c);
    pthread_mutex_unlock(&r->m);
}

static void rec_destroy(rec_t *r)
{
    pthread_cond_destroy(&r->c);
    pthread_mutex_destroy(&r->m);
}

/* The listener received exactly items 0..n-1, in order. */
static void check_in_order(const rec_t *r, long n)
{
    assert_int_equal(r->norder, n);
    for (long i = 0; i < n; i++) {
        assert_int_equal(r->order[i], i);
    }
}

static void rec_deliver(void *ctx, void *item)
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
static mqtt_dispatch_t *pool(size_t workers)
{
    mqtt_dispatch_t *d;
    track_reset();
    assert_int_equal(mqtt__dispatch_new(workers, &d), 0);
    return d;
}

/* A queue of tracked items delivered to a new recording listener `r`. */
static mqtt_queue_t *rec_queue(mqtt_dispatch_t *d, rec_t *r, size_t max_items, size_t max_bytes,
                               mqtt_overflow_t policy)
{
    mqtt_queue_t *q;
    rec_init(r);
    assert_int_equal(
        mqtt__queue_new(d, max_items, max_bytes, policy, rec_deliver, item_release, r, &q), 0);
    return q;
}

/* A queue whose item 0 is stuck in its deliver call until rec_open(): what follows waits. */
static mqtt_queue_t *stuck_queue(mqtt_dispatch_t *d, rec_t *r, size_t max_items, size_t max_bytes,
                                 mqtt_overflow_t policy)
{
    mqtt_queue_t *q = rec_queue(d, r, max_items, max_bytes, policy);
    assert_int_equal(mqtt__queue_push(q, item_new(0), 0), 0);
    assert_true(wait_for(&r->entered, 1));
    return q;
}

/* Lets item 0 go, checks the items delivered, closes the queue. */
static void finish(mqtt_queue_t *q, rec_t *r, const long *expect, long n)
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

/* ---- order and seriality --------------------------------------------------------------------- */

#define ORDER_QUEUES 8
#define ORDER_ITEMS 100000L
#define PRODUCERS 4

typedef struct order_ctx {
    atomic_int inside;
    atomic_int overlaps;
    atomic_int disorder;
    long next[PRODUCERS]; /* next expected number per producer; plain: serial calls only */
} order_ctx_t;

static void order_deliver(void *ctx, void *item)
{
    order_ctx_t *c = ctx;
    uintptr_t v = (uintptr_t)item - 1;
    size_t producer = (size_t)(v >> 24);
    long n = (long)(v & 0xffffff);

    if (atomic_exchange(&c->inside, 1)) {
        atomic_fetch_add(&c->overlaps, 1);
    }
    if (c->next[producer] != n) {
        atomic_fetch_add(&c->disorder, 1);
    }
    c->next[producer] = n + 1;
    atomic_store(&c->inside, 0);
}

/* Pushes until accepted: a refused item is released by the queue (here a no-op: items are
 * numbers), the number is pushed again. */
static void push_retry(mqtt_queue_t *q, uintptr_t v)
{
    int rc;
    while ((rc = mqtt__queue_push(q, (void *)(v + 1), 1)) == -ENOBUFS) {
        sched_yield();
    }
    if (rc != 0) {
        abort(); /* also runs on producer threads, where cmocka cannot fail a test */
    }
}

typedef struct producer {
    mqtt_queue_t **q;
    size_t nq;
    uintptr_t id;
    long items;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    for (long n = 0; n < p->items; n++) {
        for (size_t i = 0; i < p->nq; i++) {
            push_retry(p->q[i], p->id << 24 | (uintptr_t)n);
        }
    }
    return NULL;
}

/* `np` producer threads push `items` numbered items each to every one of `nq` queues: each queue
 * sees the items of each producer in order, one deliver call at a time. */
static void check_order(size_t nq, size_t np, long items)
{
    static order_ctx_t ctx[ORDER_QUEUES];
    mqtt_queue_t *q[ORDER_QUEUES];
    pthread_t t[PRODUCERS];
    producer_t p[PRODUCERS];
    mqtt_dispatch_t *d;

    memset(ctx, 0, sizeof(ctx));
    assert_int_equal(mqtt__dispatch_new(4, &d), 0);
    for (size_t i = 0; i < nq; i++) {
        assert_int_equal(
            mqtt__queue_new(d, 1024, 0, MQTT_DROP_NEWEST, order_deliver, NULL, &ctx[i], &q[i]), 0);
    }
    for (size_t i = 0; i < np; i++) {
        p[i] = (producer_t){q, nq, i, items};
        pthread_create(&t[i], NULL, produce, &p[i]);
    }
    for (size_t i = 0; i < np; i++) {
        pthread_join(t[i], NULL);
    }
    for (size_t i = 0; i < nq; i++) {
        mqtt_queue_stats_t st;
        assert_int_equal(mqtt__queue_flush(q[i], LONG_BOUND_MS), 0);
        assert_int_equal(atomic_load(&ctx[i].overlaps), 0);
        assert_int_equal(atomic_load(&ctx[i].disorder), 0);
        for (size_t j = 0; j < np; j++) {
            assert_int_equal(ctx[i].next[j], items);
        }
        mqtt__queue_stats(q[i], &st);
        assert_int_equal(st.delivered, (uint64_t)items * np);
        mqtt__queue_close(q[i], false, 0);
    }
    mqtt__dispatch_free(d);
}

/* One producer (the network thread), 100 000 items to each of 8 queues. */
static void test_order_kept_per_queue(void **state)
{
    (void)state;
    check_order(ORDER_QUEUES, 1, ORDER_ITEMS);
}

/* Several producers on one queue: the order of each is kept. */
static void test_order_kept_per_producer(void **state)
{
    (void)state;
    check_order(1, PRODUCERS, 20000);
}

/* ---- a slow listener slows only itself ------------------------------------------------------- */

static void test_slow_listener_does_not_delay_others(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(2);
    static rec_t rs, rf;
    mqtt_queue_t *slow = stuck_queue(d, &rs, 100, 0, MQTT_DROP_NEWEST);
    mqtt_queue_t *fast = rec_queue(d, &rf, 1000, 0, MQTT_DROP_NEWEST);

    push_range(slow, 1, 10);
    push_range(fast, 10, 1010);
    assert_int_equal(mqtt__queue_flush(fast, BOUND_MS), 0);
    assert_int_equal(atomic_load(&rf.finished), 1000);
    /* The stuck queue still has its 9 items, not taken by the free worker. */
    assert_int_equal(atomic_load(&rs.entered), 1);
    check_stats(slow, 10, 1, 0, 9, 9);
    assert_int_equal(mqtt__queue_flush(slow, 10), -ETIMEDOUT);

    rec_open(&rs);
    assert_int_equal(mqtt__queue_flush(slow, BOUND_MS), 0);
    assert_int_equal(atomic_load(&rs.finished), 10);
    assert_int_equal(atomic_load(&rs.overlaps), 0);
    check_in_order(&rs, 10);
    mqtt__queue_close(slow, false, 0);
    mqtt__queue_close(fast, false, 0);
    mqtt__dispatch_free(d);
    assert_int_equal(check_released_once(1010), 1010);
    rec_destroy(&rs);
    rec_destroy(&rf);
}

/* ---- a busy queue does not starve the others ------------------------------------------------ */

static atomic_long busy_done_seen = -1;

/* Notes how many items the busy queue (ctx) had delivered when this one came. */
static void snapshot_deliver(void *ctx, void *item)
{
    (void)item;
    atomic_store(&busy_done_seen, atomic_load(&((rec_t *)ctx)->finished));
}

static void test_busy_queue_does_not_starve_others(void **state)
{
    (void)state;
    mqtt_dispatch_t *d;
    static rec_t blocker, busy;
    mqtt_queue_t *qb, *q1, *q2;

    /* One worker, held by a blocker while 1000 items wait in one queue, then 1 in another. */
    d = pool(1);
    qb = stuck_queue(d, &blocker, 10, 0, MQTT_DROP_NEWEST);
    q1 = rec_queue(d, &busy, 1000, 0, MQTT_DROP_NEWEST);
    assert_int_equal(
        mqtt__queue_new(d, 10, 0, MQTT_DROP_NEWEST, snapshot_deliver, item_release, &busy, &q2), 0);
    push_range(q1, 1, 1001);
    push_range(q2, 1001, 1002);
    finish(qb, &blocker, (const long[]){0}, 1);
    assert_int_equal(mqtt__queue_flush(q1, BOUND_MS), 0);
    assert_int_equal(mqtt__queue_flush(q2, BOUND_MS), 0);
    /* The worker left the busy queue after one batch to serve the other one. */
    assert_int_equal(atomic_load(&busy_done_seen), MQTT_DISPATCH_BATCH);
    mqtt__queue_close(q1, false, 0);
    mqtt__queue_close(q2, false, 0);
    mqtt__dispatch_free(d);
    assert_int_equal(check_released_once(1002), 1001);
    rec_destroy(&busy);
}

/* ---- bounds ---------------------------------------------------------------------------------- */

/* Pushes items 1..n of the given sizes, expecting the given results. */
static void push_sizes(mqtt_queue_t *q, const size_t *bytes, const int *rc, long n)
{
    for (long i = 0; i < n; i++) {
        assert_int_equal(mqtt__queue_push(q, item_new(i + 1), bytes[i]), rc[i]);
    }
}

/* The bound in items, then in bytes, with both policies. */
static void test_bounds(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(1);
    static rec_t r;
    static const size_t ten[] = {10, 10, 10, 10, 10, 10};
    static size_t two[50];
    mqtt_queue_stats_t st;

    /* DROP_NEWEST: the fifth item waiting is refused (and released by the queue, at once). */
    mqtt_queue_t *q = stuck_queue(d, &r, 4, 0, MQTT_DROP_NEWEST);
    push_sizes(q, ten, (const int[]){0, 0, 0, 0, -ENOBUFS}, 5);
    assert_int_equal(atomic_load(&released[5]), 1);
    check_stats(q, 6, 1, 1, 4, 40);
    finish(q, &r, (const long[]){0, 1, 2, 3, 4}, 5);
    assert_int_equal(check_released_once(6), 5);

    /* DROP_OLDEST: the oldest waiting item makes room (and is released at once). */
    track_reset();
    q = stuck_queue(d, &r, 4, 0, MQTT_DROP_OLDEST);
    push_sizes(q, ten, (const int[]){0, 0, 0, 0, 0}, 5);
    assert_int_equal(atomic_load(&released[1]), 1);
    assert_int_equal(mqtt__queue_push(q, item_new(6), 10), 0);
    assert_int_equal(atomic_load(&released[2]), 1);
    check_stats(q, 7, 1, 2, 4, 40);
    mqtt__queue_stats(q, &st);
    assert_int_equal(st.max_items, 4);
    assert_int_equal(st.max_bytes, SIZE_MAX);
    finish(q, &r, (const long[]){0, 3, 4, 5, 6}, 5);
    assert_int_equal(check_released_once(7), 5);

    /* DROP_NEWEST: what does not fit in the bytes left is refused, and so is an item larger than
     * the bound alone. */
    track_reset();
    q = stuck_queue(d, &r, 100, 100, MQTT_DROP_NEWEST);
    push_sizes(q, (const size_t[]){40, 40, 30, 20, 101, 0},
               (const int[]){0, 0, -ENOBUFS, 0, -ENOBUFS, 0}, 6);
    check_stats(q, 7, 1, 2, 4, 100);
    finish(q, &r, (const long[]){0, 1, 2, 4, 6}, 5);
    assert_int_equal(check_released_once(7), 5);

    /* DROP_OLDEST: drops as many as needed (item 4 drops 1 and 2); an item larger than the bound
     * alone is refused. */
    track_reset();
    q = stuck_queue(d, &r, 100, 100, MQTT_DROP_OLDEST);
    push_sizes(q, (const size_t[]){40, 40, 20, 50, 101}, (const int[]){0, 0, 0, 0, -ENOBUFS}, 5);
    check_stats(q, 6, 1, 3, 2, 70);
    finish(q, &r, (const long[]){0, 3, 4}, 3);
    assert_int_equal(check_released_once(6), 3);

    /* DROP_OLDEST, more dropped at once than a push releases in one go. */
    track_reset();
    q = stuck_queue(d, &r, 100, 100, MQTT_DROP_OLDEST);
    for (long n = 0; n < 50; n++) {
        two[n] = 2;
    }
    push_sizes(q, two, (const int[50]){0}, 50);
    assert_int_equal(mqtt__queue_push(q, item_new(51), 100), 0);
    check_stats(q, 52, 1, 50, 1, 100);
    finish(q, &r, (const long[]){0, 51}, 2);
    assert_int_equal(check_released_once(52), 2);
    mqtt__dispatch_free(d);
}

/* ---- close ----------------------------------------------------------------------------------- */

typedef struct closer {
    mqtt_queue_t *q;
    bool drain;
    long timeout_ms;
    rec_t *r;
    atomic_long returned;
    long finished_at_return; /* deliver calls ended when close returned */
} closer_t;

static void *close_thread(void *arg)
{
    closer_t *c = arg;
    mqtt__queue_close(c->q, c->drain, c->timeout_ms);
    c->finished_at_return = c->r ? atomic_load(&c->r->finished) : 0;
    atomic_store(&c->returned, 1);
    return NULL;
}

static pthread_t start_close(closer_t *c, mqtt_queue_t *q, bool drain, long timeout_ms, rec_t *r)
{
    pthread_t t;
    *c = (closer_t){.q = q, .drain = drain, .timeout_ms = timeout_ms, .r = r};
    pthread_create(&t, NULL, close_thread, c);
    return t;
}

/* Room for the items of a test plus every probe that fits in BOUND_MS (1 per ms). */
#define PROBE_ROOM 10000

/* Pushes probes (numbered from `n`) until the queue answers -ESHUTDOWN: close has started. */
static long push_until_shutdown(mqtt_queue_t *q, long n)
{
    int64_t until = pelix__now_ms() + BOUND_MS;
    int rc;
    while ((rc = mqtt__queue_push(q, item_new(n), 1)) != -ESHUTDOWN) {
        assert_int_equal(rc, 0);
        assert_true(pelix__now_ms() < until);
        n++;
        sleep_ms(1);
    }
    return n + 1; /* the refused one was released too */
}

static void test_close_releases_queued_items(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(1);
    static rec_t blocker, r;
    mqtt_queue_t *q;

    /* The only worker is stuck in another queue: q's items wait on the run list. */
    mqtt_queue_t *qb = stuck_queue(d, &blocker, 10, 0, MQTT_DROP_NEWEST);
    for (int drain = 0; drain <= 1; drain++) {
        q = rec_queue(d, &r, 100, 0, MQTT_DROP_NEWEST);
        push_range(q, 1 + drain * 20, 21 + drain * 20);
        /* Without drain: at once. With drain: after its 100 ms, as no worker is free. */
        closer_t c;
        join_bounded(start_close(&c, q, drain, 100, NULL));
        assert_int_equal(atomic_load(&r.entered), 0);
        assert_int_equal(atomic_load(&total_released), 20 + drain * 20);
        rec_destroy(&r);
    }
    finish(qb, &blocker, (const long[]){0}, 1);
    mqtt__dispatch_free(d);
    assert_int_equal(check_released_once(41), 1);
}

static void test_close_waits_for_running_deliver(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(2);
    static rec_t r;
    closer_t c;
    mqtt_queue_t *q = stuck_queue(d, &r, PROBE_ROOM, 0, MQTT_DROP_NEWEST);

    push_range(q, 1, 10);
    pthread_t t = start_close(&c, q, false, 0, &r);
    push_until_shutdown(q, 100); /* safe: close cannot return while item 0 is stuck */
    sleep_ms(50);
    assert_int_equal(atomic_load(&c.returned), 0); /* still waiting for the deliver call */
    rec_open(&r);
    join_bounded(t);
    assert_int_equal(c.finished_at_return, 1);
    assert_int_equal(atomic_load(&r.entered), 1);
    rec_destroy(&r);
    mqtt__dispatch_free(d);
    assert_int_equal(check_released_once(10), 1);
}

static void test_close_drain(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(2);
    static rec_t r;
    closer_t c;
    pthread_t t;
    long end;

    /* Without timeout: everything queued before close is delivered, in order. */
    mqtt_queue_t *q = stuck_queue(d, &r, PROBE_ROOM, 0, MQTT_DROP_NEWEST);
    push_range(q, 1, 100);
    t = start_close(&c, q, true, BOUND_MS, &r);
    end = push_until_shutdown(q, 100); /* probes accepted before close started: drained too */
    rec_open(&r);
    join_bounded(t);
    assert_int_equal(check_released_once(end), end - 1);
    check_in_order(&r, end - 1);
    rec_destroy(&r);

    /* With a timeout that expires: the rest is released without delivery. */
    track_reset();
    q = stuck_queue(d, &r, PROBE_ROOM, 0, MQTT_DROP_NEWEST);
    r.sleep_ms = 20; /* 999 items would take 20 s */
    push_range(q, 1, 1000);
    t = start_close(&c, q, true, 100, &r);
    end = push_until_shutdown(q, 1000);
    rec_open(&r);
    join_bounded(t);
    long delivered = check_released_once(end);
    assert_true(delivered >= 1 && delivered < 1000);
    assert_int_equal(c.finished_at_return, delivered);
    check_in_order(&r, delivered);
    rec_destroy(&r);
    mqtt__dispatch_free(d);
}

static void test_close_from_own_deliver(void **state)
{
    (void)state;
    mqtt_dispatch_t *d;
    static rec_t r;

    for (int mode = 1; mode <= 2; mode++) { /* close(q, false) then close(q, true) */
        d = pool(2);
        mqtt_queue_t *q = stuck_queue(d, &r, 100, 0, MQTT_DROP_NEWEST);
        r.q = q;
        r.self_close = mode;
        push_range(q, 1, 20);
        rec_open(&r);
        /* The 14 items after item 5 and the probe pushed after close are released by then. */
        assert_true(wait_for(&total_released, 20 + 1));
        mqtt__dispatch_free(d); /* joins the worker, which frees the queue */
        assert_int_equal(atomic_load(&r.rc_flush_inside), -EDEADLK);
        assert_int_equal(atomic_load(&r.rc_push_after_close), -ESHUTDOWN);
        assert_int_equal(atomic_load(&r.released_at_close), 5 + 14 + 1);
        assert_int_equal(check_released_once(20), 6);
        assert_int_equal(r.norder, 6);
        assert_int_equal(atomic_load(&r.overlaps), 0);
        rec_destroy(&r);
    }
}

/* Item 0's deliver call waits until the pusher has seen -ESHUTDOWN. */
typedef struct race {
    rec_t r;
    mqtt_queue_t *q;
    atomic_long attempts, accepted;
} race_t;

static void *race_push(void *arg)
{
    race_t *x = arg;
    int rc;

    for (long n = 1;; n++) {
        rc = mqtt__queue_push(x->q, item_new(n < MAX_TRACKED ? n : -1), 1);
        atomic_fetch_add(&x->attempts, 1);
        if (rc == 0) {
            atomic_fetch_add(&x->accepted, 1);
        } else if (rc == -ESHUTDOWN) {
            break;
        } else if (rc == -ENOBUFS) {
            sched_yield();
        } else {
            abort();
        }
    }
    rec_open(&x->r);
    return NULL;
}

static void test_close_while_another_thread_pushes(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(2);
    static race_t x;

    for (int round = 0; round < 20; round++) {
        bool drain = round % 2;
        pthread_t pusher;
        closer_t c;

        track_reset();
        memset(&x, 0, sizeof(x));
        x.q = stuck_queue(d, &x.r, 64, 0, MQTT_DROP_NEWEST);
        pthread_create(&pusher, NULL, race_push, &x);
        assert_true(wait_for(&x.attempts, 200 + round * 50));
        pthread_t closer = start_close(&c, x.q, drain, BOUND_MS, &x.r);
        join_bounded(pusher);
        join_bounded(closer);
        assert_int_equal(atomic_load(&total_released), atomic_load(&x.attempts) + 1);
        check_released_once(1);
        /* Without drain only the stuck item is delivered; with drain every accepted one. */
        assert_int_equal(atomic_load(&x.r.finished), drain ? atomic_load(&x.accepted) + 1 : 1);
        assert_int_equal(atomic_load(&x.r.overlaps), 0);
        rec_destroy(&x.r);
    }
    mqtt__dispatch_free(d);
}

/* ---- OOM and arguments ----------------------------------------------------------------------- */

static void test_oom(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = NULL;
    mqtt_queue_t *q = NULL;
    static rec_t r;
    long n, oom = 0, next = 1;
    int rc;

    /* Allocation n fails, for n = 0, 1, ... until the call succeeds: -ENOMEM until then. */
#define FAIL_EACH_ALLOCATION(call)                                                                 \
    for (n = 0;; n++) {                                                                            \
        pelix__alloc_fail_after(n);                                                                \
        rc = (call);                                                                               \
        pelix__alloc_fail_after(-1);                                                               \
        if (rc == 0) {                                                                             \
            break;                                                                                 \
        }                                                                                          \
        assert_int_equal(rc, -ENOMEM);                                                             \
    }                                                                                              \
    assert_true(n > 0)

    track_reset();
    FAIL_EACH_ALLOCATION(mqtt__dispatch_new(1, &d));
    rec_init(&r);
    FAIL_EACH_ALLOCATION(
        mqtt__queue_new(d, 100, 0, MQTT_DROP_NEWEST, rec_deliver, item_release, &r, &q));

    /* The first push allocates the ring. */
    pelix__alloc_fail_after(0);
    rc = mqtt__queue_push(q, item_new(2000), 1);
    pelix__alloc_fail_after(-1);
    assert_int_equal(rc, -ENOMEM);
    check_stats(q, 1, 0, 1, 0, 0);

    /* Item 0 is stuck; every push may fail to grow the ring: the item is released, the next
     * attempt (allocations allowed) succeeds. */
    assert_int_equal(mqtt__queue_push(q, item_new(0), 1), 0);
    assert_true(wait_for(&r.entered, 1));
    for (long i = 0; i < 40; i++) {
        pelix__alloc_fail_after(0);
        rc = mqtt__queue_push(q, item_new(1000 + i), 1);
        pelix__alloc_fail_after(-1);
        if (rc == -ENOMEM) {
            oom++;
            assert_int_equal(atomic_load(&released[1000 + i]), 1);
            assert_int_equal(mqtt__queue_push(q, item_new(next++), 1), 0);
        } else {
            assert_int_equal(rc, 0);
        }
    }
    assert_true(oom >= 1);
    rec_open(&r);
    assert_int_equal(mqtt__queue_flush(q, BOUND_MS), 0);
    check_stats(q, 1 + 1 + 40 + (uint64_t)oom, 1 + 40, 1 + (uint64_t)oom, 0, 0);
    mqtt__queue_close(q, false, 0);
    mqtt__dispatch_free(d);
    assert_int_equal(atomic_load(&total_released), 1 + 1 + 40 + oom);
    assert_int_equal(atomic_load(&released[2000]), 1);
    rec_destroy(&r);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(1);
    mqtt_queue_t *q;
    mqtt_queue_stats_t st;
    static order_ctx_t ctx;
    const mqtt_overflow_t newest = MQTT_DROP_NEWEST;

    assert_int_equal(mqtt__dispatch_new(0, &d), -EINVAL);
    assert_int_equal(mqtt__queue_new(NULL, 1, 0, newest, order_deliver, NULL, NULL, &q), -EINVAL);
    assert_int_equal(mqtt__queue_new(d, 0, 0, newest, order_deliver, NULL, NULL, &q), -EINVAL);
    assert_int_equal(mqtt__queue_new(d, 1, 0, newest, NULL, NULL, NULL, &q), -EINVAL);
    assert_int_equal(mqtt__queue_new(d, 1, 0, 7, order_deliver, NULL, NULL, &q), -EINVAL);
    assert_int_equal(mqtt__queue_push(NULL, &ctx, 1), -EINVAL);
    assert_int_equal(mqtt__queue_flush(NULL, 1), -EINVAL);
    mqtt__queue_stats(NULL, &st);
    assert_int_equal(st.pushed, 0);
    mqtt__queue_close(NULL, false, 0);
    assert_null(mqtt__dispatch_free(NULL));

    /* An empty idle queue flushes at once; release may be NULL. */
    assert_int_equal(mqtt__queue_new(d, 1, 0, newest, order_deliver, NULL, &ctx, &q), 0);
    assert_int_equal(mqtt__queue_flush(q, 0), 0);
    assert_int_equal(mqtt__queue_push(q, (void *)1, 1), 0); /* producer 0, number 0 */
    assert_int_equal(mqtt__queue_flush(q, BOUND_MS), 0);
    assert_int_equal(ctx.next[0], 1);
    mqtt__queue_close(q, true, BOUND_MS);
    mqtt__dispatch_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_kept_per_queue),
        cmocka_unit_test(test_order_kept_per_producer),
        cmocka_unit_test(test_slow_listener_does_not_delay_others),
        cmocka_unit_test(test_busy_queue_does_not_starve_others),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_close_releases_queued_items),
        cmocka_unit_test(test_close_waits_for_running_deliver),
        cmocka_unit_test(test_close_drain),
        cmocka_unit_test(test_close_from_own_deliver),
        cmocka_unit_test(test_close_while_another_thread_pushes),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_invalid_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
