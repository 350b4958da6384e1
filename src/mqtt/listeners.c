/*
 * Whiteboard listeners: a registry listener follows every `pelix.mqtt.listener` service; its
 * filters go into the topic trie (keyed by service id) and into the subscription counts (one
 * SUBSCRIBE per filter per connection, whatever the number of listeners using it). Received
 * messages are matched on the network thread and pushed to each matching listener's queue;
 * workers call the listeners.
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

static void listener_unref(listener_t *l)
{
    if (l && atomic_fetch_sub(&l->refs, 1) == 1) {
        pelix__free(l->uses); /* empty once detached */
        pelix__free(l);
    }
}

static void message_unref(message_t *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        pelix__free(m);
    }
}

/* ---- queue callbacks (dispatch workers) ------------------------------------------------------ */

static void deliver_item(void *ctx, void *item)
{
    listener_t *l = ctx;

    (void)l;
    if (*(int *)item == ITEM_CLOSE) {
        /* From its own call: freed after it returns. */
        mqtt__queue_close(((close_item_t *)item)->queue, false, 0);
        return;
    }
    mqtt_service_t *s = l->s;
    pthread_mutex_lock(&s->calls_lock);
    if (l->closed) {
        pthread_mutex_unlock(&s->calls_lock);
        return;
    }
    l->in_call = true;
    l->calling = pthread_self();
    pthread_mutex_unlock(&s->calls_lock);
    l->svc->handle_mqtt_message(l->svc->handle, &((message_t *)item)->m);
    pthread_mutex_lock(&s->calls_lock);
    l->in_call = false;
    pthread_cond_broadcast(&s->calls_cond);
    pthread_mutex_unlock(&s->calls_lock);
}

static void release_item(void *item)
{
    if (*(int *)item == ITEM_CLOSE) {
        listener_t *l = ((close_item_t *)item)->listener;
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

/* One more listener uses `filter`: subscribed on the first. The use, or NULL without memory. */
static filter_use_t *acquire(mqtt_service_t *s, const char *filter, int qos)
{
    filter_use_t *u = pelix__map_get_str(&s->filters, filter);

    if (u) {
        u->count++;
        if (qos > u->qos) {
            u->qos = qos;
            for_connected(s, filter, qos, true);
        }
        return u;
    }
    u = pelix__calloc(1, sizeof(*u));
    if (!u || !(u->filter = pelix__strdup(filter)) ||
        pelix__map_put_str(&s->filters, u->filter, u) < 0) {
        if (u) {
            pelix__free(u->filter);
        }
        pelix__free(u);
        return NULL;
    }
    u->count = 1;
    u->qos = qos;
    for_connected(s, filter, qos, true);
    return u;
}

/* One listener less uses it: unsubscribed after the last. */
static void release(mqtt_service_t *s, filter_use_t *u)
{
    if (--u->count == 0) {
        pelix__map_remove_str(&s->filters, u->filter);
        for_connected(s, u->filter, 0, false);
        pelix__free(u->filter);
        pelix__free(u);
    }
}

void mqtt__listeners_on_connect(mqtt_service_t *s, conn_t *c)
{
    size_t pos = 0;
    void *value;

    while (pelix__map_next(&s->filters, &pos, NULL, NULL, &value)) {
        const filter_use_t *u = value;
        mqtt__conn_subscribe(c, u->filter, u->qos);
    }
}

/* ---- listener changes (network thread) ------------------------------------------------------- */

typedef struct update {
    listener_t *listener; /* referenced */
    char **filters;       /* as given, owned */
    size_t nfilters;
    size_t skipped; /* list items that were not strings */
    int qos;
} update_t;

static void update_free(update_t *u)
{
    for (size_t i = 0; i < u->nfilters; i++) {
        pelix__free(u->filters[i]);
    }
    pelix__free(u->filters);
    listener_unref(u->listener);
    pelix__free(u);
}

static bool contains(filter_use_t *const *uses, size_t n, const char *f)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(uses[i]->filter, f) == 0) {
            return true;
        }
    }
    return false;
}

/* Attaches the new filters first, then detaches the old ones: kept filters are never
 * unsubscribed in between. The listener refers to the shared uses, not to copies. */
static void apply_filters(mqtt_service_t *s, listener_t *l, char *const *filters, size_t n, int qos)
{
    filter_use_t **kept = pelix__calloc(n ? n : 1, sizeof(*kept));
    size_t nkept = 0;

    for (size_t i = 0; kept && i < n; i++) {
        pelix_error_t err = PELIX_ERROR_INIT;
        const char *f = filters[i];
        filter_use_t *u;
        if (contains(kept, nkept, f)) {
            continue; /* the same filter twice in one listener counts once */
        }
        if (mqtt__topic_check_filter(f, &err) < 0 ||
            (mosquitto_validate_utf8(f, (int)strlen(f)) != MOSQ_ERR_SUCCESS &&
             pelix__error(&err, PELIX_E_TOPIC, -1, "control character") < 0)) {
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                       "listener %ld: topic filter '%s' ignored: %s", l->id, f, err.text);
            continue;
        }
        if (mqtt__trie_add(s->trie, mqtt__topic_unshare(f), (uint64_t)(uintptr_t)l) < 0) {
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                       "listener %ld: topic filter '%s' ignored: out of memory", l->id, f);
            continue;
        }
        if (!(u = acquire(s, f, qos))) {
            mqtt__trie_remove(s->trie, mqtt__topic_unshare(f), (uint64_t)(uintptr_t)l);
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                       "listener %ld: topic filter '%s' ignored: out of memory", l->id, f);
            continue;
        }
        kept[nkept++] = u;
    }
    if (!kept) {
        pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE, "listener %ld: out of memory", l->id);
    }
    for (size_t i = 0; i < l->nuses; i++) {
        mqtt__trie_remove(s->trie, mqtt__topic_unshare(l->uses[i]->filter), (uint64_t)(uintptr_t)l);
        release(s, l->uses[i]);
    }
    pelix__free(l->uses);
    l->uses = kept;
    l->nuses = kept ? nkept : 0;
}

static void set_cmd(mqtt_service_t *s, void *arg)
{
    update_t *u = arg;
    listener_t *l = u->listener;

    if (!l->attached) {
        atomic_fetch_add(&l->refs, 1); /* the trie's (its key is the listener) */
        l->attached = true;
    }
    apply_filters(s, l, u->filters, u->nfilters, u->qos);
    update_free(u);
}

/* Detaches a listener and queues the closing of its queue behind its messages. */
static void detach(mqtt_service_t *s, listener_t *l, bool drain)
{
    apply_filters(s, l, NULL, 0, 0);
    if (l->attached) {
        l->attached = false;
        listener_unref(l); /* the trie's */
    }
    if (!l->queue) {
        return;
    }
    l->close_item.kind = ITEM_CLOSE;
    l->close_item.listener = l;
    l->close_item.queue = l->queue;
    if (!drain) {
        atomic_fetch_add(&l->refs, 1); /* the close item's */
        pthread_mutex_lock(&s->lmap_lock);
        s->closing++;
        pthread_mutex_unlock(&s->lmap_lock);
    }
    if (drain || mqtt__queue_push_last(l->queue, &l->close_item) < 0) {
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

static int read_topics(const pelix_props_t *props, update_t *u)
{
    const pelix_value_t *v = pelix_props_get(props, PELIX_MQTT_TOPICS);
    size_t n = 0;

    if (pelix_value_type(v) == PELIX_TYPE_STRING) {
        n = 1;
    } else if (pelix_value_type(v) == PELIX_TYPE_LIST) {
        n = pelix_value_list_size(v);
    } else if (v) {
        return -EINVAL;
    }
    u->filters = pelix__calloc(n ? n : 1, sizeof(char *));
    if (!u->filters) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const pelix_value_t *item =
            n == 1 && pelix_value_type(v) == PELIX_TYPE_STRING ? v : pelix_value_list_at(v, i);
        const char *text = pelix_value_string(item);
        if (!text) {
            u->skipped++; /* reported by the caller; the other filters stay */
            continue;
        }
        if (!(u->filters[u->nfilters] = pelix__strdup(text))) {
            return -ENOMEM;
        }
        u->nfilters++;
    }
    u->qos = (int)pelix_props_get_long(props, "pelix.mqtt.qos", 0);
    u->qos = u->qos < 0 ? 0 : u->qos > 2 ? 2 : u->qos;
    return 0;
}

static listener_t *listener_new(mqtt_service_t *s, long id, void *svc)
{
    listener_t *l = pelix__calloc(1, sizeof(*l));

    if (!l) {
        return NULL;
    }
    atomic_init(&l->refs, 1);
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
        int rc = u ? read_topics(ev->props, u) : -ENOMEM;
        pthread_mutex_lock(&s->lmap_lock);
        l = pelix__map_get_long(&s->lmap, ev->id);
        if (!l && rc == 0 && (l = listener_new(s, ev->id, ev->svc)) &&
            pelix__map_put_long(&s->lmap, ev->id, l) < 0) {
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
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE, "listener %ld ignored: %s", ev->id,
                       rc == -EINVAL ? PELIX_MQTT_TOPICS " must be a string or a list of strings"
                                     : "out of memory");
            if (u) {
                u->listener = l;
                update_free(u);
            }
            return;
        }
        if (u->skipped) {
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                       "listener %ld: %zu item(s) of " PELIX_MQTT_TOPICS " ignored: not strings",
                       ev->id, u->skipped);
        }
        u->listener = l;
        if (mqtt__post(s, set_cmd, u, false) < 0) {
            update_free(u);
        }
        return;
    }
    /* MODIFIED_ENDMATCH cannot happen (no filter); UNREGISTERING: */
    pthread_mutex_lock(&s->lmap_lock);
    l = pelix__map_remove_long(&s->lmap, ev->id);
    pthread_mutex_unlock(&s->lmap_lock);
    if (!l) {
        return;
    }
    pthread_mutex_lock(&s->calls_lock);
    l->closed = true;
    /* A call running on a worker ends before this returns, unless this thread is that call or
     * the network thread (which never waits for listener code: the call ends on its own). */
    while (l->in_call && !pthread_equal(l->calling, pthread_self()) && !mqtt__on_loop(s)) {
        pthread_cond_wait(&s->calls_cond, &s->calls_lock);
    }
    pthread_mutex_unlock(&s->calls_lock);
    if (mqtt__post_embedded(s, &l->remove_cmd, remove_cmd, l) < 0) {
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
    void *value;

    if (s->listener_listener > 0) {
        pelix_registry_remove_listener(s->reg, s->listener_listener);
        s->listener_listener = 0;
    }
    /* Network thread stopped (every posted change ran): the listeners still registered are in
     * the map; close them, delivering what is queued (bounded). */
    while (pelix__map_next(&s->lmap, &pos, NULL, NULL, &value)) {
        listener_t *l = value;
        if (l->attached) {
            detach(s, l, true);
        } else if (l->queue) {
            mqtt__queue_close(l->queue, false, 0);
            l->queue = NULL;
        }
        listener_unref(l);
    }
    pelix__map_clear(&s->lmap);
    /* Queues closing on the workers (listeners unregistered just before). */
    pthread_mutex_lock(&s->lmap_lock);
    while (s->closing > 0) {
        pthread_cond_wait(&s->closing_cond, &s->lmap_lock);
    }
    pthread_mutex_unlock(&s->lmap_lock);
}

/* ---- received messages (network thread) ------------------------------------------------------ */

void mqtt__deliver(mqtt_service_t *s, conn_t *c, const struct mosquitto_message *msg)
{
    size_t tlen, plen = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, clen = strlen(c->pid);
    message_t *m;
    int n;

    if (!msg->topic) {
        return;
    }
    n = mqtt__trie_match(s->trie, msg->topic, &s->scratch, NULL, NULL);
    if (n <= 0) {
        return;
    }
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
    for (int i = 0; i < n; i++) {
        listener_t *l = (listener_t *)(uintptr_t)s->scratch.keys[i];
        if (!l->queue && mqtt__queue_new(s->dispatch, s->opts.listener_queue_messages,
                                         s->opts.listener_queue_bytes, MQTT_DROP_NEWEST,
                                         deliver_item, release_item, l, &l->queue) < 0) {
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE,
                       "listener %ld: message on '%s' dropped: out of memory", l->id, msg->topic);
            continue;
        }
        if (l->queue) {
            atomic_fetch_add(&m->refs, 1);
            mqtt__queue_push(l->queue, m, plen + tlen); /* released by the queue if refused */
        }
    }
    message_unref(m);
}
