/*
 * The MQTT service component: its factory services, the configurations it receives from
 * ConfigAdmin (on ConfigAdmin's thread, posted to the network thread), factory publishes, and
 * start and stop.
 */
#include <errno.h>
#include <string.h>

#include "mqtt/mqtt_internal.h"

/* How long pelix_mqtt_free waits for connector threads before leaving them to end alone. */
#define CONNECTORS_WAIT_MS 1000

/* ---- connected list (any thread, under conns_lock) ------------------------------------------- */

void mqtt__connected(mqtt_service_t *s, conn_t *c, bool up)
{
    pthread_mutex_lock(&s->conns_lock);
    for (size_t i = 0; i < s->nconnected; i++) {
        if (s->connected[i] == c) {
            if (!up) {
                s->connected[i] = s->connected[--s->nconnected];
                mqtt__conn_unref(c);
            }
            pthread_mutex_unlock(&s->conns_lock);
            return;
        }
    }
    if (up && pelix__grow((void **)&s->connected, &s->capconnected, s->nconnected + 1,
                          sizeof(*s->connected)) == 0) {
        atomic_fetch_add(&c->refs, 1);
        s->connected[s->nconnected++] = c;
    }
    pthread_mutex_unlock(&s->conns_lock);
}

void mqtt__configured(mqtt_service_t *s, conn_t *c, bool add)
{
    pthread_mutex_lock(&s->conns_lock);
    for (size_t i = 0; i < s->nconfigured; i++) {
        if (s->configured[i] == c) {
            if (!add) {
                memmove(s->configured + i, s->configured + i + 1,
                        (s->nconfigured - i - 1) * sizeof(*s->configured));
                s->nconfigured--;
                mqtt__conn_unref(c);
            }
            pthread_mutex_unlock(&s->conns_lock);
            return;
        }
    }
    if (add && pelix__grow((void **)&s->configured, &s->capconfigured, s->nconfigured + 1,
                           sizeof(*s->configured)) == 0) {
        atomic_fetch_add(&c->refs, 1);
        s->configured[s->nconfigured++] = c;
    }
    pthread_mutex_unlock(&s->conns_lock);
}

void mqtt__keep(mqtt_service_t *s, conn_t *c)
{
    if (pelix__grow((void **)&s->kept, &s->capkept, s->nkept + 1, sizeof(*s->kept)) == 0) {
        atomic_fetch_add(&c->refs, 1);
        s->kept[s->nkept++] = c;
    } else {
        atomic_fetch_add(&c->refs, 1); /* cannot record it: never freed rather than too early */
    }
}

/* ---- factory publish (any thread) ------------------------------------------------------------ */

void pelix_mqtt_results_free(pelix_mqtt_result_t *results, size_t count)
{
    for (size_t i = 0; results && i < count; i++) {
        pelix__free(results[i].pid);
    }
    pelix__free(results);
}

static int factory_publish_list(mqtt_service_t *s, const char *topic, const void *payload,
                                size_t len, int qos, bool retain, const mosquitto_property *props,
                                const char *pid, pelix_mqtt_result_t **ret_results,
                                size_t *ret_count);

static int factory_wait(void *handle, const pelix_mqtt_result_t *result, long timeout_ms)
{
    mqtt_service_t *s = handle;
    pelix_mqtt_publish_info_t info = {0, result ? result->mid : 0, result ? result->token : 0};
    conn_t *c = NULL;
    int rc;

    if (!s || !result || !result->pid || !result->token) {
        return -EINVAL;
    }
    pthread_mutex_lock(&s->conns_lock);
    for (size_t i = 0; i < s->nconfigured && !c; i++) {
        if (strcmp(s->configured[i]->pid, result->pid) == 0) {
            c = s->configured[i];
            atomic_fetch_add(&c->refs, 1);
        }
    }
    pthread_mutex_unlock(&s->conns_lock);
    if (!c) {
        return -ENOENT;
    }
    rc = mqtt__conn_wait(c, &info, timeout_ms);
    mqtt__conn_unref(c);
    /* A token of an earlier connection of that configuration (moved since): that one is gone. */
    return rc == -EINVAL ? -ENOTCONN : rc;
}

static int factory_publish(void *handle, const char *topic, const void *payload, size_t len,
                           int qos, bool retain, const char *pid, pelix_mqtt_result_t **ret_results,
                           size_t *ret_count)
{
    return factory_publish_list(handle, topic, payload, len, qos, retain, NULL, pid, ret_results,
                                ret_count);
}

static int factory_publish_props(void *handle, const char *topic, const void *payload, size_t len,
                                 int qos, bool retain, const pelix_mqtt_properties_t *props,
                                 const char *pid, pelix_mqtt_result_t **ret_results,
                                 size_t *ret_count)
{
    mosquitto_property *list = NULL;
    int rc = mqtt__props_build(props, &list);

    if (ret_results) {
        *ret_results = NULL;
    }
    if (ret_count) {
        *ret_count = 0;
    }
    if (rc == 0) {
        rc = factory_publish_list(handle, topic, payload, len, qos, retain, list, pid, ret_results,
                                  ret_count);
    }
    mosquitto_property_free_all(&list);
    return rc;
}

static int factory_publish_list(mqtt_service_t *s, const char *topic, const void *payload,
                                size_t len, int qos, bool retain, const mosquitto_property *props,
                                const char *pid, pelix_mqtt_result_t **ret_results,
                                size_t *ret_count)
{
    conn_t **targets = NULL;
    pelix_mqtt_result_t *results = NULL;
    size_t n = 0;
    int rc, first = 0, ok = 0;

    if (ret_results) {
        *ret_results = NULL;
    }
    if (ret_count) {
        *ret_count = 0;
    }
    if (!s || qos < 0 || qos > 2 || (!payload && len)) {
        return -EINVAL;
    }
    rc = mqtt__topic_check_name(topic, NULL);
    if (rc < 0) {
        return rc;
    }
    /* Every configured connection: those not connected queue the message (offline.c). */
    pthread_mutex_lock(&s->conns_lock);
    targets = pelix__calloc(s->nconfigured ? s->nconfigured : 1, sizeof(*targets));
    for (size_t i = 0; targets && i < s->nconfigured; i++) {
        if (!pid || strcmp(s->configured[i]->pid, pid) == 0) {
            atomic_fetch_add(&s->configured[i]->refs, 1);
            targets[n++] = s->configured[i];
        }
    }
    pthread_mutex_unlock(&s->conns_lock);
    if (!targets) {
        return -ENOMEM;
    }
    if (n == 0) {
        pelix__free(targets);
        return pid ? -ENOENT : -ENOTCONN;
    }
    if (ret_results && !(results = pelix__calloc(n, sizeof(*results)))) {
        rc = -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        pelix_mqtt_publish_info_t info = {0};
        bool queued = false;
        int one = rc == -ENOMEM ? -ENOMEM
                                : mqtt__conn_publish(targets[i], topic, payload, len, qos, retain,
                                                     props, &info, &queued);
        if (one == 0) {
            ok++;
        } else if (!first) {
            first = one;
        }
        if (results) {
            results[i].pid = pelix__strdup(targets[i]->pid);
            results[i].rc = one;
            results[i].mid = info.mid;
            results[i].queued = queued;
            results[i].token = queued ? 0 : info.token;
        }
        mqtt__conn_unref(targets[i]);
    }
    pelix__free(targets);
    if (results) {
        *ret_results = results;
        *ret_count = n;
    }
    return ok ? 0 : first;
}

/* ---- configurations (ConfigAdmin thread, then network thread) -------------------------------- */

typedef struct config_cmd {
    char *pid;
    conn_config_t cfg;
    bool deleted;
} config_cmd_t;

static void config_cmd_free(config_cmd_t *c)
{
    pelix__free(c->pid);
    mqtt__config_clear(&c->cfg);
    pelix__free(c);
}

static void config_apply(mqtt_service_t *s, void *arg)
{
    config_cmd_t *cmd = arg;
    conn_t *c = pelix__map_get_str(&s->conns, cmd->pid);

    if (c && (cmd->deleted || mqtt__config_moves(&c->cfg, &cmd->cfg))) {
        pelix__map_remove_str(&s->conns, cmd->pid);
        pelix__log(&s->logger, PELIX_LOG_INFO, MODULE, "%s: %s", cmd->pid,
                   cmd->deleted ? "configuration deleted, disconnecting"
                                : "connection settings changed, reconnecting");
        mqtt__conn_close(c);
        c = NULL;
    } else if (c) {
        /* Same broker and session: keep the connection, take the other settings. */
        mqtt__config_take_live(&c->cfg, &cmd->cfg);
        pthread_mutex_lock(&c->lock);
        mqtt__offline_limits(c, &c->cfg);
        pthread_mutex_unlock(&c->lock);
    }
    if (!c && !cmd->deleted && !s->stopping) {
        c = mqtt__conn_new(s, cmd->pid, &cmd->cfg);
        if (!c || pelix__map_put_str(&s->conns, c->pid, c) < 0) {
            pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE, "%s: out of memory", cmd->pid);
            if (c) {
                mqtt__conn_unref(c);
            }
        } else {
            mqtt__configured(s, c, true);
            mqtt__conn_start(c);
        }
    }
    config_cmd_free(cmd);
}

static void post_config(mqtt_service_t *s, config_cmd_t *cmd)
{
    if (mqtt__post(s, config_apply, cmd, false) < 0) {
        config_cmd_free(cmd);
    }
}

static void managed_updated(void *handle, const char *pid, const pelix_props_t *props)
{
    mqtt_service_t *s = handle;
    pelix_error_t err = PELIX_ERROR_INIT;
    config_cmd_t *cmd = pelix__calloc(1, sizeof(*cmd));
    int rc;

    if (!cmd || !(cmd->pid = pelix__strdup(pid))) {
        pelix__free(cmd);
        pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE, "%s: out of memory", pid);
        return;
    }
    rc = mqtt__config_parse(pid, props, &cmd->cfg, &err);
    if (rc < 0) {
        /* Refused: no connection for it (an existing one goes). */
        pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE, "%s: configuration refused: %s", pid,
                   err.text);
        cmd->deleted = true;
    }
    post_config(s, cmd);
}

static void managed_deleted(void *handle, const char *pid)
{
    mqtt_service_t *s = handle;
    config_cmd_t *cmd = pelix__calloc(1, sizeof(*cmd));

    if (!cmd || !(cmd->pid = pelix__strdup(pid))) {
        pelix__free(cmd);
        pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE, "%s: out of memory", pid);
        return;
    }
    cmd->deleted = true;
    post_config(s, cmd);
}

/* ---- start and stop -------------------------------------------------------------------------- */

/* libmosquitto is initialised once per process and never cleaned up: other users of the library
 * in the process (or a later service) may still need it. */
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
    mosquitto_lib_init();
}

static void shutdown_cmd(mqtt_service_t *s, void *arg)
{
    size_t pos = 0;
    void *value;
    (void)arg;

    while (pelix__map_next(&s->conns, &pos, NULL, NULL, &value)) {
        mqtt__conn_close(value);
    }
    pelix__map_clear(&s->conns);
}

int pelix_mqtt_new(pelix_registry_t *reg, pelix_configadmin_t *ca, const pelix_mqtt_options_t *opts,
                   pelix_mqtt_t **ret_mqtt)
{
    const char *specs[] = {PELIX_MQTT_FACTORY_SPEC, PELIX_MANAGED_FACTORY_SPEC};
    pelix_mqtt_t *m;
    mqtt_service_t *s;
    pelix_props_t *props;
    int rc;

    if (!reg || !ret_mqtt) {
        return -EINVAL;
    }
    m = pelix__calloc(1, sizeof(*m));
    if (!m) {
        return -ENOMEM;
    }
    s = &m->s;
    s->reg = reg;
    s->epfd = s->evfd = -1;
    if (opts) {
        s->opts = *opts;
        s->logger = opts->logger;
    }
    s->opts.dispatch_workers = s->opts.dispatch_workers ? s->opts.dispatch_workers : 2;
    s->opts.listener_queue_messages =
        s->opts.listener_queue_messages ? s->opts.listener_queue_messages : 1000;
    s->opts.listener_queue_bytes =
        s->opts.listener_queue_bytes ? s->opts.listener_queue_bytes : 64u << 20;
    s->opts.coalesce_us = s->opts.coalesce_us ? s->opts.coalesce_us : 1000;
    s->opts.direct_us = s->opts.direct_us ? s->opts.direct_us : 200;
    pelix__map_init_str(&s->conns);
    pelix__map_init_str(&s->shares);
    pthread_mutex_init(&s->lmap_lock, NULL);
    pthread_mutex_init(&s->calls_lock, NULL);
    pelix__cond_init(&s->calls_cond);
    pelix__cond_init(&s->closing_cond);
    pthread_mutex_init(&s->conns_lock, NULL);
    pthread_mutex_init(&s->cmd_lock, NULL);
    pthread_mutex_init(&s->relay_lock, NULL);
    pelix__cond_init(&s->relay_cond);
    pelix__cond_init(&s->cmd_cond);
    s->scratch = (mqtt_trie_scratch_t)MQTT_TRIE_SCRATCH_INIT;
    s->shared_scratch = (mqtt_trie_scratch_t)MQTT_TRIE_SCRATCH_INIT;
    pthread_once(&lib_once, lib_init);
    s->trie = mqtt__trie_new();
    s->shared = mqtt__trie_new();
    s->connectors = mqtt__connectors_new(s);
    rc = s->trie && s->shared && s->connectors
             ? mqtt__dispatch_new(s->opts.dispatch_workers, &s->dispatch)
             : -ENOMEM;
    if (rc == 0) {
        rc = mqtt__loop_start(s);
    }
    if (rc == 0) {
        rc = mqtt__listeners_track(s);
    }
    if (rc == 0 && ca) {
        /* Optional: typed values in the stored files; the service coerces anyway. */
        pelix_configadmin_set_schema(ca, PELIX_MQTT_FACTORY_PID, mqtt__config_schema,
                                     mqtt__config_schema_count, NULL);
    }
    s->factory.publish = factory_publish;
    s->factory.publish_props = factory_publish_props;
    s->factory.wait_published = factory_wait;
    s->factory.handle = s;
    s->managed.updated = managed_updated;
    s->managed.deleted = managed_deleted;
    s->managed.handle = s;
    if (rc == 0) {
        props = pelix_props_new();
        rc = props ? pelix_props_set_string(props, PELIX_SERVICE_PID, PELIX_MQTT_FACTORY_PID)
                   : -ENOMEM;
        if (rc < 0) {
            pelix_props_free(props);
        } else {
            /* Two services: the factory, and the managed service factory ConfigAdmin finds. */
            rc = pelix_registry_register(reg, specs, 1, &s->factory, pelix_props_copy(props),
                                         &s->factory_id);
            if (rc == 0) {
                rc = pelix_registry_register(reg, specs + 1, 1, &s->managed, props, &s->managed_id);
            } else {
                pelix_props_free(props);
            }
        }
    }
    if (rc < 0) {
        pelix_mqtt_free(m);
        return rc;
    }
    *ret_mqtt = m;
    return 0;
}

pelix_mqtt_t *pelix_mqtt_free(pelix_mqtt_t *m)
{
    mqtt_service_t *s;

    if (!m) {
        return NULL;
    }
    s = &m->s;
    if (s->managed_id > 0) {
        pelix_registry_unregister(s->reg, s->managed_id);
    }
    if (s->factory_id > 0) {
        pelix_registry_unregister(s->reg, s->factory_id);
    }
    if (s->listener_listener > 0) {
        pelix_registry_remove_listener(s->reg, s->listener_listener);
        s->listener_listener = 0;
    }
    if (s->epfd >= 0) {
        mqtt__post(s, shutdown_cmd, NULL, true);
        mqtt__loop_stop(s);
    }
    /* Connector threads report to nobody now: a moment for them to end, then the ones stuck
     * in a name lookup or a TCP connect end on their own. */
    mqtt__connectors_close(s->connectors, CONNECTORS_WAIT_MS);
    s->connectors = NULL;
    mqtt__listeners_untrack(s);
    mqtt__dispatch_free(s->dispatch);
    mqtt__batch_free(&s->batch);
    mqtt__trie_free(s->trie);
    mqtt__trie_free(s->shared);
    mqtt__trie_scratch_free(&s->scratch);
    mqtt__trie_scratch_free(&s->shared_scratch);
    pelix__map_clear(&s->conns);
    pelix__map_clear(&s->shares);
    pelix__free(s->connected);
    for (size_t i = 0; i < s->nconfigured; i++) {
        mqtt__conn_unref(s->configured[i]); /* none: each closed connection left the list */
    }
    pelix__free(s->configured);
    for (size_t i = 0; i < s->nkept; i++) {
        mqtt__conn_unref(s->kept[i]);
    }
    pelix__free(s->kept);
    pthread_mutex_destroy(&s->lmap_lock);
    pthread_mutex_destroy(&s->calls_lock);
    pthread_cond_destroy(&s->calls_cond);
    pthread_cond_destroy(&s->closing_cond);
    pthread_mutex_destroy(&s->conns_lock);
    pthread_mutex_destroy(&s->cmd_lock);
    pthread_cond_destroy(&s->cmd_cond);
    pthread_mutex_destroy(&s->relay_lock);
    pthread_cond_destroy(&s->relay_cond);
    pelix__free(m);
    return NULL;
}
