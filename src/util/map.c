/*
 * Open-addressing hash map with linear probing and tombstones. Keys are borrowed strings or
 * positive longs; when 3/4 full (tombstones included) the table is rebuilt without tombstones, at
 * most half full. A slot is two words: maps index every broker connection, registration and
 * configuration, so their size is part of what an idle connection costs.
 */
#include <errno.h>
#include <string.h>

#include "util/util.h"

struct pelix_map_slot {
    union {
        const char *s; /* string maps: NULL = empty */
        long l;        /* long maps: 0 = empty */
    } key;
    void *value; /* TOMB with a key set: a removed entry */
};

static char tomb_mark;
#define TOMB ((void *)&tomb_mark)

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t hash_long(long k)
{
    uint64_t x = (uint64_t)k;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

void pelix__map_init_str(pelix_map_t *m)
{
    memset(m, 0, sizeof(*m));
    m->strings = true;
}

void pelix__map_init_long(pelix_map_t *m)
{
    memset(m, 0, sizeof(*m));
    m->strings = false;
}

void pelix__map_clear(pelix_map_t *m)
{
    bool strings = m->strings;
    pelix__free(m->slots);
    memset(m, 0, sizeof(*m));
    m->strings = strings;
}

static bool slot_empty(const pelix_map_t *m, const struct pelix_map_slot *s)
{
    return m->strings ? s->key.s == NULL : s->key.l == 0;
}

static struct pelix_map_slot *find(const pelix_map_t *m, const char *skey, long lkey)
{
    size_t mask, i;

    if (!m->cap) {
        return NULL;
    }
    mask = m->cap - 1;
    i = (size_t)(m->strings ? hash_str(skey) : hash_long(lkey)) & mask;
    for (;;) {
        struct pelix_map_slot *s = &m->slots[i];
        if (slot_empty(m, s)) {
            return NULL;
        }
        if (s->value != TOMB && (m->strings ? strcmp(s->key.s, skey) == 0 : s->key.l == lkey)) {
            return s;
        }
        i = (i + 1) & mask;
    }
}

static int rehash(pelix_map_t *m, size_t ncap)
{
    struct pelix_map_slot *old = m->slots;
    size_t ocap = m->cap;
    struct pelix_map_slot *slots = pelix__calloc(ncap, sizeof(*slots));

    if (!slots) {
        return -ENOMEM;
    }
    m->slots = slots;
    m->cap = (uint32_t)ncap;
    m->used = m->count;
    for (size_t i = 0; i < ocap; i++) {
        struct pelix_map_slot *s = &old[i];
        size_t j;
        if (slot_empty(m, s) || s->value == TOMB) {
            continue;
        }
        j = (size_t)(m->strings ? hash_str(s->key.s) : hash_long(s->key.l)) & (ncap - 1);
        while (!slot_empty(m, &slots[j])) {
            j = (j + 1) & (ncap - 1);
        }
        slots[j] = *s;
    }
    pelix__free(old);
    return 0;
}

static int put(pelix_map_t *m, const char *skey, long lkey, void *value)
{
    struct pelix_map_slot *s = find(m, skey, lkey);
    size_t i, mask;

    if (s) {
        if (m->strings) {
            s->key.s =
                skey; /* the new value may own its key: the old one may go with the old value */
        }
        s->value = value;
        return 0;
    }
    if (((size_t)m->used + 1) * 4 > (size_t)m->cap * 3) {
        size_t ncap = m->cap ? m->cap : 8;
        while (((size_t)m->count + 1) * 2 > ncap) {
            ncap *= 2;
        }
        if (ncap > UINT32_MAX / 2) {
            return -ENOMEM;
        }
        if (rehash(m, ncap) < 0) {
            return -ENOMEM;
        }
    }
    mask = m->cap - 1;
    i = (size_t)(m->strings ? hash_str(skey) : hash_long(lkey)) & mask;
    while (!slot_empty(m, &m->slots[i]) && m->slots[i].value != TOMB) {
        i = (i + 1) & mask;
    }
    s = &m->slots[i];
    if (slot_empty(m, s)) {
        m->used++;
    }
    if (m->strings) {
        s->key.s = skey;
    } else {
        s->key.l = lkey;
    }
    s->value = value;
    m->count++;
    return 0;
}

static void *take(pelix_map_t *m, const char *skey, long lkey)
{
    struct pelix_map_slot *s = find(m, skey, lkey);
    void *value;

    if (!s) {
        return NULL;
    }
    value = s->value;
    s->value = TOMB;
    m->count--;
    return value;
}

void *pelix__map_get_str(const pelix_map_t *m, const char *key)
{
    struct pelix_map_slot *s = find(m, key, 0);
    return s ? s->value : NULL;
}

void *pelix__map_get_long(const pelix_map_t *m, long key)
{
    struct pelix_map_slot *s = find(m, NULL, key);
    return s ? s->value : NULL;
}

int pelix__map_put_str(pelix_map_t *m, const char *key, void *value)
{
    return put(m, key, 0, value);
}

int pelix__map_put_long(pelix_map_t *m, long key, void *value)
{
    if (key <= 0) {
        return -EINVAL; /* 0 marks an empty slot */
    }
    return put(m, NULL, key, value);
}

void *pelix__map_remove_str(pelix_map_t *m, const char *key)
{
    return take(m, key, 0);
}

void *pelix__map_remove_long(pelix_map_t *m, long key)
{
    return take(m, NULL, key);
}

bool pelix__map_next(const pelix_map_t *m, size_t *pos, const char **ret_skey, long *ret_lkey,
                     void **ret_value)
{
    for (; *pos < m->cap; (*pos)++) {
        const struct pelix_map_slot *s = &m->slots[*pos];
        if (!slot_empty(m, s) && s->value != TOMB) {
            if (ret_skey) {
                *ret_skey = m->strings ? s->key.s : NULL;
            }
            if (ret_lkey) {
                *ret_lkey = m->strings ? 0 : s->key.l;
            }
            if (ret_value) {
                *ret_value = s->value;
            }
            (*pos)++;
            return true;
        }
    }
    return false;
}
