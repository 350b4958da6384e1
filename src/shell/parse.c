/*
 * Command line parsing: words, quotes, and the typing of `k=v` values (shell.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shell/shell.h"
#include "util/util.h"

void pelix__shell_words_free(pelix_shell_word_t *words, size_t count)
{
    for (size_t i = 0; words && i < count; i++) {
        pelix__free(words[i].text);
    }
    pelix__free(words);
}

int pelix__shell_split(const char *line, pelix_shell_word_t **ret_words, size_t *ret_count,
                       pelix_error_t *err)
{
    size_t len, count = 0, cap = 0;
    pelix_shell_word_t *words = NULL;
    const char *p;
    char *buf;
    int rc = 0;

    if (!line || !ret_words || !ret_count) {
        return -EINVAL;
    }
    len = strlen(line);
    buf = pelix__malloc(len + 1);
    if (!buf) {
        return -ENOMEM;
    }
    p = line;
    for (;;) {
        size_t n = 0;
        bool quoted = false;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            p++;
        }
        if (!*p) {
            break;
        }
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            if (*p == '"' || *p == '\'') {
                const char q = *p, *open = p++;
                quoted = true;
                while (*p && *p != q) {
                    if (q == '"' && *p == '\\' && p[1]) {
                        p++;
                    }
                    buf[n++] = *p++;
                }
                if (!*p) {
                    rc = pelix__error(err, PELIX_E_COMMAND, (long)(open - line),
                                      "unterminated quote at column %ld", (long)(open - line) + 1);
                    goto out;
                }
                p++;
            } else if (*p == '\\') {
                if (!p[1]) {
                    rc = pelix__error(err, PELIX_E_COMMAND, (long)(p - line),
                                      "backslash at the end of the line");
                    goto out;
                }
                buf[n++] = p[1];
                p += 2;
            } else {
                buf[n++] = *p++;
            }
        }
        if (pelix__grow((void **)&words, &cap, count + 1, sizeof(*words)) != 0 ||
            !(words[count].text = pelix__malloc(n + 1))) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(words[count].text, buf, n);
        words[count].text[n] = '\0';
        words[count].quoted = quoted;
        count++;
    }
out:
    pelix__free(buf);
    if (rc < 0) {
        pelix__shell_words_free(words, count);
        return rc;
    }
    *ret_words = words;
    *ret_count = count;
    return 0;
}

pelix_value_t *pelix__shell_value(const char *text, bool quoted)
{
    char *end;

    if (!quoted && *text) {
        if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
            return pelix_value_new_bool(text[0] == 't');
        }
        errno = 0;
        long long l = strtoll(text, &end, 10);
        if (!*end && errno == 0) {
            return pelix_value_new_long((int64_t)l);
        }
        if (strpbrk(text, ".eE") && !strpbrk(text, "xXnN")) { /* not hex, nan or inf */
            errno = 0;
            double d = strtod(text, &end);
            if (!*end && errno == 0) {
                return pelix_value_new_double(d);
            }
        }
    }
    return pelix_value_new_string(text);
}
