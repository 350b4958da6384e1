/* Fixture of the MQTT service suites (see mqtt_fixture.h). */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include "integration/mqtt_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit/ca_helpers.h"

/* ---- log ------------------------------------------------------------------------------------- */

static void log_fn(void *ctx, pelix_log_level_t level, const char *module, const char *message)
{
    mf_log_t *l = ctx;
    char *line = NULL;
    size_t n = (size_t)snprintf(NULL, 0, "%s %s: %s", pelix_log_level_name(level), module, message);
    line = malloc(n + 1);
    if (!line) {
        return;
    }
    snprintf(line, n + 1, "%s %s: %s", pelix_log_level_name(level), module, message);
    pthread_mutex_lock(&l->lock);
    if (l->keep && l->count == l->keep) {
        free(l->lines[0]);
        memmove(l->lines, l->lines + 1, (l->count - 1) * sizeof(*l->lines));
        l->count--;
    }
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **grown = realloc(l->lines, cap * sizeof(*grown));
        if (!grown) {
            pthread_mutex_unlock(&l->lock);
            free(line);
            return;
        }
        l->lines = grown;
        l->cap = cap;
    }
    l->lines[l->count++] = line;
    pthread_mutex_unlock(&l->lock);
}

size_t mf_log_count(mf_t *fx, const char *needle)
{
    size_t n = 0;
    pthread_mutex_lock(&fx->log.lock);
    for (size_t i = 0; i < fx->log.count; i++) {
        n += strstr(fx->log.lines[i], needle) != NULL;
    }
    pthread_mutex_unlock(&fx->log.lock);
    return n;
}

void mf_log_dump(mf_t *fx)
{
    pthread_mutex_lock(&fx->log.lock);
    for (size_t i = 0; i < fx->log.count; i++) {
        fprintf(stderr, "  log: %s\n", fx->log.lines[i]);
    }
    pthread_mutex_unlock(&fx->log.lock);
}

/* ---- start and stop -------------------------------------------------------------------------- */

void mf_start(mf_t *fx, bool use_folder)
{
    pelix_configadmin_options_t ca_opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_mqtt_options_t opts = PELIX_MQTT_OPTIONS_INIT;
    pelix_logger_t logger = {log_fn, &fx->log, PELIX_LOG_DEBUG};

    if (!fx->log.ready) {
        pthread_mutex_init(&fx->log.lock, NULL);
        fx->log.ready = true;
    }
    if (use_folder && !fx->folder) {
        fx->folder = ca_tmpdir_new();
    }
    fx->reg = pelix_registry_new();
    assert_non_null(fx->reg);
    ca_opts.folder = use_folder ? fx->folder : NULL;
    ca_opts.logger = logger;
    assert_int_equal(pelix_configadmin_new(fx->reg, &ca_opts, &fx->ca, NULL), 0);
    opts.logger = logger;
    opts.listener_queue_messages = fx->queue_messages;
    opts.coalesce_us = fx->coalesce_us;
    opts.direct_us = fx->direct_us;
    assert_int_equal(pelix_mqtt_new(fx->reg, fx->ca, &opts, &fx->mqtt), 0);
}

void mf_stop(mf_t *fx)
{
    fx->mqtt = pelix_mqtt_free(fx->mqtt);
    fx->ca = pelix_configadmin_free(fx->ca);
    fx->reg = pelix_registry_free(fx->reg);
}

void mf_free(mf_t *fx)
{
    mf_stop(fx);
    ca_tmpdir_remove(fx->folder);
    fx->folder = NULL;
    for (size_t i = 0; i < fx->log.count; i++) {
        free(fx->log.lines[i]);
    }
    free(fx->log.lines);
    if (fx->log.ready) {
        pthread_mutex_destroy(&fx->log.lock);
    }
    memset(&fx->log, 0, sizeof(fx->log));
}

/* ---- configurations -------------------------------------------------------------------------- */

static pelix_props_t *props_of(int port, va_list ap)
{
    pelix_props_t *p = pelix_props_new();
    const char *k;

    assert_int_equal(pelix_props_set_string(p, "host", "127.0.0.1"), 0);
    if (port > 0) {
        assert_int_equal(pelix_props_set_long(p, "port", port), 0);
    }
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        assert_int_equal(pelix_props_set_string(p, k, v), 0);
    }
    return p;
}

char *mf_create(mf_t *fx, int port, ...)
{
    pelix_configuration_t *c;
    pelix_error_t err = PELIX_ERROR_INIT;
    va_list ap;
    char *pid;

    assert_int_equal(
        pelix_configadmin_create_factory_configuration(fx->ca, PELIX_MQTT_FACTORY_PID, &c, &err),
        0);
    va_start(ap, port);
    pelix_props_t *p = props_of(port, ap);
    va_end(ap);
    assert_int_equal(pelix_configuration_update(c, p, &err), 0);
    pid = strdup(pelix_configuration_get_pid(c));
    pelix_configuration_unref(c);
    return pid;
}

void mf_update(mf_t *fx, const char *pid, int port, ...)
{
    pelix_configuration_t *c;
    va_list ap;

    assert_int_equal(pelix_configadmin_get_configuration(fx->ca, pid, &c, NULL), 0);
    va_start(ap, port);
    pelix_props_t *p = props_of(port, ap);
    va_end(ap);
    assert_int_equal(pelix_configuration_update(c, p, NULL), 0);
    pelix_configuration_unref(c);
}

void mf_delete(mf_t *fx, const char *pid)
{
    pelix_configuration_t *c;

    assert_int_equal(pelix_configadmin_get_configuration(fx->ca, pid, &c, NULL), 0);
    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    pelix_configuration_unref(c);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long find_connection(mf_t *fx, const char *pid, size_t *ret_count)
{
    char filter[512];
    long *ids = NULL, id = 0;
    size_t n = 0;

    if (pid) {
        snprintf(filter, sizeof(filter), "(%s=%s)", PELIX_MQTT_PROP_ID, pid);
    }
    assert_int_equal(pelix_registry_find(fx->reg, PELIX_MQTT_CONNECTION_SPEC, pid ? filter : NULL,
                                         &ids, &n, NULL),
                     0);
    if (n) {
        id = ids[0];
    }
    free(ids);
    if (ret_count) {
        *ret_count = n;
    }
    return id;
}

size_t mf_count_connections(mf_t *fx, const char *pid)
{
    size_t n;
    find_connection(fx, pid, &n);
    return n;
}

long mf_wait_connection(mf_t *fx, const char *pid, long timeout_ms)
{
    for (long waited = 0;; waited += 20) {
        long id = find_connection(fx, pid, NULL);
        if (id || waited >= timeout_ms) {
            return id;
        }
        sleep_ms(20);
    }
}

bool mf_wait_no_connection(mf_t *fx, const char *pid, long timeout_ms)
{
    for (long waited = 0;; waited += 20) {
        if (!find_connection(fx, pid, NULL)) {
            return true;
        }
        if (waited >= timeout_ms) {
            return false;
        }
        sleep_ms(20);
    }
}

pelix_mqtt_connection_t *mf_connection(mf_t *fx, const char *pid)
{
    long id = find_connection(fx, pid, NULL);
    void *svc = NULL;

    if (!id || pelix_registry_get_service(fx->reg, id, &svc) < 0) {
        return NULL;
    }
    pelix_registry_unget_service(fx->reg, id);
    return svc;
}

pelix_mqtt_factory_t *mf_factory(mf_t *fx)
{
    long *ids = NULL;
    size_t n = 0;
    void *svc = NULL;

    assert_int_equal(pelix_registry_find(fx->reg, PELIX_MQTT_FACTORY_SPEC, NULL, &ids, &n, NULL),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(pelix_registry_get_service(fx->reg, ids[0], &svc), 0);
    pelix_registry_unget_service(fx->reg, ids[0]);
    free(ids);
    return svc;
}

/* ---- listeners ------------------------------------------------------------------------------- */

static char *dup_bytes(const void *p, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        if (len) {
            memcpy(d, p, len);
        }
        d[len] = '\0';
    }
    return d;
}

static void on_message(void *handle, const pelix_mqtt_message_t *msg)
{
    mf_listener_t *l = handle;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 3 * MF_WAIT_MS / 1000;
    pthread_mutex_lock(&l->lock);
    if (l->inside++) {
        l->overlapped++;
    }
    while (l->hold && pthread_cond_timedwait(&l->cond, &l->lock, &until) == 0) {
    }
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        mf_msg_t *grown = realloc(l->msgs, cap * sizeof(*grown));
        if (grown) {
            l->msgs = grown;
            l->cap = cap;
        }
    }
    if (l->count < l->cap) {
        mf_msg_t *m = &l->msgs[l->count];
        m->topic = strdup(msg->topic);
        m->payload = dup_bytes(msg->payload, msg->len);
        m->len = msg->len;
        m->qos = msg->qos;
        m->retain = msg->retain;
        m->connection = strdup(msg->connection);
        m->seq = l->count;
        l->count++;
    }
    pthread_cond_broadcast(&l->cond);
    l->inside--;
    pthread_mutex_unlock(&l->lock);
}

static pelix_props_t *topics_props(const char *const *topics, size_t count, bool as_list)
{
    pelix_props_t *p = pelix_props_new();
    if (count == 1 && !as_list) {
        assert_int_equal(pelix_props_set_string(p, PELIX_MQTT_TOPICS, topics[0]), 0);
    } else {
        assert_int_equal(pelix_props_set_strings(p, PELIX_MQTT_TOPICS, topics, count), 0);
    }
    return p;
}

void mf_listen(mf_t *fx, mf_listener_t *l, const char *const *topics, size_t count, bool as_list,
               int qos)
{
    const char *spec[] = {PELIX_MQTT_LISTENER_SPEC};
    pelix_props_t *p = topics_props(topics, count, as_list);

    if (!l->fx) {
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->cond, NULL);
    }
    l->fx = fx;
    l->svc.handle_mqtt_message = on_message;
    l->svc.handle = l;
    if (qos >= 0) {
        assert_int_equal(pelix_props_set_long(p, PELIX_MQTT_QOS, qos), 0);
    }
    if (l->connections) {
        assert_int_equal(pelix_props_set_string(p, PELIX_MQTT_CONNECTION_FILTER, l->connections),
                         0);
    }
    assert_int_equal(pelix_registry_register(fx->reg, spec, 1, &l->svc, p, &l->id), 0);
}

void mf_listen_set(mf_listener_t *l, const char *const *topics, size_t count, bool as_list)
{
    assert_int_equal(
        pelix_registry_set_properties(l->fx->reg, l->id, topics_props(topics, count, as_list)), 0);
}

void mf_unlisten(mf_listener_t *l)
{
    if (l->id) {
        assert_int_equal(pelix_registry_unregister(l->fx->reg, l->id), 0);
        l->id = 0;
    }
}

void mf_listener_destroy(mf_listener_t *l)
{
    if (!l->fx) {
        return;
    }
    if (l->id && l->fx->reg) {
        pelix_registry_unregister(l->fx->reg, l->id);
        l->id = 0;
    }
    for (size_t i = 0; i < l->count; i++) {
        free(l->msgs[i].topic);
        free(l->msgs[i].payload);
        free(l->msgs[i].connection);
    }
    free(l->msgs);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    memset(l, 0, sizeof(*l));
}

static size_t count_locked(mf_listener_t *l, const char *topic)
{
    size_t n = 0;
    for (size_t i = 0; i < l->count; i++) {
        n += !topic || strcmp(l->msgs[i].topic, topic) == 0;
    }
    return n;
}

size_t mf_listener_count(mf_listener_t *l, const char *topic)
{
    pthread_mutex_lock(&l->lock);
    size_t n = count_locked(l, topic);
    pthread_mutex_unlock(&l->lock);
    return n;
}

bool mf_listener_wait(mf_listener_t *l, const char *topic, size_t n, long timeout_ms)
{
    struct timespec until;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->lock);
    while (count_locked(l, topic) < n && pthread_cond_timedwait(&l->cond, &l->lock, &until) == 0) {
    }
    ok = count_locked(l, topic) >= n;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void mf_listener_hold(mf_listener_t *l, bool hold)
{
    pthread_mutex_lock(&l->lock);
    l->hold = hold;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}
