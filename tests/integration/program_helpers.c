/* The pelix-mqtt program as a child process of a test; see program_helpers.h. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include "integration/program_helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PELIX_PROGRAM
#error "PELIX_PROGRAM (the path of pelix-mqtt) must be defined"
#endif

extern char **environ;

typedef struct pp_buf {
    char *data;
    size_t len, cap;
} pp_buf_t;

struct pp_proc {
    pid_t pid;
    int status; /* valid when reaped */
    bool reaped, tty;
    int in_fd;    /* the program's input (the terminal's master on a tty) */
    int rd_fd[2]; /* read ends of stdout, stderr (stderr -1 on a tty) */
    int wake_fd[2];
    pthread_t reader;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pp_buf_t buf[2];
};

long long pp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pp_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

void pp_init(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- work folders ---------------------------------------------------------------------------- */

char *pp_root_new(void)
{
    const char *base = getenv("TMPDIR");
    char path[4096], sub[4200];

    snprintf(path, sizeof(path), "%s/pelix-program-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path)) {
        return NULL;
    }
    snprintf(sub, sizeof(sub), "%s/tmp", path);
    mkdir(sub, 0700);
    return strdup(path);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void pp_root_free(char *root)
{
    if (root) {
        nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(root);
    }
}

void pp_mkconf(const char *root)
{
    char path[4200];

    pp_conf_path(root, NULL, path, sizeof(path));
    mkdir(path, 0700);
}

void pp_conf_path(const char *root, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/conf%s%s", root, name ? "/" : "", name ? name : "");
}

/* ---- the process ----------------------------------------------------------------------------- */

static void *reader_main(void *arg)
{
    pp_proc_t *p = arg;
    struct pollfd fds[3];
    char chunk[4096];
    int open_fds = p->rd_fd[1] >= 0 ? 2 : 1;

    fds[0] = (struct pollfd){.fd = p->rd_fd[0], .events = POLLIN};
    fds[1] = (struct pollfd){.fd = p->rd_fd[1], .events = POLLIN}; /* -1: ignored by poll */
    fds[2] = (struct pollfd){.fd = p->wake_fd[0], .events = POLLIN};
    while (open_fds > 0) {
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (fds[2].revents) {
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents) {
                continue;
            }
            ssize_t n = read(fds[i].fd, chunk, sizeof(chunk));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            pthread_mutex_lock(&p->lock);
            if (n > 0) {
                pp_buf_t *b = &p->buf[i];
                if (b->len + (size_t)n + 1 > b->cap) {
                    size_t cap = (b->len + (size_t)n + 1) * 2;
                    char *more = realloc(b->data, cap);
                    if (!more) {
                        abort();
                    }
                    b->data = more;
                    b->cap = cap;
                }
                memcpy(b->data + b->len, chunk, (size_t)n);
                b->len += (size_t)n;
                b->data[b->len] = '\0';
            } else { /* end of file (EIO on a terminal whose program exited) */
                fds[i].fd = -1;
                open_fds--;
            }
            pthread_cond_broadcast(&p->changed);
            pthread_mutex_unlock(&p->lock);
        }
    }
    return NULL;
}

/* The environment of the program: ours, with TMPDIR (and TERM on a terminal) replaced. */
static char **make_env(const char *tmpdir, bool tty)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n]) {
        n++;
    }
    env = calloc(n + 3, sizeof(char *));
    if (!env) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "TMPDIR=", 7) != 0 && strncmp(environ[i], "TERM=", 5) != 0) {
            env[k++] = environ[i];
        }
    }
    env[k++] = (char *)tmpdir;
    if (tty) {
        env[k++] = "TERM=xterm";
    }
    env[k] = NULL;
    return env;
}

pp_proc_t *pp_start(const char *root, bool with_conf, bool tty, const char *const *args)
{
    char conf[4200], tmpdir[4200];
    const char *argv[64];
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, argc = 0;
    pp_proc_t *p = calloc(1, sizeof(*p));
    char **env;

    snprintf(conf, sizeof(conf), "%s/conf", root);
    snprintf(tmpdir, sizeof(tmpdir), "TMPDIR=%s/tmp", root);
    const char *exe = getenv("PELIX_MQTT_PROGRAM");
    exe = exe && *exe ? exe : PELIX_PROGRAM;
    argv[argc++] = exe;
    if (with_conf) {
        argv[argc++] = "--conf";
        argv[argc++] = conf;
    }
    for (size_t i = 0; args && args[i] && argc < 62; i++) {
        argv[argc++] = args[i];
    }
    argv[argc] = NULL;
    env = make_env(tmpdir, tty);
    if (!p || !env || pipe2(p->wake_fd, O_CLOEXEC) < 0) {
        fprintf(stderr, "[pp] cannot prepare: %s\n", strerror(errno));
        free(env);
        free(p);
        return NULL;
    }
    p->tty = tty;
    p->rd_fd[1] = -1;
    if (tty) {
        struct winsize ws = {.ws_row = 24, .ws_col = 80};
        int master = -1;
        p->pid = forkpty(&master, NULL, NULL, &ws);
        if (p->pid == 0) {
            if (chdir(root) == 0) {
                execve(exe, (char *const *)argv, env);
            }
            _exit(127);
        }
        if (p->pid > 0) {
            fcntl(master, F_SETFD, FD_CLOEXEC);
            p->in_fd = master;
            p->rd_fd[0] = master;
        }
    } else {
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
            p->pid = -1;
        } else {
            p->pid = fork();
        }
        if (p->pid == 0) {
            if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0 ||
                chdir(root) < 0) {
                _exit(127);
            }
            execve(exe, (char *const *)argv, env);
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        close(err[1]);
        p->in_fd = in[1];
        p->rd_fd[0] = out[0];
        p->rd_fd[1] = err[0];
    }
    free(env);
    if (p->pid < 0) {
        fprintf(stderr, "[pp] cannot start %s: %s\n", exe, strerror(errno));
        p->reaped = true;
        pp_free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->changed, NULL);
    if (pthread_create(&p->reader, NULL, reader_main, p) != 0) {
        abort();
    }
    return p;
}

void pp_free(pp_proc_t *p)
{
    if (!p) {
        return;
    }
    if (p->pid > 0) {
        if (!p->reaped) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &p->status, 0);
            p->reaped = true;
        }
        /* Let the reader take what is left, then stop it. */
        while (write(p->wake_fd[1], "x", 1) < 0 && errno == EINTR) {
        }
        pthread_join(p->reader, NULL);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->changed);
    }
    int fds[] = {p->in_fd, p->rd_fd[0], p->rd_fd[1], p->wake_fd[0], p->wake_fd[1]};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] > 0 && (i != 1 || fds[1] != fds[0])) {
            close(fds[i]);
        }
    }
    free(p->buf[0].data);
    free(p->buf[1].data);
    free(p);
}

pid_t pp_pid(const pp_proc_t *p)
{
    return p->pid;
}

void pp_send_raw(pp_proc_t *p, const char *text)
{
    size_t len = strlen(text), done = 0;

    while (done < len) {
        ssize_t n = write(p->in_fd, text + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        assert_true(n > 0);
        done += (size_t)n;
    }
}

void pp_send(pp_proc_t *p, const char *fmt, ...)
{
    char line[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    pp_send_raw(p, line);
}

void pp_close_input(pp_proc_t *p)
{
    assert_false(p->tty);
    close(p->in_fd);
    p->in_fd = -1;
}

size_t pp_mark(pp_proc_t *p, pp_stream_t s)
{
    pthread_mutex_lock(&p->lock);
    size_t len = p->buf[s].len;
    pthread_mutex_unlock(&p->lock);
    return len;
}

/* Under the lock: the offset after `needle` at or after `from`, or -1. */
static long find_locked(pp_proc_t *p, pp_stream_t s, size_t from, const char *needle)
{
    const pp_buf_t *b = &p->buf[s];

    if (!b->data || from > b->len) {
        return -1;
    }
    const char *hit = strstr(b->data + from, needle);
    return hit ? (long)(hit - b->data + (long)strlen(needle)) : -1;
}

/* Waits on the condition until `deadline`; false when it passed. */
static bool wait_until(pp_proc_t *p, long long deadline)
{
    long long left = deadline - pp_now_ms();
    struct timespec ts;

    if (left <= 0) {
        return false;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    left = left > 100 ? 100 : left; /* wake up now and then: the deadline is monotonic */
    ts.tv_sec += (time_t)(left / 1000);
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&p->changed, &p->lock, &ts);
    return true;
}

long pp_wait(pp_proc_t *p, pp_stream_t s, size_t from, const char *needle, long timeout_ms)
{
    long long deadline = pp_now_ms() + timeout_ms;
    long at;

    pthread_mutex_lock(&p->lock);
    while ((at = find_locked(p, s, from, needle)) < 0 && wait_until(p, deadline)) {
    }
    pthread_mutex_unlock(&p->lock);
    return at;
}

size_t pp_expect(pp_proc_t *p, pp_stream_t s, size_t from, const char *needle)
{
    long at = pp_wait(p, s, from, needle, PP_WAIT_MS);

    if (at < 0) {
        pp_dump(p);
        fail_msg("'%s' not on %s (after offset %zu) within %d ms", needle,
                 s == PP_OUT ? "stdout" : "stderr", from, PP_WAIT_MS);
    }
    return (size_t)at;
}

int pp_count(pp_proc_t *p, pp_stream_t s, size_t from, size_t to, const char *needle)
{
    int count = 0;

    pthread_mutex_lock(&p->lock);
    const pp_buf_t *b = &p->buf[s];
    size_t end = to == 0 || to > b->len ? b->len : to, len = strlen(needle);
    for (size_t i = from; b->data && len > 0 && i + len <= end; i++) {
        if (memcmp(b->data + i, needle, len) == 0) {
            count++;
            i += len - 1;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return count;
}

void pp_text(pp_proc_t *p, pp_stream_t s, size_t from, size_t to, char *out, size_t size)
{
    pthread_mutex_lock(&p->lock);
    const pp_buf_t *b = &p->buf[s];
    size_t end = to == 0 || to > b->len ? b->len : to;
    size_t n = from < end ? end - from : 0;
    n = n < size - 1 ? n : size - 1;
    if (n > 0) {
        memcpy(out, b->data + from, n);
    }
    out[n] = '\0';
    pthread_mutex_unlock(&p->lock);
}

long pp_line(pp_proc_t *p, pp_stream_t s, size_t from, char *out, size_t size, long timeout_ms)
{
    long nl = pp_wait(p, s, from, "\n", timeout_ms);

    if (nl < 0) {
        out[0] = '\0';
        return -1;
    }
    pp_text(p, s, from, (size_t)nl - 1, out, size);
    size_t len = strlen(out);
    if (len > 0 && out[len - 1] == '\r') {
        out[len - 1] = '\0';
    }
    return nl;
}

void pp_dump(pp_proc_t *p)
{
    pthread_mutex_lock(&p->lock);
    fprintf(stderr, "---- pelix-mqtt (pid %d) stdout%s ----\n%s\n", (int)p->pid,
            p->tty ? " (terminal)" : "", p->buf[0].data ? p->buf[0].data : "");
    if (!p->tty) {
        fprintf(stderr, "---- stderr ----\n%s\n", p->buf[1].data ? p->buf[1].data : "");
    }
    fprintf(stderr, "---- end ----\n");
    pthread_mutex_unlock(&p->lock);
}

void pp_kill(pp_proc_t *p, int sig)
{
    if (!p->reaped) {
        kill(p->pid, sig);
    }
}

int pp_wait_exit(pp_proc_t *p, long timeout_ms)
{
    long long deadline = pp_now_ms() + timeout_ms;

    while (!p->reaped) {
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid) {
            p->reaped = true;
            break;
        }
        if (pp_now_ms() > deadline) {
            return -1;
        }
        pp_sleep_ms(10);
    }
    return p->status;
}

bool pp_running(pp_proc_t *p)
{
    return pp_wait_exit(p, 0) == -1;
}

/* Whether /proc says the process is a zombie (exited, not reaped by its parent). */
static bool zombie(pid_t pid)
{
    char path[64], line[512];
    FILE *f;
    bool z = false;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) != NULL) {
        if (fgets(line, sizeof(line), f)) {
            const char *close_paren = strrchr(line, ')');
            z = close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z';
        }
        fclose(f);
    }
    return z;
}

bool pp_pid_gone(pid_t pid, long timeout_ms)
{
    long long deadline = pp_now_ms() + timeout_ms;

    for (;;) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            return true;
        }
        if ((kill(pid, 0) < 0 && errno == ESRCH) || zombie(pid)) {
            return true;
        }
        if (pp_now_ms() > deadline) {
            return false;
        }
        pp_sleep_ms(20);
    }
}

void pp_kill_mosquitto(pid_t pid)
{
    char path[64], comm[64] = "";
    FILE *f;

    if (pid <= 0) {
        return;
    }
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    if ((f = fopen(path, "r")) != NULL) {
        if (!fgets(comm, sizeof(comm), f)) {
            comm[0] = '\0';
        }
        fclose(f);
    }
    if (strcmp(comm, "mosquitto\n") == 0) {
        kill(pid, SIGKILL);
        pp_pid_gone(pid, 2000);
    }
}

/* ---- files ----------------------------------------------------------------------------------- */

bool pp_write_file(const char *path, const char *text)
{
    char tmp[4200];
    const char *slash = strrchr(path, '/');
    int fd;
    bool ok;

    snprintf(tmp, sizeof(tmp), "%.*s/.pp-XXXXXX", slash ? (int)(slash - path) : 1,
             slash ? path : ".");
    fd = mkstemp(tmp);
    if (fd < 0) {
        return false;
    }
    ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
        unlink(tmp);
    }
    return ok;
}

bool pp_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

int pp_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (!d) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}
