/*
 * Connector threads: each attempt to connect gets a fresh libmosquitto object with the session
 * settings of its configuration, and a detached thread of its own that resolves the host name and
 * connects: with mosquitto_connect_async, or, when the CONNECT must carry MQTT 5 properties
 * (session expiry), with mosquitto_connect_bind_v5, the only libmosquitto 2.0 call that sends
 * them, which blocks until the TCP connection is made or refused. The thread then posts the
 * attempt to the network thread (mqtt__conn_attempt_done).
 *
 * An attempt where nothing can block (an IP address, no TLS, no CONNECT properties: the
 * asynchronous connect only opens a non-blocking socket) runs on the network thread itself,
 * without a thread: a process with hundreds of connections does not start hundreds of threads,
 * each with its stack and a malloc arena of its own (the RSS of idle connections, bench G8a).
 *
 * Nothing waits for a connector: the network thread abandons an attempt after `connect_timeout`
 * (it is freed when it reports), and pelix_mqtt_free waits only a moment for the ones still
 * running. Those that outlive the service (a hung name lookup, a blocking connect to a host that
 * never answers) report to the hub, which says the service is gone: they free their attempt, and
 * the last one frees the hub.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <string.h>

#include "mqtt/mqtt_internal.h"

struct mqtt_connectors {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long running;        /* threads started and not ended */
    mqtt_service_t *svc; /* NULL once the service is gone */
};

mqtt_connectors_t *mqtt__connectors_new(mqtt_service_t *s)
{
    mqtt_connectors_t *h = pelix__calloc(1, sizeof(*h));

    if (h && pelix__cond_init(&h->cond) != 0) {
        pelix__free(h);
        return NULL;
    }
    if (h) {
        pthread_mutex_init(&h->lock, NULL);
        h->svc = s;
    }
    return h;
}

static void hub_free(mqtt_connectors_t *h)
{
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    pelix__free(h);
}

void mqtt__connectors_close(mqtt_connectors_t *h, long wait_ms)
{
    struct timespec until = pelix__deadline_ms(wait_ms);
    bool last;

    if (!h) {
        return;
    }
    pthread_mutex_lock(&h->lock);
    while (h->running > 0 && pthread_cond_timedwait(&h->cond, &h->lock, &until) != ETIMEDOUT) {
    }
    h->svc = NULL;
    last = h->running == 0;
    pthread_mutex_unlock(&h->lock);
    if (last) {
        hub_free(h);
    }
}

void mqtt__attempt_free(attempt_t *a)
{
    if (a->mosq) {
        mosquitto_destroy(a->mosq);
    }
    mosquitto_property_free_all(&a->props);
    mqtt__conn_unref(a->conn);
    pelix__free(a->host);
    pelix__free(a);
}

/* libmosquitto logs OpenSSL's reasons ("OpenSSL Error[0]: error:0A000086:SSL
 * routines::certificate verify failed"), on the connector thread or the network thread (the
 * handshake starts on one and goes on on the other): the first is kept, under ack_lock, to say why
 * a TLS connection failed. */
static void on_log(struct mosquitto *mosq, void *obj, int level, const char *text)
{
    conn_t *c = obj;
    const char *e = text ? strstr(text, "OpenSSL Error") : NULL, *why = NULL;
    (void)mosq;
    if (!(level & MOSQ_LOG_ERR) || !text) {
        return;
    }
    if (e) {
        why = strrchr(e, ':'); /* the words after the last colon */
        why = why && why[1] ? why + 1 : e;
    } else if (strncmp(text, "Error: ", 7) == 0) {
        why = text + 7; /* e.g. "host name verification failed." */
    }
    if (why) {
        pthread_mutex_lock(&c->ack_lock);
        if (!c->tls_error) {
            c->tls_error = pelix__strdup(why);
        }
        pthread_mutex_unlock(&c->ack_lock);
    }
}

bool mqtt__conn_tls_failure(conn_t *c, char *out, size_t size)
{
    pthread_mutex_lock(&c->ack_lock);
    snprintf(out, size, "%s", c->tls_error ? c->tls_error : "");
    pthread_mutex_unlock(&c->ack_lock);
    return out[0] != '\0';
}

/* Gives libmosquitto the passphrase of the client key (called on the connector thread; the
 * configuration of a connection does not change while it exists). */
static int key_password(char *buf, int size, int rwflag, void *userdata)
{
    const conn_t *c = mosquitto_userdata(userdata);
    const char *pw = c ? c->cfg.tls.key_password : NULL;
    size_t len = pw ? strlen(pw) : 0;

    (void)rwflag;
    if (!pw || size <= 0 || len >= (size_t)size) {
        return 0;
    }
    memcpy(buf, pw, len + 1);
    return (int)len;
}

static const char *tls_set(struct mosquitto *mosq, const conn_tls_t *t)
{
    if (!t->on) {
        return NULL;
    }
    if (mosquitto_tls_set(mosq, t->ca_file, t->ca_path, t->cert_file, t->key_file, key_password) !=
        0) {
        return "TLS files refused by libmosquitto";
    }
    if (mosquitto_tls_opts_set(mosq, 1, t->version ? t->version : "tlsv1.2", t->ciphers) != 0) {
        return "tls_version or tls_ciphers refused by libmosquitto";
    }
    if (mosquitto_tls_insecure_set(mosq, t->insecure) != 0 ||
        (t->alpn && mosquitto_string_option(mosq, MOSQ_OPT_TLS_ALPN, t->alpn) != 0)) {
        return "TLS options refused by libmosquitto";
    }
    return NULL;
}

/* What each attempt of an object sets again: the CONNECT properties of an MQTT 5 session that
 * outlives its connection, and the log callback (connected() removes it); NULL, or what
 * libmosquitto refused. */
static const char *connect_set(attempt_t *a, const conn_config_t *cfg)
{
    if (cfg->protocol == MQTT_PROTOCOL_V5 && cfg->session_expiry > 0 &&
        mosquitto_property_add_int32(&a->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                     cfg->session_expiry) != MOSQ_ERR_SUCCESS) {
        return "session_expiry refused by libmosquitto";
    }
    mosquitto_log_callback_set(a->mosq, on_log);
    return NULL;
}

/* The session settings of a new libmosquitto object, and the CONNECT properties of an MQTT 5
 * session that outlives its connection; NULL, or what libmosquitto refused. */
static const char *session_set(attempt_t *a, const conn_config_t *cfg)
{
    const conn_message_t *w = &cfg->will;
    struct mosquitto *mosq = a->mosq;
    const char *why;

    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, cfg->protocol);
    if (cfg->username && mosquitto_username_pw_set(mosq, cfg->username, cfg->password) != 0) {
        return "username or password refused by libmosquitto";
    }
    if (mosquitto_max_inflight_messages_set(mosq, (unsigned)cfg->max_inflight) != 0) {
        return "max_inflight refused by libmosquitto";
    }
    if (w->topic && mosquitto_will_set(mosq, w->topic, (int)strlen(w->payload), w->payload, w->qos,
                                       w->retain) != 0) {
        return "will refused by libmosquitto";
    }
    if ((why = tls_set(mosq, &cfg->tls)) != NULL) {
        return why;
    }
    /* 0, the default of MQTT 5, needs no property. */
    return connect_set(a, cfg);
}

static void *connector(void *arg)
{
    attempt_t *a = arg;
    mqtt_connectors_t *h = a->hub;
    bool last;

    a->rc = a->props
                ? mosquitto_connect_bind_v5(a->mosq, a->host, a->port, a->keepalive, NULL, a->props)
                : mosquitto_connect_async(a->mosq, a->host, a->port, a->keepalive);
    a->err_no = errno;
    pthread_mutex_lock(&h->lock);
    if (!h->svc || mqtt__post(h->svc, mqtt__conn_attempt_done, a, false) < 0) {
        mqtt__attempt_free(a); /* the service stops or is gone: nobody takes it */
    }
    h->running--;
    last = !h->svc && h->running == 0;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    if (last) {
        hub_free(h);
    }
    return NULL;
}

/* Whether connecting to `host` needs no name resolution. */
static bool ip_literal(const char *host)
{
    unsigned char addr[16];

    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int mqtt__attempt_start(conn_t *c, mqtt_connectors_t *h, attempt_t **ret, const char **ret_why)
{
    attempt_t *a = pelix__calloc(1, sizeof(*a));
    pthread_attr_t attr;
    pthread_t thread;
    int rc = -ENOMEM;

    *ret_why = NULL;
    if (!a || !(a->host = pelix__strdup(c->cfg.host))) {
        goto fail;
    }
    a->conn = c;
    atomic_fetch_add(&c->refs, 1);
    a->hub = h;
    a->port = (int)c->cfg.port;
    a->keepalive = (int)c->cfg.keepalive;
    if (c->kept) {
        /* The persistent session's object (conn_t.kept): same settings, since a change of them
         * makes another connection; libmosquitto resumes what it holds of the session. */
        a->mosq = c->kept;
        c->kept = NULL;
        if ((*ret_why = connect_set(a, &c->cfg)) != NULL) {
            rc = -EINVAL;
            goto fail;
        }
    } else {
        /* A new object: no earlier one can acknowledge anything any more. */
        pthread_mutex_lock(&c->ack_lock);
        pelix__map_clear(&c->acks_by_mid);
        pthread_mutex_unlock(&c->ack_lock);
        if (!(a->mosq = mosquitto_new(c->cfg.client_id, c->cfg.clean_session, c))) {
            rc = errno == EINVAL ? -EINVAL : -ENOMEM;
            *ret_why = rc == -EINVAL ? "client_id refused by libmosquitto" : NULL;
            goto fail;
        }
        if ((*ret_why = session_set(a, &c->cfg)) != NULL) {
            rc = -EINVAL;
            goto fail;
        }
        mosquitto_threaded_set(a->mosq, true);
        mqtt__conn_callbacks(a->mosq);
    }
    pthread_mutex_lock(&c->ack_lock);
    pelix__free(c->tls_error); /* this attempt's */
    c->tls_error = NULL;
    pthread_mutex_unlock(&c->ack_lock);
    if (!a->props && !c->cfg.tls.on && ip_literal(a->host)) {
        a->rc = mosquitto_connect_async(a->mosq, a->host, a->port, a->keepalive);
        a->err_no = errno;
        *ret = a;
        return 1;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&h->lock);
    rc = -pthread_create(&thread, &attr, connector, a);
    if (rc == 0) {
        h->running++;
    }
    pthread_mutex_unlock(&h->lock);
    pthread_attr_destroy(&attr);
    if (rc == 0) {
        *ret = a;
        return 0;
    }
fail:
    if (a) {
        mqtt__attempt_free(a);
    }
    return rc;
}
