/*
 * Topic names, filters and the filter trie (src/mqtt/topic), differentially against libmosquitto.
 *
 * The input is lines: "+<filter>" adds the filter for a key, "-<filter>" removes it, anything
 * else is a topic to match; the key of a line is its first byte after the sign, mod 4, plus 1.
 * Properties, after every line:
 * - a filter (or topic) the trie takes is one mqtt__topic_check_filter (check_name) accepts;
 * - adds and removes follow a model (a count per filter and key): remove fails exactly when the
 *   model has no such pair;
 * - the keys the trie finds for a valid topic are exactly those of the model's filters that
 *   mosquitto_topic_matches_sub() matches (shared subscriptions as their filter), and our own
 *   mqtt__topic_matches() agrees with libmosquitto on each of them.
 */
#include <mosquitto.h>

#include <pelix/errors.h>

#include "fuzz.h"
#include "mqtt/topic/topic.h"

#define MAX_PAIRS 64

typedef struct pair {
    char *filter; /* as added (maybe $share/...) */
    uint64_t key;
    unsigned count;
} pair_t;

static pair_t *find_pair(pair_t *pairs, size_t n, const char *filter, uint64_t key)
{
    const char *plain = mqtt__topic_unshare(filter);
    for (size_t i = 0; i < n; i++) {
        if (pairs[i].count > 0 && pairs[i].key == key &&
            strcmp(mqtt__topic_unshare(pairs[i].filter), plain) == 0) {
            return &pairs[i];
        }
    }
    return NULL;
}

static void check_topic(mqtt_trie_t *t, mqtt_trie_scratch_t *s, pair_t *pairs, size_t n,
                        const char *topic)
{
    int rc = mqtt__trie_match(t, topic, s, NULL, NULL);
    bool valid = mqtt__topic_check_name(topic, NULL) == 0;
    uint64_t expect[5] = {0};

    FZ_CHECK(valid ? rc >= 0 : rc < 0);
    if (!valid) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool theirs = false;
        if (pairs[i].count == 0) {
            continue;
        }
        const char *plain = mqtt__topic_unshare(pairs[i].filter);
        FZ_CHECK(mosquitto_topic_matches_sub(plain, topic, &theirs) == MOSQ_ERR_SUCCESS);
        FZ_CHECK(mqtt__topic_matches(pairs[i].filter, topic) == theirs);
        if (theirs) {
            expect[pairs[i].key] = 1;
        }
    }
    size_t nexpect = 0;
    for (uint64_t k = 1; k <= 4; k++) {
        if (expect[k]) {
            FZ_CHECK((size_t)rc > nexpect && s->keys[nexpect] == k);
            nexpect++;
        }
    }
    FZ_CHECK((size_t)rc == nexpect);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_string(data, size), *line = text, *next;
    mqtt_trie_t *t = mqtt__trie_new();
    mqtt_trie_scratch_t s = MQTT_TRIE_SCRATCH_INIT;
    pair_t pairs[MAX_PAIRS];
    size_t n = 0;

    FZ_CHECK(t != NULL);
    for (; line; line = next) {
        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        char op = line[0];
        if (op != '+' && op != '-') {
            check_topic(t, &s, pairs, n, line);
            continue;
        }
        const char *filter = line + 1;
        uint64_t key = (uint64_t)((unsigned char)filter[0] % 4u) + 1u;
        bool valid = mqtt__topic_check_filter(filter, NULL) == 0;
        pair_t *p = valid ? find_pair(pairs, n, filter, key) : NULL; /* invalid: never in */
        if (op == '+') {
            int rc = mqtt__trie_add(t, filter, key);
            FZ_CHECK(valid ? rc == 0 : rc == PELIX_E_TOPIC);
            FZ_CHECK(mqtt__trie_contains(t, filter, key) == valid);
            if (valid && p) {
                p->count++;
            } else if (valid) {
                FZ_CHECK(n < MAX_PAIRS || !"too many filters for the model");
                pairs[n++] = (pair_t){strdup(filter), key, 1};
            }
        } else {
            int rc = mqtt__trie_remove(t, filter, key);
            FZ_CHECK(p ? rc == 0 : rc == -ENOENT);
            if (p) {
                p->count--;
            }
        }
        if (n == MAX_PAIRS) {
            break; /* the model is full: the rest of the input is not looked at */
        }
    }
    for (size_t i = 0; i < n; i++) {
        while (pairs[i].count > 0) {
            FZ_CHECK(mqtt__trie_remove(t, pairs[i].filter, pairs[i].key) == 0);
            pairs[i].count--;
        }
        free(pairs[i].filter);
    }
    FZ_CHECK(mqtt__trie_size(t) == 0);
    mqtt__trie_scratch_free(&s);
    mqtt__trie_free(t);
    free(text);
    return 0;
}
