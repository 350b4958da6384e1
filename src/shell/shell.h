/*
 * The shell of pelix-mqtt (internal module `shell`): a command line parser and the commands,
 * with Pelix's names where Pelix has one: help, quit, sl, sd, config.create/update/delete/
 * reload/list, mqtt.connections, mqtt.publish, mqtt.subscribe, mqtt.unsubscribe, mqtt.stats.
 *
 * Output discipline: a command's results go to the shell's `out` stream, messages received by
 * `mqtt.subscribe` listeners too (one line each, flushed per line); errors go to the logger, one
 * line each saying what was wrong ("config.update: port: \"abc\" is not an integer"). A bad
 * command changes nothing and never stops anything.
 *
 * Threads: pelix__shell_exec() is called by one thread at a time (the program's input thread).
 * Subscription listeners print from the threads the MQTT service calls listeners on (dispatch
 * workers, or the thread that read the message: pelix_mqtt_options_t.direct_us); writes to `out`
 * are serialised by the shell, so lines never interleave. No lock is held while a service of the
 * registry is called.
 */
#ifndef PELIX_SHELL_H
#define PELIX_SHELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <pelix/configadmin.h>
#include <pelix/log.h>
#include <pelix/mqtt.h>
#include <pelix/registry.h>

/** pelix__shell_exec()'s result for `quit`. */
#define PELIX_SHELL_QUIT 1

typedef struct pelix_shell pelix_shell_t;

typedef struct pelix_shell_options {
    pelix_registry_t *reg;   /* required; outlives the shell */
    pelix_configadmin_t *ca; /* for config.*; NULL: those commands say it is not running */
    pelix_mqtt_t *mqtt;      /* for mqtt.connections and mqtt.stats; NULL: likewise */
    FILE *out;               /* results and subscribed messages; NULL: stdout */
    pelix_logger_t logger;   /* errors (module "shell") */
} pelix_shell_options_t;

/**
 * @brief A shell on the given runtime.
 * @param[out] ret_shell owned by the caller; free with pelix__shell_free().
 * @return 0, -EINVAL (no registry), -ENOMEM.
 */
int pelix__shell_new(const pelix_shell_options_t *opts, pelix_shell_t **ret_shell);

/**
 * @brief Unregisters the listeners `mqtt.subscribe` registered (waiting for a call in progress)
 * and frees the shell. NULL accepted; returns NULL. Not from a listener callback.
 */
pelix_shell_t *pelix__shell_free(pelix_shell_t *sh);

/**
 * @brief Parses and runs one command line. Blank lines and lines starting with '#' do nothing.
 * @return 0; PELIX_SHELL_QUIT for `quit`; a negative error code, already reported in one line.
 */
int pelix__shell_exec(pelix_shell_t *sh, const char *line);

/** @brief The command names, sorted (static storage), for completion; `*count` is set. */
const char *const *pelix__shell_commands(size_t *count);

/* ---- parsing --------------------------------------------------------------------------------- */

/** One word of a command line: its text, and whether any of it was quoted. */
typedef struct pelix_shell_word {
    char *text;
    bool quoted;
} pelix_shell_word_t;

/**
 * @brief Splits a line into words at blanks. Double or single quotes keep blanks ("a b" is one
 * word, a"b c"d is `ab cd`); inside double quotes and outside quotes, a backslash takes the next
 * character as it is. The quotes are removed.
 * @param[out] ret_words an array of `*ret_count` words, owned by the caller
 *             (pelix__shell_words_free()).
 * @param[out] err the reason on failure ("unterminated quote at column 7").
 * @return 0, PELIX_E_COMMAND (unterminated quote, trailing backslash), -EINVAL, -ENOMEM.
 */
int pelix__shell_split(const char *line, pelix_shell_word_t **ret_words, size_t *ret_count,
                       pelix_error_t *err);

void pelix__shell_words_free(pelix_shell_word_t *words, size_t count);

/**
 * @brief The value of a `k=v` word: a quoted value is a string; otherwise `true`/`false` are
 * booleans, a decimal integer is an integer, a decimal number with a point or exponent is a
 * double, anything else a string. A schema of the target may coerce it further.
 * @return a new value, or NULL without memory or when `text` is not valid UTF-8 (which the
 * caller checks first, to say so).
 */
pelix_value_t *pelix__shell_value(const char *text, bool quoted);

#endif
