/*
 * ConfigAdmin on a file system that is really full: a tmpfs of 64 KiB, filled up. An update is
 * refused with ENOSPC and its reason (the error names the file); the configuration keeps its
 * properties, the file on disk is unchanged and no temporary file is left; once space is freed,
 * updates work and are saved.
 *
 * The file system is mounted in a forked child, in a mount namespace of its own (and a user
 * namespace of its own when the test may not mount as it is), so nothing outside sees it and
 * it goes away with the child.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pelix/configadmin.h>
#include <pelix/registry.h>

#define PID "test.full"

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

static bool write_id_map(const char *path, unsigned id)
{
    char line[64];
    int fd = open(path, O_WRONLY);
    int len = snprintf(line, sizeof(line), "0 %u 1\n", id);
    bool ok = fd >= 0 && write(fd, line, (size_t)len) == len;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* A private mount namespace with a 64 KiB tmpfs on `folder`; false (and why on stderr) if this
 * machine allows neither a mount namespace nor a user namespace to make one. */
static bool mount_small_fs(const char *folder)
{
    unsigned uid = (unsigned)geteuid(), gid = (unsigned)getegid();

    if (unshare(CLONE_NEWNS) < 0) {
        int first = errno;
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
            fprintf(stderr, "no mount namespace (%s) nor user namespace (%s)\n", strerror(first),
                    strerror(errno));
            return false;
        }
        int fd = open("/proc/self/setgroups", O_WRONLY);
        if (fd >= 0) {
            (void)!write(fd, "deny", 4);
            close(fd);
        }
        if (!write_id_map("/proc/self/uid_map", uid) || !write_id_map("/proc/self/gid_map", gid)) {
            fprintf(stderr, "user namespace: cannot map ids (%s)\n", strerror(errno));
            return false;
        }
    }
    if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", folder, "tmpfs", 0, "size=64k,mode=0700") < 0) {
        fprintf(stderr, "mount tmpfs: %s\n", strerror(errno));
        return false;
    }
    return true;
}

/* Fills the file system of `folder` with `filler`; true once a write met ENOSPC. */
static bool fill(const char *filler)
{
    static char block[4096];
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool full = false;

    while (fd >= 0 && !full) {
        ssize_t n = write(fd, block, sizeof(block));
        full = n < 0 && errno == ENOSPC;
        if (n < 0 && !full) {
            break;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    return full;
}

/* Only the configuration file and the filler in `folder`: no temporary file left. */
static int stray_files(const char *folder)
{
    DIR *d = opendir(folder);
    struct dirent *e;
    int stray = 0;

    while (d && (e = readdir(d))) {
        stray += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                 strcmp(e->d_name, PID ".config.js") && strcmp(e->d_name, "filler");
    }
    if (d) {
        closedir(d);
    }
    return d ? stray : -1;
}

/* Runs in the child: 0 when every check held, else the number of the failed one. */
static int full_disk(const char *folder)
{
    char file[256], filler[256], host[64];
    pelix_error_t err = PELIX_ERROR_INIT;
    rt_t rt = {0};
    int rc, status = 0;

    if (!mount_small_fs(folder)) {
        return 1;
    }
    snprintf(file, sizeof(file), "%s/%s.config.js", folder, PID);
    snprintf(filler, sizeof(filler), "%s/filler", folder);
    if (rt_start(&rt, folder) != 0 || update_host(&rt, "before", NULL) != 0) {
        return 2;
    }
    char *saved = read_file(file);
    if (!strstr(saved, "\"before\"") || !fill(filler)) {
        status = 3;
    }
    rc = update_host(&rt, "after-a-longer-host-name-that-needs-room", &err);
    if (status == 0 && rc != -ENOSPC) {
        fprintf(stderr, "update on a full file system: %d (%s)\n", rc, err.text);
        status = 4;
    }
    if (status == 0 && !strstr(err.text, PID ".config.js")) {
        fprintf(stderr, "reason: %s\n", err.text);
        status = 5;
    }
    if (status == 0 && strcmp(host_now(&rt, host, sizeof(host)), "before") != 0) {
        status = 6; /* the configuration kept its properties */
    }
    char *now = read_file(file);
    if (status == 0 && (strcmp(now, saved) != 0 || stray_files(folder) != 0)) {
        status = 7; /* the file is unchanged, no temporary file left */
    }
    free(now);
    /* Space again: the same update works and is saved. */
    if (status == 0 && (unlink(filler) != 0 ||
                        update_host(&rt, "after-a-longer-host-name-that-needs-room", NULL) != 0)) {
        status = 8;
    }
    now = read_file(file);
    if (status == 0 && !strstr(now, "\"after-a-longer-host-name-that-needs-room\"")) {
        status = 9;
    }
    free(now);
    free(saved);
    rt_stop(&rt);
    return status;
}

static void test_full_file_system(void **state)
{
    (void)state;
    char folder[] = "/tmp/pelix-full-XXXXXX";

    assert_non_null(mkdtemp(folder));
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        _exit(full_disk(folder));
    }
    int st = 0;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(rmdir(folder), 0); /* the mount went with the child: the folder is empty */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file_system),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
