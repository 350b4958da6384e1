/*
 * Unit tests of the MQTT filter trie: the matching vectors of test_mqtt_topic.c must give the same
 * answers through mqtt__trie_match(); a randomized differential test against a brute-force scan
 * over mqtt__topic_matches(); dedupe and ordering of keys; counts; removal; invalid filters;
 * allocation failures (the trie is unchanged); shared subscriptions; wide and deep tries; and
 * concurrent matches on an unchanged trie.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/topic/topic.h"
#include "util/util.h"

static int reset_alloc(void **state)
{
    (void)state;
    pelix__alloc_fail_after(-1);
    return 0;
}

/* Collects the keys a match reports, checking they come in strictly ascending order. */
typedef struct collected {
    uint64_t keys[4096];
    size_t len;
} collected_t;

static void collect_fn(void *ctx, uint64_t key)
{
    collected_t *c = ctx;
    assert_true(c->len < PELIX_ARRAY_SIZE(c->keys));
    if (c->len > 0) {
        assert_true(c->keys[c->len - 1] < key);
    }
    c->keys[c->len++] = key;
}

static int match(const mqtt_trie_t *t, const char *topic, mqtt_trie_scratch_t *s, collected_t *c)
{
    int rc;

    c->len = 0;
    rc = mqtt__trie_match(t, topic, s, collect_fn, c);
    if (rc >= 0) {
        assert_int_equal((size_t)rc, c->len);
        if (s) {
            assert_memory_equal(s->keys, c->keys, c->len * sizeof(uint64_t));
        }
    }
    return rc;
}

/* ---- the vectors of test_mqtt_topic.c -------------------------------------------------------- */

typedef struct vector {
    const char *filter;
    const char *topic;
    bool match;
} vector_t;

static const vector_t vectors[] = {
    /* Pelix: single level */
    {"test", "test", true},
    {"#", "test", true},
    {"/#", "test", false},
    {"+", "test", true},
    {"/+", "test", false},
    {"other_test", "other_test", true},
    {"#", "some-test", true},
    {"+", "1234", true},
    {"/+", "1234", false},
    {"/#", "1234", false},
    /* Pelix: leading '/' */
    {"/test", "/test", true},
    {"#", "/test", true},
    {"/+", "/test", true},
    {"+", "/test", false},
    {"/1234", "/1234", true},
    {"/+", "/some-test", true},
    {"+", "/other_test", false},
    /* Pelix: wildcards */
    {"#", "first/second/third/fourth", true},
    {"first/#", "first/second/third/fourth", true},
    {"first/+", "first/second/third/fourth", false},
    {"first", "first/second/third/fourth", false},
    {"second", "first/second/third/fourth", false},
    {"fourth", "first/third/second/fourth", false},
    {"first/+/+/fourth", "first/second/third/fourth", true},
    {"first/+/+/fourth", "first/third/second/fourth", true},
    {"first/+/fourth", "first/second/third/fourth", false},
    {"first/#/fourth", "first/second/third/fourth", false},
    {"#/second/#", "first/second/third/fourth", false},
    {"#/third/#", "first/third/second/fourth", false},
    {"#/fourth", "first/second/third/fourth", false},
    {"sport/#", "sport", true},
    {"#", "$SYS/x", false},
    {"+/x", "$SYS/x", false},
    {"$SYS/#", "$SYS/x", true},
    /* §4.7.1.2 */
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis", false},
    {"sport/#", "sport/", true},
    {"sport/tennis#", "sport/tennis", false},
    {"sport/tennis/#/ranking", "sport/tennis/x/ranking", false},
    /* §4.7.1.3 */
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+/tennis/#", "sport/tennis/player1/ranking", true},
    {"sport+", "sport", false},
    /* §4.7.2 */
    {"#", "$SYS", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"+", "$SYS", false},
    {"a/+", "a/$x", true},
    {"+/#", "$x/a", false},
    /* §4.7.3 */
    {"ACCOUNTS", "Accounts", false},
    {"Accounts payable", "Accounts payable", true},
    {"/finance", "finance", false},
    {"/", "/", true},
    {"+/+", "/", true},
    {"+", "/", false},
    {"+/#", "a", true},
    {"a/+/b", "a//b", true},
    {"/+/", "/x", false},
    /* shared subscriptions */
    {"$share/g/sport/+", "sport/tennis", true},
    {"$share/g/#", "$SYS/a", false},
    {"$share/+/a", "a", false},
};

static void test_vectors_one_by_one(void **state)
{
    mqtt_trie_scratch_t s = MQTT_TRIE_SCRATCH_INIT;
    collected_t c;
    (void)state;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(vectors); i++) {
        const vector_t *v = &vectors[i];
        mqtt_trie_t *t = mqtt__trie_new();
        bool valid = mqtt__topic_check_filter(v->filter, NULL) == 0;

        assert_non_null(t);
        assert_int_equal(v->match, mqtt__topic_matches(v->filter, v->topic));
        assert_int_equal(mqtt__trie_add(t, v->filter, 7), valid ? 0 : PELIX_E_TOPIC);
        if (match(t, v->topic, &s, &c) != (v->match ? 1 : 0)) {
            fail_msg("trie: filter '%s' %s topic '%s'", v->filter,
                     v->match ? "should match" : "should not match", v->topic);
        }
        mqtt__trie_free(t);
    }
    mqtt__trie_scratch_free(&s);
}

/* Brute force over a list of (filter, key) pairs with positive counts. */
typedef struct model {
    char filter[64];
    uint64_t key;
    int count;
} model_t;

static size_t brute(const model_t *m, size_t n, const char *topic, uint64_t *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        if (m[i].count <= 0 || !mqtt__topic_matches(m[i].filter, topic)) {
            continue;
        }
        for (size_t j = 0; j < len; j++) {
            dup = dup || out[j] == m[i].key;
        }
        if (!dup) {
            size_t j = len++;
            for (; j > 0 && out[j - 1] > m[i].key; j--) {
                out[j] = out[j - 1];
            }
            out[j] = m[i].key;
        }
    }
    return len;
}

static void check_against_brute(const mqtt_trie_t *t, const model_t *m, size_t n, const char *topic,
                                mqtt_trie_scratch_t *s)
{
    static uint64_t want[4096];
    static collected_t got;
    size_t len = brute(m, n, topic, want);

    if (match(t, topic, s, &got) != (int)len || memcmp(want, got.keys, len * 8) != 0) {
        fail_msg("topic '%s': trie found %zu keys, brute force %zu", topic, got.len, len);
    }
}

static void test_vectors_together(void **state)
{
    static model_t m[PELIX_ARRAY_SIZE(vectors)];
    mqtt_trie_t *t = mqtt__trie_new();
    mqtt_trie_scratch_t s = MQTT_TRIE_SCRATCH_INIT;
    (void)state;

    assert_non_null(t);
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(vectors); i++) {
        snprintf(m[i].filter, sizeof(m[i].filter), "%s", vectors[i].filter);
        m[i].key = 1000 - i % 50; /* shared keys, added out of order */
        m[i].count = mqtt__trie_add(t, m[i].filter, m[i].key) == 0 ? 1 : 0;
    }
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(vectors); i++) {
        check_against_brute(t, m, PELIX_ARRAY_SIZE(vectors), vectors[i].topic, &s);
    }
    mqtt__trie_scratch_free(&s);
    mqtt__trie_free(t);
}

/* ---- randomized differential test ------------------------------------------------------------ */

static const char *const alphabet[] = {"", "a", "b", "$x", "+", "#", "long-level"};

static void random_topic(char *out, size_t size, bool filter)
{
    size_t levels = 1 + (size_t)rand() % 4, used = 0;

    out[0] = '\0';
    if (filter && rand() % 10 == 0) {
        used += (size_t)snprintf(out, size, "$share/g%d/", rand() % 3);
    }
    for (size_t i = 0; i < levels; i++) {
        const char *lv = alphabet[(size_t)rand() % PELIX_ARRAY_SIZE(alphabet)];
        if (!filter && (lv[0] == '+' || lv[0] == '#')) {
            lv = "c";
        }
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "/" : "", lv);
    }
    if (out[0] == '\0') {
        snprintf(out, size, "c"); /* the empty string is no topic */
    }
}

static void test_random_differential(void **state)
{
    enum { N = 300 };
    static model_t m[N];
    mqtt_trie_t *t = mqtt__trie_new();
    mqtt_trie_scratch_t s = MQTT_TRIE_SCRATCH_INIT;
    char topic[64];
    size_t pairs = 0;
    (void)state;

    srand(4242);
    assert_non_null(t);
    for (int round = 0; round < 4000; round++) {
        size_t i = (size_t)rand() % N;
        if (m[i].count == 0 || rand() % 3 == 0) {
            int rc;
            if (m[i].count == 0) {
                random_topic(m[i].filter, sizeof(m[i].filter), true);
                m[i].key = (uint64_t)(rand() % 20);
            }
            rc = mqtt__trie_add(t, m[i].filter, m[i].key);
            assert_int_equal(rc,
                             mqtt__topic_check_filter(m[i].filter, NULL) == 0 ? 0 : PELIX_E_TOPIC);
            m[i].count += rc == 0;
        } else {
            assert_int_equal(mqtt__trie_remove(t, m[i].filter, m[i].key), 0);
            m[i].count--;
        }
        random_topic(topic, sizeof(topic), false);
        check_against_brute(t, m, N, topic, &s);
        if (round % 500 == 0) {
            /* Same pair through another filter spelling is the same entry: count the distinct. */
            pairs = 0;
            for (size_t a = 0; a < N; a++) {
                bool seen = false;
                for (size_t b = 0; b < a && !seen; b++) {
                    seen = m[b].count > 0 && m[b].key == m[a].key &&
                           strcmp(mqtt__topic_unshare(m[b].filter),
                                  mqtt__topic_unshare(m[a].filter)) == 0;
                }
                pairs += m[a].count > 0 && !seen;
            }
            assert_int_equal(mqtt__trie_size(t), pairs);
        }
    }
    /* Empty it: every node goes. */
    for (size_t i = 0; i < N; i++) {
        for (; m[i].count > 0; m[i].count--) {
            assert_int_equal(mqtt__trie_remove(t, m[i].filter, m[i].key), 0);
        }
    }
    assert_int_equal(mqtt__trie_size(t), 0);
    assert_int_equal(mqtt__trie_nodes(t), 0);
    mqtt__trie_scratch_free(&s);
    mqtt__trie_free(t);
}

/* ---- keys, counts, removal ------------------------------------------------------------------- */

static void test_dedupe_and_order(void **state)
{
    mqtt_trie_t *t = mqtt__trie_new();
    mqtt_trie_scratch_t s = MQTT_TRIE_SCRATCH_INIT;
    collected_t c;
    (void)state;

    assert_non_null(t);
    assert_int_equal(mqtt__trie_add(t, "a/+", 7), 0);
    assert_int_equal(mqtt__trie_add(t, "a/#", 7), 0);
    assert_int_equal(mqtt__trie_add(t, "#", 7), 0);
    assert_int_equal(mqtt__trie_add(t, "a/b", 7), 0);
    assert_int_equal(mqtt__trie_add(t, "+/b", 7), 0);
    assert_int_equal(mqtt__trie_size(t), 5);
    assert_int_equal(match(t, "a/b", &s, &c), 1);
    assert_int_equal(c.keys[0], 7);

    /* Keys come in ascending order whatever the filters and insertion order. */
    static const uint64_t keys[] = {UINT64_MAX, 3, 0, 42, 1ull << 40, 9, 5, 8, 2, 1};
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(keys); i++) {
        assert_int_equal(mqtt__trie_add(t, i % 2 ? "a/b" : "+/+", keys[i]), 0);
    }
    assert_int_equal(match(t, "a/b", &s, &c), 11);
    assert_int_equal(c.keys[0], 0);
    assert_int_equal(c.keys[10], UINT64_MAX);
    assert_int_equal(match(t, "x/y", &s, &c), 6); /* "+/+" half and "#" (7) */
    /* No callback: just the count, and the keys in the scratch. */
    assert_int_equal(mqtt__trie_match(t, "x/y", &s, NULL, NULL), 6);
    assert_int_equal(s.keys[0], 0);
    /* No scratch: a temporary one. */
    assert_int_equal(match(t, "a/b", NULL, &c), 11);
    mqtt__trie_scratch_free(&s);
    mqtt__trie_scratch_free(&s);
    mqtt__trie_scratch_free(NULL);
    mqtt__trie_free(t);
}

static void test_counts(void **state)
{
    mqtt_trie_t *t = mqtt__trie_new();
    collected_t c;
    (void)state;

    assert_int_equal(mqtt__trie_add(t, "a/+", 1), 0);
    assert_int_equal(mqtt__trie_add(t, "a/+", 1), 0);
    assert_int_equal(mqtt__trie_size(t), 1);
    assert_int_equal(mqtt__trie_remove(t, "a/+", 1), 0);
    assert_int_equal(match(t, "a/b", NULL, &c), 1);
    assert_int_equal(mqtt__trie_size(t), 1);
    assert_int_equal(mqtt__trie_remove(t, "a/+", 1), 0);
    assert_int_equal(match(t, "a/b", NULL, &c), 0);
    assert_int_equal(mqtt__trie_remove(t, "a/+", 1), -ENOENT);
    assert_int_equal(mqtt__trie_size(t), 0);
    assert_int_equal(mqtt__trie_nodes(t), 0);

    /* The same, with the key in an array of several. */
    for (uint64_t k = 1; k <= 5; k++) {
        assert_int_equal(mqtt__trie_add(t, "x", k), 0);
    }
    assert_int_equal(mqtt__trie_add(t, "x", 3), 0);
    assert_int_equal(mqtt__trie_remove(t, "x", 3), 0);
    assert_int_equal(match(t, "x", NULL, &c), 5);
    assert_int_equal(mqtt__trie_remove(t, "x", 3), 0);
    assert_int_equal(match(t, "x", NULL, &c), 4);
    assert_int_equal(mqtt__trie_remove(t, "x", 3), -ENOENT);
    assert_int_equal(mqtt__trie_size(t), 4);
    mqtt__trie_free(t);
}

static void test_remove_unknown(void **state)
{
    mqtt_trie_t *t = mqtt__trie_new();
    collected_t c;
    (void)state;

    assert_int_equal(mqtt__trie_add(t, "a/b/c", 1), 0);
    assert_int_equal(mqtt__trie_add(t, "a/b/d", 2), 0);
    assert_int_equal(mqtt__trie_nodes(t), 3);                      /* "a/b" over "c" and "d" */
    assert_int_equal(mqtt__trie_remove(t, "a/b/c", 2), -ENOENT);   /* known filter, other key */
    assert_int_equal(mqtt__trie_remove(t, "a/b", 1), -ENOENT);     /* a prefix */
    assert_int_equal(mqtt__trie_remove(t, "a/b/c/d", 1), -ENOENT); /* longer */
    assert_int_equal(mqtt__trie_remove(t, "a/+/c", 1), -ENOENT);
    assert_int_equal(mqtt__trie_remove(t, "z", 1), -ENOENT);
    assert_int_equal(mqtt__trie_remove(t, "a/#/c", 1), -ENOENT); /* invalid */
    assert_int_equal(mqtt__trie_remove(t, "", 1), -ENOENT);
    assert_int_equal(mqtt__trie_remove(t, NULL, 1), -ENOENT);
    assert_int_equal(mqtt__trie_remove(t, "$share//a/b/c", 1), -ENOENT); /* no group: invalid */
    assert_int_equal(mqtt__trie_remove(t, "$share/g/a/#/c", 1), -ENOENT);
    assert_int_equal(mqtt__trie_remove(NULL, "a", 1), -EINVAL);
    assert_int_equal(mqtt__trie_size(t), 2);
    /* Removing one branch frees its own node; the other merges with "a/b" again. */
    assert_int_equal(mqtt__trie_remove(t, "a/b/c", 1), 0);
    assert_int_equal(mqtt__trie_nodes(t), 1);
    assert_int_equal(mqtt__trie_remove(t, "a/b", 2), -ENOENT); /* inside the node "a/b/d" */
    assert_int_equal(mqtt__trie_remove(t, "a/b/d/e", 2), -ENOENT);
    assert_int_equal(match(t, "a/b/d", NULL, &c), 1);
    assert_int_equal(mqtt__trie_remove(t, "a/b/d", 2), 0);
    assert_int_equal(mqtt__trie_nodes(t), 0);
    /* A filter that is a prefix of another keeps its keys when the longer one goes. */
    assert_int_equal(mqtt__trie_add(t, "a", 1), 0);
    assert_int_equal(mqtt__trie_add(t, "a/b/c", 2), 0);
    assert_int_equal(mqtt__trie_remove(t, "a/b/c", 2), 0);
    assert_int_equal(mqtt__trie_nodes(t), 1);
    assert_int_equal(match(t, "a", NULL, &c), 1);
    mqtt__trie_free(t);
}

static void test_invalid_rejected(void **state)
{
    static const char *const bad[] = {"",          "a/#/b",     "sport+",      "a#",
                                      "$share/g",  "$share//a", "$share/+/a",  "a/\xc3",
                                      "$share/g/", "#/a",       "$share/g/a#", NULL};
    mqtt_trie_t *t = mqtt__trie_new();
    collected_t c;
    (void)state;

    assert_int_equal(mqtt__trie_add(t, "a/b", 1), 0);
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(bad); i++) {
        assert_int_equal(mqtt__trie_add(t, bad[i], 2), PELIX_E_TOPIC);
    }
    assert_int_equal(mqtt__trie_add(NULL, "a", 1), -EINVAL);
    assert_int_equal(mqtt__trie_size(t), 1);
    assert_int_equal(mqtt__trie_nodes(t), 1);
    /* Invalid topics are reported, and the callback is not called. */
    c.len = 0;
    assert_int_equal(mqtt__trie_match(t, "a/+", NULL, collect_fn, &c), PELIX_E_TOPIC);
    assert_int_equal(mqtt__trie_match(t, "a/#", NULL, collect_fn, &c), PELIX_E_TOPIC);
    assert_int_equal(mqtt__trie_match(t, "", NULL, collect_fn, &c), PELIX_E_TOPIC);
    assert_int_equal(mqtt__trie_match(t, "a/\xff", NULL, collect_fn, &c), PELIX_E_TOPIC);
    assert_int_equal(mqtt__trie_match(t, NULL, NULL, collect_fn, &c), PELIX_E_TOPIC);
    assert_int_equal(mqtt__trie_match(NULL, "a", NULL, collect_fn, &c), -EINVAL);
    assert_int_equal(c.len, 0);
    assert_null(mqtt__trie_free(t));
    assert_null(mqtt__trie_free(NULL));
    assert_int_equal(mqtt__trie_size(NULL), 0);
}

static void test_shared(void **state)
{
    mqtt_trie_t *t = mqtt__trie_new();
    collected_t c;
    (void)state;

    assert_int_equal(mqtt__trie_add(t, "$share/g/a/+", 1), 0);
    assert_int_equal(match(t, "a/b", NULL, &c), 1);
    assert_int_equal(match(t, "$share/g/a/b", NULL, &c), 0);   /* stored without the prefix */
    assert_int_equal(mqtt__trie_add(t, "a/+", 1), 0);          /* the same pair */
    assert_int_equal(mqtt__trie_add(t, "$share/h/a/+", 1), 0); /* idem */
    assert_int_equal(mqtt__trie_size(t), 1);
    assert_int_equal(mqtt__trie_add(t, "$share/h/a/+", 2), 0);
    assert_int_equal(mqtt__trie_size(t), 2);
    assert_int_equal(match(t, "a/b", NULL, &c), 2);
    assert_int_equal(mqtt__trie_remove(t, "$share/zz/a/+", 1), 0);
    assert_int_equal(mqtt__trie_remove(t, "a/+", 1), 0);
    assert_int_equal(match(t, "a/b", NULL, &c), 2);
    assert_int_equal(mqtt__trie_remove(t, "$share/g/a/+", 1), 0);
    assert_int_equal(mqtt__trie_remove(t, "$share/g/a/+", 1), -ENOENT);
    assert_int_equal(match(t, "a/b", NULL, &c), 1);
    assert_int_equal(c.keys[0], 2);
    /* "$share" alone is an ordinary level; "$share/#" is not a valid filter. */
    assert_int_equal(mqtt__trie_add(t, "$share", 3), 0);
    assert_int_equal(match(t, "$share", NULL, &c), 1);
    assert_int_equal(mqtt__trie_add(t, "$share/#", 3), PELIX_E_TOPIC);
    mqtt__trie_free(t);
}

/* ---- allocation failures --------------------------------------------------------------------- */

static const char *const probes[] = {"a/b/c", "a/x",  "a/k5", "a/k12", "q/r", "$share/g/q/r",
                                     "z",     "a/+x", "a",    "$SYS",  "a/b", "a/b/c/d"};

/* A digest of what the trie answers, to tell whether a failed call changed it. */
static uint64_t digest(const mqtt_trie_t *t)
{
    uint64_t h = mqtt__trie_size(t) * 1000003u + mqtt__trie_nodes(t);
    collected_t c;

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(probes); i++) {
        int rc = match(t, probes[i], NULL, &c);
        h = h * 31 + (uint64_t)(rc + 7);
        for (size_t j = 0; j < c.len; j++) {
            h = h * 131 + c.keys[j];
        }
    }
    return h;
}

static int add_under_oom(mqtt_trie_t *t, const char *filter, uint64_t key)
{
    for (long n = 0;; n++) {
        uint64_t before = digest(t);
        int rc;

        pelix__alloc_fail_after(n);
        rc = mqtt__trie_add(t, filter, key);
        pelix__alloc_fail_after(-1);
        if (rc != -ENOMEM) {
            return (int)n;
        }
        assert_true(n < 100);
        assert_int_equal(digest(t), before);
    }
}

static void test_oom_add(void **state)
{
    mqtt_trie_t *t;
    char filter[32];
    (void)state;

    pelix__alloc_fail_after(0);
    assert_null(mqtt__trie_new());
    pelix__alloc_fail_after(1);
    assert_null(mqtt__trie_new());
    pelix__alloc_fail_after(-1);
    t = mqtt__trie_new();
    assert_non_null(t);

    /* A new three-level path: one node, the root's first child (inline). */
    assert_int_equal(add_under_oom(t, "a/b/c", 1), 1);
    /* Inline key -> array of keys, then array growth. */
    for (uint64_t k = 2; k <= 9; k++) {
        add_under_oom(t, "a/b/c", k);
    }
    assert_int_equal(add_under_oom(t, "a/b/c", 5), 0); /* a second count: no allocation */
    /* Splitting "a/b/c": "a", "b/c", "x", then the kid array of "a". */
    assert_int_equal(add_under_oom(t, "a/x", 1), 4);
    /* One child -> array of 2, 4, 8 -> table of 16 -> 32. */
    for (int i = 0; i < 20; i++) {
        snprintf(filter, sizeof(filter), "a/k%d", i);
        add_under_oom(t, filter, (uint64_t)i);
    }
    add_under_oom(t, "a/+/#", 3);
    add_under_oom(t, "#", 4);
    add_under_oom(t, "+", 5);
    add_under_oom(t, "$share/g/q/r", 6);
    add_under_oom(t, "$SYS", 7);
    assert_int_equal(mqtt__trie_size(t), 9 + 1 + 20 + 5);
    {
        collected_t c;
        assert_int_equal(match(t, "a/b/c", NULL, &c), 9); /* "a/+/#" has key 3 too */
        assert_int_equal(match(t, "a/k12", NULL, &c), 3); /* 12, 3 and 4 */
    }
    mqtt__trie_free(t);
}

static void test_oom_match_and_remove(void **state)
{
    mqtt_trie_t *t = mqtt__trie_new();
    mqtt_trie_scratch_t s = MQTT_TRIE_SCRATCH_INIT;
    collected_t c;
    char filter[32];
    long n;
    (void)state;

    for (int i = 0; i < 64; i++) {
        snprintf(filter, sizeof(filter), "w/%d", i);
        assert_int_equal(mqtt__trie_add(t, filter, (uint64_t)i), 0);
        assert_int_equal(mqtt__trie_add(t, "w/#", (uint64_t)i), 0);
    }
    /* The scratch grows in steps; each failure reports -ENOMEM and calls nothing. */
    for (n = 0;; n++) {
        pelix__alloc_fail_after(n);
        c.len = 0;
        int rc = mqtt__trie_match(t, "w/7", &s, collect_fn, &c);
        pelix__alloc_fail_after(-1);
        if (rc != -ENOMEM) {
            assert_int_equal(rc, 64);
            break;
        }
        assert_int_equal(c.len, 0);
    }
    assert_true(n >= 3); /* levels, stack, keys */
    /* Once grown, a scratch does not allocate. */
    pelix__alloc_fail_after(0);
    assert_int_equal(mqtt__trie_match(t, "w/9", &s, NULL, NULL), 64);
    /* Removal never fails for lack of memory (a table that cannot shrink stays as it is). */
    for (int i = 63; i >= 0; i--) {
        snprintf(filter, sizeof(filter), "w/%d", i);
        assert_int_equal(mqtt__trie_remove(t, filter, (uint64_t)i), 0);
        assert_int_equal(mqtt__trie_remove(t, "w/#", (uint64_t)i), 0);
        assert_int_equal(mqtt__trie_match(t, "w/0", &s, NULL, NULL), i > 0 ? i : 0);
    }
    pelix__alloc_fail_after(-1);
    assert_int_equal(mqtt__trie_nodes(t), 0);
    mqtt__trie_scratch_free(&s);
    mqtt__trie_free(t);
}

/* ---- wide and deep tries --------------------------------------------------------------------- */

static void test_wide(void **state)
{
    enum { N = 3000 };
    static int order[N];
    mqtt_trie_t *t = mqtt__trie_new();
    mqtt_trie_scratch_t s = MQTT_TRIE_SCRATCH_INIT;
    char filter[32];
    collected_t c;
    (void)state;

    srand(77);
    for (int i = 0; i < N; i++) {
        order[i] = i;
        snprintf(filter, sizeof(filter), "w/%d", i);
        assert_int_equal(mqtt__trie_add(t, filter, (uint64_t)i), 0);
    }
    assert_int_equal(mqtt__trie_nodes(t), N + 1);
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    /* Remove in random order; what remains still matches (backward-shift deletion, shrinking). */
    for (int r = 0; r < N; r++) {
        snprintf(filter, sizeof(filter), "w/%d", order[r]);
        assert_int_equal(mqtt__trie_remove(t, filter, (uint64_t)order[r]), 0);
        assert_int_equal(match(t, filter, &s, &c), 0);
        for (int k = 0; k < 5 && r + 1 + k < N; k++) {
            int other = order[r + 1 + (rand() % (N - r - 1))];
            snprintf(filter, sizeof(filter), "w/%d", other);
            assert_int_equal(match(t, filter, &s, &c), 1);
            assert_int_equal(c.keys[0], (uint64_t)other);
        }
    }
    assert_int_equal(mqtt__trie_nodes(t), 0);
    assert_int_equal(mqtt__trie_size(t), 0);
    mqtt__trie_scratch_free(&s);
    mqtt__trie_free(t);
}

static void test_deep(void **state)
{
    /* The longest filter of empty levels: 65535 '/' are 65536 levels, in one node. */
    char *deep = malloc(MQTT_TOPIC_MAX_LEN + 1), *plus = malloc(MQTT_TOPIC_MAX_LEN + 1);
    mqtt_trie_t *t = mqtt__trie_new();
    mqtt_trie_scratch_t s = MQTT_TRIE_SCRATCH_INIT;
    collected_t c;
    size_t nodes;
    (void)state;

    assert_non_null(deep);
    assert_non_null(plus);
    /* 32768 levels of '+'. */
    for (size_t i = 0; i < MQTT_TOPIC_MAX_LEN; i++) {
        plus[i] = i % 2 ? '/' : '+';
    }
    plus[MQTT_TOPIC_MAX_LEN] = '\0';
    assert_int_equal(mqtt__trie_add(t, "#", 2), 0);
    assert_int_equal(mqtt__trie_add(t, "/+/#", 3), 0);
    assert_int_equal(mqtt__trie_add(t, plus, 4), 0);
    nodes = mqtt__trie_nodes(t);
    assert_int_equal(nodes, 1 + 2 + 1); /* "#"; "/+" over "#"; the '+' path is one node */
    memset(deep, '/', MQTT_TOPIC_MAX_LEN);
    deep[MQTT_TOPIC_MAX_LEN] = '\0';
    assert_int_equal(mqtt__trie_add(t, deep, 1), 0);
    assert_int_equal(mqtt__trie_nodes(t), nodes + 2); /* "/+" split: "" over "+" and the rest */

    assert_int_equal(match(t, deep, &s, &c), 3); /* itself, "#", "/+/#" */
    deep[MQTT_TOPIC_MAX_LEN - 1] = 'x';
    assert_int_equal(match(t, deep, &s, &c), 2);
    deep[32767] = '\0';                          /* 32767 '/': 32768 empty levels */
    assert_int_equal(match(t, deep, &s, &c), 3); /* "#", "/+/#", the '+' chain */
    assert_int_equal(c.keys[2], 4);
    memset(deep, '/', MQTT_TOPIC_MAX_LEN);
    assert_int_equal(mqtt__trie_remove(t, deep, 1), 0);
    assert_int_equal(mqtt__trie_nodes(t), nodes);
    mqtt__trie_scratch_free(&s);
    mqtt__trie_free(t); /* iterative: the deep chain of '+' is still there */
    free(deep);
    free(plus);
}

/* ---- concurrent matches ---------------------------------------------------------------------- */

enum { THREADS = 4, FILTERS = 400, ROUNDS = 1500 };

typedef struct shared_trie {
    const mqtt_trie_t *t;
    const model_t *m;
    unsigned seed;
    long mismatches;
} shared_trie_t;

static void *matcher(void *arg)
{
    shared_trie_t *sh = arg;
    mqtt_trie_scratch_t s = MQTT_TRIE_SCRATCH_INIT;
    unsigned x = sh->seed;

    for (int r = 0; r < ROUNDS; r++) {
        char topic[64];
        uint64_t want[FILTERS];
        size_t used = 0, levels;
        int got;

        x = x * 1103515245u + 12345u;
        levels = 1 + (x >> 16) % 4;
        for (size_t i = 0; i < levels; i++) {
            x = x * 1103515245u + 12345u;
            const char *lv = alphabet[(x >> 16) % PELIX_ARRAY_SIZE(alphabet)];
            if (lv[0] == '+' || lv[0] == '#') {
                lv = "c";
            }
            used += (size_t)snprintf(topic + used, sizeof(topic) - used, "%s%s", i ? "/" : "", lv);
        }
        if (topic[0] == '\0') {
            topic[0] = 'c';
            topic[1] = '\0';
        }
        size_t len = brute(sh->m, FILTERS, topic, want);
        got = mqtt__trie_match(sh->t, topic, &s, NULL, NULL);
        if (got != (int)len || memcmp(want, s.keys, len * sizeof(uint64_t)) != 0) {
            sh->mismatches++;
        }
    }
    mqtt__trie_scratch_free(&s);
    return NULL;
}

static void test_concurrent_matches(void **state)
{
    static model_t m[FILTERS];
    shared_trie_t sh[THREADS];
    pthread_t th[THREADS];
    mqtt_trie_t *t = mqtt__trie_new();
    long mismatches = 0;
    int joined = 0;
    (void)state;

    srand(99);
    for (size_t i = 0; i < FILTERS; i++) {
        random_topic(m[i].filter, sizeof(m[i].filter), true);
        m[i].key = (uint64_t)(rand() % 50);
        m[i].count = mqtt__trie_add(t, m[i].filter, m[i].key) == 0;
    }
    for (unsigned i = 0; i < THREADS; i++) {
        sh[i] = (shared_trie_t){t, m, 1000 + i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, matcher, &sh[i]), 0);
    }
    /* Join every thread before asserting: a failed assertion leaves the function. */
    for (unsigned i = 0; i < THREADS; i++) {
        joined += pthread_join(th[i], NULL) == 0;
        mismatches += sh[i].mismatches;
    }
    assert_int_equal(joined, THREADS);
    assert_int_equal(mismatches, 0);
    mqtt__trie_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_one_by_one),
        cmocka_unit_test(test_vectors_together),
        cmocka_unit_test(test_random_differential),
        cmocka_unit_test(test_dedupe_and_order),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_remove_unknown),
        cmocka_unit_test(test_invalid_rejected),
        cmocka_unit_test(test_shared),
        cmocka_unit_test_teardown(test_oom_add, reset_alloc),
        cmocka_unit_test_teardown(test_oom_match_and_remove, reset_alloc),
        cmocka_unit_test(test_wide),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_concurrent_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
