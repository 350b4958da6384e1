/*
 * The shell's command line parser (src/shell/parse.c): words, quotes, backslashes, and the typed
 * value of each `k=v` word. Properties: no crash, leak or undefined behaviour on any line; a
 * refused line (unterminated quote, trailing backslash) comes with a reason and no words; no
 * word is longer than the line, and there are no more words than half the line plus one.
 */
#include <pelix/errors.h>
#include <pelix/props.h>

#include "fuzz.h"
#include "shell/shell.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = fz_string(data, size);
    size_t len = strlen(line), n = 0;
    pelix_shell_word_t *words = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    int rc = pelix__shell_split(line, &words, &n, &err);

    if (rc == 0) {
        FZ_CHECK(n <= len / 2 + 1);
        for (size_t i = 0; i < n; i++) {
            FZ_CHECK(words[i].text != NULL && strlen(words[i].text) <= len);
            const char *eq = strchr(words[i].text, '=');
            if (eq) {
                pelix_value_t *v = pelix__shell_value(eq + 1, words[i].quoted);
                if (!pelix__utf8_valid(eq + 1, strlen(eq + 1))) {
                    FZ_CHECK(v == NULL); /* the commands say so before (cmd_config.c) */
                    continue;
                }
                FZ_CHECK(v != NULL);
                pelix_type_t type = pelix_value_type(v);
                FZ_CHECK(type == PELIX_TYPE_STRING || type == PELIX_TYPE_LONG ||
                         type == PELIX_TYPE_DOUBLE || type == PELIX_TYPE_BOOL);
                FZ_CHECK(!words[i].quoted || type == PELIX_TYPE_STRING);
                pelix_value_free(v);
            }
        }
        pelix__shell_words_free(words, n);
    } else {
        FZ_CHECK(rc == -ENOMEM || (rc == PELIX_E_COMMAND && err.text[0] != '\0'));
    }
    free(line);
    return 0;
}
