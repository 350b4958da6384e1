/*
 * Memory of the MQTT service (goals G8a and G8c), against one private broker.
 *
 * G8a, memory per broker connection <= 2 x libmosquitto's idle cost per connection.
 *   Baseline: a forked child opens C = 200 idle libmosquitto clients (mosquitto_new +
 *   mosquitto_connect, non-threaded loop over poll until every CONNACK came back); its cost per
 *   connection is (VmRSS after - VmRSS before the first client, after mosquitto_lib_init) / C.
 *   Service: a forked child starts the registry, ConfigAdmin (in memory) and the MQTT service
 *   with no configuration (its empty start, subtracted), then creates 200 `mqtt.connector`
 *   configurations for the same broker and waits until 200 pelix.mqtt.connection services exist;
 *   (VmRSS then - VmRSS of the empty start) / C. Both sides settle 300 ms before the last reading.
 *   Sides alternate (A B B A ...), 3 pairs (BENCH_QUICK=1: 1), medians of each; ratio = service
 *   per connection / baseline per connection.
 *
 * G8c, RSS during a 200 000-message burst (QUICK: 50 000) into a slow listener <= 1.5 x steady
 *   state (the listener queues are bounded: pelix_mqtt_options_t listener_queue_messages, default
 *   1000 messages / 64 MiB; the excess is dropped and counted, which is expected).
 *   A forked service child with one connection and one listener whose callback sleeps 1 ms per
 *   message. Steady state: a libmosquitto publisher (its own forked process, QoS 0, 64 bytes with
 *   the sequence number and send time in the first 16) sends a few thousand messages at a gentle
 *   500 msg/s, the listener gets them all; the steady RSS is the median of 10 readings of the
 *   child's VmRSS then. Burst: the same publisher sends as fast as it can; the parent reads the
 *   child's VmRSS every 10 ms during the burst and 3 s after (QUICK: 2 s). ratio = peak / steady.
 *   The detail gives the listener's drop count (pelix_mqtt_stats) and the child's VmHWM.
 *
 * Every child runs under its own deadline (alarm) and is killed and reaped by the parent; the
 * broker is stopped by PID at the end.
 */
#include <errno.h>
#include <mosquitto.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pelix/configadmin.h>
#include <pelix/mqtt.h>
#include <pelix/registry.h>

#include "bench_util.h"

#define PAYLOAD BU_PAYLOAD
#define NCONN 200
#define CHILD_DEADLINE_S 90
#define SLOW_TOPIC "bench/memory/slow"
#define PROBE UINT64_MAX
#define MAX_PAIRS 8

/* The service on a fresh registry and in-memory ConfigAdmin; warnings and errors on stderr. */
typedef struct svc {
    pelix_registry_t *reg;
    pelix_configadmin_t *ca;
    pelix_mqtt_t *mqtt;
} svc_t;

static int svc_start(svc_t *s)
{
    pelix_logger_t logger = {bu_log_stderr, NULL, PELIX_LOG_WARNING};
    pelix_configadmin_options_t ca_opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_mqtt_options_t opts = PELIX_MQTT_OPTIONS_INIT;

    ca_opts.logger = logger;
    opts.logger = logger;
    s->reg = pelix_registry_new();
    if (!s->reg || pelix_configadmin_new(s->reg, &ca_opts, &s->ca, NULL) < 0 ||
        pelix_mqtt_new(s->reg, s->ca, &opts, &s->mqtt) < 0) {
        return -1;
    }
    return 0;
}

static int svc_configure(svc_t *s, int port)
{
    pelix_configuration_t *cfg;
    pelix_props_t *props = pelix_props_new();

    if (!props || pelix_props_set_string(props, "host", "127.0.0.1") < 0 ||
        pelix_props_set_long(props, "port", port) < 0 ||
        pelix_configadmin_create_factory_configuration(s->ca, PELIX_MQTT_FACTORY_PID, &cfg, NULL) <
            0) {
        return -1;
    }
    int rc = pelix_configuration_update(cfg, props, NULL);
    pelix_configuration_unref(cfg);
    return rc < 0 ? -1 : 0;
}

static bool svc_wait_connections(svc_t *s, size_t n, uint64_t deadline)
{
    while (bu_count_services(s->reg, PELIX_MQTT_CONNECTION_SPEC) < n && bu_now_ns() < deadline) {
        bu_sleep_ms(5);
    }
    return bu_count_services(s->reg, PELIX_MQTT_CONNECTION_SPEC) >= n;
}

/* Forks `fn(arg)` under the child deadline; the child _exits (no atexit handler: the brokers
 * belong to the parent). */
static pid_t spawn(int (*fn)(void *), void *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_DEADLINE_S);
        _exit(fn(arg));
    }
    return pid;
}

/* Reads exactly `len` bytes from `fd` within `timeout_ms`; true if so. */
static bool read_full(int fd, void *buf, size_t len, long timeout_ms)
{
    uint64_t deadline = bu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    size_t got = 0;

    while (got < len) {
        uint64_t now = bu_now_ns();
        struct pollfd pfd = {fd, POLLIN, 0};
        if (now >= deadline || poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) <= 0) {
            return false;
        }
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r <= 0) {
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

static void reap(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* ---- G8a: idle connections ------------------------------------------------------------------ */

typedef struct conn_report {
    int ok;
    long connections;
    long rss_before_kb, rss_after_kb;
    double per_conn_kb;
} conn_report_t;

typedef struct conn_arg {
    int port;
    int out; /* pipe to the parent */
} conn_arg_t;

static void lm_on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    *(bool *)obj = rc == 0;
}

/* The non-threaded loop over many clients: poll, then loop_read / loop_write / loop_misc. */
static int lm_pump(struct mosquitto **m, struct pollfd *pfd, int n, int timeout_ms)
{
    for (int i = 0; i < n; i++) {
        pfd[i].fd = mosquitto_socket(m[i]);
        pfd[i].events = (short)(POLLIN | (mosquitto_want_write(m[i]) ? POLLOUT : 0));
        pfd[i].revents = 0;
    }
    if (poll(pfd, (nfds_t)n, timeout_ms) < 0 && errno != EINTR) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if ((pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) &&
            mosquitto_loop_read(m[i], 1) != MOSQ_ERR_SUCCESS) {
            return -1;
        }
        if ((pfd[i].revents & POLLOUT) && mosquitto_loop_write(m[i], 1) != MOSQ_ERR_SUCCESS) {
            return -1;
        }
        mosquitto_loop_misc(m[i]);
    }
    return 0;
}

static int lm_connections(void *arg)
{
    conn_arg_t *a = arg;
    static struct mosquitto *m[NCONN];
    static struct pollfd pfd[NCONN];
    static bool connected[NCONN];
    conn_report_t r = {0};
    uint64_t deadline = bu_now_ns() + 30000000000u;
    long n = 0;

    mosquitto_lib_init();
    r.rss_before_kb = bu_rss_kb();
    for (int i = 0; i < NCONN; i++) {
        if (!(m[i] = mosquitto_new(NULL, true, &connected[i]))) {
            goto report;
        }
        mosquitto_connect_callback_set(m[i], lm_on_connect);
        if (mosquitto_connect(m[i], "127.0.0.1", a->port, 60) != MOSQ_ERR_SUCCESS) {
            goto report;
        }
    }
    do {
        n = 0;
        for (int i = 0; i < NCONN; i++) {
            n += connected[i];
        }
    } while (n < NCONN && bu_now_ns() < deadline && lm_pump(m, pfd, NCONN, 100) == 0);
    /* Same settle time as the service; keep serving the clients meanwhile. */
    for (int i = 0; i < 3; i++) {
        lm_pump(m, pfd, NCONN, 100);
    }
    r.rss_after_kb = bu_rss_kb();
    r.connections = n;
    r.ok = n == NCONN;
    r.per_conn_kb = (double)(r.rss_after_kb - r.rss_before_kb) / NCONN;
report:
    return write(a->out, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1;
}

static int svc_connections(void *arg)
{
    conn_arg_t *a = arg;
    conn_report_t r = {0};
    uint64_t deadline = bu_now_ns() + 30000000000u;
    svc_t s = {0};

    if (svc_start(&s) < 0) {
        goto report;
    }
    bu_sleep_ms(300); /* its threads started and idle */
    r.rss_before_kb = bu_rss_kb();
    for (int i = 0; i < NCONN; i++) {
        if (svc_configure(&s, a->port) < 0) {
            goto report;
        }
    }
    bool all = svc_wait_connections(&s, NCONN, deadline);
    bu_sleep_ms(300);
    r.rss_after_kb = bu_rss_kb();
    r.connections = (long)bu_count_services(s.reg, PELIX_MQTT_CONNECTION_SPEC);
    r.ok = all && r.connections == NCONN;
    r.per_conn_kb = (double)(r.rss_after_kb - r.rss_before_kb) / NCONN;
report:
    /* The parent kills this process: the service is not torn down. */
    return write(a->out, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1;
}

static conn_report_t conn_run(bool svc, int port)
{
    conn_report_t r = {0};
    int out[2];

    if (pipe(out) < 0) {
        return r;
    }
    conn_arg_t a = {port, out[1]};
    pid_t pid = spawn(svc ? svc_connections : lm_connections, &a);
    close(out[1]);
    if (pid < 0 || !read_full(out[0], &r, sizeof(r), (CHILD_DEADLINE_S + 10) * 1000L)) {
        memset(&r, 0, sizeof(r));
        fprintf(stderr, "  G8a: the %s child did not report\n", svc ? "service" : "libmosquitto");
    }
    reap(pid);
    close(out[0]);
    bu_run("\"scenario\": \"G8a\", \"impl\": \"%s\", \"connections\": %ld, \"ok\": %s, "
           "\"rss_before_kb\": %ld, \"rss_after_kb\": %ld, \"kb_per_connection\": %.2f",
           svc ? "service" : "libmosquitto", r.connections, r.ok ? "true" : "false",
           r.rss_before_kb, r.rss_after_kb, r.per_conn_kb);
    printf("  G8a  %-12s %s %ld/%d connected  RSS %ld -> %ld KiB  %.1f KiB/connection\n",
           svc ? "service" : "libmosquitto", r.ok ? "ok " : "BAD", r.connections, NCONN,
           r.rss_before_kb, r.rss_after_kb, r.per_conn_kb);
    fflush(stdout);
    return r;
}

static void goal_g8a(int port, bool quick)
{
    int npairs = quick ? 1 : 3;
    double lm[MAX_PAIRS], sv[MAX_PAIRS];
    size_t nlm = 0, nsv = 0;
    long bad = 0;

    for (int i = 0; i < npairs; i++) {
        bool first_svc = i % 2 == 1; /* A B, B A, ... */
        for (int k = 0; k < 2; k++) {
            bool svc = k == 0 ? first_svc : !first_svc;
            conn_report_t r = conn_run(svc, port);
            if (!r.ok) {
                bad++;
            } else if (svc) {
                sv[nsv++] = r.per_conn_kb;
            } else {
                lm[nlm++] = r.per_conn_kb;
            }
        }
    }
    double mlm = bu_median(lm, nlm), msv = bu_median(sv, nsv);
    bool valid = nlm && nsv && !bad && mlm > 0;
    bu_goal("G8a", valid ? msv / mlm : 99, 2.0, false,
            "RSS per idle broker connection (%d connections): service %.1f KiB vs libmosquitto "
            "%.1f KiB (medians of %zu/%zu runs, %ld invalid)",
            NCONN, msv, mlm, nsv, nlm, bad);
}

/* ---- G8c: burst into a slow listener -------------------------------------------------------- */

typedef struct pub_arg {
    int port;
    long n;
    long rate; /* msg/s, 0: as fast as it can */
} pub_arg_t;

/* A libmosquitto publisher, QoS 0, 64 B, non-threaded loop; ends once everything is written. */
static int publisher(void *arg)
{
    pub_arg_t *a = arg;
    struct mosquitto *m;
    unsigned char p[PAYLOAD];
    uint64_t start, deadline = bu_now_ns() + (uint64_t)(CHILD_DEADLINE_S - 5) * 1000000000u;

    mosquitto_lib_init();
    m = mosquitto_new(NULL, true, NULL);
    if (!m || mosquitto_connect(m, "127.0.0.1", a->port, 60) != MOSQ_ERR_SUCCESS) {
        return 1;
    }
    start = bu_now_ns();
    for (long i = 0; i < a->n; i++) {
        if (a->rate > 0) {
            uint64_t due = start + (uint64_t)i * 1000000000u / (uint64_t)a->rate;
            struct timespec ts = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        bu_payload(p, (uint64_t)i);
        if (mosquitto_publish(m, NULL, SLOW_TOPIC, PAYLOAD, p, 0, false) != MOSQ_ERR_SUCCESS) {
            return 1;
        }
        if (a->rate > 0 || (i & 255) == 255) {
            mosquitto_loop(m, 0, 1);
        }
    }
    while (mosquitto_want_write(m) && bu_now_ns() < deadline) {
        mosquitto_loop(m, 10, 1);
    }
    mosquitto_disconnect(m);
    mosquitto_loop(m, 10, 1);
    mosquitto_destroy(m);
    return 0;
}

typedef struct slow_cmd {
    char op; /* 'W': wait until `arg` messages were delivered; 'S': report; 'Q': report, stop */
    long arg;
} slow_cmd_t;

typedef struct slow_report {
    int ok;
    long delivered; /* listener calls, probes excluded */
    uint64_t dropped, queued, messages_in;
} slow_report_t;

typedef struct slow_arg {
    int port;
    int in, out; /* commands from the parent, reports to it */
} slow_arg_t;

static atomic_long slow_delivered;
static atomic_bool slow_probe_seen;

static void slow_on_message(void *handle, const pelix_mqtt_message_t *msg)
{
    uint64_t seq = 0;
    (void)handle;
    if (msg->len >= 8) {
        memcpy(&seq, msg->payload, 8);
    }
    if (seq == PROBE) {
        atomic_store(&slow_probe_seen, true);
        return;
    }
    atomic_fetch_add(&slow_delivered, 1);
    bu_sleep_ms(1); /* the slow listener */
}

static void slow_fill(svc_t *s, slow_report_t *r)
{
    pelix_mqtt_stats_t st = {0};
    r->delivered = atomic_load(&slow_delivered);
    if (pelix_mqtt_stats(s->mqtt, &st) == 0) {
        r->dropped = st.listener_dropped;
        r->queued = st.listener_queued;
        r->messages_in = st.messages_in;
    }
}

static int slow_service(void *arg)
{
    slow_arg_t *a = arg;
    static pelix_mqtt_listener_t listener = {slow_on_message, NULL};
    const char *spec[] = {PELIX_MQTT_LISTENER_SPEC};
    uint64_t deadline = bu_now_ns() + 20000000000u;
    slow_report_t r = {0};
    svc_t s = {0};
    slow_cmd_t cmd;

    pelix_props_t *lp = pelix_props_new();
    if (svc_start(&s) < 0 || !lp || pelix_props_set_string(lp, PELIX_MQTT_TOPICS, SLOW_TOPIC) < 0 ||
        pelix_registry_register(s.reg, spec, 1, &listener, lp, NULL) < 0 ||
        svc_configure(&s, a->port) < 0 || !svc_wait_connections(&s, 1, deadline) ||
        pelix_mqtt_sync(s.mqtt) < 0) {
        goto fail;
    }
    /* Subscribed once a probe comes back through the broker. */
    long *ids = NULL;
    size_t nf = 0;
    void *fsvc = NULL;
    if (pelix_registry_find(s.reg, PELIX_MQTT_FACTORY_SPEC, NULL, &ids, &nf, NULL) < 0 || nf != 1 ||
        pelix_registry_get_service(s.reg, ids[0], &fsvc) < 0) {
        free(ids);
        goto fail;
    }
    pelix_mqtt_factory_t *f = fsvc;
    unsigned char probe[PAYLOAD];
    bu_payload(probe, PROBE);
    while (!atomic_load(&slow_probe_seen) && bu_now_ns() < deadline) {
        f->publish(f->handle, SLOW_TOPIC, probe, PAYLOAD, 0, false, NULL, NULL, NULL);
        bu_sleep_ms(100);
    }
    pelix_registry_unget_service(s.reg, ids[0]);
    free(ids);
    if (!atomic_load(&slow_probe_seen)) {
        goto fail;
    }
    bu_sleep_ms(200); /* later probes delivered */
    r.ok = 1;
    slow_fill(&s, &r);
    if (write(a->out, &r, sizeof(r)) != (ssize_t)sizeof(r)) {
        return 1;
    }
    while (read_full(a->in, &cmd, sizeof(cmd), CHILD_DEADLINE_S * 1000L)) {
        if (cmd.op == 'W') {
            uint64_t until = bu_now_ns() + 30000000000u;
            while (atomic_load(&slow_delivered) < cmd.arg && bu_now_ns() < until) {
                bu_sleep_ms(5);
            }
            r.ok = atomic_load(&slow_delivered) >= cmd.arg;
        }
        slow_fill(&s, &r);
        if (write(a->out, &r, sizeof(r)) != (ssize_t)sizeof(r) || cmd.op == 'Q') {
            break;
        }
    }
    /* The parent kills this process: the service is not torn down. */
    return 0;
fail:
    r.ok = 0;
    ssize_t w = write(a->out, &r, sizeof(r)); /* the parent sees ok == 0, or nothing */
    (void)w;
    return 1;
}

static bool slow_ask(int in, int out, char op, long arg, slow_report_t *r)
{
    slow_cmd_t cmd = {op, arg};
    return write(out, &cmd, sizeof(cmd)) == (ssize_t)sizeof(cmd) &&
           read_full(in, r, sizeof(*r), 40000) && r->ok;
}

static void goal_g8c(int port, bool quick)
{
    long steady_n = quick ? 1000 : 3000;
    long burst_n = quick ? 50000 : 200000;
    long after_ms = quick ? 2000 : 3000;
    int to_child[2], from_child[2];
    slow_report_t r0 = {0}, r1 = {0}, r2 = {0};
    long steady = 0, peak = 0, hwm = 0, samples = 0;
    double burst_s = 0;
    pid_t svc = -1, pub = -1;
    int pub_status = -1;
    bool ok = false;

    if (pipe(to_child) < 0 || pipe(from_child) < 0) {
        return;
    }
    slow_arg_t sa = {port, to_child[0], from_child[1]};
    svc = spawn(slow_service, &sa);
    close(to_child[0]);
    close(from_child[1]);
    if (svc < 0 || !read_full(from_child[0], &r0, sizeof(r0), 30000) || !r0.ok) {
        fprintf(stderr, "  G8c: the service child did not get ready\n");
        goto done;
    }
    /* Steady state: a gentle flow the listener keeps up with, all delivered. */
    pub_arg_t gentle = {port, steady_n, 500};
    pub = spawn(publisher, &gentle);
    if (pub < 0 || waitpid(pub, &pub_status, 0) != pub || pub_status != 0) {
        fprintf(stderr, "  G8c: the gentle publisher failed\n");
        pub = -1;
        goto done;
    }
    pub = -1;
    if (!slow_ask(from_child[0], to_child[1], 'W', steady_n, &r1)) {
        fprintf(stderr, "  G8c: the steady messages were not all delivered (%ld/%ld)\n",
                r1.delivered, steady_n);
        goto done;
    }
    double st[10];
    for (int i = 0; i < 10; i++) {
        st[i] = (double)bu_proc_kb(svc, "VmRSS:");
        bu_sleep_ms(10);
    }
    steady = (long)bu_median(st, 10);
    /* The burst, sampled every 10 ms, and a while after. */
    pub_arg_t burst = {port, burst_n, 0};
    uint64_t t0 = bu_now_ns(), t_end = 0;
    pub = spawn(publisher, &burst);
    while (pub > 0) {
        long rss = bu_proc_kb(svc, "VmRSS:");
        peak = rss > peak ? rss : peak;
        samples++;
        if (t_end == 0 && waitpid(pub, &pub_status, WNOHANG) == pub) {
            t_end = bu_now_ns();
            burst_s = (double)(t_end - t0) / 1e9;
            pub = -1;
        } else if (t_end == 0 &&
                   bu_now_ns() - t0 > (uint64_t)(CHILD_DEADLINE_S - 5) * 1000000000u) {
            break;
        }
        if (t_end) {
            break;
        }
        bu_sleep_ms(10);
    }
    /* After the burst: at least `after_ms`, and until the service took in every message of the
     * burst (the broker may still be sending), at most 30 s. */
    bool all_in = false;
    for (long i = 0; t_end && bu_now_ns() - t_end < 30000000000u; i++) {
        long rss = bu_proc_kb(svc, "VmRSS:");
        peak = rss > peak ? rss : peak;
        samples++;
        if (i % 10 == 0 && !all_in) {
            slow_report_t rs;
            all_in = slow_ask(from_child[0], to_child[1], 'S', 0, &rs) &&
                     rs.messages_in >= (uint64_t)(steady_n + burst_n);
        }
        if (all_in && bu_now_ns() - t_end >= (uint64_t)after_ms * 1000000u) {
            break;
        }
        bu_sleep_ms(10);
    }
    hwm = bu_proc_kb(svc, "VmHWM:");
    ok = t_end && all_in && pub_status == 0 && slow_ask(from_child[0], to_child[1], 'Q', 0, &r2);
    if (!ok) {
        fprintf(stderr, "  G8c: the burst did not complete (publisher status %d, all in: %d)\n",
                pub_status, (int)all_in);
    }
done:
    reap(pub);
    reap(svc);
    close(to_child[1]);
    close(from_child[0]);
    double ratio = ok && steady > 0 ? (double)peak / (double)steady : 99;
    bu_run("\"scenario\": \"G8c\", \"impl\": \"service\", \"steady_n\": %ld, \"burst_n\": %ld, "
           "\"ok\": %s, \"burst_s\": %.3f, \"steady_rss_kb\": %ld, \"peak_rss_kb\": %ld, "
           "\"vmhwm_kb\": %ld, \"samples\": %ld, \"messages_in\": %llu, \"delivered\": %ld, "
           "\"dropped\": %llu, \"queued_at_end\": %llu",
           steady_n, burst_n, ok ? "true" : "false", burst_s, steady, peak, hwm, samples,
           (unsigned long long)r2.messages_in, r2.delivered, (unsigned long long)r2.dropped,
           (unsigned long long)r2.queued);
    printf("  G8c  service      %s burst %ld in %.2f s  RSS steady %ld KiB, peak %ld KiB (%ld "
           "samples), VmHWM %ld KiB; in %llu, delivered %ld, dropped %llu, still queued %llu\n",
           ok ? "ok " : "BAD", burst_n, burst_s, steady, peak, samples, hwm,
           (unsigned long long)r2.messages_in, r2.delivered, (unsigned long long)r2.dropped,
           (unsigned long long)r2.queued);
    fflush(stdout);
    bu_goal("G8c", ratio, 1.5, false,
            "%ld-message QoS 0 burst into a 1 ms/message listener: peak RSS %ld KiB vs steady "
            "%ld KiB (VmHWM %ld KiB); listener queue dropped %llu, delivered %ld",
            burst_n, peak, steady, hwm, (unsigned long long)r2.dropped, r2.delivered);
}

int main(void)
{
    bool quick = bu_quick();
    tb_broker_t *b;

    signal(SIGPIPE, SIG_IGN);
    if (!(b = bu_broker_start())) {
        return 2;
    }
    goal_g8a(tb_broker_port(b), quick);
    goal_g8c(tb_broker_port(b), quick);
    bu_broker_free(b);
    return bu_failed() ? 1 : 0;
}
