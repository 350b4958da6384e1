/* Representation of values and properties, shared by the files of the props module. */
#ifndef PELIX_PROPS_INTERNAL_H
#define PELIX_PROPS_INTERNAL_H

#include <pelix/props.h>

#include "util/util.h"

struct pelix_value {
    pelix_type_t type;
    union {
        char *s;
        int64_t l;
        double d;
        bool b;
        struct {
            pelix_value_t **items;
            uint32_t count;
            uint32_t cap;
        } list;
    } u;
};

struct pelix_props_entry {
    const char *key; /* owned, unless one of the common keys (props__key_dup) */
    pelix_value_t *value;
};

/* Entries sorted by strcmp() of their keys; no two keys equal ignoring ASCII case. */
struct pelix_props {
    struct pelix_props_entry *entries;
    size_t count;
    size_t cap; /* 0 with entries: frozen, one read-only block (freeze.c) */
};

static inline bool props__frozen(const pelix_props_t *p)
{
    return p->cap == 0 && p->count > 0;
}

/* A key to store in an entry: the shared copy of a common key, else a new one (NULL without
 * memory). props__key_free() releases it. */
const char *props__key_dup(const char *key);
bool props__key_is_common(const char *key);
void props__key_free(const char *key);
/* Sets `key` to `v`, taking ownership of `v` (freed on failure). */
int props__set_owned(pelix_props_t *p, const char *key, pelix_value_t *v);
/* Appends `s` as a JSON string literal, escaped as Python's json module does (ASCII only). */
void props__json_string(pelix_buf_t *b, const char *s);
/* Python's repr() of a finite double, e.g. "1.0", "0.1", "1e-05", "1e+16". */
void props__format_double(double d, char out[32]);

#endif
