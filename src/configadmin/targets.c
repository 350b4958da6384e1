/*
 * Managed services and managed service factories, followed with two trackers. Each one is
 * recorded with the PIDs its `service.pid` names. When one appears (or names new PIDs), it is
 * sent the existing configurations; when a configuration changes, the services naming its PID
 * (or its factory PID) are sent the change. Everything is queued on the notifier under the
 * ConfigAdmin lock, so the queue order is the order of the changes.
 */
#include <errno.h>
#include <string.h>

#include "configadmin/configadmin_internal.h"

static void target_free(target_t *t)
{
    if (!t) {
        return;
    }
    for (size_t i = 0; i < t->count; i++) {
        pelix__free(t->pids[i]);
    }
    pelix__free(t->pids);
    pelix__free(t);
}

static bool names(const target_t *t, const char *pid)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->pids[i], pid) == 0) {
            return true;
        }
    }
    return false;
}

/* The PIDs named by `service.pid` (a string or a list of strings). */
static target_t *target_new(long id, const pelix_props_t *props)
{
    const pelix_value_t *v = pelix_props_get(props, PELIX_SERVICE_PID);
    size_t n = pelix_value_type(v) == PELIX_TYPE_LIST ? pelix_value_list_size(v) : 1;
    target_t *t = pelix__calloc(1, sizeof(*t));

    if (!t || !(t->pids = pelix__calloc(n, sizeof(char *)))) {
        pelix__free(t);
        return NULL;
    }
    t->id = id;
    for (size_t i = 0; i < n; i++) {
        const pelix_value_t *item =
            pelix_value_type(v) == PELIX_TYPE_LIST ? pelix_value_list_at(v, i) : v;
        const char *pid = pelix_value_string(item);
        if (!pid) {
            continue;
        }
        if (!(t->pids[t->count] = pelix__strdup(pid))) {
            target_free(t);
            return NULL;
        }
        t->count++;
    }
    return t;
}

/* Queues a notification (lock held), logging when memory is short. */
static void push(pelix_configadmin_t *ca, long svc_id, bool factory, const char *pid,
                 const pelix_props_t *props)
{
    if (notifier__push(&ca->notifier, svc_id, factory, pid, props) < 0) {
        ca__log(ca, PELIX_LOG_ERROR,
                "out of memory: configuration '%s' not notified to service %ld", pid, svc_id);
    }
}

/* Sends `t` what exists for the PIDs it names and `old` did not (lock held). */
static void send_existing(pelix_configadmin_t *ca, const target_t *t, const target_t *old,
                          bool factory)
{
    for (size_t i = 0; i < t->count; i++) {
        const char *pid = t->pids[i];
        if (old && names(old, pid)) {
            continue;
        }
        if (factory) {
            size_t pos = 0;
            void *value;
            while (pelix__map_next(&ca->configs, &pos, NULL, NULL, &value)) {
                pelix_configuration_t *c = value;
                if (c->props && c->factory_pid && strcmp(c->factory_pid, pid) == 0) {
                    push(ca, t->id, true, c->pid, c->props);
                }
            }
        } else {
            pelix_configuration_t *c = pelix__map_get_str(&ca->configs, pid);
            /* OSGi: a managed service without configuration is told so with updated(NULL). */
            push(ca, t->id, false, pid, c && !c->factory_pid ? c->props : NULL);
        }
    }
}

static void on_added(void *ctx, long id, void *svc, const pelix_props_t *props, bool factory)
{
    pelix_configadmin_t *ca = ctx;
    pelix_map_t *map = factory ? &ca->factories : &ca->managed;
    target_t *t = target_new(id, props), *old;

    (void)svc;
    pthread_mutex_lock(&ca->lock);
    if (ca->closed || !t) {
        if (!t) {
            ca__log(ca, PELIX_LOG_ERROR,
                    "out of memory: service %ld will not receive its configuration", id);
        }
        ca__unlock(ca);
        target_free(t);
        return;
    }
    old = pelix__map_remove_long(map, id);
    if (pelix__map_put_long(map, id, t) < 0) {
        ca__log(ca, PELIX_LOG_ERROR,
                "out of memory: service %ld will not receive its configuration", id);
        target_free(t);
    } else {
        send_existing(ca, t, old, factory);
    }
    ca__unlock(ca);
    target_free(old);
}

static void on_managed(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    on_added(ctx, id, svc, props, false);
}

static void on_factory(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    on_added(ctx, id, svc, props, true);
}

static void on_removed(void *ctx, long id, bool factory)
{
    pelix_configadmin_t *ca = ctx;
    target_t *t;

    pthread_mutex_lock(&ca->lock);
    t = pelix__map_remove_long(factory ? &ca->factories : &ca->managed, id);
    pthread_mutex_unlock(&ca->lock);
    target_free(t);
}

static void on_managed_removed(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    (void)svc;
    (void)props;
    on_removed(ctx, id, false);
}

static void on_factory_removed(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    (void)svc;
    (void)props;
    on_removed(ctx, id, true);
}

int targets__open(pelix_configadmin_t *ca, pelix_error_t *err)
{
    pelix_tracker_options_t opts = PELIX_TRACKER_OPTIONS_INIT;
    int rc;

    opts.ctx = ca;
    opts.spec = PELIX_MANAGED_SERVICE_SPEC;
    opts.added = on_managed;
    opts.modified = on_managed;
    opts.removed = on_managed_removed;
    rc = pelix_tracker_open(ca->reg, &opts, &ca->managed_tracker, err);
    if (rc < 0) {
        return rc;
    }
    opts.spec = PELIX_MANAGED_FACTORY_SPEC;
    opts.added = on_factory;
    opts.modified = on_factory;
    opts.removed = on_factory_removed;
    return pelix_tracker_open(ca->reg, &opts, &ca->factory_tracker, err);
}

void targets__close(pelix_configadmin_t *ca)
{
    size_t pos = 0;
    void *value;

    ca->managed_tracker = pelix_tracker_close(ca->managed_tracker);
    ca->factory_tracker = pelix_tracker_close(ca->factory_tracker);
    pthread_mutex_lock(&ca->lock);
    while (pelix__map_next(&ca->managed, &pos, NULL, NULL, &value)) {
        target_free(value);
    }
    pos = 0;
    while (pelix__map_next(&ca->factories, &pos, NULL, NULL, &value)) {
        target_free(value);
    }
    pelix__map_clear(&ca->managed);
    pelix__map_clear(&ca->factories);
    pthread_mutex_unlock(&ca->lock);
}

void targets__notify(pelix_configadmin_t *ca, pelix_configuration_t *c)
{
    pelix_map_t *map = c->factory_pid ? &ca->factories : &ca->managed;
    const char *name = c->factory_pid ? c->factory_pid : c->pid;
    const pelix_props_t *props = c->deleted ? NULL : c->props;
    size_t pos = 0;
    void *value;

    while (pelix__map_next(map, &pos, NULL, NULL, &value)) {
        const target_t *t = value;
        if (names(t, name)) {
            push(ca, t->id, c->factory_pid != NULL, c->pid, props);
        }
    }
}
