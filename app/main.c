/*
 * pelix-mqtt, the host program. It starts the service runtime (the registry and ConfigAdmin on
 * the configuration folder, watched for changes), the MQTT service, which connects one broker per
 * `mqtt.connector` configuration, the embedded default broker when nothing else is configured,
 * and the shell on standard input; runs until `quit`, SIGINT or SIGTERM, then stops everything in
 * order (listeners, connections, the embedded broker, ConfigAdmin).
 *
 * Threads: the main thread reads commands (app/input.c); a signal thread turns SIGINT/SIGTERM
 * into a byte on the stop pipe; the services run their own threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pelix/configadmin.h>
#include <pelix/mqtt.h>
#include <pelix/registry.h>

#include "app.h"

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
    fprintf(out,
            "Usage: pelix-mqtt [--conf DIR] [--log-level LEVEL] [--no-embedded-broker]\n"
            "                  [-c CMD]... [--exit-on-eof] [--help] [--version]\n"
            "\n"
            "Starts the pelix service runtime with Configuration Admin on DIR (its\n"
            "<pid>.config.js files are loaded and followed while running), the MQTT service\n"
            "(one broker connection per mqtt.connector configuration) and a shell reading\n"
            "commands from standard input ('help' lists them). With no broker configured, a\n"
            "private mosquitto is started on a free loopback port and configured.\n"
            "Stops on 'quit', SIGINT or SIGTERM.\n"
            "\n"
            "  --conf DIR            configuration folder (default ./conf, created if missing)\n"
            "  --log-level LEVEL     error, warning, info (default) or debug\n"
            "  --no-embedded-broker  never start the private broker\n"
            "  -c CMD                run a shell command at start (repeatable, in order)\n"
            "  --exit-on-eof         stop when standard input ends (a pipe's end otherwise\n"
            "                        keeps pelix-mqtt running until a signal)\n"
            "  --help                this text\n"
            "  --version             the version\n");
}

static int stop_pipe[2] = {-1, -1};

/* Waits for SIGINT/SIGTERM (blocked in every thread) and writes the signal to the stop pipe. */
static void *signal_thread(void *arg)
{
    const sigset_t *stop = arg;
    int sig = 0;

    while (sigwait(stop, &sig) != 0) {
    }
    unsigned char b = (unsigned char)sig;
    while (write(stop_pipe[1], &b, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"conf", required_argument, NULL, 'C'},
        {"log-level", required_argument, NULL, 'l'},
        {"no-embedded-broker", no_argument, NULL, 'n'},
        {"exit-on-eof", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    pelix_configadmin_options_t opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configadmin_t *ca = NULL;
    pelix_mqtt_options_t mqtt_opts = PELIX_MQTT_OPTIONS_INIT;
    pelix_shell_options_t shell_opts = {0};
    pelix_shell_t *shell = NULL;
    pelix_mqtt_t *mqtt = NULL;
    app_broker_t *broker = NULL;
    pelix_registry_t *reg;
    const char *folder = "conf";
    const char **commands = calloc((size_t)argc + 1, sizeof(char *));
    size_t ncommands = 0;
    bool no_embedded = false, exit_on_eof = false;
    app_stop_t why = APP_STOP_QUIT;
    pthread_t signals;
    sigset_t stop;
    int opt, rc;

    if (!commands) {
        fprintf(stderr, "pelix-mqtt: out of memory\n");
        return 1;
    }
    opts.logger.fn = log_line;
    opts.logger.max_level = PELIX_LOG_INFO;
    while ((opt = getopt_long(argc, argv, "c:", options, NULL)) != -1) {
        switch (opt) {
        case 'C':
            folder = optarg;
            break;
        case 'c':
            commands[ncommands++] = optarg;
            break;
        case 'n':
            no_embedded = true;
            break;
        case 'e':
            exit_on_eof = true;
            break;
        case 'l':
            if (pelix_log_level_parse(optarg, &opts.logger.max_level) < 0) {
                fprintf(stderr,
                        "pelix-mqtt: --log-level: '%s' is not one of error, warning, "
                        "info, debug\n",
                        optarg);
                free(commands);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            free(commands);
            return 0;
        case 'V':
            printf("pelix-mqtt %s\n", PELIX_VERSION);
            free(commands);
            return 0;
        default:
            fprintf(stderr, "pelix-mqtt: see --help\n");
            free(commands);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pelix-mqtt: unexpected argument '%s' (see --help)\n", argv[optind]);
        free(commands);
        return 2;
    }

    /* Signals are taken by the signal thread; every thread started from here inherits the mask. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (pipe2(stop_pipe, O_CLOEXEC) < 0 ||
        pthread_create(&signals, NULL, signal_thread, &stop) != 0) {
        fprintf(stderr, "pelix-mqtt: cannot start: %s\n", strerror(errno));
        free(commands);
        return 1;
    }
    pthread_detach(signals);

    reg = pelix_registry_new();
    if (!reg) {
        fprintf(stderr, "pelix-mqtt: out of memory\n");
        free(commands);
        return 1;
    }
    opts.folder = folder;
    rc = pelix_configadmin_new(reg, &opts, &ca, &err);
    if (rc < 0) {
        fprintf(stderr, "pelix-mqtt: cannot start ConfigAdmin on '%s': %s\n", folder,
                err.text[0] ? err.text : pelix_strerror(rc));
        pelix_registry_free(reg);
        free(commands);
        return 1;
    }
    broker = app_embedded_setup(ca, &opts.logger, no_embedded);
    mqtt_opts.logger = opts.logger;
    rc = pelix_mqtt_new(reg, ca, &mqtt_opts, &mqtt);
    shell_opts.reg = reg;
    shell_opts.ca = ca;
    shell_opts.mqtt = mqtt;
    shell_opts.logger = opts.logger;
    if (rc == 0) {
        rc = pelix__shell_new(&shell_opts, &shell);
    }
    if (rc < 0) {
        fprintf(stderr, "pelix-mqtt: cannot start: %s\n", pelix_strerror(rc));
        pelix_mqtt_free(mqtt);
        app_broker_stop(broker);
        pelix_configadmin_free(ca);
        pelix_registry_free(reg);
        free(commands);
        return 1;
    }
    app_embedded_wait(reg, broker);
    log_line(NULL, PELIX_LOG_INFO, "pelix-mqtt",
             "started on the configuration folder; type 'help' for the commands");
    for (size_t i = 0; i < ncommands && why != APP_STOP_SIGNAL; i++) {
        if (pelix__shell_exec(shell, commands[i]) == PELIX_SHELL_QUIT) {
            why = APP_STOP_SIGNAL; /* stop without reading */
        }
    }
    if (why != APP_STOP_SIGNAL) {
        why = app_input_run(shell, stop_pipe[0], exit_on_eof);
    } else {
        why = APP_STOP_QUIT;
    }
    log_line(NULL, PELIX_LOG_INFO, "pelix-mqtt",
             why == APP_STOP_SIGNAL ? "signal: stopping"
             : why == APP_STOP_QUIT ? "quit: stopping"
                                    : "end of input: stopping");
    pelix__shell_free(shell);
    pelix_mqtt_free(mqtt);
    app_broker_stop(broker);
    pelix_configadmin_free(ca);
    pelix_registry_free(reg);
    free(commands);
    return 0;
}
