/* The MQTT test client; see client.h. */
#include "integration/client.h"

#include <errno.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct tc_node {
    tc_message_t msg;
    struct tc_node *next;
} tc_node_t;

/* An acknowledgement received: PUBACK/PUBCOMP/written (publish), SUBACK, UNSUBACK. */
typedef struct tc_ack {
    int mid;
    int result; /* granted QoS for a SUBACK, 0 otherwise */
} tc_ack_t;

struct tc_client {
    struct mosquitto *mosq;
    char *id;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* broadcast on every change below */
    /* under lock */
    int connack; /* -1 until the CONNACK, then its return code */
    bool connected;
    bool lost; /* the connection went down (or was closed) */
    tc_ack_t *acks;
    size_t ack_count;
    size_t ack_cap;
    tc_node_t *head;
    tc_node_t *tail;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static atomic_uint id_counter;

static void lib_init(void)
{
    mosquitto_lib_init();
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static struct timespec deadline_after(long timeout_ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Waits on the client's condition until `deadline`; false once it passed. Called with the lock. */
static bool wait_until(tc_client_t *c, const struct timespec *deadline)
{
    return pthread_cond_timedwait(&c->cond, &c->lock, deadline) != ETIMEDOUT;
}

static bool topic_matches(const char *filter, const char *topic)
{
    bool result = false;

    if (!filter) {
        return true;
    }
    if (strcmp(filter, topic) == 0) {
        return true;
    }
    return mosquitto_topic_matches_sub(filter, topic, &result) == MOSQ_ERR_SUCCESS && result;
}

void tc_message_free(tc_message_t *m)
{
    if (!m) {
        return;
    }
    free(m->topic);
    free(m->payload);
    memset(m, 0, sizeof(*m));
}

/* ---- callbacks (network thread): record only ------------------------------------------------- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    tc_client_t *c = obj;

    (void)mosq;
    pthread_mutex_lock(&c->lock);
    c->connack = rc;
    c->connected = rc == 0;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    tc_client_t *c = obj;

    (void)mosq;
    (void)rc;
    pthread_mutex_lock(&c->lock);
    c->connected = false;
    c->lost = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void record_ack(tc_client_t *c, int mid, int result)
{
    pthread_mutex_lock(&c->lock);
    if (c->ack_count == c->ack_cap) {
        size_t cap = c->ack_cap ? c->ack_cap * 2 : 16;
        tc_ack_t *acks = realloc(c->acks, cap * sizeof(*acks));
        if (!acks) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
        c->acks = acks;
        c->ack_cap = cap;
    }
    c->acks[c->ack_count++] = (tc_ack_t){mid, result};
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    record_ack(obj, mid, 0);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count,
                         const int *granted_qos)
{
    (void)mosq;
    record_ack(obj, mid, qos_count > 0 ? granted_qos[0] : 0x80);
}

static void on_unsubscribe(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    record_ack(obj, mid, 0);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
    tc_client_t *c = obj;
    tc_node_t *node = calloc(1, sizeof(*node));
    size_t len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;

    (void)mosq;
    if (!node) {
        return;
    }
    node->msg.topic = strdup(m->topic);
    node->msg.payload = malloc(len + 1);
    if (!node->msg.topic || !node->msg.payload) {
        tc_message_free(&node->msg);
        free(node);
        return;
    }
    if (len > 0) {
        memcpy(node->msg.payload, m->payload, len);
    }
    node->msg.payload[len] = '\0';
    node->msg.len = len;
    node->msg.qos = m->qos;
    node->msg.retain = m->retain;

    pthread_mutex_lock(&c->lock);
    if (c->tail) {
        c->tail->next = node;
    } else {
        c->head = node;
    }
    c->tail = node;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* ---- network thread -------------------------------------------------------------------------- */

static void *network_run(void *arg)
{
    tc_client_t *c = arg;

    while (!atomic_load(&c->stop)) {
        /* Outgoing packets wake the loop up (threaded mode): the timeout only bounds how long
         * stopping takes. */
        if (mosquitto_loop(c->mosq, 50, 1) != MOSQ_ERR_SUCCESS) {
            sleep_ms(10); /* disconnected: never reconnects, waits for tc_disconnect() */
        }
    }
    return NULL;
}

/* Takes the acknowledgement of `mid` if it came, or waits for it until `deadline`, the
 * connection being lost, or the deadline; called with the lock. Its result, or -1. */
static int wait_ack(tc_client_t *c, int mid, const struct timespec *deadline)
{
    bool timed_out = false;

    for (;;) {
        for (size_t i = 0; i < c->ack_count; i++) {
            if (c->acks[i].mid == mid) {
                int result = c->acks[i].result;
                c->acks[i] = c->acks[--c->ack_count];
                return result;
            }
        }
        if (c->lost || timed_out) {
            return -1;
        }
        timed_out = !wait_until(c, deadline);
    }
}

/* ---- connection ------------------------------------------------------------------------------ */

static void client_free(tc_client_t *c)
{
    tc_node_t *node = c->head;

    if (c->thread_started) {
        atomic_store(&c->stop, true);
        pthread_join(c->thread, NULL);
    }
    if (c->mosq) {
        mosquitto_destroy(c->mosq);
    }
    while (node) {
        tc_node_t *next = node->next;
        tc_message_free(&node->msg);
        free(node);
        node = next;
    }
    free(c->acks);
    free(c->id);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int configure(tc_client_t *c, const tc_options_t *opts)
{
    int rc = MOSQ_ERR_SUCCESS;

    mosquitto_threaded_set(c->mosq, true);
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
    mosquitto_unsubscribe_callback_set(c->mosq, on_unsubscribe);
    mosquitto_message_callback_set(c->mosq, on_message);
    if (opts->username) {
        rc = mosquitto_username_pw_set(c->mosq, opts->username, opts->password);
    }
    if (rc == MOSQ_ERR_SUCCESS && opts->will_topic) {
        rc = mosquitto_will_set(c->mosq, opts->will_topic, (int)opts->will_len, opts->will_payload,
                                opts->will_qos, opts->will_retain);
    }
    if (rc == MOSQ_ERR_SUCCESS && opts->cafile) {
        rc = mosquitto_tls_set(c->mosq, opts->cafile, NULL, NULL, NULL, NULL);
    }
    return rc;
}

tc_client_t *tc_connect_opts(const tc_options_t *opts)
{
    const char *host = opts->host ? opts->host : "127.0.0.1";
    long timeout = opts->timeout_ms > 0 ? opts->timeout_ms : TC_WAIT_MS;
    tc_client_t *c = calloc(1, sizeof(*c));
    pthread_condattr_t attr;
    struct timespec deadline;
    int rc;

    if (!c) {
        return NULL;
    }
    pthread_once(&lib_once, lib_init);
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&c->stop, false);
    c->connack = -1;
    if (opts->client_id) {
        c->id = strdup(opts->client_id);
    } else if (asprintf(&c->id, "tc-%d-%u", (int)getpid(), atomic_fetch_add(&id_counter, 1)) < 0) {
        c->id = NULL;
    }
    if (!c->id) {
        client_free(c);
        return NULL;
    }
    c->mosq = mosquitto_new(c->id, !opts->persistent, c);
    if (!c->mosq) {
        fprintf(stderr, "[tc] mosquitto_new(%s): %s\n", c->id, strerror(errno));
        client_free(c);
        return NULL;
    }
    rc = configure(c, opts);
    if (rc == MOSQ_ERR_SUCCESS) {
        rc = mosquitto_connect(c->mosq, host, opts->port,
                               opts->keepalive > 0 ? opts->keepalive : 60);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "[tc] %s cannot connect to %s:%d: %s\n", c->id, host, opts->port,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        client_free(c);
        return NULL;
    }
    if (pthread_create(&c->thread, NULL, network_run, c) != 0) {
        fprintf(stderr, "[tc] %s: cannot create its thread\n", c->id);
        client_free(c);
        return NULL;
    }
    c->thread_started = true;

    deadline = deadline_after(timeout);
    pthread_mutex_lock(&c->lock);
    while (c->connack < 0 && !c->lost && wait_until(c, &deadline)) {
    }
    rc = c->connack;
    pthread_mutex_unlock(&c->lock);
    if (rc != 0) {
        if (rc < 0) {
            fprintf(stderr, "[tc] %s: no CONNACK from %s:%d within %ld ms\n", c->id, host,
                    opts->port, timeout);
        } else {
            fprintf(stderr, "[tc] %s: connection to %s:%d refused: %s\n", c->id, host, opts->port,
                    mosquitto_connack_string(rc));
        }
        client_free(c);
        return NULL;
    }
    return c;
}

tc_client_t *tc_connect(int port, const char *client_id)
{
    tc_options_t opts;

    memset(&opts, 0, sizeof(opts));
    opts.port = port;
    opts.client_id = client_id;
    return tc_connect_opts(&opts);
}

const char *tc_client_id(const tc_client_t *c)
{
    return c->id;
}

bool tc_connected(tc_client_t *c)
{
    bool connected;

    pthread_mutex_lock(&c->lock);
    connected = c->connected;
    pthread_mutex_unlock(&c->lock);
    return connected;
}

bool tc_wait_disconnected(tc_client_t *c, long timeout_ms)
{
    struct timespec deadline = deadline_after(timeout_ms);
    bool lost;

    pthread_mutex_lock(&c->lock);
    while (!c->lost && wait_until(c, &deadline)) {
    }
    lost = c->lost;
    pthread_mutex_unlock(&c->lock);
    return lost;
}

void tc_disconnect(tc_client_t *c)
{
    if (!c) {
        return;
    }
    if (tc_connected(c) && mosquitto_disconnect(c->mosq) == MOSQ_ERR_SUCCESS) {
        /* The network thread writes the DISCONNECT, closes the socket, then calls
         * on_disconnect. */
        tc_wait_disconnected(c, TC_WAIT_MS);
    }
    client_free(c);
}

/* ---- subscribe, publish ---------------------------------------------------------------------- */

int tc_subscribe(tc_client_t *c, const char *filter, int qos)
{
    struct timespec deadline = deadline_after(TC_WAIT_MS);
    int mid = 0;
    int result = -1;

    /* Held across the call: the SUBACK cannot be recorded before we look for it. */
    pthread_mutex_lock(&c->lock);
    if (c->connected && mosquitto_subscribe(c->mosq, &mid, filter, qos) == MOSQ_ERR_SUCCESS) {
        result = wait_ack(c, mid, &deadline);
    }
    pthread_mutex_unlock(&c->lock);
    return result >= 0 && result <= 2 ? result : -1;
}

int tc_unsubscribe(tc_client_t *c, const char *filter)
{
    struct timespec deadline = deadline_after(TC_WAIT_MS);
    int mid = 0;
    int result = -1;

    pthread_mutex_lock(&c->lock);
    if (c->connected && mosquitto_unsubscribe(c->mosq, &mid, filter) == MOSQ_ERR_SUCCESS) {
        result = wait_ack(c, mid, &deadline);
    }
    pthread_mutex_unlock(&c->lock);
    return result == 0 ? 0 : -1;
}

int tc_publish(tc_client_t *c, const char *topic, const void *payload, size_t len, int qos,
               bool retain)
{
    struct timespec deadline = deadline_after(TC_WAIT_MS);
    int mid = 0;
    int result = -1;

    if (len > (size_t)268435455) {
        return -1;
    }
    /* Held across mosquitto_publish(): on_publish (network thread) cannot record the mid before
     * we wait for it. */
    pthread_mutex_lock(&c->lock);
    if (c->connected && mosquitto_publish(c->mosq, &mid, topic, (int)len, payload, qos, retain) ==
                            MOSQ_ERR_SUCCESS) {
        result = wait_ack(c, mid, &deadline);
    }
    pthread_mutex_unlock(&c->lock);
    return result == 0 ? 0 : -1;
}

/* ---- received messages ----------------------------------------------------------------------- */

bool tc_wait_message(tc_client_t *c, const char *topic, long timeout_ms, tc_message_t *ret)
{
    struct timespec deadline = deadline_after(timeout_ms);
    tc_node_t *found = NULL;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        tc_node_t *prev = NULL;
        for (tc_node_t *node = c->head; node; prev = node, node = node->next) {
            if (topic_matches(topic, node->msg.topic)) {
                found = node;
                if (prev) {
                    prev->next = node->next;
                } else {
                    c->head = node->next;
                }
                if (c->tail == node) {
                    c->tail = prev;
                }
                break;
            }
        }
        if (found || !wait_until(c, &deadline)) {
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);

    if (ret) {
        memset(ret, 0, sizeof(*ret));
    }
    if (!found) {
        return false;
    }
    if (ret) {
        *ret = found->msg;
    } else {
        tc_message_free(&found->msg);
    }
    free(found);
    return true;
}

size_t tc_count(tc_client_t *c, const char *topic)
{
    size_t count = 0;

    pthread_mutex_lock(&c->lock);
    for (tc_node_t *node = c->head; node; node = node->next) {
        if (topic_matches(topic, node->msg.topic)) {
            count++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return count;
}

bool tc_wait_count(tc_client_t *c, const char *topic, size_t n, long timeout_ms)
{
    struct timespec deadline = deadline_after(timeout_ms);
    bool reached;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        size_t count = 0;
        for (tc_node_t *node = c->head; node; node = node->next) {
            if (topic_matches(topic, node->msg.topic)) {
                count++;
            }
        }
        reached = count >= n;
        if (reached || !wait_until(c, &deadline)) {
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return reached;
}

void tc_clear(tc_client_t *c)
{
    tc_node_t *node;

    pthread_mutex_lock(&c->lock);
    node = c->head;
    c->head = c->tail = NULL;
    pthread_mutex_unlock(&c->lock);
    while (node) {
        tc_node_t *next = node->next;
        tc_message_free(&node->msg);
        free(node);
        node = next;
    }
}
