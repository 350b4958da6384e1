/*
 * The integration-test harness itself (broker.h, client.h): real mosquitto brokers on loopback,
 * round trips at QoS 0, 1 and 2 with exact payload bytes, retained messages, stop and restart on
 * the same port, independent brokers, the blackhole listener, and no broker process left behind.
 *
 * Timing: every wait is bounded by TB_WAIT_MS / TC_WAIT_MS (5 s), generous upper bounds for
 * "eventually"; QUIET_MS is only used to look for a message that must not come. No test passes
 * or fails on speed, except the blackhole's connect that must give up within its bound.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "integration/broker.h"
#include "integration/client.h"

#define QUIET_MS 300
#define MAX_BROKERS 4
#define MAX_CLIENTS 8

/* What a test started, freed by the teardown whatever state the test left. */
typedef struct fixture {
    tb_broker_t *brokers[MAX_BROKERS];
    tc_client_t *clients[MAX_CLIENTS];
    tb_blackhole_t *hole;
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < MAX_CLIENTS; i++) {
        tc_disconnect(fx->clients[i]);
    }
    for (int i = 0; i < MAX_BROKERS; i++) {
        tb_broker_free(fx->brokers[i]);
    }
    tb_blackhole_free(fx->hole);
    free(fx);
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts a broker in slot `i`; asserts. */
static tb_broker_t *start_broker(fixture_t *fx, int i, const tb_broker_options_t *opts)
{
    assert_null(fx->brokers[i]);
    fx->brokers[i] = tb_broker_start(opts);
    assert_non_null(fx->brokers[i]);
    assert_true(tb_broker_running(fx->brokers[i]));
    return fx->brokers[i];
}

/* Connects a client in slot `i`; asserts. */
static tc_client_t *connect_client(fixture_t *fx, int i, int port)
{
    assert_null(fx->clients[i]);
    fx->clients[i] = tc_connect(port, NULL);
    assert_non_null(fx->clients[i]);
    assert_true(tc_connected(fx->clients[i]));
    return fx->clients[i];
}

static void drop_client(fixture_t *fx, int i)
{
    tc_disconnect(fx->clients[i]);
    fx->clients[i] = NULL;
}

/* Whether a TCP connection to 127.0.0.1:port is accepted (refused otherwise). */
static bool tcp_accepts(int port)
{
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    assert_true(fd >= 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

static bool process_gone(pid_t pid)
{
    return kill(pid, 0) == -1 && errno == ESRCH;
}

/* Publishes from `pub` and expects exactly these bytes, QoS and retain flag at `sub`; asserts. */
static void round_trip(tc_client_t *pub, tc_client_t *sub, const char *topic, const void *payload,
                       size_t len, int qos)
{
    tc_message_t m;

    assert_int_equal(tc_publish(pub, topic, payload, len, qos, false), 0);
    assert_true(tc_wait_message(sub, topic, TC_WAIT_MS, &m));
    assert_string_equal(m.topic, topic);
    assert_int_equal(m.len, len);
    assert_memory_equal(m.payload, payload, len);
    assert_int_equal(m.payload[len], '\0');
    assert_int_equal(m.qos, qos);
    assert_false(m.retain);
    tc_message_free(&m);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_free_port(void **state)
{
    int a = tb_free_port();
    int b = tb_free_port();

    (void)state;
    assert_true(a > 0 && a < 65536);
    assert_true(b > 0 && b < 65536);
    assert_int_not_equal(a, 1883);
    assert_false(tcp_accepts(a));
}

static void test_round_trips(void **state)
{
    fixture_t *fx = *state;
    tb_broker_t *broker = start_broker(fx, 0, NULL);
    int port = tb_broker_port(broker);
    tc_client_t *sub;
    tc_client_t *pub;
    char *needle;

    assert_true(port > 0);
    assert_int_not_equal(port, 1883);
    assert_true(tb_broker_pid(broker) > 0);
    assert_true(tcp_accepts(port));

    sub = connect_client(fx, 0, port);
    pub = connect_client(fx, 1, port);
    assert_string_not_equal(tc_client_id(sub), tc_client_id(pub));
    assert_int_equal(tc_subscribe(sub, "harness/#", 2), 2);

    /* The broker's log shows the subscription, by client ID. */
    assert_int_equal(asprintf(&needle, "Received SUBSCRIBE from %s", tc_client_id(sub)) > 0, 1);
    assert_true(tb_broker_wait_log(broker, needle, 1, TB_WAIT_MS));
    free(needle);

    for (int qos = 0; qos <= 2; qos++) {
        const char payload[] = {'q', (char)('0' + qos), '\0', 'x', '\xff', '\n'};
        round_trip(pub, sub, "harness/exact", payload, sizeof(payload), qos);
    }
    /* Empty payload; a wildcard in tc_wait_message. */
    assert_int_equal(tc_publish(pub, "harness/empty", NULL, 0, 1, false), 0);
    {
        tc_message_t m;
        assert_true(tc_wait_message(sub, "harness/+", TC_WAIT_MS, &m));
        assert_string_equal(m.topic, "harness/empty");
        assert_int_equal(m.len, 0);
        assert_string_equal(m.payload, "");
        tc_message_free(&m);
    }
    /* Granted QoS is the minimum; the delivery QoS is min(publish, subscription). */
    assert_int_equal(tc_subscribe(pub, "harness/back", 1), 1);
    {
        tc_message_t m;
        assert_int_equal(tc_publish(sub, "harness/back", "2", 1, 2, false), 0);
        assert_true(tc_wait_message(pub, "harness/back", TC_WAIT_MS, &m));
        assert_int_equal(m.qos, 1);
        tc_message_free(&m);
        /* The sender is subscribed to harness/# too: it got its own message, at QoS 2. */
        assert_true(tc_wait_message(sub, "harness/back", TC_WAIT_MS, &m));
        assert_int_equal(m.qos, 2);
        tc_message_free(&m);
    }
    assert_int_equal(tc_count(sub, NULL), 0);
    assert_int_equal(tc_count(pub, NULL), 0);
}

static void test_count_and_clear(void **state)
{
    fixture_t *fx = *state;
    tb_broker_t *broker = start_broker(fx, 0, NULL);
    tc_client_t *c = connect_client(fx, 0, tb_broker_port(broker));
    tc_message_t m;

    assert_int_equal(tc_subscribe(c, "count/#", 1), 1);
    for (int i = 0; i < 5; i++) {
        char payload[8];
        int n = snprintf(payload, sizeof(payload), "%d", i);
        assert_int_equal(
            tc_publish(c, i % 2 ? "count/odd" : "count/even", payload, (size_t)n, 1, false), 0);
    }
    assert_true(tc_wait_count(c, NULL, 5, TC_WAIT_MS));
    assert_int_equal(tc_count(c, "count/odd"), 2);
    assert_int_equal(tc_count(c, "count/even"), 3);
    assert_int_equal(tc_count(c, "count/#"), 5);
    assert_int_equal(tc_count(c, "other"), 0);
    /* Oldest first, per topic. */
    assert_true(tc_wait_message(c, "count/odd", 0, &m));
    assert_string_equal(m.payload, "1");
    tc_message_free(&m);
    assert_true(tc_wait_message(c, NULL, 0, NULL));
    assert_true(tc_wait_message(c, NULL, 0, &m));
    assert_string_equal(m.payload, "2");
    tc_message_free(&m);
    assert_int_equal(tc_count(c, NULL), 2);
    tc_clear(c);
    assert_int_equal(tc_count(c, NULL), 0);
    assert_false(tc_wait_message(c, NULL, 50, &m));
    assert_null(m.topic);
}

static void test_retain_and_unsubscribe(void **state)
{
    fixture_t *fx = *state;
    tb_broker_t *broker = start_broker(fx, 0, NULL);
    int port = tb_broker_port(broker);
    tc_client_t *pub = connect_client(fx, 0, port);
    tc_client_t *late;
    tc_message_t m;
    const char payload[] = {'r', '\0', 'r'};

    assert_int_equal(tc_publish(pub, "retain/a", payload, sizeof(payload), 1, true), 0);

    /* A later subscriber gets it, flagged retained. */
    late = connect_client(fx, 1, port);
    assert_int_equal(tc_subscribe(late, "retain/a", 1), 1);
    assert_true(tc_wait_message(late, "retain/a", TC_WAIT_MS, &m));
    assert_int_equal(m.len, sizeof(payload));
    assert_memory_equal(m.payload, payload, sizeof(payload));
    assert_true(m.retain);
    assert_int_equal(m.qos, 1);
    tc_message_free(&m);
    drop_client(fx, 1);

    /* An empty retained message clears it: a new subscriber gets only the live message. The
     * retained ones are sent right after the SUBACK, so the live one, published after, comes
     * after them. */
    assert_int_equal(tc_publish(pub, "retain/a", NULL, 0, 1, true), 0);
    late = connect_client(fx, 1, port);
    assert_int_equal(tc_subscribe(late, "retain/a", 1), 1);
    assert_int_equal(tc_publish(pub, "retain/a", "live", 4, 1, false), 0);
    assert_true(tc_wait_message(late, "retain/a", TC_WAIT_MS, &m));
    assert_string_equal(m.payload, "live");
    assert_false(m.retain);
    tc_message_free(&m);
    assert_int_equal(tc_count(late, NULL), 0);

    /* After an unsubscribe, nothing more comes; a second subscription shows the order. */
    assert_int_equal(tc_unsubscribe(late, "retain/a"), 0);
    assert_int_equal(tc_subscribe(late, "sentinel", 0), 0);
    assert_int_equal(tc_publish(pub, "retain/a", "gone", 4, 1, false), 0);
    assert_int_equal(tc_publish(pub, "sentinel", "s", 1, 1, false), 0);
    assert_true(tc_wait_message(late, "sentinel", TC_WAIT_MS, NULL));
    assert_int_equal(tc_count(late, NULL), 0);
}

static void test_stop_and_restart(void **state)
{
    fixture_t *fx = *state;
    tb_broker_t *broker = start_broker(fx, 0, NULL);
    int port = tb_broker_port(broker);
    pid_t first = tb_broker_pid(broker);
    tc_client_t *c = connect_client(fx, 0, port);
    long long t0;

    assert_int_equal(tc_subscribe(c, "r", 1), 1);
    assert_int_equal(tb_broker_stop(broker), 0);
    assert_false(tb_broker_running(broker));
    assert_int_equal(tb_broker_pid(broker), 0);
    assert_true(process_gone(first));

    /* The client notices; new connections are refused. */
    assert_true(tc_wait_disconnected(c, TC_WAIT_MS));
    assert_false(tc_connected(c));
    assert_int_equal(tc_publish(c, "r", "x", 1, 1, false), -1);
    assert_false(tcp_accepts(port));
    assert_null(tc_connect(port, NULL));
    /* Stopping again is harmless. */
    assert_int_equal(tb_broker_stop(broker), 0);

    /* Restart on the same port (its connections may be in TIME_WAIT). */
    t0 = now_ms();
    assert_int_equal(tb_broker_restart(broker), 0);
    fprintf(stderr, "restarted in %lld ms\n", now_ms() - t0);
    assert_true(tb_broker_running(broker));
    assert_int_equal(tb_broker_port(broker), port);
    assert_true(tb_broker_pid(broker) > 0);
    assert_int_not_equal(tb_broker_pid(broker), first);
    assert_true(tcp_accepts(port));
    /* The log covers both runs. */
    assert_int_equal(tb_broker_log_contains(broker, " running"), 2);

    /* The old client stays disconnected (it never reconnects) and is freed cleanly. */
    assert_false(tc_connected(c));
    drop_client(fx, 0);

    {
        tc_client_t *sub = connect_client(fx, 1, port);
        tc_client_t *pub = connect_client(fx, 2, port);
        assert_int_equal(tc_subscribe(sub, "after/restart", 2), 2);
        for (int qos = 0; qos <= 2; qos++) {
            const char payload[] = {'a', '\0', (char)qos};
            round_trip(pub, sub, "after/restart", payload, sizeof(payload), qos);
        }
    }

    /* A restart of a running broker stops it first. */
    first = tb_broker_pid(broker);
    assert_int_equal(tb_broker_restart(broker), 0);
    assert_true(process_gone(first));
    assert_true(tc_wait_disconnected(fx->clients[1], TC_WAIT_MS));
    drop_client(fx, 1);
    drop_client(fx, 2);
    connect_client(fx, 1, port);
}

static void test_two_brokers(void **state)
{
    fixture_t *fx = *state;
    tb_broker_t *b1 = start_broker(fx, 0, NULL);
    tb_broker_t *b2 = start_broker(fx, 1, NULL);
    tc_client_t *s1;
    tc_client_t *s2;
    tc_client_t *p1;
    tc_message_t m;

    assert_int_not_equal(tb_broker_port(b1), tb_broker_port(b2));
    assert_int_not_equal(tb_broker_pid(b1), tb_broker_pid(b2));
    assert_string_not_equal(tb_broker_dir(b1), tb_broker_dir(b2));

    s1 = connect_client(fx, 0, tb_broker_port(b1));
    s2 = connect_client(fx, 1, tb_broker_port(b2));
    p1 = connect_client(fx, 2, tb_broker_port(b1));
    assert_int_equal(tc_subscribe(s1, "shared", 1), 1);
    assert_int_equal(tc_subscribe(s2, "shared", 1), 1);

    round_trip(p1, s1, "shared", "one", 3, 1);
    usleep(QUIET_MS * 1000);
    assert_int_equal(tc_count(s2, NULL), 0);
    assert_int_equal(tb_broker_log_contains(b2, tc_client_id(p1)), 0);

    /* Stopping one leaves the other working. */
    assert_int_equal(tb_broker_stop(b1), 0);
    assert_true(tc_wait_disconnected(s1, TC_WAIT_MS));
    assert_true(tc_connected(s2));
    assert_int_equal(tc_publish(s2, "shared", "two", 3, 2, false), 0);
    assert_true(tc_wait_message(s2, "shared", TC_WAIT_MS, &m));
    assert_string_equal(m.payload, "two");
    tc_message_free(&m);
}

static void test_options(void **state)
{
    fixture_t *fx = *state;
    int port = tb_free_port();
    int second = tb_free_port();
    char extra[64];
    tb_broker_options_t opts = {0};
    tb_broker_t *broker;

    assert_true(port > 0 && second > 0);
    if (second == port) {
        second = tb_free_port();
    }
    snprintf(extra, sizeof(extra), "listener %d 127.0.0.1\n", second);
    opts.port = port;
    opts.extra_config = extra;
    broker = start_broker(fx, 0, &opts);
    assert_int_equal(tb_broker_port(broker), port);

    /* The extra listener works too, on the same broker. */
    assert_true(tb_broker_wait_log(broker, "Opening ipv4 listen socket", 2, TB_WAIT_MS));
    {
        tc_client_t *a = connect_client(fx, 0, port);
        tc_client_t *b = connect_client(fx, 1, second);
        assert_int_equal(tc_subscribe(a, "both", 0), 0);
        round_trip(b, a, "both", "x", 1, 0);
    }
}

static void test_start_fails_on_busy_port(void **state)
{
    fixture_t *fx = *state;
    tb_broker_options_t opts = {0};

    fx->hole = tb_blackhole_start();
    assert_non_null(fx->hole);
    opts.port = tb_blackhole_port(fx->hole);
    /* mosquitto exits ("Address already in use"): reported at once, nothing left running. */
    fprintf(stderr, "expected: a start-up failure report follows\n");
    assert_null(tb_broker_start(&opts));
}

static void test_blackhole(void **state)
{
    fixture_t *fx = *state;
    tc_options_t opts;
    long long t0;
    long long elapsed;
    int port;

    fx->hole = tb_blackhole_start();
    assert_non_null(fx->hole);
    port = tb_blackhole_port(fx->hole);
    assert_true(port > 0);

    /* TCP connects... */
    assert_true(tcp_accepts(port));

    /* ...but no CONNACK ever comes: tc_connect gives up within its bound. */
    t0 = now_ms();
    assert_null(tc_connect(port, NULL));
    elapsed = now_ms() - t0;
    assert_true(elapsed >= TC_WAIT_MS - 50);
    assert_true(elapsed < TC_WAIT_MS + 3000);

    memset(&opts, 0, sizeof(opts));
    opts.port = port;
    opts.timeout_ms = 500;
    t0 = now_ms();
    assert_null(tc_connect_opts(&opts));
    elapsed = now_ms() - t0;
    assert_true(elapsed >= 450);
    assert_true(elapsed < 500 + 3000);

    /* Our probe and both clients were accepted, and kept. */
    for (int i = 0; i < TB_WAIT_MS / 10 && tb_blackhole_accepted(fx->hole) < 3; i++) {
        usleep(10 * 1000);
    }
    assert_int_equal(tb_blackhole_accepted(fx->hole), 3);
}

static void test_free_leaves_nothing(void **state)
{
    fixture_t *fx = *state;
    tb_broker_t *running = start_broker(fx, 0, NULL);
    tb_broker_t *stopped = start_broker(fx, 1, NULL);
    pid_t p1 = tb_broker_pid(running);
    pid_t p2 = tb_broker_pid(stopped);
    int port = tb_broker_port(running);
    char *dir1 = strdup(tb_broker_dir(running));
    char *dir2 = strdup(tb_broker_dir(stopped));
    struct stat st;

    assert_non_null(dir1);
    assert_non_null(dir2);
    assert_int_equal(stat(dir1, &st), 0);
    connect_client(fx, 0, port);
    assert_int_equal(tb_broker_stop(stopped), 0);

    /* Freed with a client still connected, and after a stop. */
    tb_broker_free(running);
    fx->brokers[0] = NULL;
    tb_broker_free(stopped);
    fx->brokers[1] = NULL;
    assert_true(process_gone(p1));
    assert_true(process_gone(p2));
    assert_false(tcp_accepts(port));
    assert_int_equal(stat(dir1, &st), -1);
    assert_int_equal(stat(dir2, &st), -1);
    free(dir1);
    free(dir2);
    assert_true(tc_wait_disconnected(fx->clients[0], TC_WAIT_MS));
    tb_broker_free(NULL);
    tb_blackhole_free(NULL);
    tc_disconnect(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_port),
        cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_and_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retain_and_unsubscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_brokers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_fails_on_busy_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blackhole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_leaves_nothing, setup, teardown),
    };
    return cmocka_run_group_tests_name("harness", tests, NULL, NULL);
}
