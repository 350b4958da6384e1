/*
 * The LDAP filter parser (src/filter), the one that reads pelix.mqtt.connection.filter and every
 * registry lookup. Properties: no crash, leak or undefined behaviour on any text; a refused text
 * comes with a reason and no filter; an accepted one prints as a normalized text that parses
 * again to the same text and matches the same properties.
 */
#include <pelix/errors.h>
#include <pelix/filter.h>
#include <pelix/props.h>

#include "fuzz.h"

static pelix_props_t *sample(void)
{
    static pelix_props_t *p;
    if (!p) {
        const char *classes[] = {"pelix.mqtt.connection", "x"};
        p = pelix_props_new();
        if (!p || pelix_props_set_string(p, "id", "mqtt.connector.a") < 0 ||
            pelix_props_set_string(p, "host", "edge-1") < 0 ||
            pelix_props_set_long(p, "port", 1883) < 0 ||
            pelix_props_set_double(p, "load", 0.5) < 0 ||
            pelix_props_set_bool(p, "tls", true) < 0 ||
            pelix_props_set_strings(p, "objectClass", classes, 2) < 0) {
            abort();
        }
    }
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_string(data, size);
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_filter_t *f = NULL, *g = NULL;
    int rc = pelix_filter_parse(text, &f, &err);

    if (rc == 0) {
        FZ_CHECK(f != NULL);
        const char *norm = pelix_filter_text(f);
        FZ_CHECK(norm != NULL);
        FZ_CHECK(pelix_filter_parse(norm, &g, NULL) == 0);
        FZ_CHECK(strcmp(norm, pelix_filter_text(g)) == 0);
        FZ_CHECK(pelix_filter_match(f, sample()) == pelix_filter_match(g, sample()));
        pelix_filter_unref(g);
        pelix_filter_unref(f);
    } else {
        FZ_CHECK(f == NULL);
        FZ_CHECK(rc != -ENOMEM ? err.text[0] != '\0' : 1);
    }
    free(text);
    return 0;
}
