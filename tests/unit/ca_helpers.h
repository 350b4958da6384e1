/*
 * Helpers of the ConfigAdmin suites (test_configadmin, test_managed, test_persistence,
 * test_watcher): temporary folders and files, recording managed services and factories, a
 * capturing logger and a fixture holding a registry and a ConfigAdmin.
 *
 * Threads: recorders and the logger are called on ConfigAdmin's threads; they only record
 * (under their own mutex) and never assert. Every function that asserts (cmocka) must be
 * called from the test's main thread.
 *
 * Timing: CA_WAIT_MS is only a generous upper bound for "eventually" (a correct implementation
 * answers in milliseconds); CA_QUIET_MS is the extra wait after which a test checks that no
 * spurious extra call came. Neither decides a pass on speed.
 */
#ifndef CA_HELPERS_H
#define CA_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pelix/configadmin.h>
#include <pelix/log.h>
#include <pelix/props.h>
#include <pelix/registry.h>

#define CA_WAIT_MS 5000
#define CA_QUIET_MS 300

/* ---- folders and files ----------------------------------------------------------------------- */

/* Creates a fresh folder under $TMPDIR (or /tmp); asserts. Free with ca_tmpdir_remove(). */
char *ca_tmpdir_new(void);
/* Removes `path` recursively (making folders writable first) and frees the string. */
void ca_tmpdir_remove(char *path);
/* "<folder>/<name>", malloc'ed. */
char *ca_path(const char *folder, const char *name);
/* Writes `content` in place (open O_TRUNC, write, close), mode 0644; asserts. */
void ca_write_file(const char *folder, const char *name, const char *content);
/* Writes `content` to a temporary name (not ending in ".config.js"), then renames it to `name`,
 * as editors save; asserts. */
void ca_write_file_renamed(const char *folder, const char *name, const char *content);
/* The content of the file (malloc'ed), or NULL if it cannot be read. */
char *ca_read_file(const char *folder, const char *name);
bool ca_exists(const char *folder, const char *name);
/* Permission bits of the file, or -errno. */
int ca_file_mode(const char *folder, const char *name);
/* Names in the folder (without "." and ".."), sorted; free with ca_names_free(). */
size_t ca_list_folder(const char *folder, char ***ret_names);
void ca_names_free(char **names, size_t count);
/* "<pid>.config.js", malloc'ed. */
char *ca_config_name(const char *pid);
void ca_sleep_ms(long ms);

/* ---- properties ------------------------------------------------------------------------------ */

/* New props holding one entry; assert on failure. */
pelix_props_t *ca_props_str(const char *key, const char *value);
pelix_props_t *ca_props_long(const char *key, int64_t value);

/* ---- recording managed services and factories ------------------------------------------------ */

typedef enum ca_call_kind {
    CA_UPDATED = 1,
    CA_DELETED = 2,
} ca_call_kind_t;

/* One recorded call; immutable once recorded. */
typedef struct ca_call {
    ca_call_kind_t kind;
    /* factory: the PID given; managed service: `service.pid` of the props, NULL with NULL props */
    char *pid;
    pelix_props_t *props; /* a copy; NULL for updated(NULL) and deleted() */
    pthread_t thread;     /* the thread that made the call */
} ca_call_t;

/* Called inside the callback, before the call is recorded, with no recorder lock held. */
typedef void (*ca_hook_fn)(void *ctx, ca_call_kind_t kind, const char *pid,
                           const pelix_props_t *props);

typedef struct ca_recorder {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ca_call_t **calls;
    size_t count;
    size_t cap;
    pelix_managed_service_t managed;
    pelix_managed_service_factory_t factory;
    ca_hook_fn hook;
    void *hook_ctx;
} ca_recorder_t;

void ca_recorder_init(ca_recorder_t *r);
void ca_recorder_destroy(ca_recorder_t *r);
size_t ca_recorder_count(ca_recorder_t *r);
/* Waits until at least `n` calls were recorded or `timeout_ms` passed; true if reached. */
bool ca_recorder_wait(ca_recorder_t *r, size_t n, long timeout_ms);
/* Call `i` (borrowed, valid until the recorder is destroyed); asserts that it exists. */
const ca_call_t *ca_recorder_at(ca_recorder_t *r, size_t i);

/* ---- capturing logger ------------------------------------------------------------------------ */

typedef struct ca_log_entry {
    pelix_log_level_t level;
    char *module;
    char *message;
} ca_log_entry_t;

typedef struct ca_log {
    pthread_mutex_t lock;
    ca_log_entry_t *entries;
    size_t count;
    size_t cap;
    /* Optional, called for each record before it is stored, on the logging thread. */
    void (*hook)(void *ctx, pelix_log_level_t level, const char *message);
    void *hook_ctx;
} ca_log_t;

void ca_log_init(ca_log_t *l);
void ca_log_destroy(ca_log_t *l);
/* A logger recording every level into `l`. */
pelix_logger_t ca_log_logger(ca_log_t *l);
/* Number of records at `max_level` or more severe whose message contains every one of the
 * non-NULL needles. */
size_t ca_log_count(ca_log_t *l, pelix_log_level_t max_level, const char *needle,
                    const char *needle2);
/* Prints the records to stderr (diagnostics of a failing test). */
void ca_log_dump(ca_log_t *l);

/* ---- fixture --------------------------------------------------------------------------------- */

#define CA_RECORDERS 4
#define CA_SERVICES 16

typedef struct ca_fixture {
    char *folder; /* a fresh temporary folder, removed at teardown */
    pelix_registry_t *reg;
    pelix_configadmin_t *ca;
    ca_log_t log;
    ca_recorder_t rec[CA_RECORDERS];
    long svc[CA_SERVICES]; /* services registered through the helpers, 0 when free */
} ca_fixture_t;

/* cmocka setup/teardown: teardown unregisters the services, stops ConfigAdmin, frees the
 * registry, the recorders, the log and removes the folder, whatever state the test left. */
int ca_fixture_setup(void **state);
int ca_fixture_teardown(void **state);

/* Starts a registry (if none) and a ConfigAdmin on the fixture's folder (use_folder) or in
 * memory, with the capturing logger; asserts. */
void ca_start(ca_fixture_t *fx, bool use_folder, bool watch);
/* Unregisters the services, frees ConfigAdmin and the registry (a restart follows ca_start). */
void ca_stop(ca_fixture_t *fx);
/* pelix_configadmin_flush(ca, CA_WAIT_MS) == 0, asserted. */
void ca_flush(ca_fixture_t *fx);

/* Registers `r` as a managed service of the given PIDs (`count` == 1: a string service.pid,
 * else a list); returns the service id. */
long ca_register_managed(ca_fixture_t *fx, ca_recorder_t *r, const char *const *pids, size_t count);
/* Registers `r` as a managed service factory of `factory_pid`; returns the service id. */
long ca_register_factory(ca_fixture_t *fx, ca_recorder_t *r, const char *factory_pid);
void ca_unregister(ca_fixture_t *fx, long id);

/* pelix_configadmin_get_configuration(), asserted. */
pelix_configuration_t *ca_get(ca_fixture_t *fx, const char *pid);
/* pelix_configadmin_create_factory_configuration(), asserted. */
pelix_configuration_t *ca_create(ca_fixture_t *fx, const char *factory_pid);
/* pelix_configuration_update() with one entry, asserted. */
void ca_update_str(pelix_configuration_t *c, const char *key, const char *value);
void ca_update_long(pelix_configuration_t *c, const char *key, int64_t value);
/* Number of configurations listed without filter. */
size_t ca_count_configs(ca_fixture_t *fx);

#endif
