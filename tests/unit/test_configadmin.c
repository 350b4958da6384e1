/*
 * ConfigAdmin API: ports of Pelix's ConfigurationAdminTest (testCreateFactoryConfiguration,
 * testGetConfiguration, testListConfiguration; testPersistence is in test_persistence.c), and
 * the C contract of configadmin.h: no-op updates, idempotent delete, PID validation, handles
 * that outlive ConfigAdmin. Managed services and factories are in test_managed.c.
 *
 * Memory-only ConfigAdmin (folder NULL) unless the folder matters.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pelix/configadmin.h>

#include "unit/ca_helpers.h"
#include "util/util.h"

/* The PIDs of a listing, in order, joined with spaces (for readable comparisons). */
static char *list_pids(ca_fixture_t *fx, const char *filter)
{
    pelix_configuration_t **list = NULL;
    size_t n = 0, len = 1;
    pelix_error_t err = PELIX_ERROR_INIT;
    char *out;
    int rc = pelix_configadmin_list_configurations(fx->ca, filter, &list, &n, &err);

    if (rc != 0) {
        fail_msg("list_configurations(%s): %d %s", filter ? filter : "NULL", rc, err.text);
    }
    for (size_t i = 0; i < n; i++) {
        len += strlen(pelix_configuration_get_pid(list[i])) + 1;
    }
    out = calloc(1, len);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        if (i) {
            strcat(out, " ");
        }
        strcat(out, pelix_configuration_get_pid(list[i]));
    }
    pelix_configuration_list_free(list, n);
    return out;
}

static void assert_listed(ca_fixture_t *fx, const char *filter, const char *expected)
{
    char *got = list_pids(fx, filter);
    if (strcmp(got, expected) != 0) {
        fail_msg("filter %s: listed '%s', expected '%s'", filter ? filter : "NULL", got, expected);
    }
    free(got);
}

static bool is_uuid4(const char *s)
{
    if (strlen(s) != 36 || s[14] != '4') {
        return false;
    }
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i])) {
            return false;
        }
    }
    return true;
}

/* ---- ConfigurationAdminTest ------------------------------------------------------------------ */

static void test_create_factory_configuration(void **state)
{
    ca_fixture_t *fx = *state;
    const char *factory_pid = "test.ca.factory";
    const char *invalid[] = {NULL, "", "   "};
    pelix_configuration_t *c, *c2, *c3;
    pelix_props_t *props = (pelix_props_t *)1;
    char *pid;

    ca_start(fx, false, false);
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        pelix_error_t err = PELIX_ERROR_INIT;
        pelix_configuration_t *none = NULL;
        assert_int_equal(
            pelix_configadmin_create_factory_configuration(fx->ca, invalid[i], &none, &err),
            PELIX_E_PID);
        assert_int_equal(err.code, PELIX_E_PID);
        assert_true(strlen(err.text) > 0);
        assert_null(none);
    }
    assert_int_equal(ca_count_configs(fx), 0);

    c = ca_create(fx, factory_pid);
    pid = strdup(pelix_configuration_get_pid(c));
    assert_string_equal(pelix_configuration_get_factory_pid(c), factory_pid);
    /* "<factory_pid>-<uuid4>" */
    assert_int_equal(strncmp(pid, "test.ca.factory-", 16), 0);
    assert_true(is_uuid4(pid + 16));
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_null(props);
    assert_false(pelix_configuration_is_valid(c));

    /* A factory PID is not a configuration PID. */
    {
        pelix_error_t err = PELIX_ERROR_INIT;
        pelix_configuration_t *none = NULL;
        assert_int_equal(pelix_configadmin_get_configuration(fx->ca, factory_pid, &none, &err),
                         PELIX_E_PID);
        assert_null(none);
        assert_non_null(strstr(err.text, "factory PID"));
    }

    /* The PID of a plain configuration is not a factory PID either. */
    {
        pelix_error_t err = PELIX_ERROR_INIT;
        pelix_configuration_t *plain = ca_get(fx, "test.ca.plain"), *none = NULL;
        assert_int_equal(
            pelix_configadmin_create_factory_configuration(fx->ca, "test.ca.plain", &none, &err),
            PELIX_E_PID);
        assert_null(none);
        assert_non_null(strstr(err.text, "'test.ca.plain' is the PID of a configuration"));
        assert_int_equal(pelix_configuration_delete(plain, NULL), 0);
        pelix_configuration_unref(plain);
    }

    /* Two creations give two configurations. */
    c3 = ca_create(fx, factory_pid);
    assert_ptr_not_equal(c3, c);
    assert_string_not_equal(pelix_configuration_get_pid(c3), pid);

    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    c2 = ca_create(fx, factory_pid);
    assert_ptr_not_equal(c2, c);
    assert_string_not_equal(pelix_configuration_get_pid(c2), pid);
    assert_string_equal(pelix_configuration_get_factory_pid(c2), factory_pid);
    /* the deleted handle keeps its identity */
    assert_string_equal(pelix_configuration_get_pid(c), pid);

    assert_int_equal(pelix_configuration_delete(c2, NULL), 0);
    assert_int_equal(pelix_configuration_delete(c3, NULL), 0);
    assert_int_equal(ca_count_configs(fx), 0);
    pelix_configuration_unref(c);
    pelix_configuration_unref(c2);
    pelix_configuration_unref(c3);
    free(pid);
}

static void test_get_configuration(void **state)
{
    ca_fixture_t *fx = *state;
    const char *pid = "test.ca.get";
    pelix_configuration_t *c, *c2, *c3;
    pelix_props_t *props = (pelix_props_t *)1;

    ca_start(fx, false, false);
    c = ca_get(fx, pid);
    assert_false(pelix_configuration_is_valid(c));
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_null(props);
    assert_string_equal(pelix_configuration_get_pid(c), pid);
    assert_null(pelix_configuration_get_factory_pid(c));

    ca_update_long(c, "answer", 42);
    c2 = ca_get(fx, pid);
    assert_ptr_equal(c2, c);
    assert_true(pelix_configuration_is_valid(c));
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_non_null(props);
    assert_string_equal(pelix_props_get_string(props, PELIX_SERVICE_PID, ""), pid);
    assert_int_equal(pelix_props_get_long(props, "answer", 0), 42);
    assert_null(pelix_props_get(props, PELIX_SERVICE_FACTORY_PID));
    assert_int_equal(pelix_props_size(props), 2);
    /* get_properties gives a copy */
    assert_int_equal(pelix_props_set_long(props, "answer", 7), 0);
    pelix_props_free(props);
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_int_equal(pelix_props_get_long(props, "answer", 0), 42);
    pelix_props_free(props);

    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    assert_false(pelix_configuration_is_valid(c));
    props = NULL;
    assert_int_equal(pelix_configuration_get_properties(c, &props), PELIX_E_DELETED);
    assert_null(props);

    c3 = ca_get(fx, pid);
    assert_ptr_not_equal(c3, c);
    assert_false(pelix_configuration_is_valid(c3));
    props = (pelix_props_t *)1;
    assert_int_equal(pelix_configuration_get_properties(c3, &props), 0);
    assert_null(props);

    pelix_configuration_unref(c);
    pelix_configuration_unref(c2);
    pelix_configuration_unref(c3);
}

static void test_list_configuration(void **state)
{
    ca_fixture_t *fx = *state;
    const char *pid = "test.ca.list.b";
    const char *pid2 = "test.ca.list.a"; /* sorts first: listings are sorted by PID */
    pelix_configuration_t *c, *c2, **list = (pelix_configuration_t **)1;
    pelix_error_t err = PELIX_ERROR_INIT;
    size_t n = 99;

    ca_start(fx, false, false);
    assert_listed(fx, NULL, "");
    assert_listed(fx, "(service.pid=*)", "");

    c = ca_get(fx, pid);
    /* Listed without filter although not updated; matched by no filter. */
    assert_listed(fx, NULL, pid);
    assert_listed(fx, "   ", pid);
    assert_listed(fx, "(service.pid=test.ca.list.b)", "");
    assert_listed(fx, "(arthur=dent)", "");
    assert_listed(fx, "(!(arthur=dent))", "");

    ca_update_str(c, "arthur", "dent");
    assert_listed(fx, "(service.pid=test.ca.list.b)", pid);
    assert_listed(fx, "(arthur=dent)", pid);
    assert_listed(fx, "(&(service.pid=test.ca.list.b)(arthur=dent))", pid);
    assert_listed(fx, "(&(service.pid=test.ca.list.b)(arthur=zaphod))", "");

    c2 = ca_get(fx, pid2);
    assert_listed(fx, NULL, "test.ca.list.a test.ca.list.b");
    assert_listed(fx, "(arthur=dent)", pid);
    ca_update_str(c2, "arthur", "dent");
    assert_listed(fx, "(arthur=dent)", "test.ca.list.a test.ca.list.b");
    assert_listed(fx, "(service.pid=test.ca.list.a)", pid2);

    assert_int_equal(pelix_configuration_delete(c2, NULL), 0);
    assert_listed(fx, NULL, pid);
    assert_listed(fx, "(arthur=dent)", pid);
    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    assert_listed(fx, NULL, "");

    /* A filter that does not parse. */
    assert_int_equal(pelix_configadmin_list_configurations(fx->ca, "(arthur=dent", &list, &n, &err),
                     PELIX_E_FILTER_SYNTAX);
    assert_int_equal(err.code, PELIX_E_FILTER_SYNTAX);
    assert_ptr_equal(list, (pelix_configuration_t **)1);
    assert_int_equal(n, 99);
    pelix_configuration_list_free(NULL, 0);

    pelix_configuration_unref(c);
    pelix_configuration_unref(c2);
}

/* ---- update and delete ----------------------------------------------------------------------- */

static void test_update_noops_and_idempotent_delete(void **state)
{
    ca_fixture_t *fx = *state;
    const char *pid = "test.ca.noop";
    ca_recorder_t *r = &fx->rec[0];
    pelix_configuration_t *c;
    pelix_props_t *props;

    ca_start(fx, false, false);
    ca_register_managed(fx, r, &pid, 1);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 1); /* updated(NULL): no configuration */
    assert_null(ca_recorder_at(r, 0)->props);

    c = ca_get(fx, pid);
    /* NULL and empty properties: no-ops, as in Pelix. */
    assert_int_equal(pelix_configuration_update(c, NULL, NULL), 0);
    assert_int_equal(pelix_configuration_update(c, pelix_props_new(), NULL), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 1);
    assert_false(pelix_configuration_is_valid(c));

    ca_update_long(c, "a", 1);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2);
    assert_int_equal(pelix_props_get_long(ca_recorder_at(r, 1)->props, "a", 0), 1);
    assert_string_equal(ca_recorder_at(r, 1)->pid, pid);

    /* Equal properties (with or without the standard ones): nothing is notified. */
    ca_update_long(c, "a", 1);
    props = ca_props_long("a", 1);
    assert_int_equal(pelix_props_set_string(props, PELIX_SERVICE_PID, pid), 0);
    assert_int_equal(pelix_configuration_update(c, props, NULL), 0);
    /* NULL/empty after an update do not erase the properties either. */
    assert_int_equal(pelix_configuration_update(c, NULL, NULL), 0);
    assert_int_equal(pelix_configuration_update(c, pelix_props_new(), NULL), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2);
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_int_equal(pelix_props_get_long(props, "a", 0), 1);
    pelix_props_free(props);

    /* A different value of the same type, then of another type: one call each. */
    ca_update_long(c, "a", 2);
    ca_update_str(c, "a", "2");
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 4);

    /* Delete notifies once; deleting again is a no-op. */
    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 5);
    assert_null(ca_recorder_at(r, 4)->props);
    assert_int_equal(ca_recorder_at(r, 4)->kind, CA_UPDATED);

    /* A deleted handle refuses updates and reloads (the props are consumed: ASan checks). */
    {
        pelix_error_t err = PELIX_ERROR_INIT;
        assert_int_equal(pelix_configuration_update(c, ca_props_long("a", 3), &err),
                         PELIX_E_DELETED);
        assert_non_null(strstr(err.text, pid));
        assert_int_equal(pelix_configuration_reload(c, NULL), PELIX_E_DELETED);
    }
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 5);
    assert_int_equal(ca_count_configs(fx), 0);
    pelix_configuration_unref(c);

    /* NULL handles. */
    assert_int_equal(pelix_configuration_update(NULL, ca_props_long("a", 3), NULL), -EINVAL);
    assert_null(pelix_configuration_get_pid(NULL));
    assert_false(pelix_configuration_is_valid(NULL));
    assert_null(pelix_configuration_unref(NULL));
}

static void test_flush_arguments(void **state)
{
    ca_fixture_t *fx = *state;

    ca_start(fx, false, false);
    assert_int_equal(pelix_configadmin_flush(NULL, 10), -EINVAL);
    assert_int_equal(pelix_configadmin_flush(fx->ca, -1), -EINVAL);
    assert_int_equal(pelix_configadmin_flush(fx->ca, 0), 0); /* nothing queued */
    assert_null(pelix_configadmin_free(NULL));
}

/* ---- PIDs ------------------------------------------------------------------------------------ */

static void test_invalid_pids(void **state)
{
    ca_fixture_t *fx = *state;
    char long_pid[PELIX_PID_MAX + 2], max_pid[PELIX_PID_MAX + 1];
    const struct {
        const char *pid;
        bool named; /* the message names the PID (Pelix bug B9) */
    } cases[] = {
        {"", false},     {"  ", false},   {"a/b", true},      {".hidden", true},
        {" x", true},    {"x ", true},    {long_pid, false},  {"a\x01z", false},
        {"a\nz", false}, {"\x7f", false}, {"bad\xff", false}, {NULL, false},
    };
    pelix_configuration_t *good, *c;
    pelix_props_t *before, *after;
    char **names_before, **names_after;
    size_t nb, na;

    memset(long_pid, 'p', PELIX_PID_MAX + 1);
    long_pid[PELIX_PID_MAX + 1] = '\0';
    ca_start(fx, true, false);
    good = ca_get(fx, "good");
    ca_update_str(good, "host", "localhost");
    assert_int_equal(pelix_configuration_get_properties(good, &before), 0);
    nb = ca_list_folder(fx->folder, &names_before);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pelix_error_t err = PELIX_ERROR_INIT;
        c = NULL;
        assert_int_equal(pelix_configadmin_get_configuration(fx->ca, cases[i].pid, &c, &err),
                         PELIX_E_PID);
        assert_null(c);
        assert_int_equal(err.code, PELIX_E_PID);
        assert_true(strlen(err.text) > 0);
        if (cases[i].named) {
            assert_non_null(strstr(err.text, cases[i].pid));
        }
        err = (pelix_error_t)PELIX_ERROR_INIT;
        assert_int_equal(
            pelix_configadmin_create_factory_configuration(fx->ca, cases[i].pid, &c, &err),
            PELIX_E_PID);
        assert_null(c);
        assert_true(strlen(err.text) > 0);
    }

    /* A factory PID so long that "<factory_pid>-<uuid>" would exceed the limit. */
    {
        char factory[PELIX_PID_MAX];
        size_t fit = PELIX_PID_MAX - 37; /* '-' + 36 characters of UUID */
        pelix_error_t err = PELIX_ERROR_INIT;
        memset(factory, 'f', fit + 1);
        factory[fit + 1] = '\0';
        c = NULL;
        assert_int_equal(pelix_configadmin_create_factory_configuration(fx->ca, factory, &c, &err),
                         PELIX_E_PID);
        assert_null(c);
        assert_true(strlen(err.text) > 0);
        factory[fit] = '\0';
        c = ca_create(fx, factory);
        assert_int_equal(strlen(pelix_configuration_get_pid(c)), PELIX_PID_MAX);
        assert_int_equal(pelix_configuration_delete(c, NULL), 0);
        pelix_configuration_unref(c);
    }

    /* Nothing stored changed: configurations, properties, files. */
    assert_int_equal(ca_count_configs(fx), 1);
    assert_int_equal(pelix_configuration_get_properties(good, &after), 0);
    assert_true(pelix_props_equal(before, after));
    na = ca_list_folder(fx->folder, &names_after);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(names_after[i], names_before[i]);
    }
    ca_names_free(names_before, nb);
    ca_names_free(names_after, na);
    pelix_props_free(before);
    pelix_props_free(after);

    /* The longest PID is accepted, as are inner blanks, dots and UTF-8. */
    memset(max_pid, 'm', PELIX_PID_MAX);
    max_pid[PELIX_PID_MAX] = '\0';
    const char *valid[] = {max_pid, "a b", "a.b.c", "caf\xc3\xa9", "x."};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        c = ca_get(fx, valid[i]);
        ca_update_long(c, "n", (int64_t)i);
        char *name = ca_config_name(valid[i]);
        assert_true(ca_exists(fx->folder, name));
        free(name);
        pelix_configuration_unref(c);
    }
    assert_int_equal(ca_count_configs(fx), 6);
    pelix_configuration_unref(good);
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static void test_handle_after_free(void **state)
{
    ca_fixture_t *fx = *state;
    pelix_configuration_t *c, *f, *empty;
    pelix_error_t err = PELIX_ERROR_INIT;
    char *name, *fpid;

    ca_start(fx, true, false);
    c = ca_get(fx, "test.ca.kept");
    ca_update_str(c, "host", "localhost");
    f = ca_create(fx, "test.ca.kept.factory");
    ca_update_long(f, "port", 1883);
    empty = ca_get(fx, "test.ca.empty");
    fpid = strdup(pelix_configuration_get_pid(f));
    name = ca_config_name("test.ca.kept");

    fx->ca = pelix_configadmin_free(fx->ca);

    assert_int_equal(pelix_configuration_update(c, ca_props_str("host", "remote"), &err),
                     -ESHUTDOWN);
    assert_int_equal(err.code, -ESHUTDOWN);
    assert_int_equal(pelix_configuration_delete(c, NULL), -ESHUTDOWN);
    assert_int_equal(pelix_configuration_reload(c, NULL), -ESHUTDOWN);
    assert_int_equal(pelix_configuration_update(f, ca_props_long("port", 1), NULL), -ESHUTDOWN);
    assert_int_equal(pelix_configuration_delete(f, NULL), -ESHUTDOWN);
    assert_int_equal(pelix_configuration_delete(empty, NULL), -ESHUTDOWN);
    assert_string_equal(pelix_configuration_get_pid(c), "test.ca.kept");
    assert_string_equal(pelix_configuration_get_pid(f), fpid);
    assert_string_equal(pelix_configuration_get_factory_pid(f), "test.ca.kept.factory");
    assert_string_equal(pelix_configuration_get_pid(empty), "test.ca.empty");
    /* The failed delete left the file. */
    assert_true(ca_exists(fx->folder, name));
    /* Reading still answers with the last state. */
    pelix_props_t *last = NULL;
    assert_int_equal(pelix_configuration_get_properties(c, &last), 0);
    assert_string_equal(pelix_props_get_string(last, "host", ""), "localhost");
    pelix_props_free(last);
    assert_true(pelix_configuration_is_valid(c));
    assert_false(pelix_configuration_is_valid(empty));
    assert_non_null(pelix_configuration_ref(c));
    pelix_configuration_unref(c);

    /* Releasing the last handles frees everything (ASan reports a leak otherwise). */
    pelix_configuration_unref(c);
    pelix_configuration_unref(f);
    pelix_configuration_unref(empty);
    free(name);
    free(fpid);
}

/* Stopping must release everything even when memory is short (LeakSanitizer reports the
 * configurations otherwise). */
static void test_free_without_memory(void **state)
{
    ca_fixture_t *fx = *state;

    ca_start(fx, true, false);
    for (int i = 0; i < 8; i++) {
        pelix_configuration_t *c = ca_create(fx, "test.ca.oom.factory");
        ca_update_long(c, "index", i);
        pelix_configuration_unref(c);
    }
    pelix__alloc_fail_after(0);
    fx->ca = pelix_configadmin_free(fx->ca);
    pelix__alloc_fail_after(-1);
    assert_null(fx->ca);
}

/* Coercion is not ConfigAdmin's job (Pelix bug B10 is fixed by the consumer's schema): values
 * are kept with their JSON type, so "1883" stays a string. */
static void test_values_keep_their_type(void **state)
{
    ca_fixture_t *fx = *state;
    const char *pid = "test.ca.types";
    ca_recorder_t *r = &fx->rec[0];
    pelix_configuration_t *c;
    pelix_props_t *props;
    const pelix_value_t *v;

    ca_start(fx, false, false);
    ca_register_managed(fx, r, &pid, 1);
    c = ca_get(fx, pid);
    props = ca_props_str("port", "1883");
    assert_int_equal(pelix_props_set_long(props, "keepalive", 60), 0);
    assert_int_equal(pelix_props_set_bool(props, "tls", true), 0);
    assert_int_equal(pelix_configuration_update(c, props, NULL), 0);
    ca_flush(fx);

    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    v = pelix_props_get(props, "port");
    assert_int_equal(pelix_value_type(v), PELIX_TYPE_STRING);
    assert_string_equal(pelix_value_string(v), "1883");
    assert_int_equal(pelix_value_type(pelix_props_get(props, "keepalive")), PELIX_TYPE_LONG);
    assert_int_equal(pelix_value_type(pelix_props_get(props, "tls")), PELIX_TYPE_BOOL);
    pelix_props_free(props);

    assert_int_equal(ca_recorder_count(r), 2);
    v = pelix_props_get(ca_recorder_at(r, 1)->props, "port");
    assert_int_equal(pelix_value_type(v), PELIX_TYPE_STRING);
    pelix_configuration_unref(c);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ca_fixture_setup, ca_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_factory_configuration),
        T(test_get_configuration),
        T(test_list_configuration),
        T(test_update_noops_and_idempotent_delete),
        T(test_flush_arguments),
        T(test_invalid_pids),
        T(test_handle_after_free),
        T(test_free_without_memory),
        T(test_values_keep_their_type),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
