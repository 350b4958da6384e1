/* Shared parts of the benchmarks; see bench_util.h. */
#include "bench_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int failed;

uint64_t bu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bu_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

long bu_proc_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    size_t len = strlen(key);
    long kb = 0;
    FILE *f;

    if (pid > 0) {
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    } else {
        snprintf(path, sizeof(path), "/proc/self/status");
    }
    if (!(f = fopen(path, "r"))) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, len) == 0) {
            kb = strtol(line + len, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

long bu_rss_kb(void)
{
    /* VmRSS is the kernel's per-CPU counter read without summing the CPUs' pending updates
     * (Linux >= 6.2): it can be off by hundreds of KiB in a process with threads. smaps_rollup
     * walks the page tables: the pages present now. */
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");

    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "Rss:", 4) == 0) {
                kb = strtol(line + 4, NULL, 10);
                break;
            }
        }
        fclose(f);
    }
    return kb >= 0 ? kb : bu_proc_kb(0, "VmRSS:");
}

long bu_hwm_kb(void)
{
    return bu_proc_kb(0, "VmHWM:");
}

void bu_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void bu_payload(unsigned char p[BU_PAYLOAD], uint64_t seq)
{
    uint64_t t = bu_now_ns();
    memset(p, 'x', BU_PAYLOAD);
    memcpy(p, &seq, 8);
    memcpy(p + 8, &t, 8);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bu_median(double *v, size_t n)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool bu_quick(void)
{
    const char *q = getenv("BENCH_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

tb_broker_t *bu_broker_start(void)
{
    tb_broker_options_t o = {.port = 0,
                             .quiet = true,
                             .extra_config = "max_queued_messages 0\nmax_inflight_messages 20\n"};
    return tb_broker_start(&o);
}

void bu_broker_free(tb_broker_t *b)
{
    tb_broker_free(b);
}

double bu_proc_cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    FILE *f;
    unsigned long ut = 0, st = 0;
    char *p;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
    fclose(f);
    /* After "(comm)": state is field 3; utime and stime are fields 14 and 15. */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static FILE *results(const char *name)
{
    const char *dir = getenv("BENCH_RESULTS");
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "bench/results", name);
    return fopen(path, "a");
}

void bu_run(const char *json_fields, ...)
{
    FILE *f = results("runs.jsonl");
    va_list ap;

    if (!f) {
        return;
    }
    va_start(ap, json_fields);
    fputc('{', f);
    vfprintf(f, json_fields, ap);
    fputs("}\n", f);
    va_end(ap);
    fclose(f);
}

bool bu_goal(const char *id, double ratio, double threshold, bool at_least, const char *detail, ...)
{
    bool pass = at_least ? ratio >= threshold : ratio <= threshold;
    char text[1024];
    va_list ap;
    FILE *f;

    va_start(ap, detail);
    vsnprintf(text, sizeof(text), detail, ap);
    va_end(ap);
    for (char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) {
            *c = '\'';
        }
    }
    failed += !pass;
    printf("%-4s %-4s ratio %8.3f %s %6.2f  %s\n", id, pass ? "PASS" : "FAIL", ratio,
           at_least ? ">=" : "<=", threshold, text);
    fflush(stdout);
    if ((f = results("goals.jsonl")) != NULL) {
        fprintf(f,
                "{\"id\": \"%s\", \"ratio\": %.4g, \"threshold\": %.4g, \"pass\": %s, \"detail\": "
                "\"%s\"}\n",
                id, ratio, threshold, pass ? "true" : "false", text);
        fclose(f);
    }
    return pass;
}

int bu_failed(void)
{
    return failed;
}
