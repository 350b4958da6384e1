/*
 * Services: registration, properties, lookups and uses.
 *
 * Invariants (under the registry lock):
 * - A registration is in `by_id` from register until it is unregistered, its event queue is
 *   empty and nobody uses it (then it is "detached"); it is in the ordered lists (`all` and one
 *   per specification, ranking descending then id ascending) only while not unregistering, so
 *   lookups and new uses never see an unregistering service.
 * - `refs` counts the map membership plus every thread that keeps a pointer across an unlock.
 * - Properties are immutable snapshots (snap_t) replaced as a whole by set_properties, so an
 *   event or a use keeps the properties it started with.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_internal.h"

pelix_registry_t *pelix_registry_new(void)
{
    pelix_registry_t *r = pelix__calloc(1, sizeof(*r));

    if (!r) {
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    pelix__cond_init(&r->cond);
    atomic_init(&r->next_id, 0);
    pelix__map_init_long(&r->by_id);
    pelix__map_init_str(&r->by_spec);
    pelix__map_init_long(&r->listeners);
    pelix__map_init_str(&r->listeners_by_spec);
    return r;
}

static void svc_free(pelix_registry_t *r, svc_reg_t *s)
{
    event_t *ev;

    while ((ev = s->qhead)) {
        s->qhead = ev->next;
        reg__event_free(r, ev);
    }
    while (s->uses.head) {
        holder_t *h = s->uses.head;
        reg__holders_pop(&s->uses, h);
        if (h->heap) {
            pelix__free(h);
        }
    }
    reg__snap_unref(s->props);
    pelix__free(s); /* and its links and specification names */
}

void reg__svc_unref(pelix_registry_t *r, svc_reg_t *s)
{
    if (--s->refs == 0) {
        svc_free(r, s);
    }
}

pelix_registry_t *pelix_registry_free(pelix_registry_t *r)
{
    size_t pos = 0;
    void *value;

    if (!r) {
        return NULL;
    }
    while (pelix__map_next(&r->by_id, &pos, NULL, NULL, &value)) {
        svc_free(r, value);
    }
    pelix__map_clear(&r->by_id);
    pos = 0;
    while (pelix__map_next(&r->by_spec, &pos, NULL, NULL, &value)) {
        spec_index_t *index = value;
        pelix__free(index->spec);
        pelix__free(index);
    }
    pelix__map_clear(&r->by_spec);
    reg__listeners_free(r);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    pelix__free(r);
    return NULL;
}

/* ---- ordered lists --------------------------------------------------------------------------- */

static bool before(const svc_reg_t *a, const svc_reg_t *b)
{
    return a->ranking > b->ranking || (a->ranking == b->ranking && a->id < b->id);
}

static void link_insert(spec_index_t *index, link_t *k)
{
    link_t *at = index->tail;

    /* New services have the highest id: with equal ranking they go last, so this is O(1). */
    while (at && before(k->reg, at->reg)) {
        at = at->prev;
    }
    k->index = index;
    k->prev = at;
    k->next = at ? at->next : index->head;
    if (k->next) {
        k->next->prev = k;
    } else {
        index->tail = k;
    }
    if (at) {
        at->next = k;
    } else {
        index->head = k;
    }
    index->count++;
}

static void link_remove(link_t *k)
{
    spec_index_t *index = k->index;

    if (k->prev) {
        k->prev->next = k->next;
    } else {
        index->head = k->next;
    }
    if (k->next) {
        k->next->prev = k->prev;
    } else {
        index->tail = k->prev;
    }
    index->count--;
    k->index = NULL;
}

/* Index of `spec`, created if needed (NULL on allocation failure). */
static spec_index_t *spec_index(pelix_registry_t *r, const char *spec)
{
    spec_index_t *index = pelix__map_get_str(&r->by_spec, spec);

    if (index) {
        return index;
    }
    index = pelix__calloc(1, sizeof(*index));
    if (!index || !(index->spec = pelix__strdup(spec)) ||
        pelix__map_put_str(&r->by_spec, index->spec, index) < 0) {
        if (index) {
            pelix__free(index->spec);
        }
        pelix__free(index);
        return NULL;
    }
    return index;
}

static void unlink_all(pelix_registry_t *r, svc_reg_t *s)
{
    for (size_t i = 0; i <= s->nspecs; i++) {
        spec_index_t *index = s->links[i].index;
        if (!index) {
            continue;
        }
        link_remove(&s->links[i]);
        if (index != &r->all && index->count == 0) {
            pelix__map_remove_str(&r->by_spec, index->spec);
            pelix__free(index->spec);
            pelix__free(index);
        }
    }
}

static int link_all(pelix_registry_t *r, svc_reg_t *s)
{
    for (size_t i = 0; i < s->nspecs; i++) {
        spec_index_t *index = spec_index(r, s->specs[i]);
        if (!index) {
            unlink_all(r, s);
            return -ENOMEM;
        }
        link_insert(index, &s->links[i]);
    }
    link_insert(&r->all, &s->links[s->nspecs]);
    return 0;
}

static void relink(pelix_registry_t *r, svc_reg_t *s)
{
    for (size_t i = 0; i <= s->nspecs; i++) {
        spec_index_t *index = s->links[i].index;
        link_remove(&s->links[i]);
        link_insert(index, &s->links[i]);
    }
    (void)r;
}

/* ---- properties ------------------------------------------------------------------------------ */

/* Reads service.ranking (long, or a string holding one); 0 when absent. */
static int read_ranking(pelix_props_t *props, long *ret)
{
    const pelix_value_t *v = pelix_props_get(props, PELIX_SERVICE_RANKING);
    pelix_value_t *l;
    pelix_error_t err;
    int rc;

    if (!v) {
        *ret = 0;
        return 0;
    }
    rc = pelix_value_coerce(PELIX_SERVICE_RANKING, v, PELIX_TYPE_LONG, &l, &err);
    if (rc < 0) {
        return rc;
    }
    *ret = (long)pelix_value_long(l);
    pelix_value_free(l);
    return 0;
}

/* Completes `props` with the standard properties. Consumes `props`; NULL on failure. */
static snap_t *standard_props(pelix_props_t *props, svc_reg_t *s, int *ret_rc)
{
    int rc = read_ranking(props, &s->ranking);

    if (rc == 0) {
        rc = pelix_props_set_strings(props, PELIX_OBJECTCLASS, (const char *const *)s->specs,
                                     s->nspecs);
    }
    if (rc == 0) {
        rc = pelix_props_set_long(props, PELIX_SERVICE_ID, s->id);
    }
    if (rc == 0) {
        rc = pelix_props_set_long(props, PELIX_SERVICE_RANKING, s->ranking);
    }
    if (rc < 0) {
        pelix_props_free(props);
        *ret_rc = rc;
        return NULL;
    }
    snap_t *snap = reg__snap_new(props);
    if (!snap) {
        *ret_rc = -ENOMEM;
    }
    return snap;
}

/* ---- register / modify / unregister ---------------------------------------------------------- */

static svc_reg_t *svc_new(const char *const *specs, size_t count, void *svc)
{
    /* One block: the links, then the specification names (one registration per broker
     * connection, say). `count` and the names were checked by the caller. */
    size_t size = sizeof(svc_reg_t) + (count + 1) * sizeof(link_t) + count * sizeof(char *);
    for (size_t i = 0; i < count && count < SIZE_MAX / 64; i++) {
        size_t len = strlen(specs[i]) + 1;
        size = size + len < size ? SIZE_MAX : size + len;
    }
    svc_reg_t *s = count < SIZE_MAX / 64 && size < SIZE_MAX ? pelix__calloc(1, size) : NULL;

    if (!s) {
        return NULL;
    }
    s->svc = svc;
    s->refs = 1;
    s->links = (link_t *)(s + 1);
    s->specs = (char **)(s->links + count + 1);
    char *text = (char *)(s->specs + count);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(specs[i]) + 1;
        s->links[i].reg = s;
        s->specs[i] = memcpy(text, specs[i], len);
        text += len;
    }
    s->nspecs = count;
    s->links[count].reg = s;
    return s;
}

int pelix_registry_register(pelix_registry_t *r, const char *const *specs, size_t count, void *svc,
                            pelix_props_t *props, long *ret_id)
{
    svc_reg_t *s;
    event_t *ev = NULL;
    long id;
    int rc = 0;

    if (!r || !specs || !count || !svc) {
        pelix_props_free(props);
        return -EINVAL;
    }
    for (size_t i = 0; i < count; i++) {
        bool duplicate = false;
        for (size_t j = 0; specs[i] && j < i; j++) {
            duplicate = duplicate || (specs[j] && strcmp(specs[i], specs[j]) == 0);
        }
        if (!specs[i] || !*specs[i] || duplicate) {
            pelix_props_free(props);
            return -EINVAL;
        }
    }
    if (!props && !(props = pelix_props_new())) {
        return -ENOMEM;
    }
    s = svc_new(specs, count, svc);
    if (!s) {
        pelix_props_free(props);
        return -ENOMEM;
    }
    s->id = atomic_fetch_add(&r->next_id, 1) + 1;
    s->props = standard_props(props, s, &rc);
    if (!s->props) {
        svc_free(r, s);
        return rc;
    }
    id = s->id;

    pthread_mutex_lock(&r->lock);
    rc = pelix__map_put_long(&r->by_id, s->id, s);
    if (rc == 0) {
        rc = link_all(r, s);
        if (rc < 0) {
            pelix__map_remove_long(&r->by_id, s->id);
        }
    }
    if (rc == 0) {
        rc = reg__event_new(r, s, PELIX_SVC_REGISTERED, s->props, NULL, &ev);
        if (rc < 0) {
            unlink_all(r, s);
            pelix__map_remove_long(&r->by_id, s->id);
        }
    }
    if (rc < 0) {
        pthread_mutex_unlock(&r->lock);
        svc_free(r, s);
        return rc;
    }
    reg__enqueue(s, ev);
    s->refs++;
    reg__kick(r, s);
    reg__svc_unref(r, s);
    pthread_mutex_unlock(&r->lock);
    if (ret_id) {
        *ret_id = id;
    }
    return 0;
}

int pelix_registry_set_properties(pelix_registry_t *r, long id, pelix_props_t *props)
{
    svc_reg_t *s, tmp = {0};
    snap_t *snap, *old;
    event_t *ev = NULL;
    int rc = 0;

    if (!r || id <= 0) {
        pelix_props_free(props);
        return -EINVAL;
    }
    if (!props && !(props = pelix_props_new())) {
        return -ENOMEM;
    }
    pthread_mutex_lock(&r->lock);
    s = pelix__map_get_long(&r->by_id, id);
    if (!s || s->unregistering) {
        pthread_mutex_unlock(&r->lock);
        pelix_props_free(props);
        return -ENOENT;
    }
    /* Build the new snapshot with the standard properties of `s` (specs and id never change). */
    tmp.id = s->id;
    tmp.specs = s->specs;
    tmp.nspecs = s->nspecs;
    snap = standard_props(props, &tmp, &rc);
    if (!snap) {
        pthread_mutex_unlock(&r->lock);
        return rc;
    }
    if (pelix_props_equal(snap->props, s->props->props)) {
        pthread_mutex_unlock(&r->lock);
        reg__snap_unref(snap);
        return 0;
    }
    rc = reg__event_new(r, s, PELIX_SVC_MODIFIED, snap, s->props, &ev);
    if (rc < 0) {
        pthread_mutex_unlock(&r->lock);
        reg__snap_unref(snap);
        return rc;
    }
    old = s->props;
    s->props = snap;
    reg__snap_unref(old);
    if (tmp.ranking != s->ranking) {
        s->ranking = tmp.ranking;
        relink(r, s);
    }
    reg__enqueue(s, ev);
    s->refs++;
    reg__kick(r, s);
    reg__svc_unref(r, s);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

void reg__maybe_finalize(pelix_registry_t *r, svc_reg_t *s)
{
    if (s->unregistering && !s->detached && !s->delivering && !s->qhead && !s->uses.count) {
        s->detached = true;
        pelix__map_remove_long(&r->by_id, s->id);
        reg__svc_unref(r, s);
    }
}

int pelix_registry_unregister(pelix_registry_t *r, long id)
{
    svc_reg_t *s;
    event_t *ev = NULL;
    waiter_t w = {0};
    bool deadlock = false;

    if (!r || id <= 0) {
        return -EINVAL;
    }
    pthread_mutex_lock(&r->lock);
    s = pelix__map_get_long(&r->by_id, id);
    if (!s || s->unregistering) {
        pthread_mutex_unlock(&r->lock);
        return -ENOENT;
    }
    s->unregistering = true;
    s->refs++;
    w.svc = s;
    unlink_all(r, s);
    /* Listeners must hear of it: without memory for the event, the one embedded in `s`. */
    if (reg__event_new(r, s, PELIX_SVC_UNREGISTERING, s->props, NULL, &ev) < 0) {
        ev = reg__event_unregistering(r, s);
    }
    reg__enqueue(s, ev);
    if (!s->delivering) {
        reg__kick(r, s);
    }
    /* Only now waiting (not while delivering): visible to the deadlock checks of others. */
    reg__wait_begin(r, &w);
    if (s->delivering && !pthread_equal(s->deliverer, pthread_self())) {
        while ((s->delivering || s->qhead) && !(deadlock = reg__would_deadlock(r, &w))) {
            pthread_cond_wait(&r->cond, &r->lock);
        }
    }
    while (!deadlock && reg__holders_others(&s->uses) > 0 &&
           !(deadlock = reg__would_deadlock(r, &w))) {
        pthread_cond_wait(&r->cond, &r->lock);
    }
    reg__wait_end(r, &w);
    reg__maybe_finalize(r, s);
    reg__svc_unref(r, s);
    pthread_mutex_unlock(&r->lock);
    return deadlock ? -EDEADLK : 0;
}

/* ---- lookups --------------------------------------------------------------------------------- */

int pelix_registry_find_filter(pelix_registry_t *r, const char *spec, const pelix_filter_t *filter,
                               long **ret_ids, size_t *ret_count)
{
    spec_index_t *index;
    long *ids = NULL;
    size_t n = 0;

    if (!r || !ret_ids || !ret_count) {
        return -EINVAL;
    }
    pthread_mutex_lock(&r->lock);
    index = spec ? pelix__map_get_str(&r->by_spec, spec) : &r->all;
    if (index && index->count) {
        ids = pelix__malloc(index->count * sizeof(*ids));
        if (!ids) {
            pthread_mutex_unlock(&r->lock);
            return -ENOMEM;
        }
        for (link_t *k = index->head; k; k = k->next) {
            if (pelix_filter_match(filter, k->reg->props->props)) {
                ids[n++] = k->reg->id;
            }
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (!n) {
        pelix__free(ids);
        ids = NULL;
    }
    *ret_ids = ids;
    *ret_count = n;
    return 0;
}

/* Parses an optional filter text: NULL or blank means no filter. */
static int optional_filter(const char *text, pelix_filter_t **ret, pelix_error_t *err)
{
    *ret = NULL;
    if (!text || pelix__str_blank(text)) {
        return 0;
    }
    return pelix_filter_parse(text, ret, err);
}

int pelix_registry_find(pelix_registry_t *r, const char *spec, const char *filter, long **ret_ids,
                        size_t *ret_count, pelix_error_t *err)
{
    pelix_filter_t *f;
    int rc = optional_filter(filter, &f, err);

    if (rc < 0) {
        return rc;
    }
    rc = pelix_registry_find_filter(r, spec, f, ret_ids, ret_count);
    pelix_filter_unref(f);
    return rc;
}

int pelix_registry_get_properties(pelix_registry_t *r, long id, pelix_props_t **ret_props)
{
    svc_reg_t *s;
    pelix_props_t *copy;

    if (!r || !ret_props) {
        return -EINVAL;
    }
    pthread_mutex_lock(&r->lock);
    s = pelix__map_get_long(&r->by_id, id);
    if (!s || s->unregistering) {
        pthread_mutex_unlock(&r->lock);
        return -ENOENT;
    }
    copy = pelix_props_copy(s->props->props);
    pthread_mutex_unlock(&r->lock);
    if (!copy) {
        return -ENOMEM;
    }
    *ret_props = copy;
    return 0;
}

/* ---- uses ------------------------------------------------------------------------------------ */

int pelix_registry_get_service(pelix_registry_t *r, long id, void **ret_svc)
{
    svc_reg_t *s;
    holder_t *h;

    if (!r || !ret_svc) {
        return -EINVAL;
    }
    h = pelix__calloc(1, sizeof(*h));
    if (!h) {
        return -ENOMEM;
    }
    h->heap = true;
    pthread_mutex_lock(&r->lock);
    s = pelix__map_get_long(&r->by_id, id);
    if (!s || s->unregistering) {
        pthread_mutex_unlock(&r->lock);
        pelix__free(h);
        return -ENOENT;
    }
    reg__holders_push(&s->uses, h);
    *ret_svc = s->svc;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

bool reg__hold(pelix_registry_t *r, long id, holder_t *use)
{
    svc_reg_t *s;

    pthread_mutex_lock(&r->lock);
    s = pelix__map_get_long(&r->by_id, id);
    if (s) {
        use->heap = false;
        reg__holders_push(&s->uses, use);
        s->refs++;
    }
    pthread_mutex_unlock(&r->lock);
    return s != NULL;
}

void reg__release(pelix_registry_t *r, long id, holder_t *use)
{
    svc_reg_t *s;

    pthread_mutex_lock(&r->lock);
    s = pelix__map_get_long(&r->by_id, id); /* not detached while used */
    reg__holders_pop(&s->uses, use);
    pthread_cond_broadcast(&r->cond);
    reg__maybe_finalize(r, s);
    reg__svc_unref(r, s);
    pthread_mutex_unlock(&r->lock);
}

int pelix_registry_unget_service(pelix_registry_t *r, long id)
{
    pthread_t self = pthread_self();
    svc_reg_t *s;
    holder_t *h, *any = NULL;

    if (!r) {
        return -EINVAL;
    }
    pthread_mutex_lock(&r->lock);
    s = pelix__map_get_long(&r->by_id, id);
    for (h = s ? s->uses.head : NULL; h; h = h->next) {
        if (h->heap && pthread_equal(h->tid, self)) {
            break;
        }
        if (h->heap && !any) {
            any = h;
        }
    }
    if (!h) {
        h = any; /* released by another thread than the one that got it */
    }
    if (!h) {
        pthread_mutex_unlock(&r->lock);
        return -ENOENT;
    }
    reg__holders_pop(&s->uses, h);
    pelix__free(h);
    pthread_cond_broadcast(&r->cond);
    reg__maybe_finalize(r, s);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

long pelix_registry_use_count(pelix_registry_t *r, long id)
{
    svc_reg_t *s;
    long n;

    if (!r) {
        return 0;
    }
    pthread_mutex_lock(&r->lock);
    s = pelix__map_get_long(&r->by_id, id);
    n = s ? s->uses.count : 0;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Calls fn on `s` with a use held; lock held on entry and exit, released during the call. */
static void use_locked(pelix_registry_t *r, svc_reg_t *s, pelix_svc_use_fn fn, void *ctx)
{
    holder_t use = {0};
    snap_t *props = reg__snap_ref(s->props);

    reg__holders_push(&s->uses, &use);
    s->refs++;
    pthread_mutex_unlock(&r->lock);
    fn(ctx, s->id, s->svc, props->props);
    pthread_mutex_lock(&r->lock);
    reg__holders_pop(&s->uses, &use);
    reg__snap_unref(props);
    pthread_cond_broadcast(&r->cond);
    reg__maybe_finalize(r, s);
    reg__svc_unref(r, s);
}

int pelix_registry_use_id(pelix_registry_t *r, long id, pelix_svc_use_fn fn, void *ctx)
{
    svc_reg_t *s;

    if (!r || !fn) {
        return -EINVAL;
    }
    pthread_mutex_lock(&r->lock);
    s = pelix__map_get_long(&r->by_id, id);
    if (!s || s->unregistering) {
        pthread_mutex_unlock(&r->lock);
        return -ENOENT;
    }
    use_locked(r, s, fn, ctx);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

int pelix_registry_use(pelix_registry_t *r, const char *spec, const char *filter,
                       pelix_svc_use_fn fn, void *ctx)
{
    pelix_filter_t *f;
    spec_index_t *index;
    link_t *k = NULL;
    int rc;

    if (!r || !fn) {
        return -EINVAL;
    }
    rc = optional_filter(filter, &f, NULL);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&r->lock);
    index = spec ? pelix__map_get_str(&r->by_spec, spec) : &r->all;
    for (k = index ? index->head : NULL; k; k = k->next) {
        if (pelix_filter_match(f, k->reg->props->props)) {
            break;
        }
    }
    if (k) {
        use_locked(r, k->reg, fn, ctx);
    }
    pthread_mutex_unlock(&r->lock);
    pelix_filter_unref(f);
    return k ? 0 : -ENOENT;
}
