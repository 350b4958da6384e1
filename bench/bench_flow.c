/*
 * Message flow through one private broker: publisher -> mosquitto -> subscriber, where the
 * subscriber is either the baseline, a libmosquitto client with the non-threaded loop
 * (mosquitto_loop, the way its own examples receive), or the MQTT service with in-process
 * listeners. Both run in a forked child with the same callback work (count the message, check
 * its sequence number per listener) and report through a pipe; the publisher is the same
 * libmosquitto program for both, in a third process. Payload: 64 bytes, the sequence number and
 * the send time (CLOCK_MONOTONIC, comparable across processes) in the first 16.
 *
 * Scenarios, run alternately (A B B A ...) for the pairs they compare, medians of each side:
 * - G1 QoS 0 throughput, saturating publisher: service >= 0.90 x libmosquitto subscriber. The
 *   rate is the steady one, from the warm-up message to the last.
 * - G2 CPU per delivered message of the subscriber process (all threads), same runs: <= 1.0 x.
 * - G3 QoS 1, in-flight window 20 on both sides: >= 0.90 x, and no loss, no duplicate.
 * - G4a service with 100 000 listeners (mixed exact and wildcard filters, about one match per
 *   message) vs 10 listeners, QoS 0: >= 0.85 x.
 * - G5 fan-out: 100 listeners matching every message vs 1: extra CPU <= 0.1 us per extra
 *   listener and message.
 * - G7 latency at a fixed 1 000 msg/s: p50 <= baseline p50 + 15 us, p99 <= 2 x baseline p99.
 * A run that lost, duplicated or reordered a message is invalid: it is reported, and its goal
 * fails.
 */
#include <errno.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pelix/configadmin.h>
#include <pelix/mqtt.h>
#include <pelix/registry.h>

#include "bench_util.h"

#define PAYLOAD BU_PAYLOAD
#define PROBE UINT64_MAX
#define RUN_DEADLINE_S 120

/* ---- a scenario run ------------------------------------------------------------------------ */

typedef struct spec {
    const char *name;
    bool svc;       /* the service, else the libmosquitto subscriber */
    int qos;        /* of the publishes and the subscriptions */
    long n;         /* messages published */
    long warm;      /* received messages before measuring */
    long listeners; /* service: listeners registered */
    long fanout;    /* service: listeners matching every message (fan-out) */
    long rate;      /* publisher pace in msg/s, 0: as fast as it can */
    bool latency;   /* keep per-message latencies */
} spec_t;

typedef struct report {
    long received, expected;
    long lost, dup, reordered;
    double rate;     /* messages per second, steady (from warm-up to last) */
    double cpu_us;   /* subscriber CPU per delivered message */
    double p50, p99; /* latency, microseconds */
    long rss_kb;
} report_t;

/* Counting state of a subscriber (either side); listeners[i] last sequence seen. */
typedef struct rx {
    const spec_t *sp;
    atomic_long received;
    atomic_long lost_marks; /* sequence gaps */
    atomic_long dup, reordered;
    atomic_bool probe_seen;
    uint64_t *last; /* per listener: last sequence + 1 (0: none) */
    double *lat;    /* latency samples (us), indexed by arrival */
    atomic_long nlat;
    _Atomic uint64_t t_warm, t_last; /* set once, by the thread that counted that message */
    _Atomic double cpu_warm, cpu_last;
    atomic_bool warm_done, done;
    long expected, warm; /* deliveries */
} rx_t;

static rx_t rx;

/* The callback work of both sides: count, check order per listener, time the milestones. */
static void on_payload(size_t listener, const void *payload, size_t len)
{
    uint64_t seq, sent, now = 0;

    if (len < 16) {
        return;
    }
    memcpy(&seq, payload, 8);
    memcpy(&sent, (const char *)payload + 8, 8);
    if (seq == PROBE) {
        atomic_store(&rx.probe_seen, true);
        return;
    }
    if (rx.last[listener] == seq + 1) {
        atomic_fetch_add(&rx.dup, 1);
    } else if (rx.last[listener] > seq + 1) {
        atomic_fetch_add(&rx.reordered, 1);
    }
    rx.last[listener] = seq + 1;
    if (rx.sp->latency) {
        now = bu_now_ns();
        long i = atomic_fetch_add(&rx.nlat, 1);
        if (i < rx.sp->n) {
            rx.lat[i] = (double)(now - sent) / 1000.0;
        }
    }
    long count = atomic_fetch_add(&rx.received, 1) + 1;
    if (count == rx.warm || count == rx.expected) {
        now = bu_now_ns(); /* only where used: a clock read costs as much as a delivery */
    }
    if (count == rx.warm) {
        atomic_store(&rx.t_warm, now);
        atomic_store(&rx.cpu_warm, bu_cpu_us());
        atomic_store(&rx.warm_done, true);
    }
    if (count == rx.expected) {
        atomic_store(&rx.t_last, now);
        atomic_store(&rx.cpu_last, bu_cpu_us());
        atomic_store(&rx.done, true);
    }
}

/* ---- the topics of a scenario --------------------------------------------------------------- */

/* Listener i's filter: mostly exact, some with + or # (mixed); every message matches one. */
static void filter_of(long i, char *buf, size_t size)
{
    switch (i % 10) {
    case 8:
        snprintf(buf, size, "bench/d%ld/+", i);
        break;
    case 9:
        snprintf(buf, size, "bench/d%ld/#", i);
        break;
    default:
        snprintf(buf, size, "bench/d%ld/v", i);
    }
}

/* The topic of message `seq`: one listener's (spread over all of them), or one for fan-out. */
static void topic_of(const spec_t *sp, uint64_t seq, char *buf, size_t size)
{
    if (sp->fanout || !sp->svc || sp->listeners <= 1) {
        snprintf(buf, size, "bench/all/v");
    } else {
        snprintf(buf, size, "bench/d%ld/v", (long)((seq * 7919u) % (uint64_t)sp->listeners));
    }
}

/* ---- publisher process ---------------------------------------------------------------------- */

static atomic_long acked;

static void pub_on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    (void)obj;
    (void)mid;
    atomic_fetch_add(&acked, 1);
}

static int publisher(const spec_t *sp, int port)
{
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    unsigned char p[PAYLOAD];
    char topic[64];
    uint64_t start = bu_now_ns();
    time_t deadline = time(NULL) + RUN_DEADLINE_S;

    if (!m || mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) {
        return 1;
    }
    mosquitto_publish_callback_set(m, pub_on_publish);
    for (long i = 0; i < sp->n; i++) {
        if (sp->rate > 0) {
            uint64_t due = start + (uint64_t)i * 1000000000u / (uint64_t)sp->rate;
            struct timespec ts = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        topic_of(sp, (uint64_t)i, topic, sizeof(topic));
        bu_payload(p, (uint64_t)i);
        if (mosquitto_publish(m, NULL, topic, PAYLOAD, p, sp->qos, false) != MOSQ_ERR_SUCCESS) {
            return 1;
        }
        if (sp->rate > 0 || i % 256 == 255) {
            mosquitto_loop(m, 0, 1);
        }
    }
    /* Until everything left: QoS 1 acknowledged, QoS 0 written. */
    while (time(NULL) < deadline &&
           (sp->qos ? atomic_load(&acked) < sp->n : mosquitto_want_write(m))) {
        mosquitto_loop(m, 10, 1);
    }
    mosquitto_disconnect(m);
    mosquitto_loop(m, 10, 1);
    mosquitto_destroy(m);
    return 0;
}

/* ---- subscriber processes ------------------------------------------------------------------- */

static void lm_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    (void)obj;
    on_payload(0, msg->payload, (size_t)msg->payloadlen);
}

static void lm_on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *q)
{
    (void)m;
    (void)mid;
    (void)n;
    (void)q;
    *(bool *)obj = true;
}

/* The baseline: libmosquitto, non-threaded loop. Writes "R" on `ready` once subscribed. */
static int lm_subscriber(const spec_t *sp, int port, int ready)
{
    bool subscribed = false;
    struct mosquitto *m = mosquitto_new(NULL, true, &subscribed);
    time_t deadline = time(NULL) + RUN_DEADLINE_S;

    if (!m || mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) {
        return 1;
    }
    mosquitto_message_callback_set(m, lm_on_message);
    mosquitto_subscribe_callback_set(m, lm_on_subscribe);
    mosquitto_subscribe(m, NULL, "bench/all/v", sp->qos);
    while (!subscribed && time(NULL) < deadline) {
        mosquitto_loop(m, 100, 1);
    }
    if (write(ready, "R", 1) != 1) {
        return 1;
    }
    while (!atomic_load(&rx.done) && time(NULL) < deadline) {
        mosquitto_loop(m, 100, 1);
    }
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    return 0;
}

static void svc_on_message(void *handle, const pelix_mqtt_message_t *msg)
{
    on_payload((size_t)(uintptr_t)handle, msg->payload, msg->len);
}

/* The service: `listeners` listeners (or `fanout` on one topic), one connection. */
static int svc_subscriber(const spec_t *sp, int port, int ready)
{
    pelix_registry_t *reg = pelix_registry_new();
    pelix_configadmin_t *ca = NULL;
    pelix_mqtt_t *mqtt = NULL;
    pelix_configadmin_options_t ca_opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_mqtt_options_t opts = PELIX_MQTT_OPTIONS_INIT;
    const char *spec[] = {PELIX_MQTT_LISTENER_SPEC};
    long nl = sp->fanout ? sp->fanout : sp->listeners;
    pelix_mqtt_listener_t *svcs = calloc((size_t)nl, sizeof(*svcs));
    pelix_configuration_t *cfg;
    time_t deadline = time(NULL) + RUN_DEADLINE_S;
    char filter[64];

    opts.listener_queue_messages = (size_t)sp->n + 1000; /* never the bound under test here */
    if (!reg || !svcs || pelix_configadmin_new(reg, &ca_opts, &ca, NULL) < 0 ||
        pelix_mqtt_new(reg, ca, &opts, &mqtt) < 0) {
        return 1;
    }
    for (long i = 0; i < nl; i++) {
        pelix_props_t *p = pelix_props_new();
        svcs[i].handle_mqtt_message = svc_on_message;
        svcs[i].handle = (void *)(uintptr_t)i;
        if (sp->fanout || nl == 1) {
            snprintf(filter, sizeof(filter), "bench/all/v");
        } else {
            filter_of(i, filter, sizeof(filter));
        }
        pelix_props_set_string(p, PELIX_MQTT_TOPICS, filter);
        pelix_props_set_long(p, PELIX_MQTT_QOS, sp->qos);
        if (pelix_registry_register(reg, spec, 1, &svcs[i], p, NULL) < 0) {
            return 1;
        }
    }
    pelix_props_t *p = pelix_props_new();
    pelix_props_set_string(p, "host", "127.0.0.1");
    pelix_props_set_long(p, "port", port);
    pelix_props_set_long(p, "max_inflight", 20);
    if (pelix_configadmin_create_factory_configuration(ca, PELIX_MQTT_FACTORY_PID, &cfg, NULL) <
            0 ||
        pelix_configuration_update(cfg, p, NULL) < 0) {
        return 1;
    }
    pelix_configuration_unref(cfg);
    /* Subscribed everywhere once a probe on the last listener's topic comes back: the broker
     * handles the connection's SUBSCRIBEs before the PUBLISH that follows them. */
    long *ids = NULL;
    size_t n = 0;
    void *fsvc = NULL;
    if (pelix_registry_find(reg, PELIX_MQTT_FACTORY_SPEC, NULL, &ids, &n, NULL) < 0 || n != 1 ||
        pelix_registry_get_service(reg, ids[0], &fsvc) < 0) {
        return 1;
    }
    pelix_mqtt_factory_t *f = fsvc;
    unsigned char probe[PAYLOAD];
    if (sp->fanout || nl == 1) {
        snprintf(filter, sizeof(filter), "bench/all/v");
    } else {
        snprintf(filter, sizeof(filter), "bench/d%ld/v", nl - 1);
    }
    while (!atomic_load(&rx.probe_seen) && time(NULL) < deadline) {
        bu_payload(probe, PROBE);
        f->publish(f->handle, filter, probe, PAYLOAD, 0, false, NULL, NULL, NULL);
        usleep(100 * 1000);
    }
    pelix_registry_unget_service(reg, ids[0]);
    free(ids);
    usleep(100 * 1000); /* later probes */
    if (write(ready, "R", 1) != 1) {
        return 1;
    }
    while (!(atomic_load(&rx.done) && atomic_load(&rx.warm_done)) && time(NULL) < deadline) {
        usleep(1000);
    }
    /* The process exits without tearing the service down: its figures are taken. */
    return 0;
}

/* ---- one run ------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static report_t subscriber_child(const spec_t *sp, int port, int ready)
{
    report_t r = {0};
    long nl = sp->fanout ? sp->fanout : (sp->svc ? sp->listeners : 1);

    long f = sp->fanout ? sp->fanout : 1;
    rx.sp = sp;
    rx.expected = sp->n * f;
    rx.warm = sp->warm * f;
    rx.last = calloc((size_t)nl, sizeof(*rx.last));
    rx.lat = sp->latency ? calloc((size_t)sp->n, sizeof(*rx.lat)) : NULL;
    int rc = sp->svc ? svc_subscriber(sp, port, ready) : lm_subscriber(sp, port, ready);
    r.received = atomic_load(&rx.received);
    r.expected = rx.expected;
    r.lost = rc ? rx.expected : rx.expected - r.received;
    r.dup = atomic_load(&rx.dup);
    r.reordered = atomic_load(&rx.reordered);
    if (r.lost == 0 && atomic_load(&rx.done) && atomic_load(&rx.warm_done)) {
        double msgs = (double)(sp->n - sp->warm);
        r.rate = msgs / ((double)(atomic_load(&rx.t_last) - atomic_load(&rx.t_warm)) / 1e9);
        r.cpu_us = (atomic_load(&rx.cpu_last) - atomic_load(&rx.cpu_warm)) / msgs;
    }
    long nlat = atomic_load(&rx.nlat);
    if (rx.lat && nlat > sp->warm) {
        qsort(rx.lat + sp->warm, (size_t)(nlat - sp->warm), sizeof(double), cmp_double);
        r.p50 = rx.lat[sp->warm + (nlat - sp->warm) / 2];
        r.p99 = rx.lat[sp->warm + (nlat - sp->warm) * 99 / 100];
    }
    r.rss_kb = bu_hwm_kb();
    return r;
}

static report_t run_once(const spec_t *sp, tb_broker_t *b)
{
    int port = tb_broker_port(b), ready[2], out[2];
    report_t r = {0};
    pid_t sub, pub;
    char c;

    if (pipe(ready) < 0 || pipe(out) < 0) {
        r.lost = sp->n;
        return r;
    }
    fflush(stdout);
    if ((sub = fork()) == 0) {
        alarm(RUN_DEADLINE_S + 30);
        prctl(PR_SET_NAME, sp->svc ? "bench-svc" : "bench-lmsub"); /* for perf --comms */
        close(ready[0]);
        close(out[0]);
        r = subscriber_child(sp, port, ready[1]);
        if (write(out[1], &r, sizeof(r)) != (ssize_t)sizeof(r)) {
            _exit(1);
        }
        _exit(0);
    }
    close(ready[1]);
    close(out[1]);
    r.lost = sp->n;
    if (sub < 0 || read(ready[0], &c, 1) != 1) {
        fprintf(stderr, "%s: the subscriber did not get ready\n", sp->name);
    } else if ((pub = fork()) == 0) {
        alarm(RUN_DEADLINE_S + 30);
        prctl(PR_SET_NAME, "bench-pub");
        _exit(publisher(sp, port));
    } else if (pub > 0) {
        if (read(out[0], &r, sizeof(r)) != (ssize_t)sizeof(r)) {
            r.lost = sp->n;
        }
        kill(pub, SIGKILL);
        waitpid(pub, NULL, 0);
    }
    if (sub > 0) {
        kill(sub, SIGKILL);
        waitpid(sub, NULL, 0);
    }
    close(ready[0]);
    close(out[0]);
    bu_run("\"scenario\": \"%s\", \"impl\": \"%s\", \"qos\": %d, \"n\": %ld, \"listeners\": %ld, "
           "\"fanout\": %ld, \"rate_limit\": %ld, \"received\": %ld, \"lost\": %ld, \"dup\": %ld, "
           "\"reordered\": %ld, \"msgs_per_s\": %.1f, \"cpu_us_per_msg\": %.3f, \"p50_us\": "
           "%.1f, \"p99_us\": %.1f, \"max_rss_kb\": %ld",
           sp->name, sp->svc ? "service" : "libmosquitto", sp->qos, sp->n, sp->listeners,
           sp->fanout, sp->rate, r.received, r.lost, r.dup, r.reordered, r.rate, r.cpu_us, r.p50,
           r.p99, r.rss_kb);
    printf("  %-4s %-12s received %7ld/%-7ld lost %ld dup %ld reord %ld  %9.0f msg/s  %7.3f "
           "us/msg CPU%s",
           sp->name,
           sp->svc ? (sp->fanout || sp->listeners > 1 ? "service*" : "service") : "libmosquitto",
           r.received, r.expected, r.lost, r.dup, r.reordered, r.rate, r.cpu_us,
           sp->latency ? "" : "\n");
    if (sp->latency) {
        printf("  p50 %.1f us p99 %.1f us\n", r.p50, r.p99);
    }
    fflush(stdout);
    return r;
}

/* ---- pairs ---------------------------------------------------------------------------------- */

typedef struct side {
    double rate[16], cpu[16], p50[16], p99[16];
    size_t n;
    long bad; /* runs with loss, duplicates or disorder */
} side_t;

static void add(side_t *s, const report_t *r)
{
    if (r->lost || r->dup || r->reordered || r->rate <= 0) {
        s->bad++;
        return;
    }
    s->rate[s->n] = r->rate;
    s->cpu[s->n] = r->cpu_us;
    s->p50[s->n] = r->p50;
    s->p99[s->n] = r->p99;
    s->n++;
}

/* Runs a and b alternately (A B B A A B ...), `pairs` times each; none when BENCH_ONLY names
 * other scenarios (e.g. BENCH_ONLY=G1,G7). */
static bool pairs(const spec_t *a, const spec_t *bsp, int npairs, tb_broker_t *b, side_t *sa,
                  side_t *sb)
{
    const char *only = getenv("BENCH_ONLY");
    if (only && *only && !strstr(only, a->name)) {
        return false;
    }
    for (int i = 0; i < npairs && i < 16; i++) {
        report_t r1 = run_once(i % 2 ? bsp : a, b);
        report_t r2 = run_once(i % 2 ? a : bsp, b);
        add(i % 2 ? sb : sa, &r1);
        add(i % 2 ? sa : sb, &r2);
    }
    return true;
}

#define MED(s, f) bu_median((s)->f, (s)->n)

int main(void)
{
    bool quick = bu_quick();
    int np = quick ? 2 : 5;
    tb_broker_t *b = bu_broker_start();
    side_t lm0 = {0}, sv0 = {0}, lm1 = {0}, sv1 = {0}, s10 = {0}, s100k = {0}, f1 = {0}, f100 = {0},
           lml = {0}, svl = {0};

    if (!b) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    bool valid;
    /* G1, G2: QoS 0 saturation. */
    long n0 = quick ? 40000 : 200000;
    spec_t lm_q0 = {"G1", false, 0, n0, n0 / 10, 1, 0, 0, false};
    spec_t sv_q0 = {"G1", true, 0, n0, n0 / 10, 1, 0, 0, false};
    if (pairs(&lm_q0, &sv_q0, np, b, &lm0, &sv0)) {
        valid = lm0.n && sv0.n && !lm0.bad && !sv0.bad;
        bu_goal("G1", valid ? MED(&sv0, rate) / MED(&lm0, rate) : 0, 0.90, true,
                "QoS 0 64 B, 1 listener: service %.0f msg/s vs libmosquitto %.0f (medians of "
                "%zu/%zu runs, %ld+%ld invalid)",
                MED(&sv0, rate), MED(&lm0, rate), sv0.n, lm0.n, sv0.bad, lm0.bad);
        bu_goal("G2", valid ? MED(&sv0, cpu) / MED(&lm0, cpu) : 99, 1.0, false,
                "CPU per delivered message: service %.2f us vs libmosquitto %.2f us",
                MED(&sv0, cpu), MED(&lm0, cpu));
    }
    /* G3: QoS 1, window 20. */
    long n1 = quick ? 15000 : 60000;
    spec_t lm_q1 = {"G3", false, 1, n1, n1 / 10, 1, 0, 0, false};
    spec_t sv_q1 = {"G3", true, 1, n1, n1 / 10, 1, 0, 0, false};
    if (pairs(&lm_q1, &sv_q1, np, b, &lm1, &sv1)) {
        valid = lm1.n && sv1.n && !lm1.bad && !sv1.bad;
        bu_goal("G3", valid ? MED(&sv1, rate) / MED(&lm1, rate) : 0, 0.90, true,
                "QoS 1 window 20: service %.0f msg/s vs libmosquitto %.0f; runs with loss, "
                "duplicates or disorder: %ld service, %ld libmosquitto",
                MED(&sv1, rate), MED(&lm1, rate), sv1.bad, lm1.bad);
    }
    /* G4a: 100 000 listeners vs 10. */
    long n4 = quick ? 40000 : 100000;
    spec_t l10 = {"G4a", true, 0, n4, n4 / 10, 10, 0, 0, false};
    spec_t l100k = {"G4a", true, 0, n4, n4 / 10, 100000, 0, 0, false};
    if (pairs(&l10, &l100k, quick ? 1 : 3, b, &s10, &s100k)) {
        valid = s10.n && s100k.n && !s10.bad && !s100k.bad;
        bu_goal("G4a", valid ? MED(&s100k, rate) / MED(&s10, rate) : 0, 0.85, true,
                "QoS 0, about 1 match per message: 100 000 listeners %.0f msg/s vs 10 listeners "
                "%.0f; CPU %.2f vs %.2f us/msg",
                MED(&s100k, rate), MED(&s10, rate), MED(&s100k, cpu), MED(&s10, cpu));
    }
    /* G5: fan-out to 100 listeners vs 1. */
    long n5 = quick ? 10000 : 40000;
    spec_t one = {"G5", true, 0, n5, n5 / 10, 1, 1, 0, false};
    spec_t hundred = {"G5", true, 0, n5, n5 / 10, 1, 100, 0, false};
    if (pairs(&one, &hundred, np, b, &f1, &f100)) {
        valid = f1.n && f100.n && !f1.bad && !f100.bad;
        bu_goal("G5", valid ? (MED(&f100, cpu) - MED(&f1, cpu)) / 99 : 99, 0.1, false,
                "extra CPU (us) per extra matching listener: 100 listeners %.2f us/msg vs 1 "
                "listener %.2f us/msg",
                MED(&f100, cpu), MED(&f1, cpu));
    }
    /* G7: latency at 1 000 msg/s. A busy moment of the VM moves latency most: one run's p99 can
     * be ten times the next one's, on either side. 9 pairs keep a few disturbed runs out of the
     * medians (with 5, three full runs of the same code failed G7 once each, the baseline's own
     * p99 at 2.8-3.5 ms in the disturbed runs). */
    long n7 = quick ? 2000 : 4000;
    spec_t lm_lat = {"G7", false, 0, n7, 200, 1, 0, 1000, true};
    spec_t sv_lat = {"G7", true, 0, n7, 200, 1, 0, 1000, true};
    if (pairs(&lm_lat, &sv_lat, quick ? np : 9, b, &lml, &svl)) {
        valid = lml.n && svl.n && !lml.bad && !svl.bad;
        bu_goal("G7p50", valid ? MED(&svl, p50) - MED(&lml, p50) : 999, 15, false,
                "at 1000 msg/s, p50 added by the service (us): service %.1f us vs libmosquitto "
                "%.1f us",
                MED(&svl, p50), MED(&lml, p50));
        bu_goal("G7p99", valid ? MED(&svl, p99) / MED(&lml, p99) : 99, 2.0, false,
                "at 1000 msg/s, p99: service %.1f us vs libmosquitto %.1f us", MED(&svl, p99),
                MED(&lml, p99));
    }
    bu_broker_free(b);
    return bu_failed() ? 1 : 0;
}
