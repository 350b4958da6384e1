/*
 * Configuration loading: a `<pid>.config.js` file's JSON (src/props/json.c) read into properties,
 * then the `mqtt.connector` settings parsed from them with their coercions (src/mqtt/config.c).
 * Properties: no crash, leak or undefined behaviour on any file; a refused file or setting comes
 * with a reason; accepted properties written back as JSON read again to equal properties (what
 * ConfigAdmin persists is what it loads); a parse of the same properties twice gives the same
 * result.
 */
#include <pelix/errors.h>
#include <pelix/props.h>

#include "fuzz.h"
#include "mqtt/mqtt_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_props_t *props = NULL, *again = NULL;
    char *json = NULL;
    int rc = pelix_props_from_json((const char *)data, size, &props, &err);

    if (rc != 0) {
        FZ_CHECK(props == NULL);
        FZ_CHECK(rc == -ENOMEM || err.text[0] != '\0');
        return 0;
    }
    FZ_CHECK(pelix_props_to_json(props, &json) == 0);
    FZ_CHECK(pelix_props_from_json(json, strlen(json), &again, NULL) == 0);
    FZ_CHECK(pelix_props_equal(props, again));

    conn_config_t a, b;
    pelix_error_t ea = PELIX_ERROR_INIT, eb = PELIX_ERROR_INIT;
    int ra = mqtt__config_parse("mqtt.connector.fuzz", props, &a, &ea);
    int rb = mqtt__config_parse("mqtt.connector.fuzz", again, &b, &eb);
    FZ_CHECK(ra == rb);
    if (ra == 0) {
        FZ_CHECK(a.host != NULL && a.port >= 0 && a.keepalive >= 0);
        FZ_CHECK(!mqtt__config_moves(&a, &b));
        mqtt__config_clear(&a);
        mqtt__config_clear(&b);
    } else {
        FZ_CHECK(ra == -ENOMEM || (ea.text[0] != '\0' && strcmp(ea.text, eb.text) == 0));
    }
    free(json);
    pelix_props_free(again);
    pelix_props_free(props);
    return 0;
}
