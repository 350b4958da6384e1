/*
 * Unit tests of values and properties: typed access, case-insensitive keys, ordering, copies,
 * strict equality, input validation, secret keys, and an allocation-failure sweep over building,
 * copying, writing, reading and coercing. JSON details are in test_props_json.c, coercion in
 * test_props_coerce.c.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "props/freeze.h"
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

/* ---- values ---------------------------------------------------------------------------------- */

static void test_value_scalars(void **state)
{
    pelix_value_t *s = pelix_value_new_string("h\xC3\xA9llo");
    pelix_value_t *l = pelix_value_new_long(INT64_MIN);
    pelix_value_t *d = pelix_value_new_double(2.5);
    pelix_value_t *b = pelix_value_new_bool(true);
    (void)state;

    assert_int_equal(pelix_value_type(s), PELIX_TYPE_STRING);
    assert_string_equal(pelix_value_string(s), "h\xC3\xA9llo");
    assert_int_equal(pelix_value_type(l), PELIX_TYPE_LONG);
    assert_true(pelix_value_long(l) == INT64_MIN);
    assert_int_equal(pelix_value_type(d), PELIX_TYPE_DOUBLE);
    assert_true(pelix_value_double(d) == 2.5);
    assert_int_equal(pelix_value_type(b), PELIX_TYPE_BOOL);
    assert_true(pelix_value_bool(b));

    /* Accessors of another type give their neutral value; a long reads as a double. */
    assert_null(pelix_value_string(l));
    assert_int_equal(pelix_value_long(s), 0);
    assert_int_equal(pelix_value_long(d), 0);
    assert_true(pelix_value_double(l) == (double)INT64_MIN);
    assert_true(pelix_value_double(s) == 0.0);
    assert_false(pelix_value_bool(l));
    assert_int_equal(pelix_value_list_size(s), 0);
    assert_null(pelix_value_list_at(s, 0));
    assert_int_equal(pelix_value_type(NULL), 0);
    assert_null(pelix_value_string(NULL));

    /* Invalid input is refused. */
    assert_null(pelix_value_new_string(NULL));
    assert_null(pelix_value_new_string("bad \xC0\x80"));
    assert_null(pelix_value_new_string("\xED\xA0\x80"));
    assert_null(pelix_value_new_double(NAN));
    assert_null(pelix_value_new_double(INFINITY));
    assert_null(pelix_value_new_double(-INFINITY));
    assert_null(pelix_value_free(NULL));

    pelix_value_free(s);
    pelix_value_free(l);
    pelix_value_free(d);
    assert_null(pelix_value_free(b));
}

static void test_value_lists(void **state)
{
    static const char *const items[] = {"a", "b", "\xE2\x82\xAC"};
    static const char *const bad_items[] = {"a", "\xFF"};
    pelix_value_t *list = pelix_value_new_list();
    pelix_value_t *inner = pelix_value_new_strings(items, 3);
    pelix_value_t *scalar = pelix_value_new_long(1);
    pelix_value_t *empty;
    (void)state;

    assert_int_equal(pelix_value_type(list), PELIX_TYPE_LIST);
    assert_int_equal(pelix_value_list_size(list), 0);
    assert_int_equal(pelix_value_list_size(inner), 3);
    assert_string_equal(pelix_value_string(pelix_value_list_at(inner, 2)), "\xE2\x82\xAC");
    assert_null(pelix_value_list_at(inner, 3));

    for (int i = 0; i < 20; i++) {
        assert_int_equal(pelix_value_list_append(list, pelix_value_new_long(i)), 0);
    }
    assert_int_equal(pelix_value_list_append(list, inner), 0); /* nested list */
    assert_int_equal(pelix_value_list_size(list), 21);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(pelix_value_long(pelix_value_list_at(list, (size_t)i)), i);
    }
    assert_string_equal(pelix_value_string(pelix_value_list_at(pelix_value_list_at(list, 20), 0)),
                        "a");

    /* Appending to a non-list, or appending NULL, fails; the item is consumed (ASan: no leak). */
    assert_int_equal(pelix_value_list_append(scalar, pelix_value_new_long(2)), -EINVAL);
    assert_int_equal(pelix_value_list_append(NULL, pelix_value_new_long(2)), -EINVAL);
    assert_int_equal(pelix_value_list_append(list, NULL), -EINVAL);
    assert_int_equal(pelix_value_list_size(list), 21);

    assert_null(pelix_value_new_strings(bad_items, 2));
    assert_null(pelix_value_new_strings(NULL, 2));
    empty = pelix_value_new_strings(NULL, 0);
    assert_int_equal(pelix_value_type(empty), PELIX_TYPE_LIST);
    assert_int_equal(pelix_value_list_size(empty), 0);

    pelix_value_free(empty);
    pelix_value_free(scalar);
    pelix_value_free(list);
}

static void test_value_equal_and_copy(void **state)
{
    static const char *const ab[] = {"a", "b"};
    static const char *const abc[] = {"a", "b", "c"};
    static const char *const ax[] = {"a", "x"};
    pelix_value_t *one = pelix_value_new_long(1), *onef = pelix_value_new_double(1.0);
    pelix_value_t *t = pelix_value_new_bool(true), *s1 = pelix_value_new_string("1");
    pelix_value_t *l1 = pelix_value_new_strings(ab, 2), *l2 = pelix_value_new_strings(ab, 2);
    pelix_value_t *l3 = pelix_value_new_strings(abc, 3), *l4 = pelix_value_new_strings(ax, 2);
    pelix_value_t *nested = pelix_value_new_list(), *copy;
    (void)state;

    /* Strict: same type and content. */
    assert_false(pelix_value_equal(one, onef));
    assert_false(pelix_value_equal(one, t));
    assert_false(pelix_value_equal(one, s1));
    assert_true(pelix_value_equal(one, one));
    assert_true(pelix_value_equal(l1, l2));
    assert_false(pelix_value_equal(l1, l3));
    assert_false(pelix_value_equal(l1, l4));
    assert_true(pelix_value_equal(NULL, NULL));
    assert_false(pelix_value_equal(one, NULL));
    assert_false(pelix_value_equal(NULL, one));

    /* Deep copies are equal and independent of the original. */
    assert_int_equal(pelix_value_list_append(nested, l1), 0);
    assert_int_equal(pelix_value_list_append(nested, pelix_value_new_list()), 0);
    assert_int_equal(pelix_value_list_append(nested, pelix_value_copy(onef)), 0);
    copy = pelix_value_copy(nested);
    assert_non_null(copy);
    assert_ptr_not_equal(pelix_value_list_at(copy, 0), l1);
    assert_true(pelix_value_equal(copy, nested));
    nested = pelix_value_free(nested);
    assert_string_equal(pelix_value_string(pelix_value_list_at(pelix_value_list_at(copy, 0), 1)),
                        "b");
    assert_true(pelix_value_equal(pelix_value_list_at(copy, 0), l2));
    assert_null(pelix_value_copy(NULL));

    pelix_value_free(copy);
    pelix_value_free(one);
    pelix_value_free(onef);
    pelix_value_free(t);
    pelix_value_free(s1);
    pelix_value_free(l2);
    pelix_value_free(l3);
    pelix_value_free(l4);
}

static void check_display(pelix_value_t *v, const char *expect)
{
    char *s;

    assert_non_null(v);
    s = pelix_value_to_string(v);
    assert_non_null(s);
    assert_string_equal(s, expect);
    free(s);
    pelix_value_free(v);
}

static void test_value_to_string(void **state)
{
    pelix_value_t *list = pelix_value_new_list(), *inner = pelix_value_new_list();
    (void)state;

    check_display(pelix_value_new_string("plain text"), "plain text");
    check_display(pelix_value_new_string(""), "");
    check_display(pelix_value_new_long(-42), "-42");
    check_display(pelix_value_new_long(INT64_MAX), "9223372036854775807");
    check_display(pelix_value_new_double(1.0), "1.0");
    check_display(pelix_value_new_double(0.1), "0.1");
    check_display(pelix_value_new_double(1e16), "1e+16");
    check_display(pelix_value_new_double(-0.0), "-0.0");
    check_display(pelix_value_new_bool(false), "false");
    check_display(pelix_value_new_list(), "[]");

    assert_int_equal(pelix_value_list_append(list, pelix_value_new_string("a")), 0);
    assert_int_equal(pelix_value_list_append(list, pelix_value_new_long(1)), 0);
    assert_int_equal(pelix_value_list_append(inner, pelix_value_new_bool(true)), 0);
    assert_int_equal(pelix_value_list_append(inner, pelix_value_new_double(2.5)), 0);
    assert_int_equal(pelix_value_list_append(list, inner), 0);
    check_display(list, "[\"a\", 1, [true, 2.5]]");
    assert_null(pelix_value_to_string(NULL));

    /* Strings inside lists are JSON strings: quotes and control characters escaped. */
    list = pelix_value_new_list();
    assert_int_equal(pelix_value_list_append(list, pelix_value_new_string("say \"hi\"\n")), 0);
    assert_int_equal(pelix_value_list_append(list, pelix_value_new_string("\xc3\xa9")), 0);
    check_display(list, "[\"say \\\"hi\\\"\\n\", \"\\u00e9\"]");
}

/* ---- properties ------------------------------------------------------------------------------ */

static void test_props_typed_set_get(void **state)
{
    static const char *const topics[] = {"a/#", "b/+/c"};
    pelix_props_t *p = pelix_props_new();
    const pelix_value_t *v;
    (void)state;

    assert_non_null(p);
    assert_int_equal(pelix_props_size(p), 0);
    assert_int_equal(pelix_props_set_string(p, "host", "broker"), 0);
    assert_int_equal(pelix_props_set_long(p, "port", 1883), 0);
    assert_int_equal(pelix_props_set_double(p, "ratio", 0.25), 0);
    assert_int_equal(pelix_props_set_bool(p, "tls", true), 0);
    assert_int_equal(pelix_props_set_strings(p, "topics", topics, 2), 0);
    assert_int_equal(pelix_props_set_long(p, "min", INT64_MIN), 0);
    assert_int_equal(pelix_props_size(p), 6);

    assert_string_equal(pelix_props_get_string(p, "host", NULL), "broker");
    assert_true(pelix_props_get_long(p, "port", 0) == 1883);
    assert_true(pelix_props_get_long(p, "min", 0) == INT64_MIN);
    assert_true(pelix_props_get_double(p, "ratio", 0.0) == 0.25);
    assert_true(pelix_props_get_bool(p, "tls", false));
    v = pelix_props_get(p, "topics");
    assert_int_equal(pelix_value_type(v), PELIX_TYPE_LIST);
    assert_int_equal(pelix_value_list_size(v), 2);
    assert_string_equal(pelix_value_string(pelix_value_list_at(v, 1)), "b/+/c");
    assert_int_equal(pelix_value_type(pelix_props_get(p, "port")), PELIX_TYPE_LONG);
    assert_int_equal(pelix_value_type(pelix_props_get(p, "ratio")), PELIX_TYPE_DOUBLE);

    /* Replacing changes the type too. */
    assert_int_equal(pelix_props_set_string(p, "port", "1884"), 0);
    assert_int_equal(pelix_props_size(p), 6);
    assert_string_equal(pelix_props_get_string(p, "port", NULL), "1884");
    assert_true(pelix_props_get_long(p, "port", -1) == -1);
    pelix_props_free(p);
}

static void test_props_getter_defaults(void **state)
{
    pelix_props_t *p = pelix_props_new();
    (void)state;

    assert_int_equal(pelix_props_set_string(p, "s", "text"), 0);
    assert_int_equal(pelix_props_set_long(p, "l", 7), 0);
    assert_int_equal(pelix_props_set_double(p, "d", 1.5), 0);
    assert_int_equal(pelix_props_set_bool(p, "b", false), 0);

    /* Absent keys. */
    assert_string_equal(pelix_props_get_string(p, "none", "def"), "def");
    assert_true(pelix_props_get_long(p, "none", 5) == 5);
    assert_true(pelix_props_get_double(p, "none", 0.5) == 0.5);
    assert_true(pelix_props_get_bool(p, "none", true));
    assert_null(pelix_props_get(p, "none"));
    assert_null(pelix_props_get(p, NULL));
    /* Wrong types. */
    assert_string_equal(pelix_props_get_string(p, "l", "def"), "def");
    assert_true(pelix_props_get_long(p, "s", 5) == 5);
    assert_true(pelix_props_get_long(p, "d", 5) == 5);
    assert_true(pelix_props_get_long(p, "b", 5) == 5);
    assert_true(pelix_props_get_double(p, "s", 0.5) == 0.5);
    assert_true(pelix_props_get_double(p, "b", 0.5) == 0.5);
    assert_true(pelix_props_get_double(p, "l", 0.5) == 7.0); /* longs read as doubles */
    assert_true(pelix_props_get_bool(p, "l", true));
    assert_true(pelix_props_get_bool(p, "s", true));
    assert_false(pelix_props_get_bool(p, "b", true));
    /* NULL props. */
    assert_string_equal(pelix_props_get_string(NULL, "s", "def"), "def");
    assert_true(pelix_props_get_long(NULL, "l", 3) == 3);
    assert_int_equal(pelix_props_size(NULL), 0);
    pelix_props_free(p);
}

static void test_props_case_insensitive(void **state)
{
    pelix_props_t *p = pelix_props_new();
    (void)state;

    assert_int_equal(pelix_props_set_string(p, "host", "old"), 0);
    assert_int_equal(pelix_props_set_string(p, "zz", "z"), 0);
    assert_string_equal(pelix_props_get_string(p, "HOST", NULL), "old");
    assert_string_equal(pelix_props_get_string(p, "hOsT", NULL), "old");

    /* One entry, the new spelling and value; sorted again under its new spelling. */
    assert_int_equal(pelix_props_set_string(p, "Host", "new"), 0);
    assert_int_equal(pelix_props_size(p), 2);
    assert_string_equal(pelix_props_key_at(p, 0), "Host");
    assert_string_equal(pelix_props_get_string(p, "host", NULL), "new");
    assert_props_same(p, "{\n    \"Host\": \"new\",\n    \"zz\": \"z\"\n}");

    assert_int_equal(pelix_props_set_long(p, "HOST", 1), 0);
    assert_int_equal(pelix_props_size(p), 2);
    assert_string_equal(pelix_props_key_at(p, 0), "HOST");
    assert_true(pelix_props_get_long(p, "host", 0) == 1);

    /* Non-ASCII letters do not fold. */
    assert_int_equal(pelix_props_set_long(p, "\xC3\xA9", 1), 0);
    assert_int_equal(pelix_props_set_long(p, "\xC3\x89", 2), 0);
    assert_int_equal(pelix_props_size(p), 4);

    assert_int_equal(pelix_props_remove(p, "hoSt"), 0);
    assert_null(pelix_props_get(p, "host"));
    assert_int_equal(pelix_props_size(p), 3);
    pelix_props_free(p);
}

static void test_props_remove(void **state)
{
    pelix_props_t *p = pelix_props_new();
    (void)state;

    assert_int_equal(pelix_props_remove(p, "a"), -ENOENT);
    assert_int_equal(pelix_props_set_long(p, "a", 1), 0);
    assert_int_equal(pelix_props_set_long(p, "b", 2), 0);
    assert_int_equal(pelix_props_set_long(p, "c", 3), 0);
    assert_int_equal(pelix_props_remove(p, "b"), 0);
    assert_int_equal(pelix_props_remove(p, "b"), -ENOENT);
    assert_int_equal(pelix_props_size(p), 2);
    assert_string_equal(pelix_props_key_at(p, 0), "a");
    assert_string_equal(pelix_props_key_at(p, 1), "c");
    assert_true(pelix_props_get_long(p, "c", 0) == 3);
    assert_int_equal(pelix_props_remove(p, "c"), 0);
    assert_int_equal(pelix_props_remove(p, "a"), 0);
    assert_int_equal(pelix_props_size(p), 0);
    assert_int_equal(pelix_props_remove(NULL, "a"), -EINVAL);
    assert_int_equal(pelix_props_remove(p, NULL), -EINVAL);
    /* Still usable once empty. */
    assert_int_equal(pelix_props_set_long(p, "a", 4), 0);
    assert_true(pelix_props_get_long(p, "A", 0) == 4);
    pelix_props_free(p);
}

static void test_props_key_order(void **state)
{
    /* Inserted out of order; iteration follows strcmp() of the key bytes. */
    static const char *const keys[] = {
        "zeta", "a.b", "B", "\xC3\xA9t\xC3\xA9", "a0", "_x", "Z", "a", "10", "2", "a-b"};
    static const char *const sorted[] = {
        "10", "2", "B", "Z", "_x", "a", "a-b", "a.b", "a0", "zeta", "\xC3\xA9t\xC3\xA9"};
    pelix_props_t *p = pelix_props_new();
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(keys); i++) {
        assert_int_equal(pelix_props_set_long(p, keys[i], (int64_t)i), 0);
    }
    assert_int_equal(pelix_props_size(p), PELIX_ARRAY_SIZE(sorted));
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(sorted); i++) {
        const char *k = pelix_props_key_at(p, i);
        assert_string_equal(k, sorted[i]);
        assert_ptr_equal(pelix_props_value_at(p, i), pelix_props_get(p, k));
    }
    assert_null(pelix_props_key_at(p, PELIX_ARRAY_SIZE(sorted)));
    assert_null(pelix_props_value_at(p, PELIX_ARRAY_SIZE(sorted)));
    assert_null(pelix_props_key_at(NULL, 0));
    pelix_props_free(p);
}

static void test_props_copy_equal(void **state)
{
    static const char *const items[] = {"x", "y"};
    pelix_props_t *a = pelix_props_new(), *b = NULL, *c = pelix_props_new(),
                  *e1 = pelix_props_new(), *e2 = pelix_props_new();
    (void)state;

    assert_int_equal(pelix_props_set_string(a, "Host", "h"), 0);
    assert_int_equal(pelix_props_set_long(a, "n", 1), 0);
    assert_int_equal(pelix_props_set_strings(a, "l", items, 2), 0);
    b = pelix_props_copy(a);
    assert_non_null(b);
    assert_true(pelix_props_equal(a, b));
    assert_ptr_not_equal(pelix_props_get(a, "l"), pelix_props_get(b, "l"));

    /* The copy is independent. */
    assert_int_equal(pelix_props_set_long(b, "n", 2), 0);
    assert_false(pelix_props_equal(a, b));
    assert_true(pelix_props_get_long(a, "n", 0) == 1);

    /* Strict types: 1 and 1.0 differ. */
    assert_int_equal(pelix_props_set_double(b, "n", 1.0), 0);
    assert_false(pelix_props_equal(a, b));
    assert_int_equal(pelix_props_set_long(b, "n", 1), 0);
    assert_true(pelix_props_equal(a, b));

    /* Keys compare ignoring case; sizes must match. */
    assert_int_equal(pelix_props_set_string(c, "host", "h"), 0);
    assert_int_equal(pelix_props_set_long(c, "N", 1), 0);
    assert_int_equal(pelix_props_set_strings(c, "L", items, 2), 0);
    assert_true(pelix_props_equal(a, c));
    assert_int_equal(pelix_props_set_bool(c, "extra", true), 0);
    assert_false(pelix_props_equal(a, c));
    assert_false(pelix_props_equal(c, a));

    assert_true(pelix_props_equal(e1, e2));
    assert_false(pelix_props_equal(a, e1));
    assert_true(pelix_props_equal(NULL, NULL));
    assert_false(pelix_props_equal(a, NULL));
    assert_null(pelix_props_copy(NULL));
    pelix_props_free(e2);
    e2 = pelix_props_copy(e1);
    assert_non_null(e2);
    assert_int_equal(pelix_props_size(e2), 0);

    pelix_props_free(a);
    pelix_props_free(b);
    pelix_props_free(c);
    pelix_props_free(e1);
    assert_null(pelix_props_free(e2));
    assert_null(pelix_props_free(NULL));
}

static void test_props_invalid_input(void **state)
{
    static const char *const bad_items[] = {"ok", "\xC3"};
    static const char *const null_items[] = {"ok", NULL};
    static const char *const bad_keys[] = {"", "\xFF", "k\xC0\xAF", "\xED\xA0\x80", "a\xE2\x82"};
    pelix_props_t *p = pelix_props_new();
    pelix_value_t *v = pelix_value_new_long(1);
    char *before;
    (void)state;

    assert_int_equal(pelix_props_set_string(p, "host", "h"), 0);
    assert_int_equal(pelix_props_set_long(p, "port", 1), 0);
    before = dump(p);

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(bad_keys); i++) {
        assert_int_equal(pelix_props_set_long(p, bad_keys[i], 1), -EINVAL);
        assert_int_equal(pelix_props_set_string(p, bad_keys[i], "x"), -EINVAL);
        assert_int_equal(pelix_props_set(p, bad_keys[i], v), -EINVAL);
    }
    assert_int_equal(pelix_props_set_long(p, NULL, 1), -EINVAL);
    assert_int_equal(pelix_props_set_long(NULL, "k", 1), -EINVAL);
    assert_int_equal(pelix_props_set_string(NULL, "k", "x"), -EINVAL);
    assert_int_equal(pelix_props_set(p, "k", NULL), -EINVAL);
    assert_int_equal(pelix_props_set(NULL, "k", v), -EINVAL);

    /* Invalid values, also when they would replace an existing entry. */
    assert_int_equal(pelix_props_set_string(p, "host", "\xC3\x28"), -EINVAL);
    assert_int_equal(pelix_props_set_string(p, "host", "\xF4\x90\x80\x80"), -EINVAL);
    assert_int_equal(pelix_props_set_string(p, "host", NULL), -EINVAL);
    assert_int_equal(pelix_props_set_strings(p, "host", bad_items, 2), -EINVAL);
    assert_int_equal(pelix_props_set_strings(p, "host", null_items, 2), -EINVAL);
    assert_int_equal(pelix_props_set_strings(p, "host", NULL, 1), -EINVAL);
    assert_int_equal(pelix_props_set_double(p, "port", NAN), -EINVAL);
    assert_int_equal(pelix_props_set_double(p, "port", INFINITY), -EINVAL);
    assert_int_equal(pelix_props_set_double(p, "port", -INFINITY), -EINVAL);

    assert_props_same(p, before);
    free(before);
    pelix_value_free(v);
    pelix_props_free(p);
}

static void test_props_nested_lists(void **state)
{
    pelix_props_t *p = pelix_props_new(), *c;
    pelix_value_t *outer = pelix_value_new_list(), *mid = pelix_value_new_list();
    pelix_value_t *inner = pelix_value_new_list();
    const pelix_value_t *got;
    (void)state;

    assert_int_equal(pelix_value_list_append(inner, pelix_value_new_string("deep")), 0);
    assert_int_equal(pelix_value_list_append(mid, pelix_value_new_double(2.5)), 0);
    assert_int_equal(pelix_value_list_append(mid, inner), 0);
    assert_int_equal(pelix_value_list_append(outer, pelix_value_new_list()), 0);
    assert_int_equal(pelix_value_list_append(outer, mid), 0);
    assert_int_equal(pelix_value_list_append(outer, pelix_value_new_bool(false)), 0);

    assert_int_equal(pelix_props_set(p, "nested", outer), 0);
    got = pelix_props_get(p, "nested");
    assert_ptr_not_equal(got, outer); /* the props hold a copy */
    assert_true(pelix_value_equal(got, outer));
    /* Changing the caller's value afterwards does not reach the props. */
    assert_int_equal(pelix_value_list_append(outer, pelix_value_new_long(9)), 0);
    assert_false(pelix_value_equal(got, outer));
    assert_int_equal(pelix_value_list_size(got), 3);
    assert_string_equal(pelix_value_string(pelix_value_list_at(
                            pelix_value_list_at(pelix_value_list_at(got, 1), 1), 0)),
                        "deep");

    c = pelix_props_copy(p);
    assert_true(pelix_props_equal(c, p));
    assert_props_same(p, "{\n    \"nested\": [\n        [],\n        [\n            2.5,\n"
                         "            [\n                \"deep\"\n            ]\n        ],\n"
                         "        false\n    ]\n}");
    pelix_props_free(c);
    pelix_value_free(outer);
    pelix_props_free(p);
}

static void test_props_key_aliasing(void **state)
{
    pelix_props_t *p = pelix_props_new();
    (void)state;

    /* The key given to set/remove may be the props' own, freed by the call (ASan checks). */
    assert_int_equal(pelix_props_set_long(p, "Key", 1), 0);
    assert_int_equal(pelix_props_set_long(p, pelix_props_key_at(p, 0), 2), 0);
    assert_string_equal(pelix_props_key_at(p, 0), "Key");
    assert_true(pelix_props_get_long(p, "key", 0) == 2);
    /* And the value may be the props' own. */
    assert_int_equal(pelix_props_set(p, "key", pelix_props_get(p, "KEY")), 0);
    assert_true(pelix_props_get_long(p, "key", 0) == 2);
    assert_int_equal(pelix_props_remove(p, pelix_props_key_at(p, 0)), 0);
    assert_int_equal(pelix_props_size(p), 0);

    /* Common keys (objectClass, host...) are shared by every props, not owned by one: copies,
     * replacements, removals and frees keep the other props' keys (ASan checks). */
    assert_int_equal(pelix_props_set_long(p, "objectClass", 1), 0);
    assert_int_equal(pelix_props_set_long(p, "host", 2), 0);
    pelix_props_t *c = pelix_props_copy(p);
    assert_non_null(c);
    assert_ptr_equal(pelix_props_key_at(c, 0), pelix_props_key_at(p, 0));
    assert_int_equal(pelix_props_set_long(p, pelix_props_key_at(c, 0), 3), 0);
    assert_int_equal(pelix_props_set_long(c, "OBJECTCLASS", 4), 0);
    assert_string_equal(pelix_props_key_at(c, 0), "OBJECTCLASS"); /* sorted by bytes */
    assert_int_equal(pelix_props_remove(p, "host"), 0);
    pelix_props_free(p);
    assert_string_equal(pelix_props_key_at(c, 1), "host");
    assert_true(pelix_props_get_long(c, "objectclass", 0) == 4);
    pelix_props_free(c);
}

static void test_props_frozen(void **state)
{
    const char *names[] = {"a", "bb"};
    pelix_props_t *p = pelix_props_new();
    pelix_value_t *nested = pelix_value_new_list();
    (void)state;

    assert_int_equal(pelix_props_set_string(p, "host", "broker.example"), 0);
    assert_int_equal(pelix_props_set_long(p, "port", 8883), 0);
    assert_int_equal(pelix_props_set_double(p, "Ratio", 0.5), 0);
    assert_int_equal(pelix_props_set_bool(p, "enabled", true), 0);
    assert_int_equal(pelix_props_set_string(p, "password", "s3cret"), 0);
    assert_int_equal(pelix_props_set_strings(p, "objectClass", names, 2), 0);
    assert_int_equal(pelix_value_list_append(nested, pelix_value_new_strings(names, 2)), 0);
    assert_int_equal(pelix_value_list_append(nested, pelix_value_new_list()), 0);
    assert_int_equal(pelix_props_set(p, "nested", nested), 0);
    pelix_value_free(nested);
    pelix_props_t *expect = pelix_props_copy(p);

    pelix_props_t *f = props__freeze(p); /* consumes p */
    assert_non_null(f);
    assert_true(props__frozen(f));
    assert_true(pelix_props_equal(f, expect));
    char *a = dump(f), *b = dump(expect);
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_string_equal(pelix_props_get_string(f, "HOST", NULL), "broker.example");
    assert_true(pelix_props_get_long(f, "port", 0) == 8883);
    const pelix_value_t *oc = pelix_props_get(f, "objectclass");
    assert_int_equal(pelix_value_list_size(oc), 2);
    assert_string_equal(pelix_value_string(pelix_value_list_at(oc, 1)), "bb");

    /* Read only: nothing changes it. */
    assert_int_equal(pelix_props_set_long(f, "port", 1), -EINVAL);
    assert_int_equal(pelix_props_set_long(f, "other", 1), -EINVAL);
    assert_int_equal(pelix_props_remove(f, "port"), -EINVAL);
    assert_true(pelix_props_equal(f, expect));

    /* A copy is an ordinary props. */
    pelix_props_t *c = pelix_props_copy(f);
    assert_false(props__frozen(c));
    assert_int_equal(pelix_props_set_long(c, "port", 1), 0);
    assert_int_equal(pelix_props_remove(c, "nested"), 0);
    pelix_props_free(c);

    /* Empty or NULL: returned as they are. */
    pelix_props_t *empty = pelix_props_new();
    assert_ptr_equal(props__freeze(empty), empty);
    assert_int_equal(pelix_props_set_long(empty, "x", 1), 0);
    pelix_props_free(empty);
    assert_null(props__freeze(NULL));

    pelix_props_free(f); /* one block (ASan and LeakSanitizer check) */
    pelix_props_free(expect);
}

static void test_secret_keys(void **state)
{
    static const char *const secret[] = {
        "password",  "PASSWORD",      "Password",    "tls_key_password", "db_PASSWORD",
        "_password", "client_secret", "mysecretkey", "SECRET",           "x.Secret.y"};
    static const char *const plain[] = {"passwd",    "user",  "mypassword", "password_hint",
                                        "pass_word", "secre", "",           "host"};
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(secret); i++) {
        assert_true(pelix_props_is_secret_key(secret[i]));
    }
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(plain); i++) {
        assert_false(pelix_props_is_secret_key(plain[i]));
    }
    assert_false(pelix_props_is_secret_key(NULL));

    /* Long keys are looked at whole. */
    char key[600];
    memset(key, 'k', sizeof(key));
    strcpy(key + 400, "_password");
    assert_true(pelix_props_is_secret_key(key));
    strcpy(key + 400, "_Secret_x");
    assert_true(pelix_props_is_secret_key(key));
    strcpy(key + 400, "_passwords");
    assert_false(pelix_props_is_secret_key(key));
}

/* ---- allocation failures --------------------------------------------------------------------- */

#define OOM_JSON                                                                                   \
    "{\n    \"host\": \"broker.local\",\n    \"keepalive\": 60,\n    \"nested\": [\n        1,\n"  \
    "        [\n            \"x\",\n            \"y\"\n        ],\n        2.5\n    ],\n"          \
    "    \"port\": 1883,\n    \"ratio\": 0.25,\n    \"tls\": true,\n    \"topics\": [\n"           \
    "        \"a/#\",\n        \"b/+\"\n    ]\n}"

/* Builds, copies, writes, reads and coerces props; 0 or the first error (-ENOMEM expected). */
static int oom_operation(char **ret_json)
{
    static const char *const topics[] = {"a/#", "b/+"};
    static const char *const xy[] = {"x", "y"};
    static const pelix_prop_schema_t s[] = {
        {"port", PELIX_TYPE_LONG, true, true, 1, 65535},
        {"tls", PELIX_TYPE_BOOL, false, false, 0, 0},
        {"host", PELIX_TYPE_STRING, true, false, 0, 0},
    };
    pelix_props_t *p = pelix_props_new(), *c = NULL, *back = NULL;
    pelix_value_t *list = pelix_value_new_list(), *item;
    pelix_error_t err = PELIX_ERROR_INIT;
    char *json = NULL;
    int rc = -ENOMEM;

    if (!p || !list) {
        goto out;
    }
    if ((rc = pelix_props_set_string(p, "host", "broker.local")) < 0 ||
        (rc = pelix_props_set_string(p, "port", "1883")) < 0 ||
        (rc = pelix_props_set_long(p, "keepalive", 60)) < 0 ||
        (rc = pelix_props_set_double(p, "ratio", 0.25)) < 0 ||
        (rc = pelix_props_set_string(p, "tls", "yes")) < 0 ||
        (rc = pelix_props_set_strings(p, "topics", topics, 2)) < 0) {
        goto out;
    }
    rc = -ENOMEM;
    if (!(item = pelix_value_new_long(1)) || pelix_value_list_append(list, item) < 0 ||
        !(item = pelix_value_new_strings(xy, 2)) || pelix_value_list_append(list, item) < 0 ||
        !(item = pelix_value_new_double(2.5)) || pelix_value_list_append(list, item) < 0) {
        goto out;
    }
    if ((rc = pelix_props_set(p, "nested", list)) < 0) {
        goto out;
    }
    rc = -ENOMEM;
    if (!(c = pelix_props_copy(p))) {
        goto out;
    }
    if ((rc = pelix_props_to_json(c, &json)) < 0 ||
        (rc = pelix_props_from_json(json, strlen(json), &back, &err)) < 0 ||
        (rc = pelix_props_coerce(back, s, PELIX_ARRAY_SIZE(s), &err)) < 0) {
        goto out;
    }
    rc = pelix_props_to_json(back, ret_json);
out:
    free(json);
    pelix_value_free(list);
    pelix_props_free(p);
    pelix_props_free(c);
    pelix_props_free(back);
    return rc;
}

static void test_oom_sweep(void **state)
{
    long n;
    (void)state;

    for (n = 0; n < 100000; n++) {
        char *json = NULL;
        long failures;
        int rc;

        pelix__alloc_fail_after(n);
        rc = oom_operation(&json);
        failures = pelix__alloc_failures();
        pelix__alloc_fail_after(-1);
        if (rc == 0) {
            /* A success must be complete even if some failure was absorbed on the way. */
            assert_string_equal(json, OOM_JSON);
            free(json);
            if (failures == 0) {
                break;
            }
        } else {
            assert_int_equal(rc, -ENOMEM);
            assert_true(failures > 0);
            assert_null(json);
        }
    }
    /* The operation makes many allocations: the sweep really ran through them. */
    assert_true(n > 20);
}

/* ---- secrets are overwritten before their memory is freed ------------------------------------ */

#define SECRET "s3cr3t-value"

static const char *watched[4]; /* texts inside values, looked at when their block is freed */
static int freed_clear, freed_with_secret;

/* Before a block is freed: the watched texts it holds must be zeroed already. */
static void look_for_secret(void *ptr)
{
    const char *begin = ptr, *end = begin + malloc_usable_size(ptr);
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(watched); i++) {
        if (watched[i] && watched[i] >= begin && watched[i] < end) {
            static const char zeros[sizeof(SECRET)];
            if (memcmp(watched[i], zeros, sizeof(SECRET) - 1) == 0) {
                freed_clear++;
            } else if (memcmp(watched[i], SECRET, sizeof(SECRET) - 1) == 0) {
                freed_with_secret++;
            }
            watched[i] = NULL;
        }
    }
}

static void test_secret_wiped_when_freed(void **state)
{
    (void)state;
    pelix_props_t *p = pelix_props_new();

    assert_int_equal(pelix_props_set_string(p, "password", SECRET), 0);
    assert_int_equal(pelix_props_set_string(p, "tls_key_password", SECRET), 0);
    assert_int_equal(pelix_props_set_string(p, "note", SECRET), 0); /* not a secret */
    watched[0] = pelix_props_get_string(p, "password", NULL);
    watched[1] = pelix_props_get_string(p, "tls_key_password", NULL);
    watched[2] = pelix_props_get_string(p, "note", NULL);
    pelix__set_free_hook(look_for_secret);
    assert_int_equal(pelix_props_set_string(p, "password", "other"), 0); /* replaced */
    assert_int_equal(pelix_props_remove(p, "tls_key_password"), 0);      /* removed */
    assert_int_equal(freed_clear, 2);
    assert_int_equal(pelix_props_set_string(p, "password", SECRET), 0);
    watched[3] = pelix_props_get_string(p, "password", NULL);
    pelix_props_free(p); /* freed: the password is zeroed, the note keeps its text */
    pelix__set_free_hook(NULL);
    assert_int_equal(freed_clear, 3);
    assert_int_equal(freed_with_secret, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_scalars),
        cmocka_unit_test(test_value_lists),
        cmocka_unit_test(test_value_equal_and_copy),
        cmocka_unit_test(test_value_to_string),
        cmocka_unit_test(test_props_typed_set_get),
        cmocka_unit_test(test_props_getter_defaults),
        cmocka_unit_test(test_props_case_insensitive),
        cmocka_unit_test(test_props_remove),
        cmocka_unit_test(test_props_key_order),
        cmocka_unit_test(test_props_copy_equal),
        cmocka_unit_test(test_props_invalid_input),
        cmocka_unit_test(test_props_nested_lists),
        cmocka_unit_test(test_props_key_aliasing),
        cmocka_unit_test(test_props_frozen),
        cmocka_unit_test(test_secret_keys),
        cmocka_unit_test(test_secret_wiped_when_freed),
        cmocka_unit_test_teardown(test_oom_sweep, reset_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
