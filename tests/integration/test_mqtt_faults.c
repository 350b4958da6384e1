/*
 * The MQTT service when things go wrong, against real mosquitto brokers on loopback: the
 * regression tests of Pelix's bugs (reconnect after the broker starts, broker restart with the
 * subscriptions restored, live port change, delete during a pending connect, invalid filter
 * isolation, blackholed broker), a TCP connect that never completes (an MQTT 5 session connect,
 * which blocks its connector thread) stalling neither the other brokers nor the shutdown,
 * configurations across a restart of the runtime, stray files, publish to all over three brokers,
 * two configurations on one broker not kicking each other, and listeners that block while the
 * network thread runs them.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "integration/broker.h"
#include "integration/client.h"
#include "integration/mqtt_fixture.h"
#include "unit/ca_helpers.h"

typedef struct state {
    mf_t fx;
    tb_broker_t *b[3];
    tb_blackhole_t *hole;
    tb_synhole_t *synhole;
    mf_listener_t l1, l2, l3;
} state_t;

static int setup(void **st)
{
    state_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    mf_start(&s->fx, true);
    *st = s;
    return 0;
}

static int teardown(void **st)
{
    state_t *s = *st;
    mf_listener_destroy(&s->l1);
    mf_listener_destroy(&s->l2);
    mf_listener_destroy(&s->l3);
    mf_free(&s->fx);
    for (int i = 0; i < 3; i++) {
        tb_broker_free(s->b[i]);
    }
    tb_blackhole_free(s->hole);
    tb_synhole_free(s->synhole);
    free(s);
    return 0;
}

static tb_broker_t *start_broker(int port)
{
    tb_broker_options_t o = {.port = port, .extra_config = NULL};
    tb_broker_t *b = tb_broker_start(&o);
    assert_non_null(b);
    return b;
}

static void publish_from(tb_broker_t *b, const char *topic, const char *payload)
{
    tc_client_t *c = tc_connect(tb_broker_port(b), NULL);
    assert_non_null(c);
    assert_int_equal(tc_publish(c, topic, payload, strlen(payload), 1, false), 0);
    tc_disconnect(c);
}

#define FAST "reconnect_min", "1", "reconnect_max", "2", "connect_timeout", "2"

/* 8: the broker is down when the configuration comes, then starts: the service appears. */
static void test_broker_started_later(void **st)
{
    state_t *s = *st;
    int port = tb_free_port();
    char *pid = mf_create(&s->fx, port, FAST, NULL);

    usleep(1500 * 1000);
    assert_int_equal(mf_count_connections(&s->fx, pid), 0);
    s->b[0] = start_broker(port);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    /* The failure was reported once, not once per retry. */
    assert_int_equal(mf_log_count(&s->fx, "retrying"), 1);
    free(pid);
}

/* 9: the broker restarts: the service goes, comes back, and the subscriptions are restored
 * (plain and shared ones). */
static void test_broker_restart(void **st)
{
    state_t *s = *st;
    const char *t[] = {"restart/#"};
    const char *shared[] = {"$share/g/again/+"};
    s->b[0] = start_broker(0);
    char *pid = mf_create(&s->fx, tb_broker_port(s->b[0]), FAST, NULL);

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, t, 1, false, 1);
    mf_listen(&s->fx, &s->l2, shared, 1, false, 1);
    assert_true(tb_broker_wait_log(s->b[0], "\trestart/# (QoS", 1, MF_WAIT_MS));
    assert_true(tb_broker_wait_log(s->b[0], "\t$share/g/again/+ (QoS", 1, MF_WAIT_MS));
    publish_from(s->b[0], "restart/1", "before");
    assert_true(mf_listener_wait(&s->l1, "restart/1", 1, MF_WAIT_MS));

    assert_int_equal(tb_broker_stop(s->b[0]), 0);
    assert_true(mf_wait_no_connection(&s->fx, pid, MF_WAIT_MS));
    assert_int_equal(tb_broker_restart(s->b[0]), 0);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    assert_int_equal(mf_count_connections(&s->fx, pid), 1);
    /* Subscribed again on the new connection (the broker kept no session). */
    assert_true(tb_broker_wait_log(s->b[0], "\trestart/# (QoS", 2, MF_WAIT_MS));
    assert_true(tb_broker_wait_log(s->b[0], "\t$share/g/again/+ (QoS", 2, MF_WAIT_MS));
    publish_from(s->b[0], "restart/2", "after");
    assert_true(mf_listener_wait(&s->l1, "restart/2", 1, MF_WAIT_MS));
    publish_from(s->b[0], "again/1", "shared");
    assert_true(mf_listener_wait(&s->l2, "again/1", 1, MF_WAIT_MS));
    free(pid);
}

/* 10: a live configuration gets a new port: the connection moves to the other broker. */
static void test_port_change_moves(void **st)
{
    state_t *s = *st;
    char port[16];
    s->b[0] = start_broker(0);
    s->b[1] = start_broker(0);
    char *pid = mf_create(&s->fx, tb_broker_port(s->b[0]), FAST, NULL);
    long first = mf_wait_connection(&s->fx, pid, MF_WAIT_MS);

    assert_true(first > 0);
    snprintf(port, sizeof(port), "%d", tb_broker_port(s->b[1]));
    mf_update(&s->fx, pid, 0, "port", port, FAST, NULL);
    /* The old service goes, a new one comes, with the new port; never two at a time. */
    for (int i = 0; i < 500 && mf_wait_connection(&s->fx, pid, 0) == first; i++) {
        assert_true(mf_count_connections(&s->fx, pid) <= 1);
        usleep(20 * 1000);
    }
    long second = mf_wait_connection(&s->fx, pid, MF_WAIT_MS);
    assert_true(second > 0 && second != first);
    pelix_props_t *props = NULL;
    assert_int_equal(pelix_registry_get_properties(s->fx.reg, second, &props), 0);
    assert_int_equal(pelix_props_get_long(props, "port", 0), tb_broker_port(s->b[1]));
    pelix_props_free(props);
    /* The old broker saw the disconnect. */
    assert_true(tb_broker_wait_log(s->b[0], "disconnected", 1, MF_WAIT_MS));
    /* An update changing nothing of the connection keeps it. */
    mf_update(&s->fx, pid, 0, "port", port, "reconnect_min", "1", "reconnect_max", "3",
              "connect_timeout", "2", NULL);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_wait_connection(&s->fx, pid, 0), second);
    free(pid);
}

/* 11: deleting a configuration while its connect is pending leaves no zombie service. */
static void test_delete_during_pending_connect(void **st)
{
    state_t *s = *st;
    s->hole = tb_blackhole_start();
    assert_non_null(s->hole);
    char *pid = mf_create(&s->fx, tb_blackhole_port(s->hole), "connect_timeout", "30", NULL);

    for (int i = 0; i < 250 && tb_blackhole_accepted(s->hole) == 0; i++) {
        usleep(20 * 1000);
    }
    assert_true(tb_blackhole_accepted(s->hole) >= 1); /* pending: TCP up, no CONNACK */
    mf_delete(&s->fx, pid);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_count_connections(&s->fx, NULL), 0);
    /* Stopping the blackhole (a late, failed CONNACK) brings nothing back either. */
    tb_blackhole_free(s->hole);
    s->hole = NULL;
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_count_connections(&s->fx, NULL), 0);
    free(pid);
}

/* 12: an invalid filter does not break other listeners, nor later connections (Pelix's R8). */
static void test_invalid_filter_isolated(void **st)
{
    state_t *s = *st;
    const char *bad[] = {"a/#/b"};
    const char *good[] = {"good/+"};
    s->b[0] = start_broker(0);
    s->b[1] = start_broker(0);

    mf_listen(&s->fx, &s->l1, bad, 1, false, -1);
    mf_listen(&s->fx, &s->l2, good, 1, false, -1);
    char *pid1 = mf_create(&s->fx, tb_broker_port(s->b[0]), NULL);
    char *pid2 = mf_create(&s->fx, tb_broker_port(s->b[1]), NULL);
    assert_true(mf_wait_connection(&s->fx, pid1, MF_WAIT_MS) > 0);
    assert_true(mf_wait_connection(&s->fx, pid2, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->b[1], "\tgood/+ (QoS", 1, MF_WAIT_MS));
    publish_from(s->b[1], "good/1", "ok");
    assert_true(mf_listener_wait(&s->l2, "good/1", 1, MF_WAIT_MS));
    assert_int_equal(mf_log_count(&s->fx, "a/#/b"), 1); /* reported once */
    assert_int_equal(tb_broker_log_contains(s->b[0], "a/#/b"), 0);
    free(pid1);
    free(pid2);
}

/* 13: a blackholed broker does not stall another broker's messages. */
static void test_blackhole_does_not_stall(void **st)
{
    state_t *s = *st;
    const char *t[] = {"live/#"};
    s->hole = tb_blackhole_start();
    s->b[0] = start_broker(0);
    assert_non_null(s->hole);

    mf_listen(&s->fx, &s->l1, t, 1, false, -1);
    char *dead = mf_create(&s->fx, tb_blackhole_port(s->hole), "connect_timeout", "60", NULL);
    char *live = mf_create(&s->fx, tb_broker_port(s->b[0]), NULL);
    assert_true(mf_wait_connection(&s->fx, live, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->b[0], "\tlive/# (QoS", 1, MF_WAIT_MS));
    for (int i = 0; i < 20; i++) {
        publish_from(s->b[0], "live/x", "m");
    }
    assert_true(mf_listener_wait(&s->l1, "live/x", 20, MF_WAIT_MS));
    assert_int_equal(mf_count_connections(&s->fx, dead), 0);
    free(dead);
    free(live);
}

/* An MQTT 5 connection with a session expiry connects with libmosquitto's blocking call; against
 * a host whose SYNs are dropped, the attempt times out and is retried while its thread stays
 * blocked, another broker's messages flow, and the service stops at once. */
static void test_blocking_connect_does_not_stall(void **st)
{
    state_t *s = *st;
    const char *t[] = {"live/#"};
    struct timespec t0, t1;

    s->synhole = tb_synhole_start();
    assert_non_null(s->synhole);
    s->b[0] = start_broker(0);
    mf_listen(&s->fx, &s->l1, t, 1, false, -1);
    char *dead =
        mf_create(&s->fx, tb_synhole_port(s->synhole), "protocol", "5", "session_expiry", "300",
                  "connect_timeout", "1", "reconnect_min", "1", "reconnect_max", "1", NULL);
    char *live = mf_create(&s->fx, tb_broker_port(s->b[0]), NULL);
    assert_true(mf_wait_connection(&s->fx, live, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->b[0], "\tlive/# (QoS", 1, MF_WAIT_MS));
    /* An attempt abandoned (logged once): the state machine went on, its thread stays blocked. */
    for (int i = 0; i < MF_WAIT_MS / 100 && mf_log_count(&s->fx, "no TCP connection") < 1; i++) {
        usleep(100 * 1000);
    }
    assert_int_equal(mf_log_count(&s->fx, "no TCP connection (or name resolution) within 1 s"), 1);
    usleep(1500 * 1000); /* and the next attempts */
    for (int i = 0; i < 20; i++) {
        publish_from(s->b[0], "live/x", "m");
    }
    assert_true(mf_listener_wait(&s->l1, "live/x", 20, MF_WAIT_MS));
    assert_int_equal(mf_count_connections(&s->fx, dead), 0);
    mf_unlisten(&s->l1);
    /* The kernel would retry those connects for about two minutes: nothing waits for them. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mf_stop(&s->fx);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms < MF_WAIT_MS / 2);
    /* Refused now: the threads left end, with nobody to report to. */
    tb_synhole_free(s->synhole);
    s->synhole = NULL;
    usleep(200 * 1000);
    free(dead);
    free(live);
}

/* 18: configurations survive a restart of the runtime (files), and connect again. */
static void test_files_across_restart(void **st)
{
    state_t *s = *st;
    s->b[0] = start_broker(0);
    char *pid = mf_create(&s->fx, tb_broker_port(s->b[0]), NULL);
    char *name = ca_config_name(pid);

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    assert_true(ca_exists(s->fx.folder, name));
    mf_stop(&s->fx);
    mf_start(&s->fx, true);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    /* 19: a stray file in the folder changes nothing. */
    ca_write_file(s->fx.folder, "notes.txt", "{\"host\": \"nowhere\"}");
    ca_write_file(s->fx.folder, "x.config.js.bak", "{\"service.factoryPid\": \"mqtt.connector\"}");
    /* A file with a port that is no number: reported with its name, no connection. */
    ca_write_file(s->fx.folder, "mqtt.connector-bad.config.js",
                  "{\"host\": \"127.0.0.1\", \"port\": \"abc\", "
                  "\"service.factoryPid\": \"mqtt.connector\"}\n");
    for (int i = 0; i < 250 && mf_log_count(&s->fx, "mqtt.connector-bad") == 0; i++) {
        usleep(20 * 1000);
    }
    assert_true(mf_log_count(&s->fx, "mqtt.connector-bad") >= 1);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_count_connections(&s->fx, NULL), 1);
    free(name);
    free(pid);
}

/* Publish to all over three brokers; two configurations on one broker keep both connected. */
static void test_three_brokers(void **st)
{
    state_t *s = *st;
    tc_client_t *obs[3];
    char *pid[4];

    for (int i = 0; i < 3; i++) {
        s->b[i] = start_broker(0);
        pid[i] = mf_create(&s->fx, tb_broker_port(s->b[i]), NULL);
        obs[i] = tc_connect(tb_broker_port(s->b[i]), NULL);
        assert_non_null(obs[i]);
        assert_int_equal(tc_subscribe(obs[i], "all/#", 1), 1);
    }
    pid[3] = mf_create(&s->fx, tb_broker_port(s->b[0]), NULL); /* a second one on broker 0 */
    for (int i = 0; i < 4; i++) {
        assert_true(mf_wait_connection(&s->fx, pid[i], MF_WAIT_MS) > 0);
    }
    pelix_mqtt_factory_t *f = mf_factory(&s->fx);
    pelix_mqtt_result_t *res = NULL;
    size_t n = 0;
    assert_int_equal(f->publish(f->handle, "all/t", "v", 1, 1, false, NULL, &res, &n), 0);
    assert_int_equal(n, 4);
    pelix_mqtt_results_free(res, n);
    assert_true(tc_wait_count(obs[0], "all/t", 2, MF_WAIT_MS));
    assert_true(tc_wait_count(obs[1], "all/t", 1, MF_WAIT_MS));
    assert_true(tc_wait_count(obs[2], "all/t", 1, MF_WAIT_MS));
    /* Distinct client ids: nobody was kicked out. */
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_count_connections(&s->fx, NULL), 4);
    assert_int_equal(mf_log_count(&s->fx, "retrying"), 0);
    for (int i = 0; i < 3; i++) {
        tc_disconnect(obs[i]);
    }
    for (int i = 0; i < 4; i++) {
        free(pid[i]);
    }
}

static bool wait_inside(mf_listener_t *l)
{
    for (long waited = 0; waited < MF_WAIT_MS; waited += 10) {
        pthread_mutex_lock(&l->lock);
        int inside = l->inside;
        pthread_mutex_unlock(&l->lock);
        if (inside > 0) {
            return true;
        }
        usleep(10 * 1000);
    }
    return false;
}

/* A message for one listener is delivered by the network thread between two waits; a listener
 * that blocks there hands the loop to a spare thread, and a second one blocking on the new
 * leader hands it to a third: messages for others keep flowing while both are held, and the
 * held ones get theirs, in order, once released. */
static void test_blocking_listeners_do_not_stall(void **st)
{
    state_t *s = *st;
    const char *t1[] = {"hold/1"}, *t2[] = {"hold/2"}, *t3[] = {"free/#"};

    s->b[0] = start_broker(0);
    char *pid = mf_create(&s->fx, tb_broker_port(s->b[0]), NULL);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, t1, 1, false, 1);
    mf_listen(&s->fx, &s->l2, t2, 1, false, 1);
    mf_listen(&s->fx, &s->l3, t3, 1, false, 1); /* subscribed last: a probe proves all three */
    tc_client_t *c = tc_connect(tb_broker_port(s->b[0]), NULL);
    assert_non_null(c);
    for (int i = 0; i < 100 && mf_listener_count(&s->l3, "free/probe") == 0; i++) {
        assert_int_equal(tc_publish(c, "free/probe", "p", 1, 1, false), 0);
        usleep(100 * 1000);
    }
    assert_true(mf_listener_count(&s->l3, "free/probe") > 0);
    mf_listener_hold(&s->l1, true);
    mf_listener_hold(&s->l2, true);
    assert_int_equal(tc_publish(c, "hold/1", "a", 1, 1, false), 0);
    assert_true(wait_inside(&s->l1));
    assert_int_equal(tc_publish(c, "hold/2", "b", 1, 1, false), 0);
    assert_true(wait_inside(&s->l2));
    for (int i = 0; i < 20; i++) {
        assert_int_equal(tc_publish(c, "free/x", "f", 1, 1, false), 0);
    }
    assert_true(mf_listener_wait(&s->l3, "free/x", 20, MF_WAIT_MS));
    assert_int_equal(tc_publish(c, "hold/1", "c", 1, 1, false), 0); /* queued behind "a" */
    mf_listener_hold(&s->l1, false);
    mf_listener_hold(&s->l2, false);
    assert_true(mf_listener_wait(&s->l1, "hold/1", 2, MF_WAIT_MS));
    assert_true(mf_listener_wait(&s->l2, "hold/2", 1, MF_WAIT_MS));
    pthread_mutex_lock(&s->l1.lock);
    assert_string_equal(s->l1.msgs[0].payload, "a");
    assert_string_equal(s->l1.msgs[1].payload, "c");
    pthread_mutex_unlock(&s->l1.lock);
    tc_disconnect(c);
    free(pid);
}

/* Keepalive: a broker that stops answering (SIGSTOP) is detected by the keepalive and the
 * connection is retried; once the broker answers again, the service comes back. */
static void test_keepalive_timeout(void **st)
{
    state_t *s = *st;
    s->b[0] = start_broker(0);
    char *pid = mf_create(&s->fx, tb_broker_port(s->b[0]), "keepalive", "5", FAST, NULL);

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    assert_int_equal(kill(tb_broker_pid(s->b[0]), SIGSTOP), 0);
    /* Lost within 1.5 keepalive periods plus the check interval: 10 s is generous. */
    bool lost = mf_wait_no_connection(&s->fx, pid, 3 * MF_WAIT_MS);
    assert_int_equal(kill(tb_broker_pid(s->b[0]), SIGCONT), 0);
    assert_true(lost);
    assert_true(mf_log_count(&s->fx, "keepalive") >= 1 || mf_log_count(&s->fx, "CONNACK") >= 1);
    assert_true(mf_wait_connection(&s->fx, pid, 3 * MF_WAIT_MS) > 0);
    free(pid);
}

/* A broker refusing the connection (CONNACK "not authorised"): no service, reported once, and
 * retried: a broker that accepts on the same port later gets the connection. */
static void test_connack_refused_retried(void **st)
{
    state_t *s = *st;
    tb_broker_options_t o = {.port = 0, .extra_config = "allow_anonymous false\n"};
    tb_broker_t *strict = tb_broker_start(&o);
    assert_non_null(strict);
    int port = tb_broker_port(strict);
    char *pid = mf_create(&s->fx, port, FAST, NULL);

    assert_true(tb_broker_wait_log(strict, "not authorised", 2, MF_WAIT_MS)); /* retried */
    assert_int_equal(mf_count_connections(&s->fx, pid), 0);
    assert_int_equal(mf_log_count(&s->fx, "refused"), 1);
    tb_broker_free(strict);
    s->b[0] = start_broker(port);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    free(pid);
}

/* A host name that does not resolve: reported with its reason, retried, nothing else hurt. */
static void test_unresolvable_host(void **st)
{
    state_t *s = *st;
    const char *t[] = {"dns/#"};
    pelix_configuration_t *c = NULL;
    pelix_props_t *p = pelix_props_new();
    s->b[0] = start_broker(0);

    pelix_props_set_string(p, "host", "no-such-host.invalid");
    pelix_props_set_string(p, "connect_timeout", "2");
    assert_int_equal(
        pelix_configadmin_create_factory_configuration(s->fx.ca, PELIX_MQTT_FACTORY_PID, &c, NULL),
        0);
    assert_int_equal(pelix_configuration_update(c, p, NULL), 0);
    char *live = mf_create(&s->fx, tb_broker_port(s->b[0]), NULL);
    mf_listen(&s->fx, &s->l1, t, 1, false, -1);
    assert_true(mf_wait_connection(&s->fx, live, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->b[0], "\tdns/# (QoS", 1, MF_WAIT_MS));
    publish_from(s->b[0], "dns/1", "x");
    assert_true(mf_listener_wait(&s->l1, "dns/1", 1, MF_WAIT_MS));
    for (int i = 0; i < 250 && mf_log_count(&s->fx, "no-such-host.invalid") == 0; i++) {
        usleep(20 * 1000);
    }
    assert_int_equal(mf_log_count(&s->fx, "no-such-host.invalid"), 1);
    assert_int_equal(mf_count_connections(&s->fx, pelix_configuration_get_pid(c)), 0);
    pelix_configuration_unref(c);
    free(live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_broker_started_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_change_moves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_during_pending_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_filter_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blackhole_does_not_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocking_connect_does_not_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_across_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_three_brokers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocking_listeners_do_not_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connack_refused_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unresolvable_host, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
