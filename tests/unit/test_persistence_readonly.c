/*
 * ConfigAdmin on a folder it may not write (a read-only folder): an update is refused with its
 * reason (the error names the file), the configuration keeps its properties and the file on disk
 * is unchanged; once the folder is writable again, updates work and are saved.
 *
 * Run as root (as in CI), the part that must not write runs in a forked child that drops to an
 * unprivileged user (uid and gid 65534), since a folder's mode does not stop root.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pelix/configadmin.h>
#include <pelix/registry.h>

#define PID "test.readonly"
#define NOBODY 65534

typedef struct rt {
    pelix_registry_t *reg;
    pelix_configadmin_t *ca;
} rt_t;

static int rt_start(rt_t *rt, const char *folder)
{
    pelix_configadmin_options_t opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    opts.folder = folder;
    opts.watch = false;
    rt->reg = pelix_registry_new();
    return rt->reg ? pelix_configadmin_new(rt->reg, &opts, &rt->ca, NULL) : -ENOMEM;
}

static void rt_stop(rt_t *rt)
{
    pelix_configadmin_free(rt->ca);
    pelix_registry_free(rt->reg);
}

static int update_host(rt_t *rt, const char *host, pelix_error_t *err)
{
    pelix_configuration_t *c = NULL;
    pelix_props_t *p = pelix_props_new();
    int rc = pelix_configadmin_get_configuration(rt->ca, PID, &c, NULL);

    if (rc == 0) {
        pelix_props_set_string(p, "host", host);
        rc = pelix_configuration_update(c, p, err);
    } else {
        pelix_props_free(p);
    }
    pelix_configuration_unref(c);
    return rc;
}

static const char *host_now(rt_t *rt, char *buf, size_t size)
{
    pelix_configuration_t *c = NULL;
    pelix_props_t *p = NULL;

    buf[0] = '\0';
    if (pelix_configadmin_get_configuration(rt->ca, PID, &c, NULL) == 0 &&
        pelix_configuration_get_properties(c, &p) == 0) {
        snprintf(buf, size, "%s", pelix_props_get_string(p, "host", ""));
    }
    pelix_props_free(p);
    pelix_configuration_unref(c);
    return buf;
}

/* The part that must not write; 0 when every check held, else the number of the failed one. */
static int refused_update(const char *folder)
{
    rt_t rt = {0};
    pelix_error_t err = PELIX_ERROR_INIT;
    char host[64];
    int rc, status = 0;

    if (rt_start(&rt, folder) != 0) {
        return 1;
    }
    if (strcmp(host_now(&rt, host, sizeof(host)), "before") != 0) {
        status = 2; /* loaded from the file */
    }
    rc = update_host(&rt, "after", &err);
    if (status == 0 && rc != -EACCES && rc != -EROFS && rc != -EPERM) {
        fprintf(stderr, "update: %d (%s)\n", rc, err.text);
        status = 3;
    }
    if (status == 0 && !strstr(err.text, PID ".config.js")) {
        fprintf(stderr, "reason: %s\n", err.text);
        status = 4;
    }
    if (status == 0 && strcmp(host_now(&rt, host, sizeof(host)), "before") != 0) {
        status = 5; /* the configuration kept its properties */
    }
    rt_stop(&rt);
    return status;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = calloc(1, 4096);
    if (f && text) {
        size_t n = fread(text, 1, 4095, f);
        text[n] = '\0';
    }
    if (f) {
        fclose(f);
    }
    return text;
}

static void test_readonly_folder(void **state)
{
    (void)state;
    char folder[] = "/tmp/pelix-ro-XXXXXX", file[256], host[64];
    rt_t rt = {0};

    assert_non_null(mkdtemp(folder));
    snprintf(file, sizeof(file), "%s/%s.config.js", folder, PID);
    assert_int_equal(rt_start(&rt, folder), 0);
    assert_int_equal(update_host(&rt, "before", NULL), 0);
    rt_stop(&rt);
    char *saved = read_file(file);
    assert_non_null(strstr(saved, "\"before\""));

    assert_int_equal(chmod(folder, 0555), 0);
    if (geteuid() == 0) {
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            _exit(setgid(NOBODY) == 0 && setuid(NOBODY) == 0 ? refused_update(folder) : 9);
        }
        int st = 0;
        assert_int_equal(waitpid(child, &st, 0), child);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    } else {
        assert_int_equal(refused_update(folder), 0);
    }
    char *now = read_file(file);
    assert_string_equal(now, saved); /* the file is unchanged */

    assert_int_equal(chmod(folder, 0700), 0);
    assert_int_equal(rt_start(&rt, folder), 0);
    assert_int_equal(update_host(&rt, "after", NULL), 0);
    assert_string_equal(host_now(&rt, host, sizeof(host)), "after");
    rt_stop(&rt);
    free(now);
    now = read_file(file);
    assert_non_null(strstr(now, "\"after\""));
    free(now);
    free(saved);
    unlink(file);
    rmdir(folder);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readonly_folder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
