/*
 * Unit test of the network thread's wake-up (src/mqtt/loop.c, no broker): threads posting
 * commands at the same time (pelix_mqtt_sync waits for one) are all woken up, whatever the
 * interleaving of their eventfd writes with the loop's read. A lost wake-up shows as a thread
 * that never returns: the test then ends the process with a message instead of hanging.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <pelix/mqtt.h>
#include <pelix/registry.h>

enum { THREADS = 4, SYNCS = 20000, DEADLINE_S = 120 };

static atomic_long done;

static void *syncer(void *arg)
{
    pelix_mqtt_t *m = arg;
    for (int i = 0; i < SYNCS; i++) {
        if (pelix_mqtt_sync(m) != 0) {
            break;
        }
        atomic_fetch_add(&done, 1);
    }
    return NULL;
}

static void test_concurrent_wakeups(void **st)
{
    pelix_registry_t *reg = pelix_registry_new();
    pelix_mqtt_t *m = NULL;
    pthread_t t[THREADS];
    time_t deadline = time(NULL) + DEADLINE_S;

    (void)st;
    assert_non_null(reg);
    assert_int_equal(pelix_mqtt_new(reg, NULL, NULL, &m), 0);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, syncer, m), 0);
    }
    while (atomic_load(&done) < (long)THREADS * SYNCS && time(NULL) < deadline) {
        usleep(10 * 1000);
    }
    if (atomic_load(&done) < (long)THREADS * SYNCS) {
        /* Stuck threads cannot be joined, nor the service stopped. */
        fprintf(stderr, "lost wake-up: %ld of %d syncs returned within %d s\n", atomic_load(&done),
                THREADS * SYNCS, DEADLINE_S);
        _exit(1);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    pelix_mqtt_free(m);
    pelix_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_wakeups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
