/* The parts of bench_util.h for benchmarks that run the service (they link the registry). */
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

size_t bu_count_services(pelix_registry_t *reg, const char *spec)
{
    long *ids = NULL;
    size_t n = 0;

    if (pelix_registry_find(reg, spec, NULL, &ids, &n, NULL) < 0) {
        n = 0;
    }
    free(ids);
    return n;
}

void bu_log_stderr(void *ctx, pelix_log_level_t level, const char *module, const char *message)
{
    (void)ctx;
    fprintf(stderr, "  [%s] %s: %s\n", pelix_log_level_name(level), module, message);
}
