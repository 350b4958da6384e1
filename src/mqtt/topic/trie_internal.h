/*
 * Private to the trie (trie.c builds and edits it, trie_match.c walks it): the node layout and the
 * lookups both need. See trie.c for the design and the invariants.
 */
#ifndef PELIX_MQTT_TRIE_INTERNAL_H
#define PELIX_MQTT_TRIE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mqtt/topic/topic.h"

#define KIDS_ARRAY_MAX 8
#define KIDS_TABLE_MIN 16
#define KEYS_ARRAY_MIN 4

enum {
    NODE_HAS_PLUS = 1u,
    NODE_HAS_HASH = 2u,
    NODE_KIDS_TABLE = 4u,
    NODE_TAG_SHIFT = 3u, /* bits 3-4: the tag of the filter ending here (mqtt__trie_add_tagged) */
    NODE_TAG_MASK = 3u << 3,
};

typedef struct trie_node trie_node_t;

typedef struct key_entry {
    uint64_t key;
    uint32_t count;
} key_entry_t;

/* `cap` child pointers, then `cap` uint32_t hashes (see kid_hashes()). */
typedef struct kid_block {
    uint32_t cap;
    uint32_t unused;
    trie_node_t *slot[];
} kid_block_t;

struct trie_node {
    union {
        trie_node_t *one;   /* nkids == 1 */
        kid_block_t *block; /* nkids >= 2 */
    } kids;
    union {
        uint64_t one;      /* nkeys == 1, its count in kcount */
        key_entry_t *arr;  /* nkeys >= 2, sorted by key, capacity in kcount */
        trie_node_t *next; /* mqtt__trie_free()'s work list */
    } keys;
    uint32_t kcount;
    uint32_t nkeys;
    uint32_t nkids;
    uint32_t hash; /* of its first level */
    uint16_t len;  /* of its text, every level */
    uint16_t flen; /* of its first level */
    uint8_t flags;
    char level[]; /* one or more levels, '/'-separated, NUL-terminated (see trie.c) */
};

struct mqtt_trie {
    trie_node_t *root;
    size_t size;  /* distinct (filter, key) pairs */
    size_t nodes; /* root excluded */
};

/* The scratch's element types (declared, not defined, by the header). */
struct mqtt_trie_level {
    const char *s;
    uint32_t len;
    uint32_t hash;
};

struct mqtt_trie_frame {
    const trie_node_t *node;
    uint32_t level; /* index of the next topic level to match; == count when exhausted */
};

/* ---- lookups (inline: the matching hot path) ------------------------------------------------ */

static inline uint32_t level_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a, then a murmur3-style finaliser for the low bits */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h | 0x80000000u;
}

/* Whether the first level of `n` is `s`. */
static inline bool node_is(const trie_node_t *n, const char *s, size_t len, uint32_t h)
{
    return n->hash == h && n->flen == len && memcmp(n->level, s, len) == 0;
}

static inline uint32_t *kid_hashes(const kid_block_t *b)
{
    return (uint32_t *)(void *)(b->slot + b->cap);
}

static inline trie_node_t *kids_find(const trie_node_t *n, const char *s, size_t len, uint32_t h)
{
    const kid_block_t *b;
    const uint32_t *hashes;

    if (n->nkids <= 1) {
        return n->nkids == 1 && node_is(n->kids.one, s, len, h) ? n->kids.one : NULL;
    }
    b = n->kids.block;
    hashes = kid_hashes(b);
    if (!(n->flags & NODE_KIDS_TABLE)) {
        for (uint32_t i = 0; i < n->nkids; i++) {
            if (hashes[i] == h && node_is(b->slot[i], s, len, h)) {
                return b->slot[i];
            }
        }
        return NULL;
    }
    for (uint32_t mask = b->cap - 1, i = h & mask; hashes[i]; i = (i + 1) & mask) {
        if (hashes[i] == h && node_is(b->slot[i], s, len, h)) {
            return b->slot[i];
        }
    }
    return NULL;
}

/* Iterates over the children: `*pos` starts at 0; NULL at the end. */
static inline trie_node_t *kids_next(const trie_node_t *n, uint32_t *pos)
{
    if (n->nkids <= 1) {
        return (*pos)++ == 0 && n->nkids == 1 ? n->kids.one : NULL;
    }
    if (!(n->flags & NODE_KIDS_TABLE)) {
        return *pos < n->nkids ? n->kids.block->slot[(*pos)++] : NULL;
    }
    while (*pos < n->kids.block->cap) {
        trie_node_t *c = n->kids.block->slot[(*pos)++];
        if (c) {
            return c;
        }
    }
    return NULL;
}

/* The special children, looked up only when flagged. */
static inline const trie_node_t *kids_plus(const trie_node_t *n)
{
    return (n->flags & NODE_HAS_PLUS) ? kids_find(n, "+", 1, level_hash("+", 1)) : NULL;
}

static inline const trie_node_t *kids_hash(const trie_node_t *n)
{
    return (n->flags & NODE_HAS_HASH) ? kids_find(n, "#", 1, level_hash("#", 1)) : NULL;
}

#endif
