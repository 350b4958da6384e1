/*
 * Matching a parsed filter against properties. Pure functions over immutable data: safe to run
 * concurrently. Numbers compare as numbers, strings by bytes, booleans by truth value; a list
 * matches when one of its items does.
 */
#include <ctype.h>
#include <string.h>

#include "filter/filter_internal.h"
#include "util/util.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Equality ignoring ASCII case and blanks (OSGi's approximate match). */
static bool approx_equal(const char *a, const char *b)
{
    for (;;) {
        while (is_blank(*a)) {
            a++;
        }
        while (is_blank(*b)) {
            b++;
        }
        if (!*a || !*b) {
            return !*a && !*b;
        }
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) {
            return false;
        }
        a++;
        b++;
    }
}

/*
 * Substrings. With `approx` ("~="), characters compare ignoring ASCII case and blanks are skipped
 * on both sides, as in approx_equal(); otherwise bytes compare exactly.
 */

/* If `part` matches `s` from its start, the end of the match in `s`; NULL otherwise. */
static const char *match_at(const char *s, const char *part, bool approx)
{
    for (;; s++, part++) {
        if (approx) {
            while (is_blank(*part)) {
                part++;
            }
        }
        if (!*part) {
            return s;
        }
        if (approx) {
            while (is_blank(*s)) {
                s++;
            }
        }
        if (!*s ||
            (approx ? tolower((unsigned char)*s) != tolower((unsigned char)*part) : *s != *part)) {
            return NULL;
        }
    }
}

/* Start of the shortest tail of `s` holding as many compared characters as `part`, or NULL. */
static const char *tail_start(const char *s, const char *part, bool approx)
{
    const char *at = s + strlen(s);
    size_t want = 0;

    for (; *part; part++) {
        want += !approx || !is_blank(*part);
    }
    while (want > 0) {
        if (at == s) {
            return NULL;
        }
        at--;
        want -= !approx || !is_blank(*at);
    }
    return at;
}

static bool substring_match(const filter_node_t *n, const char *s, bool approx)
{
    const char *last = n->parts[n->nparts - 1];
    const char *cursor = match_at(s, n->parts[0], approx);
    const char *end = tail_start(s, last, approx);

    /* The prefix and the suffix, which must not overlap. */
    if (!cursor || !end || cursor > end || !match_at(end, last, approx)) {
        return false;
    }
    /* Middle parts, each at its leftmost occurrence (which ends first), between the two. */
    for (size_t i = 1; i + 1 < n->nparts; i++) {
        const char *at = cursor, *stop;
        while (!(stop = match_at(at, n->parts[i], approx))) {
            if (!*at++) {
                return false;
            }
        }
        if (stop > end) {
            return false;
        }
        cursor = stop;
    }
    return true;
}

/* Sign of (value - filter value) for an ordered comparison; false if they do not compare. */
static bool compare(const filter_node_t *n, const pelix_value_t *v, int *ret_sign)
{
    switch (pelix_value_type(v)) {
    case PELIX_TYPE_STRING: {
        int c = strcmp(pelix_value_string(v), n->value);
        *ret_sign = (c > 0) - (c < 0);
        return true;
    }
    case PELIX_TYPE_LONG: {
        int64_t l = pelix_value_long(v);
        if (n->has_long) {
            *ret_sign = (l > n->lval) - (l < n->lval);
            return true;
        }
        if (n->has_double) {
            double d = (double)l;
            *ret_sign = (d > n->dval) - (d < n->dval);
            return true;
        }
        return false;
    }
    case PELIX_TYPE_DOUBLE:
        if (n->has_double) {
            double d = pelix_value_double(v);
            *ret_sign = (d > n->dval) - (d < n->dval);
            return true;
        }
        return false;
    case PELIX_TYPE_BOOL:
        if (n->bval >= 0) {
            int b = pelix_value_bool(v) ? 1 : 0;
            *ret_sign = (b > n->bval) - (b < n->bval);
            return true;
        }
        return false;
    default:
        return false;
    }
}

static bool match_value(const filter_node_t *n, const pelix_value_t *v)
{
    int sign;

    if (pelix_value_type(v) == PELIX_TYPE_LIST) {
        for (size_t i = 0; i < pelix_value_list_size(v); i++) {
            if (match_value(n, pelix_value_list_at(v, i))) {
                return true;
            }
        }
        return false;
    }
    switch (n->kind) {
    case FILTER_SUBSTRING:
    case FILTER_APPROX_SUBSTRING:
        return pelix_value_type(v) == PELIX_TYPE_STRING &&
               substring_match(n, pelix_value_string(v), n->kind == FILTER_APPROX_SUBSTRING);
    case FILTER_APPROX:
        if (pelix_value_type(v) == PELIX_TYPE_STRING) {
            return approx_equal(pelix_value_string(v), n->value);
        }
        return compare(n, v, &sign) && sign == 0;
    case FILTER_EQ:
        return compare(n, v, &sign) && sign == 0;
    case FILTER_LT:
        return compare(n, v, &sign) && sign < 0;
    case FILTER_LE:
        return compare(n, v, &sign) && sign <= 0;
    case FILTER_GT:
        return compare(n, v, &sign) && sign > 0;
    case FILTER_GE:
        return compare(n, v, &sign) && sign >= 0;
    default:
        return false;
    }
}

static bool match_node(const filter_node_t *n, const pelix_props_t *props)
{
    const pelix_value_t *v;

    switch (n->kind) {
    case FILTER_AND:
        for (size_t i = 0; i < n->nkids; i++) {
            if (!match_node(n->kids[i], props)) {
                return false;
            }
        }
        return true;
    case FILTER_OR:
        for (size_t i = 0; i < n->nkids; i++) {
            if (match_node(n->kids[i], props)) {
                return true;
            }
        }
        return false;
    case FILTER_NOT:
        return !match_node(n->kids[0], props);
    case FILTER_PRESENT:
        v = pelix_props_get(props, n->attr);
        if (!v) {
            return false;
        }
        /* As in Pelix: an empty string or list holds nothing. */
        if (pelix_value_type(v) == PELIX_TYPE_STRING) {
            return pelix_value_string(v)[0] != '\0';
        }
        return pelix_value_type(v) != PELIX_TYPE_LIST || pelix_value_list_size(v) > 0;
    default:
        v = pelix_props_get(props, n->attr);
        return v && match_value(n, v);
    }
}

bool pelix_filter_match(const pelix_filter_t *f, const pelix_props_t *props)
{
    if (!f) {
        return true;
    }
    return match_node(f->root, props);
}
