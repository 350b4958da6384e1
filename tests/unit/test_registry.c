/*
 * Service registry: registration, standard properties, lookups, uses and service events.
 * The threading guarantees are in test_registry_threads.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <pelix/registry.h>

#include "util/util.h"

#include <cmocka.h>

static const char *const SPEC_A[] = {"spec.a"};
static const char *const SPEC_B[] = {"spec.b"};
static const char *const SPEC_AB[] = {"spec.a", "spec.b"};

static int svc_a = 1, svc_b = 2, svc_c = 3;

static pelix_props_t *props_kv(const char *key, const char *value)
{
    pelix_props_t *p = pelix_props_new();
    assert_non_null(p);
    if (key) {
        assert_int_equal(pelix_props_set_string(p, key, value), 0);
    }
    return p;
}

static long reg_svc(pelix_registry_t *r, const char *const *specs, size_t n, void *svc,
                    pelix_props_t *props)
{
    long id = 0;
    assert_int_equal(pelix_registry_register(r, specs, n, svc, props, &id), 0);
    assert_true(id > 0);
    return id;
}

/* ---- event recording ------------------------------------------------------------------------- */

#define MAX_EVENTS 64

typedef struct recorded {
    pelix_svc_event_kind_t kind;
    long id;
    void *svc;
    pelix_props_t *props;
    pelix_props_t *old_props;
} recorded_t;

typedef struct recorder {
    recorded_t events[MAX_EVENTS];
    size_t count;
} recorder_t;

static void record(void *ctx, const pelix_svc_event_t *ev)
{
    recorder_t *rec = ctx;
    assert_true(rec->count < MAX_EVENTS);
    recorded_t *e = &rec->events[rec->count++];
    e->kind = ev->kind;
    e->id = ev->id;
    e->svc = ev->svc;
    e->props = pelix_props_copy(ev->props);
    e->old_props = ev->old_props ? pelix_props_copy(ev->old_props) : NULL;
}

static void recorder_clear(recorder_t *rec)
{
    for (size_t i = 0; i < rec->count; i++) {
        pelix_props_free(rec->events[i].props);
        pelix_props_free(rec->events[i].old_props);
    }
    rec->count = 0;
}

/* ---- registration and properties ------------------------------------------------------------- */

static void test_register_sets_standard_properties(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    pelix_props_t *p = props_kv("name", "x");
    pelix_props_set_long(p, PELIX_SERVICE_ID, 999);       /* replaced by the registry */
    pelix_props_set_string(p, PELIX_OBJECTCLASS, "fake"); /* replaced too */
    long id = reg_svc(r, SPEC_AB, 2, &svc_a, p);
    long id2 = reg_svc(r, SPEC_A, 1, &svc_b, NULL);
    pelix_props_t *got = NULL;

    assert_true(id2 > id);
    assert_int_equal(pelix_registry_get_properties(r, id, &got), 0);
    assert_int_equal(pelix_props_get_long(got, PELIX_SERVICE_ID, 0), id);
    assert_int_equal(pelix_props_get_long(got, PELIX_SERVICE_RANKING, -1), 0);
    assert_string_equal(pelix_props_get_string(got, "name", ""), "x");
    const pelix_value_t *oc = pelix_props_get(got, PELIX_OBJECTCLASS);
    assert_int_equal(pelix_value_type(oc), PELIX_TYPE_LIST);
    assert_int_equal(pelix_value_list_size(oc), 2);
    assert_string_equal(pelix_value_string(pelix_value_list_at(oc, 0)), "spec.a");
    assert_string_equal(pelix_value_string(pelix_value_list_at(oc, 1)), "spec.b");
    pelix_props_free(got);

    assert_int_equal(pelix_registry_unregister(r, id), 0);
    assert_int_equal(pelix_registry_unregister(r, id2), 0);
    pelix_registry_free(r);
}

static void test_register_rejects_bad_input(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    const char *const empty[] = {""};
    const char *const null_spec[] = {NULL};
    long id = -1;

    /* The props are consumed on every failure: ASan would report them otherwise. */
    assert_int_equal(pelix_registry_register(r, SPEC_A, 0, &svc_a, props_kv("a", "b"), &id),
                     -EINVAL);
    assert_int_equal(pelix_registry_register(r, empty, 1, &svc_a, props_kv("a", "b"), &id),
                     -EINVAL);
    assert_int_equal(pelix_registry_register(r, null_spec, 1, &svc_a, props_kv("a", "b"), &id),
                     -EINVAL);
    assert_int_equal(pelix_registry_register(r, SPEC_A, 1, NULL, props_kv("a", "b"), &id), -EINVAL);
    /* The same specification twice would index the service twice under it. */
    const char *const twice[] = {"spec.a", "spec.b", "spec.a"};
    assert_int_equal(pelix_registry_register(r, twice, 3, &svc_a, props_kv("a", "b"), &id),
                     -EINVAL);
    assert_int_equal(pelix_registry_register(NULL, SPEC_A, 1, &svc_a, props_kv("a", "b"), &id),
                     -EINVAL);
    assert_int_equal(
        pelix_registry_register(r, SPEC_A, 1, &svc_a, props_kv(PELIX_SERVICE_RANKING, "high"), &id),
        PELIX_E_TYPE);
    assert_int_equal(id, -1); /* never written on failure */

    long *ids = NULL;
    size_t n = 9;
    assert_int_equal(pelix_registry_find(r, NULL, NULL, &ids, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
    pelix_registry_free(r);
}

static void test_find_orders_by_ranking_then_id(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    pelix_props_t *p;
    long low, mid1, mid2, high;
    long *ids = NULL;
    size_t n = 0;

    p = pelix_props_new();
    pelix_props_set_long(p, PELIX_SERVICE_RANKING, -5);
    low = reg_svc(r, SPEC_A, 1, &svc_a, p);
    mid1 = reg_svc(r, SPEC_A, 1, &svc_b, NULL);
    p = props_kv(PELIX_SERVICE_RANKING, "10"); /* a string holding a long is coerced */
    high = reg_svc(r, SPEC_A, 1, &svc_c, p);
    mid2 = reg_svc(r, SPEC_A, 1, &svc_a, NULL);
    reg_svc(r, SPEC_B, 1, &svc_b, NULL);

    assert_int_equal(pelix_registry_find(r, "spec.a", NULL, &ids, &n, NULL), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], high);
    assert_int_equal(ids[1], mid1);
    assert_int_equal(ids[2], mid2);
    assert_int_equal(ids[3], low);
    free(ids);

    /* A ranking change moves the service. */
    p = pelix_props_new();
    pelix_props_set_long(p, PELIX_SERVICE_RANKING, 100);
    assert_int_equal(pelix_registry_set_properties(r, low, p), 0);
    assert_int_equal(pelix_registry_find(r, "spec.a", "", &ids, &n, NULL), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], low);
    assert_int_equal(ids[1], high);
    free(ids);

    assert_int_equal(pelix_registry_find(r, NULL, NULL, &ids, &n, NULL), 0);
    assert_int_equal(n, 5);
    free(ids);
    assert_int_equal(pelix_registry_find(r, "spec.none", NULL, &ids, &n, NULL), 0);
    assert_int_equal(n, 0);
    pelix_registry_free(r);
}

static void test_find_with_filter(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    pelix_error_t err = PELIX_ERROR_INIT;
    long a = reg_svc(r, SPEC_A, 1, &svc_a, props_kv("host", "edge-1"));
    reg_svc(r, SPEC_A, 1, &svc_b, props_kv("host", "edge-2"));
    long *ids = NULL;
    size_t n = 0;

    assert_int_equal(pelix_registry_find(r, "spec.a", "(host=edge-1)", &ids, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], a);
    free(ids);
    assert_int_equal(pelix_registry_find(r, NULL, "(objectClass=spec.a)", &ids, &n, NULL), 0);
    assert_int_equal(n, 2);
    free(ids);
    assert_int_equal(pelix_registry_find(r, "spec.a", "(host=edge-1", &ids, &n, &err),
                     PELIX_E_FILTER_SYNTAX);
    assert_non_null(strstr(err.text, "missing ')'"));
    pelix_registry_free(r);
}

static void test_set_properties_keeps_standard_ones(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    long id = reg_svc(r, SPEC_A, 1, &svc_a, props_kv("k", "v1"));
    pelix_props_t *p = props_kv("k", "v2"), *got = NULL;

    pelix_props_set_long(p, PELIX_SERVICE_ID, 12345);
    assert_int_equal(pelix_registry_set_properties(r, id, p), 0);
    assert_int_equal(pelix_registry_get_properties(r, id, &got), 0);
    assert_string_equal(pelix_props_get_string(got, "k", ""), "v2");
    assert_int_equal(pelix_props_get_long(got, PELIX_SERVICE_ID, 0), id);
    assert_non_null(pelix_props_get(got, PELIX_OBJECTCLASS));
    pelix_props_free(got);

    assert_int_equal(pelix_registry_set_properties(r, id, props_kv(PELIX_SERVICE_RANKING, "x")),
                     PELIX_E_TYPE);
    assert_int_equal(pelix_registry_unregister(r, id), 0);
    assert_int_equal(pelix_registry_set_properties(r, id, props_kv("k", "v3")), -ENOENT);
    assert_int_equal(pelix_registry_get_properties(r, id, &got), -ENOENT);
    assert_int_equal(pelix_registry_unregister(r, id), -ENOENT);
    pelix_registry_free(r);
}

/* ---- uses ------------------------------------------------------------------------------------ */

typedef struct use_probe {
    pelix_registry_t *reg;
    long id;
    void *svc;
    long count_inside;
    int calls;
} use_probe_t;

static void probe_use(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    use_probe_t *u = ctx;
    assert_non_null(props);
    u->id = id;
    u->svc = svc;
    u->count_inside = pelix_registry_use_count(u->reg, id);
    u->calls++;
}

static void test_get_unget_and_use(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    pelix_props_t *p = pelix_props_new();
    pelix_props_set_long(p, PELIX_SERVICE_RANKING, 3);
    long best = reg_svc(r, SPEC_A, 1, &svc_b, p);
    long other = reg_svc(r, SPEC_A, 1, &svc_a, NULL);
    use_probe_t u = {.reg = r};
    void *svc = NULL;

    assert_int_equal(pelix_registry_get_service(r, other, &svc), 0);
    assert_ptr_equal(svc, &svc_a);
    assert_int_equal(pelix_registry_get_service(r, other, &svc), 0);
    assert_int_equal(pelix_registry_use_count(r, other), 2);
    assert_int_equal(pelix_registry_unget_service(r, other), 0);
    assert_int_equal(pelix_registry_unget_service(r, other), 0);
    assert_int_equal(pelix_registry_use_count(r, other), 0);
    assert_int_equal(pelix_registry_unget_service(r, other), -ENOENT);

    assert_int_equal(pelix_registry_use(r, "spec.a", NULL, probe_use, &u), 0);
    assert_int_equal(u.id, best);
    assert_ptr_equal(u.svc, &svc_b);
    assert_int_equal(u.count_inside, 1);
    assert_int_equal(pelix_registry_use_count(r, best), 0);
    assert_int_equal(pelix_registry_use(r, "spec.b", NULL, probe_use, &u), -ENOENT);
    assert_int_equal(pelix_registry_use(r, "spec.a", "(bad", probe_use, &u), PELIX_E_FILTER_SYNTAX);
    assert_int_equal(pelix_registry_use_id(r, other, probe_use, &u), 0);
    assert_ptr_equal(u.svc, &svc_a);
    assert_int_equal(u.calls, 2);

    assert_int_equal(pelix_registry_unregister(r, other), 0);
    assert_int_equal(pelix_registry_get_service(r, other, &svc), -ENOENT);
    assert_int_equal(pelix_registry_use_id(r, other, probe_use, &u), -ENOENT);
    assert_int_equal(u.calls, 2);
    pelix_registry_free(r);
}

/* ---- events ---------------------------------------------------------------------------------- */

static void test_event_kinds_with_filter(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    recorder_t rec = {0};
    long lid, id;

    assert_int_equal(
        pelix_registry_add_listener(r, "spec.a", "(state=on)", false, record, &rec, &lid, NULL), 0);
    id = reg_svc(r, SPEC_A, 1, &svc_a, props_kv("state", "on"));
    reg_svc(r, SPEC_B, 1, &svc_b, props_kv("state", "on")); /* other spec: not seen */
    assert_int_equal(pelix_registry_set_properties(r, id, props_kv("state", "on")), 0);
    assert_int_equal(rec.count, 1); /* nothing changed: no MODIFIED */

    pelix_props_t *p = props_kv("state", "on");
    pelix_props_set_long(p, "extra", 1);
    assert_int_equal(pelix_registry_set_properties(r, id, p), 0);
    assert_int_equal(pelix_registry_set_properties(r, id, props_kv("state", "off")), 0);
    assert_int_equal(pelix_registry_set_properties(r, id, props_kv("state", "still-off")), 0);
    assert_int_equal(pelix_registry_set_properties(r, id, props_kv("state", "on")), 0);
    assert_int_equal(pelix_registry_unregister(r, id), 0);

    assert_int_equal(rec.count, 5);
    assert_int_equal(rec.events[0].kind, PELIX_SVC_REGISTERED);
    assert_null(rec.events[0].old_props);
    assert_ptr_equal(rec.events[0].svc, &svc_a);
    assert_int_equal(rec.events[1].kind, PELIX_SVC_MODIFIED);
    assert_int_equal(pelix_props_get_long(rec.events[1].props, "extra", 0), 1);
    assert_null(pelix_props_get(rec.events[1].old_props, "extra"));
    assert_int_equal(rec.events[2].kind, PELIX_SVC_MODIFIED_ENDMATCH);
    assert_string_equal(pelix_props_get_string(rec.events[2].props, "state", ""), "off");
    assert_string_equal(pelix_props_get_string(rec.events[2].old_props, "state", ""), "on");
    assert_int_equal(rec.events[3].kind, PELIX_SVC_MODIFIED); /* matches again */
    assert_int_equal(rec.events[4].kind, PELIX_SVC_UNREGISTERING);
    for (size_t i = 0; i < rec.count; i++) {
        assert_int_equal(rec.events[i].id, id);
    }
    assert_int_equal(pelix_registry_remove_listener(r, lid), 0);
    assert_int_equal(pelix_registry_remove_listener(r, lid), -ENOENT);
    recorder_clear(&rec);
    pelix_registry_free(r);
}

static void test_listener_on_any_spec_and_multi_spec_service(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    recorder_t any = {0}, b = {0};
    long l1, l2;

    assert_int_equal(pelix_registry_add_listener(r, NULL, NULL, false, record, &any, &l1, NULL), 0);
    assert_int_equal(pelix_registry_add_listener(r, "spec.b", NULL, false, record, &b, &l2, NULL),
                     0);
    long id = reg_svc(r, SPEC_AB, 2, &svc_a, NULL); /* one event per listener, not per spec */
    reg_svc(r, SPEC_A, 1, &svc_b, NULL);
    assert_int_equal(any.count, 2);
    assert_int_equal(b.count, 1);
    assert_int_equal(b.events[0].id, id);

    /* A removed listener hears nothing more. */
    assert_int_equal(pelix_registry_remove_listener(r, l2), 0);
    assert_int_equal(pelix_registry_unregister(r, id), 0);
    assert_int_equal(b.count, 1);
    assert_int_equal(any.count, 3);
    pelix_registry_remove_listener(r, l1);
    recorder_clear(&any);
    recorder_clear(&b);
    pelix_registry_free(r);
}

static void test_listener_replay(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    recorder_t rec = {0}, none = {0};
    pelix_error_t err = PELIX_ERROR_INIT;
    long a = reg_svc(r, SPEC_A, 1, &svc_a, props_kv("x", "1"));
    long b = reg_svc(r, SPEC_A, 1, &svc_b, props_kv("x", "2"));
    long gone = reg_svc(r, SPEC_A, 1, &svc_c, props_kv("x", "1"));
    long lid;

    assert_int_equal(pelix_registry_unregister(r, gone), 0);
    assert_int_equal(
        pelix_registry_add_listener(r, "spec.a", "(x=1)", true, record, &rec, &lid, NULL), 0);
    assert_int_equal(rec.count, 1);
    assert_int_equal(rec.events[0].kind, PELIX_SVC_REGISTERED);
    assert_int_equal(rec.events[0].id, a);
    (void)b;
    /* Without replay, nothing; with a bad filter, an error and no call. */
    assert_int_equal(
        pelix_registry_add_listener(r, "spec.a", NULL, false, record, &none, NULL, NULL), 0);
    assert_int_equal(
        pelix_registry_add_listener(r, "spec.a", "(x=", true, record, &none, NULL, &err),
        PELIX_E_FILTER_SYNTAX);
    assert_true(err.position >= 0);
    assert_int_equal(none.count, 0);
    assert_int_equal(pelix_registry_add_listener(r, "", NULL, true, record, &none, NULL, NULL),
                     -EINVAL);
    recorder_clear(&rec);
    pelix_registry_free(r);
}

/* ---- callbacks that call the registry -------------------------------------------------------- */

typedef struct reentrant {
    pelix_registry_t *reg;
    recorder_t rec;
    int mode;
    long other;
} reentrant_t;

static void reentrant_cb(void *ctx, const pelix_svc_event_t *ev)
{
    reentrant_t *t = ctx;
    record(&t->rec, ev);
    if (ev->kind != PELIX_SVC_REGISTERED || pelix_props_get(ev->props, "nested")) {
        return;
    }
    switch (t->mode) {
    case 0: /* unregister the service we are called for */
        assert_int_equal(pelix_registry_unregister(t->reg, ev->id), 0);
        break;
    case 1: /* modify it twice */
        assert_int_equal(pelix_registry_set_properties(t->reg, ev->id, props_kv("v", "1")), 0);
        assert_int_equal(pelix_registry_set_properties(t->reg, ev->id, props_kv("v", "2")), 0);
        break;
    case 2: { /* register another one: its events are delivered right away */
        pelix_props_t *p = props_kv("nested", "yes");
        assert_int_equal(pelix_registry_register(t->reg, SPEC_A, 1, &svc_c, p, &t->other), 0);
        break;
    }
    }
}

static void test_callback_unregisters_its_service(void **state)
{
    (void)state;
    reentrant_t t = {.reg = pelix_registry_new(), .mode = 0};
    long *ids = NULL;
    size_t n = 1;

    pelix_registry_add_listener(t.reg, NULL, NULL, false, reentrant_cb, &t, NULL, NULL);
    long id = reg_svc(t.reg, SPEC_A, 1, &svc_a, NULL);
    assert_int_equal(t.rec.count, 2);
    assert_int_equal(t.rec.events[0].kind, PELIX_SVC_REGISTERED);
    assert_int_equal(t.rec.events[1].kind, PELIX_SVC_UNREGISTERING);
    assert_int_equal(t.rec.events[1].id, id);
    assert_int_equal(pelix_registry_find(t.reg, "spec.a", NULL, &ids, &n, NULL), 0);
    assert_int_equal(n, 0);
    recorder_clear(&t.rec);
    pelix_registry_free(t.reg);
}

static void test_callback_modifies_its_service_in_order(void **state)
{
    (void)state;
    reentrant_t t = {.reg = pelix_registry_new(), .mode = 1};

    pelix_registry_add_listener(t.reg, NULL, NULL, false, reentrant_cb, &t, NULL, NULL);
    long id = reg_svc(t.reg, SPEC_A, 1, &svc_a, NULL);
    /* Nested changes are queued behind the event being delivered, then delivered in order. */
    assert_int_equal(t.rec.count, 3);
    assert_int_equal(t.rec.events[1].kind, PELIX_SVC_MODIFIED);
    assert_string_equal(pelix_props_get_string(t.rec.events[1].props, "v", ""), "1");
    assert_int_equal(t.rec.events[2].kind, PELIX_SVC_MODIFIED);
    assert_string_equal(pelix_props_get_string(t.rec.events[2].props, "v", ""), "2");
    assert_string_equal(pelix_props_get_string(t.rec.events[2].old_props, "v", ""), "1");
    assert_int_equal(pelix_registry_unregister(t.reg, id), 0);
    recorder_clear(&t.rec);
    pelix_registry_free(t.reg);
}

static void test_callback_registers_another_service(void **state)
{
    (void)state;
    reentrant_t t = {.reg = pelix_registry_new(), .mode = 2};

    pelix_registry_add_listener(t.reg, NULL, NULL, false, reentrant_cb, &t, NULL, NULL);
    long id = reg_svc(t.reg, SPEC_A, 1, &svc_a, NULL);
    assert_int_equal(t.rec.count, 2);
    assert_int_equal(t.rec.events[0].id, id);
    assert_int_equal(t.rec.events[1].id, t.other);
    assert_int_equal(t.rec.events[1].kind, PELIX_SVC_REGISTERED);
    recorder_clear(&t.rec);
    pelix_registry_free(t.reg);
}

typedef struct self_remove {
    pelix_registry_t *reg;
    long lid;
    int calls;
} self_remove_t;

static void self_remove_cb(void *ctx, const pelix_svc_event_t *ev)
{
    self_remove_t *s = ctx;
    (void)ev;
    s->calls++;
    assert_int_equal(pelix_registry_remove_listener(s->reg, s->lid), 0);
}

static void test_listener_removes_itself(void **state)
{
    (void)state;
    self_remove_t s = {.reg = pelix_registry_new()};

    pelix_registry_add_listener(s.reg, NULL, NULL, false, self_remove_cb, &s, &s.lid, NULL);
    long id = reg_svc(s.reg, SPEC_A, 1, &svc_a, NULL);
    pelix_registry_set_properties(s.reg, id, props_kv("a", "b"));
    pelix_registry_unregister(s.reg, id);
    assert_int_equal(s.calls, 1);
    pelix_registry_free(s.reg);
}

static void unregister_in_use(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    (void)svc;
    (void)props;
    /* The caller's own use is not waited for: this must return, not hang. */
    assert_int_equal(pelix_registry_unregister(ctx, id), 0);
}

static void test_unregister_from_own_use(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    long id = reg_svc(r, SPEC_A, 1, &svc_a, NULL);

    assert_int_equal(pelix_registry_use_id(r, id, unregister_in_use, r), 0);
    assert_int_equal(pelix_registry_use_count(r, id), 0);
    assert_int_equal(pelix_registry_unregister(r, id), -ENOENT);
    pelix_registry_free(r);
}

/* ---- unregister without memory --------------------------------------------------------------- */

typedef struct tagged {
    int tag;
    int *order;
    size_t *count;
} tagged_t;

static void record_tag(void *ctx, const pelix_svc_event_t *ev)
{
    tagged_t *t = ctx;
    if (ev->kind == PELIX_SVC_UNREGISTERING) {
        t->order[(*t->count)++] = t->tag;
    }
}

/* Unregistering cannot fail: without memory for its event, every listener that wants it still
 * hears UNREGISTERING, once, and unregister returns. */
static void test_unregister_without_memory(void **state)
{
    (void)state;
    pelix_registry_t *r = pelix_registry_new();
    int order[8] = {0};
    size_t count = 0;
    tagged_t t[4] = {
        {1, order, &count}, {2, order, &count}, {3, order, &count}, {4, order, &count}};
    const char *spec[4] = {NULL, "spec.b", "spec.a", "spec.a"};
    const char *filter[4] = {NULL, NULL, "(x=no)", "(x=yes)"};
    long l[4];

    for (int i = 0; i < 4; i++) {
        assert_int_equal(pelix_registry_add_listener(r, spec[i], filter[i], false, record_tag,
                                                     &t[i], &l[i], NULL),
                         0);
    }
    long id = reg_svc(r, SPEC_AB, 2, &svc_a, props_kv("x", "yes"));
    pelix__alloc_fail_after(0);
    int rc = pelix_registry_unregister(r, id);
    pelix__alloc_fail_after(-1);
    assert_int_equal(rc, 0);
    assert_int_equal(count, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 4);
    void *gone = NULL;
    assert_int_equal(pelix_registry_get_service(r, id, &gone), -ENOENT);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pelix_registry_remove_listener(r, l[i]), 0);
    }
    pelix_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_sets_standard_properties),
        cmocka_unit_test(test_register_rejects_bad_input),
        cmocka_unit_test(test_find_orders_by_ranking_then_id),
        cmocka_unit_test(test_find_with_filter),
        cmocka_unit_test(test_set_properties_keeps_standard_ones),
        cmocka_unit_test(test_get_unget_and_use),
        cmocka_unit_test(test_event_kinds_with_filter),
        cmocka_unit_test(test_listener_on_any_spec_and_multi_spec_service),
        cmocka_unit_test(test_listener_replay),
        cmocka_unit_test(test_callback_unregisters_its_service),
        cmocka_unit_test(test_callback_modifies_its_service_in_order),
        cmocka_unit_test(test_callback_registers_another_service),
        cmocka_unit_test(test_listener_removes_itself),
        cmocka_unit_test(test_unregister_from_own_use),
        cmocka_unit_test(test_unregister_without_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
