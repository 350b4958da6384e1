/*
 * Configuration Admin: configurations, their files, and the API.
 *
 * Invariants (under ca->lock):
 * - `configs` holds every configuration that is not deleted, updated or not, one per PID; the
 *   map owns one reference of each. A deleted configuration is out of the map, `deleted` is set
 *   and its handle only answers PELIX_E_DELETED.
 * - `props` of a configuration always hold `service.pid` (and `service.factoryPid` for a factory
 *   configuration) and equal what its file holds when `stored` is set.
 * - A change is written to the file before it is applied in memory and queued for notification:
 *   when the write fails, nothing changes.
 * File events from the watcher compare the file's properties with the configuration's: equal
 * content (our own writes, a `touch`) changes nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "configadmin/configadmin_internal.h"

static const char *const MODULE = "configadmin";

static void ca_unref(pelix_configadmin_t *ca)
{
    size_t pos = 0;
    void *value;

    if (atomic_fetch_sub(&ca->refs, 1) != 1) {
        return;
    }
    while (pelix__map_next(&ca->reported, &pos, NULL, NULL, &value)) {
        report_t *r = value;
        pelix__free(r->name);
        pelix__free(r);
    }
    pelix__map_clear(&ca->reported);
    pelix__map_clear(&ca->configs);
    schema__free_all(ca);
    pthread_mutex_destroy(&ca->lock);
    pelix__free(ca->folder);
    pelix__free(ca);
}

/* ---- logs ------------------------------------------------------------------------------------ */

void ca__log(pelix_configadmin_t *ca, pelix_log_level_t level, const char *fmt, ...)
{
    pending_log_t *rec;
    char line[1024];
    va_list ap;

    if (!ca->logger.fn || level > ca->logger.max_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    rec = pelix__calloc(1, sizeof(*rec));
    if (!rec || !(rec->text = pelix__strdup(line))) {
        pelix__free(rec);
        return; /* out of memory: the record is lost */
    }
    rec->level = level;
    if (ca->logs_tail) {
        ca->logs_tail->next = rec;
    } else {
        ca->logs = rec;
    }
    ca->logs_tail = rec;
}

void ca__unlock(pelix_configadmin_t *ca)
{
    pending_log_t *rec = ca->logs;

    ca->logs = ca->logs_tail = NULL;
    pthread_mutex_unlock(&ca->lock);
    while (rec) {
        pending_log_t *next = rec->next;
        pelix__log(&ca->logger, rec->level, MODULE, "%s", rec->text);
        pelix__free(rec->text);
        pelix__free(rec);
        rec = next;
    }
}

/* ---- configurations -------------------------------------------------------------------------- */

static pelix_configuration_t *config_new(pelix_configadmin_t *ca, const char *pid,
                                         const char *factory_pid)
{
    /* One block: the PIDs follow the configuration (one per broker connection, say). */
    size_t plen = strlen(pid) + 1, flen = factory_pid ? strlen(factory_pid) + 1 : 0;
    pelix_configuration_t *c = pelix__calloc(1, sizeof(*c) + plen + flen);

    if (!c) {
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->pid = memcpy((char *)(c + 1), pid, plen);
    c->factory_pid = factory_pid ? memcpy(c->pid + plen, factory_pid, flen) : NULL;
    if (pelix__map_put_str(&ca->configs, c->pid, c) < 0) {
        pelix__free(c);
        return NULL;
    }
    atomic_fetch_add(&ca->refs, 1);
    c->ca = ca;
    return c;
}

pelix_configuration_t *pelix_configuration_ref(pelix_configuration_t *c)
{
    if (c) {
        atomic_fetch_add(&c->refs, 1);
    }
    return c;
}

pelix_configuration_t *pelix_configuration_unref(pelix_configuration_t *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        pelix_configadmin_t *ca = c->ca;
        pelix_props_free(c->props);
        pelix__free(c); /* and its PIDs */
        ca_unref(ca);
    }
    return NULL;
}

/* Removes `c` from the map, marks it deleted and notifies if it had been updated. */
static void drop_config(pelix_configadmin_t *ca, pelix_configuration_t *c)
{
    bool valid = c->props != NULL;

    pelix__map_remove_str(&ca->configs, c->pid);
    c->deleted = true;
    c->stored = false;
    if (valid) {
        targets__notify(ca, c);
    }
    pelix_configuration_unref(c);
}

/* Sets the standard properties of `c` in `props`. */
static int normalize(const pelix_configuration_t *c, pelix_props_t *props)
{
    int rc = pelix_props_set_string(props, PELIX_SERVICE_PID, c->pid);

    if (rc == 0 && c->factory_pid) {
        rc = pelix_props_set_string(props, PELIX_SERVICE_FACTORY_PID, c->factory_pid);
    } else if (rc == 0) {
        pelix_props_remove(props, PELIX_SERVICE_FACTORY_PID);
    }
    return rc;
}

/* Replaces the properties of `c` (consumed) and notifies, unless they are equal. Returns true
 * if something changed. */
static bool set_props(pelix_configadmin_t *ca, pelix_configuration_t *c, pelix_props_t *props)
{
    if (c->props && pelix_props_equal(c->props, props)) {
        pelix_props_free(props);
        return false;
    }
    pelix_props_free(c->props);
    c->props = props__freeze(props); /* replaced, never changed in place */
    targets__notify(ca, c);
    return true;
}

/* ---- files ----------------------------------------------------------------------------------- */

static void report_once(pelix_configadmin_t *ca, const char *name, uint64_t hash,
                        const char *reason)
{
    report_t *r = pelix__map_get_str(&ca->reported, name);

    if (r && r->hash == hash) {
        return;
    }
    ca__log(ca, PELIX_LOG_ERROR, "%s; ignoring it", reason);
    if (r) {
        r->hash = hash;
        return;
    }
    r = pelix__calloc(1, sizeof(*r));
    if (r && (r->name = pelix__strdup(name)) &&
        pelix__map_put_str(&ca->reported, r->name, r) == 0) {
        r->hash = hash;
        return;
    }
    if (r) {
        pelix__free(r->name);
    }
    pelix__free(r);
}

static void report_clear(pelix_configadmin_t *ca, const char *name)
{
    report_t *r = pelix__map_remove_str(&ca->reported, name);

    if (r) {
        pelix__free(r->name);
        pelix__free(r);
    }
}

/* Reads the file of `pid` and applies it: creates, updates or deletes the configuration. */
static void apply_file(pelix_configadmin_t *ca, const char *pid, bool live)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_props_t *props = NULL;
    pelix_configuration_t *c = pelix__map_get_str(&ca->configs, pid);
    const pelix_value_t *fv;
    const char *factory = NULL;
    uint64_t hash = 0;
    int rc;

    rc = persist__check_pid(pid, "PID", &err);
    if (rc == 0) {
        rc = persist__read(ca->folder, pid, &props, &hash, &err);
    } else {
        char reason[PELIX_ERROR_TEXT_SIZE];
        memcpy(reason, err.text, sizeof(reason));
        pelix__error(&err, rc, -1, "%s/%s%s: %s", ca->folder, pid, PELIX_CONFIG_FILE_SUFFIX,
                     reason);
    }
    if (rc == -ENOENT) {
        report_clear(ca, pid);
        if (c && c->stored) {
            ca__log(ca, PELIX_LOG_INFO, "configuration '%s' deleted: its file was removed", pid);
            drop_config(ca, c);
        }
        return;
    }
    if (rc == 0) {
        fv = pelix_props_get(props, PELIX_SERVICE_FACTORY_PID);
        factory = pelix_value_string(fv);
        if (fv && (!factory || persist__check_pid(factory, "service.factoryPid", &err) < 0)) {
            rc = pelix__error(&err, PELIX_E_TYPE, -1,
                              "%s/%s%s: service.factoryPid is not a valid factory PID", ca->folder,
                              pid, PELIX_CONFIG_FILE_SUFFIX);
        }
    }
    if (rc == 0) {
        rc = schema__coerce(ca, pid, factory, props, &err);
        if (rc < 0) {
            char reason[PELIX_ERROR_TEXT_SIZE];
            memcpy(reason, err.text, sizeof(reason));
            pelix__error(&err, rc, -1, "%s/%s%s: %s", ca->folder, pid, PELIX_CONFIG_FILE_SUFFIX,
                         reason);
        }
    }
    if (rc < 0) {
        report_once(ca, pid, hash, err.text);
        pelix_props_free(props);
        return;
    }
    report_clear(ca, pid);
    if (c && (factory ? !c->factory_pid || strcmp(factory, c->factory_pid) : !!c->factory_pid)) {
        drop_config(ca, c); /* the file now describes another kind of configuration */
        c = NULL;
    }
    if (!c) {
        c = config_new(ca, pid, factory);
    }
    if (!c || normalize(c, props) < 0) {
        ca__log(ca, PELIX_LOG_ERROR, "out of memory: configuration '%s' not loaded", pid);
        pelix_props_free(props);
        return;
    }
    c->stored = true;
    if (set_props(ca, c, props)) {
        ca__log(ca, live ? PELIX_LOG_INFO : PELIX_LOG_DEBUG, "configuration '%s' %s from its file",
                pid, live ? "applied" : "loaded");
    }
}

void ca__file_changed(pelix_configadmin_t *ca, const char *pid)
{
    pthread_mutex_lock(&ca->lock);
    if (!ca->closed) {
        apply_file(ca, pid, true);
    }
    ca__unlock(ca);
}

static void rescan_locked(pelix_configadmin_t *ca, bool live)
{
    char **pids = NULL, **gone = NULL;
    size_t n = 0, ngone = 0, pos = 0;
    void *value;
    int rc = persist__list(ca->folder, &pids, &n);

    if (rc < 0) {
        ca__log(ca, PELIX_LOG_ERROR, "cannot list '%s': %s", ca->folder, pelix_strerror(rc));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        apply_file(ca, pids[i], live);
    }
    /* Stored configurations whose file is not there any more. */
    gone = pelix__calloc(ca->configs.count ? ca->configs.count : 1, sizeof(*gone));
    while (gone && pelix__map_next(&ca->configs, &pos, NULL, NULL, &value)) {
        pelix_configuration_t *c = value;
        bool listed = false;
        for (size_t i = 0; i < n && !listed; i++) {
            listed = strcmp(pids[i], c->pid) == 0;
        }
        if (c->stored && !listed) {
            gone[ngone++] = c->pid;
        }
    }
    for (size_t i = 0; i < ngone; i++) {
        char *pid = pelix__strdup(gone[i]); /* apply_file may free the configuration */
        if (pid) {
            apply_file(ca, pid, live);
        }
        pelix__free(pid);
    }
    for (size_t i = 0; i < n; i++) {
        pelix__free(pids[i]);
    }
    pelix__free(pids);
    pelix__free(gone);
}

void ca__rescan(pelix_configadmin_t *ca, bool live)
{
    pthread_mutex_lock(&ca->lock);
    if (!ca->closed) {
        rescan_locked(ca, live);
    }
    ca__unlock(ca);
}

/* ---- ConfigAdmin ----------------------------------------------------------------------------- */

int pelix_configadmin_new(pelix_registry_t *reg, const pelix_configadmin_options_t *opts,
                          pelix_configadmin_t **ret_ca, pelix_error_t *err)
{
    static const char *const specs[] = {PELIX_CONFIGADMIN_SPEC};
    pelix_configadmin_t *ca;
    int rc;

    if (!reg || !opts || !ret_ca) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    ca = pelix__calloc(1, sizeof(*ca));
    if (!ca) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    atomic_init(&ca->refs, 1);
    pthread_mutex_init(&ca->lock, NULL);
    ca->reg = reg;
    ca->logger = opts->logger;
    pelix__map_init_str(&ca->configs);
    pelix__map_init_str(&ca->reported);
    pelix__map_init_long(&ca->managed);
    pelix__map_init_long(&ca->factories);
    pelix__map_init_str(&ca->schemas);
    if (opts->folder && !(ca->folder = pelix__strdup(opts->folder))) {
        rc = pelix__error(err, -ENOMEM, -1, "out of memory");
        goto fail;
    }
    rc = ca->folder ? persist__mkdirs(ca->folder, err) : 0;
    if (rc == 0) {
        rc = notifier__start(&ca->notifier, reg);
        if (rc < 0) {
            pelix__error(err, rc, -1, "cannot start the ConfigAdmin thread");
        }
    }
    if (rc == 0 && ca->folder && opts->watch) {
        rc = watcher__start(ca, ca->folder, &ca->logger, &ca->watcher, err);
    }
    if (rc < 0) {
        goto fail;
    }
    if (ca->folder) {
        ca__rescan(ca, false);
    }
    rc = targets__open(ca, err);
    if (rc == 0) {
        rc = pelix_registry_register(reg, specs, 1, ca, NULL, &ca->svc_id);
        if (rc < 0) {
            pelix__error(err, rc, -1, "cannot register the ConfigAdmin service");
        }
    }
    if (rc < 0) {
        goto fail;
    }
    *ret_ca = ca;
    return 0;
fail:
    pelix_configadmin_free(ca);
    return rc;
}

pelix_configadmin_t *pelix_configadmin_free(pelix_configadmin_t *ca)
{
    const char *key;
    size_t pos = 0;
    void *value;

    if (!ca) {
        return NULL;
    }
    pthread_mutex_lock(&ca->lock);
    ca->closed = true;
    ca__unlock(ca);
    if (ca->svc_id > 0) {
        pelix_registry_unregister(ca->reg, ca->svc_id);
    }
    watcher__stop(ca->watcher);
    ca->watcher = NULL;
    targets__close(ca);
    notifier__stop(&ca->notifier);

    /* Drop the map's references without allocating (this must not fail); handles held by the
     * application keep their configuration, and ConfigAdmin's memory, until unref'ed. */
    pthread_mutex_lock(&ca->lock);
    while (pelix__map_next(&ca->configs, &pos, &key, NULL, &value)) {
        pelix__map_remove_str(&ca->configs, key);
        pelix_configuration_unref(value);
        pos = 0;
    }
    pelix__map_clear(&ca->configs);
    ca__unlock(ca);
    ca_unref(ca);
    return NULL;
}

static pelix_configadmin_t *lock_open(pelix_configadmin_t *ca)
{
    pthread_mutex_lock(&ca->lock);
    if (ca->closed) {
        ca__unlock(ca);
        return NULL;
    }
    return ca;
}

int pelix_configadmin_get_configuration(pelix_configadmin_t *ca, const char *pid,
                                        pelix_configuration_t **ret_config, pelix_error_t *err)
{
    pelix_configuration_t *c;
    size_t pos = 0;
    void *value;
    int rc;

    if (!ca || !ret_config) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    rc = persist__check_pid(pid, "PID", err);
    if (rc < 0) {
        return rc;
    }
    if (!lock_open(ca)) {
        return pelix__error(err, -ESHUTDOWN, -1, "ConfigAdmin is stopped");
    }
    c = pelix__map_get_str(&ca->configs, pid);
    while (!c && pelix__map_next(&ca->configs, &pos, NULL, NULL, &value)) {
        const pelix_configuration_t *other = value;
        if (other->factory_pid && strcmp(other->factory_pid, pid) == 0) {
            ca__unlock(ca);
            return pelix__error(err, PELIX_E_PID, -1, "'%s' is a factory PID", pid);
        }
    }
    if (!c && !(c = config_new(ca, pid, NULL))) {
        ca__unlock(ca);
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    *ret_config = pelix_configuration_ref(c);
    ca__unlock(ca);
    return 0;
}

int pelix_configadmin_create_factory_configuration(pelix_configadmin_t *ca, const char *factory_pid,
                                                   pelix_configuration_t **ret_config,
                                                   pelix_error_t *err)
{
    char uuid[PELIX_UUID_STR_LEN + 1], *pid;
    pelix_configuration_t *c;
    int rc;

    if (!ca || !ret_config) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    rc = persist__check_pid(factory_pid, "factory PID", err);
    if (rc == 0 && strlen(factory_pid) + 1 + PELIX_UUID_STR_LEN > PELIX_PID_MAX) {
        rc = pelix__error(err, PELIX_E_PID, -1, "factory PID is longer than %d bytes",
                          PELIX_PID_MAX - 1 - PELIX_UUID_STR_LEN);
    }
    if (rc < 0) {
        return rc;
    }
    rc = pelix__uuid4(uuid);
    if (rc < 0) {
        return pelix__error(err, rc, -1, "cannot generate a UUID");
    }
    pid = pelix__sprintf("%s-%s", factory_pid, uuid);
    if (!pid) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    if (!lock_open(ca)) {
        pelix__free(pid);
        return pelix__error(err, -ESHUTDOWN, -1, "ConfigAdmin is stopped");
    }
    if (pelix__map_get_str(&ca->configs, factory_pid)) {
        ca__unlock(ca);
        pelix__free(pid);
        return pelix__error(err, PELIX_E_PID, -1,
                            "'%s' is the PID of a configuration, not a factory PID", factory_pid);
    }
    c = config_new(ca, pid, factory_pid);
    if (c) {
        *ret_config = pelix_configuration_ref(c);
    }
    ca__unlock(ca);
    pelix__free(pid);
    return c ? 0 : pelix__error(err, -ENOMEM, -1, "out of memory");
}

static int cmp_pid(const void *a, const void *b)
{
    const pelix_configuration_t *x = *(pelix_configuration_t *const *)a;
    const pelix_configuration_t *y = *(pelix_configuration_t *const *)b;
    return strcmp(x->pid, y->pid);
}

int pelix_configadmin_list_configurations(pelix_configadmin_t *ca, const char *filter,
                                          pelix_configuration_t ***ret_configs, size_t *ret_count,
                                          pelix_error_t *err)
{
    pelix_filter_t *f = NULL;
    pelix_configuration_t **list;
    size_t pos = 0, n = 0;
    void *value;
    int rc;

    if (!ca || !ret_configs || !ret_count) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    if (filter && !pelix__str_blank(filter)) {
        rc = pelix_filter_parse(filter, &f, err);
        if (rc < 0) {
            return rc;
        }
    }
    if (!lock_open(ca)) {
        pelix_filter_unref(f);
        return pelix__error(err, -ESHUTDOWN, -1, "ConfigAdmin is stopped");
    }
    list = pelix__calloc(ca->configs.count ? ca->configs.count : 1, sizeof(*list));
    while (list && pelix__map_next(&ca->configs, &pos, NULL, NULL, &value)) {
        pelix_configuration_t *c = value;
        if (!f || (c->props && pelix_filter_match(f, c->props))) {
            list[n++] = pelix_configuration_ref(c);
        }
    }
    ca__unlock(ca);
    pelix_filter_unref(f);
    if (!list) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    qsort(list, n, sizeof(*list), cmp_pid);
    *ret_configs = list;
    *ret_count = n;
    return 0;
}

void pelix_configuration_list_free(pelix_configuration_t **configs, size_t count)
{
    for (size_t i = 0; configs && i < count; i++) {
        pelix_configuration_unref(configs[i]);
    }
    pelix__free(configs);
}

int pelix_configadmin_flush(pelix_configadmin_t *ca, long timeout_ms)
{
    if (!ca || timeout_ms < 0) {
        return -EINVAL;
    }
    return notifier__flush(&ca->notifier, timeout_ms);
}

/* ---- configuration API ----------------------------------------------------------------------- */

const char *pelix_configuration_get_pid(const pelix_configuration_t *c)
{
    return c ? c->pid : NULL;
}

const char *pelix_configuration_get_factory_pid(const pelix_configuration_t *c)
{
    return c ? c->factory_pid : NULL;
}

int pelix_configuration_get_properties(pelix_configuration_t *c, pelix_props_t **ret_props)
{
    pelix_props_t *copy = NULL;
    int rc = 0;

    if (!c || !ret_props) {
        return -EINVAL;
    }
    pthread_mutex_lock(&c->ca->lock);
    if (c->deleted) {
        rc = PELIX_E_DELETED;
    } else if (c->props && !(copy = pelix_props_copy(c->props))) {
        rc = -ENOMEM;
    }
    ca__unlock(c->ca);
    if (rc == 0) {
        *ret_props = copy;
    }
    return rc;
}

bool pelix_configuration_is_valid(pelix_configuration_t *c)
{
    bool valid;

    if (!c) {
        return false;
    }
    pthread_mutex_lock(&c->ca->lock);
    valid = c->props && !c->deleted;
    ca__unlock(c->ca);
    return valid;
}

/* Locks the ConfigAdmin of `c` if it runs and `c` is not deleted; else returns the error. */
static int lock_config(pelix_configuration_t *c, pelix_error_t *err)
{
    if (!c) {
        return pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    pthread_mutex_lock(&c->ca->lock);
    if (c->ca->closed) {
        ca__unlock(c->ca);
        return pelix__error(err, -ESHUTDOWN, -1, "ConfigAdmin is stopped");
    }
    if (c->deleted) {
        ca__unlock(c->ca);
        return pelix__error(err, PELIX_E_DELETED, -1, "configuration '%s' was deleted", c->pid);
    }
    return 0;
}

int pelix_configuration_update(pelix_configuration_t *c, pelix_props_t *props, pelix_error_t *err)
{
    pelix_configadmin_t *ca;
    int rc;

    if (!props || !pelix_props_size(props)) {
        pelix_props_free(props);
        return c ? 0 : pelix__error(err, -EINVAL, -1, "invalid argument");
    }
    rc = lock_config(c, err);
    if (rc < 0) {
        pelix_props_free(props);
        return rc;
    }
    ca = c->ca;
    rc = schema__coerce(ca, c->pid, c->factory_pid, props, err);
    if (rc == 0 && (rc = normalize(c, props)) < 0) {
        rc = pelix__error(err, rc, -1, "out of memory");
    }
    if (rc < 0) {
        /* refused: nothing changes */
    } else if (c->props && pelix_props_equal(c->props, props)) {
        rc = 1; /* nothing to do */
    } else if (ca->folder) {
        rc = persist__write(ca->folder, c->pid, props, err);
    }
    if (rc == 0) {
        c->stored = ca->folder != NULL;
        set_props(ca, c, props);
        props = NULL;
    }
    ca__unlock(ca);
    pelix_props_free(props);
    return rc < 0 ? rc : 0;
}

int pelix_configuration_delete(pelix_configuration_t *c, pelix_error_t *err)
{
    pelix_configadmin_t *ca;
    int rc;

    rc = lock_config(c, err);
    if (rc == PELIX_E_DELETED) {
        return 0; /* idempotent */
    }
    if (rc < 0) {
        return rc;
    }
    ca = c->ca;
    if (c->stored && ca->folder) {
        rc = persist__remove(ca->folder, c->pid, err);
    }
    if (rc == 0) {
        drop_config(ca, c);
    }
    ca__unlock(ca);
    return rc;
}

int pelix_configuration_reload(pelix_configuration_t *c, pelix_error_t *err)
{
    pelix_configadmin_t *ca;
    pelix_props_t *props = NULL;
    int rc;

    rc = lock_config(c, err);
    if (rc < 0) {
        return rc;
    }
    ca = c->ca;
    if (!ca->folder) {
        rc = pelix__error(err, -ENOENT, -1, "no configuration folder");
    } else {
        rc = persist__read(ca->folder, c->pid, &props, NULL, err);
    }
    if (rc == 0) {
        rc = schema__coerce(ca, c->pid, c->factory_pid, props, err);
    }
    if (rc == 0) {
        rc = normalize(c, props);
        if (rc < 0) {
            pelix__error(err, rc, -1, "out of memory");
        }
    }
    if (rc == 0) {
        c->stored = true;
        set_props(ca, c, props);
        props = NULL;
    }
    ca__unlock(ca);
    pelix_props_free(props);
    return rc;
}
