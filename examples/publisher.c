/*
 * publisher: publishes one message on the brokers configured in a folder, then stops.
 *
 *     publisher DIR TOPIC PAYLOAD
 *
 * DIR holds one `mqtt.connector` configuration per broker (`<pid>.config.js` files, as
 * pelix-mqtt and Pelix write them). The program waits (10 s at most) until a broker accepted its
 * connection, publishes the message with QoS 1 through the `pelix.mqtt.factory` service, on every
 * configured broker, waits until each broker acknowledged it (`wait_published`, 5 s at most),
 * prints the outcome per connection, and stops.
 *
 * The broker sees one client per configuration, whose id is derived from the configuration PID:
 * two programs running on the same folder at once connect with the same client id, and the broker
 * drops one of them. Give each program its own folder (or configurations with a `client_id`).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <pelix/configadmin.h>
#include <pelix/mqtt.h>
#include <pelix/registry.h>

#define WAIT_SECONDS 10

/* What the services report (a refused connection, a malformed file), from their threads. */
static void on_log(void *ctx, pelix_log_level_t level, const char *module, const char *message)
{
    (void)ctx;
    fprintf(stderr, "%s %s: %s\n", pelix_log_level_name(level), module, message);
}

/* Set when a `pelix.mqtt.connection` service (a connected broker) appears. */
typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool connected;
} waiter_t;

/* A service listener: called on the thread that registers the service (here, the network thread
 * of the MQTT service), or on the calling thread for the services already there (replay). */
static void on_connection(void *ctx, const pelix_svc_event_t *event)
{
    waiter_t *w = ctx;

    if (event->kind == PELIX_SVC_REGISTERED) {
        pthread_mutex_lock(&w->lock);
        w->connected = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
}

static bool wait_connection(pelix_registry_t *reg)
{
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    struct timespec deadline;
    long listener_id;
    bool connected;

    if (pelix_registry_add_listener(reg, PELIX_MQTT_CONNECTION_SPEC, NULL, true, on_connection, &w,
                                    &listener_id, NULL) < 0) {
        return false;
    }
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&w.lock);
    while (!w.connected && pthread_cond_timedwait(&w.cond, &w.lock, &deadline) != ETIMEDOUT) {
    }
    connected = w.connected;
    pthread_mutex_unlock(&w.lock);
    pelix_registry_remove_listener(reg, listener_id);
    return connected;
}

typedef struct message {
    const char *topic;
    const char *payload;
    int rc;
} message_t;

/* Called with the factory service, which the registry keeps in use during the call. */
static void publish(void *ctx, long id, void *svc, const pelix_props_t *props)
{
    message_t *m = ctx;
    pelix_mqtt_factory_t *factory = svc;
    pelix_mqtt_result_t *results = NULL;
    size_t count = 0;

    (void)id;
    (void)props;
    m->rc = factory->publish(factory->handle, m->topic, m->payload, strlen(m->payload), 1, false,
                             NULL, &results, &count);
    for (size_t i = 0; i < count; i++) {
        /* Sent: wait (up to 5 s) until the broker acknowledged it. */
        int rc = results[i].rc == 0 && results[i].token
                     ? factory->wait_published(factory->handle, &results[i], 5000)
                     : results[i].rc;
        printf("%s: %s\n", results[i].pid,
               rc == 0 ? (results[i].queued ? "queued" : "published") : pelix_strerror(rc));
    }
    pelix_mqtt_results_free(results, count);
}

int main(int argc, char **argv)
{
    pelix_configadmin_options_t ca_opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_mqtt_options_t mqtt_opts = PELIX_MQTT_OPTIONS_INIT;
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configadmin_t *ca = NULL;
    pelix_mqtt_t *mqtt = NULL;
    pelix_registry_t *reg;
    message_t m = {NULL, NULL, 0};
    int rc;

    if (argc != 4) {
        bool help = argc == 2 && strcmp(argv[1], "--help") == 0;

        fprintf(help ? stdout : stderr,
                "Usage: publisher DIR TOPIC PAYLOAD\n"
                "Publishes PAYLOAD on TOPIC on the brokers configured in DIR.\n");
        return help ? 0 : 2;
    }
    m.topic = argv[2];
    m.payload = argv[3];

    /* The runtime: a registry, ConfigAdmin on the folder (not watched: the program is short), the
     * MQTT service. */
    ca_opts.folder = argv[1];
    ca_opts.watch = false;
    ca_opts.logger.fn = on_log;
    mqtt_opts.logger = ca_opts.logger;
    reg = pelix_registry_new();
    rc = reg ? pelix_configadmin_new(reg, &ca_opts, &ca, &err) : -ENOMEM;
    if (rc == 0) {
        rc = pelix_mqtt_new(reg, ca, &mqtt_opts, &mqtt);
    }

    if (rc == 0 && !wait_connection(reg)) {
        fprintf(stderr, "publisher: no broker of '%s' connected within %d s\n", argv[1],
                WAIT_SECONDS);
        rc = -ENOTCONN;
    } else if (rc == 0) {
        rc = pelix_registry_use(reg, PELIX_MQTT_FACTORY_SPEC, NULL, publish, &m);
        rc = rc == 0 ? m.rc : rc;
        if (rc < 0) {
            fprintf(stderr, "publisher: %s\n", pelix_strerror(rc));
        }
    } else {
        fprintf(stderr, "publisher: %s\n", err.text[0] ? err.text : pelix_strerror(rc));
    }
    pelix_mqtt_free(mqtt);
    pelix_configadmin_free(ca);
    pelix_registry_free(reg);
    return rc == 0 ? 0 : 1;
}
