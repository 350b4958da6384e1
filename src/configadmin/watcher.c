/*
 * The folder watcher: a thread reading inotify events of the configuration folder. A file whose
 * name ends in ".config.js" and that was created, closed after writing, moved in or out or
 * deleted is re-read SETTLE_MS after its last event (editors and tools often write a file in
 * several steps), but never later than MAX_DELAY_MS after the first one (a file rewritten without
 * pause is still applied), then applied by ConfigAdmin, which ignores content equal to what it
 * has. A queue overflow makes it rescan the whole folder.
 *
 * A file seen only as created (no close after writing yet) may still be open by its writer: it is
 * applied only when nobody has it open for writing (a read lease can be taken), else its coming
 * close event applies it. Created files also cover links (`ln`, `linkat` of an O_TMPFILE).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "configadmin/configadmin_internal.h"

#define SETTLE_MS 100
#define MAX_DELAY_MS 800

typedef struct pending {
    char *pid;
    int64_t first; /* time of its first event */
    int64_t due;
    bool created_only; /* only IN_CREATE seen: its writer may still be writing */
} pending_t;

struct watcher {
    pelix_configadmin_t *ca;
    char *folder;
    const pelix_logger_t *logger;
    int inotify_fd;
    int stop_fd;
    pthread_t thread;
    pending_t *pending;
    size_t count;
    size_t cap;
    bool rescan;
    int64_t rescan_due;
};

static void schedule(watcher_t *w, const char *name, uint32_t mask)
{
    char *pid = persist__pid_of(name);
    int64_t now = pelix__now_ms(), due = now + SETTLE_MS;
    bool created = (mask & IN_CREATE) != 0;

    if (!pid) {
        return;
    }
    for (size_t i = 0; i < w->count; i++) {
        pending_t *p = &w->pending[i];
        if (strcmp(p->pid, pid) == 0) {
            p->due = due < p->first + MAX_DELAY_MS ? due : p->first + MAX_DELAY_MS;
            p->created_only = p->created_only && created;
            pelix__free(pid);
            return;
        }
    }
    if (pelix__grow((void **)&w->pending, &w->cap, w->count + 1, sizeof(*w->pending)) < 0) {
        pelix__free(pid);
        w->rescan = true; /* catch up with a rescan rather than lose the change */
        w->rescan_due = due;
        return;
    }
    w->pending[w->count] = (pending_t){pid, now, due, created};
    w->count++;
}

/* True when the configuration file of `pid` is a regular file some process has open for writing:
 * a read lease cannot be taken then (EAGAIN). Unknown (no lease allowed here) counts as not.
 * The lease is released at once; should a writer open the file meanwhile, the kernel signals the
 * lease holder: SIGURG, ignored by default, instead of SIGIO, which would end the process. */
static bool being_written(watcher_t *w, const char *pid)
{
    char *path = pelix__sprintf("%s/%s.config.js", w->folder, pid);
    bool busy = false;
    int fd;

    if (!path) {
        return false;
    }
    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            if (fcntl(fd, F_SETSIG, SIGURG) == 0 && fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
                fcntl(fd, F_SETLEASE, F_UNLCK);
            } else {
                busy = errno == EAGAIN;
            }
        }
        close(fd);
    }
    pelix__free(path);
    return busy;
}

static void read_events(watcher_t *w)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

    for (;;) {
        ssize_t n = read(w->inotify_fd, buf, sizeof(buf));
        if (n <= 0) {
            return; /* EAGAIN: drained */
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->mask & IN_Q_OVERFLOW) {
                w->rescan = true;
                w->rescan_due = pelix__now_ms() + SETTLE_MS;
            } else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
                pelix__log(w->logger, PELIX_LOG_WARNING, "configadmin",
                           "configuration folder '%s' was removed or moved; its changes are "
                           "not followed any more",
                           w->folder);
            } else if (ev->len) {
                schedule(w, ev->name, ev->mask);
            }
            p += sizeof(*ev) + ev->len;
        }
    }
}

/* Applies what is due; returns the poll timeout until the next due entry (-1: none). */
static int apply_due(watcher_t *w)
{
    int64_t now = pelix__now_ms(), next = -1;

    if (w->rescan && w->rescan_due <= now) {
        w->rescan = false;
        for (size_t i = 0; i < w->count; i++) {
            pelix__free(w->pending[i].pid);
        }
        w->count = 0;
        ca__rescan(w->ca, true);
    }
    for (size_t i = 0; i < w->count;) {
        if (w->pending[i].due <= now) {
            pending_t p = w->pending[i];
            w->pending[i] = w->pending[--w->count];
            if (!p.created_only || !being_written(w, p.pid)) {
                ca__file_changed(w->ca, p.pid);
            }
            pelix__free(p.pid);
            continue;
        }
        if (next < 0 || w->pending[i].due < next) {
            next = w->pending[i].due;
        }
        i++;
    }
    if (w->rescan && (next < 0 || w->rescan_due < next)) {
        next = w->rescan_due;
    }
    return next < 0 ? -1 : (int)(next - now > 0 ? next - now : 0);
}

static void *run(void *arg)
{
    watcher_t *w = arg;
    int timeout = -1;

    for (;;) {
        struct pollfd fds[2] = {{w->inotify_fd, POLLIN, 0}, {w->stop_fd, POLLIN, 0}};
        int n = poll(fds, 2, timeout);
        if (n < 0 && errno != EINTR) {
            break;
        }
        if (fds[1].revents) {
            break;
        }
        if (fds[0].revents) {
            read_events(w);
        }
        timeout = apply_due(w);
    }
    return NULL;
}

int watcher__start(pelix_configadmin_t *ca, const char *folder, const pelix_logger_t *logger,
                   watcher_t **ret, pelix_error_t *err)
{
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
                          IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
    watcher_t *w = pelix__calloc(1, sizeof(*w));
    int rc;

    if (!w || !(w->folder = pelix__strdup(folder))) {
        pelix__free(w);
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    w->ca = ca;
    w->logger = logger;
    w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->inotify_fd < 0 || w->stop_fd < 0 || inotify_add_watch(w->inotify_fd, folder, mask) < 0) {
        rc = -errno;
        pelix__error(err, rc, -1, "cannot watch '%s': %s", folder, strerror(-rc));
        goto fail;
    }
    rc = -pthread_create(&w->thread, NULL, run, w);
    if (rc < 0) {
        pelix__error(err, rc, -1, "cannot start the folder watcher");
        goto fail;
    }
    *ret = w;
    return 0;
fail:
    if (w->inotify_fd >= 0) {
        close(w->inotify_fd);
    }
    if (w->stop_fd >= 0) {
        close(w->stop_fd);
    }
    pelix__free(w->folder);
    pelix__free(w);
    return rc;
}

void watcher__stop(watcher_t *w)
{
    uint64_t one = 1;

    if (!w) {
        return;
    }
    while (write(w->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->count; i++) {
        pelix__free(w->pending[i].pid);
    }
    pelix__free(w->pending);
    close(w->inotify_fd);
    close(w->stop_fd);
    pelix__free(w->folder);
    pelix__free(w);
}
