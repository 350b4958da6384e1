/*
 * Service listeners and event delivery.
 *
 * Each service has a FIFO of events. An event records, when it is created (under the registry
 * lock), which listeners get it and as what kind, so a listener added later never sees an older
 * event and a listener removed before delivery is skipped. One thread at a time drains a
 * service's queue (`delivering`/`deliverer`): the first thread that queues an event while nobody
 * delivers becomes the deliverer and keeps going until the queue is empty. This keeps each
 * listener's view of a service in order without ever calling back under the lock, and without a
 * thread waiting for another's callbacks (except unregister, see registry.c).
 */
#include <errno.h>
#include <string.h>

#include "props/freeze.h"
#include "registry/registry_internal.h"

/* ---- holders --------------------------------------------------------------------------------- */

void reg__holders_push(holders_t *h, holder_t *node)
{
    node->tid = pthread_self();
    node->prev = NULL;
    node->next = h->head;
    if (h->head) {
        h->head->prev = node;
    }
    h->head = node;
    h->count++;
}

void reg__holders_pop(holders_t *h, holder_t *node)
{
    if (node->prev) {
        node->prev->next = node->next;
    } else {
        h->head = node->next;
    }
    if (node->next) {
        node->next->prev = node->prev;
    }
    h->count--;
}

long reg__holders_others(const holders_t *h)
{
    pthread_t self = pthread_self();
    long n = 0;

    for (const holder_t *x = h->head; x; x = x->next) {
        if (!pthread_equal(x->tid, self)) {
            n++;
        }
    }
    return n;
}

/* ---- property snapshots ---------------------------------------------------------------------- */

snap_t *reg__snap_new(pelix_props_t *props)
{
    snap_t *s = pelix__malloc(sizeof(*s));

    if (!s) {
        pelix_props_free(props);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->props = props__freeze(props); /* read only from now on, kept as long as it is used */
    return s;
}

snap_t *reg__snap_ref(snap_t *s)
{
    if (s) {
        atomic_fetch_add(&s->refs, 1);
    }
    return s;
}

void reg__snap_unref(snap_t *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        pelix_props_free(s->props);
        pelix__free(s);
    }
}

/* ---- listeners ------------------------------------------------------------------------------- */

void reg__listener_unref(listener_t *l)
{
    if (l && --l->refs == 0) {
        pelix_filter_unref(l->filter);
        pelix__free(l->spec);
        pelix__free(l);
    }
}

static int vec_add(listener_vec_t *v, listener_t *l)
{
    if (pelix__grow((void **)&v->items, &v->cap, v->count + 1, sizeof(*v->items)) < 0) {
        return -ENOMEM;
    }
    v->items[v->count++] = l;
    return 0;
}

static void vec_remove(listener_vec_t *v, listener_t *l)
{
    for (size_t i = 0; i < v->count; i++) {
        if (v->items[i] == l) {
            memmove(&v->items[i], &v->items[i + 1], (v->count - i - 1) * sizeof(*v->items));
            v->count--;
            return;
        }
    }
}

void reg__listeners_free(pelix_registry_t *r)
{
    size_t pos = 0;
    void *value;

    while (pelix__map_next(&r->listeners, &pos, NULL, NULL, &value)) {
        reg__listener_unref(value);
    }
    pelix__map_clear(&r->listeners);
    pos = 0;
    while (pelix__map_next(&r->listeners_by_spec, &pos, NULL, NULL, &value)) {
        listener_vec_t *v = value;
        pelix__free(v->spec);
        pelix__free(v->items);
        pelix__free(v);
    }
    pelix__map_clear(&r->listeners_by_spec);
    pelix__free(r->any_listeners.items);
}

/* ---- events ---------------------------------------------------------------------------------- */

static bool wants(const listener_t *l, const snap_t *props)
{
    return !l->removed && pelix_filter_match(l->filter, props->props);
}

static int add_target(event_t *ev, size_t *cap, listener_t *l, pelix_svc_event_kind_t kind)
{
    if (pelix__grow((void **)&ev->targets, cap, ev->count + 1, sizeof(*ev->targets)) < 0) {
        return -ENOMEM;
    }
    ev->targets[ev->count].listener = l;
    ev->targets[ev->count].kind = kind;
    ev->count++;
    return 0;
}

static int consider(event_t *ev, size_t *cap, listener_t *l, pelix_svc_event_kind_t kind)
{
    pelix_svc_event_kind_t k = kind;

    if (kind == PELIX_SVC_MODIFIED) {
        if (!wants(l, ev->props)) {
            if (!wants(l, ev->old_props)) {
                return 0;
            }
            k = PELIX_SVC_MODIFIED_ENDMATCH;
        }
    } else if (!wants(l, ev->props)) {
        return 0;
    }
    return add_target(ev, cap, l, k);
}

void reg__event_free(pelix_registry_t *r, event_t *ev)
{
    (void)r;
    if (!ev) {
        return;
    }
    if (ev->dynamic) {
        reg__snap_unref(ev->props); /* embedded in its registration */
        ev->props = NULL;
        return;
    }
    for (size_t i = 0; i < ev->count; i++) {
        reg__listener_unref(ev->targets[i].listener);
    }
    reg__snap_unref(ev->props);
    reg__snap_unref(ev->old_props);
    pelix__free(ev->targets);
    pelix__free(ev);
}

int reg__event_new(pelix_registry_t *r, svc_reg_t *s, pelix_svc_event_kind_t kind, snap_t *props,
                   snap_t *old_props, event_t **ret)
{
    event_t *ev = pelix__calloc(1, sizeof(*ev));
    size_t cap = 0;
    int rc = 0;

    if (!ev) {
        return -ENOMEM;
    }
    ev->props = reg__snap_ref(props);
    ev->old_props = reg__snap_ref(old_props);
    for (size_t i = 0; i < s->nspecs && rc == 0; i++) {
        listener_vec_t *v = pelix__map_get_str(&r->listeners_by_spec, s->specs[i]);
        for (size_t j = 0; v && j < v->count && rc == 0; j++) {
            rc = consider(ev, &cap, v->items[j], kind);
        }
    }
    for (size_t j = 0; j < r->any_listeners.count && rc == 0; j++) {
        rc = consider(ev, &cap, r->any_listeners.items[j], kind);
    }
    if (rc < 0) {
        ev->count = 0; /* no listener reference taken yet */
        reg__event_free(r, ev);
        return rc;
    }
    for (size_t i = 0; i < ev->count; i++) {
        ev->targets[i].listener->refs++;
    }
    if (!ev->count) {
        reg__event_free(r, ev);
        ev = NULL;
    }
    *ret = ev;
    return 0;
}

event_t *reg__event_unregistering(pelix_registry_t *r, svc_reg_t *s)
{
    event_t *ev = &s->spare;

    memset(ev, 0, sizeof(*ev));
    ev->props = reg__snap_ref(s->props);
    ev->dynamic = true;
    ev->bound = r->next_listener_id;
    return ev;
}

void reg__enqueue(svc_reg_t *s, event_t *ev)
{
    if (!ev) {
        return;
    }
    ev->next = NULL;
    if (s->qtail) {
        s->qtail->next = ev;
    } else {
        s->qhead = ev;
    }
    s->qtail = ev;
}

/* Calls listener `l` with one event of `s`; lock held on entry and exit, released for the call. */
static void call(pelix_registry_t *r, svc_reg_t *s, event_t *ev, listener_t *l,
                 pelix_svc_event_kind_t kind)
{
    holder_t holder;
    pelix_svc_event_t e = {
        .kind = kind,
        .id = s->id,
        .svc = s->svc,
        .props = ev->props->props,
        .old_props = ev->old_props ? ev->old_props->props : NULL,
    };

    reg__holders_push(&l->calls, &holder);
    pthread_mutex_unlock(&r->lock);
    l->fn(l->ctx, &e);
    pthread_mutex_lock(&r->lock);
    reg__holders_pop(&l->calls, &holder);
    if (l->removed) {
        pthread_cond_broadcast(&r->cond);
    }
}

/* The next listener of a dynamic event: the one wanting it with the lowest id above `last`. */
static listener_t *next_dynamic(pelix_registry_t *r, svc_reg_t *s, event_t *ev)
{
    listener_t *best = NULL;

    for (size_t i = 0; i <= s->nspecs; i++) {
        const listener_vec_t *v = i < s->nspecs
                                      ? pelix__map_get_str(&r->listeners_by_spec, s->specs[i])
                                      : &r->any_listeners;
        for (size_t j = 0; v && j < v->count; j++) {
            listener_t *l = v->items[j];
            if (l->id > ev->last && l->id <= ev->bound && (!best || l->id < best->id) &&
                wants(l, ev->props)) {
                best = l;
            }
        }
    }
    return best;
}

static void deliver(pelix_registry_t *r, svc_reg_t *s, event_t *ev)
{
    listener_t *l;

    if (ev->dynamic) {
        while ((l = next_dynamic(r, s, ev))) {
            ev->last = l->id;
            l->refs++;
            call(r, s, ev, l, PELIX_SVC_UNREGISTERING);
            reg__listener_unref(l);
        }
        return;
    }
    for (size_t i = 0; i < ev->count; i++) {
        l = ev->targets[i].listener;
        if (!l->removed) {
            call(r, s, ev, l, ev->targets[i].kind);
        }
    }
}

void reg__kick(pelix_registry_t *r, svc_reg_t *s)
{
    event_t *ev;

    if (s->delivering) {
        return; /* the deliverer (maybe this very thread, further up) will get to it */
    }
    s->delivering = true;
    s->deliverer = pthread_self();
    while ((ev = s->qhead)) {
        s->qhead = ev->next;
        if (!s->qhead) {
            s->qtail = NULL;
        }
        deliver(r, s, ev);
        reg__event_free(r, ev);
    }
    s->delivering = false;
    pthread_cond_broadcast(&r->cond);
    reg__maybe_finalize(r, s);
}

/* ---- listener API ---------------------------------------------------------------------------- */

/* The services a replaying listener must hear about, with their REGISTERED events. */
typedef struct replay {
    svc_reg_t **regs;
    event_t **events;
    size_t count;
} replay_t;

static int replay_prepare(pelix_registry_t *r, listener_t *l, replay_t *rp)
{
    spec_index_t *index = l->spec ? pelix__map_get_str(&r->by_spec, l->spec) : &r->all;
    size_t n = index ? index->count : 0;

    rp->count = 0;
    rp->regs = pelix__calloc(n ? n : 1, sizeof(*rp->regs));
    rp->events = pelix__calloc(n ? n : 1, sizeof(*rp->events));
    if (!rp->regs || !rp->events) {
        return -ENOMEM;
    }
    for (link_t *k = index ? index->head : NULL; k; k = k->next) {
        svc_reg_t *s = k->reg;
        event_t *ev;
        size_t cap = 0;
        if (!pelix_filter_match(l->filter, s->props->props)) {
            continue;
        }
        ev = pelix__calloc(1, sizeof(*ev));
        if (!ev || add_target(ev, &cap, l, PELIX_SVC_REGISTERED) < 0) {
            pelix__free(ev);
            return -ENOMEM;
        }
        ev->props = reg__snap_ref(s->props);
        l->refs++;
        rp->regs[rp->count] = s;
        rp->events[rp->count] = ev;
        rp->count++;
    }
    return 0;
}

static void replay_discard(pelix_registry_t *r, replay_t *rp)
{
    for (size_t i = 0; i < rp->count; i++) {
        reg__event_free(r, rp->events[i]);
    }
    pelix__free(rp->regs);
    pelix__free(rp->events);
}

static int index_listener(pelix_registry_t *r, listener_t *l)
{
    listener_vec_t *v = &r->any_listeners;

    if (l->spec) {
        v = pelix__map_get_str(&r->listeners_by_spec, l->spec);
        if (!v) {
            v = pelix__calloc(1, sizeof(*v));
            if (!v || !(v->spec = pelix__strdup(l->spec)) ||
                pelix__map_put_str(&r->listeners_by_spec, v->spec, v) < 0) {
                if (v) {
                    pelix__free(v->spec);
                }
                pelix__free(v);
                return -ENOMEM;
            }
        }
    }
    if (pelix__map_put_long(&r->listeners, l->id, l) < 0) {
        return -ENOMEM;
    }
    if (vec_add(v, l) < 0) {
        pelix__map_remove_long(&r->listeners, l->id);
        return -ENOMEM;
    }
    return 0;
}

static void unindex_listener(pelix_registry_t *r, listener_t *l)
{
    pelix__map_remove_long(&r->listeners, l->id);
    if (!l->spec) {
        vec_remove(&r->any_listeners, l);
        return;
    }
    listener_vec_t *v = pelix__map_get_str(&r->listeners_by_spec, l->spec);
    if (!v) {
        return;
    }
    vec_remove(v, l);
    if (!v->count) {
        pelix__map_remove_str(&r->listeners_by_spec, v->spec);
        pelix__free(v->spec);
        pelix__free(v->items);
        pelix__free(v);
    }
}

int pelix_registry_add_listener(pelix_registry_t *r, const char *spec, const char *filter,
                                bool replay, pelix_svc_listener_fn fn, void *ctx, long *ret_id,
                                pelix_error_t *err)
{
    listener_t *l;
    replay_t rp = {0};
    int rc;

    if (!r || !fn || (spec && !*spec)) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    l = pelix__calloc(1, sizeof(*l));
    if (!l) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    l->fn = fn;
    l->ctx = ctx;
    l->refs = 1;
    if (spec && !(l->spec = pelix__strdup(spec))) {
        reg__listener_unref(l);
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    if (filter && !pelix__str_blank(filter)) {
        rc = pelix_filter_parse(filter, &l->filter, err);
        if (rc < 0) {
            reg__listener_unref(l);
            return rc;
        }
    }

    pthread_mutex_lock(&r->lock);
    l->id = ++r->next_listener_id;
    rc = replay ? replay_prepare(r, l, &rp) : 0;
    if (rc == 0) {
        rc = index_listener(r, l);
    }
    if (rc < 0) {
        l->removed = true;
        replay_discard(r, &rp);
        pthread_mutex_unlock(&r->lock);
        reg__listener_unref(l);
        return pelix__error(err, rc, -1, "out of memory");
    }
    if (ret_id) {
        *ret_id = l->id; /* before the first call, which may want to remove the listener */
    }
    for (size_t i = 0; i < rp.count; i++) {
        reg__enqueue(rp.regs[i], rp.events[i]);
        rp.regs[i]->refs++;
    }
    for (size_t i = 0; i < rp.count; i++) {
        reg__kick(r, rp.regs[i]);
        reg__svc_unref(r, rp.regs[i]);
    }
    pthread_mutex_unlock(&r->lock);
    pelix__free(rp.regs);
    pelix__free(rp.events);
    return 0;
}

int pelix_registry_remove_listener(pelix_registry_t *r, long listener_id)
{
    listener_t *l;
    waiter_t w = {0};

    if (!r || listener_id <= 0) {
        return -EINVAL;
    }
    pthread_mutex_lock(&r->lock);
    l = pelix__map_get_long(&r->listeners, listener_id);
    if (!l) {
        pthread_mutex_unlock(&r->lock);
        return -ENOENT;
    }
    unindex_listener(r, l);
    l->removed = true;
    w.listener = l;
    reg__wait_begin(r, &w);
    /* Always waits (the caller frees the listener's context next); recorded as a waiter so that
     * an unregister waiting for this thread gives up instead (waits.c). */
    while (reg__holders_others(&l->calls) > 0) {
        pthread_cond_wait(&r->cond, &r->lock);
    }
    reg__wait_end(r, &w);
    reg__listener_unref(l);
    pthread_mutex_unlock(&r->lock);
    return 0;
}
