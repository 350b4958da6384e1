/*
 * JSON in (jansson) and out (our own writer). The writer reproduces Python's
 * json.dumps(obj, sort_keys=True, indent=4, separators=(",", ": ")) byte for byte, the format of
 * Pelix's configuration files: ASCII-only output with lowercase \uXXXX escapes (surrogate pairs
 * above U+FFFF), short escapes for \b \f \n \r \t \" \\, and floats in Python's repr() form.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "props/props_internal.h"
#include "util/util.h"

/* ---- floats ---------------------------------------------------------------------------------- */

/* True if the decimal m * 10^e reads back as `d`. */
static bool reads_back(unsigned long long m, int e, double d)
{
    char s[40];

    snprintf(s, sizeof(s), "%llue%d", m, e);
    return strtod(s, NULL) == d;
}

void props__format_double(double d, char out[32])
{
    char sci[40], digits[24];
    unsigned long long m;
    int prec, e, exp10, ndigits, decpt, pos = 0;
    const char *p;

    if (signbit(d)) {
        out[pos++] = '-';
        d = -d;
    }
    /*
     * Shortest digits that read back as the same double (what repr() prints): the correctly
     * rounded %e form of each precision, and its two neighbours, because next to a power of two
     * the rounding interval is lopsided and the closest decimal may miss where a neighbour on the
     * wider side hits (e.g. 2**-1017 is 7.120236347223045e-307). 17 digits always read back.
     */
    for (prec = 0;; prec++) {
        snprintf(sci, sizeof(sci), "%.*e", prec, d);
        m = 0;
        for (p = sci; *p != 'e'; p++) {
            if (*p != '.') {
                m = m * 10 + (unsigned long long)(*p - '0');
            }
        }
        e = atoi(p + 1) - prec;
        if (prec == 16 || reads_back(m, e, d)) {
            break;
        }
        if (reads_back(m + 1, e, d)) {
            m++;
            break;
        }
        if (m > 1 && reads_back(m - 1, e, d)) {
            m--;
            break;
        }
    }
    ndigits = snprintf(digits, sizeof(digits), "%llu", m);
    exp10 = e + ndigits - 1;
    while (ndigits > 1 && digits[ndigits - 1] == '0') {
        ndigits--;
    }
    digits[ndigits] = '\0';
    decpt = exp10 + 1;

    if (decpt <= -4 || decpt > 16) {
        pos += snprintf(out + pos, (size_t)(32 - pos), "%c", digits[0]);
        if (ndigits > 1) {
            pos += snprintf(out + pos, (size_t)(32 - pos), ".%s", digits + 1);
        }
        snprintf(out + pos, (size_t)(32 - pos), "e%c%02d", exp10 < 0 ? '-' : '+',
                 exp10 < 0 ? -exp10 : exp10);
    } else if (decpt <= 0) {
        pos += snprintf(out + pos, (size_t)(32 - pos), "0.");
        for (int i = 0; i < -decpt; i++) {
            out[pos++] = '0';
        }
        snprintf(out + pos, (size_t)(32 - pos), "%s", digits);
    } else if (decpt >= ndigits) {
        pos += snprintf(out + pos, (size_t)(32 - pos), "%s", digits);
        for (int i = 0; i < decpt - ndigits; i++) {
            out[pos++] = '0';
        }
        snprintf(out + pos, (size_t)(32 - pos), ".0");
    } else {
        snprintf(out + pos, (size_t)(32 - pos), "%.*s.%s", decpt, digits, digits + decpt);
    }
}

/* ---- writer ---------------------------------------------------------------------------------- */

static void put_u16(pelix_buf_t *b, unsigned cp)
{
    pelix__buf_printf(b, "\\u%04x", cp);
}

void props__json_string(pelix_buf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    pelix__buf_putc(b, '"');
    while (*p) {
        unsigned c = *p;
        if (c >= 0x80) {
            /* Valid UTF-8 is an invariant of values and keys. */
            unsigned cp;
            int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
            cp = c & (0x3Fu >> n);
            for (int i = 1; i <= n; i++) {
                cp = (cp << 6) | (p[i] & 0x3Fu);
            }
            p += n + 1;
            if (cp >= 0x10000) {
                cp -= 0x10000;
                put_u16(b, 0xD800 | (cp >> 10));
                put_u16(b, 0xDC00 | (cp & 0x3FF));
            } else {
                put_u16(b, cp);
            }
            continue;
        }
        switch (c) {
        case '"':
            pelix__buf_puts(b, "\\\"");
            break;
        case '\\':
            pelix__buf_puts(b, "\\\\");
            break;
        case '\b':
            pelix__buf_puts(b, "\\b");
            break;
        case '\f':
            pelix__buf_puts(b, "\\f");
            break;
        case '\n':
            pelix__buf_puts(b, "\\n");
            break;
        case '\r':
            pelix__buf_puts(b, "\\r");
            break;
        case '\t':
            pelix__buf_puts(b, "\\t");
            break;
        default:
            if (c < 0x20 || c == 0x7F) {
                put_u16(b, c);
            } else {
                pelix__buf_putc(b, (char)c);
            }
        }
        p++;
    }
    pelix__buf_putc(b, '"');
}

static void indent(pelix_buf_t *b, int level)
{
    pelix__buf_putc(b, '\n');
    for (int i = 0; i < level * 4; i++) {
        pelix__buf_putc(b, ' ');
    }
}

static void write_value(pelix_buf_t *b, const pelix_value_t *v, int level)
{
    char num[32];

    switch (v->type) {
    case PELIX_TYPE_STRING:
        props__json_string(b, v->u.s);
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
        if (!v->u.list.count) {
            pelix__buf_puts(b, "[]");
            break;
        }
        pelix__buf_putc(b, '[');
        for (size_t i = 0; i < v->u.list.count; i++) {
            if (i) {
                pelix__buf_putc(b, ',');
            }
            indent(b, level + 1);
            write_value(b, v->u.list.items[i], level + 1);
        }
        indent(b, level);
        pelix__buf_putc(b, ']');
        break;
    }
}

int pelix_props_to_json(const pelix_props_t *p, char **ret_json)
{
    pelix_buf_t b = {0};
    char *out;

    if (!p || !ret_json) {
        return -EINVAL;
    }
    if (!p->count) {
        pelix__buf_puts(&b, "{}");
    } else {
        pelix__buf_putc(&b, '{');
        for (size_t i = 0; i < p->count; i++) {
            if (i) {
                pelix__buf_putc(&b, ',');
            }
            indent(&b, 1);
            props__json_string(&b, p->entries[i].key);
            pelix__buf_puts(&b, ": ");
            write_value(&b, p->entries[i].value, 1);
        }
        indent(&b, 0);
        pelix__buf_putc(&b, '}');
    }
    out = pelix__buf_take(&b);
    if (!out) {
        return -ENOMEM;
    }
    *ret_json = out;
    return 0;
}

/* ---- reader ---------------------------------------------------------------------------------- */

static int from_json(const char *key, json_t *j, pelix_value_t **ret, pelix_error_t *err)
{
    pelix_value_t *v = NULL;

    switch (json_typeof(j)) {
    case JSON_STRING:
        /* jansson guarantees UTF-8 and (without JSON_ALLOW_NUL) no NUL. */
        v = pelix_value_new_string(json_string_value(j));
        break;
    case JSON_INTEGER:
        v = pelix_value_new_long((int64_t)json_integer_value(j));
        break;
    case JSON_REAL:
        v = pelix_value_new_double(json_real_value(j));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v = pelix_value_new_bool(json_is_true(j));
        break;
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        v = pelix_value_new_list();
        json_array_foreach(j, i, item)
        {
            pelix_value_t *iv;
            int rc;
            if (!v) {
                break;
            }
            rc = from_json(key, item, &iv, err);
            if (rc < 0) {
                pelix_value_free(v);
                return rc;
            }
            if (pelix_value_list_append(v, iv) < 0) {
                v = pelix_value_free(v);
            }
        }
        break;
    }
    case JSON_NULL:
        return pelix__error(err, PELIX_E_JSON, -1, "%s: null is not a property value", key);
    case JSON_OBJECT:
        return pelix__error(err, PELIX_E_JSON, -1, "%s: objects are not property values", key);
    }
    if (!v) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    *ret = v;
    return 0;
}

int pelix_props_from_json(const char *text, size_t len, pelix_props_t **ret_props,
                          pelix_error_t *err)
{
    json_error_t jerr;
    json_t *root, *jv;
    const char *key;
    pelix_props_t *p = NULL;
    int rc = 0;

    if (!text || !ret_props) {
        return pelix__error(err, -EINVAL, -1, "no JSON text");
    }
    root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        return pelix__error(err, PELIX_E_JSON, jerr.line, "line %d, column %d: %s", jerr.line,
                            jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        rc = pelix__error(err, PELIX_E_JSON, 1, "the top level is not a JSON object");
        goto out;
    }
    p = pelix_props_new();
    if (!p) {
        rc = pelix__error(err, -ENOMEM, -1, "out of memory");
        goto out;
    }
    json_object_foreach(root, key, jv)
    {
        pelix_value_t *v;
        if (!*key) {
            rc = pelix__error(err, PELIX_E_JSON, -1, "empty property name");
            goto out;
        }
        for (size_t i = 0; i < p->count; i++) {
            if (pelix__streq_nocase(p->entries[i].key, key)) {
                rc = pelix__error(err, PELIX_E_JSON, -1,
                                  "property names '%s' and '%s' differ only in case",
                                  p->entries[i].key, key);
                goto out;
            }
        }
        rc = from_json(key, jv, &v, err);
        if (rc < 0) {
            goto out;
        }
        rc = props__set_owned(p, key, v);
        if (rc < 0) {
            rc = pelix__error(err, rc, -1, "%s: %s", key, pelix_strerror(rc));
            goto out;
        }
    }
out:
    json_decref(root);
    if (rc < 0) {
        pelix_props_free(p);
        return rc;
    }
    *ret_props = p;
    return 0;
}
