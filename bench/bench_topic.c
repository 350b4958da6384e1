/*
 * Benchmark of the MQTT filter trie (src/mqtt/topic) with 100 000 registered filters, each with
 * its own key (listener), against baselines measured in the same run, alternately (A B B A ...),
 * medians of each side:
 * - G4b dispatch: mqtt__trie_match() of a concrete topic is at least 1000 times faster than the
 *   baseline, a linear scan calling libmosquitto's mosquitto_topic_matches_sub() over the same
 *   filters (ns per message; the scan runs fewer messages per run, it costs ~1 ms each). Both
 *   must find the same matches first (the same keys, topic by topic; all 4096 topics, 512 in a
 *   quick run): otherwise the goal fails.
 * - G9a subscribe then unsubscribe: adding the 100 000 filters the way the MQTT service does
 *   (src/mqtt/listeners.c: mqtt__trie_add_tagged() per listener's filter, the trie's size
 *   telling whether the pair is new, mqtt__trie_remove_last() to unsubscribe), then removing all of
 * them, from a fresh trie, takes at most 2 times the baseline: building the trie of the same
 * filters (mqtt__trie_add() only, fresh trie). Every add and remove must succeed and leave the trie
 *   with no pair: otherwise the goal fails.
 * - G9b after removing all filters, a lookup costs at most 1.2 times the same lookup on a freshly
 *   created empty trie (ns per lookup, the same topics): the removals leave nothing to walk.
 * Printed for reference, no goal here: the trie's memory per registration beyond its filter text
 * (mallinfo2(), malloc's overhead included; the service-level goal is G8b in bench_listeners)
 * and the absolute dispatch time per message.
 *
 * The filters are a realistic mix for a site/device fleet: per-device wildcards
 * (site/<n>/device/<m>/+/temp, site/<n>/device/<m>/#), per-site subscriptions (site/<n>/#),
 * exact topics (site/<n>/device/<m>/sensor/<k>) and a few catch-alls at the top (#, +/#,
 * $SYS/#...). Each registration is its own listener (key). The topics mix hits and misses.
 * BENCH_QUICK=1: fewer runs and messages, the same 100 000 filters.
 */
#include <malloc.h>
#include <mosquitto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
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
#define MAX_PAIRS 16

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

static char *filters[FILTERS], *topics[TOPICS];
static mqtt_trie_scratch_t scratch = MQTT_TRIE_SCRATCH_INIT;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static size_t sink; /* keeps the timed loops from being optimised away */

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

static void die(const char *what, const char *filter)
{
    fprintf(stderr, "%s '%s'\n", what, filter);
    exit(2);
}

/* The baseline: every filter, one after the other. Fills `keys` (if not NULL) with the keys
 * (filter indexes) of the matching filters, ascending as the trie reports them. */
static size_t linear_scan(const char *topic, uint64_t *keys)
{
    size_t count = 0;

    for (size_t i = 0; i < FILTERS; i++) {
        bool hit = false;
        mosquitto_topic_matches_sub(filters[i], topic, &hit);
        if (hit && keys) {
            keys[count] = i;
        }
        count += hit;
    }
    return count;
}

/* A fresh trie of every filter, key = its index (mqtt__trie_add() only). */
static mqtt_trie_t *build(void)
{
    mqtt_trie_t *t = mqtt__trie_new();

    if (!t) {
        die("cannot create a trie", "");
    }
    for (size_t i = 0; i < FILTERS; i++) {
        if (mqtt__trie_add(t, filters[i], i) != 0) {
            die("cannot add", filters[i]);
        }
    }
    return t;
}

/* Topics on which the trie and the linear scan disagree (keys compared one by one). */
static size_t mismatches(const mqtt_trie_t *t, size_t ntopics)
{
    static uint64_t keys[FILTERS];
    size_t bad = 0;

    for (size_t i = 0; i < ntopics; i++) {
        int n = mqtt__trie_match(t, topics[i], &scratch, NULL, NULL);
        size_t expected = linear_scan(topics[i], keys);
        bad += n < 0 || (size_t)n != expected ||
               (n > 0 && memcmp(keys, scratch.keys, (size_t)n * sizeof(*keys)) != 0);
    }
    return bad;
}

/* ns per message of `n` trie lookups over every topic in turn; *keys += the matches. */
static double time_trie(const mqtt_trie_t *t, size_t n, size_t *keys)
{
    uint64_t t0 = bu_now_ns();
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        k += (size_t)mqtt__trie_match(t, topics[i % TOPICS], &scratch, NULL, NULL);
    }
    *keys += k;
    return (double)(bu_now_ns() - t0) / (double)n;
}

/* ns per message of `n` linear scans, from topic `first` on. */
static double time_linear(size_t first, size_t n)
{
    uint64_t t0 = bu_now_ns();

    for (size_t i = 0; i < n; i++) {
        sink += linear_scan(topics[(first + i) % TOPICS], NULL);
    }
    return (double)(bu_now_ns() - t0) / (double)n;
}

/* G9a baseline: ms to build the trie of every filter, from a fresh trie. */
static double time_build(void)
{
    uint64_t t0 = bu_now_ns();
    mqtt_trie_t *t = build();
    double ms = (double)(bu_now_ns() - t0) / 1e6;

    sink += mqtt__trie_size(t);
    mqtt__trie_free(t);
    return ms;
}

/* G9a candidate: ms to subscribe every filter as the service does (attach_filter(): one
 * listener per filter, QoS 0, its default), then unsubscribe them all (detach_filter()), from a
 * fresh trie. Returns the emptied trie; *failures += the calls that did not do what the service
 * expects. */
static mqtt_trie_t *time_cycle(double *sub_ms, double *unsub_ms, size_t *failures)
{
    mqtt_trie_t *t = mqtt__trie_new();
    uint64_t t0 = bu_now_ns(), t1;
    size_t bad = 0;

    if (!t) {
        die("cannot create a trie", "");
    }
    for (size_t i = 0; i < FILTERS; i++) {
        const char *f = filters[i];
        int prev = 0;
        size_t pairs = mqtt__trie_size(t);
        int rc = mqtt__topic_unshare(f) == f ? mqtt__trie_add_tagged(t, f, i, 0, &prev) : -1;
        bool joins = mqtt__trie_size(t) > pairs;
        bad += !joins || rc != 0 || prev != -1; /* a new filter: the service subscribes it */
    }
    t1 = bu_now_ns();
    for (size_t i = 0; i < FILTERS; i++) {
        const char *f = filters[i];
        bool last = false;
        int rc = mqtt__topic_unshare(f) == f ? mqtt__trie_remove_last(t, f, i, &last) : -1;
        bad += rc != 0 || !last; /* its last key: the service unsubscribes it */
    }
    *sub_ms = (double)(t1 - t0) / 1e6;
    *unsub_ms = (double)(bu_now_ns() - t1) / 1e6;
    *failures += bad;
    return t;
}

int main(void)
{
    bool quick = bu_quick();
    int np = quick ? 5 : 9;                      /* pairs of runs per goal */
    size_t trie_msgs = quick ? 400000 : 2000000; /* per G4b trie run */
    size_t linear_msgs = quick ? 40 : 200;       /* per G4b linear run */
    size_t checked = quick ? 512 : TOPICS;       /* topics checked against the scan */
    size_t lookups = quick ? 200000 : 1000000;   /* per G9b run */
    double lin[MAX_PAIRS], tri[MAX_PAIRS], bld[MAX_PAIRS], cyc[MAX_PAIRS], aft[MAX_PAIRS],
        emp[MAX_PAIRS], sub[MAX_PAIRS], uns[MAX_PAIRS];
    size_t text = 0, mem_before, mem_after, keys = 0, bad, failures = 0, left_pairs = 0;
    size_t left_nodes = 0, after_keys = 0, empty_keys = 0, linear_runs = 0;
    double overhead, trie_ns, linear_ns;
    mqtt_trie_t *trie, *emptied = NULL, *empty;

    /* Every string exists before the measurement, so only the trie is counted. */
    for (size_t i = 0; i < FILTERS; i++) {
        filters[i] = make_filter(i);
        text += strlen(filters[i]);
    }
    for (size_t i = 0; i < TOPICS; i++) {
        topics[i] = make_topic();
    }

    mem_before = heap_bytes();
    trie = build();
    mem_after = heap_bytes();
    overhead = (double)(mem_after - mem_before) / FILTERS - (double)text / FILTERS;
    printf("filters: %d distinct, one listener each, %.1f bytes of text on average, %zu nodes\n",
           FILTERS, (double)text / FILTERS, mqtt__trie_nodes(trie));
    printf("memory: %zu bytes for the trie, %.1f bytes per registration beyond its filter text\n",
           mem_after - mem_before, overhead);
    bu_run("\"scenario\": \"trie_memory\", \"filters\": %d, \"bytes\": %zu, "
           "\"bytes_per_registration\": %.1f",
           FILTERS, mem_after - mem_before, overhead);

    /* G4b: same answers as the baseline first, then linear, trie, trie, linear... */
    bad = mismatches(trie, checked);
    for (size_t i = 0; i < TOPICS; i++) { /* warm-up */
        sink += (size_t)mqtt__trie_match(trie, topics[i], &scratch, NULL, NULL);
    }
    for (int p = 0; p < np; p++) {
        for (int k = 0; k < 2; k++) {
            if ((p % 2 == 0) == (k == 0)) {
                lin[p] = time_linear(linear_runs++ * linear_msgs, linear_msgs);
                bu_run("\"scenario\": \"G4b\", \"impl\": \"linear\", \"filters\": %d, "
                       "\"messages\": %zu, \"ns_per_msg\": %.1f",
                       FILTERS, linear_msgs, lin[p]);
            } else {
                tri[p] = time_trie(trie, trie_msgs, &keys);
                bu_run("\"scenario\": \"G4b\", \"impl\": \"trie\", \"filters\": %d, "
                       "\"messages\": %zu, \"ns_per_msg\": %.1f",
                       FILTERS, trie_msgs, tri[p]);
            }
        }
    }
    linear_ns = bu_median(lin, (size_t)np);
    trie_ns = bu_median(tri, (size_t)np);
    printf("trie dispatch: %.0f ns per message (median of %d runs of %zu messages, %.2f keys per "
           "message)\n",
           trie_ns, np, trie_msgs, (double)keys / ((double)np * (double)trie_msgs));
    printf("linear scan (mosquitto_topic_matches_sub): %.0f ns per message (median of %d runs of "
           "%zu messages)\n",
           linear_ns, np, linear_msgs);
    bu_goal("G4b", bad == 0 && trie_ns > 0 ? linear_ns / trie_ns : 0, 1000, true,
            "100 000 filters: trie %.0f ns/msg vs linear mosquitto_topic_matches_sub %.0f ns/msg "
            "(medians of %d runs each); %zu of %zu topics with different matches",
            trie_ns, linear_ns, np, bad, checked);
    mqtt__trie_free(trie);

    /* G9a: build, cycle, cycle, build... The last emptied trie is kept for G9b. */
    for (int p = 0; p < np; p++) {
        for (int k = 0; k < 2; k++) {
            if ((p % 2 == 0) == (k == 0)) {
                bld[p] = time_build();
                bu_run("\"scenario\": \"G9a\", \"impl\": \"build\", \"filters\": %d, \"ms\": %.3f",
                       FILTERS, bld[p]);
                continue;
            }
            mqtt__trie_free(emptied);
            emptied = time_cycle(&sub[p], &uns[p], &failures);
            cyc[p] = sub[p] + uns[p];
            left_pairs += mqtt__trie_size(emptied);
            bu_run("\"scenario\": \"G9a\", \"impl\": \"subscribe_unsubscribe\", \"filters\": %d, "
                   "\"ms\": %.3f, \"subscribe_ms\": %.3f, \"unsubscribe_ms\": %.3f, "
                   "\"nodes_left\": %zu",
                   FILTERS, cyc[p], sub[p], uns[p], mqtt__trie_nodes(emptied));
        }
    }
    double build_ms = bu_median(bld, (size_t)np), cycle_ms = bu_median(cyc, (size_t)np);
    bool cycle_ok = failures == 0 && left_pairs == 0;
    bu_goal("G9a", cycle_ok && build_ms > 0 ? cycle_ms / build_ms : 99, 2.0, false,
            "100 000 filters: subscribe+unsubscribe as the service %.1f ms vs trie build %.1f ms "
            "(subscribe %.1f + unsubscribe %.1f; medians of %d runs each); %zu unexpected "
            "results, %zu pairs left",
            cycle_ms, build_ms, bu_median(sub, (size_t)np), bu_median(uns, (size_t)np), np,
            failures, left_pairs);

    /* G9b: lookups on the emptied trie vs a fresh empty one: after, empty, empty, after... */
    left_nodes = mqtt__trie_nodes(emptied);
    empty = mqtt__trie_new();
    if (!empty) {
        die("cannot create a trie", "");
    }
    (void)time_trie(emptied, TOPICS, &after_keys); /* warm-up */
    (void)time_trie(empty, TOPICS, &empty_keys);
    for (int p = 0; p < np; p++) {
        for (int k = 0; k < 2; k++) {
            bool after = (p % 2 == 0) == (k == 0);
            double ns = after ? time_trie(emptied, lookups, &after_keys)
                              : time_trie(empty, lookups, &empty_keys);
            *(after ? &aft[p] : &emp[p]) = ns;
            bu_run("\"scenario\": \"G9b\", \"impl\": \"%s\", \"lookups\": %zu, "
                   "\"ns_per_lookup\": %.2f",
                   after ? "after_removal" : "empty", lookups, ns);
        }
    }
    double after_ns = bu_median(aft, (size_t)np), empty_ns = bu_median(emp, (size_t)np);
    bu_goal("G9b", after_keys == 0 && empty_ns > 0 ? after_ns / empty_ns : 99, 1.2, false,
            "lookup after removing all 100 000 filters %.1f ns vs fresh empty trie %.1f ns "
            "(medians of %d runs of %zu lookups each); %zu nodes left, %zu keys found",
            after_ns, empty_ns, np, lookups, left_nodes, after_keys);

    if (sink == 0) {
        printf("(no match at all: the topics are wrong)\n");
    }
    mqtt__trie_free(emptied);
    mqtt__trie_free(empty);
    mqtt__trie_scratch_free(&scratch);
    for (size_t i = 0; i < FILTERS; i++) {
        free(filters[i]);
    }
    for (size_t i = 0; i < TOPICS; i++) {
        free(topics[i]);
    }
    return bu_failed() ? 1 : 0;
}
