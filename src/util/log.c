/* Level names and the formatting front end of pelix_logger_t. */
#include <errno.h>
#include <stdio.h>

#include "util/util.h"

static const char *const level_names[] = {"error", "warning", "info", "debug"};

const char *pelix_log_level_name(pelix_log_level_t level)
{
    if ((unsigned)level < PELIX_ARRAY_SIZE(level_names)) {
        return level_names[level];
    }
    return "unknown";
}

int pelix_log_level_parse(const char *name, pelix_log_level_t *ret_level)
{
    if (!name || !ret_level) {
        return -EINVAL;
    }
    for (size_t i = 0; i < PELIX_ARRAY_SIZE(level_names); i++) {
        if (pelix__streq_nocase(name, level_names[i])) {
            *ret_level = (pelix_log_level_t)i;
            return 0;
        }
    }
    if (pelix__streq_nocase(name, "warn")) {
        *ret_level = PELIX_LOG_WARNING;
        return 0;
    }
    return -EINVAL;
}

void pelix__log(const pelix_logger_t *logger, pelix_log_level_t level, const char *module,
                const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (!logger || !logger->fn || level > logger->max_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One record, one line: control characters (a file name may hold a newline) cannot forge
     * further lines in a log. */
    for (char *p = line; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    logger->fn(logger->ctx, level, module, line);
}
