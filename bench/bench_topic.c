/*
 * Benchmark of the MQTT filter trie (src/mqtt/topic): dispatch time per message and memory per
 * registration with 100 000 registered filters, against a linear scan calling libmosquitto's
 * mosquitto_topic_matches_sub() over the same filters, measured in the same run.
 *
 * Targets (one PASS/FAIL line each; the exit status is 1 if any fails):
 * - mqtt__trie_match() of a random concrete topic costs under 2 us per message;
 * - and at least 1000 times less than the linear scan;
 * - a registration (one listener, one filter) costs at most 256 bytes plus its filter text,
 *   measured with mallinfo2() (allocated chunk bytes, malloc's own overhead included).
 *
 * The filters are a realistic mix for a site/device fleet: per-device wildcards
 * (site/<n>/device/<m>/+/temp, site/<n>/device/<m>/#), per-site subscriptions (site/<n>/#),
 * exact topics (site/<n>/device/<m>/sensor/<k>) and a few catch-alls at the top (#, +/#,
 * $SYS/#...). Each registration is its own listener (key). The topics mix hits and misses.
 */
#include <malloc.h>
#include <mosquitto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqtt/topic/topic.h"
#include "util/util.h"

/* Bytes in use: small chunks (uordblks) and large mmap'ed blocks (hblkhd), which malloc serves
 * outside the heap arena. */
static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

#define FILTERS 100000
#define TOPICS 4096
#define TRIE_MESSAGES 2000000
#define LINEAR_MESSAGES 200

static const char *const catch_alls[] = {"#",
                                         "+/#",
                                         "+/+",
                                         "$SYS/#",
                                         "$SYS/broker/+",
                                         "+/+/device/+/sensor/+",
                                         "alerts/#",
                                         "+",
                                         "site/+/device/+/sensor/0",
                                         "site/+/status"};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13; /* xorshift64: deterministic across runs */
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static char *make_filter(size_t i)
{
    char buf[128];

    if (i < 40000) {
        snprintf(buf, sizeof(buf), "site/%zu/device/%zu/+/temp", i % 1000, i / 1000);
    } else if (i < 50000) {
        snprintf(buf, sizeof(buf), "site/%zu/device/%zu/#", i % 1000, (i - 40000) / 1000);
    } else if (i < 51000) {
        snprintf(buf, sizeof(buf), "site/%zu/#", i - 50000);
    } else if (i < FILTERS - PELIX_ARRAY_SIZE(catch_alls)) {
        size_t j = i - 51000;
        snprintf(buf, sizeof(buf), "site/%zu/device/%zu/sensor/%zu", j % 1000, (j / 1000) % 40,
                 j / 40000);
    } else {
        snprintf(buf, sizeof(buf), "%s", catch_alls[i - (FILTERS - PELIX_ARRAY_SIZE(catch_alls))]);
    }
    return strdup(buf);
}

static char *make_topic(void)
{
    char buf[128];
    uint32_t kind = rnd(10);

    if (kind < 5) {
        snprintf(buf, sizeof(buf), "site/%u/device/%u/sensor/%u", rnd(1200), rnd(50), rnd(3));
    } else if (kind < 8) {
        snprintf(buf, sizeof(buf), "site/%u/device/%u/room%u/temp", rnd(1200), rnd(50), rnd(8));
    } else if (kind < 9) {
        snprintf(buf, sizeof(buf), "site/%u/status", rnd(1200));
    } else if (rnd(2)) {
        snprintf(buf, sizeof(buf), "$SYS/broker/load");
    } else {
        snprintf(buf, sizeof(buf), "alerts/%u/fire", rnd(100));
    }
    return strdup(buf);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t linear_scan(char *const *filters, const char *topic)
{
    size_t count = 0;

    for (size_t i = 0; i < FILTERS; i++) {
        bool hit = false;
        mosquitto_topic_matches_sub(filters[i], topic, &hit);
        count += hit;
    }
    return count;
}

static bool target(const char *what, bool ok)
{
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    return ok;
}

int main(void)
{
    static char *filters[FILTERS], *topics[TOPICS];
    mqtt_trie_scratch_t scratch = MQTT_TRIE_SCRATCH_INIT;
    size_t text = 0, mem_before, mem_after, sink = 0, keys = 0, mismatches = 0;
    double t0, trie_ns, linear_ns, overhead, ratio;
    mqtt_trie_t *trie;
    bool ok = true;

    /* Every string exists before the measurement, so only the trie is counted. */
    for (size_t i = 0; i < FILTERS; i++) {
        filters[i] = make_filter(i);
        text += strlen(filters[i]);
    }
    for (size_t i = 0; i < TOPICS; i++) {
        topics[i] = make_topic();
    }

    mem_before = heap_bytes();
    trie = mqtt__trie_new();
    if (!trie) {
        return 2;
    }
    for (size_t i = 0; i < FILTERS; i++) {
        if (mqtt__trie_add(trie, filters[i], i) != 0) {
            fprintf(stderr, "cannot add '%s'\n", filters[i]);
            return 2;
        }
    }
    mem_after = heap_bytes();
    overhead = (double)(mem_after - mem_before) / FILTERS - (double)text / FILTERS;
    printf("filters: %d distinct, one listener each, %.1f bytes of text on average, %zu nodes\n",
           FILTERS, (double)text / FILTERS, mqtt__trie_nodes(trie));
    printf("memory: %zu bytes for the trie, %.1f bytes per registration beyond its filter text\n",
           mem_after - mem_before, overhead);

    /* Same answers as the baseline, on a sample of the topics. */
    for (size_t i = 0; i < LINEAR_MESSAGES; i++) {
        int n = mqtt__trie_match(trie, topics[i], &scratch, NULL, NULL);
        mismatches += n < 0 || (size_t)n != linear_scan(filters, topics[i]);
    }

    /* Dispatch through the trie: warm up, then time. */
    for (size_t i = 0; i < TOPICS; i++) {
        sink += (size_t)mqtt__trie_match(trie, topics[i], &scratch, NULL, NULL);
    }
    t0 = now_ns();
    for (size_t i = 0; i < TRIE_MESSAGES; i++) {
        keys += (size_t)mqtt__trie_match(trie, topics[i % TOPICS], &scratch, NULL, NULL);
    }
    trie_ns = (now_ns() - t0) / TRIE_MESSAGES;

    /* The baseline: every filter, one after the other. */
    t0 = now_ns();
    for (size_t i = 0; i < LINEAR_MESSAGES; i++) {
        sink += linear_scan(filters, topics[i % TOPICS]);
    }
    linear_ns = (now_ns() - t0) / LINEAR_MESSAGES;
    ratio = linear_ns / trie_ns;

    printf("trie dispatch: %.0f ns per message (%d messages, %.2f keys per message)\n", trie_ns,
           TRIE_MESSAGES, (double)keys / TRIE_MESSAGES);
    printf("linear scan (mosquitto_topic_matches_sub): %.0f ns per message (%d messages)\n",
           linear_ns, LINEAR_MESSAGES);
    printf("ratio linear / trie: %.0f\n", ratio);
    if (sink == 0) {
        printf("(no match at all: the topics are wrong)\n");
    }

    ok &= target("trie and linear scan find the same matches", mismatches == 0);
    ok &= target("trie dispatch under 2000 ns per message", trie_ns < 2000.0);
    ok &= target("trie dispatch at least 1000 times faster than the linear scan", ratio >= 1000.0);
    ok &= target("at most 256 bytes per registration beyond its filter text", overhead <= 256.0);

    mqtt__trie_scratch_free(&scratch);
    mqtt__trie_free(trie);
    for (size_t i = 0; i < FILTERS; i++) {
        free(filters[i]);
    }
    for (size_t i = 0; i < TOPICS; i++) {
        free(topics[i]);
    }
    return ok ? 0 : 1;
}
