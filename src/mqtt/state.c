/*
 * The visible state of the service: pelix_mqtt_connections() and pelix_mqtt_stats(), read by a
 * command on the network thread, and pelix_mqtt_sync() (which owns the connections, the listeners'
 * queues and the tries), while the caller waits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt_internal.h"

typedef struct snapshot {
    pelix_mqtt_connection_info_t *list;
    size_t count;
    pelix_mqtt_stats_t *stats;
    int rc;
} snapshot_t;

static const char *state_name(const conn_t *c)
{
    switch (c->state) {
    case CONN_CONNECTED:
        return "connected";
    case CONN_CONNECTING:
    case CONN_WAITING_ACK:
        return "connecting";
    case CONN_DISABLED:
        return "disabled";
    case CONN_BACKOFF:
    default:
        return c->failure && strncmp(c->failure, "connection refused", 18) == 0 ? "refused"
                                                                                : "backing off";
    }
}

static int by_pid(const void *a, const void *b)
{
    return strcmp(((const pelix_mqtt_connection_info_t *)a)->pid,
                  ((const pelix_mqtt_connection_info_t *)b)->pid);
}

static void connections_cmd(mqtt_service_t *s, void *arg)
{
    snapshot_t *snap = arg;
    size_t pos = 0, n = 0;
    void *value;

    snap->list = pelix__calloc(s->conns.count ? s->conns.count : 1, sizeof(*snap->list));
    if (!snap->list) {
        snap->rc = -ENOMEM;
        return;
    }
    while (pelix__map_next(&s->conns, &pos, NULL, NULL, &value)) {
        conn_t *c = value;
        pelix_mqtt_connection_info_t *i = &snap->list[n++];
        i->pid = pelix__strdup(c->pid);
        i->host = pelix__strdup(c->cfg.host);
        i->port = c->cfg.port;
        i->client_id = pelix__strdup(c->cfg.client_id ? c->cfg.client_id : "");
        i->state = state_name(c);
        i->messages_in = atomic_load(&c->msgs_in);
        i->messages_out = atomic_load(&c->msgs_out);
        i->last_error = pelix__strdup(c->state == CONN_CONNECTED || !c->failure ? "" : c->failure);
        i->since = c->since;
        i->connects = c->connects;
        i->retry_in = -1;
        if (c->state == CONN_BACKOFF) {
            int64_t left = c->due - pelix__now_ms();
            i->retry_in = left > 0 ? (long)left : 0;
        }
        pthread_mutex_lock(&c->lock);
        i->queued = c->q_count;
        i->dropped = c->q_dropped;
        i->coalesced = c->coalesced;
        pthread_mutex_unlock(&c->lock);
        if (!i->pid || !i->host || !i->client_id || !i->last_error) {
            snap->rc = -ENOMEM;
        }
    }
    snap->count = n;
}

int pelix_mqtt_connections(pelix_mqtt_t *m, pelix_mqtt_connection_info_t **ret_list,
                           size_t *ret_count)
{
    snapshot_t snap = {0};
    int rc;

    if (!m || !ret_list || !ret_count) {
        return -EINVAL;
    }
    rc = mqtt__post(&m->s, connections_cmd, &snap, true);
    if (rc == 0) {
        rc = snap.rc;
    }
    if (rc < 0) {
        pelix_mqtt_connections_free(snap.list, snap.count);
        return rc;
    }
    qsort(snap.list, snap.count, sizeof(*snap.list), by_pid);
    if (snap.count == 0) {
        pelix__free(snap.list);
        snap.list = NULL;
    }
    *ret_list = snap.list;
    *ret_count = snap.count;
    return 0;
}

void pelix_mqtt_connections_free(pelix_mqtt_connection_info_t *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++) {
        pelix__free(list[i].pid);
        pelix__free(list[i].host);
        pelix__free(list[i].client_id);
        pelix__free(list[i].last_error);
    }
    pelix__free(list);
}

static void count_filter(void *ctx, const char *filter, unsigned qos)
{
    (void)filter;
    (void)qos;
    ((pelix_mqtt_stats_t *)ctx)->filters++;
}

static void stats_cmd(mqtt_service_t *s, void *arg)
{
    pelix_mqtt_stats_t *st = ((snapshot_t *)arg)->stats;
    size_t pos = 0;
    void *value;
    listener_t *l;

    memset(st, 0, sizeof(*st));
    while (pelix__map_next(&s->conns, &pos, NULL, NULL, &value)) {
        conn_t *c = value;
        st->connections++;
        st->connected += c->state == CONN_CONNECTED;
        st->messages_in += atomic_load(&c->msgs_in);
        st->messages_out += atomic_load(&c->msgs_out);
    }
    mqtt__trie_each_filter(s->trie, count_filter, st);
    st->filters += s->shares.count;
    pos = 0;
    pthread_mutex_lock(&s->lmap_lock);
    st->listeners = s->lmap.count;
    while ((l = mqtt__lindex_next(&s->lmap, &pos)) != NULL) {
        mqtt_queue_stats_t qs;
        if (l->queue) {
            mqtt__queue_stats(l->queue, &qs);
            st->listener_calls += qs.delivered;
            st->listener_dropped += qs.dropped;
            st->listener_queued += qs.queued;
        }
    }
    pthread_mutex_unlock(&s->lmap_lock);
}

int pelix_mqtt_stats(pelix_mqtt_t *m, pelix_mqtt_stats_t *ret_stats)
{
    snapshot_t snap = {0};

    if (!m || !ret_stats) {
        return -EINVAL;
    }
    snap.stats = ret_stats;
    return mqtt__post(&m->s, stats_cmd, &snap, true);
}

static void nothing(mqtt_service_t *s, void *arg)
{
    (void)s;
    (void)arg;
}

int pelix_mqtt_sync(pelix_mqtt_t *m)
{
    /* Listener changes are commands posted, in order, when the registry calls the service: the
     * network thread ran them once it runs this one. */
    return m ? mqtt__post(&m->s, nothing, NULL, true) : -EINVAL;
}
