/*
 * The configuration of one broker connection: Pelix's `host`, `port` (1883) and `keepalive`
 * (60), plus the reconnect bounds, the connect timeout and the client id. Values given as strings
 * are coerced by the schema; anything else wrong is refused with its reason.
 */
#include <errno.h>
#include <string.h>

#include "mqtt/mqtt_internal.h"

const pelix_prop_schema_t mqtt__config_schema[] = {
    {"host", PELIX_TYPE_STRING, true, false, 0, 0},
    {"port", PELIX_TYPE_LONG, false, true, 1, 65535},
    {"keepalive", PELIX_TYPE_LONG, false, true, 5, 65535},
    {"reconnect_min", PELIX_TYPE_LONG, false, true, 1, 3600},
    {"reconnect_max", PELIX_TYPE_LONG, false, true, 1, 86400},
    {"connect_timeout", PELIX_TYPE_LONG, false, true, 1, 600},
    {"client_id", PELIX_TYPE_STRING, false, false, 0, 0},
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
    pelix_props_free(typed);
    if (!c.host || !c.client_id) {
        mqtt__config_clear(&c);
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    *ret = c;
    return 0;
}

void mqtt__config_clear(conn_config_t *c)
{
    pelix__free(c->host);
    pelix__free(c->client_id);
    memset(c, 0, sizeof(*c));
}

bool mqtt__config_moves(const conn_config_t *a, const conn_config_t *b)
{
    return strcmp(a->host, b->host) != 0 || a->port != b->port || a->keepalive != b->keepalive ||
           strcmp(a->client_id, b->client_id) != 0;
}
