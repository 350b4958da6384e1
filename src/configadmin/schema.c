/*
 * Schemas: the property types a managed service (factory) declares for its configurations, so
 * that values typed as text (a shell argument, a hand-written file) are stored and delivered
 * with their type ("1883" becomes 1883) and values that cannot be are refused with a reason,
 * before anything is written or notified. Keyed by factory PID, or by PID for plain ones.
 */
#include <errno.h>
#include <string.h>

#include "configadmin/configadmin_internal.h"

typedef struct schema {
    char *pid;
    pelix_prop_schema_t *entries; /* keys owned */
    size_t count;
} schema_t;

static void schema_free(schema_t *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->count; i++) {
        pelix__free((char *)s->entries[i].key);
    }
    pelix__free(s->entries);
    pelix__free(s->pid);
    pelix__free(s);
}

static schema_t *schema_copy(const char *pid, const pelix_prop_schema_t *entries, size_t count)
{
    schema_t *s = pelix__calloc(1, sizeof(*s));

    if (!s || !(s->pid = pelix__strdup(pid)) ||
        !(s->entries = pelix__calloc(count, sizeof(*s->entries)))) {
        schema_free(s);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        s->entries[i] = entries[i];
        s->entries[i].key = pelix__strdup(entries[i].key);
        if (!s->entries[i].key) {
            schema_free(s);
            return NULL;
        }
        s->count++;
    }
    return s;
}

int schema__coerce(pelix_configadmin_t *ca, const char *pid, const char *factory_pid,
                   pelix_props_t *props, pelix_error_t *err)
{
    const schema_t *s = pelix__map_get_str(&ca->schemas, factory_pid ? factory_pid : pid);

    return s ? pelix_props_coerce(props, s->entries, s->count, err) : 0;
}

void schema__free_all(pelix_configadmin_t *ca)
{
    size_t pos = 0;
    void *value;

    while (pelix__map_next(&ca->schemas, &pos, NULL, NULL, &value)) {
        schema_free(value);
    }
    pelix__map_clear(&ca->schemas);
}

int pelix_configadmin_set_schema(pelix_configadmin_t *ca, const char *pid,
                                 const pelix_prop_schema_t *entries, size_t count,
                                 pelix_error_t *err)
{
    schema_t *s = NULL, *old;
    size_t pos = 0;
    void *value;
    int rc;

    if (!ca || (!entries && count)) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    rc = persist__check_pid(pid, "PID", err);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < count; i++) {
        pelix_type_t t = entries[i].type;
        if (!entries[i].key || !*entries[i].key || t < PELIX_TYPE_STRING || t > PELIX_TYPE_LIST) {
            return pelix__error(err, -EINVAL, -1, "schema entry %zu is not valid", i);
        }
    }
    if (count && !(s = schema_copy(pid, entries, count))) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    pthread_mutex_lock(&ca->lock);
    if (ca->closed) {
        ca__unlock(ca);
        schema_free(s);
        return pelix__error(err, -ESHUTDOWN, -1, "ConfigAdmin is stopped");
    }
    /* The old schema stays in force if the new one cannot be stored. */
    old = pelix__map_get_str(&ca->schemas, pid);
    if (s && pelix__map_put_str(&ca->schemas, s->pid, s) < 0) {
        ca__unlock(ca);
        schema_free(s);
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    if (!s) {
        pelix__map_remove_str(&ca->schemas, pid);
    }
    schema_free(old);
    /* Type the configurations already there, in memory; report those that do not conform. */
    while (s && pelix__map_next(&ca->configs, &pos, NULL, NULL, &value)) {
        pelix_configuration_t *c = value;
        pelix_error_t why = PELIX_ERROR_INIT;
        pelix_props_t *typed;
        if (!c->props || strcmp(c->factory_pid ? c->factory_pid : c->pid, pid) != 0) {
            continue;
        }
        typed = pelix_props_copy(c->props);
        if (typed && pelix_props_coerce(typed, s->entries, s->count, &why) == 0) {
            pelix_props_free(c->props);
            c->props = props__freeze(typed);
        } else {
            pelix_props_free(typed);
            ca__log(ca, PELIX_LOG_WARNING, "configuration '%s' does not match its schema: %s",
                    c->pid, why.text[0] ? why.text : "out of memory");
        }
    }
    ca__unlock(ca);
    return 0;
}
