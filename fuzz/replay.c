/*
 * A driver for the fuzz targets without libFuzzer (any compiler; `make test` builds it with ASan
 * and UBSan): runs the target over every file of the corpus folders given, then over a fixed
 * number of mutations of each (bit flips, byte changes, insertions, deletions, splices with
 * another file of the corpus), from a fixed seed, so that a run is repeatable.
 *
 *   fuzz_<name> [-mutations=N] [-artifact_prefix=DIR/] FOLDER_OR_FILE...
 *
 * When the target fails (abort, sanitizer report), the input is written to
 * <artifact_prefix>crash-<n> before the process dies, as libFuzzer does; run the program on that
 * file alone to reproduce it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define FZ_MAX_INPUT (64 * 1024)

void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

typedef struct input {
    uint8_t *data;
    size_t size;
} input_t;

static input_t *corpus;
static size_t ncorpus, capcorpus;
static uint8_t current[FZ_MAX_INPUT];
static size_t current_size;
static char artifact[4096] = "./crash-input";

/* Async-signal-safe: writes the input being run. */
static void save_current(void)
{
    int fd = open(artifact, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, current, current_size);
        (void)w;
        close(fd);
    }
    static const char msg[] = "replay: the failing input is in the artifact file\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
}

static void on_signal(int sig)
{
    save_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(FZ_MAX_INPUT);
    size_t n;

    if (!f || !buf) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        exit(2);
    }
    n = fread(buf, 1, FZ_MAX_INPUT, f);
    fclose(f);
    if (ncorpus == capcorpus) {
        capcorpus = capcorpus ? capcorpus * 2 : 64;
        corpus = realloc(corpus, capcorpus * sizeof(*corpus));
        if (!corpus) {
            exit(2);
        }
    }
    corpus[ncorpus++] = (input_t){buf, n};
}

static void add_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: no such file or folder: %s\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    if (!(d = opendir(path))) {
        exit(2);
    }
    while ((e = readdir(d)) != NULL) {
        char child[4096];
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        add_path(child);
    }
    closedir(d);
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void run_current(void)
{
    LLVMFuzzerTestOneInput(current, current_size);
}

static void mutate(void)
{
    size_t at = current_size ? (size_t)(next_random() % current_size) : 0;
    switch (next_random() % 6) {
    case 0: /* flip a bit */
        if (current_size) {
            current[at] ^= (uint8_t)(1u << (next_random() % 8));
        }
        break;
    case 1: { /* an interesting byte */
        static const uint8_t bytes[] = {0,    '/', '+', '#', '$', '(', ')', '=',  '*',  '"', '\\',
                                        '\'', '{', '}', '[', ']', ',', ':', 0x80, 0xc0, 0xff};
        if (current_size) {
            current[at] = bytes[next_random() % sizeof(bytes)];
        }
        break;
    }
    case 2: /* insert a byte */
        if (current_size < FZ_MAX_INPUT) {
            memmove(current + at + 1, current + at, current_size - at);
            current[at] = (uint8_t)next_random();
            current_size++;
        }
        break;
    case 3: /* delete a byte */
        if (current_size) {
            memmove(current + at, current + at + 1, current_size - at - 1);
            current_size--;
        }
        break;
    case 4: /* duplicate a chunk */
        if (current_size) {
            size_t n = 1 + (size_t)(next_random() % 16);
            if (n > current_size - at) {
                n = current_size - at;
            }
            if (current_size + n <= FZ_MAX_INPUT) {
                memmove(current + at + n, current + at, current_size - at);
                current_size += n;
            }
        }
        break;
    default: { /* splice: the tail of another input */
        const input_t *o = &corpus[next_random() % ncorpus];
        size_t from = o->size ? (size_t)(next_random() % o->size) : 0;
        size_t n = o->size - from;
        if (at + n > FZ_MAX_INPUT) {
            n = FZ_MAX_INPUT - at;
        }
        memcpy(current + at, o->data + from, n);
        current_size = at + n;
        break;
    }
    }
}

int main(int argc, char **argv)
{
    long mutations = 0;

    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "-mutations=", 11) == 0) {
            mutations = strtol(argv[i] + 11, NULL, 10);
        } else if (strncmp(argv[i], "-artifact_prefix=", 17) == 0) {
            snprintf(artifact, sizeof(artifact), "%scrash-input", argv[i] + 17);
        } else {
            add_path(argv[i]);
        }
    }
    if (ncorpus == 0) {
        fprintf(stderr, "usage: %s [-mutations=N] [-artifact_prefix=DIR/] CORPUS...\n", argv[0]);
        return 2;
    }
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(save_current);
    }
    for (size_t i = 0; i < ncorpus; i++) {
        memcpy(current, corpus[i].data, corpus[i].size);
        current_size = corpus[i].size;
        run_current();
    }
    for (size_t i = 0; i < ncorpus; i++) {
        for (long m = 0; m < mutations; m++) {
            if (m % 8 == 0) { /* a fresh start from the file every 8 mutations */
                memcpy(current, corpus[i].data, corpus[i].size);
                current_size = corpus[i].size;
            }
            mutate();
            run_current();
        }
    }
    printf("replay: %zu inputs, %ld mutations each: no failure\n", ncorpus, mutations);
    for (size_t i = 0; i < ncorpus; i++) {
        free(corpus[i].data);
    }
    free(corpus);
    return 0;
}
