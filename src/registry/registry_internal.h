/*
 * Internal structures of the service registry, shared by registry.c (services, lookups, uses)
 * and events.c (listeners, per-service event queues, delivery).
 *
 * Locking: one mutex (`lock`) guards everything below; one condition variable (`cond`) is
 * broadcast whenever a delivery ends, a use or a listener call ends, so that waiters re-check
 * their condition. No callback is ever called with `lock` held: delivery unlocks around each call.
 */
#ifndef PELIX_REGISTRY_INTERNAL_H
#define PELIX_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <pelix/registry.h>

#include "util/util.h"

/* A thread holding a service (a use) or running a listener (a call); linked into a holder list.
 * Scoped holders live on the holder's stack, get_service() holders on the heap. */
typedef struct holder {
    pthread_t tid;
    bool heap;
    struct holder *prev, *next;
} holder_t;

typedef struct holders {
    holder_t *head;
    long count;
} holders_t;

void reg__holders_push(holders_t *h, holder_t *node);
void reg__holders_pop(holders_t *h, holder_t *node);
/* Holders that are not the calling thread. */
long reg__holders_others(const holders_t *h);

/* Immutable properties shared by the registration and the events that carry them. */
typedef struct snap {
    atomic_int refs;
    pelix_props_t *props;
} snap_t;

snap_t *reg__snap_new(pelix_props_t *props); /* consumes props */
snap_t *reg__snap_ref(snap_t *s);
void reg__snap_unref(snap_t *s);

typedef struct listener {
    long id;
    char *spec;             /* NULL: any */
    pelix_filter_t *filter; /* NULL: all */
    pelix_svc_listener_fn fn;
    void *ctx;
    bool removed;
    holders_t calls;
    int refs;
} listener_t;

typedef struct listener_vec {
    char *spec; /* owned; the key of listeners_by_spec */
    listener_t **items;
    size_t count;
    size_t cap;
} listener_vec_t;

typedef struct target {
    listener_t *listener;
    pelix_svc_event_kind_t kind;
} target_t;

typedef struct event {
    struct event *next;
    snap_t *props;
    snap_t *old_props;
    target_t *targets;
    size_t count;
    /* The UNREGISTERING event built without memory (embedded in its svc_reg_t): no target list;
     * delivered to the listeners present now (id <= `bound`) in id order, `last` the latest. */
    bool dynamic;
    long bound;
    long last;
} event_t;

typedef struct svc_reg svc_reg_t;

/* Membership of a registration in an ordered list (one per specification, plus `all`). */
typedef struct link {
    svc_reg_t *reg;
    struct link *prev, *next;
    struct spec_index *index;
} link_t;

typedef struct spec_index {
    char *spec; /* NULL for the list of all services */
    link_t *head, *tail;
    size_t count;
} spec_index_t;

struct svc_reg {
    long id;
    char **specs;
    size_t nspecs;
    void *svc;
    snap_t *props;
    long ranking;
    bool unregistering;
    bool detached; /* removed from by_id */
    int refs;
    holders_t uses;
    event_t *qhead, *qtail;
    bool delivering;
    pthread_t deliverer;
    link_t *links; /* nspecs + 1 (the last one in `all`) */
    event_t spare; /* UNREGISTERING when memory is short: unregister never fails */
};

/* A thread waiting in unregister (for the delivery and the uses of `svc`) or in remove_listener
 * (for the calls of `listener`), linked in the registry's list while it waits. See waits.c. */
typedef struct waiter {
    pthread_t tid;
    svc_reg_t *svc;
    listener_t *listener;
    unsigned stamp;
    struct waiter *next;
} waiter_t;

struct pelix_registry {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_long next_id;
    long next_listener_id;
    pelix_map_t by_id;   /* long -> svc_reg_t */
    pelix_map_t by_spec; /* spec -> spec_index_t */
    spec_index_t all;
    pelix_map_t listeners;         /* long -> listener_t */
    pelix_map_t listeners_by_spec; /* spec -> listener_vec_t */
    listener_vec_t any_listeners;
    waiter_t *waiters;
    unsigned wait_stamp;
};

/* events.c */
/* Builds the event of `kind` for `s` (targets chosen among the listeners now present); *ret is
 * NULL when no listener wants it. Lock held. 0 or -ENOMEM. */
int reg__event_new(pelix_registry_t *r, svc_reg_t *s, pelix_svc_event_kind_t kind, snap_t *props,
                   snap_t *old_props, event_t **ret);
void reg__event_free(pelix_registry_t *r, event_t *ev);
/* The UNREGISTERING event of `s` without allocation (its embedded dynamic event). Lock held. */
event_t *reg__event_unregistering(pelix_registry_t *r, svc_reg_t *s);
void reg__enqueue(svc_reg_t *s, event_t *ev);
/* Delivers the queued events of `s` unless a thread already does. Lock held (released during
 * callbacks). `s` must be referenced by the caller. */
void reg__kick(pelix_registry_t *r, svc_reg_t *s);
void reg__listener_unref(listener_t *l);
void reg__listeners_free(pelix_registry_t *r);

/* waits.c: a thread about to wait records itself (begin), checks reg__would_deadlock() before
 * each wait and gives up waiting when it is true, then removes itself (end). Lock held. */
void reg__wait_begin(pelix_registry_t *r, waiter_t *w);
void reg__wait_end(pelix_registry_t *r, waiter_t *w);
bool reg__would_deadlock(pelix_registry_t *r, waiter_t *w);

/* registry.c */
void reg__svc_unref(pelix_registry_t *r, svc_reg_t *s);
/* Detaches an unregistered service once its queue is empty and nobody uses it. Lock held. */
void reg__maybe_finalize(pelix_registry_t *r, svc_reg_t *s);
/* Takes a use of service `id` with the caller's holder, even while it is unregistering (its
 * unregister then waits for the use): false when it is gone. Released by reg__release(). */
bool reg__hold(pelix_registry_t *r, long id, holder_t *use);
void reg__release(pelix_registry_t *r, long id, holder_t *use);

#endif
