/*
 * Service trackers: added/modified/removed on a specification and a filter, initial services,
 * close, use, and a concurrent run where services come and go while trackers open and close.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pelix/tracker.h>

#include <cmocka.h>

static const char *const SPEC_A[] = {"spec.a"};
static const char *const SPEC_B[] = {"spec.b"};
static int svc_a = 1, svc_b = 2, svc_c = 3;

typedef struct call {
    char kind; /* 'a'dded, 'm'odified, 'r'emoved */
    long id;
    void *svc;
    char value[32];
} call_t;

typedef struct log {
    pthread_mutex_t lock;
    call_t calls[128];
    size_t count;
    pelix_registry_t *reg;
    bool unregister_on_add;
} log_t;

static void note(log_t *l, char kind, long id, void *svc, const pelix_props_t *props)
{
    pthread_mutex_lock(&l->lock);
    assert_true(l->count < 128);
    call_t *c = &l->calls[l->count++];
    c->kind = kind;
    c->id = id;
    c->svc = svc;
    snprintf(c->value, sizeof(c->value), "%s", pelix_props_get_string(props, "v", ""));
    pthread_mutex_unlock(&l->lock);
}

static void on_added(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    log_t *l = ctx;
    note(l, 'a', id, svc, props);
    if (l->unregister_on_add) {
        assert_int_equal(pelix_registry_unregister(l->reg, id), 0);
    }
}

static void on_modified(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    note(ctx, 'm', id, svc, props);
}

static void on_removed(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    note(ctx, 'r', id, svc, props);
}

static pelix_tracker_options_t options(log_t *l, const char *spec, const char *filter)
{
    pelix_tracker_options_t o = PELIX_TRACKER_OPTIONS_INIT;
    o.spec = spec;
    o.filter = filter;
    o.added = on_added;
    o.modified = on_modified;
    o.removed = on_removed;
    o.ctx = l;
    return o;
}

static pelix_props_t *pv(const char *v)
{
    pelix_props_t *p = pelix_props_new();
    pelix_props_set_string(p, "v", v);
    return p;
}

static long reg(pelix_registry_t *r, const char *const *spec, void *svc, pelix_props_t *p)
{
    long id;
    assert_int_equal(pelix_registry_register(r, spec, 1, svc, p, &id), 0);
    return id;
}

static void test_tracker_lifecycle(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    log_t l = {.reg = r};
    pelix_tracker_t *t = NULL;
    pthread_mutex_init(&l.lock, NULL);

    long before = reg(r, SPEC_A, &svc_a, pv("yes"));
    reg(r, SPEC_A, &svc_b, pv("no"));
    reg(r, SPEC_B, &svc_c, pv("yes"));
    pelix_tracker_options_t o = options(&l, "spec.a", "(v=yes)");
    assert_int_equal(pelix_tracker_open(r, &o, &t, NULL), 0);
    /* The matching service already there is added before open returns. */
    assert_int_equal(l.count, 1);
    assert_int_equal(l.calls[0].kind, 'a');
    assert_int_equal(l.calls[0].id, before);
    assert_ptr_equal(l.calls[0].svc, &svc_a);

    long later = reg(r, SPEC_A, &svc_c, pv("yes"));
    pelix_props_t *p = pv("yes");
    pelix_props_set_long(p, "extra", 1);
    assert_int_equal(pelix_registry_set_properties(r, later, p), 0); /* still matches */
    assert_int_equal(pelix_registry_set_properties(r, later, pv("no")), 0);
    assert_int_equal(pelix_registry_set_properties(r, later, pv("yes")), 0);
    assert_int_equal(pelix_tracker_count(t), 2);
    assert_int_equal(pelix_registry_unregister(r, later), 0);

    const char *expected = "aamrar";
    assert_int_equal(l.count, strlen(expected));
    for (size_t i = 0; i < l.count; i++) {
        assert_int_equal(l.calls[i].kind, expected[i]);
    }
    assert_string_equal(l.calls[3].value, "no"); /* removed with the properties that ended it */
    assert_int_equal(pelix_tracker_count(t), 1);

    /* Close: removed for what is still tracked, and nothing afterwards. */
    t = pelix_tracker_close(t);
    assert_null(t);
    assert_int_equal(l.count, 7);
    assert_int_equal(l.calls[6].kind, 'r');
    assert_int_equal(l.calls[6].id, before);
    reg(r, SPEC_A, &svc_a, pv("yes"));
    assert_int_equal(l.count, 7);
    pthread_mutex_destroy(&l.lock);
    pelix_registry_free(r);
}

typedef struct used {
    long id;
    long uses;
    pelix_registry_t *reg;
} used_t;

static void use_cb(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    used_t *u = ctx;
    (void)svc;
    (void)props;
    u->id = id;
    u->uses = pelix_registry_use_count(u->reg, id);
}

static void test_tracker_ids_and_use(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    log_t l = {.reg = r};
    pelix_tracker_t *t;
    used_t u = {.reg = r};
    long *ids = NULL;
    size_t n = 0;
    pthread_mutex_init(&l.lock, NULL);

    pelix_tracker_options_t o = options(&l, "spec.a", NULL);
    assert_int_equal(pelix_tracker_open(r, &o, &t, NULL), 0);
    assert_int_equal(pelix_tracker_use(t, use_cb, &u), -ENOENT);
    long first = reg(r, SPEC_A, &svc_a, NULL);
    pelix_props_t *p = pelix_props_new();
    pelix_props_set_long(p, PELIX_SERVICE_RANKING, 7);
    long ranked = reg(r, SPEC_A, &svc_b, p);
    long third = reg(r, SPEC_A, &svc_c, NULL);

    assert_int_equal(pelix_tracker_ids(t, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], ranked);
    assert_int_equal(ids[1], first);
    assert_int_equal(ids[2], third);
    free(ids);
    assert_int_equal(pelix_tracker_use(t, use_cb, &u), 0);
    assert_int_equal(u.id, ranked);
    assert_int_equal(u.uses, 1);
    assert_int_equal(pelix_registry_use_count(r, ranked), 0);
    pelix_tracker_close(t);
    pthread_mutex_destroy(&l.lock);
    pelix_registry_free(r);
}

static void test_tracker_callback_unregisters(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    log_t l = {.reg = r, .unregister_on_add = true};
    pelix_tracker_t *t;
    pthread_mutex_init(&l.lock, NULL);

    pelix_tracker_options_t o = options(&l, "spec.a", NULL);
    assert_int_equal(pelix_tracker_open(r, &o, &t, NULL), 0);
    long id = reg(r, SPEC_A, &svc_a, NULL);
    assert_int_equal(l.count, 2);
    assert_int_equal(l.calls[0].kind, 'a');
    assert_int_equal(l.calls[1].kind, 'r');
    assert_int_equal(l.calls[1].id, id);
    assert_int_equal(pelix_tracker_count(t), 0);
    pelix_tracker_close(t);
    assert_int_equal(l.count, 2);
    pthread_mutex_destroy(&l.lock);
    pelix_registry_free(r);
}

/* ---- close while another thread unregisters a tracked service ------------------------------- */

typedef struct race {
    pelix_registry_t *reg;
    long id;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool blocked;      /* the first listener holds the UNREGISTERING delivery */
    bool go;           /* ...until told to go on */
    bool unregistered; /* pelix_registry_unregister() returned: the owner may free the service */
    bool violated;     /* `removed` ran on after the unregister returned */
    int removed_calls;
} race_t;

static bool wait_flag(race_t *x, bool *flag, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&x->lock);
    while (!*flag && pthread_cond_timedwait(&x->cond, &x->lock, &until) == 0) {
    }
    bool seen = *flag;
    pthread_mutex_unlock(&x->lock);
    return seen;
}

static void set_flag(race_t *x, bool *flag)
{
    pthread_mutex_lock(&x->lock);
    *flag = true;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

static void race_blocker(void *ctx, const pelix_svc_event_t *ev)
{
    race_t *x = ctx;
    if (ev->kind == PELIX_SVC_UNREGISTERING) {
        set_flag(x, &x->blocked);
        wait_flag(x, &x->go, 30000);
    }
}

static void race_removed(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    (void)props;
    race_t *x = ctx;
    assert_int_equal(id, x->id);
    assert_ptr_equal(svc, &svc_a);
    x->removed_calls++;
    /* Let the unregister go on: it must not return while this call still uses the service. */
    set_flag(x, &x->go);
    if (wait_flag(x, &x->unregistered, 300)) {
        x->violated = true;
    }
}

static void *race_unregister(void *arg)
{
    race_t *x = arg;
    assert_int_equal(pelix_registry_unregister(x->reg, x->id), 0);
    set_flag(x, &x->unregistered);
    return NULL;
}

static void test_tracker_close_while_unregistering(void **state)
{
    (void)state;
    race_t x = {.reg = pelix_registry_new()};
    pthread_mutex_init(&x.lock, NULL);
    pthread_cond_init(&x.cond, NULL);
    long blocker;
    assert_int_equal(
        pelix_registry_add_listener(x.reg, "spec.a", NULL, false, race_blocker, &x, &blocker, NULL),
        0);
    pelix_tracker_options_t o = PELIX_TRACKER_OPTIONS_INIT;
    o.spec = "spec.a";
    o.removed = race_removed;
    o.ctx = &x;
    pelix_tracker_t *t;
    assert_int_equal(pelix_tracker_open(x.reg, &o, &t, NULL), 0);
    x.id = reg(x.reg, SPEC_A, &svc_a, NULL);
    assert_int_equal(pelix_tracker_count(t), 1);

    /* The unregister delivers UNREGISTERING to the blocker first; the tracker closes meanwhile. */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_unregister, &x), 0);
    assert_true(wait_flag(&x, &x.blocked, 30000));
    pelix_tracker_close(t);
    pthread_join(th, NULL);

    assert_int_equal(x.removed_calls, 1);
    assert_false(x.violated);
    assert_int_equal(pelix_registry_remove_listener(x.reg, blocker), 0);
    pthread_cond_destroy(&x.cond);
    pthread_mutex_destroy(&x.lock);
    pelix_registry_free(x.reg);
}

static void test_tracker_bad_filter(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    log_t l = {.reg = r};
    pelix_tracker_t *t = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    pthread_mutex_init(&l.lock, NULL);

    reg(r, SPEC_A, &svc_a, NULL);
    pelix_tracker_options_t o = options(&l, "spec.a", "(v=");
    assert_int_equal(pelix_tracker_open(r, &o, &t, &err), PELIX_E_FILTER_SYNTAX);
    assert_null(t);
    assert_true(strlen(err.text) > 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(pelix_tracker_open(NULL, &o, &t, NULL), -EINVAL);
    pthread_mutex_destroy(&l.lock);
    pelix_registry_free(r);
}

/* ---- concurrency ----------------------------------------------------------------------------- */

/* Per id: added and removed alternate, starting with added; counts what is tracked now. */
typedef struct audit {
    pthread_mutex_t lock;
    signed char state[8192];
    atomic_int errors;
    long tracked;
} audit_t;

static void audit_added(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    audit_t *a = ctx;
    (void)svc;
    (void)props;
    pthread_mutex_lock(&a->lock);
    if (id >= 8192 || a->state[id] == 1) {
        atomic_fetch_add(&a->errors, 1);
    } else {
        a->state[id] = 1;
        a->tracked++;
    }
    pthread_mutex_unlock(&a->lock);
}

static void audit_removed(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    audit_t *a = ctx;
    (void)svc;
    (void)props;
    pthread_mutex_lock(&a->lock);
    if (id >= 8192 || a->state[id] != 1) {
        atomic_fetch_add(&a->errors, 1);
    } else {
        a->state[id] = 0;
        a->tracked--;
    }
    pthread_mutex_unlock(&a->lock);
}

typedef struct churn {
    pelix_registry_t *reg;
    atomic_int stop;
    atomic_long live;
} churn_t;

static void *churn_services(void *arg)
{
    churn_t *c = arg;
    long ids[8] = {0};
    for (int i = 0; i < 1200; i++) {
        int slot = i % 8;
        if (ids[slot]) {
            assert_int_equal(pelix_registry_unregister(c->reg, ids[slot]), 0);
            ids[slot] = 0;
        } else {
            ids[slot] = reg(c->reg, SPEC_A, &svc_a, NULL);
        }
    }
    for (int slot = 0; slot < 8; slot++) {
        if (ids[slot]) {
            atomic_fetch_add(&c->live, 1); /* left registered */
        }
    }
    return NULL;
}

static void *churn_trackers(void *arg)
{
    churn_t *c = arg;
    while (!atomic_load(&c->stop)) {
        audit_t *a = calloc(1, sizeof(*a));
        pelix_tracker_options_t o = PELIX_TRACKER_OPTIONS_INIT;
        pelix_tracker_t *t;
        pthread_mutex_init(&a->lock, NULL);
        o.spec = "spec.a";
        o.added = audit_added;
        o.removed = audit_removed;
        o.ctx = a;
        assert_int_equal(pelix_tracker_open(c->reg, &o, &t, NULL), 0);
        pelix_tracker_close(t);
        /* After close: every added was matched by a removed, and no call runs any more. */
        assert_int_equal(atomic_load(&a->errors), 0);
        assert_int_equal(a->tracked, 0);
        pthread_mutex_destroy(&a->lock);
        free(a);
    }
    return NULL;
}

static void test_tracker_concurrent(void **state)
{
    (void)state;
    churn_t c = {.reg = pelix_registry_new()};
    audit_t *a = calloc(1, sizeof(*a));
    pthread_t s[3], tr[2];
    pelix_tracker_t *t;
    pelix_tracker_options_t o = PELIX_TRACKER_OPTIONS_INIT;

    pthread_mutex_init(&a->lock, NULL);
    o.spec = "spec.a";
    o.added = audit_added;
    o.removed = audit_removed;
    o.ctx = a;
    for (int i = 0; i < 2; i++) {
        pthread_create(&tr[i], NULL, churn_trackers, &c);
    }
    for (int i = 0; i < 3; i++) {
        pthread_create(&s[i], NULL, churn_services, &c);
        if (i == 1) {
            /* Opened while services come and go: it must neither miss nor double one. */
            assert_int_equal(pelix_tracker_open(c.reg, &o, &t, NULL), 0);
        }
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(s[i], NULL);
    }
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(tr[i], NULL);
    }
    assert_int_equal(atomic_load(&a->errors), 0);
    assert_int_equal(a->tracked, atomic_load(&c.live));
    assert_int_equal((long)pelix_tracker_count(t), atomic_load(&c.live));
    pelix_tracker_close(t);
    assert_int_equal(a->tracked, 0);
    pthread_mutex_destroy(&a->lock);
    free(a);
    pelix_registry_free(c.reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tracker_lifecycle),
        cmocka_unit_test(test_tracker_ids_and_use),
        cmocka_unit_test(test_tracker_callback_unregisters),
        cmocka_unit_test(test_tracker_bad_filter),
        cmocka_unit_test(test_tracker_close_while_unregistering),
        cmocka_unit_test(test_tracker_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
