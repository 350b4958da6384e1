/* Test brokers (mosquitto processes) and blackhole listeners; see broker.h. */
#include "integration/broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tb_broker {
    int port;
    pid_t pid; /* 0 when stopped */
    char *dir;
    char *conf_path;
    char *log_path;
    char *out_path;
    char *exe;
    bool quiet;
};

/* ---- small helpers --------------------------------------------------------------------------- */

static void tb_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void tb_error(const char *fmt, ...)
{
    va_list ap;

    fputs("[tb] ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static char *tb_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *tb_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in addr;

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    return addr;
}

/* 1 if a TCP connect to 127.0.0.1:port succeeds (a listener is there), 0 otherwise. A
 * self-connection (the kernel picking the destination port as source port while nothing listens,
 * possible for ports of the ephemeral range) counts as no listener. */
static int tcp_probe(int port)
{
    struct sockaddr_in addr = loopback(port);
    struct sockaddr_in local;
    socklen_t len = sizeof(local);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = 0;

    if (fd < 0) {
        return 0;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
        ok = 1;
        if (getsockname(fd, (struct sockaddr *)&local, &len) == 0 &&
            ntohs(local.sin_port) == port) {
            ok = 0;
        }
    }
    close(fd);
    return ok;
}

int tb_free_port(void)
{
    struct sockaddr_in addr = loopback(0);
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    if (fd < 0) {
        tb_error("socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        port = ntohs(addr.sin_port);
    } else {
        tb_error("bind/getsockname 127.0.0.1:0: %s", strerror(errno));
    }
    close(fd);
    return port;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- safety net: brokers still running at exit are killed, their folders removed ----------- */

#define TB_MAX_LIVE 64

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static tb_broker_t *live[TB_MAX_LIVE]; /* brokers started and not freed */
static pthread_once_t live_once = PTHREAD_ONCE_INIT;

static void live_cleanup(void)
{
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < TB_MAX_LIVE; i++) {
        tb_broker_t *b = live[i];
        if (!b) {
            continue;
        }
        if (b->pid > 0) {
            kill(b->pid, SIGKILL);
            while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR) {
            }
            b->pid = 0;
        }
        remove_tree(b->dir);
        live[i] = NULL; /* the memory stays: never freed twice, still reachable for LSan */
    }
    pthread_mutex_unlock(&live_lock);
}

static void live_init(void)
{
    atexit(live_cleanup);
}

static void live_set(tb_broker_t *b, bool add)
{
    pthread_once(&live_once, live_init);
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < TB_MAX_LIVE; i++) {
        if (add ? live[i] == NULL : live[i] == b) {
            live[i] = add ? b : NULL;
            break;
        }
    }
    pthread_mutex_unlock(&live_lock);
}

/* ---- the broker process ---------------------------------------------------------------------- */

/* The mosquitto executable: $TB_MOSQUITTO, /usr/sbin/mosquitto, or the first in PATH; malloc'ed,
 * NULL if none. */
static char *find_mosquitto(void)
{
    const char *env = getenv("TB_MOSQUITTO");
    const char *path = getenv("PATH");

    if (env && *env) {
        return strdup(env);
    }
    if (access("/usr/sbin/mosquitto", X_OK) == 0) {
        return strdup("/usr/sbin/mosquitto");
    }
    while (path && *path) {
        size_t n = strcspn(path, ":");
        char *candidate = tb_printf("%.*s/mosquitto", (int)n, path);
        if (candidate && n > 0 && access(candidate, X_OK) == 0) {
            return candidate;
        }
        free(candidate);
        path += n;
        if (*path == ':') {
            path++;
        }
    }
    return NULL;
}

/* Lines of the file containing `needle` and, if not NULL, `needle2`. */
static int count_lines(const char *path, const char *needle, const char *needle2)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int count = 0;

    if (!f) {
        return 0;
    }
    while (getline(&line, &cap, f) >= 0) {
        if (strstr(line, needle) && (!needle2 || strstr(line, needle2))) {
            count++;
        }
    }
    free(line);
    fclose(f);
    return count;
}

static void dump_file(const char *title, const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[1024];
    size_t n;

    fprintf(stderr, "[tb] ---- %s (%s) ----\n", title, path);
    if (!f) {
        fprintf(stderr, "[tb] (cannot read: %s)\n", strerror(errno));
        return;
    }
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        fwrite(buf, 1, n, stderr);
    }
    fclose(f);
}

void tb_broker_dump(const tb_broker_t *b)
{
    if (!b) {
        return;
    }
    dump_file("mosquitto.conf", b->conf_path);
    dump_file("mosquitto.out", b->out_path);
    dump_file("mosquitto.log", b->log_path);
}

static int write_config(tb_broker_t *b, const char *extra)
{
    FILE *f = fopen(b->conf_path, "w");
    int ok;

    if (!f) {
        tb_error("cannot write %s: %s", b->conf_path, strerror(errno));
        return -1;
    }
    fprintf(f, "listener %d 127.0.0.1\n", b->port);
    fprintf(f, "allow_anonymous true\n");
    fprintf(f, "persistence false\n");
    fprintf(f, "log_dest file %s\n", b->log_path);
    fprintf(f, "%s",
            b->quiet ? "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
                     : "log_type all\n");
    if (geteuid() == 0) {
        /* Otherwise mosquitto 2.0 drops to the "mosquitto" user, which cannot write the log in
         * our 0700 folder. */
        fprintf(f, "user root\n");
    }
    if (extra) {
        fprintf(f, "%s\n", extra);
    }
    ok = ferror(f) == 0;
    if (fclose(f) != 0 || !ok) {
        tb_error("cannot write %s", b->conf_path);
        return -1;
    }
    return 0;
}

/* Reaps the broker process if it exited; true if it did (or was already reaped). */
static bool reap_if_exited(tb_broker_t *b, int *status)
{
    pid_t r;

    if (b->pid == 0) {
        return true;
    }
    r = waitpid(b->pid, status, WNOHANG);
    if (r == b->pid || (r < 0 && errno == ECHILD)) {
        b->pid = 0;
        return true;
    }
    return false;
}

/* fork/exec mosquitto, then waits until it runs and accepts connections. */
static int spawn(tb_broker_t *b)
{
    char *const argv[] = {b->exe, "-c", b->conf_path, NULL};
    const char *running = "mosquitto version";
    int before = count_lines(b->log_path, running, " running");
    pid_t parent = getpid();
    long long deadline;
    pid_t pid;
    int status = 0;

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        tb_error("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Child: async-signal-safe calls only. */
        int out = open(b->out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int null = open("/dev/null", O_RDONLY);

        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) {
            _exit(127);
        }
        if (out < 0 || null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
            _exit(127);
        }
        /* No descriptor of the test (client sockets, blackhole listeners) leaks into it. */
        if (close_range(3, ~0U, 0) < 0) {
            for (int fd = 3; fd < 4096; fd++) {
                close(fd);
            }
        }
        execv(b->exe, argv);
        _exit(127);
    }
    b->pid = pid;

    deadline = now_ms() + TB_WAIT_MS;
    for (;;) {
        if (reap_if_exited(b, &status)) {
            tb_error("mosquitto (%s) exited at start-up (status 0x%x)", b->exe, status);
            tb_broker_dump(b);
            return -1;
        }
        if (count_lines(b->log_path, running, " running") > before && tcp_probe(b->port)) {
            return 0;
        }
        if (now_ms() > deadline) {
            break;
        }
        sleep_ms(10);
    }
    tb_error("mosquitto did not accept connections on port %d within %d ms", b->port, TB_WAIT_MS);
    tb_broker_dump(b);
    tb_broker_stop(b);
    return -1;
}

tb_broker_t *tb_broker_start(const tb_broker_options_t *opts)
{
    const char *base = getenv("TMPDIR");
    tb_broker_t *b = calloc(1, sizeof(*b));

    if (!b) {
        return NULL;
    }
    if (!base || !*base) {
        base = "/tmp";
    }
    b->dir = tb_printf("%s/pelix-tb-XXXXXX", base);
    if (!b->dir || !mkdtemp(b->dir)) {
        tb_error("cannot create a folder under %s: %s", base, strerror(errno));
        free(b->dir);
        free(b);
        return NULL;
    }
    live_set(b, true);
    b->conf_path = tb_printf("%s/mosquitto.conf", b->dir);
    b->log_path = tb_printf("%s/mosquitto.log", b->dir);
    b->out_path = tb_printf("%s/mosquitto.out", b->dir);
    b->exe = find_mosquitto();
    b->port = opts && opts->port > 0 ? opts->port : tb_free_port();
    b->quiet = opts && opts->quiet;
    if (!b->conf_path || !b->log_path || !b->out_path) {
        tb_error("out of memory");
        goto fail;
    }
    if (!b->exe) {
        tb_error("mosquitto not found (/usr/sbin/mosquitto, PATH; or set TB_MOSQUITTO)");
        goto fail;
    }
    if (b->port <= 0 || write_config(b, opts ? opts->extra_config : NULL) < 0 || spawn(b) < 0) {
        goto fail;
    }
    return b;

fail:
    tb_broker_free(b);
    return NULL;
}

int tb_broker_port(const tb_broker_t *b)
{
    return b->port;
}

pid_t tb_broker_pid(const tb_broker_t *b)
{
    return b->pid;
}

const char *tb_broker_dir(const tb_broker_t *b)
{
    return b->dir;
}

bool tb_broker_running(const tb_broker_t *b)
{
    return b->pid != 0;
}

int tb_broker_stop(tb_broker_t *b)
{
    long long deadline;

    if (b->pid != 0) {
        pid_t pid = b->pid;
        kill(pid, SIGTERM);
        deadline = now_ms() + TB_WAIT_MS;
        while (!reap_if_exited(b, NULL) && now_ms() < deadline) {
            sleep_ms(5);
        }
        if (b->pid != 0) {
            tb_error("mosquitto %d ignored SIGTERM for %d ms: SIGKILL", (int)pid, TB_WAIT_MS);
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            }
            b->pid = 0;
        }
    }
    deadline = now_ms() + TB_WAIT_MS;
    while (tcp_probe(b->port)) {
        if (now_ms() > deadline) {
            tb_error("port %d still accepts connections after the broker stopped", b->port);
            return -1;
        }
        sleep_ms(10);
    }
    return 0;
}

int tb_broker_restart(tb_broker_t *b)
{
    if (b->pid != 0 && tb_broker_stop(b) < 0) {
        return -1;
    }
    return spawn(b);
}

void tb_broker_free(tb_broker_t *b)
{
    if (!b) {
        return;
    }
    if (b->pid != 0) {
        tb_broker_stop(b);
    }
    live_set(b, false);
    if (b->dir) {
        remove_tree(b->dir);
    }
    free(b->dir);
    free(b->conf_path);
    free(b->log_path);
    free(b->out_path);
    free(b->exe);
    free(b);
}

int tb_broker_log_contains(const tb_broker_t *b, const char *needle)
{
    return count_lines(b->log_path, needle, NULL);
}

bool tb_broker_wait_log(const tb_broker_t *b, const char *needle, int count, long timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    for (;;) {
        if (tb_broker_log_contains(b, needle) >= count) {
            return true;
        }
        if (now_ms() > deadline) {
            return false;
        }
        sleep_ms(10);
    }
}

/* ---- blackhole ------------------------------------------------------------------------------- */

struct tb_blackhole {
    int port;
    int listen_fd;
    int wake[2]; /* pipe: a byte written to wake[1] stops the thread */
    pthread_t thread;
    pthread_mutex_t lock;
    int *fds; /* accepted connections, under lock */
    int count;
    int cap;
};

static void *blackhole_run(void *arg)
{
    tb_blackhole_t *h = arg;

    for (;;) {
        struct pollfd pfd[2] = {{h->listen_fd, POLLIN, 0}, {h->wake[0], POLLIN, 0}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (pfd[1].revents) {
            break;
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) {
                continue;
            }
            pthread_mutex_lock(&h->lock);
            if (h->count == h->cap) {
                int cap = h->cap ? h->cap * 2 : 8;
                int *fds = realloc(h->fds, (size_t)cap * sizeof(*fds));
                if (!fds) {
                    pthread_mutex_unlock(&h->lock);
                    close(fd);
                    continue;
                }
                h->fds = fds;
                h->cap = cap;
            }
            h->fds[h->count++] = fd;
            pthread_mutex_unlock(&h->lock);
        }
    }
    return NULL;
}

tb_blackhole_t *tb_blackhole_start(void)
{
    tb_blackhole_t *h = calloc(1, sizeof(*h));
    struct sockaddr_in addr = loopback(0);
    socklen_t len = sizeof(addr);

    if (!h) {
        return NULL;
    }
    h->wake[0] = h->wake[1] = -1;
    pthread_mutex_init(&h->lock, NULL);
    h->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->listen_fd < 0 || bind(h->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        getsockname(h->listen_fd, (struct sockaddr *)&addr, &len) < 0 ||
        listen(h->listen_fd, 64) < 0 || pipe2(h->wake, O_CLOEXEC) < 0) {
        tb_error("blackhole listener: %s", strerror(errno));
        goto fail;
    }
    h->port = ntohs(addr.sin_port);
    if (pthread_create(&h->thread, NULL, blackhole_run, h) != 0) {
        tb_error("blackhole thread: cannot create");
        goto fail;
    }
    return h;

fail:
    if (h->listen_fd >= 0) {
        close(h->listen_fd);
    }
    if (h->wake[0] >= 0) {
        close(h->wake[0]);
        close(h->wake[1]);
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
    return NULL;
}

int tb_blackhole_port(const tb_blackhole_t *h)
{
    return h->port;
}

int tb_blackhole_accepted(tb_blackhole_t *h)
{
    int n;

    pthread_mutex_lock(&h->lock);
    n = h->count;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void tb_blackhole_free(tb_blackhole_t *h)
{
    char byte = 0;

    if (!h) {
        return;
    }
    while (write(h->wake[1], &byte, 1) < 0 && errno == EINTR) {
    }
    pthread_join(h->thread, NULL);
    close(h->listen_fd);
    close(h->wake[0]);
    close(h->wake[1]);
    for (int i = 0; i < h->count; i++) {
        close(h->fds[i]);
    }
    free(h->fds);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- synhole --------------------------------------------------------------------------------- */

#define SYNHOLE_FILL 4

struct tb_synhole {
    int port;
    int listen_fd;
    int fill[SYNHOLE_FILL]; /* connections left in the accept queue */
};

/* A non-blocking connect to 127.0.0.1:port; its socket, or -1. */
static int start_connect(int port)
{
    struct sockaddr_in addr = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

tb_synhole_t *tb_synhole_start(void)
{
    tb_synhole_t *h = calloc(1, sizeof(*h));
    struct sockaddr_in addr = loopback(0);
    socklen_t len = sizeof(addr);
    int probe = -1;

    if (!h) {
        return NULL;
    }
    for (int i = 0; i < SYNHOLE_FILL; i++) {
        h->fill[i] = -1;
    }
    h->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->listen_fd < 0 || bind(h->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        getsockname(h->listen_fd, (struct sockaddr *)&addr, &len) < 0 ||
        listen(h->listen_fd, 0) < 0) {
        tb_error("synhole listener: %s", strerror(errno));
        tb_synhole_free(h);
        return NULL;
    }
    h->port = ntohs(addr.sin_port);
    for (int i = 0; i < SYNHOLE_FILL; i++) {
        h->fill[i] = start_connect(h->port);
    }
    sleep_ms(100);
    probe = start_connect(h->port);
    struct pollfd pfd = {probe, POLLOUT, 0};
    if (probe < 0 || poll(&pfd, 1, 300) != 0) {
        tb_error("synhole: a connect to port %d completed: the queue is not full", h->port);
        if (probe >= 0) {
            close(probe);
        }
        tb_synhole_free(h);
        return NULL;
    }
    close(probe);
    return h;
}

int tb_synhole_port(const tb_synhole_t *h)
{
    return h->port;
}

void tb_synhole_free(tb_synhole_t *h)
{
    if (!h) {
        return;
    }
    if (h->listen_fd >= 0) {
        close(h->listen_fd);
    }
    for (int i = 0; i < SYNHOLE_FILL; i++) {
        if (h->fill[i] >= 0) {
            close(h->fill[i]);
        }
    }
    free(h);
}
