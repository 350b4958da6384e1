/*
 * The embedded default broker: a private mosquitto child process on a free loopback port, with
 * its configuration in a temporary folder, killed with this process (PR_SET_PDEATHSIG and a stop
 * at exit), and the `mqtt.connector` configuration that points the service at it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pelix/mqtt.h>

#include "app.h"
#include "util/util.h"

#define MODULE "pelix-mqtt"
#define START_WAIT_MS 5000

struct app_broker {
    pid_t pid;
    int port;
    char dir[256];
    char pid_text[256]; /* its configuration's PID */
};

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

/* The mosquitto executable: /usr/sbin/mosquitto (Debian, not in a user's PATH), or in PATH. */
static bool find_mosquitto(char *out, size_t size)
{
    const char *path = getenv("PATH");

    if (access("/usr/sbin/mosquitto", X_OK) == 0) {
        snprintf(out, size, "/usr/sbin/mosquitto");
        return true;
    }
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(out, size, "%.*s/mosquitto", (int)n, path) < size &&
            access(out, X_OK) == 0) {
            return true;
        }
        path += n + (path[n] == ':');
    }
    return false;
}

static int free_port(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static bool accepts(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void app_broker_stop(app_broker_t *b)
{
    if (!b) {
        return;
    }
    if (b->pid > 0) {
        long long deadline = now_ms() + 2000;
        kill(b->pid, SIGTERM);
        while (waitpid(b->pid, NULL, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(b->pid, SIGKILL);
                waitpid(b->pid, NULL, 0);
                break;
            }
            sleep_ms(10);
        }
    }
    nftw(b->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(b);
}

/* Writes the broker's configuration; 0 or -errno. */
static int write_config(const app_broker_t *b, const char *conf)
{
    FILE *f = fopen(conf, "w");
    int ok;

    if (!f) {
        return -errno;
    }
    fprintf(f,
            "# The embedded broker of pelix-mqtt (private, loopback only).\n"
            "listener %d 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest file %s/mosquitto.log\n",
            b->port, b->dir);
    if (geteuid() == 0) {
        fprintf(f, "user root\n"); /* mosquitto would drop to a user that cannot write here */
    }
    ok = !ferror(f);
    return fclose(f) == 0 && ok ? 0 : -EIO;
}

/* Starts mosquitto; the broker, or NULL with the reason in `why`. */
static app_broker_t *start(char *why, size_t size)
{
    char exe[256], conf[300], out[300];
    const char *base = getenv("TMPDIR");
    app_broker_t *b = calloc(1, sizeof(*b));
    pid_t parent = getpid();
    long long deadline;

    if (!b) {
        snprintf(why, size, "out of memory");
        return NULL;
    }
    if (!find_mosquitto(exe, sizeof(exe))) {
        snprintf(why, size,
                 "mosquitto is not installed (sudo apt-get install mosquitto); going on without "
                 "a broker");
        free(b);
        return NULL;
    }
    snprintf(b->dir, sizeof(b->dir), "%s/pelix-mqtt-broker-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(b->dir) || (b->port = free_port()) < 0) {
        snprintf(why, size, "cannot prepare it: %s", strerror(errno));
        free(b);
        return NULL;
    }
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", b->dir);
    snprintf(out, sizeof(out), "%s/mosquitto.out", b->dir);
    if (write_config(b, conf) < 0) {
        snprintf(why, size, "cannot write %s", conf);
        app_broker_stop(b);
        return NULL;
    }
    fflush(NULL);
    b->pid = fork();
    if (b->pid == 0) {
        char *const argv[] = {exe, "-c", conf, NULL};
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600), null = open("/dev/null", O_RDONLY);
        /* Dies with pelix-mqtt, even when it is killed (the main thread forked it). */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent || fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 ||
            dup2(fd, 2) < 0) {
            _exit(127);
        }
        setpgid(0, 0); /* a Ctrl-C on the terminal is for pelix-mqtt, which stops it */
        /* Not inherited: the signals pelix-mqtt blocks or ignores, its descriptors (sockets of
         * its connections, the configuration folder's watch). */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (close_range(3, ~0U, 0) < 0) {
            for (int i = 3; i < 1024; i++) {
                close(i);
            }
        }
        execv(exe, argv);
        _exit(127);
    }
    if (b->pid < 0) {
        snprintf(why, size, "cannot start %s: %s", exe, strerror(errno));
        b->pid = 0;
        app_broker_stop(b);
        return NULL;
    }
    deadline = now_ms() + START_WAIT_MS;
    while (!accepts(b->port)) {
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid || now_ms() > deadline) {
            snprintf(why, size, "%s did not start (see %s)", exe, out);
            b->pid = waitpid(b->pid, NULL, WNOHANG) == 0 ? b->pid : 0;
            app_broker_stop(b);
            return NULL;
        }
        sleep_ms(10);
    }
    return b;
}

void app_embedded_wait(pelix_registry_t *reg, const app_broker_t *b)
{
    long long deadline = now_ms() + START_WAIT_MS;
    char filter[300];

    if (!b) {
        return;
    }
    snprintf(filter, sizeof(filter), "(" PELIX_MQTT_PROP_ID "=%s)", b->pid_text);
    while (now_ms() < deadline) {
        long *ids = NULL;
        size_t n = 0;
        pelix_registry_find(reg, PELIX_MQTT_CONNECTION_SPEC, filter, &ids, &n, NULL);
        free(ids);
        if (n > 0) {
            return;
        }
        sleep_ms(10);
    }
}

app_broker_t *app_embedded_setup(pelix_configadmin_t *ca, const pelix_logger_t *log, bool disabled)
{
    pelix_configuration_t **list = NULL, *own = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    size_t count = 0, others = 0;
    app_broker_t *b = NULL;
    char why[1024];
    int rc;

    rc = pelix_configadmin_list_configurations(
        ca, "(service.factoryPid=" PELIX_MQTT_FACTORY_PID ")", &list, &count, &err);
    if (rc < 0) {
        pelix__log(log, PELIX_LOG_ERROR, MODULE, "embedded broker: cannot list configurations: %s",
                   err.text);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        pelix_props_t *p = NULL;
        if (pelix_configuration_get_properties(list[i], &p) == 0 && p &&
            pelix_props_get_bool(p, APP_EMBEDDED_PROP, false)) {
            if (!own) {
                own = pelix_configuration_ref(list[i]);
            }
        } else {
            others++;
        }
        pelix_props_free(p);
    }
    pelix_configuration_list_free(list, count);
    if (disabled || others > 0) {
        if (own) {
            pelix__log(log, PELIX_LOG_INFO, MODULE,
                       "embedded broker not started (%s); its configuration %s removed",
                       disabled ? "--no-embedded-broker" : "the folder configures a broker",
                       pelix_configuration_get_pid(own));
            pelix_configuration_delete(own, NULL);
            pelix_configuration_unref(own);
        }
        return NULL;
    }
    if (!(b = start(why, sizeof(why)))) {
        pelix__log(log, PELIX_LOG_WARNING, MODULE, "embedded broker: %s", why);
        pelix_configuration_unref(own);
        return NULL;
    }
    rc = own ? 0
             : pelix_configadmin_create_factory_configuration(ca, PELIX_MQTT_FACTORY_PID, &own,
                                                              &err);
    if (rc == 0) {
        pelix_props_t *p = pelix_props_new();
        rc = p ? 0 : -ENOMEM;
        if (rc == 0 && (pelix_props_set_string(p, "host", "127.0.0.1") < 0 ||
                        pelix_props_set_long(p, "port", b->port) < 0 ||
                        pelix_props_set_bool(p, APP_EMBEDDED_PROP, true) < 0)) {
            rc = -ENOMEM;
        }
        rc = rc == 0 ? pelix_configuration_update(own, p, &err) : (pelix_props_free(p), rc);
    }
    if (rc < 0) {
        pelix__log(log, PELIX_LOG_ERROR, MODULE, "embedded broker: cannot configure it: %s",
                   err.text[0] ? err.text : pelix_strerror(rc));
        pelix_configuration_unref(own);
        app_broker_stop(b);
        return NULL;
    }
    pelix__log(log, PELIX_LOG_INFO, MODULE,
               "embedded broker: mosquitto (pid %d) on 127.0.0.1:%d, configuration %s "
               "(--no-embedded-broker to go without)",
               (int)b->pid, b->port, pelix_configuration_get_pid(own));
    snprintf(b->pid_text, sizeof(b->pid_text), "%s", pelix_configuration_get_pid(own));
    pelix_configuration_unref(own);
    return b;
}
