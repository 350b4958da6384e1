/*
 * The fault-injecting TCP proxy of the integration tests (proxy.h).
 */
#include "integration/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 32

typedef struct pair {
    int client, target; /* -1: closed */
} pair_t;

struct tp_proxy {
    int listener, port, target_port;
    pthread_t thread;
    pthread_mutex_t lock;
    /* under lock */
    bool stop, stalled, refuse, cut_all, cut_mid, cut_done;
    int cut_type; /* tp_proxy_cut_before(), or 0 */
    long delay_ms;
    int accepted;
    /* the thread's */
    pair_t pairs[MAX_PAIRS];
};

static void close_pair(pair_t *p)
{
    if (p->client >= 0) {
        close(p->client);
    }
    if (p->target >= 0) {
        close(p->target);
    }
    p->client = p->target = -1;
}

static int connect_target(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static bool write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        buf += w;
        n -= (size_t)w;
    }
    return true;
}

/* Offset in `buf` of the first whole packet of MQTT type `type`, reading `n` bytes as whole
 * packets from the first; -1 if none. */
static ssize_t find_packet(const unsigned char *buf, ssize_t n, int type)
{
    ssize_t at = 0;

    while (at < n) {
        size_t len = 0, shift = 0;
        ssize_t i = at + 1;
        if (buf[at] >> 4 == type) {
            return at;
        }
        do {
            if (i >= n || shift > 21) {
                return -1;
            }
            len |= (size_t)(buf[i] & 0x7f) << shift;
            shift += 7;
        } while (buf[i++] & 0x80);
        at = i + (ssize_t)len;
    }
    return -1;
}

static void accept_one(tp_proxy_t *p, bool refuse)
{
    int c = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC), one = 1;

    if (c < 0) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->accepted++;
    pthread_mutex_unlock(&p->lock);
    if (refuse) {
        close(c);
        return;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int t = connect_target(p->target_port);
    for (size_t i = 0; t >= 0 && i < MAX_PAIRS; i++) {
        if (p->pairs[i].client < 0) {
            p->pairs[i] = (pair_t){c, t};
            return;
        }
    }
    close(c); /* target down, or too many connections: the client sees the connection close */
    if (t >= 0) {
        close(t);
    }
}

static void *run(void *arg)
{
    tp_proxy_t *p = arg;
    char buf[16384];

    for (;;) {
        struct pollfd fds[1 + 2 * MAX_PAIRS];
        size_t nfds = 0;
        pthread_mutex_lock(&p->lock);
        bool stop = p->stop, stalled = p->stalled, refuse = p->refuse, cut_all = p->cut_all;
        long delay = p->delay_ms;
        p->cut_all = false;
        pthread_mutex_unlock(&p->lock);
        if (stop) {
            break;
        }
        if (cut_all) {
            for (size_t i = 0; i < MAX_PAIRS; i++) {
                close_pair(&p->pairs[i]);
            }
        }
        fds[nfds++] = (struct pollfd){p->listener, POLLIN, 0};
        for (size_t i = 0; i < MAX_PAIRS && !stalled; i++) {
            if (p->pairs[i].client >= 0) {
                fds[nfds++] = (struct pollfd){p->pairs[i].client, POLLIN, 0};
                fds[nfds++] = (struct pollfd){p->pairs[i].target, POLLIN, 0};
            }
        }
        if (poll(fds, nfds, 10) <= 0) {
            continue;
        }
        if (fds[0].revents & POLLIN) {
            accept_one(p, refuse);
        }
        for (size_t k = 1; k < nfds; k++) {
            if (!fds[k].revents) {
                continue;
            }
            pair_t *pr = NULL;
            for (size_t i = 0; i < MAX_PAIRS && !pr; i++) {
                if (p->pairs[i].client == fds[k].fd || p->pairs[i].target == fds[k].fd) {
                    pr = &p->pairs[i];
                }
            }
            if (!pr) {
                continue; /* closed earlier in this round */
            }
            bool from_target = fds[k].fd == pr->target;
            int to = from_target ? pr->client : pr->target;
            ssize_t n = read(fds[k].fd, buf, sizeof(buf));
            if (n <= 0) {
                close_pair(pr);
                continue;
            }
            if (delay > 0) {
                struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
            pthread_mutex_lock(&p->lock);
            bool cut_mid = from_target && n >= 2 && p->cut_mid;
            ssize_t before = -1;
            if (from_target && p->cut_type) {
                before = find_packet((const unsigned char *)buf, n, p->cut_type);
            }
            if (cut_mid || before >= 0) {
                p->cut_mid = false;
                p->cut_type = 0;
                p->cut_done = true;
            }
            pthread_mutex_unlock(&p->lock);
            if (cut_mid || before >= 0) {
                write_all(to, buf, cut_mid ? (size_t)n / 2 : (size_t)before);
                close_pair(pr);
            } else if (!write_all(to, buf, (size_t)n)) {
                close_pair(pr);
            }
        }
    }
    for (size_t i = 0; i < MAX_PAIRS; i++) {
        close_pair(&p->pairs[i]);
    }
    return NULL;
}

tp_proxy_t *tp_proxy_start(int target_port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    tp_proxy_t *p = calloc(1, sizeof(*p));

    if (!p) {
        return NULL;
    }
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->target_port = target_port;
    for (size_t i = 0; i < MAX_PAIRS; i++) {
        p->pairs[i] = (pair_t){-1, -1};
    }
    p->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->listener < 0 || bind(p->listener, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(p->listener, 16) < 0 || getsockname(p->listener, (struct sockaddr *)&a, &len) < 0) {
        fprintf(stderr, "proxy: cannot listen: %s\n", strerror(errno));
        if (p->listener >= 0) {
            close(p->listener);
        }
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    pthread_mutex_init(&p->lock, NULL);
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        close(p->listener);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    return p;
}

int tp_proxy_port(const tp_proxy_t *p)
{
    return p->port;
}

#define SETTER(name, field, type)                                                                  \
    void name(tp_proxy_t *p, type v)                                                               \
    {                                                                                              \
        pthread_mutex_lock(&p->lock);                                                              \
        p->field = v;                                                                              \
        pthread_mutex_unlock(&p->lock);                                                            \
    }

SETTER(tp_proxy_stall, stalled, bool)
SETTER(tp_proxy_delay, delay_ms, long)
SETTER(tp_proxy_refuse, refuse, bool)

int tp_proxy_accepted(tp_proxy_t *p)
{
    pthread_mutex_lock(&p->lock);
    int n = p->accepted;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void tp_proxy_cut(tp_proxy_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->cut_all = true;
    pthread_mutex_unlock(&p->lock);
}

void tp_proxy_cut_mid_packet(tp_proxy_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->cut_mid = true;
    p->cut_done = false;
    pthread_mutex_unlock(&p->lock);
}

void tp_proxy_cut_before(tp_proxy_t *p, int type)
{
    pthread_mutex_lock(&p->lock);
    p->cut_type = type;
    p->cut_done = false;
    pthread_mutex_unlock(&p->lock);
}

bool tp_proxy_cut_done(tp_proxy_t *p)
{
    pthread_mutex_lock(&p->lock);
    bool done = p->cut_done;
    pthread_mutex_unlock(&p->lock);
    return done;
}

void tp_proxy_free(tp_proxy_t *p)
{
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    close(p->listener);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
