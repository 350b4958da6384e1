/*
 * Fault injection on the network path, against real mosquitto brokers: the service reaches broker
 * A through a TCP proxy of the test (tests/integration/proxy.c) that stalls, delays, cuts every
 * connection or cuts one in the middle of what the broker sends; broker B is reached directly.
 * What must hold, in each test:
 * - the connection through the proxy comes back by itself once the fault ends;
 * - broker B's messages keep flowing meanwhile: a message published on B reaches its listener
 *   within PROBE_BOUND_MS;
 * - no silent loss: each QoS 1 message published through the proxy either reaches a subscriber of
 *   broker A or is reported lost to its publisher (wait_published: -ENOTCONN); those published
 *   while the connection is known to be down wait in its offline queue and arrive, in order, after
 *   the reconnect;
 * - a listener never gets a message cut short;
 * - a QoS 2 message whose PUBREL the cut took is delivered once on the resumed persistent session;
 * - the service stops without waiting on anything (pelix_mqtt_free within STOP_BOUND_MS).
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "integration/broker.h"
#include "integration/client.h"
#include "integration/mqtt_fixture.h"
#include "integration/proxy.h"

#define PROBE_BOUND_MS 2000
#define STOP_BOUND_MS 5000
#define FAST "reconnect_min", "1", "reconnect_max", "1", "connect_timeout", "2"

typedef struct state {
    mf_t fx;
    tb_broker_t *a, *b;
    tp_proxy_t *proxy;
    char *via, *direct;    /* PIDs: through the proxy to A; directly to B */
    tc_client_t *observer; /* on A, subscribed to through/# */
    mf_listener_t probe;   /* probe/# on the direct connection only */
    char probe_filter[128];
} state_t;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int setup(void **st)
{
    state_t *s = calloc(1, sizeof(*s));
    const char *probe[] = {"probe/#"};

    assert_non_null(s);
    assert_non_null(s->a = tb_broker_start(NULL));
    assert_non_null(s->b = tb_broker_start(NULL));
    assert_non_null(s->proxy = tp_proxy_start(tb_broker_port(s->a)));
    mf_start(&s->fx, false);
    s->via = mf_create(&s->fx, tp_proxy_port(s->proxy), "keepalive", "5", FAST, NULL);
    s->direct = mf_create(&s->fx, tb_broker_port(s->b), NULL);
    assert_true(mf_wait_connection(&s->fx, s->via, MF_WAIT_MS) > 0);
    assert_true(mf_wait_connection(&s->fx, s->direct, MF_WAIT_MS) > 0);
    snprintf(s->probe_filter, sizeof(s->probe_filter), "(id=%s)", s->direct);
    s->probe.connections = s->probe_filter;
    mf_listen(&s->fx, &s->probe, probe, 1, false, 0);
    assert_true(tb_broker_wait_log(s->b, "\tprobe/# (QoS", 1, MF_WAIT_MS));
    assert_non_null(s->observer = tc_connect(tb_broker_port(s->a), NULL));
    assert_int_equal(tc_subscribe(s->observer, "through/#", 1), 1);
    *st = s;
    return 0;
}

static int teardown(void **st)
{
    state_t *s = *st;
    tc_disconnect(s->observer);
    mf_listener_destroy(&s->probe);
    mf_free(&s->fx);
    tp_proxy_free(s->proxy);
    tb_broker_free(s->a);
    tb_broker_free(s->b);
    free(s->via);
    free(s->direct);
    free(s);
    return 0;
}

/* Broker B still delivers: a message published there reaches the probe listener in time. */
static void check_probe(state_t *s)
{
    static int n;
    char topic[64];
    tc_client_t *c = tc_connect(tb_broker_port(s->b), NULL);

    assert_non_null(c);
    snprintf(topic, sizeof(topic), "probe/%d", ++n);
    long t0 = now_ms();
    assert_int_equal(tc_publish(c, topic, "p", 1, 0, false), 0);
    assert_true(mf_listener_wait(&s->probe, topic, 1, PROBE_BOUND_MS));
    assert_true(now_ms() - t0 < PROBE_BOUND_MS);
    tc_disconnect(c);
}

typedef struct sent {
    char topic[64];
    pelix_mqtt_result_t *r;
    size_t n;
    int rc;
} sent_t;

/* Publishes QoS 1 `topic` through the proxied connection only (factory, pid). */
static void send_via(state_t *s, sent_t *m, const char *fmt, int i)
{
    pelix_mqtt_factory_t *f = mf_factory(&s->fx);
    snprintf(m->topic, sizeof(m->topic), fmt, i);
    m->rc = f->publish(f->handle, m->topic, "m", 1, 1, false, s->via, &m->r, &m->n);
}

/* The message reached A's subscriber, or its publisher was told it was lost (or refused). */
static void check_not_silently_lost(state_t *s, sent_t *m, long wait_ms)
{
    pelix_mqtt_factory_t *f = mf_factory(&s->fx);
    bool reported = m->rc != 0 || m->n != 1 || m->r[0].rc != 0;

    if (!reported && !m->r[0].queued) {
        int w = f->wait_published(f->handle, &m->r[0], wait_ms);
        reported = w == -ENOTCONN;
        assert_true(w == 0 || w == -ENOTCONN);
    }
    if (!reported) {
        if (!tc_wait_count(s->observer, m->topic, 1, wait_ms)) {
            fail_msg("%s: neither received nor reported lost", m->topic);
        }
    }
    pelix_mqtt_results_free(m->r, m->n);
    m->r = NULL;
}

static void stop_in_time(state_t *s)
{
    long t0 = now_ms();
    s->fx.mqtt = pelix_mqtt_free(s->fx.mqtt);
    assert_true(now_ms() - t0 < STOP_BOUND_MS);
}

/* ---- a stalled link -------------------------------------------------------------------------- */

static void test_stalled_link(void **st)
{
    state_t *s = *st;
    sent_t during[10], down[10];

    /* Stalled: the connection looks up until its keepalive (5 s) runs out. */
    tp_proxy_stall(s->proxy, true);
    for (int i = 0; i < 10; i++) {
        send_via(s, &during[i], "through/during/%d", i);
    }
    check_probe(s);
    assert_true(mf_wait_no_connection(&s->fx, s->via, 3 * MF_WAIT_MS));
    check_probe(s);
    /* Known down: queued, in order. */
    for (int i = 0; i < 10; i++) {
        send_via(s, &down[i], "through/down/%d", i);
        assert_int_equal(down[i].rc, 0);
        assert_true(down[i].n == 1 && down[i].r[0].queued);
    }
    tp_proxy_stall(s->proxy, false);
    assert_true(mf_wait_connection(&s->fx, s->via, MF_WAIT_MS) > 0);
    assert_true(tc_wait_count(s->observer, "through/down/+", 10, MF_WAIT_MS));
    for (int i = 0; i < 10; i++) {
        tc_message_t m = {0};
        char expect[64];
        snprintf(expect, sizeof(expect), "through/down/%d", i);
        assert_true(tc_wait_message(s->observer, "through/down/+", 0, &m));
        assert_string_equal(m.topic, expect); /* in order, once */
        tc_message_free(&m);
        pelix_mqtt_results_free(down[i].r, down[i].n);
    }
    for (int i = 0; i < 10; i++) {
        check_not_silently_lost(s, &during[i], MF_WAIT_MS);
    }
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(tc_count(s->observer, "through/down/+"), 0); /* no second copy */
    stop_in_time(s);
}

/* ---- a connection cut in the middle of a packet ---------------------------------------------- */

static void test_cut_mid_packet(void **st)
{
    state_t *s = *st;
    mf_listener_t l = {0};
    char filter[128], big[1000];
    const char *t[] = {"mid/#"};

    snprintf(filter, sizeof(filter), "(id=%s)", s->via);
    l.connections = filter;
    mf_listen(&s->fx, &l, t, 1, false, 1);
    assert_true(tb_broker_wait_log(s->a, "\tmid/# (QoS", 1, MF_WAIT_MS));
    long first = mf_wait_connection(&s->fx, s->via, MF_WAIT_MS);
    memset(big, 'x', sizeof(big));
    tc_client_t *c = tc_connect(tb_broker_port(s->a), NULL);
    assert_non_null(c);

    tp_proxy_cut_mid_packet(s->proxy);
    assert_int_equal(tc_publish(c, "mid/1", big, sizeof(big), 1, false), 0);
    for (int i = 0; i < MF_WAIT_MS / 10 && !tp_proxy_cut_done(s->proxy); i++) {
        usleep(10 * 1000);
    }
    assert_true(tp_proxy_cut_done(s->proxy));
    check_probe(s);
    /* Back with a new service, its subscription restored. */
    long again = 0;
    for (int i = 0; i < MF_WAIT_MS / 50; i++) {
        again = mf_wait_connection(&s->fx, s->via, 50);
        if (again > 0 && again != first) {
            break;
        }
    }
    assert_true(again > 0 && again != first);
    assert_true(tb_broker_wait_log(s->a, "\tmid/# (QoS", 2, MF_WAIT_MS));
    assert_int_equal(tc_publish(c, "mid/2", big, sizeof(big), 1, false), 0);
    assert_true(mf_listener_wait(&l, "mid/2", 1, MF_WAIT_MS));
    pthread_mutex_lock(&l.lock);
    for (size_t i = 0; i < l.count; i++) { /* whole messages only */
        assert_int_equal(l.msgs[i].len, sizeof(big));
        assert_memory_equal(l.msgs[i].payload, big, sizeof(big));
    }
    pthread_mutex_unlock(&l.lock);
    tc_disconnect(c);
    mf_listener_destroy(&l);
    stop_in_time(s);
}

/* ---- a slow link ----------------------------------------------------------------------------- */

static void test_delayed_link(void **st)
{
    state_t *s = *st;
    sent_t m[20];

    tp_proxy_delay(s->proxy, 150);
    for (int i = 0; i < 20; i++) {
        send_via(s, &m[i], "through/slow/%d", i);
    }
    check_probe(s);
    for (int i = 0; i < 20; i++) {
        pelix_mqtt_factory_t *f = mf_factory(&s->fx);
        assert_int_equal(m[i].rc, 0);
        assert_int_equal(f->wait_published(f->handle, &m[i].r[0], MF_WAIT_MS), 0);
        pelix_mqtt_results_free(m[i].r, m[i].n);
    }
    assert_true(tc_wait_count(s->observer, "through/slow/+", 20, MF_WAIT_MS));
    for (int i = 0; i < 20; i++) {
        tc_message_t msg = {0};
        char expect[64];
        snprintf(expect, sizeof(expect), "through/slow/%d", i);
        assert_true(tc_wait_message(s->observer, "through/slow/+", 0, &msg));
        assert_string_equal(msg.topic, expect);
        tc_message_free(&msg);
    }
    tp_proxy_delay(s->proxy, 0);
    stop_in_time(s);
}

/* ---- connections cut again and again, and refused, while publishing ------------------------- */

#define CUT_MESSAGES 60

static void test_repeated_cuts(void **st)
{
    state_t *s = *st;
    sent_t m[CUT_MESSAGES];

    for (int i = 0; i < CUT_MESSAGES; i++) {
        send_via(s, &m[i], "through/cuts/%d", i);
        usleep(50 * 1000);
        if (i % 6 == 5) {
            tp_proxy_cut(s->proxy);
        }
        if (i == CUT_MESSAGES / 2) {
            tp_proxy_refuse(s->proxy, true); /* accepted then closed at once, for a while */
        }
        if (i == CUT_MESSAGES / 2 + 10) {
            tp_proxy_refuse(s->proxy, false);
        }
    }
    check_probe(s);
    assert_true(mf_wait_connection(&s->fx, s->via, MF_WAIT_MS) > 0);
    for (int i = 0; i < CUT_MESSAGES; i++) {
        check_not_silently_lost(s, &m[i], MF_WAIT_MS);
    }
    assert_true(tp_proxy_accepted(s->proxy) > 3); /* it did reconnect, several times */
    stop_in_time(s);
}

/* The link cut between the service's PUBREC and the broker's PUBREL of a QoS 2 message, on a
 * persistent session: the broker sends the PUBREL again on the resumed session, and the message
 * reaches its listener once. */
static void test_qos2_cut_before_pubrel(void **st)
{
    state_t *s = *st;
    const char *t[] = {"q2cut/#"};
    mf_listener_t l = {0};
    char filter[128];

    /* A proxy of its own: the connection through the shared one subscribes q2cut/# too. */
    tp_proxy_t *proxy = tp_proxy_start(tb_broker_port(s->a));
    assert_non_null(proxy);
    char *pid = mf_create(&s->fx, tp_proxy_port(proxy), "clean_session", "false", "client_id",
                          "q2cut-1", FAST, NULL);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    snprintf(filter, sizeof(filter), "(id=%s)", pid);
    l.connections = filter;
    mf_listen(&s->fx, &l, t, 1, false, 2);
    assert_true(tb_broker_wait_log(s->a, "\tq2cut/# (QoS 2)", 1, MF_WAIT_MS));

    tp_proxy_cut_before(proxy, 6); /* PUBREL */
    tc_client_t *pub = tc_connect(tb_broker_port(s->a), NULL);
    assert_non_null(pub);
    assert_int_equal(tc_publish(pub, "q2cut/t", "once", 4, 2, false), 0);
    for (int i = 0; i < MF_WAIT_MS / 10 && !tp_proxy_cut_done(proxy); i++) {
        usleep(10 * 1000);
    }
    assert_true(tp_proxy_cut_done(proxy));
    /* Sent again on the resumed session, then answered. */
    assert_true(tb_broker_wait_log(s->a, "Sending PUBREL to q2cut-1", 2, MF_WAIT_MS));
    assert_true(tb_broker_wait_log(s->a, "Received PUBCOMP from q2cut-1", 1, MF_WAIT_MS));
    assert_true(mf_listener_wait(&l, "q2cut/t", 1, MF_WAIT_MS));
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_listener_count(&l, "q2cut/t"), 1);

    tc_disconnect(pub);
    mf_unlisten(&l);
    mf_listener_destroy(&l);
    mf_delete(&s->fx, pid);
    tp_proxy_free(proxy);
    free(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stalled_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_mid_packet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delayed_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_cuts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos2_cut_before_pubrel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
