/*
 * The parts of the pelix-mqtt program (app/): the embedded broker (embedded.c) and the command
 * input (input.c); main.c ties them to the runtime. Everything here runs on the main thread.
 */
#ifndef PELIX_APP_H
#define PELIX_APP_H

#include <stdbool.h>
#include <sys/types.h>

#include <pelix/configadmin.h>
#include <pelix/log.h>
#include <pelix/registry.h>

#include "shell/shell.h"

/** The property marking the configuration of the embedded broker. */
#define APP_EMBEDDED_PROP "pelix.mqtt.embedded"

typedef struct app_broker app_broker_t;

/**
 * @brief Sets up the embedded default: unless `disabled` or the folder holds an `mqtt.connector`
 * configuration of its own, starts a private mosquitto on a free 127.0.0.1 port (a child that
 * dies with this process) and creates, or updates with the new port, the configuration marked
 * APP_EMBEDDED_PROP; says so on one log line. When not started, removes a stale embedded
 * configuration. Called on the main thread (the child is tied to it), before the MQTT service
 * starts, so that it never tries the port of an earlier run.
 * @return the broker (stop it with app_broker_stop()), or NULL when none was started (the reason
 *         is logged: disabled, other configurations, or mosquitto missing with how to install it).
 */
app_broker_t *app_embedded_setup(pelix_configadmin_t *ca, const pelix_logger_t *log, bool disabled);

/** @brief Waits (up to 5 s) until the connection service of the embedded broker's configuration
 * is in `reg`, so that the first commands find it connected. NULL `b`: returns at once. */
void app_embedded_wait(pelix_registry_t *reg, const app_broker_t *b);

/** @brief Stops the broker (SIGTERM, then SIGKILL after 2 s), removes its folder, frees it. */
void app_broker_stop(app_broker_t *b);

/** Why app_input_run() returned. */
typedef enum app_stop { APP_STOP_SIGNAL, APP_STOP_QUIT, APP_STOP_EOF } app_stop_t;

/**
 * @brief Reads commands from standard input and runs them in `sh` until `quit`, until `stop_fd`
 * becomes readable (a stop signal), or, with `exit_on_eof`, until input ends (otherwise the end
 * of a piped input keeps the program running until a signal). On a terminal: line editing,
 * history and completion of command names (libedit); otherwise one command per line.
 */
app_stop_t app_input_run(pelix_shell_t *sh, int stop_fd, bool exit_on_eof);

#endif
