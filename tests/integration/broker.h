/*
 * Test brokers for the integration suites: real mosquitto processes on 127.0.0.1, each with its
 * own temporary folder (configuration and log), started with fork/exec and stopped by PID, and a
 * "blackhole" TCP listener that accepts connections but never answers.
 *
 * Never touches a public broker nor the system's mosquitto service (port 1883): every broker of
 * this file listens on a port of its own on the loopback interface.
 *
 * Safety net: every broker started here is recorded until tb_broker_free(); an atexit handler
 * kills (SIGKILL) the processes of the ones left when the test program exits and removes their
 * folders, and each broker process gets PR_SET_PDEATHSIG(SIGTERM), so that a test program that
 * crashes or is killed leaves no mosquitto behind (only its folder, after a SIGKILL).
 * PR_SET_PDEATHSIG follows the thread that forked: start brokers from the test's main thread (or a
 * thread that outlives them).
 *
 * Threads: the functions of one broker (or blackhole) must not be called concurrently; different
 * brokers are independent. Nothing here asserts (cmocka): failures are returned, with a message
 * on stderr, and the tests assert on the results.
 *
 * Timing: TB_WAIT_MS bounds every "until it happens" wait (the broker accepting connections,
 * exiting after SIGTERM, its port being refused); it is a generous upper bound, a broker normally
 * takes milliseconds.
 */
#ifndef TB_BROKER_H
#define TB_BROKER_H

#include <stdbool.h>
#include <sys/types.h>

#define TB_WAIT_MS 5000

typedef struct tb_broker tb_broker_t;

typedef struct tb_broker_options {
    /* TCP port of the listener on 127.0.0.1; 0 picks a free one (tb_free_port()). */
    int port;
    /* Lines appended verbatim to mosquitto.conf (e.g. "password_file /path\n", a TLS listener);
     * NULL for none. Files it names must be readable by the broker: the test program's user, or
     * root (the broker runs with "user root" when the test runs as root). */
    const char *extra_config;
    /* No debug lines in the log (none per message, only connections): for benchmarks. Log
     * searches then see connections, not packets. */
    bool quiet;
} tb_broker_options_t;

/* A TCP port that was free on 127.0.0.1 a moment ago (bound to port 0, read back, closed), or -1
 * on failure (message on stderr). */
int tb_free_port(void);

/* Creates a temporary folder (under $TMPDIR, or /tmp), writes <folder>/mosquitto.conf (listener
 * on 127.0.0.1, anonymous access, no persistence, every log type to <folder>/mosquitto.log, and
 * "user root" when running as root, since mosquitto 2.0 started as root otherwise drops to the
 * "mosquitto" user), starts `mosquitto -c <conf>` (found as /usr/sbin/mosquitto, else in PATH;
 * its stdout and stderr go to <folder>/mosquitto.out) and waits (TB_WAIT_MS) until it logged
 * that it runs and its port accepts a TCP connection. `opts` may be NULL (all defaults); it is
 * copied. Returns the running broker, to free with tb_broker_free(), or NULL with a message on
 * stderr (the broker's output and log included) if it could not start. */
tb_broker_t *tb_broker_start(const tb_broker_options_t *opts);

/* The broker's TCP port on 127.0.0.1 (the same across restarts). */
int tb_broker_port(const tb_broker_t *b);

/* The PID of the broker process, or 0 when it is stopped. */
pid_t tb_broker_pid(const tb_broker_t *b);

/* The broker's temporary folder (mosquitto.conf, mosquitto.log, mosquitto.out), owned by the
 * broker: valid until tb_broker_free(). */
const char *tb_broker_dir(const tb_broker_t *b);

/* Whether the broker process is running (started and not stopped). */
bool tb_broker_running(const tb_broker_t *b);

/* Stops the broker: SIGTERM, waits (TB_WAIT_MS) for it to exit, SIGKILL if it did not, reaps it,
 * then waits (TB_WAIT_MS) until a TCP connect to its port is refused. Clients connected to it
 * lose their connection. 0 on success (also when already stopped), -1 if the port still accepts
 * connections (message on stderr). */
int tb_broker_stop(tb_broker_t *b);

/* Starts the broker again, with the same port, configuration and folder (the log is appended
 * to); stops it first if it is running. Waits as tb_broker_start() does. 0 on success, -1 with a
 * message on stderr. */
int tb_broker_restart(tb_broker_t *b);

/* Stops the broker if it runs, removes its folder and frees it. NULL is ignored. */
void tb_broker_free(tb_broker_t *b);

/* Number of lines of the broker's mosquitto.log containing `needle` (e.g. "Received SUBSCRIBE"
 * or a client ID), 0 if the log cannot be read. The log covers every start of this broker. */
int tb_broker_log_contains(const tb_broker_t *b, const char *needle);

/* Waits (up to `timeout_ms`) until the log holds at least `count` lines containing `needle`;
 * true if reached. */
bool tb_broker_wait_log(const tb_broker_t *b, const char *needle, int count, long timeout_ms);

/* Prints the broker's log and output to stderr (diagnostics of a failing test). */
void tb_broker_dump(const tb_broker_t *b);

/* ---- blackhole --------------------------------------------------------------------------------
 * A TCP listener on 127.0.0.1 whose thread accepts every connection and keeps it open without
 * ever sending a byte (nor reading): an MQTT client connects at TCP level, then waits forever for
 * its CONNACK. */

typedef struct tb_blackhole tb_blackhole_t;

/* Starts a blackhole on a free port; NULL with a message on stderr on failure. */
tb_blackhole_t *tb_blackhole_start(void);

/* Its TCP port on 127.0.0.1. */
int tb_blackhole_port(const tb_blackhole_t *h);

/* Number of connections accepted so far (thread-safe). */
int tb_blackhole_accepted(tb_blackhole_t *h);

/* Stops the accepting thread, closes the listener and every accepted connection, frees it. NULL
 * is ignored. */
void tb_blackhole_free(tb_blackhole_t *h);

/* ---- synhole ----------------------------------------------------------------------------------
 * A TCP listener on 127.0.0.1 whose accept queue is full (it never accepts): the SYN of a new
 * connection is dropped, so a TCP connect to it neither succeeds nor fails (the kernel retries for
 * about two minutes), as with a host that is down behind a firewall. Freeing it closes the
 * listener: connects still trying are then refused. */

typedef struct tb_synhole tb_synhole_t;

/* Starts one on a free port (checked: a probe connect does not complete); NULL with a message on
 * stderr on failure. */
tb_synhole_t *tb_synhole_start(void);
int tb_synhole_port(const tb_synhole_t *h);
/* Closes the listener and the connections that fill its queue; NULL is ignored. */
void tb_synhole_free(tb_synhole_t *h);

#endif
