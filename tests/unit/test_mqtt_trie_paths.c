/*
 * Unit tests of the trie's compressed paths (a node holds the levels where no filter branches off
 * nor ends): splits and merges, '+' inside a node, topics that stop inside one; the filter tags
 * and the last-key signal the MQTT service counts subscriptions with; the enumeration of stored
 * filters; and, under random changes, that the trie always has the node count of one built from
 * scratch with the same filters (every merge happened) and enumerates exactly them.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
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

static int count(const mqtt_trie_t *t, const char *topic)
{
    return mqtt__trie_match(t, topic, NULL, NULL, NULL);
}

static void test_split_and_merge(void **state)
{
    mqtt_trie_t *t = mqtt__trie_new();
    bool last = false;
    (void)state;

    assert_int_equal(mqtt__trie_add(t, "a/+/c", 1), 0);
    assert_int_equal(mqtt__trie_nodes(t), 1);
    assert_true(mqtt__trie_contains(t, "a/+/c", 1));
    assert_true(mqtt__trie_contains(t, "$share/g/a/+/c", 1)); /* the same pair */
    assert_false(mqtt__trie_contains(t, "a/+/c", 2));
    assert_false(mqtt__trie_contains(t, "a/+", 1)); /* inside the node */
    assert_false(mqtt__trie_contains(t, "a/+/c/d", 1));
    assert_false(mqtt__trie_contains(t, "a/#/c", 1)); /* invalid */
    assert_int_equal(count(t, "a/x/c"), 1);
    assert_int_equal(count(t, "a//c"), 1); /* '+' inside a node matches an empty level too */
    assert_int_equal(count(t, "a/x"), 0);  /* the topic stops inside the node */
    assert_int_equal(count(t, "a/x/c/d"), 0);
    assert_int_equal(count(t, "a/x/d"), 0);
    assert_int_equal(count(t, "a"), 0);

    assert_int_equal(mqtt__trie_add(t, "a/+/d", 2), 0); /* "a/+" over "c" and "d" */
    assert_int_equal(mqtt__trie_nodes(t), 3);
    assert_int_equal(mqtt__trie_add(t, "a", 3), 0); /* "a" over "+" over "c" and "d" */
    assert_int_equal(mqtt__trie_nodes(t), 4);
    assert_int_equal(count(t, "a"), 1);
    assert_int_equal(count(t, "a/y/d"), 1);
    assert_int_equal(mqtt__trie_add(t, "a/+/#", 4), 0); /* '#' is always a node of its own */
    assert_int_equal(mqtt__trie_nodes(t), 5);
    assert_int_equal(count(t, "a/y"), 1); /* "a/+/#" matches its parent level */
    assert_int_equal(count(t, "a/y/d"), 2);
    assert_int_equal(mqtt__trie_remove(t, "a/+/#", 4), 0);

    assert_int_equal(mqtt__trie_remove_last(t, "a/+/c", 1, &last), 0);
    assert_true(last);
    assert_int_equal(mqtt__trie_nodes(t), 2); /* "a" over "+/d" */
    assert_int_equal(count(t, "a/y/d"), 1);
    assert_int_equal(mqtt__trie_remove(t, "a", 3), 0);
    assert_int_equal(mqtt__trie_nodes(t), 1); /* "a/+/d" again */
    assert_int_equal(count(t, "a/y/d"), 1);
    assert_int_equal(count(t, "a"), 0);
    assert_int_equal(mqtt__trie_remove(t, "a/+", 2), -ENOENT);
    assert_int_equal(mqtt__trie_remove(t, "a/+/d", 2), 0);
    assert_int_equal(mqtt__trie_nodes(t), 0);

    /* A '$' topic is not matched by a leading '+' even when the rest of the node matches. */
    assert_int_equal(mqtt__trie_add(t, "+/b/c", 5), 0);
    assert_int_equal(count(t, "x/b/c"), 1);
    assert_int_equal(count(t, "$x/b/c"), 0);
    mqtt__trie_free(t);
}

static void test_tags_and_last(void **state)
{
    mqtt_trie_t *t = mqtt__trie_new();
    bool last = true;
    int prev = 99;
    (void)state;

    assert_int_equal(mqtt__trie_add_tagged(t, "s/+/t", 1, 1, &prev), 0);
    assert_int_equal(prev, -1); /* new filter */
    assert_int_equal(mqtt__trie_add_tagged(t, "s/+/t", 2, 0, &prev), 0);
    assert_int_equal(prev, 1); /* the tag stays the maximum */
    assert_int_equal(mqtt__trie_add_tagged(t, "s/+/t", 3, 2, &prev), 0);
    assert_int_equal(prev, 1);
    assert_int_equal(mqtt__trie_add_tagged(t, "s/+/t", 3, 7, &prev), 0); /* same pair, counted */
    assert_int_equal(prev, 2);
    /* A split moves the tag with the keys, and the new head filter has its own. */
    assert_int_equal(mqtt__trie_add_tagged(t, "s", 4, 1, &prev), 0);
    assert_int_equal(prev, -1);
    assert_int_equal(mqtt__trie_add_tagged(t, "s/+/t", 5, 0, &prev), 0);
    assert_int_equal(prev, 3);

    assert_int_equal(mqtt__trie_remove_last(t, "s/+/t", 1, &last), 0);
    assert_false(last);
    assert_int_equal(mqtt__trie_remove_last(t, "s/+/t", 3, &last), 0);
    assert_false(last); /* key 3 had two counts */
    assert_int_equal(mqtt__trie_remove_last(t, "s/+/t", 2, &last), 0);
    assert_int_equal(mqtt__trie_remove_last(t, "s/+/t", 3, &last), 0);
    assert_false(last);
    assert_int_equal(mqtt__trie_remove_last(t, "s/+/t", 5, &last), 0);
    assert_true(last);
    /* Gone: a new first key starts the tag afresh. */
    assert_int_equal(mqtt__trie_add_tagged(t, "s/+/t", 6, 0, &prev), 0);
    assert_int_equal(prev, -1);
    assert_int_equal(mqtt__trie_add_tagged(t, "s/+/t", 6, 0, &prev), 0);
    assert_int_equal(prev, 0);
    /* "$share/g/s" is the pair ("s", key) for the trie. */
    assert_int_equal(mqtt__trie_add_tagged(t, "$share/g/s", 4, 0, &prev), 0);
    assert_int_equal(prev, 1);
    mqtt__trie_free(t);
}

/* ---- enumeration ----------------------------------------------------------------------------- */

typedef struct listing {
    char *filters[512];
    unsigned tags[512];
    size_t n;
} listing_t;

static void list_fn(void *ctx, const char *filter, unsigned tag)
{
    listing_t *l = ctx;
    assert_true(l->n < PELIX_ARRAY_SIZE(l->filters));
    l->filters[l->n] = strdup(filter);
    l->tags[l->n++] = tag;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void listing_sort(listing_t *l)
{
    qsort(l->filters, l->n, sizeof(char *), by_text);
}

static void listing_free(listing_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->filters[i]);
    }
    l->n = 0;
}

static void test_each_filter(void **state)
{
    static const char *const filters[] = {"#",     "+",     "/",     "//",     "/a",  "a",
                                          "a/b/c", "a/b/d", "a/+/#", "$SYS/#", "a//b"};
    static listing_t l;
    mqtt_trie_t *t = mqtt__trie_new();
    const char *sorted[PELIX_ARRAY_SIZE(filters)];
    (void)state;

    assert_int_equal(mqtt__trie_each_filter(t, list_fn, &l), 0);
    assert_int_equal(l.n, 0);
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(filters); i++) {
        assert_int_equal(mqtt__trie_add_tagged(t, filters[i], 1, (unsigned)i % 3, NULL), 0);
        sorted[i] = filters[i];
    }
    assert_int_equal(mqtt__trie_add(t, "$share/g/a/b/c", 2), 0); /* listed as "a/b/c", once */
    assert_int_equal(mqtt__trie_each_filter(t, list_fn, &l), 0);
    for (size_t i = 0; i < l.n; i++) {
        size_t at = 0;
        while (at < PELIX_ARRAY_SIZE(filters) && strcmp(filters[at], l.filters[i]) != 0) {
            at++;
        }
        assert_true(at < PELIX_ARRAY_SIZE(filters));
        assert_int_equal(l.tags[i], at % 3);
    }
    listing_sort(&l);
    qsort(sorted, PELIX_ARRAY_SIZE(sorted), sizeof(char *), by_text);
    assert_int_equal(l.n, PELIX_ARRAY_SIZE(filters));
    for (size_t i = 0; i < l.n; i++) {
        assert_string_equal(l.filters[i], sorted[i]);
    }
    listing_free(&l);
    pelix__alloc_fail_after(0);
    assert_int_equal(mqtt__trie_each_filter(t, list_fn, &l), -ENOMEM);
    pelix__alloc_fail_after(-1);
    listing_free(&l);
    assert_int_equal(mqtt__trie_each_filter(NULL, list_fn, &l), -EINVAL);
    mqtt__trie_free(t);
}

/* ---- random changes: canonical shape, exact listing ------------------------------------------ */

static const char *const alphabet[] = {"", "a", "b", "+", "#", "x/y", "long-level"};

static void random_filter(char *out, size_t size)
{
    size_t levels = 1 + (size_t)rand() % 5, used = 0;

    for (size_t i = 0; i < levels; i++) {
        const char *lv = alphabet[(size_t)rand() % PELIX_ARRAY_SIZE(alphabet)];
        if (lv[0] == '#' && i + 1 < levels) {
            lv = "c";
        }
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "/" : "", lv);
    }
    if (out[0] == '\0') {
        snprintf(out, size, "c");
    }
}

static void test_random_shape(void **state)
{
    enum { N = 200 };
    static char filters[N][64];
    static bool present[N];
    static listing_t got;
    mqtt_trie_t *t = mqtt__trie_new();
    (void)state;

    srand(99);
    for (int round = 0; round < 3000; round++) {
        size_t i = (size_t)rand() % N;
        if (!present[i]) {
            random_filter(filters[i], sizeof(filters[i]));
            /* one key per distinct filter text: the model is the set of present filters */
            for (size_t j = 0; j < N; j++) {
                if (present[j] && strcmp(filters[j], filters[i]) == 0) {
                    i = N;
                    break;
                }
            }
            if (i == N) {
                continue;
            }
            assert_int_equal(mqtt__trie_add(t, filters[i], 1), 0);
            present[i] = true;
        } else {
            bool last = false;
            assert_int_equal(mqtt__trie_remove_last(t, filters[i], 1, &last), 0);
            assert_true(last);
            present[i] = false;
        }
        if (round % 50 == 0) {
            mqtt_trie_t *fresh = mqtt__trie_new();
            size_t n = 0;
            for (size_t j = 0; j < N; j++) {
                if (present[j]) {
                    assert_int_equal(mqtt__trie_add(fresh, filters[j], 1), 0);
                    n++;
                }
            }
            assert_int_equal(mqtt__trie_nodes(t), mqtt__trie_nodes(fresh));
            assert_int_equal(mqtt__trie_each_filter(t, list_fn, &got), 0);
            assert_int_equal(got.n, n);
            for (size_t k = 0; k < got.n; k++) {
                size_t j = 0;
                while (j < N && !(present[j] && strcmp(filters[j], got.filters[k]) == 0)) {
                    j++;
                }
                if (j == N) {
                    fail_msg("listed '%s', which is not stored", got.filters[k]);
                }
            }
            listing_free(&got);
            mqtt__trie_free(fresh);
        }
    }
    for (size_t j = 0; j < N; j++) {
        if (present[j]) {
            assert_int_equal(mqtt__trie_remove(t, filters[j], 1), 0);
        }
    }
    assert_int_equal(mqtt__trie_nodes(t), 0);
    mqtt__trie_free(t);
}

/* A split or a merge that cannot allocate leaves the trie as it was (split) or still correct. */
static void test_oom_split_and_merge(void **state)
{
    mqtt_trie_t *t = mqtt__trie_new();
    (void)state;

    assert_int_equal(mqtt__trie_add(t, "a/b/c", 1), 0);
    assert_int_equal(mqtt__trie_add(t, "a/b/d", 2), 0); /* "a/b" over "c", "d" */
    for (long n = 0; n < 4; n++) {
        pelix__alloc_fail_after(n);
        assert_int_equal(mqtt__trie_add(t, "a/x", 3), -ENOMEM);
        pelix__alloc_fail_after(-1);
        assert_int_equal(mqtt__trie_nodes(t), 3);
        assert_int_equal(count(t, "a/b/c"), 1);
        assert_int_equal(count(t, "a/x"), 0);
    }
    /* The merge after this remove cannot allocate: skipped, matching still right. */
    pelix__alloc_fail_after(0);
    assert_int_equal(mqtt__trie_remove(t, "a/b/c", 1), 0);
    pelix__alloc_fail_after(-1);
    assert_int_equal(mqtt__trie_nodes(t), 2);
    assert_int_equal(count(t, "a/b/d"), 1);
    assert_int_equal(count(t, "a/b/c"), 0);
    assert_int_equal(count(t, "a/b"), 0);
    /* Later changes work on the unmerged shape, and merge when they can. */
    assert_int_equal(mqtt__trie_add(t, "a/b", 4), 0);
    assert_int_equal(mqtt__trie_remove(t, "a/b", 4), 0);
    assert_int_equal(mqtt__trie_nodes(t), 1);
    assert_int_equal(count(t, "a/b/d"), 1);
    mqtt__trie_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_merge),
        cmocka_unit_test(test_tags_and_last),
        cmocka_unit_test_teardown(test_each_filter, reset_alloc),
        cmocka_unit_test(test_random_shape),
        cmocka_unit_test_teardown(test_oom_split_and_merge, reset_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
