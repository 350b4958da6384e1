/*
 * The configuration commands: config.create, config.update, config.delete, config.reload and
 * config.list, on ConfigAdmin. Values are typed as pelix__shell_value() says, then by the
 * schema of the target (ConfigAdmin coerces them: `port=abc` is refused with its reason).
 */
#include <errno.h>
#include <string.h>

#include "shell/shell_internal.h"
#include "util/util.h"

static bool no_ca(pelix_shell_t *sh, const char *cmd, int *rc)
{
    if (sh->o.ca) {
        return false;
    }
    *rc = shell__fail(sh, cmd, -ENOTSUP, "Configuration Admin is not running");
    return true;
}

/* Applies the `k=v` words to `p` (`k=None` removes k). 0 or an error already reported. */
static int apply_pairs(pelix_shell_t *sh, const char *cmd, const pelix_shell_word_t *w, size_t n,
                       pelix_props_t *p)
{
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(w[i].text, '=');
        char key[256];
        pelix_value_t *v;
        int rc;
        if (!eq || eq == w[i].text || (size_t)(eq - w[i].text) >= sizeof(key)) {
            return shell__fail(sh, cmd, -EINVAL, "'%s' is not key=value", w[i].text);
        }
        memcpy(key, w[i].text, (size_t)(eq - w[i].text));
        key[eq - w[i].text] = '\0';
        if (!w[i].quoted && strcmp(eq + 1, "None") == 0) {
            pelix_props_remove(p, key);
            continue;
        }
        if (!pelix__utf8_valid(eq + 1, strlen(eq + 1))) {
            /* Said here: pelix__shell_value() would only return NULL, read as no memory. */
            return shell__fail(sh, cmd, -EINVAL, "%s: the value is not valid UTF-8", key);
        }
        v = pelix__shell_value(eq + 1, w[i].quoted);
        rc = v ? pelix_props_set(p, key, v) : -ENOMEM;
        pelix_value_free(v);
        if (rc < 0) {
            return shell__fail(sh, cmd, rc, "%s: %s", key, pelix_strerror(rc));
        }
    }
    return 0;
}

/* The existing (stored) configuration `pid`, or NULL after reporting it is unknown. */
static pelix_configuration_t *existing(pelix_shell_t *sh, const char *cmd, const char *pid)
{
    pelix_configuration_t **list = NULL, *found = NULL;
    size_t count = 0;
    int rc = pelix_configadmin_list_configurations(sh->o.ca, NULL, &list, &count, NULL);

    if (rc < 0) {
        shell__fail(sh, cmd, rc, "%s", pelix_strerror(rc));
        return NULL;
    }
    for (size_t i = 0; i < count && !found; i++) {
        if (strcmp(pelix_configuration_get_pid(list[i]), pid) == 0 &&
            pelix_configuration_is_valid(list[i])) {
            found = pelix_configuration_ref(list[i]);
        }
    }
    pelix_configuration_list_free(list, count);
    if (!found) {
        shell__fail(sh, cmd, -ENOENT, "no configuration '%s' (see 'config.list')", pid);
    }
    return found;
}

static int update(pelix_shell_t *sh, const char *cmd, pelix_configuration_t *c,
                  const pelix_shell_word_t *w, size_t n)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_props_t *p = NULL;
    int rc = pelix_configuration_get_properties(c, &p);

    if (rc == 0 && !p) {
        p = pelix_props_new();
    }
    if (rc < 0 || !p) {
        return shell__fail(sh, cmd, rc < 0 ? rc : -ENOMEM, "%s",
                           pelix_strerror(rc < 0 ? rc : -ENOMEM));
    }
    rc = apply_pairs(sh, cmd, w, n, p);
    if (rc < 0) {
        pelix_props_free(p);
        return rc;
    }
    rc = pelix_configuration_update(c, p, &err);
    if (rc < 0) {
        return shell__fail(sh, cmd, rc, "%s", err.text[0] ? err.text : pelix_strerror(rc));
    }
    return 0;
}

int shell__cmd_config_create(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configuration_t *c = NULL;
    int rc = shell__arity(sh, w, n, 1, 1000);

    if (rc < 0 || no_ca(sh, w[0].text, &rc)) {
        return rc;
    }
    /* Check the pairs first: a bad one creates nothing. */
    pelix_props_t *check = pelix_props_new();
    rc = check ? apply_pairs(sh, w[0].text, w + 2, n - 2, check) : -ENOMEM;
    pelix_props_free(check);
    if (rc < 0) {
        return rc;
    }
    rc = pelix_configadmin_create_factory_configuration(sh->o.ca, w[1].text, &c, &err);
    if (rc < 0) {
        return shell__fail(sh, w[0].text, rc, "%s", err.text[0] ? err.text : pelix_strerror(rc));
    }
    rc = update(sh, w[0].text, c, w + 2, n - 2);
    if (rc == 0) {
        shell__print(sh, "%s\n", pelix_configuration_get_pid(c));
    }
    pelix_configuration_unref(c);
    return rc;
}

int shell__cmd_config_update(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configuration_t *c = NULL;
    int rc = shell__arity(sh, w, n, 2, 1000);

    if (rc < 0 || no_ca(sh, w[0].text, &rc)) {
        return rc;
    }
    rc = pelix_configadmin_get_configuration(sh->o.ca, w[1].text, &c, &err);
    if (rc < 0) {
        return shell__fail(sh, w[0].text, rc, "%s", err.text[0] ? err.text : pelix_strerror(rc));
    }
    rc = update(sh, w[0].text, c, w + 2, n - 2);
    pelix_configuration_unref(c);
    return rc;
}

/* Runs `op` on the existing configuration named by the command's one argument. */
static int on_existing(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n,
                       int (*op)(pelix_configuration_t *c, pelix_error_t *err))
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configuration_t *c;
    int rc = shell__arity(sh, w, n, 1, 1);

    if (rc < 0 || no_ca(sh, w[0].text, &rc)) {
        return rc;
    }
    if (!(c = existing(sh, w[0].text, w[1].text))) {
        return -ENOENT;
    }
    rc = op(c, &err);
    pelix_configuration_unref(c);
    if (rc < 0) {
        return shell__fail(sh, w[0].text, rc, "%s", err.text[0] ? err.text : pelix_strerror(rc));
    }
    return 0;
}

int shell__cmd_config_delete(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    return on_existing(sh, w, n, pelix_configuration_delete);
}

int shell__cmd_config_reload(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    return on_existing(sh, w, n, pelix_configuration_reload);
}

int shell__cmd_config_list(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    pelix_configuration_t **list = NULL;
    size_t count = 0, shown = 0;
    int rc = shell__arity(sh, w, n, 0, 1);

    if (rc < 0 || no_ca(sh, w[0].text, &rc)) {
        return rc;
    }
    rc = pelix_configadmin_list_configurations(sh->o.ca, NULL, &list, &count, NULL);
    if (rc < 0) {
        return shell__fail(sh, w[0].text, rc, "%s", pelix_strerror(rc));
    }
    for (size_t i = 0; i < count; i++) {
        const char *pid = pelix_configuration_get_pid(list[i]);
        pelix_props_t *p = NULL;
        if ((n == 2 && strcmp(pid, w[1].text) != 0) || !pelix_configuration_is_valid(list[i]) ||
            pelix_configuration_get_properties(list[i], &p) < 0 || !p) {
            continue;
        }
        shell__print(sh, "%s\n", pid);
        for (size_t k = 0; k < pelix_props_size(p); k++) {
            const char *key = pelix_props_key_at(p, k);
            char *text = pelix_props_is_secret_key(key)
                             ? NULL
                             : shell__value_text(pelix_props_value_at(p, k));
            shell__print(sh, "    %s = %s\n", key, text ? text : "***");
            pelix__free(text);
        }
        pelix_props_free(p);
        shown++;
    }
    pelix_configuration_list_free(list, count);
    if (n == 2 && shown == 0) {
        return shell__fail(sh, w[0].text, -ENOENT, "no configuration '%s'", w[1].text);
    }
    if (n == 1) {
        shell__print(sh, "%zu configuration%s\n", shown, shown == 1 ? "" : "s");
    }
    return 0;
}
