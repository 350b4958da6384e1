/*
 * Serial queues on a worker pool (a "serial executor on a thread pool").
 *
 * Locks: each queue has its own lock (its ring, counters and state) and the pool has one lock
 * (its run list and the workers' condition). Order: queue lock, then pool lock; a worker never
 * holds the pool lock while it takes a queue lock. No lock is held while `deliver` or `release`
 * runs.
 *
 * State of a queue (under its lock):
 *   IDLE       not on the run list, no worker on it;
 *   SCHEDULED  put on the run list by a push (or a worker ending a batch); `on_list` (under the
 *              pool lock) tells whether it is still there or a worker has taken it and is about
 *              to lock the queue;
 *   RUNNING    a worker, or the host in mqtt__dispatch_run_here() (`runner`), delivers it.
 * A queue goes from IDLE to SCHEDULED only when it has items, so it is on the run list at most
 * once, and only one worker runs it at a time: that is what keeps its calls serial and ordered.
 *
 * Close: marks the queue `closing` (pushes refused), optionally waits for the drain, then marks
 * it `stopped` (no deliver starts), takes it off the run list if it is still there, waits until
 * no worker is on it, releases what is left and frees it. From the queue's own deliver call it
 * only marks it `stopped` and `free_on_return`: the worker frees it once that call is done.
 */
#include "mqtt/dispatch/dispatch.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "util/util.h"

/* Items a push drops (DROP_OLDEST) before it releases them outside the lock and tries again. */
#define DROP_CHUNK 16
/* Items a worker takes from a ring at once. */
#define CHUNK 16
/* First ring capacity. */
#define RING_MIN 16

typedef enum { Q_IDLE, Q_SCHEDULED, Q_RUNNING } q_state_t;

typedef struct slot {
    void *item;
    size_t bytes;
} slot_t;

struct mqtt_queue {
    mqtt_dispatch_t *d;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* state or count changed: close and flush wait on it */

    /* Ring of waiting items: `count` items from `head`, `cap` slots (grown up to max_items). */
    slot_t *ring;
    size_t cap, head, count, bytes;
    size_t max_items, max_bytes;
    mqtt_overflow_t policy;

    mqtt_deliver_fn deliver;
    mqtt_release_fn release;
    void *ctx;

    q_state_t state;
    pthread_t runner;    /* valid in Q_RUNNING */
    bool closing;        /* close started: pushes refused */
    atomic_bool stopped; /* no deliver call starts any more (set under `lock`; read in a chunk
                            being delivered without it) */
    /* The chunk its worker delivers (the runner's, on its stack): items from `chunk_pos` on are
     * still to deliver; a close from a deliver call releases them */
    void **chunk;
    size_t chunk_pos, chunk_n;
    bool free_on_return;
    atomic_bool not_here; /* its deliver calls proved slow: left to the workers */
    uint64_t pushed, delivered, dropped;

    /* Run list links and membership: under the pool lock. */
    mqtt_queue_t *prev, *next;
    bool on_list;
    /* In a batch (the batch owner's): the next queue of the batch, its first and last items
     * there; at commit, the next queue made ready */
    mqtt_queue_t *batch_next;
    size_t batch_first, batch_last;
    bool in_batch;
};

struct mqtt_dispatch {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* run list not empty, or stopping */
    mqtt_queue_t *first, *last;
    bool stopping;
    atomic_long host_slow_us; /* > 0: a host runs small batches (mqtt__dispatch_host) */
    size_t queues;            /* open queues, for the check in mqtt__dispatch_free() */
    size_t nthreads;
    pthread_t *threads;
};

/* ---- run list (pool lock held) --------------------------------------------------------------- */

static void list_append(mqtt_dispatch_t *d, mqtt_queue_t *q)
{
    assert(!q->on_list);
    q->prev = d->last;
    q->next = NULL;
    if (d->last) {
        d->last->next = q;
    } else {
        d->first = q;
    }
    d->last = q;
    q->on_list = true;
}

static void list_remove(mqtt_dispatch_t *d, mqtt_queue_t *q)
{
    assert(q->on_list);
    if (q->prev) {
        q->prev->next = q->next;
    } else {
        d->first = q->next;
    }
    if (q->next) {
        q->next->prev = q->prev;
    } else {
        d->last = q->prev;
    }
    q->prev = q->next = NULL;
    q->on_list = false;
}

/* Queue lock held, state IDLE, items waiting: puts the queue on the run list. The caller wakes
 * a worker (wake_worker) once it released the queue lock: a worker woken while the pusher still
 * held the pool or queue lock would only block on it (perf showed that contention as the first
 * cost of a delivery). */
static void schedule(mqtt_queue_t *q)
{
    mqtt_dispatch_t *d = q->d;

    q->state = Q_SCHEDULED;
    pthread_mutex_lock(&d->lock);
    list_append(d, q);
    pthread_mutex_unlock(&d->lock);
}

/* No lock held. A worker waits for the run list under the pool lock and checks it again before
 * sleeping, so a wake after the append, outside the lock, is never lost. */
static void wake_worker(mqtt_dispatch_t *d)
{
    pthread_cond_signal(&d->cond);
}

/* ---- ring (queue lock held) ------------------------------------------------------------------ */

static slot_t ring_pop(mqtt_queue_t *q)
{
    slot_t s = q->ring[q->head];

    assert(q->count > 0);
    q->head = (q->head + 1) % q->cap;
    q->count--;
    q->bytes -= s.bytes;
    return s;
}

static int ring_grow(mqtt_queue_t *q)
{
    size_t cap = q->cap ? q->cap * 2 : RING_MIN;
    slot_t *ring;

    if ((cap > q->max_items && q->cap < q->max_items) || cap < q->cap) {
        cap = q->max_items; /* beyond it only for a last item (mqtt__queue_push_last) */
    }
    if (cap > SIZE_MAX / sizeof(*ring)) {
        return -ENOMEM;
    }
    ring = pelix__malloc(cap * sizeof(*ring));
    if (!ring) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < q->count; i++) {
        ring[i] = q->ring[(q->head + i) % q->cap];
    }
    pelix__free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    return 0;
}

/* Moves every waiting item to `out` (of at least `max` slots), at most `max`; returns the count. */
static size_t ring_take(mqtt_queue_t *q, void **out, size_t max)
{
    size_t n = 0;

    while (q->count > 0 && n < max) {
        out[n++] = ring_pop(q).item;
    }
    return n;
}

static void release_all(mqtt_release_fn release, void **items, size_t n)
{
    if (release) {
        for (size_t i = 0; i < n; i++) {
            release(items[i]);
        }
    }
}

/*
 * Queue lock held on entry and on return: releases every waiting item without delivery,
 * unlocking around the release calls (nothing else touches the ring once the queue is stopped).
 */
static void drop_all_locked(mqtt_queue_t *q)
{
    void *chunk[DROP_CHUNK];

    while (q->count > 0) {
        size_t n = ring_take(q, chunk, DROP_CHUNK);
        q->dropped += n;
        pthread_mutex_unlock(&q->lock);
        release_all(q->release, chunk, n);
        pthread_mutex_lock(&q->lock);
    }
}

static void queue_destroy(mqtt_queue_t *q)
{
    mqtt_dispatch_t *d = q->d;

    pthread_mutex_lock(&d->lock);
    assert(d->queues > 0);
    d->queues--;
    pthread_mutex_unlock(&d->lock);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    pelix__free(q->ring);
    pelix__free(q);
}

/* ---- workers --------------------------------------------------------------------------------- */

/* Delivers up to one batch of `q`, taken off the run list by this worker. Items are taken from
 * the ring CHUNK at a time, under one lock (not one lock round per item: with a message for 100
 * listeners, the locks were the first cost of a delivery); a close that starts while a chunk is
 * delivered stops it before the next item, whose release then counts it as dropped. */
static size_t run_queue(mqtt_queue_t *q, size_t limit, bool *slow)
{
    void *chunk[CHUNK];
    size_t done = 0;
    int64_t start = slow ? pelix__now_us() : 0;

    pthread_mutex_lock(&q->lock);
    assert(q->state == Q_SCHEDULED);
    q->state = Q_RUNNING;
    q->runner = pthread_self();
    while (!atomic_load(&q->stopped) && q->count > 0 && done < limit) {
        size_t n = ring_take(q, chunk, limit - done < CHUNK ? limit - done : CHUNK);
        q->delivered += n;
        q->chunk = chunk;
        q->chunk_n = n;
        q->chunk_pos = 0;
        pthread_mutex_unlock(&q->lock);
        while (q->chunk_pos < q->chunk_n && !atomic_load(&q->stopped)) {
            void *item = chunk[q->chunk_pos++];
            q->deliver(q->ctx, item);
            if (q->release) {
                q->release(item);
            }
        }
        size_t rest = q->chunk_n - q->chunk_pos; /* stopped meanwhile: not delivered */
        release_all(q->release, chunk + q->chunk_pos, rest);
        done += n;
        pthread_mutex_lock(&q->lock);
        q->chunk = NULL;
        q->chunk_n = q->chunk_pos = 0;
        q->delivered -= rest;
        q->dropped += rest;
    }
    if (q->free_on_return) {
        /* Closed from its own deliver call, which released the waiting items: nobody else
         * refers to the queue any more. */
        assert(q->count == 0);
        pthread_mutex_unlock(&q->lock);
        queue_destroy(q);
        return done;
    }
    if (slow && pelix__now_us() - start > atomic_load(&q->d->host_slow_us)) {
        /* Decided while the queue is surely alive (a closer may free it once it is idle). */
        *slow = true;
        atomic_store(&q->not_here, true);
    }
    if (!q->stopped && q->count > 0) {
        schedule(q); /* to the end of the run list; this worker looks at it next */
    } else {
        q->state = Q_IDLE;
    }
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return done;
}

static void *worker(void *arg)
{
    mqtt_dispatch_t *d = arg;

    pthread_mutex_lock(&d->lock);
    for (;;) {
        mqtt_queue_t *q;
        while (!d->first && !d->stopping) {
            pthread_cond_wait(&d->cond, &d->lock);
        }
        q = d->first;
        if (!q) {
            break; /* stopping and nothing left */
        }
        list_remove(d, q);
        pthread_mutex_unlock(&d->lock);
        run_queue(q, MQTT_DISPATCH_BATCH, NULL);
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* ---- pool ------------------------------------------------------------------------------------ */

static void stop_workers(mqtt_dispatch_t *d)
{
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < d->nthreads; i++) {
        pthread_join(d->threads[i], NULL);
    }
    d->nthreads = 0;
}

int mqtt__dispatch_new(size_t workers, mqtt_dispatch_t **ret)
{
    mqtt_dispatch_t *d;
    int rc;

    if (workers == 0 || !ret) {
        return -EINVAL;
    }
    d = pelix__calloc(1, sizeof(*d));
    if (!d) {
        return -ENOMEM;
    }
    d->threads = pelix__calloc(workers, sizeof(*d->threads));
    if (!d->threads) {
        pelix__free(d);
        return -ENOMEM;
    }
    pthread_mutex_init(&d->lock, NULL);
    rc = pelix__cond_init(&d->cond);
    if (rc < 0) {
        pthread_mutex_destroy(&d->lock);
        pelix__free(d->threads);
        pelix__free(d);
        return rc;
    }
    for (size_t i = 0; i < workers; i++) {
        rc = pthread_create(&d->threads[i], NULL, worker, d);
        if (rc != 0) {
            mqtt__dispatch_free(d);
            return -rc;
        }
        d->nthreads++;
    }
    *ret = d;
    return 0;
}

mqtt_dispatch_t *mqtt__dispatch_free(mqtt_dispatch_t *d)
{
    if (!d) {
        return NULL;
    }
    stop_workers(d);
    assert(d->queues == 0 && !d->first);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    pelix__free(d->threads);
    pelix__free(d);
    return NULL;
}

/* ---- queues ---------------------------------------------------------------------------------- */

int mqtt__queue_new(mqtt_dispatch_t *d, size_t max_items, size_t max_bytes, mqtt_overflow_t policy,
                    mqtt_deliver_fn deliver, mqtt_release_fn release, void *ctx, mqtt_queue_t **ret)
{
    mqtt_queue_t *q;
    int rc;

    if (!d || max_items == 0 || !deliver || !ret ||
        (policy != MQTT_DROP_NEWEST && policy != MQTT_DROP_OLDEST)) {
        return -EINVAL;
    }
    q = pelix__calloc(1, sizeof(*q));
    if (!q) {
        return -ENOMEM;
    }
    rc = pelix__cond_init(&q->cond);
    if (rc < 0) {
        pelix__free(q);
        return rc;
    }
    pthread_mutex_init(&q->lock, NULL);
    q->d = d;
    q->max_items = max_items;
    q->max_bytes = max_bytes ? max_bytes : SIZE_MAX;
    q->policy = policy;
    q->deliver = deliver;
    q->release = release;
    q->ctx = ctx;
    q->state = Q_IDLE;
    pthread_mutex_lock(&d->lock);
    d->queues++;
    pthread_mutex_unlock(&d->lock);
    *ret = q;
    return 0;
}

static bool fits(const mqtt_queue_t *q, size_t bytes)
{
    return q->count < q->max_items && bytes <= q->max_bytes - q->bytes;
}

int mqtt__queue_push_last(mqtt_queue_t *q, void *item)
{
    mqtt_release_fn release;
    mqtt_dispatch_t *d;
    bool wake = false;
    int rc = 0;

    if (!q) {
        return -EINVAL;
    }
    release = q->release;
    d = q->d; /* the pool outlives its queues; `q` may be freed once unlocked */
    pthread_mutex_lock(&q->lock);
    if (q->closing) {
        rc = -ESHUTDOWN;
    } else if (q->count == q->cap) {
        rc = ring_grow(q);
    }
    if (rc == 0) {
        q->pushed++;
        q->ring[(q->head + q->count) % q->cap] = (slot_t){item, 0};
        q->count++;
        if (q->state == Q_IDLE && !q->stopped) {
            schedule(q);
            wake = true;
        }
    }
    pthread_mutex_unlock(&q->lock);
    if (wake) {
        wake_worker(d);
    }
    if (rc < 0 && release) {
        release(item);
    }
    return rc;
}

/*
 * Queue lock held: stores one item as a push does. 0: stored; -ESHUTDOWN, -ENOBUFS, -ENOMEM:
 * refused (counted but for -ESHUTDOWN; the caller releases it); -EAGAIN: `dropped` holds
 * DROP_CHUNK items dropped to make room (MQTT_DROP_OLDEST) and more must go: the caller releases
 * them outside the lock and calls again.
 */
static int store_locked(mqtt_queue_t *q, void *item, size_t bytes, void **dropped, size_t *ndropped)
{
    int rc = 0;

    if (q->closing) {
        return -ESHUTDOWN;
    }
    if (q->policy == MQTT_DROP_OLDEST && bytes <= q->max_bytes) {
        while (!fits(q, bytes) && *ndropped < DROP_CHUNK) {
            dropped[(*ndropped)++] = ring_pop(q).item;
            q->dropped++;
        }
        if (!fits(q, bytes)) {
            return -EAGAIN;
        }
    }
    q->pushed++;
    if (!fits(q, bytes)) {
        rc = -ENOBUFS;
    } else if (q->count == q->cap) {
        rc = ring_grow(q);
    }
    if (rc < 0) {
        q->dropped++;
        return rc;
    }
    q->ring[(q->head + q->count) % q->cap] = (slot_t){item, bytes};
    q->count++;
    q->bytes += bytes;
    return 0;
}

/* Queue lock held: stores one item, unlocking to release what it dropped (DROP_OLDEST). */
static int store(mqtt_queue_t *q, mqtt_release_fn release, void *item, size_t bytes)
{
    void *dropped[DROP_CHUNK];

    for (;;) {
        size_t ndropped = 0;
        int rc = store_locked(q, item, bytes, dropped, &ndropped);
        if (ndropped > 0) {
            pthread_mutex_unlock(&q->lock);
            release_all(release, dropped, ndropped);
            pthread_mutex_lock(&q->lock);
        }
        if (rc != -EAGAIN) {
            return rc;
        }
    }
}

int mqtt__queue_push(mqtt_queue_t *q, void *item, size_t bytes)
{
    mqtt_release_fn release;
    mqtt_dispatch_t *d;
    bool wake = false;
    int rc;

    if (!q) {
        return -EINVAL;
    }
    /* Set at creation; read before unlocking, as a racing close may free `q` right after. */
    release = q->release;
    d = q->d;
    pthread_mutex_lock(&q->lock);
    rc = store(q, release, item, bytes);
    if (rc == 0 && q->state == Q_IDLE && !q->stopped) {
        schedule(q);
        wake = true;
    }
    pthread_mutex_unlock(&q->lock);
    if (wake) {
        wake_worker(d);
    }
    if (rc < 0 && release) {
        release(item);
    }
    return rc;
}

#define NO_ITEM SIZE_MAX

struct mqtt_batch_item {
    void *item;
    size_t bytes;
    size_t next; /* the next item of the same queue, or NO_ITEM */
    bool refused;
};

int mqtt__queue_push_batch(mqtt_queue_t *q, void *item, size_t bytes, mqtt_batch_t *b)
{
    size_t i;

    if (!q || !b) {
        return -EINVAL;
    }
    if (b->n == b->cap && pelix__grow((void **)&b->items, &b->cap, b->n + 1, sizeof(*b->items))) {
        mqtt__dispatch_commit(q->d, b); /* the items before this one go first */
        mqtt__queue_push(q, item, bytes);
        return 0;
    }
    i = b->n++;
    b->items[i] = (mqtt_batch_item_t){item, bytes, NO_ITEM, false};
    if (!q->in_batch) {
        q->in_batch = true;
        q->batch_first = i;
        q->batch_next = NULL;
        if (b->last) {
            b->last->batch_next = q;
        } else {
            b->first = q;
        }
        b->last = q;
    } else {
        b->items[q->batch_last].next = i;
    }
    q->batch_last = i;
    return 0;
}

void mqtt__dispatch_commit(mqtt_dispatch_t *d, mqtt_batch_t *b)
{
    mqtt_queue_t *ready = NULL, *ready_last = NULL;
    size_t n = 0;

    if (!d || !b || !b->first) {
        return;
    }
    /* A small batch is left to the host, which runs it before it waits again: no wake-up. */
    bool wake = atomic_load(&d->host_slow_us) <= 0 || b->n > MQTT_DISPATCH_HERE;
    for (mqtt_queue_t *q = b->first, *next; q; q = next) {
        mqtt_release_fn release = q->release;
        size_t first = q->batch_first;
        bool refused = false;

        next = q->batch_next;
        q->in_batch = false;
        q->batch_next = NULL;
        pthread_mutex_lock(&q->lock);
        for (size_t i = first; i != NO_ITEM; i = b->items[i].next) {
            b->items[i].refused = store(q, release, b->items[i].item, b->items[i].bytes) < 0;
            refused |= b->items[i].refused;
        }
        if (q->state == Q_IDLE && !q->stopped && q->count > 0) {
            /* Scheduled, not on the run list yet: a close waits for it to be (below). */
            q->state = Q_SCHEDULED;
            wake |= atomic_load(&q->not_here);
            if (ready_last) {
                ready_last->batch_next = q;
            } else {
                ready = q;
            }
            ready_last = q;
            n++;
        }
        pthread_mutex_unlock(&q->lock);
        for (size_t i = first; refused && i != NO_ITEM; i = b->items[i].next) {
            if (b->items[i].refused && release) {
                release(b->items[i].item);
            }
        }
    }
    b->first = b->last = NULL;
    b->n = 0;
    if (n == 0) {
        return;
    }
    pthread_mutex_lock(&d->lock);
    for (mqtt_queue_t *q = ready, *next; q; q = next) {
        next = q->batch_next;
        q->batch_next = NULL;
        list_append(d, q);
    }
    pthread_mutex_unlock(&d->lock);
    if (!wake) {
        return;
    }
    if (n == 1) {
        wake_worker(d);
    } else {
        pthread_cond_broadcast(&d->cond);
    }
}

void mqtt__dispatch_host(mqtt_dispatch_t *d, long slow_us)
{
    atomic_store(&d->host_slow_us, slow_us);
    if (slow_us <= 0) {
        pthread_cond_broadcast(&d->cond); /* what was left to the host */
    }
}

bool mqtt__dispatch_ready(mqtt_dispatch_t *d)
{
    pthread_mutex_lock(&d->lock);
    bool ready = d->first != NULL;
    pthread_mutex_unlock(&d->lock);
    return ready;
}

void mqtt__dispatch_wake(mqtt_dispatch_t *d)
{
    pthread_cond_broadcast(&d->cond);
}

size_t mqtt__dispatch_run_here(mqtt_dispatch_t *d)
{
    size_t done = 0;
    bool slow = false;

    while (done < MQTT_DISPATCH_HERE && !slow) {
        pthread_mutex_lock(&d->lock);
        mqtt_queue_t *q = d->first;
        if (!q || atomic_load(&q->not_here)) {
            pthread_mutex_unlock(&d->lock);
            break;
        }
        list_remove(d, q);
        pthread_mutex_unlock(&d->lock);
        done += run_queue(q, MQTT_DISPATCH_HERE - done, &slow);
    }
    if (mqtt__dispatch_ready(d)) {
        wake_worker(d); /* what is left */
    }
    return done;
}

void mqtt__batch_free(mqtt_batch_t *b)
{
    if (b) {
        pelix__free(b->items);
        b->items = NULL;
        b->n = b->cap = 0;
    }
}

void mqtt__queue_close(mqtt_queue_t *q, bool drain, long drain_timeout_ms)
{
    mqtt_dispatch_t *d;
    struct timespec until;

    if (!q) {
        return;
    }
    d = q->d;
    pthread_mutex_lock(&q->lock);
    assert(!q->closing);
    q->closing = true;
    if (q->state == Q_RUNNING && pthread_equal(q->runner, pthread_self())) {
        /* From its own deliver call: the worker frees the queue when the call returns. */
        q->stopped = true;
        q->free_on_return = true;
        drop_all_locked(q);
        if (q->chunk_pos < q->chunk_n) {
            size_t rest = q->chunk_n - q->chunk_pos;
            void **items = q->chunk + q->chunk_pos;
            q->chunk_pos = q->chunk_n;
            q->delivered -= rest;
            q->dropped += rest;
            pthread_mutex_unlock(&q->lock);
            release_all(q->release, items, rest);
            return;
        }
        pthread_mutex_unlock(&q->lock);
        return;
    }
    if (drain) {
        int wrc = 0;
        until = pelix__deadline_ms(drain_timeout_ms > 0 ? drain_timeout_ms : 0);
        while ((q->count > 0 || q->state != Q_IDLE) && wrc == 0) {
            wrc = pthread_cond_timedwait(&q->cond, &q->lock, &until);
        }
    }
    q->stopped = true;
    if (q->state == Q_SCHEDULED) {
        pthread_mutex_lock(&d->lock);
        if (q->on_list) {
            list_remove(d, q);
            q->state = Q_IDLE;
        }
        pthread_mutex_unlock(&d->lock);
    }
    /* A worker delivering it, or about to lock it after taking it off the run list. */
    while (q->state != Q_IDLE) {
        pthread_cond_wait(&q->cond, &q->lock);
    }
    drop_all_locked(q);
    pthread_mutex_unlock(&q->lock);
    queue_destroy(q);
}

void mqtt__queue_stats(mqtt_queue_t *q, mqtt_queue_stats_t *ret)
{
    if (!ret) {
        return;
    }
    memset(ret, 0, sizeof(*ret));
    if (!q) {
        return;
    }
    pthread_mutex_lock(&q->lock);
    ret->pushed = q->pushed;
    ret->delivered = q->delivered;
    ret->dropped = q->dropped;
    ret->queued = q->count;
    ret->queued_bytes = q->bytes;
    ret->max_items = q->max_items;
    ret->max_bytes = q->max_bytes;
    pthread_mutex_unlock(&q->lock);
}

int mqtt__queue_flush(mqtt_queue_t *q, long timeout_ms)
{
    struct timespec until = pelix__deadline_ms(timeout_ms > 0 ? timeout_ms : 0);
    int rc = 0;

    if (!q) {
        return -EINVAL;
    }
    pthread_mutex_lock(&q->lock);
    if (q->state == Q_RUNNING && pthread_equal(q->runner, pthread_self())) {
        pthread_mutex_unlock(&q->lock);
        return -EDEADLK;
    }
    while ((q->count > 0 || q->state != Q_IDLE) && rc == 0) {
        rc = pthread_cond_timedwait(&q->cond, &q->lock, &until);
    }
    if (q->count == 0 && q->state == Q_IDLE) {
        rc = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return rc ? -ETIMEDOUT : 0;
}
