/*
 * Whiteboard listeners: a registry listener follows every `pelix.mqtt.listener` service; its
 * filters go into the topic trie, keyed by the listener's address (shared subscriptions into a
 * second trie, as their filter). A filter is subscribed once per connection whatever the number
 * of listeners using it: a plain filter while it has keys in the trie (its subscribed QoS is the
 * trie's tag), a shared one while its count in `shares` is positive. Received
 * messages are matched on the network thread and pushed to each matching listener's queue;
 * workers call the listeners, or the network thread itself for a few messages right after it
 * read them (pelix_mqtt_options_t.direct_us; it is not the network thread during those calls).
 *
 * Threads: registry events arrive on any thread and are posted to the network thread, without
 * waiting for it. Unregistering a listener marks it closed at once, so no call starts after, and
 * waits for a call running on a worker to end (not when unregistering from that very call, nor
 * on the network thread, which never waits for listener code); then the network thread detaches
 * it and pushes a close item behind the messages already queued, which frees the queue on its
 * worker. No lock of the service is held while a listener runs.
 */
#include <errno.h>
#include <string.h>

#include "mqtt/mqtt_internal.h"

static void spec_free(lspec_t *spec)
{
    if (spec) {
        pelix_filter_unref(spec->connections);
        pelix__free(spec);
    }
}

static void listener_unref(listener_t *l)
{
    if (l && atomic_fetch_sub(&l->refs, 1) == 1) {
        spec_free(l->spec); /* NULL once detached */
        pelix__free(l);
    }
}

static listener_t *listener_of(close_item_t *item)
{
    return (listener_t *)(void *)((char *)item - offsetof(listener_t, u.close_item));
}

static uint64_t key_of(const listener_t *l)
{
    return (uint64_t)(uintptr_t)l;
}

static void message_free(message_t *m)
{
    pelix__free((void *)m->m.properties);
    pelix__free(m);
}

static void message_unref(message_t *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        message_free(m);
    }
}

/* ---- queue callbacks (dispatch workers) ------------------------------------------------------ */

/* The listener whose callback runs on this thread, if any. */
static _Thread_local const listener_t *current;

static void deliver_item(void *ctx, void *item)
{
    listener_t *l = ctx;

    if (*(int *)item == ITEM_CLOSE) {
        /* From its own call: freed after it returns. */
        mqtt__queue_close(((close_item_t *)item)->queue, false, 0);
        return;
    }
    atomic_fetch_add(&l->calls, 1);
    if (!atomic_load(&l->closed)) {
        current = l;
        l->svc->handle_mqtt_message(l->svc->handle, &((message_t *)item)->m);
        current = NULL;
    }
    if (atomic_fetch_sub(&l->calls, 1) == 1 && atomic_load(&l->closed)) {
        mqtt_service_t *s = l->s;
        pthread_mutex_lock(&s->calls_lock); /* its unregistration may be waiting */
        pthread_cond_broadcast(&s->calls_cond);
        pthread_mutex_unlock(&s->calls_lock);
    }
}

static void release_item(void *item)
{
    if (*(int *)item == ITEM_CLOSE) {
        listener_t *l = listener_of(item);
        mqtt_service_t *s = l->s;
        listener_unref(l);
        pthread_mutex_lock(&s->lmap_lock);
        if (--s->closing == 0) {
            pthread_cond_broadcast(&s->closing_cond);
        }
        pthread_mutex_unlock(&s->lmap_lock);
    } else {
        message_unref(item);
    }
}

/* ---- subscriptions (network thread) ---------------------------------------------------------- */

static void for_connected(mqtt_service_t *s, const char *filter, int qos, bool subscribe)
{
    size_t pos = 0;
    void *value;

    while (pelix__map_next(&s->conns, &pos, NULL, NULL, &value)) {
        if (subscribe) {
            mqtt__conn_subscribe(value, filter, qos);
        } else {
            mqtt__conn_unsubscribe(value, filter);
        }
    }
}

/* One more use of filter `f` by `l`: into a trie, subscribed on the first use or with a higher
 * QoS. 0, or -ENOMEM (nothing changed). */
static int attach_filter(mqtt_service_t *s, listener_t *l, const char *f, int qos)
{
    filter_use_t *u;
    int prev, rc;

    if (mqtt__topic_unshare(f) == f) {
        size_t pairs = mqtt__trie_size(s->trie);
        rc = mqtt__trie_add_tagged(s->trie, f, key_of(l), (unsigned)qos, &prev);
        bool joins = mqtt__trie_size(s->trie) > pairs; /* a new (filter, listener) pair */
        if (rc == 0 && (prev < qos || (prev >= 0 && joins))) {
            /* First use, a higher QoS, or a listener joining a filter subscribed already: the
             * SUBSCRIBE again makes the broker send the retained messages, for it too. */
            for_connected(s, f, prev > qos ? prev : qos, true);
        }
        return rc < 0 ? rc : 0;
    }
    u = pelix__map_get_str(&s->shares, f);
    if (!u) {
        size_t len = strlen(f);
        u = pelix__malloc(sizeof(*u) + len + 1);
        if (!u) {
            return -ENOMEM;
        }
        memcpy(u->filter, f, len + 1);
        u->count = 0;
        u->qos = -1;
        if (pelix__map_put_str(&s->shares, u->filter, u) < 0) {
            pelix__free(u);
            return -ENOMEM;
        }
    }
    rc = mqtt__trie_add(s->shared, f, key_of(l));
    if (rc < 0) {
        if (u->count == 0) {
            pelix__map_remove_str(&s->shares, u->filter);
            pelix__free(u);
        }
        return rc;
    }
    u->count++;
    if (qos > u->qos) {
        u->qos = qos;
        for_connected(s, f, qos, true);
    }
    return 0;
}

/* One use less: unsubscribed after the last. */
static void detach_filter(mqtt_service_t *s, listener_t *l, const char *f)
{
    filter_use_t *u;
    bool last = false;

    if (mqtt__topic_unshare(f) == f) {
        if (mqtt__trie_remove_last(s->trie, f, key_of(l), &last) == 0 && last) {
            for_connected(s, f, 0, false);
        }
        return;
    }
    mqtt__trie_remove(s->shared, f, key_of(l));
    u = pelix__map_get_str(&s->shares, f);
    if (u && --u->count == 0) {
        pelix__map_remove_str(&s->shares, u->filter);
        for_connected(s, f, 0, false);
        pelix__free(u);
    }
}

static void subscribe_one(void *ctx, const char *filter, unsigned qos)
{
    mqtt__conn_subscribe(ctx, filter, (int)qos);
}

void mqtt__listeners_on_connect(mqtt_service_t *s, conn_t *c)
{
    size_t pos = 0;
    void *value;

    if (mqtt__trie_each_filter(s->trie, subscribe_one, c) < 0) {
        pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                   "%s: some topic filters not subscribed: out of memory", c->pid);
    }
    while (pelix__map_next(&s->shares, &pos, NULL, NULL, &value)) {
        const filter_use_t *u = value;
        mqtt__conn_subscribe(c, u->filter, u->qos);
    }
}

/* ---- listener changes (network thread) ------------------------------------------------------- */

typedef struct update {
    listener_t *listener; /* referenced */
    lspec_t *spec;        /* filters as given, each NUL-terminated, then "" (owned) */
    int qos;
} update_t;

static void update_free(update_t *u)
{
    spec_free(u->spec);
    listener_unref(u->listener);
    pelix__free(u);
}

/* Whether the block [begin, end) of NUL-terminated filters holds `f`. */
static bool contains(const char *begin, const char *end, const char *f)
{
    for (const char *p = begin; p < end; p += strlen(p) + 1) {
        if (strcmp(p, f) == 0) {
            return true;
        }
    }
    return false;
}

/* Attaches the new filters first, then detaches the old ones: kept filters are never
 * unsubscribed in between. `spec` (owned, NULL for none) becomes the listener's, its filters
 * reduced in place to those attached. */
static void apply_filters(mqtt_service_t *s, listener_t *l, lspec_t *spec, int qos)
{
    char *filters = spec ? spec->filters : NULL, *out = filters, *next;

    for (char *f = filters; f && *f; f = next) {
        pelix_error_t err = PELIX_ERROR_INIT;
        size_t len = strlen(f);
        next = f + len + 1;
        if (contains(filters, out, f)) {
            continue; /* the same filter twice in one listener counts once */
        }
        if (mqtt__topic_check_filter(f, &err) < 0 ||
            (mosquitto_validate_utf8(f, (int)len) != MOSQ_ERR_SUCCESS &&
             pelix__error(&err, PELIX_E_TOPIC, -1, "control character") < 0)) {
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                       "listener %ld: topic filter '%s' ignored: %s", l->id, f, err.text);
            continue;
        }
        if (attach_filter(s, l, f, qos) < 0) {
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                       "listener %ld: topic filter '%s' ignored: out of memory", l->id, f);
            continue;
        }
        memmove(out, f, len + 1);
        out += len + 1;
    }
    if (out) {
        *out = '\0';
    }
    for (const char *f = l->spec ? l->spec->filters : NULL; f && *f; f += strlen(f) + 1) {
        detach_filter(s, l, f);
    }
    spec_free(l->spec);
    l->spec = spec;
}

static void set_cmd(mqtt_service_t *s, void *arg)
{
    update_t *u = arg;
    listener_t *l = u->listener;

    if (!l->attached) {
        atomic_fetch_add(&l->refs, 1); /* the tries' (their key is the listener) */
        l->attached = true;
    }
    apply_filters(s, l, u->spec, u->qos);
    u->spec = NULL;
    update_free(u);
}

/* Detaches a listener and queues the closing of its queue behind its messages. */
static void detach(mqtt_service_t *s, listener_t *l, bool drain)
{
    mqtt__deliver_commit(s); /* a queue waiting in the batch could not be closed */
    apply_filters(s, l, NULL, 0);
    if (l->attached) {
        l->attached = false;
        listener_unref(l); /* the tries' */
    }
    if (!l->queue) {
        return;
    }
    l->u.close_item.kind = ITEM_CLOSE;
    l->u.close_item.queue = l->queue;
    if (!drain) {
        atomic_fetch_add(&l->refs, 1); /* the close item's */
        pthread_mutex_lock(&s->lmap_lock);
        s->closing++;
        pthread_mutex_unlock(&s->lmap_lock);
    }
    if (drain || mqtt__queue_push_last(l->queue, &l->u.close_item) < 0) {
        /* Stopping, or no memory to queue it (released already): close from here. */
        mqtt__queue_close(l->queue, drain, 1000);
    }
    l->queue = NULL;
}

static void remove_cmd(mqtt_service_t *s, void *arg)
{
    listener_t *l = arg;
    detach(s, l, false);
    listener_unref(l);
}

/* ---- registry events (any thread) ------------------------------------------------------------ */

static const pelix_value_t *topic_at(const pelix_value_t *v, size_t i)
{
    return pelix_value_type(v) == PELIX_TYPE_STRING ? v : pelix_value_list_at(v, i);
}

/* The listener's filters as one block; items that are not strings, or empty, are reported and
 * skipped (the other filters stay). 0, -EINVAL (not a string nor a list) or -ENOMEM. */
static int read_topics(mqtt_service_t *s, long id, const pelix_props_t *props, update_t *u)
{
    const pelix_value_t *v = pelix_props_get(props, PELIX_MQTT_TOPICS);
    size_t n = 0, size = 1, skipped = 0;
    char *out;

    if (pelix_value_type(v) == PELIX_TYPE_STRING) {
        n = 1;
    } else if (pelix_value_type(v) == PELIX_TYPE_LIST) {
        n = pelix_value_list_size(v);
    } else if (v) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *text = pelix_value_string(topic_at(v, i));
        size += text ? strlen(text) + 1 : 0;
    }
    if (!(u->spec = pelix__calloc(1, sizeof(*u->spec) + size))) {
        return -ENOMEM;
    }
    out = u->spec->filters;
    for (size_t i = 0; i < n; i++) {
        const char *text = pelix_value_string(topic_at(v, i));
        if (!text) {
            skipped++;
        } else if (!*text) {
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                       "listener %ld: topic filter '' ignored: empty filter", id);
        } else {
            size_t len = strlen(text);
            memcpy(out, text, len + 1);
            out += len + 1;
        }
    }
    *out = '\0';
    if (skipped) {
        pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                   "listener %ld: %zu item(s) of " PELIX_MQTT_TOPICS " ignored: not strings", id,
                   skipped);
    }
    u->qos = (int)pelix_props_get_long(props, PELIX_MQTT_QOS, 0);
    u->qos = u->qos < 0 ? 0 : u->qos > 2 ? 2 : u->qos;
    v = pelix_props_get(props, PELIX_MQTT_CONNECTION_FILTER);
    if (v) {
        pelix_error_t err = PELIX_ERROR_INIT;
        int rc = pelix_value_type(v) == PELIX_TYPE_STRING
                     ? pelix_filter_parse(pelix_value_string(v), &u->spec->connections, &err)
                     : pelix__error(&err, PELIX_E_FILTER_SYNTAX, -1, "not a string");
        if (rc < 0) {
            /* Hearing every broker instead of some would be worse than hearing none. */
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                       "listener %ld ignored: " PELIX_MQTT_CONNECTION_FILTER ": %s", id,
                       rc == -ENOMEM ? "out of memory" : err.text);
            return PELIX_E_FILTER_SYNTAX;
        }
    }
    return 0;
}

static listener_t *listener_new(mqtt_service_t *s, long id, void *svc)
{
    listener_t *l = pelix__calloc(1, sizeof(*l));

    if (!l) {
        return NULL;
    }
    atomic_init(&l->refs, 1);
    atomic_init(&l->closed, false);
    atomic_init(&l->calls, 0);
    l->id = id;
    l->s = s;
    l->svc = svc; /* its queue comes with its first message (mqtt__deliver) */
    return l;
}

static void on_listener_event(void *ctx, const pelix_svc_event_t *ev)
{
    mqtt_service_t *s = ctx;
    listener_t *l;

    if (ev->kind == PELIX_SVC_REGISTERED || ev->kind == PELIX_SVC_MODIFIED) {
        update_t *u = pelix__calloc(1, sizeof(*u));
        int rc = u ? read_topics(s, ev->id, ev->props, u) : -ENOMEM;
        pthread_mutex_lock(&s->lmap_lock);
        l = mqtt__lindex_get(&s->lmap, ev->id);
        if (!l && rc == 0 && (l = listener_new(s, ev->id, ev->svc)) &&
            mqtt__lindex_put(&s->lmap, l) < 0) {
            listener_unref(l); /* no queue yet */
            l = NULL;
            rc = -ENOMEM;
        }
        if (l) {
            atomic_fetch_add(&l->refs, 1); /* the update's */
        }
        pthread_mutex_unlock(&s->lmap_lock);
        if (rc == 0 && !l) {
            rc = -ENOMEM;
        }
        if (rc < 0) {
            if (rc != PELIX_E_FILTER_SYNTAX) { /* that one is reported already */
                pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE, "listener %ld ignored: %s", ev->id,
                           rc == -EINVAL ? PELIX_MQTT_TOPICS
                               " must be a string or a list of strings"
                                         : "out of memory");
            }
            if (u) {
                u->listener = l;
                update_free(u);
            }
            return;
        }
        u->listener = l;
        if (mqtt__post(s, set_cmd, u, false) < 0) {
            update_free(u);
        }
        return;
    }
    /* MODIFIED_ENDMATCH cannot happen (no filter); UNREGISTERING: */
    pthread_mutex_lock(&s->lmap_lock);
    l = mqtt__lindex_remove(&s->lmap, ev->id);
    pthread_mutex_unlock(&s->lmap_lock);
    if (!l) {
        return;
    }
    atomic_store(&l->closed, true);
    /* A call running on a worker ends before this returns, unless this thread is that call or
     * the network thread (which never waits for listener code: the call ends on its own). */
    if (current != l && !mqtt__on_loop(s)) {
        pthread_mutex_lock(&s->calls_lock);
        while (atomic_load(&l->calls) > 0) {
            pthread_cond_wait(&s->calls_cond, &s->calls_lock);
        }
        pthread_mutex_unlock(&s->calls_lock);
    }
    if (mqtt__post_embedded(s, &l->u.remove_cmd, remove_cmd, l) < 0) {
        listener_unref(l); /* stopping: the shutdown closes its queue */
    }
}

int mqtt__listeners_track(mqtt_service_t *s)
{
    return pelix_registry_add_listener(s->reg, PELIX_MQTT_LISTENER_SPEC, NULL, true,
                                       on_listener_event, s, &s->listener_listener, NULL);
}

void mqtt__listeners_untrack(mqtt_service_t *s)
{
    size_t pos = 0;
    listener_t *l;

    if (s->listener_listener > 0) {
        pelix_registry_remove_listener(s->reg, s->listener_listener);
        s->listener_listener = 0;
    }
    /* Network thread stopped (every posted change ran): the listeners still registered are in
     * the map; close them, delivering what is queued (bounded). */
    while ((l = mqtt__lindex_next(&s->lmap, &pos)) != NULL) {
        if (l->attached) {
            detach(s, l, true);
        } else if (l->queue) {
            mqtt__queue_close(l->queue, false, 0);
            l->queue = NULL;
        }
        listener_unref(l);
    }
    mqtt__lindex_clear(&s->lmap);
    /* Queues closing on the workers (listeners unregistered just before). */
    pthread_mutex_lock(&s->lmap_lock);
    while (s->closing > 0) {
        pthread_cond_wait(&s->closing_cond, &s->lmap_lock);
    }
    pthread_mutex_unlock(&s->lmap_lock);
}

/* ---- received messages (network thread) ------------------------------------------------------ */

void mqtt__deliver_commit(mqtt_service_t *s)
{
    mqtt__dispatch_commit(s->dispatch, &s->batch); /* the workers woken once for the batch */
}

/* Pushes `m` with one of the references the caller took for it; false when that reference was
 * not used (no queue). */
static bool push_to(mqtt_service_t *s, listener_t *l, message_t *m, size_t bytes, mqtt_batch_t *b)
{
    if (!l->queue &&
        mqtt__queue_new(s->dispatch, s->opts.listener_queue_messages, s->opts.listener_queue_bytes,
                        MQTT_DROP_NEWEST, deliver_item, release_item, l, &l->queue) < 0) {
        pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                   "listener %ld: message on '%s' dropped: out of memory", l->id, m->m.topic);
        return false;
    }
    mqtt__queue_push_batch(l->queue, m, bytes, b); /* released by the queue if refused */
    return true;
}

void mqtt__deliver(mqtt_service_t *s, conn_t *c, const struct mosquitto_message *msg,
                   const mosquitto_property *props)
{
    size_t tlen, plen = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, clen = strlen(c->pid);
    const uint64_t *keys, *shared;
    size_t n = 0, ns = 0, i = 0, j = 0;
    message_t *m;
    int rc;

    if (!msg->topic) {
        return;
    }
    rc = mqtt__trie_match(s->trie, msg->topic, &s->scratch, NULL, NULL);
    n = rc > 0 ? (size_t)rc : 0;
    if (mqtt__trie_size(s->shared) > 0) {
        rc = mqtt__trie_match(s->shared, msg->topic, &s->shared_scratch, NULL, NULL);
        ns = rc > 0 ? (size_t)rc : 0;
    }
    if (n == 0 && ns == 0) {
        return;
    }
    keys = s->scratch.keys;
    shared = s->shared_scratch.keys;
    tlen = strlen(msg->topic);
    m = pelix__malloc(sizeof(*m) + tlen + 1 + plen + 1 + clen + 1);
    if (!m) {
        pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE, "message on '%s' dropped: out of memory",
                   msg->topic);
        return;
    }
    m->kind = ITEM_MESSAGE;
    atomic_init(&m->refs, 1);
    memcpy(m->data, msg->topic, tlen + 1);
    if (plen) {
        memcpy(m->data + tlen + 1, msg->payload, plen);
    }
    m->data[tlen + 1 + plen] = '\0';
    memcpy(m->data + tlen + 1 + plen + 1, c->pid, clen + 1);
    m->m.topic = m->data;
    m->m.payload = m->data + tlen + 1;
    m->m.len = plen;
    m->m.qos = msg->qos;
    m->m.retain = msg->retain;
    m->m.dup = false;
    m->m.connection = m->data + tlen + 1 + plen + 1;
    m->m.properties = mqtt__props_read(props); /* NULL without memory: the message still goes */
    /* One reference per possible listener, taken at once (not one atomic operation per listener
     * racing the workers' releases); those not used go with the creator's at the end. */
    atomic_fetch_add(&m->refs, (int)(n + ns));
    int unused = (int)(n + ns) + 1;
    /* Both key lists are ascending and distinct: merge them, a listener in both gets it once. */
    while (i < n || j < ns) {
        uint64_t key;
        if (j == ns || (i < n && keys[i] < shared[j])) {
            key = keys[i++];
        } else if (i == n || shared[j] < keys[i]) {
            key = shared[j++];
        } else {
            key = keys[i++];
            j++;
        }
        listener_t *l = (listener_t *)(uintptr_t)key;
        if (l->spec && l->spec->connections &&
            (!mqtt__conn_props(c) || !pelix_filter_match(l->spec->connections, c->props))) {
            continue; /* not one of its connections */
        }
        unused -= push_to(s, l, m, plen + tlen, &s->batch);
    }
    if (atomic_fetch_sub(&m->refs, unused) == unused) {
        message_free(m);
    }
}
