/*
 * LDAP filter parser: recursive descent over the bytes of the text, building an immutable tree.
 *
 * Grammar (RFC 1960 as OSGi and Pelix read it, blanks allowed between components):
 *   filter  = "(" ( "&" filter* | "|" filter* | "!" filter | item ) ")"
 *   item    = attr op value      op = "=" | "~=" | "<=" | ">=" | "<" | ">"
 * A value of exactly "*" is a presence test; other unescaped "*" in "=" and "~=" values are
 * wildcards. "\" escapes the next character. Attribute names and values are trimmed of unescaped
 * blanks. Every error names the offset where it was found.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter_internal.h"
#include "util/util.h"

typedef struct parser {
    const char *text;
    size_t pos;
    pelix_error_t *err;
    int depth;
} parser_t;

#define MAX_DEPTH 64

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void skip_blanks(parser_t *p)
{
    while (is_blank(p->text[p->pos])) {
        p->pos++;
    }
}

static int syntax(parser_t *p, size_t pos, const char *reason)
{
    return pelix__error(p->err, PELIX_E_FILTER_SYNTAX, (long)pos, "%s at offset %zu in '%s'",
                        reason, pos, p->text);
}

void filter__node_free(filter_node_t *n)
{
    if (!n) {
        return;
    }
    for (size_t i = 0; i < n->nkids; i++) {
        filter__node_free(n->kids[i]);
    }
    pelix__free(n->kids);
    for (size_t i = 0; i < n->nparts; i++) {
        pelix__free(n->parts[i]);
    }
    pelix__free(n->parts);
    pelix__free(n->attr);
    pelix__free(n->value);
    pelix__free(n);
}

static int oom(parser_t *p)
{
    return pelix__error(p->err, -ENOMEM, -1, "out of memory");
}

/* Unescapes text[start, end) into a new string: "\x" becomes "x". */
static char *unescape(const char *s, size_t start, size_t end)
{
    char *out = pelix__malloc(end - start + 1);
    size_t n = 0;

    if (!out) {
        return NULL;
    }
    for (size_t i = start; i < end; i++) {
        if (s[i] == '\\' && i + 1 < end) {
            i++;
        }
        out[n++] = s[i];
    }
    out[n] = '\0';
    return out;
}

static void read_scalars(filter_node_t *n)
{
    const char *v = n->value;
    char *end;

    n->bval = -1;
    if (pelix__streq_nocase(v, "true")) {
        n->bval = 1;
    } else if (pelix__streq_nocase(v, "false")) {
        n->bval = 0;
    }
    if (!*v || is_blank(*v)) {
        return;
    }
    errno = 0;
    long long l = strtoll(v, &end, 10);
    if (!errno && !*end) {
        n->has_long = true;
        n->lval = (int64_t)l;
    }
    if (strspn(v, "0123456789+-.eE") == strlen(v)) {
        errno = 0;
        double d = strtod(v, &end);
        if (!errno && !*end && isfinite(d)) {
            n->has_double = true;
            n->dval = d;
        }
    }
}

/* True if the character at `pos` is escaped: preceded by an odd run of backslashes. */
static bool escaped(const char *s, size_t start, size_t pos)
{
    size_t n = 0;
    while (pos > start && s[pos - 1] == '\\') {
        pos--;
        n++;
    }
    return n % 2 == 1;
}

/* Trims unescaped blanks of text[*start, *end). */
static void trim(const char *s, size_t *start, size_t *end)
{
    while (*start < *end && is_blank(s[*start])) {
        (*start)++;
    }
    while (*end > *start && is_blank(s[*end - 1]) && !escaped(s, *start, *end - 1)) {
        (*end)--;
    }
}

static int parse_substring(parser_t *p, filter_node_t *n, size_t start, size_t end)
{
    const char *s = p->text;
    size_t from = start, cap = 0;

    for (size_t i = start; i <= end; i++) {
        if (i < end && s[i] == '\\') {
            i++;
            continue;
        }
        if (i == end || s[i] == '*') {
            char *part = unescape(s, from, i);
            if (!part || pelix__grow((void **)&n->parts, &cap, n->nparts + 1, sizeof(char *)) < 0) {
                pelix__free(part);
                return oom(p);
            }
            n->parts[n->nparts++] = part;
            from = i + 1;
        }
    }
    return 0;
}

static int parse_item(parser_t *p, filter_node_t *n)
{
    const char *s = p->text;
    size_t name_start = p->pos, name_end, op_pos, vstart, vend;
    bool star = false;

    /* Attribute: up to the first unescaped operator character. */
    for (;; p->pos++) {
        char c = s[p->pos];
        if (c == '\\' && s[p->pos + 1]) {
            p->pos++;
            continue;
        }
        if (!c || c == ')') {
            return syntax(p, p->pos, "missing operator");
        }
        if (c == '(') {
            return syntax(p, p->pos, "unescaped '(' in an attribute name");
        }
        if (c == '=' || c == '<' || c == '>' || c == '~') {
            break;
        }
    }
    name_end = p->pos;
    trim(s, &name_start, &name_end);
    if (name_start == name_end) {
        return syntax(p, name_start, "empty attribute name");
    }
    op_pos = p->pos;
    switch (s[p->pos]) {
    case '=':
        n->kind = FILTER_EQ;
        p->pos++;
        break;
    case '~':
        if (s[p->pos + 1] != '=') {
            return syntax(p, p->pos, "'~' must be followed by '='");
        }
        n->kind = FILTER_APPROX;
        p->pos += 2;
        break;
    default:
        if (s[p->pos + 1] == '=') {
            n->kind = s[p->pos] == '<' ? FILTER_LE : FILTER_GE;
            p->pos += 2;
        } else {
            n->kind = s[p->pos] == '<' ? FILTER_LT : FILTER_GT;
            p->pos++;
        }
    }
    /* Value: up to the closing parenthesis. */
    vstart = p->pos;
    for (;; p->pos++) {
        char c = s[p->pos];
        if (c == '\\') {
            if (!s[p->pos + 1]) {
                return syntax(p, p->pos, "dangling '\\' at the end");
            }
            p->pos++;
            continue;
        }
        if (!c) {
            return syntax(p, p->pos, "missing ')'");
        }
        if (c == '(') {
            return syntax(p, p->pos, "unescaped '(' in a value");
        }
        if (c == ')') {
            break;
        }
        if (c == '*') {
            star = true;
        }
    }
    vend = p->pos;
    p->pos++; /* ')' */
    trim(s, &vstart, &vend);
    if (vstart == vend) {
        return syntax(p, op_pos, "empty value");
    }
    n->attr = unescape(s, name_start, name_end);
    if (!n->attr) {
        return oom(p);
    }
    if (vend - vstart == 1 && s[vstart] == '*') {
        n->kind = FILTER_PRESENT;
        return 0;
    }
    if (star && (n->kind == FILTER_EQ || n->kind == FILTER_APPROX)) {
        n->kind = n->kind == FILTER_EQ ? FILTER_SUBSTRING : FILTER_APPROX_SUBSTRING;
        return parse_substring(p, n, vstart, vend);
    }
    n->value = unescape(s, vstart, vend);
    if (!n->value) {
        return oom(p);
    }
    read_scalars(n);
    return 0;
}

static int parse_filter(parser_t *p, filter_node_t **ret);

static int add_kid(parser_t *p, filter_node_t *n, filter_node_t *kid, size_t *cap)
{
    if (pelix__grow((void **)&n->kids, cap, n->nkids + 1, sizeof(*n->kids)) < 0) {
        filter__node_free(kid);
        return oom(p);
    }
    n->kids[n->nkids++] = kid;
    return 0;
}

static int parse_filter(parser_t *p, filter_node_t **ret)
{
    filter_node_t *n, *kid;
    size_t open = p->pos, cap = 0;
    int rc = 0;

    if (p->text[p->pos] != '(') {
        return syntax(p, p->pos, "expected '('");
    }
    if (++p->depth > MAX_DEPTH) {
        return syntax(p, p->pos, "filter nested too deeply");
    }
    p->pos++;
    n = pelix__calloc(1, sizeof(*n));
    if (!n) {
        return oom(p);
    }
    n->bval = -1;
    skip_blanks(p);
    switch (p->text[p->pos]) {
    case '&':
    case '|':
        n->kind = p->text[p->pos] == '&' ? FILTER_AND : FILTER_OR;
        p->pos++;
        for (;;) {
            skip_blanks(p);
            if (p->text[p->pos] == ')') {
                p->pos++;
                break;
            }
            if (p->text[p->pos] != '(') {
                rc = syntax(p, p->pos, p->text[p->pos] ? "expected '(' or ')'" : "missing ')'");
                break;
            }
            rc = parse_filter(p, &kid);
            if (rc == 0) {
                rc = add_kid(p, n, kid, &cap);
            }
            if (rc < 0) {
                break;
            }
        }
        break;
    case '!':
        n->kind = FILTER_NOT;
        p->pos++;
        skip_blanks(p);
        rc = parse_filter(p, &kid);
        if (rc == 0) {
            rc = add_kid(p, n, kid, &cap);
        }
        if (rc == 0) {
            skip_blanks(p);
            if (p->text[p->pos] != ')') {
                rc =
                    syntax(p, p->pos,
                           p->text[p->pos] == '(' ? "'!' takes exactly one filter" : "missing ')'");
            } else {
                p->pos++;
            }
        }
        break;
    case '\0':
        rc = syntax(p, open, "unclosed '('");
        break;
    case '(':
        rc = syntax(p, p->pos, "expected '&', '|', '!' or an attribute name");
        break;
    default:
        rc = parse_item(p, n);
    }
    p->depth--;
    if (rc < 0) {
        filter__node_free(n);
        return rc;
    }
    /* A conjunction or disjunction of one filter is that filter. */
    if ((n->kind == FILTER_AND || n->kind == FILTER_OR) && n->nkids == 1) {
        kid = n->kids[0];
        n->nkids = 0;
        filter__node_free(n);
        n = kid;
    }
    *ret = n;
    return 0;
}

/* ---- normalized text ------------------------------------------------------------------------- */

/* Writes `s` escaping '\\', the `special` characters, the `lead` characters in first position
 * (which would be read as an operator there) and blanks at the edges (which would be trimmed). */
static void put_escaped(pelix_buf_t *b, const char *s, const char *special, const char *lead)
{
    size_t len = strlen(s);

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\' || strchr(special, c) || (i == 0 && strchr(lead, c)) ||
            (is_blank(c) && (i == 0 || i == len - 1))) {
            pelix__buf_putc(b, '\\');
        }
        pelix__buf_putc(b, c);
    }
}

static void write_node(pelix_buf_t *b, const filter_node_t *n)
{
    static const char *const ops[] = {
        [FILTER_EQ] = "=",      [FILTER_APPROX] = "~=",   [FILTER_LT] = "<",
        [FILTER_LE] = "<=",     [FILTER_GT] = ">",        [FILTER_GE] = ">=",
        [FILTER_PRESENT] = "=", [FILTER_SUBSTRING] = "=", [FILTER_APPROX_SUBSTRING] = "~=",
    };

    pelix__buf_putc(b, '(');
    switch (n->kind) {
    case FILTER_AND:
    case FILTER_OR:
    case FILTER_NOT:
        pelix__buf_putc(b, n->kind == FILTER_AND ? '&' : n->kind == FILTER_OR ? '|' : '!');
        for (size_t i = 0; i < n->nkids; i++) {
            write_node(b, n->kids[i]);
        }
        break;
    default:
        /* "&", "|", "!" would start a composite; "=" after "<" or ">" would read as "<=", ">=". */
        put_escaped(b, n->attr, "()=<>~*", "&|!");
        pelix__buf_puts(b, ops[n->kind]);
        if (n->kind == FILTER_PRESENT) {
            pelix__buf_putc(b, '*');
        } else if (n->value) {
            put_escaped(b, n->value, "()*",
                        n->kind == FILTER_LT || n->kind == FILTER_GT ? "=" : "");
        } else {
            for (size_t i = 0; i < n->nparts; i++) {
                if (i) {
                    pelix__buf_putc(b, '*');
                }
                put_escaped(b, n->parts[i], "()*", "");
            }
        }
    }
    pelix__buf_putc(b, ')');
}

int pelix_filter_parse(const char *text, pelix_filter_t **ret_filter, pelix_error_t *err)
{
    parser_t p = {.text = text, .pos = 0, .err = err, .depth = 0};
    pelix_filter_t *f;
    pelix_buf_t b = {0};
    int rc;

    if (!text || !ret_filter) {
        return pelix__error(err, -EINVAL, -1, "no filter");
    }
    skip_blanks(&p);
    if (!text[p.pos]) {
        return syntax(&p, p.pos, "empty filter");
    }
    f = pelix__calloc(1, sizeof(*f));
    if (!f) {
        return oom(&p);
    }
    atomic_init(&f->refs, 1);
    rc = parse_filter(&p, &f->root);
    if (rc == 0) {
        skip_blanks(&p);
        if (text[p.pos]) {
            rc = syntax(&p, p.pos,
                        text[p.pos] == ')' ? "unbalanced ')'" : "unexpected text after the filter");
        }
    }
    if (rc == 0) {
        write_node(&b, f->root);
        f->text = pelix__buf_take(&b);
        if (!f->text) {
            rc = oom(&p);
        }
    }
    if (rc < 0) {
        pelix_filter_unref(f);
        return rc;
    }
    *ret_filter = f;
    return 0;
}

pelix_filter_t *pelix_filter_ref(pelix_filter_t *f)
{
    if (f) {
        atomic_fetch_add(&f->refs, 1);
    }
    return f;
}

pelix_filter_t *pelix_filter_unref(pelix_filter_t *f)
{
    if (f && atomic_fetch_sub(&f->refs, 1) == 1) {
        filter__node_free(f->root);
        pelix__free(f->text);
        pelix__free(f);
    }
    return NULL;
}

const char *pelix_filter_text(const pelix_filter_t *f)
{
    return f ? f->text : NULL;
}
