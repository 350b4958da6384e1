/*
 * ConfigAdmin schemas (pelix_configadmin_set_schema): values typed as text are stored and
 * delivered with their type, values that cannot be are refused with the reason, for updates,
 * reloads and files. This is Pelix's bug B10 fixed where it belongs: `config.create
 * mqtt.connector host=h port=1883` from a shell gives a port that is an integer.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <pelix/configadmin.h>

#include "unit/ca_helpers.h"
#include "util/util.h"

#include <cmocka.h>

static const char *const FACTORY = "mqtt.connector";

static const pelix_prop_schema_t MQTT_SCHEMA[] = {
    {.key = "host", .type = PELIX_TYPE_STRING, .required = true},
    {.key = "port", .type = PELIX_TYPE_LONG, .ranged = true, .min = 1, .max = 65535},
    {.key = "keepalive", .type = PELIX_TYPE_LONG, .ranged = true, .min = 0, .max = 65535},
    {.key = "clean_session", .type = PELIX_TYPE_BOOL},
};

static void set_mqtt_schema(ca_fixture_t *fx)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    assert_int_equal(pelix_configadmin_set_schema(fx->ca, FACTORY, MQTT_SCHEMA, 4, &err), 0);
}

static pelix_props_t *strings(const char *host, const char *port)
{
    pelix_props_t *p = pelix_props_new();
    if (host) {
        pelix_props_set_string(p, "host", host);
    }
    if (port) {
        pelix_props_set_string(p, "port", port);
    }
    return p;
}

static void test_update_coerces_strings(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_props_t *p = strings("broker", " 1883 ");
    pelix_configuration_t *c;
    char *name, *text;

    ca_start(fx, true, false);
    set_mqtt_schema(fx);
    ca_register_factory(fx, r, FACTORY);
    c = ca_create(fx, FACTORY);
    pelix_props_set_string(p, "clean_session", "false");
    pelix_props_set_string(p, "other", "kept as text");
    assert_int_equal(pelix_configuration_update(c, p, &err), 0);
    ca_flush(fx);

    assert_int_equal(ca_recorder_count(r), 1);
    const pelix_props_t *got = ca_recorder_at(r, 0)->props;
    assert_int_equal(pelix_value_type(pelix_props_get(got, "port")), PELIX_TYPE_LONG);
    assert_int_equal(pelix_props_get_long(got, "port", 0), 1883);
    assert_int_equal(pelix_value_type(pelix_props_get(got, "clean_session")), PELIX_TYPE_BOOL);
    assert_false(pelix_props_get_bool(got, "clean_session", true));
    assert_string_equal(pelix_props_get_string(got, "other", ""), "kept as text");

    /* The file holds the typed values, as Pelix would have written them. */
    name = ca_config_name(pelix_configuration_get_pid(c));
    text = ca_read_file(fx->folder, name);
    assert_non_null(strstr(text, "\"port\": 1883,"));
    assert_non_null(strstr(text, "\"clean_session\": false,"));
    free(text);
    free(name);

    /* The same values typed again are equal: no new notification. */
    p = strings("broker", "1883");
    pelix_props_set_string(p, "clean_session", "no");
    pelix_props_set_string(p, "other", "kept as text");
    assert_int_equal(pelix_configuration_update(c, p, &err), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 1);
    pelix_configuration_unref(c);
}

static void expect_refused(pelix_configuration_t *c, pelix_props_t *p, int code, const char *text)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    assert_int_equal(pelix_configuration_update(c, p, &err), code);
    assert_string_equal(err.text, text);
}

static void test_update_refused_changes_nothing(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    pelix_configuration_t *c;
    pelix_props_t *now = NULL;
    char *name, *before, *after;

    ca_start(fx, true, false);
    set_mqtt_schema(fx);
    ca_register_factory(fx, r, FACTORY);
    c = ca_create(fx, FACTORY);
    name = ca_config_name(pelix_configuration_get_pid(c));

    /* Never updated: refused, no file, still not valid. */
    expect_refused(c, strings("h", "abc"), PELIX_E_TYPE, "port: \"abc\" is not an integer");
    expect_refused(c, strings(NULL, "1883"), PELIX_E_MISSING, "host: mandatory property missing");
    assert_false(ca_exists(fx->folder, name));
    assert_false(pelix_configuration_is_valid(c));

    /* Valid once, then refused updates keep the properties and the file. */
    assert_int_equal(pelix_configuration_update(c, strings("h", "1883"), NULL), 0);
    before = ca_read_file(fx->folder, name);
    expect_refused(c, strings("h", "70000"), PELIX_E_RANGE,
                   "port: 70000 is out of range [1, 65535]");
    expect_refused(c, strings("h", "12x"), PELIX_E_TYPE, "port: \"12x\" is not an integer");
    after = ca_read_file(fx->folder, name);
    assert_string_equal(before, after);
    assert_int_equal(pelix_configuration_get_properties(c, &now), 0);
    assert_int_equal(pelix_props_get_long(now, "port", 0), 1883);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 1);

    pelix_props_free(now);
    free(before);
    free(after);
    free(name);
    pelix_configuration_unref(c);
}

static void test_files_are_coerced_or_reported(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    const char *good = "{\n"
                       "    \"host\": \"h\",\n"
                       "    \"port\": \"1884\",\n"
                       "    \"service.factoryPid\": \"mqtt.connector\",\n"
                       "    \"service.pid\": \"mqtt.connector-a\"\n"
                       "}\n";
    const char *bad = "{\"host\": \"h\", \"port\": \"none\", "
                      "\"service.factoryPid\": \"mqtt.connector\"}\n";
    char *text;

    ca_write_file(fx->folder, "mqtt.connector-a.config.js", good);
    ca_write_file(fx->folder, "mqtt.connector-b.config.js", good);
    ca_start(fx, true, true);
    set_mqtt_schema(fx);
    ca_register_factory(fx, r, FACTORY);
    ca_flush(fx);
    /* Loaded before the schema was set: typed in memory, without rewriting the files. */
    assert_int_equal(ca_recorder_count(r), 2);
    for (size_t i = 0; i < 2; i++) {
        const pelix_props_t *got = ca_recorder_at(r, i)->props;
        assert_int_equal(pelix_value_type(pelix_props_get(got, "port")), PELIX_TYPE_LONG);
    }
    text = ca_read_file(fx->folder, "mqtt.connector-a.config.js");
    assert_string_equal(text, good);
    free(text);

    /* A file that does not conform is reported once and changes nothing. */
    ca_write_file(fx->folder, "mqtt.connector-b.config.js", bad);
    ca_write_file(fx->folder, "mqtt.connector-c.config.js", bad);
    for (int i = 0;
         i < CA_WAIT_MS / 10 && ca_log_count(&fx->log, PELIX_LOG_ERROR, "none", NULL) < 2; i++) {
        ca_sleep_ms(10);
    }
    ca_sleep_ms(CA_QUIET_MS);
    ca_flush(fx);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, "mqtt.connector-b.config.js",
                                  "port: \"none\" is not an integer"),
                     1);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, "mqtt.connector-c.config.js", NULL),
                     1);
    assert_int_equal(ca_recorder_count(r), 2);
    assert_int_equal(ca_count_configs(fx), 2);

    /* Loaded again in a new ConfigAdmin: same verdicts. */
    ca_stop(fx);
    ca_start(fx, true, false);
    set_mqtt_schema(fx);
    pelix_configuration_t **list;
    size_t n;
    assert_int_equal(pelix_configadmin_list_configurations(fx->ca, "(port=1884)", &list, &n, NULL),
                     0);
    assert_int_equal(n, 1); /* -a; -b and -c hold "none", loaded before the schema was set */
    assert_string_equal(pelix_configuration_get_pid(list[0]), "mqtt.connector-a");
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, "does not match its schema", NULL),
                     2);
    pelix_configuration_list_free(list, n);
}

static void test_reload_uses_the_schema(void **state)
{
    ca_fixture_t *fx = *state;
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configuration_t *c;
    pelix_props_t *now = NULL;

    ca_start(fx, true, false);
    set_mqtt_schema(fx);
    c = ca_get(fx, "mqtt.connector-x");
    ca_write_file(fx->folder, "mqtt.connector-x.config.js", "{\"host\": \"h\", \"port\": \"2\"}");
    /* A plain PID: the factory's schema does not apply to it. */
    assert_int_equal(pelix_configuration_reload(c, &err), 0);
    assert_int_equal(pelix_configuration_get_properties(c, &now), 0);
    assert_int_equal(pelix_value_type(pelix_props_get(now, "port")), PELIX_TYPE_STRING);
    pelix_props_free(now);

    /* With a schema for that PID, reload coerces, and refuses what does not conform. */
    assert_int_equal(pelix_configadmin_set_schema(fx->ca, "mqtt.connector-x", MQTT_SCHEMA, 4, &err),
                     0);
    assert_int_equal(pelix_configuration_get_properties(c, &now), 0);
    assert_int_equal(pelix_value_type(pelix_props_get(now, "port")), PELIX_TYPE_LONG);
    pelix_props_free(now);
    ca_write_file(fx->folder, "mqtt.connector-x.config.js", "{\"host\": \"h\", \"port\": 0}");
    assert_int_equal(pelix_configuration_reload(c, &err), PELIX_E_RANGE);
    assert_non_null(strstr(err.text, "port: 0 is out of range"));
    assert_int_equal(pelix_configuration_get_properties(c, &now), 0);
    assert_int_equal(pelix_props_get_long(now, "port", 0), 2);
    pelix_props_free(now);
    pelix_configuration_unref(c);
}

static void test_schema_removed_and_bad_schemas(void **state)
{
    ca_fixture_t *fx = *state;
    pelix_error_t err = PELIX_ERROR_INIT;
    const pelix_prop_schema_t no_key[] = {{.key = NULL, .type = PELIX_TYPE_LONG}};
    const pelix_prop_schema_t bad_type[] = {{.key = "port", .type = 42}};
    pelix_configuration_t *c;

    ca_start(fx, false, false);
    assert_int_equal(pelix_configadmin_set_schema(fx->ca, FACTORY, no_key, 1, &err), -EINVAL);
    assert_int_equal(pelix_configadmin_set_schema(fx->ca, FACTORY, bad_type, 1, &err), -EINVAL);
    assert_int_equal(pelix_configadmin_set_schema(fx->ca, "a/b", MQTT_SCHEMA, 4, &err),
                     PELIX_E_PID);
    assert_int_equal(pelix_configadmin_set_schema(fx->ca, FACTORY, NULL, 1, &err), -EINVAL);

    set_mqtt_schema(fx);
    c = ca_create(fx, FACTORY);
    assert_int_equal(pelix_configuration_update(c, strings("h", "abc"), NULL), PELIX_E_TYPE);
    assert_int_equal(pelix_configadmin_set_schema(fx->ca, FACTORY, NULL, 0, &err), 0);
    assert_int_equal(pelix_configuration_update(c, strings("h", "abc"), NULL), 0);
    pelix_configuration_unref(c);
}

/* A schema that cannot be replaced for lack of memory stays in force (the old one is not dropped
 * first). Six schemas put the map at its growth threshold, where replacing may allocate. */
static void test_schema_replaced_without_memory(void **state)
{
    ca_fixture_t *fx = *state;
    const pelix_prop_schema_t as_text[] = {{.key = "port", .type = PELIX_TYPE_STRING}};
    char pid[32];
    int rc = -ENOMEM;

    ca_start(fx, false, false);
    for (int i = 0; i < 6; i++) {
        snprintf(pid, sizeof(pid), "test.schema.%d", i);
        assert_int_equal(pelix_configadmin_set_schema(fx->ca, pid, MQTT_SCHEMA + 1, 1, NULL), 0);
    }
    pelix_configuration_t *c = ca_get(fx, "test.schema.0");
    for (long n = 0; n < 64 && rc == -ENOMEM; n++) {
        pelix__alloc_fail_after(n);
        rc = pelix_configadmin_set_schema(fx->ca, "test.schema.0", as_text, 1, NULL);
        pelix__alloc_fail_after(-1);
        if (rc == -ENOMEM) {
            /* Still the old schema: a port must be a number. */
            assert_int_equal(pelix_configuration_update(c, strings("h", "abc"), NULL),
                             PELIX_E_TYPE);
        }
    }
    assert_int_equal(rc, 0);
    assert_int_equal(pelix_configuration_update(c, strings("h", "abc"), NULL), 0);
    pelix_configuration_unref(c);
}

static void test_existing_config_not_conforming_is_reported(void **state)
{
    ca_fixture_t *fx = *state;
    pelix_configuration_t *c;

    ca_start(fx, false, false);
    c = ca_create(fx, FACTORY);
    assert_int_equal(pelix_configuration_update(c, strings("h", "eighty"), NULL), 0);
    set_mqtt_schema(fx);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, pelix_configuration_get_pid(c),
                                  "port: \"eighty\" is not an integer"),
                     1);
    pelix_configuration_unref(c);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ca_fixture_setup, ca_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_update_coerces_strings),         T(test_update_refused_changes_nothing),
        T(test_files_are_coerced_or_reported),  T(test_reload_uses_the_schema),
        T(test_schema_removed_and_bad_schemas), T(test_existing_config_not_conforming_is_reported),
        T(test_schema_replaced_without_memory),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
