/* String helpers: ASCII case folding, UTF-8 validation and a growable buffer. */
#include <stdio.h>
#include <string.h>

#include "util/util.h"

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

int pelix__strcasecmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;

    while (*x && lower(*x) == lower(*y)) {
        x++;
        y++;
    }
    return lower(*x) - lower(*y);
}

bool pelix__streq_nocase(const char *a, const char *b)
{
    return pelix__strcasecmp(a, b) == 0;
}

bool pelix__utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;

    while (p < end) {
        unsigned c = *p;
        size_t n;
        unsigned cp;

        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= n) {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        p += n + 1;
    }
    return true;
}

bool pelix__str_blank(const char *s)
{
    for (; *s; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\f' && *s != '\v') {
            return false;
        }
    }
    return true;
}

void pelix__buf_putn(pelix_buf_t *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (pelix__grow((void **)&b->data, &b->cap, b->len + n + 1, 1) < 0) {
        b->oom = true;
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void pelix__buf_puts(pelix_buf_t *b, const char *s)
{
    pelix__buf_putn(b, s, strlen(s));
}

void pelix__buf_putc(pelix_buf_t *b, char c)
{
    pelix__buf_putn(b, &c, 1);
}

void pelix__buf_printf(pelix_buf_t *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        pelix__buf_putn(b, small, (size_t)n);
        return;
    }
    if (b->oom || pelix__grow((void **)&b->data, &b->cap, b->len + (size_t)n + 1, 1) < 0) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *pelix__buf_take(pelix_buf_t *b)
{
    char *out;

    if (!b->oom && !b->data) {
        pelix__buf_putn(b, "", 0);
    }
    if (b->oom) {
        pelix__buf_reset(b);
        return NULL;
    }
    out = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return out;
}

void pelix__buf_reset(pelix_buf_t *b)
{
    pelix__free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}
