/*
 * Unit tests of the util module: error strings and details, log levels, UTF-8 validation, string
 * buffers, UUIDs and the allocation failure hook. Hash maps are in test_util_map.c.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* Every test that injects allocation failures resets the hook here, even when it fails. */
static int reset_alloc(void **state)
{
    (void)state;
    pelix__alloc_fail_after(-1);
    return 0;
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_strerror(void **state)
{
    static const struct {
        int code;
        const char *text;
    } cases[] = {{0, "success"},
                 {PELIX_E_FILTER_SYNTAX, "invalid LDAP filter"},
                 {PELIX_E_JSON, "invalid JSON"},
                 {PELIX_E_TYPE, "value of the wrong type"},
                 {PELIX_E_RANGE, "value out of range"},
                 {PELIX_E_MISSING, "mandatory property missing"},
                 {PELIX_E_PID, "invalid configuration PID"},
                 {PELIX_E_DELETED, "configuration deleted"},
                 {PELIX_E_TOPIC, "invalid MQTT topic or filter"},
                 {PELIX_E_COMMAND, "invalid command line"},
                 {-EINVAL, "invalid argument"},
                 {-ENOMEM, "out of memory"},
                 {-ENOENT, "not found"},
                 {-EEXIST, "already exists"},
                 {-EBUSY, "busy"},
                 {-EIO, "input/output error"},
                 {-EDEADLK, "would deadlock"},
                 {-EPERM, "operation not permitted"},
                 {-EACCES, "permission denied"},
                 {-ENOSPC, "no space left on device"},
                 {-EROFS, "read-only file system"},
                 {-ETIMEDOUT, "timed out"},
                 {-ESHUTDOWN, "shut down"}};
    static const int unknown[] = {1, EINVAL, -EAGAIN, -999, -1009, -123456, INT32_MIN};
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(cases); i++) {
        assert_string_equal(pelix_strerror(cases[i].code), cases[i].text);
        /* Each code has its own text. */
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(pelix_strerror(cases[i].code), pelix_strerror(cases[j].code));
        }
    }
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(unknown); i++) {
        assert_string_equal(pelix_strerror(unknown[i]), "unknown error");
    }
}

static void test_error_details(void **state)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    char longtext[600];
    (void)state;

    assert_int_equal(err.code, 0);
    assert_int_equal(err.position, -1);
    assert_string_equal(err.text, "");

    assert_int_equal(pelix__error(&err, PELIX_E_JSON, 7, "line %d: %s", 7, "bad"), PELIX_E_JSON);
    assert_int_equal(err.code, PELIX_E_JSON);
    assert_int_equal(err.position, 7);
    assert_string_equal(err.text, "line 7: bad");

    /* No details wanted: only the code comes back. */
    assert_int_equal(pelix__error(NULL, -EINVAL, 0, "ignored %s", "x"), -EINVAL);

    /* Over-long texts are cut, NUL-terminated, at the size of the buffer. */
    memset(longtext, 'x', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    assert_int_equal(pelix__error(&err, -EIO, -1, "%s", longtext), -EIO);
    assert_int_equal(strlen(err.text), PELIX_ERROR_TEXT_SIZE - 1);
    assert_int_equal(err.position, -1);
}

/* ---- logs ------------------------------------------------------------------------------------ */

static void test_log_level_parse(void **state)
{
    static const struct {
        const char *name;
        pelix_log_level_t level;
    } good[] = {
        {"error", PELIX_LOG_ERROR},     {"ERROR", PELIX_LOG_ERROR},  {"Warning", PELIX_LOG_WARNING},
        {"warning", PELIX_LOG_WARNING}, {"warn", PELIX_LOG_WARNING}, {"WARN", PELIX_LOG_WARNING},
        {"info", PELIX_LOG_INFO},       {"InFo", PELIX_LOG_INFO},    {"debug", PELIX_LOG_DEBUG},
        {"DEBUG", PELIX_LOG_DEBUG},
    };
    static const char *const bad[] = {"",      "err",   "errors", "warnings", "wa",     "trace",
                                      "fatal", " info", "info ",  "debug2",   "unknown"};
    pelix_log_level_t level;
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(good); i++) {
        level = (pelix_log_level_t)99;
        assert_int_equal(pelix_log_level_parse(good[i].name, &level), 0);
        assert_int_equal(level, good[i].level);
    }
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(bad); i++) {
        level = PELIX_LOG_INFO;
        assert_int_equal(pelix_log_level_parse(bad[i], &level), -EINVAL);
        /* Out-parameters are written only on success. */
        assert_int_equal(level, PELIX_LOG_INFO);
    }
    assert_int_equal(pelix_log_level_parse(NULL, &level), -EINVAL);
    assert_int_equal(pelix_log_level_parse("info", NULL), -EINVAL);
}

static void test_log_level_name(void **state)
{
    (void)state;

    assert_string_equal(pelix_log_level_name(PELIX_LOG_ERROR), "error");
    assert_string_equal(pelix_log_level_name(PELIX_LOG_WARNING), "warning");
    assert_string_equal(pelix_log_level_name(PELIX_LOG_INFO), "info");
    assert_string_equal(pelix_log_level_name(PELIX_LOG_DEBUG), "debug");
    assert_string_equal(pelix_log_level_name((pelix_log_level_t)4), "unknown");
    assert_string_equal(pelix_log_level_name((pelix_log_level_t)-1), "unknown");

    for (int l = PELIX_LOG_ERROR; l <= PELIX_LOG_DEBUG; l++) {
        pelix_log_level_t back;
        assert_int_equal(pelix_log_level_parse(pelix_log_level_name((pelix_log_level_t)l), &back),
                         0);
        assert_int_equal(back, l);
    }
}

struct log_capture {
    int calls;
    pelix_log_level_t level;
    char module[32];
    char message[2048];
};

static void capture_log(void *ctx, pelix_log_level_t level, const char *module, const char *message)
{
    struct log_capture *c = ctx;
    c->calls++;
    c->level = level;
    snprintf(c->module, sizeof(c->module), "%s", module);
    snprintf(c->message, sizeof(c->message), "%s", message);
}

static void test_log_dispatch(void **state)
{
    struct log_capture cap = {0};
    pelix_logger_t logger = {capture_log, &cap, PELIX_LOG_INFO};
    pelix_logger_t silent = {NULL, &cap, PELIX_LOG_DEBUG};
    char big[1500];
    (void)state;

    pelix__log(&logger, PELIX_LOG_WARNING, "configadmin", "cannot read '%s', ignoring", "a.js");
    assert_int_equal(cap.calls, 1);
    assert_int_equal(cap.level, PELIX_LOG_WARNING);
    assert_string_equal(cap.module, "configadmin");
    assert_string_equal(cap.message, "cannot read 'a.js', ignoring");

    /* Above max_level: dropped. At max_level: delivered. */
    pelix__log(&logger, PELIX_LOG_DEBUG, "m", "dropped");
    assert_int_equal(cap.calls, 1);
    pelix__log(&logger, PELIX_LOG_INFO, "m", "kept");
    assert_int_equal(cap.calls, 2);
    assert_string_equal(cap.message, "kept");

    /* No logger, or a logger without a function: nothing happens. */
    pelix__log(NULL, PELIX_LOG_ERROR, "m", "x");
    pelix__log(&silent, PELIX_LOG_ERROR, "m", "x");
    assert_int_equal(cap.calls, 2);

    /* A record stays one line whatever its arguments hold. */
    pelix__log(&logger, PELIX_LOG_ERROR, "m", "cannot read '%s'", "x\nERROR forged\t\x1b[1m");
    assert_string_equal(cap.message, "cannot read 'x?ERROR forged??[1m'");
    cap.calls--;

    /* Long messages are cut, not overflowed. */
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pelix__log(&logger, PELIX_LOG_ERROR, "m", "%s", big);
    assert_int_equal(cap.calls, 3);
    assert_int_equal(strlen(cap.message), 1023);
}

/* ---- strings --------------------------------------------------------------------------------- */

static bool utf8(const char *s)
{
    return pelix__utf8_valid(s, strlen(s));
}

static void test_utf8_valid(void **state)
{
    static const char *const ok[] = {
        "",
        "plain ASCII ~\x7f",
        "\xC2\x80",          /* U+0080, smallest 2-byte */
        "\xC3\xA9t\xC3\xA9", /* "été" */
        "\xDF\xBF",          /* U+07FF */
        "\xE0\xA0\x80",      /* U+0800, smallest 3-byte */
        "\xE2\x82\xAC",      /* "€" */
        "\xED\x9F\xBF",      /* U+D7FF, just below the surrogates */
        "\xEE\x80\x80",      /* U+E000, just above them */
        "\xEF\xBF\xBF",      /* U+FFFF */
        "\xF0\x90\x80\x80",  /* U+10000, smallest 4-byte */
        "\xF0\x9F\x98\x80",  /* "😀" */
        "\xF4\x8F\xBF\xBF",  /* U+10FFFF, the last code point */
        "a\xC3\xA9"
        "b\xE2\x82\xAC"
        "c\xF0\x9F\x98\x80"
        "d",
    };
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(ok); i++) {
        assert_true(utf8(ok[i]));
    }
}

static void test_utf8_invalid(void **state)
{
    static const char *const bad[] = {
        "\xC0\x80",                 /* overlong NUL */
        "\xC1\xBF",                 /* overlong U+007F */
        "\xE0\x80\x80",             /* overlong 3-byte */
        "\xE0\x9F\xBF",             /* overlong U+07FF */
        "\xF0\x80\x80\x80",         /* overlong 4-byte */
        "\xF0\x8F\xBF\xBF",         /* overlong U+FFFF */
        "\xED\xA0\x80",             /* U+D800, a surrogate */
        "\xED\xBF\xBF",             /* U+DFFF */
        "\xED\xA0\xBD\xED\xB8\x80", /* CESU-8 surrogate pair */
        "\xF4\x90\x80\x80",         /* U+110000 */
        "\xF5\x80\x80\x80",         /* lead byte above F4 */
        "\xF8\x88\x80\x80\x80",
        "\xFF",
        "\xFE",
        "\x80", /* lone continuation bytes */
        "a\xBF",
        "\xC3", /* truncated sequences */
        "\xE2\x82",
        "\xF0\x9F\x98",
        "\xE2\x82\x41", /* truncated by an ASCII byte */
        "\xC3\xC3\xA9",
        "\xF0\x9F\x98\x80\x80", /* stray continuation after a full sequence */
    };
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(bad); i++) {
        assert_false(utf8(bad[i]));
    }
    /* NUL inside the given length is rejected. */
    assert_false(pelix__utf8_valid("a\0b", 3));
    assert_false(pelix__utf8_valid("\0", 1));
    /* Only `len` bytes are looked at: a valid prefix passes, a cut sequence fails. */
    assert_true(pelix__utf8_valid("ab\xFF", 2));
    assert_false(pelix__utf8_valid("\xE2\x82\xAC", 2));
    assert_true(pelix__utf8_valid("\xE2\x82\xAC", 3));
}

static void test_str_blank(void **state)
{
    (void)state;

    assert_true(pelix__str_blank(""));
    assert_true(pelix__str_blank(" "));
    assert_true(pelix__str_blank(" \t\n\r\f\v "));
    assert_false(pelix__str_blank("a"));
    assert_false(pelix__str_blank("  a  "));
    assert_false(pelix__str_blank("\t.\n"));
    assert_false(pelix__str_blank("\xC2\xA0")); /* U+00A0 is not ASCII whitespace */
}

static void test_strcasecmp(void **state)
{
    (void)state;

    assert_int_equal(pelix__strcasecmp("Service.PID", "service.pid"), 0);
    assert_true(pelix__streq_nocase("ABC", "abc"));
    assert_false(pelix__streq_nocase("abc", "abcd"));
    assert_false(pelix__streq_nocase("abcd", "abc"));
    assert_true(pelix__strcasecmp("a", "B") < 0);
    assert_true(pelix__strcasecmp("b", "A") > 0);
    assert_true(pelix__strcasecmp("", "a") < 0);
    /* Only ASCII letters fold: "É" and "é" differ, "[" (after 'Z') is not '{'. */
    assert_false(pelix__streq_nocase("\xC3\x89", "\xC3\xA9"));
    assert_false(pelix__streq_nocase("[", "{"));
}

static void test_alloc_helpers(void **state)
{
    static const size_t grows[][2] = {{1, 4}, {4, 4}, {5, 8}, {100, 128}};
    char longarg[400], *s;
    void *items = NULL;
    size_t cap = 0;
    (void)state;

    s = pelix__strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    pelix__free(s);
    s = pelix__strdup("");
    assert_string_equal(s, "");
    pelix__free(s);

    memset(longarg, 'z', sizeof(longarg) - 1);
    longarg[sizeof(longarg) - 1] = '\0';
    s = pelix__sprintf("<%s|%d>", longarg, 42);
    assert_non_null(s);
    assert_int_equal(strlen(s), 1 + 399 + 4);
    assert_memory_equal(s + 400, "|42>", 5);
    pelix__free(s);

    /* pelix__grow: first 4 elements, then doubling; no-op when big enough; overflow refused. */
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(grows); i++) {
        assert_int_equal(pelix__grow(&items, &cap, grows[i][0], sizeof(int)), 0);
        assert_int_equal(cap, grows[i][1]);
    }
    ((int *)items)[99] = 7;
    assert_int_equal(pelix__grow(&items, &cap, SIZE_MAX / 4, 64), -ENOMEM);
    assert_int_equal(cap, 128);
    assert_int_equal(((int *)items)[99], 7);
    pelix__free(items);
}

/* ---- buffers --------------------------------------------------------------------------------- */

static void test_buf_growth(void **state)
{
    pelix_buf_t b = {0};
    char *s;
    (void)state;

    for (int i = 0; i < 10000; i++) {
        pelix__buf_putc(&b, (char)('a' + i % 26));
    }
    assert_false(b.oom);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[b.len], '\0');
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(b.data[i], 'a' + i % 26);
    }
    pelix__buf_puts(&b, "-end");
    pelix__buf_putn(&b, "XYZ", 2);
    assert_int_equal(b.len, 10006);
    assert_string_equal(b.data + 10000, "-endXY");

    s = pelix__buf_take(&b);
    assert_non_null(s);
    assert_int_equal(strlen(s), 10006);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);

    /* Taking an untouched buffer gives an empty, owned string. */
    s = pelix__buf_take(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void test_buf_printf(void **state)
{
    pelix_buf_t b = {0};
    char word[301], expect[512], *s;
    (void)state;

    pelix__buf_printf(&b, "%d-%s", 12, "ab");
    assert_string_equal(b.data, "12-ab");

    /* Longer than the 128-byte fast path, appended after existing content. */
    memset(word, 'w', 300);
    word[300] = '\0';
    pelix__buf_printf(&b, "[%s]%ld", word, 99L);
    snprintf(expect, sizeof(expect), "12-ab[%s]99", word);
    assert_false(b.oom);
    assert_int_equal(b.len, strlen(expect));
    assert_string_equal(b.data, expect);
    pelix__buf_reset(&b);
    assert_null(b.data);

    /* Around the boundary: 127 characters fit the stack buffer, 128 do not. */
    for (int n = 126; n <= 130; n++) {
        pelix__buf_puts(&b, ">");
        pelix__buf_printf(&b, "%.*s", n, word);
        assert_int_equal(b.len, (size_t)n + 1);
        assert_int_equal(b.data[0], '>');
        assert_int_equal(strspn(b.data + 1, "w"), (size_t)n);
        assert_int_equal(b.data[n + 1], '\0');
        s = pelix__buf_take(&b);
        free(s);
    }
}

static void test_buf_oom_latches(void **state)
{
    pelix_buf_t b = {0};
    char word[200];
    (void)state;

    pelix__alloc_fail_after(0);
    pelix__buf_puts(&b, "abc");
    pelix__alloc_fail_after(-1);
    assert_true(b.oom);
    /* Later writes are ignored even though memory is back; take reports the failure. */
    pelix__buf_puts(&b, "def");
    assert_true(b.oom);
    assert_null(pelix__buf_take(&b));
    assert_false(b.oom);
    assert_null(b.data);

    /* Failure on the long printf path, after a successful start. */
    memset(word, 'q', sizeof(word) - 1);
    word[sizeof(word) - 1] = '\0';
    pelix__buf_puts(&b, "ok");
    pelix__alloc_fail_after(0);
    pelix__buf_printf(&b, "%s", word);
    pelix__alloc_fail_after(-1);
    assert_true(b.oom);
    assert_null(pelix__buf_take(&b));

    /* Usable again after take/reset. */
    pelix__buf_puts(&b, "again");
    assert_string_equal(b.data, "again");
    pelix__buf_reset(&b);
}

/* ---- allocation hook ------------------------------------------------------------------------- */

static void test_alloc_fail_after(void **state)
{
    void *a, *b, *c, *d, *r;
    (void)state;

    pelix__alloc_fail_after(2);
    a = pelix__malloc(8);
    b = pelix__calloc(2, 8);
    c = pelix__malloc(8);
    d = pelix__calloc(1, 1);
    r = pelix__realloc(a, 64);
    assert_int_equal(pelix__alloc_failures(), 3);
    pelix__alloc_fail_after(-1);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_null(d);
    assert_null(r); /* a failed realloc keeps the old block */
    assert_int_equal(pelix__alloc_failures(), 0);

    /* Reset: allocations succeed again. */
    r = pelix__realloc(a, 64);
    assert_non_null(r);
    c = pelix__strdup("back");
    assert_non_null(c);
    assert_int_equal(pelix__alloc_failures(), 0);
    pelix__free(r);
    pelix__free(b);
    pelix__free(c);

    /* 0: the very next one fails; so do strdup and sprintf. */
    pelix__alloc_fail_after(0);
    assert_null(pelix__malloc(1));
    assert_null(pelix__strdup("x"));
    assert_null(pelix__sprintf("%d", 1));
    assert_int_equal(pelix__alloc_failures(), 3);
    pelix__alloc_fail_after(-1);

    /* Allocations made before the hook is armed are not counted. */
    pelix__alloc_fail_after(1);
    a = pelix__malloc(4);
    assert_non_null(a);
    assert_int_equal(pelix__alloc_failures(), 0);
    assert_null(pelix__malloc(4));
    assert_int_equal(pelix__alloc_failures(), 1);
    pelix__alloc_fail_after(-1);
    pelix__free(a);
}

static void check_uuid(const char *u)
{
    assert_int_equal(strlen(u), PELIX_UUID_STR_LEN);
    for (int i = 0; i < PELIX_UUID_STR_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(u[i], '-');
        } else {
            assert_non_null(strchr("0123456789abcdef", u[i]));
            assert_int_not_equal(u[i], '\0');
        }
    }
    assert_int_equal(u[14], '4');           /* version nibble */
    assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant */
}

static void test_uuid4(void **state)
{
    char a[PELIX_UUID_STR_LEN + 1], b[PELIX_UUID_STR_LEN + 1];
    (void)state;

    memset(a, 'Z', sizeof(a));
    memset(b, 'Z', sizeof(b));
    assert_int_equal(pelix__uuid4(a), 0);
    assert_int_equal(pelix__uuid4(b), 0);
    check_uuid(a);
    check_uuid(b);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(pelix__uuid4(b), 0);
        check_uuid(b);
        assert_string_not_equal(a, b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_error_details),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_level_name),
        cmocka_unit_test(test_log_dispatch),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_str_blank),
        cmocka_unit_test(test_strcasecmp),
        cmocka_unit_test(test_alloc_helpers),
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test_teardown(test_buf_oom_latches, reset_alloc),
        cmocka_unit_test_teardown(test_alloc_fail_after, reset_alloc),
        cmocka_unit_test(test_uuid4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
