/*
 * Service registry: the threading guarantees of registry.h, each with a test that fails (or
 * hangs past its bound) when the guarantee is broken. Also run under ThreadSanitizer.
 *
 * Time is only used as a generous bound ("this must have finished within 5 s"), never to judge
 * speed.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pelix/registry.h>

#include <cmocka.h>

static const char *const SPEC_A[] = {"spec.a"};
static const char *const SPEC_B[] = {"spec.b"};
static int svc_a = 1, svc_b = 2;

#define BOUND_S 5

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Joins `t` or fails the test if it has not finished within BOUND_S seconds. */
static void join_bounded(pthread_t t)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += BOUND_S;
    if (pthread_timedjoin_np(t, NULL, &until) != 0) {
        fail_msg("a registry call did not return within %d s (deadlock or lock held)", BOUND_S);
    }
}

static pelix_props_t *props_long(const char *key, long v)
{
    pelix_props_t *p = pelix_props_new();
    pelix_props_set_long(p, key, v);
    return p;
}

/* ---- no callback under a registry lock ------------------------------------------------------- */

typedef struct outside {
    pelix_registry_t *reg;
    atomic_int done;
} outside_t;

static void *registry_calls(void *arg)
{
    outside_t *o = arg;
    long id, *ids = NULL;
    size_t n;
    pelix_props_t *props = NULL;

    /* Every kind of registry call, from another thread, while a callback runs. */
    assert_int_equal(pelix_registry_register(o->reg, SPEC_B, 1, &svc_b, NULL, &id), 0);
    assert_int_equal(pelix_registry_find(o->reg, NULL, "(objectClass=*)", &ids, &n, NULL), 0);
    free(ids);
    assert_int_equal(pelix_registry_get_properties(o->reg, id, &props), 0);
    pelix_props_free(props);
    assert_int_equal(pelix_registry_set_properties(o->reg, id, props_long("x", 1)), 0);
    assert_int_equal(pelix_registry_unregister(o->reg, id), 0);
    atomic_store(&o->done, 1);
    return NULL;
}

static void call_from_other_thread(void *ctx, const pelix_svc_event_t *ev)
{
    outside_t *o = ctx;
    pthread_t t;

    if (ev->kind != PELIX_SVC_REGISTERED || ev->svc != &svc_a) {
        return;
    }
    pthread_create(&t, NULL, registry_calls, o);
    join_bounded(t);
}

static void use_from_other_thread(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    outside_t *o = ctx;
    pthread_t t;
    (void)id;
    (void)svc;
    (void)props;
    pthread_create(&t, NULL, registry_calls, o);
    join_bounded(t);
}

static void test_no_callback_runs_under_a_lock(void **state)
{
    (void)state;
    outside_t o = {.reg = pelix_registry_new()};
    long lid, id;

    /* Listener callback: the registry must be fully usable from another thread meanwhile. */
    pelix_registry_add_listener(o.reg, NULL, NULL, false, call_from_other_thread, &o, &lid, NULL);
    assert_int_equal(pelix_registry_register(o.reg, SPEC_A, 1, &svc_a, NULL, &id), 0);
    assert_int_equal(atomic_load(&o.done), 1);
    pelix_registry_remove_listener(o.reg, lid);

    /* Use callback: the same. */
    atomic_store(&o.done, 0);
    assert_int_equal(pelix_registry_use_id(o.reg, id, use_from_other_thread, &o), 0);
    assert_int_equal(atomic_load(&o.done), 1);
    pelix_registry_unregister(o.reg, id);
    pelix_registry_free(o.reg);
}

/* ---- unregister waits for uses of other threads ---------------------------------------------- */

typedef struct blocker {
    pelix_registry_t *reg;
    long id;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int in_use;
    int go;
    atomic_int finished;
    atomic_int seen_finished;
} blocker_t;

static void blocking_use(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    blocker_t *b = ctx;
    (void)id;
    (void)svc;
    (void)props;
    pthread_mutex_lock(&b->lock);
    b->in_use = 1;
    pthread_cond_broadcast(&b->cond);
    while (!b->go) {
        pthread_cond_wait(&b->cond, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    sleep_ms(20); /* still using the service after being released */
    atomic_store(&b->finished, 1);
}

static void *user_thread(void *arg)
{
    blocker_t *b = arg;
    assert_int_equal(pelix_registry_use_id(b->reg, b->id, blocking_use, b), 0);
    return NULL;
}

static void *unregister_thread(void *arg)
{
    blocker_t *b = arg;
    assert_int_equal(pelix_registry_unregister(b->reg, b->id), 0);
    atomic_store(&b->seen_finished, atomic_load(&b->finished));
    return NULL;
}

static void test_unregister_waits_for_other_uses(void **state)
{
    (void)state;
    blocker_t b = {.reg = pelix_registry_new()};
    pthread_t user, unreg;
    void *svc;

    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    assert_int_equal(pelix_registry_register(b.reg, SPEC_A, 1, &svc_a, NULL, &b.id), 0);
    pthread_create(&user, NULL, user_thread, &b);
    pthread_mutex_lock(&b.lock);
    while (!b.in_use) {
        pthread_cond_wait(&b.cond, &b.lock);
    }
    pthread_mutex_unlock(&b.lock);

    pthread_create(&unreg, NULL, unregister_thread, &b);
    /* While unregistering, no new use can start. */
    for (int i = 0; i < 500 && pelix_registry_get_service(b.reg, b.id, &svc) == 0; i++) {
        pelix_registry_unget_service(b.reg, b.id);
        sleep_ms(1);
    }
    assert_int_equal(pelix_registry_get_service(b.reg, b.id, &svc), -ENOENT);

    pthread_mutex_lock(&b.lock);
    b.go = 1;
    pthread_cond_broadcast(&b.cond);
    pthread_mutex_unlock(&b.lock);
    join_bounded(unreg);
    join_bounded(user);
    /* unregister returned only after the use had ended. */
    assert_int_equal(atomic_load(&b.seen_finished), 1);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.lock);
    pelix_registry_free(b.reg);
}

/* ---- remove_listener waits for calls on other threads ---------------------------------------- */

static void blocking_listener(void *ctx, const pelix_svc_event_t *ev)
{
    (void)ev;
    blocking_use(ctx, 0, NULL, NULL);
}

static void *register_thread(void *arg)
{
    blocker_t *b = arg;
    long id;
    assert_int_equal(pelix_registry_register(b->reg, SPEC_A, 1, &svc_a, NULL, &id), 0);
    return NULL;
}

typedef struct remover {
    blocker_t *b;
    long lid;
} remover_t;

static void *remove_listener_thread(void *arg)
{
    remover_t *rm = arg;
    assert_int_equal(pelix_registry_remove_listener(rm->b->reg, rm->lid), 0);
    atomic_store(&rm->b->seen_finished, atomic_load(&rm->b->finished));
    return NULL;
}

static void test_remove_listener_waits_for_running_call(void **state)
{
    (void)state;
    blocker_t b = {.reg = pelix_registry_new()};
    remover_t rm = {.b = &b};
    pthread_t reg_t, rm_t;

    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    pelix_registry_add_listener(b.reg, NULL, NULL, false, blocking_listener, &b, &rm.lid, NULL);
    pthread_create(&reg_t, NULL, register_thread, &b);
    pthread_mutex_lock(&b.lock);
    while (!b.in_use) {
        pthread_cond_wait(&b.cond, &b.lock);
    }
    pthread_mutex_unlock(&b.lock);
    pthread_create(&rm_t, NULL, remove_listener_thread, &rm);
    sleep_ms(50);
    pthread_mutex_lock(&b.lock);
    b.go = 1;
    pthread_cond_broadcast(&b.cond);
    pthread_mutex_unlock(&b.lock);
    join_bounded(rm_t);
    join_bounded(reg_t);
    assert_int_equal(atomic_load(&b.seen_finished), 1);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.lock);
    pelix_registry_free(b.reg);
}

/* ---- ordering of the events of one service --------------------------------------------------- */

/* Checks each listener's view of each service: REGISTERED first, MODIFIED* whose old_props are
 * the previous event's props, UNREGISTERING last and nothing after it. */
typedef struct view {
    long id;
    int state; /* 0 unseen, 1 registered, 2 unregistered */
    long last_seq;
    long events;
} view_t;

#define MAX_VIEWS 4096

typedef struct checker {
    pthread_mutex_t lock;
    view_t views[MAX_VIEWS];
    size_t count;
    atomic_int errors;
    atomic_long modified;
} checker_t;

static view_t *view_of(checker_t *c, long id)
{
    for (size_t i = 0; i < c->count; i++) {
        if (c->views[i].id == id) {
            return &c->views[i];
        }
    }
    assert_true(c->count < MAX_VIEWS);
    c->views[c->count].id = id;
    return &c->views[c->count++];
}

static void check_event(void *ctx, const pelix_svc_event_t *ev)
{
    checker_t *c = ctx;
    long seq = (long)pelix_props_get_long(ev->props, "seq", -1);
    long old = ev->old_props ? (long)pelix_props_get_long(ev->old_props, "seq", -1) : -1;
    bool bad = false;

    pthread_mutex_lock(&c->lock);
    view_t *v = view_of(c, ev->id);
    switch (ev->kind) {
    case PELIX_SVC_REGISTERED:
        bad = v->state != 0;
        v->state = 1;
        break;
    case PELIX_SVC_MODIFIED:
    case PELIX_SVC_MODIFIED_ENDMATCH:
        bad = v->state != 1 || old != v->last_seq;
        atomic_fetch_add(&c->modified, 1);
        break;
    case PELIX_SVC_UNREGISTERING:
        bad = v->state != 1 || seq != v->last_seq;
        v->state = 2;
        break;
    }
    v->last_seq = seq;
    v->events++;
    pthread_mutex_unlock(&c->lock);
    if (bad) {
        atomic_fetch_add(&c->errors, 1);
    }
}

typedef struct modifier {
    pelix_registry_t *reg;
    long id;
    atomic_long *seq;
    int rounds;
} modifier_t;

static void *modify_loop(void *arg)
{
    modifier_t *m = arg;
    for (int i = 0; i < m->rounds; i++) {
        long s = atomic_fetch_add(m->seq, 1) + 1;
        assert_int_equal(pelix_registry_set_properties(m->reg, m->id, props_long("seq", s)), 0);
    }
    return NULL;
}

static void slow_check_event(void *ctx, const pelix_svc_event_t *ev)
{
    check_event(ctx, ev);
    if (ev->kind == PELIX_SVC_MODIFIED) {
        sleep_ms(1); /* long deliveries make other threads queue behind this one */
    }
}

static void test_events_of_one_service_stay_in_order(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    checker_t fast = {0}, slow = {0};
    atomic_long seq = 0;
    modifier_t m = {.reg = r, .seq = &seq, .rounds = 150};
    pthread_t threads[4];
    long l1, l2;

    pthread_mutex_init(&fast.lock, NULL);
    pthread_mutex_init(&slow.lock, NULL);
    pelix_registry_add_listener(r, "spec.a", NULL, false, check_event, &fast, &l1, NULL);
    pelix_registry_add_listener(r, "spec.a", NULL, false, slow_check_event, &slow, &l2, NULL);
    assert_int_equal(pelix_registry_register(r, SPEC_A, 1, &svc_a, props_long("seq", 0), &m.id), 0);
    for (int i = 0; i < 4; i++) {
        pthread_create(&threads[i], NULL, modify_loop, &m);
    }
    for (int i = 0; i < 4; i++) {
        join_bounded(threads[i]);
    }
    assert_int_equal(pelix_registry_unregister(r, m.id), 0);
    /* Every change was delivered, to both listeners, as one chain. */
    assert_int_equal(atomic_load(&fast.errors), 0);
    assert_int_equal(atomic_load(&slow.errors), 0);
    assert_int_equal(atomic_load(&fast.modified), 600);
    assert_int_equal(atomic_load(&slow.modified), 600);
    assert_int_equal(fast.views[0].state, 2);
    assert_int_equal(slow.views[0].state, 2);
    pelix_registry_remove_listener(r, l1);
    pelix_registry_remove_listener(r, l2);
    pthread_mutex_destroy(&fast.lock);
    pthread_mutex_destroy(&slow.lock);
    pelix_registry_free(r);
}

/* ---- many threads: services and listeners coming and going ----------------------------------- */

typedef struct churn {
    pelix_registry_t *reg;
    checker_t *checker;
    atomic_int stop;
    atomic_long seq;
} churn_t;

static void *service_churn(void *arg)
{
    churn_t *c = arg;
    for (int i = 0; i < 300; i++) {
        long id, s = atomic_fetch_add(&c->seq, 1);
        assert_int_equal(pelix_registry_register(c->reg, i % 2 ? SPEC_A : SPEC_B, 1, &svc_a,
                                                 props_long("seq", s), &id),
                         0);
        for (int k = 0; k < 3; k++) {
            s = atomic_fetch_add(&c->seq, 1);
            assert_int_equal(pelix_registry_set_properties(c->reg, id, props_long("seq", s)), 0);
        }
        assert_int_equal(pelix_registry_unregister(c->reg, id), 0);
    }
    return NULL;
}

static void count_event(void *ctx, const pelix_svc_event_t *ev)
{
    (void)ev;
    atomic_fetch_add((atomic_long *)ctx, 1);
}

static void *listener_churn(void *arg)
{
    churn_t *c = arg;
    atomic_long calls = 0;
    while (!atomic_load(&c->stop)) {
        long lid;
        assert_int_equal(pelix_registry_add_listener(c->reg, NULL, "(seq>=0)", true, count_event,
                                                     &calls, &lid, NULL),
                         0);
        assert_int_equal(pelix_registry_remove_listener(c->reg, lid), 0);
    }
    /* `calls` lives on this stack: after remove_listener no call may still be running. */
    return NULL;
}

static void test_concurrent_churn(void **state)
{
    (void)state;
    checker_t *checker = calloc(1, sizeof(*checker));
    churn_t c = {.reg = pelix_registry_new(), .checker = checker};
    pthread_t services[3], listeners[2];
    long lid;

    pthread_mutex_init(&checker->lock, NULL);
    pelix_registry_add_listener(c.reg, NULL, NULL, false, check_event, checker, &lid, NULL);
    for (int i = 0; i < 2; i++) {
        pthread_create(&listeners[i], NULL, listener_churn, &c);
    }
    for (int i = 0; i < 3; i++) {
        pthread_create(&services[i], NULL, service_churn, &c);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(services[i], NULL);
    }
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 2; i++) {
        join_bounded(listeners[i]);
    }
    assert_int_equal(atomic_load(&checker->errors), 0);
    assert_int_equal(checker->count, 900);
    for (size_t i = 0; i < checker->count; i++) {
        assert_int_equal(checker->views[i].state, 2);
        assert_int_equal(checker->views[i].events, 5);
    }
    long *ids = NULL;
    size_t n = 1;
    assert_int_equal(pelix_registry_find(c.reg, NULL, NULL, &ids, &n, NULL), 0);
    assert_int_equal(n, 0);
    pelix_registry_remove_listener(c.reg, lid);
    pthread_mutex_destroy(&checker->lock);
    free(checker);
    pelix_registry_free(c.reg);
}

/* ---- callbacks on two threads calling against each other ------------------------------------ */

/* Thread 0 runs a callback of service A (a listener call or a use), thread 1 one of service B;
 * once both are inside, 0 unregisters B (or removes B's listener) and 1 unregisters A. Each call
 * would wait for the other thread's callback to end: without deadlock avoidance both wait
 * forever. With it, the unregister that would close the cycle returns -EDEADLK without
 * waiting, and the other call returns 0 once that callback ended. */
typedef struct cross {
    pelix_registry_t *reg;
    char
        mode; /* 'u': unregister from listener calls, 's': from uses, 'l': 0 removes B's listener */
    long svc[2];
    long listener[2];
    pthread_barrier_t inside;
    int rc[2];
    atomic_int unregistering[2];
} cross_t;

typedef struct side {
    cross_t *x;
    int index;
} side_t;

static void cross_act(side_t *me)
{
    cross_t *x = me->x;
    int other = 1 - me->index;
    pthread_barrier_wait(&x->inside);
    if (x->mode == 'l' && me->index == 0) {
        x->rc[me->index] = pelix_registry_remove_listener(x->reg, x->listener[other]);
    } else {
        x->rc[me->index] = pelix_registry_unregister(x->reg, x->svc[other]);
    }
}

static void cross_event(void *ctx, const pelix_svc_event_t *ev)
{
    side_t *me = ctx;
    if (ev->kind == PELIX_SVC_MODIFIED) {
        cross_act(me);
    } else if (ev->kind == PELIX_SVC_UNREGISTERING) {
        atomic_fetch_add(&me->x->unregistering[ev->id == me->x->svc[0] ? 0 : 1], 1);
    }
}

static void cross_use(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    (void)id;
    (void)svc;
    (void)props;
    cross_act(ctx);
}

static void *cross_thread(void *arg)
{
    side_t *me = arg;
    cross_t *x = me->x;
    if (x->mode == 's') {
        assert_int_equal(pelix_registry_use_id(x->reg, x->svc[me->index], cross_use, me), 0);
    } else {
        assert_int_equal(
            pelix_registry_set_properties(x->reg, x->svc[me->index], props_long("n", 1)), 0);
    }
    return NULL;
}

static void run_cross(char mode)
{
    cross_t x = {.reg = pelix_registry_new(), .mode = mode};
    side_t sides[2] = {{&x, 0}, {&x, 1}};
    const char *const *specs[2] = {SPEC_A, SPEC_B};
    pthread_t t[2];

    pthread_barrier_init(&x.inside, NULL, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pelix_registry_register(x.reg, specs[i], 1, i ? (void *)&svc_b : &svc_a,
                                                 NULL, &x.svc[i]),
                         0);
        assert_int_equal(pelix_registry_add_listener(x.reg, specs[i][0], NULL, false, cross_event,
                                                     &sides[i], &x.listener[i], NULL),
                         0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, cross_thread, &sides[i]), 0);
    }
    join_bounded(t[0]);
    join_bounded(t[1]);
    if (mode == 'l') {
        /* remove_listener always waits: the unregister gives up. */
        assert_int_equal(x.rc[0], 0);
        assert_int_equal(x.rc[1], -EDEADLK);
        assert_int_equal(pelix_registry_remove_listener(x.reg, x.listener[1]), -ENOENT);
        assert_int_equal(atomic_load(&x.unregistering[0]), 1);
        assert_int_equal(pelix_registry_remove_listener(x.reg, x.listener[0]), 0);
        assert_int_equal(pelix_registry_unregister(x.reg, x.svc[1]), 0);
        assert_int_equal(atomic_load(&x.unregistering[1]), 0);
    } else {
        /* Exactly one of them gave up waiting. */
        assert_true((x.rc[0] == 0 && x.rc[1] == -EDEADLK) || (x.rc[0] == -EDEADLK && x.rc[1] == 0));
        /* Both services are gone, and each listener heard its UNREGISTERING exactly once. */
        for (int i = 0; i < 2; i++) {
            void *svc;
            assert_int_equal(pelix_registry_get_service(x.reg, x.svc[i], &svc), -ENOENT);
            assert_int_equal(atomic_load(&x.unregistering[i]), 1);
            assert_int_equal(pelix_registry_remove_listener(x.reg, x.listener[i]), 0);
        }
    }
    pthread_barrier_destroy(&x.inside);
    pelix_registry_free(x.reg);
}

static void test_cross_thread_unregister_from_listeners(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        run_cross('u');
    }
}

static void test_cross_thread_unregister_from_uses(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        run_cross('s');
    }
}

static void test_cross_thread_remove_listener_and_unregister(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        run_cross('l');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_callback_runs_under_a_lock),
        cmocka_unit_test(test_unregister_waits_for_other_uses),
        cmocka_unit_test(test_remove_listener_waits_for_running_call),
        cmocka_unit_test(test_events_of_one_service_stay_in_order),
        cmocka_unit_test(test_concurrent_churn),
        cmocka_unit_test(test_cross_thread_unregister_from_listeners),
        cmocka_unit_test(test_cross_thread_unregister_from_uses),
        cmocka_unit_test(test_cross_thread_remove_listener_and_unregister),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
