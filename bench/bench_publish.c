/*
 * Publishing to every broker (goal G6): N logical messages (QoS 0, 64 bytes: a u64 sequence
 * number and the u64 send time, CLOCK_MONOTONIC, in the first 16), each published on all of 4
 * private brokers, same topic for both sides.
 *
 * Baseline: one process with 4 libmosquitto connections (non-threaded use, default in-flight
 * window 20): each logical message is mosquitto_publish()ed on the 4 (libmosquitto writes it at
 * once in that mode), and every 256 messages a poll over the 4 sockets runs mosquitto_loop_read /
 * loop_write / loop_misc as needed, so that what the kernel could not take yet is flushed.
 * Service: the factory service (pelix.mqtt.factory) with 4 `mqtt.connector` configurations, its
 * publish with pid NULL (all connections), same N.
 *
 * Both sides measure until everything really left: the last logical message is QoS 1 on every
 * connection, and the run ends when its 4 acknowledgements came back (baseline: on_publish for
 * the 4 message ids; service: the factory's wait_published on its 4 results). Each side runs in
 * a forked child (its own CPU: getrusage over the measured interval, all threads; its own RSS)
 * that reports through a pipe, under its own deadline. Sides alternate (A B B A ...), 5 pairs
 * (BENCH_QUICK=1: 2), medians of each.
 *
 * Goals:
 * - G6: service logical messages/s >= 0.90 x the libmosquitto publisher loop over the same 4;
 * - G6cpu: service CPU per logical publish <= 1.10 x the baseline's.
 */
#include <errno.h>
#include <mosquitto.h>
#include <poll.h>
#include <signal.h>
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

#define NBROKERS 4
#define PAYLOAD BU_PAYLOAD
#define TOPIC "bench/publish/all"
#define RUN_DEADLINE_S 60 /* a child's own limit (alarm) */
#define MAX_PAIRS 16

/* What a child reports to the parent. */
typedef struct report {
    int ok;
    long n;        /* logical messages */
    long failed;   /* publishes refused */
    double secs;   /* first publish to the last acknowledgement */
    double rate;   /* logical messages per second */
    double cpu_us; /* CPU of the process per logical message, measured interval */
    long rss_kb;   /* VmHWM of the child */
} report_t;

/* ---- baseline: libmosquitto publisher loop -------------------------------------------------- */

typedef struct lm_conn {
    struct mosquitto *m;
    bool connected;
    bool acked;
    int last_mid; /* the final QoS 1 message, 0 before it is published */
} lm_conn_t;

static void lm_on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    ((lm_conn_t *)obj)->connected = rc == 0;
}

static void lm_on_publish(struct mosquitto *m, void *obj, int mid)
{
    lm_conn_t *c = obj;
    (void)m;
    if (c->last_mid && mid == c->last_mid) {
        c->acked = true;
    }
}

/* One round of the non-threaded loop over every connection: poll (read, and write when
 * libmosquitto has something pending), then loop_read / loop_write / loop_misc. */
static int lm_pump(lm_conn_t *c, int n, int timeout_ms)
{
    struct pollfd pfd[NBROKERS];

    for (int i = 0; i < n; i++) {
        pfd[i].fd = mosquitto_socket(c[i].m);
        pfd[i].events = (short)(POLLIN | (mosquitto_want_write(c[i].m) ? POLLOUT : 0));
        pfd[i].revents = 0;
    }
    if (poll(pfd, (nfds_t)n, timeout_ms) < 0 && errno != EINTR) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) {
            if (mosquitto_loop_read(c[i].m, 1) != MOSQ_ERR_SUCCESS) {
                return -1;
            }
        }
        if (pfd[i].revents & POLLOUT) {
            if (mosquitto_loop_write(c[i].m, 1) != MOSQ_ERR_SUCCESS) {
                return -1;
            }
        }
        mosquitto_loop_misc(c[i].m);
    }
    return 0;
}

static report_t lm_publisher(const int *ports, long n)
{
    lm_conn_t c[NBROKERS] = {0};
    report_t r = {0};
    unsigned char p[PAYLOAD];
    uint64_t deadline = bu_now_ns() + (uint64_t)RUN_DEADLINE_S * 1000000000u;
    bool all;

    r.n = n;
    mosquitto_lib_init();
    for (int i = 0; i < NBROKERS; i++) {
        c[i].m = mosquitto_new(NULL, true, &c[i]);
        if (!c[i].m) {
            return r;
        }
        mosquitto_connect_callback_set(c[i].m, lm_on_connect);
        mosquitto_publish_callback_set(c[i].m, lm_on_publish);
        if (mosquitto_connect(c[i].m, "127.0.0.1", ports[i], 60) != MOSQ_ERR_SUCCESS) {
            return r;
        }
    }
    do {
        all = true;
        for (int i = 0; i < NBROKERS; i++) {
            all = all && c[i].connected;
        }
    } while (!all && bu_now_ns() < deadline && lm_pump(c, NBROKERS, 100) == 0);
    if (!all) {
        return r;
    }

    double cpu0 = bu_cpu_us();
    uint64_t t0 = bu_now_ns();
    for (long i = 0; i < n; i++) {
        int qos = i == n - 1 ? 1 : 0;
        bu_payload(p, (uint64_t)i);
        for (int k = 0; k < NBROKERS; k++) {
            if (mosquitto_publish(c[k].m, qos ? &c[k].last_mid : NULL, TOPIC, PAYLOAD, p, qos,
                                  false) != MOSQ_ERR_SUCCESS) {
                r.failed++;
            }
        }
        if ((i & 255) == 255 && lm_pump(c, NBROKERS, 0) < 0) {
            return r;
        }
    }
    /* Until the 4 QoS 1 acknowledgements came back: everything before them was sent. */
    do {
        all = true;
        for (int k = 0; k < NBROKERS; k++) {
            all = all && c[k].acked;
        }
    } while (!all && bu_now_ns() < deadline && lm_pump(c, NBROKERS, 100) == 0);
    uint64_t t1 = bu_now_ns();
    double cpu1 = bu_cpu_us();

    r.ok = all && r.failed == 0;
    r.secs = (double)(t1 - t0) / 1e9;
    r.rate = (double)n / r.secs;
    r.cpu_us = (cpu1 - cpu0) / (double)n;
    r.rss_kb = bu_hwm_kb();
    for (int k = 0; k < NBROKERS; k++) {
        mosquitto_disconnect(c[k].m);
    }
    lm_pump(c, NBROKERS, 10);
    for (int k = 0; k < NBROKERS; k++) {
        mosquitto_destroy(c[k].m);
    }
    return r;
}

/* ---- service: the factory's publish to all ------------------------------------------------- */

static report_t svc_publisher(const int *ports, long n)
{
    pelix_logger_t logger = {bu_log_stderr, NULL, PELIX_LOG_WARNING};
    pelix_configadmin_options_t ca_opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_mqtt_options_t opts = PELIX_MQTT_OPTIONS_INIT;
    pelix_registry_t *reg = pelix_registry_new();
    pelix_configadmin_t *ca = NULL;
    pelix_mqtt_t *mqtt = NULL;
    report_t r = {0};
    unsigned char p[PAYLOAD];
    uint64_t deadline = bu_now_ns() + (uint64_t)RUN_DEADLINE_S * 1000000000u;

    r.n = n;
    ca_opts.logger = logger;
    opts.logger = logger;
    if (!reg || pelix_configadmin_new(reg, &ca_opts, &ca, NULL) < 0 ||
        pelix_mqtt_new(reg, ca, &opts, &mqtt) < 0) {
        return r;
    }
    for (int i = 0; i < NBROKERS; i++) {
        pelix_configuration_t *cfg;
        pelix_props_t *props = pelix_props_new();
        if (!props || pelix_props_set_string(props, "host", "127.0.0.1") < 0 ||
            pelix_props_set_long(props, "port", ports[i]) < 0 ||
            pelix_configadmin_create_factory_configuration(ca, PELIX_MQTT_FACTORY_PID, &cfg, NULL) <
                0) {
            return r;
        }
        if (pelix_configuration_update(cfg, props, NULL) < 0) {
            return r;
        }
        pelix_configuration_unref(cfg);
    }
    while (bu_count_services(reg, PELIX_MQTT_CONNECTION_SPEC) < NBROKERS &&
           bu_now_ns() < deadline) {
        bu_sleep_ms(1);
    }
    long *ids = NULL;
    size_t nf = 0;
    void *fsvc = NULL;
    if (bu_count_services(reg, PELIX_MQTT_CONNECTION_SPEC) < NBROKERS ||
        pelix_registry_find(reg, PELIX_MQTT_FACTORY_SPEC, NULL, &ids, &nf, NULL) < 0 || nf != 1 ||
        pelix_registry_get_service(reg, ids[0], &fsvc) < 0) {
        free(ids);
        return r;
    }
    pelix_mqtt_factory_t *f = fsvc;
    pelix_mqtt_result_t *res = NULL;
    size_t nres = 0;

    double cpu0 = bu_cpu_us();
    uint64_t t0 = bu_now_ns();
    for (long i = 0; i < n - 1; i++) {
        bu_payload(p, (uint64_t)i);
        if (f->publish(f->handle, TOPIC, p, PAYLOAD, 0, false, NULL, NULL, NULL) != 0) {
            r.failed++;
        }
    }
    /* The last one QoS 1 on every connection, then its 4 acknowledgements. */
    bu_payload(p, (uint64_t)(n - 1));
    if (f->publish(f->handle, TOPIC, p, PAYLOAD, 1, false, NULL, &res, &nres) != 0) {
        r.failed++;
    }
    bool all = nres == NBROKERS;
    for (size_t k = 0; k < nres; k++) {
        if (res[k].rc != 0 || f->wait_published(f->handle, &res[k], RUN_DEADLINE_S * 1000L) != 0) {
            all = false;
        }
    }
    uint64_t t1 = bu_now_ns();
    double cpu1 = bu_cpu_us();

    pelix_mqtt_results_free(res, nres);
    r.ok = all && r.failed == 0;
    r.secs = (double)(t1 - t0) / 1e9;
    r.rate = (double)n / r.secs;
    r.cpu_us = (cpu1 - cpu0) / (double)n;
    r.rss_kb = bu_hwm_kb();
    pelix_registry_unget_service(reg, ids[0]);
    free(ids);
    /* The process exits without tearing the service down (the parent kills it): figures taken. */
    return r;
}

/* ---- one run in a child process ----------------------------------------------------------- */

static report_t run_once(bool svc, const int *ports, long n)
{
    report_t r = {0};
    int out[2];
    pid_t child;

    r.n = n;
    if (pipe(out) < 0) {
        return r;
    }
    fflush(stdout);
    fflush(stderr);
    if ((child = fork()) == 0) {
        close(out[0]);
        alarm(RUN_DEADLINE_S + 10);
        r = svc ? svc_publisher(ports, n) : lm_publisher(ports, n);
        ssize_t w = write(out[1], &r, sizeof(r));
        _exit(w == (ssize_t)sizeof(r) ? 0 : 1); /* _exit: no atexit handler (brokers) here */
    }
    close(out[1]);
    if (child > 0) {
        struct pollfd pfd = {out[0], POLLIN, 0};
        if (poll(&pfd, 1, (RUN_DEADLINE_S + 20) * 1000) != 1 ||
            read(out[0], &r, sizeof(r)) != (ssize_t)sizeof(r)) {
            memset(&r, 0, sizeof(r));
            r.n = n;
            fprintf(stderr, "  %s: the child did not report\n", svc ? "service" : "libmosquitto");
        }
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    close(out[0]);
    bu_run("\"scenario\": \"G6\", \"impl\": \"%s\", \"brokers\": %d, \"n\": %ld, \"ok\": %s, "
           "\"failed\": %ld, \"secs\": %.4f, \"logical_msgs_per_s\": %.1f, "
           "\"cpu_us_per_logical\": %.3f, \"max_rss_kb\": %ld",
           svc ? "service" : "libmosquitto", NBROKERS, n, r.ok ? "true" : "false", r.failed, r.secs,
           r.rate, r.cpu_us, r.rss_kb);
    printf("  G6   %-12s %s n %ld  %7.3f s  %9.0f logical msg/s  %6.2f us CPU/logical  RSS %ld "
           "KiB%s\n",
           svc ? "service" : "libmosquitto", r.ok ? "ok " : "BAD", n, r.secs, r.rate, r.cpu_us,
           r.rss_kb, r.failed ? "  (publishes refused)" : "");
    fflush(stdout);
    return r;
}

typedef struct side {
    double rate[MAX_PAIRS], cpu[MAX_PAIRS];
    size_t n;
    long bad;
} side_t;

static void add(side_t *s, const report_t *r)
{
    if (!r->ok || r->rate <= 0) {
        s->bad++;
        return;
    }
    s->rate[s->n] = r->rate;
    s->cpu[s->n] = r->cpu_us;
    s->n++;
}

int main(void)
{
    bool quick = bu_quick();
    int npairs = quick ? 2 : 5;
    long n = quick ? 10000 : 50000;
    tb_broker_t *brokers[NBROKERS] = {0};
    int ports[NBROKERS];
    side_t lm = {0}, sv = {0};
    int status = 0;

    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < NBROKERS; i++) {
        if (!(brokers[i] = bu_broker_start())) {
            status = 2;
            goto done;
        }
        ports[i] = tb_broker_port(brokers[i]);
    }
    for (int i = 0; i < npairs; i++) {
        /* A B, B A, A B, ... */
        bool first_svc = i % 2 == 1;
        report_t r1 = run_once(first_svc, ports, n);
        report_t r2 = run_once(!first_svc, ports, n);
        add(first_svc ? &sv : &lm, &r1);
        add(first_svc ? &lm : &sv, &r2);
    }
    double lm_rate = bu_median(lm.rate, lm.n), sv_rate = bu_median(sv.rate, sv.n);
    double lm_cpu = bu_median(lm.cpu, lm.n), sv_cpu = bu_median(sv.cpu, sv.n);
    bool valid = lm.n && sv.n && !lm.bad && !sv.bad;
    bu_goal("G6", valid ? sv_rate / lm_rate : 0, 0.90, true,
            "publish to all of %d brokers, QoS 0 64 B, n %ld: service %.0f logical msg/s vs "
            "libmosquitto loop %.0f (medians of %zu/%zu runs, %ld+%ld invalid)",
            NBROKERS, n, sv_rate, lm_rate, sv.n, lm.n, sv.bad, lm.bad);
    bu_goal("G6cpu", valid && lm_cpu > 0 ? sv_cpu / lm_cpu : 99, 1.10, false,
            "CPU per logical publish (process, all threads): service %.2f us vs libmosquitto "
            "%.2f us",
            sv_cpu, lm_cpu);
done:
    for (int i = 0; i < NBROKERS; i++) {
        bu_broker_free(brokers[i]);
    }
    if (status) {
        return status;
    }
    return bu_failed() ? 1 : 0;
}
