/*
 * Unit tests of the util module's hash maps: string and long keys, tombstones, bulk use,
 * iteration and allocation failures.
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

/* ---- hash maps ------------------------------------------------------------------------------- */

static void test_map_str_basic(void **state)
{
    pelix_map_t m;
    int one = 1, two = 2, three = 3;
    char key[] = "alpha";
    (void)state;

    pelix__map_init_str(&m);
    assert_null(pelix__map_get_str(&m, "alpha"));
    assert_null(pelix__map_remove_str(&m, "alpha"));

    assert_int_equal(pelix__map_put_str(&m, "alpha", &one), 0);
    assert_int_equal(pelix__map_put_str(&m, "beta", &two), 0);
    assert_int_equal(m.count, 2);
    /* Keys compare by content, not by pointer; and case-sensitively. */
    assert_ptr_equal(pelix__map_get_str(&m, key), &one);
    assert_null(pelix__map_get_str(&m, "Alpha"));
    assert_ptr_equal(pelix__map_get_str(&m, "beta"), &two);

    /* Replace keeps the count. */
    assert_int_equal(pelix__map_put_str(&m, "alpha", &three), 0);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(pelix__map_get_str(&m, "alpha"), &three);

    assert_ptr_equal(pelix__map_remove_str(&m, "alpha"), &three);
    assert_int_equal(m.count, 1);
    assert_null(pelix__map_get_str(&m, "alpha"));
    assert_null(pelix__map_remove_str(&m, "alpha"));
    assert_ptr_equal(pelix__map_get_str(&m, "beta"), &two);

    pelix__map_clear(&m);
    assert_int_equal(m.count, 0);
    assert_true(m.strings);
    assert_null(pelix__map_get_str(&m, "beta"));
    /* Usable after clear. */
    assert_int_equal(pelix__map_put_str(&m, "gamma", &one), 0);
    assert_ptr_equal(pelix__map_get_str(&m, "gamma"), &one);
    pelix__map_clear(&m);
}

static void test_map_long_basic(void **state)
{
    pelix_map_t m;
    int one = 1, two = 2;
    (void)state;

    pelix__map_init_long(&m);
    assert_null(pelix__map_get_long(&m, 1));
    assert_int_equal(pelix__map_put_long(&m, 1, &one), 0);
    assert_int_equal(pelix__map_put_long(&m, LONG_MAX, &two), 0);
    /* 0 marks an empty slot: not a key. */
    assert_int_equal(pelix__map_put_long(&m, 0, &one), -EINVAL);
    assert_int_equal(pelix__map_put_long(&m, -1, &one), -EINVAL);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(pelix__map_get_long(&m, 1), &one);
    assert_ptr_equal(pelix__map_get_long(&m, LONG_MAX), &two);
    assert_null(pelix__map_get_long(&m, 2));

    assert_int_equal(pelix__map_put_long(&m, 1, &two), 0);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(pelix__map_get_long(&m, 1), &two);

    assert_ptr_equal(pelix__map_remove_long(&m, 1), &two);
    assert_null(pelix__map_get_long(&m, 1));
    assert_null(pelix__map_remove_long(&m, 1));
    assert_int_equal(m.count, 1);
    pelix__map_clear(&m);
    assert_false(m.strings);
    assert_null(pelix__map_get_long(&m, LONG_MAX));
}

static void test_map_tombstone_reuse(void **state)
{
    pelix_map_t m;
    int v = 1;
    char keys[10000][8];
    size_t cap;
    (void)state;

    pelix__map_init_str(&m);
    assert_int_equal(pelix__map_put_str(&m, "a", &v), 0);
    assert_int_equal(m.used, 1);
    cap = m.cap;
    assert_ptr_equal(pelix__map_remove_str(&m, "a"), &v);
    assert_int_equal(m.count, 0);
    assert_int_equal(m.used, 1); /* a tombstone stays */
    /* Re-inserting the same key lands on its tombstone instead of a new slot. */
    assert_int_equal(pelix__map_put_str(&m, "a", &v), 0);
    assert_int_equal(m.count, 1);
    assert_int_equal(m.used, 1);
    assert_int_equal(m.cap, cap);
    assert_ptr_equal(pelix__map_remove_str(&m, "a"), &v);

    /* Churn through many distinct keys: tombstones are purged, the table does not grow. */
    for (int i = 0; i < 10000; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        assert_int_equal(pelix__map_put_str(&m, keys[i], &v), 0);
        assert_ptr_equal(pelix__map_get_str(&m, keys[i]), &v);
        assert_ptr_equal(pelix__map_remove_str(&m, keys[i]), &v);
        assert_true(m.used < m.cap);
    }
    assert_int_equal(m.count, 0);
    assert_int_equal(m.cap, cap);
    for (int i = 0; i < 10000; i++) {
        assert_null(pelix__map_get_str(&m, keys[i]));
    }
    pelix__map_clear(&m);
}

#define BULK 100000

static void test_map_str_bulk(void **state)
{
    pelix_map_t m;
    char(*keys)[16] = malloc(BULK * sizeof(*keys));
    char probe[16];
    (void)state;

    assert_non_null(keys);
    pelix__map_init_str(&m);
    for (long i = 0; i < BULK; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%ld", i);
        assert_int_equal(pelix__map_put_str(&m, keys[i], (void *)(intptr_t)(i + 1)), 0);
    }
    assert_int_equal(m.count, BULK);
    for (long i = 0; i < BULK; i++) {
        /* Look up with a different buffer holding the same text. */
        snprintf(probe, sizeof(probe), "key-%ld", i);
        assert_int_equal((intptr_t)pelix__map_get_str(&m, probe), i + 1);
    }
    for (long i = 0; i < BULK; i += 2) {
        assert_int_equal((intptr_t)pelix__map_remove_str(&m, keys[i]), i + 1);
    }
    assert_int_equal(m.count, BULK / 2);
    for (long i = 0; i < BULK; i++) {
        void *v = pelix__map_get_str(&m, keys[i]);
        if (i % 2) {
            assert_int_equal((intptr_t)v, i + 1);
        } else {
            assert_null(v);
        }
    }
    assert_null(pelix__map_get_str(&m, "key-100000"));
    for (long i = 1; i < BULK; i += 2) {
        assert_int_equal((intptr_t)pelix__map_remove_str(&m, keys[i]), i + 1);
    }
    assert_int_equal(m.count, 0);
    for (long i = 0; i < BULK; i++) {
        assert_null(pelix__map_get_str(&m, keys[i]));
    }
    pelix__map_clear(&m);
    free(keys);
}

static void test_map_long_bulk(void **state)
{
    pelix_map_t m;
    (void)state;

    pelix__map_init_long(&m);
    /* Dense ids 1..BULK and sparse large ones. */
    for (long i = 1; i <= BULK; i++) {
        assert_int_equal(pelix__map_put_long(&m, i, (void *)(intptr_t)i), 0);
        assert_int_equal(pelix__map_put_long(&m, i * 1000003L + 0x40000000L, (void *)(intptr_t)-i),
                         0);
    }
    assert_int_equal(m.count, 2 * BULK);
    for (long i = 1; i <= BULK; i++) {
        assert_int_equal((intptr_t)pelix__map_get_long(&m, i), i);
        assert_int_equal((intptr_t)pelix__map_get_long(&m, i * 1000003L + 0x40000000L), -i);
    }
    for (long i = 1; i <= BULK; i++) {
        assert_int_equal((intptr_t)pelix__map_remove_long(&m, i), i);
    }
    assert_int_equal(m.count, BULK);
    for (long i = 1; i <= BULK; i++) {
        assert_null(pelix__map_get_long(&m, i));
        assert_int_equal((intptr_t)pelix__map_get_long(&m, i * 1000003L + 0x40000000L), -i);
    }
    /* Removed ids can be inserted again. */
    assert_int_equal(pelix__map_put_long(&m, 5, (void *)(intptr_t)55), 0);
    assert_int_equal((intptr_t)pelix__map_get_long(&m, 5), 55);
    assert_int_equal(m.count, BULK + 1);
    pelix__map_clear(&m);
}

#define ITER_N 1000

/* Iterates `m`, whose values point into `seen`, and checks every third entry is gone. */
static void check_iteration(const pelix_map_t *m, int *seen, char (*keys)[8])
{
    size_t pos = 0, visits = 0;
    const char *skey;
    long lkey;
    void *value;

    memset(seen, 0, ITER_N * sizeof(*seen));
    while (pelix__map_next(m, &pos, &skey, &lkey, &value)) {
        int i = (int)((int *)value - seen);
        assert_true(i >= 0 && i < ITER_N);
        if (m->strings) {
            assert_string_equal(skey, keys[i]);
        } else {
            assert_int_equal(lkey, i + 1);
        }
        seen[i]++;
        visits++;
    }
    assert_int_equal(visits, m->count);
    for (int i = 0; i < ITER_N; i++) {
        assert_int_equal(seen[i], i % 3 ? 1 : 0);
    }
    /* Finished iterations stay finished. */
    assert_false(pelix__map_next(m, &pos, NULL, NULL, NULL));
}

static void test_map_iteration(void **state)
{
    pelix_map_t sm, lm;
    char keys[ITER_N][8];
    int seen[ITER_N];
    size_t pos = 0;
    (void)state;

    pelix__map_init_str(&sm);
    pelix__map_init_long(&lm);
    /* Iterating an empty map visits nothing. */
    assert_false(pelix__map_next(&sm, &pos, NULL, NULL, NULL));

    for (int i = 0; i < ITER_N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%d", i);
        assert_int_equal(pelix__map_put_str(&sm, keys[i], &seen[i]), 0);
        assert_int_equal(pelix__map_put_long(&lm, i + 1, &seen[i]), 0);
    }
    for (int i = 0; i < ITER_N; i += 3) {
        assert_non_null(pelix__map_remove_str(&sm, keys[i]));
        assert_non_null(pelix__map_remove_long(&lm, i + 1));
    }
    check_iteration(&sm, seen, keys);
    check_iteration(&lm, seen, keys);
    pelix__map_clear(&sm);
    pelix__map_clear(&lm);
}

static void test_map_oom(void **state)
{
    pelix_map_t m;
    int v[8];
    char keys[8][4];
    int rc;
    (void)state;

    pelix__map_init_str(&m);
    pelix__alloc_fail_after(0);
    rc = pelix__map_put_str(&m, "x", &v[0]);
    pelix__alloc_fail_after(-1);
    assert_int_equal(rc, -ENOMEM);
    assert_int_equal(m.count, 0);
    assert_null(pelix__map_get_str(&m, "x"));

    /* Fill until the next insert needs a bigger table, then make that growth fail. */
    for (int i = 0; i < 8; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
    }
    for (int i = 0; i < 6; i++) {
        assert_int_equal(pelix__map_put_str(&m, keys[i], &v[i]), 0);
    }
    assert_int_equal(m.cap, 8);
    pelix__alloc_fail_after(0);
    rc = pelix__map_put_str(&m, keys[6], &v[6]);
    /* Replacing an existing key needs no memory. */
    assert_int_equal(pelix__map_put_str(&m, keys[0], &v[7]), 0);
    pelix__alloc_fail_after(-1);
    assert_int_equal(rc, -ENOMEM);
    assert_int_equal(m.count, 6);
    assert_null(pelix__map_get_str(&m, keys[6]));
    assert_ptr_equal(pelix__map_get_str(&m, keys[0]), &v[7]);
    for (int i = 1; i < 6; i++) {
        assert_ptr_equal(pelix__map_get_str(&m, keys[i]), &v[i]);
    }
    assert_int_equal(pelix__map_put_str(&m, keys[6], &v[6]), 0);
    assert_ptr_equal(pelix__map_get_str(&m, keys[6]), &v[6]);
    pelix__map_clear(&m);
}

/* ---- misc ------------------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_str_basic),
        cmocka_unit_test(test_map_long_basic),
        cmocka_unit_test(test_map_tombstone_reuse),
        cmocka_unit_test(test_map_str_bulk),
        cmocka_unit_test(test_map_long_bulk),
        cmocka_unit_test(test_map_iteration),
        cmocka_unit_test_teardown(test_map_oom, reset_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
