/*
 * MQTT 5 message properties: pelix_mqtt_properties_t to a libmosquitto property list for
 * publishing, and a received list to one block a listener reads (mqtt_internal.h).
 */
#include <errno.h>
#include <mqtt_protocol.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt_internal.h"

int mqtt__props_build(const pelix_mqtt_properties_t *p, mosquitto_property **ret)
{
    mosquitto_property *list = NULL;
    int rc = MOSQ_ERR_SUCCESS;

    *ret = NULL;
    if (!p) {
        return 0;
    }
    if (p->response_topic && mqtt__topic_check_name(p->response_topic, NULL) < 0) {
        return PELIX_E_TOPIC;
    }
    if ((p->correlation_data && p->correlation_len > UINT16_MAX) || (p->nuser && !p->user)) {
        return -EINVAL;
    }
    for (size_t i = 0; rc == MOSQ_ERR_SUCCESS && i < p->nuser; i++) {
        if (!p->user[i].name || !p->user[i].value) {
            rc = MOSQ_ERR_INVAL;
        } else {
            rc = mosquitto_property_add_string_pair(&list, MQTT_PROP_USER_PROPERTY, p->user[i].name,
                                                    p->user[i].value);
        }
    }
    if (rc == MOSQ_ERR_SUCCESS && p->content_type) {
        rc = mosquitto_property_add_string(&list, MQTT_PROP_CONTENT_TYPE, p->content_type);
    }
    if (rc == MOSQ_ERR_SUCCESS && p->response_topic) {
        rc = mosquitto_property_add_string(&list, MQTT_PROP_RESPONSE_TOPIC, p->response_topic);
    }
    if (rc == MOSQ_ERR_SUCCESS && p->correlation_data) {
        rc = mosquitto_property_add_binary(&list, MQTT_PROP_CORRELATION_DATA, p->correlation_data,
                                           (uint16_t)p->correlation_len);
    }
    if (rc == MOSQ_ERR_SUCCESS && p->message_expiry) {
        rc = mosquitto_property_add_int32(&list, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                          p->message_expiry);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_property_free_all(&list);
        return rc == MOSQ_ERR_NOMEM ? -ENOMEM : -EINVAL;
    }
    *ret = list;
    return 0;
}

/* Bytes of the strings of the properties a listener sees. */
static size_t text_size(const mosquitto_property *props, size_t *nuser)
{
    size_t size = 0;

    *nuser = 0;
    for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
        char *name = NULL, *value = NULL;
        void *bin = NULL;
        uint16_t len = 0;
        switch (mosquitto_property_identifier(p)) {
        case MQTT_PROP_USER_PROPERTY:
            if (mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value,
                                                    false)) {
                size += strlen(name) + strlen(value) + 2;
                (*nuser)++;
            }
            break;
        case MQTT_PROP_CONTENT_TYPE:
        case MQTT_PROP_RESPONSE_TOPIC:
            if (mosquitto_property_read_string(p, mosquitto_property_identifier(p), &value,
                                               false)) {
                size += strlen(value) + 1;
            }
            break;
        case MQTT_PROP_CORRELATION_DATA:
            if (mosquitto_property_read_binary(p, MQTT_PROP_CORRELATION_DATA, &bin, &len, false)) {
                size += len + 1u;
            }
            break;
        default:
            break;
        }
        free(name);
        free(value);
        free(bin);
    }
    return size;
}

/* Copies `len` bytes (and a NUL) to *at; returns where it went. */
static char *put(char **at, const void *src, size_t len)
{
    char *out = *at;
    memcpy(out, src, len);
    out[len] = '\0';
    *at += len + 1;
    return out;
}

pelix_mqtt_properties_t *mqtt__props_read(const mosquitto_property *props)
{
    size_t nuser, size, u = 0;
    pelix_mqtt_properties_t *out;
    pelix_mqtt_user_property_t *user;
    char *at;

    if (!props) {
        return NULL;
    }
    size = text_size(props, &nuser);
    out = pelix__calloc(1, sizeof(*out) + nuser * sizeof(*user) + size);
    if (!out) {
        return NULL;
    }
    user = (pelix_mqtt_user_property_t *)(void *)(out + 1);
    at = (char *)(user + nuser);
    out->user = nuser ? user : NULL;
    for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
        char *name = NULL, *value = NULL;
        void *bin = NULL;
        uint16_t len = 0;
        int id = mosquitto_property_identifier(p);
        if (id == MQTT_PROP_USER_PROPERTY && u < nuser &&
            mosquitto_property_read_string_pair(p, id, &name, &value, false)) {
            user[u].name = put(&at, name, strlen(name));
            user[u].value = put(&at, value, strlen(value));
            u++;
        } else if (id == MQTT_PROP_CONTENT_TYPE &&
                   mosquitto_property_read_string(p, id, &value, false)) {
            out->content_type = put(&at, value, strlen(value));
        } else if (id == MQTT_PROP_RESPONSE_TOPIC &&
                   mosquitto_property_read_string(p, id, &value, false)) {
            out->response_topic = put(&at, value, strlen(value));
        } else if (id == MQTT_PROP_CORRELATION_DATA &&
                   mosquitto_property_read_binary(p, id, &bin, &len, false)) {
            out->correlation_data = put(&at, bin, len);
            out->correlation_len = len;
        } else if (id == MQTT_PROP_MESSAGE_EXPIRY_INTERVAL) {
            mosquitto_property_read_int32(p, id, &out->message_expiry, false);
        }
        free(name);
        free(value);
        free(bin);
    }
    out->nuser = u;
    return out;
}
