/*
 * A received message as it reaches dispatch: its topic checked and matched against the
 * listeners' filters (a trie of a few hundred mixed filters, shared subscriptions included), and
 * its MQTT 5 properties, as libmosquitto hands them over, read into the listener's view
 * (src/mqtt/props5.c).
 *
 * The input: a topic up to the first NUL, then a list of properties, each one byte of identifier
 * and its value (strings and binary data: one length byte and the bytes; integers: 4 bytes).
 * libmosquitto's own checks decide what a property list may hold, as on the network.
 * Properties: no crash, leak or undefined behaviour; what is read has the values added: user
 * properties in order, the last content type, response topic and correlation data, expiry.
 */
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "fuzz.h"
#include "mqtt/mqtt_internal.h"
#include "mqtt/topic/topic.h"
#include "util/util.h"

static mqtt_trie_t *listeners(void)
{
    static mqtt_trie_t *t;
    static const char *const base[] = {
        "#", "+", "a/#", "a/+/c", "+/+/+", "$SYS/#", "$share/g/a/b", "sensors/+/temp", "/", "a//b"};
    if (!t) {
        char f[64];
        FZ_CHECK((t = mqtt__trie_new()) != NULL);
        for (uint64_t i = 0; i < 300; i++) {
            const char *b = base[i % (sizeof(base) / sizeof(base[0]))];
            snprintf(f, sizeof(f), i < 10 ? "%s" : "%s/%llu", b, (unsigned long long)i);
            if (mqtt__topic_check_filter(f, NULL) == 0) {
                FZ_CHECK(mqtt__trie_add(t, f, i + 1) == 0);
            }
        }
    }
    return t;
}

static const uint8_t *take(const uint8_t **p, const uint8_t *end, size_t n)
{
    const uint8_t *at = *p;
    if ((size_t)(end - at) < n) {
        return NULL;
    }
    *p += n;
    return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size), *p, *end = data + size;
    char *topic = fz_string(data, size);
    mosquitto_property *props = NULL;
    static mqtt_trie_scratch_t scratch = MQTT_TRIE_SCRATCH_INIT;
    size_t nuser = 0;
    char str[2][256];

    int rc = mqtt__trie_match(listeners(), topic, &scratch, NULL, NULL);
    FZ_CHECK(mqtt__topic_check_name(topic, NULL) == 0 ? rc >= 0 : rc < 0);
    for (int i = 1; i < rc; i++) {
        FZ_CHECK(scratch.keys[i - 1] < scratch.keys[i]); /* distinct, ascending */
    }

    for (p = nul ? nul + 1 : end; p < end;) {
        uint8_t id = *p++;
        const uint8_t *len, *v;
        switch (id % 5) {
        case 0: /* user property: name, value */
            for (int k = 0; k < 2; k++) {
                if (!(len = take(&p, end, 1)) || !(v = take(&p, end, *len))) {
                    goto read;
                }
                memcpy(str[k], v, *len);
                str[k][*len] = '\0';
            }
            if (mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, str[0],
                                                   str[1]) == MOSQ_ERR_SUCCESS) {
                nuser++;
            }
            break;
        case 1: /* content type */
        case 2: /* response topic */
            if (!(len = take(&p, end, 1)) || !(v = take(&p, end, *len))) {
                goto read;
            }
            memcpy(str[0], v, *len);
            str[0][*len] = '\0';
            mosquitto_property_add_string(
                &props, id % 5 == 1 ? MQTT_PROP_CONTENT_TYPE : MQTT_PROP_RESPONSE_TOPIC, str[0]);
            break;
        case 3: /* correlation data */
            if (!(len = take(&p, end, 1)) || !(v = take(&p, end, *len))) {
                goto read;
            }
            mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, v, *len);
            break;
        default: /* message expiry */
            if (!(v = take(&p, end, 4))) {
                goto read;
            }
            mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                         (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
                                             (uint32_t)v[2] << 8 | v[3]);
            break;
        }
    }
read:;
    pelix_mqtt_properties_t *mine = mqtt__props_read(props);
    if (!props) {
        FZ_CHECK(mine == NULL);
    } else if (mine) {
        FZ_CHECK(mine->nuser == nuser);
        for (size_t i = 0; i < mine->nuser; i++) {
            FZ_CHECK(mine->user[i].name && mine->user[i].value);
        }
        FZ_CHECK(mine->correlation_data || mine->correlation_len == 0);
        pelix__free(mine);
    }
    mosquitto_property_free_all(&props);
    free(topic);
    return 0;
}
