/*
 * The network thread: one epoll over every connection's socket and an eventfd for commands.
 * Commands (mqtt__post) are the only way other threads change the service's state; timers
 * (backoff, CONNACK deadline, keepalive) are the connections' `due`/`next_misc`, scanned after
 * each wake-up. Connections whose socket leaves epoll stay referenced until the end of the batch
 * of events being handled, so a later event of the same batch never reaches freed memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mqtt/mqtt_internal.h"

static _Thread_local const mqtt_service_t *loop_of_thread;

bool mqtt__on_loop(const mqtt_service_t *s)
{
    return loop_of_thread == s;
}

static int enqueue(mqtt_service_t *s, command_t *c, bool wait);

int mqtt__post(mqtt_service_t *s, mqtt_cmd_fn fn, void *arg, bool wait)
{
    command_t local = {0}, *c;

    if (mqtt__on_loop(s)) {
        fn(s, arg);
        return 0;
    }
    c = wait ? &local : pelix__calloc(1, sizeof(*c));
    if (!c) {
        return -ENOMEM;
    }
    c->fn = fn;
    c->arg = arg;
    c->wait = wait;
    return enqueue(s, c, wait);
}

int mqtt__post_embedded(mqtt_service_t *s, command_t *c, mqtt_cmd_fn fn, void *arg)
{
    if (mqtt__on_loop(s)) {
        fn(s, arg);
        return 0;
    }
    memset(c, 0, sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    c->embedded = true;
    return enqueue(s, c, false);
}

void mqtt__loop_wake(mqtt_service_t *s)
{
    uint64_t one = 1;

    /* One write until the network thread takes it (run_commands): a burst of publishes from any
     * number of threads costs one system call, not one each. */
    if (!atomic_exchange(&s->wake_pending, true)) {
        while (write(s->evfd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
}

static int enqueue(mqtt_service_t *s, command_t *c, bool wait)
{
    pthread_mutex_lock(&s->cmd_lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->cmd_lock);
        if (!wait && !c->embedded) {
            pelix__free(c);
        }
        return -ESHUTDOWN;
    }
    if (s->cmd_tail) {
        s->cmd_tail->next = c;
    } else {
        s->cmd_head = c;
    }
    s->cmd_tail = c;
    pthread_mutex_unlock(&s->cmd_lock);
    mqtt__loop_wake(s);
    if (wait) {
        pthread_mutex_lock(&s->cmd_lock);
        while (!c->done) {
            pthread_cond_wait(&s->cmd_cond, &s->cmd_lock);
        }
        pthread_mutex_unlock(&s->cmd_lock);
    }
    return 0;
}

/* Runs the queued commands; true when the service stops. */
static bool run_commands(mqtt_service_t *s)
{
    command_t *c, *next;
    uint64_t n;
    bool stop;

    /* The eventfd read first, then the flag cleared, then the commands and writes looked at: a
     * wake after the read either finds the flag set (and its work is looked at below) or writes
     * the eventfd again. Clearing it before the read could swallow the write of a wake that set
     * it, leaving it set and the eventfd empty: every later wake would be lost. */
    while (read(s->evfd, &n, sizeof(n)) < 0 && errno == EINTR) {
    }
    atomic_exchange(&s->wake_pending, false);
    pthread_mutex_lock(&s->cmd_lock);
    c = s->cmd_head;
    s->cmd_head = s->cmd_tail = NULL;
    pthread_mutex_unlock(&s->cmd_lock);
    for (; c; c = next) {
        /* An embedded command may live in what its function frees: read it all before. */
        bool embedded = c->embedded;
        next = c->next;
        if (embedded) {
            c->fn(s, c->arg);
            continue;
        }
        c->fn(s, c->arg);
        if (c->wait) {
            pthread_mutex_lock(&s->cmd_lock);
            c->done = true;
            pthread_cond_broadcast(&s->cmd_cond);
            pthread_mutex_unlock(&s->cmd_lock);
        } else {
            pelix__free(c);
        }
    }
    pthread_mutex_lock(&s->cmd_lock);
    stop = s->stopping && !s->cmd_head;
    pthread_mutex_unlock(&s->cmd_lock);
    return stop;
}

/*
 * The socket is watched through a duplicate descriptor of our own: libmosquitto may close its
 * socket before we unwatch it, and a forked child (the embedded broker) may keep the socket's
 * open file alive; with its own descriptor the loop can always remove the registration, so no
 * event ever names a connection that is gone.
 */
void mqtt__loop_watch(mqtt_service_t *s, conn_t *c, int sock, bool want_write)
{
    bool reading = !c->napping; /* a coalescing pause: not woken for what arrives */
    struct epoll_event ev = {.events = (reading ? EPOLLIN : 0u) | (want_write ? EPOLLOUT : 0u),
                             .data.ptr = c};
    int efd;

    if (c->sock == sock) {
        if (c->want_write != want_write || c->reading != reading) {
            epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->efd, &ev);
            c->want_write = want_write;
            c->reading = reading;
        }
        return;
    }
    if (c->sock >= 0) {
        mqtt__loop_unwatch(s, c);
    }
    efd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (efd < 0) {
        return;
    }
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, efd, &ev) == 0) {
        atomic_fetch_add(&c->refs, 1);
        c->sock = sock;
        c->efd = efd;
        c->want_write = want_write;
        c->reading = reading;
    } else {
        close(efd);
    }
}

/* Connections unwatched during the current batch: released after it. */
static _Thread_local conn_t **deferred;
static _Thread_local size_t ndeferred, capdeferred;

void mqtt__loop_unwatch(mqtt_service_t *s, conn_t *c)
{
    c->napping = c->coalescing = false; /* a new socket starts reading at once */
    c->hot = 0;
    if (c->sock < 0) {
        return;
    }
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->efd, NULL);
    close(c->efd);
    c->sock = c->efd = -1;
    if (pelix__grow((void **)&deferred, &capdeferred, ndeferred + 1, sizeof(*deferred)) == 0) {
        deferred[ndeferred++] = c;
    } else {
        /* Cannot defer: keep the reference (a bounded leak beats a use after free). */
        pelix__log(&s->logger, PELIX_LOG_ERROR, MODULE, "out of memory releasing a connection");
    }
}

static void release_deferred(void)
{
    for (size_t i = 0; i < ndeferred; i++) {
        mqtt__conn_unref(deferred[i]);
    }
    ndeferred = 0;
}

static int next_timeout(mqtt_service_t *s, int64_t now)
{
    int64_t next = -1;
    size_t pos = 0;
    void *value;

    while (pelix__map_next(&s->conns, &pos, NULL, NULL, &value)) {
        const conn_t *c = value;
        int64_t t = c->state == CONN_CONNECTED ? c->next_misc : c->due;
        if (next < 0 || t < next) {
            next = t;
        }
    }
    if (next < 0) {
        return -1;
    }
    return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

/* Waits for events until the next timer (ms, -1: none) or the next coalescing pause's end (us,
 * INT64_MAX: none), whichever comes first. */
static int wait_events(mqtt_service_t *s, struct epoll_event *events, int max, int timeout_ms,
                       int64_t nap_us)
{
    int64_t now_us;

    if (nap_us != INT64_MAX) {
        now_us = pelix__now_us();
        int64_t wait_us = nap_us > now_us ? nap_us - now_us : 0;
        if (timeout_ms < 0 || wait_us < (int64_t)timeout_ms * 1000) {
            struct timespec ts = {.tv_sec = wait_us / 1000000,
                                  .tv_nsec = (long)(wait_us % 1000000) * 1000};
            int n = epoll_pwait2(s->epfd, events, max, &ts, NULL);
            if (n >= 0 || errno != ENOSYS) {
                return n;
            }
            timeout_ms = (int)((wait_us + 999) / 1000); /* kernel before 5.11 */
        }
    }
    return epoll_wait(s->epfd, events, max, timeout_ms);
}

static void *run(void *arg)
{
    mqtt_service_t *s = arg;
    struct epoll_event events[64];
    int64_t nap = INT64_MAX; /* the next end of a coalescing pause (us) */
    bool stop = false;

    loop_of_thread = s;
    while (!stop) {
        int n = wait_events(s, events, 64, next_timeout(s, pelix__now_ms()), nap);
        for (int i = 0; i < n; i++) {
            if (!events[i].data.ptr) {
                stop = run_commands(s);
            } else {
                mqtt__conn_io(events[i].data.ptr, events[i].events);
            }
        }
        size_t pos = 0;
        void *value;
        int64_t now_us = pelix__now_us(), now = now_us / 1000;
        nap = INT64_MAX;
        while (pelix__map_next(&s->conns, &pos, NULL, NULL, &value)) {
            mqtt__conn_timer(value, now);
            int64_t t = mqtt__conn_nap(value, now_us);
            nap = t < nap ? t : nap;
        }
        release_deferred();
    }
    pelix__free(deferred);
    deferred = NULL;
    capdeferred = 0;
    loop_of_thread = NULL;
    return NULL;
}

int mqtt__loop_start(mqtt_service_t *s)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    int rc;

    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->epfd < 0 || s->evfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev) < 0) {
        rc = -errno;
        goto fail;
    }
    rc = -pthread_create(&s->thread, NULL, run, s);
    if (rc == 0) {
        return 0;
    }
fail:
    if (s->epfd >= 0) {
        close(s->epfd);
    }
    if (s->evfd >= 0) {
        close(s->evfd);
    }
    s->epfd = s->evfd = -1;
    return rc;
}

static void stop_cmd(mqtt_service_t *s, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&s->cmd_lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->cmd_lock);
}

void mqtt__loop_stop(mqtt_service_t *s)
{
    if (s->epfd < 0) {
        return;
    }
    /* Embedded: stopping needs no memory. */
    mqtt__post_embedded(s, &s->stop_cmd, stop_cmd, NULL);
    pthread_join(s->thread, NULL);
    close(s->epfd);
    close(s->evfd);
    s->epfd = s->evfd = -1;
}
