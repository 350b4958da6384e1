/*
 * A trie of MQTT topic filters, dispatching a topic name to the keys of the matching filters.
 *
 * Layout, sized for 100 000+ registrations at well under 256 bytes each:
 * - a node is one allocation: a 37-byte header followed by its text. The text is one level, or
 *   a path of several ('/'-separated) where no filter branches off nor ends (path compression:
 *   "site/7/device/42/+/temp" alone is one node, not six). A node is found in its parent by its
 *   first level; '#' is always a node of its own and a leaf (filters are validated), so a node
 *   of several levels holds no '#' but may hold '+' levels. '+' and '#' first levels are
 *   flagged on the parent so that matching only looks them up when they exist.
 * - children: none; one, inline; 2..KIDS_ARRAY_MAX in a dense array; more in an open-addressing
 *   hash table (linear probing, load <= 3/4, backward-shift deletion, no tombstones). Arrays and
 *   tables are one "kid block": the child pointers then the hashes of their first levels, so a
 *   lookup scans the hashes contiguously and dereferences a child only on a hash hit. A stored
 *   hash has its top bit set, so 0 marks an empty table slot.
 * - keys of the filter ending at a node: one (key, count) inline, or a sorted array.
 *
 * Invariants: a node other than the root has keys or children (empty ones are freed by
 * remove); nkids counts every child, '+' and '#' included; NODE_HAS_PLUS/NODE_HAS_HASH say
 * whether those children exist; NODE_KIDS_TABLE tells a table from an array when nkids >= 2.
 * Adding splits a node where a new filter branches off or ends inside it; removing merges a node
 * left without keys and with one child back into that child (best effort: a merge that cannot
 * allocate is skipped, which only costs compactness).
 *
 * mqtt__trie_add() allocates everything it needs before linking anything, so a failure leaves
 * the trie unchanged. Matching (trie_match.c) is an iterative depth-first walk: no recursion, so a
 * 65 536-level filter cannot overflow a thread's stack. Freeing the trie is iterative too,
 * threading a work list through the nodes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/topic/topic.h"
#include "mqtt/topic/trie_internal.h"
#include "util/util.h"

/* ---- levels and nodes ------------------------------------------------------------------------ */

/* Whether the first level of `n` is '+' (or '#', which is then its only level). */
static bool node_is_plus(const trie_node_t *n)
{
    return n->flen == 1 && n->level[0] == '+';
}

static bool node_is_hash(const trie_node_t *n)
{
    return n->flen == 1 && n->level[0] == '#';
}

/* A node for the levels `s[0..len)` (one or more, no '#' unless it is the only one). */
static trie_node_t *node_new(const char *s, size_t len)
{
    trie_node_t *n = pelix__malloc(offsetof(trie_node_t, level) + len + 1);
    const char *slash = memchr(s, '/', len);
    size_t flen = slash ? (size_t)(slash - s) : len;

    if (!n) {
        return NULL;
    }
    memset(n, 0, offsetof(trie_node_t, level));
    memcpy(n->level, s, len);
    n->level[len] = '\0';
    n->len = (uint16_t)len;
    n->flen = (uint16_t)flen;
    n->hash = level_hash(s, flen);
    return n;
}

/* Frees a node, its key array and its kid block; not its children. */
static void node_free_shallow(trie_node_t *n)
{
    if (n->nkeys > 1) {
        pelix__free(n->keys.arr);
    }
    if (n->nkids > 1) {
        pelix__free(n->kids.block);
    }
    pelix__free(n);
}

/* Frees a chain of nodes of at most one (inline) child each; returns how many it freed. */
static size_t chain_free(trie_node_t *n)
{
    size_t count = 0;

    while (n) {
        trie_node_t *next = n->nkids == 1 ? n->kids.one : NULL;
        node_free_shallow(n);
        n = next;
        count++;
    }
    return count;
}

/* ---- children -------------------------------------------------------------------------------- */

static kid_block_t *kid_block_new(uint32_t cap)
{
    kid_block_t *b =
        pelix__calloc(1, sizeof(kid_block_t) + (size_t)cap * (sizeof(trie_node_t *) + 4));

    if (b) {
        b->cap = cap;
    }
    return b;
}

/* Places `c` in block `b` holding `count` children, as an array or as a table. */
static void block_put(kid_block_t *b, bool table, uint32_t count, trie_node_t *c)
{
    uint32_t *hashes = kid_hashes(b);
    uint32_t i = count;

    if (table) {
        for (i = c->hash & (b->cap - 1); hashes[i]; i = (i + 1) & (b->cap - 1)) {
        }
    }
    b->slot[i] = c;
    hashes[i] = c->hash;
}

/* Moves the children of `n` into `nb` (fresh, zeroed), in its mode; frees the old block. */
static void kids_migrate(trie_node_t *n, kid_block_t *nb, bool table)
{
    uint32_t pos = 0, count = 0;
    trie_node_t *c;

    while ((c = kids_next(n, &pos)) != NULL) {
        block_put(nb, table, count++, c);
    }
    if (n->nkids > 1) {
        pelix__free(n->kids.block);
    }
    n->kids.block = nb;
    n->flags = (uint8_t)(table ? (n->flags | NODE_KIDS_TABLE) : (n->flags & ~NODE_KIDS_TABLE));
}

/*
 * Allocates, if one more child needs it, the block kids_insert() will move the children to.
 * 0 with *ret_block NULL (no growth needed) or the new block, or -ENOMEM; `n` is unchanged.
 */
static int kids_prepare(const trie_node_t *n, kid_block_t **ret_block)
{
    uint32_t cap = 0;

    if (n->nkids == 1) {
        cap = 2;
    } else if (n->nkids > 1 && !(n->flags & NODE_KIDS_TABLE)) {
        if (n->nkids == n->kids.block->cap) {
            cap = n->nkids < KIDS_ARRAY_MAX ? n->nkids * 2 : KIDS_TABLE_MIN;
        }
    } else if (n->nkids > 1 && 4 * ((uint64_t)n->nkids + 1) > 3 * (uint64_t)n->kids.block->cap) {
        if (n->kids.block->cap > UINT32_MAX / 2) {
            return -ENOMEM;
        }
        cap = n->kids.block->cap * 2;
    }
    *ret_block = NULL;
    if (cap) {
        *ret_block = kid_block_new(cap);
        if (!*ret_block) {
            return -ENOMEM;
        }
    }
    return 0;
}

static void kids_insert(trie_node_t *n, trie_node_t *c, kid_block_t *nb)
{
    if (nb) {
        kids_migrate(n, nb, nb->cap > KIDS_ARRAY_MAX);
    }
    if (n->nkids == 0) {
        n->kids.one = c;
    } else {
        block_put(n->kids.block, n->flags & NODE_KIDS_TABLE, n->nkids, c);
    }
    n->nkids++;
    if (node_is_plus(c)) {
        n->flags |= NODE_HAS_PLUS;
    } else if (node_is_hash(c)) {
        n->flags |= NODE_HAS_HASH;
    }
}

/* Back to one inline child once a block holds a single one. */
static void kids_inline_last(trie_node_t *n)
{
    uint32_t pos = 0;
    kid_block_t *b = n->kids.block;
    trie_node_t *last;

    n->nkids = 2; /* iterate the block as it is */
    last = kids_next(n, &pos);
    n->nkids = 1;
    pelix__free(b);
    n->kids.one = last;
    n->flags &= (uint8_t)~NODE_KIDS_TABLE;
}

static void kids_unlink(trie_node_t *n, trie_node_t *c)
{
    if (node_is_plus(c)) {
        n->flags &= (uint8_t)~NODE_HAS_PLUS;
    } else if (node_is_hash(c)) {
        n->flags &= (uint8_t)~NODE_HAS_HASH;
    }
    if (n->nkids == 1) {
        n->kids.one = NULL;
        n->nkids = 0;
        return;
    }
    kid_block_t *b = n->kids.block;
    uint32_t *hashes = kid_hashes(b);
    if (!(n->flags & NODE_KIDS_TABLE)) {
        uint32_t i = 0;
        while (b->slot[i] != c) {
            i++;
        }
        n->nkids--;
        b->slot[i] = b->slot[n->nkids];
        hashes[i] = hashes[n->nkids];
    } else {
        uint32_t mask = b->cap - 1, i = c->hash & mask, j;
        while (b->slot[i] != c) {
            i = (i + 1) & mask;
        }
        /* Backward-shift deletion: pull later entries of the cluster into the hole when their
         * home slot is not cyclically in (hole, their slot]. */
        for (j = (i + 1) & mask; hashes[j]; j = (j + 1) & mask) {
            uint32_t home = hashes[j] & mask;
            bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays) {
                b->slot[i] = b->slot[j];
                hashes[i] = hashes[j];
                i = j;
            }
        }
        b->slot[i] = NULL;
        hashes[i] = 0;
        n->nkids--;
    }
    if (n->nkids == 1) {
        kids_inline_last(n);
    } else if ((n->flags & NODE_KIDS_TABLE) && (uint64_t)n->nkids * 8 < b->cap) {
        /* Shrink a table left mostly empty; keep it if the allocation fails. */
        uint32_t cap = n->nkids <= KIDS_ARRAY_MAX ? KIDS_ARRAY_MAX : b->cap / 4;
        kid_block_t *nb = kid_block_new(cap);
        if (nb) {
            kids_migrate(n, nb, cap > KIDS_ARRAY_MAX);
        }
    }
}

/* ---- keys ------------------------------------------------------------------------------------ */

/* Index of `key` in the sorted array, or of where it would go; *found tells which. */
static uint32_t keys_search(const key_entry_t *arr, uint32_t n, uint64_t key, bool *found)
{
    uint32_t lo = 0, hi = n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (arr[mid].key < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < n && arr[lo].key == key;
    return lo;
}

/* Adds one count; 1 if the pair is new, 0 if it existed, -ENOMEM or -EOVERFLOW (unchanged). */
static int keys_add(trie_node_t *n, uint64_t key)
{
    bool found;
    uint32_t i;

    if (n->nkeys == 0) {
        n->keys.one = key;
        n->kcount = 1;
        n->nkeys = 1;
        return 1;
    }
    if (n->nkeys == 1) {
        key_entry_t *arr;
        if (n->keys.one == key) {
            if (n->kcount == UINT32_MAX) {
                return -EOVERFLOW;
            }
            n->kcount++;
            return 0;
        }
        arr = pelix__malloc(KEYS_ARRAY_MIN * sizeof(*arr));
        if (!arr) {
            return -ENOMEM;
        }
        arr[0] = (key_entry_t){n->keys.one, n->kcount};
        arr[1] = (key_entry_t){key, 1};
        if (key < n->keys.one) {
            arr[1] = arr[0];
            arr[0] = (key_entry_t){key, 1};
        }
        n->keys.arr = arr;
        n->kcount = KEYS_ARRAY_MIN;
        n->nkeys = 2;
        return 1;
    }
    i = keys_search(n->keys.arr, n->nkeys, key, &found);
    if (found) {
        if (n->keys.arr[i].count == UINT32_MAX) {
            return -EOVERFLOW;
        }
        n->keys.arr[i].count++;
        return 0;
    }
    if (n->nkeys == n->kcount) {
        key_entry_t *arr;
        if (n->kcount > UINT32_MAX / 2) {
            return -ENOMEM;
        }
        arr = pelix__realloc(n->keys.arr, (size_t)n->kcount * 2 * sizeof(*arr));
        if (!arr) {
            return -ENOMEM;
        }
        n->keys.arr = arr;
        n->kcount *= 2;
    }
    memmove(n->keys.arr + i + 1, n->keys.arr + i, (n->nkeys - i) * sizeof(key_entry_t));
    n->keys.arr[i] = (key_entry_t){key, 1};
    n->nkeys++;
    return 1;
}

/* Removes one count; 1 if the pair is gone, 0 if it remains, -ENOENT. */
static int keys_remove(trie_node_t *n, uint64_t key)
{
    bool found;
    uint32_t i;

    if (n->nkeys == 0) {
        return -ENOENT;
    }
    if (n->nkeys == 1) {
        if (n->keys.one != key) {
            return -ENOENT;
        }
        if (--n->kcount > 0) {
            return 0;
        }
        n->nkeys = 0;
        return 1;
    }
    i = keys_search(n->keys.arr, n->nkeys, key, &found);
    if (!found) {
        return -ENOENT;
    }
    if (--n->keys.arr[i].count > 0) {
        return 0;
    }
    n->nkeys--;
    memmove(n->keys.arr + i, n->keys.arr + i + 1, (n->nkeys - i) * sizeof(key_entry_t));
    if (n->nkeys == 1) {
        key_entry_t last = n->keys.arr[0];
        pelix__free(n->keys.arr);
        n->keys.one = last.key;
        n->kcount = last.count;
    }
    return 1;
}

/* ---- the trie -------------------------------------------------------------------------------- */

mqtt_trie_t *mqtt__trie_new(void)
{
    mqtt_trie_t *t = pelix__calloc(1, sizeof(*t));

    if (!t) {
        return NULL;
    }
    t->root = node_new("", 0);
    if (!t->root) {
        pelix__free(t);
        return NULL;
    }
    return t;
}

mqtt_trie_t *mqtt__trie_free(mqtt_trie_t *t)
{
    trie_node_t *list;

    if (!t) {
        return NULL;
    }
    /* A work list threaded through keys.next, each node's keys being released first. */
    list = t->root;
    if (list->nkeys > 1) {
        pelix__free(list->keys.arr);
    }
    list->nkeys = 0;
    list->keys.next = NULL;
    while (list) {
        trie_node_t *n = list, *c;
        uint32_t pos = 0;

        list = n->keys.next;
        while ((c = kids_next(n, &pos)) != NULL) {
            if (c->nkeys > 1) {
                pelix__free(c->keys.arr);
            }
            c->nkeys = 0;
            c->keys.next = list;
            list = c;
        }
        node_free_shallow(n);
    }
    pelix__free(t);
    return NULL;
}

size_t mqtt__trie_size(const mqtt_trie_t *t)
{
    return t ? t->size : 0;
}

size_t mqtt__trie_nodes(const mqtt_trie_t *t)
{
    return t ? t->nodes : 0;
}

/* ---- paths: compare, split, merge ------------------------------------------------------------ */

/* How much of the text of `c` the filter levels `p` follow, in whole levels: the byte length of
 * the common levels (at least the first level, which found `c`). */
static size_t common_levels(const trie_node_t *c, const char *p)
{
    size_t i = 0, matched = 0;

    for (;;) {
        while (i < c->len && c->level[i] != '/' && p[i] != '\0' && p[i] != '/' &&
               c->level[i] == p[i]) {
            i++;
        }
        if (!(i == c->len || c->level[i] == '/') || !(p[i] == '\0' || p[i] == '/')) {
            return matched; /* this level differs */
        }
        matched = i;
        if (i == c->len || p[i] == '\0') {
            return matched;
        }
        i++;
    }
}

/* Replaces the child `old` of `n` by `c`, which has the same first level. */
static void kids_replace(trie_node_t *n, const trie_node_t *old, trie_node_t *c)
{
    if (n->nkids == 1) {
        n->kids.one = c;
        return;
    }
    for (uint32_t i = 0;; i++) {
        if (n->kids.block->slot[i] == old) {
            n->kids.block->slot[i] = c;
            return;
        }
    }
}

/* Moves the children, keys and flags of `from` to the fresh node `to`. */
static void node_move(trie_node_t *to, const trie_node_t *from)
{
    to->kids = from->kids;
    to->nkids = from->nkids;
    to->keys = from->keys;
    to->kcount = from->kcount;
    to->nkeys = from->nkeys;
    to->flags = from->flags;
}

/* The levels `p` (a valid filter's tail) as a detached chain of new nodes: one node for the
 * levels before a final '#', then "#". The chain's last node, or NULL without memory. */
static trie_node_t *chain_new(const char *p, trie_node_t **ret_first, size_t *ret_count)
{
    size_t len = strlen(p), head = len;
    trie_node_t *first, *last;

    if (len >= 1 && p[len - 1] == '#') {
        head = len >= 2 ? len - 2 : 0; /* "x/#" or "#" */
    }
    if (head == 0 && len >= 1 && p[0] == '#') {
        first = last = node_new("#", 1);
        *ret_count = 1;
    } else {
        first = last = node_new(p, head);
        *ret_count = 1;
        if (first && head < len) {
            last = node_new("#", 1);
            if (!last) {
                pelix__free(first);
                first = NULL;
            } else {
                kids_insert(first, last, NULL);
                *ret_count = 2;
            }
        }
    }
    *ret_first = first;
    return first ? last : NULL;
}

/* Sets the keys' tag of `n` that just got a key: the tag when it had none, else the maximum. */
static int tag_raise(trie_node_t *n, bool was_empty, unsigned tag)
{
    unsigned prev = ((unsigned)n->flags & (unsigned)NODE_TAG_MASK) >> NODE_TAG_SHIFT;

    tag = tag > 3 ? 3 : tag;
    if (!was_empty && prev > tag) {
        tag = prev;
    }
    n->flags = (uint8_t)(((unsigned)n->flags & ~(unsigned)NODE_TAG_MASK) | (tag << NODE_TAG_SHIFT));
    return was_empty ? -1 : (int)prev;
}

/*
 * Adds the pair under `n`, following `p` (the filter's levels below `n`): splits the child whose
 * text the filter leaves or ends inside, then builds the missing levels. Everything is allocated
 * before anything is linked.
 */
static int add_below(mqtt_trie_t *t, trie_node_t *n, const char *p, uint64_t key, unsigned tag,
                     int *ret_prev)
{
    trie_node_t *head = NULL, *tail = NULL, *first = NULL, *last = NULL, *c = NULL;
    kid_block_t *nb = NULL;
    size_t matched = 0, count = 0;
    int rc;

    for (;;) {
        size_t len = strcspn(p, "/");
        c = kids_find(n, p, len, level_hash(p, len));
        if (!c) {
            break;
        }
        matched = common_levels(c, p);
        if (matched < c->len) {
            break; /* split `c` after `matched` */
        }
        if (p[matched] == '\0') {
            bool was_empty = c->nkeys == 0;
            rc = keys_add(c, key);
            if (rc < 0) {
                return rc;
            }
            t->size += (size_t)rc;
            *ret_prev = tag_raise(c, was_empty, tag);
            return 0;
        }
        n = c;
        p += matched + 1;
    }
    if (c) {
        /* `c` becomes `head` (its first `matched` bytes) over `tail` (the rest, with its
         * children and keys); the filter ends at `head` or continues beside `tail`. */
        head = node_new(c->level, matched);
        tail = node_new(c->level + matched + 1, c->len - matched - 1);
        if (!head || !tail) {
            goto fail;
        }
        node_move(tail, c);
        if (p[matched] != '\0') {
            p += matched + 1;
            if (!(last = chain_new(p, &first, &count)) || !(nb = kid_block_new(2))) {
                goto fail;
            }
        }
        kids_insert(head, tail, NULL);
        if (first) {
            kids_insert(head, first, nb);
        } else {
            last = head;
        }
        keys_add(last, key); /* its first key: inline, cannot fail */
        *ret_prev = tag_raise(last, true, tag);
        kids_replace(n, c, head);
        pelix__free(c); /* its children and keys are the tail's */
        t->nodes += count + 1;
        t->size++;
        return 0;
    }
    if (!(last = chain_new(p, &first, &count)) || kids_prepare(n, &nb) != 0) {
        goto fail;
    }
    keys_add(last, key);
    *ret_prev = tag_raise(last, true, tag);
    kids_insert(n, first, nb);
    t->nodes += count;
    t->size++;
    return 0;

fail:
    pelix__free(head);
    pelix__free(tail);
    pelix__free(nb);
    chain_free(first);
    return -ENOMEM;
}

int mqtt__trie_add_tagged(mqtt_trie_t *t, const char *filter, uint64_t key, unsigned tag,
                          int *ret_prev)
{
    int prev, rc;

    if (!t) {
        return -EINVAL;
    }
    rc = mqtt__topic_check_filter(filter, NULL);
    if (rc != 0) {
        return rc;
    }
    rc = add_below(t, t->root, mqtt__topic_unshare(filter), key, tag, &prev);
    if (rc == 0 && ret_prev) {
        *ret_prev = prev;
    }
    return rc;
}

int mqtt__trie_add(mqtt_trie_t *t, const char *filter, uint64_t key)
{
    return mqtt__trie_add_tagged(t, filter, key, 0, NULL);
}

/* Merges `n` (not the root, no keys, one child that is not '#') with its child, in `parent`.
 * Skipped if the merged node cannot be allocated. */
static void merge_down(mqtt_trie_t *t, trie_node_t *parent, trie_node_t *n)
{
    trie_node_t *c = n->kids.one, *m;
    size_t len = (size_t)n->len + 1 + c->len;

    if (node_is_hash(c) || len > MQTT_TOPIC_MAX_LEN ||
        !(m = pelix__malloc(offsetof(trie_node_t, level) + len + 1))) {
        return;
    }
    memset(m, 0, offsetof(trie_node_t, level));
    memcpy(m->level, n->level, n->len);
    m->level[n->len] = '/';
    memcpy(m->level + n->len + 1, c->level, (size_t)c->len + 1);
    m->len = (uint16_t)len;
    m->flen = n->flen;
    m->hash = n->hash;
    node_move(m, c);
    kids_replace(parent, n, m);
    pelix__free(n);
    pelix__free(c);
    t->nodes--;
}

bool mqtt__trie_contains(const mqtt_trie_t *t, const char *filter, uint64_t key)
{
    const trie_node_t *n;
    const char *p;
    bool found = false;

    if (!t || mqtt__topic_check_filter(filter, NULL) != 0) {
        return false;
    }
    n = t->root;
    p = mqtt__topic_unshare(filter);
    for (;;) {
        size_t len = strcspn(p, "/");
        const trie_node_t *c = kids_find(n, p, len, level_hash(p, len));
        if (!c || common_levels(c, p) != c->len) {
            return false;
        }
        n = c;
        if (p[c->len] == '\0') {
            break;
        }
        p += c->len + 1;
    }
    if (n->nkeys == 1) {
        return n->keys.one == key;
    }
    if (n->nkeys > 1) {
        keys_search(n->keys.arr, n->nkeys, key, &found);
    }
    return found;
}

int mqtt__trie_remove_last(mqtt_trie_t *t, const char *filter, uint64_t key, bool *ret_last)
{
    trie_node_t *n, *parent = NULL, *keep, *keep_parent = NULL, *cut = NULL;
    const char *p;
    int rc;

    if (!t) {
        return -EINVAL;
    }
    /* A plain filter needs no validation: only valid filters were added, so an invalid one is
     * not found. A shared one does: "$share//a" (no group) must not remove "a". */
    p = mqtt__topic_unshare(filter);
    if (!filter || (p != filter && mqtt__topic_check_filter(filter, NULL) != 0)) {
        return -ENOENT;
    }
    /* Walk down, remembering the last node that stays whatever happens below it (the root, or a
     * node with keys or several children), its parent and its child on the path: where to cut. */
    n = keep = t->root;
    for (;;) {
        size_t len = strcspn(p, "/");
        trie_node_t *c = kids_find(n, p, len, level_hash(p, len));
        if (!c || common_levels(c, p) != c->len) {
            return -ENOENT;
        }
        if (n == t->root || n->nkeys > 0 || n->nkids > 1) {
            keep_parent = parent;
            keep = n;
            cut = c;
        }
        parent = n;
        n = c;
        if (p[c->len] == '\0') {
            break;
        }
        p += c->len + 1;
    }
    rc = keys_remove(n, key);
    if (rc < 0) {
        return rc;
    }
    t->size -= (size_t)rc;
    if (ret_last) {
        *ret_last = n->nkeys == 0;
    }
    if (n->nkeys > 0) {
        return 0;
    }
    n->flags = (uint8_t)((unsigned)n->flags & ~(unsigned)NODE_TAG_MASK);
    if (n->nkids == 0) {
        kids_unlink(keep, cut);
        t->nodes -= chain_free(cut);
        if (keep != t->root && keep->nkeys == 0 && keep->nkids == 1) {
            merge_down(t, keep_parent, keep);
        }
    } else if (n->nkids == 1) {
        merge_down(t, parent, n);
    }
    return 0;
}

int mqtt__trie_remove(mqtt_trie_t *t, const char *filter, uint64_t key)
{
    return mqtt__trie_remove_last(t, filter, key, NULL);
}
