/*
 * Unit tests of MQTT topic validation and matching: Pelix's test_topic_matches vectors (ported
 * from ipopo tests/misc/test_mqtt.py), every example of MQTT 3.1.1 §4.7, shared subscriptions,
 * UTF-8 and length limits, and a randomized comparison with libmosquitto's matcher.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <mosquitto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/topic/topic.h"
#include "util/util.h"

static void assert_name_ok(const char *topic)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    int rc = mqtt__topic_check_name(topic, &err);
    if (rc != 0) {
        fail_msg("topic name '%s' rejected: %s", topic, err.text);
    }
}

static void assert_name_bad(const char *topic)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    if (mqtt__topic_check_name(topic, &err) != PELIX_E_TOPIC) {
        fail_msg("topic name '%s' accepted", topic ? topic : "(null)");
    }
    assert_int_equal(err.code, PELIX_E_TOPIC);
    assert_true(err.text[0] != '\0');
}

static void assert_filter_ok(const char *filter)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    int rc = mqtt__topic_check_filter(filter, &err);
    if (rc != 0) {
        fail_msg("topic filter '%s' rejected: %s", filter, err.text);
    }
}

static void assert_filter_bad(const char *filter)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    if (mqtt__topic_check_filter(filter, &err) != PELIX_E_TOPIC) {
        fail_msg("topic filter '%s' accepted", filter ? filter : "(null)");
    }
    assert_int_equal(err.code, PELIX_E_TOPIC);
    assert_true(err.text[0] != '\0');
}

#define MATCH(f, t) check_match((f), (t), true)
#define NO_MATCH(f, t) check_match((f), (t), false)

static void check_match(const char *filter, const char *topic, bool expected)
{
    if (mqtt__topic_matches(filter, topic) != expected) {
        fail_msg("filter '%s' %s topic '%s'", filter,
                 expected ? "should match" : "should not match", topic);
    }
}

/* ---- Pelix's test_topic_matches -------------------------------------------------------------- */

static const char *const simple_topics[] = {"test", "other_test", "some-test", "1234"};

static void test_pelix_single_level(void **state)
{
    (void)state;
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(simple_topics); i++) {
        const char *topic = simple_topics[i];
        MATCH(topic, topic); /* identity */
        MATCH("#", topic);   /* all */
        NO_MATCH("/#", topic);
        MATCH("+", topic); /* first level */
        NO_MATCH("/+", topic);
    }
}

static void test_pelix_leading_slash(void **state)
{
    (void)state;
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(simple_topics); i++) {
        char topic[64];
        snprintf(topic, sizeof(topic), "/%s", simple_topics[i]);
        MATCH(topic, topic);
        MATCH("#", topic);
        MATCH("/+", topic); /* second level */
        NO_MATCH("+", topic);
    }
}

static void test_pelix_wildcards(void **state)
{
    static const char *const topics[] = {"first/second/third/fourth", "first/third/second/fourth"};
    static const char *const invalid[] = {"first/#/fourth", "#/second/#", "#/third/#", "#/fourth"};
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(topics); i++) {
        const char *topic = topics[i];
        char copy[64];

        MATCH("#", topic);
        MATCH("first/#", topic);
        NO_MATCH("first/+", topic);
        snprintf(copy, sizeof(copy), "%s", topic);
        for (char *part = strtok(copy, "/"); part; part = strtok(NULL, "/")) {
            NO_MATCH(part, topic); /* a single part */
        }
        MATCH("first/+/+/fourth", topic);
        NO_MATCH("first/+/fourth", topic);
        for (size_t j = 0; j < PELIX_ARRAY_SIZE(invalid); j++) {
            NO_MATCH(invalid[j], topic); /* text after '#': invalid, matches nothing */
            assert_filter_bad(invalid[j]);
        }
    }
}

static void test_parent_and_dollar(void **state)
{
    (void)state;
    MATCH("sport/#", "sport");
    NO_MATCH("#", "$SYS/x");
    NO_MATCH("+/x", "$SYS/x");
    MATCH("$SYS/#", "$SYS/x");
}

/* ---- MQTT 3.1.1 §4.7 ------------------------------------------------------------------------ */

/* §4.7.1.2 Multi-level wildcard. */
static void test_spec_multi_level(void **state)
{
    (void)state;
    MATCH("sport/tennis/player1/#", "sport/tennis/player1");
    MATCH("sport/tennis/player1/#", "sport/tennis/player1/ranking");
    MATCH("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon");
    NO_MATCH("sport/tennis/player1/#", "sport/tennis/player2");
    NO_MATCH("sport/tennis/player1/#", "sport/tennis");
    MATCH("sport/#", "sport");
    MATCH("sport/#", "sport/");
    MATCH("sport/#", "sport/tennis/player1");
    MATCH("#", "sport");
    MATCH("#", "/");
    assert_filter_ok("sport/tennis/#");
    assert_filter_ok("#");
    assert_filter_bad("sport/tennis#");
    assert_filter_bad("sport/tennis/#/ranking");
    NO_MATCH("sport/tennis#", "sport/tennis");
    NO_MATCH("sport/tennis/#/ranking", "sport/tennis/x/ranking");
}

/* §4.7.1.3 Single level wildcard. */
static void test_spec_single_level(void **state)
{
    (void)state;
    MATCH("sport/tennis/+", "sport/tennis/player1");
    MATCH("sport/tennis/+", "sport/tennis/player2");
    NO_MATCH("sport/tennis/+", "sport/tennis/player1/ranking");
    NO_MATCH("sport/+", "sport");
    MATCH("sport/+", "sport/");
    assert_filter_ok("+");
    assert_filter_ok("+/tennis/#");
    assert_filter_bad("sport+");
    assert_filter_ok("sport/+/player1");
    MATCH("sport/+/player1", "sport/tennis/player1");
    MATCH("+/+", "/finance");
    MATCH("/+", "/finance");
    NO_MATCH("+", "/finance");
    MATCH("+/tennis/#", "sport/tennis");
    MATCH("+/tennis/#", "sport/tennis/player1/ranking");
    NO_MATCH("+/tennis/#", "sport/golf");
    NO_MATCH("sport+", "sport");
    NO_MATCH("sport+", "sport+");
}

/* §4.7.2 Topics beginning with $. */
static void test_spec_dollar(void **state)
{
    (void)state;
    NO_MATCH("#", "$SYS");
    NO_MATCH("#", "$SYS/monitor/Clients");
    NO_MATCH("+/monitor/Clients", "$SYS/monitor/Clients");
    MATCH("$SYS/#", "$SYS/monitor/Clients");
    MATCH("$SYS/#", "$SYS");
    MATCH("$SYS/monitor/+", "$SYS/monitor/Clients");
    NO_MATCH("+", "$SYS");
    MATCH("$SYS", "$SYS");
    /* Only the first level counts: a '$' deeper is an ordinary character. */
    MATCH("+/$x", "a/$x");
    MATCH("a/+", "a/$x");
    MATCH("a/#", "a/$x");
    NO_MATCH("+/#", "$x/a");
}

/* §4.7.3 Topic semantic and usage. */
static void test_spec_validity(void **state)
{
    (void)state;
    assert_name_bad("");
    assert_filter_bad("");
    assert_name_bad(NULL);
    assert_filter_bad(NULL);
    assert_name_ok("/");
    assert_filter_ok("/");
    assert_name_ok("//");
    assert_name_ok("a//b");
    assert_name_ok("ACCOUNTS");
    assert_name_ok("Accounts payable");
    assert_name_ok(" ");
    assert_name_ok("$SYS/broker/load");
    assert_name_ok("sport/tennis/player1");
    MATCH("ACCOUNTS", "ACCOUNTS");
    NO_MATCH("ACCOUNTS", "Accounts"); /* case-sensitive */
    NO_MATCH("Accounts", "ACCOUNTS");
    MATCH("Accounts payable", "Accounts payable"); /* spaces are characters */
    NO_MATCH("/finance", "finance");               /* a leading '/' is a distinct level */
    NO_MATCH("finance", "/finance");
    MATCH("/", "/");
    MATCH("+/+", "/");
    MATCH("/#", "/");
    NO_MATCH("+", "/");
    /* Names hold no wildcard at all. */
    assert_name_bad("sport/+");
    assert_name_bad("sport/#");
    assert_name_bad("a+b");
    assert_name_bad("#");
    NO_MATCH("#", "sport/#");
    NO_MATCH("sport/+", "sport/+");
    /* Wildcards must fill a level. */
    assert_filter_bad("+a");
    assert_filter_bad("a#");
    assert_filter_bad("##");
    assert_filter_bad("++");
    assert_filter_bad("#/");
    assert_filter_ok("+/+/+");
    assert_filter_ok("/+/");
    assert_filter_ok("+/#");
    MATCH("+/#", "a");
    MATCH("/+/", "/x/");
    NO_MATCH("/+/", "/x");
    MATCH("a/+/b", "a//b");
    /* U+0000 cannot be in a C string: a topic is the bytes before its first NUL. */
    assert_name_ok("a\0+");
    MATCH("a", "a\0/b");
    /* Control characters are discouraged but allowed. */
    assert_name_ok("a\x01"
                   "b\x1f");
    assert_filter_ok("a\x7f/+");
}

static void test_utf8_and_length(void **state)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    char *big = malloc(65537);
    (void)state;

    assert_name_ok("caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80");
    assert_filter_ok("caf\xc3\xa9/+/\xf0\x9f\x98\x80/#");
    assert_name_bad("caf\xc3");              /* truncated sequence */
    assert_name_bad("\xc0\xaf");             /* overlong '/' */
    assert_name_bad("a/\xed\xa0\x80");       /* UTF-16 surrogate */
    assert_name_bad("\xff");                 /* never valid */
    assert_filter_bad("\xf4\x90\x80\x80/#"); /* beyond U+10FFFF */
    NO_MATCH("#", "caf\xc3");
    NO_MATCH("caf\xc3", "caf\xc3");
    MATCH("caf\xc3\xa9/+", "caf\xc3\xa9/x");

    /* 65535 bytes is the maximum, 65536 is one too many. */
    assert_non_null(big);
    memset(big, 'a', 65535);
    big[65535] = '\0';
    assert_name_ok(big);
    assert_filter_ok(big);
    MATCH("#", big);
    big[65535] = 'a';
    big[65536] = '\0';
    assert_int_equal(mqtt__topic_check_name(big, &err), PELIX_E_TOPIC);
    assert_non_null(strstr(err.text, "65536"));
    assert_filter_bad(big);
    NO_MATCH("#", big);
    NO_MATCH(big, big);
    free(big);
}

static void test_error_details(void **state)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    (void)state;

    assert_int_equal(mqtt__topic_check_filter("sport/tennis#", &err), PELIX_E_TOPIC);
    assert_int_equal(err.position, 12);
    assert_non_null(strstr(err.text, "sport/tennis#"));
    assert_non_null(strstr(err.text, "whole level"));
    assert_int_equal(mqtt__topic_check_filter("a/#/b", &err), PELIX_E_TOPIC);
    assert_int_equal(err.position, 2);
    assert_non_null(strstr(err.text, "last level"));
    assert_int_equal(mqtt__topic_check_name("a/+", &err), PELIX_E_TOPIC);
    assert_int_equal(err.position, 2);
    assert_non_null(strstr(err.text, "topic name"));
    assert_int_equal(mqtt__topic_check_filter("", &err), PELIX_E_TOPIC);
    assert_non_null(strstr(err.text, "empty"));
    assert_string_equal(pelix_strerror(PELIX_E_TOPIC), "invalid MQTT topic or filter");
    /* NULL err is fine; success leaves err untouched. */
    assert_int_equal(mqtt__topic_check_filter("a+", NULL), PELIX_E_TOPIC);
    err.code = 42;
    assert_int_equal(mqtt__topic_check_filter("a/+", &err), 0);
    assert_int_equal(err.code, 42);
}

/* ---- shared subscriptions -------------------------------------------------------------------- */

static void test_shared(void **state)
{
    const char *f = "$share/group/sport/+";
    (void)state;

    assert_filter_ok(f);
    assert_ptr_equal(mqtt__topic_unshare(f), f + strlen("$share/group/"));
    assert_string_equal(mqtt__topic_unshare(f), "sport/+");
    assert_string_equal(mqtt__topic_unshare("$share/g/#"), "#");
    assert_string_equal(mqtt__topic_unshare("sport/+"), "sport/+");
    assert_string_equal(mqtt__topic_unshare("$share"), "$share");
    assert_string_equal(mqtt__topic_unshare("$shared/g/a"), "$shared/g/a");
    assert_null(mqtt__topic_unshare(NULL));
    assert_filter_ok("$share/g/#");
    assert_filter_ok("$share/g/$SYS/+");
    assert_filter_ok("$share/g//");
    assert_filter_ok("$share");      /* not a shared subscription: an ordinary level */
    assert_filter_ok("$shared/g/a"); /* idem */
    assert_filter_bad("$share/");    /* empty group, no filter */
    assert_filter_bad("$share//a");  /* empty group */
    assert_filter_bad("$share/g");   /* no filter */
    assert_filter_bad("$share/g/");  /* empty filter */
    assert_filter_bad("$share/+/a"); /* wildcard in the group */
    assert_filter_bad("$share/#/a");
    assert_filter_bad("$share/g+/a");
    assert_filter_bad("$share/g/a#"); /* invalid filter after the group */
    assert_filter_bad("$share/g/#/a");
    assert_name_ok("$share/g/a"); /* as a name, it is just a topic */
    assert_name_bad("$share/g/+");

    MATCH(f, "sport/tennis");
    NO_MATCH(f, "sport/tennis/x");
    MATCH("$share/g/#", "a/b");
    NO_MATCH("$share/g/#", "$SYS/a"); /* the unshared filter's first level is '#' */
    MATCH("$share/g/$SYS/#", "$SYS/a");
    NO_MATCH("$share/+/a", "a");
    NO_MATCH("$share/g", "$share/g");
}

/* ---- comparison with libmosquitto ------------------------------------------------------------ */

static const char *const alphabet[] = {"", "a", "b", "$x", "+", "#", "ab"};

static void random_string(char *out, size_t size, bool filter)
{
    size_t levels = 1 + (size_t)rand() % 4, used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < levels; i++) {
        const char *lv = alphabet[(size_t)rand() % PELIX_ARRAY_SIZE(alphabet)];
        if (!filter && (lv[0] == '+' || lv[0] == '#')) {
            lv = "c";
        }
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "/" : "", lv);
    }
}

static void test_random_vs_mosquitto(void **state)
{
    char filter[64], topic[64];
    long compared = 0;
    (void)state;

    srand(20240601);
    for (int i = 0; i < 200000; i++) {
        bool want = false;
        random_string(filter, sizeof(filter), true);
        random_string(topic, sizeof(topic), false);
        if (mqtt__topic_check_filter(filter, NULL) != 0 || mqtt__topic_check_name(topic, NULL)) {
            assert_false(mqtt__topic_matches(filter, topic));
            continue;
        }
        assert_int_equal(mosquitto_topic_matches_sub(filter, topic, &want), MOSQ_ERR_SUCCESS);
        if (mqtt__topic_matches(filter, topic) != want) {
            fail_msg("'%s' vs '%s': mosquitto says %d", filter, topic, want);
        }
        compared++;
    }
    assert_true(compared > 50000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pelix_single_level),
        cmocka_unit_test(test_pelix_leading_slash),
        cmocka_unit_test(test_pelix_wildcards),
        cmocka_unit_test(test_parent_and_dollar),
        cmocka_unit_test(test_spec_multi_level),
        cmocka_unit_test(test_spec_single_level),
        cmocka_unit_test(test_spec_dollar),
        cmocka_unit_test(test_spec_validity),
        cmocka_unit_test(test_utf8_and_length),
        cmocka_unit_test(test_error_details),
        cmocka_unit_test(test_shared),
        cmocka_unit_test(test_random_vs_mosquitto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
