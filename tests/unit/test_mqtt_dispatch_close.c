/*
 * Dispatch queues (src/mqtt/dispatch), closing: queued items released, a running deliver call
 * waited for, drain with and without timeout, close from the queue's own deliver call, close
 * while another thread pushes, and the last item that gets past the bounds. Each item is released
 * exactly once on every path. Also run under ThreadSanitizer.
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

/* The last item of a queue gets past its bounds (a full queue cannot block its closing), and
 * comes after the items already queued. */
static void test_push_last_past_the_bounds(void **state)
{
    (void)state;
    mqtt_dispatch_t *d = pool(2);
    rec_t r;
    mqtt_queue_t *q = stuck_queue(d, &r, 3, 0, MQTT_DROP_NEWEST);
    const long expect[] = {0, 1, 2, 3, 4};

    push_range(q, 1, 4);                                             /* items 1..3: full */
    assert_int_equal(mqtt__queue_push(q, item_new(5), 1), -ENOBUFS); /* refused, released */
    assert_int_equal(mqtt__queue_push_last(q, item_new(4)), 0);      /* past the bound */
    finish(q, &r, expect, 5);
    assert_int_equal(check_released_once(6), 5);
    mqtt__dispatch_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_last_past_the_bounds),
        cmocka_unit_test(test_close_releases_queued_items),
        cmocka_unit_test(test_close_waits_for_running_deliver),
        cmocka_unit_test(test_close_drain),
        cmocka_unit_test(test_close_from_own_deliver),
        cmocka_unit_test(test_close_while_another_thread_pushes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
