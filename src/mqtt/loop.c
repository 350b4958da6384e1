/*
 * The network thread: one epoll over every connection's socket and an eventfd for commands.
 * Commands (mqtt__post) are the only way other threads change the service's state; timers
 * (backoff, CONNACK deadline, keepalive) are the connections' `due`/`next_misc`, scanned after
 * each wake-up. Connections whose socket leaves epoll stay referenced until the end of the batch
 * of events being handled, so a later event of the same batch never reaches freed memory.
 *
 * The network thread is a role: runner threads take it in turn (the relay). The leader runs the
 * loop; after each batch of events it may deliver the messages just read itself (run_listeners),
 * as a worker would, and meanwhile is not the network thread. It does so only while a spare
 * runner watches: a call that lasts a whole poll (RELAY_STALL_MS) makes the spare the leader,
 * which starts a new spare; the old leader, once its call returns, finds a spare and ends. Loop
 * state is only touched by the leader, handed over under relay_lock.
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

/* epoll_pwait2 (microsecond timeouts) answered ENOSYS once. */
static atomic_bool no_pwait2;

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
            if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
                int n = epoll_pwait2(s->epfd, events, max, &ts, NULL);
                if (n >= 0 || errno != ENOSYS) {
                    return n;
                }
                /* A kernel before 5.11 (or valgrind): not asked again. */
                atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
            }
            timeout_ms = (int)((wait_us + 999) / 1000);
        }
    }
    return epoll_wait(s->epfd, events, max, timeout_ms);
}

/* The spare's poll while the leader runs listener code; a run that lasts longer hands the lead
 * over (other connections wait at most about twice this for a listener that blocks). */
#define RELAY_STALL_MS 10
/* Polls without listener code run before the spare sleeps until the next run starts. */
#define RELAY_IDLE_POLLS 100

static void *runner(void *arg);

/* Starts one more runner, after joining those that ended (a runner that left the lead while in
 * listener code ends when it comes back and finds a spare); relay_lock held. 0 or -errno. */
static int spawn_runner(mqtt_service_t *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->nrunners; i++) {
        if (pthread_equal(s->runners[i], pthread_self()) ||
            pthread_tryjoin_np(s->runners[i], NULL) != 0) {
            s->runners[kept++] = s->runners[i];
        }
    }
    s->nrunners = kept;
    int rc =
        pelix__grow((void **)&s->runners, &s->caprunners, s->nrunners + 1, sizeof(*s->runners));
    if (rc == 0) {
        rc = -pthread_create(&s->runners[s->nrunners], NULL, runner, s);
    }
    if (rc == 0) {
        s->nrunners++;
    }
    return rc;
}

/*
 * Delivers the messages just read on this thread (mqtt__dispatch_run_here) instead of waking a
 * worker: one thread switch less per message, which under load cost the CPU of the rest of the
 * message and 30 us of latency. Listener code runs here, so the loop is left as between two
 * waits and the thread does not count as the network thread meanwhile (its calls into the
 * service post commands like any other thread's). True when this thread still leads after.
 */
static bool run_listeners(mqtt_service_t *s, uint64_t gen)
{
    bool wake, still;

    if (s->opts.direct_us <= 0 || !mqtt__dispatch_ready(s->dispatch)) {
        return true;
    }
    pthread_mutex_lock(&s->relay_lock);
    if (!s->relay_spare) {
        /* None to take the network over (starting, or a thread could not be started): the
         * workers deliver. */
        pthread_mutex_unlock(&s->relay_lock);
        mqtt__dispatch_wake(s->dispatch);
        return true;
    }
    s->relay_busy = true;
    s->relay_seq++;
    wake = s->relay_asleep;
    pthread_mutex_unlock(&s->relay_lock);
    if (wake) {
        pthread_cond_broadcast(&s->relay_cond);
    }
    loop_of_thread = NULL;
    mqtt__dispatch_run_here(s->dispatch);
    pthread_mutex_lock(&s->relay_lock);
    still = s->relay_gen == gen;
    if (still) {
        s->relay_busy = false;
    }
    pthread_mutex_unlock(&s->relay_lock);
    loop_of_thread = still ? s : NULL;
    return still;
}

/* Runs the loop while this thread leads; true when the service stops, false when another runner
 * took the lead while this one ran listener code. */
static bool lead(mqtt_service_t *s, uint64_t gen)
{
    struct epoll_event events[64];
    int64_t nap = 0; /* the connections' pauses are looked at first: a new leader knows none */
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
        if (!stop && !run_listeners(s, gen)) {
            return false;
        }
    }
    loop_of_thread = NULL;
    return true;
}

/* Waits as the spare (relay_lock held) until this runner takes the lead (true) or the loop
 * ended (false). */
static bool spare(mqtt_service_t *s)
{
    int idle = 0;

    s->relay_spare = true;
    while (!s->relay_stop && s->relay_led) {
        if (!s->relay_busy && idle >= RELAY_IDLE_POLLS) {
            s->relay_asleep = true;
            pthread_cond_wait(&s->relay_cond, &s->relay_lock);
            s->relay_asleep = false;
            idle = 0;
            continue;
        }
        bool busy = s->relay_busy;
        uint64_t seq = s->relay_seq;
        struct timespec until = pelix__deadline_ms(RELAY_STALL_MS);
        int rc = pthread_cond_timedwait(&s->relay_cond, &s->relay_lock, &until);
        if (rc == ETIMEDOUT && busy && s->relay_busy && s->relay_seq == seq && s->relay_led) {
            s->relay_led = false; /* the same run of listener code for a whole poll */
            break;
        }
        idle = s->relay_seq == seq && !s->relay_busy ? idle + 1 : 0;
    }
    s->relay_spare = false;
    return !s->relay_stop;
}

static void *runner(void *arg)
{
    mqtt_service_t *s = arg;

    pthread_mutex_lock(&s->relay_lock);
    for (;;) {
        if (s->relay_led && (s->relay_spare || !spare(s))) {
            break; /* the loop ended, or another spare is there: this one is not needed */
        }
        if (s->relay_stop) {
            break;
        }
        uint64_t gen = ++s->relay_gen;
        s->relay_led = true;
        s->relay_busy = false;
        if (s->opts.direct_us > 0 && !s->relay_spare && spawn_runner(s) < 0) {
            /* Without a spare, a listener that blocks holds the loop until it returns. */
            pelix__log(&s->logger, PELIX_LOG_WARNING, MODULE, "no spare network thread");
        }
        pthread_mutex_unlock(&s->relay_lock);
        bool stopped = lead(s, gen);
        pthread_mutex_lock(&s->relay_lock);
        if (stopped) {
            s->relay_stop = true;
            pthread_cond_broadcast(&s->relay_cond);
            break;
        }
    }
    pthread_mutex_unlock(&s->relay_lock);
    pelix__free(deferred);
    deferred = NULL;
    capdeferred = 0;
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
    mqtt__dispatch_host(s->dispatch, s->opts.direct_us);
    pthread_mutex_lock(&s->relay_lock);
    rc = spawn_runner(s); /* the leader; it starts the first spare */
    pthread_mutex_unlock(&s->relay_lock);
    if (rc == 0) {
        return 0;
    }
    mqtt__dispatch_host(s->dispatch, 0);
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
    pthread_mutex_lock(&s->relay_lock);
    while (!s->relay_stop) { /* until then a new leader may start (and join) runners */
        pthread_cond_wait(&s->relay_cond, &s->relay_lock);
    }
    for (size_t i = 0; i < s->nrunners; i++) {
        pthread_t t = s->runners[i];
        pthread_mutex_unlock(&s->relay_lock);
        pthread_join(t, NULL);
        pthread_mutex_lock(&s->relay_lock);
    }
    pthread_mutex_unlock(&s->relay_lock);
    mqtt__dispatch_host(s->dispatch, 0); /* what the leader left goes to the workers */
    pelix__free(s->runners);
    s->runners = NULL;
    s->nrunners = s->caprunners = 0;
    close(s->epfd);
    close(s->evfd);
    s->epfd = s->evfd = -1;
}
