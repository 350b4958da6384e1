/*
 * Coalescing of busy brokers (pelix_mqtt_options_t.coalesce_us), against a real mosquitto broker
 * and a real publisher process (mosquitto_pub, one message per line of a file): a fast QoS 0
 * stream is read in bursts after pauses, and arrives whole and in order; a light load, a QoS 1
 * stream and a service with coalescing off read every message as it comes; a broker that stops
 * during a pause is seen to be gone, and the connection comes back reading at once.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integration/broker.h"
#include "integration/mqtt_fixture.h"

#define BURST 20000

typedef struct state {
    mf_t fx;
    tb_broker_t *b;
    mf_listener_t l;
    char *pid;
} state_t;

static int start(void **st, long coalesce_us)
{
    state_t *s = calloc(1, sizeof(*s));
    /* No broker-side bound on queued QoS 1 messages: a subscriber slower than mosquitto_pub (under
     * valgrind) must not lose any; that QoS 1 is never read in pauses is checked by `coalesced`. */
    tb_broker_options_t o = {.port = 0, .extra_config = "max_queued_messages 0\n"};

    assert_non_null(s);
    s->fx.queue_messages = BURST; /* the recording listener keeps up; nothing may be dropped */
    s->fx.coalesce_us = coalesce_us;
    mf_start(&s->fx, false);
    s->b = tb_broker_start(&o);
    assert_non_null(s->b);
    s->pid =
        mf_create(&s->fx, tb_broker_port(s->b), "reconnect_min", "1", "reconnect_max", "1", NULL);
    assert_true(mf_wait_connection(&s->fx, s->pid, MF_WAIT_MS) > 0);
    *st = s;
    return 0;
}

static int setup(void **st)
{
    return start(st, 0);
}

static int setup_off(void **st)
{
    return start(st, -1);
}

static int teardown(void **st)
{
    state_t *s = *st;
    mf_listener_destroy(&s->l);
    mf_free(&s->fx);
    tb_broker_free(s->b);
    free(s->pid);
    free(s);
    return 0;
}

static void listen_to(state_t *s, int qos)
{
    const char *t[] = {"burst/#"};
    mf_listen(&s->fx, &s->l, t, 1, false, qos);
    assert_true(tb_broker_wait_log(s->b, "\tburst/# (QoS", 1, MF_WAIT_MS));
}

/* Publishes "1" .. "n" on `topic` at `qos`, from a mosquitto_pub process reading them as lines;
 * with `gap_ms`, one process per message, `gap_ms` apart. */
static void publish(state_t *s, const char *topic, int qos, int n, int gap_ms)
{
    char cmd[512];

    if (gap_ms > 0) {
        for (int i = 1; i <= n; i++) {
            snprintf(cmd, sizeof(cmd), "mosquitto_pub -h 127.0.0.1 -p %d -t %s -q %d -m %d",
                     tb_broker_port(s->b), topic, qos, i);
            assert_int_equal(system(cmd), 0);
            usleep((useconds_t)gap_ms * 1000);
        }
        return;
    }
    char path[] = "/tmp/pelix-coalesce-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    for (int i = 1; i <= n; i++) {
        fprintf(f, "%d\n", i);
    }
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof(cmd), "mosquitto_pub -h 127.0.0.1 -p %d -t %s -q %d -l < %s",
             tb_broker_port(s->b), topic, qos, path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
}

/* Every message "1" .. "n" once, in order. */
static void assert_all_in_order(state_t *s, int n)
{
    if (!mf_listener_wait(&s->l, NULL, (size_t)n, MF_WAIT_MS * 3)) {
        fprintf(stderr, "got %zu of %d\n", s->l.count, n);
        fail();
    }
    pthread_mutex_lock(&s->l.lock);
    assert_int_equal(s->l.count, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(strtol(s->l.msgs[i].payload, NULL, 10), i + 1);
    }
    pthread_mutex_unlock(&s->l.lock);
}

static uint64_t coalesced(state_t *s)
{
    pelix_mqtt_connection_info_t *list = NULL;
    size_t n = 0;
    uint64_t v;

    assert_int_equal(pelix_mqtt_connections(s->fx.mqtt, &list, &n), 0);
    assert_int_equal(n, 1);
    v = list[0].coalesced;
    pelix_mqtt_connections_free(list, n);
    return v;
}

/* A fast QoS 0 stream is read in bursts: most messages after a pause; all of them, in order. */
static void test_fast_stream_coalesced(void **st)
{
    state_t *s = *st;
    listen_to(s, 0);
    publish(s, "burst/fast", 0, BURST, 0);
    assert_all_in_order(s, BURST);
    uint64_t c = coalesced(s);
    fprintf(stderr, "coalesce: %llu of %d messages read after a pause\n", (unsigned long long)c,
            BURST);
    assert_true(c > 0 && c <= BURST);
}

/* Messages tens of milliseconds apart are read as they come: never a pause. */
static void test_light_load_not_coalesced(void **st)
{
    state_t *s = *st;
    listen_to(s, 0);
    publish(s, "burst/slow", 0, 20, 20);
    assert_all_in_order(s, 20);
    assert_int_equal(coalesced(s), 0);
}

/* QoS 1: acknowledgements never wait for a pause, however fast the stream. */
static void test_qos1_not_coalesced(void **st)
{
    state_t *s = *st;
    listen_to(s, 1);
    publish(s, "burst/acked", 1, 5000, 0);
    assert_all_in_order(s, 5000);
    assert_int_equal(coalesced(s), 0);
}

/* Coalescing off (a negative coalesce_us): a fast stream is read message by message. */
static void test_off(void **st)
{
    state_t *s = *st;
    listen_to(s, 0);
    publish(s, "burst/fast", 0, BURST, 0);
    assert_all_in_order(s, BURST);
    assert_int_equal(coalesced(s), 0);
}

/* The broker stops while the stream is read in bursts: the connection is seen lost, comes back
 * when the broker does, and a single message then arrives with no pause left over. */
static void test_broker_stops_during_bursts(void **st)
{
    state_t *s = *st;
    listen_to(s, 0);
    publish(s, "burst/fast", 0, BURST, 0);
    assert_all_in_order(s, BURST);
    assert_true(coalesced(s) > 0);
    assert_int_equal(tb_broker_stop(s->b), 0);
    assert_true(mf_wait_no_connection(&s->fx, s->pid, MF_WAIT_MS));
    assert_int_equal(tb_broker_restart(s->b), 0);
    assert_true(mf_wait_connection(&s->fx, s->pid, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->b, "\tburst/# (QoS", 2, MF_WAIT_MS));
    uint64_t before = coalesced(s);
    publish(s, "burst/after", 0, 1, 0);
    assert_true(mf_listener_wait(&s->l, "burst/after", 1, MF_WAIT_MS));
    assert_int_equal(coalesced(s), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fast_stream_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_light_load_not_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos1_not_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off, setup_off, teardown),
        cmocka_unit_test_setup_teardown(test_broker_stops_during_bursts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
