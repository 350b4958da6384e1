/*
 * Typed values. A value is a tagged union; lists own their items. Strings are validated as UTF-8
 * at creation so that every value can be written as JSON.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "props/props_internal.h"
#include "util/util.h"

static pelix_value_t *value_alloc(pelix_type_t type)
{
    pelix_value_t *v = pelix__calloc(1, sizeof(*v));
    if (v) {
        v->type = type;
    }
    return v;
}

pelix_value_t *pelix_value_new_string(const char *s)
{
    pelix_value_t *v;

    if (!s || !pelix__utf8_valid(s, strlen(s))) {
        return NULL;
    }
    /* One block: the text follows the value (freed with it). */
    size_t len = strlen(s);
    if (len > SIZE_MAX - sizeof(*v) - 1) {
        return NULL;
    }
    v = pelix__malloc(sizeof(*v) + len + 1);
    if (v) {
        memset(v, 0, sizeof(*v));
        v->type = PELIX_TYPE_STRING;
        v->u.s = (char *)(v + 1);
        memcpy(v->u.s, s, len + 1);
    }
    return v;
}

pelix_value_t *pelix_value_new_long(int64_t l)
{
    pelix_value_t *v = value_alloc(PELIX_TYPE_LONG);
    if (v) {
        v->u.l = l;
    }
    return v;
}

pelix_value_t *pelix_value_new_double(double d)
{
    pelix_value_t *v;

    if (!isfinite(d)) {
        return NULL;
    }
    v = value_alloc(PELIX_TYPE_DOUBLE);
    if (v) {
        v->u.d = d;
    }
    return v;
}

pelix_value_t *pelix_value_new_bool(bool b)
{
    pelix_value_t *v = value_alloc(PELIX_TYPE_BOOL);
    if (v) {
        v->u.b = b;
    }
    return v;
}

pelix_value_t *pelix_value_new_list(void)
{
    return value_alloc(PELIX_TYPE_LIST);
}

pelix_value_t *pelix_value_new_strings(const char *const *items, size_t count)
{
    pelix_value_t *list;

    if (!items && count) {
        return NULL;
    }
    list = pelix_value_new_list();
    for (size_t i = 0; list && i < count; i++) {
        pelix_value_t *item = pelix_value_new_string(items[i]);
        if (!item || pelix_value_list_append(list, item) < 0) {
            list = pelix_value_free(list);
        }
    }
    return list;
}

/* Room for `n` items (the counts are 32-bit: a value is 24 bytes, a 32-byte block). */
static int list_grow(pelix_value_t *list, size_t n)
{
    size_t cap = list->u.list.cap;

    if (n > UINT32_MAX ||
        pelix__grow((void **)&list->u.list.items, &cap, n, sizeof(pelix_value_t *)) < 0) {
        return -ENOMEM;
    }
    list->u.list.cap = cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
    return 0;
}

int pelix_value_list_append(pelix_value_t *list, pelix_value_t *item)
{
    if (!list || !item || list->type != PELIX_TYPE_LIST) {
        pelix_value_free(item);
        return -EINVAL;
    }
    if (list_grow(list, (size_t)list->u.list.count + 1) < 0) {
        pelix_value_free(item);
        return -ENOMEM;
    }
    list->u.list.items[list->u.list.count++] = item;
    return 0;
}

pelix_value_t *pelix_value_copy(const pelix_value_t *v)
{
    pelix_value_t *c;

    if (!v) {
        return NULL;
    }
    switch (v->type) {
    case PELIX_TYPE_STRING:
        return pelix_value_new_string(v->u.s);
    case PELIX_TYPE_LIST:
        c = pelix_value_new_list();
        if (c && v->u.list.count && list_grow(c, v->u.list.count) < 0) {
            return pelix_value_free(c);
        }
        for (size_t i = 0; c && i < v->u.list.count; i++) {
            pelix_value_t *item = pelix_value_copy(v->u.list.items[i]);
            if (!item) {
                return pelix_value_free(c);
            }
            c->u.list.items[c->u.list.count++] = item;
        }
        return c;
    default:
        c = value_alloc(v->type);
        if (c) {
            c->u = v->u;
        }
        return c;
    }
}

pelix_value_t *pelix_value_free(pelix_value_t *v)
{
    if (!v) {
        return NULL;
    }
    if (v->type == PELIX_TYPE_LIST) {
        for (size_t i = 0; i < v->u.list.count; i++) {
            pelix_value_free(v->u.list.items[i]);
        }
        pelix__free(v->u.list.items);
    }
    pelix__free(v);
    return NULL;
}

pelix_type_t pelix_value_type(const pelix_value_t *v)
{
    return v ? v->type : 0;
}

const char *pelix_value_string(const pelix_value_t *v)
{
    return (v && v->type == PELIX_TYPE_STRING) ? v->u.s : NULL;
}

int64_t pelix_value_long(const pelix_value_t *v)
{
    return (v && v->type == PELIX_TYPE_LONG) ? v->u.l : 0;
}

double pelix_value_double(const pelix_value_t *v)
{
    if (v && v->type == PELIX_TYPE_DOUBLE) {
        return v->u.d;
    }
    if (v && v->type == PELIX_TYPE_LONG) {
        return (double)v->u.l;
    }
    return 0.0;
}

bool pelix_value_bool(const pelix_value_t *v)
{
    return (v && v->type == PELIX_TYPE_BOOL) ? v->u.b : false;
}

size_t pelix_value_list_size(const pelix_value_t *v)
{
    return (v && v->type == PELIX_TYPE_LIST) ? v->u.list.count : 0;
}

const pelix_value_t *pelix_value_list_at(const pelix_value_t *v, size_t i)
{
    if (!v || v->type != PELIX_TYPE_LIST || i >= v->u.list.count) {
        return NULL;
    }
    return v->u.list.items[i];
}

bool pelix_value_equal(const pelix_value_t *a, const pelix_value_t *b)
{
    if (!a || !b) {
        return a == b;
    }
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case PELIX_TYPE_STRING:
        return strcmp(a->u.s, b->u.s) == 0;
    case PELIX_TYPE_LONG:
        return a->u.l == b->u.l;
    case PELIX_TYPE_DOUBLE:
        return a->u.d == b->u.d;
    case PELIX_TYPE_BOOL:
        return a->u.b == b->u.b;
    case PELIX_TYPE_LIST:
        if (a->u.list.count != b->u.list.count) {
            return false;
        }
        for (size_t i = 0; i < a->u.list.count; i++) {
            if (!pelix_value_equal(a->u.list.items[i], b->u.list.items[i])) {
                return false;
            }
        }
        return true;
    }
    return false;
}

static void display(pelix_buf_t *b, const pelix_value_t *v, bool quote)
{
    char num[32];

    switch (v->type) {
    case PELIX_TYPE_STRING:
        if (quote) {
            props__json_string(b, v->u.s);
        } else {
            pelix__buf_puts(b, v->u.s);
        }
        break;
    case PELIX_TYPE_LONG:
        pelix__buf_printf(b, "%lld", (long long)v->u.l);
        break;
    case PELIX_TYPE_DOUBLE:
        props__format_double(v->u.d, num);
        pelix__buf_puts(b, num);
        break;
    case PELIX_TYPE_BOOL:
        pelix__buf_puts(b, v->u.b ? "true" : "false");
        break;
    case PELIX_TYPE_LIST:
        pelix__buf_putc(b, '[');
        for (size_t i = 0; i < v->u.list.count; i++) {
            if (i) {
                pelix__buf_puts(b, ", ");
            }
            display(b, v->u.list.items[i], true);
        }
        pelix__buf_putc(b, ']');
        break;
    }
}

char *pelix_value_to_string(const pelix_value_t *v)
{
    pelix_buf_t b = {0};

    if (!v) {
        return NULL;
    }
    display(&b, v, false);
    return pelix__buf_take(&b);
}
