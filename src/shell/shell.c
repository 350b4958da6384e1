/*
 * The shell: the command table, dispatch, help, quit and the registry commands (sl, sd), plus
 * the output and error helpers the other commands share.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "shell/shell_internal.h"

static int cmd_help(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
static int cmd_quit(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
static int cmd_sl(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);
static int cmd_sd(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n);

/* Sorted by name. */
static const shell_cmd_t commands[] = {
    {"config.create", "<factory_pid> [k=v ...]",
     "creates a configuration of a factory and prints its PID", shell__cmd_config_create},
    {"config.delete", "<pid>", "deletes a configuration (and its file)", shell__cmd_config_delete},
    {"config.list", "[pid]", "lists the configurations, or shows one", shell__cmd_config_list},
    {"config.reload", "<pid>", "reads a configuration's file again", shell__cmd_config_reload},
    {"config.update", "<pid> [k=v ...]",
     "sets properties of a configuration (k=None removes k; creates it if needed)",
     shell__cmd_config_update},
    {"help", "[command]", "lists the commands, or tells how to use one", cmd_help},
    {"mqtt.connections", "", "lists the broker connections and their state",
     shell__cmd_mqtt_connections},
    {"mqtt.publish", "<topic> <payload> [qos=N] [retain=true] [pid=PID]",
     "publishes to every connection, or to one", shell__cmd_mqtt_publish},
    {"mqtt.stats", "", "counts messages, listeners and subscriptions", shell__cmd_mqtt_stats},
    {"mqtt.subscribe", "<filter> [filter ...] [qos=N]",
     "prints the messages of the filters as '<topic> <payload>'; prints the listener id",
     shell__cmd_mqtt_subscribe},
    {"mqtt.unsubscribe", "<id>", "removes a listener made by mqtt.subscribe",
     shell__cmd_mqtt_unsubscribe},
    {"quit", "", "stops pelix-mqtt", cmd_quit},
    {"sd", "<id>", "shows a service's specifications and properties", cmd_sd},
    {"sl", "[specification]", "lists the services, or those of a specification", cmd_sl},
};

const char *const *pelix__shell_commands(size_t *count)
{
    static const char *names[PELIX_ARRAY_SIZE(commands)];

    for (size_t i = 0; i < PELIX_ARRAY_SIZE(commands); i++) {
        names[i] = commands[i].name; /* the same every time: no race that matters */
    }
    *count = PELIX_ARRAY_SIZE(commands);
    return names;
}

static const shell_cmd_t *find(const char *name)
{
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

/* ---- helpers --------------------------------------------------------------------------------- */

void shell__print(pelix_shell_t *sh, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&sh->out_lock);
    va_start(ap, fmt);
    vfprintf(sh->o.out, fmt, ap);
    va_end(ap);
    fflush(sh->o.out);
    pthread_mutex_unlock(&sh->out_lock);
}

int shell__fail(pelix_shell_t *sh, const char *cmd, int code, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pelix__log(&sh->o.logger, PELIX_LOG_ERROR, "shell", "%s: %s", cmd, text);
    return code < 0 ? code : -EINVAL;
}

int shell__arity(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n, size_t min, size_t max)
{
    const shell_cmd_t *c = find(w[0].text);

    if (n - 1 < min || n - 1 > max) {
        return shell__fail(sh, w[0].text, -EINVAL, "%s; usage: %s %s",
                           n - 1 < min ? "missing argument" : "too many arguments", c->name,
                           c->usage);
    }
    return 0;
}

bool shell__long(const char *text, long *ret)
{
    char *end;

    errno = 0;
    *ret = strtol(text, &end, 10);
    return *text && !*end && errno == 0;
}

char *shell__value_text(const pelix_value_t *v)
{
    if (pelix_value_type(v) == PELIX_TYPE_STRING) {
        const char *s = pelix_value_string(v);
        size_t len = strlen(s), n = 0;
        char *out = pelix__malloc(2 * len + 3);
        if (!out) {
            return NULL;
        }
        out[n++] = '"';
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '"' || s[i] == '\\') {
                out[n++] = '\\';
            }
            out[n++] = s[i];
        }
        out[n++] = '"';
        out[n] = '\0';
        return out;
    }
    return pelix_value_to_string(v);
}

/* ---- commands -------------------------------------------------------------------------------- */

static int cmd_help(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    int rc = shell__arity(sh, w, n, 0, 1);

    if (rc < 0) {
        return rc;
    }
    if (n == 2) {
        const shell_cmd_t *c = find(w[1].text);
        if (!c) {
            return shell__fail(sh, "help", -ENOENT, "no command '%s'; 'help' lists them",
                               w[1].text);
        }
        shell__print(sh, "%s %s\n    %s\n", c->name, c->usage, c->help);
        return 0;
    }
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(commands); i++) {
        shell__print(sh, "%-17s %s\n", commands[i].name, commands[i].help);
    }
    return 0;
}

static int cmd_quit(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    int rc = shell__arity(sh, w, n, 0, 0);
    return rc < 0 ? rc : PELIX_SHELL_QUIT;
}

static void print_props(pelix_shell_t *sh, const pelix_props_t *p, const char *indent)
{
    for (size_t k = 0; k < pelix_props_size(p); k++) {
        const char *key = pelix_props_key_at(p, k);
        char *text =
            pelix_props_is_secret_key(key) ? NULL : shell__value_text(pelix_props_value_at(p, k));
        shell__print(sh, "%s%s = %s\n", indent, key, text ? text : "***");
        pelix__free(text);
    }
}

static int cmd_sl(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    long *ids = NULL;
    size_t count = 0;
    int rc = shell__arity(sh, w, n, 0, 1);

    if (rc < 0) {
        return rc;
    }
    rc = pelix_registry_find(sh->o.reg, n == 2 ? w[1].text : NULL, NULL, &ids, &count, NULL);
    if (rc < 0) {
        return shell__fail(sh, "sl", rc, "%s", pelix_strerror(rc));
    }
    shell__print(sh, "%-6s %s\n", "ID", "SPECIFICATIONS");
    for (size_t i = 0; i < count; i++) {
        pelix_props_t *p = NULL;
        char *specs = NULL;
        if (pelix_registry_get_properties(sh->o.reg, ids[i], &p) == 0) {
            specs = pelix_value_to_string(pelix_props_get(p, PELIX_OBJECTCLASS));
        }
        shell__print(sh, "%-6ld %s\n", ids[i], specs ? specs : "(gone)");
        pelix__free(specs);
        pelix_props_free(p);
    }
    shell__print(sh, "%zu service%s\n", count, count == 1 ? "" : "s");
    free(ids);
    return 0;
}

static int cmd_sd(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    pelix_props_t *p = NULL;
    long id;
    int rc = shell__arity(sh, w, n, 1, 1);

    if (rc < 0) {
        return rc;
    }
    if (!shell__long(w[1].text, &id) || id <= 0) {
        return shell__fail(sh, "sd", -EINVAL, "'%s' is not a service id (see 'sl')", w[1].text);
    }
    rc = pelix_registry_get_properties(sh->o.reg, id, &p);
    if (rc < 0) {
        return shell__fail(sh, "sd", rc, "no service %ld (see 'sl')", id);
    }
    shell__print(sh, "service %ld\n", id);
    print_props(sh, p, "    ");
    pelix_props_free(p);
    return 0;
}

/* ---- the shell ------------------------------------------------------------------------------- */

int pelix__shell_new(const pelix_shell_options_t *opts, pelix_shell_t **ret_shell)
{
    pelix_shell_t *sh;

    if (!opts || !opts->reg || !ret_shell) {
        return -EINVAL;
    }
    sh = pelix__calloc(1, sizeof(*sh));
    if (!sh) {
        return -ENOMEM;
    }
    sh->o = *opts;
    sh->o.out = opts->out ? opts->out : stdout;
    pthread_mutex_init(&sh->out_lock, NULL);
    *ret_shell = sh;
    return 0;
}

pelix_shell_t *pelix__shell_free(pelix_shell_t *sh)
{
    if (!sh) {
        return NULL;
    }
    shell__subs_free(sh);
    pthread_mutex_destroy(&sh->out_lock);
    pelix__free(sh);
    return NULL;
}

int pelix__shell_exec(pelix_shell_t *sh, const char *line)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_shell_word_t *w = NULL;
    const shell_cmd_t *c;
    size_t n = 0;
    int rc;

    if (!sh || !line) {
        return -EINVAL;
    }
    rc = pelix__shell_split(line, &w, &n, &err);
    if (rc < 0) {
        return shell__fail(sh, "shell", rc, "%s", rc == -ENOMEM ? "out of memory" : err.text);
    }
    if (n == 0 || w[0].text[0] == '#') {
        pelix__shell_words_free(w, n);
        return 0;
    }
    c = find(w[0].text);
    if (!c) {
        rc = shell__fail(sh, w[0].text, -ENOENT, "unknown command; 'help' lists them");
    } else {
        rc = c->fn(sh, w, n);
    }
    pelix__shell_words_free(w, n);
    return rc;
}
