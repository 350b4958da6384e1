/**
 * @file mqtt.h
 * @brief The MQTT service of Pelix: broker connections made from ConfigAdmin configurations,
 * publishing to one broker or all, and whiteboard listeners subscribed on every broker.
 *
 * Services (names and properties exactly as Pelix has them):
 * - `pelix.mqtt.factory` (service pointer: pelix_mqtt_factory_t), also registered as the
 *   managed service factory (`pelix.configadmin.managed.factory`) with `service.pid` =
 *   `mqtt.connector`: each configuration of that factory PID is one broker connection. Its
 *   properties: `host` (mandatory), `port` (1883), `keepalive` (60 s), `reconnect_min` (1 s),
 *   `reconnect_max` (60 s), `connect_timeout` (10 s), `client_id` (default: derived from the PID,
 *   so stable across restarts and unique per configuration), `username` and `password` (never
 *   logged nor shown; the configuration file is then 0600), `clean_session` (true), `protocol`
 *   ("3.1.1", "5" or "3.1"), `session_expiry` (MQTT 5 only, seconds the broker keeps the session
 *   after the connection ends: 0, or never when `clean_session` is false), `max_inflight` (20),
 *   and three messages, each `<m>_topic`, `<m>_payload`, `<m>_qos` (0), `<m>_retain` (false):
 *   `will` (published by the broker when the connection is lost), `birth` (published after every
 *   connect) and `close` (published before a graceful disconnect: configuration deleted, service
 *   stopped); TLS with `tls` (true when a CA or certificate is given), `tls_ca_file` /
 *   `tls_ca_path` (default: the system's authorities), `tls_cert_file` + `tls_key_file` (client
 *   certificate), `tls_key_password` (never logged), `tls_insecure` (false: the host name is
 *   verified), `tls_version` ("tlsv1.2", the minimum and default, or "tlsv1.3"), `tls_ciphers`,
 *   `tls_alpn`. Values given as strings
 * (shell, files) are coerced; a value that cannot be is logged with its reason and makes no
 * connection.
 * - `pelix.mqtt.connection` (pointer: pelix_mqtt_connection_t), one per connected broker, with
 *   the properties `id` (the configuration PID), `host` (string) and `port` (long). Registered
 *   when the broker accepted the connection (CONNACK), unregistered when the connection is lost
 *   or its configuration deleted; never two for one PID.
 * - `pelix.mqtt.listener` (pointer: pelix_mqtt_listener_t), registered by applications with
 *   `pelix.mqtt.topics` (one topic filter, or a list of them): the service subscribes each filter
 *   on every connected broker and every broker that connects later, follows changes of the
 *   property, and unsubscribes filters no listener uses any more. An invalid filter is reported
 *   once and ignored; the other filters and listeners keep working. A listener that starts using
 *   a filter already subscribed gets its retained messages too: the filter is subscribed again,
 *   and the broker sends them to every listener of that filter, flagged `retain` (a listener that
 *   had them already sees them again, flagged).
 *
 * Connections are retried forever after any failure (DNS, TCP, CONNACK refusal, keepalive,
 * server close), the first attempt included, with exponential backoff and jitter between
 * `reconnect_min` and `reconnect_max`; every filter is subscribed again on every connect. A
 * change of the host, port, keepalive, client id, credentials, session, protocol, in-flight
 * window, will or TLS settings moves the connection (reconnects, the close message first); other
 * changes (the reconnect bounds, the connect timeout, the birth and close messages) apply to it as
 * it is.
 *
 * Threads: one network thread runs every connection (libmosquitto's external loop over epoll);
 * names are resolved and TCP connects made on short-lived connector threads, each attempt
 * bounded by `connect_timeout` (a thread still blocked is abandoned, never waited for), so no
 * broker delays another and callers never wait on the network. Listener callbacks come from one
 * serial queue per listener (messages reach a listener in the order the broker sent them, calls
 * never overlap), bounded (see pelix_mqtt_options_t); a listener whose queue is full loses the
 * newest messages, counted. They run on dispatch worker threads, or directly on the thread that
 * read the message, which stops being the network thread for the call and hands the network to a
 * spare thread if the call lasts (pelix_mqtt_options_t.direct_us). Registry events of the
 * connection services are delivered on the network thread. No callback runs under a lock of the
 * service.
 */
#ifndef PELIX_MQTT_H
#define PELIX_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pelix/configadmin.h>
#include <pelix/errors.h>
#include <pelix/log.h>
#include <pelix/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Specification of the factory service (publish to all brokers, or to one by PID). */
#define PELIX_MQTT_FACTORY_SPEC "pelix.mqtt.factory"
/** The configuration factory PID, and the `service.pid` of the factory service. */
#define PELIX_MQTT_FACTORY_PID "mqtt.connector"
/** Specification of the connection services, one per connected broker. */
#define PELIX_MQTT_CONNECTION_SPEC "pelix.mqtt.connection"
/** Specification of the whiteboard listeners. */
#define PELIX_MQTT_LISTENER_SPEC "pelix.mqtt.listener"
/** Listener property: one MQTT topic filter (string) or a list of them. */
#define PELIX_MQTT_TOPICS "pelix.mqtt.topics"
/** Listener property: subscription QoS of its filters (0..2, default 0; the maximum over the
 * listeners of a filter is subscribed). */
#define PELIX_MQTT_QOS "pelix.mqtt.qos"
/** Listener property: an LDAP filter on the connection properties (`id`, `host`, `port`), e.g.
 * `(host=edge-1)`: the listener hears only the connections it matches (its filters are still
 * subscribed on every connection). A filter that does not parse makes the listener ignored,
 * with the reason logged. */
#define PELIX_MQTT_CONNECTION_FILTER "pelix.mqtt.connection.filter"

/** Connection service properties. */
#define PELIX_MQTT_PROP_ID "id"
#define PELIX_MQTT_PROP_HOST "host"
#define PELIX_MQTT_PROP_PORT "port"

/** Defaults of the configuration properties. */
#define PELIX_MQTT_DEFAULT_PORT 1883
#define PELIX_MQTT_DEFAULT_KEEPALIVE 60
#define PELIX_MQTT_DEFAULT_RECONNECT_MIN 1
#define PELIX_MQTT_DEFAULT_RECONNECT_MAX 60
#define PELIX_MQTT_DEFAULT_CONNECT_TIMEOUT 10

/** An MQTT 5 user property: a name and a value (UTF-8). */
typedef struct pelix_mqtt_user_property {
    const char *name;
    const char *value;
} pelix_mqtt_user_property_t;

/**
 * @brief MQTT 5 properties of a message, all optional: given to publish (borrowed for the call;
 * connections not using protocol 5 ignore them) and received with a message (borrowed for the
 * listener's call).
 */
typedef struct pelix_mqtt_properties {
    const pelix_mqtt_user_property_t *user; /**< `nuser` user properties, in order */
    size_t nuser;
    const char *content_type;     /**< NULL: none */
    const char *response_topic;   /**< a topic name; NULL: none */
    const void *correlation_data; /**< `correlation_len` bytes; NULL: none */
    size_t correlation_len;
    uint32_t message_expiry; /**< seconds; 0: none */
} pelix_mqtt_properties_t;

/**
 * @brief One received message, given to a listener. Every field is borrowed for the call.
 * `topic` is the concrete topic; `payload` holds `len` bytes (any bytes, NUL included, followed
 * by one extra NUL not counted in `len` so that text payloads can be read as strings);
 * `connection` is the PID of the configuration whose broker delivered it.
 */
typedef struct pelix_mqtt_message {
    const char *topic;
    const void *payload;
    size_t len;
    int qos;
    bool retain;
    bool dup;
    const char *connection;
    /** its MQTT 5 properties, or NULL (protocol 3.1.1, or none sent) */
    const pelix_mqtt_properties_t *properties;
} pelix_mqtt_message_t;

/**
 * @brief A whiteboard listener service. `handle_mqtt_message` is called on a dispatch worker or
 * directly by the thread that read the message (pelix_mqtt_options_t.direct_us), once per message
 * per delivering connection (a message matched by several filters of the listener is delivered
 * once), in the order of the broker, never two calls at a time.
 *
 * Once the unregistration of the listener service returns, no call starts, and a call running on
 * a worker has ended; except when the listener is unregistered from its own callback (that call
 * goes on) or on the network thread (from a registry callback of a connection service: the
 * network thread never waits for listener code, so a running call may still end afterwards).
 */
typedef struct pelix_mqtt_listener {
    void (*handle_mqtt_message)(void *handle, const pelix_mqtt_message_t *msg);
    void *handle;
} pelix_mqtt_listener_t;

/**
 * @brief What pelix_mqtt_connection_t.publish() did: `rc` (0, or the error), `mid` the MQTT
 * message id, and a token to wait for the acknowledgement. Owned by the caller.
 */
typedef struct pelix_mqtt_publish_info {
    int rc;
    int mid;
    uint64_t token;
} pelix_mqtt_publish_info_t;

/**
 * @brief A connection service (one broker). Functions are thread-safe and never block on the
 * network.
 *
 * `publish` queues the message for the broker: `qos` 0, 1 or 2; `topic` a valid topic name
 * (no wildcard); returns 0 (and fills `info`, optional), PELIX_E_TOPIC, -EINVAL (bad QoS, NULL
 * payload with len > 0), -EMSGSIZE (payload over 256 MiB or the broker's maximum), -ENOTCONN
 * (the connection was lost: the service is going away), -ENOMEM.
 *
 * `wait_published` waits until the broker acknowledged the message (PUBACK for QoS 1, PUBCOMP for
 * QoS 2; written to the socket for QoS 0), however early that happened (no lost wake-up): 0,
 * -ETIMEDOUT, -ENOTCONN (the connection was lost before it was acknowledged; also for a message
 * of a connection lost so long ago, after more than 4096 other lost messages, that the service no
 * longer knows: it never claims an acknowledgement it cannot know), -EINVAL (not an info of this
 * connection).
 * Must not be called from the network thread (a registry callback of a connection service).
 */
typedef struct pelix_mqtt_connection {
    int (*publish)(void *handle, const char *topic, const void *payload, size_t len, int qos,
                   bool retain, pelix_mqtt_publish_info_t *ret_info);
    int (*wait_published)(void *handle, const pelix_mqtt_publish_info_t *info, long timeout_ms);
    void *handle;
    /** `publish` with MQTT 5 properties (NULL: none); also PELIX_E_TOPIC for a bad
     * response_topic, -EINVAL for a property libmosquitto refuses (e.g. not UTF-8). */
    int (*publish_props)(void *handle, const char *topic, const void *payload, size_t len, int qos,
                         bool retain, const pelix_mqtt_properties_t *props,
                         pelix_mqtt_publish_info_t *ret_info);
} pelix_mqtt_connection_t;

/** @brief The result of a factory publish on one connection. */
typedef struct pelix_mqtt_result {
    char *pid;      /**< the configuration PID of the connection */
    int rc;         /**< 0 or the error of pelix_mqtt_connection_t.publish(); -ENOBUFS: its offline
                     * queue is full (drop_policy "newest"); -ENOTCONN: not connected and not
                     * queued (QoS 0 without queue_qos0, or max_queued_messages 0) */
    int mid;        /**< message id when rc is 0 and it was sent */
    bool queued;    /**< rc 0: waiting in the offline queue, sent in order when it connects */
    uint64_t token; /**< sent: for pelix_mqtt_factory_t.wait_published(); 0 otherwise */
} pelix_mqtt_result_t;

/**
 * @brief The factory service. `publish` publishes on every configured connection, or only on the
 * connection of configuration `pid` (non-NULL). A connection that is not connected keeps the
 * message in its bounded offline queue (`max_queued_messages` 1000, `max_queued_bytes` 16 MiB;
 * QoS 0 only with `queue_qos0`; when full, `drop_policy` "newest" refuses the message, "oldest"
 * drops the oldest) and sends what it queued, in order, when it connects. Thread-safe, never
 * blocks on the network.
 * @param[out] ret_results optional: one result per connection tried, an array owned by the
 * caller (free with pelix_mqtt_results_free()); NULL and 0 when none was tried.
 * @return 0 (sent or queued on at least one connection), -ENOENT (`pid` is not a configuration:
 * Pelix's KeyError), -ENOTCONN (no configuration, or none connected and none queued it),
 * PELIX_E_TOPIC, -EINVAL, -EMSGSIZE, -ENOBUFS, -ENOMEM; when every connection failed, the error
 * of the first.
 */
typedef struct pelix_mqtt_factory {
    int (*publish)(void *handle, const char *topic, const void *payload, size_t len, int qos,
                   bool retain, const char *pid, pelix_mqtt_result_t **ret_results,
                   size_t *ret_count);
    void *handle;
    /** `publish` with MQTT 5 properties (NULL: none; queued with the message). */
    int (*publish_props)(void *handle, const char *topic, const void *payload, size_t len, int qos,
                         bool retain, const pelix_mqtt_properties_t *props, const char *pid,
                         pelix_mqtt_result_t **ret_results, size_t *ret_count);
    /** Waits until the broker acknowledged the message of one result (as the connection
     * service's `wait_published`): 0, -ETIMEDOUT, -ENOTCONN (lost before), -ENOENT (its
     * configuration is gone), -EINVAL (no token: not sent, or queued). */
    int (*wait_published)(void *handle, const pelix_mqtt_result_t *result, long timeout_ms);
} pelix_mqtt_factory_t;

/** @brief Frees the results of a factory publish (NULL accepted). */
PELIX_API void pelix_mqtt_results_free(pelix_mqtt_result_t *results, size_t count);

/** Options of pelix_mqtt_new(); start from PELIX_MQTT_OPTIONS_INIT. */
typedef struct pelix_mqtt_options {
    /** Where connection failures, refused configurations and bad filters are reported. */
    pelix_logger_t logger;
    /** Dispatch worker threads running listener callbacks (0: 2). */
    size_t dispatch_workers;
    /** Bound of each listener's queue, in messages (0: 1000, as the offline queue and
     * mosquitto's max_queued_messages) and payload bytes (0: 64 MiB). A message that finds the
     * queue full is dropped and counted (pelix_mqtt_stats); the listener keeps its order. */
    size_t listener_queue_messages;
    size_t listener_queue_bytes;
    /** Coalescing of busy brokers, in microseconds (0: 1000; negative: never). When a broker
     * sends QoS 0 messages faster than one per quarter of this delay, 8 in a row, the network
     * thread stops reading it for this delay after each burst, then reads all that came at once
     * and wakes the listeners' workers once for them: a few microseconds of CPU per message
     * instead of a wake-up of each thread for each one, and more messages per second from the
     * broker. A message waits up to this delay more; the mode ends as soon as a pause brings
     * fewer than 2 messages, and a QoS 1 or 2 message (whose acknowledgement must not wait)
     * ends it at once. At a light load, nothing waits. */
    long coalesce_us;
    /** Direct delivery, in microseconds (0: 200; negative: never). The network thread calls
     * the listeners of a message it just read itself, up to 16 calls, before it waits again,
     * instead of waking a worker: on a loaded machine the wake-up cost as much CPU as the rest
     * of the message and 25-30 us of latency. A listener whose calls there took longer than this
     * is called on the workers from then on; one that blocks hands the network to a spare thread
     * within 10 to 20 ms (the blocked thread stops being the network thread), so a slow or stuck
     * listener holds the network once, never again. Negative: listener code runs on the workers
     * only, never on a thread that runs the network. */
    long direct_us;
} pelix_mqtt_options_t;

#define PELIX_MQTT_OPTIONS_INIT                                                                    \
    {                                                                                              \
        {NULL, NULL, PELIX_LOG_INFO}, 0, 0, 0, 0, 0                                                \
    }

typedef struct pelix_mqtt pelix_mqtt_t;

/**
 * @brief Starts the MQTT service on `reg`: its threads, the listener tracking and the factory
 * services. ConfigAdmin (registered on the same registry, before or after) then hands it the
 * `mqtt.connector` configurations. With `ca` (optional), the configuration schema is declared to
 * it, so that values given as strings are stored typed.
 * @param[out] ret_mqtt the service, owned by the caller (pelix_mqtt_free()).
 * @return 0, -EINVAL, -ENOMEM, -errno of a thread or epoll.
 */
PELIX_API int pelix_mqtt_new(pelix_registry_t *reg, pelix_configadmin_t *ca,
                             const pelix_mqtt_options_t *opts, pelix_mqtt_t **ret_mqtt);

/**
 * @brief Stops the service: unregisters its services, disconnects every broker (cleanly when
 * connected), delivers or drops what listener queues hold (bounded wait), stops its threads.
 * NULL accepted; returns NULL. Not from a callback of the service, and not while the calling
 * thread holds a use of one of its services (their unregistration waits for it). It waits at
 * most a second for connector threads still resolving a name or connecting; those left end on
 * their own later (they free what they hold and touch nothing of the freed service).
 */
PELIX_API pelix_mqtt_t *pelix_mqtt_free(pelix_mqtt_t *mqtt);

/**
 * @brief Waits until the listener changes registered before the call are applied: their
 * SUBSCRIBE and UNSUBSCRIBE packets are queued on every connected broker, ahead of any message
 * published after this returns on the same connection (so a listener registered, then a publish
 * to its topic, hears it). Thread-safe; not from the service's own threads (a listener callback).
 * @return 0, -EINVAL, -ESHUTDOWN.
 */
PELIX_API int pelix_mqtt_sync(pelix_mqtt_t *mqtt);

/* ---- visible state --------------------------------------------------------------------------- */

/** One configured connection, as pelix_mqtt_connections() reports it. */
typedef struct pelix_mqtt_connection_info {
    char *pid;       /**< its configuration PID */
    char *host;      /**< broker host */
    long port;       /**< broker port */
    char *client_id; /**< the MQTT client id it connects with */
    /** "connected", "connecting", "backing off" (waiting to retry), "refused" (waiting to
     * retry after a CONNACK refusal) or "disabled" (`enabled` false); static storage */
    const char *state;
    int64_t since;         /**< wall clock (ms since 1970) of its last connect or failure */
    long retry_in;         /**< backing off: ms until the next attempt; otherwise -1 */
    uint64_t connects;     /**< successful connects since the configuration was applied */
    uint64_t messages_in;  /**< messages received since the service started */
    uint64_t messages_out; /**< messages published (accepted by libmosquitto) */
    size_t queued;         /**< messages waiting in its offline queue */
    uint64_t dropped;      /**< messages its offline queue refused or dropped */
    uint64_t coalesced;    /**< messages read in bursts after a coalescing pause (coalesce_us) */
    char *last_error;      /**< its last failure while not connected, or "" */
} pelix_mqtt_connection_info_t;

/**
 * @brief Lists every configured connection (connected or not), sorted by PID.
 * Thread-safe; waits for the service's network thread (from a listener callback called directly,
 * for as long as a spare thread takes to become the network thread, 10 to 20 ms, once).
 * @param[out] ret_list owned by the caller (pelix_mqtt_connections_free()); NULL when none.
 * @return 0, -EINVAL, -ENOMEM, -ESHUTDOWN.
 */
PELIX_API int pelix_mqtt_connections(pelix_mqtt_t *mqtt, pelix_mqtt_connection_info_t **ret_list,
                                     size_t *ret_count);

/** @brief Frees a list from pelix_mqtt_connections() (NULL accepted). */
PELIX_API void pelix_mqtt_connections_free(pelix_mqtt_connection_info_t *list, size_t count);

/** Counters of the service (pelix_mqtt_stats()). */
typedef struct pelix_mqtt_stats {
    size_t connections;        /**< configured */
    size_t connected;          /**< of which connected */
    size_t listeners;          /**< registered `pelix.mqtt.listener` services */
    size_t filters;            /**< distinct topic filters subscribed (on each connection) */
    uint64_t messages_in;      /**< received, over the current connections */
    uint64_t messages_out;     /**< published, over the current connections */
    uint64_t listener_calls;   /**< messages handed to listeners (current listeners) */
    uint64_t listener_dropped; /**< messages a full listener queue refused (current listeners) */
    uint64_t listener_queued;  /**< messages waiting in listener queues */
} pelix_mqtt_stats_t;

/**
 * @brief Reads the counters. Thread-safe; waits for the network thread like
 * pelix_mqtt_connections().
 * @return 0, -EINVAL, -ESHUTDOWN.
 */
PELIX_API int pelix_mqtt_stats(pelix_mqtt_t *mqtt, pelix_mqtt_stats_t *ret_stats);

#ifdef __cplusplus
}
#endif

#endif
