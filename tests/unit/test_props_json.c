/*
 * JSON in and out of properties. Output must be byte-identical to Python's
 * json.dumps(d, sort_keys=True, indent=4, separators=(",", ": ")): the expected texts are files
 * written by Python (tests/fixtures/json/NAME.json, made by tools/gen_json_fixtures.py); each is
 * compared with the output of the same data built here in C, and of the file read back.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
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

static char *read_fixture(const char *name)
{
    char path[512];
    FILE *f;
    long size;
    char *text;

    snprintf(path, sizeof(path), "%s/json/%s.json", PELIX_FIXTURES, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    fclose(f);
    return text;
}

static char *dump(const pelix_props_t *p)
{
    char *json = NULL;
    assert_int_equal(pelix_props_to_json(p, &json), 0);
    assert_non_null(json);
    return json;
}

static pelix_props_t *parse(const char *text)
{
    pelix_props_t *p = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    int rc = pelix_props_from_json(text, strlen(text), &p, &err);
    if (rc != 0) {
        fail_msg("cannot parse: %s", err.text);
    }
    /* err is left untouched on success. */
    assert_int_equal(err.code, 0);
    assert_string_equal(err.text, "");
    return p;
}

/* ---- the data of the fixtures, built in C ---------------------------------------------------- */

/* A list of the given items (consumed), `n` of them. */
static pelix_value_t *list_of(int n, ...)
{
    pelix_value_t *list = pelix_value_new_list();
    va_list ap;

    assert_non_null(list);
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        pelix_value_t *item = va_arg(ap, pelix_value_t *);
        assert_non_null(item);
        assert_int_equal(pelix_value_list_append(list, item), 0);
    }
    va_end(ap);
    return list;
}

static void set_owned(pelix_props_t *p, const char *key, pelix_value_t *v)
{
    assert_non_null(v);
    assert_int_equal(pelix_props_set(p, key, v), 0);
    pelix_value_free(v);
}

#define STR(s) pelix_value_new_string(s)
#define LNG(l) pelix_value_new_long(l)
#define DBL(d) pelix_value_new_double(d)
#define BOOL(b) pelix_value_new_bool(b)

static const struct {
    const char *key, *value;
} strings_data[] = {
    {"plain", "hello world"},
    {"quotes", "say \"hi\""},
    {"backslash", "C:\\path\\to"},
    {"slash", "a/b"},
    {"controls", "\b\f\n\r\t\x01\x1f"},
    {"del", "x\x7fy"},
    {"latin", "\xC3\xA9t\xC3\xA9"},
    {"euro", "\xE2\x82\xAC 5"},
    {"emoji", "\xF0\x9F\x98\x80"},
    {"mixed", "\"\\\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x7f\n"},
    {"empty", ""},
    {"B", "upper"},
    {"a", "lower"},
    {"cl\xC3\xA9", "non-ASCII key"},
};

static const struct {
    const char *key;
    double value;
} floats_data[] = {
    {"f01", 0.1},
    {"f1", 1.0},
    {"f1e16", 1e16},
    {"f1e15", 1e15},
    {"f15em07", 1.5e-07},
    {"f00001", 0.0001},
    {"f1em05", 1e-05},
    {"fneg0", -0.0},
    {"fzero", 0.0},
    {"fbig", 123456789.123},
    {"fhuge", 2.5e300},
    {"fmin", 0x1p-1074},
    {"fmax", 1.7976931348623157e308},
    {"fpow2", 0x1p-1017},
    {"fneg", -1.5},
    {"f100", 100.0},
    {"fthird", 1.0 / 3.0},
};

static pelix_props_t *build(const char *name)
{
    pelix_props_t *p = pelix_props_new();

    assert_non_null(p);
    if (strcmp(name, "strings") == 0) {
        for (size_t i = 0; i < PELIX_ARRAY_SIZE(strings_data); i++) {
            assert_int_equal(pelix_props_set_string(p, strings_data[i].key, strings_data[i].value),
                             0);
        }
    } else if (strcmp(name, "floats") == 0) {
        for (size_t i = 0; i < PELIX_ARRAY_SIZE(floats_data); i++) {
            assert_int_equal(pelix_props_set_double(p, floats_data[i].key, floats_data[i].value),
                             0);
        }
    } else if (strcmp(name, "scalars") == 0) {
        set_owned(p, "zero", LNG(0));
        set_owned(p, "one", LNG(1));
        set_owned(p, "minus", LNG(-1));
        set_owned(p, "int64_min", LNG(INT64_MIN));
        set_owned(p, "int64_max", LNG(INT64_MAX));
        set_owned(p, "big53", LNG(9007199254740993LL));
        set_owned(p, "yes", BOOL(true));
        set_owned(p, "no", BOOL(false));
    } else if (strcmp(name, "lists") == 0) {
        set_owned(p, "empty", list_of(0));
        set_owned(p, "strings", list_of(3, STR("a"), STR("b\"c"), STR("\xC3\xA9")));
        set_owned(p, "mixed", list_of(4, LNG(1), DBL(2.5), BOOL(true), STR("x")));
        set_owned(p, "nested",
                  list_of(3, list_of(0),
                          list_of(2, LNG(1), list_of(2, DBL(2.5), list_of(1, STR("deep")))),
                          list_of(1, STR("z"))));
        set_owned(p, "single", list_of(1, BOOL(false)));
    } else if (strcmp(name, "config") == 0) {
        set_owned(p, "service.pid", STR("mqtt.connector.main"));
        set_owned(p, "host", STR("127.0.0.1"));
        set_owned(p, "port", LNG(1883));
        set_owned(p, "keepalive", LNG(60));
        set_owned(p, "tls", BOOL(false));
        set_owned(p, "ratio", DBL(0.5));
        set_owned(p, "topics", list_of(2, STR("pelix/#"), STR("sensors/+/temp")));
    } else {
        assert_string_equal(name, "empty");
    }
    return p;
}

static const char *const fixtures[] = {"empty", "strings", "floats", "scalars", "lists", "config"};

/* ---- output ---------------------------------------------------------------------------------- */

static void test_json_matches_python(void **state)
{
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(fixtures); i++) {
        char *expect = read_fixture(fixtures[i]);
        pelix_props_t *built = build(fixtures[i]);
        pelix_props_t *read = parse(expect);
        char *from_built = dump(built), *from_read = dump(read);

        /* Same bytes as Python, whether the data was built here or read from Python's text. */
        assert_string_equal(from_built, expect);
        assert_string_equal(from_read, expect);
        /* And the text reads back as the same data, types included (1 is not 1.0). */
        assert_true(pelix_props_equal(read, built));
        for (size_t k = 0; k < pelix_props_size(built); k++) {
            const pelix_value_t *a = pelix_props_value_at(built, k);
            const pelix_value_t *b = pelix_props_value_at(read, k);
            assert_string_equal(pelix_props_key_at(built, k), pelix_props_key_at(read, k));
            assert_int_equal(pelix_value_type(a), pelix_value_type(b));
            if (pelix_value_type(a) == PELIX_TYPE_DOUBLE) {
                /* -0.0 == 0.0, so compare the sign too. */
                assert_int_equal(!!signbit(pelix_value_double(a)),
                                 !!signbit(pelix_value_double(b)));
            }
        }
        free(expect);
        free(from_built);
        free(from_read);
        pelix_props_free(built);
        pelix_props_free(read);
    }
}

static void test_json_fixture_values(void **state)
{
    char *text = read_fixture("scalars");
    pelix_props_t *p = parse(text);
    (void)state;

    /* Spot checks that do not rely on the C-built side. */
    assert_true(pelix_props_get_long(p, "int64_min", 0) == INT64_MIN);
    assert_true(pelix_props_get_long(p, "int64_max", 0) == INT64_MAX);
    assert_true(pelix_props_get_long(p, "big53", 0) == 9007199254740993LL);
    assert_int_equal(pelix_value_type(pelix_props_get(p, "yes")), PELIX_TYPE_BOOL);
    assert_true(pelix_props_get_bool(p, "yes", false));
    free(text);
    pelix_props_free(p);

    text = read_fixture("strings");
    p = parse(text);
    assert_string_equal(pelix_props_get_string(p, "emoji", NULL), "\xF0\x9F\x98\x80");
    assert_string_equal(pelix_props_get_string(p, "controls", NULL), "\b\f\n\r\t\x01\x1f");
    assert_string_equal(pelix_props_get_string(p, "del", NULL), "x\x7fy");
    assert_string_equal(pelix_props_key_at(p, pelix_props_size(p) - 1), "slash");
    assert_non_null(pelix_props_get(p, "CL\xC3\xA9"));
    free(text);
    pelix_props_free(p);

    text = read_fixture("floats");
    p = parse(text);
    assert_int_equal(pelix_value_type(pelix_props_get(p, "f1")), PELIX_TYPE_DOUBLE);
    assert_true(pelix_props_get_double(p, "f1e16", 0) == 1e16);
    assert_true(pelix_props_get_double(p, "fmin", 0) == 0x1p-1074);
    assert_true(signbit(pelix_props_get_double(p, "fneg0", 1)));
    free(text);
    pelix_props_free(p);
}

static void test_json_double_format(void **state)
{
    /* Python's repr() of each double (python3 -c 'print(repr(x))'). */
    static const struct {
        double d;
        const char *repr;
    } cases[] = {
        {0.1, "0.1"},
        {1.0, "1.0"},
        {1e16, "1e+16"},
        {1e15, "1000000000000000.0"},
        {1.5e-07, "1.5e-07"},
        {0.0001, "0.0001"},
        {0.001, "0.001"},
        {1e-05, "1e-05"},
        {-0.0, "-0.0"},
        {0.0, "0.0"},
        {100.0, "100.0"},
        {-123.456, "-123.456"},
        {123456789.123, "123456789.123"},
        {2.5e300, "2.5e+300"},
        {9999999999999998.0, "9999999999999998.0"},
        {0.3, "0.3"},
        {2.0 / 3.0, "0.6666666666666666"},
        {1e22, "1e+22"},
        {1e23, "1e+23"},
        {12345678901234567890.0, "1.2345678901234567e+19"},
        {0x1p-1074, "5e-324"},
        {0x1p-1022, "2.2250738585072014e-308"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        /* Powers of two whose shortest repr is not the correctly rounded one of its length. */
        {0x1p-1017, "7.120236347223045e-307"},
        {0x1p-1007, "7.291122019556398e-304"},
        {0x1p-957, "8.209073602596753e-289"},
        {0x1p-921, "5.641232424577593e-278"},
        {0x1p-808, "5.858190679279809e-244"},
    };
    char out[32];
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(cases); i++) {
        props__format_double(cases[i].d, out);
        assert_string_equal(out, cases[i].repr);
        /* The text reads back as the same double. */
        assert_true(strtod(out, NULL) == cases[i].d);
    }
}

static void test_json_output_args(void **state)
{
    pelix_props_t *p = pelix_props_new();
    char *json = (char *)"untouched";
    (void)state;

    assert_int_equal(pelix_props_to_json(NULL, &json), -EINVAL);
    assert_int_equal(pelix_props_to_json(p, NULL), -EINVAL);
    assert_string_equal(json, "untouched");
    json = dump(p);
    assert_string_equal(json, "{}");
    free(json);
    pelix_props_free(p);
}

/* ---- input ----------------------------------------------------------------------------------- */

/* Parses `text`, which must fail with `code`, a text containing `needle`, and `position`. */
static void parse_fails(const char *text, int code, long position, const char *needle)
{
    pelix_props_t *p = (pelix_props_t *)&p; /* sentinel: must stay untouched */
    pelix_error_t err = PELIX_ERROR_INIT;

    assert_int_equal(pelix_props_from_json(text, strlen(text), &p, &err), code);
    assert_ptr_equal(p, (pelix_props_t *)&p);
    assert_int_equal(err.code, code);
    assert_int_equal(err.position, position);
    if (!strstr(err.text, needle)) {
        fail_msg("error text '%s' lacks '%s'", err.text, needle);
    }
}

static void test_json_syntax_errors(void **state)
{
    (void)state;

    /* Syntax errors give the line, as position and in the text. */
    parse_fails("{\n  \"a\": 1,\n  \"b\": \n}", PELIX_E_JSON, 4, "line 4, column 1");
    parse_fails("{\n\"a\": 1\n\"b\": 2}", PELIX_E_JSON, 3, "line 3");
    parse_fails("{\"a\": 1,}", PELIX_E_JSON, 1, "line 1");
    parse_fails("{", PELIX_E_JSON, 1, "end of file");
    parse_fails("", PELIX_E_JSON, 1, "line 1");
    parse_fails("{\"a\": 1} x", PELIX_E_JSON, 1, "end of file expected");
    parse_fails("{\"a\": NaN}", PELIX_E_JSON, 1, "invalid token");
    parse_fails("{'a': 1}", PELIX_E_JSON, 1, "line 1");
    parse_fails("{\n\n\n\n\"a\": tru}", PELIX_E_JSON, 5, "line 5");
}

static void test_json_structure_errors(void **state)
{
    (void)state;

    parse_fails("[1, 2]", PELIX_E_JSON, 1, "the top level is not a JSON object");
    parse_fails("42", PELIX_E_JSON, 1, "'[' or '{' expected");
    parse_fails("\"text\"", PELIX_E_JSON, 1, "'[' or '{' expected");
    parse_fails("{\"port\": null}", PELIX_E_JSON, -1, "port: null is not a property value");
    parse_fails("{\"l\": [1, [null]]}", PELIX_E_JSON, -1, "l: null is not a property value");
    parse_fails("{\"a\": {\"b\": 1}}", PELIX_E_JSON, -1, "a: objects are not property values");
    parse_fails("{\"l\": [[{}]]}", PELIX_E_JSON, -1, "l: objects are not property values");
    parse_fails("{\"Host\": \"a\", \"host\": \"b\"}", PELIX_E_JSON, -1,
                "property names 'Host' and 'host' differ only in case");
    parse_fails("{\"ok\": 1, \"\": 1}", PELIX_E_JSON, -1, "empty property name");
}

static void test_json_value_errors(void **state)
{
    (void)state;

    parse_fails("{\"a\": 9223372036854775808}", PELIX_E_JSON, 1, "too big integer");
    parse_fails("{\"a\": -9223372036854775809}", PELIX_E_JSON, 1, "too big negative integer");
    parse_fails("{\"a\": [1, 99999999999999999999999]}", PELIX_E_JSON, 1, "too big integer");
    parse_fails("{\"a\": 1e400}", PELIX_E_JSON, 1, "real number overflow");
    /* Strings: NUL, lone surrogate, invalid UTF-8, NUL in a key. */
    parse_fails("{\"a\": \"x\\u0000y\"}", PELIX_E_JSON, 1, "\\u0000");
    parse_fails("{\"a\": \"\\ud800\"}", PELIX_E_JSON, 1, "invalid Unicode");
    parse_fails("{\"a\": \"\xff\"}", PELIX_E_JSON, 1, "unable to decode byte 0xff");
    parse_fails("{\"a\": \"\xC0\x80\"}", PELIX_E_JSON, 1, "line 1");
    parse_fails("{\"a\\u0000b\": 1}", PELIX_E_JSON, 1, "line 1");
}

static void test_json_input_args(void **state)
{
    const char *ok = "{\"a\": 1}trailing garbage";
    pelix_props_t *p = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    (void)state;

    assert_int_equal(pelix_props_from_json(NULL, 0, &p, &err), -EINVAL);
    assert_int_equal(err.code, -EINVAL);
    assert_int_equal(pelix_props_from_json("{}", 2, NULL, NULL), -EINVAL);
    assert_null(p);

    /* Only `len` bytes are read: the text need not be NUL-terminated. */
    assert_int_equal(pelix_props_from_json(ok, 8, &p, NULL), 0);
    assert_true(pelix_props_get_long(p, "a", 0) == 1);
    p = pelix_props_free(p);
    assert_int_equal(pelix_props_from_json(ok, 9, &p, &err), PELIX_E_JSON);
    assert_null(p);

    assert_int_equal(pelix_props_from_json("{}", 2, &p, NULL), 0);
    assert_int_equal(pelix_props_size(p), 0);
    pelix_props_free(p);
}

static void test_json_round_trip(void **state)
{
    /* Not in Python's layout: compact, unsorted, escapes of every kind, exponents, -0. */
    static const char text[] =
        "{\"z\":\"\\u00e9\\/\\\"\\\\\\b\\f\\n\\r\\t\\u0001\xC3\xA9\\ud83d\\ude00\","
        "\"Num\":-0,\"real\":1E2,\"neg0\":-0.0,\"tiny\":4.9e-324,\"big\":1.5e+300,"
        "\"l\":[[],[[1,\"a\"]],true,false,0.5],\"pid\":\"a.b\",\"max\":9223372036854775807}";
    pelix_props_t *a, *b;
    char *ja, *jb;
    (void)state;

    a = parse(text);
    assert_int_equal(pelix_props_size(a), 9);
    assert_string_equal(pelix_props_get_string(a, "z", NULL),
                        "\xC3\xA9/\"\\\b\f\n\r\t\x01\xC3\xA9\xF0\x9F\x98\x80");
    assert_int_equal(pelix_value_type(pelix_props_get(a, "num")), PELIX_TYPE_LONG);
    assert_int_equal(pelix_value_type(pelix_props_get(a, "real")), PELIX_TYPE_DOUBLE);
    assert_true(pelix_props_get_double(a, "real", 0) == 100.0);
    assert_true(signbit(pelix_props_get_double(a, "neg0", 0)));
    assert_true(pelix_props_get_double(a, "tiny", 0) == 0x1p-1074);

    ja = dump(a);
    b = parse(ja);
    assert_true(pelix_props_equal(a, b));
    jb = dump(b);
    assert_string_equal(ja, jb);
    assert_non_null(strstr(ja, "\"z\": \"\\u00e9/\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u00e9"
                               "\\ud83d\\ude00\""));
    assert_non_null(strstr(ja, "\"neg0\": -0.0"));
    assert_non_null(strstr(ja, "\"real\": 100.0"));
    assert_non_null(strstr(ja, "\"tiny\": 5e-324"));
    assert_non_null(strstr(ja, "\"Num\": 0,"));
    free(ja);
    free(jb);
    pelix_props_free(a);
    pelix_props_free(b);
}

/* ---- allocation failures --------------------------------------------------------------------- */

static void test_json_oom(void **state)
{
    char *text = read_fixture("lists");
    long n, to_rounds = 0, from_rounds = 0;
    pelix_props_t *p = parse(text);
    (void)state;

    /* Writing. */
    for (n = 0;; n++) {
        char *json = NULL;
        int rc;
        pelix__alloc_fail_after(n);
        rc = pelix_props_to_json(p, &json);
        pelix__alloc_fail_after(-1);
        if (rc == 0) {
            assert_string_equal(json, text);
            free(json);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_null(json);
        to_rounds++;
    }
    pelix_props_free(p);

    /* Reading. */
    for (n = 0;; n++) {
        pelix_props_t *r = NULL;
        pelix_error_t err = PELIX_ERROR_INIT;
        int rc;
        pelix__alloc_fail_after(n);
        rc = pelix_props_from_json(text, strlen(text), &r, &err);
        pelix__alloc_fail_after(-1);
        if (rc == 0) {
            char *json = dump(r);
            assert_string_equal(json, text);
            free(json);
            pelix_props_free(r);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(err.code, -ENOMEM);
        assert_null(r);
        from_rounds++;
    }
    /* Both operations allocate: the sweeps did inject failures. */
    assert_true(to_rounds > 0);
    assert_true(from_rounds > 10);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_matches_python),
        cmocka_unit_test(test_json_fixture_values),
        cmocka_unit_test(test_json_double_format),
        cmocka_unit_test(test_json_output_args),
        cmocka_unit_test(test_json_syntax_errors),
        cmocka_unit_test(test_json_structure_errors),
        cmocka_unit_test(test_json_value_errors),
        cmocka_unit_test(test_json_input_args),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test_teardown(test_json_oom, reset_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
