/**
 * @file log.h
 * @brief The logging hook of the library.
 *
 * Library code never prints. Components that run on their own threads (the ConfigAdmin folder
 * watcher, for instance) report what they could not do to a `pelix_logger_t` given by the host,
 * which decides what the user sees.
 *
 * Thread safety: a logger's function may be called from any library thread, concurrently; it
 * must be thread-safe itself and must not call back into the component that logs.
 */
#ifndef PELIX_LOG_H
#define PELIX_LOG_H

#include <pelix/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Log levels, most severe first. */
typedef enum pelix_log_level {
    PELIX_LOG_ERROR = 0,
    PELIX_LOG_WARNING = 1,
    PELIX_LOG_INFO = 2,
    PELIX_LOG_DEBUG = 3,
} pelix_log_level_t;

/**
 * @brief Receives one log record.
 * @param[in] ctx the logger's context.
 * @param[in] level severity of the record.
 * @param[in] module short name of the reporting module ("configadmin", ...).
 * @param[in] message one line without a trailing newline (control characters of the text, such
 * as a newline in a file name, are replaced with `?`); borrowed for the call only.
 * Called from whatever library thread reports the event; never with a library lock held.
 */
typedef void (*pelix_log_fn)(void *ctx, pelix_log_level_t level, const char *module,
                             const char *message);

/** A log sink: records above `max_level` are not even formatted. A NULL `fn` drops everything. */
typedef struct pelix_logger {
    pelix_log_fn fn;
    void *ctx;
    pelix_log_level_t max_level;
} pelix_logger_t;

/** @brief Name of a level ("error", "warning", "info", "debug"); never NULL. */
PELIX_API const char *pelix_log_level_name(pelix_log_level_t level);

/**
 * @brief Parses a level name (case-insensitive; "warn" is accepted for "warning").
 * @return 0 and `*ret_level`, or -EINVAL for an unknown name.
 */
PELIX_API int pelix_log_level_parse(const char *name, pelix_log_level_t *ret_level);

#ifdef __cplusplus
}
#endif

#endif
