/*
 * Read-only properties in one block. The registry keeps the properties of every registration for
 * as long as it lives, and reads them only (filters, copies, events): one block instead of an
 * entries array plus a block per value saves about a third of their memory and most of their
 * allocations (one broker connection's registration: 6 entries, 12 blocks before).
 *
 * A frozen props is marked by `cap` 0 with entries present: props.c frees it as one block and
 * refuses to change it.
 */
#include "props/freeze.h"

#include <stdint.h>
#include <string.h>

#include "props/props_internal.h"
#include "util/util.h"

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

/* Bytes of `v` in the block (its struct, list arrays and items, texts), or SIZE_MAX. */
static size_t value_size(const pelix_value_t *v)
{
    size_t n = ALIGN8(sizeof(*v));

    if (v->type == PELIX_TYPE_STRING) {
        n += ALIGN8(strlen(v->u.s) + 1);
    } else if (v->type == PELIX_TYPE_LIST) {
        n += ALIGN8((size_t)v->u.list.count * sizeof(pelix_value_t *));
        for (uint32_t i = 0; i < v->u.list.count; i++) {
            size_t item = value_size(v->u.list.items[i]);
            if (item == SIZE_MAX || n + item < n) {
                return SIZE_MAX;
            }
            n += item;
        }
    }
    return n;
}

static pelix_value_t *value_place(const pelix_value_t *v, char **at)
{
    pelix_value_t *c = (pelix_value_t *)*at;

    *at += ALIGN8(sizeof(*c));
    *c = *v;
    if (v->type == PELIX_TYPE_STRING) {
        size_t len = strlen(v->u.s) + 1;
        c->u.s = memcpy(*at, v->u.s, len);
        *at += ALIGN8(len);
    } else if (v->type == PELIX_TYPE_LIST) {
        c->u.list.items = (pelix_value_t **)*at;
        c->u.list.cap = c->u.list.count;
        *at += ALIGN8((size_t)v->u.list.count * sizeof(pelix_value_t *));
        for (uint32_t i = 0; i < v->u.list.count; i++) {
            c->u.list.items[i] = value_place(v->u.list.items[i], at);
        }
    }
    return c;
}

pelix_props_t *props__freeze(pelix_props_t *p)
{
    if (!p || !p->count) {
        return p; /* nothing to compact; an empty props stays an ordinary one */
    }
    size_t size = ALIGN8(sizeof(*p)) + ALIGN8(p->count * sizeof(*p->entries));
    for (size_t i = 0; i < p->count && size != SIZE_MAX; i++) {
        const char *key = p->entries[i].key;
        size_t v = value_size(p->entries[i].value);
        size_t k = props__key_is_common(key) ? 0 : ALIGN8(strlen(key) + 1);
        size = v == SIZE_MAX || size + v + k < size ? SIZE_MAX : size + v + k;
    }
    char *block = size == SIZE_MAX ? NULL : pelix__malloc(size);
    if (!block) {
        return p; /* kept as it is: the same properties, only larger */
    }
    pelix_props_t *f = (pelix_props_t *)block;
    char *at = block + ALIGN8(sizeof(*p));
    f->entries = (struct pelix_props_entry *)at;
    f->count = p->count;
    f->cap = 0; /* frozen */
    at += ALIGN8(p->count * sizeof(*p->entries));
    for (size_t i = 0; i < p->count; i++) {
        const char *key = p->entries[i].key;
        if (props__key_is_common(key)) {
            f->entries[i].key = key;
        } else {
            size_t len = strlen(key) + 1;
            f->entries[i].key = memcpy(at, key, len);
            at += ALIGN8(len);
        }
        f->entries[i].value = value_place(p->entries[i].value, &at);
    }
    pelix_props_free(p);
    return f;
}
