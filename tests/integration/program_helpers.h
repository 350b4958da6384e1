/*
 * Running the pelix-mqtt program as a user would, for tests/integration/test_program.c: a child
 * process started with its standard input, output and error on pipes (or all three on a
 * pseudo-terminal), a reader thread accumulating what it writes, waits on that text, signals,
 * and the exit status.
 *
 * Every process runs in a work folder of its own (pp_root_new(): a temporary folder holding
 * conf/, the configuration folder, and tmp/, its TMPDIR, where the embedded broker keeps its
 * folder), so that nothing is left outside it; pp_root_free() removes it.
 *
 * The test process makes itself a child subreaper (pp_init()), so that a broker orphaned by a
 * killed program is reparented to it and can be waited for (pp_pid_gone()), even where PID 1
 * does not reap zombies.
 *
 * Nothing here asserts except pp_expect*() (cmocka), which print both streams before failing.
 * Timing: PP_WAIT_MS bounds every "eventually" (generous: things normally take milliseconds).
 */
#ifndef PP_PROGRAM_HELPERS_H
#define PP_PROGRAM_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PP_WAIT_MS 10000

/* The program's streams; on a terminal, everything is PP_OUT. */
typedef enum pp_stream { PP_OUT = 0, PP_ERR = 1 } pp_stream_t;

typedef struct pp_proc pp_proc_t;

/* Once per test program: subreaper, SIGPIPE ignored. */
void pp_init(void);

/* A new work folder with tmp/ (conf/ is the program's to create, or the test's: pp_mkconf());
 * free with pp_root_free(), which removes it. */
char *pp_root_new(void);
void pp_root_free(char *root);
/* "<root>/conf/<name>" ("<root>/conf" for a NULL name) into `out`. */
void pp_mkconf(const char *root);
void pp_conf_path(const char *root, const char *name, char *out, size_t size);

/* Starts the program (PELIX_PROGRAM, the build's, or $PELIX_MQTT_PROGRAM when set) in `root` with
 * `--conf <root>/conf` (unless `with_conf` is false) and the NULL-terminated `args`,
 * TMPDIR=<root>/tmp. `tty`: on a new pseudo-terminal (80x24) instead of pipes. NULL on failure
 * (message on stderr). */
pp_proc_t *pp_start(const char *root, bool with_conf, bool tty, const char *const *args);

/* Kills (SIGKILL) the program if it runs, reaps it, stops the reader, frees. NULL ignored. */
void pp_free(pp_proc_t *p);

pid_t pp_pid(const pp_proc_t *p);

/* Writes a command line (printf-like, "\n" appended unless `raw`) to the program's input. */
void pp_send(pp_proc_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pp_send_raw(pp_proc_t *p, const char *text);
/* Closes the program's input (end of file). Not on a terminal. */
void pp_close_input(pp_proc_t *p);

/* How many bytes of the stream were received so far: a mark to search from. */
size_t pp_mark(pp_proc_t *p, pp_stream_t s);

/* Waits (timeout_ms) until `needle` appears in the stream at or after `from`; the offset just
 * after it, or -1 when it did not. */
long pp_wait(pp_proc_t *p, pp_stream_t s, size_t from, const char *needle, long timeout_ms);

/* The same, failing the test (with both streams printed) when it did not. */
size_t pp_expect(pp_proc_t *p, pp_stream_t s, size_t from, const char *needle);

/* Number of occurrences of `needle` in the stream between `from` and `to` (to 0: the end). */
int pp_count(pp_proc_t *p, pp_stream_t s, size_t from, size_t to, const char *needle);

/* Copies the stream between `from` and `to` (0: the end) into `out` (NUL-terminated). */
void pp_text(pp_proc_t *p, pp_stream_t s, size_t from, size_t to, char *out, size_t size);

/* Waits for the first complete line at or after `from` and copies it (without "\n") to `out`;
 * the offset after it, or -1. */
long pp_line(pp_proc_t *p, pp_stream_t s, size_t from, char *out, size_t size, long timeout_ms);

/* Prints both streams to stderr (diagnostics). */
void pp_dump(pp_proc_t *p);

/* Sends a signal to the program. */
void pp_kill(pp_proc_t *p, int sig);

/* Waits (timeout_ms) for the program to exit and reaps it; its wait status, or -1 if it still
 * runs. Once reaped, returns the same status again. */
int pp_wait_exit(pp_proc_t *p, long timeout_ms);

/* Whether the program still runs (not exited). */
bool pp_running(pp_proc_t *p);

/* Waits (timeout_ms) until process `pid` is gone (reaping it if it is a child of this process,
 * directly or as a subreaper); true if it is. */
bool pp_pid_gone(pid_t pid, long timeout_ms);

/* Kills `pid` with SIGKILL if it is still a running mosquitto (a safety net after a failure). */
void pp_kill_mosquitto(pid_t pid);

/* Writes `text` to `path` atomically (a temporary name in the same folder, then rename). */
bool pp_write_file(const char *path, const char *text);

/* Whether the file exists. */
bool pp_exists(const char *path);

/* Number of entries of a folder (without . and ..), -1 if it cannot be read. */
int pp_count_entries(const char *dir);

long long pp_now_ms(void);
void pp_sleep_ms(long ms);

#endif
