/*
 * pelix-mqtt, the host program. It starts the service runtime (the registry and ConfigAdmin on
 * the configuration folder, watched for changes) and the MQTT service, which connects one broker
 * per `mqtt.connector` configuration; prints the configurations it loaded, logs what the services
 * report, and runs until SIGINT or SIGTERM.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pelix/configadmin.h>
#include <pelix/mqtt.h>
#include <pelix/registry.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_line(void *ctx, pelix_log_level_t level, const char *module, const char *message)
{
    char stamp[32];
    struct timespec ts;
    struct tm tm;

    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s.%03ld %-7s %s: %s\n", stamp, ts.tv_nsec / 1000000,
            pelix_log_level_name(level), module, message);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: pelix-mqtt [--conf DIR] [--log-level LEVEL] [--help] [--version]\n"
                 "\n"
                 "Starts the pelix service runtime with Configuration Admin on DIR (default\n"
                 "./conf, created if missing), whose <pid>.config.js files are loaded and\n"
                 "followed while running. Stops on SIGINT or SIGTERM.\n"
                 "\n"
                 "  --conf DIR          configuration folder\n"
                 "  --log-level LEVEL   error, warning, info (default) or debug\n"
                 "  --help              this text\n"
                 "  --version           the version\n");
}

static void print_configurations(pelix_configadmin_t *ca, const char *folder)
{
    pelix_configuration_t **list;
    pelix_error_t err = PELIX_ERROR_INIT;
    size_t n;

    if (pelix_configadmin_list_configurations(ca, NULL, &list, &n, &err) < 0) {
        fprintf(stderr, "pelix-mqtt: cannot list configurations: %s\n", err.text);
        return;
    }
    printf("%zu configuration%s in %s\n", n, n == 1 ? "" : "s", folder);
    for (size_t i = 0; i < n; i++) {
        pelix_props_t *props = NULL;
        const char *factory = pelix_configuration_get_factory_pid(list[i]);

        printf("  %s", pelix_configuration_get_pid(list[i]));
        if (factory) {
            printf(" (factory %s)", factory);
        }
        printf("\n");
        if (pelix_configuration_get_properties(list[i], &props) == 0 && props) {
            for (size_t k = 0; k < pelix_props_size(props); k++) {
                const char *key = pelix_props_key_at(props, k);
                char *value = pelix_props_is_secret_key(key)
                                  ? NULL
                                  : pelix_value_to_string(pelix_props_value_at(props, k));
                printf("    %s = %s\n", key, value ? value : "********");
                free(value);
            }
        }
        pelix_props_free(props);
    }
    fflush(stdout);
    pelix_configuration_list_free(list, n);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"conf", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    pelix_configadmin_options_t opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configadmin_t *ca = NULL;
    pelix_mqtt_options_t mqtt_opts = PELIX_MQTT_OPTIONS_INIT;
    pelix_mqtt_t *mqtt = NULL;
    pelix_registry_t *reg;
    const char *folder = "conf";
    sigset_t stop;
    int opt, sig, rc;

    opts.logger.fn = log_line;
    opts.logger.max_level = PELIX_LOG_INFO;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            folder = optarg;
            break;
        case 'l':
            if (pelix_log_level_parse(optarg, &opts.logger.max_level) < 0) {
                fprintf(stderr,
                        "pelix-mqtt: --log-level: '%s' is not one of error, warning, "
                        "info, debug\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("pelix-mqtt %s\n", PELIX_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pelix-mqtt: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }

    /* Signals are taken by sigwait() below; every thread started from here inherits the mask. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    reg = pelix_registry_new();
    if (!reg) {
        fprintf(stderr, "pelix-mqtt: out of memory\n");
        return 1;
    }
    opts.folder = folder;
    rc = pelix_configadmin_new(reg, &opts, &ca, &err);
    if (rc < 0) {
        fprintf(stderr, "pelix-mqtt: cannot start ConfigAdmin on '%s': %s\n", folder,
                err.text[0] ? err.text : pelix_strerror(rc));
        pelix_registry_free(reg);
        return 1;
    }
    mqtt_opts.logger = opts.logger;
    rc = pelix_mqtt_new(reg, ca, &mqtt_opts, &mqtt);
    if (rc < 0) {
        fprintf(stderr, "pelix-mqtt: cannot start the MQTT service: %s\n", pelix_strerror(rc));
        pelix_configadmin_free(ca);
        pelix_registry_free(reg);
        return 1;
    }
    print_configurations(ca, folder);
    log_line(NULL, PELIX_LOG_INFO, "pelix-mqtt",
             "runtime and MQTT service started; following the configuration folder (Ctrl-C to "
             "stop)");

    while (sigwait(&stop, &sig) != 0) {
    }
    log_line(NULL, PELIX_LOG_INFO, "pelix-mqtt",
             sig == SIGINT ? "SIGINT: stopping" : "SIGTERM: stopping");
    pelix_mqtt_free(mqtt);
    pelix_configadmin_free(ca);
    pelix_registry_free(reg);
    return 0;
}
