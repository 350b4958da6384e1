/*
 * Properties: a small array of entries sorted by key bytes. Lookups compare keys ignoring ASCII
 * case (OSGi), so at most one entry exists per case-folded key; a set replaces it, spelling
 * included. Property sets are small (tens of keys), so linear lookups beat hashing here.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "props/props_internal.h"
#include "util/util.h"

/* The keys of nearly every properties object of the product: a registration's (registry.h), a
 * configuration's (configadmin.h), an MQTT connection's (mqtt.h). An entry with one of them
 * points here instead of owning a copy: an idle broker connection holds about a dozen such keys,
 * a 32-byte allocation each otherwise. */
static const char common_keys[] = "objectClass\0service.id\0service.ranking\0service.pid\0"
                                  "service.factoryPid\0id\0host\0port\0keepalive\0"
                                  "pelix.mqtt.topics";

bool props__key_is_common(const char *key)
{
    uintptr_t k = (uintptr_t)key, start = (uintptr_t)common_keys;
    return k >= start && k < start + sizeof(common_keys);
}

const char *props__key_dup(const char *key)
{
    if (props__key_is_common(key)) {
        return key;
    }
    for (const char *k = common_keys; k < common_keys + sizeof(common_keys); k += strlen(k) + 1) {
        if (strcmp(k, key) == 0) {
            return k;
        }
    }
    return pelix__strdup(key);
}

void props__key_free(const char *key)
{
    if (key && !props__key_is_common(key)) {
        pelix__free((char *)key);
    }
}

pelix_props_t *pelix_props_new(void)
{
    return pelix__calloc(1, sizeof(pelix_props_t));
}

/* Frees an entry's key and value; the text of a secret (pelix_props_is_secret_key: a password,
 * a key passphrase) is overwritten first, so that freed memory does not keep it. */
static void entry_free(struct pelix_props_entry *e)
{
    pelix_value_t *v = e->value;

    if (v && v->type == PELIX_TYPE_STRING && pelix_props_is_secret_key(e->key)) {
        explicit_bzero(v->u.s, strlen(v->u.s));
    }
    props__key_free(e->key);
    pelix_value_free(v);
}

pelix_props_t *pelix_props_free(pelix_props_t *p)
{
    if (!p) {
        return NULL;
    }
    if (props__frozen(p)) {
        /* One block (freeze.c): only the secrets need clearing. */
        for (size_t i = 0; i < p->count; i++) {
            const pelix_value_t *v = p->entries[i].value;
            if (v->type == PELIX_TYPE_STRING && pelix_props_is_secret_key(p->entries[i].key)) {
                explicit_bzero(v->u.s, strlen(v->u.s));
            }
        }
        pelix__free(p);
        return NULL;
    }
    for (size_t i = 0; i < p->count; i++) {
        entry_free(&p->entries[i]);
    }
    pelix__free(p->entries);
    pelix__free(p);
    return NULL;
}

pelix_props_t *pelix_props_copy(const pelix_props_t *p)
{
    pelix_props_t *c;

    if (!p) {
        return NULL;
    }
    c = pelix_props_new();
    if (!c) {
        return NULL;
    }
    if (p->count && pelix__grow((void **)&c->entries, &c->cap, p->count, sizeof(*c->entries)) < 0) {
        return pelix_props_free(c);
    }
    for (size_t i = 0; i < p->count; i++) {
        struct pelix_props_entry *e = &c->entries[c->count];
        e->key = props__key_dup(p->entries[i].key);
        e->value = pelix_value_copy(p->entries[i].value);
        if (!e->key || !e->value) {
            props__key_free(e->key);
            pelix_value_free(e->value);
            return pelix_props_free(c);
        }
        c->count++;
    }
    return c;
}

static struct pelix_props_entry *find(const pelix_props_t *p, const char *key)
{
    for (size_t i = 0; i < p->count; i++) {
        if (pelix__streq_nocase(p->entries[i].key, key)) {
            return &p->entries[i];
        }
    }
    return NULL;
}

bool pelix_props_equal(const pelix_props_t *a, const pelix_props_t *b)
{
    if (!a || !b) {
        return a == b;
    }
    if (a->count != b->count) {
        return false;
    }
    for (size_t i = 0; i < a->count; i++) {
        const struct pelix_props_entry *e = find(b, a->entries[i].key);
        if (!e || !pelix_value_equal(a->entries[i].value, e->value)) {
            return false;
        }
    }
    return true;
}

size_t pelix_props_size(const pelix_props_t *p)
{
    return p ? p->count : 0;
}

const char *pelix_props_key_at(const pelix_props_t *p, size_t i)
{
    return (p && i < p->count) ? p->entries[i].key : NULL;
}

const pelix_value_t *pelix_props_value_at(const pelix_props_t *p, size_t i)
{
    return (p && i < p->count) ? p->entries[i].value : NULL;
}

const pelix_value_t *pelix_props_get(const pelix_props_t *p, const char *key)
{
    const struct pelix_props_entry *e;

    if (!p || !key) {
        return NULL;
    }
    e = find(p, key);
    return e ? e->value : NULL;
}

const char *pelix_props_get_string(const pelix_props_t *p, const char *key, const char *def)
{
    const char *s = pelix_value_string(pelix_props_get(p, key));
    return s ? s : def;
}

int64_t pelix_props_get_long(const pelix_props_t *p, const char *key, int64_t def)
{
    const pelix_value_t *v = pelix_props_get(p, key);
    return (v && v->type == PELIX_TYPE_LONG) ? v->u.l : def;
}

double pelix_props_get_double(const pelix_props_t *p, const char *key, double def)
{
    const pelix_value_t *v = pelix_props_get(p, key);
    if (v && (v->type == PELIX_TYPE_DOUBLE || v->type == PELIX_TYPE_LONG)) {
        return pelix_value_double(v);
    }
    return def;
}

bool pelix_props_get_bool(const pelix_props_t *p, const char *key, bool def)
{
    const pelix_value_t *v = pelix_props_get(p, key);
    return (v && v->type == PELIX_TYPE_BOOL) ? v->u.b : def;
}

int props__set_owned(pelix_props_t *p, const char *key, pelix_value_t *v)
{
    struct pelix_props_entry *old;
    const char *kcopy;
    size_t at;

    if (!p || !key || !v || !*key || !pelix__utf8_valid(key, strlen(key)) || props__frozen(p)) {
        pelix_value_free(v);
        return -EINVAL;
    }
    kcopy = props__key_dup(key);
    if (!kcopy || pelix__grow((void **)&p->entries, &p->cap, p->count + 1, sizeof(*p->entries))) {
        props__key_free(kcopy);
        pelix_value_free(v);
        return -ENOMEM;
    }
    old = find(p, key);
    if (old) {
        entry_free(old);
        at = (size_t)(old - p->entries);
        memmove(old, old + 1, (p->count - at - 1) * sizeof(*old));
        p->count--;
    }
    for (at = 0; at < p->count && strcmp(p->entries[at].key, kcopy) < 0; at++) {
    }
    memmove(&p->entries[at + 1], &p->entries[at], (p->count - at) * sizeof(*p->entries));
    p->entries[at].key = kcopy;
    p->entries[at].value = v;
    p->count++;
    return 0;
}

int pelix_props_set(pelix_props_t *p, const char *key, const pelix_value_t *v)
{
    pelix_value_t *copy;

    if (!p || !key || !v) {
        return -EINVAL;
    }
    copy = pelix_value_copy(v);
    return copy ? props__set_owned(p, key, copy) : -ENOMEM;
}

int pelix_props_set_string(pelix_props_t *p, const char *key, const char *s)
{
    pelix_value_t *v;

    if (!s || !pelix__utf8_valid(s, strlen(s))) {
        return -EINVAL;
    }
    v = pelix_value_new_string(s);
    return v ? props__set_owned(p, key, v) : -ENOMEM;
}

int pelix_props_set_long(pelix_props_t *p, const char *key, int64_t l)
{
    pelix_value_t *v = pelix_value_new_long(l);
    return v ? props__set_owned(p, key, v) : -ENOMEM;
}

int pelix_props_set_double(pelix_props_t *p, const char *key, double d)
{
    pelix_value_t *v;

    if (!isfinite(d)) {
        return -EINVAL;
    }
    v = pelix_value_new_double(d);
    return v ? props__set_owned(p, key, v) : -ENOMEM;
}

int pelix_props_set_bool(pelix_props_t *p, const char *key, bool b)
{
    pelix_value_t *v = pelix_value_new_bool(b);
    return v ? props__set_owned(p, key, v) : -ENOMEM;
}

int pelix_props_set_strings(pelix_props_t *p, const char *key, const char *const *items,
                            size_t count)
{
    pelix_value_t *v;

    if (!items && count) {
        return -EINVAL;
    }
    for (size_t i = 0; i < count; i++) {
        if (!items[i] || !pelix__utf8_valid(items[i], strlen(items[i]))) {
            return -EINVAL;
        }
    }
    v = pelix_value_new_strings(items, count);
    return v ? props__set_owned(p, key, v) : -ENOMEM;
}

int pelix_props_remove(pelix_props_t *p, const char *key)
{
    struct pelix_props_entry *e;
    size_t at;

    if (!p || !key || props__frozen(p)) {
        return -EINVAL;
    }
    e = find(p, key);
    if (!e) {
        return -ENOENT;
    }
    entry_free(e);
    at = (size_t)(e - p->entries);
    memmove(e, e + 1, (p->count - at - 1) * sizeof(*e));
    p->count--;
    return 0;
}

bool pelix_props_is_secret_key(const char *key)
{
    size_t n;

    if (!key) {
        return false;
    }
    n = strlen(key);
    return pelix__streq_nocase(key, "password") ||
           (n >= 9 && pelix__streq_nocase(key + n - 9, "_password")) ||
           strcasestr(key, "secret") != NULL;
}
