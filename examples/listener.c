/*
 * listener: prints the MQTT messages that arrive from every broker configured in a folder, until
 * Ctrl-C (SIGINT) or SIGTERM.
 *
 *     listener DIR [FILTER...]
 *
 * DIR holds one `mqtt.connector` configuration per broker (`<pid>.config.js` files, as
 * pelix-mqtt and Pelix write them); it is created if missing and followed while running. The
 * FILTERs are MQTT topic filters ("#" when none is given). Each message is printed on one line,
 * `<topic> <payload>`.
 *
 * The broker sees one client per configuration, whose id is derived from the configuration PID:
 * two programs running on the same folder at once connect with the same client id, and the broker
 * drops one of them. Give each program its own folder (or configurations with a `client_id`).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <pelix/configadmin.h>
#include <pelix/mqtt.h>
#include <pelix/registry.h>

/* Called on a dispatch thread of the MQTT service, one message at a time. */
static void on_message(void *handle, const pelix_mqtt_message_t *msg)
{
    (void)handle;
    printf("%s %.*s\n", msg->topic, (int)msg->len, (const char *)msg->payload);
    fflush(stdout);
}

/* What the services report (a refused connection, a malformed file), from their threads. */
static void on_log(void *ctx, pelix_log_level_t level, const char *module, const char *message)
{
    (void)ctx;
    fprintf(stderr, "%s %s: %s\n", pelix_log_level_name(level), module, message);
}

int main(int argc, char **argv)
{
    static pelix_mqtt_listener_t listener = {on_message, NULL};
    static const char *const all_topics[] = {"#"};
    const char *spec[] = {PELIX_MQTT_LISTENER_SPEC};
    const char *const *filters = argc > 2 ? (const char *const *)(argv + 2) : all_topics;
    size_t nfilters = argc > 2 ? (size_t)(argc - 2) : 1;
    pelix_configadmin_options_t ca_opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_mqtt_options_t mqtt_opts = PELIX_MQTT_OPTIONS_INIT;
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configadmin_t *ca = NULL;
    pelix_mqtt_t *mqtt = NULL;
    pelix_registry_t *reg;
    pelix_props_t *props;
    long id = 0;
    sigset_t stop;
    int rc, sig;

    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "Usage: listener DIR [FILTER...]\n"
                "Prints the messages of the brokers configured in DIR, until Ctrl-C.\n");
        return argc < 2 ? 2 : 0;
    }

    /* SIGINT and SIGTERM are taken by sigwait() below; the library's threads inherit the mask. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    /* The runtime: a registry, ConfigAdmin on the folder, the MQTT service. */
    ca_opts.folder = argv[1];
    ca_opts.logger.fn = on_log;
    mqtt_opts.logger = ca_opts.logger;
    reg = pelix_registry_new();
    rc = reg ? pelix_configadmin_new(reg, &ca_opts, &ca, &err) : -ENOMEM;
    if (rc == 0) {
        rc = pelix_mqtt_new(reg, ca, &mqtt_opts, &mqtt);
    }

    /* The listener, a whiteboard service: the MQTT service subscribes its topics on every broker,
     * connected now or later. The properties are consumed by the registration. */
    if (rc == 0) {
        props = pelix_props_new();
        rc = props ? pelix_props_set_strings(props, PELIX_MQTT_TOPICS, filters, nfilters) : -ENOMEM;
        if (rc == 0) {
            rc = pelix_registry_register(reg, spec, 1, &listener, props, &id);
        } else {
            pelix_props_free(props);
        }
    }

    if (rc == 0) {
        fprintf(stderr, "listener: listening on the brokers of '%s' (Ctrl-C to stop)\n", argv[1]);
        while (sigwait(&stop, &sig) != 0) {
        }
        pelix_registry_unregister(reg, id);
    } else {
        fprintf(stderr, "listener: %s\n", err.text[0] ? err.text : pelix_strerror(rc));
    }
    pelix_mqtt_free(mqtt);
    pelix_configadmin_free(ca);
    pelix_registry_free(reg);
    return rc == 0 ? 0 : 1;
}
