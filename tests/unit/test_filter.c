/*
 * LDAP filters: the vectors of tests/fixtures/ldap_vectors.jsonl (Pelix's upstream assertions and
 * our derived cases, see ldap_vectors.NOTES.md), then the C API itself: error texts and offsets,
 * references, NULL handling, allocation failures and concurrent matching.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pelix/filter.h>
#include <pelix/props.h>

#include "util/util.h"

#include <cmocka.h>

#define VECTORS PELIX_FIXTURES "/ldap_vectors.jsonl"

/* What the file holds now: vectors may be added, never silently lost. */
#define MIN_UPSTREAM 169
#define MIN_DERIVED 271

/* ---- helpers --------------------------------------------------------------------------------- */

static pelix_filter_t *parse_ok(const char *text)
{
    pelix_filter_t *f = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    int rc = pelix_filter_parse(text, &f, &err);
    if (rc != 0) {
        fail_msg("'%s' does not parse: %d %s", text, rc, err.text);
    }
    assert_non_null(f);
    return f;
}

static pelix_props_t *props_json(const char *json)
{
    pelix_props_t *p = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    if (pelix_props_from_json(json, strlen(json), &p, &err) != 0) {
        fail_msg("bad props %s: %s", json, err.text);
    }
    return p;
}

static bool match_json(const char *filter, const char *json)
{
    pelix_filter_t *f = parse_ok(filter);
    pelix_props_t *p = props_json(json);
    bool r = pelix_filter_match(f, p);
    pelix_props_free(p);
    pelix_filter_unref(f);
    return r;
}

/* ---- vectors --------------------------------------------------------------------------------- */

typedef struct vectors {
    json_t *rows; /* array of the lines' objects, in file order */
    int upstream, derived, deviations, match, error, normalized;
} vectors_t;

static int load_vectors(void **state)
{
    static vectors_t vs;
    FILE *fp = fopen(VECTORS, "r");
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;

    if (!fp) {
        print_error("cannot open %s\n", VECTORS);
        return -1;
    }
    memset(&vs, 0, sizeof(vs));
    vs.rows = json_array();
    while (getline(&line, &cap, fp) >= 0) {
        json_error_t jerr;
        json_t *row;
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0') {
            continue;
        }
        row = json_loads(line, 0, &jerr);
        if (!json_is_object(row)) {
            print_error("%s:%d: not a JSON object: %s\n", VECTORS, lineno, jerr.text);
            json_decref(row);
            free(line);
            fclose(fp);
            return -1;
        }
        json_object_set_new(row, "_line", json_integer(lineno));
        json_array_append_new(vs.rows, row);
    }
    free(line);
    fclose(fp);
    *state = &vs;
    return 0;
}

static int free_vectors(void **state)
{
    vectors_t *vs = *state;
    json_decref(vs->rows);
    return 0;
}

#define VFAIL(row, ...)                                                                            \
    do {                                                                                           \
        print_error(                                                                               \
            "ldap_vectors.jsonl:%d: %s: ", (int)json_integer_value(json_object_get(row, "_line")), \
            json_string_value(json_object_get(row, "filter")));                                    \
        print_error(__VA_ARGS__);                                                                  \
        print_error("\n");                                                                         \
        failures++;                                                                                \
    } while (0)

/* The expectation of a row: `ours` when the row records a deliberate deviation from Pelix. */
static json_t *expected(json_t *row, const char *field)
{
    json_t *ours = json_object_get(row, "ours");
    return ours ? ours : json_object_get(row, field);
}

/* Checks the shape of every line and counts them. */
static void test_vectors_shape_and_count(void **state)
{
    vectors_t *vs = *state;
    size_t i;
    json_t *row;
    int failures = 0;

    json_array_foreach(vs->rows, i, row)
    {
        const char *source = json_string_value(json_object_get(row, "source"));
        json_t *ours = json_object_get(row, "ours"), *dev = json_object_get(row, "deviation");
        int kinds = !!json_object_get(row, "match") + !!json_object_get(row, "error") +
                    !!json_object_get(row, "normalized");

        if (!json_is_string(json_object_get(row, "filter")) || !source) {
            VFAIL(row, "needs a string 'filter' and 'source'");
            continue;
        }
        if (kinds != 1) {
            VFAIL(row, "needs exactly one of 'match', 'error', 'normalized'");
            continue;
        }
        if (!ours != !dev) {
            VFAIL(row, "'ours' and 'deviation' go together");
        }
        if (dev && (!json_is_string(dev) || strcmp(source, "derived") == 0)) {
            VFAIL(row, "'deviation' is a string, on upstream rows only");
        }
        if (json_object_get(row, "match")) {
            vs->match++;
            if (!json_is_boolean(expected(row, "match"))) {
                VFAIL(row, "'match' and 'ours' are booleans");
            }
        } else if (json_object_get(row, "error")) {
            vs->error++;
            if (!json_is_boolean(expected(row, "error"))) {
                VFAIL(row, "'error' and 'ours' are booleans");
            }
        } else {
            vs->normalized++;
            if (!json_is_string(expected(row, "normalized"))) {
                VFAIL(row, "'normalized' and 'ours' are strings");
            }
        }
        if (strcmp(source, "derived") == 0) {
            vs->derived++;
        } else {
            vs->upstream++;
        }
        vs->deviations += dev != NULL;
    }
    print_message("%d vectors: %d upstream (%d with a deviation), %d derived; %d match, %d error, "
                  "%d normalized\n",
                  vs->upstream + vs->derived, vs->upstream, vs->deviations, vs->derived, vs->match,
                  vs->error, vs->normalized);
    assert_int_equal(failures, 0);
    assert_true(vs->upstream >= MIN_UPSTREAM);
    assert_true(vs->derived >= MIN_DERIVED);
}

static void test_vectors_match(void **state)
{
    vectors_t *vs = *state;
    size_t i;
    json_t *row;
    int failures = 0, count = 0;

    json_array_foreach(vs->rows, i, row)
    {
        const char *text = json_string_value(json_object_get(row, "filter"));
        json_t *jprops = json_object_get(row, "props");
        pelix_filter_t *f = NULL, *again = NULL;
        pelix_props_t *props = NULL;
        pelix_error_t err = PELIX_ERROR_INIT;
        char *json;
        bool want, got;

        if (!json_object_get(row, "match")) {
            continue;
        }
        count++;
        want = json_is_true(expected(row, "match"));
        json = jprops ? json_dumps(jprops, JSON_COMPACT) : strdup("{}");
        assert_non_null(json);
        if (pelix_props_from_json(json, strlen(json), &props, &err) != 0) {
            VFAIL(row, "props %s rejected: %s", json, err.text);
        } else if (pelix_filter_parse(text, &f, &err) != 0) {
            VFAIL(row, "does not parse: %s", err.text);
        } else {
            got = pelix_filter_match(f, props);
            if (got != want) {
                VFAIL(row, "on %s: matched %d, expected %d", json, got, want);
            }
            /* The normalized text is an equal filter. */
            if (pelix_filter_parse(pelix_filter_text(f), &again, &err) != 0) {
                VFAIL(row, "normalized '%s' does not parse: %s", pelix_filter_text(f), err.text);
            } else if (pelix_filter_match(again, props) != got) {
                VFAIL(row, "normalized '%s' matches differently", pelix_filter_text(f));
            }
        }
        free(json);
        pelix_props_free(props);
        pelix_filter_unref(f);
        pelix_filter_unref(again);
    }
    assert_true(count > 0);
    assert_int_equal(failures, 0);
}

static void test_vectors_error(void **state)
{
    vectors_t *vs = *state;
    size_t i;
    json_t *row;
    int failures = 0, count = 0;

    json_array_foreach(vs->rows, i, row)
    {
        const char *text = json_string_value(json_object_get(row, "filter"));
        json_t *position = json_object_get(row, "position");
        const char *reason = json_string_value(json_object_get(row, "reason"));
        pelix_filter_t *f = NULL;
        pelix_error_t err = PELIX_ERROR_INIT;
        int rc;

        if (!json_object_get(row, "error")) {
            continue;
        }
        count++;
        rc = pelix_filter_parse(text, &f, &err);
        if (!json_is_true(expected(row, "error"))) {
            if (rc != 0) {
                VFAIL(row, "expected to parse: %s", err.text);
            }
            pelix_filter_unref(f);
            continue;
        }
        if (rc != PELIX_E_FILTER_SYNTAX || f) {
            VFAIL(row, "expected PELIX_E_FILTER_SYNTAX, got %d", rc);
            pelix_filter_unref(f);
            continue;
        }
        if (err.code != rc || err.text[0] == '\0') {
            VFAIL(row, "error details not filled (code %d, text '%s')", err.code, err.text);
        }
        if (err.position < 0 || (size_t)err.position > strlen(text)) {
            VFAIL(row, "position %ld outside the text", err.position);
        }
        if (position && json_integer_value(position) != err.position) {
            VFAIL(row, "position %ld, expected %ld (%s)", err.position,
                  (long)json_integer_value(position), err.text);
        }
        if (reason && !strstr(err.text, reason)) {
            VFAIL(row, "text '%s' does not say '%s'", err.text, reason);
        }
    }
    assert_true(count > 0);
    assert_int_equal(failures, 0);
}

static void test_vectors_normalized(void **state)
{
    vectors_t *vs = *state;
    size_t i;
    json_t *row;
    int failures = 0, count = 0;

    json_array_foreach(vs->rows, i, row)
    {
        const char *text = json_string_value(json_object_get(row, "filter"));
        const char *want = json_string_value(expected(row, "normalized"));
        pelix_filter_t *f = NULL, *again = NULL;
        pelix_error_t err = PELIX_ERROR_INIT;

        if (!json_object_get(row, "normalized")) {
            continue;
        }
        count++;
        if (pelix_filter_parse(text, &f, &err) != 0) {
            VFAIL(row, "does not parse: %s", err.text);
            continue;
        }
        if (strcmp(pelix_filter_text(f), want) != 0) {
            VFAIL(row, "normalized to '%s', expected '%s'", pelix_filter_text(f), want);
        }
        if (pelix_filter_parse(pelix_filter_text(f), &again, &err) != 0) {
            VFAIL(row, "'%s' does not parse again: %s", pelix_filter_text(f), err.text);
        } else if (strcmp(pelix_filter_text(again), pelix_filter_text(f)) != 0) {
            VFAIL(row, "'%s' normalizes again to '%s'", pelix_filter_text(f),
                  pelix_filter_text(again));
        }
        pelix_filter_unref(again);
        pelix_filter_unref(f);
    }
    assert_true(count > 0);
    assert_int_equal(failures, 0);
}

/* ---- error texts ----------------------------------------------------------------------------- */

static char *nested_nots(int n)
{
    char *s = malloc((size_t)n * 3 + 8);
    size_t len = 0;
    assert_non_null(s);
    for (int i = 0; i < n; i++) {
        s[len++] = '(';
        s[len++] = '!';
    }
    memcpy(s + len, "(a=1)", 5);
    len += 5;
    for (int i = 0; i < n; i++) {
        s[len++] = ')';
    }
    s[len] = '\0';
    return s;
}

static void check_error(const char *text, const char *reason, long position)
{
    pelix_filter_t *f = (pelix_filter_t *)&f; /* must stay untouched */
    pelix_error_t err = PELIX_ERROR_INIT;
    char offset[48];

    assert_int_equal(pelix_filter_parse(text, &f, &err), PELIX_E_FILTER_SYNTAX);
    assert_ptr_equal(f, (pelix_filter_t *)&f);
    assert_int_equal(err.code, PELIX_E_FILTER_SYNTAX);
    if (!strstr(err.text, reason)) {
        fail_msg("'%s': '%s' does not say '%s'", text, err.text, reason);
    }
    if (position >= 0) {
        assert_int_equal(err.position, position);
    }
    assert_true(err.position >= 0 && (size_t)err.position <= strlen(text));
    snprintf(offset, sizeof(offset), "offset %ld", err.position);
    if (!strstr(err.text, offset)) {
        fail_msg("'%s': '%s' does not name the offset", text, err.text);
    }
}

static void test_error_texts(void **state)
{
    char *deep;
    pelix_filter_t *f;

    (void)state;
    check_error("(a=1", "missing ')'", 4);
    check_error("(&(a=1)(b=2)", "missing ')'", 12);
    check_error("(a=)", "empty value", 2);
    check_error("(a=  )", "empty value", 2);
    check_error("(=1)", "empty attribute name", 1);
    check_error("(a=b(c)", "unescaped '('", 4);
    check_error("(a(b=1)", "unescaped '('", 2);
    check_error("(!(a=1)(b=2))", "'!' takes exactly one filter", 7);
    check_error("(a=1) x", "unexpected text after the filter", 6);
    check_error("(a=1)(b=2)", "unexpected text after the filter", 5);
    check_error("(a=1))", "unbalanced ')'", 5);
    check_error("(a~1)", "'~' must be followed by '='", 2);
    check_error("(a=b\\", "dangling", 4);
    check_error("", "empty filter", 0);
    check_error(" \t\n", "empty filter", -1);
    check_error("a=1", "expected '('", 0);

    deep = nested_nots(100);
    check_error(deep, "filter nested too deeply", -1);
    free(deep);
    /* Reasonable nesting is fine. */
    deep = nested_nots(50);
    f = parse_ok(deep);
    assert_string_equal(pelix_filter_text(f), deep);
    assert_false(pelix_filter_match(f, NULL));
    pelix_filter_unref(f);
    free(deep);
}

/* ---- API ------------------------------------------------------------------------------------- */

static void test_invalid_arguments(void **state)
{
    pelix_filter_t *f = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;

    (void)state;
    assert_int_equal(pelix_filter_parse(NULL, &f, &err), -EINVAL);
    assert_null(f);
    assert_int_equal(err.code, -EINVAL);
    assert_int_equal(pelix_filter_parse("(a=1)", NULL, &err), -EINVAL);
    assert_int_equal(pelix_filter_parse(NULL, &f, NULL), -EINVAL);
    assert_int_equal(pelix_filter_parse("(a=1", &f, NULL), PELIX_E_FILTER_SYNTAX);
    assert_null(f);
}

static void test_error_untouched_on_success(void **state)
{
    pelix_error_t err = {42, 7, "previous"};
    pelix_filter_t *f = NULL;

    (void)state;
    assert_int_equal(pelix_filter_parse(" (a=1) ", &f, &err), 0);
    assert_int_equal(err.code, 42);
    assert_int_equal(err.position, 7);
    assert_string_equal(err.text, "previous");
    pelix_filter_unref(f);
}

static void test_ref_unref(void **state)
{
    pelix_filter_t *f = parse_ok("(&(a=1)(b=*))");
    const char *text = pelix_filter_text(f);

    (void)state;
    assert_ptr_equal(pelix_filter_ref(f), f);
    assert_ptr_equal(pelix_filter_ref(f), f);
    assert_null(pelix_filter_unref(f));
    assert_null(pelix_filter_unref(f));
    /* Still alive with the first reference; the text is the same borrowed string. */
    assert_ptr_equal(pelix_filter_text(f), text);
    assert_string_equal(text, "(&(a=1)(b=*))");
    assert_true(match_json("(&(a=1)(b=*))", "{\"a\": 1, \"b\": \"x\"}"));
    assert_null(pelix_filter_unref(f));
    assert_null(pelix_filter_ref(NULL));
    assert_null(pelix_filter_unref(NULL));
    assert_null(pelix_filter_text(NULL));
}

static void test_null_filter_and_props(void **state)
{
    pelix_props_t *p = props_json("{\"a\": 1}");
    pelix_props_t *empty = pelix_props_new();
    struct {
        const char *text;
        bool on_empty;
    } cases[] = {
        {"(a=*)", false},
        {"(!(a=1))", true},
        {"(&)", true},
        {"(|)", false},
        {"(a<=1)", false},
        {"(!(a=*))", true},
        {"(|(a=1)(!(b=2)))", true},
    };

    (void)state;
    assert_true(pelix_filter_match(NULL, p));
    assert_true(pelix_filter_match(NULL, NULL));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pelix_filter_t *f = parse_ok(cases[i].text);
        assert_int_equal(pelix_filter_match(f, NULL), cases[i].on_empty);
        assert_int_equal(pelix_filter_match(f, empty), cases[i].on_empty);
        pelix_filter_unref(f);
    }
    pelix_props_free(empty);
    pelix_props_free(p);
}

/* Values that JSON cannot tell apart are built in code. */
static void test_typed_props(void **state)
{
    static const char *const strs[] = {"x", "", "Y z"};
    pelix_props_t *p = pelix_props_new();
    pelix_value_t *list = pelix_value_new_list();
    pelix_filter_t *f;

    (void)state;
    assert_int_equal(pelix_props_set_long(p, "Port", 1883), 0);
    assert_int_equal(pelix_props_set_double(p, "ratio", 0.5), 0);
    assert_int_equal(pelix_props_set_bool(p, "on", true), 0);
    assert_int_equal(pelix_props_set_strings(p, "names", strs, 3), 0);
    assert_int_equal(pelix_value_list_append(list, pelix_value_new_long(-7)), 0);
    assert_int_equal(pelix_value_list_append(list, pelix_value_new_double(2.25)), 0);
    assert_int_equal(pelix_value_list_append(list, pelix_value_new_bool(false)), 0);
    assert_int_equal(pelix_props_set(p, "mixed", list), 0);
    pelix_value_free(list);

    const struct {
        const char *text;
        bool want;
    } cases[] = {
        {"(port=1883)", true},         {"(PORT=1883.0)", true}, {"(port>=1.883e3)", true},
        {"(port<1883)", false},        {"(ratio=.5)", true},    {"(ratio<=5e-1)", true},
        {"(ratio>0.49)", true},        {"(ratio=1/2)", false},  {"(on=tRuE)", true},
        {"(on>false)", true},          {"(on=*)", true},        {"(names=y z)", false},
        {"(names~=YZ)", true},         {"(names=*)", true},     {"(names=)", false},
        {"(mixed=-7)", true},          {"(mixed=2.25)", true},  {"(mixed=false)", true},
        {"(mixed<-7)", false},         {"(mixed>2.2)", true},   {"(mixed=-7*)", false},
        {"(&(port=*)(!(x=*)))", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pelix_error_t err = PELIX_ERROR_INIT;
        f = NULL;
        if (pelix_filter_parse(cases[i].text, &f, &err) != 0) {
            /* "(names=)" is the one that must not parse. */
            assert_string_equal(cases[i].text, "(names=)");
            continue;
        }
        if (pelix_filter_match(f, p) != cases[i].want) {
            fail_msg("%s: expected %d", cases[i].text, cases[i].want);
        }
        pelix_filter_unref(f);
    }
    pelix_props_free(p);
}

static void test_wide_filter(void **state)
{
    pelix_buf_t b = {0};
    pelix_filter_t *f;
    pelix_props_t *p = props_json("{\"k\": 999}");
    char *text;

    (void)state;
    pelix__buf_puts(&b, "(|");
    for (int i = 0; i < 1000; i++) {
        pelix__buf_printf(&b, " (k=%d)", i);
    }
    pelix__buf_puts(&b, " )");
    text = pelix__buf_take(&b);
    assert_non_null(text);
    f = parse_ok(text);
    assert_true(pelix_filter_match(f, p));
    assert_int_equal(strlen(pelix_filter_text(f)), strlen(text) - 1000 - 1);
    pelix_filter_unref(f);
    pelix__free(text);
    pelix_props_free(p);
}

/* Every allocation of a parse may fail: the result is -ENOMEM and nothing leaks. */
static void test_allocation_failures(void **state)
{
    const char *text = "(&(a\\=b=x*y\\*z*)(|(c<=1)(!(d~=e f))(g=*))(h>=2.5))";
    long n;

    (void)state;
    for (n = 0;; n++) {
        pelix_filter_t *f = NULL;
        pelix_error_t err = PELIX_ERROR_INIT;
        int rc;

        pelix__alloc_fail_after(n);
        rc = pelix_filter_parse(text, &f, &err);
        pelix__alloc_fail_after(-1);
        if (rc == 0) {
            assert_string_equal(pelix_filter_text(f), text);
            pelix_filter_unref(f);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(err.code, -ENOMEM);
        assert_null(f);
    }
    assert_true(n > 5);
}

/* ---- threads --------------------------------------------------------------------------------- */

typedef struct worker {
    pelix_filter_t *f;
    pelix_props_t *yes, *no;
    int errors;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 2000; i++) {
        pelix_filter_t *f = pelix_filter_ref(w->f);
        if (!pelix_filter_match(f, w->yes) || pelix_filter_match(f, w->no)) {
            w->errors++;
        }
        pelix_filter_unref(f);
    }
    return NULL;
}

static void test_concurrent_match(void **state)
{
    pthread_t threads[4];
    worker_t w[4];
    pelix_filter_t *f = parse_ok("(&(objectClass=svc)(|(rank>=10)(name~=A*)))");
    pelix_props_t *yes = props_json("{\"objectclass\": [\"svc\"], \"NAME\": \"abc\"}");
    pelix_props_t *no = props_json("{\"objectclass\": \"svc\", \"rank\": 9}");

    (void)state;
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){pelix_filter_ref(f), yes, no, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, work, &w[i]), 0);
    }
    pelix_filter_unref(f); /* the workers hold the remaining references */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(w[i].errors, 0);
    }
    for (int i = 0; i < 4; i++) {
        pelix_filter_unref(w[i].f);
    }
    pelix_props_free(yes);
    pelix_props_free(no);
}

int main(void)
{
    const struct CMUnitTest vector_tests[] = {
        cmocka_unit_test(test_vectors_shape_and_count),
        cmocka_unit_test(test_vectors_match),
        cmocka_unit_test(test_vectors_error),
        cmocka_unit_test(test_vectors_normalized),
    };
    const struct CMUnitTest api_tests[] = {
        cmocka_unit_test(test_error_texts),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_error_untouched_on_success),
        cmocka_unit_test(test_ref_unref),
        cmocka_unit_test(test_null_filter_and_props),
        cmocka_unit_test(test_typed_props),
        cmocka_unit_test(test_wide_filter),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_concurrent_match),
    };
    int failed =
        cmocka_run_group_tests_name("ldap_vectors", vector_tests, load_vectors, free_vectors);
    failed += cmocka_run_group_tests_name("filter_api", api_tests, NULL, NULL);
    return failed;
}
