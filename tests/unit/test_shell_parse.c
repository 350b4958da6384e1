/*
 * Unit tests of the shell's line parser: words, quotes, backslashes, errors with their column,
 * and the typing of `k=v` values.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <string.h>

#include <pelix/configadmin.h>

#include "shell/shell.h"
#include "util/util.h"

static void expect(const char *line, size_t n, const char *const *texts, const bool *quoted)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_shell_word_t *w = NULL;
    size_t count = 99;

    assert_int_equal(pelix__shell_split(line, &w, &count, &err), 0);
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(w[i].text, texts[i]);
        assert_int_equal(w[i].quoted, quoted[i]);
    }
    pelix__shell_words_free(w, count);
}

static void test_words(void **state)
{
    (void)state;
    expect("", 0, NULL, NULL);
    expect("  \t ", 0, NULL, NULL);
    expect("sl", 1, (const char *[]){"sl"}, (bool[]){false});
    expect("  mqtt.publish  a/b   hello\r\n", 3, (const char *[]){"mqtt.publish", "a/b", "hello"},
           (bool[]){false, false, false});
    expect("p \"hello world\" 'single \"q\"'", 3,
           (const char *[]){"p", "hello world", "single \"q\""}, (bool[]){false, true, true});
    expect("a\"b c\"d k=\"x y\"", 2, (const char *[]){"ab cd", "k=x y"}, (bool[]){true, true});
    expect("\"\" x", 2, (const char *[]){"", "x"}, (bool[]){true, false});
    expect("a\\ b \"q\\\"x\" 'no\\esc'", 3, (const char *[]){"a b", "q\"x", "no\\esc"},
           (bool[]){false, true, true});
    expect("caf\xc3\xa9 \xe2\x82\xac", 2, (const char *[]){"caf\xc3\xa9", "\xe2\x82\xac"},
           (bool[]){false, false});
}

static void test_errors(void **state)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_shell_word_t *w = NULL;
    size_t n = 0;
    (void)state;

    assert_int_equal(pelix__shell_split("p \"open", &w, &n, &err), PELIX_E_COMMAND);
    assert_string_equal(err.text, "unterminated quote at column 3");
    assert_int_equal(pelix__shell_split("p 'x", &w, &n, &err), PELIX_E_COMMAND);
    assert_int_equal(pelix__shell_split("p x\\", &w, &n, &err), PELIX_E_COMMAND);
    assert_string_equal(err.text, "backslash at the end of the line");
    assert_int_equal(pelix__shell_split(NULL, &w, &n, &err), -EINVAL);
    for (long k = 0; k < 6; k++) {
        pelix__alloc_fail_after(k);
        int rc = pelix__shell_split("one two three", &w, &n, NULL);
        pelix__alloc_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(n, 3);
            pelix__shell_words_free(w, n);
        } else {
            assert_int_equal(rc, -ENOMEM);
        }
    }
}

static void test_values(void **state)
{
    pelix_value_t *v;
    (void)state;

    v = pelix__shell_value("1883", false);
    assert_int_equal(pelix_value_type(v), PELIX_TYPE_LONG);
    assert_int_equal(pelix_value_long(v), 1883);
    pelix_value_free(v);
    v = pelix__shell_value("-5", false);
    assert_int_equal(pelix_value_long(v), -5);
    pelix_value_free(v);
    v = pelix__shell_value("1883", true);
    assert_int_equal(pelix_value_type(v), PELIX_TYPE_STRING);
    pelix_value_free(v);
    v = pelix__shell_value("true", false);
    assert_int_equal(pelix_value_type(v), PELIX_TYPE_BOOL);
    assert_true(pelix_value_bool(v));
    pelix_value_free(v);
    v = pelix__shell_value("false", false);
    assert_false(pelix_value_bool(v));
    pelix_value_free(v);
    v = pelix__shell_value("2.5", false);
    assert_int_equal(pelix_value_type(v), PELIX_TYPE_DOUBLE);
    pelix_value_free(v);
    /* Not numbers: strings as typed. */
    static const char *const strings[] = {
        "abc", "0x10", "nan", "inf", "1.2.3", "12a", "", "99999999999999999999999", "True"};
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(strings); i++) {
        v = pelix__shell_value(strings[i], false);
        assert_int_equal(pelix_value_type(v), PELIX_TYPE_STRING);
        assert_string_equal(pelix_value_string(v), strings[i]);
        pelix_value_free(v);
    }
}

/* ---- a value that is not UTF-8 --------------------------------------------------------------- */

static void capture(void *ctx, pelix_log_level_t level, const char *module, const char *message)
{
    (void)level;
    (void)module;
    snprintf(ctx, 256, "%s", message);
}

/* Found by fuzz_shell: `k="<not UTF-8>"` was refused as "Cannot allocate memory". */
static void test_config_value_not_utf8(void **state)
{
    (void)state;
    char said[256] = "";
    pelix_registry_t *reg = pelix_registry_new();
    pelix_configadmin_options_t ca_opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_configadmin_t *ca = NULL;
    pelix_shell_t *sh = NULL;
    pelix_configuration_t **list = NULL;
    size_t count = 99;
    FILE *out = tmpfile();

    assert_non_null(reg);
    assert_non_null(out);
    assert_int_equal(pelix_configadmin_new(reg, &ca_opts, &ca, NULL), 0);
    pelix_shell_options_t opts = {reg, ca, NULL, out, {capture, said, PELIX_LOG_INFO}};
    assert_int_equal(pelix__shell_new(&opts, &sh), 0);
    assert_int_equal(pelix__shell_exec(sh, "config.create mqtt.connector host=\"b\xc0r\""),
                     -EINVAL);
    assert_non_null(strstr(said, "host: the value is not valid UTF-8"));
    assert_int_equal(pelix_configadmin_list_configurations(ca, NULL, &list, &count, NULL), 0);
    assert_int_equal(count, 0);
    pelix_configuration_list_free(list, count);
    said[0] = '\0';
    assert_int_equal(pelix__shell_exec(sh, "config.create mqtt.connector host=\"b\xc3\xa9r\""), 0);
    assert_string_equal(said, "");
    pelix__shell_free(sh);
    pelix_configadmin_free(ca);
    pelix_registry_free(reg);
    fclose(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_config_value_not_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
