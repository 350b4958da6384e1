/*
 * The pelix-mqtt program driven as a user would (tests/integration/program_helpers.h): commands
 * written to its standard input, results read on its standard output, logs and errors on its
 * standard error, signals and exit statuses, against real mosquitto brokers on loopback (the
 * embedded default one, or one of the harness) and through a pseudo-terminal.
 *
 * Each test runs in a work folder of its own (conf/, and tmp/ as the program's TMPDIR), removed
 * at the end; the teardown kills what a failed test left (the program, a broker by its PID).
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integration/broker.h"
#include "integration/client.h"
#include "integration/program_helpers.h"

typedef struct state {
    char *root;
    pp_proc_t *p;
    tb_broker_t *b;
    tc_client_t *c;
    pid_t broker_pid[2]; /* embedded brokers seen: killed if a failed test left them */
    int log_fd;          /* open_broker_log(), -1 when closed */
} state_t;

static int setup(void **st)
{
    state_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->root = pp_root_new();
    assert_non_null(s->root);
    s->log_fd = -1;
    *st = s;
    return 0;
}

static int teardown(void **st)
{
    state_t *s = *st;
    tc_disconnect(s->c);
    pp_free(s->p);
    for (int i = 0; i < 2; i++) {
        pp_kill_mosquitto(s->broker_pid[i]);
    }
    tb_broker_free(s->b);
    if (s->log_fd >= 0) {
        close(s->log_fd);
    }
    pp_root_free(s->root);
    free(s);
    return 0;
}

/* ---- helpers --------------------------------------------------------------------------------- */

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Starts the program (freeing the previous one) in the test's folder. */
static pp_proc_t *start(state_t *s, bool tty, const char *const *args)
{
    pp_free(s->p);
    s->p = pp_start(s->root, true, tty, args);
    assert_non_null(s->p);
    return s->p;
}

/* Fails unless the program exits with `code` within PP_WAIT_MS. */
static void expect_exit(pp_proc_t *p, int code)
{
    int st = pp_wait_exit(p, PP_WAIT_MS);

    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != code) {
        pp_dump(p);
        fail_msg("expected exit status %d; wait status %d (%s)", code, st,
                 st == -1          ? "still running"
                 : WIFSIGNALED(st) ? "killed by a signal"
                                   : "exited");
    }
}

/* The program's "ready" line: everything before reading commands is done. */
static void expect_started(pp_proc_t *p)
{
    pp_expect(p, PP_ERR, 0, "pelix-mqtt: started on the configuration folder");
}

typedef struct embedded {
    pid_t pid;
    int port;
    char cfg[256]; /* its configuration's PID */
} embedded_t;

/* Parses the `embedded broker: mosquitto (pid N) on 127.0.0.1:PORT, configuration PID` line. */
static embedded_t expect_embedded(state_t *s, int slot)
{
    embedded_t e = {0};
    char line[1024];
    size_t at = pp_expect(s->p, PP_ERR, 0, "embedded broker: mosquitto (pid ");

    assert_true(pp_line(s->p, PP_ERR, at, line, sizeof(line), PP_WAIT_MS) > 0);
    if (sscanf(line, "%d) on 127.0.0.1:%d, configuration %255s (", &e.pid, &e.port, e.cfg) != 3) {
        fail_msg("unexpected embedded broker line: '%s'", line);
    }
    s->broker_pid[slot] = e.pid;
    assert_true(e.pid > 0);
    assert_true(e.port > 0 && e.port < 65536);
    assert_non_null(strstr(line, "(--no-embedded-broker to go without)"));
    expect_started(s->p);
    return e;
}

/* The whole file (NUL-terminated), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = calloc(1, 65536);

    if (!f || !text) {
        if (f) {
            fclose(f);
        }
        free(text);
        return NULL;
    }
    size_t n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void config_file(const state_t *s, const char *pid, char *out, size_t size)
{
    char name[300];
    snprintf(name, sizeof(name), "%s.config.js", pid);
    pp_conf_path(s->root, name, out, size);
}

/* Reads one line of stdout from `from`: the answer of a command printing one line. */
static void expect_line(pp_proc_t *p, size_t from, char *out, size_t size)
{
    if (pp_line(p, PP_OUT, from, out, size, PP_WAIT_MS) < 0) {
        pp_dump(p);
        fail_msg("no line on stdout");
    }
}

/* `mqtt.subscribe <filters>`: the listener's service id printed. */
static long subscribe(pp_proc_t *p, const char *filters)
{
    char line[256], *end;
    size_t m = pp_mark(p, PP_OUT);

    pp_send(p, "mqtt.subscribe %s", filters);
    expect_line(p, m, line, sizeof(line));
    long id = strtol(line, &end, 10);
    if (id <= 0 || *end) {
        fail_msg("mqtt.subscribe printed '%s', not an id", line);
    }
    return id;
}

/* Publishes with the shell until the program's own subscription prints the message (the first
 * ones may come before the broker has the subscription); fails after PP_WAIT_MS. */
static void round_trip(pp_proc_t *p, const char *topic, const char *payload)
{
    char seen[512];
    long long deadline = pp_now_ms() + PP_WAIT_MS;
    size_t m = pp_mark(p, PP_OUT);

    snprintf(seen, sizeof(seen), "%s %s\n", topic, payload);
    do {
        pp_send(p, "mqtt.publish %s %s", topic, payload);
        if (pp_wait(p, PP_OUT, m, seen, 300) >= 0) {
            pp_expect(p, PP_OUT, m, "published to "); /* printed after, or before, the message */
            return;
        }
    } while (pp_now_ms() < deadline);
    pp_dump(p);
    fail_msg("'%s' published by the shell never came back", seen);
}

/* The output of `mqtt.connections` (to free), up to and with its "N connection(s)" line. */
static char *connections(pp_proc_t *p)
{
    size_t m = pp_mark(p, PP_OUT), at;
    char *text = calloc(1, 16384);

    assert_non_null(text);
    pp_send(p, "mqtt.connections");
    at = pp_expect(p, PP_OUT, m, " connection");
    at = pp_expect(p, PP_OUT, at, "\n");
    pp_text(p, PP_OUT, m, at, text, 16384);
    return text;
}

/* The STATE column of connection `pid` ("" if it is not listed) in a connections table. */
static void state_of(const char *table, const char *pid, char *out, size_t size)
{
    const char *line = table;

    out[0] = '\0';
    while (line && *line) {
        if (strncmp(line, pid, strlen(pid)) == 0 && line[strlen(pid)] == ' ') {
            char where[300], state[64];
            if (sscanf(line + strlen(pid), " %299s %63s", where, state) == 2) {
                snprintf(out, size, "%s", state);
            }
            return;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
}

/* Polls mqtt.connections until `pid` is in `state`; fails after PP_WAIT_MS. */
static void wait_state(pp_proc_t *p, const char *pid, const char *state)
{
    long long deadline = pp_now_ms() + PP_WAIT_MS;
    char now[64], *table = NULL;

    do {
        free(table);
        table = connections(p);
        state_of(table, pid, now, sizeof(now));
        if (strcmp(now, state) == 0) {
            free(table);
            return;
        }
        pp_sleep_ms(100);
    } while (pp_now_ms() < deadline);
    fprintf(stderr, "%s", table);
    free(table);
    fail_msg("connection %s not %s within %d ms (last: '%s')", pid, state, PP_WAIT_MS, now);
}

/* Polls mqtt.connections until it counts `n` connections; fails after PP_WAIT_MS. */
static void wait_count(pp_proc_t *p, int n)
{
    long long deadline = pp_now_ms() + PP_WAIT_MS;
    char want[64], *table = NULL;

    snprintf(want, sizeof(want), "\n%d connection%s\n", n, n == 1 ? "" : "s");
    do {
        free(table);
        table = connections(p);
        if (strstr(table, want)) {
            free(table);
            return;
        }
        pp_sleep_ms(100);
    } while (pp_now_ms() < deadline);
    fprintf(stderr, "%s", table);
    free(table);
    fail_msg("not %d connections within %d ms", n, PP_WAIT_MS);
}

/* Runs `cmd` and returns the number of error lines it wrote on stderr (an unknown command
 * `sync-N` sent after it marks the end: stderr is written in order); `*from` gets the offset
 * where its output starts. */
static int errors_of(pp_proc_t *p, const char *cmd, size_t *from)
{
    static int sync;
    char marker[64];
    size_t m = pp_mark(p, PP_ERR), at;

    snprintf(marker, sizeof(marker), "sync-%d: unknown command", ++sync);
    pp_send(p, "%s", cmd);
    pp_send(p, "sync-%d", sync);
    at = pp_expect(p, PP_ERR, m, marker);
    if (from) {
        *from = m;
    }
    return pp_count(p, PP_ERR, m, at, " error   ") - 1;
}

/* Publishes from an external test client. */
static void publish_from(int port, const char *topic, const char *payload)
{
    tc_client_t *c = tc_connect(port, NULL);
    assert_non_null(c);
    assert_int_equal(tc_publish(c, topic, payload, strlen(payload), 1, false), 0);
    tc_disconnect(c);
}

/* A descriptor on the embedded broker's log (in the program's TMPDIR), open before a stop so
 * that it can be read after the program removed the broker's folder. */
static void open_broker_log(state_t *s)
{
    char pattern[4200];
    glob_t g;
    int fd = -1;

    snprintf(pattern, sizeof(pattern), "%s/tmp/pelix-mqtt-broker-*/mosquitto.log", s->root);
    if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc == 1) {
        fd = open(g.gl_pathv[0], O_RDONLY | O_CLOEXEC);
    }
    globfree(&g);
    assert_true(fd >= 0);
    s->log_fd = fd;
}

/* The broker stopped by its SIGTERM ("mosquitto version ... terminating" logged), not killed
 * after app_broker_stop()'s 2 s: closes the log. */
static void expect_broker_terminated(state_t *s)
{
    char text[65536];
    ssize_t n = pread(s->log_fd, text, sizeof(text) - 1, 0);

    close(s->log_fd);
    s->log_fd = -1;
    assert_true(n > 0);
    text[n] = '\0';
    if (!strstr(text, " terminating")) {
        fprintf(stderr, "---- embedded broker's log ----\n%s---- end ----\n", text);
        fail_msg("the embedded broker did not stop on its SIGTERM (killed after 2 s?)");
    }
}

/* ---- 1. the embedded default, end to end ----------------------------------------------------- */

static void test_embedded_end_to_end(void **st)
{
    state_t *s = *st;
    char path[4200], tmp[4200], *text;
    pp_proc_t *p = start(s, false, NULL);
    embedded_t e = expect_embedded(s, 0);

    /* Its configuration, in the folder, marked as the embedded one. */
    config_file(s, e.cfg, path, sizeof(path));
    text = slurp(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"pelix.mqtt.embedded\": true"));
    free(text);

    subscribe(p, "demo/#");
    round_trip(p, "demo/1", "hello");
    char published[300];
    snprintf(published, sizeof(published), "published to %s (message id ", e.cfg);
    pp_expect(p, PP_OUT, 0, published);

    /* A message from outside, to the embedded port; control bytes escaped. */
    size_t m = pp_mark(p, PP_OUT);
    publish_from(e.port, "demo/ext", "from outside");
    pp_expect(p, PP_OUT, m, "demo/ext from outside\n");
    publish_from(e.port, "demo/ctl", "a\nb\tc\x01");
    pp_expect(p, PP_OUT, m, "demo/ctl a\\nb\\tc\\x01\n");

    /* The other way: the shell publishes, an outside client receives. */
    s->c = tc_connect(e.port, NULL);
    assert_non_null(s->c);
    assert_true(tc_subscribe(s->c, "out/#", 1) >= 0);
    pp_send(p, "mqtt.publish out/x \"from the shell\" qos=1");
    tc_message_t msg = {0};
    assert_true(tc_wait_message(s->c, "out/x", PP_WAIT_MS, &msg));
    assert_string_equal(msg.payload, "from the shell");
    assert_int_equal(msg.qos, 1);
    tc_message_free(&msg);
    tc_disconnect(s->c);
    s->c = NULL;

    wait_state(p, e.cfg, "connected");

    /* SIGTERM: a clean stop, the broker stopped by its SIGTERM (not killed: it must not inherit
     * the signals pelix-mqtt blocks) and its folder removed. */
    open_broker_log(s);
    pp_kill(p, SIGTERM);
    expect_exit(p, 0);
    pp_expect(p, PP_ERR, 0, "signal: stopping");
    assert_true(pp_pid_gone(e.pid, 5000));
    expect_broker_terminated(s);
    snprintf(tmp, sizeof(tmp), "%s/tmp", s->root);
    assert_int_equal(pp_count_entries(tmp), 0);

    /* A second run: the same configuration, updated to the new broker's port before the service
     * starts (it never tries the port of the previous run). */
    p = start(s, false, NULL);
    embedded_t again = expect_embedded(s, 1);
    assert_string_equal(again.cfg, e.cfg);
    assert_true(again.pid != e.pid);
    pp_conf_path(s->root, NULL, tmp, sizeof(tmp));
    assert_int_equal(pp_count_entries(tmp), 1); /* no second configuration */
    text = slurp(path);
    assert_non_null(text);
    char port[64];
    snprintf(port, sizeof(port), "\"port\": %d", again.port);
    assert_non_null(strstr(text, port));
    free(text);
    wait_state(p, e.cfg, "connected");
    subscribe(p, "again/#");
    round_trip(p, "again/1", "world");
    char old_port[64];
    snprintf(old_port, sizeof(old_port), "127.0.0.1:%d", e.port);
    assert_int_equal(pp_count(p, PP_ERR, 0, 0, old_port), 0);
    open_broker_log(s);
    pp_send(p, "quit");
    expect_exit(p, 0);
    pp_expect(p, PP_ERR, 0, "quit: stopping");
    assert_true(pp_pid_gone(again.pid, 5000));
    expect_broker_terminated(s);
}

/* A script that subscribes then publishes at once hears its own message: the subscription is
 * on the broker before the publish (one publish each, no retry). */
static void test_subscribe_then_publish(void **st)
{
    state_t *s = *st;
    pp_proc_t *p = start(s, false, NULL);
    char script[256], seen[64];

    expect_embedded(s, 0);
    for (int i = 0; i < 10; i++) {
        size_t m = pp_mark(p, PP_OUT);
        snprintf(script, sizeof(script), "mqtt.subscribe sync/%d\nmqtt.publish sync/%d now\n", i,
                 i);
        pp_send_raw(p, script);
        snprintf(seen, sizeof(seen), "sync/%d now\n", i);
        pp_expect(p, PP_OUT, m, seen);
    }
    pp_send(p, "quit");
    expect_exit(p, 0);
}

/* ---- 2. no orphan broker when the program is killed ----------------------------------------- */

static void test_embedded_sigkill(void **st)
{
    state_t *s = *st;
    pp_proc_t *p = start(s, false, NULL);
    embedded_t e = expect_embedded(s, 0);

    assert_true(kill(e.pid, 0) == 0);
    pp_kill(p, SIGKILL);
    int status = pp_wait_exit(p, PP_WAIT_MS);
    assert_true(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* PR_SET_PDEATHSIG: the broker goes with it (its SIGTERM must not be blocked). */
    assert_true(pp_pid_gone(e.pid, 5000));
}

/* ---- 3. a real broker configured with the shell --------------------------------------------- */

static void test_broker_by_shell(void **st)
{
    state_t *s = *st;
    char pid[256], path[4200], *text;
    size_t from;

    s->b = tb_broker_start(NULL);
    assert_non_null(s->b);
    int port = tb_broker_port(s->b);
    pp_proc_t *p = start(s, false, ARGS("--no-embedded-broker"));
    expect_started(p);
    assert_int_equal(pp_count(p, PP_ERR, 0, 0, "embedded broker: mosquitto"), 0);

    size_t m = pp_mark(p, PP_OUT);
    pp_send(p, "config.create mqtt.connector host=127.0.0.1 port=%d", port);
    expect_line(p, m, pid, sizeof(pid));
    assert_true(strncmp(pid, "mqtt.connector-", 15) == 0);
    config_file(s, pid, path, sizeof(path));
    assert_true(pp_exists(path));
    wait_state(p, pid, "connected");

    s->c = tc_connect(port, NULL);
    assert_non_null(s->c);
    assert_true(tc_subscribe(s->c, "rt/#", 0) >= 0);
    subscribe(p, "rt/#");
    round_trip(p, "rt/1", "one");
    assert_true(tc_wait_message(s->c, "rt/1", PP_WAIT_MS, NULL)); /* through the real broker */

    /* A bad value: one error line with the reason, nothing changed. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "config.update %s port=abc", pid);
    assert_int_equal(errors_of(p, cmd, &from), 1);
    assert_int_equal(pp_count(p, PP_ERR, from, 0, "config.update: port: \"abc\" is not an integer"),
                     1);
    text = slurp(path);
    assert_non_null(text);
    char want[64];
    snprintf(want, sizeof(want), "\"port\": %d", port);
    assert_non_null(strstr(text, want));
    free(text);
    m = pp_mark(p, PP_OUT);
    pp_send(p, "mqtt.publish rt/2 two");
    pp_expect(p, PP_OUT, m, "rt/2 two\n");
    wait_state(p, pid, "connected");

    /* Deleted: disconnected, its file removed. */
    snprintf(cmd, sizeof(cmd), "config.delete %s", pid);
    assert_int_equal(errors_of(p, cmd, NULL), 0);
    wait_count(p, 0);
    assert_false(pp_exists(path));
    pp_send(p, "quit");
    expect_exit(p, 0);
}

/* The will of a configuration reaches the others when pelix-mqtt is killed (its birth first). */
static void test_will_on_kill(void **st)
{
    state_t *s = *st;
    char path[4200], body[512];

    s->b = tb_broker_start(NULL);
    assert_non_null(s->b);
    s->c = tc_connect(tb_broker_port(s->b), NULL);
    assert_non_null(s->c);
    assert_true(tc_subscribe(s->c, "wk/#", 1) >= 0);
    pp_mkconf(s->root);
    pp_conf_path(s->root, "mqtt.connector-wk.config.js", path, sizeof(path));
    snprintf(body, sizeof(body),
             "{\"host\": \"127.0.0.1\", \"port\": %d, \"birth_topic\": \"wk/status\", "
             "\"birth_payload\": \"online\", \"will_topic\": \"wk/status\", \"will_payload\": "
             "\"lost\", \"will_qos\": 1, \"service.factoryPid\": \"mqtt.connector\", "
             "\"service.pid\": \"mqtt.connector-wk\"}\n",
             tb_broker_port(s->b));
    assert_true(pp_write_file(path, body));
    pp_proc_t *p = start(s, false, ARGS("--no-embedded-broker"));
    tc_message_t m;
    assert_true(tc_wait_message(s->c, "wk/status", PP_WAIT_MS, &m));
    assert_string_equal(m.payload, "online");
    tc_message_free(&m);
    pp_kill(p, SIGKILL);
    assert_true(pp_wait_exit(p, PP_WAIT_MS) != -1);
    assert_true(tc_wait_message(s->c, "wk/status", PP_WAIT_MS, &m));
    assert_string_equal(m.payload, "lost");
    tc_message_free(&m);
}

/* ---- 4. the folder followed while running --------------------------------------------------- */

static void test_live_folder(void **st)
{
    state_t *s = *st;
    char good[4200], broken[4200], body[512];

    s->b = tb_broker_start(NULL);
    assert_non_null(s->b);
    pp_proc_t *p = start(s, false, ARGS("--no-embedded-broker"));
    expect_started(p);

    pp_conf_path(s->root, "mqtt.connector-test.config.js", good, sizeof(good));
    snprintf(body, sizeof(body),
             "{\"host\": \"127.0.0.1\", \"port\": %d, \"service.factoryPid\": \"mqtt.connector\", "
             "\"service.pid\": \"mqtt.connector-test\"}\n",
             tb_broker_port(s->b));
    assert_true(pp_write_file(good, body));
    wait_state(p, "mqtt.connector-test", "connected");
    subscribe(p, "live/#");
    round_trip(p, "live/1", "a");

    /* A broken file: one error naming it; the rest goes on. */
    size_t m = pp_mark(p, PP_ERR);
    pp_conf_path(s->root, "broken.config.js", broken, sizeof(broken));
    assert_true(pp_write_file(broken, "{\"host\": \n"));
    size_t at = pp_expect(p, PP_ERR, m, "broken.config.js");
    char text[4096];
    pp_text(p, PP_ERR, m, at, text, sizeof(text));
    const char *line = strrchr(text, '\n');
    line = line ? line + 1 : text;
    if (!strstr(line, " error ")) {
        fail_msg("not an error line: '%s'", line);
    }
    size_t mo = pp_mark(p, PP_OUT);
    pp_send(p, "mqtt.publish live/2 b");
    pp_expect(p, PP_OUT, mo, "live/2 b\n");
    wait_state(p, "mqtt.connector-test", "connected");

    /* The good file removed: disconnected. */
    assert_int_equal(unlink(good), 0);
    wait_count(p, 0);
    pp_expect(p, PP_ERR, 0, "mqtt.connector-test: configuration deleted");
    pp_send(p, "quit");
    expect_exit(p, 0);
}

/* ---- 5. bad input and bad options ------------------------------------------------------------ */

static void test_bad_input(void **st)
{
    static const struct {
        const char *cmd, *says;
    } cases[] = {
        {"frobnicate", "frobnicate: unknown command"},
        {"mqtt.publish \"a/b hello", "unterminated quote"},
        {"config.create", "config.create: missing argument"},
        {"mqtt.publish a/b", "mqtt.publish: missing argument"},
        {"sd", "sd: missing argument"},
        {"sd abc", "sd: 'abc' is not a service id"},
        {"sd 99999", "sd: no service 99999"},
        {"mqtt.publish a/+ x", "mqtt.publish: 'a/+'"},
        {"mqtt.publish a/b x qos=3", "qos: '3' is not 0, 1 or 2"},
        {"mqtt.publish a/b x pid=nope", "no configuration 'nope'"},
        {"mqtt.subscribe a/#/b", "mqtt.subscribe: 'a/#/b'"},
        {"mqtt.unsubscribe 999", "mqtt.unsubscribe: no listener 999"},
        {"mqtt.unsubscribe abc", "mqtt.unsubscribe: 'abc' is not a listener id"},
        {"config.delete nope", "config.delete: no configuration 'nope'"},
        {"config.reload nope", "config.reload: no configuration 'nope'"},
        {"help nosuch", "help: no command 'nosuch'"},
        {"quit now", "quit: too many arguments"},
    };
    state_t *s = *st;
    char good[4200], body[512];

    /* A broker of the folder's own: no embedded one, and a connection for mqtt.publish. */
    s->b = tb_broker_start(NULL);
    assert_non_null(s->b);
    pp_mkconf(s->root);
    pp_conf_path(s->root, "mqtt.connector-bad.config.js", good, sizeof(good));
    snprintf(body, sizeof(body),
             "{\"host\": \"127.0.0.1\", \"port\": %d, \"service.factoryPid\": \"mqtt.connector\", "
             "\"service.pid\": \"mqtt.connector-bad\"}\n",
             tb_broker_port(s->b));
    assert_true(pp_write_file(good, body));
    pp_proc_t *p = start(s, false, NULL);
    expect_started(p);
    assert_int_equal(pp_count(p, PP_ERR, 0, 0, "embedded broker: mosquitto"), 0);
    wait_state(p, "mqtt.connector-bad", "connected");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t out = pp_mark(p, PP_OUT), from;
        int n = errors_of(p, cases[i].cmd, &from);
        if (n != 1 || pp_count(p, PP_ERR, from, 0, cases[i].says) != 1) {
            pp_dump(p);
            fail_msg("'%s': %d error lines, expected one saying '%s'", cases[i].cmd, n,
                     cases[i].says);
        }
        assert_int_equal(pp_mark(p, PP_OUT), out); /* nothing on stdout */
        assert_true(pp_running(p));
    }
    size_t m = pp_mark(p, PP_OUT);
    pp_send(p, "help");
    pp_expect(p, PP_OUT, m, "mqtt.subscribe");
    wait_state(p, "mqtt.connector-bad", "connected");
    pp_send(p, "quit");
    expect_exit(p, 0);
}

static void test_bad_options(void **st)
{
    const struct {
        const char *const *args;
        int code;
        pp_stream_t stream;
        const char *says;
    } cases[] = {
        {ARGS("--log-level", "loud"), 2, PP_ERR, "--log-level: 'loud' is not one of"},
        {ARGS("--bogus"), 2, PP_ERR, "see --help"},
        {ARGS("extra"), 2, PP_ERR, "unexpected argument 'extra'"},
        {ARGS("-c"), 2, PP_ERR, "see --help"},
        {ARGS("--version"), 0, PP_OUT, "pelix-mqtt " PELIX_VERSION "\n"},
        {ARGS("--help"), 0, PP_OUT, "Usage: pelix-mqtt"},
    };
    state_t *s = *st;
    char conf[4200];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pp_free(s->p);
        s->p = pp_start(s->root, false, false, cases[i].args); /* the default ./conf */
        assert_non_null(s->p);
        expect_exit(s->p, cases[i].code);
        pp_expect(s->p, cases[i].stream, 0, cases[i].says);
        if (cases[i].code == 0) {
            assert_int_equal(pp_mark(s->p, PP_ERR), 0);
        }
    }
    /* --version says exactly that. */
    char version[256];
    pp_free(s->p);
    s->p = pp_start(s->root, false, false, ARGS("--version"));
    assert_non_null(s->p);
    expect_exit(s->p, 0);
    pp_expect(s->p, PP_OUT, 0, "\n"); /* read to its end */
    pp_text(s->p, PP_OUT, 0, 0, version, sizeof(version));
    assert_string_equal(version, "pelix-mqtt " PELIX_VERSION "\n");
    /* None of them started anything: no configuration folder created. */
    pp_conf_path(s->root, NULL, conf, sizeof(conf));
    assert_false(pp_exists(conf));
}

/* ---- 6. -c and scripts ----------------------------------------------------------------------- */

static void test_scripting(void **st)
{
    state_t *s = *st;

    /* A script on a pipe with --exit-on-eof: runs, then stops by itself. */
    pp_proc_t *p = start(s, false, ARGS("--exit-on-eof"));
    embedded_t e = expect_embedded(s, 0);
    pp_send(p, "mqtt.publish a/b hello");
    pp_close_input(p);
    char published[300];
    snprintf(published, sizeof(published), "published to %s (message id ", e.cfg);
    pp_expect(p, PP_OUT, 0, published);
    expect_exit(p, 0);
    pp_expect(p, PP_ERR, 0, "end of input: stopping");
    assert_true(pp_pid_gone(e.pid, 5000));

    /* -c at start; without --exit-on-eof the end of input keeps it running. (A second run on
     * the folder: exposed to the src/mqtt use-after-free told in test_embedded_end_to_end.) */
    p = start(s, false, ARGS("-c", "mqtt.subscribe x/#"));
    e = expect_embedded(s, 1);
    char line[256];
    expect_line(p, 0, line, sizeof(line)); /* the listener id, before any input */
    assert_true(strlen(line) > 0 && strspn(line, "0123456789") == strlen(line));
    s->c = tc_connect(e.port, NULL);
    assert_non_null(s->c);
    long long deadline = pp_now_ms() + PP_WAIT_MS;
    while (pp_wait(p, PP_OUT, 0, "x/1 from-client\n", 300) < 0 && pp_now_ms() < deadline) {
        assert_int_equal(tc_publish(s->c, "x/1", "from-client", 11, 1, false), 0);
    }
    pp_expect(p, PP_OUT, 0, "x/1 from-client\n");
    pp_close_input(p);
    pp_sleep_ms(1000);
    assert_true(pp_running(p));
    assert_int_equal(tc_publish(s->c, "x/2", "after-eof", 9, 1, false), 0);
    pp_expect(p, PP_OUT, 0, "x/2 after-eof\n");
    tc_disconnect(s->c);
    s->c = NULL;
    pp_kill(p, SIGINT);
    expect_exit(p, 0);
    pp_expect(p, PP_ERR, 0, "signal: stopping");
    assert_true(pp_pid_gone(e.pid, 5000));

    /* -c in order, `quit` among them: stops without reading its (open) input; the stale
     * embedded configuration is removed with --no-embedded-broker. */
    char path[4200];
    config_file(s, e.cfg, path, sizeof(path));
    assert_true(pp_exists(path));
    p = start(s, false,
              ARGS("--no-embedded-broker", "-c", "help quit", "-c", "config.list", "-c", "quit"));
    expect_exit(p, 0);
    size_t help = pp_expect(p, PP_OUT, 0, "quit \n    stops pelix-mqtt\n");
    pp_expect(p, PP_OUT, help, "0 configurations\n");
    pp_expect(p, PP_ERR, 0, "embedded broker not started (--no-embedded-broker)");
    assert_false(pp_exists(path));
}

/* ---- 7. on a terminal ------------------------------------------------------------------------ */

static void test_terminal(void **st)
{
    state_t *s = *st;
    pp_proc_t *p = start(s, true, ARGS("--no-embedded-broker"));

    size_t m = pp_expect(p, PP_OUT, 0, "pelix> ");
    pp_send_raw(p, "help\r");
    m = pp_expect(p, PP_OUT, m, "lists the commands");
    pp_expect(p, PP_OUT, m, "mqtt.subscribe");
    m = pp_expect(p, PP_OUT, m, "pelix> ");

    /* Completion of the command name: "he" + TAB echoes "he", then the rest "lp " (libedit
     * moves the cursor in between); Enter runs it. */
    pp_send_raw(p, "he\t");
    pp_expect(p, PP_OUT, pp_expect(p, PP_OUT, m, "he"), "lp ");
    pp_send_raw(p, "\r");
    m = pp_expect(p, PP_OUT, m, "lists the commands");
    assert_int_equal(pp_count(p, PP_OUT, 0, 0, "unknown command"), 0);
    m = pp_expect(p, PP_OUT, m, "pelix> ");

    pp_send_raw(p, "quit\r");
    expect_exit(p, 0);
    pp_expect(p, PP_OUT, m, "quit: stopping");

    /* Ctrl-D on an empty line ends the input: stops. */
    p = start(s, true, ARGS("--no-embedded-broker"));
    pp_expect(p, PP_OUT, 0, "pelix> ");
    pp_send_raw(p, "\x04");
    expect_exit(p, 0);
    pp_expect(p, PP_OUT, 0, "end of input: stopping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_embedded_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_then_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_by_shell, setup, teardown),
        cmocka_unit_test_setup_teardown(test_will_on_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scripting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_terminal, setup, teardown),
    };

    pp_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
