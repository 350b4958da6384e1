/*
 * Service trackers, built on a replaying service listener: the registry delivers a REGISTERED
 * event for every matching service present when the listener is added, in order with the other
 * events of that service, so the tracker neither misses nor doubles a service. The tracked set
 * is guarded by the tracker's own mutex, released before any callback.
 */
#include <errno.h>
#include <stdlib.h>

#include <pelix/tracker.h>

#include "registry/registry_internal.h"
#include "util/util.h"

typedef struct entry {
    long id;
    void *svc;
    long ranking;
    pelix_props_t *props;
    holder_t use; /* at close: keeps the service valid until `removed` returned */
    bool held;
} entry_t;

struct pelix_tracker {
    pelix_registry_t *reg;
    long listener_id;
    pthread_mutex_t lock;
    pelix_map_t tracked; /* id -> entry_t */
    bool closing;        /* no new service is tracked */
    pelix_tracker_options_t opts;
};

static long ranking_of(const pelix_props_t *props)
{
    return (long)pelix_props_get_long(props, PELIX_SERVICE_RANKING, 0);
}

static void entry_free(entry_t *e)
{
    if (e) {
        pelix_props_free(e->props);
        pelix__free(e);
    }
}

static void on_event(void *ctx, const pelix_svc_event_t *ev)
{
    pelix_tracker_t *t = ctx;
    entry_t *e, *gone = NULL;
    pelix_tracker_fn fn = NULL;

    pthread_mutex_lock(&t->lock);
    e = pelix__map_get_long(&t->tracked, ev->id);
    switch (ev->kind) {
    case PELIX_SVC_REGISTERED:
    case PELIX_SVC_MODIFIED: {
        pelix_props_t *copy = pelix_props_copy(ev->props);
        if (e && copy) {
            pelix_props_free(e->props);
            e->props = copy;
            e->ranking = ranking_of(ev->props);
            fn = t->opts.modified;
        } else if (!e && copy && !t->closing && (e = pelix__calloc(1, sizeof(*e)))) {
            e->id = ev->id;
            e->svc = ev->svc;
            e->ranking = ranking_of(ev->props);
            e->props = copy;
            if (pelix__map_put_long(&t->tracked, e->id, e) < 0) {
                entry_free(e);
            } else {
                fn = t->opts.added;
            }
        } else {
            /* Out of memory: a tracked service keeps its old properties; a new one is missed. */
            pelix_props_free(copy);
        }
        break;
    }
    case PELIX_SVC_MODIFIED_ENDMATCH:
    case PELIX_SVC_UNREGISTERING:
        gone = pelix__map_remove_long(&t->tracked, ev->id);
        fn = gone ? t->opts.removed : NULL;
        break;
    }
    pthread_mutex_unlock(&t->lock);
    if (fn) {
        fn(t->opts.ctx, ev->id, ev->svc, ev->props);
    }
    if (gone && gone->held) {
        reg__release(t->reg, gone->id, &gone->use); /* taken by a closing tracker */
    }
    entry_free(gone);
}

int pelix_tracker_open(pelix_registry_t *reg, const pelix_tracker_options_t *opts,
                       pelix_tracker_t **ret_tracker, pelix_error_t *err)
{
    pelix_tracker_t *t;
    int rc;

    if (!reg || !opts || !ret_tracker) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    t = pelix__calloc(1, sizeof(*t));
    if (!t) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    t->reg = reg;
    t->opts = *opts;
    t->opts.spec = NULL; /* borrowed by the caller: not kept */
    t->opts.filter = NULL;
    pthread_mutex_init(&t->lock, NULL);
    pelix__map_init_long(&t->tracked);
    /* Publish the tracker before events can arrive: the first may come before open returns. */
    *ret_tracker = t;
    rc = pelix_registry_add_listener(reg, opts->spec, opts->filter, true, on_event, t,
                                     &t->listener_id, err);
    if (rc < 0) {
        pelix__map_clear(&t->tracked);
        pthread_mutex_destroy(&t->lock);
        pelix__free(t);
        *ret_tracker = NULL;
        return rc;
    }
    return 0;
}

pelix_tracker_t *pelix_tracker_close(pelix_tracker_t *t)
{
    size_t pos = 0;
    void *value;

    if (!t) {
        return NULL;
    }
    /* Hold a use of every tracked service, even one being unregistered by another thread: its
     * unregister then waits for the use, so its pointer stays valid until `removed` returned here
     * (its UNREGISTERING event may never reach the listener once removed). From now on no new
     * service gets tracked; an event that untracks a held service releases its use. */
    pthread_mutex_lock(&t->lock);
    t->closing = true;
    while (pelix__map_next(&t->tracked, &pos, NULL, NULL, &value)) {
        entry_t *e = value;
        e->held = reg__hold(t->reg, e->id, &e->use);
    }
    pthread_mutex_unlock(&t->lock);
    pelix_registry_remove_listener(t->reg, t->listener_id);
    /* No event can reach the tracker any more; the callbacks of other threads have ended. */
    pos = 0;
    while (pelix__map_next(&t->tracked, &pos, NULL, NULL, &value)) {
        entry_t *e = value;
        /* A service gone before its use could be taken had its UNREGISTERING delivered to the
         * listener (still registered then), which untracked it: `held` is always true here. */
        if (e->held && t->opts.removed) {
            t->opts.removed(t->opts.ctx, e->id, e->svc, e->props);
        }
        if (e->held) {
            reg__release(t->reg, e->id, &e->use);
        }
        entry_free(e);
    }
    pelix__map_clear(&t->tracked);
    pthread_mutex_destroy(&t->lock);
    pelix__free(t);
    return NULL;
}

size_t pelix_tracker_count(pelix_tracker_t *t)
{
    size_t n;

    if (!t) {
        return 0;
    }
    pthread_mutex_lock(&t->lock);
    n = t->tracked.count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

typedef struct ranked {
    long id;
    long ranking;
} ranked_t;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->ranking != y->ranking) {
        return x->ranking > y->ranking ? -1 : 1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

static int sorted(pelix_tracker_t *t, ranked_t **ret, size_t *ret_count)
{
    ranked_t *items;
    size_t pos = 0, n = 0;
    void *value;

    pthread_mutex_lock(&t->lock);
    items = pelix__malloc((t->tracked.count ? t->tracked.count : 1) * sizeof(*items));
    if (!items) {
        pthread_mutex_unlock(&t->lock);
        return -ENOMEM;
    }
    while (pelix__map_next(&t->tracked, &pos, NULL, NULL, &value)) {
        const entry_t *e = value;
        items[n].id = e->id;
        items[n].ranking = e->ranking;
        n++;
    }
    pthread_mutex_unlock(&t->lock);
    qsort(items, n, sizeof(*items), cmp_ranked);
    *ret = items;
    *ret_count = n;
    return 0;
}

int pelix_tracker_ids(pelix_tracker_t *t, long **ret_ids, size_t *ret_count)
{
    ranked_t *items;
    long *ids = NULL;
    size_t n;
    int rc;

    if (!t || !ret_ids || !ret_count) {
        return -EINVAL;
    }
    rc = sorted(t, &items, &n);
    if (rc < 0) {
        return rc;
    }
    if (n && !(ids = pelix__malloc(n * sizeof(*ids)))) {
        pelix__free(items);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = items[i].id;
    }
    pelix__free(items);
    *ret_ids = ids;
    *ret_count = n;
    return 0;
}

int pelix_tracker_use(pelix_tracker_t *t, pelix_svc_use_fn fn, void *ctx)
{
    ranked_t *items;
    size_t n;
    int rc;

    if (!t || !fn) {
        return -EINVAL;
    }
    rc = sorted(t, &items, &n);
    if (rc < 0) {
        return rc;
    }
    rc = -ENOENT;
    /* The best one may be going away (unregistering but not yet removed): try the next. */
    for (size_t i = 0; i < n && rc == -ENOENT; i++) {
        rc = pelix_registry_use_id(t->reg, items[i].id, fn, ctx);
    }
    pelix__free(items);
    return rc;
}
