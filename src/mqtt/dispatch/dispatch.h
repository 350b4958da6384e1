/**
 * @file dispatch.h
 * @brief Delivery of received MQTT messages to listeners: one bounded serial queue per listener,
 * run by a small pool of worker threads. Internal (not installed).
 *
 * The network thread pushes each message to the queue of every listener it matches and goes on:
 * a push never runs listener code and never waits for it. Each queue is a serial executor: its
 * `deliver` calls never overlap and come in push order, while different queues are delivered in
 * parallel by the workers of the pool. A worker delivers a batch of a queue (at most
 * MQTT_DISPATCH_BATCH items) and then puts the queue back at the end of the run list if items
 * remain, so a busy queue does not starve the others. A slow `deliver` holds one worker and
 * delays only its own queue, as long as other workers are free.
 *
 * Queues are bounded by a number of items and a number of bytes (the size given with each item).
 * A full queue refuses the new item (MQTT_DROP_NEWEST) or drops its oldest queued items to make
 * room (MQTT_DROP_OLDEST); both are counted in the queue's statistics.
 *
 * Items are opaque pointers owned by the queue from the moment they are pushed: each one is
 * passed exactly once to `release`, after its `deliver` call if it is delivered, or without
 * delivery when it is refused, dropped, or still queued when the queue is closed.
 *
 * Thread safety: every function is thread-safe, with the lifetime rules of each function (a
 * queue must not be used once mqtt__queue_close() may have returned, a pool once
 * mqtt__dispatch_free() may have started). `deliver` runs on a worker of the pool, or on the
 * host thread in mqtt__dispatch_run_here(), never under a lock of this module; it may push to any
 * queue, close its own queue or another one, or read statistics. `release` runs on the thread that
 * gives up the item: a worker after delivery, the pushing thread for a refused or dropped item, the
 * closing thread for items left at close; it is never called under a lock of this module either.
 */
#ifndef PELIX_MQTT_DISPATCH_H
#define PELIX_MQTT_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Maximum number of items a worker delivers from one queue before moving to the next one. */
#define MQTT_DISPATCH_BATCH 64
/** Most items a host delivers between two waits of its own (mqtt__dispatch_run_here()). */
#define MQTT_DISPATCH_HERE 16

/** The worker pool. */
typedef struct mqtt_dispatch mqtt_dispatch_t;
/** One serial queue (one per listener). */
typedef struct mqtt_queue mqtt_queue_t;

/** What a full queue does with a new item. */
typedef enum mqtt_overflow {
    MQTT_DROP_NEWEST, /**< refuse the new item (push returns -ENOBUFS) */
    MQTT_DROP_OLDEST, /**< drop the oldest queued items until the new one fits (push returns 0) */
} mqtt_overflow_t;

/**
 * @brief Statistics of one queue, a consistent snapshot.
 *
 * `pushed` counts the items given to mqtt__queue_push() while the queue was open (refused ones
 * included); `delivered` the items whose `deliver` call has started; `dropped` the items released
 * without delivery (refused, dropped as oldest, not stored for lack of memory, left at close). At
 * every moment `pushed == delivered + dropped + queued`. `queued` and `queued_bytes` describe the
 * items waiting (not the one being delivered); `max_items` and `max_bytes` are the bounds given at
 * creation (`max_bytes` SIZE_MAX when unbounded).
 */
typedef struct mqtt_queue_stats {
    uint64_t pushed;
    uint64_t delivered;
    uint64_t dropped;
    size_t queued;
    size_t queued_bytes;
    size_t max_items;
    size_t max_bytes;
} mqtt_queue_stats_t;

/**
 * @brief Delivers one item: called on a worker, never under a lock of this module, never twice
 * at the same time for one queue, in push order. `item` is borrowed for the call: the queue
 * releases it right after.
 */
typedef void (*mqtt_deliver_fn)(void *ctx, void *item);

/**
 * @brief Gives up one item (frees it): called exactly once per pushed item, on the thread named
 * in the file comment, never under a lock of this module. It must not call functions of this
 * module on the queue it belongs to.
 */
typedef void (*mqtt_release_fn)(void *item);

/**
 * @brief Creates a pool and starts its worker threads.
 * @param[in] workers number of worker threads (> 0): the number of queues that can be delivered
 * at the same time.
 * @param[out] ret the pool, owned by the caller (mqtt__dispatch_free()).
 * @return 0, -EINVAL (no worker, NULL ret), -ENOMEM, -EAGAIN (a thread could not be started).
 * Thread: any.
 */
int mqtt__dispatch_new(size_t workers, mqtt_dispatch_t **ret);

/**
 * @brief Stops and joins the workers, frees the pool (NULL accepted); returns NULL.
 * Every queue of the pool must have been closed before (a queue closed from its own `deliver`
 * call is freed by its worker, which this call waits for). Must not be called from a worker.
 */
mqtt_dispatch_t *mqtt__dispatch_free(mqtt_dispatch_t *d);

/**
 * @brief Creates an empty queue delivered by the workers of `d`. Its item ring is allocated on
 * the first pushes and grows up to `max_items`.
 * @param[in] max_items the most items waiting at once (> 0).
 * @param[in] max_bytes the most bytes waiting at once (sum of the sizes given to push); 0 or
 * SIZE_MAX for no byte bound.
 * @param[in] policy what a full queue does (see mqtt_overflow_t).
 * @param[in] deliver called for each item (non-NULL); `ctx` is passed to it. The caller keeps
 * `ctx` alive until mqtt__queue_close() has returned.
 * @param[in] release called for each item once the queue is done with it; NULL if items need no
 * release.
 * @param[out] ret the queue, owned by the caller (mqtt__queue_close()).
 * @return 0, -EINVAL, -ENOMEM. Thread: any.
 */
int mqtt__queue_new(mqtt_dispatch_t *d, size_t max_items, size_t max_bytes, mqtt_overflow_t policy,
                    mqtt_deliver_fn deliver, mqtt_release_fn release, void *ctx,
                    mqtt_queue_t **ret);

/**
 * @brief Queues an item for delivery. Never blocks beyond short internal locks and never calls
 * `deliver`; it may call `release` for the items it refuses or drops (on the calling thread).
 * The ring grows on demand (an allocation) until it holds `max_items`; after that a push does
 * not allocate.
 * @param[in] item consumed on every return but -EINVAL: queued, or released before returning.
 * @param[in] bytes the size of the item, counted against `max_bytes`.
 * @return 0 (queued; with MQTT_DROP_OLDEST also when older items were dropped to make room),
 * -ENOBUFS (refused: queue full with MQTT_DROP_NEWEST, or `bytes` > `max_bytes` with either
 * policy), -ENOMEM (the ring could not grow), -ESHUTDOWN (mqtt__queue_close() has started),
 * -EINVAL (NULL queue; the item is not released).
 * Thread: any, including a `deliver` call (of any queue). Several threads may push to one queue:
 * the items of each thread keep their order.
 */
int mqtt__queue_push(mqtt_queue_t *q, void *item, size_t bytes);

/** One item waiting in a batch (the dispatcher's). */
typedef struct mqtt_batch_item mqtt_batch_item_t;

/**
 * @brief Pushes made together by one thread: the items wait in the batch, linked per queue, and
 * mqtt__dispatch_commit() stores each queue's items under one lock of that queue, puts the
 * queues made ready on the run list at once and wakes the workers once (a burst of 60 messages
 * for 100 listeners takes each queue lock once, not 60 times, and the pool lock once). Start
 * from MQTT_BATCH_INIT and free with mqtt__batch_free(); the fields are the dispatcher's.
 */
typedef struct mqtt_batch {
    mqtt_queue_t *first, *last; /* queues with items waiting, in the order of their first item */
    mqtt_batch_item_t *items;   /* kept from one commit to the next */
    size_t n, cap;
} mqtt_batch_t;

#define MQTT_BATCH_INIT                                                                            \
    {                                                                                              \
        NULL, NULL, NULL, 0, 0                                                                     \
    }

/**
 * @brief Puts an item in the batch `b` for queue `q`. It reaches the queue at
 * mqtt__dispatch_commit(), with the outcome of mqtt__queue_push() then (queued, or refused,
 * dropped, counted and released as a push would be). The caller must commit before it pushes
 * to one of the batch's queues outside the batch, closes one or flushes one (a close waits for
 * the commit). Without memory for the batch, the batch is committed and the item pushed at once.
 * @return 0 (consumed), -EINVAL (NULL queue or batch: not consumed).
 * Thread: the one that owns `b`.
 */
int mqtt__queue_push_batch(mqtt_queue_t *q, void *item, size_t bytes, mqtt_batch_t *b);

/**
 * @brief Stores the items of a batch in their queues (in the order they were put in the batch),
 * puts the queues made ready on the run list and wakes the workers; `b` is empty after.
 * Thread: the one that owns `b`.
 */
void mqtt__dispatch_commit(mqtt_dispatch_t *d, mqtt_batch_t *b);

/** @brief Frees the memory of an empty batch (committed); it may be used again after. */
void mqtt__batch_free(mqtt_batch_t *b);

/**
 * @brief Declares (`slow_us` > 0) or withdraws (<= 0) a host: a thread that calls
 * mqtt__dispatch_run_here() after each commit, before it waits for anything. A queue whose run
 * by the host took longer than `slow_us` microseconds is left to the workers from then on.
 * While there is a host, mqtt__dispatch_commit() wakes no worker for a batch of at most
 * MQTT_DISPATCH_HERE items whose queues all run fast: a message for one listener is then
 * delivered without a thread switch (on a loaded machine, a worker's wake-up cost more CPU and
 * latency than the rest of the message). Withdrawing wakes the workers for what was left.
 * Thread: any.
 */
void mqtt__dispatch_host(mqtt_dispatch_t *d, long slow_us);

/**
 * @brief Runs ready queues on the calling thread (the host), as a worker would, until
 * MQTT_DISPATCH_HERE items were taken, a queue marked slow comes first on the run list, or a
 * queue's run took longer than the host's `slow_us`, which marks that queue slow for good (its
 * items go to the workers from then on: a listener that blocks holds the host once). Wakes a
 * worker for what is left. The caller must hold no lock and must not rely on anything a deliver
 * call could change: listener code runs here.
 * @return the number of items taken. Thread: the host (not a worker).
 */
size_t mqtt__dispatch_run_here(mqtt_dispatch_t *d);

/** @brief True when queues wait on the run list (for a host: run them). Thread: any. */
bool mqtt__dispatch_ready(mqtt_dispatch_t *d);

/** @brief Wakes the workers for what waits on the run list (a host that will not run it). */
void mqtt__dispatch_wake(mqtt_dispatch_t *d);

/**
 * @brief Pushes an item of no size behind the others, whatever the bounds (for an item that
 * ends the queue's life, such as one that closes it from its own deliver call): never refused for
 * being over a bound, so a full queue cannot block its closing. Same threads as mqtt__queue_push().
 * @return 0; -ESHUTDOWN (close started) or -ENOMEM (the ring could not grow): the item was
 *         released; -EINVAL (NULL queue: not released).
 */
int mqtt__queue_push_last(mqtt_queue_t *q, void *item);

/**
 * @brief Closes and frees the queue (NULL accepted). New pushes fail with -ESHUTDOWN at once.
 *
 * With `drain` false, the items waiting are released without delivery. With `drain` true, they
 * are first delivered for up to `drain_timeout_ms` milliseconds; those left then are released
 * without delivery. When close returns, no `deliver` call of this queue is running on another
 * thread or will start, and every item has been released: the caller may free `ctx`.
 *
 * Called from a `deliver` call of this very queue (on its worker), close does not wait for
 * itself: `drain` is ignored (a drained item would be delivered after close returned), the items
 * waiting are released before it returns, it returns at once, and the queue is freed by the
 * worker when that `deliver` call returns; no other `deliver` call of the queue follows.
 *
 * Called from a `deliver` call of another queue, close waits for this queue's running `deliver`
 * call as from any thread: two `deliver` calls closing each other's queue wait for each other.
 * A drain needs a free worker: with every worker busy it lasts until the timeout.
 *
 * The caller ensures no other call on `q` (push, flush, stats) is still running when close
 * returns, nor starts after: a pusher that races with close must stop at -ESHUTDOWN and be known
 * to have stopped before close can return (e.g. it is the thread that closes, or a `deliver`
 * call of the queue, which close waits for).
 * Thread: any.
 */
void mqtt__queue_close(mqtt_queue_t *q, bool drain, long drain_timeout_ms);

/** @brief Copies the statistics of the queue (zeros for a NULL queue). Thread: any. */
void mqtt__queue_stats(mqtt_queue_t *q, mqtt_queue_stats_t *ret);

/**
 * @brief Waits until the queue has no item waiting and no `deliver` call running (items pushed
 * meanwhile are waited for too), or until `timeout_ms` milliseconds have passed.
 * @return 0, -ETIMEDOUT, -EINVAL (NULL queue), -EDEADLK (called from a `deliver` call of this
 * queue, which would wait for itself). Thread: any; from a `deliver` call of another queue it
 * needs a free worker to make progress.
 */
int mqtt__queue_flush(mqtt_queue_t *q, long timeout_ms);

#endif
