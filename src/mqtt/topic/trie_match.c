/*
 * mqtt__trie_match(): an iterative depth-first walk of the trie along the levels of a topic,
 * collecting the keys of every filter that matches, then sorting and deduplicating them. All its
 * buffers are in the caller's scratch, so the trie is only read: concurrent matches are safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/topic/topic.h"
#include "mqtt/topic/trie_internal.h"
#include "util/util.h"

/* ---- matching -------------------------------------------------------------------------------- */

void mqtt__trie_scratch_free(mqtt_trie_scratch_t *scratch)
{
    if (!scratch) {
        return;
    }
    pelix__free(scratch->levels);
    pelix__free(scratch->stack);
    pelix__free(scratch->keys);
    *scratch = (mqtt_trie_scratch_t)MQTT_TRIE_SCRATCH_INIT;
}

/* Splits a valid topic into its levels; the count, PELIX_E_TOPIC or -ENOMEM. */
static long split_topic(const char *topic, mqtt_trie_scratch_t *s)
{
    size_t len = strlen(topic), count = 0;
    const char *p = topic;

    if (len == 0 || len > MQTT_TOPIC_MAX_LEN) {
        return PELIX_E_TOPIC;
    }
    for (;;) {
        size_t n = 0;
        while (p[n] != '\0' && p[n] != '/') {
            if (p[n] == '+' || p[n] == '#') {
                return PELIX_E_TOPIC;
            }
            n++;
        }
        if (pelix__grow((void **)&s->levels, &s->levels_cap, count + 1,
                        sizeof(struct mqtt_trie_level)) != 0) {
            return -ENOMEM;
        }
        s->levels[count++] = (struct mqtt_trie_level){p, (uint32_t)n, level_hash(p, n)};
        if (p[n] == '\0') {
            break;
        }
        p += n + 1;
    }
    /* UTF-8 last: a topic is rarely invalid, and the level scan above is the common path. */
    return pelix__utf8_valid(topic, len) ? (long)count : PELIX_E_TOPIC;
}

static int collect(mqtt_trie_scratch_t *s, size_t *len, const trie_node_t *n)
{
    if (!n || n->nkeys == 0) {
        return 0;
    }
    if (pelix__grow((void **)&s->keys, &s->keys_cap, *len + n->nkeys, sizeof(uint64_t)) != 0) {
        return -ENOMEM;
    }
    if (n->nkeys == 1) {
        s->keys[(*len)++] = n->keys.one;
    } else {
        for (uint32_t i = 0; i < n->nkeys; i++) {
            s->keys[(*len)++] = n->keys.arr[i].key;
        }
    }
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Sorts and dedupes keys[0..len); returns the new length. */
static size_t sort_unique(uint64_t *keys, size_t len)
{
    size_t out = 0;

    if (len <= 16) {
        for (size_t i = 1; i < len; i++) {
            uint64_t k = keys[i];
            size_t j = i;
            for (; j > 0 && keys[j - 1] > k; j--) {
                keys[j] = keys[j - 1];
            }
            keys[j] = k;
        }
    } else {
        qsort(keys, len, sizeof(*keys), key_cmp);
    }
    for (size_t i = 0; i < len; i++) {
        if (out == 0 || keys[out - 1] != keys[i]) {
            keys[out++] = keys[i];
        }
    }
    return out;
}

/* Whether the levels of `c` after its first one (matched by topic level `at`) match the next topic
 * levels; if so, *next is the index of the topic level after them. '+' matches any one level. */
static inline bool tail_matches(const trie_node_t *c, const struct mqtt_trie_level *lv, uint32_t at,
                                uint32_t nlev, uint32_t *next)
{
    size_t i = c->flen;

    at++;
    while (i < c->len) {
        size_t b = ++i, n;
        while (i < c->len && c->level[i] != '/') {
            i++;
        }
        n = i - b;
        if (at >= nlev || (!(n == 1 && c->level[b] == '+') &&
                           !(lv[at].len == n && memcmp(lv[at].s, c->level + b, n) == 0))) {
            return false;
        }
        at++;
    }
    *next = at;
    return true;
}

/* collect() for match_walk: counts the nodes that gave keys in *groups. */
static inline int collect_group(mqtt_trie_scratch_t *s, size_t *len, const trie_node_t *n,
                                size_t *groups)
{
    if (n && n->nkeys > 0) {
        (*groups)++;
    }
    return collect(s, len, n);
}

/* Collects the keys of the filters matching the topic; *ret_groups: how many nodes gave keys
 * (each node's keys are sorted and distinct, so with one node there is nothing to sort). */
static int match_walk(const mqtt_trie_t *t, const char *topic, mqtt_trie_scratch_t *s,
                      uint32_t nlev, size_t *ret_len, size_t *ret_groups)
{
    /* At most one pending frame per level plus the two a frame pushes: nlev + 2 is enough. */
    const bool dollar = topic[0] == '$';
    size_t sp = 0, len = 0, groups = 0;

    if (pelix__grow((void **)&s->stack, &s->stack_cap, (size_t)nlev + 2,
                    sizeof(struct mqtt_trie_frame)) != 0) {
        return -ENOMEM;
    }
    s->stack[sp++] = (struct mqtt_trie_frame){t->root, 0};
    while (sp > 0) {
        struct mqtt_trie_frame f = s->stack[--sp];
        const struct mqtt_trie_level *lv;
        const trie_node_t *c;
        uint32_t next;
        bool wild = !(dollar && f.node == t->root); /* §4.7.2: no wildcard first level on '$' */

        if (f.level == nlev) {
            /* The whole topic matched a filter ending here, or ending here with "/#". */
            if (collect_group(s, &len, f.node, &groups) != 0 ||
                collect_group(s, &len, kids_hash(f.node), &groups) != 0) {
                return -ENOMEM;
            }
            continue;
        }
        if (wild && collect_group(s, &len, kids_hash(f.node), &groups) != 0) {
            return -ENOMEM;
        }
        if (wild && (c = kids_plus(f.node)) != NULL &&
            tail_matches(c, s->levels, f.level, nlev, &next)) {
            s->stack[sp++] = (struct mqtt_trie_frame){c, next};
        }
        lv = &s->levels[f.level];
        if ((c = kids_find(f.node, lv->s, lv->len, lv->hash)) != NULL &&
            tail_matches(c, s->levels, f.level, nlev, &next)) {
            s->stack[sp++] = (struct mqtt_trie_frame){c, next};
        }
    }
    *ret_len = len;
    *ret_groups = groups;
    return 0;
}

int mqtt__trie_match(const mqtt_trie_t *t, const char *topic, mqtt_trie_scratch_t *scratch,
                     mqtt_trie_match_fn fn, void *ctx)
{
    mqtt_trie_scratch_t local = MQTT_TRIE_SCRATCH_INIT;
    mqtt_trie_scratch_t *s = scratch ? scratch : &local;
    size_t len = 0, groups = 0;
    long nlev;
    int rc;

    if (!t) {
        return -EINVAL;
    }
    if (!topic) {
        return PELIX_E_TOPIC;
    }
    nlev = split_topic(topic, s);
    if (nlev < 0) {
        rc = (int)nlev;
        goto out;
    }
    rc = match_walk(t, topic, s, (uint32_t)nlev, &len, &groups);
    if (rc != 0) {
        goto out;
    }
    if (groups > 1) {
        len = sort_unique(s->keys, len);
    }
    if (fn) {
        for (size_t i = 0; i < len; i++) {
            fn(ctx, s->keys[i]);
        }
    }
    rc = len > INT32_MAX ? INT32_MAX : (int)len;
out:
    mqtt__trie_scratch_free(&local);
    return rc;
}

/* ---- enumeration ----------------------------------------------------------------------------- */

int mqtt__trie_each_filter(const mqtt_trie_t *t, mqtt_trie_filter_fn fn, void *ctx)
{
    struct walk {
        const trie_node_t *n;
        uint32_t pos; /* of the next child, for kids_next() */
        size_t tl;    /* length of the filter text down to `n` */
    } *stack = NULL;
    size_t cap = 0, sp = 0;
    char *text = NULL;
    int rc = 0;

    if (!t) {
        return -EINVAL;
    }
    if (mqtt__trie_size(t) == 0) {
        return 0; /* nothing to walk: no 64 KiB text buffer for each connect with no listener */
    }
    text = pelix__malloc(MQTT_TOPIC_MAX_LEN + 2);
    if (!text || pelix__grow((void **)&stack, &cap, 1, sizeof(*stack)) != 0) {
        rc = -ENOMEM;
        goto out;
    }
    stack[sp++] = (struct walk){t->root, 0, 0};
    while (sp > 0) {
        struct walk *w = &stack[sp - 1];
        const trie_node_t *c = kids_next(w->n, &w->pos);
        size_t tl;
        if (!c) {
            sp--;
            continue;
        }
        tl = w->n == t->root ? 0 : w->tl + 1;
        if (tl) {
            text[w->tl] = '/';
        }
        memcpy(text + tl, c->level, (size_t)c->len + 1);
        tl += c->len;
        if (c->nkeys > 0) {
            fn(ctx, text, (c->flags & NODE_TAG_MASK) >> NODE_TAG_SHIFT);
        }
        if (c->nkids > 0) {
            if (pelix__grow((void **)&stack, &cap, sp + 1, sizeof(*stack)) != 0) {
                rc = -ENOMEM;
                goto out;
            }
            stack[sp++] = (struct walk){c, 0, tl};
        }
    }
out:
    pelix__free(stack);
    pelix__free(text);
    return rc;
}
