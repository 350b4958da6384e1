/*
 * Soak: the MQTT service under a steady load for PELIX_SOAK_SECONDS (default 120; `make soak
 * SOAK_MINUTES=N` runs it longer), against three real mosquitto brokers, one of which restarts
 * every few seconds, while listeners come and go.
 *
 * - A publisher thread publishes QoS 1 messages to every connection, 200 a second, each payload
 *   holding its sequence number.
 * - A steady listener hears them all back. From the two brokers that never restart, it must get
 *   every message exactly once and in order, all along. From the restarting one, every message
 *   it gets is one that was published, none twice in a row of the same connection, and the
 *   connection comes back after each restart.
 * - A thread registers and unregisters listeners on the same topics, 10 a second.
 * - Every few seconds the counts are checked, and RSS and process CPU are sampled: after the first
 *   quarter of the run (warm-up), RSS may not grow by more than SOAK_RSS_SLACK_KB, and the CPU per
 *   message of the last half may not exceed 1.5 x that of the second quarter.
 *
 * Built with ASan (quarantine kept small by the test's environment, so RSS tells leaks apart) and
 * run once under valgrind by `make soak VALGRIND=1`.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "integration/broker.h"
#include "integration/mqtt_fixture.h"

#define RATE 200
#define RESTART_EVERY_S 6
#define SOAK_RSS_SLACK_KB (8 * 1024)
#define FAST "reconnect_min", "1", "reconnect_max", "1", "connect_timeout", "2"

static atomic_bool stop;
static atomic_long published, publish_failures, churn_rounds, churn_failures, restarts;

typedef struct soak {
    mf_t fx;
    tb_broker_t *b[3];
    char *pid[3];
    mf_listener_t steady;
} soak_t;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void *publisher(void *arg)
{
    soak_t *s = arg;
    pelix_mqtt_factory_t *f = mf_factory(&s->fx);
    double start = now_s();

    for (long seq = 0; !atomic_load(&stop); seq++) {
        char payload[32];
        int n = snprintf(payload, sizeof(payload), "%ld", seq);
        if (f->publish(f->handle, "soak/m", payload, (size_t)n, 1, false, NULL, NULL, NULL) != 0) {
            atomic_fetch_add(&publish_failures, 1);
        }
        atomic_store(&published, seq + 1);
        double due = start + (double)(seq + 1) / RATE, wait = due - now_s();
        if (wait > 0) {
            sleep_ms((long)(wait * 1000));
        }
    }
    return NULL;
}

static void count_call(void *handle, const pelix_mqtt_message_t *msg)
{
    (void)handle;
    (void)msg;
}

static void *churn(void *arg)
{
    soak_t *s = arg;
    const char *spec[] = {PELIX_MQTT_LISTENER_SPEC};
    pelix_mqtt_listener_t svc = {count_call, NULL};

    while (!atomic_load(&stop)) {
        pelix_props_t *p = pelix_props_new();
        long id = 0;
        pelix_props_set_string(p, PELIX_MQTT_TOPICS, churn_rounds % 2 ? "soak/#" : "soak/+");
        if (pelix_registry_register(s->fx.reg, spec, 1, &svc, p, &id) != 0) {
            atomic_fetch_add(&churn_failures, 1);
        }
        sleep_ms(100);
        if (pelix_registry_unregister(s->fx.reg, id) != 0) {
            atomic_fetch_add(&churn_failures, 1);
        }
        atomic_fetch_add(&churn_rounds, 1);
    }
    return NULL;
}

/* The steady listener's messages of connection `pid` from index *from on: 0 when they follow
 * each other (each the next sequence number when `exact`, else only increasing), or the first
 * that does not. *last is the last sequence number seen (-1 at first). */
static long check_connection(soak_t *s, const char *pid, bool exact, size_t *from, long *last,
                             long *count)
{
    long bad = 0;
    pthread_mutex_lock(&s->steady.lock);
    for (; *from < s->steady.count; (*from)++) {
        const mf_msg_t *m = &s->steady.msgs[*from];
        if (strcmp(m->connection, pid) != 0) {
            continue;
        }
        long seq = strtol(m->payload, NULL, 10);
        if (!bad && ((exact && *last >= 0 && seq != *last + 1) || seq <= *last)) {
            bad = seq + 1; /* +1: a bad seq 0 is still non-zero */
        }
        *last = seq;
        (*count)++;
    }
    pthread_mutex_unlock(&s->steady.lock);
    return bad;
}

static void test_soak(void **st)
{
    (void)st;
    const char *env = getenv("PELIX_SOAK_SECONDS");
    long seconds = env ? strtol(env, NULL, 10) : 120;
    soak_t *s = calloc(1, sizeof(*s));
    tb_broker_options_t bo = {.quiet = true};
    const char *t[] = {"soak/#"};
    pthread_t pub, ch;

    assert_non_null(s);
    assert_true(seconds >= 20);
    for (int i = 0; i < 3; i++) {
        assert_non_null(s->b[i] = tb_broker_start(&bo));
    }
    mf_start(&s->fx, false);
    for (int i = 0; i < 3; i++) {
        s->pid[i] = mf_create(&s->fx, tb_broker_port(s->b[i]), FAST, NULL);
        assert_true(mf_wait_connection(&s->fx, s->pid[i], MF_WAIT_MS) > 0);
    }
    mf_listen(&s->fx, &s->steady, t, 1, false, 1);
    sleep_ms(1000); /* subscribed on the three (quiet brokers: no SUBSCRIBE line to wait for) */

    assert_int_equal(pthread_create(&pub, NULL, publisher, s), 0);
    assert_int_equal(pthread_create(&ch, NULL, churn, s), 0);
    double start = now_s(), next_restart = start + RESTART_EVERY_S;
    double quarter = start + (double)seconds / 4, half = start + (double)seconds / 2;
    long rss_warm = 0, rss_max = 0, pub_q = 0, pub_h = 0;
    double cpu_q = 0, cpu_h = 0;
    size_t from[3] = {0};
    long last[3] = {-1, -1, -1}, count[3] = {0};

    while (now_s() - start < (double)seconds) {
        sleep_ms(500);
        double now = now_s();
        if (now >= next_restart) {
            assert_int_equal(tb_broker_restart(s->b[2]), 0);
            atomic_fetch_add(&restarts, 1);
            next_restart = now + RESTART_EVERY_S;
        }
        for (int i = 0; i < 3; i++) {
            long bad = check_connection(s, s->pid[i], i < 2, &from[i], &last[i], &count[i]);
            if (bad) {
                fail_msg("connection %d: message %ld out of sequence after %.0f s", i, bad - 1,
                         now - start);
            }
        }
        long rss = rss_kb();
        if (now >= quarter && !rss_warm) {
            rss_warm = rss;
            cpu_q = cpu_s();
            pub_q = atomic_load(&published);
        }
        if (now >= half && !pub_h) {
            cpu_h = cpu_s();
            pub_h = atomic_load(&published);
        }
        if (rss_warm && rss > rss_max) {
            rss_max = rss;
        }
    }
    double cpu_end = cpu_s();
    long pub_end = atomic_load(&published);
    atomic_store(&stop, true);
    pthread_join(pub, NULL);
    pthread_join(ch, NULL);

    /* The two steady brokers: everything, once, in order (the last ones arrive). */
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < MF_WAIT_MS / 100 && last[i] + 1 < pub_end; k++) {
            sleep_ms(100);
            assert_int_equal(check_connection(s, s->pid[i], true, &from[i], &last[i], &count[i]),
                             0);
        }
        assert_int_equal(last[i] + 1, pub_end);
        assert_int_equal(count[i], pub_end);
    }
    assert_true(mf_wait_connection(&s->fx, s->pid[2], MF_WAIT_MS) > 0); /* back after restarts */
    double per_q = (cpu_h - cpu_q) / (double)(pub_h - pub_q),
           per_h = (cpu_end - cpu_h) / (double)(pub_end - pub_h);
    fprintf(stderr,
            "soak: %ld s, %ld published (%ld refused), %ld restarts, %ld listener rounds; from the "
            "restarting broker %ld; RSS %ld KiB after warm-up, at most %ld; CPU %.1f then %.1f "
            "us per message\n",
            seconds, pub_end, atomic_load(&publish_failures), atomic_load(&restarts),
            atomic_load(&churn_rounds), count[2], rss_warm, rss_max, per_q * 1e6, per_h * 1e6);
    assert_int_equal(atomic_load(&churn_failures), 0);
    assert_true(atomic_load(&restarts) >= seconds / RESTART_EVERY_S - 1);
    assert_true(count[2] > 0);
    assert_true(rss_max - rss_warm <= SOAK_RSS_SLACK_KB);
    assert_true(per_h <= 1.5 * per_q);

    mf_listener_destroy(&s->steady);
    mf_free(&s->fx);
    for (int i = 0; i < 3; i++) {
        tb_broker_free(s->b[i]);
        free(s->pid[i]);
    }
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
