/*
 * Memory of a listener registration in the MQTT service, all of it: what the service keeps for
 * one `pelix.mqtt.listener` service with one filter (listener record and its filter text, its
 * entry in the index by service id, the trie entry, which also counts the subscription; a
 * listener's queue comes with its first message and is not part of a registration), measured
 * with mallinfo2() (allocated chunk bytes and mmap'ed blocks, malloc's own overhead included).
 *
 * Baseline in the same run: the same N (20 000) services with the same properties registered
 * under another specification of the same length, which the MQTT service ignores; the difference
 * is the service's cost. Goal G8b: at most 256 bytes per registration beyond its filter text (ratio
 * = bytes / 256,
 * <= 1.0). One measurement (memory, not time: BENCH_QUICK=1 changes nothing). No broker is
 * involved.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pelix/mqtt.h>

#include "bench_util.h"
#include "mqtt/mqtt_internal.h"

/* Bytes in use: small chunks (uordblks) and large mmap'ed blocks (hblkhd), which malloc serves
 * outside the heap arena. */
static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

#define N 20000

static void nothing(void *handle, const pelix_mqtt_message_t *msg)
{
    (void)handle;
    (void)msg;
}

static void noop_cmd(mqtt_service_t *s, void *arg)
{
    (void)s;
    (void)arg;
}

/* Registers N services under `spec` with one distinct filter each; returns the bytes added. */
static size_t register_all(pelix_registry_t *reg, const char *spec, pelix_mqtt_t *mqtt,
                           pelix_mqtt_listener_t *svc, long *ids, size_t *filter_bytes)
{
    const char *specs[] = {spec};
    size_t before, after;

    malloc_trim(0);
    before = heap_bytes();
    *filter_bytes = 0;
    for (int i = 0; i < N; i++) {
        char filter[64];
        int len = snprintf(filter, sizeof(filter), "site/%d/device/%d/+/temp", i % 97, i);
        pelix_props_t *p = pelix_props_new();
        pelix_props_set_string(p, PELIX_MQTT_TOPICS, filter);
        if (pelix_registry_register(reg, specs, 1, svc, p, &ids[i]) < 0) {
            fprintf(stderr, "register failed\n");
            exit(2);
        }
        *filter_bytes += (size_t)len;
    }
    /* Let the network thread apply every change. */
    mqtt__post(&mqtt->s, noop_cmd, NULL, true);
    after = heap_bytes();
    return after - before;
}

int main(void)
{
    pelix_registry_t *reg = pelix_registry_new();
    pelix_mqtt_t *mqtt = NULL;
    pelix_mqtt_listener_t svc = {nothing, NULL};
    long *ids = calloc(N, sizeof(*ids));
    size_t filter_bytes, base, with;
    double per, text;

    if (!reg || !ids || pelix_mqtt_new(reg, NULL, NULL, &mqtt) < 0) {
        fprintf(stderr, "setup failed\n");
        return 2;
    }
    /* A specification name as long as the listener one: the registry keeps the name (and
     * objectClass) in the registration's blocks, so only the service's own bytes differ. */
    base = register_all(reg, "bench.other.service", mqtt, &svc, ids, &filter_bytes);
    for (int i = 0; i < N; i++) {
        pelix_registry_unregister(reg, ids[i]);
    }
    with = register_all(reg, PELIX_MQTT_LISTENER_SPEC, mqtt, &svc, ids, &filter_bytes);
    text = (double)filter_bytes / N;
    per = ((double)with - (double)base) / N - text;
    printf("listener registrations: %d, one filter each (%.1f bytes of text on average)\n", N,
           text);
    printf("registry only (baseline, other specification): %.1f bytes per service\n",
           (double)base / N);
    printf("registry + MQTT service: %.1f bytes per service\n", (double)with / N);
    printf("MQTT service cost: %.1f bytes per registration beyond its filter text (its queue "
           "comes with its first message)\n",
           per);
    bu_run("\"scenario\": \"G8b\", \"impl\": \"svc\", \"listeners\": %d, "
           "\"baseline_bytes_per_service\": %.1f, \"bytes_per_service\": %.1f, "
           "\"bytes_per_listener\": %.1f",
           N, (double)base / N, (double)with / N, per);
    bu_goal("G8b", per / 256, 1.0, false,
            "%.1f bytes per listener registration beyond its filter text (target 256; %d "
            "listeners, one filter each)",
            per, N);
    for (int i = 0; i < N; i++) {
        pelix_registry_unregister(reg, ids[i]);
    }
    pelix_mqtt_free(mqtt);
    pelix_registry_free(reg);
    free(ids);
    return bu_failed() ? 1 : 0;
}
