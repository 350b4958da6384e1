/*
 * Internal structures of ConfigAdmin, shared by configadmin.c (configurations and API),
 * targets.c (managed services and factories), notifier.c (the notification thread),
 * persistence.c (the folder) and watcher.c (inotify).
 *
 * Locks: `ca->lock` guards configurations, targets and reports; the notifier has its own mutex,
 * always taken after (inside) `ca->lock`, never the other way. No callback runs under either,
 * and neither does the logger: records made under `ca->lock` are queued with ca__log() and
 * emitted by ca__unlock() once the lock is released (log.h).
 */
#ifndef PELIX_CONFIGADMIN_INTERNAL_H
#define PELIX_CONFIGADMIN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <pelix/configadmin.h>
#include <pelix/tracker.h>

#include "props/freeze.h"
#include "util/util.h"

/* ---- notifier -------------------------------------------------------------------------------- */

typedef struct notif {
    struct notif *next;
    uint64_t seq;
    long svc_id;
    bool factory;
    char *pid;
    pelix_props_t *props; /* NULL: updated(NULL) for a managed service, deleted() for a factory */
} notif_t;

typedef struct notifier {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    notif_t *head, *tail;
    uint64_t queued_seq;
    uint64_t done_seq;
    bool stopping;
    bool running;
    pthread_t thread;
    pelix_registry_t *reg;
} notifier_t;

int notifier__start(notifier_t *n, pelix_registry_t *reg);
/* Queues a notification; copies pid and props. 0, or -ENOMEM (dropped: the caller logs). */
int notifier__push(notifier_t *n, long svc_id, bool factory, const char *pid,
                   const pelix_props_t *props);
int notifier__flush(notifier_t *n, long timeout_ms);
/* Delivers what is queued, then stops the thread. */
void notifier__stop(notifier_t *n);

/* ---- persistence ----------------------------------------------------------------------------- */

/* Checks a PID (`what` names it in the error: "PID", "factory PID"). */
int persist__check_pid(const char *pid, const char *what, pelix_error_t *err);
/* The PID a file name stands for (a new string), or NULL if the name does not end in
 * ".config.js" (or is only that). Not validated. */
char *persist__pid_of(const char *filename);
int persist__mkdirs(const char *folder, pelix_error_t *err);
/* Reads and parses <folder>/<pid>.config.js. `ret_hash` (optional) gets a hash of the content,
 * also when it does not parse. -ENOENT when the file does not exist. */
int persist__read(const char *folder, const char *pid, pelix_props_t **ret_props,
                  uint64_t *ret_hash, pelix_error_t *err);
/* Writes the file atomically (mode 0600 when a key looks like a secret). */
int persist__write(const char *folder, const char *pid, const pelix_props_t *props,
                   pelix_error_t *err);
/* Removes the file; a missing file is not an error. */
int persist__remove(const char *folder, const char *pid, pelix_error_t *err);
/* Names of the entries of the folder ending in ".config.js", as PIDs. */
int persist__list(const char *folder, char ***ret_pids, size_t *ret_count);

/* ---- watcher --------------------------------------------------------------------------------- */

typedef struct watcher watcher_t;

int watcher__start(pelix_configadmin_t *ca, const char *folder, const pelix_logger_t *logger,
                   watcher_t **ret, pelix_error_t *err);
void watcher__stop(watcher_t *w);

/* ---- ConfigAdmin ----------------------------------------------------------------------------- */

struct pelix_configuration {
    atomic_int refs;
    pelix_configadmin_t *ca; /* referenced */
    char *pid;               /* in the same block */
    char *factory_pid;       /* in the same block, or NULL */
    pelix_props_t *props; /* NULL until updated; frozen (props/freeze.h): replaced, not changed */
    bool deleted;
    bool stored; /* its file exists (written or read by us) */
};

/* A managed service or factory and the PIDs it names. */
typedef struct target {
    long id;
    char **pids;
    size_t count;
} target_t;

typedef struct report {
    char *name;
    uint64_t hash;
} report_t;

/* A log record made under `ca->lock`, waiting for ca__unlock(). */
typedef struct pending_log {
    struct pending_log *next;
    pelix_log_level_t level;
    char *text;
} pending_log_t;

struct pelix_configadmin {
    atomic_int refs; /* the owner's handle + every configuration */
    pthread_mutex_t lock;
    bool closed;
    pelix_registry_t *reg;
    char *folder;
    pelix_logger_t logger;
    pelix_map_t configs;   /* pid -> pelix_configuration_t (one reference) */
    pelix_map_t reported;  /* file name -> report_t: malformed files already reported */
    pelix_map_t managed;   /* service id -> target_t */
    pelix_map_t factories; /* service id -> target_t */
    pelix_map_t schemas;   /* (factory) PID -> its schema (schema.c) */
    pelix_tracker_t *managed_tracker;
    pelix_tracker_t *factory_tracker;
    long svc_id;
    notifier_t notifier;
    watcher_t *watcher;
    pending_log_t *logs; /* FIFO of records made under the lock */
    pending_log_t *logs_tail;
};

/* schema.c: coerces `props` with the schema of `factory_pid` (or of `pid` for a plain
 * configuration), if one was set (lock held). */
int schema__coerce(pelix_configadmin_t *ca, const char *pid, const char *factory_pid,
                   pelix_props_t *props, pelix_error_t *err);
void schema__free_all(pelix_configadmin_t *ca);

/* configadmin.c: queues a log record (lock held); ca__unlock() emits it. */
void ca__log(pelix_configadmin_t *ca, pelix_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Releases `ca->lock`, then emits the records queued under it. */
void ca__unlock(pelix_configadmin_t *ca);

/* targets.c */
int targets__open(pelix_configadmin_t *ca, pelix_error_t *err);
void targets__close(pelix_configadmin_t *ca);
/* Queues the notifications of a change of `c` (lock held). */
void targets__notify(pelix_configadmin_t *ca, pelix_configuration_t *c);

/* configadmin.c, for the watcher: apply the file of `pid` as it is now / rescan everything
 * (`live`: changes made while running, logged at info level). */
void ca__file_changed(pelix_configadmin_t *ca, const char *pid);
void ca__rescan(pelix_configadmin_t *ca, bool live);

#endif
