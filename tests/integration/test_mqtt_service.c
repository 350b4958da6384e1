/*
 * The MQTT service against real mosquitto brokers on loopback: Pelix's MqttServiceTest ported
 * (no configuration, configuration, messages with a string topics property and its change,
 * unregistering), with Pelix's bug B1 as a regression test (the old filter really stops), plus
 * listeners given a list, overlapping filters delivered once, '$' topics, QoS round trips,
 * per-listener order, publish to all or one PID, and acknowledgement waits.
 *
 * Every broker is started by the test on a free port and stopped by PID.
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
#include <unistd.h>

#include "integration/broker.h"
#include "integration/client.h"
#include "integration/mqtt_fixture.h"

typedef struct state {
    mf_t fx;
    tb_broker_t *broker;
    tc_client_t *client;
    mf_listener_t l1, l2;
} state_t;

static int setup(void **st)
{
    state_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->broker = tb_broker_start(NULL);
    assert_non_null(s->broker);
    s->client = tc_connect(tb_broker_port(s->broker), NULL);
    assert_non_null(s->client);
    mf_start(&s->fx, true);
    *st = s;
    return 0;
}

static int teardown(void **st)
{
    state_t *s = *st;
    mf_listener_destroy(&s->l1);
    mf_listener_destroy(&s->l2);
    mf_free(&s->fx);
    tc_disconnect(s->client);
    tb_broker_free(s->broker);
    free(s);
    return 0;
}

static int port_of(state_t *s)
{
    return tb_broker_port(s->broker);
}

/* Publishes from the outside client. */
static void publish(state_t *s, const char *topic, const char *payload, int qos)
{
    assert_int_equal(tc_publish(s->client, topic, payload, strlen(payload), qos, false), 0);
}

/* Waits until the broker has logged `n` SUBSCRIBE of `filter` (mosquitto logs each subscribed
 * filter as "\t<filter> (QoS n)"), or `n` UNSUBSCRIBE (filter NULL). */
static void wait_broker_log(state_t *s, const char *what, const char *filter, int n)
{
    char needle[512];
    if (strcmp(what, "SUBSCRIBE") == 0) {
        snprintf(needle, sizeof(needle), "\t%s (QoS", filter);
    } else {
        snprintf(needle, sizeof(needle), "Received %s", what);
    }
    if (!tb_broker_wait_log(s->broker, needle, n, MF_WAIT_MS)) {
        tb_broker_dump(s->broker);
        fail_msg("the broker did not log %d lines with '%s'", n, needle);
    }
}

/* ---- Pelix: test_no_config, test_configuration ----------------------------------------------- */

static void test_no_config(void **st)
{
    state_t *s = *st;
    usleep(500 * 1000);
    assert_int_equal(mf_count_connections(&s->fx, NULL), 0);
}

static void test_configuration(void **st)
{
    state_t *s = *st;
    char *pid = mf_create(&s->fx, port_of(s), NULL);
    long id = mf_wait_connection(&s->fx, pid, MF_WAIT_MS);
    pelix_props_t *props = NULL;

    assert_true(id > 0);
    assert_int_equal(pelix_registry_get_properties(s->fx.reg, id, &props), 0);
    assert_string_equal(pelix_props_get_string(props, "id", ""), pid);
    assert_string_equal(pelix_props_get_string(props, "host", ""), "127.0.0.1");
    assert_int_equal(pelix_value_type(pelix_props_get(props, "port")), PELIX_TYPE_LONG);
    assert_int_equal(pelix_props_get_long(props, "port", 0), port_of(s));
    pelix_props_free(props);
    assert_int_equal(mf_count_connections(&s->fx, pid), 1);

    mf_delete(&s->fx, pid);
    assert_true(mf_wait_no_connection(&s->fx, pid, MF_WAIT_MS));
    free(pid);
}

/* ---- Pelix: test_messages, with B1 fixed ----------------------------------------------------- */

static void test_messages(void **st)
{
    state_t *s = *st;
    const char *test_topics[] = {"/pelix/test/#"};
    const char *foo_topics[] = {"/pelix/foo/#"};
    const char payload[] = "aZ3kq9XbLw0pR7tYc2uVn5mJe8sHd1fGi4oQx6yTlBr0Kz7WvP2s";
    char *pid1 = mf_create(&s->fx, port_of(s), NULL);
    char *pid2 = mf_create(&s->fx, port_of(s), NULL);

    assert_true(mf_wait_connection(&s->fx, pid1, MF_WAIT_MS) > 0);
    assert_true(mf_wait_connection(&s->fx, pid2, MF_WAIT_MS) > 0);
    assert_int_equal(mf_count_connections(&s->fx, NULL), 2);

    /* A string property, as Pelix's test gives it. */
    mf_listen(&s->fx, &s->l1, test_topics, 1, false, -1);
    wait_broker_log(s, "SUBSCRIBE", "/pelix/test/#", 2); /* one per connection */
    assert_int_equal(mf_listener_count(&s->l1, NULL), 0);

    pelix_mqtt_connection_t *c1 = mf_connection(&s->fx, pid1);
    assert_non_null(c1);
    pelix_mqtt_publish_info_t info = {0};
    assert_int_equal(c1->publish(c1->handle, "/pelix/test/foobar", payload, sizeof(payload) - 1, 1,
                                 false, &info),
                     0);
    assert_int_equal(c1->wait_published(c1->handle, &info, MF_WAIT_MS), 0);
    /* An info is only good for its own connection. */
    pelix_mqtt_connection_t *c2 = mf_connection(&s->fx, pid2);
    assert_non_null(c2);
    pelix_mqtt_publish_info_t info2 = {0};
    assert_int_equal(c2->publish(c2->handle, "/other", "o", 1, 0, false, &info2), 0);
    assert_int_equal(c2->wait_published(c2->handle, &info2, MF_WAIT_MS), 0);
    assert_int_equal(c2->wait_published(c2->handle, &info, 10), -EINVAL);
    /* Both connections are subscribed: the message comes once through each. */
    assert_true(mf_listener_wait(&s->l1, "/pelix/test/foobar", 2, MF_WAIT_MS));
    pthread_mutex_lock(&s->l1.lock);
    assert_int_equal(s->l1.msgs[0].len, sizeof(payload) - 1);
    assert_memory_equal(s->l1.msgs[0].payload, payload, sizeof(payload) - 1);
    assert_string_not_equal(s->l1.msgs[0].connection, s->l1.msgs[1].connection);
    pthread_mutex_unlock(&s->l1.lock);

    /* Not subscribed: nothing. */
    publish(s, "/pelix/foo/bar", "x", 1);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_listener_count(&s->l1, "/pelix/foo/bar"), 0);

    /* New string: the new topic arrives, and the old one really stops (Pelix's B1). */
    mf_listen_set(&s->l1, foo_topics, 1, false);
    wait_broker_log(s, "SUBSCRIBE", "/pelix/foo/#", 2);
    publish(s, "/pelix/foo/bar", "y", 1);
    assert_true(mf_listener_wait(&s->l1, "/pelix/foo/bar", 2, MF_WAIT_MS));
    publish(s, "/pelix/test/foobar", "z", 1);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_listener_count(&s->l1, "/pelix/test/foobar"), 2);

    /* Unregistered: nothing more. */
    mf_unlisten(&s->l1);
    publish(s, "/pelix/foo/bar", "w", 1);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_listener_count(&s->l1, "/pelix/foo/bar"), 2);

    mf_delete(&s->fx, pid1);
    mf_delete(&s->fx, pid2);
    assert_true(mf_wait_no_connection(&s->fx, NULL, MF_WAIT_MS));
    free(pid1);
    free(pid2);
}

/* ---- beyond Pelix ---------------------------------------------------------------------------- */

/* A list, changed to a string and back; overlapping filters of one listener deliver once. */
static void test_topics_list_and_overlap(void **st)
{
    state_t *s = *st;
    const char *list[] = {"a/#", "a/+/c", "a/b/c", "bad/#/x"};
    const char *one[] = {"q/#"};
    char *pid = mf_create(&s->fx, port_of(s), NULL);

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, list, 4, true, -1);
    wait_broker_log(s, "SUBSCRIBE", "a/b/c", 1);
    publish(s, "a/b/c", "1", 0);
    assert_true(mf_listener_wait(&s->l1, "a/b/c", 1, MF_WAIT_MS));
    usleep(MF_QUIET_MS * 1000);
    /* mosquitto sends one copy to a client whose subscriptions overlap (MQTT 3.1.1 §3.3.5
     * allows one per subscription too); the listener hears it once. That the service itself
     * delivers a message once per listener whatever the number of its filters matching is
     * tested on the trie (test_mqtt_trie). */
    assert_int_equal(mf_listener_count(&s->l1, "a/b/c"), 1);
    /* The invalid filter was reported, the others work. */
    assert_true(mf_log_count(&s->fx, "bad/#/x") >= 1);

    /* list -> string */
    mf_listen_set(&s->l1, one, 1, false);
    wait_broker_log(s, "SUBSCRIBE", "q/#", 1);
    publish(s, "q/1", "2", 0);
    publish(s, "a/x", "3", 0);
    assert_true(mf_listener_wait(&s->l1, "q/1", 1, MF_WAIT_MS));
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_listener_count(&s->l1, "a/x"), 0);

    /* string -> list */
    mf_listen_set(&s->l1, list, 2, true);
    wait_broker_log(s, "SUBSCRIBE", "a/#", 2);
    publish(s, "a/y", "4", 0);
    assert_true(mf_listener_wait(&s->l1, "a/y", 1, MF_WAIT_MS));
    free(pid);
}

/* A filter two listeners share stays subscribed until the last one goes. */
static void test_shared_filter_refcount(void **st)
{
    state_t *s = *st;
    const char *t[] = {"shared/+"};
    char *pid = mf_create(&s->fx, port_of(s), NULL);

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, t, 1, false, -1);
    mf_listen(&s->fx, &s->l2, t, 1, false, -1);
    wait_broker_log(s, "SUBSCRIBE", "shared/+", 1);
    mf_unlisten(&s->l1);
    publish(s, "shared/1", "a", 0);
    assert_true(mf_listener_wait(&s->l2, "shared/1", 1, MF_WAIT_MS));
    assert_int_equal(tb_broker_log_contains(s->broker, "Received UNSUBSCRIBE"), 0);
    mf_unlisten(&s->l2);
    wait_broker_log(s, "UNSUBSCRIBE", NULL, 1);
    free(pid);
}

/* Shared subscriptions: subscribed once as given ("$share/<group>/<filter>"), matched locally on
 * their filter for every listener using them, beside a plain filter on the same topics; counted
 * like plain ones. */
static void test_shared_subscriptions(void **st)
{
    state_t *s = *st;
    const char *shared[] = {"$share/g/sh/+"};
    const char *both[] = {"$share/g/sh/+", "other/#"};
    char *pid = mf_create(&s->fx, port_of(s), NULL);
    mf_listener_t l3 = {0};

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, shared, 1, false, -1);
    mf_listen(&s->fx, &s->l2, both, 2, true, -1);
    wait_broker_log(s, "SUBSCRIBE", "other/#", 1);
    wait_broker_log(s, "SUBSCRIBE", "$share/g/sh/+", 1);
    publish(s, "sh/1", "a", 0);
    publish(s, "other/1", "b", 0);
    assert_true(mf_listener_wait(&s->l1, "sh/1", 1, MF_WAIT_MS));
    assert_true(mf_listener_wait(&s->l2, "sh/1", 1, MF_WAIT_MS));
    assert_true(mf_listener_wait(&s->l2, "other/1", 1, MF_WAIT_MS));
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_listener_count(&s->l1, NULL), 1);
    assert_int_equal(mf_listener_count(&s->l2, NULL), 2);
    assert_int_equal(tb_broker_log_contains(s->broker, "\t$share/g/sh/+ (QoS"), 1);

    /* A plain listener on a filter of the same topics: its own subscription, its own copy. */
    const char *plain[] = {"sh/+"};
    mf_listen(&s->fx, &l3, plain, 1, false, -1);
    wait_broker_log(s, "SUBSCRIBE", "sh/+", 1);
    publish(s, "sh/2", "c", 0);
    assert_true(mf_listener_wait(&l3, "sh/2", 1, MF_WAIT_MS));
    assert_true(mf_listener_wait(&s->l1, "sh/2", 1, MF_WAIT_MS));

    mf_unlisten(&s->l1);
    mf_unlisten(&l3);
    wait_broker_log(s, "UNSUBSCRIBE", NULL, 1); /* "sh/+"; the shared one is still used */
    publish(s, "sh/3", "d", 0);
    assert_true(mf_listener_wait(&s->l2, "sh/3", 1, MF_WAIT_MS));
    mf_unlisten(&s->l2);
    wait_broker_log(s, "UNSUBSCRIBE", NULL, 3); /* then "$share/g/sh/+" and "other/#" */
    mf_listener_destroy(&l3);
    free(pid);
}

/* Two service instances sharing "$share/g/split/#" split one stream: every message reaches one
 * of them, both get some. */
static void test_shared_split_across_instances(void **st)
{
    state_t *s = *st;
    const char *t[] = {"$share/g/split/#"};
    mf_t other = {0};
    mf_listener_t l_other = {0};
    char topic[32];

    mf_start(&other, false);
    char *p1 = mf_create(&s->fx, port_of(s), NULL);
    char *p2 = mf_create(&other, port_of(s), NULL);
    assert_true(mf_wait_connection(&s->fx, p1, MF_WAIT_MS) > 0);
    assert_true(mf_wait_connection(&other, p2, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, t, 1, false, 1);
    mf_listen(&other, &l_other, t, 1, false, 1);
    wait_broker_log(s, "SUBSCRIBE", "$share/g/split/#", 2);
    for (int i = 0; i < 40; i++) {
        snprintf(topic, sizeof(topic), "split/%d", i);
        publish(s, topic, "x", 1);
    }
    for (int i = 0; i < MF_WAIT_MS / 100 &&
                    mf_listener_count(&s->l1, NULL) + mf_listener_count(&l_other, NULL) < 40;
         i++) {
        usleep(100 * 1000);
    }
    usleep(MF_QUIET_MS * 1000);
    size_t a = mf_listener_count(&s->l1, NULL), b = mf_listener_count(&l_other, NULL);
    assert_int_equal(a + b, 40); /* each message once */
    assert_true(a > 0 && b > 0);
    mf_listener_destroy(&l_other);
    mf_free(&other);
    free(p1);
    free(p2);
}

/* A listener joining a filter already subscribed gets the retained messages too. */
static void test_retained_for_late_listener(void **st)
{
    state_t *s = *st;
    const char *t[] = {"ret/#"};
    char *pid = mf_create(&s->fx, port_of(s), NULL);

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    assert_int_equal(tc_publish(s->client, "ret/state", "on", 2, 1, true), 0);
    mf_listen(&s->fx, &s->l1, t, 1, false, -1);
    assert_true(mf_listener_wait(&s->l1, "ret/state", 1, MF_WAIT_MS));
    mf_listen(&s->fx, &s->l2, t, 1, false, -1);
    assert_true(mf_listener_wait(&s->l2, "ret/state", 1, MF_WAIT_MS));
    wait_broker_log(s, "SUBSCRIBE", "ret/#", 2);
    /* A change of its other filters does not subscribe its kept ones again. */
    const char *more[] = {"ret/#", "other/x"};
    mf_listen_set(&s->l2, more, 2, true);
    wait_broker_log(s, "SUBSCRIBE", "other/x", 1);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(tb_broker_log_contains(s->broker, "\tret/# (QoS"), 2);
    assert_int_equal(tc_publish(s->client, "ret/state", "", 0, 1, true), 0); /* clear it */
    free(pid);
}

/* A listener with a connection filter hears only the connections it matches; one whose filter
 * does not parse is ignored, with the reason. */
static void test_connection_filter(void **st)
{
    state_t *s = *st;
    const char *t[] = {"cf/#"};
    tb_broker_t *other = tb_broker_start(NULL);
    assert_non_null(other);
    char *p1 = mf_create(&s->fx, port_of(s), NULL);
    char *p2 = mf_create(&s->fx, tb_broker_port(other), NULL);
    mf_listener_t bad = {0};
    char filter[64];

    assert_true(mf_wait_connection(&s->fx, p1, MF_WAIT_MS) > 0);
    assert_true(mf_wait_connection(&s->fx, p2, MF_WAIT_MS) > 0);
    snprintf(filter, sizeof(filter), "(&(host=127.0.0.1)(port=%d))", tb_broker_port(other));
    s->l1.connections = filter;
    mf_listen(&s->fx, &s->l1, t, 1, false, -1);
    mf_listen(&s->fx, &s->l2, t, 1, false, -1);
    bad.connections = "(port=";
    mf_listen(&s->fx, &bad, t, 1, false, -1);
    assert_true(tb_broker_wait_log(other, "\tcf/# (QoS", 1, MF_WAIT_MS));
    wait_broker_log(s, "SUBSCRIBE", "cf/#", 1);
    publish(s, "cf/first", "1", 0);
    tc_client_t *pub = tc_connect(tb_broker_port(other), NULL);
    assert_non_null(pub);
    assert_int_equal(tc_publish(pub, "cf/second", "2", 1, 0, false), 0);
    assert_true(mf_listener_wait(&s->l2, "cf/first", 1, MF_WAIT_MS));
    assert_true(mf_listener_wait(&s->l2, "cf/second", 1, MF_WAIT_MS));
    assert_true(mf_listener_wait(&s->l1, "cf/second", 1, MF_WAIT_MS));
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_listener_count(&s->l1, "cf/first"), 0);
    assert_int_equal(mf_listener_count(&bad, NULL), 0);
    assert_true(mf_log_count(&s->fx, "ignored: pelix.mqtt.connection.filter:") >= 1);
    tc_disconnect(pub);
    mf_listener_destroy(&bad);
    mf_delete(&s->fx, p2);
    assert_true(mf_wait_no_connection(&s->fx, p2, MF_WAIT_MS));
    tb_broker_free(other);
    free(p1);
    free(p2);
}

/* '$' topics are not matched by leading wildcards; 'sport/#' matches 'sport'. A broker
 * publishing its $SYS topics every second sends one copy of each to the connection (its
 * '$SYS/#' subscription matches, '#' does not): the service must give it to the '$SYS/#'
 * listener only, which only its own matching decides. */
static void test_dollar_topics_and_parent(void **st)
{
    state_t *s = *st;
    const char *all[] = {"#"};
    const char *sport[] = {"sport/#"};
    const char *sys[] = {"$SYS/broker/uptime"};
    tb_broker_options_t o = {.port = 0, .extra_config = "sys_interval 1\n"};
    tb_broker_t *b = tb_broker_start(&o);
    assert_non_null(b);
    char *pid = mf_create(&s->fx, tb_broker_port(b), NULL);
    mf_listener_t l3 = {0};

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, all, 1, false, -1);
    mf_listen(&s->fx, &s->l2, sport, 1, false, -1);
    mf_listen(&s->fx, &l3, sys, 1, false, -1);
    assert_true(tb_broker_wait_log(b, "\tsport/# (QoS", 1, MF_WAIT_MS));
    tc_client_t *pub = tc_connect(tb_broker_port(b), NULL);
    assert_non_null(pub);
    assert_int_equal(tc_publish(pub, "sport", "p", 1, 0, false), 0);
    assert_true(mf_listener_wait(&s->l2, "sport", 1, MF_WAIT_MS));
    assert_true(mf_listener_wait(&l3, "$SYS/broker/uptime", 2, MF_WAIT_MS));
    assert_int_equal(tc_publish(pub, "last", "l", 1, 0, false), 0);
    assert_true(mf_listener_wait(&s->l1, "last", 1, MF_WAIT_MS));
    assert_int_equal(mf_listener_count(&s->l1, "$SYS/broker/uptime"), 0);
    tc_disconnect(pub);
    mf_listener_destroy(&l3);
    mf_delete(&s->fx, pid);
    assert_true(mf_wait_no_connection(&s->fx, pid, MF_WAIT_MS));
    tb_broker_free(b);
    free(pid);
}

/* QoS 1 and 2 round trips through the service, the delivered QoS being min(pub, sub). */
static void test_qos_round_trips(void **st)
{
    state_t *s = *st;
    const char *t[] = {"qos/+"};
    char *pid = mf_create(&s->fx, port_of(s), NULL);

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, t, 1, false, 2);
    mf_listen(&s->fx, &s->l2, t, 1, false, 1);
    wait_broker_log(s, "SUBSCRIBE", "qos/+", 1);
    pelix_mqtt_connection_t *c = mf_connection(&s->fx, pid);
    assert_non_null(c);
    for (int q = 0; q <= 2; q++) {
        char topic[16];
        pelix_mqtt_publish_info_t info = {0};
        snprintf(topic, sizeof(topic), "qos/%d", q);
        assert_int_equal(c->publish(c->handle, topic, "\0bin\0", 5, q, false, &info), 0);
        assert_int_equal(c->wait_published(c->handle, &info, MF_WAIT_MS), 0);
        assert_true(mf_listener_wait(&s->l1, topic, 1, MF_WAIT_MS));
    }
    pthread_mutex_lock(&s->l1.lock);
    for (size_t i = 0; i < 3; i++) {
        int q = s->l1.msgs[i].topic[4] - '0';
        /* the filter is subscribed once, at the highest QoS a listener asked (2) */
        assert_int_equal(s->l1.msgs[i].qos, q);
        assert_int_equal(s->l1.msgs[i].len, 5);
        assert_memory_equal(s->l1.msgs[i].payload, "\0bin\0", 5);
    }
    pthread_mutex_unlock(&s->l1.lock);
    free(pid);
}

/* Messages reach a listener in the broker's order, never two calls at a time. */
static void test_order_per_listener(void **st)
{
    state_t *s = *st;
    const char *t[] = {"order/#"};
    char *pid = mf_create(&s->fx, port_of(s), NULL);
    const int n = 2000;

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, t, 1, false, 1);
    wait_broker_log(s, "SUBSCRIBE", "order/#", 1);
    pelix_mqtt_connection_t *c = mf_connection(&s->fx, pid);
    for (int i = 0; i < n; i++) {
        char payload[16];
        int len = snprintf(payload, sizeof(payload), "%d", i);
        assert_int_equal(c->publish(c->handle, "order/x", payload, (size_t)len, 1, false, NULL), 0);
    }
    assert_true(mf_listener_wait(&s->l1, "order/x", (size_t)n, MF_WAIT_MS * 3));
    pthread_mutex_lock(&s->l1.lock);
    for (int i = 0; i < n; i++) {
        assert_int_equal(atoi(s->l1.msgs[i].payload), i);
    }
    assert_int_equal(s->l1.overlapped, 0);
    pthread_mutex_unlock(&s->l1.lock);
    free(pid);
}

/* A slow listener slows only itself: another listener of the same messages gets them all while
 * the first is stuck in its callback; the slow one then gets every message, in order. */
static void test_slow_listener_slows_only_itself(void **st)
{
    state_t *s = *st;
    const char *t[] = {"slow/#"};
    char *pid = mf_create(&s->fx, port_of(s), NULL);
    const int n = 50;

    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &s->l1, t, 1, false, 1);
    mf_listen(&s->fx, &s->l2, t, 1, false, 1);
    wait_broker_log(s, "SUBSCRIBE", "slow/#", 1);
    mf_listener_hold(&s->l1, true);
    for (int i = 0; i < n; i++) {
        char payload[16];
        snprintf(payload, sizeof(payload), "%d", i);
        publish(s, "slow/x", payload, 1);
    }
    assert_true(mf_listener_wait(&s->l2, "slow/x", (size_t)n, MF_WAIT_MS));
    assert_int_equal(mf_listener_count(&s->l1, "slow/x"), 0); /* still in its first call */
    mf_listener_hold(&s->l1, false);
    assert_true(mf_listener_wait(&s->l1, "slow/x", (size_t)n, MF_WAIT_MS));
    pthread_mutex_lock(&s->l1.lock);
    for (int i = 0; i < n; i++) {
        assert_int_equal(atoi(s->l1.msgs[i].payload), i);
    }
    pthread_mutex_unlock(&s->l1.lock);
    free(pid);
}

/* Where listener code runs. Registry events of a connection service come on the network thread;
 * by default a fast listener is called by that very thread (no thread switch), with direct_us
 * negative never (workers only). */
static struct {
    pthread_mutex_t lock;
    pthread_t net, call;
    int nets, calls;
} where = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void where_event(void *ctx, const pelix_svc_event_t *event)
{
    (void)ctx;
    (void)event;
    pthread_mutex_lock(&where.lock);
    where.net = pthread_self();
    where.nets++;
    pthread_mutex_unlock(&where.lock);
}

static void where_message(void *handle, const pelix_mqtt_message_t *msg)
{
    (void)handle;
    (void)msg;
    pthread_mutex_lock(&where.lock);
    where.call = pthread_self();
    where.calls++;
    pthread_mutex_unlock(&where.lock);
}

/* True when a message for one listener was called on the thread that announced the connection. */
static bool called_by_network_thread(state_t *s, long direct_us)
{
    const char *spec[] = {PELIX_MQTT_LISTENER_SPEC};
    pelix_mqtt_listener_t l = {where_message, NULL};
    long lid, wid;

    mf_stop(&s->fx);
    s->fx.direct_us = direct_us;
    mf_start(&s->fx, true);
    where.nets = where.calls = 0;
    assert_int_equal(pelix_registry_add_listener(s->fx.reg, PELIX_MQTT_CONNECTION_SPEC, NULL, false,
                                                 where_event, NULL, &wid, NULL),
                     0);
    char *pid = mf_create(&s->fx, port_of(s), NULL);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    pelix_props_t *p = pelix_props_new();
    assert_int_equal(pelix_props_set_string(p, PELIX_MQTT_TOPICS, "where/t"), 0);
    assert_int_equal(pelix_registry_register(s->fx.reg, spec, 1, &l, p, &lid), 0);
    wait_broker_log(s, "SUBSCRIBE", "where/t", 1);
    publish(s, "where/t", "x", 0);
    bool called = false;
    for (int i = 0; i < MF_WAIT_MS / 10 && !called; i++) {
        pthread_mutex_lock(&where.lock);
        called = where.calls > 0;
        pthread_mutex_unlock(&where.lock);
        usleep(10 * 1000);
    }
    assert_true(called);
    pthread_mutex_lock(&where.lock);
    assert_true(where.nets > 0);
    bool same = pthread_equal(where.net, where.call);
    pthread_mutex_unlock(&where.lock);
    pelix_registry_unregister(s->fx.reg, lid);
    pelix_registry_remove_listener(s->fx.reg, wid);
    free(pid);
    return same;
}

static void test_direct_delivery(void **st)
{
    assert_true(called_by_network_thread(*st, 0));
}

static void test_direct_delivery_off(void **st)
{
    assert_false(called_by_network_thread(*st, -1));
}

/* The factory publishes to every connection, or to one PID; an unknown PID is an error. */
static void test_factory_publish(void **st)
{
    state_t *s = *st;
    pelix_mqtt_factory_t *f = mf_factory(&s->fx);
    pelix_mqtt_result_t *res = NULL;
    size_t n = 0;

    /* No configuration yet: nothing to publish to (Pelix silently did nothing). */
    assert_int_equal(f->publish(f->handle, "f/t", "x", 1, 0, false, NULL, &res, &n), -ENOTCONN);
    assert_int_equal(n, 0);
    char *pid1 = mf_create(&s->fx, port_of(s), NULL);
    char *pid2 = mf_create(&s->fx, port_of(s), NULL);
    assert_true(mf_wait_connection(&s->fx, pid1, MF_WAIT_MS) > 0);
    assert_true(mf_wait_connection(&s->fx, pid2, MF_WAIT_MS) > 0);
    assert_int_equal(tc_subscribe(s->client, "f/#", 1), 1);

    assert_int_equal(f->publish(f->handle, "f/all", "a", 1, 1, false, NULL, &res, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(res[i].rc, 0);
        assert_true(res[i].mid > 0);
    }
    pelix_mqtt_results_free(res, n);
    assert_true(tc_wait_count(s->client, "f/all", 2, MF_WAIT_MS));

    assert_int_equal(f->publish(f->handle, "f/one", "b", 1, 1, false, pid2, &res, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(res[0].pid, pid2);
    pelix_mqtt_results_free(res, n);
    assert_true(tc_wait_count(s->client, "f/one", 1, MF_WAIT_MS));
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(tc_count(s->client, "f/one"), 1);

    assert_int_equal(f->publish(f->handle, "f/x", "c", 1, 0, false, "no.such.pid", &res, &n),
                     -ENOENT);
    /* Bad input: one clear error each, nothing sent. */
    assert_int_equal(f->publish(f->handle, "f/+", "c", 1, 0, false, NULL, NULL, NULL),
                     PELIX_E_TOPIC);
    assert_int_equal(f->publish(f->handle, "", "c", 1, 0, false, NULL, NULL, NULL), PELIX_E_TOPIC);
    assert_int_equal(f->publish(f->handle, "f/q", "c", 1, 3, false, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(f->publish(f->handle, "f/q", NULL, 1, 0, false, NULL, NULL, NULL), -EINVAL);
    /* Over MQTT's largest packet: refused before anything is read or sent. */
    assert_int_equal(
        f->publish(f->handle, "f/q", "c", (size_t)300 << 20, 0, false, NULL, NULL, NULL),
        -EMSGSIZE);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(tc_count(s->client, "f/q"), 0);
    assert_int_equal(mf_count_connections(&s->fx, NULL), 2); /* nothing else hurt */
    free(pid1);
    free(pid2);
}

/* A shell-style string port is coerced; a bad one is refused with its reason, no connection. */
static void test_string_port(void **st)
{
    state_t *s = *st;
    char port[16];
    snprintf(port, sizeof(port), "%d", port_of(s));
    char *good = mf_create(&s->fx, 0, "port", port, "keepalive", "30", NULL);
    long id = mf_wait_connection(&s->fx, good, MF_WAIT_MS);
    pelix_props_t *props = NULL;

    assert_true(id > 0);
    assert_int_equal(pelix_registry_get_properties(s->fx.reg, id, &props), 0);
    assert_int_equal(pelix_value_type(pelix_props_get(props, "port")), PELIX_TYPE_LONG);
    pelix_props_free(props);

    /* Refused at update (the service declared its schema to ConfigAdmin): nothing stored. */
    pelix_configuration_t *c = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_props_t *bad = pelix_props_new();
    pelix_props_set_string(bad, "host", "127.0.0.1");
    pelix_props_set_string(bad, "port", "abc");
    assert_int_equal(
        pelix_configadmin_create_factory_configuration(s->fx.ca, PELIX_MQTT_FACTORY_PID, &c, &err),
        0);
    assert_int_equal(pelix_configuration_update(c, bad, &err), PELIX_E_TYPE);
    assert_non_null(strstr(err.text, "port"));
    assert_false(pelix_configuration_is_valid(c));
    pelix_configuration_unref(c);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_count_connections(&s->fx, NULL), 1);
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configuration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topics_list_and_overlap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_filter_refcount, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retained_for_late_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_split_across_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dollar_topics_and_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_per_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_listener_slows_only_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_factory_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_delivery_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_port, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
