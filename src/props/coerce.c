/*
 * Coercion of values that arrive as text (shell arguments, hand-written files) to the type a
 * schema expects, with one-line reasons such as `port: "abc" is not an integer`.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "props/props_internal.h"
#include "util/util.h"

static const char *type_word(pelix_type_t t)
{
    switch (t) {
    case PELIX_TYPE_STRING:
        return "string";
    case PELIX_TYPE_LONG:
        return "integer";
    case PELIX_TYPE_DOUBLE:
        return "number";
    case PELIX_TYPE_BOOL:
        return "boolean";
    case PELIX_TYPE_LIST:
        return "list";
    }
    return "value";
}

static const char *article(pelix_type_t t)
{
    return t == PELIX_TYPE_LONG ? "an" : "a";
}

/* Copies `s` without surrounding blanks into `out` (NUL-terminated); false if it does not fit. */
static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool trimmed(const char *s, char *out, size_t size)
{
    size_t len;

    while (blank(*s)) {
        s++;
    }
    len = strlen(s);
    while (len && blank(s[len - 1])) {
        len--;
    }
    if (len >= size) {
        return false;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

static bool parse_long(const char *s, int64_t *ret)
{
    char buf[64], *end;
    long long l;

    if (!trimmed(s, buf, sizeof(buf)) || !buf[0]) {
        return false;
    }
    errno = 0;
    l = strtoll(buf, &end, 10);
    if (errno || *end) {
        return false;
    }
    *ret = (int64_t)l;
    return true;
}

static bool parse_double(const char *s, double *ret)
{
    char buf[128], *end;
    double d;

    if (!trimmed(s, buf, sizeof(buf)) || !buf[0]) {
        return false;
    }
    /* strtod also takes "inf", "nan" and hex floats; JSON numbers are decimal and finite. */
    for (const char *c = buf; *c; c++) {
        if (!strchr("0123456789+-.eE", *c)) {
            return false;
        }
    }
    errno = 0;
    d = strtod(buf, &end);
    if (errno || *end || !isfinite(d)) {
        return false;
    }
    *ret = d;
    return true;
}

static bool parse_bool(const char *s, bool *ret)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    char buf[16];

    if (!trimmed(s, buf, sizeof(buf))) {
        return false;
    }
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(yes); i++) {
        if (pelix__streq_nocase(buf, yes[i])) {
            *ret = true;
            return true;
        }
        if (pelix__streq_nocase(buf, no[i])) {
            *ret = false;
            return true;
        }
    }
    return false;
}

static int type_error(const char *name, const pelix_value_t *v, pelix_type_t type,
                      pelix_error_t *err)
{
    /* Error texts end up in logs: a secret's value is never shown. */
    bool secret = name && pelix_props_is_secret_key(name);
    char *shown = secret ? NULL : pelix_value_to_string(v);
    int rc;

    if (secret) {
        rc = pelix__error(err, PELIX_E_TYPE, -1, "%s: *** (%s) is not %s %s", name,
                          type_word(v->type), article(type), type_word(type));
    } else if (v->type == PELIX_TYPE_STRING) {
        rc = pelix__error(err, PELIX_E_TYPE, -1, "%s: \"%s\" is not %s %s", name,
                          shown ? shown : "?", article(type), type_word(type));
    } else {
        rc = pelix__error(err, PELIX_E_TYPE, -1, "%s: %s (%s) is not %s %s", name,
                          shown ? shown : "?", type_word(v->type), article(type), type_word(type));
    }
    pelix__free(shown);
    return rc;
}

int pelix_value_coerce(const char *name, const pelix_value_t *v, pelix_type_t type,
                       pelix_value_t **ret_value, pelix_error_t *err)
{
    pelix_value_t *out = NULL;
    int64_t l;
    double d;
    bool b;

    if (!name || !v || !ret_value) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    if (v->type == type) {
        out = pelix_value_copy(v);
        goto done;
    }
    switch (type) {
    case PELIX_TYPE_LONG:
        if (v->type == PELIX_TYPE_STRING && parse_long(v->u.s, &l)) {
            out = pelix_value_new_long(l);
        } else if (v->type == PELIX_TYPE_DOUBLE && v->u.d == floor(v->u.d) &&
                   fabs(v->u.d) < 9.2e18) {
            out = pelix_value_new_long((int64_t)v->u.d);
        } else {
            return type_error(name, v, type, err);
        }
        break;
    case PELIX_TYPE_DOUBLE:
        if (v->type == PELIX_TYPE_STRING && parse_double(v->u.s, &d)) {
            out = pelix_value_new_double(d);
        } else if (v->type == PELIX_TYPE_LONG) {
            out = pelix_value_new_double((double)v->u.l);
        } else {
            return type_error(name, v, type, err);
        }
        break;
    case PELIX_TYPE_BOOL:
        if (v->type == PELIX_TYPE_STRING && parse_bool(v->u.s, &b)) {
            out = pelix_value_new_bool(b);
        } else if (v->type == PELIX_TYPE_LONG && (v->u.l == 0 || v->u.l == 1)) {
            out = pelix_value_new_bool(v->u.l == 1);
        } else {
            return type_error(name, v, type, err);
        }
        break;
    case PELIX_TYPE_STRING:
        if (v->type == PELIX_TYPE_LIST) {
            return type_error(name, v, type, err);
        } else {
            char *s = pelix_value_to_string(v);
            out = s ? pelix_value_new_string(s) : NULL;
            pelix__free(s);
        }
        break;
    case PELIX_TYPE_LIST:
        out = pelix_value_new_list();
        if (out && pelix_value_list_append(out, pelix_value_copy(v)) < 0) {
            out = pelix_value_free(out);
        }
        break;
    default:
        return pelix__error(err, -EINVAL, -1, "%s: unknown type %d", name, (int)type);
    }
done:
    if (!out) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    *ret_value = out;
    return 0;
}

/* A bound as shown in messages: integral values without ".0". */
static void format_bound(double d, char out[32])
{
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(out, 32, "%.0f", d);
    } else {
        props__format_double(d, out);
    }
}

static int check_range(const pelix_prop_schema_t *s, const pelix_value_t *v, pelix_error_t *err)
{
    char lo[32], hi[32], val[32];
    double x;

    if (!s->ranged || (v->type != PELIX_TYPE_LONG && v->type != PELIX_TYPE_DOUBLE)) {
        return 0;
    }
    x = pelix_value_double(v);
    if (x >= s->min && x <= s->max) {
        return 0;
    }
    format_bound(s->min, lo);
    format_bound(s->max, hi);
    if (pelix_props_is_secret_key(s->key)) {
        snprintf(val, sizeof(val), "***");
    } else if (v->type == PELIX_TYPE_LONG) {
        snprintf(val, sizeof(val), "%lld", (long long)v->u.l);
    } else {
        props__format_double(x, val);
    }
    return pelix__error(err, PELIX_E_RANGE, -1, "%s: %s is out of range [%s, %s]", s->key, val, lo,
                        hi);
}

int pelix_props_coerce(pelix_props_t *p, const pelix_prop_schema_t *schema, size_t count,
                       pelix_error_t *err)
{
    pelix_value_t **converted;
    int rc = 0;

    if (!p || (!schema && count)) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    for (size_t i = 0; i < count; i++) {
        if (!schema[i].key) {
            return pelix__error(err, -EINVAL, -1, "schema entry %zu has no key", i);
        }
    }
    converted = pelix__calloc(count ? count : 1, sizeof(*converted));
    if (!converted) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    /* Convert everything first, then apply: a failure leaves `p` untouched. */
    for (size_t i = 0; i < count && rc == 0; i++) {
        const pelix_value_t *v = pelix_props_get(p, schema[i].key);
        if (!v) {
            if (schema[i].required) {
                rc = pelix__error(err, PELIX_E_MISSING, -1, "%s: mandatory property missing",
                                  schema[i].key);
            }
            continue;
        }
        rc = pelix_value_coerce(schema[i].key, v, schema[i].type, &converted[i], err);
        if (rc == 0) {
            rc = check_range(&schema[i], converted[i], err);
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (rc == 0 && converted[i]) {
            /* Replacing an existing key cannot fail for lack of room: the array does not grow. */
            const char *key = schema[i].key;
            size_t k;
            for (k = 0; k < p->count && !pelix__streq_nocase(p->entries[k].key, key); k++) {
            }
            pelix_value_free(p->entries[k].value);
            p->entries[k].value = converted[i];
        } else {
            pelix_value_free(converted[i]);
        }
    }
    pelix__free(converted);
    return rc;
}
