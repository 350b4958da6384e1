/*
 * The offline queue of a connection: messages published to all configurations (or to one by
 * PID) while its broker is not connected wait here, bounded, and are published in order when it
 * connects, after its subscriptions and its birth message. QoS 0 messages are not queued unless
 * `queue_qos0`; when full, `drop_policy` refuses the newest message (-ENOBUFS to its publisher)
 * or drops the oldest; both are counted. Guarded by the connection's `lock`.
 */
#include <errno.h>
#include <string.h>

#include "mqtt/mqtt_internal.h"

struct queued {
    queued_t *next;
    size_t len;
    int qos;
    bool retain;
    mosquitto_property *props; /* MQTT 5 properties, or NULL */
    char *payload;             /* in data, after the topic */
    char data[];               /* topic, NUL, payload */
};

static void drop_head(conn_t *c)
{
    queued_t *q = c->q_head;

    c->q_head = q->next;
    if (!c->q_head) {
        c->q_tail = NULL;
    }
    c->q_count--;
    c->q_bytes -= q->len;
    mosquitto_property_free_all(&q->props);
    pelix__free(q);
}

int mqtt__offline_push(conn_t *c, const char *topic, const void *payload, size_t len, int qos,
                       bool retain, const mosquitto_property *props)
{
    size_t tlen = strlen(topic);
    queued_t *q;

    if (c->q_max_msgs == 0 || (qos == 0 && !c->q_qos0)) {
        return -ENOTCONN;
    }
    if (len > c->q_max_bytes) {
        c->q_dropped++;
        return -ENOBUFS;
    }
    while (c->q_count >= c->q_max_msgs || c->q_bytes + len > c->q_max_bytes) {
        c->q_dropped++;
        if (!c->q_drop_oldest) {
            return -ENOBUFS;
        }
        drop_head(c);
    }
    q = pelix__malloc(sizeof(*q) + tlen + 1 + len);
    if (!q) {
        return -ENOMEM;
    }
    q->props = NULL;
    if (props && c->cfg.protocol == MQTT_PROTOCOL_V5 &&
        mosquitto_property_copy_all(&q->props, props) != MOSQ_ERR_SUCCESS) {
        pelix__free(q);
        return -ENOMEM;
    }
    q->next = NULL;
    q->len = len;
    q->qos = qos;
    q->retain = retain;
    memcpy(q->data, topic, tlen + 1);
    q->payload = q->data + tlen + 1;
    if (len) {
        memcpy(q->payload, payload, len);
    }
    if (c->q_tail) {
        c->q_tail->next = q;
    } else {
        c->q_head = q;
    }
    c->q_tail = q;
    c->q_count++;
    c->q_bytes += len;
    return 0;
}

void mqtt__offline_flush(conn_t *c)
{
    while (c->q_head) {
        queued_t *q = c->q_head;
        int rc =
            mosquitto_publish(c->mosq, NULL, q->data, (int)q->len, q->payload, q->qos, q->retain);
        if (rc == MOSQ_ERR_SUCCESS) {
            atomic_fetch_add_explicit(&c->msgs_out, 1, memory_order_relaxed);
        } else {
            /* Refused by libmosquitto (e.g. over the broker's maximum size): dropped, never
             * retried for ever. */
            c->q_dropped++;
            pelix__log(&c->svc->logger, PELIX_LOG_ERROR, MODULE,
                       "%s: queued message on '%s' dropped: %s", c->pid, q->data,
                       mosquitto_strerror(rc));
        }
        drop_head(c);
    }
}

size_t mqtt__offline_clear(conn_t *c)
{
    size_t n = c->q_count;

    while (c->q_head) {
        drop_head(c);
    }
    c->q_dropped += n;
    return n;
}

void mqtt__offline_limits(conn_t *c, const conn_config_t *cfg)
{
    c->q_max_msgs = (size_t)cfg->max_queued_messages;
    c->q_max_bytes = (size_t)cfg->max_queued_bytes;
    c->q_qos0 = cfg->queue_qos0;
    c->q_drop_oldest = cfg->drop_oldest;
}
