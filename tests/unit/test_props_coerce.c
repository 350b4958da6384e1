/*
 * Coercion of values to the type a schema wants (pelix_value_coerce) and of whole props against a
 * schema, all or nothing (pelix_props_coerce), with the exact one-line reasons given to users.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "props/props_internal.h"
#include "util/util.h"

static int reset_alloc(void **state)
{
    (void)state;
    pelix__alloc_fail_after(-1);
    return 0;
}

/* JSON text of `p`, to compare props exactly (key spelling and types included). */
static char *dump(const pelix_props_t *p)
{
    char *json = NULL;
    assert_int_equal(pelix_props_to_json(p, &json), 0);
    return json;
}

static void assert_props_same(const pelix_props_t *p, const char *expect_json)
{
    char *json = dump(p);
    assert_string_equal(json, expect_json);
    free(json);
}

/* ---- coercion -------------------------------------------------------------------------------- */

/* Coerces `v` (consumed) to `type`; checks success and the result's display form and type. */
static void coerce_ok(pelix_value_t *v, pelix_type_t type, const char *expect)
{
    pelix_value_t *out = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    char *shown;

    assert_non_null(v);
    assert_int_equal(pelix_value_coerce("x", v, type, &out, &err), 0);
    assert_non_null(out);
    assert_ptr_not_equal(out, v);
    assert_int_equal(pelix_value_type(out), type);
    shown = pelix_value_to_string(out);
    assert_string_equal(shown, expect);
    /* err is left untouched on success. */
    assert_int_equal(err.code, 0);
    assert_int_equal(err.position, -1);
    assert_string_equal(err.text, "");
    free(shown);
    pelix_value_free(out);
    pelix_value_free(v);
}

/* Coerces `v` (consumed) to `type` under the name `name`; checks the failure and its text. */
static void coerce_fails(const char *name, pelix_value_t *v, pelix_type_t type, const char *text)
{
    pelix_value_t *out = (pelix_value_t *)&out; /* sentinel: must stay untouched */
    pelix_error_t err = PELIX_ERROR_INIT;

    assert_non_null(v);
    assert_int_equal(pelix_value_coerce(name, v, type, &out, &err), PELIX_E_TYPE);
    assert_ptr_equal(out, (pelix_value_t *)&out);
    assert_int_equal(err.code, PELIX_E_TYPE);
    assert_string_equal(err.text, text);
    pelix_value_free(v);
}

static pelix_value_t *one_item_list(void)
{
    static const char *const items[] = {"x"};
    return pelix_value_new_strings(items, 1);
}

static void test_coerce_to_long(void **state)
{
    (void)state;

    coerce_ok(pelix_value_new_long(42), PELIX_TYPE_LONG, "42");
    coerce_ok(pelix_value_new_string("42"), PELIX_TYPE_LONG, "42");
    coerce_ok(pelix_value_new_string(" \t-7 "), PELIX_TYPE_LONG, "-7");
    coerce_ok(pelix_value_new_string("\n1883\r\n"), PELIX_TYPE_LONG, "1883");
    coerce_ok(pelix_value_new_string("+5"), PELIX_TYPE_LONG, "5");
    coerce_ok(pelix_value_new_string("-9223372036854775808"), PELIX_TYPE_LONG,
              "-9223372036854775808");
    coerce_ok(pelix_value_new_double(42.0), PELIX_TYPE_LONG, "42");
    coerce_ok(pelix_value_new_double(-3.0), PELIX_TYPE_LONG, "-3");
    coerce_ok(pelix_value_new_double(-0.0), PELIX_TYPE_LONG, "0");

    coerce_fails("port", pelix_value_new_string("abc"), PELIX_TYPE_LONG,
                 "port: \"abc\" is not an integer");
    coerce_fails("port", pelix_value_new_string(""), PELIX_TYPE_LONG,
                 "port: \"\" is not an integer");
    coerce_fails("port", pelix_value_new_string("  "), PELIX_TYPE_LONG,
                 "port: \"  \" is not an integer");
    coerce_fails("port", pelix_value_new_string("4.5"), PELIX_TYPE_LONG,
                 "port: \"4.5\" is not an integer");
    coerce_fails("port", pelix_value_new_string("12ab"), PELIX_TYPE_LONG,
                 "port: \"12ab\" is not an integer");
    coerce_fails("port", pelix_value_new_string("0x10"), PELIX_TYPE_LONG,
                 "port: \"0x10\" is not an integer");
    coerce_fails("port", pelix_value_new_string("9223372036854775808"), PELIX_TYPE_LONG,
                 "port: \"9223372036854775808\" is not an integer");
    coerce_fails("port", pelix_value_new_double(42.5), PELIX_TYPE_LONG,
                 "port: 42.5 (number) is not an integer");
    coerce_fails("port", pelix_value_new_double(1e19), PELIX_TYPE_LONG,
                 "port: 1e+19 (number) is not an integer");
    coerce_fails("port", pelix_value_new_bool(true), PELIX_TYPE_LONG,
                 "port: true (boolean) is not an integer");
    coerce_fails("port", one_item_list(), PELIX_TYPE_LONG,
                 "port: [\"x\"] (list) is not an integer");
}

static void test_coerce_to_double(void **state)
{
    (void)state;

    coerce_ok(pelix_value_new_double(2.5), PELIX_TYPE_DOUBLE, "2.5");
    coerce_ok(pelix_value_new_long(3), PELIX_TYPE_DOUBLE, "3.0");
    coerce_ok(pelix_value_new_string("2.5"), PELIX_TYPE_DOUBLE, "2.5");
    coerce_ok(pelix_value_new_string(" 1e3\t"), PELIX_TYPE_DOUBLE, "1000.0");
    coerce_ok(pelix_value_new_string("-0.125"), PELIX_TYPE_DOUBLE, "-0.125");
    coerce_ok(pelix_value_new_string("7"), PELIX_TYPE_DOUBLE, "7.0");

    coerce_fails("ratio", pelix_value_new_string("abc"), PELIX_TYPE_DOUBLE,
                 "ratio: \"abc\" is not a number");
    coerce_fails("ratio", pelix_value_new_string("inf"), PELIX_TYPE_DOUBLE,
                 "ratio: \"inf\" is not a number");
    coerce_fails("ratio", pelix_value_new_string("nan"), PELIX_TYPE_DOUBLE,
                 "ratio: \"nan\" is not a number");
    coerce_fails("ratio", pelix_value_new_string("0x1p3"), PELIX_TYPE_DOUBLE,
                 "ratio: \"0x1p3\" is not a number");
    coerce_fails("ratio", pelix_value_new_string("1e999"), PELIX_TYPE_DOUBLE,
                 "ratio: \"1e999\" is not a number");
    coerce_fails("ratio", pelix_value_new_string(""), PELIX_TYPE_DOUBLE,
                 "ratio: \"\" is not a number");
    coerce_fails("ratio", pelix_value_new_string("1.5.2"), PELIX_TYPE_DOUBLE,
                 "ratio: \"1.5.2\" is not a number");
    coerce_fails("ratio", pelix_value_new_bool(false), PELIX_TYPE_DOUBLE,
                 "ratio: false (boolean) is not a number");
    coerce_fails("ratio", one_item_list(), PELIX_TYPE_DOUBLE,
                 "ratio: [\"x\"] (list) is not a number");
}

static void test_coerce_to_bool(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "Yes", "on", "1", " ON\t"};
    static const char *const no[] = {"false", "False", "NO", "off", "0", "\tno "};
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(yes); i++) {
        coerce_ok(pelix_value_new_string(yes[i]), PELIX_TYPE_BOOL, "true");
        coerce_ok(pelix_value_new_string(no[i]), PELIX_TYPE_BOOL, "false");
    }
    coerce_ok(pelix_value_new_bool(true), PELIX_TYPE_BOOL, "true");
    coerce_ok(pelix_value_new_long(1), PELIX_TYPE_BOOL, "true");
    coerce_ok(pelix_value_new_long(0), PELIX_TYPE_BOOL, "false");

    coerce_fails("flag", pelix_value_new_string("maybe"), PELIX_TYPE_BOOL,
                 "flag: \"maybe\" is not a boolean");
    coerce_fails("flag", pelix_value_new_string("2"), PELIX_TYPE_BOOL,
                 "flag: \"2\" is not a boolean");
    coerce_fails("flag", pelix_value_new_string(""), PELIX_TYPE_BOOL,
                 "flag: \"\" is not a boolean");
    coerce_fails("flag", pelix_value_new_long(2), PELIX_TYPE_BOOL,
                 "flag: 2 (integer) is not a boolean");
    coerce_fails("flag", pelix_value_new_double(1.0), PELIX_TYPE_BOOL,
                 "flag: 1.0 (number) is not a boolean");
    coerce_fails("flag", one_item_list(), PELIX_TYPE_BOOL, "flag: [\"x\"] (list) is not a boolean");
}

static void test_coerce_to_string_and_list(void **state)
{
    pelix_value_t *list = pelix_value_new_list(), *out = NULL;
    (void)state;

    coerce_ok(pelix_value_new_string("as is"), PELIX_TYPE_STRING, "as is");
    coerce_ok(pelix_value_new_long(-5), PELIX_TYPE_STRING, "-5");
    coerce_ok(pelix_value_new_double(0.1), PELIX_TYPE_STRING, "0.1");
    coerce_ok(pelix_value_new_double(1e16), PELIX_TYPE_STRING, "1e+16");
    coerce_ok(pelix_value_new_bool(true), PELIX_TYPE_STRING, "true");
    coerce_fails("x", one_item_list(), PELIX_TYPE_STRING, "x: [\"x\"] (list) is not a string");

    coerce_ok(pelix_value_new_string("s"), PELIX_TYPE_LIST, "[\"s\"]");
    coerce_ok(pelix_value_new_long(42), PELIX_TYPE_LIST, "[42]");
    coerce_ok(pelix_value_new_double(0.5), PELIX_TYPE_LIST, "[0.5]");
    coerce_ok(pelix_value_new_bool(false), PELIX_TYPE_LIST, "[false]");
    coerce_ok(one_item_list(), PELIX_TYPE_LIST, "[\"x\"]"); /* kept, not wrapped */

    /* A list of lists stays as it is. */
    assert_int_equal(pelix_value_list_append(list, one_item_list()), 0);
    assert_int_equal(pelix_value_coerce("x", list, PELIX_TYPE_LIST, &out, NULL), 0);
    assert_true(pelix_value_equal(out, list));
    pelix_value_free(out);
    pelix_value_free(list);
}

static void test_coerce_invalid_args(void **state)
{
    pelix_value_t *v = pelix_value_new_string("1"), *out = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    (void)state;

    assert_int_equal(pelix_value_coerce(NULL, v, PELIX_TYPE_LONG, &out, &err), -EINVAL);
    assert_int_equal(err.code, -EINVAL);
    assert_int_equal(pelix_value_coerce("x", NULL, PELIX_TYPE_LONG, &out, NULL), -EINVAL);
    assert_int_equal(pelix_value_coerce("x", v, PELIX_TYPE_LONG, NULL, NULL), -EINVAL);
    assert_int_equal(pelix_value_coerce("x", v, (pelix_type_t)99, &out, &err), -EINVAL);
    assert_non_null(strstr(err.text, "unknown type 99"));
    assert_int_equal(pelix_value_coerce("x", v, (pelix_type_t)0, &out, NULL), -EINVAL);
    assert_null(out);
    pelix_value_free(v);

    /* A schema entry without a key is refused, not dereferenced. */
    pelix_props_t *p = pelix_props_new();
    const pelix_prop_schema_t no_key[] = {{NULL, PELIX_TYPE_LONG, false, false, 0, 0}};
    assert_int_equal(pelix_props_coerce(p, no_key, 1, &err), -EINVAL);
    assert_non_null(strstr(err.text, "no key"));
    pelix_props_free(p);
}

static void test_range_bounds_in_messages(void **state)
{
    const pelix_prop_schema_t s[] = {
        {"ratio", PELIX_TYPE_DOUBLE, false, true, 0.5, 1e300},
        {"count", PELIX_TYPE_LONG, false, true, -1e300, -2},
    };
    pelix_props_t *p = pelix_props_new();
    pelix_error_t err = PELIX_ERROR_INIT;
    (void)state;

    /* Fractional and huge bounds are shown as numbers, never truncated to integers. */
    pelix_props_set_string(p, "ratio", "0.25");
    assert_int_equal(pelix_props_coerce(p, s, 1, &err), PELIX_E_RANGE);
    assert_string_equal(err.text, "ratio: 0.25 is out of range [0.5, 1e+300]");
    pelix_props_set_long(p, "count", 3);
    assert_int_equal(pelix_props_coerce(p, s + 1, 1, &err), PELIX_E_RANGE);
    assert_string_equal(err.text, "count: 3 is out of range [-1e+300, -2]");
    pelix_props_free(p);
}

/* Error texts go to logs: the value of a secret never appears in them. */
static void test_secret_values_not_shown(void **state)
{
    const pelix_prop_schema_t s[] = {
        {"password", PELIX_TYPE_LONG, false, false, 0, 0},
        {"api_secret_pin", PELIX_TYPE_LONG, false, true, 0, 9999},
        {"user", PELIX_TYPE_LONG, false, false, 0, 0},
    };
    pelix_props_t *p = pelix_props_new();
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_value_t *v = pelix_value_new_string("hunter2"), *out = NULL;
    (void)state;

    pelix_props_set_string(p, "password", "hunter2");
    assert_int_equal(pelix_props_coerce(p, s, 1, &err), PELIX_E_TYPE);
    assert_string_equal(err.text, "password: *** (string) is not an integer");
    pelix_props_set_long(p, "api_secret_pin", 123456);
    assert_int_equal(pelix_props_coerce(p, s + 1, 1, &err), PELIX_E_RANGE);
    assert_string_equal(err.text, "api_secret_pin: *** is out of range [0, 9999]");
    assert_int_equal(pelix_value_coerce("db_password", v, PELIX_TYPE_BOOL, &out, &err),
                     PELIX_E_TYPE);
    assert_null(strstr(err.text, "hunter2"));
    assert_null(out);
    /* Other keys still show their value, which is what makes the message useful. */
    pelix_props_set_string(p, "user", "hunter2");
    assert_int_equal(pelix_props_coerce(p, s + 2, 1, &err), PELIX_E_TYPE);
    assert_non_null(strstr(err.text, "\"hunter2\""));
    pelix_value_free(v);
    pelix_props_free(p);
}

/* The schema of the brief: port in 1..65535, keepalive, mandatory host, flag. */
static const pelix_prop_schema_t schema[] = {
    {"port", PELIX_TYPE_LONG, false, true, 1, 65535},
    {"keepalive", PELIX_TYPE_LONG, false, false, 0, 0},
    {"host", PELIX_TYPE_STRING, true, false, 0, 0},
    {"flag", PELIX_TYPE_BOOL, false, false, 0, 0},
};

static void test_props_coerce_schema(void **state)
{
    pelix_props_t *p = pelix_props_new();
    pelix_error_t err = PELIX_ERROR_INIT;
    (void)state;

    assert_int_equal(pelix_props_set_string(p, "Port", " 1883 "), 0);
    assert_int_equal(pelix_props_set_double(p, "keepalive", 60.0), 0);
    assert_int_equal(pelix_props_set_string(p, "host", "broker"), 0);
    assert_int_equal(pelix_props_set_string(p, "FLAG", "on"), 0);
    assert_int_equal(pelix_props_set_string(p, "extra", "1"), 0);

    assert_int_equal(pelix_props_coerce(p, schema, PELIX_ARRAY_SIZE(schema), &err), 0);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.text, "");
    /* Converted in place, key spelling kept; keys outside the schema untouched. */
    assert_props_same(p, "{\n    \"FLAG\": true,\n    \"Port\": 1883,\n    \"extra\": \"1\",\n"
                         "    \"host\": \"broker\",\n    \"keepalive\": 60\n}");
    /* Coercing again changes nothing. */
    assert_int_equal(pelix_props_coerce(p, schema, PELIX_ARRAY_SIZE(schema), &err), 0);
    assert_int_equal(pelix_props_size(p), 5);
    assert_true(pelix_props_get_long(p, "port", 0) == 1883);

    /* Optional keys may be absent; range bounds are inclusive. */
    assert_int_equal(pelix_props_remove(p, "keepalive"), 0);
    assert_int_equal(pelix_props_remove(p, "flag"), 0);
    assert_int_equal(pelix_props_set_long(p, "port", 65535), 0);
    assert_int_equal(pelix_props_coerce(p, schema, PELIX_ARRAY_SIZE(schema), NULL), 0);
    assert_int_equal(pelix_props_set_string(p, "port", "1"), 0);
    assert_int_equal(pelix_props_coerce(p, schema, PELIX_ARRAY_SIZE(schema), NULL), 0);
    assert_true(pelix_props_get_long(p, "port", 0) == 1);

    assert_int_equal(pelix_props_coerce(p, NULL, 0, NULL), 0);
    assert_int_equal(pelix_props_coerce(p, NULL, 1, &err), -EINVAL);
    assert_int_equal(pelix_props_coerce(NULL, schema, 1, NULL), -EINVAL);
    pelix_props_free(p);
}

/* Expects pelix_props_coerce(p) to fail with `code` and `text`, leaving `p` as it was. */
static void coerce_props_fails(pelix_props_t *p, const pelix_prop_schema_t *s, size_t count,
                               int code, const char *text)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_props_t *before = pelix_props_copy(p);
    char *json = dump(p);

    assert_int_equal(pelix_props_coerce(p, s, count, &err), code);
    assert_int_equal(err.code, code);
    assert_string_equal(err.text, text);
    assert_true(pelix_props_equal(p, before));
    assert_props_same(p, json);
    free(json);
    pelix_props_free(before);
}

static void test_props_coerce_failures(void **state)
{
    static const pelix_prop_schema_t ratio[] = {{"ratio", PELIX_TYPE_DOUBLE, false, true, 0, 1}};
    pelix_props_t *p = pelix_props_new();
    (void)state;

    /* port converts, flag does not: all or nothing, port is still a string afterwards. */
    assert_int_equal(pelix_props_set_string(p, "port", "1883"), 0);
    assert_int_equal(pelix_props_set_string(p, "host", "h"), 0);
    assert_int_equal(pelix_props_set_string(p, "flag", "maybe"), 0);
    coerce_props_fails(p, schema, PELIX_ARRAY_SIZE(schema), PELIX_E_TYPE,
                       "flag: \"maybe\" is not a boolean");
    assert_int_equal(pelix_value_type(pelix_props_get(p, "port")), PELIX_TYPE_STRING);

    assert_int_equal(pelix_props_set_bool(p, "flag", true), 0);
    assert_int_equal(pelix_props_set_string(p, "port", "abc"), 0);
    coerce_props_fails(p, schema, PELIX_ARRAY_SIZE(schema), PELIX_E_TYPE,
                       "port: \"abc\" is not an integer");

    /* Out of range, as a converted string and as a long. */
    assert_int_equal(pelix_props_set_string(p, "port", "70000"), 0);
    coerce_props_fails(p, schema, PELIX_ARRAY_SIZE(schema), PELIX_E_RANGE,
                       "port: 70000 is out of range [1, 65535]");
    assert_int_equal(pelix_props_set_long(p, "port", 0), 0);
    coerce_props_fails(p, schema, PELIX_ARRAY_SIZE(schema), PELIX_E_RANGE,
                       "port: 0 is out of range [1, 65535]");

    /* A mandatory key is missing, while the others would convert. */
    assert_int_equal(pelix_props_set_string(p, "port", "1883"), 0);
    assert_int_equal(pelix_props_remove(p, "host"), 0);
    coerce_props_fails(p, schema, PELIX_ARRAY_SIZE(schema), PELIX_E_MISSING,
                       "host: mandatory property missing");

    /* Double ranges. */
    assert_int_equal(pelix_props_set_string(p, "ratio", "1.5"), 0);
    coerce_props_fails(p, ratio, 1, PELIX_E_RANGE, "ratio: 1.5 is out of range [0, 1]");
    assert_int_equal(pelix_props_set_long(p, "ratio", 1), 0);
    assert_int_equal(pelix_props_coerce(p, ratio, 1, NULL), 0);
    assert_int_equal(pelix_value_type(pelix_props_get(p, "ratio")), PELIX_TYPE_DOUBLE);
    pelix_props_free(p);
}

/* ---- allocation failures --------------------------------------------------------------------- */

/* Setting and coercing under allocation failure leave the props exactly as they were. */
static void test_oom_leaves_props_unchanged(void **state)
{
    static const char *const items[] = {"a", "b", "c"};
    pelix_props_t *p = pelix_props_new();
    char *before;
    int rc = -1;
    (void)state;

    assert_int_equal(pelix_props_set_string(p, "host", "h"), 0);
    assert_int_equal(pelix_props_set_string(p, "port", "1883"), 0);
    assert_int_equal(pelix_props_set_string(p, "flag", "true"), 0);
    before = dump(p);
    for (long n = 0; rc != 0; n++) {
        pelix__alloc_fail_after(n);
        rc = pelix_props_set_strings(p, "HOST", items, 3);
        pelix__alloc_fail_after(-1);
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            assert_props_same(p, before);
        }
    }
    assert_string_equal(pelix_props_key_at(p, 0), "HOST");
    free(before);

    assert_int_equal(pelix_props_set_string(p, "HOST", "h"), 0);
    before = dump(p);
    rc = -1;
    for (long n = 0; rc != 0; n++) {
        pelix_error_t err = PELIX_ERROR_INIT;
        pelix__alloc_fail_after(n);
        rc = pelix_props_coerce(p, schema, PELIX_ARRAY_SIZE(schema), &err);
        pelix__alloc_fail_after(-1);
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(err.code, -ENOMEM);
            assert_props_same(p, before);
        }
    }
    assert_true(pelix_props_get_long(p, "port", 0) == 1883);
    assert_true(pelix_props_get_bool(p, "flag", false));
    free(before);
    pelix_props_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coerce_to_long),
        cmocka_unit_test(test_coerce_to_double),
        cmocka_unit_test(test_coerce_to_bool),
        cmocka_unit_test(test_coerce_to_string_and_list),
        cmocka_unit_test(test_coerce_invalid_args),
        cmocka_unit_test(test_range_bounds_in_messages),
        cmocka_unit_test(test_secret_values_not_shown),
        cmocka_unit_test(test_props_coerce_schema),
        cmocka_unit_test(test_props_coerce_failures),
        cmocka_unit_test_teardown(test_oom_leaves_props_unchanged, reset_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
