/*
 * ConfigAdmin's folder: the file format (byte-identical to Pelix's), persistence across a
 * restart (port of Pelix's ConfigurationAdminTest.testPersistence), file modes, atomic writes
 * and failed writes, stray and malformed files at load, reload() and delete().
 *
 * A fresh temporary folder per test. The watcher (changes made while running) is tested in
 * test_watcher.c; here it is off unless it matters.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pelix/configadmin.h>

#include "unit/ca_helpers.h"

static const char *const MQTT = "mqtt.connector";

/* Asserts that the folder holds exactly the `count` names given (sorted). */
static void assert_folder(ca_fixture_t *fx, const char *const *expected, size_t count)
{
    char **names;
    size_t n = ca_list_folder(fx->folder, &names);

    if (n != count) {
        for (size_t i = 0; i < n; i++) {
            fprintf(stderr, "  found: %s\n", names[i]);
        }
        fail_msg("%zu entries in the folder, expected %zu", n, count);
    }
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(names[i], expected[i]);
    }
    ca_names_free(names, n);
}

static void assert_file(ca_fixture_t *fx, const char *name, const char *expected)
{
    char *text = ca_read_file(fx->folder, name);
    assert_non_null(text);
    assert_string_equal(text, expected);
    free(text);
}

/* ---- format ---------------------------------------------------------------------------------- */

static void test_file_format_is_pelix(void **state)
{
    ca_fixture_t *fx = *state;
    pelix_configuration_t *c;
    pelix_props_t *props;
    char *name, *expected;

    ca_start(fx, true, false);
    c = ca_create(fx, MQTT);
    props = ca_props_str("host", "localhost");
    assert_int_equal(pelix_props_set_long(props, "port", 1883), 0);
    assert_int_equal(pelix_configuration_update(c, props, NULL), 0);

    name = ca_config_name(pelix_configuration_get_pid(c));
    /* json.dumps(props, sort_keys=True, indent=4, separators=(",", ": ")) + "\n" */
    assert_true(asprintf(&expected,
                         "{\n"
                         "    \"host\": \"localhost\",\n"
                         "    \"port\": 1883,\n"
                         "    \"service.factoryPid\": \"mqtt.connector\",\n"
                         "    \"service.pid\": \"%s\"\n"
                         "}\n",
                         pelix_configuration_get_pid(c)) > 0);
    assert_file(fx, name, expected);
    assert_int_equal(ca_file_mode(fx->folder, name), 0644);
    {
        const char *only[] = {name};
        assert_folder(fx, only, 1);
    }

    /* Equal properties: nothing is stored again (every write is a rename: a new inode). */
    {
        struct stat before, after;
        char *path = ca_path(fx->folder, name);
        assert_int_equal(stat(path, &before), 0);
        props = ca_props_str("host", "localhost");
        assert_int_equal(pelix_props_set_long(props, "port", 1883), 0);
        assert_int_equal(pelix_configuration_update(c, props, NULL), 0);
        assert_int_equal(stat(path, &after), 0);
        assert_int_equal(after.st_ino, before.st_ino);
        ca_update_str(c, "host", "remote");
        assert_int_equal(stat(path, &after), 0);
        assert_int_not_equal(after.st_ino, before.st_ino);
        free(path);
    }
    free(expected);
    free(name);
    pelix_configuration_unref(c);
}

/* A file as Pelix writes it: unicode escapes, a float, a negative integer, a list. */
#define PELIX_PID "pelix.written-0e2b9c7f-5d4c-4b7a-9a52-1f3e2d4c5b6a"
static const char PELIX_TEXT[] = "{\n"
                                 "    \"flag\": true,\n"
                                 "    \"name\": \"caf\\u00e9\",\n"
                                 "    \"ratio\": 0.5,\n"
                                 "    \"retries\": -3,\n"
                                 "    \"service.factoryPid\": \"pelix.written\",\n"
                                 "    \"service.pid\": \"" PELIX_PID "\",\n"
                                 "    \"topics\": [\n"
                                 "        \"a/b\",\n"
                                 "        \"c/#\"\n"
                                 "    ]\n"
                                 "}\n";

static void test_reads_pelix_file(void **state)
{
    ca_fixture_t *fx = *state;
    const char *topics[] = {"a/b", "c/#"};
    const char *name = PELIX_PID ".config.js";
    pelix_props_t *expected = pelix_props_new(), *props;
    pelix_configuration_t *c, *found;

    ca_write_file(fx->folder, name, PELIX_TEXT);
    ca_start(fx, true, false);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), 0);

    assert_int_equal(pelix_props_set_bool(expected, "flag", true), 0);
    assert_int_equal(pelix_props_set_string(expected, "name", "caf\xc3\xa9"), 0);
    assert_int_equal(pelix_props_set_double(expected, "ratio", 0.5), 0);
    assert_int_equal(pelix_props_set_long(expected, "retries", -3), 0);
    assert_int_equal(pelix_props_set_string(expected, PELIX_SERVICE_FACTORY_PID, "pelix.written"),
                     0);
    assert_int_equal(pelix_props_set_string(expected, PELIX_SERVICE_PID, PELIX_PID), 0);
    assert_int_equal(pelix_props_set_strings(expected, "topics", topics, 2), 0);

    c = ca_get(fx, PELIX_PID);
    assert_true(pelix_configuration_is_valid(c));
    assert_string_equal(pelix_configuration_get_factory_pid(c), "pelix.written");
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_true(pelix_props_equal(props, expected));
    pelix_props_free(props);
    {
        pelix_configuration_t **list = NULL;
        size_t n = 0;
        assert_int_equal(
            pelix_configadmin_list_configurations(
                fx->ca, "(&(service.factoryPid=pelix.written)(flag=true))", &list, &n, NULL),
            0);
        assert_int_equal(n, 1);
        found = list[0];
        assert_ptr_equal(found, c);
        pelix_configuration_list_free(list, n);
    }
    /* Loading does not rewrite the file. */
    assert_file(fx, name, PELIX_TEXT);

    /* Changed, then changed back: our file is the same text, byte for byte. */
    props = pelix_props_copy(expected);
    assert_int_equal(pelix_props_set_bool(props, "flag", false), 0);
    assert_int_equal(pelix_configuration_update(c, props, NULL), 0);
    assert_int_equal(pelix_configuration_update(c, pelix_props_copy(expected), NULL), 0);
    assert_file(fx, name, PELIX_TEXT);

    pelix_props_free(expected);
    pelix_configuration_unref(c);
}

static void test_folder_created(void **state)
{
    ca_fixture_t *fx = *state;
    pelix_configadmin_options_t opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_configadmin_t *ca = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    struct stat st;
    char *nested = ca_path(fx->folder, "a/b/conf"), *file = ca_path(fx->folder, "plain");

    fx->reg = pelix_registry_new();
    opts.folder = nested;
    opts.watch = true;
    assert_int_equal(pelix_configadmin_new(fx->reg, &opts, &ca, &err), 0);
    assert_int_equal(stat(nested, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    pelix_configadmin_free(ca);

    /* A file where the folder should be. */
    ca_write_file(fx->folder, "plain", "x");
    opts.folder = file;
    ca = NULL;
    assert_true(pelix_configadmin_new(fx->reg, &opts, &ca, &err) < 0);
    assert_null(ca);
    assert_non_null(strstr(err.text, "plain"));
    free(nested);
    free(file);
}

/* ---- restart --------------------------------------------------------------------------------- */

static void test_persistence(void **state)
{
    ca_fixture_t *fx = *state;
    ca_recorder_t *f = &fx->rec[0], *m = &fx->rec[1];
    const char *plain = "test.ca.persist";
    pelix_configuration_t *c, *fc;
    pelix_props_t *before, *fbefore, *props;
    char *fpid;

    ca_start(fx, true, true);
    c = ca_get(fx, plain);
    props = ca_props_str("arthur", "dent");
    assert_int_equal(pelix_props_set_long(props, "answer", 42), 0);
    assert_int_equal(pelix_configuration_update(c, props, NULL), 0);
    fc = ca_create(fx, MQTT);
    props = ca_props_str("host", "localhost");
    assert_int_equal(pelix_props_set_long(props, "port", 1883), 0);
    assert_int_equal(pelix_configuration_update(fc, props, NULL), 0);
    fpid = strdup(pelix_configuration_get_pid(fc));
    assert_int_equal(pelix_configuration_get_properties(c, &before), 0);
    assert_int_equal(pelix_configuration_get_properties(fc, &fbefore), 0);
    pelix_configuration_unref(c);
    pelix_configuration_unref(fc);

    ca_stop(fx);
    ca_start(fx, true, true);

    assert_int_equal(ca_count_configs(fx), 2);
    c = ca_get(fx, plain);
    fc = ca_get(fx, fpid);
    assert_true(pelix_configuration_is_valid(c));
    assert_null(pelix_configuration_get_factory_pid(c));
    assert_string_equal(pelix_configuration_get_pid(fc), fpid);
    assert_string_equal(pelix_configuration_get_factory_pid(fc), MQTT);
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_true(pelix_props_equal(props, before));
    pelix_props_free(props);
    assert_int_equal(pelix_configuration_get_properties(fc, &props), 0);
    assert_true(pelix_props_equal(props, fbefore));
    pelix_props_free(props);
    {
        /* The factory PID is known again. */
        pelix_configuration_t *none = NULL;
        assert_int_equal(pelix_configadmin_get_configuration(fx->ca, MQTT, &none, NULL),
                         PELIX_E_PID);
    }

    /* Services registered after the restart receive the stored configurations. */
    ca_register_factory(fx, f, MQTT);
    ca_register_managed(fx, m, &plain, 1);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(f), 1);
    assert_int_equal(ca_recorder_at(f, 0)->kind, CA_UPDATED);
    assert_string_equal(ca_recorder_at(f, 0)->pid, fpid);
    assert_true(pelix_props_equal(ca_recorder_at(f, 0)->props, fbefore));
    assert_int_equal(ca_recorder_count(m), 1);
    assert_true(pelix_props_equal(ca_recorder_at(m, 0)->props, before));
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), 0);

    pelix_props_free(before);
    pelix_props_free(fbefore);
    pelix_configuration_unref(c);
    pelix_configuration_unref(fc);
    free(fpid);
}

/* ---- modes ----------------------------------------------------------------------------------- */

static void test_secret_files_mode_0600(void **state)
{
    ca_fixture_t *fx = *state;
    const char *secrets[] = {"password", "tls_key_password", "client_secret", "Password"};
    pelix_configuration_t *c;
    char *name;

    ca_start(fx, true, false);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        char pid[32];
        snprintf(pid, sizeof(pid), "test.ca.secret%zu", i);
        c = ca_get(fx, pid);
        name = ca_config_name(pid);
        ca_update_str(c, "user", "u");
        assert_int_equal(ca_file_mode(fx->folder, name), 0644);
        pelix_props_t *props = ca_props_str("user", "u");
        assert_int_equal(pelix_props_set_string(props, secrets[i], "s3cr3t"), 0);
        assert_int_equal(pelix_configuration_update(c, props, NULL), 0);
        assert_int_equal(ca_file_mode(fx->folder, name), 0600);
        /* The secret goes: readable again. */
        ca_update_str(c, "user", "u");
        assert_int_equal(ca_file_mode(fx->folder, name), 0644);
        free(name);
        pelix_configuration_unref(c);
    }
    /* Keys that only look alike. */
    c = ca_get(fx, "test.ca.notsecret");
    ca_update_str(c, "passwords_file", "/etc/x");
    assert_int_equal(ca_file_mode(fx->folder, "test.ca.notsecret.config.js"), 0644);
    pelix_configuration_unref(c);
}

/* ---- atomic and failed writes ---------------------------------------------------------------- */

static void test_no_temporary_file_left(void **state)
{
    ca_fixture_t *fx = *state;
    pelix_configuration_t *a, *b;
    char *name_b, *expected[2];

    ca_start(fx, true, true);
    a = ca_get(fx, "test.ca.atomic");
    b = ca_create(fx, MQTT);
    for (int64_t i = 0; i < 25; i++) {
        ca_update_long(a, "i", i);
        ca_update_long(b, "i", i);
    }
    name_b = ca_config_name(pelix_configuration_get_pid(b));
    expected[0] = name_b; /* "mqtt..." sorts before "test..." */
    expected[1] = "test.ca.atomic.config.js";
    assert_folder(fx, (const char *const *)expected, 2);
    free(name_b);
    pelix_configuration_unref(a);
    pelix_configuration_unref(b);
}

/* A write that fails (the file size limit makes write() fail with EFBIG, also for root):
 * an error naming the file, nothing changed in memory nor on disk, nothing notified. */
static void test_failed_write_changes_nothing(void **state)
{
    ca_fixture_t *fx = *state;
    const char *pid = "test.ca.fail";
    const char *name = "test.ca.fail.config.js";
    ca_recorder_t *r = &fx->rec[0];
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configuration_t *c;
    pelix_props_t *props, *big;
    struct rlimit old, small;
    void (*old_handler)(int);
    char *before, *text = malloc(256 * 1024);
    int rc;

    ca_start(fx, true, true);
    ca_register_managed(fx, r, &pid, 1);
    c = ca_get(fx, pid);
    ca_update_str(c, "host", "localhost");
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2);
    before = ca_read_file(fx->folder, name);
    assert_non_null(before);

    memset(text, 'x', 256 * 1024 - 1);
    text[256 * 1024 - 1] = '\0';
    big = ca_props_str("host", text);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 64 * 1024;
    old_handler = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    rc = pelix_configuration_update(c, big, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(rc, -EFBIG);
    assert_int_equal(err.code, -EFBIG);
    assert_non_null(strstr(err.text, name));
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_string_equal(pelix_props_get_string(props, "host", ""), "localhost");
    pelix_props_free(props);
    assert_file(fx, name, before);
    {
        const char *only[] = {name};
        assert_folder(fx, only, 1);
    }
    /* The watcher must not bring anything back either (extra quiet time, see ca_helpers.h). */
    ca_sleep_ms(CA_QUIET_MS);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2);

    /* It works again once the limit is gone. */
    ca_update_str(c, "host", "remote");
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 3);
    free(before);
    free(text);
    pelix_configuration_unref(c);
}

/* The rename fails (a folder stands where the file goes). */
static void test_failed_rename_changes_nothing(void **state)
{
    ca_fixture_t *fx = *state;
    const char *pid = "test.ca.blocked";
    const char *name = "test.ca.blocked.config.js";
    ca_recorder_t *r = &fx->rec[0];
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configuration_t *c;
    pelix_props_t *props;
    struct stat st;
    char *path, *inner;

    ca_start(fx, true, false);
    ca_register_managed(fx, r, &pid, 1);
    c = ca_get(fx, pid);
    ca_update_str(c, "host", "localhost");
    path = ca_path(fx->folder, name);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0755), 0);
    ca_write_file(path, "keep", "kept");

    assert_int_equal(pelix_configuration_update(c, ca_props_str("host", "remote"), &err), -EISDIR);
    assert_non_null(strstr(err.text, name));
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_string_equal(pelix_props_get_string(props, "host", ""), "localhost");
    pelix_props_free(props);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    inner = ca_read_file(path, "keep");
    assert_string_equal(inner, "kept");
    {
        const char *only[] = {name};
        assert_folder(fx, only, 1);
    }

    /* Deleting fails too (the folder cannot be unlinked): nothing changes. */
    assert_true(pelix_configuration_delete(c, &err) < 0);
    assert_non_null(strstr(err.text, name));
    assert_true(pelix_configuration_is_valid(c));
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2); /* NULL, then "localhost" */
    free(inner);
    free(path);
    pelix_configuration_unref(c);
}

/* ---- files at load --------------------------------------------------------------------------- */

static void test_stray_files_ignored_at_load(void **state)
{
    ca_fixture_t *fx = *state;
    char *sub = ca_path(fx->folder, "sub");

    ca_write_file(fx->folder, "readme.txt", "not a configuration");
    ca_write_file(fx->folder, "x.config.js.bak", "{\"x\": 1}");
    ca_write_file(fx->folder, ".config.js", "{\"x\": 1}");
    ca_write_file(fx->folder, "x.config.json", "{\"x\": 1}");
    assert_int_equal(mkdir(sub, 0755), 0);
    ca_write_file(sub, "inner.config.js", "{\"x\": 1}");
    ca_write_file(fx->folder, "good.config.js", "{\"x\": 2}");

    ca_start(fx, true, true);
    assert_int_equal(ca_count_configs(fx), 1);
    {
        pelix_configuration_t *c = ca_get(fx, "good");
        assert_true(pelix_configuration_is_valid(c));
        pelix_configuration_unref(c);
    }
    /* Nothing reported for them, nothing rewritten. */
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), 0);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_DEBUG, "readme", NULL), 0);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_DEBUG, ".bak", NULL), 0);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_DEBUG, "inner", NULL), 0);
    assert_file(fx, "x.config.js.bak", "{\"x\": 1}");
    assert_file(fx, ".config.js", "{\"x\": 1}");
    free(sub);
}

static void test_malformed_files_at_load(void **state)
{
    ca_fixture_t *fx = *state;
    static const struct {
        const char *name;
        const char *text;
        const char *reason; /* a word of the reason */
    } bad[] = {
        {"bad.syntax.config.js", "{ not json", "line 1"},
        {"bad.array.config.js", "[1, 2]", "object"},
        {"bad.nested.config.js", "{\"a\": {\"b\": 1}}", "object"},
        {"bad.case.config.js", "{\"Key\": 1, \"key\": 2}", "case"},
        {"bad.factory.config.js", "{\"service.factoryPid\": 12}", "service.factoryPid"},
    };
    const size_t nbad = sizeof(bad) / sizeof(bad[0]);

    for (size_t i = 0; i < nbad; i++) {
        ca_write_file(fx->folder, bad[i].name, bad[i].text);
    }
    ca_write_file(fx->folder, "good.a.config.js", "{\"x\": 1}");
    ca_write_file(fx->folder, "good.b.config.js", "{\"service.factoryPid\": \"f\", \"x\": 2}");

    ca_start(fx, true, true);
    /* The other configurations load. */
    assert_int_equal(ca_count_configs(fx), 2);
    for (size_t i = 0; i < nbad; i++) {
        /* Once, with the file name and a reason after it. */
        if (ca_log_count(&fx->log, PELIX_LOG_ERROR, bad[i].name, NULL) != 1) {
            ca_log_dump(&fx->log);
            fail_msg("%s not reported exactly once", bad[i].name);
        }
        assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, bad[i].name, bad[i].reason), 1);
    }
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_WARNING, NULL, NULL), nbad);

    /* Still there, unchanged, and still reported once after the watcher had time to act. */
    ca_sleep_ms(CA_QUIET_MS);
    for (size_t i = 0; i < nbad; i++) {
        assert_file(fx, bad[i].name, bad[i].text);
        assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, bad[i].name, NULL), 1);
    }
    assert_int_equal(ca_count_configs(fx), 2);
}

static void test_special_files_at_load(void **state)
{
    ca_fixture_t *fx = *state;
    char *fifo = ca_path(fx->folder, "pipe.config.js");
    char *dir = ca_path(fx->folder, "dir.config.js");

    /* Opening a FIFO for reading blocks until a writer comes: loading must not wait for one. */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(dir, 0755), 0);
    ca_write_file(fx->folder, "good.config.js", "{\"x\": 1}");

    ca_start(fx, true, true);
    assert_int_equal(ca_count_configs(fx), 1);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, "pipe.config.js", "regular"), 1);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, "dir.config.js", "regular"), 1);
    ca_sleep_ms(CA_QUIET_MS);
    assert_int_equal(ca_log_count(&fx->log, PELIX_LOG_ERROR, "pipe.config.js", NULL), 1);
    free(fifo);
    free(dir);
}

/* ---- reload and delete ----------------------------------------------------------------------- */

static void test_reload(void **state)
{
    ca_fixture_t *fx = *state;
    const char *pid = "test.ca.reload";
    const char *name = "test.ca.reload.config.js";
    ca_recorder_t *r = &fx->rec[0];
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configuration_t *c, *nofile;
    pelix_props_t *props;

    ca_start(fx, true, false); /* no watcher: edits go unnoticed until reload() */
    ca_register_managed(fx, r, &pid, 1);
    c = ca_get(fx, pid);
    ca_update_long(c, "v", 1);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2);

    ca_write_file(fx->folder, name, "{\"v\": 2}\n");
    ca_sleep_ms(CA_QUIET_MS); /* only to show the edit is not picked up by itself */
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 2);

    assert_int_equal(pelix_configuration_reload(c, &err), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 3);
    assert_int_equal(pelix_props_get_long(ca_recorder_at(r, 2)->props, "v", 0), 2);
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_int_equal(pelix_props_get_long(props, "v", 0), 2);
    assert_string_equal(pelix_props_get_string(props, PELIX_SERVICE_PID, ""), pid);
    pelix_props_free(props);

    /* Unchanged file: nothing to notify. */
    assert_int_equal(pelix_configuration_reload(c, NULL), 0);
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 3);

    /* Malformed file: an error naming it, nothing changes. */
    ca_write_file(fx->folder, name, "{ \"v\": ");
    assert_int_equal(pelix_configuration_reload(c, &err), PELIX_E_JSON);
    assert_non_null(strstr(err.text, name));
    assert_int_equal(pelix_configuration_get_properties(c, &props), 0);
    assert_int_equal(pelix_props_get_long(props, "v", 0), 2);
    pelix_props_free(props);

    /* No file. */
    nofile = ca_get(fx, "test.ca.nofile");
    assert_int_equal(pelix_configuration_reload(nofile, &err), -ENOENT);
    assert_false(pelix_configuration_is_valid(nofile));
    ca_flush(fx);
    assert_int_equal(ca_recorder_count(r), 3);
    pelix_configuration_unref(nofile);
    pelix_configuration_unref(c);

    /* No folder at all. */
    ca_stop(fx);
    ca_start(fx, false, false);
    c = ca_get(fx, pid);
    ca_update_long(c, "v", 1);
    assert_int_equal(pelix_configuration_reload(c, NULL), -ENOENT);
    pelix_configuration_unref(c);
}

static void test_delete_removes_file(void **state)
{
    ca_fixture_t *fx = *state;
    pelix_configuration_t *c, *fc, *empty;
    char *fname;

    ca_start(fx, true, true);
    c = ca_get(fx, "test.ca.del");
    ca_update_long(c, "v", 1);
    fc = ca_create(fx, MQTT);
    ca_update_long(fc, "v", 1);
    empty = ca_get(fx, "test.ca.del.empty");
    fname = ca_config_name(pelix_configuration_get_pid(fc));
    assert_true(ca_exists(fx->folder, "test.ca.del.config.js"));
    assert_true(ca_exists(fx->folder, fname));
    assert_false(ca_exists(fx->folder, "test.ca.del.empty.config.js"));

    assert_int_equal(pelix_configuration_delete(c, NULL), 0);
    assert_false(ca_exists(fx->folder, "test.ca.del.config.js"));
    assert_int_equal(pelix_configuration_delete(fc, NULL), 0);
    assert_int_equal(pelix_configuration_delete(empty, NULL), 0);
    assert_folder(fx, NULL, 0);

    /* Gone after a restart too. */
    ca_stop(fx);
    ca_start(fx, true, true);
    assert_int_equal(ca_count_configs(fx), 0);
    free(fname);
    pelix_configuration_unref(c);
    pelix_configuration_unref(fc);
    pelix_configuration_unref(empty);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ca_fixture_setup, ca_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_file_format_is_pelix),
        T(test_reads_pelix_file),
        T(test_folder_created),
        T(test_persistence),
        T(test_secret_files_mode_0600),
        T(test_no_temporary_file_left),
        T(test_failed_write_changes_nothing),
        T(test_failed_rename_changes_nothing),
        T(test_stray_files_ignored_at_load),
        T(test_malformed_files_at_load),
        T(test_special_files_at_load),
        T(test_reload),
        T(test_delete_removes_file),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
