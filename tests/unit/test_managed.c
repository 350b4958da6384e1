/*
 * ConfigAdmin notifications: ports of Pelix's ManagedServiceTest (testNoConfigDelete,
 * testEarlyConfig, testLateConfig, testUpdateConfig), managed service factories, the threads
 * callbacks run on, re-entrant callbacks and the order of notifications per PID under
 * concurrency.
 *
 * Memory-only ConfigAdmin (persistence is irrelevant here). pelix_configadmin_flush() waits for
 * the notifications before a test asserts "exactly N calls".
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <pelix/configadmin.h>

#include "unit/ca_helpers.h"

static const char *const PID = "test.ca.bundle";
static const char *const FACTORY = "test.ca.mfactory";

/* Index of the call of `r` to `pid` (kind `kind`) at or after `from`, or -1. */
static long find_call(ca_recorder_t *r, size_t from, ca_call_kind_t kind, const char *pid)
{
    size_t n = ca_recorder_count(r);
    for (size_t i = from; i < n; i++) {
        const ca_call_t *call = ca_recorder_at(r, i);
        if (call->kind == kind && call->pid && strcmp(call->pid, pid) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static void assert_updated(ca_recorder_t *r, size_t i, const char *pid, const char *key,
                           int64_t value)
{
    const ca_call_t *call = ca_recorder_at(r, i);
    assert_int_equal(call->kind, CA_UPDATED);
    assert_non_null(call->props);
    assert_string_equal(call->pid, pid);
    assert_string_equal(pelix_props_get_string(call->props, PELIX_SERVICE_PID, ""), pid);
    assert_int_equal(pelix_props_get_long(call->props, key, -1), value);
}

static void assert_updated_null(ca_recorder_t *r, size_t i)
{
    const ca_call_t *call = ca_recorder_at(r, i);
    assert_int_equal(call->kind, CA_UPDATED);
    assert_null(call->props);
}

/* ---- ManagedServiceTest ---------------------------------------------------------------------- */

static void test_no_config_delete(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0], *f = &fx->rec[1];
    pelix_configuration_t *c;

    ca_start(fx, false, false);
    ca_register_managed(fx, r, &PID, 1);
    ca_register_factory(fx, f, FACTORY);
    ca_flush(fx);
    /* Registered without configuration: told so, exactly once. */
    assert_int_equal(ca_recorder_count(r), 1);
    assert_updated_null(r, 0);

    c = ca_get(fx, PID);
    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    pelix_configuration_unref(c);
    c = ca_create(fx, FACTORY);
    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    pelix_configuration_unref(c);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 1);
    assert_int_equal(ca_recorder_count(f), 0);
}

static void test_early_config(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    pelix_configuration_t *c;

    ca_start(fx, false, false);
    c = ca_get(fx, PID);
    ca_update_long(c, "config.value", 42);
    ca_register_managed(fx, r, &PID, 1);
    ca_flush(fx);
    /* The configuration, once, and no updated(NULL) before it. */
    assert_int_equal(ca_recorder_count(r), 1);
    assert_updated(r, 0, PID, "config.value", 42);

    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2);
    assert_updated_null(r, 1);
    pelix_configuration_unref(c);
}

static void test_late_config(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    pelix_configuration_t *c;

    ca_start(fx, false, false);
    c = ca_get(fx, PID); /* exists, not updated: still "no configuration" */
    ca_register_managed(fx, r, &PID, 1);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 1);
    assert_updated_null(r, 0);

    ca_update_long(c, "config.value", 42);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2);
    assert_updated(r, 1, PID, "config.value", 42);

    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 3);
    assert_updated_null(r, 2);
    pelix_configuration_unref(c);
}

static void test_update_config(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    pelix_configuration_t *c;
    long id;

    ca_start(fx, false, false);
    id = ca_register_managed(fx, r, &PID, 1);
    c = ca_get(fx, PID);
    for (int64_t i = 1; i <= 5; i++) {
        ca_update_long(c, "config.value", i);
        ca_update_long(c, "config.value", i); /* equal: no call */
        ca_flush(fx);
        assert_int_equal(ca_recorder_count(r), 1 + (size_t)i);
        assert_updated(r, (size_t)i, PID, "config.value", i);
    }
    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 7);
    assert_updated_null(r, 6);
    pelix_configuration_unref(c);

    /* Once unregistered, the service hears nothing more. */
    ca_unregister(fx, id);
    c = ca_get(fx, PID);
    ca_update_long(c, "config.value", 99);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 7);
    pelix_configuration_unref(c);
}

static void test_managed_service_pid_list(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    const char *pids[] = {"test.ca.multi.a", "test.ca.multi.b"};
    pelix_configuration_t *a, *b, *other;
    pelix_props_t *props;
    long id, ia, inull;

    ca_start(fx, false, false);
    a = ca_get(fx, pids[0]);
    ca_update_long(a, "x", 1);
    id = ca_register_managed(fx, r, pids, 2);
    ca_flush(fx);
    /* One call per PID: a's configuration, and updated(NULL) for b. */
    assert_int_equal(ca_recorder_count(r), 2);
    ia = find_call(r, 0, CA_UPDATED, pids[0]);
    assert_true(ia >= 0);
    assert_updated(r, (size_t)ia, pids[0], "x", 1);
    inull = ia == 0 ? 1 : 0;
    assert_updated_null(r, (size_t)inull);

    b = ca_get(fx, pids[1]);
    ca_update_long(b, "x", 2);
    other = ca_get(fx, "test.ca.multi.c");
    ca_update_long(other, "x", 3);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 3);
    assert_updated(r, 2, pids[1], "x", 2);

    assert_int_equal(pelix_configuration_delete(a, NULL), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 4);
    assert_updated_null(r, 3);

    /* The service now also names c: only c's configuration is sent. */
    props = pelix_props_new();
    const char *three[] = {pids[0], pids[1], "test.ca.multi.c"};
    assert_int_equal(pelix_props_set_strings(props, PELIX_SERVICE_PID, three, 3), 0);
    assert_int_equal(pelix_registry_set_properties(fx->reg, id, props), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 5);
    assert_updated(r, 4, "test.ca.multi.c", "x", 3);

    pelix_configuration_unref(a);
    pelix_configuration_unref(b);
    pelix_configuration_unref(other);
}

/* ---- managed service factories --------------------------------------------------------------- */

static void test_factory_before_and_after(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *f = &fx->rec[0], *m = &fx->rec[1], *other = &fx->rec[2];
    pelix_configuration_t *c1, *c2, *c0;
    const ca_call_t *call;
    char *pid1, *pid2;

    ca_start(fx, false, false);
    c1 = ca_create(fx, FACTORY);
    pid1 = strdup(pelix_configuration_get_pid(c1));
    ca_update_long(c1, "n", 1);
    c0 = ca_create(fx, FACTORY); /* never updated: never sent */
    ca_register_factory(fx, f, FACTORY);
    ca_register_factory(fx, other, "test.ca.other");
    ca_register_managed(fx, m, &FACTORY, 1); /* a managed service of the same name */
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(f), 1);
    assert_updated(f, 0, pid1, "n", 1);
    call = ca_recorder_at(f, 0);
    assert_string_equal(pelix_props_get_string(call->props, PELIX_SERVICE_FACTORY_PID, ""),
                        FACTORY);

    c2 = ca_create(fx, FACTORY);
    pid2 = strdup(pelix_configuration_get_pid(c2));
    ca_update_long(c2, "n", 2);
    ca_update_long(c1, "n", 3);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(f), 3);
    assert_updated(f, 1, pid2, "n", 2);
    assert_updated(f, 2, pid1, "n", 3);

    assert_int_equal(pelix_configuration_delete(c1, NULL), 0);
    assert_int_equal(pelix_configuration_delete(c0, NULL), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(f), 4);
    call = ca_recorder_at(f, 3);
    assert_int_equal(call->kind, CA_DELETED);
    assert_string_equal(call->pid, pid1);
    assert_null(call->props);

    /* Factory configurations reach no managed service and no other factory. */
    assert_int_equal(ca_recorder_count(m), 1);
    assert_updated_null(m, 0);
    assert_int_equal(ca_recorder_count(other), 0);

    pelix_configuration_unref(c0);
    pelix_configuration_unref(c1);
    pelix_configuration_unref(c2);
    free(pid1);
    free(pid2);
}

static void test_factory_registered_again(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *f = &fx->rec[0];
    pelix_configuration_t *c1, *c2;
    long id, i1, i2;

    ca_start(fx, false, false);
    c1 = ca_create(fx, FACTORY);
    c2 = ca_create(fx, FACTORY);
    ca_update_long(c1, "n", 1);
    ca_update_long(c2, "n", 2);
    id = ca_register_factory(fx, f, FACTORY);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(f), 2);
    i1 = find_call(f, 0, CA_UPDATED, pelix_configuration_get_pid(c1));
    i2 = find_call(f, 0, CA_UPDATED, pelix_configuration_get_pid(c2));
    assert_true(i1 >= 0 && i2 >= 0);

    /* Unregistered: changes are not sent... */
    ca_unregister(fx, id);
    ca_update_long(c1, "n", 10);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(f), 2);

    /* ...registered again: the existing configurations are sent again, as they are now. */
    ca_register_factory(fx, f, FACTORY);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(f), 4);
    i1 = find_call(f, 2, CA_UPDATED, pelix_configuration_get_pid(c1));
    i2 = find_call(f, 2, CA_UPDATED, pelix_configuration_get_pid(c2));
    assert_true(i1 >= 2 && i2 >= 2);
    assert_updated(f, (size_t)i1, pelix_configuration_get_pid(c1), "n", 10);
    assert_updated(f, (size_t)i2, pelix_configuration_get_pid(c2), "n", 2);

    pelix_configuration_unref(c1);
    pelix_configuration_unref(c2);
}

/* ---- order per PID under concurrency --------------------------------------------------------- */

typedef struct updater {
    pelix_configuration_t *configs[4];
    size_t count;
    int64_t rounds;
    atomic_long done;
    int rc;
} updater_t;

static void *updater_run(void *arg)
{
    updater_t *u = arg;

    for (int64_t seq = 1; seq <= u->rounds; seq++) {
        for (size_t i = 0; i < u->count; i++) {
            pelix_props_t *props = pelix_props_new();
            int rc = props ? pelix_props_set_long(props, "seq", seq) : -ENOMEM;
            rc = rc ? rc : pelix_configuration_update(u->configs[i], props, NULL);
            if (rc != 0 && u->rc == 0) {
                u->rc = rc;
            }
            atomic_fetch_add(&u->done, 1);
        }
    }
    return NULL;
}

/* The calls of `r` for `pid`: updated() only, with "seq" strictly increasing, ending at `last`.
 * Returns their number. */
static size_t check_sequence(ca_recorder_t *r, const char *pid, int64_t last)
{
    size_t n = ca_recorder_count(r), seen = 0;
    int64_t prev = 0;

    for (size_t i = 0; i < n; i++) {
        const ca_call_t *call = ca_recorder_at(r, i);
        if (!call->pid || strcmp(call->pid, pid) != 0) {
            continue;
        }
        assert_int_equal(call->kind, CA_UPDATED);
        int64_t seq = pelix_props_get_long(call->props, "seq", -1);
        if (seq <= prev) {
            fail_msg("%s: seq %lld after %lld", pid, (long long)seq, (long long)prev);
        }
        prev = seq;
        seen++;
    }
    assert_true(seen > 0);
    assert_int_equal(prev, last);
    return seen;
}

static void test_factory_registers_during_updates(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *f = &fx->rec[0];
    static updater_t u;
    pthread_t thread;

    ca_start(fx, false, false);
    memset(&u, 0, sizeof(u));
    u.count = 3;
    u.rounds = 300;
    for (size_t i = 0; i < u.count; i++) {
        u.configs[i] = ca_create(fx, FACTORY);
    }
    assert_int_equal(pthread_create(&thread, NULL, updater_run, &u), 0);
    /* Register in the middle of the updates (or after them on a very slow machine: the check
     * below holds either way). */
    for (int i = 0; i < 5000 && atomic_load(&u.done) < 100; i++) {
        ca_sleep_ms(1);
    }
    ca_register_factory(fx, f, FACTORY);
    pthread_join(thread, NULL);
    assert_int_equal(u.rc, 0);
    ca_flush(fx);
    for (size_t i = 0; i < u.count; i++) {
        check_sequence(f, pelix_configuration_get_pid(u.configs[i]), u.rounds);
        pelix_configuration_unref(u.configs[i]);
    }
}

static void test_order_per_pid_concurrent(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *f = &fx->rec[0];
    static updater_t u[4];
    pthread_t threads[4];

    ca_start(fx, false, false);
    ca_register_factory(fx, f, FACTORY);
    for (size_t t = 0; t < 4; t++) {
        memset(&u[t], 0, sizeof(u[t]));
        u[t].count = 1;
        u[t].rounds = 200;
        u[t].configs[0] = ca_create(fx, FACTORY);
    }
    for (size_t t = 0; t < 4; t++) {
        assert_int_equal(pthread_create(&threads[t], NULL, updater_run, &u[t]), 0);
    }
    for (size_t t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
    }
    ca_flush(fx);
    for (size_t t = 0; t < 4; t++) {
        assert_int_equal(u[t].rc, 0);
        /* Every update changed the properties: every one is notified, in order. */
        assert_int_equal(check_sequence(f, pelix_configuration_get_pid(u[t].configs[0]), 200), 200);
        pelix_configuration_unref(u[t].configs[0]);
    }
    assert_int_equal(ca_recorder_count(f), 800);
}

/* ---- callbacks: thread, locks, re-entrance --------------------------------------------------- */

static void *update_from_thread(void *arg)
{
    pelix_configuration_t *c = arg;
    pelix_props_t *props = pelix_props_new();
    pelix_props_set_long(props, "from", 2);
    return (void *)(intptr_t)pelix_configuration_update(c, props, NULL);
}

static void test_callbacks_on_configadmin_thread(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *m = &fx->rec[0], *f = &fx->rec[1];
    pelix_configuration_t *c, *fc;
    pthread_t other;
    void *rc;

    ca_start(fx, false, false);
    ca_register_managed(fx, m, &PID, 1);
    ca_register_factory(fx, f, FACTORY);
    c = ca_get(fx, PID);
    fc = ca_create(fx, FACTORY);
    ca_update_long(c, "from", 1);
    ca_update_long(fc, "from", 1);
    assert_int_equal(pthread_create(&other, NULL, update_from_thread, c), 0);
    pthread_join(other, &rc);
    assert_int_equal((intptr_t)rc, 0);
    assert_int_equal(pthread_create(&other, NULL, update_from_thread, fc), 0);
    pthread_join(other, &rc);
    assert_int_equal((intptr_t)rc, 0);
    assert_int_equal(pelix_configuration_delete(fc, NULL), 0);
    ca_flush(fx);

    assert_int_equal(ca_recorder_count(m), 3); /* NULL at registration, then 2 updates */
    assert_int_equal(ca_recorder_count(f), 3); /* 2 updates, 1 deletion */
    pthread_t ca_thread = ca_recorder_at(m, 0)->thread;
    assert_false(pthread_equal(ca_thread, pthread_self()));
    /* Whatever thread made the change, the calls come from the same ConfigAdmin thread. */
    for (size_t i = 0; i < 3; i++) {
        assert_true(pthread_equal(ca_recorder_at(m, i)->thread, ca_thread));
        assert_true(pthread_equal(ca_recorder_at(f, i)->thread, ca_thread));
    }
    assert_int_equal(pelix_props_get_long(ca_recorder_at(m, 2)->props, "from", 0), 2);
    pelix_configuration_unref(c);
    pelix_configuration_unref(fc);
}

/* State of the re-entrant callback test (static: it outlives a failing test). */
static struct reenter {
    pelix_configadmin_t *ca;
    pelix_configuration_t *other;
    pthread_mutex_t lock;
    char events[64];
    int list_rc;
    size_t list_count;
    int update_rc;
    int flush_rc;
} re = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void re_event(const char *e)
{
    pthread_mutex_lock(&re.lock);
    if (strlen(re.events) + strlen(e) < sizeof(re.events)) {
        strcat(re.events, e);
    }
    pthread_mutex_unlock(&re.lock);
}

static void re_hook_a(void *ctx, ca_call_kind_t kind, const char *pid, const pelix_props_t *props)
{
    pelix_configuration_t **list = NULL;
    pelix_props_t *next;
    size_t n = 0;

    (void)ctx;
    (void)kind;
    (void)pid;
    if (!props) {
        return;
    }
    re_event("A<");
    re.list_rc = pelix_configadmin_list_configurations(re.ca, NULL, &list, &n, NULL);
    pelix_configuration_list_free(list, n);
    re.list_count = n;
    next = pelix_props_new();
    pelix_props_set_string(next, "from", "A");
    re.update_rc = pelix_configuration_update(re.other, next, NULL);
    re.flush_rc = pelix_configadmin_flush(re.ca, 100);
    re_event("A>");
}

static void re_hook_b(void *ctx, ca_call_kind_t kind, const char *pid, const pelix_props_t *props)
{
    (void)ctx;
    (void)kind;
    (void)pid;
    if (props) {
        re_event("B");
    }
}

static void test_callback_reenters_configadmin(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *a = &fx->rec[0], *b = &fx->rec[1];
    const char *pid_a = "test.ca.reenter.a", *pid_b = "test.ca.reenter.b";
    pelix_configuration_t *ca_conf;

    ca_start(fx, false, false);
    re.ca = fx->ca;
    re.events[0] = '\0';
    re.list_rc = re.update_rc = re.flush_rc = 1;
    re.other = ca_get(fx, pid_b);
    a->hook = re_hook_a;
    b->hook = re_hook_b;
    ca_register_managed(fx, a, &pid_a, 1);
    ca_register_managed(fx, b, &pid_b, 1);
    ca_conf = ca_get(fx, pid_a);
    ca_update_long(ca_conf, "step", 1);
    /* A deadlock would show here as a timeout (5 s, generous). */
    assert_true(ca_recorder_wait(b, 2, CA_WAIT_MS));
    ca_flush(fx);

    assert_int_equal(re.list_rc, 0);
    assert_int_equal(re.list_count, 2);
    assert_int_equal(re.update_rc, 0);
    assert_int_equal(re.flush_rc, -EDEADLK);
    /* The nested update is delivered after the callback that made it returned. */
    assert_string_equal(re.events, "A<A>B");
    assert_int_equal(ca_recorder_count(a), 2);
    assert_int_equal(ca_recorder_count(b), 2);
    assert_string_equal(pelix_props_get_string(ca_recorder_at(b, 1)->props, "from", ""), "A");

    a->hook = NULL;
    b->hook = NULL;
    pelix_configuration_unref(ca_conf);
    re.other = pelix_configuration_unref(re.other);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ca_fixture_setup, ca_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_no_config_delete),
        T(test_early_config),
        T(test_late_config),
        T(test_update_config),
        T(test_managed_service_pid_list),
        T(test_factory_before_and_after),
        T(test_factory_registered_again),
        T(test_factory_registers_during_updates),
        T(test_order_per_pid_concurrent),
        T(test_callbacks_on_configadmin_thread),
        T(test_callback_reenters_configadmin),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
