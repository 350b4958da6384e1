/*
 * Shared parts of the benchmarks (make bench): clocks, CPU and memory readings, medians, private
 * brokers, and the two outputs of a run:
 * - bu_run(): one JSON object per measured run, appended to $BENCH_RESULTS/runs.jsonl (the raw
 *   lines, to compare runs or bisect a regression);
 * - bu_goal(): one goal (G1..G9) with its ratio, threshold and verdict, appended to
 *   $BENCH_RESULTS/goals.jsonl (bench/run.sh makes bench/results/latest.json of them) and printed
 *   as a line of the table.
 * $BENCH_RESULTS defaults to "bench/results". BENCH_QUICK=1 (make bench QUICK=1) asks for a smoke
 * run: fewer messages and pairs, same scenarios.
 *
 * Single-threaded use (the benchmark's main thread), except bu_log_stderr (any thread).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pelix/log.h>
#include <pelix/registry.h>

#include "integration/broker.h"

/* CLOCK_MONOTONIC in nanoseconds: system-wide, comparable across processes. */
uint64_t bu_now_ns(void);
/* CPU time (user + system) of this process, all threads, in microseconds. */
double bu_cpu_us(void);
/* A field of /proc/<pid>/status in KiB ("VmRSS:", "VmHWM:"); pid 0: this process; 0 if
 * unknown. */
long bu_proc_kb(pid_t pid, const char *key);
/* Resident set of this process in KiB, counted from its page tables (smaps_rollup; VmRSS where
 * that file is missing). */
long bu_rss_kb(void);
/* Peak resident set of this process in KiB (VmHWM); 0 if unknown. */
long bu_hwm_kb(void);
void bu_sleep_ms(long ms);
/* The payload of every flow: BU_PAYLOAD bytes, the sequence number and the send time
 * (bu_now_ns) in the first 16. */
#define BU_PAYLOAD 64
void bu_payload(unsigned char p[BU_PAYLOAD], uint64_t seq);
/* Median of `n` values (the array is sorted in place); 0 when n == 0. */
double bu_median(double *v, size_t n);
/* True for a smoke run (BENCH_QUICK=1). */
bool bu_quick(void);

/* A private mosquitto for benchmarks: a free loopback port, no persistence, errors and notices
 * only in its log (no line per message), max_queued_messages 0 (no drop for a slow subscriber),
 * max_inflight_messages 20. Killed by PID by bu_broker_free() (and at exit if left). NULL with a
 * message on stderr if it cannot start. */
tb_broker_t *bu_broker_start(void);
void bu_broker_free(tb_broker_t *b);
/* CPU time (utime + stime) of a process from /proc/<pid>/stat, in microseconds; -1 if unknown. */
double bu_proc_cpu_us(pid_t pid);

/* Appends a run to runs.jsonl: `json_fields` is the inside of the object, e.g.
 * "\"scenario\":\"G1\",\"impl\":\"svc\",\"rate\":51234.5" (printf format). */
void bu_run(const char *json_fields, ...) __attribute__((format(printf, 1, 2)));
/* Records a goal: pass is ratio >= threshold when `at_least`, else ratio <= threshold. `detail`
 * (printf format) says what was compared. Returns the verdict. */
bool bu_goal(const char *id, double ratio, double threshold, bool at_least, const char *detail, ...)
    __attribute__((format(printf, 5, 6)));
/* Number of goals failed so far (for the exit status). */
int bu_failed(void);

/* bench_svc.c, for the benchmarks that run the service (they link the registry). */
/* Number of services registered under `spec` now. */
size_t bu_count_services(pelix_registry_t *reg, const char *spec);
/* A pelix_logger_t function: warnings and errors of the service on stderr. */
void bu_log_stderr(void *ctx, pelix_log_level_t level, const char *module, const char *message);

#endif
