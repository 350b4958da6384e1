/*
 * Internal structures of the MQTT service.
 *
 * Ownership and threads: the network thread (loop.c) owns every connection's state machine,
 * the listener table, the topic trie and the subscription counts; other threads change them only
 * by posting commands (mqtt__post) that the network thread runs. Two things are shared:
 * - `conns_lock` guards the list of connected connections used by factory publishes;
 * - each connection's `lock` guards its libmosquitto object for publishers (mosquitto_publish is
 *   thread-safe; the lock only keeps the object alive and the state stable during the call), and
 *   its acknowledgement table (`acks`).
 * No lock is held while a registry, ConfigAdmin or listener callback runs.
 */
#ifndef PELIX_MQTT_INTERNAL_H
#define PELIX_MQTT_INTERNAL_H

#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>

#include <pelix/mqtt.h>

#include "mqtt/dispatch/dispatch.h"
#include "mqtt/topic/topic.h"
#include "util/util.h"

#define MODULE "mqtt"

/* ---- configuration --------------------------------------------------------------------------- */

/* A message of the configuration: the will, the birth (after each connect) and the close (before
 * a graceful disconnect). No topic: none. */
typedef struct conn_message {
    char *topic;
    char *payload;
    int qos;
    bool retain;
} conn_message_t;

/* TLS settings; `on` false: plain TCP. Paths checked readable when parsed. */
typedef struct conn_tls {
    bool on;
    bool insecure; /* no host name verification */
    char *ca_file, *ca_path, *cert_file, *key_file;
    char *key_password; /* never logged */
    char *version;      /* "tlsv1.2" (the minimum, default) or "tlsv1.3" */
    char *ciphers, *alpn;
} conn_tls_t;

typedef struct conn_config {
    char *host;
    long port;
    long keepalive;
    long reconnect_min; /* seconds */
    long reconnect_max;
    long connect_timeout;
    char *client_id;
    char *username; /* NULL: none */
    char *password; /* NULL: none; never logged */
    bool clean_session;
    bool enabled; /* false: configured but never connected (state "disabled") */
    int protocol; /* MQTT_PROTOCOL_V31, V311 or V5 */
    long max_inflight;
    conn_message_t will, birth, close;
    conn_tls_t tls;
    /* offline queue (offline.c) */
    long max_queued_messages; /* 0: no queue */
    long max_queued_bytes;
    uint32_t session_expiry; /* MQTT 5 (seconds; UINT32_MAX: never); else 0 */
    bool queue_qos0;
    bool drop_oldest; /* drop_policy "oldest"; else the newest is refused */
} conn_config_t;

/* Parses and checks a configuration (strings coerced); 0, or an error with its reason. */
int mqtt__config_parse(const char *pid, const pelix_props_t *props, conn_config_t *ret,
                       pelix_error_t *err);
void mqtt__config_clear(conn_config_t *c);
/* True if a change from `a` to `b` needs a new connection (not for the reconnect bounds, the
 * connect timeout, the birth and close messages). */
bool mqtt__config_moves(const conn_config_t *a, const conn_config_t *b);
/* Takes the settings of `from` that apply without reconnecting (exchanged: `from` gets the old). */
void mqtt__config_take_live(conn_config_t *to, conn_config_t *from);
extern const pelix_prop_schema_t mqtt__config_schema[];
extern const size_t mqtt__config_schema_count;

/* ---- connections ----------------------------------------------------------------------------- */

typedef struct mqtt_service mqtt_service_t;
typedef struct command command_t;
typedef void (*mqtt_cmd_fn)(mqtt_service_t *s, void *arg);

/* A command for the network thread (loop.c). */
struct command {
    command_t *next;
    mqtt_cmd_fn fn;
    void *arg;
    bool wait;
    bool done;
    bool embedded; /* storage owned by the poster (never freed by the loop) */
};

typedef enum conn_state {
    CONN_BACKOFF,     /* waiting for `due` to try again */
    CONN_CONNECTING,  /* a connector thread runs mosquitto_connect_async */
    CONN_WAITING_ACK, /* TCP connected, CONNECT sent, waiting for CONNACK until `due` */
    CONN_CONNECTED,
    CONN_DISABLED, /* `enabled` false: configured, never connected */
} conn_state_t;

typedef struct queued queued_t;
typedef struct conn conn_t;
typedef struct mqtt_connectors mqtt_connectors_t;

/* One attempt to connect (connector.c): owned by its connector thread, then by the network
 * thread once posted. */
typedef struct attempt {
    conn_t *conn; /* referenced */
    mqtt_connectors_t *hub;
    struct mosquitto *mosq;
    mosquitto_property *props; /* CONNECT properties (MQTT 5), or NULL */
    char *host;
    int port;
    int keepalive;
    int rc; /* of the connect call */
    int err_no;
} attempt_t;

struct conn {
    atomic_int refs;
    mqtt_service_t *svc;
    char *pid; /* in the same block */
    conn_config_t cfg;
    /* network thread only */
    conn_state_t state;
    int64_t due;        /* backoff end, or CONNACK deadline */
    int64_t next_misc;  /* next mosquitto_loop_misc */
    unsigned failures;  /* consecutive, for the backoff */
    attempt_t *attempt; /* the current connector attempt (CONNECTING) */
    /* A persistent session's libmosquitto object, kept from its last connection for the next
     * attempt: it holds the session's QoS 2 messages received and waiting for their PUBREL (a
     * new object would answer that PUBREL without delivering) and its publishes in flight. */
    struct mosquitto *kept;
    bool just_connected, lost;
    /* Texts allocated when there is something to say (most connections never fail): an idle
     * connection costs what its state needs, not buffers for the worst message (bench G8a). */
    char *last_error;  /* the current failure (conn_error), or NULL */
    char *failure;     /* the last failure, kept until connected (pelix_mqtt_connections) */
    char *tls_error;   /* under ack_lock: OpenSSL's last error of this attempt, from libmosquitto */
    int64_t since;     /* wall clock (ms) of the last connect or failure */
    uint64_t connects; /* successful connects */
    bool error_logged;
    int sock; /* libmosquitto's socket, watched, or -1 */
    int efd;  /* our duplicate of it, registered in epoll (see loop.c), or -1 */
    bool want_write;
    bool reading; /* EPOLLIN watched (false while napping) */
    /* coalescing (network thread; pelix_mqtt_options_t.coalesce_us) */
    bool coalescing; /* a busy broker: its reads pause after each burst */
    bool napping;    /* paused until `nap_until` (us) */
    bool acked;      /* the current read had a QoS 1 or 2 message */
    uint8_t hot;     /* QoS 0 messages in a row that came close together */
    unsigned burst;  /* messages of the current read */
    int64_t last_rx_us, nap_until;
    uint64_t coalesced;                     /* messages read after a pause */
    atomic_uint_fast64_t msgs_in, msgs_out; /* counters (pelix_mqtt_connections) */
    long service_id;                        /* registered connection service, or 0 */
    pelix_props_t *props; /* network thread: id, host, port (mqtt__conn_props), or NULL */
    pelix_mqtt_connection_t service;
    /* guarded by `lock` (publishers and the network thread; never held inside a libmosquitto
     * callback) */
    pthread_mutex_t lock;
    struct mosquitto *mosq;    /* set while WAITING_ACK or CONNECTED */
    bool active;               /* CONNECTED: publishers may use mosq */
    bool closed;               /* its configuration is gone: nothing is queued any more */
    queued_t *q_head, *q_tail; /* offline queue (offline.c) */
    size_t q_count, q_bytes;
    uint64_t q_dropped;
    size_t q_max_msgs, q_max_bytes;
    bool q_qos0, q_drop_oldest;
    /* guarded by `ack_lock` (never held across a libmosquitto call) */
    pthread_mutex_t ack_lock;
    pthread_cond_t ack_cond;
    uint64_t next_token;      /* (serial << 48) | sequence: a token names its connection */
    pelix_map_t acks_by_mid;  /* mid -> token (outstanding) */
    pelix_map_t acks_pending; /* token -> mid (outstanding) */
    pelix_map_t acks_early;   /* mid -> 1: acknowledged before its token was recorded */
    /* tokens outstanding when a connection was lost, oldest first (a ring of LOST_MAX); tokens
     * pushed out of it raise `lost_floor`: at or below it, a token not pending counts as lost */
    uint64_t *lost_tokens;
    size_t lost_head, nlost;
    uint64_t lost_floor;
};

conn_t *mqtt__conn_new(mqtt_service_t *s, const char *pid, conn_config_t *cfg);
void mqtt__conn_unref(conn_t *c);
/* Network thread: the connection's service properties (id, host, port) for listeners'
 * connection filters, made at the first call (NULL without memory); owned by `c`. */
const pelix_props_t *mqtt__conn_props(conn_t *c);
/* Network thread: starts, reconfigures, deletes; runs timers and socket events. */
void mqtt__conn_start(conn_t *c);
void mqtt__conn_close(conn_t *c); /* disconnects and drops the table's reference */
void mqtt__conn_timer(conn_t *c, int64_t now);
/* Coalescing: ends the pause of a napping connection when its time came (reads what arrived);
 * returns the next pause end (us) or INT64_MAX. */
int64_t mqtt__conn_nap(conn_t *c, int64_t now_us);
void mqtt__conn_io(conn_t *c, uint32_t events);
void mqtt__conn_attempt_done(mqtt_service_t *s, void *attempt);
/* Sets the libmosquitto callbacks of a connection's object (connector.c calls it). */
void mqtt__conn_callbacks(struct mosquitto *mosq);
/* Why the last TLS attempt failed, as libmosquitto logged it (any thread); false: unknown. */
bool mqtt__conn_tls_failure(conn_t *c, char *out, size_t size);

/* connector.c: the connector threads of a service. The hub outlives the service while threads
 * still run (see connector.c). */
mqtt_connectors_t *mqtt__connectors_new(mqtt_service_t *s);
/* After the network thread stopped: waits up to `wait_ms` for the threads, then leaves the rest
 * to end on their own (they free their attempts; the last frees the hub). */
void mqtt__connectors_close(mqtt_connectors_t *h, long wait_ms);
/* Network thread: a new object for `c` and a thread that connects it (its result is posted to
 * mqtt__conn_attempt_done): 0. 1 when the attempt could not block and was made on this thread:
 * the caller hands it to mqtt__conn_attempt_done itself. -ENOMEM / -EINVAL / -EAGAIN with
 * *ret_why when libmosquitto refused a setting. */
int mqtt__attempt_start(conn_t *c, mqtt_connectors_t *h, attempt_t **ret, const char **ret_why);
void mqtt__attempt_free(attempt_t *a);
/* Subscribes / unsubscribes one filter on a connected connection. */
void mqtt__conn_subscribe(conn_t *c, const char *filter, int qos);
void mqtt__conn_unsubscribe(conn_t *c, const char *filter);
/* Publishes on a connected connection; with `ret_queued` (factory publishes), queues the message
 * while it is not connected (*ret_queued true). 0, -ENOTCONN, -ENOBUFS (queue full), ... */
int mqtt__conn_publish(conn_t *c, const char *topic, const void *payload, size_t len, int qos,
                       bool retain, const mosquitto_property *props,
                       pelix_mqtt_publish_info_t *ret_info, bool *ret_queued);

/* The connection service's wait_published, for factory results. */
int mqtt__conn_wait(conn_t *c, const pelix_mqtt_publish_info_t *info, long timeout_ms);

/* offline.c, under the connection's `lock`: queue (0, -ENOTCONN when not queued, -ENOBUFS,
 * -ENOMEM); publish them in order (network thread, connected); drop them all (their number);
 * take the bounds of a configuration. */
int mqtt__offline_push(conn_t *c, const char *topic, const void *payload, size_t len, int qos,
                       bool retain, const mosquitto_property *props);
void mqtt__offline_flush(conn_t *c);
size_t mqtt__offline_clear(conn_t *c);
void mqtt__offline_limits(conn_t *c, const conn_config_t *cfg);

/* ---- listeners and subscriptions ------------------------------------------------------------- */

/* Queue items: a received message, or the item that closes a listener's queue. */
enum { ITEM_MESSAGE = 1, ITEM_CLOSE = 2 };

typedef struct listener listener_t;

typedef struct close_item {
    int kind;            /* ITEM_CLOSE */
    mqtt_queue_t *queue; /* the queue it closes (the listener forgets it when pushing this) */
} close_item_t;

/*
 * A whiteboard listener. Sized for 100 000 of them (bench_listeners: at most 256 bytes per
 * registration plus its filter text, everything counted): its filters are one block of text, its
 * subscription counts live in the tries, and the storage it needs to be removed is reused.
 */
struct listener {
    atomic_int refs;
    /* A delivery counts itself in `calls` and then looks at `closed`; unregistration sets
     * `closed` and then waits (calls_lock, calls_cond) until `calls` is 0: one of the two always
     * sees the other, with no lock taken by a delivery (bench G5). */
    atomic_bool closed;
    atomic_int calls;
    /* network thread only */
    bool attached; /* its filters are in the tries, keyed by the listener's address */
    long id;       /* service id */
    mqtt_service_t *s;
    pelix_mqtt_listener_t *svc;
    mqtt_queue_t *queue; /* created with its first message (network thread) */
    struct lspec *spec;  /* network thread: what it listens to (NULL once detached) */
    union {
        command_t remove_cmd;    /* posting its removal needs no memory; read by the loop before
                                  * it runs the command, which is what fills close_item */
        close_item_t close_item; /* the item closing its queue */
    } u;
};

/* What a listener listens to: one allocation. */
typedef struct lspec {
    pelix_filter_t *connections; /* pelix.mqtt.connection.filter, or NULL: every connection */
    char filters[];              /* its valid filters, distinct, each NUL-terminated, then "" */
} lspec_t;

/* The listeners by service id, for the registry callbacks (listener_index.c; lmap_lock). */
typedef struct listener_index {
    listener_t **slots;
    size_t cap, count;
} listener_index_t;

listener_t *mqtt__lindex_get(const listener_index_t *ix, long id);
int mqtt__lindex_put(listener_index_t *ix, listener_t *l); /* 0 or -ENOMEM */
listener_t *mqtt__lindex_remove(listener_index_t *ix, long id);
listener_t *mqtt__lindex_next(const listener_index_t *ix, size_t *pos); /* *pos from 0 */
void mqtt__lindex_clear(listener_index_t *ix);

/* A shared subscription's use count ($share/<group>/<filter> as subscribed); a plain filter's
 * count is its number of keys in the trie, and its subscribed QoS the trie's tag. */
typedef struct filter_use {
    long count; /* listeners using it */
    int qos;    /* subscribed QoS (max of the listeners') */
    char filter[];
} filter_use_t;

/* A received message shared by the listener queues it was pushed to. */
typedef struct message {
    int kind; /* ITEM_MESSAGE */
    atomic_int refs;
    pelix_mqtt_message_t m; /* m.properties: its own allocation (props5.c), or NULL */
    char data[];            /* topic, NUL, payload, NUL, connection PID, NUL */
} message_t;

/* props5.c: MQTT 5 properties. A libmosquitto list from ours (NULL props: none): 0,
 * PELIX_E_TOPIC (response topic), -EINVAL, -ENOMEM; ours from a received list, one allocation
 * (pelix__free), NULL when none or without memory. */
int mqtt__props_build(const pelix_mqtt_properties_t *p, mosquitto_property **ret);
pelix_mqtt_properties_t *mqtt__props_read(const mosquitto_property *props);

/* ---- the service ----------------------------------------------------------------------------- */

struct mqtt_service {
    pelix_registry_t *reg;
    pelix_logger_t logger;
    pelix_mqtt_options_t opts;
    /* services */
    pelix_mqtt_factory_t factory;
    pelix_managed_service_factory_t managed;
    long factory_id;
    long managed_id;
    long listener_listener;
    /* network thread: runners (loop.c), one leading the loop at a time; a spare takes the lead
     * when the leader stays in listener code (mqtt__dispatch_run_here) longer than RELAY_STALL_MS
     */
    pthread_t *runners;
    size_t nrunners, caprunners;
    pthread_mutex_t relay_lock;
    pthread_cond_t relay_cond;
    bool relay_led;     /* a runner leads */
    bool relay_busy;    /* the leader runs listener code */
    bool relay_asleep;  /* the spare waits without a timeout: signal it when busy */
    bool relay_stop;    /* the loop ended: runners exit */
    bool relay_spare;   /* a runner waits as the spare */
    uint64_t relay_seq; /* busy periods started */
    uint64_t relay_gen; /* leads taken */
    int epfd;
    int evfd;
    atomic_bool wake_pending; /* evfd written and not yet read (mqtt__loop_wake) */
    bool stopping;
    pelix_map_t conns;   /* pid -> conn_t (network thread) */
    pelix_map_t shares;  /* $share/<g>/<f> -> filter_use_t (network thread) */
    mqtt_trie_t *trie;   /* plain filters -> listeners; a filter's keys count its subscription */
    mqtt_trie_t *shared; /* shared subscriptions (as their filter) -> listeners */
    mqtt_trie_scratch_t scratch, shared_scratch;
    mqtt_dispatch_t *dispatch;
    mqtt_batch_t batch; /* messages read and not yet committed to the workers (network thread) */
    /* listeners by service id, for the registry callbacks (any thread) */
    pthread_mutex_t lmap_lock;
    listener_index_t lmap;
    /* listener calls ending (listener_t.calls/closed), for unregistration waits */
    pthread_mutex_t calls_lock;
    pthread_cond_t calls_cond;
    /* queues whose close item is on its way (guarded by lmap_lock; free waits for 0) */
    long closing;
    pthread_cond_t closing_cond;
    /* commands */
    command_t stop_cmd;
    pthread_mutex_t cmd_lock;
    pthread_cond_t cmd_cond;
    command_t *cmd_head, *cmd_tail;
    mqtt_connectors_t *connectors; /* connector threads (connector.c) */
    /* connected connections, for factory publishes */
    pthread_mutex_t conns_lock;
    conn_t **connected;
    size_t nconnected, capconnected;
    conn_t **configured; /* every connection, for factory publishes (under conns_lock) */
    size_t nconfigured, capconfigured;
    conn_t **kept; /* see mqtt__keep (network thread) */
    size_t nkept, capkept;
};

struct pelix_mqtt {
    mqtt_service_t s;
};

/* loop.c: runs `fn(s, arg)` on the network thread: directly when called on it, else posted;
 * with `wait`, returns once it ran. 0 or -ENOMEM / -ESHUTDOWN. */
int mqtt__post(mqtt_service_t *s, mqtt_cmd_fn fn, void *arg, bool wait);
/* The same without allocating, in the caller's command storage (valid until it ran);
 * 0 or -ESHUTDOWN. */
int mqtt__post_embedded(mqtt_service_t *s, command_t *c, mqtt_cmd_fn fn, void *arg);
bool mqtt__on_loop(const mqtt_service_t *s);
/* Wakes the network thread (any thread): it runs the commands and writes what was published. */
void mqtt__loop_wake(mqtt_service_t *s);
int mqtt__loop_start(mqtt_service_t *s);
void mqtt__loop_stop(mqtt_service_t *s);
/* epoll registration of a connection's socket (network thread). */
void mqtt__loop_watch(mqtt_service_t *s, conn_t *c, int sock, bool want_write);
void mqtt__loop_unwatch(mqtt_service_t *s, conn_t *c);

/* listeners.c (network thread) */
void mqtt__listeners_on_connect(mqtt_service_t *s, conn_t *c);
/* Queues a received message for its listeners, in s->batch: the workers see it at the next
 * mqtt__deliver_commit(), which the network thread calls before it waits or touches a queue. */
void mqtt__deliver(mqtt_service_t *s, conn_t *c, const struct mosquitto_message *msg,
                   const mosquitto_property *props);
void mqtt__deliver_commit(mqtt_service_t *s);
int mqtt__listeners_track(mqtt_service_t *s);
/* After the network thread stopped: closes every listener queue and waits for those closing. */
void mqtt__listeners_untrack(mqtt_service_t *s);

/* service.c */
void mqtt__connected(mqtt_service_t *s, conn_t *c, bool up);
/* Adds or removes a connection of the configured list (referenced while in it). */
void mqtt__configured(mqtt_service_t *s, conn_t *c, bool add);
/* Keeps a reference to `c` until the service stops (its service may still be in use). */
void mqtt__keep(mqtt_service_t *s, conn_t *c);

#endif
