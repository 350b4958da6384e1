/*
 * Integration tests of TLS connections against mosquitto TLS listeners, with certificates made by
 * the test (openssl): a server verified against its CA, messages flowing; a server signed by
 * another CA refused; a certificate for another host name refused unless tls_insecure; a client
 * certificate with an encrypted key (its passphrase never logged) required by the broker; and
 * TLS settings refused with their reason.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "integration/broker.h"
#include "integration/client.h"
#include "integration/mqtt_fixture.h"

#define KEY_PASSWORD "k3y-Pa55phrase"

static char dir[64]; /* the certificates, made once for the suite */

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        fail_msg("failed: %s", cmd);
    }
}

/* A key and a certificate `name`.crt signed by `ca` for `host` (SAN), or a self-signed CA. */
static void make_cert(const char *name, const char *ca, const char *host, const char *pass)
{
    if (!ca) {
        run("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout %s.key -out %s.crt "
            "-days 2 -subj '/CN=%s' 2>/dev/null",
            dir, name, name, name);
        return;
    }
    run("cd %s && printf 'subjectAltName=%s\\n' > %s.ext && "
        "openssl req -newkey rsa:2048 %s%s -keyout %s.key -out %s.csr -subj '/CN=%s' 2>/dev/null "
        "&& openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key -CAcreateserial -out %s.crt "
        "-days 2 -extfile %s.ext 2>/dev/null",
        dir, host, name, pass ? "-passout pass:" : "-nodes", pass ? pass : "", name, name, name,
        name, ca, ca, name, name);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int suite_setup(void **st)
{
    (void)st;
    snprintf(dir, sizeof(dir), "/tmp/pelix-tls-XXXXXX");
    if (!mkdtemp(dir)) {
        return -1;
    }
    chmod(dir, 0755); /* the broker reads its files */
    make_cert("ca", NULL, NULL, NULL);
    make_cert("other-ca", NULL, NULL, NULL);
    make_cert("server", "ca", "IP:127.0.0.1,DNS:localhost", NULL);
    make_cert("elsewhere", "ca", "DNS:other.example", NULL);
    make_cert("client", "ca", "DNS:client", KEY_PASSWORD);
    run("chmod 644 %s/*", dir);
    return 0;
}

static int suite_teardown(void **st)
{
    (void)st;
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

typedef struct state {
    mf_t fx;
    tb_broker_t *broker;
    int tls_port;
} state_t;

static int setup(void **st)
{
    state_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    mf_start(&s->fx, false);
    *st = s;
    return 0;
}

static int teardown(void **st)
{
    state_t *s = *st;
    mf_free(&s->fx);
    tb_broker_free(s->broker);
    free(s);
    return 0;
}

/* A broker with a plain listener and a TLS one presenting `cert`. */
static void start_broker(state_t *s, const char *cert, bool require_client_cert)
{
    char extra[1024];
    s->tls_port = tb_free_port();
    snprintf(extra, sizeof(extra),
             "listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/%s.crt\nkeyfile %s/%s.key\n"
             "require_certificate %s\n",
             s->tls_port, dir, dir, cert, dir, cert, require_client_cert ? "true" : "false");
    /* Two ports picked one after the other can be the same free port: the plain listener gets
     * one that differs (mosquitto refuses the second listener otherwise). */
    int plain;
    do {
        plain = tb_free_port();
    } while (plain == s->tls_port && plain > 0);
    tb_broker_options_t o = {.port = plain, .extra_config = extra};
    s->broker = tb_broker_start(&o);
    assert_non_null(s->broker);
}

static char *file(const char *name)
{
    static char paths[8][128];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
    return p;
}

static void test_verified_server(void **st)
{
    state_t *s = *st;
    mf_listener_t l = {0};
    const char *t[] = {"secure/#"};

    start_broker(s, "server", false);
    char *pid = mf_create(&s->fx, s->tls_port, "tls_ca_file", file("ca.crt"), NULL);
    assert_true(mf_wait_connection(&s->fx, pid, MF_WAIT_MS) > 0);
    mf_listen(&s->fx, &l, t, 1, false, 1);
    assert_true(tb_broker_wait_log(s->broker, "\tsecure/# (QoS", 1, MF_WAIT_MS));
    /* A plain client publishes; the TLS connection receives. */
    tc_client_t *pub = tc_connect(tb_broker_port(s->broker), NULL);
    assert_non_null(pub);
    assert_int_equal(tc_publish(pub, "secure/1", "over tls", 8, 1, false), 0);
    assert_true(mf_listener_wait(&l, "secure/1", 1, MF_WAIT_MS));
    tc_disconnect(pub);
    mf_listener_destroy(&l);
    free(pid);
}

static void test_refused_servers(void **st)
{
    state_t *s = *st;

    start_broker(s, "elsewhere", false);
    /* Signed by another authority: never connected. */
    char *other = mf_create(&s->fx, s->tls_port, "tls_ca_file", file("other-ca.crt"),
                            "reconnect_min", "1", "reconnect_max", "1", NULL);
    /* Signed by the right one, but for other.example, not 127.0.0.1. */
    char *name = mf_create(&s->fx, s->tls_port, "tls_ca_file", file("ca.crt"), "reconnect_min", "1",
                           "reconnect_max", "1", NULL);
    /* The same, host name not checked: connects. */
    char *insecure =
        mf_create(&s->fx, s->tls_port, "tls_ca_file", file("ca.crt"), "tls_insecure", "true", NULL);
    assert_true(mf_wait_connection(&s->fx, insecure, MF_WAIT_MS) > 0);
    usleep(3 * MF_QUIET_MS * 1000); /* several attempts of the others */
    assert_int_equal(mf_count_connections(&s->fx, other), 0);
    assert_int_equal(mf_count_connections(&s->fx, name), 0);
    /* Each says why, in words. */
    assert_true(mf_log_count(&s->fx, "cannot connect: TLS: certificate verify failed") >= 1);
    assert_true(mf_log_count(&s->fx, "cannot connect: TLS: host name verification failed") >= 1);
    free(other);
    free(name);
    free(insecure);
}

static void test_client_certificate(void **st)
{
    state_t *s = *st;

    start_broker(s, "server", true);
    char *with = mf_create(&s->fx, s->tls_port, "tls_ca_file", file("ca.crt"), "tls_cert_file",
                           file("client.crt"), "tls_key_file", file("client.key"),
                           "tls_key_password", KEY_PASSWORD, NULL);
    char *without = mf_create(&s->fx, s->tls_port, "tls_ca_file", file("ca.crt"), "reconnect_min",
                              "1", "reconnect_max", "1", NULL);
    char *wrong =
        mf_create(&s->fx, s->tls_port, "tls_ca_file", file("ca.crt"), "tls_cert_file",
                  file("client.crt"), "tls_key_file", file("client.key"), "tls_key_password",
                  "not-the-one", "reconnect_min", "1", "reconnect_max", "1", NULL);
    assert_true(mf_wait_connection(&s->fx, with, MF_WAIT_MS) > 0);
    usleep(3 * MF_QUIET_MS * 1000);
    assert_int_equal(mf_count_connections(&s->fx, without), 0);
    assert_int_equal(mf_count_connections(&s->fx, wrong), 0);
    assert_int_equal(mf_log_count(&s->fx, KEY_PASSWORD), 0);
    assert_true(mf_log_count(&s->fx, "cannot connect: TLS: Unable to load client key file") >= 1);
    assert_int_equal(mf_log_count(&s->fx, "not-the-one"), 0);
    free(with);
    free(without);
    free(wrong);
}

static void test_bad_settings(void **st)
{
    state_t *s = *st;

    start_broker(s, "server", false);
    char *a = mf_create(&s->fx, s->tls_port, "tls_ca_file", "/nonexistent/ca.crt", NULL);
    char *b = mf_create(&s->fx, s->tls_port, "tls_ca_file", file("ca.crt"), "tls_version",
                        "tlsv1.1", NULL);
    char *c = mf_create(&s->fx, s->tls_port, "tls_ca_file", file("ca.crt"), "tls_cert_file",
                        file("client.crt"), NULL);
    usleep(MF_QUIET_MS * 1000);
    assert_true(mf_log_count(&s->fx, "tls_ca_file: /nonexistent/ca.crt: No such file") >= 1);
    assert_true(mf_log_count(&s->fx, "tls_version: \"tlsv1.1\" is not tlsv1.2 or tlsv1.3") >= 1);
    assert_true(mf_log_count(&s->fx, "tls_cert_file: no tls_key_file") >= 1);
    assert_int_equal(mf_count_connections(&s->fx, NULL), 0);
    free(a);
    free(b);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verified_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_settings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
