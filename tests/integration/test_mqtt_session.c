/*
 * Integration tests of the session settings of a connection against real mosquitto brokers:
 * credentials (a broker with a password file; a wrong password refused and retried, the password
 * never in a log line, the configuration file 0600), the birth message after each connect, the
 * close message before a graceful disconnect (and no will then), the will on a lost connection,
 * a birth change applied without reconnecting, MQTT 5 and a persistent session, MQTT 5 session
 * expiry (a short one expired by the broker, the default one kept), a persistent session whose
 * queued and in-flight QoS 1 messages survive a restart of a broker with persistence, QoS 1 and 2
 * flows through such a broker restarted five times (every message, each doubled only where the
 * broker's log shows it sent it twice), settings
 * refused with their reason, and MQTT 5 message properties both ways (and ignored on 3.1.1).
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "integration/broker.h"
#include "integration/client.h"
#include "integration/mqtt_fixture.h"
#include "integration/proxy.h"

#define PASSWORD "s3cret-Pa55"

typedef struct state {
    mf_t fx;
    tb_broker_t *broker;
    tc_client_t *watcher; /* subscribed to status/# */
    char dir[64];         /* for the password file */
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
    if (s->watcher) {
        tc_disconnect(s->watcher);
    }
    mf_free(&s->fx);
    tb_broker_free(s->broker);
    if (s->dir[0]) {
        char path[128];
        snprintf(path, sizeof(path), "%s/passwd", s->dir);
        unlink(path);
        rmdir(s->dir);
    }
    free(s);
    return 0;
}

static void start_broker(state_t *s, const char *extra)
{
    tb_broker_options_t o = {.port = 0, .extra_config = extra};
    s->broker = tb_broker_start(&o);
    assert_non_null(s->broker);
}

static void watch(state_t *s)
{
    s->watcher = tc_connect(tb_broker_port(s->broker), "watcher");
    assert_non_null(s->watcher);
    assert_int_equal(tc_subscribe(s->watcher, "status/#", 1), 1);
}

static void expect_message(state_t *s, const char *topic, const char *payload)
{
    tc_message_t m;
    assert_true(tc_wait_message(s->watcher, topic, MF_WAIT_MS, &m));
    assert_string_equal(m.payload, payload);
    tc_message_free(&m);
}

/* ---- credentials ----------------------------------------------------------------------------- */

static void test_credentials(void **st)
{
    state_t *s = *st;
    char cmd[256], extra[256], path[512];
    struct stat sb;

    snprintf(s->dir, sizeof(s->dir), "/tmp/pelix-pw-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    chmod(s->dir, 0755);
    snprintf(cmd, sizeof(cmd), "mosquitto_passwd -b -c %s/passwd user %s", s->dir, PASSWORD);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/passwd", s->dir);
    chmod(path, 0644);
    snprintf(extra, sizeof(extra), "allow_anonymous false\npassword_file %s/passwd\n", s->dir);
    start_broker(s, extra);
    int port = tb_broker_port(s->broker);

    char *good = mf_create(&s->fx, port, "username", "user", "password", PASSWORD, NULL);
    char *bad = mf_create(&s->fx, port, "username", "user", "password", "wrong-guess",
                          "reconnect_min", "1", "reconnect_max", "1", NULL);
    char *bad5 = mf_create(&s->fx, port, "username", "user", "password", "wrong-guess", "protocol",
                           "5", NULL);
    assert_true(mf_wait_connection(&s->fx, good, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->broker, "not authorised", 2, MF_WAIT_MS)); /* retried */
    assert_int_equal(mf_count_connections(&s->fx, bad), 0);
    /* The broker logs its refusal before the service reads the CONNACK. */
    const char *refused = "connection refused: Connection Refused: not authorised";
    for (int i = 0; i < MF_WAIT_MS / 100 && !mf_log_count(&s->fx, refused); i++) {
        usleep(100 * 1000);
    }
    assert_true(mf_log_count(&s->fx, refused) >= 1);
    /* MQTT 5: the reason code, said as such. */
    for (int i = 0; i < MF_WAIT_MS / 100 && !mf_log_count(&s->fx, "refused: Not authorized"); i++) {
        usleep(100 * 1000);
    }
    assert_int_equal(mf_count_connections(&s->fx, bad5), 0);
    assert_true(mf_log_count(&s->fx, "connection refused: Not authorized") >= 1);
    free(bad5);
    /* A password alone is refused with its reason; no connection is made. */
    char *alone = mf_create(&s->fx, port, "password", PASSWORD, NULL);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(mf_count_connections(&s->fx, alone), 0);
    assert_true(mf_log_count(&s->fx, "password: no username") >= 1);
    /* Never shown: not in a log line, not in a connection service's properties. */
    assert_int_equal(mf_log_count(&s->fx, PASSWORD), 0);
    assert_int_equal(mf_log_count(&s->fx, "wrong-guess"), 0);
    /* Files holding a password are 0600. */
    snprintf(path, sizeof(path), "%s/%s.config.js", s->fx.folder, good);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    free(good);
    free(bad);
    free(alone);
}

/* ---- birth, close, will ---------------------------------------------------------------------- */

#define MESSAGES                                                                                   \
    "birth_topic", "status/up", "birth_payload", "online", "birth_qos", "1", "close_topic",        \
        "status/down", "close_payload", "bye", "close_qos", "1", "will_topic", "status/lost",      \
        "will_payload", "gone", "will_qos", "1"

static void test_birth_and_close(void **st)
{
    state_t *s = *st;

    start_broker(s, NULL);
    watch(s);
    char *pid = mf_create(&s->fx, tb_broker_port(s->broker), MESSAGES, NULL);
    long id = mf_wait_connection(&s->fx, pid, MF_WAIT_MS);
    assert_true(id > 0);
    expect_message(s, "status/up", "online");
    assert_true(tb_broker_wait_log(s->broker, "Will message specified", 1, MF_WAIT_MS));

    /* A new birth payload applies without reconnecting: same service, one CONNECT. */
    int connects = tb_broker_log_contains(s->broker, "New client connected");
    mf_update(&s->fx, pid, tb_broker_port(s->broker), MESSAGES, "birth_payload", "online-2", NULL);
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(tb_broker_log_contains(s->broker, "New client connected"), connects);
    assert_int_equal(mf_wait_connection(&s->fx, pid, MF_WAIT_MS), id);

    /* Deleting it is a graceful stop: the close message, and no will. */
    mf_delete(&s->fx, pid);
    expect_message(s, "status/down", "bye");
    assert_true(mf_wait_no_connection(&s->fx, pid, MF_WAIT_MS));
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(tc_count(s->watcher, "status/lost"), 0);
    free(pid);
}

static void test_will_and_birth_again(void **st)
{
    state_t *s = *st;

    start_broker(s, NULL);
    watch(s);
    char *pid = mf_create(&s->fx, tb_broker_port(s->broker), MESSAGES, "client_id", "twin",
                          "reconnect_min", "1", "reconnect_max", "1", NULL);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    expect_message(s, "status/up", "online");
    /* Another client with its id takes the session over: the broker drops the service's
     * connection without a DISCONNECT and publishes its will; the service connects again (its
     * birth again), which in turn drops the twin. */
    tc_client_t *twin = tc_connect(tb_broker_port(s->broker), "twin");
    assert_non_null(twin);
    expect_message(s, "status/lost", "gone");
    expect_message(s, "status/up", "online"); /* the first was consumed above */
    tc_disconnect(twin);
    free(pid);
}

/* ---- protocol and session -------------------------------------------------------------------- */

static void test_protocol_and_session(void **st)
{
    state_t *s = *st;

    start_broker(s, NULL);
    int port = tb_broker_port(s->broker);
    char *v5 = mf_create(&s->fx, port, "protocol", "5", "client_id", "v5-client", NULL);
    char *kept = mf_create(&s->fx, port, "clean_session", "false", "client_id", "kept-client",
                           "max_inflight", "100", NULL);
    assert_true(mf_wait_connection(&s->fx, v5, MF_WAIT_MS) > 0);
    assert_true(mf_wait_connection(&s->fx, kept, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->broker, "as v5-client (p5, c1", 1, MF_WAIT_MS));
    assert_true(tb_broker_wait_log(s->broker, "as kept-client (p2, c0", 1, MF_WAIT_MS));

    /* Refused with their reason, no connection. */
    char *bad1 = mf_create(&s->fx, port, "protocol", "6", NULL);
    char *bad2 = mf_create(&s->fx, port, "will_topic", "a/+", NULL);
    char *bad3 = mf_create(&s->fx, port, "birth_payload", "x", NULL);
    usleep(MF_QUIET_MS * 1000);
    assert_true(mf_log_count(&s->fx, "protocol: \"6\" is not 3.1.1, 5 or 3.1") >= 1);
    assert_true(mf_log_count(&s->fx, "will_topic:") >= 1);
    assert_true(mf_log_count(&s->fx, "birth_payload: no birth_topic") >= 1);
    assert_int_equal(mf_count_connections(&s->fx, bad1) + mf_count_connections(&s->fx, bad2) +
                         mf_count_connections(&s->fx, bad3),
                     0);
    /* Out of its range: the schema refuses the update itself. */
    pelix_configuration_t *c;
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_props_t *p = pelix_props_new();
    assert_int_equal(
        pelix_configadmin_create_factory_configuration(s->fx.ca, PELIX_MQTT_FACTORY_PID, &c, NULL),
        0);
    pelix_props_set_string(p, "host", "127.0.0.1");
    pelix_props_set_string(p, "max_inflight", "0");
    assert_int_equal(pelix_configuration_update(c, p, &err), PELIX_E_RANGE);
    assert_non_null(strstr(err.text, "max_inflight"));
    pelix_configuration_unref(c);
    free(v5);
    free(kept);
    free(bad1);
    free(bad2);
    free(bad3);
}

/* ---- MQTT 5 session expiry ------------------------------------------------------------------ */

/* Messages of a listener that came through the connection `pid`. */
static size_t count_from(mf_listener_t *l, const char *pid)
{
    size_t n = 0;

    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->count; i++) {
        n += l->msgs[i].connection && strcmp(l->msgs[i].connection, pid) == 0;
    }
    pthread_mutex_unlock(&l->lock);
    return n;
}

#define SHORT                                                                                      \
    "protocol", "5", "clean_session", "false", "client_id", "exp-short", "session_expiry", "1"
#define KEPT "protocol", "5", "clean_session", "false", "client_id", "exp-kept"

/* Two MQTT 5 sessions kept on the broker, one for a second, one (the default of clean_session
 * false) for ever: while both are away, the broker expires the first; a message published then
 * reaches only the second when both are back. */
static void test_session_expiry(void **st)
{
    state_t *s = *st;
    const char *t[] = {"exp/t"};
    mf_listener_t l = {0};

    start_broker(s, NULL);
    int port = tb_broker_port(s->broker);
    mf_listen(&s->fx, &l, t, 1, false, 1);
    char *shrt = mf_create(&s->fx, port, SHORT, NULL);
    char *kept = mf_create(&s->fx, port, KEPT, NULL);
    assert_true(mf_wait_connection(&s->fx, shrt, MF_WAIT_MS) > 0);
    assert_true(mf_wait_connection(&s->fx, kept, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->broker, "\texp/t (QoS 1)", 2, MF_WAIT_MS));

    mf_update(&s->fx, shrt, port, SHORT, "enabled", "false", NULL);
    mf_update(&s->fx, kept, port, KEPT, "enabled", "false", NULL);
    assert_true(mf_wait_no_connection(&s->fx, shrt, MF_WAIT_MS));
    assert_true(mf_wait_no_connection(&s->fx, kept, MF_WAIT_MS));
    assert_true(tb_broker_wait_log(s->broker, "Expiring client exp-short", 1, MF_WAIT_MS));
    tc_client_t *pub = tc_connect(port, "exp-pub");
    assert_non_null(pub);
    assert_int_equal(tc_publish(pub, "exp/t", "while away", 10, 1, false), 0);
    tc_disconnect(pub);

    mf_update(&s->fx, shrt, port, SHORT, NULL);
    mf_update(&s->fx, kept, port, KEPT, NULL);
    assert_true(mf_wait_connection(&s->fx, shrt, MF_WAIT_MS) > 0);
    assert_true(mf_wait_connection(&s->fx, kept, MF_WAIT_MS) > 0);
    assert_true(mf_listener_wait(&l, "exp/t", 1, MF_WAIT_MS));
    usleep(MF_QUIET_MS * 1000);
    assert_int_equal(count_from(&l, kept), 1);
    assert_int_equal(count_from(&l, shrt), 0);
    assert_int_equal(tb_broker_log_contains(s->broker, "Expiring client exp-kept"), 0);

    /* MQTT 3 has none: refused with its reason. */
    char *bad = mf_create(&s->fx, port, "session_expiry", "60", NULL);
    usleep(MF_QUIET_MS * 1000);
    assert_true(mf_log_count(&s->fx, "session_expiry: needs protocol 5") >= 1);
    assert_int_equal(mf_count_connections(&s->fx, bad), 0);
    mf_unlisten(&l);
    mf_listener_destroy(&l);
    free(shrt);
    free(kept);
    free(bad);
}

/* ---- a persistent session across a broker restart -------------------------------------------- */

/* Starts the broker with persistence in a new folder `dir` (a mkdtemp template). Its queues for
 * sessions away have no bound: what it accepted, it keeps. */
static void start_persistent_broker(state_t *s, char *dir)
{
    char extra[160];

    assert_non_null(mkdtemp(dir));
    snprintf(extra, sizeof(extra),
             "persistence true\npersistence_location %s/\nmax_queued_messages 0\n", dir);
    start_broker(s, extra);
}

static void remove_persistence(const char *dir)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/mosquitto.db", dir);
    unlink(path);
    rmdir(dir);
}

/* Publishes "1" .. "n" on `topic` at QoS 1 from a client of the broker (each acknowledged). */
static void publish_numbered(state_t *s, const char *topic, int n)
{
    tc_client_t *pub = tc_connect(tb_broker_port(s->broker), NULL);

    assert_non_null(pub);
    for (int i = 1; i <= n; i++) {
        char payload[16];
        snprintf(payload, sizeof(payload), "%d", i);
        assert_int_equal(tc_publish(pub, topic, payload, strlen(payload), 1, false), 0);
    }
    tc_disconnect(pub);
}

/* The listener got "1" .. "n" on `topic`, once each, in order (and nothing more meanwhile). */
static void assert_numbered(mf_listener_t *l, const char *topic, int n)
{
    assert_true(mf_listener_wait(l, topic, (size_t)n, MF_WAIT_MS * 2));
    usleep(MF_QUIET_MS * 1000);
    pthread_mutex_lock(&l->lock);
    assert_int_equal(l->count, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(strtol(l->msgs[i].payload, NULL, 10), i + 1);
    }
    pthread_mutex_unlock(&l->lock);
}

#define EXACT "clean_session", "false", "client_id", "exact-1", "reconnect_min", "1"
#define EXACT_N 300

/* A broker with persistence restarted while the persistent session (clean_session false) is
 * away: the QoS 1 messages it accepted for the session meanwhile survive the restart and reach
 * the listener once each, in order, when the connection comes back. */
static void test_session_across_broker_restart(void **st)
{
    state_t *s = *st;
    const char *t[] = {"exact/#"};
    mf_listener_t l = {0};
    char dir[] = "/tmp/pelix-persist-XXXXXX";

    start_persistent_broker(s, dir);
    int port = tb_broker_port(s->broker);
    mf_listen(&s->fx, &l, t, 1, false, 1);
    char *pid = mf_create(&s->fx, port, EXACT, NULL);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->broker, "\texact/# (QoS 1)", 1, MF_WAIT_MS));
    mf_update(&s->fx, pid, port, EXACT, "enabled", "false", NULL);
    assert_true(mf_wait_no_connection(&s->fx, pid, MF_WAIT_MS));

    publish_numbered(s, "exact/t", EXACT_N);
    assert_int_equal(tb_broker_stop(s->broker), 0); /* SIGTERM: the broker saves its sessions */
    assert_int_equal(tb_broker_restart(s->broker), 0);

    mf_update(&s->fx, pid, port, EXACT, NULL);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    assert_numbered(&l, "exact/t", EXACT_N);
    mf_unlisten(&l);
    mf_listener_destroy(&l);
    free(pid);
    remove_persistence(dir);
}

#define FLY                                                                                        \
    "clean_session", "false", "client_id", "fly-1", "reconnect_min", "1", "reconnect_max", "1"
#define FLY_N 100

/* The same broker restarted while the session is connected through a stalled link: the QoS 1
 * messages it had sent (in flight, never read by the service) and those queued behind them are
 * sent again on the resumed session and arrive once each, in order. */
static void test_inflight_across_broker_restart(void **st)
{
    state_t *s = *st;
    const char *t[] = {"fly/#"};
    mf_listener_t l = {0};
    char dir[] = "/tmp/pelix-persist-XXXXXX";

    start_persistent_broker(s, dir);
    tp_proxy_t *proxy = tp_proxy_start(tb_broker_port(s->broker));
    assert_non_null(proxy);
    mf_listen(&s->fx, &l, t, 1, false, 1);
    char *pid = mf_create(&s->fx, tp_proxy_port(proxy), FLY, NULL);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->broker, "\tfly/# (QoS 1)", 1, MF_WAIT_MS));

    tp_proxy_stall(proxy, true);
    publish_numbered(s, "fly/t", FLY_N);
    assert_int_equal(tb_broker_stop(s->broker), 0);
    tp_proxy_cut(proxy); /* what the broker had sent is gone with the link */
    tp_proxy_stall(proxy, false);
    assert_int_equal(mf_listener_count(&l, "fly/t"), 0);
    assert_int_equal(tb_broker_restart(s->broker), 0);

    assert_numbered(&l, "fly/t", FLY_N);
    assert_true(tb_broker_log_contains(s->broker, "Sending PUBLISH to fly-1 (d1") > 0);
    mf_unlisten(&l);
    mf_listener_destroy(&l);
    mf_delete(&s->fx, pid);
    tp_proxy_free(proxy);
    free(pid);
    remove_persistence(dir);
}

/* ---- repeated restarts under a continuous flow ----------------------------------------------- */

#define FLOW_N 3000
#define FLOW_RESTARTS 5

/* A publisher that never gives up: message i is published (and acknowledged) before i + 1; when
 * the broker goes away mid-publish, i is published again once it is back. Only those messages may
 * exist twice at the broker (it may have stored the first copy): they are marked in `retried`. */
typedef struct feeder {
    int port, qos;
    const char *topic;
    char retried[FLOW_N + 1];
    int acked; /* messages acknowledged so far */
    pthread_mutex_t lock;
} feeder_t;

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool open = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return open;
}

static void *feed(void *arg)
{
    feeder_t *f = arg;
    tc_client_t *pub = NULL;

    for (int i = 1; i <= FLOW_N;) {
        if (!pub && (!port_open(f->port) || !(pub = tc_connect(f->port, NULL)))) {
            usleep(20 * 1000); /* the broker is restarting */
            continue;
        }
        char payload[16];
        snprintf(payload, sizeof(payload), "%d", i);
        if (tc_publish(pub, f->topic, payload, strlen(payload), f->qos, false) == 0) {
            pthread_mutex_lock(&f->lock);
            f->acked = i++;
            pthread_mutex_unlock(&f->lock);
            usleep(300);
        } else {
            f->retried[i] = 1;
            tc_disconnect(pub);
            pub = NULL;
        }
    }
    if (pub) {
        tc_disconnect(pub);
    }
    return NULL;
}

/* What the broker's log shows of its PUBLISH packets to `client_id` sent again (DUP): all of
 * them, and those sent again after their PUBREL (MQTT 3.1.1 4.3.3: a sender "MUST NOT re-send
 * the PUBLISH once it has sent the corresponding PUBREL"). */
static void broker_resends(state_t *s, const char *client_id, int *ret_dup, int *ret_after_pubrel)
{
    static char pubrel[65536];
    char path[160], line[512], rel[64], dup[64];
    FILE *f;

    snprintf(path, sizeof(path), "%s/mosquitto.log", tb_broker_dir(s->broker));
    snprintf(rel, sizeof(rel), "Sending PUBREL to %s (m", client_id);
    snprintf(dup, sizeof(dup), "Sending PUBLISH to %s (d1, ", client_id);
    memset(pubrel, 0, sizeof(pubrel));
    *ret_dup = *ret_after_pubrel = 0;
    assert_non_null(f = fopen(path, "r"));
    while (fgets(line, sizeof(line), f)) {
        const char *at, *m;
        if ((at = strstr(line, rel))) {
            pubrel[strtol(at + strlen(rel), NULL, 10) & 0xffff] = 1;
        } else if ((at = strstr(line, dup)) && (m = strstr(at, ", m"))) {
            (*ret_dup)++;
            *ret_after_pubrel += pubrel[strtol(m + 3, NULL, 10) & 0xffff];
        }
    }
    fclose(f);
}

static int feeder_acked(feeder_t *f)
{
    pthread_mutex_lock(&f->lock);
    int n = f->acked;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* A broker with persistence stopped (SIGTERM) and started again FLOW_RESTARTS times while QoS
 * `qos` messages flow from a publisher through it to a listener of a persistent session. Every
 * message arrives, first copies in the order published. A message arrives twice only when the
 * broker sent it twice: the publisher sent it again, or the broker sent it again (DUP) on the
 * resumed session. At QoS 2 only a resend after its PUBREL, which MQTT forbids and mosquitto
 * 2.0.11 does after a restart for the flows beyond its in-flight window, may double one. */
static void flow_across_restarts(state_t *s, int qos)
{
    char topic[32], filter[32], dir[] = "/tmp/pelix-persist-XXXXXX";
    mf_listener_t l = {0};
    feeder_t *f = calloc(1, sizeof(*f));
    pthread_t thread;

    assert_non_null(f);
    snprintf(topic, sizeof(topic), "flow%d/t", qos);
    snprintf(filter, sizeof(filter), "flow%d/#", qos);
    const char *t[] = {filter};
    start_persistent_broker(s, dir);
    int port = tb_broker_port(s->broker);
    mf_listen(&s->fx, &l, t, 1, false, qos);
    const char *cid = qos == 2 ? "flow-2" : "flow-1";
    char *pid = mf_create(&s->fx, port, "clean_session", "false", "client_id", cid, "reconnect_min",
                          "1", "reconnect_max", "1", NULL);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    assert_true(tb_broker_wait_log(s->broker, filter, 1, MF_WAIT_MS));

    f->port = port;
    f->qos = qos;
    f->topic = topic;
    pthread_mutex_init(&f->lock, NULL);
    assert_int_equal(pthread_create(&thread, NULL, feed, f), 0);
    for (int r = 1; r <= FLOW_RESTARTS; r++) {
        /* Restarts spread over the flow, each while messages are on their way. */
        for (int i = 0; i < MF_WAIT_MS / 5 && feeder_acked(f) < r * FLOW_N / (FLOW_RESTARTS + 1);
             i++) {
            usleep(5 * 1000);
        }
        assert_true(feeder_acked(f) < FLOW_N);
        assert_int_equal(tb_broker_stop(s->broker), 0);
        assert_int_equal(tb_broker_restart(s->broker), 0);
    }
    assert_int_equal(pthread_join(thread, NULL), 0);

    /* Every message, then nothing more for a while. */
    assert_true(mf_listener_wait(&l, topic, FLOW_N, MF_WAIT_MS * 3));
    usleep(MF_QUIET_MS * 1000);
    static int seen[FLOW_N + 1];
    int retried = 0, doubled = 0, unexplained = 0, last = 0, disorder = 0, missing = 0;
    memset(seen, 0, sizeof(seen));
    pthread_mutex_lock(&l.lock);
    for (size_t k = 0; k < l.count; k++) {
        long i = strtol(l.msgs[k].payload, NULL, 10);
        assert_true(i >= 1 && i <= FLOW_N);
        if (seen[i]++) {
            doubled++;
            unexplained += !f->retried[i];
        } else {
            disorder += i < last;
            last = (int)i;
        }
    }
    pthread_mutex_unlock(&l.lock);
    for (int i = 1; i <= FLOW_N; i++) {
        missing += !seen[i];
        retried += f->retried[i];
    }
    int resent, after_pubrel;
    broker_resends(s, cid, &resent, &after_pubrel);
    printf("QoS %d: %d messages, %d restarts: %d published again, %d sent again by the broker "
           "(%d after their PUBREL), %d arrived twice (%d not published again), %d missing, %d "
           "out of order\n",
           qos, FLOW_N, FLOW_RESTARTS, retried, resent, after_pubrel, doubled, unexplained, missing,
           disorder);
    assert_int_equal(missing, 0);
    assert_int_equal(disorder, 0);
    assert_true(unexplained <= (qos == 2 ? after_pubrel : resent));

    mf_unlisten(&l);
    mf_listener_destroy(&l);
    mf_delete(&s->fx, pid);
    free(pid);
    pthread_mutex_destroy(&f->lock);
    free(f);
    remove_persistence(dir);
}

static void test_qos1_flow_across_restarts(void **st)
{
    flow_across_restarts(*st, 1);
}

static void test_qos2_flow_across_restarts(void **st)
{
    flow_across_restarts(*st, 2);
}

/* ---- MQTT 5 message properties --------------------------------------------------------------- */

/* Keeps what the first message on a topic carried. */
typedef struct seen {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int count;
    bool had_props;
    char user[2][64];
    char content_type[64], response_topic[64], correlation[16];
    size_t correlation_len;
    uint32_t expiry;
} seen_t;

static void on_v5(void *handle, const pelix_mqtt_message_t *m)
{
    seen_t *s = handle;
    const pelix_mqtt_properties_t *p = m->properties;

    pthread_mutex_lock(&s->lock);
    if (s->count++ == 0 && p) {
        s->had_props = true;
        for (size_t i = 0; i < p->nuser && i < 2; i++) {
            snprintf(s->user[i], sizeof(s->user[i]), "%s=%s", p->user[i].name, p->user[i].value);
        }
        snprintf(s->content_type, sizeof(s->content_type), "%s",
                 p->content_type ? p->content_type : "");
        snprintf(s->response_topic, sizeof(s->response_topic), "%s",
                 p->response_topic ? p->response_topic : "");
        s->correlation_len = p->correlation_len < 16 ? p->correlation_len : 16;
        if (p->correlation_data) {
            memcpy(s->correlation, p->correlation_data, s->correlation_len);
        }
        s->expiry = p->message_expiry;
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void wait_seen(seen_t *s)
{
    pthread_mutex_lock(&s->lock);
    for (int i = 0; s->count == 0 && i < MF_WAIT_MS / 100; i++) {
        pthread_mutex_unlock(&s->lock);
        usleep(100 * 1000);
        pthread_mutex_lock(&s->lock);
    }
    assert_true(s->count > 0);
    pthread_mutex_unlock(&s->lock);
}

static long listen_seen(state_t *s, seen_t *seen, pelix_mqtt_listener_t *svc, const char *topic)
{
    const char *spec[] = {PELIX_MQTT_LISTENER_SPEC};
    pelix_props_t *p = pelix_props_new();
    long id = 0;

    pthread_mutex_init(&seen->lock, NULL);
    pthread_cond_init(&seen->cond, NULL);
    svc->handle_mqtt_message = on_v5;
    svc->handle = seen;
    pelix_props_set_string(p, PELIX_MQTT_TOPICS, topic);
    assert_int_equal(pelix_registry_register(s->fx.reg, spec, 1, svc, p, &id), 0);
    return id;
}

static void test_v5_properties(void **st)
{
    state_t *s = *st;
    static const pelix_mqtt_user_property_t user[] = {{"site", "lyon"},
                                                      {"unit", "\xc2\xb0"
                                                               "C"}};
    const pelix_mqtt_properties_t props = {
        user, 2, "application/json", "reply/here", "\x01\x00id", 4, 3600};
    seen_t v5 = {0}, v3 = {0};
    pelix_mqtt_listener_t l5, l3;
    pelix_mqtt_publish_info_t info;

    start_broker(s, NULL);
    int port = tb_broker_port(s->broker);
    char *p5 = mf_create(&s->fx, port, "protocol", "5", "client_id", "props-v5", NULL);
    assert_true(mf_wait_connection(&s->fx, p5, MF_WAIT_MS) > 0);
    long id5 = listen_seen(s, &v5, &l5, "v5/#");
    assert_true(tb_broker_wait_log(s->broker, "\tv5/# (QoS", 1, MF_WAIT_MS));

    /* Through the connection service, out and back on the same MQTT 5 connection. */
    pelix_mqtt_connection_t *c = mf_connection(&s->fx, p5);
    assert_non_null(c);
    assert_int_equal(c->publish_props(c->handle, "v5/a", "{}", 2, 1, false, &props, &info), 0);
    wait_seen(&v5);
    assert_true(v5.had_props);
    assert_string_equal(v5.user[0], "site=lyon");
    assert_string_equal(v5.user[1], "unit=\xc2\xb0"
                                    "C");
    assert_string_equal(v5.content_type, "application/json");
    assert_string_equal(v5.response_topic, "reply/here");
    assert_int_equal(v5.correlation_len, 4);
    assert_memory_equal(v5.correlation, "\x01\x00id", 4);
    assert_true(v5.expiry > 0 && v5.expiry <= 3600);
    /* Refused before sending: a response topic with a wildcard. */
    pelix_mqtt_properties_t bad = {NULL, 0, NULL, "reply/#", NULL, 0, 0};
    assert_int_equal(c->publish_props(c->handle, "v5/b", "x", 1, 0, false, &bad, &info),
                     PELIX_E_TOPIC);

    /* A 3.1.1 connection: the factory's properties are ignored there, the message goes. */
    char *p3 = mf_create(&s->fx, port, "client_id", "props-v3", NULL);
    assert_true(mf_wait_connection(&s->fx, p3, MF_WAIT_MS) > 0);
    long id3 = listen_seen(s, &v3, &l3, "v3/#");
    assert_true(tb_broker_wait_log(s->broker, "\tv3/# (QoS", 2, MF_WAIT_MS)); /* on both */
    pelix_mqtt_factory_t *f = mf_factory(&s->fx);
    assert_int_equal(f->publish_props(f->handle, "v3/a", "x", 1, 1, false, &props, p3, NULL, NULL),
                     0);
    wait_seen(&v3);
    assert_false(v3.had_props);
    pelix_registry_unregister(s->fx.reg, id5);
    pelix_registry_unregister(s->fx.reg, id3);
    pthread_mutex_destroy(&v5.lock);
    pthread_cond_destroy(&v5.cond);
    pthread_mutex_destroy(&v3.lock);
    pthread_cond_destroy(&v3.cond);
    free(p5);
    free(p3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_birth_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_will_and_birth_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_and_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_across_broker_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_across_broker_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos1_flow_across_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos2_flow_across_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v5_properties, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
