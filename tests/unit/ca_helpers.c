/* Helpers of the ConfigAdmin suites; see ca_helpers.h. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include "unit/ca_helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- folders and files ----------------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    char *copy = strdup(s);
    assert_non_null(copy);
    return copy;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    return s;
}

char *ca_tmpdir_new(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl;

    if (!base || !*base) {
        base = "/tmp";
    }
    tmpl = xprintf("%s/pelix-ca-XXXXXX", base);
    assert_non_null(mkdtemp(tmpl));
    return tmpl;
}

static void remove_tree(const char *path)
{
    struct stat st;
    DIR *dir;
    struct dirent *de;

    if (lstat(path, &st) < 0) {
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    chmod(path, 0700);
    dir = opendir(path);
    while (dir && (de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        char *child = NULL;
        if (asprintf(&child, "%s/%s", path, de->d_name) >= 0) {
            remove_tree(child);
            free(child);
        }
    }
    if (dir) {
        closedir(dir);
    }
    rmdir(path);
}

void ca_tmpdir_remove(char *path)
{
    if (path) {
        remove_tree(path);
        free(path);
    }
}

char *ca_path(const char *folder, const char *name)
{
    return xprintf("%s/%s", folder, name);
}

char *ca_config_name(const char *pid)
{
    return xprintf("%s%s", pid, PELIX_CONFIG_FILE_SUFFIX);
}

static void write_path(const char *path, const char *content)
{
    size_t len = strlen(content), done = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    assert_true(fd >= 0);
    while (done < len) {
        ssize_t n = write(fd, content + done, len - done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    assert_int_equal(close(fd), 0);
}

void ca_write_file(const char *folder, const char *name, const char *content)
{
    char *path = ca_path(folder, name);
    write_path(path, content);
    free(path);
}

void ca_write_file_renamed(const char *folder, const char *name, const char *content)
{
    char *path = ca_path(folder, name);
    char *tmp = xprintf("%s/.%s.swp", folder, name);

    write_path(tmp, content);
    assert_int_equal(rename(tmp, path), 0);
    free(tmp);
    free(path);
}

char *ca_read_file(const char *folder, const char *name)
{
    char *path = ca_path(folder, name), *data = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "r");

    free(path);
    if (!f) {
        return NULL;
    }
    FILE *mem = open_memstream(&data, &len);
    int ch;
    assert_non_null(mem);
    while ((ch = fgetc(f)) != EOF) {
        fputc(ch, mem);
    }
    fclose(mem);
    fclose(f);
    return data;
}

bool ca_exists(const char *folder, const char *name)
{
    char *path = ca_path(folder, name);
    struct stat st;
    bool exists = lstat(path, &st) == 0;

    free(path);
    return exists;
}

int ca_file_mode(const char *folder, const char *name)
{
    char *path = ca_path(folder, name);
    struct stat st;
    int rc = stat(path, &st) < 0 ? -errno : (int)(st.st_mode & 07777);

    free(path);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t ca_list_folder(const char *folder, char ***ret_names)
{
    DIR *dir = opendir(folder);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;

    assert_non_null(dir);
    while ((de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        names = realloc(names, (n + 1) * sizeof(*names));
        assert_non_null(names);
        names[n++] = xstrdup(de->d_name);
    }
    closedir(dir);
    if (n) {
        qsort(names, n, sizeof(*names), cmp_names);
    }
    *ret_names = names;
    return n;
}

void ca_names_free(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);
}

void ca_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- properties ------------------------------------------------------------------------------ */

pelix_props_t *ca_props_str(const char *key, const char *value)
{
    pelix_props_t *p = pelix_props_new();
    assert_non_null(p);
    assert_int_equal(pelix_props_set_string(p, key, value), 0);
    return p;
}

pelix_props_t *ca_props_long(const char *key, int64_t value)
{
    pelix_props_t *p = pelix_props_new();
    assert_non_null(p);
    assert_int_equal(pelix_props_set_long(p, key, value), 0);
    return p;
}

/* ---- recorder -------------------------------------------------------------------------------- */

static struct timespec deadline(long timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Records a call; runs on ConfigAdmin's thread, so it must not assert. */
static void record(ca_recorder_t *r, ca_call_kind_t kind, const char *pid,
                   const pelix_props_t *props)
{
    ca_call_t *call = calloc(1, sizeof(*call));

    if (r->hook) {
        r->hook(r->hook_ctx, kind, pid, props);
    }
    if (!call) {
        abort();
    }
    call->kind = kind;
    call->pid = pid ? strdup(pid) : NULL;
    call->props = props ? pelix_props_copy(props) : NULL;
    call->thread = pthread_self();
    if ((pid && !call->pid) || (props && !call->props)) {
        abort();
    }
    pthread_mutex_lock(&r->lock);
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        ca_call_t **calls = realloc(r->calls, cap * sizeof(*calls));
        if (!calls) {
            abort();
        }
        r->calls = calls;
        r->cap = cap;
    }
    r->calls[r->count++] = call;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void managed_updated(void *handle, const pelix_props_t *props)
{
    record(handle, CA_UPDATED,
           props ? pelix_props_get_string(props, PELIX_SERVICE_PID, NULL) : NULL, props);
}

static void factory_updated(void *handle, const char *pid, const pelix_props_t *props)
{
    record(handle, CA_UPDATED, pid, props);
}

static void factory_deleted(void *handle, const char *pid)
{
    record(handle, CA_DELETED, pid, NULL);
}

void ca_recorder_init(ca_recorder_t *r)
{
    pthread_condattr_t attr;

    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &attr);
    pthread_condattr_destroy(&attr);
    r->managed.updated = managed_updated;
    r->managed.handle = r;
    r->factory.updated = factory_updated;
    r->factory.deleted = factory_deleted;
    r->factory.handle = r;
}

void ca_recorder_destroy(ca_recorder_t *r)
{
    for (size_t i = 0; i < r->count; i++) {
        free(r->calls[i]->pid);
        pelix_props_free(r->calls[i]->props);
        free(r->calls[i]);
    }
    free(r->calls);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    memset(r, 0, sizeof(*r));
}

size_t ca_recorder_count(ca_recorder_t *r)
{
    size_t n;
    pthread_mutex_lock(&r->lock);
    n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

bool ca_recorder_wait(ca_recorder_t *r, size_t n, long timeout_ms)
{
    struct timespec until = deadline(timeout_ms);
    bool reached;

    pthread_mutex_lock(&r->lock);
    while (r->count < n && pthread_cond_timedwait(&r->cond, &r->lock, &until) == 0) {
    }
    reached = r->count >= n;
    pthread_mutex_unlock(&r->lock);
    return reached;
}

const ca_call_t *ca_recorder_at(ca_recorder_t *r, size_t i)
{
    const ca_call_t *call = NULL;

    pthread_mutex_lock(&r->lock);
    if (i < r->count) {
        call = r->calls[i];
    }
    pthread_mutex_unlock(&r->lock);
    assert_non_null(call);
    return call;
}

/* ---- logger ---------------------------------------------------------------------------------- */

static void log_fn(void *ctx, pelix_log_level_t level, const char *module, const char *message)
{
    ca_log_t *l = ctx;
    char *m = strdup(module ? module : ""), *msg = strdup(message ? message : "");

    if (!m || !msg) {
        abort();
    }
    if (l->hook) {
        l->hook(l->hook_ctx, level, message);
    }
    pthread_mutex_lock(&l->lock);
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        ca_log_entry_t *entries = realloc(l->entries, cap * sizeof(*entries));
        if (!entries) {
            abort();
        }
        l->entries = entries;
        l->cap = cap;
    }
    l->entries[l->count].level = level;
    l->entries[l->count].module = m;
    l->entries[l->count].message = msg;
    l->count++;
    pthread_mutex_unlock(&l->lock);
}

void ca_log_init(ca_log_t *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
}

void ca_log_destroy(ca_log_t *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->entries[i].module);
        free(l->entries[i].message);
    }
    free(l->entries);
    pthread_mutex_destroy(&l->lock);
    memset(l, 0, sizeof(*l));
}

pelix_logger_t ca_log_logger(ca_log_t *l)
{
    pelix_logger_t logger = {log_fn, l, PELIX_LOG_DEBUG};
    return logger;
}

size_t ca_log_count(ca_log_t *l, pelix_log_level_t max_level, const char *needle,
                    const char *needle2)
{
    size_t n = 0;

    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->count; i++) {
        const ca_log_entry_t *e = &l->entries[i];
        if (e->level <= max_level && (!needle || strstr(e->message, needle)) &&
            (!needle2 || strstr(e->message, needle2))) {
            n++;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return n;
}

void ca_log_dump(ca_log_t *l)
{
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->count; i++) {
        fprintf(stderr, "  log[%zu] %s %s: %s\n", i, pelix_log_level_name(l->entries[i].level),
                l->entries[i].module, l->entries[i].message);
    }
    pthread_mutex_unlock(&l->lock);
}

/* ---- fixture --------------------------------------------------------------------------------- */

int ca_fixture_setup(void **state)
{
    ca_fixture_t *fx = calloc(1, sizeof(*fx));

    if (!fx) {
        return -1;
    }
    fx->folder = ca_tmpdir_new();
    ca_log_init(&fx->log);
    for (size_t i = 0; i < CA_RECORDERS; i++) {
        ca_recorder_init(&fx->rec[i]);
    }
    *state = fx;
    return 0;
}

static void unregister_all(ca_fixture_t *fx)
{
    for (size_t i = 0; i < CA_SERVICES; i++) {
        if (fx->svc[i] > 0) {
            pelix_registry_unregister(fx->reg, fx->svc[i]);
            fx->svc[i] = 0;
        }
    }
}

int ca_fixture_teardown(void **state)
{
    ca_fixture_t *fx = *state;

    if (!fx) {
        return 0;
    }
    /* Services first: ConfigAdmin skips notifications of services that are gone, so nothing is
     * delivered to a recorder after this. */
    if (fx->reg) {
        unregister_all(fx);
    }
    fx->ca = pelix_configadmin_free(fx->ca);
    fx->reg = pelix_registry_free(fx->reg);
    for (size_t i = 0; i < CA_RECORDERS; i++) {
        ca_recorder_destroy(&fx->rec[i]);
    }
    ca_log_destroy(&fx->log);
    ca_tmpdir_remove(fx->folder);
    free(fx);
    *state = NULL;
    return 0;
}

void ca_start(ca_fixture_t *fx, bool use_folder, bool watch)
{
    pelix_configadmin_options_t opts = PELIX_CONFIGADMIN_OPTIONS_INIT;
    pelix_error_t err = PELIX_ERROR_INIT;
    int rc;

    assert_null(fx->ca);
    if (!fx->reg) {
        fx->reg = pelix_registry_new();
        assert_non_null(fx->reg);
    }
    opts.folder = use_folder ? fx->folder : NULL;
    opts.watch = watch;
    opts.logger = ca_log_logger(&fx->log);
    rc = pelix_configadmin_new(fx->reg, &opts, &fx->ca, &err);
    if (rc != 0) {
        fail_msg("pelix_configadmin_new: %d %s", rc, err.text);
    }
}

void ca_stop(ca_fixture_t *fx)
{
    unregister_all(fx);
    fx->ca = pelix_configadmin_free(fx->ca);
    fx->reg = pelix_registry_free(fx->reg);
}

void ca_flush(ca_fixture_t *fx)
{
    assert_int_equal(pelix_configadmin_flush(fx->ca, CA_WAIT_MS), 0);
}

static long register_svc(ca_fixture_t *fx, const char *spec, void *svc, pelix_props_t *props)
{
    const char *specs[] = {spec};
    long id = 0;
    size_t slot = 0;

    while (slot < CA_SERVICES && fx->svc[slot] > 0) {
        slot++;
    }
    assert_true(slot < CA_SERVICES);
    assert_int_equal(pelix_registry_register(fx->reg, specs, 1, svc, props, &id), 0);
    fx->svc[slot] = id;
    return id;
}

long ca_register_managed(ca_fixture_t *fx, ca_recorder_t *r, const char *const *pids, size_t count)
{
    pelix_props_t *props = pelix_props_new();

    assert_non_null(props);
    if (count == 1) {
        assert_int_equal(pelix_props_set_string(props, PELIX_SERVICE_PID, pids[0]), 0);
    } else {
        assert_int_equal(pelix_props_set_strings(props, PELIX_SERVICE_PID, pids, count), 0);
    }
    return register_svc(fx, PELIX_MANAGED_SERVICE_SPEC, &r->managed, props);
}

long ca_register_factory(ca_fixture_t *fx, ca_recorder_t *r, const char *factory_pid)
{
    return register_svc(fx, PELIX_MANAGED_FACTORY_SPEC, &r->factory,
                        ca_props_str(PELIX_SERVICE_PID, factory_pid));
}

void ca_unregister(ca_fixture_t *fx, long id)
{
    for (size_t i = 0; i < CA_SERVICES; i++) {
        if (fx->svc[i] == id) {
            fx->svc[i] = 0;
        }
    }
    assert_int_equal(pelix_registry_unregister(fx->reg, id), 0);
}

pelix_configuration_t *ca_get(ca_fixture_t *fx, const char *pid)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configuration_t *c = NULL;
    int rc = pelix_configadmin_get_configuration(fx->ca, pid, &c, &err);

    if (rc != 0) {
        fail_msg("get_configuration(%s): %d %s", pid, rc, err.text);
    }
    assert_non_null(c);
    return c;
}

pelix_configuration_t *ca_create(ca_fixture_t *fx, const char *factory_pid)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    pelix_configuration_t *c = NULL;
    int rc = pelix_configadmin_create_factory_configuration(fx->ca, factory_pid, &c, &err);

    if (rc != 0) {
        fail_msg("create_factory_configuration(%s): %d %s", factory_pid, rc, err.text);
    }
    assert_non_null(c);
    return c;
}

static void update_checked(pelix_configuration_t *c, pelix_props_t *props)
{
    pelix_error_t err = PELIX_ERROR_INIT;
    int rc = pelix_configuration_update(c, props, &err);

    if (rc != 0) {
        fail_msg("update(%s): %d %s", pelix_configuration_get_pid(c), rc, err.text);
    }
}

void ca_update_str(pelix_configuration_t *c, const char *key, const char *value)
{
    update_checked(c, ca_props_str(key, value));
}

void ca_update_long(pelix_configuration_t *c, const char *key, int64_t value)
{
    update_checked(c, ca_props_long(key, value));
}

size_t ca_count_configs(ca_fixture_t *fx)
{
    pelix_configuration_t **list = NULL;
    size_t n = 0;

    assert_int_equal(pelix_configadmin_list_configurations(fx->ca, NULL, &list, &n, NULL), 0);
    pelix_configuration_list_free(list, n);
    return n;
}
