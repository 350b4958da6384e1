/*
 * Unit tests of the MQTT service's listener index (src/mqtt/listener_index.c): random puts and
 * removes against a model, through growth, backward-shift deletion and shrinking, with ids that
 * collide in the table; a put that cannot allocate leaves the index as it was.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <stdlib.h>

#include "mqtt/mqtt_internal.h"

static int reset_alloc(void **state)
{
    (void)state;
    pelix__alloc_fail_after(-1);
    return 0;
}

enum { IDS = 3000 };

static void check_all(const listener_index_t *ix, listener_t *ls, const bool *in)
{
    size_t pos = 0, seen = 0;
    listener_t *l;

    for (size_t i = 0; i < IDS; i++) {
        assert_ptr_equal(mqtt__lindex_get(ix, ls[i].id), in[i] ? &ls[i] : NULL);
        seen += in[i];
    }
    assert_int_equal(ix->count, seen);
    while ((l = mqtt__lindex_next(ix, &pos)) != NULL) {
        assert_true(in[l - ls]);
        seen--;
    }
    assert_int_equal(seen, 0);
}

static void test_random_against_model(void **state)
{
    static listener_t ls[IDS];
    static bool in[IDS];
    listener_index_t ix = {0};
    (void)state;

    srand(5);
    for (size_t i = 0; i < IDS; i++) {
        /* multiples of 1024 collide often once masked */
        ls[i].id = (long)(i % 2 ? i : (i + 1) * 1024); /* distinct: odd, or even */
    }
    assert_null(mqtt__lindex_get(&ix, 1));
    assert_null(mqtt__lindex_remove(&ix, 1));
    for (int round = 0; round < 40000; round++) {
        /* grow to all of them, then shrink to a few, twice */
        int phase = (round / 10000) % 2;
        size_t i = (size_t)rand() % IDS;
        if (!in[i] && (phase == 0 || rand() % 8 == 0)) {
            assert_int_equal(mqtt__lindex_put(&ix, &ls[i]), 0);
            in[i] = true;
        } else if (in[i] && (phase == 1 || rand() % 8 == 0)) {
            assert_ptr_equal(mqtt__lindex_remove(&ix, ls[i].id), &ls[i]);
            in[i] = false;
        }
        if (round % 2000 == 0) {
            check_all(&ix, ls, in);
        }
    }
    check_all(&ix, ls, in);
    mqtt__lindex_clear(&ix);
    assert_int_equal(ix.count, 0);
    assert_null(mqtt__lindex_get(&ix, ls[0].id));
}

static void test_put_without_memory(void **state)
{
    static listener_t ls[64];
    listener_index_t ix = {0};
    (void)state;

    for (int i = 0; i < 64; i++) {
        ls[i].id = i + 1;
    }
    pelix__alloc_fail_after(0);
    assert_int_equal(mqtt__lindex_put(&ix, &ls[0]), -ENOMEM);
    pelix__alloc_fail_after(-1);
    assert_int_equal(ix.count, 0);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(mqtt__lindex_put(&ix, &ls[i]), 0);
    }
    pelix__alloc_fail_after(0); /* the 13th needs a larger table */
    assert_int_equal(mqtt__lindex_put(&ix, &ls[12]), -ENOMEM);
    pelix__alloc_fail_after(-1);
    assert_int_equal(ix.count, 12);
    for (int i = 0; i < 12; i++) {
        assert_ptr_equal(mqtt__lindex_get(&ix, i + 1), &ls[i]);
    }
    assert_null(mqtt__lindex_get(&ix, 13));
    mqtt__lindex_clear(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test_teardown(test_put_without_memory, reset_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
