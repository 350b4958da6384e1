/*
 * The configuration of one broker connection: Pelix's `host`, `port` (1883) and `keepalive`
 * (60), plus the reconnect bounds, the connect timeout, the client id, the credentials, the
 * session (and its MQTT 5 expiry) and protocol, the in-flight window, and the will, birth and close
 * messages. Values given as strings are coerced by the schema; anything else wrong is refused with
 * its reason.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mqtt/mqtt_internal.h"

const pelix_prop_schema_t mqtt__config_schema[] = {
    {"host", PELIX_TYPE_STRING, true, false, 0, 0},
    {"port", PELIX_TYPE_LONG, false, true, 1, 65535},
    {"keepalive", PELIX_TYPE_LONG, false, true, 5, 65535},
    {"reconnect_min", PELIX_TYPE_LONG, false, true, 1, 3600},
    {"reconnect_max", PELIX_TYPE_LONG, false, true, 1, 86400},
    {"connect_timeout", PELIX_TYPE_LONG, false, true, 1, 600},
    {"client_id", PELIX_TYPE_STRING, false, false, 0, 0},
    {"enabled", PELIX_TYPE_BOOL, false, false, 0, 0},
    {"username", PELIX_TYPE_STRING, false, false, 0, 0},
    {"password", PELIX_TYPE_STRING, false, false, 0, 0},
    {"clean_session", PELIX_TYPE_BOOL, false, false, 0, 0},
    {"protocol", PELIX_TYPE_STRING, false, false, 0, 0},
    {"max_inflight", PELIX_TYPE_LONG, false, true, 1, 65535},
    {"session_expiry", PELIX_TYPE_LONG, false, true, 0, 4294967295.0},
    {"will_topic", PELIX_TYPE_STRING, false, false, 0, 0},
    {"will_payload", PELIX_TYPE_STRING, false, false, 0, 0},
    {"will_qos", PELIX_TYPE_LONG, false, true, 0, 2},
    {"will_retain", PELIX_TYPE_BOOL, false, false, 0, 0},
    {"birth_topic", PELIX_TYPE_STRING, false, false, 0, 0},
    {"birth_payload", PELIX_TYPE_STRING, false, false, 0, 0},
    {"birth_qos", PELIX_TYPE_LONG, false, true, 0, 2},
    {"birth_retain", PELIX_TYPE_BOOL, false, false, 0, 0},
    {"close_topic", PELIX_TYPE_STRING, false, false, 0, 0},
    {"close_payload", PELIX_TYPE_STRING, false, false, 0, 0},
    {"close_qos", PELIX_TYPE_LONG, false, true, 0, 2},
    {"close_retain", PELIX_TYPE_BOOL, false, false, 0, 0},
    {"max_queued_messages", PELIX_TYPE_LONG, false, true, 0, 10000000},
    {"max_queued_bytes", PELIX_TYPE_LONG, false, true, 0, 4294967296.0},
    {"queue_qos0", PELIX_TYPE_BOOL, false, false, 0, 0},
    {"drop_policy", PELIX_TYPE_STRING, false, false, 0, 0},
    {"tls", PELIX_TYPE_BOOL, false, false, 0, 0},
    {"tls_ca_file", PELIX_TYPE_STRING, false, false, 0, 0},
    {"tls_ca_path", PELIX_TYPE_STRING, false, false, 0, 0},
    {"tls_cert_file", PELIX_TYPE_STRING, false, false, 0, 0},
    {"tls_key_file", PELIX_TYPE_STRING, false, false, 0, 0},
    {"tls_key_password", PELIX_TYPE_STRING, false, false, 0, 0},
    {"tls_insecure", PELIX_TYPE_BOOL, false, false, 0, 0},
    {"tls_version", PELIX_TYPE_STRING, false, false, 0, 0},
    {"tls_ciphers", PELIX_TYPE_STRING, false, false, 0, 0},
    {"tls_alpn", PELIX_TYPE_STRING, false, false, 0, 0},
};
const size_t mqtt__config_schema_count = sizeof(mqtt__config_schema) / sizeof(*mqtt__config_schema);

/* A client id derived from the PID: stable across restarts, unique per configuration, within
 * the 23 characters every MQTT 3.1.1 broker accepts. */
static char *default_client_id(const char *pid)
{
    uint64_t h = 1469598103934665603ULL;

    for (const char *p = pid; *p; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    return pelix__sprintf("pelix-%016llx", (unsigned long long)h);
}

/* The `<prefix>_topic/_payload/_qos/_retain` message; 0 or an error with its reason. */
static int parse_message(const pelix_props_t *typed, const char *prefix, conn_message_t *m,
                         pelix_error_t *err)
{
    pelix_error_t why = PELIX_ERROR_INIT;
    char key[32];
    const char *topic, *payload;

    snprintf(key, sizeof(key), "%s_topic", prefix);
    topic = pelix_props_get_string(typed, key, NULL);
    snprintf(key, sizeof(key), "%s_payload", prefix);
    payload = pelix_props_get_string(typed, key, NULL);
    if (!topic) {
        return payload ? pelix__error(err, PELIX_E_MISSING, -1, "%s_payload: no %s_topic", prefix,
                                      prefix)
                       : 0;
    }
    if (mqtt__topic_check_name(topic, &why) < 0) {
        return pelix__error(err, PELIX_E_RANGE, -1, "%s_topic: %s", prefix, why.text);
    }
    snprintf(key, sizeof(key), "%s_qos", prefix);
    m->qos = (int)pelix_props_get_long(typed, key, 0);
    snprintf(key, sizeof(key), "%s_retain", prefix);
    m->retain = pelix_props_get_bool(typed, key, false);
    m->topic = pelix__strdup(topic);
    m->payload = pelix__strdup(payload ? payload : "");
    return m->topic && m->payload ? 0 : pelix__error(err, -ENOMEM, -1, "out of memory");
}

static void message_clear(conn_message_t *m)
{
    pelix__free(m->topic);
    pelix__free(m->payload);
    memset(m, 0, sizeof(*m));
}

/* A copy of the optional string `key` into *ret; with `file`, it must name a readable file (or
 * folder). 0 or an error with its reason. */
static int tls_string(const pelix_props_t *typed, const char *key, bool file, char **ret,
                      pelix_error_t *err)
{
    const char *v = pelix_props_get_string(typed, key, NULL);

    if (!v) {
        return 0;
    }
    if (file && access(v, R_OK) < 0) {
        return pelix__error(err, PELIX_E_RANGE, -1, "%s: %s: %s", key, v, strerror(errno));
    }
    *ret = pelix__strdup(v);
    return *ret ? 0 : pelix__error(err, -ENOMEM, -1, "out of memory");
}

static int parse_tls(const pelix_props_t *typed, conn_tls_t *t, pelix_error_t *err)
{
    int rc;

    if ((rc = tls_string(typed, "tls_ca_file", true, &t->ca_file, err)) < 0 ||
        (rc = tls_string(typed, "tls_ca_path", true, &t->ca_path, err)) < 0 ||
        (rc = tls_string(typed, "tls_cert_file", true, &t->cert_file, err)) < 0 ||
        (rc = tls_string(typed, "tls_key_file", true, &t->key_file, err)) < 0 ||
        (rc = tls_string(typed, "tls_key_password", false, &t->key_password, err)) < 0 ||
        (rc = tls_string(typed, "tls_version", false, &t->version, err)) < 0 ||
        (rc = tls_string(typed, "tls_ciphers", false, &t->ciphers, err)) < 0 ||
        (rc = tls_string(typed, "tls_alpn", false, &t->alpn, err)) < 0) {
        return rc;
    }
    t->on = pelix_props_get_bool(typed, "tls", t->ca_file || t->ca_path || t->cert_file);
    t->insecure = pelix_props_get_bool(typed, "tls_insecure", false);
    if (!t->cert_file != !t->key_file) {
        return pelix__error(err, PELIX_E_MISSING, -1, "%s: no %s",
                            t->cert_file ? "tls_cert_file" : "tls_key_file",
                            t->cert_file ? "tls_key_file" : "tls_cert_file");
    }
    if (t->version && strcmp(t->version, "tlsv1.2") != 0 && strcmp(t->version, "tlsv1.3") != 0) {
        return pelix__error(err, PELIX_E_RANGE, -1,
                            "tls_version: \"%s\" is not tlsv1.2 or tlsv1.3 (older ones are not "
                            "offered)",
                            t->version);
    }
    if (t->on && !t->ca_file && !t->ca_path && !(t->ca_path = pelix__strdup("/etc/ssl/certs"))) {
        return pelix__error(err, -ENOMEM, -1, "out of memory"); /* the system's authorities */
    }
    return 0;
}

static void tls_clear(conn_tls_t *t)
{
    if (t->key_password) {
        explicit_bzero(t->key_password, strlen(t->key_password));
    }
    pelix__free(t->ca_file);
    pelix__free(t->ca_path);
    pelix__free(t->cert_file);
    pelix__free(t->key_file);
    pelix__free(t->key_password);
    pelix__free(t->version);
    pelix__free(t->ciphers);
    pelix__free(t->alpn);
    memset(t, 0, sizeof(*t));
}

/* The remaining settings; 0 or an error with its reason (`c` then cleared by the caller). */
static int parse_session(const pelix_props_t *typed, conn_config_t *c, pelix_error_t *err)
{
    const char *protocol = pelix_props_get_string(typed, "protocol", "3.1.1");
    const char *user = pelix_props_get_string(typed, "username", NULL);
    const char *password = pelix_props_get_string(typed, "password", NULL);
    int rc;

    if (strcmp(protocol, "3.1.1") == 0 || strcmp(protocol, "4") == 0) {
        c->protocol = MQTT_PROTOCOL_V311;
    } else if (strcmp(protocol, "5") == 0 || strcmp(protocol, "5.0") == 0) {
        c->protocol = MQTT_PROTOCOL_V5;
    } else if (strcmp(protocol, "3.1") == 0 || strcmp(protocol, "3") == 0) {
        c->protocol = MQTT_PROTOCOL_V31;
    } else {
        return pelix__error(err, PELIX_E_RANGE, -1, "protocol: \"%s\" is not 3.1.1, 5 or 3.1",
                            protocol);
    }
    if (password && !user) {
        return pelix__error(err, PELIX_E_MISSING, -1, "password: no username");
    }
    c->clean_session = pelix_props_get_bool(typed, "clean_session", true);
    /* MQTT 5 ends a session with its connection unless told otherwise: a kept session
     * (clean_session false) then never expires, as with MQTT 3.1.1. */
    if (pelix_props_get(typed, "session_expiry") && c->protocol != MQTT_PROTOCOL_V5) {
        return pelix__error(err, PELIX_E_RANGE, -1,
                            "session_expiry: needs protocol 5 (MQTT 3 has no session expiry; "
                            "clean_session false keeps the session)");
    }
    if (c->protocol == MQTT_PROTOCOL_V5) {
        c->session_expiry = (uint32_t)pelix_props_get_long(
            typed, "session_expiry", c->clean_session ? 0 : (int64_t)UINT32_MAX);
    }
    c->enabled = pelix_props_get_bool(typed, "enabled", true);
    c->max_queued_messages = (long)pelix_props_get_long(typed, "max_queued_messages", 1000);
    c->max_queued_bytes = (long)pelix_props_get_long(typed, "max_queued_bytes", 16L << 20);
    c->queue_qos0 = pelix_props_get_bool(typed, "queue_qos0", false);
    const char *policy = pelix_props_get_string(typed, "drop_policy", "newest");
    if (strcmp(policy, "newest") != 0 && strcmp(policy, "oldest") != 0) {
        return pelix__error(err, PELIX_E_RANGE, -1, "drop_policy: \"%s\" is not newest or oldest",
                            policy);
    }
    c->drop_oldest = policy[0] == 'o';
    c->max_inflight = (long)pelix_props_get_long(typed, "max_inflight", 20);
    if ((user && !(c->username = pelix__strdup(user))) ||
        (password && !(c->password = pelix__strdup(password)))) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    if ((rc = parse_message(typed, "will", &c->will, err)) < 0 ||
        (rc = parse_message(typed, "birth", &c->birth, err)) < 0 ||
        (rc = parse_message(typed, "close", &c->close, err)) < 0 ||
        (rc = parse_tls(typed, &c->tls, err)) < 0) {
        return rc;
    }
    return 0;
}

int mqtt__config_parse(const char *pid, const pelix_props_t *props, conn_config_t *ret,
                       pelix_error_t *err)
{
    pelix_props_t *typed = props ? pelix_props_copy(props) : NULL;
    conn_config_t c = {0};
    const char *host, *id;
    int rc;

    if (!typed) {
        return pelix__error(err, props ? -ENOMEM : -EINVAL, -1,
                            props ? "out of memory" : "no properties");
    }
    rc = pelix_props_coerce(typed, mqtt__config_schema, mqtt__config_schema_count, err);
    if (rc < 0) {
        pelix_props_free(typed);
        return rc;
    }
    host = pelix_props_get_string(typed, "host", "");
    if (pelix__str_blank(host)) {
        pelix_props_free(typed);
        return pelix__error(err, PELIX_E_MISSING, -1, "host: empty");
    }
    c.port = (long)pelix_props_get_long(typed, "port", PELIX_MQTT_DEFAULT_PORT);
    c.keepalive = (long)pelix_props_get_long(typed, "keepalive", PELIX_MQTT_DEFAULT_KEEPALIVE);
    c.reconnect_min =
        (long)pelix_props_get_long(typed, "reconnect_min", PELIX_MQTT_DEFAULT_RECONNECT_MIN);
    c.reconnect_max =
        (long)pelix_props_get_long(typed, "reconnect_max", PELIX_MQTT_DEFAULT_RECONNECT_MAX);
    c.connect_timeout =
        (long)pelix_props_get_long(typed, "connect_timeout", PELIX_MQTT_DEFAULT_CONNECT_TIMEOUT);
    if (c.reconnect_max < c.reconnect_min) {
        pelix_props_free(typed);
        return pelix__error(err, PELIX_E_RANGE, -1,
                            "reconnect_max: %ld is below reconnect_min (%ld)", c.reconnect_max,
                            c.reconnect_min);
    }
    id = pelix_props_get_string(typed, "client_id", NULL);
    if (id && (strlen(id) > 65535 || !*id)) {
        pelix_props_free(typed);
        return pelix__error(err, PELIX_E_RANGE, -1, "client_id: empty or too long");
    }
    if (id && mosquitto_validate_utf8(id, (int)strlen(id)) != MOSQ_ERR_SUCCESS) {
        pelix_props_free(typed);
        return pelix__error(err, PELIX_E_RANGE, -1,
                            "client_id: not valid MQTT UTF-8 (control characters are refused)");
    }
    c.host = pelix__strdup(host);
    c.client_id = id ? pelix__strdup(id) : default_client_id(pid);
    if (!c.host || !c.client_id) {
        rc = pelix__error(err, -ENOMEM, -1, "out of memory");
    } else {
        rc = parse_session(typed, &c, err);
    }
    pelix_props_free(typed);
    if (rc < 0) {
        mqtt__config_clear(&c);
        return rc;
    }
    *ret = c;
    return 0;
}

void mqtt__config_clear(conn_config_t *c)
{
    pelix__free(c->host);
    pelix__free(c->client_id);
    pelix__free(c->username);
    if (c->password) {
        explicit_bzero(c->password, strlen(c->password));
    }
    pelix__free(c->password);
    message_clear(&c->will);
    message_clear(&c->birth);
    message_clear(&c->close);
    tls_clear(&c->tls);
    memset(c, 0, sizeof(*c));
}

static bool differ(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static bool tls_differs(const conn_tls_t *a, const conn_tls_t *b)
{
    return a->on != b->on || a->insecure != b->insecure || differ(a->ca_file, b->ca_file) ||
           differ(a->ca_path, b->ca_path) || differ(a->cert_file, b->cert_file) ||
           differ(a->key_file, b->key_file) || differ(a->key_password, b->key_password) ||
           differ(a->version, b->version) || differ(a->ciphers, b->ciphers) ||
           differ(a->alpn, b->alpn);
}

static bool messages_differ(const conn_message_t *a, const conn_message_t *b)
{
    return differ(a->topic, b->topic) || differ(a->payload, b->payload) || a->qos != b->qos ||
           a->retain != b->retain;
}

bool mqtt__config_moves(const conn_config_t *a, const conn_config_t *b)
{
    return strcmp(a->host, b->host) != 0 || a->port != b->port || a->keepalive != b->keepalive ||
           strcmp(a->client_id, b->client_id) != 0 || differ(a->username, b->username) ||
           differ(a->password, b->password) || a->clean_session != b->clean_session ||
           a->protocol != b->protocol || a->max_inflight != b->max_inflight ||
           a->session_expiry != b->session_expiry || a->enabled != b->enabled ||
           messages_differ(&a->will, &b->will) || tls_differs(&a->tls, &b->tls);
}

void mqtt__config_take_live(conn_config_t *to, conn_config_t *from)
{
    conn_message_t birth = to->birth, close = to->close;

    to->max_queued_messages = from->max_queued_messages;
    to->max_queued_bytes = from->max_queued_bytes;
    to->queue_qos0 = from->queue_qos0;
    to->drop_oldest = from->drop_oldest;
    to->reconnect_min = from->reconnect_min;
    to->reconnect_max = from->reconnect_max;
    to->connect_timeout = from->connect_timeout;
    to->birth = from->birth;
    to->close = from->close;
    from->birth = birth;
    from->close = close;
}
