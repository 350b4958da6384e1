/*
 * Fixture of the MQTT service suites: a registry, a ConfigAdmin (on a temporary folder, or in
 * memory) and the MQTT service, with a capturing logger; configurations of `mqtt.connector`;
 * recording listeners registered as `pelix.mqtt.listener` services.
 *
 * Threads: recorders and the logger are called on the service's threads and only record under
 * their own mutex. Functions documented "asserts" use cmocka and must be called from the test's
 * main thread.
 *
 * Timing: MF_WAIT_MS bounds every "eventually" generously; MF_QUIET_MS is how long a test waits
 * to check that something does NOT happen. Neither decides a pass on speed.
 */
#ifndef MQTT_FIXTURE_H
#define MQTT_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <pelix/configadmin.h>
#include <pelix/mqtt.h>
#include <pelix/registry.h>

#define MF_WAIT_MS 10000
#define MF_QUIET_MS 1500

typedef struct mf_log {
    bool ready;
    pthread_mutex_t lock;
    char **lines;
    size_t count, cap;
    /* Keep only the last `keep` lines (0: all; a long run sets it, or its log grows). */
    size_t keep;
} mf_log_t;

typedef struct mf {
    char *folder; /* NULL: configurations in memory */
    pelix_registry_t *reg;
    pelix_configadmin_t *ca;
    pelix_mqtt_t *mqtt;
    mf_log_t log;
    size_t queue_messages; /* bound of each listener queue (0: the service's default) */
    long coalesce_us;      /* pelix_mqtt_options_t.coalesce_us (0: the service's default) */
    long direct_us;        /* pelix_mqtt_options_t.direct_us (0: the service's default) */
} mf_t;

/* Starts a registry, ConfigAdmin (on a fresh temporary folder when `use_folder`; an existing
 * `fx->folder` is kept) and the MQTT service; asserts. */
void mf_start(mf_t *fx, bool use_folder);
/* Stops the MQTT service, ConfigAdmin and the registry; keeps the folder (see mf_free). */
void mf_stop(mf_t *fx);
/* mf_stop, then removes the folder and frees the log. */
void mf_free(mf_t *fx);
/* Number of log lines containing `needle`. */
size_t mf_log_count(mf_t *fx, const char *needle);
void mf_log_dump(mf_t *fx);

/* Creates a `mqtt.connector` configuration with host 127.0.0.1 and `port` (0: none given), plus
 * `extra` NULL-terminated key/value string pairs; returns its PID (free()). Asserts. */
char *mf_create(mf_t *fx, int port, ...);
/* Updates a configuration with NULL-terminated key/value string pairs (replacing its
 * properties, host kept unless given); asserts. */
void mf_update(mf_t *fx, const char *pid, int port, ...);
void mf_delete(mf_t *fx, const char *pid);

/* Waits for the connection service of `pid`: its service id, or 0 after `timeout_ms`. */
long mf_wait_connection(mf_t *fx, const char *pid, long timeout_ms);
/* Waits until no connection service of `pid` exists; true if so within `timeout_ms`. */
bool mf_wait_no_connection(mf_t *fx, const char *pid, long timeout_ms);
/* Number of connection services of `pid` now (NULL: all). */
size_t mf_count_connections(mf_t *fx, const char *pid);

/* A recording listener. */
typedef struct mf_msg {
    char *topic;
    char *payload;
    size_t len;
    int qos;
    bool retain;
    char *connection;
    unsigned long seq; /* order of arrival */
} mf_msg_t;

typedef struct mf_listener {
    pelix_mqtt_listener_t svc;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    mf_msg_t *msgs;
    size_t count, cap;
    int inside;     /* calls running now */
    int overlapped; /* calls that found another one running */
    long id;        /* service id, 0 when not registered */
    mf_t *fx;
    bool hold; /* while true, a call waits (at most MF_WAIT_MS * 3) before recording */
    const char *connections; /* set before mf_listen: its pelix.mqtt.connection.filter */
} mf_listener_t;

/* Holds or releases the calls of a listener (a slow listener). */
void mf_listener_hold(mf_listener_t *l, bool hold);

/* Registers a listener with `topics` (a single filter when count == 1 and !as_list, else a list)
 * and the optional subscription QoS (-1: none); asserts. */
void mf_listen(mf_t *fx, mf_listener_t *l, const char *const *topics, size_t count, bool as_list,
               int qos);
/* Changes the topics property of a registered listener; asserts. */
void mf_listen_set(mf_listener_t *l, const char *const *topics, size_t count, bool as_list);
void mf_unlisten(mf_listener_t *l);
void mf_listener_destroy(mf_listener_t *l);
/* Waits for at least `n` messages on topic (exact; NULL: any); true if reached. */
bool mf_listener_wait(mf_listener_t *l, const char *topic, size_t n, long timeout_ms);
size_t mf_listener_count(mf_listener_t *l, const char *topic);

/* The connection service of `pid` (borrowed, valid while the connection is up), or NULL. */
pelix_mqtt_connection_t *mf_connection(mf_t *fx, const char *pid);
/* The factory service (borrowed). */
pelix_mqtt_factory_t *mf_factory(mf_t *fx);

#endif
