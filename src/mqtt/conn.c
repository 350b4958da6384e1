/*
 * One broker connection: its state machine on the network thread and its connection service.
 *
 * BACKOFF --due--> CONNECTING (a connector thread, connector.c, resolves the name and starts the
 * TCP connect on a fresh libmosquitto object, bounded by `connect_timeout`) --> WAITING_ACK
 * (socket in epoll, CONNECT sent, CONNACK awaited until `due`) --> CONNECTED (service
 * registered, filters subscribed, keepalive every second). Any failure goes back to BACKOFF with
 * an exponential, jittered delay between `reconnect_min` and `reconnect_max`. An attempt that
 * times out is abandoned: its thread finishes on its own and its object is destroyed when it
 * reports, so a hung DNS lookup or TCP connect never blocks anything.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "mqtt/mqtt_internal.h"

/* Packets read from one connection per epoll event at most. */
#define READ_BUDGET 128
/* QoS 0 messages in a row, each within coalesce_us / 4 of the one before, that start
 * coalescing. */
#define HOT_MIN 8

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fn(void *handle, const pelix_mqtt_publish_info_t *info, long timeout_ms);

/* Serial numbers of connections, in their tokens. */
static atomic_uint serials;

/* Network thread: says why the connection failed (replaces what was said); without memory for
 * the text, the state still changes and the reason reads "out of memory". */
static void conn_error(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_error(conn_t *c, const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    pelix__free(c->last_error);
    c->last_error = pelix__strdup(buf);
}

/* ---- libmosquitto callbacks (network thread, inside loop_read/write/misc) -------------------- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    conn_t *c = obj;
    (void)mosq;
    if (c->state != CONN_WAITING_ACK || c->just_connected) {
        conn_error(c, "protocol error: unexpected CONNACK");
        c->lost = true;
    } else if (rc == 0) {
        c->just_connected = true;
    } else {
        /* MQTT 5 CONNACKs carry a reason code, 3.1.x ones a return code. */
        conn_error(c, "connection refused: %s",
                   c->cfg.protocol == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(rc)
                                                       : mosquitto_connack_string(rc));
        c->lost = true;
    }
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    conn_t *c = obj;
    char why[96];
    (void)mosq;
    if (!c->lost && c->state == CONN_CONNECTED) {
        conn_error(c, "connection lost: %s",
                   rc == MOSQ_ERR_KEEPALIVE ? "keepalive timeout" : mosquitto_strerror(rc));
    } else if (!c->lost && mqtt__conn_tls_failure(c, why, sizeof(why))) {
        conn_error(c, "cannot connect: TLS: %s", why);
    } else if (!c->lost) {
        conn_error(c, "cannot connect: %s",
                   rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    }
    c->lost = true;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    conn_t *c = obj;
    (void)mosq;
    atomic_fetch_add_explicit(&c->msgs_in, 1, memory_order_relaxed);
    c->burst++;
    if (msg->qos > 0) {
        c->acked = true;
    } else if (c->svc->opts.coalesce_us > 0 && !c->coalescing) {
        int64_t now = pelix__now_us();
        c->hot = now - c->last_rx_us >= c->svc->opts.coalesce_us / 4 ? 0
                 : c->hot < HOT_MIN                                  ? (uint8_t)(c->hot + 1)
                                                                     : c->hot;
        c->last_rx_us = now;
    }
    mqtt__deliver(c->svc, c, msg, props);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    conn_t *c = obj;
    void *token;
    (void)mosq;
    pthread_mutex_lock(&c->ack_lock);
    token = pelix__map_remove_long(&c->acks_by_mid, mid);
    if (token) {
        pelix__map_remove_long(&c->acks_pending, (long)(uintptr_t)token);
        pthread_cond_broadcast(&c->ack_cond);
    } else {
        /* Acknowledged before its publisher recorded it: it finds this mark. */
        pelix__map_put_long(&c->acks_early, mid, (void *)(uintptr_t)1);
    }
    pthread_mutex_unlock(&c->ack_lock);
}

void mqtt__conn_callbacks(struct mosquitto *mosq)
{
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_disconnect_callback_set(mosq, on_disconnect);
    mosquitto_message_v5_callback_set(mosq, on_message);
    mosquitto_publish_callback_set(mosq, on_publish);
}

/* ---- service functions (any thread) ---------------------------------------------------------- */

static int publish_fn(void *handle, const char *topic, const void *payload, size_t len, int qos,
                      bool retain, pelix_mqtt_publish_info_t *ret_info)
{
    return mqtt__conn_publish(handle, topic, payload, len, qos, retain, NULL, ret_info, NULL);
}

static int publish_props_fn(void *handle, const char *topic, const void *payload, size_t len,
                            int qos, bool retain, const pelix_mqtt_properties_t *props,
                            pelix_mqtt_publish_info_t *ret_info)
{
    mosquitto_property *list = NULL;
    int rc = mqtt__props_build(props, &list);

    if (rc == 0) {
        rc = mqtt__conn_publish(handle, topic, payload, len, qos, retain, list, ret_info, NULL);
    }
    mosquitto_property_free_all(&list);
    return rc;
}

#define LOST_MAX 4096

/* ack_lock held. */
static bool was_lost(const conn_t *c, uint64_t token)
{
    for (size_t i = 0; i < c->nlost; i++) {
        if (c->lost_tokens[(c->lost_head + i) % LOST_MAX] == token) {
            return true;
        }
    }
    return token <= c->lost_floor; /* forgotten: never claim an acknowledgement we cannot know */
}

/* ack_lock held. Never fails: without memory for the ring, the floor says it. */
static void add_lost(conn_t *c, uint64_t token)
{
    if (!c->lost_tokens && !(c->lost_tokens = pelix__malloc(LOST_MAX * sizeof(uint64_t)))) {
        c->lost_floor = token > c->lost_floor ? token : c->lost_floor;
        return;
    }
    if (c->nlost == LOST_MAX) {
        uint64_t oldest = c->lost_tokens[c->lost_head];
        c->lost_floor = oldest > c->lost_floor ? oldest : c->lost_floor;
        c->lost_head = (c->lost_head + 1) % LOST_MAX;
        c->nlost--;
    }
    c->lost_tokens[(c->lost_head + c->nlost) % LOST_MAX] = token;
    c->nlost++;
}

int mqtt__conn_wait(conn_t *c, const pelix_mqtt_publish_info_t *info, long timeout_ms)
{
    return wait_fn(c, info, timeout_ms);
}

static int wait_fn(void *handle, const pelix_mqtt_publish_info_t *info, long timeout_ms)
{
    conn_t *c = handle;
    struct timespec until = pelix__deadline_ms(timeout_ms < 0 ? 0 : timeout_ms);
    long token;
    int rc = 0;

    if (!c || !info || info->token == 0 || info->token > INT64_MAX) {
        return -EINVAL;
    }
    token = (long)info->token;
    pthread_mutex_lock(&c->ack_lock);
    if ((info->token >> 48) != (c->next_token >> 48) || info->token > c->next_token) {
        rc = -EINVAL;
    }
    while (rc == 0 && pelix__map_get_long(&c->acks_pending, token)) {
        if (pthread_cond_timedwait(&c->ack_cond, &c->ack_lock, &until) == ETIMEDOUT) {
            rc = pelix__map_get_long(&c->acks_pending, token) ? -ETIMEDOUT : 0;
        }
    }
    if (rc == 0 && was_lost(c, info->token)) {
        rc = -ENOTCONN;
    }
    pthread_mutex_unlock(&c->ack_lock);
    return rc;
}

int mqtt__conn_publish(conn_t *c, const char *topic, const void *payload, size_t len, int qos,
                       bool retain, const mosquitto_property *props,
                       pelix_mqtt_publish_info_t *ret_info, bool *ret_queued)
{
    int mid = 0, rc;

    if (!c || qos < 0 || qos > 2 || (!payload && len)) {
        return -EINVAL;
    }
    rc = mqtt__topic_check_name(topic, NULL);
    if (rc < 0) {
        return rc;
    }
    if (len > 268435455u - 65536u) {
        return -EMSGSIZE;
    }
    pthread_mutex_lock(&c->lock);
    if (!c->active) {
        /* A disabled configuration queues nothing: it would never be sent; nor does a closed
         * one (a publisher that found it before its deletion must not queue into it). */
        rc = ret_queued && c->cfg.enabled && !c->closed
                 ? mqtt__offline_push(c, topic, payload, len, qos, retain, props)
                 : -ENOTCONN;
        pthread_mutex_unlock(&c->lock);
        if (ret_queued) {
            *ret_queued = rc == 0;
        }
        return rc;
    }
    /* Properties only on MQTT 5 connections (libmosquitto refuses them otherwise). */
    rc = mosquitto_publish_v5(c->mosq, &mid, topic, (int)len, payload, qos, retain,
                              c->cfg.protocol == MQTT_PROTOCOL_V5 ? props : NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        pthread_mutex_unlock(&c->lock);
        switch (rc) {
        case MOSQ_ERR_NOMEM:
            return -ENOMEM;
        case MOSQ_ERR_PAYLOAD_SIZE:
        case MOSQ_ERR_OVERSIZE_PACKET:
            return -EMSGSIZE;
        case MOSQ_ERR_NO_CONN:
            return -ENOTCONN;
        case MOSQ_ERR_MALFORMED_UTF8:
            return PELIX_E_TOPIC;
        default:
            return -EINVAL;
        }
    }
    atomic_fetch_add_explicit(&c->msgs_out, 1, memory_order_relaxed);
    /* Recorded before the connection can be dropped (drop() takes `lock` first), so that a loss
     * reaches this token; an acknowledgement that came already left an early mark. */
    pthread_mutex_lock(&c->ack_lock);
    uint64_t token = ++c->next_token;
    if (pelix__map_remove_long(&c->acks_early, mid) == NULL) {
        if (pelix__map_put_long(&c->acks_by_mid, mid, (void *)(uintptr_t)token) < 0 ||
            pelix__map_put_long(&c->acks_pending, (long)token, (void *)(uintptr_t)mid) < 0) {
            pelix__map_remove_long(&c->acks_by_mid, mid);
            token = 0; /* published, but cannot be waited for */
        }
    }
    pthread_mutex_unlock(&c->ack_lock);
    pthread_mutex_unlock(&c->lock);
    mqtt__loop_wake(c->svc); /* the network thread writes it */
    if (ret_info) {
        ret_info->rc = 0;
        ret_info->mid = mid;
        ret_info->token = token;
    }
    return 0;
}

/* ---- lifecycle --------------------------------------------------------------------------------
 */

conn_t *mqtt__conn_new(mqtt_service_t *s, const char *pid, conn_config_t *cfg)
{
    size_t plen = strlen(pid) + 1;
    conn_t *c = pelix__calloc(1, sizeof(*c) + plen); /* the PID follows */

    if (!c) {
        return NULL;
    }
    c->pid = memcpy((char *)(c + 1), pid, plen);
    unsigned serial = atomic_fetch_add(&serials, 1) % 32767u + 1u; /* 1..32767: tokens > 0 */

    atomic_init(&c->refs, 1);
    c->next_token = (uint64_t)serial << 48;
    c->svc = s;
    c->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    c->sock = c->efd = -1;
    c->state = CONN_BACKOFF;
    c->service.publish = publish_fn;
    c->service.wait_published = wait_fn;
    c->service.publish_props = publish_props_fn;
    c->service.handle = c;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->ack_lock, NULL);
    mqtt__offline_limits(c, &c->cfg);
    pelix__cond_init(&c->ack_cond);
    pelix__map_init_long(&c->acks_by_mid);
    pelix__map_init_long(&c->acks_pending);
    pelix__map_init_long(&c->acks_early);
    return c;
}

/* The properties of the connection service: id, host, port; NULL without memory. */
static pelix_props_t *props_new(const conn_t *c)
{
    pelix_props_t *props = pelix_props_new();

    if (props && (pelix_props_set_string(props, PELIX_MQTT_PROP_ID, c->pid) < 0 ||
                  pelix_props_set_string(props, PELIX_MQTT_PROP_HOST, c->cfg.host) < 0 ||
                  pelix_props_set_long(props, PELIX_MQTT_PROP_PORT, c->cfg.port) < 0)) {
        props = pelix_props_free(props);
    }
    return props;
}

const pelix_props_t *mqtt__conn_props(conn_t *c)
{
    if (!c->props) {
        c->props = props_new(c); /* on the first message a connection filter looks at */
    }
    return c->props;
}

void mqtt__conn_unref(conn_t *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        if (c->kept) {
            mosquitto_destroy(c->kept);
        }
        mqtt__config_clear(&c->cfg);
        pelix_props_free(c->props);
        pelix__map_clear(&c->acks_by_mid);
        pelix__map_clear(&c->acks_pending);
        pelix__map_clear(&c->acks_early);
        pelix__free(c->lost_tokens);
        pthread_mutex_destroy(&c->lock);
        pthread_mutex_destroy(&c->ack_lock);
        pthread_cond_destroy(&c->ack_cond);
        pelix__free(c->last_error);
        pelix__free(c->failure);
        pelix__free(c->tls_error);
        pelix__free(c); /* and its PID */
    }
}

static int64_t backoff_ms(conn_t *c)
{
    static _Thread_local unsigned seed;
    int64_t lo = c->cfg.reconnect_min * 1000, hi = c->cfg.reconnect_max * 1000, d = lo;

    if (!seed) {
        seed = (unsigned)pelix__now_ms() ^ (unsigned)(uintptr_t)c;
    }
    for (unsigned i = 1; i < c->failures && d < hi; i++) {
        d *= 2;
    }
    d = d > hi ? hi : d;
    /* Jitter: between half and all of it, never under reconnect_min. */
    d = d / 2 + (int64_t)(rand_r(&seed) % (int)(d / 2 + 1));
    return d < lo ? lo : d;
}

/* Publishes a configured message (birth, close) on a connected object; logs a failure. */
static void publish_configured(conn_t *c, struct mosquitto *mosq, const conn_message_t *m,
                               const char *what)
{
    int rc;

    if (!m->topic) {
        return;
    }
    rc = mosquitto_publish(mosq, NULL, m->topic, (int)strlen(m->payload), m->payload, m->qos,
                           m->retain);
    if (rc != MOSQ_ERR_SUCCESS) {
        pelix__log(&c->svc->logger, PELIX_LOG_ERROR, MODULE, "%s: %s message not sent: %s", c->pid,
                   what, mosquitto_strerror(rc));
    } else {
        atomic_fetch_add_explicit(&c->msgs_out, 1, memory_order_relaxed);
    }
}

/* Leaves the connected state or an attempt: service gone, socket closed, object destroyed,
 * waiters released; then waits `backoff` (unless closing). Network thread. */
static void drop(conn_t *c, bool closing)
{
    mqtt_service_t *s = c->svc;
    struct mosquitto *mosq;
    bool was_connected = c->state == CONN_CONNECTED;
    size_t pos = 0;
    long token;
    int rc;

    /* First stop publishers and release the waiters, so that nothing waits for this thread
     * while the service goes (its unregistration may wait for other threads' uses). */
    pthread_mutex_lock(&c->lock);
    mosq = c->mosq;
    c->mosq = NULL;
    c->active = false;
    pthread_mutex_unlock(&c->lock);
    /* A persistent session keeps its object for the next attempt (see `kept`). */
    bool keep = mosq && !closing && !c->cfg.clean_session && !c->kept;
    if (closing && c->kept) {
        mosquitto_destroy(c->kept);
        c->kept = NULL;
    }
    pthread_mutex_lock(&c->ack_lock);
    while (pelix__map_next(&c->acks_pending, &pos, NULL, &token, NULL)) {
        add_lost(c, (uint64_t)token);
    }
    pelix__map_clear(&c->acks_pending);
    if (!keep && !c->kept) {
        pelix__map_clear(&c->acks_by_mid);
    } /* else a kept object sends its publishes in flight again: their acks find their mids */
    pelix__map_clear(&c->acks_early);
    pthread_cond_broadcast(&c->ack_cond);
    pthread_mutex_unlock(&c->ack_lock);
    mqtt__connected(s, c, false);
    if (c->service_id) {
        long id = c->service_id;
        c->service_id = 0;
        rc = pelix_registry_unregister(s->reg, id);
        if (rc == -EDEADLK) {
            /* Still used by a thread that waits for this one: keep the connection (its service
             * object) alive until the service stops. */
            mqtt__keep(s, c);
        }
    }
    mqtt__loop_unwatch(s, c);
    if (mosq) {
        if (closing && was_connected) {
            publish_configured(c, mosq, &c->cfg.close, "close");
            mosquitto_disconnect(mosq);
            mosquitto_loop_write(mosq, 1); /* best effort: DISCONNECT, non-blocking */
        }
        if (keep) {
            c->kept = mosq;
        } else {
            mosquitto_destroy(mosq);
        }
    }
    c->attempt = NULL; /* an attempt still running is abandoned: it cleans up when it reports */
    c->just_connected = c->lost = false;
    if (!closing) {
        if (!c->last_error) { /* nothing said, or no memory to say it */
            conn_error(c, "%s", was_connected ? "connection lost" : "cannot connect");
        }
        if (!c->error_logged) {
            pelix__log(&s->logger, PELIX_LOG_WARNING, MODULE, "%s (%s:%ld): %s; retrying", c->pid,
                       c->cfg.host, c->cfg.port, c->last_error ? c->last_error : "out of memory");
            c->error_logged = true; /* once until it connects again */
        }
        c->failures++;
        c->state = CONN_BACKOFF;
        c->due = pelix__now_ms() + backoff_ms(c);
        pelix__free(c->failure);
        c->failure = c->last_error;
        c->last_error = NULL;
        if (was_connected) {
            c->since = wall_ms();
        }
    }
}

/* Network thread. */
static void start_attempt(conn_t *c)
{
    const char *why = NULL;
    attempt_t *a = NULL;
    int rc = mqtt__attempt_start(c, c->svc->connectors, &a, &why);

    if (rc < 0) {
        conn_error(c, "cannot start a connection: %s", why ? why : strerror(-rc));
        drop(c, false);
        return;
    }
    c->attempt = a;
    c->state = CONN_CONNECTING;
    c->due = pelix__now_ms() + c->cfg.connect_timeout * 1000;
    if (rc == 1) {
        mqtt__conn_attempt_done(c->svc, a); /* made on this thread */
    }
}

void mqtt__conn_attempt_done(mqtt_service_t *s, void *arg)
{
    attempt_t *a = arg;
    conn_t *c = a->conn;
    (void)s;

    if (c->attempt != a || c->state != CONN_CONNECTING) {
        mqtt__attempt_free(a); /* abandoned (timed out, reconfigured or deleted) */
        return;
    }
    c->attempt = NULL;
    if (a->rc != MOSQ_ERR_SUCCESS) {
        char why[96];
        if (a->rc == MOSQ_ERR_TLS && mqtt__conn_tls_failure(c, why, sizeof(why))) {
            conn_error(c, "cannot connect: TLS: %s", why);
        } else {
            conn_error(c, "cannot connect: %s",
                       a->rc == MOSQ_ERR_ERRNO ? strerror(a->err_no)
                       : a->rc == MOSQ_ERR_EAI ? "cannot resolve the host name"
                                               : mosquitto_strerror(a->rc));
        }
        if (!c->cfg.clean_session && !c->kept) {
            c->kept = a->mosq; /* for the next attempt, with what it holds of the session */
            a->mosq = NULL;
        }
        mqtt__attempt_free(a);
        drop(c, false);
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->mosq = a->mosq;
    pthread_mutex_unlock(&c->lock);
    a->mosq = NULL;
    mqtt__attempt_free(a);
    c->state = CONN_WAITING_ACK; /* `due` still bounds the whole attempt */
    mqtt__loop_watch(c->svc, c, mosquitto_socket(c->mosq), true);
}

static void connected(conn_t *c)
{
    mqtt_service_t *s = c->svc;
    pelix_props_t *props;
    const char *spec[] = {PELIX_MQTT_CONNECTION_SPEC};
    long id = 0;

    if (c->service_id) {
        return; /* never two services for one connection */
    }
    c->just_connected = false;
    c->state = CONN_CONNECTED;
    c->failures = 0;
    c->connects++;
    c->since = wall_ms();
    pelix__free(c->failure);
    c->failure = NULL;
    c->next_misc = pelix__now_ms() + 1000;
    pelix__log(&s->logger, PELIX_LOG_INFO, MODULE, "%s: connected to %s:%ld", c->pid, c->cfg.host,
               c->cfg.port);
    c->error_logged = false;
    /* The log callback only serves to say why a TLS handshake failed; with it, libmosquitto
     * formats a debug line (malloc, vsnprintf) for every packet. */
    mosquitto_log_callback_set(c->mosq, NULL);
    /* In this order on the wire: the subscriptions, the birth, what was queued while down, then
     * what publishers send from now on. */
    mqtt__listeners_on_connect(s, c);
    publish_configured(c, c->mosq, &c->cfg.birth, "birth");
    pthread_mutex_lock(&c->lock);
    mqtt__offline_flush(c);
    c->active = true;
    pthread_mutex_unlock(&c->lock);
    mqtt__connected(s, c, true);
    props = props_new(c);
    if (!props || pelix_registry_register(s->reg, spec, 1, &c->service, props, &id) < 0) {
        conn_error(c, "cannot register its service");
        c->lost = true;
        return;
    }
    c->service_id = id;
}

/* After libmosquitto ran: handle what its callbacks reported. */
static void after_io(conn_t *c)
{
    if (c->just_connected && !c->lost && c->state == CONN_WAITING_ACK) {
        connected(c);
    }
    if (c->lost) {
        drop(c, false);
        return;
    }
    if (c->mosq) {
        int sock = mosquitto_socket(c->mosq);
        if (sock >= 0) {
            mqtt__loop_watch(c->svc, c, sock, mosquitto_want_write(c->mosq));
        }
    }
}

/*
 * After a read: enters coalescing when QoS 0 messages came close together HOT_MIN times in a
 * row; stays in it while each pause brings 2 messages or more, none of QoS 1 or 2. Those wait
 * for their acknowledgement in the broker's in-flight window (20 by default): pauses would cap
 * the stream at a window per pause, and a broker drops what overflows its queue for the client.
 * Coalescing,
 * a read that emptied the socket starts a pause: EPOLLIN is no longer watched (after_io) until
 * mqtt__conn_nap() reads again.
 */
static void coalesce(conn_t *c, bool drained)
{
    if (c->lost || c->state != CONN_CONNECTED || c->svc->opts.coalesce_us <= 0) {
        return;
    }
    if (c->coalescing) {
        c->coalesced += c->burst;
        if (c->acked || (drained && c->burst < 2)) {
            c->coalescing = false;
            c->hot = 0;
            c->last_rx_us = pelix__now_us();
        }
    } else if (c->hot >= HOT_MIN && !c->acked) {
        c->coalescing = true;
    }
    if (c->coalescing && drained) {
        c->napping = true;
        c->nap_until = pelix__now_us() + c->svc->opts.coalesce_us;
    }
}

int64_t mqtt__conn_nap(conn_t *c, int64_t now_us)
{
    if (!c->napping) {
        return INT64_MAX;
    }
    if (now_us < c->nap_until && c->state == CONN_CONNECTED) {
        return c->nap_until;
    }
    c->napping = false;
    mqtt__conn_io(c, EPOLLIN);
    return c->napping ? c->nap_until : INT64_MAX;
}

void mqtt__conn_io(conn_t *c, uint32_t events)
{
    int rc = MOSQ_ERR_SUCCESS, err_no = 0;

    if (!c->mosq || (c->state != CONN_WAITING_ACK && c->state != CONN_CONNECTED)) {
        return;
    }
    if (events & (uint32_t)EPOLLOUT) {
        if ((rc = mosquitto_loop_write(c->mosq, 1)) != MOSQ_ERR_SUCCESS) {
            err_no = errno;
            c->lost = true;
        }
    }
    /* libmosquitto reads one packet per call (over TLS it drains what OpenSSL holds). Coalescing
     * (after a pause), more calls follow while the socket has data, up to READ_BUDGET packets so
     * that one busy broker does not starve the others (epoll is level-triggered: what is left
     * brings the next event); a call ends with errno EAGAIN when its read found nothing more.
     * Otherwise one packet is read, with no read to find the socket empty. The messages read
     * reach the workers together (mqtt__deliver_commit): one wake-up, not one each. */
    c->burst = 0;
    c->acked = false;
    bool drained = false;
    for (int i = 0; !c->lost && (events & ~(uint32_t)EPOLLOUT) && i < READ_BUDGET; i++) {
        errno = 0;
        if ((rc = mosquitto_loop_read(c->mosq, 1)) != MOSQ_ERR_SUCCESS) {
            err_no = errno;
            c->lost = true;
            break;
        }
        drained = errno == EAGAIN || errno == EWOULDBLOCK;
        /* What the packet made libmosquitto queue (the PUBACK of a QoS 1 message, the PUBREC of
         * a QoS 2 one) goes out now, as a non-threaded libmosquitto client sends it, not after
         * arming EPOLLOUT and one more epoll round (two epoll_ctl calls per message). What the
         * socket does not take waits for EPOLLOUT (after_io). */
        if (mosquitto_want_write(c->mosq) &&
            (rc = mosquitto_loop_write(c->mosq, 1)) != MOSQ_ERR_SUCCESS) {
            err_no = errno;
            c->lost = true;
            break;
        }
        if (drained || !c->coalescing || !c->mosq ||
            (c->state != CONN_WAITING_ACK && c->state != CONN_CONNECTED)) {
            break;
        }
    }
    mqtt__deliver_commit(c->svc);
    coalesce(c, drained);
    char why[96];
    if (c->lost && !c->last_error && mqtt__conn_tls_failure(c, why, sizeof(why))) {
        conn_error(c, "cannot connect: TLS: %s", why);
    }
    if (c->lost && !c->last_error) {
        /* Closed before CONNACK: a TLS verification (certificate, host name) or the broker. */
        conn_error(c, "%s: %s", c->state == CONN_WAITING_ACK ? "cannot connect" : "connection lost",
                   rc == MOSQ_ERR_ERRNO && err_no ? strerror(err_no)
                   : rc == MOSQ_ERR_CONN_LOST && c->state == CONN_WAITING_ACK
                       ? "closed during the handshake (TLS verification failed, or the broker "
                         "closed it)"
                       : mosquitto_strerror(rc));
    }
    after_io(c);
}

void mqtt__conn_timer(conn_t *c, int64_t now)
{
    switch (c->state) {
    case CONN_BACKOFF:
        if (c->due <= now) {
            pelix__free(c->last_error);
            c->last_error = NULL;
            start_attempt(c);
        }
        break;
    case CONN_CONNECTING:
    case CONN_WAITING_ACK:
        if (c->due <= now) {
            conn_error(c, "%s within %ld s",
                       c->state == CONN_CONNECTING ? "no TCP connection (or name resolution)"
                                                   : "no CONNACK",
                       c->cfg.connect_timeout);
            drop(c, false);
        } else if (c->state == CONN_WAITING_ACK && mosquitto_want_write(c->mosq)) {
            mqtt__loop_watch(c->svc, c, mosquitto_socket(c->mosq), true);
        }
        break;
    case CONN_DISABLED:
        break;
    case CONN_CONNECTED:
        if (c->next_misc <= now) {
            c->next_misc = now + 1000;
            if (mosquitto_loop_misc(c->mosq) != MOSQ_ERR_SUCCESS) {
                c->lost = true;
            }
        }
        if (!c->lost && mosquitto_want_write(c->mosq) &&
            mosquitto_loop_write(c->mosq, 1) != MOSQ_ERR_SUCCESS) {
            c->lost = true;
        }
        after_io(c);
        break;
    }
}

void mqtt__conn_start(conn_t *c)
{
    c->since = wall_ms();
    if (!c->cfg.enabled) {
        c->state = CONN_DISABLED;
        c->due = INT64_MAX;
        pelix__log(&c->svc->logger, PELIX_LOG_INFO, MODULE, "%s: disabled (enabled=false)", c->pid);
        return;
    }
    c->state = CONN_BACKOFF;
    c->due = pelix__now_ms();
}

void mqtt__conn_close(conn_t *c)
{
    size_t dropped;

    drop(c, true);
    pthread_mutex_lock(&c->lock);
    c->closed = true; /* a publisher that found `c` before the deletion queues nothing now */
    dropped = mqtt__offline_clear(c);
    pthread_mutex_unlock(&c->lock);
    if (dropped) {
        pelix__log(&c->svc->logger, PELIX_LOG_WARNING, MODULE,
                   "%s: %zu queued message(s) dropped: the connection is closed", c->pid, dropped);
    }
    mqtt__configured(c->svc, c, false);
    mqtt__conn_unref(c);
}

void mqtt__conn_subscribe(conn_t *c, const char *filter, int qos)
{
    if (c->state == CONN_CONNECTED && c->mosq) {
        int rc = mosquitto_subscribe(c->mosq, NULL, filter, qos);
        if (rc != MOSQ_ERR_SUCCESS) {
            pelix__log(&c->svc->logger, PELIX_LOG_ERROR, MODULE, "%s: cannot subscribe '%s': %s",
                       c->pid, filter, mosquitto_strerror(rc));
        }
    }
}

void mqtt__conn_unsubscribe(conn_t *c, const char *filter)
{
    if (c->state == CONN_CONNECTED && c->mosq) {
        mosquitto_unsubscribe(c->mosq, NULL, filter);
    }
}
