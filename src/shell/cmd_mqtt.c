/*
 * The MQTT commands: mqtt.connections, mqtt.publish (through the `pelix.mqtt.factory` service),
 * mqtt.subscribe / mqtt.unsubscribe (whiteboard listener services printing what they receive,
 * like `mosquitto_sub -v`) and mqtt.stats.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqtt/topic/topic.h"
#include "shell/shell_internal.h"

struct shell_sub {
    pelix_shell_t *sh;
    long id;
    pelix_mqtt_listener_t svc;
};

static bool no_mqtt(pelix_shell_t *sh, const char *cmd, int *rc)
{
    if (sh->o.mqtt) {
        return false;
    }
    *rc = shell__fail(sh, cmd, -ENOTSUP, "the MQTT service is not running");
    return true;
}

/* Options given as k=v after the positional arguments: qos=, retain=, pid=. */
typedef struct opts {
    long qos;
    bool retain;
    const char *pid;
} opts_t;

/* Splits the words into `npos` positional ones and options; 0 or an error reported. */
static int read_opts(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n, size_t *npos,
                     bool allow_retain_pid, opts_t *o)
{
    *npos = 1;
    while (*npos < n &&
           (w[*npos].quoted || !strchr(w[*npos].text, '=') ||
            (strncmp(w[*npos].text, "qos=", 4) != 0 && strncmp(w[*npos].text, "retain=", 7) != 0 &&
             strncmp(w[*npos].text, "pid=", 4) != 0))) {
        (*npos)++;
    }
    for (size_t i = *npos; i < n; i++) {
        const char *t = w[i].text;
        if (strncmp(t, "qos=", 4) == 0) {
            if (!shell__long(t + 4, &o->qos) || o->qos < 0 || o->qos > 2) {
                return shell__fail(sh, w[0].text, -EINVAL, "qos: '%s' is not 0, 1 or 2", t + 4);
            }
        } else if (allow_retain_pid && strncmp(t, "retain=", 7) == 0) {
            if (strcmp(t + 7, "true") != 0 && strcmp(t + 7, "false") != 0) {
                return shell__fail(sh, w[0].text, -EINVAL, "retain: '%s' is not true or false",
                                   t + 7);
            }
            o->retain = t[7] == 't';
        } else if (allow_retain_pid && strncmp(t, "pid=", 4) == 0 && t[4]) {
            o->pid = t + 4;
        } else {
            return shell__fail(sh, w[0].text, -EINVAL, "unexpected '%s' after the options", t);
        }
    }
    return 0;
}

/* ---- mqtt.connections, mqtt.stats ------------------------------------------------------------ */

/* How long ago `since` (wall clock ms) was: "12s", "5m", "3h", "2d". */
static void age(int64_t since, char *out, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t s = ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - since) / 1000;
    s = s < 0 ? 0 : s;
    if (s < 120) {
        snprintf(out, size, "%llds", (long long)s);
    } else if (s < 7200) {
        snprintf(out, size, "%lldm", (long long)(s / 60));
    } else if (s < 172800) {
        snprintf(out, size, "%lldh", (long long)(s / 3600));
    } else {
        snprintf(out, size, "%lldd", (long long)(s / 86400));
    }
}

int shell__cmd_mqtt_connections(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    pelix_mqtt_connection_info_t *list = NULL;
    size_t count = 0;
    int rc = shell__arity(sh, w, n, 0, 0);

    if (rc < 0 || no_mqtt(sh, w[0].text, &rc)) {
        return rc;
    }
    rc = pelix_mqtt_connections(sh->o.mqtt, &list, &count);
    if (rc < 0) {
        return shell__fail(sh, w[0].text, rc, "%s", pelix_strerror(rc));
    }
    int wpid = 3, wwhere = 9, wid = 9;
    for (size_t i = 0; i < count; i++) {
        int len = (int)strlen(list[i].pid), idlen = (int)strlen(list[i].client_id);
        int where = (int)strlen(list[i].host) + 6;
        wpid = len > wpid ? len : wpid;
        wid = idlen > wid ? idlen : wid;
        wwhere = where > wwhere ? where : wwhere;
    }
    shell__print(sh, "%-*s %-*s %-11s %6s %-*s %8s %8s %7s %7s %8s  %s\n", wpid, "PID", wwhere,
                 "HOST:PORT", "STATE", "SINCE", wid, "CLIENT ID", "IN", "OUT", "QUEUED", "DROPPED",
                 "CONNECTS", "LAST ERROR");
    for (size_t i = 0; i < count; i++) {
        char where[300], since[32], error[400];
        snprintf(where, sizeof(where), "%s:%ld", list[i].host, list[i].port);
        age(list[i].since, since, sizeof(since));
        if (list[i].retry_in >= 0) {
            snprintf(error, sizeof(error), "%s (retry in %lds)",
                     list[i].last_error[0] ? list[i].last_error : "-",
                     (list[i].retry_in + 999) / 1000);
        } else {
            snprintf(error, sizeof(error), "%s", list[i].last_error[0] ? list[i].last_error : "-");
        }
        shell__print(sh, "%-*s %-*s %-11s %6s %-*s %8llu %8llu %7zu %7llu %8llu  %s\n", wpid,
                     list[i].pid, wwhere, where, list[i].state, since, wid, list[i].client_id,
                     (unsigned long long)list[i].messages_in,
                     (unsigned long long)list[i].messages_out, list[i].queued,
                     (unsigned long long)list[i].dropped, (unsigned long long)list[i].connects,
                     error);
    }
    shell__print(sh, "%zu connection%s\n", count, count == 1 ? "" : "s");
    pelix_mqtt_connections_free(list, count);
    return 0;
}

int shell__cmd_mqtt_stats(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    pelix_mqtt_stats_t st;
    int rc = shell__arity(sh, w, n, 0, 0);

    if (rc < 0 || no_mqtt(sh, w[0].text, &rc)) {
        return rc;
    }
    rc = pelix_mqtt_stats(sh->o.mqtt, &st);
    if (rc < 0) {
        return shell__fail(sh, w[0].text, rc, "%s", pelix_strerror(rc));
    }
    shell__print(sh,
                 "connections       %zu (%zu connected)\n"
                 "listeners         %zu\n"
                 "topic filters     %zu\n"
                 "messages in       %llu\n"
                 "messages out      %llu\n"
                 "listener calls    %llu\n"
                 "listener dropped  %llu (queue full)\n"
                 "listener queued   %llu\n",
                 st.connections, st.connected, st.listeners, st.filters,
                 (unsigned long long)st.messages_in, (unsigned long long)st.messages_out,
                 (unsigned long long)st.listener_calls, (unsigned long long)st.listener_dropped,
                 (unsigned long long)st.listener_queued);
    return 0;
}

/* ---- mqtt.publish ---------------------------------------------------------------------------- */

typedef struct publish {
    const char *topic, *payload;
    opts_t o;
    int rc;
    pelix_mqtt_result_t *results;
    size_t count;
} publish_t;

static void publish_with(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    publish_t *p = ctx;
    pelix_mqtt_factory_t *f = svc;
    (void)id;
    (void)props;
    p->rc = f->publish(f->handle, p->topic, p->payload, strlen(p->payload), (int)p->o.qos,
                       p->o.retain, p->o.pid, &p->results, &p->count);
}

int shell__cmd_mqtt_publish(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    publish_t p = {0};
    size_t npos;
    int rc = read_opts(sh, w, n, &npos, true, &p.o);

    if (rc < 0) {
        return rc;
    }
    if (npos != 3) {
        return shell__fail(sh, w[0].text, -EINVAL,
                           "%s; usage: mqtt.publish <topic> <payload> [qos=N] [retain=true] "
                           "[pid=PID]",
                           npos < 3 ? "missing argument" : "too many arguments");
    }
    p.topic = w[1].text;
    p.payload = w[2].text;
    rc = pelix_registry_use(sh->o.reg, PELIX_MQTT_FACTORY_SPEC, NULL, publish_with, &p);
    if (rc < 0) {
        return shell__fail(sh, w[0].text, rc, "the MQTT service is not running");
    }
    for (size_t i = 0; i < p.count; i++) {
        if (p.results[i].rc == 0 && p.results[i].queued) {
            shell__print(sh, "queued for %s (not connected: sent when it connects)\n",
                         p.results[i].pid);
        } else if (p.results[i].rc == 0) {
            shell__print(sh, "published to %s (message id %d)\n", p.results[i].pid,
                         p.results[i].mid);
        } else {
            const int one = p.results[i].rc;
            shell__fail(sh, w[0].text, one, "%s: %s", p.results[i].pid,
                        one == -ENOBUFS    ? "its offline queue is full (see drop_policy)"
                        : one == -ENOTCONN ? "not connected, and QoS 0 is not queued (queue_qos0)"
                                           : pelix_strerror(one));
        }
    }
    pelix_mqtt_results_free(p.results, p.count);
    if (p.count > 0 || p.rc == 0) {
        return p.rc < 0 ? p.rc : 0; /* each connection said what happened */
    }
    if (p.rc == -ENOENT) {
        return shell__fail(sh, w[0].text, p.rc, "no configuration '%s' (see mqtt.connections)",
                           p.o.pid);
    }
    if (p.rc == -ENOTCONN) {
        return shell__fail(sh, w[0].text, p.rc,
                           "no broker configured (see config.create, mqtt.connections)");
    }
    return shell__fail(sh, w[0].text, p.rc, "'%s': %s", p.topic, pelix_strerror(p.rc));
}

/* ---- mqtt.subscribe, mqtt.unsubscribe -------------------------------------------------------- */

/* Writes `len` bytes, escaping what would break the line: \\, \n, \r, \t and other control or
 * non-ASCII bytes as \xHH. */
static void escape(FILE *out, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c == '\\') {
            fputs("\\\\", out);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\r') {
            fputs("\\r", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\x%02x", c);
        } else {
            fputc(c, out); /* UTF-8 text stays readable */
        }
    }
}

static void on_message(void *handle, const pelix_mqtt_message_t *msg)
{
    shell_sub_t *sub = handle;
    pelix_shell_t *sh = sub->sh;

    pthread_mutex_lock(&sh->out_lock);
    escape(sh->o.out, (const unsigned char *)msg->topic, strlen(msg->topic));
    fputc(' ', sh->o.out);
    escape(sh->o.out, msg->payload, msg->len);
    fputc('\n', sh->o.out);
    fflush(sh->o.out);
    pthread_mutex_unlock(&sh->out_lock);
}

int shell__cmd_mqtt_subscribe(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    static const char *const specs[] = {PELIX_MQTT_LISTENER_SPEC};
    pelix_error_t err = PELIX_ERROR_INIT;
    opts_t o = {0};
    size_t npos;
    shell_sub_t *sub;
    pelix_props_t *p;
    pelix_value_t *list;
    int rc = read_opts(sh, w, n, &npos, false, &o);

    if (rc < 0) {
        return rc;
    }
    if (npos < 2) {
        return shell__fail(sh, w[0].text, -EINVAL,
                           "missing argument; usage: mqtt.subscribe <filter> [filter ...] "
                           "[qos=N]");
    }
    for (size_t i = 1; i < npos; i++) {
        if (mqtt__topic_check_filter(w[i].text, &err) < 0) {
            return shell__fail(sh, w[0].text, PELIX_E_TOPIC, "'%s': %s", w[i].text, err.text);
        }
    }
    if (pelix__grow((void **)&sh->subs, &sh->capsubs, sh->nsubs + 1, sizeof(*sh->subs)) != 0 ||
        !(sub = pelix__calloc(1, sizeof(*sub)))) {
        return shell__fail(sh, w[0].text, -ENOMEM, "out of memory");
    }
    sub->sh = sh;
    sub->svc.handle_mqtt_message = on_message;
    sub->svc.handle = sub;
    p = pelix_props_new();
    list = pelix_value_new_list();
    rc = p && list ? 0 : -ENOMEM;
    for (size_t i = 1; rc == 0 && i < npos; i++) {
        rc = pelix_value_list_append(list, pelix_value_new_string(w[i].text));
    }
    if (rc == 0) {
        rc = pelix_props_set(p, PELIX_MQTT_TOPICS, list);
    }
    if (rc == 0) {
        rc = pelix_props_set_long(p, PELIX_MQTT_QOS, o.qos);
    }
    pelix_value_free(list);
    if (rc == 0) {
        rc = pelix_registry_register(sh->o.reg, specs, 1, &sub->svc, p, &sub->id);
        p = NULL; /* consumed */
    }
    pelix_props_free(p);
    if (rc < 0) {
        pelix__free(sub);
        return shell__fail(sh, w[0].text, rc, "%s", pelix_strerror(rc));
    }
    sh->subs[sh->nsubs++] = sub;
    if (sh->o.mqtt) {
        pelix_mqtt_sync(sh->o.mqtt); /* subscribed before a publish that follows */
    }
    shell__print(sh, "%ld\n", sub->id);
    return 0;
}

int shell__cmd_mqtt_unsubscribe(pelix_shell_t *sh, const pelix_shell_word_t *w, size_t n)
{
    long id;
    int rc = shell__arity(sh, w, n, 1, 1);

    if (rc < 0) {
        return rc;
    }
    if (!shell__long(w[1].text, &id)) {
        return shell__fail(sh, w[0].text, -EINVAL, "'%s' is not a listener id", w[1].text);
    }
    for (size_t i = 0; i < sh->nsubs; i++) {
        if (sh->subs[i]->id == id) {
            shell_sub_t *sub = sh->subs[i];
            sh->subs[i] = sh->subs[--sh->nsubs];
            pelix_registry_unregister(sh->o.reg, sub->id); /* waits for a call in progress */
            pelix__free(sub);
            return 0;
        }
    }
    return shell__fail(sh, w[0].text, -ENOENT, "no listener %ld made by mqtt.subscribe", id);
}

void shell__subs_free(pelix_shell_t *sh)
{
    for (size_t i = 0; i < sh->nsubs; i++) {
        pelix_registry_unregister(sh->o.reg, sh->subs[i]->id);
        pelix__free(sh->subs[i]);
    }
    pelix__free(sh->subs);
    sh->subs = NULL;
    sh->nsubs = sh->capsubs = 0;
}
