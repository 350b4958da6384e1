/*
 * ConfigAdmin's folder watcher (watch = true): port of Pelix's FileInstallTest
 * (testAddUpdateDelete), factory configuration files dropped at run time (Pelix bug B5), no echo
 * of our own writes, malformed files while running, editors' rename-on-save, stray files, and
 * the logger being called without ConfigAdmin's lock.
 *
 * Timing: a change is awaited with CA_WAIT_MS (5 s), a generous upper bound for "within a
 * second"; after each step the test waits CA_QUIET_MS more and checks that no extra call came.
 * That extra wait only looks for spurious extra calls: it never decides a pass on speed.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <pelix/configadmin.h>

#include "unit/ca_helpers.h"

static const char *const PID = "test.ca.bundle";
static const char *const NAME = "test.ca.bundle.config.js";
static const char *const SENTINEL = "test.ca.sentinel";

/* Waits (upper bound CA_WAIT_MS) for exactly `n` calls: at least n within the bound, then no
 * more after the quiet time. */
static void expect_calls(ca_fixture_t *fx, ca_recorder_t *r, size_t n)
{
    if (!ca_recorder_wait(r, n, CA_WAIT_MS)) {
        ca_log_dump(&fx->log);
        fail_msg("%zu calls after %d ms, expected %zu", ca_recorder_count(r), CA_WAIT_MS, n);
    }
    ca_sleep_ms(CA_QUIET_MS);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), n);
}

/* Waits (upper bound CA_WAIT_MS) until the log holds `n` records matching. */
static void expect_log(ca_fixture_t *fx, pelix_log_level_t level, const char *needle, size_t n)
{
    for (int i = 0; i < CA_WAIT_MS / 10 && ca_log_count(&fx->log, level, needle, NULL) < n; i++) {
        ca_sleep_ms(10);
    }
    if (ca_log_count(&fx->log, level, needle, NULL) != n) {
        ca_log_dump(&fx->log);
        fail_msg("expected %zu log records with '%s'", n, needle);
    }
}

static const char *value_of(ca_recorder_t *r, size_t i)
{
    const ca_call_t *call = ca_recorder_at(r, i);
    assert_int_equal(call->kind, CA_UPDATED);
    assert_non_null(call->props);
    return pelix_props_get_string(call->props, "config.value", "");
}

/* ---- FileInstallTest ------------------------------------------------------------------------- */

static void test_add_update_delete(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    pelix_configuration_t *c;
    pelix_props_t *props;
    struct timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    char *path = ca_path(fx->folder, NAME);

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &PID, 1);
    /* As in Pelix, the managed service's (empty) configuration object exists already. */
    c = ca_get(fx, PID);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 1); /* updated(NULL) */

    ca_write_file(fx->folder, NAME, "{\"config.value\": \"Ni !\"}\n");
    expect_calls(fx, r, 2);
    assert_string_equal(value_of(r, 1), "Ni !");
    assert_string_equal(ca_recorder_at(r, 1)->pid, PID);
    /* Applied to the object the application holds. */
    assert_true(pelix_configuration_is_valid(c));
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_string_equal(pelix_props_get_string(props, "config.value", ""), "Ni !");
    pelix_props_free(props);

    ca_write_file(fx->folder, NAME, "{\"config.value\": \"Ecky-ecky-ecky\"}\n");
    expect_calls(fx, r, 3);
    assert_string_equal(value_of(r, 2), "Ecky-ecky-ecky");

    /* Touched: the modification time changes, the content does not. */
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
    expect_calls(fx, r, 3);
    ca_write_file(fx->folder, NAME, "{\"config.value\": \"Ecky-ecky-ecky\"}\n");
    expect_calls(fx, r, 3);
    /* Same properties written differently: nothing changed either. */
    ca_write_file(fx->folder, NAME, "{ \"config.value\" : \"Ecky-ecky-ecky\" }");
    expect_calls(fx, r, 3);

    assert_int_equal(unlink(path), 0);
    expect_calls(fx, r, 4);
    assert_null(ca_recorder_at(r, 3)->props);
    assert_int_equal(pelix_configuration_get_properties(c, &props), PELIX_E_DELETED);
    assert_int_equal(ca_count_configs(fx), 0);
    /* The file was not written back. */
    assert_false(ca_exists(fx->folder, NAME));
    pelix_configuration_unref(c);
    free(path);
}

/* Without any configuration object beforehand (Pelix needed one, see §1.8). */
static void test_new_file_without_object(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    pelix_configuration_t *c;

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &PID, 1);
    ca_write_file(fx->folder, NAME, "{\"config.value\": \"Ni !\"}\n");
    expect_calls(fx, r, 2);
    assert_string_equal(value_of(r, 1), "Ni !");
    c = ca_get(fx, PID);
    assert_true(pelix_configuration_is_valid(c));
    pelix_configuration_unref(c);
}

/* Pelix bug B5: a factory configuration file dropped at run time reaches its factory. */
static void test_factory_file_added_and_removed(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *f = &fx->rec[0];
    const char *pid = "mqtt.connector-6a1c5d1e-8f8b-4c59-9a39-0b5f3c2d7e41";
    const char *name = "mqtt.connector-6a1c5d1e-8f8b-4c59-9a39-0b5f3c2d7e41.config.js";
    pelix_configuration_t *c, *none = NULL;
    const ca_call_t *call;
    char *path = ca_path(fx->folder, name);

    ca_start(fx, true, true);
    ca_register_factory(fx, f, "mqtt.connector");
    ca_write_file(fx->folder, name,
                  "{\n    \"host\": \"localhost\",\n    \"port\": 1883,\n"
                  "    \"service.factoryPid\": \"mqtt.connector\"\n}\n");
    expect_calls(fx, f, 1);
    call = ca_recorder_at(f, 0);
    assert_int_equal(call->kind, CA_UPDATED);
    assert_string_equal(call->pid, pid);
    assert_string_equal(pelix_props_get_string(call->props, "host", ""), "localhost");
    assert_int_equal(pelix_props_get_long(call->props, "port", 0), 1883);
    assert_string_equal(pelix_props_get_string(call->props, PELIX_SERVICE_PID, ""), pid);
    c = ca_get(fx, pid);
    assert_string_equal(pelix_configuration_get_factory_pid(c), "mqtt.connector");
    assert_int_equal(pelix_configadmin_get_configuration(fx->ca, "mqtt.connector", &none, NULL),
                     PELIX_E_PID);

    assert_int_equal(unlink(path), 0);
    expect_calls(fx, f, 2);
    call = ca_recorder_at(f, 1);
    assert_int_equal(call->kind, CA_DELETED);
    assert_string_equal(call->pid, pid);
    assert_false(pelix_configuration_is_valid(c));
    assert_int_equal(ca_count_configs(fx), 0);
    pelix_configuration_unref(c);
    free(path);
}

/* ---- our own writes -------------------------------------------------------------------------- */

static void test_own_writes_do_not_echo(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0], *f = &fx->rec[1];
    pelix_configuration_t *c, *fc;

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &PID, 1);
    ca_register_factory(fx, f, "mqtt.connector");
    c = ca_get(fx, PID);
    fc = ca_create(fx, "mqtt.connector");
    for (int64_t i = 1; i <= 20; i++) {
        ca_update_long(c, "i", i);
        ca_update_long(fc, "i", i);
    }
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 21); /* updated(NULL) + 20 */
    assert_int_equal(ca_recorder_count(f), 20);
    /* Enough for the watcher to see every file event; still nothing more. */
    ca_sleep_ms(500);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 21);
    assert_int_equal(ca_recorder_count(f), 20);

    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    assert_int_equal(pelix_configuration_delete(fc, NULL), 0);
    ca_sleep_ms(500);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 22);
    assert_int_equal(ca_recorder_count(f), 21);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), 0);
    pelix_configuration_unref(c);
    pelix_configuration_unref(fc);
}

/* ---- malformed, renamed and stray files while running ---------------------------------------- */

static void test_malformed_file_while_running(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0], *s = &fx->rec[1];
    pelix_configuration_t *c;
    pelix_props_t *props;

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &PID, 1);
    ca_register_managed(fx, s, &SENTINEL, 1);
    c = ca_get(fx, PID);
    ca_update_str(c, "config.value", "good");
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2);

    ca_write_file(fx->folder, NAME, "{\"config.value\": ");
    expect_log(fx, PELIX_LOG_ERROR, NAME, 1);

    /* Written again with the same content: not reported again. A sentinel file written after it
     * shows that the watcher went past it. */
    ca_write_file(fx->folder, NAME, "{\"config.value\": ");
    ca_write_file(fx->folder, "test.ca.sentinel.config.js", "{\"x\": 1}");
    expect_calls(fx, s, 2);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, NAME, NULL), 1);

    /* The configuration keeps its properties; nothing was notified. */
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_string_equal(pelix_props_get_string(props, "config.value", ""), "good");
    pelix_props_free(props);
    assert_true(pelix_configuration_is_valid(c));
    assert_int_equal(ca_recorder_count(r), 2);

    /* Fixed: applied. */
    ca_write_file(fx->folder, NAME, "{\"config.value\": \"fixed\"}");
    expect_calls(fx, r, 3);
    assert_string_equal(value_of(r, 2), "fixed");
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, NAME, NULL), 1);

    /* Broken again: a new problem, reported again (once). */
    ca_write_file(fx->folder, NAME, "[]");
    expect_log(fx, PELIX_LOG_ERROR, NAME, 2);
    ca_sleep_ms(CA_QUIET_MS);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, NAME, NULL), 2);
    assert_int_equal(ca_recorder_count(r), 3);

    pelix_configuration_unref(c);
}

static void test_editor_rename_applied_once(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &PID, 1);
    ca_write_file_renamed(fx->folder, NAME, "{\"config.value\": \"one\"}\n");
    expect_calls(fx, r, 2);
    assert_string_equal(value_of(r, 1), "one");
    ca_write_file_renamed(fx->folder, NAME, "{\"config.value\": \"two\"}\n");
    expect_calls(fx, r, 3);
    assert_string_equal(value_of(r, 2), "two");
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), 0);
}

/* Tools that publish a finished file by linking it: `ln tmp x; rm tmp` (the link count is back to
 * 1 when the watcher looks), and an unnamed O_TMPFILE written, then linked with linkat(). */
static void test_published_by_link_applied(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    char *tmp = ca_path(fx->folder, "staging.tmp"), *path = ca_path(fx->folder, NAME);

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &PID, 1);
    expect_calls(fx, r, 1);
    ca_write_file(fx->folder, "staging.tmp", "{\"config.value\": \"linked\"}\n");
    assert_int_equal(link(tmp, path), 0);
    assert_int_equal(unlink(tmp), 0);
    expect_calls(fx, r, 2);
    assert_string_equal(value_of(r, 1), "linked");

    assert_int_equal(unlink(path), 0);
    expect_calls(fx, r, 3);
    const char text[] = "{\"config.value\": \"tmpfile\"}\n";
    int fd = open(fx->folder, O_TMPFILE | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    assert_int_equal(linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW), 0);
    close(fd);
    expect_calls(fx, r, 4);
    assert_string_equal(value_of(r, 3), "tmpfile");
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), 0);
    free(tmp);
    free(path);
}

/* A writer that creates the file and takes its time writing it: applied once, complete, when it
 * closes the file, and never reported as malformed in between. */
static void test_slow_writer_applied_once(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    char *path = ca_path(fx->folder, NAME);

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &PID, 1);
    expect_calls(fx, r, 1);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"config.value\": ", 17), 17);
    ca_sleep_ms(CA_QUIET_MS); /* well past the settle time */
    assert_int_equal(ca_recorder_count(r), 1);
    assert_int_equal(write(fd, "\"slow\"}\n", 8), 8);
    assert_int_equal(close(fd), 0);
    expect_calls(fx, r, 2);
    assert_string_equal(value_of(r, 1), "slow");
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), 0);
    free(path);
}

typedef struct rewriter {
    const char *folder;
    atomic_bool stop;
    int failures;
} rewriter_t;

/* Replaces the file every 20 ms (write to a temporary name, rename) until told to stop. */
static void *rewrite_run(void *arg)
{
    rewriter_t *w = arg;
    char tmp[4096], path[4096], text[64];
    snprintf(tmp, sizeof(tmp), "%s/rewrite.tmp", w->folder);
    snprintf(path, sizeof(path), "%s/%s", w->folder, NAME);
    for (int i = 0; !atomic_load(&w->stop); i++) {
        int n = snprintf(text, sizeof(text), "{\"config.value\": \"v%d\"}\n", i);
        int fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) < 0 || rename(tmp, path) < 0) {
            w->failures++;
        }
        struct timespec pause = {0, 20 * 1000000L};
        nanosleep(&pause, NULL);
    }
    return NULL;
}

/* A file replaced again and again with no pause longer than the settle time is still applied
 * while it keeps changing, not only once the changes stop. */
static void test_rewritten_without_pause_applied(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    rewriter_t w = {.folder = fx->folder};
    pthread_t th;

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &PID, 1);
    expect_calls(fx, r, 1);
    assert_int_equal(pthread_create(&th, NULL, rewrite_run, &w), 0);
    bool applied = ca_recorder_wait(r, 2, CA_WAIT_MS); /* the writer goes on meanwhile */
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    assert_true(applied);
    assert_int_equal(w.failures, 0);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), 0);
}

/* A configuration linked into the folder (ln, or ln -s as Kubernetes config maps do) is applied
 * although no file is written there. */
static void test_links_applied(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    char *outside = ca_tmpdir_new(), *src, *hard, *soft;

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &PID, 1);
    expect_calls(fx, r, 1); /* updated(NULL): no configuration yet */
    ca_write_file(outside, "a.json", "{\"config.value\": \"hard\"}\n");
    ca_write_file(outside, "b.json", "{\"config.value\": \"soft\"}\n");
    src = ca_path(outside, "a.json");
    hard = ca_path(fx->folder, NAME);
    assert_int_equal(link(src, hard), 0);
    expect_calls(fx, r, 2);
    assert_string_equal(value_of(r, 1), "hard");
    assert_int_equal(unlink(hard), 0);
    expect_calls(fx, r, 3);
    assert_null(ca_recorder_at(r, 2)->props);
    free(src);

    src = ca_path(outside, "b.json");
    soft = ca_path(fx->folder, NAME);
    assert_int_equal(symlink(src, soft), 0);
    expect_calls(fx, r, 4);
    assert_string_equal(value_of(r, 3), "soft");
    free(src);
    free(hard);
    free(soft);
    ca_tmpdir_remove(outside);
}

static void test_stray_files_while_watching(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *s = &fx->rec[0];
    char *sub = ca_path(fx->folder, "sub"), *sub2 = ca_path(fx->folder, "sub2.d");

    ca_write_file(fx->folder, "readme.txt", "not a configuration");
    ca_start(fx, true, true);
    ca_register_managed(fx, s, &SENTINEL, 1);

    ca_write_file(fx->folder, "readme.txt", "changed");
    ca_write_file(fx->folder, "notes.md", "new");
    ca_write_file(fx->folder, "x.config.js.bak", "{\"x\": 1}");
    ca_write_file(fx->folder, ".config.js", "{\"x\": 1}");
    ca_write_file(fx->folder, "x.config.js~", "{ broken");
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(mkdir(sub2, 0755), 0);
    ca_write_file(sub, "inner.config.js", "{\"x\": 1}");
    ca_write_file(fx->folder, "test.ca.sentinel.config.js", "{\"x\": 1}");
    expect_calls(fx, s, 2);
    assert_int_equal(rmdir(sub2), 0);
    ca_sleep_ms(CA_QUIET_MS);

    assert_int_equal(ca_count_configs(fx), 1);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), 0);
    assert_int_equal(ca_recorder_count(s), 2);
    assert_true(ca_exists(fx->folder, ".config.js"));
    free(sub);
    free(sub2);
}

/* ---- the logger is called without ConfigAdmin's lock (log.h) --------------------------------- */

/* When the logger receives a record about the probe file, it asks another thread to list the
 * configurations and waits for the answer (at most 2 s). If ConfigAdmin held its lock while
 * logging, the listing could not proceed until the logger returned: `blocked` is set. */
static struct probe {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pelix_configadmin_t *ca;
    int state; /* 0 idle, 1 asked, 2 answered, 3 stop */
    bool blocked;
    size_t probes;
} probe = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *probe_run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&probe.lock);
    for (;;) {
        while (probe.state != 1 && probe.state != 3) {
            pthread_cond_wait(&probe.cond, &probe.lock);
        }
        if (probe.state == 3) {
            break;
        }
        pthread_mutex_unlock(&probe.lock);
        pelix_configuration_t **list = NULL;
        size_t n = 0;
        pelix_configadmin_list_configurations(probe.ca, NULL, &list, &n, NULL);
        pelix_configuration_list_free(list, n);
        pthread_mutex_lock(&probe.lock);
        if (probe.state == 1) {
            probe.state = 2;
        }
        pthread_cond_broadcast(&probe.cond);
    }
    pthread_mutex_unlock(&probe.lock);
    return NULL;
}

static void probe_hook(void *ctx, pelix_log_level_t level, const char *message)
{
    struct timespec until;

    (void)ctx;
    (void)level;
    if (!strstr(message, "probe")) {
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 2;
    pthread_mutex_lock(&probe.lock);
    if (!probe.ca || probe.state == 3) {
        pthread_mutex_unlock(&probe.lock);
        return;
    }
    probe.probes++;
    probe.state = 1;
    pthread_cond_broadcast(&probe.cond);
    while (probe.state == 1 && pthread_cond_timedwait(&probe.cond, &probe.lock, &until) == 0) {
    }
    if (probe.state != 2) {
        probe.blocked = true;
    }
    probe.state = 0;
    pthread_mutex_unlock(&probe.lock);
}

static void test_logger_called_without_lock(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *r = &fx->rec[0];
    const char *pid = "test.probe";
    pthread_condattr_t attr;
    pthread_t thread;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&probe.cond, &attr);
    pthread_condattr_destroy(&attr);
    probe.state = 0;
    probe.blocked = false;
    probe.probes = 0;
    fx->log.hook = probe_hook;

    ca_start(fx, true, true);
    pthread_mutex_lock(&probe.lock);
    probe.ca = fx->ca;
    pthread_mutex_unlock(&probe.lock);
    assert_int_equal(pthread_create(&thread, NULL, probe_run, NULL), 0);
    ca_register_managed(fx, r, &pid, 1);

    /* While running: applied, malformed, deleted. */
    ca_write_file(fx->folder, "test.probe.config.js", "{\"x\": 1}");
    expect_calls(fx, r, 2);
    ca_write_file(fx->folder, "test.probe.config.js", "{\"x\": ");
    expect_log(fx, PELIX_LOG_ERROR, "test.probe.config.js", 1);
    ca_write_file(fx->folder, "test.probe.config.js", "{\"x\": 2}");
    expect_calls(fx, r, 3);
    char *path = ca_path(fx->folder, "test.probe.config.js");
    assert_int_equal(unlink(path), 0);
    free(path);
    expect_calls(fx, r, 4);

    pthread_mutex_lock(&probe.lock);
    probe.state = 3;
    pthread_cond_broadcast(&probe.cond);
    pthread_mutex_unlock(&probe.lock);
    pthread_join(thread, NULL);

    /* applied, malformed, applied, deleted: each record was probed */
    pthread_mutex_lock(&probe.lock);
    size_t probes = probe.probes;
    bool blocked = probe.blocked;
    pthread_mutex_unlock(&probe.lock);
    assert_true(probes >= 4);
    assert_false(blocked);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ca_fixture_setup, ca_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_add_update_delete),
        T(test_new_file_without_object),
        T(test_factory_file_added_and_removed),
        T(test_own_writes_do_not_echo),
        T(test_malformed_file_while_running),
        T(test_editor_rename_applied_once),
        T(test_links_applied),
        T(test_published_by_link_applied),
        T(test_slow_writer_applied_once),
        T(test_rewritten_without_pause_applied),
        T(test_stray_files_while_watching),
        T(test_logger_called_without_lock),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
