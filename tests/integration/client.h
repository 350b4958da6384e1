/*
 * A simple MQTT test client (libmosquitto, MQTT 3.1.1) to observe the service from outside:
 * connect, subscribe, publish and record every message received.
 *
 * Each client has its own network thread (mosquitto_loop() in a loop, the library in threaded
 * mode); callbacks run there and only record, under the client's mutex. A client never
 * reconnects by itself: once its connection is lost (broker stopped, kicked out), it stays
 * disconnected (tc_connected() false) and its calls fail until tc_disconnect().
 *
 * Threads: every function may be called from any thread, but a client must not be used after
 * (nor concurrently with) tc_disconnect(). Nothing here asserts (cmocka): failures are returned
 * (with a message on stderr for connections), and the tests assert on the results.
 *
 * Timing: TC_WAIT_MS bounds every wait for the broker's answer (CONNACK, SUBACK, UNSUBACK,
 * PUBACK/PUBCOMP); it is a generous upper bound, a local broker answers in milliseconds.
 */
#ifndef TC_CLIENT_H
#define TC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#define TC_WAIT_MS 5000

typedef struct tc_client tc_client_t;

/* A received message; the strings and the payload belong to it (tc_message_free()). */
typedef struct tc_message {
    char *topic;
    /* `len` bytes, followed by an extra '\0' not counted in `len` (handy for text payloads);
     * never NULL, even for an empty payload */
    char *payload;
    size_t len;
    int qos;
    bool retain;
} tc_message_t;

/* Frees the content of `m` (not `m` itself) and clears it; NULL is ignored. */
void tc_message_free(tc_message_t *m);

typedef struct tc_options {
    const char *host;      /* NULL: "127.0.0.1" */
    int port;              /* required */
    const char *client_id; /* NULL: a unique "tc-<pid>-<n>" */
    const char *username;  /* NULL: none */
    const char *password;  /* NULL: none (only with a username) */
    bool persistent;       /* false: clean session (the default) */
    int keepalive;         /* seconds; 0: 60 */
    long timeout_ms;       /* bound of the wait for CONNACK; 0: TC_WAIT_MS */
    const char *cafile;    /* non-NULL: TLS, trusting this CA certificate (PEM) */
    /* last will, if will_topic is non-NULL */
    const char *will_topic;
    const void *will_payload;
    size_t will_len;
    int will_qos;
    bool will_retain;
} tc_options_t;

/* Connects to 127.0.0.1:port with a clean session and waits (TC_WAIT_MS) for a successful
 * CONNACK. `client_id` NULL: a unique one. NULL on failure (refused TCP connection, no or
 * negative CONNACK within the bound), with a message on stderr. */
tc_client_t *tc_connect(int port, const char *client_id);

/* The same with every option; `opts` is only read during the call. */
tc_client_t *tc_connect_opts(const tc_options_t *opts);

/* The client ID used (owned by the client). */
const char *tc_client_id(const tc_client_t *c);

/* Whether the connection is up (CONNACK received, not lost nor closed since). */
bool tc_connected(tc_client_t *c);

/* Waits (up to `timeout_ms`) until the connection is lost; true if it is. */
bool tc_wait_disconnected(tc_client_t *c, long timeout_ms);

/* Subscribes to `filter` and waits (TC_WAIT_MS) for the SUBACK. Returns the QoS granted (0..2),
 * or -1 on failure (not connected, refused by the broker, no SUBACK within the bound). */
int tc_subscribe(tc_client_t *c, const char *filter, int qos);

/* Unsubscribes from `filter` and waits (TC_WAIT_MS) for the UNSUBACK; 0, or -1 on failure. */
int tc_unsubscribe(tc_client_t *c, const char *filter);

/* Publishes `len` bytes of `payload` (NULL only with len 0) to `topic` and waits (TC_WAIT_MS)
 * until it is done: PUBACK (QoS 1) or PUBCOMP (QoS 2) received, written to the socket (QoS 0).
 * 0, or -1 on failure. */
int tc_publish(tc_client_t *c, const char *topic, const void *payload, size_t len, int qos,
               bool retain);

/* Waits (up to `timeout_ms`) for a received message whose topic matches `topic` (a topic filter:
 * an exact topic name, or with + and # wildcards; NULL matches any), then removes the oldest
 * such message from the list and moves it to `ret` (to free with tc_message_free()), or frees it
 * if `ret` is NULL. Returns false (and clears `ret`) if none came within the time. */
bool tc_wait_message(tc_client_t *c, const char *topic, long timeout_ms, tc_message_t *ret);

/* Number of received messages not yet consumed whose topic matches `topic` (as above). */
size_t tc_count(tc_client_t *c, const char *topic);

/* Waits (up to `timeout_ms`) until tc_count(c, topic) >= n; true if reached. */
bool tc_wait_count(tc_client_t *c, const char *topic, size_t n, long timeout_ms);

/* Forgets every received message not yet consumed. */
void tc_clear(tc_client_t *c);

/* Disconnects cleanly (DISCONNECT, if still connected), stops the network thread, frees the
 * client and its messages. NULL is ignored. */
void tc_disconnect(tc_client_t *c);

#endif
