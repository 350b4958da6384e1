/*
 * The listeners by service id (listener_index_t, mqtt_internal.h): an open-addressing table of
 * listener pointers keyed by their `id` field (linear probing, load <= 3/4, backward-shift
 * deletion), so an entry costs one pointer slot instead of a map entry. Guarded by the service's
 * lmap_lock.
 */
#include <errno.h>

#include "mqtt/mqtt_internal.h"

#define INDEX_MIN 16

static size_t slot_of(long id, size_t cap)
{
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

listener_t *mqtt__lindex_get(const listener_index_t *ix, long id)
{
    if (ix->count == 0) {
        return NULL;
    }
    for (size_t i = slot_of(id, ix->cap);; i = (i + 1) & (ix->cap - 1)) {
        listener_t *l = ix->slots[i];
        if (!l || l->id == id) {
            return l;
        }
    }
}

static void place(listener_t **slots, size_t cap, listener_t *l)
{
    size_t i = slot_of(l->id, cap);

    while (slots[i]) {
        i = (i + 1) & (cap - 1);
    }
    slots[i] = l;
}

/* Moves the entries into a table of `cap` slots; -ENOMEM leaves the index as it was. */
static int resize(listener_index_t *ix, size_t cap)
{
    listener_t **slots = pelix__calloc(cap, sizeof(*slots));

    if (!slots) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < ix->cap; i++) {
        if (ix->slots[i]) {
            place(slots, cap, ix->slots[i]);
        }
    }
    pelix__free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    return 0;
}

int mqtt__lindex_put(listener_index_t *ix, listener_t *l)
{
    if (4 * (ix->count + 1) > 3 * ix->cap && resize(ix, ix->cap ? ix->cap * 2 : INDEX_MIN) < 0) {
        return -ENOMEM;
    }
    place(ix->slots, ix->cap, l);
    ix->count++;
    return 0;
}

listener_t *mqtt__lindex_remove(listener_index_t *ix, long id)
{
    size_t mask = ix->cap - 1, i, j;
    listener_t *l;

    if (ix->count == 0) {
        return NULL;
    }
    for (i = slot_of(id, ix->cap); ix->slots[i] && ix->slots[i]->id != id; i = (i + 1) & mask) {
    }
    if (!(l = ix->slots[i])) {
        return NULL;
    }
    /* Backward-shift deletion: pull later entries of the cluster into the hole when their home
     * slot is not cyclically in (hole, their slot]. */
    for (j = (i + 1) & mask; ix->slots[j]; j = (j + 1) & mask) {
        size_t home = slot_of(ix->slots[j]->id, ix->cap);
        bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            ix->slots[i] = ix->slots[j];
            i = j;
        }
    }
    ix->slots[i] = NULL;
    ix->count--;
    if (ix->cap > INDEX_MIN && ix->count * 8 < ix->cap) {
        resize(ix, ix->cap / 4); /* best effort: a failed shrink keeps the larger table */
    }
    return l;
}

listener_t *mqtt__lindex_next(const listener_index_t *ix, size_t *pos)
{
    while (*pos < ix->cap) {
        listener_t *l = ix->slots[(*pos)++];
        if (l) {
            return l;
        }
    }
    return NULL;
}

void mqtt__lindex_clear(listener_index_t *ix)
{
    pelix__free(ix->slots);
    *ix = (listener_index_t){0};
}
