/*
 * Private to the shell module: the shell object, the command table and the helpers the commands
 * share (shell.c), the configuration commands (cmd_config.c) and the MQTT commands (cmd_mqtt.c).
 */
#ifndef PELIX_SHELL_INTERNAL_H
#define PELIX_SHELL_INTERNAL_H

#include <pthread.h>

#include "shell/shell.h"
#include "util/util.h"

typedef struct shell_sub shell_sub_t;

struct pelix_shell {
    pelix_shell_options_t o;
    pthread_mutex_t out_lock; /* one line at a time on `out` */
    /* listeners registered by mqtt.subscribe (input thread only) */
    shell_sub_t **subs;
    size_t nsubs, capsubs;
};

typedef int (*shell_cmd_fn)(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);

typedef struct shell_cmd {
    const char *name;
    const char *usage; /* arguments */
    const char *help;  /* one line */
    shell_cmd_fn fn;
} shell_cmd_t;

/* Prints to the shell's output under its lock, flushed. */
void shell__print(pelix_shell_t *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports one error line "<cmd>: <message>" and returns `code` (negative). */
int shell__fail(pelix_shell_t *sh, const char *cmd, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Checks the number of arguments (words after the command); an error with the usage if not. */
int shell__arity(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n, size_t min, size_t max);
/* Parses a decimal long; false if it is not one. */
bool shell__long(const char *text, long *ret);
/* Prints a value as it would be typed back: strings quoted when needed, lists in brackets. */
char *shell__value_text(const pelix_value_t *v);

int shell__cmd_config_create(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
int shell__cmd_config_update(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
int shell__cmd_config_delete(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
int shell__cmd_config_reload(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
int shell__cmd_config_list(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);

int shell__cmd_mqtt_connections(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
int shell__cmd_mqtt_publish(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
int shell__cmd_mqtt_subscribe(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
int shell__cmd_mqtt_unsubscribe(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
int shell__cmd_mqtt_stats(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
/* Unregisters every mqtt.subscribe listener (pelix__shell_free). */
void shell__subs_free(pelix_shell_t *sh);

#endif
