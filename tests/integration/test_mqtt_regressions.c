/*
 * Regression tests of defects found in review of the MQTT service, each failing without its fix:
 * a second CONNACK registering a second connection service; a connection loss not releasing a
 * publisher that waits for an acknowledgement while holding a use of the service; a listener
 * unregistering itself from its callback while its queue is full blocking the network thread;
 * a client id libmosquitto refuses being retried forever as "out of memory"; a socket kept open
 * by a forked child staying in epoll after its connection was freed. Also two guarantees whose
 * implementation changed for speed and memory: an unregistration waits for the listener's
 * running call (no lock per delivery any more), and a listener queue's default bound (1000).
 *
 * The second CONNACK comes from a raw TCP peer of the test (no broker sends one); everything
 * else runs against real mosquitto brokers on loopback.
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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "integration/broker.h"
#include "integration/client.h"
#include "integration/mqtt_fixture.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a peer that answers CONNECT with two CONNACKs ------------------------------------------- */

typedef struct peer {
    int listen_fd;
    int port;
    pthread_t thread;
} peer_t;

static void *peer_run(void *arg)
{
    peer_t *p = arg;
    unsigned char buf[4096], ack[] = {0x20, 0x02, 0x00, 0x00}, pong[] = {0xD0, 0x00};
    int fd = accept(p->listen_fd, NULL, NULL);

    if (fd < 0) {
        return NULL;
    }
    if (read(fd, buf, sizeof(buf)) > 0 && write(fd, ack, sizeof(ack)) == (ssize_t)sizeof(ack)) {
        usleep(300 * 1000);
        if (write(fd, ack, sizeof(ack)) != (ssize_t)sizeof(ack)) {
            close(fd);
            return NULL;
        }
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        if (buf[0] == 0xC0 && write(fd, pong, sizeof(pong)) < 0) {
            break;
        }
    }
    close(fd);
    return NULL;
}

static void peer_start(peer_t *p)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int one = 1;

    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->listen_fd >= 0);
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(p->listen_fd, 4), 0);
    assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a, &len), 0);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, peer_run, p), 0);
}

static void test_second_connack(void **st)
{
    (void)st;
    mf_t fx = {0};
    peer_t p = {0};
    size_t most = 0;

    peer_start(&p);
    mf_start(&fx, false);
    char *pid = mf_create(&fx, p.port, "reconnect_min", "60", NULL);
    for (long t0 = now_ms(); now_ms() - t0 < 1500;) {
        size_t n = mf_count_connections(&fx, pid);
        most = n > most ? n : most;
        usleep(10 * 1000);
    }
    assert_true(most <= 1); /* never two services for one PID */
    assert_true(mf_log_count(&fx, "unexpected CONNACK") >= 1);
    mf_delete(&fx, pid);
    assert_true(mf_wait_no_connection(&fx, NULL, MF_WAIT_MS));
    mf_free(&fx);
    shutdown(p.listen_fd, SHUT_RDWR);
    close(p.listen_fd);
    pthread_join(p.thread, NULL);
    free(pid);
}

/* ---- a waiter holding a use of the connection is released by the loss ------------------------ */

typedef struct waiter {
    int rc;
    long waited_ms;
} waiter_t;

static void publish_and_wait(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    waiter_t *w = ctx;
    pelix_mqtt_connection_t *c = svc;
    pelix_mqtt_publish_info_t info = {0};
    long t0 = now_ms();
    (void)id;
    (void)props;
    w->rc = c->publish(c->handle, "w/t", "x", 1, 1, false, &info);
    if (w->rc == 0) {
        w->rc = c->wait_published(c->handle, &info, 3 * MF_WAIT_MS);
    }
    w->waited_ms = now_ms() - t0;
}

typedef struct use_thread {
    mf_t *fx;
    long id;
    waiter_t w;
} use_thread_t;

static void *use_run(void *arg)
{
    use_thread_t *u = arg;
    pelix_registry_use_id(u->fx->reg, u->id, publish_and_wait, &u->w);
    return NULL;
}

static void test_loss_releases_waiter_holding_a_use(void **st)
{
    (void)st;
    mf_t fx = {0};
    tb_broker_t *b = tb_broker_start(NULL);
    use_thread_t u = {.fx = &fx};
    pthread_t t;

    assert_non_null(b);
    mf_start(&fx, false);
    char *pid = mf_create(&fx, tb_broker_port(b), "reconnect_min", "60", NULL);
    u.id = mf_wait_connection(&fx, pid, MF_WAIT_MS);
    assert_true(u.id > 0);
    /* The broker stops answering: the QoS 1 message stays unacknowledged... */
    assert_int_equal(kill(tb_broker_pid(b), SIGSTOP), 0);
    assert_int_equal(pthread_create(&t, NULL, use_run, &u), 0);
    usleep(300 * 1000);
    /* ...then goes away: the connection is lost while the waiter holds a use of the service. */
    assert_int_equal(kill(tb_broker_pid(b), SIGKILL), 0);
    pthread_join(t, NULL);
    assert_int_equal(u.w.rc, -ENOTCONN);
    assert_true(u.w.waited_ms < 3 * MF_WAIT_MS);
    assert_true(mf_wait_no_connection(&fx, pid, MF_WAIT_MS));
    mf_free(&fx);
    tb_broker_free(b);
    free(pid);
}

/* ---- a listener unregistering itself while its queue is full --------------------------------- */

typedef struct self_unreg {
    pelix_mqtt_listener_t svc;
    pelix_registry_t *reg;
    long id;
    int calls;
} self_unreg_t;

static void unregister_then_work(void *handle, const pelix_mqtt_message_t *msg)
{
    self_unreg_t *l = handle;
    (void)msg;
    if (l->calls++ == 0) {
        usleep(500 * 1000); /* the next messages fill the queue meanwhile */
        pelix_registry_unregister(l->reg, l->id);
        sleep(3); /* keeps working after its unregistration */
    }
}

static void test_self_unregistration_with_full_queue(void **st)
{
    (void)st;
    mf_t fx = {.queue_messages = 2};
    tb_broker_t *b = tb_broker_start(NULL);
    self_unreg_t l = {.svc = {unregister_then_work, &l}};
    const char *spec[] = {PELIX_MQTT_LISTENER_SPEC};

    assert_non_null(b);
    mf_start(&fx, false);
    char *pid = mf_create(&fx, tb_broker_port(b), NULL);
    assert_true(mf_wait_connection(&fx, pid, MF_WAIT_MS) > 0);
    l.reg = fx.reg;
    pelix_props_t *p = pelix_props_new();
    pelix_props_set_string(p, PELIX_MQTT_TOPICS, "full/#");
    assert_int_equal(pelix_registry_register(fx.reg, spec, 1, &l.svc, p, &l.id), 0);
    assert_true(tb_broker_wait_log(b, "\tfull/# (QoS", 1, MF_WAIT_MS));

    pelix_mqtt_connection_t *c = mf_connection(&fx, pid);
    for (int i = 0; i < 5; i++) { /* the first call, then a full queue */
        assert_int_equal(c->publish(c->handle, "full/x", "m", 1, 0, false, NULL), 0);
    }
    usleep(1000 * 1000);
    /* The network thread still works while the listener's callback runs on. */
    pelix_mqtt_publish_info_t info = {0};
    long t0 = now_ms();
    assert_int_equal(c->publish(c->handle, "other", "y", 1, 0, false, &info), 0);
    assert_int_equal(c->wait_published(c->handle, &info, 2000), 0);
    assert_true(now_ms() - t0 < 2000);
    mf_free(&fx); /* waits for the callback to end */
    assert_int_equal(l.calls, 1);
    tb_broker_free(b);
    free(pid);
}

/* ---- a client id libmosquitto refuses -------------------------------------------------------- */

static void test_client_id_with_control_character(void **st)
{
    (void)st;
    mf_t fx = {0};
    tb_broker_t *b = tb_broker_start(NULL);

    assert_non_null(b);
    mf_start(&fx, false);
    char *pid = mf_create(&fx, tb_broker_port(b), "client_id", "dev\tice", NULL);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_count_connections(&fx, pid), 0);
    assert_int_equal(mf_log_count(&fx, "client_id"), 1);
    assert_int_equal(mf_log_count(&fx, "memory"), 0);
    mf_free(&fx);
    tb_broker_free(b);
    free(pid);
}

/* ---- stopping the service while listeners are registered and busy --------------------------- */

static void test_stop_with_listeners_registered(void **st)
{
    (void)st;
    mf_t fx = {0};
    tb_broker_t *b = tb_broker_start(NULL);
    mf_listener_t l = {0};
    const char *t[] = {"busy/#"};

    assert_non_null(b);
    mf_start(&fx, false);
    char *pid = mf_create(&fx, tb_broker_port(b), NULL);
    assert_true(mf_wait_connection(&fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&fx, &l, t, 1, false, 0);
    assert_true(tb_broker_wait_log(b, "\tbusy/# (QoS", 1, MF_WAIT_MS));
    pelix_mqtt_connection_t *c = mf_connection(&fx, pid);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(c->publish(c->handle, "busy/x", "m", 1, 0, false, NULL), 0);
    }
    assert_true(mf_listener_wait(&l, "busy/x", 1, MF_WAIT_MS));
    /* The service goes first; the listener service is still registered. */
    fx.mqtt = pelix_mqtt_free(fx.mqtt);
    size_t seen = mf_listener_count(&l, NULL);
    usleep(300 * 1000);
    assert_int_equal(mf_listener_count(&l, NULL), seen); /* no call after free returned */
    assert_int_equal(mf_count_connections(&fx, NULL), 0);
    mf_listener_destroy(&l);
    mf_free(&fx);
    tb_broker_free(b);
    free(pid);
}

/* ---- a forked child keeping a connection's socket open ----------------------------------------
 */

/* A child forked while a connection is up (pelix-mqtt forks its embedded broker) shares the
 * socket's open file. When the broker goes, libmosquitto closes its descriptor before the service
 * unwatches the connection: the service must still take the socket out of its epoll (the child
 * keeps it alive, at end of file, so it would fire for ever), or the events that follow name the
 * connection freed by the configuration's deletion (a use after free under ASan). */
static void test_forked_child_keeps_socket(void **st)
{
    (void)st;
    mf_t fx = {0};
    tb_broker_t *b = tb_broker_start(NULL);
    pid_t child;

    assert_non_null(b);
    mf_start(&fx, false);
    char *pid = mf_create(&fx, tb_broker_port(b), "reconnect_min", "5", NULL);
    assert_true(mf_wait_connection(&fx, pid, MF_WAIT_MS) > 0);
    fflush(NULL);
    child = fork();
    if (child == 0) {
        sleep(3);
        _exit(0);
    }
    assert_true(child > 0);
    assert_int_equal(tb_broker_stop(b), 0);
    assert_true(mf_wait_no_connection(&fx, pid, MF_WAIT_MS));
    mf_delete(&fx, pid);
    usleep(500 * 1000); /* the loop goes on: no event may reach the freed connection */
    assert_true(mf_log_count(&fx, "connection lost") >= 1);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    mf_free(&fx);
    tb_broker_free(b);
    free(pid);
}

/* ---- unregistering a listener waits for its running call ------------------------------------ */

static int inside_of(mf_listener_t *l)
{
    pthread_mutex_lock(&l->lock);
    int n = l->inside;
    pthread_mutex_unlock(&l->lock);
    return n;
}

static bool wait_inside(mf_listener_t *l, int n)
{
    for (long waited = 0; waited < MF_WAIT_MS; waited += 10) {
        if (inside_of(l) == n) {
            return true;
        }
        usleep(10 * 1000);
    }
    return false;
}

static void *release_later(void *arg)
{
    usleep(300 * 1000);
    mf_listener_hold(arg, false);
    return NULL;
}

/* Pelix's contract: once the unregistration returned, the listener is not running and is not
 * called again. Its running call ends first (here 300 ms later, on another thread). */
static void test_unregistration_waits_for_running_call(void **st)
{
    (void)st;
    mf_t fx = {0};
    tb_broker_t *b = tb_broker_start(NULL);
    mf_listener_t l = {0};
    const char *t[] = {"calls/#"};
    pthread_t releaser;

    assert_non_null(b);
    mf_start(&fx, false);
    char *pid = mf_create(&fx, tb_broker_port(b), NULL);
    assert_true(mf_wait_connection(&fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&fx, &l, t, 1, false, 0);
    assert_true(tb_broker_wait_log(b, "\tcalls/# (QoS", 1, MF_WAIT_MS));
    pelix_mqtt_connection_t *c = mf_connection(&fx, pid);
    mf_listener_hold(&l, true);
    assert_int_equal(c->publish(c->handle, "calls/a", "m", 1, 0, false, NULL), 0);
    assert_true(wait_inside(&l, 1));

    assert_int_equal(pthread_create(&releaser, NULL, release_later, &l), 0);
    mf_unlisten(&l);
    assert_int_equal(inside_of(&l), 0); /* the call ended before the unregistration returned */
    assert_int_equal(mf_listener_count(&l, "calls/a"), 1);
    pthread_join(releaser, NULL);

    pelix_mqtt_publish_info_t info = {0};
    assert_int_equal(c->publish(c->handle, "calls/b", "m", 1, 1, false, &info), 0);
    assert_int_equal(c->wait_published(c->handle, &info, MF_WAIT_MS), 0);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_listener_count(&l, NULL), 1);
    mf_listener_destroy(&l);
    mf_free(&fx);
    tb_broker_free(b);
    free(pid);
}

/* ---- the default bound of a listener's queue ------------------------------------------------- */

#define BOUND_BURST 1500

/* With no listener_queue_messages option, a listener's queue holds 1000 messages: a burst into
 * a stuck listener keeps 1000, drops and counts the rest, and the listener gets the 1000 in order
 * once it goes on. */
static void test_default_listener_queue_bound(void **st)
{
    (void)st;
    mf_t fx = {0};
    tb_broker_t *b = tb_broker_start(NULL);
    mf_listener_t l = {0};
    const char *t[] = {"bound/#"};
    pelix_mqtt_stats_t stats = {0};
    char payload[16];

    assert_non_null(b);
    mf_start(&fx, false);
    char *pid = mf_create(&fx, tb_broker_port(b), NULL);
    assert_true(mf_wait_connection(&fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&fx, &l, t, 1, false, 0);
    assert_true(tb_broker_wait_log(b, "\tbound/# (QoS", 1, MF_WAIT_MS));
    pelix_mqtt_connection_t *c = mf_connection(&fx, pid);
    mf_listener_hold(&l, true);
    assert_int_equal(c->publish(c->handle, "bound/first", "0", 1, 0, false, NULL), 0);
    assert_true(wait_inside(&l, 1));

    for (int i = 1; i <= BOUND_BURST; i++) {
        int n = snprintf(payload, sizeof(payload), "%d", i);
        assert_int_equal(c->publish(c->handle, "bound/x", payload, (size_t)n, 0, false, NULL), 0);
    }
    for (long waited = 0; waited < MF_WAIT_MS; waited += 20) {
        assert_int_equal(pelix_mqtt_stats(fx.mqtt, &stats), 0);
        if (stats.listener_queued + stats.listener_dropped >= BOUND_BURST) {
            break;
        }
        usleep(20 * 1000);
    }
    assert_int_equal(stats.listener_queued, 1000);
    assert_int_equal(stats.listener_dropped, BOUND_BURST - 1000);

    mf_listener_hold(&l, false);
    assert_true(mf_listener_wait(&l, "bound/x", 1000, MF_WAIT_MS));
    pthread_mutex_lock(&l.lock);
    for (size_t i = 1; i < l.count; i++) { /* the first 1000 of the burst, in order */
        char expect[24];
        snprintf(expect, sizeof(expect), "%zu", i);
        assert_string_equal(l.msgs[i].payload, expect);
    }
    pthread_mutex_unlock(&l.lock);
    assert_int_equal(mf_listener_count(&l, NULL), 1001);
    mf_listener_destroy(&l);
    mf_free(&fx);
    tb_broker_free(b);
    free(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_connack),
        cmocka_unit_test(test_loss_releases_waiter_holding_a_use),
        cmocka_unit_test(test_self_unregistration_with_full_queue),
        cmocka_unit_test(test_client_id_with_control_character),
        cmocka_unit_test(test_stop_with_listeners_registered),
        cmocka_unit_test(test_forked_child_keeps_socket),
        cmocka_unit_test(test_unregistration_waits_for_running_call),
        cmocka_unit_test(test_default_listener_queue_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
