/**
 * @file errors.h
 * @brief Error codes and error details shared by every pelix module.
 *
 * Fallible functions return an `int`: 0 on success, a negative errno value (`-EINVAL`, `-ENOMEM`,
 * `-ENOENT`, `-EEXIST`, `-EBUSY`, `-EIO`, ...) or one of the project codes below (all <= -1000).
 * Out-parameters are named `ret_*`, come last and are written only on success.
 *
 * Functions that can fail for a reason worth showing to a user (a filter that does not parse, a
 * JSON file that is malformed, a value of the wrong type) also take an optional `pelix_error_t *`
 * that receives a one-line, human-readable explanation.
 *
 * Thread safety: every function here is thread-safe; a `pelix_error_t` belongs to its caller.
 */
#ifndef PELIX_ERRORS_H
#define PELIX_ERRORS_H

#include <stddef.h>

#if defined(PELIX_BUILDING)
#define PELIX_API __attribute__((visibility("default")))
#else
#define PELIX_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Project error codes (negative, below the errno range). */
enum {
    PELIX_E_FILTER_SYNTAX = -1000, /**< an LDAP filter does not parse */
    PELIX_E_JSON = -1001,          /**< malformed JSON, or JSON that is not a property object */
    PELIX_E_TYPE = -1002,    /**< a value has a type that cannot be coerced to the wanted one */
    PELIX_E_RANGE = -1003,   /**< a value is outside its allowed range */
    PELIX_E_MISSING = -1004, /**< a mandatory property is absent */
    PELIX_E_PID = -1005,     /**< a configuration PID is not acceptable */
    PELIX_E_DELETED = -1006, /**< the configuration was deleted */
    PELIX_E_TOPIC = -1007,   /**< an MQTT topic name or topic filter is not valid */
    PELIX_E_COMMAND = -1008, /**< a shell command line is not valid */
};

/** Size of the text of a pelix_error_t, terminating NUL included. */
#define PELIX_ERROR_TEXT_SIZE 256

/**
 * @brief Details of a failure, filled by functions that accept one.
 *
 * `code` repeats the function's return value; `position` is a 0-based offset into the parsed text
 * (filters) or a 1-based line number (JSON), or -1 when it does not apply; `text` is one line,
 * e.g. `port: "abc" is not an integer`. Left untouched on success.
 */
typedef struct pelix_error {
    int code;
    long position;
    char text[PELIX_ERROR_TEXT_SIZE];
} pelix_error_t;

/** Initial value for a pelix_error_t: `pelix_error_t err = PELIX_ERROR_INIT;` */
#define PELIX_ERROR_INIT                                                                           \
    {                                                                                              \
        0, -1,                                                                                     \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/**
 * @brief Describes an error code.
 * @param[in] code a value returned by a pelix function (0, -errno or a PELIX_E_* code).
 * @return a static string, never NULL.
 */
PELIX_API const char *pelix_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
