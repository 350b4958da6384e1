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

#include "unit/dispatch_helpers.h"
#include "util/util.h"

#include <cmocka.h>

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

/* ---- pushes in a batch ----------------------------------------------------------------------- */

#define BATCH_QUEUES 16

/* A batch's items reach their queues at the commit, each queue's in order, and the queues run
 * only then; the refusals of a full queue are counted (and released) as with a plain push; an
 * empty commit is harmless; a batch is used again after a commit. */
static void test_batch(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(2);
    static rec_t r[BATCH_QUEUES];
    mqtt_queue_t *q[BATCH_QUEUES];
    mqtt_batch_t b = MQTT_BATCH_INIT;

    for (size_t i = 0; i < BATCH_QUEUES; i++) {
        q[i] = rec_queue(d, &r[i], 3, 0, MQTT_DROP_NEWEST);
        rec_open(&r[i]); /* no gate on item 0 */
    }
    for (long n = 0; n < 4; n++) { /* the 4th item of each queue is refused: it holds 3 */
        for (size_t i = 0; i < BATCH_QUEUES; i++) {
            long item = (long)i * 4 + n;
            assert_int_equal(mqtt__queue_push_batch(q[i], item_new(item), 1, &b), 0);
        }
    }
    sleep_ms(200); /* time enough for a worker to take a queue, were it on the run list */
    for (size_t i = 0; i < BATCH_QUEUES; i++) {
        assert_int_equal(atomic_load(&r[i].entered), 0);
        check_stats(q[i], 0, 0, 0, 0, 0);
    }
    mqtt__dispatch_commit(d, &b);
    assert_null(b.first);
    mqtt__dispatch_commit(d, &b); /* empty */
    for (size_t i = 0; i < BATCH_QUEUES; i++) {
        assert_int_equal(mqtt__queue_flush(q[i], BOUND_MS), 0);
        assert_int_equal(r[i].norder, 3);
        for (long n = 0; n < 3; n++) {
            assert_int_equal(r[i].order[n], (long)i * 4 + n);
        }
        check_stats(q[i], 4, 3, 1, 0, 0);
    }
    /* A queue made ready again goes back through a batch. */
    assert_int_equal(mqtt__queue_push_batch(q[0], item_new(64), 1, &b), 0);
    void *kept = item_new(65);
    assert_int_equal(mqtt__queue_push_batch(NULL, kept, 1, &b), -EINVAL);
    item_release(kept); /* not consumed on -EINVAL */
    mqtt__dispatch_commit(d, &b);
    assert_int_equal(mqtt__queue_flush(q[0], BOUND_MS), 0);
    assert_int_equal(atomic_load(&r[0].finished), 4);
    mqtt__batch_free(&b);
    for (size_t i = 0; i < BATCH_QUEUES; i++) {
        mqtt__queue_close(q[i], false, 0);
        rec_destroy(&r[i]);
    }
    mqtt__dispatch_free(d);
    assert_int_equal(check_released_once(66), BATCH_QUEUES * 3 + 1);
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

/* ---- a host --------------------------------------------------------------------------------- */

typedef struct host_ctx {
    pthread_t threads[64]; /* where each call ran; written by the serial deliver calls only */
    atomic_int n;
    long sleep_ms;
} host_ctx_t;

static void host_deliver(void *ctx, void *item)
{
    host_ctx_t *c = ctx;
    int i = atomic_load(&c->n);

    (void)item;
    if (i < 64) {
        c->threads[i] = pthread_self();
    }
    if (c->sleep_ms) {
        sleep_ms(c->sleep_ms);
    }
    atomic_fetch_add(&c->n, 1);
}

static void commit_items(mqtt_dispatch_t *d, mqtt_queue_t *q, mqtt_batch_t *b, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(mqtt__queue_push_batch(q, (void *)(uintptr_t)(i + 1), 1, b), 0);
    }
    mqtt__dispatch_commit(d, b);
}

/* With a host, a small batch waits for it and runs on its thread, without a worker; a queue whose
 * run there was slow, a batch over MQTT_DISPATCH_HERE items, and what is left when the host goes
 * away are delivered by the workers. */
static void test_host(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(2);
    static host_ctx_t fast, slow, left;
    mqtt_queue_t *qf, *qs, *ql;
    mqtt_batch_t b = MQTT_BATCH_INIT;
    const mqtt_overflow_t newest = MQTT_DROP_NEWEST;

    slow.sleep_ms = 2; /* over the host's 200 us */
    assert_int_equal(mqtt__queue_new(d, 1000, 0, newest, host_deliver, NULL, &fast, &qf), 0);
    assert_int_equal(mqtt__queue_new(d, 1000, 0, newest, host_deliver, NULL, &slow, &qs), 0);
    assert_int_equal(mqtt__queue_new(d, 1000, 0, newest, host_deliver, NULL, &left, &ql), 0);
    mqtt__dispatch_host(d, 200);
    /* A worker between two waits takes what is on the run list, host or not: let them reach
     * their wait (they are started by pool() above). */
    sleep_ms(200);
    commit_items(d, qf, &b, 3);
    sleep_ms(200); /* time enough for a worker, were one woken */
    assert_int_equal(atomic_load(&fast.n), 0);
    assert_true(mqtt__dispatch_ready(d));
    assert_int_equal(mqtt__dispatch_run_here(d), 3);
    assert_int_equal(atomic_load(&fast.n), 3);
    for (int i = 0; i < 3; i++) {
        assert_true(pthread_equal(fast.threads[i], pthread_self()));
    }
    assert_false(mqtt__dispatch_ready(d));

    /* Slow once here: the workers deliver it from then on. */
    commit_items(d, qs, &b, 1);
    assert_int_equal(mqtt__dispatch_run_here(d), 1);
    assert_true(pthread_equal(slow.threads[0], pthread_self()));
    commit_items(d, qs, &b, 1);
    assert_int_equal(mqtt__queue_flush(qs, BOUND_MS), 0);
    assert_int_equal(atomic_load(&slow.n), 2);
    assert_false(pthread_equal(slow.threads[1], pthread_self()));

    /* A big batch goes to the workers at once. */
    commit_items(d, qf, &b, MQTT_DISPATCH_HERE + 1);
    assert_int_equal(mqtt__queue_flush(qf, BOUND_MS), 0);
    assert_int_equal(atomic_load(&fast.n), 3 + MQTT_DISPATCH_HERE + 1);
    assert_false(pthread_equal(fast.threads[3], pthread_self()));

    /* Left to a host that will not run it, then to one that goes away: the workers are woken
     * for it (a queue never run by the host, not marked slow however slow the machine). */
    sleep_ms(200); /* the workers waiting again */
    commit_items(d, ql, &b, 1);
    sleep_ms(100);
    assert_int_equal(atomic_load(&left.n), 0);
    mqtt__dispatch_wake(d); /* a host that will not run it */
    assert_int_equal(mqtt__queue_flush(ql, BOUND_MS), 0);
    assert_int_equal(atomic_load(&left.n), 1);
    sleep_ms(200);
    commit_items(d, ql, &b, 1);
    sleep_ms(100);
    assert_int_equal(atomic_load(&left.n), 1);
    mqtt__dispatch_host(d, 0);
    assert_int_equal(mqtt__queue_flush(ql, BOUND_MS), 0);
    assert_int_equal(atomic_load(&left.n), 2);

    mqtt__batch_free(&b);
    mqtt__queue_close(qf, false, 0);
    mqtt__queue_close(qs, false, 0);
    mqtt__queue_close(ql, false, 0);
    mqtt__dispatch_free(d);
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
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
